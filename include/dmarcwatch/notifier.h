/*
 * dmarcwatch/notifier.h - the notifier plugin ABI, version 1.
 *
 * This header is the whole SDK: a notifier plugin is a shared object that
 * includes it and exports ONE symbol, `dw_notifier_entry`. Plugins never
 * link against the agent; everything the agent offers arrives through the
 * `struct dw_host` passed to init(). Build an out-of-tree plugin with
 *
 *     cc $(pkg-config --cflags dmarcwatch-plugin) -shared -fPIC \
 *        -fvisibility=hidden -o myplugin.so myplugin.c
 *
 * and name it in the configuration:
 *
 *     notifiers:
 *       - name: pager
 *         plugin: /usr/local/lib/myplugin.so   # or a name in plugin_dir
 *         path: /var/log/dmarc-alerts.txt       # keys for the plugin
 *
 * A complete minimal plugin (it appends each notification's title to a file):
 *
 *     #include <stdio.h>
 *     #include <stdlib.h>
 *     #include <string.h>
 *     #include <dmarcwatch/notifier.h>
 *
 *     struct state { char *path; };
 *
 *     static int
 *     my_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg,
 *             void **state, char *err, size_t errlen)
 *     {
 *         const char *path = NULL;
 *         for (size_t i = 0; i < ncfg; i++) {
 *             if (strcmp(cfg[i].key, "path") == 0)
 *                 path = cfg[i].value;
 *             else {
 *                 host->config_error(host, &cfg[i], "unknown key (this plugin knows: path)");
 *                 return -1;
 *             }
 *         }
 *         if (path == NULL) {
 *             snprintf(err, errlen, "path: required (the file to append to)");
 *             return -1;
 *         }
 *         struct state *s = calloc(1, sizeof *s);
 *         if (s == NULL || (s->path = strdup(path)) == NULL) {
 *             free(s);
 *             snprintf(err, errlen, "out of memory");
 *             return -1;
 *         }
 *         *state = s;
 *         return 0;
 *     }
 *
 *     static int
 *     my_notify(void *state, const struct dw_notification *n, unsigned *retry_after,
 *               char *err, size_t errlen)
 *     {
 *         struct state *s = state;
 *         (void)retry_after;
 *         FILE *f = fopen(s->path, "a");
 *         if (f == NULL) {
 *             snprintf(err, errlen, "cannot open %s", s->path);
 *             return DW_NOTIFY_RETRY;            // the agent tries again later
 *         }
 *         fprintf(f, "%s %s\n", n->idempotency_key, n->title);
 *         return fclose(f) == 0 ? DW_NOTIFY_OK : DW_NOTIFY_RETRY;
 *     }
 *
 *     static void
 *     my_shutdown(void *state)
 *     {
 *         struct state *s = state;
 *         free(s->path);
 *         free(s);
 *     }
 *
 *     DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry = DW_NOTIFIER_INIT(
 *         .name = "append", .version = "1.0", .description = "append titles to a file",
 *         .init = my_init, .notify = my_notify, .shutdown = my_shutdown);
 *
 * LIFECYCLE
 *   1. The agent dlopen()s the file (RTLD_NOW | RTLD_LOCAL) and reads
 *      `dw_notifier_entry`. It refuses, as a configuration error naming the
 *      plugin and the config line: a group- or world-writable file, a missing
 *      symbol, an abi_version other than DW_NOTIFIER_ABI_VERSION, a
 *      struct_size smaller than version 1's, or a NULL init or notify.
 *   2. init() runs once per configured instance (the same plugin may be
 *      configured twice, e.g. two Slack channels: keep everything in
 *      *state, never in globals). All init() calls happen in the main thread
 *      before any delivery thread starts, so process-wide setup such as
 *      curl_global_init(CURL_GLOBAL_DEFAULT) is safe there. init() must not
 *      touch the network: it checks and stores configuration. Return 0, or
 *      non-zero with a message in err (or after host->config_error()).
 *      `dmarcwatch check-config` runs init() too.
 *   3. notify() delivers one notification. Return DW_NOTIFY_OK when the
 *      receiver has accepted it, DW_NOTIFY_RETRY for a temporary failure
 *      (set *retry_after to a number of seconds if the receiver said how
 *      long to wait, e.g. HTTP Retry-After; leave it 0 otherwise) or
 *      DW_NOTIFY_FAIL for a permanent one (bad credentials, channel not
 *      found). err gets a one-line reason in both failure cases.
 *   4. shutdown() (optional) frees the state when the agent stops or reloads
 *      its configuration (SIGHUP); a new init() follows on reload. It is
 *      called once for every init() that returned 0, even when *state was
 *      left NULL.
 *
 * THREADING
 *   Each instance has its own delivery thread: notify() of one instance is
 *   never called concurrently with itself, but different instances (of the
 *   same plugin too) run at the same time. host->log() is thread-safe.
 *   notify() must bound its own time by host->timeout_ms (CURLOPT_TIMEOUT_MS,
 *   socket timeouts, killing a child). If it overruns, the agent records
 *   the attempt as timed out and retries later once the call returns; other
 *   notifiers and the mail work carry on meanwhile. Plugins never call
 *   exit(), install signal handlers (use CURLOPT_NOSIGNAL), or change the
 *   working directory or umask.
 *
 * OWNERSHIP
 *   Everything the agent passes in (cfg, the notification and everything it
 *   points to, host) is borrowed: cfg and host stay valid until shutdown();
 *   a notification only during the notify() call. Copy what you keep.
 *   Strings are UTF-8 and NUL-terminated; optional ones may be NULL.
 *
 * DELIVERY GUARANTEES
 *   Notifications go through a durable outbox: at least once. A crash
 *   between a successful notify() and the agent recording it means the
 *   notification is offered again, with the same idempotency_key; receivers
 *   that can de-duplicate should use it.
 *
 * SECRETS
 *   Call host->secret(host, "token", &value) in init(): it resolves
 *   "token: env:NAME" or "token_file: PATH" and registers the value so that
 *   the agent's logs and stored errors never show it. Never log a
 *   secret or a URL that embeds one yourself.
 *
 * VERSIONING
 *   DW_NOTIFIER_ABI_VERSION changes only when an existing member changes
 *   meaning, type or place. New members are appended at the end of a
 *   struct and announced by struct_size, so a plugin built against an older
 *   header keeps working; before reading a member added later, check it is
 *   inside the struct_size the other side reports (DW_HAS_MEMBER).
 */
#ifndef DMARCWATCH_NOTIFIER_H
#define DMARCWATCH_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DW_NOTIFIER_ABI_VERSION 1

/* Does a struct whose producer reported struct_size contain member m? */
#define DW_HAS_MEMBER(ptr, type, m) \
	((ptr)->struct_size >= offsetof(type, m) + sizeof(((type *)0)->m))

#if defined(__GNUC__)
#define DW_NOTIFIER_EXPORT __attribute__((visibility("default")))
#define DW_NOTIFIER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DW_NOTIFIER_EXPORT
#define DW_NOTIFIER_PRINTF(a, b)
#endif

/* notify() results. */
enum dw_notify_result { DW_NOTIFY_OK = 0, DW_NOTIFY_RETRY = 1, DW_NOTIFY_FAIL = 2 };

/* What a notification is about. */
enum dw_notify_kind {
	DW_KIND_ALERT = 1,    /* a rule's condition became true (or is still true: an update) */
	DW_KIND_RESOLVED = 2, /* the condition has been false long enough */
	DW_KIND_DIGEST = 3,   /* the daily digest */
	DW_KIND_TEST = 4      /* `dmarcwatch test-notify` */
};

enum dw_severity { DW_SEV_INFO = 1, DW_SEV_WARNING = 2, DW_SEV_CRITICAL = 3 };

/* host->log() levels, most severe first. (The agent's own log.h shares
 * these values and this guard.) */
#ifndef DW_LOG_LEVELS_DEFINED
#define DW_LOG_LEVELS_DEFINED
enum dw_log_level { DW_LOG_ERROR = 0, DW_LOG_WARNING = 1, DW_LOG_INFO = 2, DW_LOG_DEBUG = 3 };
#endif

/* One configuration entry of the plugin's section. A YAML list becomes the
 * same key repeated, in order. line/col point into the configuration file. */
struct dw_kv {
	const char *key;
	const char *value;
	unsigned line, col;
};

/* A named figure ("messages" = "1234"), shown as a field by chat plugins. */
struct dw_field {
	const char *name;
	const char *value;
};

/* A small table (top sending sources): ncols column names, then nrows rows
 * of ncols cells each, row-major: cell (r, c) is cells[r * ncols + c]. */
struct dw_table {
	size_t ncols;
	const char *const *columns;
	size_t nrows;
	const char *const *cells;
};

/* A file to attach (the digest's CSV). data holds size bytes, not a string. */
struct dw_attachment {
	const char *filename;   /* "dmarc-2026-11-22.csv" */
	const char *media_type; /* "text/csv" */
	const unsigned char *data;
	size_t size;
};

struct dw_notification {
	uint32_t struct_size;       /* sizeof(struct dw_notification) of the agent */
	uint32_t kind;              /* enum dw_notify_kind */
	uint32_t severity;          /* enum dw_severity */
	uint32_t attempt;           /* 1 on the first delivery attempt */
	time_t time;                /* when the event happened, UTC */
	const char *idempotency_key;/* stable across retries and restarts; never NULL */
	const char *rule;           /* rule name; NULL for digests and tests */
	const char *domain;         /* the domain concerned, or NULL */
	const char *title;          /* one line, never NULL: "example.com: DMARC fail rate 12.5 % > 5 %" */
	const char *body;           /* plain text, several lines, never NULL */
	const char *summary;        /* Markdown-ish: *bold*, `code`, "- " bullets; or NULL */
	const char *runbook;        /* URL of the rule's runbook, or NULL */
	const struct dw_field *fields;
	size_t nfields;
	const struct dw_table *table;           /* or NULL */
	const struct dw_attachment *attachment; /* or NULL */
};

struct dw_host {
	uint32_t abi_version;       /* DW_NOTIFIER_ABI_VERSION of the agent */
	uint32_t struct_size;       /* sizeof(struct dw_host) of the agent */
	const char *instance;       /* the notifier's name in the configuration */
	const char *agent_version;  /* "0.2.0" */
	unsigned timeout_ms;        /* one notify() call must return within this */
	/* Log a line prefixed with the instance name. Thread-safe. Registered
	 * secrets are masked. No trailing newline. */
	void (*log)(const struct dw_host *host, int level, const char *fmt, ...) DW_NOTIFIER_PRINTF(3, 4);
	/* Report a configuration error about one entry ("FILE:LINE:COL:
	 * notifiers[N].KEY: message"); kv may be NULL for the section itself.
	 * Only valid during init(); init() then returns non-zero. */
	void (*config_error)(const struct dw_host *host, const struct dw_kv *kv, const char *fmt, ...)
	    DW_NOTIFIER_PRINTF(3, 4);
	/* Resolve a secret given as "KEY: env:NAME" or "KEY_file: PATH" (first
	 * line of the file; relative to the configuration file). Returns 1 and
	 * a malloc()ed string in *out (free it with free() after use), 0 when
	 * neither key is present, -1 on error (already reported as a
	 * configuration error). A plain "KEY: value" works but draws a warning:
	 * secrets do not belong in the configuration file. Both KEY and
	 * KEY_file reach init() in cfg too: accept them as known keys. Only
	 * valid during init(). */
	int (*secret)(const struct dw_host *host, const char *key, char **out);
	void *host_data;            /* the agent's; do not touch */
};

struct dw_notifier {
	uint32_t abi_version;       /* DW_NOTIFIER_ABI_VERSION: first, never moves */
	uint32_t struct_size;       /* sizeof(struct dw_notifier): second, never moves */
	const char *name;           /* "slack" */
	const char *version;        /* the plugin's own version */
	const char *description;    /* one line */
	int (*init)(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state,
	            char *err, size_t errlen);
	int (*notify)(void *state, const struct dw_notification *n, unsigned *retry_after, char *err,
	              size_t errlen);
	void (*shutdown)(void *state); /* may be NULL */
};

/* The exported symbol's name and an initialiser that fills the first two
 * members: DW_NOTIFIER_INIT(.name = "x", .init = f, .notify = g). */
#define DW_NOTIFIER_SYMBOL "dw_notifier_entry"
#define DW_NOTIFIER_INIT(...) \
	{ .abi_version = DW_NOTIFIER_ABI_VERSION, .struct_size = sizeof(struct dw_notifier), __VA_ARGS__ }

#endif
