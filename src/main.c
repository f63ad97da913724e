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

#include "dw/aggregate.h"
#include "dw/days.h"
#include "dw/importer.h"
#include "dw/ingest.h"
#include "dw/limits.h"
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
	        "\n"
	        "Run 'dmarcwatch COMMAND --help' for a command's options; 'dmarcwatch --version'.\n");
}

static void
usage_parse(FILE *f)
{
	fprintf(f, "usage: dmarcwatch parse [--format json|csv|table] [--no-records] FILE...\n"
	           "  FILE is a report (.xml, .gz, .zip) or a whole mail; the kind is sniffed from the\n"
	           "  content. '-' reads standard input. json prints one object per report per line.\n");
}

static void
usage_import(FILE *f)
{
	fprintf(f, "usage: dmarcwatch import [--db PATH] [--tz ZONE] FILE|DIR...\n"
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
	    {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0}};
	enum dw_format fmt = DW_FMT_JSON;
	int with_records = 1, c;

	while ((c = getopt_long(argc, argv, "f:nhV", opts, NULL)) != -1) {
		switch (c) {
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

	struct dw_limits limits;
	dw_limits_default(&limits);
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
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *db = default_db(), *tz = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "d:z:hV", opts, NULL)) != -1) {
		switch (c) {
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

	struct import_run ir = {0};
	char err[1024];
	dw_limits_default(&ir.limits);
	if (dw_store_open(db, &ir.store, err, sizeof err) != DW_OK) {
		fprintf(stderr, "%s import: %s\n", progname, err);
		return 1;
	}
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
	fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
	usage_main(stderr);
	return EXIT_USAGE;
}
