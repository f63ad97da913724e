/*
 * outbox.c - the durable notification outbox. See dw/outbox.h.
 *
 * Volumes are small (a few notifications a day), so each call prepares its
 * statement; clarity over caching.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dw/notification_json.h"
#include "dw/outbox.h"
#include "dw/util.h"

static const char *const state_names[] = {NULL, "pending", "delivered", "dead"};

const char *
dw_outbox_state_name(int state)
{
	return state >= 1 && state <= 3 ? state_names[state] : "?";
}

static int
state_parse(const char *s)
{
	for (int i = 1; i <= 3; i++)
		if (s != NULL && strcmp(s, state_names[i]) == 0)
			return i;
	return 0;
}

void
dw_outbox_entry_clear(struct dw_outbox_entry *e)
{
	free(e->notifier);
	free(e->idem_key);
	free(e->payload);
	free(e->last_error);
	memset(e, 0, sizeof *e);
}

static int
db_err(struct dw_store *s, char *err, size_t errlen, const char *what)
{
	return dw_err(err, errlen, DW_E_STORE, "outbox %s: %s: %s", dw_store_path(s), what,
	              sqlite3_errmsg(dw_store_sqlite(s)));
}

static sqlite3_stmt *
prep(struct dw_store *s, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(dw_store_sqlite(s), sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(s, err, errlen, "cannot prepare a statement");
		return NULL;
	}
	return st;
}

/* Step a statement that returns no rows, then finalize it. */
static int
run(struct dw_store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_step(st);
	int out = rc == SQLITE_DONE ? DW_OK : db_err(s, err, errlen, what);
	sqlite3_finalize(st);
	return out;
}

static char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

#define ENTRY_COLS "id, notifier, idem_key, payload, state, attempts, created_at, next_at, done_at, last_error"

static void
read_entry(sqlite3_stmt *st, struct dw_outbox_entry *e)
{
	e->id = sqlite3_column_int64(st, 0);
	e->notifier = col_str(st, 1);
	e->idem_key = col_str(st, 2);
	e->payload = col_str(st, 3);
	e->state = state_parse((const char *)sqlite3_column_text(st, 4));
	e->attempts = (unsigned)sqlite3_column_int(st, 5);
	e->created_at = sqlite3_column_int64(st, 6);
	e->next_at = sqlite3_column_int64(st, 7);
	e->done_at = sqlite3_column_int64(st, 8);
	e->last_error = col_str(st, 9);
}

int
dw_outbox_put(struct dw_store *s, const char *notifier, const struct dw_notification *n, int64_t now, int64_t *id,
              int *created, char *err, size_t errlen)
{
	if (n->idempotency_key == NULL || n->idempotency_key[0] == '\0')
		return dw_err(err, errlen, DW_E_INPUT, "outbox: a notification for %s has no idempotency key", notifier);
	char *json = dw_notification_to_json(n, DW_NJ_NO_ATTEMPT);
	if (json == NULL)
		return dw_err(err, errlen, DW_E_SYS, "outbox: cannot encode the notification for %s (out of memory)",
		              notifier);
	sqlite3_stmt *st = prep(s,
	                        "INSERT INTO outbox (notifier, idem_key, kind, title, payload, created_at, next_at)"
	                        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notifier, idem_key) DO NOTHING",
	                        err, errlen);
	if (st == NULL) {
		free(json);
		return DW_E_STORE;
	}
	sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, n->idempotency_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dw_notify_kind_name(n->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, n->title != NULL ? n->title : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, now);
	int rc = sqlite3_step(st);
	int fresh = sqlite3_changes(dw_store_sqlite(s)) > 0;
	sqlite3_finalize(st);
	free(json);
	if (rc != SQLITE_DONE)
		return db_err(s, err, errlen, "cannot queue a notification");
	if (created != NULL)
		*created = fresh;
	if (fresh) {
		*id = sqlite3_last_insert_rowid(dw_store_sqlite(s));
		return DW_OK;
	}
	st = prep(s, "SELECT id FROM outbox WHERE notifier = ? AND idem_key = ?", err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, n->idempotency_key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? DW_OK : db_err(s, err, errlen, "cannot find a queued notification");
}

int
dw_outbox_claim(struct dw_store *s, const char *notifier, int64_t only_id, int64_t now, int64_t lease,
                struct dw_outbox_entry *e, char *err, size_t errlen)
{
	memset(e, 0, sizeof *e);
	/* One statement, so the pick and the lease are one write: two
	 * processes cannot claim the same row. */
	sqlite3_stmt *st = prep(s,
	                        "UPDATE outbox SET lease_until = ?1 + ?2, lease_pid = ?3, attempts = attempts + 1"
	                        " WHERE id = (SELECT id FROM outbox WHERE notifier = ?4 AND state = 'pending'"
	                        "  AND next_at <= ?1 AND lease_until <= ?1 AND (?5 = 0 OR id = ?5)"
	                        "  ORDER BY next_at, id LIMIT 1)"
	                        " RETURNING " ENTRY_COLS,
	                        err, errlen);
	if (st == NULL)
		return -DW_E_STORE;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, lease);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)getpid());
	sqlite3_bind_text(st, 4, notifier, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, only_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_entry(st, e);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		dw_outbox_entry_clear(e);
		db_err(s, err, errlen, "cannot claim a notification");
		return -DW_E_STORE;
	}
	return e->id != 0 ? 1 : 0;
}

static int
finish(struct dw_store *s, int64_t id, const char *state, int64_t now, const char *error, const char *what, char *err,
       size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "UPDATE outbox SET state = ?2, done_at = ?3, last_error = COALESCE(?4, last_error), lease_until = 0,"
	                        " lease_pid = 0 WHERE id = ?1 AND state = 'pending'",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (error != NULL)
		sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
	return run(s, st, what, err, errlen);
}

int
dw_outbox_delivered(struct dw_store *s, int64_t id, int64_t now, char *err, size_t errlen)
{
	return finish(s, id, "delivered", now, NULL, "cannot record a delivery", err, errlen);
}

int
dw_outbox_dead(struct dw_store *s, int64_t id, int64_t now, const char *error, char *err, size_t errlen)
{
	return finish(s, id, "dead", now, error, "cannot record a dead letter", err, errlen);
}

int
dw_outbox_note(struct dw_store *s, int64_t id, int64_t next_at, int64_t lease_until, const char *error, char *err,
               size_t errlen)
{
	sqlite3_stmt *st = prep(s, "UPDATE outbox SET next_at = ?2, lease_until = ?3, last_error = ?4 WHERE id = ?1"
	                        " AND state = 'pending'",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, next_at);
	sqlite3_bind_int64(st, 3, lease_until);
	if (error != NULL)
		sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
	return run(s, st, "cannot record a failed attempt", err, errlen);
}

int
dw_outbox_retry(struct dw_store *s, int64_t id, int64_t next_at, const char *error, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "UPDATE outbox SET next_at = ?2, last_error = ?3, lease_until = 0, lease_pid = 0"
	                        " WHERE id = ?1 AND state = 'pending'",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, next_at);
	if (error != NULL)
		sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
	return run(s, st, "cannot reschedule a notification", err, errlen);
}

int
dw_outbox_release(struct dw_store *s, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "UPDATE outbox SET lease_until = 0, lease_pid = 0, attempts = MAX(attempts - 1, 0)"
	                        " WHERE id = ?1 AND state = 'pending'",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	return run(s, st, "cannot give a claim back", err, errlen);
}

int
dw_outbox_note_lease(struct dw_store *s, int64_t id, int64_t lease_until, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s, "UPDATE outbox SET lease_until = ?2 WHERE id = ?1 AND state = 'pending'", err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, lease_until);
	return run(s, st, "cannot extend a lease", err, errlen);
}

int
dw_outbox_next_due(struct dw_store *s, const char *notifier, int64_t only_id, int64_t *when, char *err,
                   size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "SELECT MIN(MAX(next_at, lease_until)) FROM outbox WHERE notifier = ?1"
	                        " AND state = 'pending' AND (?2 = 0 OR id = ?2)",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, only_id);
	int rc = sqlite3_step(st);
	*when = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : INT64_MAX;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? DW_OK : db_err(s, err, errlen, "cannot read the next due time");
}

int
dw_outbox_release_dead(struct dw_store *s, int64_t now, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "SELECT DISTINCT lease_pid FROM outbox WHERE state = 'pending' AND lease_until > ?"
	                        " AND lease_pid <> 0",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, now);
	int64_t dead[64];
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(st, 0);
		if (pid > 0 && pid < INT32_MAX && pid != getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH &&
		    n < 64)
			dead[n++] = pid;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(s, err, errlen, "cannot read leases");
	for (size_t i = 0; i < n; i++) {
		st = prep(s, "UPDATE outbox SET lease_until = 0, lease_pid = 0 WHERE lease_pid = ? AND state = 'pending'",
		          err, errlen);
		if (st == NULL)
			return DW_E_STORE;
		sqlite3_bind_int64(st, 1, dead[i]);
		if ((rc = run(s, st, "cannot release a lease", err, errlen)) != DW_OK)
			return rc;
	}
	return DW_OK;
}

int
dw_outbox_prune(struct dw_store *s, int64_t before, int64_t *deleted, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM outbox WHERE state <> 'pending' AND done_at < ?", err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_int64(st, 1, before);
	int rc = run(s, st, "cannot prune", err, errlen);
	if (deleted != NULL)
		*deleted = rc == DW_OK ? sqlite3_changes(dw_store_sqlite(s)) : 0;
	return rc;
}

int
dw_outbox_get(struct dw_store *s, int64_t id, struct dw_outbox_entry *e, char *err, size_t errlen)
{
	memset(e, 0, sizeof *e);
	sqlite3_stmt *st = prep(s, "SELECT " ENTRY_COLS " FROM outbox WHERE id = ?", err, errlen);
	if (st == NULL)
		return -DW_E_STORE;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_entry(st, e);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	db_err(s, err, errlen, "cannot read an entry");
	return -DW_E_STORE;
}

int
dw_outbox_counts(struct dw_store *s, const char *notifier, int64_t *pending, int64_t *delivered, int64_t *dead,
                 char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s,
	                        "SELECT state, COUNT(*) FROM outbox WHERE ?1 IS NULL OR notifier = ?1 GROUP BY state",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	if (notifier != NULL)
		sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
	*pending = *delivered = *dead = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t c = sqlite3_column_int64(st, 1);
		switch (state_parse((const char *)sqlite3_column_text(st, 0))) {
		case DW_OUTBOX_PENDING: *pending = c; break;
		case DW_OUTBOX_DELIVERED: *delivered = c; break;
		case DW_OUTBOX_DEAD: *dead = c; break;
		default: break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? DW_OK : db_err(s, err, errlen, "cannot count entries");
}

int
dw_outbox_foreach(struct dw_store *s, int state, dw_outbox_cb cb, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = prep(s, "SELECT " ENTRY_COLS " FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC",
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	if (state != 0)
		sqlite3_bind_text(st, 1, dw_outbox_state_name(state), -1, SQLITE_STATIC);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct dw_outbox_entry e;
		memset(&e, 0, sizeof e);
		read_entry(st, &e);
		stop = cb(&e, arg) != 0;
		dw_outbox_entry_clear(&e);
	}
	sqlite3_finalize(st);
	return stop || rc == SQLITE_DONE ? DW_OK : db_err(s, err, errlen, "cannot list entries");
}

void
dw_outbox_strays_free(struct dw_outbox_stray *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].notifier);
	free(v);
}

int
dw_outbox_strays(struct dw_store *s, const char *const *names, size_t nnames, struct dw_outbox_stray **out,
                 size_t *nout, char *err, size_t errlen)
{
	*out = NULL;
	*nout = 0;
	/* One placeholder per configured name: a handful. */
	size_t cap = 256 + 2 * nnames;
	char *sql = xmalloc(cap);
	size_t len = (size_t)snprintf(sql, cap, "SELECT notifier, COUNT(*), MIN(created_at) FROM outbox"
	                                        " WHERE state = 'pending'%s",
	                              nnames > 0 ? " AND notifier NOT IN (" : "");
	for (size_t i = 0; i < nnames; i++)
		len += (size_t)snprintf(sql + len, cap - len, "%s", i + 1 < nnames ? "?," : "?)");
	snprintf(sql + len, cap - len, " GROUP BY notifier ORDER BY notifier");
	sqlite3_stmt *st = prep(s, sql, err, errlen);
	free(sql);
	if (st == NULL)
		return DW_E_STORE;
	for (size_t i = 0; i < nnames; i++)
		sqlite3_bind_text(st, (int)i + 1, names[i], -1, SQLITE_STATIC);
	struct dw_outbox_stray *v = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n].notifier = col_str(st, 0);
		v[n].count = sqlite3_column_int64(st, 1);
		v[n].oldest = sqlite3_column_int64(st, 2);
		if (v[n].notifier == NULL)
			v[n].notifier = xstrdup("");
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		dw_outbox_strays_free(v, n);
		return db_err(s, err, errlen, "cannot list the notifiers of pending entries");
	}
	*out = v;
	*nout = n;
	return DW_OK;
}

static int
by_id(const void *a, const void *b)
{
	int64_t x = ((const struct dw_outbox_entry *)a)->id, y = ((const struct dw_outbox_entry *)b)->id;
	return (x > y) - (x < y);
}

int
dw_outbox_expire(struct dw_store *s, const char *notifier, int64_t upto, int64_t now, const char *error,
                 dw_outbox_cb cb, void *arg, size_t *n, char *err, size_t errlen)
{
	if (n != NULL)
		*n = 0;
	/* One statement: the state test and the write cannot be split by a
	 * delivery recorded in between by another process. */
	sqlite3_stmt *st = prep(s,
	                        "UPDATE outbox SET state = 'dead', done_at = ?3, last_error = ?4, lease_until = 0,"
	                        " lease_pid = 0 WHERE notifier = ?1 AND state = 'pending' AND created_at <= ?2"
	                        " AND lease_until <= ?3 RETURNING " ENTRY_COLS,
	                        err, errlen);
	if (st == NULL)
		return DW_E_STORE;
	sqlite3_bind_text(st, 1, notifier, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, upto);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
	struct dw_outbox_entry *v = NULL;
	size_t nv = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = xreallocarray(v, nv + 1, sizeof *v);
		memset(&v[nv], 0, sizeof v[nv]);
		read_entry(st, &v[nv++]);
	}
	sqlite3_finalize(st);
	int out = rc == SQLITE_DONE ? DW_OK : db_err(s, err, errlen, "cannot dead-letter the entries of a notifier");
	if (nv > 1) /* RETURNING gives rows in no promised order */
		qsort(v, nv, sizeof *v, by_id);
	for (size_t i = 0; i < nv; i++) {
		if (out == DW_OK && cb != NULL)
			cb(&v[i], arg);
		dw_outbox_entry_clear(&v[i]);
	}
	free(v);
	if (out == DW_OK && n != NULL)
		*n = nv;
	return out;
}
