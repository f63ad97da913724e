/*
 * ingest.c - run one input item through the pipeline stages and stream its
 * reports to a consumer. See dw/ingest.h.
 *
 * This file owns the wiring only: which stage sees which bytes, and how a
 * failure in one document is reported without losing the others. It never
 * keeps records and never prints.
 */
#include "dw/ingest.h"
#include "dw/unpack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEAD_MAX 4096

struct run {
	const struct dw_limits *limits;
	const struct dw_ingest_cb *cb;
	void *ctx;
	struct dw_ingest_result *res;
	const char *item;        /* item name for messages */
	char part[256];          /* payload description, "" for a bare file */
	char where[512];         /* part + member of the current document */
	struct dw_doc_info doc;
	unsigned ndocs;          /* documents begun in the item */
	unsigned payload_docs;   /* documents begun in the current payload */
	struct dw_report_parser *parser;
	int sniffed;             /* first bytes of the document seen */
	int64_t mail_received;   /* see dw_doc_info; -1 until a mail's headers say */
};

static void
doc_where(struct run *r, const char *member)
{
	if (member != NULL && *member != '\0')
		snprintf(r->where, sizeof r->where, "%s%smember %s", r->part, *r->part ? ", " : "", member);
	else
		snprintf(r->where, sizeof r->where, "%s", r->part);
	r->doc.item = r->item;
	r->doc.where = r->where;
	r->doc.index = r->ndocs;
	r->doc.mail_received = r->mail_received;
}

static int
on_record(void *ctx, const struct dw_report_meta *meta, const struct dw_record *rec, char *err,
          size_t errlen)
{
	struct run *r = ctx;
	if (r->cb->record == NULL)
		return DW_OK;
	return r->cb->record(r->ctx, meta, rec, err, errlen);
}

static int
doc_begin(void *ctx, const char *name, char *err, size_t errlen)
{
	struct run *r = ctx;
	static const struct dw_report_cb rcb = {.on_record = on_record};

	doc_where(r, name);
	r->ndocs++;
	r->payload_docs++;
	r->sniffed = 0;
	/* The consumer names the item and part in its messages; the parser's
	 * own messages stay bare ("line 5: ..."). */
	r->parser = dw_report_new(r->limits, &rcb, r, "");
	if (r->cb->report_begin != NULL)
		return r->cb->report_begin(r->ctx, &r->doc, err, errlen);
	return DW_OK;
}

static int
doc_data(void *ctx, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	struct run *r = ctx;
	if (!r->sniffed) {
		/* A gzip or zip of JSON is an SMTP TLS report, not ours (yet). */
		size_t i = 0;
		if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
			i = 3;
		while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
			i++;
		if (i == len)
			goto feed; /* only blanks so far: decide on a later chunk */
		r->sniffed = 1;
		if (buf[i] == '{')
			return dw_err(err, errlen, DW_E_INPUT,
			              "JSON document: an SMTP TLS report (RFC 8460)? Only DMARC aggregate "
			              "reports are supported yet");
	}
feed:
	return dw_report_feed(r->parser, buf, len, err, errlen);
}

static void
end_report(struct run *r, int status, const char *msg)
{
	struct dw_quirks q = {0};
	if (status == DW_OK)
		r->res->reports_ok++;
	else
		r->res->reports_failed++;
	dw_quirks_merge(&q, &r->res->quirks);
	if (r->parser != NULL)
		dw_quirks_merge(&q, dw_report_quirks(r->parser));
	if (r->cb->report_end != NULL)
		r->cb->report_end(r->ctx, &r->doc, status, msg,
		                  r->parser && status == DW_OK ? dw_report_meta(r->parser) : NULL,
		                  r->parser && status == DW_OK ? dw_report_totals(r->parser) : NULL, &q);
	dw_quirks_clear(&q);
	dw_report_free(r->parser);
	r->parser = NULL;
}

static int
doc_end(void *ctx, int status, const char *msg, char *err, size_t errlen)
{
	struct run *r = ctx;
	char perr[1024] = "";

	if (status == DW_OK) {
		status = dw_report_finish(r->parser, perr, sizeof perr);
		msg = perr;
	}
	end_report(r, status, msg);
	if (status != DW_OK)
		dw_err(err, errlen, status, "%s", msg ? msg : "failed");
	return status;
}

/* Unpack and parse one payload; a failure before any document began still
 * reaches the consumer as one refused report. */
static void
run_payload(struct run *r, const struct dw_input *in, int kind)
{
	static const struct dw_unpack_cb ucb = {
	    .doc_begin = doc_begin, .doc_data = doc_data, .doc_end = doc_end};
	char err[1024] = "";

	r->payload_docs = 0;
	int rc = dw_unpack(in, kind, r->limits, &ucb, r, &r->res->quirks, err, sizeof err);
	if (rc != DW_OK && r->payload_docs == 0) {
		doc_where(r, NULL);
		r->ndocs++;
		if (r->cb->report_begin != NULL) {
			char berr[256];
			(void)r->cb->report_begin(r->ctx, &r->doc, berr, sizeof berr);
		}
		end_report(r, rc, err);
	}
	if (r->parser != NULL) /* unpack stopped inside a document without ending it */
		end_report(r, rc != DW_OK ? rc : DW_E_INPUT, err);
}

static void
run_init(struct run *r, const char *name, const struct dw_limits *limits, const struct dw_ingest_cb *cb,
         void *ctx, struct dw_ingest_result *res)
{
	memset(r, 0, sizeof *r);
	r->limits = limits;
	r->cb = cb;
	r->ctx = ctx;
	r->res = res;
	r->item = name;
	r->mail_received = -1;
	memset(res, 0, sizeof *res);
}

static int
not_report(struct dw_ingest_result *res, const char *why)
{
	res->not_report = 1;
	snprintf(res->reason, sizeof res->reason, "%s", why);
	return res->status = DW_OK;
}

static int
mail_run(struct run *r, const unsigned char *msg, size_t len, struct dw_mail **mailp)
{
	struct dw_mail *m = NULL;
	struct dw_ingest_result *res = r->res;

	int rc = dw_mime_parse(msg, len, r->limits, &m, res->reason, sizeof res->reason);
	if (rc != DW_OK)
		return res->status = rc;
	dw_quirks_merge(&res->quirks, &m->quirks);
	r->mail_received = m->received_epoch >= 0 ? m->received_epoch : m->date_epoch;
	if (m->is_tls_report)
		not_report(res, "SMTP TLS report (RFC 8460): not supported yet");
	else if (m->is_feedback_report && m->npayloads == 0)
		not_report(res, "DMARC failure report (RFC 6591): not supported yet");
	else if (m->npayloads == 0)
		not_report(res, "no DMARC report in this message (no zip, gzip or XML part)");
	else {
		for (size_t i = 0; i < m->npayloads; i++) {
			struct dw_payload *p = &m->payloads[i];
			struct dw_input in = {.buf = p->data, .len = p->len};
			if (m->npayloads > 1 || p->filename != NULL)
				snprintf(r->part, sizeof r->part, "part %zu%s%s%s", i + 1,
				         p->filename ? " (" : "", p->filename ? p->filename : "",
				         p->filename ? ")" : "");
			run_payload(r, &in, p->kind);
			/* Release each payload once parsed: the next one may be large. */
			free(p->data);
			p->data = NULL;
			p->len = 0;
		}
		r->part[0] = '\0';
	}
	if (mailp != NULL)
		*mailp = m;
	else
		dw_mail_free(m);
	return res->status = DW_OK;
}

int
dw_ingest_mail(const unsigned char *msg, size_t len, const char *name, const struct dw_limits *limits,
               const struct dw_ingest_cb *cb, void *ctx, struct dw_ingest_result *res,
               struct dw_mail **mailp)
{
	struct run r;
	run_init(&r, name, limits, cb, ctx, res);
	if (mailp != NULL)
		*mailp = NULL;
	return mail_run(&r, msg, len, mailp);
}

/* Read the rest of fp after head into one buffer of at most max bytes. */
static int
slurp(FILE *fp, const unsigned char *head, size_t headlen, uint64_t max,
      unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	size_t cap = headlen + 65536, len = headlen;
	unsigned char *buf = xmalloc(cap);
	memcpy(buf, head, headlen);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		size_t n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (len > max) {
			char sz[32];
			free(buf);
			return dw_err(err, errlen, DW_E_LIMIT,
			              "message larger than the %s limit (limits.mail_max)",
			              dw_fmt_size(max, sz, sizeof sz));
		}
		if (n == 0) {
			if (ferror(fp)) {
				int e = errno;
				free(buf);
				return dw_err(err, errlen, DW_E_SOURCE, "read error: %s", strerror(e));
			}
			break;
		}
	}
	*out = buf;
	*outlen = len;
	return DW_OK;
}

int
dw_ingest_stream(FILE *fp, const char *name, const struct dw_limits *limits, const struct dw_ingest_cb *cb,
                 void *ctx, struct dw_ingest_result *res)
{
	struct run r;
	unsigned char head[HEAD_MAX];
	size_t headlen = 0;

	run_init(&r, name, limits, cb, ctx, res);
	while (headlen < sizeof head) {
		size_t n = fread(head + headlen, 1, sizeof head - headlen, fp);
		if (n == 0)
			break;
		headlen += n;
	}
	if (ferror(fp)) {
		snprintf(res->reason, sizeof res->reason, "read error: %s", strerror(errno));
		return res->status = DW_E_SOURCE;
	}
	if (headlen == 0) {
		snprintf(res->reason, sizeof res->reason, "empty file");
		return res->status = DW_E_INPUT;
	}

	int kind = dw_sniff(head, headlen);
	if (kind != 0) {
		struct dw_input in = {.fp = fp, .head = head, .headlen = headlen};
		run_payload(&r, &in, kind);
		return res->status = DW_OK;
	}

	size_t i = 0;
	while (i < headlen && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
		i++;
	if (i < headlen && head[i] == '{')
		return not_report(res, "JSON file: an SMTP TLS report (RFC 8460)? Only DMARC aggregate "
		                       "reports are supported yet");

	/* Neither compressed nor XML: it should be a whole mail, which has to
	 * be in memory for the MIME parser. Refuse an oversized regular file
	 * before reading it. */
	struct stat st;
	if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > limits->mail_max) {
		char sz[32];
		snprintf(res->reason, sizeof res->reason,
		         "message larger than the %s limit (limits.mail_max)",
		         dw_fmt_size(limits->mail_max, sz, sizeof sz));
		return res->status = DW_E_LIMIT;
	}
	unsigned char *msg = NULL;
	size_t len = 0;
	int rc = slurp(fp, head, headlen, limits->mail_max, &msg, &len, res->reason,
	               sizeof res->reason);
	if (rc != DW_OK)
		return res->status = rc;
	rc = mail_run(&r, msg, len, NULL);
	free(msg);
	return rc;
}

int
dw_ingest_path(const char *path, const struct dw_limits *limits, const struct dw_ingest_cb *cb, void *ctx,
               struct dw_ingest_result *res)
{
	if (strcmp(path, "-") == 0)
		return dw_ingest_stream(stdin, "-", limits, cb, ctx, res);

	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		memset(res, 0, sizeof *res);
			snprintf(res->reason, sizeof res->reason, "cannot open: %s", strerror(errno));
		return res->status = DW_E_SOURCE;
	}
	struct stat st;
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		memset(res, 0, sizeof *res);
		snprintf(res->reason, sizeof res->reason, "is a directory");
		return res->status = DW_E_INPUT;
	}
	int rc = dw_ingest_stream(fp, path, limits, cb, ctx, res);
	fclose(fp);
	return rc;
}

void
dw_ingest_result_clear(struct dw_ingest_result *res)
{
	dw_quirks_clear(&res->quirks);
}
