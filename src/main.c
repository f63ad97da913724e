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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "dw/agent.h"
#include "dw/aggregate.h"
#include "dw/config.h"
#include "dw/log.h"
#include "dw/days.h"
#include "dw/importer.h"
#include "dw/ingest.h"
#include "dw/limits.h"
#include "dw/oauth2.h"
#include "dw/output.h"
#include "dw/report.h"
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
};

static void
import_fail(void *arg, const struct dw_doc_info *doc, const char *msg)
{
	(void)arg;
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
	im.on_fail = import_fail;

	if (dw_importer_item_begin(&im, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, err);
		ir->store_dead = 1;
		return;
	}
	int rc = dw_ingest_path(path, &ir->limits, &dw_importer_cb, &im, &res);
	if (dw_importer_item_end(&im, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s: %s: not imported: %s\n", progname, path, err);
		ir->store_dead = 1;
		dw_ingest_result_clear(&res);
		return;
	}
	if (rc != DW_OK) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, res.reason);
		ir->item_failures++;
	} else if (res.not_report) {
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

static void
import_tree(struct import_run *ir, const char *path, int depth)
{
	struct stat st;
	if (strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		import_file(ir, path);
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
		if (!ir->store_dead)
			import_tree(ir, names[i], depth + 1);
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
	for (int i = optind; i < argc && !ir.store_dead; i++)
		import_tree(&ir, argv[i], 0);
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
	fprintf(f, "usage: dmarcwatch run [-c FILE] [--once] [-v]\n"
	           "  Fetches report mail from every configured account, stores the reports and\n"
	           "  moves each message to the folder for its verdict. --once: one pass, then exit\n"
	           "  (0 if every account was processed). -c defaults to %s.\n"
	           "usage: dmarcwatch check-config [-c FILE]   (or: dmarcwatch -n [-c FILE])\n",
	        DEFAULT_CONFIG);
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

static int
parse_config_opts(int argc, char **argv, const char **path, int *once, int *verbose, void (*usage)(FILE *))
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"once", no_argument, NULL, 'o'},
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

static int
cmd_check_config(int argc, char **argv)
{
	const char *path;
	int r = parse_config_opts(argc, argv, &path, NULL, NULL, usage_run);
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
	printf("configuration OK (%zu account%s)\n", cfg->naccounts, cfg->naccounts == 1 ? "" : "s");
	dw_config_free(cfg);
	return 0;
}

/* Signal state: written by the handlers, read by the agent loop. This is
 * the program's top level, the one place allowed to hold it. */
static struct dw_agent_signals sigstate = {.wake_fd = -1};
static int wake_pipe[2] = {-1, -1};

static void
on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGHUP)
		sigstate.reload = 1;
	else
		sigstate.stop = 1;
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

static int
cmd_run(int argc, char **argv)
{
	const char *path;
	int once = 0, verbose = 0;
	int r = parse_config_opts(argc, argv, &path, &once, &verbose, usage_run);
	if (r >= 0)
		return r;
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
	if (dw_agent_new(cfg, &sigstate, &agent, err, sizeof err) != DW_OK) {
		log_error("%s", err);
		dw_config_free(cfg);
		return 1;
	}
	int status = 0;
	if (once) {
		log_info("one pass over %zu account(s)", cfg->naccounts);
		status = dw_agent_once(agent) == DW_OK ? 0 : 1;
	} else {
		log_info("started: %zu account(s), configuration %s", cfg->naccounts, path);
		for (;;) {
			dw_agent_run(agent);
			if (sigstate.stop)
				break;
			if (sigstate.reload) {
				sigstate.reload = 0;
				log_info("SIGHUP: reloading %s", path);
				struct dw_config *ncfg = load_config(path, 1);
				if (ncfg == NULL) {
					log_error("the new configuration has errors (above); keeping the old one");
					continue;
				}
				struct dw_agent *na;
				dw_agent_free(agent);
				agent = NULL;
				if (apply_settings(ncfg, verbose) != 0 || dw_agent_new(ncfg, &sigstate, &na, err, sizeof err) != DW_OK) {
					log_error("reload failed: %s; keeping the old configuration", err);
					dw_config_free(ncfg);
					(void)apply_settings(cfg, verbose);
					if (dw_agent_new(cfg, &sigstate, &agent, err, sizeof err) != DW_OK) {
						log_error("%s", err);
						status = 1;
						break;
					}
					continue;
				}
				dw_config_free(cfg);
				cfg = ncfg;
				agent = na;
				log_info("configuration reloaded: %zu account(s)", cfg->naccounts);
			}
		}
		log_info("stopping on a signal");
	}
	dw_agent_free(agent);
	dw_config_free(cfg);
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
	fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
	usage_main(stderr);
	return EXIT_USAGE;
}
