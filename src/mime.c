/*
 * mime.c - stage 1: find the report payloads in one RFC 5322 message.
 *
 * libetpan parses the message; we walk the tree it builds with a visitor
 * that returns continue/stop/prune, transfer-decode every leaf and keep the
 * ones whose bytes sniff as gzip, zip or XML. Labels are only compared with
 * what the bytes are, to record quirks. See dw/mime.h for the contract.
 *
 * libetpan has no limits of its own: it recurses once per nested multipart
 * or message (a deep enough nest overflows the stack), rescans a
 * multipart's whole body at every nesting level (time is depth x size) and
 * allocates a few hundred bytes per header field, parameter and part. So before handing it a message we scan the
 * bytes once and refuse messages that could make it build an outsized tree
 * (prescan() below). Nothing libetpan allocates escapes this file.
 */
#include "dw/mime.h"

#include <libetpan/libetpan.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How many encoded bytes of a base64 or quoted-printable part we decode
 * just to sniff it. Big attachments that are not reports (PDFs, images)
 * are then never decoded whole. */
#define SNIFF_WINDOW 8192

/* libetpan's time on a mail is about (nested multiparts) x (size): a mail
 * may have DW_MIME_CONTAINERS_MAX containers up to this product, and never
 * fewer than CONTAINERS_MIN (8 for 64 MiB: ~3 s at worst). */
#define SCAN_BUDGET ((size_t)512 << 20)
#define CONTAINERS_MIN 8

#define LABEL_QUIRK_MAX 64    /* characters of a Content-Type kept in a quirk */
#define FILENAME_MAX_LEN 255  /* bytes of a filename we keep */

enum walk_verdict {
	WALK_CONTINUE, /* go on, into this part's children too */
	WALK_STOP,     /* end the whole walk */
	WALK_PRUNE,    /* skip this part's children, go on with its siblings */
};

/* What prescan() counted so far; shared by every (re)parse of one mail. */
struct budget {
	size_t containers;   /* Content-Type fields naming a multipart or message type */
	size_t boundaries;   /* lines starting with "--" */
	size_t header_bytes; /* bytes that libetpan may parse as header fields */
	size_t containers_max; /* cap on containers for this mail (see dw_mime_parse) */
};

/* State of one dw_mime_parse call, handed to the visitor. */
struct scan {
	const struct dw_limits *limits;
	struct dw_mail *mail;
	struct budget budget;
	size_t payloads_cap; /* allocated entries of mail->payloads */
	int rc;              /* first error met during the walk */
	char *err;
	size_t errlen;
};

/* ---- small string helpers (ASCII only, never locale dependent) ---- */

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int
ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int d = lower((unsigned char)*a) - lower((unsigned char)*b);
		if (d != 0 || *a == '\0')
			return d;
	}
}

/* Case-insensitive "does buf[0..len) start with prefix". */
static int
has_prefix_ci(const unsigned char *buf, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	if (len < n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(buf[i]) != lower((unsigned char)prefix[i]))
			return 0;
	return 1;
}

/* Case-insensitive search for word in buf[0..len). */
static int
contains_ci(const unsigned char *buf, size_t len, const char *word)
{
	size_t n = strlen(word);
	for (size_t i = 0; i + n <= len; i++)
		if (has_prefix_ci(buf + i, len - i, word))
			return 1;
	return 0;
}

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Unfold a header value: a line break and the white space around it become
 * one space (RFC 5322 section 2.2.3 unfolding, plus folding whitespace
 * collapsed), and the value is trimmed. Returns a new string.
 */
static char *
unfold(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1);
	size_t o = 0, i = 0;

	while (i < n && is_space((unsigned char)s[i]))
		i++;
	while (i < n) {
		if (s[i] == '\r' || s[i] == '\n') {
			while (o > 0 && is_wsp((unsigned char)out[o - 1]))
				o--;
			while (i < n && is_space((unsigned char)s[i]))
				i++;
			if (i < n)
				out[o++] = ' ';
			continue;
		}
		out[o++] = s[i++];
	}
	while (o > 0 && is_space((unsigned char)out[o - 1]))
		o--;
	out[o] = '\0';
	return out;
}

/* Copy at most max bytes of s, turning control characters into '_' so the
 * value can be logged safely. */
static char *
clean_copy(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		n = max;
	char *out = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '_';
	return out;
}

/* ---- sniffing ---- */

/* UTF-16 XML: a byte order mark, optional white space, then '<'; or, without
 * a mark, "<?" in either byte order. A mark alone could be any UTF-16 text. */
static int
sniff_utf16(const unsigned char *b, size_t len)
{
	if (len >= 4 && ((b[0] == '<' && b[1] == 0 && b[2] == '?' && b[3] == 0) ||
	                 (b[0] == 0 && b[1] == '<' && b[2] == 0 && b[3] == '?')))
		return 1;
	if (len < 4 || !((b[0] == 0xff && b[1] == 0xfe) || (b[0] == 0xfe && b[1] == 0xff)))
		return 0;
	int le = b[0] == 0xff;
	for (size_t i = 2; i + 1 < len; i += 2) {
		unsigned lo = le ? b[i] : b[i + 1], hi = le ? b[i + 1] : b[i];
		if (hi != 0)
			return 0;
		if (lo == '<')
			return 1;
		if (!is_space((int)lo))
			return 0;
	}
	return 0;
}

int
dw_sniff(const unsigned char *buf, size_t len)
{
	if (buf == NULL)
		return 0;
	if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
		return DW_PAYLOAD_GZIP;
	if (len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0)
		return DW_PAYLOAD_ZIP;
	if (sniff_utf16(buf, len))
		return DW_PAYLOAD_XML;

	size_t i = 0;
	if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
		i = 3;
	for (;;) {
		while (i < len && is_space(buf[i]))
			i++;
		if (len - i >= 5 && memcmp(buf + i, "<?xml", 5) == 0)
			return DW_PAYLOAD_XML;
		if (len - i >= 9 && memcmp(buf + i, "<feedback", 9) == 0)
			return DW_PAYLOAD_XML;
		/* Some generators put a comment before the root element; skip it.
		 * Each pass moves i forward, so this stays linear. */
		if (len - i >= 4 && memcmp(buf + i, "<!--", 4) == 0) {
			size_t j = i + 4;
			while (j + 3 <= len && memcmp(buf + j, "-->", 3) != 0)
				j++;
			if (j + 3 > len)
				return 0;
			i = j + 3;
			continue;
		}
		return 0;
	}
}

/* ---- prescan: bound what libetpan will build ---- */

/* A line that cannot start or continue a header field: it has no ':' and
 * the next line does not continue it (a field name, its optional comment
 * and the colon may only be split across lines by folding). */
static int
surely_not_field(const unsigned char *ln, size_t n, const unsigned char *next, size_t nextlen)
{
	if (memchr(ln, ':', n) != NULL)
		return 0;
	return nextlen == 0 || !is_wsp(next[0]);
}

/* Is this line the start of a Content-Type field? */
static int
is_content_type(const unsigned char *ln, size_t n)
{
	if (!has_prefix_ci(ln, n, "content-type"))
		return 0;
	size_t k = 12;
	while (k < n && is_wsp(ln[k]))
		k++;
	return k == n || ln[k] == ':' || ln[k] == '(';
}

/*
 * One pass over the message, counting into b what libetpan could turn into
 * objects, as an upper bound that needs no parsing:
 *   - header bytes: a header block starts at the top of the message, after
 *     any line starting with "--" (a boundary, or something taken for one),
 *     and after the empty line ending a header block that named a message
 *     type (message/rfc822 bodies begin with headers; a multipart/digest
 *     makes every part a message, so once one is seen, every block counts).
 *     It runs to the next empty line or to a line that surely is no field.
 *   - containers: Content-Type fields that mention "multipart" or
 *     "message"; libetpan's nesting depth cannot exceed twice that.
 *   - boundaries: lines starting with "--"; no part exists without one.
 * Returns DW_OK or DW_E_LIMIT with a message when a cap is passed.
 */
static int
prescan(const unsigned char *p, size_t len, struct budget *b, char *err, size_t errlen)
{
	int in_header = 1;   /* inside a (possible) header block */
	int ctype = 0;       /* the current field is Content-Type */
	int counted = 0;     /* ... and was counted as a container */
	int block_msg = 0;   /* this header block names a message type */
	int digest = 0;      /* a multipart/digest was seen */
	size_t i = 0;

	while (i < len) {
		const unsigned char *ln = p + i;
		const unsigned char *nl = memchr(ln, '\n', len - i);
		size_t full = nl ? (size_t)(nl - ln) + 1 : len - i; /* with the line end */
		size_t n = full;                                        /* without it */
		while (n > 0 && (ln[n - 1] == '\n' || ln[n - 1] == '\r'))
			n--;
		const unsigned char *next = ln + full;
		size_t nextlen = len - i - full;

		if (n >= 2 && ln[0] == '-' && ln[1] == '-') {
			b->boundaries++;
			in_header = 1;
			ctype = counted = block_msg = 0;
		} else if (in_header) {
			if (n == 0) {
				/* The block ends; a message body starts with another. */
				in_header = block_msg || digest;
				ctype = counted = block_msg = 0;
			} else if (is_wsp(ln[0]) || !surely_not_field(ln, n, next, nextlen)) {
				b->header_bytes += full;
				if (!is_wsp(ln[0])) { /* a new field begins */
					ctype = is_content_type(ln, n);
					counted = 0;
				}
				if (ctype) {
					int msgtype = contains_ci(ln, n, "message");
					if (!counted && (msgtype || contains_ci(ln, n, "multipart"))) {
						b->containers++;
						counted = 1;
					}
					if (msgtype)
						block_msg = 1;
					if (contains_ci(ln, n, "digest"))
						digest = 1;
				}
			} else {
				in_header = 0;
				ctype = counted = block_msg = 0;
			}
		}
		i += full;
		/* Past a cap the verdict is known: stop reading. */
		if (b->containers > b->containers_max || b->boundaries > DW_MIME_PARTS_MAX ||
		    b->header_bytes > DW_MIME_HEADER_MAX)
			break;
	}

	if (b->containers > b->containers_max)
		return dw_err(err, errlen, DW_E_LIMIT,
		              "message has more than %zu multipart/message containers (limit "
		              "DW_MIME_CONTAINERS_MAX, lower for messages over %u MiB)",
		              b->containers_max, (unsigned)(SCAN_BUDGET / DW_MIME_CONTAINERS_MAX >> 20));
	if (b->boundaries > DW_MIME_PARTS_MAX)
		return dw_err(err, errlen, DW_E_LIMIT,
		              "message has more than %d MIME boundary lines (limit DW_MIME_PARTS_MAX)",
		              DW_MIME_PARTS_MAX);
	if (b->header_bytes > DW_MIME_HEADER_MAX) {
		char sz[32];
		return dw_err(err, errlen, DW_E_LIMIT,
		              "message has more than %s of header fields (limit DW_MIME_HEADER_MAX)",
		              dw_fmt_size(DW_MIME_HEADER_MAX, sz, sizeof sz));
	}
	return DW_OK;
}

/* ---- libetpan helpers ---- */

/* "type/subtype" in lower case, or NULL when the part has no type. */
static char *
content_type_of(const struct mailmime *part)
{
	const struct mailmime_content *ct = part->mm_content_type;
	const char *type = NULL;

	if (ct == NULL || ct->ct_type == NULL)
		return NULL;
	if (ct->ct_type->tp_type == MAILMIME_TYPE_DISCRETE_TYPE) {
		const struct mailmime_discrete_type *d = ct->ct_type->tp_data.tp_discrete_type;
		switch (d->dt_type) {
		case MAILMIME_DISCRETE_TYPE_TEXT: type = "text"; break;
		case MAILMIME_DISCRETE_TYPE_IMAGE: type = "image"; break;
		case MAILMIME_DISCRETE_TYPE_AUDIO: type = "audio"; break;
		case MAILMIME_DISCRETE_TYPE_VIDEO: type = "video"; break;
		case MAILMIME_DISCRETE_TYPE_APPLICATION: type = "application"; break;
		case MAILMIME_DISCRETE_TYPE_EXTENSION: type = d->dt_extension; break;
		}
	} else if (ct->ct_type->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE) {
		const struct mailmime_composite_type *c = ct->ct_type->tp_data.tp_composite_type;
		switch (c->ct_type) {
		case MAILMIME_COMPOSITE_TYPE_MESSAGE: type = "message"; break;
		case MAILMIME_COMPOSITE_TYPE_MULTIPART: type = "multipart"; break;
		case MAILMIME_COMPOSITE_TYPE_EXTENSION: type = c->ct_token; break;
		}
	}
	if (type == NULL || ct->ct_subtype == NULL)
		return NULL;
	/* Both tokens come from the message: keep them short for logs. */
	char *s = xasprintf("%.100s/%.100s", type, ct->ct_subtype);
	for (char *q = s; *q; q++)
		*q = (char)lower((unsigned char)*q);
	return s;
}

/* A Content-Type parameter, matched case-insensitively; borrowed or NULL. */
static const char *
content_param(const struct mailmime *part, const char *name)
{
	if (part->mm_content_type == NULL || part->mm_content_type->ct_parameters == NULL)
		return NULL;
	for (clistiter *it = clist_begin(part->mm_content_type->ct_parameters); it != NULL;
	     it = clist_next(it)) {
		const struct mailmime_parameter *pa = clist_content(it);
		if (pa->pa_name != NULL && pa->pa_value != NULL && ascii_casecmp(pa->pa_name, name) == 0)
			return pa->pa_value;
	}
	return NULL;
}

/* Compare a parameter value with want, ignoring case and surrounding quotes. */
static int
param_is(const char *value, const char *want)
{
	if (value == NULL)
		return 0;
	size_t n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value++;
		n -= 2;
	}
	return n == strlen(want) && has_prefix_ci((const unsigned char *)value, n, want);
}

/* Decode RFC 2047 encoded words to UTF-8; a new string, or NULL on failure. */
static char *
decode_2047(const char *s)
{
	size_t idx = 0;
	char *res = NULL;
	/* Without an encoded word there is nothing to decode: skip libetpan's
	 * charset conversion (an iconv_open per word) for plain ASCII. */
	int plain = strstr(s, "=?") == NULL;
	for (const unsigned char *c = (const unsigned char *)s; plain && *c; c++)
		if (*c >= 0x80)
			plain = 0;
	if (plain)
		return xstrdup(s);
	if (mailmime_encoded_phrase_parse("utf-8", s, strlen(s), &idx, "utf-8", &res) !=
	        MAILIMF_NO_ERROR ||
	    res == NULL)
		return NULL;
	char *out = xstrdup(res);
	free(res);
	return out;
}

/* Decode an RFC 2231 extended value ("charset'lang'percent-encoded"). Only
 * UTF-8 and ASCII are worth the trouble: the filename is informational. */
static char *
decode_2231(const char *v)
{
	const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
	if (q2 == NULL)
		return xstrdup(v);
	size_t n = strlen(q2 + 1);
	char *out = xmalloc(n + 1), *o = out;
	static const char hex[] = "0123456789abcdef";
	for (const char *s = q2 + 1; *s; s++) {
		const char *h1, *h2;
		if (*s == '%' && s[1] && s[2] && (h1 = strchr(hex, lower((unsigned char)s[1]))) &&
		    (h2 = strchr(hex, lower((unsigned char)s[2])))) {
			*o++ = (char)((h1 - hex) << 4 | (h2 - hex));
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* The part's filename: Content-Disposition filename=, else Content-Type
 * name=, either possibly RFC 2231 (filename*=) or RFC 2047 encoded. */
static char *
filename_of(const struct mailmime *part)
{
	const char *name = NULL, *ext = NULL;

	if (part->mm_mime_fields != NULL) {
		for (clistiter *it = clist_begin(part->mm_mime_fields->fld_list); it != NULL;
		     it = clist_next(it)) {
			const struct mailmime_field *f = clist_content(it);
			if (f->fld_type != MAILMIME_FIELD_DISPOSITION || f->fld_data.fld_disposition == NULL ||
			    f->fld_data.fld_disposition->dsp_parms == NULL)
				continue;
			for (clistiter *jt = clist_begin(f->fld_data.fld_disposition->dsp_parms); jt != NULL;
			     jt = clist_next(jt)) {
				const struct mailmime_disposition_parm *dp = clist_content(jt);
				if (dp->pa_type == MAILMIME_DISPOSITION_PARM_FILENAME && name == NULL)
					name = dp->pa_data.pa_filename;
				else if (dp->pa_type == MAILMIME_DISPOSITION_PARM_PARAMETER && ext == NULL &&
				         dp->pa_data.pa_parameter->pa_name != NULL &&
				         ascii_casecmp(dp->pa_data.pa_parameter->pa_name, "filename*") == 0)
					ext = dp->pa_data.pa_parameter->pa_value;
			}
		}
	}
	if (name == NULL && ext == NULL) {
		name = content_param(part, "name");
		if (name == NULL)
			ext = content_param(part, "name*");
	}

	char *raw;
	if (name != NULL) {
		size_t n = strlen(name);
		if (n >= 2 && name[0] == '"' && name[n - 1] == '"')
			raw = xstrndup(name + 1, n - 2);
		else
			raw = xstrdup(name);
		if (strstr(raw, "=?") != NULL) {
			char *d = decode_2047(raw);
			if (d != NULL) {
				free(raw);
				raw = d;
			}
		}
	} else if (ext != NULL)
		raw = decode_2231(ext);
	else
		return NULL;

	char *out = clean_copy(raw, FILENAME_MAX_LEN);
	free(raw);
	if (out[0] == '\0') {
		free(out);
		return NULL;
	}
	return out;
}

/* Does the labelled Content-Type fit the sniffed kind? */
static int
label_fits(const char *ctype, int kind)
{
	static const char *const gzip[] = {"application/gzip", "application/x-gzip",
	                                   "application/x-gzip-compressed", "application/gzip-compressed",
	                                   "application/x-gunzip", "application/tlsrpt+gzip", NULL};
	static const char *const zip[] = {"application/zip", "application/x-zip-compressed",
	                                  "application/x-zip", "application/zip-compressed", NULL};
	const char *const *list = kind == DW_PAYLOAD_GZIP ? gzip : kind == DW_PAYLOAD_ZIP ? zip : NULL;

	if (ctype == NULL)
		return 0;
	if (list != NULL) {
		for (; *list != NULL; list++)
			if (strcmp(ctype, *list) == 0)
				return 1;
		return 0;
	}
	/* XML: text/xml, application/xml and any +xml type. */
	size_t n = strlen(ctype);
	return strcmp(ctype, "text/xml") == 0 || strcmp(ctype, "application/xml") == 0 ||
	       (n > 4 && strcmp(ctype + n - 4, "+xml") == 0);
}

static const char *
kind_name(int kind)
{
	switch (kind) {
	case DW_PAYLOAD_GZIP: return "gzip";
	case DW_PAYLOAD_ZIP: return "zip";
	case DW_PAYLOAD_XML: return "xml";
	}
	return "none";
}

/*
 * Run libetpan's transfer decoder. Its quoted-printable decoder reads one
 * byte past the end when the text ends in "=" and one more character that
 * is not a line break (a cut escape); such a tail is malformed anyway, so
 * the last character is dropped before decoding.
 */
static int
etpan_decode(const char *raw, size_t len, int enc, char **res, size_t *n)
{
	size_t idx = 0;
	if (enc == MAILMIME_MECHANISM_QUOTED_PRINTABLE && len >= 2 && raw[len - 2] == '=' &&
	    raw[len - 1] != '\r' && raw[len - 1] != '\n')
		len--;
	*res = NULL;
	*n = 0;
	if (mailmime_part_parse(raw, len, &idx, enc, res, n) != MAILIMF_NO_ERROR || *res == NULL)
		return -1;
	return 0;
}

/* Transfer-decode raw[0..len) into a new malloc'd buffer of ours. */
static int
decode_body(const char *raw, size_t len, int enc, unsigned char **out, size_t *outlen)
{
	if (enc != MAILMIME_MECHANISM_BASE64 && enc != MAILMIME_MECHANISM_QUOTED_PRINTABLE) {
		*out = xmalloc(len);
		memcpy(*out, raw, len);
		*outlen = len;
		return 0;
	}
	size_t n;
	char *res;
	if (etpan_decode(raw, len, enc, &res, &n) != 0)
		return -1;
	*out = xmalloc(n);
	memcpy(*out, res, n);
	*outlen = n;
	mailmime_decoded_part_free(res);
	if (n > len) {
		/* libetpan's quoted-printable decoder writes every line break as
		 * CRLF, so a body of bare LFs can come out up to twice as long.
		 * Only then, turn CRLF back into LF: the result is no longer than
		 * the encoded text, which keeps every payload within the size of
		 * the message it came from. */
		size_t o = 0;
		for (size_t i = 0; i < n; i++)
			if (!((*out)[i] == '\r' && i + 1 < n && (*out)[i + 1] == '\n'))
				(*out)[o++] = (*out)[i];
		*outlen = o;
	}
	return 0;
}

/* Sniff a transfer-encoded body from a decoded prefix only. */
static int
sniff_encoded(const char *raw, size_t len, int enc)
{
	size_t n;
	char *res;
	if (len > SNIFF_WINDOW)
		len = SNIFF_WINDOW;
	if (etpan_decode(raw, len, enc, &res, &n) != 0)
		return 0;
	int kind = dw_sniff((const unsigned char *)res, n);
	mailmime_decoded_part_free(res);
	return kind;
}

/* An identity-encoded body that is really base64 of a payload: the
 * Content-Transfer-Encoding header was forgotten. Recognised by the base64
 * spelling of the magic bytes ("\x1f\x8b\x08", "PK\3\4", "<?xml", BOM+"<?x"). */
static int
looks_base64_payload(const char *raw, size_t len)
{
	static const char *const starts[] = {"H4sI", "UEsDB", "PD94bWw", "77u/PD94", NULL};
	size_t i = 0;
	while (i < len && is_space((unsigned char)raw[i]))
		i++;
	for (const char *const *s = starts; *s != NULL; s++)
		if (len - i >= strlen(*s) && memcmp(raw + i, *s, strlen(*s)) == 0)
			return 1;
	return 0;
}

/* ---- the walk ---- */

/*
 * Visit every part below (and including) part in MIME order. depth counts
 * the message/rfc822 levels above the part. The visitor's verdict decides
 * whether to descend (WALK_CONTINUE), skip the children (WALK_PRUNE) or end
 * everything (WALK_STOP, passed up). Recursion depth is bounded because
 * prescan() bounded the nesting libetpan could build.
 */
static int
mime_walk(struct mailmime *part, unsigned depth, int (*visit)(struct mailmime *, unsigned, void *),
          void *arg)
{
	int v = visit(part, depth, arg);
	if (v == WALK_STOP)
		return WALK_STOP;
	if (v == WALK_PRUNE)
		return WALK_CONTINUE;
	if (part->mm_type == MAILMIME_MULTIPLE) {
		for (clistiter *it = clist_begin(part->mm_data.mm_multipart.mm_mp_list); it != NULL;
		     it = clist_next(it))
			if (mime_walk(clist_content(it), depth, visit, arg) == WALK_STOP)
				return WALK_STOP;
	} else if (part->mm_type == MAILMIME_MESSAGE && part->mm_data.mm_message.mm_msg_mime != NULL) {
		return mime_walk(part->mm_data.mm_message.mm_msg_mime, depth + 1, visit, arg);
	}
	return WALK_CONTINUE;
}

static int visit_part(struct mailmime *part, unsigned depth, void *arg);

static int
add_payload(struct scan *sc, int kind, unsigned char *data, size_t len, const struct mailmime *part,
            const char *ctype, unsigned depth)
{
	struct dw_mail *m = sc->mail;
	if (m->npayloads >= DW_MIME_PAYLOADS_MAX) {
		free(data);
		sc->rc = dw_err(sc->err, sc->errlen, DW_E_LIMIT,
		                "message has more than %d report attachments (limit DW_MIME_PAYLOADS_MAX)",
		                DW_MIME_PAYLOADS_MAX);
		return WALK_STOP;
	}
	if (m->npayloads == sc->payloads_cap) {
		sc->payloads_cap = sc->payloads_cap ? sc->payloads_cap * 2 : 4;
		m->payloads = xreallocarray(m->payloads, sc->payloads_cap, sizeof *m->payloads);
	}
	struct dw_payload *p = &m->payloads[m->npayloads++];
	p->kind = kind;
	p->data = data;
	p->len = len;
	p->filename = filename_of(part);
	p->content_type = xstrdup(ctype);
	p->depth = depth;
	if (!label_fits(ctype, kind))
		dw_quirks_add(&m->quirks, "mime-label:%.*s-is-%s", LABEL_QUIRK_MAX,
		              ctype ? ctype : "none", kind_name(kind));
	return WALK_CONTINUE;
}

/* A message/rfc822 part that was base64 or quoted-printable encoded (which
 * RFC 2046 forbids): libetpan leaves it a leaf, so decode and parse it
 * ourselves, against the same budget. */
static int
visit_encoded_message(struct scan *sc, const char *raw, size_t len, int enc, unsigned depth)
{
	unsigned char *msg;
	size_t n;
	struct mailmime *mime = NULL;
	size_t idx = 0;
	int v = WALK_CONTINUE;

	dw_quirks_add(&sc->mail->quirks, "rfc822-transfer-encoded");
	if (depth + 1 > sc->limits->rfc822_depth_max) {
		dw_quirks_add(&sc->mail->quirks, "rfc822-too-deep");
		return WALK_PRUNE;
	}
	if (decode_body(raw, len, enc, &msg, &n) != 0)
		return WALK_CONTINUE;
	sc->rc = prescan(msg, n, &sc->budget, sc->err, sc->errlen);
	if (sc->rc != DW_OK) {
		free(msg);
		return WALK_STOP;
	}
	if (n > 0 && mailmime_parse((const char *)msg, n, &idx, &mime) == MAILIMF_NO_ERROR) {
		if (mime->mm_type == MAILMIME_MESSAGE && mime->mm_data.mm_message.mm_msg_mime != NULL)
			v = mime_walk(mime->mm_data.mm_message.mm_msg_mime, depth + 1, visit_part, sc);
		mailmime_free(mime);
	}
	free(msg);
	return v == WALK_STOP ? WALK_STOP : WALK_PRUNE;
}

static int
visit_leaf(struct scan *sc, struct mailmime *part, unsigned depth, const char *ctype)
{
	const struct mailmime_data *body = part->mm_data.mm_single;
	if (body == NULL || body->dt_type != MAILMIME_DATA_TEXT || body->dt_data.dt_text.dt_data == NULL)
		return WALK_CONTINUE;
	const char *raw = body->dt_data.dt_text.dt_data;
	size_t len = body->dt_data.dt_text.dt_length;
	int enc = body->dt_encoding;
	int encoded = enc == MAILMIME_MECHANISM_BASE64 || enc == MAILMIME_MECHANISM_QUOTED_PRINTABLE;

	if (ctype != NULL && strcmp(ctype, "message/rfc822") == 0 && encoded)
		return visit_encoded_message(sc, raw, len, enc, depth);

	int kind;
	if (encoded)
		kind = sniff_encoded(raw, len, enc);
	else {
		kind = dw_sniff((const unsigned char *)raw, len);
		if (kind == 0 && looks_base64_payload(raw, len)) {
			kind = sniff_encoded(raw, len, MAILMIME_MECHANISM_BASE64);
			if (kind != 0) {
				enc = MAILMIME_MECHANISM_BASE64;
				dw_quirks_add(&sc->mail->quirks, "mime-base64-unlabelled");
			}
		}
	}
	if (kind == 0)
		return WALK_CONTINUE;

	unsigned char *data;
	size_t n;
	if (decode_body(raw, len, enc, &data, &n) != 0)
		return WALK_CONTINUE;
	/* The prefix said payload; the whole must agree (it can only differ for
	 * pathological quoted-printable). */
	kind = dw_sniff(data, n);
	if (kind == 0) {
		free(data);
		return WALK_CONTINUE;
	}
	return add_payload(sc, kind, data, n, part, ctype, depth);
}

/* Raise the report-type flags the caller uses to name unsupported mail. */
static void
note_report_type(struct dw_mail *m, const struct mailmime *part, const char *ctype)
{
	if (ctype == NULL)
		return;
	if (strcmp(ctype, "multipart/report") == 0) {
		const char *rt = content_param(part, "report-type");
		if (param_is(rt, "feedback-report"))
			m->is_feedback_report = 1;
		else if (param_is(rt, "tlsrpt"))
			m->is_tls_report = 1;
	} else if (strcmp(ctype, "message/feedback-report") == 0)
		m->is_feedback_report = 1;
	else if (strcmp(ctype, "application/tlsrpt+gzip") == 0 ||
	         strcmp(ctype, "application/tlsrpt+json") == 0)
		m->is_tls_report = 1;
}

static int
visit_part(struct mailmime *part, unsigned depth, void *arg)
{
	struct scan *sc = arg;
	char *ctype = content_type_of(part);
	int v = WALK_CONTINUE;

	note_report_type(sc->mail, part, ctype);
	switch (part->mm_type) {
	case MAILMIME_SINGLE:
		v = visit_leaf(sc, part, depth, ctype);
		break;
	case MAILMIME_MESSAGE:
		/* The attached message's own parts sit one level deeper. */
		if (depth + 1 > sc->limits->rfc822_depth_max) {
			dw_quirks_add(&sc->mail->quirks, "rfc822-too-deep");
			v = WALK_PRUNE;
		}
		break;
	default:
		break;
	}
	free(ctype);
	return v;
}

/* ---- top-level header fields ---- */

/* Howard Hinnant's days-from-civil: days since 1970-01-01 (proleptic
 * Gregorian), written out here for a date libetpan parsed. */
static long long
days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * RFC 5322 dates, section 3.3 with the obsolete syntax of 4.3, written out
 * here because libetpan's parser reads "UT" and "UTC" as +0001 and misses
 * lower-case zone names. Comments and folding white space may appear
 * between the tokens; the day of the week is optional and not checked
 * against the date; seconds are optional. Zones: +hhmm/-hhmm, UT, UTC, GMT,
 * Z and the US names (EST, EDT, CST, CDT, MST, MDT, PST, PDT); military
 * letters, other names and a missing zone count as -0000 (UTC, as 4.3
 * says for zones whose meaning is not known). Text after the zone is
 * ignored (MTAs append "(PST)" and worse).
 */
static const char *
skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		int depth = 0;
		do {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			p++;
		} while (*p != '\0' && depth > 0);
	}
}

/* Up to max digits; returns how many were read (0: none). */
static int
read_num(const char **pp, int max, int *v)
{
	const char *p = *pp;
	int n = 0, x = 0;
	while (n < max && *p >= '0' && *p <= '9') {
		x = x * 10 + (*p++ - '0');
		n++;
	}
	if (*p >= '0' && *p <= '9')
		return 0; /* too many digits */
	*pp = p;
	*v = x;
	return n;
}

/* A word of letters, lower-cased into w (at most cap - 1 of them). */
static size_t
read_word(const char **pp, char *w, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
		if (n + 1 >= cap)
			return 0;
		w[n++] = (char)lower((unsigned char)*p++);
	}
	w[n] = '\0';
	*pp = p;
	return n;
}

long long
dw_mail_date(const char *v)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	static const char wdays[] = "montuewedthufrisatsun";
	static const struct {
		const char *name;
		int off; /* minutes east of UTC */
	} zones[] = {{"ut", 0},        {"utc", 0},       {"gmt", 0},       {"z", 0},
	             {"est", -5 * 60}, {"edt", -4 * 60}, {"cst", -6 * 60}, {"cdt", -5 * 60},
	             {"mst", -7 * 60}, {"mdt", -6 * 60}, {"pst", -8 * 60}, {"pdt", -7 * 60}};
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	char w[16];
	int day, mon = 0, year, hour, min, sec = 0, off = 0;

	if (v == NULL)
		return -1;
	const char *p = skip_cfws(v);
	if (read_word(&p, w, sizeof w) > 0) {
		/* "Tue," or "Tuesday,": only a day name may come first. */
		int known = 0;
		for (int i = 0; i < 7 && strlen(w) >= 3; i++)
			if (memcmp(wdays + 3 * i, w, 3) == 0)
				known = 1;
		if (!known)
			return -1;
		p = skip_cfws(p);
		if (*p++ != ',')
			return -1;
		p = skip_cfws(p);
	}
	if (read_num(&p, 2, &day) == 0)
		return -1;
	p = skip_cfws(p);
	if (read_word(&p, w, sizeof w) != 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (memcmp(months + 3 * i, w, 3) == 0)
			mon = i + 1;
	if (mon == 0)
		return -1;
	p = skip_cfws(p);
	int ny = read_num(&p, 4, &year);
	if (ny < 2)
		return -1;
	if (ny == 2)
		year += year < 50 ? 2000 : 1900; /* section 4.3 */
	else if (ny == 3)
		year += 1900;
	p = skip_cfws(p);
	if (read_num(&p, 2, &hour) == 0)
		return -1;
	p = skip_cfws(p);
	if (*p++ != ':')
		return -1;
	p = skip_cfws(p);
	if (read_num(&p, 2, &min) != 2)
		return -1;
	const char *q = skip_cfws(p);
	if (*q == ':') {
		q = skip_cfws(q + 1);
		if (read_num(&q, 2, &sec) != 2)
			return -1;
		p = q;
	}
	p = skip_cfws(p);
	if (*p == '+' || *p == '-') {
		int z;
		const char *d = p + 1;
		if (read_num(&d, 4, &z) != 4 || z % 100 > 59)
			return -1;
		off = (z / 100) * 60 + z % 100;
		if (*p == '-')
			off = -off;
	} else if (read_word(&p, w, sizeof w) > 0) {
		for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
			if (strcmp(w, zones[i].name) == 0)
				off = zones[i].off;
	}

	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	int dim = mdays[mon - 1] + (mon == 2 && leap);
	if (year < 1900 || year > 9999 || day < 1 || day > dim || hour > 23 || min > 59 || sec > 60)
		return -1;
	return days_from_civil(year, mon, day) * 86400 + hour * 3600LL + min * 60LL + sec - off * 60LL;
}

static char *
parse_msgid(const char *v)
{
	size_t idx = 0;
	char *id = NULL;
	if (mailimf_msg_id_parse(v, strlen(v), &idx, &id) == MAILIMF_NO_ERROR && id != NULL) {
		char *out = clean_copy(id, strlen(id));
		mailimf_msg_id_free(id);
		return out;
	}
	/* Not a msg-id libetpan accepts: keep what is between the brackets. */
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	if (n == 0)
		return NULL;
	char *tmp = xstrndup(v, n);
	char *out = clean_copy(tmp, n);
	free(tmp);
	return out;
}

static char *
parse_from_domain(const char *v)
{
	struct mailimf_mailbox_list *mbl = NULL;
	size_t idx = 0;
	char *out = NULL;

	if (mailimf_mailbox_list_parse(v, strlen(v), &idx, &mbl) != MAILIMF_NO_ERROR || mbl == NULL)
		return NULL;
	clistiter *it = clist_begin(mbl->mb_list);
	if (it != NULL) {
		const struct mailimf_mailbox *mb = clist_content(it);
		const char *at = mb->mb_addr_spec ? strrchr(mb->mb_addr_spec, '@') : NULL;
		if (at != NULL && at[1] != '\0') {
			out = clean_copy(at + 1, 255);
			for (char *q = out; *q; q++)
				*q = (char)lower((unsigned char)*q);
		}
	}
	mailimf_mailbox_list_free(mbl);
	return out;
}

/* Keep the first of a field that should appear once; note repeats. */
static int
first_of(struct dw_mail *m, char **slot, const char *name)
{
	if (*slot == NULL)
		return 1;
	dw_quirks_add(&m->quirks, "header-repeated:%s", name);
	return 0;
}

static void
read_headers(struct dw_mail *m, const char *hdr, size_t len)
{
	struct mailimf_fields *fields = NULL;
	size_t idx = 0;
	size_t cap = 0;
	int seen_date = 0, seen_received = 0;

	/* All fields raw: From and Date are wanted as written, not re-formatted. */
	if (mailimf_optional_fields_parse(hdr, len, &idx, &fields) != MAILIMF_NO_ERROR || fields == NULL)
		return;
	for (clistiter *it = clist_begin(fields->fld_list); it != NULL; it = clist_next(it)) {
		const struct mailimf_field *f = clist_content(it);
		if (f->fld_type != MAILIMF_FIELD_OPTIONAL_FIELD)
			continue;
		const char *name = f->fld_data.fld_optional_field->fld_name;
		const char *value = f->fld_data.fld_optional_field->fld_value;
		if (name == NULL || value == NULL)
			continue;

		if (ascii_casecmp(name, "Authentication-Results") == 0) {
			if (m->n_auth_results == cap) {
				cap = cap ? cap * 2 : 4;
				m->auth_results = xreallocarray(m->auth_results, cap, sizeof *m->auth_results);
			}
			m->auth_results[m->n_auth_results++] = unfold(value);
		} else if (ascii_casecmp(name, "Message-ID") == 0) {
			if (first_of(m, &m->message_id, "message-id")) {
				char *u = unfold(value);
				m->message_id = parse_msgid(u);
				free(u);
				if (m->message_id == NULL)
					m->message_id = xstrdup("");
			}
		} else if (ascii_casecmp(name, "From") == 0) {
			if (first_of(m, &m->from, "from")) {
				m->from = unfold(value);
				m->from_domain = parse_from_domain(m->from);
			}
		} else if (ascii_casecmp(name, "Subject") == 0) {
			if (first_of(m, &m->subject, "subject")) {
				char *u = unfold(value);
				char *d = strstr(u, "=?") ? decode_2047(u) : NULL;
				if (d != NULL) {
					free(u);
					u = d;
				}
				m->subject = u;
			}
		} else if (ascii_casecmp(name, "Received") == 0) {
			/* The top one is the last hop: when the mail arrived. Its
			 * date follows the last ';' (RFC 5322 section 3.6.7). */
			if (!seen_received) {
				seen_received = 1;
				char *u = unfold(value);
				char *semi = strrchr(u, ';');
				if (semi != NULL)
					m->received_epoch = dw_mail_date(semi + 1);
				free(u);
			}
		} else if (ascii_casecmp(name, "Date") == 0) {
			if (!seen_date) {
				seen_date = 1;
				m->date = unfold(value);
				m->date_epoch = dw_mail_date(m->date);
			} else
				dw_quirks_add(&m->quirks, "header-repeated:date");
		}
	}
	mailimf_fields_free(fields);
}

/* ---- entry points ---- */

int
dw_mime_parse(const unsigned char *msg, size_t len, const struct dw_limits *limits,
              struct dw_mail **out, char *err, size_t errlen)
{
	struct scan sc = {.limits = limits, .err = err, .errlen = errlen};
	struct mailmime *mime = NULL;
	size_t start = 0, idx = 0;
	int r;

	*out = NULL;
	if (len > limits->mail_max) {
		char a[32], b[32];
		return dw_err(err, errlen, DW_E_LIMIT,
		              "message is %s, larger than the %s limit (limits.mail_max)",
		              dw_fmt_size(len, a, sizeof a), dw_fmt_size(limits->mail_max, b, sizeof b));
	}
	if (msg == NULL || len == 0)
		return dw_err(err, errlen, DW_E_INPUT, "empty message");

	sc.mail = xcalloc(1, sizeof *sc.mail);
	sc.mail->date_epoch = -1;
	sc.mail->received_epoch = -1;

	/* Files from mbox-style stores begin with an envelope "From " line,
	 * which is no header field and would end the header at once. */
	if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
		const unsigned char *nl = memchr(msg, '\n', len);
		start = nl ? (size_t)(nl - msg) + 1 : len;
		dw_quirks_add(&sc.mail->quirks, "mbox-from-line");
	}

	/* libetpan rescans a multipart's whole body once per nesting level,
	 * so the time is about containers x size: big mails get fewer. */
	sc.budget.containers_max = DW_MIME_CONTAINERS_MAX;
	if (SCAN_BUDGET / len < sc.budget.containers_max)
		sc.budget.containers_max = SCAN_BUDGET / len;
	if (sc.budget.containers_max < CONTAINERS_MIN)
		sc.budget.containers_max = CONTAINERS_MIN;
	r = prescan(msg + start, len - start, &sc.budget, err, errlen);
	if (r != DW_OK)
		goto fail;

	r = mailmime_parse((const char *)msg + start, len - start, &idx, &mime);
	if (r != MAILIMF_NO_ERROR || mime == NULL) {
		r = r == MAILIMF_ERROR_MEMORY
		        ? dw_err(err, errlen, DW_E_SYS, "MIME parser ran out of memory")
		        : dw_err(err, errlen, DW_E_INPUT, "not a parseable e-mail message (MIME error %d)", r);
		mime = NULL;
		goto fail;
	}
	if (mime->mm_type != MAILMIME_MESSAGE || mime->mm_data.mm_message.mm_fields == NULL ||
	    clist_isempty(mime->mm_data.mm_message.mm_fields->fld_list)) {
		r = dw_err(err, errlen, DW_E_INPUT,
		           "not an e-mail message: no header fields at the start");
		goto fail;
	}

	read_headers(sc.mail, (const char *)msg + start, len - start);

	sc.rc = DW_OK;
	if (mime->mm_data.mm_message.mm_msg_mime != NULL)
		mime_walk(mime->mm_data.mm_message.mm_msg_mime, 0, visit_part, &sc);
	if (sc.rc != DW_OK) {
		r = sc.rc;
		goto fail;
	}
	mailmime_free(mime);
	*out = sc.mail;
	return DW_OK;

fail:
	if (mime != NULL)
		mailmime_free(mime);
	dw_mail_free(sc.mail);
	return r;
}

void
dw_mail_free(struct dw_mail *m)
{
	if (m == NULL)
		return;
	free(m->message_id);
	free(m->from);
	free(m->from_domain);
	free(m->subject);
	free(m->date);
	for (size_t i = 0; i < m->n_auth_results; i++)
		free(m->auth_results[i]);
	free(m->auth_results);
	for (size_t i = 0; i < m->npayloads; i++) {
		free(m->payloads[i].data);
		free(m->payloads[i].filename);
		free(m->payloads[i].content_type);
	}
	free(m->payloads);
	dw_quirks_clear(&m->quirks);
	free(m);
}
