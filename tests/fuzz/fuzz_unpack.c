/*
 * fuzz_unpack.c - libFuzzer harness for stage 2 (src/unpack.c): the input is
 * one payload (gzip, zip or XML bytes).
 *
 * The payload is sniffed with dw_sniff and, when it is one of the kinds,
 * unpacked twice: from memory, and as a stream (fmemopen) whose first bytes
 * were already read, the way the CLI reads files and stdin. It is also
 * unpacked as raw XML whatever it sniffed as. Small limits keep bombs cheap.
 * The callbacks count bytes and abort when the documented call order
 * (begin, data..., end; never data outside a document) is broken or a
 * document grows past the limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw/limits.h"
#include "dw/mime.h"
#include "dw/report.h"
#include "dw/unpack.h"
#include "dw/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dw_limits limits;

struct count {
	int in_doc;
	unsigned docs;
	uint64_t doc_bytes;
	volatile unsigned sum;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dw_report_global_init();
	dw_limits_default(&limits);
	limits.decompressed_max = 8u << 20;
	limits.ratio_grace = 64u << 10;
	limits.zip_members_max = 8;
	return 0;
}

static int doc_begin(void *ctx, const char *name, char *err, size_t errlen)
{
	struct count *c = ctx;
	(void)err;
	(void)errlen;
	if (c->in_doc)
		abort(); /* a document began before the previous one ended */
	if (name != NULL)
		c->sum += (unsigned)strlen(name);
	c->in_doc = 1;
	c->docs++;
	c->doc_bytes = 0;
	return DW_OK;
}

static int doc_data(void *ctx, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	struct count *c = ctx;
	(void)err;
	(void)errlen;
	if (!c->in_doc || len > 64 * 1024)
		abort(); /* data outside a document, or a chunk over 64 KiB */
	for (size_t i = 0; i < len; i++)
		c->sum += buf[i];
	c->doc_bytes += len;
	if (c->doc_bytes > limits.decompressed_max)
		abort(); /* the cap was not enforced */
	return DW_OK;
}

static int doc_end(void *ctx, int status, const char *msg, char *err, size_t errlen)
{
	struct count *c = ctx;
	if (!c->in_doc)
		abort();
	if (status != DW_OK && msg != NULL)
		c->sum += (unsigned)strlen(msg);
	c->in_doc = 0;
	/* Pass the status on, so a cut-short document fails the unpack. */
	if (status != DW_OK)
		return dw_err(err, errlen, status, "%s", msg ? msg : "document cut short");
	return DW_OK;
}

static void run(const struct dw_input *in, int kind)
{
	static const struct dw_unpack_cb cb = {
		.doc_begin = doc_begin,
		.doc_data = doc_data,
		.doc_end = doc_end,
	};
	struct count c;
	struct dw_quirks q = {0};
	char err[256];

	memset(&c, 0, sizeof c);
	err[0] = '\0';
	int rc = dw_unpack(in, kind, &limits, &cb, &c, &q, err, sizeof err);
	if (c.in_doc)
		abort(); /* dw_unpack returned with a document still open */
	if (rc != DW_OK && memchr(err, '\0', sizeof err) == NULL)
		abort();
	for (size_t i = 0; i < q.n; i++)
		c.sum += (unsigned)strlen(q.v[i]);
	dw_quirks_clear(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dw_input in;
	int kind = dw_sniff(data, size);

	if (kind != 0) {
		if (kind < DW_PAYLOAD_GZIP || kind > DW_PAYLOAD_XML)
			abort();
		memset(&in, 0, sizeof in);
		in.buf = data;
		in.len = size;
		run(&in, kind);

		/* The same bytes as a stream, with a sniffed head already read. */
		size_t headlen = size < 16 ? size : 16;
		if (size > headlen) {
			FILE *fp = fmemopen((void *)(uintptr_t)(data + headlen), size - headlen, "rb");
			if (fp != NULL) {
				memset(&in, 0, sizeof in);
				in.fp = fp;
				in.head = data;
				in.headlen = headlen;
				run(&in, kind);
				fclose(fp);
			}
		}
	}
	if (kind != DW_PAYLOAD_XML) {
		memset(&in, 0, sizeof in);
		in.buf = data;
		in.len = size;
		run(&in, DW_PAYLOAD_XML);
	}
	return 0;
}
