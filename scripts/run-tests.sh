#!/bin/sh
# Run TAP test programs (unit binaries or integration scripts) and count
# assertions. Appends "passed failed" to $DW_TALLY when set, prints a
# one-line result per program, exits non-zero if anything failed.
# A program that exits non-zero without a failed assertion counts as one failure.
set -u
total_pass=0
total_fail=0
logdir=${DW_LOGDIR:-build/test-logs}
# CI runs as root; the agent refuses root without this (t_cli checks the refusal).
export DMARCWATCH_ALLOW_ROOT=1
mkdir -p "$logdir"
for t in "$@"; do
	name=$(basename "$t")
	log="$logdir/$name.log"
	# A hung test must not hang CI: every program gets at most
	# DW_TEST_TIMEOUT seconds (default 600), then it is killed.
	case "$t" in
	*.sh) timeout -k 10 "${DW_TEST_TIMEOUT:-600}" bash "$t" >"$log" 2>&1 ;;
	*) timeout -k 10 "${DW_TEST_TIMEOUT:-600}" "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "not ok - $name timed out after ${DW_TEST_TIMEOUT:-600} s" >>"$log"
	fi
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	s=$(grep -c '^ok .*# *[Ss][Kk][Ii][Pp]' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$f" -eq 0 ]; then
		printf '  PASS  %-32s %4d ok%s\n' "$name" "$p" "$( [ "$s" -gt 0 ] && echo " ($s skipped)")"
	else
		printf '  FAIL  %-32s %4d ok, %d failed (log: %s)\n' "$name" "$p" "$f" "$log"
		grep -A4 '^not ok ' "$log" | head -40 | sed 's/^/        /'
	fi
done
if [ -n "${DW_TALLY:-}" ]; then
	echo "$total_pass $total_fail" >>"$DW_TALLY"
fi
[ "$total_fail" -eq 0 ]
