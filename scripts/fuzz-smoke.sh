#!/bin/sh
# Run each libFuzzer harness for FUZZ_SECONDS over a seed corpus built from
# tests/data (copied to a scratch dir so the fuzzer never writes into git).
set -u
secs=${FUZZ_SECONDS:-60}
pass=0
fail=0
for bin in "$@"; do
	name=$(basename "$bin")
	work=$(mktemp -d)
	mkdir -p "$work/corpus"
	seeds="tests/fuzz/seeds/${name#fuzz_}"
	[ -d "$seeds" ] || seeds=tests/data
	find "$seeds" -type f -size -1M -exec cp {} "$work/corpus/" \; 2>/dev/null
	if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
		-artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1; then
		echo "ok - $name ran ${secs}s without a crash"
		pass=$((pass + 1))
	else
		echo "not ok - $name crashed; log and reproducer in $work"
		tail -30 "$work/log" | sed 's/^/#   /'
		fail=$((fail + 1))
		continue
	fi
	rm -rf "$work"
done
[ -n "${DW_TALLY:-}" ] && echo "$pass $fail" >>"$DW_TALLY"
[ "$fail" -eq 0 ]
