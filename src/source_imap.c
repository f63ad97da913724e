/*
 * source_imap.c - the IMAP implementation of the source interface
 * (dw/source.h), on libetpan's low-level mailimap API.
 *
 * What it does: connect (implicit TLS, STARTTLS or plain), verify the
 * server's certificate itself, log in (LOGIN or XOAUTH2), SELECT the
 * account's folder, fetch new messages in few round trips, move handled
 * messages to other folders, and wait for new mail with IDLE.
 *
 * Why the certificate check lives here: Debian's libetpan is built against
 * GnuTLS and that path never verifies the peer (SPEC-NOTES 0.3, 5.5), so
 * after the handshake and before any credential is sent we take the chain
 * the server presented and verify it with GnuTLS against the system trust
 * store or the account's ca_file, including the host name.
 *
 * Round trips: fetch() lists "UID FETCH after+1:* (UID RFC822.SIZE
 * INTERNALDATE)" once and keeps that list for the following calls (UIDs do
 * not change within a session), then asks for the bodies of a whole batch
 * with one "UID FETCH set (UID BODY.PEEK[])". move() is one UID MOVE (or
 * COPY + STORE + UID EXPUNGE). Nothing is ever done one message at a time.
 *
 * Secrets: no libetpan logger is installed (it would see passwords and
 * tokens as DATA_SENT_PRIVATE), and no message built here contains a
 * password or token. Text quoted from the server is cleaned of control
 * characters and shortened.
 *
 * What it does not do: parse or judge messages, or decide what to fetch
 * next (the agent passes the last UID it has fully handled).
 */
#include "dw/oauth2.h"
#include "dw/source.h"
#include "dw/util.h"

#include <libetpan/mailimap.h>
#include <libetpan/mailstream.h>
#include <libetpan/mailstream_ssl.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest piece of server text quoted in a message. */
#define SERVER_TEXT_MAX 200
/* Certificates of a presented chain that we look at. */
#define CHAIN_MAX 16
/* Intervals in one UID set: keeps a command line far below the 8 KiB that
 * RFC 7162 asks servers to accept at least (Dovecot takes 64 KiB). */
#define SET_RANGES_MAX 400
/* Messages whose bodies are asked for in one command. */
#define BATCH_MSGS_MAX 1000

/* What start_wait left running. */
enum wait_state {
	WAIT_NONE = 0,
	WAIT_IDLE,    /* IDLE sent; end_wait sends DONE */
	WAIT_PENDING, /* new mail already known: no IDLE, the pipe is readable */
};

/* One listed message. */
struct entry {
	uint32_t uid;
	uint32_t size;
	int64_t date;
};

struct imap {
	mailimap *imap;          /* NULL when not connected */
	char *host;              /* owned copy (libetpan and GnuTLS want char *) */
	struct dw_oauth2 *oauth; /* created on first XOAUTH2 login */
	int has_move, has_uidplus, has_idle;
	char delim;              /* the server's hierarchy delimiter, 0 if unknown */
	char folder_buf[512];    /* the configured folder in the server's spelling */
	uint32_t uidvalidity;
	/* The last listing: every message with uid > list_after at that time,
	 * ascending. Valid for fetch(after) when after >= list_after. */
	struct entry *list;
	size_t nlist, list_cap;
	uint32_t list_after;
	int listed;
	/* Folders known to exist (move targets). */
	char **folders;
	size_t nfolders;
	/* Waiting. */
	enum wait_state wait;
	int pipe_fd[2];          /* self-pipe, -1 until first needed */
	uint32_t exists_before;
};

/* --- small helpers ------------------------------------------------------ */

static struct imap *
priv(struct dw_source *s)
{
	return s->priv;
}

static const char *
acct_name(const struct dw_source *s)
{
	return s->acct->name != NULL ? s->acct->name : "?";
}

static const char *
folder_name(const struct dw_source *s)
{
	return s->acct->folder != NULL ? s->acct->folder : "INBOX";
}

/*
 * Folder names in the configuration use '/' as the hierarchy separator
 * (Gmail's, and the common one). A server with another delimiter (Dovecot's
 * Maildir++ default is '.') gets the name with '/' replaced by its own.
 */
static const char *
server_folder(const struct imap *p, const char *folder, char *buf, size_t buflen)
{
	if (p->delim == 0 || p->delim == '/' || strchr(folder, '/') == NULL)
		return folder;
	snprintf(buf, buflen, "%s", folder);
	for (char *c = buf; *c; c++)
		if (*c == '/')
			*c = p->delim;
	return buf;
}

/* Learn the hierarchy delimiter with LIST "" "" (RFC 3501 6.3.8). */
static void
learn_delimiter(struct imap *p)
{
	clist *result = NULL;
	p->delim = 0;
	if (mailimap_list(p->imap, "", "", &result) != MAILIMAP_NO_ERROR)
		return;
	if (result != NULL && clist_begin(result) != NULL) {
		struct mailimap_mailbox_list *mb = clist_content(clist_begin(result));
		if (mb != NULL)
			p->delim = mb->mb_delimiter;
	}
	if (result != NULL)
		mailimap_list_result_free(result);
}

/* The server's text for the last command, cleaned for a one-line message. */
static const char *
server_text(mailimap *imap, char *buf, size_t buflen)
{
	const char *t = imap != NULL ? imap->imap_response : NULL;
	size_t i, n = 0;

	if (t == NULL || *t == '\0')
		t = "(no text from the server)";
	for (i = 0; t[i] != '\0' && n + 1 < buflen && n < SERVER_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)t[i];
		buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	/* "Authentication failed." reads badly before "; check ...". */
	while (t[i] == '\0' && n > 0 && (buf[n - 1] == '.' || buf[n - 1] == ' '))
		n--;
	if (t[i] != '\0' && n + 4 < buflen) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static void
list_reset(struct imap *p)
{
	p->nlist = 0;
	p->listed = 0;
	p->list_after = 0;
}

/* Drop the connection without talking to the server (it is dead or in an
 * unknown state). The source can be opened again. */
static void
drop(struct imap *p)
{
	size_t i;

	if (p->imap != NULL) {
		mailimap_free(p->imap);
		p->imap = NULL;
	}
	p->has_move = p->has_uidplus = p->has_idle = 0;
	p->uidvalidity = 0;
	p->wait = WAIT_NONE;
	list_reset(p);
	for (i = 0; i < p->nfolders; i++)
		free(p->folders[i]);
	p->nfolders = 0;
	if (p->pipe_fd[0] >= 0) {
		char b[16];
		while (read(p->pipe_fd[0], b, sizeof b) > 0)
			;
	}
}

/*
 * Turn a failed libetpan call into our error. A broken stream or an
 * unparsable answer leaves the session unusable: drop it, so the caller
 * can open again. Other failures are the server's NO/BAD, quoted.
 */
static int
fail(struct dw_source *s, int r, const char *what, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	char text[SERVER_TEXT_MAX + 8];

	switch (r) {
	case MAILIMAP_ERROR_STREAM:
		drop(p);
		return dw_err(err, errlen, DW_E_SOURCE,
		              "imap account '%s': connection lost while %s: the server closed the "
		              "connection or did not answer in time",
		              acct_name(s), what);
	case MAILIMAP_ERROR_PARSE:
		drop(p);
		return dw_err(err, errlen, DW_E_SOURCE,
		              "imap account '%s': unreadable server response while %s; disconnected",
		              acct_name(s), what);
	case MAILIMAP_ERROR_MEMORY:
		drop(p);
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory while %s",
		              acct_name(s), what);
	default:
		return dw_err(err, errlen, DW_E_SOURCE, "imap account '%s': %s: %s", acct_name(s), what,
		              server_text(p->imap, text, sizeof text));
	}
}

static int
not_connected(struct dw_source *s, const char *what, char *err, size_t errlen)
{
	return dw_err(err, errlen, DW_E_SOURCE, "imap account '%s': %s: not connected", acct_name(s),
	              what);
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* INTERNALDATE to seconds UTC; -1 when absent or nonsensical. libetpan
 * keeps the zone as the signed HHMM number it was written as (+0200 is
 * 200). */
static int64_t
date_epoch(const struct mailimap_date_time *dt)
{
	int z, zabs;

	if (dt == NULL || dt->dt_year < 1970 || dt->dt_year > 9999 || dt->dt_month < 1 ||
	    dt->dt_month > 12 || dt->dt_day < 1 || dt->dt_day > 31 || dt->dt_hour < 0 ||
	    dt->dt_hour > 23 || dt->dt_min < 0 || dt->dt_min > 59 || dt->dt_sec < 0 || dt->dt_sec > 60)
		return -1;
	z = dt->dt_zone;
	zabs = z < 0 ? -z : z;
	if (zabs > 2400 || zabs % 100 > 59)
		return -1;
	return days_from_civil(dt->dt_year, dt->dt_month, dt->dt_day) * 86400 + dt->dt_hour * 3600 +
	       dt->dt_min * 60 + dt->dt_sec - (z < 0 ? -1 : 1) * ((zabs / 100) * 3600 + (zabs % 100) * 60);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int
cmp_entry(const void *a, const void *b)
{
	return cmp_u32(&((const struct entry *)a)->uid, &((const struct entry *)b)->uid);
}

/* "5:7,9" for messages, from sorted uids (for error messages; shortened). */
static void
uids_text(const uint32_t *u, size_t n, char *buf, size_t buflen)
{
	size_t i = 0, len = 0;

	buf[0] = '\0';
	while (i < n && len + 32 < buflen) {
		size_t j = i;
		while (j + 1 < n && u[j + 1] == u[j] + 1)
			j++;
		len += (size_t)snprintf(buf + len, buflen - len, "%s%lu", i ? "," : "",
		                        (unsigned long)u[i]);
		if (j > i)
			len += (size_t)snprintf(buf + len, buflen - len, ":%lu", (unsigned long)u[j]);
		i = j + 1;
	}
	if (i < n)
		snprintf(buf + len, buflen - len, ",...");
}

/* --- certificate verification ------------------------------------------- */

static int
is_ip_literal(const char *host)
{
	unsigned char a[16];
	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* libetpan's TLS setup hook: send SNI (never for an address, RFC 6066). */
static void
tls_setup(struct mailstream_ssl_context *ctx, void *data)
{
	struct imap *p = data;
	if (!is_ip_literal(p->host))
		mailstream_ssl_set_server_name(ctx, p->host);
}

/* The names a certificate is valid for, "a, b, 127.0.0.1", into buf. */
static void
cert_names(gnutls_x509_crt_t crt, char *buf, size_t buflen)
{
	size_t len = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < 32 && len + 8 < buflen; i++) {
		unsigned char name[256];
		size_t size = sizeof name - 1;
		char ip[64];
		const char *show = NULL;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);

		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			name[size] = '\0';
			show = (const char *)name;
		} else if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16)) {
			if (inet_ntop(size == 4 ? AF_INET : AF_INET6, name, ip, sizeof ip) != NULL)
				show = ip;
		}
		if (show != NULL)
			len += (size_t)snprintf(buf + len, buflen - len, "%s%s", len ? ", " : "", show);
	}
	if (len == 0) {
		/* No usable subjectAltName: show the common name instead. */
		char cn[256];
		size_t size = sizeof cn;
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &size) == 0)
			snprintf(buf, buflen, "%s", cn);
	}
	if (len >= buflen - 8)
		snprintf(buf + buflen - 5, 5, "...");
}

static void
fmt_time(time_t t, char *buf, size_t buflen)
{
	struct tm tm;
	if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, buflen, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, buflen, "(unknown date)");
}

/*
 * Verify the chain the server presented and that it is for acct->host.
 * DW_E_CONFIG with a message saying what is wrong and what to do.
 */
static int
verify_peer(struct dw_source *s, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	const struct dw_account_cfg *a = s->acct;
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t crts[CHAIN_MAX];
	unsigned ncrt = 0, i, status = 0;
	carray *chain;
	int rc = DW_OK, r;
	gnutls_typed_vdata_st vdata[2];

	chain = mailstream_get_certificate_chain(p->imap->imap_stream);
	if (chain == NULL || carray_count(chain) == 0) {
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "imap account '%s': the server %s presented no certificate; cannot verify it",
		            acct_name(s), a->host);
		goto out;
	}
	if (gnutls_x509_trust_list_init(&tl, 0) < 0) {
		tl = NULL;
		rc = dw_err(err, errlen, DW_E_SYS, "imap account '%s': cannot set up certificate checks",
		            acct_name(s));
		goto out;
	}
	if (a->ca_file != NULL) {
		r = gnutls_x509_trust_list_add_trust_file(tl, a->ca_file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
		if (r <= 0) {
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': ca_file %s cannot be used (%s): it must be a readable "
			            "PEM file with the CA certificate(s) of the server",
			            acct_name(s), a->ca_file,
			            r < 0 ? gnutls_strerror(r) : "no certificate found in it");
			goto out;
		}
	} else {
		r = gnutls_x509_trust_list_add_system_trust(tl, 0, 0);
		if (r <= 0) {
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': no system trust store to verify %s's certificate "
			            "(install ca-certificates) or set ca_file",
			            acct_name(s), a->host);
			goto out;
		}
	}
	for (i = 0; i < carray_count(chain) && ncrt < CHAIN_MAX; i++) {
		MMAPString *der = carray_get(chain, i);
		gnutls_datum_t d;

		if (gnutls_x509_crt_init(&crts[ncrt]) < 0) {
			rc = dw_err(err, errlen, DW_E_SYS, "imap account '%s': cannot set up certificate checks",
			            acct_name(s));
			goto out;
		}
		d.data = (unsigned char *)der->str;
		d.size = (unsigned)der->len;
		if (gnutls_x509_crt_import(crts[ncrt], &d, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crt_deinit(crts[ncrt]);
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': the server %s sent an unreadable certificate (number %u "
			            "of its chain)",
			            acct_name(s), a->host, i + 1);
			goto out;
		}
		ncrt++;
	}
	vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
	vdata[0].data = (unsigned char *)p->host;
	vdata[0].size = 0;
	vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
	vdata[1].data = (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_SERVER;
	vdata[1].size = 0;
	r = gnutls_x509_trust_list_verify_crt2(tl, crts, ncrt, vdata, 2, 0, &status, NULL);
	if (r < 0) {
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "imap account '%s': cannot verify the certificate of %s: %s", acct_name(s),
		            a->host, gnutls_strerror(r));
		goto out;
	}
	if (status != 0) {
		char when[64], names[512];

		if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA)) {
			if (a->ca_file != NULL)
				rc = dw_err(err, errlen, DW_E_CONFIG,
				            "imap account '%s': certificate for %s is not trusted (not issued by a CA "
				            "in ca_file %s): set ca_file to the server's CA, or fix the server's "
				            "certificate",
				            acct_name(s), a->host, a->ca_file);
			else
				rc = dw_err(err, errlen, DW_E_CONFIG,
				            "imap account '%s': certificate for %s is not trusted (self-signed / "
				            "unknown issuer): set ca_file to the server's CA, or fix the server's "
				            "certificate",
				            acct_name(s), a->host);
		} else if (status & GNUTLS_CERT_EXPIRED) {
			fmt_time(gnutls_x509_crt_get_expiration_time(crts[0]), when, sizeof when);
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': certificate for %s has expired (valid until %s): the "
			            "server's certificate must be renewed",
			            acct_name(s), a->host, when);
		} else if (status & GNUTLS_CERT_NOT_ACTIVATED) {
			fmt_time(gnutls_x509_crt_get_activation_time(crts[0]), when, sizeof when);
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': certificate for %s is not valid yet (from %s): check "
			            "this machine's clock",
			            acct_name(s), a->host, when);
		} else if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
			cert_names(crts[0], names, sizeof names);
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': certificate does not match the host name %s (it is for: "
			            "%s): set host to a name the certificate has, or fix the server's certificate",
			            acct_name(s), a->host, *names ? names : "no names");
		} else {
			gnutls_datum_t out = {NULL, 0};
			if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0)
				out.data = NULL;
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': certificate for %s was refused: %s", acct_name(s),
			            a->host, out.data != NULL ? (const char *)out.data : "verification failed");
			gnutls_free(out.data);
		}
	}
out:
	for (i = 0; i < ncrt; i++)
		gnutls_x509_crt_deinit(crts[i]);
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	if (chain != NULL)
		mailstream_certificate_chain_free(chain);
	return rc;
}

/* --- open ------------------------------------------------------------------ */

/*
 * End of stream in the middle of a response. libetpan 1.9.4's response
 * parser loops forever when the server vanishes in the middle of a literal
 * (a FETCH body): the low-level read returns 0 at end of stream, and the
 * literal reader asks again and again, at 100 % CPU. A thin wrapper around
 * the connection's low-level stream turns "0 bytes at end of stream" into
 * an error, which the parser reports as MAILIMAP_ERROR_STREAM; everything
 * else is passed through to the real stream (socket or TLS).
 */
static ssize_t
eof_read(mailstream_low *low, void *buf, size_t count)
{
	ssize_t n = mailstream_low_read(low->data, buf, count);
	return (n == 0 && count > 0) ? -1 : n;
}

static ssize_t
eof_write(mailstream_low *low, const void *buf, size_t count)
{
	return mailstream_low_write(low->data, buf, count);
}

static int
eof_close(mailstream_low *low)
{
	return mailstream_low_close(low->data);
}

static int
eof_get_fd(mailstream_low *low)
{
	return mailstream_low_get_fd(low->data);
}

static void
eof_free(mailstream_low *low)
{
	mailstream_low_free(low->data);
	free(low);
}

static void
eof_cancel(mailstream_low *low)
{
	mailstream_low_cancel(low->data);
}

static struct mailstream_cancel *
eof_get_cancel(mailstream_low *low)
{
	return mailstream_low_get_cancel(low->data);
}

static carray *
eof_get_certificate_chain(mailstream_low *low)
{
	return mailstream_low_get_certificate_chain(low->data);
}

static int
eof_setup_idle(mailstream_low *low)
{
	return mailstream_low_setup_idle(low->data);
}

static int
eof_unsetup_idle(mailstream_low *low)
{
	return mailstream_low_unsetup_idle(low->data);
}

static int
eof_interrupt_idle(mailstream_low *low)
{
	return mailstream_low_interrupt_idle(low->data);
}

static mailstream_low_driver eof_driver = {
    .mailstream_read = eof_read,
    .mailstream_write = eof_write,
    .mailstream_close = eof_close,
    .mailstream_get_fd = eof_get_fd,
    .mailstream_free = eof_free,
    .mailstream_cancel = eof_cancel,
    .mailstream_get_cancel = eof_get_cancel,
    .mailstream_get_certificate_chain = eof_get_certificate_chain,
    .mailstream_setup_idle = eof_setup_idle,
    .mailstream_unsetup_idle = eof_unsetup_idle,
    .mailstream_interrupt_idle = eof_interrupt_idle,
};

static void
guard_eof(struct imap *p)
{
	if (p->imap == NULL || p->imap->imap_stream == NULL)
		return;
	mailstream_low *inner = mailstream_get_low(p->imap->imap_stream);
	if (inner == NULL || inner->driver == &eof_driver)
		return;
	mailstream_low *outer = mailstream_low_new(inner, &eof_driver);
	if (outer == NULL)
		return; /* keep the unguarded stream rather than fail */
	/* The wrapper carries the inner stream's settings. */
	outer->timeout = inner->timeout;
	outer->privacy = inner->privacy;
	mailstream_set_low(p->imap->imap_stream, outer);
}

static int
connect_server(struct dw_source *s, int *preauth, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	const struct dw_account_cfg *a = s->acct;
	uint16_t port = (uint16_t)a->port;
	char text[SERVER_TEXT_MAX + 8];
	int r;

	if (port == 0)
		port = a->tls == DW_TLS_IMPLICIT ? 993 : 143;
	p->imap = mailimap_new(0, NULL);
	if (p->imap == NULL)
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory", acct_name(s));
	mailimap_set_timeout(p->imap, a->timeout > 0 ? a->timeout : 60);

	if (a->tls == DW_TLS_IMPLICIT)
		r = mailimap_ssl_connect_with_callback(p->imap, a->host, port, tls_setup, p);
	else
		r = mailimap_socket_connect(p->imap, a->host, port);
	if (r != MAILIMAP_NO_ERROR_AUTHENTICATED && r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		drop(p);
		if (r == MAILIMAP_ERROR_SSL || (a->tls == DW_TLS_IMPLICIT && r == MAILIMAP_ERROR_STREAM))
			return dw_err(err, errlen, DW_E_SOURCE,
			              "imap account '%s': TLS handshake with %s:%u failed (is it an implicit "
			              "TLS port? for port 143 use tls: starttls)",
			              acct_name(s), a->host, (unsigned)port);
		if (r == MAILIMAP_ERROR_CONNECTION_REFUSED)
			return dw_err(err, errlen, DW_E_SOURCE,
			              "imap account '%s': cannot connect to %s:%u (refused, unknown host, "
			              "unreachable or timed out)",
			              acct_name(s), a->host, (unsigned)port);
		return dw_err(err, errlen, DW_E_SOURCE,
		              "imap account '%s': connecting to %s:%u failed (no usable IMAP greeting, "
		              "libetpan error %d)",
		              acct_name(s), a->host, (unsigned)port, r);
	}
	*preauth = r == MAILIMAP_NO_ERROR_AUTHENTICATED;

	if (a->tls == DW_TLS_STARTTLS) {
		r = mailimap_socket_starttls_with_callback(p->imap, tls_setup, p);
		if (r != MAILIMAP_NO_ERROR) {
			int rc;
			if (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_SSL || r == MAILIMAP_ERROR_PARSE)
				rc = dw_err(err, errlen, DW_E_SOURCE,
				            "imap account '%s': STARTTLS with %s:%u failed during the TLS handshake",
				            acct_name(s), a->host, (unsigned)port);
			else
				rc = dw_err(err, errlen, DW_E_CONFIG,
				            "imap account '%s': %s:%u refused STARTTLS: %s (use tls: implicit on "
				            "port 993 if the server offers it)",
				            acct_name(s), a->host, (unsigned)port,
				            server_text(p->imap, text, sizeof text));
			drop(p);
			return rc;
		}
	}
	if (a->tls != DW_TLS_NONE && a->verify) {
		int rc = verify_peer(s, err, errlen);
		if (rc != DW_OK) {
			/* Nothing was sent on this connection yet: just close it. */
			drop(p);
			return rc;
		}
	}
	guard_eof(p);
	return DW_OK;
}

static int
login(struct dw_source *s, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	const struct dw_account_cfg *a = s->acct;
	char text[SERVER_TEXT_MAX + 8];
	const char *user = a->username != NULL ? a->username : "";
	int r, rc;

	if (a->auth == DW_AUTH_XOAUTH2) {
		const char *token = NULL;
		int attempt;

		if (p->oauth == NULL)
			p->oauth = dw_oauth2_new(&a->oauth2, acct_name(s), a->timeout);
		for (attempt = 0; attempt < 2; attempt++) {
			rc = dw_oauth2_token(p->oauth, attempt, &token, err, errlen);
			if (rc != DW_OK) {
				drop(p);
				return rc;
			}
			r = mailimap_oauth2_authenticate(p->imap, user, token);
			if (r == MAILIMAP_NO_ERROR)
				return DW_OK;
			if (r == MAILIMAP_ERROR_EXTENSION) {
				drop(p);
				return dw_err(err, errlen, DW_E_CONFIG,
				              "imap account '%s': the server %s does not offer AUTH=XOAUTH2; use "
				              "auth: password",
				              acct_name(s), a->host);
			}
			if (r != MAILIMAP_ERROR_LOGIN)
				return fail(s, r, "authenticating with XOAUTH2", err, errlen);
			/* Refused: the cached token may have been revoked or expired
			 * early; try once more with a fresh one. */
		}
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "imap account '%s': XOAUTH2 login failed for user '%s': %s; check the OAuth2 "
		            "client, the refresh token and that it has the scope https://mail.google.com/",
		            acct_name(s), user, server_text(p->imap, text, sizeof text));
		drop(p);
		return rc;
	}

	if (a->password == NULL) {
		drop(p);
		return dw_err(err, errlen, DW_E_CONFIG, "imap account '%s': no password configured",
		              acct_name(s));
	}
	r = mailimap_login(p->imap, user, a->password);
	if (r == MAILIMAP_NO_ERROR)
		return DW_OK;
	if (r != MAILIMAP_ERROR_LOGIN)
		return fail(s, r, "logging in", err, errlen);
	rc = dw_err(err, errlen, DW_E_CONFIG,
	            "imap account '%s': login failed for user '%s': %s; check the password / app "
	            "password",
	            acct_name(s), user, server_text(p->imap, text, sizeof text));
	drop(p);
	return rc;
}

static void imap_close(struct dw_source *s);

static int
open_session(struct dw_source *s, uint32_t *uidvalidity, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	const struct dw_account_cfg *a = s->acct;
	struct mailimap_capability_data *cap = NULL;
	char text[SERVER_TEXT_MAX + 8];
	int preauth = 0, r, rc;

	if (p->imap != NULL)
		imap_close(s);
	if (a->host == NULL || *a->host == '\0')
		return dw_err(err, errlen, DW_E_CONFIG, "imap account '%s': no host configured",
		              acct_name(s));
	if (a->tls == DW_TLS_NONE && !a->allow_plaintext)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "imap account '%s': tls: none would send the credentials in clear text; use "
		              "tls: implicit or starttls, or set allow_plaintext: true",
		              acct_name(s));
	free(p->host);
	p->host = xstrdup(a->host);

	rc = connect_server(s, &preauth, err, errlen);
	if (rc != DW_OK)
		return rc;
	if (!preauth) {
		rc = login(s, err, errlen);
		if (rc != DW_OK)
			return rc;
	}
	/* Capabilities may change with authentication (RFC 3501 6.2.3):
	 * ask again rather than trust what the greeting said. */
	r = mailimap_capability(p->imap, &cap);
	if (r != MAILIMAP_NO_ERROR)
		return fail(s, r, "asking for CAPABILITY", err, errlen);
	mailimap_capability_data_free(cap);
	p->has_move = mailimap_has_extension(p->imap, "MOVE");
	p->has_uidplus = mailimap_has_extension(p->imap, "UIDPLUS");
	p->has_idle = mailimap_has_extension(p->imap, "IDLE");

	learn_delimiter(p);
	r = mailimap_select(p->imap, server_folder(p, folder_name(s), p->folder_buf, sizeof p->folder_buf));
	if (r != MAILIMAP_NO_ERROR) {
		if (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_PARSE || r == MAILIMAP_ERROR_MEMORY) {
			char what[300];
			snprintf(what, sizeof what, "selecting folder '%s'", folder_name(s));
			return fail(s, r, what, err, errlen);
		}
		server_text(p->imap, text, sizeof text);
		rc = dw_err(err, errlen, DW_E_SOURCE, "imap account '%s': cannot select folder '%s': %s",
		            acct_name(s), folder_name(s), text);
		/* A folder that does not exist is something the user must fix. */
		if (strstr(text, "exist") != NULL || strstr(text, "NONEXISTENT") != NULL)
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "imap account '%s': cannot select folder '%s': %s; check the folder name",
			            acct_name(s), folder_name(s), text);
		imap_close(s);
		return rc;
	}
	p->uidvalidity = p->imap->imap_selection_info->sel_uidvalidity;
	if (p->uidvalidity == 0) {
		imap_close(s);
		return dw_err(err, errlen, DW_E_SOURCE,
		              "imap account '%s': the server sent no UIDVALIDITY for folder '%s'",
		              acct_name(s), folder_name(s));
	}
	*uidvalidity = p->uidvalidity;
	return DW_OK;
}

static int
imap_open(struct dw_source *s, uint32_t *uidvalidity, char *err, size_t errlen)
{
	int rc = open_session(s, uidvalidity, err, errlen);

	/* Whatever failed after the connection was made, do not keep a half
	 * set up session around. */
	if (rc != DW_OK && priv(s)->imap != NULL)
		imap_close(s);
	return rc;
}

/* --- fetch ----------------------------------------------------------------- */

/* UID FETCH after+1:* (UID RFC822.SIZE INTERNALDATE) into p->list. */
static int
list_new(struct dw_source *s, uint32_t after, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	struct mailimap_fetch_type *ft;
	struct mailimap_set *set;
	clist *result = NULL;
	clistiter *it;
	char what[300];
	int r;

	list_reset(p);
	if (after == UINT32_MAX) {
		p->listed = 1;
		p->list_after = after;
		return DW_OK;
	}
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	set = mailimap_set_new_interval(after + 1, 0);
	if (ft == NULL || set == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid()) !=
	        MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size()) !=
	        MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_internaldate()) !=
	        MAILIMAP_NO_ERROR) {
		if (ft != NULL)
			mailimap_fetch_type_free(ft);
		if (set != NULL)
			mailimap_set_free(set);
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory", acct_name(s));
	}
	/* New messages from here on show up as EXISTS; remember whether any
	 * arrive after this listing (see fetch's *more and start_wait). */
	p->imap->imap_selection_info->sel_has_exists = 0;
	r = mailimap_uid_fetch(p->imap, set, ft, &result);
	mailimap_set_free(set);
	mailimap_fetch_type_free(ft);
	if (r != MAILIMAP_NO_ERROR) {
		/* Some servers answer NO/BAD to "n:*" on an empty folder. */
		if (r == MAILIMAP_ERROR_UID_FETCH && p->imap->imap_selection_info->sel_exists == 0) {
			p->listed = 1;
			p->list_after = after;
			return DW_OK;
		}
		snprintf(what, sizeof what, "listing new messages (UID %lu:*) in folder '%s'",
		         (unsigned long)after + 1, folder_name(s));
		return fail(s, r, what, err, errlen);
	}
	for (it = clist_begin(result); it != NULL; it = clist_next(it)) {
		struct mailimap_msg_att *ma = clist_content(it);
		struct entry e = {0, 0, -1};
		clistiter *ai;

		for (ai = clist_begin(ma->att_list); ai != NULL; ai = clist_next(ai)) {
			struct mailimap_msg_att_item *item = clist_content(ai);
			struct mailimap_msg_att_static *st;

			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			st = item->att_data.att_static;
			if (st->att_type == MAILIMAP_MSG_ATT_UID)
				e.uid = st->att_data.att_uid;
			else if (st->att_type == MAILIMAP_MSG_ATT_RFC822_SIZE)
				e.size = st->att_data.att_rfc822_size;
			else if (st->att_type == MAILIMAP_MSG_ATT_INTERNALDATE)
				e.date = date_epoch(st->att_data.att_internal_date);
		}
		/* "n:*" always includes the highest UID, even when it is <= after. */
		if (e.uid <= after)
			continue;
		if (p->nlist == p->list_cap) {
			p->list_cap = p->list_cap ? p->list_cap * 2 : 256;
			p->list = xreallocarray(p->list, p->list_cap, sizeof *p->list);
		}
		p->list[p->nlist++] = e;
	}
	mailimap_fetch_list_free(result);
	if (p->nlist > 1)
		qsort(p->list, p->nlist, sizeof *p->list, cmp_entry);
	p->listed = 1;
	p->list_after = after;
	return DW_OK;
}

/* The first listed entry with uid > after. */
static size_t
list_first_after(const struct imap *p, uint32_t after)
{
	size_t lo = 0, hi = p->nlist;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->list[mid].uid <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A fetched body, matched to a batch entry. */
struct body {
	const char *data;
	size_t len;
	int found;
};

static int
imap_fetch(struct dw_source *s, uint32_t after, uint64_t max_bytes, uint64_t max_msg, dw_msg_fn *fn,
           void *ctx, int *more, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	struct mailimap_set *set = NULL;
	struct mailimap_fetch_type *ft = NULL;
	struct body *bodies = NULL;
	clist *result = NULL;
	clistiter *it;
	size_t first, end, i, nbody = 0, ranges = 0;
	uint64_t bytes = 0;
	int r, rc = DW_OK;

	*more = 0;
	if (p->imap == NULL)
		return not_connected(s, "fetching", err, errlen);
	if (p->wait != WAIT_NONE)
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': fetch called while waiting",
		              acct_name(s));

	first = p->listed && after >= p->list_after ? list_first_after(p, after) : p->nlist;
	if (!p->listed || after < p->list_after || first == p->nlist) {
		rc = list_new(s, after, err, errlen);
		if (rc != DW_OK)
			return rc;
		first = 0;
	}
	if (first == p->nlist) {
		/* Mail announced after the listing is for the next call. */
		*more = p->imap->imap_selection_info->sel_has_exists;
		return DW_OK;
	}

	/* The batch: consecutive listed messages whose sizes add up to at most
	 * max_bytes (at least one). Too-big messages are not downloaded and
	 * cost nothing. Listed neighbours are merged into one UID interval:
	 * the UIDs between them no longer exist (or never did). */
	set = mailimap_set_new_empty();
	if (set == NULL)
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory", acct_name(s));
	for (end = first; end < p->nlist; end++) {
		const struct entry *e = &p->list[end];
		int big = e->size > max_msg;

		if (!big) {
			int extend = nbody > 0 && end > first && p->list[end - 1].size <= max_msg;
			if (nbody > 0 && (bytes + e->size > max_bytes || nbody >= BATCH_MSGS_MAX))
				break;
			if (!extend && ranges >= SET_RANGES_MAX)
				break;
			if (extend) {
				struct mailimap_set_item *last = clist_content(clist_end(set->set_list));
				last->set_last = e->uid;
			} else {
				if (mailimap_set_add_interval(set, e->uid, e->uid) != MAILIMAP_NO_ERROR) {
					rc = dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory",
					            acct_name(s));
					goto out;
				}
				ranges++;
			}
			bytes += e->size;
			nbody++;
		}
	}

	bodies = xcalloc(end - first, sizeof *bodies);
	if (nbody > 0) {
		ft = mailimap_fetch_type_new_fetch_att_list_empty();
		if (ft == NULL ||
		    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid()) !=
		        MAILIMAP_NO_ERROR ||
		    mailimap_fetch_type_new_fetch_att_list_add(
		        ft, mailimap_fetch_att_new_body_peek_section(mailimap_section_new(NULL))) !=
		        MAILIMAP_NO_ERROR) {
			rc = dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory", acct_name(s));
			goto out;
		}
		r = mailimap_uid_fetch(p->imap, set, ft, &result);
		if (r != MAILIMAP_NO_ERROR) {
			char what[300];
			snprintf(what, sizeof what, "fetching %zu message(s) (UID %lu to %lu) from folder '%s'",
			         nbody, (unsigned long)p->list[first].uid, (unsigned long)p->list[end - 1].uid,
			         folder_name(s));
			result = NULL;
			rc = fail(s, r, what, err, errlen);
			goto out;
		}
		for (it = clist_begin(result); it != NULL; it = clist_next(it)) {
			struct mailimap_msg_att *ma = clist_content(it);
			uint32_t uid = 0;
			const char *data = NULL;
			size_t len = 0;
			int have_body = 0;
			clistiter *ai;

			for (ai = clist_begin(ma->att_list); ai != NULL; ai = clist_next(ai)) {
				struct mailimap_msg_att_item *item = clist_content(ai);
				struct mailimap_msg_att_static *st;

				if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
					continue;
				st = item->att_data.att_static;
				if (st->att_type == MAILIMAP_MSG_ATT_UID) {
					uid = st->att_data.att_uid;
				} else if (st->att_type == MAILIMAP_MSG_ATT_BODY_SECTION &&
				           st->att_data.att_body_section != NULL) {
					data = st->att_data.att_body_section->sec_body_part;
					len = st->att_data.att_body_section->sec_length;
					have_body = 1;
				}
			}
			if (uid > after && have_body) {
				/* Find it in the batch (binary search: the batch is sorted). */
				size_t lo = first, hi = end;
				while (lo < hi) {
					size_t mid = lo + (hi - lo) / 2;
					if (p->list[mid].uid < uid)
						lo = mid + 1;
					else
						hi = mid;
				}
				if (lo < end && p->list[lo].uid == uid) {
					bodies[lo - first].data = data != NULL ? data : "";
					bodies[lo - first].len = data != NULL ? len : 0;
					bodies[lo - first].found = 1;
				}
			}
		}
	}

	/* Deliver oldest first. A message that vanished since the listing
	 * (expunged by another client) is skipped. */
	for (i = first; i < end; i++) {
		const struct entry *e = &p->list[i];
		struct dw_msg m;

		memset(&m, 0, sizeof m);
		m.uid = e->uid;
		m.size = e->size;
		m.internaldate = e->date;
		if (e->size <= max_msg) {
			if (!bodies[i - first].found)
				continue;
			m.data = (const unsigned char *)bodies[i - first].data;
			m.len = bodies[i - first].len;
		}
		rc = fn(ctx, &m, err, errlen);
		if (rc != DW_OK)
			goto out;
	}
	*more = end < p->nlist || (p->imap != NULL && p->imap->imap_selection_info->sel_has_exists);

out:
	if (result != NULL)
		mailimap_fetch_list_free(result);
	if (ft != NULL)
		mailimap_fetch_type_free(ft);
	if (set != NULL)
		mailimap_set_free(set);
	free(bodies);
	return rc;
}

/* --- move ------------------------------------------------------------------ */

static int
folder_known(const struct imap *p, const char *folder)
{
	size_t i;
	for (i = 0; i < p->nfolders; i++)
		if (strcmp(p->folders[i], folder) == 0)
			return 1;
	return 0;
}

static void
folder_remember(struct imap *p, const char *folder)
{
	if (folder_known(p, folder))
		return;
	p->folders = xreallocarray(p->folders, p->nfolders + 1, sizeof *p->folders);
	p->folders[p->nfolders++] = xstrdup(folder);
}

static void
folder_forget(struct imap *p, const char *folder)
{
	size_t i;
	for (i = 0; i < p->nfolders; i++)
		if (strcmp(p->folders[i], folder) == 0) {
			free(p->folders[i]);
			p->folders[i] = p->folders[--p->nfolders];
			return;
		}
}

/* Does the folder exist? 1 yes, 0 no, <0 a libetpan error. */
static int
folder_exists(struct imap *p, const char *folder)
{
	clist *result = NULL;
	int r, found;

	r = mailimap_list(p->imap, "", folder, &result);
	if (r != MAILIMAP_NO_ERROR)
		return -r;
	found = result != NULL && clist_count(result) > 0;
	if (result != NULL)
		mailimap_list_result_free(result);
	return found;
}

/* Create the folder unless it exists (LIST, CREATE, LIST again on a
 * refused CREATE: another client may have created it meanwhile). */
static int
ensure_folder(struct dw_source *s, const char *folder, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	char what[300], text[SERVER_TEXT_MAX + 8];
	int r, rc;

	if (folder_known(p, folder))
		return DW_OK;
	snprintf(what, sizeof what, "looking for folder '%s'", folder);
	r = folder_exists(p, folder);
	if (r < 0)
		return fail(s, -r, what, err, errlen);
	if (r == 0) {
		r = mailimap_create(p->imap, folder);
		if (r != MAILIMAP_NO_ERROR) {
			snprintf(what, sizeof what, "creating folder '%s'", folder);
			if (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_PARSE || r == MAILIMAP_ERROR_MEMORY)
				return fail(s, r, what, err, errlen);
			server_text(p->imap, text, sizeof text);
			r = folder_exists(p, folder);
			if (r < 0)
				return fail(s, -r, what, err, errlen);
			if (r == 0) {
				rc = dw_err(err, errlen, DW_E_SOURCE, "imap account '%s': cannot create folder '%s': %s",
				            acct_name(s), folder, text);
				return rc;
			}
		}
	}
	folder_remember(p, folder);
	return DW_OK;
}

/* Build a UID set of sorted, unique uids[from..to), at most
 * SET_RANGES_MAX intervals; *next is where the following chunk starts. */
static struct mailimap_set *
uid_set(const uint32_t *u, size_t from, size_t to, size_t *next)
{
	struct mailimap_set *set = mailimap_set_new_empty();
	size_t i = from, ranges = 0;

	if (set == NULL)
		return NULL;
	while (i < to && ranges < SET_RANGES_MAX) {
		size_t j = i;
		while (j + 1 < to && u[j + 1] == u[j] + 1)
			j++;
		if (mailimap_set_add_interval(set, u[i], u[j]) != MAILIMAP_NO_ERROR) {
			mailimap_set_free(set);
			return NULL;
		}
		ranges++;
		i = j + 1;
	}
	*next = i;
	return set;
}

static int
move_chunk(struct dw_source *s, struct mailimap_set *set, const char *folder)
{
	struct imap *p = priv(s);
	struct mailimap_flag_list *fl;
	struct mailimap_store_att_flags *sf;
	int r;

	if (p->has_move)
		return mailimap_uid_move(p->imap, set, folder);
	r = mailimap_uid_copy(p->imap, set, folder);
	if (r != MAILIMAP_NO_ERROR)
		return r;
	fl = mailimap_flag_list_new_empty();
	if (fl == NULL)
		return MAILIMAP_ERROR_MEMORY;
	if (mailimap_flag_list_add(fl, mailimap_flag_new_deleted()) != MAILIMAP_NO_ERROR) {
		mailimap_flag_list_free(fl);
		return MAILIMAP_ERROR_MEMORY;
	}
	sf = mailimap_store_att_flags_new_add_flags_silent(fl);
	if (sf == NULL) {
		mailimap_flag_list_free(fl);
		return MAILIMAP_ERROR_MEMORY;
	}
	r = mailimap_uid_store(p->imap, set, sf);
	mailimap_store_att_flags_free(sf);
	if (r != MAILIMAP_NO_ERROR)
		return r;
	/* Without UIDPLUS there is no way to expunge only these messages: a
	 * plain EXPUNGE would also remove other clients' \Deleted mail. The
	 * copies are made and the originals flagged; the user's client (or
	 * the server's auto-expunge) removes them. */
	if (p->has_uidplus)
		return mailimap_uid_expunge(p->imap, set);
	return MAILIMAP_NO_ERROR;
}

static int
imap_move(struct dw_source *s, const uint32_t *uids, size_t n, const char *folder, char *err,
          size_t errlen)
{
	struct imap *p = priv(s);
	uint32_t *u;
	size_t i, k, from;
	int rc = DW_OK, retried = 0;

	if (n == 0)
		return DW_OK;
	if (p->imap == NULL)
		return not_connected(s, "moving messages", err, errlen);
	if (p->wait != WAIT_NONE)
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': move called while waiting",
		              acct_name(s));
	char fbuf[512];
	folder = server_folder(p, folder, fbuf, sizeof fbuf);
	rc = ensure_folder(s, folder, err, errlen);
	if (rc != DW_OK)
		return rc;

	u = xreallocarray(NULL, n, sizeof *u);
	memcpy(u, uids, n * sizeof *u);
	qsort(u, n, sizeof *u, cmp_u32);
	for (i = k = 0; i < n; i++)
		if (u[i] != 0 && (k == 0 || u[k - 1] != u[i]))
			u[k++] = u[i];

	from = 0;
	while (from < k) {
		size_t next = from;
		struct mailimap_set *set = uid_set(u, from, k, &next);
		int r;

		if (set == NULL) {
			rc = dw_err(err, errlen, DW_E_SYS, "imap account '%s': out of memory", acct_name(s));
			break;
		}
		r = move_chunk(s, set, folder);
		mailimap_set_free(set);
		if (r != MAILIMAP_NO_ERROR) {
			/* [TRYCREATE]: the folder was deleted behind our back. */
			if (!retried && p->imap != NULL && p->imap->imap_response_info != NULL &&
			    p->imap->imap_response_info->rsp_trycreate) {
				retried = 1;
				folder_forget(p, folder);
				rc = ensure_folder(s, folder, err, errlen);
				if (rc != DW_OK)
					break;
				continue;
			}
			char what[400], list[128];
			uids_text(u + from, next - from, list, sizeof list);
			snprintf(what, sizeof what, "moving %zu message(s) (UID %s) from '%s' to '%s'",
			         next - from, list, folder_name(s), folder);
			rc = fail(s, r, what, err, errlen);
			break;
		}
		from = next;
	}
	free(u);
	return rc;
}

/* --- waiting ----------------------------------------------------------------- */

/* Make the self-pipe readable, creating it when needed. */
static int
pipe_signal(struct imap *p)
{
	if (p->pipe_fd[0] < 0) {
		int i;
		if (pipe(p->pipe_fd) != 0) {
			p->pipe_fd[0] = p->pipe_fd[1] = -1;
			return -1;
		}
		for (i = 0; i < 2; i++) {
			fcntl(p->pipe_fd[i], F_SETFD, FD_CLOEXEC);
			fcntl(p->pipe_fd[i], F_SETFL, fcntl(p->pipe_fd[i], F_GETFL) | O_NONBLOCK);
		}
	}
	if (write(p->pipe_fd[1], "x", 1) != 1 && errno != EAGAIN)
		return -1;
	return p->pipe_fd[0];
}

static void
pipe_drain(struct imap *p)
{
	char b[16];
	if (p->pipe_fd[0] >= 0)
		while (read(p->pipe_fd[0], b, sizeof b) > 0)
			;
}

static int
imap_start_wait(struct dw_source *s, int *fd, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	char what[300];
	int r;

	*fd = -1;
	if (p->imap == NULL)
		return not_connected(s, "waiting for new mail", err, errlen);
	if (p->wait != WAIT_NONE)
		return dw_err(err, errlen, DW_E_SYS, "imap account '%s': already waiting", acct_name(s));
	if (!p->has_idle || s->acct->mode == DW_MODE_POLL)
		return DW_OK;

	/* Mail that arrived after the last listing (or, before any fetch,
	 * the folder's content at SELECT) was announced with an untagged
	 * EXISTS already; IDLE would not announce it again. Note that
	 * libetpan's mailimap_idle() drops untagged data a server sends
	 * before its "+": mail arriving in that instant is found by the
	 * agent's periodic poll. */
	if (p->imap->imap_selection_info->sel_has_exists) {
		*fd = pipe_signal(p);
		if (*fd < 0)
			return dw_err(err, errlen, DW_E_SYS, "imap account '%s': pipe: %s", acct_name(s),
			              strerror(errno));
		p->wait = WAIT_PENDING;
		return DW_OK;
	}
	p->exists_before = p->imap->imap_selection_info->sel_exists;
	r = mailimap_idle(p->imap);
	if (r != MAILIMAP_NO_ERROR) {
		snprintf(what, sizeof what, "starting IDLE on folder '%s'", folder_name(s));
		return fail(s, r, what, err, errlen);
	}
	p->wait = WAIT_IDLE;
	/* Bytes that came with the "+" continuation already sit in libetpan's
	 * buffer, where poll() on the socket cannot see them. */
	if (p->imap->imap_stream->read_buffer_len > 0) {
		*fd = pipe_signal(p);
		if (*fd >= 0)
			return DW_OK;
	}
	*fd = mailimap_idle_get_fd(p->imap);
	return DW_OK;
}

static int
imap_end_wait(struct dw_source *s, int *new_mail, char *err, size_t errlen)
{
	struct imap *p = priv(s);
	struct mailimap_selection_info *sel;
	char what[300];
	int r;

	*new_mail = 0;
	pipe_drain(p);
	if (p->imap == NULL)
		return not_connected(s, "ending the wait for new mail", err, errlen);
	switch (p->wait) {
	case WAIT_NONE:
		return DW_OK;
	case WAIT_PENDING:
		p->wait = WAIT_NONE;
		*new_mail = 1;
		return DW_OK;
	case WAIT_IDLE:
		break;
	}
	p->wait = WAIT_NONE;
	r = mailimap_idle_done(p->imap);
	if (r != MAILIMAP_NO_ERROR) {
		snprintf(what, sizeof what, "ending IDLE on folder '%s'", folder_name(s));
		return fail(s, r, what, err, errlen);
	}
	sel = p->imap->imap_selection_info;
	*new_mail = sel->sel_has_exists || sel->sel_has_recent || sel->sel_exists != p->exists_before;
	return DW_OK;
}

/* --- lifetime ------------------------------------------------------------------ */

static void
imap_close(struct dw_source *s)
{
	struct imap *p = priv(s);

	if (p->imap != NULL) {
		/* Courtesy only: a dead or slow server must not hold us up long. */
		if (p->imap->imap_stream != NULL)
		{
			mailstream_low *low = mailstream_get_low(p->imap->imap_stream);
			mailstream_low_set_timeout(low, 5);
			if (low->driver == &eof_driver) /* the guard's inner stream does the reading */
				mailstream_low_set_timeout(low->data, 5);
		}
		if (p->wait == WAIT_IDLE)
			(void)mailimap_idle_done(p->imap);
		(void)mailimap_logout(p->imap);
	}
	drop(p);
}

static void
imap_free(struct dw_source *s)
{
	struct imap *p;

	if (s == NULL)
		return;
	p = priv(s);
	imap_close(s);
	dw_oauth2_free(p->oauth);
	free(p->folders);
	free(p->list);
	free(p->host);
	if (p->pipe_fd[0] >= 0) {
		close(p->pipe_fd[0]);
		close(p->pipe_fd[1]);
	}
	free(p);
	free(s);
}

static uint64_t
imap_pending(struct dw_source *s, uint32_t after, uint32_t *last)
{
	struct imap *p = priv(s);
	if (!p->listed || after < p->list_after)
		return 0;
	size_t i = list_first_after(p, after);
	if (i < p->nlist)
		*last = p->list[p->nlist - 1].uid;
	return p->nlist - i;
}

static const struct dw_source_ops imap_ops = {
	.kind = "imap",
	.open = imap_open,
	.fetch = imap_fetch,
	.move = imap_move,
	.start_wait = imap_start_wait,
	.end_wait = imap_end_wait,
	.close = imap_close,
	.free = imap_free,
	.pending = imap_pending,
};

struct dw_source *
dw_source_imap_new(const struct dw_account_cfg *acct)
{
	struct dw_source *s = xcalloc(1, sizeof *s);
	struct imap *p = xcalloc(1, sizeof *p);

	p->pipe_fd[0] = p->pipe_fd[1] = -1;
	s->ops = &imap_ops;
	s->acct = acct;
	s->priv = p;
	return s;
}
