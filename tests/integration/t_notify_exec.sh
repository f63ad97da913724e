#!/bin/bash
# t_notify_exec.sh - the exec notifier through `dmarcwatch test-notify`, with
# a recording helper script as the command: stdin is the notification's JSON,
# argv arrives literally (no shell), the environment is the minimal one plus
# DMARCWATCH_* (nothing of the agent's), no inherited descriptors, cwd;
# exit 75 is retried, exit 3 fails with stderr's first line, a command that
# overruns the timeout is killed with its process group, a command that does
# not read a 1 MB notification does not hang the agent.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp" "$T/rec" "$T/work"

if ! "$DMARCWATCH" test-notify --help >/dev/null 2>&1; then
	skip "dmarcwatch test-notify is not available"
	done_testing
	exit
fi

# The helper records what it got under $OUT (given through env:), by call
# number N, then behaves as $MODE says.
HELPER=$T/helper.sh
cat >"$HELPER" <<'EOF'
#!/bin/bash
n=$(($(cat "$OUT/count" 2>/dev/null || echo 0) + 1))
echo "$n" >"$OUT/count"
echo "$$" >"$OUT/pid.$n"
case "$MODE" in
noread) exit 0 ;;
sleep)
	sleep 60 &
	echo "$!" >"$OUT/child.$n"
	wait
	exit 0
	;;
stubborn)
	trap '' TERM
	sleep 60 &
	echo "$!" >"$OUT/child.$n"
	while :; do wait; done
	;;
esac
cat >"$OUT/stdin.$n"
printf '%s\0' "$0" "$@" >"$OUT/argv.$n"
env -0 >"$OUT/env.$n"
pwd >"$OUT/cwd.$n"
ls /proc/$$/fd >"$OUT/fds.$n"
echo "stdout line"
case "$MODE" in
ok) exit 0 ;;
fail3)
	echo "helper: the pager API said no" >&2
	echo "second line" >&2
	exit 3
	;;
tempfail-once)
	if [ "$n" -eq 1 ]; then
		echo "helper: busy, later" >&2
		exit 75
	fi
	exit 0
	;;
tempfail) exit 75 ;;
signal) kill -KILL $$ ;;
esac
exit 99
EOF
chmod 755 "$HELPER"

# config MODE [YAML-LINES...]: one exec notifier running the helper
# ($EXTRA_ENV: more env list items).
run=0
config() {
	local mode=$1
	shift
	run=$((run + 1))
	CFG=$T/cfg.$run.yaml
	REC=$T/rec/$run
	mkdir -p "$T/state.$run" "$REC"
	{
		echo "state_dir: $T/state.$run"
		echo "plugin_dir: $DW_PLUGIN_BUILD"
		echo "accounts:"
		echo "  - name: none"
		echo "    source: maildir"
		echo "    path: $T/Maildir"
		echo "notifiers:"
		echo "  - name: ex"
		echo "    plugin: exec"
		echo "    retry_min: 1s"
		echo "    env: [\"OUT=$REC\", \"MODE=$mode\"${EXTRA_ENV:+, $EXTRA_ENV}]"
		for l in "$@"; do echo "    $l"; done
	} >"$CFG"
}
CMD="command: [\"$HELPER\"]"

# notify [ARGS...]: test-notify notifier ex; sets RC, OUT, ERR and SECS.
notify() {
	local t0
	t0=$(date +%s%N)
	DW_AGENT_ONLY=leaked-from-agent "$DMARCWATCH" test-notify -c "$CFG" "$@" ex >"$T/out" 2>"$T/err"
	RC=$?
	SECS=$((($(date +%s%N) - t0) / 1000000000))
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
pj() { jget "$@" 2>/dev/null; }

# gone PID: the process no longer runs (gone or a zombie), waiting up to 2 s.
gone() {
	local i=0
	while [ $i -lt 40 ]; do
		if [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

cat >"$T/alert.json" <<'EOF'
{"kind": "alert", "severity": "critical", "time": "2026-11-23T09:00:00Z",
 "idempotency_key": "alert-key-1", "rule": "fail-rate", "domain": "example.com",
 "title": "example.com: DMARC fail rate 12.5 % > 5 %",
 "body": "12.5 % of 1234 messages failed.\nTop source: 192.0.2.1 \u00e9",
 "fields": [{"name": "messages", "value": "1234"}],
 "attachment": {"filename": "dmarc.csv", "media_type": "text/csv", "size": 13,
                "data_base64": "c291cmNlLG4KYSwxCg=="}}
EOF
cat >"$T/same.py" <<'EOF'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
bad = [k for k in want if got.get(k) != want[k]]
if got.get("schema") != "dmarcwatch.notification/1":
    bad.append("schema")
print("same" if not bad else "differs in: " + ", ".join(bad))
EOF
python3 - "$T/big.json" <<'EOF'
import json, sys
json.dump({"kind": "digest", "severity": "info", "title": "big", "idempotency_key": "big-1",
           "body": "x" * (1024 * 1024)}, open(sys.argv[1], "w"))
EOF

# --- 1. what the command gets ----------------------------------------------
EVIL="\$(touch $T/pwned); *"
config ok "command: [\"$HELPER\", \"plain\", \"with  two spaces\", \"$EVIL\", \"--q=\\\"x\\\" 'y'\", \"\"]" "cwd: $T/work"
notify --json "$T/alert.json"
is "$RC" 0 "ok: delivered (exit 0)"
like "$OUT" "ex: delivered (entry 1, attempt 1," "ok: test-notify reports it"
is "$(python3 "$T/same.py" "$T/alert.json" "$REC/stdin.1")" same "ok: stdin is the notification's JSON"
is "$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().split(b"\0")[:-1])' "$REC/argv.1")" \
	"[b'$HELPER', b'plain', b'with  two spaces', b'$EVIL', b'--q=\"x\" \\'y\\'', b'']" "ok: argv exactly as configured"
[ ! -e "$T/pwned" ]
ok $? "ok: \$(touch ...) in an argument did not run"
ENV=$(tr '\0' '\n' <"$REC/env.1")
for v in DMARCWATCH_KIND=alert DMARCWATCH_SEVERITY=critical DMARCWATCH_IDEMPOTENCY_KEY=alert-key-1 \
	DMARCWATCH_ATTEMPT=1 DMARCWATCH_RULE=fail-rate DMARCWATCH_DOMAIN=example.com \
	PATH=/usr/bin:/bin LANG=C.UTF-8 "OUT=$REC" MODE=ok; do
	grep -qxF "$v" <<<"$ENV"
	ok $? "ok: environment has $v"
done
grep -q DW_AGENT_ONLY <<<"$ENV"
is "$?" 1 "ok: the agent's own environment is not passed on"
is "$(cut -d= -f1 <<<"$ENV" | grep -vxE 'DMARCWATCH_[A-Z_]+|PATH|LANG|OUT|MODE|PWD|SHLVL|_' | tr '\n' ' ')" "" \
	"ok: nothing else (bash adds only PWD, SHLVL, _)"
is "$(cat "$REC/cwd.1")" "$T/work" "ok: runs in cwd"
is "$(sort -n "$REC/fds.1" | tr '\n' ' ')" "0 1 2 255 " "ok: only stdin, stdout, stderr (and bash's script fd 255) are open"

# --- 2. exit 3: permanent failure with stderr's first line -----------------
config fail3 "$CMD"
notify --json "$T/alert.json" --wait 10
is "$RC" 1 "exit 3: not delivered, exit 1"
like "$ERR" "not delivered: exec $HELPER: exited with status 3: helper: the pager API said no (dead letter" \
	"exit 3: the error has stderr's first line"
like "$(grep -c 'second line' <<<"$ERR")" 0 "exit 3: only the first line"
is "$(cat "$REC/count")" 1 "exit 3: not retried"

# --- 3. exit 75: retried, delivered the second time ------------------------
config tempfail-once "$CMD"
notify --json "$T/alert.json" --wait 20
is "$RC" 0 "exit 75 once: delivered"
like "$OUT" "attempt 2" "exit 75 once: on attempt 2"
is "$(cat "$REC/count")" 2 "exit 75 once: the command ran twice"
like "$ERR" "exited with status 75 (EX_TEMPFAIL, will retry): helper: busy, later" "exit 75 once: the retry is logged with its reason"
is "$(tr '\0' '\n' <"$REC/env.2" | grep '^DMARCWATCH_ATTEMPT=')" DMARCWATCH_ATTEMPT=2 "exit 75 once: DMARCWATCH_ATTEMPT=2 the second time"
is "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["idempotency_key"])' "$REC/stdin.2")" alert-key-1 \
	"exit 75 once: same idempotency key"

config tempfail "$CMD"
notify --json "$T/alert.json" --wait 2
is "$RC" 75 "exit 75 always: still pending after --wait (exit 75)"

config signal "$CMD"
notify --json "$T/alert.json" --wait 1
is "$RC" 75 "killed by a signal: retried"
like "$ERR" "killed by signal 9" "killed by a signal: says which"

# --- 4. timeout: the process group is killed --------------------------------
config sleep "$CMD" "timeout: 2s"
notify --json "$T/alert.json" --wait 1
is "$RC" 75 "sleep 60, timeout 2s: retried (exit 75)"
like "$ERR" "exec $HELPER: timed out after 2 s and was terminated" "sleep 60: timed out after 2 s"
ok $((SECS > 4)) "sleep 60: test-notify returned within the timeout (${SECS} s)"
gone "$(cat "$REC/pid.1")"
ok $? "sleep 60: the command is gone"
gone "$(cat "$REC/child.1")"
ok $? "sleep 60: and the sleep it started (same process group)"

config stubborn "$CMD" "timeout: 2s"
notify --json "$T/alert.json" --wait 1
is "$RC" 75 "SIGTERM ignored: retried"
like "$ERR" "timed out after 2 s and was killed" "SIGTERM ignored: SIGKILL at the timeout"
gone "$(cat "$REC/pid.1")"
ok $? "SIGTERM ignored: the command is gone"
gone "$(cat "$REC/child.1")"
ok $? "SIGTERM ignored: and its child"

# --- 5. a 1 MB notification ---------------------------------------------------
config noread "$CMD" "timeout: 10s"
notify --json "$T/big.json" --wait 5
is "$RC" 0 "1 MB, command does not read stdin: delivered"
ok $((SECS > 3)) "1 MB, command does not read stdin: no hang (${SECS} s)"
config ok "$CMD" "timeout: 10s"
notify --json "$T/big.json" --wait 5
is "$RC" 0 "1 MB, command reads it: delivered"
is "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["body"]))' "$REC/stdin.1")" 1048576 \
	"1 MB, command reads it: all of it"

# --- 6. configuration errors ---------------------------------------------------
config ok 'command: [helper.sh]'
notify
is "$RC" 1 "config: a relative command refused"
like "$ERR" "notifiers[0].command: the program must be an absolute path" "config: says why"
config ok "command: [$T/missing]"
notify
like "$ERR" "notifiers[0].command: $T/missing: No such file or directory" "config: a missing program refused"
config ok "command: [$T/alert.json]"
notify
like "$ERR" "not an executable file" "config: a non-executable file refused"
EXTRA_ENV='"1BAD=x"' config ok "$CMD"
notify
like "$ERR" "notifiers[0].env: expected NAME=value" "config: a bad variable name refused"
EXTRA_ENV='"DMARCWATCH_KIND=x"' config ok "$CMD"
notify
like "$ERR" "DMARCWATCH_* variables are set by the plugin" "config: DMARCWATCH_* cannot be set"
config ok "$CMD" "cwd: relative/dir"
notify
like "$ERR" "notifiers[0].cwd: expected the absolute path of an existing directory" "config: a relative cwd refused"

done_testing
