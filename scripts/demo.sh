#!/bin/sh
# make demo: import the sample reports shipped in tests/data into a scratch
# database and print the per-day report. (The agent issue turns this into a
# real IMAP run against a local Dovecot.)
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/dmarcwatch-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
db="$dir/demo.db"
echo "== dmarcwatch import --db $db tests/data/corpus/aggregate"
# Two corpus files are broken on purpose (empty, malformed): import reports
# them and exits 1, which is expected here.
./dmarcwatch import --db "$db" tests/data/corpus/aggregate || true
echo
echo "== dmarcwatch report --db $db --by day"
./dmarcwatch report --db "$db" --by day
echo
echo "== dmarcwatch report --db $db --by source --domain example.com"
./dmarcwatch report --db "$db" --by source --domain example.com
