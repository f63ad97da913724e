#!/bin/bash
# check-deb.sh - the Debian package, built and used as an administrator
# would (TAP; `make check-deb`, and a step of `make check` when root and
# DW_NO_DEB is not 1).
#
# Builds build-deb/dmarcwatch_*.deb (scripts/build-deb.sh), runs lintian
# (no E: tags; W: tags listed as comments), checks its contents and
# conffiles. As root it then installs it with apt-get, checks where the
# files landed, the dmarcwatch system user, that the unit is not enabled,
# that the installed binary and plugins work on the installed example
# configuration (also as the dmarcwatch user), that the SDK builds a
# plugin, that systemd accepts the installed unit; then purges it and
# checks that everything is gone. A system that already has dmarcwatch
# installed is left alone (those steps are skipped).
. "$(dirname "$0")/../tests/integration/lib.sh"

# Only what this script passes reaches make: no install variables from the
# environment, nothing from a calling make's command line (MAKEFLAGS).
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR PREFIX BINDIR LIBDIR PLUGINDIR SYSCONFDIR INCLUDEDIR MANDIR \
	PKGCONFIGDIR SYSTEMDUNITDIR
show() { sed 's/^/#   /' "$1"; }
version=$(sed -n 's/^VERSION *= *//p' "$ROOT/Makefile")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
plugindir=/usr/lib/$multiarch/dmarcwatch/plugins

start=$SECONDS
sh "$ROOT/scripts/build-deb.sh" >"$T/build.log" 2>&1
rc=$?
ok $rc "make deb builds the package ($((SECONDS - start)) s)"
[ $rc -eq 0 ] || show "$T/build.log"
deb="$ROOT/build-deb/dmarcwatch_${version}_$arch.deb"
[ -f "$deb" ]
ok $? "build-deb/${deb##*/} exists"
is "$(ls "$ROOT"/build-deb/*.deb 2>/dev/null | wc -l)" 1 "and is the only .deb there"
is "$(dpkg-deb -f "$deb" Package Version | tr '\n' ' ')" "Package: dmarcwatch Version: $version " \
	"its control file says dmarcwatch $version"
like "$(dpkg-deb -f "$deb" Depends)" "libetpan" "Depends: computed from the linked libraries (shlibs)"
like "$(dpkg-deb -f "$deb" Depends)" "adduser" "Depends: adduser (postinst creates the user)"

# lintian: errors fail, warnings are listed.
if command -v lintian >/dev/null 2>&1; then
	lintian --no-tag-display-limit "$deb" >"$T/lintian.txt" 2>&1
	grep '^W: ' "$T/lintian.txt" | sed 's/^/# lintian /'
	echo "# lintian: $(grep -c '^E: ' "$T/lintian.txt") errors, $(grep -c '^W: ' "$T/lintian.txt") warnings, $(grep -c '^I: ' "$T/lintian.txt") info"
	is "$(grep '^E: ' "$T/lintian.txt")" "" "lintian reports no error"
else
	skip "lintian not installed"
fi

# Contents, before installing anything.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^/\?$' | sort >"$T/contents"
# Its files and links (not directories: /lib is a symlink on merged-/usr systems).
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort >"$T/files"
is "$(grep -v -E '^(/usr(/.*)?|/etc|/etc/dmarcwatch(/.*)?|/lib|/lib/systemd(/.*)?)$' "$T/contents")" "" \
	"every path is under /usr, /etc/dmarcwatch or /lib/systemd"
for f in /usr/bin/dmarcwatch /lib/systemd/system/dmarcwatch.service /etc/dmarcwatch/dmarcwatch.yaml.example \
	/usr/include/dmarcwatch/notifier.h /usr/lib/$multiarch/pkgconfig/dmarcwatch-plugin.pc \
	$plugindir/syslog.so /usr/share/doc/dmarcwatch/copyright; do
	grep -qx "$f" "$T/contents"
	ok $? "ships $f"
done
for m in $(cd "$ROOT/packaging/man" 2>/dev/null && ls -- *.5 *.7 *.8 2>/dev/null); do
	grep -qx "/usr/share/man/man${m##*.}/$m.gz" "$T/contents"
	ok $? "ships the man page $m"
done
grep -q '^/etc/dmarcwatch/dmarcwatch.yaml$' "$T/contents"
is $? 1 "does not ship dmarcwatch.yaml itself"
mkdir "$T/ctrl"
dpkg-deb -e "$deb" "$T/ctrl"
is "$(cat "$T/ctrl/conffiles" 2>/dev/null)" "/etc/dmarcwatch/dmarcwatch.yaml.example" "the one conffile is the example"
mkdir "$T/x"
dpkg-deb -x "$deb" "$T/x"
is "$(sed -n 's/^ExecStart=//p' "$T/x/lib/systemd/system/dmarcwatch.service")" \
	"/usr/bin/dmarcwatch run -c /etc/dmarcwatch/dmarcwatch.yaml" "the unit runs /usr/bin/dmarcwatch on /etc/dmarcwatch/dmarcwatch.yaml"
grep -a -q -F "$plugindir" "$T/x/usr/bin/dmarcwatch"
ok $? "the binary has $plugindir compiled in"

if [ "$(id -u)" -ne 0 ]; then
	skip "not root: install, user, unit and purge checks need root"
	done_testing
	exit
fi
if dpkg-query -W -f='${Status}' dmarcwatch 2>/dev/null | grep -q 'installed\|config-files'; then
	skip "dmarcwatch is already installed on this system: not touching it"
	done_testing
	exit
fi

# The purge below removes /var/lib/dmarcwatch (postrm): never run it over a
# database this test did not create (a `make install` agent keeps its own
# there, StateDirectory=dmarcwatch), nor over an administrator's /etc/dmarcwatch.
for d in /var/lib/dmarcwatch /etc/dmarcwatch; do
	if [ -e "$d" ] || [ -L "$d" ]; then
		skip "$d exists (another dmarcwatch install?): not installing and purging the package over it"
		done_testing
		exit
	fi
done

# Leave the system as we found it, whatever happens below.
had_user=0
getent passwd dmarcwatch >/dev/null && had_user=1
cleanup() {
	if dpkg-query -W dmarcwatch >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq dmarcwatch >/dev/null 2>&1
	fi
	if [ $had_user -eq 0 ] && getent passwd dmarcwatch >/dev/null; then
		deluser --system --quiet dmarcwatch >/dev/null 2>&1
		getent group dmarcwatch >/dev/null && delgroup --system --quiet dmarcwatch >/dev/null 2>&1
	fi
	rm -rf "$T"
}
trap cleanup EXIT

start=$SECONDS
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$T/install.log" 2>&1
rc=$?
ok $rc "apt-get install ./build-deb/${deb##*/} ($((SECONDS - start)) s)"
[ $rc -eq 0 ] || show "$T/install.log"
like "$(dpkg-query -W -f='${Status} ${Version}' dmarcwatch 2>&1)" "install ok installed $version" "dpkg has it installed"

dpkg -L dmarcwatch | sort >"$T/installed"
is "$(grep -v -E '^(/\.|/usr(/.*)?|/etc|/etc/dmarcwatch(/.*)?|/lib|/lib/systemd(/.*)?)$' "$T/installed")" "" \
	"dpkg -L: every file is under /usr, /etc/dmarcwatch or /lib/systemd"
missing=$(while read -r f; do [ -e "$f" ] || echo "$f"; done <"$T/installed")
is "$missing" "" "and every one of them is on disk"

# The system user, as postinst made it.
pw=$(getent passwd dmarcwatch)
ok $? "the dmarcwatch user exists$([ $had_user -eq 1 ] && echo ' (it did before: an earlier install)')"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
[ "$uid" -lt 1000 ]
ok $? "it is a system user (uid $uid)"
is "$(getent group dmarcwatch | cut -d: -f3)" "$gid" "its primary group is the dmarcwatch group"
is "$home" /var/lib/dmarcwatch "its home is /var/lib/dmarcwatch"
is "$shell" /usr/sbin/nologin "it cannot log in"

# Installed disabled, not started.
is "$(ls /etc/systemd/system/*.wants/dmarcwatch.service 2>/dev/null)" "" "the unit is not enabled (no .wants link)"
if state=$(systemctl is-enabled dmarcwatch.service 2>/dev/null) || [ -n "$state" ]; then
	is "$state" disabled "systemctl is-enabled: disabled"
else
	skip "systemctl is-enabled does not work here"
fi
[ ! -e /etc/dmarcwatch/dmarcwatch.yaml ]
ok $? "no /etc/dmarcwatch/dmarcwatch.yaml: the unit's ConditionPathExists keeps it inert"

# The installed program on the installed example.
is "$(dmarcwatch --version 2>&1)" "dmarcwatch $version" "dmarcwatch --version (from PATH: $(command -v dmarcwatch))"
mkdir -m 711 "$T/cfg"
for s in gmail-app-password workspace-client-secret workspace-refresh-token; do
	echo "secret-$s" >"$T/cfg/$s"
done
sed "s|/etc/dmarcwatch/secrets/|$T/cfg/|g" /etc/dmarcwatch/dmarcwatch.yaml.example >"$T/cfg/dmarcwatch.yaml"
chmod 600 "$T/cfg"/*
out=$(DMARCWATCH_OFFICE_PASSWORD=secret-office dmarcwatch check-config -c "$T/cfg/dmarcwatch.yaml" 2>&1)
ok $? "check-config accepts the installed example (its secrets provided)"
like "$out" "configuration OK (4 accounts, 1 notifier)" "loading the syslog plugin by name from $plugindir"
chown -R dmarcwatch:dmarcwatch "$T/cfg"
chmod 711 "$T"
out=$(DMARCWATCH_OFFICE_PASSWORD=secret-office setpriv --reuid=dmarcwatch --regid=dmarcwatch --clear-groups \
	dmarcwatch check-config -c "$T/cfg/dmarcwatch.yaml" 2>&1)
ok $? "and so does the dmarcwatch user (as ExecStartPre= runs it)"
like "$out" "configuration OK (4 accounts, 1 notifier)" "with the same result"
[ ! -e /var/lib/dmarcwatch ]
ok $? "check-config leaves /var/lib/dmarcwatch alone (systemd creates it: StateDirectory=)"

# The SDK from the package: pkg-config finds it without any path.
is "$(pkg-config --variable=plugindir dmarcwatch-plugin 2>&1)" "$plugindir" "pkg-config: the package's plugindir"
cp -r "$ROOT/plugins/example" "$T/example"
rm -f "$T/example/example.so"
make -s -C "$T/example" CFLAGS="-O2 -Wall -Wextra -Werror" >"$T/example.log" 2>&1
rc=$?
ok $rc "the example plugin builds against the installed SDK"
[ $rc -eq 0 ] || show "$T/example.log"

# systemd on the installed unit (man pages installed, so Documentation= is checked).
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify /lib/systemd/system/dmarcwatch.service >"$T/verify.log" 2>&1
	rc=$?
	ok $rc "systemd-analyze verify passes on the installed unit, man pages included"
	[ $rc -eq 0 ] || show "$T/verify.log"
	echo "# installed unit: $(systemd-analyze security --offline=true /lib/systemd/system/dmarcwatch.service 2>&1 | grep 'Overall exposure')"
else
	skip "systemd-analyze not installed"
fi

# Purge: everything goes (the user stays, as Debian packages do).
mkdir -p /var/lib/dmarcwatch && echo x >/var/lib/dmarcwatch/dmarcwatch.db # as if it had run
start=$SECONDS
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q dmarcwatch >"$T/purge.log" 2>&1
rc=$?
ok $rc "apt-get purge dmarcwatch ($((SECONDS - start)) s)"
[ $rc -eq 0 ] || show "$T/purge.log"
dpkg-query -W dmarcwatch >/dev/null 2>&1
is $? 1 "dpkg no longer knows it"
left=$(while read -r f; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done <"$T/files")
is "$left" "" "every one of its $(wc -l <"$T/files") files is gone"
[ ! -e /etc/dmarcwatch ] && [ ! -e /var/lib/dmarcwatch ]
ok $? "/etc/dmarcwatch and /var/lib/dmarcwatch are gone"
is "$(ls /etc/systemd/system/*.wants/dmarcwatch.service 2>/dev/null)" "" "no .wants link was left either"
getent passwd dmarcwatch >/dev/null
ok $? "the dmarcwatch user stays (removed by this test only if it created it)"
done_testing
