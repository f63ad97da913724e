/* util.c - allocation, error formatting, quirks. See dw/util.h. */
#include "dw/util.h"
#include "dw/limits.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static DW_NORETURN void
oom(size_t n)
{
	/* The one place below main that terminates: running out of memory
	 * leaves no sane way to continue (OpenSMTPD and isync do the same). */
	fprintf(stderr, "dmarcwatch: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		oom(n * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	if (s == NULL)
		return NULL;
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	char *p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int
dw_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void
dw_quirks_add(struct dw_quirks *q, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (dw_quirks_has(q, buf) || q->n >= DW_QUIRKS_MAX)
		return;
	q->v = xreallocarray(q->v, q->n + 1, sizeof *q->v);
	q->v[q->n++] = xstrdup(buf);
}

void
dw_quirks_merge(struct dw_quirks *dst, const struct dw_quirks *src)
{
	for (size_t i = 0; i < src->n; i++)
		dw_quirks_add(dst, "%s", src->v[i]);
}

int
dw_quirks_has(const struct dw_quirks *q, const char *quirk)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->v[i], quirk) == 0)
			return 1;
	return 0;
}

void
dw_quirks_clear(struct dw_quirks *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->v[i]);
	free(q->v);
	q->v = NULL;
	q->n = 0;
}

const char *
dw_fmt_size(uint64_t bytes, char *buf, size_t buflen)
{
	static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	uint64_t v = bytes;
	while (v >= 1024 && v % 1024 == 0 && u + 1 < sizeof unit / sizeof unit[0]) {
		v /= 1024;
		u++;
	}
	snprintf(buf, buflen, "%" PRIu64 " %s", v, unit[u]);
	return buf;
}

void
dw_limits_default(struct dw_limits *l)
{
	l->mail_max = UINT64_C(64) << 20;
	l->decompressed_max = UINT64_C(512) << 20;
	l->ratio_max = 2000;
	l->ratio_grace = UINT64_C(1) << 20;
	l->zip_members_max = 32;
	l->rfc822_depth_max = 3;
	l->records_max = 20000000;
	l->xml_depth_max = 32;
}

int
dw_parse_size(const char *s, uint64_t *v)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
	    {"", 1},
	    {"b", 1},
	    {"k", UINT64_C(1) << 10},
	    {"kib", UINT64_C(1) << 10},
	    {"kb", 1000},
	    {"m", UINT64_C(1) << 20},
	    {"mib", UINT64_C(1) << 20},
	    {"mb", 1000000},
	    {"g", UINT64_C(1) << 30},
	    {"gib", UINT64_C(1) << 30},
	    {"gb", 1000000000},
	    {"t", UINT64_C(1) << 40},
	    {"tib", UINT64_C(1) << 40},
	    {"tb", UINT64_C(1000000000000)},
	};
	uint64_t n = 0;
	if (!isdigit((unsigned char)*s))
		return 1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return 2;
		n = n * 10 + d;
	}
	while (*s == ' ')
		s++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(s, units[i].suffix) != 0)
			continue;
		if (n > UINT64_MAX / units[i].mult)
			return 2;
		*v = n * units[i].mult;
		return 0;
	}
	return 1;
}

int
dw_limits_set(struct dw_limits *l, const char *kv, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		int kind; /* 0 = uint64 size, 1 = unsigned count */
		size_t off;
	} keys[] = {
	    {"mail_max", 0, offsetof(struct dw_limits, mail_max)},
	    {"decompressed_max", 0, offsetof(struct dw_limits, decompressed_max)},
	    {"ratio_max", 0, offsetof(struct dw_limits, ratio_max)},
	    {"ratio_grace", 0, offsetof(struct dw_limits, ratio_grace)},
	    {"records_max", 0, offsetof(struct dw_limits, records_max)},
	    {"zip_members_max", 1, offsetof(struct dw_limits, zip_members_max)},
	    {"rfc822_depth_max", 1, offsetof(struct dw_limits, rfc822_depth_max)},
	    {"xml_depth_max", 1, offsetof(struct dw_limits, xml_depth_max)},
	};
	const char *eq = strchr(kv, '=');
	if (eq == NULL)
		return dw_err(err, errlen, DW_E_CONFIG, "expected NAME=VALUE, got '%s'", kv);
	size_t nlen = (size_t)(eq - kv);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (strlen(keys[i].name) != nlen || strncmp(keys[i].name, kv, nlen) != 0)
			continue;
		uint64_t v;
		if (dw_parse_size(eq + 1, &v) != 0 || v == 0 || (keys[i].kind == 1 && v > 1000000))
			return dw_err(err, errlen, DW_E_CONFIG, "%s: expected a positive number%s, got '%s'",
			              keys[i].name, keys[i].kind == 0 ? " (suffixes K, M, G allowed)" : "", eq + 1);
		if (keys[i].kind == 0)
			memcpy((char *)l + keys[i].off, &v, sizeof v);
		else {
			unsigned u = (unsigned)v;
			memcpy((char *)l + keys[i].off, &u, sizeof u);
		}
		return DW_OK;
	}
	return dw_err(err, errlen, DW_E_CONFIG,
	              "unknown limit '%.*s' (known: mail_max, decompressed_max, ratio_max, ratio_grace, "
	              "records_max, zip_members_max, rfc822_depth_max, xml_depth_max)",
	              (int)nlen, kv);
}

int64_t
dw_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
dw_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
dw_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}
