/*
 * alerts.h - incidents: rules judged day after day, with cooldowns and
 * resolution, so that one problem pages once.
 *
 * An incident is keyed by (rule, group). Judging the days first..last in
 * order, as known at `asof`:
 *
 *   - a group whose condition is true on day D with no open incident, and
 *     no incident that already covered D (last_true_day >= D), OPENS one;
 *   - an open incident true again on a later day D sends an UPDATE only
 *     when its cooldown has passed since the last notification;
 *   - an open incident whose condition has been false on resolve_after
 *     consecutive settled days after its last true day is RESOLVED.
 *
 * Re-judging a day (late reports) can therefore open an incident that is
 * now true, but never sends one that was sent before: the events' keys
 * (rule|group|state|day) are also the outbox's idempotency keys. With a
 * store, the incident state lives in its `alerts` table and survives
 * restarts; without one (replay) it lives in memory.
 */
#ifndef DW_ALERTS_H
#define DW_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "dmarcwatch/notifier.h"
#include "dw/config.h"
#include "dw/facts.h"
#include "dw/rules.h"
#include "dw/store.h"

struct dw_alerts;

struct dw_alert_event {
	const struct dw_rule_cfg *rule;
	const char *state;           /* "open", "update", "resolved" */
	const char *day;             /* the judged day it is about (YYYY-MM-DD) */
	const char *group, *domain;
	const struct dw_rule_hit *hit; /* what was measured; NULL for resolved */
	const char *since;           /* the day the incident opened */
	char key[512];               /* rule|group|state|day: the idempotency key */
	char message[600];           /* one line */
};

typedef int (*dw_alert_cb)(void *arg, const struct dw_alert_event *ev); /* non-zero stops */

/* s may be NULL (in memory). With a store the state is loaded from it. */
int dw_alerts_new(struct dw_store *s, struct dw_alerts **out, char *err, size_t errlen);
void dw_alerts_free(struct dw_alerts *a); /* NULL-safe */

/*
 * Judge every enabled rule of cfg on the days first..last (indexes in f),
 * as known at asof; `now` is the time notifications count from (cooldowns).
 * cb gets each event in order. With a store, the state is written in one
 * transaction at the end.
 */
int dw_alerts_judge(struct dw_alerts *a, const struct dw_config *cfg, struct dw_store *factstore,
                    const struct dw_facts *f, size_t first, size_t last, int64_t asof, int64_t now, dw_alert_cb cb,
                    void *arg, char *err, size_t errlen);

/* The open incidents (for the digest): calls cb(arg, rule, group, since_day, severity). */
void dw_alerts_foreach_open(const struct dw_alerts *a,
                            void (*cb)(void *arg, const char *rule, const char *group, const char *since, int severity),
                            void *arg);

/* The notification for an event (kind alert or resolved), with every
 * string in *storage (free with free()). */
int dw_alert_notification(const struct dw_alert_event *ev, int64_t now, struct dw_notification *n, void **storage);

/* Days between two YYYY-MM-DD (b - a), or 0 when either does not parse. */
long dw_days_between(const char *a, const char *b);

#endif
