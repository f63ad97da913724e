/*
 * days.h - attributing a report's date range to calendar days in the
 * operator's IANA time zone.
 *
 * Rule: a range of at most 36 hours goes wholly to the one day that holds
 * most of it (ties: the earlier day), so Microsoft's 00:00->00:00 ranges land
 * on one day. A longer range is split over the days it overlaps in proportion
 * to the overlap, with integer counts that sum exactly to the original
 * (largest-remainder rounding; ties go to the earlier day). Ranges longer
 * than DW_DAYS_MAX days are attributed wholly to the day holding `end`
 * (a quirk for the caller to note). end < begin is treated as begin..begin.
 *
 * The zone is the process's TZ (set once by main with dw_tz_set); the
 * functions here use localtime_r/mktime and keep no state of their own.
 */
#ifndef DW_DAYS_H
#define DW_DAYS_H

#include <stddef.h>
#include <stdint.h>

#define DW_DAYS_MAX 62

/* A civil day: "YYYY-MM-DD" in the zone. */
struct dw_day {
	char ymd[11];
	int64_t start;   /* seconds UTC of the day's first second in the zone */
	int64_t seconds; /* overlap of the range with this day (length of the day may be 23/25 h) */
};

struct dw_days {
	struct dw_day day[DW_DAYS_MAX];
	size_t n;        /* >= 1 */
	int clamped;     /* 1 if the range was longer than DW_DAYS_MAX days */
};

/*
 * Select and validate the IANA zone for the whole process ("UTC",
 * "Europe/Paris"). Fails with DW_E_CONFIG when the zone is unknown (no file
 * under /usr/share/zoneinfo or $TZDIR), instead of silently using UTC.
 * Only main() calls this (it changes the environment).
 */
int dw_tz_set(const char *zone, char *err, size_t errlen);

/* Compute the days a range [begin, end] is attributed to. */
void dw_days_of(int64_t begin, int64_t end, struct dw_days *out);

/* Apportion count over d's days; out[i] gets day i's share; sum(out) == count. */
void dw_days_apportion(const struct dw_days *d, uint64_t count, uint64_t *out);

/* Day holding instant t, as YYYY-MM-DD in the zone. */
void dw_day_of(int64_t t, char ymd[11]);

/* Parse "YYYY-MM-DD"; returns 0 and the day's first instant in the zone, or -1. */
int dw_day_parse(const char *ymd, int64_t *start);

#endif
