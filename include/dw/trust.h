/*
 * trust.h - is a report mail authentic? Judged from the Authentication-Results
 * header fields (RFC 8601) that our own receiving server added.
 *
 * Only the topmost Authentication-Results field whose authserv-id is one
 * we trust is considered (anything below it could have been forged by the
 * sender). require dmarc: that field must say dmarc=pass. require dkim: it
 * must say dkim=pass with header.d (or header.i's domain) equal to the
 * From: domain or a parent of it (relaxed alignment, at least two labels).
 */
#ifndef DW_TRUST_H
#define DW_TRUST_H

#include <stddef.h>

#include "dw/config.h"

/*
 * Returns 1 if trusted, 0 if not (why says what was missing, e.g. "no
 * Authentication-Results from mx.example.com" or "mx.example.com says
 * dmarc=fail"). require DW_TRUST_NONE always returns 1.
 *   ar, nar         the header values, topmost first (dw_mail.auth_results)
 *   from_domain     the From: domain, lower case (may be NULL)
 */
int dw_trust_check(char *const *ar, size_t nar, const char *from_domain, char *const *authserv_ids, size_t nids,
                   enum dw_trust_require require, char *why, size_t whylen);

#endif
