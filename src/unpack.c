/*
 * unpack.c - stage 2: turn one payload (gzip, zip or raw XML) into documents
 * streamed chunk by chunk to the caller. See dw/unpack.h.
 *
 * The design is a small chain of pull readers ("struct rd"): a source reader
 * over the caller's buffer or FILE*, an inflate reader over any other reader,
 * a zip member reader over libzip, and a peek reader that holds back the
 * first bytes so they can be sniffed before deciding what comes next. A
 * double gzip is therefore inflate reading from inflate, and nothing is ever
 * gathered whole except a zip archive, which libzip needs random access to
 * (capped at limits->mail_max).
 *
 * What it does not do: parse the documents (report.c), or trust anything the
 * input declares about itself (sizes, names, CRCs are checked by reading).
 */
#include "dw/unpack.h"
#include "dw/mime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>
#include <zlib.h>

#define CHUNK 65536     /* bytes per read and per doc_data call */
#define SNIFF_LEN 1024  /* bytes held back to recognise what follows */
#define NAMES_MAX 200   /* member names quoted in "no report" messages */
#define LABEL_MAX 320   /* "zip member NAME: " prefix of messages */

/* A pull reader: fills buf with up to cap bytes; *got == 0 means the end.
 * On failure it returns a dw_rc and writes the reason into err. */
struct rd {
	int (*read)(struct rd *r, unsigned char *buf, size_t cap, size_t *got, char *err, size_t errlen);
};

/* ------------------------------------------------------------------ */
/* Source: head bytes first, then the memory buffer or the stream.     */

struct src {
	struct rd rd;
	const struct dw_input *in;
	size_t headpos, bufpos;
	uint64_t nread; /* bytes handed out so far */
};

static int
src_read(struct rd *r, unsigned char *buf, size_t cap, size_t *got, char *err, size_t errlen)
{
	struct src *s = (struct src *)r;
	const struct dw_input *in = s->in;
	size_t n = 0;

	if (in->head != NULL && s->headpos < in->headlen) {
		n = in->headlen - s->headpos;
		if (n > cap)
			n = cap;
		memcpy(buf, in->head + s->headpos, n);
		s->headpos += n;
	} else if (in->fp == NULL) {
		if (in->buf != NULL && s->bufpos < in->len) {
			n = in->len - s->bufpos;
			if (n > cap)
				n = cap;
			memcpy(buf, in->buf + s->bufpos, n);
			s->bufpos += n;
		}
	} else {
		n = fread(buf, 1, cap, in->fp);
		if (n == 0 && ferror(in->fp)) {
			int e = errno;
			*got = 0;
			return dw_err(err, errlen, DW_E_SOURCE, "read error: %s", strerror(e));
		}
	}
	s->nread += n;
	*got = n;
	return DW_OK;
}

static void
src_init(struct src *s, const struct dw_input *in)
{
	memset(s, 0, sizeof *s);
	s->rd.read = src_read;
	s->in = in;
}

/* ------------------------------------------------------------------ */
/* Peek: keeps the first SNIFF_LEN bytes of another reader for sniffing. */

struct peek {
	struct rd rd;
	struct rd *in;
	unsigned char buf[SNIFF_LEN];
	size_t len, pos;
};

static int
peek_read(struct rd *r, unsigned char *buf, size_t cap, size_t *got, char *err, size_t errlen)
{
	struct peek *p = (struct peek *)r;
	if (p->pos < p->len) {
		size_t n = p->len - p->pos;
		if (n > cap)
			n = cap;
		memcpy(buf, p->buf + p->pos, n);
		p->pos += n;
		*got = n;
		return DW_OK;
	}
	return p->in->read(p->in, buf, cap, got, err, errlen);
}

/* Read from the inner reader until SNIFF_LEN bytes are held or it ended.
 * Short reads are normal (a gzip member boundary, a pipe), hence the loop. */
static int
peek_init(struct peek *p, struct rd *in, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	p->rd.read = peek_read;
	p->in = in;
	while (p->len < sizeof p->buf) {
		size_t got;
		int rc = in->read(in, p->buf + p->len, sizeof p->buf - p->len, &got, err, errlen);
		if (rc != DW_OK)
			return rc;
		if (got == 0)
			break;
		p->len += got;
	}
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* Sniffing. Kept here rather than calling dw_sniff() because a zip     */
/* member is judged on a larger window and unpack must not depend on    */
/* the MIME stage; the rules are the ones dw/mime.h documents.          */

/* The ASCII character at code unit k of a UTF-8 or UTF-16 text, or -1. */
static int
unit_at(const unsigned char *b, size_t n, size_t start, size_t width, int be, size_t k)
{
	size_t i = start + k * width;
	if (i + width > n)
		return -1;
	if (width == 1)
		return b[i];
	unsigned hi = be ? b[i] : b[i + 1], lo = be ? b[i + 1] : b[i];
	return hi == 0 ? (int)lo : -1;
}

static int
looks_xml(const unsigned char *b, size_t n)
{
	static const char *const starts[] = {"<?xml", "<feedback"};
	size_t start = 0, width = 1;
	int be = 0;

	if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf) {
		start = 3;
	} else if (n >= 2 && b[0] == 0xff && b[1] == 0xfe) {
		start = 2, width = 2;
	} else if (n >= 2 && b[0] == 0xfe && b[1] == 0xff) {
		start = 2, width = 2, be = 1;
	} else if (n >= 2 && b[0] != 0 && b[1] == 0) {
		width = 2; /* UTF-16LE without a byte order mark */
	} else if (n >= 2 && b[0] == 0 && b[1] != 0) {
		width = 2, be = 1;
	}

	size_t k = 0;
	int c;
	while ((c = unit_at(b, n, start, width, be, k)) == ' ' || c == '\t' || c == '\r' || c == '\n')
		k++;
	for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
		size_t j = 0;
		while (starts[s][j] != '\0' && unit_at(b, n, start, width, be, k + j) == starts[s][j])
			j++;
		if (starts[s][j] == '\0')
			return 1;
	}
	return 0;
}

static int
sniff(const unsigned char *b, size_t n)
{
	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return DW_PAYLOAD_GZIP;
	if (n >= 4 && memcmp(b, "PK\3\4", 4) == 0)
		return DW_PAYLOAD_ZIP;
	if (looks_xml(b, n))
		return DW_PAYLOAD_XML;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Inflate reader: gzip, multi-member, over another reader.              */

struct gz {
	struct rd rd;
	struct rd *in;
	z_stream zs;
	int inited;
	int in_eof;               /* the inner reader has ended */
	int done;                 /* the last member has ended */
	unsigned char *ibuf;      /* CHUNK bytes of compressed input */
	uint64_t consumed;        /* compressed bytes inflate has used */
	struct dw_quirks *quirks;
	const char *label;        /* message prefix: "", "inner ", "zip member x: " */
};

/* Keep what inflate has not used yet and append more from the inner reader. */
static int
gz_refill(struct gz *g, char *err, size_t errlen)
{
	size_t keep = g->zs.avail_in, got;
	if (keep > 0 && g->zs.next_in != g->ibuf)
		memmove(g->ibuf, g->zs.next_in, keep);
	g->zs.next_in = g->ibuf;
	int rc = g->in->read(g->in, g->ibuf + keep, CHUNK - keep, &got, err, errlen);
	if (rc != DW_OK)
		return rc;
	if (got == 0)
		g->in_eof = 1;
	g->zs.avail_in = (uInt)(keep + got);
	return DW_OK;
}

/* A member ended: another one follows only if the next bytes are the gzip
 * magic. Anything else (zero padding from a mail gateway, junk) ends the
 * data; it is accepted, but noted. */
static int
gz_member_end(struct gz *g, char *err, size_t errlen)
{
	while (g->zs.avail_in < 2 && !g->in_eof) {
		int rc = gz_refill(g, err, errlen);
		if (rc != DW_OK)
			return rc;
	}
	if (g->zs.avail_in == 0) {
		g->done = 1;
	} else if (g->zs.avail_in >= 2 && g->zs.next_in[0] == 0x1f && g->zs.next_in[1] == 0x8b) {
		if (inflateReset(&g->zs) != Z_OK)
			return dw_err(err, errlen, DW_E_SYS, "%sgzip: inflateReset failed", g->label);
	} else {
		dw_quirks_add(g->quirks, "gzip-trailing-bytes");
		g->done = 1;
	}
	return DW_OK;
}

static int
gz_read(struct rd *r, unsigned char *buf, size_t cap, size_t *got, char *err, size_t errlen)
{
	struct gz *g = (struct gz *)r;
	*got = 0;
	if (cap > CHUNK)
		cap = CHUNK;
	g->zs.next_out = buf;
	g->zs.avail_out = (uInt)cap;
	/* Loop until some output exists: a member boundary or a block of
	 * headers can use input without producing any. */
	while (!g->done && g->zs.avail_out == cap) {
		if (g->zs.avail_in == 0 && !g->in_eof) {
			int rc = gz_refill(g, err, errlen);
			if (rc != DW_OK)
				return rc;
			continue;
		}
		/* Even with no input left inflate may still hold output. */
		uInt before = g->zs.avail_in;
		int zr = inflate(&g->zs, Z_NO_FLUSH);
		g->consumed += before - g->zs.avail_in;
		if (zr == Z_STREAM_END) {
			int rc = gz_member_end(g, err, errlen);
			if (rc != DW_OK)
				return rc;
		} else if (zr == Z_OK) {
			continue;
		} else if (zr == Z_BUF_ERROR && g->zs.avail_in == 0) {
			/* No progress without more input: fetch some, unless there is none. */
			if (g->in_eof)
				return dw_err(err, errlen, DW_E_INPUT, "%sgzip data truncated", g->label);
		} else if (zr == Z_MEM_ERROR) {
			return dw_err(err, errlen, DW_E_SYS, "%sgzip: out of memory in zlib", g->label);
		} else {
			return dw_err(err, errlen, DW_E_INPUT, "%sgzip data corrupt: %s", g->label,
			              g->zs.msg != NULL ? g->zs.msg : "invalid data");
		}
	}
	*got = cap - g->zs.avail_out;
	return DW_OK;
}

static void
gz_init(struct gz *g, struct rd *in, struct dw_quirks *quirks, const char *label)
{
	memset(g, 0, sizeof *g);
	g->rd.read = gz_read;
	g->in = in;
	g->quirks = quirks;
	g->label = label;
	g->ibuf = xmalloc(CHUNK);
	/* 16 + MAX_WBITS: gzip wrapper only, the largest window. */
	if (inflateInit2(&g->zs, 16 + MAX_WBITS) == Z_OK)
		g->inited = 1;
}

static void
gz_end(struct gz *g)
{
	if (g->inited)
		inflateEnd(&g->zs);
	free(g->ibuf);
	g->ibuf = NULL;
	g->inited = 0;
}

/* ------------------------------------------------------------------ */
/* Zip member reader.                                                    */

struct zmem {
	struct rd rd;
	zip_file_t *zf;
	const char *label;
	uint64_t nread; /* real uncompressed bytes read from the member */
	int eof;        /* read to the end, so libzip has checked the CRC */
};

static int
zm_read(struct rd *r, unsigned char *buf, size_t cap, size_t *got, char *err, size_t errlen)
{
	struct zmem *z = (struct zmem *)r;
	zip_int64_t n = zip_fread(z->zf, buf, cap);
	*got = 0;
	if (n < 0) {
		zip_error_t *ze = zip_file_get_error(z->zf);
		if (zip_error_code_zip(ze) == ZIP_ER_CRC)
			return dw_err(err, errlen, DW_E_INPUT, "%sCRC mismatch: the data is corrupt",
			              z->label);
		return dw_err(err, errlen, DW_E_INPUT, "%sunreadable: %s", z->label,
		              zip_error_strerror(ze));
	}
	if (n == 0)
		z->eof = 1;
	z->nread += (uint64_t)n;
	*got = (size_t)n;
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* One dw_unpack call.                                                   */

struct run {
	const struct dw_limits *lim;
	const struct dw_unpack_cb *cb;
	void *ctx;
	struct dw_quirks *quirks;
	char *err;
	size_t errlen;
	int rc;             /* first failing status; a callback abort overrides it */
	int aborted;        /* a callback asked to stop */
	int total_over;     /* the payload-wide decompressed cap was hit */
	uint64_t total;     /* decompressed bytes of all documents in the payload */
	unsigned char *chunk;
};

static void
fail(struct run *u, int rc, const char *msg)
{
	if (u->rc == DW_OK) {
		u->rc = rc;
		dw_err(u->err, u->errlen, rc, "%s", msg);
	}
}

/* A callback refused: stop everything and hand its code and text back
 * unchanged, even over an earlier input error, because the caller must see
 * a store failure to avoid acknowledging the mail. */
static void
abort_run(struct run *u, int rc, const char *msg)
{
	u->aborted = 1;
	u->rc = rc;
	dw_err(u->err, u->errlen, rc, "%s", msg);
}

/* Is out bytes from cin compressed bytes too much? ratio_max 0 disables. */
static int
ratio_exceeded(const struct dw_limits *lim, uint64_t out, uint64_t cin)
{
	if (lim->ratio_max == 0 || out <= lim->ratio_grace)
		return 0;
	if (cin > UINT64_MAX / lim->ratio_max)
		return 0;
	return out > cin * lim->ratio_max;
}

/*
 * Stream one document from r to the callbacks.
 *   name   passed to doc_begin (NULL outside zip)
 *   cin    live count of compressed bytes behind this document, for the ratio
 *   label  message prefix naming the member
 */
static void
deliver(struct run *u, struct rd *r, const char *name, const uint64_t *cin, const char *label)
{
	const struct dw_limits *lim = u->lim;
	char msg[1024] = "", sz[32];
	uint64_t out = 0;
	int status = DW_OK, aborted = 0;

	int rc = u->cb->doc_begin(u->ctx, name, msg, sizeof msg);
	if (rc != DW_OK) {
		abort_run(u, rc, msg);
		return;
	}
	for (;;) {
		size_t got;
		status = r->read(r, u->chunk, CHUNK, &got, msg, sizeof msg);
		if (status != DW_OK || got == 0)
			break;
		out += got;
		u->total += got;
		/* Bare XML was not decompressed: its size is the input's own
		 * (and a mail's is capped by mail_max), so only decompressed
		 * output counts against decompressed_max. */
		if (cin != NULL && out > lim->decompressed_max) {
			status = dw_err(msg, sizeof msg, DW_E_LIMIT,
			                "%sdecompressed size exceeds the %s limit (limits.decompressed_max)",
			                label, dw_fmt_size(lim->decompressed_max, sz, sizeof sz));
			break;
		}
		if (cin != NULL && u->total > lim->decompressed_max) {
			u->total_over = 1;
			status = dw_err(msg, sizeof msg, DW_E_LIMIT,
			                "%sdecompressed size of all documents in this payload exceeds the %s "
			                "limit (limits.decompressed_max)",
			                label, dw_fmt_size(lim->decompressed_max, sz, sizeof sz));
			break;
		}
		if (cin != NULL && ratio_exceeded(lim, out, *cin)) {
			status = dw_err(msg, sizeof msg, DW_E_LIMIT,
			                "%sdecompression ratio exceeds the %" PRIu64
			                ":1 limit (limits.ratio_max): %" PRIu64 " bytes out of %" PRIu64
			                " compressed",
			                label, lim->ratio_max, out, *cin);
			break;
		}
		status = u->cb->doc_data(u->ctx, u->chunk, got, msg, sizeof msg);
		if (status != DW_OK) {
			aborted = 1;
			break;
		}
	}

	/* doc_end writes its own reason into eb; start it as ours so a callback
	 * that returns a failure without a message still explains it. */
	char eb[1024];
	snprintf(eb, sizeof eb, "%s", status != DW_OK ? msg : "");
	int fin = u->cb->doc_end(u->ctx, status, status != DW_OK ? msg : NULL, eb, sizeof eb);
	if (aborted)
		abort_run(u, fin != DW_OK ? fin : status, fin != DW_OK ? eb : msg);
	else if (fin != DW_OK)
		fail(u, fin, eb);
}

/* Read all of r into memory, at most max bytes; what names the data. */
static int
slurp(struct rd *r, uint64_t max, const char *what, unsigned char **out,
      size_t *outlen, char *err, size_t errlen)
{
	size_t cap = CHUNK, len = 0;
	unsigned char *buf = xmalloc(cap);
	char sz[32];
	for (;;) {
		size_t got;
		if (cap - len < CHUNK) {
			/* Double, but never past what the cap can need. */
			size_t ncap = cap * 2;
			if (max < SIZE_MAX - 2 * CHUNK && ncap > max + 2 * CHUNK)
				ncap = (size_t)max + 2 * CHUNK;
			if (ncap - len < CHUNK)
				ncap = len + CHUNK;
			cap = ncap;
			buf = xrealloc(buf, cap);
		}
		int rc = r->read(r, buf + len, CHUNK, &got, err, errlen);
		if (rc != DW_OK) {
			free(buf);
			return rc;
		}
		if (got == 0)
			break;
		len += got;
		if (len > max) {
			free(buf);
			return dw_err(err, errlen, DW_E_LIMIT, "%s exceeds the %s limit (limits.mail_max)",
			              what, dw_fmt_size(max, sz, sizeof sz));
		}
	}
	*out = buf;
	*outlen = len;
	return DW_OK;
}

/* A member name made safe for one-line messages: control bytes become '?'. */
static void
printable_name(const char *name, char *out, size_t outlen)
{
	size_t j = 0;
	for (size_t i = 0; name[i] != '\0' && j + 1 < outlen; i++) {
		unsigned char c = (unsigned char)name[i];
		out[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[j] = '\0';
}

/* A member name made into a quirk token: lower case, [a-z0-9._-] only. */
static void
quirk_name(const char *name, char *out, size_t outlen)
{
	size_t j = 0;
	for (size_t i = 0; name[i] != '\0' && j + 1 < outlen && j < 64; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		int keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		           c == '_';
		out[j++] = keep ? (char)c : '_';
	}
	out[j] = '\0';
}

/* Names that would escape a directory if someone extracted by name. */
static int
suspicious_name(const char *name)
{
	if (name[0] == '/' || name[0] == '\\')
		return 1;
	if (((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')) &&
	    name[1] == ':')
		return 1;
	for (const char *p = name; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20)
			return 1;
		/* ".." as a whole path component, with either separator. */
		if (p[0] == '.' && p[1] == '.' && (p == name || p[-1] == '/' || p[-1] == '\\') &&
		    (p[2] == '\0' || p[2] == '/' || p[2] == '\\'))
			return 1;
	}
	return 0;
}

/* Add a name to a bounded ", "-separated list; "..." marks the cut. */
static void
names_append(char *names, size_t len, const char *name)
{
	size_t used = strlen(names);
	if (used >= 3 && strcmp(names + used - 3, "...") == 0)
		return;
	char pn[NAMES_MAX];
	printable_name(name, pn, sizeof pn);
	const char *sep = used > 0 ? ", " : "";
	size_t need = strlen(sep) + strlen(pn);
	if (used + need + 4 > len) {
		/* No room for this name and a later "...": end the list here. */
		if (used + strlen(sep) + 4 <= len)
			memcpy(names + used, used > 0 ? ", ..." : "...", strlen(sep) + 4);
		return;
	}
	memcpy(names + used, sep, strlen(sep));
	memcpy(names + used + strlen(sep), pn, strlen(pn) + 1);
}

/*
 * Unwrap the gzip in front of r (the second level of compression) and
 * deliver its content as one document. Anything compressed inside that is
 * refused: two levels are what broken senders produce, more is an attack.
 */
static void
deliver_inner_gzip(struct run *u, struct rd *r, const char *name, const uint64_t *cin,
                   const char *label)
{
	char msg[1024], ilabel[LABEL_MAX + 8];
	struct gz g;
	struct peek p;

	snprintf(ilabel, sizeof ilabel, "%sinner ", label);
	dw_quirks_add(u->quirks, "double-compressed");
	gz_init(&g, r, u->quirks, ilabel);
	if (!g.inited) {
		fail(u, DW_E_SYS, "inflateInit2 failed");
		gz_end(&g);
		return;
	}
	int kind = 0, rc = peek_init(&p, &g.rd, msg, sizeof msg);
	if (rc != DW_OK) {
		fail(u, rc, msg);
	} else if ((kind = sniff(p.buf, p.len)) == DW_PAYLOAD_GZIP || kind == DW_PAYLOAD_ZIP) {
		snprintf(msg, sizeof msg,
		         "%scompressed data nested more than two levels deep: refused", label);
		fail(u, DW_E_INPUT, msg);
	} else {
		deliver(u, &p.rd, name, cin, label);
	}
	gz_end(&g);
}

/*
 * Every member of a zip archive held in memory.
 *   nested   1 when the archive came out of a gzip (no further unwrapping)
 *   budget   compressed bytes behind the archive: the ratio's denominator
 *            is never more than this, whatever a member declares
 */
static void
unpack_zip(struct run *u, const unsigned char *data, size_t len, int nested, uint64_t budget)
{
	char msg[1024], label[LABEL_MAX], pn[256], qn[80], names[NAMES_MAX] = "";
	zip_error_t ze;
	unsigned members = 0, docs = 0;
	int first_rc = u->rc;

	zip_error_init(&ze);
	zip_source_t *zsrc = zip_source_buffer_create(data, len, 0, &ze);
	if (zsrc == NULL) {
		snprintf(msg, sizeof msg, "zip: %s", zip_error_strerror(&ze));
		fail(u, DW_E_SYS, msg);
		zip_error_fini(&ze);
		return;
	}
	zip_t *za = zip_open_from_source(zsrc, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
	if (za == NULL) {
		snprintf(msg, sizeof msg, "zip archive unreadable: %s", zip_error_strerror(&ze));
		fail(u, DW_E_INPUT, msg);
		zip_source_free(zsrc);
		zip_error_fini(&ze);
		return;
	}
	zip_error_fini(&ze);

	zip_int64_t n = zip_get_num_entries(za, 0);
	if (n < 0)
		n = 0; /* only for an invalid handle, which za is not */
	if ((uint64_t)n > u->lim->zip_members_max) {
		snprintf(msg, sizeof msg,
		         "zip archive has %" PRId64 " entries, more than the limit of %u "
		         "(limits.zip_members_max)",
		         (int64_t)n, u->lim->zip_members_max);
		fail(u, DW_E_LIMIT, msg);
		zip_discard(za);
		return;
	}

	for (zip_int64_t i = 0; i < n && !u->aborted && !u->total_over; i++) {
		zip_stat_t st;
		zip_stat_init(&st);
		if (zip_stat_index(za, (zip_uint64_t)i, 0, &st) < 0) {
			snprintf(msg, sizeof msg, "zip entry %" PRId64 ": %s", (int64_t)i, zip_strerror(za));
			fail(u, DW_E_INPUT, msg);
			continue;
		}
		const char *name = (st.valid & ZIP_STAT_NAME) && st.name != NULL ? st.name : "";
		size_t nl = strlen(name);
		if (nl > 0 && (name[nl - 1] == '/' || name[nl - 1] == '\\'))
			continue; /* a directory entry carries no data */
		members++;
		names_append(names, sizeof names, name);
		printable_name(name, pn, sizeof pn);
		snprintf(label, sizeof label, "zip member %s: ", pn);
		if (suspicious_name(name))
			dw_quirks_add(u->quirks, "zip-suspicious-name");

		if (!(st.valid & ZIP_STAT_ENCRYPTION_METHOD) || st.encryption_method != ZIP_EM_NONE) {
			snprintf(msg, sizeof msg, "%sencrypted: refused", label);
			fail(u, DW_E_INPUT, msg);
			continue;
		}
		if (!(st.valid & ZIP_STAT_COMP_METHOD) ||
		    (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)) {
			snprintf(msg, sizeof msg,
			         "%scompression method %u refused (only store and deflate are accepted)",
			         label, (unsigned)st.comp_method);
			fail(u, DW_E_INPUT, msg);
			continue;
		}
		/* The ratio uses the declared compressed size, bounded by what the
		 * archive could hold: a lie can only make the check stricter. */
		uint64_t cin = budget;
		if ((st.valid & ZIP_STAT_COMP_SIZE) && st.comp_size < cin)
			cin = st.comp_size;

		zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)i, 0);
		if (zf == NULL) {
			snprintf(msg, sizeof msg, "%scannot open: %s", label, zip_strerror(za));
			fail(u, DW_E_INPUT, msg);
			continue;
		}
		struct zmem zm = {.rd = {.read = zm_read}, .zf = zf, .label = label};
		struct peek p;
		int rc = peek_init(&p, &zm.rd, msg, sizeof msg);
		int kind = rc == DW_OK ? sniff(p.buf, p.len) : 0;
		if (rc != DW_OK) {
			fail(u, rc, msg);
		} else if (kind == DW_PAYLOAD_XML) {
			docs++;
			deliver(u, &p.rd, name, &cin, label);
		} else if (kind == DW_PAYLOAD_GZIP && !nested) {
			docs++;
			deliver_inner_gzip(u, &p.rd, name, &cin, label);
		} else if (kind == DW_PAYLOAD_GZIP) {
			snprintf(msg, sizeof msg,
			         "%sgzip inside a zip inside a gzip: nested too deep, refused", label);
			fail(u, DW_E_INPUT, msg);
		} else {
			quirk_name(name, qn, sizeof qn);
			dw_quirks_add(u->quirks, "zip-member-skipped:%s", qn);
		}
		/* libzip checks the CRC but not the declared size; a member whose
		 * real size differs was tampered with or badly written. */
		if (zm.eof && (st.valid & ZIP_STAT_SIZE) && zm.nread != st.size)
			dw_quirks_add(u->quirks, "zip-size-mismatch");
		zip_fclose(zf);
	}
	zip_discard(za);

	if (docs == 0 && u->rc == first_rc && !u->aborted) {
		snprintf(msg, sizeof msg, "zip archive contains no report (%u member%s%s%s)", members,
		         members == 1 ? "" : "s", members > 0 ? ": " : "", names);
		fail(u, DW_E_INPUT, msg);
	}
}

/* The content of the outer gzip decides what happens next. */
static void
unpack_gzip(struct run *u, struct rd *src)
{
	char msg[1024];
	struct gz g;
	struct peek p;

	gz_init(&g, src, u->quirks, "");
	if (!g.inited) {
		fail(u, DW_E_SYS, "inflateInit2 failed");
		gz_end(&g);
		return;
	}
	int rc = peek_init(&p, &g.rd, msg, sizeof msg);
	int kind = rc == DW_OK ? sniff(p.buf, p.len) : 0;
	if (rc != DW_OK) {
		fail(u, rc, msg);
	} else if (kind == DW_PAYLOAD_GZIP) {
		deliver_inner_gzip(u, &p.rd, NULL, &g.consumed, "");
	} else if (kind == DW_PAYLOAD_ZIP) {
		/* libzip needs the whole archive; it is capped like a mail. */
		unsigned char *zbuf;
		size_t zlen;
		dw_quirks_add(u->quirks, "double-compressed");
		rc = slurp(&p.rd, u->lim->mail_max, "zip archive inside gzip", &zbuf, &zlen, msg,
		           sizeof msg);
		if (rc != DW_OK) {
			fail(u, rc, msg);
		} else {
			unpack_zip(u, zbuf, zlen, 1, g.consumed);
			free(zbuf);
		}
	} else {
		deliver(u, &p.rd, NULL, &g.consumed, "");
	}
	gz_end(&g);
}

int
dw_unpack(const struct dw_input *in, int kind, const struct dw_limits *limits,
          const struct dw_unpack_cb *cb, void *ctx, struct dw_quirks *quirks, char *err,
          size_t errlen)
{
	struct dw_limits deflim;
	struct dw_quirks noquirks = {0};
	struct src s;
	char msg[1024];

	/* Be forgiving about the optional arguments: no limits means the
	 * defaults, and quirks may be unwanted. */
	if (limits == NULL) {
		dw_limits_default(&deflim);
		limits = &deflim;
	}
	struct run u = {.lim = limits, .cb = cb, .ctx = ctx,
	                .quirks = quirks != NULL ? quirks : &noquirks, .err = err, .errlen = errlen};

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	src_init(&s, in);
	u.chunk = xmalloc(CHUNK);

	switch (kind) {
	case DW_PAYLOAD_XML:
		deliver(&u, &s.rd, NULL, NULL, "");
		break;
	case DW_PAYLOAD_GZIP:
		unpack_gzip(&u, &s.rd);
		break;
	case DW_PAYLOAD_ZIP:
		if (in->fp == NULL && (in->head == NULL || in->headlen == 0)) {
			unpack_zip(&u, in->buf, in->len, 0, in->len);
		} else {
			unsigned char *zbuf;
			size_t zlen;
			int rc = slurp(&s.rd, limits->mail_max, "zip archive", &zbuf, &zlen, msg,
			               sizeof msg);
			if (rc != DW_OK) {
				fail(&u, rc, msg);
			} else {
				unpack_zip(&u, zbuf, zlen, 0, zlen);
				free(zbuf);
			}
		}
		break;
	default:
		fail(&u, DW_E_INPUT, "unknown payload kind: not gzip, zip or XML");
		break;
	}
	free(u.chunk);
	dw_quirks_clear(&noquirks);
	return u.rc;
}
