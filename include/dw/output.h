/*
 * output.h - printing for the command line: the `parse` printer (a
 * dw_ingest_cb consumer writing JSON lines, CSV or a table) and the
 * `report` printer for aggregates. All JSON is produced by jansson.
 *
 * Records are spooled to an unlinked temporary file as they stream by, so
 * the printer's memory stays flat and a report that fails half-way prints
 * nothing but its error line.
 */
#ifndef DW_OUTPUT_H
#define DW_OUTPUT_H

#include <stdio.h>

#include "dw/aggregate.h"
#include "dw/ingest.h"

enum dw_format { DW_FMT_JSON = 1, DW_FMT_CSV, DW_FMT_TABLE };

/* Parse "json" / "csv" / "table"; returns 0 if unknown. */
enum dw_format dw_format_parse(const char *s);

struct dw_printer;

struct dw_printer *dw_printer_new(FILE *out, enum dw_format fmt, int with_records);
void dw_printer_free(struct dw_printer *p);
/* The consumer callbacks; ctx is the printer. */
extern const struct dw_ingest_cb dw_printer_cb;
/* The FILE argument as given, used as "source" in the output. */
void dw_printer_set_source(struct dw_printer *p, const char *source);
/* Print the line for a source that yielded no report. */
void dw_printer_item_error(struct dw_printer *p, const char *source, const char *reason);
/* Number of documents that failed so far. */
unsigned dw_printer_failures(const struct dw_printer *p);
/* Flush; returns DW_E_SYS on a write error (e.g. a full disk or closed pipe). */
int dw_printer_finish(struct dw_printer *p, char *err, size_t errlen);

/* Print aggregates (`dmarcwatch report`). */
int dw_print_aggregate(FILE *out, enum dw_format fmt, enum dw_agg_by by, const struct dw_agg_result *res);

#endif
