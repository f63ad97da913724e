/*
 * test_sdnotify.c - src/sdnotify.c against real unix datagram sockets: a
 * path in a temp dir and an abstract "@name", the exact bytes received and
 * the sender's credentials (what systemd checks), $NOTIFY_SOCKET unset,
 * sockets that are not there, addresses we refuse, and a full queue that
 * must fail at once instead of blocking.
 */
#define _GNU_SOURCE /* struct ucred, SCM_CREDENTIALS */
#include "dw/sdnotify.h"
#include "dw/util.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/dw_sdn_XXXXXX";

/* A receiving socket like the one systemd listens on: credentials passed,
 * non-blocking so a missing datagram shows as EAGAIN. */
static int
listener(const char *addr)
{
	struct sockaddr_un sa;
	socklen_t len;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t n = strlen(addr);
	if (addr[0] == '@') {
		memcpy(sa.sun_path + 1, addr + 1, n - 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		memcpy(sa.sun_path, addr, n + 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
		printf("Bail out! cannot set up a datagram socket at %s: %s\n", addr, strerror(errno));
		exit(1);
	}
	return fd;
}

/* One datagram: its bytes into buf (NUL-terminated), the sender's pid in
 * *pid. Returns its length, or -1 with errno (EAGAIN: nothing came). */
static ssize_t
receive(int fd, char *buf, size_t size, pid_t *pid)
{
	struct iovec iov = {.iov_base = buf, .iov_len = size - 1};
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return -1;
	buf[(size_t)n < size - 1 ? (size_t)n : size - 1] = '\0';
	*pid = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;
			memcpy(&cred, CMSG_DATA(c), sizeof cred);
			*pid = cred.pid;
		}
	return n;
}

static void
test_path(void)
{
	char *addr = xasprintf("%s/notify", tmpdir);
	int fd = listener(addr);
	char err[512] = "", buf[8192];
	pid_t pid;
	const char *msg = "READY=1\nSTATUS=watching 2 accounts";

	is_int(dw_sd_notify_to(addr, msg, err, sizeof err), 1, "path: sent");
	ssize_t n = receive(fd, buf, sizeof buf, &pid);
	is_int(n, (ssize_t)strlen(msg), "path: one datagram of exactly the state's length");
	is_str(buf, msg, "path: the bytes received are the state, no terminator added");
	is_int(pid, getpid(), "path: the kernel names us as the sender");
	is_int(receive(fd, buf, sizeof buf, &pid), -1, "path: and nothing else arrived");

	/* Through the environment, as under systemd. */
	setenv("NOTIFY_SOCKET", addr, 1);
	is_int(dw_sd_notify("STOPPING=1", err, sizeof err), 1, "env: sent to $NOTIFY_SOCKET");
	n = receive(fd, buf, sizeof buf, &pid);
	is_str(n > 0 ? buf : "(nothing)", "STOPPING=1", "env: STOPPING=1 received");

	/* A long STATUS arrives whole, in one datagram. */
	char big[4096 + 16];
	memcpy(big, "STATUS=", 7);
	for (size_t i = 7; i < sizeof big - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof big - 1] = '\0';
	is_int(dw_sd_notify(big, err, sizeof err), 1, "env: a 4 KiB STATUS is sent");
	n = receive(fd, buf, sizeof buf, &pid);
	is_int(n, (ssize_t)strlen(big), "env: it arrives as one datagram of the same length");
	ok(n > 0 && memcmp(buf, big, strlen(big)) == 0, "env: with the same bytes");

	/* A RELOADING message with its timestamp, as the agent sends it. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char *reload = xasprintf("RELOADING=1\nMONOTONIC_USEC=%lld",
	                         (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	is_int(dw_sd_notify(reload, err, sizeof err), 1, "env: RELOADING=1 sent");
	n = receive(fd, buf, sizeof buf, &pid);
	is_str(n > 0 ? buf : "(nothing)", reload, "env: RELOADING=1 with MONOTONIC_USEC received");
	free(reload);

	/* Unset: a no-op that returns 0 and sends nothing. */
	unsetenv("NOTIFY_SOCKET");
	strcpy(err, "untouched");
	is_int(dw_sd_notify("READY=1", err, sizeof err), 0, "unset NOTIFY_SOCKET: returns 0");
	is_str(err, "untouched", "unset NOTIFY_SOCKET: no error written");
	is_int(receive(fd, buf, sizeof buf, &pid), -1, "unset NOTIFY_SOCKET: nothing sent");
	setenv("NOTIFY_SOCKET", "", 1);
	is_int(dw_sd_notify("READY=1", err, sizeof err), 0, "empty NOTIFY_SOCKET: returns 0");
	unsetenv("NOTIFY_SOCKET");
	is_int(dw_sd_notify_to(NULL, "READY=1", err, sizeof err), 0, "explicit NULL address: returns 0");
	is_int(dw_sd_notify_to("", "READY=1", err, sizeof err), 0, "explicit empty address: returns 0");

	/* The socket goes away (the manager is gone): -1, naming it. */
	close(fd);
	unlink(addr);
	err[0] = '\0';
	is_int(dw_sd_notify_to(addr, "READY=1", err, sizeof err), -1, "missing path socket: -1");
	ok(strstr(err, addr) != NULL, "missing path socket: the error names it: %s", err);
	ok(strstr(err, strerror(ENOENT)) != NULL, "missing path socket: and says why");
	ok(strstr(err, "READY=1") != NULL, "missing path socket: and what was being sent");

	/* A plain file there is not a socket either. */
	FILE *f = fopen(addr, "w");
	if (f != NULL)
		fclose(f);
	err[0] = '\0';
	is_int(dw_sd_notify_to(addr, "READY=1", err, sizeof err), -1, "a regular file, not a socket: -1");
	ok(strstr(err, addr) != NULL && strstr(err, strerror(ECONNREFUSED)) != NULL,
	   "a regular file: the error names it and the refusal: %s", err);
	unlink(addr);
	free(addr);
}

static void
test_abstract(void)
{
	char *addr = xasprintf("@dw-test-sdnotify-%ld", (long)getpid());
	int fd = listener(addr);
	char err[512] = "", buf[256];
	pid_t pid;

	is_int(dw_sd_notify_to(addr, "READY=1", err, sizeof err), 1, "abstract: sent");
	ssize_t n = receive(fd, buf, sizeof buf, &pid);
	is_int(n, 7, "abstract: 7 bytes");
	is_str(buf, "READY=1", "abstract: READY=1 received");
	is_int(pid, getpid(), "abstract: from us");

	/* The name is exact: no trailing NUL is part of it, and a name
	 * one byte longer is somebody else. */
	char *longer = xasprintf("%sx", addr);
	err[0] = '\0';
	is_int(dw_sd_notify_to(longer, "READY=1", err, sizeof err), -1, "abstract: a longer name does not reach it");
	ok(strstr(err, longer) != NULL, "abstract: the error names the missing socket: %s", err);
	is_int(receive(fd, buf, sizeof buf, &pid), -1, "abstract: and nothing arrived here");
	free(longer);

	setenv("NOTIFY_SOCKET", addr, 1);
	is_int(dw_sd_notify("STATUS=idle", err, sizeof err), 1, "abstract via env: sent");
	n = receive(fd, buf, sizeof buf, &pid);
	is_str(n > 0 ? buf : "(nothing)", "STATUS=idle", "abstract via env: received");
	unsetenv("NOTIFY_SOCKET");

	/* Never blocks: with nobody reading, the queue fills and a send
	 * fails at once with EAGAIN instead of waiting. */
	int rc = 1;
	long sent = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (sent < 100000 && (rc = dw_sd_notify_to(addr, "STATUS=filling the queue", err, sizeof err)) == 1)
		sent++;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	is_int(rc, -1, "full queue: a send fails (after %ld queued)", sent);
	ok(strstr(err, strerror(EAGAIN)) != NULL, "full queue: because it would block: %s", err);
	ok(secs < 5.0, "full queue: without waiting (%.3f s)", secs);
	close(fd);

	/* Nobody listening on the abstract name at all. */
	err[0] = '\0';
	is_int(dw_sd_notify_to(addr, "READY=1", err, sizeof err), -1, "abstract, closed: -1");
	ok(strstr(err, addr) != NULL, "abstract, closed: the error names it: %s", err);
	free(addr);
}

static void
test_refused(void)
{
	char err[512];
	err[0] = '\0';
	is_int(dw_sd_notify_to("run/notify", "READY=1", err, sizeof err), -1, "a relative path is refused");
	ok(strstr(err, "'run/notify'") != NULL && strstr(err, "absolute") != NULL, "naming it: %s", err);
	err[0] = '\0';
	is_int(dw_sd_notify_to("vsock:2:1234", "READY=1", err, sizeof err), -1, "vsock: is refused");
	ok(strstr(err, "vsock:2:1234") != NULL, "naming it: %s", err);
	err[0] = '\0';
	is_int(dw_sd_notify_to("@", "READY=1", err, sizeof err), -1, "an empty abstract name is refused");

	char longpath[200];
	memset(longpath, 'p', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	err[0] = '\0';
	is_int(dw_sd_notify_to(longpath, "READY=1", err, sizeof err), -1, "a path longer than sun_path is refused");
	ok(strstr(err, "longer than") != NULL, "saying so: %.60s...", err);

	char *addr = xasprintf("%s/notify2", tmpdir);
	int fd = listener(addr);
	err[0] = '\0';
	is_int(dw_sd_notify_to(addr, "", err, sizeof err), -1, "an empty state is refused");
	ok(strstr(err, addr) != NULL, "naming the socket: %s", err);
	char buf[64];
	pid_t pid;
	is_int(receive(fd, buf, sizeof buf, &pid), -1, "and nothing was sent");
	close(fd);
	unlink(addr);
	free(addr);

	/* A tiny error buffer is filled, never overrun. */
	char small[8];
	memset(small, 'Z', sizeof small);
	is_int(dw_sd_notify_to("relative", "READY=1", small, 4), -1, "a 4-byte error buffer: -1");
	ok(strlen(small) == 3 && small[4] == 'Z', "and only those 4 bytes are written");
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp %s: %s\n", tmpdir, strerror(errno));
		return 1;
	}
	unsetenv("NOTIFY_SOCKET");
	test_path();
	test_abstract();
	test_refused();
	if (rmdir(tmpdir) != 0)
		diag("could not remove %s: %s", tmpdir, strerror(errno));
	return done_testing();
}
