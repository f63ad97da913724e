/*
 * unpack.h - stage 2: turn one payload (gzip, zip, or raw XML/JSON bytes)
 * into one or more decompressed documents, streamed chunk by chunk.
 *
 * gzip: multi-member; trailing bytes after the last member are ignored with
 * the quirk "gzip-trailing-bytes". A gzip inside a zip or a gzip inside a
 * gzip is unwrapped once more ("double-compressed" quirk). zip: every member
 * whose content sniffs as XML or gzip becomes a document; encrypted members,
 * unknown methods and more than limits->zip_members_max entries are refused;
 * declared sizes and names are never trusted and nothing touches the file
 * system. Sizes are capped by limits->decompressed_max and the ratio limit.
 *
 * Decompressed bytes are never gathered in memory: each chunk is handed to
 * the callbacks as soon as it is produced (chunks are at most 64 KiB).
 */
#ifndef DW_UNPACK_H
#define DW_UNPACK_H

#include <stddef.h>
#include <stdio.h>

#include "dw/limits.h"
#include "dw/util.h"

struct dw_unpack_cb {
	/* A new document starts. name: zip member name or NULL (informational).
	 * Return DW_OK to receive its data, anything else to abort the unpack. */
	int (*doc_begin)(void *ctx, const char *name, char *err, size_t errlen);
	/* Decompressed bytes of the current document, in order. Non-zero aborts. */
	int (*doc_data)(void *ctx, const unsigned char *buf, size_t len, char *err, size_t errlen);
	/* The current document ended. status is DW_OK when all of it was
	 * delivered, otherwise the error that cut it short (with its message in
	 * msg); the callback decides what to do with a partial document.
	 * Its return value is the document's final status. */
	int (*doc_end)(void *ctx, int status, const char *msg, char *err, size_t errlen);
};

/* An input: a memory buffer, or a readable stream (file, pipe, stdin). */
struct dw_input {
	const unsigned char *buf; /* borrowed; used when fp == NULL */
	size_t len;
	FILE *fp;                 /* borrowed; read to EOF when not NULL */
	const unsigned char *head;/* optional bytes already read from fp (sniffed), consumed first */
	size_t headlen;
};

/*
 * dw_unpack - unpack one payload and stream its documents to cb.
 *   in      the compressed or raw bytes
 *   kind    DW_PAYLOAD_* from dw_sniff on the first bytes
 *   quirks  quirks found while unpacking are added here
 * Returns DW_OK if every document ended DW_OK; otherwise the first failing
 * status with its message in err (DW_E_INPUT for corrupt data, DW_E_LIMIT for
 * an exceeded limit, DW_E_SOURCE for a read error on fp). Documents delivered
 * before a failure stay delivered.
 */
int dw_unpack(const struct dw_input *in, int kind, const struct dw_limits *limits,
              const struct dw_unpack_cb *cb, void *ctx, struct dw_quirks *quirks,
              char *err, size_t errlen);

#endif
