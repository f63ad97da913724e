/*
 * importer.h - the consumer that writes an item's reports into the store
 * (used by `dmarcwatch import` and, later, by the mailbox sources).
 *
 * One item = one store transaction: call dw_importer_item_begin, run the
 * item through dw_ingest_* with dw_importer_cb and the importer as ctx, then
 * dw_importer_item_end, which commits (or rolls back after a store error).
 */
#ifndef DW_IMPORTER_H
#define DW_IMPORTER_H

#include "dw/ingest.h"
#include "dw/store.h"

struct dw_import_counts {
	unsigned stored;      /* new reports */
	unsigned revisions;   /* newer versions of stored reports (also stored) */
	unsigned duplicates;  /* skipped: already stored, same content */
	unsigned failed;      /* documents refused */
};

/* Called for each refused document (for the caller's error line). */
typedef void dw_import_fail_fn(void *arg, const struct dw_doc_info *doc, const char *msg);

struct dw_importer {
	struct dw_store *store;           /* borrowed */
	struct dw_provenance prov;        /* borrowed strings; prov.member is set per document */
	int mail_dates;                   /* 1: when the item is a mail whose top Received: (else
	                                     Date:) date parses, that replaces prov.received.
	                                     For `import`, where prov.received is only the file's
	                                     mtime; the mailbox sources keep their INTERNALDATE. */
	dw_import_fail_fn *on_fail;       /* may be NULL */
	void *on_fail_arg;
	struct dw_import_counts item;     /* counts of the current item */
	int store_failed;                 /* a store error happened in this item */
	char store_err[512];
	/* private */
	struct dw_store_report *cur;
};

extern const struct dw_ingest_cb dw_importer_cb;

int dw_importer_item_begin(struct dw_importer *im, char *err, size_t errlen);
/* Commit (DW_OK) or, after a store error, roll back and return DW_E_STORE. */
int dw_importer_item_end(struct dw_importer *im, char *err, size_t errlen);

#endif
