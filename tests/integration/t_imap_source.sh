#!/bin/bash
# The IMAP source (src/source_imap.c) against a private Dovecot, through the
# small driver tests/integration/imap_driver.c: batched fetch with a
# checkpoint, the size cap, move (with folder creation) in one round trip,
# certificate verification (trusted, self-signed, wrong host name,
# expired), STARTTLS, plaintext refusal, password and XOAUTH2 logins,
# IDLE, UIDVALIDITY, a dropped connection, and throughput.
#
# Set DW_TEST_SANITIZE=1 to build the driver with ASan+UBSan.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dovecot.sh"

if ! dovecot_available; then
	skip "$DOVECOT_WHY"
	done_testing
	exit
fi
if ! command -v openssl >/dev/null 2>&1; then
	skip "openssl is not installed"
	done_testing
	exit
fi

# --- build the driver with the Makefile's flags ----------------------------
CF="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow
 -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wformat=2
 -fstack-protector-strong -Werror -Iinclude $(pkg-config --cflags libetpan gnutls)"
LIBS=$(pkg-config --libs libetpan gnutls | tr ' ' '\n' | grep -v '^-specs=' | tr '\n' ' ')
DRV=$T/imap_driver
# shellcheck disable=SC2086
if [ "${DW_TEST_SANITIZE:-0}" = 1 ]; then
	SAN="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
	cc $CF $SAN -Wno-error -c -o "$T/util.o" src/util.c &&
		cc $CF $SAN -o "$DRV" tests/integration/imap_driver.c src/source_imap.c "$T/util.o" $LIBS -lm
elif make -s build/libdmarcwatch.a >"$T/make.log" 2>&1; then
	cc -O2 -g $CF -o "$DRV" tests/integration/imap_driver.c build/libdmarcwatch.a $LIBS -lm
else
	# Someone else's half-written file must not hide this module's results.
	echo "# make build/libdmarcwatch.a failed; linking source_imap.c and util.c directly"
	cc -O2 -g $CF -o "$DRV" tests/integration/imap_driver.c src/source_imap.c src/util.c $LIBS -lm
fi
ok $? "imap_driver builds"
[ -x "$DRV" ] || { done_testing; exit 1; }

dovecot_make_certs "$T/certs"
ok $? "throw-away CA and certificates made"
C=$T/certs
dovecot_introspect_start good-token reports
ok $? "OAuth2 introspection endpoint up"

dovecot_start "$T/dc" --ssl "$C/server.pem" "$C/server.key" --user reports --pass 's3cret pass' \
	--oauth2 "$DOVECOT_INTROSPECT_URL" --rawlog
ok $? "dovecot started (imap $DOVECOT_PORT, imaps $DOVECOT_TLS_PORT)"

TLS=(--port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass 's3cret pass')
drv() { "$DRV" "$@" 2>"$T/drv.err"; }
# The client-to-server half of the only session the rawlog holds now.
rawlog_in() {
	local i
	for i in $(seq 50); do
		if grep -qs ' LOGOUT' "$DOVECOT_RAWLOG"/*.in; then break; fi
		sleep 0.05
	done
	cat "$DOVECOT_RAWLOG"/*.in 2>/dev/null | tr -d '\r'
}
rawlog_clear() { rm -f "$DOVECOT_RAWLOG"/*; }

# --- fixture messages: CRLF, growing sizes, known mtimes ------------------
python3 - "$T/m" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(1, 51):
    body = "".join("report line %d.%d %s\r\n" % (i, j, "x" * (i % 7) * 10) for j in range(10 + 4 * i))
    data = "From: r@example.net\r\nTo: d@example.org\r\nSubject: Report %d\r\nMessage-ID: <%d@t>\r\n\r\n%s" % (i, i, body)
    p = os.path.join(d, "%02d.eml" % i)
    with open(p, "w", newline="") as f:
        f.write(data)
    os.utime(p, (1700000000 + 3600 * i, 1700000000 + 3600 * i))
PY
M=("$T"/m/*.eml)
dovecot_seed "${M[@]}"
is "$(imap_cmd count INBOX)" 50 "50 messages seeded into INBOX"

# expected "uid size mtime sha256" for message i (uid i)
for f in "${M[@]}"; do
	printf '%s %s %s\n' "$(stat -c %s "$f")" "$(stat -c %Y "$f")" "$(sha256sum <"$f" | cut -c1-64)"
done | awk '{print NR, $0}' >"$T/expect.txt"
msgs() { awk '/^msg /{split($2,u,"=");split($3,s,"=");split($5,d,"=");split($6,h,"=");print u[2], s[2], d[2], h[2]}' "$1"; }
batches() { awk '/^batch /{split($2,n,"=");printf "%s%s", sep, n[2]; sep=" "} END {print ""}' "$1"; }
# The batch sizes the brief asks for: consecutive messages whose sizes add up
# to at most MAX (at least one); those above MAXMSG cost nothing.
expect_batches() { # FROM_UID MAX MAXMSG
	awk -v from="$1" -v max="$2" -v maxmsg="$3" '$1 > from {s[++k] = $2}
	END { i = 1; sep = ""
	  while (i <= k) { n = 0; nb = 0; b = 0
	    while (i <= k) { if (s[i] <= maxmsg) { if (nb > 0 && b + s[i] > max) break; b += s[i]; nb++ }
	                     n++; i++ }
	    printf "%s%d", sep, n; sep = " " }
	  print "" }' "$T/expect.txt"
}

# --- open, fetch in batches -------------------------------------------------
rawlog_clear
drv "${TLS[@]}" open drain 0 20000 1000000 >"$T/o1.txt"
ok $? "open + drain over implicit TLS with ca_file"
like "$(cat "$T/o1.txt")" "open uidvalidity=$(imap_cmd uidvalidity INBOX)" "open returns the folder's UIDVALIDITY"
msgs "$T/o1.txt" >"$T/got1.txt"
is "$(cat "$T/got1.txt")" "$(awk '{print $1, $2, $3, $4}' "$T/expect.txt")" \
	"all 50 delivered oldest first with RFC822.SIZE, INTERNALDATE and the exact bytes"
want=$(expect_batches 0 20000 1000000)
is "$(batches "$T/o1.txt")" "$want" "batch boundaries follow max_bytes=20000 ($want)"
nb=$(echo "$want" | wc -w)
in=$(rawlog_in)
is "$(grep -c 'UID FETCH .*BODY.PEEK\[\]' <<<"$in")" "$nb" "one UID FETCH round trip per batch ($nb)"
is "$(grep -c 'RFC822.SIZE' <<<"$in")" 1 "one listing for the whole drain"
like "$(grep 'RFC822.SIZE' <<<"$in")" "UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE)" "the listing asks for UID 1:*"
is "$(grep 'BODY.PEEK' <<<"$in" | head -1 | sed 's/^[0-9.]* [0-9]* //')" \
	"UID FETCH 1:$(echo "$want" | cut -d' ' -f1) (UID BODY.PEEK[])" "a batch is one UID interval"

drv "${TLS[@]}" open fetch 45 100000000 1000000 >"$T/o2.txt"
is "$(msgs "$T/o2.txt" | awk '{printf "%s ", $1}')" "46 47 48 49 50 " "fetch after 45 delivers 46..50"
like "$(cat "$T/o2.txt")" "batch n=5 more=0" "and says nothing more is left"
drv "${TLS[@]}" open fetch 50 100000000 1000000 >"$T/o3.txt"
like "$(cat "$T/o3.txt")" "batch n=0 more=0" "fetch after the highest UID delivers nothing (n:* is filtered)"
drv "${TLS[@]}" open fetch 0 3000 1000000 >"$T/o4.txt"
is "$(batches "$T/o4.txt")" "$(expect_batches 0 3000 1000000 | cut -d' ' -f1)" "one fetch call is one batch"
like "$(cat "$T/o4.txt")" "more=1" "and sets more when messages remain"
drv "${TLS[@]}" open fetch 0 1 1000000 >"$T/o5.txt"
like "$(cat "$T/o5.txt")" "batch n=1 more=1" "max_bytes below the first message still fetches one"

# Messages above max_msg: reported with no data, costing nothing.
rawlog_clear
drv "${TLS[@]}" open drain 0 12000 3000 >"$T/o6.txt"
big=$(awk '$2 > 3000' "$T/expect.txt" | wc -l)
is "$(msgs "$T/o6.txt" | awk '$4 == "none"' | wc -l)" "$big" "the $big messages above max_msg come without data"
is "$(grep -c 'len=0 .*sha256=none' "$T/o6.txt")" "$big" "with len 0 and their size set"
is "$(msgs "$T/o6.txt" | awk '$4 != "none" {print $1, $2, $3, $4}')" "$(awk '$2 <= 3000 {print $1, $2, $3, $4}' "$T/expect.txt")" \
	"the small ones come with their bytes"
is "$(batches "$T/o6.txt")" "$(expect_batches 0 12000 3000)" "batches skip the size of too-big messages"
in=$(rawlog_in)
grep 'BODY.PEEK' <<<"$in" | grep -q ','
ok $? "a batch with too-big messages in between is a UID set of intervals"

# --- move -------------------------------------------------------------------
imap_cmd list >"$T/list.txt"
grep -qx Processed "$T/list.txt"
is $? 1 "folder Processed does not exist yet"
rawlog_clear
drv "${TLS[@]}" open move Processed "$(seq -s, 1 50),99" >"$T/o7.txt"
like "$(cat "$T/o7.txt")" "move ok" "move of 50 messages (and a missing uid) to a new folder"
imap_cmd list >"$T/list.txt"
grep -qx Processed "$T/list.txt"
ok $? "the folder was created"
is "$(imap_cmd count INBOX)" 0 "INBOX is empty after the move"
is "$(imap_cmd count Processed)" 50 "Processed holds the 50 messages"
in=$(rawlog_in)
is "$(grep -c 'UID MOVE' <<<"$in")" 1 "one UID MOVE round trip"
like "$(grep 'UID MOVE' <<<"$in")" "UID MOVE 1:50,99 Processed" "the UID set is compressed"

dovecot_seed "${M[0]}" "${M[1]}"
rawlog_clear
drv "${TLS[@]}" open move Processed 51,52 >"$T/o8.txt"
like "$(cat "$T/o8.txt")" "move ok" "move to an existing folder"
in=$(rawlog_in)
is "$(grep -c ' CREATE ' <<<"$in")" 0 "no CREATE for an existing folder"
is "$(imap_cmd count Processed)" 52 "Processed holds 52"

# --- IDLE -------------------------------------------------------------------
APPEND="bash -c '. tests/integration/dovecot.sh; DOVECOT_PORT=$DOVECOT_PORT DOVECOT_USER=reports DOVECOT_PASS=\"s3cret pass\" imap_cmd append INBOX ${M[2]}'"
rawlog_clear
drv "${TLS[@]}" open drain 0 1000000 1000000 wait 5 "(sleep 0.3; $APPEND) &" drain 0 1000000 1000000 >"$T/o9.txt"
w=$(grep '^wait' "$T/o9.txt")
like "$w" "readable=1 " "IDLE: the fd becomes readable when a message is appended"
case "$w" in *new_mail=1*) ;; *) rawlog_in >/dev/null; tail -n 15 "$DOVECOT_RAWLOG"/*.out | sed 's/^/# /' ;; esac
ms=$(sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<<"$w")
[ -n "$ms" ] && [ "$ms" -lt 2500 ]
ok $? "within 2 s of the APPEND (${ms} ms including the client's start-up)"
like "$w" "new_mail=1" "end_wait reports new mail"
is "$(msgs "$T/o9.txt" | awk '{print $1}' | tail -1)" 53 "and the next fetch gets it (uid 53)"
drv "${TLS[@]}" open drain 0 1000000 1000000 wait 1 >"$T/o10.txt"
w=$(grep '^wait' "$T/o10.txt")
like "$w" "new_mail=0" "IDLE without new mail: end_wait says no new mail"
ms=$(sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<<"$w")
[ -n "$ms" ] && [ "$ms" -ge 990 ]
ok $? "after waiting the whole second (${ms} ms)"
drv "${TLS[@]}" open move Processed 53 drain 0 1000000 1000000 sh "$APPEND" move Processed 1 wait 5 drain 0 1000000 1000000 >"$T/o11.txt"
w=$(grep '^wait' "$T/o11.txt")
like "$w" "new_mail=1 cycles=1" "mail announced (EXISTS) before start_wait is not missed"
ms=$(sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<<"$w")
[ -n "$ms" ] && [ "$ms" -lt 200 ]
ok $? "start_wait returns a readable fd at once then (${ms} ms)"
drv "${TLS[@]}" --poll open wait 1 >"$T/o12.txt"
like "$(cat "$T/o12.txt")" "wait fd=none" "mode poll: start_wait gives no fd"

# --- UIDVALIDITY ------------------------------------------------------------
imap_cmd create Rv && imap_cmd append Rv "${M[0]}"
v1=$(drv "${TLS[@]}" --folder Rv open | sed -n 's/open uidvalidity=//p')
sleep 1.1 # Dovecot derives UIDVALIDITY from the clock
imap_cmd delete Rv && imap_cmd create Rv
v2=$(drv "${TLS[@]}" --folder Rv open | sed -n 's/open uidvalidity=//p')
[ -n "$v1" ] && [ -n "$v2" ] && [ "$v1" != "$v2" ]
ok $? "UIDVALIDITY changes when the folder is recreated ($v1 -> $v2)"
is "$v2" "$(imap_cmd uidvalidity Rv)" "and open reports the new one"
out=$(drv "${TLS[@]}" --folder Nope open)
like "$out" "imap account 'test': cannot select folder 'Nope'" "a missing folder is named in the error"
like "$out" "error rc=5" "and is a configuration error"

# --- a dropped connection ------------------------------------------------------
drv "${TLS[@]}" --keep-going open sh "doveadm -c $DOVECOT_CONF kick reports >/dev/null" \
	fetch 0 1000 1000 fetch 0 1000 1000 open fetch 0 100000 100000 >"$T/o13.txt"
like "$(cat "$T/o13.txt")" "error rc=3: imap account 'test': connection lost while listing new messages (UID 1:*) in folder 'INBOX'" \
	"a dropped connection is a source error naming the account, operation and folder"
like "$(cat "$T/o13.txt")" "error rc=3: imap account 'test': fetching: not connected" "the dead session is closed"
is "$(grep -c '^open uidvalidity' "$T/o13.txt")" 2 "and the source can be opened again"
like "$(tail -1 "$T/o13.txt")" "batch n=1 more=0" "and fetches after reopening"

# --- STARTTLS, plaintext --------------------------------------------------------
out=$(drv --port "$DOVECOT_PORT" --tls starttls --ca "$C/ca.pem" --user reports --pass 's3cret pass' open)
like "$out" "open uidvalidity=" "STARTTLS with certificate verification"
out=$(drv --port "$DOVECOT_PORT" --tls none --user reports --pass 's3cret pass' open)
like "$out" "error rc=5: imap account 'test': tls: none would send the credentials in clear text" \
	"tls: none is refused without allow_plaintext"
out=$(drv --port "$DOVECOT_PORT" --tls none --allow-plaintext --user reports --pass 's3cret pass' open)
like "$out" "open uidvalidity=" "tls: none with allow_plaintext"
out=$(drv --host localhost "${TLS[@]}" open)
like "$out" "open uidvalidity=" "host name localhost matches the certificate too"
out=$(drv "${TLS[@]}" --port "$DOVECOT_PORT" open)
like "$out" "error rc=3: imap account 'test': TLS handshake with 127.0.0.1:$DOVECOT_PORT failed" \
	"implicit TLS against a plain port fails clearly"

# --- XOAUTH2 ----------------------------------------------------------------------
XO=(--port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --xoauth2)
out=$(DW_TEST_TOKENS=good-token drv "${XO[@]}" open)
like "$out" "open uidvalidity=" "XOAUTH2 login with a valid token"
is "$(grep -c '^token' <<<"$out")" 1 "one token asked for"
# After a failed login Dovecot delays the next one from this address by a
# few seconds (auth penalty): keep failing logins few and last.
out=$(DW_TEST_TOKENS=stale,good-token drv "${XO[@]}" open)
like "$out" "token force=1" "a refused token is refreshed once (force=1)"
like "$out" "open uidvalidity=" "and the retry logs in"

# --- throughput -----------------------------------------------------------------
python3 - "$T/perf" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d)
for i in range(3000):
    body = "".join("<record><row><source_ip>192.0.2.%d</source_ip><count>%d</count></row></record>\r\n" % (j, i) for j in range(30))
    with open(os.path.join(d, "%05d.eml" % i), "w", newline="") as f:
        f.write("Subject: perf %d\r\nFrom: p@example.net\r\n\r\n%s" % (i, body))
PY
P=("$T"/perf/*.eml)
dovecot_seed "${P[@]}"
want=$(imap_cmd count INBOX)
rate=0
for attempt in 1 2; do
	rawlog_clear
	drv "${TLS[@]}" open drain 0 16777216 67108864 >"$T/o14.txt"
	n=$(sed -n 's/^total n=\([0-9]*\).*/\1/p' "$T/o14.txt")
	ms=$(sed -n 's/^total .* ms=\([0-9]*\)/\1/p' "$T/o14.txt")
	rate=$(( ${n:-0} * 1000 / (${ms:-1} + 1) ))
	[ "$rate" -ge 2500 ] && break
done
is "$n" "$want" "all $want messages drained"
[ "$rate" -ge 2500 ]
ok $? "at least 2500 messages/s over TLS ($rate/s, $ms ms)"
is "$(grep -c 'BODY.PEEK' <<<"$(rawlog_in)")" "$(( (want + 999) / 1000 ))" "one body round trip per 1,000 messages ($want messages, 8 MB < 16 MiB)"

# --- servers without MOVE, IDLE, UIDPLUS ---------------------------------------
# (In India's time zone: INTERNALDATE then carries +0530.)
dovecot_stop
TZ=Asia/Kolkata dovecot_start "$T/dc5" --ssl "$C/server.pem" "$C/server.key" --user reports \
	--pass 's3cret pass' --rawlog --capability "IMAP4rev1 LITERAL+ UIDPLUS"
ok $? "dovecot restarted without MOVE and IDLE"
TLS=(--port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass 's3cret pass')
dovecot_seed "${M[@]:0:5}"
rawlog_clear
drv "${TLS[@]}" open fetch 0 1000000 1000000 >"$T/o15.txt"
is "$(msgs "$T/o15.txt" | awk '{printf "%s ", $3}')" "$(head -5 "$T/expect.txt" | awk '{printf "%s ", $3}')" \
	"INTERNALDATE with a +0530 zone converts to the right instant"
like "$(rawlog_in; cat "$DOVECOT_RAWLOG"/*.out)" "+0530" "(the server did send +0530)"
rawlog_clear
out=$(drv "${TLS[@]}" open move Old 2,3,4 wait 1)
like "$out" "move ok" "move without MOVE"
like "$out" "wait fd=none" "without IDLE start_wait gives no fd"
in=$(rawlog_in)
is "$(grep -o 'UID [A-Z]* [^ ]*' <<<"$in" | tr '\n' ';')" "UID COPY 2:4;UID STORE 2:4;UID EXPUNGE 2:4;" \
	"UID COPY, UID STORE, UID EXPUNGE of exactly those uids"
like "$(grep 'UID STORE' <<<"$in")" '+FLAGS.SILENT (\Deleted)' "flagged \\Deleted silently"
is "$(imap_cmd uids INBOX)" "1 5" "INBOX keeps the others"
is "$(imap_cmd count Old)" 3 "Old holds the 3"

dovecot_stop
dovecot_start "$T/dc6" --ssl "$C/server.pem" "$C/server.key" --user reports --pass 's3cret pass' \
	--rawlog --capability "IMAP4rev1 LITERAL+"
ok $? "dovecot restarted without MOVE and UIDPLUS"
TLS=(--port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass 's3cret pass')
dovecot_seed "${M[@]:0:3}"
imap_cmd addflag INBOX 3 '\Deleted'
rawlog_clear
out=$(drv "${TLS[@]}" open move Old 1,2)
like "$out" "move ok" "move without MOVE and UIDPLUS"
in=$(rawlog_in)
is "$(grep -c 'EXPUNGE' <<<"$in")" 0 "no EXPUNGE at all (it would take other clients' \\Deleted mail)"
is "$(imap_cmd flags INBOX | sed 's/ *\\Recent//' | tr '\n' ' ')" '1:\Deleted 2:\Deleted 3:\Deleted ' \
	"the moved originals are left flagged \\Deleted, the other message untouched"
is "$(imap_cmd count Old)" 2 "Old holds copies of the 2"

# --- wrong password, self-signed certificate ------------------------------------
dovecot_stop
dovecot_start "$T/dc2" --ssl "$C/self.pem" "$C/self.key" --user reports --pass 's3cret pass'
ok $? "dovecot restarted with a self-signed certificate"
out=$(drv --port "$DOVECOT_TLS_PORT" --user reports --pass 's3cret pass' open)
like "$out" "error rc=5: imap account 'test': certificate for 127.0.0.1 is not trusted (self-signed / unknown issuer): set ca_file to the server's CA, or fix the server's certificate" \
	"a self-signed certificate is refused without ca_file"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass 's3cret pass' open)
like "$out" "is not trusted (not issued by a CA in ca_file $C/ca.pem)" "and with a ca_file that did not issue it"
out=$(drv --port "$DOVECOT_PORT" --tls starttls --user reports --pass 's3cret pass' open)
like "$out" "certificate for 127.0.0.1 is not trusted" "STARTTLS verifies too"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/self.pem" --user reports --pass 's3cret pass' open)
like "$out" "open uidvalidity=" "ca_file holding the self-signed certificate trusts it"
out=$(drv --port "$DOVECOT_TLS_PORT" --no-verify --user reports --pass 's3cret pass' open)
like "$out" "open uidvalidity=" "verify: false skips the check"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/missing.pem" --user reports --pass 's3cret pass' open)
like "$out" "error rc=5: imap account 'test': ca_file $C/missing.pem cannot be used" "an unreadable ca_file is a configuration error"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/self.pem" --user reports --pass 'wrong secret' open)
like "$out" "error rc=5: imap account 'test': login failed for user 'reports': Authentication failed; check the password / app password" \
	"a wrong password is a configuration error with the server's text"
printf '%s\n' "$out" | cat - "$T/drv.err" | grep -q 'wrong secret'
is $? 1 "the password appears in no output"

# --- wrong host name, failing XOAUTH2 ----------------------------------------------
dovecot_stop
dovecot_start "$T/dc3" --ssl "$C/wrong.pem" "$C/wrong.key" --user reports --pass 's3cret pass' \
	--oauth2 "$DOVECOT_INTROSPECT_URL"
ok $? "dovecot restarted with a certificate for another name"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass 's3cret pass' open)
like "$out" "error rc=5: imap account 'test': certificate does not match the host name 127.0.0.1 (it is for: wrong.example.invalid)" \
	"a certificate for another host name is refused, naming the names it has"
XO=(--port "$DOVECOT_TLS_PORT" --no-verify --user reports --xoauth2)
out=$(DW_TEST_TOKENS=stale,bad-token drv "${XO[@]}" open)
like "$out" "error rc=5: imap account 'test': XOAUTH2 login failed for user 'reports'" "XOAUTH2 refused twice is a configuration error"
is "$(grep -c '^token' <<<"$out")" 2 "after exactly one refresh"

# --- expired certificate -------------------------------------------------------------
dovecot_stop
dovecot_start "$T/dc4" --ssl "$C/expired.pem" "$C/expired.key"
ok $? "dovecot restarted with an expired certificate"
out=$(drv --port "$DOVECOT_TLS_PORT" --ca "$C/ca.pem" --user reports --pass x open)
like "$out" "error rc=5: imap account 'test': certificate for 127.0.0.1 has expired" "an expired certificate is refused"
dovecot_stop

done_testing
