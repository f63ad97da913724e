#!/bin/bash
# t_notify_webhook.sh - the webhook notifier through `dmarcwatch test-notify`
# against a recording HTTP server (http_receiver.py): the JSON body is the
# notification given, headers (idempotency key, timestamp, HMAC-SHA256
# signature verified with Python's hmac, extra headers), retry on 500 and
# 429 (Retry-After), permanent failure on 400, the URL as a secret, and
# secrets never in any output.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"

wait_for() { # wait_for FILE [SECONDS]
	local i=0 max=$((${2:-10} * 20))
	while [ ! -e "$1" ] && [ $i -lt $max ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -e "$1" ]
}

if ! "$DMARCWATCH" test-notify --help >/dev/null 2>&1; then
	skip "dmarcwatch test-notify is not available"
	done_testing
	exit
fi

SECRET='s3cr3t-hmac-key-7f1c2e'
printf '%s\n' "$SECRET" >"$T/secret"
TOKEN='T0KEN-in-the-url-93b1'

echo '{"rules": [], "default": {"status": 200, "body": "ok"}}' >"$T/script.json"
python3 "$ROOT/tests/integration/http_receiver.py" --port-file "$T/port" --dir "$T/req" \
	--script "$T/script.json" >/dev/null 2>"$T/receiver.err" &
wait_for "$T/port" || echo "# receiver did not start: $(cat "$T/receiver.err")"
PORT=$(tr -d '\n' <"$T/port")
BASE=http://127.0.0.1:$PORT

# script JSON: the receiver's answers from now on (it re-reads the file).
script() {
	echo "$1" >"$T/script.json.new"
	mv "$T/script.json.new" "$T/script.json"
}

# config YAML-LINES...: the config for one run (fresh state dir each time).
run=0
config() {
	run=$((run + 1))
	CFG=$T/cfg.$run.yaml
	mkdir -p "$T/state.$run"
	{
		echo "state_dir: $T/state.$run"
		echo "plugin_dir: $DW_PLUGIN_BUILD"
		echo "accounts:"
		echo "  - name: none"
		echo "    source: maildir"
		echo "    path: $T/Maildir"
		echo "notifiers:"
		echo "  - name: hook"
		echo "    plugin: webhook"
		echo "    retry_min: 1s"
		echo "    timeout: 5s"
		for l in "$@"; do echo "    $l"; done
	} >"$CFG"
}

# notify [ARGS...]: test-notify notifier hook; sets RC, OUT, ERR; keeps all output.
notify() {
	"$DMARCWATCH" test-notify -c "$CFG" "$@" hook >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
	cat "$T/out" "$T/err" >>"$T/all-output"
}

nreq() { # how many requests were recorded
	local n=0
	while [ -e "$T/req/$((n + 1)).json" ]; do n=$((n + 1)); done
	echo "$n"
}
req() { cat "$T/req/$1.json"; } # the record of request N
pj() { jget "$@" 2>/dev/null; }

# verify N SECRET: "ok" when request N's signature is HMAC-SHA256(SECRET, ts "." body).
cat >"$T/verify.py" <<'EOF'
import hashlib, hmac, json, sys
rec = json.load(open(sys.argv[1] + ".json"))
body = open(sys.argv[1] + ".body", "rb").read()
h = rec["headers"]
ts, sig = h.get("x-dmarcwatch-timestamp", ""), h.get("x-dmarcwatch-signature", "")
mac = hmac.new(sys.argv[2].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
print("ok" if hmac.compare_digest("sha256=" + mac, sig) else "bad: %r" % sig)
EOF
verify() { python3 "$T/verify.py" "$T/req/$1" "$2"; }

# same INPUT N: the body of request N has every member of INPUT, equal.
cat >"$T/same.py" <<'EOF'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
bad = [k for k in want if got.get(k) != want[k]]
if got.get("schema") != "dmarcwatch.notification/1":
    bad.append("schema")
print("same" if not bad else "differs in: " + ", ".join(bad))
EOF
same() { python3 "$T/same.py" "$1" "$T/req/$2.body"; }

cat >"$T/alert.json" <<'EOF'
{"kind": "alert", "severity": "critical", "time": "2026-11-23T09:00:00Z",
 "idempotency_key": "alert-key-1", "rule": "fail-rate", "domain": "example.com",
 "title": "example.com: DMARC fail rate 12.5 % > 5 %",
 "body": "12.5 % of 1234 messages failed.\nTop source: 192.0.2.1 (\"mx\") \u00e9",
 "summary": "*12.5 %* failed", "runbook": "https://wiki.example/dmarc",
 "fields": [{"name": "messages", "value": "1234"}, {"name": "fail_rate", "value": "12.5 %"}],
 "table": {"columns": ["source_ip", "messages"], "rows": [["192.0.2.1", "1000"], ["198.51.100.7", "234"]]},
 "attachment": {"filename": "dmarc.csv", "media_type": "text/csv", "size": 13,
                "data_base64": "c291cmNlLG4KYSwxCg=="}}
EOF
sed -e 's/alert-key-1/alert-key-2/' "$T/alert.json" >"$T/alert2.json"
sed -e 's/alert-key-1/alert-key-3/' "$T/alert.json" >"$T/alert3.json"

# --- 1. delivered: body, headers, signature ---------------------------------
config "url: $BASE/hook" "secret_file: $T/secret" 'header: ["X-Team: mail", "X-Env: test"]'
notify --json "$T/alert.json"
is "$RC" 0 "200: delivered (exit 0)"
like "$OUT" "hook: delivered (entry 1, attempt 1," "200: test-notify reports it"
is "$(nreq)" 1 "200: one request"
R=$(req 1)
is "$(pj "$R" 'd["method"] + " " + d["path"]')" "POST /hook" "200: POST to the URL's path"
is "$(pj "$R" 'd["headers"]["content-type"]')" application/json "200: Content-Type: application/json"
is "$(same "$T/alert.json" 1)" same "200: the body is the notification given (every member equal)"
is "$(pj "$(cat "$T/req/1.body")" 'd["attempt"]')" 1 "200: attempt 1 in the body"
is "$(pj "$R" 'd["headers"]["x-dmarcwatch-idempotency-key"]')" alert-key-1 "200: X-Dmarcwatch-Idempotency-Key"
is "$(pj "$R" 'abs(int(d["headers"]["x-dmarcwatch-timestamp"]) - __import__("time").time()) < 120')" True \
	"200: X-Dmarcwatch-Timestamp is now (UNIX seconds)"
like "$(pj "$R" 'd["headers"]["x-dmarcwatch-signature"]')" "sha256=" "200: X-Dmarcwatch-Signature: sha256=..."
is "$(verify 1 "$SECRET")" ok "200: the signature verifies with hmac (secret, timestamp.body)"
like "$(verify 1 wrong-secret)" bad "200: and not with another secret"
is "$(pj "$R" 'd["headers"]["x-team"] + "|" + d["headers"]["x-env"]')" "mail|test" "200: extra header lines sent"
like "$(pj "$R" 'd["headers"]["user-agent"]')" "dmarcwatch/" "200: User-Agent dmarcwatch/VERSION"
is "$(pj "$R" '"expect" in d["headers"]')" False "200: no Expect: 100-continue"
is "$(pj "$(cat "$T/req/1.body")" 'd["attachment"]["data_base64"]')" c291cmNlLG4KYSwxCg== \
	"200: attachment bytes included by default"

# --- 2. 500, then 200: retried once, same key, new signature ---------------
script '{"rules": [{"path": "/hook", "times": 1, "status": 500, "body": "oops, try later"}]}'
notify --json "$T/alert2.json" --wait 20
is "$RC" 0 "500 then 200: delivered"
like "$OUT" "attempt 2" "500 then 200: on the second attempt"
is "$(nreq)" 3 "500 then 200: exactly two more requests"
like "$ERR" "webhook POST: HTTP 500: oops, try later" "500 then 200: the 500 and its text are logged"
is "$(pj "$(req 2)" 'd["headers"]["x-dmarcwatch-idempotency-key"]')|$(pj "$(req 3)" 'd["headers"]["x-dmarcwatch-idempotency-key"]')" \
	"alert-key-2|alert-key-2" "500 then 200: the same idempotency key both times"
is "$(pj "$(cat "$T/req/3.body")" 'd["attempt"]')" 2 "500 then 200: attempt 2 in the second body"
is "$(verify 2 "$SECRET") $(verify 3 "$SECRET")" "ok ok" "500 then 200: both attempts signed"

# --- 3. 400: permanent failure ---------------------------------------------
script '{"rules": [{"path": "/hook", "status": 400, "body": "bad payload\nsecond line"}]}'
notify --json "$T/alert3.json" --wait 20
is "$RC" 1 "400: not delivered, exit 1"
like "$ERR" "not delivered: webhook POST: HTTP 400: bad payload (dead letter" "400: the answer's first line, dead letter"
is "$(nreq)" 4 "400: not retried (one request)"

# --- 4. 429 with Retry-After ------------------------------------------------
script '{"rules": [{"path": "/hook", "times": 1, "status": 429, "headers": {"Retry-After": "2"}, "body": "slow down"}]}'
config "url: $BASE/hook"
notify --json "$T/alert.json" --wait 20
is "$RC" 0 "429: delivered after waiting"
is "$(python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); print(b["t"] - a["t"] >= 1.9)' "$T/req/5.json" "$T/req/6.json")" True \
	"429: the retry came after Retry-After (2 s)"
is "$(pj "$(req 6)" '"x-dmarcwatch-signature" in d["headers"]')" False "429: no secret, no signature header"

# --- 5. include_attachment: false -------------------------------------------
script '{"rules": []}'
config "url: $BASE/hook" "include_attachment: false"
notify --json "$T/alert.json"
is "$RC" 0 "no attachment data: delivered"
B=$(cat "$T/req/7.body")
is "$(pj "$B" '"data_base64" in d["attachment"], d["attachment"]["filename"], d["attachment"]["size"]')" \
	"(False, 'dmarc.csv', 13)" "no attachment data: metadata only"

# --- 6. the URL as a secret (env: and url_file) -----------------------------
script '{"rules": [{"path": "/secret/*", "times": 1, "status": 400, "body": "no"}]}'
config "url: env:DW_HOOK_URL" "secret: env:DW_HOOK_SECRET"
DW_HOOK_URL="$BASE/secret/$TOKEN" DW_HOOK_SECRET="$SECRET" notify --json "$T/alert.json"
is "$RC" 1 "url from env: a 400 fails"
is "$(pj "$(req 8)" 'd["path"]')" "/secret/$TOKEN" "url from env: used"
is "$(verify 8 "$SECRET")" ok "secret from env: signs"
printf '%s\n' "$BASE/secret/$TOKEN" >"$T/url"
config "url_file: $T/url" "secret_file: $T/secret"
notify --json "$T/alert.json"
is "$RC" 0 "url_file: delivered"
is "$(pj "$(req 9)" 'd["path"]')" "/secret/$TOKEN" "url_file: used"

# --- 7. receiver down -> retried --------------------------------------------
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$T/deadport"
config "url: http://127.0.0.1:$(cat "$T/deadport")/hook" "secret_file: $T/secret"
notify --wait 1
is "$RC" 75 "connection refused: still pending after --wait (exit 75)"
like "$ERR" "webhook POST: " "connection refused: the error says what failed"

# --- 8. configuration errors -------------------------------------------------
config "url: $BASE/hook" 'header: "X-Dmarcwatch-Signature: forged"'
notify
is "$RC" 1 "config: X-Dmarcwatch-* header refused"
like "$ERR" "notifiers[0].header: X-Dmarcwatch-* headers are set by the plugin" "config: says which key and why"
config "url: $BASE/hook" 'header: "Bad Name: x"'
notify
like "$ERR" "notifiers[0].header: expected \"Name: value\"" "config: a header name with a space refused"
config "url: $BASE/hook" 'header: "Content-Type: text/plain"'
notify
like "$ERR" "Content-Type is set by the plugin" "config: Content-Type cannot be replaced"
config "url: $BASE/hook" "secret: $SECRET"
notify
like "$ERR" "secret_file" "config: a plain secret is refused or warned about (the host's policy), pointing to secret_file"
config "url: http://user:$TOKEN@127.0.0.1:$PORT/hook"
notify
like "$ERR" "carries a user name or password: give it with url_file" "config: a plain URL with a password refused"
config "url: ftp://example.com/x"
notify
like "$ERR" "expected an http:// or https:// URL" "config: ftp:// refused"
printf 'not a url\n' >"$T/badurl"
config "url_file: $T/badurl"
notify
is "$RC" 1 "config: a bad URL from url_file refused"
config "secret_file: $T/secret"
notify
like "$ERR" "url: required" "config: url is required"

# --- 9. secrets never shown ---------------------------------------------------
grep -qF "$SECRET" "$T/all-output"
is "$?" 1 "the signing secret never appears in any output"
grep -qF "$TOKEN" "$T/all-output"
is "$?" 1 "the URL's token never appears in any output"
grep -lF "$SECRET" "$T"/req/*.json "$T"/req/*.body >/dev/null 2>&1
is "$?" 1 "the secret is never sent"

done_testing
