#!/bin/bash
# t_notify_slack.sh - the slack notifier plugin, end to end through
# `dmarcwatch test-notify`, against http_receiver.py on 127.0.0.1 standing in
# for Slack (incoming webhook, Web API and the file upload URL). Checks the
# payload (Block Kit shape, escaping, Slack's size limits), the outcomes
# (429 + Retry-After, 5xx, 404, hang), bot mode's chat.postMessage and
# three-step file upload with the CSV bytes intact, two instances side by
# side, config errors, and that no secret reaches any output.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
RECEIVER=$ROOT/tests/integration/http_receiver.py
SO=$DW_PLUGIN_BUILD/slack.so
SECRET_PART=SECRETPART-5f1c9e
TOKEN_A=xoxb-TEST-A-7d3a51c0
TOKEN_B=xoxb-TEST-B-e2b4f6a8
export SLACK_TOKEN_A=$TOKEN_A

if [ ! -f "$SO" ]; then
	skip "slack plugin not built ($SO): make build/plugins/slack.so"
	done_testing
	exit
fi
if ! "$DMARCWATCH" test-notify --help >/dev/null 2>&1; then
	skip "$DMARCWATCH has no test-notify command"
	done_testing
	exit
fi

mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp" "$T/state" "$T/logs"
printf '%s\n' "$TOKEN_B" >"$T/token_b"
chmod 600 "$T/token_b"

# --- helpers ----------------------------------------------------------

# start_receiver NAME [SCRIPT-JSON [RECEIVER-ARGS...]]: a fresh receiver
# recording into $T/NAME; sets RDIR, PORT, RPID.
start_receiver() {
	RDIR=$T/$1
	mkdir -p "$RDIR"
	printf '%s\n' "${2:-{\}}" >"$RDIR/script.json"
	shift $(($# < 2 ? $# : 2))
	"$PY" "$RECEIVER" --port-file "$RDIR/port" --dir "$RDIR" --script "$RDIR/script.json" "$@" \
		>/dev/null 2>"$RDIR/receiver.err" &
	RPID=$!
	local i
	for i in $(seq 100); do
		[ -s "$RDIR/port" ] && break
		sleep 0.1
	done
	PORT=$(cat "$RDIR/port" 2>/dev/null)
	[ -n "$PORT" ] || { echo "Bail out! receiver did not start"; exit 1; }
}
stop_receiver() {
	kill "$RPID" 2>/dev/null
	wait "$RPID" 2>/dev/null
}
nreq() { find "$RDIR" -maxdepth 1 -name '[0-9]*.json' | wc -l | tr -d ' '; }
# q FILE EXPR: evaluate a python expression on d = the JSON in FILE
q() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# config FILE NOTIFIERS-YAML: a complete configuration with these notifiers
config() {
	cat >"$1" <<EOF
state_dir: $T/state
plugin_dir: $DW_PLUGIN_BUILD
accounts:
  - name: none
    source: maildir
    path: $T/Maildir
notifiers:
$2
EOF
}

# notify LABEL CONFIG NAME [ARGS...]: run test-notify -v (debug logs too);
# sets OUT, ERR, RC (both outputs are kept in $T/logs for the secret check
# at the end)
notify() {
	local label=$1 cfg=$2 name=$3
	shift 3
	"$DMARCWATCH" test-notify -v -c "$cfg" "$@" "$name" >"$T/logs/$label.out" 2>"$T/logs/$label.err"
	RC=$?
	OUT=$(cat "$T/logs/$label.out")
	ERR=$(cat "$T/logs/$label.err")
}

webhook_cfg() { # webhook_cfg FILE [EXTRA-YAML]
	config "$1" "  - name: hook
    plugin: slack
    timeout: 2s
    retry_min: 1s
    retry_max: 2s
    webhook_url: env:SLACK_WEBHOOK_URL
${2:-}"
}

# Notifications for --json (written by python: base64, big content). No
# idempotency_key: test-notify makes a fresh one for each run (the outbox
# refuses a key it has seen, and these files are sent more than once).
"$PY" - "$T" <<'EOF'
import base64, json, sys
t = sys.argv[1]
csv = ("source_ip,messages,spf,dkim,header_from,reporter\r\n"
       "192.0.2.1,1000,pass,pass,example.com,google.com\r\n"
       "198.51.100.7,200,fail,fail,exämple.com,\"Yahoo, Inc.\"\r\n").encode() + bytes(range(256))
alert = {
    "schema": "dmarcwatch.notification/1", "kind": "alert", "severity": "critical",
    "time": "2026-11-23T09:00:00Z",
    "rule": "fail-rate", "domain": "example.com",
    "title": "example.com: DMARC fail rate 12.5 % > 5 %",
    "body": "The DMARC fail rate of example.com is 12.5 % (threshold 5 %).\nSee the table.",
    "summary": "*Fail rate* is `12.5 %` for <example.com> & friends\n- 200 messages failed\n- 2 sources",
    "runbook": "https://wiki.example.net/runbooks/dmarc?x=1&y=2",
    "fields": [{"name": "messages", "value": "1234"}, {"name": "failed", "value": "200"},
               {"name": "fail rate", "value": "12.5 %"}],
    "table": {"columns": ["source_ip", "messages", "spf", "dkim", "header_from", "reporter"],
              "rows": [["192.0.2.1", "1000", "pass", "pass", "example.com", "google.com"],
                       ["198.51.100.7", "200", "fail", "fail", "example.com", "<b>yahoo</b>"],
                       ["203.0.113.9", "34", "pass", "fail", "example.com", "outlook.com"]]},
    "attachment": {"filename": "dmarc-2026-11-22.csv", "media_type": "text/csv",
                   "size": len(csv), "data_base64": base64.b64encode(csv).decode()},
}
json.dump(alert, open(t + "/alert.json", "w"))
plain = {k: v for k, v in alert.items() if k != "attachment"}
json.dump(plain, open(t + "/plain.json", "w"))
open(t + "/alert.csv", "wb").write(csv)

line = "Lorem ipsum <dolor> sit & amet, consectetur adipiscing elit; sed do eiusmod tempor.\n"
huge = dict(alert)
huge.update({
    "kind": "digest", "severity": "warning",
    "title": "Digest " + "T" * 300,
    "summary": None,
    "body": (line * (50 * 1024 // len(line) + 1))[:50 * 1024],
    "fields": [{"name": "field %d" % i, "value": "value %d " % i + "v" * 300} for i in range(20)],
    "table": {"columns": alert["table"]["columns"],
              "rows": [["10.0.%d.%d" % (i // 250, i % 250), str(1000 - i), "pass", "fail",
                        "example.com", "reporter-%d.example" % i] for i in range(200)]},
})
del huge["summary"]
del huge["attachment"]
json.dump(huge, open(t + "/huge.json", "w"))
EOF

# === 1. incoming webhook, the built-in test notification =================
start_receiver hook1
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
webhook_cfg "$T/hook.yaml"
notify hook1 "$T/hook.yaml" hook
is "$RC" 0 "webhook: test-notify exits 0"
like "$OUT" "hook: delivered (entry" "webhook: reported delivered"
is "$(nreq)" 1 "webhook: one request"
R=$RDIR/1
is "$(q "$R.json" 'd["method"] + " " + d["path"]')" "POST /services/T000/B000/$SECRET_PART" "webhook: POST to the webhook path"
like "$(q "$R.json" 'd["headers"]["content-type"]')" "application/json" "webhook: JSON content type"
B=$RDIR/1.body
is "$(q "$B" 'd["blocks"][0]["type"] + ": " + d["blocks"][0]["text"]["text"]')" \
	"header: dmarcwatch test notification" "webhook: first block is the header with the title"
like "$(q "$B" 'd["text"]')" "dmarcwatch test notification" "webhook: text fallback has the title"
like "$(q "$B" '[b["text"]["text"] for b in d["blocks"] if b["type"] == "section" and "text" in b][0]')" \
	"*INFO* test" "webhook: severity section"
is "$(q "$B" 'sum(1 for b in d["blocks"] if "fields" in b) > 0 and all(f["text"].startswith("*") for b in d["blocks"] if "fields" in b for f in b["fields"])')" \
	True "webhook: fields section with *name* fields"
TABLE=$(q "$B" '[b["text"]["text"] for b in d["blocks"] if b.get("text", {}).get("text", "").startswith("```")][0]')
like "$TABLE" "source_ip" "webhook: table block has the column names"
like "$TABLE" "header_from" "webhook: table block has every column"
is "$(printf '%s\n' "$TABLE" | grep -c '^```')" 2 "webhook: table is one code block"
like "$(q "$B" 'json.dumps(d["blocks"])')" "dmarcwatch-test.csv" "webhook: the attachment is mentioned"
like "$(q "$B" 'json.dumps(d["blocks"])')" "bot mode" "webhook: ...with how to get it (bot mode)"
stop_receiver

# === 2. a full alert: escaping, runbook, fields, table ===================
start_receiver hook2
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook2 "$T/hook.yaml" hook --json "$T/alert.json"
is "$RC" 0 "alert: delivered"
B=$RDIR/1.body
is "$(q "$B" 'd["blocks"][0]["text"]["text"]')" "example.com: DMARC fail rate 12.5 % > 5 %" "alert: header is the title (plain_text, unescaped)"
META=$(q "$B" 'd["blocks"][1]["text"]["text"]')
like "$META" "*CRITICAL* alert" "alert: severity word"
like "$META" "domain \`example.com\`" "alert: domain"
like "$META" "rule \`fail-rate\`" "alert: rule"
ALL=$(q "$B" 'json.dumps(d["blocks"], ensure_ascii=False)')
like "$ALL" 'for &lt;example.com&gt; &amp; friends' "alert: &, <, > escaped in the summary"
like "$ALL" '• 200 messages failed' "alert: summary bullets"
like "$ALL" '&lt;b&gt;yahoo&lt;/b&gt;' "alert: table cells escaped"
is "$(q "$B" '"<b>" in json.dumps(d)')" False "alert: no raw markup from the data"
like "$ALL" '<https://wiki.example.net/runbooks/dmarc?x=1&amp;y=2|Runbook>' "alert: runbook link"
is "$(q "$B" '[f["text"] for b in d["blocks"] if "fields" in b for f in b["fields"]]')" \
	"['*messages*\\n1234', '*failed*\\n200', '*fail rate*\\n12.5 %']" "alert: the three fields"
like "$(q "$B" 'd["text"]')" "[CRITICAL] example.com: DMARC fail rate" "alert: text fallback"
like "$ALL" '198.51.100.7       200  fail' "alert: table columns aligned (numbers right-aligned)"
stop_receiver

# === 3. a huge digest stays within Slack's limits ========================
start_receiver hook3
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook3 "$T/hook.yaml" hook --json "$T/huge.json"
is "$RC" 0 "huge: still delivered"
B=$RDIR/1.body
is "$(q "$B" 'len(d["blocks"]) <= 50')" True "huge: <= 50 blocks"
is "$(q "$B" 'len(d["blocks"][0]["text"]["text"]) <= 150 and d["blocks"][0]["text"]["text"].startswith("Digest TTT")')" \
	True "huge: header cut to <= 150 characters"
is "$(q "$B" 'max(len(b["text"]["text"]) for b in d["blocks"] if b["type"] == "section" and "text" in b) <= 3000')" \
	True "huge: every section text <= 3000 characters"
is "$(q "$B" 'all(len(b["fields"]) <= 10 and all(len(f["text"]) <= 2000 for f in b["fields"]) for b in d["blocks"] if "fields" in b)')" \
	True "huge: <= 10 fields per section, each <= 2000 characters"
is "$(q "$B" 'len(json.dumps(d["blocks"], ensure_ascii=False, separators=(",", ":"))) <= 12000')" True \
	"huge: all blocks together <= 12000 characters"
is "$(q "$B" 'len(d["text"]) <= 4000')" True "huge: text fallback <= 4000 characters"
ALL=$(q "$B" 'json.dumps(d, ensure_ascii=False)')
like "$ALL" "more rows not shown" "huge: table truncation note"
like "$ALL" "(truncated" "huge: body truncation note"
like "$(q "$B" 'd["text"]')" "(truncated)" "huge: text fallback truncation note"
is "$(q "$B" 'sum(len(b["fields"]) for b in d["blocks"] if "fields" in b) == 20 or "more fields not shown" in json.dumps(d)')" \
	True "huge: all 20 fields, or a note saying how many are missing"
is "$(q "$B" 'all(len(b.get("text", {}).get("text", "x")) > 0 for b in d["blocks"])')" True "huge: no empty section"
stop_receiver

# === 4. 429 with Retry-After: 2 ==========================================
start_receiver hook4 '{"rules": [{"path": "/services/*", "times": 1, "status": 429,
	"headers": {"Retry-After": "2"}, "body": "rate_limited"}]}'
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook4 "$T/hook.yaml" hook --wait 20
is "$RC" 0 "429: delivered in the end"
like "$OUT" "attempt 2" "429: on the second attempt"
like "$ERR" "HTTP 429" "429: the attempt's failure is logged"
is "$(nreq)" 2 "429: two requests"
is "$("$PY" -c 'import json,sys; a,b=(json.load(open(f))["t"] for f in sys.argv[1:]); print(b - a >= 2.0)' "$RDIR/1.json" "$RDIR/2.json")" \
	True "429: the retry came >= 2 s later (Retry-After honoured)"
stop_receiver

# === 5. 500 then 200 ======================================================
start_receiver hook5 '{"rules": [{"path": "/services/*", "times": 1, "status": 500, "body": "internal error"}]}'
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook5 "$T/hook.yaml" hook --wait 20
is "$RC" 0 "500: retried and delivered"
like "$ERR" "HTTP 500" "500: the failed attempt is logged"
is "$(nreq)" 2 "500: exactly two requests"
is "$(cmp -s "$RDIR/1.body" "$RDIR/2.body" && echo same)" same "500: the retry sends the same payload"
stop_receiver

# === 6. 404 no_service: permanent =========================================
start_receiver hook6 '{"rules": [{"path": "/services/*", "status": 404, "body": "no_service"}]}'
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook6 "$T/hook.yaml" hook --wait 20
is "$RC" 1 "404: exit 1"
like "$ERR" "not delivered" "404: reported not delivered"
like "$ERR" "HTTP 404: no_service" "404: Slack's error text shown"
like "$ERR" "create a new incoming webhook" "404: with what to do"
is "$(nreq)" 1 "404: not retried"
stop_receiver

# === 7. the receiver hangs; timeout 2s ===================================
start_receiver hook7 '{"rules": [{"path": "/services/*", "times": 1, "hang": 15}]}'
export SLACK_WEBHOOK_URL="http://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
notify hook7 "$T/hook.yaml" hook --wait 20
is "$RC" 0 "hang: delivered after the timeout"
like "$ERR" "timed out" "hang: the attempt timed out"
is "$(nreq)" 2 "hang: two requests"
is "$("$PY" -c 'import json,sys; a,b=(json.load(open(f))["t"] for f in sys.argv[1:]); print(2.0 <= b - a < 10)' "$RDIR/1.json" "$RDIR/2.json")" \
	True "hang: gave up after the 2 s timeout, then retried"
stop_receiver

# === 8. bot mode: chat.postMessage + the three-step file upload ==========
BOT_SCRIPT='{"rules": [
 {"method": "POST", "path": "/api/chat.postMessage",
  "json": {"ok": true, "channel": "C0RESOLVED", "ts": "1700000000.000100"}},
 {"method": "POST", "path": "/api/files.getUploadURLExternal",
  "json": {"ok": true, "upload_url": "{base}/upload/v1/F0FILE{n}", "file_id": "F0FILE{n}"}},
 {"method": "POST", "path": "/upload/v1/*", "body": "OK - 1"},
 {"method": "POST", "path": "/api/files.completeUploadExternal",
  "json": {"ok": true, "files": [{"id": "F0FILE", "title": "x"}]}}
], "default": {"status": 404, "body": "unexpected"}}'
start_receiver bot8 "$BOT_SCRIPT"
# bots_cfg FILE: two bot-mode instances (different tokens and channels)
# pointing at the current receiver.
bots_cfg() {
	config "$1" "  - name: bot-a
    plugin: slack
    timeout: 5s
    retry_min: 1s
    retry_max: 2s
    token: env:SLACK_TOKEN_A
    channel: C0AAAAAAA
    api_url: http://127.0.0.1:$PORT/api
  - name: bot-b
    plugin: slack
    timeout: 5s
    retry_min: 1s
    token_file: $T/token_b
    channel: C0BBBBBBB
    api_url: http://127.0.0.1:$PORT/api/"
}
# last_post: the number of the last chat.postMessage request recorded
last_post() {
	"$PY" -c 'import json,sys; print([json.loads(l)["n"] for l in open(sys.argv[1]) if json.loads(l)["path"].endswith("/chat.postMessage")][-1])' "$RDIR/requests.jsonl"
}
bots_cfg "$T/bots.yaml"
notify bot8 "$T/bots.yaml" bot-a --json "$T/alert.json"
is "$RC" 0 "bot: delivered"
is "$(nreq)" 4 "bot: four requests"
is "$(for i in 1 2 3 4; do q "$RDIR/$i.json" 'd["path"]'; done | tr '\n' ' ')" \
	"/api/chat.postMessage /api/files.getUploadURLExternal /upload/v1/F0FILE2 /api/files.completeUploadExternal " \
	"bot: postMessage, getUploadURLExternal, upload, completeUploadExternal (no files.upload)"
is "$(q "$RDIR/1.json" 'd["headers"].get("authorization")')" "Bearer $TOKEN_A" "bot: postMessage carries the token"
is "$(q "$RDIR/2.json" 'd["headers"].get("authorization")')" "Bearer $TOKEN_A" "bot: getUploadURLExternal carries the token"
is "$(q "$RDIR/3.json" 'd["headers"].get("authorization")')" None "bot: the upload_url gets no token"
is "$(q "$RDIR/4.json" 'd["headers"].get("authorization")')" "Bearer $TOKEN_A" "bot: completeUploadExternal carries the token"
B=$RDIR/1.body
is "$(q "$B" 'd["channel"]')" C0AAAAAAA "bot: message to the configured channel"
is "$(q "$B" 'd["blocks"][0]["text"]["text"]')" "example.com: DMARC fail rate 12.5 % > 5 %" "bot: same blocks as webhook mode (header)"
like "$(q "$B" 'json.dumps(d["blocks"])')" "attached in the thread" "bot: the message points to the file"
GET=$("$PY" -c 'import sys,urllib.parse as u; print(sorted(u.parse_qsl(open(sys.argv[1]).read())))' "$RDIR/2.body")
is "$GET" "[('filename', 'dmarc-2026-11-22.csv'), ('length', '$(stat -c %s "$T/alert.csv")')]" \
	"bot: getUploadURLExternal gets filename and length"
ok "$(cmp -s "$RDIR/3.body" "$T/alert.csv"; echo $?)" "bot: the CSV bytes arrive intact ($(stat -c %s "$T/alert.csv") bytes)"
DONE=$("$PY" -c 'import json,sys,urllib.parse as u; d=dict(u.parse_qsl(open(sys.argv[1]).read())); d["files"]=json.loads(d["files"]); print(sorted(d.items()))' "$RDIR/4.body")
is "$DONE" "[('channel_id', 'C0RESOLVED'), ('files', [{'id': 'F0FILE2', 'title': 'dmarc-2026-11-22.csv'}]), ('thread_ts', '1700000000.000100')]" \
	"bot: completeUploadExternal with the file id, title, the channel ID Slack answered and the thread"

# === 9. two slack notifiers side by side ==================================
notify bot9 "$T/bots.yaml" bot-b
is "$RC" 0 "two instances: bot-b delivered (bot-a loaded in the same process)"
B=$RDIR/$(last_post)
is "$(q "$B.json" 'd["path"]')" /api/chat.postMessage "two instances: bot-b posts (api_url with a trailing /)"
is "$(q "$B.body" 'd["channel"]')" C0BBBBBBB "two instances: bot-b posts to its own channel"
is "$(q "$B.json" 'd["headers"]["authorization"]')" "Bearer $TOKEN_B" "two instances: bot-b uses its own token (token_file)"
notify bot9a "$T/bots.yaml" bot-a
is "$RC" 0 "two instances: bot-a delivered again"
B=$RDIR/$(last_post)
is "$(q "$B.body" 'd["channel"]') $(q "$B.json" 'd["headers"]["authorization"]')" "C0AAAAAAA Bearer $TOKEN_A" \
	"two instances: bot-a still posts to its channel with its token"
stop_receiver

# === 10. Web API errors: ok:false ========================================
start_receiver bot10 '{"rules": [
 {"path": "/api/chat.postMessage", "times": 1, "headers": {"Retry-After": "1"},
  "json": {"ok": false, "error": "ratelimited"}},
 {"path": "/api/chat.postMessage", "times": 1, "json": {"ok": true, "channel": "C0AAAAAAA", "ts": "1.2"}},
 {"path": "/api/chat.postMessage", "json": {"ok": false, "error": "not_in_channel"}}]}'
bots_cfg "$T/bot10.yaml"
notify bot10 "$T/bot10.yaml" bot-a --json "$T/plain.json" --wait 20
is "$RC" 0 "ok:false ratelimited: retried and delivered"
like "$ERR" "chat.postMessage: ratelimited" "ok:false ratelimited: the attempt's error is Slack's"
is "$(nreq)" 2 "ok:false ratelimited: two requests"
notify bot10b "$T/bot10.yaml" bot-a --json "$T/plain.json" --wait 20
is "$RC" 1 "ok:false not_in_channel: FAIL, exit 1"
like "$ERR" "chat.postMessage: not_in_channel" "ok:false not_in_channel: Slack's error text shown"
like "$ERR" "invite the bot" "ok:false not_in_channel: with what to do"
is "$(nreq)" 3 "ok:false not_in_channel: not retried"
stop_receiver

# === 11. upload fails after the message went out: the retry does not post twice
start_receiver bot11 '{"rules": [
 {"path": "/api/chat.postMessage", "json": {"ok": true, "channel": "C0AAAAAAA", "ts": "5.6"}},
 {"path": "/api/files.getUploadURLExternal",
  "json": {"ok": true, "upload_url": "{base}/upload/v1/F{n}", "file_id": "F{n}"}},
 {"path": "/upload/v1/*", "body": "OK"},
 {"path": "/api/files.completeUploadExternal", "times": 1, "status": 503, "body": "unavailable"},
 {"path": "/api/files.completeUploadExternal", "json": {"ok": true}}]}'
bots_cfg "$T/bot11.yaml"
notify bot11 "$T/bot11.yaml" bot-a --json "$T/alert.json" --wait 20
is "$RC" 0 "upload retry: delivered"
like "$ERR" "the message was posted but the attachment was not uploaded" "upload retry: the attempt's error says what happened"
is "$("$PY" -c 'import json,sys; print(" ".join(json.loads(l)["path"].split("/")[-1] for l in sys.stdin))' <"$RDIR/requests.jsonl")" \
	"chat.postMessage files.getUploadURLExternal F2 files.completeUploadExternal files.getUploadURLExternal F5 files.completeUploadExternal" \
	"upload retry: one chat.postMessage, the upload done again"
ok "$(cmp -s "$RDIR/6.body" "$T/alert.csv"; echo $?)" "upload retry: the CSV bytes intact the second time too"
stop_receiver

# === 12. configuration errors ============================================
config "$T/bad1.yaml" "  - name: hook
    plugin: slack
    webhook_url: env:SLACK_WEBHOOK_URL
    colour: red"
notify bad1 "$T/bad1.yaml" hook
is "$RC" 1 "config: unknown key refused"
like "$ERR" "notifiers[0].colour: unknown key" "config: ...naming the key with its line"
config "$T/bad2.yaml" "  - name: hook
    plugin: slack
    webhook_url: env:SLACK_WEBHOOK_URL
    token: env:SLACK_TOKEN_A"
notify bad2 "$T/bad2.yaml" hook
is "$RC" 1 "config: webhook_url and token together refused"
like "$ERR" "not both" "config: ...saying to pick one"
config "$T/bad3.yaml" "  - name: hook
    plugin: slack
    token: env:SLACK_TOKEN_A"
notify bad3 "$T/bad3.yaml" hook
is "$RC" 1 "config: token without channel refused"
like "$ERR" "channel is missing" "config: ...saying channel is needed"
SLACK_WEBHOOK_URL="http://hooks.example.com/services/T000/B000/$SECRET_PART" notify bad4 "$T/hook.yaml" hook
is "$RC" 1 "config: plain http webhook URL to a remote host refused"
like "$ERR" "must be an https:// URL" "config: ...asking for https"
config "$T/bad5.yaml" "  - name: hook
    plugin: slack
    webhook_url: env:SLACK_WEBHOOK_URL
    channel: C0AAAAAAA"
notify bad5 "$T/bad5.yaml" hook
is "$RC" 1 "config: channel with a webhook refused"

# === 13. TLS: certificate verification, ca_file, verify: false ==========
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1; then
	start_receiver tls '' --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
	export SLACK_WEBHOOK_URL="https://127.0.0.1:$PORT/services/T000/B000/$SECRET_PART"
	notify tls1 "$T/hook.yaml" hook --wait 20
	is "$RC" 1 "tls: an unknown certificate is refused (FAIL, not retried)"
	ok "$(printf '%s' "$ERR" | grep -qiE 'Slack webhook: .*certificate (problem|verification)'; echo $?)" \
		"tls: ...saying it is the certificate"
	is "$(nreq)" 0 "tls: nothing was sent over the unverified connection"
	webhook_cfg "$T/tls.yaml" "    ca_file: $T/cert.pem"
	notify tls2 "$T/tls.yaml" hook
	is "$RC $(nreq)" "0 1" "tls: delivered over https with ca_file"
	webhook_cfg "$T/noverify.yaml" "    verify: false"
	notify tls3 "$T/noverify.yaml" hook
	is "$RC $(nreq)" "0 2" "tls: verify: false delivers"
	like "$ERR" "NOT checked" "tls: ...with a warning"
	stop_receiver
else
	for i in 1 2 3 4 5 6; do skip "openssl cannot make a test certificate"; done
fi

# === 14. secrets never in any output =====================================
LEAKS=$(grep -lF -e "$SECRET_PART" -e "$TOKEN_A" -e "$TOKEN_B" "$T"/logs/* 2>/dev/null)
is "$LEAKS" "" "no webhook secret or token in any stdout/stderr ($(find "$T/logs" -type f | wc -l | tr -d " ") files)"
like "$(cat "$T"/logs/hook4.err "$T"/logs/bot8.err)" "[debug]: notifier bot-a: chat.postMessage: posted to" \
	"the secret check covers the agent's debug log and retry warnings"

done_testing
