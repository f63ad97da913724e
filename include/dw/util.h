/*
 * util.h - small helpers shared by every stage: allocation that aborts on
 * out-of-memory, bounded error formatting, and the quirk list.
 *
 * What it deliberately does not do: logging (see log.h) or any I/O.
 */
#ifndef DW_UTIL_H
#define DW_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DW_NORETURN __attribute__((noreturn))
#else
#define DW_PRINTF(a, b)
#define DW_NORETURN
#endif

/*
 * Return codes used by every stage. 0 is success. The scope tells the caller
 * what to do next (STYLE.md section 4):
 *   DW_E_INPUT   this input item is bad: log it, count it, move on
 *   DW_E_LIMIT   this input item exceeds a configured limit (an input error)
 *   DW_E_SOURCE  the source (server, file system) failed: retry later
 *   DW_E_STORE   the database failed: retry, acknowledge nothing
 *   DW_E_CONFIG  configuration error: startup only
 *   DW_E_SYS     unexpected system error (errno-style)
 */
enum dw_rc {
	DW_OK = 0,
	DW_E_INPUT = 1,
	DW_E_LIMIT = 2,
	DW_E_SOURCE = 3,
	DW_E_STORE = 4,
	DW_E_CONFIG = 5,
	DW_E_SYS = 6,
};

/* Allocation: abort with a message on out-of-memory (never returns NULL). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* xreallocarray: like reallocarray, aborting on overflow or OOM. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);       /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) DW_PRINTF(1, 2);

/* Format into a caller's error buffer (err may be NULL or errlen 0). Returns rc. */
int dw_err(char *err, size_t errlen, int rc, const char *fmt, ...) DW_PRINTF(4, 5);

/*
 * Quirks: short, stable, lower-case tokens describing non-conforming input
 * that we accepted ("gzip-trailing-bytes", "spf-result:hardfail"). Kept
 * unique and in first-seen order; capped at DW_QUIRKS_MAX entries.
 */
#define DW_QUIRKS_MAX 64
struct dw_quirks {
	char **v; /* owned strings */
	size_t n;
};
void dw_quirks_add(struct dw_quirks *q, const char *fmt, ...) DW_PRINTF(2, 3);
void dw_quirks_merge(struct dw_quirks *dst, const struct dw_quirks *src);
int dw_quirks_has(const struct dw_quirks *q, const char *quirk);
void dw_quirks_clear(struct dw_quirks *q); /* frees the strings, keeps q usable */

/*
 * Parse a size: "64MiB", "512M", "1G", "64 KiB", "1000". K, M, G, T and KiB,
 * MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB powers of 1000; B or no
 * suffix is bytes; case does not matter. Returns 0, 1 (not a size) or
 * 2 (overflow). Used by the config file and by --limit alike.
 */
int dw_parse_size(const char *s, uint64_t *v);

/* Milliseconds: on the monotonic clock (timeouts, deadlines) and since
 * the epoch (what is stored). */
int64_t dw_mono_ms(void);
int64_t dw_wall_ms(void);

/* Write all of buf to fd, retrying short writes and EINTR. 0, or -1 with errno set. */
int dw_write_all(int fd, const void *buf, size_t len);

/* Human-readable size for messages: "512 MiB". Writes into buf. */
const char *dw_fmt_size(uint64_t bytes, char *buf, size_t buflen);

#endif
