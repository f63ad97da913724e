/*
 * ingest.h - the pipeline for one input item: a file, stdin, or one mail.
 *
 *   bytes -> sniff -> [mime.c: payloads] -> unpack.c: documents -> report.c
 *
 * The item's reports are streamed to a consumer (the `parse` printer, the
 * store) through dw_ingest_cb; nothing here keeps records. A mail with no
 * payload, a failure report (RFC 6591) or an SMTP TLS report (RFC 8460) is
 * "not a report" (with a reason), distinct from a payload that fails to
 * unpack or parse ("invalid").
 */
#ifndef DW_INGEST_H
#define DW_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dw/limits.h"
#include "dw/mime.h"
#include "dw/report.h"

/* Where one document (one report) came from inside the item. */
struct dw_doc_info {
	const char *item;     /* the item's name: file path, "-", "account uid 42" */
	const char *where;    /* "", "part 2 (google.com!x!1!2.zip)", "member a.xml"...; never NULL */
	unsigned index;       /* 0-based document number within the item */
	int64_t mail_received;/* the item is a mail: when it arrived by its own headers (the
	                         top Received: date, else Date:), seconds UTC; -1 for a bare
	                         XML/gzip/zip file or when neither date parses */
};

struct dw_ingest_cb {
	/* A document starts. Non-zero skips the item's remaining work. */
	int (*report_begin)(void *ctx, const struct dw_doc_info *doc, char *err, size_t errlen);
	/* One record of the current report (see report.h for lifetime). */
	int (*record)(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec,
	              char *err, size_t errlen);
	/* The document ended. status DW_OK: meta/totals/quirks are complete and
	 * valid during the call. Otherwise msg says why the report was refused
	 * and the consumer must drop what it got from this document. */
	void (*report_end)(void *ctx, const struct dw_doc_info *doc, int status, const char *msg,
	                   const struct dw_report_meta *meta, const struct dw_totals *totals,
	                   const struct dw_quirks *quirks);
};

struct dw_ingest_result {
	unsigned reports_ok;     /* documents parsed as reports */
	unsigned reports_failed; /* documents refused (reasons went to report_end) */
	int not_report;          /* 1: the item holds no DMARC aggregate report */
	int status;              /* DW_OK, or the item-level error (unreadable, too big, not a mail) */
	char reason[512];        /* why not_report, or the item-level error */
	struct dw_quirks quirks; /* item-level quirks (mime, unpack); caller clears */
};

/* Ingest a file (path "-" = stdin). The kind is sniffed, never taken from
 * the name. res is filled in; returns res->status. */
int dw_ingest_path(const char *path, const struct dw_limits *limits, const struct dw_ingest_cb *cb,
                   void *ctx, struct dw_ingest_result *res);

/* Ingest an open stream (the name is for messages). */
int dw_ingest_stream(FILE *fp, const char *name, const struct dw_limits *limits,
                     const struct dw_ingest_cb *cb, void *ctx, struct dw_ingest_result *res);

/* Ingest one whole mail from memory (the IMAP and maildir sources). If mailp
 * is not NULL, the parsed headers are handed over (caller frees with
 * dw_mail_free; payload bytes are already released). */
int dw_ingest_mail(const unsigned char *msg, size_t len, const char *name,
                   const struct dw_limits *limits, const struct dw_ingest_cb *cb, void *ctx,
                   struct dw_ingest_result *res, struct dw_mail **mailp);

void dw_ingest_result_clear(struct dw_ingest_result *res);

#endif
