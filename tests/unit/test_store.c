/*
 * test_store.c - the SQLite store (src/store.c): schema creation and
 * versioning, folding, duplicate and revision detection, savepoints and the
 * item transaction, the aggregation query, refusal of foreign files, and
 * the import rate of a large report.
 */
#include "dw/store.h"
#include "tap.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static char tmpdir[] = "/tmp/dw_store_XXXXXX";
static char dbpath[300];

/* ---- helpers reading the database behind the store's back ---- */

static int64_t
sql_int(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -999;
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		diag("sql_int(%s): %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Returns a malloc'ed copy of the first column of the first row, or NULL. */
static char *
sql_text(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL)
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* ---- building reports by hand ---- */

static struct dw_dkim_result dkim_ok = {"example.com", "s1", "pass", NULL};
static struct dw_spf_result spf_ok = {"example.com", "mfrom", "pass", NULL};
static struct dw_reason fwd = {"local_policy", "forwarded"};

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
	r.dkim_results = &dkim_ok;
	r.ndkim = 1;
	r.spf_results = &spf_ok;
	r.nspf = 1;
	return r;
}

static struct dw_report_meta
meta(char *org, char *id, char *domain, int64_t begin, int64_t end)
{
	struct dw_report_meta m;
	memset(&m, 0, sizeof m);
	m.schema = 1;
	m.org_name = org;
	m.email = "noreply@reporter.example";
	m.report_id = id;
	m.begin = begin;
	m.end = end;
	m.has_range = 1;
	m.policy.domain = domain;
	m.policy.p = "reject";
	m.policy.adkim = "r";
	m.policy.aspf = "r";
	m.policy.pct = 100;
	return m;
}

static const struct dw_provenance prov_file = {
	.kind = "file", .source = "tests/x.xml", .member = NULL, .message_id = NULL,
	.uidvalidity = -1, .uid = -1, .received = 1700000000,
};

/*
 * Store one report (records in the given order) in its own item
 * transaction. Returns the outcome, or -rc on error.
 */
static int
store(struct dw_store *s, const struct dw_report_meta *m, const struct dw_record *r, size_t n,
      const struct dw_quirks *q)
{
	char err[512] = "";
	struct dw_store_report *h;
	enum dw_store_outcome out = 0;
	if (dw_store_begin(s, err, sizeof err) != DW_OK) {
		diag("begin: %s", err);
		return -1;
	}
	if (dw_store_report_begin(s, &prov_file, &h, err, sizeof err) != DW_OK) {
		diag("report_begin: %s", err);
		dw_store_rollback(s);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = dw_store_report_record(h, &r[i], err, sizeof err);
		if (rc != DW_OK) {
			diag("%s", err);
			dw_store_report_abort(h);
			dw_store_rollback(s);
			return -rc;
		}
	}
	int rc = dw_store_report_end(h, m, q, NULL, &out, err, sizeof err);
	if (rc != DW_OK) {
		diag("end: %s", err);
		dw_store_rollback(s);
		return -rc;
	}
	if (dw_store_commit(s, err, sizeof err) != DW_OK) {
		diag("commit: %s", err);
		return -1;
	}
	return (int)out;
}

static void
counts(struct dw_store *s, int64_t want_reports, int64_t want_records, const char *what)
{
	int64_t nrep = -1, nrec = -1;
	char err[256];
	int rc = dw_store_counts(s, &nrep, &nrec, err, sizeof err);
	ok(rc == DW_OK && nrep == want_reports && nrec == want_records,
	   "%s: %lld current reports, %lld records (got %lld, %lld)", what, (long long)want_reports,
	   (long long)want_records, (long long)nrep, (long long)nrec);
}

/* foreach collector: sums per disposition and counts rows. */
struct collect {
	uint64_t total, none, reject;
	int rows;
	int64_t last_report;
	int reports;
	char ips[8][48];
	uint64_t ipcount[8];
	int nips;
};

static int
collect_cb(void *ctx, const struct dw_store_row *row)
{
	struct collect *c = ctx;
	c->rows++;
	c->total += row->count;
	if (row->disposition != NULL && strcmp(row->disposition, "none") == 0)
		c->none += row->count;
	if (row->disposition != NULL && strcmp(row->disposition, "reject") == 0)
		c->reject += row->count;
	if (row->report != c->last_report) {
		c->reports++;
		c->last_report = row->report;
	}
	if (row->source_ip != NULL) {
		int i;
		for (i = 0; i < c->nips; i++)
			if (strcmp(c->ips[i], row->source_ip) == 0)
				break;
		if (i == c->nips && c->nips < 8)
			snprintf(c->ips[c->nips++], 48, "%s", row->source_ip);
		if (i < 8)
			c->ipcount[i] += row->count;
	}
	return 0;
}

static struct collect
query(struct dw_store *s, const char *domain, int64_t from, int64_t to, int by_source)
{
	struct collect c;
	memset(&c, 0, sizeof c);
	c.last_report = -1;
	struct dw_store_query q = {.domain = domain, .from = from, .to = to, .by_source = by_source};
	char err[256];
	if (dw_store_foreach(s, &q, collect_cb, &c, err, sizeof err) != DW_OK)
		diag("foreach: %s", err);
	return c;
}

static int
stop_cb(void *ctx, const struct dw_store_row *row)
{
	(void)ctx;
	(void)row;
	return DW_E_SYS;
}

#define T0 INT64_C(1536105600) /* 2018-09-05T00:00:00Z */

static void
test_open(void)
{
	struct dw_store *s = NULL;
	char err[512] = "";
	int rc = dw_store_open(dbpath, &s, err, sizeof err);
	ok(rc == DW_OK && s != NULL, "new database created: %s", err);
	is_int(sql_int("PRAGMA user_version"), 5, "user_version is 5 (migrations 1 to 5 applied)");
	char *mode = sql_text("PRAGMA journal_mode");
	is_str(mode, "wal", "journal mode WAL");
	free(mode);
	is_int(sql_int("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 8,
	       "eight tables (reports, records, provenance, checkpoints, messages, outbox, alerts, passes)");
	counts(s, 0, 0, "empty store");
	dw_store_close(s);

	s = NULL;
	rc = dw_store_open(dbpath, &s, err, sizeof err);
	ok(rc == DW_OK && s != NULL, "reopen: %s", err);
	is_int(sql_int("PRAGMA user_version"), 5, "reopen: user_version still 5");
	is_int(sql_int("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 8, "reopen: still eight tables");
	dw_store_close(s);
	dw_store_close(NULL);
}

static void
test_reports(void)
{
	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(dbpath, &s, err, sizeof err) != DW_OK) {
		ok(0, "open: %s", err);
		return;
	}

	struct dw_report_meta m = meta("google.com", "123", "Example.COM", T0, T0 + 86399);
	struct dw_record r[4];
	r[0] = rec("192.0.2.1", 5, "none", "pass", "pass");
	r[1] = rec("192.0.2.2", 3, "reject", "fail", "fail");
	r[2] = rec("192.0.2.1", 5, "none", "pass", "pass"); /* identical to r[0] */
	r[3] = rec("2001:db8::1", 7, "none", "pass", "fail");
	r[3].nreasons = 1;
	r[3].reasons = &fwd;

	struct dw_quirks q = {0};
	dw_quirks_add(&q, "spf-result:hardfail");
	is_int(store(s, &m, r, 4, &q), DW_STORED_NEW, "a new report is stored");
	counts(s, 1, 3, "identical records folded");
	is_int(sql_int("SELECT count FROM records WHERE source_ip = '192.0.2.1'"), 10, "folded count is summed");
	is_int(sql_int("SELECT count(*) FROM records WHERE source_ip = '192.0.2.1'"), 1, "folded into one row");
	is_int(sql_int("SELECT messages FROM reports"), 20, "report messages");
	is_int(sql_int("SELECT dmarc_fail FROM reports"), 3, "report dmarc_fail");
	is_int(sql_int("SELECT records FROM reports"), 4, "report records (before folding)");
	is_int(sql_int("SELECT revision FROM reports"), 1, "revision 1");
	is_int(sql_int("SELECT length(hash) FROM reports"), 32, "32-byte hash");
	is_int(sql_int("SELECT count(*) FROM provenance WHERE kind = 'file' AND received = 1700000000"), 1,
	       "provenance row");
	char *t = sql_text("SELECT policy_domain FROM reports");
	is_str(t, "example.com", "policy domain stored in lower case");
	free(t);
	t = sql_text("SELECT quirks FROM reports");
	is_str(t, "[\"spf-result:hardfail\"]", "quirks stored as a JSON array");
	free(t);
	t = sql_text("SELECT reasons FROM records WHERE source_ip = '2001:db8::1'");
	is_str(t, "[{\"type\":\"local_policy\",\"comment\":\"forwarded\"}]", "reasons JSON");
	free(t);
	t = sql_text("SELECT auth FROM records WHERE source_ip = '2001:db8::1'");
	is_str(t,
	       "{\"dkim\":[{\"domain\":\"example.com\",\"selector\":\"s1\",\"result\":\"pass\"}],"
	       "\"spf\":[{\"domain\":\"example.com\",\"scope\":\"mfrom\",\"result\":\"pass\"}]}",
	       "auth results JSON");
	free(t);

	/* The same report again: a duplicate, nothing written. */
	is_int(store(s, &m, r, 4, &q), DW_STORED_DUPLICATE, "the same report again is a duplicate");
	counts(s, 1, 3, "after the duplicate");
	is_int(sql_int("SELECT count(*) FROM reports"), 1, "no report row left behind");
	is_int(sql_int("SELECT count(*) FROM provenance"), 1, "no provenance row left behind");

	/* Same records, another order: the hash does not depend on order. */
	struct dw_record rr[4] = {r[3], r[2], r[1], r[0]};
	is_int(store(s, &m, rr, 4, NULL), DW_STORED_DUPLICATE, "records in another order: duplicate");
	/* The domain compares case-insensitively. */
	struct dw_report_meta ml = m;
	ml.policy.domain = "example.com";
	is_int(store(s, &ml, r, 4, NULL), DW_STORED_DUPLICATE, "domain case does not matter");
	counts(s, 1, 3, "after the reordered duplicate");

	/* Same multiset size, one record doubled instead of another: a
	 * revision (a XOR of digests would have cancelled the pair). */
	struct dw_record r2[4] = {r[0], r[1], r[1], r[3]};
	is_int(store(s, &m, r2, 4, NULL), DW_STORED_REVISION, "same key, other records: revision");
	counts(s, 1, 3, "one current report after the revision");
	is_int(sql_int("SELECT count(*) FROM reports"), 2, "both versions kept");
	is_int(sql_int("SELECT count(*) FROM reports WHERE superseded_by = (SELECT max(id) FROM reports)"), 1,
	       "the old version points to the new one");
	is_int(sql_int("SELECT revision FROM reports WHERE superseded_by IS NULL"), 2, "new revision is 2");
	t = sql_text("SELECT quirks FROM reports WHERE superseded_by IS NULL");
	is_str(t, "[\"revised-report\"]", "revision quirk stored");
	free(t);
	struct collect c = query(s, NULL, INT64_MIN, INT64_MAX, 0);
	ok(c.total == 18 && c.reject == 6 && c.none == 12 && c.reports == 1,
	   "foreach sees only the new counts (total %llu, reject %llu, none %llu)", (unsigned long long)c.total,
	   (unsigned long long)c.reject, (unsigned long long)c.none);

	/* The first version arriving again (an old mail re-read) stays a
	 * duplicate and does not flip back. */
	is_int(store(s, &m, r, 4, NULL), DW_STORED_DUPLICATE, "an older version again is a duplicate");
	is_int(sql_int("SELECT revision FROM reports WHERE superseded_by IS NULL"), 2, "revision 2 stays current");

	/* A third version: revision 3 supersedes 2. */
	struct dw_record r3[1] = {rec("198.51.100.9", 1, "quarantine", "fail", "pass")};
	is_int(store(s, &m, r3, 1, NULL), DW_STORED_REVISION, "third version: revision");
	is_int(sql_int("SELECT revision FROM reports WHERE superseded_by IS NULL"), 3, "revision 3");
	is_int(sql_int("SELECT count(*) FROM reports WHERE superseded_by IS NULL"), 1, "still one current");

	/* A NULL org_name is part of the key too (compared with IS). */
	struct dw_report_meta mn = meta(NULL, "noorg-1", "example.net", T0, T0 + 86399);
	is_int(store(s, &mn, r, 2, NULL), DW_STORED_NEW, "report without org_name: new");
	is_int(store(s, &mn, r, 2, NULL), DW_STORED_DUPLICATE, "report without org_name again: duplicate");
	is_int(store(s, &mn, r, 3, NULL), DW_STORED_REVISION, "report without org_name, more records: revision");
	counts(s, 2, 3, "two current reports");

	/* An empty report is a report. */
	struct dw_report_meta me = meta("yahoo", "empty", "example.org", T0, T0 + 86399);
	is_int(store(s, &me, NULL, 0, NULL), DW_STORED_NEW, "empty report stored");
	is_int(store(s, &me, NULL, 0, NULL), DW_STORED_DUPLICATE, "empty report again: duplicate");
	counts(s, 3, 3, "three current reports");

	/* Abort: nothing of the report stays. */
	int64_t rows_before = sql_int("SELECT count(*) FROM reports");
	struct dw_store_report *h;
	is_int(dw_store_begin(s, err, sizeof err), DW_OK, "begin");
	is_int(dw_store_report_begin(s, &prov_file, &h, err, sizeof err), DW_OK, "report begin");
	is_int(dw_store_report_record(h, &r[0], err, sizeof err), DW_OK, "record");
	dw_store_report_abort(h);
	/* The item can go on after an aborted report. */
	struct dw_report_meta m4 = meta("google.com", "after-abort", "example.com", T0, T0 + 86399);
	enum dw_store_outcome out;
	is_int(dw_store_report_begin(s, &prov_file, &h, err, sizeof err), DW_OK, "report begin after abort");
	is_int(dw_store_report_record(h, &r[1], err, sizeof err), DW_OK, "record");
	is_int(dw_store_report_end(h, &m4, NULL, NULL, &out, err, sizeof err), DW_OK, "end");
	is_int(out, DW_STORED_NEW, "stored after an aborted one");
	is_int(dw_store_commit(s, err, sizeof err), DW_OK, "commit");
	is_int(sql_int("SELECT count(*) FROM reports"), rows_before + 1, "the aborted report left no row");
	counts(s, 4, 4, "after abort and a new report");

	/* Rolling back the item transaction undoes every report in it. */
	rows_before = sql_int("SELECT count(*) FROM reports");
	is_int(dw_store_begin(s, err, sizeof err), DW_OK, "begin");
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "rb-%d", i);
		struct dw_report_meta mr = meta("google.com", id, "example.com", T0, T0 + 86399);
		is_int(dw_store_report_begin(s, &prov_file, &h, err, sizeof err), DW_OK, "report %d begin", i);
		is_int(dw_store_report_record(h, &r[0], err, sizeof err), DW_OK, "report %d record", i);
		is_int(dw_store_report_end(h, &mr, NULL, NULL, &out, err, sizeof err), DW_OK, "report %d end", i);
	}
	dw_store_rollback(s);
	is_int(sql_int("SELECT count(*) FROM reports"), rows_before, "rollback: no report rows");
	counts(s, 4, 4, "after rollback");
	dw_store_rollback(s); /* harmless without a transaction */

	/* A rollback with a report still open: the handle is dead, the store
	 * takes the next report. */
	is_int(dw_store_begin(s, err, sizeof err), DW_OK, "begin");
	is_int(dw_store_report_begin(s, &prov_file, &h, err, sizeof err), DW_OK, "report begin");
	is_int(dw_store_report_record(h, &r[0], err, sizeof err), DW_OK, "record");
	dw_store_rollback(s);
	is_int(dw_store_report_record(h, &r[1], err, sizeof err), DW_E_STORE, "record after rollback refused");
	dw_store_report_abort(h);
	struct dw_report_meta m5 = meta("google.com", "after-rollback", "example.com", T0, T0 + 86399);
	is_int(store(s, &m5, r, 1, NULL), DW_STORED_NEW, "next report stored after a rollback");
	counts(s, 5, 5, "after rollback with an open report");

	/* One report at a time. */
	is_int(dw_store_report_begin(s, NULL, &h, err, sizeof err), DW_OK, "report begin without provenance");
	struct dw_store_report *h2 = NULL;
	is_int(dw_store_report_begin(s, NULL, &h2, err, sizeof err), DW_E_STORE, "a second open report is refused");
	ok(h2 == NULL && strstr(err, dbpath) != NULL, "message names the store: %s", err);
	dw_store_report_abort(h);
	dw_store_report_abort(NULL);

	/* Counts beyond SQLite's integers are an input error, not a float. */
	struct dw_record big[2] = {rec("192.0.2.50", UINT64_MAX, "none", "pass", "pass"),
	                           rec("192.0.2.51", (uint64_t)INT64_MAX, "none", "pass", "pass")};
	struct dw_report_meta mb = meta("big", "big-1", "example.com", T0, T0 + 86399);
	is_int(store(s, &mb, big, 1, NULL), -DW_E_INPUT, "count 2^64-1 refused");
	struct dw_record big2[2] = {big[1], rec("192.0.2.52", 1, "none", "pass", "pass")};
	is_int(store(s, &mb, big2, 2, NULL), -DW_E_INPUT, "total above 2^63-1 refused");
	is_int(store(s, &mb, big2, 1, NULL), DW_STORED_NEW, "count 2^63-1 accepted");
	is_int(sql_int("SELECT count FROM records WHERE source_ip = '192.0.2.51'"), INT64_MAX, "2^63-1 stored exactly");

	/* Odd bytes survive: not UTF-8 in the auth results. */
	struct dw_dkim_result odd = {"ex\xff" "ample.com", "s\xc3", "pass", NULL};
	struct dw_record ro = rec("192.0.2.60", 2, "none", "pass", "pass");
	ro.dkim_results = &odd;
	ro.header_from = "b\xe9zier.example";
	struct dw_report_meta mo = meta("odd", "odd-1", "example.com", T0, T0 + 86399);
	is_int(store(s, &mo, &ro, 1, NULL), DW_STORED_NEW, "record with invalid UTF-8 stored");
	t = sql_text("SELECT auth FROM records WHERE source_ip = '192.0.2.60'");
	ok(t != NULL && strstr(t, "\"ex?ample.com\"") != NULL, "invalid UTF-8 replaced in JSON: %s", t ? t : "(null)");
	free(t);

	/* A report whose metadata lacks a range. */
	struct dw_report_meta mnr = meta("norange", "nr-1", "example.com", 0, 0);
	mnr.has_range = 0;
	is_int(store(s, &mnr, r, 1, NULL), DW_STORED_NEW, "report without a range stored");
	is_int(store(s, &mnr, r, 1, NULL), DW_STORED_DUPLICATE, "and deduplicated");
	is_int(sql_int("SELECT count(*) FROM reports WHERE report_id = 'nr-1' AND \"begin\" IS NULL"), 1,
	       "its range is NULL");

	/* The callback can stop the iteration. */
	struct dw_store_query qq = {.domain = NULL, .from = INT64_MIN, .to = INT64_MAX};
	err[0] = '\0';
	is_int(dw_store_foreach(s, &qq, stop_cb, NULL, err, sizeof err), DW_E_SYS, "callback's code returned");
	ok(err[0] != '\0', "and explained: %s", err);

	dw_quirks_clear(&q);
	dw_store_close(s);
}

static void
test_query(void)
{
	/* A fresh store with reports over three days and two domains. */
	snprintf(dbpath, sizeof dbpath, "%s/query.db", tmpdir);
	struct dw_store *s = NULL;
	char err[512];
	if (dw_store_open(dbpath, &s, err, sizeof err) != DW_OK) {
		ok(0, "open: %s", err);
		return;
	}
	struct dw_record a[3] = {rec("192.0.2.1", 4, "none", "pass", "pass"),
	                         rec("192.0.2.2", 2, "reject", "fail", "fail"),
	                         rec("192.0.2.1", 1, "none", "pass", "fail")};
	for (int day = 0; day < 3; day++) {
		char id[16];
		snprintf(id, sizeof id, "d%d", day);
		struct dw_report_meta m1 = meta("google.com", id, "example.com", T0 + day * 86400,
		                                T0 + day * 86400 + 86399);
		struct dw_report_meta m2 = meta("google.com", id, "example.net", T0 + day * 86400,
		                                T0 + day * 86400 + 86399);
		is_int(store(s, &m1, a, 3, NULL), DW_STORED_NEW, "example.com day %d", day);
		is_int(store(s, &m2, a, 2, NULL), DW_STORED_NEW, "example.net day %d", day);
	}
	struct collect c = query(s, NULL, INT64_MIN, INT64_MAX, 0);
	ok(c.total == 3 * 7 + 3 * 6 && c.reports == 6, "all: %llu messages in %d reports",
	   (unsigned long long)c.total, c.reports);
	/* Grouped by result: per report, (none pass pass), (reject fail fail),
	 * (none pass fail) for .com and two rows for .net. */
	is_int(c.rows, 3 * 3 + 3 * 2, "rows grouped per report and result");
	c = query(s, "example.com", INT64_MIN, INT64_MAX, 0);
	ok(c.total == 21 && c.reports == 3, "domain filter: %llu", (unsigned long long)c.total);
	c = query(s, "EXAMPLE.NET", INT64_MIN, INT64_MAX, 0);
	ok(c.total == 18 && c.reports == 3, "domain filter ignores case: %llu", (unsigned long long)c.total);
	c = query(s, "example.org", INT64_MIN, INT64_MAX, 0);
	ok(c.total == 0 && c.rows == 0, "unknown domain: nothing");
	/* [T0 + 1 day, T0 + 2 days) overlaps only the middle reports. */
	c = query(s, NULL, T0 + 86400, T0 + 2 * 86400, 0);
	ok(c.total == 13 && c.reports == 2, "time window: middle day only (%llu, %d reports)",
	   (unsigned long long)c.total, c.reports);
	/* A window touching the end second of day 0 includes it. */
	c = query(s, "example.com", T0 + 86399, T0 + 86400, 0);
	ok(c.total == 7 && c.reports == 1, "window at the last second includes the report");
	c = query(s, "example.com", T0 + 86400, T0 + 86401, 1);
	ok(c.nips == 2, "by source: two IPs");
	for (int i = 0; i < c.nips; i++) {
		if (strcmp(c.ips[i], "192.0.2.1") == 0)
			is_int(c.ipcount[i], 5, "by source: 192.0.2.1 has 5");
		else
			is_int(c.ipcount[i], 2, "by source: %s has 2", c.ips[i]);
	}
	is_int(c.rows, 3, "by source: one row per IP and result");
	dw_store_close(s);
}

static void
test_refusals(void)
{
	char err[512] = "";
	struct dw_store *s = (struct dw_store *)1;

	/* A database from the future. */
	char path[300];
	snprintf(path, sizeof path, "%s/future.db", tmpdir);
	sqlite3 *db;
	sqlite3_open(path, &db);
	sqlite3_exec(db, "CREATE TABLE t (x); PRAGMA user_version = 999;", NULL, NULL, NULL);
	sqlite3_close(db);
	int rc = dw_store_open(path, &s, err, sizeof err);
	is_int(rc, DW_E_STORE, "user_version 999 refused");
	ok(s == NULL, "no handle returned");
	ok(strstr(err, "database schema version 999 is newer than this dmarcwatch understands (5); "
	               "upgrade dmarcwatch") != NULL && strstr(err, path) != NULL,
	   "message: %s", err);
	snprintf(dbpath, sizeof dbpath, "%s", path);
	char *mode = sql_text("PRAGMA journal_mode");
	is_str(mode, "delete", "the newer database was not touched (journal mode)");
	free(mode);

	/* Not an SQLite file at all. */
	snprintf(path, sizeof path, "%s/notes.txt", tmpdir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 200; i++)
		fputs("this is not a database, it is a text file with some words in it\n", f);
	fclose(f);
	err[0] = '\0';
	rc = dw_store_open(path, &s, err, sizeof err);
	is_int(rc, DW_E_STORE, "text file refused");
	ok(strstr(err, path) != NULL && strstr(err, "not a database") != NULL, "message: %s", err);

	/* A directory that does not exist. */
	snprintf(path, sizeof path, "%s/no/such/dir/x.db", tmpdir);
	err[0] = '\0';
	rc = dw_store_open(path, &s, err, sizeof err);
	is_int(rc, DW_E_STORE, "missing directory refused");
	ok(strstr(err, path) != NULL, "message: %s", err);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_big(void)
{
	snprintf(dbpath, sizeof dbpath, "%s/big.db", tmpdir);
	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(dbpath, &s, err, sizeof err) != DW_OK) {
		ok(0, "open: %s", err);
		return;
	}
	/* DW_TEST_BIG_RECORDS overrides the size, for slow or busy machines. */
	uint32_t n = UNDER_ASAN ? 50000 : 200000; /* 1 M: DW_TEST_BIG_RECORDS=1000000 */
	const char *env = getenv("DW_TEST_BIG_RECORDS");
	if (env != NULL && atol(env) >= 10 && atol(env) <= 20000000)
		n = (uint32_t)atol(env);
	struct dw_report_meta m = meta("google.com", "big", "example.com", T0, T0 + 86399);
	struct dw_store_report *h;
	enum dw_store_outcome out = 0;
	int good = 1;

	double t0 = now_s(), c0 = cpu_s();
	good = dw_store_begin(s, err, sizeof err) == DW_OK &&
	       dw_store_report_begin(s, &prov_file, &h, err, sizeof err) == DW_OK;
	for (uint32_t i = 0; i < n && good; i++) {
		/* Every 10th record repeats an earlier one, to exercise folding. */
		uint32_t k = i % 10 == 9 ? i - 9 : i;
		char ip[48];
		snprintf(ip, sizeof ip, "10.%u.%u.%u", (k >> 16) & 255, (k >> 8) & 255, k & 255);
		struct dw_record r = rec(ip, 1 + k % 5, k % 3 ? "none" : "quarantine", k % 4 ? "pass" : "fail",
		                         k % 7 ? "pass" : "fail");
		good = dw_store_report_record(h, &r, err, sizeof err) == DW_OK;
	}
	good = good && dw_store_report_end(h, &m, NULL, NULL, &out, err, sizeof err) == DW_OK &&
	       dw_store_commit(s, err, sizeof err) == DW_OK;
	double dt = now_s() - t0, dc = cpu_s() - c0;
	ok(good && out == DW_STORED_NEW, "%u-record report stored: %s", n, err);
	/* CPU time too: the wall clock depends on whatever else the machine runs. */
	diag("import of %u records: %.2f s, %.0f records/s (CPU %.2f s, %.0f records/s)%s", n, dt, n / dt, dc,
	     n / dc, UNDER_ASAN ? " (ASan)" : "");
	counts(s, 1, n - n / 10, "big report folded");
	/* Expected messages: the sum over i of 1 + k % 5. */
	uint64_t want = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = i % 10 == 9 ? i - 9 : i;
		want += 1 + k % 5;
	}
	is_int(sql_int("SELECT sum(count) FROM records"), want, "big report: messages");

	/* A report spanning several write batches, stored forward and then
	 * backward: the second is a duplicate, and rolling back its flushed
	 * batches leaves the first intact. */
	const uint32_t nm = 70000; /* more than one batch of 65536 */
	struct dw_report_meta mm = meta("google.com", "multi-batch", "example.org", T0, T0 + 86399);
	for (int pass = 0; pass < 2; pass++) {
		good = dw_store_begin(s, err, sizeof err) == DW_OK &&
		       dw_store_report_begin(s, &prov_file, &h, err, sizeof err) == DW_OK;
		for (uint32_t j = 0; j < nm && good; j++) {
			uint32_t i = pass == 0 ? j : nm - 1 - j;
			char ip[48];
			snprintf(ip, sizeof ip, "172.16.%u.%u", (i >> 8) & 255, i & 255);
			/* IPs repeat every 65536 records: folds across batches. */
			struct dw_record r = rec(ip, 1 + i % 3, "none", "pass", i % 2 ? "pass" : "fail");
			good = dw_store_report_record(h, &r, err, sizeof err) == DW_OK;
		}
		good = good && dw_store_report_end(h, &mm, NULL, NULL, &out, err, sizeof err) == DW_OK &&
		       dw_store_commit(s, err, sizeof err) == DW_OK;
		ok(good && out == (pass == 0 ? DW_STORED_NEW : DW_STORED_DUPLICATE), "multi-batch report, %s: %s",
		   pass == 0 ? "forward is new" : "backward is a duplicate", err);
	}
	uint64_t want_m = 0;
	for (uint32_t i = 0; i < nm; i++)
		want_m += 1 + i % 3;
	is_int(sql_int("SELECT sum(count) FROM records JOIN reports r ON r.id = report"
	               " WHERE r.report_id = 'multi-batch'"),
	       want_m, "multi-batch: messages");
	/* Records i and i + 65536 share the IP and, 65536 being even, every
	 * other field but the count: one row per distinct IP. */
	is_int(sql_int("SELECT count(*) FROM records JOIN reports r ON r.id = report"
	               " WHERE r.report_id = 'multi-batch'"),
	       65536, "multi-batch: folded across batches");
	is_int(sql_int("SELECT count(*) FROM reports WHERE report_id = 'multi-batch'"), 1, "multi-batch: one row");

	dw_store_close(s);
}

static void
rm_rf(const char *dir)
{
	static const char *names[] = {"t.db", "query.db", "future.db", "big.db", "notes.txt", "agent.db"};
	static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[400];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		for (size_t j = 0; j < sizeof suffix / sizeof suffix[0]; j++) {
			snprintf(p, sizeof p, "%s/%s%s", dir, names[i], suffix[j]);
			unlink(p);
		}
	if (rmdir(dir) != 0)
		diag("could not remove %s", dir);
}

/* A version-1 database (the foundation's) is migrated to version 2 on open,
 * keeping its reports; the agent state then works. */
static int
pend_cb(void *ctx, uint32_t uid, const char *folder)
{
	char *acc = ctx;
	size_t n = strlen(acc);
	snprintf(acc + n, 256 - n, "%u:%s ", uid, folder);
	return DW_OK;
}

static void
test_agent_state(void)
{
	char path[300], err[512] = "";
	snprintf(path, sizeof path, "%s/agent.db", tmpdir);
	sqlite3 *db;
	sqlite3_open(path, &db);
	/* What version 1 created, with one report in it. */
	int src = sqlite3_exec(db,
	    "CREATE TABLE reports (id INTEGER PRIMARY KEY, schema INTEGER, version TEXT, org_name TEXT, email TEXT,"
	    " extra_contact_info TEXT, report_id TEXT, generator TEXT, errors TEXT, policy_domain TEXT,"
	    " \"begin\" INTEGER, \"end\" INTEGER, p TEXT, sp TEXT, np TEXT, adkim TEXT, aspf TEXT, pct INTEGER, fo TEXT,"
	    " testing TEXT, discovery_method TEXT, quirks TEXT, hash BLOB, messages INTEGER NOT NULL DEFAULT 0,"
	    " dmarc_fail INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,"
	    " superseded_by INTEGER REFERENCES reports(id) ON DELETE SET NULL, received INTEGER,"
	    " imported_at INTEGER NOT NULL, revision INTEGER NOT NULL DEFAULT 1);"
	    "INSERT INTO reports (org_name, report_id, hash, imported_at) VALUES ('x', 'old', x'00', 1);"
	    "CREATE TABLE records (id INTEGER PRIMARY KEY, report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
	    " source_ip TEXT NOT NULL, disposition TEXT, dkim TEXT, spf TEXT, header_from TEXT, envelope_from TEXT,"
	    " envelope_to TEXT, reasons TEXT, auth TEXT, fold_key BLOB NOT NULL, count INTEGER NOT NULL,"
	    " UNIQUE (report, fold_key));"
	    "CREATE TABLE provenance (id INTEGER PRIMARY KEY, report INTEGER NOT NULL, kind TEXT, source TEXT,"
	    " member TEXT, message_id TEXT, uidvalidity INTEGER, uid INTEGER, received INTEGER, imported_at INTEGER NOT NULL);"
	    "PRAGMA user_version = 1;",
	    NULL, NULL, NULL);
	sqlite3_close(db);
	ok(src == SQLITE_OK, "a version-1 database made by hand");
	struct dw_store *s = NULL;
	int rc = dw_store_open(path, &s, err, sizeof err);
	ok(rc == DW_OK, "version 1 opens and migrates: %s", err);
	if (rc != DW_OK)
		return;
	snprintf(dbpath, sizeof dbpath, "%s", path);
	is_int(sql_int("PRAGMA user_version"), 5, "migrated to version 5");
	is_int(sql_int("SELECT count(*) FROM reports WHERE report_id = 'old'"), 1, "the old report is kept");

	uint32_t uv = 9, uid = 9;
	rc = dw_store_checkpoint_get(s, "acct", &uv, &uid, err, sizeof err);
	ok(rc == DW_OK && uv == 0 && uid == 0, "no checkpoint yet: 0, 0");
	ok(dw_store_begin(s, err, sizeof err) == DW_OK, "begin");
	struct dw_msg_verdict v = {.account = "acct", .uidvalidity = 77, .uid = 5, .verdict = "stored",
	                           .message_id = "m@x", .reports = 1, .folder = "Archive", .received = 1700000000};
	ok(dw_store_message_put(s, &v, err, sizeof err) == DW_OK, "verdict stored");
	v.uid = 6;
	v.verdict = "not-a-report";
	v.folder = NULL;
	ok(dw_store_message_put(s, &v, err, sizeof err) == DW_OK, "verdict without folder");
	v.uid = 7;
	v.verdict = "invalid";
	v.reason = "line 5: malformed";
	v.folder = "Invalid";
	ok(dw_store_message_put(s, &v, err, sizeof err) == DW_OK, "invalid verdict");
	ok(dw_store_checkpoint_set(s, "acct", 77, 7, err, sizeof err) == DW_OK, "checkpoint set");
	ok(dw_store_commit(s, err, sizeof err) == DW_OK, "commit");
	rc = dw_store_checkpoint_get(s, "acct", &uv, &uid, err, sizeof err);
	ok(rc == DW_OK && uv == 77 && uid == 7, "checkpoint read back: %u %u", uv, uid);

	/* A rolled-back item leaves neither verdict nor checkpoint. */
	dw_store_begin(s, err, sizeof err);
	v.uid = 8;
	dw_store_message_put(s, &v, err, sizeof err);
	dw_store_checkpoint_set(s, "acct", 77, 8, err, sizeof err);
	dw_store_rollback(s);
	dw_store_checkpoint_get(s, "acct", &uv, &uid, err, sizeof err);
	is_int(uid, 7, "rollback: checkpoint unchanged");
	is_int(sql_int("SELECT count(*) FROM messages WHERE uid = 8"), 0, "rollback: no verdict for uid 8");
	is_int(sql_int("SELECT count(*) FROM messages WHERE uid = 7 AND verdict = 'invalid'"), 1,
	       "verdict of uid 7 stored");

	char acc[256] = "";
	rc = dw_store_pending_moves(s, "acct", 77, pend_cb, acc, err, sizeof err);
	is_str(acc, "5:Archive 7:Invalid ", "pending moves: by folder then uid, not the one without folder");
	uint32_t moved[] = {5};
	ok(dw_store_mark_moved(s, "acct", 77, moved, 1, err, sizeof err) == DW_OK, "mark moved");
	acc[0] = '\0';
	dw_store_pending_moves(s, "acct", 77, pend_cb, acc, err, sizeof err);
	is_str(acc, "7:Invalid ", "after the move only uid 7 is pending");
	acc[0] = '\0';
	dw_store_pending_moves(s, "acct", 78, pend_cb, acc, err, sizeof err);
	is_str(acc, "", "another uidvalidity has no pending moves");
	is_int(sql_int("SELECT count(*) FROM messages WHERE account = 'acct'"), 3, "three verdicts for the account");
	dw_store_close(s);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	snprintf(dbpath, sizeof dbpath, "%s/t.db", tmpdir);
	test_open();
	test_reports();
	test_query();
	test_refusals();
	test_big();
	test_agent_state();
	rm_rf(tmpdir);
	return done_testing();
}
