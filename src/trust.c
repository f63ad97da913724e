/*
 * trust.c - deciding whether a report mail is authentic from the
 * Authentication-Results header fields (RFC 8601) our own receiving server
 * prepended. See dw/trust.h for the rules.
 *
 * The parser reads one field value at a time:
 *
 *   authserv-id [version] ( "; none" / *( ";" resinfo ) )
 *   resinfo = method["/"version] "=" result *( name "=" value )
 *
 * Comments in parentheses (nested, with quoted-pairs) count as white space
 * and are dropped; values may be quoted strings. It is a single forward scan
 * with no recursion, so a hostile field (100 KiB of "(((", no closing
 * quote) costs time and memory linear in its length and nothing more. The
 * parser is deliberately lenient about what real servers write (Microsoft's
 * "action=none", "reason=100", no space after ";"), but a result set it
 * cannot read is ignored rather than guessed at: ignoring a statement can
 * only make a mail less trusted, never more.
 */
#include "dw/trust.h"
#include "dw/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values quoted in the "why" message are cut to this many bytes. */
#define WHY_VALUE_MAX 64

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality; the locale must not matter here. */
static int
ieq(const char *a, const char *b)
{
	while (*a != '\0' && lower((unsigned char)*a) == lower((unsigned char)*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

/* ---- the lexer ---- */

enum tok { T_END, T_SEMI, T_EQ, T_WORD, T_BAD };

/* In key position a word stops at "="; in value position "=" belongs to
 * the word, because real values carry it (base64 "header.b=ab+/cd=="). */
enum lexmode { M_KEY, M_VALUE };

struct lex {
	const char *s; /* borrowed: the field value */
	size_t n, i;
	char *out;     /* owned: decoded words, each NUL-terminated, one after the other */
	size_t o;
	char *word;    /* the last T_WORD, inside out */
	int broken;    /* an unclosed comment or quoted string, or a stray ")" */
};

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip one comment starting at s[i] == '('. An unclosed comment runs to the
 * end of the field (RFC 5322 would reject the field; we just stop). */
static void
skip_comment(struct lex *lx)
{
	size_t depth = 0;
	while (lx->i < lx->n) {
		char c = lx->s[lx->i++];
		if (c == '\\') {
			if (lx->i < lx->n)
				lx->i++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0)
				return;
		}
	}
	lx->broken = 1;
}

static void
skip_cfws(struct lex *lx)
{
	while (lx->i < lx->n) {
		char c = lx->s[lx->i];
		if (is_ws((unsigned char)c))
			lx->i++;
		else if (c == '(')
			skip_comment(lx);
		else
			break;
	}
}

static enum tok
next_tok(struct lex *lx, enum lexmode mode)
{
	skip_cfws(lx);
	if (lx->i >= lx->n)
		return T_END;
	char c = lx->s[lx->i];
	if (c == ';') {
		lx->i++;
		return T_SEMI;
	}
	if (c == ')') {
		lx->i++;
		lx->broken = 1;
		return T_BAD;
	}
	if (c == '=' && mode == M_KEY) {
		lx->i++;
		return T_EQ;
	}

	/* A word: plain characters and quoted strings, glued together as in
	 * "\"john;doe\"@example.com", up to white space, ";" or a comment. */
	size_t start = lx->o;
	while (lx->i < lx->n) {
		c = lx->s[lx->i];
		if (is_ws((unsigned char)c) || c == ';' || c == '(' || c == ')' || (c == '=' && mode == M_KEY))
			break;
		lx->i++;
		if (c != '"') {
			lx->out[lx->o++] = c;
			continue;
		}
		while (lx->i < lx->n && lx->s[lx->i] != '"') {
			if (lx->s[lx->i] == '\\' && lx->i + 1 < lx->n)
				lx->i++;
			lx->out[lx->o++] = lx->s[lx->i++];
		}
		if (lx->i < lx->n)
			lx->i++; /* the closing quote */
		else
			lx->broken = 1;
	}
	lx->out[lx->o++] = '\0';
	lx->word = lx->out + start;
	return T_WORD;
}

/* Skip the rest of a result set after token t. */
static void
skip_resinfo(struct lex *lx, enum tok t)
{
	while (t != T_SEMI && t != T_END)
		t = next_tok(lx, M_VALUE);
}

static void
lex_init(struct lex *lx, const char *s)
{
	memset(lx, 0, sizeof *lx);
	lx->s = s;
	lx->n = strlen(s);
	/* Every input byte yields at most one output byte, and every word
	 * consumes at least one input byte and adds one NUL. */
	lx->out = xmalloc(2 * lx->n + 2);
}

static void
lex_free(struct lex *lx)
{
	free(lx->out);
	lx->out = NULL;
}

/* ---- the field ---- */

/* How the start of a field looked. */
enum form {
	F_OK,   /* authserv-id [version] ";" */
	F_BARE, /* authserv-id [version] and nothing else */
	F_BAD,  /* authserv-id, then something we cannot read */
};

/*
 * Read the authserv-id and the optional version up to the first ";".
 * Returns the id (inside lx->out), or NULL when the field has none (it
 * starts with "method=", as Microsoft's do). The id of a field that goes
 * wrong after it is still returned, with F_BAD, so that an unreadable field
 * from a trusted server makes the mail untrusted instead of letting the
 * fields below it count.
 */
static const char *
read_authserv(struct lex *lx, enum form *form)
{
	*form = F_BAD;
	if (next_tok(lx, M_KEY) != T_WORD || lx->word[0] == '\0')
		return NULL;
	const char *id = lx->word;
	enum tok t = next_tok(lx, M_KEY);
	if (t == T_EQ)
		return NULL;
	if (t == T_WORD) {
		/* The version: digits only (RFC 8601 section 2.2). */
		const char *v = lx->word;
		if (strspn(v, "0123456789") != strlen(v) || *v == '\0')
			return id;
		t = next_tok(lx, M_KEY);
	}
	if (t == T_END)
		*form = F_BARE;
	else if (t == T_SEMI)
		*form = F_OK;
	return id;
}

/* One result set, with the properties the trust rules look at. */
struct resinfo {
	const char *method;  /* without "/version" */
	const char *result;
	const char *hdr_d;   /* header.d */
	const char *hdr_i;   /* header.i */
	const char *hdr_from;
	int none;            /* the "none" form: no results at all */
};

/* Remember a property; a repeated one with another value makes the
 * result set ambiguous, so it is refused. */
static int
set_prop(const char **slot, const char *v)
{
	if (*slot != NULL && !ieq(*slot, v))
		return 0;
	*slot = v;
	return 1;
}

/*
 * Read the next well-formed result set. Returns 1 with *r filled, 0 at the
 * end of the field. Malformed result sets are skipped.
 */
static int
next_resinfo(struct lex *lx, struct resinfo *r)
{
	for (;;) {
		memset(r, 0, sizeof *r);
		enum tok t = next_tok(lx, M_KEY);
		if (t == T_END)
			return 0;
		if (t == T_SEMI)
			continue; /* empty, as after a trailing ";" */
		if (t != T_WORD) {
			skip_resinfo(lx, t);
			continue;
		}
		char *method = lx->word;
		t = next_tok(lx, M_KEY);
		if (t != T_EQ) {
			if ((t == T_SEMI || t == T_END) && ieq(method, "none")) {
				r->none = 1;
				return 1;
			}
			skip_resinfo(lx, t);
			continue;
		}
		if ((t = next_tok(lx, M_VALUE)) != T_WORD) {
			skip_resinfo(lx, t);
			continue;
		}
		char *slash = strchr(method, '/');
		if (slash != NULL)
			*slash = '\0';
		r->method = method;
		r->result = lx->word;

		int good = 1;
		for (;;) {
			t = next_tok(lx, M_KEY);
			if (t == T_SEMI || t == T_END)
				break;
			if (t != T_WORD) {
				good = 0;
				break;
			}
			const char *name = lx->word;
			if ((t = next_tok(lx, M_KEY)) != T_EQ || (t = next_tok(lx, M_VALUE)) != T_WORD) {
				good = 0;
				break;
			}
			if (ieq(name, "header.d"))
				good = set_prop(&r->hdr_d, lx->word);
			else if (ieq(name, "header.i"))
				good = set_prop(&r->hdr_i, lx->word);
			else if (ieq(name, "header.from"))
				good = set_prop(&r->hdr_from, lx->word);
			if (!good)
				break;
		}
		if (good && r->method[0] != '\0' && r->result[0] != '\0')
			return 1;
		skip_resinfo(lx, t);
	}
}

/* ---- the rules ---- */

/* Copy a value for the why message: cut, and with control characters and
 * non-ASCII bytes replaced, so a log line stays one short line. */
static const char *
clip(const char *s, char *buf, size_t buflen)
{
	size_t o = 0, i = 0;
	if (s == NULL)
		s = "";
	while (s[i] != '\0' && o + 1 < buflen && i < WHY_VALUE_MAX) {
		unsigned char c = (unsigned char)s[i++];
		buf[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	buf[o] = '\0';
	if (s[i] != '\0' && o >= 3) {
		buf[o - 3] = buf[o - 2] = buf[o - 1] = '.';
	}
	return buf;
}

/* Domain d without a trailing dot, into buf; returns its length or 0 when
 * it does not fit. */
static size_t
norm_domain(const char *d, char *buf, size_t buflen)
{
	size_t n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n >= buflen)
		return 0;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)lower((unsigned char)d[i]);
	buf[n] = '\0';
	return n;
}

/* Same domain, ignoring case and a trailing dot. */
static int
same_domain(const char *a, const char *b)
{
	char x[256], y[256];
	size_t nx = norm_domain(a, x, sizeof x), ny = norm_domain(b, y, sizeof y);
	return nx != 0 && nx == ny && strcmp(x, y) == 0;
}

/*
 * Relaxed alignment: signer equals the From: domain or is a parent of it
 * with at least two labels ("google.com" covers "mail.google.com", "com"
 * covers nothing).
 */
static int
aligned(const char *signer, const char *from)
{
	char s[256], f[256];
	size_t ns = norm_domain(signer, s, sizeof s), nf = norm_domain(from, f, sizeof f);
	if (ns == 0 || nf == 0 || s[0] == '.')
		return 0;
	if (ns == nf)
		return strcmp(s, f) == 0;
	if (ns > nf || f[nf - ns - 1] != '.' || strcmp(f + nf - ns, s) != 0)
		return 0;
	const char *dot = strchr(s, '.');
	return dot != NULL && dot[1] != '\0';
}

/* The DKIM signing domain of a result set: header.d, else header.i's
 * domain part. */
static const char *
dkim_domain(const struct resinfo *r)
{
	if (r->hdr_d != NULL)
		return r->hdr_d;
	if (r->hdr_i != NULL) {
		const char *at = strrchr(r->hdr_i, '@');
		return at != NULL ? at + 1 : r->hdr_i;
	}
	return NULL;
}

/* No field from a trusted server: name the first trusted id and count
 * the others, so the message stays short with a long list. */
static void
why_missing(char *const *ids, size_t nids, char *why, size_t whylen)
{
	char b[WHY_VALUE_MAX + 1];
	if (nids == 0)
		snprintf(why, whylen, "no trusted authserv-id configured (trust.authserv_id)");
	else if (nids == 1)
		snprintf(why, whylen, "no Authentication-Results from %s", clip(ids[0], b, sizeof b));
	else
		snprintf(why, whylen, "no Authentication-Results from %s or %zu other trusted authserv-id(s)",
		         clip(ids[0], b, sizeof b), nids - 1);
}

/* Judge the chosen field under the policy. */
static int
judge(struct lex *lx, const char *id, enum form form, const char *from_domain, enum dw_trust_require require, char *why,
      size_t whylen)
{
	char bid[WHY_VALUE_MAX + 1], b1[WHY_VALUE_MAX + 1], b2[WHY_VALUE_MAX + 1];
	const char *want = require == DW_TRUST_DMARC ? "dmarc" : "dkim";
	struct resinfo r;
	int seen = 0, none = 0, pass = 0, bad = 0;
	char first_bad[WHY_VALUE_MAX + 1] = "";        /* a non-pass result */
	char first_unaligned[WHY_VALUE_MAX + 1] = ""; /* a pass for the wrong domain */

	clip(id, bid, sizeof bid);
	if (require == DW_TRUST_DKIM && (from_domain == NULL || from_domain[0] == '\0')) {
		snprintf(why, whylen, "no From: domain to match %s's dkim results against", bid);
		return 0;
	}
	while (form == F_OK && next_resinfo(lx, &r)) {
		if (r.none) {
			none = 1;
			continue;
		}
		if (!ieq(r.method, want))
			continue;
		seen++;
		if (!ieq(r.result, "pass")) {
			bad++;
			if (first_bad[0] == '\0')
				clip(r.result, first_bad, sizeof first_bad);
			continue;
		}
		if (require == DW_TRUST_DMARC) {
			/* The server judged the From: it saw; if it names another domain
			 * than the one we read, the two do not describe the same mail. */
			if (r.hdr_from != NULL && from_domain != NULL && !same_domain(r.hdr_from, from_domain)) {
				if (first_unaligned[0] == '\0')
					clip(r.hdr_from, first_unaligned, sizeof first_unaligned);
				bad++;
				continue;
			}
			pass++;
		} else {
			const char *d = dkim_domain(&r);
			if (d != NULL && aligned(d, from_domain)) {
				pass++;
			} else if (first_unaligned[0] == '\0') {
				clip(d != NULL ? d : "no domain", first_unaligned, sizeof first_unaligned);
			}
		}
	}

	if (form == F_BAD || lx->broken) {
		snprintf(why, whylen, "%s wrote an Authentication-Results field that cannot be read", bid);
		return 0;
	}

	if (require == DW_TRUST_DMARC) {
		/* Every dmarc verdict must be pass: two verdicts that disagree (two
		 * From: fields?) are not something to trust. */
		if (seen > 0 && pass > 0 && bad == 0) {
			snprintf(why, whylen, "%s says dmarc=pass", bid);
			return 1;
		}
		if (first_bad[0] != '\0')
			snprintf(why, whylen, "%s says dmarc=%s", bid, first_bad);
		else if (first_unaligned[0] != '\0')
			snprintf(why, whylen, "%s says dmarc=pass for header.from=%s, but the From: domain is %s", bid,
			         first_unaligned, clip(from_domain, b2, sizeof b2));
		else
			snprintf(why, whylen, "%s gives no dmarc result%s", bid, none ? " (says none)" : "");
		return 0;
	}

	/* DKIM: one aligned pass is enough, as for DMARC itself; failing
	 * signatures beside it do not matter. */
	if (pass > 0) {
		snprintf(why, whylen, "%s says dkim=pass for %s", bid, clip(from_domain, b1, sizeof b1));
		return 1;
	}
	if (first_unaligned[0] != '\0')
		snprintf(why, whylen, "%s says dkim=pass only for %s, which is not %s or a parent of it", bid,
		         first_unaligned, clip(from_domain, b2, sizeof b2));
	else if (first_bad[0] != '\0')
		snprintf(why, whylen, "%s says dkim=%s", bid, first_bad);
	else
		snprintf(why, whylen, "%s gives no dkim result%s", bid, none ? " (says none)" : "");
	return 0;
}

int
dw_trust_check(char *const *ar, size_t nar, const char *from_domain, char *const *authserv_ids, size_t nids,
               enum dw_trust_require require, char *why, size_t whylen)
{
	char dummy[1];
	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof dummy;
	}
	why[0] = '\0';
	if (require == DW_TRUST_NONE)
		return 1;
	if (require != DW_TRUST_DMARC && require != DW_TRUST_DKIM) {
		snprintf(why, whylen, "unknown trust requirement %d", (int)require);
		return 0;
	}

	/* The topmost field from a trusted server is the only one that counts:
	 * ours is prepended last, so everything below it arrived with the mail
	 * and may have been written by the sender (RFC 8601 section 7.1). */
	for (size_t i = 0; i < nar; i++) {
		if (ar[i] == NULL)
			continue;
		struct lex lx;
		enum form form;
		lex_init(&lx, ar[i]);
		const char *id = read_authserv(&lx, &form);
		int trusted = 0;
		for (size_t k = 0; id != NULL && k < nids && !trusted; k++)
			trusted = authserv_ids[k] != NULL && ieq(id, authserv_ids[k]);
		if (!trusted) {
			lex_free(&lx);
			continue;
		}
		int rc = judge(&lx, id, form, from_domain, require, why, whylen);
		lex_free(&lx);
		return rc;
	}
	why_missing(authserv_ids, nids, why, whylen);
	return 0;
}
