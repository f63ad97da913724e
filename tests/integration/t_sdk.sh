#!/bin/bash
# The plugin SDK as a third party sees it: `make install DESTDIR=...`
# installs the header, dmarcwatch-plugin.pc and the bundled plugins; the
# example plugin builds OUT OF TREE with pkg-config against that install
# and then works in the agent; uninstall leaves nothing but directories.
. "$(dirname "$0")/lib.sh"

root="$T/root"
make -s -C "$ROOT" install DESTDIR="$root" PREFIX=/usr/local >"$T/install.log" 2>&1; ok $? "make install DESTDIR=... succeeds"
for f in usr/local/bin/dmarcwatch usr/local/include/dmarcwatch/notifier.h \
	usr/local/lib/pkgconfig/dmarcwatch-plugin.pc usr/local/lib/dmarcwatch/plugins/slack.so \
	usr/local/lib/dmarcwatch/plugins/syslog.so usr/local/lib/dmarcwatch/plugins/webhook.so \
	usr/local/lib/dmarcwatch/plugins/exec.so usr/local/lib/dmarcwatch/plugins/email.so; do
	[ -f "$root/$f" ]; ok $? "installed: /$f"
done
is "$(stat -c %a "$root/usr/local/lib/dmarcwatch/plugins/syslog.so")" 644 "plugins are installed 0644 (the loader refuses group-writable ones)"

# The header stands alone: only <stddef.h>, <stdint.h>, <time.h>.
is "$(grep -c '^#include' "$root/usr/local/include/dmarcwatch/notifier.h")" 3 "notifier.h includes three headers"
like "$(grep '^#include' "$root/usr/local/include/dmarcwatch/notifier.h" | tr '\n' ' ')" \
	"#include <stddef.h> #include <stdint.h> #include <time.h>" "and they are the standard ones"

export PKG_CONFIG_PATH="$root/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
cflags=$(pkg-config --cflags dmarcwatch-plugin); ok $? "pkg-config knows dmarcwatch-plugin"
is "$(echo $cflags)" "-I$root/usr/local/include" "its --cflags point at the installed header"
like "$(pkg-config --variable=plugindir dmarcwatch-plugin)" "/usr/local/lib/dmarcwatch/plugins" "it names the plugin directory"

cp -r "$ROOT/plugins/example" "$T/example"
rm -f "$T/example/example.so"
make -s -C "$T/example" CFLAGS="-O2 -Wall -Wextra -Werror" >"$T/build.log" 2>&1; ok $? "the example plugin builds out of tree, warning-free"
[ -f "$T/example/example.so" ]; ok $? "example.so exists"
exported=$(nm -D --defined-only "$T/example/example.so" | awk '{print $3}' | grep -v '^_' | sort | tr '\n' ' ')
is "$exported" "dw_notifier_entry " "it exports exactly one symbol"

mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"
cat >"$T/c.yaml" <<YAML
state_dir: $T/state
plugin_dir: $root/usr/local/lib/dmarcwatch/plugins
accounts:
  - name: none
    source: maildir
    path: $T/Maildir
notifiers:
  - name: logbook
    plugin: $T/example/example.so
    path: $T/logbook.txt
  - name: local
    plugin: syslog
    server: udp://127.0.0.1:9
YAML
inst="$root/usr/local/bin/dmarcwatch"
out=$("$inst" check-config -c "$T/c.yaml" 2>&1); ok $? "the installed binary accepts the configuration"
like "$out" "(1 account, 2 notifiers)" "with the example and an installed plugin"
out=$("$inst" test-notify -c "$T/c.yaml" logbook 2>&1); ok $? "test-notify through the example plugin"
like "$out" "logbook: delivered" "delivered"
like "$(cat "$T/logbook.txt")" "test/info dmarcwatch test notification" "the file has the notification"
like "$(cat "$T/logbook.txt")" "attachment dmarcwatch-test.csv" "with its attachment noted"
printf '  - name: bad\n    plugin: %s\n    colour: red\n' "$T/example/example.so" >>"$T/c.yaml"
out=$("$inst" check-config -c "$T/c.yaml" 2>&1); is $? 1 "an unknown key for the example plugin is refused"
like "$out" "c.yaml:16:13: notifiers[2].colour: unknown key (example knows: path, fields)" "at its line, by the plugin"

make -s -C "$ROOT" uninstall DESTDIR="$root" PREFIX=/usr/local >"$T/uninstall.log" 2>&1; ok $? "make uninstall succeeds"
left=$(find "$root" -type f -o -type l)
is "$left" "" "nothing but directories remains"
done_testing
