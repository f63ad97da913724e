/*
 * importer.c - write the reports of one input item into the store. See
 * dw/importer.h.
 */
#include "dw/importer.h"

#include <string.h>

static int
im_begin(void *ctx, const struct dw_doc_info *doc, char *err, size_t errlen)
{
	struct dw_importer *im = ctx;
	if (im->store_failed)
		return dw_err(err, errlen, DW_E_STORE, "%s", im->store_err);
	im->prov.member = doc->where[0] ? doc->where : NULL;
	struct dw_provenance prov = im->prov;
	if (im->mail_dates && doc->mail_received >= 0)
		prov.received = doc->mail_received;
	int rc = dw_store_report_begin(im->store, &prov, &im->cur, im->store_err, sizeof im->store_err);
	if (rc != DW_OK) {
		im->store_failed = 1;
		im->cur = NULL;
		return dw_err(err, errlen, rc, "%s", im->store_err);
	}
	return DW_OK;
}

static int
im_record(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec, char *err, size_t errlen)
{
	struct dw_importer *im = ctx;
	(void)meta;
	if (im->cur == NULL)
		return dw_err(err, errlen, DW_E_STORE, "%s", im->store_err);
	int rc = dw_store_report_record(im->cur, rec, im->store_err, sizeof im->store_err);
	if (rc != DW_OK) {
		im->store_failed = 1;
		return dw_err(err, errlen, rc, "%s", im->store_err);
	}
	return DW_OK;
}

static void
im_end(void *ctx, const struct dw_doc_info *doc, int status, const char *msg, const struct dw_report_meta *meta,
       const struct dw_totals *totals, const struct dw_quirks *quirks)
{
	struct dw_importer *im = ctx;
	if (status != DW_OK || im->cur == NULL) {
		if (im->cur != NULL)
			dw_store_report_abort(im->cur);
		im->cur = NULL;
		if (status == DW_E_STORE)
			im->store_failed = 1;
		if (!im->store_failed) {
			im->item.failed++;
			if (im->on_fail != NULL)
				im->on_fail(im->on_fail_arg, doc, msg ? msg : "failed");
		}
		return;
	}
	enum dw_store_outcome out = 0;
	int rc = dw_store_report_end(im->cur, meta, quirks, totals, &out, im->store_err, sizeof im->store_err);
	im->cur = NULL;
	if (rc != DW_OK) {
		im->store_failed = 1;
		return;
	}
	switch (out) {
	case DW_STORED_NEW:
		im->item.stored++;
		break;
	case DW_STORED_REVISION:
		im->item.revisions++;
		break;
	case DW_STORED_DUPLICATE:
		im->item.duplicates++;
		break;
	}
}

const struct dw_ingest_cb dw_importer_cb = {
    .report_begin = im_begin,
    .record = im_record,
    .report_end = im_end,
};

int
dw_importer_item_begin(struct dw_importer *im, char *err, size_t errlen)
{
	memset(&im->item, 0, sizeof im->item);
	im->store_failed = 0;
	im->store_err[0] = '\0';
	im->cur = NULL;
	return dw_store_begin(im->store, err, errlen);
}

int
dw_importer_item_end(struct dw_importer *im, char *err, size_t errlen)
{
	if (im->cur != NULL) {
		dw_store_report_abort(im->cur);
		im->cur = NULL;
	}
	if (im->store_failed) {
		dw_store_rollback(im->store);
		memset(&im->item, 0, sizeof im->item);
		return dw_err(err, errlen, DW_E_STORE, "%s", im->store_err[0] ? im->store_err : "store error");
	}
	return dw_store_commit(im->store, err, errlen);
}
