#!/bin/bash
# Command-line behaviour: help, version, usage errors, missing files.
. "$(dirname "$0")/lib.sh"

out=$("$DMARCWATCH" --version); ok $? "--version exits 0"
like "$out" "dmarcwatch " "--version prints the name and version"
for c in parse import report run check-config test-notify outbox replay digest; do
	out=$("$DMARCWATCH" $c --help); ok $? "$c --help exits 0"
	like "$out" "usage: dmarcwatch $c" "$c --help prints its usage"
	out=$("$DMARCWATCH" $c --version); ok $? "$c --version exits 0"
	like "$out" "dmarcwatch " "$c --version prints the version"
done
"$DMARCWATCH" >/dev/null 2>&1; is $? 2 "no command: exit 2"
out=$("$DMARCWATCH" frobnicate 2>&1); is $? 2 "unknown command: exit 2"
like "$out" "unknown command 'frobnicate'" "unknown command is named"
out=$("$DMARCWATCH" parse 2>&1); is $? 2 "parse without FILE: exit 2"
out=$("$DMARCWATCH" parse --format yaml x 2>&1); is $? 2 "bad --format: exit 2"
like "$out" "got 'yaml'" "bad --format value is quoted"
out=$("$DMARCWATCH" parse "$T/nope.xml" 2>/dev/null); is $? 1 "missing file: exit 1"
like "$out" '"error"' "missing file: JSON error line"
like "$out" "No such file" "missing file: the system's reason"
printf 'From: Alice <alice@example.org>\nTo: dmarc@example.com\nSubject: lunch?\nMessage-ID: <1@example.org>\n\nHello,\nthis is a human mail.\n' >"$T/human.eml"
out=$("$DMARCWATCH" parse "$T/human.eml" 2>/dev/null); is $? 1 "a mail without report: exit 1"
like "$out" "no DMARC report" "a mail without report says so"
"$DMARCWATCH" parse "$DATA/corpus/aggregate/cry-inc/aol.xml" >/dev/full 2>"$T/err"; is $? 1 "a write error (full disk) is an error"
like "$(cat "$T/err")" "cannot write" "a write error is reported"
printf 'Hello,\n\nno header at all.\n' >"$T/text.txt"
out=$("$DMARCWATCH" parse "$T/text.txt" 2>/dev/null); is $? 1 "a text file: exit 1"
like "$out" "not an e-mail message" "a text file is neither a report nor a mail"
out=$("$DMARCWATCH" parse --limit decompressed_max=2X x 2>&1); is $? 2 "--limit with a bad size: exit 2"
like "$out" "got '2X'" "--limit quotes the bad value"
out=$("$DMARCWATCH" parse --limit frobs=1 x 2>&1); is $? 2 "--limit with an unknown name: exit 2"
like "$out" "unknown limit 'frobs'" "--limit names the unknown limit"
python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(open(sys.argv[1],"rb").read()))' \
	"$DATA/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-003.xml" >"$T/r.xml.gz"
out=$("$DMARCWATCH" parse --no-records --limit decompressed_max=1K "$T/r.xml.gz" 2>/dev/null); is $? 1 "--limit decompressed_max=1K refuses a 3.6 KB report"
like "$out" "1 KiB limit" "the lowered limit is named"
out=$("$DMARCWATCH" parse --no-records --limit decompressed_max=1MiB "$T/r.xml.gz"); ok $? "--limit decompressed_max=1MiB accepts it"
# run refuses root unless told otherwise (run-tests.sh exports DMARCWATCH_ALLOW_ROOT=1).
mkdir -p "$T/md/cur" "$T/md/new" "$T/md/tmp"
printf 'state_dir: %s/state\naccounts:\n  - name: local\n    source: maildir\n    path: %s/md\n' "$T" "$T" >"$T/root.yaml"
if [ "$(id -u)" -eq 0 ]; then
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" run --once -c "$T/root.yaml" 2>&1); is $? 1 "run as root: exit 1"
	like "$out" "refusing to run as root" "run as root: refused, and says why"
	like "$out" "--allow-root" "run as root: the refusal names the way out"
	[ ! -e "$T/state" ]; ok $? "run as root: nothing was created before the refusal"
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" run --once --allow-root -c "$T/root.yaml" 2>&1); ok $? "run --allow-root as root: runs"
	out=$(DMARCWATCH_ALLOW_ROOT=1 "$DMARCWATCH" run --once -c "$T/root.yaml" 2>&1); ok $? "DMARCWATCH_ALLOW_ROOT=1 as root: runs"
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" test-notify -c "$T/root.yaml" x 2>&1); is $? 1 "test-notify as root: exit 1"
	like "$out" "test-notify: refusing to run as root" "test-notify as root: refused (the exec notifier runs commands)"
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" test-notify --allow-root -c "$T/root.yaml" x 2>&1); is $? 1 "test-notify --allow-root: goes on (and fails on the unknown notifier)"
	like "$out" "no notifier named 'x'" "test-notify --allow-root: the notifier is looked up"
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" check-config -c "$T/root.yaml" 2>&1); ok $? "check-config as root is allowed (it reads, it does not run)"
	out=$("$DMARCWATCH" check-config --allow-root -c "$T/root.yaml" 2>&1); is $? 2 "check-config --allow-root: a usage error (only run takes it)"
else
	out=$(env -u DMARCWATCH_ALLOW_ROOT "$DMARCWATCH" run --once -c "$T/root.yaml" 2>&1); ok $? "run as a normal user needs no option"
fi
is "$(stat -c %a "$T/state" 2>&1)" 700 "run created the state directory, mode 0700"
done_testing
