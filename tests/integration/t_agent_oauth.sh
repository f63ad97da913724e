#!/bin/bash
# XOAUTH2 against a real Dovecot (oauth2 passdb) and a local token endpoint,
# and the agent's recovery when the server goes away in the middle of a pass:
# it reconnects, refreshes a refused token, and finishes with exact totals.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dovecot.sh"
if ! dovecot_available; then
	skip "$DOVECOT_WHY"
	done_testing
	exit 0
fi
python3 tests/integration/oauth_server.py --port-file "$T/oport" --log "$T/oauth.log" --user reports \
	>/dev/null 2>"$T/oauth.err" &
for _ in $(seq 100); do [ -s "$T/oport" ] && break; sleep 0.05; done
OAUTH_URL="http://127.0.0.1:$(cat "$T/oport")"
dovecot_start "$T/dc" --user reports --pass unused-plain-pass --oauth2 "$OAUTH_URL/introspect" ||
	{ ok 1 "dovecot starts"; done_testing; exit 1; }

printf 'dwtest-client-secret\n' >"$T/secret"
printf 'dwtest-refresh-token\n' >"$T/refresh"
chmod 600 "$T/secret" "$T/refresh"
cat >"$T/a.yaml" <<YAML
state_dir: $T/state
log:
  level: debug
accounts:
  - name: gmail
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none
    allow_plaintext: true
    username: reports
    auth: xoauth2
    oauth2:
      token_url: $OAUTH_URL/token
      client_id: dwtest-client.apps.example
      client_secret_file: $T/secret
      refresh_token_file: $T/refresh
    folder: INBOX
    archive_folder: Archive
    mode: poll
    poll_interval: 1s
    batch_bytes: 64KiB    # many round trips, so the server can vanish mid-pass
YAML
issued() { grep -c '"result": "issued"' "$T/oauth.log" 2>/dev/null || echo 0; }
total() {
	"$DMARCWATCH" report --db "$T/state/dmarcwatch.db" --by reporter --format json |
		python3 -c 'import json,sys; print(sum(json.loads(l)["messages"] for l in sys.stdin))'
}

python3 tests/integration/mkmail.py "$T/mails" >/dev/null
dovecot_seed "$T/mails/google.eml" "$T/mails/microsoft.eml"
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run1.log"; ok $? "XOAUTH2: run --once logs in with a refreshed access token"
is "$(issued)" 1 "one access token was issued from the refresh token"
is "$(total)" 3048 "both reports stored"
if grep -q 'dwtest-refresh-token\|dwtest-client-secret\|dwtest-at-' "$T/run1.log"; then
	ok 1 "no token or secret in the log"
else
	ok 0 "no token or secret in the log"
fi

# The refresh token is revoked: a clear error that says what to do.
curl -s -X POST "$OAUTH_URL/admin/revoke-refresh" >/dev/null
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run2.log"; is $? 1 "revoked refresh token: run --once exits 1"
like "$(cat "$T/run2.log")" "refresh token" "the error names the refresh token"
curl -s -X POST "$OAUTH_URL/admin/restore-refresh" >/dev/null

# A long-running agent; 400 messages arrive; Dovecot stops in the middle of
# the pass, the access token is revoked meanwhile, Dovecot comes back.
python3 tests/integration/mkmail.py "$T/bulk" --bulk 400 --pad 100000 >"$T/bulk.json"
want=$(( 3048 + $(jget "$(cat "$T/bulk.json")" 'd["messages"]') ))
"$DMARCWATCH" run -c "$T/a.yaml" 2>"$T/run3.log" &
agent=$!
sleep 1
before=$(issued)
dovecot_seed "$T"/bulk/*.eml
for _ in $(seq 300); do
	[ "$(grep -c 'verdict=' "$T/run3.log")" -ge 20 ] && break
	sleep 0.01
done
# Kill the server hard, sessions included (a crash, not a clean shutdown).
dovecot_crash
# A session killed while it held the maildir's dovecot-uidlist.lock leaves
# it behind, and a restarted Dovecot waits up to 2 minutes before it
# overrides a stale lock. Clear it as the restart of a crashed server would.
find "$DOVECOT_MAILDIR" -name '*.lock' -delete 2>/dev/null
stopped_at=$(grep -c 'verdict=' "$T/run3.log")
curl -s -X POST "$OAUTH_URL/admin/revoke-access" >/dev/null
sleep 2
dovecot_restart
for _ in $(seq 600); do
	[ "$(grep -c 'verdict=' "$T/run3.log")" -ge 400 ] && break
	sleep 0.1
done
ok $([ "$stopped_at" -lt 400 ] && echo 0 || echo 1) "Dovecot was stopped in the middle of the pass (after $stopped_at messages)"
like "$(cat "$T/run3.log")" "retrying in" "the lost connection is logged with its backoff"
is "$(grep -c 'verdict=' "$T/run3.log")" 400 "after the restart the agent reconnected and finished the pass" ||
	grep -v 'verdict=' "$T/run3.log" | tail -15 | sed 's/^/#   /'
cp "$T/run3.log" "${DW_KEEP_LOG:-/dev/null}" 2>/dev/null
[ "$(issued)" -gt "$before" ]; ok $? "the refused access token was refreshed ($(issued) issued)"
kill -TERM $agent
wait $agent; is $? 0 "SIGTERM: exit 0"
is "$(total)" "$want" "totals exact ($want messages)"
is "$(imap_cmd count INBOX)" 0 "every message was moved out of INBOX"
dovecot_stop
done_testing
