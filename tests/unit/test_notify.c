/*
 * test_notify - the notifier loader (refusals with their exact messages,
 * host services, secret masking), the notification JSON both ways, the
 * outbox (queue, claim, leases, outcomes, pruning) and the delivery
 * threads (retries with backoff, a slow plugin that must not hold up the
 * others). Uses the test plugins in tests/plugins/ ($DW_TEST_PLUGINS).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dw/config.h"
#include "dw/deliver.h"
#include "dw/log.h"
#include "dw/notification_json.h"
#include "dw/notify.h"
#include "dw/outbox.h"
#include "dw/store.h"
#include "dw/util.h"
#include "tap.h"

static char tmp[256];
static const char *plugdir;

static struct dw_config *
config_in(const char *state_dir, const char *notifiers)
{
	char *text = xasprintf("state_dir: %s\nplugin_dir: %s\naccounts:\n  - name: a\n    source: maildir\n"
	                       "    path: %s/Maildir\nnotifiers:\n%s",
	                       state_dir, plugdir, tmp, notifiers);
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	int rc = dw_config_load_string("t.yaml", text, strlen(text), &c, &m);
	if (rc != DW_OK)
		for (size_t i = 0; i < m.nerrors; i++)
			diag("config: %s", m.errors[i]);
	dw_cfg_msgs_free(&m);
	free(text);
	return c;
}

static struct dw_config *
config(const char *notifiers)
{
	return config_in(tmp, notifiers);
}

/* Load and expect failure; returns all errors joined by newlines. */
static char *
load_fails(const char *notifiers)
{
	struct dw_config *c = config(notifiers);
	if (c == NULL)
		return xstrdup("(config did not load)");
	struct dw_notifiers *ns = NULL;
	struct dw_cfg_msgs m = {0};
	int rc = dw_notifiers_load(c, &ns, &m);
	char *all = xstrdup(rc == DW_OK ? "(loaded)" : "");
	for (size_t i = 0; i < m.nerrors; i++) {
		char *n = xasprintf("%s%s%s", all, i > 0 ? "\n" : "", m.errors[i]);
		free(all);
		all = n;
	}
	dw_notifiers_free(ns);
	dw_cfg_msgs_free(&m);
	dw_config_free(c);
	return all;
}

static int
has(const char *hay, const char *needle)
{
	int r = hay != NULL && strstr(hay, needle) != NULL;
	if (!r)
		diag("'%s' not in:\n# %s", needle, hay != NULL ? hay : "(null)");
	return r;
}

static void
test_refusals(void)
{
	char *e;
	char *p = xasprintf("%s/bad_abi.so", plugdir);
	e = load_fails("  - name: x\n    plugin: bad_abi\n");
	char *want = xasprintf("t.yaml:9:13: notifiers[0].plugin: plugin bad_abi (%s): built for notifier ABI 2, "
	                    "this agent speaks 1; rebuild it against dmarcwatch/notifier.h (pkg-config --cflags dmarcwatch-plugin)",
	                    p);
	ok(has(e, want), "wrong ABI: refused with the exact message");
	free(want);
	free(e);
	free(p);

	e = load_fails("  - name: x\n    plugin: no_symbol\n");
	ok(has(e, "notifiers[0].plugin: ") && has(e, "no_symbol.so does not export dw_notifier_entry: it is not a "
	                                                "dmarcwatch notifier plugin"),
	   "missing symbol: refused");
	free(e);

	e = load_fails("  - name: x\n    plugin: null_notify\n");
	ok(has(e, "plugin null_notify (") && has(e, "): its notify function is NULL; the plugin is incomplete"),
	   "NULL notify: refused");
	free(e);

	e = load_fails("  - name: x\n    plugin: small_struct\n");
	ok(has(e, "its struct dw_notifier is 16 bytes, smaller than ABI 1's"), "too small a struct: refused");
	free(e);

	e = load_fails("  - name: x\n    plugin: init_fails\n");
	ok(has(e, "t.yaml:8:5: notifiers[0]: plugin init_fails: cannot reach the pager service: this plugin "
	          "always refuses to start"),
	   "init failure: reported with the plugin's reason");
	free(e);

	e = load_fails("  - name: x\n    plugin: nosuch\n");
	ok(has(e, "notifiers[0].plugin: no plugin \"nosuch\" in ") && has(e, "set plugin_dir or give the .so's absolute path"),
	   "unknown plugin name: says where it looked and what to do");
	free(e);

	e = load_fails("  - name: x\n    plugin: recorder\n    path: /dev/null\n    colour: blue\n");
	ok(has(e, "t.yaml:11:13: notifiers[0].colour: unknown key (recorder knows path, retry_first, retry_after, delay_ms"),
	   "a plugin's config_error carries file:line:col and the key path");
	free(e);

	e = load_fails("  - name: x\n    plugin: recorder\n    path: /dev/null\n  - name: y\n    plugin: bad_abi\n"
	               "  - name: z\n    plugin: init_fails\n");
	ok(has(e, "notifiers[1].plugin") && has(e, "notifiers[2]: plugin init_fails"),
	   "every refused notifier is reported, not just the first");
	free(e);

	/* A group-writable copy of a good plugin. */
	char *src = xasprintf("%s/recorder.so", plugdir), *dst = xasprintf("%s/gw/recorder.so", tmp);
	char *dir = xasprintf("%s/gw", tmp);
	mkdir(dir, 0755);
	char *cmd = xasprintf("cp '%s' '%s'", src, dst);
	ok(system(cmd) == 0, "copied recorder.so");
	chmod(dst, 0664);
	char *nf = xasprintf("  - name: x\n    plugin: %s\n    path: /dev/null\n", dst);
	e = load_fails(nf);
	ok(has(e, "it is writable by its group (mode 0664)") && has(e, "chmod go-w"),
	   "a group-writable plugin is refused with the fix");
	free(e);
	chmod(dst, 0644);
	e = load_fails(nf);
	is_str(e, "(loaded)", "the same file with mode 0644 loads");
	free(e);
	chmod(dir, 0777);
	e = load_fails(nf);
	ok(has(e, "is writable by everyone, so the file could be replaced"), "a world-writable directory is refused");
	free(e);
	/* A symlink from a safe directory to that file is judged by the file's directory. */
	char *safe = xasprintf("%s/safe", tmp), *link = xasprintf("%s/safe/link.so", tmp);
	mkdir(safe, 0755);
	ok(symlink(dst, link) == 0, "symlink made");
	char *nl = xasprintf("  - name: x\n    plugin: %s\n    path: /dev/null\n", link);
	e = load_fails(nl);
	ok(has(e, "is writable by everyone"), "a symlink to a plugin in a world-writable directory is refused");
	free(e);
	free(nl);
	free(link);
	free(safe);
	chmod(dir, 0755);
	free(nf);
	free(cmd);
	free(dir);
	free(src);
	free(dst);
}

/* Log lines go to stderr; capture them in a file to look for secrets. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return xstrdup("");
	char *buf = xcalloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_json(void)
{
	const char *cols[] = {"ip", "n"};
	const char *cells[] = {"192.0.2.1", "5", "2001:db8::1", "7"};
	struct dw_table t = {2, cols, 2, cells};
	const unsigned char bytes[] = {'a', ',', 0xc3, 0xa9, '\r', '\n', 0, 0xff};
	struct dw_attachment a = {"x.csv", "text/csv", bytes, sizeof bytes};
	struct dw_field f[] = {{"messages", "12"}, {"quote\"d", "back\\slash\n"}};
	struct dw_notification n = {.struct_size = sizeof n, .kind = DW_KIND_ALERT, .severity = DW_SEV_CRITICAL,
	                            .attempt = 3, .time = 1795430000, .idempotency_key = "k1", .rule = "r",
	                            .domain = "example.com", .title = "T \xe2\x80\x93 \xe6\x9d\xb1", .body = "b\n",
	                            .summary = "*s*", .runbook = "https://x/rb", .fields = f, .nfields = 2,
	                            .table = &t, .attachment = &a};
	char *js = dw_notification_to_json(&n, 0);
	ok(js != NULL && has(js, "\"schema\":\"dmarcwatch.notification/1\"") && has(js, "\"kind\":\"alert\"") &&
	       has(js, "\"time\":\"2026-11-23T10:33:20Z\"") && has(js, "\"data_base64\":\"YSzDqQ0KAP8=\""),
	   "to JSON: schema, kind, RFC 3339 time, base64 attachment");
	struct dw_notification *b = NULL;
	char err[256] = "";
	ok(dw_notification_from_json(js, strlen(js), &b, err, sizeof err) == 0, "parsed back: %s", err);
	if (b != NULL) {
		ok(b->kind == DW_KIND_ALERT && b->severity == DW_SEV_CRITICAL && b->attempt == 3 && b->time == n.time,
		   "round trip: kind, severity, attempt, time");
		is_str(b->title, n.title, "round trip: UTF-8 title");
		ok(b->nfields == 2 && strcmp(b->fields[1].name, "quote\"d") == 0 &&
		       strcmp(b->fields[1].value, "back\\slash\n") == 0,
		   "round trip: fields with quotes, backslashes, newlines");
		ok(b->table != NULL && b->table->ncols == 2 && b->table->nrows == 2 &&
		       strcmp(b->table->cells[2], "2001:db8::1") == 0,
		   "round trip: table");
		ok(b->attachment != NULL && b->attachment->size == sizeof bytes &&
		       memcmp(b->attachment->data, bytes, sizeof bytes) == 0,
		   "round trip: attachment bytes exact (NUL, 0xff, CRLF)");
	}
	dw_notification_free(b);
	free(js);
	/* A title cut in the middle of a character still encodes (U+FFFD). */
	struct dw_notification cutn = n;
	cutn.title = "caf\xc3";
	cutn.table = NULL;
	js = dw_notification_to_json(&cutn, 0);
	ok(js != NULL && has(js, "\"title\":\"caf\\uFFFD\""), "invalid UTF-8 becomes U+FFFD, nothing is lost");
	free(js);
	static const char *const bad[][2] = {
	    {"{\"title\": \"x\"}", "kind: expected one of alert, resolved, digest, test"},
	    {"{\"kind\": \"alert\"}", "title: required"},
	    {"{\"kind\": \"alert\", \"title\": \"x\", \"severity\": \"loud\"}", "severity: expected one of"},
	    {"{\"kind\": \"alert\", \"title\": \"x\", \"time\": \"yesterday\"}", "time: expected RFC 3339"},
	    {"{\"kind\": \"alert\", \"title\": \"x\", \"attachment\": {\"filename\": \"a\", \"data_base64\": \"@@\"}}",
	     "not valid base64"},
	    {"{\"kind\": \"alert\", \"title\": \"x\", \"table\": {\"columns\": [\"a\"], \"rows\": [[\"1\", \"2\"]]}}",
	     "every row needs as many cells"},
	    {"[1,", "line 1"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		b = NULL;
		err[0] = '\0';
		int rc = dw_notification_from_json(bad[i][0], strlen(bad[i][0]), &b, err, sizeof err);
		ok(rc != 0 && b == NULL && has(err, bad[i][1]), "bad JSON refused: %s", bad[i][1]);
	}
}

static struct dw_notification
note(const char *key, const char *title)
{
	struct dw_notification n = {.struct_size = sizeof n, .kind = DW_KIND_TEST, .severity = DW_SEV_INFO,
	                            .attempt = 1, .time = 1795430000, .idempotency_key = key, .title = title, .body = ""};
	return n;
}

static void
test_outbox(void)
{
	char *path = xasprintf("%s/outbox.db", tmp), err[512] = "";
	struct dw_store *s = NULL;
	ok(dw_store_open(path, &s, err, sizeof err) == DW_OK, "store opened: %s", err);
	if (s == NULL)
		return;
	struct dw_notification n = note("k1", "first");
	int64_t id1 = 0, id2 = 0, id3 = 0;
	int created = -1;
	ok(dw_outbox_put(s, "rec", &n, 1000, &id1, &created, err, sizeof err) == DW_OK && id1 > 0 && created == 1,
	   "queued: entry %lld", (long long)id1);
	ok(dw_outbox_put(s, "rec", &n, 2000, &id2, &created, err, sizeof err) == DW_OK && id2 == id1 && created == 0,
	   "the same key again: not queued twice, same entry");
	ok(dw_outbox_put(s, "other", &n, 2000, &id3, &created, err, sizeof err) == DW_OK && id3 != id1 && created == 1,
	   "the same key for another notifier: its own entry");
	struct dw_notification nokey = note("", "x");
	ok(dw_outbox_put(s, "rec", &nokey, 1000, &id2, NULL, err, sizeof err) == DW_E_INPUT, "no idempotency key: refused");

	struct dw_outbox_entry e;
	ok(dw_outbox_claim(s, "rec", 0, 999, 5000, &e, err, sizeof err) == 0, "nothing due before next_at");
	ok(dw_outbox_claim(s, "rec", 0, 1500, 5000, &e, err, sizeof err) == 1 && e.id == id1 && e.attempts == 1,
	   "claimed when due, attempt 1");
	ok(e.payload != NULL && has(e.payload, "\"title\":\"first\"") && strstr(e.payload, "\"attempt\"") == NULL,
	   "the payload is the JSON, without the attempt");
	dw_outbox_entry_clear(&e);
	ok(dw_outbox_claim(s, "rec", 0, 2000, 5000, &e, err, sizeof err) == 0, "leased: not claimed again");
	ok(dw_outbox_retry(s, id1, 3000, "boom", err, sizeof err) == DW_OK, "rescheduled");
	int64_t when = 0;
	ok(dw_outbox_next_due(s, "rec", 0, &when, err, sizeof err) == DW_OK && when == 3000, "next due at 3000");
	ok(dw_outbox_claim(s, "rec", 0, 3000, 5000, &e, err, sizeof err) == 1 && e.attempts == 2 &&
	       e.last_error != NULL && strcmp(e.last_error, "boom") == 0,
	   "claimed again: attempt 2, last error kept");
	dw_outbox_entry_clear(&e);
	ok(dw_outbox_delivered(s, id1, 3100, err, sizeof err) == DW_OK, "delivered");
	ok(dw_outbox_claim(s, "rec", 0, 99999, 5000, &e, err, sizeof err) == 0, "a delivered entry is never claimed again");
	ok(dw_outbox_get(s, id1, &e, err, sizeof err) == 1 && e.state == DW_OUTBOX_DELIVERED && e.done_at == 3100,
	   "get: delivered at 3100");
	dw_outbox_entry_clear(&e);

	/* A lease held by a process that is gone is released. */
	ok(dw_outbox_claim(s, "other", 0, 5000, 3600000, &e, err, sizeof err) == 1, "other: claimed");
	dw_outbox_entry_clear(&e);
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE outbox SET lease_pid = 2147483000 WHERE id = %lld", (long long)id3);
	sqlite3_exec(dw_store_sqlite(s), sql, NULL, NULL, NULL);
	ok(dw_outbox_claim(s, "other", 0, 6000, 5000, &e, err, sizeof err) == 0, "still leased");
	ok(dw_outbox_release_dead(s, 6000, err, sizeof err) == DW_OK, "release leases of dead processes");
	ok(dw_outbox_claim(s, "other", 0, 6000, 5000, &e, err, sizeof err) == 1 && e.id == id3 && e.attempts == 2,
	   "claimable again after its holder died");
	dw_outbox_entry_clear(&e);
	ok(dw_outbox_dead(s, id3, 7000, "gave up", err, sizeof err) == DW_OK, "dead-lettered");
	int64_t p = -1, d = -1, x = -1;
	ok(dw_outbox_counts(s, NULL, &p, &d, &x, err, sizeof err) == DW_OK && p == 0 && d == 1 && x == 1,
	   "counts: 0 pending, 1 delivered, 1 dead");
	int64_t gone = 0;
	ok(dw_outbox_prune(s, 6000, &gone, err, sizeof err) == DW_OK && gone == 1, "prune before 6000: the delivered one");
	ok(dw_outbox_get(s, id3, &e, err, sizeof err) == 1 && e.state == DW_OUTBOX_DEAD &&
	       strcmp(e.last_error, "gave up") == 0,
	   "the dead letter is still there, with its error");
	dw_outbox_entry_clear(&e);
	dw_store_close(s);
	free(path);
}

static int
lines_in(const char *path)
{
	char *s = slurp(path);
	int n = 0;
	for (char *p = s; *p != '\0'; p++)
		n += *p == '\n';
	free(s);
	return n;
}

static void
test_delivery(void)
{
	char *tok = xasprintf("%s/token", tmp);
	FILE *f = fopen(tok, "w");
	fputs("tok-5ecret-value\n", f);
	fclose(f);
	chmod(tok, 0600);
	char *nf = xasprintf("  - name: rec\n    plugin: recorder\n    path: %s/rec.txt\n"
	                     "  - name: flaky\n    plugin: recorder\n    path: %s/flaky.txt\n    retry_first: 2\n"
	                     "    retry_min: 1s\n    token_file: %s\n    leak_secret: true\n"
	                     "  - name: slow\n    plugin: slow\n    path: %s/slow.txt\n    sleep: 8\n    timeout: 1s\n"
	                     "  - name: dead\n    plugin: recorder\n    path: %s/dead.txt\n    fail: true\n",
	                     tmp, tmp, tok, tmp, tmp);
	struct dw_config *c = config(nf);
	ok(c != NULL, "delivery config loads");
	if (c == NULL)
		return;
	struct dw_notifiers *ns = NULL;
	struct dw_cfg_msgs m = {0};
	ok(dw_notifiers_load(c, &ns, &m) == DW_OK && dw_notifiers_count(ns) == 4, "four notifiers loaded");
	dw_cfg_msgs_free(&m);
	if (ns == NULL)
		return;

	/* Redaction of a secret the plugin resolved. */
	char msg[128] = "token tok-5ecret-value here, twice: tok-5ecret-value";
	dw_notifier_redact(dw_notifiers_find(ns, "flaky"), msg, sizeof msg);
	is_str(msg, "token [secret] here, twice: [secret]", "secrets are masked in text");
	char cut[64] = "a text cut short ends with tok-5ec";
	dw_notifier_redact(dw_notifiers_find(ns, "flaky"), cut, sizeof cut);
	is_str(cut, "a text cut short ends with [secret]", "the start of a secret at a cut end is masked too");

	char err[512] = "";
	struct dw_store *s = NULL;
	dw_store_open(dw_config_db_path(c), &s, err, sizeof err);
	int64_t now = dw_wall_ms(), ids[8];
	const char *to[] = {"slow", "rec", "rec", "flaky", "dead"};
	for (int i = 0; i < 5; i++) {
		char key[32];
		snprintf(key, sizeof key, "d%d", i);
		struct dw_notification n = note(key, "delivery test");
		dw_outbox_put(s, to[i], &n, now, &ids[i], NULL, err, sizeof err);
	}
	struct dw_deliver *d = NULL;
	struct dw_deliver_opts o = {.db_path = dw_config_db_path(c), .keep = 3600};
	int64_t t0 = dw_mono_ms();
	char *recp = xasprintf("%s/rec.txt", tmp), *flakyp = xasprintf("%s/flaky.txt", tmp);
	ok(dw_deliver_start(ns, &o, &d, err, sizeof err) == DW_OK, "delivery started: %s", err);
	/* rec's two entries must arrive while slow is still sleeping. */
	while (lines_in(recp) < 2 && dw_mono_ms() - t0 < 5000)
		usleep(20000);
	int64_t rec_ms = dw_mono_ms() - t0;
	ok(lines_in(recp) == 2 && rec_ms < 4000,
	   "rec delivered both entries in %lld ms while slow sleeps 8 s", (long long)rec_ms);
	while (lines_in(flakyp) < 1 && dw_mono_ms() - t0 < 10000)
		usleep(20000);
	int64_t flaky_ms = dw_mono_ms() - t0;
	ok(lines_in(flakyp) == 1 && flaky_ms >= 2000 && flaky_ms < 8000,
	   "flaky: delivered on attempt 3 after backoff 1 s + 2 s (+-20 %%): %lld ms", (long long)flaky_ms);
	struct dw_outbox_entry e;
	dw_outbox_get(s, ids[3], &e, err, sizeof err);
	ok(e.state == DW_OUTBOX_DELIVERED && e.attempts == 3, "flaky: attempts 3");
	ok(e.last_error != NULL && has(e.last_error, "[secret]") && strstr(e.last_error, "5ecret") == NULL,
	   "the stored error has the secret masked: %s", e.last_error);
	dw_outbox_entry_clear(&e);
	dw_outbox_get(s, ids[4], &e, err, sizeof err);
	ok(e.state == DW_OUTBOX_DEAD && e.attempts == 1 && has(e.last_error, "told to fail"),
	   "FAIL: dead-lettered at once with the plugin's error");
	dw_outbox_entry_clear(&e);
	while (dw_mono_ms() - t0 < 7000) {
		dw_outbox_get(s, ids[0], &e, err, sizeof err);
		int timed = e.last_error != NULL && has(e.last_error, "timed out");
		dw_outbox_entry_clear(&e);
		if (timed)
			break;
		usleep(50000);
	}
	int64_t slow_ms = dw_mono_ms() - t0;
	dw_outbox_get(s, ids[0], &e, err, sizeof err);
	ok(e.state == DW_OUTBOX_PENDING && e.last_error != NULL &&
	       has(e.last_error, "timed out: the plugin did not return within 1 s"),
	   "slow: counted as timed out after timeout + grace (%lld ms), still pending", (long long)slow_ms);
	dw_outbox_entry_clear(&e);
	/* Stop with a short grace: the slow call is abandoned, not waited for. */
	int64_t t1 = dw_mono_ms();
	int abandoned = dw_deliver_stop(d, 200);
	ok(abandoned == 1 && dw_mono_ms() - t1 < 1500, "stop does not wait for a hung plugin beyond its grace");
	/* ns stays alive for the running thread: do not free it (the process ends). */
	dw_store_close(s);
	dw_config_free(c);
	free(recp);
	free(flakyp);
	free(nf);
	free(tok);
}

/* Count the lines of text that contain needle. */
static int
count_in(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static int
count_cb(const struct dw_outbox_entry *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

/* Queue one entry for notifier, created at `at`; returns its id. */
static int64_t
queue_at(struct dw_store *s, const char *notifier, const char *key, int64_t at)
{
	char err[512] = "";
	int64_t id = 0;
	struct dw_notification n = note(key, "stray test");
	if (dw_outbox_put(s, notifier, &n, at, &id, NULL, err, sizeof err) != DW_OK)
		diag("queue %s: %s", key, err);
	return id;
}

static int
state_of(struct dw_store *s, int64_t id, struct dw_outbox_entry *e)
{
	char err[512] = "";
	if (dw_outbox_get(s, id, e, err, sizeof err) != 1) {
		diag("entry %lld: %s", (long long)id, err);
		return 0;
	}
	return (int)e->state;
}

#define HOUR_MS (3600 * INT64_C(1000))

/* The outbox side: which notifiers have strays, and dead-lettering them. */
static void
test_strays_outbox(void)
{
	char *path = xasprintf("%s/strays.db", tmp), err[512] = "";
	struct dw_store *s = NULL;
	ok(dw_store_open(path, &s, err, sizeof err) == DW_OK, "strays: store opened: %s", err);
	if (s == NULL)
		return;
	int64_t now = dw_wall_ms();
	int64_t young = queue_at(s, "gone", "young", now - HOUR_MS);
	int64_t old = queue_at(s, "gone", "old", now - 25 * HOUR_MS);
	int64_t done = queue_at(s, "gone", "done", now - 26 * HOUR_MS);
	int64_t leased = queue_at(s, "gone", "leased", now - 25 * HOUR_MS);
	int64_t mine = queue_at(s, "rec", "mine", now - 25 * HOUR_MS);
	queue_at(s, "other", "o1", now - 2 * HOUR_MS);
	struct dw_outbox_entry e;
	ok(dw_outbox_claim(s, "gone", done, now, 1000, &e, err, sizeof err) == 1, "strays: 'done' claimed");
	dw_outbox_entry_clear(&e);
	ok(dw_outbox_delivered(s, done, now - 25 * HOUR_MS, err, sizeof err) == DW_OK, "strays: 'done' delivered");
	ok(dw_outbox_claim(s, "gone", leased, now, 10 * 60 * 1000, &e, err, sizeof err) == 1,
	   "strays: 'leased' claimed by this live process for 10 min");
	dw_outbox_entry_clear(&e);

	const char *names[] = {"rec"};
	struct dw_outbox_stray *v = NULL;
	size_t n = 0;
	ok(dw_outbox_strays(s, names, 1, &v, &n, err, sizeof err) == DW_OK, "strays listed: %s", err);
	ok(n == 2 && strcmp(v[0].notifier, "gone") == 0 && strcmp(v[1].notifier, "other") == 0,
	   "strays: 'gone' and 'other', by name, not the configured 'rec'");
	if (n == 2) {
		is_int(v[0].count, 3, "strays: 'gone' has 3 pending (the delivered one is not counted)");
		is_int(v[0].oldest, now - 25 * HOUR_MS, "strays: the oldest pending of 'gone' is 25 h old");
		is_int(v[1].count, 1, "strays: 'other' has 1");
	}
	dw_outbox_strays_free(v, n);
	ok(dw_outbox_strays(s, NULL, 0, &v, &n, err, sizeof err) == DW_OK && n == 3,
	   "strays with no notifier configured: all 3 notifiers with pending entries");
	dw_outbox_strays_free(v, n);

	int calls = 0;
	size_t changed = 99;
	const char *why = "notifier 'gone' is no longer configured";
	ok(dw_outbox_expire(s, "gone", now - 24 * HOUR_MS, now, why, count_cb, &calls, &changed, err, sizeof err) ==
	       DW_OK,
	   "expire entries of 'gone' older than 24 h: %s", err);
	ok(changed == 1 && calls == 1, "expire: exactly one entry changed and reported (%zu, %d)", changed, calls);
	ok(state_of(s, old, &e) == DW_OUTBOX_DEAD && e.done_at == now && e.last_error != NULL &&
	       strcmp(e.last_error, why) == 0,
	   "the 25 h old entry is dead with \"%s\"", why);
	dw_outbox_entry_clear(&e);
	ok(state_of(s, young, &e) == DW_OUTBOX_PENDING && e.last_error == NULL, "the 1 h old entry is still pending");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, leased, &e) == DW_OUTBOX_PENDING, "an entry leased by a live process is left to its holder");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, done, &e) == DW_OUTBOX_DELIVERED && e.done_at == now - 25 * HOUR_MS && e.last_error == NULL,
	   "the delivered entry is unchanged (state, done_at, no error)");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, mine, &e) == DW_OUTBOX_PENDING, "the configured notifier's 25 h old entry is untouched");
	dw_outbox_entry_clear(&e);
	calls = 0;
	ok(dw_outbox_expire(s, "gone", now - 24 * HOUR_MS, now + 1000, why, count_cb, &calls, &changed, err,
	                    sizeof err) == DW_OK &&
	       changed == 0 && calls == 0,
	   "expire again: nothing changes, nothing is reported twice");
	dw_store_close(s);
	free(path);
}

/* Capture stderr (the log) into path while deliveries run. */
static int
stderr_to(const char *path)
{
	fflush(stderr);
	int saved = dup(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
	return saved;
}

static void
stderr_back(int saved)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

/* Start deliveries for cfg, let them run a pass or two, stop; the log goes to logpath. */
static void
deliver_once(const char *notifiers, const char *state_dir, const char *logpath, const char *what)
{
	char err[512] = "";
	struct dw_config *c = config_in(state_dir, notifiers);
	struct dw_notifiers *ns = NULL;
	struct dw_cfg_msgs m = {0};
	int loaded = c != NULL && dw_notifiers_load(c, &ns, &m) == DW_OK;
	dw_cfg_msgs_free(&m);
	ok(loaded, "%s: notifiers loaded", what);
	if (!loaded) {
		dw_config_free(c);
		return;
	}
	struct dw_deliver *d = NULL;
	struct dw_deliver_opts o = {.db_path = dw_config_db_path(c), .keep = 0};
	int saved = stderr_to(logpath);
	int rc = dw_deliver_start(ns, &o, &d, err, sizeof err);
	int drained = rc == DW_OK && dw_deliver_drain(d, 5000);
	int stuck = dw_deliver_stop(d, 2000);
	stderr_back(saved);
	ok(rc == DW_OK && drained && stuck == 0, "%s: deliveries started, drained and stopped: %s", what, err);
	dw_notifiers_free(ns);
	dw_config_free(c);
}

/* The deliverer's policy, on a real database and the recorder plugin. */
static void
test_strays_delivery(void)
{
	char *dir = xasprintf("%s/strays", tmp), *logp = xasprintf("%s/strays/log.txt", tmp);
	char *recp = xasprintf("%s/strays/rec.txt", tmp), *gonep = xasprintf("%s/strays/gone.txt", tmp);
	mkdir(dir, 0700);
	char *only_rec = xasprintf("  - name: rec\n    plugin: recorder\n    path: %s\n    max_age: 30d\n", recp);
	char *gone_back = xasprintf("%s  - name: gone\n    plugin: recorder\n    path: %s\n", only_rec, gonep);
	struct dw_config *c = config_in(dir, only_rec);
	ok(c != NULL, "strays: configuration loads");
	if (c == NULL)
		return;
	char err[512] = "";
	struct dw_store *s = NULL;
	ok(dw_store_open(dw_config_db_path(c), &s, err, sizeof err) == DW_OK, "strays: database opened: %s", err);
	int64_t now = dw_wall_ms();
	int64_t young = queue_at(s, "gone", "young", now - HOUR_MS);
	int64_t old = queue_at(s, "gone", "old", now - 25 * HOUR_MS);
	int64_t done = queue_at(s, "gone", "done", now - 26 * HOUR_MS);
	int64_t old2 = queue_at(s, "gone2", "old2", now - 30 * HOUR_MS);
	int64_t mine = queue_at(s, "rec", "mine", now - 25 * HOUR_MS);
	struct dw_outbox_entry e;
	dw_outbox_claim(s, "gone", done, now, 1000, &e, err, sizeof err);
	dw_outbox_entry_clear(&e);
	ok(dw_outbox_delivered(s, done, now - 25 * HOUR_MS, err, sizeof err) == DW_OK, "strays: 'done' delivered");

	/* 1. 'gone' and 'gone2' are not configured. */
	deliver_once(only_rec, dir, logp, "without 'gone'");
	char *log = slurp(logp);
	is_int(count_in(log, "2 notification(s) queued for notifier 'gone', which is no longer configured: they stay "
	                     "queued for up to 24 h in case it comes back (rename it back, or `dmarcwatch outbox "
	                     "--state pending` to see them), then are dead-lettered"),
	       1, "warned once for 'gone', with its 2 pending entries and what to do");
	is_int(count_in(log, "1 notification(s) queued for notifier 'gone2', which is no longer configured"), 1,
	       "warned once for 'gone2'");
	is_int(count_in(log, "notifier 'rec'"), 0, "no warning for the configured notifier");
	is_int(count_in(log, "giving up: notifier 'gone' is no longer configured (dead letter"), 1,
	       "one dead letter logged for 'gone'");
	is_int(count_in(log, "giving up: notifier 'gone2' is no longer configured (dead letter"), 1,
	       "one dead letter logged for 'gone2'");
	ok(has(log, "notifier gone: entry ") && has(log, "(test \"stray test\") still queued after 86400 s"),
	   "the dead letter names the entry, its kind and title, and the age");
	free(log);
	ok(state_of(s, old, &e) == DW_OUTBOX_DEAD && e.last_error != NULL &&
	       strcmp(e.last_error, "notifier 'gone' is no longer configured") == 0,
	   "the 25 h old entry of 'gone' is dead, with the reason");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, old2, &e) == DW_OUTBOX_DEAD && e.last_error != NULL &&
	       strcmp(e.last_error, "notifier 'gone2' is no longer configured") == 0,
	   "the 30 h old entry of 'gone2' is dead");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, young, &e) == DW_OUTBOX_PENDING && e.attempts == 0 && e.last_error == NULL,
	   "the 1 h old entry of 'gone' is pending, untried");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, done, &e) == DW_OUTBOX_DELIVERED && e.done_at == now - 25 * HOUR_MS && e.last_error == NULL,
	   "the delivered entry of 'gone' is unchanged");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, mine, &e) == DW_OUTBOX_DELIVERED && e.attempts == 1 && e.last_error == NULL,
	   "the configured notifier's 25 h old entry (max_age 30d) is delivered as usual");
	dw_outbox_entry_clear(&e);
	is_int(lines_in(recp), 1, "rec received it once");

	/* 2. A restart, still without 'gone': warned again, nothing logged twice. */
	deliver_once(only_rec, dir, logp, "restarted without 'gone'");
	log = slurp(logp);
	is_int(count_in(log, "1 notification(s) queued for notifier 'gone', which is no longer configured"), 1,
	       "restart: warned again for 'gone', now 1 entry");
	is_int(count_in(log, "'gone2'"), 0, "restart: nothing about 'gone2' (nothing pending)");
	is_int(count_in(log, "giving up"), 0, "restart: no dead letter logged again");
	free(log);

	/* 3. 'gone' comes back: its pending entry is delivered, the dead one is not. */
	deliver_once(gone_back, dir, logp, "with 'gone' back");
	log = slurp(logp);
	is_int(count_in(log, "no longer configured"), 0, "back: no warning");
	free(log);
	ok(state_of(s, young, &e) == DW_OUTBOX_DELIVERED && e.attempts == 1, "back: the pending entry is delivered");
	dw_outbox_entry_clear(&e);
	ok(state_of(s, old, &e) == DW_OUTBOX_DEAD, "back: the dead letter stays dead");
	dw_outbox_entry_clear(&e);
	is_int(lines_in(gonep), 1, "back: 'gone' received exactly one notification");
	is_int(lines_in(recp), 1, "rec still has exactly one");

	dw_store_close(s);
	dw_config_free(c);
	free(gone_back);
	free(only_rec);
	free(gonep);
	free(recp);
	free(logp);
	free(dir);
}

int
main(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/dw_notify_XXXXXX");
	if (mkdtemp(tmp) == NULL)
		return 1;
	plugdir = getenv("DW_TEST_PLUGINS");
	if (plugdir == NULL || plugdir[0] == '\0')
		plugdir = "build/tests/plugins";
	char *abs = realpath(plugdir, NULL);
	if (abs == NULL) {
		printf("1..0 # SKIP no test plugins at %s (make tests builds them)\n", plugdir);
		return 0;
	}
	plugdir = abs;
	dw_log_init(DW_LOG_WARNING, 0, "test_notify");
	test_refusals();
	test_json();
	test_outbox();
	test_strays_outbox();
	test_strays_delivery();
	test_delivery();
	char *cmd = xasprintf("rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		diag("could not remove %s", tmp);
	free(cmd);
	free(abs);
	return done_testing();
}
