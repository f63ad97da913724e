/*
 * metrics.c - the agent's figures in Prometheus text format. See dw/metrics.h.
 *
 * Every update opens the database read-only (its own connection, so the
 * agent's store is never touched), reads every figure inside one read
 * transaction so they agree with each other, and renders exposition format
 * 0.0.4. A table an older database lacks leaves its families out; any
 * other database error fails the update and the previous snapshot stays
 * published (dmarcwatch_metrics_generated_timestamp_seconds shows its age).
 *
 * Invalid report mail is counted by a reason class, not by the reason
 * text: the text names attachment files and members chosen by whoever sent
 * the mail, so it would give every bad mail its own series. The classes
 * are a fixed list matched on the wording our own stages use (see
 * reason_class()); anything unrecognised is "other".
 *
 * The HTTP side is a single thread: poll() on the listening socket and a
 * stop pipe, then one connection at a time, each with a 5 s deadline to
 * send its request and 5 s to take the answer. The thread never touches
 * the database; it serves a copy of the latest rendered text.
 */
/* accept4, pipe2, mkostemp: descriptors born close-on-exec, so a process
 * a notifier starts meanwhile never inherits them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dw/metrics.h"
#include "dw/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#ifndef DW_VERSION
#define DW_VERSION "unknown"
#endif

#define BUSY_MS 2000             /* waiting for a writer's lock, per statement */
#define CONN_TIMEOUT_MS 5000     /* a client's time to send its request, and to read the answer */
#define REQUEST_MAX 8192         /* request line and headers together */

/* ------------------------------------------------------------------ */
/* metrics_listen: "A.B.C.D:PORT" or "[IPv6]:PORT"                     */

static int
parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *p, *hs;
	size_t hl;
	int family;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (close == NULL || close[1] != ':')
			return dw_err(err, errlen, DW_E_CONFIG, "expected [IPv6 ADDRESS]:PORT, like [::1]:9119, got \"%s\"",
			              spec);
		hs = spec + 1;
		hl = (size_t)(close - hs);
		p = close + 2;
		family = AF_INET6;
	} else {
		const char *colon = strrchr(spec, ':');
		if (colon == NULL)
			return dw_err(err, errlen, DW_E_CONFIG,
			              "expected ADDRESS:PORT, like 127.0.0.1:9119 or [::1]:9119, got \"%s\"", spec);
		if (memchr(spec, ':', (size_t)(colon - spec)) != NULL)
			return dw_err(err, errlen, DW_E_CONFIG,
			              "an IPv6 address goes in brackets, like [::1]:9119, got \"%s\"", spec);
		hs = spec;
		hl = (size_t)(colon - spec);
		p = colon + 1;
		family = AF_INET;
	}
	if (hl == 0)
		return dw_err(err, errlen, DW_E_CONFIG,
		              "no address before the port in \"%s\" (to listen on every interface say so: 0.0.0.0:PORT "
		              "or [::]:PORT)",
		              spec);
	int bad = hl >= sizeof host;
	if (!bad) {
		memcpy(host, hs, hl);
		host[hl] = '\0';
	}
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (!bad)
		bad = family == AF_INET ? inet_pton(AF_INET, host, &v4->sin_addr) != 1
		                        : inet_pton(AF_INET6, host, &v6->sin6_addr) != 1;
	if (bad)
		return dw_err(err, errlen, DW_E_CONFIG,
		              family == AF_INET ? "\"%.*s\" is not an IPv4 address (host names are not looked up; "
		                                  "IPv6 goes in brackets), in \"%s\""
		                                : "\"%.*s\" is not an IPv6 address, in \"%s\"",
		              (int)(hl > 64 ? 64 : hl), hs, spec);
	unsigned long port = 0;
	size_t nd = 0;
	for (; p[nd] >= '0' && p[nd] <= '9' && nd < 6; nd++)
		port = port * 10 + (unsigned long)(p[nd] - '0');
	if (nd == 0 || p[nd] != '\0' || port > 65535)
		return dw_err(err, errlen, DW_E_CONFIG, "the port must be a number from 0 to 65535, got \"%s\" in \"%s\"",
		              p, spec);
	if (family == AF_INET) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*sslen = sizeof *v4;
	} else {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof *v6;
	}
	return DW_OK;
}

int
dw_metrics_check_listen(const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return parse_listen(spec, &ss, &len, err, errlen);
}

/* ------------------------------------------------------------------ */
/* The text                                                            */

struct out {
	char *p;
	size_t len, cap;
};

static void
out_grow(struct out *o, size_t need)
{
	if (o->len + need + 1 <= o->cap)
		return;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + need + 1)
		cap *= 2;
	o->p = xrealloc(o->p, cap);
	o->cap = cap;
}

DW_PRINTF(2, 3) static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	out_grow(o, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

static void
out_char(struct out *o, char c)
{
	out_grow(o, 1);
	o->p[o->len++] = c;
	o->p[o->len] = '\0';
}

/*
 * Escape for the exposition format: in label values backslash, double
 * quote and line feed; in HELP text backslash and line feed only.
 */
static void
out_escaped(struct out *o, const char *s, int quote_too)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\') {
			out_char(o, '\\');
			out_char(o, '\\');
		} else if (*s == '\n') {
			out_char(o, '\\');
			out_char(o, 'n');
		} else if (*s == '"' && quote_too) {
			out_char(o, '\\');
			out_char(o, '"');
		} else {
			out_char(o, *s);
		}
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s ", name);
	out_escaped(o, help, 0);
	out_printf(o, "\n# TYPE %s %s\n", name, type);
}

/* One sample: name{k1="v1",k2="v2"} value; k2 may be NULL, k1 too. */
static void
sample(struct out *o, const char *name, const char *k1, const char *v1, const char *k2, const char *v2, int64_t value)
{
	out_printf(o, "%s", name);
	if (k1 != NULL) {
		out_printf(o, "{%s=\"", k1);
		out_escaped(o, v1 != NULL ? v1 : "", 1);
		out_char(o, '"');
		if (k2 != NULL) {
			out_printf(o, ",%s=\"", k2);
			out_escaped(o, v2 != NULL ? v2 : "", 1);
			out_char(o, '"');
		}
		out_char(o, '}');
	}
	out_printf(o, " %" PRId64 "\n", value);
}

/* ------------------------------------------------------------------ */
/* Reading the database                                                */

struct rd {
	sqlite3 *db;
	const char *path;
	char *err;
	size_t errlen;
};

/* 1: ready; 0: a table it reads does not exist (an older database: leave
 * the family out); -1: an error, in r->err. */
static int
prep(struct rd *r, const char *sql, sqlite3_stmt **st)
{
	*st = NULL;
	if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) == SQLITE_OK)
		return 1;
	const char *msg = sqlite3_errmsg(r->db);
	if (strncmp(msg, "no such table", 13) == 0)
		return 0;
	dw_err(r->err, r->errlen, DW_E_STORE, "metrics: database %s: %s", r->path, msg);
	return -1;
}

/* After the last sqlite3_step: DW_OK when it ended well. */
static int
done(struct rd *r, sqlite3_stmt *st, int step)
{
	int rc = DW_OK;
	if (step != SQLITE_DONE)
		rc = dw_err(r->err, r->errlen, DW_E_STORE, "metrics: database %s: %s", r->path, sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	return rc;
}

/* One number from a query: 1 read, 0 table missing, -1 error. A NULL
 * result (MAX of nothing) reads as 0 and sets *null. */
static int
one_int(struct rd *r, const char *sql, int64_t *v, int *null)
{
	sqlite3_stmt *st;
	int p = prep(r, sql, &st);
	if (p <= 0)
		return p;
	int s = sqlite3_step(st);
	*v = 0;
	if (null != NULL)
		*null = 1;
	if (s == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
			*v = sqlite3_column_int64(st, 0);
			if (null != NULL)
				*null = 0;
		}
		s = sqlite3_step(st);
	}
	return done(r, st, s) == DW_OK ? 1 : -1;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? (const char *)t : "";
}

/* (a, b) -> n pairs, in the order read. */
struct pair {
	char *a, *b;
	int64_t n;
};
struct pairs {
	struct pair *v;
	size_t n, cap;
};

static void
pairs_add(struct pairs *p, const char *a, const char *b, int64_t n)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->v = xreallocarray(p->v, p->cap, sizeof *p->v);
	}
	p->v[p->n++] = (struct pair){xstrdup(a), xstrdup(b), n};
}

static int64_t
pairs_get(const struct pairs *p, const char *a, const char *b, int *found)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].a, a) == 0 && strcmp(p->v[i].b, b) == 0) {
			if (found != NULL)
				*found = 1;
			return p->v[i].n;
		}
	if (found != NULL)
		*found = 0;
	return 0;
}

static void
pairs_free(struct pairs *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].a);
		free(p->v[i].b);
	}
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Read "SELECT a, b, n ..." (b may be absent: two columns) into p. */
static int
read_pairs(struct rd *r, const char *sql, struct pairs *p)
{
	sqlite3_stmt *st;
	int rc = prep(r, sql, &st);
	if (rc <= 0)
		return rc;
	int two = sqlite3_column_count(st) == 2;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		pairs_add(p, col_text(st, 0), two ? "" : col_text(st, 1), sqlite3_column_int64(st, two ? 1 : 2));
	return done(r, st, s) == DW_OK ? 1 : -1;
}

/* Distinct first members of p (and of q when not NULL), sorted. */
static int
str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static size_t
keys_of(const struct pairs *p, const struct pairs *q, const char ***out)
{
	size_t n = 0, cap = p->n + (q != NULL ? q->n : 0);
	const char **v = xcalloc(cap ? cap : 1, sizeof *v);
	for (size_t i = 0; i < p->n; i++)
		v[n++] = p->v[i].a;
	for (size_t i = 0; q != NULL && i < q->n; i++)
		v[n++] = q->v[i].a;
	qsort(v, n, sizeof *v, str_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
			v[u++] = v[i];
	*out = v;
	return u;
}

static const char *const verdicts[] = {"stored", "duplicate", "not-a-report", "invalid", "untrusted", NULL};
static const char *const outbox_states[] = {"pending", "delivered", "dead", NULL};

static int
in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/*
 * Per account: the last clean pass, and messages by verdict. Every known
 * verdict of every account is written, zeros included, so a rate over a
 * verdict that never happened yet is 0 rather than absent.
 */
static int
fam_accounts(struct rd *r, struct out *o)
{
	struct pairs passes = {0}, msgs = {0};
	int hp = read_pairs(r, "SELECT account, last_ok FROM passes ORDER BY account", &passes);
	int hm = hp < 0 ? -1
	                : read_pairs(r, "SELECT account, verdict, COUNT(*) FROM messages GROUP BY account, verdict"
	                                " ORDER BY account, verdict",
	                             &msgs);
	if (hm < 0) {
		pairs_free(&passes);
		pairs_free(&msgs);
		return DW_E_STORE;
	}
	if (hp > 0) {
		family(o, "dmarcwatch_last_successful_pass_timestamp_seconds", "gauge",
		       "When the account's last pass over its folder ended without error (seconds since the epoch).");
		for (size_t i = 0; i < passes.n; i++)
			sample(o, "dmarcwatch_last_successful_pass_timestamp_seconds", "account", passes.v[i].a, NULL, NULL,
			       passes.v[i].n);
	}
	if (hm > 0) {
		const char **acc;
		size_t nacc = keys_of(&msgs, hp > 0 ? &passes : NULL, &acc);
		family(o, "dmarcwatch_messages_total", "counter",
		       "Report mails judged, by account and verdict (stored, duplicate, not-a-report, invalid, "
		       "untrusted).");
		for (size_t i = 0; i < nacc; i++) {
			for (size_t k = 0; verdicts[k] != NULL; k++)
				sample(o, "dmarcwatch_messages_total", "account", acc[i], "verdict", verdicts[k],
				       pairs_get(&msgs, acc[i], verdicts[k], NULL));
			for (size_t k = 0; k < msgs.n; k++) /* a verdict this version does not know */
				if (strcmp(msgs.v[k].a, acc[i]) == 0 && !in_list(verdicts, msgs.v[k].b))
					sample(o, "dmarcwatch_messages_total", "account", acc[i], "verdict", msgs.v[k].b,
					       msgs.v[k].n);
		}
		free(acc);
	}
	pairs_free(&passes);
	pairs_free(&msgs);
	return DW_OK;
}

/*
 * The class of an invalid verdict's reason. The reason starts with where
 * in the mail it happened ("part 2 (x.zip), member a.xml: "), which the
 * sender chose, so the phrases matched are our own stages' wording
 * (mime.c, unpack.c, report.c, ingest.c, agent.c), tried in this order.
 */
static const struct {
	const char *cls;
	const char *phrase[10];
} reason_classes[] = {
    /* a configured cap: size, ratio, zip entries, nesting, records */
    {"limit", {"(limits.", "holds more than", "nested too deep", "nested more than", NULL}},
    {"xml", {"malformed XML", "DOCTYPE not allowed", "entity reference", "XML parser", "empty document", NULL}},
    {"bad_value", {"> is ", NULL}},
    {"not_dmarc", {"not a DMARC aggregate report", "not a usable DMARC report", "JSON document", NULL}},
    {"archive",
     {"gzip data", "gzip:", "CRC mismatch", "zip archive", "zip: ", "unreadable: ", "encrypted: refused",
      "compression method", "unknown payload kind", NULL}},
    {"mime", {"MIME", "empty message", "e-mail message", NULL}},
    {"no_report", {"no report could be read", NULL}},
};
#define NCLASSES (sizeof reason_classes / sizeof reason_classes[0])

static size_t
reason_class(const char *reason)
{
	for (size_t c = 0; reason != NULL && c < NCLASSES; c++)
		for (size_t i = 0; reason_classes[c].phrase[i] != NULL; i++)
			if (strstr(reason, reason_classes[c].phrase[i]) != NULL)
				return c;
	return NCLASSES; /* other */
}

static int
fam_messages(struct rd *r, struct out *o)
{
	int64_t n;
	int h = one_int(r, "SELECT COUNT(*) FROM messages WHERE verdict = 'duplicate'", &n, NULL);
	if (h < 0)
		return DW_E_STORE;
	if (h == 0)
		return DW_OK;
	family(o, "dmarcwatch_duplicate_messages_total", "counter",
	       "Report mails whose reports were all stored before (verdict duplicate), every account.");
	sample(o, "dmarcwatch_duplicate_messages_total", NULL, NULL, NULL, NULL, n);

	sqlite3_stmt *st;
	if (prep(r, "SELECT reason, COUNT(*) FROM messages WHERE verdict = 'invalid' GROUP BY reason", &st) <= 0)
		return DW_E_STORE;
	int64_t by[NCLASSES + 1] = {0};
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		by[reason_class((const char *)sqlite3_column_text(st, 0))] += sqlite3_column_int64(st, 1);
	if (done(r, st, s) != DW_OK)
		return DW_E_STORE;
	family(o, "dmarcwatch_parse_errors_total", "counter",
	       "Report mails refused as invalid, by reason class: limit (a limits: cap), xml, bad_value, not_dmarc, "
	       "archive (gzip/zip), mime, no_report, other.");
	for (size_t c = 0; c <= NCLASSES; c++)
		sample(o, "dmarcwatch_parse_errors_total", "reason", c < NCLASSES ? reason_classes[c].cls : "other", NULL,
		       NULL, by[c]);
	return DW_OK;
}

static int
fam_reports(struct rd *r, struct out *o)
{
	int64_t n;
	int h = one_int(r, "SELECT COUNT(*) FROM reports WHERE superseded_by IS NULL AND hash IS NOT NULL", &n, NULL);
	if (h < 0)
		return DW_E_STORE;
	if (h > 0) {
		family(o, "dmarcwatch_reports_stored", "gauge",
		       "DMARC aggregate reports in the database; a revised report counts once.");
		sample(o, "dmarcwatch_reports_stored", NULL, NULL, NULL, NULL, n);
	}
	return DW_OK;
}

static int
fam_outbox(struct rd *r, struct out *o)
{
	struct pairs p = {0};
	int h = read_pairs(r, "SELECT notifier, state, COUNT(*) FROM outbox GROUP BY notifier, state", &p);
	if (h > 0) {
		const char **names;
		size_t nn = keys_of(&p, NULL, &names);
		family(o, "dmarcwatch_outbox_entries", "gauge",
		       "Notifications in the outbox by notifier and state (pending, delivered, dead); delivered and "
		       "dead ones are pruned after outbox.keep.");
		for (size_t i = 0; i < nn; i++)
			for (size_t k = 0; outbox_states[k] != NULL; k++)
				sample(o, "dmarcwatch_outbox_entries", "notifier", names[i], "state", outbox_states[k],
				       pairs_get(&p, names[i], outbox_states[k], NULL));
		free(names);
		int64_t t;
		int null;
		h = one_int(r, "SELECT MAX(created_at) FROM outbox WHERE idem_key LIKE 'digest:%'", &t, &null);
		if (h > 0 && !null) {
			family(o, "dmarcwatch_last_digest_timestamp_seconds", "gauge",
			       "When the last daily digest was queued (seconds since the epoch).");
			sample(o, "dmarcwatch_last_digest_timestamp_seconds", NULL, NULL, NULL, NULL, t / 1000);
		}
	}
	pairs_free(&p);
	return h < 0 ? DW_E_STORE : DW_OK;
}

static int
fam_alerts(struct rd *r, struct out *o)
{
	struct pairs p = {0};
	int h = read_pairs(r, "SELECT rule, SUM(open != 0) FROM alerts GROUP BY rule ORDER BY rule", &p);
	if (h > 0) {
		family(o, "dmarcwatch_alerts_open", "gauge", "Open alert incidents, by rule.");
		for (size_t i = 0; i < p.n; i++)
			sample(o, "dmarcwatch_alerts_open", "rule", p.v[i].a, NULL, NULL, p.v[i].n);
	}
	pairs_free(&p);
	return h < 0 ? DW_E_STORE : DW_OK;
}

int
dw_metrics_render(const char *db_path, int64_t now, char **out, char *err, size_t errlen)
{
	*out = NULL;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		int rc = dw_err(err, errlen, DW_E_STORE, "metrics: cannot open the database %s: %s", db_path,
		                db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, BUSY_MS);
	struct rd r = {db, db_path, err, errlen};
	struct out o = {0};
	int rc = DW_OK;
	/* One read transaction: every figure comes from the same moment. */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		rc = dw_err(err, errlen, DW_E_STORE, "metrics: database %s: %s", db_path, sqlite3_errmsg(db));

	family(&o, "dmarcwatch_build_info", "gauge", "The dmarcwatch version; the value is always 1.");
	out_printf(&o, "dmarcwatch_build_info{version=\"");
	out_escaped(&o, DW_VERSION, 1);
	out_printf(&o, "\"} 1\n");
	family(&o, "dmarcwatch_metrics_generated_timestamp_seconds", "gauge",
	       "When these figures were read from the database (seconds since the epoch).");
	sample(&o, "dmarcwatch_metrics_generated_timestamp_seconds", NULL, NULL, NULL, NULL, now);
	if (rc == DW_OK)
		rc = fam_accounts(&r, &o);
	if (rc == DW_OK)
		rc = fam_messages(&r, &o);
	if (rc == DW_OK)
		rc = fam_reports(&r, &o);
	if (rc == DW_OK)
		rc = fam_outbox(&r, &o);
	if (rc == DW_OK)
		rc = fam_alerts(&r, &o);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	if (rc != DW_OK) {
		free(o.p);
		return rc;
	}
	*out = o.p;
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* metrics_file                                                        */

/*
 * Replace path with text atomically: a temporary file in the same
 * directory (a dot file without .prom, which the textfile collector
 * ignores), written, fsync()ed, given mode 0644 and renamed over path; then
 * the directory is synced so the rename survives a crash.
 */
static int
write_atomic(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? xstrdup(".") : slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	const char *base = slash == NULL ? path : slash + 1;
	char *tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
	int rc = DW_OK;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "metrics_file %s: cannot create a temporary file in %s: %s", path, dir,
		            strerror(errno));
		goto out;
	}
	const char *what = NULL;
	if (fchmod(fd, 0644) != 0)
		what = "cannot set its mode";
	else if (dw_write_all(fd, text, len) != 0)
		what = "cannot write";
	else if (fsync(fd) != 0)
		what = "cannot sync";
	if (what != NULL) {
		rc = dw_err(err, errlen, DW_E_SYS, "metrics_file %s: %s %s: %s", path, what, tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "metrics_file %s: cannot write %s: %s", path, tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "metrics_file %s: cannot rename %s over it: %s", path, tmp,
		            strerror(errno));
		unlink(tmp);
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	free(tmp);
	free(dir);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The HTTP listener                                                   */

struct dw_metrics {
	const struct dw_config *cfg;  /* borrowed */
	int lfd;                      /* listening socket, -1 when none */
	int stop[2];                  /* written to stop the thread */
	unsigned port;
	pthread_t th;
	int running;
	pthread_mutex_t mu;
	char *snap;                   /* the latest text, under mu; NULL before the first update */
	size_t snaplen;
};

/* Wait for fd (events) or the stop pipe until deadline (monotonic ms).
 * 1: ready; 0: time is up; -1: stopping. */
static int
wait_fd(struct dw_metrics *m, int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - dw_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = m->stop[0], .events = POLLIN}};
		int r = poll(p, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents != 0)
			return -1;
		if (r > 0)
			return 1;
	}
}

static void
send_all(struct dw_metrics *m, int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			buf += w;
			len -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(m, fd, POLLOUT, deadline) != 1)
				return;
		} else {
			return;
		}
	}
}

static void
respond(struct dw_metrics *m, int fd, const char *status, const char *extra, const char *body, size_t len,
        int head)
{
	char hdr[512];
	int n = snprintf(hdr, sizeof hdr,
	                 "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	                 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
	                 status, len, extra);
	int64_t deadline = dw_mono_ms() + CONN_TIMEOUT_MS;
	send_all(m, fd, hdr, (size_t)n, deadline);
	if (!head)
		send_all(m, fd, body, len, deadline);
}

static void
respond_text(struct dw_metrics *m, int fd, const char *status, const char *extra, const char *body, int head)
{
	respond(m, fd, status, extra, body, strlen(body), head);
}

/* Answer one parsed request line: METHOD TARGET HTTP/x.y. */
static void
answer(struct dw_metrics *m, int fd, char *line)
{
	char *method = line, *target = NULL, *version = NULL, *p;
	if ((p = strchr(method, ' ')) != NULL) {
		*p = '\0';
		target = p + 1;
		if ((p = strchr(target, ' ')) != NULL) {
			*p = '\0';
			version = p + 1;
		}
	}
	if (target == NULL || version == NULL || method[0] == '\0' || target[0] == '\0' ||
	    strncmp(version, "HTTP/", 5) != 0 || strchr(version, ' ') != NULL) {
		respond_text(m, fd, "400 Bad Request", "", "bad request: expected \"GET /metrics HTTP/1.0\"\n", 0);
		return;
	}
	int head = strcmp(method, "HEAD") == 0;
	size_t tl = strcspn(target, "?");
	if (tl != 8 || strncmp(target, "/metrics", 8) != 0) {
		respond_text(m, fd, "404 Not Found", "", "not found: the figures are at /metrics\n", head);
		return;
	}
	if (!head && strcmp(method, "GET") != 0) {
		respond_text(m, fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
		             "method not allowed: use GET or HEAD\n", 0);
		return;
	}
	pthread_mutex_lock(&m->mu);
	char *copy = m->snap != NULL ? xstrndup(m->snap, m->snaplen) : NULL;
	size_t len = m->snaplen;
	pthread_mutex_unlock(&m->mu);
	if (copy == NULL)
		respond_text(m, fd, "503 Service Unavailable", "Retry-After: 60\r\n",
		             "no figures yet: the agent has not finished its first pass\n", head);
	else
		respond(m, fd, "200 OK", "", copy, len, head);
	free(copy);
}

/* One connection: read up to the end of the headers (so closing does not
 * reset the connection under the answer), within the deadline. */
static void
serve_one(struct dw_metrics *m, int fd)
{
	char buf[REQUEST_MAX + 1];
	size_t len = 0;
	int64_t deadline = dw_mono_ms() + CONN_TIMEOUT_MS;
	int eof = 0;
	for (;;) {
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
			break;
		if (len == REQUEST_MAX) {
			respond_text(m, fd, "400 Bad Request", "", "bad request: request too large\n", 0);
			return;
		}
		ssize_t r = recv(fd, buf + len, REQUEST_MAX - len, MSG_DONTWAIT);
		if (r > 0) {
			/* A NUL would hide the rest from the string functions below. */
			if (memchr(buf + len, '\0', (size_t)r) != NULL) {
				respond_text(m, fd, "400 Bad Request", "", "bad request: a NUL byte in the request\n", 0);
				return;
			}
			len += (size_t)r;
			continue;
		}
		if (r == 0) {
			eof = 1;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return;
		int w = wait_fd(m, fd, POLLIN, deadline);
		if (w < 0)
			return;
		if (w == 0) {
			respond_text(m, fd, "408 Request Timeout", "", "request timeout\n", 0);
			return;
		}
	}
	char *nl = memchr(buf, '\n', len);
	if (nl == NULL) {
		if (eof && len > 0)
			respond_text(m, fd, "400 Bad Request", "", "bad request: no request line\n", 0);
		return;
	}
	size_t ll = (size_t)(nl - buf);
	if (ll > 0 && buf[ll - 1] == '\r')
		ll--;
	buf[ll] = '\0';
	answer(m, fd, buf);
}

static void *
listener_main(void *arg)
{
	struct dw_metrics *m = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = m->lfd, .events = POLLIN}, {.fd = m->stop[0], .events = POLLIN}};
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents != 0)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: do not spin on a listening socket that
			 * stays readable; try again in a moment. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				struct pollfd s = {.fd = m->stop[0], .events = POLLIN};
				if (poll(&s, 1, 100) > 0)
					break;
			}
			continue;
		}
		serve_one(m, fd);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

static int
listen_start(struct dw_metrics *m, const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[256];
	if (parse_listen(spec, &ss, &sl, why, sizeof why) != DW_OK)
		return dw_err(err, errlen, DW_E_CONFIG, "metrics_listen: %s", why);
	m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->lfd < 0)
		return dw_err(err, errlen, DW_E_SYS, "metrics_listen %s: cannot create a socket: %s", spec,
		              strerror(errno));
	int one = 1;
	(void)setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(m->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(m->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(m->lfd, 16) != 0)
		return dw_err(err, errlen, DW_E_SYS, "metrics_listen %s: cannot listen: %s%s", spec, strerror(errno),
		              errno == EADDRINUSE ? " (another program, or another dmarcwatch, has this port)" : "");
	struct sockaddr_storage bound;
	socklen_t bl = sizeof bound;
	if (getsockname(m->lfd, (struct sockaddr *)&bound, &bl) == 0)
		m->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
		                                           : ((struct sockaddr_in6 *)&bound)->sin6_port);
	if (pipe2(m->stop, O_CLOEXEC) != 0)
		return dw_err(err, errlen, DW_E_SYS, "metrics_listen: cannot create a pipe: %s", strerror(errno));
	/* Signals belong to the main thread: block them in the listener. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int e = pthread_create(&m->th, NULL, listener_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		return dw_err(err, errlen, DW_E_SYS, "metrics_listen: cannot start the listener thread: %s", strerror(e));
	m->running = 1;
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

int
dw_metrics_new(const struct dw_config *cfg, struct dw_metrics **out, char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->metrics_file == NULL && cfg->metrics_listen == NULL)
		return DW_OK;
	struct dw_metrics *m = xcalloc(1, sizeof *m);
	m->cfg = cfg;
	m->lfd = -1;
	m->stop[0] = m->stop[1] = -1;
	pthread_mutex_init(&m->mu, NULL);
	if (cfg->metrics_listen != NULL) {
		int rc = listen_start(m, cfg->metrics_listen, err, errlen);
		if (rc != DW_OK) {
			dw_metrics_free(m);
			return rc;
		}
	}
	*out = m;
	return DW_OK;
}

int
dw_metrics_update(struct dw_metrics *m, int64_t now, char *err, size_t errlen)
{
	if (m == NULL)
		return DW_OK;
	char *text = NULL;
	int rc = dw_metrics_render(m->cfg->db_path, now, &text, err, errlen);
	if (rc != DW_OK)
		return rc;
	size_t len = strlen(text);
	if (m->cfg->metrics_file != NULL)
		rc = write_atomic(m->cfg->metrics_file, text, len, err, errlen);
	if (m->running) {
		pthread_mutex_lock(&m->mu);
		char *old = m->snap;
		m->snap = text;
		m->snaplen = len;
		pthread_mutex_unlock(&m->mu);
		free(old);
	} else {
		free(text);
	}
	return rc;
}

unsigned
dw_metrics_port(const struct dw_metrics *m)
{
	return m != NULL ? m->port : 0;
}

void
dw_metrics_free(struct dw_metrics *m)
{
	if (m == NULL)
		return;
	if (m->running) {
		ssize_t w;
		do
			w = write(m->stop[1], "x", 1);
		while (w < 0 && errno == EINTR);
		pthread_join(m->th, NULL);
	}
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->stop[0] >= 0)
		close(m->stop[0]);
	if (m->stop[1] >= 0)
		close(m->stop[1]);
	pthread_mutex_destroy(&m->mu);
	free(m->snap);
	free(m);
}
