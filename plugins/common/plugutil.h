/*
 * plugutil.h - helpers shared by the bundled notifier plugins (linked
 * statically into each .so; not part of the installed SDK).
 *
 * Configuration: plugins receive their section as {key, value, line} entries
 * (dmarcwatch/notifier.h). These helpers look keys up, refuse unknown keys
 * and parse typed values, reporting through host->config_error() so that
 * every message carries FILE:LINE:COL.
 *
 * HTTP/SMTP (pu_curl.c): one libcurl setup for every plugin (timeouts,
 * certificate verification, no signals, no redirects, bounded response
 * capture) and one mapping of HTTP answers to OK / RETRY / FAIL.
 */
#ifndef DW_PLUGUTIL_H
#define DW_PLUGUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dmarcwatch/notifier.h"

/* The last entry with this key, or NULL. */
const struct dw_kv *pu_kv(const struct dw_kv *cfg, size_t n, const char *key);
/* Its value, or NULL. */
const char *pu_get(const struct dw_kv *cfg, size_t n, const char *key);
/* How many entries have this key (YAML lists arrive as repeated keys). */
size_t pu_count(const struct dw_kv *cfg, size_t n, const char *key);

/* Refuse keys not in known (NULL-terminated); names the known ones.
 * Returns 0 or -1 (after config_error for each unknown key). */
int pu_check_keys(const struct dw_host *host, const struct dw_kv *cfg, size_t n,
                  const char *const *known);
/* Refuse a key given more than once (a list where one value is expected). */
int pu_single(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key);

/* Typed values. Absent keys leave *out untouched and return 0; a bad value
 * is reported and returns -1. */
int pu_bool(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key, int *out);
int pu_uint(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key,
            unsigned long lo, unsigned long hi, unsigned long *out);
/* One of the NULL-terminated names: *out gets its index. */
int pu_enum(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key,
            const char *const *names, int *out);

/* strdup that reports out-of-memory into err; NULL in, NULL out. */
char *pu_strdup(const char *s);

/* Free a secret after wiping it. NULL-safe. */
void pu_secret_free(char *s);

/* A bounded growable buffer (response bodies). */
struct pu_buf {
	char *p;
	size_t len, cap, max; /* max 0 = 64 KiB */
	int truncated;
};
int pu_buf_add(struct pu_buf *b, const void *data, size_t n); /* 0, or -1 on OOM */
/* Append printf-formatted text (the e-mail plugin composes its message
 * with it). 0, or -1 on OOM or a bad format. */
int pu_buf_printf(struct pu_buf *b, const char *fmt, ...) DW_NOTIFIER_PRINTF(2, 3);
void pu_buf_free(struct pu_buf *b);

/* TLS settings shared by the curl-based plugins: keys ca_file, verify. */
struct pu_tls {
	const char *ca_file; /* borrowed from cfg; NULL = system store */
	int verify;          /* default 1 */
};
int pu_tls_config(const struct dw_host *host, const struct dw_kv *cfg, size_t n, struct pu_tls *tls);

/* Characters (not bytes) in a UTF-8 string: continuation bytes do not
 * count. For aligning text columns and for length limits in characters. */
size_t pu_utf8_chars(const char *s);

/* Milliseconds on the monotonic clock, for deadlines within notify(). */
int64_t pu_mono_ms(void);

#endif
