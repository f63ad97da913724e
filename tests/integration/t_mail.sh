#!/bin/bash
# Whole report mails through the binary: every mislabelling and nesting
# fixture yields exactly the reports it holds.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$DATA" <<'PY'
import json, subprocess, sys, os
dw, data = sys.argv[1], sys.argv[2]
n = failed = 0
def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:10]:
            print("#   " + line)
def parse(path):
    p = subprocess.run([dw, "parse", "--no-records", path], capture_output=True, text=True)
    return p.returncode, [json.loads(l) for l in p.stdout.splitlines() if l.strip()], p.stderr

# file -> (number of reports, quirk expected in the first report or None)
expect = {
    "gzip-labelled-zip.eml": (1, "mime-label:application/zip-is-gzip"),
    "octet-stream-zip.eml": (1, "mime-label:application/octet-stream-is-zip"),
    "inline-xml.eml": (1, None),
    "single-part-gzip.eml": (1, None),
    "related-html.eml": (1, None),
    "rfc822-depth1.eml": (1, None),
    "rfc822-depth3.eml": (1, None),
    "rfc822-base64.eml": (1, "rfc822-transfer-encoded"),
    "two-reports.eml": (2, None),
    "qp-xml.eml": (1, None),
    "lf-only.eml": (2, None),
    "cte-missing.eml": (1, "mime-base64-unlabelled"),
}
for f, (count, quirk) in sorted(expect.items()):
    rc, lines, err = parse(os.path.join(data, "mail", f))
    reports = [l for l in lines if "error" not in l]
    ok(rc == 0 and len(reports) == count, "%s: %d report(s)" % (f, count), "%d %r %s" % (rc, lines, err))
    if reports and quirk:
        ok(quirk in reports[0]["quirks"], "%s: quirk %s" % (f, quirk), reports[0]["quirks"])
    for r in reports:
        ok(r["totals"]["messages"] > 0 and r["report_id"], "%s: report %s has messages" % (f, r.get("report_id")))

rc, lines, err = parse(os.path.join(data, "mail", "two-reports.eml"))
ok(len(lines) == 2 and lines[0].get("part", "").startswith("part 1") and lines[1].get("part", "").startswith("part 2"),
   "two reports in one mail are told apart by part", lines)

for f, why in (("human.eml", "no DMARC report"), ("rfc822-depth4.eml", "no DMARC report")):
    rc, lines, err = parse(os.path.join(data, "mail", f))
    ok(rc == 1 and len(lines) == 1 and why in lines[0].get("error", ""), "%s: not a report" % f, lines)
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
