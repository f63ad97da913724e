/* test_progress.c - the progress line: its text, what it writes (tmpfile,
 * pipe, a real pseudo-terminal), rate limiting, the log hook. */
#define _XOPEN_SOURCE 700 /* posix_openpt */
#include "tap.h"

#include "dw/log.h"
#include "dw/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void
fmt_is(const char *what, uint64_t done, uint64_t total, uint64_t ms, const char *want, const char *name)
{
	char buf[256];
	dw_progress_format(buf, sizeof buf, what, done, total, ms);
	is_str(buf, want, "format: %s", name);
}

static void
test_format(void)
{
	fmt_is("messages", 1234, 0, 500, "dmarcwatch: 1234 messages", "unknown total, under a second");
	fmt_is("messages", 1234, 0, 2000, "dmarcwatch: 1234 messages  617/s", "unknown total: a rate, no ETA");
	fmt_is("messages", 0, 5000, 3000, "dmarcwatch: 0/5000 messages", "0 done: no rate, no ETA");
	fmt_is("messages", 0, 0, 0, "dmarcwatch: 0 messages", "nothing known");
	fmt_is("files", 1234, 5000, 4000, "dmarcwatch: 1234/5000 files  308/s  ETA 0:13", "rate and ETA (ceil)");
	fmt_is("files", 25, 100, 10000, "dmarcwatch: 25/100 files  2.5/s  ETA 0:30", "rate 1..10/s: one decimal");
	fmt_is("messages", 3, 10, 10000, "dmarcwatch: 3/10 messages  18/min  ETA 0:24", "0.3/s shown per minute");
	fmt_is("files", 1, 4, 30000, "dmarcwatch: 1/4 files  2.0/min  ETA 1:30", "0.033/s: one decimal per minute");
	fmt_is("files", 1, 2, 7200000, "dmarcwatch: 1/2 files  0.5/h  ETA 2:00:00", "below 1/min: per hour");
	fmt_is("messages", 100, 1000000, 10000, "dmarcwatch: 100/1000000 messages  10/s  ETA 27:46:30",
	       "ETA in hours: H:MM:SS");
	fmt_is("messages", 1, 1000000, 1000, "dmarcwatch: 1/1000000 messages  1.0/s  ETA >99h", "ETA of 100 h or more");
	fmt_is("messages", 5010, 5010, 16000, "dmarcwatch: 5010/5010 messages  313/s  in 0:16",
	       "done == total: elapsed instead of ETA");
	fmt_is("files", 8, 8, 300, "dmarcwatch: 8/8 files  in 0:00", "done == total under a second");
	fmt_is("messages", 7260, 7260, 3630000, "dmarcwatch: 7260/7260 messages  2.0/s  in 1:00:30",
	       "done == total after an hour");
	fmt_is("messages", 12, 10, 2000, "dmarcwatch: 12/12 messages  6.0/s  in 0:02", "done > total: total follows");

	char small[10];
	memset(small, 'x', sizeof small);
	dw_progress_format(small, sizeof small, "messages", 1, 2, 0);
	is_str(small, "dmarcwatc", "format: cut to the buffer");
	char one[1] = {'x'};
	dw_progress_format(one, 1, "messages", 1, 2, 0);
	is_int(one[0], 0, "format: a 1-byte buffer gets an empty string");
}

/* Everything written to f so far. */
static char *
contents(FILE *f, size_t *n)
{
	fflush(f);
	long end = ftell(f);
	char *s = calloc(1, (size_t)end + 1);
	rewind(f);
	*n = fread(s, 1, (size_t)end, f);
	fseek(f, 0, SEEK_END);
	return s;
}

/* "\r", n spaces, "\r": what clearing a line of n columns writes. */
static const char *
blank(size_t n)
{
	static char b[300];
	snprintf(b, sizeof b, "\r%*s\r", (int)n, "");
	return b;
}

/* s + t, in a static buffer. */
static const char *
cat(const char *s, const char *t)
{
	static char b[1024];
	snprintf(b, sizeof b, "%s%s", s, t);
	return b;
}

static size_t
count_char(const char *s, size_t n, char c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
test_tmpfile(void)
{
	FILE *f = tmpfile();
	size_t n;
	char *s;

	struct dw_progress *p = dw_progress_new(f, "files", 3, 1);
	ok(p != NULL, "forced on a tmpfile: a progress");
	s = contents(f, &n);
	is_int(n, 0, "nothing written on creation");
	free(s);

	dw_progress_step(p, 1);
	s = contents(f, &n);
	is_str(s, "\rdmarcwatch: 1/3 files", "first step draws at once, after a carriage return");
	free(s);

	dw_progress_step(p, 1);
	dw_progress_add_total(p, 0);
	s = contents(f, &n);
	is_str(s, "\rdmarcwatch: 1/3 files", "a step right after is not drawn (rate limit)");
	free(s);

	dw_progress_clear(p);
	s = contents(f, &n);
	is_str(s, cat("\rdmarcwatch: 1/3 files", blank(21)), "clear: \\r, spaces over the line, \\r");
	free(s);
	dw_progress_clear(p);
	s = contents(f, &n);
	is_int(n, 22 + 23, "clearing twice writes nothing more");
	free(s);

	dw_progress_step(p, 0);
	s = contents(f, &n);
	ok(n > 45 && strcmp(s + 45, "\rdmarcwatch: 2/3 files") == 0, "a cleared line is redrawn at once by step(0)");
	free(s);

	sleep_ms(250);
	dw_progress_step(p, 1);
	s = contents(f, &n);
	ok(n > 67 && strcmp(s + 67, "\rdmarcwatch: 3/3 files  in 0:00") == 0, "redrawn after 200 ms: %s",
	   n > 67 ? s + 67 : "");
	free(s);

	dw_progress_done(p);
	s = contents(f, &n);
	ok(n > 0 && s[n - 1] == '\n', "done ends with a newline");
	is_int(count_char(s, n, '\n'), 1, "exactly one newline in all");
	ok(strstr(s, "3/3 files  in 0:00\n") != NULL, "done writes the final line");
	ok(strstr(s, "\033") == NULL, "no escape sequences (dumb terminals)");
	free(s);
	fclose(f);
}

static void
test_rate_limit(void)
{
	FILE *f = tmpfile();
	size_t n;
	struct dw_progress *p = dw_progress_new(f, "messages", 0, 1);
	for (int i = 0; i < 1000; i++) {
		dw_progress_add_total(p, 1);
		dw_progress_step(p, 1);
	}
	char *s = contents(f, &n);
	is_int(count_char(s, n, '\r'), 1, "2000 quick updates draw once");
	free(s);
	sleep_ms(220);
	dw_progress_step(p, 1);
	sleep_ms(220);
	dw_progress_step(p, 1);
	s = contents(f, &n);
	is_int(count_char(s, n, '\r'), 3, "one more draw per 200 ms");
	ok(strstr(s, "\rdmarcwatch: 1002/1000 messages") != NULL || strstr(s, "\rdmarcwatch: 1002/1002 messages"),
	   "the line shows done/total");
	free(s);
	dw_progress_done(p);
	fclose(f);

	/* Nothing to report: not even a final line. */
	f = tmpfile();
	p = dw_progress_new(f, "messages", 0, 1);
	dw_progress_step(p, 0);
	dw_progress_clear(p);
	dw_progress_done(p);
	s = contents(f, &n);
	is_int(n, 0, "an empty pass writes nothing");
	free(s);
	fclose(f);
}

static void
test_pipe(void)
{
	int fds[2];
	if (pipe(fds) != 0) {
		ok(0, "pipe: %s", strerror(errno));
		return;
	}
	FILE *w = fdopen(fds[1], "w");
	ok(dw_progress_new(w, "files", 2, 0) == NULL, "a pipe, not forced: NULL");
	dw_progress_step(NULL, 1);
	dw_progress_add_total(NULL, 1);
	dw_progress_clear(NULL);
	dw_progress_done(NULL);

	struct dw_progress *p = dw_progress_new(w, "files", 2, 1);
	dw_progress_add_total(p, 0);
	dw_progress_clear(p);
	dw_progress_step(p, 2);
	dw_progress_done(p);
	fclose(w);
	char buf[512];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fds[0]);
	char want[512];
	snprintf(want, sizeof want, "\rdmarcwatch: 0/2 files%s%s", blank(21),
	         "\rdmarcwatch: 2/2 files  in 0:00\rdmarcwatch: 2/2 files  in 0:00\n");
	is_str(buf, want, "forced on a pipe: draw, clear, redraw, final line");

	FILE *f = tmpfile();
	ok(dw_progress_new(f, "files", 2, 0) == NULL, "a regular file, not forced: NULL");
	fflush(f);
	is_int(ftell(f), 0, "and nothing written");
	fclose(f);
}

/* A real terminal: shown without force, cut to its width. */
static void
test_pty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
		ok(1, "# SKIP no pseudo-terminal: %s", strerror(errno));
		if (m >= 0)
			close(m);
		return;
	}
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	struct winsize ws = {.ws_row = 24, .ws_col = 20};
	ioctl(s, TIOCSWINSZ, &ws);
	FILE *f = fdopen(s, "w");
	struct dw_progress *p = dw_progress_new(f, "messages", 0, 0);
	ok(p != NULL, "a terminal: a progress without force");
	dw_progress_add_total(p, 5000);
	dw_progress_clear(p);
	dw_progress_done(p);
	fclose(f);
	char buf[512];
	size_t n = 0;
	ssize_t r;
	/* The slave is closed: read until EIO. */
	while (n < sizeof buf - 1 && (r = read(m, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(m);
	/* The terminal turns "\n" into "\r\n" (onlcr). */
	char want[512];
	snprintf(want, sizeof want, "\rdmarcwatch: 0/5000 %s\rdmarcwatch: 0/5000 \r\n", blank(19));
	is_str(buf, want, "a 20-column terminal: lines cut to 19 columns");
}

/* log.c clears the line before a log line and redraws it after. */
static void
test_log_hook(void)
{
	FILE *f = tmpfile();
	int saved = dup(2);
	fflush(stderr);
	dup2(fileno(f), 2);
	dw_log_init(DW_LOG_INFO, 0, "test");
	struct dw_progress *p = dw_progress_new(stderr, "messages", 4, 1);
	dw_log_set_progress(p);
	dw_progress_step(p, 1);
	log_info("hello %d", 42);
	log_debug("not shown");
	dw_log_set_progress(NULL);
	dw_progress_done(p);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	size_t n;
	char *s = contents(f, &n);
	const char *line = "\rdmarcwatch: 1/4 messages";
	const char *clear = blank(24);
	size_t l = strlen(line), c = strlen(clear);
	ok(n > l + c && memcmp(s, line, l) == 0 && memcmp(s + l, clear, c) == 0, "log: the line is cleared first");
	char *log = s + l + c;
	char *nl = strchr(log, '\n');
	ok(nl != NULL && strstr(log, " dmarcwatch[info]: hello 42\n") == nl - strlen(" dmarcwatch[info]: hello 42"),
	   "log: then the log line, on a clean line");
	ok(nl != NULL && strncmp(nl + 1, line, l) == 0, "log: then the line is redrawn");
	ok(nl != NULL && strcmp(nl + 1 + l, "\rdmarcwatch: 1/4 messages\n") == 0, "log: done ends it with a newline");
	is_int(count_char(s, n, '\n'), 2, "log: two newlines (the log line, the end)");
	free(s);
	fclose(f);
}

int
main(void)
{
	test_format();
	test_tmpfile();
	test_rate_limit();
	test_pipe();
	test_pty();
	test_log_hook();
	return done_testing();
}
