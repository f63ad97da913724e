/*
 * exec.c - the `exec` notifier: run a program per notification, the
 * notification's JSON on its standard input.
 *
 *   notifiers:
 *     - name: pager
 *       plugin: exec
 *       command: [/usr/local/bin/page-oncall, --team, mail]  # argv; [0] absolute
 *       env: ["PAGER_URL=https://pager.example/api"]         # optional NAME=value
 *       cwd: /var/lib/dmarcwatch                             # optional (default /)
 *       timeout: 30s                                         # the host key
 *
 * THE CHILD
 *   - argv is exactly `command` (no shell, no PATH search, no expansion of
 *     any kind: "$(x)" or "*" arrive as those characters).
 *   - Environment, and nothing else from the agent's: PATH=/usr/bin:/bin,
 *     LANG=C.UTF-8, the `env` entries (which may replace PATH and LANG),
 *     then DMARCWATCH_KIND (alert, resolved, digest, test),
 *     DMARCWATCH_SEVERITY (info, warning, critical),
 *     DMARCWATCH_IDEMPOTENCY_KEY, DMARCWATCH_ATTEMPT (1, 2, ...) and, when
 *     set, DMARCWATCH_RULE and DMARCWATCH_DOMAIN.
 *   - stdin: the notification's JSON form (include/dw/notification_json.h,
 *     README "Notification JSON"), attachment bytes in data_base64, then
 *     EOF. A command need not read it.
 *   - stdout and stderr are captured (the first 4 KiB of each is kept, the
 *     rest read and dropped); stdout's first line is logged at debug level,
 *     stderr's first line at info level after a success and in the error
 *     after a failure.
 *   - Its own process group, working directory `cwd` (default /), every
 *     other file descriptor of the agent closed, signal mask emptied and
 *     dispositions reset to default (the agent ignores SIGPIPE; an ignored
 *     signal would otherwise survive exec), umask inherited.
 *   - It runs as the agent's user. The agent refuses to run as root, so the
 *     command never does; keep the script non-writable by others.
 *
 * THE OUTCOME
 *   exit 0                  delivered
 *   exit 75 (EX_TEMPFAIL)   retried later
 *   any other exit status   failed for good (dead letter), with stderr's
 *                           first line in the error
 *   killed by a signal      retried
 *   still running at the notifier's timeout: the process group gets SIGTERM
 *   min(2 s, timeout/4) before the timeout and SIGKILL at the timeout, so
 *   that notify() returns within it; retried ("timed out after N s").
 *   A command that cannot be started (missing, not executable, bad cwd)
 *   fails for good; fork() or pipe() failures are retried.
 *
 * Threads: notify() runs in a delivery thread of a multithreaded agent, so
 * between fork() and execve() the child only makes async-signal-safe calls
 * on memory prepared before the fork.
 */
#define _GNU_SOURCE /* pipe2, F_DUPFD_CLOEXEC on older libcs */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dw/notification_json.h"
#include "plugutil.h"

#define CAPTURE_MAX 4096
#define EX_TEMPFAIL_CODE 75

struct ex {
	const struct dw_host *host;
	char **argv; /* NULL-terminated copies of command */
	char **env;  /* NULL-terminated copies of env entries */
	size_t nenv;
	char *cwd;
};

static const char *const known_keys[] = {"command", "env", "cwd", NULL};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void
free_vec(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static void
ex_shutdown(void *state)
{
	struct ex *x = state;
	if (x == NULL)
		return;
	free_vec(x->argv);
	free_vec(x->env);
	free(x->cwd);
	free(x);
}

/* Copies of every value of key, NULL-terminated; *count gets how many. */
static char **
collect(const struct dw_kv *cfg, size_t n, const char *key, size_t *count)
{
	size_t c = pu_count(cfg, n, key), k = 0;
	char **v = calloc(c + 1, sizeof *v);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg[i].key, key) != 0)
			continue;
		if ((v[k++] = strdup(cfg[i].value)) == NULL) {
			free_vec(v);
			return NULL;
		}
	}
	*count = c;
	return v;
}

/* Length of the NAME in "NAME=value", or 0 when it is not a valid name. */
static size_t
env_name_len(const char *s)
{
	size_t i = 0;
	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
	       s[i] == '_')
		i++;
	return s[i] == '=' ? i : 0;
}

static int
check_config(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg)
{
	int bad = 0;
	const struct dw_kv *first = NULL;
	for (size_t i = 0; i < ncfg && first == NULL; i++)
		if (strcmp(cfg[i].key, "command") == 0)
			first = &cfg[i];
	if (first == NULL) {
		host->config_error(host, NULL, "command: required, a list: [/absolute/path/to/program, arg, ...]");
		return -1;
	}
	struct stat st;
	if (first->value[0] != '/') {
		host->config_error(host, first,
		                   "the program must be an absolute path (it is run without a shell or PATH "
		                   "search): e.g. [/usr/local/bin/notify, --flag]");
		bad = -1;
	} else if (stat(first->value, &st) != 0) {
		host->config_error(host, first, "%s: %s", first->value, strerror(errno));
		bad = -1;
	} else if (!S_ISREG(st.st_mode) || access(first->value, X_OK) != 0) {
		host->config_error(host, first, "%s: not an executable file (chmod +x?)", first->value);
		bad = -1;
	}
	for (size_t i = 0; i < ncfg; i++) {
		if (strcmp(cfg[i].key, "env") != 0)
			continue;
		size_t nl = env_name_len(cfg[i].value);
		if (nl == 0) {
			host->config_error(host, &cfg[i], "expected NAME=value with NAME made of letters, digits and _");
			bad = -1;
		} else if (strncmp(cfg[i].value, "DMARCWATCH_", 11) == 0) {
			host->config_error(host, &cfg[i],
			                   "DMARCWATCH_* variables are set by the plugin; use another name");
			bad = -1;
		} else {
			for (size_t j = 0; j < i; j++)
				if (strcmp(cfg[j].key, "env") == 0 && strncmp(cfg[j].value, cfg[i].value, nl + 1) == 0) {
					host->config_error(host, &cfg[i], "%.*s is already set on line %u", (int)nl,
					                   cfg[i].value, cfg[j].line);
					bad = -1;
				}
		}
	}
	const struct dw_kv *cwd = pu_kv(cfg, ncfg, "cwd");
	if (pu_single(host, cfg, ncfg, "cwd") != 0)
		bad = -1;
	else if (cwd != NULL && (cwd->value[0] != '/' || stat(cwd->value, &st) != 0 || !S_ISDIR(st.st_mode))) {
		host->config_error(host, cwd, "expected the absolute path of an existing directory");
		bad = -1;
	}
	return bad;
}

static int
ex_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state, char *err,
        size_t errlen)
{
	if (pu_check_keys(host, cfg, ncfg, known_keys) != 0 || check_config(host, cfg, ncfg) != 0)
		return -1;
	struct ex *x = calloc(1, sizeof *x);
	size_t argc = 0;
	if (x == NULL || (x->argv = collect(cfg, ncfg, "command", &argc)) == NULL ||
	    (x->env = collect(cfg, ncfg, "env", &x->nenv)) == NULL ||
	    (x->cwd = strdup(pu_get(cfg, ncfg, "cwd") != NULL ? pu_get(cfg, ncfg, "cwd") : "/")) == NULL) {
		ex_shutdown(x);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->host = host;
	*state = x;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Running the command                                                 */

/* The child's environment: defaults, configured entries, DMARCWATCH_*. */
static char **
make_env(const struct ex *x, const struct dw_notification *n)
{
	char **e = calloc(x->nenv + 10, sizeof *e);
	size_t k = 0;
	if (e == NULL)
		return NULL;
	static const char *const defaults[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
	for (size_t d = 0; defaults[d] != NULL; d++) {
		size_t nl = strcspn(defaults[d], "=") + 1, i = 0;
		while (i < x->nenv && strncmp(x->env[i], defaults[d], nl) != 0)
			i++;
		if (i == x->nenv && (e[k++] = strdup(defaults[d])) == NULL)
			goto oom;
	}
	for (size_t i = 0; i < x->nenv; i++)
		if ((e[k++] = strdup(x->env[i])) == NULL)
			goto oom;
	const char *names[] = {"KIND", "SEVERITY", "IDEMPOTENCY_KEY", "RULE", "DOMAIN"};
	const char *vals[] = {dw_notify_kind_name(n->kind), dw_severity_name(n->severity),
	                      n->idempotency_key != NULL ? n->idempotency_key : "", n->rule, n->domain};
	for (size_t i = 0; i < 5; i++) {
		if (vals[i] == NULL)
			continue;
		size_t len = strlen(names[i]) + strlen(vals[i]) + 13;
		if ((e[k] = malloc(len)) == NULL)
			goto oom;
		snprintf(e[k++], len, "DMARCWATCH_%s=%s", names[i], vals[i]);
	}
	if ((e[k] = malloc(32)) == NULL)
		goto oom;
	snprintf(e[k++], 32, "DMARCWATCH_ATTEMPT=%u", (unsigned)n->attempt);
	return e;
oom:
	free_vec(e);
	return NULL;
}

/* A close-on-exec pipe whose ends are not 0, 1 or 2 (the child dup2()s
 * onto those; dup2(fd, fd) would keep close-on-exec set). */
static int
pipe_hi(int p[2])
{
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (p[i] > 2)
			continue;
		int hi = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
		if (hi < 0) {
			close(p[0]);
			close(p[1]);
			return -1;
		}
		close(p[i]);
		p[i] = hi;
	}
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* What the child reports when it cannot exec. */
struct child_err {
	int stage; /* 1 chdir, 2 execve, 3 setup */
	int err;
};

/* Everything the child needs, prepared before fork(). */
struct spawn {
	char *const *argv;
	char *const *envp;
	const char *cwd;
	int in, out, err, report; /* child ends */
	int maxfd;                /* for the close loop when close_range is missing */
};

/* Close fds lo..hi (in the child: close_range(2), else one by one up to
 * loop_max). */
static void
close_fds(unsigned lo, unsigned hi, int loop_max)
{
	if (lo > hi)
		return;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lo, hi, 0U) == 0)
		return;
#endif
	for (unsigned fd = lo; fd <= hi && fd <= (unsigned)loop_max; fd++)
		close((int)fd);
}

/* In the child: async-signal-safe calls only. Never returns. */
static void
child(const struct spawn *sp)
{
	struct child_err ce = {3, 0};
	sigset_t none;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigemptyset(&none);
	setpgid(0, 0);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* EINVAL for the libc's internal ones: fine */
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(sp->in, 0) < 0 || dup2(sp->out, 1) < 0 || dup2(sp->err, 2) < 0)
		goto fail;
	/* Close everything else but the report pipe (close-on-exec). */
	close_fds(3, (unsigned)sp->report - 1, sp->maxfd);
	close_fds((unsigned)sp->report + 1, ~0U, sp->maxfd);
	ce.stage = 1;
	if (chdir(sp->cwd) != 0)
		goto fail;
	ce.stage = 2;
	execve(sp->argv[0], sp->argv, sp->envp);
fail:
	ce.err = errno;
	while (write(sp->report, &ce, sizeof ce) < 0 && errno == EINTR)
		;
	_exit(127);
}

/* A captured stream: the first CAPTURE_MAX bytes. */
static void
drain(int *fd, struct pu_buf *b)
{
	char buf[16384];
	for (;;) {
		ssize_t r = read(*fd, buf, sizeof buf);
		if (r > 0) {
			if (pu_buf_add(b, buf, (size_t)r) != 0)
				b->truncated = 1; /* out of memory: keep what we have */
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			close_fd(fd);
		return;
	}
}

/* Write what the child's stdin takes now. SIGPIPE is blocked around the
 * write (and a pending one consumed) so that a child that exits without
 * reading cannot kill the agent even if SIGPIPE were not ignored. */
static void
feed(int *fd, const char *data, size_t len, size_t *off)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	while (*off < len) {
		size_t chunk = len - *off < 65536 ? len - *off : 65536;
		ssize_t w = write(*fd, data + *off, chunk);
		if (w > 0) {
			*off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EPIPE: the child closed its stdin; it need not read it. */
		if (!was_pending) {
			struct timespec zero = {0, 0};
			sigtimedwait(&pipe_set, NULL, &zero);
		}
		*off = len;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (*off >= len)
		close_fd(fd);
}

/* The first line of a capture, printable, at most 200 bytes ("" if none). */
static const char *
first_line(const struct pu_buf *b, char *out, size_t outlen)
{
	size_t o = 0, i = 0;
	while (i < b->len && (b->p[i] == '\n' || b->p[i] == '\r'))
		i++;
	for (; i < b->len && o + 1 < outlen && o < 200; i++) {
		unsigned char c = (unsigned char)b->p[i];
		if (c == '\n' || c == '\r')
			break;
		out[o++] = c >= 0x20 && c != 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
	return out;
}

/* Kill the child's process group (the child alone if that fails). */
static void
kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) != 0)
		kill(pid, sig);
}

static int
ex_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct ex *x = state;
	const struct dw_host *host = x->host;
	const char *prog = x->argv[0];
	unsigned timeout = host->timeout_ms > 0 ? host->timeout_ms : 30000;
	int64_t start = pu_mono_ms(), deadline = start + timeout;
	int64_t term_at = deadline - (timeout / 4 < 2000 ? timeout / 4 : 2000);
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1}, pidfd = -1;
	struct pu_buf cout = {.max = CAPTURE_MAX}, cerr = {.max = CAPTURE_MAX};
	struct child_err ce = {0, 0};
	size_t ce_got = 0, off = 0;
	int rc = DW_NOTIFY_RETRY, status = 0, reaped = 0, termed = 0, killed = 0;
	char line[256];
	(void)retry_after;

	char *json = dw_notification_to_json(n, 0);
	char **envp = make_env(x, n);
	if (json == NULL || envp == NULL) {
		snprintf(err, errlen, "exec %s: out of memory while preparing the notification", prog);
		goto out;
	}
	size_t jlen = strlen(json);
	if (pipe_hi(in) != 0 || pipe_hi(out) != 0 || pipe_hi(errp) != 0 || pipe_hi(rep) != 0) {
		snprintf(err, errlen, "exec %s: cannot create pipes: %s", prog, strerror(errno));
		goto out;
	}
	struct rlimit rl;
	struct spawn sp = {.argv = x->argv, .envp = envp, .cwd = x->cwd, .in = in[0], .out = out[1],
	                   .err = errp[1], .report = rep[1], .maxfd = 65535};
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
		sp.maxfd = (int)rl.rlim_cur - 1;

	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "exec %s: cannot fork: %s", prog, strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(&sp);
	setpgid(pid, pid); /* also here: a kill of the group must not race the child's own */
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&errp[1]);
	close_fd(&rep[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif

	/* Feed stdin, capture output, until the child exits (or time is up).
	 * Its exit ends the wait: a grandchild holding the pipes open must
	 * not keep us here. */
	while (!reaped) {
		int64_t now = pu_mono_ms();
		if (now >= term_at && !termed) {
			kill_group(pid, SIGTERM);
			termed = 1;
		}
		if (now >= deadline) {
			kill_group(pid, SIGKILL);
			killed = 1;
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			reaped = 1;
			break;
		}
		struct pollfd p[5];
		int np = 0, i_in = -1, i_out = -1, i_err = -1, i_rep = -1, i_pid = -1;
		if (in[1] >= 0)
			i_in = np, p[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		if (out[0] >= 0)
			i_out = np, p[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
		if (errp[0] >= 0)
			i_err = np, p[np++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
		if (rep[0] >= 0)
			i_rep = np, p[np++] = (struct pollfd){.fd = rep[0], .events = POLLIN};
		if (pidfd >= 0)
			i_pid = np, p[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		int64_t wake = (termed ? deadline : term_at) - now;
		if (pidfd < 0 && wake > 20)
			wake = 20; /* no pidfd: look at the child every 20 ms */
		if (wake > 60000)
			wake = 60000;
		int r = poll(p, (nfds_t)np, (int)wake);
		if (r < 0 && errno != EINTR) {
			snprintf(err, errlen, "exec %s: poll: %s", prog, strerror(errno));
			kill_group(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			goto out;
		}
		if (r > 0 && i_in >= 0 && p[i_in].revents != 0)
			feed(&in[1], json, jlen, &off);
		if (r > 0 && i_out >= 0 && p[i_out].revents != 0)
			drain(&out[0], &cout);
		if (r > 0 && i_err >= 0 && p[i_err].revents != 0)
			drain(&errp[0], &cerr);
		if (r > 0 && i_rep >= 0 && p[i_rep].revents != 0) {
			ssize_t got = read(rep[0], (char *)&ce + ce_got, sizeof ce - ce_got);
			if (got > 0)
				ce_got += (size_t)got;
			else if (got == 0 || errno != EINTR)
				close_fd(&rep[0]);
		}
		if (pidfd < 0 || (i_pid >= 0 && p[i_pid].revents != 0)) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				reaped = 1;
			else if (w < 0 && errno != EINTR) {
				snprintf(err, errlen, "exec %s: cannot wait for the command: %s (is SIGCHLD ignored?)",
				         prog, strerror(errno));
				kill_group(pid, SIGKILL);
				goto out;
			}
		}
	}
	/* What the child wrote before exiting is in the pipes now. */
	if (out[0] >= 0)
		drain(&out[0], &cout);
	if (errp[0] >= 0)
		drain(&errp[0], &cerr);
	if (rep[0] >= 0 && ce_got < sizeof ce) {
		ssize_t got = read(rep[0], (char *)&ce + ce_got, sizeof ce - ce_got);
		if (got > 0)
			ce_got += (size_t)got;
	}

	double secs = (double)(pu_mono_ms() - start) / 1000.0;
	if (ce_got == sizeof ce) {
		static const char *const stage[] = {"", "cannot change to the directory", "cannot run",
		                                    "cannot set up"};
		int temp = ce.err == EAGAIN || ce.err == ENOMEM || ce.err == EMFILE || ce.err == ENFILE;
		snprintf(err, errlen, "exec: %s %s: %s%s", stage[ce.stage >= 1 && ce.stage <= 3 ? ce.stage : 3],
		         ce.stage == 1 ? x->cwd : prog, strerror(ce.err), temp ? "" : " (fix the configuration)");
		rc = temp ? DW_NOTIFY_RETRY : DW_NOTIFY_FAIL;
	} else if (termed || killed) {
		snprintf(err, errlen,
		         "exec %s: timed out after %u s and was %s (raise the notifier's timeout if it needs longer)", prog, (timeout + 999) / 1000, killed ? "killed" : "terminated");
		rc = DW_NOTIFY_RETRY;
	} else if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "exec %s: killed by signal %d after %.1f s%s%s", prog, WTERMSIG(status), secs,
		         cerr.len > 0 ? ": " : "", first_line(&cerr, line, sizeof line));
		rc = DW_NOTIFY_RETRY;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (cout.len > 0)
			host->log(host, DW_LOG_DEBUG, "%s printed: %s", prog, first_line(&cout, line, sizeof line));
		if (cerr.len > 0)
			host->log(host, DW_LOG_INFO, "%s said on stderr: %s", prog, first_line(&cerr, line, sizeof line));
		rc = DW_NOTIFY_OK;
	} else {
		int code = WEXITSTATUS(status);
		first_line(&cerr, line, sizeof line);
		snprintf(err, errlen, "exec %s: exited with status %d%s: %s", prog, code,
		         code == EX_TEMPFAIL_CODE ? " (EX_TEMPFAIL, will retry)" : "",
		         line[0] != '\0' ? line : "(nothing on stderr)");
		rc = code == EX_TEMPFAIL_CODE ? DW_NOTIFY_RETRY : DW_NOTIFY_FAIL;
	}
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	close_fd(&rep[0]);
	close_fd(&rep[1]);
	close_fd(&pidfd);
	pu_buf_free(&cout);
	pu_buf_free(&cerr);
	free_vec(envp);
	free(json);
	return rc;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "exec", .version = "1.0",
                     .description = "run a program with the notification's JSON on its standard input",
                     .init = ex_init, .notify = ex_notify, .shutdown = ex_shutdown);
