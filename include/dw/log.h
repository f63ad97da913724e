/*
 * log.h - logging for the agent, after OpenSMTPD's log.c: stderr in the
 * foreground, syslog (LOG_MAIL) when configured. Levels: error, warning,
 * info, debug. errno is saved and restored. Library stages never log; the
 * agent loop and main do.
 *
 * The log settings are process-wide (set once by main, like the time zone).
 * Never pass secrets (passwords, tokens, webhook URLs) to these functions.
 */
#ifndef DW_LOG_H
#define DW_LOG_H

#include "dw/util.h"

/* The same values and guard as the plugin header's host->log() levels. */
#ifndef DW_LOG_LEVELS_DEFINED
#define DW_LOG_LEVELS_DEFINED
enum dw_log_level { DW_LOG_ERROR = 0, DW_LOG_WARNING = 1, DW_LOG_INFO = 2, DW_LOG_DEBUG = 3 };
#endif

/* to_syslog: openlog(ident, LOG_PID, LOG_MAIL). */
void dw_log_init(int level, int to_syslog, const char *ident);
void dw_log(int level, const char *fmt, ...) DW_PRINTF(2, 3);
/* A progress line shown on stderr (dw/progress.h; borrowed, NULL for none):
 * every log line to stderr clears it first and redraws it after. Set it
 * back to NULL before dw_progress_done. */
struct dw_progress;
void dw_log_set_progress(struct dw_progress *p);
#define log_error(...) dw_log(DW_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) dw_log(DW_LOG_WARNING, __VA_ARGS__)
#define log_info(...) dw_log(DW_LOG_INFO, __VA_ARGS__)
#define log_debug(...) dw_log(DW_LOG_DEBUG, __VA_ARGS__)

#endif
