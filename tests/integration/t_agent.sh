#!/bin/bash
# The agent against a real Dovecot over TCP: verdicts, folders, totals,
# idempotence, UIDVALIDITY change, IDLE, kill -9 crash safety, a failing
# account beside a working one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dovecot.sh"
if ! dovecot_available; then
	skip "$DOVECOT_WHY"
	done_testing
	exit 0
fi
dovecot_start "$T/dc" --user reports --pass 's3cret pass' || { ok 1 "dovecot starts"; done_testing; exit 1; }

printf '%s\n' "$DOVECOT_PASS" >"$T/pass"
chmod 600 "$T/pass"
printf 'wrong\n' >"$T/badpass"
chmod 600 "$T/badpass"

# config STATE FOLDER MODE [extra account yaml]
config() {
	cat <<YAML
state_dir: $1
timezone: UTC
log:
  level: info
accounts:
  - name: test
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none
    allow_plaintext: true
    username: $DOVECOT_USER
    password_file: $T/pass
    folder: $2
    archive_folder: Archive
    invalid_folder: Invalid
    untrusted_folder: Untrusted
    other_folder: Other
    mode: $3
    poll_interval: 1m
    trust:
      authserv_id: [mx.test.example]
      require: dmarc
${4:-}
YAML
}
total() { # total DB -> messages summed over all rows
	"$DMARCWATCH" report --db "$1" --by reporter --format json |
		python3 -c 'import json,sys; print(sum(json.loads(l)["messages"] for l in sys.stdin))'
}

python3 tests/integration/mkmail.py "$T/mails" >"$T/expect.json"
want_msgs=$(jget "$(cat "$T/expect.json")" 'd["messages"]')
imap_cmd create Reports
imap_cmd append Reports "$T"/mails/*.eml

config "$T/state" Reports poll >"$T/a.yaml"
out=$("$DMARCWATCH" check-config -c "$T/a.yaml" 2>&1); ok $? "check-config accepts the test configuration"
like "$out" "configuration OK" "check-config says so"

"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run1.log"; ok $? "run --once: exit 0"
is "$(grep -c 'verdict=' "$T/run1.log")" 8 "one log line per message"
is "$(total "$T/state/dmarcwatch.db")" "$want_msgs" "report totals equal the seeded reports ($want_msgs messages)"
is "$(imap_cmd count Reports)" 0 "the watched folder is empty"
is "$(imap_cmd count Archive)" 5 "5 stored reports in Archive"
is "$(imap_cmd count Invalid)" 1 "the malformed report in Invalid"
is "$(imap_cmd count Untrusted)" 1 "the spoofed report in Untrusted"
is "$(imap_cmd count Other)" 1 "the human mail in Other"
like "$(grep 'verdict=untrusted' "$T/run1.log")" "mx.test.example" "the untrusted verdict says which server was expected"
like "$(grep 'verdict=invalid' "$T/run1.log")" "line 5" "the invalid verdict gives the parse error"
if grep -q "$DOVECOT_PASS" "$T/run1.log"; then ok 1 "the password never appears in the log"; else ok 0 "the password never appears in the log"; fi

"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run2.log"; ok $? "second run --once: exit 0"
is "$(grep -c 'verdict=' "$T/run2.log")" 0 "the second run processes nothing"
is "$(total "$T/state/dmarcwatch.db")" "$want_msgs" "totals unchanged"
is "$(imap_cmd count Archive)" 5 "Archive unchanged"

# UIDVALIDITY change: recreate the folder with the same reports.
uv1=$(imap_cmd uidvalidity Reports)
imap_cmd delete Reports
imap_cmd create Reports
imap_cmd append Reports "$T"/mails/google.eml "$T"/mails/yahoo.eml
uv2=$(imap_cmd uidvalidity Reports)
[ "$uv1" != "$uv2" ]; ok $? "recreating the folder changed its UIDVALIDITY ($uv1 -> $uv2)"
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run3.log"; ok $? "run after the UIDVALIDITY change: exit 0"
like "$(cat "$T/run3.log")" "UIDVALIDITY" "the change is logged"
is "$(grep -c 'verdict=duplicate' "$T/run3.log")" 2 "the re-sent reports are duplicates"
is "$(total "$T/state/dmarcwatch.db")" "$want_msgs" "no double counting after the UIDVALIDITY change"

# A failing account does not stop the other one.
config "$T/state2" Reports poll "  - name: broken
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none
    allow_plaintext: true
    username: $DOVECOT_USER
    password_file: $T/badpass
    folder: INBOX" >"$T/b.yaml"
imap_cmd append Reports "$T"/mails/microsoft.eml
"$DMARCWATCH" run --once -c "$T/b.yaml" 2>"$T/run4.log"; is $? 1 "run --once with a failing account: exit 1"
like "$(grep 'account=broken' "$T/run4.log")" "login failed" "the failing account's error says the login failed"
is "$(grep -c 'account=test uid=' "$T/run4.log")" 1 "the working account was still processed"

# IDLE: a new report appended while the agent waits is stored within seconds.
config "$T/state3" Reports idle >"$T/c.yaml"
"$DMARCWATCH" run -c "$T/c.yaml" 2>"$T/run5.log" &
agent=$!
for _ in $(seq 50); do grep -q 'pass done\|verdict=' "$T/run5.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
before=$(grep -c 'verdict=' "$T/run5.log")
imap_cmd append Reports "$T"/mails/inline.eml
for _ in $(seq 80); do
	[ "$(grep -c 'verdict=' "$T/run5.log")" -gt "$before" ] && break
	sleep 0.1
done
[ "$(grep -c 'verdict=' "$T/run5.log")" -gt "$before" ]; ok $? "IDLE: an appended report is processed within 8 s"
# SIGHUP with a broken configuration: refused, the old one stays in force.
cp "$T/c.yaml" "$T/c.good"
printf 'bogus_key: 1\n' >>"$T/c.yaml"
kill -HUP $agent
for _ in $(seq 50); do grep -q 'keeping the old one' "$T/run5.log" && break; sleep 0.1; done
like "$(cat "$T/run5.log")" "bogus_key: unknown key" "SIGHUP: the new configuration's error is logged with its position"
like "$(cat "$T/run5.log")" "keeping the old one" "SIGHUP: the old configuration stays in force"
before=$(grep -c 'verdict=' "$T/run5.log")
imap_cmd append Reports "$T"/mails/forwarded.eml
for _ in $(seq 80); do [ "$(grep -c 'verdict=' "$T/run5.log")" -gt "$before" ] && break; sleep 0.1; done
[ "$(grep -c 'verdict=' "$T/run5.log")" -gt "$before" ]; ok $? "after a refused reload the agent still works"
cp "$T/c.good" "$T/c.yaml"
kill -HUP $agent
for _ in $(seq 50); do grep -q 'configuration reloaded' "$T/run5.log" && break; sleep 0.1; done
like "$(cat "$T/run5.log")" "configuration reloaded" "SIGHUP with a good configuration reloads it"
kill -0 $agent; ok $? "the agent is still running after two reloads"
kill -TERM $agent
wait $agent; is $? 0 "SIGTERM: the agent exits 0"
like "$(tail -3 "$T/run5.log")" "stopping" "SIGTERM is logged"

# kill -9 during a 200-message ingest, several times: totals stay exact.
python3 tests/integration/mkmail.py "$T/bulk" --bulk 200 >"$T/bulk.json"
want_bulk=$(jget "$(cat "$T/bulk.json")" 'd["messages"]')
imap_cmd create Bulk
imap_cmd append Bulk "$T"/bulk/*.eml
config "$T/state4" Bulk poll >"$T/d.yaml"
for n in 10 60 120; do
	"$DMARCWATCH" run --once -c "$T/d.yaml" 2>"$T/kill$n.log" &
	pid=$!
	for _ in $(seq 200); do
		[ "$(grep -c 'verdict=' "$T/kill$n.log" 2>/dev/null)" -ge "$n" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.01
	done
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
done
"$DMARCWATCH" run --once -c "$T/d.yaml" 2>"$T/kill-final.log"; ok $? "after three kill -9, a last run completes"
is "$(total "$T/state4/dmarcwatch.db")" "$want_bulk" "totals exact after kill -9 ($want_bulk messages in 200 reports)"
is "$(imap_cmd count Bulk)" 0 "every bulk message left the watched folder"
n_arch=$(sqlite3 "$T/state4/dmarcwatch.db" "select count(*) from messages where verdict in ('stored','duplicate')")
is "$n_arch" 200 "200 verdicts recorded, none twice"
dovecot_stop
done_testing
