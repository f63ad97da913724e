#!/usr/bin/env python3
"""Build report mails the way real reporters send them, for the agent tests.

    mkmail.py OUTDIR [--bulk N [--pad BYTES]]

Writes one .eml per case into OUTDIR and prints a JSON object on stdout with
the expected outcome: {"files": {name: verdict}, "messages": total of the
stored reports, "reports": number of stored reports}. The Authentication-
Results our "receiving server" adds use the authserv-id mx.test.example;
the spoofed mail carries one from another server only.
"""
import base64, email.utils, gzip, io, json, os, sys, zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(ROOT, "..", "data", "corpus", "aggregate")
AUTHSERV = "mx.test.example"

def rd(rel):
    with open(os.path.join(DATA, rel), "rb") as f:
        return f.read()

def zipped(name, data):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return b.getvalue()

def b64(data):
    return base64.encodebytes(data).decode().replace("\n", "\r\n")

def headers(frm, subject, msgid, ar=True, dmarc="pass", authserv=AUTHSERV):
    h = []
    if ar:
        dom = frm.split("@")[1]
        h.append("Authentication-Results: %s;\r\n\tdkim=pass header.d=%s header.s=s1;\r\n"
                 "\tspf=pass smtp.mailfrom=%s;\r\n\tdmarc=%s header.from=%s" % (authserv, dom, frm, dmarc, dom))
    h += ["From: %s" % frm, "To: dmarc@example.com", "Subject: %s" % subject,
          "Date: Mon, 10 Jun 2024 08:00:00 +0000", "Message-ID: <%s>" % msgid, "MIME-Version: 1.0"]
    return "\r\n".join(h) + "\r\n"

def attach_mail(frm, subject, msgid, ctype, fname, payload, **kw):
    bnd = "b-" + msgid.split("@")[0]
    return (headers(frm, subject, msgid, **kw) +
            'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % bnd +
            "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is an aggregate report.\r\n" % bnd +
            '--%s\r\nContent-Type: %s; name="%s"\r\nContent-Disposition: attachment; filename="%s"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--%s--\r\n" % (bnd, ctype, fname, fname, b64(payload), bnd))

def main():
    out = sys.argv[1]
    bulk = int(sys.argv[sys.argv.index("--bulk") + 1]) if "--bulk" in sys.argv else 0
    # --pad N: a text part of N bytes in each bulk mail (slower passes)
    pad = int(sys.argv[sys.argv.index("--pad") + 1]) if "--pad" in sys.argv else 0
    os.makedirs(out, exist_ok=True)
    files, messages, reports = {}, 0, 0
    def put(name, text, verdict, msgs=0):
        nonlocal messages, reports
        with open(os.path.join(out, name), "w", newline="") as f:
            f.write(text)
        files[name] = verdict
        if verdict == "stored":
            messages += msgs
            reports += 1

    if bulk:
        tmpl = rd("cry-inc/aol.xml").decode()
        for i in range(bulk):
            x = tmpl.replace("website.com_1504828800", "bulk-%06d" % i).replace(
                "<count>1</count>", "<count>%d</count>" % (i % 7 + 1))
            text = attach_mail("noreply@aol.com", "Report Domain: website.com Submitter: aol.com", "bulk%d@aol.com" % i,
                               "application/gzip", "aol.com!website.com!%d.xml.gz" % i, gzip.compress(x.encode()))
            if pad:
                line = "padding " * 9 + "\r\n"
                filler = line * (pad // len(line) + 1)
                text = text.replace("This is an aggregate report.\r\n", "This is an aggregate report.\r\n" + filler)
            put("bulk%06d.eml" % i, text, "stored", i % 7 + 1)
        print(json.dumps({"files": files, "messages": messages, "reports": reports}))
        return

    # Google: multipart/mixed, application/zip named google.com!domain!begin!end.zip
    put("google.eml", attach_mail("noreply-dmarc-support@google.com",
        "Report domain: example.com Submitter: google.com Report-ID: 11038226378739404135",
        "g1@google.com", "application/zip", "google.com!example.com!1718236800!1718323199.zip",
        rd("parsedmarc/nice-input.xml.zip")), "stored", 3047)
    # Microsoft: application/gzip .xml.gz
    put("microsoft.eml", attach_mail("dmarcreport@microsoft.com",
        "Report Domain: example.com Submitter: protection.outlook.com Report-ID: cfeafefe4129445e8c81018bd9177197",
        "m1@microsoft.com", "application/gzip", "protection.outlook.com!example.com!1711756800!1711843200.xml.gz",
        gzip.compress(rd("parsedmarc/protection.outlook.com!example.com!1711756800!1711843200.xml"))), "stored", 1)
    # Yahoo: application/zip
    put("yahoo.eml", attach_mail("dmarchelp@yahooinc.com",
        "Report Domain: a-domain.localhost Submitter: yahoo.com", "y1@yahoo.com", "application/zip",
        "yahoo.com!a-domain.localhost!1735603200!1735689599.xml.zip",
        zipped("yahoo.com!a-domain.localhost!1735603200!1735689599.xml", rd("avvertix/dmarc-missing-elements.xml"))),
        "stored", 30)
    # Inline XML, not an attachment
    put("inline.eml", headers("postmaster@aol.com", "Report Domain: website.com Submitter: aol.com", "a1@aol.com") +
        "Content-Type: text/xml; charset=utf-8\r\nContent-Disposition: inline\r\n\r\n" +
        rd("cry-inc/aol.xml").decode().replace("\n", "\r\n"), "stored", 1)
    # A report forwarded as an attached message/rfc822
    inner = attach_mail("dmarc@gmx.net", "Report Domain: myserver.com Submitter: gmx.net", "x1@gmx.net",
                        "application/gzip", "gmx.net!myserver.com!1733184000!1733270399.xml.gz",
                        gzip.compress(rd("cry-inc/gmxnet.xml")), ar=False)
    put("forwarded.eml", headers("postmaster@gmx.net", "Fwd: Report Domain: myserver.com", "f1@gmx.net") +
        'Content-Type: multipart/mixed; boundary="fw"\r\n\r\n--fw\r\nContent-Type: text/plain\r\n\r\nFYI\r\n'
        "--fw\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\n--fw--\r\n", "stored", 1)
    # A human mail
    put("human.eml", headers("alice@example.org", "lunch?", "h1@example.org") +
        "Content-Type: text/plain\r\n\r\nAre we still on for lunch?\r\n", "not-a-report")
    # A malformed report
    put("malformed.eml", attach_mail("noreply@veeam.com", "Report Domain: example.com Submitter: veeam.com",
        "v1@veeam.com", "application/gzip", "veeam.com!example.com!1530133200!1530219600.xml.gz",
        gzip.compress(rd("parsedmarc/invalid_xml.xml"))), "invalid")
    # A spoofed report: only a forged Authentication-Results from elsewhere
    put("spoofed.eml", attach_mail("noreply@fastmail.com", "Report Domain: indemed.com Submitter: fastmail.com",
        "s1@fastmail.com", "application/gzip", "fastmail.com!indemed.com!1516060800!1516147199.xml.gz",
        rd("parsedmarc/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz"),
        authserv="mx.evil.example"), "untrusted")
    print(json.dumps({"files": files, "messages": messages, "reports": reports}))

main()
