/*
 * rules.h - evaluating one rule on one settled day.
 *
 * A rule (config.h, struct dw_rule_cfg) is judged on a day D with what was
 * known at time `asof` (facts with received <= asof; see facts.h). The
 * result is the list of groups whose condition is TRUE on D; every other
 * group is false. Groups:
 *
 *   threshold, baseline   "DOMAIN", "DOMAIN|SOURCE_IP" or "DOMAIN|REPORTER"
 *                         (group: domain | source | reporter)
 *   new_source            "DOMAIN|NETWORK" (192.0.2.0/24, 2001:db8::/56) or
 *                         "DOMAIN|IP" (group: ip)
 *   missing_reporter      "DOMAIN|REPORTER"
 *   policy_change         "DOMAIN"
 *   report_health         "ACCOUNT"
 *
 * new_source needs a history: a domain with no facts before the judged day
 * in the lookback (the first days of a history, a brand-new domain) has
 * nothing to be new against, so it yields nothing.
 *
 * Group keys are stable (the alert engine keys incidents on them) and
 * contain no secrets. Facts that match the rule's ignore lists (source
 * networks, reporters, override reasons) are left out before anything is
 * counted. Nothing here keeps state, sends or stores anything: that is
 * alerts.h.
 */
#ifndef DW_RULES_H
#define DW_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "dw/config.h"
#include "dw/facts.h"
#include "dw/store.h"

#define DW_RULE_TOP 5

/* missing_reporter: a reporter is "regular" when it reported on seen_days
 * of the of_days days ending on the last day it reported; its silence is
 * followed this many days beyond silent_days + of_days, then forgotten
 * (the open alert then resolves after resolve_after days). */
#define DW_MISSING_TRACK_DAYS 30

/* A top offending source, for the alert's table. */
struct dw_top_source {
	char ip[64];
	uint64_t count;
	char spf[8], dkim[8];      /* policy_evaluated: "pass" / "fail" */
	char header_from[128];
	char reporter[128];
};

struct dw_rule_hit {
	const struct dw_rule_cfg *rule;
	char group[320];           /* see above */
	char domain[256];          /* or "" (report_health) */
	double value;              /* what was measured (a rate in %, a count, a drop in points) */
	double threshold;          /* the limit it crossed */
	double baseline;           /* baseline rules: the baseline value; NAN otherwise */
	uint64_t messages;         /* messages behind the figure */
	char message[512];         /* one line a human reads: what, how much, against what */
	struct dw_top_source top[DW_RULE_TOP];
	size_t ntop;
};

struct dw_rule_ctx {
	const struct dw_facts *f;
	int64_t asof;              /* only facts that arrived by then; INT64_MAX = all */
	struct dw_store *store;    /* report_health reads the messages table; NULL: it finds nothing */
};

typedef int (*dw_rule_cb)(void *arg, const struct dw_rule_hit *hit); /* non-zero stops */

/*
 * Call cb for each group whose condition is true on day index `day`, in the
 * order of the group keys. Returns DW_OK, or DW_E_STORE (report_health)
 * with err set. r->enabled is not consulted (the caller skips disabled
 * rules); a day outside c->f finds nothing.
 *
 * Only days loaded in c->f are seen: the caller loads, before the first
 * judged day, window - 1 (threshold), baseline_days (baseline), lookback
 * (new_source: a source seen only before the loaded range is "new"),
 * of_days + silent_days (missing_reporter) days, and for policy_change
 * enough to hold the previous day with a policy.
 *
 * Details (src/rules.c): rates are percentages of messages; baseline needs
 * 3 days with data and compares the day with their median/mean (value: the
 * drop in points, or the signed volume change in %); new_source "passes"
 * when more than half of its messages pass DMARC (a tie fails);
 * policy_change takes each reporter's latest report of the day and the
 * majority per field, treats p/sp/np a reporter leaves out as unknown and
 * adkim/aspf/pct/testing left out as r/r/100/n; report_health counts mails
 * by COALESCE(received, processed_at) and measures silence up to asof
 * (the end of the day when asof is INT64_MAX). top[].count is the source's
 * DMARC-failing messages (threshold: over the window; baseline: on the
 * day); for new_source every IP of the new network, with its messages.
 */
int dw_rule_eval(const struct dw_rule_cfg *r, const struct dw_rule_ctx *c, size_t day, dw_rule_cb cb, void *arg,
                 char *err, size_t errlen);

/* Names for messages and JSON; "unknown" for a value outside the enum. */
const char *dw_rule_kind_name(int kind);   /* "threshold" */
const char *dw_metric_name(int metric);    /* "dmarc_fail_rate" */
int dw_metric_is_rate(int metric);

/* Does ip (text) fall in the network? 0/1; -1 when ip does not parse. */
int dw_cidr_match(const struct dw_cidr *c, const char *ip);
/* Parse "192.0.2.0/24", "2001:db8::/56" or a bare address. 0 or -1. */
int dw_cidr_parse(const char *s, struct dw_cidr *out);

#endif
