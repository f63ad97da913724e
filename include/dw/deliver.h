/*
 * deliver.h - delivering the outbox through the loaded notifiers.
 *
 * Threads, and why: a plugin call may block for its whole timeout (an HTTP
 * POST to a slow Slack, an SMTP dialogue, a child process), and plugins are
 * written against blocking libraries. So each notifier instance gets its
 * own worker thread that makes the blocking call, and one dispatcher thread
 * owns the outbox (its own SQLite connection): it claims due entries, hands
 * each to the idle worker of its notifier, records the outcome, and
 * schedules retries. The agent's thread (IMAP, parsing) never waits for a
 * notifier; a slow or hung notifier holds up only its own queue.
 *
 * Bounding a call: the plugin gets host->timeout_ms and must honour it. If
 * it overruns by more than a grace of 5 s, the dispatcher records the
 * attempt as timed out (logged once), schedules the retry and keeps the
 * lease; when the call finally returns, its result is recorded (a late OK
 * still counts as delivered) and the worker takes new work. A thread
 * cannot be killed safely, so this is as far as bounding goes in-process;
 * the exec plugin kills its child itself.
 *
 * Outcomes: OK -> delivered. RETRY -> next attempt after the plugin's
 * retry-after, else retry_min * 2^(attempt-1) capped at retry_max, with
 * +-20 % jitter. FAIL, or an entry older than max_age -> dead letter,
 * logged once at error level.
 *
 * Entries of a notifier that is no longer configured (removed or renamed
 * in the configuration): when deliveries start (at start and after each
 * reload) a warning per such notifier says how many are queued; they stay
 * pending, and are delivered if the notifier comes back, until they are
 * older than a notifier's default max_age (24 h): then, checked at each
 * pass, they become dead letters ("notifier 'X' is no longer configured"),
 * each logged once. Only the agent does this (not with only_id or
 * only_notifier, as test-notify starts it).
 */
#ifndef DW_DELIVER_H
#define DW_DELIVER_H

#include <stdint.h>

#include "dw/notify.h"

struct dw_deliver;

struct dw_deliver_opts {
	const char *db_path;       /* the agent's database */
	unsigned keep;             /* seconds to keep delivered/dead entries; 0 = never prune */
	int64_t only_id;           /* deliver only this entry (test-notify); 0 = every due entry */
	const char *only_notifier; /* start a worker only for this notifier; NULL = all */
};

/* Start the dispatcher and one worker per notifier. ns must outlive it. */
int dw_deliver_start(struct dw_notifiers *ns, const struct dw_deliver_opts *o, struct dw_deliver **out, char *err,
                     size_t errlen);

/* New entries were queued: look now rather than at the next timer. Any thread. */
void dw_deliver_kick(struct dw_deliver *d);

/* Wait until nothing is due now and no call is running, or timeout_ms
 * passed (run --once uses it before exiting). Returns 1 when drained. */
int dw_deliver_drain(struct dw_deliver *d, unsigned timeout_ms);

/*
 * Stop: no new calls start; calls in progress get up to grace_ms to
 * return. Returns 0 when every thread has ended (d is freed, ns may be
 * freed), or 1 when a plugin call is still running: then d and ns are
 * deliberately left allocated for that thread (the caller must not free
 * ns); its entry's lease expires and another run retries it.
 */
int dw_deliver_stop(struct dw_deliver *d, unsigned grace_ms);

#endif
