/*
 * test_metrics.c - unit tests for src/metrics.c: the exact exposition text
 * of a real SQLite database built through the store and outbox APIs with
 * known contents (messages by account and verdict, invalid reasons in
 * every class, a revised and a duplicate report, outbox states, a digest,
 * open alerts, per-account passes); label escaping of an account name with
 * a quote, a backslash and a line feed; an older database without the
 * newer tables; errors naming the database; the metrics file replaced
 * atomically while a reader keeps reading it; and the HTTP listener over
 * real TCP on 127.0.0.1 (GET, HEAD, 404, 405, 400, 503 before the first
 * update, a silent and a dribbling client that cannot hold the next one
 * beyond the 5 s timeout, a port already in use, IPv6 loopback).
 */
#include "dw/config.h"
#include "dw/metrics.h"
#include "dw/outbox.h"
#include "dw/store.h"
#include "dw/util.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#define T0 1700000000
#define WEIRD "q\"b\\s\nx" /* q"b\s, a line feed, x */

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* Building the database                                               */

static struct dw_dkim_result dkim_ok = {"example.com", "s1", "pass", NULL};
static struct dw_spf_result spf_ok = {"example.com", "mfrom", "pass", NULL};

static struct dw_record
rec(const char *ip, uint64_t count)
{
	struct dw_record r;
	memset(&r, 0, sizeof r);
	snprintf(r.source_ip, sizeof r.source_ip, "%s", ip);
	r.count = count;
	r.disposition = "none";
	r.dkim = "pass";
	r.spf = "pass";
	r.header_from = "example.com";
	r.dkim_results = &dkim_ok;
	r.ndkim = 1;
	r.spf_results = &spf_ok;
	r.nspf = 1;
	return r;
}

/* Store one report with one record; returns the outcome. */
static int
put_report(struct dw_store *s, char *id, const char *ip, uint64_t count)
{
	static const struct dw_provenance prov = {.kind = "file", .source = "t.xml", .uidvalidity = -1, .uid = -1,
	                                          .received = T0};
	struct dw_report_meta m;
	memset(&m, 0, sizeof m);
	m.schema = 1;
	m.org_name = "google.com";
	m.email = "noreply@google.com";
	m.report_id = id;
	m.begin = T0;
	m.end = T0 + 86399;
	m.has_range = 1;
	m.policy.domain = "example.com";
	m.policy.p = "reject";
	m.policy.pct = 100;
	char err[512] = "";
	struct dw_store_report *h = NULL;
	enum dw_store_outcome out = 0;
	struct dw_record r = rec(ip, count);
	if (dw_store_begin(s, err, sizeof err) != DW_OK || dw_store_report_begin(s, &prov, &h, err, sizeof err) != DW_OK ||
	    dw_store_report_record(h, &r, err, sizeof err) != DW_OK ||
	    dw_store_report_end(h, &m, NULL, NULL, &out, err, sizeof err) != DW_OK ||
	    dw_store_commit(s, err, sizeof err) != DW_OK) {
		diag("storing report %s: %s", id, err);
		exit(2);
	}
	return (int)out;
}

static void
put_msg(struct dw_store *s, const char *account, uint32_t uid, const char *verdict, const char *reason)
{
	char err[512] = "";
	struct dw_msg_verdict v = {.account = account, .uidvalidity = 7, .uid = uid, .verdict = verdict,
	                           .reason = reason, .received = T0};
	if (dw_store_message_put(s, &v, err, sizeof err) != DW_OK) {
		diag("message: %s", err);
		exit(2);
	}
}

static int64_t
queue(struct dw_store *s, const char *notifier, const char *key, int64_t now_ms)
{
	char err[512] = "";
	struct dw_notification n;
	memset(&n, 0, sizeof n);
	n.struct_size = sizeof n;
	n.kind = strncmp(key, "digest:", 7) == 0 ? DW_KIND_DIGEST : DW_KIND_ALERT;
	n.severity = DW_SEV_WARNING;
	n.time = T0;
	n.idempotency_key = key;
	n.title = "t";
	n.body = "b";
	int64_t id = 0;
	if (dw_outbox_put(s, notifier, &n, now_ms, &id, NULL, err, sizeof err) != DW_OK) {
		diag("outbox: %s", err);
		exit(2);
	}
	return id;
}

static void
sql(struct dw_store *s, const char *text)
{
	char *msg = NULL;
	if (sqlite3_exec(dw_store_sqlite(s), text, NULL, NULL, &msg) != SQLITE_OK) {
		diag("sql: %s", msg);
		exit(2);
	}
}

/* The database every test below reads. */
static void
build_db(const char *path)
{
	struct dw_store *s = NULL;
	char err[512] = "";
	if (dw_store_open(path, &s, err, sizeof err) != DW_OK) {
		diag("%s", err);
		exit(2);
	}
	/* Reports: r1, r2 and a revision of r2 (two current), and r1 again. */
	is_int(put_report(s, "r1", "192.0.2.1", 10), DW_STORED_NEW, "db: r1 stored");
	is_int(put_report(s, "r2", "192.0.2.2", 5), DW_STORED_NEW, "db: r2 stored");
	is_int(put_report(s, "r2", "192.0.2.3", 6), DW_STORED_REVISION, "db: r2 revised");
	is_int(put_report(s, "r1", "192.0.2.1", 10), DW_STORED_DUPLICATE, "db: r1 again is a duplicate");

	put_msg(s, "alpha", 1, "stored", NULL);
	put_msg(s, "alpha", 2, "stored", NULL);
	put_msg(s, "alpha", 3, "stored", NULL);
	put_msg(s, "alpha", 4, "duplicate", NULL);
	put_msg(s, "alpha", 5, "invalid",
	        "part 2 (big.zip): decompressed size exceeds the 512 MiB limit (limits.decompressed_max)");
	put_msg(s, "alpha", 6, "invalid",
	        "part 2 (r.xml.gz), member r.xml: line 3: malformed XML: Opening and ending tag mismatch");
	put_msg(s, "alpha", 7, "untrusted", "no DMARC pass from mx.test.example");
	put_msg(s, "beta", 1, "not-a-report", "no report attachment");
	put_msg(s, "beta", 2, "invalid", "part 2 (x.zip): CRC mismatch: the data is corrupt");
	put_msg(s, "beta", 3, "invalid", "part 1: line 12: <begin> is not a number: 'soon'");
	put_msg(s, "beta", 4, "invalid", "not a parseable e-mail message (MIME error 3)");
	put_msg(s, "beta", 5, "invalid", "no report could be read");
	put_msg(s, "beta", 6, "invalid", "part 2 (a.xml): not a DMARC aggregate report: root element is <html>");
	put_msg(s, "beta", 7, "invalid", "something this version has never said");
	put_msg(s, "beta", 8, "duplicate", NULL);
	put_msg(s, "beta", 10, "invalid", "part 2 (b.xml): DOCTYPE not allowed in a DMARC report (line 2)");
	put_msg(s, WEIRD, 1, "stored", NULL);

	is_int(dw_store_mark_pass(s, "alpha", T0 + 100, err, sizeof err), DW_OK, "db: alpha's pass");
	is_int(dw_store_mark_pass(s, "beta", T0 + 150, err, sizeof err), DW_OK, "db: beta's first pass");
	is_int(dw_store_mark_pass(s, "beta", T0 + 200, err, sizeof err), DW_OK, "db: beta's next pass replaces it");

	int64_t now = (int64_t)T0 * 1000;
	queue(s, "chat", "a1", now);
	int64_t d = queue(s, "chat", "a2", now);
	is_int(dw_outbox_delivered(s, d, now + 1000, err, sizeof err), DW_OK, "db: a2 delivered");
	d = queue(s, "chat", "a3", now);
	is_int(dw_outbox_dead(s, d, now + 1000, "410 Gone", err, sizeof err), DW_OK, "db: a3 dead");
	d = queue(s, "chat", "digest:2023-11-14", (int64_t)(T0 + 300) * 1000 + 123);
	is_int(dw_outbox_delivered(s, d, now + 400000, err, sizeof err), DW_OK, "db: the digest delivered");
	queue(s, "pager", "a1", now);

	sql(s, "INSERT INTO alerts (rule, grp, domain, open, severity, opened_day, last_true_day, last_sent) VALUES"
	       " ('dmarc-fail', 'example.com', 'example.com', 1, 2, '2023-11-13', '2023-11-14', 1700000000),"
	       " ('dmarc-fail', 'example.org', 'example.org', 1, 2, '2023-11-13', '2023-11-14', 1700000000),"
	       " ('dmarc-fail', 'example.net', 'example.net', 0, 2, '2023-11-01', '2023-11-02', 1700000000),"
	       " ('new-source', '192.0.2.9', 'example.com', 0, 1, '2023-11-01', '2023-11-01', 1700000000)");
	dw_store_close(s);
}

/* What build_db's database renders to at now. */
static char *
expected(int64_t now)
{
	return xasprintf(
	    "# HELP dmarcwatch_build_info The dmarcwatch version; the value is always 1.\n"
	    "# TYPE dmarcwatch_build_info gauge\n"
	    "dmarcwatch_build_info{version=\"" DW_VERSION "\"} 1\n"
	    "# HELP dmarcwatch_metrics_generated_timestamp_seconds When these figures were read from the database "
	    "(seconds since the epoch).\n"
	    "# TYPE dmarcwatch_metrics_generated_timestamp_seconds gauge\n"
	    "dmarcwatch_metrics_generated_timestamp_seconds %lld\n"
	    "# HELP dmarcwatch_last_successful_pass_timestamp_seconds When the account's last pass over its folder "
	    "ended without error (seconds since the epoch).\n"
	    "# TYPE dmarcwatch_last_successful_pass_timestamp_seconds gauge\n"
	    "dmarcwatch_last_successful_pass_timestamp_seconds{account=\"alpha\"} 1700000100\n"
	    "dmarcwatch_last_successful_pass_timestamp_seconds{account=\"beta\"} 1700000200\n"
	    "# HELP dmarcwatch_messages_total Report mails judged, by account and verdict (stored, duplicate, "
	    "not-a-report, invalid, untrusted).\n"
	    "# TYPE dmarcwatch_messages_total counter\n"
	    "dmarcwatch_messages_total{account=\"alpha\",verdict=\"stored\"} 3\n"
	    "dmarcwatch_messages_total{account=\"alpha\",verdict=\"duplicate\"} 1\n"
	    "dmarcwatch_messages_total{account=\"alpha\",verdict=\"not-a-report\"} 0\n"
	    "dmarcwatch_messages_total{account=\"alpha\",verdict=\"invalid\"} 2\n"
	    "dmarcwatch_messages_total{account=\"alpha\",verdict=\"untrusted\"} 1\n"
	    "dmarcwatch_messages_total{account=\"beta\",verdict=\"stored\"} 0\n"
	    "dmarcwatch_messages_total{account=\"beta\",verdict=\"duplicate\"} 1\n"
	    "dmarcwatch_messages_total{account=\"beta\",verdict=\"not-a-report\"} 1\n"
	    "dmarcwatch_messages_total{account=\"beta\",verdict=\"invalid\"} 7\n"
	    "dmarcwatch_messages_total{account=\"beta\",verdict=\"untrusted\"} 0\n"
	    "dmarcwatch_messages_total{account=\"q\\\"b\\\\s\\nx\",verdict=\"stored\"} 1\n"
	    "dmarcwatch_messages_total{account=\"q\\\"b\\\\s\\nx\",verdict=\"duplicate\"} 0\n"
	    "dmarcwatch_messages_total{account=\"q\\\"b\\\\s\\nx\",verdict=\"not-a-report\"} 0\n"
	    "dmarcwatch_messages_total{account=\"q\\\"b\\\\s\\nx\",verdict=\"invalid\"} 0\n"
	    "dmarcwatch_messages_total{account=\"q\\\"b\\\\s\\nx\",verdict=\"untrusted\"} 0\n"
	    "# HELP dmarcwatch_duplicate_messages_total Report mails whose reports were all stored before (verdict "
	    "duplicate), every account.\n"
	    "# TYPE dmarcwatch_duplicate_messages_total counter\n"
	    "dmarcwatch_duplicate_messages_total 2\n"
	    "# HELP dmarcwatch_parse_errors_total Report mails refused as invalid, by reason class: limit (a limits: "
	    "cap), xml, bad_value, not_dmarc, archive (gzip/zip), mime, no_report, other.\n"
	    "# TYPE dmarcwatch_parse_errors_total counter\n"
	    "dmarcwatch_parse_errors_total{reason=\"limit\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"xml\"} 2\n"
	    "dmarcwatch_parse_errors_total{reason=\"bad_value\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"not_dmarc\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"archive\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"mime\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"no_report\"} 1\n"
	    "dmarcwatch_parse_errors_total{reason=\"other\"} 1\n"
	    "# HELP dmarcwatch_reports_stored DMARC aggregate reports in the database; a revised report counts once.\n"
	    "# TYPE dmarcwatch_reports_stored gauge\n"
	    "dmarcwatch_reports_stored 2\n"
	    "# HELP dmarcwatch_outbox_entries Notifications in the outbox by notifier and state (pending, delivered, "
	    "dead); delivered and dead ones are pruned after outbox.keep.\n"
	    "# TYPE dmarcwatch_outbox_entries gauge\n"
	    "dmarcwatch_outbox_entries{notifier=\"chat\",state=\"pending\"} 1\n"
	    "dmarcwatch_outbox_entries{notifier=\"chat\",state=\"delivered\"} 2\n"
	    "dmarcwatch_outbox_entries{notifier=\"chat\",state=\"dead\"} 1\n"
	    "dmarcwatch_outbox_entries{notifier=\"pager\",state=\"pending\"} 1\n"
	    "dmarcwatch_outbox_entries{notifier=\"pager\",state=\"delivered\"} 0\n"
	    "dmarcwatch_outbox_entries{notifier=\"pager\",state=\"dead\"} 0\n"
	    "# HELP dmarcwatch_last_digest_timestamp_seconds When the last daily digest was queued (seconds since the "
	    "epoch).\n"
	    "# TYPE dmarcwatch_last_digest_timestamp_seconds gauge\n"
	    "dmarcwatch_last_digest_timestamp_seconds 1700000300\n"
	    "# HELP dmarcwatch_alerts_open Open alert incidents, by rule.\n"
	    "# TYPE dmarcwatch_alerts_open gauge\n"
	    "dmarcwatch_alerts_open{rule=\"dmarc-fail\"} 2\n"
	    "dmarcwatch_alerts_open{rule=\"new-source\"} 0\n",
	    (long long)now);
}

/* Report the first differing line, so a failure is readable. */
static void
show_diff(const char *got, const char *want)
{
	if (got == NULL || want == NULL)
		return;
	size_t line = 1;
	const char *g = got, *w = want;
	while (*g != '\0' && *g == *w) {
		if (*g == '\n')
			line++;
		g++;
		w++;
	}
	if (*g == '\0' && *w == '\0')
		return;
	const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
	diag("line %zu differs: got '%.*s' want '%.*s'", line, ge ? (int)(ge - g) : (int)strlen(g), g,
	     we ? (int)(we - w) : (int)strlen(w), w);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */

static void
test_render(const char *db)
{
	char *text = NULL, err[512] = "";
	is_int(dw_metrics_render(db, T0 + 1000, &text, err, sizeof err), DW_OK, "render: ok");
	char *want = expected(T0 + 1000);
	int same = text != NULL && strcmp(text, want) == 0;
	ok(same, "render: the exact text for the known database");
	if (!same)
		show_diff(text, want);
	ok(text != NULL && strstr(text, "account=\"q\\\"b\\\\s\\nx\"") != NULL,
	   "render: a quote, a backslash and a line feed in a label are escaped");
	/* Every sample line belongs to the family announced before it. */
	int orderly = text != NULL;
	char fam[128] = "";
	for (char *l = text; orderly && l != NULL && *l != '\0';) {
		char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		if (strncmp(l, "# TYPE ", 7) == 0)
			snprintf(fam, sizeof fam, "%.*s", (int)strcspn(l + 7, " "), l + 7);
		else if (l[0] != '#' && (strncmp(l, fam, strlen(fam)) != 0 || fam[0] == '\0' ||
		                         (l[strlen(fam)] != '{' && l[strlen(fam)] != ' ')))
			orderly = 0;
		if (!orderly)
			diag("line outside its family: %.*s", (int)n, l);
		l = e ? e + 1 : NULL;
	}
	ok(orderly, "render: every sample follows its own HELP and TYPE");
	free(text);
	free(want);
}

static void
test_old_and_broken(void)
{
	char err[512] = "", *text = NULL;
	/* A database from before the outbox, the alerts and the passes. */
	char *old = xasprintf("%s/old.db", tmpdir);
	sqlite3 *db = NULL;
	sqlite3_open(old, &db);
	sqlite3_exec(db,
	             "CREATE TABLE messages (account TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,"
	             " verdict TEXT NOT NULL, reason TEXT, message_id TEXT, reports INTEGER NOT NULL DEFAULT 0,"
	             " folder TEXT, moved INTEGER NOT NULL DEFAULT 0, received INTEGER, processed_at INTEGER NOT NULL);"
	             "INSERT INTO messages (account, uidvalidity, uid, verdict, processed_at) VALUES"
	             " ('old', 1, 1, 'stored', 1), ('old', 1, 2, 'weird-new-verdict', 1);"
	             "PRAGMA user_version = 2;",
	             NULL, NULL, NULL);
	sqlite3_close(db);
	is_int(dw_metrics_render(old, 5, &text, err, sizeof err), DW_OK, "old database: renders");
	if (text != NULL) {
		ok(strstr(text, "dmarcwatch_messages_total{account=\"old\",verdict=\"stored\"} 1\n") != NULL,
		   "old database: messages counted");
		ok(strstr(text, "dmarcwatch_messages_total{account=\"old\",verdict=\"weird-new-verdict\"} 1\n") != NULL,
		   "old database: a verdict not in the list still shows");
		ok(strstr(text, "dmarcwatch_metrics_generated_timestamp_seconds 5\n") != NULL,
		   "old database: generated time");
		ok(strstr(text, "reports_stored") == NULL && strstr(text, "outbox") == NULL &&
		       strstr(text, "alerts_open") == NULL && strstr(text, "last_successful_pass") == NULL &&
		       strstr(text, "last_digest") == NULL,
		   "old database: the families of missing tables are left out");
	}
	free(text);
	text = NULL;
	unlink(old);
	free(old);

	char *missing = xasprintf("%s/nope/none.db", tmpdir);
	char *want = xasprintf("metrics: cannot open the database %s: unable to open database file", missing);
	is_int(dw_metrics_render(missing, 5, &text, err, sizeof err), DW_E_STORE, "missing database: refused");
	is_str(err, want, "missing database: the message names it");
	ok(text == NULL, "missing database: no text");
	free(want);
	free(missing);

	char *junk = xasprintf("%s/junk.db", tmpdir);
	int fd = open(junk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char block[4096];
	memset(block, 'j', sizeof block);
	if (fd < 0 || write(fd, block, sizeof block) != (ssize_t)sizeof block)
		diag("cannot write %s", junk);
	close(fd);
	want = xasprintf("metrics: database %s: file is not a database", junk);
	is_int(dw_metrics_render(junk, 5, &text, err, sizeof err), DW_E_STORE, "not a database: refused");
	is_str(err, want, "not a database: the message names the file");
	unlink(junk);
	free(junk);
	free(want);
}

/* ------------------------------------------------------------------ */
/* metrics_file                                                        */

static char *
slurp(const char *path, size_t *lenp)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *buf = xmalloc(cap);
	ssize_t r;
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

struct reader {
	const char *path;
	atomic_int stop;
	int reads, bad;
};

/* Read the file over and over while it is being replaced: every read must
 * be one whole rendering. */
static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	const char *tail = "dmarcwatch_alerts_open{rule=\"new-source\"} 0\n";
	while (!atomic_load(&r->stop)) {
		size_t len = 0;
		char *t = slurp(r->path, &len);
		if (t == NULL)
			continue; /* not there yet */
		r->reads++;
		size_t tl = strlen(tail);
		static const char gen[] = "\ndmarcwatch_metrics_generated_timestamp_seconds ";
		const char *g = strstr(t, gen);
		if (strncmp(t, "# HELP dmarcwatch_build_info ", 29) != 0 || len < tl || strcmp(t + len - tl, tail) != 0 ||
		    g == NULL || strstr(g + 1, gen) != NULL) {
			if (r->bad++ == 0)
				diag("a partial file: %zu bytes", len);
		} else {
			char *want = expected(strtoll(g + sizeof gen - 1, NULL, 10));
			if (strcmp(want, t) != 0 && r->bad++ == 0)
				diag("a read that is no rendering");
			free(want);
		}
		free(t);
	}
	return NULL;
}

static void
test_file(char *db)
{
	char err[512] = "";
	char *dir = xasprintf("%s/textfile", tmpdir);
	mkdir(dir, 0755);
	char *path = xasprintf("%s/dmarcwatch.prom", dir);
	struct dw_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.db_path = db;
	cfg.metrics_file = path;

	struct dw_metrics *m = NULL;
	is_int(dw_metrics_new(&cfg, &m, err, sizeof err), DW_OK, "file: new");
	ok(m != NULL, "file: a metrics handle");
	is_int(dw_metrics_port(m), 0, "file: no port without metrics_listen");

	/* A restrictive umask must not make the file unreadable to a collector. */
	mode_t old_umask = umask(077);
	struct reader rd = {.path = path};
	pthread_t th;
	pthread_create(&th, NULL, reader_main, &rd);
	int failed = 0;
	for (int i = 0; i < 300; i++)
		if (dw_metrics_update(m, T0 + i, err, sizeof err) != DW_OK && failed++ == 0)
			diag("update %d: %s", i, err);
	atomic_store(&rd.stop, 1);
	pthread_join(th, NULL);
	umask(old_umask);
	is_int(failed, 0, "file: 300 updates");
	ok(rd.reads > 0, "file: the reader read it %d times meanwhile", rd.reads);
	is_int(rd.bad, 0, "file: never seen half written (only whole renderings)");

	char *got = slurp(path, NULL);
	char *want = expected(T0 + 299);
	ok(got != NULL && strcmp(got, want) == 0, "file: holds the last rendering");
	free(got);
	free(want);
	struct stat st;
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644, "file: mode 0644 (umask 077 in force)");
	/* No temporary file left behind. */
	DIR *d = opendir(dir);
	int others = 0;
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && strcmp(e->d_name, "dmarcwatch.prom") != 0) {
			diag("left behind: %s", e->d_name);
			others++;
		}
	if (d != NULL)
		closedir(d);
	is_int(others, 0, "file: no temporary file left in the directory");
	dw_metrics_free(m);

	/* The directory went away: the update fails and says where. */
	unlink(path);
	rmdir(dir);
	m = NULL;
	dw_metrics_new(&cfg, &m, err, sizeof err);
	char *msg = xasprintf("metrics_file %s: cannot create a temporary file in %s: No such file or directory", path,
	                      dir);
	is_int(dw_metrics_update(m, T0, err, sizeof err), DW_E_SYS, "file: a missing directory fails the update");
	is_str(err, msg, "file: the message names the file and the directory");
	free(msg);
	dw_metrics_free(m);

	/* Neither key: no handle, and NULL is accepted everywhere. */
	cfg.metrics_file = NULL;
	m = (struct dw_metrics *)&cfg;
	is_int(dw_metrics_new(&cfg, &m, err, sizeof err), DW_OK, "off: new");
	ok(m == NULL, "off: NULL handle");
	is_int(dw_metrics_update(NULL, T0, err, sizeof err), DW_OK, "off: update(NULL)");
	is_int(dw_metrics_port(NULL), 0, "off: port(NULL)");
	dw_metrics_free(NULL);
	free(path);
	free(dir);
}

/* ------------------------------------------------------------------ */
/* The listener                                                        */

static int
connect_to(int family, unsigned port)
{
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		a->sin6_addr = in6addr_loopback;
		len = sizeof *a;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Everything the server sends until it closes (at most 15 s). */
static char *
read_all(int fd, size_t *lenp)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = xmalloc(cap);
	double end = now_s() + 15;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)((end - now_s()) * 1000);
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* One request on a fresh connection; the whole answer, or NULL. */
static char *
http_fam(int family, unsigned port, const char *req, size_t reqlen, size_t *lenp)
{
	int fd = connect_to(family, port);
	if (fd < 0)
		return NULL;
	if (send(fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
		close(fd);
		return NULL;
	}
	char *r = read_all(fd, lenp);
	close(fd);
	return r;
}

static char *
http(unsigned port, const char *req)
{
	return http_fam(AF_INET, port, req, strlen(req), NULL);
}

static const char *
body_of(const char *resp)
{
	const char *b = resp != NULL ? strstr(resp, "\r\n\r\n") : NULL;
	return b != NULL ? b + 4 : "";
}

static int
starts(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int
has_header(const char *resp, const char *line)
{
	char *want = xasprintf("\r\n%s\r\n", line);
	const char *end = resp != NULL ? strstr(resp, "\r\n\r\n") : NULL;
	const char *at = resp != NULL ? strstr(resp, want) : NULL;
	free(want);
	return at != NULL && end != NULL && at <= end;
}

struct dribble {
	unsigned port;
	int fd;
};

/* Send a request one byte every 0.4 s: the whole thing would take 8 s. */
static void *
dribble_main(void *arg)
{
	struct dribble *d = arg;
	const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
	for (const char *p = req; *p != '\0'; p++) {
		if (send(d->fd, p, 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(400000);
	}
	return NULL;
}

static void
test_listener(char *db)
{
	char err[512] = "";
	struct dw_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.db_path = db;
	cfg.metrics_listen = "127.0.0.1:0";
	struct dw_metrics *m = NULL;
	is_int(dw_metrics_new(&cfg, &m, err, sizeof err), DW_OK, "listen: new on 127.0.0.1:0");
	if (m == NULL) {
		diag("%s", err);
		return;
	}
	unsigned port = dw_metrics_port(m);
	ok(port > 0, "listen: bound to port %u", port);

	char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 503 "), "listen: 503 before the first update");
	free(r);

	is_int(dw_metrics_update(m, T0 + 7, err, sizeof err), DW_OK, "listen: update");
	char *want = expected(T0 + 7);
	size_t len = 0;
	const char *get = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.45\r\n"
	                  "Accept: text/plain\r\n\r\n";
	r = http_fam(AF_INET, port, get, strlen(get), &len);
	ok(starts(r, "HTTP/1.0 200 OK\r\n"), "GET: 200");
	ok(has_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), "GET: the 0.0.4 content type");
	char *cl = xasprintf("Content-Length: %zu", strlen(want));
	ok(has_header(r, cl), "GET: %s", cl);
	is_str(body_of(r), want, "GET: the body is the rendering");
	free(r);

	r = http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 200 OK\r\n"), "HEAD: 200");
	ok(has_header(r, cl), "HEAD: the same Content-Length");
	is_str(body_of(r), "", "HEAD: no body");
	free(r);
	free(cl);

	r = http(port, "GET /metrics?name[]=x HTTP/1.0\n\n");
	ok(starts(r, "HTTP/1.0 200 OK\r\n") && strcmp(body_of(r), want) == 0,
	   "GET: a query string and bare line feeds are fine");
	free(r);

	r = http(port, "GET / HTTP/1.0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 404 Not Found\r\n"), "GET /: 404");
	is_str(body_of(r), "not found: the figures are at /metrics\n", "GET /: says where to look");
	free(r);
	r = http(port, "GET /metricsx HTTP/1.0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 404 "), "GET /metricsx: 404");
	free(r);

	r = http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 405 Method Not Allowed\r\n"), "POST: 405");
	ok(has_header(r, "Allow: GET, HEAD"), "POST: Allow: GET, HEAD");
	free(r);
	r = http(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
	ok(starts(r, "HTTP/1.0 405 "), "DELETE: 405");
	free(r);

	r = http(port, "HELLO\r\n\r\n");
	ok(starts(r, "HTTP/1.0 400 "), "garbage: 400");
	free(r);
	char big[9000];
	memset(big, 'A', sizeof big);
	memcpy(big, "GET /", 5);
	r = http_fam(AF_INET, port, big, sizeof big, NULL);
	ok(starts(r, "HTTP/1.0 400 Bad Request\r\n"), "an oversized request: 400");
	is_str(body_of(r), "bad request: request too large\n", "an oversized request: says so");
	free(r);
	char nul[] = "GET /metrics\0 HTTP/1.0\r\n\r\n";
	r = http_fam(AF_INET, port, nul, sizeof nul - 1, NULL);
	ok(starts(r, "HTTP/1.0 400 "), "a NUL byte: 400");
	free(r);

	/* A client that connects and says nothing holds the next one at most
	 * for the 5 s timeout, then gets 408 itself. */
	int silent = connect_to(AF_INET, port);
	ok(silent >= 0, "silent: connected");
	usleep(100000); /* let the server take it first */
	double t = now_s();
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	double took = now_s() - t;
	ok(starts(r, "HTTP/1.0 200 OK\r\n") && strcmp(body_of(r), want) == 0, "silent: the next client is answered");
	ok(took < 7.0, "silent: ... within the timeout (%.1f s)", took);
	diag("the second client waited %.2f s", took);
	free(r);
	r = read_all(silent, NULL);
	ok(starts(r, "HTTP/1.0 408 "), "silent: it got 408 Request Timeout");
	free(r);
	close(silent);

	/* Dribbling a byte at a time does not stretch the deadline. */
	struct dribble dr = {port, connect_to(AF_INET, port)};
	pthread_t th;
	pthread_create(&th, NULL, dribble_main, &dr);
	usleep(100000);
	t = now_s();
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	took = now_s() - t;
	ok(starts(r, "HTTP/1.0 200 OK\r\n"), "dribble: the next client is answered");
	ok(took < 7.0, "dribble: ... within the timeout (%.1f s)", took);
	free(r);
	r = read_all(dr.fd, NULL);
	ok(starts(r, "HTTP/1.0 408 "), "dribble: it got 408 after 5 s, not the figures");
	free(r);
	pthread_join(th, NULL);
	close(dr.fd);

	/* A newer update is what the next scrape sees. */
	dw_metrics_update(m, T0 + 8, err, sizeof err);
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	ok(strstr(body_of(r), "dmarcwatch_metrics_generated_timestamp_seconds 1700000008\n") != NULL,
	   "GET: the latest snapshot is served");
	free(r);

	/* The port is taken: a second listener fails and names the address. */
	char spec[64];
	snprintf(spec, sizeof spec, "127.0.0.1:%u", port);
	struct dw_config cfg2 = cfg;
	cfg2.metrics_listen = spec;
	struct dw_metrics *m2 = NULL;
	char *msg = xasprintf("metrics_listen %s: cannot listen: Address already in use (another program, or another "
	                      "dmarcwatch, has this port)",
	                      spec);
	is_int(dw_metrics_new(&cfg2, &m2, err, sizeof err), DW_E_SYS, "busy port: refused");
	is_str(err, msg, "busy port: the message");
	ok(m2 == NULL, "busy port: no handle");
	free(msg);
	cfg2.metrics_listen = "localhost:1";
	is_int(dw_metrics_new(&cfg2, &m2, err, sizeof err), DW_E_CONFIG, "bad address: refused");
	is_str(err,
	       "metrics_listen: \"localhost\" is not an IPv4 address (host names are not looked up; IPv6 goes in "
	       "brackets), in \"localhost:1\"",
	       "bad address: the message");

	/* Stopping does not wait for a silent client. */
	silent = connect_to(AF_INET, port);
	usleep(100000);
	t = now_s();
	dw_metrics_free(m);
	took = now_s() - t;
	ok(took < 1.0, "free: stops at once with a silent client connected (%.2f s)", took);
	close(silent);
	ok(connect_to(AF_INET, port) < 0, "free: the port is closed");
	free(want);

	/* IPv6 loopback, where the host has it. */
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int have6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
	if (probe >= 0)
		close(probe);
	if (!have6) {
		ok(1, "# SKIP no IPv6 loopback here");
		return;
	}
	cfg.metrics_listen = "[::1]:0";
	m = NULL;
	is_int(dw_metrics_new(&cfg, &m, err, sizeof err), DW_OK, "ipv6: new on [::1]:0");
	dw_metrics_update(m, T0, err, sizeof err);
	const char *g6 = "GET /metrics HTTP/1.0\r\n\r\n";
	r = http_fam(AF_INET6, dw_metrics_port(m), g6, strlen(g6), NULL);
	ok(starts(r, "HTTP/1.0 200 OK\r\n"), "ipv6: GET over [::1]");
	free(r);
	dw_metrics_free(m);
}

int
main(void)
{
	strcpy(tmpdir, "/tmp/dw-test-metrics-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	char *db = xasprintf("%s/dmarcwatch.db", tmpdir);
	build_db(db);
	test_render(db);
	test_old_and_broken();
	test_file(db);
	test_listener(db);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("cannot remove %s", tmpdir);
	free(cmd);
	free(db);
	return done_testing();
}
