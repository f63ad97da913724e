#!/bin/bash
# The backfill progress line: `import` and `run --once` under a real
# pseudo-terminal show "N/N files" / "N/N messages" redrawn in place, log and
# error lines stay whole (the line is cleared before each), and off a
# terminal nothing of it is written.
. "$(dirname "$0")/lib.sh"
export DMARCWATCH_ALLOW_ROOT=1

# ptyrun OUT CMD...: run CMD with stdin, stdout and stderr on a new
# pseudo-terminal (200 columns), write every byte it printed to OUT, exit
# with its status.
cat >"$T/ptyrun.py" <<'PY'
import fcntl, os, pty, struct, sys, termios
out, cmd = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    os.execvp(cmd[0], cmd)
data = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
open(out, "wb").write(data)
sys.exit(os.waitstatus_to_exitcode(status))
PY
ptyrun() { python3 "$T/ptyrun.py" "$@"; }

# screen FILE: the lines a terminal shows for FILE's bytes (a carriage
# return goes back to column 0 and the next bytes overwrite what is there).
screen() {
	python3 - "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
for raw in data.split("\n"):
    cells, col = [], 0
    for ch in raw:
        if ch == "\r":
            col = 0
            continue
        if col < len(cells):
            cells[col] = ch
        else:
            cells.append(ch)
        col += 1
    line = "".join(cells).rstrip()
    if line:
        print(line)
PY
}

# ---- import ----
corpus="$DATA/corpus"
# The files import walks: every regular file, no dot names at any level.
nfiles=$(python3 - "$corpus" <<'PY'
import os, sys
n = 0
for d, dirs, fs in os.walk(sys.argv[1]):
    dirs[:] = [x for x in dirs if not x.startswith(".")]
    n += sum(1 for f in fs if not f.startswith("."))
print(n)
PY
)
ok "$([ "$nfiles" -gt 10 ]; echo $?)" "import: the corpus has $nfiles files"

ptyrun "$T/imp.tty" "$DMARCWATCH" import --db "$T/tty.db" "$corpus"
rc_tty=$?
"$DMARCWATCH" import --db "$T/plain.db" "$corpus" >"$T/imp.out" 2>"$T/imp.err"
rc_plain=$?
is "$rc_tty" "$rc_plain" "import: same exit status on a terminal and off it ($rc_plain)"

raw=$(cat "$T/imp.tty")
like "$raw" $'\r'"dmarcwatch: 0/$nfiles files" "import: the line starts at 0/$nfiles, after a carriage return"
like "$raw" "dmarcwatch: $nfiles/$nfiles files  in 0:" "import: the final line says $nfiles/$nfiles files"
screen "$T/imp.tty" >"$T/imp.screen"
is "$(grep -c "files  in 0:" "$T/imp.screen")" 1 "import: one progress line stays on the screen"
like "$(grep "/$nfiles files" "$T/imp.screen")" "dmarcwatch: $nfiles/$nfiles files" \
	"import: and it is the final count"
# The final line ends with a newline before the summary (the terminal
# turns \n into \r\n).
like "$raw" $'\r\nimported ' "import: the summary starts on a fresh line"
# Every error line on the terminal is whole: the screen minus the progress
# line and the summary is exactly what stderr holds off a terminal.
grep -v "/$nfiles files" "$T/imp.screen" | grep -v '^imported \|^(' | sort >"$T/imp.screen.err"
sort "$T/imp.err" >"$T/imp.err.sorted"
ok "$([ -s "$T/imp.err.sorted" ]; echo $?)" "import: the corpus gives error lines ($(wc -l <"$T/imp.err") of them)"
if cmp -s "$T/imp.screen.err" "$T/imp.err.sorted"; then ok 0 "import: error lines stay whole on a terminal"; else
	ok 1 "import: error lines stay whole on a terminal"
	diff "$T/imp.screen.err" "$T/imp.err.sorted" | head -10 | sed 's/^/# /'
fi
is "$(grep -c $'\r' "$T/imp.err")" 0 "import off a terminal: no carriage return on stderr"
is "$(grep -c ' files  in \| files$' "$T/imp.err")" 0 "import off a terminal: no progress line"
is "$(grep -c '^imported ' "$T/imp.screen")" 1 "import: the summary line on the terminal"
is "$(grep '^imported ' "$T/imp.screen")" "$(grep '^imported ' "$T/imp.out")" "import: the same summary either way"

# ---- run --once on two maildir accounts ----
for v in tty plain; do
	seed_maildir "$T/$v/md1" "$T/$v/mails" >/dev/null
	seed_maildir "$T/$v/md2" "$T/$v/bulk" --bulk 300 >/dev/null
	nmails=$(ls "$T/$v/mails" | wc -l)
	cat >"$T/$v/a.yaml" <<YAML
state_dir: $T/$v/state
accounts:
  - name: local
    source: maildir
    path: $T/$v/md1
    archive_folder: Archive
    invalid_folder: Invalid
    untrusted_folder: Untrusted
    trust:
      authserv_id: mx.test.example
  - name: bulk
    source: maildir
    path: $T/$v/md2
    batch_bytes: 64KiB
    archive_folder: Archive
YAML
done
total=$((nmails + 300))
ptyrun "$T/run.tty" "$DMARCWATCH" run --once -c "$T/tty/a.yaml"
ok $? "run --once on a terminal exits 0"
"$DMARCWATCH" run --once -c "$T/plain/a.yaml" 2>"$T/run.err"
ok $? "run --once off a terminal exits 0"

raw=$(cat "$T/run.tty")
like "$raw" "dmarcwatch: $total/$total messages" "run: the final line says $total/$total messages (two accounts)"
like "$raw" "dmarcwatch: 1/$nmails messages" "run: the first account's total is known at its first message"
screen "$T/run.tty" >"$T/run.screen"
is "$(grep -c ' messages' "$T/run.screen")" 1 "run: one progress line stays on the screen"
like "$(grep ' messages' "$T/run.screen")" "dmarcwatch: $total/$total messages" "run: and it is the final count"
is "$(grep -c 'verdict=' "$T/run.screen")" "$total" "run: every message logged on the terminal"
is "$(grep -c 'verdict=' "$T/run.screen" )" \
	"$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z dmarcwatch\[info\]: account=(local|bulk) uid=[0-9]+ verdict=[a-z-]+ reports=[0-9]+( reason=.*)?$' "$T/run.screen")" \
	"run: each log line is whole on the terminal"
is "$(grep -c 'verdict=' "$T/run.err")" "$total" "run off a terminal: the same $total log lines"
is "$(grep -c $'\r' "$T/run.err")" 0 "run off a terminal: no carriage return"
is "$(grep -c ' messages  \|/[0-9]* messages' "$T/run.err")" 0 "run off a terminal: no progress line"

# ---- run --once on IMAP (the listing of UID FETCH n:* gives the total) ----
. "$(dirname "$0")/dovecot.sh"
if ! dovecot_available; then
	skip "$DOVECOT_WHY"
	done_testing
	exit
fi
if ! dovecot_start "$T/dc" --user reports --pass 'pw'; then
	ok 1 "dovecot starts"
	done_testing
	exit 1
fi
printf '%s\n' "$DOVECOT_PASS" >"$T/pass"
chmod 600 "$T/pass"
imap_cmd create Reports
imap_cmd append Reports "$T"/tty/mails/*.eml "$T"/tty/bulk/*.eml
cat >"$T/imap.yaml" <<YAML
state_dir: $T/imapstate
accounts:
  - name: imap
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none
    allow_plaintext: true
    username: $DOVECOT_USER
    password_file: $T/pass
    folder: Reports
    batch_bytes: 64KiB
    archive_folder: Archive
    invalid_folder: Invalid
    untrusted_folder: Untrusted
    trust:
      authserv_id: mx.test.example
YAML
ptyrun "$T/imap.tty" "$DMARCWATCH" run --once -c "$T/imap.yaml"
ok $? "imap: run --once on a terminal exits 0"
raw=$(cat "$T/imap.tty")
like "$raw" "dmarcwatch: 1/$total messages" "imap: the total is known at the first message"
like "$raw" "dmarcwatch: $total/$total messages" "imap: the final line says $total/$total messages"
screen "$T/imap.tty" >"$T/imap.screen"
is "$(grep -c 'verdict=' "$T/imap.screen")" "$total" "imap: every message logged on the terminal"
is "$(grep -c ' messages' "$T/imap.screen")" 1 "imap: one progress line stays on the screen"
done_testing
