/*
 * email.c - the `email` notifier: one MIME message per notification,
 * handed to an SMTP server with libcurl.
 *
 *     notifiers:
 *       - name: ops-mail
 *         plugin: email
 *         url: smtp://smtp.example.com:587   # STARTTLS, required
 *         username: dmarcwatch@example.com
 *         password: env:SMTP_PASSWORD         # or password_file: /etc/...
 *         from: "DMARC watch <dmarcwatch@example.com>"
 *         to: [ops@example.com, "Jane Doe <jane@example.com>"]
 *         cc: [audit@example.com]             # optional
 *         subject_prefix: "[dmarc]"           # default "[dmarcwatch]"
 *         ca_file: /etc/ssl/private-ca.pem    # optional; verify: false to skip
 *
 * Transport: smtp://HOST[:PORT] upgrades with STARTTLS and refuses to go on
 * without it (CURLUSESSL_ALL); smtps://HOST[:PORT] is TLS from the first
 * byte. Mail in clear needs both `starttls: false` and `allow_plaintext:
 * true`. A URL path names the EHLO domain (smtp://host:587/me.example.org).
 *
 * The message: Subject "PREFIX SEVERITY: TITLE" for alerts ("RESOLVED:" for
 * resolved ones, the bare title otherwise), RFC 2047 Q-encoded when it is
 * not plain ASCII; a multipart/alternative text + HTML body (fields and the
 * table as aligned text and as HTML tables), inside multipart/mixed with
 * the attachment (base64) when there is one. All header values are built
 * here (curl does not encode headers): configured ones are checked in
 * init(), notification data is stripped of control characters, so no
 * value can add a header line. The Message-ID is derived from the
 * idempotency key, so a retried delivery carries the same one. Limits:
 * addresses are ASCII (no SMTPUTF8); the attachment's file name keeps
 * printable ASCII only (others become '_'); text columns are aligned by
 * characters, so East Asian wide characters can shift them.
 *
 * Outcomes (pu_smtp_outcome): connection problems, timeouts and 4xx
 * answers are retried; refused logins, 5xx answers, missing STARTTLS and
 * untrusted certificates are not. When some recipients are refused and
 * others accepted the message counts as delivered (retrying would send it
 * again to those who got it) and a warning names the first refused one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "plugutil.h"
#include "pu_curl.h"

#define MAX_MESSAGE (32u * 1024 * 1024) /* composed text or HTML part */
#define LINE_LIMIT 76                   /* header lines with encoded-words (RFC 2047 section 2) */

struct email {
	const struct dw_host *host;
	char *url;      /* never holds credentials (refused in init) */
	char *username; /* NULL: no AUTH */
	char *password; /* secret */
	long use_ssl;   /* CURLUSESSL_ALL or, with allow_plaintext, CURLUSESSL_NONE */
	struct pu_tls tls;
	char *subject_prefix;
	char *mail_from;   /* envelope sender, "<local@domain>" */
	char *from_domain; /* right-hand side of Message-IDs */
	char *hdr_from, *hdr_to, *hdr_cc; /* complete header fields, folded; hdr_cc may be NULL */
	struct curl_slist *rcpts;         /* envelope recipients: to + cc */
	unsigned long counter;            /* Message-IDs of notifications without a key */
	int curl_ready;                   /* curl_global_init() done */
};

/* ------------------------------------------------------------------ */
/* Characters                                                           */

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if (is_ctl((unsigned char)*s))
			return 1;
	return 0;
}

static int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* Bytes of the UTF-8 sequence starting at s (1 for ASCII and for bytes
 * that do not start a valid sequence, so nothing is ever split apart or
 * skipped). */
static size_t
utf8_len(const unsigned char *s, size_t left)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
	                                                         : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 1;
	if (n > left)
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}


/* A copy of s with every control character (line breaks included) turned
 * into a space: one-line values for headers and table cells. */
static char *
one_line(const char *s)
{
	char *c = strdup(s != NULL ? s : "");
	if (c != NULL)
		for (char *p = c; *p != '\0'; p++)
			if (is_ctl((unsigned char)*p))
				*p = ' ';
	return c;
}

/* ------------------------------------------------------------------ */
/* Header fields: folded at LINE_LIMIT, RFC 2047 words for non-ASCII     */

struct hdr {
	struct pu_buf b;
	size_t linelen; /* bytes on the current (last) line */
};

static int
hdr_start(struct hdr *h, const char *name)
{
	memset(h, 0, sizeof *h);
	h->b.max = 64 * 1024;
	h->linelen = strlen(name) + 1;
	return pu_buf_printf(&h->b, "%s:", name);
}

/* Add " TOKEN", folding before it (CRLF + the space) when the line would
 * grow past the limit. Unfolding removes only the CRLF, so the value reads
 * back exactly. */
static int
hdr_token(struct hdr *h, const char *tok, size_t n)
{
	int rc = 0;
	if (n > 0 && h->linelen > 1 && h->linelen + 1 + n > LINE_LIMIT) {
		rc |= pu_buf_add(&h->b, "\r\n", 2);
		h->linelen = 0;
	}
	rc |= pu_buf_add(&h->b, " ", 1);
	rc |= pu_buf_add(&h->b, tok, n);
	h->linelen += 1 + n;
	return rc;
}

/* Q encoding (RFC 2047 section 4.2) restricted to the characters allowed
 * in a phrase (section 5 (3)), so the same words serve Subject and display
 * names. */
static int
q_safe(unsigned char c)
{
	return is_alnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

/* s[0..len) as "=?UTF-8?Q?...?=" words of at most 75 characters, each
 * holding whole UTF-8 characters (section 5: a character is never split
 * between words), as many on a line as fit. */
static int
hdr_encoded(struct hdr *h, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	int rc = 0;
	do {
		/* Room for a word on this line; a fresh line when even one
		 * 4-byte character (24 characters of word) would not fit. */
		size_t room = h->linelen + 1 + 24 > LINE_LIMIT ? LINE_LIMIT - 1 : LINE_LIMIT - h->linelen - 1;
		char word[LINE_LIMIT + 1];
		size_t w = (size_t)snprintf(word, sizeof word, "=?UTF-8?Q?");
		while (i < len) {
			size_t cl = utf8_len(u + i, len - i), enc = 0;
			for (size_t k = 0; k < cl; k++)
				enc += q_safe(u[i + k]) || u[i + k] == ' ' ? 1 : 3;
			if (w + enc + 2 > room)
				break;
			for (size_t k = 0; k < cl; k++) {
				unsigned char c = u[i + k];
				if (q_safe(c))
					word[w++] = (char)c;
				else if (c == ' ')
					word[w++] = '_';
				else {
					word[w++] = '=';
					word[w++] = hex[c >> 4];
					word[w++] = hex[c & 15];
				}
			}
			i += cl;
		}
		word[w++] = '?';
		word[w++] = '=';
		rc |= hdr_token(h, word, w);
	} while (i < len);
	return rc;
}

/* An unstructured value (Subject, X- fields) free of control characters:
 * plain ASCII folded at its spaces, anything else as encoded-words. Text
 * that merely looks like an encoded-word ("=?") is encoded too, so that it
 * reads back as written, and so is a word too long for a line (encoded
 * words can be cut anywhere; the hard limit is 998 characters a line). */
static int
hdr_text(struct hdr *h, const char *s)
{
	size_t longest = 0;
	for (const char *p = s;; p++) {
		size_t n = strcspn(p, " ");
		longest = n > longest ? n : longest;
		p += n;
		if (*p == '\0')
			break;
	}
	if (!is_ascii(s) || strstr(s, "=?") != NULL || longest > LINE_LIMIT - 1)
		return hdr_encoded(h, s, strlen(s));
	int rc = 0;
	for (;;) {
		const char *sp = strchr(s, ' ');
		size_t n = sp != NULL ? (size_t)(sp - s) : strlen(s);
		rc |= hdr_token(h, s, n);
		if (sp == NULL)
			return rc;
		s = sp + 1;
	}
}

/* Finish: a malloc()ed string (ownership passes to the caller), or NULL. */
static char *
hdr_end(struct hdr *h)
{
	if (h->b.p == NULL || h->b.truncated) {
		pu_buf_free(&h->b);
		return NULL;
	}
	return h->b.p;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                            */

struct addr {
	char *name; /* display name, or NULL */
	char *spec; /* local@domain */
};

/* local@domain: dot-atoms of atext on the left, host name labels on the
 * right. Quoted local parts, address literals and non-ASCII (SMTPUTF8)
 * are not supported. */
static int
valid_spec(const char *s)
{
	const char *at = strrchr(s, '@');
	if (at == NULL || at == s || at - s > 64 || strlen(at + 1) > 253 || strlen(at + 1) == 0)
		return 0;
	int dot_ok = 0;
	for (const char *p = s; p < at; p++) {
		if (*p == '.') {
			if (!dot_ok)
				return 0;
			dot_ok = 0;
		} else if (is_atext((unsigned char)*p))
			dot_ok = 1;
		else
			return 0;
	}
	if (!dot_ok)
		return 0;
	dot_ok = 0;
	for (const char *p = at + 1; *p != '\0'; p++) {
		if (*p == '.') {
			if (!dot_ok)
				return 0;
			dot_ok = 0;
		} else if (is_alnum((unsigned char)*p) || *p == '-')
			dot_ok = 1;
		else
			return 0;
	}
	return dot_ok;
}

static void
addr_free(struct addr *a)
{
	free(a->name);
	free(a->spec);
	a->name = a->spec = NULL;
}

/* "local@domain", "Name <local@domain>" or "\"Name\" <local@domain>".
 * 0, or -1 with a reason in why. */
static int
addr_parse(const char *v, struct addr *a, const char **why)
{
	a->name = a->spec = NULL;
	if (has_ctl(v)) {
		*why = "contains a control character or line break";
		return -1;
	}
	size_t n = strlen(v);
	while (n > 0 && v[n - 1] == ' ')
		n--;
	while (n > 0 && *v == ' ')
		v++, n--;
	const char *lt = NULL;
	if (n > 0 && v[n - 1] == '>') {
		for (size_t i = n; i-- > 0;)
			if (v[i] == '<') {
				lt = v + i;
				break;
			}
		if (lt == NULL) {
			*why = "has a '>' without '<'";
			return -1;
		}
		a->spec = strndup(lt + 1, (size_t)(v + n - 1 - (lt + 1)));
		size_t nl = (size_t)(lt - v);
		while (nl > 0 && v[nl - 1] == ' ')
			nl--;
		if (nl >= 2 && v[0] == '"' && v[nl - 1] == '"') { /* a quoted string: drop quotes and escapes */
			a->name = malloc(nl);
			if (a->name != NULL) {
				size_t o = 0;
				for (size_t i = 1; i + 1 < nl; i++) {
					if (v[i] == '\\' && i + 2 < nl)
						i++;
					a->name[o++] = v[i];
				}
				a->name[o] = '\0';
			}
		} else if (nl > 0)
			a->name = strndup(v, nl);
		if (nl > 0 && a->name == NULL) {
			addr_free(a);
			*why = "out of memory";
			return -1;
		}
	} else
		a->spec = strndup(v, n);
	if (a->spec == NULL) {
		*why = "out of memory";
		return -1;
	}
	if (!valid_spec(a->spec)) {
		addr_free(a);
		*why = "is not an e-mail address (expected local@domain or \"Name <local@domain>\"; "
		       "international addresses are not supported)";
		return -1;
	}
	if (a->name != NULL && a->name[0] == '\0') {
		free(a->name);
		a->name = NULL;
	}
	return 0;
}

/* One address of an address-list header: the display name as atoms, as a
 * quoted string or as encoded-words, then <spec>; ',' unless last. */
static int
hdr_addr(struct hdr *h, const struct addr *a, int last)
{
	struct pu_buf t = {0};
	int rc = 0;
	if (a->name != NULL && !is_ascii(a->name)) {
		rc |= hdr_encoded(h, a->name, strlen(a->name));
		rc |= pu_buf_printf(&t, "<%s>", a->spec);
	} else if (a->name != NULL) {
		int atoms = 1;
		for (const char *p = a->name; *p != '\0'; p++)
			atoms &= is_atext((unsigned char)*p) || *p == ' ';
		if (atoms)
			rc |= pu_buf_printf(&t, "%s <%s>", a->name, a->spec);
		else {
			rc |= pu_buf_add(&t, "\"", 1);
			for (const char *p = a->name; *p != '\0'; p++) {
				if (*p == '"' || *p == '\\')
					rc |= pu_buf_add(&t, "\\", 1);
				rc |= pu_buf_add(&t, p, 1);
			}
			rc |= pu_buf_printf(&t, "\" <%s>", a->spec);
		}
	} else
		rc |= pu_buf_printf(&t, "%s", a->spec);
	if (!last)
		rc |= pu_buf_add(&t, ",", 1);
	if (t.p == NULL)
		rc = -1;
	if (rc == 0)
		rc = hdr_token(h, t.p, t.len);
	pu_buf_free(&t);
	return rc != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                        */

static const char *const known_keys[] = {
    "url", "username", "password", "password_file", "from", "to", "cc",
    "subject_prefix", "starttls", "allow_plaintext", "ca_file", "verify", NULL};

static void
email_free(struct email *e)
{
	if (e == NULL)
		return;
	free(e->url);
	free(e->username);
	pu_secret_free(e->password);
	free(e->subject_prefix);
	free(e->mail_from);
	free(e->from_domain);
	free(e->hdr_from);
	free(e->hdr_to);
	free(e->hdr_cc);
	curl_slist_free_all(e->rcpts);
	if (e->curl_ready)
		curl_global_cleanup();
	free(e);
}

/* url: smtp:// or smtps://, a host, no credentials, no query. */
static int
check_url(const struct dw_host *host, const struct dw_kv *kv, int *smtps)
{
	const char *why = NULL;
	CURLU *u = curl_url();
	char *scheme = NULL, *user = NULL, *pass = NULL, *h = NULL, *query = NULL, *frag = NULL;
	if (u == NULL)
		why = "out of memory";
	else if (has_ctl(kv->value) || strchr(kv->value, ' ') != NULL)
		why = "contains spaces or control characters";
	else if (curl_url_set(u, CURLUPART_URL, kv->value, 0) != CURLUE_OK)
		why = "is not a valid URL (expected smtp://HOST:PORT or smtps://HOST:PORT)";
	else {
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_PASSWORD, &pass, 0);
		curl_url_get(u, CURLUPART_HOST, &h, 0);
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
		if (scheme == NULL || (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0))
			why = "must start with smtp:// (STARTTLS) or smtps:// (TLS)";
		else if (user != NULL || pass != NULL)
			why = "must not hold credentials: give `username` and `password: env:NAME` (or password_file) "
			      "instead";
		else if (h == NULL || h[0] == '\0')
			why = "has no host name";
		else if (query != NULL || frag != NULL)
			why = "must not have a query or fragment (smtp://HOST:PORT[/EHLO-DOMAIN])";
		else
			*smtps = strcmp(scheme, "smtps") == 0;
	}
	curl_free(scheme);
	curl_free(user);
	curl_free(pass);
	curl_free(h);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	if (why == NULL)
		return 0;
	/* The URL is not echoed: it may hold what was meant as a password. */
	host->config_error(host, kv, "the SMTP URL %s", why);
	return -1;
}

/* to/cc: each value parsed; the header field and envelope recipients
 * built. A list key with no entries leaves *hdr NULL. */
static int
config_rcpts(struct email *e, const struct dw_kv *cfg, size_t n, const char *key, const char *field,
             char **hdr)
{
	const struct dw_host *host = e->host;
	struct hdr h;
	size_t count = pu_count(cfg, n, key), seen = 0;
	int rc = 0;
	*hdr = NULL;
	if (count == 0)
		return 0;
	if (hdr_start(&h, field) != 0)
		rc = -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg[i].key, key) != 0)
			continue;
		seen++;
		struct addr a;
		const char *why;
		if (addr_parse(cfg[i].value, &a, &why) != 0) {
			host->config_error(host, &cfg[i], "recipient %zu %s", seen, why);
			rc = -1;
			continue;
		}
		char env[330]; /* "<" + 64 + "@" + 253 + ">" */
		snprintf(env, sizeof env, "<%s>", a.spec);
		struct curl_slist *l = curl_slist_append(e->rcpts, env);
		if (l == NULL || hdr_addr(&h, &a, seen == count) != 0) {
			host->config_error(host, &cfg[i], "out of memory");
			rc = -1;
		} else
			e->rcpts = l;
		addr_free(&a);
	}
	char *s = hdr_end(&h);
	if (rc != 0 || s == NULL) {
		free(s);
		return -1;
	}
	*hdr = s;
	return 0;
}

static int
config_from(struct email *e, const struct dw_kv *cfg, size_t n)
{
	const struct dw_host *host = e->host;
	const struct dw_kv *kv = pu_kv(cfg, n, "from");
	if (kv == NULL) {
		host->config_error(host, NULL, "from: required (the sender address, e.g. dmarcwatch@example.com)");
		return -1;
	}
	if (pu_single(host, cfg, n, "from") != 0)
		return -1;
	struct addr a;
	const char *why;
	if (addr_parse(kv->value, &a, &why) != 0) {
		host->config_error(host, kv, "the sender %s", why);
		return -1;
	}
	struct hdr h;
	int rc = hdr_start(&h, "From");
	rc |= hdr_addr(&h, &a, 1);
	e->hdr_from = hdr_end(&h);
	size_t sl = strlen(a.spec);
	e->mail_from = malloc(sl + 3);
	if (e->mail_from != NULL)
		snprintf(e->mail_from, sl + 3, "<%s>", a.spec);
	e->from_domain = strdup(strrchr(a.spec, '@') + 1);
	addr_free(&a);
	if (rc != 0 || e->hdr_from == NULL || e->mail_from == NULL || e->from_domain == NULL) {
		host->config_error(host, kv, "out of memory");
		return -1;
	}
	return 0;
}

static int
config_transport(struct email *e, const struct dw_kv *cfg, size_t n)
{
	const struct dw_host *host = e->host;
	const struct dw_kv *url = pu_kv(cfg, n, "url");
	int smtps = 0, rc = 0;
	if (url == NULL) {
		host->config_error(host, NULL,
		                   "url: required (smtp://HOST:587 for STARTTLS, smtps://HOST:465 for TLS from the start)");
		return -1;
	}
	if (pu_single(host, cfg, n, "url") != 0 || check_url(host, url, &smtps) != 0)
		return -1;
	if ((e->url = strdup(url->value)) == NULL)
		return -1;

	int starttls = 1, plaintext = 0;
	if (pu_bool(host, cfg, n, "starttls", &starttls) != 0 || pu_bool(host, cfg, n, "allow_plaintext", &plaintext) != 0)
		return -1;
	e->use_ssl = CURLUSESSL_ALL;
	if (!starttls && smtps) {
		host->config_error(host, pu_kv(cfg, n, "starttls"),
		                   "does not apply to smtps:// (TLS from the start); remove it");
		rc = -1;
	} else if (!starttls && !plaintext) {
		host->config_error(host, pu_kv(cfg, n, "starttls"),
		                   "false would send mail (and the password) in clear text; keep STARTTLS, use "
		                   "smtps://, or add `allow_plaintext: true` if the network is trusted");
		rc = -1;
	} else if (!starttls) {
		e->use_ssl = CURLUSESSL_NONE;
		host->log(host, DW_LOG_WARNING, "starttls: false: %s in clear text",
		          pu_kv(cfg, n, "username") != NULL ? "mail and the password go" : "mail goes");
	}
	if (pu_tls_config(host, cfg, n, &e->tls) != 0)
		rc = -1;

	const struct dw_kv *user = pu_kv(cfg, n, "username");
	if (user != NULL) {
		if (pu_single(host, cfg, n, "username") != 0)
			rc = -1;
		else if (has_ctl(user->value) || user->value[0] == '\0') {
			host->config_error(host, user, "must be a non-empty single line");
			rc = -1;
		} else if ((e->username = strdup(user->value)) == NULL)
			rc = -1;
	}
	int got = host->secret(host, "password", &e->password);
	if (got < 0)
		rc = -1;
	else if (got == 1 && user == NULL) {
		host->config_error(host, pu_kv(cfg, n, pu_kv(cfg, n, "password") != NULL ? "password" : "password_file"),
		                   "a password needs a username (add `username:`)");
		rc = -1;
	} else if (got == 0 && user != NULL) {
		host->config_error(host, user,
		                   "needs a password: add `password: env:NAME` or `password_file: PATH` "
		                   "(or remove username to send without logging in)");
		rc = -1;
	}
	return rc;
}

static int
email_init(const struct dw_host *host, const struct dw_kv *cfg, size_t n, void **state, char *err,
           size_t errlen)
{
	if (pu_check_keys(host, cfg, n, known_keys) != 0)
		return -1;
	struct email *e = calloc(1, sizeof *e);
	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->host = host;
	int rc = config_transport(e, cfg, n);
	rc |= config_from(e, cfg, n);
	if (pu_count(cfg, n, "to") == 0) {
		host->config_error(host, NULL, "to: required (one address or a list)");
		rc = -1;
	}
	rc |= config_rcpts(e, cfg, n, "to", "To", &e->hdr_to);
	rc |= config_rcpts(e, cfg, n, "cc", "Cc", &e->hdr_cc);

	const struct dw_kv *pfx = pu_kv(cfg, n, "subject_prefix");
	if (pfx != NULL && (pu_single(host, cfg, n, "subject_prefix") != 0 || has_ctl(pfx->value))) {
		if (has_ctl(pfx->value))
			host->config_error(host, pfx, "must be a single line without control characters");
		rc = -1;
	}
	e->subject_prefix = strdup(pfx != NULL ? pfx->value : "[dmarcwatch]");
	if (rc == 0 && e->subject_prefix == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	if (rc == 0) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "libcurl initialisation failed");
			rc = -1;
		} else
			e->curl_ready = 1;
	}
	if (rc != 0) {
		email_free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static void
email_shutdown(void *state)
{
	email_free(state);
}

/* ------------------------------------------------------------------ */
/* The message                                                          */

static const char *
kind_word(unsigned kind)
{
	switch (kind) {
	case DW_KIND_ALERT: return "alert";
	case DW_KIND_RESOLVED: return "resolved";
	case DW_KIND_DIGEST: return "digest";
	case DW_KIND_TEST: return "test";
	default: return "notification";
	}
}

static const char *
severity_word(unsigned sev)
{
	return sev == DW_SEV_CRITICAL ? "critical" : sev == DW_SEV_WARNING ? "warning" : "info";
}

/* RFC 5322 date-time in UTC; fixed English names, whatever the locale. */
static void
rfc5322_date(time_t t, char *buf, size_t len)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
	         months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The left part of the Message-ID: 128 bits of FNV-1a over the
 * idempotency key (two 64-bit lanes from different offset bases) in hex,
 * short and a valid dot-atom whatever the key holds. The key is the same
 * on every attempt, so a retried delivery keeps its Message-ID and mail
 * systems can recognise the duplicate. */
static void
message_id_left(const char *key, char *out, size_t outlen)
{
	uint64_t a = 0xcbf29ce484222325u, b = 0x84222325cbf29ce4u;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		a = (a ^ *p) * 0x100000001b3u;
		b = (b ^ *p) * 0x100000001b3u;
	}
	snprintf(out, outlen, "dmarcwatch.%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

/* Append "NAME: VALUE" (unstructured, encoded as needed) to the list. */
static int
add_text_header(struct curl_slist **l, const char *name, const char *value)
{
	struct hdr h;
	char *v = one_line(value);
	int rc = hdr_start(&h, name);
	rc |= v != NULL ? hdr_text(&h, v) : -1;
	free(v);
	char *s = hdr_end(&h);
	rc = rc == 0 && s != NULL ? pu_curl_header(l, s) : -1;
	free(s);
	return rc;
}

static int
build_headers(struct email *e, const struct dw_notification *n, struct curl_slist **out)
{
	struct curl_slist *l = NULL;
	char date[64];
	int rc = 0;
	rfc5322_date(n->time > 0 ? n->time : time(NULL), date, sizeof date);

	/* Subject: "PREFIX CRITICAL: title" for alerts, "PREFIX RESOLVED:
	 * title" when resolved, "PREFIX title" for digests and tests. */
	struct pu_buf b = {0};
	const char *tag = n->kind == DW_KIND_RESOLVED ? "RESOLVED: "
	                  : n->kind != DW_KIND_ALERT ? ""
	                  : n->severity == DW_SEV_CRITICAL ? "CRITICAL: "
	                  : n->severity == DW_SEV_WARNING ? "WARNING: " : "INFO: ";
	rc |= pu_buf_printf(&b, "%s%s%s%s", e->subject_prefix, e->subject_prefix[0] != '\0' ? " " : "", tag, n->title);
	if (rc == 0)
		rc |= add_text_header(&l, "Subject", b.p);
	pu_buf_free(&b);

	rc |= pu_curl_header(&l, e->hdr_from);
	rc |= pu_curl_header(&l, e->hdr_to);
	if (e->hdr_cc != NULL)
		rc |= pu_curl_header(&l, e->hdr_cc);
	rc |= pu_buf_printf(&b, "Date: %s", date);
	rc |= b.p != NULL ? pu_curl_header(&l, b.p) : -1;
	pu_buf_free(&b);

	const char *key = n->idempotency_key != NULL ? n->idempotency_key : "";
	char left[64];
	if (key[0] != '\0')
		message_id_left(key, left, sizeof left);
	else /* no key (a caller outside the outbox): unique per instance */
		snprintf(left, sizeof left, "dmarcwatch.nokey.%lld.%lu", (long long)time(NULL), ++e->counter);
	rc |= pu_buf_printf(&b, "Message-ID: <%s@%s>", left, e->from_domain);
	rc |= b.p != NULL ? pu_curl_header(&l, b.p) : -1;
	pu_buf_free(&b);

	rc |= pu_curl_header(&l, "Auto-Submitted: auto-generated"); /* RFC 3834: no vacation replies */
	rc |= add_text_header(&l, "X-Dmarcwatch-Kind", kind_word(n->kind));
	rc |= add_text_header(&l, "X-Dmarcwatch-Severity", severity_word(n->severity));
	if (key[0] != '\0')
		rc |= add_text_header(&l, "X-Dmarcwatch-Idempotency-Key", key);
	if (n->rule != NULL)
		rc |= add_text_header(&l, "X-Dmarcwatch-Rule", n->rule);
	if (n->domain != NULL)
		rc |= add_text_header(&l, "X-Dmarcwatch-Domain", n->domain);
	if (rc != 0) {
		curl_slist_free_all(l);
		return -1;
	}
	*out = l;
	return 0;
}

/* --- text/plain ---------------------------------------------------- */

/* Multi-line text with CRLF line ends (what quoted-printable and SMTP
 * expect); other control characters but tabs become spaces. */
static int
text_add(struct pu_buf *b, const char *s)
{
	int rc = 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\r')
			continue;
		if (c == '\n')
			rc |= pu_buf_add(b, "\r\n", 2);
		else
			rc |= pu_buf_add(b, is_ctl(c) && c != '\t' ? " " : s, 1);
	}
	return rc;
}

/* One-line cell text padded to width columns (no padding when last). */
static int
text_cell(struct pu_buf *b, const char *s, size_t width, int last)
{
	char *v = one_line(s);
	if (v == NULL)
		return -1;
	int rc = pu_buf_add(b, v, strlen(v));
	for (size_t w = pu_utf8_chars(v); !last && w < width; w++)
		rc |= pu_buf_add(b, " ", 1);
	free(v);
	return rc;
}

/* name/value pairs: the notification's own facts, then its fields. */
struct pair {
	const char *name, *value;
};

static size_t
collect_pairs(const struct dw_notification *n, struct pair *p, char *timebuf, size_t tlen)
{
	size_t k = 0;
	struct tm tm;
	p[k++] = (struct pair){"Kind", kind_word(n->kind)};
	p[k++] = (struct pair){"Severity", severity_word(n->severity)};
	if (n->domain != NULL)
		p[k++] = (struct pair){"Domain", n->domain};
	if (n->rule != NULL)
		p[k++] = (struct pair){"Rule", n->rule};
	if (n->time > 0 && gmtime_r(&n->time, &tm) != NULL && strftime(timebuf, tlen, "%Y-%m-%d %H:%M:%S UTC", &tm) > 0)
		p[k++] = (struct pair){"Time", timebuf};
	for (size_t i = 0; i < n->nfields; i++)
		p[k++] = (struct pair){n->fields[i].name != NULL ? n->fields[i].name : "",
		                       n->fields[i].value != NULL ? n->fields[i].value : ""};
	return k;
}

static const char *
cell(const struct dw_table *t, size_t r, size_t c)
{
	const char *s = t->cells[r * t->ncols + c];
	return s != NULL ? s : "";
}

/* Columns aligned by characters (East Asian wide characters take two
 * columns on most screens; they are rare in these tables). */
static int
text_table(struct pu_buf *b, const struct dw_table *t)
{
	size_t *w = calloc(t->ncols, sizeof *w);
	int rc = 0;
	if (w == NULL)
		return -1;
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = pu_utf8_chars(t->columns[c] != NULL ? t->columns[c] : "");
		for (size_t r = 0; r < t->nrows; r++)
			if (pu_utf8_chars(cell(t, r, c)) > w[c])
				w[c] = pu_utf8_chars(cell(t, r, c));
	}
	for (size_t c = 0; c < t->ncols; c++) {
		rc |= text_cell(b, t->columns[c] != NULL ? t->columns[c] : "", w[c], c + 1 == t->ncols);
		rc |= pu_buf_add(b, c + 1 == t->ncols ? "\r\n" : "  ", 2);
	}
	for (size_t c = 0; c < t->ncols; c++) {
		for (size_t k = 0; k < w[c]; k++)
			rc |= pu_buf_add(b, "-", 1);
		rc |= pu_buf_add(b, c + 1 == t->ncols ? "\r\n" : "  ", 2);
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			rc |= text_cell(b, cell(t, r, c), w[c], c + 1 == t->ncols);
			rc |= pu_buf_add(b, c + 1 == t->ncols ? "\r\n" : "  ", 2);
		}
	free(w);
	return rc;
}

static int
build_text(const struct email *e, const struct dw_notification *n, const struct pair *p, size_t np,
           struct pu_buf *b)
{
	int rc = text_cell(b, n->title, 0, 1);
	rc |= pu_buf_add(b, "\r\n\r\n", 4);
	size_t w = 0;
	for (size_t i = 0; i < np; i++)
		if (pu_utf8_chars(p[i].name) > w)
			w = pu_utf8_chars(p[i].name);
	for (size_t i = 0; i < np; i++) {
		char *name = one_line(p[i].name);
		rc |= name != NULL ? pu_buf_printf(b, "%s:", name) : -1;
		free(name);
		rc |= text_cell(b, "", w + 1 - pu_utf8_chars(p[i].name), 0);
		rc |= text_cell(b, p[i].value, 0, 1);
		rc |= pu_buf_add(b, "\r\n", 2);
	}
	if (n->body[0] != '\0') {
		rc |= pu_buf_add(b, "\r\n", 2);
		rc |= text_add(b, n->body);
		rc |= pu_buf_add(b, "\r\n", 2);
	}
	if (n->summary != NULL && n->summary[0] != '\0') {
		rc |= pu_buf_add(b, "\r\n", 2);
		rc |= text_add(b, n->summary);
		rc |= pu_buf_add(b, "\r\n", 2);
	}
	if (n->table != NULL && n->table->ncols > 0) {
		rc |= pu_buf_add(b, "\r\n", 2);
		rc |= text_table(b, n->table);
	}
	if (n->runbook != NULL) {
		rc |= pu_buf_add(b, "\r\nRunbook: ", 11);
		rc |= text_cell(b, n->runbook, 0, 1);
		rc |= pu_buf_add(b, "\r\n", 2);
	}
	if (n->attachment != NULL) {
		rc |= pu_buf_add(b, "\r\nAttached: ", 12);
		rc |= text_cell(b, n->attachment->filename != NULL ? n->attachment->filename : "(file)", 0, 1);
		rc |= pu_buf_add(b, "\r\n", 2);
	}
	rc |= pu_buf_printf(b, "\r\n-- \r\nSent by dmarcwatch %s (notifier ",
	                    e->host->agent_version != NULL ? e->host->agent_version : "");
	rc |= text_cell(b, e->host->instance != NULL ? e->host->instance : "", 0, 1);
	rc |= pu_buf_add(b, ").\r\n", 4);
	return rc;
}

/* --- text/html ----------------------------------------------------- */

/* HTML-escaped text; line breaks as <br> when br, else as spaces. */
static int
html_add_n(struct pu_buf *b, const char *s, size_t n, int br)
{
	int rc = 0;
	for (size_t i = 0; i < n && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': rc |= pu_buf_add(b, "&amp;", 5); break;
		case '<': rc |= pu_buf_add(b, "&lt;", 4); break;
		case '>': rc |= pu_buf_add(b, "&gt;", 4); break;
		case '"': rc |= pu_buf_add(b, "&quot;", 6); break;
		case '\'': rc |= pu_buf_add(b, "&#39;", 5); break;
		case '\r': break;
		case '\n': rc |= br ? pu_buf_add(b, "<br>\r\n", 6) : pu_buf_add(b, " ", 1); break;
		default: rc |= pu_buf_add(b, is_ctl(c) && c != '\t' ? " " : s + i, 1); break;
		}
	}
	return rc;
}

static int
html_add(struct pu_buf *b, const char *s, int br)
{
	return html_add_n(b, s != NULL ? s : "", strlen(s != NULL ? s : ""), br);
}

/* One line of the Markdown-ish summary: `code` and *bold*; the rest
 * escaped. Unpaired markers stay as they are. */
static int
html_inline(struct pu_buf *b, const char *s, size_t n)
{
	int rc = 0;
	size_t i = 0, start = 0;
	while (i < n) {
		const char *close = NULL;
		if (s[i] == '`' || s[i] == '*')
			close = memchr(s + i + 1, s[i], n - i - 1);
		if (close == NULL || close == s + i + 1 || (s[i] == '*' && s[i + 1] == ' ')) {
			i++;
			continue;
		}
		rc |= html_add_n(b, s + start, i - start, 0);
		const char *tag = s[i] == '`' ? "code" : "strong";
		rc |= pu_buf_printf(b, "<%s>", tag);
		rc |= html_add_n(b, s + i + 1, (size_t)(close - (s + i + 1)), 0);
		rc |= pu_buf_printf(b, "</%s>", tag);
		i = start = (size_t)(close - s) + 1;
	}
	rc |= html_add_n(b, s + start, n - start, 0);
	return rc;
}

/* The summary: "- " lines as a list, other lines as lines. */
static int
html_summary(struct pu_buf *b, const char *s)
{
	int rc = 0, in_list = 0;
	rc |= pu_buf_printf(b, "<div>\r\n");
	while (*s != '\0') {
		size_t n = strcspn(s, "\n");
		size_t m = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
		int item = m >= 2 && s[0] == '-' && s[1] == ' ';
		if (item && !in_list)
			rc |= pu_buf_printf(b, "<ul>\r\n");
		else if (!item && in_list)
			rc |= pu_buf_printf(b, "</ul>\r\n");
		in_list = item;
		if (item)
			rc |= pu_buf_add(b, "<li>", 4);
		rc |= html_inline(b, item ? s + 2 : s, item ? m - 2 : m);
		rc |= pu_buf_printf(b, item ? "</li>\r\n" : "<br>\r\n");
		s += n + (s[n] == '\n');
	}
	if (in_list)
		rc |= pu_buf_printf(b, "</ul>\r\n");
	rc |= pu_buf_printf(b, "</div>\r\n");
	return rc;
}

static int
is_web_url(const char *s)
{
	return strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0;
}

/* Tables with inline attributes only: mail clients drop <style>. */
#define TABLE "<table border=\"1\" cellpadding=\"5\" cellspacing=\"0\" style=\"border-collapse:collapse;border-color:#ccc"

static int
build_html(const struct email *e, const struct dw_notification *n, const struct pair *p, size_t np,
           struct pu_buf *b)
{
	const char *color = n->kind == DW_KIND_RESOLVED ? "#2e7d32"
	                    : n->severity == DW_SEV_CRITICAL ? "#c62828"
	                    : n->severity == DW_SEV_WARNING ? "#ef6c00" : "#1565c0";
	int rc = pu_buf_printf(b, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>");
	rc |= html_add(b, n->title, 0);
	rc |= pu_buf_printf(b, "</title></head>\r\n<body style=\"font-family:sans-serif;font-size:14px;color:#222\">\r\n"
	                       "<h2 style=\"color:%s\">", color);
	rc |= html_add(b, n->title, 0);
	rc |= pu_buf_printf(b, "</h2>\r\n" TABLE "\">\r\n");
	for (size_t i = 0; i < np; i++) {
		rc |= pu_buf_printf(b, "<tr><th align=\"left\">");
		rc |= html_add(b, p[i].name, 0);
		rc |= pu_buf_printf(b, "</th><td>");
		rc |= html_add(b, p[i].value, 1);
		rc |= pu_buf_printf(b, "</td></tr>\r\n");
	}
	rc |= pu_buf_printf(b, "</table>\r\n");
	if (n->body[0] != '\0') {
		rc |= pu_buf_printf(b, "<p>");
		rc |= html_add(b, n->body, 1);
		rc |= pu_buf_printf(b, "</p>\r\n");
	}
	if (n->summary != NULL && n->summary[0] != '\0')
		rc |= html_summary(b, n->summary);
	const struct dw_table *t = n->table;
	if (t != NULL && t->ncols > 0) {
		rc |= pu_buf_printf(b, TABLE ";margin-top:12px\">\r\n<tr>");
		for (size_t c = 0; c < t->ncols; c++) {
			rc |= pu_buf_printf(b, "<th align=\"left\">");
			rc |= html_add(b, t->columns[c], 0);
			rc |= pu_buf_printf(b, "</th>");
		}
		rc |= pu_buf_printf(b, "</tr>\r\n");
		for (size_t r = 0; r < t->nrows; r++) {
			rc |= pu_buf_printf(b, "<tr>");
			for (size_t c = 0; c < t->ncols; c++) {
				rc |= pu_buf_printf(b, "<td>");
				rc |= html_add(b, cell(t, r, c), 0);
				rc |= pu_buf_printf(b, "</td>");
			}
			rc |= pu_buf_printf(b, "</tr>\r\n");
		}
		rc |= pu_buf_printf(b, "</table>\r\n");
	}
	if (n->runbook != NULL) {
		rc |= pu_buf_printf(b, "<p>Runbook: ");
		if (is_web_url(n->runbook)) { /* never a javascript: or data: link */
			rc |= pu_buf_printf(b, "<a href=\"");
			rc |= html_add(b, n->runbook, 0);
			rc |= pu_buf_printf(b, "\">");
		}
		rc |= html_add(b, n->runbook, 0);
		rc |= pu_buf_printf(b, is_web_url(n->runbook) ? "</a></p>\r\n" : "</p>\r\n");
	}
	rc |= pu_buf_printf(b, "<hr>\r\n<p style=\"color:#777;font-size:12px\">Sent by dmarcwatch ");
	rc |= html_add(b, e->host->agent_version, 0);
	rc |= pu_buf_printf(b, " (notifier ");
	rc |= html_add(b, e->host->instance, 0);
	rc |= pu_buf_printf(b, ").</p>\r\n</body></html>\r\n");
	return rc;
}

/* --- MIME structure ------------------------------------------------ */

/* A media type as type/subtype of token characters, else the generic one:
 * the value goes into a header. */
static const char *
safe_media_type(const char *t)
{
	if (t == NULL)
		return "application/octet-stream";
	int slash = 0;
	for (const char *p = t; *p != '\0'; p++) {
		if (*p == '/')
			slash++;
		else if (!is_alnum((unsigned char)*p) && strchr("!#$&-^_.+", *p) == NULL)
			return "application/octet-stream";
	}
	return slash == 1 && t[0] != '/' && t[strlen(t) - 1] != '/' ? t : "application/octet-stream";
}

/* The attachment's file name for Content-Disposition: printable ASCII
 * without quotes, backslashes or path separators (others become '_'). */
static char *
safe_filename(const char *f)
{
	char *s = strdup(f != NULL && f[0] != '\0' ? f : "attachment");
	if (s != NULL)
		for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++)
			if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '/')
				*p = '_';
	return s;
}

static int
add_text_part(curl_mime *m, const struct pu_buf *b, const char *type)
{
	curl_mimepart *p = curl_mime_addpart(m);
	if (p == NULL)
		return -1;
	int bad = curl_mime_data(p, b->p, b->len) != CURLE_OK;
	bad |= curl_mime_type(p, type) != CURLE_OK;
	bad |= curl_mime_encoder(p, "quoted-printable") != CURLE_OK;
	return bad ? -1 : 0;
}

/* multipart/alternative (text, html); inside multipart/mixed with the
 * attachment when there is one. For the top level curl takes the type
 * from a Content-Type header among the message headers. */
static int
build_mime(CURL *h, const struct dw_notification *n, const struct pu_buf *text, const struct pu_buf *html,
           curl_mime **out, struct curl_slist **hdrs)
{
	curl_mime *top = curl_mime_init(h);
	if (top == NULL)
		return -1;
	*out = top;
	if (n->attachment == NULL) {
		if (pu_curl_header(hdrs, "Content-Type: multipart/alternative") != 0 ||
		    add_text_part(top, text, "text/plain; charset=utf-8") != 0 ||
		    add_text_part(top, html, "text/html; charset=utf-8") != 0)
			return -1;
		return 0;
	}
	curl_mime *alt = curl_mime_init(h);
	curl_mimepart *p = curl_mime_addpart(top);
	if (alt == NULL || p == NULL) {
		curl_mime_free(alt);
		return -1;
	}
	if (add_text_part(alt, text, "text/plain; charset=utf-8") != 0 ||
	    add_text_part(alt, html, "text/html; charset=utf-8") != 0 ||
	    curl_mime_subparts(p, alt) != CURLE_OK) { /* p owns alt from here on */
		curl_mime_free(alt);
		return -1;
	}
	if (curl_mime_type(p, "multipart/alternative") != CURLE_OK)
		return -1;
	const struct dw_attachment *a = n->attachment;
	char *fname = safe_filename(a->filename);
	p = curl_mime_addpart(top);
	int bad = fname == NULL || p == NULL;
	if (!bad) {
		bad |= curl_mime_data(p, (const char *)a->data, a->data != NULL ? a->size : 0) != CURLE_OK;
		bad |= curl_mime_type(p, safe_media_type(a->media_type)) != CURLE_OK;
		bad |= curl_mime_filename(p, fname) != CURLE_OK;
		bad |= curl_mime_encoder(p, "base64") != CURLE_OK;
	}
	free(fname);
	return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Delivery                                                             */

/* What the server said, from curl's protocol trace: its replies, the
 * name of the command each answers, and the address of RCPT commands.
 * Nothing else we send is kept: AUTH carries the password. */
struct trace {
	char last[256];      /* the last reply line before QUIT, printable ASCII */
	const char *cmd;     /* the command it answered: a constant, or NULL */
	char rcpt[128];      /* the recipient of the RCPT being answered */
	int in_rcpt, quit;
	unsigned refused;    /* recipients refused while others were accepted */
	char first[400];     /* the first refused one and the reply */
};

static void
printable(char *dst, size_t dlen, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < dlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			break;
		dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[o] = '\0';
}

static int
trace_cb(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
	struct trace *t = userp;
	(void)h;
	static const char *const cmds[] = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", NULL};
	if (type == CURLINFO_HEADER_OUT) {
		/* The answer to QUIT says nothing about what went wrong. */
		if (size >= 4 && strncasecmp(data, "QUIT", 4) == 0)
			t->quit = 1;
		if (t->quit)
			return 0;
		t->cmd = NULL;
		for (size_t i = 0; cmds[i] != NULL && t->cmd == NULL; i++)
			if (size >= strlen(cmds[i]) && strncasecmp(data, cmds[i], strlen(cmds[i])) == 0)
				t->cmd = cmds[i];
		t->in_rcpt = size > 8 && strncasecmp(data, "RCPT TO:", 8) == 0;
		if (t->in_rcpt)
			printable(t->rcpt, sizeof t->rcpt, data + 8, size - 8);
	} else if (type == CURLINFO_HEADER_IN && !t->quit) {
		/* One call may carry several lines: keep the last. */
		size_t start = 0;
		for (size_t i = 0; i + 1 < size; i++)
			if (data[i] == '\n')
				start = i + 1;
		printable(t->last, sizeof t->last, data + start, size - start);
		int final = strlen(t->last) < 4 || t->last[3] != '-';
		if (t->in_rcpt && final) {
			if (t->last[0] != '2' && t->refused++ == 0)
				snprintf(t->first, sizeof t->first, "%s: %s", t->rcpt, t->last);
			t->in_rcpt = 0;
		}
	}
	return 0;
}

static int
email_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct email *e = state;
	const struct dw_host *host = e->host;
	struct curl_slist *hdrs = NULL;
	struct pu_buf text = {.max = MAX_MESSAGE}, html = {.max = MAX_MESSAGE};
	struct pair *pairs = NULL;
	curl_mime *mime = NULL;
	struct trace tr = {0};
	char errbuf[CURL_ERROR_SIZE], timebuf[64], what[300];
	int rc = DW_NOTIFY_RETRY;
	(void)retry_after; /* SMTP has no Retry-After */

	CURL *h = curl_easy_init();
	pairs = calloc(n->nfields + 5, sizeof *pairs);
	if (h == NULL || pairs == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	size_t np = collect_pairs(n, pairs, timebuf, sizeof timebuf);
	if (build_headers(e, n, &hdrs) != 0 || build_text(e, n, pairs, np, &text) != 0 ||
	    build_html(e, n, pairs, np, &html) != 0 || text.truncated || html.truncated ||
	    build_mime(h, n, &text, &html, &mime, &hdrs) != 0) {
		snprintf(err, errlen, "composing the message failed (out of memory, or a text larger than %u MiB)",
		         MAX_MESSAGE >> 20);
		goto out;
	}
	if (pu_curl_setup(h, host, &e->tls, "smtp,smtps", errbuf) != 0) {
		snprintf(err, errlen, "libcurl refused the SMTP options (is it built with SMTP and TLS?)");
		rc = DW_NOTIFY_FAIL;
		goto out;
	}
	int bad = 0;
	bad |= curl_easy_setopt(h, CURLOPT_URL, e->url) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USE_SSL, e->use_ssl) != CURLE_OK;
	if (e->username != NULL) {
		bad |= curl_easy_setopt(h, CURLOPT_USERNAME, e->username) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, e->password) != CURLE_OK;
	}
	bad |= curl_easy_setopt(h, CURLOPT_MAIL_FROM, e->mail_from) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_MAIL_RCPT, e->rcpts) != CURLE_OK;
	/* Deliver to the accepted recipients when some are refused (curl 7.88
	 * spells the option with three Ls). */
	bad |= curl_easy_setopt(h, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_MIMEPOST, mime) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, trace_cb) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_DEBUGDATA, &tr) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_VERBOSE, 1L) != CURLE_OK; /* feeds trace_cb; nothing is printed */
	if (bad) {
		snprintf(err, errlen, "libcurl refused the SMTP options (is it built with SMTP and TLS?)");
		rc = DW_NOTIFY_FAIL;
		goto out;
	}
	CURLcode cc = curl_easy_perform(h);
	snprintf(what, sizeof what, "SMTP %s", e->url);
	rc = pu_smtp_outcome(h, cc, errbuf, tr.cmd, tr.last, what, err, errlen);
	if (rc == DW_NOTIFY_OK && tr.refused > 0)
		host->log(host, DW_LOG_WARNING,
		          "%u recipient(s) refused by the server, the others got the message (first refused %s)",
		          tr.refused, tr.first);
out:
	curl_easy_cleanup(h); /* before mime: the handle may still point to it */
	curl_mime_free(mime);
	curl_slist_free_all(hdrs);
	pu_buf_free(&text);
	pu_buf_free(&html);
	free(pairs);
	return rc;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "email", .version = "1.0",
                     .description = "e-mail through an SMTP server (STARTTLS or TLS, text + HTML, attachment)",
                     .init = email_init, .notify = email_notify, .shutdown = email_shutdown);
