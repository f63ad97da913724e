/*
 * test_config.c - unit tests for src/config.c: the shipped example loads,
 * a minimal file gets every default, a file full of mistakes reports all of
 * them with exact FILE:LINE:COL and paths, YAML that is refused (tabs,
 * aliases, duplicate keys, two documents, empty), secrets from files and
 * the environment (missing, empty, too big, world-readable), sizes and
 * durations at their edges, the IMAP/OAuth rules, and the rules:, settle:
 * and digest: sections (every kind and key, defaults, and each mistake
 * with its exact message).
 *
 * Every value used as a secret contains "S3CRET"; every load goes through
 * load_text()/load_file(), which checks that no error or warning ever
 * contains that marker.
 *
 * Secret files are written to a mkdtemp directory under /tmp, removed at
 * the end. The small YAML fixtures live in tests/data/config/.
 */
#include "dw/config.h"
#include "dw/limits.h"
#include "dw/util.h"
#include "dmarcwatch/notifier.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER "S3CRET"
#define MiB (UINT64_C(1) << 20)

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void
no_secret_in(const struct dw_cfg_msgs *m, const char *what)
{
	int leaked = 0;
	for (size_t i = 0; i < m->nerrors; i++)
		if (strstr(m->errors[i], MARKER) != NULL) {
			diag("leak: %s", m->errors[i]);
			leaked = 1;
		}
	for (size_t i = 0; i < m->nwarnings; i++)
		if (strstr(m->warnings[i], MARKER) != NULL) {
			diag("leak: %s", m->warnings[i]);
			leaked = 1;
		}
	ok(!leaked, "%s: no secret in any message", what);
}

/* Field by field: the struct has padding, which memcmp would read. */
static int
limits_eq(const struct dw_limits *a, const struct dw_limits *b)
{
	return a->mail_max == b->mail_max && a->decompressed_max == b->decompressed_max &&
	       a->ratio_max == b->ratio_max && a->ratio_grace == b->ratio_grace &&
	       a->zip_members_max == b->zip_members_max && a->rfc822_depth_max == b->rfc822_depth_max &&
	       a->records_max == b->records_max && a->xml_depth_max == b->xml_depth_max;
}

static void
dump(const struct dw_cfg_msgs *m)
{
	for (size_t i = 0; i < m->nerrors; i++)
		diag("error: %s", m->errors[i]);
	for (size_t i = 0; i < m->nwarnings; i++)
		diag("warning: %s", m->warnings[i]);
}

/* Load from a string named "test.yaml"; msgs is reset first. */
static int
load_text(const char *text, struct dw_config **c, struct dw_cfg_msgs *m)
{
	dw_cfg_msgs_free(m);
	int rc = dw_config_load_string("test.yaml", text, strlen(text), c, m);
	no_secret_in(m, "load_text");
	return rc;
}

static int
load_file(const char *path, struct dw_config **c, struct dw_cfg_msgs *m)
{
	dw_cfg_msgs_free(m);
	int rc = dw_config_load(path, c, m);
	no_secret_in(m, path);
	return rc;
}

static int
has(char *const *v, size_t n, const char *want)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], want) == 0)
			return 1;
	return 0;
}

#define has_error(m, s) has((m)->errors, (m)->nerrors, s)

/* The one error of a load that must fail with exactly one message. */
static const char *
only_error(const struct dw_cfg_msgs *m)
{
	if (m->nerrors != 1) {
		diag("expected one error, got %zu", m->nerrors);
		dump(m);
		return m->nerrors > 0 ? m->errors[0] : "(none)";
	}
	return m->errors[0];
}

static char *
tmp_path(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		diag("cannot write %s: %s", path, strerror(errno));
		exit(2);
	}
	close(fd);
	chmod(path, mode);
}

static void
write_tmp(const char *name, const char *data, mode_t mode)
{
	char *p = tmp_path(name);
	write_file(p, data, strlen(data), mode);
	free(p);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		diag("cannot open %s", path);
		exit(2);
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = xmalloc(cap);
	size_t r;
	while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += r;
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Replace every occurrence of from with to. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	for (const char *p = strstr(s, from); p != NULL; p = strstr(p + fl, from))
		n++;
	char *out = xmalloc(strlen(s) + n * tl + 1), *o = out;
	for (const char *p; (p = strstr(s, from)) != NULL; s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, s);
	return out;
}

/* An IMAP account with an env password, plus extra account lines (each
 * indented by four spaces), plus extra top-level text. */
static char *
imap_with(const char *acct_lines, const char *top)
{
	return xasprintf("%saccounts:\n"
	                 "  - name: a\n"
	                 "    source: imap\n"
	                 "    host: imap.example.org\n"
	                 "    username: u\n"
	                 "    password: env:DW_TEST_PASSWORD\n"
	                 "%s",
	                 top, acct_lines);
}

/* ------------------------------------------------------------------ */
/* The shipped example                                                 */

static void
test_example(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *text = slurp("config/dmarcwatch.yaml.example");

	/* Every key the loader knows is documented in the example. */
	static const char *const keys[] = {
	    "state_dir:", "timezone:", "log:", "level:", "to:", "limits:", "mail_max:", "decompressed_max:",
	    "ratio_max:", "ratio_grace:", "zip_members_max:", "rfc822_depth_max:", "records_max:",
	    "xml_depth_max:", "accounts:", "name:", "source:", "host:", "port:", "tls:", "allow_plaintext:",
	    "ca_file:", "verify:", "username:", "auth:", "password:", "password_file:", "oauth2:",
	    "token_url:", "client_id:", "client_secret:", "client_secret_file:", "refresh_token:",
	    "refresh_token_file:", "token_command:", "path:", "folder:", "archive_folder:",
	    "invalid_folder:", "untrusted_folder:", "other_folder:", "mode:", "poll_interval:", "timeout:",
	    "batch_bytes:", "trust:", "authserv_id:", "require:", "plugin_dir:", "outbox:", "keep:",
	    "notifiers:", "plugin:", "retry_min:", "retry_max:", "max_age:", "settle:", "rules:", "kind:",
	    "domains:", "severity:", "cooldown:", "resolve_after:", "notify:", "notify_resolved:", "runbook:",
	    "enabled:", "ignore:", "sources:", "reporters:", "reasons:", "metric:", "window:", "op:", "value:",
	    "min_messages:", "group:", "baseline_days:", "stat:", "drop_points:", "volume_change:",
	    "volume_min:", "lookback:", "passing:", "seen_days:", "of_days:", "silent_days:", "disagree:",
	    "invalid_share:", "silence:", "min_mails:", "digest:", "time:", "top:", "metrics_file:", "metrics_listen:"};
	int missing = 0;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strstr(text, keys[i]) == NULL) {
			diag("example lacks %s", keys[i]);
			missing = 1;
		}
	ok(!missing, "example: documents every key");

	/* Its secret files are moved into the temp dir, its env secret set. */
	char *dir = xasprintf("%s/", tmpdir);
	char *copy = replace_all(text, "/etc/dmarcwatch/secrets/", dir);
	char *path = tmp_path("example.yaml");
	write_file(path, copy, strlen(copy), 0600);
	write_tmp("gmail-app-password", MARKER "-app-password\n", 0600);
	write_tmp("workspace-client-secret", MARKER "-client-secret\n", 0600);
	write_tmp("workspace-refresh-token", MARKER "-refresh-token\r\n", 0600);
	setenv("DMARCWATCH_OFFICE_PASSWORD", MARKER "-office", 1);

	int rc = load_file(path, &c, &m);
	is_int(rc, DW_OK, "example: loads");
	is_int(m.nerrors, 0, "example: no errors");
	is_int(m.nwarnings, 0, "example: no warnings");
	dump(&m);
	if (c != NULL) {
		struct dw_limits def;
		dw_limits_default(&def);
		ok(limits_eq(&c->limits, &def), "example: limits shown are the defaults");
		is_str(c->state_dir, "/var/lib/dmarcwatch", "example: state_dir");
		is_str(c->timezone, "UTC", "example: timezone");
		is_int(c->log_level, 2, "example: log level info");
		is_int(c->log_to, DW_LOG_STDERR, "example: log to stderr");
		is_int(c->naccounts, 4, "example: four accounts");
	}
	if (c != NULL && c->naccounts == 4) {
		const struct dw_account_cfg *g = &c->accounts[0], *w = &c->accounts[1], *o = &c->accounts[2],
		                            *l = &c->accounts[3];
		is_str(g->name, "gmail", "example: gmail name");
		is_int(g->source, DW_SRC_IMAP, "example: gmail imap");
		is_int(g->port, 993, "example: gmail port");
		is_int(g->tls, DW_TLS_IMPLICIT, "example: gmail tls");
		is_int(g->auth, DW_AUTH_PASSWORD, "example: gmail auth");
		is_str(g->password, MARKER "-app-password", "example: gmail app password from its file");
		is_str(g->archive_folder, "DMARC/Processed", "example: gmail archive folder");
		is_str(g->other_folder, "DMARC/Other", "example: gmail other folder");
		is_int(g->trust_require, DW_TRUST_DMARC, "example: gmail trust dmarc");
		is_int(g->nauthserv_ids, 1, "example: gmail one authserv-id");
		if (g->nauthserv_ids == 1)
			is_str(g->authserv_ids[0], "mx.google.com", "example: gmail authserv-id");
		is_int(g->batch_bytes, 4 * MiB, "example: gmail batch");

		is_str(w->name, "workspace", "example: workspace name");
		is_int(w->auth, DW_AUTH_XOAUTH2, "example: workspace xoauth2");
		is_str(w->oauth2.token_url, "https://oauth2.googleapis.com/token", "example: token_url");
		is_str(w->oauth2.client_id, "1234567890-abcdefghijklmnop.apps.googleusercontent.com",
		       "example: client_id");
		is_str(w->oauth2.client_secret, MARKER "-client-secret", "example: client secret from file");
		is_str(w->oauth2.refresh_token, MARKER "-refresh-token", "example: refresh token, CRLF stripped");
		ok(w->oauth2.token_command == NULL, "example: no token_command");
		ok(w->password == NULL, "example: workspace has no password");
		is_int(w->trust_require, DW_TRUST_NONE, "example: workspace trusts everything");

		is_int(o->tls, DW_TLS_STARTTLS, "example: office starttls");
		is_int(o->port, 143, "example: office port 143");
		is_str(o->password, MARKER "-office", "example: office password from env");
		is_str(o->folder, "INBOX/dmarc", "example: office folder");
		is_int(o->mode, DW_MODE_POLL, "example: office polls");
		is_int(o->poll_interval, 900, "example: office polls every 15m");
		is_int(o->timeout, 120, "example: office timeout 2m");
		is_int(o->trust_require, DW_TRUST_DKIM, "example: office requires dkim");
		is_int(o->nauthserv_ids, 2, "example: office two authserv-ids");

		is_int(l->source, DW_SRC_MAILDIR, "example: local maildir");
		is_str(l->path, "/var/mail/dmarc/Maildir", "example: maildir path");
		is_int(l->mode, DW_MODE_POLL, "example: maildir polls");
		is_int(l->poll_interval, 60, "example: maildir poll 1m");
		ok(l->host == NULL && l->password == NULL, "example: maildir has no imap fields");
	}
	if (c != NULL) {
		is_int(c->settle, 36 * 3600, "example: settle 36h");
		is_int(c->nrules, 6, "example: six rules");
	}
	if (c != NULL && c->nrules == 6) {
		const struct dw_rule_cfg *r = c->rules;
		static const char *const names[] = {"dmarc-fail-rate", "pass-rate-drop", "new-failing-source",
		                                    "reporter-gone",   "policy-changed", "report-mail"};
		static const int kinds[] = {DW_RULE_THRESHOLD,        DW_RULE_BASELINE,      DW_RULE_NEW_SOURCE,
		                            DW_RULE_MISSING_REPORTER, DW_RULE_POLICY_CHANGE, DW_RULE_REPORT_HEALTH};
		int all = 1;
		for (size_t i = 0; i < 6; i++)
			all &= strcmp(r[i].name, names[i]) == 0 && (int)r[i].kind == kinds[i] && r[i].enabled &&
			       r[i].nnotify == 1 && strcmp(r[i].notify[0], "syslog") == 0 && r[i].ndomains == 0;
		ok(all, "example: rule names, kinds, enabled, notify syslog, every domain");
		ok(r[0].metric == DW_M_DMARC_FAIL_RATE && r[0].op == DW_OP_GT && r[0].value == 5.0 && r[0].window == 1 &&
		       r[0].min_messages == 100 && r[0].group == DW_GROUP_DOMAIN && r[0].notify_resolved == 1,
		   "example: dmarc_fail_rate > 5%% over 1d, 100 messages, per domain");
		ok(r[0].nignore_reasons == 2 && strcmp(r[0].ignore_reasons[0], "forwarded") == 0 &&
		       strcmp(r[0].ignore_reasons[1], "mailing_list") == 0 && r[0].nignore_sources == 0,
		   "example: forwarded and mailing_list ignored");
		ok(r[1].baseline_days == 14 && !r[1].use_mean && r[1].drop_points == 10.0 && r[1].volume_pct == 0.0,
		   "example: baseline 14-day median, 10 points");
		ok(r[2].passing == 0 && r[2].min_messages == 50 && r[2].lookback == 30 && !r[2].group_ip,
		   "example: new failing source, 50 messages, 30 days, per network");
		ok(r[3].seen_days == 5 && r[3].of_days == 7 && r[3].silent_days == 2 && r[3].severity == DW_SEV_INFO,
		   "example: reporter seen 5 of 7 days, silent 2");
		ok(r[4].disagree == 1, "example: policy change with disagreement");
		ok(r[5].silence == 48 * 3600 && r[5].invalid_share == 0.0 && r[5].min_mails == 5,
		   "example: report mail silence 48h");
		ok(c->digest.enabled && c->digest.hour == 9 && c->digest.minute == 0 && c->digest.top == 10 &&
		       c->digest.nnotify == 1 && strcmp(c->digest.notify[0], "syslog") == 0 && c->digest.ndomains == 0,
		   "example: digest at 09:00 to syslog, top 10");
	}
	dw_config_free(c);

	/* Without its environment variable the example names it, not a value. */
	unsetenv("DMARCWATCH_OFFICE_PASSWORD");
	rc = load_file(path, &c, &m);
	is_int(rc, DW_E_CONFIG, "example without env: fails");
	/* The position is computed, so the example can be edited freely. */
	const char *at = strstr(copy, "env:DMARCWATCH_OFFICE_PASSWORD");
	unsigned line = 1, col = 1;
	for (const char *q = copy; at != NULL && q < at; q++) {
		col++;
		if (*q == '\n') {
			line++;
			col = 1;
		}
	}
	char *want = xasprintf("%s:%u:%u: accounts[2].password: environment variable DMARCWATCH_OFFICE_PASSWORD "
	                       "is not set",
	                       path, line, col);
	is_str(only_error(&m), want, "example without env: exact message");
	ok(c == NULL, "example without env: no config");
	free(want);

	dw_cfg_msgs_free(&m);
	unlink(path);
	free(path);
	free(copy);
	free(dir);
	free(text);
	for (size_t i = 0; i < 3; i++) {
		static const char *const f[] = {"gmail-app-password", "workspace-client-secret",
		                                "workspace-refresh-token"};
		char *p = tmp_path(f[i]);
		unlink(p);
		free(p);
	}
}

/* ------------------------------------------------------------------ */
/* Defaults                                                            */

static void
test_minimal(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};

	setenv("DW_TEST_PASSWORD", MARKER "-minimal", 1);
	int rc = load_file("tests/data/config/minimal.yaml", &c, &m);
	is_int(rc, DW_OK, "minimal: loads");
	is_int(m.nerrors + m.nwarnings, 0, "minimal: no messages");
	dump(&m);
	if (c == NULL)
		return;
	struct dw_limits def;
	dw_limits_default(&def);
	is_str(c->file, "tests/data/config/minimal.yaml", "minimal: file");
	is_str(c->state_dir, "/var/lib/dmarcwatch", "minimal: state_dir default");
	is_str(dw_config_db_path(c), "/var/lib/dmarcwatch/dmarcwatch.db", "minimal: db path");
	ok(dw_config_db_path(c) == dw_config_db_path(c), "minimal: db path computed once at load");
	is_str(c->timezone, "UTC", "minimal: timezone default");
	is_int(c->log_level, 2, "minimal: log level default info");
	is_int(c->log_to, DW_LOG_STDERR, "minimal: log to default stderr");
	ok(limits_eq(&c->limits, &def), "minimal: default limits");
	is_int(c->naccounts, 1, "minimal: one account");
	ok(c->root != NULL && c->root->type == DW_CFG_MAP, "minimal: tree kept");
	ok(dw_config_section(c, "accounts") != NULL, "minimal: section accounts");
	ok(dw_config_section(c, "notifiers") == NULL, "minimal: no notifiers section");
	const struct dw_account_cfg *a = &c->accounts[0];
	is_str(a->name, "work", "minimal: name");
	is_int(a->line, 3, "minimal: account line");
	is_int(a->source, DW_SRC_IMAP, "minimal: source");
	is_str(a->host, "imap.example.org", "minimal: host");
	is_int(a->port, 993, "minimal: port default 993");
	is_int(a->tls, DW_TLS_IMPLICIT, "minimal: tls default implicit");
	is_int(a->allow_plaintext, 0, "minimal: allow_plaintext default false");
	ok(a->ca_file == NULL, "minimal: ca_file default system store");
	is_int(a->verify, 1, "minimal: verify default true");
	is_str(a->username, "dmarc@example.org", "minimal: username");
	is_int(a->auth, DW_AUTH_PASSWORD, "minimal: auth default password");
	is_str(a->password, MARKER "-minimal", "minimal: password from env");
	ok(a->oauth2.token_url == NULL && a->oauth2.client_id == NULL && a->oauth2.refresh_token == NULL,
	   "minimal: no oauth2");
	ok(a->path == NULL, "minimal: no path");
	is_str(a->folder, "INBOX", "minimal: folder default INBOX");
	ok(a->archive_folder == NULL && a->invalid_folder == NULL && a->untrusted_folder == NULL &&
	       a->other_folder == NULL,
	   "minimal: no move folders (leave mail in place)");
	is_int(a->mode, DW_MODE_IDLE, "minimal: mode default idle for imap");
	is_int(a->poll_interval, 300, "minimal: poll_interval default 5m");
	is_int(a->timeout, 60, "minimal: timeout default 60s");
	is_int(a->batch_bytes, 4 * MiB, "minimal: batch_bytes default 4 MiB");
	is_int(a->nauthserv_ids, 0, "minimal: no authserv-ids");
	is_int(a->trust_require, DW_TRUST_NONE, "minimal: no trust section means require none");
	dw_config_free(c);

	/* A maildir account: polls by default. Relative state_dir from a string
	 * stays relative; a trailing slash is dropped for the db path. */
	rc = load_text("state_dir: state/\n"
	               "timezone: Europe/Paris\n"
	               "log: {level: debug, to: syslog}\n"
	               "accounts:\n"
	               "  - {name: m.1_x-y, source: maildir, path: /srv/mail}\n",
	               &c, &m);
	is_int(rc, DW_OK, "maildir minimal: loads");
	dump(&m);
	if (c != NULL) {
		is_str(dw_config_db_path(c), "state/dmarcwatch.db", "maildir minimal: db path");
		is_str(c->timezone, "Europe/Paris", "maildir minimal: timezone");
		is_int(c->log_level, 3, "maildir minimal: debug");
		is_int(c->log_to, DW_LOG_SYSLOG, "maildir minimal: syslog");
		is_int(c->accounts[0].mode, DW_MODE_POLL, "maildir minimal: mode default poll");
		is_str(c->accounts[0].path, "/srv/mail", "maildir minimal: path");
		is_str(c->accounts[0].folder, "INBOX", "maildir minimal: folder default");
		is_str(c->accounts[0].name, "m.1_x-y", "maildir minimal: name with . _ -");
	}
	dw_config_free(c);

	/* Null values ("key:" alone, "~") mean "not set". */
	rc = load_text("state_dir: ~\nlog:\nlimits:\naccounts:\n"
	               "  - name: n\n    source: maildir\n    path: /m\n    archive_folder:\n    trust: null\n",
	               &c, &m);
	is_int(rc, DW_OK, "null values: load");
	dump(&m);
	if (c != NULL) {
		is_str(c->state_dir, "/var/lib/dmarcwatch", "null values: state_dir default");
		ok(c->accounts[0].archive_folder == NULL, "null values: archive_folder unset");
		is_int(c->accounts[0].trust_require, DW_TRUST_NONE, "null values: trust unset");
	}
	dw_config_free(c);

	/* msgs may be NULL. */
	rc = dw_config_load_string("x.yaml", "accounts: []\n", 13, &c, NULL);
	is_int(rc, DW_E_CONFIG, "NULL msgs: error still returned");
	ok(c == NULL, "NULL msgs: no config");
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* Many mistakes at once                                               */

static void
test_mistakes(void)
{
	struct dw_config *c = (struct dw_config *)1;
	struct dw_cfg_msgs m = {0};
	const char *f = "tests/data/config/mistakes.yaml";
	int rc = load_file(f, &c, &m);
	is_int(rc, DW_E_CONFIG, "mistakes: refused");
	ok(c == NULL, "mistakes: *out set to NULL");
	is_int(m.nerrors, 18, "mistakes: all 18 reported");
	is_int(m.nwarnings, 0, "mistakes: no warnings");
	static const char *const want[] = {
	    "tests/data/config/mistakes.yaml:28:5: notifiers[0]: expected a notifier (name:, plugin: and its "
	    "settings), got a single value",
	    "tests/data/config/mistakes.yaml:2:12: state_dir: expected a single value, got a list",
	    "tests/data/config/mistakes.yaml:4:10: log.level: expected error, warning, info or debug, got "
	    "\"verbose\"",
	    "tests/data/config/mistakes.yaml:7:13: limits.mail_max: expected a size like 512KiB, 64MiB, 512M or "
	    "1G, got \"64XB\"",
	    "tests/data/config/mistakes.yaml:8:20: limits.zip_members_max: expected a whole number from 1 to "
	    "10000, got \"0\"",
	    "tests/data/config/mistakes.yaml:10:11: accounts[0].name: expected up to 64 letters, digits, '.', '_' "
	    "or '-', got \"work mail\"",
	    "tests/data/config/mistakes.yaml:13:11: accounts[0].port: expected a whole number from 1 to 65535, got "
	    "\"99999\"",
	    "tests/data/config/mistakes.yaml:14:10: accounts[0].tls: none sends the credentials in clear text; set "
	    "allow_plaintext: true to allow it (only for a server on this machine)",
	    "tests/data/config/mistakes.yaml:16:5: accounts[0].pasword: unknown key (did you mean password?)",
	    "tests/data/config/mistakes.yaml:17:20: accounts[0].password_file: cannot open "
	    "/nonexistent/dmarcwatch-test/password: No such file or directory",
	    "tests/data/config/mistakes.yaml:18:20: accounts[0].poll_interval: expected a duration like 30s, 5m, 1h "
	    "or 1h30m, got \"5 parsecs\"",
	    "tests/data/config/mistakes.yaml:20:7: accounts[0].trust.authserv_id: required when trust.require is "
	    "dmarc: list the authserv-id your own mail servers write in Authentication-Results (or set require: "
	    "none)",
	    "tests/data/config/mistakes.yaml:21:11: accounts[1].name: \"work mail\" is already the name of "
	    "accounts[0] (line 10)",
	    "tests/data/config/mistakes.yaml:22:13: accounts[1].source: expected imap or maildir, got \"pop3\"",
	    "tests/data/config/mistakes.yaml:25:5: accounts[2].host: only used with source: imap",
	    "tests/data/config/mistakes.yaml:26:11: accounts[2].mode: idle needs source: imap; a maildir is polled "
	    "(mode: poll)",
	    "tests/data/config/mistakes.yaml:23:5: accounts[2].path: required for source: maildir (the maildir "
	    "directory)",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ok(has_error(&m, want[i]), "mistakes: %.70s", want[i] + strlen(f) + 1);
	if (m.nerrors != 18)
		dump(&m);
	dw_cfg_msgs_free(&m);

	/* The error list is capped; the rest are counted. */
	size_t cap = 1 << 14, len = 0;
	char *text = xmalloc(cap);
	for (int i = 0; i < 150; i++)
		len += (size_t)snprintf(text + len, cap - len, "unknown_%d: 1\n", i);
	rc = dw_config_load_string("many.yaml", text, len, &c, &m);
	is_int(rc, DW_E_CONFIG, "150 mistakes: refused");
	is_int(m.nerrors, 101, "150 mistakes: 100 shown plus a count");
	if (m.nerrors == 101)
		is_str(m.errors[100], "many.yaml: 51 more errors not shown", "150 mistakes: count of the rest");
	free(text);
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* YAML that is refused before any checking                            */

static void
test_syntax(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};

	load_file("tests/data/config/tabs.yaml", &c, &m);
	is_str(only_error(&m),
	       "tests/data/config/tabs.yaml:3:1: syntax error: found a tab character that violates indentation "
	       "(while scanning a plain scalar at line 2, column 11); indent with spaces, not tabs",
	       "tabs: syntax error with position and hint");

	load_file("tests/data/config/alias.yaml", &c, &m);
	is_int(m.nerrors, 2, "alias: anchor and alias both reported");
	ok(has_error(&m, "tests/data/config/alias.yaml:1:11: defaults: anchors and aliases are not supported "
	                 "(&imap); write the value out"),
	   "alias: the anchor");
	ok(has_error(&m, "tests/data/config/alias.yaml:5:9: accounts[0].<<: anchors and aliases are not supported "
	                 "(*imap); write the value out"),
	   "alias: the alias");
	ok(c == NULL, "alias: refused");

	load_file("tests/data/config/duplicate.yaml", &c, &m);
	is_str(only_error(&m), "tests/data/config/duplicate.yaml:5:5: accounts[0].name: duplicate key (already set at "
	                       "line 2)",
	       "duplicate key: both lines");

	load_file("tests/data/config/two-docs.yaml", &c, &m);
	is_str(only_error(&m), "tests/data/config/two-docs.yaml:5:1: more than one YAML document (a second \"---\"); "
	                       "keep the whole configuration in one document",
	       "two documents: refused at the second");

	int rc = load_file("tests/data/config/empty.yaml", &c, &m);
	is_int(rc, DW_E_CONFIG, "empty: refused");
	is_str(only_error(&m), "tests/data/config/empty.yaml: empty configuration (nothing but comments or blank lines)",
	       "empty: message");

	dw_cfg_msgs_free(&m);
	rc = dw_config_load_string("zero.yaml", "", 0, &c, &m);
	is_str(only_error(&m), "zero.yaml: empty configuration (nothing but comments or blank lines)",
	       "zero bytes: empty configuration");
	dw_cfg_msgs_free(&m);
	load_text("---\n...\n", &c, &m);
	is_str(only_error(&m), "test.yaml: empty configuration (nothing but comments or blank lines)",
	       "empty document: empty configuration");

	load_text("- a\n- b\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:1: the top level must be key: value lines (a mapping), got a list",
	       "top-level list refused");

	load_text("accounts: [a\n", &c, &m);
	is_str(only_error(&m), "test.yaml:2:1: syntax error: did not find expected ',' or ']' (while parsing a flow "
	                       "sequence at line 1, column 11)",
	       "unclosed flow list");

	dw_cfg_msgs_free(&m);
	rc = dw_config_load_string("bin.yaml", "timezone: \xff\n", 13, &c, &m);
	is_str(only_error(&m), "bin.yaml:1:11: syntax error: invalid leading UTF-8 octet (byte 0xff); the file must "
	                       "be UTF-8 text",
	       "invalid UTF-8");

	load_text("? [a, b]\n: c\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:3: keys must be plain words, not mappings or lists", "complex key refused");

	load_text("timezone: !!str UTC\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:11: timezone: YAML tags are not supported (tag:yaml.org,2002:str)",
	       "tag refused");

	/* 40 nested lists: the nesting cap stops it. */
	char deep[128];
	memset(deep, '[', 40);
	strcpy(deep + 40, "]");
	load_text(deep, &c, &m);
	ok(m.nerrors == 1 && strstr(m.errors[0], "nested too deeply (more than 32 levels)") != NULL,
	   "40 levels of nesting refused");
	ok(c == NULL, "deep: no config");

	/* 150000 values in a 300 KB flow list: the node cap stops it early. */
	size_t n = 150000;
	char *many = xmalloc(2 * n + 16);
	strcpy(many, "x: [");
	size_t len = 4;
	for (size_t i = 0; i < n; i++) {
		many[len++] = 'a';
		many[len++] = ',';
	}
	strcpy(many + len, "a]\n");
	dw_cfg_msgs_free(&m);
	rc = dw_config_load_string("many.yaml", many, strlen(many), &c, &m);
	is_str(only_error(&m), "many.yaml: more than 100000 values; this is not a dmarcwatch configuration",
	       "150000 values: refused by the node cap");
	free(many);

	/* A key containing a NUL (from an escape) is refused. */
	load_text("\"a\\0b\": 1\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:1: a key contains a NUL character", "NUL in a key refused");

	rc = load_file("tests/data/config/does-not-exist.yaml", &c, &m);
	is_int(rc, DW_E_CONFIG, "missing file: DW_E_CONFIG");
	is_str(only_error(&m), "tests/data/config/does-not-exist.yaml: cannot open: No such file or directory",
	       "missing file: message");
	load_file("tests/data/config", &c, &m);
	is_str(only_error(&m), "tests/data/config: not a regular file", "directory: refused");
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

/* Load an IMAP account whose password line is pw_line. */
static int
load_pw(const char *pw_line, struct dw_config **c, struct dw_cfg_msgs *m)
{
	char *text = xasprintf("accounts:\n"
	                       "  - name: a\n"
	                       "    source: imap\n"
	                       "    host: imap.example.org\n"
	                       "    username: u\n"
	                       "    %s\n",
	                       pw_line);
	int rc = load_text(text, c, m);
	free(text);
	return rc;
}

static void
test_secrets(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *p = tmp_path("pw"), *line, *want;

	/* A good file: first line only, trailing newline stripped. */
	write_tmp("pw", MARKER "-file\nsecond line\n", 0600);
	line = xasprintf("password_file: %s", p);
	int rc = load_pw(line, &c, &m);
	is_int(rc, DW_OK, "password_file: loads");
	is_int(m.nwarnings, 0, "password_file 600: no warning");
	if (c != NULL)
		is_str(c->accounts[0].password, MARKER "-file", "password_file: first line");
	dw_config_free(c);

	/* World-readable: a warning naming the file; still loads. */
	chmod(p, 0644);
	rc = load_pw(line, &c, &m);
	is_int(rc, DW_OK, "password_file 644: still loads");
	want = xasprintf("test.yaml:6:20: accounts[0].password_file: %s is readable by group or others (chmod 600 it)",
	                 p);
	ok(m.nwarnings == 1 && strcmp(m.warnings[0], want) == 0, "password_file 644: exact warning");
	free(want);
	dw_config_free(c);
	chmod(p, 0640);
	rc = load_pw(line, &c, &m);
	ok(rc == DW_OK && m.nwarnings == 1, "password_file 640: group-readable warned too");
	dw_config_free(c);

	/* Empty, or an empty first line. */
	write_tmp("pw", "", 0600);
	rc = load_pw(line, &c, &m);
	want = xasprintf("test.yaml:6:20: accounts[0].password_file: %s is empty (the secret goes on its first line)",
	                 p);
	is_int(rc, DW_E_CONFIG, "empty password_file: refused");
	is_str(only_error(&m), want, "empty password_file: message");
	free(want);
	write_tmp("pw", "\n" MARKER "\n", 0600);
	rc = load_pw(line, &c, &m);
	is_int(rc, DW_E_CONFIG, "password_file with empty first line: refused");

	/* Larger than 64 KiB. */
	char *big = xmalloc(64 * 1024 + 2);
	memset(big, 'S', 64 * 1024 + 1);
	big[64 * 1024 + 1] = '\0';
	write_tmp("pw", big, 0600);
	free(big);
	rc = load_pw(line, &c, &m);
	is_int(rc, DW_E_CONFIG, "65 KiB password_file: refused");
	ok(m.nerrors == 1 && strstr(m.errors[0], "is larger than 64 KiB") != NULL, "65 KiB password_file: message");
	free(line);

	/* Missing; a directory. */
	line = xasprintf("password_file: %s/nope", tmpdir);
	load_pw(line, &c, &m);
	want = xasprintf("test.yaml:6:20: accounts[0].password_file: cannot open %s/nope: No such file or directory",
	                 tmpdir);
	is_str(only_error(&m), want, "missing password_file: message");
	free(want);
	free(line);
	line = xasprintf("password_file: %s", tmpdir);
	load_pw(line, &c, &m);
	want = xasprintf("test.yaml:6:20: accounts[0].password_file: %s is not a regular file", tmpdir);
	is_str(only_error(&m), want, "directory as password_file: refused");
	free(want);
	free(line);

	/* env: set, unset, empty, bad name. */
	setenv("DW_TEST_SECRET", MARKER "-env", 1);
	rc = load_pw("password: env:DW_TEST_SECRET", &c, &m);
	is_int(rc, DW_OK, "env set: loads");
	is_int(m.nwarnings, 0, "env: no warning");
	if (c != NULL)
		is_str(c->accounts[0].password, MARKER "-env", "env: value");
	dw_config_free(c);
	unsetenv("DW_TEST_SECRET");
	load_pw("password: env:DW_TEST_SECRET", &c, &m);
	is_str(only_error(&m), "test.yaml:6:15: accounts[0].password: environment variable DW_TEST_SECRET is not set",
	       "env unset: names the variable");
	setenv("DW_TEST_SECRET", "", 1);
	load_pw("password: env:DW_TEST_SECRET", &c, &m);
	is_str(only_error(&m), "test.yaml:6:15: accounts[0].password: environment variable DW_TEST_SECRET is empty",
	       "env empty: refused");
	load_pw("password: env:1BAD-NAME", &c, &m);
	ok(m.nerrors == 1 && strstr(m.errors[0], "env: must be followed by an environment variable name") != NULL,
	   "env bad name: refused");

	/* Inline: accepted with a warning that does not repeat it. */
	rc = load_pw("password: " MARKER "-inline", &c, &m);
	is_int(rc, DW_OK, "inline password: loads");
	ok(m.nwarnings == 1 && strcmp(m.warnings[0], "test.yaml:6:15: accounts[0].password: secret written in the "
	                                             "configuration file; put it in password_file (chmod 600) or use "
	                                             "env:NAME") == 0,
	   "inline password: warned");
	if (c != NULL)
		is_str(c->accounts[0].password, MARKER "-inline", "inline password: value");
	dw_config_free(c);

	/* Both forms at once; neither. */
	line = xasprintf("password: %s-x\n    password_file: %s", MARKER, p);
	load_pw(line, &c, &m);
	is_str(only_error(&m), "test.yaml:7:5: accounts[0].password_file: set either password or password_file, not "
	                       "both",
	       "password and password_file: refused");
	free(line);
	load_pw("folder: INBOX", &c, &m);
	is_str(only_error(&m), "test.yaml:2:5: accounts[0].password_file: required with auth: password (a file "
	                       "holding the password, or password: env:NAME)",
	       "no password: required");
	load_pw("password: [" MARKER "]", &c, &m);
	is_str(only_error(&m), "test.yaml:6:15: accounts[0].password: expected a single value, got a list",
	       "password as a list: type error without the value");

	/* Relative secret paths are relative to the configuration file. */
	write_tmp("pw", MARKER "-relative\n", 0600);
	char *cfg = tmp_path("relative.yaml");
	write_tmp("relative.yaml",
	          "accounts:\n  - name: a\n    source: imap\n    host: h\n    username: u\n    password_file: pw\n", 0600);
	rc = load_file(cfg, &c, &m);
	is_int(rc, DW_OK, "relative password_file: loads");
	if (c != NULL)
		is_str(c->accounts[0].password, MARKER "-relative", "relative password_file: found beside the config");
	dw_config_free(c);
	unlink(cfg);
	free(cfg);

	/* Secret-bearing keys in wrong places, a world-readable file and typos:
	 * lots of messages, none of them with the secret. */
	write_tmp("pw", MARKER "-readable\n", 0644);
	char *text = xasprintf("accounts:\n"
	                       "  - name: a\n"
	                       "    source: maildir\n"
	                       "    path: /m\n"
	                       "    password: %s-1\n"
	                       "    pasword: %s-2\n"
	                       "    oauth2: %s-3\n"
	                       "  - name: b\n"
	                       "    source: imap\n"
	                       "    host: h\n"
	                       "    username: u\n"
	                       "    auth: xoauth2\n"
	                       "    password_file: %s\n"
	                       "    oauth2:\n"
	                       "      client_secret: %s-4\n"
	                       "      refresh_token: {t: %s-5}\n"
	                       "      refresh_tokn: %s-6\n"
	                       "      token_url: https://user:%s-7@example.com/token\n"
	                       "      client_secret_file: %s-8\n",
	                       MARKER, MARKER, MARKER, p, MARKER, MARKER, MARKER, MARKER, MARKER);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_E_CONFIG, "secrets misplaced: refused");
	ok(m.nerrors >= 6, "secrets misplaced: several errors (%zu)", m.nerrors);
	ok(has_error(&m, "test.yaml:5:5: accounts[0].password: only used with source: imap"),
	   "secrets misplaced: inline password in a maildir account");
	ok(has_error(&m, "test.yaml:16:22: accounts[1].oauth2.refresh_token: expected a single value, got a mapping"),
	   "secrets misplaced: refresh_token as a mapping");
	ok(has_error(&m, "test.yaml:19:7: accounts[1].oauth2.client_secret_file: set either client_secret or "
	                 "client_secret_file, not both"),
	   "secrets misplaced: client_secret twice");
	free(text);

	unlink(p);
	free(p);
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* Sizes and durations                                                 */

static void
size_case(const char *value, int good, uint64_t want)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *top = xasprintf("limits:\n  mail_max: %s\n", value);
	char *text = imap_with("", top);
	int rc = load_text(text, &c, &m);
	if (good) {
		is_int(rc, DW_OK, "size %s: accepted", value);
		if (c != NULL)
			is_int(c->limits.mail_max, want, "size %s: %llu bytes", value, (unsigned long long)want);
	} else {
		is_int(rc, DW_E_CONFIG, "size %s: refused", value);
		ok(m.nerrors == 1 && strncmp(m.errors[0], "test.yaml:2:13: limits.mail_max: ", 33) == 0,
		   "size %s: one error at the value", value);
	}
	if (rc != (good ? DW_OK : DW_E_CONFIG))
		dump(&m);
	dw_config_free(c);
	dw_cfg_msgs_free(&m);
	free(text);
	free(top);
}

static void
duration_case(const char *value, int good, unsigned want)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *line = xasprintf("    poll_interval: %s\n", value);
	char *text = imap_with(line, "");
	int rc = load_text(text, &c, &m);
	if (good) {
		is_int(rc, DW_OK, "duration %s: accepted", value);
		if (c != NULL)
			is_int(c->accounts[0].poll_interval, want, "duration %s: %u s", value, want);
	} else {
		is_int(rc, DW_E_CONFIG, "duration %s: refused", value);
		ok(m.nerrors == 1 && strncmp(m.errors[0], "test.yaml:7:20: accounts[0].poll_interval: ", 43) == 0,
		   "duration %s: one error at the value", value);
	}
	if (rc != (good ? DW_OK : DW_E_CONFIG))
		dump(&m);
	dw_config_free(c);
	dw_cfg_msgs_free(&m);
	free(text);
	free(line);
}

static void
test_sizes_durations(void)
{
	setenv("DW_TEST_PASSWORD", MARKER "-pw", 1);
	size_case("64MiB", 1, 64 * MiB);
	size_case("512M", 1, 512 * MiB);
	size_case("1G", 1, 1024 * MiB);
	size_case("1g", 1, 1024 * MiB);
	size_case("64 KiB", 1, 64 * 1024);
	size_case("100MB", 1, 100000000);
	size_case("65536", 1, 65536);
	size_case("65536B", 1, 65536);
	size_case("2GiB", 1, 2048 * MiB);
	size_case("0", 0, 0);            /* below the floor */
	size_case("64KB", 0, 0);         /* 64000 bytes: below 64 KiB */
	size_case("3G", 0, 0);           /* above the ceiling */
	size_case("1.5G", 0, 0);
	size_case("64MiBs", 0, 0);
	size_case("MiB", 0, 0);
	size_case("-1M", 0, 0);
	size_case("18446744073709551616", 0, 0); /* 2^64 */
	size_case("17179869184G", 0, 0);         /* 2^64 bytes after the multiply */
	size_case("\"\"", 0, 0);

	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *text = imap_with("", "limits:\n  mail_max: 0\n");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:2:13: limits.mail_max: must be from 64 KiB to 2 GiB, got \"0\"",
	       "size 0: exact message");
	free(text);
	text = imap_with("", "limits:\n  mail_max: 99999999999999999999999\n");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:2:13: limits.mail_max: must be from 64 KiB to 2 GiB, got "
	                       "\"99999999999999999999999\"",
	       "size overflow: range message");
	free(text);

	/* Every limit is settable. */
	text = imap_with("", "limits:\n  decompressed_max: 1G\n  ratio_max: 100\n  ratio_grace: 0\n"
	                     "  zip_members_max: 5\n  rfc822_depth_max: 0\n  records_max: 1000\n"
	                     "  xml_depth_max: 16\n");
	int rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "all limits: load");
	if (c != NULL) {
		ok(c->limits.decompressed_max == 1024 * MiB && c->limits.ratio_max == 100 && c->limits.ratio_grace == 0 &&
		       c->limits.zip_members_max == 5 && c->limits.rfc822_depth_max == 0 &&
		       c->limits.records_max == 1000 && c->limits.xml_depth_max == 16,
		   "all limits: values");
		is_int(c->limits.mail_max, 64 * MiB, "all limits: mail_max keeps its default");
	}
	dw_config_free(c);
	free(text);

	duration_case("30s", 1, 30);
	duration_case("5m", 1, 300);
	duration_case("1h", 1, 3600);
	duration_case("1d", 1, 86400);
	duration_case("1h30m", 1, 5400);
	duration_case("2min", 1, 120);
	duration_case("45", 1, 45);
	duration_case("1M", 1, 60);
	duration_case("0", 0, 0);
	duration_case("0s", 0, 0);
	duration_case("2d", 0, 0);
	duration_case("5x", 0, 0);
	duration_case("1h30", 0, 0);
	duration_case("m", 0, 0);
	duration_case("1.5h", 0, 0);
	duration_case("99999999999999999999s", 0, 0);
	duration_case("307445734561825861h", 0, 0); /* overflows uint64 seconds */
	duration_case("5 m", 1, 300);
	duration_case("1h 30 min", 1, 5400);
	duration_case("\"5 \"", 0, 0);
	duration_case("1h 30", 0, 0);

	text = imap_with("    poll_interval: 0\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:7:20: accounts[0].poll_interval: must be from 1s to 1d, got \"0\"",
	       "duration 0: exact message");
	free(text);
	text = imap_with("    timeout: 2h\n    batch_bytes: 1K\n", "");
	load_text(text, &c, &m);
	is_int(m.nerrors, 2, "timeout and batch_bytes ranges");
	ok(has_error(&m, "test.yaml:7:14: accounts[0].timeout: must be from 1s to 1h, got \"2h\""),
	   "timeout 2h refused");
	ok(has_error(&m, "test.yaml:8:18: accounts[0].batch_bytes: must be from 64 KiB to 1 GiB, got \"1K\""),
	   "batch_bytes 1K refused");
	free(text);
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* IMAP, TLS, OAuth, trust                                              */

static void
test_imap_rules(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	char *text;
	int rc;

	setenv("DW_TEST_PASSWORD", MARKER "-pw", 1);

	/* tls: none needs allow_plaintext: true. */
	text = imap_with("    tls: none\n", "");
	rc = load_text(text, &c, &m);
	is_int(rc, DW_E_CONFIG, "tls none alone: refused");
	is_str(only_error(&m), "test.yaml:7:10: accounts[0].tls: none sends the credentials in clear text; set "
	                       "allow_plaintext: true to allow it (only for a server on this machine)",
	       "tls none alone: message");
	free(text);
	text = imap_with("    tls: none\n    allow_plaintext: yes\n    verify: off\n", "");
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "tls none with allow_plaintext: loads");
	if (c != NULL) {
		is_int(c->accounts[0].tls, DW_TLS_NONE, "tls none: stored");
		is_int(c->accounts[0].port, 143, "tls none: port 143");
		is_int(c->accounts[0].allow_plaintext, 1, "allow_plaintext: yes");
		is_int(c->accounts[0].verify, 0, "verify: off stored");
	}
	dw_config_free(c);
	free(text);
	text = imap_with("    tls: STARTTLS\n    port: 1143\n    allow_plaintext: maybe\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:9:22: accounts[0].allow_plaintext: expected true or false (yes/no, on/off "
	                       "also work), got \"maybe\"",
	       "bad bool: message");
	free(text);

	/* ca_file must be readable now. */
	text = imap_with("    ca_file: /nonexistent/ca.pem\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:7:14: accounts[0].ca_file: cannot read /nonexistent/ca.pem: No such file or "
	                       "directory",
	       "ca_file missing: refused");
	free(text);

	/* XOAUTH2: refresh token + client_id, or token_command. */
	static const char head[] = "accounts:\n"
	                           "  - name: w\n"
	                           "    source: imap\n"
	                           "    host: imap.gmail.com\n"
	                           "    username: u@example.com\n";
	text = xasprintf("%s    auth: xoauth2\n    oauth2:\n      client_id: cid\n", head);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_E_CONFIG, "xoauth2 without refresh token nor token_command: refused");
	is_str(only_error(&m), "test.yaml:8:7: accounts[0].oauth2: needs refresh_token_file (with client_id), or "
	                       "token_command",
	       "xoauth2 without refresh token nor token_command: message");
	free(text);
	text = xasprintf("%s    auth: xoauth2\n", head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:2:5: accounts[0].oauth2: required with auth: xoauth2 (refresh_token_file "
	                       "and client_id, or token_command)",
	       "xoauth2 without oauth2 section: message");
	free(text);
	setenv("DW_TEST_TOKEN", MARKER "-refresh", 1);
	text = xasprintf("%s    oauth2:\n      refresh_token: env:DW_TEST_TOKEN\n", head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:7:7: accounts[0].oauth2.client_id: required with refresh_token (the OAuth "
	                       "client that issued it)",
	       "refresh token without client_id: refused");
	free(text);
	text = xasprintf("%s    oauth2:\n      refresh_token: env:DW_TEST_TOKEN\n      token_command: get-token\n",
	                 head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:8:7: accounts[0].oauth2.token_command: set either token_command or "
	                       "refresh_token_file (with client_id), not both",
	       "refresh token and token_command: refused");
	free(text);

	/* auth inferred from the oauth2 section; token_url defaults to Google. */
	text = xasprintf("%s    oauth2:\n      token_command: get-token --user u\n", head);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "token_command: loads");
	if (c != NULL) {
		is_int(c->accounts[0].auth, DW_AUTH_XOAUTH2, "oauth2 section: auth defaults to xoauth2");
		is_str(c->accounts[0].oauth2.token_command, "get-token --user u", "token_command stored");
		is_str(c->accounts[0].oauth2.token_url, "https://oauth2.googleapis.com/token", "token_url default");
	}
	dw_config_free(c);
	free(text);
	text = xasprintf("%s    oauth2:\n      client_id: cid\n      refresh_token: env:DW_TEST_TOKEN\n"
	                 "      token_url: http://127.0.0.1:8080/token\n",
	                 head);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "refresh token + client_id, loopback http token_url: loads");
	if (c != NULL) {
		is_str(c->accounts[0].oauth2.refresh_token, MARKER "-refresh", "refresh token from env");
		is_str(c->accounts[0].oauth2.token_url, "http://127.0.0.1:8080/token", "token_url stored");
		ok(c->accounts[0].oauth2.client_secret == NULL, "client_secret optional");
	}
	dw_config_free(c);
	free(text);
	text = xasprintf("%s    oauth2:\n      token_command: t\n      token_url: http://example.com/token\n", head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:8:18: accounts[0].oauth2.token_url: must be an https:// URL (plain http "
	                       "only to 127.0.0.1, localhost or [::1])",
	       "plain http token_url refused");
	free(text);

	/* Credentials that do not match auth. */
	text = xasprintf("%s    auth: password\n    password: env:DW_TEST_PASSWORD\n    oauth2:\n"
	                 "      token_command: t\n",
	                 head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:8:5: accounts[0].oauth2: only used with auth: xoauth2",
	       "auth password with oauth2: refused");
	free(text);
	text = xasprintf("%s    password: env:DW_TEST_PASSWORD\n    oauth2:\n      token_command: t\n", head);
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:6:5: accounts[0].password: not used with auth: xoauth2 (the oauth2 section "
	                       "holds the credentials)",
	       "password with an inferred xoauth2: refused");
	free(text);

	/* Missing imap essentials; bad enums. */
	load_text("accounts:\n  - name: x\n    source: imap\n", &c, &m);
	is_int(m.nerrors, 3, "bare imap account: host, username, password");
	ok(has_error(&m, "test.yaml:2:5: accounts[0].host: required for source: imap (the IMAP server's name)"),
	   "bare imap account: host");
	ok(has_error(&m, "test.yaml:2:5: accounts[0].username: required for source: imap"),
	   "bare imap account: username");
	load_text("accounts:\n  - source: maildir\n    path: /m\n  - name: y\n", &c, &m);
	ok(has_error(&m, "test.yaml:2:5: accounts[0].name: required (a short name for logs and the database: "
	                 "letters, digits, . _ -)"),
	   "account without name");
	ok(has_error(&m, "test.yaml:4:5: accounts[1].source: required: imap or maildir"), "account without source");
	text = imap_with("    auth: kerberos\n    mode: push\n", "");
	load_text(text, &c, &m);
	ok(has_error(&m, "test.yaml:7:11: accounts[0].auth: expected password or xoauth2, got \"kerberos\""),
	   "bad auth");
	ok(has_error(&m, "test.yaml:8:11: accounts[0].mode: expected idle or poll, got \"push\""), "bad mode");
	is_int(m.nerrors, 2, "bad enums: only those two");
	free(text);
	load_text("accounts:\n  - name: z\n    source: maildir\n    path: /m\n    port: 143\n    oauth2: {}\n",
	          &c, &m);
	is_int(m.nerrors, 2, "imap keys in a maildir account");
	ok(has_error(&m, "test.yaml:6:5: accounts[0].oauth2: only used with source: imap"),
	   "oauth2 in a maildir account");
	load_text("accounts: {name: a}\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:11: accounts: expected a list of accounts (each starting with \"- name:\"), "
	                       "got a mapping",
	       "accounts as a mapping");
	load_text("accounts: []\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:11: accounts: at least one account is required", "empty accounts");
	load_text("timezone: UTC\n", &c, &m);
	is_str(only_error(&m), "test.yaml:1:1: accounts: required: a list of at least one account", "no accounts");
	load_text("accounts:\n  - just a string\n", &c, &m);
	is_str(only_error(&m), "test.yaml:2:5: accounts[0]: expected an account (indented key: value lines), got a "
	                       "single value",
	       "account as a string");

	/* Folders: moving to the folder being read is refused. */
	text = imap_with("    folder: Reports\n    archive_folder: Reports\n    other_folder: Other\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:8:21: accounts[0].archive_folder: is the folder being read (Reports); "
	                       "leave it out to keep mail where it is",
	       "archive_folder = folder refused");
	free(text);

	/* Trust rules. */
	text = imap_with("    trust:\n      authserv_id: mx.example.org\n", "");
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "trust with one authserv_id: loads");
	if (c != NULL) {
		is_int(c->accounts[0].trust_require, DW_TRUST_DMARC, "trust present: require defaults to dmarc");
		ok(c->accounts[0].nauthserv_ids == 1 && strcmp(c->accounts[0].authserv_ids[0], "mx.example.org") == 0,
		   "authserv_id given as one word");
	}
	dw_config_free(c);
	free(text);
	text = imap_with("    trust: {require: none}\n", "");
	rc = load_text(text, &c, &m);
	ok(rc == DW_OK && c != NULL && c->accounts[0].trust_require == DW_TRUST_NONE, "trust require none: loads");
	dw_config_free(c);
	free(text);
	text = imap_with("    trust:\n      require: dkim\n      authserv_id: []\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:8:7: accounts[0].trust.authserv_id: required when trust.require is dkim: "
	                       "list the authserv-id your own mail servers write in Authentication-Results (or set "
	                       "require: none)",
	       "require dkim without authserv_id: refused");
	free(text);
	text = imap_with("    trust:\n      authserv_id: [ok.example, \"two words\"]\n      require: all\n", "");
	load_text(text, &c, &m);
	is_int(m.nerrors, 2, "bad authserv_id and require");
	ok(has_error(&m, "test.yaml:8:33: accounts[0].trust.authserv_id[1]: an authserv-id is one word (a host name), "
	                 "got \"two words\""),
	   "authserv_id with a space");
	ok(has_error(&m, "test.yaml:9:16: accounts[0].trust.require: expected dmarc, dkim or none, got \"all\""),
	   "bad require");
	free(text);

	/* Names are unique. */
	load_text("accounts:\n  - {name: a, source: maildir, path: /m}\n  - {name: a, source: maildir, path: /n}\n", &c,
	          &m);
	is_str(only_error(&m), "test.yaml:3:12: accounts[1].name: \"a\" is already the name of accounts[0] (line 2)",
	       "duplicate account name");

	/* Gmail polled faster than once a minute: a warning, not an error. */
	text = xasprintf("%s    password: env:DW_TEST_PASSWORD\n    mode: poll\n    poll_interval: 30s\n", head);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "gmail 30s poll: loads");
	ok(m.nwarnings == 1 && strcmp(m.warnings[0], "test.yaml:8:20: accounts[0].poll_interval: polling Gmail more "
	                                             "often than once a minute may get the account throttled; use 1m "
	                                             "or more (or mode: idle)") == 0,
	   "gmail 30s poll: warned");
	dw_config_free(c);
	free(text);

	/* Unknown keys, with and without a suggestion; reserved sections. */
	text = imap_with("    hots: x\n    frobnicate: 1\n", "rules: {}\nlogg: {}\n");
	load_text(text, &c, &m);
	is_int(m.nerrors, 4, "unknown keys: four errors");
	ok(has_error(&m, "test.yaml:1:8: rules: expected a list of rules (each starting with \"- name:\"), got a "
	                 "mapping"),
	   "rules: a mapping refused");
	ok(has_error(&m, "test.yaml:2:1: logg: unknown key (did you mean log?)"), "logg: suggestion");
	ok(has_error(&m, "test.yaml:9:5: accounts[0].hots: unknown key (did you mean host?)"),
	   "hots: transposition suggested");
	ok(has_error(&m, "test.yaml:10:5: accounts[0].frobnicate: unknown key"), "frobnicate: no suggestion");
	free(text);
	text = imap_with("", "log:\n  level: warning\n  file: /x\n");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:3:3: log.file: unknown key", "unknown key in log");
	free(text);
	text = imap_with("", "log: debug\n");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:1:6: log: expected a mapping (indented key: value lines), got a single value",
	       "log as a value");
	free(text);

	/* A value with a control character is refused (and escaped if shown). */
	text = imap_with("    folder: \"a\\tb\"\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:7:13: accounts[0].folder: contains a control character (a tab or a line "
	                       "break?)",
	       "control character refused");
	free(text);
	text = imap_with("    mode: \"po\\nll\"\n", "");
	load_text(text, &c, &m);
	is_str(only_error(&m), "test.yaml:7:11: accounts[0].mode: expected idle or poll, got \"po\\x0all\"",
	       "control character escaped in messages");
	free(text);
	dw_cfg_msgs_free(&m);
}


/* notifiers: host keys taken out, plugin keys passed through as
 * {key, value, line, col}, lists repeated, *_file paths resolved. */
static void
test_notifiers(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};
	const char *good = "accounts:\n  - name: a\n    source: maildir\n    path: /x\n"
	                   "plugin_dir: plugins\noutbox:\n  keep: 2d\n"
	                   "notifiers:\n"
	                   "  - name: mail\n    plugin: email\n    timeout: 5s\n    retry_min: 2s\n    retry_max: 1m\n"
	                   "    max_age: 2h\n    to: [a@x, b@x]\n    password_file: pw\n"
	                   "  - name: abs\n    plugin: /opt/x.so\n";
	int rc = load_text(good, &c, &m);
	ok(rc == DW_OK && c != NULL, "notifiers: a good section loads");
	if (c != NULL) {
		is_int(c->nnotifiers, 2, "notifiers: two");
		is_str(c->plugin_dir, "plugins", "notifiers: plugin_dir as given (no base directory for a string)");
		is_int(c->outbox_keep, 2 * 86400, "outbox.keep: 2d");
		const struct dw_notifier_cfg *n = &c->notifiers[0];
		ok(n->timeout == 5 && n->retry_min == 2 && n->retry_max == 60 && n->max_age == 7200,
		   "notifiers: timeout, retry_min, retry_max, max_age");
		is_int(n->nkv, 3, "notifiers: three plugin entries (to twice, password_file)");
		if (n->nkv == 3) {
			ok(strcmp(n->kv[0].key, "to") == 0 && strcmp(n->kv[0].value, "a@x") == 0 &&
			       strcmp(n->kv[1].key, "to") == 0 && strcmp(n->kv[1].value, "b@x") == 0,
			   "notifiers: a list arrives as the key repeated, in order");
			ok(n->kv[1].line == 15 && n->kv[1].col == 15, "notifiers: each value keeps its line and column");
		}
		ok(c->notifiers[1].timeout == 30 && c->notifiers[1].max_age == 86400 && c->notifiers[1].retry_min == 30 &&
		       c->notifiers[1].retry_max == 3600,
		   "notifiers: defaults 30s, 24h, 30s, 1h");
	}
	dw_config_free(c);
	dw_cfg_msgs_free(&m);
	c = NULL;
	const char *bad = "accounts:\n  - name: a\n    source: maildir\n    path: /x\n"
	                  "notifiers:\n"
	                  "  - name: x\n    plugin: slack\n"
	                  "  - name: x\n    plugin: ../evil\n"
	                  "  - plugin: slack\n    opts: {a: 1}\n"
	                  "  - name: bad name\n";
	rc = load_text(bad, &c, &m);
	is_int(rc, DW_E_CONFIG, "notifiers: mistakes refused");
	ok(has_error(&m, "test.yaml:8:11: notifiers[1].name: a notifier named \"x\" is already defined at line 6"),
	   "notifiers: duplicate name");
	ok(has_error(&m, "test.yaml:9:13: notifiers[1].plugin: a plugin name (like slack) or an absolute path to a .so file"),
	   "notifiers: a relative path as plugin");
	ok(has_error(&m, "test.yaml:10:5: notifiers[2].name: required: the name rules and test-notify use"),
	   "notifiers: name missing");
	ok(has_error(&m, "test.yaml:11:11: notifiers[2].opts: plugin settings are single values or lists of values, "
	                 "not mappings"),
	   "notifiers: a mapping as a plugin setting");
	ok(has_error(&m, "test.yaml:12:11: notifiers[3].name: use letters, digits, '_', '-' and '.' only (at most 64)"),
	   "notifiers: a bad name");
	ok(has_error(&m, "test.yaml:12:5: notifiers[3].plugin: required: slack, email, syslog, webhook, exec or a path to "
	                 "a .so"),
	   "notifiers: plugin missing");
	if (m.nerrors != 6)
		dump(&m);
	dw_config_free(c);
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* Rules, settle and the digest                                        */

static int
cidr_is(const struct dw_cidr *n, int family, const unsigned char *addr, unsigned bits)
{
	return n->family == family && n->bits == bits && memcmp(n->addr, addr, 16) == 0;
}

/* rules: text after a maildir account and two notifiers (pager, chat);
 * the rules start at line 7. */
static int
load_rules_text(const char *rules, struct dw_config **c, struct dw_cfg_msgs *m)
{
	char *text = xasprintf("accounts:\n  - {name: a, source: maildir, path: /m}\n"
	                       "notifiers:\n  - {name: pager, plugin: exec}\n  - {name: chat, plugin: slack}\n"
	                       "%s",
	                       rules);
	int rc = load_text(text, c, m);
	free(text);
	return rc;
}

static void
test_rules(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};

	/* Every kind with every key set. */
	int rc = load_file("tests/data/config/rules.yaml", &c, &m);
	is_int(rc, DW_OK, "rules: the full file loads");
	is_int(m.nerrors, 0, "rules: no errors");
	ok(m.nwarnings == 1 && strcmp(m.warnings[0], "tests/data/config/rules.yaml:29:5: rules[1].notify: no "
	                                             "notifiers: this rule's alerts are recorded (and shown by "
	                                             "replay) but sent nowhere") == 0,
	   "rules: an enabled rule without notify is warned about");
	if (m.nerrors > 0)
		dump(&m);
	if (c != NULL) {
		is_int(c->settle, 2 * 86400, "rules: settle 2d");
		is_int(c->nrules, 7, "rules: seven");
	}
	if (c != NULL && c->nrules == 7) {
		const struct dw_rule_cfg *r = &c->rules[0];
		is_str(r->name, "fail-rate", "threshold: name");
		ok(r->line == 9 && r->col == 5, "threshold: line and column of the rule");
		is_int(r->kind, DW_RULE_THRESHOLD, "threshold: kind");
		ok(r->ndomains == 2 && strcmp(r->domains[0], "example.com") == 0 &&
		       strcmp(r->domains[1], "mail.example.org") == 0,
		   "threshold: domains, lower-cased");
		is_int(r->severity, DW_SEV_CRITICAL, "threshold: severity critical");
		is_int(r->cooldown, 12 * 3600, "threshold: cooldown 12h");
		is_int(r->resolve_after, 3, "threshold: resolve_after 3");
		ok(r->nnotify == 2 && strcmp(r->notify[0], "pager") == 0 && strcmp(r->notify[1], "team.chat") == 0,
		   "threshold: notify pager, team.chat");
		is_int(r->notify_resolved, 1, "threshold: notify_resolved yes");
		is_str(r->runbook, "https://wiki.example.com/dmarc#fail", "threshold: runbook");
		is_int(r->enabled, 1, "threshold: enabled");
		is_int(r->nignore_sources, 3, "threshold: three ignored networks");
		if (r->nignore_sources == 3) {
			static const unsigned char v4[16] = {192, 0, 2, 0};
			static const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01};
			static const unsigned char host[16] = {198, 51, 100, 9};
			ok(cidr_is(&r->ignore_sources[0], AF_INET, v4, 24), "threshold: 192.0.2.77/24 is 192.0.2.0/24");
			ok(cidr_is(&r->ignore_sources[1], AF_INET6, v6, 48),
			   "threshold: 2001:db8:1:2::5/48 is 2001:db8:1::/48");
			ok(cidr_is(&r->ignore_sources[2], AF_INET, host, 32), "threshold: a bare address is a /32");
		}
		ok(r->nignore_reporters == 1 && strcmp(r->ignore_reporters[0], "Mail.Ru") == 0,
		   "threshold: ignored reporter kept as written");
		ok(r->nignore_reasons == 2 && strcmp(r->ignore_reasons[0], "forwarded") == 0 &&
		       strcmp(r->ignore_reasons[1], "mailing_list") == 0,
		   "threshold: ignored reasons, canonical case");
		is_int(r->metric, DW_M_DMARC_FAIL_RATE, "threshold: metric");
		is_int(r->window, 7, "threshold: window 7 days");
		is_int(r->op, DW_OP_GE, "threshold: op >=");
		ok(r->value == 2.5, "threshold: value 2.5%% is 2.5");
		is_int(r->min_messages, 500, "threshold: min_messages");
		is_int(r->group, DW_GROUP_SOURCE, "threshold: group source");

		r = &c->rules[1];
		ok(r->metric == DW_M_REJECTED && r->op == DW_OP_LE && r->value == 1000.0,
		   "threshold 2: rejected le 1000");
		ok(r->window == 1 && r->min_messages == 100 && r->group == DW_GROUP_DOMAIN, "threshold 2: defaults 1d, 100, domain");
		ok(r->severity == DW_SEV_WARNING && r->cooldown == 86400 && r->resolve_after == 2 && !r->notify_resolved &&
		       r->runbook == NULL && r->enabled == 1 && r->nnotify == 0 && r->ndomains == 0 &&
		       r->nignore_sources + r->nignore_reporters + r->nignore_reasons == 0,
		   "threshold 2: common defaults (warning, 24h, 2 days, no notify, every domain, nothing ignored)");

		r = &c->rules[2];
		ok(r->kind == DW_RULE_BASELINE && r->baseline_days == 28 && r->use_mean == 1 && r->drop_points == 10.0 &&
		       r->volume_pct == 50.0 && r->volume_min == 200 && r->min_messages == 0 &&
		       r->group == DW_GROUP_REPORTER,
		   "baseline: 28 days, mean, 10 points, 50%%, 200, min 0, per reporter");
		ok(r->nnotify == 1 && strcmp(r->notify[0], "pager") == 0, "baseline: one notifier without brackets");

		r = &c->rules[3];
		ok(r->kind == DW_RULE_NEW_SOURCE && r->min_messages == 50 && r->lookback == 60 && r->group_ip == 1 &&
		       r->passing == 0 && r->severity == DW_SEV_INFO,
		   "new_source: 50 messages, 60 days, per ip, failing, info");
		ok(r->ndomains == 1 && strcmp(r->domains[0], "example.com") == 0, "new_source: one domain without brackets");

		r = &c->rules[4];
		ok(r->kind == DW_RULE_MISSING_REPORTER && r->seen_days == 3 && r->of_days == 3 && r->silent_days == 4 &&
		       r->enabled == 0,
		   "missing_reporter: 3 of 3, silent 4, disabled (so no warning about notify)");

		r = &c->rules[5];
		ok(r->kind == DW_RULE_POLICY_CHANGE && r->disagree == 0, "policy_change: disagree false");

		r = &c->rules[6];
		ok(r->kind == DW_RULE_REPORT_HEALTH && r->invalid_share == 20.0 && r->silence == 48 * 3600 &&
		       r->min_mails == 8,
		   "report_health: 20%%, 48h, 8 mails");

		const struct dw_digest_cfg *d = &c->digest;
		ok(d->enabled && d->hour == 7 && d->minute == 5 && d->top == 25, "digest: 7:05, top 25");
		ok(d->nnotify == 2 && strcmp(d->notify[0], "team.chat") == 0 && strcmp(d->notify[1], "pager") == 0,
		   "digest: notify");
		ok(d->ndomains == 1 && strcmp(d->domains[0], "example.com") == 0, "digest: domains lower-cased");
	}
	dw_config_free(c);
	c = NULL;

	/* Defaults of every kind; no digest, no settle. */
	rc = load_rules_text("rules:\n"
	                     "  - {name: t, kind: threshold, metric: messages, value: 0, notify: pager}\n"
	                     "  - {name: b, kind: baseline, volume_change: 30, notify: pager}\n"
	                     "  - {name: n, kind: new_source, notify: pager}\n"
	                     "  - {name: m, kind: missing_reporter, notify: pager}\n"
	                     "  - {name: p, kind: policy_change, notify: pager}\n"
	                     "  - {name: h, kind: report_health, invalid_share: 0.5, notify: [chat]}\n",
	                     &c, &m);
	is_int(rc, DW_OK, "defaults: load");
	is_int(m.nerrors + m.nwarnings, 0, "defaults: no messages");
	dump(&m);
	if (c != NULL) {
		is_int(c->settle, 36 * 3600, "defaults: settle 36h");
		ok(!c->digest.enabled && c->digest.nnotify == 0, "defaults: no digest section, no digest");
		is_int(c->nrules, 6, "defaults: six rules");
	}
	if (c != NULL && c->nrules == 6) {
		const struct dw_rule_cfg *r = c->rules;
		ok(r[0].metric == DW_M_MESSAGES && r[0].value == 0.0 && r[0].op == DW_OP_GT && r[0].window == 1 &&
		       r[0].min_messages == 100 && r[0].group == DW_GROUP_DOMAIN,
		   "defaults: threshold > over 1d, 100 messages, per domain");
		ok(r[1].baseline_days == 14 && r[1].use_mean == 0 && r[1].drop_points == 0.0 && r[1].volume_pct == 30.0 &&
		       r[1].volume_min == 0 && r[1].min_messages == 100 && r[1].group == DW_GROUP_DOMAIN,
		   "defaults: baseline 14-day median, drop off, 100 messages");
		ok(r[2].min_messages == 10 && r[2].lookback == 30 && r[2].group_ip == 0 && r[2].passing == -1,
		   "defaults: new_source 10 messages, 30 days, per network, any");
		ok(r[3].seen_days == 5 && r[3].of_days == 7 && r[3].silent_days == 2, "defaults: missing_reporter 5 of 7, 2");
		ok(r[4].disagree == 1, "defaults: policy_change disagree");
		ok(r[5].invalid_share == 0.5 && r[5].silence == 0 && r[5].min_mails == 5,
		   "defaults: report_health 0.5%%, no silence, 5 mails");
		for (size_t i = 0; i < 6; i++)
			if (r[i].severity != DW_SEV_WARNING || r[i].cooldown != 86400 || r[i].resolve_after != 2 ||
			    r[i].enabled != 1 || r[i].line != 7 + i || r[i].col != 5)
				diag("rule %zu: wrong common default", i);
	}
	dw_config_free(c);
	c = NULL;

	/* A digest with only notify, and an empty rules list. */
	rc = load_rules_text("rules: []\ndigest:\n  notify: pager\n", &c, &m);
	is_int(rc, DW_OK, "digest defaults: load");
	if (c != NULL)
		ok(c->nrules == 0 && c->digest.enabled && c->digest.hour == 9 && c->digest.minute == 0 &&
		       c->digest.top == 10 && c->digest.nnotify == 1 && c->digest.ndomains == 0,
		   "digest defaults: 09:00, top 10, every domain; rules: [] is no rules");
	dw_config_free(c);
	c = NULL;

	/* One file of mistakes: each is reported, exactly. */
	const char *f = "tests/data/config/rules-mistakes.yaml";
	rc = load_file(f, &c, &m);
	is_int(rc, DW_E_CONFIG, "rule mistakes: refused");
	is_int(m.nerrors, 30, "rule mistakes: all 30 reported");
	static const char *const want[] = {
	    ":7:9: settle: must be from 1h to 7d, got \"30m\"",
	    ":10:11: rules[0].kind: expected threshold, baseline, new_source, missing_reporter, policy_change or "
	    "report_health, got \"treshold\"",
	    ":13:13: rules[1].metric: expected messages, dmarc_pass, dmarc_fail, dmarc_fail_rate, dmarc_pass_rate, "
	    "dkim_fail, dkim_fail_rate, spf_fail, spf_fail_rate, quarantined or rejected, got \"dmarc_fail_ratio\"",
	    ":22:5: rules[2].metirc: unknown key (did you mean metric?)",
	    ":21:5: rules[2].lookback: only used with kind: new_source",
	    ":19:13: rules[2].window: expected whole days like 1d or 7d, got \"36h\"",
	    ":20:9: rules[2].op: expected \">\", \">=\", \"<\" or \"<=\" in quotes (a bare > starts a YAML block)",
	    ":18:12: rules[2].value: must be from 0 to 100 (percent), got \"120%\"",
	    ":27:21: rules[3].notify[1]: \"pagr\" is not a configured notifier (did you mean pager? configured: "
	    "pager, chat)",
	    ":28:14: rules[3].runbook: expected an http:// or https:// URL (the page saying what to do)",
	    ":26:12: rules[3].value: dmarc_fail is a count of messages, not a rate: write the number without %, got "
	    "\"5%\"",
	    ":31:15: rules[4].domains[0]: expected a domain name like example.com, got \"*.example.com\"",
	    ":33:17: rules[4].ignore.sources[0]: the prefix length after / must be from 0 to 32 for an IPv4 address, "
	    "got \"192.0.2.0/33\"",
	    ":33:31: rules[4].ignore.sources[1]: expected an IP address or a network like 192.0.2.0/24 or "
	    "2001:db8::/32, got \"300.1.1.1\"",
	    ":33:42: rules[4].ignore.sources[2]: the prefix length after / must be from 0 to 128 for an IPv6 "
	    "address, got \"2001:db8::/129\"",
	    ":33:72: rules[4].ignore.sources[4]: \"10.1.2.3/8\" is the same network as an earlier entry",
	    ":34:28: rules[4].ignore.reasons[1]: expected an override reason: forwarded, sampled_out, "
	    "trusted_forwarder, mailing_list, local_policy, other or policy_test_mode, got \"spam\"",
	    ":35:11: rules[5].name: \"a\" is already the name of rules[0] (line 9)",
	    ":38:5: rules[5].min_messages: only used with kind: threshold, baseline or new_source",
	    ":37:16: rules[5].seen_days: seen_days (9) must not be more than of_days (7)",
	    ":39:5: rules[6].name: required: a unique name for alerts and logs (letters, digits, '_', '-', '.')",
	    ":40:5: rules[6].domains: not used with kind: report_health (it watches the accounts' report mail, not "
	    "domains)",
	    ":39:5: rules[6].silence: kind: report_health needs silence (no report mail for this long) or "
	    "invalid_share (in %), or both",
	    ":41:5: rules[7].metric: required for kind: threshold: messages, dmarc_pass, dmarc_fail, dmarc_fail_rate, "
	    "dmarc_pass_rate, dkim_fail, dkim_fail_rate, spf_fail, spf_fail_rate, quarantined or rejected",
	    ":41:5: rules[7].value: required for kind: threshold (the limit; rates in percent, like 5%)",
	    ":46:18: rules[8].drop_points: a drop of the DMARC pass rate in percentage points: write it without %, "
	    "got \"5%\"",
	    ":45:5: rules[8].volume_min: only used with volume_change",
	    ":47:11: rules[9].name: expected up to 64 letters, digits, '_', '-' or '.', got \"bad name!\"",
	    ":50:9: digest.time: expected a local time like 09:00 (HH:MM, 00:00 to 23:59), got \"25:00\"",
	    ":52:8: digest.top: expected a whole number from 1 to 100, got \"0\"",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char *full = xasprintf("%s%s", f, want[i]);
		ok(has_error(&m, full), "rule mistakes: %.70s", want[i]);
		free(full);
	}
	if (m.nerrors != 30)
		dump(&m);
	ok(c == NULL, "rule mistakes: no config");

	/* Smaller cases, one error each. */
	static const struct {
		const char *rules, *error;
	} one[] = {
	    {"rules:\n  - {name: x, kind: threshold, metric: messages, value: 1, notify: [pager, pager]}\n",
	     "test.yaml:7:76: rules[0].notify[1]: \"pager\" is listed twice"},
	    {"rules:\n  - {name: x, kind: baseline, notify: pager}\n",
	     "test.yaml:7:5: rules[0].drop_points: kind: baseline needs drop_points (pass-rate drop in points) or "
	     "volume_change (in %), or both"},
	    {"rules:\n  - {name: x, kind: threshold, metric: dkim_fail_rate, value: 5, op: \"=\", notify: pager}\n",
	     "test.yaml:7:70: rules[0].op: expected >, >=, <, <=, gt, ge, lt or le, got \"=\""},
	    {"rules:\n  - {name: x, kind: threshold, metric: messages, value: -3, notify: pager}\n",
	     "test.yaml:7:57: rules[0].value: expected a number like 10 or 2.5, got \"-3\""},
	    {"rules:\n  - {name: x, kind: threshold, metric: spf_fail_rate, value: 5.x, notify: pager}\n",
	     "test.yaml:7:62: rules[0].value: expected a percentage like 5 or 5%, got \"5.x\""},
	    {"rules:\n  - {name: x, kind: threshold, metric: messages, value: 1, window: 7, notify: pager}\n",
	     "test.yaml:7:68: rules[0].window: expected whole days like 1d or 7d, got \"7\""},
	    {"rules:\n  - {name: x, kind: threshold, metric: messages, value: 1, window: 32d, notify: pager}\n",
	     "test.yaml:7:68: rules[0].window: must be from 1d to 31d, got \"32d\""},
	    {"rules:\n  - {name: x, kind: new_source, group: source, notify: pager}\n",
	     "test.yaml:7:40: rules[0].group: expected net or ip, got \"source\""},
	    {"rules:\n  - {name: x, kind: new_source, passing: yes, notify: pager}\n",
	     "test.yaml:7:42: rules[0].passing: expected any, pass or fail, got \"yes\""},
	    {"rules:\n  - {name: x, kind: policy_change, severity: high, notify: pager}\n",
	     "test.yaml:7:46: rules[0].severity: expected info, warning or critical, got \"high\""},
	    {"rules:\n  - {name: x, kind: policy_change, resolve_after: 61, notify: pager}\n",
	     "test.yaml:7:51: rules[0].resolve_after: expected a whole number from 1 to 60, got \"61\""},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager, runbook: http://}\n",
	     "test.yaml:7:60: rules[0].runbook: expected an http:// or https:// URL (the page saying what to do)"},
	    {"rules:\n  - {name: x, kind: policy_change, notify: []}\n",
	     "test.yaml:7:44: rules[0].notify: an empty list; leave the key out instead"},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager, ignore: [forwarded]}\n",
	     "test.yaml:7:59: rules[0].ignore: expected a mapping (indented key: value lines), got a list"},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager, ignore: {reason: [forwarded]}}\n",
	     "test.yaml:7:60: rules[0].ignore.reason: unknown key (did you mean reasons?)"},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager, ignore: {sources: [\"10.0.0.0/x\"]}}\n",
	     "test.yaml:7:70: rules[0].ignore.sources[0]: the prefix length after / must be from 0 to 32 for an IPv4 "
	     "address, got \"10.0.0.0/x\""},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager, domains: [a.example, A.Example]}\n",
	     "test.yaml:7:72: rules[0].domains[1]: \"a.example\" is listed twice"},
	    {"rules:\n  - {name: x, kind: report_health, silence: 30m, notify: pager}\n",
	     "test.yaml:7:45: rules[0].silence: must be from 1h to 90d, got \"30m\""},
	    {"rules:\n  - {name: x, kind: missing_reporter, disagree: no, notify: pager}\n",
	     "test.yaml:7:39: rules[0].disagree: only used with kind: policy_change"},
	    {"rules:\n  - {name: x, kind: report_health, silence: 1d, ignore: {}, notify: pager}\n",
	     "test.yaml:7:49: rules[0].ignore: not used with kind: report_health (it watches the accounts' report "
	     "mail, not domains)"},
	    {"rules:\n  - just a rule\n",
	     "test.yaml:7:5: rules[0]: expected a rule (name:, kind: and its settings), got a single value"},
	    {"rules:\n  - {name: x, kind: policy_change, notify: pager}\ndigest:\n  time: 9am\n  notify: chat\n",
	     "test.yaml:9:9: digest.time: expected a local time like 09:00 (HH:MM, 00:00 to 23:59), got \"9am\""},
	    {"digest:\n  time: \"24:00\"\n  notify: chat\n",
	     "test.yaml:7:9: digest.time: expected a local time like 09:00 (HH:MM, 00:00 to 23:59), got \"24:00\""},
	    {"digest:\n  time: \"12:60\"\n  notify: chat\n",
	     "test.yaml:7:9: digest.time: expected a local time like 09:00 (HH:MM, 00:00 to 23:59), got \"12:60\""},
	    {"digest:\n  time: \"12:00\"\n",
	     "test.yaml:7:3: digest.notify: required: the notifiers the digest is sent to"},
	    {"digest:\n  notify: [chat, sms]\n",
	     "test.yaml:7:18: digest.notify[1]: \"sms\" is not a configured notifier (configured: pager, chat)"},
	    {"digest:\n  notify: chat\n  topp: 3\n",
	     "test.yaml:8:3: digest.topp: unknown key (did you mean top?)"},
	    {"digest: daily\n",
	     "test.yaml:6:9: digest: expected a mapping (indented key: value lines), got a single value"},
	    {"settle: 8d\n", "test.yaml:6:9: settle: must be from 1h to 7d, got \"8d\""},
	    {"rules: all\n",
	     "test.yaml:6:8: rules: expected a list of rules (each starting with \"- name:\"), got a single value"},
	};
	for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
		rc = load_rules_text(one[i].rules, &c, &m);
		is_str(only_error(&m), one[i].error, "rule mistake %zu: exact message", i);
		ok(rc == DW_E_CONFIG && c == NULL, "rule mistake %zu: refused", i);
	}

	/* Operators: < needs no quotes; a bare >= is a YAML syntax error, and
	 * the message says to quote it. */
	rc = load_rules_text("rules:\n  - name: x\n    kind: threshold\n    metric: messages\n    op: <\n"
	                     "    value: 5\n    notify: pager\n",
	                     &c, &m);
	ok(rc == DW_OK && c != NULL && c->rules[0].op == DW_OP_LT, "op: < unquoted works");
	dw_config_free(c);
	c = NULL;
	rc = load_rules_text("rules:\n  - name: x\n    kind: threshold\n    metric: messages\n    op: >=\n"
	                     "    value: 5\n",
	                     &c, &m);
	is_str(only_error(&m),
	       "test.yaml:10:10: syntax error: did not find expected comment or line break (while scanning a block "
	       "scalar at line 10, column 9); a value starting with > or | must be quoted, like op: \">=\"",
	       "op: >= unquoted: told to quote it");

	/* Without a notifiers: section any name is unknown, and says so. */
	rc = load_text("accounts:\n  - {name: a, source: maildir, path: /m}\n"
	               "rules:\n  - {name: x, kind: policy_change, notify: pager}\n",
	               &c, &m);
	is_str(only_error(&m),
	       "test.yaml:4:44: rules[0].notify: \"pager\" is not a configured notifier (there are none: define it "
	       "under notifiers:)",
	       "no notifiers: unknown name explained");
	dw_cfg_msgs_free(&m);
}

/* ------------------------------------------------------------------ */
/* metrics_file and metrics_listen                                     */

#define ACCT_M "accounts:\n  - {name: a, source: maildir, path: /m}\n"

/* Load "KEY: VALUE" (line 1) plus an account. */
static int
load_top_key(const char *key, const char *value, struct dw_config **c, struct dw_cfg_msgs *m)
{
	char *text = xasprintf("%s: %s\n" ACCT_M, key, value);
	int rc = load_text(text, c, m);
	free(text);
	return rc;
}

static void
test_metrics(void)
{
	struct dw_config *c = NULL;
	struct dw_cfg_msgs m = {0};

	/* Off unless asked for. */
	int rc = load_text(ACCT_M, &c, &m);
	ok(rc == DW_OK && c != NULL && c->metrics_file == NULL && c->metrics_listen == NULL,
	   "metrics: both off by default");
	dw_config_free(c);
	c = NULL;

	/* Good values. */
	char *prom = tmp_path("dw.prom");
	char *text = xasprintf("metrics_file: %s\nmetrics_listen: 127.0.0.1:9119\n" ACCT_M, prom);
	rc = load_text(text, &c, &m);
	is_int(rc, DW_OK, "metrics: an absolute file and an IPv4 listener load");
	is_int(m.nerrors + m.nwarnings, 0, "metrics: no messages");
	dump(&m);
	if (c != NULL) {
		is_str(c->metrics_file, prom, "metrics_file: as given");
		is_str(c->metrics_listen, "127.0.0.1:9119", "metrics_listen: as given");
	}
	dw_config_free(c);
	c = NULL;
	free(text);

	/* IPv6 needs quotes in YAML: [::1]:9119 alone is a flow list. */
	static const struct {
		const char *yaml, *value;
	} good_listen[] = {{"\"[::1]:9119\"", "[::1]:9119"},
	                   {"0.0.0.0:0", "0.0.0.0:0"},
	                   {"'[::]:65535'", "[::]:65535"},
	                   {"10.1.2.3:00080", "10.1.2.3:00080"}};
	for (size_t i = 0; i < sizeof good_listen / sizeof good_listen[0]; i++) {
		rc = load_top_key("metrics_listen", good_listen[i].yaml, &c, &m);
		ok(rc == DW_OK && c != NULL && strcmp(c->metrics_listen, good_listen[i].value) == 0,
		   "metrics_listen: %s", good_listen[i].yaml);
		dump(&m);
		dw_config_free(c);
		c = NULL;
	}

	/* A relative file is taken from the configuration file's directory. */
	char *cfgpath = tmp_path("metrics.yaml");
	write_tmp("metrics.yaml", "metrics_file: rel.prom\n" ACCT_M, 0600);
	rc = load_file(cfgpath, &c, &m);
	is_int(rc, DW_OK, "metrics_file: a relative path loads");
	char *want = tmp_path("rel.prom");
	if (c != NULL)
		is_str(c->metrics_file, want, "metrics_file: relative to the configuration's directory");
	free(want);
	dw_config_free(c);
	c = NULL;
	unlink(cfgpath);
	free(cfgpath);

	/* A name without .prom works, with a warning. */
	char *txt = tmp_path("dw.txt");
	rc = load_top_key("metrics_file", txt, &c, &m);
	is_int(rc, DW_OK, "metrics_file: not .prom still loads");
	char *w = xasprintf("test.yaml:1:15: metrics_file: dw.txt does not end in .prom: node_exporter's textfile "
	                    "collector reads only *.prom files");
	is_int(m.nwarnings, 1, "metrics_file: one warning");
	if (m.nwarnings == 1)
		is_str(m.warnings[0], w, "metrics_file: the warning names the file and why");
	free(w);
	free(txt);
	dw_config_free(c);
	c = NULL;

	/* Bad files: a missing directory, a directory, a file as the directory. */
	write_tmp("plain", "x\n", 0600);
	char *plain = tmp_path("plain");
	char *under_plain = xasprintf("%s/m.prom", plain);
	char *msg_dir = xasprintf("test.yaml:1:15: metrics_file: %s is a directory; name a file in it, like "
	                          "%s/dmarcwatch.prom",
	                          tmpdir, tmpdir);
	char *msg_plain = xasprintf("test.yaml:1:15: metrics_file: %s is not a directory", plain);
	struct {
		const char *value, *msg;
	} bad_file[] = {
	    {"/nonexistent-dw-dir/sub/m.prom",
	     "test.yaml:1:15: metrics_file: cannot use the directory /nonexistent-dw-dir/sub: No such file or "
	     "directory (create it first: the agent writes the file, not the directory)"},
	    {tmpdir, msg_dir},
	    {under_plain, msg_plain},
	    {"\"\"", "test.yaml:1:15: metrics_file: must not be empty"},
	};
	for (size_t i = 0; i < sizeof bad_file / sizeof bad_file[0]; i++) {
		rc = load_top_key("metrics_file", bad_file[i].value, &c, &m);
		is_int(rc, DW_E_CONFIG, "metrics_file: %s refused", bad_file[i].value);
		is_str(only_error(&m), bad_file[i].msg, "metrics_file: %s: the message", bad_file[i].value);
		dw_config_free(c);
		c = NULL;
	}
	unlink(plain);
	free(plain);
	free(under_plain);
	free(msg_dir);
	free(msg_plain);

	/* Bad listeners, each with its exact message. */
	static const struct {
		const char *value, *msg;
	} bad_listen[] = {
	    {"localhost:9119", "test.yaml:1:17: metrics_listen: \"localhost\" is not an IPv4 address (host names are "
	                       "not looked up; IPv6 goes in brackets), in \"localhost:9119\""},
	    {"127.0.0.1", "test.yaml:1:17: metrics_listen: expected ADDRESS:PORT, like 127.0.0.1:9119 or "
	                  "[::1]:9119, got \"127.0.0.1\""},
	    {"127.0.0.1:65536", "test.yaml:1:17: metrics_listen: the port must be a number from 0 to 65535, got "
	                        "\"65536\" in \"127.0.0.1:65536\""},
	    {"\"127.0.0.1:\"", "test.yaml:1:17: metrics_listen: the port must be a number from 0 to 65535, got \"\" in "
	                   "\"127.0.0.1:\""},
	    {"\"127.0.0.1:-1\"", "test.yaml:1:17: metrics_listen: the port must be a number from 0 to 65535, got "
	                         "\"-1\" in \"127.0.0.1:-1\""},
	    {"127.0.0.1:http", "test.yaml:1:17: metrics_listen: the port must be a number from 0 to 65535, got "
	                       "\"http\" in \"127.0.0.1:http\""},
	    {"127.0.0.1:9119999", "test.yaml:1:17: metrics_listen: the port must be a number from 0 to 65535, got "
	                          "\"9119999\" in \"127.0.0.1:9119999\""},
	    {"\"::1:9119\"", "test.yaml:1:17: metrics_listen: an IPv6 address goes in brackets, like [::1]:9119, "
	                     "got \"::1:9119\""},
	    {"\"[::1]9119\"", "test.yaml:1:17: metrics_listen: expected [IPv6 ADDRESS]:PORT, like [::1]:9119, got "
	                      "\"[::1]9119\""},
	    {"\"[127.0.0.1]:80\"", "test.yaml:1:17: metrics_listen: \"127.0.0.1\" is not an IPv6 address, in "
	                           "\"[127.0.0.1]:80\""},
	    {"\":9119\"", "test.yaml:1:17: metrics_listen: no address before the port in \":9119\" (to listen on "
	                  "every interface say so: 0.0.0.0:PORT or [::]:PORT)"},
	    {"256.1.1.1:80", "test.yaml:1:17: metrics_listen: \"256.1.1.1\" is not an IPv4 address (host names are "
	                     "not looked up; IPv6 goes in brackets), in \"256.1.1.1:80\""},
	    {"[a, b]", "test.yaml:1:17: metrics_listen: expected a single value, got a list"},
	};
	for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
		rc = load_top_key("metrics_listen", bad_listen[i].value, &c, &m);
		is_int(rc, DW_E_CONFIG, "metrics_listen: %s refused", bad_listen[i].value);
		is_str(only_error(&m), bad_listen[i].msg, "metrics_listen: %s: the message", bad_listen[i].value);
		dw_config_free(c);
		c = NULL;
	}

	/* A misspelt key gets the usual hint. */
	rc = load_top_key("metric_file", "/tmp/x.prom", &c, &m);
	is_str(only_error(&m), "test.yaml:1:1: metric_file: unknown key (did you mean metrics_file?)",
	       "metrics: a misspelt key is caught");
	dw_config_free(c);
	dw_cfg_msgs_free(&m);
	free(prom);
}

int
main(void)
{
	strcpy(tmpdir, "/tmp/dw-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_example();
	test_minimal();
	test_mistakes();
	test_syntax();
	test_secrets();
	test_sizes_durations();
	test_imap_rules();
	test_notifiers();
	test_rules();
	test_metrics();
	char *p = tmp_path("pw");
	unlink(p);
	free(p);
	if (rmdir(tmpdir) != 0)
		diag("cannot remove %s: %s", tmpdir, strerror(errno));
	dw_config_free(NULL);
	dw_cfg_msgs_free(NULL);
	return done_testing();
}
