/*
 * test_mime.c - unit tests for src/mime.c: content sniffing, the real corpus
 * mails (aggregate, failure and TLS reports), the hand-made fixtures in
 * tests/data/mail/ (mislabelled parts, nesting in message/rfc822, encodings,
 * header decoding), and hostile messages built at test time (over and under
 * the size limit, garbage, many parts, deep nests, header floods).
 */
#include "dw/limits.h"
#include "dw/mime.h"
#include "dw/util.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MiB ((size_t)1 << 20)
#define CORPUS "tests/data/corpus/"
#define MAIL "tests/data/mail/"

/* ------------------------------------------------------------------ */
/* Helpers.                                                            */

struct blob {
	unsigned char *p;
	size_t n;
};

static struct blob
slurp(const char *path)
{
	struct blob b = {NULL, 0};
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		diag("cannot open %s", path);
		return b;
	}
	size_t cap = 65536;
	b.p = xmalloc(cap);
	for (;;) {
		if (b.n == cap)
			b.p = xrealloc(b.p, cap *= 2);
		size_t r = fread(b.p + b.n, 1, cap - b.n, f);
		if (r == 0)
			break;
		b.n += r;
	}
	fclose(f);
	return b;
}

static struct dw_limits lim;

/* Parse a file; returns the rc, *m is NULL unless DW_OK. */
static int
parse_file(const char *path, struct dw_mail **m, char *err, size_t errlen)
{
	struct blob b = slurp(path);
	*m = NULL;
	if (b.p == NULL)
		return -1;
	int rc = dw_mime_parse(b.p, b.n, &lim, m, err, errlen);
	free(b.p);
	return rc;
}

static int
is_gzip(const struct dw_payload *p)
{
	return p->kind == DW_PAYLOAD_GZIP && p->len >= 2 && p->data[0] == 0x1f && p->data[1] == 0x8b;
}

static int
is_zip(const struct dw_payload *p)
{
	return p->kind == DW_PAYLOAD_ZIP && p->len >= 4 && memcmp(p->data, "PK\3\4", 4) == 0;
}

static int
same_bytes(const struct dw_payload *p, const struct blob *b)
{
	return b->p != NULL && p->len == b->n && memcmp(p->data, b->p, b->n) == 0;
}

/* Equal to b once carriage returns are dropped from the payload (text parts
 * come out with CRLF line ends, the corpus file has LF). */
static int
same_text(const struct dw_payload *p, const struct blob *b)
{
	size_t j = 0;
	for (size_t i = 0; i < p->len; i++) {
		if (p->data[i] == '\r')
			continue;
		if (j >= b->n || p->data[i] != b->p[j])
			return 0;
		j++;
	}
	return j == b->n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
	/* xorshift64*: fast, and good enough to defeat compression. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

static void
fill_random(unsigned char *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = rng();
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (unsigned char)rng();
}

/* Append base64 of data[0..n) in 76-character CRLF lines to out at *o. */
static void
b64_append(unsigned char *out, size_t *o, const unsigned char *data, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t col = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < n)
			v |= data[i + 2];
		out[(*o)++] = (unsigned char)tab[v >> 18 & 63];
		out[(*o)++] = (unsigned char)tab[v >> 12 & 63];
		out[(*o)++] = (unsigned char)(i + 1 < n ? tab[v >> 6 & 63] : '=');
		out[(*o)++] = (unsigned char)(i + 2 < n ? tab[v & 63] : '=');
		col += 4;
		if (col == 76 || i + 3 >= n) {
			out[(*o)++] = '\r';
			out[(*o)++] = '\n';
			col = 0;
		}
	}
}

static size_t
b64_size(size_t n)
{
	size_t chars = (n + 2) / 3 * 4;
	return chars + (chars / 76 + 1) * 2;
}

static const char big_head[] =
	"From: dmarc@reporter.example\r\n"
	"To: rua@example.org\r\n"
	"Subject: big\r\n"
	"Message-ID: <big@reporter.example>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"BIG\"\r\n"
	"\r\n"
	"--BIG\r\n"
	"Content-Type: application/gzip; name=\"big.xml.gz\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n";
static const char big_tail[] = "--BIG--\r\n";

/* A mail with one base64 attachment of n bytes: magic (if any) followed by
 * random bytes. */
static unsigned char *
make_big_mail(size_t n, const unsigned char *magic, size_t magiclen, size_t *len)
{
	unsigned char *data = xmalloc(n);
	fill_random(data, n);
	if (magic != NULL)
		memcpy(data, magic, magiclen);
	size_t cap = sizeof big_head + b64_size(n) + sizeof big_tail;
	unsigned char *m = xmalloc(cap);
	size_t o = 0;
	memcpy(m, big_head, sizeof big_head - 1);
	o = sizeof big_head - 1;
	b64_append(m, &o, data, n);
	memcpy(m + o, big_tail, sizeof big_tail - 1);
	o += sizeof big_tail - 1;
	free(data);
	*len = o;
	return m;
}

static long
maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A growable string for building messages. */
struct sb {
	char *p;
	size_t n, cap;
};

static void
sb_add(struct sb *s, const char *str)
{
	size_t k = strlen(str);
	if (s->n + k + 1 > s->cap) {
		while (s->n + k + 1 > s->cap)
			s->cap = s->cap ? s->cap * 2 : 4096;
		s->p = xrealloc(s->p, s->cap);
	}
	memcpy(s->p + s->n, str, k + 1);
	s->n += k;
}

static int
parse_sb(const struct sb *s, struct dw_mail **m, char *err, size_t errlen)
{
	return dw_mime_parse((const unsigned char *)s->p, s->n, &lim, m, err, errlen);
}

/* ------------------------------------------------------------------ */
/* dw_sniff.                                                           */

static void
test_sniff(void)
{
#define S(lit) dw_sniff((const unsigned char *)(lit), sizeof(lit) - 1)
	is_int(S("\x1f\x8b\x08\x00"), DW_PAYLOAD_GZIP, "sniff: gzip magic");
	is_int(S("\x1f\x8b"), DW_PAYLOAD_GZIP, "sniff: two gzip bytes are enough");
	is_int(S("PK\x03\x04rest"), DW_PAYLOAD_ZIP, "sniff: zip local header");
	is_int(S("PK\x05\x06"), 0, "sniff: empty-zip end record is no report");
	is_int(S("<?xml version=\"1.0\"?><feedback/>"), DW_PAYLOAD_XML, "sniff: <?xml");
	is_int(S("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"), DW_PAYLOAD_XML,
	       "sniff: <feedback without declaration");
	is_int(S("\xef\xbb\xbf<?xml version=\"1.0\"?>"), DW_PAYLOAD_XML, "sniff: UTF-8 BOM then <?xml");
	is_int(S(" \r\n\t\n<?xml version=\"1.0\"?>"), DW_PAYLOAD_XML, "sniff: leading white space");
	is_int(S("\xef\xbb\xbf\r\n  <feedback>"), DW_PAYLOAD_XML, "sniff: BOM, white space, <feedback");
	is_int(S("<!-- generated by X -->\n<feedback>"), DW_PAYLOAD_XML, "sniff: comment before <feedback");
	is_int(S("<!-- a --><!-- b -->  <?xml version=\"1.0\"?>"), DW_PAYLOAD_XML,
	       "sniff: two comments before <?xml");
	is_int(S("<!-- never closed <feedback>"), 0, "sniff: unterminated comment");
	is_int(S("\xff\xfe<\0?\0x\0m\0l\0"), DW_PAYLOAD_XML, "sniff: UTF-16LE with BOM");
	is_int(S("\xfe\xff\0<\0?\0x\0m\0l"), DW_PAYLOAD_XML, "sniff: UTF-16BE with BOM");
	is_int(S("\xff\xfe \0\n\0<\0f\0"), DW_PAYLOAD_XML, "sniff: UTF-16LE BOM, white space, <");
	is_int(S("<\0?\0x\0m\0l\0"), DW_PAYLOAD_XML, "sniff: UTF-16LE without BOM");
	is_int(S("\0<\0?\0x\0m\0l"), DW_PAYLOAD_XML, "sniff: UTF-16BE without BOM");
	is_int(S("\xff\xfeH\0i\0"), 0, "sniff: UTF-16 text that is not XML");
	is_int(S("<html><body>"), 0, "sniff: HTML is not a report");
	is_int(S("<?xm"), 0, "sniff: truncated declaration");
	is_int(S("Hello, world"), 0, "sniff: plain text");
	is_int(S("\x1f"), 0, "sniff: one byte");
	is_int(S(""), 0, "sniff: empty");
	is_int(dw_sniff(NULL, 10), 0, "sniff: NULL buffer");
	is_int(S("H4sIAAAAAAAAA"), 0, "sniff: base64 text of a gzip is not a gzip");
#undef S
}

/* ------------------------------------------------------------------ */
/* Real corpus mails.                                                  */

static void
test_corpus_aggregate(void)
{
	struct dw_mail *m;
	char err[256] = "";

	int rc = parse_file(CORPUS "aggregate/parsedmarc/twilight.eml", &m, err, sizeof err);
	is_int(rc, DW_OK, "twilight.eml parses (LF line ends) %s", err);
	if (rc == DW_OK) {
		is_int(m->npayloads, 1, "twilight: one payload");
		ok(m->npayloads == 1 && is_zip(&m->payloads[0]), "twilight: it is the zip");
		if (m->npayloads == 1) {
			is_int(m->payloads[0].len, 683, "twilight: decoded zip is 683 bytes");
			is_str(m->payloads[0].filename, "google.com!twlnet.com!1549756800!1549843199.zip",
			       "twilight: filename from the folded parameter");
			is_str(m->payloads[0].content_type, "application/zip", "twilight: content type");
			is_int(m->payloads[0].depth, 0, "twilight: depth 0");
		}
		is_str(m->message_id, "1627703331531660819@google.com", "twilight: Message-ID without <>");
		is_str(m->from, "noreply-dmarc-support@google.com", "twilight: From");
		is_str(m->from_domain, "google.com", "twilight: From domain");
		is_str(m->subject,
		       "Report domain: twlnet.com Submitter: google.com Report-ID: 1627703331531660819",
		       "twilight: Subject");
		is_str(m->date, "Sun, 10 Feb 2019 15:59:59 -0800", "twilight: Date raw");
		is_int(m->date_epoch, 1549843199, "twilight: Date as UTC epoch, zone applied");
		is_int(m->n_auth_results, 2, "twilight: two Authentication-Results");
		if (m->n_auth_results == 2) {
			is_str(m->auth_results[0],
			       "relay-twl-01.twlnet.com; dkim=pass (2048-bit key; unprotected) "
			       "header.d=google.com header.i=@google.com header.b=glE73hE7; dkim-atps=neutral",
			       "twilight: first (top) A-R unfolded");
			is_str(m->auth_results[1], "relay-twl-01.twlnet.com; dmarc=pass header.from=google.com",
			       "twilight: second A-R");
		}
		is_int(m->is_feedback_report, 0, "twilight: not a failure report");
		is_int(m->is_tls_report, 0, "twilight: not a TLS report");
		is_int(m->quirks.n, 0, "twilight: no quirks (zip labelled zip)");
		dw_mail_free(m);
	}

	rc = parse_file(CORPUS "aggregate/stalwart-mail-auth/dmarc-feedback-100.eml", &m, err, sizeof err);
	is_int(rc, DW_OK, "stalwart 100.eml parses");
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && is_zip(&m->payloads[0]), "100.eml: one zip payload (single-part body)");
		if (m->npayloads == 1)
			is_int(m->payloads[0].len, 687, "100.eml: 687 bytes");
		is_str(m->message_id, "5264580628977113351@google.com", "100.eml: Message-ID");
		is_str(m->from_domain, "google.com", "100.eml: From domain");
		is_int(m->n_auth_results, 0, "100.eml: no Authentication-Results");
		is_int(m->date_epoch, 1669593599, "100.eml: Date epoch");
		dw_mail_free(m);
	}

	rc = parse_file(CORPUS "aggregate/stalwart-mail-auth/dmarc-feedback-102.eml", &m, err, sizeof err);
	is_int(rc, DW_OK, "stalwart 102.eml parses");
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && is_gzip(&m->payloads[0]), "102.eml: one gzip payload");
		if (m->npayloads == 1) {
			is_int(m->payloads[0].len, 530, "102.eml: 530 bytes");
			is_str(m->payloads[0].filename, "mail.ru!stalw.art!1667865600!1667952000.xml.gz",
			       "102.eml: filename");
		}
		is_str(m->from_domain, "corp.mail.ru", "102.eml: From domain");
		is_str(m->subject,
		       "Report Domain: stalw.art; Submitter: Mail.Ru; Report-ID: 28551467700969547611667865600",
		       "102.eml: folded Subject unfolded");
		is_int(m->n_auth_results, 1, "102.eml: one A-R");
		if (m->n_auth_results == 1)
			ok(strncmp(m->auth_results[0], "relay7.m.smailru.net; auth=pass", 31) == 0,
			   "102.eml: A-R value");
		is_int(m->date_epoch, 1667949998, "102.eml: Date +0300");
		is_int(m->quirks.n, 0, "102.eml: no quirk");
		dw_mail_free(m);
	}

	rc = parse_file(CORPUS "aggregate/stalwart-mail-auth/dmarc-feedback-104.eml", &m, err, sizeof err);
	is_int(rc, DW_OK, "stalwart 104.eml parses");
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && is_gzip(&m->payloads[0]),
		   "104.eml: octet-stream part sniffed as gzip");
		if (m->npayloads == 1)
			is_str(m->payloads[0].content_type, "application/octet-stream", "104.eml: label kept");
		ok(dw_quirks_has(&m->quirks, "mime-label:application/octet-stream-is-gzip"),
		   "104.eml: mislabel quirk");
		is_str(m->from_domain, "amazonses.com", "104.eml: From domain");
		is_str(m->message_id,
		       "010001835a70fc8d-a3d7eff5-7adb-41cc-87bd-a646d9776a69-000000@email.amazonses.com",
		       "104.eml: Message-ID");
		dw_mail_free(m);
	}
}

static void
test_corpus_other(void)
{
	static const char *const forensic[] = {
		CORPUS "forensic/parsedmarc/Netease_DMARC_Failure_Report_Rent_Reminder.eml",
		CORPUS "forensic/parsedmarc/dmarc_ruf_report_linkedin.eml",
		CORPUS "forensic/stalwart-mail-auth/arf-004.eml",
	};
	for (size_t i = 0; i < sizeof forensic / sizeof forensic[0]; i++) {
		struct dw_mail *m;
		char err[256] = "";
		int rc = parse_file(forensic[i], &m, err, sizeof err);
		is_int(rc, DW_OK, "%s parses", forensic[i]);
		if (rc != DW_OK)
			continue;
		is_int(m->is_feedback_report, 1, "%s: failure report flag", forensic[i]);
		is_int(m->npayloads, 0, "%s: no payload", forensic[i]);
		is_int(m->is_tls_report, 0, "%s: not TLS", forensic[i]);
		ok(m->from_domain != NULL, "%s: From domain found", forensic[i]);
		dw_mail_free(m);
	}

	/* The linkedin file starts with an mbox "From " line. */
	struct dw_mail *m;
	char err[256] = "";
	if (parse_file(forensic[1], &m, err, sizeof err) == DW_OK) {
		ok(dw_quirks_has(&m->quirks, "mbox-from-line"), "linkedin: mbox From line skipped");
		is_str(m->from_domain, "linkedin.com", "linkedin: headers read after the mbox line");
		is_str(m->message_id, "BB.91.26019.C3EA7CC5@mail516.prod.linkedin.com", "linkedin: Message-ID");
		dw_mail_free(m);
	}

	static const char *const tls[] = {
		CORPUS "smtp_tls/parsedmarc/google.com_smtp_tls_report.eml",
		CORPUS "smtp_tls/stalwart-mail-auth/tlsrpt-rpt01.eml",
	};
	for (size_t i = 0; i < sizeof tls / sizeof tls[0]; i++) {
		int rc = parse_file(tls[i], &m, err, sizeof err);
		is_int(rc, DW_OK, "%s parses", tls[i]);
		if (rc != DW_OK)
			continue;
		is_int(m->is_tls_report, 1, "%s: TLS report flag", tls[i]);
		is_int(m->is_feedback_report, 0, "%s: not a failure report", tls[i]);
		/* The gzip'd JSON is still a gzip payload by content; the caller
		 * refuses the mail by the flag. */
		ok(m->npayloads == 1 && is_gzip(&m->payloads[0]), "%s: its gzip part is found", tls[i]);
		if (m->npayloads == 1)
			is_str(m->payloads[0].content_type, "application/tlsrpt+gzip", "%s: label", tls[i]);
		dw_mail_free(m);
	}
}

/* ------------------------------------------------------------------ */
/* Fixtures in tests/data/mail/.                                       */

static struct blob gz, zipb, xml;

/* Common headers of the fixtures written by the generator. */
static void
check_fixture_headers(const struct dw_mail *m, const char *name)
{
	is_str(m->from, "\"DMARC Reporter\" <dmarc@Reporter.Example>", "%s: From raw", name);
	is_str(m->from_domain, "reporter.example", "%s: From domain lower-cased", name);
	is_int(m->date_epoch, 1709542800, "%s: Date 10:00 +0100 = 09:00 UTC", name);
	is_int(m->n_auth_results, 1, "%s: one A-R", name);
}

static struct dw_mail *
fixture(const char *file)
{
	char path[256], err[256] = "";
	struct dw_mail *m;
	snprintf(path, sizeof path, MAIL "%s", file);
	int rc = parse_file(path, &m, err, sizeof err);
	is_int(rc, DW_OK, "%s parses %s", file, err);
	return rc == DW_OK ? m : NULL;
}

static void
test_fixtures(void)
{
	struct dw_mail *m;

	if ((m = fixture("gzip-labelled-zip.eml")) != NULL) {
		check_fixture_headers(m, "gzip-labelled-zip");
		is_int(m->npayloads, 1, "gzip-labelled-zip: one payload");
		if (m->npayloads == 1) {
			ok(is_gzip(&m->payloads[0]), "gzip-labelled-zip: sniffed gzip, not zip");
			ok(same_bytes(&m->payloads[0], &gz), "gzip-labelled-zip: bytes decoded exactly");
			is_str(m->payloads[0].content_type, "application/zip", "gzip-labelled-zip: label kept");
		}
		ok(dw_quirks_has(&m->quirks, "mime-label:application/zip-is-gzip"),
		   "gzip-labelled-zip: quirk mime-label:application/zip-is-gzip");
		is_str(m->message_id, "gz-as-zip@reporter.example", "gzip-labelled-zip: Message-ID");
		dw_mail_free(m);
	}

	if ((m = fixture("octet-stream-zip.eml")) != NULL) {
		ok(m->npayloads == 1 && is_zip(&m->payloads[0]) && same_bytes(&m->payloads[0], &zipb),
		   "octet-stream-zip: the zip, exactly");
		ok(dw_quirks_has(&m->quirks, "mime-label:application/octet-stream-is-zip"),
		   "octet-stream-zip: quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("inline-xml.eml")) != NULL) {
		is_int(m->npayloads, 1, "inline-xml: inline disposition still taken");
		if (m->npayloads == 1) {
			is_int(m->payloads[0].kind, DW_PAYLOAD_XML, "inline-xml: XML");
			ok(same_text(&m->payloads[0], &xml), "inline-xml: the report text");
			is_str(m->payloads[0].filename, "gmx.net!myserver.com!1733184000!1733270399.xml",
			       "inline-xml: filename");
			is_str(m->payloads[0].content_type, "text/xml", "inline-xml: content type");
		}
		is_int(m->quirks.n, 0, "inline-xml: text/xml fits, no quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("single-part-gzip.eml")) != NULL) {
		ok(m->npayloads == 1 && same_bytes(&m->payloads[0], &gz) && m->payloads[0].depth == 0,
		   "single-part-gzip: the top-level body is the gzip");
		is_int(m->quirks.n, 0, "single-part-gzip: no quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("related-html.eml")) != NULL) {
		is_int(m->npayloads, 1, "related-html: only the attachment (not html, not gif)");
		if (m->npayloads == 1)
			ok(same_bytes(&m->payloads[0], &gz), "related-html: the gzip");
		dw_mail_free(m);
	}

	if ((m = fixture("rfc822-depth1.eml")) != NULL) {
		is_int(m->npayloads, 1, "rfc822-depth1: report inside the attached message");
		if (m->npayloads == 1) {
			is_int(m->payloads[0].depth, 1, "rfc822-depth1: depth 1");
			ok(same_bytes(&m->payloads[0], &gz), "rfc822-depth1: bytes");
			is_str(m->payloads[0].filename, "depth1.xml.gz", "rfc822-depth1: filename");
		}
		is_str(m->message_id, "rfc822-1@reporter.example", "rfc822-depth1: outer Message-ID, not inner");
		is_int(m->quirks.n, 0, "rfc822-depth1: no quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("rfc822-depth3.eml")) != NULL) {
		is_int(m->npayloads, 1, "rfc822-depth3: taken at the depth limit (3)");
		if (m->npayloads == 1)
			is_int(m->payloads[0].depth, 3, "rfc822-depth3: depth 3");
		ok(!dw_quirks_has(&m->quirks, "rfc822-too-deep"), "rfc822-depth3: no depth quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("rfc822-depth4.eml")) != NULL) {
		is_int(m->npayloads, 0, "rfc822-depth4: report 4 levels down is not taken");
		ok(dw_quirks_has(&m->quirks, "rfc822-too-deep"), "rfc822-depth4: quirk rfc822-too-deep");
		dw_mail_free(m);
	}
	/* The same mail with a higher limit: the report is there. */
	{
		struct dw_limits deep = lim;
		deep.rfc822_depth_max = 4;
		struct blob b = slurp(MAIL "rfc822-depth4.eml");
		char err[256] = "";
		int rc = dw_mime_parse(b.p, b.n, &deep, &m, err, sizeof err);
		is_int(rc, DW_OK, "rfc822-depth4 with rfc822_depth_max 4 parses");
		if (rc == DW_OK) {
			ok(m->npayloads == 1 && m->payloads[0].depth == 4, "rfc822-depth4: found at depth 4");
			dw_mail_free(m);
		}
		free(b.p);
	}

	if ((m = fixture("rfc822-base64.eml")) != NULL) {
		is_int(m->npayloads, 1, "rfc822-base64: report in a base64-encoded message/rfc822");
		if (m->npayloads == 1) {
			is_int(m->payloads[0].depth, 1, "rfc822-base64: depth 1");
			ok(same_bytes(&m->payloads[0], &gz), "rfc822-base64: bytes");
		}
		ok(dw_quirks_has(&m->quirks, "rfc822-transfer-encoded"), "rfc822-base64: quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("two-reports.eml")) != NULL) {
		is_int(m->npayloads, 2, "two-reports: two payloads");
		if (m->npayloads == 2) {
			ok(is_zip(&m->payloads[0]) && same_bytes(&m->payloads[0], &zipb),
			   "two-reports: first the zip (MIME order)");
			ok(is_gzip(&m->payloads[1]) && same_bytes(&m->payloads[1], &gz), "two-reports: then the gzip");
			is_str(m->payloads[0].filename, "r\xc3\xa9port-1.zip", "two-reports: RFC 2231 filename*= decoded");
			is_str(m->payloads[1].filename, "r\xc3\xa9port-2.xml.gz", "two-reports: RFC 2047 name= decoded");
		}
		is_int(m->quirks.n, 0, "two-reports: no quirk");
		dw_mail_free(m);
	}

	if ((m = fixture("human.eml")) != NULL) {
		is_int(m->npayloads, 0, "human: no payload (not a report)");
		is_str(m->subject, "Lunch?", "human: Subject");
		is_int(m->is_feedback_report + m->is_tls_report, 0, "human: no report flags");
		dw_mail_free(m);
	}

	if ((m = fixture("qp-xml.eml")) != NULL) {
		ok(m->npayloads == 1 && m->payloads[0].kind == DW_PAYLOAD_XML, "qp-xml: XML payload");
		if (m->npayloads == 1)
			ok(same_text(&m->payloads[0], &xml), "qp-xml: quoted-printable decoded (=3D, soft breaks)");
		is_int(m->quirks.n, 0, "qp-xml: application/xml fits");
		dw_mail_free(m);
	}

	if ((m = fixture("lf-only.eml")) != NULL) {
		check_fixture_headers(m, "lf-only");
		is_int(m->npayloads, 2, "lf-only: both parts found with bare LF line ends");
		if (m->npayloads == 2) {
			ok(m->payloads[0].kind == DW_PAYLOAD_XML && same_text(&m->payloads[0], &xml),
			   "lf-only: quoted-printable XML with LF soft breaks");
			ok(same_bytes(&m->payloads[1], &gz), "lf-only: base64 gzip with LF lines");
			is_str(m->payloads[0].filename, NULL, "lf-only: no filename given");
		}
		is_str(m->message_id, "lf-only@reporter.example", "lf-only: Message-ID");
		dw_mail_free(m);
	}

	if ((m = fixture("subject-2047.eml")) != NULL) {
		is_str(m->subject,
		       "Rapport DMARC \xe2\x80\x93 soci\xc3\xa9t\xc3\xa9 Domain: example.fr Submitter: reporter.example",
		       "subject-2047: folded encoded words decoded to UTF-8");
		is_int(m->npayloads, 1, "subject-2047: payload");
		dw_mail_free(m);
	}

	if ((m = fixture("folded-ar.eml")) != NULL) {
		is_int(m->n_auth_results, 2, "folded-ar: two A-R (ARC-Authentication-Results is not one)");
		if (m->n_auth_results == 2) {
			is_str(m->auth_results[0],
			       "mx.example.org; dkim=pass header.d=reporter.example header.s=sel; spf=pass "
			       "smtp.mailfrom=reporter.example; dmarc=pass (p=reject) header.from=reporter.example",
			       "folded-ar: top A-R unfolded and trimmed");
			is_str(m->auth_results[1], "forged.example; dmarc=pass",
			       "folded-ar: lower-case field name matched, kept in header order");
		}
		dw_mail_free(m);
	}

	if ((m = fixture("cte-missing.eml")) != NULL) {
		ok(m->npayloads == 1 && same_bytes(&m->payloads[0], &gz),
		   "cte-missing: base64 body without Content-Transfer-Encoding decoded");
		ok(dw_quirks_has(&m->quirks, "mime-base64-unlabelled"), "cte-missing: quirk");
		dw_mail_free(m);
	}
}

/* ------------------------------------------------------------------ */
/* Small built messages: header edge cases.                            */

static void
test_headers(void)
{
	struct dw_mail *m;
	char err[256] = "";
	static const char msg1[] =
		"From: Someone <someone@example.com>\r\n"
		"From: Other <other@evil.example>\r\n"
		"Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"
		"Subject: =?ISO-8859-1?Q?caf=E9?=\r\n"
		"Message-ID: not-bracketed\r\n"
		"\r\n"
		"body\r\n";
	int rc = dw_mime_parse((const unsigned char *)msg1, sizeof msg1 - 1, &lim, &m, err, sizeof err);
	is_int(rc, DW_OK, "headers: small message parses");
	if (rc == DW_OK) {
		is_str(m->from_domain, "example.com", "headers: first From wins");
		ok(dw_quirks_has(&m->quirks, "header-repeated:from"), "headers: repeated From noted");
		is_int(m->date_epoch, 0, "headers: epoch 0");
		is_str(m->subject, "caf\xc3\xa9", "headers: ISO-8859-1 encoded word to UTF-8");
		is_str(m->message_id, "not-bracketed", "headers: odd Message-ID kept");
		is_int(m->n_auth_results, 0, "headers: no A-R");
		is_int(m->npayloads, 0, "headers: no payload");
		dw_mail_free(m);
	}

	static const char msg2[] = "Subject: no date\r\nDate: yesterday-ish\r\n\r\n";
	rc = dw_mime_parse((const unsigned char *)msg2, sizeof msg2 - 1, &lim, &m, err, sizeof err);
	is_int(rc, DW_OK, "headers: message without From parses");
	if (rc == DW_OK) {
		is_str(m->from, NULL, "headers: From absent is NULL");
		is_str(m->from_domain, NULL, "headers: From domain absent is NULL");
		is_str(m->message_id, NULL, "headers: Message-ID absent is NULL");
		is_str(m->date, "yesterday-ish", "headers: unparseable Date kept raw");
		is_int(m->date_epoch, -1, "headers: unparseable Date gives -1");
		dw_mail_free(m);
	}

	static const char msg3[] = "From: a@b.example\r\nDate: Mon, 30 Feb 2024 10:00:00 +0000\r\n\r\nx";
	rc = dw_mime_parse((const unsigned char *)msg3, sizeof msg3 - 1, &lim, &m, err, sizeof err);
	if (rc == DW_OK) {
		is_int(m->date_epoch, -1, "headers: 30 February is refused");
		dw_mail_free(m);
	} else
		ok(0, "headers: msg3 parses");

	/* Multipart/report with report-type feedback-report, quoted. */
	static const char msg4[] =
		"From: a@b.example\r\n"
		"Content-Type: multipart/report; report-type=\"Feedback-Report\"; boundary=x\r\n\r\n"
		"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n";
	rc = dw_mime_parse((const unsigned char *)msg4, sizeof msg4 - 1, &lim, &m, err, sizeof err);
	if (rc == DW_OK) {
		is_int(m->is_feedback_report, 1, "headers: quoted, mixed-case report-type recognised");
		dw_mail_free(m);
	} else
		ok(0, "headers: msg4 parses");
}

/* ------------------------------------------------------------------ */
/* RFC 5322 dates (dw_mail_date) and the top Received: field.          */

/* 2026-03-03T10:00:00Z, from Python's calendar.timegm. */
#define T0 1772532000LL
#define HOUR 3600LL

static void
test_dates(void)
{
	static const struct {
		const char *v;
		long long want;
	} cases[] = {
	    {"Tue, 3 Mar 2026 10:00:00 +0000", T0},
	    {"Tue, 03 Mar 2026 10:00:00 -0700", T0 + 7 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 +0530", T0 - 5 * HOUR - 1800},
	    {"Tue, 3 Mar 2026 10:00:00 +0100 (CET)", T0 - HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 -0000", T0},
	    {"3 Mar 2026 10:00:00 GMT", T0},
	    {"Tue, 3 Mar 2026 10:00:00 UT", T0},
	    {"Tue, 3 Mar 2026 10:00:00 UTC", T0},
	    {"Tue, 3 Mar 2026 10:00:00 Z", T0},
	    {"tue, 3 mar 2026 10:00:00 est", T0 + 5 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 EDT", T0 + 4 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 CST", T0 + 6 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 CDT", T0 + 5 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 MST", T0 + 7 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 MDT", T0 + 6 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 PST", T0 + 8 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 PDT", T0 + 7 * HOUR},
	    {"Tue, 3 Mar 2026 10:00:00 A", T0},        /* military: -0000 */
	    {"Tue, 3 Mar 2026 10:00:00 CEST", T0},     /* unknown name: -0000 */
	    {"Tue, 3 Mar 2026 10:00:00", T0},          /* no zone: -0000 */
	    {"Tue, 3 Mar 2026 10:00 +0000", T0},       /* no seconds */
	    {"Tue, 3 Mar 26 10:00:00 +0000", T0},      /* two-digit year: 2026 */
	    {"Tue, 3 Mar 126 10:00:00 +0000", T0},     /* three digits: 1900 + 126 */
	    {"Fri, 31 Dec 99 23:59:59 +0000", 946684799LL},
	    {"Thu, 29 Feb 2024 23:59:59 +0000", 1709251199LL},
	    {"Tuesday, 3 Mar 2026 10:00:00 +0000", T0},
	    {"(c) Tue (x) , 3 (y) Mar (z) 2026 10 : 00 : 00 (w) +0000", T0},
	    {"Tue,\r\n 3 Mar 2026\r\n\t10:00:00 +0000", T0},
	    {"  Tue, 3 Mar 2026 10:00:00 +0000 (UTC) and more", T0},
	    {"Thu, 1 Jan 1970 00:00:00 +0000", 0},
	    {"Thu, 29 Feb 2023 10:00:00 +0000", -1},
	    {"Tue, 31 Apr 2026 10:00:00 +0000", -1},
	    {"Tue, 3 Mar 2026 24:00:00 +0000", -1},
	    {"Tue, 3 Mar 2026 10:60:00 +0000", -1},
	    {"Tue, 3 Mar 2026 10:00:61 +0000", -1},
	    {"Tue, 3 Mar 2026 10:00:00 +0060", -1},
	    {"Tue, 3 Mar 2026 10:00:00 +00", -1},
	    {"Tue, 3 Foo 2026 10:00:00 +0000", -1},
	    {"Tue 3 Mar 2026 10:00:00 +0000", -1},     /* day name without comma */
	    {"Xyz, 3 Mar 2026 10:00:00 +0000", -1},
	    {"Tue Mar  3 10:00:00 2026", -1},          /* asctime */
	    {"Tue, 3 Mar 20260 10:00:00 +0000", -1},
	    {"Tue, 3 Mar 1899 10:00:00 +0000", -1},
	    {"Tue, 3 Mar 2026", -1},
	    {"", -1},
	    {"(unterminated", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char name[80]; /* the value, CR and LF shown as '|' to keep TAP lines whole */
		snprintf(name, sizeof name, "%s", cases[i].v);
		for (char *c = name; *c != '\0'; c++)
			if (*c == '\r' || *c == '\n')
				*c = '|';
		is_int(dw_mail_date(cases[i].v), cases[i].want, "date: '%s'", name);
	}
	is_int(dw_mail_date(NULL), -1, "date: NULL");

	struct dw_mail *m;
	char err[256] = "";
	static const char msg1[] =
		"Received: from mx.example.net (mx [192.0.2.1]) (using TLSv1.3; x)\r\n"
		"\tby mx.example.com (Postfix) with ESMTPS id 1; Tue, 3 Mar 2026 05:00:00 -0500 (EST)\r\n"
		"Received: by mx.example.net; Mon, 2 Mar 2026 10:00:00 +0000\r\n"
		"Date: Sun, 1 Mar 2026 10:00:00 +0000\r\n"
		"\r\nbody\r\n";
	int rc = dw_mime_parse((const unsigned char *)msg1, sizeof msg1 - 1, &lim, &m, err, sizeof err);
	if (rc == DW_OK) {
		is_int(m->received_epoch, T0, "received: the top field's date, after its last ';'");
		is_int(m->date_epoch, T0 - 2 * 24 * HOUR, "received: Date: read apart");
		dw_mail_free(m);
	} else
		ok(0, "received: msg1 parses: %s", err);

	static const char msg2[] = "Received: from a by b\r\nReceived: by c; Tue, 3 Mar 2026 10:00:00 +0000\r\n\r\nx";
	rc = dw_mime_parse((const unsigned char *)msg2, sizeof msg2 - 1, &lim, &m, err, sizeof err);
	if (rc == DW_OK) {
		is_int(m->received_epoch, -1, "received: the top field has no date: -1 (the next is not used)");
		is_int(m->date_epoch, -1, "received: no Date: -1");
		dw_mail_free(m);
	} else
		ok(0, "received: msg2 parses: %s", err);

	static const char msg3[] = "Subject: none\r\n\r\nx";
	rc = dw_mime_parse((const unsigned char *)msg3, sizeof msg3 - 1, &lim, &m, err, sizeof err);
	if (rc == DW_OK) {
		is_int(m->received_epoch, -1, "received: absent: -1");
		dw_mail_free(m);
	} else
		ok(0, "received: msg3 parses: %s", err);
}

/* ------------------------------------------------------------------ */
/* Hostile input.                                                      */

static void
test_garbage(void)
{
	struct dw_mail *m = (struct dw_mail *)&m; /* must be reset to NULL */
	char err[256] = "";

	int rc = dw_mime_parse((const unsigned char *)"", 0, &lim, &m, err, sizeof err);
	is_int(rc, DW_E_INPUT, "garbage: empty input is DW_E_INPUT");
	ok(m == NULL, "garbage: *out is NULL on error");
	ok(strstr(err, "empty") != NULL, "garbage: message says empty (%s)", err);

	/* Random bytes: never a crash; not a message or not a report. */
	unsigned char *junk = xmalloc(65536);
	for (int round = 0; round < 20; round++) {
		size_t n = 1 + (size_t)(rng() % 65536);
		fill_random(junk, n);
		rc = dw_mime_parse(junk, n, &lim, &m, err, sizeof err);
		ok(rc == DW_E_INPUT || (rc == DW_OK && m->npayloads == 0),
		   "garbage: %zu random bytes -> rc %d", n, rc);
		dw_mail_free(m);
	}
	free(junk);

	static const char nohdr[] = "just a line of text\r\nand another\r\n";
	rc = dw_mime_parse((const unsigned char *)nohdr, sizeof nohdr - 1, &lim, &m, err, sizeof err);
	is_int(rc, DW_E_INPUT, "garbage: text without header fields is DW_E_INPUT");

	/* Truncated in the middle of a base64 attachment and of the headers. */
	struct blob b = slurp(MAIL "two-reports.eml");
	for (size_t cut = 1; b.p != NULL && cut < b.n; cut += 97) {
		rc = dw_mime_parse(b.p, cut, &lim, &m, err, sizeof err);
		if (!(rc == DW_OK || rc == DW_E_INPUT)) {
			ok(0, "garbage: truncated at %zu gives rc %d", cut, rc);
			break;
		}
		dw_mail_free(m);
	}
	ok(1, "garbage: every truncation of two-reports.eml handled");
	free(b.p);

	/* Quoted-printable with bare LFs: libetpan doubles every line break;
	 * the payload must still not outgrow the message. */
	struct sb s = {0};
	sb_add(&s, "From: a@b.example\nContent-Type: text/xml\nContent-Transfer-Encoding: quoted-printable\n\n"
	           "<?xml version=3D\"1.0\"?>");
	for (int i = 0; i < 2000; i++)
		sb_add(&s, "\n");
	sb_add(&s, "<feedback/>");
	rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_OK, "garbage: QP of line breaks parses");
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && m->payloads[0].kind == DW_PAYLOAD_XML && m->payloads[0].len <= s.n,
		   "garbage: QP payload no longer than the message (%zu <= %zu)",
		   m->npayloads ? m->payloads[0].len : 0, s.n);
		dw_mail_free(m);
	}
	/* A part ending in a cut escape "=3": libetpan would read past it. */
	s.n = 0;
	sb_add(&s, "From: a@b.example\nContent-Transfer-Encoding: quoted-printable\n\n<?xml =3");
	rc = parse_sb(&s, &m, err, sizeof err);
	ok(rc == DW_OK && m->npayloads == 1 && m->payloads[0].len == 7,
	   "garbage: QP ending in a cut escape: its last character dropped");
	if (rc == DW_OK)
		dw_mail_free(m);
	free(s.p);

	/* NUL bytes and lone CRs in headers and body. */
	static const char nul[] = "From: a@b\0c.example\r\nSubject: x\ry\r\n\r\n\0\0\x1f\x8b";
	rc = dw_mime_parse((const unsigned char *)nul, sizeof nul - 1, &lim, &m, err, sizeof err);
	ok(rc == DW_OK || rc == DW_E_INPUT, "garbage: NUL bytes handled (rc %d)", rc);
	dw_mail_free(m);
}

static void
test_many_parts(void)
{
	struct sb s = {0};
	struct dw_mail *m;
	char err[256] = "", line[128];

	sb_add(&s, "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n");
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof line, "--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i);
		sb_add(&s, line);
	}
	sb_add(&s, "--P--\r\n");
	double t0 = now();
	int rc = parse_sb(&s, &m, err, sizeof err);
	double dt = now() - t0;
	is_int(rc, DW_OK, "many parts: 1000 tiny parts parse %s", err);
	if (rc == DW_OK) {
		is_int(m->npayloads, 0, "many parts: none is a report");
		dw_mail_free(m);
	}
	ok(dt < 5.0, "many parts: in bounded time (%.3f s)", dt);

	/* 300 tiny XML parts: more payloads than DW_MIME_PAYLOADS_MAX. */
	s.n = 0;
	sb_add(&s, "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n");
	for (int i = 0; i < 300; i++)
		sb_add(&s, "--P\r\nContent-Type: text/xml\r\n\r\n<?xml version=\"1.0\"?><feedback/>\r\n");
	sb_add(&s, "--P--\r\n");
	rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "many parts: 300 reports in one mail exceed the payload cap");
	ok(strstr(err, "DW_MIME_PAYLOADS_MAX") != NULL, "many parts: message names the limit (%s)", err);

	/* 20000 parts: over DW_MIME_PARTS_MAX, refused before parsing. */
	s.n = 0;
	sb_add(&s, "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n");
	for (int i = 0; i < 20000; i++)
		sb_add(&s, "--P\r\n\r\nx\r\n");
	t0 = now();
	rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "many parts: 20000 parts refused");
	ok(strstr(err, "DW_MIME_PARTS_MAX") != NULL, "many parts: names the limit (%s)", err);
	ok(now() - t0 < 2.0, "many parts: refused quickly");
	free(s.p);
}

static void
test_deep_nest(void)
{
	struct sb s = {0};
	struct dw_mail *m;
	char err[256] = "", line[160];

	/* 100000 nested multiparts overflow libetpan's stack if handed over. */
	sb_add(&s, "From: a@b.example\r\n");
	for (int i = 0; i < 100000; i++) {
		snprintf(line, sizeof line, "Content-Type: multipart/mixed; boundary=\"b%d=\"\r\n\r\n--b%d=\r\n", i, i);
		sb_add(&s, line);
	}
	sb_add(&s, "\r\nbottom\r\n");
	double t0 = now();
	int rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "deep nest: 100000 nested multiparts refused, no crash");
	ok(strstr(err, "DW_MIME_CONTAINERS_MAX") != NULL, "deep nest: names the limit (%s)", err);
	ok(now() - t0 < 2.0, "deep nest: quickly");

	/* A nest within the cap still works: 20 multiparts, report at the bottom. */
	s.n = 0;
	sb_add(&s, "From: a@b.example\r\n");
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof line, "Content-Type: multipart/mixed; boundary=\"b%d=\"\r\n\r\n--b%d=\r\n", i, i);
		sb_add(&s, line);
	}
	sb_add(&s, "Content-Type: text/xml\r\n\r\n<?xml version=\"1.0\"?><feedback/>\r\n");
	for (int i = 19; i >= 0; i--) {
		snprintf(line, sizeof line, "--b%d=--\r\n", i);
		sb_add(&s, line);
	}
	rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_OK, "deep nest: 20 levels parse %s", err);
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && m->payloads[0].kind == DW_PAYLOAD_XML && m->payloads[0].depth == 0,
		   "deep nest: report found 20 multiparts down (depth counts messages only)");
		dw_mail_free(m);
	}

	/* The same 20 levels around a 32 MiB body: libetpan would rescan the
	 * body once per level, so big mails get fewer containers (16 here). */
	{
		size_t big = 32 * MiB, o = s.n;
		s.p = xrealloc(s.p, s.n + big + 1);
		s.cap = s.n + big + 1;
		static const char fill[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
		for (; o + sizeof fill - 1 <= s.n + big; o += sizeof fill - 1)
			memcpy(s.p + o, fill, sizeof fill - 1);
		double t1 = now();
		rc = dw_mime_parse((const unsigned char *)s.p, o, &lim, &m, err, sizeof err);
		is_int(rc, DW_E_LIMIT, "deep nest: 20 levels in a 32 MiB mail refused");
		ok(strstr(err, "DW_MIME_CONTAINERS_MAX") != NULL, "deep nest: names the limit (%s)", err);
		ok(now() - t1 < 2.0, "deep nest: quickly");
	}

	/* 70 nested message/rfc822: over the container cap too. */
	s.n = 0;
	sb_add(&s, "From: a@b.example\r\n");
	for (int i = 0; i < 70; i++)
		sb_add(&s, "Content-Type: message/rfc822\r\n\r\nFrom: c@d.example\r\n");
	sb_add(&s, "\r\nbottom\r\n");
	rc = parse_sb(&s, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "deep nest: 70 nested messages refused");
	free(s.p);
}

static void
test_header_flood(void)
{
	struct dw_mail *m;
	char err[256] = "";
	size_t n = 4 * MiB;
	unsigned char *p = xmalloc(n);

	/* 1M header fields "a:b" would cost libetpan ~170 MB. */
	for (size_t i = 0; i + 4 <= n; i += 4)
		memcpy(p + i, "a:b\n", 4);
	double t0 = now();
	int rc = dw_mime_parse(p, n, &lim, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "header flood: 4 MiB of header fields refused");
	ok(strstr(err, "DW_MIME_HEADER_MAX") != NULL, "header flood: names the limit (%s)", err);
	ok(now() - t0 < 2.0, "header flood: quickly");

	/* One Content-Type line with a million parameters, inside a part. */
	static const char head[] = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n"
	                           "--P\r\nContent-Type: text/plain";
	memcpy(p, head, sizeof head - 1);
	for (size_t i = sizeof head - 1; i + 5 <= n - 4; i += 5)
		memcpy(p + i, "; a=1", 5);
	memcpy(p + n - 4, "\r\n\r\n", 4);
	rc = dw_mime_parse(p, n, &lim, &m, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "header flood: a 4 MiB parameter list refused");

	/* A 4 MiB 7bit text body with "key: value" lines is no header. */
	static const char head2[] = "From: a@b.example\r\nContent-Type: text/plain\r\n\r\n";
	memcpy(p, head2, sizeof head2 - 1);
	for (size_t i = sizeof head2 - 1; i + 10 <= n; i += 10)
		memcpy(p + i, "Note: yes\n", 10);
	err[0] = '\0';
	rc = dw_mime_parse(p, n - n % 10, &lim, &m, err, sizeof err);
	is_int(rc, DW_OK, "header flood: colons in a body are not counted %s", err);
	dw_mail_free(m);
	free(p);
}

static void
test_big(void)
{
	struct dw_mail *m;
	char err[256] = "";
	static const unsigned char gzmagic[] = {0x1f, 0x8b, 0x08, 0x00};
	struct dw_limits l = lim;
	size_t under, over;

	if (UNDER_ASAN) {
		/* ASan makes each byte cost more: same shape, an eighth of the size. */
		l.mail_max = 8 * MiB;
		under = 5 * MiB + MiB / 2; /* ~7.5 MiB once base64-encoded */
		over = 12 * MiB;
	} else {
		under = 44 * MiB; /* ~60 MiB once base64-encoded */
		over = 100 * 1000 * 1000;
	}

	/* Under the limit: processed, with memory bounded by a small multiple. */
	size_t len;
	unsigned char *msg = make_big_mail(under, gzmagic, sizeof gzmagic, &len);
	ok(len < l.mail_max, "big: %zu-byte mail is under mail_max", len);
	long rss0 = maxrss_kib();
	double t0 = now();
	int rc = dw_mime_parse(msg, len, &l, &m, err, sizeof err);
	double dt = now() - t0;
	long grew = (maxrss_kib() - rss0) * 1024;
	is_int(rc, DW_OK, "big: parsed in %.2f s %s", dt, err);
	if (rc == DW_OK) {
		ok(m->npayloads == 1 && m->payloads[0].len == under && is_gzip(&m->payloads[0]),
		   "big: the %zu-byte attachment decoded", under);
		dw_mail_free(m);
	}
	diag("big: peak memory grew by %ld MiB for a %zu MiB mail", grew >> 20, len >> 20);
	if (!UNDER_ASAN)
		ok(grew < (long)(3 * len), "big: memory growth under 3x the mail size");
	free(msg);

	/* Over the limit: refused at once, the message names the limit. */
	msg = make_big_mail(over, NULL, 0, &len);
	t0 = now();
	rc = dw_mime_parse(msg, len, &l, &m, err, sizeof err);
	dt = now() - t0;
	is_int(rc, DW_E_LIMIT, "big: %zu-byte mail over mail_max is DW_E_LIMIT", len);
	ok(m == NULL, "big: no mail returned");
	ok(strstr(err, "mail_max") != NULL, "big: message names the limit (%s)", err);
	ok(dt < 0.5, "big: refused without parsing (%.3f s)", dt);
	free(msg);
}

int
main(void)
{
	dw_limits_default(&lim);
	gz = slurp(CORPUS "aggregate/parsedmarc/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz");
	zipb = slurp(CORPUS "aggregate/avvertix/dmarc.zip");
	xml = slurp(CORPUS "aggregate/cry-inc/gmxnet.xml");

	test_big(); /* first: its memory check reads the process's peak */
	test_sniff();
	test_corpus_aggregate();
	test_corpus_other();
	test_fixtures();
	test_headers();
	test_dates();
	test_garbage();
	test_many_parts();
	test_deep_nest();
	test_header_flood();

	free(gz.p);
	free(zipb.p);
	free(xml.p);
	return done_testing();
}
