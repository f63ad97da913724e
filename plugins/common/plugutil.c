/*
 * plugutil.c - configuration helpers for the bundled plugins.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugutil.h"

const struct dw_kv *
pu_kv(const struct dw_kv *cfg, size_t n, const char *key)
{
	const struct dw_kv *last = NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(cfg[i].key, key) == 0)
			last = &cfg[i];
	return last;
}

const char *
pu_get(const struct dw_kv *cfg, size_t n, const char *key)
{
	const struct dw_kv *kv = pu_kv(cfg, n, key);
	return kv != NULL ? kv->value : NULL;
}

size_t
pu_count(const struct dw_kv *cfg, size_t n, const char *key)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += strcmp(cfg[i].key, key) == 0;
	return c;
}

int
pu_check_keys(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *const *known)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (known[k] != NULL && strcmp(known[k], cfg[i].key) != 0)
			k++;
		if (known[k] != NULL)
			continue;
		char list[512];
		size_t used = 0;
		list[0] = '\0';
		for (k = 0; known[k] != NULL && used < sizeof list; k++) {
			int w = snprintf(list + used, sizeof list - used, "%s%s", k > 0 ? ", " : "", known[k]);
			if (w < 0)
				break;
			used += (size_t)w;
		}
		host->config_error(host, &cfg[i], "unknown key for this plugin (it knows: %s)", list);
		rc = -1;
	}
	return rc;
}

int
pu_single(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key)
{
	if (pu_count(cfg, n, key) <= 1)
		return 0;
	host->config_error(host, pu_kv(cfg, n, key), "expected one value, not a list");
	return -1;
}

int
pu_bool(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key, int *out)
{
	const struct dw_kv *kv = pu_kv(cfg, n, key);
	if (kv == NULL)
		return 0;
	if (pu_single(host, cfg, n, key) != 0)
		return -1;
	static const char *const yes[] = {"true", "yes", "on", NULL}, *const no[] = {"false", "no", "off", NULL};
	for (size_t i = 0; yes[i] != NULL; i++) {
		if (strcmp(kv->value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(kv->value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	host->config_error(host, kv, "expected true or false");
	return -1;
}

int
pu_uint(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key, unsigned long lo,
        unsigned long hi, unsigned long *out)
{
	const struct dw_kv *kv = pu_kv(cfg, n, key);
	if (kv == NULL)
		return 0;
	if (pu_single(host, cfg, n, key) != 0)
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(kv->value, &end, 10);
	if (kv->value[0] < '0' || kv->value[0] > '9' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		host->config_error(host, kv, "expected a whole number from %lu to %lu", lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int
pu_enum(const struct dw_host *host, const struct dw_kv *cfg, size_t n, const char *key,
        const char *const *names, int *out)
{
	const struct dw_kv *kv = pu_kv(cfg, n, key);
	if (kv == NULL)
		return 0;
	if (pu_single(host, cfg, n, key) != 0)
		return -1;
	for (int i = 0; names[i] != NULL; i++) {
		if (strcmp(kv->value, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	char list[256];
	size_t used = 0;
	list[0] = '\0';
	for (int i = 0; names[i] != NULL && used < sizeof list; i++) {
		int w = snprintf(list + used, sizeof list - used, "%s%s", i > 0 ? ", " : "", names[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	host->config_error(host, kv, "expected one of: %s", list);
	return -1;
}

char *
pu_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

void
pu_secret_free(char *s)
{
	if (s == NULL)
		return;
	volatile char *p = s;
	while (*p != '\0')
		*p++ = '\0';
	free(s);
}

int
pu_buf_add(struct pu_buf *b, const void *data, size_t n)
{
	size_t max = b->max != 0 ? b->max : 64 * 1024;
	if (b->len + n > max) {
		b->truncated = 1;
		n = max - b->len;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
pu_buf_printf(struct pu_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (w < 0)
		return -1;
	if ((size_t)w < sizeof small)
		return pu_buf_add(b, small, (size_t)w);
	char *big = malloc((size_t)w + 1);
	if (big == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)w + 1, fmt, ap);
	va_end(ap);
	int rc = pu_buf_add(b, big, (size_t)w);
	free(big);
	return rc;
}

void
pu_buf_free(struct pu_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->truncated = 0;
}

int
pu_tls_config(const struct dw_host *host, const struct dw_kv *cfg, size_t n, struct pu_tls *tls)
{
	tls->verify = 1;
	tls->ca_file = pu_get(cfg, n, "ca_file");
	int rc = pu_single(host, cfg, n, "ca_file");
	if (pu_bool(host, cfg, n, "verify", &tls->verify) != 0)
		rc = -1;
	if (!tls->verify)
		host->log(host, DW_LOG_WARNING, "verify: false: TLS certificates are NOT checked for this notifier");
	return rc;
}

int64_t
pu_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
pu_utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}
