/*
 * progress.c - the one-line progress report of backfills. See dw/progress.h.
 *
 * The line is redrawn with a carriage return and cleared by overwriting it
 * with spaces: no escape sequences, so it works on any terminal, dumb ones
 * included. Lines longer than the terminal is wide would wrap and defeat
 * the carriage return, so they are cut to the width seen at creation.
 *
 * Threads: the agent's notifier workers log while the main thread steps the
 * line. Every function here holds the stream's own lock (flockfile) while
 * it reads or writes the state, and log.c holds the same lock around
 * "clear, write the log line, redraw", so a log line never lands in the
 * middle of a progress line. stdio locks are recursive, which makes the
 * nesting safe.
 *
 * dw_progress_step(p, 0) redraws a line that was cleared (and nothing
 * else): log.c uses it after each log line.
 */
#include "dw/progress.h"
#include "dw/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_MS 200
#define LINE_MAX_BYTES 256

struct dw_progress {
	FILE *f;            /* borrowed */
	char what[32];      /* "messages", "files" */
	uint64_t done, total;
	uint64_t start_ms;  /* monotonic clock at creation */
	uint64_t drawn_ms;  /* monotonic clock at the last draw */
	int drawn;          /* drawn at least once */
	int shown;          /* the line is on the screen now */
	size_t width;       /* columns the line on the screen takes */
	size_t cols;        /* terminal width; 0 unknown */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...) DW_PRINTF(4, 5);

/* Append to buf at *pos, never past len (snprintf semantics). */
static void
put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	if (*pos >= len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos = (size_t)n >= len - *pos ? len - 1 : *pos + (size_t)n;
}

/* A duration: "M:SS" below an hour, "H:MM:SS" from there. */
static void
put_duration(char *buf, size_t len, size_t *pos, uint64_t s)
{
	if (s < 3600)
		put(buf, len, pos, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
	else
		put(buf, len, pos, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
}

void
dw_progress_format(char *buf, size_t len, const char *what, uint64_t done, uint64_t total, uint64_t elapsed_ms)
{
	size_t pos = 0;
	if (len == 0)
		return;
	buf[0] = '\0';
	/* The total may lag behind (a message listed after the count): never
	 * show more done than there is. */
	if (total > 0 && done > total)
		total = done;
	if (total > 0)
		put(buf, len, &pos, "dmarcwatch: %" PRIu64 "/%" PRIu64 " %s", done, total, what);
	else
		put(buf, len, &pos, "dmarcwatch: %" PRIu64 " %s", done, what);

	/* A rate over less than a second says little: wait for one. */
	if (done > 0 && elapsed_ms >= 1000) {
		double rate = (double)done * 1000.0 / (double)elapsed_ms; /* per second */
		if (rate >= 9.95)
			put(buf, len, &pos, "  %.0f/s", rate);
		else if (rate >= 0.995)
			put(buf, len, &pos, "  %.1f/s", rate);
		else if (rate * 60 >= 9.95)
			put(buf, len, &pos, "  %.0f/min", rate * 60);
		else if (rate * 60 >= 0.995)
			put(buf, len, &pos, "  %.1f/min", rate * 60);
		else
			put(buf, len, &pos, "  %.1f/h", rate * 3600);
		if (total > done) {
			double eta = ceil((double)(total - done) * (double)elapsed_ms / (double)done / 1000.0);
			put(buf, len, &pos, "  ETA ");
			if (eta >= 100.0 * 3600)
				put(buf, len, &pos, ">99h");
			else
				put_duration(buf, len, &pos, (uint64_t)eta);
		}
	}
	if (total > 0 && done == total) {
		put(buf, len, &pos, "  in ");
		put_duration(buf, len, &pos, elapsed_ms / 1000);
	}
}

struct dw_progress *
dw_progress_new(FILE *f, const char *what, uint64_t total, int force)
{
	if (f == NULL || (!force && !isatty(fileno(f))))
		return NULL;
	struct dw_progress *p = xcalloc(1, sizeof *p);
	p->f = f;
	snprintf(p->what, sizeof p->what, "%s", what ? what : "items");
	p->total = total;
	p->start_ms = now_ms();
	struct winsize ws;
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		p->cols = ws.ws_col;
	return p;
}

/* Is there anything worth a line yet? An empty pass shows nothing. */
static int
active(const struct dw_progress *p)
{
	return p->drawn || p->done > 0 || p->total > 0;
}

/* Write the line over the one on the screen (locked by the caller). */
static void
draw(struct dw_progress *p, uint64_t now)
{
	char line[LINE_MAX_BYTES];
	dw_progress_format(line, sizeof line, p->what, p->done, p->total, now - p->start_ms);
	size_t n = strlen(line);
	/* The line is ASCII: bytes are columns. Keep the last column free so
	 * the cursor never wraps. */
	if (p->cols > 1 && n > p->cols - 1)
		line[n = p->cols - 1] = '\0';
	fputc('\r', p->f);
	fputs(line, p->f);
	if (p->shown && p->width > n) {
		/* Blank the tail of a longer line drawn before. */
		for (size_t i = n; i < p->width; i++)
			fputc(' ', p->f);
		fputc('\r', p->f);
		fputs(line, p->f);
	}
	fflush(p->f);
	p->width = n;
	p->shown = 1;
	p->drawn = 1;
	p->drawn_ms = now;
}

/* Redraw when the line is not on the screen, or at most every REDRAW_MS. */
static void
update(struct dw_progress *p)
{
	if (!active(p))
		return;
	uint64_t now = now_ms();
	if (!p->shown || now - p->drawn_ms >= REDRAW_MS)
		draw(p, now);
}

void
dw_progress_add_total(struct dw_progress *p, uint64_t more)
{
	if (p == NULL)
		return;
	flockfile(p->f);
	p->total += more;
	update(p);
	funlockfile(p->f);
}

void
dw_progress_step(struct dw_progress *p, uint64_t done_more)
{
	if (p == NULL)
		return;
	flockfile(p->f);
	p->done += done_more;
	update(p);
	funlockfile(p->f);
}

void
dw_progress_clear(struct dw_progress *p)
{
	if (p == NULL)
		return;
	flockfile(p->f);
	if (p->shown) {
		fputc('\r', p->f);
		for (size_t i = 0; i < p->width; i++)
			fputc(' ', p->f);
		fputc('\r', p->f);
		fflush(p->f);
		p->shown = 0;
		p->width = 0;
	}
	funlockfile(p->f);
}

void
dw_progress_done(struct dw_progress *p)
{
	if (p == NULL)
		return;
	flockfile(p->f);
	if (active(p)) {
		draw(p, now_ms());
		fputc('\n', p->f);
		fflush(p->f);
	}
	funlockfile(p->f);
	free(p);
}
