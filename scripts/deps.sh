#!/bin/sh
# Install the Debian packages that building and testing dmarcwatch need,
# only when some are missing. Idempotent and silent when all are present.
# Note: libetpan-dev pulls libcurl4-gnutls-dev; never add libcurl4-openssl-dev.
set -eu

PKGS="pkg-config make gcc libc6-dev
libetpan-dev libxml2-dev libzip-dev zlib1g-dev libsqlite3-dev libyaml-dev
libjansson-dev libgnutls28-dev libcurl4-gnutls-dev
dovecot-imapd openssl procps curl
sqlite3 libxml2-utils tzdata time zip python3 python3-aiosmtpd
man-db groff-base systemd debhelper dpkg-dev fakeroot lintian python3-prometheus-client"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: missing packages:$missing; run this script as root (or install sudo)" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends $missing
fi
