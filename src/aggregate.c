/*
 * aggregate.c - stage 5: per-day, per-source or per-reporter aggregates of
 * the stored reports in the process's time zone. See dw/aggregate.h.
 *
 * The store hands over rows already summed per report and result; each
 * row's count is attributed to days with days.h (largest remainder, so the
 * shares of a split report add up exactly), the days outside --since and
 * --until are dropped, and the rest is accumulated in a hash table keyed by
 * (domain, day or key). Memory grows with the result, not with the data.
 */
#include "dw/aggregate.h"
#include "dw/days.h"

#include <stdlib.h>
#include <string.h>

/* Margins around the window for the store query. Ranges are attributed
 * only to days they overlap, so a report outside [since, until] can never
 * land inside; the margins just make day-boundary arithmetic (23 and 25
 * hour days) irrelevant. The exact cut is done per day below. */
#define MARGIN_BEFORE INT64_C(86400)
#define MARGIN_AFTER (2 * INT64_C(86400))

struct agg {
	enum dw_agg_by by;
	const char *since, *until;   /* validated YYYY-MM-DD, or NULL */

	/* Rows and, in parallel, the last report counted into each. */
	struct dw_agg_row *rows;
	int64_t *last_report;
	uint64_t *hash;
	size_t n, cap;
	size_t *slot;                /* open addressing: row index + 1, 0 = empty */
	size_t nslot;                /* a power of two, at least 2 * n */

	/* The current report's days, computed once per report. */
	int64_t report;
	struct dw_days days;
	int in_window[DW_DAYS_MAX];
};

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* FNV-1a over the key strings, with a separator so ("ab","c") != ("a","bc"). */
static uint64_t
key_hash(const char *domain, const char *day, const char *key)
{
	uint64_t h = UINT64_C(14695981039346656037);
	const char *parts[3] = {domain, day, key != NULL ? key : ""};
	for (int i = 0; i < 3; i++) {
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p != '\0'; p++) {
			h ^= *p;
			h *= UINT64_C(1099511628211);
		}
		h ^= 0xff;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static void
grow_slots(struct agg *a)
{
	size_t nslot = a->nslot ? a->nslot * 2 : 64;
	size_t *slot = xcalloc(nslot, sizeof *slot);
	for (size_t i = 0; i < a->n; i++) {
		size_t j = (size_t)a->hash[i] & (nslot - 1);
		while (slot[j] != 0)
			j = (j + 1) & (nslot - 1);
		slot[j] = i + 1;
	}
	free(a->slot);
	a->slot = slot;
	a->nslot = nslot;
}

/* The row for (domain, day, key), created empty when new. */
static struct dw_agg_row *
row_for(struct agg *a, const char *domain, const char *day, const char *key, int64_t **last)
{
	uint64_t h = key_hash(domain, day, key);
	if (a->nslot == 0 || 2 * (a->n + 1) > a->nslot)
		grow_slots(a);
	size_t j = (size_t)h & (a->nslot - 1);
	while (a->slot[j] != 0) {
		size_t i = a->slot[j] - 1;
		struct dw_agg_row *r = &a->rows[i];
		if (a->hash[i] == h && strcmp(r->domain, domain) == 0 && strcmp(r->day, day) == 0 &&
		    ((r->key == NULL && key == NULL) || (r->key != NULL && key != NULL && strcmp(r->key, key) == 0))) {
			*last = &a->last_report[i];
			return r;
		}
		j = (j + 1) & (a->nslot - 1);
	}
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->rows = xreallocarray(a->rows, a->cap, sizeof *a->rows);
		a->last_report = xreallocarray(a->last_report, a->cap, sizeof *a->last_report);
		a->hash = xreallocarray(a->hash, a->cap, sizeof *a->hash);
	}
	size_t i = a->n++;
	struct dw_agg_row *r = &a->rows[i];
	memset(r, 0, sizeof *r);
	r->domain = xstrdup(domain);
	memcpy(r->day, day, strlen(day) + 1); /* "" or YYYY-MM-DD, fits day[11] */
	r->key = xstrdup(key);
	a->last_report[i] = -1;
	a->hash[i] = h;
	a->slot[j] = i + 1;
	*last = &a->last_report[i];
	return r;
}

static int
is_pass(const char *v)
{
	return v != NULL && strcmp(v, "pass") == 0;
}

/* Add n messages of one result to r, counting the report once. */
static void
account(struct dw_agg_row *r, int64_t *last, int64_t report, const struct dw_store_row *row, uint64_t n)
{
	if (*last != report) {
		*last = report;
		r->reports++;
	}
	r->messages = sat_add(r->messages, n);
	if (is_pass(row->dkim) || is_pass(row->spf))
		r->dmarc_pass = sat_add(r->dmarc_pass, n);
	else
		r->dmarc_fail = sat_add(r->dmarc_fail, n);
	if (!is_pass(row->dkim))
		r->dkim_fail = sat_add(r->dkim_fail, n);
	if (!is_pass(row->spf))
		r->spf_fail = sat_add(r->spf_fail, n);
	const char *d = row->disposition != NULL ? row->disposition : "";
	if (strcmp(d, "none") == 0)
		r->disp_none = sat_add(r->disp_none, n);
	else if (strcmp(d, "quarantine") == 0)
		r->disp_quarantine = sat_add(r->disp_quarantine, n);
	else if (strcmp(d, "reject") == 0)
		r->disp_reject = sat_add(r->disp_reject, n);
	else if (strcmp(d, "pass") == 0)
		r->disp_pass = sat_add(r->disp_pass, n);
	else
		r->disp_other = sat_add(r->disp_other, n);
}

static int
on_row(void *ctx, const struct dw_store_row *row)
{
	struct agg *a = ctx;
	if (row->report != a->report) {
		a->report = row->report;
		dw_days_of(row->begin, row->end, &a->days);
		for (size_t i = 0; i < a->days.n; i++) {
			const char *ymd = a->days.day[i].ymd;
			a->in_window[i] = (a->since == NULL || strcmp(ymd, a->since) >= 0) &&
			                  (a->until == NULL || strcmp(ymd, a->until) <= 0);
		}
	}

	uint64_t share[DW_DAYS_MAX];
	dw_days_apportion(&a->days, row->count, share);
	const char *domain = row->domain != NULL ? row->domain : "";
	int64_t *last;

	/*
	 * A day takes part when it got messages. A zero-count row still shows
	 * its report, on the first day only (where a first message would have
	 * gone had the count been one more).
	 */
	if (a->by == DW_BY_DAY) {
		for (size_t i = 0; i < a->days.n; i++) {
			if (!a->in_window[i] || (share[i] == 0 && !(row->count == 0 && i == 0)))
				continue;
			struct dw_agg_row *r = row_for(a, domain, a->days.day[i].ymd, NULL, &last);
			account(r, last, row->report, row, share[i]);
		}
		return 0;
	}

	uint64_t total = 0;
	int any = 0;
	for (size_t i = 0; i < a->days.n; i++) {
		if (!a->in_window[i])
			continue;
		total += share[i]; /* the shares sum to row->count: no overflow */
		if (share[i] > 0 || (row->count == 0 && i == 0))
			any = 1;
	}
	if (!any)
		return 0;
	const char *key = a->by == DW_BY_SOURCE ? row->source_ip : row->org_name;
	struct dw_agg_row *r = row_for(a, domain, "", key != NULL ? key : "", &last);
	account(r, last, row->report, row, total);
	return 0;
}

static int
row_cmp(const void *x, const void *y)
{
	const struct dw_agg_row *a = x, *b = y;
	int c = strcmp(a->domain, b->domain);
	if (c != 0)
		return c;
	c = strcmp(a->day, b->day);
	if (c != 0)
		return c;
	return strcmp(a->key != NULL ? a->key : "", b->key != NULL ? b->key : "");
}

int
dw_aggregate(struct dw_store *s, const struct dw_agg_query *q, struct dw_agg_result *out, char *err,
             size_t errlen)
{
	out->rows = NULL;
	out->n = 0;
	if (q->by != DW_BY_DAY && q->by != DW_BY_SOURCE && q->by != DW_BY_REPORTER)
		return dw_err(err, errlen, DW_E_CONFIG, "aggregate: unknown grouping %d", (int)q->by);

	int64_t since_start = 0, until_start = 0;
	if (q->since != NULL && dw_day_parse(q->since, &since_start) != 0)
		return dw_err(err, errlen, DW_E_CONFIG, "--since: expected YYYY-MM-DD, got '%s'", q->since);
	if (q->until != NULL && dw_day_parse(q->until, &until_start) != 0)
		return dw_err(err, errlen, DW_E_CONFIG, "--until: expected YYYY-MM-DD, got '%s'", q->until);
	if (q->since != NULL && q->until != NULL && strcmp(q->since, q->until) > 0)
		return dw_err(err, errlen, DW_E_CONFIG, "--since %s is after --until %s", q->since, q->until);

	struct agg a;
	memset(&a, 0, sizeof a);
	a.by = q->by;
	a.since = q->since;
	a.until = q->until;
	a.report = -1;

	struct dw_store_query sq = {
		.domain = q->domain,
		.from = q->since != NULL ? since_start - MARGIN_BEFORE : INT64_MIN,
		.to = q->until != NULL ? until_start + MARGIN_AFTER : INT64_MAX,
		.by_source = q->by == DW_BY_SOURCE,
	};
	int rc = dw_store_foreach(s, &sq, on_row, &a, err, errlen);
	free(a.slot);
	free(a.last_report);
	free(a.hash);
	if (rc != DW_OK) {
		struct dw_agg_result partial = {a.rows, a.n};
		dw_agg_result_free(&partial);
		return rc;
	}
	if (a.n > 1)
		qsort(a.rows, a.n, sizeof *a.rows, row_cmp);
	out->rows = a.rows;
	out->n = a.n;
	return DW_OK;
}

void
dw_agg_result_free(struct dw_agg_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->rows[i].domain);
		free(r->rows[i].key);
	}
	free(r->rows);
	r->rows = NULL;
	r->n = 0;
}
