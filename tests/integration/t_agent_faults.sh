#!/bin/bash
# Faults from a scripted IMAP server: the connection dies in the middle of a
# message body (libetpan alone would spin forever there), a folder that
# cannot be selected. The agent reports them clearly and never hangs.
. "$(dirname "$0")/lib.sh"

python3 tests/integration/fake_imap.py --port-file "$T/port" --log "$T/imap.log" --mode cut-literal &
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
printf 'pw\n' >"$T/pass"
chmod 600 "$T/pass"
cat >"$T/a.yaml" <<YAML
state_dir: $T/state
accounts:
  - name: fake
    source: imap
    host: 127.0.0.1
    port: $(cat "$T/port")
    tls: none
    allow_plaintext: true
    username: u
    password_file: $T/pass
    mode: poll
    timeout: 10s
YAML
start=$(date +%s)
timeout -k 5 60 "$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run1.log"
rc=$?
took=$(( $(date +%s) - start ))
is "$rc" 1 "connection cut inside a message body: run --once exits 1 (not a hang: ${took}s)"
[ "$took" -lt 15 ]; ok $? "it gives up within the timeout (${took}s)"
like "$(cat "$T/run1.log")" "account=fake" "the error names the account"
like "$(cat "$T/imap.log")" "BODY.PEEK" "the server saw the body fetch it cut"
n=$(sqlite3 "$T/state/dmarcwatch.db" "select count(*) from messages" 2>/dev/null || echo 0)
is "$n" 0 "nothing was recorded for the cut message"
# A server that stalls in the middle of a body, with a 60 s timeout: a
# SIGTERM still ends the agent within its 10 s stop deadline (systemd's
# TimeoutStopSec is 15 s), saying why, with nothing recorded.
python3 tests/integration/fake_imap.py --port-file "$T/port2" --log "$T/imap2.log" --mode stall &
for _ in $(seq 100); do [ -s "$T/port2" ] && break; sleep 0.05; done
sed -e "s/port: .*/port: $(cat "$T/port2")/" -e "s/timeout: 10s/timeout: 60s/" -e "s|$T/state|$T/state2|" \
	"$T/a.yaml" >"$T/b.yaml"
"$DMARCWATCH" run -c "$T/b.yaml" 2>"$T/run2.log" &
pid=$!
wait_for 20 grep -q "BODY.PEEK" "$T/imap2.log"; ok $? "stall: the agent is inside the body fetch"
sleep 1
start=$(date +%s%N)
kill -TERM $pid
wait $pid
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
is "$rc" 1 "stall: SIGTERM ends the agent anyway (exit 1: not an orderly stop)"
[ "$ms" -ge 9000 ] && [ "$ms" -lt 12000 ]; ok $? "stall: it left at the 10 s deadline (${ms} ms), not after the 60 s timeout"
like "$(cat "$T/run2.log")" "not stopped within 10 s" "stall: the log says why it left"
n=$(sqlite3 "$T/state2/dmarcwatch.db" "select count(*) from messages" 2>/dev/null || echo 0)
is "$n" 0 "stall: nothing was recorded for the half-fetched message"
done_testing
