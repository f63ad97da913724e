/*
 * digest.h - the daily digest of one settled day.
 *
 * Per domain: messages, DMARC pass rate and fail count, SPF and DKIM
 * failures, quarantine/reject, the change against the previous day and
 * against the trailing 14-day median, the top failing sources, the
 * reporters seen, late data (reports received since `since` for days
 * before the digest's day) and the open alerts. The detail goes into a
 * CSV: one row per domain x source x result for the day.
 *
 * The result is a notification (kind digest) ready for the outbox, and the
 * same text for `dmarcwatch digest --dry-run`.
 */
#ifndef DW_DIGEST_H
#define DW_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "dmarcwatch/notifier.h"
#include "dw/config.h"
#include "dw/facts.h"

/* An open alert to list in the digest (from alerts.h). */
struct dw_digest_alert {
	const char *rule, *group, *since_day;
	int severity;
};

struct dw_digest_input {
	const struct dw_facts *f;  /* must cover day - 14 .. day */
	size_t day;                /* index of the digest's day in f */
	int64_t asof;              /* facts that arrived by then */
	int64_t since;             /* late data: received after this (the previous digest), -1 none */
	const struct dw_digest_cfg *cfg;
	const struct dw_digest_alert *alerts;
	size_t nalerts;
};

/* The built digest: a notification whose strings all live in here. */
struct dw_digest {
	struct dw_notification n;  /* kind digest; title, body, summary, fields, table, attachment */
	char *text;                /* the plain-text rendering (= n.body) */
	char *csv;                 /* the CSV (= attachment data) */
	size_t csv_len;
	uint64_t messages;         /* all domains: for tests and the log */
	size_t ndomains;
	void *priv;                /* storage */
};

/* Build the digest. DW_OK; the caller frees with dw_digest_free. */
int dw_digest_build(const struct dw_digest_input *in, struct dw_digest **out, char *err, size_t errlen);
void dw_digest_free(struct dw_digest *d); /* NULL-safe */

#endif
