#!/bin/bash
# make demo: the agent's main job end to end. Starts a private Dovecot on
# 127.0.0.1 (its own config in a temp dir), seeds it with report mails built
# from the real reports in tests/data the way Google, Microsoft, Yahoo and
# others send them (plus a human mail, a malformed and a spoofed report),
# runs `dmarcwatch run --once` against it, prints the reports, stops Dovecot.
set -u
cd "$(dirname "$0")/.."
. tests/integration/lib.sh
. tests/integration/dovecot.sh
if ! dovecot_available; then
	echo "demo: $DOVECOT_WHY" >&2
	exit 1
fi
echo "== starting a private Dovecot in $T"
dovecot_start "$T/dovecot" --user reports --pass demo-password >/dev/null || exit 1
python3 tests/integration/mkmail.py "$T/mails" >/dev/null
imap_cmd create Reports
imap_cmd append Reports "$T"/mails/*.eml
echo "   IMAP on 127.0.0.1:$DOVECOT_PORT, folder Reports: $(imap_cmd count Reports) messages"
printf '%s\n' "$DOVECOT_PASS" >"$T/password"
chmod 600 "$T/password"
cat >"$T/dmarcwatch.yaml" <<YAML
state_dir: $T/state
timezone: UTC
accounts:
  - name: demo
    source: imap
    host: 127.0.0.1
    port: $DOVECOT_PORT
    tls: none                 # a local test server; real servers: implicit or starttls
    allow_plaintext: true
    username: $DOVECOT_USER
    password_file: $T/password
    folder: Reports
    archive_folder: Reports/Archive
    invalid_folder: Reports/Invalid
    untrusted_folder: Reports/Untrusted
    other_folder: Reports/Other
    mode: poll
    trust:
      authserv_id: [mx.test.example]
      require: dmarc
YAML
echo
# The agent refuses root (a real deployment runs it as its own user); the
# demo is usually run as root on a scratch machine, so it says so.
ROOTOPT=""
[ "$(id -u)" -eq 0 ] && ROOTOPT="--allow-root"
echo "== dmarcwatch run --once $ROOTOPT -c $T/dmarcwatch.yaml"
./dmarcwatch run --once $ROOTOPT -c "$T/dmarcwatch.yaml"
rc=$?
echo
echo "== folders after the run (this Dovecot separates levels with '.'; the config says '/')"
for f in Reports Reports.Archive Reports.Invalid Reports.Untrusted Reports.Other; do
	printf '   %-20s %s\n' "$f" "$(imap_cmd count "$f" 2>/dev/null || echo 0)"
done
echo
echo "== dmarcwatch report --by day"
./dmarcwatch report --db "$T/state/dmarcwatch.db" --by day
echo
echo "== dmarcwatch report --by source --domain example.com"
./dmarcwatch report --db "$T/state/dmarcwatch.db" --by source --domain example.com
dovecot_stop
exit $rc
