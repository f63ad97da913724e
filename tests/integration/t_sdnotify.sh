#!/bin/bash
# systemd's readiness protocol (Type=notify) as the agent speaks it: a real
# unix datagram socket in $NOTIFY_SOCKET receives READY=1 once the agent is
# up, RELOADING=1 + MONOTONIC_USEC and READY=1 again around a SIGHUP (also
# when the new configuration is refused), STOPPING=1 on SIGTERM. Without
# NOTIFY_SOCKET nothing is sent and nothing is logged about it.
. "$(dirname "$0")/lib.sh"
export DMARCWATCH_ALLOW_ROOT=1

mkdir -p "$T/md/cur" "$T/md/new" "$T/md/tmp"
cat >"$T/a.yaml" <<YAML
state_dir: $T/state
accounts:
  - name: local
    source: maildir
    path: $T/md
    poll_interval: 1h
YAML

# The receiver: prints each datagram as one line (newlines as '|').
cat >"$T/recv.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        data, _ = s.recvfrom(4096)
        out.write(data.decode().replace("\n", "|") + "\n")
PY
python3 "$T/recv.py" "$T/notify.sock" "$T/msgs" &
recv=$!
wait_for 10 test -e "$T/msgs.ready"; ok $? "the notify socket listens"

has() { grep -q "$1" "$T/msgs" 2>/dev/null; }
NOTIFY_SOCKET="$T/notify.sock" "$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run.log" &
pid=$!
wait_for 20 has '^READY=1'; ok $? "READY=1 once the agent is up"
like "$(head -1 "$T/msgs")" "STATUS=watching 1 account(s)" "the first message carries a STATUS line"
is "$(nlines "$T/msgs")" 1 "nothing before READY=1"

kill -HUP $pid
wait_for 20 sh -c "[ \$(wc -l <'$T/msgs') -ge 3 ]"; ok $? "SIGHUP: two more messages"
l2=$(sed -n 2p "$T/msgs"); l3=$(sed -n 3p "$T/msgs")
like "$l2" "RELOADING=1" "SIGHUP: RELOADING=1 first"
[[ "$l2" =~ MONOTONIC_USEC=[0-9]+ ]]; ok $? "RELOADING=1 carries MONOTONIC_USEC (systemd 253+ wants it)"
like "$l3" "READY=1" "after the reload: READY=1 again"

# A broken configuration: refused, the old one kept, and still READY.
cp "$T/a.yaml" "$T/good.yaml"
printf 'state_dir: %s/state\naccounts: [\n' "$T" >"$T/a.yaml"
kill -HUP $pid
wait_for 20 sh -c "[ \$(wc -l <'$T/msgs') -ge 5 ]"; ok $? "SIGHUP with a broken file: two more messages"
like "$(sed -n 4p "$T/msgs")" "RELOADING=1" "broken reload: RELOADING=1"
like "$(sed -n 5p "$T/msgs")" "READY=1" "broken reload: READY=1 (the old configuration serves)"
like "$(sed -n 5p "$T/msgs")" "the last reload failed" "broken reload: STATUS says the reload failed"
cp "$T/good.yaml" "$T/a.yaml"

kill -TERM $pid
wait $pid; is $? 0 "SIGTERM: exit 0"
wait_for 5 has '^STOPPING=1'; ok $? "SIGTERM: STOPPING=1"
is "$(tail -1 "$T/msgs")" "STOPPING=1" "STOPPING=1 is the last message"

# A socket nobody listens on: one warning naming it, the agent still runs.
"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run2.log" &
pid2=$!
NOTIFY_SOCKET="$T/gone.sock" "$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run3.log" &
pid3=$!
wait_for 20 grep -q "started:" "$T/run3.log"; ok $? "an unreachable NOTIFY_SOCKET does not stop the agent"
kill -HUP $pid3
wait_for 20 grep -q "configuration reloaded" "$T/run3.log"; ok $? "... which still reloads"
kill -TERM $pid3; wait $pid3; is $? 0 "... and stops cleanly"
is "$(grep -c 'systemd notification' "$T/run3.log")" 1 "the failure is logged once, not on every message"
like "$(grep 'systemd notification' "$T/run3.log")" "$T/gone.sock" "the warning names the socket"
kill -TERM $pid2; wait $pid2
is "$(grep -c 'systemd notification' "$T/run2.log")" 0 "without NOTIFY_SOCKET: nothing about systemd"
kill $recv 2>/dev/null
done_testing
