#!/bin/bash
# The systemd unit: generated from packaging/systemd/dmarcwatch.service.in by
# the Makefile (pointing at the binary under test), `systemd-analyze verify`
# accepts it, `systemd-analyze security --offline` rates its sandbox, its
# ExecStartPre command line really checks a configuration, and, once the
# agent speaks the notify protocol, its ExecStart command line sends
# READY=1 / RELOADING=1 / STOPPING=1 to $NOTIFY_SOCKET as Type=notify needs.
# (No service manager runs here, so the sandbox itself is not exercised.)
. "$(dirname "$0")/lib.sh"

# Highest acceptable `systemd-analyze security` exposure (0 = locked down,
# 10 = unprotected; "OK" is below 5). The unit scores 1.1 on systemd 252.
max_exposure=${DW_UNIT_EXPOSURE_MAX:-1.5}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not installed (scripts/deps.sh installs systemd)"
	done_testing
	exit
fi

bindir=$(dirname "$DMARCWATCH")
[ "$(basename "$DMARCWATCH")" = dmarcwatch ]
ok $? "the binary under test is called dmarcwatch ($DMARCWATCH)"
unit="$T/dmarcwatch.service"
make -s -C "$ROOT" systemd-unit UNIT_OUT="$unit" BINDIR="$bindir" SYSCONFDIR="$T/etc" >"$T/make.log" 2>&1
ok $? "make systemd-unit writes the unit"
is "$(grep -c '@[A-Z_]*@' "$unit")" 0 "no placeholder left"
is "$(stat -c %a "$unit")" 644 "it is 0644"
is "$(sed -n 's/^ExecStart=//p' "$unit")" "$bindir/dmarcwatch run -c $T/etc/dmarcwatch/dmarcwatch.yaml" "ExecStart= runs the agent on BINDIR and SYSCONFDIR"
is "$(sed -n 's/^ExecStartPre=//p' "$unit")" "$bindir/dmarcwatch check-config -c $T/etc/dmarcwatch/dmarcwatch.yaml" "ExecStartPre= checks the same file"
is "$(sed -n 's/^ConditionPathExists=//p' "$unit")" "$T/etc/dmarcwatch/dmarcwatch.yaml" "ConditionPathExists= on that file: inert until configured"

systemd-analyze verify --man=no "$unit" >"$T/verify.log" 2>&1
rc=$?
ok $rc "systemd-analyze verify accepts it"
[ $rc -eq 0 ] || sed 's/^/#   /' "$T/verify.log"
is "$(cat "$T/verify.log")" "" "without a single warning"

# Every Documentation=man:PAGE(N) is a page we ship in packaging/man.
for m in $(sed -n 's/^Documentation=//p' "$unit"); do
	case $m in
	man:*)
		page=${m#man:}
		f="$ROOT/packaging/man/${page%(*}.$(echo "${page#*(}" | tr -d ')')"
		[ -f "$f" ]
		ok $? "Documentation=$m is shipped as packaging/man/${f##*/}"
		;;
	esac
done

# The check can fail: a unit whose binary is missing is refused.
make -s -C "$ROOT" systemd-unit UNIT_OUT="$T/bad.service" BINDIR="$T/nowhere" SYSCONFDIR="$T/etc" >/dev/null 2>&1
out=$(systemd-analyze verify --man=no "$T/bad.service" 2>&1)
is $? 1 "systemd-analyze verify refuses a unit whose ExecStart= binary is missing"
like "$out" "$T/nowhere/dmarcwatch" "naming the path"

# The sandbox score.
systemd-analyze security --offline=true "$unit" >"$T/security.txt" 2>&1
ok $? "systemd-analyze security --offline=true runs"
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p' "$T/security.txt")
echo "# systemd-analyze security: $(grep 'Overall exposure' "$T/security.txt")"
grep '^✗' "$T/security.txt" | sed 's/  */ /g; s/^/#   /'
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s != "" && s + 0 <= m + 0) }'
ok $? "exposure $score <= $max_exposure"
# What stays open is what a network client needs; anything else is a regression.
systemd-analyze security --offline=true --json=short "$unit" >"$T/security.json" 2>/dev/null
open=$(python3 -c '
import json, sys
allowed = {"PrivateNetwork=", "IPAddressDeny=", "RestrictAddressFamilies=~AF_(INET|INET6)",
           "RestrictAddressFamilies=~AF_UNIX", "RootDirectory=/RootImage=", "DeviceAllow="}
for x in json.load(open(sys.argv[1])):
    if not x["set"] and x["name"] not in allowed:
        print(x["name"])' "$T/security.json")
is "$open" "" "nothing is left open beyond network access, the root directory and ProtectClock's rtc entry"

# The unit's own command lines, run as systemd would run them (without the
# sandbox): check-config on a real configuration.
mkdir -p "$T/etc/dmarcwatch" "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp" "$T/state"
cat >"$T/etc/dmarcwatch/dmarcwatch.yaml" <<YAML
state_dir: $T/state
plugin_dir: $DW_PLUGIN_BUILD
accounts:
  - name: local
    source: maildir
    path: $T/Maildir
    poll_interval: 1h
YAML
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
out=$($pre 2>&1)
ok $? "ExecStartPre= ($pre) passes on a good configuration"
like "$out" "configuration OK (1 account" "and says so"
echo "accounts: [" >>"$T/etc/dmarcwatch/dmarcwatch.yaml"
$pre >/dev/null 2>&1
is $? 1 "and fails on a broken one (so the unit never starts on it)"
sed -i '$d' "$T/etc/dmarcwatch/dmarcwatch.yaml"

# Type=notify: the agent must tell $NOTIFY_SOCKET when it is ready, or
# systemd kills it after TimeoutStartSec.
if ! grep -q 'dw_sd_notify' "$ROOT/src/main.c"; then
	skip "the agent does not send READY=1 yet (src/main.c does not call dw_sd_notify)"
else
	mkdir "$T/notify"
	python3 "$ROOT/tests/integration/syslog_receiver.py" unix "$T/notify" "$T/notify.sock" &
	recv=$!
	wait_for 10 test -S "$T/notify.sock"
	ok $? "a notify socket listens"
	start=$(sed -n 's/^ExecStart=//p' "$unit")
	NOTIFY_SOCKET="$T/notify.sock" $start >"$T/agent.log" 2>&1 &
	agent=$!
	# sent N PATTERN: at least N datagrams matched PATTERN.
	sent() { [ "$(grep -ls -- "$2" "$T"/notify/msg.* | wc -l)" -ge "$1" ]; }
	wait_for 20 sent 1 'READY=1'
	rc=$?
	ok $rc "ExecStart=: the agent sends READY=1 to \$NOTIFY_SOCKET"
	[ $rc -eq 0 ] || sed 's/^/#   /' "$T/agent.log"
	kill -HUP $agent
	wait_for 20 sent 1 'RELOADING=1'
	ok $? "SIGHUP (ExecReload=): RELOADING=1"
	like "$(cat "$(grep -ls RELOADING=1 "$T"/notify/msg.* | head -1)")" "MONOTONIC_USEC=" "with MONOTONIC_USEC"
	wait_for 20 sent 2 'READY=1'
	ok $? "then READY=1 again"
	kill -TERM $agent
	(sleep 15; kill -9 $agent 2>/dev/null) &
	timer=$!
	wait $agent
	is $? 0 "SIGTERM: the agent exits with status 0 within TimeoutStopSec=15"
	kill $timer 2>/dev/null
	wait_for 5 sent 1 'STOPPING=1'
	ok $? "having sent STOPPING=1"
	kill $recv 2>/dev/null
fi
done_testing
