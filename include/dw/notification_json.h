/*
 * notification_json.h - the JSON form of a notification (jansson).
 *
 * One schema serves the outbox (what is stored before delivery), the
 * webhook plugin's POST body, the exec plugin's stdin and
 * `dmarcwatch test-notify --json FILE`. It is documented in the README
 * ("Notification JSON"):
 *
 *   {"schema": "dmarcwatch.notification/1", "kind": "alert", "severity":
 *    "warning", "time": "2026-11-23T09:00:00Z", "idempotency_key": "...",
 *    "attempt": 1, "rule": "...", "domain": "...", "title": "...",
 *    "body": "...", "summary": "...", "runbook": "...",
 *    "fields": [{"name": "...", "value": "..."}],
 *    "table": {"columns": ["..."], "rows": [["...", "..."]]},
 *    "attachment": {"filename": "...", "media_type": "...", "size": N,
 *                   "data_base64": "..."}}
 *
 * Absent optional members are left out, never written as null.
 *
 * This file is also compiled into the plugins (which never link against
 * the agent), so it uses plain malloc and reports failure by return value
 * instead of aborting.
 */
#ifndef DW_NOTIFICATION_JSON_H
#define DW_NOTIFICATION_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "dmarcwatch/notifier.h"

#define DW_NOTIFICATION_SCHEMA "dmarcwatch.notification/1"

/* Flags for the writers. */
#define DW_NJ_NO_ATTACHMENT_DATA 0x1 /* attachment metadata only (no data_base64) */
#define DW_NJ_NO_ATTEMPT 0x2         /* leave "attempt" out (the outbox stores it apart) */

/* A new JSON object (caller owns the reference), or NULL when out of memory. */
json_t *dw_notification_to_jansson(const struct dw_notification *n, int flags);
/* The same, compact, as a malloc()ed string; NULL when out of memory. */
char *dw_notification_to_json(const struct dw_notification *n, int flags);

/*
 * Parse the JSON form. On success returns 0 and *out points to a
 * notification that owns all its memory (free with dw_notification_free).
 * On failure returns -1 with the reason in err ("line 3: kind: expected one
 * of alert, resolved, digest, test"). Required: kind and title. Defaults:
 * body "", severity info, time now, attempt 1, idempotency_key "" (the
 * caller supplies one).
 */
int dw_notification_from_json(const char *text, size_t len, struct dw_notification **out, char *err,
                              size_t errlen);
void dw_notification_free(struct dw_notification *n); /* NULL-safe; only for parsed ones */

/* Names used in the JSON form, in logs and in the config. */
const char *dw_notify_kind_name(unsigned kind);     /* "alert"; "?" when unknown */
const char *dw_severity_name(unsigned severity);    /* "warning"; "?" when unknown */
int dw_notify_kind_parse(const char *s);            /* enum value, or 0 */
int dw_severity_parse(const char *s);               /* enum value, or 0 */

/* RFC 3339 UTC ("2026-11-23T09:00:00Z") into buf (at least 21 bytes). */
const char *dw_rfc3339(time_t t, char *buf, size_t buflen);

#endif
