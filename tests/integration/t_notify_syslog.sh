#!/bin/bash
# t_notify_syslog.sh - the syslog notifier through `dmarcwatch test-notify`:
# RFC 5424 to a unix datagram socket, UDP and TCP (octet counting) receivers
# on loopback, exact header/SD/MSG structure with escaping, the 2048-byte UDP
# limit, RETRY when the collector is down, the local (BSD, syslog(3)-style)
# format on a private socket, and configuration errors.
#
# The local mode's default socket /dev/log is never replaced: the plugin
# takes `socket:` for the local daemon's socket, so the local format is
# tested on a private socket; /dev/log itself only gets one test message
# when a syslog daemon already listens there (else that test is skipped).
. "$(dirname "$0")/lib.sh"

RECV=$ROOT/tests/integration/syslog_receiver.py
mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"

# wait_for FILE [SECONDS]: until FILE exists (default 10 s).
wait_for() {
	local i=0 max=$((${2:-10} * 20))
	while [ ! -e "$1" ] && [ $i -lt $max ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -e "$1" ]
}

# receiver MODE DIR [SOCKET]: start a receiver recording into DIR ($RPID);
# waits for it.
receiver() {
	mkdir -p "$2"
	python3 "$RECV" "$1" "$2" ${3:+"$3"} 2>"$2/stderr" &
	RPID=$!
	wait_for "$2/ready" || echo "# receiver $1 did not start: $(cat "$2/stderr")"
}

# notifier YAML-LINES...: the config for one run (fresh state dir each time).
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
		echo "  - name: sl"
		echo "    plugin: syslog"
		echo "    retry_min: 1s"
		for l in "$@"; do echo "    $l"; done
	} >"$CFG"
}

# notify [ARGS...]: test-notify notifier sl; sets RC, OUT, ERR.
notify() {
	"$DMARCWATCH" test-notify -c "$CFG" "$@" sl >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# An RFC 5424 parser (strict, RFC 5424 §6 ABNF) printing the parts as JSON.
cat >"$T/p5424.py" <<'EOF'
import json, re, sys
data = open(sys.argv[1], "rb").read()
m = re.match(rb"<([0-9]{1,3})>([1-9][0-9]{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ", data)
if not m:
    sys.exit("not RFC 5424: %r" % data[:80])
pos = m.end()
sd = []
ok_name = rb"[\x21-\x7e]{1,32}"
if data[pos:pos + 1] == b"-":
    pos += 1
while data[pos:pos + 1] == b"[":
    em = re.compile(rb"\[(" + ok_name.replace(rb"\x21-\x7e", rb"\x21\x23-\x3c\x3e-\x5c\x5e-\x7e") + rb")").match(data, pos)
    if not em:
        sys.exit("bad SD-ID at %d" % pos)
    pos = em.end()
    params = []
    while data[pos:pos + 1] == b" ":
        pm = re.compile(rb" ([\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32})=\"").match(data, pos)
        if not pm:
            sys.exit("bad SD-PARAM at %d: %r" % (pos, data[pos:pos + 40]))
        pos = pm.end()
        val = b""
        while True:
            c = data[pos:pos + 1]
            if c == b"":
                sys.exit("unterminated PARAM-VALUE")
            if c == b"\\" and data[pos + 1:pos + 2] in (b'"', b"\\", b"]"):
                val += data[pos + 1:pos + 2]
                pos += 2
                continue
            if c in (b'"',):
                pos += 1
                break
            if c == b"]":
                sys.exit("unescaped ] in PARAM-VALUE")
            val += c
            pos += 1
        params.append([pm.group(1).decode(), val.decode("utf-8")])
    if data[pos:pos + 1] != b"]":
        sys.exit("SD-ELEMENT not closed at %d" % pos)
    pos += 1
    sd.append([em.group(1).decode(), params])
rest = data[pos:]
bom = rest.startswith(b" \xef\xbb\xbf")
msg = rest[4:].decode("utf-8") if bom else rest[1:].decode("utf-8", "replace")
print(json.dumps({"pri": int(m.group(1)), "version": int(m.group(2)), "timestamp": m.group(3).decode(),
                  "hostname": m.group(4).decode(), "app": m.group(5).decode(), "procid": m.group(6).decode(),
                  "msgid": m.group(7).decode(), "sd": sd, "bom": bom, "msg": msg, "len": len(data)}))
EOF
parse() { python3 "$T/p5424.py" "$1" || echo '{}'; }
# jget, quiet when an earlier failure left nothing to look at
pj() { jget "$@" 2>/dev/null; }

if ! "$DMARCWATCH" test-notify --help >/dev/null 2>&1; then
	skip "dmarcwatch test-notify is not available"
	done_testing
	exit
fi

# A notification whose rule and domain need SD escaping (" ] \) and a field
# whose name is not a valid SD-NAME.
cat >"$T/alert.json" <<'EOF'
{"kind": "alert", "severity": "warning", "time": "2026-11-23T09:00:00Z",
 "idempotency_key": "alert-key-1", "rule": "fail\"rate] \\x", "domain": "ex\"am]ple\\.com",
 "title": "example.com: DMARC fail rate 12.5 % > 5 %",
 "body": "12.5 % of 1234 messages failed.\n\nTop source: 192.0.2.1 (\"mx\")\n",
 "fields": [{"name": "messages", "value": "1234"}, {"name": "fail rate=\"x\"", "value": "12.5 %]"}]}
EOF
TITLE='example.com: DMARC fail rate 12.5 % > 5 %'

# --- 1. unix datagram socket, RFC 5424 -------------------------------------
receiver unix "$T/ru" "$T/ru.sock"
config "server: unix:$T/ru.sock" "facility: local3" "app_name: dw-test" "hostname: test-host.example"
notify --json "$T/alert.json"
is "$RC" 0 "unix: delivered (exit 0)"
like "$OUT" "sl: delivered" "unix: test-notify says delivered"
wait_for "$T/ru/msg.1" 5
P=$(parse "$T/ru/msg.1")
is "$(pj "$P" 'd["pri"]')" $((19 * 8 + 4)) "unix: PRI = local3 (19) * 8 + warning (4)"
is "$(pj "$P" 'd["version"]')" 1 "unix: VERSION 1"
like "$(pj "$P" 'bool(__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["timestamp"]))')" True \
	"unix: TIMESTAMP is RFC 3339 UTC with milliseconds"
is "$(pj "$P" 'abs(__import__("datetime").datetime.strptime(d["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp() - __import__("time").time()) < 120')" True \
	"unix: TIMESTAMP is the time of sending"
is "$(pj "$P" 'd["hostname"]')" test-host.example "unix: HOSTNAME from hostname:"
is "$(pj "$P" 'd["app"]')" dw-test "unix: APP-NAME from app_name:"
like "$(pj "$P" 'd["procid"].isdigit()')" True "unix: PROCID is a pid"
is "$(pj "$P" 'd["msgid"]')" ALERT "unix: MSGID ALERT"
is "$(pj "$P" '[e[0] for e in d["sd"]]')" "['dmarc@32473']" "unix: one SD element dmarc@32473"
is "$(pj "$P" '[p[0] for p in d["sd"][0][1]]')" "['rule', 'domain', 'severity', 'kind', 'key', 'messages', 'fail_rate__x_']" \
	"unix: SD params in order, field name cut to SD-NAME"
is "$(pj "$P" 'd["sd"][0][1][0][1]')" 'fail"rate] \x' "unix: rule with \" ] \\ round-trips"
is "$(pj "$P" 'd["sd"][0][1][1][1]')" 'ex"am]ple\.com' "unix: domain with \" ] \\ round-trips"
is "$(pj "$P" 'd["sd"][0][1][2][1] + " " + d["sd"][0][1][3][1]')" "warning alert" "unix: severity and kind"
is "$(pj "$P" 'd["sd"][0][1][4][1]')" alert-key-1 "unix: key = the idempotency key"
is "$(pj "$P" 'd["sd"][0][1][5][1] + "|" + d["sd"][0][1][6][1]')" "1234|12.5 %]" "unix: field values"
grep -qF 'rule="fail\"rate\] \\x" domain="ex\"am\]ple\\.com"' "$T/ru/msg.1"
ok $? "unix: raw bytes escape \" ] \\ with a backslash"
is "$(pj "$P" 'd["bom"]')" True "unix: MSG starts with the UTF-8 BOM"
is "$(pj "$P" 'd["msg"]')" "$TITLE -- 12.5 % of 1234 messages failed. | Top source: 192.0.2.1 (\"mx\")" \
	"unix: MSG = title -- body lines joined"
[ ! -e "$T/ru/msg.2" ]
ok $? "unix: exactly one message"

# --- 2. UDP, the built-in test notification, default names ----------------
receiver udp "$T/rudp"
UPORT=$(cat "$T/rudp/port")
config "server: udp://127.0.0.1:$UPORT"
notify
is "$RC" 0 "udp: built-in test notification delivered"
wait_for "$T/rudp/msg.1" 5
P=$(parse "$T/rudp/msg.1")
is "$(pj "$P" 'd["pri"]')" $((16 * 8 + 6)) "udp: PRI = local0 (default) * 8 + info"
is "$(pj "$P" 'd["msgid"]')" TEST "udp: MSGID TEST"
is "$(pj "$P" 'd["app"]')" dmarcwatch "udp: APP-NAME defaults to dmarcwatch"
is "$(pj "$P" 'd["hostname"]')" "$(hostname)" "udp: HOSTNAME defaults to gethostname()"
is "$(pj "$P" '"rule" in [p[0] for p in d["sd"][0][1]]')" False "udp: no rule param for a test"
is "$(pj "$P" 'dict(d["sd"][0][1])["kind"] + " " + dict(d["sd"][0][1])["severity"]')" "test info" "udp: kind=test severity=info"
like "$(pj "$P" 'd["msg"]')" "dmarcwatch test notification -- " "udp: MSG has the title and body"

# --- 3. UDP: a huge body stays within 2048 bytes, SD intact ----------------
python3 - "$T/huge.json" <<'EOF'
import json, sys
body = "\n".join("line %d: caf\u00e9 \u20ac %s" % (i, "x" * (i % 7)) for i in range(5000))
n = {"kind": "resolved", "severity": "critical", "title": "big \u00e9 title", "body": body,
     "rule": "r1", "domain": "example.org", "idempotency_key": "huge-1",
     "fields": [{"name": "f%d" % i, "value": "v%d" % i} for i in range(8)]}
json.dump(n, open(sys.argv[1], "w"))
EOF
notify --json "$T/huge.json"
is "$RC" 0 "udp huge: delivered"
wait_for "$T/rudp/msg.2" 5
P=$(parse "$T/rudp/msg.2")
ok $? "udp huge: still valid RFC 5424 (and the MSG valid UTF-8 after the cut)"
like "$(pj "$P" 'd["len"] <= 2048 and d["len"] > 1900')" True "udp huge: datagram fills but stays within 2048 bytes"
is "$(pj "$P" '[p[0] for p in d["sd"][0][1]]')" "['rule', 'domain', 'severity', 'kind', 'key', 'f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']" \
	"udp huge: SD complete"
like "$(pj "$P" 'd["msg"].endswith("...")')" True "udp huge: MSG cut, marked with ..."
is "$(pj "$P" 'd["pri"]')" $((16 * 8 + 5)) "udp huge: resolved -> notice (5) whatever the severity"
is "$(pj "$P" 'd["msgid"]')" RESOLVED "udp huge: MSGID RESOLVED"

# --- 4. TCP, octet counting -------------------------------------------------
receiver tcp "$T/rtcp"
TPORT=$(cat "$T/rtcp/port")
config "server: tcp://127.0.0.1:$TPORT" "facility: daemon"
sed -e 's/"warning"/"critical"/' "$T/alert.json" >"$T/crit.json"
notify --json "$T/crit.json"
is "$RC" 0 "tcp: delivered"
wait_for "$T/rtcp/msg.1" 5
P=$(parse "$T/rtcp/msg.1")
is "$(pj "$P" 'd["pri"]')" $((3 * 8 + 2)) "tcp: PRI = daemon (3) * 8 + crit (2)"
is "$(pj "$P" 'd["sd"][0][1][0][1]')" 'fail"rate] \x' "tcp: SD escaping survives the framing"
notify --json "$T/huge.json"
is "$RC" 0 "tcp huge: delivered"
wait_for "$T/rtcp/msg.2" 5
P=$(parse "$T/rtcp/msg.2")
like "$(pj "$P" '2048 < d["len"] <= 8192')" True "tcp huge: one frame, larger than UDP's limit, within 8192"
[ ! -e "$T/rtcp/errors" ]
ok $? "tcp: every frame was valid octet counting"

# --- 5. TCP collector down -> RETRY ----------------------------------------
receiver tcp "$T/rdown"
DPORT=$(cat "$T/rdown/port")
kill "$RPID"
wait "$RPID" 2>/dev/null
config "server: tcp://127.0.0.1:$DPORT" "timeout: 2s"
notify --wait 2
is "$RC" 75 "tcp down: still pending after --wait 2 (exit 75)"
like "$ERR" "cannot connect: Connection refused" "tcp down: the error says why"
like "$ERR" "tcp://127.0.0.1:$DPORT" "tcp down: and names the server"

# --- 6. local mode (syslog(3)-style line) on a private socket ---------------
receiver unix "$T/rl" "$T/rl.sock"
config "socket: $T/rl.sock" "facility: local5" "ident: dw-local"
notify --json "$T/crit.json"
is "$RC" 0 "local: delivered"
wait_for "$T/rl/msg.1" 5
LINE=$(cat "$T/rl/msg.1")
[[ "$LINE" =~ ^\<170\>[A-Z][a-z][a-z]\ [\ 1-3][0-9]\ [0-2][0-9]:[0-5][0-9]:[0-6][0-9]\ dw-local\[[0-9]+\]:\  ]]
ok $? "local: <PRI>Mmm dd hh:mm:ss ident[pid]: with PRI = local5 (21) * 8 + crit (2)"
like "$LINE" "]: $TITLE -- kind=alert severity=critical rule=\"fail\\\"rate] \\\\x\" domain=\"ex\\\"am]ple\\\\.com\" key=" \
	"local: title, then key=value pairs, quoted and escaped"
like "$LINE" " messages=1234 fail_rate__x_=\"12.5 %]\" -- 12.5 % of 1234 messages failed. | Top source" \
	"local: fields as key=value, then the body"
rm -f "$T/rl.sock"
config "socket: $T/rl.sock"
notify --json "$T/crit.json" --wait 1
is "$RC" 75 "local: no syslog daemon on the socket -> retried, still pending"
like "$ERR" "cannot connect to the syslog socket $T/rl.sock" "local: the error names the socket"

# /dev/log: only if a daemon already listens there; never replaced.
if [ -S /dev/log ] && python3 -c 'import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null; then
	config "facility: local0"
	notify
	is "$RC" 0 "local: default /dev/log accepts the test notification"
else
	skip "no syslog daemon listens on /dev/log (it is not replaced by this test)"
fi

# --- 7. configuration errors ------------------------------------------------
config "server: tcp://127.0.0.1:514" "ident: x"
notify
is "$RC" 1 "config: ident with server: refused"
like "$ERR" "notifiers[0].ident: applies only to local syslog" "config: says why, with the key"
config "server: tls://logs.example:6514"
notify
like "$ERR" "notifiers[0].server: expected udp://HOST[:PORT], tcp://HOST[:PORT] or unix:/PATH" "config: unknown scheme refused"
config "facility: local9"
notify
like "$ERR" "notifiers[0].facility: expected one of: kern, user" "config: unknown facility refused, names listed"
config "server: udp://host:70000"
notify
like "$ERR" "port 1-65535" "config: bad port refused"

done_testing
