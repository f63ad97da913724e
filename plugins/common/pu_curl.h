/*
 * pu_curl.h - libcurl setup and HTTP outcome mapping for the bundled
 * plugins. Only plugins that link libcurl include this.
 */
#ifndef DW_PU_CURL_H
#define DW_PU_CURL_H

#include <curl/curl.h>

#include "plugutil.h"

/* Apply the common options to a fresh easy handle: timeout (whole
 * transfer, from host->timeout_ms), connect timeout, NOSIGNAL, no
 * redirects, protocols limited to `protocols` (e.g. "http,https"), the
 * User-Agent "dmarcwatch/VERSION", certificate verification per tls, and
 * curl's error buffer (errbuf, CURL_ERROR_SIZE bytes). 0 or -1. */
int pu_curl_setup(CURL *h, const struct dw_host *host, const struct pu_tls *tls, const char *protocols,
                  char *errbuf);

/* A CURLOPT_WRITEFUNCTION that appends to a struct pu_buf (WRITEDATA);
 * beyond the buffer's max it keeps the start and sets truncated. */
size_t pu_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata);

/*
 * The outcome of a transfer, as a notify() result:
 *   curl error: timeouts, connection and DNS failures, sends/receives cut
 *     -> RETRY; certificate problems and unsupported protocols -> FAIL
 *     (they need the operator); err says which and names `what`.
 *   HTTP 2xx -> OK; 429 -> RETRY with *retry_after from Retry-After;
 *   408, 425, 5xx -> RETRY (Retry-After honoured too); other -> FAIL.
 * For non-2xx answers err gets "WHAT: HTTP 404: <first line of body>"
 * (the body is the receiver's error text; URLs never appear).
 */
int pu_http_outcome(CURL *h, CURLcode rc, const char *errbuf, const struct pu_buf *body, const char *what,
                    unsigned *retry_after, char *err, size_t errlen);

/*
 * The same for an SMTP transfer (the e-mail plugin). CURLINFO_RESPONSE_CODE
 * holds the last SMTP reply code; `reply` is the last reply line the caller
 * captured (printable; NULL when none) and `cmd` the command it answered
 * ("RCPT TO", "DATA"; NULL before any):
 *   OK -> OK; login refused -> FAIL, but a 4xx answer to AUTH -> RETRY;
 *   any other 5xx answer -> FAIL, 4xx -> RETRY, err "WHAT: the server
 *   refused CMD: REPLY"; STARTTLS required but not offered, certificate
 *   problems, bad URL -> FAIL; connection problems, timeouts -> RETRY.
 */
int pu_smtp_outcome(CURL *h, CURLcode rc, const char *errbuf, const char *cmd, const char *reply, const char *what,
                    char *err, size_t errlen);

/* Append a header line to *l: 0, or -1 when out of memory (then *l is
 * unchanged and still the caller's to free). */
int pu_curl_header(struct curl_slist **l, const char *line);

#endif
