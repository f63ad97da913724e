#!/usr/bin/env python3
"""Generate a history of DMARC aggregate report mails, with its truth.

    gen_history.py OUTDIR [--tz ZONE] [--start YYYY-MM-DD] [--days N] [--seed S]

Writes OUTDIR/mail/*.eml (one mail per reporter, domain and day, the XML
attached the way each reporter sends it) and OUTDIR/truth.json, and prints a
one-line JSON summary. Only the standard library; the same arguments always
give the same bytes.

The scenario (day numbers count from --start, day 0):

  domains     example.com (p=none; p=quarantine from day POLICY_DAY) and
              example.org (p=reject), each with a steady legitimate sender
              set: its own MTAs (SPF and DKIM pass), an ESP (example.com:
              DKIM aligned, SPF not) or a CRM (example.org), a mailing list
              that breaks both (override reason mailing_list, every day), a
              forwarder Microsoft reports with reason forwarded
              (example.com), and a little failing noise from ever new /24s
              (a few messages each).
  reporters   google.com        UTC days 00:00:00-23:59:59, a .zip
              Enterprise Outlook UTC days 00:00 -> next 00:00, a .xml.gz
              Yahoo             the scenario zone's local days (23 and 25 h
                                around a DST change), a .zip
  arrival     the top Received: header says when the mail reached our MX:
              normally the next UTC day 09:00-09:55 (Date: ~45 min earlier);
              for LATE days the same mail arrives 2 days later (its Date:
              still the normal one, so only Received: tells).
  injected    ESP_BREAK   the ESP's DKIM breaks: its mail fails DMARC
              ESP_FIXED   ... until this day
              SPOOF_DAY   a spoofer in 203.0.113.0/24 sends 135 failing
                          messages as example.org (Google 100 of them)
              SILENT_DAY  Yahoo reports nothing from this day on
              POLICY_DAY  example.com: p=none -> p=quarantine

truth.json holds the scenario, every report (file, reporter, domain, range,
received, the local day it belongs to, policy, records) and per local day
and domain the figures a digest shows: messages, dmarc_pass, dmarc_fail,
spf_fail, dkim_fail, quarantined, rejected, reporters {org: messages},
failing {source: messages failing DMARC}, and the CSV rows (domain, source,
reporter, header_from, disposition, dkim, spf, dmarc, reason, messages).
"""
import base64, datetime, email.utils, gzip, hashlib, io, json, os, random, sys, zipfile, zoneinfo

ESP_BREAK, ESP_FIXED, SPOOF_DAY, SILENT_DAY, POLICY_DAY = 20, 50, 30, 40, 45
# day -> reporters whose report for that day arrives 2 days late
LATE = {22: ["google.com", "Enterprise Outlook", "Yahoo"], 30: ["google.com"],
        45: ["google.com", "Enterprise Outlook", "Yahoo"], 52: ["Enterprise Outlook"]}
SILENT_REPORTER = "Yahoo"

REPORTERS = [
    # org_name, share of the traffic, mail From, range style, container, file prefix, minutes after 09:00
    {"org": "google.com", "share": 0.60, "from": "noreply-dmarc-support@google.com", "range": "utc",
     "box": "zip", "prefix": "google.com", "minute": 7, "relay": ("mail-sor-f69.google.com", "209.85.220.69")},
    {"org": "Enterprise Outlook", "share": 0.25, "from": "dmarcreport@microsoft.com", "range": "utc00",
     "box": "gz", "prefix": "protection.outlook.com", "minute": 41,
     "relay": ("mail-bn8nam12on2091.outbound.protection.outlook.com", "40.107.237.91")},
    {"org": "Yahoo", "share": 0.15, "from": "dmarchelp@yahooinc.com", "range": "local", "box": "zip",
     "prefix": "yahoo.com", "minute": 23, "relay": ("sonic301-20.consmr.mail.gq1.yahoo.com", "98.137.64.83")},
]
DOMAINS = ["example.com", "example.org"]
LIST_IP = "2001:db8:1::25"      # lists.example.net, forwards with a footer: SPF and DKIM fail
FORWARDER_IP = "100.64.5.5"     # a forwarder Microsoft reports with reason forwarded
SPOOF = [("google.com", "203.0.113.5", 100), ("Enterprise Outlook", "203.0.113.5", 20),
         ("Enterprise Outlook", "203.0.113.77", 15)]


def policy_of(domain, day):
    if domain == "example.com":
        return {"domain": domain, "adkim": "r", "aspf": "r", "p": "quarantine" if day >= POLICY_DAY else "none",
                "sp": "none", "pct": "100"}
    return {"domain": domain, "adkim": "r", "aspf": "r", "p": "reject", "sp": "reject", "pct": "100"}


def traffic(rng, domain, day, rep):
    """The records of one reporter's report: [source, count, dkim, spf, reason, header_from]."""
    share = rep["share"]
    recs = []
    def vol(base):
        return max(1, int(round(base * share * rng.uniform(0.9, 1.1))))
    def own(ip, base):
        n = vol(base)
        k = int(n * rng.uniform(0.01, 0.04))      # forwarded by recipients: SPF breaks, DKIM holds
        recs.append([ip, n - k, "pass", "pass", None, domain])
        if k:
            recs.append([ip, k, "pass", "fail", None, domain])
    if domain == "example.com":
        own("192.0.2.10", 520)
        own("192.0.2.11", 480)
        for ip, base in (("198.51.100.10", 110), ("198.51.100.11", 100), ("198.51.100.12", 90)):
            broken = ESP_BREAK <= day < ESP_FIXED
            recs.append([ip, vol(base), "fail" if broken else "pass", "fail", None, domain])
        recs.append([LIST_IP, vol(120), "fail", "fail", "mailing_list", domain])
        if rep["org"] == "Enterprise Outlook":
            recs.append([FORWARDER_IP, rng.randint(10, 30), "fail", "fail", "forwarded", domain])
    else:
        own("192.0.2.20", 400)
        recs.append(["198.51.100.70", vol(100), "pass", "pass", None, domain])
        recs.append([LIST_IP, vol(40), "fail", "fail", "mailing_list", domain])
        if day == SPOOF_DAY:
            for org, ip, n in SPOOF:
                if org == rep["org"]:
                    recs.append([ip, n, "fail", "fail", None, domain])
    # noise: a few failing messages from fresh networks, never 50 from one /24
    for _ in range(rng.randint(0, 2)):
        ip = "198.18.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254))
        recs.append([ip, rng.randint(1, 3), "fail", "fail", None, domain])
    return recs


def disposition(pol, dkim, spf, reason):
    if dkim == "pass" or spf == "pass" or reason is not None:
        return "none"
    return pol["p"]


# ---- time ------------------------------------------------------------------

def utc(d, h=0, m=0, s=0):
    return int(datetime.datetime(d.year, d.month, d.day, h, m, s, tzinfo=datetime.timezone.utc).timestamp())


def local_midnight(d, z):
    return int(datetime.datetime(d.year, d.month, d.day, tzinfo=z).timestamp())


def attributed_day(b, e, z):
    """The local day a range of <= 36 h belongs to: the one holding most of it (ties: the earlier)."""
    end = e + 1 if (e - b) % 86400 == 86399 else e
    best, best_s, t = None, -1, b
    while True:
        lt = datetime.datetime.fromtimestamp(t, z)
        nxt = local_midnight(lt.date() + datetime.timedelta(days=1), z)
        seg = min(nxt, end) - t
        if seg > best_s:
            best, best_s = lt.date().isoformat(), seg
        if nxt >= end:
            return best
        t = nxt


# ---- the mail ---------------------------------------------------------------

def xml_of(rep, rid, b, e, pol, recs):
    out = ['<?xml version="1.0" encoding="UTF-8" ?>', "<feedback>"]
    if rep["org"] != "Yahoo":
        out.append("  <version>1.0</version>")
    out += ["  <report_metadata>", "    <org_name>%s</org_name>" % rep["org"],
            "    <email>%s</email>" % rep["from"], "    <report_id>%s</report_id>" % rid,
            "    <date_range>", "      <begin>%d</begin>" % b, "      <end>%d</end>" % e, "    </date_range>",
            "  </report_metadata>", "  <policy_published>"]
    for k in ("domain", "adkim", "aspf", "p", "sp", "pct"):
        out.append("    <%s>%s</%s>" % (k, pol[k], k))
    out.append("  </policy_published>")
    for r in recs:
        out += ["  <record>", "    <row>", "      <source_ip>%s</source_ip>" % r["source_ip"],
                "      <count>%d</count>" % r["count"], "      <policy_evaluated>",
                "        <disposition>%s</disposition>" % r["disposition"],
                "        <dkim>%s</dkim>" % r["dkim"], "        <spf>%s</spf>" % r["spf"]]
        if r["reason"]:
            out += ["        <reason>", "          <type>%s</type>" % r["reason"],
                    "          <comment>%s</comment>" % ("list lists.example.net" if r["reason"] == "mailing_list"
                                                         else "forwarded by %s" % r["source_ip"]),
                    "        </reason>"]
        out += ["      </policy_evaluated>", "    </row>", "    <identifiers>"]
        if rep["org"] == "Enterprise Outlook":
            out.append("      <envelope_to>%s</envelope_to>" % ("outlook.com"))
        out += ["      <header_from>%s</header_from>" % r["header_from"], "    </identifiers>", "    <auth_results>"]
        signer = r["header_from"]
        out += ["      <dkim>", "        <domain>%s</domain>" % signer, "        <selector>s1</selector>",
                "        <result>%s</result>" % r["dkim"], "      </dkim>"]
        esp = r["source_ip"].startswith("198.51.100.1")   # the ESP's own bounce domain: SPF passes, unaligned
        mfrom = "bounces.esp.example" if esp else r["header_from"]
        spf_res = "pass" if r["spf"] == "pass" or esp else "fail"
        out += ["      <spf>", "        <domain>%s</domain>" % mfrom, "        <scope>mfrom</scope>",
                "        <result>%s</result>" % spf_res, "      </spf>", "    </auth_results>", "  </record>"]
    out.append("</feedback>")
    return ("\n".join(out) + "\n").encode()


def zipped(name, data):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        zi = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))   # fixed: the same bytes every run
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, data)
    return b.getvalue()


def rfc2822(t, offset_minutes):
    tz = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(t, tz))


def mail_of(rep, domain, rid, b, e, xml, received, date, seq):
    base = "%s!%s!%d!%d" % (rep["prefix"], domain, b, e)
    if rep["box"] == "zip":
        fname, ctype, payload = base + ".zip", "application/zip", zipped(base + ".xml", xml)
    else:
        fname, ctype, payload = base + ".xml.gz", "application/gzip", gzip.compress(xml, mtime=0)
    host, ip = rep["relay"]
    msgid = "%s.%d@%s" % (hashlib.sha1(rid.encode()).hexdigest()[:16], seq, rep["from"].split("@")[1])
    bnd = "----=_Part_%s" % hashlib.sha1(msgid.encode()).hexdigest()[:20]
    body = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    h = [
        # the top Received: our MX, in its own zone (+0100); the next one is the reporter's, at Date: time
        "Received: from %s (%s [%s])\r\n\tby mx.test.example (Postfix) with ESMTPS id %s\r\n\tfor <dmarc@%s>; %s"
        % (host, host, ip, hashlib.sha1(msgid.encode()).hexdigest()[:10].upper(), domain, rfc2822(received, 60)),
        "Received: by %s with HTTP; %s" % (host, rfc2822(date, -480)),
        "Authentication-Results: mx.test.example;\r\n\tdkim=pass header.d=%s header.s=s1;\r\n"
        "\tspf=pass smtp.mailfrom=%s;\r\n\tdmarc=pass header.from=%s"
        % (rep["from"].split("@")[1], rep["from"], rep["from"].split("@")[1]),
        "From: %s" % rep["from"], "To: dmarc@%s" % domain,
        "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>" % (domain, rep["prefix"], rid),
        "Date: %s" % rfc2822(date, 0), "Message-ID: <%s>" % msgid, "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="%s"' % bnd,
    ]
    return ("\r\n".join(h) + "\r\n\r\n" +
            "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is an aggregate report from %s.\r\n"
            % (bnd, rep["prefix"]) +
            '--%s\r\nContent-Type: %s; name="%s"\r\nContent-Disposition: attachment; filename="%s"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--%s--\r\n" % (bnd, ctype, fname, fname, body, bnd))


# ---- main -------------------------------------------------------------------

def main():
    args = sys.argv[1:]
    def opt(name, default):
        return args[args.index(name) + 1] if name in args else default
    if not args or args[0].startswith("-"):
        sys.exit("usage: gen_history.py OUTDIR [--tz ZONE] [--start YYYY-MM-DD] [--days N] [--seed S]")
    out = args[0]
    zone = opt("--tz", "America/New_York")
    start = datetime.date.fromisoformat(opt("--start", "2026-02-01"))
    ndays = int(opt("--days", "60"))
    seed = int(opt("--seed", "5"))
    z = zoneinfo.ZoneInfo(zone)
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "mail"), exist_ok=True)

    reports, daily = [], {}
    seq = 0
    for i in range(ndays):
        d = start + datetime.timedelta(days=i)
        for rep in REPORTERS:
            if rep["org"] == SILENT_REPORTER and i >= SILENT_DAY:
                continue
            if rep["range"] == "utc":
                b, e = utc(d), utc(d) + 86399
            elif rep["range"] == "utc00":
                b, e = utc(d), utc(d) + 86400
            else:
                b = local_midnight(d, z)
                e = local_midnight(d + datetime.timedelta(days=1), z) - 1
            late = rep["org"] in LATE.get(i, [])
            for domain in DOMAINS:
                seq += 1
                pol = policy_of(domain, i)
                recs = []
                for ip, n, dkim, spf, reason, hfrom in traffic(rng, domain, i, rep):
                    recs.append({"source_ip": ip, "count": n, "dkim": dkim, "spf": spf, "reason": reason,
                                 "header_from": hfrom, "disposition": disposition(pol, dkim, spf, reason)})
                on_time = utc(d + datetime.timedelta(days=1), 9, rep["minute"]) + rng.randint(0, 600)
                received = on_time + (2 * 86400 if late else 0)
                date = on_time - 45 * 60
                if rep["org"] == "google.com":
                    rid = str(rng.randrange(10 ** 19, 10 ** 20))
                elif rep["org"] == "Enterprise Outlook":
                    rid = "%032x" % rng.getrandbits(128)
                else:
                    rid = "%d.%06d" % (b, rng.randrange(10 ** 6))
                day = attributed_day(b, e, z)
                if day != d.isoformat():
                    sys.exit("gen_history: %s's report for %s lands on %s in %s" % (rep["org"], d, day, zone))
                name = "%03d-%s-%s.eml" % (i, rep["prefix"], domain)
                xml = xml_of(rep, rid, b, e, pol, recs)
                with open(os.path.join(out, "mail", name), "w", newline="") as f:
                    f.write(mail_of(rep, domain, rid, b, e, xml, received, date, seq))
                reports.append({"file": name, "reporter": rep["org"], "domain": domain, "report_id": rid,
                                "begin": b, "end": e, "received": received, "date": date, "late": late,
                                "day": day, "index": i, "policy": pol, "records": recs})
                # the day's figures
                dd = daily.setdefault(day, {}).setdefault(domain, {
                    "messages": 0, "dmarc_pass": 0, "dmarc_fail": 0, "spf_fail": 0, "dkim_fail": 0,
                    "quarantined": 0, "rejected": 0, "reporters": {}, "failing": {}, "rows": {}})
                for r in recs:
                    n = r["count"]
                    ok = r["dkim"] == "pass" or r["spf"] == "pass"
                    dd["messages"] += n
                    dd["dmarc_pass" if ok else "dmarc_fail"] += n
                    dd["spf_fail"] += n if r["spf"] != "pass" else 0
                    dd["dkim_fail"] += n if r["dkim"] != "pass" else 0
                    dd["quarantined"] += n if r["disposition"] == "quarantine" else 0
                    dd["rejected"] += n if r["disposition"] == "reject" else 0
                    dd["reporters"][rep["org"]] = dd["reporters"].get(rep["org"], 0) + n
                    if not ok:
                        dd["failing"][r["source_ip"]] = dd["failing"].get(r["source_ip"], 0) + n
                    key = "\t".join([domain, r["source_ip"], rep["org"], r["header_from"], r["disposition"],
                                     r["dkim"], r["spf"], "pass" if ok else "fail", r["reason"] or ""])
                    dd["rows"][key] = dd["rows"].get(key, 0) + n
    for dd in daily.values():
        for v in dd.values():
            v["rows"] = sorted(k.split("\t") + [n] for k, n in v["rows"].items())
    dst = [(start + datetime.timedelta(days=i)).isoformat() for i in range(ndays)
           if local_midnight(start + datetime.timedelta(days=i + 1), z) -
           local_midnight(start + datetime.timedelta(days=i), z) != 86400]
    truth = {
        "zone": zone, "start": start.isoformat(), "days": ndays, "seed": seed,
        "scenario": {"esp_break": ESP_BREAK, "esp_fixed": ESP_FIXED, "spoof_day": SPOOF_DAY,
                     "spoof_network": "203.0.113.0/24", "spoof_domain": "example.org", "silent_day": SILENT_DAY,
                     "silent_reporter": SILENT_REPORTER, "policy_day": POLICY_DAY, "policy_domain": "example.com",
                     "late": {str(k): v for k, v in LATE.items()}, "dst_days": dst},
        "reports": reports, "daily": daily,
    }
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=0, sort_keys=True)
    print(json.dumps({"mails": len(reports), "messages": sum(r["count"] for x in reports for r in x["records"]),
                      "zone": zone, "dst_days": dst}))


main()
