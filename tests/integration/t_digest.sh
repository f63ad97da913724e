#!/bin/bash
# The daily digest over gen_history.py's history, in America/New_York and
# Asia/Tokyo: `digest --date D --dry-run` shows, per domain, the figures the
# generator's truth gives (messages, DMARC pass/fail, SPF and DKIM fail,
# quarantined, rejected, the previous day, the 14-day median, the
# reporters, the top failing sources) and `--dry-run --csv` exactly the
# truth's rows; without --dry-run it is queued once and delivered once.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$ROOT" "$T" "$DW_TEST_PLUGINS" <<'PY'
import collections, csv, datetime, io, json, os, re, statistics, subprocess, sys
dw, root, tmp, plugins = sys.argv[1:5]
n = failed = 0
def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:40]:
            print("#   " + line)
    return cond
def run(*args):
    return subprocess.run([dw] + list(args), capture_output=True, text=True)

TOP = 5   # digest.top in tests/data/rules/digest.yaml.in
DOMAINS = ["example.com", "example.org"]
LABELS = ("Messages", "DMARC pass", "DMARC fail", "SPF fail", "DKIM fail", "Quarantined", "Rejected")
FIELDS = ("messages", "dmarc_pass", "dmarc_fail", "spf_fail", "dkim_fail", "quarantined", "rejected")

def num(s):
    return int(s.replace(",", ""))

def setup(zone, name):
    base = os.path.join(tmp, name)
    gen = subprocess.run([sys.executable, os.path.join(root, "tests/integration/gen_history.py"), base, "--tz", zone],
                         capture_output=True, text=True)
    if not ok(gen.returncode == 0, "%s: gen_history.py writes the history" % name, gen.stderr):
        return None, None
    os.makedirs(os.path.join(base, "state"), mode=0o700)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(base, "Maildir", sub))
    with open(os.path.join(root, "tests/data/rules/digest.yaml.in")) as f:
        cfg = f.read()
    for k, v in (("@STATE_DIR@", os.path.join(base, "state")), ("@TZ@", zone), ("@PLUGIN_DIR@", plugins),
                 ("@MAILDIR@", os.path.join(base, "Maildir")), ("@REC@", os.path.join(base, "rec.txt"))):
        cfg = cfg.replace(k, v)
    path = os.path.join(base, "dmarcwatch.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    with open(os.path.join(base, "truth.json")) as f:
        truth = json.load(f)
    p = run("import", "--db", os.path.join(base, "state", "dmarcwatch.db"), os.path.join(base, "mail"))
    ok(p.returncode == 0 and p.stdout.startswith("imported %d, duplicates 0" % len(truth["reports"])),
       "%s: import stores all %d report mails" % (name, len(truth["reports"])), p.stdout + p.stderr)
    return path, truth

def blocks(text):
    """The digest's text cut into {domain: [lines]} (a domain's block starts at its name)."""
    out, cur = {}, None
    for line in text.splitlines():
        if line in DOMAINS:
            cur = out.setdefault(line, [])
        elif line and not line.startswith(" "):
            cur = None
        elif cur is not None:
            cur.append(line)
    return out

def tenths(part, whole):
    return part * 100.0 / whole

def check_day(cfg, truth, day, name):
    daily = truth["daily"]
    t = daily[day]
    p = run("digest", "-c", cfg, "--date", day, "--dry-run")
    if not ok(p.returncode == 0 and ("DMARC digest for %s" % day) in p.stdout, "%s %s: digest --dry-run" % (name, day),
              p.stdout + p.stderr):
        return
    text = p.stdout
    tot = sum(t[d]["messages"] for d in t)
    fail = sum(t[d]["dmarc_fail"] for d in t)
    m = re.search(r"All domains: ([\d,]+) messages?, ([\d.]+) % DMARC pass, ([\d,]+) DMARC fail", text)
    ok(m is not None and num(m.group(1)) == tot and num(m.group(3)) == fail and
       abs(float(m.group(2)) - tenths(tot - fail, tot)) <= 0.05 + 1e-9,
       "%s %s: all domains: %d messages, %d fail" % (name, day, tot, fail), m.group(0) if m else text[:400])
    bl = blocks(text)
    for dom in DOMAINS:
        want = t[dom]
        lines = bl.get(dom)
        if not ok(lines is not None, "%s %s %s: the domain has its section" % (name, day, dom), text):
            continue
        got, rates = {}, {}
        for line in lines:
            x = re.match(r"^  (%s)\s+([\d,]+)(?:\s+([\d.]+) %%)?\s*$" % "|".join(LABELS), line)
            if x:
                got[x.group(1)] = num(x.group(2))
                if x.group(3):
                    rates[x.group(1)] = float(x.group(3))
        wantf = {lab: want[f] for lab, f in zip(LABELS, FIELDS)}
        ok(got == wantf, "%s %s %s: messages %d, pass %d, fail %d, SPF fail %d, DKIM fail %d, quarantined %d, "
           "rejected %d" % ((name, day, dom) + tuple(want[f] for f in FIELDS)), "got %r\nwant %r" % (got, wantf))
        badr = [(lab, r, tenths(wantf[lab], want["messages"])) for lab, r in rates.items()
                if abs(r - tenths(wantf[lab], want["messages"])) > 0.05 + 1e-9]
        ok("DMARC pass" in rates and not badr, "%s %s %s: the rates are the counts over messages" % (name, day, dom),
           badr or lines[:9])
        # the previous day and the 14-day median (of the days before with data)
        d0 = datetime.date.fromisoformat(day)
        prev = (d0 - datetime.timedelta(days=1)).isoformat()
        pm = next((re.match(r"^  Previous day\s+([\d,]+) messages?, ([\d.]+) % pass \((\S+)\)", l) for l in lines
                   if l.startswith("  Previous day")), None)
        pw = daily.get(prev, {}).get(dom)
        if pw:
            ok(pm is not None and num(pm.group(1)) == pw["messages"] and pm.group(3) == prev and
               abs(float(pm.group(2)) - tenths(pw["dmarc_pass"], pw["messages"])) <= 0.05 + 1e-9,
               "%s %s %s: previous day %d messages, %.1f %% pass" % (name, day, dom, pw["messages"],
                                                                  tenths(pw["dmarc_pass"], pw["messages"])),
               pm.group(0) if pm else lines)
        base = [daily[k][dom] for k in ((d0 - datetime.timedelta(days=i)).isoformat() for i in range(1, 15))
                if k in daily and dom in daily[k] and daily[k][dom]["messages"] > 0]
        mm = next((re.match(r"^  14-day median\s+([\d,]+) messages?, ([\d.]+) % pass \((\d+) days? with data\)", l)
                   for l in lines if l.startswith("  14-day median")), None)
        if base:
            med = statistics.median(b["messages"] for b in base)
            mrate = statistics.median(tenths(b["dmarc_pass"], b["messages"]) for b in base)
            ok(mm is not None and abs(num(mm.group(1)) - med) <= 0.5 and int(mm.group(3)) == len(base) and
               abs(float(mm.group(2)) - mrate) <= 0.1 + 1e-9,
               "%s %s %s: 14-day median %s messages, %.1f %% pass over %d days" % (name, day, dom, med, mrate,
                                                                                len(base)),
               mm.group(0) if mm else lines)
        # reporters seen, with their messages
        rep_text, on = "", False
        for line in lines:
            if line.startswith("  Reporters"):
                on, rep_text = True, line[len("  Reporters"):]
            elif on and line.startswith(" " * 18):
                rep_text += " " + line
            else:
                on = False
        reps = {a.strip(): num(b) for a, b in re.findall(r"([^;()]+?) \(([\d,]+)\)", rep_text)}
        ok(reps == want["reporters"], "%s %s %s: reporters %s" % (name, day, dom, want["reporters"]),
           "got %r" % reps)
        # top failing sources: a valid top TOP of the truth's, with the rest summed
        rows, on = [], False
        for line in lines:
            if line.strip() == "Top failing sources":
                on = True
            elif on and line.startswith("    source_ip"):
                continue
            elif on and line.startswith("    ") and not line.startswith("    ..."):
                c = line.split()
                rows.append((c[0], num(c[1]), c[2], c[3], c[4], " ".join(c[5:])))
            elif on and line.startswith("    ..."):
                rest = re.match(r"^    \.\.\. and (\d+) more failing sources? \(([\d,]+) messages?\)", line)
                rows.append(("...", int(rest.group(1)) if rest else -1, num(rest.group(2)) if rest else -1))
            else:
                on = False
        fails = want["failing"]
        shown = [r for r in rows if r[0] != "..."]
        more = [r for r in rows if r[0] == "..."]
        errs = []
        if len(shown) != min(TOP, len(fails)):
            errs.append("%d rows shown, want %d" % (len(shown), min(TOP, len(fails))))
        for r in shown:
            if fails.get(r[0]) != r[1]:
                errs.append("%s: %d failing, truth %r" % (r[0], r[1], fails.get(r[0])))
            if r[2:5] != ("fail", "fail", dom):
                errs.append("%s: spf/dkim/header_from %r, want fail fail %s (each failing message fails both)"
                            % (r[0], r[2:5], dom))
        if [r[1] for r in shown] != sorted((r[1] for r in shown), reverse=True):
            errs.append("not sorted by messages")
        if shown and any(v > min(r[1] for r in shown) for ip, v in fails.items() if ip not in {r[0] for r in shown}):
            errs.append("a source with more failing messages is left out")
        if len(fails) > TOP:
            rest = sum(fails.values()) - sum(r[1] for r in shown)
            if more != [("...", len(fails) - TOP, rest)]:
                errs.append("want '... and %d more failing sources (%d messages)', got %r" % (len(fails) - TOP, rest, more))
        elif more:
            errs.append("unexpected %r" % more)
        ok(not errs, "%s %s %s: the top %d of %d failing sources" % (name, day, dom, min(TOP, len(fails)), len(fails)),
           "\n".join(errs) + "\n" + "\n".join(lines))

    # the CSV: exactly the truth's rows
    p = run("digest", "-c", cfg, "--date", day, "--dry-run", "--csv")
    rd = list(csv.reader(io.StringIO(p.stdout)))
    head = ["day", "domain", "source_ip", "reporter", "header_from", "disposition", "dkim", "spf", "dmarc", "reason",
            "messages"]
    ok(p.returncode == 0 and rd and rd[0] == head, "%s %s: --csv has the header %s" % (name, day, ",".join(head)),
       p.stdout[:300] + p.stderr)
    got = collections.Counter(tuple(r) for r in rd[1:])
    want = collections.Counter(tuple([day] + r[:-1] + [str(r[-1])]) for dom in DOMAINS for r in t[dom]["rows"])
    ok(got == want, "%s %s: --csv has exactly the %d rows of the truth" % (name, day, sum(want.values())),
       "\n".join(["missing: %s" % (x,) for x in sorted(want - got)] + ["unexpected: %s" % (x,) for x in sorted(got - want)]))
    raw = subprocess.run([dw, "digest", "-c", cfg, "--date", day, "--dry-run", "--csv"], capture_output=True).stdout
    ok(raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""), "%s %s: CSV lines end in CRLF" % (name, day))

def D(truth, i):
    return (datetime.date.fromisoformat(truth["start"]) + datetime.timedelta(days=i)).isoformat()

for zone, name, days in (("America/New_York", "ny", (10, 20, 22, 30, 35, 41, 46)), ("Asia/Tokyo", "tokyo", (30, 35, 46))):
    cfg, truth = setup(zone, name)
    if cfg is None:
        continue
    sc = truth["scenario"]
    for i in days:
        check_day(cfg, truth, D(truth, i), name)
    # the scenario in the figures (the truth agrees with the story, the digest with the truth)
    dd = truth["daily"]
    ok(dd[D(truth, sc["spoof_day"])]["example.org"]["failing"].get("203.0.113.5") == 120 and
       dd[D(truth, sc["policy_day"] + 1)]["example.com"]["quarantined"] > 0 and
       "Yahoo" not in dd[D(truth, sc["silent_day"] + 1)]["example.com"]["reporters"],
       "%s: the truth holds the spoofer, the quarantines after p=quarantine and Yahoo's silence" % name)

# Queued for real: once, then delivered once (the CSV as its attachment).
cfg, truth = os.path.join(tmp, "ny", "dmarcwatch.yaml"), None
day = "2026-03-03"
p = run("digest", "-c", cfg, "--date", day)
ok(p.returncode == 0 and "1 notification(s) queued" in p.stdout, "digest --date %s queues it for rec" % day,
   p.stdout + p.stderr)
p = run("digest", "-c", cfg, "--date", day)
ok(p.returncode == 0 and "0 notification(s) queued" in p.stdout, "asked again, it is not queued twice", p.stdout + p.stderr)
p = run("outbox", "-c", cfg, "--format", "json")
ents = [json.loads(l) for l in p.stdout.splitlines()]
ok(len(ents) == 1 and day in ents[0]["idempotency_key"], "the outbox holds one digest entry, keyed by its day", p.stdout)
p = run("run", "-c", cfg, "--once")
rec = os.path.join(tmp, "ny", "rec.txt")
lines = open(rec).read().splitlines() if os.path.exists(rec) else []
csv_len = len(subprocess.run([dw, "digest", "-c", cfg, "--date", day, "--dry-run", "--csv"], capture_output=True).stdout)
# (the agent may queue the digest of today's settled day too: only ours is looked at)
ours = [l.split("\t") for l in lines if ents and l.split("\t")[0] == ents[0]["idempotency_key"]]
ok(len(ours) == 1 and ours[0][1] == "digest" and ours[0][-1] == str(csv_len),
   "run --once delivers it once, with the %d-byte CSV attached" % csv_len, "\n".join(lines) + p.stderr[-1500:])
p = run("run", "-c", cfg, "--once")
again = open(rec).read().splitlines() if os.path.exists(rec) else []
ok(again == lines, "a second run --once delivers nothing more", "\n".join(again[len(lines):]))

print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
