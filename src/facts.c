/*
 * facts.c - the stored reports as daily facts. See dw/facts.h.
 *
 * The store streams every record of the current reports overlapping the
 * window (dw_store_foreach_records); each record's count is attributed to
 * days exactly as aggregate.c does it (dw_days_of once per report, then
 * dw_days_apportion per record; a zero count shows on the report's first
 * day only), and the days outside from..to are dropped. Strings are
 * interned into a hash table while loading; at the end the table is sorted,
 * so interned indexes compare like the strings and dw_facts_str can search
 * it, and the facts are sorted and merged (records the store kept apart,
 * for their envelope or auth results, that agree on every fact field).
 */
#include "dw/facts.h"
#include "dw/days.h"

#include <stdlib.h>
#include <string.h>

/* Margins around the window for the store query, as in aggregate.c: a
 * report is attributed only to days it overlaps, so they only make the
 * day-boundary arithmetic irrelevant. The exact cut is made per day. */
#define MARGIN_BEFORE INT64_C(86400)
#define MARGIN_AFTER (2 * INT64_C(86400))

/* At most this many days in one load: a century, against typos like
 * 0001-01-01. */
#define FACTS_DAYS_MAX 36525

/* 30 hours after a day's start always lies in the next day: days last 23
 * to 25 hours, and the next one at least 23 more. */
#define NEXT_DAY_PROBE INT64_C(108000)

struct loader {
	struct dw_facts *f;
	size_t capv, cappol;

	/* Interning: f->strs grows; slots hold index + 1, 0 = empty. */
	size_t capstrs;
	uint64_t *hash;       /* per string */
	uint32_t *slot;
	size_t nslot;         /* a power of two, at least 2 * nstrs */

	/* The current report: its days (index into f->days or -1) and the
	 * strings every fact of it shares. */
	int64_t report;
	struct dw_days days;
	long day_idx[DW_DAYS_MAX];
	int in_window;        /* some of its days are in from..to */
	uint32_t domain, reporter;
};

static uint64_t
str_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static void
grow_slots(struct loader *l)
{
	size_t nslot = l->nslot ? l->nslot * 2 : 256;
	uint32_t *slot = xcalloc(nslot, sizeof *slot);
	for (size_t i = 0; i < l->f->nstrs; i++) {
		size_t j = (size_t)l->hash[i] & (nslot - 1);
		while (slot[j] != 0)
			j = (j + 1) & (nslot - 1);
		slot[j] = (uint32_t)(i + 1);
	}
	free(l->slot);
	l->slot = slot;
	l->nslot = nslot;
}

/* The index of s (n bytes, lower-cased when lower), added when new. */
static uint32_t
intern_n(struct loader *l, const char *v, size_t n, int lower)
{
	char buf[256];
	char *tmp = n < sizeof buf ? buf : xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		tmp[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	tmp[n] = '\0';

	struct dw_facts *f = l->f;
	uint64_t h = str_hash(tmp);
	if (l->nslot == 0 || 2 * (f->nstrs + 1) > l->nslot)
		grow_slots(l);
	size_t j = (size_t)h & (l->nslot - 1);
	uint32_t idx;
	while (l->slot[j] != 0) {
		idx = l->slot[j] - 1;
		if (l->hash[idx] == h && strcmp(f->strs[idx], tmp) == 0)
			goto out;
		j = (j + 1) & (l->nslot - 1);
	}
	if (f->nstrs == l->capstrs) {
		l->capstrs = l->capstrs ? l->capstrs * 2 : 256;
		f->strs = xreallocarray(f->strs, l->capstrs, sizeof *f->strs);
		l->hash = xreallocarray(l->hash, l->capstrs, sizeof *l->hash);
	}
	idx = (uint32_t)f->nstrs++;
	f->strs[idx] = xstrdup(tmp);
	l->hash[idx] = h;
	l->slot[j] = idx + 1;
out:
	if (tmp != buf)
		free(tmp);
	return idx;
}

/* NULL stays DW_NO_STR. */
static uint32_t
intern(struct loader *l, const char *v, int lower)
{
	return v != NULL ? intern_n(l, v, strlen(v), lower) : DW_NO_STR;
}

static int
is_pass(const char *v)
{
	return v != NULL && strcmp(v, "pass") == 0;
}

static uint8_t
disposition(const char *v)
{
	if (v == NULL)
		return DW_DISP_OTHER;
	if (strcmp(v, "none") == 0)
		return DW_DISP_NONE;
	if (strcmp(v, "quarantine") == 0)
		return DW_DISP_QUARANTINE;
	if (strcmp(v, "reject") == 0)
		return DW_DISP_REJECT;
	if (strcmp(v, "pass") == 0)
		return DW_DISP_PASS;
	return DW_DISP_OTHER;
}

long
dw_facts_day(const struct dw_facts *f, const char *ymd)
{
	if (f == NULL || ymd == NULL)
		return -1;
	/* Consecutive days sort as their names do. */
	size_t lo = 0, hi = f->ndays;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->days[mid], ymd);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

uint32_t
dw_facts_str(const struct dw_facts *f, const char *s)
{
	if (f == NULL || s == NULL)
		return DW_NO_STR;
	size_t lo = 0, hi = f->nstrs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->strs[mid], s);
		if (c == 0)
			return (uint32_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return DW_NO_STR;
}

/* A new report: its days in the window, its policy facts. */
static void
start_report(struct loader *l, const struct dw_store_rec_row *row)
{
	struct dw_facts *f = l->f;
	l->report = row->report;
	dw_days_of(row->begin, row->end, &l->days);
	l->in_window = 0;
	for (size_t i = 0; i < l->days.n; i++) {
		l->day_idx[i] = dw_facts_day(f, l->days.day[i].ymd);
		if (l->day_idx[i] >= 0)
			l->in_window = 1;
	}
	if (!l->in_window)
		return; /* in the query's margins only: nothing to keep, not even strings */
	l->domain = intern(l, row->domain != NULL ? row->domain : "", 1);
	l->reporter = intern(l, row->org_name != NULL ? row->org_name : "", 0);

	struct dw_policy_fact pf = {
	    .domain = l->domain,
	    .reporter = l->reporter,
	    .p = intern(l, row->p, 0),
	    .sp = intern(l, row->sp, 0),
	    .np = intern(l, row->np, 0),
	    .adkim = intern(l, row->adkim, 0),
	    .aspf = intern(l, row->aspf, 0),
	    .testing = intern(l, row->testing, 0),
	    .pct = row->pct,
	    .received = row->received,
	    .report = row->report,
	};
	for (size_t i = 0; i < l->days.n; i++) {
		if (l->day_idx[i] < 0)
			continue;
		if (f->npol == l->cappol) {
			l->cappol = l->cappol ? l->cappol * 2 : 64;
			f->pol = xreallocarray(f->pol, l->cappol, sizeof *f->pol);
		}
		pf.day = (uint32_t)l->day_idx[i];
		f->pol[f->npol++] = pf;
	}
}

static int
on_row(void *ctx, const struct dw_store_rec_row *row)
{
	struct loader *l = ctx;
	struct dw_facts *f = l->f;
	/* The store hands a report's rows over together; should they ever
	 * come apart, the days are computed again and the duplicate policy
	 * facts removed when sorting. */
	if (row->report != l->report)
		start_report(l, row);
	if (!l->in_window || row->source_ip == NULL)
		return 0; /* outside, or a report without records: its policy only */

	uint64_t share[DW_DAYS_MAX];
	dw_days_apportion(&l->days, row->count, share);
	struct dw_fact x = {
	    .domain = l->domain,
	    .reporter = l->reporter,
	    .source = intern(l, row->source_ip, 1),
	    .header_from = intern(l, row->header_from, 1),
	    .reason = intern(l, row->reason, 0),
	    .disposition = disposition(row->disposition),
	    .dkim_pass = (uint8_t)is_pass(row->dkim),
	    .spf_pass = (uint8_t)is_pass(row->spf),
	    .received = row->received,
	    .report = row->report,
	};
	x.dmarc_pass = (uint8_t)(x.dkim_pass || x.spf_pass);

	/* As in aggregate.c: a day takes part when it got messages; a zero
	 * count shows on the first day only. */
	for (size_t i = 0; i < l->days.n; i++) {
		if (l->day_idx[i] < 0 || (share[i] == 0 && !(row->count == 0 && i == 0)))
			continue;
		if (f->n == l->capv) {
			l->capv = l->capv ? l->capv * 2 : 1024;
			f->v = xreallocarray(f->v, l->capv, sizeof *f->v);
		}
		x.day = (uint32_t)l->day_idx[i];
		x.count = share[i];
		f->v[f->n++] = x;
	}
	return 0;
}

/* ---- sorting and merging ---------------------------------------------- */

#define CMP(a, b)                                                                               \
	do {                                                                                    \
		if ((a) != (b))                                                                 \
			return (a) < (b) ? -1 : 1;                                              \
	} while (0)

/* Everything but the count. DW_NO_STR sorts after every string. */
static int
fact_cmp(const void *pa, const void *pb)
{
	const struct dw_fact *a = pa, *b = pb;
	CMP(a->day, b->day);
	CMP(a->domain, b->domain);
	CMP(a->reporter, b->reporter);
	CMP(a->source, b->source);
	CMP(a->report, b->report);
	CMP(a->header_from, b->header_from);
	CMP(a->reason, b->reason);
	CMP(a->disposition, b->disposition);
	CMP(a->dkim_pass, b->dkim_pass);
	CMP(a->spf_pass, b->spf_pass);
	CMP(a->received, b->received);
	return 0;
}

static int
pol_cmp(const void *pa, const void *pb)
{
	const struct dw_policy_fact *a = pa, *b = pb;
	CMP(a->day, b->day);
	CMP(a->domain, b->domain);
	CMP(a->reporter, b->reporter);
	CMP(a->report, b->report);
	return 0;
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(**(char **const *)a, **(char **const *)b);
}

static uint32_t
remap(const uint32_t *map, uint32_t v)
{
	return v == DW_NO_STR ? DW_NO_STR : map[v];
}

/* Sort the strings, renumber every reference, sort and merge the facts. */
static void
finish(struct dw_facts *f)
{
	if (f->nstrs > 0) {
		char ***ord = xreallocarray(NULL, f->nstrs, sizeof *ord);
		for (size_t i = 0; i < f->nstrs; i++)
			ord[i] = &f->strs[i];
		qsort(ord, f->nstrs, sizeof *ord, strp_cmp);
		uint32_t *map = xreallocarray(NULL, f->nstrs, sizeof *map);
		char **strs = xreallocarray(NULL, f->nstrs, sizeof *strs);
		for (size_t i = 0; i < f->nstrs; i++) {
			size_t old = (size_t)(ord[i] - f->strs);
			map[old] = (uint32_t)i;
			strs[i] = f->strs[old];
		}
		free(ord);
		free(f->strs);
		f->strs = strs;
		for (size_t i = 0; i < f->n; i++) {
			struct dw_fact *x = &f->v[i];
			x->domain = remap(map, x->domain);
			x->reporter = remap(map, x->reporter);
			x->source = remap(map, x->source);
			x->header_from = remap(map, x->header_from);
			x->reason = remap(map, x->reason);
		}
		for (size_t i = 0; i < f->npol; i++) {
			struct dw_policy_fact *p = &f->pol[i];
			p->domain = remap(map, p->domain);
			p->reporter = remap(map, p->reporter);
			p->p = remap(map, p->p);
			p->sp = remap(map, p->sp);
			p->np = remap(map, p->np);
			p->adkim = remap(map, p->adkim);
			p->aspf = remap(map, p->aspf);
			p->testing = remap(map, p->testing);
		}
		free(map);
	}

	if (f->n > 1) {
		qsort(f->v, f->n, sizeof *f->v, fact_cmp);
		size_t w = 0;
		for (size_t i = 1; i < f->n; i++) {
			if (fact_cmp(&f->v[w], &f->v[i]) == 0) {
				uint64_t c = f->v[i].count; /* sums of one report's counts: below 2^63 */
				f->v[w].count += c;
			} else {
				f->v[++w] = f->v[i];
			}
		}
		f->n = w + 1;
	}
	if (f->npol > 1) {
		qsort(f->pol, f->npol, sizeof *f->pol, pol_cmp);
		size_t w = 0;
		for (size_t i = 1; i < f->npol; i++)
			if (pol_cmp(&f->pol[w], &f->pol[i]) != 0)
				f->pol[++w] = f->pol[i];
		f->npol = w + 1;
	}
}

/* The days from..to with their starts, and the start of the day after. */
static int
make_days(struct dw_facts *f, const char *from, const char *to, char *err, size_t errlen)
{
	int64_t t, last;
	if (from == NULL || dw_day_parse(from, &t) != 0)
		return dw_err(err, errlen, DW_E_CONFIG, "facts: bad first day '%s': expected YYYY-MM-DD",
		              from != NULL ? from : "(none)");
	if (to == NULL || dw_day_parse(to, &last) != 0)
		return dw_err(err, errlen, DW_E_CONFIG, "facts: bad last day '%s': expected YYYY-MM-DD",
		              to != NULL ? to : "(none)");
	if (strcmp(from, to) > 0)
		return dw_err(err, errlen, DW_E_CONFIG, "facts: the first day %s is after the last day %s", from, to);

	size_t cap = 0;
	char ymd[11];
	memcpy(ymd, from, sizeof ymd);
	for (;;) {
		if (f->ndays + 1 >= cap) {
			cap = cap ? cap * 2 : 64;
			f->days = xreallocarray(f->days, cap, sizeof *f->days);
			f->day_start = xreallocarray(f->day_start, cap, sizeof *f->day_start);
		}
		memcpy(f->days[f->ndays], ymd, sizeof ymd);
		f->day_start[f->ndays] = t;
		f->ndays++;
		/* The next day: the one holding a point surely inside it. (A day
		 * a zone skipped, like Pacific/Apia's 2011-12-30, is not there.) */
		dw_day_of(t + NEXT_DAY_PROBE, ymd);
		if (dw_day_parse(ymd, &t) != 0)
			return dw_err(err, errlen, DW_E_SYS, "facts: cannot find the day after %s", f->days[f->ndays - 1]);
		if (strcmp(f->days[f->ndays - 1], to) >= 0)
			break;
		if (f->ndays >= FACTS_DAYS_MAX)
			return dw_err(err, errlen, DW_E_CONFIG,
			              "facts: %s..%s is more than %d days; choose a shorter period", from, to,
			              FACTS_DAYS_MAX);
	}
	f->day_start[f->ndays] = t;
	return DW_OK;
}

int
dw_facts_load(struct dw_store *s, const char *from, const char *to, struct dw_facts **out, char *err,
              size_t errlen)
{
	*out = NULL;
	struct dw_facts *f = xcalloc(1, sizeof *f);
	int rc = make_days(f, from, to, err, errlen);
	if (rc != DW_OK) {
		dw_facts_free(f);
		return rc;
	}

	struct loader l;
	memset(&l, 0, sizeof l);
	l.f = f;
	l.report = -1;
	struct dw_store_query q = {
	    .domain = NULL,
	    .from = f->day_start[0] - MARGIN_BEFORE,
	    .to = f->day_start[f->ndays] + MARGIN_AFTER,
	};
	rc = dw_store_foreach_records(s, &q, on_row, &l, err, errlen);
	free(l.slot);
	free(l.hash);
	if (rc != DW_OK) {
		dw_facts_free(f);
		return rc;
	}
	finish(f);
	*out = f;
	return DW_OK;
}

void
dw_facts_free(struct dw_facts *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nstrs; i++)
		free(f->strs[i]);
	free(f->strs);
	free(f->days);
	free(f->day_start);
	free(f->v);
	free(f->pol);
	free(f);
}
