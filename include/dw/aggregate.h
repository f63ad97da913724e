/*
 * aggregate.h - stage 5: per-day (or per-source, per-reporter) aggregates of
 * the stored reports in the process's time zone, using days.h to attribute
 * each report's range to days. Counts are exact: a report split over days
 * has its per-result counts apportioned by largest remainder.
 */
#ifndef DW_AGGREGATE_H
#define DW_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "dw/store.h"

enum dw_agg_by { DW_BY_DAY = 1, DW_BY_SOURCE, DW_BY_REPORTER };

struct dw_agg_query {
	const char *domain;      /* NULL = all */
	const char *since;       /* YYYY-MM-DD in the zone, inclusive; NULL = open */
	const char *until;       /* YYYY-MM-DD in the zone, inclusive; NULL = open */
	enum dw_agg_by by;
};

struct dw_agg_row {
	char *domain;            /* owned */
	char day[11];            /* DW_BY_DAY: the day; otherwise "" */
	char *key;               /* owned: source IP (BY_SOURCE) or reporter org (BY_REPORTER); NULL for BY_DAY */
	uint64_t messages, dmarc_pass, dmarc_fail, dkim_fail, spf_fail;
	uint64_t disp_none, disp_quarantine, disp_reject, disp_pass, disp_other;
	uint64_t reports;        /* distinct reports contributing */
};

struct dw_agg_result {
	struct dw_agg_row *rows; /* owned, sorted by domain, then day/key */
	size_t n;
};

/* Returns DW_OK or DW_E_STORE / DW_E_CONFIG (bad date) with err set. */
int dw_aggregate(struct dw_store *s, const struct dw_agg_query *q, struct dw_agg_result *out,
                 char *err, size_t errlen);
void dw_agg_result_free(struct dw_agg_result *r);

#endif
