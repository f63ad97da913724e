#!/bin/bash
# Every file of the shared corpus either parses with the totals that the
# corpus INVENTORY.tsv records, or is refused with a specific reason.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$DATA/corpus" <<'PY'
import csv, json, subprocess, sys, os
dw, corpus = sys.argv[1], sys.argv[2]
n = failed = 0
def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:10]:
            print("#   " + line)

# Refusals we expect, by file: (substring of the error).
refused = {
    "aggregate/parsedmarc/empty.xml": "empty",
    "aggregate/parsedmarc/invalid_xml.xml": "line 5",
    "forensic/parsedmarc/Netease_DMARC_Failure_Report_Rent_Reminder.eml": "failure report",
    "forensic/parsedmarc/dmarc_ruf_report_linkedin.eml": "failure report",
    "forensic/stalwart-mail-auth/arf-004.eml": "failure report",
    "smtp_tls/cry-inc/microsoft.json": "SMTP TLS report",
    "smtp_tls/parsedmarc/google.com_smtp_tls_report.eml": "SMTP TLS report",
    "smtp_tls/parsedmarc/mail.ru.json": "SMTP TLS report",
    "smtp_tls/stalwart-mail-auth/tlsrpt-rpt01.eml": "SMTP TLS report",
}
with open(os.path.join(corpus, "INVENTORY.tsv")) as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
ok(len(rows) >= 31, "inventory has all corpus files (%d)" % len(rows))
for row in rows:
    rel = row["file"]
    path = os.path.join(corpus, rel)
    p = subprocess.run([dw, "parse", "--format", "json", path], capture_output=True, text=True)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    if rel in refused:
        ok(p.returncode == 1, "%s: refused with exit 1" % rel, p.stderr)
        errs = [l.get("error", "") for l in lines]
        ok(len(lines) == 1 and "error" in lines[0] and refused[rel] in lines[0]["error"],
           "%s: refused because %r" % (rel, refused[rel]), p.stdout + p.stderr)
        continue
    ok(p.returncode == 0 and len(lines) == 1, "%s: one report, exit 0" % rel, p.stdout + p.stderr)
    if len(lines) != 1:
        continue
    d = lines[0]
    ok(d["source"] == path, "%s: source is the FILE argument" % rel)
    ok(d.get("kind") == "aggregate", "%s: kind aggregate" % rel)
    exp = {
        "org_name": row["reporter_org"] or None,
        "report_id": row["report_id"],
        "policy_domain": row["policy_domain"],
        "begin": int(row["date_begin"]),
        "end": int(row["date_end"]),
    }
    got = {k: d.get(k) for k in exp}
    if got["org_name"] == "":
        got["org_name"] = None  # an empty <org_name/> is what the inventory records as empty
    ok(got == exp, "%s: metadata matches the inventory" % rel, "got %r\nexpected %r" % (got, exp))
    t = d["totals"]
    ok(len(d["records"]) == int(row["records"]) and t["records"] == int(row["records"]),
       "%s: %s records" % (rel, row["records"]), t)
    ok(t["messages"] == int(row["messages"]), "%s: %s messages" % (rel, row["messages"]), t)
    ok(t["dmarc_fail"] == int(row["msgs_dmarc_fail"]), "%s: %s dmarc fails" % (rel, row["msgs_dmarc_fail"]), t)
    ok(t["messages"] == sum(r["count"] for r in d["records"]), "%s: totals.messages = sum of counts" % rel)
    ok(t["dmarc_pass"] + t["dmarc_fail"] == t["messages"], "%s: pass + fail = messages" % rel)
    ok(d["schema"] in ("1.0", "2.0"), "%s: schema" % rel)
    for key in ("source","kind","schema","org_name","email","report_id","begin","end","policy_domain","policy","quirks","records","totals"):
        if key not in d:
            ok(False, "%s: key %s present" % (rel, key))
    ok(set(d["policy"]) >= {"p","sp","np","adkim","aspf","pct","testing"}, "%s: policy keys" % rel)

# --no-records gives the same totals without the records key
p = subprocess.run([dw, "parse", "--no-records", os.path.join(corpus, "aggregate/parsedmarc/nice-input.xml.zip")],
                   capture_output=True, text=True)
d = json.loads(p.stdout)
ok("records" not in d and d["totals"]["messages"] == 3047, "--no-records omits records, keeps totals")

# Several FILEs in one run; a failure in the middle does not stop the rest.
files = [os.path.join(corpus, x) for x in ("aggregate/cry-inc/aol.xml", "aggregate/parsedmarc/invalid_xml.xml", "aggregate/cry-inc/gmxnet.xml")]
p = subprocess.run([dw, "parse", "--no-records"] + files, capture_output=True, text=True)
lines = [json.loads(l) for l in p.stdout.splitlines()]
ok(p.returncode == 1 and len(lines) == 3 and "error" in lines[1] and lines[2]["org_name"] == "GMX",
   "a failed FILE prints its error line, the run goes on, exit 1", p.stdout)

# stdin
with open(os.path.join(corpus, "aggregate/tierpod/test.xml.gz.gz"), "rb") as f:
    p = subprocess.run([dw, "parse", "--no-records", "-"], stdin=f, capture_output=True)
d = json.loads(p.stdout)
ok(d["source"] == "-" and d["totals"]["messages"] == 7 and "double-compressed" in d["quirks"],
   "'-' reads stdin; double gzip unwrapped with a quirk", p.stdout)

# csv and table
p = subprocess.run([dw, "parse", "--format", "csv", os.path.join(corpus, "aggregate/parsedmarc/nice-input.xml.zip")],
                   capture_output=True, text=True)
rows_ = list(csv.DictReader(p.stdout.splitlines()))
ok(p.returncode == 0 and len(rows_) == 20 and sum(int(r["count"]) for r in rows_) == 3047,
   "csv: one row per record with a header, counts sum to 3047", p.stdout[:500])
p = subprocess.run([dw, "parse", "--format", "table", os.path.join(corpus, "aggregate/cry-inc/aol.xml")],
                   capture_output=True, text=True)
ok(p.returncode == 0 and "AOL" in p.stdout and "website.com" in p.stdout, "table format prints the report", p.stdout)
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
