/*
 * evaluate.h - judging rules over time: the agent's evaluator and replay.
 *
 * Both walk settled days the same way. Day D is settled `settle` (default
 * 36 h) after it ends; at a moment T the latest settled day is L(T), and
 * the days L-6..L are judged with what had arrived by T (facts.h), so a
 * report arriving up to a week late re-judges its day (alerts.h decides
 * what that may send).
 *
 *   replay: T runs over the moments each day of the range settles, with an
 *           in-memory incident state: what the agent would have done.
 *   agent:  T = now, after each pass; the incident state is in the
 *           database; events and the digest are queued in the outbox.
 */
#ifndef DW_EVALUATE_H
#define DW_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "dw/alerts.h"
#include "dw/config.h"
#include "dw/store.h"

#define DW_LATE_DAYS 7   /* days re-judged at each moment: L-6..L */

/* Days of history a rule set needs before the first judged day. */
unsigned dw_rules_lookback(const struct dw_config *cfg);

/* The latest day settled at t (YYYY-MM-DD in the process's zone). */
void dw_settled_day(const struct dw_config *cfg, int64_t t, char ymd[11]);

struct dw_replay_opts {
	const char *from, *until;  /* YYYY-MM-DD; NULL: the stored history's first day / the last settled day */
	int64_t now;               /* "now" for the default until */
};

/* Replay: cb gets every event in time order, with ev->day the judged day
 * and *at (in the callback's arg, see below) the moment it would have been
 * sent. DW_OK, DW_E_CONFIG (bad day) or DW_E_STORE. */
struct dw_replay_event_ctx {
	int64_t at;                /* the simulated moment (the day's settle time) */
	void *arg;                 /* the caller's */
};
int dw_replay(struct dw_store *s, const struct dw_config *cfg, const struct dw_replay_opts *o, dw_alert_cb cb,
              struct dw_replay_event_ctx *ctx, char *err, size_t errlen);

/*
 * The digest of `day` as known at asof, with late data since `since` (-1:
 * none) and the open alerts of `alerts` (NULL: read from the store). f may
 * be NULL (the facts are loaded). Used by the agent and `dmarcwatch digest`.
 */
struct dw_digest;
int dw_digest_for_day(struct dw_store *s, const struct dw_config *cfg, struct dw_alerts *alerts,
                      const struct dw_facts *f, const char *day, int64_t asof, int64_t since, struct dw_digest **out,
                      char *err, size_t errlen);

/* The agent's evaluator: its own store connection and incident state. */
struct dw_evaluator;
int dw_evaluator_new(const struct dw_config *cfg, struct dw_evaluator **out, char *err, size_t errlen);
void dw_evaluator_free(struct dw_evaluator *e);
/*
 * Judge (when a day settled or reports arrived since the last time, at
 * most once a minute) and queue notifications for the events; queue the
 * daily digest once its time has come. *queued gets the number of outbox
 * entries added. DW_OK or an error (logged by the caller; retried next time).
 */
int dw_evaluator_tick(struct dw_evaluator *e, int64_t now, int *queued, char *err, size_t errlen);

#endif
