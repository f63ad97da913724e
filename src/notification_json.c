/*
 * notification_json.c - the JSON form of a notification, both ways.
 *
 * Compiled into the agent and into the plugins alike: plain malloc, no
 * xmalloc, no logging; every failure is a return value.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dw/notification_json.h"

static const char *const kind_names[] = {NULL, "alert", "resolved", "digest", "test"};
static const char *const sev_names[] = {NULL, "info", "warning", "critical"};

const char *
dw_notify_kind_name(unsigned kind)
{
	return kind >= 1 && kind <= 4 ? kind_names[kind] : "?";
}

const char *
dw_severity_name(unsigned severity)
{
	return severity >= 1 && severity <= 3 ? sev_names[severity] : "?";
}

int
dw_notify_kind_parse(const char *s)
{
	for (int i = 1; i <= 4; i++)
		if (s != NULL && strcmp(s, kind_names[i]) == 0)
			return i;
	return 0;
}

int
dw_severity_parse(const char *s)
{
	for (int i = 1; i <= 3; i++)
		if (s != NULL && strcmp(s, sev_names[i]) == 0)
			return i;
	return 0;
}

const char *
dw_rfc3339(time_t t, char *buf, size_t buflen)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buflen, "1970-01-01T00:00:00Z");
	return buf;
}

/* ------------------------------------------------------------------ */
/* base64 (RFC 4648, with padding), for the attachment                  */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
b64_encode(const unsigned char *p, size_t n)
{
	if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	if (out == NULL)
		return NULL;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[v >> 12 & 63];
		*o++ = b64[v >> 6 & 63];
		*o++ = b64[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
		*o++ = b64[v >> 18];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(int c)
{
	const char *q = c != 0 ? strchr(b64, c) : NULL;
	return q != NULL ? (int)(q - b64) : -1;
}

/* Strict: whole quanta, padding only at the end. Returns 0 or -1. */
static int
b64_decode(const char *s, unsigned char **out, size_t *outlen)
{
	size_t n = strlen(s);
	if (n % 4 != 0)
		return -1;
	unsigned char *buf = malloc(n / 4 * 3 + 1), *o = buf;
	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad > 0 || (v[k] = b64_value((unsigned char)s[i + k])) < 0) {
				free(buf);
				return -1;
			}
		}
		unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		*o++ = (unsigned char)(w >> 16);
		if (pad < 2)
			*o++ = (unsigned char)(w >> 8);
		if (pad < 1)
			*o++ = (unsigned char)w;
	}
	*out = buf;
	*outlen = (size_t)(o - buf);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

/* A JSON string of s; bytes that are not UTF-8 become U+FFFD, so a title
 * cut in the middle of a character still goes out (NULL only on OOM). */
static json_t *
jstr(const char *s)
{
	json_t *v = json_string(s);
	if (v != NULL)
		return v;
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	char *clean = malloc(n * 3 + 1), *o = clean;
	if (clean == NULL)
		return NULL;
	const unsigned char *p = (const unsigned char *)s;
	while (*p != '\0') {
		size_t len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
		size_t k = 1;
		while (len > 1 && k < len && (p[k] & 0xc0) == 0x80)
			k++;
		int ok = len > 0 && k == len;
		if (ok && len > 1) { /* refuse overlong forms and surrogates */
			unsigned cp = len == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
			            : len == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu)
			                       : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
			ok = (len == 2 && cp >= 0x80) || (len == 3 && cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) ||
			     (len == 4 && cp >= 0x10000 && cp <= 0x10ffff);
		}
		if (ok) {
			memcpy(o, p, len);
			o += len;
			p += len;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			p += 1;
		}
	}
	*o = '\0';
	v = json_string(clean);
	free(clean);
	return v;
}

/* Set key to a string when s is not NULL. Returns -1 on failure. */
static int
set_str(json_t *o, const char *key, const char *s)
{
	if (s == NULL)
		return 0;
	return json_object_set_new(o, key, jstr(s));
}

static json_t *
table_json(const struct dw_table *t)
{
	json_t *o = json_object(), *cols = json_array(), *rows = json_array();
	if (o == NULL || cols == NULL || rows == NULL)
		goto fail;
	for (size_t c = 0; c < t->ncols; c++)
		if (json_array_append_new(cols, jstr(t->columns[c] != NULL ? t->columns[c] : "")) != 0)
			goto fail;
	for (size_t r = 0; r < t->nrows; r++) {
		json_t *row = json_array();
		if (row == NULL || json_array_append_new(rows, row) != 0)
			goto fail;
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			if (json_array_append_new(row, jstr(cell != NULL ? cell : "")) != 0)
				goto fail;
		}
	}
	if (json_object_set_new(o, "columns", cols) != 0) {
		cols = NULL;
		goto fail;
	}
	if (json_object_set_new(o, "rows", rows) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
fail:
	json_decref(o);
	json_decref(cols);
	json_decref(rows);
	return NULL;
}

json_t *
dw_notification_to_jansson(const struct dw_notification *n, int flags)
{
	char ts[32];
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int bad = 0;
	bad |= set_str(o, "schema", DW_NOTIFICATION_SCHEMA);
	bad |= set_str(o, "kind", dw_notify_kind_name(n->kind));
	bad |= set_str(o, "severity", dw_severity_name(n->severity));
	bad |= set_str(o, "time", dw_rfc3339(n->time, ts, sizeof ts));
	bad |= set_str(o, "idempotency_key", n->idempotency_key != NULL ? n->idempotency_key : "");
	if (!(flags & DW_NJ_NO_ATTEMPT))
		bad |= json_object_set_new(o, "attempt", json_integer(n->attempt));
	bad |= set_str(o, "rule", n->rule);
	bad |= set_str(o, "domain", n->domain);
	bad |= set_str(o, "title", n->title != NULL ? n->title : "");
	bad |= set_str(o, "body", n->body != NULL ? n->body : "");
	bad |= set_str(o, "summary", n->summary);
	bad |= set_str(o, "runbook", n->runbook);
	if (n->nfields > 0) {
		json_t *a = json_array();
		bad |= json_object_set_new(o, "fields", a);
		for (size_t i = 0; a != NULL && i < n->nfields; i++) {
			json_t *f = json_object();
			bad |= json_array_append_new(a, f);
			if (f != NULL) {
				bad |= set_str(f, "name", n->fields[i].name != NULL ? n->fields[i].name : "");
				bad |= set_str(f, "value", n->fields[i].value != NULL ? n->fields[i].value : "");
			}
		}
	}
	if (n->table != NULL)
		bad |= json_object_set_new(o, "table", table_json(n->table));
	if (n->attachment != NULL) {
		const struct dw_attachment *at = n->attachment;
		json_t *a = json_object();
		bad |= json_object_set_new(o, "attachment", a);
		if (a != NULL) {
			bad |= set_str(a, "filename", at->filename != NULL ? at->filename : "attachment");
			bad |= set_str(a, "media_type", at->media_type != NULL ? at->media_type
			                                                   : "application/octet-stream");
			bad |= json_object_set_new(a, "size", json_integer((json_int_t)at->size));
			if (!(flags & DW_NJ_NO_ATTACHMENT_DATA)) {
				char *enc = b64_encode(at->data, at->size);
				bad |= enc == NULL ? -1 : set_str(a, "data_base64", enc);
				free(enc);
			}
		}
	}
	if (bad != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *
dw_notification_to_json(const struct dw_notification *n, int flags)
{
	json_t *o = dw_notification_to_jansson(n, flags);
	if (o == NULL)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* A parsed notification owns its memory: everything hangs off this. */
struct owned {
	struct dw_notification n; /* first: dw_notification_free casts back */
	char *strs[8];            /* key, rule, domain, title, body, summary, runbook, spare */
	struct dw_field *fields;
	char **field_strs;        /* 2 * nfields */
	struct dw_table table;
	char **table_strs;        /* ncols + nrows * ncols */
	struct dw_attachment att;
	char *att_name, *att_type;
	unsigned char *att_data;
};

void
dw_notification_free(struct dw_notification *n)
{
	if (n == NULL)
		return;
	struct owned *w = (struct owned *)n;
	for (size_t i = 0; i < 8; i++)
		free(w->strs[i]);
	if (w->field_strs != NULL)
		for (size_t i = 0; i < 2 * n->nfields; i++)
			free(w->field_strs[i]);
	free(w->field_strs);
	free(w->fields);
	if (w->table_strs != NULL)
		for (size_t i = 0; i < w->table.ncols * (1 + w->table.nrows); i++)
			free(w->table_strs[i]);
	free(w->table_strs);
	free(w->att_name);
	free(w->att_type);
	free(w->att_data);
	free(w);
}

DW_NOTIFIER_PRINTF(3, 4) static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* An optional string member: 0 absent, 1 copied into *out, -1 wrong type/OOM. */
static int
get_str(json_t *o, const char *key, char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, errlen, "%s: expected a string", key);
	*out = strdup(json_string_value(v));
	return *out != NULL ? 1 : fail(err, errlen, "%s: out of memory", key);
}

static int
parse_time(const char *s, time_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	char z = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec, &z) != 7 || z != 'Z' || strlen(s) != 20)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return 0;
}

static int
parse_fields(struct owned *w, json_t *a, char *err, size_t errlen)
{
	if (!json_is_array(a))
		return fail(err, errlen, "%s: expected a list of {\"name\", \"value\"}", "fields");
	size_t n = json_array_size(a);
	if (n == 0)
		return 0;
	w->fields = calloc(n, sizeof *w->fields);
	w->field_strs = calloc(2 * n, sizeof *w->field_strs);
	if (w->fields == NULL || w->field_strs == NULL)
		return fail(err, errlen, "%s: out of memory", "fields");
	w->n.nfields = n;
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(a, i);
		json_t *name = json_object_get(f, "name"), *value = json_object_get(f, "value");
		if (!json_is_string(name) || !json_is_string(value))
			return fail(err, errlen, "%s: each item needs string \"name\" and \"value\"", "fields");
		w->field_strs[2 * i] = strdup(json_string_value(name));
		w->field_strs[2 * i + 1] = strdup(json_string_value(value));
		if (w->field_strs[2 * i] == NULL || w->field_strs[2 * i + 1] == NULL)
			return fail(err, errlen, "%s: out of memory", "fields");
		w->fields[i].name = w->field_strs[2 * i];
		w->fields[i].value = w->field_strs[2 * i + 1];
	}
	w->n.fields = w->fields;
	return 0;
}

static int
parse_table(struct owned *w, json_t *t, char *err, size_t errlen)
{
	json_t *cols = json_object_get(t, "columns"), *rows = json_object_get(t, "rows");
	if (!json_is_array(cols) || !json_is_array(rows) || json_array_size(cols) == 0)
		return fail(err, errlen, "%s: expected {\"columns\": [...], \"rows\": [[...], ...]}", "table");
	size_t nc = json_array_size(cols), nr = json_array_size(rows);
	if (nr > 100000 || nc > 1000)
		return fail(err, errlen, "%s: too large", "table");
	w->table_strs = calloc(nc * (1 + nr), sizeof *w->table_strs);
	if (w->table_strs == NULL)
		return fail(err, errlen, "%s: out of memory", "table");
	w->table.ncols = nc;
	w->table.nrows = nr;
	for (size_t r = 0; r <= nr; r++) {
		json_t *row = r == 0 ? cols : json_array_get(rows, r - 1);
		if (!json_is_array(row) || json_array_size(row) != nc)
			return fail(err, errlen, "%s: every row needs as many cells as there are columns", "table");
		for (size_t c = 0; c < nc; c++) {
			json_t *v = json_array_get(row, c);
			if (!json_is_string(v))
				return fail(err, errlen, "%s: cells must be strings", "table");
			if ((w->table_strs[r * nc + c] = strdup(json_string_value(v))) == NULL)
				return fail(err, errlen, "%s: out of memory", "table");
		}
	}
	w->table.columns = (const char *const *)w->table_strs;
	w->table.cells = (const char *const *)(w->table_strs + nc);
	w->n.table = &w->table;
	return 0;
}

static int
parse_attachment(struct owned *w, json_t *a, char *err, size_t errlen)
{
	if (!json_is_object(a))
		return fail(err, errlen, "%s: expected an object", "attachment");
	if (get_str(a, "filename", &w->att_name, err, errlen) < 0 ||
	    get_str(a, "media_type", &w->att_type, err, errlen) < 0)
		return -1;
	json_t *d = json_object_get(a, "data_base64");
	if (w->att_name == NULL || !json_is_string(d))
		return fail(err, errlen, "%s: needs \"filename\" and \"data_base64\"", "attachment");
	if (b64_decode(json_string_value(d), &w->att_data, &w->att.size) != 0)
		return fail(err, errlen, "%s: data_base64 is not valid base64", "attachment");
	w->att.filename = w->att_name;
	w->att.media_type = w->att_type != NULL ? w->att_type : "application/octet-stream";
	w->att.data = w->att_data;
	w->n.attachment = &w->att;
	return 0;
}

int
dw_notification_from_json(const char *text, size_t len, struct dw_notification **out, char *err,
                          size_t errlen)
{
	json_error_t je;
	*out = NULL;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
		return -1;
	}
	struct owned *w = calloc(1, sizeof *w);
	int rc = -1;
	if (w == NULL) {
		fail(err, errlen, "%s", "out of memory");
		goto done;
	}
	w->n.struct_size = sizeof w->n;
	if (!json_is_object(o)) {
		fail(err, errlen, "%s", "expected a JSON object");
		goto done;
	}
	json_t *schema = json_object_get(o, "schema");
	if (schema != NULL && (!json_is_string(schema) ||
	                       strcmp(json_string_value(schema), DW_NOTIFICATION_SCHEMA) != 0)) {
		fail(err, errlen, "schema: expected \"%s\"", DW_NOTIFICATION_SCHEMA);
		goto done;
	}
	char *kind = NULL, *sev = NULL, *ts = NULL;
	int k1 = get_str(o, "kind", &kind, err, errlen);
	int k2 = get_str(o, "severity", &sev, err, errlen);
	int k3 = get_str(o, "time", &ts, err, errlen);
	w->n.kind = (uint32_t)dw_notify_kind_parse(kind);
	w->n.severity = sev != NULL ? (uint32_t)dw_severity_parse(sev) : DW_SEV_INFO;
	w->n.time = time(NULL);
	int bad_time = ts != NULL && parse_time(ts, &w->n.time) != 0;
	free(kind);
	free(sev);
	free(ts);
	if (k1 < 0 || k2 < 0 || k3 < 0)
		goto done;
	if (w->n.kind == 0) {
		fail(err, errlen, "%s: expected one of alert, resolved, digest, test", "kind");
		goto done;
	}
	if (w->n.severity == 0) {
		fail(err, errlen, "%s: expected one of info, warning, critical", "severity");
		goto done;
	}
	if (bad_time) {
		fail(err, errlen, "%s: expected RFC 3339 UTC, like 2026-11-23T09:00:00Z", "time");
		goto done;
	}
	static const char *const keys[] = {"idempotency_key", "rule",    "domain", "title",
	                                   "body",            "summary", "runbook"};
	for (size_t i = 0; i < 7; i++)
		if (get_str(o, keys[i], &w->strs[i], err, errlen) < 0)
			goto done;
	if (w->strs[3] == NULL) {
		fail(err, errlen, "%s: required", "title");
		goto done;
	}
	if (w->strs[0] == NULL && (w->strs[0] = strdup("")) == NULL)
		goto done;
	if (w->strs[4] == NULL && (w->strs[4] = strdup("")) == NULL)
		goto done;
	w->n.idempotency_key = w->strs[0];
	w->n.rule = w->strs[1];
	w->n.domain = w->strs[2];
	w->n.title = w->strs[3];
	w->n.body = w->strs[4];
	w->n.summary = w->strs[5];
	w->n.runbook = w->strs[6];
	json_t *att = json_object_get(o, "attempt");
	w->n.attempt = json_is_integer(att) && json_integer_value(att) > 0 && json_integer_value(att) < 1000000
	                   ? (uint32_t)json_integer_value(att)
	                   : 1;
	json_t *v;
	if ((v = json_object_get(o, "fields")) != NULL && parse_fields(w, v, err, errlen) != 0)
		goto done;
	if ((v = json_object_get(o, "table")) != NULL && parse_table(w, v, err, errlen) != 0)
		goto done;
	if ((v = json_object_get(o, "attachment")) != NULL && parse_attachment(w, v, err, errlen) != 0)
		goto done;
	rc = 0;
done:
	json_decref(o);
	if (rc == 0)
		*out = &w->n;
	else if (w != NULL)
		dw_notification_free(&w->n);
	return rc;
}
