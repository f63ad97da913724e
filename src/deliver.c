/*
 * deliver.c - the dispatcher and worker threads behind the outbox.
 * The design and its reasons are in dw/deliver.h.
 *
 * Locking: one mutex (d->mu) guards every worker's slot and the flags;
 * SQL and plugin calls run without it. Only the dispatcher thread uses
 * the database connection.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dw/deliver.h"
#include "dw/log.h"
#include "dw/notification_json.h"
#include "dw/outbox.h"
#include "dw/store.h"
#include "dw/util.h"

#define OVERRUN_GRACE_MS 5000
#define LEASE_EXTRA_MS 60000          /* a lease outlives the call's timeout by this */
#define STUCK_LEASE_MS (3600 * 1000)  /* held while an overrunning call is still out */
#define IDLE_WAKE_MS 5000             /* look at the outbox at least this often: other
                                         processes (test-notify --queue) add entries */
#define PRUNE_EVERY_MS (3600 * 1000)
/* How long the entries of a notifier that is no longer configured wait
 * for it to come back (renamed back, or a reverted edit): the default
 * max_age of a notifier. */
#define STRAY_MAX_AGE DW_NOTIFIER_MAX_AGE_DEFAULT
/* How often they are looked at: an age of a day needs no finer clock, and
 * the dispatcher wakes every few seconds. */
#define STRAYS_EVERY_MS (60 * 1000)

enum wstate { W_IDLE, W_BUSY, W_DONE };

struct worker {
	struct dw_deliver *d;
	struct dw_notifier_inst *ni;
	const struct dw_notifier_cfg *tc;
	pthread_t th;
	int started;
	pthread_cond_t cv;                /* the worker waits here for a job */
	enum wstate state;
	int overdue;                      /* the call overran; its entry was rescheduled */
	/* The job (valid while BUSY/DONE): */
	int64_t id;
	int64_t created_at;
	unsigned attempt;
	struct dw_notification *n;        /* parsed from the payload; owned */
	int64_t deadline;                 /* monotonic ms */
	int64_t started_at;               /* monotonic ms */
	int64_t finished_at;              /* monotonic ms */
	/* Its outcome (DONE): */
	int result;
	unsigned retry_after;
	char err[1024];
};

struct dw_deliver {
	struct dw_notifiers *ns;
	struct dw_store *db;
	struct dw_deliver_opts o;
	char *only_notifier;
	pthread_mutex_t mu;
	pthread_cond_t cv;                /* the dispatcher waits here */
	pthread_t th;
	int stop, kicked, running;
	int quiet;                        /* the last pass found nothing due and nothing running */
	struct worker *w;
	size_t nw;
	uint64_t rng;
	int64_t last_prune;
	/* Entries of notifiers that are not configured (the agent only, not
	 * test-notify): the configured names, borrowed from ns. */
	int strays_on;
	const char **names;
	size_t nnames;
	int strays_failed;                /* the last look failed (logged once) */
	int64_t last_strays;              /* dw_mono_ms() of the last look; 0: never */
};

static void
abs_deadline(struct timespec *ts, int64_t mono)
{
	ts->tv_sec = (time_t)(mono / 1000);
	ts->tv_nsec = (long)(mono % 1000) * 1000000L;
}

/* xorshift64*: jitter needs no quality, only no shared state. */
static double
jitter(struct dw_deliver *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	uint64_t r = d->rng * 2685821657736338717ULL;
	return 0.8 + 0.4 * (double)(r >> 11) / (double)(1ULL << 53);
}

static int64_t
backoff_ms(struct dw_deliver *d, const struct dw_notifier_cfg *tc, unsigned attempt, unsigned retry_after)
{
	if (retry_after > 86400)
		retry_after = 86400; /* a plugin's hint, bounded: max_age still applies */
	if (retry_after > 0) /* the receiver said how long: at least that, a little more spreads a herd */
		return (int64_t)retry_after * 1000 + (int64_t)((jitter(d) - 0.8) * 250.0 * retry_after);
	double s = tc->retry_min;
	for (unsigned i = 1; i < attempt && s < tc->retry_max; i++)
		s *= 2;
	if (s > tc->retry_max)
		s = tc->retry_max;
	return (int64_t)(s * 1000.0 * jitter(d));
}

/* ------------------------------------------------------------------ */
/* Worker                                                              */

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct dw_deliver *d = w->d;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (w->state != W_BUSY && !d->stop)
			pthread_cond_wait(&w->cv, &d->mu);
		if (w->state != W_BUSY) /* stopping and idle */
			break;
		const struct dw_notification *n = w->n;
		pthread_mutex_unlock(&d->mu);

		unsigned ra = 0;
		char err[sizeof w->err];
		int r = dw_notifier_call(w->ni, n, &ra, err, sizeof err);

		pthread_mutex_lock(&d->mu);
		w->finished_at = dw_mono_ms();
		w->result = r;
		w->retry_after = ra;
		memcpy(w->err, err, sizeof err);
		w->state = W_DONE;
		pthread_cond_signal(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Dispatcher                                                          */

/* The one message for an entry that outlived max_age (logged once: the
 * entry is dead afterwards). */
static void
give_up(const char *name, int64_t id, const struct dw_notification *n, unsigned attempts, unsigned max_age,
        const char *last)
{
	log_error("notifier %s: entry %lld (%s \"%s\") still failing after %u attempt%s and %u s (max_age); "
	          "giving up: %s (dead letter; see `dmarcwatch outbox`)",
	          name, (long long)id, dw_notify_kind_name(n->kind), n->title, attempts, attempts == 1 ? "" : "s",
	          max_age, last);
}

/*
 * Write a finished call's outcome. Returns DW_OK, or DW_E_STORE when the
 * database refused (locked by a long batch, disk full): the caller keeps
 * the outcome and tries again on the next pass, renewing the lease, so a
 * success is never forgotten and delivered twice.
 */
static int
record(struct dw_deliver *d, struct worker *w, int overdue)
{
	const char *name = dw_notifier_name(w->ni);
	const struct dw_notifier_cfg *tc = w->tc;
	char err[512];
	int64_t now = dw_wall_ms();
	double took = (double)(w->finished_at - w->started_at) / 1000.0;
	int rc = DW_OK;
	if (w->result == DW_NOTIFY_OK) {
		rc = dw_outbox_delivered(d->db, w->id, now, err, sizeof err);
		if (rc == DW_OK)
			log_info("notifier %s: delivered entry %lld (%s \"%s\") on attempt %u in %.2f s%s", name,
			         (long long)w->id, dw_notify_kind_name(w->n->kind), w->n->title, w->attempt, took,
			         overdue ? ", after its timeout" : "");
	} else if (w->result == DW_NOTIFY_FAIL) {
		rc = dw_outbox_dead(d->db, w->id, now, w->err, err, sizeof err);
		if (rc == DW_OK)
			log_error("notifier %s: entry %lld (%s \"%s\") failed on attempt %u and will not be retried: %s "
			          "(dead letter; see `dmarcwatch outbox`)",
			          name, (long long)w->id, dw_notify_kind_name(w->n->kind), w->n->title, w->attempt, w->err);
	} else if (now - w->created_at >= (int64_t)tc->max_age * 1000) {
		rc = dw_outbox_dead(d->db, w->id, now, w->err, err, sizeof err);
		if (rc == DW_OK)
			give_up(name, w->id, w->n, w->attempt, tc->max_age, w->err);
	} else if (overdue) {
		/* Already rescheduled when it overran; just free the lease. */
		struct dw_outbox_entry e;
		int r = dw_outbox_get(d->db, w->id, &e, err, sizeof err);
		rc = r < 0 ? DW_E_STORE : r == 0 ? DW_OK : dw_outbox_retry(d->db, w->id, e.next_at, w->err, err, sizeof err);
		dw_outbox_entry_clear(&e);
		if (rc == DW_OK)
			log_warn("notifier %s: entry %lld: the overrunning call returned after %.1f s: %s", name,
			         (long long)w->id, took, w->err);
	} else {
		int64_t delay = backoff_ms(d, tc, w->attempt, w->retry_after);
		rc = dw_outbox_retry(d->db, w->id, now + delay, w->err, err, sizeof err);
		if (rc == DW_OK)
			log_warn("notifier %s: entry %lld attempt %u failed, retry in %.1f s%s: %s", name, (long long)w->id,
			         w->attempt, (double)delay / 1000.0, w->retry_after > 0 ? " (as the receiver asked)" : "",
			         w->err);
	}
	if (rc != DW_OK) {
		log_error("notifier %s: entry %lld: cannot record the outcome of attempt %u (%s): %s; trying again",
		          name, (long long)w->id, w->attempt, w->result == DW_NOTIFY_OK ? "delivered" : "failed", err);
		/* Keep the entry ours while we retry the write. */
		dw_outbox_note_lease(d->db, w->id, now + STUCK_LEASE_MS, err, sizeof err);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Entries of notifiers that are no longer configured                  */

/* Said once per notifier when deliveries start (at start, after a reload). */
static void
warn_strays(struct dw_deliver *d)
{
	char err[512];
	struct dw_outbox_stray *v = NULL;
	size_t n = 0;
	if (dw_outbox_strays(d->db, d->names, d->nnames, &v, &n, err, sizeof err) != DW_OK) {
		log_error("%s; entries of notifiers that are no longer configured are looked at again on the next pass",
		          err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		log_warn("%lld notification(s) queued for notifier '%s', which is no longer configured: they stay queued "
		         "for up to %u h in case it comes back (rename it back, or `dmarcwatch outbox --state pending` to "
		         "see them), then are dead-lettered",
		         (long long)v[i].count, v[i].notifier, STRAY_MAX_AGE / 3600);
	dw_outbox_strays_free(v, n);
}

/* The one message for each stray entry dead-lettered. */
static int
stray_dead(const struct dw_outbox_entry *e, void *arg)
{
	(void)arg;
	struct dw_notification *n = NULL;
	char perr[256];
	if (e->payload != NULL && dw_notification_from_json(e->payload, strlen(e->payload), &n, perr, sizeof perr) == 0)
		log_error("notifier %s: entry %lld (%s \"%s\") still queued after %u s (the default max_age); giving up: "
		          "%s (dead letter; see `dmarcwatch outbox --state dead`)",
		          e->notifier, (long long)e->id, dw_notify_kind_name(n->kind), n->title, STRAY_MAX_AGE,
		          e->last_error);
	else
		log_error("notifier %s: entry %lld still queued after %u s (the default max_age); giving up: %s "
		          "(dead letter; see `dmarcwatch outbox --state dead`)",
		          e->notifier, (long long)e->id, STRAY_MAX_AGE, e->last_error);
	dw_notification_free(n);
	return 0;
}

/* At most every STRAYS_EVERY_MS: dead-letter the stray entries older
 * than STRAY_MAX_AGE. Rows of configured notifiers are never looked at;
 * a stray whose notifier comes back before then is delivered as usual. */
static void
expire_strays(struct dw_deliver *d)
{
	char err[512];
	struct dw_outbox_stray *v = NULL;
	size_t n = 0;
	int64_t now = dw_wall_ms(), upto = now - (int64_t)STRAY_MAX_AGE * 1000;
	int rc = dw_outbox_strays(d->db, d->names, d->nnames, &v, &n, err, sizeof err);
	for (size_t i = 0; rc == DW_OK && i < n; i++) {
		if (v[i].oldest > upto)
			continue;
		char why[160];
		snprintf(why, sizeof why, "notifier '%s' is no longer configured", v[i].notifier);
		rc = dw_outbox_expire(d->db, v[i].notifier, upto, now, why, stray_dead, NULL, NULL, err, sizeof err);
	}
	dw_outbox_strays_free(v, n);
	if (rc != DW_OK && !d->strays_failed)
		log_error("%s; trying again on the next pass", err);
	d->strays_failed = rc != DW_OK;
}

/* The call overran timeout + grace: count the attempt as failed now. */
static void
overran(struct dw_deliver *d, struct worker *w)
{
	char err[512], why[160];
	int64_t now = dw_wall_ms();
	int64_t delay = backoff_ms(d, w->tc, w->attempt, 0);
	snprintf(why, sizeof why, "timed out: the plugin did not return within %u s", w->tc->timeout);
	log_warn("notifier %s: entry %lld attempt %u: %s; it will be retried once the call returns, other "
	         "notifiers are not affected",
	         dw_notifier_name(w->ni), (long long)w->id, w->attempt, why);
	if (dw_outbox_note(d->db, w->id, now + delay, now + STUCK_LEASE_MS, why, err, sizeof err) != DW_OK)
		log_error("notifier %s: %s", dw_notifier_name(w->ni), err);
}

/* Claim the next due entry for an idle worker. Returns 1 when it got one. */
static int
dispatch(struct dw_deliver *d, struct worker *w)
{
	char err[512];
	struct dw_outbox_entry e;
	const char *name = dw_notifier_name(w->ni);
	for (;;) {
		int64_t now = dw_wall_ms();
		int64_t lease = (int64_t)w->tc->timeout * 1000 + LEASE_EXTRA_MS;
		int r = dw_outbox_claim(d->db, name, d->o.only_id, now, lease, &e, err, sizeof err);
		if (r < 0) {
			log_error("notifier %s: %s", name, err);
			return 0;
		}
		if (r == 0)
			return 0;
		struct dw_notification *n = NULL;
		char perr[256];
		if (dw_notification_from_json(e.payload, strlen(e.payload), &n, perr, sizeof perr) != 0) {
			char why[320];
			snprintf(why, sizeof why, "the stored notification cannot be read back: %s", perr);
			log_error("notifier %s: entry %lld: %s (dead letter)", name, (long long)e.id, why);
			dw_outbox_dead(d->db, e.id, now, why, err, sizeof err);
			dw_outbox_entry_clear(&e);
			continue;
		}
		if (now - e.created_at >= (int64_t)w->tc->max_age * 1000) {
			char why[160];
			snprintf(why, sizeof why, "expired: older than max_age (%u s) before it could be delivered",
			         w->tc->max_age);
			give_up(name, e.id, n, e.attempts - 1, w->tc->max_age, e.last_error != NULL ? e.last_error : why);
			dw_outbox_dead(d->db, e.id, now, e.last_error != NULL ? e.last_error : why, err, sizeof err);
			dw_notification_free(n);
			dw_outbox_entry_clear(&e);
			continue;
		}
		n->attempt = e.attempts;
		pthread_mutex_lock(&d->mu);
		if (d->stop) {
			/* Stopping: give the claim back instead of starting a call. */
			pthread_mutex_unlock(&d->mu);
			dw_outbox_release(d->db, e.id, err, sizeof err);
			dw_notification_free(n);
			dw_outbox_entry_clear(&e);
			return 0;
		}
		w->id = e.id;
		w->created_at = e.created_at;
		w->attempt = e.attempts;
		w->n = n;
		w->started_at = dw_mono_ms();
		w->deadline = w->started_at + (int64_t)w->tc->timeout * 1000 + OVERRUN_GRACE_MS;
		w->overdue = 0;
		w->state = W_BUSY;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&d->mu);
		log_debug("notifier %s: entry %lld attempt %u started", name, (long long)e.id, e.attempts);
		dw_outbox_entry_clear(&e);
		return 1;
	}
}

static void *
dispatcher_main(void *arg)
{
	struct dw_deliver *d = arg;
	char err[512];
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		d->kicked = 0;
		int64_t wake = dw_mono_ms() + IDLE_WAKE_MS;
		int active = 0, retry_record = 0;
		d->quiet = 0;
		for (size_t i = 0; i < d->nw && !d->stop; i++) {
			struct worker *w = &d->w[i];
			if (w->state == W_DONE) {
				int overdue = w->overdue;
				pthread_mutex_unlock(&d->mu);
				int recorded = record(d, w, overdue) == DW_OK;
				pthread_mutex_lock(&d->mu);
				if (!recorded) {
					retry_record = 1;
					continue;
				}
				dw_notification_free(w->n);
				w->n = NULL;
				w->state = W_IDLE;
			}
			if (d->stop)
				break;
			if (w->state == W_BUSY) {
				if (!w->overdue && dw_mono_ms() >= w->deadline) {
					w->overdue = 1;
					pthread_mutex_unlock(&d->mu);
					overran(d, w);
					pthread_mutex_lock(&d->mu);
				}
				if (!w->overdue && w->deadline < wake)
					wake = w->deadline;
				active = 1;
				continue;
			}
			/* Idle: start the next due entry, or learn when one is due. */
			pthread_mutex_unlock(&d->mu);
			int got = dispatch(d, w);
			int64_t due = INT64_MAX;
			if (!got && dw_outbox_next_due(d->db, dw_notifier_name(w->ni), d->o.only_id, &due, err, sizeof err) !=
			                DW_OK)
				log_error("%s", err);
			pthread_mutex_lock(&d->mu);
			if (got && w->state == W_BUSY && w->deadline < wake)
				wake = w->deadline;
			active |= got;
			if (!got && due != INT64_MAX) {
				int64_t at = dw_mono_ms() + (due - dw_wall_ms());
				if (at < wake)
					wake = at;
			}
		}
		if (d->strays_on && !d->stop &&
		    (d->last_strays == 0 || dw_mono_ms() - d->last_strays >= STRAYS_EVERY_MS)) {
			d->last_strays = dw_mono_ms();
			pthread_mutex_unlock(&d->mu);
			expire_strays(d);
			pthread_mutex_lock(&d->mu);
		}
		if (d->o.keep > 0 && dw_mono_ms() - d->last_prune >= PRUNE_EVERY_MS) {
			d->last_prune = dw_mono_ms();
			pthread_mutex_unlock(&d->mu);
			int64_t gone = 0;
			if (dw_outbox_prune(d->db, dw_wall_ms() - (int64_t)d->o.keep * 1000, &gone, err, sizeof err) != DW_OK)
				log_error("%s", err);
			else if (gone > 0)
				log_info("outbox: pruned %lld finished entries older than %u s", (long long)gone, d->o.keep);
			pthread_mutex_lock(&d->mu);
		}
		int pending_done = 0;
		for (size_t i = 0; i < d->nw; i++)
			pending_done |= d->w[i].state == W_DONE;
		d->quiet = !active && !pending_done && !d->kicked;
		if (retry_record) /* the database refused an outcome: try again in a second */
			wake = dw_mono_ms() + 1000;
		else if (d->stop || d->kicked || pending_done)
			continue;
		struct timespec ts;
		abs_deadline(&ts, wake > dw_mono_ms() ? wake : dw_mono_ms() + 1);
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Interface                                                           */

int
dw_deliver_start(struct dw_notifiers *ns, const struct dw_deliver_opts *o, struct dw_deliver **out, char *err,
                 size_t errlen)
{
	*out = NULL;
	struct dw_deliver *d = xcalloc(1, sizeof *d);
	d->ns = ns;
	d->o = *o;
	d->only_notifier = xstrdup(o->only_notifier);
	d->o.only_notifier = d->only_notifier;
	d->rng = (uint64_t)dw_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
	if (d->rng == 0)
		d->rng = 1;
	d->last_prune = dw_mono_ms() - PRUNE_EVERY_MS; /* prune once at start */
	int rc = dw_store_open(o->db_path, &d->db, err, errlen);
	if (rc != DW_OK) {
		free(d->only_notifier);
		free(d);
		return rc;
	}
	/* The agent holds the write lock for a whole fetched batch: wait longer
	 * than the agent's connections do before calling the database busy. */
	sqlite3_busy_timeout(dw_store_sqlite(d->db), 30000);
	if ((rc = dw_outbox_release_dead(d->db, dw_wall_ms(), err, errlen)) != DW_OK) {
		dw_store_close(d->db);
		free(d->only_notifier);
		free(d);
		return rc;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, &ca);
	size_t n = dw_notifiers_count(ns);
	d->w = xcalloc(n + 1, sizeof *d->w);
	for (size_t i = 0; i < n; i++) {
		struct dw_notifier_inst *ni = dw_notifiers_at(ns, i);
		if (d->only_notifier != NULL && strcmp(dw_notifier_name(ni), d->only_notifier) != 0)
			continue;
		struct worker *w = &d->w[d->nw++];
		w->d = d;
		w->ni = ni;
		w->tc = dw_notifier_config(ni);
		pthread_cond_init(&w->cv, &ca);
	}
	pthread_condattr_destroy(&ca);
	/* Only the agent looks after the entries of notifiers that are gone:
	 * test-notify delivers one entry and knows nothing of the others. */
	if (o->only_id == 0 && o->only_notifier == NULL) {
		d->strays_on = 1;
		d->names = xcalloc(n + 1, sizeof *d->names);
		for (size_t i = 0; i < n; i++)
			d->names[d->nnames++] = dw_notifier_name(dw_notifiers_at(ns, i));
		warn_strays(d);
	}
	/* Threads start only now, after every plugin's init() (see the ABI).
	 * They block the agent's signals, so SIGTERM/SIGHUP reach the main
	 * thread (whose poll() they must interrupt) and never a plugin call. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int e = 0;
	for (size_t i = 0; i < d->nw && e == 0; i++)
		if ((e = pthread_create(&d->w[i].th, NULL, worker_main, &d->w[i])) == 0)
			d->w[i].started = 1;
	if (e == 0 && (e = pthread_create(&d->th, NULL, dispatcher_main, d)) == 0)
		d->running = 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		rc = dw_err(err, errlen, DW_E_SYS, "cannot start a delivery thread: %s", strerror(e));
		goto fail;
	}
	*out = d;
	return DW_OK;
fail:
	dw_deliver_stop(d, 0);
	return rc;
}

void
dw_deliver_kick(struct dw_deliver *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->kicked = 1;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

int
dw_deliver_drain(struct dw_deliver *d, unsigned timeout_ms)
{
	if (d == NULL)
		return 1;
	int64_t until = dw_mono_ms() + timeout_ms;
	struct timespec tick = {0, 20 * 1000000L};
	dw_deliver_kick(d);
	nanosleep(&tick, NULL);
	for (;;) {
		pthread_mutex_lock(&d->mu);
		int quiet = d->quiet && !d->kicked;
		pthread_mutex_unlock(&d->mu);
		if (quiet)
			return 1;
		if (dw_mono_ms() >= until)
			return 0;
		nanosleep(&tick, NULL);
	}
}

int
dw_deliver_stop(struct dw_deliver *d, unsigned grace_ms)
{
	if (d == NULL)
		return 0;
	pthread_mutex_lock(&d->mu);
	d->stop = 1;
	pthread_cond_signal(&d->cv);
	for (size_t i = 0; i < d->nw; i++)
		pthread_cond_signal(&d->w[i].cv);
	pthread_mutex_unlock(&d->mu);
	if (d->running)
		pthread_join(d->th, NULL);

	/* Wait for calls in progress, up to grace_ms. */
	int64_t until = dw_mono_ms() + grace_ms;
	int stuck = 0;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		stuck = 0;
		for (size_t i = 0; i < d->nw; i++)
			stuck |= d->w[i].state == W_BUSY;
		if (!stuck || dw_mono_ms() >= until)
			break;
		struct timespec ts;
		abs_deadline(&ts, until);
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	/* Outcomes that came in: record them (the dispatcher has stopped).
	 * The states are read under the lock: a worker may finish now. */
	for (size_t i = 0; i < d->nw; i++) {
		struct worker *w = &d->w[i];
		if (w->state != W_DONE)
			continue;
		int overdue = w->overdue;
		pthread_mutex_unlock(&d->mu);
		record(d, w, overdue); /* on failure the lease keeps the entry until it expires */
		pthread_mutex_lock(&d->mu);
		dw_notification_free(w->n);
		w->n = NULL;
		w->state = W_IDLE;
	}
	stuck = 0;
	for (size_t i = 0; i < d->nw; i++)
		stuck |= d->w[i].state == W_BUSY;
	if (stuck) {
		for (size_t i = 0; i < d->nw; i++) {
			struct worker *w = &d->w[i];
			if (w->state == W_BUSY) {
				log_warn("notifier %s: entry %lld: the plugin call is still running at shutdown; it is "
				         "abandoned and the entry will be retried",
				         dw_notifier_name(w->ni), (long long)w->id);
				pthread_detach(w->th);
			}
		}
		pthread_mutex_unlock(&d->mu);
		for (size_t i = 0; i < d->nw; i++)
			if (d->w[i].started && d->w[i].state != W_BUSY)
				pthread_join(d->w[i].th, NULL);
		/* d stays allocated for the running thread; so must ns. */
		return 1;
	}
	pthread_mutex_unlock(&d->mu);
	for (size_t i = 0; i < d->nw; i++) {
		if (d->w[i].started)
			pthread_join(d->w[i].th, NULL);
		pthread_cond_destroy(&d->w[i].cv);
	}
	dw_store_close(d->db);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d->w);
	free(d->names);
	free(d->only_notifier);
	free(d);
	return 0;
}
