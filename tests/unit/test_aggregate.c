/*
 * test_aggregate.c - aggregates over a small hand-built store
 * (src/aggregate.c on top of store.c and days.c): rows by day, source and
 * reporter with hand-computed counts, --since/--until, the time zone, a
 * report split over three days, revisions and bad dates.
 */
#include "dw/aggregate.h"
#include "dw/days.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAY1 INT64_C(1714521600) /* 2024-05-01T00:00:00Z */
#define DAY INT64_C(86400)

static char tmpdir[] = "/tmp/dw_agg_XXXXXX";
static char dbpath[300];

static struct dw_record
rec(const char *ip, uint64_t count, char *disp, char *dkim, char *spf)
{
	struct dw_record r;
	memset(&r, 0, sizeof r);
	snprintf(r.source_ip, sizeof r.source_ip, "%s", ip);
	r.count = count;
	r.disposition = disp;
	r.dkim = dkim;
	r.spf = spf;
	r.header_from = "example.com";
	return r;
}

static int
put(struct dw_store *s, char *org, char *id, char *domain, int64_t begin, int64_t end, const struct dw_record *r,
    size_t n)
{
	struct dw_report_meta m;
	memset(&m, 0, sizeof m);
	m.schema = 1;
	m.org_name = org;
	m.report_id = id;
	m.begin = begin;
	m.end = end;
	m.has_range = 1;
	m.policy.domain = domain;
	m.policy.p = "none";
	m.policy.pct = -1;
	struct dw_provenance prov = {.kind = "file", .source = "test", .uidvalidity = -1, .uid = -1, .received = -1};
	char err[512] = "";
	struct dw_store_report *h;
	enum dw_store_outcome out = 0;
	int rc = dw_store_begin(s, err, sizeof err);
	if (rc == DW_OK)
		rc = dw_store_report_begin(s, &prov, &h, err, sizeof err);
	for (size_t i = 0; rc == DW_OK && i < n; i++)
		if ((rc = dw_store_report_record(h, &r[i], err, sizeof err)) != DW_OK)
			dw_store_report_abort(h);
	if (rc == DW_OK)
		rc = dw_store_report_end(h, &m, NULL, NULL, &out, err, sizeof err);
	if (rc == DW_OK)
		rc = dw_store_commit(s, err, sizeof err);
	if (rc != DW_OK) {
		diag("storing %s: %s", id, err);
		dw_store_rollback(s);
		return -1;
	}
	return (int)out;
}

/* Expected values of one row, in the order of struct dw_agg_row. */
struct want {
	const char *domain, *day, *key;
	uint64_t messages, dmarc_pass, dmarc_fail, dkim_fail, spf_fail;
	uint64_t none, quarantine, reject, pass, other;
	uint64_t reports;
};

static void
check(const char *what, const struct dw_agg_result *res, const struct want *w, size_t n)
{
	is_int(res->n, n, "%s: %zu rows", what, n);
	for (size_t i = 0; i < n && i < res->n; i++) {
		const struct dw_agg_row *r = &res->rows[i];
		int same = strcmp(r->domain, w[i].domain) == 0 && strcmp(r->day, w[i].day) == 0 &&
		           ((r->key == NULL && w[i].key == NULL) ||
		            (r->key != NULL && w[i].key != NULL && strcmp(r->key, w[i].key) == 0));
		int counts = r->messages == w[i].messages && r->dmarc_pass == w[i].dmarc_pass &&
		             r->dmarc_fail == w[i].dmarc_fail && r->dkim_fail == w[i].dkim_fail &&
		             r->spf_fail == w[i].spf_fail && r->disp_none == w[i].none &&
		             r->disp_quarantine == w[i].quarantine && r->disp_reject == w[i].reject &&
		             r->disp_pass == w[i].pass && r->disp_other == w[i].other && r->reports == w[i].reports;
		ok(same && counts, "%s: row %zu %s %s %s", what, i, w[i].domain, w[i].day, w[i].key ? w[i].key : "");
		if (!(same && counts))
			diag("got %s %s %s: msgs %llu pass %llu fail %llu dkimf %llu spff %llu none %llu quar %llu rej %llu "
			     "pass %llu other %llu reports %llu",
			     r->domain, r->day, r->key ? r->key : "(null)", (unsigned long long)r->messages,
			     (unsigned long long)r->dmarc_pass, (unsigned long long)r->dmarc_fail,
			     (unsigned long long)r->dkim_fail, (unsigned long long)r->spf_fail,
			     (unsigned long long)r->disp_none, (unsigned long long)r->disp_quarantine,
			     (unsigned long long)r->disp_reject, (unsigned long long)r->disp_pass,
			     (unsigned long long)r->disp_other, (unsigned long long)r->reports);
	}
}

static void
run(struct dw_store *s, const char *what, const char *domain, const char *since, const char *until, enum dw_agg_by by,
    const struct want *w, size_t n)
{
	struct dw_agg_query q = {.domain = domain, .since = since, .until = until, .by = by};
	struct dw_agg_result res = {0};
	char err[512] = "";
	int rc = dw_aggregate(s, &q, &res, err, sizeof err);
	if (rc != DW_OK)
		diag("%s: %s", what, err);
	check(what, &res, w, n);
	dw_agg_result_free(&res);
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

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	snprintf(dbpath, sizeof dbpath, "%s/agg.db", tmpdir);
	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(dbpath, &s, err, sizeof err) != DW_OK) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	zone("UTC");

	/* An empty store aggregates to nothing. */
	run(s, "empty store", NULL, NULL, NULL, DW_BY_DAY, NULL, 0);

	/* R1 (google.com, example.com, 1 May), first as a version that a
	 * revision will replace. */
	struct dw_record r1old[] = {rec("192.0.2.1", 100, "none", "pass", "pass")};
	struct dw_record r1[] = {rec("192.0.2.1", 10, "none", "pass", "pass"),
	                         rec("192.0.2.2", 3, "reject", "fail", "fail"),
	                         rec("192.0.2.1", 2, "none", "fail", "pass")};
	/* R2 (Yahoo, example.com): Microsoft-style 00:00 -> 00:00 on 2 May, with
	 * a zero-count record. */
	struct dw_record r2[] = {rec("192.0.2.1", 4, "quarantine", "fail", "fail"),
	                         rec("198.51.100.7", 1, "none", "pass", "fail"),
	                         rec("192.0.2.77", 0, "none", "pass", "pass")};
	/* R3 (google.com, example.net): three days, 1-3 May. */
	struct dw_record r3[] = {rec("203.0.113.5", 10, "none", "pass", "pass"),
	                         rec("203.0.113.6", 2, "reject", "fail", "fail")};
	/* R4 (Microsoft, example.com): 3 May, bis disposition "pass" and an
	 * unknown one. */
	struct dw_record r4[] = {rec("192.0.2.9", 5, "pass", "pass", "fail"),
	                         rec("192.0.2.9", 1, "discard", "fail", "fail")};

	is_int(put(s, "google.com", "r1", "example.com", MAY1, MAY1 + DAY - 1, r1old, N(r1old)), DW_STORED_NEW, "R1 old");
	is_int(put(s, "google.com", "r1", "example.com", MAY1, MAY1 + DAY - 1, r1, N(r1)), DW_STORED_REVISION,
	       "R1 revision");
	is_int(put(s, "Yahoo", "r2", "example.com", MAY1 + DAY, MAY1 + 2 * DAY, r2, N(r2)), DW_STORED_NEW, "R2");
	is_int(put(s, "google.com", "r3", "example.net", MAY1, MAY1 + 3 * DAY - 1, r3, N(r3)), DW_STORED_NEW, "R3");
	is_int(put(s, "Microsoft Corporation", "r4", "example.com", MAY1 + 2 * DAY, MAY1 + 3 * DAY, r4, N(r4)),
	       DW_STORED_NEW, "R4");

	/* R3's 10 split 4/3/3 and its 2 split 1/1/0 (largest remainder, ties
	 * to the earlier day). */
	static const struct want by_day[] = {
		/* domain, day, key, msgs, pass, fail, dkimf, spff, none, quar, rej, pass, other, reports */
		{"example.com", "2024-05-01", NULL, 15, 12, 3, 5, 3, 12, 0, 3, 0, 0, 1},
		{"example.com", "2024-05-02", NULL, 5, 1, 4, 4, 5, 1, 4, 0, 0, 0, 1},
		{"example.com", "2024-05-03", NULL, 6, 5, 1, 1, 6, 0, 0, 0, 5, 1, 1},
		{"example.net", "2024-05-01", NULL, 5, 4, 1, 1, 1, 4, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-02", NULL, 4, 3, 1, 1, 1, 3, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-03", NULL, 3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 1},
	};
	run(s, "UTC by day", NULL, NULL, NULL, DW_BY_DAY, by_day, N(by_day));
	run(s, "UTC by day, example.net", "example.net", NULL, NULL, DW_BY_DAY, by_day + 3, 3);
	run(s, "UTC by day, since 2024-05-03", NULL, "2024-05-03", NULL, DW_BY_DAY,
	    (const struct want[]){by_day[2], by_day[5]}, 2);
	run(s, "UTC by day, until 2024-05-01", NULL, NULL, "2024-05-01", DW_BY_DAY,
	    (const struct want[]){by_day[0], by_day[3]}, 2);
	run(s, "UTC by day, 2024-05-02 only", NULL, "2024-05-02", "2024-05-02", DW_BY_DAY,
	    (const struct want[]){by_day[1], by_day[4]}, 2);
	run(s, "UTC by day, before the data", NULL, "2024-04-01", "2024-04-30", DW_BY_DAY, NULL, 0);
	run(s, "UTC by day, after the data", NULL, "2024-05-04", NULL, DW_BY_DAY, NULL, 0);

	static const struct want by_source[] = {
		{"example.com", "", "192.0.2.1", 16, 12, 4, 6, 4, 12, 4, 0, 0, 0, 2},
		{"example.com", "", "192.0.2.2", 3, 0, 3, 3, 3, 0, 0, 3, 0, 0, 1},
		{"example.com", "", "192.0.2.77", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		{"example.com", "", "192.0.2.9", 6, 5, 1, 1, 6, 0, 0, 0, 5, 1, 1},
		{"example.com", "", "198.51.100.7", 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1},
		{"example.net", "", "203.0.113.5", 10, 10, 0, 0, 0, 10, 0, 0, 0, 0, 1},
		{"example.net", "", "203.0.113.6", 2, 0, 2, 2, 2, 0, 0, 2, 0, 0, 1},
	};
	run(s, "UTC by source", NULL, NULL, NULL, DW_BY_SOURCE, by_source, N(by_source));
	/* Only 2-3 May of R3: 3 + 3 and 1 + 0. */
	static const struct want by_source_late[] = {
		{"example.net", "", "203.0.113.5", 6, 6, 0, 0, 0, 6, 0, 0, 0, 0, 1},
		{"example.net", "", "203.0.113.6", 1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 1},
	};
	run(s, "UTC by source, example.net from 2024-05-02", "example.net", "2024-05-02", "2024-05-03", DW_BY_SOURCE,
	    by_source_late, N(by_source_late));
	/* Only 3 May: R3's 2 gave that day nothing, so that source is absent. */
	run(s, "UTC by source, example.net on 2024-05-03", "example.net", "2024-05-03", "2024-05-03", DW_BY_SOURCE,
	    (const struct want[]){{"example.net", "", "203.0.113.5", 3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 1}}, 1);

	static const struct want by_reporter[] = {
		{"example.com", "", "Microsoft Corporation", 6, 5, 1, 1, 6, 0, 0, 0, 5, 1, 1},
		{"example.com", "", "Yahoo", 5, 1, 4, 4, 5, 1, 4, 0, 0, 0, 1},
		{"example.com", "", "google.com", 15, 12, 3, 5, 3, 12, 0, 3, 0, 0, 1},
		{"example.net", "", "google.com", 12, 10, 2, 2, 2, 10, 0, 2, 0, 0, 1},
	};
	run(s, "UTC by reporter", NULL, NULL, NULL, DW_BY_REPORTER, by_reporter, N(by_reporter));

	/*
	 * Tokyo (UTC+9). R1 runs 09:00 1 May .. 08:59:59 2 May: 1 May. R2 and
	 * R4 likewise stay on their days. R3 covers 15 h of 1 May, 2 and 3 May
	 * whole and 9 h of 4 May: 10 -> 2.08/3.33/3.33/1.25 -> 2 4 3 1, and
	 * 2 -> 0.42/0.67/0.67/0.25 -> 0 1 1 0.
	 */
	zone("Asia/Tokyo");
	static const struct want tokyo[] = {
		{"example.com", "2024-05-01", NULL, 15, 12, 3, 5, 3, 12, 0, 3, 0, 0, 1},
		{"example.com", "2024-05-02", NULL, 5, 1, 4, 4, 5, 1, 4, 0, 0, 0, 1},
		{"example.com", "2024-05-03", NULL, 6, 5, 1, 1, 6, 0, 0, 0, 5, 1, 1},
		{"example.net", "2024-05-01", NULL, 2, 2, 0, 0, 0, 2, 0, 0, 0, 0, 1},
		{"example.net", "2024-05-02", NULL, 5, 4, 1, 1, 1, 4, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-03", NULL, 4, 3, 1, 1, 1, 3, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-04", NULL, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1},
	};
	run(s, "Tokyo by day", NULL, NULL, NULL, DW_BY_DAY, tokyo, N(tokyo));
	run(s, "Tokyo by day, 2024-05-04 only", NULL, "2024-05-04", "2024-05-04", DW_BY_DAY, tokyo + 6, 1);
	run(s, "Tokyo by reporter", NULL, NULL, NULL, DW_BY_REPORTER, by_reporter, N(by_reporter));

	/* New York (UTC-4): R1 is 20:00 30 April .. 19:59:59 1 May, mostly 1 May;
	 * R2 is 20:00 1 May .. 20:00 2 May, mostly 2 May; R3 has 4 h of
	 * 30 April, 24 h each of 1 and 2 May and 20 h of 3 May:
	 * 10 -> 0.56/3.33/3.33/2.78 -> 1 3 3 3; 2 -> 0.11/0.67/0.67/0.56 -> 0 1 1 0. */
	zone("America/New_York");
	static const struct want ny[] = {
		{"example.net", "2024-04-30", NULL, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1},
		{"example.net", "2024-05-01", NULL, 4, 3, 1, 1, 1, 3, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-02", NULL, 4, 3, 1, 1, 1, 3, 0, 1, 0, 0, 1},
		{"example.net", "2024-05-03", NULL, 3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 1},
	};
	run(s, "New York by day, example.net", "example.net", NULL, NULL, DW_BY_DAY, ny, N(ny));
	zone("UTC");

	/* Bad dates are configuration errors. */
	struct dw_agg_result res = {0};
	struct dw_agg_query q = {.since = "2024-5-1", .by = DW_BY_DAY};
	is_int(dw_aggregate(s, &q, &res, err, sizeof err), DW_E_CONFIG, "bad --since refused");
	is_str(err, "--since: expected YYYY-MM-DD, got '2024-5-1'", "--since message");
	q = (struct dw_agg_query){.until = "2024-02-30", .by = DW_BY_DAY};
	is_int(dw_aggregate(s, &q, &res, err, sizeof err), DW_E_CONFIG, "bad --until refused");
	is_str(err, "--until: expected YYYY-MM-DD, got '2024-02-30'", "--until message");
	q = (struct dw_agg_query){.since = "2024-05-03", .until = "2024-05-01", .by = DW_BY_DAY};
	is_int(dw_aggregate(s, &q, &res, err, sizeof err), DW_E_CONFIG, "--since after --until refused");
	ok(res.n == 0 && res.rows == NULL, "no rows on error");
	dw_agg_result_free(&res);
	dw_agg_result_free(NULL);

	dw_store_close(s);
	static const char *sfx[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < N(sfx); i++) {
		char p[400];
		snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
		unlink(p);
	}
	if (rmdir(tmpdir) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
