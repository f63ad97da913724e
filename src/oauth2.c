/*
 * oauth2.c - XOAUTH2 access tokens: refresh at the token endpoint (libcurl
 * + jansson) or run the account's token_command. See dw/oauth2.h.
 *
 * Everything here handles secrets (client secret, refresh token, access
 * token), so three rules hold throughout: no secret is ever formatted into
 * an error message (text that comes from the server or from the command is
 * dropped when it contains one), every buffer that held a secret is wiped
 * with explicit_bzero before it is freed, and libcurl's verbose mode is
 * never turned on.
 *
 * What it does not do: the SASL exchange itself (the IMAP source builds the
 * XOAUTH2 string), the initial consent flow (the user obtains the refresh
 * token once, outside the agent), or rotating refresh tokens (Google does
 * not rotate them; a rotated token in a reply is ignored).
 */
#include "dw/oauth2.h"
#include "dw/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#ifndef DW_VERSION
#define DW_VERSION "dev"
#endif

#define DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define REPLY_MAX (64 * 1024)       /* bytes of a token reply or command output */
#define STDERR_KEEP 512             /* bytes of the command's stderr kept for messages */
#define QUOTE_MAX 160               /* characters of foreign text quoted in a message */
#define EXPIRY_MARGIN 60            /* seconds: refresh this long before expiry */
#define DEFAULT_EXPIRES_IN 3600     /* seconds, when the reply does not say */
#define EXPIRES_IN_MAX (366L * 86400) /* cap on a declared lifetime */
#define COMMAND_LIFETIME (50 * 60)  /* seconds a token_command token is reused */
#define DEFAULT_TIMEOUT 60          /* seconds, when the account gives 0 */

struct dw_oauth2 {
	const struct dw_oauth2_cfg *cfg; /* borrowed */
	char *account;                   /* owned */
	unsigned timeout;                /* seconds per refresh or command run */
	char *token;                     /* owned, secret; NULL when none cached */
	size_t tokenlen;
	time_t expires;                  /* CLOCK_MONOTONIC seconds */
};

void
dw_oauth2_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Expiry is measured on the monotonic clock so that a wall-clock jump (NTP
 * at boot, a suspended laptop) neither keeps a dead token nor throws away a
 * good one. */
static time_t
mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
wipe_free(char *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

static void
drop_token(struct dw_oauth2 *o)
{
	wipe_free(o->token, o->tokenlen);
	o->token = NULL;
	o->tokenlen = 0;
	o->expires = 0;
}

/* Takes ownership of tok (len bytes plus a NUL). */
static void
set_token(struct dw_oauth2 *o, char *tok, size_t len, long lifetime)
{
	drop_token(o);
	o->token = tok;
	o->tokenlen = len;
	o->expires = mono_now() + lifetime;
}

struct dw_oauth2 *
dw_oauth2_new(const struct dw_oauth2_cfg *cfg, const char *account, unsigned timeout)
{
	struct dw_oauth2 *o = xcalloc(1, sizeof(*o));
	o->cfg = cfg;
	o->account = xstrdup(account != NULL ? account : "?");
	o->timeout = timeout != 0 ? timeout : DEFAULT_TIMEOUT;
	return o;
}

void
dw_oauth2_free(struct dw_oauth2 *o)
{
	if (o == NULL)
		return;
	drop_token(o);
	free(o->account);
	free(o);
}

/* A token goes verbatim into the SASL string and an HTTP-free IMAP line, so
 * anything but visible ASCII (spaces, control bytes, the \x01 separator)
 * would corrupt the exchange. */
static int
token_chars_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int
contains_mem(const char *hay, size_t haylen, const char *needle, size_t n)
{
	if (n == 0 || n > haylen)
		return 0;
	for (size_t i = 0; i + n <= haylen; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

static int
contains(const char *hay, size_t haylen, const char *needle)
{
	return needle != NULL && contains_mem(hay, haylen, needle, strlen(needle));
}

/* True when text (from the server or the command) carries one of our
 * secrets, in which case it must not be quoted. */
static int
has_secret(const struct dw_oauth2 *o, const char *text, size_t len)
{
	return contains(text, len, o->cfg->client_secret) || contains(text, len, o->cfg->refresh_token) ||
	       contains(text, len, o->token);
}

/*
 * Copy foreign text into out for quoting in a one-line message: the first
 * line only, visible ASCII and spaces, at most QUOTE_MAX characters. Returns
 * 0 (and an empty out) when there is nothing to quote or it holds a secret.
 */
static int
quotable(const struct dw_oauth2 *o, const char *text, size_t len, char *out, size_t outlen)
{
	size_t n = 0;
	out[0] = '\0';
	if (text == NULL || has_secret(o, text, len))
		return 0;
	while (len > 0 && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')) {
		text++;
		len--;
	}
	for (size_t i = 0; i < len && text[i] != '\n' && text[i] != '\r'; i++) {
		if (n + 4 >= outlen || n >= QUOTE_MAX) {
			memcpy(out + n, "...", 4);
			return 1;
		}
		unsigned char c = (unsigned char)text[i];
		out[n++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return n > 0;
}

/* ------------------------------------------------------------------ */
/* The token endpoint.                                                  */

struct reply {
	char *buf; /* REPLY_MAX + 1 bytes, owned */
	size_t len;
	int toobig;
};

static size_t
on_data(char *p, size_t size, size_t nmemb, void *ud)
{
	struct reply *r = ud;
	size_t n = size * nmemb; /* libcurl documents size as always 1 */
	if (n > REPLY_MAX - r->len) {
		/* Returning less than n makes libcurl stop with CURLE_WRITE_ERROR. */
		r->toobig = 1;
		return 0;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	return n;
}

static int
is_loopback(const char *host)
{
	return strcasecmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0 ||
	       strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

/*
 * Check token_url before any network access: it must parse, and be https,
 * or http to a loopback address (the tests' local endpoint). Messages name
 * the host only, because a URL may carry credentials in its userinfo.
 */
static int
check_url(const struct dw_oauth2 *o, const char *url, int *plain_http, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = DW_OK;

	if (u == NULL)
		return dw_err(err, errlen, DW_E_SYS, "account '%s': out of memory parsing token_url", o->account);
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "account '%s': token_url is not a valid absolute URL (expected https://HOST/PATH)",
		            o->account);
		goto out;
	}
	*plain_http = 0;
	if (strcasecmp(scheme, "https") == 0)
		goto out;
	if (strcasecmp(scheme, "http") == 0 && is_loopback(host)) {
		*plain_http = 1;
		goto out;
	}
	rc = dw_err(err, errlen, DW_E_CONFIG,
	            "account '%s': token_url (%s://%s/...) must use https; plain http is allowed only for "
	            "127.0.0.1, localhost and ::1",
	            o->account, scheme, host);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/* Append "&name=escaped(value)" (no '&' for the first field) to the body. */
static int
add_field(CURL *h, char **body, size_t *len, const char *name, const char *value)
{
	char *esc = curl_easy_escape(h, value, 0);
	if (esc == NULL)
		return -1;
	size_t elen = strlen(esc), nlen = strlen(name);
	size_t need = *len + (*len ? 1 : 0) + nlen + 1 + elen + 1;
	char *nb = xmalloc(need);
	size_t pos = 0;
	if (*len) {
		memcpy(nb, *body, *len);
		nb[pos = *len] = '&';
		pos++;
	}
	memcpy(nb + pos, name, nlen);
	pos += nlen;
	nb[pos++] = '=';
	memcpy(nb + pos, esc, elen);
	pos += elen;
	nb[pos] = '\0';
	/* The old body and the escaped value may hold secrets. */
	wipe_free(*body, *len);
	explicit_bzero(esc, elen);
	curl_free(esc);
	*body = nb;
	*len = pos;
	return 0;
}

/* Map an OAuth error reply (RFC 6749 section 5.2) to a code and message. */
static int
oauth_error(const struct dw_oauth2 *o, long status, const char *code, const char *desc, char *err,
            size_t errlen)
{
	char qcode[QUOTE_MAX + 4], qdesc[QUOTE_MAX + 4], detail[2 * QUOTE_MAX + 16];

	if (!quotable(o, code, strlen(code), qcode, sizeof(qcode)))
		snprintf(qcode, sizeof(qcode), "unknown error");
	if (desc != NULL && quotable(o, desc, strlen(desc), qdesc, sizeof(qdesc)))
		snprintf(detail, sizeof(detail), "%s: %s", qcode, qdesc);
	else
		snprintf(detail, sizeof(detail), "%s", qcode);

	if (strcmp(code, "invalid_grant") == 0)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "account '%s': the token endpoint refused the refresh token (%s): the refresh "
		              "token was revoked or expired (OAuth apps in 'Testing' status get 7-day refresh "
		              "tokens): create a new one",
		              o->account, detail);
	if (strcmp(code, "invalid_client") == 0 || strcmp(code, "unauthorized_client") == 0)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "account '%s': the token endpoint refused the client (%s): check client_id and "
		              "client_secret",
		              o->account, detail);
	/* A server that is overloaded may still answer in OAuth's error format;
	 * its status says whether trying again can help. */
	if (status >= 500 || status == 429 || status == 408 || strcmp(code, "temporarily_unavailable") == 0)
		return dw_err(err, errlen, DW_E_SOURCE,
		              "account '%s': the token endpoint answered HTTP %ld (%s); will retry", o->account,
		              status, detail);
	return dw_err(err, errlen, DW_E_CONFIG,
	              "account '%s': the token endpoint refused the refresh request (HTTP %ld, %s): check the "
	              "account's oauth2 settings",
	              o->account, status, detail);
}

/* Read "expires_in": a number, or a numeric string as some servers send. */
static long
expires_in(json_t *v)
{
	long n = DEFAULT_EXPIRES_IN;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		n = i < 0 ? 0 : i > EXPIRES_IN_MAX ? EXPIRES_IN_MAX : (long)i;
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		n = !(d >= 0) ? 0 : d > (double)EXPIRES_IN_MAX ? EXPIRES_IN_MAX : (long)d;
	} else if (json_is_string(v)) {
		char *end;
		errno = 0;
		long s = strtol(json_string_value(v), &end, 10);
		if (end != json_string_value(v) && *end == '\0' && errno == 0)
			n = s < 0 ? 0 : s > EXPIRES_IN_MAX ? EXPIRES_IN_MAX : s;
	}
	return n;
}

/* jansson keeps its own copy of every string and frees it without wiping;
 * overwrite the access token's copy before the document is released. The
 * buffer is jansson's heap memory, which is writable, so casting the const
 * away is safe here. */
static void
wipe_json_string(json_t *v)
{
	if (json_is_string(v))
		explicit_bzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

/* Interpret the endpoint's reply (status + body). */
static int
parse_reply(struct dw_oauth2 *o, long status, struct reply *r, char *err, size_t errlen)
{
	json_error_t je;
	json_t *doc = json_loadb(r->buf, r->len, JSON_REJECT_DUPLICATES, &je);
	int rc;

	if (doc != NULL && json_is_object(doc) && json_is_string(json_object_get(doc, "error"))) {
		json_t *d = json_object_get(doc, "error_description");
		rc = oauth_error(o, status, json_string_value(json_object_get(doc, "error")),
		                 json_is_string(d) ? json_string_value(d) : NULL, err, errlen);
		goto out;
	}
	if (status < 200 || status > 299) {
		if (status >= 500 || status == 429 || status == 408)
			rc = dw_err(err, errlen, DW_E_SOURCE,
			            "account '%s': the token endpoint answered HTTP %ld; will retry", o->account,
			            status);
		else
			rc = dw_err(err, errlen, DW_E_CONFIG,
			            "account '%s': the token endpoint answered HTTP %ld without an OAuth error; "
			            "check token_url",
			            o->account, status);
		goto out;
	}
	if (doc == NULL || !json_is_object(doc)) {
		rc = dw_err(err, errlen, DW_E_SOURCE,
		            "account '%s': the token endpoint's reply (HTTP %ld, %zu bytes) is not a JSON object; "
		            "will retry",
		            o->account, status, r->len);
		goto out;
	}

	json_t *at = json_object_get(doc, "access_token");
	json_t *tt = json_object_get(doc, "token_type");
	if (!json_is_string(at) || json_string_length(at) == 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE,
		            "account '%s': the token endpoint's reply has no access_token; will retry", o->account);
		goto out;
	}
	if (!token_chars_ok(json_string_value(at), json_string_length(at))) {
		rc = dw_err(err, errlen, DW_E_SOURCE,
		            "account '%s': the token endpoint returned an access_token with spaces or control "
		            "characters; will retry",
		            o->account);
		goto out;
	}
	/* XOAUTH2 sends "auth=Bearer TOKEN"; any other token type cannot work. A
	 * missing token_type is tolerated (some servers leave it out). */
	if (tt != NULL && (!json_is_string(tt) || strcasecmp(json_string_value(tt), "bearer") != 0)) {
		char q[QUOTE_MAX + 4];
		if (!json_is_string(tt) || !quotable(o, json_string_value(tt), json_string_length(tt), q, sizeof(q)))
			snprintf(q, sizeof(q), "?");
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "account '%s': the token endpoint issued a '%s' token; XOAUTH2 needs a Bearer token",
		            o->account, q);
		goto out;
	}
	set_token(o, xstrndup(json_string_value(at), json_string_length(at)), json_string_length(at),
	          expires_in(json_object_get(doc, "expires_in")));
	rc = DW_OK;
out:
	if (doc != NULL) {
		wipe_json_string(json_object_get(doc, "access_token"));
		wipe_json_string(json_object_get(doc, "refresh_token"));
		wipe_json_string(json_object_get(doc, "id_token"));
		json_decref(doc);
	}
	return rc;
}

/* Which libcurl failures the user must fix, as opposed to waiting. */
static int
curl_scope(CURLcode c)
{
	switch (c) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
		return DW_E_CONFIG;
	default:
		return DW_E_SOURCE;
	}
}

static int
refresh(struct dw_oauth2 *o, char *err, size_t errlen)
{
	const struct dw_oauth2_cfg *cfg = o->cfg;
	const char *url = cfg->token_url != NULL ? cfg->token_url : DEFAULT_TOKEN_URL;
	char curlerr[CURL_ERROR_SIZE];
	struct reply r = {0};
	struct curl_slist *hdrs = NULL;
	char *body = NULL;
	size_t bodylen = 0;
	int plain_http = 0, rc;
	CURL *h = NULL;

	if (cfg->client_id == NULL || cfg->refresh_token == NULL)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "account '%s': oauth2 needs client_id and refresh_token (or a token_command)",
		              o->account);
	if ((rc = check_url(o, url, &plain_http, err, errlen)) != DW_OK)
		return rc;
	if ((h = curl_easy_init()) == NULL)
		return dw_err(err, errlen, DW_E_SYS, "account '%s': cannot create a libcurl handle", o->account);

	if (add_field(h, &body, &bodylen, "grant_type", "refresh_token") != 0 ||
	    add_field(h, &body, &bodylen, "client_id", cfg->client_id) != 0 ||
	    (cfg->client_secret != NULL &&
	     add_field(h, &body, &bodylen, "client_secret", cfg->client_secret) != 0) ||
	    add_field(h, &body, &bodylen, "refresh_token", cfg->refresh_token) != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "account '%s': cannot encode the refresh request", o->account);
		goto out;
	}
	r.buf = xmalloc(REPLY_MAX + 1);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curlerr[0] = '\0';

	/* Settings that must hold whatever the defaults are: bounded time, no
	 * signals (we run in a thread), verification on, one protocol, no
	 * redirects, no proxy for loopback tests, never verbose. */
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)o->timeout);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)o->timeout);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, plain_http ? "http" : "https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, plain_http ? CURLPROTO_HTTP : CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "dmarcwatch/" DW_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)bodylen);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);

	CURLcode c = curl_easy_perform(h);
	if (c != CURLE_OK) {
		char q[QUOTE_MAX + 4];
		if (r.toobig) {
			rc = dw_err(err, errlen, DW_E_SOURCE,
			            "account '%s': the token endpoint's reply is larger than %d KiB; will retry",
			            o->account, REPLY_MAX / 1024);
			goto out;
		}
		if (!quotable(o, curlerr, strlen(curlerr), q, sizeof(q)))
			snprintf(q, sizeof(q), "%s", curl_easy_strerror(c));
		if (curl_scope(c) == DW_E_CONFIG)
			rc = dw_err(err, errlen, DW_E_CONFIG, "account '%s': token refresh failed: %s%s", o->account,
			            q, c == CURLE_SSL_CACERT_BADFILE ? " (check oauth2 ca_file)" : "");
		else
			rc = dw_err(err, errlen, DW_E_SOURCE, "account '%s': token refresh failed: %s; will retry",
			            o->account, q);
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	r.buf[r.len] = '\0';
	rc = parse_reply(o, status, &r, err, errlen);
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	wipe_free(body, bodylen);
	wipe_free(r.buf, r.buf != NULL ? REPLY_MAX + 1 : 0);
	return rc;
}

/* ------------------------------------------------------------------ */
/* token_command.                                                       */

/* Close every descriptor from 3 up in the child, so that the command
 * inherits nothing of ours (database, IMAP sockets of other threads).
 * close_range is one system call; the loop is the fallback for old
 * kernels. Both are safe between fork and exec. */
static void
close_from_3(long maxfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
#endif
	for (long fd = 3; fd < maxfd; fd++)
		close((int)fd);
}

static void
kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

static int
wait_child(pid_t pid, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, 0);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
	}
}

struct cmdrun {
	char *out;          /* REPLY_MAX bytes, owned, secret */
	size_t outlen;
	char errtxt[STDERR_KEEP + 1];
	size_t errlen;
	int toobig, timedout;
};

/* Read the child's stdout and stderr until both close or the deadline.
 * A descriptor that reached its end is closed and set to -1. */
static void
pump(struct cmdrun *cr, int *outfdp, int *errfdp, int64_t deadline)
{
	char scratch[4096];
	struct pollfd p[2];
	int outfd = *outfdp, errfd = *errfdp;

	while (outfd >= 0 || errfd >= 0) {
		int64_t left = deadline - dw_mono_ms();
		if (left <= 0) {
			cr->timedout = 1;
			break;
		}
		int n = 0;
		if (outfd >= 0)
			p[n++] = (struct pollfd){.fd = outfd, .events = POLLIN};
		if (errfd >= 0)
			p[n++] = (struct pollfd){.fd = errfd, .events = POLLIN};
		int pr = poll(p, (nfds_t)n, left > INT_MAX ? INT_MAX : (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			break;
		for (int i = 0; i < n; i++) {
			if (p[i].revents == 0)
				continue;
			ssize_t got;
			if (p[i].fd == outfd) {
				if (cr->outlen < REPLY_MAX)
					got = read(outfd, cr->out + cr->outlen, REPLY_MAX - cr->outlen);
				else
					got = read(outfd, scratch, sizeof(scratch));
				if (got > 0 && cr->outlen == REPLY_MAX) {
					explicit_bzero(scratch, sizeof(scratch));
					cr->toobig = 1;
					goto out;
				}
				if (got > 0)
					cr->outlen += (size_t)got;
				else if (got == 0 || errno != EINTR) {
					close(outfd);
					outfd = -1;
				}
			} else {
				got = read(errfd, scratch, sizeof(scratch));
				if (got > 0 && cr->errlen < STDERR_KEEP) {
					size_t k = (size_t)got;
					if (k > STDERR_KEEP - cr->errlen)
						k = STDERR_KEEP - cr->errlen;
					memcpy(cr->errtxt + cr->errlen, scratch, k);
					cr->errlen += k;
				}
				explicit_bzero(scratch, sizeof(scratch));
				if (got == 0 || (got < 0 && errno != EINTR)) {
					close(errfd);
					errfd = -1;
				}
			}
		}
	}
out:
	*outfdp = outfd;
	*errfdp = errfd;
}

/* After the pipes closed, give the child the rest of the time to exit. */
static int
reap_by(pid_t pid, int *status, int64_t deadline)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (dw_mono_ms() >= deadline)
			return 1;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int
run_command(struct dw_oauth2 *o, char *err, size_t errlen)
{
	const char *cmd = o->cfg->token_command;
	struct cmdrun cr = {0};
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int status = 0, rc;
	long maxfd = sysconf(_SC_OPEN_MAX);
	struct sigaction dfl;
	sigset_t none;
	pid_t pid;

	/* Prepared before fork so that the child only makes system calls. */
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	sigemptyset(&none);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (pipe(outp) != 0 || pipe(errp) != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "token_command for account '%s': pipe: %s", o->account,
		            strerror(errno));
		goto fail_pipes;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(outp[i], F_SETFD, FD_CLOEXEC);
		fcntl(errp[i], F_SETFD, FD_CLOEXEC);
	}
	pid = fork();
	if (pid < 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "token_command for account '%s': fork: %s", o->account,
		            strerror(errno));
		goto fail_pipes;
	}
	if (pid == 0) {
		/* Child: only async-signal-safe calls from here to exec. Its own
		 * process group lets the parent kill everything the shell starts;
		 * signal mask and dispositions are reset because blocked or
		 * ignored signals survive exec. */
		int devnull = open("/dev/null", O_RDONLY);
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGHUP, &dfl, NULL);
		sigaction(SIGCHLD, &dfl, NULL);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(126);
		close_from_3(maxfd);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	/* Also from the parent, so that a kill of the group cannot race the
	 * child's own setpgid. */
	setpgid(pid, pid);
	close(outp[1]);
	close(errp[1]);

	int64_t deadline = dw_mono_ms() + (int64_t)o->timeout * 1000;
	cr.out = xmalloc(REPLY_MAX);
	pump(&cr, &outp[0], &errp[0], deadline);
	if (outp[0] >= 0)
		close(outp[0]);
	if (errp[0] >= 0)
		close(errp[0]);
	/* Killing the group on the normal path is avoided on purpose: once the
	 * shell is reaped its pid may be reused, and helpers the command
	 * started (an agent) may legitimately live on. */
	int reaped = 2;
	if (!cr.toobig && !cr.timedout) {
		reaped = reap_by(pid, &status, deadline);
		if (reaped == 1)
			cr.timedout = 1;
	}
	if (reaped != 0) {
		int e = reaped < 0 ? errno : 0;
		kill_group(pid);
		if (e == 0 && wait_child(pid, &status) != 0)
			e = errno;
		if (e != 0) {
			rc = dw_err(err, errlen, DW_E_SYS,
			            "token_command for account '%s': cannot wait for the command: %s (is SIGCHLD "
			            "ignored?)",
			            o->account, strerror(e));
			goto out;
		}
	}

	if (cr.timedout) {
		rc = dw_err(err, errlen, DW_E_SOURCE,
		            "token_command for account '%s' did not finish within %u s and was killed; will "
		            "retry",
		            o->account, o->timeout);
		goto out;
	}
	if (cr.toobig) {
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "token_command for account '%s' printed more than %d KiB; it must print one access "
		            "token",
		            o->account, REPLY_MAX / 1024);
		goto out;
	}
	/* Trim surrounding whitespace (commands end with a newline). */
	size_t a = 0, b = cr.outlen;
	while (a < b && strchr(" \t\r\n\v\f", cr.out[a]) != NULL)
		a++;
	while (b > a && strchr(" \t\r\n\v\f", cr.out[b - 1]) != NULL)
		b--;

	if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) {
		char q[QUOTE_MAX + 4], said[QUOTE_MAX + 40] = "";
		cr.errtxt[cr.errlen] = '\0';
		/* stderr could echo a secret, or what the command printed on
		 * stdout (a token, even from a failed run): then it is not
		 * quoted. Only a short first line is quoted, marked as the
		 * command's words. */
		if (!contains_mem(cr.errtxt, cr.errlen, cr.out + a, b - a) &&
		    quotable(o, cr.errtxt, cr.errlen, q, sizeof(q)))
			snprintf(said, sizeof(said), "; the command said: \"%s\"", q);
		if (WIFSIGNALED(status))
			rc = dw_err(err, errlen, DW_E_CONFIG, "token_command for account '%s' was killed by signal %d%s",
			            o->account, WTERMSIG(status), said);
		else
			rc = dw_err(err, errlen, DW_E_CONFIG, "token_command for account '%s' exited with status %d%s",
			            o->account, WEXITSTATUS(status), said);
		goto out;
	}

	if (a == b) {
		rc = dw_err(err, errlen, DW_E_CONFIG, "token_command for account '%s' printed no token",
		            o->account);
		goto out;
	}
	if (!token_chars_ok(cr.out + a, b - a)) {
		rc = dw_err(err, errlen, DW_E_CONFIG,
		            "token_command for account '%s' printed more than one word or control characters; it "
		            "must print only the access token",
		            o->account);
		goto out;
	}
	set_token(o, xstrndup(cr.out + a, b - a), b - a, COMMAND_LIFETIME);
	rc = DW_OK;
out:
	wipe_free(cr.out, REPLY_MAX);
	explicit_bzero(cr.errtxt, sizeof(cr.errtxt));
	return rc;

fail_pipes:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return rc;
}

int
dw_oauth2_token(struct dw_oauth2 *o, int force, const char **token, char *err, size_t errlen)
{
	int rc;

	*token = NULL;
	if (!force && o->token != NULL && mono_now() + EXPIRY_MARGIN < o->expires) {
		*token = o->token;
		return DW_OK;
	}
	/* The old token is dropped first: if the refresh fails, a token the
	 * server refused (force) or that has expired must not be handed out. */
	drop_token(o);
	if (o->cfg->token_command != NULL)
		rc = run_command(o, err, errlen);
	else
		rc = refresh(o, err, errlen);
	if (rc == DW_OK)
		*token = o->token;
	return rc;
}
