/*
 * slack_msg.h - the Slack message for one notification: a `text` fallback
 * and Block Kit `blocks`, always within Slack's limits (SPEC-NOTES §6.1).
 *
 * Content that does not fit is cut with a visible note ("… N more rows not
 * shown", "(truncated)"); building never fails because a notification is
 * big, only when memory runs out. User data (titles, bodies, cells) is
 * cleaned (invalid UTF-8 becomes U+FFFD, control characters spaces) and
 * escaped for mrkdwn (&, <, >). This file does no I/O.
 */
#ifndef DW_SLACK_MSG_H
#define DW_SLACK_MSG_H

#include <jansson.h>

#include "dmarcwatch/notifier.h"

/* Slack's limits (characters, i.e. code points), and our own budget. */
#define SLACK_MAX_BLOCKS 50
#define SLACK_HEADER_MAX 150         /* header block plain_text */
#define SLACK_SECTION_MAX 3000       /* section text */
#define SLACK_FIELD_MAX 2000         /* one section field */
#define SLACK_FIELDS_PER_SECTION 10
#define SLACK_TEXT_MAX 4000          /* the message's `text` (Slack cuts at 40 000) */
#define SLACK_BLOCKS_BUDGET 12000    /* all blocks, as compact JSON (msg_blocks_too_long at ~13 k) */

/* What the message says about n->attachment. */
enum slack_attach_note {
	SLACK_ATTACH_IN_THREAD,   /* bot mode: the file follows in the message's thread */
	SLACK_ATTACH_UNAVAILABLE  /* webhook mode: it cannot be uploaded */
};

/*
 * A new object {"text": "...", "blocks": [...]} for n (the caller owns the
 * reference and adds "channel" etc.), or NULL when out of memory.
 * agent_version may be NULL.
 */
json_t *slack_message(const struct dw_notification *n, enum slack_attach_note attach, const char *agent_version);

#endif
