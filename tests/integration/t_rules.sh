#!/bin/bash
# Rules over 60 days of generated history (gen_history.py), in
# America/New_York (a DST change on 2026-03-08) and Asia/Tokyo: replay
# --format json gives exactly the alerts an independent model of the
# documented semantics predicts (rules.h, alerts.h, evaluate.h), late reports
# count from their top Received: date, --from/--until restrict the range, and
# replay --notify run again (a restart) queues and delivers nothing twice.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$ROOT" "$T" "$DW_TEST_PLUGINS" <<'PY'
import collections, datetime, functools, ipaddress, json, os, subprocess, sys, zoneinfo
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

UNTIL = "2026-04-01"   # the history's last day (gen_history.py: 60 days from 2026-02-01)
SETTLE = 36 * 3600

# ---- the rules of tests/data/rules/rules.yaml.in, as the model sees them ----
RULES = [
    {"name": "fail-rate", "kind": "threshold", "severity": "critical", "cooldown": 86400, "resolve_after": 2,
     "notify_resolved": True, "ignore_reasons": {"mailing_list", "forwarded"}, "value": 5.0, "min_messages": 100,
     "domains": None},
    {"name": "spoofer", "kind": "new_source", "severity": "critical", "cooldown": 86400, "resolve_after": 2,
     "notify_resolved": True, "ignore_reasons": {"mailing_list", "forwarded"}, "min_messages": 50,
     "lookback": 30, "domains": None},
    {"name": "reporter-gone", "kind": "missing_reporter", "severity": "info", "cooldown": 86400,
     "resolve_after": 2, "notify_resolved": False, "ignore_reasons": set(), "seen": 5, "of": 7, "silent": 2,
     "domains": {"example.com"}},
    {"name": "policy", "kind": "policy_change", "severity": "warning", "cooldown": 86400, "resolve_after": 2,
     "notify_resolved": False, "ignore_reasons": set(), "domains": None},
]
RULE = {r["name"]: r for r in RULES}


class Model:
    """What the documented semantics say replay must print, from the generator's truth.

    Days are local days of the zone; day D settles SETTLE after it ends; at the
    moment day K settles, days K-6..K (not before --from) are judged, rule by
    rule, with the reports received by then; incidents (rule, group) open on
    a true day not already covered, update on a later true day once the
    cooldown has passed since the last notification, and resolve once
    resolve_after days after the last true day were false (alerts.h)."""

    def __init__(self, truth):
        self.z = zoneinfo.ZoneInfo(truth["zone"])
        self.reports = truth["reports"]
        self.facts = collections.defaultdict(list)   # day -> (domain, reporter, source, count, pass, reason, received)
        self.pols = collections.defaultdict(list)    # day -> (domain, reporter, received, report#, policy)
        for i, r in enumerate(self.reports):
            d = datetime.date.fromisoformat(r["day"])
            self.pols[d].append((r["domain"], r["reporter"], r["received"], i, r["policy"]))
            for x in r["records"]:
                self.facts[d].append((r["domain"], r["reporter"], x["source_ip"], x["count"],
                                      x["dkim"] == "pass" or x["spf"] == "pass", x["reason"], r["received"]))
        self.first = datetime.datetime.fromtimestamp(min(r["begin"] for r in self.reports), self.z).date()

    def start(self, d):
        return int(datetime.datetime(d.year, d.month, d.day, tzinfo=self.z).timestamp())

    def settles(self, d):
        return self.start(d + datetime.timedelta(days=1)) + SETTLE

    def kept(self, rule, d, asof):
        for f in self.facts.get(d, []):
            if f[6] <= asof and f[5] not in rule["ignore_reasons"] and \
                    (rule["domains"] is None or f[0] in rule["domains"]):
                yield f

    # each returns {group: (domain, value)} for the groups true on day d
    def threshold(self, r, d, asof):
        tot, bad = collections.Counter(), collections.Counter()
        for dom, _, _, cnt, ok_, _, _ in self.kept(r, d, asof):
            tot[dom] += cnt
            bad[dom] += 0 if ok_ else cnt
        return {dom: (dom, 100.0 * bad[dom] / tot[dom]) for dom in tot
                if tot[dom] >= r["min_messages"] and 100.0 * bad[dom] / tot[dom] > r["value"]}

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def net(ip):
        a = ipaddress.ip_address(ip)
        return str(ipaddress.ip_network("%s/%d" % (ip, 24 if a.version == 4 else 56), strict=False))

    def new_source(self, r, d, asof):
        seen = set()
        for k in range(1, r["lookback"] + 1):
            for dom, _, ip, _, _, _, _ in self.kept(r, d - datetime.timedelta(days=k), asof):
                seen.add((dom, self.net(ip)))
        tot, good = collections.Counter(), collections.Counter()
        for dom, _, ip, cnt, ok_, _, _ in self.kept(r, d, asof):
            tot[(dom, self.net(ip))] += cnt
            good[(dom, self.net(ip))] += cnt if ok_ else 0
        # passing: fail -- mostly failing (a tie counts as failing); a domain without any earlier
        # facts in the lookback (the first day of a history) has nothing to be new against
        known = {dom for dom, _ in seen}
        return {"%s|%s" % g: (g[0], float(tot[g])) for g in tot
                if g not in seen and g[0] in known and tot[g] >= r["min_messages"] and not good[g] * 2 > tot[g]}

    def present(self, r, d, asof):
        return {(dom, rep) for dom, rep, rcv, _, _ in self.pols.get(d, [])
                if rcv <= asof and (r["domains"] is None or dom in r["domains"])}

    def missing_reporter(self, r, d, asof):
        # last seen at least `silent` days ago (nothing on d-silent+1..d), and seen on >= `seen` of the
        # `of` days ending on that last day; followed for silent + of + 30 days back from d
        span = r["silent"] + r["of"] + 30
        seen = {}  # group -> set of k (days back from d) it was present
        for k in range(span):
            for g in self.present(r, d - datetime.timedelta(days=k), asof):
                seen.setdefault(g, set()).add(k)
        out = {}
        for g, ks in seen.items():
            last = min(ks)
            if last < r["silent"]:
                continue
            if sum(1 for k in ks if last <= k < last + r["of"]) >= r["seen"]:
                out["%s|%s" % g] = (g[0], None)
        return out

    def policies(self, d, asof, dom):
        latest = {}
        for pdom, rep, rcv, i, pol in self.pols.get(d, []):
            if pdom == dom and rcv <= asof and (rep not in latest or (rcv, i) > latest[rep][0]):
                latest[rep] = ((rcv, i), pol)
        return [p for _, p in latest.values()]

    def policy_change(self, r, d, asof):
        out = {}
        fields = ("p", "sp", "np", "adkim", "aspf", "pct", "testing")
        for dom in sorted({p[0] for p in self.pols.get(d, [])}):
            cur = self.policies(d, asof, dom)
            if not cur:
                continue
            prev, k = [], 1
            while not prev and d - datetime.timedelta(days=k) >= self.first - datetime.timedelta(days=60):
                prev = self.policies(d - datetime.timedelta(days=k), asof, dom)
                k += 1
            vals = [tuple(p.get(f) for f in fields) for p in cur]
            disagree = len(set(vals)) > 1
            changed = bool(prev) and collections.Counter(vals).most_common(1)[0][0] != \
                collections.Counter(tuple(p.get(f) for f in fields) for p in prev).most_common(1)[0][0]
            if disagree or changed:
                out[dom] = (dom, None)
        return out

    def settled_day(self, now):
        """The latest day settled at now (evaluate.h)."""
        return datetime.datetime.fromtimestamp(now - SETTLE, self.z).date() - datetime.timedelta(days=1)

    def agent(self, now):
        """The agent's first judgement at now, with no incident state: days L-6..L, as known at now.
        Returns the events and the incidents left open."""
        last = self.settled_day(now)
        inc, events = {}, []
        d = last - datetime.timedelta(days=6)
        while d <= last:
            for r in RULES:
                hits = getattr(self, r["kind"])(r, d, now)
                for g in sorted(hits):
                    i = inc.get((r["name"], g))
                    if i is None:
                        inc[(r["name"], g)] = {"open": True, "last_true": d, "opened": d}
                        events.append((d, now, r["name"], hits[g][0], g, "open", hits[g][1]))
                    else:   # open, true again within the same moment: no update (cooldown)
                        i["last_true"] = max(i["last_true"], d)
                for (rn, g), i in inc.items():
                    if rn == r["name"] and i["open"] and d > i["last_true"] and g not in hits and \
                            (d - i["last_true"]).days >= r["resolve_after"]:
                        i["open"] = False
                        events.append((d, now, rn, None, g, "resolved", None))
            d += datetime.timedelta(days=1)
        return last, events, sorted((rn, g, i["opened"].isoformat()) for (rn, g), i in inc.items() if i["open"])

    def replay(self, frm=None, until=UNTIL):
        frm = datetime.date.fromisoformat(frm) if frm else self.first
        until = datetime.date.fromisoformat(until)
        inc = {}
        events = []
        k = frm
        while k <= until:
            at = self.settles(k)
            d = max(frm, k - datetime.timedelta(days=6))
            while d <= k:
                for r in RULES:
                    hits = getattr(self, r["kind"])(r, d, at)
                    for g in sorted(hits):
                        dom, value = hits[g]
                        i = inc.get((r["name"], g))
                        if i and i["open"]:
                            if d > i["last_true"]:
                                i["last_true"] = d
                                if at - i["last_sent"] >= r["cooldown"]:
                                    i["last_sent"] = at
                                    events.append((d, at, r["name"], dom, g, "update", value))
                            continue
                        if i and i["last_true"] >= d:
                            continue
                        inc[(r["name"], g)] = {"open": True, "last_true": d, "last_sent": at, "domain": dom}
                        events.append((d, at, r["name"], dom, g, "open", value))
                    for (rn, g), i in sorted(inc.items()):
                        if rn != r["name"] or not i["open"] or d <= i["last_true"] or g in hits:
                            continue
                        if (d - i["last_true"]).days >= r["resolve_after"]:
                            i["open"] = False
                            events.append((d, at, r["name"], i["domain"], g, "resolved", None))
                d += datetime.timedelta(days=1)
            k += datetime.timedelta(days=1)
        return events


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def key(e):   # (day, at, rule, group, state)
    return (e[0].isoformat(), rfc3339(e[1]), e[2], e[4], e[5])

def setup(zone, name):
    """Generate the history for zone, import it into a fresh state_dir; the config path and the truth."""
    base = os.path.join(tmp, name)
    gen = subprocess.run([sys.executable, os.path.join(root, "tests/integration/gen_history.py"), base, "--tz", zone],
                         capture_output=True, text=True)
    if not ok(gen.returncode == 0, "%s: gen_history.py writes the history" % name, gen.stderr):
        return None, None
    os.makedirs(os.path.join(base, "state"), mode=0o700)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(base, "Maildir", sub))
    with open(os.path.join(root, "tests/data/rules/rules.yaml.in")) as f:
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

def replay(cfg, *args):
    p = run("replay", "-c", cfg, "--format", "json", *args)
    evs = []
    for line in p.stdout.splitlines():
        try:
            evs.append(json.loads(line))
        except ValueError:
            evs.append({"unparsable": line})
    return p, evs

def got_keys(evs):
    return [(e.get("day"), e.get("at"), e.get("rule"), e.get("group"), e.get("state")) for e in evs]

def diff(got, want):
    g, w = collections.Counter(got), collections.Counter(want)
    lines = ["missing: %s" % (x,) for x in sorted(w - g)] + ["unexpected: %s" % (x,) for x in sorted(g - w)]
    return "\n".join(lines) or "(same events, different order or count)"

def D(truth, i):
    return (datetime.date.fromisoformat(truth["start"]) + datetime.timedelta(days=i))

for zone, name in (("America/New_York", "ny"), ("Asia/Tokyo", "tokyo")):
    cfg, truth = setup(zone, name)
    if cfg is None:
        continue
    sc = truth["scenario"]
    m = Model(truth)
    want = m.replay()
    p = run("check-config", "-c", cfg)
    ok(p.returncode == 0, "%s: the rules configuration is valid" % name, p.stdout + p.stderr)

    p, evs = replay(cfg, "--until", UNTIL)
    ok(p.returncode == 0, "%s: replay exits 0" % name, p.stderr)
    got = got_keys(evs)
    ok(sorted(got) == sorted(key(e) for e in want),
       "%s: replay prints exactly the %d expected events (day, at, rule, group, state)" % (name, len(want)),
       diff(got, [key(e) for e in want]))
    ok([e.get("at") for e in evs] == sorted(e.get("at") for e in evs), "%s: events come in time order" % name)
    byk = {key(e): e for e in want}
    bad = []
    for e in evs:
        w = byk.get((e.get("day"), e.get("at"), e.get("rule"), e.get("group"), e.get("state")))
        if w is None:
            continue
        r = RULE[w[2]]
        if set(e) != {"day", "at", "rule", "kind", "domain", "group", "severity", "state", "value", "threshold",
                      "message"}:
            bad.append("members %s" % sorted(e))
        if e.get("kind") != r["kind"] or e.get("domain") != w[3] or e.get("severity") != r["severity"] \
                or not e.get("message"):
            bad.append("kind/domain/severity/message: %s" % e)
        if w[5] == "resolved":
            continue
        if r["kind"] == "threshold" and (abs((e.get("value") or 0) - w[6]) > 1e-6 or e.get("threshold") != 5):
            bad.append("threshold value %r (want %.6f), threshold %r (want 5): %s" % (e.get("value"), w[6],
                                                                                   e.get("threshold"), e))
        if r["kind"] == "new_source" and (e.get("value") != w[6] or e.get("threshold") != 50):
            bad.append("new_source value %r (want %r messages), threshold %r (want 50)" % (e.get("value"), w[6],
                                                                                       e.get("threshold")))
    ok(not bad, "%s: kind, domain, severity, and the measured value and threshold of each event" % name,
       "\n".join(bad))

    # The story, stated by hand (cross-checks the model against the scenario).
    def has(i, rule, group, state, at_day=None):
        day = D(truth, i).isoformat()
        at = rfc3339(m.settles(D(truth, at_day if at_day is not None else i)))
        return (day, at, rule, group, state) in got
    esp, fixed, spoof, silent, pol = sc["esp_break"], sc["esp_fixed"], sc["spoof_day"], sc["silent_day"], sc["policy_day"]
    ok(has(esp, "fail-rate", "example.com", "open"), "%s: the ESP's DKIM break opens fail-rate on day %d" % (name, esp))
    ok(has(fixed + 1, "fail-rate", "example.com", "resolved"),
       "%s: ... resolved 2 days after its fix (day %d)" % (name, fixed + 1))
    ok(has(spoof, "fail-rate", "example.org", "open"), "%s: the spoofing day opens fail-rate for example.org" % name)
    # Google's part of day 30 (100 of the 135 spoofed messages) arrives 2 days late: new_source needs it.
    late_at = next(k for k in range(spoof, spoof + 5) if m.settles(D(truth, k)) >= max(
        r["received"] for r in truth["reports"] if r["index"] == spoof))
    ok(has(spoof, "spoofer", "example.org|203.0.113.0/24", "open", late_at),
       "%s: the spoofer opens for day %d at the settle moment after its late report arrived (day %d's)"
       % (name, spoof, late_at))
    ok(not any(g[2] == "spoofer" and g[3] != "example.org|203.0.113.0/24" for g in got),
       "%s: no other source is new and failing (the mailing list and the forwarder are ignored)" % name,
       [g for g in got if g[2] == "spoofer"])
    ok(has(silent + 1, "reporter-gone", "example.com|Yahoo", "open"),
       "%s: Yahoo silent from day %d: missing_reporter opens on day %d" % (name, silent, silent + 1))
    ok(not any(g[3] == "example.org|Yahoo" for g in got), "%s: example.org is out of the rule's scope" % name)
    ok(any(g[2] == "policy" and g[3] == "example.com" and g[4] == "open" for g in got) and
       not any(g[2] == "policy" and g[3] != "example.com" for g in got),
       "%s: the policy change opens once, for example.com only" % name, [g for g in got if g[2] == "policy"])
    ok(not any(g[2] == "noisy" for g in got), "%s: the disabled rule never fires" % name)
    ok(not any(g[2] == "fail-rate" and g[4] == "open" and g[0] < D(truth, esp).isoformat() for g in got),
       "%s: quiet before the ESP breaks (the mailing list's 7 %% is ignored)" % name)
    if sc["dst_days"] and zone == "America/New_York":
        # 2026-03-08 is 23 hours long: its settle moment comes 23 h after the previous one, inside the
        # 24 h cooldown, so the ESP incident sends no update for that day, and one the day after.
        dst = datetime.date.fromisoformat(sc["dst_days"][0])
        i = (dst - D(truth, 0)).days
        ok(not has(i, "fail-rate", "example.com", "update") and has(i + 1, "fail-rate", "example.com", "update"),
           "%s: the 23-hour DST day is inside the 24 h cooldown: no update for %s, one for the next day" % (name, dst))
    # Day 22's reports all arrive 2 days late: the open incident gets its update when they arrive.
    late22 = [g for g in got if g[2] == "fail-rate" and g[0] == D(truth, 22).isoformat()]
    want22 = [key(e) for e in want if e[2] == "fail-rate" and e[0] == D(truth, 22)]
    ok(sorted(late22) == sorted(want22), "%s: the late day 22 is judged when its reports arrive" % name,
       diff(late22, want22))

    # --from/--until: only those days are judged, from a clean state.
    p, evs = replay(cfg, "--from", "2026-03-01", "--until", "2026-03-10")
    sub = m.replay("2026-03-01", "2026-03-10")
    ok(p.returncode == 0 and sorted(got_keys(evs)) == sorted(key(e) for e in sub),
       "%s: replay --from 2026-03-01 --until 2026-03-10 prints the %d events of that range" % (name, len(sub)),
       diff(got_keys(evs), [key(e) for e in sub]) + p.stderr)
    ok(all("2026-03-01" <= e.get("day", "") <= "2026-03-10" for e in evs), "%s: ... all inside it" % name)
    p, evs = replay(cfg, "--from", "2026-03-10", "--until", "2026-03-01")
    ok(p.returncode == 0 and evs == [], "%s: --from after --until: nothing" % name, p.stdout + p.stderr)

    if name == "ny":
        # The example configuration's rule set, verbatim (its notifier "syslog" recorded instead):
        # "a sensible default rule set that is quiet on healthy domains" -- the 20 days before the
        # ESP breaks are healthy (a mailing list and a forwarder fail DMARC every day, as they do).
        with open(os.path.join(root, "config/dmarcwatch.yaml.example")) as f:
            ex = f.read().splitlines()
        i0 = ex.index("rules:")
        i1 = next((i for i in range(i0 + 1, len(ex)) if ex[i][:1].isalpha()), len(ex))
        excfg = os.path.join(tmp, name, "example.yaml")
        with open(excfg, "w") as f:
            f.write("state_dir: %s\ntimezone: %s\nplugin_dir: %s\naccounts:\n  - {name: r, source: maildir, path: %s}\n"
                    "notifiers:\n  - name: syslog\n    plugin: recorder\n    path: %s\n%s\n"
                    % (os.path.join(tmp, name, "state"), zone, plugins, os.path.join(tmp, name, "Maildir"),
                       os.path.join(tmp, name, "ex.txt"), "\n".join(ex[i0:i1])))
        p, evs = replay(excfg, "--until", D(truth, sc["esp_break"] - 1).isoformat())
        ok(p.returncode == 0 and evs == [], "%s: the example rule set is quiet on the %d healthy days"
           % (name, sc["esp_break"]), "\n".join(json.dumps(e) for e in evs) + p.stderr)
        p, evs = replay(excfg, "--until", UNTIL)
        opened = {(e.get("kind"), e.get("group"), e.get("day")) for e in evs if e.get("state") == "open"}
        story = {("threshold", "example.com", D(truth, esp).isoformat()),
                 ("new_source", "example.org|203.0.113.0/24", D(truth, spoof).isoformat()),
                 ("missing_reporter", "example.com|Yahoo", D(truth, silent + 1).isoformat()),
                 ("policy_change", "example.com", D(truth, pol).isoformat())}
        ok(story <= opened, "%s: ... and catches the ESP, the spoofer, Yahoo's silence and the policy change" % name,
           "missing %s" % sorted(story - opened))

# ---- restart: replay --notify twice, the outbox and the deliveries ---------------
cfg, truth = setup("America/New_York", "notify")
if cfg is not None:
    m = Model(truth)
    def notifiable(events):
        return [("%s|%s|%s|%s" % (e[2], e[4], e[5], e[0].isoformat())) for e in events
                if e[5] != "resolved" or RULE[e[2]]["notify_resolved"]]
    half = notifiable(m.replay(until="2026-03-04"))
    full = notifiable(m.replay())
    ok(len(set(full)) == len(full) and set(half) <= set(full), "the model: keys are unique, the first half is in the whole")
    def queued(p):
        import re
        x = re.search(r"(\d+) notification\(s\) queued", p.stderr)
        return int(x.group(1)) if x else -1
    p = run("replay", "-c", cfg, "--until", "2026-03-04", "--notify")
    ok(p.returncode == 0 and queued(p) == len(half), "replay --notify up to 2026-03-04 queues %d" % len(half),
       p.stderr)
    p = run("replay", "-c", cfg, "--until", UNTIL, "--notify")
    ok(p.returncode == 0 and queued(p) == len(full) - len(half),
       "run again to the end (a restart): only the %d new ones are queued" % (len(full) - len(half)), p.stderr)
    p = run("replay", "-c", cfg, "--until", UNTIL, "--notify")
    ok(p.returncode == 0 and queued(p) == 0, "a third run queues nothing", p.stderr)
    p = run("outbox", "-c", cfg, "--format", "json")
    keys = [json.loads(l)["idempotency_key"] for l in p.stdout.splitlines()]
    ok(collections.Counter(keys) == collections.Counter(full),
       "the outbox holds each of the %d notifications once" % len(full), diff(keys, full))
    rec = os.path.join(tmp, "notify", "rec.txt")
    p = run("run", "-c", cfg, "--once")
    lines = open(rec).read().splitlines() if os.path.exists(rec) else []
    ok(collections.Counter(l.split("\t")[0] for l in lines) == collections.Counter(full),
       "run --once delivers each once to the recorder", diff([l.split("\t")[0] for l in lines], full) + p.stderr[-2000:])
    p = run("replay", "-c", cfg, "--until", UNTIL, "--notify")
    p2 = run("run", "-c", cfg, "--once")
    lines2 = open(rec).read().splitlines() if os.path.exists(rec) else []
    ok(queued(p) == 0 and lines2 == lines, "after delivery, replay --notify and run --once again send nothing",
       p.stderr + p2.stderr[-2000:])
    kinds = collections.Counter(l.split("\t")[1] for l in lines)
    ok(kinds.get("resolved", 0) == sum(1 for k in full if "|resolved|" in k),
       "resolved notifications only for rules with notify_resolved", kinds)

# ---- the agent: judges after each pass, its incidents in the database ---------------
# A history ending yesterday, so that the agent's "now" has settled days with data.
z = zoneinfo.ZoneInfo("America/New_York")
start = datetime.datetime.now(z).date() - datetime.timedelta(days=45)
base = os.path.join(tmp, "agent")
gen = subprocess.run([sys.executable, os.path.join(root, "tests/integration/gen_history.py"), base, "--tz",
                      "America/New_York", "--start", start.isoformat(), "--days", "45"], capture_output=True, text=True)
ok(gen.returncode == 0, "agent: a 45-day history ending yesterday", gen.stderr)
os.makedirs(os.path.join(base, "state"), mode=0o700)
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(base, "Maildir", sub))
with open(os.path.join(root, "tests/data/rules/rules.yaml.in")) as f:
    text = f.read()
for k, v in (("@STATE_DIR@", os.path.join(base, "state")), ("@TZ@", "America/New_York"), ("@PLUGIN_DIR@", plugins),
             ("@MAILDIR@", os.path.join(base, "Maildir")), ("@REC@", os.path.join(base, "rec.txt"))):
    text = text.replace(k, v)
cfg = os.path.join(base, "dmarcwatch.yaml")
with open(cfg, "w") as f:
    f.write(text + 'digest:\n  time: "00:00"\n  notify: [rec]\n')
with open(os.path.join(base, "truth.json")) as f:
    truth = json.load(f)
p = run("import", "--db", os.path.join(base, "state", "dmarcwatch.db"), os.path.join(base, "mail"))
ok(p.returncode == 0, "agent: import", p.stdout + p.stderr)
m = Model(truth)
import time
now = int(time.time())
last, events, still_open = m.agent(now)
want = ["%s|%s|%s|%s" % (e[2], e[4], e[5], e[0].isoformat()) for e in events
        if e[5] != "resolved" or RULE[e[2]]["notify_resolved"]] + ["digest:%s" % last.isoformat()]
# by hand: the ESP has been broken since day 20 and Yahoo silent since day 40
esp_open = "fail-rate|example.com|open|%s" % (last - datetime.timedelta(days=6)).isoformat()
ok(esp_open in want and any(k.startswith("reporter-gone|example.com|Yahoo|open|") for k in want),
   "agent: the model expects the ESP incident (open on the first judged day) and Yahoo's silence", want)
p = run("run", "-c", cfg, "--once")
keys = [json.loads(l)["idempotency_key"] for l in run("outbox", "-c", cfg, "--format", "json").stdout.splitlines()]
ok(collections.Counter(keys) == collections.Counter(want),
   "agent: run --once queues the %d alerts of days %s..%s and the digest of %s" % (
       len(want) - 1, last - datetime.timedelta(days=6), last, last), diff(keys, want) + "\n" + p.stderr[-1500:])
rec = os.path.join(base, "rec.txt")
lines = open(rec).read().splitlines() if os.path.exists(rec) else []
p = run("run", "-c", cfg, "--once")
lines2 = open(rec).read().splitlines() if os.path.exists(rec) else []
keys2 = [json.loads(l)["idempotency_key"] for l in run("outbox", "-c", cfg, "--format", "json").stdout.splitlines()]
ok(sorted(keys2) == sorted(keys) and lines2 == lines and collections.Counter(l.split("\t")[0] for l in lines) ==
   collections.Counter(want), "agent: restarted, it queues and sends nothing again (each delivered once)",
   diff(keys2, keys) + "\n" + "\n".join(lines2))
import sqlite3
db = sqlite3.connect(os.path.join(base, "state", "dmarcwatch.db"))
rows = sorted(db.execute("SELECT rule, grp, opened_day FROM alerts WHERE open = 1").fetchall())
ok(rows == [tuple(x) for x in still_open], "agent: the open incidents are in the database", "%r\nwant %r" % (rows, still_open))
pay = db.execute("SELECT payload FROM outbox WHERE idem_key = ?", ("digest:%s" % last.isoformat(),)).fetchone()
body = json.loads(pay[0]).get("body", "") if pay else ""
ok(("Open alerts (%d)" % len(still_open)) in body and all(g in body for _, g, _ in still_open),
   "agent: its digest lists the %d open alerts" % len(still_open), body[-800:])
p = run("digest", "-c", cfg, "--dry-run")
ok(p.returncode == 0 and ("DMARC digest for %s" % last) in p.stdout and ("Open alerts (%d)" % len(still_open)) in p.stdout
   and all(g in p.stdout for _, g, _ in still_open),
   "agent: `digest --dry-run` shows the latest settled day and the open alerts the database holds", p.stdout[-800:] + p.stderr)


# SIGHUP: rules, notifiers and the configuration are re-made; the open
# incidents and the outbox live in the database and survive: nothing is
# queued or sent again.
import signal
logf = os.path.join(base, "daemon.log")
with open(logf, "w") as lf:
    d = subprocess.Popen([dw, "run", "-c", cfg], stderr=lf, stdout=subprocess.DEVNULL)
def wait_log(what, secs=30):
    end = time.time() + secs
    while time.time() < end:
        if what in open(logf).read():
            return True
        time.sleep(0.1)
    return False
up = wait_log("started:")
time.sleep(2)
d.send_signal(signal.SIGHUP)
reloaded = wait_log("configuration reloaded")
time.sleep(3)  # the reloaded agent's first pass and judgement
d.send_signal(signal.SIGTERM)
try:
    rc = d.wait(timeout=15)
except subprocess.TimeoutExpired:
    d.kill()
    rc = -1
lines3 = open(rec).read().splitlines() if os.path.exists(rec) else []
keys3 = [json.loads(l)["idempotency_key"] for l in run("outbox", "-c", cfg, "--format", "json").stdout.splitlines()]
rows3 = sorted(db.execute("SELECT rule, grp, opened_day FROM alerts WHERE open = 1").fetchall())
ok(up and reloaded and rc == 0, "agent: the daemon starts, reloads on SIGHUP and stops on SIGTERM",
   open(logf).read()[-1500:])
ok(rows3 == rows and sorted(keys3) == sorted(keys) and lines3 == lines,
   "agent: after SIGHUP the %d open incidents are still open and nothing is queued or sent again" % len(rows),
   "%r\n%s\n%s" % (rows3, diff(keys3, keys), "\n".join(lines3[len(lines):])))

print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
