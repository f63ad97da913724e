#!/bin/bash
# check-install.sh - `make install` and `make uninstall` as a packager and
# as a user see them (TAP; `make check-install` runs it through
# run-tests.sh, `make check` as a step of its own).
#
# 1. Staged: install into a scratch DESTDIR with PREFIX=/usr/local, the way
#    packagers do. Exactly the expected files land, with the right modes and
#    substituted paths; the example config is replaced on every install but
#    a dmarcwatch.yaml never is; the plugin SDK's .pc and header; uninstall
#    with the same DESTDIR leaves nothing but empty directories.
# 2. Real prefix: a copy of the tree built with PREFIX=<scratch> and no
#    DESTDIR, installed and run from there. This is the honest test of the
#    compiled-in paths: the binary must find its config at
#    $(SYSCONFDIR)/dmarcwatch/dmarcwatch.yaml and the plugins the example
#    names ("plugin: syslog") in $(PLUGINDIR) with no plugin_dir and no -c.
#    A DESTDIR binary cannot show that (it looks in the real /usr/local,
#    which may hold another install), and pointing plugin_dir at the staged
#    directory would test the config key, not the install. The example
#    plugin builds out of tree against the installed SDK (PKG_CONFIG_PATH),
#    is installed into the SDK's plugindir and used by name; systemd-analyze
#    verifies the installed unit; uninstall leaves only directories.
. "$(dirname "$0")/../tests/integration/lib.sh"

# show FILE: a failed step's log as TAP comments (ok's status is the check's).
show() { sed 's/^/#   /' "$1"; }
ok() { # like lib.sh's, returning the check's status so "|| show" works
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _failed=$((_failed + 1)); return 1; fi
}

# Only what this script passes reaches make: no install variables from the
# environment, nothing from a calling make's command line (MAKEFLAGS).
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR PREFIX BINDIR LIBDIR PLUGINDIR SYSCONFDIR INCLUDEDIR MANDIR \
	PKGCONFIGDIR SYSTEMDUNITDIR
version=$(sed -n 's/^VERSION *= *//p' "$ROOT/Makefile")
plugins=$(cd "$ROOT/plugins" && for d in */; do
	d=${d%/}
	case $d in common | example) continue ;; esac
	ls "$d"/*.c >/dev/null 2>&1 && echo "$d"
done)
manpages=$(cd "$ROOT/packaging/man" 2>/dev/null && ls -- *.5 *.7 *.8 2>/dev/null)

# --- 1. staged install ---------------------------------------------------
D="$T/stage"
P=/usr/local
make -s -C "$ROOT" install DESTDIR="$D" PREFIX=$P >"$T/install.log" 2>&1
ok $? "make install DESTDIR=... PREFIX=$P succeeds" || show "$T/install.log"

want=$({
	echo "$P/bin/dmarcwatch"
	for p in $plugins; do echo "$P/lib/dmarcwatch/plugins/$p.so"; done
	echo "$P/include/dmarcwatch/notifier.h"
	echo "$P/lib/pkgconfig/dmarcwatch-plugin.pc"
	for m in $manpages; do echo "$P/share/man/man${m##*.}/$m"; done
	echo "$P/etc/dmarcwatch/dmarcwatch.yaml.example"
	echo "$P/lib/systemd/system/dmarcwatch.service"
} | sort)
got=$(cd "$D" && find . -type f -o -type l | sed 's|^\.||' | sort)
is "$got" "$want" "exactly the expected files are installed ($(echo "$want" | wc -l))"
[ -n "$plugins" ] && [ -n "$manpages" ]
ok $? "among them $(echo $plugins | wc -w) plugins and $(echo $manpages | wc -w) man pages"

is "$(stat -c %a "$D$P/bin/dmarcwatch")" 755 "the binary is 0755"
is "$(cd "$D" && find . -type f ! -path "./${P#/}/bin/*" ! -perm 644 | sort)" "" "everything else is 0644 (the loader refuses group-writable plugins)"
is "$(cd "$D" && find . -type d ! -perm 755)" "" "directories are 0755"
"$D$P/bin/dmarcwatch" --version >"$T/v.out" 2>&1
ok $? "the installed binary runs: --version"
is "$(cat "$T/v.out")" "dmarcwatch $version" "it is version $version"

cmp -s "$ROOT/config/dmarcwatch.yaml.example" "$D$P/etc/dmarcwatch/dmarcwatch.yaml.example"
ok $? "the example config is installed as $P/etc/dmarcwatch/dmarcwatch.yaml.example"
[ ! -e "$D$P/etc/dmarcwatch/dmarcwatch.yaml" ]
ok $? "no dmarcwatch.yaml is created"

unit="$D$P/lib/systemd/system/dmarcwatch.service"
is "$(grep -c '@[A-Z_]*@' "$unit")" 0 "the unit has no placeholder left"
is "$(grep '^ExecStart=' "$unit")" "ExecStart=$P/bin/dmarcwatch run -c $P/etc/dmarcwatch/dmarcwatch.yaml" \
	"the unit runs the installed binary on \$(SYSCONFDIR)/dmarcwatch/dmarcwatch.yaml"
is "$(grep '^ConditionPathExists=' "$unit")" "ConditionPathExists=$P/etc/dmarcwatch/dmarcwatch.yaml" \
	"and stays inert until that file exists"

for m in $manpages; do
	s=${m##*.}
	is "$(man -M "$D$P/share/man" -w "$s" "${m%.*}" 2>&1)" "$D$P/share/man/man$s/$m" "man finds $m in the installed tree"
done

# The plugin SDK, as a third party sees it through pkg-config.
hdr="$D$P/include/dmarcwatch/notifier.h"
like "$(grep '^#include' "$hdr" | tr '\n' ' ')" "#include <stddef.h> #include <stdint.h> #include <time.h>" \
	"notifier.h stands alone: stddef.h, stdint.h, time.h"
is "$(grep -c '^#include' "$hdr")" 3 "and nothing else"
cflags=$(PKG_CONFIG_PATH="$D$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" pkg-config --cflags dmarcwatch-plugin)
ok $? "pkg-config knows dmarcwatch-plugin in the staged tree"
is "$(echo $cflags)" "-I$D$P/include" "its --cflags point at the staged header (sysroot applied)"
is "$(PKG_CONFIG_PATH="$D$P/lib/pkgconfig" pkg-config --variable=plugindir dmarcwatch-plugin)" \
	"$P/lib/dmarcwatch/plugins" "its plugindir is the real one, not the staging path"
is "$(PKG_CONFIG_PATH="$D$P/lib/pkgconfig" pkg-config --modversion dmarcwatch-plugin)" "$version" "its version is $version"

# Reinstall over a configured system: the .example is replaced, the
# administrator's dmarcwatch.yaml is left alone.
printf 'accounts: []  # mine\n' >"$D$P/etc/dmarcwatch/dmarcwatch.yaml"
echo "# edited" >>"$D$P/etc/dmarcwatch/dmarcwatch.yaml.example"
make -s -C "$ROOT" install DESTDIR="$D" PREFIX=$P >"$T/install2.log" 2>&1
ok $? "a second make install succeeds"
cmp -s "$ROOT/config/dmarcwatch.yaml.example" "$D$P/etc/dmarcwatch/dmarcwatch.yaml.example"
ok $? "it replaces the .example"
is "$(cat "$D$P/etc/dmarcwatch/dmarcwatch.yaml")" "accounts: []  # mine" "and never touches dmarcwatch.yaml"

make -s -C "$ROOT" uninstall DESTDIR="$D" PREFIX=$P >"$T/uninstall.log" 2>&1
ok $? "make uninstall DESTDIR=... succeeds"
is "$(cd "$D" && find . -type f -o -type l)" "./${P#/}/etc/dmarcwatch/dmarcwatch.yaml" \
	"it removes everything it installed, but not dmarcwatch.yaml"
rm "$D$P/etc/dmarcwatch/dmarcwatch.yaml"
make -s -C "$ROOT" uninstall DESTDIR="$D" PREFIX=$P >>"$T/uninstall.log" 2>&1
ok $? "make uninstall again (nothing left to remove) succeeds"
is "$(find "$D" -type f -o -type l)" "" "nothing but directories remains"
is "$(find "$D" -name '*dmarcwatch*')" "" "and no dmarcwatch directory: they were emptied and removed"

# --- 2. a real (scratch) prefix ------------------------------------------
P="$T/prefix"
src="$T/src"
sh "$ROOT/scripts/copy-tree.sh" "$src"
ok $? "copy of the source tree"
# A relative DEST is taken from the caller's directory, not the tree's.
rel="dw-copy-rel.$$"
(cd "$T" && sh "$ROOT/scripts/copy-tree.sh" "$rel")
[ -f "$T/$rel/Makefile" ] && [ ! -e "$ROOT/$rel" ]
ok $? "copy-tree.sh with a relative DEST copies into the caller's directory, not into the tree" ||
	rm -rf "${ROOT:?}/$rel"
rm -rf "${T:?}/$rel"
# Reuse the tree's objects: only what compiles a path in must be rebuilt.
if [ -d "$ROOT/build" ]; then
	tar -C "$ROOT" --exclude=build/test-logs --exclude=build/tests -cf - build | tar -xf - -C "$src"
fi
make -C "$src" PREFIX="$P" install >"$T/build2.log" 2>&1
ok $? "make PREFIX=\$T/prefix install (no DESTDIR) in that copy" || show "$T/build2.log"
like "$(cat "$T/build2.log")" "CC      src/config.c" "a new PREFIX rebuilds config.c (it compiles the plugin dir in)"
grep -q -F -- "$P/lib/dmarcwatch/plugins" "$P/bin/dmarcwatch"
ok $? "the installed binary has \$T/prefix/lib/dmarcwatch/plugins compiled in"
is "$("$P/bin/dmarcwatch" --version 2>&1)" "dmarcwatch $version" "it runs: --version"

# The administrator's steps: copy the example to dmarcwatch.yaml and provide
# its secrets (here under $T, like test_config does; no plugin_dir).
mkdir -m 700 "$T/secrets"
for s in gmail-app-password workspace-client-secret workspace-refresh-token; do
	echo "secret-$s" >"$T/secrets/$s" && chmod 600 "$T/secrets/$s"
done
sed "s|/etc/dmarcwatch/secrets/|$T/secrets/|g" "$P/etc/dmarcwatch/dmarcwatch.yaml.example" \
	>"$P/etc/dmarcwatch/dmarcwatch.yaml"
grep -q '^plugin_dir:' "$P/etc/dmarcwatch/dmarcwatch.yaml"
is $? 1 "the configuration sets no plugin_dir"
out=$(cd / && env -u DMARCWATCH_CONFIG DMARCWATCH_OFFICE_PASSWORD=secret-office "$P/bin/dmarcwatch" check-config 2>&1)
ok $? "check-config with no -c finds \$T/prefix/etc/dmarcwatch/dmarcwatch.yaml and accepts it"
like "$out" "configuration OK (4 accounts, 1 notifier)" "with the example's accounts and its syslog notifier, loaded by name"
mv "$P/lib/dmarcwatch/plugins/syslog.so" "$T/syslog.so.aside"
out=$(env -u DMARCWATCH_CONFIG DMARCWATCH_OFFICE_PASSWORD=secret-office "$P/bin/dmarcwatch" check-config 2>&1)
is $? 1 "without the installed syslog.so it fails (so it was that file it loaded)"
like "$out" "no plugin \"syslog\" in $P/lib/dmarcwatch/plugins" "naming the installed plugin directory"
mv "$T/syslog.so.aside" "$P/lib/dmarcwatch/plugins/syslog.so"

# The example plugin, built out of tree against the installed SDK and
# installed where the SDK says plugins go.
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
plugindir=$(pkg-config --variable=plugindir dmarcwatch-plugin)
is "$plugindir" "$P/lib/dmarcwatch/plugins" "pkg-config (PKG_CONFIG_PATH) gives the installed plugindir"
is "$(echo $(pkg-config --cflags dmarcwatch-plugin))" "-I$P/include" "and the installed include dir"
cp -r "$ROOT/plugins/example" "$T/example"
rm -f "$T/example/example.so"
make -s -C "$T/example" CFLAGS="-O2 -Wall -Wextra -Werror" >"$T/example.log" 2>&1
ok $? "the example plugin builds out of tree, warning-free" || show "$T/example.log"
exported=$(nm -D --defined-only "$T/example/example.so" | awk '{print $3}' | grep -v '^_' | sort | tr '\n' ' ')
is "$exported" "dw_notifier_entry " "it exports exactly one symbol"
install -m 644 "$T/example/example.so" "$plugindir/example.so"
ok $? "installed into that plugindir"

mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"
cat >"$T/c.yaml" <<YAML
state_dir: $T/state
accounts:
  - name: none
    source: maildir
    path: $T/Maildir
notifiers:
  - name: logbook
    plugin: example
    path: $T/logbook.txt
  - name: local
    plugin: syslog
    server: udp://127.0.0.1:9
YAML
out=$("$P/bin/dmarcwatch" check-config -c "$T/c.yaml" 2>&1)
ok $? "the installed binary accepts a config using the example by name"
like "$out" "(1 account, 2 notifiers)" "beside a bundled plugin"
out=$("$P/bin/dmarcwatch" test-notify -c "$T/c.yaml" logbook 2>&1)
ok $? "test-notify through the example plugin"
like "$out" "logbook: delivered" "delivered"
like "$(cat "$T/logbook.txt" 2>&1)" "test/info dmarcwatch test notification" "the file has the notification"
like "$(cat "$T/logbook.txt" 2>&1)" "attachment dmarcwatch-test.csv" "with its attachment noted"
printf '  - name: bad\n    plugin: example\n    colour: red\n' >>"$T/c.yaml"
out=$("$P/bin/dmarcwatch" check-config -c "$T/c.yaml" 2>&1)
is $? 1 "an unknown key for the example plugin is refused"
like "$out" "c.yaml:15:13: notifiers[2].colour: unknown key (example knows: path, fields)" "at its line, by the plugin"

# The installed unit, as systemd reads it (ExecStart= must exist for that).
if command -v systemd-analyze >/dev/null 2>&1; then
	unit="$P/lib/systemd/system/dmarcwatch.service"
	# --man=yes runs man(1) on every Documentation= page: only once
	# they are all in packaging/man.
	man=yes
	for m in $(sed -n 's/^Documentation=//p' "$unit"); do
		case $m in man:*) m=${m#man:} && [ -f "$ROOT/packaging/man/${m%(*}.$(echo "${m#*(}" | tr -d ')')" ] || man=no ;; esac
	done
	MANPATH="$P/share/man" systemd-analyze verify --man=$man "$unit" >"$T/verify.log" 2>&1
	ok $? "systemd-analyze verify --man=$man passes on the installed unit" || show "$T/verify.log"
else
	skip "systemd-analyze not installed"
fi

# A third party's plugin is theirs to remove; then ours goes.
rm -f "$plugindir/example.so"
(cd "$src" && make -s uninstall PREFIX="$P") >"$T/uninstall2.log" 2>&1
ok $? "make uninstall PREFIX=\$T/prefix succeeds"
is "$(cd "$P" && find . -type f -o -type l)" "./etc/dmarcwatch/dmarcwatch.yaml" "it leaves only the administrator's dmarcwatch.yaml"
rm "$P/etc/dmarcwatch/dmarcwatch.yaml"
(cd "$src" && make -s uninstall PREFIX="$P") >>"$T/uninstall2.log" 2>&1
is "$(find "$P" -type f -o -type l)" "" "then nothing but directories remains"
done_testing
