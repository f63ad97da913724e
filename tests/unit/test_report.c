/*
 * test_report.c - unit tests for src/report.c: the corpus against its
 * INVENTORY.tsv, the fixtures in tests/data/xml/ (encodings, odd values,
 * order, extensions, hostile documents), limits, callbacks, and a
 * generated report of a million records fed in 64 KiB chunks.
 *
 * Every document is parsed with several chunk sizes, down to one byte, and
 * must give the same result each time.
 */
#include "dw/report.h"
#include "tap.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#define BIG_RECORDS 100000u
#else
#define BIG_RECORDS 1000000u
#endif

/* ------------------------------------------------------------------------ */
/* A growing string, for summaries */

struct sbuf {
	char *s;
	size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void
sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->n + (size_t)need + 1 > b->cap) {
		b->cap = (b->n + (size_t)need + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)need;
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "-";
}

/* One line per record with every field, so a single is_str checks all. */
static void
record_summary(struct sbuf *b, const struct dw_record *r)
{
	sb_add(b, "%s %" PRIu64 " %s %s/%s", r->source_ip, r->count, nz(r->disposition), nz(r->dkim),
	       nz(r->spf));
	for (size_t i = 0; i < r->nreasons; i++)
		sb_add(b, " reason=%s:%s", nz(r->reasons[i].type), nz(r->reasons[i].comment));
	sb_add(b, " hf=%s ef=%s et=%s", nz(r->header_from), nz(r->envelope_from),
	       nz(r->envelope_to));
	for (size_t i = 0; i < r->ndkim; i++) {
		const struct dw_dkim_result *d = &r->dkim_results[i];
		sb_add(b, " dkim=%s/%s/%s/%s", nz(d->domain), nz(d->selector), nz(d->result),
		       nz(d->human_result));
	}
	for (size_t i = 0; i < r->nspf; i++) {
		const struct dw_spf_result *s = &r->spf_results[i];
		sb_add(b, " spf=%s/%s/%s/%s", nz(s->domain), nz(s->scope), nz(s->result),
		       nz(s->human_result));
	}
	sb_add(b, "\n");
}

static void
meta_summary(struct sbuf *b, const struct dw_report_meta *m)
{
	const struct dw_policy *p = &m->policy;
	sb_add(b, "schema=%d version=%s org=%s email=%s extra=%s id=%s gen=%s range=%d:%lld-%lld",
	       m->schema, nz(m->version), nz(m->org_name), nz(m->email), nz(m->extra_contact_info),
	       nz(m->report_id), nz(m->generator), m->has_range, (long long)m->begin,
	       (long long)m->end);
	for (size_t i = 0; i < m->nerrors; i++)
		sb_add(b, " error=%s", m->errors[i]);
	sb_add(b, " | %s p=%s sp=%s np=%s adkim=%s aspf=%s pct=%d fo=%s t=%s disc=%s", nz(p->domain),
	       nz(p->p), nz(p->sp), nz(p->np), nz(p->adkim), nz(p->aspf), p->pct, nz(p->fo),
	       nz(p->testing), nz(p->discovery_method));
}

/* ------------------------------------------------------------------------ */
/* Running the parser over a buffer */

struct run {
	int rc;
	char err[512];
	struct sbuf recs;   /* record summaries */
	struct sbuf meta;   /* meta summary after finish */
	struct sbuf quirks; /* quirks, space separated */
	struct dw_totals totals;
	uint64_t bytes;
	int meta_seen_in_cb; /* org_name was known at the first record */
};

static int
collect_cb(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec, char *err,
           size_t errlen)
{
	struct run *r = ctx;
	(void)err, (void)errlen;
	if (r->recs.n == 0)
		r->meta_seen_in_cb = meta->org_name != NULL;
	record_summary(&r->recs, rec);
	return DW_OK;
}

static void
run_free(struct run *r)
{
	free(r->recs.s);
	free(r->meta.s);
	free(r->quirks.s);
	memset(r, 0, sizeof *r);
}

/* Parse buf in chunks of `chunk` bytes (0 = all at once). */
static void
run_parse(struct run *r, const void *buf, size_t len, size_t chunk, const struct dw_limits *lim)
{
	struct dw_report_cb cb = {.on_record = collect_cb};
	memset(r, 0, sizeof *r);
	struct dw_report_parser *p = dw_report_new(lim, &cb, r, "t.xml");
	const char *b = buf;
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len && r->rc == DW_OK; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		r->rc = dw_report_feed(p, b + off, n, r->err, sizeof r->err);
	}
	if (r->rc == DW_OK)
		r->rc = dw_report_finish(p, r->err, sizeof r->err);
	meta_summary(&r->meta, dw_report_meta(p));
	const struct dw_quirks *q = dw_report_quirks(p);
	for (size_t i = 0; i < q->n; i++)
		sb_add(&r->quirks, "%s%s", i ? " " : "", q->v[i]);
	if (r->quirks.s == NULL)
		sb_add(&r->quirks, "%s", "");
	if (r->recs.s == NULL)
		sb_add(&r->recs, "%s", "");
	r->totals = *dw_report_totals(p);
	r->bytes = dw_report_bytes(p);
	dw_report_free(p);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct sbuf b = {0};
	char tmp[8192];
	size_t n;
	b.s = xmalloc(1);
	b.cap = 1;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
		if (b.n + n + 1 > b.cap) {
			b.cap = (b.n + n + 1) * 2;
			b.s = xrealloc(b.s, b.cap);
		}
		memcpy(b.s + b.n, tmp, n);
		b.n += n;
	}
	fclose(f);
	b.s[b.n] = '\0';
	*len = b.n;
	return b.s;
}

/* Parse with several chunk sizes; check that all agree with the whole-buffer
 * parse and leave that one in *out. */
static const size_t chunk_sizes[] = {1, 2, 3, 7, 64, 4096};

static void
run_split(struct run *out, const char *label, const void *buf, size_t len,
          const struct dw_limits *lim)
{
	run_parse(out, buf, len, 0, lim);
	int same = 1;
	for (size_t i = 0; i < sizeof chunk_sizes / sizeof chunk_sizes[0]; i++) {
		struct run r;
		run_parse(&r, buf, len, chunk_sizes[i], lim);
		if (r.rc != out->rc || strcmp(r.err, out->err) != 0 ||
		    strcmp(r.recs.s, out->recs.s) != 0 || strcmp(r.meta.s, out->meta.s) != 0 ||
		    strcmp(r.quirks.s, out->quirks.s) != 0 ||
		    memcmp(&r.totals, &out->totals, sizeof r.totals) != 0) {
			diag("%s: chunk size %zu differs: rc %d '%s'", label, chunk_sizes[i], r.rc, r.err);
			same = 0;
		}
		run_free(&r);
	}
	ok(same, "%s: same result for chunk sizes 1..4096 and whole", label);
}

static int
run_file(struct run *out, const char *path, const struct dw_limits *lim)
{
	size_t len;
	char *buf = slurp(path, &len);
	if (!ok(buf != NULL, "read %s", path))
		return -1;
	run_split(out, path, buf, len, lim);
	free(buf);
	return 0;
}

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Corpus against INVENTORY.tsv */

#define INV_COLS 32

static int
col_index(char **names, size_t n, const char *want)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], want) == 0)
			return (int)i;
	return -1;
}

/* Split a TSV line in place (empty fields are kept). */
static size_t
split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *s = line;
	for (;;) {
		if (n == max)
			break;
		f[n++] = s;
		char *t = strchr(s, '\t');
		if (t == NULL)
			break;
		*t = '\0';
		s = t + 1;
	}
	return n;
}

static void
test_corpus(void)
{
	size_t len;
	char *tsv = slurp("tests/data/corpus/INVENTORY.tsv", &len);
	if (!ok(tsv != NULL, "read INVENTORY.tsv"))
		return;
	char *save = NULL;
	char *line = strtok_r(tsv, "\n", &save);
	char *head[INV_COLS];
	size_t nh = split_tabs(line, head, INV_COLS);
	int c_file = col_index(head, nh, "file"), c_kind = col_index(head, nh, "kind");
	int c_org = col_index(head, nh, "reporter_org"), c_id = col_index(head, nh, "report_id");
	int c_dom = col_index(head, nh, "policy_domain");
	int c_begin = col_index(head, nh, "date_begin"), c_end = col_index(head, nh, "date_end");
	int c_recs = col_index(head, nh, "records"), c_msgs = col_index(head, nh, "messages");
	int c_fail = col_index(head, nh, "msgs_dmarc_fail");
	int c_wf = col_index(head, nh, "xml_wellformed");
	if (!ok(c_file >= 0 && c_kind >= 0 && c_org >= 0 && c_id >= 0 && c_dom >= 0 &&
	            c_begin >= 0 && c_end >= 0 && c_recs >= 0 && c_msgs >= 0 && c_fail >= 0 &&
	            c_wf >= 0,
	        "INVENTORY.tsv has the expected columns")) {
		free(tsv);
		return;
	}
	int nxml = 0;
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		char *f[INV_COLS];
		size_t nf = split_tabs(line, f, INV_COLS);
		if (nf < nh)
			continue;
		size_t fl = strlen(f[c_file]);
		if (strcmp(f[c_kind], "aggregate") != 0 || fl < 4 ||
		    strcmp(f[c_file] + fl - 4, ".xml") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof path, "tests/data/corpus/%s", f[c_file]);
		struct run r;
		if (run_file(&r, path, NULL) != 0)
			continue;
		nxml++;
		if (strcmp(f[c_wf], "yes") != 0) {
			is_int(r.rc, DW_E_INPUT, "%s: refused as bad input", f[c_file]);
			if (contains(path, "invalid_xml"))
				ok(contains(r.err, "line 5"), "%s: error names line 5: %s", f[c_file], r.err);
			else if (contains(path, "empty.xml"))
				ok(contains(r.err, "empty document"), "%s: %s", f[c_file], r.err);
			run_free(&r);
			continue;
		}
		ok(r.rc == DW_OK, "%s parses (rc %d %s)", f[c_file], r.rc, r.err);
		char want[1024];
		snprintf(want, sizeof want, "org=%s email=", f[c_org]);
		/* An empty org_name in the file comes back as an empty string. */
		ok(contains(r.meta.s, want), "%s: org_name '%s'", f[c_file], f[c_org]);
		snprintf(want, sizeof want, " id=%s gen=", f[c_id]);
		ok(contains(r.meta.s, want), "%s: report_id %s", f[c_file], f[c_id]);
		snprintf(want, sizeof want, "range=1:%s-%s", f[c_begin], f[c_end]);
		ok(contains(r.meta.s, want), "%s: date range %s-%s", f[c_file], f[c_begin], f[c_end]);
		snprintf(want, sizeof want, "| %s p=", f[c_dom]);
		ok(contains(r.meta.s, want), "%s: policy domain %s", f[c_file], f[c_dom]);
		is_int(r.totals.records, strtoull(f[c_recs], NULL, 10), "%s: records", f[c_file]);
		is_int(r.totals.messages, strtoull(f[c_msgs], NULL, 10), "%s: messages", f[c_file]);
		is_int(r.totals.dmarc_fail, strtoull(f[c_fail], NULL, 10), "%s: dmarc_fail", f[c_file]);
		is_int(r.totals.dmarc_pass + r.totals.dmarc_fail, r.totals.messages,
		       "%s: pass + fail = messages", f[c_file]);
		run_free(&r);
	}
	ok(nxml >= 15, "INVENTORY lists the corpus .xml files (%d)", nxml);
	free(tsv);
}

static void
test_corpus_details(void)
{
	struct run r;

	/* RFC 9990 sample: dmarc-2.0 namespace, bis-only fields, disposition pass. */
	run_file(&r, "tests/data/corpus/aggregate/parsedmarc/rfc9990-sample.xml", NULL);
	is_int(r.rc, DW_OK, "rfc9990-sample parses");
	is_str(r.meta.s,
	       "schema=2 version=1.0 org=Sample Reporter email=report_sender@example-reporter.com "
	       "extra=... id=3v98abbp8ya9n3va8yr8oa3ya gen=Example DMARC Aggregate Reporter v1.2 "
	       "range=1:302832000-302918399 | example.com p=quarantine sp=none np=none adkim=- "
	       "aspf=- pct=-1 fo=- t=n disc=treewalk",
	       "rfc9990-sample: metadata and policy");
	is_str(r.recs.s,
	       "192.0.2.123 123 pass pass/fail hf=example.com ef=example.com et=- "
	       "dkim=example.com/abc123/pass/- spf=example.com/-/fail/-\n",
	       "rfc9990-sample: record (disposition pass accepted)");
	is_str(r.quirks.s, "", "rfc9990-sample: no quirks");
	run_free(&r);

	/* Stalwart's sample of the bis format has no namespace but bis-only
	 * elements (<testing>), unknown elements and extensions. */
	run_file(&r, "tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-001.xml", NULL);
	is_int(r.rc, DW_OK, "dmarc-feedback-001 parses");
	ok(contains(r.meta.s, "schema=2 "), "dmarc-feedback-001: schema 2: %s", r.meta.s);
	ok(contains(r.meta.s, " t=n "), "dmarc-feedback-001: testing read");
	ok(contains(r.quirks.s, "bis-without-namespace"), "dmarc-feedback-001: quirk for the namespace");
	ok(contains(r.quirks.s, "unknown-element:unknown-tag1") &&
	       contains(r.quirks.s, "unknown-element:extensions"),
	   "dmarc-feedback-001: unknown elements noted: %s", r.quirks.s);
	ok(!contains(r.quirks.s, "unknown-tag2"), "dmarc-feedback-001: skipped subtree not examined");
	is_str(r.recs.s,
	       "192.168.4.4 123 quarantine pass/fail hf=example.com ef=- et=- "
	       "dkim=example.com/abc123/pass/- spf=example.com/-/fail/-\n",
	       "dmarc-feedback-001: record");
	run_free(&r);

	/* Empty org_name is a quirk, not an error. */
	run_file(&r, "tests/data/corpus/aggregate/parsedmarc/!example.com!1538204542!1538463818.xml",
	         NULL);
	is_int(r.rc, DW_OK, "empty org_name parses");
	ok(contains(r.quirks.s, "missing-org-name"), "empty org_name: quirk missing-org-name");
	run_free(&r);

	/* Empty elements inside a record. */
	run_file(&r, "tests/data/corpus/aggregate/tierpod/test_empty.xml", NULL);
	is_int(r.rc, DW_OK, "test_empty parses");
	is_str(r.recs.s, " 0  / hf= ef=- et=- spf=/-//-\n", "test_empty: empty values kept empty");
	ok(contains(r.quirks.s, "bad-source-ip") && contains(r.quirks.s, "empty-value:policy-dkim"),
	   "test_empty: quirks %s", r.quirks.s);
	is_int(r.totals.dkim_fail, 0, "test_empty: count 0 adds nothing");
	run_free(&r);

	/* Several reasons, two DKIM results, tab-indented 7489 report. */
	run_file(&r, "tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-003.xml", NULL);
	is_int(r.rc, DW_OK, "dmarc-feedback-003 parses");
	is_int(r.totals.dkim_fail, 8, "dmarc-feedback-003: dkim_fail");
	is_int(r.totals.spf_fail, 9, "dmarc-feedback-003: spf_fail");
	run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Fixtures */

static void
test_encodings(void)
{
	struct run r;
	run_file(&r, "tests/data/xml/bom-utf8.xml", NULL);
	is_int(r.rc, DW_OK, "UTF-8 BOM parses");
	ok(contains(r.meta.s, "org=BOM Reporter email="), "UTF-8 BOM: org_name");
	is_int(r.totals.messages, 3, "UTF-8 BOM: messages");
	run_free(&r);

	run_file(&r, "tests/data/xml/utf16le-bom.xml", NULL);
	is_int(r.rc, DW_OK, "UTF-16LE parses: %s", r.err);
	ok(contains(r.meta.s, "org=UTF-16 Reporter \xc3\xa9 email="), "UTF-16LE: org_name as UTF-8");
	is_str(r.recs.s,
	       "192.0.2.1 3 none pass/fail hf=example.org ef=- et=- dkim=example.org/s1/pass/- "
	       "spf=example.org/mfrom/fail/-\n",
	       "UTF-16LE: record");
	run_free(&r);

	run_file(&r, "tests/data/xml/windows-1252.xml", NULL);
	is_int(r.rc, DW_OK, "windows-1252 parses: %s", r.err);
	ok(contains(r.meta.s, "org=Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale \xe2\x80\x93 "
	                      "M\xc3\xbcnchen \xe2\x82\xac email="),
	   "windows-1252: org_name transcoded to UTF-8: %s", r.meta.s);
	run_free(&r);

	/* Invalid UTF-8 in a UTF-8 document is malformed XML, with a line. */
	const char *bad = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n"
	                  "<report_metadata><org_name>bad \xff\xfe byte</org_name>\n"
	                  "</report_metadata></feedback>\n";
	/* A byte windows-1252 does not define: the converter refuses it. */
	const char *bad1252 = "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<feedback>\n"
	                      "<report_metadata><org_name>bad \x81 byte</org_name>\n"
	                      "</report_metadata></feedback>\n";
	for (size_t chunk = 0; chunk <= 1; chunk++) {
		run_parse(&r, bad1252, strlen(bad1252), chunk, NULL);
		is_int(r.rc, DW_E_INPUT, "undefined windows-1252 byte (chunk %zu): input error", chunk);
		ok(contains(r.err, "malformed XML: input conversion failed"), "windows-1252: %s", r.err);
		ok(!contains(r.meta.s, "bad"), "windows-1252: nothing invented");
		run_free(&r);
	}

	run_split(&r, "invalid UTF-8", bad, strlen(bad), NULL);
	is_int(r.rc, DW_E_INPUT, "invalid UTF-8: input error");
	ok(contains(r.err, "line 3: malformed XML"), "invalid UTF-8: message %s", r.err);
	run_free(&r);
}

static void
test_values(void)
{
	struct run r;

	run_file(&r, "tests/data/xml/spf-hardfail.xml", NULL);
	is_int(r.rc, DW_OK, "hardfail parses");
	ok(contains(r.recs.s, " spf=example.org/-/hardfail/-"), "hardfail: raw value kept");
	ok(contains(r.quirks.s, "spf-result:hardfail"), "hardfail: quirk spf-result:hardfail");
	run_free(&r);

	run_file(&r, "tests/data/xml/uppercase-values.xml", NULL);
	is_int(r.rc, DW_OK, "uppercase parses");
	is_str(r.recs.s,
	       "192.0.2.8 4 none pass/fail hf=example.org ef=- et=- dkim=example.org/s1/pass/- "
	       "spf=example.org/mfrom/softfail/-\n",
	       "uppercase: enumerations lower-cased");
	ok(contains(r.meta.s, "p=reject sp=quarantine np=- adkim=r aspf=s pct=100"),
	   "uppercase: policy lower-cased: %s", r.meta.s);
	is_str(r.quirks.s, "", "uppercase: no quirks (case is not a quirk)");
	is_int(r.totals.dmarc_pass, 4, "uppercase: PASS counts as pass");
	run_free(&r);

	run_file(&r, "tests/data/xml/policy-missing-optional.xml", NULL);
	is_int(r.rc, DW_OK, "missing optional policy parses");
	ok(contains(r.meta.s, "| example.org p=none sp=- np=- adkim=- aspf=- pct=-1 fo=- t=- disc=-"),
	   "missing optional policy: NULL / -1: %s", r.meta.s);
	run_free(&r);

	run_file(&r, "tests/data/xml/report-id-brackets.xml", NULL);
	is_int(r.rc, DW_OK, "report_id in <> parses");
	ok(contains(r.meta.s, " id=20231114.abc@reporter.example gen="), "report_id: brackets stripped");
	ok(contains(r.quirks.s, "report-id-angle-brackets"), "report_id: quirk");
	run_free(&r);

	run_file(&r, "tests/data/xml/record-first.xml", NULL);
	is_int(r.rc, DW_OK, "record before metadata parses");
	ok(!r.meta_seen_in_cb, "record first: metadata not yet known in the callback");
	ok(contains(r.meta.s, "org=Out Of Order") && contains(r.meta.s, "| example.org p=reject"),
	   "record first: metadata complete after finish");
	is_int(r.totals.records, 1, "record first: one record");
	is_int(r.totals.dmarc_fail, 5, "record first: dmarc_fail");
	run_free(&r);

	run_file(&r, "tests/data/xml/bis-extensions.xml", NULL);
	is_int(r.rc, DW_OK, "bis with extensions parses");
	is_str(r.meta.s,
	       "schema=2 version=1.0 org=Bis Reporter email=dmarc@bis.example extra=- id=bis-ext-1 "
	       "gen=Bis Generator 2.0 range=1:1700000000-1700086399 error=first problem | "
	       "example.net p=quarantine sp=- np=reject adkim=- aspf=- pct=-1 fo=- t=y disc=psl",
	       "bis: metadata (extension org_name ignored)");
	is_str(r.recs.s,
	       "198.51.100.20 6 pass pass/pass reason=policy_test_mode:t=y in the record "
	       "hf=example.net ef= et=- dkim=example.net/sel/pass/good signature "
	       "spf=example.net/-/policy/policy result\n",
	       "bis: record (extension elements skipped, empty envelope_from kept)");
	is_str(r.quirks.s, "unknown-element:version_published unknown-element:frobnicate",
	       "bis: unknown DMARC-namespace elements are quirks, extensions are not");
	is_int(r.totals.messages, 6, "bis: extension <count> not counted");
	run_free(&r);

	run_file(&r, "tests/data/xml/multi-results.xml", NULL);
	is_int(r.rc, DW_OK, "multiple results parse");
	is_str(r.recs.s,
	       "2001:db8::1 7 quarantine fail/fail reason=forwarded:via list "
	       "reason=local_policy:arc=pass <trusted> reason=sampled_out:- hf=example.org "
	       "ef=bounce.example.org et=rcpt.example "
	       "dkim=example.org/a/fail/body hash mismatch dkim=esp.example/b/pass/- "
	       "dkim=third.example/-/temperror/- spf=helo.example.org/helo/pass/- "
	       "spf=bounce.example.org/mfrom/softfail/-\n"
	       "2001:db8:0:1::a 2 none pass/fail hf=example.org ef=- et=- "
	       "dkim=example.org/s1/pass/- spf=example.org/mfrom/fail/-\n"
	       "::ffff:192.0.2.5 1 none fail/pass hf=example.org ef=- et=- "
	       "dkim=example.org/s1/fail/- spf=example.org/mfrom/pass/-\n"
	       "not-an-ip 1 none fail/fail hf=example.org ef=- et=- "
	       "dkim=example.org/s1/fail/- spf=example.org/mfrom/fail/-\n",
	       "multiple results: every dkim/spf/reason, canonical IPv6");
	ok(contains(r.meta.s, "org=Multi & Co (R&D) email="), "entities and CDATA in text");
	is_str(r.quirks.s, "bad-source-ip", "multiple results: quirk for the bad IP only");
	is_int(r.totals.records, 4, "multiple results: records");
	is_int(r.totals.messages, 11, "multiple results: messages");
	is_int(r.totals.dmarc_pass, 3, "multiple results: dmarc_pass");
	is_int(r.totals.dmarc_fail, 8, "multiple results: dmarc_fail");
	is_int(r.totals.dkim_fail, 9, "multiple results: dkim_fail");
	is_int(r.totals.spf_fail, 10, "multiple results: spf_fail");
	run_free(&r);

	/* The line of the bad count is found in the file, not hard-coded. */
	size_t len;
	char *buf = slurp("tests/data/xml/bad-count.xml", &len);
	int line = 1;
	for (const char *s = buf; s != NULL && s < strstr(buf, "<count>abc"); s++)
		line += *s == '\n';
	free(buf);
	run_file(&r, "tests/data/xml/bad-count.xml", NULL);
	is_int(r.rc, DW_E_INPUT, "non-numeric count: input error");
	char want[64];
	snprintf(want, sizeof want, "line %d: <count> is not a number: 'abc'", line);
	ok(contains(r.err, want), "non-numeric count: '%s' in '%s'", want, r.err);
	is_int(r.totals.records, 0, "non-numeric count: record not delivered");
	run_free(&r);
}

static void
no_entity_content(const struct run *r, const char *label)
{
	ok(!contains(r->meta.s, "lol") && !contains(r->meta.s, "root:") &&
	       !contains(r->recs.s, "lol") && !contains(r->recs.s, "root:") && r->recs.n == 0,
	   "%s: no entity content anywhere", label);
}

static void
test_hostile(void)
{
	static const char *const refused[] = {
		"tests/data/xml/billion-laughs.xml",
		"tests/data/xml/xxe.xml",
		"tests/data/xml/doctype.xml",
	};
	struct run r;
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		run_file(&r, refused[i], NULL);
		is_int(r.rc, DW_E_INPUT, "%s: refused", refused[i]);
		ok(contains(r.err, "DOCTYPE not allowed in a DMARC report (line 2)"), "%s: %s",
		   refused[i], r.err);
		no_entity_content(&r, refused[i]);
		run_free(&r);
	}

	/* An entity reference without any DOCTYPE. */
	const char *ent = "<feedback><report_metadata><org_name>&ext;</org_name></report_metadata>"
	                  "</feedback>";
	run_split(&r, "undeclared entity", ent, strlen(ent), NULL);
	is_int(r.rc, DW_E_INPUT, "undeclared entity: refused");
	ok(contains(r.err, "entity reference &ext; not allowed"), "undeclared entity: %s", r.err);
	run_free(&r);

	run_file(&r, "tests/data/xml/root-not-feedback.xml", NULL);
	is_int(r.rc, DW_E_INPUT, "root not feedback: refused");
	ok(contains(r.err, "not a DMARC aggregate report: root element is <html>"), "root: %s", r.err);
	run_free(&r);

	run_file(&r, "tests/data/xml/depth-bomb.xml", NULL);
	is_int(r.rc, DW_E_LIMIT, "depth bomb: limit");
	ok(contains(r.err, "nested deeper than 32 (limits.xml_depth_max)"), "depth bomb: %s", r.err);
	run_free(&r);

	/* Truncated document. */
	const char *cut = "<feedback><report_metadata><org_name>x</org_name>";
	run_split(&r, "truncated", cut, strlen(cut), NULL);
	is_int(r.rc, DW_E_INPUT, "truncated document: input error");
	ok(contains(r.err, "malformed XML"), "truncated document: %s", r.err);
	run_free(&r);

	/* Zero bytes and white space only. */
	run_parse(&r, "", 0, 0, NULL);
	is_int(r.rc, DW_E_INPUT, "zero bytes: input error");
	is_str(r.err, "t.xml: empty document", "zero bytes: message");
	run_free(&r);
	run_split(&r, "white space", " \n\t\n", 4, NULL);
	is_int(r.rc, DW_E_INPUT, "white space only: input error");
	ok(contains(r.err, "empty document"), "white space only: %s", r.err);
	run_free(&r);

	/* Well-formed but missing what identifies the report. */
	const char *noid = "<feedback><report_metadata><org_name>x</org_name>"
	                   "<date_range><begin>1</begin></date_range></report_metadata>"
	                   "<policy_published><domain>d.example</domain></policy_published></feedback>";
	run_split(&r, "missing report_id", noid, strlen(noid), NULL);
	is_int(r.rc, DW_E_INPUT, "missing report_id: input error");
	ok(contains(r.err, "not a usable DMARC report: no <report_id>, <date_range>"),
	   "missing report_id and end: %s", r.err);
	run_free(&r);

	/* Garbage after the root element. */
	const char *extra = "<feedback/><feedback/>";
	run_split(&r, "two roots", extra, strlen(extra), NULL);
	is_int(r.rc, DW_E_INPUT, "two roots: input error");
	ok(contains(r.err, "line 1: malformed XML"), "two roots: %s", r.err);
	run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Generated documents */

static const char *const gen_head =
	"<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>Gen</org_name>"
	"<email>g@example</email><report_id>gen-1</report_id><date_range><begin>1700000000</begin>"
	"<end>1700086399</end></date_range></report_metadata><policy_published>"
	"<domain>example.com</domain><p>none</p></policy_published>\n";
static const char *const gen_tail = "</feedback>\n";

/* Record i of a generated report: count, verdicts and address follow from i
 * so the expected totals can be computed. */
static uint64_t gen_count(uint64_t i) { return i % 7 + 1; }
static int gen_dkim(uint64_t i) { return i % 3 == 0; }
static int gen_spf(uint64_t i) { return i % 5 == 0; }

static size_t
gen_record(char *out, size_t room, uint64_t i)
{
	char ip[64];
	if (i % 10 == 9)
		snprintf(ip, sizeof ip, "2001:db8:%x::%x", (unsigned)(i >> 16), (unsigned)(i & 0xffff));
	else
		snprintf(ip, sizeof ip, "10.%u.%u.%u", (unsigned)(i >> 16) & 255,
		         (unsigned)(i >> 8) & 255, (unsigned)i & 255);
	int n = snprintf(out, room,
	                 "<record><row><source_ip>%s</source_ip><count>%" PRIu64 "</count>"
	                 "<policy_evaluated><disposition>none</disposition><dkim>%s</dkim>"
	                 "<spf>%s</spf></policy_evaluated></row><identifiers>"
	                 "<header_from>example.com</header_from></identifiers><auth_results><dkim>"
	                 "<domain>example.com</domain><selector>s</selector><result>%s</result>"
	                 "</dkim><spf><domain>example.com</domain><result>%s</result></spf>"
	                 "</auth_results></record>\n",
	                 ip, gen_count(i), gen_dkim(i) ? "pass" : "fail",
	                 gen_spf(i) ? "pass" : "fail", gen_dkim(i) ? "pass" : "fail",
	                 gen_spf(i) ? "pass" : "fail");
	return (size_t)n;
}

struct big_ctx {
	uint64_t seen, bad, limit_at;
};

static int
big_cb(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec, char *err,
       size_t errlen)
{
	struct big_ctx *c = ctx;
	uint64_t i = c->seen++;
	if (rec->count != gen_count(i) || rec->ndkim != 1 || rec->nspf != 1 ||
	    strcmp(meta->report_id, "gen-1") != 0)
		c->bad++;
	if (c->limit_at != 0 && c->seen == c->limit_at)
		return dw_err(err, errlen, DW_E_STORE, "database is locked (record %" PRIu64 ")", i);
	return DW_OK;
}

/* Feed a generated report of n records in chunks of `chunk` bytes, never
 * holding more than one chunk. */
static int
feed_generated(struct dw_report_parser *p, uint64_t n, size_t chunk, char *err, size_t errlen)
{
	char *buf = xmalloc(chunk + 1024);
	size_t used = 0;
	int rc = DW_OK;
	used = (size_t)snprintf(buf, chunk, "%s", gen_head);
	for (uint64_t i = 0; i < n && rc == DW_OK; i++) {
		used += gen_record(buf + used, chunk + 1024 - used, i);
		if (used >= chunk) {
			rc = dw_report_feed(p, buf, used, err, errlen);
			used = 0;
		}
	}
	if (rc == DW_OK) {
		used += (size_t)snprintf(buf + used, chunk + 1024 - used, "%s", gen_tail);
		rc = dw_report_feed(p, buf, used, err, errlen);
	}
	free(buf);
	if (rc == DW_OK)
		rc = dw_report_finish(p, err, errlen);
	return rc;
}

static void
test_big(void)
{
	const uint64_t n = BIG_RECORDS;
	struct big_ctx c = {0};
	struct dw_report_cb cb = {.on_record = big_cb};
	struct dw_report_parser *p = dw_report_new(NULL, &cb, &c, "generated");
	char err[512] = "";
	int rc = feed_generated(p, n, 64 * 1024, err, sizeof err);
	is_int(rc, DW_OK, "generated report of %" PRIu64 " records parses: %s", n, err);
	is_int(c.seen, n, "generated: every record delivered");
	is_int(c.bad, 0, "generated: every record's values as generated");

	struct dw_totals want = {0};
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = gen_count(i);
		want.records++;
		want.messages += k;
		if (gen_dkim(i) || gen_spf(i))
			want.dmarc_pass += k;
		if (!gen_dkim(i))
			want.dkim_fail += k;
		if (!gen_spf(i))
			want.spf_fail += k;
	}
	want.dmarc_fail = want.messages - want.dmarc_pass;
	const struct dw_totals *t = dw_report_totals(p);
	is_int(t->records, want.records, "generated: totals.records");
	is_int(t->messages, want.messages, "generated: totals.messages");
	is_int(t->dmarc_pass, want.dmarc_pass, "generated: totals.dmarc_pass");
	is_int(t->dmarc_fail, want.dmarc_fail, "generated: totals.dmarc_fail");
	is_int(t->dkim_fail, want.dkim_fail, "generated: totals.dkim_fail");
	is_int(t->spf_fail, want.spf_fail, "generated: totals.spf_fail");
	ok(dw_report_bytes(p) > n * 300, "generated: bytes counted (%" PRIu64 ")", dw_report_bytes(p));
	is_int(dw_report_quirks(p)->n, 0, "generated: no quirks");
	dw_report_free(p);
}

static void
test_limits(void)
{
	struct dw_limits lim;
	dw_limits_default(&lim);
	lim.records_max = 10;
	char err[512] = "";

	struct big_ctx c = {0};
	struct dw_report_cb cb = {.on_record = big_cb};
	struct dw_report_parser *p = dw_report_new(&lim, &cb, &c, "ten");
	is_int(feed_generated(p, 10, 4096, err, sizeof err), DW_OK, "records_max 10: 10 records pass");
	dw_report_free(p);

	memset(&c, 0, sizeof c);
	p = dw_report_new(&lim, &cb, &c, "eleven");
	int rc = feed_generated(p, 11, 4096, err, sizeof err);
	is_int(rc, DW_E_LIMIT, "records_max 10: 11 records are refused");
	ok(contains(err, "report has more than 10 records (limits.records_max)"), "records_max: %s",
	   err);
	is_int(c.seen, 10, "records_max: the first 10 were delivered");
	/* Further feeds report the same error. */
	char err2[512] = "";
	is_int(dw_report_feed(p, "<x/>", 4, err2, sizeof err2), DW_E_LIMIT, "feed after error: same code");
	is_str(err2, err, "feed after error: same message");
	is_int(dw_report_finish(p, err2, sizeof err2), DW_E_LIMIT, "finish after error: same code");
	dw_report_free(p);

	/* A callback error stops the parse and comes back unchanged. */
	memset(&c, 0, sizeof c);
	c.limit_at = 3;
	p = dw_report_new(NULL, &cb, &c, "cb");
	rc = feed_generated(p, 50, 1024, err, sizeof err);
	is_int(rc, DW_E_STORE, "callback error: its code");
	is_str(err, "database is locked (record 2)", "callback error: its message");
	is_int(c.seen, 3, "callback error: no record after the failing one");
	dw_report_free(p);

	/* A smaller depth limit. */
	dw_limits_default(&lim);
	lim.xml_depth_max = 5;
	struct run r;
	run_file(&r, "tests/data/xml/multi-results.xml", &lim);
	is_int(r.rc, DW_E_LIMIT, "xml_depth_max 5: a normal report (depth 6) is refused");
	ok(contains(r.err, "deeper than 5"), "xml_depth_max 5: %s", r.err);
	run_free(&r);
}

/* Oversized text is cut (at a UTF-8 boundary), not fatal. */
static void
test_text_caps(void)
{
	struct sbuf d = {0};
	sb_add(&d, "<feedback><report_metadata><org_name>");
	for (int i = 0; i < 700; i++)
		sb_add(&d, "\xc3\xa9"); /* 1400 bytes of e-acute */
	sb_add(&d, "</org_name><report_id>caps</report_id><date_range><begin>1</begin><end>2</end>"
	           "</date_range><error>");
	for (int i = 0; i < 70000; i++)
		sb_add(&d, "x");
	sb_add(&d, "</error></report_metadata><policy_published><domain>d.example</domain>"
	           "<pct>150</pct></policy_published><record><row><source_ip>  192.0.2.1\n</source_ip>"
	           "<count> 2 </count><policy_evaluated><dkim>pass</dkim></policy_evaluated></row>"
	           "<auth_results>");
	for (int i = 0; i < 1005; i++)
		sb_add(&d, "<dkim><domain>d%d</domain><result>pass</result></dkim>", i);
	sb_add(&d, "</auth_results></record></feedback>");

	struct dw_report_cb cb = {.on_record = collect_cb};
	struct run r;
	memset(&r, 0, sizeof r);
	struct dw_report_parser *p = dw_report_new(NULL, &cb, &r, NULL);
	char err[512] = "";
	int rc = dw_report_feed(p, d.s, d.n, err, sizeof err);
	if (rc == DW_OK)
		rc = dw_report_finish(p, err, sizeof err);
	is_int(rc, DW_OK, "text caps: parses: %s", err);
	const struct dw_report_meta *m = dw_report_meta(p);
	is_int(strlen(m->org_name), 1024, "text caps: org_name cut to 1 KiB");
	is_int(m->nerrors, 1, "text caps: one error");
	is_int(strlen(m->errors[0]), 65536, "text caps: error cut to 64 KiB");
	is_int(m->policy.pct, -1, "text caps: pct 150 is -1");
	const struct dw_quirks *q = dw_report_quirks(p);
	ok(dw_quirks_has(q, "text-truncated:org_name") && dw_quirks_has(q, "text-truncated:error") &&
	       dw_quirks_has(q, "pct:150") && dw_quirks_has(q, "too-many-dkim-results"),
	   "text caps: quirks");
	ok(strncmp(r.recs.s, "192.0.2.1 2 - pass/- ", 21) == 0, "text caps: trimmed values: %.40s",
	   r.recs.s);
	ok(contains(r.recs.s, "dkim=d999/-/pass/-") && !contains(r.recs.s, "dkim=d1000/"),
	   "text caps: 1000 dkim results kept, the rest dropped");
	is_int(dw_report_totals(p)->dkim_fail, 0, "text caps: dkim pass");
	is_int(dw_report_totals(p)->spf_fail, 2, "text caps: missing spf verdict is a fail");
	dw_report_free(p);
	free(r.recs.s);
	free(d.s);

	/* The 0.1 namespace is schema 1; an unknown namespace is noted. */
	const char *ns = "<feedback xmlns='http://dmarc.org/dmarc-xml/0.1'><report_metadata>"
	                 "<report_id>n</report_id><date_range><begin>1</begin><end>2</end>"
	                 "</date_range></report_metadata><policy_published><domain>x</domain>"
	                 "</policy_published></feedback>";
	run_split(&r, "0.1 namespace", ns, strlen(ns), NULL);
	is_int(r.rc, DW_OK, "0.1 namespace parses");
	ok(contains(r.meta.s, "schema=1 "), "0.1 namespace: schema 1");
	ok(contains(r.quirks.s, "missing-org-name") && contains(r.quirks.s, "no-records"),
	   "0.1 namespace: quirks %s", r.quirks.s);
	run_free(&r);
}

int
main(void)
{
	dw_report_global_init();
	dw_report_global_init(); /* idempotent */
	dw_report_free(NULL);

	test_corpus();
	test_corpus_details();
	test_encodings();
	test_values();
	test_hostile();
	test_text_caps();
	test_limits();
	test_big();
	return done_testing();
}
