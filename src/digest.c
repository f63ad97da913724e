/*
 * digest.c - the daily digest of one settled day. See dw/digest.h.
 *
 * Everything is computed from the facts that had arrived by `asof`:
 *
 *   figures      per domain, on the digest's day: messages, DMARC pass and
 *                fail, SPF and DKIM fail (policy_evaluated), quarantined,
 *                rejected; rates in tenths of a percent, rounded half up,
 *                never shown as 0.0 % when something is there nor as
 *                100.0 % when something is missing.
 *   changes      against the previous day and against the median of the
 *                trailing 14 days that have data for the domain (an even
 *                count takes the mean of the middle two, rounded half up).
 *                Pass-rate changes are the difference of the rates as
 *                shown, so the reader can check them.
 *   top sources  per domain and source IP, the messages failing DMARC.
 *                spf/dkim say "fail" when every message of the source that
 *                day failed it, "mixed" when some passed (a failing message
 *                always fails both: DMARC passes on either). header_from
 *                and reporter are those of most failing messages, with
 *                " +N" when there were N others.
 *   late data    facts received after `since` for days before the
 *                digest's day, per day: distinct reports and messages.
 *   CSV          one row per domain x source x reporter x result (the
 *                facts of the day summed), sorted by the columns' text.
 *
 * Domains are the configured ones in their order (each shown, also with no
 * data), else every domain with data in the 15 days, busiest first. All
 * memory hangs off a pool freed by dw_digest_free.
 */
#include "dw/digest.h"
#include "dw/util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BASELINE_DAYS 14
#define WINDOW (BASELINE_DAYS + 1)  /* the day and the days before it */
#define TOP_DEFAULT 10
#define FIELDS_MAX 10
#define FIELDS_PER_DOMAIN 3         /* with more than one domain */
#define SUMMARY_DOMAINS 10
#define SUMMARY_ALERTS 10
#define CELL_MAX 40                 /* characters of a text cell in the body */
#define LABEL_W 16
#define WRAP_AT 78
#define NONE UINT32_MAX

/* ---- storage -------------------------------------------------------- */

struct pool {
	void **p;
	size_t n, cap;
};

static void *
keep(struct pool *pl, void *p)
{
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 64;
		pl->p = xreallocarray(pl->p, pl->cap, sizeof *pl->p);
	}
	pl->p[pl->n++] = p;
	return p;
}

static char *
pstr(struct pool *pl, const char *s)
{
	return keep(pl, xstrdup(s));
}

struct buf {
	char *s;
	size_t n, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->n + n + 1 > cap)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void DW_PRINTF(2, 3)
buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len < sizeof small) {
		buf_add(b, small, (size_t)len);
		return;
	}
	char *big = xmalloc((size_t)len + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)len + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)len);
	free(big);
}

static void
buf_pad(struct buf *b, size_t n)
{
	while (n-- > 0)
		buf_add(b, " ", 1);
}

/* A finished buffer as a pool string (never NULL). */
static char *
buf_take(struct pool *pl, struct buf *b)
{
	if (b->s == NULL)
		buf_add(b, "", 0);
	char *s = keep(pl, b->s);
	memset(b, 0, sizeof *b);
	return s;
}

/* ---- text ------------------------------------------------------------ */

static size_t
u8len(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* A copy fit for one line of text: control characters become '?', and
 * with max > 0 more than max characters are cut to max - 3 plus "...". */
static char *
clean(struct pool *pl, const char *s, size_t max)
{
	struct buf b = {0};
	size_t chars = 0, total = u8len(s);
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c & 0xc0) != 0x80) {
			if (max > 0 && total > max && chars == max - 3) {
				buf_puts(&b, "...");
				break;
			}
			chars++;
		}
		buf_add(&b, c < 0x20 || c == 0x7f ? "?" : p, 1);
	}
	return buf_take(pl, &b);
}

static void
pad_right(struct buf *b, const char *s, size_t w)
{
	size_t n = u8len(s);
	buf_puts(b, s);
	buf_pad(b, w > n ? w - n : 0);
}

static void
pad_left(struct buf *b, const char *s, size_t w)
{
	size_t n = u8len(s);
	buf_pad(b, w > n ? w - n : 0);
	buf_puts(b, s);
}

/* ---- numbers --------------------------------------------------------- */

/* 1234567 -> "1,234,567" */
static const char *
fmt_count(uint64_t v, char out[32])
{
	char digits[24];
	int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			out[k++] = ',';
		out[k++] = digits[i];
	}
	out[k] = '\0';
	return out;
}

/* part / whole in tenths of a percent, rounded half up; whole > 0. */
static uint64_t
ratio_tenths(uint64_t part, uint64_t whole)
{
	if (part <= (UINT64_MAX - whole / 2) / 1000)
		return (part * 1000 + whole / 2) / whole;
	return (uint64_t)((long double)part * 1000.0L / (long double)whole + 0.5L);
}

/* A share as shown: tenths, never 0 when part > 0 nor 1000 when part <
 * whole; -1 when whole is 0. */
static long
rate_tenths(uint64_t part, uint64_t whole)
{
	if (whole == 0)
		return -1;
	uint64_t t = ratio_tenths(part, whole);
	if (t == 0 && part > 0)
		t = 1;
	if (t >= 1000 && part < whole)
		t = 999;
	return (long)t;
}

/* "97.5 %" or "n/a" */
static const char *
fmt_rate(long t, char out[32])
{
	if (t < 0)
		snprintf(out, 32, "n/a");
	else
		snprintf(out, 32, "%ld.%ld %%", t / 10, t % 10);
	return out;
}

/* cur - base: "+1,234", "-45", "0" */
static const char *
fmt_diff(uint64_t cur, uint64_t base, char out[32])
{
	char n[32];
	if (cur == base)
		snprintf(out, 32, "0");
	else
		snprintf(out, 32, "%c%s", cur > base ? '+' : '-', fmt_count(cur > base ? cur - base : base - cur, n));
	return out;
}

/* The change of cur against base (> 0): "+9.1 %", "-100.0 %", "0.0 %" */
static const char *
fmt_change(uint64_t cur, uint64_t base, char out[32])
{
	uint64_t t = ratio_tenths(cur > base ? cur - base : base - cur, base);
	if (t == 0)
		snprintf(out, 32, "0.0 %%");
	else
		snprintf(out, 32, "%c%" PRIu64 ".%" PRIu64 " %%", cur > base ? '+' : '-', t / 10, t % 10);
	return out;
}

/* A difference in tenths of a point: "+0.3", "-12.0", "0.0" */
static const char *
fmt_points(long d, char out[32])
{
	if (d == 0)
		snprintf(out, 32, "0.0");
	else
		snprintf(out, 32, "%c%ld.%ld", d > 0 ? '+' : '-', labs(d) / 10, labs(d) % 10);
	return out;
}

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* qsort, also for an empty (possibly NULL) array. */
static void
sort(void *v, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(v, n, size, cmp);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Median of v[0..n) (n > 0; sorts v); an even n rounds the mean half up. */
static uint64_t
median(uint64_t *v, size_t n)
{
	sort(v, n, sizeof *v, cmp_u64);
	if (n % 2 == 1)
		return v[n / 2];
	uint64_t a = v[n / 2 - 1], b = v[n / 2];
	return a / 2 + b / 2 + (a % 2 + b % 2 + 1) / 2;
}

static const char *
disp_name(unsigned d)
{
	switch (d) {
	case DW_DISP_NONE: return "none";
	case DW_DISP_QUARANTINE: return "quarantine";
	case DW_DISP_REJECT: return "reject";
	case DW_DISP_PASS: return "pass";
	default: return "other";
	}
}

static const char *
sev_name(int s)
{
	switch (s) {
	case DW_SEV_CRITICAL: return "critical";
	case DW_SEV_WARNING: return "warning";
	default: return "info";
	}
}

/* ---- the digest's working state ------------------------------------- */

struct dom {
	const char *name;           /* lower case; pool or facts (copied at the end) */
	uint32_t sidx;              /* its string when found from the data, else NONE */
	uint64_t msgs[WINDOW];      /* [0] the digest's day, [k] k days before */
	uint64_t pass[WINDOW];
	int loaded[WINDOW];         /* the day is in the facts */
	uint64_t spf_fail, dkim_fail, quar, rej;
	long rate;                  /* DMARC pass on the day, tenths; -1 none */
	size_t top0, ntop;          /* its range in the per-domain sorted tops */
	size_t rep0, nrep;          /* its range in the reporters */
};

enum { C_DOMAIN, C_SOURCE, C_REPORTER, C_HFROM, C_DISP, C_DKIM, C_SPF, C_DMARC, C_REASON, NCOL };

/* One CSV row: the day's facts of one key summed. */
struct row {
	uint32_t dom;
	const char *col[NCOL];
	uint8_t dkim, spf, dmarc;
	uint64_t count;
};

struct top {
	uint32_t dom;
	const char *domain, *source;
	uint64_t fail, total, spf_fail, dkim_fail;
	const char *hfrom, *reporter;   /* pool: dominant value and " +N" */
};

struct rep {
	uint32_t dom;
	const char *name;
	uint64_t count;
};

struct late {
	uint32_t day;
	int64_t report;
	uint64_t count;
};

struct sc {
	const char *s;
	uint64_t count;
};

static int
cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	for (int i = 0; i < NCOL; i++) {
		int c = strcmp(x->col[i], y->col[i]);
		if (c != 0)
			return c;
	}
	return 0;
}

static int
cmp_top_dom(const void *a, const void *b)
{
	const struct top *x = a, *y = b;
	if (x->dom != y->dom)
		return x->dom < y->dom ? -1 : 1;
	if (x->fail != y->fail)
		return x->fail > y->fail ? -1 : 1;
	return strcmp(x->source, y->source);
}

static int
cmp_top_all(const void *a, const void *b)
{
	const struct top *x = a, *y = b;
	if (x->fail != y->fail)
		return x->fail > y->fail ? -1 : 1;
	int c = strcmp(x->domain, y->domain);
	return c != 0 ? c : strcmp(x->source, y->source);
}

static int
cmp_rep(const void *a, const void *b)
{
	const struct rep *x = a, *y = b;
	if (x->dom != y->dom)
		return x->dom < y->dom ? -1 : 1;
	int c = strcasecmp(x->name, y->name);
	return c != 0 ? c : strcmp(x->name, y->name);
}

static int
cmp_late(const void *a, const void *b)
{
	const struct late *x = a, *y = b;
	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return x->report < y->report ? -1 : x->report > y->report;
}

static int
cmp_sc(const void *a, const void *b)
{
	return strcmp(((const struct sc *)a)->s, ((const struct sc *)b)->s);
}

/* Sorting domains found in the data: busiest on the day first, then by name. */
static int
cmp_dom(const void *a, const void *b)
{
	const struct dom *x = a, *y = b;
	if (x->msgs[0] != y->msgs[0])
		return x->msgs[0] > y->msgs[0] ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The value of most messages (ties: the smallest), with " +N" for the
 * N other values; "-" when it is empty. Sorts v. */
static const char *
dominant(struct pool *pl, struct sc *v, size_t n)
{
	sort(v, n, sizeof *v, cmp_sc);
	const char *best = "";
	uint64_t bestc = 0;
	size_t distinct = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		uint64_t c = 0;
		for (; j < n && strcmp(v[j].s, v[i].s) == 0; j++)
			c += v[j].count;
		if (distinct == 0 || c > bestc) {
			best = v[i].s;
			bestc = c;
		}
		distinct++;
		i = j;
	}
	const char *shown = best[0] != '\0' ? best : "-";
	if (distinct <= 1)
		return clean(pl, shown, 0);
	char *s = xasprintf("%s +%zu", shown, distinct - 1);
	const char *r = clean(pl, s, 0);
	free(s);
	return r;
}

struct work {
	const struct dw_digest_input *in;
	const struct dw_facts *f;
	struct pool *pl;
	const char *ymd;
	size_t top;                 /* sources shown per domain and in the table */
	struct dom *doms;
	size_t ndoms;
	uint32_t *slot;             /* string index -> domain, NONE */
	struct row *rows;
	size_t nrows;
	struct top *tops;           /* per domain, sorted by cmp_top_dom */
	struct top *alltops;        /* all, sorted by cmp_top_all */
	size_t ntops;
	struct rep *reps;
	size_t nreps;
	struct buf late;            /* the late-data lines, without indentation, '\n' after each */
	size_t nlate;
	uint64_t messages, pass;
	int warning;
};

static int
visible(const struct work *w, const struct dw_fact *x)
{
	return x->received <= w->in->asof;
}

static int
check_facts(const struct dw_facts *f, char *err, size_t errlen)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		if (x->day >= f->ndays || x->domain >= f->nstrs || x->reporter >= f->nstrs || x->source >= f->nstrs ||
		    (x->header_from != DW_NO_STR && x->header_from >= f->nstrs) ||
		    (x->reason != DW_NO_STR && x->reason >= f->nstrs))
			return dw_err(err, errlen, DW_E_INPUT,
			              "digest: fact %zu refers to a day or string the facts do not have (%zu days, %zu "
			              "strings); the facts are inconsistent: load them again",
			              i, f->ndays, f->nstrs);
	}
	return DW_OK;
}

/* Domains: the configured ones, else those with data in the window. */
static void
find_domains(struct work *w)
{
	const struct dw_facts *f = w->f;
	const struct dw_digest_cfg *cfg = w->in->cfg;
	size_t lo = w->in->day >= BASELINE_DAYS ? w->in->day - BASELINE_DAYS : 0;
	w->slot = keep(w->pl, xmalloc((f->nstrs ? f->nstrs : 1) * sizeof *w->slot));
	for (size_t i = 0; i < f->nstrs; i++)
		w->slot[i] = NONE;
	if (cfg != NULL && cfg->ndomains > 0) {
		w->doms = keep(w->pl, xcalloc(cfg->ndomains, sizeof *w->doms));
		for (size_t i = 0; i < cfg->ndomains; i++) {
			char *name = pstr(w->pl, cfg->domains[i]);
			for (char *p = name; *p != '\0'; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			int dup = 0;
			for (size_t k = 0; k < w->ndoms; k++)
				dup |= strcmp(w->doms[k].name, name) == 0;
			if (dup)
				continue;
			w->doms[w->ndoms].name = name;
			w->doms[w->ndoms].sidx = NONE;
			for (size_t s = 0; s < f->nstrs; s++)
				if (strcasecmp(f->strs[s], name) == 0)
					w->slot[s] = (uint32_t)w->ndoms;
			w->ndoms++;
		}
		return;
	}
	size_t cap = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		if (!visible(w, x) || x->day < lo || x->day > w->in->day || w->slot[x->domain] != NONE)
			continue;
		if (w->ndoms == cap) {
			cap = cap ? cap * 2 : 8;
			w->doms = xreallocarray(w->doms, cap, sizeof *w->doms);
		}
		memset(&w->doms[w->ndoms], 0, sizeof *w->doms);
		w->doms[w->ndoms].name = f->strs[x->domain];
		w->doms[w->ndoms].sidx = x->domain;
		w->slot[x->domain] = (uint32_t)w->ndoms++;
	}
	if (w->doms != NULL)
		keep(w->pl, w->doms);
}

/* Messages and passes per domain and day over the window; the day's figures. */
static void
count(struct work *w)
{
	const struct dw_facts *f = w->f;
	size_t day = w->in->day;
	for (size_t k = 0; k < w->ndoms; k++)
		for (size_t d = 0; d < WINDOW; d++)
			w->doms[k].loaded[d] = d <= day;
	for (size_t i = 0; i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		uint32_t s = w->slot[x->domain];
		if (s == NONE || !visible(w, x) || x->day > day || day - x->day >= WINDOW)
			continue;
		struct dom *d = &w->doms[s];
		size_t off = day - x->day;
		d->msgs[off] += x->count;
		if (x->dmarc_pass)
			d->pass[off] += x->count;
		if (off != 0)
			continue;
		if (!x->spf_pass)
			d->spf_fail += x->count;
		if (!x->dkim_pass)
			d->dkim_fail += x->count;
		if (x->disposition == DW_DISP_QUARANTINE)
			d->quar += x->count;
		else if (x->disposition == DW_DISP_REJECT)
			d->rej += x->count;
	}
	if (w->in->cfg == NULL || w->in->cfg->ndomains == 0) {
		sort(w->doms, w->ndoms, sizeof *w->doms, cmp_dom);
		for (size_t k = 0; k < w->ndoms; k++)
			w->slot[w->doms[k].sidx] = (uint32_t)k;
	}
	for (size_t k = 0; k < w->ndoms; k++) {
		struct dom *d = &w->doms[k];
		d->rate = rate_tenths(d->pass[0], d->msgs[0]);
		w->messages += d->msgs[0];
		w->pass += d->pass[0];
		/* pass < 90 %, exactly */
		if (d->msgs[0] > 0 && (long double)d->pass[0] * 10 < (long double)d->msgs[0] * 9)
			w->warning = 1;
		d->name = pstr(w->pl, d->name);
	}
}

/* The day's CSV rows: facts of the same key summed, sorted. */
static void
build_rows(struct work *w)
{
	const struct dw_facts *f = w->f;
	size_t cap = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		uint32_t s = w->slot[x->domain];
		if (s == NONE || !visible(w, x) || x->day != w->in->day)
			continue;
		if (w->nrows == cap) {
			cap = cap ? cap * 2 : 64;
			w->rows = xreallocarray(w->rows, cap, sizeof *w->rows);
		}
		struct row *r = &w->rows[w->nrows++];
		r->dom = s;
		r->col[C_DOMAIN] = w->doms[s].name;
		r->col[C_SOURCE] = f->strs[x->source];
		r->col[C_REPORTER] = f->strs[x->reporter];
		r->col[C_HFROM] = x->header_from != DW_NO_STR ? f->strs[x->header_from] : "";
		r->col[C_DISP] = disp_name(x->disposition);
		r->col[C_DKIM] = x->dkim_pass ? "pass" : "fail";
		r->col[C_SPF] = x->spf_pass ? "pass" : "fail";
		r->col[C_DMARC] = x->dmarc_pass ? "pass" : "fail";
		r->col[C_REASON] = x->reason != DW_NO_STR ? f->strs[x->reason] : "";
		r->dkim = x->dkim_pass != 0;
		r->spf = x->spf_pass != 0;
		r->dmarc = x->dmarc_pass != 0;
		r->count = x->count;
	}
	if (w->rows != NULL)
		keep(w->pl, w->rows);
	sort(w->rows, w->nrows, sizeof *w->rows, cmp_row);
	size_t k = 0;
	for (size_t i = 0; i < w->nrows; i++) {
		if (k > 0 && cmp_row(&w->rows[k - 1], &w->rows[i]) == 0)
			w->rows[k - 1].count += w->rows[i].count;
		else
			w->rows[k++] = w->rows[i];
	}
	w->nrows = k;
}

/* Top failing sources (rows are grouped by domain and source already) and
 * the reporters of each domain. */
static void
build_tops(struct work *w)
{
	w->tops = keep(w->pl, xcalloc(w->nrows ? w->nrows : 1, sizeof *w->tops));
	struct sc *tmp = xcalloc(w->nrows ? w->nrows : 1, sizeof *tmp);
	for (size_t i = 0; i < w->nrows;) {
		size_t j = i;
		struct top t = {.dom = w->rows[i].dom, .domain = w->rows[i].col[C_DOMAIN],
		                .source = w->rows[i].col[C_SOURCE]};
		for (; j < w->nrows && w->rows[j].dom == t.dom && strcmp(w->rows[j].col[C_SOURCE], t.source) == 0; j++) {
			const struct row *r = &w->rows[j];
			t.total += r->count;
			t.fail += r->dmarc ? 0 : r->count;
			t.spf_fail += r->spf ? 0 : r->count;
			t.dkim_fail += r->dkim ? 0 : r->count;
		}
		if (t.fail > 0) {
			size_t n = 0;
			for (size_t k = i; k < j; k++)
				if (!w->rows[k].dmarc)
					tmp[n++] = (struct sc){w->rows[k].col[C_HFROM], w->rows[k].count};
			t.hfrom = dominant(w->pl, tmp, n);
			n = 0;
			for (size_t k = i; k < j; k++)
				if (!w->rows[k].dmarc)
					tmp[n++] = (struct sc){w->rows[k].col[C_REPORTER], w->rows[k].count};
			t.reporter = dominant(w->pl, tmp, n);
			w->tops[w->ntops++] = t;
		}
		i = j;
	}
	free(tmp);
	w->alltops = keep(w->pl, xcalloc(w->ntops ? w->ntops : 1, sizeof *w->alltops));
	memcpy(w->alltops, w->tops, w->ntops * sizeof *w->tops);
	sort(w->tops, w->ntops, sizeof *w->tops, cmp_top_dom);
	sort(w->alltops, w->ntops, sizeof *w->alltops, cmp_top_all);
	for (size_t i = w->ntops; i-- > 0;) {
		w->doms[w->tops[i].dom].top0 = i;
		w->doms[w->tops[i].dom].ntop++;
	}

	w->reps = keep(w->pl, xcalloc(w->nrows ? w->nrows : 1, sizeof *w->reps));
	for (size_t i = 0; i < w->nrows; i++)
		w->reps[i] = (struct rep){w->rows[i].dom, w->rows[i].col[C_REPORTER], w->rows[i].count};
	sort(w->reps, w->nrows, sizeof *w->reps, cmp_rep);
	size_t k = 0;
	for (size_t i = 0; i < w->nrows; i++) {
		if (k > 0 && cmp_rep(&w->reps[k - 1], &w->reps[i]) == 0)
			w->reps[k - 1].count += w->reps[i].count;
		else
			w->reps[k++] = w->reps[i];
	}
	w->nreps = k;
	for (size_t i = w->nreps; i-- > 0;) {
		w->doms[w->reps[i].dom].rep0 = i;
		w->doms[w->reps[i].dom].nrep++;
	}
}

/* Late data: facts received after `since` for days before the digest's. */
static void
build_late(struct work *w)
{
	const struct dw_facts *f = w->f;
	const struct dw_digest_input *in = w->in;
	if (in->since < 0)
		return;
	int all = in->cfg == NULL || in->cfg->ndomains == 0;
	struct late *v = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		if (!visible(w, x) || x->received <= in->since || x->day >= in->day ||
		    (!all && w->slot[x->domain] == NONE))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[n++] = (struct late){x->day, x->report, x->count};
	}
	sort(v, n, sizeof *v, cmp_late);
	for (size_t i = 0; i < n;) {
		size_t j = i, reports = 0;
		uint64_t msgs = 0;
		for (; j < n && v[j].day == v[i].day; j++) {
			msgs += v[j].count;
			reports += j == i || v[j].report != v[j - 1].report;
		}
		char c[32];
		buf_printf(&w->late, "%zu %s for %s arrived late: %s %s\n", reports, reports == 1 ? "report" : "reports",
		           f->days[v[i].day], fmt_count(msgs, c), plural(msgs, "message", "messages"));
		w->nlate++;
		i = j;
	}
	free(v);
}

/* ---- rendering ------------------------------------------------------ */

/* Median messages and pass rate of the days before with data. Returns the
 * number of such days. */
static size_t
baseline(const struct dom *d, uint64_t *msgs, long *rate)
{
	uint64_t m[BASELINE_DAYS], r[BASELINE_DAYS];
	size_t n = 0;
	for (size_t off = 1; off < WINDOW; off++)
		if (d->loaded[off] && d->msgs[off] > 0) {
			m[n] = d->msgs[off];
			r[n] = (uint64_t)rate_tenths(d->pass[off], d->msgs[off]);
			n++;
		}
	if (n > 0) {
		*msgs = median(m, n);
		*rate = (long)median(r, n);
	}
	return n;
}

static void
label(struct buf *b, const char *l)
{
	buf_puts(b, "  ");
	pad_right(b, l, LABEL_W);
}

/* "messages +100 (+9.1 %), pass rate +0.3 points" */
static void
change_line(struct buf *b, const struct dom *d, uint64_t msgs, long rate)
{
	char c1[32], c2[32], c3[32];
	label(b, "Change");
	buf_printf(b, "messages %s (%s)", fmt_diff(d->msgs[0], msgs, c1), fmt_change(d->msgs[0], msgs, c2));
	if (d->rate >= 0)
		buf_printf(b, ", pass rate %s points", fmt_points(d->rate - rate, c3));
	buf_puts(b, "\n");
}

static void
render_sources(struct work *w, struct buf *b, const struct dom *d)
{
	if (d->ntop == 0) {
		label(b, "Failing sources");
		buf_puts(b, "none\n");
		return;
	}
	size_t shown = d->ntop < w->top ? d->ntop : w->top;
	static const char *const head[6] = {"source_ip", "messages", "spf", "dkim", "header_from", "reporter"};
	const char **cell = xcalloc(shown * 6, sizeof *cell);
	size_t width[6];
	for (int c = 0; c < 6; c++)
		width[c] = strlen(head[c]);
	for (size_t i = 0; i < shown; i++) {
		const struct top *t = &w->tops[d->top0 + i];
		char n[32];
		const char **r = cell + i * 6;
		r[0] = clean(w->pl, t->source, CELL_MAX);
		r[1] = pstr(w->pl, fmt_count(t->fail, n));
		r[2] = t->spf_fail == t->total ? "fail" : "mixed";
		r[3] = t->dkim_fail == t->total ? "fail" : "mixed";
		r[4] = clean(w->pl, t->hfrom, CELL_MAX);
		r[5] = clean(w->pl, t->reporter, CELL_MAX);
		for (int c = 0; c < 6; c++)
			if (u8len(r[c]) > width[c])
				width[c] = u8len(r[c]);
	}
	buf_puts(b, "  Top failing sources\n");
	for (size_t i = 0; i <= shown; i++) {
		const char *const *r = i == 0 ? head : cell + (i - 1) * 6;
		buf_puts(b, "    ");
		for (int c = 0; c < 6; c++) {
			if (c == 5) {
				buf_puts(b, r[c]);
				break;
			}
			if (c == 1 && i > 0)
				pad_left(b, r[c], width[c]);
			else
				pad_right(b, r[c], width[c]);
			buf_puts(b, "  ");
		}
		buf_puts(b, "\n");
	}
	free(cell);
	if (shown < d->ntop) {
		uint64_t rest = 0;
		for (size_t i = shown; i < d->ntop; i++)
			rest += w->tops[d->top0 + i].fail;
		char n[32];
		buf_printf(b, "    ... and %zu more failing %s (%s %s)\n", d->ntop - shown,
		           d->ntop - shown == 1 ? "source" : "sources", fmt_count(rest, n), plural(rest, "message", "messages"));
	}
}

static void
render_reporters(struct work *w, struct buf *b, const struct dom *d)
{
	label(b, "Reporters");
	size_t col = 2 + LABEL_W;
	for (size_t i = 0; i < d->nrep; i++) {
		const struct rep *r = &w->reps[d->rep0 + i];
		char n[32];
		char *item = xasprintf("%s (%s)%s", clean(w->pl, r->name, CELL_MAX), fmt_count(r->count, n),
		                       i + 1 < d->nrep ? ";" : "");
		size_t len = u8len(item);
		if (i > 0 && col + 1 + len > WRAP_AT) {
			buf_puts(b, "\n");
			buf_pad(b, 2 + LABEL_W);
			col = 2 + LABEL_W;
		} else if (i > 0) {
			buf_puts(b, " ");
			col++;
		}
		buf_puts(b, item);
		col += len;
		free(item);
	}
	buf_puts(b, "\n");
}

static void
render_domain(struct work *w, struct buf *b, const struct dom *d)
{
	const struct dw_facts *f = w->f;
	size_t day = w->in->day;
	char c1[32], c2[32];
	buf_printf(b, "\n%s\n", clean(w->pl, d->name, 0));
	if (d->msgs[0] == 0) {
		label(b, "Messages");
		buf_printf(b, "0 (no reports for %s)\n", w->ymd);
	} else {
		const char *names[7] = {"Messages", "DMARC pass", "DMARC fail", "SPF fail", "DKIM fail", "Quarantined",
		                        "Rejected"};
		uint64_t v[7] = {d->msgs[0], d->pass[0], d->msgs[0] - d->pass[0], d->spf_fail, d->dkim_fail, d->quar, d->rej};
		size_t width = 0;
		for (int i = 0; i < 7; i++)
			if (strlen(fmt_count(v[i], c1)) > width)
				width = strlen(c1);
		for (int i = 0; i < 7; i++) {
			label(b, names[i]);
			pad_left(b, fmt_count(v[i], c1), width);
			if (i > 0) {
				buf_puts(b, "  ");
				pad_left(b, fmt_rate(rate_tenths(v[i], d->msgs[0]), c2), 7);
			}
			buf_puts(b, "\n");
		}
	}

	label(b, "Previous day");
	if (day == 0) {
		buf_puts(b, "not loaded\n");
	} else if (d->msgs[1] == 0) {
		buf_printf(b, "no reports (%s)\n", f->days[day - 1]);
	} else {
		long prate = rate_tenths(d->pass[1], d->msgs[1]);
		buf_printf(b, "%s %s, %s pass (%s)\n", fmt_count(d->msgs[1], c1), plural(d->msgs[1], "message", "messages"),
		           fmt_rate(prate, c2), f->days[day - 1]);
		change_line(b, d, d->msgs[1], prate);
	}

	uint64_t mmsgs = 0;
	long mrate = 0;
	size_t n = baseline(d, &mmsgs, &mrate);
	label(b, "14-day median");
	if (n == 0) {
		buf_puts(b, "no earlier days with data\n");
	} else {
		buf_printf(b, "%s %s, %s pass (%zu %s with data)\n", fmt_count(mmsgs, c1), plural(mmsgs, "message", "messages"),
		           fmt_rate(mrate, c2), n, n == 1 ? "day" : "days");
		change_line(b, d, mmsgs, mrate);
	}
	if (d->msgs[0] == 0)
		return;
	render_reporters(w, b, d);
	render_sources(w, b, d);
}

static void
render_alerts(struct work *w, struct buf *b)
{
	const struct dw_digest_input *in = w->in;
	if (in->nalerts == 0) {
		buf_puts(b, "\nOpen alerts: none\n");
		return;
	}
	buf_printf(b, "\nOpen alerts (%zu)\n", in->nalerts);
	size_t wr = 0, wg = 0;
	const char **s = xcalloc(in->nalerts * 3, sizeof *s);
	for (size_t i = 0; i < in->nalerts; i++) {
		const struct dw_digest_alert *a = &in->alerts[i];
		s[i * 3] = clean(w->pl, a->rule != NULL ? a->rule : "", CELL_MAX);
		s[i * 3 + 1] = clean(w->pl, a->group != NULL ? a->group : "", 2 * CELL_MAX);
		s[i * 3 + 2] = clean(w->pl, a->since_day != NULL ? a->since_day : "?", CELL_MAX);
		if (u8len(s[i * 3]) > wr)
			wr = u8len(s[i * 3]);
		if (u8len(s[i * 3 + 1]) > wg)
			wg = u8len(s[i * 3 + 1]);
	}
	for (size_t i = 0; i < in->nalerts; i++) {
		buf_puts(b, "  ");
		pad_right(b, sev_name(in->alerts[i].severity), 10);
		pad_right(b, s[i * 3], wr + 2);
		pad_right(b, s[i * 3 + 1], wg + 2);
		buf_printf(b, "since %s\n", s[i * 3 + 2]);
	}
	free(s);
}

static char *
render_body(struct work *w)
{
	struct buf b = {0};
	char c1[32], c2[32], c3[32];
	buf_printf(&b, "DMARC digest for %s\n", w->ymd);
	struct tm tm;
	time_t t = (time_t)w->in->asof;
	if (w->in->asof >= 0 && w->in->asof < INT64_MAX && gmtime_r(&t, &tm) != NULL) {
		char when[64];
		strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
		buf_printf(&b, "Reports received by %s.\n", when);
	}
	if (w->messages == 0)
		buf_printf(&b, "No reports for %s.\n", w->ymd);
	else
		buf_printf(&b, "All domains: %s %s, %s DMARC pass, %s DMARC fail.\n", fmt_count(w->messages, c1),
		           plural(w->messages, "message", "messages"), fmt_rate(rate_tenths(w->pass, w->messages), c2),
		           fmt_count(w->messages - w->pass, c3));
	for (size_t k = 0; k < w->ndoms; k++)
		render_domain(w, &b, &w->doms[k]);
	if (w->nlate > 0) {
		buf_puts(&b, "\nLate data\n");
		for (const char *p = w->late.s; *p != '\0';) {
			const char *nl = strchr(p, '\n');
			buf_puts(&b, "  ");
			buf_add(&b, p, (size_t)(nl - p) + 1);
			p = nl + 1;
		}
	}
	render_alerts(w, &b);
	if (w->ntops > 0)
		buf_puts(&b, "\nFailing sources: messages that failed DMARC. spf/dkim \"mixed\": some of\n"
		             "the source's messages passed it that day.\n");
	if (w->nrows > 0)
		buf_printf(&b, "Details: dmarc-%s.csv (a row per domain, source, reporter, result).\n", w->ymd);
	return buf_take(w->pl, &b);
}

static char *
render_summary(struct work *w)
{
	struct buf b = {0};
	char c1[32], c2[32], c3[32], c4[32];
	if (w->messages == 0)
		buf_printf(&b, "*DMARC digest for %s*: no reports\n", w->ymd);
	else
		buf_printf(&b, "*DMARC digest for %s*: %s %s, %s pass\n", w->ymd, fmt_count(w->messages, c1),
		           plural(w->messages, "message", "messages"), fmt_rate(rate_tenths(w->pass, w->messages), c2));
	for (size_t k = 0; k < w->ndoms && k < SUMMARY_DOMAINS; k++) {
		const struct dom *d = &w->doms[k];
		buf_printf(&b, "- *%s*: ", clean(w->pl, d->name, 0));
		if (d->msgs[0] == 0) {
			buf_puts(&b, "no reports\n");
			continue;
		}
		buf_printf(&b, "%s %s, %s pass", fmt_count(d->msgs[0], c1), plural(d->msgs[0], "message", "messages"),
		           fmt_rate(d->rate, c2));
		if (w->in->day > 0 && d->msgs[1] > 0)
			buf_printf(&b, " (%s points on the previous day)",
			           fmt_points(d->rate - rate_tenths(d->pass[1], d->msgs[1]), c3));
		buf_printf(&b, ", %s DMARC fail, %s quarantined, %s rejected\n", fmt_count(d->msgs[0] - d->pass[0], c1),
		           fmt_count(d->quar, c3), fmt_count(d->rej, c4));
	}
	if (w->ndoms > SUMMARY_DOMAINS)
		buf_printf(&b, "- ... and %zu more domains\n", w->ndoms - SUMMARY_DOMAINS);
	if (w->nlate > 0) {
		buf_puts(&b, "*Late data*\n");
		for (const char *p = w->late.s; *p != '\0';) {
			const char *nl = strchr(p, '\n');
			buf_puts(&b, "- ");
			buf_add(&b, p, (size_t)(nl - p) + 1);
			p = nl + 1;
		}
	}
	const struct dw_digest_input *in = w->in;
	if (in->nalerts > 0) {
		buf_printf(&b, "*Open alerts* (%zu)\n", in->nalerts);
		for (size_t i = 0; i < in->nalerts && i < SUMMARY_ALERTS; i++) {
			const struct dw_digest_alert *a = &in->alerts[i];
			buf_printf(&b, "- %s `%s` %s since %s\n", sev_name(a->severity),
			           clean(w->pl, a->rule != NULL ? a->rule : "", CELL_MAX),
			           clean(w->pl, a->group != NULL ? a->group : "", 2 * CELL_MAX),
			           clean(w->pl, a->since_day != NULL ? a->since_day : "?", CELL_MAX));
		}
		if (in->nalerts > SUMMARY_ALERTS)
			buf_printf(&b, "- ... and %zu more\n", in->nalerts - SUMMARY_ALERTS);
	}
	return buf_take(w->pl, &b);
}

static void
add_field(struct work *w, struct dw_field *fl, size_t *n, const char *dom, const char *what, const char *value)
{
	char *name = xasprintf("%s %s", dom, what);
	fl[*n].name = clean(w->pl, name, 0);
	fl[*n].value = pstr(w->pl, value);
	free(name);
	(*n)++;
}

static void
build_fields(struct work *w, struct dw_notification *n)
{
	struct dw_field *fl = keep(w->pl, xcalloc(FIELDS_MAX, sizeof *fl));
	size_t nf = 0, shown;
	char c[32];
	if (w->ndoms * FIELDS_PER_DOMAIN <= FIELDS_MAX)
		shown = w->ndoms;
	else
		shown = (FIELDS_MAX - 1) / FIELDS_PER_DOMAIN;
	for (size_t k = 0; k < shown; k++) {
		const struct dom *d = &w->doms[k];
		add_field(w, fl, &nf, d->name, "messages", fmt_count(d->msgs[0], c));
		add_field(w, fl, &nf, d->name, "DMARC pass", fmt_rate(d->rate, c));
		add_field(w, fl, &nf, d->name, "DMARC fail", fmt_count(d->msgs[0] - d->pass[0], c));
		if (w->ndoms == 1) {
			add_field(w, fl, &nf, d->name, "SPF fail", fmt_count(d->spf_fail, c));
			add_field(w, fl, &nf, d->name, "DKIM fail", fmt_count(d->dkim_fail, c));
			add_field(w, fl, &nf, d->name, "quarantined", fmt_count(d->quar, c));
			add_field(w, fl, &nf, d->name, "rejected", fmt_count(d->rej, c));
		}
	}
	if (shown < w->ndoms) {
		uint64_t m = 0, p = 0;
		for (size_t k = shown; k < w->ndoms; k++) {
			m += w->doms[k].msgs[0];
			p += w->doms[k].pass[0];
		}
		char c2[32];
		char *v = xasprintf("%zu domains: %s %s, %s pass", w->ndoms - shown, fmt_count(m, c),
		                    plural(m, "message", "messages"), fmt_rate(rate_tenths(p, m), c2));
		fl[nf].name = "other domains";
		fl[nf].value = keep(w->pl, v);
		nf++;
	}
	n->fields = fl;
	n->nfields = nf;
}

static void
build_table(struct work *w, struct dw_notification *n)
{
	static const char *const cols[7] = {"domain", "source_ip", "messages", "spf", "dkim", "header_from", "reporter"};
	size_t rows = w->ntops < w->top ? w->ntops : w->top;
	if (rows == 0)
		return;
	const char **cells = keep(w->pl, xcalloc(rows * 7, sizeof *cells));
	for (size_t i = 0; i < rows; i++) {
		const struct top *t = &w->alltops[i];
		char c[32];
		const char **r = cells + i * 7;
		r[0] = clean(w->pl, t->domain, 0);
		r[1] = clean(w->pl, t->source, 0);
		r[2] = pstr(w->pl, fmt_count(t->fail, c));
		r[3] = t->spf_fail == t->total ? "fail" : "mixed";
		r[4] = t->dkim_fail == t->total ? "fail" : "mixed";
		r[5] = t->hfrom;
		r[6] = t->reporter;
	}
	struct dw_table *tb = keep(w->pl, xcalloc(1, sizeof *tb));
	tb->ncols = 7;
	tb->columns = cols;
	tb->nrows = rows;
	tb->cells = cells;
	n->table = tb;
}

/* RFC 4180: quote a field holding a comma, a quote or a line break. */
static void
csv_field(struct buf *b, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		buf_puts(b, s);
		return;
	}
	buf_puts(b, "\"");
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"')
			buf_puts(b, "\"\"");
		else
			buf_add(b, p, 1);
	}
	buf_puts(b, "\"");
}

static void
build_csv(struct work *w, struct dw_digest *d)
{
	struct buf b = {0};
	buf_puts(&b, "day,domain,source_ip,reporter,header_from,disposition,dkim,spf,dmarc,reason,messages\r\n");
	for (size_t i = 0; i < w->nrows; i++) {
		const struct row *r = &w->rows[i];
		csv_field(&b, w->ymd);
		for (int c = 0; c < NCOL; c++) {
			buf_puts(&b, ",");
			csv_field(&b, r->col[c]);
		}
		buf_printf(&b, ",%" PRIu64 "\r\n", r->count);
	}
	d->csv_len = b.n;
	d->csv = buf_take(w->pl, &b);
}

int
dw_digest_build(const struct dw_digest_input *in, struct dw_digest **out, char *err, size_t errlen)
{
	*out = NULL;
	if (in == NULL || in->f == NULL)
		return dw_err(err, errlen, DW_E_CONFIG, "digest: no facts given");
	const struct dw_facts *f = in->f;
	if (in->day >= f->ndays)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "digest: day index %zu is outside the loaded facts (%zu days); load the facts for the "
		              "digest's day and the 14 days before it",
		              in->day, f->ndays);
	int rc = check_facts(f, err, errlen);
	if (rc != DW_OK)
		return rc;

	struct dw_digest *d = xcalloc(1, sizeof *d);
	struct pool *pl = xcalloc(1, sizeof *pl);
	d->priv = pl;
	struct work w = {.in = in, .f = f, .pl = pl};
	w.ymd = pstr(pl, f->days[in->day]);
	w.top = in->cfg != NULL && in->cfg->top > 0 ? in->cfg->top : TOP_DEFAULT;

	find_domains(&w);
	count(&w);
	build_rows(&w);
	build_tops(&w);
	build_late(&w);
	for (size_t i = 0; i < in->nalerts; i++)
		if (in->alerts[i].severity >= DW_SEV_WARNING)
			w.warning = 1;

	struct dw_notification *n = &d->n;
	char c1[32], c2[32];
	n->struct_size = sizeof *n;
	n->kind = DW_KIND_DIGEST;
	n->severity = w.warning ? DW_SEV_WARNING : DW_SEV_INFO;
	n->attempt = 1;
	if (in->asof >= 0 && in->asof < INT64_MAX)
		n->time = (time_t)in->asof;
	else if (f->day_start != NULL)
		n->time = (time_t)f->day_start[in->day + 1];
	n->idempotency_key = keep(pl, xasprintf("digest:%s", w.ymd));
	n->domain = w.ndoms == 1 ? w.doms[0].name : NULL;
	if (w.messages == 0)
		n->title = keep(pl, xasprintf("DMARC digest for %s: no reports", w.ymd));
	else
		n->title = keep(pl, xasprintf("DMARC digest for %s: %s %s, %s pass", w.ymd, fmt_count(w.messages, c1),
		                              plural(w.messages, "message", "messages"),
		                              fmt_rate(rate_tenths(w.pass, w.messages), c2)));
	d->text = render_body(&w);
	n->body = d->text;
	n->summary = render_summary(&w);
	build_fields(&w, n);
	build_table(&w, n);
	build_csv(&w, d);
	struct dw_attachment *a = keep(pl, xcalloc(1, sizeof *a));
	a->filename = keep(pl, xasprintf("dmarc-%s.csv", w.ymd));
	a->media_type = "text/csv";
	a->data = (const unsigned char *)d->csv;
	a->size = d->csv_len;
	n->attachment = a;
	d->messages = w.messages;
	d->ndomains = w.ndoms;
	free(w.late.s);
	*out = d;
	return DW_OK;
}

void
dw_digest_free(struct dw_digest *d)
{
	if (d == NULL)
		return;
	struct pool *pl = d->priv;
	if (pl != NULL) {
		for (size_t i = 0; i < pl->n; i++)
			free(pl->p[i]);
		free(pl->p);
		free(pl);
	}
	free(d);
}
