/*
 * syslog.c - the `syslog` notifier: one syslog message per notification,
 * to the local syslog daemon or to a remote collector (RFC 5424).
 *
 *   notifiers:
 *     - name: local-log
 *       plugin: syslog
 *       facility: local0          # kern, user, mail, daemon, auth, syslog, lpr,
 *                                 # news, uucp, cron, authpriv, ftp, ntp, audit,
 *                                 # alert, clock, local0..local7 (default local0)
 *       ident: dmarcwatch         # local only (default dmarcwatch)
 *       socket: /dev/log          # local only (default /dev/log)
 *     - name: siem
 *       plugin: syslog
 *       server: tcp://logs.example.net:514   # or udp://HOST[:PORT], udp://[::1]:514,
 *                                            # unix:/PATH (a datagram socket)
 *       hostname: mx1.example.net # remote only (default: gethostname())
 *       app_name: dmarcwatch      # remote only (default dmarcwatch)
 *
 * LOCAL MODE (no server:). This plugin does NOT call openlog()/syslog(3):
 * openlog() is process-wide, and the agent itself logs through syslog(3)
 * with its own ident and facility (src/log.c, LOG_MAIL) when run with
 * syslog logging; a plugin calling openlog() would silently re-label the
 * agent's own lines, and two instances with different idents would
 * re-label each other. Instead each instance writes to the syslog socket
 * itself (`socket`, default /dev/log) the same BSD-style line glibc's
 * syslog(3) writes:  <PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG  (local time),
 * over a datagram socket, or over a stream socket NUL-terminated when the
 * daemon offers only that. journald, rsyslog and syslog-ng read it as they
 * read syslog(3). A missing or refusing socket is a RETRY (syslog(3) would
 * drop the line without a word). Local MSG, one line:
 *
 *   TITLE -- kind=alert severity=warning rule=R domain=D key=K NAME=VALUE... -- BODY
 *
 * (key = the idempotency key, NAME=VALUE the notification's fields; values
 * are quoted "..." with \" and \\ escaped when they hold a space, '=', '"'
 * or '\\', or are empty; names outside [A-Za-z0-9_.-] get '_'.)
 *
 * REMOTE MODE (server:), RFC 5424:
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [dmarc@32473 ...] BOM TITLE -- BODY
 *
 *   PRI       facility * 8 + level
 *   TIMESTAMP the time of sending, UTC, milliseconds: 2026-11-23T09:00:00.123Z
 *             (the event time is in the notification; a retried message is
 *             stamped when it is actually sent)
 *   PROCID    the agent's pid; MSGID ALERT, RESOLVED, DIGEST or TEST
 *   SD        [dmarc@32473 rule="..." domain="..." severity="..." kind="..."
 *             key="..." NAME="VALUE"...]: rule and domain only when set, key
 *             = the idempotency key, then one parameter per field of the
 *             notification. 32473 is the documentation PEN of RFC 5612.
 *             Names are cut to SD-NAME (1..32 printable ASCII without
 *             = space ] "; others become '_'); values escape " \ ] with a
 *             backslash, control characters become spaces, each value at
 *             most 256 bytes.
 *   MSG       UTF-8 BOM, the title, " -- " and the body.
 *
 * In both modes the body's lines are joined with " | " (one syslog line
 * per notification; collectors mangle embedded newlines) and invalid UTF-8
 * becomes '?'.
 *
 * Levels: critical -> crit (2), warning -> warning (4), info -> info (6);
 * a `resolved` notification is notice (5) whatever its severity (the
 * problem is over, but worth a look).
 *
 * Transports and sizes:
 *   udp://   one datagram per notification, at most 2048 bytes (RFC 5426
 *            §3.2 "SHOULD accept 2048"). The MSG is cut (at a character
 *            boundary, ending "...") to fit; the header and SD are never
 *            cut, but if they alone do not fit, the field parameters that
 *            do not fit are left out of the SD (logged). UDP has no
 *            acknowledgement: a sent datagram counts as delivered.
 *   unix:    the same, over a local datagram socket (or a stream socket with
 *            octet counting if the path is a stream socket).
 *   tcp://   RFC 6587 octet counting ("LEN SP MSG"), at most 8192 bytes
 *            (rsyslog's default maxMessageSize). One connection per
 *            notification: notifications are rare, and a connection kept
 *            open for hours may be dead without our knowing it (the
 *            collector's host rebooted), so a message written into it would
 *            be lost while we reported success. After writing we half-close
 *            and wait up to 1 s for the collector to close too; a reset
 *            means it did not take the message: RETRY.
 * Connecting and sending are bounded by the notifier's timeout (non-blocking
 * sockets and poll); name resolution (getaddrinfo) is not. Every failure is
 * a RETRY: a collector that is down now may be back later.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "plugutil.h"

#define DGRAM_MAX 2048
#define TCP_MAX 8192
#define SD_VALUE_MAX 256
#define BODY_MAX (64 * 1024) /* before cutting to the transport's size */

enum transport { T_LOCAL, T_UDP, T_TCP, T_UNIX };

struct sl {
	const struct dw_host *host;
	enum transport t;
	int facility;
	char *name;     /* local: ident; remote: APP-NAME */
	char *hostname; /* remote: HOSTNAME */
	char *node;     /* udp/tcp: host */
	char *service;  /* udp/tcp: port */
	char *path;     /* local: socket; unix: path */
	char *server;   /* as configured, for messages (never a secret) */
};

static const char *const facilities[] = {"kern",   "user",   "mail",     "daemon", "auth",   "syslog",
                                         "lpr",    "news",   "uucp",     "cron",   "authpriv", "ftp",
                                         "ntp",    "audit",  "alert",    "clock",  "local0", "local1",
                                         "local2", "local3", "local4",   "local5", "local6", "local7",
                                         NULL};

static const char *const known_keys[] = {"server",   "facility", "ident", "socket",
                                         "hostname", "app_name", NULL};

/* ------------------------------------------------------------------ */
/* Text helpers                                                        */

DW_NOTIFIER_PRINTF(2, 3) static int
addf(struct pu_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (w < 0)
		return -1;
	return pu_buf_add(b, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

static int
adds(struct pu_buf *b, const char *s)
{
	return pu_buf_add(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
	if (n == 0)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
	    (c == 0xf4 && s[1] >= 0x90))
		return 0; /* overlong, surrogate, beyond U+10FFFF */
	return n;
}

/* How to write text into a message. */
enum clean { C_PLAIN, C_SD, C_LOGFMT };

/*
 * Append s cleaned: invalid UTF-8 -> '?', line breaks -> " | " (collapsed,
 * none at the ends), other control characters -> ' '; in C_SD mode " \ ]
 * get a backslash, in C_LOGFMT mode " and \ do. At most cap bytes of s are
 * taken (cut at a character boundary; 0 = no cap).
 */
static int
add_clean(struct pu_buf *b, const char *s, size_t cap, enum clean mode)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t taken = 0;
	int any = 0, pending = 0;
	while (*p != '\0') {
		size_t n = utf8_len(p);
		if (cap != 0 && taken + (n != 0 ? n : 1) > cap)
			break;
		if (*p == '\n' || *p == '\r') {
			pending = any;
			p++;
			taken++;
			continue;
		}
		if (pending && adds(b, " | ") != 0)
			return -1;
		pending = 0;
		any = 1;
		int r;
		if (n == 0) {
			r = adds(b, "?");
			n = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			r = adds(b, " ");
		} else if ((mode == C_SD && (*p == '"' || *p == '\\' || *p == ']')) ||
		           (mode == C_LOGFMT && (*p == '"' || *p == '\\'))) {
			char e[2] = {'\\', (char)*p};
			r = pu_buf_add(b, e, 2);
		} else {
			r = pu_buf_add(b, p, n);
		}
		if (r != 0)
			return -1;
		p += n;
		taken += n;
	}
	return 0;
}

/* An SD-NAME (RFC 5424 §6.3.3) made from name: 1..32 printable ASCII
 * without = space ] "; anything else becomes '_'. */
static void
sd_name(const char *name, char out[33])
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && o < 32; p++)
		out[o++] = *p > 32 && *p < 127 && *p != '=' && *p != ']' && *p != '"' ? (char)*p : '_';
	if (o == 0)
		out[o++] = '_';
	out[o] = '\0';
}

/* A logfmt key: [A-Za-z0-9_.-], others '_', at most 64 bytes. */
static void
logfmt_name(const char *name, char out[65])
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0' && o < 64; p++) {
		int okc = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		          *p == '_' || *p == '.' || *p == '-';
		out[o++] = okc ? (char)*p : '_';
	}
	if (o == 0)
		out[o++] = '_';
	out[o] = '\0';
}

static int
add_logfmt(struct pu_buf *b, const char *name, const char *value)
{
	char k[65];
	logfmt_name(name, k);
	int quote = value[0] == '\0' || strpbrk(value, " =\"\\\t\r\n") != NULL;
	if (addf(b, " %s=%s", k, quote ? "\"" : "") != 0 || add_clean(b, value, SD_VALUE_MAX, C_LOGFMT) != 0)
		return -1;
	return quote ? adds(b, "\"") : 0;
}

static int
add_sd_param(struct pu_buf *b, const char *name, const char *value)
{
	char k[33];
	sd_name(name, k);
	if (addf(b, " %s=\"", k) != 0 || add_clean(b, value, SD_VALUE_MAX, C_SD) != 0)
		return -1;
	return adds(b, "\"");
}

/* Cut b to at most max bytes at a character boundary, ending "..." when
 * something was cut; never below keep bytes. */
static void
cut_to(struct pu_buf *b, size_t keep, size_t max)
{
	if (b->len <= max)
		return;
	size_t at = max >= keep + 3 ? max - 3 : keep;
	while (at > keep && ((unsigned char)b->p[at] & 0xc0) == 0x80)
		at--;
	b->len = at;
	if (max >= keep + 3) {
		memcpy(b->p + b->len, "...", 3);
		b->len += 3;
	}
	b->p[b->len] = '\0';
}

/* Printable US-ASCII (33..126), 1..max bytes: RFC 5424 header fields. */
static int
printusascii(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 33 || *p > 126)
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

static int
level_of(const struct dw_notification *n)
{
	if (n->kind == DW_KIND_RESOLVED)
		return 5; /* notice */
	switch (n->severity) {
	case DW_SEV_CRITICAL:
		return 2; /* crit */
	case DW_SEV_WARNING:
		return 4; /* warning */
	default:
		return 6; /* info */
	}
}

static const char *
kind_name(unsigned kind)
{
	static const char *const names[] = {"?", "alert", "resolved", "digest", "test"};
	return names[kind <= 4 ? kind : 0];
}

static const char *
sev_name(unsigned sev)
{
	static const char *const names[] = {"?", "info", "warning", "critical"};
	return names[sev <= 3 ? sev : 0];
}

static const char *
msgid_of(unsigned kind)
{
	static const char *const ids[] = {"-", "ALERT", "RESOLVED", "DIGEST", "TEST"};
	return ids[kind <= 4 ? kind : 0];
}

/* "TITLE -- BODY" (the body's lines joined). */
static int
add_text(struct pu_buf *b, const struct dw_notification *n)
{
	if (add_clean(b, n->title != NULL ? n->title : "", 0, C_PLAIN) != 0)
		return -1;
	if (n->body == NULL || n->body[strspn(n->body, " \t\r\n")] == '\0')
		return 0;
	return adds(b, " -- ") != 0 || add_clean(b, n->body, BODY_MAX, C_PLAIN) != 0 ? -1 : 0;
}

/* The BSD-style line glibc's syslog(3) writes, with key=value pairs. */
static int
local_message(struct sl *s, const struct dw_notification *n, struct pu_buf *b)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL)
		return -1;
	if (addf(b, "<%d>%s %2d %02d:%02d:%02d %s[%ld]: ", s->facility * 8 + level_of(n), mon[tm.tm_mon % 12],
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, s->name, (long)getpid()) != 0)
		return -1;
	if (add_clean(b, n->title != NULL ? n->title : "", 0, C_PLAIN) != 0 || adds(b, " --") != 0)
		return -1;
	int bad = add_logfmt(b, "kind", kind_name(n->kind)) | add_logfmt(b, "severity", sev_name(n->severity));
	if (n->rule != NULL)
		bad |= add_logfmt(b, "rule", n->rule);
	if (n->domain != NULL)
		bad |= add_logfmt(b, "domain", n->domain);
	bad |= add_logfmt(b, "key", n->idempotency_key != NULL ? n->idempotency_key : "");
	for (size_t i = 0; i < n->nfields; i++)
		bad |= add_logfmt(b, n->fields[i].name != NULL ? n->fields[i].name : "",
		                  n->fields[i].value != NULL ? n->fields[i].value : "");
	if (bad != 0)
		return -1;
	if (n->body != NULL && n->body[strspn(n->body, " \t\r\n")] != '\0')
		if (adds(b, " -- ") != 0 || add_clean(b, n->body, BODY_MAX, C_PLAIN) != 0)
			return -1;
	cut_to(b, 0, DGRAM_MAX);
	return 0;
}

/* The RFC 5424 message (without TCP framing), at most max bytes. */
static int
rfc5424_message(struct sl *s, const struct dw_notification *n, size_t max, struct pu_buf *b)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm) == NULL)
		return -1;
	if (addf(b, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %ld %s [dmarc@32473",
	         s->facility * 8 + level_of(n), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, s->hostname, s->name, (long)getpid(),
	         msgid_of(n->kind)) != 0)
		return -1;
	int bad = 0;
	if (n->rule != NULL)
		bad |= add_sd_param(b, "rule", n->rule);
	if (n->domain != NULL)
		bad |= add_sd_param(b, "domain", n->domain);
	bad |= add_sd_param(b, "severity", sev_name(n->severity));
	bad |= add_sd_param(b, "kind", kind_name(n->kind));
	bad |= add_sd_param(b, "key", n->idempotency_key != NULL ? n->idempotency_key : "");
	if (bad != 0)
		return -1;
	/* Fields, as long as the header, the SD and a bit of MSG fit. */
	size_t dropped = 0;
	for (size_t i = 0; i < n->nfields; i++) {
		size_t before = b->len;
		if (add_sd_param(b, n->fields[i].name != NULL ? n->fields[i].name : "",
		                 n->fields[i].value != NULL ? n->fields[i].value : "") != 0)
			return -1;
		if (b->len + 1 + 1 + 3 + 16 > max) { /* "]", SP, BOM, a little text */
			b->len = before;
			b->p[b->len] = '\0';
			dropped++;
		}
	}
	if (dropped > 0)
		s->host->log(s->host, DW_LOG_WARNING,
		             "%zu of %zu fields left out of the structured data: the message must stay within %zu "
		             "bytes for %s",
		             dropped, n->nfields, max, s->server);
	if (adds(b, "] \xef\xbb\xbf") != 0)
		return -1;
	size_t keep = b->len;
	if (add_text(b, n) != 0)
		return -1;
	cut_to(b, keep, max);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */

/* poll one fd until deadline: revents, 0 on timeout, -1 on error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - pu_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return p.revents;
	}
}

/* Connect a non-blocking socket; 0, or -1 with errno set. */
static int
connect_by(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return -1;
	int r = wait_fd(fd, POLLOUT, deadline);
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (r < 0)
		return -1;
	int e = 0;
	socklen_t el = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
		return -1;
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

/* Open a connected socket for the configured transport. *stream tells
 * whether a unix path turned out to be a stream socket. -1 + err. */
static int
open_socket(struct sl *s, int64_t deadline, int *stream, char *err, size_t errlen)
{
	*stream = s->t == T_TCP;
	if (s->t == T_LOCAL || s->t == T_UNIX) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, s->path, strlen(s->path) + 1); /* length checked in init */
		for (int type = SOCK_DGRAM;; type = SOCK_STREAM) {
			int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0)
				break;
			if (connect_by(fd, (struct sockaddr *)&sun, sizeof sun, deadline) == 0) {
				*stream = type == SOCK_STREAM;
				return fd;
			}
			int e = errno;
			close(fd);
			errno = e;
			if (e != EPROTOTYPE || type == SOCK_STREAM)
				break;
		}
		snprintf(err, errlen, "cannot connect to the syslog socket %s: %s%s", s->path, strerror(errno),
		         errno == ENOENT || errno == ECONNREFUSED ? " (is the syslog daemon running?)" : "");
		return -1;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = s->t == T_TCP ? SOCK_STREAM : SOCK_DGRAM;
	int g = getaddrinfo(s->node, s->service, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "syslog server %s: cannot resolve %s: %s", s->server, s->node,
		         g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -1;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect_by(fd, a->ai_addr, a->ai_addrlen, deadline) != 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "syslog server %s: cannot connect: %s%s", s->server, strerror(e),
		         e == ETIMEDOUT ? " (within the notifier's timeout)" : "");
	return fd;
}

/* Send all of buf (a datagram: in one piece). 0, or -1 with errno. */
static int
send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
			return -1;
		int r = wait_fd(fd, POLLOUT, deadline);
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			return -1;
	}
	return 0;
}

/* After a TCP message: half-close and wait (briefly) for the collector's
 * close. 0 when it closed or stayed quiet, -1 with errno on a reset. */
static int
tcp_finish(int fd, int64_t deadline)
{
	if (shutdown(fd, SHUT_WR) != 0)
		return -1;
	int64_t until = pu_mono_ms() + 1000;
	if (until > deadline)
		until = deadline;
	char sink[512];
	for (;;) {
		int r = wait_fd(fd, POLLIN, until);
		if (r <= 0)
			return 0;
		ssize_t n = recv(fd, sink, sizeof sink, 0);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
	}
}

/* ------------------------------------------------------------------ */
/* Plugin entry points                                                 */

static int
sl_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct sl *s = state;
	struct pu_buf msg = {.max = 4 * BODY_MAX};
	(void)retry_after;
	int64_t deadline = pu_mono_ms() + (s->host->timeout_ms > 0 ? s->host->timeout_ms : 30000);
	const char *where = s->t == T_LOCAL ? s->path : s->server;
	int rc = DW_NOTIFY_RETRY, stream = 0;

	int fd = open_socket(s, deadline, &stream, err, errlen);
	if (fd < 0)
		return DW_NOTIFY_RETRY;
	int built = s->t == T_LOCAL ? local_message(s, n, &msg)
	                            : rfc5424_message(s, n, s->t == T_TCP ? TCP_MAX : DGRAM_MAX, &msg);
	if (built != 0) {
		snprintf(err, errlen, "syslog %s: out of memory while formatting the message", where);
		goto out;
	}
	int sent;
	if (!stream) {
		sent = send_all(fd, msg.p, msg.len, deadline);
	} else if (s->t == T_LOCAL) {
		sent = send_all(fd, msg.p, msg.len + 1, deadline); /* with the NUL, as glibc does */
	} else {
		char len[24];
		int w = snprintf(len, sizeof len, "%zu ", msg.len);
		sent = send_all(fd, len, (size_t)w, deadline);
		if (sent == 0)
			sent = send_all(fd, msg.p, msg.len, deadline);
	}
	if (sent != 0) {
		snprintf(err, errlen, "syslog %s: sending failed: %s", where,
		         errno == ETIMEDOUT ? "timed out (the receiver is not reading)" : strerror(errno));
		goto out;
	}
	if (s->t == T_TCP && tcp_finish(fd, deadline) != 0) {
		snprintf(err, errlen, "syslog %s: the collector reset the connection (%s): the message may be lost",
		         where, strerror(errno));
		goto out;
	}
	rc = DW_NOTIFY_OK;
out:
	close(fd);
	pu_buf_free(&msg);
	return rc;
}

static void
sl_shutdown(void *state)
{
	struct sl *s = state;
	if (s == NULL)
		return;
	free(s->name);
	free(s->hostname);
	free(s->node);
	free(s->service);
	free(s->path);
	free(s->server);
	free(s);
}

/* udp://HOST[:PORT], tcp://HOST[:PORT], unix:/PATH. 0 or -1 (reported). */
static int
parse_server(struct sl *s, const struct dw_kv *kv)
{
	const char *v = kv->value, *rest;
	const struct dw_host *host = s->host;
	if (strncmp(v, "unix:", 5) == 0) {
		s->t = T_UNIX;
		s->path = pu_strdup(v + 5);
		return 0;
	}
	if (strncmp(v, "udp://", 6) == 0)
		s->t = T_UDP, rest = v + 6;
	else if (strncmp(v, "tcp://", 6) == 0)
		s->t = T_TCP, rest = v + 6;
	else {
		host->config_error(host, kv,
		                   "expected udp://HOST[:PORT], tcp://HOST[:PORT] or unix:/PATH (TLS is not "
		                   "supported: relay through a local rsyslog)");
		return -1;
	}
	const char *hend, *port = NULL;
	if (*rest == '[') {
		hend = strchr(rest, ']');
		if (hend == NULL || (hend[1] != '\0' && hend[1] != ':')) {
			host->config_error(host, kv, "an IPv6 address goes in brackets: udp://[2001:db8::1]:514");
			return -1;
		}
		s->node = strndup(rest + 1, (size_t)(hend - rest - 1));
		if (hend[1] == ':')
			port = hend + 2;
	} else {
		hend = strchr(rest, ':');
		s->node = hend != NULL ? strndup(rest, (size_t)(hend - rest)) : strdup(rest);
		if (hend != NULL)
			port = hend + 1;
	}
	if (s->node == NULL)
		return -1;
	char *end = NULL;
	unsigned long p = port != NULL ? strtoul(port, &end, 10) : 514;
	if (s->node[0] == '\0' || strpbrk(s->node, "/?#@ ") != NULL ||
	    (port != NULL && (*port < '0' || *port > '9' || *end != '\0' || p == 0 || p > 65535))) {
		host->config_error(host, kv, "expected udp://HOST[:PORT] or tcp://HOST[:PORT] with a port 1-65535 "
		                             "(default 514)");
		return -1;
	}
	char ps[8];
	snprintf(ps, sizeof ps, "%lu", p);
	s->service = strdup(ps);
	return s->service != NULL ? 0 : -1;
}

static int
sl_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state, char *err,
        size_t errlen)
{
	if (pu_check_keys(host, cfg, ncfg, known_keys) != 0)
		return -1;
	for (size_t k = 0; known_keys[k] != NULL; k++)
		if (pu_single(host, cfg, ncfg, known_keys[k]) != 0)
			return -1;
	struct sl *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->host = host;
	s->facility = 16; /* local0 */
	int bad = pu_enum(host, cfg, ncfg, "facility", facilities, &s->facility);
	const struct dw_kv *server = pu_kv(cfg, ncfg, "server");
	const struct dw_kv *ident = pu_kv(cfg, ncfg, "ident"), *sock = pu_kv(cfg, ncfg, "socket");
	const struct dw_kv *hostname = pu_kv(cfg, ncfg, "hostname"), *app = pu_kv(cfg, ncfg, "app_name");
	if (server == NULL) {
		s->t = T_LOCAL;
		if (hostname != NULL || app != NULL) {
			host->config_error(host, hostname != NULL ? hostname : app,
			                   "applies only with server: (RFC 5424); local syslog uses ident");
			bad = -1;
		}
		s->name = pu_strdup(ident != NULL ? ident->value : "dmarcwatch");
		s->path = pu_strdup(sock != NULL ? sock->value : "/dev/log");
		if (s->name != NULL && (!printusascii(s->name, 48) || strpbrk(s->name, "[]:") != NULL)) {
			host->config_error(host, ident, "expected 1 to 48 printable ASCII characters without spaces, "
			                                "'[', ']' or ':'");
			bad = -1;
		}
	} else {
		if (ident != NULL || sock != NULL) {
			host->config_error(host, ident != NULL ? ident : sock,
			                   ident != NULL ? "applies only to local syslog (no server:); with server: "
			                                   "set app_name"
			                                 : "applies only to local syslog (no server:); for a local "
			                                   "RFC 5424 socket use server: unix:/PATH");
			bad = -1;
		}
		if (parse_server(s, server) != 0)
			bad = -1;
		s->server = pu_strdup(server->value);
		s->name = pu_strdup(app != NULL ? app->value : "dmarcwatch");
		if (s->name != NULL && !printusascii(s->name, 48)) {
			host->config_error(host, app, "expected 1 to 48 printable ASCII characters without spaces (RFC "
			                              "5424 APP-NAME)");
			bad = -1;
		}
		if (hostname != NULL) {
			s->hostname = pu_strdup(hostname->value);
			if (s->hostname != NULL && !printusascii(s->hostname, 255)) {
				host->config_error(host, hostname, "expected 1 to 255 printable ASCII characters "
				                                   "without spaces (RFC 5424 HOSTNAME)");
				bad = -1;
			}
		} else {
			char hn[256] = "";
			if (gethostname(hn, sizeof hn - 1) != 0)
				hn[0] = '\0';
			size_t o = 0;
			for (size_t i = 0; hn[i] != '\0'; i++) /* keep what RFC 5424 allows */
				if (hn[i] > 32 && hn[i] < 127)
					hn[o++] = hn[i];
			hn[o] = '\0';
			s->hostname = pu_strdup(o > 0 ? hn : "-");
		}
	}
	if (bad == 0 && (s->t == T_LOCAL || s->t == T_UNIX) && s->path != NULL) {
		const struct dw_kv *at = s->t == T_LOCAL ? sock : server;
		if (s->path[0] != '/' || strlen(s->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			host->config_error(host, at, "expected an absolute socket path of at most %zu bytes",
			                   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			bad = -1;
		}
	}
	int oom = s->name == NULL || ((s->t == T_LOCAL || s->t == T_UNIX) && s->path == NULL) ||
	          (s->t != T_LOCAL && (s->hostname == NULL || s->server == NULL));
	if (bad == 0 && oom) {
		snprintf(err, errlen, "out of memory");
		bad = -1;
	}
	if (bad != 0) {
		sl_shutdown(s);
		return -1;
	}
	*state = s;
	return 0;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "syslog", .version = "1.0",
                     .description = "local syslog, or RFC 5424 to a collector over UDP, TCP or a unix socket",
                     .init = sl_init, .notify = sl_notify, .shutdown = sl_shutdown);
