/*
 * recorder - a test notifier: appends one line per notification to `path`:
 *   KEY<TAB>KIND<TAB>SEVERITY<TAB>ATTEMPT<TAB>TITLE<TAB>NFIELDS<TAB>ROWS<TAB>ATTACHMENT-BYTES
 * and can be told to misbehave:
 *   retry_first: N    answer RETRY to the first N calls of this instance
 *   retry_after: S    ... with this retry-after hint
 *   fail: true        always answer FAIL
 *   delay_ms: M       sleep M ms before recording (a slow receiver)
 *   token_file/token  a secret; with leak_secret: true it is put in err
 *                     (the agent must mask it)
 * Unknown keys are refused through host->config_error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmarcwatch/notifier.h"

struct rec {
	const struct dw_host *host;
	char *path;
	unsigned long retry_first, retry_after, calls, delay_ms;
	int fail, leak;
	char *token;
};

static int
rec_init(const struct dw_host *host, const struct dw_kv *cfg, size_t n, void **state, char *err, size_t errlen)
{
	struct rec *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -1;
	r->host = host;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		const char *k = cfg[i].key, *v = cfg[i].value;
		if (strcmp(k, "path") == 0) {
			free(r->path);
			r->path = strdup(v);
		} else if (strcmp(k, "retry_first") == 0) {
			r->retry_first = strtoul(v, NULL, 10);
		} else if (strcmp(k, "retry_after") == 0) {
			r->retry_after = strtoul(v, NULL, 10);
		} else if (strcmp(k, "delay_ms") == 0) {
			r->delay_ms = strtoul(v, NULL, 10);
		} else if (strcmp(k, "fail") == 0) {
			r->fail = strcmp(v, "true") == 0;
		} else if (strcmp(k, "leak_secret") == 0) {
			r->leak = strcmp(v, "true") == 0;
		} else if (strcmp(k, "token") != 0 && strcmp(k, "token_file") != 0) {
			host->config_error(host, &cfg[i], "unknown key (recorder knows path, retry_first, retry_after, "
			                                  "delay_ms, fail, leak_secret, token, token_file)");
			bad = 1;
		}
	}
	if (host->secret(host, "token", &r->token) < 0)
		bad = 1;
	if (!bad && r->path == NULL) {
		snprintf(err, errlen, "path: required (the file to append to)");
		bad = 1;
	}
	if (bad) {
		free(r->path);
		free(r->token);
		free(r);
		return -1;
	}
	host->log(host, DW_LOG_DEBUG, "recorder ready, writing to %s%s%s", r->path, r->token ? ", token " : "",
	          r->token ? r->token : "");
	*state = r;
	return 0;
}

static int
rec_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct rec *r = state;
	r->calls++;
	if (r->fail) {
		snprintf(err, errlen, "recorder: told to fail%s%s", r->leak && r->token ? " with token " : "",
		         r->leak && r->token ? r->token : "");
		return DW_NOTIFY_FAIL;
	}
	if (r->calls <= r->retry_first) {
		*retry_after = (unsigned)r->retry_after;
		snprintf(err, errlen, "recorder: told to retry (call %lu of %lu)%s%s", r->calls, r->retry_first,
		         r->leak && r->token ? " token=" : "", r->leak && r->token ? r->token : "");
		return DW_NOTIFY_RETRY;
	}
	struct timespec ts = {(time_t)(r->delay_ms / 1000), (long)(r->delay_ms % 1000) * 1000000L};
	while (r->delay_ms > 0 && nanosleep(&ts, &ts) != 0)
		;
	FILE *f = fopen(r->path, "a");
	if (f == NULL) {
		snprintf(err, errlen, "recorder: cannot open %s", r->path);
		return DW_NOTIFY_RETRY;
	}
	static const char *const kinds[] = {"?", "alert", "resolved", "digest", "test"};
	static const char *const sevs[] = {"?", "info", "warning", "critical"};
	fprintf(f, "%s\t%s\t%s\t%u\t%s\t%zu\t%zu\t%zu\n", n->idempotency_key, kinds[n->kind <= 4 ? n->kind : 0],
	        sevs[n->severity <= 3 ? n->severity : 0], (unsigned)n->attempt, n->title, n->nfields,
	        n->table != NULL ? n->table->nrows : 0, n->attachment != NULL ? n->attachment->size : 0);
	return fclose(f) == 0 ? DW_NOTIFY_OK : DW_NOTIFY_RETRY;
}

static void
rec_shutdown(void *state)
{
	struct rec *r = state;
	free(r->path);
	free(r->token);
	free(r);
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "recorder", .version = "1", .description = "test: records notifications",
                     .init = rec_init, .notify = rec_notify, .shutdown = rec_shutdown);
