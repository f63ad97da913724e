/*
 * test_facts.c - daily facts from the store (src/facts.c and the record
 * query dw_store_foreach_records in src/store.c), over hand-built reports in
 * America/New_York: a one-day report, a three-day report split over a
 * 23-hour DST day (counts summing exactly), reports for days outside the
 * window, a superseded revision, override reasons, a report without
 * records, records the store keeps apart that are one fact, received
 * times, policy facts, interning, dw_facts_day and dw_facts_str, a 25-hour
 * day in November, bad windows; then the received time of imported files
 * (src/importer.c, src/ingest.c, src/mime.c): a mail's top Received:, else
 * its Date:, else the file's mtime, and bare XML keeps its mtime.
 *
 * Every expected number is worked out by hand in the comments (day starts
 * from the tz database's rules: EST is UTC-5, EDT UTC-4, switching on
 * 2026-03-08 02:00 and 2026-11-01 02:00 local).
 */
#include "dw/days.h"
#include "dw/facts.h"
#include "dw/importer.h"
#include "dw/ingest.h"
#include "dw/limits.h"
#include "dw/store.h"
#include "tap.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Starts of New York days, seconds UTC. */
#define MAR05 INT64_C(1772686800) /* 05:00Z (EST) */
#define MAR06 INT64_C(1772773200)
#define MAR07 INT64_C(1772859600)
#define MAR08 INT64_C(1772946000) /* 23 hours: 02:00 EST -> 03:00 EDT */
#define MAR09 INT64_C(1773028800) /* 04:00Z (EDT) */
#define MAR10 INT64_C(1773115200)
#define OCT31 INT64_C(1793419200)
#define NOV01 INT64_C(1793505600) /* 25 hours: 02:00 EDT -> 01:00 EST */
#define NOV02 INT64_C(1793595600) /* 05:00Z (EST) */
#define NOV03 INT64_C(1793682000)
#define MAR07_UTC INT64_C(1772841600) /* 2026-03-07T00:00:00Z */

static char tmpdir[] = "/tmp/dw_facts_XXXXXX";
static char dbpath[300];

/* ---- writing reports through the store API ---- */

struct rec_spec {
	const char *ip;
	uint64_t count;
	const char *disp, *dkim, *spf, *hfrom, *efrom;
	const char *reason1, *reason2; /* override reason types, may be NULL */
};

struct rep_spec {
	const char *org, *id, *domain;
	int64_t begin, end;
	const char *p, *sp, *np, *adkim, *aspf, *testing;
	int pct;
	int64_t received; /* -1: unknown */
};

static int
put(struct dw_store *s, const struct rep_spec *rs, const struct rec_spec *rv, size_t n)
{
	struct dw_report_meta m;
	memset(&m, 0, sizeof m);
	m.schema = 1;
	m.org_name = (char *)(uintptr_t)rs->org;
	m.report_id = (char *)(uintptr_t)rs->id;
	m.begin = rs->begin;
	m.end = rs->end;
	m.has_range = 1;
	m.policy.domain = (char *)(uintptr_t)rs->domain;
	m.policy.p = (char *)(uintptr_t)rs->p;
	m.policy.sp = (char *)(uintptr_t)rs->sp;
	m.policy.np = (char *)(uintptr_t)rs->np;
	m.policy.adkim = (char *)(uintptr_t)rs->adkim;
	m.policy.aspf = (char *)(uintptr_t)rs->aspf;
	m.policy.testing = (char *)(uintptr_t)rs->testing;
	m.policy.pct = rs->pct;
	struct dw_provenance prov = {
	    .kind = "file", .source = "test", .uidvalidity = -1, .uid = -1, .received = rs->received};
	char err[512] = "";
	struct dw_store_report *h = NULL;
	enum dw_store_outcome out = 0;
	int rc = dw_store_begin(s, err, sizeof err);
	if (rc == DW_OK)
		rc = dw_store_report_begin(s, &prov, &h, err, sizeof err);
	for (size_t i = 0; rc == DW_OK && i < n; i++) {
		struct dw_record r;
		struct dw_reason reasons[2];
		memset(&r, 0, sizeof r);
		snprintf(r.source_ip, sizeof r.source_ip, "%s", rv[i].ip);
		r.count = rv[i].count;
		r.disposition = (char *)(uintptr_t)rv[i].disp;
		r.dkim = (char *)(uintptr_t)rv[i].dkim;
		r.spf = (char *)(uintptr_t)rv[i].spf;
		r.header_from = (char *)(uintptr_t)rv[i].hfrom;
		r.envelope_from = (char *)(uintptr_t)rv[i].efrom;
		if (rv[i].reason1 != NULL) {
			reasons[0].type = (char *)(uintptr_t)rv[i].reason1;
			reasons[0].comment = "first";
			reasons[1].type = (char *)(uintptr_t)rv[i].reason2;
			reasons[1].comment = NULL;
			r.reasons = reasons;
			r.nreasons = rv[i].reason2 != NULL ? 2 : 1;
		}
		if ((rc = dw_store_report_record(h, &r, err, sizeof err)) != DW_OK)
			dw_store_report_abort(h);
	}
	if (rc == DW_OK)
		rc = dw_store_report_end(h, &m, NULL, NULL, &out, err, sizeof err);
	if (rc == DW_OK)
		rc = dw_store_commit(s, err, sizeof err);
	if (rc != DW_OK) {
		diag("storing %s: %s", rs->id, err);
		dw_store_rollback(s);
		return -1;
	}
	return (int)out;
}

static int64_t
sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -999;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		diag("sql_int(%s): %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
zone(const char *z)
{
	char err[256];
	if (dw_tz_set(z, err, sizeof err) != DW_OK) {
		printf("Bail out! %s\n", err);
		exit(1);
	}
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- checking facts ---- */

struct want_fact {
	const char *day, *domain, *reporter, *source, *header_from, *reason;
	int disp, dkim, spf;
	uint64_t count;
	int64_t received; /* 0: not checked here */
};

static const char *
S(const struct dw_facts *f, uint32_t i)
{
	return i == DW_NO_STR ? NULL : i < f->nstrs ? f->strs[i] : "(bad index)";
}

static void
check_facts(const char *what, const struct dw_facts *f, const struct want_fact *w, size_t n)
{
	is_int(f->n, n, "%s: %zu facts", what, n);
	for (size_t i = 0; i < n && i < f->n; i++) {
		const struct dw_fact *x = &f->v[i];
		const char *hf = S(f, x->header_from), *rs = S(f, x->reason);
		int same = x->day < f->ndays && strcmp(f->days[x->day], w[i].day) == 0 &&
		           strcmp(S(f, x->domain), w[i].domain) == 0 && strcmp(S(f, x->reporter), w[i].reporter) == 0 &&
		           strcmp(S(f, x->source), w[i].source) == 0 &&
		           ((hf == NULL && w[i].header_from == NULL) ||
		            (hf != NULL && w[i].header_from != NULL && strcmp(hf, w[i].header_from) == 0)) &&
		           ((rs == NULL && w[i].reason == NULL) ||
		            (rs != NULL && w[i].reason != NULL && strcmp(rs, w[i].reason) == 0)) &&
		           x->disposition == w[i].disp && x->dkim_pass == w[i].dkim && x->spf_pass == w[i].spf &&
		           x->dmarc_pass == (w[i].dkim || w[i].spf) && x->count == w[i].count &&
		           (w[i].received == 0 || x->received == w[i].received);
		ok(same, "%s: fact %zu %s %s %s %s = %llu", what, i, w[i].day, w[i].domain, w[i].reporter, w[i].source,
		   (unsigned long long)w[i].count);
		if (!same)
			diag("got %s %s %s %s hf=%s reason=%s disp=%d dkim=%d spf=%d dmarc=%d count=%llu received=%lld",
			     x->day < f->ndays ? f->days[x->day] : "?", S(f, x->domain), S(f, x->reporter), S(f, x->source),
			     hf ? hf : "-", rs ? rs : "-", x->disposition, x->dkim_pass, x->spf_pass, x->dmarc_pass,
			     (unsigned long long)x->count, (long long)x->received);
	}
}

struct want_pol {
	const char *day, *domain, *reporter, *p, *sp, *np, *adkim, *aspf, *testing;
	int pct;
	int64_t received;
};

static int
str_is(const struct dw_facts *f, uint32_t i, const char *want)
{
	const char *got = S(f, i);
	return (got == NULL && want == NULL) || (got != NULL && want != NULL && strcmp(got, want) == 0);
}

static void
check_pol(const char *what, const struct dw_facts *f, const struct want_pol *w, size_t n)
{
	is_int(f->npol, n, "%s: %zu policy facts", what, n);
	for (size_t i = 0; i < n && i < f->npol; i++) {
		const struct dw_policy_fact *x = &f->pol[i];
		int same = x->day < f->ndays && strcmp(f->days[x->day], w[i].day) == 0 && str_is(f, x->domain, w[i].domain) &&
		           str_is(f, x->reporter, w[i].reporter) && str_is(f, x->p, w[i].p) && str_is(f, x->sp, w[i].sp) &&
		           str_is(f, x->np, w[i].np) && str_is(f, x->adkim, w[i].adkim) && str_is(f, x->aspf, w[i].aspf) &&
		           str_is(f, x->testing, w[i].testing) && x->pct == w[i].pct &&
		           (w[i].received == 0 || x->received == w[i].received);
		ok(same, "%s: policy %zu %s %s %s p=%s", what, i, w[i].day, w[i].domain, w[i].reporter, w[i].p);
		if (!same)
			diag("got %s %s %s p=%s sp=%s np=%s adkim=%s aspf=%s t=%s pct=%d received=%lld",
			     x->day < f->ndays ? f->days[x->day] : "?", S(f, x->domain), S(f, x->reporter),
			     S(f, x->p) ? S(f, x->p) : "-", S(f, x->sp) ? S(f, x->sp) : "-", S(f, x->np) ? S(f, x->np) : "-",
			     S(f, x->adkim) ? S(f, x->adkim) : "-", S(f, x->aspf) ? S(f, x->aspf) : "-",
			     S(f, x->testing) ? S(f, x->testing) : "-", x->pct, (long long)x->received);
	}
}

static struct dw_facts *
load(struct dw_store *s, const char *from, const char *to)
{
	struct dw_facts *f = NULL;
	char err[512] = "";
	int rc = dw_facts_load(s, from, to, &f, err, sizeof err);
	is_int(rc, DW_OK, "load %s..%s", from, to);
	if (rc != DW_OK)
		diag("%s", err);
	return f;
}

/* ---- the March history ---- */

#define R_A INT64_C(1772960000)   /* Google's mail, 2026-03-08 */
#define R_B INT64_C(1773200000)   /* Yahoo's, 2026-03-11 (late) */
#define R_D1 INT64_C(1773120000)  /* Microsoft's first version */
#define R_D2 INT64_C(1773300000)  /* ... and its revision */
#define R_F INT64_C(1772950000)

enum { NONE = DW_DISP_NONE, QUAR = DW_DISP_QUARANTINE, REJ = DW_DISP_REJECT, DPASS = DW_DISP_PASS,
       OTHER = DW_DISP_OTHER };

static int64_t imported_lo, imported_hi;

static void
build_march(struct dw_store *s)
{
	/* A: Google, 2026-03-07T00:00:00Z..23:59:59Z = 19:00 EST on the 6th
	 * to 18:59:59 on the 7th: 5 h on the 6th, 19 h on the 7th, so all on
	 * the 7th (36-hour rule). The domain in mixed case; two records that
	 * differ only in envelope_from (two rows in the store, one fact). */
	static const struct rep_spec a = {"Google", "g-1", "Example.COM", MAR07_UTC, MAR07_UTC + 86399,
	                                  "none", "quarantine", "reject", "r", "s", "n", 100, R_A};
	static const struct rec_spec av[] = {
	    {"192.0.2.1", 100, "none", "pass", "pass", "Example.com", "a.example", NULL, NULL},
	    {"192.0.2.1", 30, "none", "pass", "pass", "example.com", "b.example", NULL, NULL},
	    {"192.0.2.1", 5, "none", "fail", "pass", "example.com", NULL, NULL, NULL},
	    {"198.51.100.7", 7, "reject", "fail", "fail", "example.com", NULL, NULL, NULL},
	    {"203.0.113.9", 20, "none", "fail", "fail", "example.com", NULL, "mailing_list", NULL},
	    {"203.0.113.10", 3, "quarantine", "fail", "fail", "example.com", NULL, "forwarded", "local_policy"},
	};
	is_int(put(s, &a, av, N(av)), DW_STORED_NEW, "A stored");

	/* B: Yahoo, NY 03-07 00:00 .. 03-09 23:59:59: 86400 + 82800 + 86400 =
	 * 255600 s, split. 1000 -> 338.03, 323.94, 338.03: floors 338, 323,
	 * 338 (999), the unit left to the largest remainder (the 8th): 338,
	 * 324, 338. 2 -> 0.676, 0.648, 0.676: both units to the equal largest
	 * remainders, the 7th and the 9th: 1, 0, 1. 0 -> the first day. */
	static const struct rep_spec b = {"Yahoo", "y-1", "example.com", MAR07, MAR10 - 1,
	                                  "quarantine", NULL, NULL, "r", "r", NULL, -1, R_B};
	static const struct rec_spec bv[] = {
	    {"192.0.2.1", 1000, "none", "pass", "pass", "example.com", NULL, NULL, NULL},
	    {"198.51.100.7", 2, "reject", "fail", "fail", "example.com", NULL, NULL, NULL},
	    {"192.0.2.99", 0, "none", "fail", "fail", "example.com", NULL, NULL, NULL},
	};
	is_int(put(s, &b, bv, N(bv)), DW_STORED_NEW, "B stored");

	/* C1: NY 03-10 01:00 EDT .. 03-11 00:59:59: 23 h on the 10th, outside.
	 * C2: exactly NY 03-06 and C3 03-05: outside, before. */
	static const struct rep_spec c1 = {"Google", "g-2", "example.com", MAR10 + 3600, MAR10 + 3600 + 86399,
	                                   "none", NULL, NULL, NULL, NULL, NULL, -1, R_A};
	static const struct rep_spec c2 = {"Google", "g-0", "example.com", MAR06, MAR07 - 1,
	                                   "none", NULL, NULL, NULL, NULL, NULL, -1, R_A};
	static const struct rep_spec c3 = {"Google", "g-00", "example.com", MAR05, MAR06 - 1,
	                                   "none", NULL, NULL, NULL, NULL, NULL, -1, R_A};
	static const struct rec_spec cv[] = {{"192.0.2.1", 999, "none", "pass", "pass", "example.com", NULL, NULL, NULL}};
	is_int(put(s, &c1, cv, N(cv)), DW_STORED_NEW, "C1 stored");
	is_int(put(s, &c2, cv, N(cv)), DW_STORED_NEW, "C2 stored");
	is_int(put(s, &c3, cv, N(cv)), DW_STORED_NEW, "C3 stored");

	/* D: Microsoft's 00:00 -> 00:00 range, NY 03-09; revised: only the
	 * second version (60 messages, p=reject, received R_D2) counts. */
	static const struct rep_spec d1 = {"Microsoft", "ms-1", "example.org", MAR09, MAR10,
	                                   "none", NULL, NULL, NULL, NULL, NULL, -1, R_D1};
	static const struct rep_spec d2 = {"Microsoft", "ms-1", "example.org", MAR09, MAR10,
	                                   "reject", NULL, NULL, NULL, NULL, NULL, -1, R_D2};
	static const struct rec_spec dv1[] = {{"10.0.0.1", 50, "none", "pass", "fail", "example.org", NULL, NULL, NULL}};
	static const struct rec_spec dv2[] = {{"10.0.0.1", 60, "none", "pass", "fail", "example.org", NULL, NULL, NULL}};
	is_int(put(s, &d1, dv1, N(dv1)), DW_STORED_NEW, "D first version stored");
	is_int(put(s, &d2, dv2, N(dv2)), DW_STORED_REVISION, "D revision stored");

	/* E: exactly the 23-hour NY 03-08, received unknown (imported_at is
	 * used); disposition "pass" (bis) and an unknown one. */
	static const struct rep_spec e = {"Fastmail", "f-1", "example.com", MAR08, MAR09 - 1,
	                                  "none", NULL, NULL, NULL, NULL, "y", 50, -1};
	static const struct rec_spec ev[] = {
	    {"2001:db8::1", 11, "pass", "pass", "pass", "example.com", NULL, NULL, NULL},
	    {"2001:db8::1", 4, "unknownx", "fail", "temperror", "example.com", NULL, NULL, NULL},
	};
	imported_lo = (int64_t)time(NULL);
	is_int(put(s, &e, ev, N(ev)), DW_STORED_NEW, "E stored");
	imported_hi = (int64_t)time(NULL);

	/* F: no records at all, NY 03-07: a policy fact, no facts. */
	static const struct rep_spec fr = {"Empty Org", "e-1", "example.net", MAR07, MAR08 - 1,
	                                   "reject", NULL, NULL, NULL, NULL, NULL, -1, R_F};
	is_int(put(s, &fr, NULL, 0), DW_STORED_NEW, "F stored");
}

static void
test_march(struct dw_store *s)
{
	struct dw_facts *f = load(s, "2026-03-07", "2026-03-09");
	if (f == NULL)
		return;

	is_int(f->ndays, 3, "march: 3 days");
	is_str(f->days[0], "2026-03-07", "march: day 0");
	is_str(f->days[1], "2026-03-08", "march: day 1");
	is_str(f->days[2], "2026-03-09", "march: day 2");
	is_int(f->day_start[0], MAR07, "march: 03-07 starts 05:00Z");
	is_int(f->day_start[1], MAR08, "march: 03-08 starts 05:00Z");
	is_int(f->day_start[2], MAR09, "march: 03-09 starts 04:00Z (after the change)");
	is_int(f->day_start[3], MAR10, "march: the day after starts 04:00Z");
	is_int(f->day_start[2] - f->day_start[1], 23 * 3600, "march: 03-08 has 23 hours");
	is_int(dw_facts_day(f, "2026-03-07"), 0, "dw_facts_day first");
	is_int(dw_facts_day(f, "2026-03-09"), 2, "dw_facts_day last");
	is_int(dw_facts_day(f, "2026-03-06"), -1, "dw_facts_day before");
	is_int(dw_facts_day(f, "2026-03-10"), -1, "dw_facts_day after");
	is_int(dw_facts_day(f, "tomorrow"), -1, "dw_facts_day garbage");
	is_int(dw_facts_day(f, NULL), -1, "dw_facts_day NULL");

	const struct want_fact w[] = {
	    /* 03-07: Google's A (130 = 100 + 30 merged; the dkim fail row
	     * sorts first), then Yahoo's first third. */
	    {"2026-03-07", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 0, 1, 5, R_A},
	    {"2026-03-07", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 130, R_A},
	    {"2026-03-07", "example.com", "Google", "198.51.100.7", "example.com", NULL, REJ, 0, 0, 7, R_A},
	    {"2026-03-07", "example.com", "Google", "203.0.113.10", "example.com", "forwarded", QUAR, 0, 0, 3, R_A},
	    {"2026-03-07", "example.com", "Google", "203.0.113.9", "example.com", "mailing_list", NONE, 0, 0, 20, R_A},
	    {"2026-03-07", "example.com", "Yahoo", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 338, R_B},
	    {"2026-03-07", "example.com", "Yahoo", "192.0.2.99", "example.com", NULL, NONE, 0, 0, 0, R_B},
	    {"2026-03-07", "example.com", "Yahoo", "198.51.100.7", "example.com", NULL, REJ, 0, 0, 1, R_B},
	    /* 03-08: Fastmail (received checked below), Yahoo's 324; its
	     * 198.51.100.7 got no share that day. */
	    {"2026-03-08", "example.com", "Fastmail", "2001:db8::1", "example.com", NULL, DPASS, 1, 1, 11, 0},
	    {"2026-03-08", "example.com", "Fastmail", "2001:db8::1", "example.com", NULL, OTHER, 0, 0, 4, 0},
	    {"2026-03-08", "example.com", "Yahoo", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 324, R_B},
	    /* 03-09 */
	    {"2026-03-09", "example.com", "Yahoo", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 338, R_B},
	    {"2026-03-09", "example.com", "Yahoo", "198.51.100.7", "example.com", NULL, REJ, 0, 0, 1, R_B},
	    {"2026-03-09", "example.org", "Microsoft", "10.0.0.1", "example.org", NULL, NONE, 1, 0, 60, R_D2},
	};
	check_facts("march", f, w, N(w));

	/* Yahoo's split sums back exactly. */
	uint64_t y1 = 0, y2 = 0;
	uint32_t yahoo = dw_facts_str(f, "Yahoo"), ip1 = dw_facts_str(f, "192.0.2.1"),
	         ip7 = dw_facts_str(f, "198.51.100.7");
	for (size_t i = 0; i < f->n; i++) {
		if (f->v[i].reporter == yahoo && f->v[i].source == ip1)
			y1 += f->v[i].count;
		if (f->v[i].reporter == yahoo && f->v[i].source == ip7)
			y2 += f->v[i].count;
	}
	is_int(y1, 1000, "march: Yahoo's 1000 split over three days sums to 1000");
	is_int(y2, 2, "march: Yahoo's 2 split sums to 2");

	/* Fastmail's received is its import time. */
	for (size_t i = 8; i < 10 && i < f->n; i++)
		ok(f->v[i].received >= imported_lo && f->v[i].received <= imported_hi,
		   "march: unknown received is imported_at (%lld in [%lld, %lld])", (long long)f->v[i].received,
		   (long long)imported_lo, (long long)imported_hi);

	/* Report ids: facts of one report share it; the revision's is current. */
	int64_t ms = sql_int(dbpath, "SELECT id FROM reports WHERE report_id = 'ms-1' AND superseded_by IS NULL");
	int64_t yid = sql_int(dbpath, "SELECT id FROM reports WHERE report_id = 'y-1'");
	if (f->n == N(w)) {
		is_int(f->v[13].report, ms, "march: Microsoft's fact is the revision's row");
		ok(f->v[5].report == yid && f->v[11].report == yid && f->v[12].report == yid,
		   "march: Yahoo's facts carry its row id on every day");
		ok(f->v[0].report != f->v[5].report, "march: Google's and Yahoo's reports differ");
	}

	const struct want_pol wp[] = {
	    {"2026-03-07", "example.com", "Google", "none", "quarantine", "reject", "r", "s", "n", 100, R_A},
	    {"2026-03-07", "example.com", "Yahoo", "quarantine", NULL, NULL, "r", "r", NULL, -1, R_B},
	    {"2026-03-07", "example.net", "Empty Org", "reject", NULL, NULL, NULL, NULL, NULL, -1, R_F},
	    {"2026-03-08", "example.com", "Fastmail", "none", NULL, NULL, NULL, NULL, "y", 50, 0},
	    {"2026-03-08", "example.com", "Yahoo", "quarantine", NULL, NULL, "r", "r", NULL, -1, R_B},
	    {"2026-03-09", "example.com", "Yahoo", "quarantine", NULL, NULL, "r", "r", NULL, -1, R_B},
	    {"2026-03-09", "example.org", "Microsoft", "reject", NULL, NULL, NULL, NULL, NULL, -1, R_D2},
	};
	check_pol("march", f, wp, N(wp));

	/* Interning: sorted, unique, found by dw_facts_str, lower-cased. */
	int sorted = 1;
	for (size_t i = 1; i < f->nstrs; i++)
		if (strcmp(f->strs[i - 1], f->strs[i]) >= 0)
			sorted = 0;
	ok(sorted, "interned strings are sorted and unique (%zu)", f->nstrs);
	int found = 1;
	for (size_t i = 0; i < f->nstrs; i++)
		if (dw_facts_str(f, f->strs[i]) != (uint32_t)i)
			found = 0;
	ok(found, "dw_facts_str finds every interned string at its index");
	uint32_t ex = dw_facts_str(f, "example.com");
	ok(ex != DW_NO_STR, "example.com is interned");
	is_int(dw_facts_str(f, "Example.COM"), DW_NO_STR, "the domain's mixed case is gone");
	is_int(dw_facts_str(f, "Example.com"), DW_NO_STR, "header_from's mixed case is gone");
	is_int(dw_facts_str(f, "local_policy"), DW_NO_STR, "only the first reason is kept");
	is_int(dw_facts_str(f, "a.example"), DW_NO_STR, "envelope_from is not a fact");
	is_int(dw_facts_str(f, "g-1"), DW_NO_STR, "report ids are not interned");
	is_int(dw_facts_str(f, NULL), DW_NO_STR, "dw_facts_str(NULL)");
	ok(dw_facts_str(f, "forwarded") != DW_NO_STR && dw_facts_str(f, "mailing_list") != DW_NO_STR,
	   "reasons are interned");
	int same_dom = 1;
	for (size_t i = 0; i < f->n && i < 13; i++)
		if (f->v[i].domain != ex)
			same_dom = 0;
	ok(same_dom, "facts of example.com share one index");
	/* Index order is string order: "Google" < "Yahoo". */
	ok(dw_facts_str(f, "Google") < dw_facts_str(f, "Yahoo"), "interned indexes compare like the strings");
	dw_facts_free(f);

	/* One day only: the 23-hour one. */
	f = load(s, "2026-03-08", "2026-03-08");
	if (f != NULL) {
		is_int(f->ndays, 1, "one day: 1 day");
		is_int(f->day_start[1] - f->day_start[0], 23 * 3600, "one day: 23 hours");
		const struct want_fact w1[] = {
		    {"2026-03-08", "example.com", "Fastmail", "2001:db8::1", "example.com", NULL, DPASS, 1, 1, 11, 0},
		    {"2026-03-08", "example.com", "Fastmail", "2001:db8::1", "example.com", NULL, OTHER, 0, 0, 4, 0},
		    {"2026-03-08", "example.com", "Yahoo", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 324, R_B},
		};
		check_facts("one day", f, w1, N(w1));
		is_int(f->npol, 2, "one day: 2 policy facts (Fastmail, Yahoo)");
		is_int(dw_facts_str(f, "Google"), DW_NO_STR, "one day: Google's strings are not loaded");
		dw_facts_free(f);
	}

	/* The days just outside: 03-06 (C2) and 03-10 (C1), 999 each. */
	f = load(s, "2026-03-06", "2026-03-06");
	if (f != NULL) {
		const struct want_fact w6[] = {
		    {"2026-03-06", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 999, R_A}};
		check_facts("03-06", f, w6, N(w6));
		dw_facts_free(f);
	}
	f = load(s, "2026-03-10", "2026-03-12");
	if (f != NULL) {
		const struct want_fact w10[] = {
		    {"2026-03-10", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 1, 999, R_A}};
		check_facts("03-10..12", f, w10, N(w10));
		is_int(f->npol, 1, "03-10..12: one policy fact");
		dw_facts_free(f);
	}
	/* Nothing at all. */
	f = load(s, "2025-01-01", "2025-01-31");
	if (f != NULL) {
		is_int(f->n + f->npol, 0, "january 2025: no facts");
		is_int(f->ndays, 31, "january 2025: 31 days");
		is_int(f->nstrs, 0, "january 2025: no strings");
		dw_facts_free(f);
	}
}

/* ---- the 25-hour day ---- */

static void
test_november(struct dw_store *s)
{
	/* NY 11-01 00:00 EDT .. 11-03 00:00 EST (whole minute: exclusive):
	 * 90000 + 86400 = 176400 s, split. 100 -> 51.02, 48.98: 51 + 48, the
	 * unit to the 2nd: 51, 49. 7 -> 3.571, 3.429: 3 + 3, the unit to the
	 * 1st: 4, 3. */
	static const struct rep_spec n = {"Google", "g-nov", "example.com", NOV01, NOV03,
	                                  "none", NULL, NULL, NULL, NULL, NULL, -1, NOV03 + 7200};
	static const struct rec_spec nv[] = {
	    {"192.0.2.1", 100, "none", "pass", "fail", "example.com", NULL, NULL, NULL},
	    {"192.0.2.2", 7, "none", "fail", "pass", NULL, NULL, NULL, NULL},
	};
	is_int(put(s, &n, nv, N(nv)), DW_STORED_NEW, "november report stored");

	struct dw_facts *f = load(s, "2026-10-31", "2026-11-02");
	if (f == NULL)
		return;
	is_int(f->ndays, 3, "november: 3 days");
	is_int(f->day_start[0], OCT31, "november: 10-31 starts 04:00Z");
	is_int(f->day_start[1], NOV01, "november: 11-01 starts 04:00Z");
	is_int(f->day_start[2], NOV02, "november: 11-02 starts 05:00Z");
	is_int(f->day_start[3], NOV03, "november: 11-03 starts 05:00Z");
	is_int(f->day_start[2] - f->day_start[1], 25 * 3600, "november: 11-01 has 25 hours");
	const struct want_fact w[] = {
	    {"2026-11-01", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 0, 51, NOV03 + 7200},
	    {"2026-11-01", "example.com", "Google", "192.0.2.2", NULL, NULL, NONE, 0, 1, 4, NOV03 + 7200},
	    {"2026-11-02", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 0, 49, NOV03 + 7200},
	    {"2026-11-02", "example.com", "Google", "192.0.2.2", NULL, NULL, NONE, 0, 1, 3, NOV03 + 7200},
	};
	check_facts("november", f, w, N(w));
	is_int(f->npol, 2, "november: a policy fact on each of the two days");
	dw_facts_free(f);

	/* Only the second day of the split: the first part is left out. */
	f = load(s, "2026-11-02", "2026-11-05");
	if (f != NULL) {
		const struct want_fact w2[] = {
		    {"2026-11-02", "example.com", "Google", "192.0.2.1", "example.com", NULL, NONE, 1, 0, 49, 0},
		    {"2026-11-02", "example.com", "Google", "192.0.2.2", NULL, NULL, NONE, 0, 1, 3, 0},
		};
		check_facts("november, second part", f, w2, N(w2));
		is_int(f->npol, 1, "november, second part: one policy fact");
		is_int(f->ndays, 4, "november, second part: 4 days");
		dw_facts_free(f);
	}
}

static void
test_errors(struct dw_store *s)
{
	struct dw_facts *f = (struct dw_facts *)&f;
	char err[512] = "";
	is_int(dw_facts_load(s, "2026-3-7", "2026-03-09", &f, err, sizeof err), DW_E_CONFIG, "bad first day refused");
	ok(f == NULL, "bad first day: out is NULL");
	ok(strstr(err, "2026-3-7") != NULL && strstr(err, "YYYY-MM-DD") != NULL, "bad first day: message (%s)", err);
	is_int(dw_facts_load(s, "2026-03-07", "2026-02-30", &f, err, sizeof err), DW_E_CONFIG, "30 February refused");
	is_int(dw_facts_load(s, "2026-03-09", "2026-03-07", &f, err, sizeof err), DW_E_CONFIG, "from after to refused");
	ok(strstr(err, "after") != NULL, "from after to: message (%s)", err);
	is_int(dw_facts_load(s, "1900-01-01", "2026-01-01", &f, err, sizeof err), DW_E_CONFIG,
	       "more than a century refused");
	ok(strstr(err, "shorter") != NULL, "too long: message (%s)", err);
	dw_facts_free(NULL);
	ok(1, "dw_facts_free(NULL)");
}

/* ---- received times of imported files ---- */

static const char xml_fmt[] =
    "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>%s</org_name>"
    "<email>r@example.net</email><report_id>%s</report_id>"
    "<date_range><begin>1773057600</begin><end>1773143999</end></date_range></report_metadata>"
    "<policy_published><domain>example.com</domain><p>none</p></policy_published>"
    "<record><row><source_ip>192.0.2.1</source_ip><count>9</count><policy_evaluated>"
    "<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
    "<identifiers><header_from>example.com</header_from></identifiers></record></feedback>\n";

/* Write a file (a mail with the report as an XML part when headers is not
 * NULL, else bare XML) and set its mtime. */
static void
write_item(const char *name, const char *headers, const char *org, int64_t mtime, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");
	if (fp == NULL) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	if (headers != NULL)
		fprintf(fp,
		        "%sFrom: noreply@example.net\r\nSubject: Report\r\nMIME-Version: 1.0\r\n"
		        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
		        "report attached\r\n--b\r\nContent-Type: text/xml; name=\"r.xml\"\r\n\r\n",
		        headers);
	fprintf(fp, xml_fmt, org, org);
	if (headers != NULL)
		fprintf(fp, "\r\n--b--\r\n");
	fclose(fp);
	struct timeval tv[2] = {{(time_t)mtime, 0}, {(time_t)mtime, 0}};
	if (utimes(path, tv) != 0) {
		printf("Bail out! utimes %s\n", path);
		exit(1);
	}
}

/* What main.c's import does for one file, with or without mail dates. */
static void
import(struct dw_store *s, const char *path, int mail_dates)
{
	struct dw_importer im;
	struct dw_ingest_result res;
	struct dw_limits lim;
	struct stat st;
	char err[512] = "";
	memset(&im, 0, sizeof im);
	dw_limits_default(&lim);
	im.store = s;
	im.prov.kind = "file";
	im.prov.source = path;
	im.prov.uidvalidity = im.prov.uid = -1;
	im.prov.received = stat(path, &st) == 0 ? (int64_t)st.st_mtime : -1;
	im.mail_dates = mail_dates;
	int rc = dw_importer_item_begin(&im, err, sizeof err);
	int irc = rc == DW_OK ? dw_ingest_path(path, &lim, &dw_importer_cb, &im, &res) : rc;
	if (rc == DW_OK)
		rc = dw_importer_item_end(&im, err, sizeof err);
	ok(rc == DW_OK && irc == DW_OK && im.item.stored == 1, "import %s: one report stored", path);
	if (rc != DW_OK || irc != DW_OK)
		diag("%s / %s", err, irc != DW_OK ? res.reason : "");
	dw_ingest_result_clear(&res);
}

static int64_t
received_of(const struct dw_facts *f, const char *org)
{
	uint32_t o = dw_facts_str(f, org);
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].reporter == o)
			return f->v[i].received;
	return -999;
}

static void
test_import_received(void)
{
	char path[400], db2[300];
	snprintf(db2, sizeof db2, "%s/import.db", tmpdir);
	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(db2, &s, err, sizeof err) != DW_OK) {
		printf("Bail out! %s\n", err);
		exit(1);
	}
	const int64_t mtime = INT64_C(1773400000);

	/* The top Received: (a comment with ';' before the date, a zone
	 * name comment after it) wins over the second one and over Date:.
	 * Tue, 10 Mar 2026 09:30:00 -0400 = 13:30:00Z = 1773149400. */
	write_item("m1.eml",
	           "Received: from mx.example.net (mx.example.net [192.0.2.25]) (using TLS; cipher x)\r\n"
	           "\tby mx.example.com with ESMTPS id 42; Tue, 10 Mar 2026 09:30:00 -0400 (EDT)\r\n"
	           "Received: from inside by mx.example.net; Mon, 9 Mar 2026 01:00:00 +0000\r\n"
	           "Date: Mon, 9 Mar 2026 00:00:00 +0000\r\n",
	           "m1-received", mtime, path, sizeof path);
	import(s, path, 1);
	/* No Received: Date: Wed, 11 Mar 2026 08:00:00 GMT = 1773216000. */
	write_item("m2.eml", "Date: Wed, 11 Mar 2026 08:00:00 GMT\r\n", "m2-date", mtime, path, sizeof path);
	import(s, path, 1);
	/* A Received: whose date does not parse: Date: 11 Mar 2026 10:00 EST
	 * = 15:00Z = 1773241200. */
	write_item("m3.eml", "Received: by mx.example.com; sometime yesterday\r\nDate: 11 Mar 2026 10:00 EST\r\n",
	           "m3-baddate", mtime, path, sizeof path);
	import(s, path, 1);
	/* Neither dates: the mtime. */
	write_item("m4.eml", "Received: from a by b\r\nDate: never\r\n", "m4-nodate", mtime + 1, path, sizeof path);
	import(s, path, 1);
	/* Bare XML: the mtime. */
	write_item("r5.xml", NULL, "r5-bare", mtime + 2, path, sizeof path);
	import(s, path, 1);
	/* A mail, mail dates off (the mailbox sources): prov.received stays. */
	write_item("m6.eml", "Received: by mx; Tue, 10 Mar 2026 09:30:00 -0400\r\n", "m6-off", mtime + 3, path,
	           sizeof path);
	import(s, path, 0);

	/* All six are for NY 03-09 (2026-03-09T12:00Z + 1 day = 08:00 EDT on
	 * the 9th to 07:59:59 on the 10th: 16 h on the 9th, 8 h on the 10th). */
	struct dw_facts *f = load(s, "2026-03-09", "2026-03-09");
	if (f != NULL) {
		is_int(f->n, 6, "import: six facts");
		is_int(received_of(f, "m1-received"), INT64_C(1773149400), "import: top Received: date");
		is_int(received_of(f, "m2-date"), INT64_C(1773216000), "import: no Received: -> Date: (GMT)");
		is_int(received_of(f, "m3-baddate"), INT64_C(1773241200), "import: bad Received: date -> Date: (EST)");
		is_int(received_of(f, "m4-nodate"), mtime + 1, "import: no usable date -> mtime");
		is_int(received_of(f, "r5-bare"), mtime + 2, "import: bare XML -> mtime");
		is_int(received_of(f, "m6-off"), mtime + 3, "import: mail_dates off -> prov.received");
		dw_facts_free(f);
	}
	/* provenance.received says the same. */
	is_int(sql_int(db2, "SELECT p.received FROM provenance p JOIN reports r ON r.id = p.report"
	                    " WHERE r.org_name = 'm1-received'"),
	       INT64_C(1773149400), "import: provenance.received is the Received: date");
	dw_store_close(s);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	snprintf(dbpath, sizeof dbpath, "%s/facts.db", tmpdir);
	zone("America/New_York");

	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(dbpath, &s, err, sizeof err) != DW_OK) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	build_march(s);
	test_march(s);
	test_november(s);
	test_errors(s);
	dw_store_close(s);
	test_import_received();

	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
