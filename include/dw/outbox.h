/*
 * outbox.h - the durable notification outbox (SQLite, the agent's database).
 *
 * Every notification is written here before anything tries to deliver it.
 * An entry is (notifier, idempotency key) unique: writing the same alert
 * twice is a no-op, so a restart never queues a second copy. States:
 *
 *   pending   --claim--> (leased to one process) --OK-->  delivered
 *                                               --RETRY-> pending, next_at later
 *                                               --FAIL/too old--> dead
 *
 * A claim leases the entry to this process (lease_until, lease_pid), so
 * two processes on one database (the agent and `dmarcwatch test-notify`)
 * never deliver it at the same time; leases of processes that died are
 * released on start (dw_outbox_release_dead). Delivered and dead entries
 * are kept for `outbox.keep` for audit, then pruned.
 *
 * All functions run their own statement on the store's connection and
 * return DW_OK or DW_E_STORE with the reason in err. Every time here
 * (now, next_at, lease, created_at, done_at) is in MILLISECONDS since the
 * epoch (or a duration in milliseconds).
 */
#ifndef DW_OUTBOX_H
#define DW_OUTBOX_H

#include <stdint.h>

#include "dmarcwatch/notifier.h"
#include "dw/store.h"

enum dw_outbox_state { DW_OUTBOX_PENDING = 1, DW_OUTBOX_DELIVERED, DW_OUTBOX_DEAD };

struct dw_outbox_entry {
	int64_t id;
	char *notifier;              /* owned */
	char *idem_key;              /* owned */
	char *payload;               /* owned: the notification's JSON */
	enum dw_outbox_state state;
	unsigned attempts;           /* including the claimed one */
	int64_t created_at, next_at, done_at;
	char *last_error;            /* owned, or NULL */
};
void dw_outbox_entry_clear(struct dw_outbox_entry *e); /* frees the strings */

/*
 * Queue n for notifier. n->idempotency_key must be set. *id gets the new
 * entry's id, or the existing one's when the key was queued before
 * (*created = 0 then). created may be NULL.
 */
int dw_outbox_put(struct dw_store *s, const char *notifier, const struct dw_notification *n, int64_t now,
                  int64_t *id, int *created, char *err, size_t errlen);

/*
 * Claim the next due entry of notifier (next_at <= now, not leased by a
 * live holder), or exactly entry only_id when it is not 0. The lease runs
 * until now + lease seconds. Returns 1 with *e filled (attempts already
 * counts this one), 0 when nothing is due, or -DW_E_STORE.
 */
int dw_outbox_claim(struct dw_store *s, const char *notifier, int64_t only_id, int64_t now, int64_t lease,
                    struct dw_outbox_entry *e, char *err, size_t errlen);

/* Outcomes of a claimed entry; each releases the lease. A delivered entry
 * keeps the error of its last failed attempt, for the audit trail. They
 * only change a pending entry: a stale holder cannot undo a delivery. */
int dw_outbox_delivered(struct dw_store *s, int64_t id, int64_t now, char *err, size_t errlen);
int dw_outbox_retry(struct dw_store *s, int64_t id, int64_t next_at, const char *error, char *err, size_t errlen);
int dw_outbox_dead(struct dw_store *s, int64_t id, int64_t now, const char *error, char *err, size_t errlen);
/* Keep the lease while a timed-out call is still running, but record it. */
int dw_outbox_note(struct dw_store *s, int64_t id, int64_t next_at, int64_t lease_until, const char *error,
                   char *err, size_t errlen);

/* Give a claim back without an attempt (the process is stopping). */
int dw_outbox_release(struct dw_store *s, int64_t id, char *err, size_t errlen);
/* Extend a claim's lease (an outcome could not be written yet). */
int dw_outbox_note_lease(struct dw_store *s, int64_t id, int64_t lease_until, char *err, size_t errlen);

/* The earliest next_at of notifier's pending entries (only_id: that one),
 * or INT64_MAX when there is none. */
int dw_outbox_next_due(struct dw_store *s, const char *notifier, int64_t only_id, int64_t *when, char *err,
                       size_t errlen);

/* Release leases held by processes that no longer exist (same host). */
int dw_outbox_release_dead(struct dw_store *s, int64_t now, char *err, size_t errlen);

/* Delete delivered and dead entries finished before `before`. */
int dw_outbox_prune(struct dw_store *s, int64_t before, int64_t *deleted, char *err, size_t errlen);

/* Read one entry (any state). Returns 1, 0 when absent, or -DW_E_STORE. */
int dw_outbox_get(struct dw_store *s, int64_t id, struct dw_outbox_entry *e, char *err, size_t errlen);

/* Counts per state for one notifier (NULL: all), for metrics and `outbox`. */
int dw_outbox_counts(struct dw_store *s, const char *notifier, int64_t *pending, int64_t *delivered,
                     int64_t *dead, char *err, size_t errlen);

/* Every entry, newest first, optionally one state (0 = all). */
typedef int (*dw_outbox_cb)(const struct dw_outbox_entry *e, void *arg);
int dw_outbox_foreach(struct dw_store *s, int state, dw_outbox_cb cb, void *arg, char *err, size_t errlen);

/*
 * Entries left behind by a notifier that is no longer configured: the
 * notifiers with pending entries that are none of names[0..nnames), by
 * name, each with how many entries and when its oldest was queued. *out
 * is NULL and *nout 0 when there is none; free with dw_outbox_strays_free.
 */
struct dw_outbox_stray {
	char *notifier;  /* owned */
	int64_t count;
	int64_t oldest;  /* created_at of its oldest pending entry */
};
int dw_outbox_strays(struct dw_store *s, const char *const *names, size_t nnames, struct dw_outbox_stray **out,
                     size_t *nout, char *err, size_t errlen);
void dw_outbox_strays_free(struct dw_outbox_stray *v, size_t n);

/*
 * Dead-letter notifier's pending entries created at or before `upto` that
 * no live holder has leased at now: state dead, done_at now, last_error
 * error. Like every outcome it only changes pending entries. Then cb (may
 * be NULL) is called once with each entry it changed, in id order (it may
 * use s); *n (may be NULL) gets how many.
 */
int dw_outbox_expire(struct dw_store *s, const char *notifier, int64_t upto, int64_t now, const char *error,
                     dw_outbox_cb cb, void *arg, size_t *n, char *err, size_t errlen);

const char *dw_outbox_state_name(int state);

#endif
