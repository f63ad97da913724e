#!/bin/sh
# copy-tree.sh DEST: copy the source tree (no build output) into DEST, for
# builds that must not touch the working tree: check-install's build with a
# scratch PREFIX and `make deb`. In a git checkout that is every tracked
# file plus new files git does not ignore (work not yet committed is
# built too); elsewhere (a release tarball) the tree minus build dirs.
set -eu
dest=${1:?usage: copy-tree.sh DEST}
# DEST is relative to where we were called from, not to the tree.
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cd "$(dirname "$0")/.."
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files deleted in the working tree are left out.
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
		tar --null -T - -cf - | tar -xf - -C "$dest"
else
	tar --exclude=./build --exclude=./build-san --exclude=./build-fuzz --exclude=./build-deb \
		--exclude=./dmarcwatch --exclude=./bench/out --exclude=./tests/tmp -cf - . | tar -xf - -C "$dest"
fi
