/*
 * test_digest.c - the daily digest (src/digest.c) over hand-built facts.
 *
 * Two domains over 16 days (2026-11-05 .. 2026-11-20, days in UTC). The
 * digest is for the last day; the figures below were worked out by hand
 * (the arithmetic is in the comments) and the body, summary, fields, table
 * and CSV are asserted exactly. Then: asof hiding late facts, the late-data
 * lines with `since`, top = 2, configured domains (order, case, a domain
 * without data), a day without data, no facts at all, more domains than
 * fields, CSV quoting, the display caps of rates, and bad input.
 */
#include "dw/digest.h"
#include "tap.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define BASE INT64_C(1793836800) /* 2026-11-05T00:00:00Z */
#define DAY INT64_C(86400)
#define HOUR INT64_C(3600)
#define NDAYS 16

/* ---- a facts builder ---- */

struct fb {
	struct dw_facts f;
	size_t capv;
};

static void
fb_init(struct fb *b, size_t ndays)
{
	memset(b, 0, sizeof *b);
	b->f.ndays = ndays;
	b->f.days = calloc(ndays, sizeof *b->f.days);
	b->f.day_start = calloc(ndays + 1, sizeof *b->f.day_start);
	for (size_t i = 0; i < ndays; i++)
		snprintf(b->f.days[i], sizeof b->f.days[i], "2026-11-%02zu", 5 + i);
	for (size_t i = 0; i <= ndays; i++)
		b->f.day_start[i] = BASE + (int64_t)i * DAY;
}

static uint32_t
str(struct fb *b, const char *s)
{
	if (s == NULL)
		return DW_NO_STR;
	for (size_t i = 0; i < b->f.nstrs; i++)
		if (strcmp(b->f.strs[i], s) == 0)
			return (uint32_t)i;
	b->f.strs = realloc(b->f.strs, (b->f.nstrs + 1) * sizeof *b->f.strs);
	b->f.strs[b->f.nstrs] = strdup(s);
	return (uint32_t)b->f.nstrs++;
}

static void
fact(struct fb *b, unsigned day, const char *dom, const char *rep, const char *src, const char *hfrom,
     const char *reason, int disp, int dkim, int spf, int64_t received, int64_t report, uint64_t count)
{
	if (b->f.n == b->capv) {
		b->capv = b->capv ? b->capv * 2 : 64;
		b->f.v = realloc(b->f.v, b->capv * sizeof *b->f.v);
	}
	struct dw_fact *x = &b->f.v[b->f.n++];
	memset(x, 0, sizeof *x);
	x->day = day;
	x->domain = str(b, dom);
	x->reporter = str(b, rep);
	x->source = str(b, src);
	x->header_from = str(b, hfrom);
	x->reason = str(b, reason);
	x->disposition = (uint8_t)disp;
	x->dkim_pass = (uint8_t)dkim;
	x->spf_pass = (uint8_t)spf;
	x->dmarc_pass = (uint8_t)(dkim || spf);
	x->received = received;
	x->report = report;
	x->count = count;
}

static void
fb_free(struct fb *b)
{
	for (size_t i = 0; i < b->f.nstrs; i++)
		free(b->f.strs[i]);
	free(b->f.strs);
	free(b->f.v);
	free(b->f.days);
	free(b->f.day_start);
}

/* The next day, 02:00: when a day's report normally arrives. */
static int64_t
ontime(unsigned day)
{
	return BASE + (int64_t)(day + 1) * DAY + 2 * HOUR;
}

#define NONE_ DW_DISP_NONE
#define QUAR DW_DISP_QUARANTINE
#define REJ DW_DISP_REJECT

/* The previous digest (for day 14) went out on 2026-11-21 09:00; this one
 * (for day 15) on 2026-11-22 09:00. */
#define SINCE (BASE + 16 * DAY + 9 * HOUR)
#define ASOF (BASE + 17 * DAY + 9 * HOUR)

/*
 * example.com, messages/DMARC pass per day (pass from 192.0.2.10, the rest
 * failing from 192.0.2.99, all reported by google.com on time), except:
 *   day 0    100000/50000: outside the 14-day window of day 15
 *   day 7    no data (a median over 14 days with a zero day would differ)
 *   day 13   google.com 990 pass on time + Yahoo 20 failing, arriving late
 * Window of day 15 (days 1..14, 13 with data):
 *   messages sorted 900 950 980 1000 1000 1000 1010 1020 1050 1100 1100 1150
 *   1200 -> median 1010; rates (tenths) 990 990 980 1000 980 980 980 980 980
 *   990 980 980 980 -> nine 980, three 990, one 1000 -> median 980.
 */
static const uint64_t com_m[15] = {100000, 1000, 1100, 900, 1000, 1200, 1050, 0, 950, 1000, 1150, 980, 1020, 1010, 1100};
static const uint64_t com_p[15] = {50000, 990, 1089, 882, 1000, 1176, 1029, 0, 931, 980, 1127, 970, 1000, 990, 1078};

/*
 * example.org days 9..14 (google.com, 192.0.2.20 passing, 192.0.2.21
 * failing), except:
 *   day 12  google.com 200 pass on time + Yahoo 9 pass / 11 fail, late
 *   day 13  google.com 150 pass on time + Mail.Ru 20 pass / 10 fail, late
 *   day 14  also a report of 100 failing messages received after asof
 * messages 200 215 190 220 180 240 -> sorted 180 190 200 215 220 240 ->
 * (200 + 215) / 2 = 207.5 -> 208; rates 1000 930.2 947.4 950 944.4 950 ->
 * 1000 930 947 950 944 950 -> sorted 930 944 947 950 950 1000 ->
 * (947 + 950) / 2 = 948.5 -> 949.
 */
static const uint64_t org_m[15] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 215, 190, 220, 180, 240};
static const uint64_t org_p[15] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 200, 180, 209, 170, 228};

static void
build_main(struct fb *b)
{
	fb_init(b, NDAYS);
	for (unsigned d = 0; d < 15; d++) {
		int64_t rep = (int64_t)d * 100;
		if (com_m[d] > 0 && d != 13) {
			fact(b, d, "example.com", "google.com", "192.0.2.10", "example.com", NULL, NONE_, 1, 1, ontime(d), rep + 1,
			     com_p[d]);
			if (com_m[d] > com_p[d])
				fact(b, d, "example.com", "google.com", "192.0.2.99", "example.com", NULL, NONE_, 0, 0, ontime(d),
				     rep + 1, com_m[d] - com_p[d]);
		}
		if (org_m[d] > 0 && d != 12 && d != 13) {
			fact(b, d, "example.org", "google.com", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, ontime(d), rep + 3,
			     org_p[d]);
			if (org_m[d] > org_p[d])
				fact(b, d, "example.org", "google.com", "192.0.2.21", "example.org", NULL, NONE_, 0, 0, ontime(d),
				     rep + 3, org_m[d] - org_p[d]);
		}
	}
	/* day 13 example.com: 990 on time, 20 late (report 1302) */
	fact(b, 13, "example.com", "google.com", "192.0.2.10", "example.com", NULL, NONE_, 1, 1, ontime(13), 1301, 990);
	fact(b, 13, "example.com", "Yahoo", "192.0.2.99", "example.com", NULL, NONE_, 0, 0, SINCE + 3 * HOUR, 1302, 20);
	/* day 12 example.org: 200 on time, 20 late (report 1202) */
	fact(b, 12, "example.org", "google.com", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, ontime(12), 1203, 200);
	fact(b, 12, "example.org", "Yahoo", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, SINCE + 6 * HOUR, 1202, 9);
	fact(b, 12, "example.org", "Yahoo", "192.0.2.21", "example.org", NULL, NONE_, 0, 0, SINCE + 6 * HOUR, 1202, 11);
	/* day 13 example.org: 150 on time, 30 late (report 1303) */
	fact(b, 13, "example.org", "google.com", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, ontime(13), 1304, 150);
	fact(b, 13, "example.org", "Mail.Ru", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, SINCE + 11 * HOUR, 1303, 20);
	fact(b, 13, "example.org", "Mail.Ru", "192.0.2.21", "example.org", NULL, NONE_, 0, 0, SINCE + 11 * HOUR, 1303, 10);
	/* day 14 example.org: a report arriving after asof */
	fact(b, 14, "example.org", "Yahoo", "192.0.2.21", "example.org", NULL, NONE_, 0, 0, ASOF + 1, 1405, 100);

	/*
	 * Day 15, example.com (received: 1501 +2 h, 1503 +5 h, 1504 +3 h after
	 * midnight of day 16, all before SINCE; 1502 at +14 h, after SINCE but
	 * for the digest's own day, so not late; 1505 after ASOF: hidden).
	 */
	int64_t d16 = BASE + 16 * DAY;
	fact(b, 15, "example.com", "google.com", "192.0.2.10", "example.com", NULL, NONE_, 1, 1, d16 + 2 * HOUR, 1501, 800);
	fact(b, 15, "example.com", "google.com", "192.0.2.11", "example.com", NULL, NONE_, 1, 0, d16 + 2 * HOUR, 1501, 200);
	fact(b, 15, "example.com", "google.com", "203.0.113.5", "example.com", NULL, QUAR, 0, 0, d16 + 2 * HOUR, 1501, 30);
	fact(b, 15, "example.com", "google.com", "198.51.100.7", "evil,example.com", NULL, REJ, 0, 0, d16 + 2 * HOUR, 1501,
	     12);
	fact(b, 15, "example.com", "Yahoo", "192.0.2.10", "example.com", NULL, NONE_, 1, 1, d16 + 14 * HOUR, 1502, 150);
	fact(b, 15, "example.com", "Yahoo", "203.0.113.5", "example.com", NULL, QUAR, 0, 0, d16 + 14 * HOUR, 1502, 20);
	fact(b, 15, "example.com", "Yahoo", "192.0.2.10", "example.com", "mailing_list", NONE_, 0, 0, d16 + 14 * HOUR, 1502,
	     8);
	fact(b, 15, "example.com", "Mail.Ru", "198.51.100.7", "example.com", NULL, NONE_, 0, 0, d16 + 5 * HOUR, 1503, 5);
	fact(b, 15, "example.com", "google.com", "192.0.2.10", "example.com", NULL, NONE_, 1, 1, d16 + 3 * HOUR, 1504, 50);
	fact(b, 15, "example.com", "Mail.Ru", "203.0.113.5", "example.com", NULL, REJ, 0, 0, ASOF + 3 * HOUR, 1505, 10);
	/* Day 15, example.org */
	fact(b, 15, "example.org", "google.com", "192.0.2.20", "example.org", NULL, NONE_, 1, 1, d16 + 4 * HOUR, 1601, 150);
	fact(b, 15, "example.org", "google.com", "192.0.2.21", "example.org", NULL, REJ, 0, 0, d16 + 4 * HOUR, 1601, 50);
}

/* ---- helpers ---- */

static char *
cat(char *dst, size_t len, const char *fmt, ...)
{
	size_t n = strlen(dst);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst + n, len - n, fmt, ap);
	va_end(ap);
	return dst;
}

static const char *
field(const struct dw_digest *d, const char *name)
{
	for (size_t i = 0; i < d->n.nfields; i++)
		if (strcmp(d->n.fields[i].name, name) == 0)
			return d->n.fields[i].value;
	return NULL;
}

static const char *
cell(const struct dw_digest *d, size_t r, size_t c)
{
	return d->n.table->cells[r * d->n.table->ncols + c];
}

static struct dw_digest *
build(const struct dw_facts *f, size_t day, int64_t asof, int64_t since, const struct dw_digest_cfg *cfg,
      const struct dw_digest_alert *alerts, size_t nalerts)
{
	struct dw_digest_input in = {.f = f, .day = day, .asof = asof, .since = since, .cfg = cfg, .alerts = alerts,
	                             .nalerts = nalerts};
	struct dw_digest *d = NULL;
	char err[512] = "";
	int rc = dw_digest_build(&in, &d, err, sizeof err);
	if (rc != DW_OK)
		diag("dw_digest_build: %d %s", rc, err);
	return d;
}

static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

/* ---- the main digest ---- */

static const struct dw_digest_alert alerts[2] = {
	{.rule = "dkim-broken", .group = "example.com|192.0.2.10", .since_day = "2026-11-19", .severity = DW_SEV_WARNING},
	{.rule = "new-source", .group = "example.org|192.0.2.0/24", .since_day = "2026-11-20", .severity = DW_SEV_INFO},
};

/*
 * Day 15, example.com (everything but 1505):
 *   messages 800+200+30+12+150+20+8+5+50 = 1275; pass 800+200+150+50 = 1200
 *   (94.1176 % -> 94.1); fail 75 (5.88 -> 5.9); SPF fail 200+75 = 275
 *   (21.57 -> 21.6); DKIM fail 75; quarantined 30+20 = 50 (3.92 -> 3.9);
 *   rejected 12 (0.94 -> 0.9).
 *   previous day 1100, 98.0 %: +175 = 15.909 % -> +15.9 %; 941 - 980 = -3.9
 *   median 1010, 98.0 %: +265 = 26.24 % -> +26.2 %; -3.9 points
 *   reporters: google.com 800+200+30+12+50 = 1092, Mail.Ru 5, Yahoo 178
 *   failing sources: 203.0.113.5 30+20 = 50 (google.com 30, Yahoo 20);
 *   198.51.100.7 12+5 = 17 (evil,example.com 12 by google.com, example.com 5
 *   by Mail.Ru); 192.0.2.10 8 of 1008 (the rest passes both: "mixed").
 * Day 15, example.org: 200, pass 150 = 75.0 %, fail/SPF/DKIM/rejected 50,
 *   quarantined 0; previous day 240 (228 = 95.0 %): -40 = -16.67 % -> -16.7 %,
 *   -20.0 points; median 208, 94.9 %: -8 = -3.85 % -> -3.8 %, 750 - 949 =
 *   -19.9 points.
 * All: 1475 messages, 1350 pass = 91.525 % -> 91.5 %, 125 fail.
 */
static void
expected_body(char *e, size_t len)
{
	e[0] = '\0';
	cat(e, len, "DMARC digest for 2026-11-20\n");
	cat(e, len, "Reports received by 2026-11-22 09:00 UTC.\n");
	cat(e, len, "All domains: 1,475 messages, 91.5 %% DMARC pass, 125 DMARC fail.\n");
	cat(e, len, "\nexample.com\n");
	cat(e, len, "  %-16s%5s\n", "Messages", "1,275");
	cat(e, len, "  %-16s%5s  %7s\n", "DMARC pass", "1,200", "94.1 %");
	cat(e, len, "  %-16s%5s  %7s\n", "DMARC fail", "75", "5.9 %");
	cat(e, len, "  %-16s%5s  %7s\n", "SPF fail", "275", "21.6 %");
	cat(e, len, "  %-16s%5s  %7s\n", "DKIM fail", "75", "5.9 %");
	cat(e, len, "  %-16s%5s  %7s\n", "Quarantined", "50", "3.9 %");
	cat(e, len, "  %-16s%5s  %7s\n", "Rejected", "12", "0.9 %");
	cat(e, len, "  Previous day    1,100 messages, 98.0 %% pass (2026-11-19)\n");
	cat(e, len, "  Change          messages +175 (+15.9 %%), pass rate -3.9 points\n");
	cat(e, len, "  14-day median   1,010 messages, 98.0 %% pass (13 days with data)\n");
	cat(e, len, "  Change          messages +265 (+26.2 %%), pass rate -3.9 points\n");
	cat(e, len, "  Reporters       google.com (1,092); Mail.Ru (5); Yahoo (178)\n");
	cat(e, len, "  Top failing sources\n");
	cat(e, len, "    %-12s  %-8s  %-5s  %-5s  %-19s  %s\n", "source_ip", "messages", "spf", "dkim", "header_from",
	    "reporter");
	cat(e, len, "    %-12s  %8s  %-5s  %-5s  %-19s  %s\n", "203.0.113.5", "50", "fail", "fail", "example.com",
	    "google.com +1");
	cat(e, len, "    %-12s  %8s  %-5s  %-5s  %-19s  %s\n", "198.51.100.7", "17", "fail", "fail",
	    "evil,example.com +1", "google.com +1");
	cat(e, len, "    %-12s  %8s  %-5s  %-5s  %-19s  %s\n", "192.0.2.10", "8", "mixed", "mixed", "example.com",
	    "Yahoo");
	cat(e, len, "\nexample.org\n");
	cat(e, len, "  %-16s%3s\n", "Messages", "200");
	cat(e, len, "  %-16s%3s  %7s\n", "DMARC pass", "150", "75.0 %");
	cat(e, len, "  %-16s%3s  %7s\n", "DMARC fail", "50", "25.0 %");
	cat(e, len, "  %-16s%3s  %7s\n", "SPF fail", "50", "25.0 %");
	cat(e, len, "  %-16s%3s  %7s\n", "DKIM fail", "50", "25.0 %");
	cat(e, len, "  %-16s%3s  %7s\n", "Quarantined", "0", "0.0 %");
	cat(e, len, "  %-16s%3s  %7s\n", "Rejected", "50", "25.0 %");
	cat(e, len, "  Previous day    240 messages, 95.0 %% pass (2026-11-19)\n");
	cat(e, len, "  Change          messages -40 (-16.7 %%), pass rate -20.0 points\n");
	cat(e, len, "  14-day median   208 messages, 94.9 %% pass (6 days with data)\n");
	cat(e, len, "  Change          messages -8 (-3.8 %%), pass rate -19.9 points\n");
	cat(e, len, "  Reporters       google.com (200)\n");
	cat(e, len, "  Top failing sources\n");
	cat(e, len, "    source_ip   messages  spf   dkim  header_from  reporter\n");
	cat(e, len, "    192.0.2.21        50  fail  fail  example.org  google.com\n");
	cat(e, len, "\nLate data\n");
	cat(e, len, "  1 report for 2026-11-17 arrived late: 20 messages\n");
	cat(e, len, "  2 reports for 2026-11-18 arrived late: 50 messages\n");
	cat(e, len, "\nOpen alerts (2)\n");
	cat(e, len, "  warning   dkim-broken  example.com|192.0.2.10    since 2026-11-19\n");
	cat(e, len, "  info      new-source   example.org|192.0.2.0/24  since 2026-11-20\n");
	cat(e, len, "\nFailing sources: messages that failed DMARC. spf/dkim \"mixed\": some of\n"
	            "the source's messages passed it that day.\n");
	cat(e, len, "Details: dmarc-2026-11-20.csv (a row per domain, source, reporter, result).\n");
}

/* The CSV rows, sorted by hand (strcmp: upper case before lower case). */
static const char *const csv_com[8] = {
	"2026-11-20,example.com,192.0.2.10,Yahoo,example.com,none,fail,fail,fail,mailing_list,8",
	"2026-11-20,example.com,192.0.2.10,Yahoo,example.com,none,pass,pass,pass,,150",
	"2026-11-20,example.com,192.0.2.10,google.com,example.com,none,pass,pass,pass,,850", /* 800 + 50 */
	"2026-11-20,example.com,192.0.2.11,google.com,example.com,none,pass,fail,pass,,200",
	"2026-11-20,example.com,198.51.100.7,Mail.Ru,example.com,none,fail,fail,fail,,5",
	"2026-11-20,example.com,198.51.100.7,google.com,\"evil,example.com\",reject,fail,fail,fail,,12",
	"2026-11-20,example.com,203.0.113.5,Yahoo,example.com,quarantine,fail,fail,fail,,20",
	"2026-11-20,example.com,203.0.113.5,google.com,example.com,quarantine,fail,fail,fail,,30",
};
static const char *const csv_org[2] = {
	"2026-11-20,example.org,192.0.2.20,google.com,example.org,none,pass,pass,pass,,150",
	"2026-11-20,example.org,192.0.2.21,google.com,example.org,reject,fail,fail,fail,,50",
};
#define CSV_HEAD "day,domain,source_ip,reporter,header_from,disposition,dkim,spf,dmarc,reason,messages\r\n"

static void
test_main(const struct fb *b)
{
	struct dw_digest *d = build(&b->f, 15, ASOF, SINCE, NULL, alerts, 2);
	ok(d != NULL, "main: built");
	if (d == NULL)
		return;
	const struct dw_notification *n = &d->n;
	is_int(d->messages, 1475, "main: messages");
	is_int(d->ndomains, 2, "main: domains");
	is_int(n->struct_size, sizeof *n, "main: struct_size");
	is_int(n->kind, DW_KIND_DIGEST, "main: kind");
	is_int(n->severity, DW_SEV_WARNING, "main: warning (example.org 75.0 %% < 90 %%)");
	is_int(n->time, ASOF, "main: time is asof");
	is_str(n->idempotency_key, "digest:2026-11-20", "main: idempotency key");
	ok(n->rule == NULL && n->domain == NULL && n->runbook == NULL, "main: no rule, domain, runbook");
	is_str(n->title, "DMARC digest for 2026-11-20: 1,475 messages, 91.5 % pass", "main: title");
	ok(strchr(n->title, '\n') == NULL, "main: title is one line");

	static char e[8192];
	expected_body(e, sizeof e);
	is_str(n->body, e, "main: body");
	ok(d->text == n->body, "main: text is the body");

	const char *sum = "*DMARC digest for 2026-11-20*: 1,475 messages, 91.5 % pass\n"
	                  "- *example.com*: 1,275 messages, 94.1 % pass (-3.9 points on the previous day), 75 DMARC "
	                  "fail, 50 quarantined, 12 rejected\n"
	                  "- *example.org*: 200 messages, 75.0 % pass (-20.0 points on the previous day), 50 DMARC "
	                  "fail, 0 quarantined, 50 rejected\n"
	                  "*Late data*\n"
	                  "- 1 report for 2026-11-17 arrived late: 20 messages\n"
	                  "- 2 reports for 2026-11-18 arrived late: 50 messages\n"
	                  "*Open alerts* (2)\n"
	                  "- warning `dkim-broken` example.com|192.0.2.10 since 2026-11-19\n"
	                  "- info `new-source` example.org|192.0.2.0/24 since 2026-11-20\n";
	is_str(n->summary, sum, "main: summary");

	/* fields: three per domain, busiest domain first */
	static const char *const fw[6][2] = {
		{"example.com messages", "1,275"},  {"example.com DMARC pass", "94.1 %"}, {"example.com DMARC fail", "75"},
		{"example.org messages", "200"},    {"example.org DMARC pass", "75.0 %"}, {"example.org DMARC fail", "50"},
	};
	is_int(n->nfields, 6, "main: 6 fields");
	for (size_t i = 0; i < 6 && i < n->nfields; i++) {
		is_str(n->fields[i].name, fw[i][0], "main: field %zu name", i);
		is_str(n->fields[i].value, fw[i][1], "main: field %zu value", i);
	}

	/* table: over all domains; 203.0.113.5 and 192.0.2.21 both 50: by domain */
	static const char *const tw[4][7] = {
		{"example.com", "203.0.113.5", "50", "fail", "fail", "example.com", "google.com +1"},
		{"example.org", "192.0.2.21", "50", "fail", "fail", "example.org", "google.com"},
		{"example.com", "198.51.100.7", "17", "fail", "fail", "evil,example.com +1", "google.com +1"},
		{"example.com", "192.0.2.10", "8", "mixed", "mixed", "example.com", "Yahoo"},
	};
	static const char *const cols[7] = {"domain", "source_ip", "messages", "spf", "dkim", "header_from", "reporter"};
	ok(n->table != NULL, "main: table");
	if (n->table != NULL) {
		is_int(n->table->ncols, 7, "main: table columns");
		is_int(n->table->nrows, 4, "main: table rows (4 failing sources)");
		for (size_t c = 0; c < 7; c++)
			is_str(n->table->columns[c], cols[c], "main: column %zu", c);
		int same = 1;
		for (size_t r = 0; r < 4 && r < n->table->nrows; r++)
			for (size_t c = 0; c < 7; c++)
				if (strcmp(cell(d, r, c), tw[r][c]) != 0) {
					diag("cell %zu,%zu: '%s', expected '%s'", r, c, cell(d, r, c), tw[r][c]);
					same = 0;
				}
		ok(same, "main: table cells in order");
	}

	/* CSV, built independently from the rows above */
	static char csv[4096];
	csv[0] = '\0';
	cat(csv, sizeof csv, "%s", CSV_HEAD);
	for (size_t i = 0; i < 8; i++)
		cat(csv, sizeof csv, "%s\r\n", csv_com[i]);
	for (size_t i = 0; i < 2; i++)
		cat(csv, sizeof csv, "%s\r\n", csv_org[i]);
	is_str(d->csv, csv, "main: CSV");
	is_int(d->csv_len, strlen(csv), "main: CSV length");
	ok(n->attachment != NULL, "main: attachment");
	if (n->attachment != NULL) {
		is_str(n->attachment->filename, "dmarc-2026-11-20.csv", "main: attachment name");
		is_str(n->attachment->media_type, "text/csv", "main: attachment type");
		is_int(n->attachment->size, strlen(csv), "main: attachment size");
		ok(n->attachment->data == (const unsigned char *)d->csv, "main: attachment data is the CSV");
	}
	dw_digest_free(d);
}

/* asof = SINCE: the late reports (1202, 1302, 1303) and report 1502 are
 * not known yet. */
static void
test_asof(const struct fb *b)
{
	struct dw_digest *d = build(&b->f, 15, SINCE, SINCE, NULL, NULL, 0);
	if (!ok(d != NULL, "asof: built"))
		return;
	/* example.com: 1275 - 150 - 20 - 8 = 1097, pass 1050 (95.71 -> 95.7) */
	is_str(field(d, "example.com messages"), "1,097", "asof: example.com messages without report 1502");
	is_str(field(d, "example.com DMARC pass"), "95.7 %", "asof: example.com pass rate");
	is_int(d->messages, 1297, "asof: all messages (1097 + 200)");
	/* day 13 is 990/990 now: sorted 900 950 980 990 1000 1000 [1000] ... -> 1000;
	 * rates: eight 980, three 990, two 1000 -> 980 */
	ok(has_line(d->text, "  14-day median   1,000 messages, 98.0 % pass (13 days with data)"),
	   "asof: example.com median without the late 20");
	/* example.org: day 12 200/200, day 13 150/150: messages 150 190 [200 200] 215 240 -> 200;
	 * rates 930 947 [950 1000] 1000 1000 -> 975 */
	ok(has_line(d->text, "  14-day median   200 messages, 97.5 % pass (6 days with data)"),
	   "asof: example.org median without the late reports");
	ok(strstr(d->text, "Late data") == NULL && strstr(d->n.summary, "Late data") == NULL,
	   "asof: no late data yet");
	ok(strstr(d->csv, ",Yahoo,") == NULL, "asof: no Yahoo rows in the CSV");
	dw_digest_free(d);

	/* asof = everything: report 1505 (Mail.Ru, 10 rejected) and 1405 count */
	d = build(&b->f, 15, INT64_MAX, SINCE, NULL, NULL, 0);
	if (!ok(d != NULL, "asof max: built"))
		return;
	is_str(field(d, "example.com messages"), "1,285", "asof max: report 1505 counts");
	ok(has_line(d->text, "  Previous day    340 messages, 67.1 % pass (2026-11-19)"),
	   "asof max: report 1405 counts for example.org's previous day (228/340)");
	ok(strstr(d->text, "Reports received by") == NULL, "asof max: no 'received by' line");
	is_int(d->n.time, BASE + 16 * DAY, "asof max: time is the end of the day");
	dw_digest_free(d);
}

/* since: -1 shows no late data; an earlier since shows more. */
static void
test_since(const struct fb *b)
{
	struct dw_digest *d = build(&b->f, 15, ASOF, -1, NULL, NULL, 0);
	if (ok(d != NULL, "since -1: built")) {
		ok(strstr(d->text, "Late data") == NULL, "since -1: no late data");
		dw_digest_free(d);
	}
	/* since = 2026-11-20 00:00: also everything on time for day 14 (received
	 * 2026-11-20 02:00: reports 1401 and 1403) is "late" */
	d = build(&b->f, 15, ASOF, BASE + 15 * DAY, NULL, NULL, 0);
	if (ok(d != NULL, "since day 15: built")) {
		ok(has_line(d->text, "  1 report for 2026-11-17 arrived late: 20 messages"), "since day 15: day 12 line");
		ok(has_line(d->text, "  2 reports for 2026-11-18 arrived late: 50 messages"), "since day 15: day 13 line");
		/* 1100 + 240 = 1340; 1405 arrived after asof */
		ok(has_line(d->text, "  2 reports for 2026-11-19 arrived late: 1,340 messages"), "since day 15: day 14 line");
		dw_digest_free(d);
	}
}

static void
test_top(const struct fb *b)
{
	struct dw_digest_cfg cfg = {.top = 2};
	struct dw_digest *d = build(&b->f, 15, ASOF, SINCE, &cfg, NULL, 0);
	if (!ok(d != NULL, "top 2: built"))
		return;
	ok(d->n.table != NULL && d->n.table->nrows == 2, "top 2: table has 2 rows");
	if (d->n.table != NULL && d->n.table->nrows == 2) {
		is_str(cell(d, 0, 1), "203.0.113.5", "top 2: first");
		is_str(cell(d, 1, 1), "192.0.2.21", "top 2: second");
	}
	ok(has_line(d->text, "    ... and 1 more failing source (8 messages)"), "top 2: the rest summarised");
	ok(strstr(d->text, "    192.0.2.10 ") == NULL, "top 2: the third source is not listed");
	is_int(d->n.severity, DW_SEV_WARNING, "top 2: still warning");
	dw_digest_free(d);
}

static void
test_domains(const struct fb *b)
{
	char *doms[3] = {"EXAMPLE.com", "example.net", "example.com"};
	struct dw_digest_cfg cfg = {.domains = doms, .ndomains = 3};
	struct dw_digest *d = build(&b->f, 15, ASOF, SINCE, &cfg, NULL, 0);
	if (!ok(d != NULL, "domains: built"))
		return;
	is_int(d->ndomains, 2, "domains: example.com (once) and example.net");
	is_int(d->messages, 1275, "domains: only example.com's messages");
	static const char *const fw[6][2] = {
		{"example.com messages", "1,275"}, {"example.com DMARC pass", "94.1 %"}, {"example.com DMARC fail", "75"},
		{"example.net messages", "0"},     {"example.net DMARC pass", "n/a"},    {"example.net DMARC fail", "0"},
	};
	is_int(d->n.nfields, 6, "domains: 6 fields");
	for (size_t i = 0; i < 6 && i < d->n.nfields; i++) {
		is_str(d->n.fields[i].name, fw[i][0], "domains: field %zu name", i);
		is_str(d->n.fields[i].value, fw[i][1], "domains: field %zu value", i);
	}
	ok(has_line(d->text, "example.net") && has_line(d->text, "  Messages        0 (no reports for 2026-11-20)"),
	   "domains: example.net shown without data");
	ok(has_line(d->text, "  Previous day    no reports (2026-11-19)") &&
	       has_line(d->text, "  14-day median   no earlier days with data"),
	   "domains: example.net has no comparisons");
	ok(has_line(d->n.summary, "- *example.net*: no reports"), "domains: summary line for example.net");
	/* late data only for example.com: report 1302 */
	ok(has_line(d->text, "  1 report for 2026-11-18 arrived late: 20 messages"), "domains: late data of example.com");
	ok(strstr(d->text, "2026-11-17 arrived late") == NULL, "domains: no late data of example.org");
	static char csv[4096];
	csv[0] = '\0';
	cat(csv, sizeof csv, "%s", CSV_HEAD);
	for (size_t i = 0; i < 8; i++)
		cat(csv, sizeof csv, "%s\r\n", csv_com[i]);
	is_str(d->csv, csv, "domains: CSV of example.com only");
	is_int(d->n.table != NULL ? d->n.table->nrows : 0, 3, "domains: 3 failing sources");
	is_int(d->n.severity, DW_SEV_INFO, "domains: info (94.1 %%, no alerts)");
	dw_digest_free(d);

	/* one domain: all seven fields and n.domain; a critical alert makes it a warning */
	char *one[1] = {"example.org"};
	struct dw_digest_cfg cfg1 = {.domains = one, .ndomains = 1};
	struct dw_digest_alert crit = {.rule = "r", .group = "example.com", .since_day = "2026-11-01",
	                               .severity = DW_SEV_CRITICAL};
	d = build(&b->f, 15, ASOF, SINCE, &cfg1, &crit, 1);
	if (!ok(d != NULL, "one domain: built"))
		return;
	is_str(d->n.domain, "example.org", "one domain: notification domain");
	static const char *const f1[7][2] = {
		{"example.org messages", "200"}, {"example.org DMARC pass", "75.0 %"}, {"example.org DMARC fail", "50"},
		{"example.org SPF fail", "50"},  {"example.org DKIM fail", "50"},      {"example.org quarantined", "0"},
		{"example.org rejected", "50"},
	};
	is_int(d->n.nfields, 7, "one domain: 7 fields");
	for (size_t i = 0; i < 7 && i < d->n.nfields; i++) {
		is_str(d->n.fields[i].name, f1[i][0], "one domain: field %zu name", i);
		is_str(d->n.fields[i].value, f1[i][1], "one domain: field %zu value", i);
	}
	is_str(d->n.title, "DMARC digest for 2026-11-20: 200 messages, 75.0 % pass", "one domain: title");
	dw_digest_free(d);

	cfg1.domains = (char *[]){"example.com"};
	d = build(&b->f, 15, ASOF, SINCE, &cfg1, &crit, 1);
	if (ok(d != NULL, "critical alert: built")) {
		is_int(d->n.severity, DW_SEV_WARNING, "critical alert: digest is a warning");
		ok(has_line(d->text, "  critical  r  example.com  since 2026-11-01"), "critical alert: listed");
		dw_digest_free(d);
	}
}

/* Day 7 (2026-11-12): no data for any domain; example.com has data in the
 * window (days 0..6): median of 100000 1000 1100 900 1000 1200 1050 ->
 * 1050; rates 500 990 990 980 1000 980 980 -> 980. */
static void
test_no_data_day(const struct fb *b)
{
	struct dw_digest *d = build(&b->f, 7, ASOF, -1, NULL, NULL, 0);
	if (!ok(d != NULL, "day 7: built"))
		return;
	is_int(d->messages, 0, "day 7: no messages");
	is_int(d->ndomains, 1, "day 7: example.com (data in the window)");
	is_str(d->n.title, "DMARC digest for 2026-11-12: no reports", "day 7: title");
	is_int(d->n.severity, DW_SEV_INFO, "day 7: info");
	ok(has_line(d->text, "No reports for 2026-11-12."), "day 7: no reports line");
	ok(has_line(d->text, "  Messages        0 (no reports for 2026-11-12)"), "day 7: example.com 0");
	ok(has_line(d->text, "  Previous day    1,050 messages, 98.0 % pass (2026-11-11)"), "day 7: previous day");
	ok(has_line(d->text, "  Change          messages -1,050 (-100.0 %)"), "day 7: change without a pass rate");
	ok(has_line(d->text, "  14-day median   1,050 messages, 98.0 % pass (7 days with data)"),
	   "day 7: median includes day 0");
	is_str(d->csv, CSV_HEAD, "day 7: CSV header only");
	is_int(d->n.attachment->size, strlen(CSV_HEAD), "day 7: attachment size");
	ok(d->n.table == NULL, "day 7: no table");
	is_str(field(d, "example.com messages"), "0", "day 7: field");
	dw_digest_free(d);

	/* no facts at all */
	struct fb e;
	fb_init(&e, 1);
	d = build(&e.f, 0, ASOF, -1, NULL, NULL, 0);
	if (ok(d != NULL, "empty: built")) {
		is_int(d->ndomains, 0, "empty: no domains");
		is_int(d->n.nfields, 0, "empty: no fields");
		is_str(d->n.title, "DMARC digest for 2026-11-05: no reports", "empty: title");
		ok(has_line(d->text, "No reports for 2026-11-05."), "empty: body says so");
		ok(has_line(d->n.summary, "*DMARC digest for 2026-11-05*: no reports"), "empty: summary says so");
		is_str(d->csv, CSV_HEAD, "empty: CSV header only");
		dw_digest_free(d);
	}
	fb_free(&e);
}

/* Quoting, sanitising and the display caps: 2500 pass + 1 fail = 99.96 %
 * (shown 99.9, not 100.0); the fail is 0.04 % (shown 0.1, not 0.0). */
static void
test_quoting(void)
{
	struct fb q;
	fb_init(&q, 1);
	fact(&q, 0, "q.test", "Org", "192.0.2.2", "q.test", NULL, NONE_, 1, 1, ontime(0), 1, 2500);
	fact(&q, 0, "q.test", "Line\nBreak", "192.0.2.1", "say \"hi\"", "local_policy", NONE_, 0, 0, ontime(0), 2, 1);
	struct dw_digest *d = build(&q.f, 0, ASOF, -1, NULL, NULL, 0);
	if (ok(d != NULL, "quoting: built")) {
		const char *csv = CSV_HEAD
		    "2026-11-05,q.test,192.0.2.1,\"Line\nBreak\",\"say \"\"hi\"\"\",none,fail,fail,fail,local_policy,1\r\n"
		    "2026-11-05,q.test,192.0.2.2,Org,q.test,none,pass,pass,pass,,2500\r\n";
		is_str(d->csv, csv, "quoting: CSV");
		is_str(field(d, "q.test DMARC pass"), "99.9 %", "quoting: 99.96 %% shown as 99.9 %%");
		ok(has_line(d->text, "  DMARC fail          1    0.1 %"), "quoting: 0.04 %% shown as 0.1 %%");
		ok(has_line(d->text, "  Reporters       Line?Break (1); Org (2,500)"), "quoting: control character replaced");
		ok(strstr(d->text, "Line\nBreak") == NULL, "quoting: no raw newline in the body");
		is_str(cell(d, 0, 6), "Line?Break", "quoting: table cell cleaned");
		is_str(cell(d, 0, 5), "say \"hi\"", "quoting: header_from in the table");
		dw_digest_free(d);
	}
	fb_free(&q);
}

/* More domains than fields: 3 x 3 fields and one for the rest. */
static void
test_many_domains(void)
{
	struct fb m;
	fb_init(&m, 1);
	const char *names[5] = {"c.test", "a.test", "e.test", "b.test", "d.test"};
	const uint64_t counts[5] = {300, 500, 100, 400, 200};
	for (int i = 0; i < 5; i++)
		fact(&m, 0, names[i], "Org", "192.0.2.1", names[i], NULL, NONE_, 1, 1, ontime(0), i + 1, counts[i]);
	struct dw_digest *d = build(&m.f, 0, ASOF, -1, NULL, NULL, 0);
	if (ok(d != NULL, "many: built")) {
		is_int(d->ndomains, 5, "many: 5 domains");
		is_int(d->n.nfields, 10, "many: 10 fields");
		if (d->n.nfields == 10) {
			is_str(d->n.fields[0].name, "a.test messages", "many: busiest first");
			is_str(d->n.fields[3].name, "b.test messages", "many: second");
			is_str(d->n.fields[6].name, "c.test messages", "many: third");
			is_str(d->n.fields[9].name, "other domains", "many: the rest");
			is_str(d->n.fields[9].value, "2 domains: 300 messages, 100.0 % pass", "many: the rest summarised");
		}
		ok(d->n.table == NULL, "many: no failing sources, no table");
		ok(strstr(d->text, "  Failing sources none") != NULL, "many: 'none' for failing sources");
		dw_digest_free(d);
	}
	fb_free(&m);
}

static void
test_errors(const struct fb *b)
{
	struct dw_digest *d = (struct dw_digest *)1;
	char err[512] = "";
	struct dw_digest_input in = {.f = &b->f, .day = NDAYS, .asof = ASOF, .since = -1};
	is_int(dw_digest_build(&in, &d, err, sizeof err), DW_E_CONFIG, "errors: day outside the facts");
	ok(d == NULL, "errors: no digest");
	ok(strstr(err, "day index 16") != NULL, "errors: message names the day (%s)", err);

	struct fb bad;
	fb_init(&bad, 1);
	fact(&bad, 0, "x.test", "Org", "192.0.2.1", NULL, NULL, NONE_, 1, 1, 0, 1, 1);
	bad.f.v[0].reporter = 99;
	in.f = &bad.f;
	in.day = 0;
	is_int(dw_digest_build(&in, &d, err, sizeof err), DW_E_INPUT, "errors: fact with a bad string index");
	ok(strstr(err, "fact 0") != NULL, "errors: message names the fact (%s)", err);
	fb_free(&bad);
	dw_digest_free(NULL);
	ok(1, "errors: dw_digest_free(NULL)");
}

int
main(void)
{
	struct fb b;
	build_main(&b);
	test_main(&b);
	test_asof(&b);
	test_since(&b);
	test_top(&b);
	test_domains(&b);
	test_no_data_day(&b);
	test_quoting();
	test_many_domains();
	test_errors(&b);
	fb_free(&b);
	return done_testing();
}
