#!/bin/bash
# The agent on a local Maildir (the second source): same verdicts, processed
# files moved to Maildir++ sub-folders, a second run changes nothing.
. "$(dirname "$0")/lib.sh"

md="$T/Maildir"
seed_maildir "$md" "$T/mails" >"$T/expect.json"
want=$(jget "$(cat "$T/expect.json")" 'd["messages"]')
cat >"$T/a.yaml" <<YAML
state_dir: $T/state
accounts:
  - name: local
    source: maildir
    path: $md
    archive_folder: Archive
    invalid_folder: Invalid
    untrusted_folder: Untrusted
    trust:
      authserv_id: mx.test.example
YAML
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run1.log"; ok $? "maildir: run --once exits 0"
is "$(grep -c 'verdict=' "$T/run1.log")" 8 "maildir: 8 messages judged"
got=$("$DMARCWATCH" report --db "$T/state/dmarcwatch.db" --by reporter --format json |
	python3 -c 'import json,sys; print(sum(json.loads(l)["messages"] for l in sys.stdin))')
is "$got" "$want" "maildir: totals equal the seeded reports"
is "$(ls "$md/.Archive/cur" | wc -l)" 5 "maildir: 5 stored reports moved to .Archive"
is "$(ls "$md/.Invalid/cur" | wc -l)" 1 "maildir: the malformed one in .Invalid"
is "$(ls "$md/.Untrusted/cur" | wc -l)" 1 "maildir: the spoofed one in .Untrusted"
is "$(find "$md/new" "$md/cur" -type f | wc -l)" 1 "maildir: the human mail stays (no other_folder)"
"$DMARCWATCH" run --once -c "$T/a.yaml" 2>"$T/run2.log"; ok $? "maildir: second run exits 0"
is "$(grep -c 'verdict=' "$T/run2.log")" 0 "maildir: the second run judges nothing again"
done_testing
