/*
 * config.c - the YAML configuration file. See dw/config.h.
 *
 * Phase 1 turns libyaml's event stream into our own node tree (struct
 * dw_cfg_node) with 1-based line and column. The event API is used rather
 * than the document loader because the loader silently resolves aliases; we
 * want to see every anchor and alias and refuse it, and to catch duplicate
 * keys, which libyaml accepts.
 *
 * Phase 2 walks the tree with small typed getters (string, bool, integer,
 * size, duration, enumeration, secret) that each report a problem as
 * "FILE:LINE:COL: path.to.key: what is wrong" and keep going, so one run
 * shows every mistake. Values of secret-bearing keys are never quoted in a
 * message; nor are URLs that could carry credentials.
 *
 * What it does not do: open the database, check the time zone name, or
 * touch the network. Relative paths are taken relative to the directory of
 * the configuration file (when loaded from a file), so a daemon that
 * changes directory still finds them.
 */
#include "dw/config.h"
#include "dw/metrics.h"
#include "dw/util.h"
#include "dmarcwatch/notifier.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <yaml.h>

#define CFG_FILE_MAX (1024 * 1024)   /* a configuration is a few KiB */
#define CFG_DEPTH_MAX 32             /* nesting of mappings and lists */
#define CFG_NODES_MAX 100000
#define CFG_ERRORS_MAX 100           /* then "N more errors not shown" */
#define SECRET_FILE_MAX (64 * 1024)
#define ACCOUNTS_MAX 256
#define AUTHSERV_IDS_MAX 32
#define ACCOUNT_NAME_MAX 64

#define DEFAULT_STATE_DIR "/var/lib/dmarcwatch"
#define DEFAULT_TIMEZONE "UTC"
#define DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define DEFAULT_FOLDER "INBOX"
#define DEFAULT_POLL_INTERVAL 300
#define DEFAULT_TIMEOUT 60
#define DEFAULT_BATCH_BYTES (4 * MiB)

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

#if defined(__GNUC__)
#define CFG_VPRINTF(a) __attribute__((format(printf, a, 0)))
#else
#define CFG_VPRINTF(a)
#endif

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* State shared by both phases: where messages go and the dotted path of
 * the key being looked at. */
struct ctx {
	const char *file;        /* name used in messages */
	const char *basedir;     /* relative paths are resolved against it; NULL: as given */
	struct dw_cfg_msgs *msgs;
	size_t nerrors;          /* errors added by this load */
	size_t dropped;          /* errors beyond CFG_ERRORS_MAX */
	char path[512];
	size_t plen;
};

static void
push_msg(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof **v);
	(*v)[(*n)++] = s;
}

/* Format "FILE:LINE:COL: PATH: text"; line 0 leaves out the position and
 * an empty path leaves out the path. */
CFG_VPRINTF(5) static void
vmsg(struct ctx *x, int warning, unsigned line, unsigned col, const char *fmt, va_list ap)
{
	char text[1024];
	char pos[64] = "";
	vsnprintf(text, sizeof text, fmt, ap);
	if (line > 0)
		snprintf(pos, sizeof pos, ":%u:%u", line, col);
	char *s = x->plen > 0 ? xasprintf("%s%s: %s: %s", x->file, pos, x->path, text)
	                      : xasprintf("%s%s: %s", x->file, pos, text);
	if (warning) {
		push_msg(&x->msgs->warnings, &x->msgs->nwarnings, s);
		return;
	}
	if (x->nerrors >= CFG_ERRORS_MAX) {
		x->dropped++;
		free(s);
		return;
	}
	x->nerrors++;
	push_msg(&x->msgs->errors, &x->msgs->nerrors, s);
}

DW_PRINTF(4, 5) static void
err_at(struct ctx *x, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(x, 0, line, col, fmt, ap);
	va_end(ap);
}

DW_PRINTF(4, 5) static void
warn_at(struct ctx *x, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(x, 1, line, col, fmt, ap);
	va_end(ap);
}

/* An error about a node's value, at the value. */
DW_PRINTF(3, 4) static void
err_node(struct ctx *x, const struct dw_cfg_node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(x, 0, n->line, n->col, fmt, ap);
	va_end(ap);
}

/* An error about a key itself (unknown, misplaced), at the key. */
DW_PRINTF(3, 4) static void
err_key(struct ctx *x, const struct dw_cfg_node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(x, 0, n->key_line, n->key_col, fmt, ap);
	va_end(ap);
}

void
dw_cfg_msgs_free(struct dw_cfg_msgs *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nerrors; i++)
		free(m->errors[i]);
	for (size_t i = 0; i < m->nwarnings; i++)
		free(m->warnings[i]);
	free(m->errors);
	free(m->warnings);
	memset(m, 0, sizeof *m);
}

/* The path of the key being checked: push returns the old length, which
 * pop restores. A path too long for the buffer is cut, never overrun. */
static size_t
path_key(struct ctx *x, const char *key)
{
	size_t saved = x->plen;
	int n = snprintf(x->path + x->plen, sizeof x->path - x->plen, "%s%s", x->plen > 0 ? "." : "", key);
	if (n > 0)
		x->plen += (size_t)n;
	if (x->plen >= sizeof x->path)
		x->plen = sizeof x->path - 1;
	return saved;
}

static size_t
path_index(struct ctx *x, size_t i)
{
	size_t saved = x->plen;
	int n = snprintf(x->path + x->plen, sizeof x->path - x->plen, "[%zu]", i);
	if (n > 0)
		x->plen += (size_t)n;
	if (x->plen >= sizeof x->path)
		x->plen = sizeof x->path - 1;
	return saved;
}

static void
path_pop(struct ctx *x, size_t saved)
{
	x->plen = saved;
	x->path[saved] = '\0';
}

/* A value for a message: quoted, control characters escaped, long values
 * cut. Only ever called for values that are not secrets. */
static const char *
quote(const char *s, char *buf, size_t buflen)
{
	size_t o = 0, shown = 0;
	buf[o++] = '"';
	/* Each character takes at most 4 bytes; 6 stay free for "...", the
	 * closing quote and the NUL. buflen is at least 16. */
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (shown >= 60 || o + 10 > buflen) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", ch);
		} else {
			buf[o++] = (char)ch;
		}
		shown++;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */
/* The node tree                                                       */

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Scalars are wiped too: an inline secret lives in the tree. The depth is
 * bounded by CFG_DEPTH_MAX, so recursion is fine. */
static void
node_free(struct dw_cfg_node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nitems; i++)
		node_free(n->items[i]);
	free(n->items);
	wipe_free(n->value);
	free(n->key);
	free(n);
}

static int
is_null(const struct dw_cfg_node *n)
{
	if (n->type != DW_CFG_SCALAR || n->quoted)
		return 0;
	const char *v = n->value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	       strcmp(v, "NULL") == 0;
}

/* The value of key in a mapping: NULL when absent or null ("key:" alone
 * or "key: ~"), which every getter takes as "not set". */
static const struct dw_cfg_node *
lookup(const struct dw_cfg_node *map, const char *key)
{
	if (map == NULL || map->type != DW_CFG_MAP)
		return NULL;
	for (size_t i = 0; i < map->nitems; i++)
		if (strcmp(map->items[i]->key, key) == 0)
			return is_null(map->items[i]) ? NULL : map->items[i];
	return NULL;
}

static const char *
type_name(const struct dw_cfg_node *n)
{
	switch (n->type) {
	case DW_CFG_MAP:
		return "a mapping";
	case DW_CFG_SEQ:
		return "a list";
	default:
		return "a single value";
	}
}

/* ------------------------------------------------------------------ */
/* Phase 1: libyaml events to nodes                                    */

struct frame {
	struct dw_cfg_node *node;   /* a mapping or a list being filled */
	size_t cap;
	char *key;                  /* mapping: the key waiting for its value */
	unsigned key_line, key_col;
};

struct builder {
	struct ctx *x;
	struct frame stack[CFG_DEPTH_MAX];
	size_t depth;
	struct dw_cfg_node *root;
	size_t nodes;
	unsigned docs;
	int fatal;
};

/* Set the context path to where the parser stands, plus leaf if given.
 * Below the top frame, the container being filled is the last item of its
 * parent (containers are attached when they start); in the top frame the
 * value being read is not attached yet. */
static void
builder_path(struct builder *b, const char *leaf)
{
	path_pop(b->x, 0);
	for (size_t i = 0; i < b->depth; i++) {
		const struct frame *f = &b->stack[i];
		const struct dw_cfg_node *n = f->node;
		int top = i + 1 == b->depth;
		if (n->type == DW_CFG_SEQ)
			path_index(b->x, top ? n->nitems : n->nitems - 1);
		else if (top && f->key != NULL)
			path_key(b->x, f->key);
		else if (!top && n->nitems > 0)
			path_key(b->x, n->items[n->nitems - 1]->key);
	}
	if (leaf != NULL)
		path_key(b->x, leaf);
}

static int
at_key(const struct builder *b)
{
	return b->depth > 0 && b->stack[b->depth - 1].node->type == DW_CFG_MAP &&
	       b->stack[b->depth - 1].key == NULL;
}

static struct dw_cfg_node *
node_new(struct builder *b, enum dw_cfg_type type, const yaml_mark_t *m)
{
	struct dw_cfg_node *n = xcalloc(1, sizeof *n);
	n->type = type;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	b->nodes++;
	return n;
}

/* Hang a finished (or just started) value under the current container. */
static void
attach(struct builder *b, struct dw_cfg_node *n)
{
	if (b->depth == 0) {
		b->root = n;
		return;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (f->node->type == DW_CFG_MAP) {
		n->key = f->key;
		n->key_line = f->key_line;
		n->key_col = f->key_col;
		f->key = NULL;
	}
	if (f->node->nitems == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->node->items = xreallocarray(f->node->items, f->cap, sizeof *f->node->items);
	}
	f->node->items[f->node->nitems++] = n;
}

/* Anchors, aliases and tags are refused: aliases are how YAML bombs grow,
 * and nothing in this file needs them. These errors are not fatal, so
 * parsing goes on and reports the rest. */
static void
check_props(struct builder *b, const yaml_event_t *ev, const yaml_char_t *anchor, const yaml_char_t *tag)
{
	unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
	if (anchor != NULL) {
		builder_path(b, NULL);
		err_at(b->x, line, col, "anchors and aliases are not supported (&%.40s); write the value out",
		       (const char *)anchor);
	}
	if (tag != NULL) {
		builder_path(b, NULL);
		err_at(b->x, line, col, "YAML tags are not supported (%.40s)", (const char *)tag);
	}
}

static void
fatal_at(struct builder *b, const yaml_mark_t *m, const char *what)
{
	builder_path(b, NULL);
	err_at(b->x, (unsigned)m->line + 1, (unsigned)m->column + 1, "%s", what);
	b->fatal = 1;
}

static void
on_scalar(struct builder *b, yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;

	if (at_key(b)) {
		struct frame *f = &b->stack[b->depth - 1];
		check_props(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
		if (memchr(v, '\0', len) != NULL) {
			fatal_at(b, &ev->start_mark, "a key contains a NUL character");
			return;
		}
		for (size_t i = 0; i < f->node->nitems; i++) {
			const struct dw_cfg_node *o = f->node->items[i];
			if (strcmp(o->key, v) == 0) {
				builder_path(b, v);
				err_at(b->x, line, col, "duplicate key (already set at line %u)", o->key_line);
				break;
			}
		}
		f->key = xstrndup(v, len);
		f->key_line = line;
		f->key_col = col;
		return;
	}
	struct dw_cfg_node *n = node_new(b, DW_CFG_SCALAR, &ev->start_mark);
	n->value = xstrndup(v, len);
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	check_props(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
	if (memchr(v, '\0', len) != NULL) {
		builder_path(b, NULL);
		err_at(b->x, line, col, "the value contains a NUL character");
	}
	attach(b, n);
}

static void
on_start(struct builder *b, yaml_event_t *ev, enum dw_cfg_type type)
{
	if (at_key(b)) {
		fatal_at(b, &ev->start_mark, "keys must be plain words, not mappings or lists");
		return;
	}
	if (b->depth == CFG_DEPTH_MAX) {
		fatal_at(b, &ev->start_mark, "nested too deeply (more than 32 levels)");
		return;
	}
	struct dw_cfg_node *n = node_new(b, type, &ev->start_mark);
	if (type == DW_CFG_MAP)
		check_props(b, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
	else
		check_props(b, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
	attach(b, n);
	struct frame *f = &b->stack[b->depth++];
	memset(f, 0, sizeof *f);
	f->node = n;
}

static void
on_alias(struct builder *b, yaml_event_t *ev)
{
	builder_path(b, NULL);
	err_at(b->x, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
	       "anchors and aliases are not supported (*%.40s); write the value out",
	       (const char *)ev->data.alias.anchor);
	/* Keep the tree shaped right so later errors point at the right keys. */
	if (at_key(b)) {
		struct frame *f = &b->stack[b->depth - 1];
		f->key = xasprintf("*%s", (const char *)ev->data.alias.anchor);
		f->key_line = (unsigned)ev->start_mark.line + 1;
		f->key_col = (unsigned)ev->start_mark.column + 1;
		return;
	}
	struct dw_cfg_node *n = node_new(b, DW_CFG_SCALAR, &ev->start_mark);
	n->value = xstrdup("");
	attach(b, n);
}

/* Line and column of a byte offset (reader errors carry only the offset). */
static void
offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* Does line (1-based) hold a tab in its leading blanks? Then libyaml's
 * complaint is about indentation and we can say what to do. */
static int
tab_indented(const char *buf, size_t len, size_t line)
{
	size_t i = 0;
	for (size_t l = 1; l < line && i < len; i++)
		if (buf[i] == '\n')
			l++;
	for (; i < len && (buf[i] == ' ' || buf[i] == '\t'); i++)
		if (buf[i] == '\t')
			return 1;
	return 0;
}

static void
syntax_error(struct builder *b, const yaml_parser_t *p, const char *buf, size_t len)
{
	struct ctx *x = b->x;
	const char *problem = p->problem != NULL ? p->problem : "unknown problem";
	path_pop(x, 0);
	if (p->error == YAML_READER_ERROR) {
		unsigned line, col;
		offset_pos(buf, len, p->problem_offset, &line, &col);
		if (p->problem_value >= 0)
			err_at(x, line, col, "syntax error: %s (byte 0x%02x); the file must be UTF-8 text", problem,
			       (unsigned)p->problem_value & 0xffu);
		else
			err_at(x, line, col, "syntax error: %s; the file must be UTF-8 text", problem);
		return;
	}
	if (p->error == YAML_MEMORY_ERROR) {
		err_at(x, 0, 0, "syntax error: libyaml ran out of memory");
		return;
	}
	char context[160] = "";
	if (p->context != NULL)
		snprintf(context, sizeof context, " (%s at line %zu, column %zu)", p->context,
		         (size_t)p->context_mark.line + 1, (size_t)p->context_mark.column + 1);
	size_t line = (size_t)p->problem_mark.line + 1;
	/* "op: >=" reads as a block scalar header: say how to write it. */
	int block = p->context != NULL && strcmp(p->context, "while scanning a block scalar") == 0;
	err_at(x, (unsigned)line, (unsigned)p->problem_mark.column + 1, "syntax error: %s%s%s", problem, context,
	       tab_indented(buf, len, line) ? "; indent with spaces, not tabs"
	       : block                      ? "; a value starting with > or | must be quoted, like op: \">=\""
	                                    : "");
}

/* Parse text into *root (NULL for an empty stream). Errors go to x. */
static void
parse_tree(struct ctx *x, const char *text, size_t len, struct dw_cfg_node **root)
{
	struct builder b;
	yaml_parser_t p;
	yaml_event_t ev;

	memset(&b, 0, sizeof b);
	b.x = x;
	*root = NULL;
	if (!yaml_parser_initialize(&p)) {
		err_at(x, 0, 0, "cannot initialise the YAML parser");
		return;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(&b, &p, text, len);
			break;
		}
		int type = ev.type;
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++b.docs > 1)
				fatal_at(&b, &ev.start_mark,
				         "more than one YAML document (a second \"---\"); keep the whole "
				         "configuration in one document");
			break;
		case YAML_SCALAR_EVENT:
			on_scalar(&b, &ev);
			break;
		case YAML_ALIAS_EVENT:
			on_alias(&b, &ev);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(&b, &ev, DW_CFG_MAP);
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(&b, &ev, DW_CFG_SEQ);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (b.depth > 0) {
				b.depth--;
				free(b.stack[b.depth].key);
				b.stack[b.depth].key = NULL;
			}
			break;
		default:
			break;
		}
		/* libyaml frees event text without clearing it; an inline secret
		 * should not linger in freed memory longer than we can help. */
		if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.value != NULL)
			explicit_bzero(ev.data.scalar.value, ev.data.scalar.length);
		yaml_event_delete(&ev);
		if (!b.fatal && b.nodes > CFG_NODES_MAX) {
			path_pop(x, 0);
			err_at(x, 0, 0, "more than %d values; this is not a dmarcwatch configuration", CFG_NODES_MAX);
			b.fatal = 1;
		}
		if (type == YAML_STREAM_END_EVENT || b.fatal)
			break;
	}
	yaml_parser_delete(&p);
	for (size_t i = 0; i < b.depth; i++)
		free(b.stack[i].key);
	path_pop(x, 0);
	*root = b.root;
}

/* ------------------------------------------------------------------ */
/* Scalar syntax: booleans, numbers, sizes, durations                  */

enum { NUM_OK = 0, NUM_BAD, NUM_OVERFLOW };

/* Leading decimal digits of *s into *v; advances *s. */
static int
parse_digits(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t n = 0;
	if (!isdigit((unsigned char)*p))
		return NUM_BAD;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return NUM_OVERFLOW;
		n = n * 10 + d;
	}
	*s = p;
	*v = n;
	return NUM_OK;
}

static int
parse_uint(const char *s, uint64_t *v)
{
	int rc = parse_digits(&s, v);
	if (rc != NUM_OK)
		return rc;
	return *s == '\0' ? NUM_OK : NUM_BAD;
}

/* Sizes: see dw_parse_size in dw/util.h (shared with --limit). */
static int
parse_size(const char *s, uint64_t *v)
{
	return dw_parse_size(s, v);
}

/*
 * "30s", "5m", "1h", "1d", combinations like "1h30m" or "1h 30m", or a
 * bare number of seconds ("300"). Units: s, m (minutes), h, d; their long
 * forms (sec, min, hour, day, with or without a plural s) work too.
 */
static int
parse_duration(const char *s, uint64_t *v)
{
	static const struct {
		const char *unit;
		uint64_t secs;
	} units[] = {
	    {"s", 1},         {"sec", 1},        {"secs", 1},       {"second", 1},   {"seconds", 1},
	    {"m", 60},        {"min", 60},       {"mins", 60},      {"minute", 60},  {"minutes", 60},
	    {"h", 3600},      {"hour", 3600},    {"hours", 3600},   {"d", 86400},    {"day", 86400},
	    {"days", 86400},
	};
	uint64_t total = 0, n;
	int rc = parse_digits(&s, &n);
	if (rc != NUM_OK)
		return rc;
	if (*s == '\0') {
		*v = n;
		return NUM_OK;
	}
	for (;;) {
		while (*s == ' ')
			s++;
		const char *u = s;
		while (isalpha((unsigned char)*s))
			s++;
		size_t ulen = (size_t)(s - u), i;
		for (i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strlen(units[i].unit) == ulen && strncasecmp(u, units[i].unit, ulen) == 0)
				break;
		if (i == sizeof units / sizeof units[0])
			return NUM_BAD;
		if (n > UINT64_MAX / units[i].secs || total > UINT64_MAX - n * units[i].secs)
			return NUM_OVERFLOW;
		total += n * units[i].secs;
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		rc = parse_digits(&s, &n);
		if (rc != NUM_OK)
			return rc;
		if (*s == '\0')
			return NUM_BAD; /* "1h30": a unit is needed after the first part */
	}
	*v = total;
	return NUM_OK;
}

/* Seconds as the largest exact unit, for messages: "1m", "90s", "1d". */
static const char *
fmt_duration(uint64_t secs, char *buf, size_t len)
{
	if (secs != 0 && secs % 86400 == 0)
		snprintf(buf, len, "%" PRIu64 "d", secs / 86400);
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(buf, len, "%" PRIu64 "h", secs / 3600);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, len, "%" PRIu64 "m", secs / 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", secs);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Phase 2: typed getters                                              */

/*
 * Every getter takes (map, key) and returns 1 when the key is set to a good
 * value (stored in *out), 0 when it is absent or null (*out untouched, so
 * the caller's default stays) and -1 when it is wrong (reported, with the
 * key's dotted path and the value's position).
 */

/* A scalar value, or NULL (reported) when it is a mapping or a list. */
static const struct dw_cfg_node *
scalar(struct ctx *x, const struct dw_cfg_node *n)
{
	if (n->type == DW_CFG_SCALAR)
		return n;
	err_node(x, n, "expected a single value, got %s", type_name(n));
	return NULL;
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* A non-empty string without control characters. The value itself is
 * never quoted in these messages, so this also serves secrets. */
static int
check_str(struct ctx *x, const struct dw_cfg_node *n)
{
	if (scalar(x, n) == NULL)
		return -1;
	if (n->value[0] == '\0') {
		err_node(x, n, "must not be empty");
		return -1;
	}
	if (has_control(n->value)) {
		err_node(x, n, "contains a control character (a tab or a line break?)");
		return -1;
	}
	return 1;
}

static int
get_str(struct ctx *x, const struct dw_cfg_node *map, const char *key, char **out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = check_str(x, n);
	if (rc == 1) {
		free(*out);
		*out = xstrdup(n->value);
	}
	path_pop(x, saved);
	return rc;
}

/* Relative paths are taken from the configuration file's directory. */
static char *
resolve_path(const struct ctx *x, const char *p)
{
	if (p[0] == '/' || x->basedir == NULL)
		return xstrdup(p);
	return xasprintf("%s/%s", x->basedir, p);
}

static int
get_path(struct ctx *x, const struct dw_cfg_node *map, const char *key, char **out)
{
	char *s = NULL;
	int rc = get_str(x, map, key, &s);
	if (rc == 1) {
		free(*out);
		*out = resolve_path(x, s);
		free(s);
	}
	return rc;
}

/* A path to a file that must be readable now (CA bundles). */
static int
get_readable_file(struct ctx *x, const struct dw_cfg_node *map, const char *key, char **out)
{
	int rc = get_path(x, map, key, out);
	if (rc != 1)
		return rc;
	struct stat st;
	const struct dw_cfg_node *n = lookup(map, key);
	size_t saved = path_key(x, key);
	if (stat(*out, &st) != 0 || access(*out, R_OK) != 0) {
		err_node(x, n, "cannot read %s: %s", *out, strerror(errno));
		rc = -1;
	} else if (!S_ISREG(st.st_mode)) {
		err_node(x, n, "%s is not a regular file", *out);
		rc = -1;
	}
	path_pop(x, saved);
	return rc;
}

static int
get_bool(struct ctx *x, const struct dw_cfg_node *map, const char *key, int *out)
{
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	if (scalar(x, n) != NULL) {
		for (size_t i = 0; i < 3 && rc < 0; i++) {
			if (strcasecmp(n->value, yes[i]) == 0) {
				*out = 1;
				rc = 1;
			} else if (strcasecmp(n->value, no[i]) == 0) {
				*out = 0;
				rc = 1;
			}
		}
		if (rc < 0) {
			char q[96];
			err_node(x, n, "expected true or false (yes/no, on/off also work), got %s",
			         quote(n->value, q, sizeof q));
		}
	}
	path_pop(x, saved);
	return rc;
}

static int
get_uint(struct ctx *x, const struct dw_cfg_node *map, const char *key, uint64_t min, uint64_t max,
         uint64_t *out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	uint64_t v = 0;
	if (scalar(x, n) != NULL) {
		char q[96];
		int prc = parse_uint(n->value, &v);
		if (prc == NUM_OK && v >= min && v <= max) {
			*out = v;
			rc = 1;
		} else {
			err_node(x, n, "expected a whole number from %" PRIu64 " to %" PRIu64 ", got %s", min, max,
			         quote(n->value, q, sizeof q));
		}
	}
	path_pop(x, saved);
	return rc;
}

static int
get_unsigned(struct ctx *x, const struct dw_cfg_node *map, const char *key, unsigned min, unsigned max,
             unsigned *out)
{
	uint64_t v = 0;
	int rc = get_uint(x, map, key, min, max, &v);
	if (rc == 1)
		*out = (unsigned)v;
	return rc;
}

/* A scalar with units (a size or a duration), checked against min..max. */
struct units {
	int (*parse)(const char *s, uint64_t *v);
	const char *(*fmt)(uint64_t v, char *buf, size_t len);
	const char *expected; /* "a size like ..." */
};

static const char *
fmt_size(uint64_t v, char *buf, size_t len)
{
	return dw_fmt_size(v, buf, len);
}

static const struct units size_units = {parse_size, fmt_size, "a size like 512KiB, 64MiB, 512M or 1G"};
static const struct units duration_units = {parse_duration, fmt_duration, "a duration like 30s, 5m, 1h or 1h30m"};

static int
get_scaled(struct ctx *x, const struct dw_cfg_node *map, const char *key, const struct units *u, uint64_t min,
           uint64_t max, uint64_t *out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	uint64_t v = 0;
	if (scalar(x, n) != NULL) {
		char q[96], lo[32], hi[32];
		int prc = u->parse(n->value, &v);
		if (prc == NUM_BAD)
			err_node(x, n, "expected %s, got %s", u->expected, quote(n->value, q, sizeof q));
		else if (prc == NUM_OVERFLOW || v < min || v > max)
			err_node(x, n, "must be from %s to %s, got %s", u->fmt(min, lo, sizeof lo),
			         u->fmt(max, hi, sizeof hi), quote(n->value, q, sizeof q));
		else {
			*out = v;
			rc = 1;
		}
	}
	path_pop(x, saved);
	return rc;
}

static int
get_size(struct ctx *x, const struct dw_cfg_node *map, const char *key, uint64_t min, uint64_t max,
         uint64_t *out)
{
	return get_scaled(x, map, key, &size_units, min, max, out);
}

static int
get_duration(struct ctx *x, const struct dw_cfg_node *map, const char *key, unsigned min, unsigned max,
             unsigned *out)
{
	uint64_t v = 0;
	int rc = get_scaled(x, map, key, &duration_units, min, max, &v);
	if (rc == 1)
		*out = (unsigned)v;
	return rc;
}

/* One of names[] (case does not matter); *out = values[i]. */
static int
get_enum(struct ctx *x, const struct dw_cfg_node *map, const char *key, const char *const *names,
         const int *values, int *out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	if (scalar(x, n) != NULL) {
		char list[256] = "", q[96];
		size_t i;
		for (i = 0; names[i] != NULL; i++)
			if (strcasecmp(n->value, names[i]) == 0)
				break;
		if (names[i] != NULL) {
			*out = values[i];
			rc = 1;
		} else {
			for (i = 0; names[i] != NULL; i++) {
				size_t l = strlen(list);
				snprintf(list + l, sizeof list - l, "%s%s", i == 0 ? "" : names[i + 1] ? ", " : " or ",
				         names[i]);
			}
			err_node(x, n, "expected %s, got %s", list, quote(n->value, q, sizeof q));
		}
	}
	path_pop(x, saved);
	return rc;
}

/* A mapping (section), or NULL when absent; wrong types are reported. The
 * value is not quoted: sections like oauth2 hold secrets. */
static const struct dw_cfg_node *
get_map(struct ctx *x, const struct dw_cfg_node *map, const char *key, int *bad)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL || n->type == DW_CFG_MAP)
		return n;
	size_t saved = path_key(x, key);
	err_node(x, n, "expected a mapping (indented key: value lines), got %s", type_name(n));
	path_pop(x, saved);
	if (bad != NULL)
		*bad = 1;
	return NULL;
}

/* "key is required" is reported at the mapping that lacks it. */
DW_PRINTF(4, 5) static void
missing(struct ctx *x, const struct dw_cfg_node *map, const char *key, const char *fmt, ...)
{
	va_list ap;
	size_t saved = path_key(x, key);
	va_start(ap, fmt);
	vmsg(x, 0, map->line, map->col, fmt, ap);
	va_end(ap);
	path_pop(x, saved);
}

/* A key that is valid somewhere else but not here. */
static void
misplaced(struct ctx *x, const struct dw_cfg_node *map, const char *const *keys, const char *why)
{
	for (size_t i = 0; i < map->nitems; i++) {
		const struct dw_cfg_node *n = map->items[i];
		for (size_t k = 0; keys[k] != NULL; k++) {
			if (strcmp(n->key, keys[k]) != 0)
				continue;
			size_t saved = path_key(x, n->key);
			err_key(x, n, "%s", why);
			path_pop(x, saved);
		}
	}
}

/* Optimal string alignment distance, for "did you mean". Short strings
 * only; longer ones are not worth a suggestion. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[33][33];
	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
			size_t best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best)
				best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

/* Every key of map must be in allowed; the others are reported. */
static void
check_keys(struct ctx *x, const struct dw_cfg_node *map, const char *const *allowed)
{
	for (size_t i = 0; i < map->nitems; i++) {
		const struct dw_cfg_node *n = map->items[i];
		const char *best = NULL;
		size_t bestd = SIZE_MAX, k;
		for (k = 0; allowed[k] != NULL; k++) {
			if (strcmp(n->key, allowed[k]) == 0)
				break;
			size_t dist = edit_distance(n->key, allowed[k]);
			if (dist < bestd) {
				bestd = dist;
				best = allowed[k];
			}
		}
		if (allowed[k] != NULL)
			continue;
		size_t saved = path_key(x, n->key);
		if (best != NULL && bestd <= (strlen(n->key) <= 4 ? 1u : 2u))
			err_key(x, n, "unknown key (did you mean %s?)", best);
		else
			err_key(x, n, "unknown key");
		path_pop(x, saved);
	}
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

/*
 * The first line of a secret file. Refused: not a regular file, larger
 * than SECRET_FILE_MAX, an empty first line, a NUL byte. *loose is set
 * when group or others have any access. The buffer is wiped.
 */
static int
read_secret_file(const char *path, char **out, int *loose, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dw_err(why, whylen, -1, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	int rc = -1;
	char *buf = NULL;
	size_t len = 0;
	if (fstat(fd, &st) != 0) {
		dw_err(why, whylen, -1, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		dw_err(why, whylen, -1, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_size > SECRET_FILE_MAX) {
		dw_err(why, whylen, -1, "%s is larger than 64 KiB; it should hold the secret on one line", path);
		goto out;
	}
	*loose = (st.st_mode & 077) != 0;
	/* One byte more than the limit, so a file that grew since fstat is seen. */
	buf = xmalloc(SECRET_FILE_MAX + 1);
	for (;;) {
		ssize_t r = read(fd, buf + len, SECRET_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			dw_err(why, whylen, -1, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > SECRET_FILE_MAX) {
			dw_err(why, whylen, -1, "%s is larger than 64 KiB; it should hold the secret on one line",
			       path);
			goto out;
		}
	}
	size_t n = 0;
	while (n < len && buf[n] != '\n')
		n++;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		dw_err(why, whylen, -1, "%s is empty (the secret goes on its first line)", path);
		goto out;
	}
	if (memchr(buf, '\0', n) != NULL) {
		dw_err(why, whylen, -1, "%s contains a NUL byte; it should hold the secret as text", path);
		goto out;
	}
	*out = xstrndup(buf, n);
	rc = 0;
out:
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	close(fd);
	return rc;
}

/* "env:NAME": the value of an environment variable (named, never shown). */
static int
read_secret_env(struct ctx *x, const struct dw_cfg_node *n, char **out)
{
	const char *name = n->value + 4;
	size_t i;
	for (i = 0; name[i] != '\0'; i++)
		if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
			break;
	if (i == 0 || name[i] != '\0' || isdigit((unsigned char)name[0])) {
		err_node(x, n, "env: must be followed by an environment variable name (letters, digits, _)");
		return -1;
	}
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0') {
		err_node(x, n, "environment variable %s is %s", name, v == NULL ? "not set" : "empty");
		return -1;
	}
	if (has_control(v)) {
		err_node(x, n, "environment variable %s contains a control character", name);
		return -1;
	}
	*out = xstrdup(v);
	return 1;
}

/*
 * A secret given as KEY (inline, or env:NAME) or as KEY_file (a path whose
 * first line is the secret). Returns like the getters. Only names and
 * paths appear in messages, never the secret.
 */
static int
get_secret(struct ctx *x, const struct dw_cfg_node *map, const char *key, char **out)
{
	char fkey[64];
	snprintf(fkey, sizeof fkey, "%s_file", key);
	const struct dw_cfg_node *in = lookup(map, key), *fn = lookup(map, fkey);
	int rc = 0;

	if (in != NULL && fn != NULL) {
		size_t saved = path_key(x, fkey);
		err_key(x, fn, "set either %s or %s, not both", key, fkey);
		path_pop(x, saved);
		return -1;
	}
	if (in != NULL) {
		size_t saved = path_key(x, key);
		rc = check_str(x, in);
		if (rc == 1 && strncmp(in->value, "env:", 4) == 0) {
			rc = read_secret_env(x, in, out);
		} else if (rc == 1) {
			*out = xstrdup(in->value);
			warn_at(x, in->line, in->col,
			        "secret written in the configuration file; put it in %s (chmod 600) or use env:NAME",
			        fkey);
		}
		path_pop(x, saved);
		return rc;
	}
	if (fn != NULL) {
		char *p = NULL;
		rc = get_path(x, map, fkey, &p);
		if (rc != 1)
			return rc;
		size_t saved = path_key(x, fkey);
		char why[PATH_MAX + 128];
		int loose = 0;
		if (read_secret_file(p, out, &loose, why, sizeof why) != 0) {
			err_node(x, fn, "%s", why);
			rc = -1;
		} else if (loose) {
			warn_at(x, fn->line, fn->col, "%s is readable by group or others (chmod 600 it)", p);
		}
		path_pop(x, saved);
		free(p);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

static const char *const top_keys[] = {"state_dir", "timezone",  "log",    "limits",     "accounts",
                                       "notifiers", "plugin_dir", "outbox", "rules", "settle", "digest",
                                       "metrics_file", "metrics_listen", NULL};
static const char *const outbox_keys[] = {"keep", NULL};
/* Keys of a notifiers: entry the agent keeps; every other goes to the plugin. */
static const char *const notifier_host_keys[] = {"name",      "plugin",    "timeout",
                                                 "max_age",   "retry_min", "retry_max", NULL};
static const char *const log_keys[] = {"level", "to", NULL};
static const char *const limits_keys[] = {"mail_max",        "decompressed_max", "ratio_max",
                                          "ratio_grace",     "zip_members_max",  "rfc822_depth_max",
                                          "records_max",     "xml_depth_max",    NULL};
static const char *const account_keys[] = {
    "name",           "source",         "host",             "port",          "tls",
    "allow_plaintext", "ca_file",       "verify",           "username",      "auth",
    "password",       "password_file",  "oauth2",           "path",          "folder",
    "archive_folder", "invalid_folder", "untrusted_folder", "other_folder",  "mode",
    "poll_interval",  "timeout",        "batch_bytes",      "trust",         NULL};
static const char *const imap_only_keys[] = {"host",     "port",          "tls",    "allow_plaintext",
                                             "ca_file",  "verify",        "username", "auth",
                                             "password", "password_file", "oauth2", NULL};
static const char *const maildir_only_keys[] = {"path", NULL};
static const char *const oauth2_keys[] = {"token_url",          "client_id",     "client_secret",
                                          "client_secret_file", "refresh_token", "refresh_token_file",
                                          "token_command",      "ca_file",       NULL};
static const char *const trust_keys[] = {"authserv_id", "require", NULL};

static void
load_log(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	static const char *const levels[] = {"error", "warning", "info", "debug", NULL};
	static const int level_v[] = {0, 1, 2, 3};
	static const char *const tos[] = {"stderr", "syslog", NULL};
	static const int to_v[] = {DW_LOG_STDERR, DW_LOG_SYSLOG};
	const struct dw_cfg_node *log = get_map(x, root, "log", NULL);
	if (log == NULL)
		return;
	size_t saved = path_key(x, "log");
	check_keys(x, log, log_keys);
	int v;
	if (get_enum(x, log, "level", levels, level_v, &v) == 1)
		c->log_level = v;
	if (get_enum(x, log, "to", tos, to_v, &v) == 1)
		c->log_to = (enum dw_log_to)v;
	path_pop(x, saved);
}

static void
load_limits(struct ctx *x, const struct dw_cfg_node *root, struct dw_limits *l)
{
	const struct dw_cfg_node *m = get_map(x, root, "limits", NULL);
	if (m == NULL)
		return;
	size_t saved = path_key(x, "limits");
	check_keys(x, m, limits_keys);
	/* Floors keep a typo from starving the parser; ceilings keep a typo
	 * from opening the door the limit is there to close. */
	get_size(x, m, "mail_max", 64 * KiB, 2 * GiB, &l->mail_max);
	get_size(x, m, "decompressed_max", 64 * KiB, 64 * GiB, &l->decompressed_max);
	get_uint(x, m, "ratio_max", 1, 1000000, &l->ratio_max);
	get_size(x, m, "ratio_grace", 0, 1 * GiB, &l->ratio_grace);
	get_unsigned(x, m, "zip_members_max", 1, 10000, &l->zip_members_max);
	get_unsigned(x, m, "rfc822_depth_max", 0, 16, &l->rfc822_depth_max);
	get_uint(x, m, "records_max", 1, 1000000000, &l->records_max);
	get_unsigned(x, m, "xml_depth_max", 8, 1024, &l->xml_depth_max);
	path_pop(x, saved);
}

/* https, or plain http to the loopback interface (a test endpoint). The
 * URL is never quoted: it could carry credentials. */
static int
url_ok(const char *u)
{
	static const char *const loop[] = {"127.0.0.1", "localhost", "[::1]"};
	if (strncasecmp(u, "https://", 8) == 0)
		return u[8] != '\0' && u[8] != '/';
	if (strncasecmp(u, "http://", 7) != 0)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(loop[i]);
		if (strncasecmp(u + 7, loop[i], l) == 0 && (u[7 + l] == '\0' || u[7 + l] == ':' || u[7 + l] == '/'))
			return 1;
	}
	return 0;
}

static void
load_oauth2(struct ctx *x, const struct dw_cfg_node *m, struct dw_oauth2_cfg *o)
{
	size_t saved = path_key(x, "oauth2");
	check_keys(x, m, oauth2_keys);
	if (get_str(x, m, "token_url", &o->token_url) == 1 && !url_ok(o->token_url)) {
		size_t s2 = path_key(x, "token_url");
		err_node(x, lookup(m, "token_url"),
		         "must be an https:// URL (plain http only to 127.0.0.1, localhost or [::1])");
		path_pop(x, s2);
	}
	int id = get_str(x, m, "client_id", &o->client_id);
	get_secret(x, m, "client_secret", &o->client_secret);
	int rt = get_secret(x, m, "refresh_token", &o->refresh_token);
	int cmd = get_str(x, m, "token_command", &o->token_command);
	get_readable_file(x, m, "ca_file", &o->ca_file);

	if (cmd != 0 && rt != 0) {
		size_t s2 = path_key(x, "token_command");
		err_key(x, lookup(m, "token_command"),
		        "set either token_command or refresh_token_file (with client_id), not both");
		path_pop(x, s2);
	} else if (cmd == 0 && rt == 0) {
		err_node(x, m, "needs refresh_token_file (with client_id), or token_command");
	} else if (rt != 0 && id == 0) {
		missing(x, m, "client_id", "required with refresh_token (the OAuth client that issued it)");
	}
	path_pop(x, saved);
}

static void
load_trust(struct ctx *x, const struct dw_cfg_node *acct, struct dw_account_cfg *a)
{
	static const char *const reqs[] = {"dmarc", "dkim", "none", NULL};
	static const int req_v[] = {DW_TRUST_DMARC, DW_TRUST_DKIM, DW_TRUST_NONE};
	const struct dw_cfg_node *t = get_map(x, acct, "trust", NULL);
	a->trust_require = DW_TRUST_NONE;
	if (t == NULL)
		return;
	size_t saved = path_key(x, "trust");
	check_keys(x, t, trust_keys);
	int v, bad = 0;
	a->trust_require = DW_TRUST_DMARC;
	if (get_enum(x, t, "require", reqs, req_v, &v) == 1)
		a->trust_require = (enum dw_trust_require)v;
	else if (lookup(t, "require") != NULL)
		bad = 1;

	const struct dw_cfg_node *ids = lookup(t, "authserv_id");
	if (ids != NULL) {
		size_t s2 = path_key(x, "authserv_id");
		/* One id may be written without the list brackets. */
		const struct dw_cfg_node *const *items = &ids;
		size_t nitems = 1;
		if (ids->type == DW_CFG_SEQ) {
			items = (const struct dw_cfg_node *const *)ids->items;
			nitems = ids->nitems;
		}
		if (ids->type == DW_CFG_MAP) {
			err_node(x, ids, "expected a list of authserv-ids, got a mapping");
			bad = 1;
			nitems = 0;
		} else if (nitems > AUTHSERV_IDS_MAX) {
			err_node(x, ids, "more than %d authserv-ids", AUTHSERV_IDS_MAX);
			bad = 1;
			nitems = 0;
		}
		a->authserv_ids = xcalloc(nitems ? nitems : 1, sizeof *a->authserv_ids);
		for (size_t i = 0; i < nitems; i++) {
			const struct dw_cfg_node *n = items[i];
			size_t s3 = ids->type == DW_CFG_SEQ ? path_index(x, i) : x->plen;
			char q[96];
			if (check_str(x, n) != 1) {
				bad = 1;
			} else if (strpbrk(n->value, " ;") != NULL) {
				err_node(x, n, "an authserv-id is one word (a host name), got %s",
				         quote(n->value, q, sizeof q));
				bad = 1;
			} else {
				a->authserv_ids[a->nauthserv_ids++] = xstrdup(n->value);
			}
			path_pop(x, s3);
		}
		path_pop(x, s2);
	}
	if (a->trust_require != DW_TRUST_NONE && a->nauthserv_ids == 0 && !bad) {
		const char *req = a->trust_require == DW_TRUST_DKIM ? "dkim" : "dmarc";
		missing(x, t, "authserv_id",
		        "required when trust.require is %s: list the authserv-id your own mail servers write in "
		        "Authentication-Results (or set require: none)",
		        req);
	}
	path_pop(x, saved);
}

static void
load_folders(struct ctx *x, const struct dw_cfg_node *m, struct dw_account_cfg *a)
{
	static const char *const keys[] = {"archive_folder", "invalid_folder", "untrusted_folder", "other_folder"};
	char **slots[] = {&a->archive_folder, &a->invalid_folder, &a->untrusted_folder, &a->other_folder};
	get_str(x, m, "folder", &a->folder);
	for (size_t i = 0; i < 4; i++) {
		if (get_str(x, m, keys[i], slots[i]) != 1 || strcmp(*slots[i], a->folder) != 0)
			continue;
		size_t saved = path_key(x, keys[i]);
		err_node(x, lookup(m, keys[i]), "is the folder being read (%s); leave it out to keep mail where it is",
		         a->folder);
		path_pop(x, saved);
	}
}

static void
load_imap(struct ctx *x, const struct dw_cfg_node *m, struct dw_account_cfg *a, int poll_set)
{
	static const char *const tlss[] = {"implicit", "starttls", "none", NULL};
	static const int tls_v[] = {DW_TLS_IMPLICIT, DW_TLS_STARTTLS, DW_TLS_NONE};
	static const char *const auths[] = {"password", "xoauth2", NULL};
	static const int auth_v[] = {DW_AUTH_PASSWORD, DW_AUTH_XOAUTH2};
	int v, oauth_bad = 0;

	misplaced(x, m, maildir_only_keys, "only used with source: maildir");
	if (get_str(x, m, "host", &a->host) == 0)
		missing(x, m, "host", "required for source: imap (the IMAP server's name)");
	else if (a->host != NULL && strchr(a->host, ' ') != NULL) {
		size_t saved = path_key(x, "host");
		err_node(x, lookup(m, "host"), "a host name has no spaces");
		path_pop(x, saved);
	}
	a->tls = DW_TLS_IMPLICIT;
	if (get_enum(x, m, "tls", tlss, tls_v, &v) == 1)
		a->tls = (enum dw_tls_mode)v;
	get_bool(x, m, "allow_plaintext", &a->allow_plaintext);
	a->port = a->tls == DW_TLS_IMPLICIT ? 993 : 143;
	get_unsigned(x, m, "port", 1, 65535, &a->port);
	get_readable_file(x, m, "ca_file", &a->ca_file);
	get_bool(x, m, "verify", &a->verify);
	if (get_str(x, m, "username", &a->username) == 0)
		missing(x, m, "username", "required for source: imap");

	const struct dw_cfg_node *om = get_map(x, m, "oauth2", &oauth_bad);
	/* auth defaults to what the credentials given suggest. */
	a->auth = (om != NULL || oauth_bad) ? DW_AUTH_XOAUTH2 : DW_AUTH_PASSWORD;
	int auth_rc = get_enum(x, m, "auth", auths, auth_v, &v);
	if (auth_rc == 1)
		a->auth = (enum dw_auth_kind)v;
	int pw = get_secret(x, m, "password", &a->password);

	if (a->auth == DW_AUTH_PASSWORD && auth_rc >= 0) {
		if (pw == 0)
			missing(x, m, "password_file",
			        "required with auth: password (a file holding the password, or password: env:NAME)");
		if (om != NULL) {
			size_t saved = path_key(x, "oauth2");
			err_key(x, om, "only used with auth: xoauth2");
			path_pop(x, saved);
		}
	} else if (a->auth == DW_AUTH_XOAUTH2 && auth_rc >= 0) {
		const struct dw_cfg_node *p = lookup(m, "password") ? lookup(m, "password") : lookup(m, "password_file");
		if (p != NULL) {
			size_t saved = path_key(x, p->key);
			err_key(x, p, "not used with auth: xoauth2 (the oauth2 section holds the credentials)");
			path_pop(x, saved);
		}
		if (om != NULL)
			load_oauth2(x, om, &a->oauth2);
		else if (!oauth_bad)
			missing(x, m, "oauth2",
			        "required with auth: xoauth2 (refresh_token_file and client_id, or token_command)");
		if (a->oauth2.token_url == NULL)
			a->oauth2.token_url = xstrdup(DEFAULT_TOKEN_URL);
	}

	if (a->tls == DW_TLS_NONE && !a->allow_plaintext) {
		size_t saved = path_key(x, "tls");
		err_node(x, lookup(m, "tls"),
		         "none sends the credentials in clear text; set allow_plaintext: true to allow it "
		         "(only for a server on this machine)");
		path_pop(x, saved);
	}
	if (poll_set && a->poll_interval < 60 && a->host != NULL && strcasecmp(a->host, "imap.gmail.com") == 0) {
		const struct dw_cfg_node *n = lookup(m, "poll_interval");
		size_t saved = path_key(x, "poll_interval");
		warn_at(x, n->line, n->col,
		        "polling Gmail more often than once a minute may get the account throttled; use 1m or more "
		        "(or mode: idle)");
		path_pop(x, saved);
	}
}

static void
load_account(struct ctx *x, const struct dw_cfg_node *m, struct dw_config *c, size_t idx)
{
	static const char *const sources[] = {"imap", "maildir", NULL};
	static const int source_v[] = {DW_SRC_IMAP, DW_SRC_MAILDIR};
	static const char *const modes[] = {"idle", "poll", NULL};
	static const int mode_v[] = {DW_MODE_IDLE, DW_MODE_POLL};
	struct dw_account_cfg *a = &c->accounts[idx];
	int v;

	a->line = m->line;
	a->verify = 1;
	a->folder = xstrdup(DEFAULT_FOLDER);
	a->poll_interval = DEFAULT_POLL_INTERVAL;
	a->timeout = DEFAULT_TIMEOUT;
	a->batch_bytes = DEFAULT_BATCH_BYTES;
	if (m->type != DW_CFG_MAP) {
		err_node(x, m, "expected an account (indented key: value lines), got %s", type_name(m));
		return;
	}
	check_keys(x, m, account_keys);

	int name_rc = get_str(x, m, "name", &a->name);
	if (name_rc == 0)
		missing(x, m, "name", "required (a short name for logs and the database: letters, digits, . _ -)");
	if (name_rc == 1) {
		const struct dw_cfg_node *n = lookup(m, "name");
		size_t saved = path_key(x, "name");
		char q[96];
		size_t len = strspn(a->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
		if (a->name[len] != '\0' || len > ACCOUNT_NAME_MAX)
			err_node(x, n, "expected up to %d letters, digits, '.', '_' or '-', got %s", ACCOUNT_NAME_MAX,
			         quote(a->name, q, sizeof q));
		for (size_t i = 0; i < idx; i++) {
			if (c->accounts[i].name != NULL && strcmp(c->accounts[i].name, a->name) == 0) {
				err_node(x, n, "%s is already the name of accounts[%zu] (line %u)", quote(a->name, q, sizeof q),
				         i, c->accounts[i].line);
				break;
			}
		}
		path_pop(x, saved);
	}

	int src_rc = get_enum(x, m, "source", sources, source_v, &v);
	if (src_rc == 1)
		a->source = (enum dw_source_kind)v;
	else if (src_rc == 0)
		missing(x, m, "source", "required: imap or maildir");

	load_folders(x, m, a);
	a->mode = a->source == DW_SRC_MAILDIR ? DW_MODE_POLL : DW_MODE_IDLE;
	if (get_enum(x, m, "mode", modes, mode_v, &v) == 1) {
		a->mode = (enum dw_wait_mode)v;
		if (a->mode == DW_MODE_IDLE && a->source == DW_SRC_MAILDIR) {
			size_t saved = path_key(x, "mode");
			err_node(x, lookup(m, "mode"), "idle needs source: imap; a maildir is polled (mode: poll)");
			path_pop(x, saved);
		}
	}
	int poll_set = get_duration(x, m, "poll_interval", 1, 86400, &a->poll_interval) == 1;
	get_duration(x, m, "timeout", 1, 3600, &a->timeout);
	get_size(x, m, "batch_bytes", 64 * KiB, 1 * GiB, &a->batch_bytes);
	load_trust(x, m, a);

	if (a->source == DW_SRC_IMAP) {
		load_imap(x, m, a, poll_set);
	} else if (a->source == DW_SRC_MAILDIR) {
		misplaced(x, m, imap_only_keys, "only used with source: imap");
		if (get_path(x, m, "path", &a->path) == 0)
			missing(x, m, "path", "required for source: maildir (the maildir directory)");
	}
}

static void
load_accounts(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	const struct dw_cfg_node *l = lookup(root, "accounts");
	size_t saved = path_key(x, "accounts");
	if (l == NULL) {
		err_node(x, root, "required: a list of at least one account");
	} else if (l->type != DW_CFG_SEQ) {
		err_node(x, l, "expected a list of accounts (each starting with \"- name:\"), got %s", type_name(l));
	} else if (l->nitems == 0) {
		err_node(x, l, "at least one account is required");
	} else if (l->nitems > ACCOUNTS_MAX) {
		err_node(x, l, "more than %d accounts", ACCOUNTS_MAX);
	} else {
		c->accounts = xcalloc(l->nitems, sizeof *c->accounts);
		c->naccounts = l->nitems;
		for (size_t i = 0; i < l->nitems; i++) {
			size_t s2 = path_index(x, i);
			load_account(x, l->items[i], c, i);
			path_pop(x, s2);
		}
	}
	path_pop(x, saved);
}

static int
name_ok(const char *s)
{
	for (const char *p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
			return 0;
	return s[0] != '\0' && strlen(s) <= 64;
}

/* A plugin key's value: a scalar, or a list of scalars (repeated keys). */
static void
add_plugin_kv(struct ctx *x, struct dw_notifier_cfg *nc, const struct dw_cfg_node *n)
{
	size_t saved = path_key(x, n->key);
	size_t klen = strlen(n->key);
	int is_file = klen > 5 && strcmp(n->key + klen - 5, "_file") == 0;
	const struct dw_cfg_node *const *items = (const struct dw_cfg_node *const *)&n;
	size_t count = 1;
	if (n->type == DW_CFG_SEQ) {
		items = (const struct dw_cfg_node *const *)n->items;
		count = n->nitems;
		if (count == 0)
			err_node(x, n, "an empty list; leave the key out instead");
	} else if (n->type == DW_CFG_MAP) {
		err_node(x, n, "plugin settings are single values or lists of values, not mappings");
		count = 0;
	}
	for (size_t i = 0; i < count; i++) {
		const struct dw_cfg_node *v = items[i];
		if (v->type != DW_CFG_SCALAR) {
			err_node(x, v, "expected a single value in this list, got %s", type_name(v));
			continue;
		}
		if (has_control(v->value)) {
			err_node(x, v, "contains a control character (a tab or a line break?)");
			continue;
		}
		nc->kv = xreallocarray(nc->kv, nc->nkv + 1, sizeof *nc->kv);
		struct dw_notifier_kv *kv = &nc->kv[nc->nkv++];
		kv->key = xstrdup(n->key);
		kv->value = is_file && v->value[0] != '\0' ? resolve_path(x, v->value) : xstrdup(v->value);
		kv->line = v->line;
		kv->col = v->col;
	}
	path_pop(x, saved);
}

static void
load_notifier(struct ctx *x, const struct dw_cfg_node *m, struct dw_config *c, size_t idx)
{
	struct dw_notifier_cfg *nc = &c->notifiers[idx];
	nc->line = m->line;
	nc->col = m->col;
	nc->timeout = 30;
	nc->max_age = DW_NOTIFIER_MAX_AGE_DEFAULT;
	nc->retry_min = 30;
	nc->retry_max = 3600;
	if (m->type != DW_CFG_MAP) {
		err_node(x, m, "expected a notifier (name:, plugin: and its settings), got %s", type_name(m));
		return;
	}
	if (get_str(x, m, "name", &nc->name) == 0)
		missing(x, m, "name", "required: the name rules and test-notify use");
	else if (nc->name != NULL && !name_ok(nc->name)) {
		size_t saved = path_key(x, "name");
		err_node(x, lookup(m, "name"), "use letters, digits, '_', '-' and '.' only (at most 64)");
		path_pop(x, saved);
	}
	for (size_t i = 0; nc->name != NULL && i < idx; i++) {
		if (c->notifiers[i].name != NULL && strcmp(c->notifiers[i].name, nc->name) == 0) {
			size_t saved = path_key(x, "name");
			err_node(x, lookup(m, "name"), "a notifier named \"%s\" is already defined at line %u",
			         nc->name, c->notifiers[i].line);
			path_pop(x, saved);
		}
	}
	const struct dw_cfg_node *pn = lookup(m, "plugin");
	if (get_str(x, m, "plugin", &nc->plugin) == 0) {
		missing(x, m, "plugin", "required: slack, email, syslog, webhook, exec or a path to a .so");
	} else if (nc->plugin != NULL) {
		nc->plugin_line = pn->line;
		nc->plugin_col = pn->col;
		if (nc->plugin[0] != '/' && strchr(nc->plugin, '/') != NULL) {
			size_t saved = path_key(x, "plugin");
			err_node(x, pn, "a plugin name (like slack) or an absolute path to a .so file");
			path_pop(x, saved);
		}
	}
	get_duration(x, m, "timeout", 1, 3600, &nc->timeout);
	get_duration(x, m, "max_age", 1, 30u * 86400, &nc->max_age);
	get_duration(x, m, "retry_min", 1, 86400, &nc->retry_min);
	get_duration(x, m, "retry_max", 1, 7 * 86400, &nc->retry_max);
	if (nc->retry_max < nc->retry_min)
		nc->retry_max = nc->retry_min;
	for (size_t i = 0; i < m->nitems; i++) {
		size_t k = 0;
		while (notifier_host_keys[k] != NULL && strcmp(notifier_host_keys[k], m->items[i]->key) != 0)
			k++;
		if (notifier_host_keys[k] == NULL)
			add_plugin_kv(x, nc, m->items[i]);
	}
}

static void
load_notifiers(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	const struct dw_cfg_node *l = lookup(root, "notifiers");
	if (l == NULL || is_null(l))
		return;
	size_t saved = path_key(x, "notifiers");
	if (l->type != DW_CFG_SEQ) {
		err_node(x, l, "expected a list of notifiers (each starting with \"- name:\"), got %s", type_name(l));
	} else if (l->nitems > 64) {
		err_node(x, l, "more than 64 notifiers");
	} else if (l->nitems > 0) {
		c->notifiers = xcalloc(l->nitems, sizeof *c->notifiers);
		c->nnotifiers = l->nitems;
		for (size_t i = 0; i < l->nitems; i++) {
			size_t s2 = path_index(x, i);
			load_notifier(x, l->items[i], c, i);
			path_pop(x, s2);
		}
	}
	path_pop(x, saved);
}

/* ------------------------------------------------------------------ */
/* Rules and the digest                                                */

#define RULES_MAX 256
#define RULE_LIST_MAX 1024           /* entries of one list (domains, sources...) */

static const char *const rule_kind_names[] = {"threshold",        "baseline",      "new_source",
                                              "missing_reporter", "policy_change", "report_health",
                                              NULL};
static const int rule_kind_v[] = {DW_RULE_THRESHOLD,        DW_RULE_BASELINE,      DW_RULE_NEW_SOURCE,
                                  DW_RULE_MISSING_REPORTER, DW_RULE_POLICY_CHANGE, DW_RULE_REPORT_HEALTH};

/* Which kinds use a key: bit (1 << kind). */
#define RK(k) (1u << (k))
#define RK_ALL (RK(DW_RULE_THRESHOLD) | RK(DW_RULE_BASELINE) | RK(DW_RULE_NEW_SOURCE) |               \
                RK(DW_RULE_MISSING_REPORTER) | RK(DW_RULE_POLICY_CHANGE) | RK(DW_RULE_REPORT_HEALTH))
#define RK_DOMAINS (RK_ALL & ~RK(DW_RULE_REPORT_HEALTH))
static const struct {
	const char *key;
	unsigned kinds;
} rule_keys[] = {
    {"name", RK_ALL},
    {"kind", RK_ALL},
    {"domains", RK_DOMAINS},
    {"severity", RK_ALL},
    {"cooldown", RK_ALL},
    {"resolve_after", RK_ALL},
    {"notify", RK_ALL},
    {"notify_resolved", RK_ALL},
    {"runbook", RK_ALL},
    {"enabled", RK_ALL},
    {"ignore", RK_DOMAINS},
    {"metric", RK(DW_RULE_THRESHOLD)},
    {"window", RK(DW_RULE_THRESHOLD)},
    {"op", RK(DW_RULE_THRESHOLD)},
    {"value", RK(DW_RULE_THRESHOLD)},
    {"min_messages", RK(DW_RULE_THRESHOLD) | RK(DW_RULE_BASELINE) | RK(DW_RULE_NEW_SOURCE)},
    {"group", RK(DW_RULE_THRESHOLD) | RK(DW_RULE_BASELINE) | RK(DW_RULE_NEW_SOURCE)},
    {"baseline_days", RK(DW_RULE_BASELINE)},
    {"stat", RK(DW_RULE_BASELINE)},
    {"drop_points", RK(DW_RULE_BASELINE)},
    {"volume_change", RK(DW_RULE_BASELINE)},
    {"volume_min", RK(DW_RULE_BASELINE)},
    {"lookback", RK(DW_RULE_NEW_SOURCE)},
    {"passing", RK(DW_RULE_NEW_SOURCE)},
    {"seen_days", RK(DW_RULE_MISSING_REPORTER)},
    {"of_days", RK(DW_RULE_MISSING_REPORTER)},
    {"silent_days", RK(DW_RULE_MISSING_REPORTER)},
    {"disagree", RK(DW_RULE_POLICY_CHANGE)},
    {"invalid_share", RK(DW_RULE_REPORT_HEALTH)},
    {"silence", RK(DW_RULE_REPORT_HEALTH)},
    {"min_mails", RK(DW_RULE_REPORT_HEALTH)},
};
#define NRULE_KEYS (sizeof rule_keys / sizeof rule_keys[0])
static const char *const ignore_keys[] = {"sources", "reporters", "reasons", NULL};
static const char *const digest_keys[] = {"time", "notify", "domains", "top", NULL};
static const char *const reason_names[] = {"forwarded",    "sampled_out", "trusted_forwarder", "mailing_list",
                                           "local_policy", "other",       "policy_test_mode",  NULL};

/* A list of single values, or one value written without the brackets.
 * Each item is checked as a non-empty string and handed to fn with the
 * path at the item. Returns like the getters. */
typedef int (*item_fn)(struct ctx *x, const struct dw_cfg_node *n, void *arg);

static int
get_list(struct ctx *x, const struct dw_cfg_node *map, const char *key, item_fn fn, void *arg)
{
	const struct dw_cfg_node *l = lookup(map, key);
	if (l == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = 1;
	if (l->type == DW_CFG_MAP) {
		err_node(x, l, "expected a list ([a, b] or \"- a\" lines), got a mapping");
		rc = -1;
	} else if (l->type == DW_CFG_SCALAR) {
		rc = check_str(x, l) == 1 ? fn(x, l, arg) : -1;
	} else if (l->nitems == 0) {
		err_node(x, l, "an empty list; leave the key out instead");
		rc = -1;
	} else if (l->nitems > RULE_LIST_MAX) {
		err_node(x, l, "more than %d entries", RULE_LIST_MAX);
		rc = -1;
	} else {
		for (size_t i = 0; i < l->nitems; i++) {
			size_t s2 = path_index(x, i);
			if (check_str(x, l->items[i]) != 1 || fn(x, l->items[i], arg) != 1)
				rc = -1;
			path_pop(x, s2);
		}
	}
	path_pop(x, saved);
	return rc;
}

struct str_list {
	char ***v;
	size_t *n;
	const struct dw_config *c;   /* notifier names are checked against it */
};

/* Add s (consumed) unless it is there already (case-insensitively). */
static int
str_list_add(struct ctx *x, const struct dw_cfg_node *n, struct str_list *l, char *s)
{
	char q[96];
	for (size_t i = 0; i < *l->n; i++) {
		if (strcasecmp((*l->v)[i], s) == 0) {
			err_node(x, n, "%s is listed twice", quote(s, q, sizeof q));
			free(s);
			return -1;
		}
	}
	*l->v = xreallocarray(*l->v, *l->n + 1, sizeof **l->v);
	(*l->v)[(*l->n)++] = s;
	return 1;
}

/* A domain name, stored in lower case. No wildcards: a rule names the
 * policy domains the reports are about. */
static int
domain_item(struct ctx *x, const struct dw_cfg_node *n, void *arg)
{
	const char *v = n->value;
	size_t len = strlen(v);
	int good = len <= 253 && v[0] != '.' && v[len - 1] != '.' && strstr(v, "..") == NULL;
	for (const char *p = v; good && *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			good = 0;
	if (!good) {
		char q[96];
		err_node(x, n, "expected a domain name like example.com, got %s", quote(v, q, sizeof q));
		return -1;
	}
	char *s = xstrdup(v);
	for (char *p = s; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return str_list_add(x, n, arg, s);
}

/* The name of a configured notifier. */
static int
notifier_item(struct ctx *x, const struct dw_cfg_node *n, void *arg)
{
	struct str_list *l = arg;
	for (size_t i = 0; i < l->c->nnotifiers; i++)
		if (l->c->notifiers[i].name != NULL && strcmp(l->c->notifiers[i].name, n->value) == 0)
			return str_list_add(x, n, l, xstrdup(n->value));
	char names[400] = "", q[96], hint[96] = "";
	size_t shown = 0, bestd = SIZE_MAX;
	for (size_t i = 0; i < l->c->nnotifiers; i++) {
		const char *name = l->c->notifiers[i].name;
		size_t o = strlen(names);
		if (name == NULL)
			continue;
		size_t dist = edit_distance(n->value, name);
		if (dist < bestd && dist <= (strlen(n->value) <= 4 ? 1u : 2u)) {
			bestd = dist;
			snprintf(hint, sizeof hint, "did you mean %.64s? ", name);
		}
		if (o + strlen(name) + 8 >= sizeof names) {
			snprintf(names + o, sizeof names - o, ", ...");
			break;
		}
		snprintf(names + o, sizeof names - o, "%s%s", shown++ > 0 ? ", " : "", name);
	}
	if (shown == 0)
		err_node(x, n, "%s is not a configured notifier (there are none: define it under notifiers:)",
		         quote(n->value, q, sizeof q));
	else
		err_node(x, n, "%s is not a configured notifier (%sconfigured: %s)", quote(n->value, q, sizeof q), hint,
		         names);
	return -1;
}

/* A reporter's org_name, as it appears in the reports. */
static int
reporter_item(struct ctx *x, const struct dw_cfg_node *n, void *arg)
{
	return str_list_add(x, n, arg, xstrdup(n->value));
}

static int
reason_item(struct ctx *x, const struct dw_cfg_node *n, void *arg)
{
	for (size_t i = 0; reason_names[i] != NULL; i++)
		if (strcasecmp(n->value, reason_names[i]) == 0)
			return str_list_add(x, n, arg, xstrdup(reason_names[i]));
	char q[96];
	err_node(x, n,
	         "expected an override reason: forwarded, sampled_out, trusted_forwarder, mailing_list, "
	         "local_policy, other or policy_test_mode, got %s",
	         quote(n->value, q, sizeof q));
	return -1;
}

struct cidr_list {
	struct dw_cidr **v;
	size_t *n;
};

/* "192.0.2.0/24", "2001:db8::/32" or a bare address (a /32 or /128).
 * Host bits are cleared: 192.0.2.7/24 is 192.0.2.0/24. */
static int
cidr_item(struct ctx *x, const struct dw_cfg_node *n, void *arg)
{
	struct cidr_list *l = arg;
	struct dw_cidr net;
	char q[96], addr[64];
	const char *v = n->value, *slash = strchr(v, '/');
	size_t alen = slash != NULL ? (size_t)(slash - v) : strlen(v);

	memset(&net, 0, sizeof net);
	int ok = alen < sizeof addr;
	if (ok) {
		memcpy(addr, v, alen);
		addr[alen] = '\0';
		if (inet_pton(AF_INET, addr, net.addr) == 1) {
			net.family = AF_INET;
			net.bits = 32;
		} else if (inet_pton(AF_INET6, addr, net.addr) == 1) {
			net.family = AF_INET6;
			net.bits = 128;
		} else {
			ok = 0;
		}
	}
	if (!ok) {
		err_node(x, n, "expected an IP address or a network like 192.0.2.0/24 or 2001:db8::/32, got %s",
		         quote(v, q, sizeof q));
		return -1;
	}
	if (slash != NULL) {
		uint64_t bits;
		unsigned max = net.bits;
		if (parse_uint(slash + 1, &bits) != NUM_OK || bits > max) {
			err_node(x, n, "the prefix length after / must be from 0 to %u for an %s address, got %s", max,
			         net.family == AF_INET ? "IPv4" : "IPv6", quote(v, q, sizeof q));
			return -1;
		}
		net.bits = (unsigned)bits;
	}
	for (unsigned b = net.bits; b < 128; b++)
		net.addr[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
	for (size_t i = 0; i < *l->n; i++) {
		const struct dw_cidr *o = &(*l->v)[i];
		if (o->family == net.family && o->bits == net.bits && memcmp(o->addr, net.addr, 16) == 0) {
			err_node(x, n, "%s is the same network as an earlier entry", quote(v, q, sizeof q));
			return -1;
		}
	}
	*l->v = xreallocarray(*l->v, *l->n + 1, sizeof **l->v);
	(*l->v)[(*l->n)++] = net;
	return 1;
}

/* "12", "2.5", and with pct set also "5%". Parsed by hand: strtod
 * follows the locale's decimal point. */
static int
parse_number(const char *s, int *pct, double *v)
{
	uint64_t mant = 0;
	unsigned digits = 0, frac = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return NUM_BAD;
	for (; isdigit((unsigned char)*p); p++, digits++)
		mant = mant * 10 + (uint64_t)(*p - '0');
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++, frac++)
			mant = mant * 10 + (uint64_t)(*p - '0');
		if (frac == 0)
			return NUM_BAD;
	}
	if (digits > 15) /* exact in a double; nobody needs more */
		return NUM_BAD;
	*pct = *p == '%';
	if (*pct)
		p++;
	if (*p != '\0')
		return NUM_BAD;
	double scale = 1;
	for (unsigned i = 0; i < frac; i++)
		scale *= 10;
	*v = (double)mant / scale;   /* both exact, so one rounding, like strtod */
	return NUM_OK;
}

/*
 * A number from min to max. With pct, a "%" after it is allowed (the value
 * is a percentage either way); without, a "%" is refused with why.
 */
static int
get_number(struct ctx *x, const struct dw_cfg_node *map, const char *key, int pct, const char *why, double min,
           double max, double *out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1, has_pct = 0;
	double v = 0;
	if (scalar(x, n) != NULL) {
		char q[96];
		if (parse_number(n->value, &has_pct, &v) != NUM_OK)
			err_node(x, n, "expected %s, got %s", pct ? "a percentage like 5 or 5%" : "a number like 10 or 2.5",
			         quote(n->value, q, sizeof q));
		else if (has_pct && !pct)
			err_node(x, n, "%s, got %s", why, quote(n->value, q, sizeof q));
		else if (v < min || v > max)
			err_node(x, n, "must be from %g to %g%s, got %s", min, max, pct ? " (percent)" : "",
			         quote(n->value, q, sizeof q));
		else {
			*out = v;
			rc = 1;
		}
	}
	path_pop(x, saved);
	return rc;
}

/* Whole days written as a duration: "1d", "7d", "48h" (= 2d). */
static int
get_days(struct ctx *x, const struct dw_cfg_node *map, const char *key, unsigned min, unsigned max,
         unsigned *out)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	if (scalar(x, n) != NULL) {
		char q[96];
		uint64_t secs = 0;
		int prc = parse_duration(n->value, &secs);
		int bare = n->value[strspn(n->value, "0123456789")] == '\0'; /* seconds, not days */
		if (prc == NUM_BAD || (prc == NUM_OK && (bare || secs % 86400 != 0)))
			err_node(x, n, "expected whole days like 1d or 7d, got %s", quote(n->value, q, sizeof q));
		else if (prc != NUM_OK || secs / 86400 < min || secs / 86400 > max)
			err_node(x, n, "must be from %ud to %ud, got %s", min, max, quote(n->value, q, sizeof q));
		else {
			*out = (unsigned)(secs / 86400);
			rc = 1;
		}
	}
	path_pop(x, saved);
	return rc;
}

/* "only used with kind: threshold, baseline or new_source". */
static void
kind_list(unsigned kinds, char *buf, size_t len)
{
	size_t n = 0, total = 0;
	buf[0] = '\0';
	for (size_t i = 0; rule_kind_names[i] != NULL; i++)
		if (kinds & RK(rule_kind_v[i]))
			total++;
	for (size_t i = 0; rule_kind_names[i] != NULL; i++) {
		if (!(kinds & RK(rule_kind_v[i])))
			continue;
		size_t o = strlen(buf);
		snprintf(buf + o, len - o, "%s%s", n == 0 ? "" : n + 1 == total ? " or " : ", ", rule_kind_names[i]);
		n++;
	}
}

/* Keys of the other kinds, refused at the key. */
static void
rule_misplaced(struct ctx *x, const struct dw_cfg_node *m, enum dw_rule_kind kind)
{
	for (size_t i = 0; i < m->nitems; i++) {
		const struct dw_cfg_node *n = m->items[i];
		for (size_t k = 0; k < NRULE_KEYS; k++) {
			if (strcmp(n->key, rule_keys[k].key) != 0 || (rule_keys[k].kinds & RK(kind)))
				continue;
			char list[160];
			size_t saved = path_key(x, n->key);
			if (kind == DW_RULE_REPORT_HEALTH && rule_keys[k].kinds == RK_DOMAINS)
				err_key(x, n, "not used with kind: report_health (it watches the accounts' report mail, "
				              "not domains)");
			else {
				kind_list(rule_keys[k].kinds, list, sizeof list);
				err_key(x, n, "only used with kind: %s", list);
			}
			path_pop(x, saved);
		}
	}
}

static void
load_rule_ignore(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	const struct dw_cfg_node *ig = get_map(x, m, "ignore", NULL);
	if (ig == NULL)
		return;
	size_t saved = path_key(x, "ignore");
	check_keys(x, ig, ignore_keys);
	struct cidr_list nets = {&r->ignore_sources, &r->nignore_sources};
	struct str_list reps = {&r->ignore_reporters, &r->nignore_reporters, NULL};
	struct str_list reasons = {&r->ignore_reasons, &r->nignore_reasons, NULL};
	get_list(x, ig, "sources", cidr_item, &nets);
	get_list(x, ig, "reporters", reporter_item, &reps);
	get_list(x, ig, "reasons", reason_item, &reasons);
	path_pop(x, saved);
}

static void
load_threshold(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	static const char *const metrics[] = {"messages",        "dmarc_pass",      "dmarc_fail",  "dmarc_fail_rate",
	                                      "dmarc_pass_rate", "dkim_fail",       "dkim_fail_rate", "spf_fail",
	                                      "spf_fail_rate",   "quarantined",     "rejected",    NULL};
	static const int metric_v[] = {DW_M_MESSAGES,       DW_M_DMARC_PASS,     DW_M_DMARC_FAIL, DW_M_DMARC_FAIL_RATE,
	                               DW_M_DMARC_PASS_RATE, DW_M_DKIM_FAIL,     DW_M_DKIM_FAIL_RATE, DW_M_SPF_FAIL,
	                               DW_M_SPF_FAIL_RATE,  DW_M_QUARANTINED,    DW_M_REJECTED};
	static const char *const ops[] = {">", ">=", "<", "<=", "gt", "ge", "lt", "le", NULL};
	static const int op_v[] = {DW_OP_GT, DW_OP_GE, DW_OP_LT, DW_OP_LE, DW_OP_GT, DW_OP_GE, DW_OP_LT, DW_OP_LE};
	int v;
	int mrc = get_enum(x, m, "metric", metrics, metric_v, &v);
	if (mrc == 1)
		r->metric = (enum dw_metric)v;
	else if (mrc == 0)
		missing(x, m, "metric",
		        "required for kind: threshold: messages, dmarc_pass, dmarc_fail, dmarc_fail_rate, "
		        "dmarc_pass_rate, dkim_fail, dkim_fail_rate, spf_fail, spf_fail_rate, quarantined or rejected");
	r->window = 1;
	get_days(x, m, "window", 1, 31, &r->window);

	r->op = DW_OP_GT;
	const struct dw_cfg_node *on = lookup(m, "op");
	if (on != NULL && on->type == DW_CFG_SCALAR && on->value[0] == '\0' && on->quoted) {
		/* "op: >" unquoted is an empty YAML folded block. */
		size_t saved = path_key(x, "op");
		err_node(x, on, "expected \">\", \">=\", \"<\" or \"<=\" in quotes (a bare > starts a YAML block)");
		path_pop(x, saved);
	} else if (get_enum(x, m, "op", ops, op_v, &v) == 1) {
		r->op = (enum dw_op)v;
	}

	int rate = r->metric == DW_M_DMARC_FAIL_RATE || r->metric == DW_M_DMARC_PASS_RATE ||
	           r->metric == DW_M_DKIM_FAIL_RATE || r->metric == DW_M_SPF_FAIL_RATE;
	const char *mname = "the metric";
	for (size_t i = 0; mrc == 1 && metrics[i] != NULL; i++)
		if (metric_v[i] == (int)r->metric)
			mname = metrics[i];
	char why[160];
	snprintf(why, sizeof why, "%s is a count of messages, not a rate: write the number without %%", mname);
	int vrc = get_number(x, m, "value", rate || mrc != 1, why, 0, rate ? 100 : 1e12, &r->value);
	if (vrc == 0)
		missing(x, m, "value", "required for kind: threshold (the limit; rates in percent, like 5%%)");

	r->min_messages = 100;
	get_uint(x, m, "min_messages", 0, 1000000000, &r->min_messages);
}

static void
load_baseline(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	static const char *const stats[] = {"median", "mean", NULL};
	static const int stat_v[] = {0, 1};
	r->baseline_days = 14;
	get_unsigned(x, m, "baseline_days", 3, 90, &r->baseline_days);
	get_enum(x, m, "stat", stats, stat_v, &r->use_mean);
	int drop = get_number(x, m, "drop_points", 0,
	                      "a drop of the DMARC pass rate in percentage points: write it without %", 0.1, 100,
	                      &r->drop_points);
	int vol = get_number(x, m, "volume_change", 1, NULL, 1, 100000, &r->volume_pct);
	int vmin = get_uint(x, m, "volume_min", 0, 1000000000, &r->volume_min);
	if (drop == 0 && vol == 0)
		missing(x, m, "drop_points",
		        "kind: baseline needs drop_points (pass-rate drop in points) or volume_change (in %%), or both");
	if (vmin == 1 && vol == 0) {
		size_t saved = path_key(x, "volume_min");
		err_key(x, lookup(m, "volume_min"), "only used with volume_change");
		path_pop(x, saved);
	}
	r->min_messages = 100;
	get_uint(x, m, "min_messages", 0, 1000000000, &r->min_messages);
}

static void
load_new_source(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	static const char *const groups[] = {"net", "ip", NULL};
	static const int group_v[] = {0, 1};
	static const char *const passings[] = {"any", "pass", "fail", NULL};
	static const int passing_v[] = {-1, 1, 0};
	r->min_messages = 10;
	get_uint(x, m, "min_messages", 1, 1000000000, &r->min_messages);
	r->lookback = 30;
	get_days(x, m, "lookback", 1, 365, &r->lookback);
	get_enum(x, m, "group", groups, group_v, &r->group_ip);
	r->passing = -1;
	get_enum(x, m, "passing", passings, passing_v, &r->passing);
}

static void
load_missing_reporter(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	r->seen_days = 5;
	r->of_days = 7;
	r->silent_days = 2;
	int seen = get_unsigned(x, m, "seen_days", 1, 90, &r->seen_days);
	int of = get_unsigned(x, m, "of_days", 1, 90, &r->of_days);
	get_unsigned(x, m, "silent_days", 1, 90, &r->silent_days);
	if (seen >= 0 && of >= 0 && r->seen_days > r->of_days) {
		const char *key = seen == 1 ? "seen_days" : "of_days";
		const struct dw_cfg_node *n = lookup(m, key);
		size_t saved = path_key(x, key);
		err_node(x, n, "seen_days (%u) must not be more than of_days (%u)", r->seen_days, r->of_days);
		path_pop(x, saved);
	}
}

static void
load_report_health(struct ctx *x, const struct dw_cfg_node *m, struct dw_rule_cfg *r)
{
	int share = get_number(x, m, "invalid_share", 1, NULL, 0.1, 100, &r->invalid_share);
	int sil = get_duration(x, m, "silence", 3600, 90u * 86400, &r->silence);
	if (share == 0 && sil == 0)
		missing(x, m, "silence",
		        "kind: report_health needs silence (no report mail for this long) or invalid_share (in %%), "
		        "or both");
	r->min_mails = 5;
	get_uint(x, m, "min_mails", 1, 1000000, &r->min_mails);
}

static void
load_rule(struct ctx *x, const struct dw_cfg_node *m, struct dw_config *c, size_t idx)
{
	static const char *const sevs[] = {"info", "warning", "critical", NULL};
	static const int sev_v[] = {DW_SEV_INFO, DW_SEV_WARNING, DW_SEV_CRITICAL};
	static const char *const groups[] = {"domain", "source", "reporter", NULL};
	static const int group_v[] = {DW_GROUP_DOMAIN, DW_GROUP_SOURCE, DW_GROUP_REPORTER};
	struct dw_rule_cfg *r = &c->rules[idx];
	const char *keys[NRULE_KEYS + 1];
	int v;

	r->line = m->line;
	r->col = m->col;
	r->enabled = 1;
	r->group = DW_GROUP_DOMAIN;
	r->severity = DW_SEV_WARNING;
	r->cooldown = 86400;
	r->resolve_after = 2;
	r->disagree = 1;
	r->passing = -1;
	if (m->type != DW_CFG_MAP) {
		err_node(x, m, "expected a rule (name:, kind: and its settings), got %s", type_name(m));
		return;
	}
	for (size_t k = 0; k < NRULE_KEYS; k++)
		keys[k] = rule_keys[k].key;
	keys[NRULE_KEYS] = NULL;
	check_keys(x, m, keys);

	if (get_str(x, m, "name", &r->name) == 0)
		missing(x, m, "name", "required: a unique name for alerts and logs (letters, digits, '_', '-', '.')");
	if (r->name != NULL) {
		const struct dw_cfg_node *n = lookup(m, "name");
		size_t saved = path_key(x, "name");
		char q[96];
		if (!name_ok(r->name))
			err_node(x, n, "expected up to 64 letters, digits, '_', '-' or '.', got %s",
			         quote(r->name, q, sizeof q));
		for (size_t i = 0; i < idx; i++) {
			if (c->rules[i].name != NULL && strcmp(c->rules[i].name, r->name) == 0) {
				err_node(x, n, "%s is already the name of rules[%zu] (line %u)", quote(r->name, q, sizeof q), i,
				         c->rules[i].line);
				break;
			}
		}
		path_pop(x, saved);
	}

	int krc = get_enum(x, m, "kind", rule_kind_names, rule_kind_v, &v);
	if (krc == 1)
		r->kind = (enum dw_rule_kind)v;
	else if (krc == 0)
		missing(x, m, "kind",
		        "required: threshold, baseline, new_source, missing_reporter, policy_change or report_health");

	get_bool(x, m, "enabled", &r->enabled);
	if (get_enum(x, m, "severity", sevs, sev_v, &v) == 1)
		r->severity = v;
	get_duration(x, m, "cooldown", 0, 30u * 86400, &r->cooldown);
	get_unsigned(x, m, "resolve_after", 1, 60, &r->resolve_after);
	get_bool(x, m, "notify_resolved", &r->notify_resolved);
	struct str_list notify = {&r->notify, &r->nnotify, c};
	int nrc = get_list(x, m, "notify", notifier_item, &notify);
	if (get_str(x, m, "runbook", &r->runbook) == 1) {
		const char *u = r->runbook;
		size_t skip = strncasecmp(u, "https://", 8) == 0 ? 8 : strncasecmp(u, "http://", 7) == 0 ? 7 : 0;
		if (skip == 0 || u[skip] == '\0' || u[skip] == '/' || strchr(u, ' ') != NULL) {
			size_t saved = path_key(x, "runbook");
			err_node(x, lookup(m, "runbook"), "expected an http:// or https:// URL (the page saying what to do)");
			path_pop(x, saved);
		}
	}
	if (r->kind != DW_RULE_REPORT_HEALTH) {
		struct str_list doms = {&r->domains, &r->ndomains, NULL};
		get_list(x, m, "domains", domain_item, &doms);
		load_rule_ignore(x, m, r);
	}
	if (r->kind == 0)
		return; /* the kind's own keys mean nothing without it */
	rule_misplaced(x, m, r->kind);
	if (r->kind == DW_RULE_THRESHOLD || r->kind == DW_RULE_BASELINE) {
		if (get_enum(x, m, "group", groups, group_v, &v) == 1)
			r->group = (enum dw_group_by)v;
	}
	switch (r->kind) {
	case DW_RULE_THRESHOLD:
		load_threshold(x, m, r);
		break;
	case DW_RULE_BASELINE:
		load_baseline(x, m, r);
		break;
	case DW_RULE_NEW_SOURCE:
		load_new_source(x, m, r);
		break;
	case DW_RULE_MISSING_REPORTER:
		load_missing_reporter(x, m, r);
		break;
	case DW_RULE_POLICY_CHANGE:
		get_bool(x, m, "disagree", &r->disagree);
		break;
	case DW_RULE_REPORT_HEALTH:
		load_report_health(x, m, r);
		break;
	}
	if (nrc == 0 && r->enabled) {
		size_t saved = path_key(x, "notify");
		warn_at(x, m->line, m->col, "no notifiers: this rule's alerts are recorded (and shown by replay) but "
		                            "sent nowhere");
		path_pop(x, saved);
	}
}

static void
load_rules(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	c->settle = 36 * 3600;
	get_duration(x, root, "settle", 3600, 7 * 86400, &c->settle);

	const struct dw_cfg_node *l = lookup(root, "rules");
	if (l == NULL)
		return;
	size_t saved = path_key(x, "rules");
	if (l->type != DW_CFG_SEQ) {
		err_node(x, l, "expected a list of rules (each starting with \"- name:\"), got %s", type_name(l));
	} else if (l->nitems > RULES_MAX) {
		err_node(x, l, "more than %d rules", RULES_MAX);
	} else if (l->nitems > 0) {
		c->rules = xcalloc(l->nitems, sizeof *c->rules);
		c->nrules = l->nitems;
		for (size_t i = 0; i < l->nitems; i++) {
			size_t s2 = path_index(x, i);
			load_rule(x, l->items[i], c, i);
			path_pop(x, s2);
		}
	}
	path_pop(x, saved);
}

/* "09:00" or "9:00", 00:00 to 23:59. */
static int
get_time_of_day(struct ctx *x, const struct dw_cfg_node *map, const char *key, unsigned *hour, unsigned *minute)
{
	const struct dw_cfg_node *n = lookup(map, key);
	if (n == NULL)
		return 0;
	size_t saved = path_key(x, key);
	int rc = -1;
	if (scalar(x, n) != NULL) {
		const char *s = n->value;
		size_t h = strspn(s, "0123456789");
		int good = (h == 1 || h == 2) && s[h] == ':' && strspn(s + h + 1, "0123456789") == 2 && s[h + 3] == '\0';
		unsigned hh = good ? (unsigned)atoi(s) : 0, mm = good ? (unsigned)atoi(s + h + 1) : 0;
		if (good && hh < 24 && mm < 60) {
			*hour = hh;
			*minute = mm;
			rc = 1;
		} else {
			char q[96];
			err_node(x, n, "expected a local time like 09:00 (HH:MM, 00:00 to 23:59), got %s",
			         quote(s, q, sizeof q));
		}
	}
	path_pop(x, saved);
	return rc;
}

static void
load_digest(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	struct dw_digest_cfg *d = &c->digest;
	d->hour = 9;
	d->minute = 0;
	d->top = 10;
	const struct dw_cfg_node *m = get_map(x, root, "digest", NULL);
	if (m == NULL)
		return;
	d->enabled = 1;
	size_t saved = path_key(x, "digest");
	check_keys(x, m, digest_keys);
	get_time_of_day(x, m, "time", &d->hour, &d->minute);
	struct str_list notify = {&d->notify, &d->nnotify, c};
	if (get_list(x, m, "notify", notifier_item, &notify) == 0)
		missing(x, m, "notify", "required: the notifiers the digest is sent to");
	struct str_list doms = {&d->domains, &d->ndomains, NULL};
	get_list(x, m, "domains", domain_item, &doms);
	get_unsigned(x, m, "top", 1, 100, &d->top);
	path_pop(x, saved);
}

/*
 * metrics_file: its directory must exist now (the agent does not create
 * it; with node_exporter it is the textfile collector's directory).
 * metrics_listen: an address and a port, checked by metrics.c's own parser.
 */
static void
load_metrics(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	if (get_path(x, root, "metrics_file", &c->metrics_file) == 1) {
		const struct dw_cfg_node *n = lookup(root, "metrics_file");
		size_t saved = path_key(x, "metrics_file");
		const char *f = c->metrics_file, *slash = strrchr(f, '/');
		char *dir = slash == NULL ? xstrdup(".") : slash == f ? xstrdup("/") : xstrndup(f, (size_t)(slash - f));
		const char *base = slash == NULL ? f : slash + 1;
		struct stat st;
		if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
		    (stat(f, &st) == 0 && S_ISDIR(st.st_mode)))
			err_node(x, n, "%s is a directory; name a file in it, like %s%sdmarcwatch.prom", f, f,
			         f[strlen(f) - 1] == '/' ? "" : "/");
		else if (stat(dir, &st) != 0)
			err_node(x, n, "cannot use the directory %s: %s%s", dir, strerror(errno),
			         errno == ENOENT ? " (create it first: the agent writes the file, not the directory)" : "");
		else if (!S_ISDIR(st.st_mode))
			err_node(x, n, "%s is not a directory", dir);
		else if (strlen(base) < 6 || strcmp(base + strlen(base) - 5, ".prom") != 0)
			warn_at(x, n->line, n->col,
			        "%s does not end in .prom: node_exporter's textfile collector reads only *.prom files", base);
		free(dir);
		path_pop(x, saved);
	}
	char *listen = NULL;
	if (get_str(x, root, "metrics_listen", &listen) == 1) {
		const struct dw_cfg_node *n = lookup(root, "metrics_listen");
		size_t saved = path_key(x, "metrics_listen");
		char why[512];
		if (dw_metrics_check_listen(listen, why, sizeof why) != DW_OK)
			err_node(x, n, "%s", why);
		else
			c->metrics_listen = xstrdup(listen);
		path_pop(x, saved);
	}
	free(listen);
}

static void
load_top(struct ctx *x, const struct dw_cfg_node *root, struct dw_config *c)
{
	c->state_dir = xstrdup(DEFAULT_STATE_DIR);
	c->timezone = xstrdup(DEFAULT_TIMEZONE);
	c->log_level = 2;
	c->log_to = DW_LOG_STDERR;
	dw_limits_default(&c->limits);

	check_keys(x, root, top_keys);
	if (get_path(x, root, "state_dir", &c->state_dir) == 1) {
		/* "/var/lib/dw/" and "/var/lib/dw" are the same; keep "/" whole. */
		size_t l = strlen(c->state_dir);
		while (l > 1 && c->state_dir[l - 1] == '/')
			c->state_dir[--l] = '\0';
	}
	get_str(x, root, "timezone", &c->timezone);
	load_log(x, root, c);
	load_limits(x, root, &c->limits);
	load_accounts(x, root, c);
	c->plugin_dir = xstrdup(DW_PLUGINDIR);
	get_path(x, root, "plugin_dir", &c->plugin_dir);
	c->outbox_keep = 7 * 86400;
	int bad = 0;
	const struct dw_cfg_node *ob = get_map(x, root, "outbox", &bad);
	if (ob != NULL) {
		size_t saved = path_key(x, "outbox");
		check_keys(x, ob, outbox_keys);
		get_duration(x, ob, "keep", 3600, 3650u * 86400, &c->outbox_keep);
		path_pop(x, saved);
	}
	load_notifiers(x, root, c);
	load_rules(x, root, c);  /* after notifiers: rules name them */
	load_digest(x, root, c);
	load_metrics(x, root, c);
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

static int
load(const char *name, const char *basedir, const char *text, size_t len, struct dw_config **out,
     struct dw_cfg_msgs *msgs)
{
	struct dw_cfg_msgs own = {0};
	struct ctx x;
	struct dw_cfg_node *root = NULL;
	struct dw_config *c = NULL;

	memset(&x, 0, sizeof x);
	x.file = name;
	x.basedir = basedir;
	x.msgs = msgs != NULL ? msgs : &own;
	*out = NULL;

	parse_tree(&x, text, len, &root);
	if (x.nerrors == 0) {
		if (root == NULL || is_null(root))
			err_at(&x, 0, 0, "empty configuration (nothing but comments or blank lines)");
		else if (root->type != DW_CFG_MAP)
			err_node(&x, root, "the top level must be key: value lines (a mapping), got %s", type_name(root));
	}
	if (x.nerrors == 0) {
		c = xcalloc(1, sizeof *c);
		c->file = xstrdup(name);
		c->basedir = xstrdup(basedir);
		c->root = root;
		root = NULL;
		load_top(&x, c->root, c);
	}
	if (x.dropped > 0) {
		char *s = xasprintf("%s: %zu more errors not shown", name, x.dropped);
		push_msg(&x.msgs->errors, &x.msgs->nerrors, s);
	}
	node_free(root);
	int rc = DW_OK;
	if (x.nerrors > 0) {
		dw_config_free(c);
		rc = DW_E_CONFIG;
	} else {
		/* Derived once here, so readers need no cache. */
		c->db_path = strcmp(c->state_dir, "/") == 0 ? xstrdup("/dmarcwatch.db")
		                                            : xasprintf("%s/dmarcwatch.db", c->state_dir);
		*out = c;
	}
	dw_cfg_msgs_free(&own);
	return rc;
}

int
dw_config_load_string(const char *name, const char *text, size_t len, struct dw_config **out,
                      struct dw_cfg_msgs *msgs)
{
	return load(name, NULL, text, len, out, msgs);
}

DW_PRINTF(3, 4) static int
file_error(const char *path, struct dw_cfg_msgs *msgs, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (msgs != NULL)
		push_msg(&msgs->errors, &msgs->nerrors, xasprintf("%s: %s", path, text));
	return DW_E_CONFIG;
}

int
dw_config_load(const char *path, struct dw_config **out, struct dw_cfg_msgs *msgs)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return file_error(path, msgs, "cannot open: %s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return file_error(path, msgs, "cannot stat: %s", strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return file_error(path, msgs, "not a regular file");
	}
	if (st.st_size > CFG_FILE_MAX) {
		close(fd);
		return file_error(path, msgs, "larger than 1 MiB; is this the configuration file?");
	}
	char *buf = xmalloc(CFG_FILE_MAX + 1);
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, CFG_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			free(buf);
			return file_error(path, msgs, "cannot read: %s", strerror(e));
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CFG_FILE_MAX) {
			close(fd);
			explicit_bzero(buf, len);
			free(buf);
			return file_error(path, msgs, "larger than 1 MiB; is this the configuration file?");
		}
	}
	close(fd);

	char *dir = NULL;
	const char *slash = strrchr(path, '/');
	if (slash == path)
		dir = xstrdup("/");
	else if (slash != NULL)
		dir = xstrndup(path, (size_t)(slash - path));
	int rc = load(path, dir, buf, len, out, msgs);
	free(dir);
	/* The file may hold inline secrets. */
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

static void
account_free(struct dw_account_cfg *a)
{
	free(a->name);
	free(a->host);
	free(a->ca_file);
	free(a->username);
	wipe_free(a->password);
	free(a->oauth2.token_url);
	free(a->oauth2.client_id);
	wipe_free(a->oauth2.client_secret);
	wipe_free(a->oauth2.refresh_token);
	wipe_free(a->oauth2.token_command);
	free(a->oauth2.ca_file);
	free(a->path);
	free(a->folder);
	free(a->archive_folder);
	free(a->invalid_folder);
	free(a->untrusted_folder);
	free(a->other_folder);
	for (size_t i = 0; i < a->nauthserv_ids; i++)
		free(a->authserv_ids[i]);
	free(a->authserv_ids);
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
rule_free(struct dw_rule_cfg *r)
{
	free(r->name);
	free_strv(r->domains, r->ndomains);
	free_strv(r->notify, r->nnotify);
	free(r->runbook);
	free(r->ignore_sources);
	free_strv(r->ignore_reporters, r->nignore_reporters);
	free_strv(r->ignore_reasons, r->nignore_reasons);
}

void
dw_config_free(struct dw_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->naccounts; i++)
		account_free(&c->accounts[i]);
	free(c->accounts);
	for (size_t i = 0; i < c->nnotifiers; i++) {
		struct dw_notifier_cfg *nc = &c->notifiers[i];
		free(nc->name);
		free(nc->plugin);
		for (size_t k = 0; k < nc->nkv; k++) {
			free(nc->kv[k].key);
			wipe_free(nc->kv[k].value); /* may be an inline secret */
		}
		free(nc->kv);
	}
	free(c->notifiers);
	for (size_t i = 0; i < c->nrules; i++)
		rule_free(&c->rules[i]);
	free(c->rules);
	free_strv(c->digest.notify, c->digest.nnotify);
	free_strv(c->digest.domains, c->digest.ndomains);
	free(c->plugin_dir);
	free(c->basedir);
	node_free(c->root);
	free(c->file);
	free(c->state_dir);
	free(c->timezone);
	free(c->db_path);
	free(c->metrics_file);
	free(c->metrics_listen);
	free(c);
}

int
dw_config_notifier_secret(const struct dw_config *c, size_t idx, const char *key, char **out,
                          struct dw_cfg_msgs *msgs)
{
	const struct dw_cfg_node *l = lookup(c->root, "notifiers");
	if (l == NULL || l->type != DW_CFG_SEQ || idx >= l->nitems || l->items[idx]->type != DW_CFG_MAP)
		return 0;
	struct ctx x;
	memset(&x, 0, sizeof x);
	x.file = c->file;
	x.basedir = c->basedir;
	x.msgs = msgs;
	path_key(&x, "notifiers");
	path_index(&x, idx);
	*out = NULL;
	return get_secret(&x, l->items[idx], key, out);
}

const struct dw_cfg_node *
dw_config_section(const struct dw_config *c, const char *key)
{
	return c != NULL ? lookup(c->root, key) : NULL;
}

const char *
dw_config_db_path(const struct dw_config *c)
{
	return c->db_path;
}

int
dw_config_make_state_dir(const struct dw_config *c, char *err, size_t errlen)
{
	if (mkdir(c->state_dir, 0700) != 0 && errno != EEXIST)
		return dw_err(err, errlen, DW_E_CONFIG, "state_dir %s: cannot create it: %s", c->state_dir,
		              strerror(errno));
	return DW_OK;
}
