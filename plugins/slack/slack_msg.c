/*
 * slack_msg.c - Block Kit message for a notification, within Slack's limits.
 *
 * Layout (top to bottom):
 *   header     the title (plain_text, <= 150 characters)
 *   section    severity emoji and word, kind, domain, rule
 *   section(s) the fields, 10 per section ("*name*\nvalue")
 *   section(s) the summary when there is one (it is written for chat:
 *              *bold*, `code`, "- " bullets), else the plain-text body
 *   section    the table as an aligned code block
 *   context    what became of the attachment
 *   section    the runbook link
 *   context    "dmarcwatch VERSION · <time in the reader's zone>"
 * The `text` fallback (notifications, screen readers) is the title and the
 * body, <= 4000 characters.
 *
 * Sizing: the fixed parts are small and bounded. What is left of the
 * 12 000-character budget goes to the fields, the text and the table,
 * each getting an equal share or less if it needs less (water-filling).
 * The result is then measured as compact JSON; if it is still over budget
 * (escaping, per-item overhead) the shares shrink by a quarter and the
 * blocks are built again. Every cut leaves a visible note.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dw/notification_json.h"
#include "plugutil.h"
#include "slack_msg.h"

#define BUF_MAX ((size_t)64 << 20)  /* a pu_buf cap no message text comes near */
#define FIELDS_MAX 30               /* fields shown at most (3 sections) */
#define FIELD_MIN 60                /* fewer fields rather than fields shorter than this */
#define TABLE_MAX_COLS 8
#define TABLE_CELL_MAX 32
#define TABLE_MIN 400               /* below this share the table is only mentioned */
#define TEXT_MIN 100                /* likewise for the body/summary */
#define NAME_MAX_CP 200             /* domain, rule, field name, file name */
#define RUNBOOK_MAX 2000
#define SHRINK_ROUNDS 12

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define ELLIPSIS "\xe2\x80\xa6"    /* … */

/* clean() flags */
#define CT_MULTILINE 0x1 /* keep newlines (else they become spaces) */
#define CT_ESCAPE 0x2    /* mrkdwn: & < > become &amp; &lt; &gt; */
#define CT_NOTICK 0x4    /* ` becomes ' (inside inline code and code blocks) */
#define CT_BULLETS 0x8   /* "- " or "* " at a line start becomes "• " */

struct mb {
	const struct dw_notification *n;
	enum slack_attach_note attach;
	const char *version;
	json_t *blocks;
	int oom;
};

/* ------------------------------------------------------------------ */
/* Text                                                                */

/* Code points of s once escaped for mrkdwn (NULL: 0). */
static size_t
esc_len(const char *s)
{
	size_t n = 0;
	for (; s != NULL && *s != '\0'; s++)
		n += *s == '&' ? 5 : *s == '<' || *s == '>' ? 4 : ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* Length of the valid UTF-8 sequence at s (NUL-terminated), 0 if invalid. */
static size_t
u8_seq(const unsigned char *s, unsigned *cp)
{
	unsigned c = s[0], min;
	size_t len;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xE0) == 0xC0) {
		len = 2, min = 0x80, c &= 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, min = 0x800, c &= 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) { /* a NUL is no continuation byte: stops there */
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

static const char *
str(const struct pu_buf *b)
{
	return b->p != NULL ? b->p : "";
}

static void
put(struct mb *m, struct pu_buf *b, const char *s, size_t len)
{
	if (pu_buf_add(b, s, len) != 0)
		m->oom = 1;
}

static void
puts_(struct mb *m, struct pu_buf *b, const char *s)
{
	put(m, b, s, strlen(s));
}

static void DW_NOTIFIER_PRINTF(3, 4)
putf(struct mb *m, struct pu_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (w > 0)
		put(m, b, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

/*
 * Append s (NULL = "") to b as valid UTF-8 without control characters:
 * invalid bytes and bidi overrides become U+FFFD, CR is dropped, other
 * controls become spaces. Stops before the output would pass max code
 * points; returns 1 then (s was cut), else 0.
 */
static int
clean(struct mb *m, struct pu_buf *b, const char *s, int flags, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t out = 0;
	int bol = 1;
	while (*p != '\0') {
		const char *rep;
		size_t rlen = 1, rcp = 1, adv;
		unsigned cp = 0;
		if (bol && (flags & CT_BULLETS) && (p[0] == '-' || p[0] == '*') && p[1] == ' ') {
			rep = "\xe2\x80\xa2 ", rlen = 4, rcp = 2, adv = 2;
		} else if ((adv = u8_seq(p, &cp)) == 0) {
			rep = REPLACEMENT, rlen = 3, adv = 1;
		} else if (cp == '\r') {
			p += adv;
			continue;
		} else if (cp == '\n') {
			rep = (flags & CT_MULTILINE) ? "\n" : " ";
		} else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
			rep = " ";
		} else if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069)) {
			rep = REPLACEMENT, rlen = 3;
		} else if ((flags & CT_ESCAPE) && cp == '&') {
			rep = "&amp;", rlen = rcp = 5;
		} else if ((flags & CT_ESCAPE) && cp == '<') {
			rep = "&lt;", rlen = rcp = 4;
		} else if ((flags & CT_ESCAPE) && cp == '>') {
			rep = "&gt;", rlen = rcp = 4;
		} else if ((flags & CT_NOTICK) && cp == '`') {
			rep = "'";
		} else {
			rep = (const char *)p, rlen = adv;
		}
		if (out + rcp > max)
			return 1;
		put(m, b, rep, rlen);
		out += rcp;
		bol = rep[0] == '\n';
		p += adv;
	}
	return 0;
}

/* Byte offset in b, from start, after at most cps code points; never
 * inside an entity (&amp; &lt; &gt;). */
static size_t
prefix(const struct pu_buf *b, size_t start, size_t cps)
{
	size_t i = start;
	for (size_t c = 0; i < b->len && c < cps; c++) {
		i++;
		while (i < b->len && ((unsigned char)b->p[i] & 0xC0) == 0x80)
			i++;
	}
	if (i < b->len)
		for (size_t k = i; k > start && i - k < 5; k--) {
			if (b->p[k - 1] == ';')
				break;
			if (b->p[k - 1] == '&') {
				i = k - 1;
				break;
			}
		}
	return i;
}

/* Shorten the text from start so that with note it has at most max code points. */
static void
cut(struct mb *m, struct pu_buf *b, size_t start, size_t max, const char *note)
{
	size_t nl = pu_utf8_chars(note);
	size_t i = prefix(b, start, max > nl ? max - nl : 0);
	/* End at a word break when there is one near. */
	for (size_t k = i; i < b->len && k > start && i - k < 40; k--)
		if (b->p[k - 1] == ' ' || b->p[k - 1] == '\n') {
			i = k - 1;
			break;
		}
	if (b->p != NULL) {
		b->len = i;
		b->p[i] = '\0';
	}
	puts_(m, b, note);
}

/* Append s cleaned; when longer than max code points, cut it ending with note. */
static void
add_text(struct mb *m, struct pu_buf *b, const char *s, int flags, size_t max, const char *note)
{
	size_t start = b->len;
	if (clean(m, b, s, flags, max))
		cut(m, b, start, max, note);
}

/* ------------------------------------------------------------------ */
/* Blocks                                                              */

static void
add_block(struct mb *m, json_t *blk)
{
	if (blk == NULL || json_array_append_new(m->blocks, blk) != 0)
		m->oom = 1;
}

static void
add_section(struct mb *m, const char *text)
{
	if (text[0] != '\0')
		add_block(m, json_pack("{s:s, s:{s:s, s:s}}", "type", "section", "text", "type", "mrkdwn", "text", text));
}

static void
add_context(struct mb *m, const char *text)
{
	if (text[0] != '\0')
		add_block(m, json_pack("{s:s, s:[{s:s, s:s}]}", "type", "context", "elements", "type", "mrkdwn", "text",
		                       text));
}

static void
header_block(struct mb *m)
{
	struct pu_buf b = {.max = BUF_MAX};
	add_text(m, &b, m->n->title, 0, SLACK_HEADER_MAX, ELLIPSIS);
	size_t i = 0;
	while (i < b.len && b.p[i] == ' ')
		i++;
	add_block(m, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type", "header", "text", "type", "plain_text", "text",
	                       i < b.len ? str(&b) : "(no title)", "emoji", 1));
	pu_buf_free(&b);
}

/* ":rotating_light: *CRITICAL* alert · domain `example.com` · rule `fail-rate`" */
static void
meta_block(struct mb *m)
{
	const struct dw_notification *n = m->n;
	struct pu_buf b = {.max = BUF_MAX};
	if (n->kind == DW_KIND_RESOLVED)
		puts_(m, &b, ":white_check_mark: *RESOLVED*");
	else if (n->severity == DW_SEV_CRITICAL)
		puts_(m, &b, ":rotating_light: *CRITICAL*");
	else if (n->severity == DW_SEV_WARNING)
		puts_(m, &b, ":warning: *WARNING*");
	else
		puts_(m, &b, ":information_source: *INFO*");
	if (n->kind != DW_KIND_RESOLVED)
		putf(m, &b, " %s", dw_notify_kind_name(n->kind));
	if (n->domain != NULL && n->domain[0] != '\0') {
		puts_(m, &b, " \xc2\xb7 domain `");
		add_text(m, &b, n->domain, CT_ESCAPE | CT_NOTICK, NAME_MAX_CP, ELLIPSIS);
		puts_(m, &b, "`");
	}
	if (n->rule != NULL && n->rule[0] != '\0') {
		puts_(m, &b, " \xc2\xb7 rule `");
		add_text(m, &b, n->rule, CT_ESCAPE | CT_NOTICK, NAME_MAX_CP, ELLIPSIS);
		puts_(m, &b, "`");
	}
	add_section(m, str(&b));
	pu_buf_free(&b);
}

static void
human_size(size_t n, char *out, size_t outlen)
{
	if (n < 1024)
		snprintf(out, outlen, "%zu bytes", n);
	else if (n < 1024 * 1024)
		snprintf(out, outlen, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, outlen, "%.1f MiB", (double)n / (1024 * 1024));
}

/*
 * Webhook mode cannot upload files. We say so and name the way to get the
 * file rather than pasting its first lines: the table block already shows
 * the top rows, and a CSV excerpt would eat the block budget the table and
 * the text need.
 */
static void
attachment_block(struct mb *m)
{
	const struct dw_attachment *a = m->n->attachment;
	if (a == NULL)
		return;
	struct pu_buf b = {.max = BUF_MAX};
	char size[32];
	human_size(a->size, size, sizeof size);
	puts_(m, &b, ":paperclip: `");
	add_text(m, &b, a->filename != NULL ? a->filename : "attachment", CT_ESCAPE | CT_NOTICK, NAME_MAX_CP,
	         ELLIPSIS);
	putf(m, &b, "` (%s) ", size);
	if (m->attach == SLACK_ATTACH_IN_THREAD)
		puts_(m, &b, "is attached in the thread of this message.");
	else
		puts_(m, &b, "is not attached: Slack incoming webhooks cannot carry files. Configure this "
		             "notifier with `token` and `channel` (bot mode) to receive it.");
	add_context(m, str(&b));
	pu_buf_free(&b);
}

static void
runbook_block(struct mb *m)
{
	const char *u = m->n->runbook;
	if (u == NULL || u[0] == '\0')
		return;
	struct pu_buf b = {.max = BUF_MAX};
	int linkable = (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) && strlen(u) <= RUNBOOK_MAX;
	for (const char *p = u; linkable && *p != '\0'; p++)
		linkable = *p > 0x20 && *p < 0x7F;
	if (linkable) {
		puts_(m, &b, ":book: <");
		for (const char *p = u; *p != '\0'; p++) {
			switch (*p) {
			case '&': puts_(m, &b, "&amp;"); break;
			case '<': puts_(m, &b, "%3C"); break;
			case '>': puts_(m, &b, "%3E"); break;
			case '|': puts_(m, &b, "%7C"); break;
			default: put(m, &b, p, 1);
			}
		}
		puts_(m, &b, "|Runbook>");
	} else {
		puts_(m, &b, ":book: Runbook: `");
		add_text(m, &b, u, CT_ESCAPE | CT_NOTICK, 300, ELLIPSIS);
		puts_(m, &b, "`");
	}
	add_section(m, str(&b));
	pu_buf_free(&b);
}

static void
footer_block(struct mb *m)
{
	struct pu_buf b = {.max = BUF_MAX};
	puts_(m, &b, "dmarcwatch");
	if (m->version != NULL) {
		puts_(m, &b, " ");
		add_text(m, &b, m->version, CT_ESCAPE, 40, ELLIPSIS);
	}
	if (m->n->time > 0) {
		char iso[32];
		putf(m, &b, " \xc2\xb7 <!date^%lld^{date_short_pretty} {time}|%s>", (long long)m->n->time,
		     dw_rfc3339(m->n->time, iso, sizeof iso));
	}
	add_context(m, str(&b));
	pu_buf_free(&b);
}

/* Split avail among k parts (k <= FIELDS_MAX): equal shares, a part
 * needing less than its share gets what it needs and the rest is shared
 * again among the others (water-filling). */
static void
share(size_t avail, const size_t *need, size_t *cap, size_t k)
{
	char open[FIELDS_MAX];
	size_t nopen = 0;
	for (size_t i = 0; i < k; i++) {
		cap[i] = 0;
		open[i] = need[i] > 0;
		nopen += (size_t)open[i];
	}
	while (nopen > 0) {
		size_t each = avail / nopen;
		int fixed = 0;
		for (size_t i = 0; i < k; i++)
			if (open[i] && need[i] <= each) {
				cap[i] = need[i];
				avail -= need[i];
				open[i] = 0;
				nopen--;
				fixed = 1;
			}
		if (!fixed) {
			for (size_t i = 0; i < k; i++)
				if (open[i])
					cap[i] = each;
			break;
		}
	}
}

/* Fields: "*name*\nvalue", 10 per section, at most cap characters in all. */
static void
fields_blocks(struct mb *m, size_t cap)
{
	const struct dw_notification *n = m->n;
	if (n->fields == NULL || n->nfields == 0)
		return;
	size_t shown = n->nfields < FIELDS_MAX ? n->nfields : FIELDS_MAX;
	if (cap / shown < FIELD_MIN)
		shown = cap / FIELD_MIN;
	size_t need[FIELDS_MAX] = {0}, fcap[FIELDS_MAX] = {0};
	for (size_t i = 0; i < shown; i++) {
		need[i] = esc_len(n->fields[i].name) + esc_len(n->fields[i].value) + 4;
		if (need[i] > SLACK_FIELD_MAX)
			need[i] = SLACK_FIELD_MAX;
	}
	share(cap, need, fcap, shown);
	json_t *arr = NULL;
	for (size_t i = 0; i < shown; i++) {
		struct pu_buf b = {.max = BUF_MAX};
		size_t per = fcap[i];
		const char *name = n->fields[i].name;
		if (name != NULL && name[0] != '\0') {
			/* The name gets what the value leaves, at least half. */
			size_t vlen = esc_len(n->fields[i].value), ncap = per > vlen + 4 ? per - vlen - 4 : 0;
			if (ncap < per / 2)
				ncap = per / 2;
			puts_(m, &b, "*");
			add_text(m, &b, name, CT_ESCAPE, ncap < NAME_MAX_CP ? ncap : NAME_MAX_CP, ELLIPSIS);
			puts_(m, &b, "*\n");
		}
		size_t used = pu_utf8_chars(str(&b));
		add_text(m, &b, n->fields[i].value, CT_ESCAPE | CT_MULTILINE, per > used ? per - used : 0, ELLIPSIS);
		if (b.len == 0)
			puts_(m, &b, " ");
		if (arr == NULL || json_array_size(arr) == SLACK_FIELDS_PER_SECTION) {
			arr = json_array();
			add_block(m, json_pack("{s:s, s:o}", "type", "section", "fields", arr));
			if (m->oom) {
				pu_buf_free(&b);
				return;
			}
		}
		if (json_array_append_new(arr, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", str(&b))) != 0)
			m->oom = 1;
		pu_buf_free(&b);
	}
	if (shown < n->nfields) {
		struct pu_buf b = {.max = BUF_MAX};
		putf(m, &b, "_" ELLIPSIS " %zu more field%s not shown_", n->nfields - shown,
		     n->nfields - shown == 1 ? "" : "s");
		add_context(m, str(&b));
		pu_buf_free(&b);
	}
}

/* The summary (or the body), at most cap characters, in sections of at most
 * 3000 split at line breaks where possible. */
static void
text_blocks(struct mb *m, size_t cap)
{
	const struct dw_notification *n = m->n;
	int summary = n->summary != NULL && n->summary[0] != '\0';
	const char *src = summary ? n->summary : n->body;
	if (src == NULL || src[0] == '\0')
		return;
	if (cap < TEXT_MIN && esc_len(src) > cap) {
		add_context(m, "_The text is not shown: the message would be too large for Slack._");
		return;
	}
	struct pu_buf b = {.max = BUF_MAX};
	if (clean(m, &b, src, CT_ESCAPE | CT_MULTILINE | (summary ? CT_BULLETS : 0), cap)) {
		char note[96];
		snprintf(note, sizeof note, "\n" ELLIPSIS " _(truncated: %zu characters in all)_", pu_utf8_chars(src));
		cut(m, &b, 0, cap, note);
	}
	size_t start = 0;
	while (start < b.len && !m->oom) {
		size_t end = prefix(&b, start, SLACK_SECTION_MAX), next = end;
		if (end < b.len) { /* split at the last line break, else space, in the chunk's last third */
			size_t floor = start + (end - start) * 2 / 3, k;
			for (k = end; k > floor && b.p[k - 1] != '\n'; k--)
				;
			if (k == floor)
				for (k = end; k > floor && b.p[k - 1] != ' '; k--)
					;
			if (k > floor)
				end = next = k;
		}
		char save = b.p[end];
		b.p[end] = '\0';
		size_t s = start;
		while (b.p[s] == '\n' || b.p[s] == ' ')
			s++;
		if (b.p[s] != '\0')
			add_section(m, b.p + s);
		b.p[end] = save;
		start = next;
	}
	pu_buf_free(&b);
}

/* "1234", "12.5 %", "-3", "1,000" (not "192.0.2.1"): right-aligned. */
static int
numeric(const char *s)
{
	int dots = 0;
	for (; *s != '\0'; s++) {
		if (strchr("0123456789.,% -", *s) == NULL)
			return 0;
		dots += *s == '.';
	}
	return dots <= 1;
}

/* The table as a code block of aligned columns (numbers right-aligned),
 * as many rows as fit in one section and cap. */
static void
table_blocks(struct mb *m, size_t cap)
{
	const struct dw_table *t = m->n->table;
	if (t == NULL || t->ncols == 0 || t->columns == NULL)
		return;
	size_t limit = cap < SLACK_SECTION_MAX ? cap : SLACK_SECTION_MAX;
	if (limit < TABLE_MIN) {
		struct pu_buf b = {.max = BUF_MAX};
		putf(m, &b, "_A table of %zu row%s is not shown: the message would be too large for Slack._", t->nrows,
		     t->nrows == 1 ? "" : "s");
		add_context(m, str(&b));
		pu_buf_free(&b);
		return;
	}
	size_t nc = t->ncols < TABLE_MAX_COLS ? t->ncols : TABLE_MAX_COLS;
	/* No more rows than could possibly fit (a row takes >= 3 * nc characters). */
	size_t nr = t->cells != NULL ? t->nrows : 0;
	if (nr > limit / (3 * nc))
		nr = limit / (3 * nc);
	struct pu_buf *cell = calloc((nr + 1) * nc, sizeof *cell);
	size_t width[TABLE_MAX_COLS] = {0};
	int num[TABLE_MAX_COLS];
	if (cell == NULL) {
		m->oom = 1;
		return;
	}
	for (size_t c = 0; c < nc; c++)
		num[c] = 1;
	for (size_t r = 0; r <= nr; r++)
		for (size_t c = 0; c < nc; c++) {
			struct pu_buf *b = &cell[r * nc + c];
			b->max = BUF_MAX;
			const char *v = r == 0 ? t->columns[c] : t->cells[(r - 1) * t->ncols + c];
			add_text(m, b, v, CT_NOTICK, TABLE_CELL_MAX, ELLIPSIS);
			size_t w = pu_utf8_chars(str(b));
			if (w > width[c])
				width[c] = w;
			if (r > 0 && !numeric(str(b)))
				num[c] = 0;
		}

	struct pu_buf out = {.max = BUF_MAX}, line = {.max = BUF_MAX};
	size_t used = 4, shown = 0; /* "```\n" */
	const size_t reserve = 4 + 80; /* "```" and the notes */
	puts_(m, &out, "```\n");
	for (size_t r = 0; r <= nr + 1 && !m->oom; r++) {
		/* r 0: header, 1: rule under it, 2..: rows */
		if (r == 1 && nr == 0)
			break;
		pu_buf_free(&line);
		line.max = BUF_MAX;
		for (size_t c = 0; c < nc; c++) {
			const char *v = r == 1 ? "" : str(&cell[(r == 0 ? 0 : r - 1) * nc + c]);
			size_t w = pu_utf8_chars(v), pad = width[c] - (r == 1 ? 0 : w);
			if (c > 0)
				puts_(m, &line, "  ");
			if (r == 1) {
				for (size_t k = 0; k < width[c]; k++)
					puts_(m, &line, "-");
				continue;
			}
			if (num[c])
				for (size_t k = 0; k < pad; k++)
					puts_(m, &line, " ");
			add_text(m, &line, v, CT_ESCAPE, BUF_MAX, "");
			if (!num[c] && c + 1 < nc)
				for (size_t k = 0; k < pad; k++)
					puts_(m, &line, " ");
		}
		while (line.len > 0 && line.p[line.len - 1] == ' ')
			line.p[--line.len] = '\0';
		size_t lw = pu_utf8_chars(str(&line)) + 1;
		if (used + lw + reserve > limit)
			break;
		puts_(m, &out, str(&line));
		puts_(m, &out, "\n");
		used += lw;
		shown += r >= 2;
	}
	puts_(m, &out, "```");
	if (shown < t->nrows)
		putf(m, &out, "\n_" ELLIPSIS " %zu more row%s not shown_", t->nrows - shown, t->nrows - shown == 1 ? "" : "s");
	if (nc < t->ncols)
		putf(m, &out, "\n_" ELLIPSIS " %zu more column%s not shown_", t->ncols - nc, t->ncols - nc == 1 ? "" : "s");
	add_section(m, str(&out));
	pu_buf_free(&out);
	pu_buf_free(&line);
	for (size_t i = 0; i < (nr + 1) * nc; i++)
		pu_buf_free(&cell[i]);
	free(cell);
}

/* ------------------------------------------------------------------ */
/* Sizing                                                              */

enum { P_FIELDS, P_TEXT, P_TABLE, NPARTS };

/* Roughly how many characters each part would take in full (at least its
 * minimum, so that a small part is never squeezed below it). */
static void
needs(const struct dw_notification *n, size_t need[NPARTS])
{
	need[P_FIELDS] = 0;
	for (size_t i = 0; n->fields != NULL && i < n->nfields && i < FIELDS_MAX; i++) {
		size_t f = esc_len(n->fields[i].name) + esc_len(n->fields[i].value) + 4;
		need[P_FIELDS] += f < FIELD_MIN ? FIELD_MIN : f < SLACK_FIELD_MAX ? f : SLACK_FIELD_MAX;
	}
	const char *src = n->summary != NULL && n->summary[0] != '\0' ? n->summary : n->body;
	need[P_TEXT] = src != NULL && src[0] != '\0' ? esc_len(src) + TEXT_MIN : 0;
	need[P_TABLE] = 0;
	const struct dw_table *t = n->table;
	if (t != NULL && t->ncols > 0) {
		size_t nc = t->ncols < TABLE_MAX_COLS ? t->ncols : TABLE_MAX_COLS;
		need[P_TABLE] = (t->nrows + 2) * nc * (TABLE_CELL_MAX / 2 + 2) + 100;
		if (need[P_TABLE] > SLACK_SECTION_MAX)
			need[P_TABLE] = SLACK_SECTION_MAX;
		if (need[P_TABLE] < TABLE_MIN)
			need[P_TABLE] = TABLE_MIN;
	}
}

static int
build(struct mb *m, const size_t cap[NPARTS])
{
	json_decref(m->blocks);
	if ((m->blocks = json_array()) == NULL)
		return -1;
	header_block(m);
	meta_block(m);
	fields_blocks(m, cap[P_FIELDS]);
	text_blocks(m, cap[P_TEXT]);
	table_blocks(m, cap[P_TABLE]);
	attachment_block(m);
	runbook_block(m);
	footer_block(m);
	return m->oom ? -1 : 0;
}

/* Characters of the blocks as compact JSON, or SIZE_MAX when out of memory. */
static size_t
measure(const json_t *blocks)
{
	char *s = json_dumps(blocks, JSON_COMPACT);
	if (s == NULL)
		return (size_t)-1;
	size_t n = pu_utf8_chars(s);
	free(s);
	return n;
}

static json_t *
fallback_text(struct mb *m)
{
	const struct dw_notification *n = m->n;
	struct pu_buf b = {.max = BUF_MAX};
	const char *sev = n->kind == DW_KIND_RESOLVED ? "RESOLVED"
	                  : n->severity == DW_SEV_CRITICAL ? "CRITICAL"
	                  : n->severity == DW_SEV_WARNING ? "WARNING"
	                                                   : "INFO";
	putf(m, &b, "[%s] ", sev);
	add_text(m, &b, n->title, CT_ESCAPE, 300, ELLIPSIS);
	if (n->body != NULL && n->body[0] != '\0') {
		puts_(m, &b, "\n");
		add_text(m, &b, n->body, CT_ESCAPE | CT_MULTILINE, SLACK_TEXT_MAX - pu_utf8_chars(str(&b)),
		         " " ELLIPSIS " (truncated)");
	}
	json_t *t = m->oom ? NULL : json_string(str(&b));
	pu_buf_free(&b);
	return t;
}

json_t *
slack_message(const struct dw_notification *n, enum slack_attach_note attach, const char *agent_version)
{
	struct mb m = {.n = n, .attach = attach, .version = agent_version};
	size_t need[NPARTS], cap[NPARTS] = {0, 0, 0};
	json_t *msg = NULL;

	/* The fixed parts alone (a part given 0 is at most a one-line note). */
	if (build(&m, cap) != 0)
		goto fail;
	size_t fixed = measure(m.blocks);
	if (fixed == (size_t)-1)
		goto fail;
	needs(n, need);
	share(fixed + 600 < SLACK_BLOCKS_BUDGET ? SLACK_BLOCKS_BUDGET - fixed - 600 : 0, need, cap, NPARTS);
	for (int round = 0;; round++) {
		if (build(&m, cap) != 0)
			goto fail;
		size_t size = measure(m.blocks);
		if (size == (size_t)-1)
			goto fail;
		if ((size <= SLACK_BLOCKS_BUDGET && json_array_size(m.blocks) <= SLACK_MAX_BLOCKS) ||
		    round == SHRINK_ROUNDS)
			break;
		for (int i = 0; i < NPARTS; i++)
			cap[i] = round + 1 == SHRINK_ROUNDS ? 0 : cap[i] * 3 / 4;
	}
	json_t *text = fallback_text(&m);
	if (text == NULL)
		goto fail;
	msg = json_pack("{s:o, s:O, s:b, s:b}", "text", text, "blocks", m.blocks, "unfurl_links", 0, "unfurl_media", 0);
fail:
	json_decref(m.blocks);
	return msg;
}
