/*
 * fuzz_mime.c - libFuzzer harness for stage 1 (src/mime.c): the input is a
 * whole mail message, parsed with the default limits.
 *
 * Besides what ASan/UBSan catch, it reads every string and payload byte the
 * parser hands out (so a dangling or unterminated pointer is touched) and
 * aborts when a documented property of struct dw_mail does not hold.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dw/limits.h"
#include "dw/mime.h"
#include "dw/report.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dw_limits limits;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dw_report_global_init();
	dw_limits_default(&limits);
	return 0;
}

/* strlen of a possibly NULL string; the volatile sink keeps the reads. */
static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dw_mail *m = NULL;
	char err[256];
	volatile size_t sink = 0;

	err[0] = '\0';
	int rc = dw_mime_parse(data, size, &limits, &m, err, sizeof err);
	/* The error message must be a terminated string whatever happened. */
	if (memchr(err, '\0', sizeof err) == NULL)
		abort();
	/* On failure *out is not ours to free (mime.h promises a mail only
	 * on success); anything left allocated shows up as a leak. */
	if (rc != DW_OK)
		return 0;
	if (m == NULL)
		abort();
	sink += slen(m->message_id) + slen(m->from) + slen(m->from_domain) + slen(m->subject) +
	        slen(m->date);
	for (size_t i = 0; i < m->n_auth_results; i++) {
		if (m->auth_results[i] == NULL)
			abort();
		sink += strlen(m->auth_results[i]);
	}
	for (size_t i = 0; i < m->npayloads; i++) {
		const struct dw_payload *p = &m->payloads[i];
		if (p->kind < DW_PAYLOAD_GZIP || p->kind > DW_PAYLOAD_XML)
			abort();
		if (p->depth > limits.rfc822_depth_max)
			abort();
		/* Decoding (base64, QP, raw) never makes a body longer than the
		 * message it came from. */
		if (p->len > size)
			abort();
		for (size_t k = 0; k < p->len; k++)
			sink += p->data[k];
		sink += slen(p->filename) + slen(p->content_type);
	}
	for (size_t i = 0; i < m->quirks.n; i++)
		sink += strlen(m->quirks.v[i]);
	(void)sink;
	dw_mail_free(m);
	return 0;
}
