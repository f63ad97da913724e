#!/usr/bin/env bash
# bench/parse.sh - how fast `dmarcwatch parse` reads a big aggregate report,
# compared with the least work libxml2 needs for the same bytes.
#
# It expands a real report (tests/data/corpus) into reports of 100,000 and
# 1,000,000 varied records, as .xml and .xml.gz in bench/out/ (git-ignored,
# kept between runs), then times, as the median of BENCH_RUNS runs (5):
#   dmarcwatch parse --no-records --format json FILE
#   bench/floor.c: a bare libxml2 SAX2 push parse (+ zlib for .gz) that only
#                  counts <record> start tags
#   xmllint --stream --noout FILE
# and prints MB/s (uncompressed XML bytes, MB = 10^6 bytes), records/s, the
# ratio dmarcwatch/floor, and peak RSS (/usr/bin/time -v) for the .gz at 100 k
# and 1 M records. It ends with a Markdown block for the README and a
# PASS/MISS line per target:
#   time(dmarcwatch) <= 1.4 x time(floor), for .xml and for .xml.gz
#   (dmarcwatch refusing a file, e.g. over a limit, is a MISS)
#   peak RSS <= 32 MiB, and within 4 MiB between 100 k and 1 M records
#
# Environment: BENCH_RUNS (5), BENCH_RECORDS (1000000), BENCH_SMALL (100000),
# BENCH_GZ_LEVEL (6), BENCH_CLOCK (cpu: rates and ratios use user + sys time,
# which other load on the machine disturbs less; wall: the wall time),
# BENCH_TEMPLATE (the corpus file below), DMARCWATCH (./dmarcwatch). Needs gcc, pkg-config, libxml2/zlib headers, xmllint and
# GNU time. Takes about 5 minutes on a 2-core machine; the first run also
# spends ~15 s generating the inputs.

# The Markdown below has backquotes inside single quotes on purpose.
# shellcheck disable=SC2016

# `make bench` runs us with sh; the script needs bash (arrays, arithmetic).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-5}
BIG=${BENCH_RECORDS:-1000000}
SMALL=${BENCH_SMALL:-100000}
LEVEL=${BENCH_GZ_LEVEL:-6}
TEMPLATE=${BENCH_TEMPLATE:-tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-003.xml}
DW=${DMARCWATCH:-./dmarcwatch}
# A 1 M-record report decompresses to ~780 MB, above the default 512 MiB
# bomb limit (limits.decompressed_max): raise it for the benchmark, as an
# operator would for a trusted file. The speed is what is measured here.
DWLIMIT="--limit decompressed_max=4G"
OUT=bench/out
CLOCK=${BENCH_CLOCK:-cpu}
RATIO_MAX=1.4
RSS_MAX_KB=$((32 * 1024))
RSS_FLAT_KB=$((4 * 1024))

CFLAGS_BENCH="-std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow \
-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wformat=2 -Werror"

say() { printf '%s\n' "$*" >&2; }
die() { say "parse.sh: $*"; exit 1; }

for t in gcc pkg-config xmllint /usr/bin/time; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install gcc pkg-config libxml2-utils time)"
done
[ -r "$TEMPLATE" ] || die "template report $TEMPLATE not readable"
mkdir -p "$OUT"

# 1. Build. A failing build (a half-written source file) leaves the old
# binary in place; without any binary the dmarcwatch rows are skipped.
if ! make --no-print-directory all >"$OUT/make.log" 2>&1; then
	say "parse.sh: make failed (see $OUT/make.log); using the existing $DW if any"
fi
have_dw=1
[ -x "$DW" ] || { have_dw=0; say "parse.sh: $DW not built: measuring floor and xmllint only"; }

# The helpers are rebuilt when their source changes.
build_tool() { # name libs...
	local name=$1
	shift
	if [ ! -x "$OUT/$name" ] || [ "bench/$name.c" -nt "$OUT/$name" ]; then
		# shellcheck disable=SC2086 # word splitting of the flags is wanted
		gcc $CFLAGS_BENCH -o "$OUT/$name" "bench/$name.c" "$@" || die "cannot build bench/$name.c"
	fi
}
# shellcheck disable=SC2046
build_tool gen $(pkg-config --cflags --libs zlib)
# shellcheck disable=SC2046
build_tool floor $(pkg-config --cflags --libs libxml-2.0 zlib)

# 2. Inputs, regenerated when missing or older than the generator/template.
gen_report() { # records
	local n=$1 base="$OUT/report-$1"
	if [ ! -s "$base.xml" ] || [ ! -s "$base.xml.gz" ] || [ "$OUT/gen" -nt "$base.xml.gz" ] ||
		[ "$TEMPLATE" -nt "$base.xml.gz" ]; then
		local t0 t1
		t0=$(date +%s%N)
		"$OUT/gen" "$TEMPLATE" "$n" "$base.xml" "$base.xml.gz" "$LEVEL" >/dev/null ||
			die "generating $base.xml failed"
		t1=$(date +%s%N)
		say "generated $base.xml{,.gz}: $n records in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}') s"
	fi
}
gen_report "$SMALL"
gen_report "$BIG"

# 3. Timing. Each run's wall time comes from the clock around the command,
# its peak RSS from GNU time; stdout is discarded as in real use.
TIMEF=$(mktemp)
trap 'rm -f "$TIMEF" "$TIMEF.out" "$TIMEF.err"' EXIT

run_once() { # cmd... ; sets R_SEC (wall) R_CPU (user + sys) R_KB
	local t0 t1
	t0=$(date +%s%N)
	if ! /usr/bin/time -v -o "$TIMEF" "$@" >/dev/null 2>"$TIMEF.out"; then
		say "parse.sh: failed: $*"
		sed 's/^/#   /' "$TIMEF.out" | tail -5 >&2
		return 1
	fi
	t1=$(date +%s%N)
	R_SEC=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
	R_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TIMEF")
	R_CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s += $2} END{printf "%.2f", s}' "$TIMEF")
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.2f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

# run_key KEY: one run of the command a key stands for.
run_key() {
	case $1 in
	dw.xml) run_once "$DW" parse --no-records --format json $DWLIMIT "$XML" ;;
	dw.gz) run_once "$DW" parse --no-records --format json $DWLIMIT "$GZ" ;;
	dw.small) run_once "$DW" parse --no-records --format json $DWLIMIT "$SMALLGZ" ;;
	floor.xml) run_once "$OUT/floor" "$XML" ;;
	floor.gz) run_once "$OUT/floor" "$GZ" ;;
	xmllint.xml) run_once xmllint --stream --noout "$XML" ;;
	xmllint.gz) run_once xmllint --stream --noout "$GZ" ;;
	esac
}

# The runs go round-robin over the tools rather than five in a row per tool,
# so a burst of load from elsewhere on the machine hits all of them alike.
# W[KEY] is the median wall time, U[KEY] the median CPU time, M[KEY] the
# largest peak RSS (KiB); a failing command leaves them empty. T[KEY] is the
# one of W and U that rates and ratios use (BENCH_CLOCK).
declare -A T W U M SECS CPUS KBS FAILED
measure_all() {
	local i key
	for ((i = 0; i < RUNS; i++)); do
		for key in "$@"; do
			[ -n "${FAILED[$key]:-}" ] && continue
			if run_key "$key"; then
				SECS[$key]="${SECS[$key]:-} $R_SEC"
				CPUS[$key]="${CPUS[$key]:-} $R_CPU"
				KBS[$key]="${KBS[$key]:-} $R_KB"
			else
				FAILED[$key]=1
			fi
		done
	done
	for key in "$@"; do
		if [ -n "${FAILED[$key]:-}" ]; then
			T[$key]=
			W[$key]=
			U[$key]=
			M[$key]=
			continue
		fi
		# shellcheck disable=SC2086 # the lists are space-separated on purpose
		W[$key]=$(median ${SECS[$key]})
		# shellcheck disable=SC2086
		U[$key]=$(median ${CPUS[$key]})
		# shellcheck disable=SC2086
		M[$key]=$(maxof ${KBS[$key]})
		if [ "$CLOCK" = wall ]; then T[$key]=${W[$key]}; else T[$key]=${U[$key]}; fi
		say "  $key: wall${SECS[$key]} s, cpu${CPUS[$key]} s -> median ${W[$key]} / ${U[$key]} s, peak RSS ${M[$key]} KiB"
	done
}

# Check once that each tool reads the whole report (and warm the page cache).
# A file dmarcwatch refuses (a limit, a bug) is not timed for it; the reason
# goes into the summary instead.
declare -A DW_OK DW_WHY
check_counts() { # key file records
	local key=$1 f=$2 n=$3 got
	got=$("$OUT/floor" "$f") || die "floor failed on $f"
	[ "$got" = "$n" ] || die "floor counted $got records in $f, expected $n"
	xmllint --stream --noout "$f" || die "xmllint rejects $f"
	[ "$have_dw" = 1 ] || return 0
	if ! "$DW" parse --no-records --format json $DWLIMIT "$f" >"$TIMEF.out" 2>"$TIMEF.err"; then
		DW_WHY[$key]=$(head -1 "$TIMEF.err")
		say "parse.sh: $DW parse failed on $f: ${DW_WHY[$key]}"
		return 0
	fi
	got=$(grep -o '"records"[[:space:]]*:[[:space:]]*[0-9]*' "$TIMEF.out" | head -1 | grep -o '[0-9]*$' || true)
	if [ -z "$got" ]; then
		say "parse.sh: warning: no \"records\" count in the JSON of $DW for $f"
	elif [ "$got" != "$n" ]; then
		DW_WHY[$key]="counted $got records, expected $n"
		say "parse.sh: $DW parse on $f: ${DW_WHY[$key]}"
		return 0
	fi
	DW_OK[$key]=1
}

XML="$OUT/report-$BIG.xml"
GZ="$XML.gz"
SMALLGZ="$OUT/report-$SMALL.xml.gz"
check_counts dw.xml "$XML" "$BIG"
check_counts dw.gz "$GZ" "$BIG"
check_counts dw.small "$SMALLGZ" "$SMALL"
BYTES=$(stat -c %s "$XML")
GZBYTES=$(stat -c %s "$GZ")

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v c="$(nproc)" 'BEGIN{exit !(l > c / 2)}'; then
	say "parse.sh: warning: load average $load on $(nproc) cores: timings will be noisy"
fi
say "timing, $RUNS runs each ($BIG records, $BYTES bytes of XML, $GZBYTES gzipped):"
keys=()
for k in xml gz; do
	[ -n "${DW_OK[dw.$k]:-}" ] && keys+=("dw.$k")
	keys+=("floor.$k" "xmllint.$k")
done
[ -n "${DW_OK[dw.small]:-}" ] && keys+=(dw.small)
measure_all "${keys[@]}"

# 4. Results.
mbs() { [ -n "${1:-}" ] && awk -v b="$BYTES" -v t="$1" 'BEGIN{printf "%.0f", b/1e6/t}' || echo "-"; }
rps() { [ -n "${1:-}" ] && awk -v n="$BIG" -v t="$1" 'BEGIN{printf "%.2f M", n/1e6/t}' || echo "-"; }
mib() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}' || echo "-"; }
ratio() { [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo "-"; }
row() { # tool-label input-label key floor-key
	local t=${T[$3]:-}
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$1" "${W[$3]:--}" "${U[$3]:--}" \
		"$(mbs "$t")" "$(rps "$t")" "$(mib "${M[$3]:-}")" "$(ratio "$t" "${T[$4]:-}")"
}

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
xmlver=$(pkg-config --modversion libxml-2.0)
zver=$(pkg-config --modversion zlib)

verdict() { # name ok(1/0/empty) detail
	if [ -z "$2" ]; then
		printf -- '- %s: NOT MEASURED (%s)\n' "$1" "$3"
	elif [ "$2" = 1 ]; then
		printf -- '- %s: PASS (%s)\n' "$1" "$3"
	else
		printf -- '- %s: MISS (%s)\n' "$1" "$3"
	fi
}
# le A B: 1 if A <= B, 0 if not, empty when either was not measured.
le() {
	case "${1:-}/${2:-}" in
	-/* | */- | /* | */) echo "" ;;
	*) awk -v a="$1" -v b="$2" 'BEGIN{print (a + 0 <= b + 0) ? 1 : 0}' ;;
	esac
}

rx=$(ratio "${T[dw.xml]:-}" "${T[floor.xml]:-}")
rg=$(ratio "${T[dw.gz]:-}" "${T[floor.gz]:-}")
rss_big=${M[dw.gz]:-}
rss_small=${M[dw.small]:-}
flat=""
if [ -n "$rss_big" ] && [ -n "$rss_small" ]; then
	d=$((rss_big - rss_small))
	flat=$(((d < 0 ? -d : d) <= RSS_FLAT_KB ? 1 : 0))
fi

echo
echo "----- paste below into README.md (Performance) -----"
echo
printf '%s records (%s MB of XML, %s MB gzipped), generated from a real Fastmail report by\n' \
	"$BIG" "$(awk -v b="$BYTES" 'BEGIN{printf "%.0f", b/1e6}')" "$(awk -v b="$GZBYTES" 'BEGIN{printf "%.1f", b/1e6}')"
printf '`bench/gen.c`; median of %s runs on %s (%s cores), libxml2 %s, zlib %s.\n' "$RUNS" "$cpu" "$cores" "$xmlver" "$zver"
echo 'MB/s counts uncompressed XML bytes; "floor" is `bench/floor.c`, a bare libxml2 SAX2 push'
echo 'parse that only counts `<record>` tags (zlib inflate first for .gz).'
if [ "$CLOCK" = wall ]; then
	echo 'MB/s, records/s and × floor use the wall time.'
else
	echo 'MB/s, records/s and × floor use the CPU time (user + sys): all three programs are'
	echo 'single-threaded, so on an idle machine it equals the wall time, and it is far less'
	echo 'disturbed by other load on a shared machine.'
fi
echo
echo '| input | tool | wall (s) | CPU (s) | MB/s | records/s | peak RSS (MiB) | × floor |'
echo '|---|---|---:|---:|---:|---:|---:|---:|'
for kind in xml gz; do
	label=.xml
	[ "$kind" = gz ] && label=.xml.gz
	if [ -n "${DW_WHY[dw.$kind]:-}" ]; then
		printf '| %s | dmarcwatch parse | refused (see below) | - | - | - | - | - |\n' "$label"
	elif [ "$have_dw" = 1 ]; then
		row 'dmarcwatch parse' "$label" "dw.$kind" "floor.$kind"
	fi
	row 'floor (SAX2 count)' "$label" "floor.$kind" "floor.$kind"
	row 'xmllint --stream' "$label" "xmllint.$kind" "floor.$kind"
done
echo
printf 'Peak RSS of `dmarcwatch parse` on the .xml.gz: %s MiB at %s records, %s MiB at %s records.\n' \
	"$(mib "$rss_small")" "$SMALL" "$(mib "$rss_big")" "$BIG"
for k in dw.xml dw.gz dw.small; do
	f=$XML
	[ "$k" = dw.gz ] && f=$GZ
	[ "$k" = dw.small ] && f=$SMALLGZ
	[ -n "${DW_WHY[$k]:-}" ] && printf '\n`dmarcwatch parse %s` failed: %s\n' "$(basename "$f")" "${DW_WHY[$k]}"
done
echo
echo "Targets:"
# A file dmarcwatch refused misses the target it was needed for.
refused() { # keys...: 0 if one of them was refused, with its reason on stdout
	local k
	for k in "$@"; do
		[ -n "${DW_WHY[$k]:-}" ] && { printf 'refused: %s' "${DW_WHY[$k]}"; return 0; }
	done
	return 1
}
target() { # name ok detail keys...
	local name=$1 ok=$2 detail=$3 why
	shift 3
	if why=$(refused "$@"); then verdict "$name" 0 "$why"; else verdict "$name" "$ok" "$detail"; fi
}
target "time ≤ ${RATIO_MAX}× floor, .xml" "$(le "$rx" "$RATIO_MAX")" "${rx}×" dw.xml
target "time ≤ ${RATIO_MAX}× floor, .xml.gz" "$(le "$rg" "$RATIO_MAX")" "${rg}×" dw.gz
target "peak RSS ≤ 32 MiB" "$(le "$rss_big" "$RSS_MAX_KB")" "$(mib "$rss_big") MiB" dw.gz
target "RSS flat ($SMALL vs $BIG records, within 4 MiB)" "$flat" "$(mib "$rss_small") vs $(mib "$rss_big") MiB" dw.gz dw.small
echo
echo "----- end -----"
