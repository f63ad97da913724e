/*
 * days.c - attributing a report's date range to civil days in the process's
 * IANA time zone. See dw/days.h for the rule.
 *
 * Day boundaries come from localtime_r/mktime, so days of 23 or 25 hours
 * (daylight saving changes) get their true length. Nothing here keeps state:
 * the zone is whatever main() selected with dw_tz_set().
 */
#include "dw/days.h"
#include "dw/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A range of at most this many seconds goes wholly to one day. */
#define ONE_DAY_MAX (36 * 3600)

/*
 * Instants outside years 1..9999 cannot be formatted as YYYY-MM-DD and may
 * overflow struct tm; report ranges are attacker-controlled, so clamp.
 */
#define T_MIN INT64_C(-62135596800) /* 0001-01-01T00:00:00Z */
#define T_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

#define ZONE_NAME_MAX 255

static int64_t
clamp_t(int64_t t)
{
	if (t < T_MIN)
		return T_MIN;
	if (t > T_MAX)
		return T_MAX;
	return t;
}

/* Floor modulo: the result is in [0, m) also for negative a. */
static int64_t
mod_floor(int64_t a, int64_t m)
{
	int64_t r = a % m;
	return r < 0 ? r + m : r;
}

static int
valid_zone_name(const char *zone)
{
	size_t len = strlen(zone);
	if (len == 0 || len > ZONE_NAME_MAX || zone[0] == '/')
		return 0;
	for (const char *c = zone; *c != '\0'; c++) {
		int okc = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		          *c == '/' || *c == '_' || *c == '-' || *c == '+' || *c == '.';
		if (!okc)
			return 0;
	}
	/* Every component must be a plain name: no empty ones ("a//b", "a/"),
	 * no "." or "..", so the name can never leave the zoneinfo directory. */
	const char *comp = zone;
	for (;;) {
		const char *slash = strchr(comp, '/');
		size_t n = slash != NULL ? (size_t)(slash - comp) : strlen(comp);
		if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
			return 0;
		if (slash == NULL)
			break;
		comp = slash + 1;
	}
	return 1;
}

int
dw_tz_set(const char *zone, char *err, size_t errlen)
{
	if (zone == NULL || !valid_zone_name(zone))
		return dw_err(err, errlen, DW_E_CONFIG,
		              "invalid time zone '%s': expected an IANA name like Europe/Paris "
		              "(no absolute path, no '..')",
		              zone != NULL ? zone : "");

	/* glibc looks in $TZDIR when it is set and not empty, else in the
	 * system directory: check the same place it will read. */
	const char *dir = getenv("TZDIR");
	if (dir == NULL || *dir == '\0')
		dir = "/usr/share/zoneinfo";

	/* UTC needs no file: the C library knows it even without tzdata. */
	if (strcmp(zone, "UTC") != 0) {
		char *path = xasprintf("%s/%s", dir, zone);
		FILE *f = fopen(path, "rb");
		free(path);
		if (f == NULL)
			return dw_err(err, errlen, DW_E_CONFIG,
			              "unknown time zone '%s': no such file in %s "
			              "(install tzdata or use an IANA name like Europe/Paris)",
			              zone, dir);
		char magic[4];
		size_t got = fread(magic, 1, sizeof magic, f);
		fclose(f);
		/* A directory ("America") or any other file is not a zone. */
		if (got != sizeof magic || memcmp(magic, "TZif", 4) != 0)
			return dw_err(err, errlen, DW_E_CONFIG,
			              "unknown time zone '%s': %s/%s is not a time zone file "
			              "(use an IANA name like Europe/Paris)",
			              zone, dir, zone);
	}
	if (setenv("TZ", zone, 1) != 0)
		return dw_err(err, errlen, DW_E_SYS, "cannot set TZ=%s", zone);
	tzset();
	return DW_OK;
}

static void
fmt_ymd(const struct tm *tm, char ymd[11])
{
	int y = tm->tm_year + 1900, m = tm->tm_mon + 1, d = tm->tm_mday;
	/* Callers clamp instants to years 1..9999, so four digits suffice;
	 * formatting by hand keeps the buffer size provably right. */
	if (y < 0)
		y = 0;
	if (y > 9999)
		y = 9999;
	ymd[0] = (char)('0' + y / 1000);
	ymd[1] = (char)('0' + y / 100 % 10);
	ymd[2] = (char)('0' + y / 10 % 10);
	ymd[3] = (char)('0' + y % 10);
	ymd[4] = '-';
	ymd[5] = (char)('0' + m / 10);
	ymd[6] = (char)('0' + m % 10);
	ymd[7] = '-';
	ymd[8] = (char)('0' + d / 10);
	ymd[9] = (char)('0' + d % 10);
	ymd[10] = '\0';
}

static int
to_local(int64_t t, struct tm *tm)
{
	time_t tt = (time_t)clamp_t(t);
	return localtime_r(&tt, tm) != NULL;
}

static int64_t
secs_into_day(const struct tm *tm)
{
	return (int64_t)tm->tm_hour * 3600 + tm->tm_min * 60 + tm->tm_sec;
}

static int
same_date(const struct tm *a, const struct tm *b)
{
	return a->tm_year == b->tm_year && a->tm_yday == b->tm_yday;
}

/*
 * The first instant of the civil day y-m-d (month 1..12; day may be one past
 * the month's end, mktime normalises it). mktime alone is not enough where a
 * DST change falls on midnight:
 *  - when 00:00 does not exist, mktime may resolve it to the previous day;
 *    the day then starts where that day's clock would have reached 24:00;
 *  - when 00:00 happens twice (clocks go back at 01:00), mktime may pick
 *    the second one; the day started at the first.
 */
static int64_t
day_start(int y, int m, int d)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_isdst = -1;
	struct tm want = tm;
	int64_t t = (int64_t)mktime(&tm);
	/* Normalise the wanted date (d may be past the month's end). */
	want.tm_hour = 12;
	want.tm_isdst = -1;
	(void)mktime(&want);

	struct tm got;
	if (!to_local(t, &got))
		return t;
	if (got.tm_year < want.tm_year || (got.tm_year == want.tm_year && got.tm_yday < want.tm_yday)) {
		t += 86400 - secs_into_day(&got);
		return t;
	}
	/* A few steps back at most: no zone repeats more than a few hours. */
	for (int i = 0; i < 4; i++) {
		struct tm prev;
		if (!to_local(t - 1, &prev) || !same_date(&prev, &got))
			break;
		t = t - 1 - secs_into_day(&prev);
	}
	return t;
}

/* The civil day holding t: its name and [start, next). */
static void
day_bounds(int64_t t, char ymd[11], int64_t *start, int64_t *next)
{
	struct tm tm;
	if (!to_local(t, &tm)) {
		/* Cannot happen for clamped instants; fall back to UTC days. */
		*start = t - mod_floor(t, 86400);
		*next = *start + 86400;
		time_t tt = (time_t)*start;
		struct tm u;
		if (gmtime_r(&tt, &u) != NULL)
			fmt_ymd(&u, ymd);
		else
			snprintf(ymd, 11, "0000-00-00");
		return;
	}
	fmt_ymd(&tm, ymd);
	int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
	*start = day_start(y, m, d);
	*next = day_start(y, m, d + 1);
	/*
	 * Where the local date runs backwards (Newfoundland until 2011 turned
	 * its clocks back at 00:01, so a minute of the new day came before the
	 * rest of the old one), the next day's start can lie at or before t.
	 * Then the day ends where t's clock reaches 24:00. Keeping [start,
	 * next) around t also guarantees that walking the days advances.
	 */
	if (*start > t)
		*start = t;
	if (*next <= t)
		*next = t + 86400 - secs_into_day(&tm);
	if (*next <= t)
		*next = t + 1;
}

void
dw_day_of(int64_t t, char ymd[11])
{
	int64_t s, n;
	day_bounds(clamp_t(t), ymd, &s, &n);
}

void
dw_days_of(int64_t begin, int64_t end, struct dw_days *out)
{
	memset(out, 0, sizeof *out);
	begin = clamp_t(begin);
	end = clamp_t(end);
	if (end < begin)
		end = begin;

	/*
	 * Work on the half-open interval [b, e). Reporters mostly write an
	 * inclusive end (00:00:00 .. 23:59:59): its last second belongs to the
	 * range, so e = end + 1. An end on a whole minute (Microsoft's
	 * 00:00 .. next 00:00) is exclusive already. A zero-length range
	 * still holds its instant.
	 */
	int64_t b = begin, e = end;
	if (mod_floor(end, 60) == 59 || e == b)
		e = end + 1;
	int64_t len = e - b;

	/* Walk the days the range overlaps, at most DW_DAYS_MAX of them. */
	int64_t t = b;
	int64_t start, next;
	while (t < e && out->n < DW_DAYS_MAX) {
		struct dw_day *d = &out->day[out->n++];
		day_bounds(t, d->ymd, &start, &next);
		d->start = start;
		d->seconds = (next < e ? next : e) - t;
		t = next;
	}

	if (t < e) {
		/* Too long to be a real aggregate report: give it all to the day
		 * holding its last second and let the caller note a quirk. */
		memset(out, 0, sizeof *out);
		out->n = 1;
		out->clamped = 1;
		day_bounds(e - 1, out->day[0].ymd, &start, &next);
		out->day[0].start = start;
		out->day[0].seconds = e - (start > b ? start : b);
		return;
	}

	if (len <= ONE_DAY_MAX && out->n > 1) {
		/* Short ranges go wholly to the day holding most of them; the
		 * strict comparison gives ties to the earlier day. */
		size_t best = 0;
		for (size_t i = 1; i < out->n; i++)
			if (out->day[i].seconds > out->day[best].seconds)
				best = i;
		out->day[0] = out->day[best];
		out->n = 1;
	}
}

void
dw_days_apportion(const struct dw_days *d, uint64_t count, uint64_t *out)
{
	size_t n = d->n;
	if (n == 0)
		return;
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += d->day[i].seconds > 0 ? (uint64_t)d->day[i].seconds : 0;
	if (n == 1 || total == 0) {
		memset(out, 0, n * sizeof *out);
		out[0] = count;
		return;
	}

	/*
	 * Hamilton's method: each day first gets floor(count * sec / total),
	 * then the units left over go one each to the days with the largest
	 * remainders. count * sec can exceed 64 bits, so split count into
	 * whole multiples of total and the rest: with c = qc * total + rc,
	 * c * sec / total = qc * sec + rc * sec / total, where rc * sec stays
	 * below total^2 (< 2^46 for 62 days) and qc * sec <= count.
	 */
	uint64_t qc = count / total, rc = count % total;
	uint64_t rem[DW_DAYS_MAX];
	uint64_t given = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t sec = d->day[i].seconds > 0 ? (uint64_t)d->day[i].seconds : 0;
		uint64_t p = rc * sec;
		out[i] = qc * sec + p / total;
		rem[i] = p % total;
		given += out[i];
	}
	/* Fewer than n units are left; hand them out in order of remainder,
	 * the earlier day first among equals. */
	uint64_t left = count - given;
	unsigned char used[DW_DAYS_MAX];
	memset(used, 0, sizeof used);
	while (left > 0) {
		size_t best = n;
		for (size_t i = 0; i < n; i++)
			if (!used[i] && (best == n || rem[i] > rem[best]))
				best = i;
		if (best == n)
			break; /* cannot happen: left < n */
		used[best] = 1;
		out[best]++;
		left--;
	}
}

static int
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
dw_day_parse(const char *ymd, int64_t *start)
{
	if (ymd == NULL || strlen(ymd) != 10 || ymd[4] != '-' || ymd[7] != '-')
		return -1;
	static const int pos[] = {0, 1, 2, 3, 5, 6, 8, 9};
	for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
		if (ymd[pos[i]] < '0' || ymd[pos[i]] > '9')
			return -1;
	int y = (ymd[0] - '0') * 1000 + (ymd[1] - '0') * 100 + (ymd[2] - '0') * 10 + (ymd[3] - '0');
	int m = (ymd[5] - '0') * 10 + (ymd[6] - '0');
	int d = (ymd[8] - '0') * 10 + (ymd[9] - '0');
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return -1;
	int dim = mdays[m - 1] + (m == 2 && is_leap(y));
	if (d > dim)
		return -1;
	if (start != NULL)
		*start = day_start(y, m, d);
	return 0;
}
