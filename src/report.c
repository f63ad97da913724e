/*
 * report.c - stage 3: parse one DMARC aggregate report (RFC 7489 appendix C
 * or RFC 9990 dmarc-2.0) from a stream of chunks with libxml2's SAX2 push
 * parser. See dw/report.h for the contract.
 *
 * The parser is a small state machine over the element stack. Each element
 * name is turned into a token (a switch on its length, then memcmp), and the
 * pair (parent state, token) decides whether the element is a container we
 * know, a leaf whose text we collect, or something to skip with its whole
 * subtree. Leaf text goes into one bounded buffer; at the end tag the value is
 * trimmed, checked and stored. Record strings live in a block arena that is
 * rewound after every record, so a report of millions of records allocates
 * nothing in the steady state.
 *
 * Security: DOCTYPE, entity declarations and entity references are refused
 * from the SAX handlers before libxml2 declares or expands anything; the
 * external entity loader refuses everything; the network is never used and
 * XML_PARSE_HUGE is never set, so libxml2's own size limits stay on.
 *
 * What it does not do: decompression, storage, aggregation.
 */
#include "dw/report.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#define NS_DMARC2 "urn:ietf:params:xml:ns:dmarc-2.0"
#define NS_DMARC1 "http://dmarc.org/dmarc-xml/0.1"

/* Text caps per element: most values are short tokens or domain names; the
 * free-text fields (error, comment, human_result, extra_contact_info) get
 * more room. Longer text is truncated and noted as a quirk. */
#define TEXT_SMALL 1024
#define TEXT_BIG 65536

/* Per-record caps. RFC 9990 asks reporters for at most 100 DKIM signatures
 * per row; the rest are generous ceilings against hostile input. */
#define RECORD_DKIM_MAX 1000
#define RECORD_SPF_MAX 100
#define RECORD_REASONS_MAX 100
#define META_ERRORS_MAX 100
/* All strings of one record together; a real record holds a few hundred
 * bytes, so this only stops a record built to exhaust memory. */
#define RECORD_TEXT_MAX (16u << 20)
/* Arena block: large enough for the longest single value plus its NUL. */
#define ARENA_BLOCK (TEXT_BIG + 1024)
/* Distinct unknown element names we report as quirks. */
#define UNKNOWN_NAMES_MAX 16
/* xmlParseChunk takes an int size: feed big buffers in slices. */
#define SLICE_MAX (16u << 20)
/* Direct-mapped cache from interned element name to token (power of 2). */
#define TOKCACHE_SIZE 64
/* Known structure is at most 6 deep (feedback/record/row/policy_evaluated/
 * reason/type); anything deeper is skipped without touching the stack. */
#define STACK_MAX 8

/* Element names we know, independent of where they appear. */
enum tok {
	T_NONE,
	T_FEEDBACK, T_VERSION, T_REPORT_METADATA, T_ORG_NAME, T_EMAIL, T_EXTRA_CONTACT_INFO,
	T_REPORT_ID, T_DATE_RANGE, T_BEGIN, T_END, T_ERROR, T_GENERATOR, T_POLICY_PUBLISHED,
	T_DOMAIN, T_ADKIM, T_ASPF, T_P, T_SP, T_NP, T_PCT, T_FO, T_TESTING, T_DISCOVERY_METHOD,
	T_RECORD, T_ROW, T_SOURCE_IP, T_COUNT, T_POLICY_EVALUATED, T_DISPOSITION, T_DKIM, T_SPF,
	T_REASON, T_TYPE, T_COMMENT, T_IDENTIFIERS, T_ENVELOPE_TO, T_ENVELOPE_FROM, T_HEADER_FROM,
	T_AUTH_RESULTS, T_SELECTOR, T_RESULT, T_HUMAN_RESULT, T_SCOPE, T_EXTENSION,
};

/* Element states kept on the stack. */
enum node {
	N_SKIP = -1, /* not on the stack: the subtree is skipped */
	N_DOC = 0,
	N_FEEDBACK, N_META, N_RANGE, N_POLICY, N_RECORD, N_ROW, N_EVAL, N_REASON,
	N_IDENT, N_AUTH, N_ADKIM, N_ASPF, N_LEAF,
};

/* Leaf fields: what the text of a leaf element becomes. */
enum field {
	F_VERSION, F_ORG_NAME, F_EMAIL, F_EXTRA, F_REPORT_ID, F_ERROR, F_GENERATOR,
	F_BEGIN, F_END,
	F_P_DOMAIN, F_P_ADKIM, F_P_ASPF, F_P_P, F_P_SP, F_P_NP, F_P_PCT, F_P_FO, F_P_TESTING,
	F_P_DISCOVERY,
	F_SOURCE_IP, F_COUNT, F_DISPOSITION, F_EVAL_DKIM, F_EVAL_SPF, F_REASON_TYPE,
	F_REASON_COMMENT, F_ENV_TO, F_ENV_FROM, F_HEADER_FROM,
	F_DKIM_DOMAIN, F_DKIM_SELECTOR, F_DKIM_RESULT, F_DKIM_HUMAN,
	F_SPF_DOMAIN, F_SPF_SCOPE, F_SPF_RESULT, F_SPF_HUMAN,
	F__COUNT
};

/* Value sets: the union of RFC 7489 and RFC 9990 is "known". */
static const char *const set_policy[] = {"none", "quarantine", "reject", NULL};
static const char *const set_align[] = {"r", "s", NULL};
static const char *const set_testing[] = {"n", "y", NULL};
static const char *const set_discovery[] = {"psl", "treewalk", NULL};
static const char *const set_disposition[] = {"none", "quarantine", "reject", "pass", NULL};
static const char *const set_verdict[] = {"pass", "fail", NULL};
static const char *const set_reason[] = {"local_policy", "mailing_list", "other",
                                         "trusted_forwarder", "forwarded", "sampled_out",
                                         "policy_test_mode", NULL};
static const char *const set_dkim_result[] = {"pass", "fail", "none", "neutral", "policy",
                                              "temperror", "permerror", NULL};
static const char *const set_spf_scope[] = {"mfrom", "helo", NULL};
static const char *const set_spf_result[] = {"pass", "fail", "none", "softfail", "neutral",
                                             "temperror", "permerror", "policy", NULL};

struct field_def {
	const char *elem;              /* element name, for messages */
	const char *quirk;             /* quirk prefix for odd values */
	unsigned max;                  /* text cap */
	const char *const *set;        /* enumeration, or NULL */
};

static const struct field_def fields[F__COUNT] = {
	[F_VERSION] = {"version", "version", TEXT_SMALL, NULL},
	[F_ORG_NAME] = {"org_name", "org-name", TEXT_SMALL, NULL},
	[F_EMAIL] = {"email", "email", TEXT_SMALL, NULL},
	[F_EXTRA] = {"extra_contact_info", "extra-contact-info", TEXT_BIG, NULL},
	[F_REPORT_ID] = {"report_id", "report-id", TEXT_SMALL, NULL},
	[F_ERROR] = {"error", "error", TEXT_BIG, NULL},
	[F_GENERATOR] = {"generator", "generator", TEXT_SMALL, NULL},
	[F_BEGIN] = {"begin", "begin", TEXT_SMALL, NULL},
	[F_END] = {"end", "end", TEXT_SMALL, NULL},
	[F_P_DOMAIN] = {"domain", "policy-domain", TEXT_SMALL, NULL},
	[F_P_ADKIM] = {"adkim", "adkim", TEXT_SMALL, set_align},
	[F_P_ASPF] = {"aspf", "aspf", TEXT_SMALL, set_align},
	[F_P_P] = {"p", "p", TEXT_SMALL, set_policy},
	[F_P_SP] = {"sp", "sp", TEXT_SMALL, set_policy},
	[F_P_NP] = {"np", "np", TEXT_SMALL, set_policy},
	[F_P_PCT] = {"pct", "pct", TEXT_SMALL, NULL},
	[F_P_FO] = {"fo", "fo", TEXT_SMALL, NULL},
	[F_P_TESTING] = {"testing", "testing", TEXT_SMALL, set_testing},
	[F_P_DISCOVERY] = {"discovery_method", "discovery-method", TEXT_SMALL, set_discovery},
	[F_SOURCE_IP] = {"source_ip", "source-ip", TEXT_SMALL, NULL},
	[F_COUNT] = {"count", "count", TEXT_SMALL, NULL},
	[F_DISPOSITION] = {"disposition", "disposition", TEXT_SMALL, set_disposition},
	[F_EVAL_DKIM] = {"dkim", "policy-dkim", TEXT_SMALL, set_verdict},
	[F_EVAL_SPF] = {"spf", "policy-spf", TEXT_SMALL, set_verdict},
	[F_REASON_TYPE] = {"type", "reason-type", TEXT_SMALL, set_reason},
	[F_REASON_COMMENT] = {"comment", "reason-comment", TEXT_BIG, NULL},
	[F_ENV_TO] = {"envelope_to", "envelope-to", TEXT_SMALL, NULL},
	[F_ENV_FROM] = {"envelope_from", "envelope-from", TEXT_SMALL, NULL},
	[F_HEADER_FROM] = {"header_from", "header-from", TEXT_SMALL, NULL},
	[F_DKIM_DOMAIN] = {"domain", "dkim-domain", TEXT_SMALL, NULL},
	[F_DKIM_SELECTOR] = {"selector", "dkim-selector", TEXT_SMALL, NULL},
	[F_DKIM_RESULT] = {"result", "dkim-result", TEXT_SMALL, set_dkim_result},
	[F_DKIM_HUMAN] = {"human_result", "dkim-human-result", TEXT_BIG, NULL},
	[F_SPF_DOMAIN] = {"domain", "spf-domain", TEXT_SMALL, NULL},
	[F_SPF_SCOPE] = {"scope", "spf-scope", TEXT_SMALL, set_spf_scope},
	[F_SPF_RESULT] = {"result", "spf-result", TEXT_SMALL, set_spf_result},
	[F_SPF_HUMAN] = {"human_result", "spf-human-result", TEXT_BIG, NULL},
};

/* A block arena for the strings of the current record. Blocks are kept and
 * rewound between records; every block can hold the longest value. */
struct arena_block {
	struct arena_block *next;
	size_t used;
	char data[ARENA_BLOCK];
};

struct arena {
	struct arena_block *head, *cur;
	size_t nblocks_used; /* blocks touched by the current record */
};

struct dw_report_parser {
	struct dw_limits lim;
	struct dw_report_cb cb;
	void *ctx;
	char *name;                  /* owned, "" when none was given */
	xmlParserCtxtPtr x;          /* created on the first bytes */
	unsigned char head[4];       /* first bytes, held until the parser exists */
	size_t nhead;
	int rc;                      /* first error, sticky */
	char err[512];
	int finished;
	int nonblank;                /* a byte other than white space or BOM was fed */
	uint64_t bytes;

	struct dw_report_meta meta;
	size_t errors_cap;
	struct dw_totals totals;
	struct dw_quirks quirks;

	/* element state */
	unsigned depth;              /* current element depth, root = 1 */
	unsigned skip_from;          /* depth of the element being skipped, 0 = none */
	signed char stack[STACK_MAX];
	int seen_root, root_done;
	int ns2;                     /* root is in the dmarc-2.0 namespace */
	const xmlChar *ns2_uri;      /* last URI pointer seen equal to NS_DMARC2 */
	const xmlChar *unknown[UNKNOWN_NAMES_MAX]; /* dictionary pointers already reported */
	size_t nunknown;
	struct {
		const xmlChar *name;     /* interned by libxml2's dictionary */
		unsigned char tok;
	} tokcache[TOKCACHE_SIZE];

	/* leaf text */
	int collect;
	enum field field;
	char *text;                  /* TEXT_BIG + 1 bytes */
	size_t tlen, tmax;
	int ttrunc;

	/* current record */
	struct dw_record rec;
	size_t reasons_cap, dkim_cap, spf_cap;
	int rec_has_ip, rec_has_count;
	int has_begin, has_end;
	uint64_t records_started;
	struct arena arena;
};

/* ------------------------------------------------------------------------ */
/* Small helpers */

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes of an input that is "empty": XML white space, NUL (UTF-16 white
 * space) and the bytes of a UTF-8 or UTF-16 byte order mark. */
static int
is_blank_byte(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0 || c == 0xEF ||
	       c == 0xBB || c == 0xBF || c == 0xFE || c == 0xFF;
}

static void
lower_ascii(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] + ('a' - 'A'));
}

/* Copy at most 40 bytes of an untrusted value into out for a quirk or a
 * message, replacing anything that is not printable ASCII by '?', so quirk
 * tokens and error lines stay short, single-line and harmless. */
static const char *
safe(char *out, size_t outlen, const char *v)
{
	size_t i = 0;
	for (; v != NULL && v[i] != '\0' && i < 40 && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)v[i];
		out[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[i] = '\0';
	return out;
}

static long
cur_line(const struct dw_report_parser *p)
{
	if (p->x != NULL && p->x->input != NULL)
		return (long)p->x->input->line;
	return 0;
}

/* Record the first error, as "name: line N: what" (line 0 = no line). */
DW_PRINTF(4, 5)
static void
set_error(struct dw_report_parser *p, int rc, long line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	if (p->rc != DW_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *sep = p->name[0] != '\0' ? ": " : "";
	if (line > 0)
		dw_err(p->err, sizeof p->err, rc, "%s%sline %ld: %s", p->name, sep, line, msg);
	else
		dw_err(p->err, sizeof p->err, rc, "%s%s%s", p->name, sep, msg);
	p->rc = rc;
}

/* After set_error() from a SAX handler: make libxml2 stop at once. Not used
 * from the error handlers, which libxml2 calls from deep inside its own code
 * (it disables SAX callbacks after a fatal error by itself). */
static void
halt(struct dw_report_parser *p)
{
	if (p->x != NULL)
		xmlStopParser(p->x);
}

/* ------------------------------------------------------------------------ */
/* Arena */

static void
arena_reset(struct arena *a)
{
	for (struct arena_block *b = a->head; b != NULL; b = b->next) {
		b->used = 0;
		if (b == a->cur)
			break;
	}
	a->cur = a->head;
	a->nblocks_used = a->head != NULL;
}

/* Copy n bytes plus a NUL into the arena; NULL when the record would exceed
 * RECORD_TEXT_MAX. n is at most TEXT_BIG, so a fresh block always fits it. */
static char *
arena_dup(struct arena *a, const char *s, size_t n)
{
	struct arena_block *b = a->cur;
	if (b == NULL) {
		b = xmalloc(sizeof *b);
		b->next = NULL;
		b->used = 0;
		a->head = a->cur = b;
		a->nblocks_used = 1;
	} else if (ARENA_BLOCK - b->used < n + 1) {
		if ((a->nblocks_used + 1) * (size_t)ARENA_BLOCK > RECORD_TEXT_MAX)
			return NULL;
		if (b->next == NULL) {
			struct arena_block *nb = xmalloc(sizeof *nb);
			nb->next = NULL;
			b->next = nb;
		}
		b = b->next;
		b->used = 0;
		a->cur = b;
		a->nblocks_used++;
	}
	char *d = b->data + b->used;
	memcpy(d, s, n);
	d[n] = '\0';
	b->used += n + 1;
	return d;
}

static void
arena_free(struct arena *a)
{
	struct arena_block *b = a->head;
	while (b != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = a->cur = NULL;
}

/* ------------------------------------------------------------------------ */
/* Element names */

/* Map a local name to its token. Called for every element, so it switches
 * on the length first and compares a handful of candidates at most. */
static enum tok
name_tok(const xmlChar *name)
{
	const char *s = (const char *)name;
	size_t n = strlen(s);
#define IS(lit) (memcmp(s, lit, sizeof lit - 1) == 0)
	switch (n) {
	case 1:
		return s[0] == 'p' ? T_P : T_NONE;
	case 2:
		if (IS("sp"))
			return T_SP;
		if (IS("np"))
			return T_NP;
		if (IS("fo"))
			return T_FO;
		break;
	case 3:
		if (IS("row"))
			return T_ROW;
		if (IS("spf"))
			return T_SPF;
		if (IS("end"))
			return T_END;
		if (IS("pct"))
			return T_PCT;
		break;
	case 4:
		if (IS("dkim"))
			return T_DKIM;
		if (IS("type"))
			return T_TYPE;
		if (IS("aspf"))
			return T_ASPF;
		break;
	case 5:
		if (IS("count"))
			return T_COUNT;
		if (IS("scope"))
			return T_SCOPE;
		if (IS("begin"))
			return T_BEGIN;
		if (IS("email"))
			return T_EMAIL;
		if (IS("error"))
			return T_ERROR;
		if (IS("adkim"))
			return T_ADKIM;
		break;
	case 6:
		if (IS("record"))
			return T_RECORD;
		if (IS("result"))
			return T_RESULT;
		if (IS("domain"))
			return T_DOMAIN;
		if (IS("reason"))
			return T_REASON;
		break;
	case 7:
		if (IS("comment"))
			return T_COMMENT;
		if (IS("version"))
			return T_VERSION;
		if (IS("testing"))
			return T_TESTING;
		break;
	case 8:
		if (IS("selector"))
			return T_SELECTOR;
		if (IS("feedback"))
			return T_FEEDBACK;
		if (IS("org_name"))
			return T_ORG_NAME;
		break;
	case 9:
		if (IS("source_ip"))
			return T_SOURCE_IP;
		if (IS("report_id"))
			return T_REPORT_ID;
		if (IS("generator"))
			return T_GENERATOR;
		if (IS("extension"))
			return T_EXTENSION;
		break;
	case 10:
		if (IS("date_range"))
			return T_DATE_RANGE;
		break;
	case 11:
		if (IS("header_from"))
			return T_HEADER_FROM;
		if (IS("identifiers"))
			return T_IDENTIFIERS;
		if (IS("disposition"))
			return T_DISPOSITION;
		if (IS("envelope_to"))
			return T_ENVELOPE_TO;
		break;
	case 12:
		if (IS("auth_results"))
			return T_AUTH_RESULTS;
		if (IS("human_result"))
			return T_HUMAN_RESULT;
		break;
	case 13:
		if (IS("envelope_from"))
			return T_ENVELOPE_FROM;
		break;
	case 15:
		if (IS("report_metadata"))
			return T_REPORT_METADATA;
		break;
	case 16:
		if (IS("policy_evaluated"))
			return T_POLICY_EVALUATED;
		if (IS("policy_published"))
			return T_POLICY_PUBLISHED;
		if (IS("discovery_method"))
			return T_DISCOVERY_METHOD;
		break;
	case 18:
		if (IS("extra_contact_info"))
			return T_EXTRA_CONTACT_INFO;
		break;
	default:
		break;
	}
#undef IS
	return T_NONE;
}

/* name_tok() through a cache keyed by the name's address: libxml2 interns
 * element names in the parser's dictionary, so a name seen before is found
 * with one pointer compare instead of strlen and memcmp. */
static enum tok
cached_tok(struct dw_report_parser *p, const xmlChar *name)
{
	size_t h = ((uintptr_t)name >> 3) & (TOKCACHE_SIZE - 1);
	if (p->tokcache[h].name == name)
		return (enum tok)p->tokcache[h].tok;
	enum tok t = name_tok(name);
	p->tokcache[h].name = name;
	p->tokcache[h].tok = (unsigned char)t;
	return t;
}

/* What an element with token t means under a parent in state parent: a
 * container state, N_LEAF (with *f set), or N_SKIP for names we do not know
 * there. *quiet is set for elements that are skipped on purpose (bis
 * <extension>), which are not quirks. */
static int
child_of(int parent, enum tok t, enum field *f, int *quiet)
{
#define LEAF(x) (*f = (x), N_LEAF)
	switch (parent) {
	case N_RECORD:
		switch (t) {
		case T_ROW: return N_ROW;
		case T_IDENTIFIERS: return N_IDENT;
		case T_AUTH_RESULTS: return N_AUTH;
		default: break;
		}
		break;
	case N_ROW:
		switch (t) {
		case T_SOURCE_IP: return LEAF(F_SOURCE_IP);
		case T_COUNT: return LEAF(F_COUNT);
		case T_POLICY_EVALUATED: return N_EVAL;
		default: break;
		}
		break;
	case N_EVAL:
		switch (t) {
		case T_DISPOSITION: return LEAF(F_DISPOSITION);
		case T_DKIM: return LEAF(F_EVAL_DKIM);
		case T_SPF: return LEAF(F_EVAL_SPF);
		case T_REASON: return N_REASON;
		default: break;
		}
		break;
	case N_REASON:
		switch (t) {
		case T_TYPE: return LEAF(F_REASON_TYPE);
		case T_COMMENT: return LEAF(F_REASON_COMMENT);
		default: break;
		}
		break;
	case N_IDENT:
		switch (t) {
		case T_HEADER_FROM: return LEAF(F_HEADER_FROM);
		case T_ENVELOPE_FROM: return LEAF(F_ENV_FROM);
		case T_ENVELOPE_TO: return LEAF(F_ENV_TO);
		default: break;
		}
		break;
	case N_AUTH:
		switch (t) {
		case T_DKIM: return N_ADKIM;
		case T_SPF: return N_ASPF;
		default: break;
		}
		break;
	case N_ADKIM:
		switch (t) {
		case T_DOMAIN: return LEAF(F_DKIM_DOMAIN);
		case T_SELECTOR: return LEAF(F_DKIM_SELECTOR);
		case T_RESULT: return LEAF(F_DKIM_RESULT);
		case T_HUMAN_RESULT: return LEAF(F_DKIM_HUMAN);
		default: break;
		}
		break;
	case N_ASPF:
		switch (t) {
		case T_DOMAIN: return LEAF(F_SPF_DOMAIN);
		case T_SCOPE: return LEAF(F_SPF_SCOPE);
		case T_RESULT: return LEAF(F_SPF_RESULT);
		case T_HUMAN_RESULT: return LEAF(F_SPF_HUMAN);
		default: break;
		}
		break;
	case N_FEEDBACK:
		switch (t) {
		case T_RECORD: return N_RECORD;
		case T_REPORT_METADATA: return N_META;
		case T_POLICY_PUBLISHED: return N_POLICY;
		case T_VERSION: return LEAF(F_VERSION);
		case T_EXTENSION: *quiet = 1; return N_SKIP;
		default: break;
		}
		break;
	case N_META:
		switch (t) {
		case T_ORG_NAME: return LEAF(F_ORG_NAME);
		case T_EMAIL: return LEAF(F_EMAIL);
		case T_EXTRA_CONTACT_INFO: return LEAF(F_EXTRA);
		case T_REPORT_ID: return LEAF(F_REPORT_ID);
		case T_DATE_RANGE: return N_RANGE;
		case T_ERROR: return LEAF(F_ERROR);
		case T_GENERATOR: return LEAF(F_GENERATOR);
		default: break;
		}
		break;
	case N_RANGE:
		switch (t) {
		case T_BEGIN: return LEAF(F_BEGIN);
		case T_END: return LEAF(F_END);
		default: break;
		}
		break;
	case N_POLICY:
		switch (t) {
		case T_DOMAIN: return LEAF(F_P_DOMAIN);
		case T_P: return LEAF(F_P_P);
		case T_SP: return LEAF(F_P_SP);
		case T_NP: return LEAF(F_P_NP);
		case T_ADKIM: return LEAF(F_P_ADKIM);
		case T_ASPF: return LEAF(F_P_ASPF);
		case T_PCT: return LEAF(F_P_PCT);
		case T_FO: return LEAF(F_P_FO);
		case T_TESTING: return LEAF(F_P_TESTING);
		case T_DISCOVERY_METHOD: return LEAF(F_P_DISCOVERY);
		default: break;
		}
		break;
	default:
		break;
	}
#undef LEAF
	return N_SKIP;
}

/* ------------------------------------------------------------------------ */
/* Records */

static void
record_reset(struct dw_report_parser *p)
{
	struct dw_record *r = &p->rec;
	r->source_ip[0] = '\0';
	r->count = 0;
	r->disposition = r->dkim = r->spf = NULL;
	r->nreasons = 0;
	r->header_from = r->envelope_from = r->envelope_to = NULL;
	r->ndkim = 0;
	r->nspf = 0;
	p->rec_has_ip = p->rec_has_count = 0;
	arena_reset(&p->arena);
}

/* Append a zeroed element to one of the record's arrays, growing it by
 * doubling; the arrays are kept across records. */
static void *
grow(void *arr, size_t *cap, size_t n, size_t size)
{
	if (n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		arr = xreallocarray(arr, *cap, size);
	}
	memset((char *)arr + n * size, 0, size);
	return arr;
}

/* Called at </record>: count the record and hand it to the callback. */
static void
record_end(struct dw_report_parser *p)
{
	if (!p->rec_has_ip)
		dw_quirks_add(&p->quirks, "record-without-source-ip");
	if (!p->rec_has_count)
		dw_quirks_add(&p->quirks, "record-without-count");
	dw_totals_add(&p->totals, &p->rec);
	if (p->cb.on_record == NULL)
		return;
	char cberr[sizeof p->err];
	cberr[0] = '\0';
	int rc = p->cb.on_record(p->ctx, &p->meta, &p->rec, cberr, sizeof cberr);
	if (rc != DW_OK) {
		/* The callback's message is returned as it is: it knows best what
		 * failed (a database, a limit of its own). */
		if (cberr[0] != '\0')
			dw_err(p->err, sizeof p->err, rc, "%s", cberr);
		else
			dw_err(p->err, sizeof p->err, rc, "%s: record handler failed (code %d)",
			       p->name[0] ? p->name : "report", rc);
		p->rc = rc;
		halt(p);
	}
}

/* ------------------------------------------------------------------------ */
/* Leaf values */

/* Parse a non-negative decimal integer; -1 when s is not one, -2 when it is
 * one but larger than max. */
static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10) {
			for (s++; *s >= '0' && *s <= '9'; s++)
				;
			return *s == '\0' ? -2 : -1;
		}
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Integer fields that the report cannot do without: a bad value is an
 * input error, not something to guess about. */
static int
want_uint(struct dw_report_parser *p, const char *v, uint64_t max, uint64_t *out)
{
	char sv[48];
	int r = parse_uint(v, max, out);
	if (r == 0)
		return 0;
	set_error(p, DW_E_INPUT, cur_line(p), "<%s> is %s: '%s'", fields[p->field].elem,
	          r == -2 ? "out of range" : "not a number", safe(sv, sizeof sv, v));
	halt(p);
	return -1;
}

/* Check an enumerated value (already lower case) against its set and note
 * odd ones; the value is kept either way. */
static void
check_enum(struct dw_report_parser *p, const struct field_def *d, const char *v)
{
	char sv[48];
	if (v[0] == '\0') {
		dw_quirks_add(&p->quirks, "empty-value:%s", d->quirk);
		return;
	}
	for (const char *const *e = d->set; *e != NULL; e++)
		if ((*e)[0] == v[0] && strcmp(*e, v) == 0)
			return;
	dw_quirks_add(&p->quirks, "%s:%s", d->quirk, safe(sv, sizeof sv, v));
}

static void
meta_set(struct dw_report_parser *p, char **slot, const char *v, size_t n)
{
	if (*slot != NULL) {
		dw_quirks_add(&p->quirks, "duplicate-element:%s", fields[p->field].elem);
		free(*slot);
	}
	*slot = xstrndup(v, n);
}

static char *
rec_str(struct dw_report_parser *p, const char *v, size_t n)
{
	char *s = arena_dup(&p->arena, v, n);
	if (s == NULL) {
		set_error(p, DW_E_LIMIT, cur_line(p), "a <record> holds more than %u MiB of text",
		          RECORD_TEXT_MAX >> 20);
		halt(p);
	}
	return s;
}

/* Cut a truncated UTF-8 value back to the last complete character. */
static size_t
utf8_cut(const char *s, size_t n)
{
	size_t i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return (n - (i - 1) >= need) ? n : i - 1;
}

/* Strict dotted-quad IPv4: four decimal octets 0..255 without leading
 * zeros (what inet_pton accepts). Such text is already the canonical form,
 * so the common case needs neither inet_pton nor inet_ntop (which formats
 * through sprintf). */
static int
is_canonical_v4(const char *s)
{
	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;
		if (part > 0 && *s++ != '.')
			return 0;
		while (*s >= '0' && *s <= '9') {
			if (digits == 1 && v == 0)
				return 0; /* leading zero */
			v = v * 10 + (unsigned)(*s++ - '0');
			if (++digits > 3 || v > 255)
				return 0;
		}
		if (digits == 0)
			return 0;
	}
	return *s == '\0';
}

static void
set_source_ip(struct dw_report_parser *p, const char *v, size_t n)
{
	struct dw_record *r = &p->rec;
	unsigned char a[16];
	p->rec_has_ip = 1;
	if (n < sizeof r->source_ip && is_canonical_v4(v)) {
		memcpy(r->source_ip, v, n + 1);
		return;
	}
	if (inet_pton(AF_INET6, v, a) == 1 &&
	    inet_ntop(AF_INET6, a, r->source_ip, sizeof r->source_ip) != NULL)
		return;
	if (inet_pton(AF_INET, v, a) == 1 &&
	    inet_ntop(AF_INET, a, r->source_ip, sizeof r->source_ip) != NULL)
		return;
	/* Keep what the reporter wrote (cut to fit) rather than inventing an
	 * address; the quirk tells the user the value is not an IP. */
	if (n >= sizeof r->source_ip)
		n = utf8_cut(v, sizeof r->source_ip - 1);
	memcpy(r->source_ip, v, n);
	r->source_ip[n] = '\0';
	dw_quirks_add(&p->quirks, "bad-source-ip");
}

/* At the end tag of a leaf: trim the text, check it and store it. */
static void
leaf_end(struct dw_report_parser *p)
{
	const struct field_def *d = &fields[p->field];
	struct dw_record *r = &p->rec;
	char *v = p->text;
	size_t n = p->tlen;
	uint64_t u;

	p->collect = 0;
	if (p->ttrunc) {
		n = utf8_cut(v, n);
		dw_quirks_add(&p->quirks, "text-truncated:%s", d->elem);
	}
	while (n > 0 && is_ws(v[n - 1]))
		n--;
	v[n] = '\0';
	if (d->set != NULL) {
		lower_ascii(v, n);
		check_enum(p, d, v);
	}

	switch (p->field) {
	/* record fields first: they are the hot path */
	case F_SOURCE_IP:
		set_source_ip(p, v, n);
		break;
	case F_COUNT:
		if (want_uint(p, v, UINT64_MAX, &u) == 0) {
			r->count = u;
			p->rec_has_count = 1;
		}
		break;
	case F_DISPOSITION:
		r->disposition = rec_str(p, v, n);
		break;
	case F_EVAL_DKIM:
		r->dkim = rec_str(p, v, n);
		break;
	case F_EVAL_SPF:
		r->spf = rec_str(p, v, n);
		break;
	case F_HEADER_FROM:
		r->header_from = rec_str(p, v, n);
		break;
	case F_ENV_FROM:
		r->envelope_from = rec_str(p, v, n);
		break;
	case F_ENV_TO:
		r->envelope_to = rec_str(p, v, n);
		break;
	case F_REASON_TYPE:
		r->reasons[r->nreasons - 1].type = rec_str(p, v, n);
		break;
	case F_REASON_COMMENT:
		r->reasons[r->nreasons - 1].comment = rec_str(p, v, n);
		break;
	case F_DKIM_DOMAIN:
		r->dkim_results[r->ndkim - 1].domain = rec_str(p, v, n);
		break;
	case F_DKIM_SELECTOR:
		r->dkim_results[r->ndkim - 1].selector = rec_str(p, v, n);
		break;
	case F_DKIM_RESULT:
		r->dkim_results[r->ndkim - 1].result = rec_str(p, v, n);
		break;
	case F_DKIM_HUMAN:
		r->dkim_results[r->ndkim - 1].human_result = rec_str(p, v, n);
		break;
	case F_SPF_DOMAIN:
		r->spf_results[r->nspf - 1].domain = rec_str(p, v, n);
		break;
	case F_SPF_SCOPE:
		r->spf_results[r->nspf - 1].scope = rec_str(p, v, n);
		break;
	case F_SPF_RESULT:
		r->spf_results[r->nspf - 1].result = rec_str(p, v, n);
		break;
	case F_SPF_HUMAN:
		r->spf_results[r->nspf - 1].human_result = rec_str(p, v, n);
		break;

	/* report metadata */
	case F_VERSION:
		meta_set(p, &p->meta.version, v, n);
		break;
	case F_ORG_NAME:
		meta_set(p, &p->meta.org_name, v, n);
		break;
	case F_EMAIL:
		meta_set(p, &p->meta.email, v, n);
		break;
	case F_EXTRA:
		meta_set(p, &p->meta.extra_contact_info, v, n);
		break;
	case F_REPORT_ID:
		/* Some reporters write the id like a Message-ID, in angle brackets. */
		if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
			v++;
			n -= 2;
			dw_quirks_add(&p->quirks, "report-id-angle-brackets");
		}
		meta_set(p, &p->meta.report_id, v, n);
		break;
	case F_GENERATOR:
		meta_set(p, &p->meta.generator, v, n);
		break;
	case F_ERROR:
		if (p->meta.nerrors >= META_ERRORS_MAX) {
			dw_quirks_add(&p->quirks, "too-many-errors");
			break;
		}
		if (p->meta.nerrors == p->errors_cap) {
			p->errors_cap = p->errors_cap ? p->errors_cap * 2 : 4;
			p->meta.errors = xreallocarray(p->meta.errors, p->errors_cap, sizeof(char *));
		}
		p->meta.errors[p->meta.nerrors++] = xstrndup(v, n);
		break;
	case F_BEGIN:
		if (want_uint(p, v, INT64_MAX, &u) == 0) {
			p->meta.begin = (int64_t)u;
			p->has_begin = 1;
			p->meta.has_range = p->has_end;
		}
		break;
	case F_END:
		if (want_uint(p, v, INT64_MAX, &u) == 0) {
			p->meta.end = (int64_t)u;
			p->has_end = 1;
			p->meta.has_range = p->has_begin;
		}
		break;

	/* policy_published */
	case F_P_DOMAIN:
		meta_set(p, &p->meta.policy.domain, v, n);
		break;
	case F_P_P:
		meta_set(p, &p->meta.policy.p, v, n);
		break;
	case F_P_SP:
		meta_set(p, &p->meta.policy.sp, v, n);
		break;
	case F_P_NP:
		meta_set(p, &p->meta.policy.np, v, n);
		break;
	case F_P_ADKIM:
		meta_set(p, &p->meta.policy.adkim, v, n);
		break;
	case F_P_ASPF:
		meta_set(p, &p->meta.policy.aspf, v, n);
		break;
	case F_P_FO:
		meta_set(p, &p->meta.policy.fo, v, n);
		break;
	case F_P_TESTING:
		meta_set(p, &p->meta.policy.testing, v, n);
		break;
	case F_P_DISCOVERY:
		meta_set(p, &p->meta.policy.discovery_method, v, n);
		break;
	case F_P_PCT:
		if (parse_uint(v, 100, &u) == 0) {
			p->meta.policy.pct = (int)u;
		} else {
			char sv[48];
			dw_quirks_add(&p->quirks, "pct:%s", safe(sv, sizeof sv, v));
			p->meta.policy.pct = -1;
		}
		break;
	case F__COUNT:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* SAX handlers */

static void
skip_element(struct dw_report_parser *p, const xmlChar *local, int quiet)
{
	p->skip_from = p->depth;
	p->collect = 0; /* markup inside a leaf: its text is not the leaf's */
	if (quiet)
		return;
	/* localname comes from the parser's dictionary, so one name is always
	 * the same pointer: reporting each name once costs a pointer scan. */
	for (size_t i = 0; i < p->nunknown; i++)
		if (p->unknown[i] == local)
			return;
	if (p->nunknown < UNKNOWN_NAMES_MAX) {
		char sv[48];
		p->unknown[p->nunknown++] = local;
		dw_quirks_add(&p->quirks, "unknown-element:%s", safe(sv, sizeof sv, (const char *)local));
	}
}

static void
on_root(struct dw_report_parser *p, const xmlChar *local, const xmlChar *uri)
{
	char sv[48];
	if (strcmp((const char *)local, "feedback") != 0) {
		set_error(p, DW_E_INPUT, 0, "not a DMARC aggregate report: root element is <%s>",
		          safe(sv, sizeof sv, (const char *)local));
		halt(p);
		return;
	}
	p->seen_root = 1;
	p->stack[1] = N_FEEDBACK;
	if (uri != NULL && strcmp((const char *)uri, NS_DMARC2) == 0) {
		p->ns2 = 1;
		p->ns2_uri = uri;
		p->meta.schema = 2;
	} else {
		p->meta.schema = 1;
		if (uri != NULL && strcmp((const char *)uri, NS_DMARC1) != 0)
			dw_quirks_add(&p->quirks, "unknown-namespace");
	}
}

static void
on_start(void *ud, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
         int nns, const xmlChar **nsv, int nattr, int ndefaulted, const xmlChar **attrs)
{
	struct dw_report_parser *p = ud;
	(void)prefix, (void)nns, (void)nsv, (void)nattr, (void)ndefaulted, (void)attrs;

	if (p->rc != DW_OK)
		return;
	if (++p->depth > p->lim.xml_depth_max) {
		set_error(p, DW_E_LIMIT, cur_line(p),
		          "XML elements nested deeper than %u (limits.xml_depth_max)",
		          p->lim.xml_depth_max);
		halt(p);
		return;
	}
	if (p->skip_from != 0)
		return;
	if (p->depth == 1) {
		on_root(p, local, uri);
		return;
	}
	int parent = p->stack[p->depth - 1];
	if (parent == N_LEAF || p->depth >= STACK_MAX) {
		skip_element(p, local, 0);
		return;
	}
	/* In a dmarc-2.0 report, elements of other namespaces are extensions.
	 * Elements in no namespace (xmlns="") cannot be extensions, which
	 * must be namespaced, so they are matched like DMARC elements. The
	 * URI is interned by libxml2, so the pointer test nearly always
	 * settles it without a string compare. */
	if (p->ns2 && uri != NULL && uri != p->ns2_uri) {
		if (strcmp((const char *)uri, NS_DMARC2) != 0) {
			skip_element(p, local, 1);
			return;
		}
		p->ns2_uri = uri;
	}

	enum field f = F__COUNT;
	int quiet = 0;
	int st = child_of(parent, cached_tok(p, local), &f, &quiet);
	struct dw_record *r = &p->rec;
	switch (st) {
	case N_SKIP:
		skip_element(p, local, quiet);
		return;
	case N_LEAF:
		p->field = f;
		p->collect = 1;
		p->tlen = 0;
		p->ttrunc = 0;
		p->tmax = fields[f].max;
		break;
	case N_RECORD:
		if (p->records_started >= p->lim.records_max) {
			set_error(p, DW_E_LIMIT, cur_line(p),
			          "report has more than %llu records (limits.records_max)",
			          (unsigned long long)p->lim.records_max);
			halt(p);
			return;
		}
		p->records_started++;
		record_reset(p);
		break;
	case N_REASON:
		if (r->nreasons >= RECORD_REASONS_MAX) {
			dw_quirks_add(&p->quirks, "too-many-reasons");
			skip_element(p, local, 1);
			return;
		}
		r->reasons = grow(r->reasons, &p->reasons_cap, r->nreasons, sizeof *r->reasons);
		r->nreasons++;
		break;
	case N_ADKIM:
		if (r->ndkim >= RECORD_DKIM_MAX) {
			dw_quirks_add(&p->quirks, "too-many-dkim-results");
			skip_element(p, local, 1);
			return;
		}
		r->dkim_results = grow(r->dkim_results, &p->dkim_cap, r->ndkim, sizeof *r->dkim_results);
		r->ndkim++;
		break;
	case N_ASPF:
		if (r->nspf >= RECORD_SPF_MAX) {
			dw_quirks_add(&p->quirks, "too-many-spf-results");
			skip_element(p, local, 1);
			return;
		}
		r->spf_results = grow(r->spf_results, &p->spf_cap, r->nspf, sizeof *r->spf_results);
		r->nspf++;
		break;
	default:
		break;
	}
	p->stack[p->depth] = (signed char)st;
}

static void
on_end(void *ud, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
	struct dw_report_parser *p = ud;
	(void)local, (void)prefix, (void)uri;

	if (p->rc != DW_OK)
		return;
	if (p->skip_from != 0) {
		if (p->depth == p->skip_from) {
			p->skip_from = 0;
			/* Text after markup inside a leaf belongs to the leaf again. */
			if (p->depth >= 2 && p->stack[p->depth - 1] == N_LEAF)
				p->collect = 1;
		}
		p->depth--;
		return;
	}
	switch (p->stack[p->depth]) {
	case N_LEAF:
		leaf_end(p);
		break;
	case N_RECORD:
		record_end(p);
		break;
	case N_FEEDBACK:
		p->root_done = 1;
		break;
	default:
		break;
	}
	p->depth--;
}

static void
on_chars(void *ud, const xmlChar *ch, int len)
{
	struct dw_report_parser *p = ud;
	if (!p->collect || len <= 0)
		return;
	const char *s = (const char *)ch;
	size_t n = (size_t)len;
	if (p->tlen == 0) {
		/* Leading white space is dropped here so it does not count
		 * against the element's cap. */
		while (n > 0 && is_ws(*s)) {
			s++;
			n--;
		}
	}
	size_t room = p->tmax - p->tlen;
	if (n > room) {
		n = room;
		p->ttrunc = 1;
	}
	memcpy(p->text + p->tlen, s, n);
	p->tlen += n;
}

/* DOCTYPE, entity declarations and entity references: DMARC reports need
 * none of them, and they are what billion-laughs and XXE are made of. The
 * internalSubset callback comes right after "<!DOCTYPE name ...", before
 * libxml2 reads the internal subset, so nothing gets declared. */
static void
refuse_doctype(struct dw_report_parser *p)
{
	set_error(p, DW_E_INPUT, 0, "DOCTYPE not allowed in a DMARC report (line %ld)", cur_line(p));
	halt(p);
}

static void
on_internal_subset(void *ud, const xmlChar *name, const xmlChar *eid, const xmlChar *sid)
{
	(void)name, (void)eid, (void)sid;
	refuse_doctype(ud);
}

static void
on_entity_decl(void *ud, const xmlChar *name, int type, const xmlChar *pid, const xmlChar *sid,
               xmlChar *content)
{
	(void)name, (void)type, (void)pid, (void)sid, (void)content;
	refuse_doctype(ud);
}

static xmlEntityPtr
on_get_entity(void *ud, const xmlChar *name)
{
	struct dw_report_parser *p = ud;
	char sv[48];
	/* The five predefined entities (&amp; ...) never get here. */
	set_error(p, DW_E_INPUT, 0, "entity reference &%s; not allowed in a DMARC report (line %ld)",
	          safe(sv, sizeof sv, (const char *)name), cur_line(p));
	halt(p);
	return NULL;
}

static void
on_reference(void *ud, const xmlChar *name)
{
	on_get_entity(ud, name);
}

static xmlParserInputPtr
on_resolve_entity(void *ud, const xmlChar *pid, const xmlChar *sid)
{
	(void)pid, (void)sid;
	refuse_doctype(ud);
	return NULL;
}

/* libxml2's errors, with the context's handler or, around our calls into
 * libxml2, as the thread's structured handler (the encoding converters
 * report without a parser context). */
static void
on_xml_error(void *ud, xmlErrorPtr e)
{
	struct dw_report_parser *p = ud;
	if (e == NULL || p == NULL || e->level == XML_ERR_NONE || e->level == XML_ERR_WARNING)
		return;
	if (e->domain == XML_FROM_NAMESPACE && e->level == XML_ERR_ERROR) {
		/* An unbound prefix or the like: names still parse, and we match
		 * by local name, so note it and go on. */
		dw_quirks_add(&p->quirks, "xml-namespace-error");
		return;
	}
	if (e->code == XML_ERR_USER_STOP)
		return;
	if (e->code == XML_ERR_DOCUMENT_EMPTY) {
		set_error(p, DW_E_INPUT, 0, "empty document");
		return;
	}
	if (!p->nonblank) {
		/* Only white space (or a byte order mark) came in. */
		set_error(p, DW_E_INPUT, 0, "empty document");
		return;
	}
	/* libxml2 messages end in a newline and some span two lines
	 * ("... indicate encoding !\nBytes: 0xFF ..."): make it one line. */
	char msg[300];
	snprintf(msg, sizeof msg, "%s", e->message != NULL ? e->message : "error");
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	if (e->domain == XML_FROM_I18N) {
		/* The converters run ahead of the parser on whole chunks, so
		 * the parser's line says nothing about where the bad bytes are. */
		set_error(p, DW_E_INPUT, 0, "malformed XML: %s", msg);
		return;
	}
	long line = e->line > 0 ? e->line : cur_line(p);
	set_error(p, DW_E_INPUT, line > 0 ? line : 1, "malformed XML: %s", msg);
}

static void
silent_error(void *ctx, const char *msg, ...)
{
	(void)ctx, (void)msg;
}

/* Run one libxml2 push step with its context-less errors routed to p. */
static void
push(struct dw_report_parser *p, const char *buf, size_t len, int terminate)
{
	xmlSetGenericErrorFunc(NULL, silent_error);
	xmlSetStructuredErrorFunc(p, on_xml_error);
	xmlParseChunk(p->x, buf, (int)len, terminate);
	xmlSetStructuredErrorFunc(NULL, NULL);
	/* A fatal error always comes through on_xml_error; this is the safety
	 * net in case one did not. */
	if (p->rc == DW_OK && !p->x->wellFormed) {
		xmlErrorPtr e = xmlCtxtGetLastError(p->x);
		if (e != NULL)
			on_xml_error(p, e);
		if (p->rc == DW_OK)
			set_error(p, DW_E_INPUT, cur_line(p), "malformed XML");
	}
}

/* Create the push parser with our handlers. Options: NONET (and NOCDATA,
 * so CDATA arrives as characters); never NOENT, DTDLOAD or HUGE, which
 * would substitute entities, load DTDs or lift libxml2's own limits. */
static int
create_parser(struct dw_report_parser *p)
{
	xmlSAXHandler h;
	memset(&h, 0, sizeof h);
	h.initialized = XML_SAX2_MAGIC;
	h.startElementNs = on_start;
	h.endElementNs = on_end;
	h.characters = on_chars;
	h.ignorableWhitespace = on_chars;
	h.cdataBlock = on_chars;
	h.internalSubset = on_internal_subset;
	h.externalSubset = on_internal_subset;
	h.entityDecl = on_entity_decl;
	h.getEntity = on_get_entity;
	h.getParameterEntity = on_get_entity;
	h.reference = on_reference;
	h.resolveEntity = on_resolve_entity;
	h.serror = on_xml_error;

	xmlSetGenericErrorFunc(NULL, silent_error);
	xmlSetStructuredErrorFunc(p, on_xml_error);
	/* The first bytes (up to 4) let libxml2 detect a BOM or UTF-16. */
	p->x = xmlCreatePushParserCtxt(&h, p, (const char *)p->head, (int)p->nhead, NULL);
	if (p->x != NULL)
		xmlCtxtUseOptions(p->x, XML_PARSE_NONET | XML_PARSE_NOCDATA);
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (p->x == NULL)
		set_error(p, DW_E_SYS, 0, "cannot create an XML parser");
	return p->rc;
}

/* ------------------------------------------------------------------------ */
/* Public API */

int
dw_record_dmarc_pass(const struct dw_record *r)
{
	return (r->dkim != NULL && strcmp(r->dkim, "pass") == 0) ||
	       (r->spf != NULL && strcmp(r->spf, "pass") == 0);
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void
dw_totals_add(struct dw_totals *t, const struct dw_record *r)
{
	uint64_t c = r->count;
	t->records++;
	t->messages = sat_add(t->messages, c);
	if (dw_record_dmarc_pass(r))
		t->dmarc_pass = sat_add(t->dmarc_pass, c);
	t->dmarc_fail = t->messages - t->dmarc_pass;
	if (r->dkim == NULL || strcmp(r->dkim, "pass") != 0)
		t->dkim_fail = sat_add(t->dkim_fail, c);
	if (r->spf == NULL || strcmp(r->spf, "pass") != 0)
		t->spf_fail = sat_add(t->spf_fail, c);
}

struct dw_report_parser *
dw_report_new(const struct dw_limits *limits, const struct dw_report_cb *cb, void *ctx,
              const char *name)
{
	struct dw_report_parser *p = xcalloc(1, sizeof *p);
	if (limits != NULL)
		p->lim = *limits;
	else
		dw_limits_default(&p->lim);
	if (cb != NULL)
		p->cb = *cb;
	p->ctx = ctx;
	p->name = xstrdup(name != NULL ? name : "");
	p->text = xmalloc(TEXT_BIG + 1);
	p->meta.policy.pct = -1;
	return p;
}

int
dw_report_feed(struct dw_report_parser *p, const void *buf, size_t len, char *err, size_t errlen)
{
	const char *b = buf;
	if (p->rc != DW_OK)
		return dw_err(err, errlen, p->rc, "%s", p->err);
	if (p->finished)
		return dw_err(err, errlen, DW_E_SYS, "%s: data fed after the end of the report",
		              p->name[0] ? p->name : "report");
	p->bytes += len;
	for (size_t i = 0; i < len && !p->nonblank; i++)
		p->nonblank = !is_blank_byte((unsigned char)b[i]);
	if (p->x == NULL) {
		size_t take = sizeof p->head - p->nhead;
		if (take > len)
			take = len;
		memcpy(p->head + p->nhead, b, take);
		p->nhead += take;
		b += take;
		len -= take;
		if (p->nhead < sizeof p->head)
			return DW_OK;
		if (create_parser(p) != DW_OK)
			return dw_err(err, errlen, p->rc, "%s", p->err);
	}
	while (len > 0 && p->rc == DW_OK) {
		size_t n = len < SLICE_MAX ? len : SLICE_MAX;
		push(p, b, n, 0);
		b += n;
		len -= n;
	}
	if (p->rc != DW_OK)
		return dw_err(err, errlen, p->rc, "%s", p->err);
	return DW_OK;
}

/* After a well-formed parse: is this a report we can use? */
static void
check_complete(struct dw_report_parser *p)
{
	struct dw_report_meta *m = &p->meta;
	char missing[200] = "";
	const char *what[4];
	size_t n = 0;

	if (m->report_id == NULL || m->report_id[0] == '\0')
		what[n++] = "<report_id>";
	if (m->policy.domain == NULL || m->policy.domain[0] == '\0')
		what[n++] = "<policy_published>/<domain>";
	if (!m->has_range)
		what[n++] = "<date_range> with <begin> and <end>";
	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(missing);
		snprintf(missing + used, sizeof missing - used, "%s%s", i ? ", " : "", what[i]);
	}
	if (n > 0) {
		set_error(p, DW_E_INPUT, 0, "not a usable DMARC report: no %s", missing);
		return;
	}
	if (m->org_name == NULL || m->org_name[0] == '\0')
		dw_quirks_add(&p->quirks, "missing-org-name");
	if (m->email == NULL || m->email[0] == '\0')
		dw_quirks_add(&p->quirks, "missing-email");
	if (m->policy.p == NULL)
		dw_quirks_add(&p->quirks, "missing-policy-p");
	if (p->totals.records == 0)
		dw_quirks_add(&p->quirks, "no-records");
	if (m->begin > m->end)
		dw_quirks_add(&p->quirks, "date-range-reversed");
}

int
dw_report_finish(struct dw_report_parser *p, char *err, size_t errlen)
{
	if (p->rc != DW_OK || p->finished)
		return dw_err(err, errlen, p->rc, "%s", p->rc != DW_OK ? p->err : "");
	p->finished = 1;
	if (p->x == NULL) {
		if (!p->nonblank) {
			set_error(p, DW_E_INPUT, 0, "empty document");
			return dw_err(err, errlen, p->rc, "%s", p->err);
		}
		if (create_parser(p) != DW_OK)
			return dw_err(err, errlen, p->rc, "%s", p->err);
	}
	push(p, NULL, 0, 1);
	if (p->rc == DW_OK && !p->seen_root)
		set_error(p, DW_E_INPUT, 0, "empty document");
	if (p->rc == DW_OK && !p->root_done)
		set_error(p, DW_E_INPUT, cur_line(p), "malformed XML: document ends inside <feedback>");
	if (p->rc == DW_OK)
		check_complete(p);
	if (p->rc != DW_OK)
		return dw_err(err, errlen, p->rc, "%s", p->err);
	/* The namespace decides the schema. Without it, only an explicit
	 * <version>2.x</version> makes a bis report: bis-only elements such as
	 * <np> alone do not (Google has sent <np> in RFC 7489 reports since 2024). */
	if (p->meta.schema != 2 && p->meta.version != NULL && p->meta.version[0] == '2') {
		p->meta.schema = 2;
		dw_quirks_add(&p->quirks, "bis-without-namespace");
	}
	return DW_OK;
}

const struct dw_report_meta *
dw_report_meta(const struct dw_report_parser *p)
{
	return &p->meta;
}

const struct dw_totals *
dw_report_totals(const struct dw_report_parser *p)
{
	return &p->totals;
}

struct dw_quirks *
dw_report_quirks(struct dw_report_parser *p)
{
	return &p->quirks;
}

uint64_t
dw_report_bytes(const struct dw_report_parser *p)
{
	return p->bytes;
}

void
dw_report_free(struct dw_report_parser *p)
{
	if (p == NULL)
		return;
	if (p->x != NULL)
		xmlFreeParserCtxt(p->x);
	struct dw_report_meta *m = &p->meta;
	free(m->version);
	free(m->org_name);
	free(m->email);
	free(m->extra_contact_info);
	free(m->report_id);
	free(m->generator);
	for (size_t i = 0; i < m->nerrors; i++)
		free(m->errors[i]);
	free(m->errors);
	free(m->policy.domain);
	free(m->policy.p);
	free(m->policy.sp);
	free(m->policy.np);
	free(m->policy.adkim);
	free(m->policy.aspf);
	free(m->policy.fo);
	free(m->policy.testing);
	free(m->policy.discovery_method);
	free(p->rec.reasons);
	free(p->rec.dkim_results);
	free(p->rec.spf_results);
	arena_free(&p->arena);
	dw_quirks_clear(&p->quirks);
	free(p->text);
	free(p->name);
	free(p);
}

/* External entities are never wanted: refuse every load, whatever asks. */
static xmlParserInputPtr
no_entity_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)url, (void)id, (void)ctxt;
	return NULL;
}

void
dw_report_global_init(void)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(no_entity_loader);
	xmlSetGenericErrorFunc(NULL, silent_error);
}
