# lib.sh - helpers for the integration tests (bash, TAP output).
# Each test gets a private temp dir ($T) removed on exit, and
# $DMARCWATCH (the binary under test; ./dmarcwatch by default).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DMARCWATCH=${DMARCWATCH:-$ROOT/dmarcwatch}
DATA=$ROOT/tests/data
DW_PLUGIN_BUILD=${DW_PLUGIN_BUILD:-$ROOT/build/plugins}
DW_TEST_PLUGINS=${DW_TEST_PLUGINS:-$ROOT/build/tests/plugins}
T=$(mktemp -d "${TMPDIR:-/tmp}/dw-test.XXXXXX")
trap 'rm -rf "$T"; jobs -p | xargs -r kill 2>/dev/null' EXIT
cd "$ROOT"
_n=0
_failed=0

ok() { # ok COND-EXIT-STATUS NAME
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_n - $2"
	else
		echo "not ok $_n - $2"
		_failed=$((_failed + 1))
	fi
}
is() { # is GOT WANT NAME
	_n=$((_n + 1))
	if [ "$1" = "$2" ]; then
		echo "ok $_n - $3"
	else
		echo "not ok $_n - $3"
		echo "#          got: '$1'"
		echo "#     expected: '$2'"
		_failed=$((_failed + 1))
		return 1
	fi
}
like() { # like GOT SUBSTRING NAME
	_n=$((_n + 1))
	case "$1" in
	*"$2"*) echo "ok $_n - $3" ;;
	*)
		echo "not ok $_n - $3"
		echo "#          got: '$1'"
		echo "#  to contain: '$2'"
		_failed=$((_failed + 1))
		;;
	esac
}
skip() { _n=$((_n + 1)); echo "ok $_n # SKIP $1"; }
done_testing() { echo "1..$_n"; [ "$_failed" -eq 0 ]; }
# jq-like field access without jq: jget JSON-LINE EXPR (python expression on `d`)
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# seed_maildir DIR MAILS [MKMAIL-OPTIONS]: a Maildir at DIR holding the
# mails tests/integration/mkmail.py writes to MAILS, delivered in order
# (file names and mtimes 1700000001, ...); mkmail's expectations JSON on stdout.
seed_maildir() {
	local md=$1 mails=$2 i=0 f
	shift 2
	mkdir -p "$md/cur" "$md/new" "$md/tmp"
	python3 "$ROOT/tests/integration/mkmail.py" "$mails" "$@" || return 1
	for f in "$mails"/*.eml; do
		i=$((i + 1))
		cp "$f" "$md/new/$((1700000000 + i)).M$i.test"
		touch -d "@$((1700000000 + i))" "$md/new/$((1700000000 + i)).M$i.test"
	done
}

# wait_for SECONDS COMMAND [ARGS]: run COMMAND every 0.1 s until it succeeds;
# 1 if it never did. Pass a function or `sh -c '...'` when the condition
# must be re-evaluated (arguments are expanded once, by the caller).
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}
# nlines FILE: its line count, 0 when it does not exist.
nlines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# has_lines FILE N: FILE has at least N lines.
has_lines() { [ "$(nlines "$1")" -ge "$2" ]; }
