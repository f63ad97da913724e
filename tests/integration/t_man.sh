#!/bin/bash
# The man pages in packaging/man against the program they describe.
#
# Each page renders with man(1) without a single groff warning. Then the
# facts are taken from the program itself (only which section of a page
# documents which key table of config.c is written down here):
#   dmarcwatch.8        the commands of `dmarcwatch --help`, the options and
#                       usage lines of `dmarcwatch CMD --help` (and whether
#                       CMD takes --version), the exit statuses main.c
#                       returns, the variables src/*.c getenv()s, the default
#                       configuration path `run --help` prints;
#   dmarcwatch.yaml.5   the key tables of src/config.c (each key under its
#                       own section, each rule kind's keys under that kind),
#                       the keys of config/dmarcwatch.yaml.example, the
#                       known_keys of every bundled plugin (the Makefile's
#                       list), defaults from config.c and the example, the
#                       metric families of src/metrics.c; both
#                       YAML examples of the page pass `check-config`;
#   dmarcwatch-plugin.7 every DW_ macro and enum constant and the entry
#                       symbol of include/dmarcwatch/notifier.h, every
#                       structure member for member in the header's order;
#                       its EXAMPLE is plugins/example/example.c token for
#                       token, and it builds and delivers a notification.
. "$(dirname "$0")/lib.sh"

if ! command -v man >/dev/null 2>&1; then
	skip "man is not installed (apt-get install man-db groff-base)"
	done_testing
	exit
fi

pages="dmarcwatch.8 dmarcwatch.yaml.5 dmarcwatch-plugin.7"
for page in $pages; do
	title=$(echo "${page%.*}" | tr a-z A-Z)"(${page##*.})"
	LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "packaging/man/$page" \
		>"$T/$page.txt" 2>"$T/$page.err"
	ok $? "$page: man renders it"
	is "$(cat "$T/$page.err")" "" "$page: man --warnings prints no warning"
	n=$(wc -l <"$T/$page.txt")
	[ "$n" -ge 100 ]; ok $? "$page: renders non-empty ($n lines)"
	like "$(head -n 1 "$T/$page.txt")" "$title" "$page: its title line is $title"
done

cat >"$T/check.py" <<'PY'
"""The page checks; one line per test: ok|not ok TAB name TAB diagnostic."""
import glob, os, re, shutil, stat, subprocess, sys, traceback

T = os.environ["T"]
DW = os.environ["DMARCWATCH"]
PLUGIN_BUILD = os.environ["DW_PLUGIN_BUILD"]
CC = os.environ.get("CC", "cc")


def check(cond, name, diag=""):
    diag = re.sub(r"\s+", " ", str(diag))[:1500] if not cond else ""
    print("ok" if cond else "not ok", name, diag, sep="\t", flush=True)
    return cond


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def clean(text):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = re.sub(r".\x08", "", text)
    for dash in ("\u2010", "\u2011", "\u2212"):
        text = text.replace(dash, "-")
    return text.expandtabs()


def norm(s):
    return " ".join(s.split())


def has_word(text, w):
    return re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text) is not None


def strip_c_comments(src):
    return re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*',
                  lambda m: " " if m.group(0)[0] == "/" else m.group(0), src, flags=re.S)


def c_tokens(src):
    return re.findall(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[A-Za-z_]\w*|\d\w*|->|\+\+|--|'
                      r'<<=|>>=|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|<<|>>|\.\.\.|\S', strip_c_comments(src))


class Page:
    """A rendered page cut into sections (no indent) and subsections (3)."""

    def __init__(self, name):
        self.text = clean(read(os.path.join(T, name + ".txt")))
        self.lines = self.text.split("\n")
        self.heads = []  # (line index, level, heading, parent heading)
        parent = None
        for i, l in enumerate(self.lines[1:], 1):
            if re.match(r"^[A-Z][A-Z0-9 -]*$", l):
                parent = l.strip()
                self.heads.append((i, 1, parent, None))
            elif re.match(r"^ {3}\S", l):
                self.heads.append((i, 2, l.strip(), parent))

    def own(self, heading, parent=None):
        """The text of a (sub)section up to the next heading of any level."""
        for k, (i, lvl, h, p) in enumerate(self.heads):
            if h == heading and (parent is None or p == parent):
                end = self.heads[k + 1][0] if k + 1 < len(self.heads) else len(self.lines)
                return "\n".join(self.lines[i + 1:end])
        return None

    def section(self, heading):
        """A section with its subsections."""
        for k, (i, lvl, h, p) in enumerate(self.heads):
            if lvl == 1 and h == heading:
                end = next((j for (j, l2, _, _) in self.heads[k + 1:] if l2 == 1), len(self.lines))
                return "\n".join(self.lines[i + 1:end])
        return None

    def subsections(self, parent):
        return [h for (_, lvl, h, p) in self.heads if lvl == 2 and p == parent]


def entry(section, key):
    """The entry `key: ...` of a section: its tag line and body."""
    out = None
    for l in section.split("\n"):
        if out is None:
            if re.match(r"^ {7}" + re.escape(key) + r":( |$)", l):
                out = [l]
        elif re.match(r"^ {7}\S", l):
            break
        else:
            out.append(l)
    return "\n".join(out) if out else None


def run(args, **kw):
    env = dict(os.environ)
    env.pop("DMARCWATCH_CONFIG", None)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **kw)


LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
SHORT = re.compile(r"(?<![\w$-])-[A-Za-z](?![\w-])")


def options(text):
    return sorted(set(LONG.findall(text)) | set(SHORT.findall(text)))


def usage_blocks(help_text):
    """[(command, text of its usage line and the lines up to the next)]."""
    blocks = []
    for line in help_text.split("\n"):
        m = re.match(r"usage: dmarcwatch (\S+)", line)
        if m:
            blocks.append([m.group(1), line])
        elif blocks:
            blocks[-1][1] += "\n" + line
    return blocks


def usage_lines(help_text):
    """Every usage as one line: continuation lines ("   [...") joined, an
    "(or: dmarcwatch ...)" alias split off."""
    out, last = [], None
    for line in help_text.split("\n"):
        m = re.match(r"usage: (dmarcwatch .*)$", line)
        if m:
            u = m.group(1)
            alt = re.search(r"\s*\(or: (dmarcwatch [^)]*)\)\s*$", u)
            if alt:
                u = u[:alt.start()]
            out.append(norm(u))
            last = len(out) - 1
            if alt:
                out.append(norm(alt.group(1)))
        elif last is not None and re.match(r"^\s+\[", line):
            out[last] += " " + norm(line)
        else:
            last = None
    return out


def seconds(v):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)\s*([smhd])", v)
    if not parts or re.sub(r"(\d+)\s*([smhd])|\s", "", v):
        return None
    return sum(int(n) * units[u] for n, u in parts)


def size(v):
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B?)", v.strip(), re.I)
    if not m:
        return None
    n, p, s = int(m.group(1)), m.group(2).upper(), m.group(3)
    base = 1000 if s.upper() == "B" and p else 1024
    return n * base ** ("", "K", "M", "G", "T").index(p)


def main():
    p8, p5, p7 = Page("dmarcwatch.8"), Page("dmarcwatch.yaml.5"), Page("dmarcwatch-plugin.7")

    # ---------------- dmarcwatch.8 ----------------
    r = run([DW, "--help"])
    check(r.returncode == 0 and "Commands:" in r.stdout, "dmarcwatch --help exits 0 and lists the commands",
          r.stdout + r.stderr)
    main_help = r.stdout
    listing = main_help.split("Commands:", 1)[-1].split("\n\n", 1)[0]
    cmds = re.findall(r"^  ([a-z][a-z-]*)", listing, re.M)
    check(len(cmds) >= 9, "dmarcwatch --help names the commands (%d)" % len(cmds), cmds)
    subs = p8.subsections("COMMANDS")
    synopsis = norm(p8.own("SYNOPSIS") or "")

    missing = [o for o in options(main_help) if not has_word(p8.text, o)]
    check(not missing and options(main_help), "dmarcwatch.8 has every option of dmarcwatch --help (%s)"
          % " ".join(options(main_help)), "missing: %s" % missing)
    miss = [u for u in usage_lines(main_help) if u not in synopsis]
    check(not miss, "dmarcwatch.8 SYNOPSIS has the usage line of dmarcwatch --help", miss)

    for cmd in cmds:
        sec = p8.own(cmd, "COMMANDS")
        check(sec is not None, "dmarcwatch.8 has a subsection COMMANDS/%s" % cmd, "subsections: %s" % subs)
        sec = sec or ""
        r = run([DW, cmd, "--help"])
        blocks = [b for c, b in usage_blocks(r.stdout) if c == cmd]
        check(r.returncode == 0 and blocks, "dmarcwatch %s --help exits 0 and prints its usage" % cmd,
              r.stdout + r.stderr)
        opts = sorted(set(o for b in blocks for o in options(b)) | {"--help"})
        missing = [o for o in opts if not has_word(sec, o)]
        check(not missing, "dmarcwatch.8 %s: every option of its --help (%s)" % (cmd, " ".join(opts)),
              "missing from the subsection: %s" % missing)
        lines = [u for u in usage_lines(r.stdout) if u.startswith("dmarcwatch %s " % cmd)
                 or u == "dmarcwatch %s" % cmd or (cmd == "check-config" and u.startswith("dmarcwatch -n"))]
        miss = [u for u in lines if u not in synopsis]
        check(lines and not miss, "dmarcwatch.8 SYNOPSIS has the usage of %s exactly as --help prints it" % cmd,
              "not in SYNOPSIS: %s" % miss)
        v = run([DW, cmd, "--version"])
        takes = v.returncode == 0 and v.stdout.startswith("dmarcwatch ")
        check(takes == has_word(sec, "--version"),
              "dmarcwatch.8 %s: --version documented exactly when the command takes it (%s)"
              % (cmd, "takes it" if takes else "refuses it"), "exit %d" % v.returncode)

    src_main = read("src/main.c")
    usage_code = re.search(r"#define\s+EXIT_USAGE\s+(\d+)", src_main)
    codes = set(re.findall(r"\b(?:return|status\s*=|_?exit\()\s*(\d+)\s*\)?\s*;", src_main))
    if usage_code:
        codes.add(usage_code.group(1))
    exit_sec = p8.own("EXIT STATUS") or ""
    documented = set(re.findall(r"^ {7}(\d+)\b", exit_sec, re.M))
    check(codes >= {"0", "1"} and codes == documented,
          "dmarcwatch.8 EXIT STATUS lists exactly the statuses main.c returns (%s)" % " ".join(sorted(codes, key=int)),
          "documented: %s" % sorted(documented))

    envs = sorted(set(re.findall(r'getenv\("(\w+)"\)', "".join(read(f) for f in glob.glob("src/*.c")))))
    env_sec = p8.own("ENVIRONMENT") or ""
    missing = [e for e in envs if not re.search(r"^ {7}" + e + r"\b", env_sec, re.M)]
    check(envs and not missing, "dmarcwatch.8 ENVIRONMENT has every variable src/*.c reads (%s)" % " ".join(envs),
          "missing: %s" % missing)

    r = run([DW, "run", "--help"])
    m = re.search(r"-c defaults to (\S+?)\.?$", r.stdout, re.M)
    files = p8.own("FILES") or ""
    ok = m is not None and m.group(1).endswith("/dmarcwatch/dmarcwatch.yaml")
    if ok:
        prefix = m.group(1)[:-len("/dmarcwatch/dmarcwatch.yaml")]
        ok = "SYSCONFDIR/dmarcwatch/dmarcwatch.yaml" in files and has_word(files, prefix)
    check(ok, "dmarcwatch.8 FILES names the default configuration run --help prints (%s)"
          % (m.group(1) if m else "?"), files)

    # ---------------- dmarcwatch.yaml.5 ----------------
    csrc = read("src/config.c")
    arrays = dict(re.findall(r"\b(\w+_keys)\[\]\s*=\s*\{(.*?)\};", csrc, re.S))
    where = {
        "top_keys": ["TOP-LEVEL KEYS"], "log_keys": ["log"], "limits_keys": ["limits"],
        "account_keys": ["accounts"], "imap_only_keys": ["accounts"], "maildir_only_keys": ["accounts"],
        "oauth2_keys": ["accounts: oauth2"], "trust_keys": ["accounts: trust"], "outbox_keys": ["outbox"],
        "notifier_host_keys": ["notifiers"], "ignore_keys": ["rules: ignore"], "digest_keys": ["digest"],
    }
    total = sum(len(re.findall(r'"(\w+)"', b)) for b in arrays.values())
    check(len(arrays) >= 10 and total >= 80, "src/config.c has its key tables (%d tables, %d keys)"
          % (len(arrays), total), sorted(arrays))

    def own5(name):
        return p5.own(name) if name != "TOP-LEVEL KEYS" else p5.own(name)

    for name, body in sorted(arrays.items()):
        if name == "rule_keys":
            continue
        keys = re.findall(r'"(\w+)"', body)
        secs = where.get(name)
        texts = [own5(s) for s in secs] if secs else [p5.text]
        missing = [k for k in keys if not any(t and entry(t, k) for t in texts)]
        check(keys and not missing, "dmarcwatch.yaml.5 %s: every key of %s (%d)"
              % (", ".join(secs or ["anywhere"]), name, len(keys)), "missing: %s" % missing)

    kinds = re.findall(r'"(\w+)"', re.search(r"rule_kind_names\[\]\s*=\s*\{(.*?)\};", csrc, re.S).group(1))
    missing = [k for k in kinds if p5.own("kind: " + k) is None]
    check(len(kinds) >= 6 and not missing, "dmarcwatch.yaml.5 has a subsection per rule kind (%s)" % " ".join(kinds),
          "missing: %s" % missing)

    rule_entries = re.findall(r'\{\s*"(\w+)"\s*,\s*([^}]*)\}', arrays.get("rule_keys", ""))
    bad = []
    for key, expr in rule_entries:
        secs = ["rules"] if ("RK_ALL" in expr or "RK_DOMAINS" in expr) else \
            ["kind: " + k.lower() for k in re.findall(r"RK\(DW_RULE_(\w+)\)", expr)]
        for s in secs:
            t = p5.own(s)
            if not t or not entry(t, key):
                bad.append("%s in %s" % (key, s))
    check(len(rule_entries) >= 25 and not bad, "dmarcwatch.yaml.5: every rule key under rules or under each kind "
          "that takes it (%d keys)" % len(rule_entries), "missing: %s" % bad)

    example = read("config/dmarcwatch.yaml.example")
    ex_keys = sorted(set(m for m in re.findall(r"^\s*(?:- )?([a-z_]+):(?:\s|$)", example, re.M)))
    missing = [k for k in ex_keys if not re.search(r"^ {7}" + k + r":( |$)", p5.text, re.M)]
    check(len(ex_keys) >= 60 and not missing, "dmarcwatch.yaml.5 has every key set in "
          "config/dmarcwatch.yaml.example (%d)" % len(ex_keys), "missing: %s" % missing)

    excluded = re.search(r"PLUGINS\s*=.*filter-out\s+([\w ]+),", read("Makefile"))
    excluded = excluded.group(1).split() if excluded else ["common", "example"]
    bundled = sorted(d for d in os.listdir("plugins") if os.path.isdir("plugins/" + d) and d not in excluded)
    check(len(bundled) >= 5, "the Makefile bundles plugins (%s)" % " ".join(bundled))
    for plug in bundled:
        src = "".join(read(f) for f in sorted(glob.glob("plugins/%s/*.c" % plug)))
        m = re.search(r"known_keys\[\]\s*=\s*\{(.*?)\};", src, re.S)
        keys = re.findall(r'"(\w+)"', m.group(1)) if m else []
        sec = p5.own("plugin: " + plug)
        missing = [k for k in keys if not sec or not entry(sec, k)]
        check(keys and sec is not None and not missing, "dmarcwatch.yaml.5 plugin: %s: every key the plugin "
              "knows (%s)" % (plug, " ".join(keys)), "section %s; missing: %s" % (sec is not None, missing))

    defs = dict(re.findall(r'#define\s+DEFAULT_(\w+)\s+"([^"]*)"', csrc))
    bad = []
    for d, key, sec in (("STATE_DIR", "state_dir", "TOP-LEVEL KEYS"), ("TIMEZONE", "timezone", "TOP-LEVEL KEYS"),
                        ("TOKEN_URL", "token_url", "accounts: oauth2"), ("FOLDER", "folder", "accounts")):
        e = entry(own5(sec) or "", key) or ""
        if d not in defs or not re.search(r"Default\s+" + re.escape(defs[d]) + r"\b", norm(e)):
            bad.append("%s (%s)" % (key, defs.get(d)))
    nums = dict(re.findall(r"#define\s+DEFAULT_(\w+)\s+(\(?[0-9][^\n/]*)", csrc))
    mib = 1 << 20
    for d, key, conv in (("POLL_INTERVAL", "poll_interval", seconds), ("TIMEOUT", "timeout", seconds),
                         ("BATCH_BYTES", "batch_bytes", size)):
        e = norm(entry(p5.own("accounts") or "", key) or "")
        m = re.search(r"Default\s+([^;.]+?)[;.]", e)
        want = eval(nums.get(d, "None").replace("MiB", str(mib)).replace("KiB", "1024"))
        if not m or conv(m.group(1)) != want:
            bad.append("%s (%s, page: %s)" % (key, want, m.group(1) if m else None))
    check(not bad, "dmarcwatch.yaml.5: the defaults config.c defines (state_dir, timezone, token_url, folder, "
          "poll_interval, timeout, batch_bytes)", "wrong: %s" % bad)

    lim = re.search(r"^limits:\n((?:[ \t]+.*\n)+)", example, re.M)
    pairs = re.findall(r"^\s+(\w+):\s*(\S+)", lim.group(1), re.M) if lim else []
    bad = []
    for key, val in pairs:
        e = norm(entry(p5.own("limits") or "", key) or "")
        m = re.search(r"Default\s+(\S+?);", e)
        if not m or size(m.group(1)) != size(val):
            bad.append("%s: example %s, page %s" % (key, val, m.group(1) if m else None))
    check(len(pairs) >= 8 and not bad, "dmarcwatch.yaml.5: the limits defaults are the example's "
          "(which test_config checks are the program's)", bad)

    msrc = read("src/metrics.c") if os.path.exists("src/metrics.c") else ""
    fams = re.findall(r'family\(&?o,\s*"(dmarcwatch_\w+)",\s*"(\w+)"', msrc)
    labels = {}
    for name, a, b in re.findall(r'sample\(&?o,\s*"(dmarcwatch_\w+)",\s*(?:"(\w+)"|NULL),[^,]*,\s*(?:"(\w+)"|NULL)',
                                 msrc):
        labels.setdefault(name, set()).update(x for x in (a, b) if x)
    for name, lab in re.findall(r'"(dmarcwatch_\w+)\{(\w+)=', msrc):
        labels.setdefault(name, set()).add(lab)
    msec = p5.own("METRICS") or ""
    bad = []
    for name, typ in fams:
        m = re.search(r"^ {7}" + name + r" \(([^)]*)\)", msec, re.M | re.S)
        desc = norm(m.group(1)) if m else ""
        if not m or not re.match(typ + r"\b", desc) or any(not has_word(desc, l) for l in labels.get(name, ())):
            bad.append("%s (%s; %s) page: %s" % (name, typ, sorted(labels.get(name, ())), desc or None))
    check(len(fams) >= 8 and not bad, "dmarcwatch.yaml.5 METRICS: every family src/metrics.c writes, with its "
          "type and labels (%d)" % len(fams), "wrong: %s" % bad)

    # Both YAML examples of the page load with check-config.
    sec_dir = os.path.join(T, "secrets")
    os.makedirs(sec_dir, exist_ok=True)

    def try_config(yaml, name):
        yaml = yaml.replace("/etc/dmarcwatch/secrets/", sec_dir + "/")
        yaml = re.sub(r"^(metrics_file: ).*/", r"\g<1>" + T + "/", yaml, flags=re.M)
        yaml = re.sub(r"^state_dir: .*$", "state_dir: " + T + "/state", yaml, flags=re.M)
        yaml = "plugin_dir: %s\n%s\n" % (PLUGIN_BUILD, yaml)
        for key, path in re.findall(r"(\w+)_file: (\S+)", yaml):
            with open(path, "w") as f:
                f.write("https://hooks.example.com/services/T0/B0/abc\n" if "url" in key else "s3cret-value\n")
            os.chmod(path, 0o600)
        cfg = os.path.join(T, name + ".yaml")
        with open(cfg, "w") as f:
            f.write(yaml)
        r = run([DW, "check-config", "-c", cfg])
        check(r.returncode == 0 and r.stdout.startswith("configuration OK") and r.stderr == "",
              "dmarcwatch.yaml.5: the %s passes check-config without a warning" % name.replace("-", " "),
              r.stdout + r.stderr)

    desc = p5.own("DESCRIPTION") or ""
    m = re.search(r"^ {7}accounts:\n(?:.*\S.*\n)+", desc + "\n", re.M)
    try_config("\n".join(l[7:] for l in m.group(0).split("\n")) if m else "", "minimal-example")
    ex = p5.own("EXAMPLE") or ""
    try_config("\n".join(l[7:] for l in ex.strip("\n").split("\n")), "EXAMPLE")

    # ---------------- dmarcwatch-plugin.7 ----------------
    hdr = read("include/dmarcwatch/notifier.h")
    hdr_code = strip_c_comments(hdr)
    macros = sorted(set(re.findall(r"^\s*#\s*define\s+(DW_\w+)", hdr_code, re.M)))
    missing = [x for x in macros if not has_word(p7.text, x)]
    check(len(macros) >= 5 and not missing, "dmarcwatch-plugin.7 names every DW_ macro of notifier.h (%s)"
          % " ".join(macros), "missing: %s" % missing)
    consts = sorted(set(re.findall(r"\b(DW_[A-Z0-9_]+)\s*=", hdr_code)))
    missing = [x for x in consts if not has_word(p7.text, x)]
    check(len(consts) >= 10 and not missing, "dmarcwatch-plugin.7 names every enum constant (%d: DW_NOTIFY_OK ...)"
          % len(consts), "missing: %s" % missing)
    sym = re.search(r'#define\s+DW_NOTIFIER_SYMBOL\s+"(\w+)"', hdr)
    check(sym and has_word(p7.text, sym.group(1)) and re.search(r"\bstruct dw_notifier " + sym.group(1), p7.text),
          "dmarcwatch-plugin.7 declares the entry symbol %s" % (sym.group(1) if sym else "?"))
    ver = re.search(r"#define\s+DW_NOTIFIER_ABI_VERSION\s+(\d+)", hdr)
    check(ver and re.search(r"describes version\s+%s\b" % ver.group(1), norm(p7.text)),
          "dmarcwatch-plugin.7 describes ABI version %s" % (ver.group(1) if ver else "?"))

    def members(code):
        out = {}
        for m in re.finditer(r"\bstruct\s+(dw_\w+)\s*\{(.*?)\};", code, re.S):
            names = []
            for decl in m.group(2).split(";"):
                decl = decl.strip()
                fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl)
                if fp:
                    names.append(fp.group(1))
                    continue
                for part in decl.split(","):
                    ids = re.findall(r"[A-Za-z_]\w*", part)
                    if ids:
                        names.append(ids[-1])
            out[m.group(1)] = names
        return out

    hs, ps = members(hdr_code), members(strip_c_comments(p7.text))
    check(len(hs) >= 7, "notifier.h declares its structures (%s)" % " ".join(sorted(hs)))
    for s, mem in sorted(hs.items()):
        check(ps.get(s) == mem, "dmarcwatch-plugin.7 shows struct %s member for member, in order (%d)" % (s, len(mem)),
              "header: %s; page: %s" % (mem, ps.get(s)))
    funcs = [m for m in hs.get("dw_notifier", []) if re.search(r"\(\s*\*\s*%s\s*\)" % m, hdr_code)]
    missing = [f for f in funcs if p7.own(f, "FUNCTIONS") is None]
    check(len(funcs) == 3 and not missing, "dmarcwatch-plugin.7 FUNCTIONS has a subsection per entry point (%s)"
          % " ".join(funcs), "missing: %s" % missing)
    hsec = p7.own("HOST SERVICES") or ""
    missing = [m for m in hs.get("dw_host", []) if not has_word(hsec, m)]
    check(hs.get("dw_host") and not missing, "dmarcwatch-plugin.7 HOST SERVICES covers every member of dw_host",
          "missing: %s" % missing)

    # The EXAMPLE is the shipped example plugin, and it works.
    exsec = p7.own("EXAMPLE") or ""
    m = re.search(r"^ {7}example\.c:\n(.*?)^ {7}Build and try it:", exsec, re.S | re.M)
    code = "\n".join(l[7:] for l in m.group(1).split("\n")) if m else ""
    same = c_tokens(code) == c_tokens(read("plugins/example/example.c"))
    check(code and same, "dmarcwatch-plugin.7 EXAMPLE is plugins/example/example.c token for token "
          "(%d tokens)" % len(c_tokens(code)))
    exdir = os.path.join(T, "example")
    os.makedirs(exdir, exist_ok=True)
    with open(os.path.join(exdir, "example.c"), "w") as f:
        f.write(code)
    so = os.path.join(exdir, "example.so")
    if shutil.which(CC) is None:
        check(False, "a C compiler (%s) to build the EXAMPLE" % CC)
        return
    r = run([CC, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-Iinclude", "-shared",
             "-fPIC", "-fvisibility=hidden", "-o", so, os.path.join(exdir, "example.c")])
    check(r.returncode == 0, "the EXAMPLE builds with -Wall -Wextra -Werror against the header", r.stderr)
    r = run(["nm", "-D", "--defined-only", so])
    syms = sorted(l.split()[-1] for l in r.stdout.splitlines() if l.split() and not l.split()[-1].startswith("_"))
    check(syms == ["dw_notifier_entry"], "the EXAMPLE exports exactly dw_notifier_entry", syms)
    os.makedirs(os.path.join(T, "Maildir", "cur"), exist_ok=True)
    os.makedirs(os.path.join(T, "Maildir", "new"), exist_ok=True)
    os.makedirs(os.path.join(T, "Maildir", "tmp"), exist_ok=True)
    book = os.path.join(T, "logbook.txt")
    cfg = os.path.join(T, "plugin.yaml")
    with open(cfg, "w") as f:
        f.write("state_dir: %s/plugin-state\nplugin_dir: %s\naccounts:\n  - name: none\n    source: maildir\n"
                "    path: %s/Maildir\nnotifiers:\n  - name: logbook\n    plugin: %s\n    path: %s\n"
                % (T, PLUGIN_BUILD, T, so, book))
    r = run([DW, "test-notify", "-c", cfg, "--wait", "20", "logbook"])
    text = read(book) if os.path.exists(book) else ""
    check(r.returncode == 0 and "logbook: delivered" in r.stdout, "test-notify delivers through the EXAMPLE",
          r.stdout + r.stderr)
    check("test/info dmarcwatch test notification" in text and "attachment dmarcwatch-test.csv" in text,
          "the EXAMPLE wrote the test notification and its attachment to its file", text)


try:
    main()
except Exception:
    check(False, "the checks ran to the end", traceback.format_exc())
    sys.exit(1)
PY

T="$T" DMARCWATCH="$DMARCWATCH" DW_PLUGIN_BUILD="$DW_PLUGIN_BUILD" python3 "$T/check.py" >"$T/results" 2>"$T/check.err"
rc=$?
while IFS=$'\t' read -r status name diag; do
	if [ "$status" = ok ]; then
		ok 0 "$name"
	else
		ok 1 "$name"
		[ -n "$diag" ] && echo "#   $diag"
	fi
done <"$T/results"
[ -s "$T/check.err" ] && sed 's/^/# /' "$T/check.err"
is "$rc" 0 "the page checks ran to the end"
done_testing
