/*
 * store.c - stage 4: the SQLite store. See dw/store.h for the contract.
 *
 * Layout: one `reports` row per stored report (a revision gets a new row and
 * the old one points to it with superseded_by), its `records` folded by a
 * key hashed over every field but the count, and `provenance` rows saying
 * where each report came from. Every statement uses bound parameters; the
 * hot ones are prepared once per store and reused.
 *
 * Deduplication hashes each record's canonical serialisation with SHA-256
 * and adds the digests as 256-bit integers modulo 2^256: the sum does not
 * depend on record order, and unlike XOR two identical records do not
 * cancel. The report hash covers the key and policy fields, that sum and
 * the number of records.
 *
 * Records are not written one by one as they arrive: they wait in a bounded
 * batch, sorted by fold key before the upsert (see flush_records), because
 * random-order inserts into the fold index dominated the import time. A
 * duplicate report is recognised at end() and its last batch never written.
 *
 * What it does not do: parse XML (report.c) or think about days (days.c).
 */
#include "dw/store.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HASH_LEN 32

/*
 * Schema migrations, applied in order to bring user_version up to the last
 * entry. Never edit a released entry: append a new version instead.
 */
struct migration {
	int version;
	const char *sql;
};

static const struct migration migrations[] = {
	{1,
	 "CREATE TABLE reports ("
	 " id INTEGER PRIMARY KEY,"
	 " schema INTEGER,"             /* 1 = RFC 7489, 2 = RFC 9990 */
	 " version TEXT,"
	 " org_name TEXT,"
	 " email TEXT,"
	 " extra_contact_info TEXT,"
	 " report_id TEXT,"
	 " generator TEXT,"
	 " errors TEXT,"                /* JSON array of report_metadata/error */
	 " policy_domain TEXT,"         /* lower case */
	 " \"begin\" INTEGER,"          /* seconds UTC */
	 " \"end\" INTEGER,"
	 " p TEXT, sp TEXT, np TEXT, adkim TEXT, aspf TEXT, pct INTEGER, fo TEXT,"
	 " testing TEXT, discovery_method TEXT,"
	 " quirks TEXT,"                /* JSON array of quirk tokens */
	 " hash BLOB,"                  /* SHA-256; NULL while the report is being written */
	 " messages INTEGER NOT NULL DEFAULT 0,"
	 " dmarc_fail INTEGER NOT NULL DEFAULT 0,"
	 " records INTEGER NOT NULL DEFAULT 0,"
	 " superseded_by INTEGER REFERENCES reports(id) ON DELETE SET NULL,"
	 " received INTEGER,"           /* seconds UTC, when the carrier arrived */
	 " imported_at INTEGER NOT NULL,"
	 " revision INTEGER NOT NULL DEFAULT 1"
	 ");"
	 "CREATE INDEX reports_domain_begin ON reports(policy_domain, \"begin\");"
	 "CREATE INDEX reports_key ON reports(org_name, report_id, policy_domain, \"begin\", \"end\");"
	 "CREATE TABLE records ("
	 " id INTEGER PRIMARY KEY,"
	 " report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
	 " source_ip TEXT NOT NULL,"
	 " disposition TEXT, dkim TEXT, spf TEXT,"
	 " header_from TEXT, envelope_from TEXT, envelope_to TEXT,"
	 " reasons TEXT,"               /* JSON [{type, comment}] */
	 " auth TEXT,"                  /* JSON {dkim: [...], spf: [...]} */
	 " fold_key BLOB NOT NULL,"     /* SHA-256 of every field but count */
	 " count INTEGER NOT NULL,"
	 " UNIQUE (report, fold_key)"
	 ");"
	 /* Reading a report's records in rowid order is sequential; the
	  * unique index above would visit them in random (hash) order. */
	 "CREATE INDEX records_report ON records(report);"
	 "CREATE TABLE provenance ("
	 " id INTEGER PRIMARY KEY,"
	 " report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,"
	 " kind TEXT, source TEXT, member TEXT, message_id TEXT,"
	 " uidvalidity INTEGER, uid INTEGER, received INTEGER,"
	 " imported_at INTEGER NOT NULL"
	 ");"
	 "CREATE INDEX provenance_report ON provenance(report);"},
	/* The agent's state: one checkpoint per account (the highest uid handled
	 * under a uidvalidity) and one verdict per message, with the folder it
	 * must go to and whether it got there. The move happens after the
	 * commit, so a crash in between leaves moved = 0 and the next pass
	 * moves it without counting it again. */
	{2,
	 "CREATE TABLE checkpoints ("
	 " account TEXT PRIMARY KEY,"
	 " uidvalidity INTEGER NOT NULL,"
	 " last_uid INTEGER NOT NULL,"
	 " updated_at INTEGER NOT NULL"
	 ");"
	 "CREATE TABLE messages ("
	 " account TEXT NOT NULL,"
	 " uidvalidity INTEGER NOT NULL,"
	 " uid INTEGER NOT NULL,"
	 " verdict TEXT NOT NULL,"      /* stored, duplicate, not-a-report, invalid, untrusted */
	 " reason TEXT,"
	 " message_id TEXT,"
	 " reports INTEGER NOT NULL DEFAULT 0,"
	 " folder TEXT,"                /* where it must be moved; NULL = stays */
	 " moved INTEGER NOT NULL DEFAULT 0,"
	 " received INTEGER,"           /* INTERNALDATE, seconds UTC */
	 " processed_at INTEGER NOT NULL,"
	 " PRIMARY KEY (account, uidvalidity, uid)"
	 ");"
	 "CREATE INDEX messages_pending ON messages(account, uidvalidity) WHERE moved = 0 AND folder IS NOT NULL;"},
	/* The notification outbox (outbox.c): every notification is written
	 * here before delivery; a process delivering an entry holds a lease on
	 * it (lease_until, lease_pid) so two processes never send it at once.
	 * Its times are milliseconds since the epoch (Retry-After: 2 must mean
	 * two seconds, not "the next whole second"). */
	{3,
	 "CREATE TABLE outbox ("
	 " id INTEGER PRIMARY KEY,"
	 " notifier TEXT NOT NULL,"
	 " idem_key TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " title TEXT NOT NULL,"
	 " payload TEXT NOT NULL,"      /* the notification's JSON (notification_json.h) */
	 " state TEXT NOT NULL DEFAULT 'pending'," /* pending, delivered, dead */
	 " attempts INTEGER NOT NULL DEFAULT 0,"
	 " created_at INTEGER NOT NULL,"
	 " next_at INTEGER NOT NULL,"
	 " lease_until INTEGER NOT NULL DEFAULT 0,"
	 " lease_pid INTEGER NOT NULL DEFAULT 0,"
	 " last_error TEXT,"
	 " done_at INTEGER,"
	 " UNIQUE (notifier, idem_key)"
	 ");"
	 "CREATE INDEX outbox_due ON outbox(notifier, next_at) WHERE state = 'pending';"
	 "CREATE INDEX outbox_done ON outbox(done_at) WHERE state <> 'pending';"},
	/* Alert incidents (alerts.c): one row per (rule, group); days are
	 * YYYY-MM-DD in the configured zone, last_sent seconds UTC. */
	{4,
	 "CREATE TABLE alerts ("
	 " rule TEXT NOT NULL,"
	 " grp TEXT NOT NULL,"
	 " domain TEXT NOT NULL,"
	 " open INTEGER NOT NULL,"
	 " severity INTEGER NOT NULL,"
	 " opened_day TEXT NOT NULL,"
	 " last_true_day TEXT NOT NULL,"
	 " resolved_day TEXT NOT NULL DEFAULT '',"
	 " last_sent INTEGER NOT NULL,"
	 " PRIMARY KEY (rule, grp)"
	 ");"},
	/* When each account's last pass ended without error (seconds UTC),
	 * for the metrics (metrics.c): a checkpoint only moves when mail
	 * arrives, a quiet but healthy account must still look alive. */
	{5,
	 "CREATE TABLE passes ("
	 " account TEXT PRIMARY KEY,"
	 " last_ok INTEGER NOT NULL"
	 ");"},
};

#define SCHEMA_VERSION (migrations[sizeof migrations / sizeof migrations[0] - 1].version)

/* The statements prepared once per store. */
enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_ROLLBACK_TO,
	ST_RELEASE,
	ST_INS_REPORT,
	ST_INS_PROV,
	ST_INS_RECORD,
	ST_FIND_KEY,
	ST_FILL,
	ST_SUPERSEDE,
	ST_ITEM_SAVEPOINT,
	ST_ITEM_ROLLBACK_TO,
	ST_ITEM_RELEASE,
	ST_CKPT_GET,
	ST_CKPT_SET,
	ST_MSG_PUT,
	ST_MSG_MOVED,
	ST_COUNT_
};

#define KEY_WHERE                                                                               \
	"org_name IS ?1 AND report_id IS ?2 AND policy_domain IS ?3 AND \"begin\" IS ?4 AND "       \
	"\"end\" IS ?5 AND id <> ?6 AND hash IS NOT NULL"

static const char *const stmt_sql[ST_COUNT_] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT dw_report",
	[ST_ROLLBACK_TO] = "ROLLBACK TO dw_report",
	[ST_RELEASE] = "RELEASE dw_report",
	[ST_INS_REPORT] = "INSERT INTO reports (received, imported_at) VALUES (?1, ?2)",
	[ST_INS_PROV] = "INSERT INTO provenance (report, kind, source, member, message_id, uidvalidity, uid,"
	                " received, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_INS_RECORD] = "INSERT INTO records (report, source_ip, disposition, dkim, spf, header_from,"
	                  " envelope_from, envelope_to, reasons, auth, fold_key, count)"
	                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
	                  " ON CONFLICT (report, fold_key) DO UPDATE SET count = count + excluded.count",
	[ST_FIND_KEY] = "SELECT id, hash, revision, superseded_by FROM reports WHERE " KEY_WHERE,
	[ST_FILL] = "UPDATE reports SET schema = ?1, version = ?2, org_name = ?3, email = ?4,"
	            " extra_contact_info = ?5, report_id = ?6, generator = ?7, errors = ?8,"
	            " policy_domain = ?9, \"begin\" = ?10, \"end\" = ?11, p = ?12, sp = ?13, np = ?14,"
	            " adkim = ?15, aspf = ?16, pct = ?17, fo = ?18, testing = ?19, discovery_method = ?20,"
	            " quirks = ?21, hash = ?22, messages = ?23, dmarc_fail = ?24, records = ?25,"
	            " revision = ?26 WHERE id = ?27",
	[ST_SUPERSEDE] = "UPDATE reports SET superseded_by = ?7 WHERE " KEY_WHERE " AND superseded_by IS NULL",
	/* An item inside a caller's batch transaction (see dw_store_batch_begin). */
	[ST_ITEM_SAVEPOINT] = "SAVEPOINT dw_item",
	[ST_ITEM_ROLLBACK_TO] = "ROLLBACK TO dw_item",
	[ST_ITEM_RELEASE] = "RELEASE dw_item",
	[ST_CKPT_GET] = "SELECT uidvalidity, last_uid FROM checkpoints WHERE account = ?1",
	[ST_CKPT_SET] = "INSERT INTO checkpoints (account, uidvalidity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)"
	                " ON CONFLICT (account) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
	                " last_uid = excluded.last_uid, updated_at = excluded.updated_at",
	[ST_MSG_PUT] = "INSERT OR REPLACE INTO messages (account, uidvalidity, uid, verdict, reason, message_id,"
	               " reports, folder, moved, received, processed_at)"
	               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
	[ST_MSG_MOVED] = "UPDATE messages SET moved = 1 WHERE account = ?1 AND uidvalidity = ?2 AND uid = ?3",
};

/* A growable text buffer, reused across records. */
struct sbuf {
	char *p;
	size_t len, cap;
};

/*
 * A record waiting in the batch: its column values as offsets into the
 * store's arena (NO_STR for NULL), its fold key and count.
 */
enum { F_IP, F_DISP, F_DKIM, F_SPF, F_HFROM, F_EFROM, F_ETO, F_REASONS, F_AUTH, F_COUNT_ };
#define NO_STR SIZE_MAX
struct pending {
	size_t str[F_COUNT_];
	size_t len[F_COUNT_];            /* so SQLite need not measure them again */
	uint64_t count;
	unsigned char key[HASH_LEN];
};

/* Batch bounds: memory stays flat however large the report. */
#define PEND_MAX 65536
#define ARENA_MAX ((size_t)16 << 20)

struct dw_store {
	sqlite3 *db;
	int batch;                       /* a batch transaction is open: items are savepoints */
	char *path;                      /* owned, for messages */
	sqlite3_stmt *st[ST_COUNT_];
	struct dw_store_report *active;  /* the report being written, if any */
	unsigned char *ser;              /* scratch for canonical serialisations */
	size_t serlen, sercap;
	/* Records waiting to be written: see flush_records(). */
	struct pending *pend;
	size_t npend, cappend;
	struct sbuf arena;               /* their strings, NUL-terminated */
};

struct dw_store_report {
	struct dw_store *s;
	int64_t id;                      /* the reports row */
	unsigned char sum[HASH_LEN];     /* multiset sum of record digests */
	uint64_t nrec;
	struct dw_totals totals;         /* our own, used when the caller has none */
};

/* ---- small helpers ---------------------------------------------------- */

static void
batch_clear(struct dw_store *s)
{
	s->npend = 0;
	s->arena.len = 0;
}

static int
store_err(struct dw_store *s, char *err, size_t errlen, const char *what)
{
	return dw_err(err, errlen, DW_E_STORE, "store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* Run a prepared statement that returns no rows we need; resets it. */
static int
run(struct dw_store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void
bind_opt_int(sqlite3_stmt *st, int i, int64_t v, int present)
{
	if (present)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static int
is_pass(const char *v)
{
	return v != NULL && strcmp(v, "pass") == 0;
}

/* Domain names compare case-insensitively: store and query them in lower
 * case so "Example.COM" and "example.com" are one domain. */
static char *
lower_dup(const char *v)
{
	if (v == NULL)
		return NULL;
	char *c = xstrdup(v);
	for (char *p = c; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return c;
}

/* ---- canonical serialisation ------------------------------------------ */

static void
ser_reset(struct dw_store *s)
{
	s->serlen = 0;
}

static void
ser_put(struct dw_store *s, const void *p, size_t n)
{
	if (s->sercap - s->serlen < n) {
		size_t cap = s->sercap ? s->sercap : 512;
		while (cap - s->serlen < n)
			cap *= 2;
		s->ser = xrealloc(s->ser, cap);
		s->sercap = cap;
	}
	memcpy(s->ser + s->serlen, p, n);
	s->serlen += n;
}

static void
ser_u64(struct dw_store *s, uint64_t v)
{
	unsigned char b[8];
	for (int i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	ser_put(s, b, sizeof b);
}

/* A string is a presence byte, then its length and bytes: NULL, "" and
 * adjacent fields can never be confused. */
static void
ser_str(struct dw_store *s, const char *v)
{
	unsigned char tag = v != NULL;
	ser_put(s, &tag, 1);
	if (v != NULL) {
		size_t n = strlen(v);
		ser_u64(s, (uint64_t)n);
		ser_put(s, v, n);
	}
}

static int
sha256(const void *p, size_t n, unsigned char out[HASH_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) == 0 ? 0 : -1;
}

/* Every field of the record except its count. */
static void
ser_record(struct dw_store *s, const struct dw_record *r)
{
	static const char tag[] = "dmarcwatch record 1";
	char ip[sizeof r->source_ip + 1];
	memcpy(ip, r->source_ip, sizeof r->source_ip);
	ip[sizeof r->source_ip] = '\0';

	ser_reset(s);
	ser_put(s, tag, sizeof tag);
	ser_str(s, ip);
	ser_str(s, r->disposition);
	ser_str(s, r->dkim);
	ser_str(s, r->spf);
	ser_str(s, r->header_from);
	ser_str(s, r->envelope_from);
	ser_str(s, r->envelope_to);
	ser_u64(s, r->nreasons);
	for (size_t i = 0; i < r->nreasons; i++) {
		ser_str(s, r->reasons[i].type);
		ser_str(s, r->reasons[i].comment);
	}
	ser_u64(s, r->ndkim);
	for (size_t i = 0; i < r->ndkim; i++) {
		ser_str(s, r->dkim_results[i].domain);
		ser_str(s, r->dkim_results[i].selector);
		ser_str(s, r->dkim_results[i].result);
		ser_str(s, r->dkim_results[i].human_result);
	}
	ser_u64(s, r->nspf);
	for (size_t i = 0; i < r->nspf; i++) {
		ser_str(s, r->spf_results[i].domain);
		ser_str(s, r->spf_results[i].scope);
		ser_str(s, r->spf_results[i].result);
		ser_str(s, r->spf_results[i].human_result);
	}
}

/* sum += d, as 256-bit big-endian integers modulo 2^256. */
static void
sum_add(unsigned char sum[HASH_LEN], const unsigned char d[HASH_LEN])
{
	unsigned carry = 0;
	for (int i = HASH_LEN - 1; i >= 0; i--) {
		unsigned v = (unsigned)sum[i] + d[i] + carry;
		sum[i] = (unsigned char)(v & 0xff);
		carry = v >> 8;
	}
}

/* ---- JSON columns ----------------------------------------------------- */

static void
sb_put(struct sbuf *b, const char *v, size_t n)
{
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append v and its NUL to the arena; returns its offset, NO_STR for NULL. */
static size_t
arena_str(struct sbuf *b, const char *v, size_t n)
{
	if (v == NULL)
		return NO_STR;
	size_t off = b->len;
	sb_put(b, v, n);
	sb_put(b, "", 1);
	return off;
}

static json_t *jstr(const char *v);

/* Set key to v unless v is NULL (absent elements stay absent). */
static void
jset(json_t *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, key, jstr(v));
}

/* Dump j (consumed) compactly into the arena; returns its offset. */
static size_t
arena_json(struct sbuf *b, json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (t == NULL)
		return NO_STR;
	size_t off = arena_str(b, t, strlen(t));
	free(t);
	return off;
}

/* [{"type":...,"comment":...}] appended to the arena, or NO_STR when there
 * are no reasons. */
static size_t
json_reasons(struct sbuf *b, const struct dw_record *r)
{
	if (r->nreasons == 0)
		return NO_STR;
	json_t *a = json_array();
	for (size_t i = 0; i < r->nreasons; i++) {
		json_t *o = json_object();
		jset(o, "type", r->reasons[i].type);
		jset(o, "comment", r->reasons[i].comment);
		json_array_append_new(a, o);
	}
	return arena_json(b, a);
}

/* {"dkim":[...],"spf":[...]} appended to the arena, or NO_STR when there
 * are no auth results. */
static size_t
json_auth(struct sbuf *b, const struct dw_record *r)
{
	if (r->ndkim == 0 && r->nspf == 0)
		return NO_STR;
	json_t *o = json_object();
	if (r->ndkim > 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < r->ndkim; i++) {
			const struct dw_dkim_result *d = &r->dkim_results[i];
			json_t *x = json_object();
			jset(x, "domain", d->domain);
			jset(x, "selector", d->selector);
			jset(x, "result", d->result);
			jset(x, "human_result", d->human_result);
			json_array_append_new(a, x);
		}
		json_object_set_new(o, "dkim", a);
	}
	if (r->nspf > 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < r->nspf; i++) {
			const struct dw_spf_result *f = &r->spf_results[i];
			json_t *x = json_object();
			jset(x, "domain", f->domain);
			jset(x, "scope", f->scope);
			jset(x, "result", f->result);
			jset(x, "human_result", f->human_result);
			json_array_append_new(a, x);
		}
		json_object_set_new(o, "spf", a);
	}
	return arena_json(b, o);
}

/* jansson for the report-level arrays. It refuses strings that are not
 * UTF-8: sanitise those rather than drop them. */
static json_t *
jstr(const char *v)
{
	json_t *j = json_string(v);
	if (j != NULL)
		return j;
	/* Not UTF-8 (the parser should never hand us that): keep the ASCII,
	 * mark the rest, rather than lose the row. */
	char *c = xstrdup(v);
	for (unsigned char *p = (unsigned char *)c; *p != '\0'; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(c);
	free(c);
	return j;
}

/* Serialise and free j; NULL in, NULL out. The result is malloc'ed. */
static char *
jdump(json_t *j)
{
	if (j == NULL)
		return NULL;
	char *t = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return t;
}

static char *
json_strings(char *const *v, size_t n, const char *extra)
{
	if (n == 0 && extra == NULL)
		return NULL;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		if (v[i] != NULL)
			json_array_append_new(a, jstr(v[i]));
	if (extra != NULL)
		json_array_append_new(a, jstr(extra));
	return jdump(a);
}

/* ---- open, migrate, close --------------------------------------------- */

static int
exec_sql(struct dw_store *s, const char *sql, const char *what, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		dw_err(err, errlen, DW_E_STORE, "store %s: %s: %s", s->path, what,
		       msg != NULL ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return DW_E_STORE;
	}
	return DW_OK;
}

static int
user_version(struct dw_store *s, int *v, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		dw_err(err, errlen, DW_E_STORE, "store %s: cannot read the database: %s%s", s->path,
		       sqlite3_errmsg(s->db),
		       sqlite3_errcode(s->db) == SQLITE_NOTADB ? " (is it an SQLite file?)" : "");
		sqlite3_finalize(st);
		return DW_E_STORE;
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return DW_OK;
}

static int
too_new(struct dw_store *s, int v, char *err, size_t errlen)
{
	return dw_err(err, errlen, DW_E_STORE,
	              "store %s: database schema version %d is newer than this dmarcwatch "
	              "understands (%d); upgrade dmarcwatch",
	              s->path, v, SCHEMA_VERSION);
}

/*
 * Bring the schema to SCHEMA_VERSION. The version is read again inside an
 * immediate transaction so two processes opening a new file at once do not
 * both create the tables.
 */
static int
migrate(struct dw_store *s, char *err, size_t errlen)
{
	int v, rc;
	if ((rc = user_version(s, &v, err, errlen)) != DW_OK)
		return rc;
	if (v > SCHEMA_VERSION)
		return too_new(s, v, err, errlen);
	if (v == SCHEMA_VERSION)
		return DW_OK;

	if ((rc = exec_sql(s, "BEGIN IMMEDIATE", "cannot lock the database for its schema upgrade", err,
	                   errlen)) != DW_OK)
		return rc;
	if ((rc = user_version(s, &v, err, errlen)) != DW_OK)
		goto fail;
	if (v > SCHEMA_VERSION) {
		rc = too_new(s, v, err, errlen);
		goto fail;
	}
	for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++) {
		const struct migration *m = &migrations[i];
		if (m->version <= v)
			continue;
		char what[64], set[64];
		snprintf(what, sizeof what, "schema upgrade to version %d", m->version);
		/* PRAGMA takes no bound parameters; the value is our own constant. */
		snprintf(set, sizeof set, "PRAGMA user_version = %d", m->version);
		if ((rc = exec_sql(s, m->sql, what, err, errlen)) != DW_OK ||
		    (rc = exec_sql(s, set, what, err, errlen)) != DW_OK)
			goto fail;
	}
	if ((rc = exec_sql(s, "COMMIT", "schema upgrade", err, errlen)) != DW_OK)
		goto fail;
	return DW_OK;
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * Per-connection settings. NORMAL is durable enough in WAL mode (a power
 * cut can lose the last commits, never corrupt), and the caller only
 * acknowledges mail after a commit returned. A 64 MiB page cache keeps the
 * fold index of a million-record report in memory; SQLite allocates it
 * only as pages are used. The WAL is cut back to 64 MiB after a checkpoint
 * so one huge import does not leave a huge file behind.
 */
#define PRAGMAS                                                                                 \
	"PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -2048;"         \
	"PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864"

sqlite3 *
dw_store_sqlite(struct dw_store *s)
{
	return s->db;
}

const char *
dw_store_path(const struct dw_store *s)
{
	return s->path;
}

int
dw_store_open(const char *path, struct dw_store **out, char *err, size_t errlen)
{
	*out = NULL;
	struct dw_store *s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path != NULL ? path : "");
	int rc;

	if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: cannot open: %s", s->path,
		            s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);

	/* Refuse a newer schema before changing anything in the file, even
	 * its journal mode. This is also where a non-SQLite file shows. */
	int v;
	if ((rc = user_version(s, &v, err, errlen)) != DW_OK)
		goto fail;
	if (v > SCHEMA_VERSION) {
		rc = too_new(s, v, err, errlen);
		goto fail;
	}
	if ((rc = exec_sql(s, "PRAGMA journal_mode = WAL", "cannot enable WAL", err, errlen)) != DW_OK ||
	    (rc = exec_sql(s, PRAGMAS, "cannot set pragmas", err, errlen)) != DW_OK)
		goto fail;
	if ((rc = migrate(s, err, errlen)) != DW_OK)
		goto fail;

	for (int i = 0; i < ST_COUNT_; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
		    SQLITE_OK) {
			rc = store_err(s, err, errlen, "cannot prepare a statement (database from another program?)");
			goto fail;
		}
	}
	*out = s;
	return DW_OK;
fail:
	dw_store_close(s);
	return rc;
}

void
dw_store_close(struct dw_store *s)
{
	if (s == NULL)
		return;
	/* A report left open is rolled back with the connection; its handle
	 * still belongs to the caller, who must not use it any more. */
	if (s->active != NULL)
		s->active->s = NULL;
	for (int i = 0; i < ST_COUNT_; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close_v2(s->db);
	free(s->ser);
	free(s->pend);
	free(s->arena.p);
	free(s->path);
	free(s);
}

/* ---- transactions ----------------------------------------------------- */

int
dw_store_begin(struct dw_store *s, char *err, size_t errlen)
{
	if (run(s, s->batch ? ST_ITEM_SAVEPOINT : ST_BEGIN) != SQLITE_OK)
		return store_err(s, err, errlen, "cannot begin a transaction");
	return DW_OK;
}

int
dw_store_commit(struct dw_store *s, char *err, size_t errlen)
{
	if (run(s, s->batch ? ST_ITEM_RELEASE : ST_COMMIT) != SQLITE_OK)
		return store_err(s, err, errlen, "cannot commit");
	return DW_OK;
}

void
dw_store_rollback(struct dw_store *s)
{
	/* A report still open dies with the transaction: its handle only
	 * accepts abort() from now on. */
	if (s->active != NULL) {
		s->active->s = NULL;
		s->active = NULL;
		batch_clear(s);
	}
	/* Fails harmlessly when no transaction is open. */
	if (s->batch) {
		(void)run(s, ST_ITEM_ROLLBACK_TO);
		(void)run(s, ST_ITEM_RELEASE);
	} else {
		(void)run(s, ST_ROLLBACK);
	}
}

int
dw_store_batch_begin(struct dw_store *s, char *err, size_t errlen)
{
	if (s->batch)
		return dw_err(err, errlen, DW_E_SYS, "store %s: a batch is already open", s->path);
	if (run(s, ST_BEGIN) != SQLITE_OK)
		return store_err(s, err, errlen, "cannot begin a batch transaction");
	s->batch = 1;
	return DW_OK;
}

int
dw_store_batch_commit(struct dw_store *s, char *err, size_t errlen)
{
	s->batch = 0;
	if (run(s, ST_COMMIT) != SQLITE_OK) {
		int rc = store_err(s, err, errlen, "cannot commit the batch");
		(void)run(s, ST_ROLLBACK);
		return rc;
	}
	return DW_OK;
}

void
dw_store_batch_rollback(struct dw_store *s)
{
	if (s->active != NULL) {
		s->active->s = NULL;
		s->active = NULL;
		batch_clear(s);
	}
	s->batch = 0;
	(void)run(s, ST_ROLLBACK);
}

void
dw_store_bulk_cache(struct dw_store *s)
{
	/* Large imports (a million records) fold faster with a big page
	 * cache; the agent keeps the small default so its RSS stays flat. */
	(void)sqlite3_exec(s->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
}

/* ---- writing one report ----------------------------------------------- */

static int
pending_cmp(const void *a, const void *b)
{
	return memcmp(((const struct pending *)a)->key, ((const struct pending *)b)->key, HASH_LEN);
}

/*
 * Write the batched records. Fold keys are hashes, so records arrive in
 * random key order, and inserting them one by one into the (report,
 * fold_key) index costs a cache miss at every level of the B-tree: half
 * the import time for a large report. Sorted by key, consecutive inserts
 * land on neighbouring index pages. Identical records inside the batch are
 * summed here; the upsert sums them with rows from earlier batches.
 */
static int
flush_records(struct dw_store_report *r, char *err, size_t errlen)
{
	struct dw_store *s = r->s;
	int rc = DW_OK;
	qsort(s->pend, s->npend, sizeof *s->pend, pending_cmp);
	sqlite3_stmt *st = s->st[ST_INS_RECORD];
	const char *base = s->arena.p;
	for (size_t i = 0; i < s->npend;) {
		const struct pending *p = &s->pend[i];
		uint64_t count = p->count;
		size_t j = i + 1;
		/* The running total is capped at INT64_MAX: this cannot wrap. */
		while (j < s->npend && memcmp(s->pend[j].key, p->key, HASH_LEN) == 0)
			count += s->pend[j++].count;
		sqlite3_bind_int64(st, 1, r->id);
		for (int f = 0; f < F_COUNT_; f++) {
			if (p->str[f] != NO_STR)
				sqlite3_bind_text(st, 2 + f, base + p->str[f], (int)p->len[f], SQLITE_STATIC);
			else
				sqlite3_bind_null(st, 2 + f);
		}
		sqlite3_bind_blob(st, 11, p->key, HASH_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, (int64_t)count);
		if (run(s, ST_INS_RECORD) != SQLITE_OK) {
			char what[96];
			snprintf(what, sizeof what, "cannot store the records before record %" PRIu64, r->nrec + 1);
			rc = store_err(s, err, errlen, what);
			break;
		}
		i = j;
	}
	batch_clear(s);
	return rc;
}

/* Undo the report's savepoint and free the handle. */
static void
report_discard(struct dw_store_report *r)
{
	struct dw_store *s = r->s;
	if (s == NULL) { /* the store was closed or rolled back under the report */
		free(r);
		return;
	}
	batch_clear(s);
	(void)run(s, ST_ROLLBACK_TO);
	(void)run(s, ST_RELEASE);
	if (s->active == r)
		s->active = NULL;
	free(r);
}

int
dw_store_report_begin(struct dw_store *s, const struct dw_provenance *prov, struct dw_store_report **out,
                      char *err, size_t errlen)
{
	*out = NULL;
	if (s->active != NULL)
		return dw_err(err, errlen, DW_E_STORE,
		              "store %s: a report is already being written (end or abort it first)", s->path);
	if (run(s, ST_SAVEPOINT) != SQLITE_OK)
		return store_err(s, err, errlen, "cannot start a report");

	struct dw_store_report *r = xcalloc(1, sizeof *r);
	r->s = s;
	s->active = r;
	int64_t now = (int64_t)time(NULL);
	int has_received = prov != NULL && prov->received >= 0;

	/* A placeholder row gives the records their parent id; its key columns
	 * stay NULL until end() knows the metadata. */
	sqlite3_stmt *st = s->st[ST_INS_REPORT];
	bind_opt_int(st, 1, has_received ? prov->received : 0, has_received);
	sqlite3_bind_int64(st, 2, now);
	if (run(s, ST_INS_REPORT) != SQLITE_OK)
		goto fail;
	r->id = sqlite3_last_insert_rowid(s->db);

	st = s->st[ST_INS_PROV];
	sqlite3_bind_int64(st, 1, r->id);
	if (prov != NULL) {
		bind_text(st, 2, prov->kind);
		bind_text(st, 3, prov->source);
		bind_text(st, 4, prov->member);
		bind_text(st, 5, prov->message_id);
		bind_opt_int(st, 6, prov->uidvalidity, prov->uidvalidity >= 0);
		bind_opt_int(st, 7, prov->uid, prov->uid >= 0);
		bind_opt_int(st, 8, prov->received, prov->received >= 0);
	}
	sqlite3_bind_int64(st, 9, now);
	if (run(s, ST_INS_PROV) != SQLITE_OK)
		goto fail;
	*out = r;
	return DW_OK;
fail:
	store_err(s, err, errlen, "cannot start a report");
	report_discard(r);
	return DW_E_STORE;
}

int
dw_store_report_record(struct dw_store_report *r, const struct dw_record *rec, char *err, size_t errlen)
{
	struct dw_store *s = r->s;
	if (s == NULL)
		return dw_err(err, errlen, DW_E_STORE, "store: the transaction ended while writing a report");
	/* SQLite integers are signed 64-bit, and a folded count must not wrap
	 * into a float: bound the report's running total instead. */
	if (rec->count > (uint64_t)INT64_MAX || r->totals.messages > (uint64_t)INT64_MAX - rec->count)
		return dw_err(err, errlen, DW_E_INPUT,
		              "record %" PRIu64 ": count %" PRIu64 " makes the report's total exceed 2^63-1",
		              r->nrec + 1, rec->count);

	unsigned char key[HASH_LEN], digest[HASH_LEN];
	ser_record(s, rec);
	if (sha256(s->ser, s->serlen, key) != 0)
		return dw_err(err, errlen, DW_E_SYS, "store: SHA-256 failed");
	/* The record's digest for the multiset: its fold key and its count. */
	ser_reset(s);
	ser_put(s, key, sizeof key);
	ser_u64(s, rec->count);
	if (sha256(s->ser, s->serlen, digest) != 0)
		return dw_err(err, errlen, DW_E_SYS, "store: SHA-256 failed");

	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? s->cappend * 2 : 1024;
		s->pend = xreallocarray(s->pend, s->cappend, sizeof *s->pend);
	}
	struct pending *p = &s->pend[s->npend++];
	struct sbuf *a = &s->arena;
	p->str[F_IP] = arena_str(a, rec->source_ip, strnlen(rec->source_ip, sizeof rec->source_ip));
	p->str[F_DISP] = arena_str(a, rec->disposition, rec->disposition ? strlen(rec->disposition) : 0);
	p->str[F_DKIM] = arena_str(a, rec->dkim, rec->dkim ? strlen(rec->dkim) : 0);
	p->str[F_SPF] = arena_str(a, rec->spf, rec->spf ? strlen(rec->spf) : 0);
	p->str[F_HFROM] = arena_str(a, rec->header_from, rec->header_from ? strlen(rec->header_from) : 0);
	p->str[F_EFROM] = arena_str(a, rec->envelope_from, rec->envelope_from ? strlen(rec->envelope_from) : 0);
	p->str[F_ETO] = arena_str(a, rec->envelope_to, rec->envelope_to ? strlen(rec->envelope_to) : 0);
	p->str[F_REASONS] = json_reasons(a, rec);
	p->str[F_AUTH] = json_auth(a, rec);
	/* The strings lie back to back, each followed by its NUL: a string's
	 * length is the distance to the next present one, minus one. */
	size_t next = a->len;
	for (int f = F_COUNT_ - 1; f >= 0; f--) {
		if (p->str[f] == NO_STR)
			continue;
		p->len[f] = next - p->str[f] - 1;
		next = p->str[f];
	}
	p->count = rec->count;
	memcpy(p->key, key, HASH_LEN);
	r->nrec++;

	sum_add(r->sum, digest);
	struct dw_totals *t = &r->totals;
	int pass = is_pass(rec->dkim) || is_pass(rec->spf);
	t->records++;
	t->messages += rec->count;
	if (pass)
		t->dmarc_pass += rec->count;
	else
		t->dmarc_fail += rec->count;
	if (!is_pass(rec->dkim))
		t->dkim_fail += rec->count;
	if (!is_pass(rec->spf))
		t->spf_fail += rec->count;

	if (s->npend >= PEND_MAX || a->len >= ARENA_MAX)
		return flush_records(r, err, errlen);
	return DW_OK;
}

/* The report hash: key and policy fields, the record multiset, the count. */
static int
report_hash(struct dw_store_report *r, const struct dw_report_meta *m, const char *domain,
            unsigned char out[HASH_LEN])
{
	static const char tag[] = "dmarcwatch report 1";
	struct dw_store *s = r->s;
	ser_reset(s);
	ser_put(s, tag, sizeof tag);
	ser_str(s, m->org_name);
	ser_str(s, m->report_id);
	ser_str(s, domain);
	unsigned char has = m->has_range != 0;
	ser_put(s, &has, 1);
	if (has) {
		ser_u64(s, (uint64_t)m->begin);
		ser_u64(s, (uint64_t)m->end);
	}
	ser_str(s, m->policy.p);
	ser_str(s, m->policy.sp);
	ser_str(s, m->policy.np);
	ser_str(s, m->policy.adkim);
	ser_str(s, m->policy.aspf);
	ser_u64(s, (uint64_t)(int64_t)m->policy.pct);
	ser_str(s, m->policy.fo);
	ser_str(s, m->policy.testing);
	ser_str(s, m->policy.discovery_method);
	ser_put(s, r->sum, sizeof r->sum);
	ser_u64(s, r->nrec);
	return sha256(s->ser, s->serlen, out);
}

static void
bind_key(sqlite3_stmt *st, const struct dw_report_meta *m, const char *domain, int64_t self)
{
	bind_text(st, 1, m->org_name);
	bind_text(st, 2, m->report_id);
	bind_text(st, 3, domain);
	bind_opt_int(st, 4, m->begin, m->has_range);
	bind_opt_int(st, 5, m->end, m->has_range);
	sqlite3_bind_int64(st, 6, self);
}

int
dw_store_report_end(struct dw_store_report *r, const struct dw_report_meta *meta, const struct dw_quirks *quirks,
                    const struct dw_totals *totals, enum dw_store_outcome *outcome, char *err, size_t errlen)
{
	struct dw_store *s = r->s;
	if (s == NULL) {
		free(r);
		return dw_err(err, errlen, DW_E_STORE, "store: the transaction ended while writing a report");
	}
	int rc = DW_OK;
	char *domain = lower_dup(meta->policy.domain);
	char *quirks_json = NULL, *errors_json = NULL;
	unsigned char hash[HASH_LEN];

	if (report_hash(r, meta, domain, hash) != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "store: SHA-256 failed");
		goto discard;
	}

	/*
	 * Compare with every stored version of the same key, not only the
	 * current one: re-reading an old mail that carried a since-revised
	 * report must not make the old data current again.
	 */
	sqlite3_stmt *st = s->st[ST_FIND_KEY];
	bind_key(st, meta, domain, r->id);
	int duplicate = 0, have_current = 0, step;
	int64_t max_rev = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 1);
		if (h != NULL && sqlite3_column_bytes(st, 1) == HASH_LEN && memcmp(h, hash, HASH_LEN) == 0)
			duplicate = 1;
		int64_t rev = sqlite3_column_int64(st, 2);
		if (rev > max_rev)
			max_rev = rev;
		if (sqlite3_column_type(st, 3) == SQLITE_NULL)
			have_current = 1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (step != SQLITE_DONE) {
		rc = store_err(s, err, errlen, "cannot look up the report key");
		goto discard;
	}
	if (duplicate) {
		*outcome = DW_STORED_DUPLICATE;
		goto discard;
	}

	if ((rc = flush_records(r, err, errlen)) != DW_OK)
		goto discard;
	if (totals == NULL)
		totals = &r->totals;
	quirks_json = json_strings(quirks != NULL ? quirks->v : NULL, quirks != NULL ? quirks->n : 0,
	                           have_current && (quirks == NULL || !dw_quirks_has(quirks, "revised-report"))
	                               ? "revised-report"
	                               : NULL);
	errors_json = json_strings(meta->errors, meta->nerrors, NULL);

	st = s->st[ST_FILL];
	sqlite3_bind_int(st, 1, meta->schema);
	bind_text(st, 2, meta->version);
	bind_text(st, 3, meta->org_name);
	bind_text(st, 4, meta->email);
	bind_text(st, 5, meta->extra_contact_info);
	bind_text(st, 6, meta->report_id);
	bind_text(st, 7, meta->generator);
	bind_text(st, 8, errors_json);
	bind_text(st, 9, domain);
	bind_opt_int(st, 10, meta->begin, meta->has_range);
	bind_opt_int(st, 11, meta->end, meta->has_range);
	bind_text(st, 12, meta->policy.p);
	bind_text(st, 13, meta->policy.sp);
	bind_text(st, 14, meta->policy.np);
	bind_text(st, 15, meta->policy.adkim);
	bind_text(st, 16, meta->policy.aspf);
	bind_opt_int(st, 17, meta->policy.pct, meta->policy.pct >= 0);
	bind_text(st, 18, meta->policy.fo);
	bind_text(st, 19, meta->policy.testing);
	bind_text(st, 20, meta->policy.discovery_method);
	bind_text(st, 21, quirks_json);
	sqlite3_bind_blob(st, 22, hash, HASH_LEN, SQLITE_STATIC);
	/* Our counters are capped below 2^63 by report_record; the caller's
	 * are clamped into SQLite's range. */
	sqlite3_bind_int64(st, 23, (int64_t)(totals->messages > INT64_MAX ? INT64_MAX : totals->messages));
	sqlite3_bind_int64(st, 24, (int64_t)(totals->dmarc_fail > INT64_MAX ? INT64_MAX : totals->dmarc_fail));
	sqlite3_bind_int64(st, 25, (int64_t)(totals->records > INT64_MAX ? INT64_MAX : totals->records));
	sqlite3_bind_int64(st, 26, max_rev + 1);
	sqlite3_bind_int64(st, 27, r->id);
	if (run(s, ST_FILL) != SQLITE_OK) {
		rc = store_err(s, err, errlen, "cannot store the report");
		goto discard;
	}
	if (have_current) {
		st = s->st[ST_SUPERSEDE];
		bind_key(st, meta, domain, r->id);
		sqlite3_bind_int64(st, 7, r->id);
		if (run(s, ST_SUPERSEDE) != SQLITE_OK) {
			rc = store_err(s, err, errlen, "cannot mark the previous revision superseded");
			goto discard;
		}
	}
	if (run(s, ST_RELEASE) != SQLITE_OK) {
		rc = store_err(s, err, errlen, "cannot release the report savepoint");
		goto discard;
	}
	*outcome = have_current ? DW_STORED_REVISION : DW_STORED_NEW;
	s->active = NULL;
	free(r);
	free(domain);
	free(quirks_json);
	free(errors_json);
	return DW_OK;

discard:
	report_discard(r);
	free(domain);
	free(quirks_json);
	free(errors_json);
	return rc;
}

void
dw_store_report_abort(struct dw_store_report *r)
{
	if (r != NULL)
		report_discard(r);
}

/* ---- reading ---------------------------------------------------------- */

int
dw_store_foreach(struct dw_store *s, const struct dw_store_query *q,
                 int (*cb)(void *ctx, const struct dw_store_row *row), void *ctx, char *err, size_t errlen)
{
	/*
	 * Four fixed texts rather than "?3 IS NULL OR ...", so that SQLite can
	 * use the (policy_domain, begin) index when a domain is given. The
	 * join order is forced (reports outside, CROSS JOIN) and records are
	 * read through records_report, in rowid order: without statistics the
	 * planner would otherwise scan every record of every report. The
	 * ORDER BY repeats the GROUP BY so one sort serves both, and keeps a
	 * report's rows together for the caller. max(begin, end) because
	 * days.h treats end < begin as begin..begin.
	 */
	char *sql = xasprintf("SELECT r.id, r.policy_domain, r.org_name, %s, r.\"begin\", r.\"end\","
	                      " c.disposition, c.dkim, c.spf, SUM(c.count)"
	                      " FROM reports r CROSS JOIN records c INDEXED BY records_report ON c.report = r.id"
	                      " WHERE r.superseded_by IS NULL AND r.hash IS NOT NULL"
	                      " AND r.\"begin\" < ?1 AND max(r.\"begin\", r.\"end\") >= ?2%s"
	                      " GROUP BY r.id, c.disposition, c.dkim, c.spf%s"
	                      " ORDER BY r.id, c.disposition, c.dkim, c.spf%s",
	                      q->by_source ? "c.source_ip" : "NULL", q->domain != NULL ? " AND r.policy_domain = ?3" : "",
	                      q->by_source ? ", c.source_ip" : "", q->by_source ? ", c.source_ip" : "");
	sqlite3_stmt *st = NULL;
	char *domain = lower_dup(q->domain);
	int rc = DW_OK;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		rc = store_err(s, err, errlen, "cannot query the reports");
		goto out;
	}
	sqlite3_bind_int64(st, 1, q->to);
	sqlite3_bind_int64(st, 2, q->from);
	if (domain != NULL)
		sqlite3_bind_text(st, 3, domain, -1, SQLITE_STATIC);

	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct dw_store_row row;
		row.report = sqlite3_column_int64(st, 0);
		row.domain = (const char *)sqlite3_column_text(st, 1);
		row.org_name = (const char *)sqlite3_column_text(st, 2);
		row.source_ip = (const char *)sqlite3_column_text(st, 3);
		row.begin = sqlite3_column_int64(st, 4);
		row.end = sqlite3_column_int64(st, 5);
		row.disposition = (const char *)sqlite3_column_text(st, 6);
		row.dkim = (const char *)sqlite3_column_text(st, 7);
		row.spf = (const char *)sqlite3_column_text(st, 8);
		int64_t c = sqlite3_column_int64(st, 9);
		row.count = c > 0 ? (uint64_t)c : 0;
		int cbrc = cb(ctx, &row);
		if (cbrc != 0) {
			rc = dw_err(err, errlen, cbrc, "store %s: reading the reports stopped (code %d)", s->path, cbrc);
			goto out;
		}
	}
	if (step != SQLITE_DONE)
		rc = store_err(s, err, errlen, "cannot read the reports");
out:
	sqlite3_finalize(st);
	free(domain);
	free(sql);
	return rc;
}

/* The first reason's type from the stored reasons JSON; NULL when there is
 * none or the text is not what store.c writes. *hold keeps it alive. */
static const char *
first_reason(const char *reasons, json_t **hold)
{
	*hold = NULL;
	if (reasons == NULL)
		return NULL;
	json_t *a = json_loads(reasons, JSON_DECODE_ANY, NULL);
	const char *type = json_string_value(json_object_get(json_array_get(a, 0), "type"));
	if (type == NULL) {
		json_decref(a);
		return NULL;
	}
	*hold = a;
	return type;
}

int
dw_store_foreach_records(struct dw_store *s, const struct dw_store_query *q,
                         int (*cb)(void *ctx, const struct dw_store_rec_row *row), void *ctx, char *err,
                         size_t errlen)
{
	/*
	 * As in dw_store_foreach: reports outside (a LEFT JOIN keeps the order
	 * and the reports without records), records through records_report,
	 * so a report's records are read together and in rowid order. No
	 * GROUP BY or ORDER BY: nothing is sorted or held here.
	 */
	char *sql = xasprintf("SELECT r.id, r.policy_domain, r.org_name, r.\"begin\", r.\"end\","
	                      " COALESCE(r.received, r.imported_at),"
	                      " r.p, r.sp, r.np, r.adkim, r.aspf, r.pct, r.testing,"
	                      " c.source_ip, c.disposition, c.dkim, c.spf, c.header_from, c.reasons, c.count"
	                      " FROM reports r LEFT JOIN records c INDEXED BY records_report ON c.report = r.id"
	                      " WHERE r.superseded_by IS NULL AND r.hash IS NOT NULL"
	                      " AND r.\"begin\" < ?1 AND max(r.\"begin\", r.\"end\") >= ?2%s",
	                      q->domain != NULL ? " AND r.policy_domain = ?3" : "");
	sqlite3_stmt *st = NULL;
	char *domain = lower_dup(q->domain);
	int rc = DW_OK;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		rc = store_err(s, err, errlen, "cannot query the records");
		goto out;
	}
	sqlite3_bind_int64(st, 1, q->to);
	sqlite3_bind_int64(st, 2, q->from);
	if (domain != NULL)
		sqlite3_bind_text(st, 3, domain, -1, SQLITE_STATIC);

	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct dw_store_rec_row row;
		row.report = sqlite3_column_int64(st, 0);
		row.domain = (const char *)sqlite3_column_text(st, 1);
		row.org_name = (const char *)sqlite3_column_text(st, 2);
		row.begin = sqlite3_column_int64(st, 3);
		row.end = sqlite3_column_int64(st, 4);
		row.received = sqlite3_column_int64(st, 5);
		row.p = (const char *)sqlite3_column_text(st, 6);
		row.sp = (const char *)sqlite3_column_text(st, 7);
		row.np = (const char *)sqlite3_column_text(st, 8);
		row.adkim = (const char *)sqlite3_column_text(st, 9);
		row.aspf = (const char *)sqlite3_column_text(st, 10);
		row.pct = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 11);
		row.testing = (const char *)sqlite3_column_text(st, 12);
		row.source_ip = (const char *)sqlite3_column_text(st, 13);
		row.disposition = (const char *)sqlite3_column_text(st, 14);
		row.dkim = (const char *)sqlite3_column_text(st, 15);
		row.spf = (const char *)sqlite3_column_text(st, 16);
		row.header_from = (const char *)sqlite3_column_text(st, 17);
		row.reasons = (const char *)sqlite3_column_text(st, 18);
		int64_t c = sqlite3_column_int64(st, 19);
		row.count = c > 0 ? (uint64_t)c : 0;
		json_t *hold;
		row.reason = first_reason(row.reasons, &hold);
		int cbrc = cb(ctx, &row);
		json_decref(hold);
		if (cbrc != 0) {
			rc = dw_err(err, errlen, cbrc, "store %s: reading the records stopped (code %d)", s->path, cbrc);
			goto out;
		}
	}
	if (step != SQLITE_DONE)
		rc = store_err(s, err, errlen, "cannot read the records");
out:
	sqlite3_finalize(st);
	free(domain);
	free(sql);
	return rc;
}

static int
count_rows(struct dw_store *s, const char *sql, int64_t *n, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = DW_OK;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		rc = store_err(s, err, errlen, "cannot count the stored reports");
	else
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

int
dw_store_counts(struct dw_store *s, int64_t *reports, int64_t *records, char *err, size_t errlen)
{
	int rc = DW_OK;
	if (reports != NULL)
		rc = count_rows(s,
		                "SELECT count(*) FROM reports WHERE superseded_by IS NULL AND hash IS NOT NULL",
		                reports, err, errlen);
	if (rc == DW_OK && records != NULL)
		rc = count_rows(s,
		                "SELECT count(*) FROM records c JOIN reports r ON c.report = r.id"
		                " WHERE r.superseded_by IS NULL AND r.hash IS NOT NULL",
		                records, err, errlen);
	return rc;
}

/* ---- agent state: checkpoints and message verdicts --------------------- */

/* The agent's statements are prepared once with the others; each use
 * starts from a reset statement with cleared bindings. */
static sqlite3_stmt *
agent_stmt(struct dw_store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int
dw_store_checkpoint_get(struct dw_store *s, const char *account, uint32_t *uidvalidity, uint32_t *last_uid,
                        char *err, size_t errlen)
{
	sqlite3_stmt *st = agent_stmt(s, ST_CKPT_GET);
	int rc = DW_OK;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	*uidvalidity = 0;
	*last_uid = 0;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		*last_uid = (uint32_t)sqlite3_column_int64(st, 1);
	} else if (r != SQLITE_DONE) {
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: reading the checkpoint of %s: %s", s->path, account,
		            sqlite3_errmsg(s->db));
	}
	sqlite3_reset(st);
	return rc;
}

int
dw_store_checkpoint_set(struct dw_store *s, const char *account, uint32_t uidvalidity, uint32_t last_uid,
                        char *err, size_t errlen)
{
	sqlite3_stmt *st = agent_stmt(s, ST_CKPT_SET);
	int rc = DW_OK;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uidvalidity);
	sqlite3_bind_int64(st, 3, last_uid);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: saving the checkpoint of %s: %s", s->path, account,
		            sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	return rc;
}

int
dw_store_message_put(struct dw_store *s, const struct dw_msg_verdict *v, char *err, size_t errlen)
{
	sqlite3_stmt *st = agent_stmt(s, ST_MSG_PUT);
	int rc = DW_OK;
	sqlite3_bind_text(st, 1, v->account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v->uidvalidity);
	sqlite3_bind_int64(st, 3, v->uid);
	sqlite3_bind_text(st, 4, v->verdict, -1, SQLITE_STATIC);
	bind_text(st, 5, v->reason);
	bind_text(st, 6, v->message_id);
	sqlite3_bind_int64(st, 7, v->reports);
	bind_text(st, 8, v->folder);
	bind_opt_int(st, 9, v->received, v->received >= 0);
	sqlite3_bind_int64(st, 10, (int64_t)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: saving the verdict of %s uid %u: %s", s->path,
		            v->account, v->uid, sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	return rc;
}

int
dw_store_pending_moves(struct dw_store *s, const char *account, uint32_t uidvalidity,
                       int (*cb)(void *ctx, uint32_t uid, const char *folder), void *ctx, char *err, size_t errlen)
{
	/* Rare (after an interrupted pass): prepared on demand. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT uid, folder FROM messages WHERE account = ?1 AND uidvalidity = ?2 AND moved = 0"
	                       " AND folder IS NOT NULL ORDER BY folder, uid",
	                       -1, &st, NULL) != SQLITE_OK)
		return dw_err(err, errlen, DW_E_STORE, "store %s: %s", s->path, sqlite3_errmsg(s->db));
	int rc = DW_OK;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uidvalidity);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = cb(ctx, (uint32_t)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
		if (rc != DW_OK)
			break;
	}
	if (rc == DW_OK && r != SQLITE_DONE)
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: %s", s->path, sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc;
}

int
dw_store_mark_pass(struct dw_store *s, const char *account, int64_t when, char *err, size_t errlen)
{
	/* Once per pass: prepared on demand. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
	                       "INSERT INTO passes (account, last_ok) VALUES (?1, ?2)"
	                       " ON CONFLICT (account) DO UPDATE SET last_ok = excluded.last_ok",
	                       -1, &st, NULL) != SQLITE_OK)
		return dw_err(err, errlen, DW_E_STORE, "store %s: recording the pass of %s: %s", s->path, account,
		              sqlite3_errmsg(s->db));
	int rc = DW_OK;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, when);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = dw_err(err, errlen, DW_E_STORE, "store %s: recording the pass of %s: %s", s->path, account,
		            sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc;
}

int
dw_store_mark_moved(struct dw_store *s, const char *account, uint32_t uidvalidity, const uint32_t *uids, size_t n,
                    char *err, size_t errlen)
{
	int rc = DW_OK;
	int own = sqlite3_get_autocommit(s->db);
	if (own && run(s, ST_BEGIN) != SQLITE_OK)
		return store_err(s, err, errlen, "begin");
	for (size_t i = 0; i < n && rc == DW_OK; i++) {
		sqlite3_stmt *st = agent_stmt(s, ST_MSG_MOVED);
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, uidvalidity);
		sqlite3_bind_int64(st, 3, uids[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = dw_err(err, errlen, DW_E_STORE, "store %s: %s", s->path, sqlite3_errmsg(s->db));
		sqlite3_reset(st);
	}
	if (own) {
		if (rc == DW_OK && run(s, ST_COMMIT) != SQLITE_OK)
			rc = store_err(s, err, errlen, "commit");
		if (rc != DW_OK)
			(void)run(s, ST_ROLLBACK);
	}
	return rc;
}

