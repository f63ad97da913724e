/*
 * slow - a test notifier whose notify() sleeps `sleep` seconds (default
 * 30), ignoring its timeout, then appends the key to `path` and says OK.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmarcwatch/notifier.h"

struct slow {
	char *path;
	unsigned long secs;
};

static int
slow_init(const struct dw_host *host, const struct dw_kv *cfg, size_t n, void **state, char *err, size_t errlen)
{
	(void)host;
	struct slow *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -1;
	s->secs = 30;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg[i].key, "path") == 0)
			s->path = strdup(cfg[i].value);
		else if (strcmp(cfg[i].key, "sleep") == 0)
			s->secs = strtoul(cfg[i].value, NULL, 10);
	}
	if (s->path == NULL) {
		snprintf(err, errlen, "path: required");
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int
slow_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct slow *s = state;
	(void)retry_after;
	(void)err;
	(void)errlen;
	struct timespec ts = {(time_t)s->secs, 0};
	while (nanosleep(&ts, &ts) != 0)
		;
	FILE *f = fopen(s->path, "a");
	if (f != NULL) {
		fprintf(f, "%s\n", n->idempotency_key);
		fclose(f);
	}
	return DW_NOTIFY_OK;
}

static void
slow_shutdown(void *state)
{
	struct slow *s = state;
	free(s->path);
	free(s);
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "slow", .init = slow_init, .notify = slow_notify, .shutdown = slow_shutdown);
