/*
 * source.h - where report mail comes from: a small vtable with two
 * implementations, IMAP (source_imap.c) and a maildir reader
 * (source_maildir.c), as isync's drivers are. The agent loop (agent.c) only
 * talks to this interface.
 *
 * Messages are identified by (uidvalidity, uid). For a maildir, uids are
 * assigned by the source from the file names (see source_maildir.c) and
 * uidvalidity is stable for a given directory.
 *
 * What a source does not do: parse, judge or store messages. It fetches
 * bytes and moves messages to folders when told.
 */
#ifndef DW_SOURCE_H
#define DW_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "dw/config.h"

struct dw_source;

/* One fetched message; valid only during the callback. */
struct dw_msg {
	uint32_t uid;
	const unsigned char *data;  /* the whole RFC 5322 message */
	size_t len;
	int64_t internaldate;       /* seconds UTC (IMAP INTERNALDATE, file mtime), -1 unknown */
	uint32_t size;              /* RFC822.SIZE as announced (may differ from len) */
};

/* A message that was too big to fetch is reported with data == NULL and
 * len == 0 (and size set), so the agent can give it a verdict. */
typedef int dw_msg_fn(void *ctx, const struct dw_msg *m, char *err, size_t errlen);

struct dw_source_ops {
	const char *kind; /* "imap", "maildir" */
	/* Connect, authenticate, select the folder. Sets *uidvalidity. Errors:
	 * DW_E_SOURCE (retry later), DW_E_CONFIG (e.g. bad credentials, bad
	 * certificate: the message says what to fix). */
	int (*open)(struct dw_source *s, uint32_t *uidvalidity, char *err, size_t errlen);
	/* Deliver messages with uid > after, oldest first, up to about max_bytes
	 * of message data (at least one message), to fn. *more is set when
	 * further messages remain. A non-zero return from fn stops the fetch and
	 * is returned. Messages larger than max_msg bytes are not downloaded. */
	int (*fetch)(struct dw_source *s, uint32_t after, uint64_t max_bytes, uint64_t max_msg, dw_msg_fn *fn,
	             void *ctx, int *more, char *err, size_t errlen);
	/* Move the messages with these uids to folder (created if missing).
	 * Uids that no longer exist are ignored. */
	int (*move)(struct dw_source *s, const uint32_t *uids, size_t n, const char *folder, char *err,
	            size_t errlen);
	/* Waiting for new mail. start_wait returns a file descriptor to poll for
	 * reading (IMAP IDLE) or -1 when the source can only be polled;
	 * end_wait ends the wait (DONE) and tells whether new mail arrived. */
	int (*start_wait)(struct dw_source *s, int *fd, char *err, size_t errlen);
	int (*end_wait)(struct dw_source *s, int *new_mail, char *err, size_t errlen);
	/* Logout / close; the source can be opened again. */
	void (*close)(struct dw_source *s);
	void (*free)(struct dw_source *s);
	/* How many messages with uid > after the listing of the last fetch
	 * holds, and the highest of their uids in *last (unset when none). For
	 * the progress line only: a guess, never used to decide anything. May
	 * be NULL. */
	uint64_t (*pending)(struct dw_source *s, uint32_t after, uint32_t *last);
};

struct dw_source {
	const struct dw_source_ops *ops;
	const struct dw_account_cfg *acct; /* borrowed from the config */
	void *priv;                        /* the implementation's state */
};

/* Constructors: never fail (nothing is connected yet). */
struct dw_source *dw_source_imap_new(const struct dw_account_cfg *acct);
struct dw_source *dw_source_maildir_new(const struct dw_account_cfg *acct);

#endif
