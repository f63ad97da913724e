/*
 * evaluate.c - judging rules over time: replay and the agent's evaluator.
 * See dw/evaluate.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "dw/days.h"
#include "dw/digest.h"
#include "dw/evaluate.h"
#include "dw/facts.h"
#include "dw/log.h"
#include "dw/outbox.h"
#include "dw/util.h"

#define DIGEST_BASELINE_DAYS 14

unsigned
dw_rules_lookback(const struct dw_config *cfg)
{
	unsigned need = cfg->digest.enabled ? DIGEST_BASELINE_DAYS : 0;
	for (size_t i = 0; i < cfg->nrules; i++) {
		const struct dw_rule_cfg *r = &cfg->rules[i];
		unsigned n = 0;
		switch (r->kind) {
		case DW_RULE_THRESHOLD: n = r->window > 0 ? r->window - 1 : 0; break;
		case DW_RULE_BASELINE: n = r->baseline_days; break;
		case DW_RULE_NEW_SOURCE: n = r->lookback; break;
		case DW_RULE_MISSING_REPORTER: n = r->of_days + r->silent_days + DW_MISSING_TRACK_DAYS; break;
		case DW_RULE_POLICY_CHANGE: n = 14; break;
		case DW_RULE_REPORT_HEALTH: n = 0; break;
		}
		if (n > need)
			need = n;
	}
	return need + DW_LATE_DAYS;
}

/* Day arithmetic on YYYY-MM-DD in the process's zone (days are 23 to 25 h). */
static int
day_add(const char *ymd, long n, char out[11])
{
	int64_t t;
	if (dw_day_parse(ymd, &t) != 0)
		return -1;
	char cur[11];
	snprintf(cur, sizeof cur, "%s", ymd);
	for (; n > 0; n--) {
		dw_day_of(t + 30 * 3600, cur);
		dw_day_parse(cur, &t);
	}
	for (; n < 0; n++) {
		dw_day_of(t - 1, cur);
		dw_day_parse(cur, &t);
	}
	memcpy(out, cur, 11);
	return 0;
}

void
dw_settled_day(const struct dw_config *cfg, int64_t t, char ymd[11])
{
	char x[11];
	dw_day_of(t - (int64_t)cfg->settle, x);
	day_add(x, -1, ymd);
}

/* The stored history's span (current reports): -1 when there is none. */
static int
history_span(struct dw_store *s, int64_t *first, int64_t *last, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	*first = *last = -1;
	if (sqlite3_prepare_v2(dw_store_sqlite(s),
	                       "SELECT MIN(\"begin\"), MAX(\"end\") FROM reports WHERE superseded_by IS NULL"
	                       " AND hash IS NOT NULL",
	                       -1, &st, NULL) != SQLITE_OK)
		return dw_err(err, errlen, DW_E_STORE, "store %s: %s", dw_store_path(s), sqlite3_errmsg(dw_store_sqlite(s)));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*first = sqlite3_column_int64(st, 0);
		*last = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return DW_OK;
}

int
dw_replay(struct dw_store *s, const struct dw_config *cfg, const struct dw_replay_opts *o, dw_alert_cb cb,
          struct dw_replay_event_ctx *ctx, char *err, size_t errlen)
{
	char from[11], until[11], load[11];
	int64_t t, first, last;
	int rc = history_span(s, &first, &last, err, errlen);
	if (rc != DW_OK)
		return rc;
	if (o->from != NULL) {
		if (dw_day_parse(o->from, &t) != 0)
			return dw_err(err, errlen, DW_E_CONFIG, "--from: expected YYYY-MM-DD, got '%s'", o->from);
		snprintf(from, sizeof from, "%s", o->from);
	} else if (first >= 0) {
		dw_day_of(first, from);
	} else {
		return DW_OK; /* no history, nothing to replay */
	}
	if (o->until != NULL) {
		if (dw_day_parse(o->until, &t) != 0)
			return dw_err(err, errlen, DW_E_CONFIG, "--until: expected YYYY-MM-DD, got '%s'", o->until);
		snprintf(until, sizeof until, "%s", o->until);
	} else {
		dw_settled_day(cfg, o->now, until);
	}
	if (strcmp(from, until) > 0)
		return DW_OK;
	day_add(from, -(long)dw_rules_lookback(cfg), load);
	struct dw_facts *f = NULL;
	if ((rc = dw_facts_load(s, load, until, &f, err, errlen)) != DW_OK)
		return rc;
	struct dw_alerts *a = NULL;
	if ((rc = dw_alerts_new(NULL, &a, err, errlen)) != DW_OK) {
		dw_facts_free(f);
		return rc;
	}
	long i_from = dw_facts_day(f, from), i_until = dw_facts_day(f, until);
	for (long d = i_from; rc == DW_OK && d >= 0 && d <= i_until; d++) {
		int64_t at = f->day_start[d + 1] + (int64_t)cfg->settle;
		long lo = d - (DW_LATE_DAYS - 1) > i_from ? d - (DW_LATE_DAYS - 1) : i_from;
		ctx->at = at;
		rc = dw_alerts_judge(a, cfg, s, f, (size_t)lo, (size_t)d, at, at, cb, ctx, err, errlen);
	}
	dw_alerts_free(a);
	dw_facts_free(f);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The agent's evaluator                                               */

struct dw_evaluator {
	const struct dw_config *cfg;
	struct dw_store *s;
	struct dw_alerts *a;
	char last_settled[11];
	int64_t last_report;        /* MAX(reports.id) at the last judgement */
	int64_t last_tick;
	char digest_day[11];
	int queued;
	int64_t now;
};

int
dw_evaluator_new(const struct dw_config *cfg, struct dw_evaluator **out, char *err, size_t errlen)
{
	struct dw_evaluator *e = xcalloc(1, sizeof *e);
	e->cfg = cfg;
	e->last_report = -1;
	e->last_tick = INT64_MIN / 2;
	int rc = dw_store_open(dw_config_db_path(cfg), &e->s, err, errlen);
	if (rc == DW_OK)
		rc = dw_alerts_new(e->s, &e->a, err, errlen);
	if (rc != DW_OK) {
		dw_evaluator_free(e);
		*out = NULL;
		return rc;
	}
	*out = e;
	return DW_OK;
}

void
dw_evaluator_free(struct dw_evaluator *e)
{
	if (e == NULL)
		return;
	dw_alerts_free(e->a);
	dw_store_close(e->s);
	free(e);
}

static int64_t
max_report(struct dw_store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	if (sqlite3_prepare_v2(dw_store_sqlite(s), "SELECT MAX(id) FROM reports", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return id;
}

/* Queue n for each named notifier. */
static void
queue(struct dw_evaluator *e, char *const *names, size_t nnames, const struct dw_notification *n)
{
	char err[512];
	for (size_t i = 0; i < nnames; i++) {
		int64_t id;
		int created = 0;
		if (dw_outbox_put(e->s, names[i], n, dw_wall_ms(), &id, &created, err, sizeof err) != DW_OK)
			log_error("rules: %s", err);
		else if (created)
			e->queued++;
	}
}

static int
on_event(void *arg, const struct dw_alert_event *ev)
{
	struct dw_evaluator *e = arg;
	log_info("rule %s: %s %s for %s: %s", ev->rule->name, ev->state, ev->group, ev->day, ev->message);
	if (strcmp(ev->state, "resolved") == 0 && !ev->rule->notify_resolved)
		return 0;
	struct dw_notification n;
	void *storage = NULL;
	dw_alert_notification(ev, e->now, &n, &storage);
	queue(e, ev->rule->notify, ev->rule->nnotify, &n);
	free(storage);
	return 0;
}

struct open_list {
	struct dw_digest_alert *v;
	size_t n;
	char **strs;
	size_t nstrs;
};

static void
add_open(void *arg, const char *rule, const char *group, const char *since, int severity)
{
	struct open_list *l = arg;
	l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
	l->strs = xreallocarray(l->strs, l->nstrs + 3, sizeof *l->strs);
	char *r = l->strs[l->nstrs++] = xstrdup(rule);
	char *g = l->strs[l->nstrs++] = xstrdup(group);
	char *s = l->strs[l->nstrs++] = xstrdup(since);
	l->v[l->n++] = (struct dw_digest_alert){r, g, s, severity};
}

/* The time of the last digest queued, in seconds, or -1. */
static int64_t
last_digest(struct dw_store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t t = -1;
	if (sqlite3_prepare_v2(dw_store_sqlite(s),
	                       "SELECT MAX(created_at) FROM outbox WHERE idem_key LIKE 'digest:%'", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		t = sqlite3_column_int64(st, 0) / 1000;
	sqlite3_finalize(st);
	return t;
}

static int
digest_due(const struct dw_config *cfg, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;
	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return tm.tm_hour * 60 + tm.tm_min >= (int)(cfg->digest.hour * 60 + cfg->digest.minute);
}

int
dw_digest_for_day(struct dw_store *s, const struct dw_config *cfg, struct dw_alerts *alerts, const struct dw_facts *f,
                  const char *day, int64_t asof, int64_t since, struct dw_digest **out, char *err, size_t errlen)
{
	struct dw_facts *own = NULL;
	struct dw_alerts *own_alerts = NULL;
	int rc = DW_OK;
	*out = NULL;
	if (f == NULL) {
		char load[11];
		day_add(day, -(long)(DIGEST_BASELINE_DAYS + 1), load);
		if ((rc = dw_facts_load(s, load, day, &own, err, errlen)) != DW_OK)
			return rc;
		f = own;
	}
	if (alerts == NULL && (rc = dw_alerts_new(s, &own_alerts, err, errlen)) != DW_OK) {
		dw_facts_free(own);
		return rc;
	}
	struct open_list open = {0};
	dw_alerts_foreach_open(alerts != NULL ? alerts : own_alerts, add_open, &open);
	struct dw_digest_cfg dc = cfg->digest;
	if (!dc.enabled)
		dc.top = 10;
	long d = dw_facts_day(f, day);
	if (d < 0) {
		rc = dw_err(err, errlen, DW_E_CONFIG, "digest: day %s is outside the loaded history", day);
	} else {
		struct dw_digest_input in = {.f = f, .day = (size_t)d, .asof = asof, .since = since, .cfg = &dc,
		                             .alerts = open.v, .nalerts = open.n};
		rc = dw_digest_build(&in, out, err, errlen);
	}
	for (size_t i = 0; i < open.nstrs; i++)
		free(open.strs[i]);
	free(open.strs);
	free(open.v);
	dw_alerts_free(own_alerts);
	dw_facts_free(own);
	return rc;
}

static int
send_digest(struct dw_evaluator *e, const struct dw_facts *f, const char *day, char *err, size_t errlen)
{
	struct dw_digest *d = NULL;
	int rc = dw_digest_for_day(e->s, e->cfg, e->a, f, day, e->now, last_digest(e->s), &d, err, errlen);
	if (rc == DW_OK) {
		log_info("digest for %s: %llu messages over %zu domain(s), queued", day, (unsigned long long)d->messages,
		         d->ndomains);
		queue(e, e->cfg->digest.notify, e->cfg->digest.nnotify, &d->n);
		dw_digest_free(d);
	}
	return rc;
}

int
dw_evaluator_tick(struct dw_evaluator *e, int64_t now, int *queued, char *err, size_t errlen)
{
	*queued = 0;
	if (now - e->last_tick < 60)
		return DW_OK;
	e->last_tick = now;
	e->now = now;
	e->queued = 0;
	const struct dw_config *cfg = e->cfg;
	char settled[11], load[11];
	dw_settled_day(cfg, now, settled);
	int64_t top = max_report(e->s);
	int judge = cfg->nrules > 0 && (strcmp(settled, e->last_settled) != 0 || top != e->last_report);
	int digest = cfg->digest.enabled && strcmp(e->digest_day, settled) != 0 && digest_due(cfg, now);
	if (!judge && !digest)
		return DW_OK;
	day_add(settled, -(long)dw_rules_lookback(cfg), load);
	struct dw_facts *f = NULL;
	int rc = dw_facts_load(e->s, load, settled, &f, err, errlen);
	if (rc != DW_OK)
		return rc;
	long last = dw_facts_day(f, settled);
	if (judge && last >= 0) {
		long lo = last - (DW_LATE_DAYS - 1) > 0 ? last - (DW_LATE_DAYS - 1) : 0;
		rc = dw_alerts_judge(e->a, cfg, e->s, f, (size_t)lo, (size_t)last, now, now, on_event, e, err, errlen);
		if (rc == DW_OK) {
			memcpy(e->last_settled, settled, sizeof settled);
			e->last_report = top;
		}
	}
	if (rc == DW_OK && digest && last >= 0) {
		rc = send_digest(e, f, settled, err, errlen);
		if (rc == DW_OK)
			memcpy(e->digest_day, settled, sizeof settled);
	}
	dw_facts_free(f);
	*queued = e->queued;
	return rc;
}
