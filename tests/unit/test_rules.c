/*
 * test_rules.c - rules (src/rules.c): every rule kind on hand-built facts
 * whose right answer is worked out in the comments, the ignore lists, the
 * scope, asof, the names, and the CIDR helpers.
 *
 * struct dw_facts is built here by hand (not with dw_facts_load) so these
 * tests do not depend on the store or on day attribution. Days start on
 * 2024-03-01 UTC, so day i is 2024-03-(i+1) and starts at BASE + i * 86400.
 * A fact arrives one hour after its day ends unless the test says otherwise.
 */
#include "dmarcwatch/notifier.h"
#include "dw/rules.h"
#include "tap.h"

#include <arpa/inet.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BASE INT64_C(1709251200) /* 2024-03-01T00:00:00Z */
#define DAY INT64_C(86400)
#define HOUR INT64_C(3600)

/* ------------------------------------------------------------------ */
/* Building facts                                                      */

struct fb {
	struct dw_facts f;
	size_t capv, cappol, capstr;
};

static uint32_t
intern(struct fb *b, const char *s)
{
	if (s == NULL)
		return DW_NO_STR;
	for (size_t i = 0; i < b->f.nstrs; i++)
		if (strcmp(b->f.strs[i], s) == 0)
			return (uint32_t)i;
	if (b->f.nstrs == b->capstr) {
		b->capstr = b->capstr ? b->capstr * 2 : 32;
		b->f.strs = realloc(b->f.strs, b->capstr * sizeof *b->f.strs);
	}
	b->f.strs[b->f.nstrs] = strdup(s);
	return (uint32_t)b->f.nstrs++;
}

static void
fb_init(struct fb *b, size_t ndays)
{
	memset(b, 0, sizeof *b);
	b->f.ndays = ndays;
	b->f.days = calloc(ndays, sizeof *b->f.days);
	b->f.day_start = calloc(ndays + 1, sizeof *b->f.day_start);
	for (size_t i = 0; i <= ndays; i++)
		b->f.day_start[i] = BASE + (int64_t)i * DAY;
	for (size_t i = 0; i < ndays; i++) {
		/* March has 31 days; the tests use at most 40. */
		unsigned d = (unsigned)i + 1;
		snprintf(b->f.days[i], sizeof b->f.days[i], "2024-%02u-%02u", d <= 31 ? 3u : 4u,
		         d <= 31 ? d : d - 31);
	}
}

static void
fb_free(struct fb *b)
{
	for (size_t i = 0; i < b->f.nstrs; i++)
		free(b->f.strs[i]);
	free(b->f.strs);
	free(b->f.days);
	free(b->f.day_start);
	free(b->f.v);
	free(b->f.pol);
}

/* One fact. NULL domain/reporter/header_from mean example.com, google.com,
 * example.com. recv 0 means an hour after the day ends. */
struct fx {
	int day;
	const char *dom, *rep, *ip;
	uint64_t count;
	int dkim, spf;        /* policy_evaluated pass */
	const char *reason;
	int disp;             /* enum dw_disp */
	int64_t recv;
	const char *hf;
};

static void
add(struct fb *b, struct fx x)
{
	struct dw_fact *v;
	if (b->f.n == b->capv) {
		b->capv = b->capv ? b->capv * 2 : 64;
		b->f.v = realloc(b->f.v, b->capv * sizeof *b->f.v);
	}
	v = &b->f.v[b->f.n++];
	memset(v, 0, sizeof *v);
	v->day = (uint32_t)x.day;
	v->domain = intern(b, x.dom ? x.dom : "example.com");
	v->reporter = intern(b, x.rep ? x.rep : "google.com");
	v->source = intern(b, x.ip ? x.ip : "192.0.2.1");
	v->header_from = intern(b, x.hf ? x.hf : "example.com");
	v->reason = intern(b, x.reason);
	v->disposition = (uint8_t)x.disp;
	v->dkim_pass = (uint8_t)!!x.dkim;
	v->spf_pass = (uint8_t)!!x.spf;
	v->dmarc_pass = (uint8_t)(x.dkim || x.spf);
	v->received = x.recv ? x.recv : b->f.day_start[x.day + 1] + HOUR;
	v->report = (int64_t)b->f.n;
	v->count = x.count;
}

/* Shorthands: n messages passing (DKIM and SPF) or failing (both). */
static void
pass(struct fb *b, int day, const char *dom, const char *rep, const char *ip, uint64_t n)
{
	add(b, (struct fx){.day = day, .dom = dom, .rep = rep, .ip = ip, .count = n, .dkim = 1, .spf = 1});
}

static void
fail(struct fb *b, int day, const char *dom, const char *rep, const char *ip, uint64_t n)
{
	add(b, (struct fx){.day = day, .dom = dom, .rep = rep, .ip = ip, .count = n});
}

/* One policy_published fact; NULL strings are absent, pct -1 absent. */
struct px {
	int day;
	const char *dom, *rep;
	const char *p, *sp, *np, *adkim, *aspf, *testing;
	int pct;
	int64_t recv;
};

static void
addpol(struct fb *b, struct px x)
{
	struct dw_policy_fact *p;
	if (b->f.npol == b->cappol) {
		b->cappol = b->cappol ? b->cappol * 2 : 64;
		b->f.pol = realloc(b->f.pol, b->cappol * sizeof *b->f.pol);
	}
	p = &b->f.pol[b->f.npol++];
	memset(p, 0, sizeof *p);
	p->day = (uint32_t)x.day;
	p->domain = intern(b, x.dom ? x.dom : "example.com");
	p->reporter = intern(b, x.rep);
	p->p = intern(b, x.p);
	p->sp = intern(b, x.sp);
	p->np = intern(b, x.np);
	p->adkim = intern(b, x.adkim);
	p->aspf = intern(b, x.aspf);
	p->testing = intern(b, x.testing);
	p->pct = x.pct;
	p->received = x.recv ? x.recv : b->f.day_start[x.day + 1] + HOUR;
	p->report = (int64_t)b->f.npol;
}

static int
fact_cmp(const void *a, const void *b)
{
	const struct dw_fact *x = a, *y = b;
	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	if (x->reporter != y->reporter)
		return x->reporter < y->reporter ? -1 : 1;
	if (x->source != y->source)
		return x->source < y->source ? -1 : 1;
	return x->report < y->report ? -1 : x->report > y->report;
}

static int
pol_cmp(const void *a, const void *b)
{
	const struct dw_policy_fact *x = a, *y = b;
	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	if (x->reporter != y->reporter)
		return x->reporter < y->reporter ? -1 : 1;
	return x->report < y->report ? -1 : x->report > y->report;
}

/* Sort as dw_facts_load does: by day, domain, reporter, source. */
static void
fb_done(struct fb *b)
{
	if (b->f.n > 1)
		qsort(b->f.v, b->f.n, sizeof *b->f.v, fact_cmp);
	if (b->f.npol > 1)
		qsort(b->f.pol, b->f.npol, sizeof *b->f.pol, pol_cmp);
}

/* ------------------------------------------------------------------ */
/* Rules and running them                                              */

static char *dom_list[4], *rep_list[4], *rsn_list[4];
static struct dw_cidr src_list[4];

static struct dw_rule_cfg
rule(enum dw_rule_kind kind)
{
	struct dw_rule_cfg r;
	memset(&r, 0, sizeof r);
	r.name = "test-rule";
	r.kind = kind;
	r.enabled = 1;
	r.group = DW_GROUP_DOMAIN;
	r.severity = DW_SEV_WARNING;
	r.metric = DW_M_DMARC_FAIL_RATE;
	r.window = 1;
	r.op = DW_OP_GT;
	r.min_messages = 100;
	r.baseline_days = 14;
	r.lookback = 30;
	r.passing = -1;
	r.disagree = 1;
	r.min_mails = 5;
	return r;
}

static struct dw_rule_hit hits[64];
static size_t nhits;

static int
collect(void *arg, const struct dw_rule_hit *h)
{
	(void)arg;
	if (nhits < 64)
		hits[nhits] = *h;
	nhits++;
	return 0;
}

static int
stop_first(void *arg, const struct dw_rule_hit *h)
{
	(void)h;
	++*(int *)arg;
	return 1;
}

/* Evaluate; returns the number of hits (in hits[]). */
static size_t
run_store(const struct dw_rule_cfg *r, const struct fb *b, size_t day, int64_t asof, struct dw_store *s)
{
	struct dw_rule_ctx c = {.f = &b->f, .asof = asof, .store = s};
	char err[512] = "";
	nhits = 0;
	memset(hits, 0, sizeof hits);
	int rc = dw_rule_eval(r, &c, day, collect, NULL, err, sizeof err);
	if (rc != DW_OK)
		diag("dw_rule_eval: rc %d: %s", rc, err);
	return nhits;
}

static size_t
run(const struct dw_rule_cfg *r, const struct fb *b, size_t day, int64_t asof)
{
	return run_store(r, b, day, asof, NULL);
}

static int
near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

/* ------------------------------------------------------------------ */

static void
test_names(void)
{
	is_str(dw_rule_kind_name(DW_RULE_THRESHOLD), "threshold", "kind name threshold");
	is_str(dw_rule_kind_name(DW_RULE_BASELINE), "baseline", "kind name baseline");
	is_str(dw_rule_kind_name(DW_RULE_NEW_SOURCE), "new_source", "kind name new_source");
	is_str(dw_rule_kind_name(DW_RULE_MISSING_REPORTER), "missing_reporter", "kind name missing_reporter");
	is_str(dw_rule_kind_name(DW_RULE_POLICY_CHANGE), "policy_change", "kind name policy_change");
	is_str(dw_rule_kind_name(DW_RULE_REPORT_HEALTH), "report_health", "kind name report_health");
	is_str(dw_rule_kind_name(0), "unknown", "kind name 0");
	is_str(dw_rule_kind_name(99), "unknown", "kind name 99");

	static const char *const want[] = {NULL, "messages", "dmarc_pass", "dmarc_fail", "dmarc_fail_rate",
	                                   "dkim_fail", "dkim_fail_rate", "spf_fail", "spf_fail_rate", "quarantined",
	                                   "rejected", "dmarc_pass_rate"};
	static const int rate[] = {0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1};
	for (int m = DW_M_MESSAGES; m <= DW_M_DMARC_PASS_RATE; m++) {
		is_str(dw_metric_name(m), want[m], "metric name %d", m);
		is_int(dw_metric_is_rate(m), rate[m], "metric %s is a rate: %d", want[m], rate[m]);
	}
	is_str(dw_metric_name(0), "unknown", "metric name 0");
}

static void
test_cidr(void)
{
	struct dw_cidr c;
	unsigned char want[16];

	is_int(dw_cidr_parse("192.0.2.0/24", &c), 0, "parse 192.0.2.0/24");
	is_int(c.family, AF_INET, "... IPv4");
	is_int(c.bits, 24, "... 24 bits");
	inet_pton(AF_INET, "192.0.2.0", want);
	ok(memcmp(c.addr, want, 4) == 0, "... address 192.0.2.0");

	is_int(dw_cidr_parse("192.0.2.77/24", &c), 0, "parse 192.0.2.77/24");
	ok(memcmp(c.addr, want, 4) == 0, "... host bits masked: 192.0.2.0");

	is_int(dw_cidr_parse("10.1.2.3", &c), 0, "bare IPv4 address");
	is_int(c.bits, 32, "... is a /32");
	is_int(dw_cidr_match(&c, "10.1.2.3"), 1, "... matches itself");
	is_int(dw_cidr_match(&c, "10.1.2.4"), 0, "... not its neighbour");

	is_int(dw_cidr_parse("198.51.96.0/20", &c), 0, "parse /20");
	is_int(dw_cidr_match(&c, "198.51.111.255"), 1, "198.51.111.255 in 198.51.96.0/20");
	is_int(dw_cidr_match(&c, "198.51.112.0"), 0, "198.51.112.0 not in 198.51.96.0/20");
	is_int(dw_cidr_match(&c, "198.51.95.255"), 0, "198.51.95.255 not in 198.51.96.0/20");

	is_int(dw_cidr_parse("192.0.2.0/24", &c), 0, "parse again");
	is_int(dw_cidr_match(&c, "192.0.2.255"), 1, "192.0.2.255 matches");
	is_int(dw_cidr_match(&c, "192.0.3.0"), 0, "192.0.3.0 does not");
	is_int(dw_cidr_match(&c, "2001:db8::1"), 0, "IPv6 address vs IPv4 network: 0");
	is_int(dw_cidr_match(&c, "::ffff:192.0.2.9"), 1, "IPv4-mapped IPv6 address matches as IPv4");
	is_int(dw_cidr_match(&c, "not-an-ip"), -1, "unparsable ip: -1");
	is_int(dw_cidr_match(&c, ""), -1, "empty ip: -1");

	is_int(dw_cidr_parse("0.0.0.0/0", &c), 0, "parse 0.0.0.0/0");
	is_int(dw_cidr_match(&c, "203.0.113.200"), 1, "/0 matches every IPv4 address");

	is_int(dw_cidr_parse("2001:db8:0:1ff::1/56", &c), 0, "parse 2001:db8:0:1ff::1/56");
	is_int(c.family, AF_INET6, "... IPv6");
	is_int(c.bits, 56, "... 56 bits");
	inet_pton(AF_INET6, "2001:db8:0:100::", want);
	ok(memcmp(c.addr, want, 16) == 0, "... masked to 2001:db8:0:100::");
	is_int(dw_cidr_match(&c, "2001:db8:0:100::"), 1, "first address of the /56");
	is_int(dw_cidr_match(&c, "2001:db8:0:1ff:ffff:ffff:ffff:ffff"), 1, "last address of the /56");
	is_int(dw_cidr_match(&c, "2001:db8:0:200::"), 0, "next /56 does not match");
	is_int(dw_cidr_match(&c, "2001:db8:0:ff:ffff:ffff:ffff:ffff"), 0, "previous /56 does not match");
	is_int(dw_cidr_match(&c, "192.0.2.1"), 0, "IPv4 address vs IPv6 network: 0");

	is_int(dw_cidr_parse("2001:db8::1", &c), 0, "bare IPv6 address");
	is_int(c.bits, 128, "... is a /128");
	is_int(dw_cidr_match(&c, "2001:0db8:0000::0001"), 1, "... matches another spelling of itself");

	is_int(dw_cidr_parse("::ffff:192.0.2.0/120", &c), 0, "parse IPv4-mapped /120");
	is_int(c.family, AF_INET, "... becomes IPv4");
	is_int(c.bits, 24, "... /24");
	is_int(dw_cidr_match(&c, "192.0.2.7"), 1, "... matches 192.0.2.7");

	static const char *const bad[] = {"192.0.2.0/33", "2001:db8::/129", "abc", "", "/24", "192.0.2.0/",
	                                  "192.0.2.0/2a", "192.0.2.0/-1", "1.2.3/24", "192.0.2.0/24/8",
	                                  "192.0.2.0 /24", "192.0.2.0/0000000000000024", "192.0.2.0/024", "2001:db8::/1280"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		is_int(dw_cidr_parse(bad[i], &c), -1, "refused: \"%s\"", bad[i]);
}

/* ---- threshold ---- */

static void
test_threshold(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_THRESHOLD);

	/* Day 0: example.com 900 passing from 192.0.2.1, 100 failing from
	 * 198.51.100.7: fail rate 10 %. example.org: 50 failing: 100 %. */
	fb_init(&b, 10);
	pass(&b, 0, NULL, NULL, "192.0.2.1", 900);
	fail(&b, 0, NULL, NULL, "198.51.100.7", 100);
	fail(&b, 0, "example.org", NULL, "203.0.113.5", 50);
	fb_done(&b);

	r.value = 5;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "fail rate 10 %% > 5 %%: one group (example.org is under min_messages)");
	is_str(hits[0].group, "example.com", "group is the domain");
	is_str(hits[0].domain, "example.com", "domain");
	ok(near(hits[0].value, 10), "value 10 (%%)");
	ok(near(hits[0].threshold, 5), "threshold 5");
	ok(isnan(hits[0].baseline), "no baseline for threshold");
	is_int(hits[0].messages, 1000, "1000 messages");
	ok(hits[0].rule == &r, "hit points at its rule");
	is_str(hits[0].message, "example.com: DMARC fail rate 10 % > 5 % over 1 day (1,000 messages)", "message");
	is_int(hits[0].ntop, 1, "one failing source");
	is_str(hits[0].top[0].ip, "198.51.100.7", "top source ip");
	is_int(hits[0].top[0].count, 100, "top source count");
	is_str(hits[0].top[0].spf, "fail", "top source spf");
	is_str(hits[0].top[0].dkim, "fail", "top source dkim");
	is_str(hits[0].top[0].header_from, "example.com", "top source header_from");
	is_str(hits[0].top[0].reporter, "google.com", "top source reporter");

	r.value = 10;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "10 %% > 10 %% is false");
	r.op = DW_OP_GE;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "10 %% >= 10 %% is true");
	r.op = DW_OP_GT;
	r.value = 5;
	r.min_messages = 1001;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "1000 messages < min_messages 1001: false");
	r.min_messages = 1000;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "1000 messages = min_messages 1000: judged");
	r.min_messages = 50;
	is_int(run(&r, &b, 0, INT64_MAX), 2, "min_messages 50: example.org (50, 100 %%) too");
	is_str(hits[0].group, "example.com", "sorted: example.com");
	is_str(hits[1].group, "example.org", "sorted: example.org");
	ok(near(hits[1].value, 100), "example.org at 100 %%");
	r.min_messages = 100;

	r.metric = DW_M_DMARC_PASS_RATE;
	r.op = DW_OP_LT;
	r.value = 95;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "pass rate 90 %% < 95 %%");
	ok(near(hits[0].value, 90), "pass rate value 90");
	is_str(hits[0].message, "example.com: DMARC pass rate 90 % < 95 % over 1 day (1,000 messages)",
	       "pass rate message");
	r.op = DW_OP_LE;
	r.value = 90;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "90 %% <= 90 %%");
	r.value = 89.9;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "90 %% <= 89.9 %% is false");
	r.op = DW_OP_LT;
	r.value = 90;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "90 %% < 90 %% is false");

	/* A count metric: a number, not a percentage, in the message. */
	r.metric = DW_M_DMARC_FAIL;
	r.op = DW_OP_GE;
	r.value = 100;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "dmarc_fail 100 >= 100");
	is_str(hits[0].message, "example.com: DMARC failures 100 >= 100 over 1 day (1,000 messages)", "count message");
	is_int(run(&r, &b, 1, INT64_MAX), 0, "day 1 has no facts: nothing");
	fb_free(&b);
}

/* Every metric on one day whose counts are known. */
static void
test_threshold_metrics(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_THRESHOLD);

	/* 600 pass both; 200 DKIM pass, SPF fail; 100 DKIM fail, SPF pass;
	 * 60 both fail and quarantined; 40 both fail and rejected.
	 * messages 1000, DMARC pass 900, fail 100, DKIM fail 200, SPF fail 300,
	 * quarantined 60, rejected 40. */
	fb_init(&b, 1);
	add(&b, (struct fx){.ip = "192.0.2.1", .count = 600, .dkim = 1, .spf = 1});
	add(&b, (struct fx){.ip = "192.0.2.2", .count = 200, .dkim = 1});
	add(&b, (struct fx){.ip = "192.0.2.3", .count = 100, .spf = 1});
	add(&b, (struct fx){.ip = "192.0.2.4", .count = 60, .disp = DW_DISP_QUARANTINE});
	add(&b, (struct fx){.ip = "192.0.2.5", .count = 40, .disp = DW_DISP_REJECT});
	fb_done(&b);

	static const struct {
		int metric;
		double v;
	} m[] = {
		{DW_M_MESSAGES, 1000},       {DW_M_DMARC_PASS, 900},      {DW_M_DMARC_FAIL, 100},
		{DW_M_DMARC_FAIL_RATE, 10},  {DW_M_DKIM_FAIL, 200},       {DW_M_DKIM_FAIL_RATE, 20},
		{DW_M_SPF_FAIL, 300},        {DW_M_SPF_FAIL_RATE, 30},    {DW_M_QUARANTINED, 60},
		{DW_M_REJECTED, 40},         {DW_M_DMARC_PASS_RATE, 90},
	};
	for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
		r.metric = m[i].metric;
		r.value = m[i].v;
		r.op = DW_OP_GE;
		is_int(run(&r, &b, 0, INT64_MAX), 1, "%s >= %g", dw_metric_name(m[i].metric), m[i].v);
		ok(nhits == 1 && near(hits[0].value, m[i].v), "%s is %g", dw_metric_name(m[i].metric), m[i].v);
		r.op = DW_OP_GT;
		is_int(run(&r, &b, 0, INT64_MAX), 0, "%s > %g is false", dw_metric_name(m[i].metric), m[i].v);
	}

	/* Top sources: the failing ones by failures: .4 (60), .5 (40), then
	 * .3 (100 DKIM-failing but DMARC-passing) is not listed. */
	r.metric = DW_M_DMARC_FAIL_RATE;
	r.op = DW_OP_GT;
	r.value = 5;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "fail rate 10 %% > 5 %%");
	is_int(hits[0].ntop, 2, "two DMARC-failing sources");
	is_str(hits[0].top[0].ip, "192.0.2.4", "first: 192.0.2.4");
	is_int(hits[0].top[0].count, 60, "... 60");
	is_str(hits[0].top[1].ip, "192.0.2.5", "second: 192.0.2.5");
	is_int(hits[0].top[1].count, 40, "... 40");
	fb_free(&b);
}

static void
test_threshold_window_asof(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_THRESHOLD);

	/* Days 0..7: 100 messages a day from 192.0.2.1, all passing, except
	 * day 0 where 198.51.100.9 adds 20 failing ones. Over 7 days ending on
	 * day 6: 20 / 720 = 2.78 %. Day 6 alone: 0 %. Days 1..7: 0 %. */
	fb_init(&b, 8);
	for (int d = 0; d < 8; d++)
		pass(&b, d, NULL, NULL, "192.0.2.1", 100);
	fail(&b, 0, NULL, NULL, "198.51.100.9", 20);
	fb_done(&b);

	r.value = 2;
	is_int(run(&r, &b, 6, INT64_MAX), 0, "window 1 on day 6: 0 %%");
	r.window = 7;
	is_int(run(&r, &b, 6, INT64_MAX), 1, "window 7 on day 6: 2.78 %% > 2 %%");
	ok(near(hits[0].value, 2000.0 / 720.0), "value 20/720");
	is_int(hits[0].messages, 720, "720 messages over the window");
	is_str(hits[0].message, "example.com: DMARC fail rate 2.78 % > 2 % over 7 days (720 messages)", "message");
	is_int(hits[0].ntop, 1, "top: the failing source of day 0, inside the window");
	is_str(hits[0].top[0].ip, "198.51.100.9", "... 198.51.100.9");
	is_int(run(&r, &b, 7, INT64_MAX), 0, "window 7 on day 7: day 0 has left it");
	fb_free(&b);

	/* Lateness: the failing 100 of day 0 arrive three days after the day. */
	fb_init(&b, 4);
	pass(&b, 0, NULL, NULL, "192.0.2.1", 900);
	add(&b, (struct fx){.day = 0, .ip = "198.51.100.7", .count = 100, .recv = BASE + 4 * DAY});
	fb_done(&b);
	r = rule(DW_RULE_THRESHOLD);
	r.value = 5;
	is_int(run(&r, &b, 0, BASE + 2 * DAY), 0, "asof before the failing report arrived: 0 %%");
	r.metric = DW_M_MESSAGES;
	r.op = DW_OP_GE;
	r.value = 0;
	is_int(run(&r, &b, 0, BASE + 2 * DAY), 1, "... and it saw only the 900");
	is_int(hits[0].messages, 900, "... 900 messages");
	r = rule(DW_RULE_THRESHOLD);
	r.value = 5;
	is_int(run(&r, &b, 0, BASE + 4 * DAY), 1, "asof = received: the report counts");
	is_int(run(&r, &b, 0, BASE + 4 * DAY - 1), 0, "asof one second earlier: it does not");
	is_int(run(&r, &b, 0, INT64_MAX), 1, "asof INT64_MAX: everything");
	fb_free(&b);
}

static void
test_threshold_ignore_scope_group(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_THRESHOLD);

	/* example.com day 0: 950 passing (google.com); 20 failing from
	 * 198.51.100.7 (google.com); 40 failing from a mailing list
	 * 203.0.113.9, reason mailing_list, reported by yahoo.com.
	 * All: 60 / 1010 = 5.94 %. Without the list: 20 / 970 = 2.06 %. */
	fb_init(&b, 1);
	pass(&b, 0, NULL, "google.com", "192.0.2.1", 950);
	fail(&b, 0, NULL, "google.com", "198.51.100.7", 20);
	add(&b, (struct fx){.rep = "yahoo.com", .ip = "203.0.113.9", .count = 40, .reason = "mailing_list",
	                    .hf = "list.example.net"});
	fb_done(&b);

	r.value = 5;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "with the list: 5.94 %% > 5 %%");
	is_int(hits[0].ntop, 2, "two failing sources");
	is_str(hits[0].top[0].ip, "203.0.113.9", "top: the list (40)");
	is_str(hits[0].top[0].header_from, "list.example.net", "... its header_from");
	is_str(hits[0].top[0].reporter, "yahoo.com", "... its reporter");
	is_str(hits[0].top[1].ip, "198.51.100.7", "then 198.51.100.7 (20)");

	rsn_list[0] = "Mailing_List";
	r.ignore_reasons = rsn_list;
	r.nignore_reasons = 1;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "ignore reason mailing_list (any case): 2.06 %%, false");
	r.value = 2;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "... it is 2.06 %% > 2 %%");
	ok(near(hits[0].value, 2000.0 / 970.0), "... 20/970");
	is_int(hits[0].messages, 970, "... of 970 messages");
	is_int(hits[0].ntop, 1, "... and the list is not a top source");
	r.value = 5;
	rsn_list[0] = "forwarded";
	is_int(run(&r, &b, 0, INT64_MAX), 1, "ignoring another reason changes nothing");
	r.nignore_reasons = 0;

	is_int(dw_cidr_parse("203.0.113.0/24", &src_list[0]), 0, "parse the list's network");
	r.ignore_sources = src_list;
	r.nignore_sources = 1;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "ignore source 203.0.113.0/24: false");
	is_int(dw_cidr_parse("203.0.114.0/24", &src_list[0]), 0, "parse another network");
	is_int(run(&r, &b, 0, INT64_MAX), 1, "ignoring another network changes nothing");
	r.nignore_sources = 0;

	rep_list[0] = "Yahoo.COM";
	r.ignore_reporters = rep_list;
	r.nignore_reporters = 1;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "ignore reporter yahoo.com (any case): false");
	r.nignore_reporters = 0;

	/* Group by source and by reporter. */
	r.group = DW_GROUP_SOURCE;
	r.metric = DW_M_DMARC_FAIL;
	r.op = DW_OP_GE;
	r.value = 20;
	r.min_messages = 0;
	is_int(run(&r, &b, 0, INT64_MAX), 2, "per source: two sources with >= 20 failures");
	is_str(hits[0].group, "example.com|198.51.100.7", "group domain|source");
	ok(near(hits[0].value, 20), "... 20");
	is_str(hits[0].message, "example.com, source 198.51.100.7: DMARC failures 20 >= 20 over 1 day (20 messages)",
	       "... message");
	is_int(hits[0].ntop, 1, "... its top source is itself");
	is_str(hits[0].top[0].ip, "198.51.100.7", "... 198.51.100.7");
	is_str(hits[1].group, "example.com|203.0.113.9", "group domain|source");

	r.group = DW_GROUP_REPORTER;
	r.metric = DW_M_DMARC_FAIL_RATE;
	r.op = DW_OP_GT;
	r.value = 5;
	r.min_messages = 30;
	/* google.com: 20 / 970 = 2.06 %; yahoo.com: 40 / 40 = 100 %. */
	is_int(run(&r, &b, 0, INT64_MAX), 1, "per reporter: only yahoo.com crosses");
	is_str(hits[0].group, "example.com|yahoo.com", "group domain|reporter");
	is_int(hits[0].messages, 40, "... 40 messages");
	is_str(hits[0].message, "example.com, reporter yahoo.com: DMARC fail rate 100 % > 5 % over 1 day (40 messages)",
	       "... message");
	r.min_messages = 41;
	is_int(run(&r, &b, 0, INT64_MAX), 0, "per reporter: min_messages applies per group");
	fb_free(&b);

	/* Scope. */
	fb_init(&b, 1);
	fail(&b, 0, "example.com", NULL, "198.51.100.7", 100);
	fail(&b, 0, "example.org", NULL, "198.51.100.7", 100);
	fb_done(&b);
	r = rule(DW_RULE_THRESHOLD);
	r.value = 5;
	is_int(run(&r, &b, 0, INT64_MAX), 2, "no scope: both domains");
	dom_list[0] = "EXAMPLE.ORG";
	r.domains = dom_list;
	r.ndomains = 1;
	is_int(run(&r, &b, 0, INT64_MAX), 1, "scope example.org (any case): one");
	is_str(hits[0].group, "example.org", "... example.org");
	dom_list[0] = "example.net";
	is_int(run(&r, &b, 0, INT64_MAX), 0, "scope example.net: none");

	/* The callback stops the walk. */
	int calls = 0;
	struct dw_rule_ctx c = {.f = &b.f, .asof = INT64_MAX};
	r.ndomains = 0;
	is_int(dw_rule_eval(&r, &c, 0, stop_first, &calls, NULL, 0), DW_OK, "stopping callback: DW_OK");
	is_int(calls, 1, "... called once");
	is_int(run(&r, &b, 5, INT64_MAX), 0, "a day outside the facts: nothing");
	fb_free(&b);
}

/* ---- baseline ---- */

static void
test_baseline(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_BASELINE);

	/* example.com, 1000 messages a day. Pass rate on days 0..13: 99 % on
	 * ten days, 60 % on days 3, 6, 9, 12. Median 99, mean
	 * (10 * 99 + 4 * 60) / 14 = 87.857. Day 14: 90 %: down 9 points from
	 * the median, up from the mean. */
	fb_init(&b, 15);
	for (int d = 0; d < 14; d++) {
		int low = d % 3 == 0 && d > 0;
		pass(&b, d, NULL, NULL, "192.0.2.1", low ? 600 : 990);
		fail(&b, d, NULL, NULL, "198.51.100.7", low ? 400 : 10);
	}
	pass(&b, 14, NULL, NULL, "192.0.2.1", 900);
	fail(&b, 14, NULL, NULL, "198.51.100.7", 60);
	fail(&b, 14, NULL, NULL, "198.51.100.8", 40);

	/* vol.example, all passing: days 0..4 only: 100, 200, 300, 400, 10000;
	 * days 5..13 empty (skipped). Median 300, mean 2200. Day 14: 900:
	 * +600 (+200 %) against the median, -1300 (-59.09 %) against the mean. */
	static const int vol[] = {100, 200, 300, 400, 10000};
	for (int d = 0; d < 5; d++)
		pass(&b, d, "vol.example", NULL, "192.0.2.50", (uint64_t)vol[d]);
	pass(&b, 14, "vol.example", NULL, "192.0.2.50", 900);

	/* few.example: 1000 passing on days 11, 12, 13; day 14: 1000 failing. */
	for (int d = 11; d < 14; d++)
		pass(&b, d, "few.example", NULL, "192.0.2.60", 1000);
	fail(&b, 14, "few.example", NULL, "198.51.100.60", 1000);
	fb_done(&b);

	/* few.example would drop 100 points: scope it out for the first part. */
	static char *two[] = {"example.com", "vol.example"};
	r.domains = two;
	r.ndomains = 2;

	r.drop_points = 5;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "median: pass rate 90 %% vs 99 %%: drop 9 >= 5");
	is_str(hits[0].group, "example.com", "group");
	ok(near(hits[0].value, 9), "value: 9 points");
	ok(near(hits[0].baseline, 99), "baseline: 99 %%");
	ok(near(hits[0].threshold, 5), "threshold: 5 points");
	is_int(hits[0].messages, 1000, "day's messages");
	is_str(hits[0].message,
	       "example.com: DMARC pass rate 90 % on 2024-03-15, down 9 points from the 14-day median of 99 % "
	       "(14 days with data; fires at 5 points)",
	       "message");
	is_int(hits[0].ntop, 2, "top: the day's two failing sources");
	is_str(hits[0].top[0].ip, "198.51.100.7", "... 198.51.100.7 (60)");
	is_int(hits[0].top[0].count, 60, "... 60");
	is_str(hits[0].top[1].ip, "198.51.100.8", "... 198.51.100.8 (40)");
	r.drop_points = 9;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "drop 9 >= 9");
	r.drop_points = 9.5;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "drop 9 < 9.5");
	r.drop_points = 1;
	r.use_mean = 1;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "mean 87.86 %%: 90 %% is no drop");
	r.use_mean = 0;
	r.drop_points = 5;
	r.min_messages = 1001;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "min_messages 1001 > the day's 1000");
	r.min_messages = 100;
	is_int(run(&r, &b, 14, BASE + 14 * DAY), 0, "asof before day 14's reports: no data on the day");

	/* Volume. */
	r.drop_points = 0;
	r.volume_pct = 50;
	r.volume_min = 500;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "volume vs median 300: +600 (+200 %%)");
	is_str(hits[0].group, "vol.example", "... vol.example");
	ok(near(hits[0].value, 200), "... value +200 %%");
	ok(near(hits[0].baseline, 300), "... baseline 300 messages");
	ok(near(hits[0].threshold, 50), "... threshold 50 %%");
	is_str(hits[0].message,
	       "vol.example: 900 messages on 2024-03-15, up 200 % from the 14-day median of 300 (fires at 50 % and 500 "
	       "messages)",
	       "... message");
	r.volume_min = 700;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "median: +600 < volume_min 700");
	r.use_mean = 1;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "mean 2200: -1300 (-59 %%) fires both ways");
	ok(near(hits[0].value, -1300.0 / 22.0), "... value -59.09 %%");
	ok(near(hits[0].baseline, 2200), "... baseline 2200");
	is_str(hits[0].message,
	       "vol.example: 900 messages on 2024-03-15, down 59.09 % from the 14-day mean of 2,200 (fires at 50 % and "
	       "700 messages)",
	       "... message");
	r.volume_pct = 60;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "mean: -59.09 %% < 60 %%");
	r.use_mean = 0;
	r.volume_pct = 0;

	/* Both conditions on one group give one hit. */
	r.drop_points = 5;
	r.volume_pct = 1;
	r.volume_min = 0;
	r.domains = two;
	r.ndomains = 1;
	/* example.com's volume: 1000 every day: no change. */
	is_int(run(&r, &b, 14, INT64_MAX), 1, "drop and volume judged together: one hit (volume unchanged)");
	r.volume_pct = 0;

	/* At least three days of baseline. */
	static char *few[] = {"few.example"};
	r.domains = few;
	r.ndomains = 1;
	r.drop_points = 5;
	r.baseline_days = 3;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "few.example: 3 baseline days: drop 100 points");
	ok(near(hits[0].value, 100), "... 100 points");
	is_int(hits[0].ntop, 1, "... one failing source");
	r.baseline_days = 2;
	is_int(run(&r, &b, 14, INT64_MAX), 0, "few.example: 2 baseline days: not judged");
	r.baseline_days = 14;
	is_int(run(&r, &b, 14, INT64_MAX), 1, "few.example: 14 days with 3 of data: judged");
	fb_free(&b);

	/* Group by source: a source whose own pass rate drops. */
	fb_init(&b, 5);
	for (int d = 0; d < 4; d++) {
		pass(&b, d, NULL, NULL, "192.0.2.1", 500);
		pass(&b, d, NULL, NULL, "192.0.2.2", 500);
	}
	pass(&b, 4, NULL, NULL, "192.0.2.1", 500);
	fail(&b, 4, NULL, NULL, "192.0.2.2", 500);
	fb_done(&b);
	r = rule(DW_RULE_BASELINE);
	r.drop_points = 20;
	r.group = DW_GROUP_SOURCE;
	is_int(run(&r, &b, 4, INT64_MAX), 1, "per source: only 192.0.2.2 dropped");
	is_str(hits[0].group, "example.com|192.0.2.2", "... group domain|source");
	ok(near(hits[0].value, 100), "... 100 points");
	r.group = DW_GROUP_DOMAIN;
	is_int(run(&r, &b, 4, INT64_MAX), 1, "per domain: 50 points");
	ok(near(hits[0].value, 50), "... 50 points");
	fb_free(&b);
}

/* ---- new_source ---- */

static void
test_new_source(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_NEW_SOURCE);
	r.min_messages = 10;

	/* Days 0..30; judged: day 30 (2024-03-31), lookback 30 = days 0..29. */
	fb_init(&b, 31);
	for (int d = 0; d <= 30; d++)
		pass(&b, d, NULL, NULL, "192.0.2.1", 100);
	fail(&b, 10, NULL, NULL, "2001:db8:1:2ff::1", 3);
	fail(&b, 0, NULL, NULL, "198.18.0.1", 5);
	/* Day 30: */
	pass(&b, 30, NULL, NULL, "192.0.2.77", 50);            /* same /24 as a known one */
	pass(&b, 30, NULL, NULL, "198.51.100.5", 30);          /* new /24: 30 pass ... */
	fail(&b, 30, NULL, NULL, "198.51.100.6", 20);          /* ... 20 fail: 60 % pass */
	fail(&b, 30, NULL, NULL, "203.0.113.9", 5);            /* new, but under min_messages */
	fail(&b, 30, NULL, NULL, "2001:db8:1:200::1", 12);     /* same /56 as day 10's */
	fail(&b, 30, NULL, NULL, "2001:db8:1:300::1", 15);     /* new /56 */
	fail(&b, 30, NULL, NULL, "198.18.0.1", 20);            /* seen on day 0 only */
	pass(&b, 30, "example.org", NULL, "192.0.2.1", 10);    /* known for example.com, new for example.org */
	pass(&b, 5, "example.org", NULL, "192.0.3.1", 10);     /* example.org has a history */
	pass(&b, 30, "example.net", NULL, "192.0.4.1", 500);   /* example.net has none: nothing is "new" */
	fb_done(&b);

	is_int(run(&r, &b, 30, INT64_MAX), 3, "networks: three new ones");
	is_str(hits[0].group, "example.com|198.51.100.0/24", "198.51.100.0/24");
	ok(near(hits[0].value, 50), "... 50 messages");
	is_int(hits[0].messages, 50, "... messages 50");
	ok(near(hits[0].threshold, 10), "... threshold min_messages 10");
	is_str(hits[0].message,
	       "example.com: new source 198.51.100.0/24 sent 50 messages on 2024-03-31, not seen in the previous 30 days; "
	       "60 % pass DMARC (a new legitimate sender?)",
	       "... message: passing");
	is_int(hits[0].ntop, 2, "... top: its two IPs");
	is_str(hits[0].top[0].ip, "198.51.100.5", "... 198.51.100.5 first (30)");
	is_int(hits[0].top[0].count, 30, "... 30");
	is_str(hits[0].top[0].spf, "pass", "... spf pass");
	is_str(hits[0].top[1].ip, "198.51.100.6", "... 198.51.100.6 (20)");
	is_str(hits[0].top[1].dkim, "fail", "... dkim fail");
	is_str(hits[1].group, "example.com|2001:db8:1:300::/56", "2001:db8:1:300::/56");
	is_str(hits[1].message,
	       "example.com: new source 2001:db8:1:300::/56 sent 15 messages on 2024-03-31, not seen in the previous 30 "
	       "days; 100 % fail DMARC (a spoofer?)",
	       "... message: failing");
	is_int(hits[1].ntop, 1, "... one IP");
	is_str(hits[1].top[0].ip, "2001:db8:1:300::1", "... 2001:db8:1:300::1");
	is_str(hits[2].group, "example.org|192.0.2.0/24", "new per domain: example.org|192.0.2.0/24 (10 = min)");

	r.passing = 1;
	is_int(run(&r, &b, 30, INT64_MAX), 2, "passing only: two");
	is_str(hits[0].group, "example.com|198.51.100.0/24", "... 198.51.100.0/24");
	is_str(hits[1].group, "example.org|192.0.2.0/24", "... example.org");
	r.passing = 0;
	is_int(run(&r, &b, 30, INT64_MAX), 1, "failing only: one");
	is_str(hits[0].group, "example.com|2001:db8:1:300::/56", "... the /56");
	r.passing = -1;

	r.lookback = 29;
	is_int(run(&r, &b, 30, INT64_MAX), 4, "lookback 29: day 0 is out, 198.18.0.0/24 is new");
	is_str(hits[0].group, "example.com|198.18.0.0/24", "... 198.18.0.0/24");
	r.lookback = 30;

	r.min_messages = 11;
	is_int(run(&r, &b, 30, INT64_MAX), 2, "min_messages 11: example.org's 10 are not enough");

	r.min_messages = 10;
	r.group_ip = 1;
	is_int(run(&r, &b, 30, INT64_MAX), 6, "group ip: six new addresses");
	static const char *const want[] = {"example.com|192.0.2.77",       "example.com|198.51.100.5",
	                                   "example.com|198.51.100.6",     "example.com|2001:db8:1:200::1",
	                                   "example.com|2001:db8:1:300::1", "example.org|192.0.2.1"};
	for (size_t i = 0; i < 6 && i < nhits; i++)
		is_str(hits[i].group, want[i], "group ip %zu", i);
	is_str(hits[2].message,
	       "example.com: new source 198.51.100.6 sent 20 messages on 2024-03-31, not seen in the previous 30 days; "
	       "100 % fail DMARC (a spoofer?)",
	       "... message of an IP");
	r.group_ip = 0;

	/* Ignored sources never alert; scope. */
	is_int(dw_cidr_parse("198.51.100.0/24", &src_list[0]), 0, "parse 198.51.100.0/24");
	is_int(dw_cidr_parse("2001:db8:1::/48", &src_list[1]), 0, "parse 2001:db8:1::/48");
	r.ignore_sources = src_list;
	r.nignore_sources = 2;
	is_int(run(&r, &b, 30, INT64_MAX), 1, "ignoring both networks leaves example.org");
	r.nignore_sources = 0;
	dom_list[0] = "example.com";
	r.domains = dom_list;
	r.ndomains = 1;
	is_int(run(&r, &b, 30, INT64_MAX), 2, "scope example.com: two");
	r.ndomains = 0;

	/* Late: day 30's failing /56 arrives after asof. */
	is_int(run(&r, &b, 30, BASE + 31 * DAY), 0, "asof = the end of day 30: nothing had arrived");
	is_int(run(&r, &b, 30, BASE + 31 * DAY + HOUR), 3, "an hour later: all three");
	fb_free(&b);

	/* Exactly half passing counts as failing. */
	fb_init(&b, 2);
	pass(&b, 0, NULL, NULL, "192.0.2.1", 10);
	pass(&b, 1, NULL, NULL, "198.51.100.1", 10);
	fail(&b, 1, NULL, NULL, "198.51.100.2", 10);
	fb_done(&b);
	r = rule(DW_RULE_NEW_SOURCE);
	r.min_messages = 10;
	r.passing = 1;
	is_int(run(&r, &b, 1, INT64_MAX), 0, "10 pass / 10 fail is not mostly passing");
	r.passing = 0;
	is_int(run(&r, &b, 1, INT64_MAX), 1, "... it counts as failing");
	fb_free(&b);
}

/* ---- missing_reporter ---- */

static void
add_days(struct fb *b, const char *rep, const int *days, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pass(b, days[i], NULL, rep, "192.0.2.1", 100);
}

static void
test_missing_reporter(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_MISSING_REPORTER);
	r.seen_days = 3;
	r.of_days = 5;
	r.silent_days = 2;

	/* Judged day 10: silent on days 9 and 10 at least; regular = 3 of the 5
	 * days ending on the last day it reported.
	 * A: 4 5 6          -> 3 of 2..6, silent since: fires (4 days after day 6)
	 * B: 4 5            -> 2 of 1..5: no
	 * C: 4..8 and 10    -> reported on day 10: no
	 * D: 6 7 8          -> fires (2 days after day 8, the edge)
	 * E: 1..5           -> 5 of 1..5, silent since day 6: fires
	 * F: 5 6 7, and a policy fact only on day 9 -> alive: no
	 * G: 4..8 and 9, day 9 arriving two days late -> fires until it arrives */
	fb_init(&b, 12);
	static const int a[] = {4, 5, 6}, bb[] = {4, 5}, c[] = {4, 5, 6, 7, 8, 10}, d[] = {6, 7, 8},
	                 e[] = {1, 2, 3, 4, 5}, f[] = {5, 6, 7}, g[] = {4, 5, 6, 7, 8};
	add_days(&b, "A", a, 3);
	add_days(&b, "B", bb, 2);
	add_days(&b, "C", c, 6);
	add_days(&b, "D", d, 3);
	add_days(&b, "E", e, 5);
	add_days(&b, "F", f, 3);
	addpol(&b, (struct px){.day = 9, .rep = "F", .p = "none", .pct = 100});
	add_days(&b, "G", g, 5);
	add(&b, (struct fx){.day = 9, .rep = "G", .count = 100, .dkim = 1, .spf = 1, .recv = BASE + 12 * DAY});
	fb_done(&b);

	int64_t asof = BASE + 11 * DAY + HOUR; /* day 10's reports are in, G's day 9 is not */
	is_int(run(&r, &b, 10, asof), 4, "day 10: A, D, E and G");
	is_str(hits[0].group, "example.com|A", "A");
	ok(near(hits[0].value, 4), "... silent 4 days");
	ok(near(hits[0].threshold, 2), "... threshold 2 days");
	is_int(hits[0].messages, 300, "... 300 messages in W");
	is_str(hits[0].message,
	       "example.com: reporter A: no reports for the 4 days after 2024-03-07 (it reported on 3 of the 5 days "
	       "2024-03-03..2024-03-07, 300 messages)",
	       "... message");
	is_str(hits[1].group, "example.com|D", "D");
	ok(near(hits[1].value, 2), "... silent exactly 2 days");
	is_str(hits[2].group, "example.com|E", "E (regular before its silence)");
	is_str(hits[3].group, "example.com|G", "G (its day 9 not arrived)");
	is_int(run(&r, &b, 10, INT64_MAX), 3, "with everything: A, D and E");

	/* Day 11: A is still silent and still fires (a window sliding with the
	 * judged day would have dropped it: 2 of 5..9, and its alert would
	 * resolve while it is still gone). D, E still silent; F (policy fact on
	 * day 9) and G (day 9) are silent 2 days now; C reported on 10. */
	is_int(run(&r, &b, 11, INT64_MAX), 5, "day 11: A, D, E, F, G");
	is_str(hits[0].group, "example.com|A", "... A, silent 5 days, still missing");
	ok(near(hits[0].value, 5), "... 5 days");
	is_str(hits[3].group, "example.com|F", "... F");
	is_str(hits[4].group, "example.com|G", "... G");

	r.seen_days = 4;
	is_int(run(&r, &b, 10, asof), 2, "seen_days 4: E and G (5 of 5)");
	r.seen_days = 3;

	rep_list[0] = "a";
	r.ignore_reporters = rep_list;
	r.nignore_reporters = 1;
	is_int(run(&r, &b, 10, asof), 3, "ignoring reporter a (any case): D, E and G");
	r.nignore_reporters = 0;

	dom_list[0] = "example.org";
	r.domains = dom_list;
	r.ndomains = 1;
	is_int(run(&r, &b, 10, asof), 0, "scope example.org: nothing");
	r.ndomains = 0;

	is_int(run(&r, &b, 1, INT64_MAX), 0, "day 1 < silent_days: W is before the range");
	/* Day 2: W = day 0 only (of 5): nobody reported then. */
	is_int(run(&r, &b, 2, INT64_MAX), 0, "day 2: W truncated to day 0: nothing");
	fb_free(&b);

	/* A silence is followed DW_MISSING_TRACK_DAYS days beyond silent + of
	 * (37 days here), then forgotten. Z reported on days 0..4. */
	fb_init(&b, 45);
	static const int z[] = {0, 1, 2, 3, 4};
	add_days(&b, "Z", z, 5);
	fb_done(&b);
	is_int(run(&r, &b, 30, INT64_MAX), 1, "day 30: Z silent 26 days, still missing");
	is_int(run(&r, &b, 38, INT64_MAX), 1, "day 38: the range 2..38 still holds 3 of its days");
	is_int(run(&r, &b, 39, INT64_MAX), 0, "day 39: only 2 of its days are in the range: forgotten");
	fb_free(&b);
}

/* ---- policy_change ---- */

static void
pol3(struct fb *b, int day, const char *pg, const char *py, const char *pm, int pct)
{
	addpol(b, (struct px){.day = day, .rep = "google.com", .p = pg, .sp = "none", .adkim = "r", .aspf = "r",
	                      .pct = pct});
	addpol(b, (struct px){.day = day, .rep = "yahoo.com", .p = py, .pct = pct});
	addpol(b, (struct px){.day = day, .rep = "Microsoft", .p = pm, .adkim = "r", .pct = pct});
}

static void
test_policy_change(void)
{
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_POLICY_CHANGE);

	/* Day 0, 1: p=none everywhere (yahoo writes NONE on day 1).
	 * Day 2: p=quarantine: a change.
	 * Day 3: Microsoft still sees none: a disagreement, no change.
	 * Day 4: no policy facts.
	 * Day 5: pct 100 -> 50, against day 3.
	 * Day 6: google reports np=reject, yahoo omits adkim: neither counts.
	 * Day 7: google's first report says reject, its later one quarantine.
	 * Day 8: p=reject, arriving two days late.
	 * example.org changes on day 2 as well. */
	fb_init(&b, 9);
	pol3(&b, 0, "none", "none", "none", 100);
	pol3(&b, 1, "none", "NONE", "none", -1);
	pol3(&b, 2, "quarantine", "quarantine", "quarantine", 100);
	pol3(&b, 3, "quarantine", "quarantine", "none", 100);
	pol3(&b, 5, "quarantine", "quarantine", "quarantine", 50);
	addpol(&b, (struct px){.day = 6, .rep = "google.com", .p = "quarantine", .np = "reject", .adkim = "r",
	                       .pct = 50});
	addpol(&b, (struct px){.day = 6, .rep = "yahoo.com", .p = "quarantine", .pct = 50});
	addpol(&b, (struct px){.day = 7, .rep = "google.com", .p = "reject", .pct = 50, .recv = BASE + 8 * DAY});
	addpol(&b, (struct px){.day = 7, .rep = "google.com", .p = "quarantine", .pct = 50,
	                       .recv = BASE + 8 * DAY + HOUR});
	addpol(&b, (struct px){.day = 7, .rep = "yahoo.com", .p = "quarantine", .pct = 50});
	for (int i = 0; i < 3; i++)
		addpol(&b, (struct px){.day = 8, .rep = i == 0 ? "google.com" : i == 1 ? "yahoo.com" : "Microsoft",
		                       .p = "reject", .pct = 50, .recv = BASE + 11 * DAY});
	addpol(&b, (struct px){.day = 1, .dom = "example.org", .rep = "google.com", .p = "none"});
	addpol(&b, (struct px){.day = 2, .dom = "example.org", .rep = "google.com", .p = "reject"});
	pass(&b, 2, NULL, NULL, "192.0.2.1", 42);
	fb_done(&b);

	is_int(run(&r, &b, 0, INT64_MAX), 0, "day 0: nothing before it");
	is_int(run(&r, &b, 1, INT64_MAX), 0, "day 1: same policy (NONE = none, pct absent = 100)");
	is_int(run(&r, &b, 2, INT64_MAX), 2, "day 2: example.com and example.org changed");
	is_str(hits[0].group, "example.com", "group: the domain");
	is_str(hits[0].domain, "example.com", "domain");
	is_int(hits[0].messages, 42, "messages of the domain that day");
	is_str(hits[0].message, "example.com: policy_published changed on 2024-03-03 (since 2024-03-02): p: none -> "
	       "quarantine", "message names the field");
	is_str(hits[1].message, "example.org: policy_published changed on 2024-03-03 (since 2024-03-02): p: none -> "
	       "reject", "example.org's");
	is_int(run(&r, &b, 3, INT64_MAX), 1, "day 3: reporters disagree");
	is_str(hits[0].message, "example.com: reporters disagree on 2024-03-04: p: quarantine (google.com, yahoo.com) "
	       "vs none (Microsoft)", "disagreement message");
	r.disagree = 0;
	is_int(run(&r, &b, 3, INT64_MAX), 0, "day 3 with disagree off: the majority did not change");
	r.disagree = 1;
	rep_list[0] = "MICROSOFT";
	r.ignore_reporters = rep_list;
	r.nignore_reporters = 1;
	is_int(run(&r, &b, 3, INT64_MAX), 0, "day 3 ignoring Microsoft: nothing");
	r.nignore_reporters = 0;
	is_int(run(&r, &b, 4, INT64_MAX), 0, "day 4: no policy seen");
	is_int(run(&r, &b, 5, INT64_MAX), 1, "day 5: pct changed since day 3");
	is_str(hits[0].message, "example.com: policy_published changed on 2024-03-06 (since 2024-03-04): pct: 100 -> 50",
	       "pct message, against the last day with data");
	is_int(run(&r, &b, 6, INT64_MAX), 0, "day 6: np and adkim omitted by one reporter: nothing");
	is_int(run(&r, &b, 7, INT64_MAX), 0, "day 7: google's latest report wins: no disagreement");
	is_int(run(&r, &b, 8, BASE + 10 * DAY), 0, "day 8 before its reports arrived: nothing");
	is_int(run(&r, &b, 8, INT64_MAX), 1, "day 8 once they arrived: quarantine -> reject");
	is_str(hits[0].message, "example.com: policy_published changed on 2024-03-09 (since 2024-03-08): p: quarantine -> "
	       "reject", "... message");
	dom_list[0] = "example.com";
	r.domains = dom_list;
	r.ndomains = 1;
	is_int(run(&r, &b, 2, INT64_MAX), 1, "day 2 scoped to example.com: one");
	r.ndomains = 0;
	fb_free(&b);

	/* A change and a disagreement on one day: one hit naming both. */
	fb_init(&b, 2);
	pol3(&b, 0, "none", "none", "none", 100);
	pol3(&b, 1, "reject", "reject", "none", 100);
	fb_done(&b);
	is_int(run(&r, &b, 1, INT64_MAX), 1, "change and disagreement: one hit");
	is_str(hits[0].message, "example.com: policy_published changed on 2024-03-02 (since 2024-03-01): p: none -> "
	       "reject; reporters disagree on 2024-03-02: p: reject (google.com, yahoo.com) vs none (Microsoft)",
	       "... both in the message");
	ok(near(hits[0].value, 2), "... value: 2 (one change, one disagreement)");
	fb_free(&b);
}

/* ---- report_health ---- */

static void
put_mail(sqlite3 *db, const char *account, int uid, const char *verdict, int64_t received, int64_t processed)
{
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db,
	                   "INSERT INTO messages (account, uidvalidity, uid, verdict, received, processed_at)"
	                   " VALUES (?1, 1, ?2, ?3, ?4, ?5)",
	                   -1, &st, NULL);
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, uid);
	sqlite3_bind_text(st, 3, verdict, -1, SQLITE_STATIC);
	if (received >= 0)
		sqlite3_bind_int64(st, 4, received);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, processed);
	if (sqlite3_step(st) != SQLITE_DONE)
		diag("insert: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

static void
test_report_health(void)
{
	char dir[] = "/tmp/dw_rules_XXXXXX", path[300], err[512] = "";
	struct dw_store *s = NULL;
	struct fb b;
	struct dw_rule_cfg r = rule(DW_RULE_REPORT_HEALTH);
	int64_t d1 = BASE + DAY, d2 = BASE + 2 * DAY;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof path, "%s/dw.db", dir);
	is_int(dw_store_open(path, &s, err, sizeof err), DW_OK, "open a store");
	if (s == NULL)
		return;
	sqlite3 *db = dw_store_sqlite(s);
	/* work: day 1, one mail an hour from 01:00 to 10:00: 3 invalid,
	 * 1 untrusted, 6 stored: 40 %. */
	for (int i = 1; i <= 10; i++)
		put_mail(db, "work", i, i <= 3 ? "invalid" : i == 4 ? "untrusted" : "stored", d1 + i * HOUR, d1 + i * HOUR + 5);
	/* home: day 1, 4 invalid mails at 20:00: 100 %, but under min_mails 5. */
	for (int i = 1; i <= 4; i++)
		put_mail(db, "home", i, "invalid", d1 + 20 * HOUR, d1 + 20 * HOUR + 5);
	/* old: one mail on day 0 at 01:00, nothing since. */
	put_mail(db, "old", 1, "stored", BASE + HOUR, BASE + HOUR + 5);
	/* nulls: received unknown: processed_at on day 1 counts: 5 invalid. */
	for (int i = 1; i <= 5; i++)
		put_mail(db, "nulls", i, "invalid", -1, d1 + 2 * HOUR);
	/* work also got a mail on day 0 that is not part of day 1's share. */
	put_mail(db, "work", 100, "invalid", BASE + 2 * HOUR, BASE + 2 * HOUR);

	fb_init(&b, 3);
	fb_done(&b);

	r.invalid_share = 40;
	r.silence = 0;
	is_int(run_store(&r, &b, 1, INT64_MAX, s), 2, "invalid share >= 40 %%: nulls (100 %%) and work (40 %%)");
	is_str(hits[0].group, "nulls", "group: the account (nulls, by processed_at)");
	ok(near(hits[0].value, 100), "... 100 %%");
	is_str(hits[0].domain, "", "... no domain");
	is_str(hits[1].group, "work", "work");
	ok(near(hits[1].value, 40), "... 40 %%");
	ok(near(hits[1].threshold, 40), "... threshold 40");
	is_int(hits[1].messages, 10, "... 10 mails on the day");
	is_str(hits[1].message,
	       "account work: 4 of 10 report mails received on 2024-03-02 were invalid or untrusted (40 % >= 40 %)",
	       "... message");
	r.invalid_share = 41;
	is_int(run_store(&r, &b, 1, INT64_MAX, s), 1, "41 %%: only nulls");
	r.invalid_share = 40;
	r.min_mails = 11;
	is_int(run_store(&r, &b, 1, INT64_MAX, s), 0, "min_mails 11: nobody has enough");
	r.min_mails = 4;
	is_int(run_store(&r, &b, 1, INT64_MAX, s), 3, "min_mails 4: home too");
	r.min_mails = 5;
	/* asof 05:00 on day 1: work's first five mails, 4 of them bad: 80 %. */
	is_int(run_store(&r, &b, 1, d1 + 5 * HOUR, s), 2, "asof 05:00: nulls and work");
	ok(nhits == 2 && near(hits[1].value, 80), "... work at 80 %% (4 of the 5 that had arrived)");
	is_int(hits[1].messages, 5, "... 5 mails");
	is_int(run_store(&r, &b, 0, INT64_MAX, s), 0, "day 0: under min_mails everywhere");

	/* Silence. */
	r.invalid_share = 0;
	r.silence = (unsigned)DAY;
	is_int(run_store(&r, &b, 1, INT64_MAX, s), 1, "silence 24 h before the end of day 1: old");
	is_str(hits[0].group, "old", "... old");
	ok(near(hits[0].value, (double)(d2 - BASE - HOUR)), "... value: seconds since its last mail");
	is_str(hits[0].message, "account old: no report mail for 1 day 23 hours (last received 2024-03-01T01:00:00Z)",
	       "... message");
	is_int(run_store(&r, &b, 1, BASE + DAY + HOUR, s), 1, "asof day 1 01:00: old exactly 24 h silent");
	is_int(run_store(&r, &b, 1, BASE + DAY + HOUR - 1, s), 0, "one second earlier: not yet");
	is_int(run_store(&r, &b, 1, d2 + 20 * HOUR, s), 4, "asof day 2 20:00: everyone quiet for 24 h");

	/* Both conditions: one hit. */
	r.invalid_share = 40;
	is_int(run_store(&r, &b, 1, d2 + 20 * HOUR + 1, s), 4, "both: one hit per account");
	is_str(hits[3].message,
	       "account work: 4 of 10 report mails received on 2024-03-02 were invalid or untrusted (40 % >= 40 %); no "
	       "report mail for 1 day 10 hours (last received 2024-03-02T10:00:00Z)",
	       "... the message says both");

	is_int(run_store(&r, &b, 1, INT64_MAX, NULL), 0, "no store: nothing");

	dw_store_close(s);
	fb_free(&b);
	unlink(path);
	char p2[320];
	snprintf(p2, sizeof p2, "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof p2, "%s-shm", path);
	unlink(p2);
	rmdir(dir);
}

int
main(void)
{
	test_names();
	test_cidr();
	test_threshold();
	test_threshold_metrics();
	test_threshold_window_asof();
	test_threshold_ignore_scope_group();
	test_baseline();
	test_new_source();
	test_missing_reporter();
	test_policy_change();
	test_report_health();
	return done_testing();
}
