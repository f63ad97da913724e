/*
 * alerts.c - the incident state machine. See dw/alerts.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dw/alerts.h"
#include "dw/days.h"
#include "dw/notification_json.h"
#include "dw/util.h"

struct incident {
	char *rule, *group, *domain;
	int open;
	int severity;
	char opened[11], last_true[11], resolved[11]; /* resolved "" while open */
	int64_t last_sent;
	int dirty;
};

struct dw_alerts {
	struct dw_store *s;
	struct incident *v;
	size_t n, cap;
};

long
dw_days_between(const char *a, const char *b)
{
	int64_t ta, tb;
	if (dw_day_parse(a, &ta) != 0 || dw_day_parse(b, &tb) != 0)
		return 0;
	/* Days are 23 to 25 hours long: round to whole days. */
	return (long)((tb - ta + (tb >= ta ? 43200 : -43200)) / 86400);
}

static struct incident *
find(struct dw_alerts *a, const char *rule, const char *group)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].rule, rule) == 0 && strcmp(a->v[i].group, group) == 0)
			return &a->v[i];
	return NULL;
}

static struct incident *
add(struct dw_alerts *a, const char *rule, const char *group, const char *domain)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
	}
	struct incident *in = &a->v[a->n++];
	memset(in, 0, sizeof *in);
	in->rule = xstrdup(rule);
	in->group = xstrdup(group);
	in->domain = xstrdup(domain != NULL ? domain : "");
	return in;
}

static int
db_err(struct dw_alerts *a, char *err, size_t errlen, const char *what)
{
	return dw_err(err, errlen, DW_E_STORE, "alerts %s: %s: %s", dw_store_path(a->s), what,
	              sqlite3_errmsg(dw_store_sqlite(a->s)));
}

int
dw_alerts_new(struct dw_store *s, struct dw_alerts **out, char *err, size_t errlen)
{
	struct dw_alerts *a = xcalloc(1, sizeof *a);
	a->s = s;
	*out = NULL;
	if (s != NULL) {
		sqlite3 *db = dw_store_sqlite(s);
		sqlite3_stmt *st = NULL;
		/* The table is made by the store's schema migration 4. */
		if (sqlite3_prepare_v2(db,
		                       "SELECT rule, grp, domain, open, severity, opened_day, last_true_day, resolved_day,"
		                       " last_sent FROM alerts ORDER BY rowid",
		                       -1, &st, NULL) != SQLITE_OK) {
			int rc = db_err(a, err, errlen, "cannot read the alert state");
			free(a);
			return rc;
		}
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct incident *in = add(a, (const char *)sqlite3_column_text(st, 0),
			                          (const char *)sqlite3_column_text(st, 1),
			                          (const char *)sqlite3_column_text(st, 2));
			in->open = sqlite3_column_int(st, 3);
			in->severity = sqlite3_column_int(st, 4);
			snprintf(in->opened, sizeof in->opened, "%s", (const char *)sqlite3_column_text(st, 5));
			snprintf(in->last_true, sizeof in->last_true, "%s", (const char *)sqlite3_column_text(st, 6));
			snprintf(in->resolved, sizeof in->resolved, "%s", (const char *)sqlite3_column_text(st, 7));
			in->last_sent = sqlite3_column_int64(st, 8);
		}
		sqlite3_finalize(st);
	}
	*out = a;
	return DW_OK;
}

void
dw_alerts_free(struct dw_alerts *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].rule);
		free(a->v[i].group);
		free(a->v[i].domain);
	}
	free(a->v);
	free(a);
}

static int
save(struct dw_alerts *a, char *err, size_t errlen)
{
	if (a->s == NULL)
		return DW_OK;
	sqlite3 *db = dw_store_sqlite(a->s);
	sqlite3_stmt *st = NULL;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_err(a, err, errlen, "cannot save the alert state");
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO alerts (rule, grp, domain, open, severity, opened_day, last_true_day,"
	                       " resolved_day, last_sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	                       " ON CONFLICT (rule, grp) DO UPDATE SET domain = excluded.domain, open = excluded.open,"
	                       " severity = excluded.severity, opened_day = excluded.opened_day,"
	                       " last_true_day = excluded.last_true_day, resolved_day = excluded.resolved_day,"
	                       " last_sent = excluded.last_sent",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < a->n; i++) {
		struct incident *in = &a->v[i];
		if (!in->dirty)
			continue;
		sqlite3_bind_text(st, 1, in->rule, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, in->group, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, in->domain, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, in->open);
		sqlite3_bind_int(st, 5, in->severity);
		sqlite3_bind_text(st, 6, in->opened, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, in->last_true, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, in->resolved, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 9, in->last_sent);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < a->n; i++)
		a->v[i].dirty = 0;
	return DW_OK;
fail:;
	int rc = db_err(a, err, errlen, "cannot save the alert state");
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Judging                                                             */

struct day_hits {
	struct dw_rule_hit *v;
	size_t n, cap;
};

static int
collect(void *arg, const struct dw_rule_hit *h)
{
	struct day_hits *d = arg;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xreallocarray(d->v, d->cap, sizeof *d->v);
	}
	d->v[d->n++] = *h;
	return 0;
}

static int
emit(dw_alert_cb cb, void *arg, const struct dw_rule_cfg *r, const char *state, const char *day,
     const struct incident *in, const struct dw_rule_hit *hit)
{
	struct dw_alert_event ev;
	memset(&ev, 0, sizeof ev);
	ev.rule = r;
	ev.state = state;
	ev.day = day;
	ev.group = in->group;
	ev.domain = in->domain;
	ev.hit = hit;
	ev.since = in->opened;
	snprintf(ev.key, sizeof ev.key, "%s|%s|%s|%s", r->name, in->group, state, day);
	if (hit != NULL)
		snprintf(ev.message, sizeof ev.message, "%s%s", strcmp(state, "update") == 0 ? "still: " : "",
		         hit->message);
	else
		snprintf(ev.message, sizeof ev.message, "%s: resolved: the condition of rule %s has been false for %u "
		         "settled day%s (open since %s)",
		         in->group, r->name, r->resolve_after, r->resolve_after == 1 ? "" : "s", in->opened);
	return cb != NULL ? cb(arg, &ev) : 0;
}

int
dw_alerts_judge(struct dw_alerts *a, const struct dw_config *cfg, struct dw_store *factstore,
                const struct dw_facts *f, size_t first, size_t last, int64_t asof, int64_t now, dw_alert_cb cb,
                void *arg, char *err, size_t errlen)
{
	struct dw_rule_ctx ctx = {.f = f, .asof = asof, .store = factstore};
	struct day_hits hits = {0};
	int rc = DW_OK, stop = 0;
	for (size_t d = first; d <= last && d < f->ndays && !stop; d++) {
		const char *day = f->days[d];
		for (size_t ri = 0; ri < cfg->nrules && !stop; ri++) {
			const struct dw_rule_cfg *r = &cfg->rules[ri];
			if (!r->enabled)
				continue;
			hits.n = 0;
			if ((rc = dw_rule_eval(r, &ctx, d, collect, &hits, err, errlen)) != DW_OK)
				goto done;
			for (size_t h = 0; h < hits.n && !stop; h++) {
				const struct dw_rule_hit *hit = &hits.v[h];
				struct incident *in = find(a, r->name, hit->group);
				if (in != NULL && in->open) {
					if (strcmp(day, in->last_true) > 0) {
						snprintf(in->last_true, sizeof in->last_true, "%s", day);
						in->dirty = 1;
						if (now - in->last_sent >= (int64_t)r->cooldown) {
							in->last_sent = now;
							stop = emit(cb, arg, r, "update", day, in, hit);
						}
					}
					continue;
				}
				/* Closed or new: open unless that incident already covered this day. */
				if (in != NULL && strcmp(in->last_true, day) >= 0)
					continue;
				if (in == NULL)
					in = add(a, r->name, hit->group, hit->domain);
				in->open = 1;
				in->severity = r->severity;
				snprintf(in->opened, sizeof in->opened, "%s", day);
				snprintf(in->last_true, sizeof in->last_true, "%s", day);
				in->resolved[0] = '\0';
				in->last_sent = now;
				in->dirty = 1;
				stop = emit(cb, arg, r, "open", day, in, hit);
			}
			/* Open incidents of this rule that were false today. */
			for (size_t i = 0; i < a->n && !stop; i++) {
				struct incident *in = &a->v[i];
				if (!in->open || strcmp(in->rule, r->name) != 0 || strcmp(day, in->last_true) <= 0)
					continue;
				int hit_today = 0;
				for (size_t h = 0; h < hits.n; h++)
					hit_today |= strcmp(hits.v[h].group, in->group) == 0;
				if (hit_today)
					continue;
				if (dw_days_between(in->last_true, day) >= (long)r->resolve_after) {
					in->open = 0;
					snprintf(in->resolved, sizeof in->resolved, "%s", day);
					in->dirty = 1;
					stop = emit(cb, arg, r, "resolved", day, in, NULL);
				}
			}
		}
	}
done:
	free(hits.v);
	if (rc == DW_OK)
		rc = save(a, err, errlen);
	return rc;
}

void
dw_alerts_foreach_open(const struct dw_alerts *a,
                       void (*cb)(void *arg, const char *rule, const char *group, const char *since, int severity),
                       void *arg)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].open)
			cb(arg, a->v[i].rule, a->v[i].group, a->v[i].opened, a->v[i].severity);
}

/* ------------------------------------------------------------------ */
/* The notification                                                    */

struct note_store {
	char title[700], body[4096], value[64], threshold[64], baseline[64], messages[32];
	struct dw_field fields[8];
	const char *columns[6];
	const char *cells[DW_RULE_TOP * 6];
	char counts[DW_RULE_TOP][24];
	struct dw_table table;
};

static void
fmt_figure(char *buf, size_t len, double v, int rate)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (rate)
		snprintf(buf, len, "%.1f %%", v);
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.2f", v);
}

int
dw_alert_notification(const struct dw_alert_event *ev, int64_t now, struct dw_notification *n, void **storage)
{
	struct note_store *s = xcalloc(1, sizeof *s);
	const struct dw_rule_cfg *r = ev->rule;
	const struct dw_rule_hit *h = ev->hit;
	int resolved = strcmp(ev->state, "resolved") == 0;
	int rate = r->kind == DW_RULE_THRESHOLD ? dw_metric_is_rate(r->metric) : r->kind == DW_RULE_BASELINE;
	memset(n, 0, sizeof *n);
	n->struct_size = sizeof *n;
	n->kind = resolved ? DW_KIND_RESOLVED : DW_KIND_ALERT;
	n->severity = resolved ? DW_SEV_INFO : (uint32_t)r->severity;
	n->attempt = 1;
	n->time = (time_t)now;
	n->idempotency_key = ev->key;
	n->rule = r->name;
	n->domain = ev->domain[0] != '\0' ? ev->domain : NULL;
	n->runbook = r->runbook;
	snprintf(s->title, sizeof s->title, "%s%s", resolved ? "Resolved: " : "", ev->message);
	n->title = s->title;
	size_t nf = 0;
	s->fields[nf++] = (struct dw_field){"rule", r->name};
	s->fields[nf++] = (struct dw_field){"kind", dw_rule_kind_name(r->kind)};
	s->fields[nf++] = (struct dw_field){"day", ev->day};
	s->fields[nf++] = (struct dw_field){"group", ev->group};
	if (h != NULL) {
		fmt_figure(s->value, sizeof s->value, h->value, rate);
		fmt_figure(s->threshold, sizeof s->threshold, h->threshold, rate);
		snprintf(s->messages, sizeof s->messages, "%llu", (unsigned long long)h->messages);
		s->fields[nf++] = (struct dw_field){"measured", s->value};
		s->fields[nf++] = (struct dw_field){"threshold", s->threshold};
		if (!isnan(h->baseline)) {
			fmt_figure(s->baseline, sizeof s->baseline, h->baseline, rate);
			s->fields[nf++] = (struct dw_field){"baseline", s->baseline};
		}
		s->fields[nf++] = (struct dw_field){"messages", s->messages};
	}
	n->fields = s->fields;
	n->nfields = nf;
	snprintf(s->body, sizeof s->body,
	         "%s\n\nRule %s (%s) on %s, group %s; open since %s.%s%s\n", ev->message, r->name,
	         dw_rule_kind_name(r->kind), ev->day, ev->group, ev->since, r->runbook != NULL ? "\nRunbook: " : "",
	         r->runbook != NULL ? r->runbook : "");
	n->body = s->body;
	if (h != NULL && h->ntop > 0) {
		static const char *const cols[] = {"source_ip", "messages", "spf", "dkim", "header_from", "reporter"};
		memcpy(s->columns, cols, sizeof cols);
		for (size_t i = 0; i < h->ntop; i++) {
			snprintf(s->counts[i], sizeof s->counts[i], "%llu", (unsigned long long)h->top[i].count);
			const char **row = &s->cells[i * 6];
			row[0] = h->top[i].ip;
			row[1] = s->counts[i];
			row[2] = h->top[i].spf;
			row[3] = h->top[i].dkim;
			row[4] = h->top[i].header_from;
			row[5] = h->top[i].reporter;
		}
		s->table = (struct dw_table){6, s->columns, h->ntop, s->cells};
		n->table = &s->table;
	}
	*storage = s;
	return DW_OK;
}
