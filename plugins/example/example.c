/*
 * example - a complete dmarcwatch notifier plugin, built out of tree.
 *
 * It appends every notification to a text file, one block each:
 *
 *     == 2026-11-23T09:00:00Z alert/warning example.com: DMARC fail rate 12 % > 5 %
 *     key: rule-x:example.com:2026-11-22
 *     messages: 1234
 *     (table: 3 rows; attachment dmarc.csv, 512 bytes)
 *
 * Configuration (dmarcwatch.yaml):
 *
 *     notifiers:
 *       - name: logbook
 *         plugin: /usr/local/lib/dmarcwatch/example.so
 *         path: /var/lib/dmarcwatch/notifications.txt   # required
 *         fields: false                                 # optional, default true
 *
 * Build (see Makefile beside this file):
 *
 *     cc $(pkg-config --cflags dmarcwatch-plugin) -shared -fPIC \
 *        -fvisibility=hidden -o example.so example.c
 *
 * What it shows: keys checked in init() with errors tied to the config
 * line, all state in the instance, RETRY for a temporary failure, and the
 * one exported symbol.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmarcwatch/notifier.h>

struct logbook {
	const struct dw_host *host;
	char *path;
	int fields;
};

static int
lb_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state, char *err, size_t errlen)
{
	const char *path = NULL;
	int fields = 1, bad = 0;
	for (size_t i = 0; i < ncfg; i++) {
		if (strcmp(cfg[i].key, "path") == 0) {
			path = cfg[i].value;
		} else if (strcmp(cfg[i].key, "fields") == 0) {
			if (strcmp(cfg[i].value, "true") == 0 || strcmp(cfg[i].value, "false") == 0) {
				fields = strcmp(cfg[i].value, "true") == 0;
			} else {
				host->config_error(host, &cfg[i], "expected true or false");
				bad = 1;
			}
		} else {
			host->config_error(host, &cfg[i], "unknown key (example knows: path, fields)");
			bad = 1;
		}
	}
	if (bad)
		return -1;
	if (path == NULL || path[0] != '/') {
		snprintf(err, errlen, "path: required, an absolute path to the file to append to");
		return -1;
	}
	struct logbook *lb = calloc(1, sizeof *lb);
	if (lb == NULL || (lb->path = strdup(path)) == NULL) {
		free(lb);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	lb->host = host;
	lb->fields = fields;
	*state = lb;
	return 0;
}

static int
lb_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	static const char *const kinds[] = {"?", "alert", "resolved", "digest", "test"};
	static const char *const sevs[] = {"?", "info", "warning", "critical"};
	struct logbook *lb = state;
	(void)retry_after; /* a file never asks us to wait */
	FILE *f = fopen(lb->path, "a");
	if (f == NULL) {
		/* Perhaps the disk is full or the directory not there yet:
		 * temporary as far as we can tell, so the agent retries. */
		snprintf(err, errlen, "cannot open %s: %s", lb->path, strerror(errno));
		return DW_NOTIFY_RETRY;
	}
	char when[32];
	struct tm tm;
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&n->time, &tm));
	fprintf(f, "== %s %s/%s %s\nkey: %s\n", when, kinds[n->kind <= 4 ? n->kind : 0],
	        sevs[n->severity <= 3 ? n->severity : 0], n->title, n->idempotency_key);
	for (size_t i = 0; lb->fields && i < n->nfields; i++)
		fprintf(f, "%s: %s\n", n->fields[i].name, n->fields[i].value);
	if (n->table != NULL || n->attachment != NULL)
		fprintf(f, "(table: %zu rows; attachment %s, %zu bytes)\n", n->table != NULL ? n->table->nrows : 0,
		        n->attachment != NULL ? n->attachment->filename : "none",
		        n->attachment != NULL ? n->attachment->size : 0);
	if (fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", lb->path, strerror(errno));
		return DW_NOTIFY_RETRY;
	}
	lb->host->log(lb->host, DW_LOG_DEBUG, "appended \"%s\" to %s", n->title, lb->path);
	return DW_NOTIFY_OK;
}

static void
lb_shutdown(void *state)
{
	struct logbook *lb = state;
	free(lb->path);
	free(lb);
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "example", .version = "1.0",
                     .description = "appends notifications to a text file", .init = lb_init,
                     .notify = lb_notify, .shutdown = lb_shutdown);
