#!/bin/bash
# Notifications through the agent: refused plugins stop the start-up with
# the reason; the outbox survives kill -9 (each notification delivered
# exactly once); a receiver down longer than max_age gives a dead letter;
# a hung notifier delays neither the others nor the mail work nor SIGTERM;
# SIGHUP re-makes the notifiers without losing the queue.
. "$(dirname "$0")/lib.sh"

md="$T/Maildir"
mkdir -p "$md/cur" "$md/new" "$md/tmp"
head_cfg() {
	cat <<YAML
state_dir: $T/state
plugin_dir: $DW_TEST_PLUGINS
accounts:
  - name: local
    source: maildir
    path: $md
    poll_interval: 1s
    archive_folder: Archive
notifiers:
YAML
}

# 1. A refused plugin is a configuration error: nothing starts.
{ head_cfg; printf '  - name: pager\n    plugin: bad_abi\n'; } >"$T/bad.yaml"
out=$("$DMARCWATCH" run --once -c "$T/bad.yaml" 2>&1); is $? 1 "a wrong-ABI plugin: run exits 1"
like "$out" "bad.yaml:11:13: notifiers[0].plugin: plugin bad_abi" "the error names the file, line and plugin"
like "$out" "built for notifier ABI 2, this agent speaks 1" "and says why"
out=$("$DMARCWATCH" check-config -c "$T/bad.yaml" 2>&1); is $? 1 "check-config refuses it too"
{ head_cfg; printf '  - name: pager\n    plugin: init_fails\n'; } >"$T/bad2.yaml"
out=$("$DMARCWATCH" check-config -c "$T/bad2.yaml" 2>&1); is $? 1 "a plugin whose init fails: check-config exits 1"
like "$out" "notifiers[0]: plugin init_fails: cannot reach the pager service" "with the plugin's reason"
out=$("$DMARCWATCH" test-notify -c "$T/bad2.yaml" pager 2>&1); is $? 1 "test-notify refuses the configuration too"

# 2. kill -9 with pending notifications: each delivered exactly once.
{ head_cfg; cat <<YAML; } >"$T/a.yaml"
  - name: rec
    plugin: recorder
    path: $T/rec.txt
    delay_ms: 300
    retry_min: 1s
YAML
out=$("$DMARCWATCH" check-config -c "$T/a.yaml"); ok $? "the recorder configuration is valid"
like "$out" "(1 account, 1 notifier)" "check-config counts the notifiers"
for i in 1 2 3 4 5 6 7 8 9 10; do
	"$DMARCWATCH" test-notify -c "$T/a.yaml" --queue rec >>"$T/queued.txt" || break
done
is "$(grep -c 'queued (entry' "$T/queued.txt")" 10 "10 notifications queued"
"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run1.log" &
pid=$!
wait_for 20 has_lines "$T/rec.txt" 3; ok $? "deliveries started"
sleep 0.1 # inside the next 300 ms call: not between a success and its record
kill -9 $pid
wait $pid 2>/dev/null
n1=$(nlines "$T/rec.txt")
[ "$n1" -ge 3 ] && [ "$n1" -lt 10 ]; ok $? "killed with some delivered ($n1) and some pending"
"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run2.log" &
pid=$!
wait_for 30 has_lines "$T/rec.txt" 10; ok $? "after the restart the rest arrives"
sleep 1
kill -TERM $pid
wait $pid; is $? 0 "SIGTERM: clean exit"
is "$(cut -f1 "$T/rec.txt" | sort -u | wc -l)" 10 "all 10 notifications arrived"
is "$(nlines "$T/rec.txt")" 10 "each exactly once"
is "$("$DMARCWATCH" outbox -c "$T/a.yaml" --state pending | wc -l)" 0 "nothing pending in the outbox"
is "$("$DMARCWATCH" outbox -c "$T/a.yaml" --state delivered | wc -l)" 10 "10 delivered entries kept for audit"
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run3.log"
is "$(nlines "$T/rec.txt")" 10 "another run sends nothing again"

# 3. A receiver down for longer than max_age: a dead letter, logged once.
{ head_cfg; cat <<YAML; } >"$T/down.yaml"
  - name: down
    plugin: recorder
    path: $T/down.txt
    retry_first: 1000
    retry_min: 1s
    max_age: 3s
YAML
out=$("$DMARCWATCH" test-notify -c "$T/down.yaml" --wait 20 down 2>&1); is $? 1 "receiver down past max_age: exit 1"
like "$out" "still failing after" "the give-up is logged"
like "$out" "not delivered: recorder: told to retry" "with the last error"
is "$(printf '%s\n' "$out" | grep -c 'giving up')" 1 "logged once"
json=$("$DMARCWATCH" outbox -c "$T/down.yaml" --state dead --format json)
is "$(jget "$json" 'd["state"]')" dead "the outbox lists it as dead"
[ "$(jget "$json" 'd["attempts"]')" -ge 2 ]; ok $? "after several attempts"

# 4. A hung notifier: the other notifier, the mail and SIGTERM are not held up.
{ head_cfg; cat <<YAML; } >"$T/slow.yaml"
  - name: slow
    plugin: slow
    path: $T/slow.txt
    sleep: 60
    timeout: 1s
  - name: fast
    plugin: recorder
    path: $T/fast.txt
YAML
"$DMARCWATCH" test-notify -c "$T/slow.yaml" --queue slow >/dev/null
"$DMARCWATCH" run -c "$T/slow.yaml" 2>"$T/slow.log" &
pid=$!
wait_for 5 grep -q 'started\|one pass' "$T/slow.log"
sleep 0.5
start=$SECONDS
"$DMARCWATCH" test-notify -c "$T/slow.yaml" --queue fast >/dev/null
wait_for 10 has_lines "$T/fast.txt" 1; ok $? "the fast notifier delivers while slow hangs ($((SECONDS - start)) s)"
python3 tests/integration/mkmail.py "$T/mails" >/dev/null
cp "$(ls "$T"/mails/*.eml | head -1)" "$md/new/1700000001.M1.test"
wait_for 10 grep -q 'verdict=' "$T/slow.log"; ok $? "mail is processed while the notifier hangs"
wait_for 10 grep -q 'timed out: the plugin did not return within 1 s' "$T/slow.log"; ok $? "the hung call is reported as timed out"
t0=$(date +%s%N)
kill -TERM $pid
wait $pid; st=$?
ms=$((($(date +%s%N) - t0) / 1000000))
is $st 0 "SIGTERM with a hung plugin: exit 0"
[ $ms -lt 10000 ]; ok $? "SIGTERM: stopped in $ms ms (< 10 s)"
like "$(cat "$T/slow.log")" "still running at shutdown; it is abandoned" "the abandoned call is logged"

# 5. SIGHUP re-makes the notifiers; the queue survives.
{ head_cfg; cat <<YAML; } >"$T/hup.yaml"
  - name: rec
    plugin: recorder
    path: $T/hup.txt
    retry_first: 1000
    retry_min: 1s
YAML
"$DMARCWATCH" test-notify -c "$T/hup.yaml" --queue rec >/dev/null
"$DMARCWATCH" run -c "$T/hup.yaml" 2>"$T/hup.log" &
pid=$!
wait_for 10 grep -q 'attempt 1 failed' "$T/hup.log"; ok $? "before the reload: failing"
sed -i 's/retry_first: 1000/retry_first: 0/' "$T/hup.yaml"
kill -HUP $pid
wait_for 15 has_lines "$T/hup.txt" 1; ok $? "after SIGHUP the queued notification is delivered"
like "$(cat "$T/hup.log")" "configuration reloaded: 1 account(s), 1 notifier(s)" "the reload is logged"
kill -TERM $pid
wait $pid

# 6. A notifier renamed away by a reload: its queued notification is kept
# (warned about, not tried, not dead-lettered before 24 h) and delivered
# once the name comes back.
{ head_cfg | sed "s|^state_dir: .*|state_dir: $T/state6|"; cat <<YAML; } >"$T/ren.yaml"
  - name: alpha
    plugin: recorder
    path: $T/ren.txt
    retry_first: 1000
    retry_min: 1s
    retry_max: 1s
YAML
"$DMARCWATCH" run -c "$T/ren.yaml" 2>"$T/ren.log" &
pid=$!
wait_for 10 grep -q 'started' "$T/ren.log"
"$DMARCWATCH" test-notify -c "$T/ren.yaml" --queue alpha >/dev/null; ok $? "queued for alpha"
wait_for 10 grep -q 'notifier alpha: entry 1 attempt 1 failed' "$T/ren.log"; ok $? "alpha is tried and fails"
sed -i 's/name: alpha/name: beta/' "$T/ren.yaml"
kill -HUP $pid
wait_for 10 grep -q "no longer configured" "$T/ren.log"; ok $? "after renaming alpha away: a warning"
like "$(cat "$T/ren.log")" "1 notification(s) queued for notifier 'alpha', which is no longer configured: they stay queued for up to 24 h in case it comes back (rename it back, or \`dmarcwatch outbox --state pending\` to see them), then are dead-lettered" \
	"the warning says how many, for how long and what to do"
json=$("$DMARCWATCH" outbox -c "$T/ren.yaml" --format json)
is "$(printf '%s\n' "$json" | wc -l)" 1 "one entry in the outbox"
is "$(jget "$json" 'd["notifier"] + " " + d["state"]')" "alpha pending" "it is still pending for alpha"
tries=$(jget "$json" 'd["attempts"]')
sleep 3 # alpha retried every second; nobody tries it now
json=$("$DMARCWATCH" outbox -c "$T/ren.yaml" --format json)
is "$(jget "$json" 'd["state"] + " " + str(d["attempts"])')" "pending $tries" "not tried while alpha is gone"
sed -i -e 's/name: beta/name: alpha/' -e 's/retry_first: 1000/retry_first: 0/' "$T/ren.yaml"
kill -HUP $pid
wait_for 15 has_lines "$T/ren.txt" 1; ok $? "alpha is back after SIGHUP: the notification is delivered"
sleep 2
is "$(nlines "$T/ren.txt")" 1 "exactly once"
json=$("$DMARCWATCH" outbox -c "$T/ren.yaml" --format json)
is "$(jget "$json" 'd["notifier"] + " " + d["state"]')" "alpha delivered" "the outbox says delivered"
is "$(grep -c "no longer configured" "$T/ren.log")" 1 "warned once, at the reload that removed alpha"
is "$(grep -c "giving up\|dead letter" "$T/ren.log")" 0 "nothing was dead-lettered"
kill -TERM $pid
wait $pid; is $? 0 "SIGTERM: clean exit"
done_testing
