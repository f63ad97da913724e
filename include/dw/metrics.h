/*
 * metrics.h - the agent's figures in Prometheus text format.
 *
 * After every pass the agent asks for a fresh snapshot: the figures are
 * read from the state database (messages by verdict per account, reports
 * stored, duplicates, parse errors by reason, outbox pending/dead per
 * notifier, open alerts, last digest time, per-account last successful
 * pass) and rendered as Prometheus text exposition format 0.0.4. With
 * metrics_file: the text is written atomically (temporary file in the same
 * directory, fsync, rename), the node_exporter textfile collector
 * convention. With metrics_listen: HOST:PORT a small HTTP/1.0 server
 * thread serves the latest snapshot at GET /metrics (anything else: 404 or
 * 405), one connection at a time with a short timeout, so a slow scraper
 * never stalls the agent. The snapshot is swapped under a mutex.
 *
 * Not here: pushing to a gateway, TLS, authentication (bind to loopback,
 * or put a proxy in front).
 */
#ifndef DW_METRICS_H
#define DW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dw/config.h"

struct dw_metrics;

/*
 * Prepare metrics for cfg (borrowed; must outlive m). Starts the HTTP
 * listener when cfg->metrics_listen is set (a bind failure is an error
 * naming the address). When neither metrics_file nor metrics_listen is set,
 * *out is set to NULL and DW_OK returned: every other call accepts NULL.
 */
int dw_metrics_new(const struct dw_config *cfg, struct dw_metrics **out, char *err, size_t errlen);

/*
 * Read the figures from the database at cfg's db_path, render them, write
 * metrics_file (if set) and publish the text to the listener (if any).
 * now: seconds UTC. Returns DW_OK or an error naming the file/database.
 */
int dw_metrics_update(struct dw_metrics *m, int64_t now, char *err, size_t errlen);

/* Render the current figures of the database at db_path into a malloc'd
 * string (tests, and `dmarcwatch metrics` if ever added). */
int dw_metrics_render(const char *db_path, int64_t now, char **out, char *err, size_t errlen);

/* The port actually bound (metrics_listen with port 0 picks one), or 0. */
unsigned dw_metrics_port(const struct dw_metrics *m);

/* Check a metrics_listen value: "A.B.C.D:PORT" or "[IPv6]:PORT", port
 * 0..65535 (0: any free port), addresses only (no name lookup). DW_OK, or
 * DW_E_CONFIG with what is wrong in err (the configuration loader adds
 * FILE:LINE:COL). */
int dw_metrics_check_listen(const char *spec, char *err, size_t errlen);

void dw_metrics_free(struct dw_metrics *m); /* stops the listener; NULL-safe */

#endif
