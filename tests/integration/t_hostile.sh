#!/bin/bash
# Hostile inputs through the real binary: each gets a clear error naming the
# problem, bounded memory, and nothing written to disk.
. "$(dirname "$0")/lib.sh"

python3 - "$DMARCWATCH" "$DATA" "$T" <<'PY'
import base64, gzip, io, json, os, resource, subprocess, sys, zipfile, zlib
dw, data, tmp = sys.argv[1:4]
n = failed = 0
def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:10]:
            print("#   " + line)
def parse(path, cwd=None):
    # Peak RSS from /usr/bin/time: getrusage(RUSAGE_CHILDREN) would count the
    # pages of this (large) Python process that the child shares before exec.
    tf = os.path.join(tmp, "time.out")
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf, dw, "parse", "--no-records", path],
                       capture_output=True, text=True, cwd=cwd)
    rss = int(open(tf).read().split()[-1])
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return p.returncode, lines, p.stderr, rss

head = b'<?xml version="1.0"?><feedback><report_metadata>'
# gzip bomb: ~10 GiB of blanks inside <feedback>, as 160 gzip members of 64 MiB each
member = gzip.compress(b" " * (64 << 20), compresslevel=9)
bomb = os.path.join(tmp, "bomb.xml.gz")
with open(bomb, "wb") as f:
    f.write(gzip.compress(head))
    for _ in range(160):
        f.write(member)
rc, lines, err, rss = parse(bomb)
ok(rc == 1 and "512 MiB" in lines[0].get("error", "") and "decompressed_max" in lines[0]["error"],
   "gzip bomb (10 GiB in %d KiB) stops at the 512 MiB limit" % (os.path.getsize(bomb) >> 10), lines)
ok(rss < 32 * 1024, "gzip bomb: peak RSS %d KiB stays under 32 MiB" % rss)

# zip bomb: one member of 600 MiB of zeros (deflate ~1000:1)
zb = os.path.join(tmp, "bomb.zip")
with zipfile.ZipFile(zb, "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("report.xml", "w", force_zip64=True) as m:
        m.write(head)
        chunk = b" " * (1 << 20)
        for _ in range(600):
            m.write(chunk)
rc, lines, err, rss = parse(zb)
ok(rc == 1 and "limit" in lines[0].get("error", ""), "zip bomb is refused with the limit named", lines)

# zip slip: an entry named ../../x.xml is read, never written
work = os.path.join(tmp, "cwd"); os.mkdir(work)
zs = os.path.join(tmp, "slip.zip")
with zipfile.ZipFile(zs, "w") as z:
    z.write(os.path.join(data, "corpus/aggregate/cry-inc/aol.xml"), "../../evil.xml")
rc, lines, err, rss = parse(zs, cwd=work)
ok(rc == 0 and lines[0]["org_name"] == "AOL" and "zip-suspicious-name" in lines[0]["quirks"],
   "zip entry named ../../evil.xml is parsed as data", lines)
ok(os.listdir(work) == [] and not os.path.exists(os.path.join(tmp, "evil.xml")) and not os.path.exists("/evil.xml"),
   "zip entry names are never used as paths (nothing written)")

# truncated zip
raw = open(os.path.join(data, "corpus/aggregate/parsedmarc/nice-input.xml.zip"), "rb").read()
tz = os.path.join(tmp, "trunc.zip"); open(tz, "wb").write(raw[: len(raw) // 2])
rc, lines, err, rss = parse(tz)
ok(rc == 1 and lines and lines[0].get("error"), "truncated zip: clear error", lines)

# XXE, billion laughs, DOCTYPE
for f in ("xxe.xml", "billion-laughs.xml", "doctype.xml"):
    rc, lines, err, rss = parse(os.path.join(data, "xml", f))
    ok(rc == 1 and "DOCTYPE" in lines[0].get("error", ""), "%s refused: DOCTYPE" % f, lines)
    ok("root:" not in json.dumps(lines), "%s: no file content leaked" % f)

# a mail with a 100 MB attachment is over the 64 MiB mail limit
big = os.path.join(tmp, "big.eml")
with open(big, "wb") as f:
    f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/gzip; name=x.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    blob = base64.encodebytes(os.urandom(3 << 20))
    for _ in range(34):   # ~ 34 * 4 MiB of base64 = 136 MiB
        f.write(blob)
rc, lines, err, rss = parse(big)
ok(rc == 1 and "64 MiB" in lines[0].get("error", "") and "mail_max" in lines[0]["error"],
   "100 MB attachment: refused, the mail limit is named", lines)
ok(rss < 32 * 1024, "100 MB attachment: refused before reading, peak RSS %d KiB" % rss)
with open(big, "rb") as f:
    p = subprocess.run([dw, "parse", "--no-records", "-"], stdin=f, capture_output=True, text=True)
ok(p.returncode == 1 and "mail_max" in p.stdout, "100 MB attachment on stdin: refused at the limit", p.stdout)

# gzip with trailing garbage parses, with a quirk
gt = os.path.join(tmp, "trail.xml.gz")
open(gt, "wb").write(gzip.compress(open(os.path.join(data, "corpus/aggregate/cry-inc/aol.xml"), "rb").read()) + b"\0\0garbage")
rc, lines, err, rss = parse(gt)
ok(rc == 0 and "gzip-trailing-bytes" in lines[0]["quirks"], "gzip with trailing bytes: parsed with a quirk", lines)

# random bytes
rb = os.path.join(tmp, "random.bin"); open(rb, "wb").write(os.urandom(100000))
rc, lines, err, rss = parse(rb)
ok(rc == 1 and lines and lines[0].get("error"), "random bytes: clear error, no crash", lines)
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
