#!/bin/bash
# import + report over the real corpus: dedup, revisions, per-day totals in
# two time zones, filters, and a second import that changes nothing.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$DATA/corpus" "$T" <<'PY'
import collections, csv, datetime, json, os, subprocess, sys, zoneinfo
dw, corpus, tmp = sys.argv[1:4]
n = failed = 0
def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:12]:
            print("#   " + line)
def run(*args, **kw):
    return subprocess.run([dw] + list(args), capture_output=True, text=True, **kw)

db = os.path.join(tmp, "t.db")
agg = os.path.join(corpus, "aggregate")

# The oracle: parse every file (parse itself is checked against the
# inventory by t_corpus.sh), then replay the import order (sorted paths) to
# know which reports are new, duplicates or revisions.
files = []
for d, _, fs in os.walk(agg):
    files += [os.path.join(d, f) for f in fs if not f.startswith(".")]
files.sort()
current, new, dups, failed_docs = {}, 0, 0, 0
for f in files:
    p = run("parse", f)
    for line in p.stdout.splitlines():
        r = json.loads(line)
        if "error" in r:
            failed_docs += 1
            continue
        key = (r["org_name"], r["report_id"], r["policy_domain"], r["begin"], r["end"])
        recs = sorted(json.dumps(x, sort_keys=True) for x in r["records"])
        content = (json.dumps(r["policy"], sort_keys=True), recs)
        if key in current and current[key][0] == content:
            dups += 1
        else:
            new += 1
            current[key] = (content, r)

p = run("import", "--db", db, agg)
ok(p.returncode == 1, "import exits 1 when some files failed", p.stderr)
summary = p.stdout.splitlines()[0] if p.stdout else ""
ok(summary == "imported %d, duplicates %d, not reports 0, failed %d" % (new, dups, failed_docs),
   "import summary: %s" % summary, "expected imported %d, duplicates %d, failed %d\n%s" % (new, dups, failed_docs, p.stdout))
ok("invalid_xml.xml" in p.stderr and "line 5" in p.stderr, "a failure line names the file and the reason", p.stderr)
ok("empty.xml" in p.stderr, "the empty file is named", p.stderr)

# Per-day totals in UTC equal the oracle's (each report here spans <= 36 h,
# so it lands whole on the day holding most of it).
def day_of(b, e, tz):
    z = zoneinfo.ZoneInfo(tz)
    e = max(e, b)
    end = e + 1 if (e - b) % 86400 == 86399 else e   # ...:59:59 ends mean "to the end of that second"
    best, best_s = None, -1
    t = b
    while True:
        lt = datetime.datetime.fromtimestamp(t, z)
        midnight = datetime.datetime(lt.year, lt.month, lt.day, tzinfo=z)
        nxt = int((midnight + datetime.timedelta(days=1)).replace(tzinfo=z).timestamp())
        seg = min(nxt, end) - t if end > b else 0
        if seg > best_s:
            best, best_s = lt.date().isoformat(), seg
        if nxt >= end:
            break
        t = nxt
    return best
for tz in ("UTC", "Asia/Tokyo"):
    want = collections.Counter()
    wfail = collections.Counter()
    for (org, rid, dom, b, e), (_, r) in current.items():
        if e - b > 36 * 3600:
            continue
        want[(dom, day_of(b, e, tz))] += r["totals"]["messages"]
        wfail[(dom, day_of(b, e, tz))] += r["totals"]["dmarc_fail"]
    p = run("report", "--db", db, "--tz", tz, "--by", "day", "--format", "json")
    got = collections.Counter()
    gfail = collections.Counter()
    for line in p.stdout.splitlines():
        d = json.loads(line)
        got[(d["domain"], d["day"])] += d["messages"]
        gfail[(d["domain"], d["day"])] += d["dmarc_fail"]
        ok(d["dmarc_pass"] + d["dmarc_fail"] == d["messages"], "%s %s %s: pass + fail = messages" % (tz, d["domain"], d["day"]))
    ok(p.returncode == 0 and got == want, "report --by day --tz %s: messages per domain and day" % tz,
       "got  %r\nwant %r" % (sorted(got.items()), sorted(want.items())))
    ok(gfail == wfail, "report --by day --tz %s: dmarc fails per domain and day" % tz)

# A report whose day differs between UTC and Tokyo: Outlook 2024-03-30 00:00 UTC -> 03-31 00:00 UTC
p = run("report", "--db", db, "--tz", "UTC", "--domain", "example.com", "--since", "2024-03-30", "--until", "2024-03-30", "--format", "json")
rows = [json.loads(l) for l in p.stdout.splitlines()]
ok(len(rows) == 1 and rows[0]["day"] == "2024-03-30" and rows[0]["messages"] == 1, "--since/--until/--domain select one UTC day", p.stdout + p.stderr)
p = run("report", "--db", db, "--tz", "Asia/Tokyo", "--domain", "example.com", "--since", "2024-03-30", "--until", "2024-03-30", "--format", "json")
rows = [json.loads(l) for l in p.stdout.splitlines()]
ok(len(rows) == 1 and rows[0]["messages"] == 1, "the same report is on 2024-03-30 in Tokyo (09:00 to 09:00)", p.stdout)

# --by source and --by reporter sum to the same total
total = sum(r["totals"]["messages"] for _, r in current.values())
for by in ("day", "source", "reporter"):
    p = run("report", "--db", db, "--by", by, "--format", "json")
    s = sum(json.loads(l)["messages"] for l in p.stdout.splitlines())
    ok(s == total, "--by %s: messages sum to %d" % (by, total), "got %d" % s)
p = run("report", "--db", db, "--by", "source", "--domain", "example.com", "--format", "json")
ips = {json.loads(l)["source_ip"] for l in p.stdout.splitlines()}
ok("12.20.127.122" in ips, "--by source lists sending IPs", ips)
p = run("report", "--db", db, "--format", "csv")
ok(p.returncode == 0 and p.stdout.startswith("domain,day,messages"), "csv report has a header", p.stdout[:200])
p = run("report", "--db", db)
ok(p.returncode == 0 and "DOMAIN" in p.stdout and "example.com" in p.stdout, "table report", p.stdout[:300])

# Importing again stores nothing new.
p = run("import", "--db", db, agg)
ok(p.stdout.splitlines()[0] == "imported 0, duplicates %d, not reports 0, failed %d" % (new + dups, failed_docs),
   "a second import finds only duplicates", p.stdout)
p2 = run("report", "--db", db, "--by", "reporter", "--format", "json")
ok(sum(json.loads(l)["messages"] for l in p2.stdout.splitlines()) == total, "totals unchanged after re-import")

# Mails and other kinds are sorted into not-reports, not failures.
p = run("import", "--db", db, os.path.join(corpus, "forensic"), os.path.join(corpus, "smtp_tls"))
ok(p.returncode == 0 and p.stdout.startswith("imported 0, duplicates 0, not reports 7, failed 0"),
   "forensic and TLS reports are counted as not reports", p.stdout + p.stderr)

# Errors
p = run("report", "--db", os.path.join(tmp, "missing.db"))
ok(p.returncode == 1 and "import reports first" in p.stderr, "report on a missing database says what to do", p.stderr)
p = run("report", "--db", db, "--since", "2024-13-01")
ok(p.returncode == 2 and "2024-13-01" in p.stderr, "a bad --since is a usage error naming the value", p.stderr)
p = run("report", "--db", db, "--tz", "Mars/Olympus")
ok(p.returncode == 2 and "Mars/Olympus" in p.stderr, "an unknown time zone is refused", p.stderr)
with open(os.path.join(tmp, "notdb"), "w") as f:
    f.write("hello, I am not SQLite\n" * 100)
p = run("import", "--db", os.path.join(tmp, "notdb"), os.path.join(agg, "cry-inc/aol.xml"))
ok(p.returncode == 1 and "notdb" in p.stderr, "a non-database file is refused with its path", p.stderr)
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
