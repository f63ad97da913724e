/*
 * store.h - stage 4: the SQLite store (WAL mode).
 *
 * Reports are deduplicated by (org_name, report_id, policy_domain, begin,
 * end) plus a SHA-256 over the canonical metadata and record multiset: the
 * same key and hash is a duplicate (skipped, counted); the same key with a
 * different hash is a revision (stored; the newest wins; quirk
 * "revised-report"). Records are folded: identical rows are summed.
 *
 * One transaction per input item (a file or a mail), with one savepoint per
 * report inside it, so a mail with three reports is all-or-nothing and a
 * duplicate report costs nothing.
 *
 * The schema carries a version (PRAGMA user_version) and is migrated forward
 * on open. Nothing here knows about days or time zones: see aggregate.h.
 */
#ifndef DW_STORE_H
#define DW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "dw/report.h"
#include "dw/util.h"

struct dw_store;
struct dw_store_report;

/* Where an input item came from; all borrowed, NULL/-1 when unknown. */
struct dw_provenance {
	const char *kind;        /* "file", "imap", "maildir", "stdin" */
	const char *source;      /* the file path, or the account name */
	const char *member;      /* zip member or MIME part description, may be NULL */
	const char *message_id;
	int64_t uidvalidity, uid;/* IMAP; -1 otherwise */
	int64_t received;        /* seconds UTC: INTERNALDATE, a mail file's top Received: or Date:
	                            (importer.h mail_dates), else the file's mtime; -1 unknown */
};

enum dw_store_outcome {
	DW_STORED_NEW = 1,
	DW_STORED_DUPLICATE,
	DW_STORED_REVISION,
};

/* Open (creating and migrating as needed). Fails with DW_E_STORE. */
int dw_store_open(const char *path, struct dw_store **out, char *err, size_t errlen);
void dw_store_close(struct dw_store *s); /* NULL-safe */
/* The connection, for sibling modules that own their tables (outbox.c);
 * they must not use it while a batch or item transaction is open. */
struct sqlite3;
struct sqlite3 *dw_store_sqlite(struct dw_store *s);
const char *dw_store_path(const struct dw_store *s);

/* The item transaction. Inside a batch (below) an item is a savepoint
 * instead, so begin/commit/rollback keep their meaning per item. */
int dw_store_begin(struct dw_store *s, char *err, size_t errlen);
int dw_store_commit(struct dw_store *s, char *err, size_t errlen);
void dw_store_rollback(struct dw_store *s);

/* A batch: one real transaction around many items (the agent commits a
 * fetched batch of messages at once, then moves them). Items committed
 * inside it become durable only with dw_store_batch_commit. */
int dw_store_batch_begin(struct dw_store *s, char *err, size_t errlen);
int dw_store_batch_commit(struct dw_store *s, char *err, size_t errlen); /* rolls back on failure */
void dw_store_batch_rollback(struct dw_store *s);
/* A 64 MiB page cache for bulk imports (the default is 2 MiB, which keeps the agent small). */
void dw_store_bulk_cache(struct dw_store *s);

/*
 * Write one report inside the item transaction: begin, then one call per
 * record as the parser delivers them, then end (or abort). end() decides
 * new / duplicate / revision from the key and hash; a duplicate's rows are
 * rolled back to the report's savepoint. abort() rolls back the report only.
 * The handle is freed by end() and abort(), whatever they return.
 */
int dw_store_report_begin(struct dw_store *s, const struct dw_provenance *prov,
                          struct dw_store_report **out, char *err, size_t errlen);
int dw_store_report_record(struct dw_store_report *r, const struct dw_record *rec, char *err, size_t errlen);
int dw_store_report_end(struct dw_store_report *r, const struct dw_report_meta *meta,
                        const struct dw_quirks *quirks, const struct dw_totals *totals,
                        enum dw_store_outcome *outcome, char *err, size_t errlen);
void dw_store_report_abort(struct dw_store_report *r);

/* Rows for aggregation: current (non-superseded) reports overlapping
 * [from, to) and, when domain is not NULL, for that policy domain; counts are
 * summed per report and per result (and per source IP when by_source). */
struct dw_store_query {
	const char *domain;      /* NULL = all */
	int64_t from, to;        /* seconds UTC; INT64_MIN/INT64_MAX for open ends */
	int by_source;           /* group by source_ip as well */
};
struct dw_store_row {        /* valid during the callback only */
	int64_t report;          /* report row id */
	const char *domain, *org_name, *source_ip; /* source_ip NULL unless by_source */
	int64_t begin, end;
	const char *disposition, *dkim, *spf;       /* may be NULL */
	uint64_t count;
};
int dw_store_foreach(struct dw_store *s, const struct dw_store_query *q,
                     int (*cb)(void *ctx, const struct dw_store_row *row), void *ctx,
                     char *err, size_t errlen);

/*
 * Record-level rows, for facts.c: every record of every current
 * (non-superseded) report overlapping [from, to) (and of q->domain when not
 * NULL; q->by_source is ignored), unfolded beyond the store's own folding,
 * with its report's metadata and policy_published. A report's rows come
 * together. A report without records yields one row with source_ip NULL
 * and count 0, so its policy is still seen.
 */
struct dw_store_rec_row {    /* valid during the callback only */
	int64_t report;          /* report row id */
	const char *domain, *org_name;             /* may be NULL */
	int64_t begin, end;
	int64_t received;        /* seconds UTC: reports.received, else imported_at */
	const char *p, *sp, *np, *adkim, *aspf, *testing; /* policy_published; NULL when absent */
	int pct;                 /* -1 when absent */
	const char *source_ip;   /* NULL: the report has no records */
	const char *disposition, *dkim, *spf;       /* policy_evaluated; may be NULL */
	const char *header_from; /* may be NULL */
	const char *reasons;     /* the stored JSON [{"type", "comment"}], or NULL */
	const char *reason;      /* the first reason's type, or NULL */
	uint64_t count;
};
int dw_store_foreach_records(struct dw_store *s, const struct dw_store_query *q,
                             int (*cb)(void *ctx, const struct dw_store_rec_row *row), void *ctx,
                             char *err, size_t errlen);

/* Counters for tests and `import`: number of current reports and records. */
int dw_store_counts(struct dw_store *s, int64_t *reports, int64_t *records, char *err, size_t errlen);

/* ---- the agent's state (schema version 2) ----
 * A checkpoint is the highest uid handled for an account under one
 * uidvalidity; a verdict row records what happened to one message and where
 * it must be moved. Both are written inside the item transaction of the
 * message, with its reports, so they commit together. */
struct dw_msg_verdict {
	const char *account;
	uint32_t uidvalidity, uid;
	const char *verdict;      /* stored, duplicate, not-a-report, invalid, untrusted */
	const char *reason;       /* may be NULL */
	const char *message_id;   /* may be NULL */
	unsigned reports;         /* reports stored from it */
	const char *folder;       /* target folder; NULL = leave it where it is */
	int64_t received;         /* INTERNALDATE, -1 unknown */
};
int dw_store_checkpoint_get(struct dw_store *s, const char *account, uint32_t *uidvalidity, uint32_t *last_uid,
                            char *err, size_t errlen); /* 0, 0 when none */
int dw_store_checkpoint_set(struct dw_store *s, const char *account, uint32_t uidvalidity, uint32_t last_uid,
                            char *err, size_t errlen);
int dw_store_message_put(struct dw_store *s, const struct dw_msg_verdict *v, char *err, size_t errlen);
/* Messages with a target folder that were not moved yet, ordered by folder then uid. */
int dw_store_pending_moves(struct dw_store *s, const char *account, uint32_t uidvalidity,
                           int (*cb)(void *ctx, uint32_t uid, const char *folder), void *ctx, char *err,
                           size_t errlen);
/* Record that account's pass ended without error at when (seconds UTC);
 * schema version 5, read by metrics.c. Its own statement (autocommit
 * unless a transaction is open). */
int dw_store_mark_pass(struct dw_store *s, const char *account, int64_t when, char *err, size_t errlen);
/* Mark moved (its own transaction unless one is open). */
int dw_store_mark_moved(struct dw_store *s, const char *account, uint32_t uidvalidity, const uint32_t *uids, size_t n,
                        char *err, size_t errlen);

#endif
