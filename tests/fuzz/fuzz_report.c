/*
 * fuzz_report.c - libFuzzer harness for stage 3 (src/report.c): the input is
 * the XML of one aggregate report.
 *
 * The bytes are fed in three chunks whose boundaries depend on the first two
 * bytes, so the fuzzer moves element names, text and multi-byte characters
 * across chunk boundaries. Every field of every record and of the metadata
 * is read (string lengths are summed), so ASan sees any pointer that is
 * dangling or not terminated; documented properties are checked with abort.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw/limits.h"
#include "dw/report.h"
#include "dw/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dw_limits limits;

struct seen {
	uint64_t records;
	volatile size_t sum;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dw_report_global_init();
	dw_limits_default(&limits);
	limits.records_max = 100000;
	return 0;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

static size_t touch_meta(const struct dw_report_meta *m)
{
	size_t n = 0;
	if (m->schema != 1 && m->schema != 2 && m->schema != 0)
		abort();
	n += slen(m->version) + slen(m->org_name) + slen(m->email) + slen(m->extra_contact_info);
	n += slen(m->report_id) + slen(m->generator);
	for (size_t i = 0; i < m->nerrors; i++)
		n += slen(m->errors[i]);
	const struct dw_policy *p = &m->policy;
	n += slen(p->domain) + slen(p->p) + slen(p->sp) + slen(p->np) + slen(p->adkim) + slen(p->aspf);
	n += slen(p->fo) + slen(p->testing) + slen(p->discovery_method);
	if (p->pct < -1 || p->pct > 100)
		abort(); /* pct is 0..100 or -1 */
	return n;
}

static int on_record(void *ctx, const struct dw_report_meta *meta, const struct dw_record *r,
                     char *err, size_t errlen)
{
	struct seen *s = ctx;
	size_t n = 0;
	(void)err;
	(void)errlen;

	if (memchr(r->source_ip, '\0', sizeof r->source_ip) == NULL)
		abort(); /* source_ip not terminated inside its array */
	n += strlen(r->source_ip) + (size_t)r->count;
	n += slen(r->disposition) + slen(r->dkim) + slen(r->spf);
	for (size_t i = 0; i < r->nreasons; i++)
		n += slen(r->reasons[i].type) + slen(r->reasons[i].comment);
	n += slen(r->header_from) + slen(r->envelope_from) + slen(r->envelope_to);
	for (size_t i = 0; i < r->ndkim; i++) {
		const struct dw_dkim_result *d = &r->dkim_results[i];
		n += slen(d->domain) + slen(d->selector) + slen(d->result) + slen(d->human_result);
	}
	for (size_t i = 0; i < r->nspf; i++) {
		const struct dw_spf_result *f = &r->spf_results[i];
		n += slen(f->domain) + slen(f->scope) + slen(f->result) + slen(f->human_result);
	}
	n += touch_meta(meta);
	n += (size_t)dw_record_dmarc_pass(r);
	s->sum += n;
	s->records++;
	return DW_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dw_report_cb cb = {.on_record = on_record};
	struct seen s;
	char err[256];
	int rc = DW_OK;

	memset(&s, 0, sizeof s);
	err[0] = '\0';
	struct dw_report_parser *p = dw_report_new(&limits, &cb, &s, "fuzz");
	if (p == NULL)
		abort();

	/* Cut points a <= b, scaled from the first two bytes. */
	size_t a = size ? (size_t)data[0] * size / 256 : 0;
	size_t b = size > 1 ? a + (size_t)data[1] * (size - a) / 256 : a;
	const size_t cut[4] = {0, a, b, size};
	for (int i = 0; i < 3 && rc == DW_OK; i++)
		rc = dw_report_feed(p, data + cut[i], cut[i + 1] - cut[i], err, sizeof err);
	if (rc == DW_OK)
		rc = dw_report_finish(p, err, sizeof err);
	if (memchr(err, '\0', sizeof err) == NULL)
		abort();

	s.sum += touch_meta(dw_report_meta(p));
	const struct dw_totals *t = dw_report_totals(p);
	if (rc == DW_OK) {
		/* Totals count the records handed to on_record. */
		if (t->records != s.records)
			abort();
		if (t->dmarc_pass + t->dmarc_fail != t->messages)
			abort();
	}
	if (s.records > limits.records_max)
		abort();
	struct dw_quirks *q = dw_report_quirks(p);
	for (size_t i = 0; i < q->n; i++)
		s.sum += strlen(q->v[i]);
	s.sum += (size_t)dw_report_bytes(p);
	dw_report_free(p);
	return 0;
}
