/*
 * mime.h - stage 1: find the report payloads in one RFC 5322 message.
 *
 * Payloads are chosen by content sniffing (gzip magic, zip magic, "<?xml" or
 * "<feedback" after an optional BOM), never by Content-Type or disposition,
 * because reporters mislabel. The whole MIME tree is walked, including
 * message/rfc822 parts up to limits->rfc822_depth_max deep. The header fields
 * the later stages need (trust checks, logging) are read as well.
 *
 * What it does not do: decompress or parse payloads (unpack.c, report.c), or
 * judge whether the mail is trustworthy (that is the agent's job, using the
 * Authentication-Results collected here).
 */
#ifndef DW_MIME_H
#define DW_MIME_H

#include <stddef.h>

#include "dw/limits.h"
#include "dw/util.h"

enum dw_payload_kind {
	DW_PAYLOAD_GZIP = 1, /* starts 1f 8b */
	DW_PAYLOAD_ZIP,      /* starts "PK\3\4" */
	DW_PAYLOAD_XML,      /* optional BOM, whitespace, then "<?xml" or "<feedback" */
};

/* Sniff a byte string. Returns a DW_PAYLOAD_* or 0 if it is none of them.
 * UTF-16 XML (with or without BOM) is recognised as XML too. */
int dw_sniff(const unsigned char *buf, size_t len);

struct dw_payload {
	int kind;               /* DW_PAYLOAD_* */
	unsigned char *data;    /* owned: the decoded (base64/QP removed) body */
	size_t len;
	char *filename;         /* owned, may be NULL: name= or filename= parameter */
	char *content_type;     /* owned, may be NULL: "application/gzip" as labelled */
	unsigned depth;         /* 0 = top-level message, 1 = inside one message/rfc822, ... */
};

struct dw_mail {
	/* Header fields of the top-level message; owned, NULL when absent.
	 * Values are unfolded; Subject is RFC 2047-decoded to UTF-8. */
	char *message_id;       /* without the angle brackets */
	char *from;             /* the whole From: field value */
	char *from_domain;      /* domain part of the first From: address, lower case */
	char *subject;
	char *date;             /* the raw Date: value */
	long long date_epoch;   /* Date: as seconds UTC, or -1 when absent/unparseable */
	long long received_epoch; /* the date of the top Received: field (after its last ';'),
	                             seconds UTC, or -1 when absent/unparseable */
	char **auth_results;    /* owned: every Authentication-Results value, top first */
	size_t n_auth_results;
	int is_feedback_report; /* 1 if some part is multipart/report; report-type=feedback-report (RFC 6591) */
	int is_tls_report;      /* 1 if some part is application/tlsrpt+gzip or +json (RFC 8460) */

	struct dw_payload *payloads; /* owned array, in MIME order */
	size_t npayloads;
	struct dw_quirks quirks;     /* e.g. "mime-mislabelled:application/zip-is-gzip" */
};

/*
 * dw_mime_parse - parse a whole message and collect its report payloads.
 *   msg, len   the message bytes (borrowed; not kept after return)
 *   limits     len > limits->mail_max gives DW_E_LIMIT
 *   out        on success *out is a new dw_mail (free with dw_mail_free);
 *              npayloads == 0 means "not a report" (not an error)
 * Returns DW_OK, DW_E_LIMIT or DW_E_INPUT (not a parseable message at all),
 * with a message in err.
 */
int dw_mime_parse(const unsigned char *msg, size_t len, const struct dw_limits *limits,
                  struct dw_mail **out, char *err, size_t errlen);
void dw_mail_free(struct dw_mail *m); /* NULL-safe */

/*
 * An RFC 5322 date-time (section 3.3, with the obsolete forms of 4.3:
 * comments, two-digit years, UT/GMT/EST...PDT) as seconds UTC, or -1 when
 * it is not one. Military and unknown zone names, and a missing zone,
 * count as -0000 (UTC). Text after the zone is ignored.
 */
long long dw_mail_date(const char *v);

/*
 * Caps on MIME structure, checked by dw_mime_parse before libetpan sees the
 * message (libetpan recurses without limit and allocates a few hundred
 * bytes per header field, parameter and part). Each gives DW_E_LIMIT naming
 * it. They bound counts that no report mail comes near.
 */
#define DW_MIME_CONTAINERS_MAX 64      /* multipart/message Content-Types per mail;
                                          down to 8 as a mail grows to 64 MiB */
#define DW_MIME_PARTS_MAX 10000        /* lines starting with "--" (boundaries) */
#define DW_MIME_HEADER_MAX (1u << 20)  /* bytes of header fields, all parts together */
#define DW_MIME_PAYLOADS_MAX 256       /* report payloads per mail */

#endif
