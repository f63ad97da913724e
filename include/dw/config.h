/*
 * config.h - the YAML configuration file (libyaml).
 *
 * Two phases, as collectd and isync do it: the file is parsed into our own
 * node tree that keeps line and column (cfg_node), then checked with typed
 * getters into struct dw_config. Every problem is collected as
 * "FILE:LINE:COL: path.to.key: what is wrong" and all are reported at once.
 * Secrets (passwords, client secrets, refresh tokens) come from *_file keys
 * or "env:NAME" and are read at load time into memory; they never appear in
 * an error, a warning or a log line.
 *
 * Sections that later issues add (notifiers, rules) stay available as raw
 * node trees through dw_config_section().
 */
#ifndef DW_CONFIG_H
#define DW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dw/limits.h"

enum dw_source_kind { DW_SRC_IMAP = 1, DW_SRC_MAILDIR };
enum dw_tls_mode { DW_TLS_IMPLICIT = 1, DW_TLS_STARTTLS, DW_TLS_NONE };
enum dw_auth_kind { DW_AUTH_PASSWORD = 1, DW_AUTH_XOAUTH2 };
enum dw_wait_mode { DW_MODE_IDLE = 1, DW_MODE_POLL };
enum dw_trust_require { DW_TRUST_NONE = 0, DW_TRUST_DMARC, DW_TRUST_DKIM };
enum dw_log_to { DW_LOG_STDERR = 1, DW_LOG_SYSLOG };

/* One node of the parsed YAML document (our own tree; no libyaml types). */
enum dw_cfg_type { DW_CFG_SCALAR = 1, DW_CFG_MAP, DW_CFG_SEQ };
struct dw_cfg_node {
	enum dw_cfg_type type;
	unsigned line, col;          /* 1-based */
	char *value;                 /* scalars: owned */
	char *key;                   /* the key when this node is a map value: owned */
	struct dw_cfg_node **items;  /* map values / sequence items: owned */
	size_t nitems;
	unsigned key_line, key_col;  /* where the key is, for map values (1-based) */
	int quoted;                  /* scalar written quoted or as a block: never null */
};

struct dw_oauth2_cfg {
	char *token_url;             /* default https://oauth2.googleapis.com/token */
	char *client_id;
	char *client_secret;         /* secret, from client_secret_file / env: */
	char *refresh_token;         /* secret, from refresh_token_file / env: */
	char *token_command;         /* alternative: a command printing an access token */
	char *ca_file;               /* CA bundle for token_url; NULL = system store */
};

struct dw_account_cfg {
	char *name;
	unsigned line;               /* where the account is defined */
	enum dw_source_kind source;
	/* imap */
	char *host;
	unsigned port;               /* default 993 implicit, 143 starttls/none */
	enum dw_tls_mode tls;
	int allow_plaintext;
	char *ca_file;               /* PEM bundle; NULL = system trust store */
	int verify;                  /* 1 unless verify: false */
	char *username;
	enum dw_auth_kind auth;
	char *password;              /* secret, from password_file / env: */
	struct dw_oauth2_cfg oauth2;
	/* maildir */
	char *path;
	/* both */
	char *folder;                /* default INBOX */
	char *archive_folder;        /* verdicts stored/duplicate; NULL = leave in place */
	char *invalid_folder;        /* verdict invalid; NULL = leave */
	char *untrusted_folder;      /* verdict untrusted; NULL = leave */
	char *other_folder;          /* verdict not-a-report; NULL = leave */
	enum dw_wait_mode mode;
	unsigned poll_interval;      /* seconds, default 300 */
	unsigned timeout;            /* seconds per network operation, default 60 */
	uint64_t batch_bytes;        /* bytes fetched per round trip, default 4 MiB */
	char **authserv_ids;         /* trust.authserv_id */
	size_t nauthserv_ids;
	enum dw_trust_require trust_require;
};

/* One plugin key: YAML lists arrive as the same key repeated, in order.
 * Values of keys ending in "_file" are resolved against the configuration
 * file's directory. */
struct dw_notifier_kv {
	char *key, *value;
	unsigned line, col;
};

/* One entry of notifiers:. Host keys are taken out; the rest go to the
 * plugin's init(). */
/* A notifier's default max_age (seconds); also how long notifications for
 * a notifier no longer configured are kept (deliver.c). */
#define DW_NOTIFIER_MAX_AGE_DEFAULT 86400u

struct dw_notifier_cfg {
	char *name;                  /* unique: [A-Za-z0-9_.-]+ */
	char *plugin;                /* a name in plugin_dir, or an absolute path */
	unsigned line, col;          /* where the entry starts */
	unsigned plugin_line, plugin_col;
	unsigned timeout;            /* seconds per notify() call, default 30 */
	unsigned max_age;            /* seconds before dead-lettering, default 24 h */
	unsigned retry_min;          /* first retry delay, default 30 s */
	unsigned retry_max;          /* retry delay cap, default 1 h */
	struct dw_notifier_kv *kv;
	size_t nkv;
};

/* ---- rules and the digest (rules.h evaluates them) ---- */
enum dw_rule_kind {
	DW_RULE_THRESHOLD = 1,   /* a metric over a window against a value */
	DW_RULE_BASELINE,        /* the latest settled day against the trailing N days */
	DW_RULE_NEW_SOURCE,      /* a sender not seen in the previous lookback days */
	DW_RULE_MISSING_REPORTER,/* a regular reporter gone silent */
	DW_RULE_POLICY_CHANGE,   /* policy_published changed, or reporters disagree */
	DW_RULE_REPORT_HEALTH    /* invalid/untrusted report mail, or no report mail at all */
};
enum dw_metric {
	DW_M_MESSAGES = 1, DW_M_DMARC_PASS, DW_M_DMARC_FAIL, DW_M_DMARC_FAIL_RATE, DW_M_DKIM_FAIL,
	DW_M_DKIM_FAIL_RATE, DW_M_SPF_FAIL, DW_M_SPF_FAIL_RATE, DW_M_QUARANTINED, DW_M_REJECTED,
	DW_M_DMARC_PASS_RATE
};
enum dw_group_by { DW_GROUP_DOMAIN = 1, DW_GROUP_SOURCE, DW_GROUP_REPORTER };
enum dw_op { DW_OP_GT = 1, DW_OP_GE, DW_OP_LT, DW_OP_LE };

/* An IPv4 or IPv6 network: addr in network order (IPv4 in the first 4 bytes). */
struct dw_cidr {
	int family;                  /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

struct dw_rule_cfg {
	char *name;                  /* unique */
	unsigned line, col;
	enum dw_rule_kind kind;
	int enabled;                 /* default 1 */
	char **domains;              /* scope; none = every domain */
	size_t ndomains;
	enum dw_group_by group;      /* threshold/baseline groups (default domain) */
	int severity;                /* DW_SEV_* of dmarcwatch/notifier.h; default warning */
	unsigned cooldown;           /* seconds between updates of an open alert; default 24 h */
	unsigned resolve_after;      /* settled days the condition must be false; default 2 */
	int notify_resolved;         /* default 0 */
	char **notify;               /* notifier names (checked against notifiers:) */
	size_t nnotify;
	char *runbook;               /* URL or NULL */
	/* ignore: */
	struct dw_cidr *ignore_sources;
	size_t nignore_sources;
	char **ignore_reporters;     /* org_name, compared case-insensitively */
	size_t nignore_reporters;
	char **ignore_reasons;       /* override reason types: forwarded, mailing_list... */
	size_t nignore_reasons;
	/* threshold: metric over window days, op value; groups under min_messages never fire */
	enum dw_metric metric;
	unsigned window;             /* days, default 1 */
	enum dw_op op;               /* default > */
	double value;                /* rates are percentages 0..100 */
	uint64_t min_messages;       /* default 100 (threshold, baseline); 10 (new_source) */
	/* baseline: against the median (or mean) of the previous baseline_days days */
	unsigned baseline_days;      /* default 14 */
	int use_mean;                /* stat: mean; default median */
	double drop_points;          /* pass-rate drop in points that fires; 0 = off */
	double volume_pct;           /* volume change in % that fires (up or down); 0 = off */
	uint64_t volume_min;         /* ... and at least this many messages of change */
	/* new_source */
	unsigned lookback;           /* days, default 30 */
	int group_ip;                /* group: ip (else /24 and /56 networks) */
	int passing;                 /* -1 any (default), 1 only DMARC-passing, 0 only failing */
	/* missing_reporter: seen on >= seen_days of the last of_days days, silent >= silent_days */
	unsigned seen_days, of_days, silent_days;
	/* policy_change */
	int disagree;                /* also fire when reporters disagree on one day; default 1 */
	/* report_health */
	double invalid_share;        /* % of invalid+untrusted report mails that fires; 0 = off */
	unsigned silence;            /* seconds without any report mail on an account; 0 = off */
	uint64_t min_mails;          /* mails needed before invalid_share is judged; default 5 */
};

struct dw_digest_cfg {
	int enabled;                 /* a digest: section is present */
	unsigned hour, minute;       /* local time it is sent, default 09:00 */
	char **notify;
	size_t nnotify;
	char **domains;              /* none = every domain */
	size_t ndomains;
	unsigned top;                /* top failing sources per domain, default 10 */
};

struct dw_config {
	char *file;                  /* the path it was read from */
	char *basedir;               /* its directory (relative paths); NULL for strings */
	char *state_dir;             /* the database lives here (dmarcwatch.db) */
	char *timezone;              /* IANA name, default UTC */
	int log_level;               /* 0 error .. 3 debug; default 2 (info) */
	enum dw_log_to log_to;
	struct dw_limits limits;
	struct dw_account_cfg *accounts;
	size_t naccounts;
	char *plugin_dir;            /* default DW_PLUGINDIR */
	unsigned outbox_keep;        /* seconds delivered/dead entries are kept, default 7 d */
	struct dw_notifier_cfg *notifiers;
	size_t nnotifiers;
	unsigned settle;             /* seconds after a day ends before it is judged, default 36 h */
	struct dw_rule_cfg *rules;
	size_t nrules;
	struct dw_digest_cfg digest;
	char *metrics_file;          /* Prometheus text written each pass; NULL = off */
	char *metrics_listen;        /* "HOST:PORT" served at GET /metrics; NULL = off */
	struct dw_cfg_node *root;    /* the whole tree, for later sections */
	char *db_path;               /* state_dir + "/dmarcwatch.db", set by the loader: owned */
};

/* Messages collected while loading: errors make the load fail; warnings
 * (e.g. a world-readable secret file) do not. */
struct dw_cfg_msgs {
	char **errors;
	size_t nerrors;
	char **warnings;
	size_t nwarnings;
};
void dw_cfg_msgs_free(struct dw_cfg_msgs *m);

/*
 * Load and check a configuration file. On success (DW_OK) *out is set. On
 * failure returns DW_E_CONFIG and msgs->errors holds every problem found.
 * Warnings may be present either way.
 */
int dw_config_load(const char *path, struct dw_config **out, struct dw_cfg_msgs *msgs);
/* The same from a string (tests); name is used in messages. */
int dw_config_load_string(const char *name, const char *text, size_t len, struct dw_config **out,
                          struct dw_cfg_msgs *msgs);
void dw_config_free(struct dw_config *c); /* NULL-safe; wipes secrets before freeing */

/*
 * Resolve a plugin's secret for notifiers[idx] the way account secrets are
 * resolved: "KEY: env:NAME", "KEY_file: PATH" (first line; refused when not
 * a regular file, warned when group/world-readable) or an inline value
 * (warned). Returns 1 (*out malloc'd), 0 (neither key) or -1; errors and
 * warnings go to msgs as FILE:LINE:COL: notifiers[idx].KEY: text.
 */
int dw_config_notifier_secret(const struct dw_config *c, size_t idx, const char *key, char **out,
                              struct dw_cfg_msgs *msgs);

/* The raw node of a top-level section ("notifiers", "rules"), or NULL. */
const struct dw_cfg_node *dw_config_section(const struct dw_config *c, const char *key);

/* Create state_dir (mode 0700) unless it exists. DW_OK or DW_E_CONFIG. */
int dw_config_make_state_dir(const struct dw_config *c, char *err, size_t errlen);

/* The database path: state_dir + "/dmarcwatch.db" (owned by c). */
const char *dw_config_db_path(const struct dw_config *c);

#endif
