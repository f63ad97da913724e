/*
 * test_days.c - attributing report ranges to civil days (src/days.c): zone
 * validation, the 36-hour rule, splits with exact sums, daylight saving days
 * and the DW_DAYS_MAX clamp.
 */
#include "dw/days.h"
#include "dw/util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define D20180905 INT64_C(1536105600) /* 2018-09-05T00:00:00Z */
#define H INT64_C(3600)
#define DAY INT64_C(86400)

static void
zone(const char *z)
{
	char err[256] = "";
	int rc = dw_tz_set(z, err, sizeof err);
	if (rc != DW_OK) {
		printf("Bail out! cannot select zone %s: %s\n", z, err);
		exit(1);
	}
}

/* A tiny deterministic generator so failures are reproducible. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Apportion count over d and check the two promises: the shares sum to the
 * count, and every share is the proportional value rounded down or up.
 * Returns 1 when both hold.
 */
static int
split_ok(const struct dw_days *d, uint64_t count)
{
	uint64_t out[DW_DAYS_MAX];
	dw_days_apportion(d, count, out);
	unsigned __int128 total = 0, sum = 0;
	for (size_t i = 0; i < d->n; i++)
		total += (uint64_t)d->day[i].seconds;
	for (size_t i = 0; i < d->n; i++) {
		sum += out[i];
		unsigned __int128 exact = (unsigned __int128)count * (uint64_t)d->day[i].seconds;
		unsigned __int128 lo = exact / total, hi = lo + (exact % total != 0);
		if (out[i] < lo || out[i] > hi)
			return 0;
	}
	return sum == count;
}

static void
check_splits(const char *what, const struct dw_days *d)
{
	int good = 1;
	for (uint64_t c = 0; c <= 1000 && good; c++)
		good = split_ok(d, c);
	ok(good, "%s: counts 0..1000 split exactly and proportionally", what);
	good = 1;
	for (int i = 0; i < 2000 && good; i++) {
		uint64_t c = rng() >> (rng() % 64);
		good = split_ok(d, c);
	}
	good = good && split_ok(d, UINT64_MAX) && split_ok(d, UINT64_MAX - 1) &&
	       split_ok(d, (uint64_t)INT64_MAX);
	ok(good, "%s: random and extreme counts split exactly and proportionally", what);
}

static void
test_zones(void)
{
	char err[256];
	unsetenv("TZDIR");
	is_int(dw_tz_set("UTC", err, sizeof err), DW_OK, "UTC accepted");
	is_int(dw_tz_set("Europe/Paris", err, sizeof err), DW_OK, "Europe/Paris accepted");
	is_str(getenv("TZ"), "Europe/Paris", "TZ set");

	err[0] = '\0';
	is_int(dw_tz_set("Mars/Olympus", err, sizeof err), DW_E_CONFIG, "Mars/Olympus refused");
	is_str(err,
	       "unknown time zone 'Mars/Olympus': no such file in /usr/share/zoneinfo "
	       "(install tzdata or use an IANA name like Europe/Paris)",
	       "unknown zone message");
	static const char *bad[] = {"../etc/passwd", "/etc/localtime", "", "Europe/../Europe/Paris",
	                            "Europe//Paris", "Europe/", "./UTC", "America", "Europe/Paris\n",
	                            "Europe/Paris;rm"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		int rc = dw_tz_set(bad[i], err, sizeof err);
		/* The names may hold control characters: keep them out of TAP. */
		ok(rc == DW_E_CONFIG && err[0] != '\0', "bad zone name #%zu refused", i);
	}
	ok(dw_tz_set(NULL, err, sizeof err) == DW_E_CONFIG, "NULL zone refused");
	is_str(getenv("TZ"), "Europe/Paris", "a refused zone leaves TZ alone");

	/* $TZDIR is honoured: an empty directory knows no zones, except UTC. */
	char dir[] = "/tmp/dw_days_XXXXXX";
	if (mkdtemp(dir) != NULL) {
		setenv("TZDIR", dir, 1);
		err[0] = '\0';
		is_int(dw_tz_set("Europe/Paris", err, sizeof err), DW_E_CONFIG, "zone missing from $TZDIR refused");
		ok(strstr(err, dir) != NULL, "message names $TZDIR: %s", err);
		is_int(dw_tz_set("UTC", err, sizeof err), DW_OK, "UTC needs no file");
		unsetenv("TZDIR");
		rmdir(dir);
	}
}

static void
test_one_day(void)
{
	struct dw_days d;

	zone("UTC");
	/* The common form: 00:00:00 .. 23:59:59 UTC. */
	dw_days_of(D20180905, D20180905 + DAY - 1, &d);
	is_int(d.n, 1, "UTC: 00:00-23:59:59 is one day");
	is_str(d.day[0].ymd, "2018-09-05", "UTC: the day");
	is_int(d.day[0].start, D20180905, "UTC: day start");
	is_int(d.day[0].seconds, DAY, "UTC: 86400 seconds");
	is_int(d.clamped, 0, "not clamped");

	/* Microsoft: 00:00 .. next 00:00, an exclusive end. */
	dw_days_of(D20180905, D20180905 + DAY, &d);
	is_int(d.n, 1, "UTC: Microsoft 00:00->00:00 is one day");
	is_str(d.day[0].ymd, "2018-09-05", "UTC: Microsoft range goes to the first day");
	is_int(d.day[0].seconds, DAY, "UTC: Microsoft range has 86400 seconds");

	/* 12:00 .. 11:59:59: twelve hours each side, the earlier day wins. */
	dw_days_of(D20180905 + 12 * H, D20180905 + 36 * H - 1, &d);
	is_str(d.day[0].ymd, "2018-09-05", "UTC: a tie goes to the earlier day");
	/* 14:00 .. 13:59:59: more of it on the 6th. */
	dw_days_of(D20180905 + 14 * H, D20180905 + 38 * H - 1, &d);
	is_str(d.day[0].ymd, "2018-09-06", "UTC: the day with most of the range");
	is_int(d.day[0].seconds, 14 * H, "UTC: its overlap");

	/* Exactly 36 hours is still one day; 08:00 on the 5th .. 20:00 on the 6th. */
	dw_days_of(D20180905 + 8 * H, D20180905 + 44 * H - 1, &d);
	is_int(d.n, 1, "36 h is one day");
	is_str(d.day[0].ymd, "2018-09-06", "36 h: the day with 20 of them");
	dw_days_of(D20180905 + 8 * H, D20180905 + 44 * H + 59, &d);
	is_int(d.n, 2, "36 h and a minute is split");

	/* Degenerate ranges. */
	dw_days_of(D20180905 + 5 * H, D20180905 + 5 * H, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "2018-09-05") == 0 && d.day[0].seconds == 1,
	   "begin == end: the day of begin");
	dw_days_of(D20180905 + 5 * H, D20180905 - 10 * DAY, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "2018-09-05") == 0, "end < begin: as begin..begin");

	/* Tokyo is UTC+9: the same report runs 09:00 on the 5th to 08:59:59 on
	 * the 6th, fifteen hours on the 5th. */
	zone("Asia/Tokyo");
	dw_days_of(D20180905, D20180905 + DAY - 1, &d);
	is_int(d.n, 1, "Tokyo: one day");
	is_str(d.day[0].ymd, "2018-09-05", "Tokyo: 15 h of 24 on the 5th");
	is_int(d.day[0].start, D20180905 - 9 * H, "Tokyo: the 5th starts at 15:00Z on the 4th");
	is_int(d.day[0].seconds, 15 * H, "Tokyo: overlap 15 h");
	/* 12:00Z .. 11:59:59Z is 21:00 .. 20:59:59 in Tokyo: the 6th. */
	dw_days_of(D20180905 + 12 * H, D20180905 + 36 * H - 1, &d);
	is_str(d.day[0].ymd, "2018-09-06", "Tokyo: a UTC-noon report goes to the next day");
	zone("UTC");
	dw_days_of(D20180905 + 12 * H, D20180905 + 36 * H - 1, &d);
	is_str(d.day[0].ymd, "2018-09-05", "UTC: the same report stays on the 5th");

	/* New York (UTC-4 in September): 20:00 on the 4th .. 19:59:59: the 5th. */
	zone("America/New_York");
	dw_days_of(D20180905, D20180905 + DAY - 1, &d);
	is_str(d.day[0].ymd, "2018-09-05", "New York: 00:00Z-23:59:59Z is 4 h on the 4th, 20 h on the 5th");
	is_int(d.day[0].seconds, 20 * H, "New York: overlap 20 h");
	zone("UTC");
}

static void
test_splits(void)
{
	struct dw_days d;
	uint64_t out[DW_DAYS_MAX];

	zone("UTC");
	dw_days_of(D20180905, D20180905 + 2 * DAY - 1, &d);
	ok(d.n == 2 && d.day[0].seconds == DAY && d.day[1].seconds == DAY, "48 h: two full days");
	is_str(d.day[1].ymd, "2018-09-06", "48 h: second day");
	check_splits("48 h", &d);
	dw_days_apportion(&d, 7, out);
	ok(out[0] == 4 && out[1] == 3, "48 h: 7 -> 4 + 3 (tie to the earlier day)");

	dw_days_of(D20180905, D20180905 + 2 * DAY, &d);
	is_int(d.n, 2, "48 h Microsoft style: two days, not three");

	dw_days_of(D20180905, D20180905 + 3 * DAY - 1, &d);
	is_int(d.n, 3, "72 h: three days");
	check_splits("72 h", &d);
	dw_days_of(D20180905, D20180905 + 10 * DAY - 1, &d);
	is_int(d.n, 10, "10 days");
	is_str(d.day[9].ymd, "2018-09-14", "10 days: last day");
	check_splits("10 days", &d);

	/* 12:00 .. 11:59:59 two days later: 12 h, 24 h, 12 h. */
	dw_days_of(D20180905 + 12 * H, D20180905 + 60 * H - 1, &d);
	ok(d.n == 3 && d.day[0].seconds == 12 * H && d.day[1].seconds == DAY && d.day[2].seconds == 12 * H,
	   "12 h + 24 h + 12 h");
	check_splits("12+24+12 h", &d);
	dw_days_apportion(&d, 5, out);
	ok(out[0] == 1 && out[1] == 3 && out[2] == 1, "5 -> 1 3 1");
	dw_days_apportion(&d, 3, out);
	ok(out[0] == 1 && out[1] == 1 && out[2] == 1, "3 -> 1 1 1 (largest remainders)");
	dw_days_apportion(&d, 2, out);
	ok(out[0] == 1 && out[1] == 1 && out[2] == 0, "2 -> 1 1 0 (ties to the earlier day)");
	dw_days_apportion(&d, 1, out);
	ok(out[0] == 0 && out[1] == 1 && out[2] == 0, "1 -> 0 1 0");
	dw_days_apportion(&d, 0, out);
	ok(out[0] == 0 && out[1] == 0 && out[2] == 0, "0 -> 0 0 0");

	/* Uneven, non-hour overlaps. */
	dw_days_of(D20180905 + 12345, D20180905 + 5 * DAY + 777, &d);
	is_int(d.n, 6, "uneven range: six days");
	check_splits("uneven", &d);

	/* A single day gets everything. */
	dw_days_of(D20180905, D20180905 + DAY - 1, &d);
	dw_days_apportion(&d, UINT64_MAX, out);
	ok(out[0] == UINT64_MAX, "one day takes the whole count");
}

static void
test_dst(void)
{
	struct dw_days d;
	static const char *ymd_m[] = {"2024-03-08", "2024-03-09", "2024-03-10", "2024-03-11"};
	static const int64_t sec_m[] = {5 * H, 24 * H, 23 * H, 20 * H};
	static const int64_t start_m[] = {1709874000, 1709874000 + DAY, 1710046800, 1710129600};
	static const char *ymd_n[] = {"2024-11-01", "2024-11-02", "2024-11-03", "2024-11-04"};
	static const int64_t sec_n[] = {4 * H, 24 * H, 25 * H, 19 * H};
	static const int64_t start_n[] = {1730433600, 1730433600 + DAY, 1730606400, 1730696400};

	zone("America/New_York");
	/* 2024-03-09T00:00Z .. 2024-03-11T23:59:59Z; the 10th has 23 hours. */
	dw_days_of(1709942400, 1709942400 + 3 * DAY - 1, &d);
	is_int(d.n, 4, "March DST: four local days");
	for (size_t i = 0; i < 4 && i < d.n; i++) {
		is_str(d.day[i].ymd, ymd_m[i], "March day %zu name", i);
		is_int(d.day[i].seconds, sec_m[i], "March day %zu overlap", i);
		is_int(d.day[i].start, start_m[i], "March day %zu start", i);
	}
	check_splits("March DST", &d);

	/* 2024-11-02T00:00Z .. 2024-11-04T23:59:59Z; the 3rd has 25 hours. */
	dw_days_of(1730505600, 1730505600 + 3 * DAY - 1, &d);
	is_int(d.n, 4, "November DST: four local days");
	for (size_t i = 0; i < 4 && i < d.n; i++) {
		is_str(d.day[i].ymd, ymd_n[i], "November day %zu name", i);
		is_int(d.day[i].seconds, sec_n[i], "November day %zu overlap", i);
		is_int(d.day[i].start, start_n[i], "November day %zu start", i);
	}
	check_splits("November DST", &d);

	/* A whole local 25-hour day is still "at most 36 h": one day. */
	dw_days_of(1730606400, 1730606400 + 25 * H - 1, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "2024-11-03") == 0 && d.day[0].seconds == 25 * H,
	   "the 25-hour day as one range");

	int64_t s;
	ok(dw_day_parse("2024-03-10", &s) == 0 && s == 1710046800, "New York 2024-03-10 starts 05:00Z");
	ok(dw_day_parse("2024-03-11", &s) == 0 && s == 1710129600, "New York 2024-03-11 starts 04:00Z");

	/* Santiago skips midnight: 2024-09-08 starts at 01:00 -03 (04:00Z). */
	zone("America/Santiago");
	ok(dw_day_parse("2024-09-08", &s) == 0 && s == 1725768000, "Santiago 2024-09-08 starts at the transition");
	ok(dw_day_parse("2024-09-07", &s) == 0 && s == 1725681600, "Santiago 2024-09-07 starts at 04:00Z");
	dw_days_of(1725681600, 1725681600 + 2 * DAY - 1, &d);
	ok(d.n == 3 && strcmp(d.day[1].ymd, "2024-09-08") == 0 && d.day[0].seconds == DAY &&
	       d.day[1].seconds == 23 * H && d.day[2].seconds == H,
	   "Santiago: 48 h from 04:00Z on the 7th is 24 h, the 8th's 23 h and 1 h of the 9th");

	/* Paris, 26 September 1976: clocks went back from 01:00 to 00:00, so
	 * midnight happened twice; the day starts at the first (22:00Z) and
	 * lasts 25 hours. */
	zone("Europe/Paris");
	ok(dw_day_parse("1976-09-26", &s) == 0 && s == 212536800, "Paris 1976-09-26 starts at the first midnight");
	dw_days_of(212536800, 212536800 + 25 * H - 1, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "1976-09-26") == 0 && d.day[0].seconds == 25 * H,
	   "Paris 1976-09-26 has 25 hours");

	/* St. John's went back at 00:01 until 2011: one minute of 1 November
	 * came before the last hour of 31 October. A 72-hour range starting in
	 * that repeated hour (23:41 on 31 October, the second time) must still
	 * be split, not clamped, with every second counted. */
	zone("America/St_Johns");
	dw_days_of(1257042660 + 2400, 1257042660 + 2400 + 3 * DAY - 1, &d);
	int64_t sum = 0;
	for (size_t i = 0; i < d.n; i++)
		sum += d.day[i].seconds;
	ok(d.clamped == 0 && d.n == 4 && sum == 3 * DAY && strcmp(d.day[0].ymd, "2009-10-31") == 0 &&
	       d.day[0].seconds == 19 * 60,
	   "St. John's 2009: split over %zu days, %lld s", d.n, (long long)sum);
	check_splits("St. John's 2009", &d);
	zone("UTC");
}

static void
test_clamp(void)
{
	struct dw_days d;
	zone("UTC");
	int64_t jan1 = 1704067200; /* 2024-01-01T00:00:00Z */
	dw_days_of(jan1, jan1 + 62 * DAY - 1, &d);
	ok(d.n == 62 && d.clamped == 0, "62 days: not clamped");
	check_splits("62 days", &d);
	dw_days_of(jan1, jan1 + 63 * DAY - 1, &d);
	ok(d.n == 1 && d.clamped == 1, "63 days: clamped to one day");
	is_str(d.day[0].ymd, "2024-03-03", "clamped: the day holding end");
	is_int(d.day[0].seconds, DAY, "clamped: overlap of that day");
	dw_days_of(INT64_MIN, INT64_MAX, &d);
	ok(d.n == 1 && d.clamped == 1 && strcmp(d.day[0].ymd, "9999-12-31") == 0, "absurd range: clamped, no crash");
	dw_days_of(INT64_MAX, INT64_MAX, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "9999-12-31") == 0, "far future instant");
	dw_days_of(INT64_MIN, INT64_MIN, &d);
	ok(d.n == 1 && strcmp(d.day[0].ymd, "0001-01-01") == 0, "far past instant");
}

static void
test_parse(void)
{
	int64_t s = 0;
	char ymd[11];

	zone("UTC");
	ok(dw_day_parse("2024-01-01", &s) == 0 && s == 1704067200, "2024-01-01 UTC");
	ok(dw_day_parse("2024-02-29", &s) == 0, "leap day 2024");
	ok(dw_day_parse("2000-02-29", &s) == 0, "leap day 2000");
	static const char *bad[] = {"2024-02-30", "2023-02-29", "1900-02-29", "2024-1-1", "2024-01-1",
	                            "2024-13-01", "2024-00-10", "2024-04-31", "2024-01-00", "0000-01-01",
	                            "2024-01-01x", "2024/01/01", " 2024-01-01", "", "yesterday", "+024-01-01"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(dw_day_parse(bad[i], &s) == -1, "'%s' refused", bad[i]);
	ok(dw_day_parse(NULL, &s) == -1, "NULL refused");

	dw_day_of(D20180905 + 15 * H, ymd);
	is_str(ymd, "2018-09-05", "day of 15:00Z in UTC");
	zone("Asia/Tokyo");
	dw_day_of(D20180905 + 15 * H, ymd);
	is_str(ymd, "2018-09-06", "day of 15:00Z in Tokyo");
	ok(dw_day_parse("2024-01-01", &s) == 0 && s == 1704067200 - 9 * H, "2024-01-01 in Tokyo starts 15:00Z");
	zone("UTC");
}

int
main(void)
{
	test_zones();
	test_one_day();
	test_splits();
	test_dst();
	test_clamp();
	test_parse();
	return done_testing();
}
