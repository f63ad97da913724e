/* log.c - stderr or syslog logging with levels. See dw/log.h. */
#include "dw/log.h"
#include "dw/progress.h"

#include <errno.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

/* Process-wide settings, written once by main before anything logs. */
static int log_level = DW_LOG_INFO;
static int log_syslog;
/* The progress line on stderr, if one is shown (read and written under
 * stderr's lock: notifier threads log too). */
static struct dw_progress *log_progress;

void
dw_log_set_progress(struct dw_progress *p)
{
	flockfile(stderr);
	log_progress = p;
	funlockfile(stderr);
}

void
dw_log_init(int level, int to_syslog, const char *ident)
{
	log_level = level;
	if (log_syslog && !to_syslog)
		closelog(); /* a reload moved the log back to stderr */
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
dw_log(int level, const char *fmt, ...)
{
	static const char *names[] = {"error", "warning", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	int saved = errno;
	if (level > log_level) {
		errno = saved;
		return;
	}
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", msg);
	} else {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
		/* Clear the progress line, log, redraw it; all under stderr's
		 * lock, which the progress functions take too. */
		flockfile(stderr);
		dw_progress_clear(log_progress);
		fprintf(stderr, "%s dmarcwatch[%s]: %s\n", ts, names[level], msg);
		fflush(stderr);
		dw_progress_step(log_progress, 0);
		funlockfile(stderr);
	}
	errno = saved;
}
