/*
 * test_unpack.c - unit tests for src/unpack.c: real corpus archives from
 * memory and from a FILE*, gzip edge cases (multi-member, trailing bytes,
 * truncation, corruption, nesting), zip edge cases (several members, skipped
 * and refused members, hostile names, too many entries, lying headers), the
 * size and ratio limits including a ~10 GB gzip bomb built at test time, and
 * callback failures.
 *
 * Hostile inputs are generated here in memory (or in a mkdtemp directory
 * removed at the end); only two small zips made with Info-ZIP are committed
 * under tests/data/unpack/.
 */
#include "dw/limits.h"
#include "dw/mime.h"
#include "dw/unpack.h"
#include "dw/util.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>
#include <zlib.h>

#define MiB (UINT64_C(1) << 20)

/* ------------------------------------------------------------------ */
/* A consumer that records what each document looked like.             */

#define DOCS_MAX 64
#define CAPTURE_MAX (256 * 1024)

struct doc {
	char name[256];
	int has_name;
	uint64_t len;
	uint32_t crc;
	unsigned char *data; /* first CAPTURE_MAX bytes */
	size_t datalen;
	int ended;
	int status;
	char msg[512];
	size_t max_chunk;
};

struct cons {
	struct doc d[DOCS_MAX];
	int n;          /* documents begun */
	int begins;     /* doc_begin calls, including refused ones */
	int open;       /* a document is between begin and end */
	int misuse;     /* data or end outside a document, or nested begin */
	/* Failure injection. */
	int begin_rc;   /* doc_begin returns this (with begin_msg) */
	const char *begin_msg;
	int data_rc;    /* doc_data returns this ... */
	const char *data_msg;
	int end_rc;     /* doc_end returns this for every document (when set) */
	const char *end_msg;
};

static int
c_begin(void *ctx, const char *name, char *err, size_t errlen)
{
	struct cons *c = ctx;
	c->begins++;
	if (c->open)
		c->misuse++;
	if (c->begin_rc != DW_OK)
		return dw_err(err, errlen, c->begin_rc, "%s", c->begin_msg);
	if (c->n >= DOCS_MAX)
		return dw_err(err, errlen, DW_E_INPUT, "too many documents for the test");
	struct doc *d = &c->d[c->n++];
	memset(d, 0, sizeof *d);
	if (name != NULL) {
		d->has_name = 1;
		snprintf(d->name, sizeof d->name, "%s", name);
	}
	d->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	c->open = 1;
	return DW_OK;
}

static int
c_data(void *ctx, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	struct cons *c = ctx;
	if (!c->open || c->n == 0) {
		c->misuse++;
		return DW_OK;
	}
	struct doc *d = &c->d[c->n - 1];
	if (c->data_rc != DW_OK)
		return dw_err(err, errlen, c->data_rc, "%s", c->data_msg);
	if (len > d->max_chunk)
		d->max_chunk = len;
	d->crc = (uint32_t)crc32(d->crc, buf, (uInt)len);
	if (d->datalen < CAPTURE_MAX) {
		size_t take = len < CAPTURE_MAX - d->datalen ? len : CAPTURE_MAX - d->datalen;
		if (d->data == NULL)
			d->data = xmalloc(CAPTURE_MAX);
		memcpy(d->data + d->datalen, buf, take);
		d->datalen += take;
	}
	d->len += len;
	return DW_OK;
}

static int
c_end(void *ctx, int status, const char *msg, char *err, size_t errlen)
{
	struct cons *c = ctx;
	if (!c->open || c->n == 0) {
		c->misuse++;
		return status;
	}
	struct doc *d = &c->d[c->n - 1];
	c->open = 0;
	d->ended = 1;
	d->status = status;
	snprintf(d->msg, sizeof d->msg, "%s", msg != NULL ? msg : "");
	if (c->end_rc != DW_OK)
		return dw_err(err, errlen, c->end_rc, "%s", c->end_msg);
	return status;
}

static const struct dw_unpack_cb cb = {.doc_begin = c_begin, .doc_data = c_data, .doc_end = c_end};

static void
cons_free(struct cons *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->d[i].data);
	memset(c, 0, sizeof *c);
}

/* One unpack from memory. */
static int
run_mem(const unsigned char *buf, size_t len, int kind, const struct dw_limits *lim, struct cons *c,
        struct dw_quirks *q, char *err, size_t errlen)
{
	struct dw_input in = {.buf = buf, .len = len};
	return dw_unpack(&in, kind, lim, &cb, c, q, err, errlen);
}

/* One unpack from an open stream, after reading headlen bytes as "head". */
static int
run_fp(FILE *fp, size_t headlen, int kind, const struct dw_limits *lim, struct cons *c,
       struct dw_quirks *q, char *err, size_t errlen)
{
	unsigned char head[4096];
	if (headlen > sizeof head)
		headlen = sizeof head;
	headlen = fread(head, 1, headlen, fp);
	struct dw_input in = {.fp = fp, .head = head, .headlen = headlen};
	return dw_unpack(&in, kind, lim, &cb, c, q, err, errlen);
}

static int
run_path(const char *path, size_t headlen, int kind, const struct dw_limits *lim, struct cons *c,
         struct dw_quirks *q, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return dw_err(err, errlen, DW_E_SOURCE, "test: cannot open %s: %s", path, strerror(errno));
	int rc = run_fp(fp, headlen, kind, lim, c, q, err, errlen);
	fclose(fp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Builders.                                                            */

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		diag("cannot open %s: %s", path, strerror(errno));
		*len = 0;
		return NULL;
	}
	size_t cap = 4096, n = 0;
	unsigned char *buf = xmalloc(cap);
	for (;;) {
		if (n == cap)
			buf = xrealloc(buf, cap *= 2);
		size_t got = fread(buf + n, 1, cap - n, fp);
		if (got == 0)
			break;
		n += got;
	}
	fclose(fp);
	*len = n;
	return buf;
}

static int
write_file(const char *path, const unsigned char *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (fp == NULL)
		return -1;
	size_t w = fwrite(buf, 1, len, fp);
	return fclose(fp) == 0 && w == len ? 0 : -1;
}

/* A growable byte string for building inputs. */
struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void
bytes_add(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		while (b->len + len > b->cap)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

/*
 * Append one gzip member to out: the bytes data (len) repeated reps times,
 * fed to deflate 64 KiB at a time so huge members need no huge buffer.
 */
static void
gz_member(struct bytes *out, const void *data, size_t len, size_t reps)
{
	z_stream z;
	unsigned char obuf[65536];
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	for (size_t r = 0; r <= reps; r++) {
		int flush = r == reps ? Z_FINISH : Z_NO_FLUSH;
		z.next_in = (Bytef *)(uintptr_t)data;
		z.avail_in = r == reps ? 0 : (uInt)len;
		int zr;
		do {
			z.next_out = obuf;
			z.avail_out = sizeof obuf;
			zr = deflate(&z, flush);
			bytes_add(out, obuf, sizeof obuf - z.avail_out);
		} while (flush == Z_FINISH ? zr != Z_STREAM_END : z.avail_out == 0);
	}
	deflateEnd(&z);
}

static struct bytes
gz_of(const void *data, size_t len)
{
	struct bytes b = {0};
	gz_member(&b, data, len, 1);
	return b;
}

/* A zip entry for zip_build. */
struct zent {
	const char *name;
	const void *data;
	size_t len;
	int method;          /* ZIP_CM_STORE or ZIP_CM_DEFLATE */
	const char *password; /* non-NULL: AES-256 encrypted */
	int dir;             /* a directory entry (data unused) */
};

/* Build a zip archive in memory with libzip. */
static unsigned char *
zip_build(const struct zent *e, size_t n, size_t *outlen)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
	if (src == NULL)
		abort();
	zip_source_keep(src);
	zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
	if (za == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (e[i].dir) {
			if (zip_dir_add(za, e[i].name, ZIP_FL_ENC_UTF_8) < 0)
				diag("zip_dir_add %s: %s", e[i].name, zip_strerror(za));
			continue;
		}
		zip_source_t *fs = zip_source_buffer(za, e[i].data, e[i].len, 0);
		zip_int64_t idx = zip_file_add(za, e[i].name, fs, ZIP_FL_ENC_UTF_8);
		if (idx < 0) {
			diag("zip_file_add %s: %s", e[i].name, zip_strerror(za));
			zip_source_free(fs);
			continue;
		}
		zip_set_file_compression(za, (zip_uint64_t)idx, e[i].method, 9);
		if (e[i].password != NULL &&
		    zip_file_set_encryption(za, (zip_uint64_t)idx, ZIP_EM_AES_256, e[i].password) < 0)
			diag("zip_file_set_encryption: %s", zip_strerror(za));
	}
	if (zip_close(za) < 0) {
		diag("zip_close: %s", zip_strerror(za));
		abort();
	}
	zip_stat_t st;
	zip_stat_init(&st);
	if (zip_source_open(src) < 0 || zip_source_stat(src, &st) < 0)
		abort();
	unsigned char *buf = xmalloc(st.size);
	zip_int64_t got = zip_source_read(src, buf, st.size);
	if (got < 0 || (zip_uint64_t)got != st.size)
		abort();
	zip_source_close(src);
	zip_source_free(src);
	zip_error_fini(&ze);
	*outlen = st.size;
	return buf;
}

static void
put_le16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, v & 0xffff);
	put_le16(p + 2, v >> 16);
}

/* Offset of the first central directory header, or SIZE_MAX. */
static size_t
find_central(const unsigned char *z, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(z + i, "PK\1\2", 4) == 0)
			return i;
	return SIZE_MAX;
}

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static const char xml1[] = "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>one"
                           "</org_name></report_metadata></feedback>\n";
static const char xml2[] = "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>two"
                           "</org_name></report_metadata></feedback>\n";

static int
doc_is(const struct doc *d, const void *want, size_t len)
{
	return d->len == len && d->datalen == len && memcmp(d->data ? d->data : (const unsigned char *)"", want, len) == 0;
}

static uint32_t
crc_of(const void *p, size_t len)
{
	return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

static long
maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* The gzip bomb: ~10 GB of spaces behind an XML start, ~10 MB on disk. */

/* Write the bomb to fp (when not NULL) or return it in memory. Streaming it
 * to the file keeps the test's own peak memory low before the RSS check. */
static struct bytes
make_gzip_bomb(FILE *fp)
{
	static const char start[] = "<?xml version=\"1.0\"?><feedback>";
	unsigned char spaces[65536];
	struct bytes b = {0}, m = {0};

	memset(spaces, ' ', sizeof spaces);
	gz_member(&b, start, strlen(start), 1);
	/* One member of 16 MiB of spaces (~16 KB compressed), repeated 640
	 * times: 10 GiB once inflated, cheap to build. */
	gz_member(&m, spaces, sizeof spaces, 256);
	for (int i = 0; i < 640; i++) {
		if (fp != NULL && b.len > 0) {
			if (fwrite(b.p, 1, b.len, fp) != b.len)
				diag("short write: %s", strerror(errno));
			b.len = 0;
		}
		bytes_add(&b, m.p, m.len);
	}
	if (fp != NULL && fwrite(b.p, 1, b.len, fp) != b.len)
		diag("short write: %s", strerror(errno));
	free(m.p);
	if (fp != NULL) {
		free(b.p);
		memset(&b, 0, sizeof b);
	}
	return b;
}

static void
test_gzip_bomb(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512] = "", path[128];

	dw_limits_default(&lim);
	snprintf(path, sizeof path, "%s/bomb.gz", tmpdir);
	FILE *fp = fopen(path, "wb");
	if (fp != NULL) {
		make_gzip_bomb(fp);
		ok(fclose(fp) == 0, "bomb written to %s", path);
	} else {
		ok(0, "cannot create %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (stat(path, &st) == 0)
		diag("gzip bomb: %lld bytes compressed, 10 GiB inflated", (long long)st.st_size);

	long rss0 = maxrss_kib();
	double t0 = now_s();
	int rc = run_path(path, 10, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	double dt = now_s() - t0;
	long rss1 = maxrss_kib();
	diag("gzip bomb: stopped after %.2f s, maxrss %ld -> %ld KiB", dt, rss0, rss1);

	is_int(rc, DW_E_LIMIT, "gzip bomb: DW_E_LIMIT");
	is_str(err, "decompressed size exceeds the 512 MiB limit (limits.decompressed_max)",
	       "gzip bomb: message names the limit");
	is_int(c.n, 1, "gzip bomb: one document begun");
	ok(c.d[0].ended && c.d[0].status == DW_E_LIMIT, "gzip bomb: doc_end saw DW_E_LIMIT");
	ok(c.d[0].len <= 512 * MiB && c.d[0].len > 511 * MiB,
	   "gzip bomb: delivered just under the cap (%" PRIu64 " bytes)", c.d[0].len);
	ok(c.d[0].max_chunk <= 65536, "gzip bomb: chunks at most 64 KiB");
	ok(dt < 20.0, "gzip bomb: returns fast (%.2f s)", dt);
#if defined(__SANITIZE_ADDRESS__)
	diag("built with ASan: RSS bound not asserted (delta %ld KiB)", rss1 - rss0);
#else
	ok(rss1 - rss0 < 64 * 1024, "gzip bomb: memory stays bounded (maxrss +%ld KiB)", rss1 - rss0);
#endif
	unlink(path);
	cons_free(&c);
	dw_quirks_clear(&q);

	/* The bomb gzipped once more shrinks to a few KB (its members repeat
	 * inside deflate's window): the ratio limit stops it after the grace. */
	struct bytes bomb = make_gzip_bomb(NULL);
	struct bytes bomb2 = gz_of(bomb.p, bomb.len);
	free(bomb.p);
	t0 = now_s();
	rc = run_mem(bomb2.p, bomb2.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	dt = now_s() - t0;
	diag("double gzip bomb: %zu bytes, stopped after %.3f s: %s", bomb2.len, dt, err);
	is_int(rc, DW_E_LIMIT, "double gzip bomb: DW_E_LIMIT");
	ok(contains(err, "decompression ratio exceeds the 2000:1 limit (limits.ratio_max)"),
	   "double gzip bomb: the ratio limit is named");
	ok(c.n == 1 && c.d[0].len <= lim.ratio_grace, "double gzip bomb: stopped at the grace");
	ok(dw_quirks_has(&q, "double-compressed"), "double gzip bomb: quirk");
	free(bomb2.p);
	cons_free(&c);
	dw_quirks_clear(&q);
}

/* ------------------------------------------------------------------ */
/* The corpus.                                                          */

struct corpus_case {
	const char *path;
	int kind;
	const char *name;     /* expected zip member name, NULL for gzip */
	uint64_t len;         /* 0: compare with want_path instead */
	uint32_t crc;
	const char *want_path; /* the same report uncompressed, if in the corpus */
	int double_compressed;
};

static void
check_corpus_doc(const struct corpus_case *cc, const struct cons *c, int rc, const char *err,
                 const struct dw_quirks *q, const char *how, uint64_t want_len, uint32_t want_crc)
{
	is_int(rc, DW_OK, "%s (%s): DW_OK", cc->path, how);
	if (rc != DW_OK)
		diag("err: %s", err);
	is_int(c->n, 1, "%s (%s): one document", cc->path, how);
	if (c->n < 1)
		return;
	const struct doc *d = &c->d[0];
	if (cc->name != NULL)
		is_str(d->has_name ? d->name : NULL, cc->name, "%s (%s): member name", cc->path, how);
	else
		ok(!d->has_name, "%s (%s): no name outside zip", cc->path, how);
	ok(d->ended && d->status == DW_OK, "%s (%s): ended OK", cc->path, how);
	is_int(d->len, want_len, "%s (%s): length", cc->path, how);
	ok(d->crc == want_crc, "%s (%s): content checksum", cc->path, how);
	ok(d->datalen >= 5 && memcmp(d->data, "<?xml", 5) == 0, "%s (%s): starts with <?xml", cc->path,
	   how);
	is_int(dw_quirks_has(q, "double-compressed"), cc->double_compressed,
	       "%s (%s): double-compressed quirk", cc->path, how);
	is_int(c->misuse, 0, "%s (%s): callbacks in order", cc->path, how);
}

static void
test_corpus(void)
{
	static const char fastmail[] = "tests/data/corpus/aggregate/parsedmarc/"
	                               "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz";
	const struct corpus_case cases[] = {
	    {fastmail, DW_PAYLOAD_GZIP, NULL, 0, 0, NULL, 0},
	    {"tests/data/corpus/aggregate/parsedmarc/nice-input.xml.zip", DW_PAYLOAD_ZIP,
	     "nice-input.xml", 15159, 0x4289f97a, NULL, 0},
	    {"tests/data/corpus/aggregate/avvertix/dmarc.zip", DW_PAYLOAD_ZIP, "dmarc.xml", 2242,
	     0x5a83f245, NULL, 0},
	    {"tests/data/corpus/aggregate/tierpod/test.xml.gz.gz", DW_PAYLOAD_GZIP, NULL, 0, 0,
	     "tests/data/corpus/aggregate/tierpod/test.xml", 1},
	};
	struct dw_limits lim;
	dw_limits_default(&lim);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct corpus_case *cc = &cases[i];
		uint64_t want_len = cc->len;
		uint32_t want_crc = cc->crc;

		if (cc->want_path != NULL) {
			size_t n;
			unsigned char *w = read_file(cc->want_path, &n);
			want_len = n;
			want_crc = crc_of(w, n);
			free(w);
		} else if (want_len == 0) {
			/* Decompress independently with zlib's gz* API. */
			gzFile gf = gzopen(cc->path, "rb");
			unsigned char buf[4096];
			int n;
			want_crc = crc_of(NULL, 0);
			while (gf != NULL && (n = gzread(gf, buf, sizeof buf)) > 0) {
				want_crc = (uint32_t)crc32(want_crc, buf, (uInt)n);
				want_len += (uint64_t)n;
			}
			if (gf != NULL)
				gzclose(gf);
		}

		size_t len;
		unsigned char *buf = read_file(cc->path, &len);
		ok(buf != NULL && len > 0, "%s: read", cc->path);
		ok(buf != NULL && (cc->kind == DW_PAYLOAD_ZIP ? memcmp(buf, "PK\3\4", 4) == 0
		                                              : buf[0] == 0x1f && buf[1] == 0x8b),
		   "%s: magic matches the kind", cc->path);

		struct cons cm = {0}, cf = {0}, ch = {0};
		struct dw_quirks qm = {0}, qf = {0}, qh = {0};
		char err[512] = "";

		int rc = run_mem(buf, len, cc->kind, &lim, &cm, &qm, err, sizeof err);
		check_corpus_doc(cc, &cm, rc, err, &qm, "memory", want_len, want_crc);
		rc = run_path(cc->path, 0, cc->kind, &lim, &cf, &qf, err, sizeof err);
		check_corpus_doc(cc, &cf, rc, err, &qf, "FILE*", want_len, want_crc);
		rc = run_path(cc->path, 7, cc->kind, &lim, &ch, &qh, err, sizeof err);
		check_corpus_doc(cc, &ch, rc, err, &qh, "FILE* with 7 head bytes", want_len, want_crc);
		ok(cm.n == 1 && cf.n == 1 && cm.d[0].datalen == cf.d[0].datalen &&
		       memcmp(cm.d[0].data, cf.d[0].data, cm.d[0].datalen) == 0,
		   "%s: memory and FILE* give identical bytes", cc->path);
		cons_free(&cm);
		cons_free(&cf);
		cons_free(&ch);
		dw_quirks_clear(&qm);
		dw_quirks_clear(&qf);
		dw_quirks_clear(&qh);
		free(buf);
	}

	/* Raw XML passes through unchanged, from memory and from a stream. */
	{
		const char *path = "tests/data/corpus/aggregate/cry-inc/acme.xml";
		size_t len;
		unsigned char *want = read_file(path, &len);
		struct cons c = {0};
		struct dw_quirks q = {0};
		char err[256];
		int rc = run_path(path, 100, DW_PAYLOAD_XML, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_OK, "raw XML from FILE*: DW_OK");
		ok(c.n == 1 && doc_is(&c.d[0], want, len), "raw XML from FILE*: same bytes");
		cons_free(&c);
		rc = run_mem(want, len, DW_PAYLOAD_XML, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && doc_is(&c.d[0], want, len) && !c.d[0].has_name,
		   "raw XML from memory: same bytes, no name");
		is_int(q.n, 0, "raw XML: no quirks");
		cons_free(&c);
		free(want);
	}
}

/* ------------------------------------------------------------------ */
/* gzip edge cases.                                                     */

static void
test_gzip(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512];
	int rc;
	dw_limits_default(&lim);

	/* Two members concatenated: the output is the concatenation. */
	struct bytes mm = {0};
	gz_member(&mm, xml1, strlen(xml1) - 12, 1);
	gz_member(&mm, xml1 + strlen(xml1) - 12, 12, 1);
	rc = run_mem(mm.p, mm.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	is_int(rc, DW_OK, "gzip multi-member: DW_OK");
	ok(c.n == 1 && doc_is(&c.d[0], xml1, strlen(xml1)), "gzip multi-member: concatenated output");
	is_int(q.n, 0, "gzip multi-member: no quirk");
	cons_free(&c);
	free(mm.p);

	/* Trailing garbage and zero padding are accepted with a quirk. */
	static const char *const tails[] = {"garbage after the member\n", NULL};
	for (int t = 0; t < 2; t++) {
		struct bytes g = gz_of(xml1, strlen(xml1));
		unsigned char zeros[600] = {0};
		if (tails[t] != NULL)
			bytes_add(&g, tails[t], strlen(tails[t]));
		else
			bytes_add(&g, zeros, sizeof zeros);
		const char *what = t == 0 ? "garbage" : "zero padding";
		rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_OK, "gzip + trailing %s: DW_OK", what);
		ok(c.n == 1 && doc_is(&c.d[0], xml1, strlen(xml1)), "gzip + trailing %s: content", what);
		ok(dw_quirks_has(&q, "gzip-trailing-bytes"), "gzip + trailing %s: quirk", what);
		cons_free(&c);
		dw_quirks_clear(&q);
		/* One byte of junk after a member is also just trailing junk. */
		g.len -= (t == 0 ? strlen(tails[0]) : sizeof zeros) - 1;
		rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && doc_is(&c.d[0], xml1, strlen(xml1)) &&
		       dw_quirks_has(&q, "gzip-trailing-bytes"),
		   "gzip + one trailing byte (%s): content and quirk", what);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(g.p);
	}

	/* Truncated: inside the data, and inside the header. */
	{
		char big[8192];
		for (size_t i = 0; i < sizeof big; i++)
			big[i] = (char)('a' + (i * 7 + i / 13) % 26);
		memcpy(big, "<?xml", 5);
		struct bytes g = gz_of(big, sizeof big);
		rc = run_mem(g.p, g.len - 9, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_INPUT, "truncated gzip: DW_E_INPUT");
		is_str(err, "gzip data truncated", "truncated gzip: message");
		ok(c.n == 0 || (c.d[0].ended && c.d[0].status == DW_E_INPUT),
		   "truncated gzip: a begun document ended with the error");
		cons_free(&c);
		rc = run_mem(g.p, 6, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && c.n == 0 && contains(err, "truncated"),
		   "gzip cut in its header: DW_E_INPUT, no document (%s)", err);
		cons_free(&c);
		rc = run_mem(g.p, 0, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && c.n == 0, "empty gzip: DW_E_INPUT, no document");
		cons_free(&c);

		/* Corrupt: damage the deflate data, then the CRC trailer. */
		g.p[g.len / 2] ^= 0x55;
		g.p[g.len / 2 + 1] ^= 0xaa;
		rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "gzip data corrupt: "),
		   "corrupt gzip: DW_E_INPUT with zlib's reason (%s)", err);
		cons_free(&c);
		g.p[g.len / 2] ^= 0x55;
		g.p[g.len / 2 + 1] ^= 0xaa;
		g.p[g.len - 6] ^= 1;
		rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_INPUT, "gzip with bad CRC: DW_E_INPUT");
		is_str(err, "gzip data corrupt: incorrect data check", "gzip with bad CRC: message");
		ok(c.n == 1 && c.d[0].ended && c.d[0].status == DW_E_INPUT,
		   "gzip with bad CRC: document ended with DW_E_INPUT");
		cons_free(&c);
		free(g.p);
	}

	/* JSON (an SMTP TLS report) inside gzip is passed through: the caller
	 * decides what to do with it. */
	{
		static const char json[] = "{\"organization-name\":\"x\"}";
		struct bytes g = gz_of(json, strlen(json));
		rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && doc_is(&c.d[0], json, strlen(json)),
		   "gzip of JSON: one document, bytes unchanged");
		cons_free(&c);
		free(g.p);
	}

	/* Double gzip streams through; triple is refused. */
	{
		struct bytes g1 = gz_of(xml2, strlen(xml2));
		struct bytes g2 = gz_of(g1.p, g1.len);
		struct bytes g3 = gz_of(g2.p, g2.len);
		rc = run_mem(g2.p, g2.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && doc_is(&c.d[0], xml2, strlen(xml2)),
		   "gzip in gzip: content");
		ok(dw_quirks_has(&q, "double-compressed"), "gzip in gzip: quirk");
		cons_free(&c);
		dw_quirks_clear(&q);
		rc = run_mem(g3.p, g3.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_INPUT, "gzip in gzip in gzip: refused");
		ok(contains(err, "nested more than two levels"), "gzip x3: message (%s)", err);
		is_int(c.n, 0, "gzip x3: no document");
		cons_free(&c);
		dw_quirks_clear(&q);
		/* The inner gzip truncated: the error names it. */
		struct bytes g2t = gz_of(g1.p, g1.len - 4);
		rc = run_mem(g2t.p, g2t.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "inner gzip data truncated"),
		   "gzip in gzip, inner truncated: %s", err);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(g1.p);
		free(g2.p);
		free(g3.p);
		free(g2t.p);
	}
	dw_quirks_clear(&q);
}

/* ------------------------------------------------------------------ */
/* Limits on gzip.                                                      */

static void
test_gzip_limits(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512];
	int rc;
	unsigned char spaces[65536];
	memset(spaces, ' ', sizeof spaces);

	/* 5 MiB of spaces after an XML start, one member (ratio ~1000:1). */
	struct bytes g = {0};
	{
		z_stream z;
		unsigned char obuf[65536];
		static const char start[] = "<?xml version=\"1.0\"?><feedback>";
		memset(&z, 0, sizeof z);
		deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
		for (int r = -1; r <= 80; r++) {
			z.next_in = r < 0 ? (Bytef *)(uintptr_t)start : spaces;
			z.avail_in = r < 0 ? (uInt)strlen(start) : r == 80 ? 0 : (uInt)sizeof spaces;
			int zr;
			do {
				z.next_out = obuf;
				z.avail_out = sizeof obuf;
				zr = deflate(&z, r == 80 ? Z_FINISH : Z_NO_FLUSH);
				bytes_add(&g, obuf, sizeof obuf - z.avail_out);
			} while (r == 80 ? zr != Z_STREAM_END : z.avail_out == 0);
		}
		deflateEnd(&z);
	}
	const uint64_t full = 80 * 65536 + strlen("<?xml version=\"1.0\"?><feedback>");

	dw_limits_default(&lim);
	rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	ok(rc == DW_OK && c.n == 1 && c.d[0].len == full,
	   "5 MiB member, default limits: delivered whole (%zu bytes compressed)", g.len);
	cons_free(&c);

	lim.decompressed_max = 1 * MiB;
	rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "decompressed_max 1 MiB: DW_E_LIMIT");
	is_str(err, "decompressed size exceeds the 1 MiB limit (limits.decompressed_max)",
	       "decompressed_max 1 MiB: message");
	ok(c.n == 1 && c.d[0].len <= 1 * MiB && c.d[0].ended && c.d[0].status == DW_E_LIMIT,
	   "decompressed_max 1 MiB: at most 1 MiB delivered, document ended with the limit");
	ok(contains(c.d[0].msg, "limits.decompressed_max"), "doc_end got the message");
	cons_free(&c);

	dw_limits_default(&lim);
	lim.ratio_max = 100;
	rc = run_mem(g.p, g.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "ratio_max 100: DW_E_LIMIT");
	ok(contains(err, "decompression ratio exceeds the 100:1 limit (limits.ratio_max)"),
	   "ratio_max 100: message names the limit (%s)", err);
	ok(c.n == 1 && c.d[0].len + 65536 > lim.ratio_grace && c.d[0].len <= lim.ratio_grace,
	   "ratio_max 100: stopped at the grace (%" PRIu64 " bytes)", c.d[0].len);
	cons_free(&c);

	/* Raw XML was not decompressed: decompressed_max does not apply (its
	 * size is bounded by the input itself, and a mail's by mail_max). */
	dw_limits_default(&lim);
	lim.decompressed_max = 1000;
	char raw[3000];
	memset(raw, ' ', sizeof raw);
	memcpy(raw, "<?xml", 5);
	rc = run_mem((const unsigned char *)raw, sizeof raw, DW_PAYLOAD_XML, &lim, &c, &q, err,
	             sizeof err);
	ok(rc == DW_OK && c.n == 1 && c.d[0].len == sizeof raw,
	   "raw XML larger than decompressed_max is passed whole (%s)", err);
	cons_free(&c);
	free(g.p);
	dw_quirks_clear(&q);
}

/* ------------------------------------------------------------------ */
/* zip.                                                                 */

static void
test_zip(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512];
	int rc;
	size_t zlen;
	unsigned char *z;
	dw_limits_default(&lim);

	/* Two reports, in order, with a directory entry that is skipped. */
	{
		const struct zent e[] = {
		    {"a/", NULL, 0, 0, NULL, 1},
		    {"a/first.xml", xml1, strlen(xml1), ZIP_CM_DEFLATE, NULL, 0},
		    {"second.xml", xml2, strlen(xml2), ZIP_CM_STORE, NULL, 0},
		};
		z = zip_build(e, 3, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_OK, "zip with two reports: DW_OK");
		is_int(c.n, 2, "zip with two reports: two documents");
		ok(c.n == 2 && doc_is(&c.d[0], xml1, strlen(xml1)) && doc_is(&c.d[1], xml2, strlen(xml2)),
		   "zip with two reports: contents in order");
		is_str(c.d[0].name, "a/first.xml", "zip: first member name");
		is_str(c.d[1].name, "second.xml", "zip: second member name");
		is_int(q.n, 0, "zip with two reports: no quirks");
		cons_free(&c);

		/* The same through a pipe-like stream with a head. */
		char path[128];
		snprintf(path, sizeof path, "%s/two.zip", tmpdir);
		write_file(path, z, zlen);
		rc = run_path(path, 30, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 2 && doc_is(&c.d[1], xml2, strlen(xml2)),
		   "zip from FILE* with head: same documents");
		cons_free(&c);
		lim.mail_max = zlen - 1;
		rc = run_path(path, 30, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_LIMIT && contains(err, "limits.mail_max") && c.n == 0,
		   "zip from FILE* over mail_max: DW_E_LIMIT (%s)", err);
		cons_free(&c);
		dw_limits_default(&lim);
		unlink(path);

		/* A callback abort stops after the first document. */
		c.data_rc = DW_E_STORE;
		c.data_msg = "database is locked";
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_STORE, "doc_data failure: its code is returned");
		is_str(err, "database is locked", "doc_data failure: its text is kept");
		ok(c.n == 1 && c.d[0].ended && c.d[0].status == DW_E_STORE,
		   "doc_data failure: doc_end got the status, no second document");
		cons_free(&c);
		c.begin_rc = DW_E_SYS;
		c.begin_msg = "no parser";
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_SYS && strcmp(err, "no parser") == 0 && c.begins == 1 && c.misuse == 0,
		   "doc_begin failure: returned as-is, nothing else called");
		cons_free(&c);
		/* doc_end's verdict is each document's final status, and the
		 * other documents are still delivered. */
		c.end_rc = DW_E_INPUT;
		c.end_msg = "report.c: line 3: not a report";
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && strcmp(err, "report.c: line 3: not a report") == 0 && c.n == 2,
		   "doc_end failure: first one returned, both documents delivered");
		cons_free(&c);

		/* Truncated archives. */
		rc = run_mem(z, zlen / 2, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "zip archive unreadable") && c.n == 0,
		   "zip cut in half: DW_E_INPUT (%s)", err);
		cons_free(&c);
		rc = run_mem(z, zlen - 5, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "zip archive unreadable") && c.n == 0,
		   "zip missing its last bytes: DW_E_INPUT (%s)", err);
		cons_free(&c);
		rc = run_mem(z, 3, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && c.n == 0, "zip of 3 bytes: DW_E_INPUT (%s)", err);
		cons_free(&c);
		free(z);
	}

	/* The Info-ZIP fixture: a directory, a report and a README. */
	{
		rc = run_path("tests/data/unpack/xml-and-readme.zip", 0, DW_PAYLOAD_ZIP, &lim, &c, &q, err,
		              sizeof err);
		is_int(rc, DW_OK, "xml-and-readme.zip: DW_OK");
		ok(c.n == 1 && c.d[0].len == 758 && c.d[0].crc == 0xa2beba17,
		   "xml-and-readme.zip: the report only");
		is_str(c.d[0].name, "report/report.xml", "xml-and-readme.zip: member name");
		ok(dw_quirks_has(&q, "zip-member-skipped:report_readme.txt"),
		   "xml-and-readme.zip: README skipped with quirk");
		cons_free(&c);
		dw_quirks_clear(&q);
	}

	/* Streamed zip (general purpose bit 3: sizes and CRC only in a data
	 * descriptor after the data), as Java's ZipOutputStream writes them. */
	{
		rc = run_path("tests/data/unpack/data-descriptor.zip", 0, DW_PAYLOAD_ZIP, &lim, &c, &q, err,
		              sizeof err);
		is_int(rc, DW_OK, "data-descriptor.zip: DW_OK");
		if (rc != DW_OK)
			diag("err: %s", err);
		ok(c.n == 1 && c.d[0].len == 758 && c.d[0].crc == 0xa2beba17 &&
		       strcmp(c.d[0].name, "google.com!example.com!1700000000!1700086399.xml") == 0,
		   "data-descriptor.zip: the report");
		is_int(q.n, 0, "data-descriptor.zip: no quirks");
		cons_free(&c);
		dw_quirks_clear(&q);
	}

	/* No report at all. */
	{
		static const char txt[] = "just some text\n";
		const struct zent e[] = {
		    {"README.txt", txt, strlen(txt), ZIP_CM_DEFLATE, NULL, 0},
		    {"notes\n.md", txt, strlen(txt), ZIP_CM_STORE, NULL, 0},
		};
		z = zip_build(e, 2, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_INPUT, "zip without report: DW_E_INPUT");
		is_str(err, "zip archive contains no report (2 members: README.txt, notes?.md)",
		       "zip without report: message lists the members");
		ok(dw_quirks_has(&q, "zip-member-skipped:readme.txt") &&
		       dw_quirks_has(&q, "zip-member-skipped:notes_.md"),
		   "zip without report: quirks");
		cons_free(&c);
		dw_quirks_clear(&q);
		free(z);

		/* Many long names: the message stays one bounded line. */
		struct zent many[6];
		char names[6][120];
		for (int i = 0; i < 6; i++) {
			memset(names[i], 'n', sizeof names[i] - 1);
			names[i][sizeof names[i] - 1] = '\0';
			names[i][0] = (char)('a' + i);
			many[i] = (struct zent){names[i], txt, strlen(txt), ZIP_CM_STORE, NULL, 0};
		}
		z = zip_build(many, 6, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "(6 members: annn") && contains(err, ", ...)") &&
		       strlen(err) < 300,
		   "zip without report, long names: bounded message (%zu chars)", strlen(err));
		cons_free(&c);
		dw_quirks_clear(&q);
		free(z);
	}

	/* A .xml.gz member is unwrapped; UTF-16 XML is recognised. */
	{
		struct bytes g = gz_of(xml2, strlen(xml2));
		static const unsigned char u16[] = {0xff, 0xfe, '<', 0, '?', 0, 'x', 0, 'm', 0, 'l', 0,
		                                    ' ', 0, '?', 0, '>', 0};
		const struct zent e[] = {
		    {"report.xml.gz", g.p, g.len, ZIP_CM_STORE, NULL, 0},
		    {"utf16.xml", u16, sizeof u16, ZIP_CM_DEFLATE, NULL, 0},
		};
		z = zip_build(e, 2, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_OK, "zip with .xml.gz member: DW_OK");
		ok(c.n == 2 && doc_is(&c.d[0], xml2, strlen(xml2)) && strcmp(c.d[0].name, "report.xml.gz") == 0,
		   "zip with .xml.gz member: unwrapped");
		ok(c.n == 2 && doc_is(&c.d[1], u16, sizeof u16), "zip: UTF-16 member delivered");
		ok(dw_quirks_has(&q, "double-compressed"), "zip with .xml.gz member: quirk");
		cons_free(&c);
		dw_quirks_clear(&q);

		/* That zip inside a gzip: one level of zip, the gzip member is
		 * one level too deep. */
		struct bytes gz = gz_of(z, zlen);
		rc = run_mem(gz.p, gz.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_INPUT, "gzip(zip(gzip)): first error returned");
		ok(contains(err, "zip member report.xml.gz: gzip inside a zip inside a gzip"),
		   "gzip(zip(gzip)): member refused (%s)", err);
		ok(c.n == 1 && doc_is(&c.d[0], u16, sizeof u16) && strcmp(c.d[0].name, "utf16.xml") == 0,
		   "gzip(zip): the plain member is still delivered");
		ok(dw_quirks_has(&q, "double-compressed"), "gzip(zip): quirk");
		cons_free(&c);
		dw_quirks_clear(&q);
		free(gz.p);
		free(z);

		/* A zip holding a gzip of a gzip: refused. */
		struct bytes gg = gz_of(g.p, g.len);
		const struct zent e2[] = {{"r.xml.gz.gz", gg.p, gg.len, ZIP_CM_DEFLATE, NULL, 0}};
		z = zip_build(e2, 1, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "nested more than two levels") && c.n == 0,
		   "zip(gzip(gzip)): refused (%s)", err);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(z);
		free(gg.p);
		free(g.p);
	}

	/* A report zipped inside a gzip is delivered. */
	{
		const struct zent e[] = {{"inner.xml", xml1, strlen(xml1), ZIP_CM_DEFLATE, NULL, 0}};
		z = zip_build(e, 1, &zlen);
		struct bytes gz = gz_of(z, zlen);
		rc = run_mem(gz.p, gz.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && doc_is(&c.d[0], xml1, strlen(xml1)) &&
		       strcmp(c.d[0].name, "inner.xml") == 0 && dw_quirks_has(&q, "double-compressed"),
		   "gzip(zip(xml)): delivered with quirk");
		cons_free(&c);
		dw_quirks_clear(&q);
		lim.mail_max = zlen - 1;
		rc = run_mem(gz.p, gz.len, DW_PAYLOAD_GZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_LIMIT && contains(err, "zip archive inside gzip exceeds") &&
		       contains(err, "limits.mail_max"),
		   "gzip(zip) over mail_max: DW_E_LIMIT (%s)", err);
		dw_limits_default(&lim);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(gz.p);
		free(z);
	}

	/* Hostile member names: delivered, flagged, nothing written anywhere. */
	{
		const struct zent e[] = {
		    {"../../etc/evil.xml", xml1, strlen(xml1), ZIP_CM_DEFLATE, NULL, 0},
		    {"/etc/passwd.xml", xml2, strlen(xml2), ZIP_CM_DEFLATE, NULL, 0},
		};
		char base[128], deep[160], cwd[4096];
		z = zip_build(e, 2, &zlen);
		snprintf(base, sizeof base, "%s/jail", tmpdir);
		snprintf(deep, sizeof deep, "%s/a/b", base);
		mkdir(base, 0700);
		snprintf(cwd, sizeof cwd, "%s/a", base);
		mkdir(cwd, 0700);
		mkdir(deep, 0700);
		int dfd = open(".", O_RDONLY | O_DIRECTORY);
		int chd = chdir(deep);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		if (dfd >= 0) {
			if (fchdir(dfd) != 0)
				diag("fchdir back failed: %s", strerror(errno));
			close(dfd);
		}
		ok(chd == 0, "chdir into %s", deep);
		is_int(rc, DW_OK, "suspicious names: DW_OK");
		ok(c.n == 2 && strcmp(c.d[0].name, "../../etc/evil.xml") == 0 &&
		       doc_is(&c.d[0], xml1, strlen(xml1)),
		   "'../../etc/evil.xml' delivered as a document with its name");
		ok(dw_quirks_has(&q, "zip-suspicious-name"), "suspicious names: quirk");
		/* The tree holds exactly base/a/b, all empty. */
		int extra = 0;
		const char *dirs[] = {base, cwd, deep};
		for (int i = 0; i < 3; i++) {
			DIR *dp = opendir(dirs[i]);
			struct dirent *de;
			while (dp != NULL && (de = readdir(dp)) != NULL) {
				if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
					continue;
				if ((i == 0 && strcmp(de->d_name, "a") == 0) ||
				    (i == 1 && strcmp(de->d_name, "b") == 0))
					continue;
				diag("unexpected file %s/%s", dirs[i], de->d_name);
				extra++;
			}
			if (dp != NULL)
				closedir(dp);
		}
		is_int(extra, 0, "suspicious names: nothing written in the working directory tree");
		ok(access("/etc/evil.xml", F_OK) != 0, "suspicious names: no /etc/evil.xml");
		rmdir(deep);
		rmdir(cwd);
		rmdir(base);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(z);
	}

	/* Too many entries. */
	{
		struct zent e[40];
		char names[40][16];
		for (int i = 0; i < 40; i++) {
			snprintf(names[i], sizeof names[i], "r%02d.xml", i);
			e[i] = (struct zent){names[i], xml1, strlen(xml1), ZIP_CM_DEFLATE, NULL, 0};
		}
		z = zip_build(e, 40, &zlen);
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_LIMIT, "zip with 40 entries: DW_E_LIMIT");
		is_str(err, "zip archive has 40 entries, more than the limit of 32 (limits.zip_members_max)",
		       "zip with 40 entries: message");
		is_int(c.begins, 0, "zip with 40 entries: no document");
		cons_free(&c);
		free(z);
	}

	/* Encrypted members: Info-ZIP PKWARE fixture, libzip AES in memory. */
	{
		rc = run_path("tests/data/unpack/encrypted-pkware.zip", 0, DW_PAYLOAD_ZIP, &lim, &c, &q,
		              err, sizeof err);
		is_int(rc, DW_E_INPUT, "encrypted-pkware.zip: DW_E_INPUT");
		is_str(err, "zip member report.xml: encrypted: refused", "encrypted-pkware.zip: message");
		is_int(c.begins, 0, "encrypted-pkware.zip: not delivered");
		cons_free(&c);
		if (zip_encryption_method_supported(ZIP_EM_AES_256, 1)) {
			const struct zent e[] = {
			    {"secret.xml", xml1, strlen(xml1), ZIP_CM_DEFLATE, "pw", 0},
			    {"open.xml", xml2, strlen(xml2), ZIP_CM_DEFLATE, NULL, 0},
			};
			z = zip_build(e, 2, &zlen);
			rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
			ok(rc == DW_E_INPUT && strcmp(err, "zip member secret.xml: encrypted: refused") == 0,
			   "AES member: refused (%s)", err);
			ok(c.n == 1 && strcmp(c.d[0].name, "open.xml") == 0 && c.d[0].status == DW_OK,
			   "AES member: the other member is still delivered");
			cons_free(&c);
			free(z);
		} else {
			ok(1, "# SKIP libzip without AES support");
			ok(1, "# SKIP libzip without AES support");
		}
	}

	/* A method other than store/deflate (patched to bzip2 in both headers). */
	{
		const struct zent e[] = {
		    {"odd.xml", xml1, strlen(xml1), ZIP_CM_STORE, NULL, 0},
		    {"fine.xml", xml2, strlen(xml2), ZIP_CM_DEFLATE, NULL, 0},
		};
		z = zip_build(e, 2, &zlen);
		size_t cd = find_central(z, zlen);
		ok(cd != SIZE_MAX && memcmp(z, "PK\3\4", 4) == 0, "zip headers found for patching");
		if (cd != SIZE_MAX) {
			put_le16(z + 8, ZIP_CM_BZIP2);
			put_le16(z + cd + 10, ZIP_CM_BZIP2);
		}
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_INPUT && contains(err, "zip member odd.xml: compression method 12 refused"),
		   "bzip2 member: refused (%s)", err);
		ok(c.n == 1 && strcmp(c.d[0].name, "fine.xml") == 0, "bzip2 member: others delivered");
		cons_free(&c);
		free(z);
	}
	dw_quirks_clear(&q);
}

/* ------------------------------------------------------------------ */
/* Zip bombs and lying headers.                                         */

static void
test_zip_limits(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512];
	int rc;
	size_t zlen;
	unsigned char *z;

	/* 5 MiB spaces in one member against a 1 MiB cap. */
	size_t big = 5 * MiB;
	unsigned char *sp = xmalloc(big);
	memset(sp, ' ', big);
	memcpy(sp, "<?xml version=\"1.0\"?>", 21);
	{
		const struct zent e[] = {{"bomb.xml", sp, big, ZIP_CM_DEFLATE, NULL, 0}};
		z = zip_build(e, 1, &zlen);
		diag("zip bomb: %zu MiB in %zu bytes", big >> 20, zlen);
		dw_limits_default(&lim);
		lim.decompressed_max = 1 * MiB;
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		is_int(rc, DW_E_LIMIT, "zip bomb, 1 MiB cap: DW_E_LIMIT");
		is_str(err,
		       "zip member bomb.xml: decompressed size exceeds the 1 MiB limit "
		       "(limits.decompressed_max)",
		       "zip bomb: message names member and limit");
		ok(c.n == 1 && c.d[0].len <= 1 * MiB && c.d[0].status == DW_E_LIMIT,
		   "zip bomb: no more than the cap delivered");
		cons_free(&c);

		dw_limits_default(&lim);
		lim.ratio_max = 100;
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_LIMIT && contains(err, "limits.ratio_max"), "zip bomb, ratio 100: %s", err);
		cons_free(&c);

		/* Declared sizes that lie: tiny uncompressed size, then huge. The
		 * real bytes are delivered or the member is refused; never more. */
		size_t cd = find_central(z, zlen);
		static const uint32_t lies[] = {100, 0xfffffff0u};
		dw_limits_default(&lim);
		for (int i = 0; i < 2 && cd != SIZE_MAX; i++) {
			unsigned char *zz = xmalloc(zlen);
			memcpy(zz, z, zlen);
			put_le32(zz + 22, lies[i]);
			put_le32(zz + cd + 24, lies[i]);
			rc = run_mem(zz, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
			diag("declared size %u for %zu real bytes: rc %d, %" PRIu64 " delivered, %s", lies[i],
			     big, rc, c.n ? c.d[0].len : 0, err);
			ok((rc == DW_OK && c.n == 1 && c.d[0].len == big && c.d[0].crc == crc_of(sp, big)) ||
			       (rc == DW_E_INPUT && (c.n == 0 || c.d[0].len <= big)),
			   "declared size %u: real bytes or refusal", lies[i]);
			ok(rc != DW_OK || dw_quirks_has(&q, "zip-size-mismatch"),
			   "declared size %u: size mismatch noted", lies[i]);
			dw_quirks_clear(&q);
			cons_free(&c);
			free(zz);
		}
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_OK && c.n == 1 && c.d[0].len == big && q.n == 0,
		   "the honest 5 MiB member: delivered, no quirk");
		cons_free(&c);

		/* A wrong CRC in both headers: every byte is read, then refused. */
		if (cd != SIZE_MAX) {
			unsigned char *zz = xmalloc(zlen);
			memcpy(zz, z, zlen);
			uint32_t bad = crc_of(sp, big) ^ 0x1234u;
			put_le32(zz + 14, bad);
			put_le32(zz + cd + 16, bad);
			rc = run_mem(zz, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
			is_int(rc, DW_E_INPUT, "zip CRC mismatch: DW_E_INPUT");
			is_str(err, "zip member bomb.xml: CRC mismatch: the data is corrupt",
			       "zip CRC mismatch: message");
			ok(c.n == 1 && c.d[0].ended && c.d[0].status == DW_E_INPUT,
			   "zip CRC mismatch: the document ended with the error");
			cons_free(&c);
			free(zz);
		}
		free(z);
	}

	/* Two members that together exceed the cap: the payload total counts. */
	{
		const struct zent e[] = {
		    {"a.xml", sp, 700 * 1024, ZIP_CM_DEFLATE, NULL, 0},
		    {"b.xml", sp, 700 * 1024, ZIP_CM_DEFLATE, NULL, 0},
		    {"c.xml", sp, 700 * 1024, ZIP_CM_DEFLATE, NULL, 0},
		};
		z = zip_build(e, 3, &zlen);
		dw_limits_default(&lim);
		lim.decompressed_max = 1 * MiB;
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		ok(rc == DW_E_LIMIT && contains(err, "zip member b.xml: decompressed size of all documents"),
		   "members over the cap together: DW_E_LIMIT (%s)", err);
		ok(c.n == 2 && c.d[0].status == DW_OK && c.d[1].status == DW_E_LIMIT,
		   "members over the cap together: first delivered, second cut, third not begun");
		cons_free(&c);
		free(z);
	}
	free(sp);

	/* The 10 GB gzip bomb stored in a zip: stops at the default 512 MiB. */
	{
		struct bytes bomb = make_gzip_bomb(NULL);
		const struct zent e[] = {{"report.xml.gz", bomb.p, bomb.len, ZIP_CM_STORE, NULL, 0}};
		z = zip_build(e, 1, &zlen);
		free(bomb.p);
		dw_limits_default(&lim);
		double t0 = now_s();
		rc = run_mem(z, zlen, DW_PAYLOAD_ZIP, &lim, &c, &q, err, sizeof err);
		double dt = now_s() - t0;
		is_int(rc, DW_E_LIMIT, "gzip bomb in zip: DW_E_LIMIT");
		is_str(err,
		       "zip member report.xml.gz: decompressed size exceeds the 512 MiB limit "
		       "(limits.decompressed_max)",
		       "gzip bomb in zip: message");
		ok(c.n == 1 && c.d[0].len <= 512 * MiB, "gzip bomb in zip: capped (%.2f s)", dt);
		cons_free(&c);
		dw_quirks_clear(&q);
		free(z);
	}
	dw_quirks_clear(&q);
}

/* ------------------------------------------------------------------ */
/* Read errors and bad arguments.                                       */

static void
test_errors(void)
{
	struct dw_limits lim;
	struct cons c = {0};
	struct dw_quirks q = {0};
	char err[512], want[256];
	dw_limits_default(&lim);
	snprintf(want, sizeof want, "read error: %s", strerror(EISDIR));

	/* Reading a directory stream fails with EISDIR on Linux. */
	static const int kinds[] = {DW_PAYLOAD_XML, DW_PAYLOAD_GZIP, DW_PAYLOAD_ZIP};
	for (int i = 0; i < 3; i++) {
		FILE *fp = fopen("tests/data/unpack", "rb");
		if (fp == NULL) {
			ok(0, "cannot open the directory as a stream: %s", strerror(errno));
			continue;
		}
		struct dw_input in = {.fp = fp};
		int rc = dw_unpack(&in, kinds[i], &lim, &cb, &c, &q, err, sizeof err);
		is_int(rc, DW_E_SOURCE, "read error, kind %d: DW_E_SOURCE", kinds[i]);
		is_str(err, want, "read error, kind %d: message", kinds[i]);
		ok(c.n == 0 || c.d[0].status == DW_E_SOURCE, "read error, kind %d: doc ended with it",
		   kinds[i]);
		cons_free(&c);
		fclose(fp);
	}

	int rc = run_mem((const unsigned char *)"x", 1, 0, &lim, &c, &q, err, sizeof err);
	ok(rc == DW_E_INPUT && c.begins == 0, "unknown kind: DW_E_INPUT (%s)", err);
	cons_free(&c);
	dw_quirks_clear(&q);
}

static void
rm_tmpdir(void)
{
	DIR *dp = opendir(tmpdir);
	struct dirent *de;
	char p[512];
	while (dp != NULL && (de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	if (dp != NULL)
		closedir(dp);
	rmdir(tmpdir);
}

int
main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_unpack.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	/* The bomb goes first: maxrss is a high-water mark, and later tests
	 * that hold a few MiB would hide what the bomb costs. */
	test_gzip_bomb();
	test_corpus();
	test_gzip();
	test_gzip_limits();
	test_zip();
	test_zip_limits();
	test_errors();
	rm_tmpdir();
	return done_testing();
}
