/*
 * oauth2.h - XOAUTH2 access tokens for IMAP (Gmail / Google Workspace).
 *
 * An access token is obtained either by refreshing a refresh token at the
 * token endpoint (RFC 6749 section 6, HTTPS POST with libcurl; the reply is
 * read with jansson) or by running the account's token_command (the isync
 * / mutt way: a command that prints a token). It is cached in memory only,
 * with its expiry, and refreshed when missing, expired (with a 60 s
 * margin) or when the caller says the server refused it (force).
 * Tokens and secrets never appear in error messages.
 */
#ifndef DW_OAUTH2_H
#define DW_OAUTH2_H

#include <stddef.h>
#include <time.h>

#include "dw/config.h"

struct dw_oauth2;

/* Initialise libcurl (curl_global_init). main calls it once, before any
 * thread starts, because curl_global_init is not thread-safe. */
void dw_oauth2_global_init(void);

/* cfg is borrowed and must outlive the object. account names messages. */
struct dw_oauth2 *dw_oauth2_new(const struct dw_oauth2_cfg *cfg, const char *account, unsigned timeout);
/* *token points into the object (valid until the next call / free).
 * Errors: DW_E_SOURCE (endpoint unreachable, 5xx: retry later) or
 * DW_E_CONFIG (invalid_grant, bad client: the user must fix something). */
int dw_oauth2_token(struct dw_oauth2 *o, int force, const char **token, char *err, size_t errlen);
void dw_oauth2_free(struct dw_oauth2 *o); /* NULL-safe; wipes the token */

/*
 * Notes for callers:
 * - One object belongs to one account and one thread; it is not locked.
 * - token_url must be https; plain http is accepted only for 127.0.0.1,
 *   localhost and ::1 (tests). Redirects are not followed.
 * - token_command runs as "/bin/sh -c COMMAND" in its own process group,
 *   with stdin from /dev/null, within the object's timeout; it is killed
 *   when it overruns. Its token is cached for 50 minutes. The process must
 *   not reap children it did not start (no SIGCHLD = SIG_IGN, no
 *   waitpid(-1) loop), or the command's exit status is lost.
 */

#endif
