/*
 * main.c - the dmarcwatch command line: `parse`, `import`, `report`.
 *
 * This is the top of the program: it owns option parsing, the process-wide
 * settings (time zone, libxml2 initialisation) and the exit status, and it
 * is the only file that exits. Each command wires the pipeline stages
 * together; the stages themselves never print or exit.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "dw/agent.h"
#include "dw/aggregate.h"
#include "dw/config.h"
#include "dw/log.h"
#include "dw/days.h"
#include "dw/deliver.h"
#include "dw/digest.h"
#include "dw/evaluate.h"
#include "dw/facts.h"
#include "dw/notification_json.h"
#include "dw/notify.h"
#include "dw/outbox.h"
#include "dw/importer.h"
#include "dw/ingest.h"
#include "dw/limits.h"
#include "dw/metrics.h"
#include "dw/oauth2.h"
#include "dw/output.h"
#include "dw/progress.h"
#include "dw/report.h"
#include "dw/sdnotify.h"
#include "dw/store.h"

#define EXIT_USAGE 2

static const char *progname = "dmarcwatch";

static void
usage_main(FILE *f)
{
	fprintf(f,
	        "usage: dmarcwatch COMMAND [OPTIONS] [ARGS]\n"
	        "\n"
	        "Commands:\n"
	        "  parse   FILE...        print the DMARC reports in files (xml, gz, zip, mail; - = stdin)\n"
	        "  import  FILE|DIR...    store the reports found into the database\n"
	        "  report                 print per-day, per-source or per-reporter aggregates\n"
	        "  run [-c FILE] [--once] run the agent: fetch report mail from every account\n"
	        "  check-config [-c FILE] validate the configuration (alias: -n)\n"
	        "  test-notify NAME       send a test notification through one notifier\n"
	        "  outbox                 list queued, delivered and dead-lettered notifications\n"
	        "  replay                 show what the rules would have alerted on, day by day\n"
	        "  digest                 print (or send) the daily digest of a settled day\n"
	        "\n"
	        "Run 'dmarcwatch COMMAND --help' for a command's options; 'dmarcwatch --version'.\n");
}

static void
usage_parse(FILE *f)
{
	fprintf(f, "usage: dmarcwatch parse [--format json|csv|table] [--no-records] [--limit NAME=VALUE]... FILE...\n"
	           "  FILE is a report (.xml, .gz, .zip) or a whole mail; the kind is sniffed from the\n"
	           "  content. '-' reads standard input. json prints one object per report per line.\n"
	           "  --limit raises or lowers a safety limit, e.g. --limit decompressed_max=2G.\n");
}

static void
usage_import(FILE *f)
{
	fprintf(f, "usage: dmarcwatch import [--db PATH] [--tz ZONE] [--limit NAME=VALUE]... FILE|DIR...\n"
	           "  Stores every report found (directories recursively, hidden files skipped).\n"
	           "  --db defaults to $DMARCWATCH_DB, else ./dmarcwatch.db.\n");
}

static void
usage_report(FILE *f)
{
	fprintf(f, "usage: dmarcwatch report [--db PATH] [--tz ZONE] [--domain D] [--since YYYY-MM-DD]\n"
	           "                         [--until YYYY-MM-DD] [--by day|source|reporter]\n"
	           "                         [--format table|json|csv]\n"
	           "  Days are calendar days in ZONE (an IANA name; default UTC or $DMARCWATCH_TZ).\n");
}

static int
version(void)
{
	printf("dmarcwatch %s\n", DW_VERSION);
	return 0;
}

static const char *
default_db(void)
{
	const char *e = getenv("DMARCWATCH_DB");
	return e && *e ? e : "dmarcwatch.db";
}

static int
set_tz(const char *zone)
{
	char err[512];
	if (zone == NULL) {
		zone = getenv("DMARCWATCH_TZ");
		if (zone == NULL || *zone == '\0')
			zone = "UTC";
	}
	if (dw_tz_set(zone, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: --tz: %s\n", progname, err);
		return -1;
	}
	return 0;
}

/* ---- parse ---- */

static int
cmd_parse(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'}, {"no-records", no_argument, NULL, 'n'},
	    {"limit", required_argument, NULL, 'l'},  {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
	enum dw_format fmt = DW_FMT_JSON;
	int with_records = 1, c;
	struct dw_limits limits;
	char lerr[512];
	dw_limits_default(&limits);

	while ((c = getopt_long(argc, argv, "f:nl:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (dw_limits_set(&limits, optarg, lerr, sizeof lerr) != DW_OK) {
				fprintf(stderr, "%s parse: --limit: %s\n", progname, lerr);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			if ((fmt = dw_format_parse(optarg)) == 0) {
				fprintf(stderr, "%s parse: --format: expected json, csv or table, got '%s'\n", progname,
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case 'n':
			with_records = 0;
			break;
		case 'h':
			usage_parse(stdout);
			return 0;
		case 'V':
			return version();
		default:
			usage_parse(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s parse: no FILE given\n", progname);
		usage_parse(stderr);
		return EXIT_USAGE;
	}

	/* CSV is one row per record, so it always carries them. */
	struct dw_printer *pr = dw_printer_new(stdout, fmt, fmt == DW_FMT_CSV ? 1 : with_records);
	int failed = 0;
	for (int i = optind; i < argc; i++) {
		struct dw_ingest_result res;
		unsigned before = dw_printer_failures(pr);
		dw_printer_set_source(pr, argv[i]);
		int rc = dw_ingest_path(argv[i], &limits, &dw_printer_cb, pr, &res);
		if (rc != DW_OK)
			dw_printer_item_error(pr, argv[i], res.reason);
		else if (res.not_report)
			dw_printer_item_error(pr, argv[i], res.reason);
		if (dw_printer_failures(pr) != before)
			failed = 1;
		dw_ingest_result_clear(&res);
	}
	char err[256];
	int wrc = dw_printer_finish(pr, err, sizeof err);
	dw_printer_free(pr);
	if (wrc != DW_OK) {
		fprintf(stderr, "%s parse: %s\n", progname, err);
		return 1;
	}
	return failed ? 1 : 0;
}

/* ---- import ---- */

struct import_run {
	struct dw_store *store;
	struct dw_limits limits;
	struct dw_import_counts total;
	unsigned not_reports;
	unsigned item_failures; /* items that could not be read at all */
	int store_dead;
	struct dw_progress *prog; /* "n/N files" on a terminal; NULL otherwise */
};

static void
import_fail(void *arg, const struct dw_doc_info *doc, const char *msg)
{
	struct import_run *ir = arg;
	dw_progress_clear(ir->prog);
	fprintf(stderr, "%s: %s%s%s: %s\n", progname, doc->item, doc->where[0] ? ": " : "", doc->where, msg);
}

static void
import_file(struct import_run *ir, const char *path)
{
	struct dw_importer im = {0};
	struct dw_ingest_result res;
	char err[1024];
	struct stat st;

	im.store = ir->store;
	im.prov.kind = strcmp(path, "-") == 0 ? "stdin" : "file";
	im.prov.source = path;
	im.prov.uidvalidity = im.prov.uid = -1;
	im.prov.received = (strcmp(path, "-") != 0 && stat(path, &st) == 0) ? (int64_t)st.st_mtime : -1;
	im.mail_dates = 1; /* a mail's arrival: its top Received: date, else Date: */
	im.on_fail = import_fail;
	im.on_fail_arg = ir;

	if (dw_importer_item_begin(&im, err, sizeof err) != DW_OK) {
		dw_progress_clear(ir->prog);
		fprintf(stderr, "%s: %s: %s\n", progname, path, err);
		ir->store_dead = 1;
		return;
	}
	int rc = dw_ingest_path(path, &ir->limits, &dw_importer_cb, &im, &res);
	if (dw_importer_item_end(&im, err, sizeof err) != DW_OK) {
		dw_progress_clear(ir->prog);
		fprintf(stderr, "%s: %s: not imported: %s\n", progname, path, err);
		ir->store_dead = 1;
		dw_ingest_result_clear(&res);
		return;
	}
	if (rc != DW_OK) {
		dw_progress_clear(ir->prog); /* the next step redraws it */
		fprintf(stderr, "%s: %s: %s\n", progname, path, res.reason);
		ir->item_failures++;
	} else if (res.not_report) {
		dw_progress_clear(ir->prog);
		fprintf(stderr, "%s: %s: not a report: %s\n", progname, path, res.reason);
		ir->not_reports++;
	}
	ir->total.stored += im.item.stored;
	ir->total.revisions += im.item.revisions;
	ir->total.duplicates += im.item.duplicates;
	ir->total.failed += im.item.failed;
	dw_ingest_result_clear(&res);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files to import, in order: directories walked depth first, names
 * sorted, hidden ones skipped. One walk serves both the progress line's
 * total and the import; what cannot be walked is reported here. */
struct file_list {
	char **v;
	size_t n;
};

static void
list_tree(struct import_run *ir, const char *path, int depth, struct file_list *fl)
{
	struct stat st;
	if (strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fl->v = xreallocarray(fl->v, fl->n + 1, sizeof *fl->v);
		fl->v[fl->n++] = xstrdup(path);
		return;
	}
	if (depth > 32) {
		fprintf(stderr, "%s: %s: directories nested too deep (over 32 levels); skipped\n", progname, path);
		ir->item_failures++;
		return;
	}
	DIR *d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "%s: %s: cannot open directory: %s\n", progname, path, strerror(errno));
		ir->item_failures++;
		return;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, n + 1, sizeof *names);
		names[n++] = xasprintf("%s/%s", path, de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n; i++) {
		list_tree(ir, names[i], depth + 1, fl);
		free(names[i]);
	}
	free(names);
}

static int
cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
	                                     {"tz", required_argument, NULL, 'z'},
	                                     {"limit", required_argument, NULL, 'l'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *db = default_db(), *tz = NULL;
	struct import_run ir = {0};
	char lerr[512];
	int c;
	dw_limits_default(&ir.limits);
	while ((c = getopt_long(argc, argv, "d:z:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (dw_limits_set(&ir.limits, optarg, lerr, sizeof lerr) != DW_OK) {
				fprintf(stderr, "%s import: --limit: %s\n", progname, lerr);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			db = optarg;
			break;
		case 'z':
			tz = optarg;
			break;
		case 'h':
			usage_import(stdout);
			return 0;
		case 'V':
			return version();
		default:
			usage_import(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s import: no FILE or DIR given\n", progname);
		usage_import(stderr);
		return EXIT_USAGE;
	}
	/* Days are attributed when reporting, in the zone asked then; the zone
	 * is still checked here so a typo is caught early. */
	if (set_tz(tz) != 0)
		return EXIT_USAGE;

	char err[1024];
	if (dw_store_open(db, &ir.store, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s import: %s\n", progname, err);
		return 1;
	}
	dw_store_bulk_cache(ir.store);
	struct file_list fl = {0};
	for (int i = optind; i < argc; i++)
		list_tree(&ir, argv[i], 0, &fl);
	ir.prog = dw_progress_new(stderr, "files", 0, 0);
	dw_progress_add_total(ir.prog, fl.n); /* drawn now: "0/N files" */
	for (size_t i = 0; i < fl.n; i++) {
		if (!ir.store_dead) {
			import_file(&ir, fl.v[i]);
			dw_progress_step(ir.prog, 1);
		}
		free(fl.v[i]);
	}
	free(fl.v);
	dw_progress_done(ir.prog);
	ir.prog = NULL;
	dw_store_close(ir.store);

	printf("imported %u, duplicates %u, not reports %u, failed %u\n", ir.total.stored + ir.total.revisions,
	       ir.total.duplicates, ir.not_reports, ir.total.failed + ir.item_failures);
	if (ir.total.revisions > 0)
		printf("(%u of the imported reports are revisions: same report id with new content; the newest "
		       "counts)\n",
		       ir.total.revisions);
	if (ir.store_dead) {
		fprintf(stderr, "%s import: stopped after a database error; fix it and run the import again "
		                "(already stored reports are recognised as duplicates)\n",
		        progname);
		return 1;
	}
	return (ir.total.failed + ir.item_failures) ? 1 : 0;
}

/* ---- report ---- */

static int
cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},     {"tz", required_argument, NULL, 'z'},
	    {"domain", required_argument, NULL, 'D'}, {"since", required_argument, NULL, 's'},
	    {"until", required_argument, NULL, 'u'},  {"by", required_argument, NULL, 'b'},
	    {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
	const char *db = default_db(), *tz = NULL;
	struct dw_agg_query q = {.by = DW_BY_DAY};
	enum dw_format fmt = DW_FMT_TABLE;
	int c;
	while ((c = getopt_long(argc, argv, "d:z:D:s:u:b:f:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'z':
			tz = optarg;
			break;
		case 'D':
			q.domain = optarg;
			break;
		case 's':
			q.since = optarg;
			break;
		case 'u':
			q.until = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "day") == 0)
				q.by = DW_BY_DAY;
			else if (strcmp(optarg, "source") == 0)
				q.by = DW_BY_SOURCE;
			else if (strcmp(optarg, "reporter") == 0)
				q.by = DW_BY_REPORTER;
			else {
				fprintf(stderr, "%s report: --by: expected day, source or reporter, got '%s'\n", progname,
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			if ((fmt = dw_format_parse(optarg)) == 0) {
				fprintf(stderr, "%s report: --format: expected table, json or csv, got '%s'\n", progname,
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage_report(stdout);
			return 0;
		case 'V':
			return version();
		default:
			usage_report(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s report: unexpected argument '%s'\n", progname, argv[optind]);
		usage_report(stderr);
		return EXIT_USAGE;
	}
	if (set_tz(tz) != 0)
		return EXIT_USAGE;

	struct stat st;
	if (stat(db, &st) != 0) {
		fprintf(stderr, "%s report: database %s: %s (import reports first: dmarcwatch import --db %s FILE...)\n",
		        progname, db, strerror(errno), db);
		return 1;
	}
	struct dw_store *s;
	char err[1024];
	if (dw_store_open(db, &s, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s report: %s\n", progname, err);
		return 1;
	}
	struct dw_agg_result res = {0};
	int rc = dw_aggregate(s, &q, &res, err, sizeof err);
	dw_store_close(s);
	if (rc != DW_OK) {
		fprintf(stderr, "%s report: %s\n", progname, err);
		return rc == DW_E_CONFIG ? EXIT_USAGE : 1;
	}
	rc = dw_print_aggregate(stdout, fmt, q.by, &res);
	dw_agg_result_free(&res);
	if (rc != DW_OK) {
		fprintf(stderr, "%s report: cannot write the output: %s\n", progname, strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- the agent: run, check-config ---- */

#define DEFAULT_CONFIG DW_SYSCONFDIR "/dmarcwatch/dmarcwatch.yaml"

static void
usage_run(FILE *f)
{
	fprintf(f, "usage: dmarcwatch run [-c FILE] [--once] [-v] [--allow-root]\n"
	           "  Fetches report mail from every configured account, stores the reports and\n"
	           "  moves each message to the folder for its verdict. --once: one pass, then exit\n"
	           "  (0 if every account was processed). -c defaults to %s.\n"
	           "  -v: one more log level (repeatable). run refuses to start as root unless\n"
	           "  --allow-root (or DMARCWATCH_ALLOW_ROOT=1) is given.\n",
	        DEFAULT_CONFIG);
}

/* The agent parses hostile input from the network and runs plugins (the
 * exec notifier runs commands): it has no business holding root. run and
 * test-notify refuse it unless told otherwise. 1 = refused (said why). */
static int
refuse_root(const char *cmd, int allow_root)
{
	const char *env = getenv("DMARCWATCH_ALLOW_ROOT");
	if (geteuid() != 0 || allow_root || (env != NULL && strcmp(env, "1") == 0))
		return 0;
	fprintf(stderr,
	        "%s: %s: refusing to run as root; run it as a dedicated user (the systemd unit uses "
	        "User=dmarcwatch: sudo -u dmarcwatch dmarcwatch %s ...), or pass --allow-root "
	        "(DMARCWATCH_ALLOW_ROOT=1) if you really mean it\n",
	        progname, cmd, cmd);
	return 1;
}

/* Load a configuration, printing every warning and error. */
static struct dw_config *
load_config(const char *path, int quiet)
{
	struct dw_config *cfg = NULL;
	struct dw_cfg_msgs msgs = {0};
	int rc = dw_config_load(path, &cfg, &msgs);
	for (size_t i = 0; i < msgs.nwarnings; i++)
		if (!quiet)
			fprintf(stderr, "%s: warning: %s\n", progname, msgs.warnings[i]);
	for (size_t i = 0; i < msgs.nerrors; i++)
		fprintf(stderr, "%s\n", msgs.errors[i]);
	if (rc != DW_OK && msgs.nerrors > 0)
		fprintf(stderr, "%s: %s: %zu error%s; nothing was started\n", progname, path, msgs.nerrors,
		        msgs.nerrors == 1 ? "" : "s");
	dw_cfg_msgs_free(&msgs);
	return rc == DW_OK ? cfg : NULL;
}

/* Load and init() the configured notifiers, printing problems like
 * load_config does. NULL on failure. */
static struct dw_notifiers *
load_notifiers(const struct dw_config *cfg)
{
	struct dw_notifiers *ns = NULL;
	struct dw_cfg_msgs msgs = {0};
	int rc = dw_notifiers_load(cfg, &ns, &msgs);
	for (size_t i = 0; i < msgs.nwarnings; i++)
		fprintf(stderr, "%s: warning: %s\n", progname, msgs.warnings[i]);
	for (size_t i = 0; i < msgs.nerrors; i++)
		fprintf(stderr, "%s\n", msgs.errors[i]);
	if (rc != DW_OK)
		fprintf(stderr, "%s: %s: %zu notifier error%s; nothing was started\n", progname, cfg->file, msgs.nerrors,
		        msgs.nerrors == 1 ? "" : "s");
	dw_cfg_msgs_free(&msgs);
	return rc == DW_OK ? ns : NULL;
}

static int
parse_config_opts(int argc, char **argv, const char **path, int *once, int *verbose, int *allow_root,
                  void (*usage)(FILE *))
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"once", no_argument, NULL, 'o'},
	                                     {"allow-root", no_argument, NULL, 'R'},
	                                     {"verbose", no_argument, NULL, 'v'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	int c;
	*path = getenv("DMARCWATCH_CONFIG");
	if (*path == NULL || **path == '\0')
		*path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:ovhVn", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*path = optarg;
			break;
		case 'o':
			if (once == NULL)
				goto bad;
			*once = 1;
			break;
		case 'v':
			if (verbose != NULL)
				(*verbose)++;
			break;
		case 'R':
			if (allow_root == NULL)
				goto bad;
			*allow_root = 1;
			break;
		case 'n':
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		default:
			goto bad;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
		goto bad;
	}
	return -1;
bad:
	usage(stderr);
	return EXIT_USAGE;
}

static void
usage_check_config(FILE *f)
{
	fprintf(f, "usage: dmarcwatch check-config [-c FILE]   (or: dmarcwatch -n [-c FILE])\n"
	           "  Loads and checks the configuration, loads and initialises every notifier,\n"
	           "  and prints \"configuration OK\" or every problem as FILE:LINE:COL. -c defaults\n"
	           "  to %s.\n",
	        DEFAULT_CONFIG);
}

static int
cmd_check_config(int argc, char **argv)
{
	const char *path;
	int r = parse_config_opts(argc, argv, &path, NULL, NULL, NULL, usage_check_config);
	if (r >= 0)
		return r;
	struct dw_config *cfg = load_config(path, 0);
	if (cfg == NULL)
		return 1;
	char err[512];
	if (dw_tz_set(cfg->timezone, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: timezone: %s\n", path, err);
		dw_config_free(cfg);
		return 1;
	}
	dw_oauth2_global_init();
	struct dw_notifiers *ns = load_notifiers(cfg);
	if (ns == NULL) {
		dw_config_free(cfg);
		return 1;
	}
	printf("configuration OK (%zu account%s, %zu notifier%s)\n", cfg->naccounts, cfg->naccounts == 1 ? "" : "s",
	       dw_notifiers_count(ns), dw_notifiers_count(ns) == 1 ? "" : "s");
	dw_notifiers_free(ns);
	dw_config_free(cfg);
	return 0;
}

/* ------------------------------------------------------------------ */
/* test-notify and outbox                                              */

static void
usage_test_notify(FILE *f)
{
	fprintf(f, "usage: dmarcwatch test-notify [-c FILE] [--json FILE] [--wait SECONDS] [--queue] [-v]\n"
	           "                              [--allow-root] NAME\n"
	           "  Queues a test notification in the outbox and delivers it through notifier NAME,\n"
	           "  retrying as the agent would for up to --wait seconds (default 60).\n"
	           "  --json FILE sends the notification in FILE instead (the webhook JSON schema).\n"
	           "  --queue only queues it: the running agent delivers it.\n"
	           "  Exit 0 delivered, 1 failed (dead letter) or configuration error, 75 not yet\n"
	           "  delivered (it stays queued and the agent retries it). Like run, it refuses to\n"
	           "  start as root unless --allow-root (or DMARCWATCH_ALLOW_ROOT=1).\n");
}

static void
usage_outbox(FILE *f)
{
	fprintf(f, "usage: dmarcwatch outbox [-c FILE] [--state pending|delivered|dead] [--format text|json]\n"
	           "  Lists the notification outbox, newest first.\n");
}

/* The built-in test notification: every part a plugin can render. */
static const char *const test_columns[] = {"source_ip", "messages", "spf", "dkim", "header_from", "reporter"};
static const char *const test_cells[] = {
    "192.0.2.10",   "812", "pass", "pass", "example.com", "google.com",
    "198.51.100.7", "301", "fail", "pass", "example.com", "Yahoo",
    "203.0.113.99", "56",  "fail", "fail", "example.com", "Microsoft Corporation",
};
static const char test_csv[] = "source_ip,messages,spf,dkim,header_from,reporter\r\n"
                               "192.0.2.10,812,pass,pass,example.com,google.com\r\n"
                               "198.51.100.7,301,fail,pass,example.com,Yahoo\r\n"
                               "203.0.113.99,56,fail,fail,example.com,Microsoft Corporation\r\n";

static int
cmd_test_notify(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {"wait", required_argument, NULL, 'w'},
	                                     {"queue", no_argument, NULL, 'q'},
	                                     {"verbose", no_argument, NULL, 'v'},
	                                     {"allow-root", no_argument, NULL, 'R'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = getenv("DMARCWATCH_CONFIG"), *json = NULL;
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	unsigned long wait = 60;
	int queue = 0, verbose = 0, allow_root = 0, c;
	char *end;
	while ((c = getopt_long(argc, argv, "c:j:w:qvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'j': json = optarg; break;
		case 'w':
			errno = 0;
			wait = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 || wait > 86400) {
				fprintf(stderr, "%s: --wait: expected seconds (0 to 86400), got '%s'\n", progname, optarg);
				return EXIT_USAGE;
			}
			break;
		case 'q': queue = 1; break;
		case 'v': verbose++; break;
		case 'R': allow_root = 1; break;
		case 'h': usage_test_notify(stdout); return 0;
		case 'V': return version();
		default: usage_test_notify(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "%s: test-notify needs exactly one notifier NAME\n", progname);
		usage_test_notify(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[optind];
	if (refuse_root("test-notify", allow_root))
		return 1;

	/* The notification first: a bad --json file needs no configuration. */
	struct dw_notification *parsed = NULL;
	if (json != NULL) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = fopen(json, "rb");
		if (f != NULL) {
			size_t cap = 0;
			for (;;) {
				if (len + 65536 > cap)
					text = xrealloc(text, cap = cap * 2 + 65536);
				size_t r = fread(text + len, 1, cap - len, f);
				len += r;
				if (r == 0 || len > (64u << 20))
					break;
			}
		}
		if (f == NULL || ferror(f) || len > (64u << 20)) {
			fprintf(stderr, "%s: --json %s: %s\n", progname, json,
			        f == NULL ? strerror(errno) : len > (64u << 20) ? "larger than 64 MiB" : "read error");
			if (f != NULL)
				fclose(f);
			free(text);
			return 1;
		}
		fclose(f);
		char err[512];
		if (dw_notification_from_json(text, len, &parsed, err, sizeof err) != 0) {
			fprintf(stderr, "%s: --json %s: %s\n", progname, json, err);
			free(text);
			return 1;
		}
		free(text);
	}

	struct dw_config *cfg = load_config(path, 0);
	if (cfg == NULL) {
		dw_notification_free(parsed);
		return 1;
	}
	int level = cfg->log_level + verbose;
	dw_log_init(level > DW_LOG_DEBUG ? DW_LOG_DEBUG : level, 0, "dmarcwatch");
	signal(SIGPIPE, SIG_IGN);
	dw_oauth2_global_init();
	struct dw_notifiers *ns = load_notifiers(cfg);
	if (ns == NULL) {
		dw_notification_free(parsed);
		dw_config_free(cfg);
		return 1;
	}
	int status = 1, abandoned = 0;
	struct dw_store *db = NULL;
	struct dw_deliver *dl = NULL;
	struct dw_outbox_entry e;
	memset(&e, 0, sizeof e);
	char err[1024], key[128];
	if (dw_notifiers_find(ns, name) == NULL) {
		fprintf(stderr, "%s: test-notify: no notifier named '%s' in %s (configured:", progname, name, cfg->file);
		for (size_t i = 0; i < dw_notifiers_count(ns); i++)
			fprintf(stderr, " %s", dw_notifier_name(dw_notifiers_at(ns, i)));
		fprintf(stderr, "%s)\n", dw_notifiers_count(ns) == 0 ? " none" : "");
		goto out;
	}

	int64_t t0 = dw_wall_ms();
	snprintf(key, sizeof key, "test:%s:%lld:%ld", name, (long long)t0, (long)getpid());
	char host[256] = "this host", body[1024];
	gethostname(host, sizeof host);
	host[sizeof host - 1] = '\0';
	snprintf(body, sizeof body,
	         "This is a test notification from dmarcwatch on %s, sent with `dmarcwatch test-notify %s`.\n"
	         "If you can read this, notifier %s works. The figures below are examples.\n",
	         host, name, name);
	struct dw_field fields[] = {{"domain", "example.com"},  {"messages", "1169"},    {"dmarc_pass", "812"},
	                            {"dmarc_fail", "357"},      {"spf_fail", "357"},     {"dkim_fail", "56"}};
	struct dw_table table = {6, test_columns, 3, test_cells};
	struct dw_attachment att = {"dmarcwatch-test.csv", "text/csv", (const unsigned char *)test_csv,
	                            sizeof test_csv - 1};
	struct dw_notification builtin = {
	    .struct_size = sizeof builtin,
	    .kind = DW_KIND_TEST,
	    .severity = DW_SEV_INFO,
	    .attempt = 1,
	    .time = (time_t)(t0 / 1000),
	    .idempotency_key = key,
	    .domain = "example.com",
	    .title = "dmarcwatch test notification",
	    .body = body,
	    .summary = "*Test* from dmarcwatch: if you see this, the notifier works.\n- the fields, the table "
	               "and the CSV are examples",
	    .fields = fields,
	    .nfields = sizeof fields / sizeof fields[0],
	    .table = &table,
	    .attachment = &att,
	};
	struct dw_notification *n = &builtin;
	if (parsed != NULL) {
		n = parsed;
		if (n->idempotency_key == NULL || n->idempotency_key[0] == '\0')
			n->idempotency_key = key;
	}

	int64_t id = 0;
	int created = 0;
	if (dw_config_make_state_dir(cfg, err, sizeof err) != DW_OK ||
	    dw_store_open(dw_config_db_path(cfg), &db, err, sizeof err) != DW_OK ||
	    dw_outbox_put(db, name, n, t0, &id, &created, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: test-notify: %s\n", progname, err);
		goto out;
	}
	if (!created)
		fprintf(stderr, "%s: test-notify: idempotency key '%s' was queued before (entry %lld): not queued again\n",
		        progname, n->idempotency_key, (long long)id);
	if (queue) {
		printf("%s: queued (entry %lld); the running agent delivers it\n", name, (long long)id);
		status = 0;
		goto out;
	}
	struct dw_deliver_opts o = {.db_path = dw_config_db_path(cfg), .only_id = id, .only_notifier = name};
	if (dw_deliver_start(ns, &o, &dl, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: test-notify: %s\n", progname, err);
		goto out;
	}
	struct timespec tick = {0, 50 * 1000000L};
	int64_t start = t0;
	for (;;) {
		int r = dw_outbox_get(db, id, &e, err, sizeof err);
		if (r <= 0) {
			fprintf(stderr, "%s: test-notify: %s\n", progname, r < 0 ? err : "the entry disappeared");
			goto out;
		}
		if (e.state != DW_OUTBOX_PENDING)
			break;
		if (dw_wall_ms() - start >= (int64_t)wait * 1000)
			break;
		dw_outbox_entry_clear(&e);
		nanosleep(&tick, NULL);
	}
	double took = (double)(dw_wall_ms() - start) / 1000.0;
	if (e.state == DW_OUTBOX_PENDING) {
		/* Let a call in progress finish (or be abandoned), then report
		 * what the outbox says. */
		abandoned = dw_deliver_stop(dl, 2000) != 0;
		dl = NULL;
		dw_outbox_entry_clear(&e);
		if (dw_outbox_get(db, id, &e, err, sizeof err) <= 0) {
			fprintf(stderr, "%s: test-notify: %s\n", progname, err);
			goto out;
		}
	}
	if (e.state == DW_OUTBOX_DELIVERED) {
		printf("%s: delivered (entry %lld, attempt %u, %.2f s)\n", name, (long long)id, e.attempts, took);
		status = 0;
	} else if (e.state == DW_OUTBOX_DEAD) {
		fprintf(stderr, "%s: test-notify: %s: not delivered: %s (dead letter, entry %lld)\n", progname, name,
		        e.last_error != NULL ? e.last_error : "no reason recorded", (long long)id);
		status = 1;
	} else {
		fprintf(stderr,
		        "%s: test-notify: %s: not delivered within %lu s: %s; entry %lld stays in the outbox and the "
		        "agent retries it\n",
		        progname, name, wait, e.last_error != NULL ? e.last_error : "no attempt finished yet",
		        (long long)id);
		status = 75;
	}
out:
	dw_outbox_entry_clear(&e);
	dw_store_close(db);
	if (dl != NULL)
		abandoned = dw_deliver_stop(dl, 2000) != 0;
	if (abandoned) { /* a plugin call still runs in ns: leave without destructors */
		fflush(NULL);
		_exit(status);
	}
	dw_notifiers_free(ns);
	dw_notification_free(parsed);
	dw_config_free(cfg);
	return status;
}

struct outbox_list {
	int json;
	size_t n;
};

static int
print_entry(const struct dw_outbox_entry *e, void *arg)
{
	struct outbox_list *l = arg;
	char created[32], done[32];
	dw_rfc3339((time_t)(e->created_at / 1000), created, sizeof created);
	dw_rfc3339((time_t)(e->done_at / 1000), done, sizeof done);
	l->n++;
	if (l->json) {
		json_t *o = json_pack("{sI ss ss ss si ss}", "id", (json_int_t)e->id, "notifier", e->notifier,
		                      "idempotency_key", e->idem_key, "state", dw_outbox_state_name(e->state), "attempts",
		                      (int)e->attempts, "created", created);
		if (o == NULL)
			return 1;
		if (e->state != DW_OUTBOX_PENDING)
			json_object_set_new(o, "done", json_string(done));
		else
			json_object_set_new(o, "next_attempt_ms", json_integer(e->next_at));
		if (e->last_error != NULL)
			json_object_set_new(o, "last_error", json_string(e->last_error));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (s == NULL)
			return 1;
		printf("%s\n", s);
		free(s);
	} else {
		printf("%-6lld %-9s %-16s attempts=%u created=%s%s%s key=%s%s%s\n", (long long)e->id,
		       dw_outbox_state_name(e->state), e->notifier, e->attempts, created,
		       e->state != DW_OUTBOX_PENDING ? " done=" : "", e->state != DW_OUTBOX_PENDING ? done : "", e->idem_key,
		       e->last_error != NULL ? " error=" : "", e->last_error != NULL ? e->last_error : "");
	}
	return 0;
}

static int
cmd_outbox(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"state", required_argument, NULL, 's'},
	                                     {"format", required_argument, NULL, 'f'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = getenv("DMARCWATCH_CONFIG");
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	int state = 0, c;
	struct outbox_list l = {0, 0};
	while ((c = getopt_long(argc, argv, "c:s:f:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 's':
			for (state = 1; state <= 3 && strcmp(optarg, dw_outbox_state_name(state)) != 0; state++)
				;
			if (state > 3) {
				fprintf(stderr, "%s: --state: expected pending, delivered or dead, got '%s'\n", progname, optarg);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
				fprintf(stderr, "%s: --format: expected text or json, got '%s'\n", progname, optarg);
				return EXIT_USAGE;
			}
			l.json = strcmp(optarg, "json") == 0;
			break;
		case 'h': usage_outbox(stdout); return 0;
		case 'V': return version();
		default: usage_outbox(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
		usage_outbox(stderr);
		return EXIT_USAGE;
	}
	struct dw_config *cfg = load_config(path, 1);
	if (cfg == NULL)
		return 1;
	char err[1024];
	struct dw_store *db = NULL;
	int status = 0;
	if (dw_store_open(dw_config_db_path(cfg), &db, err, sizeof err) != DW_OK ||
	    dw_outbox_foreach(db, state, print_entry, &l, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: outbox: %s\n", progname, err);
		status = 1;
	}
	dw_store_close(db);
	dw_config_free(cfg);
	return status;
}

/* ------------------------------------------------------------------ */
/* replay and digest                                                   */

static void
usage_replay(FILE *f)
{
	fprintf(f, "usage: dmarcwatch replay [-c FILE] [--from YYYY-MM-DD] [--until YYYY-MM-DD]\n"
	           "                         [--format json|text] [--notify]\n"
	           "  Walks the stored history day by day as the agent would have (days settle, late\n"
	           "  reports count from when they arrived, cooldowns, resolution) and prints every\n"
	           "  alert event. json: one object per line with day, at, rule, kind, domain, group,\n"
	           "  severity, state (open|update|resolved), value, threshold, message. Nothing is\n"
	           "  sent unless --notify (then events go to the rules' notifiers).\n");
}

static void
usage_digest(FILE *f)
{
	fprintf(f, "usage: dmarcwatch digest [-c FILE] [--date YYYY-MM-DD] [--dry-run] [--csv]\n"
	           "  Builds the digest of a settled day (default: the latest) and queues it for the\n"
	           "  digest's notifiers; --dry-run prints it instead (--csv: the CSV attachment).\n");
}

struct replay_out {
	int json, notify;
	size_t events;
	struct dw_store *db;
	const struct dw_config *cfg;
	size_t queued;
	struct dw_replay_event_ctx *ctx;
};

static int
print_event(void *arg, const struct dw_alert_event *ev)
{
	struct dw_replay_event_ctx *ctx = arg;
	struct replay_out *o = ctx->arg;
	const struct dw_rule_hit *h = ev->hit;
	char at[32];
	dw_rfc3339((time_t)ctx->at, at, sizeof at);
	o->events++;
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "day", json_string(ev->day));
		json_object_set_new(j, "at", json_string(at));
		json_object_set_new(j, "rule", json_string(ev->rule->name));
		json_object_set_new(j, "kind", json_string(dw_rule_kind_name(ev->rule->kind)));
		json_object_set_new(j, "domain", json_string(ev->domain));
		json_object_set_new(j, "group", json_string(ev->group));
		json_object_set_new(j, "severity", json_string(dw_severity_name((unsigned)ev->rule->severity)));
		json_object_set_new(j, "state", json_string(ev->state));
		json_object_set_new(j, "value", h != NULL ? json_real(h->value) : json_null());
		json_object_set_new(j, "threshold", h != NULL ? json_real(h->threshold) : json_null());
		json_object_set_new(j, "message", json_string(ev->message));
		char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(j);
		if (line == NULL)
			return 1;
		printf("%s\n", line);
		free(line);
	} else {
		printf("%s %-8s %-20s %s\n", ev->day, ev->state, ev->rule->name, ev->message);
	}
	if (o->notify && (strcmp(ev->state, "resolved") != 0 || ev->rule->notify_resolved)) {
		struct dw_notification n;
		void *storage = NULL;
		char err[512];
		dw_alert_notification(ev, ctx->at, &n, &storage);
		for (size_t i = 0; i < ev->rule->nnotify; i++) {
			int64_t id;
			int created = 0;
			if (dw_outbox_put(o->db, ev->rule->notify[i], &n, dw_wall_ms(), &id, &created, err, sizeof err) !=
			    DW_OK)
				fprintf(stderr, "%s: replay: %s\n", progname, err);
			else
				o->queued += (size_t)created;
		}
		free(storage);
	}
	return 0;
}

static int
cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"from", required_argument, NULL, 'f'},
	                                     {"until", required_argument, NULL, 'u'},
	                                     {"format", required_argument, NULL, 'F'},
	                                     {"notify", no_argument, NULL, 'n'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = getenv("DMARCWATCH_CONFIG");
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	struct dw_replay_opts ro = {.now = (int64_t)time(NULL)};
	struct replay_out out = {0};
	int c;
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'f': ro.from = optarg; break;
		case 'u': ro.until = optarg; break;
		case 'F':
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
				fprintf(stderr, "%s: --format: expected json or text, got '%s'\n", progname, optarg);
				return EXIT_USAGE;
			}
			out.json = strcmp(optarg, "json") == 0;
			break;
		case 'n': out.notify = 1; break;
		case 'h': usage_replay(stdout); return 0;
		case 'V': return version();
		default: usage_replay(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
		usage_replay(stderr);
		return EXIT_USAGE;
	}
	const char *days[2] = {ro.from, ro.until}, *names[2] = {"--from", "--until"};
	for (int i = 0; i < 2; i++) {
		int64_t t;
		if (days[i] != NULL && dw_day_parse(days[i], &t) != 0) {
			fprintf(stderr, "%s: replay: %s: expected YYYY-MM-DD, got '%s'\n", progname, names[i], days[i]);
			return EXIT_USAGE;
		}
	}
	struct dw_config *cfg = load_config(path, 1);
	if (cfg == NULL)
		return 1;
	char err[1024];
	int status = 0;
	struct dw_store *db = NULL;
	if (dw_tz_set(cfg->timezone, err, sizeof err) != DW_OK ||
	    dw_store_open(dw_config_db_path(cfg), &db, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: replay: %s\n", progname, err);
		dw_config_free(cfg);
		return 1;
	}
	out.db = db;
	out.cfg = cfg;
	struct dw_replay_event_ctx ctx = {.arg = &out};
	if (dw_replay(db, cfg, &ro, print_event, &ctx, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: replay: %s\n", progname, err);
		status = 1;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: replay: cannot write: %s\n", progname, strerror(errno));
		status = 1;
	}
	if (out.notify)
		fprintf(stderr, "%s: replay: %zu event(s), %zu notification(s) queued; the agent delivers them\n",
		        progname, out.events, out.queued);
	dw_store_close(db);
	dw_config_free(cfg);
	return status;
}

static int
cmd_digest(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"date", required_argument, NULL, 'd'},
	                                     {"dry-run", no_argument, NULL, 'n'},
	                                     {"csv", no_argument, NULL, 'C'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = getenv("DMARCWATCH_CONFIG"), *date = NULL;
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	int dry = 0, csv = 0, c;
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'd': date = optarg; break;
		case 'n': dry = 1; break;
		case 'C': csv = 1; break;
		case 'h': usage_digest(stdout); return 0;
		case 'V': return version();
		default: usage_digest(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
		usage_digest(stderr);
		return EXIT_USAGE;
	}
	int64_t dstart;
	if (date != NULL && dw_day_parse(date, &dstart) != 0) {
		fprintf(stderr, "%s: digest: --date: expected YYYY-MM-DD, got '%s'\n", progname, date);
		return EXIT_USAGE;
	}
	struct dw_config *cfg = load_config(path, 1);
	if (cfg == NULL)
		return 1;
	char err[1024], day[11];
	int status = 1;
	struct dw_store *db = NULL;
	struct dw_digest *d = NULL;
	int64_t t;
	if (dw_tz_set(cfg->timezone, err, sizeof err) != DW_OK ||
	    dw_store_open(dw_config_db_path(cfg), &db, err, sizeof err) != DW_OK)
		goto fail;
	if (date != NULL) {
		if (dw_day_parse(date, &t) != 0) {
			snprintf(err, sizeof err, "--date: expected YYYY-MM-DD, got '%s'", date);
			goto fail;
		}
		snprintf(day, sizeof day, "%s", date);
	} else {
		dw_settled_day(cfg, (int64_t)time(NULL), day);
	}
	if (dw_digest_for_day(db, cfg, NULL, NULL, day, INT64_MAX, -1, &d, err, sizeof err) != DW_OK)
		goto fail;
	if (dry) {
		if (csv)
			fwrite(d->csv, 1, d->csv_len, stdout);
		else
			fputs(d->text, stdout);
		status = fflush(stdout) == 0 ? 0 : 1;
	} else if (!cfg->digest.enabled || cfg->digest.nnotify == 0) {
		snprintf(err, sizeof err, "no digest: section with notify: in %s; use --dry-run to print it", cfg->file);
		goto fail;
	} else {
		size_t queued = 0;
		for (size_t i = 0; i < cfg->digest.nnotify; i++) {
			int64_t id;
			int created = 0;
			if (dw_outbox_put(db, cfg->digest.notify[i], &d->n, dw_wall_ms(), &id, &created, err, sizeof err) !=
			    DW_OK)
				goto fail;
			queued += (size_t)created;
		}
		printf("digest for %s: %zu notification(s) queued (already queued ones are not repeated); the agent "
		       "delivers them\n",
		       day, queued);
		status = 0;
	}
	goto out;
fail:
	fprintf(stderr, "%s: digest: %s\n", progname, err);
out:
	dw_digest_free(d);
	dw_store_close(db);
	dw_config_free(cfg);
	return status;
}

/* Signal state: written by the handlers, read by the agent loop. This is
 * the program's top level, the one place allowed to hold it. */
static struct dw_agent_signals sigstate = {.wake_fd = -1};
static int wake_pipe[2] = {-1, -1};

/* A stop request is honoured within STOP_DEADLINE_S seconds even when a
 * server stalls in the middle of a response (libetpan then blocks up to
 * the account's timeout) or a plugin hangs: the first SIGTERM arms an
 * alarm, and if the orderly stop has not finished by then the process
 * leaves at once. Nothing is lost: every message is committed with its
 * checkpoint in one transaction, and outbox claims of a dead process are
 * released on the next start. */
#define STOP_DEADLINE_S 10

static void
on_deadline(int sig)
{
	static const char msg[] = "dmarcwatch: not stopped within 10 s of the stop signal (a server or a "
	                          "notifier is not answering); leaving now: nothing is lost, an interrupted "
	                          "message is fetched again on the next start\n";
	(void)sig;
	(void)!write(STDERR_FILENO, msg, sizeof msg - 1);
	_exit(1);
}

static void
on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGHUP) {
		sigstate.reload = 1;
	} else {
		if (!sigstate.stop)
			alarm(STOP_DEADLINE_S);
		sigstate.stop = 1;
	}
	if (wake_pipe[1] >= 0)
		(void)!write(wake_pipe[1], "x", 1);
	errno = saved;
}

static int
setup_signals(void)
{
	if (pipe(wake_pipe) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	sigstate.wake_fd = wake_pipe[0];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_deadline;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
apply_settings(const struct dw_config *cfg, int verbose)
{
	char err[512];
	int level = cfg->log_level + verbose;
	dw_log_init(level > DW_LOG_DEBUG ? DW_LOG_DEBUG : level, cfg->log_to == DW_LOG_SYSLOG, "dmarcwatch");
	if (dw_tz_set(cfg->timezone, err, sizeof err) != DW_OK) {
		log_error("%s: timezone: %s", cfg->file, err);
		return -1;
	}
	return 0;
}

/* Rules and the digest run after each pass of the agent (agent.h hook). */
struct judge {
	struct dw_evaluator *ev;
	struct dw_deliver *dl;
	struct dw_metrics *metrics; /* NULL when neither metrics_file nor metrics_listen */
};

static void
judge_hook(void *arg)
{
	struct judge *j = arg;
	char err[1024];
	int queued = 0;
	if (j->metrics != NULL && dw_metrics_update(j->metrics, (int64_t)time(NULL), err, sizeof err) != DW_OK)
		log_warn("metrics: %s; trying again after the next pass", err);
	if (j->ev == NULL)
		return;
	if (dw_evaluator_tick(j->ev, (int64_t)time(NULL), &queued, err, sizeof err) != DW_OK)
		log_error("rules: %s; trying again after the next pass", err);
	if (queued > 0)
		dw_deliver_kick(j->dl);
}

/* Publish the figures the database holds now, so a scrape right after a
 * start or a reload is answered (not 503 for as long as the first pass
 * takes: a stalled server, a large backfill). */
static void
publish_metrics(struct dw_metrics *m)
{
	char err[1024];
	if (m != NULL && dw_metrics_update(m, (int64_t)time(NULL), err, sizeof err) != DW_OK)
		log_warn("metrics: %s; trying again after the next pass", err);
}

static struct dw_evaluator *
start_judging(const struct dw_config *cfg)
{
	if (cfg->nrules == 0 && !cfg->digest.enabled)
		return NULL;
	char err[1024];
	struct dw_evaluator *ev = NULL;
	if (dw_evaluator_new(cfg, &ev, err, sizeof err) != DW_OK)
		log_error("rules: %s; rules and the digest are off until this is fixed", err);
	return ev;
}

#define ONCE_DRAIN_MS 30000
#define STOP_GRACE_MS 5000

/* Deliveries run beside the agent loop (deliver.h). A failure to start
 * them is logged, not fatal: the outbox keeps everything for later. */
static struct dw_deliver *
start_delivery(const struct dw_config *cfg, struct dw_notifiers *ns)
{
	/* Even with no notifier: the dispatcher also warns about, and in time
	 * dead-letters, what is queued for notifiers no longer configured. */
	char err[1024];
	struct dw_deliver *dl = NULL;
	struct dw_deliver_opts o = {.db_path = dw_config_db_path(cfg), .keep = cfg->outbox_keep};
	if (dw_deliver_start(ns, &o, &dl, err, sizeof err) != DW_OK) {
		log_error("notifications: %s; they stay queued in the outbox", err);
		return NULL;
	}
	return dl;
}

/* Returns 1 when a plugin call was abandoned (still running): ns is then
 * kept for it, and the process must leave with _exit (no library
 * destructors under a thread still inside TLS code). A reload waits for
 * the longest notifier timeout so the new notifiers never run beside the
 * old ones; a stop waits STOP_GRACE_MS. */
static int
stop_delivery(struct dw_deliver *dl, struct dw_notifiers *ns, int reload)
{
	unsigned grace = STOP_GRACE_MS;
	for (size_t i = 0; reload && i < dw_notifiers_count(ns); i++) {
		unsigned t = dw_notifier_config(dw_notifiers_at(ns, i))->timeout * 1000u + STOP_GRACE_MS;
		if (t > grace)
			grace = t;
	}
	if (dl != NULL && dw_deliver_stop(dl, grace) != 0)
		return 1;
	dw_notifiers_free(ns);
	return 0;
}

/* Tell systemd (Type=notify) where we are; a no-op outside systemd. A
 * failure is logged once: the service manager then kills us on its start
 * timeout, and the log says why. */
static void
sd_tell(int *warned, const char *fmt, ...)
{
	char msg[512], err[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (dw_sd_notify(msg, err, sizeof err) < 0 && !*warned) {
		*warned = 1;
		log_warn("systemd notification: %s", err);
	}
}

static uint64_t
monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
cmd_run(int argc, char **argv)
{
	const char *path;
	int once = 0, verbose = 0, allow_root = 0, sd_warned = 0;
	int r = parse_config_opts(argc, argv, &path, &once, &verbose, &allow_root, usage_run);
	if (r >= 0)
		return r;
	if (refuse_root("run", allow_root))
		return 1;
	struct dw_config *cfg = load_config(path, 0);
	if (cfg == NULL)
		return 1;
	if (apply_settings(cfg, verbose) != 0) {
		dw_config_free(cfg);
		return 1;
	}
	if (setup_signals() != 0) {
		fprintf(stderr, "%s: cannot create the signal pipe: %s\n", progname, strerror(errno));
		dw_config_free(cfg);
		return 1;
	}
	dw_oauth2_global_init();

	char err[1024];
	struct dw_agent *agent;
	struct dw_notifiers *ns = load_notifiers(cfg);
	if (ns == NULL) {
		dw_config_free(cfg);
		return 1;
	}
	if (dw_agent_new(cfg, &sigstate, &agent, err, sizeof err) != DW_OK) {
		log_error("%s", err);
		dw_notifiers_free(ns);
		dw_config_free(cfg);
		return 1;
	}
	/* Metrics before deliveries: nothing to stop (or abandon) if the
	 * listener cannot bind. */
	struct dw_metrics *metrics = NULL;
	if (dw_metrics_new(cfg, &metrics, err, sizeof err) != DW_OK) {
		log_error("metrics: %s", err);
		dw_agent_free(agent);
		dw_notifiers_free(ns);
		dw_config_free(cfg);
		return 1;
	}
	publish_metrics(metrics);
	struct dw_deliver *dl = start_delivery(cfg, ns);
	struct judge judge = {start_judging(cfg), dl, metrics};
	dw_agent_set_hook(agent, judge_hook, &judge);
	int status = 0, abandoned = 0;
	if (once) {
		log_info("one pass over %zu account(s)", cfg->naccounts);
		/* "n/N messages" on a terminal; every log line clears and redraws it. */
		struct dw_progress *prog = dw_progress_new(stderr, "messages", 0, 0);
		dw_log_set_progress(prog);
		dw_agent_set_progress(agent, prog);
		status = dw_agent_once(agent) == DW_OK ? 0 : 1;
		dw_agent_set_progress(agent, NULL);
		dw_log_set_progress(NULL);
		dw_progress_done(prog);
		/* Deliver what is due before leaving (bounded). */
		if (dl != NULL && !dw_deliver_drain(dl, ONCE_DRAIN_MS))
			log_warn("notifications still pending after %d s; the next run delivers them", ONCE_DRAIN_MS / 1000);
	} else {
		log_info("started: %zu account(s), configuration %s", cfg->naccounts, path);
		sd_tell(&sd_warned, "READY=1\nSTATUS=watching %zu account(s)", cfg->naccounts);
		for (;;) {
			dw_agent_run(agent);
			if (sigstate.stop)
				break;
			if (sigstate.reload) {
				sigstate.reload = 0;
				log_info("SIGHUP: reloading %s", path);
				sd_tell(&sd_warned, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
				        (unsigned long long)monotonic_usec(), path);
				struct dw_config *ncfg = load_config(path, 1);
				if (ncfg == NULL) {
					log_error("the new configuration has errors (above); keeping the old one");
					sd_tell(&sd_warned, "READY=1\nSTATUS=watching %zu account(s); the last reload failed",
					        cfg->naccounts);
					continue;
				}
				struct dw_agent *na;
				dw_agent_free(agent);
				agent = NULL;
				dw_evaluator_free(judge.ev);
				judge.ev = NULL;
				/* The listener lets its port go before the new one binds it. */
				dw_metrics_free(metrics);
				metrics = NULL;
				/* Notifiers are re-made too: stop deliveries (the outbox
				 * keeps everything), shut the old instances down, init the
				 * new ones. */
				abandoned |= stop_delivery(dl, ns, 1);
				dl = NULL;
				ns = NULL;
				struct dw_notifiers *nns = NULL;
				err[0] = '\0';
				if (apply_settings(ncfg, verbose) != 0 || (nns = load_notifiers(ncfg)) == NULL ||
				    dw_agent_new(ncfg, &sigstate, &na, err, sizeof err) != DW_OK) {
					log_error("reload failed%s%s; keeping the old configuration", err[0] ? ": " : "", err);
					dw_notifiers_free(nns);
					dw_config_free(ncfg);
					(void)apply_settings(cfg, verbose);
					if ((ns = load_notifiers(cfg)) == NULL ||
					    dw_agent_new(cfg, &sigstate, &agent, err, sizeof err) != DW_OK) {
						log_error("%s", ns == NULL ? "the old notifiers no longer load" : err);
						status = 1;
						break;
					}
					dl = start_delivery(cfg, ns);
					if (dw_metrics_new(cfg, &metrics, err, sizeof err) != DW_OK)
						log_error("metrics: %s; metrics are off until the next reload", err);
					publish_metrics(metrics);
					judge = (struct judge){start_judging(cfg), dl, metrics};
					dw_agent_set_hook(agent, judge_hook, &judge);
					sd_tell(&sd_warned, "READY=1\nSTATUS=watching %zu account(s); the last reload failed",
					        cfg->naccounts);
					continue;
				}
				dw_config_free(cfg);
				cfg = ncfg;
				agent = na;
				ns = nns;
				dl = start_delivery(cfg, ns);
				if (dw_metrics_new(cfg, &metrics, err, sizeof err) != DW_OK)
					log_error("metrics: %s; metrics are off until the next reload", err);
				publish_metrics(metrics);
				judge = (struct judge){start_judging(cfg), dl, metrics};
				dw_agent_set_hook(agent, judge_hook, &judge);
				log_info("configuration reloaded: %zu account(s), %zu notifier(s)", cfg->naccounts,
				         dw_notifiers_count(ns));
				sd_tell(&sd_warned, "READY=1\nSTATUS=watching %zu account(s)", cfg->naccounts);
			}
		}
		log_info("stopping on a signal");
		sd_tell(&sd_warned, "STOPPING=1");
	}
	dw_agent_free(agent);
	dw_evaluator_free(judge.ev);
	dw_metrics_free(metrics);
	abandoned |= stop_delivery(dl, ns, 0);
	dw_config_free(cfg);
	if (abandoned) {
		fflush(NULL);
		_exit(status);
	}
	return status;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage_main(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0)
		return version();

	dw_report_global_init();
	/* Subcommands parse their own options: getopt starts at argv[1]. */
	argc--;
	argv++;
	if (strcmp(cmd, "parse") == 0)
		return cmd_parse(argc, argv);
	if (strcmp(cmd, "import") == 0)
		return cmd_import(argc, argv);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(argc, argv);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc, argv);
	if (strcmp(cmd, "check-config") == 0 || strcmp(cmd, "-n") == 0)
		return cmd_check_config(argc, argv);
	if (strcmp(cmd, "test-notify") == 0)
		return cmd_test_notify(argc, argv);
	if (strcmp(cmd, "outbox") == 0)
		return cmd_outbox(argc, argv);
	if (strcmp(cmd, "replay") == 0)
		return cmd_replay(argc, argv);
	if (strcmp(cmd, "digest") == 0)
		return cmd_digest(argc, argv);
	fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
	usage_main(stderr);
	return EXIT_USAGE;
}
