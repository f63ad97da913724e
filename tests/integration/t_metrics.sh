#!/bin/bash
# Prometheus metrics from the agent: `run --once` over a Maildir writes
# metrics_file (node_exporter textfile convention) whose messages by verdict
# match the run's own log lines; then the agent as a daemon serves the same
# figures at http://127.0.0.1:PORT/metrics and refreshes them after the
# pass that picks up a new mail.
. "$(dirname "$0")/lib.sh"
export DMARCWATCH_ALLOW_ROOT=1

md="$T/Maildir"
mkdir -p "$T/textfile"
seed_maildir "$md" "$T/mails" >"$T/expect.json"
want_reports=$(jget "$(cat "$T/expect.json")" 'd["reports"]')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prom="$T/textfile/dmarcwatch.prom"
cat >"$T/a.yaml" <<YAML
state_dir: $T/state
metrics_file: textfile/dmarcwatch.prom
metrics_listen: 127.0.0.1:$port
accounts:
  - name: local
    source: maildir
    path: $md
    poll_interval: 1s
    archive_folder: Archive
    invalid_folder: Invalid
    untrusted_folder: Untrusted
    trust:
      authserv_id: mx.test.example
YAML
"$DMARCWATCH" check-config -c "$T/a.yaml" >"$T/check.out" 2>&1
ok $? "check-config accepts metrics_file and metrics_listen"

# --- run --once: the file ---------------------------------------------------
before=$(date +%s)
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run1.log"
ok $? "run --once exits 0"
after=$(date +%s)
ok "$([ -f "$prom" ]; echo $?)" "the metrics file was written"
is "$(stat -c %a "$prom" 2>/dev/null)" 644 "the file is mode 644"
is "$(ls -A "$T/textfile")" "dmarcwatch.prom" "no temporary file left beside it"

# value FILE SAMPLE: the value of one sample line (name and labels exactly).
value() { awk -v s="$2" 'index($0, s " ") == 1 { print substr($0, length(s) + 2) }' "$1"; }

judged=0
for v in stored duplicate not-a-report invalid untrusted; do
	n=$(grep -c "account=local uid=[0-9]* verdict=$v " "$T/run1.log")
	judged=$((judged + n))
	is "$(value "$prom" "dmarcwatch_messages_total{account=\"local\",verdict=\"$v\"}")" "$n" \
		"messages_total{verdict=$v} equals the log's $n line(s)"
done
ok "$([ "$judged" -gt 0 ]; echo $?)" "the run judged $judged message(s)"
is "$(value "$prom" dmarcwatch_reports_stored)" "$want_reports" "reports_stored equals the seeded reports"
is "$(value "$prom" dmarcwatch_duplicate_messages_total)" \
	"$(grep -c 'verdict=duplicate ' "$T/run1.log")" "duplicate_messages_total equals the log"
invalid=$(grep -c 'verdict=invalid ' "$T/run1.log")
sum=$(awk '/^dmarcwatch_parse_errors_total\{/ { s += $2 } END { print s + 0 }' "$prom")
is "$sum" "$invalid" "parse_errors_total over every reason class adds up to the invalid mails"
pass=$(value "$prom" 'dmarcwatch_last_successful_pass_timestamp_seconds{account="local"}')
ok "$([ -n "$pass" ] && [ "$pass" -ge "$before" ] && [ "$pass" -le "$after" ]; echo $?)" \
	"last successful pass ($pass) is during the run"
gen=$(value "$prom" dmarcwatch_metrics_generated_timestamp_seconds)
ok "$([ -n "$gen" ] && [ "$gen" -ge "$before" ] && [ "$gen" -le "$after" ]; echo $?)" \
	"generated timestamp ($gen) is during the run"
like "$(cat "$prom")" 'dmarcwatch_build_info{version="' "build_info is there"
like "$(cat "$prom")" "# TYPE dmarcwatch_messages_total counter" "families carry TYPE lines"

# Every line is a comment or NAME{LABELS} VALUE: what Prometheus would parse.
python3 - "$prom" >"$T/parse.out" 2>&1 <<'PY'
import re, sys
label = r'[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{%s(,%s)*\})? -?[0-9]+(\.[0-9]+)?$' % (label, label))
bad = [l for l in open(sys.argv[1]).read().split("\n")[:-1] if not l.startswith("# ") and not sample.match(l)]
for l in bad:
    print(l)
sys.exit(1 if bad else 0)
PY
ok $? "every line parses as exposition format 0.0.4"
[ -s "$T/parse.out" ] && sed 's/^/# /' "$T/parse.out"
# And by the Prometheus project's own parser, where installed (Debian:
# python3-prometheus-client, for the system python).
if /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null; then
	/usr/bin/python3 - "$prom" >"$T/pc.out" 2>&1 <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
fams = list(text_string_to_metric_families(text))
n = sum(len(f.samples) for f in fams)
lines = [l for l in text.split("\n") if l and not l.startswith("#")]
assert n == len(lines), "%d samples, %d lines" % (n, len(lines))
types = {f.name: f.type for f in fams}
assert types["dmarcwatch_messages"] == "counter", types
assert types["dmarcwatch_reports_stored"] == "gauge", types
stored = [s.value for s in next(f for f in fams if f.name == "dmarcwatch_messages").samples
          if s.labels == {"account": "local", "verdict": "stored"}]
print(int(stored[0]))
PY
	is "$(cat "$T/pc.out")" "$(grep -c 'verdict=stored ' "$T/run1.log")" \
		"prometheus_client parses the file: every line a sample, counters as counters, the same figures"
else
	skip "python3-prometheus-client is not installed for /usr/bin/python3"
fi

# --- the daemon: HTTP ---------------------------------------------------------
# get METHOD PATH: "STATUS\nHEADER: value...\n\nBODY" from the listener.
get() {
	python3 - "$port" "$1" "$2" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request(sys.argv[2], sys.argv[3])
r = c.getresponse()
print(r.status)
for k, v in r.getheaders():
    print("%s: %s" % (k, v))
print()
sys.stdout.write(r.read().decode())
PY
}
answers() { get GET /metrics >/dev/null 2>&1; }

"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/daemon.log" &
agent=$!
wait_for 10 answers
ok $? "the daemon answers on 127.0.0.1:$port"
# Its first pass (nothing new) is published; earlier answers may be 503.
fresh() { get GET /metrics 2>/dev/null | grep -q '^dmarcwatch_last_successful_pass_timestamp_seconds'; }
wait_for 10 fresh
r=$(get GET /metrics)
is "$(echo "$r" | head -1)" 200 "GET /metrics: 200"
like "$r" "Content-Type: text/plain; version=0.0.4; charset=utf-8" "GET /metrics: the 0.0.4 content type"
body=$(echo "$r" | sed '1,/^$/d')
is "$(echo "$body" | grep '^dmarcwatch_messages_total' | sort)" \
	"$(grep '^dmarcwatch_messages_total' "$prom" | sort)" "GET /metrics: the same message counts as the file"
h=$(get HEAD /metrics)
is "$(echo "$h" | head -1)" 200 "HEAD /metrics: 200"
is "$(echo "$h" | sed '1,/^$/d')" "" "HEAD /metrics: no body"
is "$(get GET /nope | head -1)" 404 "GET /nope: 404"
is "$(get POST /metrics | head -1)" 405 "POST /metrics: 405"

# A new mail (a copy of a stored one: a duplicate) shows after the next pass.
dup0=$(value "$prom" 'dmarcwatch_messages_total{account="local",verdict="duplicate"}')
stored_file=$(ls "$md/.Archive/cur" | head -1)
cp "$md/.Archive/cur/$stored_file" "$md/new/1800000000.M99.test"
grown() {
	get GET /metrics 2>/dev/null |
		grep -qx "dmarcwatch_messages_total{account=\"local\",verdict=\"duplicate\"} $((dup0 + 1))"
}
wait_for 15 grown
ok $? "after the next pass the scrape counts the new duplicate ($((dup0 + 1)))"
is "$(value "$prom" 'dmarcwatch_messages_total{account="local",verdict="duplicate"}')" "$((dup0 + 1))" \
	"... and so does the file"

kill -TERM "$agent"
wait "$agent"
ok $? "the daemon stops on SIGTERM and exits 0"
closed() { ! answers; }
ok "$(closed; echo $?)" "the port is closed after exit"

# A port already taken: the agent refuses to start and names the address.
# (SO_REUSEADDR: the scrapes above left connections in TIME_WAIT on it.)
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(30)' "$port" &
holder=$!
listening() {
	python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null
}
wait_for 5 listening
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/busy.log"
ok "$([ $? -ne 0 ]; echo $?)" "a taken port: run fails"
like "$(cat "$T/busy.log")" "metrics_listen 127.0.0.1:$port: cannot listen: Address already in use" \
	"a taken port: the message names the address"
kill "$holder" 2>/dev/null

# A first pass that takes long (here: a server that accepts and never
# greets, 30 s timeout) does not hide the figures: the agent publishes what
# the database holds at start, so the scrape is answered at once with the
# counts of the earlier run, not 503 until the pass ends.
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
conns = []
while True:
    c, _ = s.accept(); conns.append(c)' "$T/mute.port" &
mute=$!
wait_for 5 test -s "$T/mute.port"
echo pw >"$T/pass" && chmod 600 "$T/pass"
cat >>"$T/a.yaml" <<YAML
  - name: mute
    source: imap
    host: 127.0.0.1
    port: $(cat "$T/mute.port")
    tls: none
    allow_plaintext: true
    username: u
    password_file: $T/pass
    mode: poll
    timeout: 30s
YAML
"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/daemon2.log" &
agent=$!
wait_for 10 answers
r=$(get GET /metrics 2>&1)
is "$(echo "$r" | head -1)" 200 "a long first pass: GET /metrics answers 200 at once, not 503"
like "$r" "dmarcwatch_messages_total{account=\"local\",verdict=\"duplicate\"} $((dup0 + 1))" \
	"... with the figures the database already holds"
kill -TERM "$agent"
wait "$agent"
kill "$mute" 2>/dev/null
done_testing
