/*
 * rules.c - evaluating one rule on one settled day. See dw/rules.h.
 *
 * Every kind works the same way: walk the facts of the days it needs
 * (facts are sorted by day, so a day's facts are one binary search away),
 * keep the ones that had arrived by asof and that the rule's scope and
 * ignore lists let through, add them up per group, and call back for each
 * group whose condition holds. Groups are reported in the order of their
 * keys, so the output does not depend on how the facts were loaded.
 *
 * History is whatever the caller loaded: a rule that looks back (window,
 * baseline_days, lookback, of_days + silent_days, the previous policy)
 * sees only days inside the loaded range. The caller loads enough days
 * before the first judged one (evaluate.h, dw_rules_lookback).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <sqlite3.h>

#include "dw/rules.h"
#include "dw/util.h"

/* Comparing measured doubles with configured limits: 100.0 * 1 / 20 must
 * equal 5, not 5.000000000000001. */
#define EPS 1e-9

/* ------------------------------------------------------------------ */
/* Names                                                               */

static const char *const kind_names[] = {
	[DW_RULE_THRESHOLD] = "threshold",
	[DW_RULE_BASELINE] = "baseline",
	[DW_RULE_NEW_SOURCE] = "new_source",
	[DW_RULE_MISSING_REPORTER] = "missing_reporter",
	[DW_RULE_POLICY_CHANGE] = "policy_change",
	[DW_RULE_REPORT_HEALTH] = "report_health",
};

static const char *const metric_names[] = {
	[DW_M_MESSAGES] = "messages",
	[DW_M_DMARC_PASS] = "dmarc_pass",
	[DW_M_DMARC_FAIL] = "dmarc_fail",
	[DW_M_DMARC_FAIL_RATE] = "dmarc_fail_rate",
	[DW_M_DKIM_FAIL] = "dkim_fail",
	[DW_M_DKIM_FAIL_RATE] = "dkim_fail_rate",
	[DW_M_SPF_FAIL] = "spf_fail",
	[DW_M_SPF_FAIL_RATE] = "spf_fail_rate",
	[DW_M_QUARANTINED] = "quarantined",
	[DW_M_REJECTED] = "rejected",
	[DW_M_DMARC_PASS_RATE] = "dmarc_pass_rate",
};

/* What a person reads in a message. */
static const char *const metric_text[] = {
	[DW_M_MESSAGES] = "messages",
	[DW_M_DMARC_PASS] = "DMARC passes",
	[DW_M_DMARC_FAIL] = "DMARC failures",
	[DW_M_DMARC_FAIL_RATE] = "DMARC fail rate",
	[DW_M_DKIM_FAIL] = "DKIM failures",
	[DW_M_DKIM_FAIL_RATE] = "DKIM fail rate",
	[DW_M_SPF_FAIL] = "SPF failures",
	[DW_M_SPF_FAIL_RATE] = "SPF fail rate",
	[DW_M_QUARANTINED] = "quarantined messages",
	[DW_M_REJECTED] = "rejected messages",
	[DW_M_DMARC_PASS_RATE] = "DMARC pass rate",
};

const char *
dw_rule_kind_name(int kind)
{
	if (kind < DW_RULE_THRESHOLD || kind > DW_RULE_REPORT_HEALTH)
		return "unknown";
	return kind_names[kind];
}

const char *
dw_metric_name(int metric)
{
	if (metric < DW_M_MESSAGES || metric > DW_M_DMARC_PASS_RATE)
		return "unknown";
	return metric_names[metric];
}

static const char *
metric_label(int metric)
{
	if (metric < DW_M_MESSAGES || metric > DW_M_DMARC_PASS_RATE)
		return "unknown metric";
	return metric_text[metric];
}

int
dw_metric_is_rate(int metric)
{
	return metric == DW_M_DMARC_FAIL_RATE || metric == DW_M_DKIM_FAIL_RATE || metric == DW_M_SPF_FAIL_RATE ||
	       metric == DW_M_DMARC_PASS_RATE;
}

/* ------------------------------------------------------------------ */
/* Networks                                                            */

/* Parse an address; an IPv4-mapped IPv6 address is the IPv4 address. */
static int
parse_addr(const char *s, int *family, unsigned char addr[16])
{
	struct in6_addr a6;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(addr, a6.s6_addr + 12, 4);
		*family = AF_INET;
	} else {
		memcpy(addr, a6.s6_addr, 16);
		*family = AF_INET6;
	}
	return 0;
}

static void
mask_bits(unsigned char addr[16], unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned first = i * 8;
		if (bits >= first + 8)
			continue;
		addr[i] &= bits <= first ? 0 : (unsigned char)(0xff << (8 - (bits - first)));
	}
}

int
dw_cidr_parse(const char *s, struct dw_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash;
	struct in6_addr a6;
	unsigned bits = 0;
	size_t hl;
	int pfx = 0;

	if (s == NULL || out == NULL)
		return -1;
	slash = strchr(s, '/');
	hl = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof host)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t nd = strlen(p);
		/* 1 to 3 digits, no leading zero: "/024" is more likely a typo than 24. */
		if (nd == 0 || nd > 3 || (p[0] == '0' && nd > 1))
			return -1;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			bits = bits * 10 + (unsigned)(*p - '0');
		}
		pfx = 1;
	}
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		if (!pfx)
			bits = 32;
		if (bits > 32)
			return -1;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (!pfx)
			bits = 128;
		if (bits > 128)
			return -1;
		if (IN6_IS_ADDR_V4MAPPED(&a6) && bits >= 96) {
			/* ::ffff:192.0.2.0/120 is 192.0.2.0/24: addresses match as IPv4. */
			memcpy(out->addr, a6.s6_addr + 12, 4);
			out->family = AF_INET;
			bits -= 96;
		} else {
			memcpy(out->addr, a6.s6_addr, 16);
			out->family = AF_INET6;
		}
	} else {
		return -1;
	}
	out->bits = bits;
	mask_bits(out->addr, bits);
	return 0;
}

int
dw_cidr_match(const struct dw_cidr *c, const char *ip)
{
	unsigned char a[16];
	int family;
	if (c == NULL || ip == NULL || parse_addr(ip, &family, a) != 0)
		return -1;
	if (family != c->family)
		return 0;
	mask_bits(a, c->bits);
	return memcmp(a, c->addr, family == AF_INET ? 4 : 16) == 0;
}

/* The new_source network of an address: "192.0.2.0/24", "2001:db8::/56";
 * text that is not an address stands for itself. */
static void
network_of(const char *ip, char *buf, size_t len)
{
	unsigned char a[16];
	char txt[INET6_ADDRSTRLEN];
	int family;
	if (parse_addr(ip, &family, a) != 0) {
		snprintf(buf, len, "%s", ip);
		return;
	}
	mask_bits(a, family == AF_INET ? 24 : 56);
	if (inet_ntop(family, a, txt, sizeof txt) == NULL) {
		snprintf(buf, len, "%s", ip);
		return;
	}
	snprintf(buf, len, "%s/%d", txt, family == AF_INET ? 24 : 56);
}

/* ------------------------------------------------------------------ */
/* A small hash map: byte keys (copied) -> size_t                      */

struct slot {
	unsigned char *key; /* owned; NULL = empty */
	size_t klen;
	uint64_t h;
	size_t val;
};

struct map {
	struct slot *s;
	size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t
hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct slot *
map_slot(const struct map *m, const void *key, size_t klen, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);
	for (;;) {
		struct slot *s = &m->s[i];
		if (s->key == NULL || (s->h == h && s->klen == klen && memcmp(s->key, key, klen) == 0))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static size_t *
map_find(const struct map *m, const void *key, size_t klen)
{
	struct slot *s;
	if (m->cap == 0)
		return NULL;
	s = map_slot(m, key, klen, hash_bytes(key, klen));
	return s->key != NULL ? &s->val : NULL;
}

static void
map_put(struct map *m, const void *key, size_t klen, size_t val)
{
	uint64_t h = hash_bytes(key, klen);
	struct slot *s;
	if ((m->n + 1) * 2 > m->cap) {
		struct map bigger = {NULL, m->cap ? m->cap * 2 : 64, m->n};
		bigger.s = xcalloc(bigger.cap, sizeof *bigger.s);
		for (size_t i = 0; i < m->cap; i++)
			if (m->s[i].key != NULL)
				*map_slot(&bigger, m->s[i].key, m->s[i].klen, m->s[i].h) = m->s[i];
		free(m->s);
		*m = bigger;
	}
	s = map_slot(m, key, klen, h);
	if (s->key == NULL) {
		s->key = xmalloc(klen ? klen : 1);
		memcpy(s->key, key, klen);
		s->klen = klen;
		s->h = h;
		m->n++;
	}
	s->val = val;
}

static void
map_free(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->s[i].key);
	free(m->s);
	memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */

/* Append to a bounded buffer; silently truncates. */
DW_PRINTF(3, 4) static void
app(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* 1234567 -> "1,234,567" */
static const char *
fmt_count(uint64_t n, char *buf, size_t len)
{
	char tmp[24], out[32];
	int k = snprintf(tmp, sizeof tmp, "%" PRIu64, n);
	size_t o = 0;
	for (int i = 0; i < k; i++) {
		if (i > 0 && (k - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = tmp[i];
	}
	out[o] = '\0';
	snprintf(buf, len, "%s", out);
	return buf;
}

/* 12.5 -> "12.5", 5 -> "5", 33.3333 -> "33.33" */
static const char *
fmt_num(double v, char *buf, size_t len)
{
	char *dot;
	size_t n;
	snprintf(buf, len, "%.2f", v);
	if ((dot = strchr(buf, '.')) != NULL) {
		n = strlen(buf);
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	if (strcmp(buf, "-0") == 0)
		snprintf(buf, len, "0");
	return buf;
}

/* A metric's value as text: "12.5 %" or "1,234". */
static const char *
fmt_metric(int metric, double v, char *buf, size_t len)
{
	char n[40];
	if (dw_metric_is_rate(metric))
		snprintf(buf, len, "%s %%", fmt_num(v, n, sizeof n));
	else if (v >= 0 && v < 1e18 && fabs(v - floor(v)) < EPS)
		fmt_count((uint64_t)v, buf, len);
	else
		fmt_num(v, buf, len);
	return buf;
}

static const char *
fmt_duration(int64_t s, char *buf, size_t len)
{
	int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60;
	if (d > 0)
		snprintf(buf, len, "%" PRId64 " day%s %" PRId64 " hour%s", d, d == 1 ? "" : "s", h, h == 1 ? "" : "s");
	else if (h > 0)
		snprintf(buf, len, "%" PRId64 " hour%s %" PRId64 " minute%s", h, h == 1 ? "" : "s", m, m == 1 ? "" : "s");
	else
		snprintf(buf, len, "%" PRId64 " minute%s", m, m == 1 ? "" : "s");
	return buf;
}

static const char *
op_text(int op)
{
	switch (op) {
	case DW_OP_GE:
		return ">=";
	case DW_OP_LT:
		return "<";
	case DW_OP_LE:
		return "<=";
	default:
		return ">";
	}
}

static int
op_holds(int op, double v, double limit)
{
	switch (op) {
	case DW_OP_GE:
		return v >= limit - EPS;
	case DW_OP_LT:
		return v < limit - EPS;
	case DW_OP_LE:
		return v <= limit + EPS;
	default:
		return v > limit + EPS;
	}
}

/* ------------------------------------------------------------------ */
/* The facts a rule sees                                               */

struct view {
	const struct dw_rule_cfg *r;
	const struct dw_facts *f;
	int64_t asof;
	/* Per interned string, judged once: 0 not yet, 1 keep, 2 drop. */
	uint8_t *dom, *rep, *rsn, *src;
	/* new_source: the network (or IP) id of each source string. */
	uint32_t *net;        /* UINT32_MAX = not yet */
	char **nets;          /* id -> text, owned */
	size_t nnets, capnets;
	struct map netidx;    /* text -> id */
	int group_ip;
};

static const char *
str(const struct dw_facts *f, uint32_t i)
{
	return i < f->nstrs && f->strs[i] != NULL ? f->strs[i] : "";
}

static void
view_init(struct view *v, const struct dw_rule_cfg *r, const struct dw_rule_ctx *c)
{
	size_t n = c->f->nstrs ? c->f->nstrs : 1;
	memset(v, 0, sizeof *v);
	v->r = r;
	v->f = c->f;
	v->asof = c->asof;
	v->dom = xcalloc(n, 1);
	v->rep = xcalloc(n, 1);
	v->rsn = xcalloc(n, 1);
	v->src = xcalloc(n, 1);
}

static void
view_free(struct view *v)
{
	free(v->dom);
	free(v->rep);
	free(v->rsn);
	free(v->src);
	free(v->net);
	for (size_t i = 0; i < v->nnets; i++)
		free(v->nets[i]);
	free(v->nets);
	map_free(&v->netidx);
}

static int
in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] != NULL && strcasecmp(list[i], s) == 0)
			return 1;
	return 0;
}

static int
domain_ok(struct view *v, uint32_t i)
{
	if (i >= v->f->nstrs)
		return 0;
	if (v->r->ndomains == 0)
		return 1;
	if (v->dom[i] == 0)
		v->dom[i] = in_list(v->r->domains, v->r->ndomains, str(v->f, i)) ? 1 : 2;
	return v->dom[i] == 1;
}

static int
reporter_ok(struct view *v, uint32_t i)
{
	if (i >= v->f->nstrs)
		return 0;
	if (v->r->nignore_reporters == 0)
		return 1;
	if (v->rep[i] == 0)
		v->rep[i] = in_list(v->r->ignore_reporters, v->r->nignore_reporters, str(v->f, i)) ? 2 : 1;
	return v->rep[i] == 1;
}

static int
reason_ok(struct view *v, uint32_t i)
{
	if (i == DW_NO_STR || v->r->nignore_reasons == 0)
		return 1;
	if (i >= v->f->nstrs)
		return 1;
	if (v->rsn[i] == 0)
		v->rsn[i] = in_list(v->r->ignore_reasons, v->r->nignore_reasons, str(v->f, i)) ? 2 : 1;
	return v->rsn[i] == 1;
}

static int
source_ok(struct view *v, uint32_t i)
{
	if (i >= v->f->nstrs)
		return 0;
	if (v->r->nignore_sources == 0)
		return 1;
	if (v->src[i] == 0) {
		v->src[i] = 1;
		for (size_t k = 0; k < v->r->nignore_sources; k++)
			if (dw_cidr_match(&v->r->ignore_sources[k], str(v->f, i)) == 1) {
				v->src[i] = 2;
				break;
			}
	}
	return v->src[i] == 1;
}

/* Known by asof, in scope, not ignored. */
static int
keep_fact(struct view *v, const struct dw_fact *x)
{
	return x->received <= v->asof && domain_ok(v, x->domain) && reporter_ok(v, x->reporter) &&
	       reason_ok(v, x->reason) && source_ok(v, x->source);
}

/* Policy facts carry no source or reason: only time, scope and reporter apply. */
static int
keep_pol(struct view *v, const struct dw_policy_fact *p)
{
	return p->received <= v->asof && domain_ok(v, p->domain) && reporter_ok(v, p->reporter);
}

/* The first fact (policy fact) of a day or later: facts are sorted by day. */
static size_t
fact_lb(const struct dw_facts *f, size_t day)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].day < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t
pol_lb(const struct dw_facts *f, size_t day)
{
	size_t lo = 0, hi = f->npol;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->pol[mid].day < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The network id of a source string (new_source). */
static uint32_t
net_id(struct view *v, uint32_t src)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *key;
	size_t *found;
	if (v->net[src] != UINT32_MAX)
		return v->net[src];
	if (v->group_ip) {
		key = str(v->f, src);
	} else {
		network_of(str(v->f, src), buf, sizeof buf);
		key = buf;
	}
	if ((found = map_find(&v->netidx, key, strlen(key))) != NULL) {
		v->net[src] = (uint32_t)*found;
	} else {
		if (v->nnets == v->capnets) {
			v->capnets = v->capnets ? v->capnets * 2 : 64;
			v->nets = xreallocarray(v->nets, v->capnets, sizeof *v->nets);
		}
		v->nets[v->nnets] = xstrdup(key);
		map_put(&v->netidx, key, strlen(key), v->nnets);
		v->net[src] = (uint32_t)v->nnets++;
	}
	return v->net[src];
}

/* ------------------------------------------------------------------ */
/* Groups with per-day counts                                          */

struct counts {
	uint64_t msgs, pass, fail, dkim_fail, spf_fail, quar, rej;
	int present; /* something (a fact or a policy fact) was seen */
};

static void
count_fact(struct counts *c, const struct dw_fact *x)
{
	c->present = 1;
	c->msgs += x->count;
	if (x->dmarc_pass)
		c->pass += x->count;
	else
		c->fail += x->count;
	if (!x->dkim_pass)
		c->dkim_fail += x->count;
	if (!x->spf_pass)
		c->spf_fail += x->count;
	if (x->disposition == DW_DISP_QUARANTINE)
		c->quar += x->count;
	else if (x->disposition == DW_DISP_REJECT)
		c->rej += x->count;
}

static int
metric_value(int metric, const struct counts *c, double *out)
{
	double m = (double)c->msgs;
	switch (metric) {
	case DW_M_MESSAGES:
		*out = m;
		return 1;
	case DW_M_DMARC_PASS:
		*out = (double)c->pass;
		return 1;
	case DW_M_DMARC_FAIL:
		*out = (double)c->fail;
		return 1;
	case DW_M_DKIM_FAIL:
		*out = (double)c->dkim_fail;
		return 1;
	case DW_M_SPF_FAIL:
		*out = (double)c->spf_fail;
		return 1;
	case DW_M_QUARANTINED:
		*out = (double)c->quar;
		return 1;
	case DW_M_REJECTED:
		*out = (double)c->rej;
		return 1;
	default:
		break;
	}
	if (c->msgs == 0)
		return 0;
	switch (metric) {
	case DW_M_DMARC_FAIL_RATE:
		*out = 100.0 * (double)c->fail / m;
		return 1;
	case DW_M_DKIM_FAIL_RATE:
		*out = 100.0 * (double)c->dkim_fail / m;
		return 1;
	case DW_M_SPF_FAIL_RATE:
		*out = 100.0 * (double)c->spf_fail / m;
		return 1;
	case DW_M_DMARC_PASS_RATE:
		*out = 100.0 * (double)c->pass / m;
		return 1;
	default:
		return 0;
	}
}

/* Groups keyed by (domain, x): x is a source, a reporter, a network id or
 * DW_NO_STR. Each has `width` consecutive day slots. */
struct table {
	struct map idx;
	uint32_t *dom, *x;
	struct counts *c;
	size_t n, cap, width;
};

static size_t
table_group(struct table *t, uint32_t dom, uint32_t x)
{
	uint32_t k[2] = {dom, x};
	size_t *found = map_find(&t->idx, k, sizeof k);
	if (found != NULL)
		return *found;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->dom = xreallocarray(t->dom, t->cap, sizeof *t->dom);
		t->x = xreallocarray(t->x, t->cap, sizeof *t->x);
		t->c = xreallocarray(t->c, t->cap * t->width, sizeof *t->c);
	}
	t->dom[t->n] = dom;
	t->x[t->n] = x;
	memset(&t->c[t->n * t->width], 0, t->width * sizeof *t->c);
	map_put(&t->idx, k, sizeof k, t->n);
	return t->n++;
}

static struct counts *
table_slot(struct table *t, size_t g, size_t k)
{
	return &t->c[g * t->width + k];
}

static void
table_free(struct table *t)
{
	map_free(&t->idx);
	free(t->dom);
	free(t->x);
	free(t->c);
}

/* Groups in the order of their keys. */
struct gkey {
	char *key; /* owned: the group's key text */
	size_t g;
};

static int
gkey_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gkey *)a)->key, ((const struct gkey *)b)->key);
}

/* xtext(v, x) gives the second part of the key, or NULL for none. */
static struct gkey *
sorted_groups(const struct table *t, struct view *v, const char *(*xtext)(struct view *, uint32_t))
{
	struct gkey *k = xcalloc(t->n ? t->n : 1, sizeof *k);
	for (size_t g = 0; g < t->n; g++) {
		const char *x = xtext(v, t->x[g]);
		k[g].g = g;
		k[g].key = x != NULL ? xasprintf("%s|%s", str(v->f, t->dom[g]), x) : xstrdup(str(v->f, t->dom[g]));
	}
	qsort(k, t->n, sizeof *k, gkey_cmp);
	return k;
}

static void
gkeys_free(struct gkey *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(k[i].key);
	free(k);
}

static const char *
xtext_str(struct view *v, uint32_t x)
{
	return x == DW_NO_STR ? NULL : str(v->f, x);
}

static const char *
xtext_net(struct view *v, uint32_t x)
{
	return x < v->nnets ? v->nets[x] : "";
}

/* The group part of a fact for threshold and baseline. */
static uint32_t
group_x(const struct dw_rule_cfg *r, const struct dw_fact *x)
{
	switch (r->group) {
	case DW_GROUP_SOURCE:
		return x->source;
	case DW_GROUP_REPORTER:
		return x->reporter;
	default:
		return DW_NO_STR;
	}
}

/* "example.com", "example.com, source 192.0.2.1", "example.com, reporter Google" */
static void
group_label(const struct dw_rule_cfg *r, struct view *v, uint32_t dom, uint32_t x, char *buf, size_t len)
{
	if (x == DW_NO_STR)
		snprintf(buf, len, "%s", str(v->f, dom));
	else
		snprintf(buf, len, "%s, %s %s", str(v->f, dom), r->group == DW_GROUP_REPORTER ? "reporter" : "source",
		         str(v->f, x));
}

static void
hit_init(struct dw_rule_hit *h, const struct dw_rule_cfg *r, const char *group, const char *domain)
{
	memset(h, 0, sizeof *h);
	h->rule = r;
	snprintf(h->group, sizeof h->group, "%s", group);
	snprintf(h->domain, sizeof h->domain, "%s", domain);
	h->baseline = NAN;
}

/* ------------------------------------------------------------------ */
/* Top sources                                                         */

enum { BY_ALL = 0, BY_SOURCE, BY_REPORTER, BY_NET };

struct topq {
	uint32_t domain;
	int by;      /* BY_* */
	uint32_t x;  /* the source, reporter or network id */
	int all;     /* rank every source by messages (new_source), else failing sources by failures */
};

struct tent {
	uint32_t src;
	uint64_t fails, msgs;
	uint64_t k1, k2; /* the ranking */
	const char *ip;
	const struct dw_fact *best; /* its largest (failing) row: results, header_from, reporter */
};

static int
tent_cmp(const void *a, const void *b)
{
	const struct tent *x = a, *y = b;
	if (x->k1 != y->k1)
		return x->k1 > y->k1 ? -1 : 1;
	if (x->k2 != y->k2)
		return x->k2 > y->k2 ? -1 : 1;
	return strcmp(x->ip, y->ip);
}

static void
top_sources(struct view *v, size_t lo, size_t hi, const struct topq *q, struct dw_rule_hit *hit)
{
	const struct dw_facts *f = v->f;
	struct map idx = {0};
	struct tent *e = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = fact_lb(f, lo); i < f->n && f->v[i].day <= hi; i++) {
		const struct dw_fact *x = &f->v[i];
		struct tent *t;
		size_t *found;
		if (x->domain != q->domain || !keep_fact(v, x))
			continue;
		if ((q->by == BY_SOURCE && x->source != q->x) || (q->by == BY_REPORTER && x->reporter != q->x) ||
		    (q->by == BY_NET && net_id(v, x->source) != q->x))
			continue;
		if ((found = map_find(&idx, &x->source, sizeof x->source)) != NULL) {
			t = &e[*found];
		} else {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				e = xreallocarray(e, cap, sizeof *e);
			}
			map_put(&idx, &x->source, sizeof x->source, n);
			t = &e[n++];
			memset(t, 0, sizeof *t);
			t->src = x->source;
			t->ip = str(f, x->source);
		}
		t->msgs += x->count;
		if (!x->dmarc_pass)
			t->fails += x->count;
		if ((q->all || !x->dmarc_pass) && (t->best == NULL || x->count > t->best->count))
			t->best = x;
	}
	for (size_t i = 0; i < n; i++) {
		e[i].k1 = q->all ? e[i].msgs : e[i].fails;
		e[i].k2 = q->all ? e[i].fails : e[i].msgs;
	}
	if (n > 1)
		qsort(e, n, sizeof *e, tent_cmp);
	hit->ntop = 0;
	for (size_t i = 0; i < n && hit->ntop < DW_RULE_TOP; i++) {
		struct dw_top_source *t = &hit->top[hit->ntop];
		if (e[i].best == NULL || (!q->all && e[i].fails == 0))
			continue;
		snprintf(t->ip, sizeof t->ip, "%s", e[i].ip);
		t->count = q->all ? e[i].msgs : e[i].fails;
		snprintf(t->spf, sizeof t->spf, "%s", e[i].best->spf_pass ? "pass" : "fail");
		snprintf(t->dkim, sizeof t->dkim, "%s", e[i].best->dkim_pass ? "pass" : "fail");
		snprintf(t->header_from, sizeof t->header_from, "%s",
		         e[i].best->header_from != DW_NO_STR ? str(f, e[i].best->header_from) : "");
		snprintf(t->reporter, sizeof t->reporter, "%s", str(f, e[i].best->reporter));
		hit->ntop++;
	}
	free(e);
	map_free(&idx);
}

static struct topq
group_topq(const struct dw_rule_cfg *r, uint32_t dom, uint32_t x)
{
	struct topq q = {dom, BY_ALL, x, 0};
	if (x != DW_NO_STR)
		q.by = r->group == DW_GROUP_REPORTER ? BY_REPORTER : BY_SOURCE;
	return q;
}

/* ------------------------------------------------------------------ */
/* threshold                                                           */

static int
eval_threshold(struct view *v, size_t day, dw_rule_cb cb, void *arg)
{
	const struct dw_rule_cfg *r = v->r;
	const struct dw_facts *f = v->f;
	unsigned window = r->window ? r->window : 1;
	size_t lo = day + 1 >= window ? day + 1 - window : 0;
	struct table t = {.width = 1};
	struct gkey *keys;
	int stop = 0;

	for (size_t i = fact_lb(f, lo); i < f->n && f->v[i].day <= day; i++) {
		const struct dw_fact *x = &f->v[i];
		if (keep_fact(v, x))
			count_fact(table_slot(&t, table_group(&t, x->domain, group_x(r, x)), 0), x);
	}
	keys = sorted_groups(&t, v, xtext_str);
	for (size_t k = 0; k < t.n && !stop; k++) {
		size_t g = keys[k].g;
		const struct counts *c = table_slot(&t, g, 0);
		char label[400], val[48], lim[48], msgs[32];
		struct dw_rule_hit hit;
		struct topq q;
		double value;
		if (c->msgs < r->min_messages || !metric_value(r->metric, c, &value) || !op_holds(r->op, value, r->value))
			continue;
		hit_init(&hit, r, keys[k].key, str(f, t.dom[g]));
		hit.value = value;
		hit.threshold = r->value;
		hit.messages = c->msgs;
		group_label(r, v, t.dom[g], t.x[g], label, sizeof label);
		snprintf(hit.message, sizeof hit.message, "%s: %s %s %s %s over %u day%s (%s messages)", label,
		         metric_label(r->metric), fmt_metric(r->metric, value, val, sizeof val), op_text(r->op),
		         fmt_metric(r->metric, r->value, lim, sizeof lim), window, window == 1 ? "" : "s",
		         fmt_count(c->msgs, msgs, sizeof msgs));
		/* Over the window: with 7 days the offenders may not be on the last one. */
		q = group_topq(r, t.dom[g], t.x[g]);
		top_sources(v, lo, day, &q, &hit);
		stop = cb(arg, &hit) != 0;
	}
	gkeys_free(keys, t.n);
	table_free(&t);
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* baseline                                                            */

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
stat_of(double *v, size_t n, int mean)
{
	double s = 0;
	if (mean) {
		for (size_t i = 0; i < n; i++)
			s += v[i];
		return s / (double)n;
	}
	qsort(v, n, sizeof *v, dbl_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int
eval_baseline(struct view *v, size_t day, dw_rule_cb cb, void *arg)
{
	const struct dw_rule_cfg *r = v->r;
	const struct dw_facts *f = v->f;
	unsigned bdays = r->baseline_days ? r->baseline_days : 14;
	size_t lo = day >= bdays ? day - bdays : 0;
	struct table t = {.width = day - lo + 1};
	const char *statname = r->use_mean ? "mean" : "median";
	double *vals = xcalloc(t.width, sizeof *vals);
	struct gkey *keys;
	int stop = 0;

	for (size_t i = fact_lb(f, lo); i < f->n && f->v[i].day <= day; i++) {
		const struct dw_fact *x = &f->v[i];
		if (keep_fact(v, x))
			count_fact(table_slot(&t, table_group(&t, x->domain, group_x(r, x)), x->day - lo), x);
	}
	keys = sorted_groups(&t, v, xtext_str);
	for (size_t k = 0; k < t.n && !stop; k++) {
		size_t g = keys[k].g, nb = 0;
		const struct counts *today = table_slot(&t, g, day - lo);
		char label[400], a[48], b[48], c[48], d[48];
		char drop_msg[256] = "", vol_msg[256] = "";
		double rate = 0, brate = 0, bvol = 0, change = 0, pct = 0;
		int drop_fires = 0, vol_fires = 0;
		struct dw_rule_hit hit;
		struct topq q;

		if (today->msgs < r->min_messages)
			continue;
		for (size_t s = 0; s + lo < day; s++)
			if (table_slot(&t, g, s)->msgs > 0)
				nb++;
		if (nb < 3)
			continue;
		group_label(r, v, t.dom[g], t.x[g], label, sizeof label);
		if (r->drop_points > 0 && today->msgs > 0) {
			size_t m = 0;
			for (size_t s = 0; s + lo < day; s++) {
				const struct counts *bc = table_slot(&t, g, s);
				if (bc->msgs > 0)
					vals[m++] = 100.0 * (double)bc->pass / (double)bc->msgs;
			}
			brate = stat_of(vals, m, r->use_mean);
			rate = 100.0 * (double)today->pass / (double)today->msgs;
			if (brate - rate >= r->drop_points - EPS) {
				drop_fires = 1;
				snprintf(drop_msg, sizeof drop_msg,
				         "DMARC pass rate %s %% on %s, down %s points from the %u-day %s of %s %% (%zu days "
				         "with data; fires at %s points)",
				         fmt_num(rate, a, sizeof a), f->days[day], fmt_num(brate - rate, b, sizeof b), bdays,
				         statname, fmt_num(brate, c, sizeof c), nb, fmt_num(r->drop_points, d, sizeof d));
			}
		}
		if (r->volume_pct > 0) {
			size_t m = 0;
			for (size_t s = 0; s + lo < day; s++) {
				const struct counts *bc = table_slot(&t, g, s);
				if (bc->msgs > 0)
					vals[m++] = (double)bc->msgs;
			}
			bvol = stat_of(vals, m, r->use_mean);
			change = (double)today->msgs - bvol;
			pct = bvol > 0 ? 100.0 * change / bvol : 0;
			if (bvol > 0 && fabs(pct) >= r->volume_pct - EPS && fabs(change) >= (double)r->volume_min - EPS) {
				char e[48];
				vol_fires = 1;
				snprintf(vol_msg, sizeof vol_msg,
				         "%s messages on %s, %s %s %% from the %u-day %s of %s (fires at %s %% and %s "
				         "messages)",
				         fmt_count(today->msgs, a, sizeof a), f->days[day], change >= 0 ? "up" : "down",
				         fmt_num(fabs(pct), b, sizeof b), bdays, statname,
				         fmt_metric(DW_M_MESSAGES, bvol, c, sizeof c),
				         fmt_num(r->volume_pct, d, sizeof d), fmt_count(r->volume_min, e, sizeof e));
			}
		}
		if (!drop_fires && !vol_fires)
			continue;
		hit_init(&hit, r, keys[k].key, str(f, t.dom[g]));
		hit.messages = today->msgs;
		if (drop_fires) {
			hit.value = brate - rate;
			hit.threshold = r->drop_points;
			hit.baseline = brate;
		} else {
			hit.value = pct;
			hit.threshold = r->volume_pct;
			hit.baseline = bvol;
		}
		snprintf(hit.message, sizeof hit.message, "%s: %s%s%s", label, drop_msg, drop_fires && vol_fires ? "; " : "",
		         vol_msg);
		q = group_topq(r, t.dom[g], t.x[g]);
		top_sources(v, day, day, &q, &hit);
		stop = cb(arg, &hit) != 0;
	}
	gkeys_free(keys, t.n);
	table_free(&t);
	free(vals);
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* new_source                                                          */

static int
eval_new_source(struct view *v, size_t day, dw_rule_cb cb, void *arg)
{
	const struct dw_rule_cfg *r = v->r;
	const struct dw_facts *f = v->f;
	unsigned lookback = r->lookback ? r->lookback : 30;
	size_t lo = day >= lookback ? day - lookback : 0;
	struct table t = {.width = 1}, seen = {.width = 1};
	struct gkey *keys;
	int stop = 0;

	/* A domain with no earlier facts in the lookback has no history to be
	 * new against (the first days of a history): nothing is "new" there. */
	unsigned char *known = xcalloc(f->nstrs + 1, 1);
	v->group_ip = r->group_ip;
	v->net = xmalloc((f->nstrs ? f->nstrs : 1) * sizeof *v->net);
	memset(v->net, 0xff, (f->nstrs ? f->nstrs : 1) * sizeof *v->net);

	for (size_t i = fact_lb(f, lo); i < f->n && f->v[i].day <= day; i++) {
		const struct dw_fact *x = &f->v[i];
		if (!keep_fact(v, x))
			continue;
		if (x->day < day) {
			table_group(&seen, x->domain, net_id(v, x->source));
			if (x->domain < f->nstrs)
				known[x->domain] = 1;
		} else
			count_fact(table_slot(&t, table_group(&t, x->domain, net_id(v, x->source)), 0), x);
	}
	keys = sorted_groups(&t, v, xtext_net);
	for (size_t k = 0; k < t.n && !stop; k++) {
		size_t g = keys[k].g;
		const struct counts *c = table_slot(&t, g, 0);
		uint32_t key[2] = {t.dom[g], t.x[g]};
		char msgs[32], share[48];
		struct dw_rule_hit hit;
		struct topq q = {t.dom[g], BY_NET, t.x[g], 1};
		int passes;
		if (map_find(&seen.idx, key, sizeof key) != NULL || c->msgs < r->min_messages || c->msgs == 0 ||
		    t.dom[g] >= f->nstrs || !known[t.dom[g]])
			continue;
		/* Mostly passing means more than half; a tie counts as failing. */
		passes = c->pass * 2 > c->msgs;
		if ((r->passing == 1 && !passes) || (r->passing == 0 && passes))
			continue;
		hit_init(&hit, r, keys[k].key, str(f, t.dom[g]));
		hit.value = (double)c->msgs;
		hit.threshold = (double)r->min_messages;
		hit.messages = c->msgs;
		fmt_num(100.0 * (double)(passes ? c->pass : c->fail) / (double)c->msgs, share, sizeof share);
		snprintf(hit.message, sizeof hit.message,
		         "%s: new source %s sent %s messages on %s, not seen in the previous %u days; %s %% %s DMARC (%s)",
		         str(f, t.dom[g]), v->nets[t.x[g]], fmt_count(c->msgs, msgs, sizeof msgs), f->days[day], lookback,
		         share, passes ? "pass" : "fail", passes ? "a new legitimate sender?" : "a spoofer?");
		top_sources(v, day, day, &q, &hit);
		stop = cb(arg, &hit) != 0;
	}
	gkeys_free(keys, t.n);
	table_free(&t);
	table_free(&seen);
	free(known);
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* missing_reporter                                                    */

/* A reporter is judged "regular" over the of_days days that end on the
 * last day it reported, not over a window sliding with today: otherwise a
 * reporter that stays silent stops looking regular after a few days and
 * its alert resolves while it is still gone. A silence is followed for
 * DW_MISSING_TRACK_DAYS days beyond silent_days + of_days (what
 * dw_rules_lookback loads); after that the reporter is forgotten. */
static int
eval_missing_reporter(struct view *v, size_t day, dw_rule_cb cb, void *arg)
{
	const struct dw_rule_cfg *r = v->r;
	const struct dw_facts *f = v->f;
	unsigned silent = r->silent_days ? r->silent_days : 1;
	unsigned of = r->of_days ? r->of_days : 14;
	unsigned need = r->seen_days ? r->seen_days : 1;
	size_t span = (size_t)silent + of + DW_MISSING_TRACK_DAYS, wlo;
	struct table t;
	struct gkey *keys;
	int stop = 0;

	if (day < silent)
		return DW_OK; /* the silence would start before the loaded range */
	wlo = day + 1 >= span ? day + 1 - span : 0;
	memset(&t, 0, sizeof t);
	t.width = day - wlo + 1;
	for (size_t i = fact_lb(f, wlo); i < f->n && f->v[i].day <= day; i++) {
		const struct dw_fact *x = &f->v[i];
		if (keep_fact(v, x))
			count_fact(table_slot(&t, table_group(&t, x->domain, x->reporter), x->day - wlo), x);
	}
	/* A report whose rows were all ignored still shows the reporter is alive. */
	for (size_t i = pol_lb(f, wlo); i < f->npol && f->pol[i].day <= day; i++) {
		const struct dw_policy_fact *p = &f->pol[i];
		if (keep_pol(v, p))
			table_slot(&t, table_group(&t, p->domain, p->reporter), p->day - wlo)->present = 1;
	}
	keys = sorted_groups(&t, v, xtext_str);
	for (size_t k = 0; k < t.n && !stop; k++) {
		size_t g = keys[k].g, nseen = 0, last = 0, from;
		int any = 0;
		uint64_t msgs = 0;
		char m[32];
		struct dw_rule_hit hit;
		for (size_t d = day + 1; d-- > wlo;)
			if (table_slot(&t, g, d - wlo)->present) {
				last = d;
				any = 1;
				break;
			}
		if (!any || day - last < silent)
			continue; /* never seen in the range, or seen lately */
		from = last + 1 >= wlo + of ? last + 1 - of : wlo;
		for (size_t d = from; d <= last; d++) {
			const struct counts *c = table_slot(&t, g, d - wlo);
			if (c->present) {
				nseen++;
				msgs += c->msgs;
			}
		}
		if (nseen < need)
			continue;
		hit_init(&hit, r, keys[k].key, str(f, t.dom[g]));
		hit.value = (double)(day - last);
		hit.threshold = silent;
		hit.messages = msgs;
		snprintf(hit.message, sizeof hit.message,
		         "%s: reporter %s: no reports for the %zu days after %s (it reported on %zu of the %zu days "
		         "%s..%s, %s messages)",
		         str(f, t.dom[g]), str(f, t.x[g]), day - last, f->days[last], nseen, last - from + 1, f->days[from],
		         f->days[last], fmt_count(msgs, m, sizeof m));
		stop = cb(arg, &hit) != 0;
	}
	gkeys_free(keys, t.n);
	table_free(&t);
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* policy_change                                                       */

#define NFIELDS 7
static const char *const field_names[NFIELDS] = {"p", "sp", "np", "adkim", "aspf", "pct", "testing"};

/* One field's value: a string, or pct as a number; unknown when both are unset. */
struct fv {
	const char *s;
	int n;
};

static const char *
optstr(const struct dw_facts *f, uint32_t i)
{
	const char *s = i != DW_NO_STR ? str(f, i) : "";
	return *s ? s : NULL;
}

/*
 * p, sp and np are unknown when a reporter leaves them out (many do not
 * report np, some not sp), so an omission is neither a change nor a
 * disagreement. adkim, aspf, pct and testing have defaults (r, r, 100, n):
 * leaving them out means the default.
 */
static struct fv
field(const struct dw_facts *f, const struct dw_policy_fact *p, int i)
{
	struct fv x = {NULL, INT_MIN};
	const char *s;
	switch (i) {
	case 0:
		x.s = optstr(f, p->p);
		break;
	case 1:
		x.s = optstr(f, p->sp);
		break;
	case 2:
		x.s = optstr(f, p->np);
		break;
	case 3:
		x.s = (s = optstr(f, p->adkim)) != NULL ? s : "r";
		break;
	case 4:
		x.s = (s = optstr(f, p->aspf)) != NULL ? s : "r";
		break;
	case 5:
		x.n = p->pct < 0 ? 100 : p->pct;
		break;
	default:
		x.s = (s = optstr(f, p->testing)) != NULL ? s : "n";
		break;
	}
	return x;
}

static int
fv_known(struct fv a)
{
	return a.s != NULL || a.n != INT_MIN;
}

static int
fv_eq(struct fv a, struct fv b)
{
	if (a.s != NULL || b.s != NULL)
		return a.s != NULL && b.s != NULL && strcasecmp(a.s, b.s) == 0;
	return a.n == b.n;
}

static const char *
fv_text(struct fv a, char *buf, size_t len)
{
	if (a.s != NULL)
		snprintf(buf, len, "%.60s", a.s);
	else if (a.n != INT_MIN)
		snprintf(buf, len, "%d", a.n);
	else
		snprintf(buf, len, "(unset)");
	return buf;
}

/* A reporter's policy for a domain on a day: its latest report's. */
struct pref {
	const struct dw_policy_fact *p;
	const char *dom, *rep;
};

static int
pref_cmp(const void *a, const void *b)
{
	const struct pref *x = a, *y = b;
	int c;
	if ((c = strcmp(x->dom, y->dom)) != 0 || (c = strcmp(x->rep, y->rep)) != 0)
		return c;
	if (x->p->received != y->p->received)
		return x->p->received < y->p->received ? -1 : 1;
	return x->p->report < y->p->report ? -1 : x->p->report > y->p->report;
}

/* The kept policy facts of a day (for one domain, or every domain when
 * domain is DW_NO_STR), one per (domain, reporter): its latest. Sorted by
 * domain, reporter. */
static size_t
day_policies(struct view *v, size_t day, uint32_t domain, struct pref **out)
{
	const struct dw_facts *f = v->f;
	struct pref *p = NULL;
	size_t n = 0, cap = 0, w = 0;
	for (size_t i = pol_lb(f, day); i < f->npol && f->pol[i].day == day; i++) {
		const struct dw_policy_fact *x = &f->pol[i];
		if ((domain != DW_NO_STR && x->domain != domain) || !keep_pol(v, x))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			p = xreallocarray(p, cap, sizeof *p);
		}
		p[n].p = x;
		p[n].dom = str(f, x->domain);
		p[n].rep = str(f, x->reporter);
		n++;
	}
	if (n > 1)
		qsort(p, n, sizeof *p, pref_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(p[i].dom, p[i + 1].dom) == 0 && strcmp(p[i].rep, p[i + 1].rep) == 0)
			continue; /* a later report of the same reporter follows */
		p[w++] = p[i];
	}
	*out = p;
	return w;
}

/* The distinct known values of one field among reporters. */
struct fvals {
	struct fv v[64];
	size_t count[64];
	int64_t latest[64];
	size_t n;
};

static void
field_values(const struct dw_facts *f, const struct pref *p, size_t n, int i, struct fvals *out)
{
	out->n = 0;
	for (size_t k = 0; k < n; k++) {
		struct fv x = field(f, p[k].p, i);
		size_t j;
		if (!fv_known(x))
			continue;
		for (j = 0; j < out->n && !fv_eq(out->v[j], x); j++)
			;
		if (j == out->n) {
			if (out->n == 64)
				continue;
			out->v[j] = x;
			out->count[j] = 0;
			out->latest[j] = INT64_MIN;
			out->n++;
		}
		out->count[j]++;
		if (p[k].p->received > out->latest[j])
			out->latest[j] = p[k].p->received;
	}
}

/* The majority value: most reporters, then the most recent report, then
 * alphabetical, so the answer never depends on the order of facts. */
static struct fv
majority(const struct fvals *fv)
{
	struct fv none = {NULL, INT_MIN};
	size_t best = 0;
	char a[80], b[80];
	if (fv->n == 0)
		return none;
	for (size_t j = 1; j < fv->n; j++) {
		int better = fv->count[j] > fv->count[best] ||
		             (fv->count[j] == fv->count[best] &&
		              (fv->latest[j] > fv->latest[best] ||
		               (fv->latest[j] == fv->latest[best] &&
		                strcasecmp(fv_text(fv->v[j], a, sizeof a), fv_text(fv->v[best], b, sizeof b)) < 0)));
		if (better)
			best = j;
	}
	return fv->v[best];
}

static int
eval_policy_change(struct view *v, size_t day, dw_rule_cb cb, void *arg)
{
	const struct dw_rule_cfg *r = v->r;
	const struct dw_facts *f = v->f;
	struct pref *cur = NULL;
	size_t n = day_policies(v, day, DW_NO_STR, &cur);
	struct fvals *vals = xmalloc(sizeof *vals), *pvals = xmalloc(sizeof *pvals);
	int stop = 0;

	for (size_t s = 0; s < n && !stop;) {
		size_t e = s;
		uint32_t dom = cur[s].p->domain;
		struct pref *prev = NULL;
		size_t nprev = 0, prevday = 0, nchanged = 0, ndis = 0;
		char changes[512] = "", dis[512] = "", a[80], b[80];
		struct dw_rule_hit hit;
		uint64_t msgs = 0;

		while (e < n && strcmp(cur[e].dom, cur[s].dom) == 0)
			e++;
		for (size_t d = day; d-- > 0 && nprev == 0;) {
			free(prev);
			prev = NULL;
			nprev = day_policies(v, d, dom, &prev);
			prevday = d;
		}
		for (int i = 0; i < NFIELDS; i++) {
			struct fv now;
			field_values(f, cur + s, e - s, i, vals);
			now = majority(vals);
			if (nprev > 0 && fv_known(now)) {
				struct fv before;
				field_values(f, prev, nprev, i, pvals);
				before = majority(pvals);
				if (fv_known(before) && !fv_eq(before, now)) {
					app(changes, sizeof changes, "%s%s: %s -> %s", nchanged ? ", " : "", field_names[i],
					    fv_text(before, a, sizeof a), fv_text(now, b, sizeof b));
					nchanged++;
				}
			}
			if (r->disagree && vals->n > 1) {
				app(dis, sizeof dis, "%s%s: ", ndis ? "; " : "", field_names[i]);
				/* The most common value first. */
				size_t order[64], no = 0;
				for (size_t cnt = e - s; cnt > 0; cnt--)
					for (size_t j = 0; j < vals->n; j++)
						if (vals->count[j] == cnt)
							order[no++] = j;
				for (size_t oi = 0; oi < no; oi++) {
					size_t j = order[oi], listed = 0;
					app(dis, sizeof dis, "%s%s (", oi ? " vs " : "", fv_text(vals->v[j], a, sizeof a));
					for (size_t k = s; k < e; k++)
						if (fv_eq(field(f, cur[k].p, i), vals->v[j]))
							app(dis, sizeof dis, "%s%.60s", listed++ ? ", " : "", cur[k].rep);
					app(dis, sizeof dis, ")");
				}
				ndis++;
			}
		}
		free(prev);
		if (nchanged > 0 || ndis > 0) {
			for (size_t i = fact_lb(f, day); i < f->n && f->v[i].day == day; i++)
				if (f->v[i].domain == dom && keep_fact(v, &f->v[i]))
					msgs += f->v[i].count;
			hit_init(&hit, r, cur[s].dom, cur[s].dom);
			hit.value = (double)(nchanged + ndis);
			hit.threshold = 0;
			hit.messages = msgs;
			snprintf(hit.message, sizeof hit.message, "%s: ", cur[s].dom);
			if (nchanged > 0)
				app(hit.message, sizeof hit.message, "policy_published changed on %s (since %s): %s", f->days[day],
				    f->days[prevday], changes);
			if (ndis > 0)
				app(hit.message, sizeof hit.message, "%sreporters disagree on %s: %s", nchanged ? "; " : "",
				    f->days[day], dis);
			stop = cb(arg, &hit) != 0;
		}
		s = e;
	}
	free(vals);
	free(pvals);
	free(cur);
	return DW_OK;
}

/* ------------------------------------------------------------------ */
/* report_health                                                       */

static const char *
fmt_utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}

/*
 * Mails count by when they were received (INTERNALDATE; processed_at when
 * unknown). Accounts are those with at least one mail by the reference
 * time: an account that never received anything is not known here.
 */
static int
eval_report_health(const struct dw_rule_cfg *r, const struct dw_rule_ctx *c, size_t day, dw_rule_cb cb, void *arg,
                   char *err, size_t errlen)
{
	static const char sql[] =
		"SELECT account,"
		" COALESCE(SUM(t >= ?1 AND t < ?2), 0),"
		" COALESCE(SUM(t >= ?1 AND t < ?2 AND verdict IN ('invalid', 'untrusted')), 0),"
		" MAX(t)"
		" FROM (SELECT account, verdict, COALESCE(received, processed_at) AS t FROM messages)"
		" WHERE t <= ?3 GROUP BY account ORDER BY account";
	const struct dw_facts *f = c->f;
	int64_t ref = c->asof == INT64_MAX ? f->day_start[day + 1] : c->asof;
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_DONE, stop = 0;

	if (c->store == NULL || (r->invalid_share <= 0 && r->silence == 0))
		return DW_OK;
	db = dw_store_sqlite(c->store);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, f->day_start[day]);
	sqlite3_bind_int64(st, 2, f->day_start[day + 1]);
	sqlite3_bind_int64(st, 3, ref);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *account = (const char *)sqlite3_column_text(st, 0);
		int64_t mails = sqlite3_column_int64(st, 1), bad = sqlite3_column_int64(st, 2);
		int64_t last = sqlite3_column_int64(st, 3);
		int invalid = 0, quiet = 0;
		double share = 0;
		char a[48], b[48], dur[64], when[32];
		struct dw_rule_hit hit;

		if (account == NULL)
			continue;
		if (r->invalid_share > 0 && mails > 0 && (uint64_t)mails >= r->min_mails) {
			share = 100.0 * (double)bad / (double)mails;
			invalid = share >= r->invalid_share - EPS;
		}
		if (r->silence > 0 && sqlite3_column_type(st, 3) != SQLITE_NULL)
			quiet = ref - last >= (int64_t)r->silence;
		if (!invalid && !quiet)
			continue;
		hit_init(&hit, r, account, "");
		hit.messages = (uint64_t)mails;
		snprintf(hit.message, sizeof hit.message, "account %s: ", account);
		if (invalid) {
			hit.value = share;
			hit.threshold = r->invalid_share;
			app(hit.message, sizeof hit.message,
			    "%" PRId64 " of %" PRId64 " report mails received on %s were invalid or untrusted (%s %% >= %s %%)",
			    bad, mails, f->days[day], fmt_num(share, a, sizeof a), fmt_num(r->invalid_share, b, sizeof b));
		}
		if (quiet) {
			if (!invalid) {
				hit.value = (double)(ref - last);
				hit.threshold = r->silence;
			}
			app(hit.message, sizeof hit.message, "%sno report mail for %s (last received %s)", invalid ? "; " : "",
			    fmt_duration(ref - last, dur, sizeof dur), fmt_utc(last, when, sizeof when));
		}
		stop = cb(arg, &hit) != 0;
	}
	if (!stop && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return DW_OK;
fail:
	dw_err(err, errlen, DW_E_STORE,
	       "rule %s: reading report mail verdicts (messages table) from %s: %s; check that the database is "
	       "readable and not damaged (sqlite3 %s 'PRAGMA integrity_check')",
	       r->name != NULL ? r->name : "?", dw_store_path(c->store), sqlite3_errmsg(db), dw_store_path(c->store));
	sqlite3_finalize(st);
	return DW_E_STORE;
}

/* ------------------------------------------------------------------ */

int
dw_rule_eval(const struct dw_rule_cfg *r, const struct dw_rule_ctx *c, size_t day, dw_rule_cb cb, void *arg,
             char *err, size_t errlen)
{
	struct view v;
	int rc;

	if (r == NULL || c == NULL || c->f == NULL || cb == NULL || day >= c->f->ndays)
		return DW_OK;
	if (r->kind == DW_RULE_REPORT_HEALTH)
		return eval_report_health(r, c, day, cb, arg, err, errlen);
	view_init(&v, r, c);
	switch (r->kind) {
	case DW_RULE_THRESHOLD:
		rc = eval_threshold(&v, day, cb, arg);
		break;
	case DW_RULE_BASELINE:
		rc = eval_baseline(&v, day, cb, arg);
		break;
	case DW_RULE_NEW_SOURCE:
		rc = eval_new_source(&v, day, cb, arg);
		break;
	case DW_RULE_MISSING_REPORTER:
		rc = eval_missing_reporter(&v, day, cb, arg);
		break;
	case DW_RULE_POLICY_CHANGE:
		rc = eval_policy_change(&v, day, cb, arg);
		break;
	default:
		rc = DW_OK;
		break;
	}
	view_free(&v);
	return rc;
}
