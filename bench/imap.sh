#!/usr/bin/env bash
# bench/imap.sh - how fast `dmarcwatch run --once` empties an IMAP folder full
# of report mail (fetch, parse, store, move), compared with the least work
# an IMAP client must do to read the same folder.
#
# It builds report mails once with tests/integration/mkmail.py --bulk (small
# gzip reports, ~1.4 KB each) into bench/out/ (git-ignored, kept between
# runs), then for each mailbox size (2,000 and 10,000 messages) and each of
# BENCH_RUNS rounds (3):
#   - starts a fresh private Dovecot (tests/integration/dovecot.sh), seeds
#     INBOX and opens it once read-write, so the one-time maildir scan of
#     freshly delivered files is not charged to either tool;
#   - floor: bench/imapfloor.c, a bare libetpan client that logs in and
#     sends one `UID FETCH 1:* (BODY.PEEK[])`;
#   - then a fresh Dovecot again, seeded the same way, and
#     `dmarcwatch run --once` with a fresh state_dir, folder INBOX and
#     archive_folder Archive, so every message is fetched, parsed, stored
#     and moved. The run must exit 0, leave a `stored` verdict for every
#     message in the database and every message in Archive; a broken run
#     stops the benchmark rather than looking fast.
# Each run is timed with GNU time (wall time and peak RSS); the figures are
# medians over the rounds. One extra, untimed run of the smallest mailbox
# with Dovecot's rawlog counts the IMAP commands dmarcwatch sends.
#
# Prints a Markdown table (messages/s, peak RSS, the floor's messages/s,
# dmarcwatch's time as a multiple of the floor's) and a PASS/MISS line per
# target, for the largest mailbox:
#   >= 2,500 messages/s; peak RSS <= 32 MiB; RSS flat: within 4 MiB between
#   the smallest and the largest mailbox.
#
# Environment: BENCH_RUNS (3), BENCH_SIZES ("2000 10000"; the last is the
# one judged), BENCH_RAWLOG (1: count IMAP commands; 0: skip),
# DMARCWATCH (./dmarcwatch). Needs dovecot 2.3 (dovecot-imapd), python3,
# gcc, pkg-config, libetpan headers, sqlite3 and GNU time. Takes about
# 2 minutes on a 2-core machine; the first run also spends ~15 s
# generating the mails.

# The Markdown below has backquotes inside single quotes on purpose.
# shellcheck disable=SC2016

# `sh bench/imap.sh` works too: the script needs bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# No `set -e`: tests/integration/dovecot.sh is written for scripts without
# it, so every step below checks its own status.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
RUNS=${BENCH_RUNS:-3}
SIZES=${BENCH_SIZES:-2000 10000}
RAWLOG=${BENCH_RAWLOG:-1}
DW=${DMARCWATCH:-./dmarcwatch}
OUT=bench/out
RATE_MIN=2500
RSS_MAX_KB=$((32 * 1024))
RSS_FLAT_KB=$((4 * 1024))

CFLAGS_BENCH="-std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow \
-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wformat=2 -Werror"

say() { printf '%s\n' "$*" >&2; }
die() {
	say "imap.sh: $*"
	exit 1
}

for t in gcc pkg-config python3 sqlite3 /usr/bin/time; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install gcc pkg-config python3 sqlite3 time)"
done
pkg-config --exists libetpan 2>/dev/null || die "libetpan not found by pkg-config (apt-get install libetpan-dev)"

# The scratch directory (Dovecot, state dirs, logs) lives under /tmp, not
# in the repository: dovecot.sh opens the ancestors of its directory to the
# mail user (o+x), which the checkout's parents need not get.
W=$(mktemp -d "${TMPDIR:-/tmp}/dw-imapbench.XXXXXX") || die "cannot create a scratch directory"
trap 'rm -rf "$W"' EXIT
# shellcheck source=tests/integration/dovecot.sh
. tests/integration/dovecot.sh
dovecot_available || die "$DOVECOT_WHY"
mkdir -p "$OUT" || die "cannot create $OUT"

# 1. Build. A failing build (someone's half-written file) leaves the old
# binary in place, as bench/parse.sh does.
if ! make --no-print-directory all >"$OUT/make-imap.log" 2>&1; then
	say "imap.sh: make failed (see $OUT/make-imap.log); using the existing $DW"
fi
[ -x "$DW" ] || die "$DW not built"
DW=$(cd "$(dirname "$DW")" && pwd)/$(basename "$DW")
export DMARCWATCH_ALLOW_ROOT=1 # benchmarks run wherever, often as root

# libetpan.pc on Debian carries a -specs= link option (see the Makefile):
# dropped here as well.
ETPAN=()
for f in $(pkg-config --cflags --libs libetpan); do
	case $f in -specs=*) ;; *) ETPAN+=("$f") ;; esac
done
FLOOR=$OUT/imapfloor
if [ ! -x "$FLOOR" ] || [ bench/imapfloor.c -nt "$FLOOR" ]; then
	# shellcheck disable=SC2086 # word splitting of the flags is wanted
	gcc $CFLAGS_BENCH -o "$FLOOR" bench/imapfloor.c "${ETPAN[@]}" || die "cannot build bench/imapfloor.c"
fi

# 2. The mails, regenerated when missing, incomplete or older than mkmail.py.
# expect.json is written last, so an interrupted generation is redone.
gen_mails() { # N
	local n=$1 d="$OUT/imap-mail-$1"
	if [ -s "$d/expect.json" ] && [ ! tests/integration/mkmail.py -nt "$d/expect.json" ] &&
		[ "$(find "$d" -name '*.eml' | wc -l)" -eq "$n" ]; then
		return 0
	fi
	rm -rf "$d"
	local t0
	t0=$(date +%s)
	python3 tests/integration/mkmail.py "$d" --bulk "$n" >"$W/expect.json" || die "mkmail.py --bulk $n failed"
	mv "$W/expect.json" "$d/expect.json"
	say "generated $n report mails in $d ($(($(date +%s) - t0)) s)"
}
for n in $SIZES; do
	case $n in '' | *[!0-9]*) die "BENCH_SIZES: '$n' is not a number" ;; esac
	gen_mails "$n"
done

# 3. One Dovecot per measurement, seeded with the N mails.
PASSWORD='bench-pass'
fresh_dovecot() { # N [--rawlog]
	local n=$1 files
	shift
	dovecot_stop
	rm -rf "$W/dc"
	dovecot_start "$W/dc" --user bench --pass "$PASSWORD" "$@" >"$W/dc-start.log" 2>&1 ||
		die "dovecot does not start: $(tail -5 "$W/dc-start.log")"
	printf '%s\n' "$DOVECOT_PASS" >"$W/pass"
	chmod 600 "$W/pass"
	files=("$OUT/imap-mail-$n"/*.eml)
	dovecot_seed "${files[@]}" || die "seeding $n mails failed"
	# A read-write SELECT: Dovecot moves the files from new/ to cur/ and
	# builds its index now, as it would have at delivery time.
	python3 - "$DOVECOT_PORT" "$DOVECOT_USER" "$DOVECOT_PASS" "$n" <<'PY' || die "the seeded INBOX is not ready"
import imaplib, sys
port, user, password, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
typ, data = m.select("INBOX")
if typ != "OK" or int(data[0]) != n:
    sys.exit("SELECT INBOX: %s %s, expected %d messages" % (typ, data, n))
m.logout()
PY
}

dw_config() { # STATE_DIR
	cat <<YAML
state_dir: $1
timezone: UTC
log:
  level: info
accounts:
  - name: bench
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none
    allow_plaintext: true
    username: $DOVECOT_USER
    password_file: $W/pass
    folder: INBOX
    archive_folder: Archive
    mode: poll
YAML
}

count_folder() { # FOLDER -> number of messages (read-only)
	python3 - "$DOVECOT_PORT" "$DOVECOT_USER" "$DOVECOT_PASS" "$1" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select('"%s"' % sys.argv[4], readonly=True)
print(int(data[0]) if typ == "OK" else -1)
m.logout()
PY
}

# time_run LOG cmd...: sets R_SEC (wall) R_KB (peak RSS) R_CPU (user + sys).
time_run() {
	local log=$1
	shift
	if ! /usr/bin/time -o "$W/time" -f '%e %M %U %S' "$@" >"$log.out" 2>"$log"; then
		say "imap.sh: failed: $*"
		tail -5 "$log" "$log.out" | sed 's/^/#   /' >&2
		return 1
	fi
	read -r R_SEC R_KB u s <"$W/time" || return 1
	R_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u + s}')
}

floor_once() { # N
	local n=$1 got
	fresh_dovecot "$n"
	time_run "$W/floor.log" "$FLOOR" 127.0.0.1 "$DOVECOT_PORT" "$DOVECOT_USER" "$W/pass" INBOX ||
		die "the floor failed on $n messages"
	got=$(cut -d' ' -f1 "$W/floor.log.out")
	[ "$got" = "$n" ] || die "the floor fetched $got messages, expected $n"
}

dw_once() { # N
	local n=$1 stored archived left
	fresh_dovecot "$n"
	rm -rf "$W/state"
	dw_config "$W/state" >"$W/dw.yaml"
	time_run "$W/dw.log" "$DW" run --once -c "$W/dw.yaml" || die "dmarcwatch run --once failed on $n messages"
	# A fast run that did not do the work must not count.
	stored=$(sqlite3 "$W/state/dmarcwatch.db" "SELECT count(*) FROM messages WHERE verdict = 'stored'") ||
		die "cannot read $W/state/dmarcwatch.db"
	[ "$stored" = "$n" ] || die "dmarcwatch stored $stored of $n messages (see its log: $(tail -2 "$W/dw.log"))"
	archived=$(count_folder Archive)
	left=$(count_folder INBOX)
	if [ "$archived" != "$n" ] || [ "$left" != 0 ]; then
		die "after dmarcwatch: $archived messages in Archive, $left left in INBOX (expected $n and 0)"
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.2f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v c="$(nproc)" 'BEGIN{exit !(l > c / 2)}'; then
	say "imap.sh: warning: load average $load on $(nproc) cores: timings will be noisy"
fi

# 4. The runs. Floor and dmarcwatch alternate, so a burst of load from
# elsewhere on the machine hits both alike.
declare -A DW_SEC DW_KB DW_CPU FL_SEC FL_KB
for n in $SIZES; do
	say "$n messages, $RUNS rounds:"
	dws="" dwk="" dwc="" fls="" flk=""
	for ((i = 1; i <= RUNS; i++)); do
		floor_once "$n"
		fls="$fls $R_SEC" flk="$flk $R_KB"
		say "  round $i: floor $R_SEC s, $R_KB KiB"
		dw_once "$n"
		dws="$dws $R_SEC" dwk="$dwk $R_KB" dwc="$dwc $R_CPU"
		say "  round $i: dmarcwatch $R_SEC s (CPU $R_CPU s), $R_KB KiB"
	done
	# shellcheck disable=SC2086 # the lists are space-separated on purpose
	{
		DW_SEC[$n]=$(median $dws)
		DW_KB[$n]=$(median $dwk)
		DW_CPU[$n]=$(median $dwc)
		FL_SEC[$n]=$(median $fls)
		FL_KB[$n]=$(median $flk)
	}
done
dovecot_stop

# 5. Round trips: Dovecot's rawlog holds every command the client sent.
# shellcheck disable=SC2086 # SIZES is a space-separated list
SMALLEST=$(printf '%s\n' $SIZES | sort -n | head -1)
# shellcheck disable=SC2086
LARGEST=$(printf '%s\n' $SIZES | tail -1)
cmds=""
if [ "$RAWLOG" = 1 ]; then
	fresh_dovecot "$SMALLEST" --rawlog
	rm -rf "$W/state"
	dw_config "$W/state" >"$W/dw.yaml"
	"$DW" run --once -c "$W/dw.yaml" 2>"$W/dw-rawlog.log" || die "dmarcwatch run --once failed under rawlog"
	dovecot_stop
	# Each *.in file is one session's input, a line per command, each
	# line after a timestamp. The imaplib sessions that readied INBOX are
	# there too: dmarcwatch's is the one that moves (UID MOVE or STORE).
	for f in "$W"/dc/rawlog/*.in; do
		[ -e "$f" ] || continue
		sed -E 's/^[0-9]+\.[0-9]+ //' "$f" | tr -d '\r' | grep -E '^[^ ]+ [A-Za-z]' >"$W/cmds" || continue
		if grep -qiE '^[^ ]+ UID (MOVE|STORE)' "$W/cmds"; then
			cmds=$(wc -l <"$W/cmds")
			cmdlist=$(cut -d' ' -f2- "$W/cmds" | cut -c1-36 | paste -sd';' - | sed 's/;/; /g')
		fi
	done
	[ -n "$cmds" ] || say "imap.sh: warning: no dmarcwatch session found in the rawlog"
fi

# 6. Results.
rate() { awk -v n="$1" -v t="$2" 'BEGIN{printf "%.0f", (t > 0) ? n / t : 0}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (b > 0) ? a / b : 0}'; }
fmt() { printf '%s' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; } # 10000 -> 10,000
verdict() { # name ok detail
	if [ "$2" = 1 ]; then printf -- '- %s: PASS (%s)\n' "$1" "$3"; else printf -- '- %s: MISS (%s)\n' "$1" "$3"; fi
}

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
bytes=$(cat "$OUT/imap-mail-$LARGEST"/*.eml | wc -c)

echo
echo "----- paste below into README.md (Performance) -----"
echo
printf 'IMAP ingest: `bench/imap.sh`, small gzip reports built by `tests/integration/mkmail.py --bulk`\n'
printf '(%s bytes per mail on average) in a local Dovecot %s over plain TCP on 127.0.0.1;\n' \
	"$((bytes / LARGEST))" "$(dovecot --version | cut -d' ' -f1)"
printf 'median of %s runs on %s (%s cores), libetpan %s, SQLite %s. Each run is a fresh\n' \
	"$RUNS" "$cpu" "$(nproc)" "$(pkg-config --modversion libetpan)" "$(sqlite3 --version | cut -d' ' -f1)"
printf '`dmarcwatch run --once` (new state_dir) that fetches, parses, stores and moves every message\n'
printf 'to Archive; messages/s use the wall time. The floor is `bench/imapfloor.c`: one libetpan\n'
printf '`UID FETCH 1:* (BODY.PEEK[])` of the same freshly seeded folder, nothing else.\n'
echo
echo '| mailbox | dmarcwatch msg/s | wall (s) | CPU (s) | peak RSS (MiB) | floor msg/s | floor RSS (MiB) | × floor time |'
echo '|---:|---:|---:|---:|---:|---:|---:|---:|'
for n in $SIZES; do
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(fmt "$n")" "$(fmt "$(rate "$n" "${DW_SEC[$n]}")")" \
		"${DW_SEC[$n]}" "${DW_CPU[$n]}" "$(mib "${DW_KB[$n]}")" "$(fmt "$(rate "$n" "${FL_SEC[$n]}")")" \
		"$(mib "${FL_KB[$n]}")" "$(ratio "${DW_SEC[$n]}" "${FL_SEC[$n]}")"
done
if [ -n "$cmds" ]; then
	echo
	printf 'IMAP commands sent by dmarcwatch for %s messages, after LOGIN: %s (%s).\n' "$(fmt "$SMALLEST")" \
		"$cmds" "$cmdlist"
fi
echo
echo "Targets ($(fmt "$LARGEST") messages):"
r=$(rate "$LARGEST" "${DW_SEC[$LARGEST]}")
verdict "≥ $(fmt $RATE_MIN) messages/s" "$([ "$r" -ge "$RATE_MIN" ] && echo 1)" "$(fmt "$r") messages/s"
k=${DW_KB[$LARGEST]%.*}
verdict "peak RSS ≤ 32 MiB" "$([ "$k" -le "$RSS_MAX_KB" ] && echo 1)" "$(mib "$k") MiB"
ks=${DW_KB[$SMALLEST]%.*}
d=$((k - ks))
verdict "RSS flat ($(fmt "$SMALLEST") vs $(fmt "$LARGEST") messages, within 4 MiB)" \
	"$([ "${d#-}" -le "$RSS_FLAT_KB" ] && echo 1)" "$(mib "$ks") vs $(mib "$k") MiB"
echo
echo "----- end -----"
