/*
 * facts.h - the stored reports as daily facts, for rules, digests and
 * replay.
 *
 * A fact is one (day, domain, reporter, source IP, result) cell with the
 * number of messages attributed to that day (days.h: the 36-hour rule and
 * largest-remainder splits, in the process's time zone) and the time the
 * report carrying it ARRIVED (reports.received: the IMAP INTERNALDATE, for
 * imported mail the top Received: date, else the file's mtime; imported_at
 * when unknown). Lateness and replay work from `received`: "what did we know
 * at time T" is every fact with received <= T.
 *
 * Only current reports count (revisions supersede, duplicates are not
 * stored). Strings are interned: a fact holds indexes into facts->strs, so
 * comparisons are integer comparisons and memory stays small (60 days of a
 * busy domain is a few hundred thousand facts).
 */
#ifndef DW_FACTS_H
#define DW_FACTS_H

#include <stddef.h>
#include <stdint.h>

#include "dw/store.h"

#define DW_NO_STR UINT32_MAX

enum dw_disp { DW_DISP_NONE = 0, DW_DISP_QUARANTINE, DW_DISP_REJECT, DW_DISP_PASS, DW_DISP_OTHER };

struct dw_fact {
	uint32_t day;         /* index into facts->days */
	uint32_t domain;      /* policy_domain (lower case): index into strs */
	uint32_t reporter;    /* org_name */
	uint32_t source;      /* source_ip as reported (normalised text form) */
	uint32_t header_from; /* or DW_NO_STR */
	uint32_t reason;      /* the first policy override reason type ("forwarded",
	                         "mailing_list", "local_policy"...), or DW_NO_STR */
	uint8_t disposition;  /* enum dw_disp */
	uint8_t dkim_pass;    /* policy_evaluated dkim == pass */
	uint8_t spf_pass;     /* policy_evaluated spf == pass */
	uint8_t dmarc_pass;   /* dkim_pass || spf_pass */
	int64_t received;     /* seconds UTC the report arrived */
	int64_t report;       /* reports row id */
	uint64_t count;       /* messages attributed to this day */
};

/* policy_published as one reporter saw it for one day. */
struct dw_policy_fact {
	uint32_t day, domain, reporter;
	uint32_t p, sp, np, adkim, aspf, testing; /* interned, DW_NO_STR when absent */
	int pct;                                   /* -1 when absent */
	int64_t received;
	int64_t report;
};

struct dw_facts {
	char (*days)[11];     /* consecutive calendar days, "YYYY-MM-DD" */
	int64_t *day_start;   /* first second of each day (UTC seconds); ndays + 1 entries */
	size_t ndays;
	char **strs;          /* interned strings */
	size_t nstrs;
	struct dw_fact *v;    /* sorted by day, domain, reporter, source */
	size_t n;
	struct dw_policy_fact *pol; /* sorted by day, domain, reporter */
	size_t npol;
};

/*
 * Load the facts of every report overlapping the days from..to (inclusive,
 * YYYY-MM-DD in the process's zone). Facts outside those days (the other
 * part of a split report) are left out. DW_OK, DW_E_CONFIG (bad day, from
 * after to, or more than 36525 days) or DW_E_STORE.
 *
 * Details (facts.c): domain, source and header_from are lower-cased; a
 * missing org_name or policy_domain is ""; a record with count 0 gives a
 * fact of count 0 on the report's first day only (as aggregate.c counts
 * it); facts equal in every member but count (records the store kept apart
 * for their envelope or auth results) are merged. Policy facts cover every
 * day of the report in from..to, also days whose share of its messages is
 * 0 and reports without records. Strings are sorted (strs[i] < strs[i+1]),
 * so comparing indexes compares the strings; DW_NO_STR sorts last.
 */
int dw_facts_load(struct dw_store *s, const char *from, const char *to, struct dw_facts **out, char *err,
                  size_t errlen);
void dw_facts_free(struct dw_facts *f); /* NULL-safe */

/* The index of a day, or -1. */
long dw_facts_day(const struct dw_facts *f, const char *ymd);
/* The index of an interned string, or DW_NO_STR. */
uint32_t dw_facts_str(const struct dw_facts *f, const char *s);

#endif
