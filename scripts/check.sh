#!/bin/sh
# make check: -Werror build, unit + integration tests, install/uninstall,
# unit tests under ASan/UBSan, the Debian package (as root, unless
# DW_NO_DEB=1), fuzz smoke when clang is installed. Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
tally=$(mktemp)
trap 'rm -f "$tally"' EXIT
export DW_TALLY="$tally"
status=0

step() { echo "== $*"; }

step "build (WERROR=1)"
if ! $MAKE --no-print-directory WERROR=1 tests; then
	echo "0 1" >>"$tally"; status=1
else
	step "unit tests"
	$MAKE --no-print-directory -s WERROR=1 check-unit || status=1
	step "integration tests"
	$MAKE --no-print-directory -s WERROR=1 check-integration || status=1
	step "install and uninstall (make check-install)"
	$MAKE --no-print-directory -s WERROR=1 check-install || status=1
fi

step "unit tests under ASan+UBSan (SANITIZE=1)"
if ! $MAKE --no-print-directory WERROR=1 SANITIZE=1 tests; then
	echo "0 1" >>"$tally"; status=1
else
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	DW_LOGDIR=build-san/test-logs $MAKE --no-print-directory -s WERROR=1 SANITIZE=1 check-unit || status=1
fi

if [ "$(id -u)" -eq 0 ] && [ "${DW_NO_DEB:-0}" != 1 ]; then
	step "Debian package: build, lintian, install, purge (make check-deb)"
	$MAKE --no-print-directory -s check-deb || status=1
else
	echo "== Debian package check skipped (needs root; DW_NO_DEB=1 skips it)"
fi

if command -v clang >/dev/null 2>&1 && [ "${DW_NO_FUZZ:-0}" != 1 ]; then
	step "fuzz smoke (${FUZZ_SECONDS:-60} s per harness)"
	$MAKE --no-print-directory -s fuzz-smoke || status=1
else
	echo "== fuzz smoke skipped (clang not installed, or DW_NO_FUZZ=1)"
fi

awk '{p += $1; f += $2} END {printf "%d passed, %d failed\n", p, f}' "$tally"
f=$(awk '{f += $2} END {print f + 0}' "$tally")
[ "$f" -eq 0 ] && [ "$status" -eq 0 ]
