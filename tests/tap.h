/*
 * tap.h - a tiny TAP producer for the unit tests. Checks are soft: a failed
 * check prints "not ok" with file:line and the test goes on, so one run shows
 * every failure. done_testing() prints the plan and returns the exit status.
 *
 *   ok(cond, "name %d", i);  is_int(got, want, "name");  is_str(got, want, "name");
 */
#ifndef DW_TAP_H
#define DW_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 4, 5), unused)) static int
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   Failed at %s line %d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                              \
	do {                                                                                    \
		long long g_ = (long long)(got), w_ = (long long)(want);                            \
		if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__))                             \
			printf("#          got: %lld\n#     expected: %lld\n", g_, w_);                 \
	} while (0)

#define is_str(got, want, ...)                                                              \
	do {                                                                                    \
		const char *g_ = (got), *w_ = (want);                                               \
		int c_ = (g_ == NULL || w_ == NULL) ? g_ == w_ : strcmp(g_, w_) == 0;               \
		if (!tap_ok(c_, __FILE__, __LINE__, __VA_ARGS__))                                   \
			printf("#          got: '%s'\n#     expected: '%s'\n", g_ ? g_ : "(null)",      \
			       w_ ? w_ : "(null)");                                                     \
	} while (0)

#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

__attribute__((unused)) static int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
