# dovecot.sh - a private Dovecot IMAP server for integration tests (bash).
#
# Source it after lib.sh:
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/dovecot.sh"
#     dovecot_available || { skip "$DOVECOT_WHY"; done_testing; exit; }
#     dovecot_start "$T/dc" --user reports --pass s3cret
#
# One instance per test script (the variables below are global). It listens
# on 127.0.0.1 on free ports, keeps everything (config, log, state, mail)
# under the directory given to dovecot_start plus a short runtime directory
# in /tmp (unix socket paths must stay under 108 bytes), never touches the
# system's own dovecot, and is stopped by dovecot_stop or when the test
# script exits.
#
# Functions:
#   dovecot_available              0 when a supported dovecot is installed;
#                                  otherwise 1 with the reason in $DOVECOT_WHY
#   dovecot_start DIR [--ssl CERT KEY] [--user U] [--pass P]
#                 [--oauth2 INTROSPECTION_URL] [--rawlog] [--capability LIST]
#                                  start it and wait until it accepts connections;
#                                  --capability replaces the capabilities announced
#                                  after login (e.g. "IMAP4rev1 LITERAL+ UIDPLUS" to
#                                  play a server without MOVE and IDLE)
#   dovecot_stop                   stop it (idempotent)
#   dovecot_crash                  SIGKILL the whole instance (sessions too), keep
#                                  its config, ports and mail
#   dovecot_restart                start that instance again and wait for it
#   dovecot_seed FILE...           deliver messages into INBOX by writing them
#                                  into the maildir's new/ directory (fast; UIDs
#                                  follow the order of the arguments)
#   imap_cmd CMD [ARGS]            a python3 imaplib client logged in as the user:
#                                  list                 folder names, one a line
#                                  count FOLDER         number of messages
#                                  uids FOLDER          UIDs, space separated
#                                  uidvalidity FOLDER
#                                  append FOLDER FILE...  IMAP APPEND (realistic path)
#                                  create FOLDER | delete FOLDER
#                                  flags FOLDER         "uid:flags" a line
#                                  addflag FOLDER UID FLAG   UID STORE +FLAGS
#   doveadm_cmd ARGS...            doveadm against this instance
#   dovecot_make_certs DIR         a throw-away CA and certificates (openssl):
#                                  ca.pem; server.pem/.key (localhost, 127.0.0.1,
#                                  signed by the CA); wrong.pem/.key (only
#                                  wrong.example.invalid, signed by the CA);
#                                  self.pem/.key (self-signed, localhost,
#                                  127.0.0.1); expired.pem/.key (signed by the
#                                  CA, localhost and 127.0.0.1, expired)
#   dovecot_introspect_start TOKEN USER
#                                  a tiny OAuth2 introspection endpoint for
#                                  --oauth2: the token TOKEN is active for USER,
#                                  every other token is inactive. Sets
#                                  $DOVECOT_INTROSPECT_URL; stopped at exit.
#   free_port                      print a free TCP port on 127.0.0.1
#
# Variables set by dovecot_start:
#   DOVECOT_PORT      plain IMAP (STARTTLS offered when --ssl)
#   DOVECOT_TLS_PORT  implicit TLS (only with --ssl, else empty)
#   DOVECOT_USER DOVECOT_PASS   the account (default reports / s3cret-pass)
#   DOVECOT_MAILDIR   the user's Maildir root (INBOX is new/ cur/ tmp/ there,
#                     folder X is .X/)
#   DOVECOT_CONF DOVECOT_LOG DOVECOT_DIR
#   DOVECOT_RAWLOG    with --rawlog: the directory where Dovecot writes one
#                     *.in / *.out pair per IMAP session (what the client sent
#                     and what it got), to count commands and round trips
#
# Running as root (CI): Dovecot refuses to give mail access to uid 0, so the
# mail user is `nobody` (its uid/gid in the passwd file), the Maildir is
# chowned to it, and the login/internal users stay Debian's dovenull/dovecot.
# DIR's ancestors get o+x where needed so `nobody` can reach the Maildir.
# As a normal user everything runs as that user (no chroot).

DOVECOT_WHY=""
DOVECOT_PORT=""
DOVECOT_TLS_PORT=""
DOVECOT_USER=""
DOVECOT_PASS=""
DOVECOT_MAILDIR=""
DOVECOT_CONF=""
DOVECOT_LOG=""
DOVECOT_DIR=""
DOVECOT_RAWLOG=""
DOVECOT_INTROSPECT_URL=""
_dovecot_run=""
_dovecot_trap_set=""
_dovecot_mail_owner=""

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Major.minor of the installed dovecot, e.g. "2.3".
_dovecot_series() {
	dovecot --version 2>/dev/null | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p'
}

dovecot_available() {
	if ! command -v dovecot >/dev/null 2>&1 || ! command -v doveadm >/dev/null 2>&1; then
		DOVECOT_WHY="dovecot is not installed (package dovecot-imapd)"
		return 1
	fi
	if ! command -v python3 >/dev/null 2>&1; then
		DOVECOT_WHY="python3 is not installed"
		return 1
	fi
	case "$(_dovecot_series)" in
	2.3) ;;
	*)
		# 2.4 renamed most settings (mail_driver, ssl_server_cert_file,
		# passwd_file_path...); a template for it is still to be written.
		DOVECOT_WHY="dovecot $(dovecot --version 2>/dev/null) is not supported by tests/integration/dovecot.sh (only 2.3)"
		return 1
		;;
	esac
	if [ "$(id -u)" -eq 0 ] && ! { getent passwd dovecot && getent passwd dovenull && getent passwd nobody; } >/dev/null; then
		DOVECOT_WHY="running as root needs the users dovecot, dovenull and nobody"
		return 1
	fi
	return 0
}

# Chain our cleanup in front of whatever EXIT trap lib.sh installed.
_dovecot_install_trap() {
	[ -n "$_dovecot_trap_set" ] && return 0
	_dovecot_trap_set=1
	local prev
	prev=$(trap -p EXIT)
	if [ -n "$prev" ]; then
		eval "set -- $prev"
		trap "_dovecot_cleanup; $3" EXIT
	else
		trap _dovecot_cleanup EXIT
	fi
}

_dovecot_cleanup() {
	dovecot_stop
	if [ -n "${_dovecot_introspect_pid:-}" ]; then
		kill "$_dovecot_introspect_pid" 2>/dev/null
		_dovecot_introspect_pid=""
	fi
}

# Let the unprivileged mail user reach DIR: give o+x to ancestors we own.
_dovecot_open_path() {
	local d
	d=$(cd "$1" && pwd)
	while [ "$d" != "/" ] && [ -n "$d" ]; do
		if [ -O "$d" ]; then
			chmod o+x "$d"
		fi
		d=$(dirname "$d")
	done
}

_dovecot_conf_23() { # writes the 2.3 config to $DOVECOT_CONF
	local ssl_block="ssl = no"
	local imaps_port=0
	if [ -n "$_dc_cert" ]; then
		cp "$_dc_cert" "$DOVECOT_DIR/ssl-cert.pem"
		cp "$_dc_key" "$DOVECOT_DIR/ssl-key.pem"
		cp /usr/share/dovecot/dh.pem "$DOVECOT_DIR/dh.pem"
		chmod 600 "$DOVECOT_DIR/ssl-key.pem"
		ssl_block="ssl = yes
ssl_cert = <$DOVECOT_DIR/ssl-cert.pem
ssl_key = <$DOVECOT_DIR/ssl-key.pem
ssl_dh = <$DOVECOT_DIR/dh.pem"
		imaps_port=$DOVECOT_TLS_PORT
	fi
	local users mechs="plain login" oauth_passdb="" login_chroot="" rawlog=""
	if [ "$(id -u)" -eq 0 ]; then
		users="default_internal_user = dovecot
default_login_user = dovenull"
	else
		users="default_internal_user = $(id -un)
default_internal_group = $(id -gn)
default_login_user = $(id -un)"
		login_chroot="chroot ="
	fi
	if [ -n "$_dc_oauth2" ]; then
		mechs="plain login xoauth2 oauthbearer"
		cat >"$DOVECOT_DIR/oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $_dc_oauth2
username_attribute = username
active_attribute = active
active_value = true
EOF
		oauth_passdb="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DOVECOT_DIR/oauth2.conf.ext
}"
	fi
	if [ -n "$DOVECOT_RAWLOG" ]; then
		rawlog="rawlog_dir = $DOVECOT_RAWLOG"
	fi
	local capability=""
	if [ -n "$_dc_capability" ]; then
		capability="imap_capability = $_dc_capability"
	fi
	cat >"$DOVECOT_CONF" <<EOF
# Generated by tests/integration/dovecot.sh for one test run.
instance_name = dwtest-$$-${RANDOM}
base_dir = $_dovecot_run
state_dir = $DOVECOT_DIR/state
log_path = $DOVECOT_LOG
protocols = imap
listen = 127.0.0.1
$users
$ssl_block
disable_plaintext_auth = no
auth_mechanisms = $mechs
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
$oauth_passdb
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DOVECOT_DIR/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $DOVECOT_DIR/passwd
}
service imap-login {
  $login_chroot
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}
service anvil {
  $login_chroot
}
protocol imap {
  mail_max_userip_connections = 100
  $rawlog
  $capability
}
EOF
}

dovecot_start() { # DIR [--ssl CERT KEY] [--user U] [--pass P] [--oauth2 URL] [--rawlog] [--capability LIST]
	local dir=$1
	shift
	_dc_cert="" _dc_key="" _dc_oauth2="" _dc_capability=""
	local user=reports pass=s3cret-pass rawlog=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--ssl) _dc_cert=$2 _dc_key=$3; shift 3 ;;
		--user) user=$2; shift 2 ;;
		--pass) pass=$2; shift 2 ;;
		--oauth2) _dc_oauth2=$2; shift 2 ;;
		--rawlog) rawlog=1; shift ;;
		--capability) _dc_capability=$2; shift 2 ;;
		*) echo "dovecot_start: unknown option $1" >&2; return 2 ;;
		esac
	done
	dovecot_available || { echo "dovecot_start: $DOVECOT_WHY" >&2; return 1; }
	[ -n "$_dovecot_run" ] && dovecot_stop
	_dovecot_install_trap

	mkdir -p "$dir" || return 1
	DOVECOT_DIR=$(cd "$dir" && pwd)
	DOVECOT_CONF=$DOVECOT_DIR/dovecot.conf
	DOVECOT_LOG=$DOVECOT_DIR/dovecot.log
	DOVECOT_USER=$user
	DOVECOT_PASS=$pass
	DOVECOT_PORT=$(free_port)
	DOVECOT_TLS_PORT=""
	[ -n "$_dc_cert" ] && DOVECOT_TLS_PORT=$(free_port)
	_dovecot_run=$(mktemp -d /tmp/dc.XXXXXX) || return 1
	chmod 755 "$_dovecot_run"
	mkdir -p "$DOVECOT_DIR/state" "$DOVECOT_DIR/home/$user/Maildir/new" \
		"$DOVECOT_DIR/home/$user/Maildir/cur" "$DOVECOT_DIR/home/$user/Maildir/tmp"
	DOVECOT_MAILDIR=$DOVECOT_DIR/home/$user/Maildir

	local uid gid
	if [ "$(id -u)" -eq 0 ]; then
		uid=$(id -u nobody)
		gid=$(id -g nobody)
		_dovecot_open_path "$DOVECOT_DIR"
	else
		uid=$(id -u)
		gid=$(id -g)
	fi
	_dovecot_mail_owner="$uid:$gid"
	DOVECOT_RAWLOG=""
	if [ -n "$rawlog" ]; then
		DOVECOT_RAWLOG=$DOVECOT_DIR/rawlog
		mkdir -p "$DOVECOT_RAWLOG"
	fi
	chown -R "$_dovecot_mail_owner" "$DOVECOT_DIR/home" ${DOVECOT_RAWLOG:+"$DOVECOT_RAWLOG"}
	printf '%s:{PLAIN}%s:%s:%s::%s\n' "$user" "$pass" "$uid" "$gid" "$DOVECOT_DIR/home/$user" \
		>"$DOVECOT_DIR/passwd"
	chmod 644 "$DOVECOT_DIR/passwd"

	_dovecot_conf_23

	if ! dovecot -c "$DOVECOT_CONF" 2>"$DOVECOT_DIR/start.err"; then
		echo "dovecot_start: dovecot failed to start:" >&2
		cat "$DOVECOT_DIR/start.err" "$DOVECOT_LOG" 2>/dev/null | tail -20 >&2
		rm -rf "$_dovecot_run"
		_dovecot_run=""
		return 1
	fi
	if ! _dovecot_wait_listening; then
		echo "dovecot_start: dovecot does not answer on 127.0.0.1:$DOVECOT_PORT" >&2
		tail -20 "$DOVECOT_LOG" >&2
		dovecot_stop
		return 1
	fi
	return 0
}

# Wait (up to 10 s) until the listeners answer.
_dovecot_wait_listening() {
	python3 - "$DOVECOT_PORT" "$DOVECOT_TLS_PORT" <<'PY'
import socket, sys, time
ports = [int(p) for p in sys.argv[1:] if p]
deadline = time.time() + 10
for port in ports:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(1)
            time.sleep(0.05)
PY
}

# A crash: SIGKILL to the whole instance, sessions included, without any
# cleanup. Config, ports and mail stay, so dovecot_restart can bring it back.
dovecot_crash() {
	[ -n "$_dovecot_run" ] || return 0
	local pid pgid
	pid=$(cat "$_dovecot_run/master.pid" 2>/dev/null) || return 0
	pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
	if [ -n "$pgid" ] && [ "$pgid" = "$pid" ]; then
		kill -KILL -- "-$pgid" 2>/dev/null
	else
		kill -KILL "$pid" 2>/dev/null
	fi
}

# Start the same instance again (after dovecot_crash) and wait for it.
dovecot_restart() {
	[ -n "$_dovecot_run" ] || { echo "dovecot_restart: no instance" >&2; return 1; }
	rm -f "$_dovecot_run/master.pid"
	dovecot -c "$DOVECOT_CONF" 2>>"$DOVECOT_DIR/start.err" || return 1
	_dovecot_wait_listening
}

# A clean Dovecot shutdown takes 2-3 s; a test instance holds nothing worth
# waiting for. After a short grace period the instance's process group (the
# daemonised master leads it) is killed; without ps, wait for the master.
dovecot_stop() {
	[ -n "$_dovecot_run" ] || return 0
	local pid="" pgid="" i=0
	[ -f "$_dovecot_run/master.pid" ] && pid=$(cat "$_dovecot_run/master.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
		kill -TERM "$pid" 2>/dev/null
		if [ "$pgid" = "$pid" ]; then
			while kill -0 "$pid" 2>/dev/null && [ $i -lt 6 ]; do
				sleep 0.05
				i=$((i + 1))
			done
			kill -KILL -- "-$pgid" 2>/dev/null
		else
			while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
				sleep 0.05
				i=$((i + 1))
			done
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	rm -rf "$_dovecot_run"
	_dovecot_run=""
}

doveadm_cmd() {
	doveadm -c "$DOVECOT_CONF" "$@"
}

# Files land in new/ under names that sort in argument order, so Dovecot
# assigns ascending UIDs in that order when it next scans the maildir. Each
# keeps its file's mtime, which Dovecot reports as INTERNALDATE. One python3
# process for all files: 10^4 messages take about a second.
_dovecot_seq=0
dovecot_seed() {
	[ $# -gt 0 ] || return 0
	python3 - "$DOVECOT_MAILDIR" "$_dovecot_mail_owner" "$_dovecot_seq" "$$" "$@" <<'PY' || return 1
import os, shutil, sys, time
maildir, owner, seq, pid, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
uid, gid = (int(x) for x in owner.split(":"))
now = int(time.time())
for f in files:
    seq += 1
    # Name it as Dovecot's own delivery does: S= is the file size and W=
    # the size with CRLF line ends (RFC822.SIZE), so the server need not
    # read the file to answer a size listing.
    with open(f, "rb") as fh:
        data = fh.read()
    wsize = len(data) + data.count(b"\n") - data.count(b"\r\n")
    name = "%d.M%06dP%s.dwtest,S=%d,W=%d" % (now, seq, pid, len(data), wsize)
    tmp = os.path.join(maildir, "tmp", name)
    shutil.copyfile(f, tmp)
    st = os.stat(f)
    os.utime(tmp, (st.st_atime, st.st_mtime))
    if os.geteuid() == 0:
        os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(maildir, "new", name))
PY
	_dovecot_seq=$((_dovecot_seq + $#))
}

imap_cmd() {
	python3 - "$DOVECOT_PORT" "$DOVECOT_USER" "$DOVECOT_PASS" "$@" <<'PY'
import imaplib, re, sys
port, user, password, cmd, args = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
def q(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
def check(typ, data, what):
    if typ != "OK":
        sys.exit("imap_cmd %s: %s" % (what, data))
if cmd == "list":
    typ, data = m.list()
    check(typ, data, "LIST")
    for line in data:
        line = line.decode()
        mo = re.match(r'\((.*?)\) (NIL|"(?:[^"\\]|\\.)*") (.*)$', line)
        name = mo.group(3)
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        print(name)
elif cmd == "count":
    typ, data = m.select(q(args[0]), readonly=True)
    check(typ, data, "SELECT")
    print(int(data[0]))
elif cmd == "uids":
    typ, data = m.select(q(args[0]), readonly=True)
    check(typ, data, "SELECT")
    typ, data = m.uid("SEARCH", "ALL")
    print(data[0].decode())
elif cmd == "uidvalidity":
    typ, data = m.status(q(args[0]), "(UIDVALIDITY)")
    check(typ, data, "STATUS")
    print(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1).decode())
elif cmd == "append":
    for f in args[1:]:
        with open(f, "rb") as fh:
            typ, data = m.append(q(args[0]), None, None, fh.read())
        check(typ, data, "APPEND")
elif cmd == "create":
    check(*m.create(q(args[0])), "CREATE")
elif cmd == "delete":
    check(*m.delete(q(args[0])), "DELETE")
elif cmd == "flags":
    typ, data = m.select(q(args[0]), readonly=True)
    check(typ, data, "SELECT")
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
    for item in data:
        if item:
            mo = re.search(rb"UID (\d+) FLAGS \((.*?)\)", item) or re.search(rb"FLAGS \((.*?)\) UID (\d+)", item)
            print("%s:%s" % (mo.group(1).decode(), mo.group(2).decode()))
elif cmd == "addflag":
    typ, data = m.select(q(args[0]))
    check(typ, data, "SELECT")
    check(*m.uid("STORE", args[1], "+FLAGS", "(%s)" % args[2]), "STORE")
else:
    sys.exit("imap_cmd: unknown command " + cmd)
m.logout()
PY
}

dovecot_make_certs() { # DIR
	local d=$1
	command -v openssl >/dev/null 2>&1 || { echo "dovecot_make_certs: openssl is not installed" >&2; return 1; }
	mkdir -p "$d" || return 1
	(
		cd "$d" || exit 1
		set -e
		ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
		# shellcheck disable=SC2086
		openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj "/CN=dmarcwatch test CA" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
		leaf() { # name san days-offset-args...
			local name=$1 san=$2
			shift 2
			# shellcheck disable=SC2086
			openssl req $ec -keyout "$name.key" -out "$name.csr" -subj "/CN=${san%%,*}"
			printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
				"$(echo "$san" | sed 's/\([^,]*\)/DNS:\1/g; s/DNS:\([0-9.]*\)\(,\|$\)/IP:\1\2/g')" >"$name.ext"
			openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
				-out "$name.pem" -extfile "$name.ext" "$@"
			rm -f "$name.csr" "$name.ext"
		}
		leaf server "localhost,127.0.0.1" -days 30
		leaf wrong "wrong.example.invalid" -days 30
		# Expired: "-days -1" puts notAfter one day before notBefore (now).
		leaf expired "localhost,127.0.0.1" -days -1
		# shellcheck disable=SC2086
		openssl req -x509 $ec -keyout self.key -out self.pem -days 30 -subj "/CN=localhost" \
			-addext subjectAltName=DNS:localhost,IP:127.0.0.1
		rm -f ca.srl
	) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
}

dovecot_introspect_start() { # TOKEN USER
	local port
	port=$(free_port)
	python3 - "$port" "$1" "$2" >/dev/null 2>&1 <<'PY' &
import json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, token, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length, so Dovecot's client can keep the
    # connection open.
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        ok = form.get("token", [""])[0] == token
        body = json.dumps({"active": True, "username": user} if ok else {"active": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
	_dovecot_introspect_pid=$!
	_dovecot_install_trap
	DOVECOT_INTROSPECT_URL="http://127.0.0.1:$port/introspect"
	python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.025)
sys.exit(1)
PY
}
