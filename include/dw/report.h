/*
 * report.h - stage 3: parse a DMARC aggregate report (RFC 7489 appendix C,
 * or RFC 9990 "urn:ietf:params:xml:ns:dmarc-2.0") with libxml2's SAX2 push
 * parser, fed chunk by chunk.
 *
 * Records are not gathered: each completed <record> is handed to a callback
 * and forgotten, so memory stays flat however large the report. The report's
 * metadata and policy are kept (they are small). Elements are matched by
 * local name; unknown elements and extension namespaces are skipped.
 * Enumerations are trimmed and lower-cased; an unknown value is kept as its
 * raw lower-case string and noted as a quirk (e.g. "spf-result:hardfail").
 * Any DOCTYPE, entity declaration or entity reference is refused (no
 * billion-laughs, no XXE); the network is never used.
 *
 * What it does not do: decompression (unpack.c) or storage (store.c).
 */
#ifndef DW_REPORT_H
#define DW_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "dw/limits.h"
#include "dw/util.h"

/* Every char * below is owned by the parser and NULL when the element was
 * absent. Enumerated values are lower case. */
struct dw_policy {
	char *domain;           /* policy_published/domain */
	char *p, *sp, *np;      /* none | quarantine | reject */
	char *adkim, *aspf;     /* r | s */
	int pct;                /* 0..100, -1 when absent (7489 only) */
	char *fo;               /* as reported */
	char *testing;          /* n | y (bis "t" tag), NULL when absent */
	char *discovery_method; /* psl | treewalk (bis) */
};

struct dw_report_meta {
	int schema;             /* 1 = RFC 7489 (no or 0.1 namespace), 2 = dmarc-2.0 */
	char *version;          /* <version> as given */
	char *org_name, *email, *extra_contact_info;
	char *report_id;        /* surrounding <> stripped */
	char *generator;        /* bis */
	char **errors;          /* report_metadata/error, may repeat */
	size_t nerrors;
	int64_t begin, end;     /* seconds UTC; valid only when has_range */
	int has_range;
	struct dw_policy policy;
};

struct dw_reason {
	char *type, *comment;
};
struct dw_dkim_result {
	char *domain, *selector, *result, *human_result;
};
struct dw_spf_result {
	char *domain, *scope, *result, *human_result;
};

/* One <record>; valid only during the callback. */
struct dw_record {
	char source_ip[48];     /* canonical text form (inet_ntop); raw text if unparseable */
	uint64_t count;
	char *disposition;      /* none | quarantine | reject | pass (bis) */
	char *dkim, *spf;       /* policy_evaluated, the aligned verdicts: pass | fail */
	struct dw_reason *reasons;
	size_t nreasons;
	char *header_from, *envelope_from, *envelope_to;
	struct dw_dkim_result *dkim_results;
	size_t ndkim;
	struct dw_spf_result *spf_results;
	size_t nspf;
};

/* Totals, as defined for `parse --format json`. */
struct dw_totals {
	uint64_t records;
	uint64_t messages;      /* sum of counts */
	uint64_t dmarc_pass;    /* policy_evaluated dkim or spf is pass */
	uint64_t dmarc_fail;    /* the rest */
	uint64_t dkim_fail;     /* policy_evaluated dkim is not pass */
	uint64_t spf_fail;      /* policy_evaluated spf is not pass */
};

/* Add one record's counts to t (shared by the parser, the store and tests). */
void dw_totals_add(struct dw_totals *t, const struct dw_record *r);
/* 1 if the record passes DMARC (dkim or spf aligned pass). */
int dw_record_dmarc_pass(const struct dw_record *r);

/*
 * on_record is called once per complete <record>. meta holds what was parsed
 * so far (report_metadata and policy_published normally precede records, but
 * reporters do not always follow the order: consumers that need the metadata
 * must not assume it is complete until dw_report_finish returned DW_OK).
 * Return DW_OK to go on; anything else stops the parse with that code.
 */
struct dw_report_cb {
	int (*on_record)(void *ctx, const struct dw_report_meta *meta,
	                 const struct dw_record *rec, char *err, size_t errlen);
};

struct dw_report_parser;

/* name is used in error messages (file name, "uid 42 part 2"); copied. */
struct dw_report_parser *dw_report_new(const struct dw_limits *limits, const struct dw_report_cb *cb,
                                       void *ctx, const char *name);
/* Feed the next chunk (any size, any split). Returns DW_OK, or the error that
 * stopped the parse (DW_E_INPUT malformed/refused, DW_E_LIMIT, or the
 * callback's code) with "line N: what" in err. After an error, further feeds
 * return the same error. */
int dw_report_feed(struct dw_report_parser *p, const void *buf, size_t len, char *err, size_t errlen);
/* End of input. Checks well-formedness and that this was a DMARC aggregate
 * report: root <feedback>, report_id, policy domain and date range present
 * (missing optional parts become quirks). Returns DW_OK or an error. */
int dw_report_finish(struct dw_report_parser *p, char *err, size_t errlen);

const struct dw_report_meta *dw_report_meta(const struct dw_report_parser *p);
const struct dw_totals *dw_report_totals(const struct dw_report_parser *p);
struct dw_quirks *dw_report_quirks(struct dw_report_parser *p);
/* Bytes of XML fed so far (for statistics and ratio checks). */
uint64_t dw_report_bytes(const struct dw_report_parser *p);
void dw_report_free(struct dw_report_parser *p); /* NULL-safe */

/* One-time libxml2 initialisation (xmlInitParser, no-network entity loader).
 * Call from main before anything else; idempotent. */
void dw_report_global_init(void);

#endif
