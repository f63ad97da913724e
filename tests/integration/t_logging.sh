#!/bin/bash
# Logging: levels on stderr (log.level, -v), and log.to: syslog through
# syslog(3), received on a real unix datagram socket at /dev/log (facility
# mail, the right priorities, the pid, nothing left on stderr). /dev/log is
# borrowed only when nothing is there (no syslog daemon) and we are root.
. "$(dirname "$0")/lib.sh"
export DMARCWATCH_ALLOW_ROOT=1

md="$T/Maildir"
seed_maildir "$md" "$T/mails" >/dev/null
conf() { # conf NAME LEVEL TO
	cat >"$T/$1.yaml" <<YAML
state_dir: $T/state-$1
log:
  level: $2
  to: $3
accounts:
  - name: local
    source: maildir
    path: $md
YAML
}

# stderr and levels. A second run over the same maildir has no mail, so its
# "pass done" line is at debug level.
conf info info stderr
"$DMARCWATCH" run --once -c "$T/info.yaml" 2>"$T/info.log"; ok $? "stderr: run --once exits 0"
is "$(grep -c 'dmarcwatch\[info\]: account=local uid=' "$T/info.log")" 8 "stderr, info: one line per message"
like "$(head -1 "$T/info.log")" "Z dmarcwatch[info]: " "stderr: a UTC timestamp and the level on every line"
"$DMARCWATCH" run --once -c "$T/info.yaml" 2>"$T/info2.log"
is "$(grep -c '\[debug\]' "$T/info2.log")" 0 "info level: no debug lines"
"$DMARCWATCH" run --once -v -c "$T/info.yaml" 2>"$T/debug.log"
like "$(cat "$T/debug.log")" "dmarcwatch[debug]: account=local: pass done: 0 message(s)" "-v: one level more (debug)"
conf warn warning stderr
"$DMARCWATCH" run --once -c "$T/warn.yaml" 2>"$T/warn.log"; ok $? "warning level: run exits 0"
is "$(wc -c <"$T/warn.log")" 0 "warning level: a healthy pass writes nothing"

# syslog(3)
if [ "$(id -u)" -ne 0 ] || [ -e /dev/log ]; then
	skip "log.to: syslog: /dev/log is in use (a syslog daemon) or we are not root; not replaced"
	done_testing
	exit
fi
cat >"$T/recv.py" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
PY
python3 "$T/recv.py" "$T/syslog.txt" &
recv=$!
trap 'kill $recv 2>/dev/null; rm -f /dev/log; rm -rf "$T"' EXIT
wait_for 10 test -e "$T/syslog.txt.ready"; ok $? "a receiver on /dev/log"
rm -rf "$T/state-info"
conf sys info syslog
"$DMARCWATCH" run --once -c "$T/sys.yaml" 2>"$T/sys.log" &
pid=$!
wait $pid; ok $? "log.to: syslog: run --once exits 0"
wait_for 5 sh -c "[ \$(grep -c 'uid=' '$T/syslog.txt') -ge 8 ]"; ok $? "syslog: the 8 message lines arrived"
is "$(wc -c <"$T/sys.log")" 0 "syslog: nothing on stderr"
line=$(grep -m1 'uid=1 ' "$T/syslog.txt")
# LOG_MAIL (2) * 8 + LOG_INFO (6) = 22; RFC 3164 as glibc writes it: <PRI>TIMESTAMP ident[pid]: msg
[[ "$line" =~ ^\<22\>[A-Z][a-z]{2}\ [\ 0-9][0-9]\ [0-9:]{8}\ dmarcwatch\[$pid\]:\ account=local\ uid=1\ verdict= ]]
ok $? "syslog: facility mail, priority info, ident dmarcwatch[pid] ($line)"
grep -q 'verdict=invalid' "$T/syslog.txt"; ok $? "syslog: the invalid mail's line is there too"
# A failing account: its maildir is missing (a warning, retried: facility mail, LOG_WARNING: 16 + 4 = 20).
cat >"$T/bad.yaml" <<YAML
state_dir: $T/state-bad
log:
  to: syslog
accounts:
  - name: gone
    source: maildir
    path: $T/no-such-maildir
YAML
"$DMARCWATCH" run --once -c "$T/bad.yaml" 2>"$T/bad.log"; is $? 1 "a failing account: exit 1"
wait_for 5 grep -q '^<20>.*account=gone: maildir: .*no-such-maildir' "$T/syslog.txt"
ok $? "syslog: the failing account at priority warning (<20>), naming the maildir"
done_testing
