/*
 * progress.h - a one-line progress report for backfills, on a terminal only.
 *
 * `run --once` and `import` over thousands of messages show
 *   "dmarcwatch: 1234/5000 messages  310/s  ETA 0:12"
 * redrawn in place on stderr (carriage return, at most a few times a
 * second) when stderr is a TTY, and nothing at all otherwise (journald and
 * log files see only log lines). Log lines written while a progress line is
 * shown must clear it first: dw_progress_clear(), then log, and the next
 * update redraws it.
 */
#ifndef DW_PROGRESS_H
#define DW_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct dw_progress;

/* A progress line on f, shown only if isatty(fileno(f)) (or force != 0,
 * for tests). what: "messages", "files". total 0 = unknown yet. Returns
 * NULL when nothing will be shown; every function accepts NULL. */
struct dw_progress *dw_progress_new(FILE *f, const char *what, uint64_t total, int force);
void dw_progress_add_total(struct dw_progress *p, uint64_t more); /* total grows (a new folder) */
void dw_progress_step(struct dw_progress *p, uint64_t done_more);  /* redraws at most every 200 ms */
void dw_progress_clear(struct dw_progress *p);                     /* erase the line (before logging) */
void dw_progress_done(struct dw_progress *p);                      /* final line + newline; frees */

/* The line itself, for tests: done/total after elapsed_ms. */
void dw_progress_format(char *buf, size_t len, const char *what, uint64_t done, uint64_t total,
                        uint64_t elapsed_ms);

#endif
