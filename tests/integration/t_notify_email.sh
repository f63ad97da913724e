#!/bin/bash
# The email notifier (plugins/email) through `dmarcwatch test-notify`
# against real SMTP servers on loopback (tests/integration/smtp_receiver.py,
# aiosmtpd): STARTTLS with a certificate made here and trusted through
# ca_file, AUTH required. The received message is parsed with Python's
# email package: headers (RFC 2047 subject, folding, Date, Message-ID), the
# text and HTML parts, the attachment's exact bytes, the envelope. Then the
# failure paths: wrong password, no STARTTLS, untrusted certificate, server
# down, refused recipients and DATA, configuration errors, header injection.
# shellcheck disable=SC2154 # PORT_* are set by start_smtp through printf -v
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
	skip "$PY lacks aiosmtpd (apt-get install python3-aiosmtpd)"
	done_testing
	exit
fi
if ! command -v openssl >/dev/null 2>&1; then
	skip "openssl is not installed"
	done_testing
	exit
fi
if [ ! -f "$DW_PLUGIN_BUILD/email.so" ]; then
	echo "not ok 1 - $DW_PLUGIN_BUILD/email.so not built (make plugins)"
	exit 1
fi

PW='S3cret pw:&<x>#1'
BADPW='Wr0ng-pw-9f2c'
export SMTP_PW="$PW" BAD_PW="$BADPW"

# --- a certificate for 127.0.0.1, and the servers ---------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=smtp.test \
	-addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.log" 2>&1
ok $? "test certificate made"

# start_smtp NAME RECEIVER-ARGS...: sets PORT_NAME once the port file exists.
start_smtp() {
	local name=$1 _
	shift
	"$PY" tests/integration/smtp_receiver.py --port-file "$T/$name.port" --out "$T/rx-$name" \
		--cert "$T/cert.pem" --key "$T/key.pem" --user dmarc --password "$PW" "$@" \
		>"$T/$name.log" 2>&1 &
	for _ in $(seq 100); do
		[ -s "$T/$name.port" ] && break
		sleep 0.1
	done
	printf -v "PORT_$name" '%s' "$(cat "$T/$name.port" 2>/dev/null)"
	[ -s "$T/$name.port" ]
}
start_smtp tls --tls starttls \
	--rcpt-reply 'bad@example.com=550 5.1.1 <bad@example.com>: no such user' \
	--rcpt-reply 'busy@example.com=450 4.2.1 mailbox busy, try later'
ok $? "STARTTLS server up (port $PORT_tls)"
start_smtp smtps --tls implicit
ok $? "implicit-TLS server up (port $PORT_smtps)"
start_smtp plain --tls none
ok $? "plaintext server (no STARTTLS) up (port $PORT_plain)"
start_smtp later --tls starttls --data-reply '451 4.3.0 queue full, try again later'
ok $? "server answering DATA with 451 up (port $PORT_later)"
start_smtp spam --tls starttls --data-reply '554 5.7.1 message refused as spam'
ok $? "server answering DATA with 554 up (port $PORT_spam)"
PORT_down=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# mkcfg NAME < plugin keys: a configuration with one email notifier "mail".
mkcfg() {
	local d=$T/$1
	mkdir -p "$d/state" "$d/md/cur" "$d/md/new" "$d/md/tmp"
	{
		cat <<EOF
state_dir: $d/state
plugin_dir: $DW_PLUGIN_BUILD
accounts:
  - name: none
    source: maildir
    path: $d/md
notifiers:
  - name: mail
    plugin: email
    timeout: 10s
    retry_min: 1s
EOF
		sed 's/^/    /'
	} >"$d/cfg.yaml"
}
# stdcfg NAME URL [LINE]...: mkcfg with the usual keys (login dmarc with
# $SMTP_PW, the test sender, ops@example.com) and then LINEs, which may
# replace the password or the recipients.
stdcfg() {
	local name=$1 url=$2 lines
	shift 2
	lines=$(printf '%s\n' "$@")
	{
		printf 'url: %s\nusername: dmarc\nfrom: dmarcwatch@example.org\n' "$url"
		case "$lines" in *password*) ;; *) echo 'password: env:SMTP_PW' ;; esac
		case "$lines" in to:* | *"
to:"*) ;; *) echo 'to: ops@example.com' ;; esac
		printf '%s\n' "$@"
	} | mkcfg "$name"
}
# tn NAME [test-notify options]: run it; RC, OUT and ERR hold the results.
tn() {
	local name=$1
	shift
	"$DMARCWATCH" test-notify -c "$T/$name/cfg.yaml" "$@" mail >"$T/$name/stdout" 2>"$T/$name/stderr"
	RC=$?
	OUT=$(cat "$T/$name/stdout")
	ERR=$(cat "$T/$name/stderr")
}
nmsgs() { find "$T/rx-$1" -name 'msg-*.eml' 2>/dev/null | wc -l; }

# --- the notification: non-ASCII subject, HTML-hostile data, CSV bytes ------
printf 'source_ip,messages,reporter\r\n192.0.2.10,812,google.com\r\n198.51.100.7,301,"Ex\xc3\xa4mple \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac"\r\nlone LF\nlone CR\rraw \xff\x00 bytes\r\n' >"$T/att.csv"
"$PY" - "$T/att.csv" >"$T/alert.json" <<'EOF'
import base64, json, sys
data = open(sys.argv[1], "rb").read()
print(json.dumps({
    "schema": "dmarcwatch.notification/1", "kind": "alert", "severity": "critical",
    "time": "2026-11-23T09:00:00Z", "idempotency_key": "alert:example.com/fail-rate@2026-11-23T09:00Z",
    "rule": "fail-rate", "domain": "example.com",
    "title": "Prüfung – 東京 domain fails",
    "body": "DMARC fail rate for example.com is 12.5 % (limit 5 %).\nSee the sources below.",
    "summary": "*12.5 %* of `example.com` mail failed\n- 3 sources\n- worst: <198.51.100.7>",
    "runbook": "https://wiki.example.com/runbooks/dmarc?a=1&b=2",
    "fields": [{"name": "messages", "value": "1169"},
               {"name": "failing", "value": "<script>alert(1)</script> & \"q\""},
               {"name": "Größe", "value": "東京"}],
    "table": {"columns": ["source_ip", "messages", "reporter"],
              "rows": [["192.0.2.10", "812", "google.com"],
                       ["198.51.100.7", "301", "Exämple – 東京 Ltd"],
                       ["203.0.113.99", "56", "<b>Microsoft</b>"]]},
    "attachment": {"filename": "dmarc-2026-11-22.csv", "media_type": "text/csv",
                   "size": len(data), "data_base64": base64.b64encode(data).decode()},
}, ensure_ascii=False))
EOF
LONG_TITLE='Daily DMARC digest for example.com, example.net and example.org: 12 reports, 3,456 messages, 98.7 % aligned, no new sources'
"$PY" - "$LONG_TITLE" >"$T/digest.json" <<'EOF'
import json, sys
print(json.dumps({"kind": "digest", "title": sys.argv[1], "body": "Nothing new.",
                  "idempotency_key": "digest:2026-11-23", "time": "2026-11-23T06:00:00Z"}))
EOF
TOKEN=$(printf 'x%.0s' $(seq 150))
printf '{"kind": "resolved", "severity": "warning", "title": "example.net: %s resolved", "idempotency_key": "r1"}\n' \
	"$TOKEN" >"$T/resolved.json"
cat >"$T/inject.json" <<'EOF'
{"kind": "test", "title": "Injected\r\nBcc: victim@evil.example\r\nX-Evil: 1", "body": "b",
 "domain": "example.com\r\nX-Evil: 2", "idempotency_key": "inject\r\nX-Evil: 3",
 "attachment": {"filename": "../x\"\r\nX-Evil: 4.csv", "media_type": "text/csv\r\nX-Evil: 5",
                "data_base64": "YQ=="}}
EOF

# parse MSG.eml ENVELOPE.json [NOTIFICATION.json]: the facts the checks
# below need, as one JSON line.
cat >"$T/parse.py" <<'EOF'
import email, hashlib, json, re, sys
from email import policy
raw = open(sys.argv[1], "rb").read()
env = json.load(open(sys.argv[2]))
n = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else {}
msg = email.message_from_bytes(raw, policy=policy.default)
head = raw[:raw.find(b"\r\n\r\n")]
lines = head.split(b"\r\n")
raw_subject = email.message_from_bytes(raw)["Subject"]  # compat32: as on the wire
words = re.findall(r"=\?[^?]*\?[QqBb]\?[^?]*\?=", raw_subject or "")
def addrs(h):
    return [[a.display_name, a.addr_spec] for a in msg[h].addresses] if msg[h] else []
d = {
    "header_ascii": all(b < 0x80 for b in head),
    "bare_lf": b"\n" in head.replace(b"\r\n", b""),
    # curl writes the Content-Type lines (with its long boundary) itself
    "max_line": max(len(l) for l in lines if not l.lower().startswith(b"content-type:")),
    "head": head.decode("ascii", "replace"),
    "max_word": max([len(w) for w in words] or [0]),
    "nwords": len(words),
    "subject": str(msg["Subject"]), "from": addrs("From"), "to": addrs("To"), "cc": addrs("Cc"),
    "date": msg["Date"].datetime.isoformat() if msg["Date"] else None,
    "message_id": str(msg["Message-ID"]), "key": str(msg["X-Dmarcwatch-Idempotency-Key"]),
    "kind": str(msg["X-Dmarcwatch-Kind"]), "auto": str(msg["Auto-Submitted"]),
    "names": sorted(set(k.lower() for k in msg.keys())),
    "structure": [p.get_content_type() for p in msg.walk()],
    "rcpts": env["rcpt_tos"], "mail_from": env["mail_from"], "auth_user": env["auth_user"],
    "encrypted": env["encrypted"], "defects": len(msg.defects),
}
body = msg.get_body(("plain",))
d["text"] = body.get_content() if body else ""
body = msg.get_body(("html",))
d["html"] = body.get_content() if body else ""
d["att"] = [{"filename": a.get_filename(), "type": a.get_content_type(),
             "cte": str(a["Content-Transfer-Encoding"]), "disposition": a.get_content_disposition(),
             "sha256": hashlib.sha256(a.get_payload(decode=True)).hexdigest()}
            for a in msg.iter_attachments()]
# Plain-text alignment: every row of the table (and of the fields) starts its
# cells at the same columns as the first.
def starts(line, cells):
    pos, at = [], 0
    for c in cells:
        at = line.find(c, at)
        pos.append(at)
        at += len(c)
    return pos
tl = d["text"].splitlines()
if "table" in n:
    rows = [n["table"]["columns"]] + n["table"]["rows"]
    cols = [starts(next((l for l in tl if l.startswith(r[0])), ""), r) for r in rows]
    d["table_aligned"] = all(c == cols[0] for c in cols) and -1 not in cols[0]
if "fields" in n:
    cols = [starts(next((l for l in tl if l.startswith(f["name"] + ":")), ""), [f["name"], f["value"]])
            for f in n["fields"]]
    d["fields_aligned"] = all(c == cols[0] for c in cols) and -1 not in cols[0]
print(json.dumps(d))
EOF
parse() { "$PY" "$T/parse.py" "$@"; }
# The plugin's Message-ID left part: two FNV-1a 64-bit lanes over the key.
msgid_left() {
	"$PY" -c '
import sys
k = sys.argv[1].encode()
def fnv(h):
    for c in k:
        h = ((h ^ c) * 0x100000001b3) % (1 << 64)
    return h
print("dmarcwatch.%016x%016x" % (fnv(0xcbf29ce484222325), fnv(0x84222325cbf29ce4)))' "$1"
}
# The newest message a server received, parsed.
last_msg() {
	local n
	n=$(find "$T/rx-$1" -name 'msg-*.eml' | sed 's/.*msg-\([0-9]*\)\.eml$/\1/' | sort -n | tail -1)
	echo "$T/rx-$1/msg-$n.eml"
}

# --- 1. STARTTLS + AUTH, verified with ca_file: the full message ------------
MAINKEYS="url: smtp://127.0.0.1:$PORT_tls
username: dmarc
password: env:SMTP_PW
from: \"DMARC Watch <dmarcwatch@example.org>\"
to: [ops@example.com, \"Jäne Dœ <jane@example.com>\"]
cc: [\"Audit, Team <audit@example.com>\", soc@example.net]
ca_file: $T/cert.pem"
printf '%s\n' "$MAINKEYS" | mkcfg main
tn main --json "$T/alert.json" --wait 10
is "$RC" 0 "alert delivered over STARTTLS (exit 0)"
like "$OUT" "mail: delivered (entry 1, attempt 1" "stdout says delivered"
is "$(nmsgs tls)" 1 "the server stored one message"
M=$(last_msg tls)
J=$(parse "$M" "${M%.eml}.json" "$T/alert.json")
is "$(jget "$J" 'd["encrypted"]')" True "the session was encrypted (STARTTLS)"
is "$(jget "$J" 'd["auth_user"]')" dmarc "the client logged in as the configured user"
is "$(jget "$J" 'd["mail_from"]')" dmarcwatch@example.org "envelope sender = from"
is "$(jget "$J" '",".join(d["rcpts"])')" "ops@example.com,jane@example.com,audit@example.com,soc@example.net" \
	"envelope recipients = to + cc, in order"
is "$(jget "$J" 'd["defects"]')" 0 "Python's email parser finds no defects"
is "$(jget "$J" 'd["header_ascii"] and not d["bare_lf"]')" True "the header is ASCII with CRLF line ends"
is "$(jget "$J" 'd["subject"]')" "[dmarcwatch] CRITICAL: Prüfung – 東京 domain fails" \
	"the non-ASCII subject decodes back exactly (prefix, severity, title)"
is "$(jget "$J" 'd["nwords"] >= 2 and d["max_word"] <= 75')" True \
	"the subject is RFC 2047 encoded-words of at most 75 characters ($(jget "$J" 'd["nwords"]') words)"
is "$(jget "$J" 'd["max_line"] <= 78')" True "no header line (but curl's Content-Type) is longer than 78 (longest $(jget "$J" 'd["max_line"]'))"
is "$(jget "$J" 'd["from"]')" "[['DMARC Watch', 'dmarcwatch@example.org']]" "From: display name and address"
is "$(jget "$J" 'd["to"]')" "[['', 'ops@example.com'], ['Jäne Dœ', 'jane@example.com']]" \
	"To: both recipients, the non-ASCII display name decoded"
is "$(jget "$J" 'd["cc"]')" "[['Audit, Team', 'audit@example.com'], ['', 'soc@example.net']]" \
	"Cc: both, the name with a comma quoted"
is "$(jget "$J" 'd["date"]')" "2026-11-23T09:00:00+00:00" "Date: is the notification's time (RFC 5322, UTC)"
like "$(grep -a '^Date:' "$M")" "Date: Mon, 23 Nov 2026 09:00:00 +0000" "Date: in RFC 5322 form"
is "$(jget "$J" 'd["key"]')" "alert:example.com/fail-rate@2026-11-23T09:00Z" "X-Dmarcwatch-Idempotency-Key carries the key"
is "$(jget "$J" 'd["message_id"]')" "<$(msgid_left "alert:example.com/fail-rate@2026-11-23T09:00Z")@example.org>" \
	"Message-ID derived from the idempotency key (FNV-1a), at the sender's domain"
is "$(jget "$J" 'd["kind"] + " " + d["auto"]')" "alert auto-generated" "X-Dmarcwatch-Kind and Auto-Submitted"
is "$(jget "$J" '" ".join(d["structure"])')" \
	"multipart/mixed multipart/alternative text/plain text/html text/csv" \
	"multipart/mixed holding multipart/alternative (text, html) and the attachment"
is "$(jget "$J" 'd["att"][0]["sha256"]')" "$(sha256sum <"$T/att.csv" | cut -d' ' -f1)" \
	"the attachment decodes to the exact bytes sent (CRLF, lone LF/CR, UTF-8, 0xff, NUL)"
is "$(jget "$J" '"%(filename)s %(type)s %(cte)s %(disposition)s" % d["att"][0]')" \
	"dmarc-2026-11-22.csv text/csv base64 attachment" "attachment: filename, media type, base64, disposition"
TEXT=$(jget "$J" 'd["text"]')
like "$TEXT" "Prüfung – 東京 domain fails" "text part: the title"
like "$TEXT" "DMARC fail rate for example.com is 12.5 % (limit 5 %)." "text part: the body"
like "$TEXT" "- worst: <198.51.100.7>" "text part: the summary as written"
like "$TEXT" "failing:  <script>alert(1)</script> & \"q\"" "text part: fields as 'name:  value', unescaped"
like "$TEXT" "198.51.100.7  301       Exämple – 東京 Ltd" "text part: table rows in aligned columns"
is "$(jget "$J" 'd["table_aligned"] and d["fields_aligned"]')" True "text part: every table row and field aligned"
like "$TEXT" "Runbook: https://wiki.example.com/runbooks/dmarc?a=1&b=2" "text part: the runbook"
HTML=$(jget "$J" 'd["html"]')
like "$HTML" "<td>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</td>" "html part: field values escaped in a table cell"
is "$(jget "$J" '"<script>" in d["html"] or "<b>Microsoft" in d["html"]')" False "html part: no unescaped user markup"
like "$HTML" "<td>Exämple – 東京 Ltd</td>" "html part: the table as an HTML table, UTF-8 intact"
like "$HTML" "<th align=\"left\">reporter</th>" "html part: table header cells"
like "$HTML" "<strong>12.5 %</strong> of <code>example.com</code> mail failed" "html part: summary *bold* and \`code\`"
like "$HTML" "<li>worst: &lt;198.51.100.7&gt;</li>" "html part: summary bullets as a list, escaped"
like "$HTML" "<a href=\"https://wiki.example.com/runbooks/dmarc?a=1&amp;b=2\">" "html part: runbook link, attribute escaped"
like "$HTML" "<title>Prüfung – 東京 domain fails</title>" "html part: the title"

# Delivered again (another outbox, the same key): the same Message-ID.
printf '%s\n' "$MAINKEYS" | mkcfg main2
tn main2 --json "$T/alert.json" --wait 10
M2=$(last_msg tls)
is "$(parse "$M2" "${M2%.eml}.json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["message_id"])')" \
	"$(jget "$J" 'd["message_id"]')" "the same notification delivered again has the same Message-ID"

# --- 2. long ASCII subject, no attachment: multipart/alternative ------------
tn main --json "$T/digest.json" --wait 10
is "$RC" 0 "digest delivered"
M=$(last_msg tls)
J=$(parse "$M" "${M%.eml}.json")
is "$(jget "$J" 'd["subject"]')" "[dmarcwatch] $LONG_TITLE" "a long ASCII subject reads back exactly"
is "$(jget "$J" 'd["nwords"]')" 0 "a plain ASCII subject is not encoded"
is "$(jget "$J" 'd["max_line"] <= 78')" True "it is folded (longest header line $(jget "$J" 'd["max_line"]'))"
is "$(jget "$J" '" ".join(d["structure"])')" "multipart/alternative text/plain text/html" \
	"without an attachment the message is multipart/alternative"
is "$(jget "$J" 'd["date"]')" "2026-11-23T06:00:00+00:00" "Date: of the digest"

tn main --json "$T/resolved.json" --wait 10
M=$(last_msg tls)
J=$(parse "$M" "${M%.eml}.json")
is "$(jget "$J" 'd["subject"]')" "[dmarcwatch] RESOLVED: example.net: $TOKEN resolved" \
	"resolved: RESOLVED: in the subject; a 150-character word reads back exactly"
is "$(jget "$J" 'd["max_line"] <= 78 and d["max_word"] <= 75')" True \
	"  ... encoded so that it can be folded (longest line $(jget "$J" 'd["max_line"]'))"

# --- 3. header injection through notification data --------------------------
tn main --json "$T/inject.json" --wait 10
is "$RC" 0 "notification with CR/LF in title, domain, key and file name delivered"
M=$(last_msg tls)
J=$(parse "$M" "${M%.eml}.json")
is "$(jget "$J" '[k for k in d["names"] if k in ("bcc", "x-evil")]')" "[]" "no Bcc: or X-Evil: header was injected"
is "$(jget "$J" 'len(d["rcpts"])')" 4 "the envelope holds only the configured recipients"
is "$(jget "$J" 'd["subject"]')" "[dmarcwatch] Injected  Bcc: victim@evil.example  X-Evil: 1" \
	"line breaks in the title became spaces"
is "$(jget "$J" 'd["att"][0]["filename"] + " " + d["att"][0]["type"]')" ".._x___X-Evil: 4.csv application/octet-stream" \
	"attachment file name and media type sanitised"
is "$(jget "$J" '[l for l in d["head"].splitlines() if l.lower().startswith("x-evil")]')" "[]" \
	"no header line starts with X-Evil"

# --- 4. the built-in test notification; implicit TLS ------------------------
mkcfg smtps <<EOF
url: smtps://127.0.0.1:$PORT_smtps
username: dmarc
password_file: $T/pwfile
from: dmarcwatch@example.org
to: ops@example.com
subject_prefix: "[DMARC Ä]"
ca_file: $T/cert.pem
EOF
printf '%s\n' "$PW" >"$T/pwfile"
tn smtps --wait 10
is "$RC" 0 "built-in test notification delivered over smtps:// (implicit TLS), password from password_file"
M=$(last_msg smtps)
J=$(parse "$M" "${M%.eml}.json")
is "$(jget "$J" 'd["encrypted"]')" True "the implicit-TLS session was encrypted"
is "$(jget "$J" 'd["subject"]')" "[DMARC Ä] dmarcwatch test notification" "subject_prefix used (and encoded: non-ASCII)"
is "$(jget "$J" '" ".join(d["structure"])')" \
	"multipart/mixed multipart/alternative text/plain text/html text/csv" "test notification with its CSV"
like "$(jget "$J" 'd["text"]')" "source_ip     messages" "test notification table in the text part"

# --- 5. plaintext only when explicitly allowed ------------------------------
stdcfg plainok "smtp://127.0.0.1:$PORT_plain" "starttls: false" "allow_plaintext: true"
tn plainok --wait 10
is "$RC" 0 "starttls: false + allow_plaintext: true delivers to a server without TLS"
like "$ERR" "starttls: false: mail and the password go in clear text" "a warning says so"
is "$(jget "$(parse "$(last_msg plain)" "$(last_msg plain | sed 's/eml$/json/')")" 'd["encrypted"]')" False \
	"(the session was indeed in clear)"

stdcfg plainreq "smtp://127.0.0.1:$PORT_plain"
before=$(nmsgs plain)
auths=$(grep -c '^auth' "$T/rx-plain/events.log")
tn plainreq --wait 10
is "$RC" 1 "a server without STARTTLS, STARTTLS required: not delivered (exit 1)"
like "$ERR" "does not offer STARTTLS, which this notifier requires" "the message says why"
like "$ERR" "not delivered:" "test-notify reports the failure"
is "$(nmsgs plain)" "$before" "nothing reached the server"
is "$(grep -c '^auth' "$T/rx-plain/events.log")" "$auths" "the password was not sent in clear (no AUTH attempted)"

# --- 6. wrong password, untrusted certificate -------------------------------
stdcfg badpw "smtp://127.0.0.1:$PORT_tls" "password: env:BAD_PW" "ca_file: $T/cert.pem"
before=$(nmsgs tls)
tn badpw --wait 10
is "$RC" 1 "wrong password: FAIL, exit 1 (not retried)"
like "$ERR" "login refused: 535 5.7.8 Authentication credentials invalid (check username and password" \
	"the message names the refused login and the server's answer"
like "$ERR" "dead letter" "the notification is a dead letter"
is "$(nmsgs tls)" "$before" "no message stored"
like "$(tail -1 "$T/rx-tls/events.log")" "auth-failed" "the server saw the failed login"

stdcfg untrusted "smtp://127.0.0.1:$PORT_tls"
auths=$(grep -c '^auth' "$T/rx-tls/events.log")
tn untrusted --wait 10
is "$RC" 1 "certificate not trusted (no ca_file): refused, exit 1"
like "$ERR" "certificate" "the message names the certificate problem"
like "$ERR" "set ca_file" "and what to do"
is "$(nmsgs tls)" "$before" "no message stored"
is "$(grep -c '^auth' "$T/rx-tls/events.log")" "$auths" "no login attempted over the untrusted connection"

stdcfg noverify "smtp://127.0.0.1:$PORT_tls" "verify: false"
tn noverify --wait 10
is "$RC" 0 "verify: false delivers despite the untrusted certificate"
like "$ERR" "TLS certificates are NOT checked" "with a warning"

# --- 7. temporary and permanent SMTP answers --------------------------------
stdcfg down "smtp://127.0.0.1:$PORT_down" "ca_file: $T/cert.pem"
tn down --wait 3
is "$RC" 75 "server down: RETRY, still pending after --wait 3 (exit 75)"
like "$ERR" "not delivered within" "test-notify says it is still pending"
like "$ERR" "SMTP smtp://127.0.0.1:$PORT_down: " "the error names the server"

stdcfg rcpt550 "smtp://127.0.0.1:$PORT_tls" "ca_file: $T/cert.pem" "to: bad@example.com"
before=$(nmsgs tls)
tn rcpt550 --wait 10
is "$RC" 1 "the only recipient refused with 550: FAIL, exit 1"
like "$ERR" "the server refused RCPT TO: 550 5.1.1 <bad@example.com>: no such user (permanent; not retried)" \
	"the message names the command and the server's answer"
is "$(nmsgs tls)" "$before" "nothing delivered"

stdcfg rcpt450 "smtp://127.0.0.1:$PORT_tls" "ca_file: $T/cert.pem" "to: busy@example.com"
tn rcpt450 --wait 2
is "$RC" 75 "the only recipient refused with 450: RETRY (exit 75)"
like "$ERR" "the server refused RCPT TO for now: 450 4.2.1 mailbox busy" "the message names the temporary refusal"

stdcfg rcptmix "smtp://127.0.0.1:$PORT_tls" "ca_file: $T/cert.pem" "to: [ops@example.com, bad@example.com]"
tn rcptmix --wait 10
is "$RC" 0 "one recipient refused, one accepted: delivered (a retry would duplicate it)"
like "$ERR" "1 recipient(s) refused by the server, the others got the message (first refused <bad@example.com>: 550 5.1.1" \
	"a warning names the refused recipient"
is "$(jget "$(parse "$(last_msg tls)" "$(last_msg tls | sed 's/eml$/json/')")" 'd["rcpts"]')" "['ops@example.com']" \
	"the accepted recipient got it"

stdcfg data451 "smtp://127.0.0.1:$PORT_later" "ca_file: $T/cert.pem"
tn data451 --wait 2
is "$RC" 75 "DATA answered 451: RETRY (exit 75)"
like "$ERR" "the server refused DATA for now: 451 4.3.0 queue full" "with the server's answer"
stdcfg data554 "smtp://127.0.0.1:$PORT_spam" "ca_file: $T/cert.pem"
tn data554 --wait 10
is "$RC" 1 "DATA answered 554: FAIL (exit 1)"
like "$ERR" "the server refused DATA: 554 5.7.1 message refused as spam (permanent; not retried)" "with the server's answer"

# --- 8. configuration errors -------------------------------------------------
cfgerr() { # cfgerr NAME EXPECTED-SUBSTRING DESCRIPTION KEYS
	mkcfg "$1" <<<"$4"
	tn "$1"
	is "$RC" 1 "config error: $3 (exit 1)"
	like "$ERR" "$2" "  ... message: $2"
}
cfgerr nostarttls "notifiers[0].starttls: false would send mail (and the password) in clear text" "starttls: false without allow_plaintext" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: a@example.org\nto: b@example.org\nstarttls: false\n')"
cfgerr smtpsstarttls "does not apply to smtps://" "starttls: false with smtps://" \
	"$(printf 'url: smtps://127.0.0.1:465\nfrom: a@example.org\nto: b@example.org\nstarttls: false\nallow_plaintext: true\n')"
cfgerr unknown "notifiers[0].bcc: unknown key for this plugin" "unknown key" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: a@example.org\nto: b@example.org\nbcc: c@example.org\n')"
cfgerr crlf "notifiers[0].from: contains a control character" "CR/LF in from (refused by the loader already)" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: "a@example.org\\r\\nBcc: x@evil.example"\nto: b@example.org\n')"
cfgerr badto "notifiers[0].to: recipient 2 is not an e-mail address" "a bad recipient" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: a@example.org\nto: [b@example.org, "not an address"]\n')"
cfgerr badprefix "notifiers[0].subject_prefix: contains a control character" "a line break in subject_prefix" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: a@example.org\nto: b@example.org\nsubject_prefix: "x\\ny"\n')"
cfgerr urlcreds "the SMTP URL must not hold credentials" "credentials in the URL" \
	"$(printf 'url: "smtp://dmarc:%s@127.0.0.1:25"\nfrom: a@example.org\nto: b@example.org\n' "$BADPW")"
is "$(grep -c -- "$BADPW" "$T/urlcreds/stderr")" 0 "  ... and the password in the URL is not echoed"
cfgerr http "must start with smtp:// (STARTTLS) or smtps:// (TLS)" "a non-SMTP URL" \
	"$(printf 'url: http://127.0.0.1:25\nfrom: a@example.org\nto: b@example.org\n')"
cfgerr nopw "notifiers[0].username: needs a password" "username without password" \
	"$(printf 'url: smtp://127.0.0.1:25\nusername: dmarc\nfrom: a@example.org\nto: b@example.org\n')"
cfgerr noto "to: required" "no recipient" \
	"$(printf 'url: smtp://127.0.0.1:25\nfrom: a@example.org\n')"
cfgerr nofrom "from: required" "no sender" \
	"$(printf 'url: smtp://127.0.0.1:25\nto: b@example.org\n')"

# --- 9. no secret anywhere ---------------------------------------------------
leaks=$(grep -rlF -e "$PW" -e "$BADPW" "$T"/*/stdout "$T"/*/stderr "$T"/rx-*/ 2>/dev/null | wc -l)
is "$leaks" 0 "neither password appears in any output, log or stored message"

done_testing
