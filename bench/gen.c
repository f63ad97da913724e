/*
 * gen.c - benchmark input generator: expand a real DMARC aggregate report
 * into one with N records, written as plain XML and (optionally) as gzip.
 *
 * The template's text before the first <record> and after the last one is
 * copied as is; its records are cycled, and in each copy the values that
 * differ between real records (source_ip, v4 and v6, count, the
 * policy_evaluated verdicts, header_from, envelope_from, the DKIM and SPF
 * domains, selectors and results) are replaced by pseudo-random but
 * deterministic values, so the output has the shape and the byte mix of a
 * real report while every run of the benchmark reads the same bytes.
 *
 * Usage: gen TEMPLATE.xml N OUT.xml [OUT.xml.gz [LEVEL]]
 *
 * This is a benchmark tool, not part of the agent: it prints to stderr and
 * exits on error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* The kinds of element text we rewrite in each record copy. */
enum slot {
	SLOT_NONE = 0,
	SLOT_IP,
	SLOT_COUNT,
	SLOT_DISPOSITION,
	SLOT_PE_DKIM,
	SLOT_PE_SPF,
	SLOT_HEADER_FROM,
	SLOT_ENVELOPE_FROM,
	SLOT_DKIM_DOMAIN,
	SLOT_DKIM_SELECTOR,
	SLOT_DKIM_RESULT,
	SLOT_SPF_DOMAIN,
	SLOT_SPF_RESULT,
};

/* A record template is a list of pieces: literal text, or a slot (with the
 * number of earlier slots of the same kind in the record, so the second
 * DKIM signature can differ from the first). */
struct piece {
	const char *text;
	size_t len;
	enum slot slot;
	unsigned nth;
};

struct rec_tmpl {
	struct piece *p;
	size_t n, cap;
};

#define MAX_TMPL 64
#define MAX_DEPTH 16
#define NAME_MAX_LEN 32
#define OUTBUF (1u << 20)

static unsigned char outbuf[OUTBUF];
static size_t outlen;
static FILE *out_xml;
static gzFile out_gz;
static uint64_t out_total;

static void die(const char *what)
{
	fprintf(stderr, "gen: %s\n", what);
	exit(1);
}

static void flush_out(void)
{
	if (outlen == 0)
		return;
	if (fwrite(outbuf, 1, outlen, out_xml) != outlen)
		die("writing the XML output failed");
	if (out_gz && gzwrite(out_gz, outbuf, (unsigned)outlen) != (int)outlen)
		die("writing the gzip output failed");
	out_total += outlen;
	outlen = 0;
}

static void put(const char *s, size_t n)
{
	if (outlen + n > OUTBUF)
		flush_out();
	if (n > OUTBUF)
		die("piece larger than the output buffer");
	memcpy(outbuf + outlen, s, n);
	outlen += n;
}

static void put_str(const char *s)
{
	put(s, strlen(s));
}

/* Decimal without printf: the generator writes tens of millions of numbers
 * and snprintf would dominate its run time. */
static void put_u(uint64_t v)
{
	char tmp[24];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(tmp + i, sizeof tmp - i);
}

static void put_hex(unsigned v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[8];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v);
	put(tmp + i, sizeof tmp - i);
}

/* xorshift64*: fast, and good enough to spread values. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void add_piece(struct rec_tmpl *t, const char *text, size_t len, enum slot s, unsigned nth)
{
	if (len == 0 && s == SLOT_NONE)
		return;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->p = realloc(t->p, t->cap * sizeof *t->p);
		if (!t->p)
			die("out of memory");
	}
	t->p[t->n].text = text;
	t->p[t->n].len = len;
	t->p[t->n].slot = s;
	t->p[t->n].nth = nth;
	t->n++;
}

/* Which slot is a leaf element, given its name and its parents' names. */
static enum slot classify(char stack[][NAME_MAX_LEN], int depth)
{
	const char *name = stack[depth - 1];
	const char *parent = depth >= 2 ? stack[depth - 2] : "";
	const char *grand = depth >= 3 ? stack[depth - 3] : "";

	if (!strcmp(parent, "row")) {
		if (!strcmp(name, "source_ip"))
			return SLOT_IP;
		if (!strcmp(name, "count"))
			return SLOT_COUNT;
	}
	if (!strcmp(parent, "policy_evaluated")) {
		if (!strcmp(name, "disposition"))
			return SLOT_DISPOSITION;
		if (!strcmp(name, "dkim"))
			return SLOT_PE_DKIM;
		if (!strcmp(name, "spf"))
			return SLOT_PE_SPF;
	}
	if (!strcmp(parent, "identifiers")) {
		if (!strcmp(name, "header_from"))
			return SLOT_HEADER_FROM;
		if (!strcmp(name, "envelope_from"))
			return SLOT_ENVELOPE_FROM;
	}
	if (!strcmp(grand, "auth_results") && !strcmp(parent, "dkim")) {
		if (!strcmp(name, "domain"))
			return SLOT_DKIM_DOMAIN;
		if (!strcmp(name, "selector"))
			return SLOT_DKIM_SELECTOR;
		if (!strcmp(name, "result"))
			return SLOT_DKIM_RESULT;
	}
	if (!strcmp(grand, "auth_results") && !strcmp(parent, "spf")) {
		if (!strcmp(name, "domain"))
			return SLOT_SPF_DOMAIN;
		if (!strcmp(name, "result"))
			return SLOT_SPF_RESULT;
	}
	return SLOT_NONE;
}

/* Split one record's text [s, e) into literal pieces and slots. The scan is
 * a tag walk that is enough for the well-formed, DTD-free templates we use;
 * it is not an XML parser. */
static void compile_record(struct rec_tmpl *t, const char *s, const char *e)
{
	char stack[MAX_DEPTH][NAME_MAX_LEN];
	unsigned seen[SLOT_SPF_RESULT + 1] = {0};
	int depth = 0;
	const char *lit = s, *p = s;

	while (p < e) {
		const char *lt = memchr(p, '<', (size_t)(e - p));
		if (!lt)
			break;
		const char *gt = memchr(lt, '>', (size_t)(e - lt));
		if (!gt)
			die("template: unterminated tag");
		if (lt[1] == '/') {
			if (depth > 0)
				depth--;
			p = gt + 1;
			continue;
		}
		if (lt[1] == '?' || lt[1] == '!' || gt[-1] == '/') {
			p = gt + 1;
			continue;
		}
		size_t nl = 0;
		while (lt + 1 + nl < gt && lt[1 + nl] != ' ' && lt[1 + nl] != '\t' && lt[1 + nl] != '\n' &&
		       lt[1 + nl] != '\r')
			nl++;
		if (nl == 0 || nl >= NAME_MAX_LEN || depth >= MAX_DEPTH)
			die("template: odd or too deep tag");
		memcpy(stack[depth], lt + 1, nl);
		stack[depth][nl] = '\0';
		depth++;
		p = gt + 1;
		/* A leaf: text up to the next '<', which closes this element. */
		const char *next = memchr(p, '<', (size_t)(e - p));
		if (!next || next[1] != '/' || (size_t)(e - next) < nl + 3 ||
		    memcmp(next + 2, lt + 1, nl) != 0 || next[2 + nl] != '>')
			continue;
		enum slot sl = classify(stack, depth);
		if (sl == SLOT_NONE)
			continue;
		add_piece(t, lit, (size_t)(p - lit), SLOT_NONE, 0);
		add_piece(t, NULL, 0, sl, seen[sl]++);
		lit = next;
		p = next;
	}
	add_piece(t, lit, (size_t)(e - lit), SLOT_NONE, 0);
}

static const char *const tlds[] = {"example.com", "example.net", "example.org", "example.de",
                                   "example.co.uk", "example.fr", "example.io", "example.jp"};
static const char *const esps[] = {"amazonses.com", "sendgrid.net", "mcsv.net", "mailgun.org",
                                   "sparkpostmail.com", "outlook.com", "google.com", "mktomail.com"};

/* The values of one generated record. */
struct vals {
	int v6;
	unsigned ip[4];
	uint64_t count;
	int dkim_pass, spf_pass, disp;
	unsigned from_id, from_tld, esp, sel, sel2;
	int dkim_res_fail, spf_res_fail, env_is_esp;
};

static void make_vals(struct vals *v)
{
	uint64_t r = rnd(), r2 = rnd();

	v->v6 = (r & 15) == 0; /* about 6 % IPv6, as seen in real reports */
	v->ip[0] = 1 + (unsigned)((r >> 4) % 223);
	v->ip[1] = (unsigned)(r >> 12) & 255;
	v->ip[2] = (unsigned)(r >> 20) & 255;
	v->ip[3] = (unsigned)(r >> 28) & 255;
	/* Most rows carry a handful of messages, a few carry thousands. */
	unsigned c = (unsigned)(r >> 36) & 1023;
	v->count = c < 900 ? 1 + c % 8 : c < 1010 ? 10 + c : 1000 + (r2 & 0xffff);
	v->dkim_pass = ((r >> 46) & 3) != 0;  /* 75 % */
	v->spf_pass = ((r >> 48) % 5) < 3;    /* 60 % */
	v->disp = (int)((r >> 51) % 3);
	v->from_id = (unsigned)(r2 >> 16) % 5000;
	v->from_tld = (unsigned)(r2 >> 29) & 7;
	v->esp = (unsigned)(r2 >> 32) & 7;
	v->sel = (unsigned)(r2 >> 35) % 400;
	v->sel2 = (unsigned)(r2 >> 44) % 50;
	v->dkim_res_fail = !v->dkim_pass && ((r2 >> 54) & 1);
	v->spf_res_fail = !v->spf_pass && ((r2 >> 55) & 1);
	v->env_is_esp = ((r2 >> 56) & 3) == 0;
}

static void put_from(const struct vals *v)
{
	put_str("d");
	put_u(v->from_id);
	put_str(".");
	put_str(tlds[v->from_tld]);
}

static void emit_slot(const struct piece *pc, const struct vals *v)
{
	switch (pc->slot) {
	case SLOT_IP:
		if (v->v6) {
			put_str("2001:db8:");
			put_hex(v->ip[0] * 97 + v->ip[1]);
			put_str(":");
			put_hex(v->ip[2] + 1);
			put_str("::");
			put_hex(v->ip[3] + 1);
		} else {
			for (int i = 0; i < 4; i++) {
				if (i)
					put_str(".");
				put_u(v->ip[i]);
			}
		}
		break;
	case SLOT_COUNT:
		put_u(v->count);
		break;
	case SLOT_DISPOSITION:
		if (v->dkim_pass || v->spf_pass)
			put_str("none");
		else
			put_str(v->disp == 0 ? "none" : v->disp == 1 ? "quarantine" : "reject");
		break;
	case SLOT_PE_DKIM:
		put_str(v->dkim_pass ? "pass" : "fail");
		break;
	case SLOT_PE_SPF:
		put_str(v->spf_pass ? "pass" : "fail");
		break;
	case SLOT_HEADER_FROM:
		put_from(v);
		break;
	case SLOT_ENVELOPE_FROM:
	case SLOT_SPF_DOMAIN:
		if (v->env_is_esp) {
			put_str("bounce.");
			put_str(esps[v->esp]);
		} else {
			put_from(v);
		}
		break;
	case SLOT_DKIM_DOMAIN:
		/* The first signature is the author domain's when DKIM aligned,
		 * any further one is the sending service's. */
		if (pc->nth == 0 && v->dkim_pass)
			put_from(v);
		else
			put_str(esps[(v->esp + pc->nth) & 7]);
		break;
	case SLOT_DKIM_SELECTOR:
		if (pc->nth == 0) {
			put_str("s");
			put_u(v->sel);
		} else {
			put_str("esp");
			put_u(v->sel2);
		}
		break;
	case SLOT_DKIM_RESULT:
		put_str(pc->nth == 0 && v->dkim_res_fail ? "fail" : "pass");
		break;
	case SLOT_SPF_RESULT:
		put_str(v->spf_res_fail ? "softfail" : "pass");
		break;
	case SLOT_NONE:
		break;
	}
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "gen: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			die("out of memory");
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		if (cap > (1u << 24))
			die("template larger than 16 MiB");
		cap *= 2;
		buf = realloc(buf, cap + 1);
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Find "<record>" or "<record " (not "<records" or "<record_x"). */
static const char *find_record_open(const char *p)
{
	while ((p = strstr(p, "<record")) != NULL) {
		char c = p[7];
		if (c == '>' || c == ' ' || c == '\t' || c == '\r' || c == '\n')
			return p;
		p += 7;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 6) {
		fprintf(stderr, "usage: gen TEMPLATE.xml N OUT.xml [OUT.xml.gz [LEVEL]]\n");
		return 2;
	}
	size_t tlen;
	char *tmpl = slurp(argv[1], &tlen);
	char *endp;
	unsigned long long nrec = strtoull(argv[2], &endp, 10);
	if (*endp || nrec == 0)
		die("N must be a positive number");

	/* Each chunk is a record with the white space before it, so the copies
	 * keep the template's indentation. */
	struct rec_tmpl recs[MAX_TMPL];
	size_t nrecs = 0;
	const char *head_end = NULL, *tail = NULL;
	const char *p = tmpl;
	const char *open;
	while ((open = find_record_open(p)) != NULL) {
		const char *close = strstr(open, "</record>");
		if (!close)
			die("template: <record> without </record>");
		close += strlen("</record>");
		const char *ws = open;
		while (ws > p && (ws[-1] == ' ' || ws[-1] == '\t' || ws[-1] == '\n' || ws[-1] == '\r'))
			ws--;
		if (!head_end)
			head_end = ws;
		if (nrecs == MAX_TMPL)
			break;
		memset(&recs[nrecs], 0, sizeof recs[nrecs]);
		compile_record(&recs[nrecs], ws, close);
		nrecs++;
		tail = close;
		p = close;
	}
	if (nrecs == 0)
		die("template has no <record>");

	out_xml = fopen(argv[3], "wb");
	if (!out_xml) {
		fprintf(stderr, "gen: %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	if (argc >= 5) {
		char mode[8];
		snprintf(mode, sizeof mode, "wb%c", argc == 6 ? argv[5][0] : '6');
		out_gz = gzopen(argv[4], mode);
		if (!out_gz) {
			fprintf(stderr, "gen: %s: cannot open for gzip output\n", argv[4]);
			return 1;
		}
		gzbuffer(out_gz, 1u << 18);
	}

	put(tmpl, (size_t)(head_end - tmpl));
	for (unsigned long long i = 0; i < nrec; i++) {
		const struct rec_tmpl *t = &recs[i % nrecs];
		struct vals v;
		make_vals(&v);
		for (size_t k = 0; k < t->n; k++) {
			if (t->p[k].slot == SLOT_NONE)
				put(t->p[k].text, t->p[k].len);
			else
				emit_slot(&t->p[k], &v);
		}
	}
	put_str(tail);
	flush_out();
	if (fclose(out_xml) != 0)
		die("closing the XML output failed");
	if (out_gz && gzclose(out_gz) != Z_OK)
		die("closing the gzip output failed");
	for (size_t i = 0; i < nrecs; i++)
		free(recs[i].p);
	free(tmpl);
	printf("%llu records, %llu bytes\n", nrec, (unsigned long long)out_total);
	return 0;
}
