/*
 * output.c - the `parse` and `report` printers. See dw/output.h.
 *
 * Every JSON value is built and encoded by jansson. A parse line is
 * assembled from jansson-encoded pieces: the report's object without its
 * records, then the spooled records (each one a jansson dump), so a report
 * with a million records never sits in memory as one JSON tree.
 */
#include "dw/output.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct dw_printer {
	FILE *out;
	enum dw_format fmt;
	int with_records;
	const char *source;  /* borrowed */
	FILE *spool;         /* records of the current report, one JSON object per line */
	uint64_t nrec;
	unsigned failures;
	int csv_header;
	int spool_error;
};

enum dw_format
dw_format_parse(const char *s)
{
	if (strcmp(s, "json") == 0)
		return DW_FMT_JSON;
	if (strcmp(s, "csv") == 0)
		return DW_FMT_CSV;
	if (strcmp(s, "table") == 0)
		return DW_FMT_TABLE;
	return 0;
}

/* A JSON string from bytes that should be UTF-8; invalid bytes become '?'
 * rather than making the whole output invalid. NULL gives null. */
static json_t *
jstr(const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	char *copy = xstrdup(s);
	for (unsigned char *c = (unsigned char *)copy; *c; c++)
		if (*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j != NULL ? j : json_null();
}

static json_t *
jint(uint64_t v)
{
	return json_integer((json_int_t)v);
}

struct dw_printer *
dw_printer_new(FILE *out, enum dw_format fmt, int with_records)
{
	struct dw_printer *p = xcalloc(1, sizeof *p);
	p->out = out;
	p->fmt = fmt;
	p->with_records = with_records;
	return p;
}

void
dw_printer_free(struct dw_printer *p)
{
	if (p == NULL)
		return;
	if (p->spool != NULL)
		fclose(p->spool);
	free(p);
}

void
dw_printer_set_source(struct dw_printer *p, const char *source)
{
	p->source = source;
}

unsigned
dw_printer_failures(const struct dw_printer *p)
{
	return p->failures;
}

static json_t *
record_json(const struct dw_record *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "source_ip", jstr(r->source_ip));
	json_object_set_new(o, "count", jint(r->count));
	json_object_set_new(o, "disposition", jstr(r->disposition));
	json_object_set_new(o, "dkim", jstr(r->dkim));
	json_object_set_new(o, "spf", jstr(r->spf));
	json_t *a = json_array();
	for (size_t i = 0; i < r->nreasons; i++) {
		json_t *x = json_object();
		json_object_set_new(x, "type", jstr(r->reasons[i].type));
		json_object_set_new(x, "comment", jstr(r->reasons[i].comment));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "reasons", a);
	json_object_set_new(o, "header_from", jstr(r->header_from));
	json_object_set_new(o, "envelope_from", jstr(r->envelope_from));
	json_object_set_new(o, "envelope_to", jstr(r->envelope_to));
	a = json_array();
	for (size_t i = 0; i < r->ndkim; i++) {
		json_t *x = json_object();
		json_object_set_new(x, "domain", jstr(r->dkim_results[i].domain));
		json_object_set_new(x, "selector", jstr(r->dkim_results[i].selector));
		json_object_set_new(x, "result", jstr(r->dkim_results[i].result));
		if (r->dkim_results[i].human_result != NULL)
			json_object_set_new(x, "human_result", jstr(r->dkim_results[i].human_result));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "dkim_results", a);
	a = json_array();
	for (size_t i = 0; i < r->nspf; i++) {
		json_t *x = json_object();
		json_object_set_new(x, "domain", jstr(r->spf_results[i].domain));
		json_object_set_new(x, "scope", jstr(r->spf_results[i].scope));
		json_object_set_new(x, "result", jstr(r->spf_results[i].result));
		if (r->spf_results[i].human_result != NULL)
			json_object_set_new(x, "human_result", jstr(r->spf_results[i].human_result));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "spf_results", a);
	return o;
}

static int
pr_begin(void *ctx, const struct dw_doc_info *doc, char *err, size_t errlen)
{
	struct dw_printer *p = ctx;
	(void)doc;
	p->nrec = 0;
	p->spool_error = 0;
	if (!p->with_records)
		return DW_OK;
	if (p->spool == NULL) {
		p->spool = tmpfile();
		if (p->spool == NULL)
			return dw_err(err, errlen, DW_E_SYS,
			              "cannot create a temporary file for the records: %s (set TMPDIR to a "
			              "writable directory, or use --no-records)",
			              strerror(errno));
	} else {
		rewind(p->spool);
		if (ftruncate(fileno(p->spool), 0) != 0)
			return dw_err(err, errlen, DW_E_SYS, "cannot reset the record spool: %s", strerror(errno));
	}
	return DW_OK;
}

static int
pr_record(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec, char *err,
          size_t errlen)
{
	struct dw_printer *p = ctx;
	(void)meta;
	if (!p->with_records)
		return DW_OK;
	json_t *o = record_json(rec);
	int rc = json_dumpf(o, p->spool, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (rc != 0 || fputc('\n', p->spool) == EOF)
		return dw_err(err, errlen, DW_E_SYS, "cannot write the record spool: %s (is TMPDIR full?)",
		              strerror(errno));
	p->nrec++;
	return DW_OK;
}

static json_t *
meta_json(const struct dw_printer *p, const struct dw_doc_info *doc, const struct dw_report_meta *m,
          const struct dw_totals *t, const struct dw_quirks *q)
{
	json_t *o = json_object();
	json_object_set_new(o, "source", jstr(p->source));
	if (doc->where[0] != '\0')
		json_object_set_new(o, "part", jstr(doc->where));
	json_object_set_new(o, "kind", json_string("aggregate"));
	json_object_set_new(o, "schema", json_string(m->schema == 2 ? "2.0" : "1.0"));
	json_object_set_new(o, "org_name", jstr(m->org_name));
	json_object_set_new(o, "email", jstr(m->email));
	json_object_set_new(o, "report_id", jstr(m->report_id));
	json_object_set_new(o, "begin", json_integer(m->begin));
	json_object_set_new(o, "end", json_integer(m->end));
	json_object_set_new(o, "policy_domain", jstr(m->policy.domain));
	json_t *pol = json_object();
	json_object_set_new(pol, "p", jstr(m->policy.p));
	json_object_set_new(pol, "sp", jstr(m->policy.sp));
	json_object_set_new(pol, "np", jstr(m->policy.np));
	json_object_set_new(pol, "adkim", jstr(m->policy.adkim));
	json_object_set_new(pol, "aspf", jstr(m->policy.aspf));
	json_object_set_new(pol, "pct", m->policy.pct >= 0 ? json_integer(m->policy.pct) : json_null());
	json_object_set_new(pol, "testing", jstr(m->policy.testing));
	json_object_set_new(pol, "fo", jstr(m->policy.fo));
	json_object_set_new(pol, "discovery_method", jstr(m->policy.discovery_method));
	json_object_set_new(o, "policy", pol);
	if (m->generator != NULL)
		json_object_set_new(o, "generator", jstr(m->generator));
	if (m->nerrors > 0) {
		json_t *e = json_array();
		for (size_t i = 0; i < m->nerrors; i++)
			json_array_append_new(e, jstr(m->errors[i]));
		json_object_set_new(o, "errors", e);
	}
	json_t *qa = json_array();
	for (size_t i = 0; q != NULL && i < q->n; i++)
		json_array_append_new(qa, jstr(q->v[i]));
	json_object_set_new(o, "quirks", qa);
	json_t *to = json_object();
	json_object_set_new(to, "records", jint(t->records));
	json_object_set_new(to, "messages", jint(t->messages));
	json_object_set_new(to, "dmarc_pass", jint(t->dmarc_pass));
	json_object_set_new(to, "dmarc_fail", jint(t->dmarc_fail));
	json_object_set_new(to, "dkim_fail", jint(t->dkim_fail));
	json_object_set_new(to, "spf_fail", jint(t->spf_fail));
	json_object_set_new(o, "totals", to);
	return o;
}

/* Read the spooled records back, one JSON object per line. */
static json_t *
spool_next(FILE *spool, char **line, size_t *cap)
{
	ssize_t n = getline(line, cap, spool);
	if (n <= 0)
		return NULL;
	json_error_t je;
	return json_loadb(*line, (size_t)n, 0, &je);
}

static const char *
js(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static void
csv_field(FILE *out, const char *s, int last)
{
	if (strpbrk(s, ",\"\r\n") != NULL) {
		fputc('"', out);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', out);
			fputc(*s, out);
		}
		fputc('"', out);
	} else {
		fputs(s, out);
	}
	fputc(last ? '\n' : ',', out);
}

/* "domain/selector=result;..." for the CSV and table outputs. */
static char *
auth_summary(json_t *arr, const char *second)
{
	size_t cap = 64, len = 0;
	char *s = xmalloc(cap);
	s[0] = '\0';
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x)
	{
		const char *k = js(x, "domain"), *mid = js(x, second), *res = js(x, "result");
		size_t need = strlen(k) + strlen(mid) + strlen(res) + 4;
		if (len + need >= cap) {
			cap = (len + need) * 2;
			s = xrealloc(s, cap);
		}
		len += (size_t)snprintf(s + len, cap - len, "%s%s%s%s=%s", i ? ";" : "", k, *mid ? "/" : "",
		                        mid, res);
	}
	return s;
}

static void
print_csv(struct dw_printer *p, const struct dw_report_meta *m)
{
	static const char *cols[] = {"source", "org_name", "report_id", "policy_domain", "begin", "end",
	                             "source_ip", "count", "disposition", "dkim", "spf", "header_from",
	                             "envelope_from", "envelope_to", "reasons", "dkim_results",
	                             "spf_results"};
	size_t ncols = sizeof cols / sizeof cols[0];
	if (!p->csv_header) {
		for (size_t i = 0; i < ncols; i++)
			csv_field(p->out, cols[i], i + 1 == ncols);
		p->csv_header = 1;
	}
	if (p->spool == NULL)
		return;
	rewind(p->spool);
	char *line = NULL, b[32], e[32];
	size_t cap = 0;
	json_t *r;
	snprintf(b, sizeof b, "%" PRId64, m->begin);
	snprintf(e, sizeof e, "%" PRId64, m->end);
	while ((r = spool_next(p->spool, &line, &cap)) != NULL) {
		char cnt[32];
		snprintf(cnt, sizeof cnt, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(r, "count")));
		char *reasons = auth_summary(json_object_get(r, "reasons"), "comment");
		char *dk = auth_summary(json_object_get(r, "dkim_results"), "selector");
		char *sp = auth_summary(json_object_get(r, "spf_results"), "scope");
		const char *row[] = {p->source ? p->source : "", m->org_name ? m->org_name : "",
		                     m->report_id ? m->report_id : "", m->policy.domain ? m->policy.domain : "",
		                     b, e, js(r, "source_ip"), cnt, js(r, "disposition"), js(r, "dkim"),
		                     js(r, "spf"), js(r, "header_from"), js(r, "envelope_from"),
		                     js(r, "envelope_to"), reasons, dk, sp};
		for (size_t i = 0; i < ncols; i++)
			csv_field(p->out, row[i], i + 1 == ncols);
		free(reasons);
		free(dk);
		free(sp);
		json_decref(r);
	}
	free(line);
}

static const char *
utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}

#define NZ(s) ((s) ? (s) : "-")

static void
print_table(struct dw_printer *p, const struct dw_doc_info *doc, const struct dw_report_meta *m,
            const struct dw_totals *t, const struct dw_quirks *q)
{
	char b[40], e[40];
	FILE *o = p->out;
	fprintf(o, "%s%s%s\n", NZ(p->source), doc->where[0] ? ": " : "", doc->where);
	fprintf(o, "  reporter  %s <%s>\n", NZ(m->org_name), NZ(m->email));
	fprintf(o, "  report    %s (DMARC %s)\n", NZ(m->report_id), m->schema == 2 ? "2.0" : "1.0");
	fprintf(o, "  domain    %s\n", NZ(m->policy.domain));
	fprintf(o, "  period    %s .. %s UTC\n", utc(m->begin, b, sizeof b), utc(m->end, e, sizeof e));
	fprintf(o, "  policy    p=%s sp=%s np=%s adkim=%s aspf=%s", NZ(m->policy.p), NZ(m->policy.sp),
	        NZ(m->policy.np), NZ(m->policy.adkim), NZ(m->policy.aspf));
	if (m->policy.pct >= 0)
		fprintf(o, " pct=%d", m->policy.pct);
	if (m->policy.testing)
		fprintf(o, " t=%s", m->policy.testing);
	fprintf(o, "\n");
	fprintf(o,
	        "  messages  %" PRIu64 " in %" PRIu64 " records: dmarc pass %" PRIu64 ", dmarc fail %" PRIu64
	        ", dkim fail %" PRIu64 ", spf fail %" PRIu64 "\n",
	        t->messages, t->records, t->dmarc_pass, t->dmarc_fail, t->dkim_fail, t->spf_fail);
	if (q != NULL && q->n > 0) {
		fprintf(o, "  quirks   ");
		for (size_t i = 0; i < q->n; i++)
			fprintf(o, " %s", q->v[i]);
		fprintf(o, "\n");
	}
	if (p->spool != NULL && p->nrec > 0) {
		fprintf(o, "  %-39s %10s %-10s %-5s %-5s %s\n", "SOURCE IP", "COUNT", "DISP", "DKIM", "SPF",
		        "HEADER FROM / AUTH");
		rewind(p->spool);
		char *line = NULL;
		size_t cap = 0;
		json_t *r;
		while ((r = spool_next(p->spool, &line, &cap)) != NULL) {
			char *dk = auth_summary(json_object_get(r, "dkim_results"), "selector");
			char *sp = auth_summary(json_object_get(r, "spf_results"), "scope");
			fprintf(o, "  %-39s %10" JSON_INTEGER_FORMAT " %-10s %-5s %-5s %s dkim:%s spf:%s\n",
			        js(r, "source_ip"), json_integer_value(json_object_get(r, "count")),
			        js(r, "disposition"), js(r, "dkim"), js(r, "spf"), js(r, "header_from"),
			        *dk ? dk : "-", *sp ? sp : "-");
			free(dk);
			free(sp);
			json_decref(r);
		}
		free(line);
	}
	fprintf(o, "\n");
}

static void
print_json(struct dw_printer *p, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s == NULL)
		return;
	if (!p->with_records) {
		fputs(s, p->out);
		fputc('\n', p->out);
		free(s);
		return;
	}
	/* The object without records ends in '}': reopen it for "records". */
	size_t n = strlen(s);
	fwrite(s, 1, n - 1, p->out);
	free(s);
	fputs(",\"records\":[", p->out);
	rewind(p->spool);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int first = 1;
	while ((len = getline(&line, &cap, p->spool)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		if (!first)
			fputc(',', p->out);
		fwrite(line, 1, (size_t)len, p->out);
		first = 0;
	}
	free(line);
	fputs("]}\n", p->out);
}

static void
pr_end(void *ctx, const struct dw_doc_info *doc, int status, const char *msg, const struct dw_report_meta *m,
       const struct dw_totals *t, const struct dw_quirks *q)
{
	struct dw_printer *p = ctx;
	if (status != DW_OK) {
		p->failures++;
		if (p->fmt == DW_FMT_JSON) {
			json_t *o = json_object();
			json_object_set_new(o, "source", jstr(p->source));
			if (doc->where[0] != '\0')
				json_object_set_new(o, "part", jstr(doc->where));
			json_object_set_new(o, "error", jstr(msg ? msg : "failed"));
			char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (s != NULL) {
				fprintf(p->out, "%s\n", s);
				free(s);
			}
			json_decref(o);
		}
		fprintf(stderr, "dmarcwatch: %s%s%s: %s\n", NZ(p->source), doc->where[0] ? ": " : "",
		        doc->where, msg ? msg : "failed");
		return;
	}
	switch (p->fmt) {
	case DW_FMT_JSON: {
		json_t *o = meta_json(p, doc, m, t, q);
		print_json(p, o);
		json_decref(o);
		break;
	}
	case DW_FMT_CSV:
		print_csv(p, m);
		break;
	case DW_FMT_TABLE:
		print_table(p, doc, m, t, q);
		break;
	}
}

const struct dw_ingest_cb dw_printer_cb = {
    .report_begin = pr_begin,
    .record = pr_record,
    .report_end = pr_end,
};

void
dw_printer_item_error(struct dw_printer *p, const char *source, const char *reason)
{
	p->failures++;
	if (p->fmt == DW_FMT_JSON) {
		json_t *o = json_object();
		json_object_set_new(o, "source", jstr(source));
		json_object_set_new(o, "error", jstr(reason));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s != NULL) {
			fprintf(p->out, "%s\n", s);
			free(s);
		}
		json_decref(o);
	}
	fprintf(stderr, "dmarcwatch: %s: %s\n", source, reason);
}

int
dw_printer_finish(struct dw_printer *p, char *err, size_t errlen)
{
	if (fflush(p->out) != 0 || ferror(p->out))
		return dw_err(err, errlen, DW_E_SYS, "cannot write the output: %s", strerror(errno));
	return DW_OK;
}

/* ---- aggregates ---- */

static json_t *
agg_json(enum dw_agg_by by, const struct dw_agg_row *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "domain", jstr(r->domain));
	if (by == DW_BY_DAY)
		json_object_set_new(o, "day", json_string(r->day));
	else if (by == DW_BY_SOURCE)
		json_object_set_new(o, "source_ip", jstr(r->key));
	else
		json_object_set_new(o, "reporter", jstr(r->key));
	json_object_set_new(o, "messages", jint(r->messages));
	json_object_set_new(o, "dmarc_pass", jint(r->dmarc_pass));
	json_object_set_new(o, "dmarc_fail", jint(r->dmarc_fail));
	json_object_set_new(o, "dkim_fail", jint(r->dkim_fail));
	json_object_set_new(o, "spf_fail", jint(r->spf_fail));
	json_object_set_new(o, "pass_rate",
	                    r->messages ? json_real((double)r->dmarc_pass / (double)r->messages) : json_null());
	json_t *d = json_object();
	json_object_set_new(d, "none", jint(r->disp_none));
	json_object_set_new(d, "quarantine", jint(r->disp_quarantine));
	json_object_set_new(d, "reject", jint(r->disp_reject));
	json_object_set_new(d, "pass", jint(r->disp_pass));
	json_object_set_new(d, "other", jint(r->disp_other));
	json_object_set_new(o, "dispositions", d);
	json_object_set_new(o, "reports", jint(r->reports));
	return o;
}

int
dw_print_aggregate(FILE *out, enum dw_format fmt, enum dw_agg_by by, const struct dw_agg_result *res)
{
	const char *keyname = by == DW_BY_DAY ? "day" : by == DW_BY_SOURCE ? "source_ip" : "reporter";
	if (fmt == DW_FMT_JSON) {
		for (size_t i = 0; i < res->n; i++) {
			json_t *o = agg_json(by, &res->rows[i]);
			char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			json_decref(o);
			if (s != NULL) {
				fprintf(out, "%s\n", s);
				free(s);
			}
		}
	} else if (fmt == DW_FMT_CSV) {
		fprintf(out, "domain,%s,messages,dmarc_pass,dmarc_fail,dkim_fail,spf_fail,pass_rate,"
		             "none,quarantine,reject,pass,other,reports\n",
		        keyname);
		for (size_t i = 0; i < res->n; i++) {
			const struct dw_agg_row *r = &res->rows[i];
			char rate[32] = "";
			if (r->messages)
				snprintf(rate, sizeof rate, "%.4f", (double)r->dmarc_pass / (double)r->messages);
			csv_field(out, r->domain ? r->domain : "", 0);
			csv_field(out, by == DW_BY_DAY ? r->day : (r->key ? r->key : ""), 0);
			fprintf(out,
			        "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%s,%" PRIu64 ",%" PRIu64
			        ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
			        r->messages, r->dmarc_pass, r->dmarc_fail, r->dkim_fail, r->spf_fail, rate,
			        r->disp_none, r->disp_quarantine, r->disp_reject, r->disp_pass, r->disp_other,
			        r->reports);
		}
	} else {
		fprintf(out, "%-24s %-24s %10s %10s %10s %10s %10s %7s %8s %8s %8s\n", "DOMAIN",
		        by == DW_BY_DAY ? "DAY" : by == DW_BY_SOURCE ? "SOURCE IP" : "REPORTER", "MESSAGES",
		        "DMARC OK", "DMARC FAIL", "DKIM FAIL", "SPF FAIL", "PASS%", "NONE", "QUARANT", "REJECT");
		for (size_t i = 0; i < res->n; i++) {
			const struct dw_agg_row *r = &res->rows[i];
			char rate[16] = "-";
			if (r->messages)
				snprintf(rate, sizeof rate, "%.1f", 100.0 * (double)r->dmarc_pass / (double)r->messages);
			fprintf(out,
			        "%-24s %-24s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
			        " %7s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n",
			        NZ(r->domain), by == DW_BY_DAY ? r->day : NZ(r->key), r->messages, r->dmarc_pass,
			        r->dmarc_fail, r->dkim_fail, r->spf_fail, rate, r->disp_none, r->disp_quarantine,
			        r->disp_reject);
		}
		if (res->n == 0)
			fprintf(out, "(no reports in the store match)\n");
	}
	if (fflush(out) != 0 || ferror(out))
		return DW_E_SYS;
	return DW_OK;
}
