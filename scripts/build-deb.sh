#!/bin/sh
# build-deb.sh (make deb): build the Debian package from a copy of the
# source tree (scripts/copy-tree.sh) with packaging/debian as debian/, so
# the working tree and its build/ are left alone. The .deb goes to
# build-deb/, with the build log (build-deb/build.log).
set -eu
# Only what this script passes reaches make: no install variables from the
# environment, nothing from a calling make's command line (MAKEFLAGS).
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR PREFIX BINDIR LIBDIR PLUGINDIR SYSCONFDIR INCLUDEDIR MANDIR \
	PKGCONFIGDIR SYSTEMDUNITDIR
cd "$(dirname "$0")/.."
out=$PWD/build-deb
version=$(sed -n 's/^VERSION *= *//p' Makefile)
debversion=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$debversion" != "$version" ]; then
	echo "build-deb: packaging/debian/changelog is at $debversion but the Makefile's VERSION is $version;" \
		"add a changelog entry (dch -v $version)" >&2
	exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/dw-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src="$work/dmarcwatch-$version"
sh scripts/copy-tree.sh "$src"
mv "$src/packaging/debian" "$src/debian"
mkdir -p "$out"
rm -f "$out"/dmarcwatch_*.deb "$out"/build.log
echo "  DEB     dmarcwatch $version (log: build-deb/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -jauto) >"$out/build.log" 2>&1; then
	tail -40 "$out/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed; the whole log is build-deb/build.log" >&2
	exit 1
fi
cp "$work"/dmarcwatch_*.deb "$out"/
ls "$out"/dmarcwatch_*.deb
