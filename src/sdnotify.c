/*
 * sdnotify.c - send systemd's readiness protocol messages ("READY=1",
 * "STATUS=...", "STOPPING=1") to $NOTIFY_SOCKET, without libsystemd.
 *
 * The protocol is one unix datagram per call, the assignments in its
 * payload. The address is an absolute path, or "@name" for the abstract
 * namespace (the '@' becomes a NUL byte and the name is not terminated).
 * A fresh socket each call: nothing is kept between calls, and the
 * manager sees our credentials on each message.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dw/sdnotify.h"
#include "dw/util.h"

/* Fill *sa from addr; its length in *len. -1 with err set when addr is
 * not a form we can send to. */
static int
sd_addr(const char *addr, struct sockaddr_un *sa, socklen_t *len, char *err, size_t errlen)
{
	size_t n = strlen(addr);
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (addr[0] == '@') {
		/* Abstract: the name is every byte after the NUL, so the
		 * length counts exactly those and no terminator. */
		if (n < 2 || n > sizeof sa->sun_path) {
			dw_err(err, errlen, -1,
			       "notify socket '%s': an abstract name must have 1 to %zu bytes after the '@'", addr,
			       sizeof sa->sun_path - 1);
			return -1;
		}
		memcpy(sa->sun_path + 1, addr + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	if (addr[0] != '/') {
		/* systemd also knows "vsock:CID:PORT"; a service on this host
		 * never gets one, and we do not speak it. */
		dw_err(err, errlen, -1,
		       "notify socket '%s': not an absolute path or an @abstract name (is NOTIFY_SOCKET set by "
		       "something other than systemd?)",
		       addr);
		return -1;
	}
	if (n >= sizeof sa->sun_path) {
		dw_err(err, errlen, -1, "notify socket '%s': path longer than the %zu bytes a unix socket allows",
		       addr, sizeof sa->sun_path - 1);
		return -1;
	}
	memcpy(sa->sun_path, addr, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int
dw_sd_notify_to(const char *socket_addr, const char *state, char *err, size_t errlen)
{
	if (socket_addr == NULL || socket_addr[0] == '\0')
		return 0;
	if (state == NULL || state[0] == '\0') {
		dw_err(err, errlen, -1, "notify socket '%s': nothing to send (empty state)", socket_addr);
		return -1;
	}
	struct sockaddr_un sa;
	socklen_t salen;
	if (sd_addr(socket_addr, &sa, &salen, err, errlen) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		dw_err(err, errlen, -1, "notify socket '%s': cannot create a unix datagram socket: %s", socket_addr,
		       strerror(errno));
		return -1;
	}
	size_t n = strlen(state);
	ssize_t w;
	do
		w = sendto(fd, state, n, MSG_NOSIGNAL | MSG_DONTWAIT, (const struct sockaddr *)&sa, salen);
	while (w < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	if (w < 0) {
		dw_err(err, errlen, -1, "notify socket '%s': cannot send \"%.*s\": %s%s", socket_addr,
		       (int)strcspn(state, "\n"), state, strerror(saved),
		       saved == ENOENT || saved == ECONNREFUSED
		           ? " (is the service manager that set NOTIFY_SOCKET still listening?)"
		           : "");
		return -1;
	}
	if ((size_t)w != n) {
		dw_err(err, errlen, -1, "notify socket '%s': sent %zd of %zu bytes", socket_addr, w, n);
		return -1;
	}
	return 1;
}

int
dw_sd_notify(const char *state, char *err, size_t errlen)
{
	return dw_sd_notify_to(getenv("NOTIFY_SOCKET"), state, err, errlen);
}
