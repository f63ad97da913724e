/*
 * test_oauth2.c - XOAUTH2 token refresh and token_command (src/oauth2.c).
 *
 * The token endpoint is a tiny HTTP/1.1 server forked by the test on
 * 127.0.0.1 (port chosen by the kernel). Each scenario gets a fresh server
 * with a script of answers; it appends every request it receives to a log
 * file ("METHOD PATH<TAB>CONTENT-TYPE<TAB>BODY" per line) so the test can
 * count requests and check what was sent. Every error message the module
 * produces is scanned for the secrets.
 */
#include "tap.h"

#include "dw/oauth2.h"
#include "dw/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_SECRET "s3cr&t=+ x"
#define REFRESH_TOKEN "1//rt-SECRET-refresh"

static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* The scripted token endpoint.                                         */

struct resp {
	int status;
	const char *body; /* NULL: a body of `big` bytes of 'a' */
	size_t big;
	int hang;         /* read the request, then never answer */
};

struct server {
	pid_t pid;
	int port;
	char log[128];
	char url[96];
};

/* Read one request (headers, then Content-Length bytes of body) from fd
 * and append it to the log. Returns 0, or -1 when the peer went away. */
static int
serve_read(int fd, const char *logpath)
{
	char buf[16384], line[17000];
	size_t len = 0;
	char *eoh = NULL;

	while (eoh == NULL) {
		if (len == sizeof(buf) - 1)
			return -1;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
	}
	size_t hdrlen = (size_t)(eoh - buf) + 4;
	size_t clen = 0;
	char ctype[128] = "-";
	for (char *p = buf; p < eoh; p = strstr(p, "\r\n") + 2) {
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
		if (strncasecmp(p, "Content-Type:", 13) == 0)
			sscanf(p + 13, " %127[^\r]", ctype);
		if (strncasecmp(p, "Expect: 100-continue", 20) == 0)
			(void)!write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	while (len < hdrlen + clen && len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
	buf[len] = '\0';
	char method[16] = "", path[256] = "";
	sscanf(buf, "%15s %255s", method, path);
	int k = snprintf(line, sizeof(line), "%s %s\t%s\t%.*s\n", method, path, ctype, (int)clen, buf + hdrlen);
	int lf = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (lf >= 0) {
		(void)!write(lf, line, (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1);
		close(lf);
	}
	return 0;
}

static void
serve_answer(int fd, const struct resp *r)
{
	char head[256];
	size_t blen = r->body != NULL ? strlen(r->body) : r->big;
	int k = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 r->status, blen);
	(void)!write(fd, head, (size_t)k);
	if (r->body != NULL) {
		(void)!write(fd, r->body, blen);
	} else {
		char chunk[4096];
		memset(chunk, 'a', sizeof(chunk));
		for (size_t sent = 0; sent < blen;) {
			size_t n = blen - sent < sizeof(chunk) ? blen - sent : sizeof(chunk);
			ssize_t w = write(fd, chunk, n);
			if (w <= 0)
				break;
			sent += (size_t)w;
		}
	}
}

static void
server_start(struct server *s, const struct resp *script, size_t n, const char *name)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
		perror("server socket");
		exit(2);
	}
	s->port = ntohs(sa.sin_port);
	snprintf(s->log, sizeof(s->log), "%s/%s.log", tmpdir, name);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d/token", s->port);
	unlink(s->log);
	fflush(stdout);
	s->pid = fork();
	if (s->pid < 0) {
		perror("fork");
		exit(2);
	}
	if (s->pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		for (size_t i = 0;; i++) {
			int fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				_exit(0);
			if (serve_read(fd, s->log) == 0) {
				static const struct resp extra = {500, "{\"error\":\"unexpected request\"}", 0, 0};
				const struct resp *r = i < n ? &script[i] : &extra;
				if (r->hang)
					sleep(60);
				serve_answer(fd, r);
			}
			close(fd);
		}
	}
	close(lfd);
}

static void
server_stop(struct server *s)
{
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	unlink(s->log);
}

/* The logged requests, and how many there are. */
static char *
read_log(const char *path, int *count)
{
	static char buf[65536];
	size_t len = 0;
	int fd = open(path, O_RDONLY);
	buf[0] = '\0';
	*count = 0;
	if (fd < 0)
		return buf;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		*count += buf[i] == '\n';
	return buf;
}

static int
nrequests(const struct server *s)
{
	int n;
	read_log(s->log, &n);
	return n;
}

/* ------------------------------------------------------------------ */
/* Helpers.                                                             */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Every error message must be free of every secret. */
static void
no_secret(const char *msg, const char *what)
{
	int clean = strstr(msg, "s3cr") == NULL && strstr(msg, "SECRET") == NULL &&
	            strstr(msg, "ya29.") == NULL && strstr(msg, "tok123") == NULL;
	ok(clean, "%s: message carries no secret", what);
	if (!clean)
		diag("message: %s", msg);
}

static void
cfg_http(struct dw_oauth2_cfg *c, const char *url)
{
	memset(c, 0, sizeof(*c));
	c->token_url = (char *)(uintptr_t)url;
	c->client_id = "cid.apps.example";
	c->client_secret = CLIENT_SECRET;
	c->refresh_token = REFRESH_TOKEN;
}

/* One call against a one-answer server: returns the code, fills err. */
static int
one_shot(const struct resp *r, const char *name, char *err, size_t errlen, double *elapsed)
{
	struct server s;
	struct dw_oauth2_cfg c;
	const char *tok = "x";
	server_start(&s, r, 1, name);
	cfg_http(&c, s.url);
	struct dw_oauth2 *o = dw_oauth2_new(&c, "gmail", 2);
	double t0 = now_s();
	err[0] = '\0';
	int rc = dw_oauth2_token(o, 0, &tok, err, errlen);
	if (elapsed != NULL)
		*elapsed = now_s() - t0;
	ok(tok == NULL, "%s: no token handed out on failure", name);
	no_secret(err, name);
	dw_oauth2_free(o);
	server_stop(&s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Token endpoint tests.                                                */

static void
test_refresh_and_cache(void)
{
	static const struct resp script[] = {
		{200, "{\"access_token\":\"ya29.AT-1\",\"expires_in\":3600,\"token_type\":\"Bearer\",\"scope\":"
		      "\"https://mail.google.com/\"}", 0, 0},
		{200, "{\"access_token\":\"ya29.AT-2\",\"expires_in\":\"3599\",\"token_type\":\"bearer\"}", 0, 0},
		{200, "{\"access_token\":\"ya29.AT-3\",\"expires_in\":62,\"token_type\":\"Bearer\"}", 0, 0},
		{200, "{\"access_token\":\"ya29.AT-4\",\"token_type\":\"Bearer\"}", 0, 0},
	};
	struct server s;
	struct dw_oauth2_cfg c;
	char err[512] = "";
	const char *tok = NULL;
	int n;

	server_start(&s, script, 4, "refresh");
	cfg_http(&c, s.url);
	struct dw_oauth2 *o = dw_oauth2_new(&c, "gmail", 2);

	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "refresh: first call succeeds");
	if (err[0])
		diag("err: %s", err);
	is_str(tok, "ya29.AT-1", "refresh: access token returned");
	char *log = read_log(s.log, &n);
	is_int(n, 1, "refresh: one request");
	is_str(log,
	       "POST /token\tapplication/x-www-form-urlencoded\tgrant_type=refresh_token&client_id=cid.apps."
	       "example&client_secret=s3cr%26t%3D%2B%20x&refresh_token=1%2F%2Frt-SECRET-refresh\n",
	       "refresh: form body is URL-encoded (& = + space /)");

	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "cache: second call succeeds");
	is_str(tok, "ya29.AT-1", "cache: same token");
	is_int(nrequests(&s), 1, "cache: served without a request");

	is_int(dw_oauth2_token(o, 1, &tok, err, sizeof(err)), DW_OK, "force: succeeds");
	is_str(tok, "ya29.AT-2", "force: new token (expires_in as a string accepted)");
	is_int(nrequests(&s), 2, "force: made a request");
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "force: then cached");
	is_str(tok, "ya29.AT-2", "force: cached token is the new one");
	is_int(nrequests(&s), 2, "force: no further request");

	/* expires_in 62 with the 60 s margin leaves a 2 s window. */
	is_int(dw_oauth2_token(o, 1, &tok, err, sizeof(err)), DW_OK, "expiry: short-lived token fetched");
	is_str(tok, "ya29.AT-3", "expiry: token 3");
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "expiry: still valid right away");
	is_str(tok, "ya29.AT-3", "expiry: cached within its lifetime");
	is_int(nrequests(&s), 3, "expiry: no request while valid");
	sleep(3);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "expiry: refreshed after expiry");
	is_str(tok, "ya29.AT-4", "expiry: new token after expiry");
	is_int(nrequests(&s), 4, "expiry: made a request");

	dw_oauth2_free(o);
	server_stop(&s);
}

static void
test_refresh_errors(void)
{
	char err[512];
	double t;

	struct resp grant = {400, "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired "
	                          "or revoked.\"}", 0, 0};
	is_int(one_shot(&grant, "invalid_grant", err, sizeof(err), NULL), DW_E_CONFIG,
	       "invalid_grant: DW_E_CONFIG");
	ok(strstr(err, "create a new one") != NULL && strstr(err, "'Testing'") != NULL &&
	   strstr(err, "7-day") != NULL, "invalid_grant: message says what to do");
	ok(strstr(err, "Token has been expired or revoked.") != NULL && strstr(err, "'gmail'") != NULL,
	   "invalid_grant: message quotes the description and names the account");
	diag("%s", err);

	/* A hostile (or careless) server echoing the refresh token. */
	struct resp echo = {400, "{\"error\":\"invalid_grant\",\"error_description\":\"bad token "
	                         "1//rt-SECRET-refresh\"}", 0, 0};
	is_int(one_shot(&echo, "invalid_grant echo", err, sizeof(err), NULL), DW_E_CONFIG,
	       "invalid_grant echoing the secret: DW_E_CONFIG");
	ok(strstr(err, "bad token") == NULL && strstr(err, "create a new one") != NULL,
	   "invalid_grant echoing the secret: description dropped, guidance kept");

	struct resp client = {401, "{\"error\":\"invalid_client\",\"error_description\":\"Unauthorized\"}", 0, 0};
	is_int(one_shot(&client, "invalid_client", err, sizeof(err), NULL), DW_E_CONFIG, "invalid_client: DW_E_CONFIG");
	ok(strstr(err, "client_id") != NULL && strstr(err, "client_secret") != NULL,
	   "invalid_client: message says to check client_id/secret");

	struct resp e500 = {500, "Internal error", 0, 0};
	is_int(one_shot(&e500, "http 500", err, sizeof(err), NULL), DW_E_SOURCE, "HTTP 500: DW_E_SOURCE");
	ok(strstr(err, "500") != NULL, "HTTP 500: status in message");

	struct resp e503 = {503, "{\"error\":\"temporarily_unavailable\"}", 0, 0};
	is_int(one_shot(&e503, "http 503 json", err, sizeof(err), NULL), DW_E_SOURCE,
	       "HTTP 503 with an OAuth error: DW_E_SOURCE");

	struct resp e404 = {404, "<html>not here</html>", 0, 0};
	is_int(one_shot(&e404, "http 404", err, sizeof(err), NULL), DW_E_CONFIG, "HTTP 404: DW_E_CONFIG");
	ok(strstr(err, "token_url") != NULL, "HTTP 404: message points at token_url");

	struct resp hang = {200, "{}", 0, 1};
	is_int(one_shot(&hang, "hang", err, sizeof(err), &t), DW_E_SOURCE, "hanging server: DW_E_SOURCE");
	ok(t >= 1.5 && t < 5, "hanging server: gave up after the 2 s timeout (%.1f s)", t);

	struct resp html = {200, "<html>login page</html>", 0, 0};
	is_int(one_shot(&html, "not json", err, sizeof(err), NULL), DW_E_SOURCE, "non-JSON body: DW_E_SOURCE");
	ok(strstr(err, "JSON") != NULL, "non-JSON body: says so");

	struct resp arr = {200, "[\"ya29.AT-x\"]", 0, 0};
	is_int(one_shot(&arr, "json array", err, sizeof(err), NULL), DW_E_SOURCE, "JSON array: DW_E_SOURCE");

	struct resp huge = {200, NULL, 100 * 1024, 0};
	is_int(one_shot(&huge, "huge", err, sizeof(err), NULL), DW_E_SOURCE, "100 KiB body: refused");
	ok(strstr(err, "64 KiB") != NULL, "100 KiB body: message names the cap");

	struct resp noat = {200, "{\"token_type\":\"Bearer\",\"expires_in\":3600}", 0, 0};
	is_int(one_shot(&noat, "no access_token", err, sizeof(err), NULL), DW_E_SOURCE,
	       "reply without access_token: DW_E_SOURCE");

	struct resp space = {200, "{\"access_token\":\"ya29.a b\",\"token_type\":\"Bearer\"}", 0, 0};
	is_int(one_shot(&space, "token with space", err, sizeof(err), NULL), DW_E_SOURCE,
	       "access_token with a space: refused");

	struct resp mac = {200, "{\"access_token\":\"ya29.AT-m\",\"token_type\":\"mac\"}", 0, 0};
	is_int(one_shot(&mac, "token_type mac", err, sizeof(err), NULL), DW_E_CONFIG,
	       "token_type mac: DW_E_CONFIG");
	ok(strstr(err, "Bearer") != NULL, "token_type mac: says Bearer is needed");

	struct resp dup = {200, "{\"access_token\":\"ya29.A\",\"access_token\":\"ya29.B\"}", 0, 0};
	is_int(one_shot(&dup, "duplicate keys", err, sizeof(err), NULL), DW_E_SOURCE,
	       "duplicate access_token keys: refused");
}

/* Calls that must fail before any network access. */
static void
test_url_rules(void)
{
	static const char *const bad[] = {"http://example.com/token", "ftp://127.0.0.1/token",
	                                  "file:///etc/passwd", "oauth2.googleapis.com/token", "http://127.0.0.2/"};
	struct dw_oauth2_cfg c;
	char err[512];
	const char *tok;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_http(&c, bad[i]);
		struct dw_oauth2 *o = dw_oauth2_new(&c, "gmail", 2);
		double t0 = now_s();
		err[0] = '\0';
		is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_CONFIG, "url %s: DW_E_CONFIG", bad[i]);
		ok(now_s() - t0 < 0.5, "url %s: refused at once", bad[i]);
		no_secret(err, bad[i]);
		dw_oauth2_free(o);
	}
	diag("%s", err);

	/* Connection refused: a port that was just closed. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &salen);
	close(fd);
	char url[80];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/token", ntohs(sa.sin_port));
	cfg_http(&c, url);
	struct dw_oauth2 *o = dw_oauth2_new(&c, "gmail", 2);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_SOURCE, "connection refused: DW_E_SOURCE");
	no_secret(err, "connection refused");
	dw_oauth2_free(o);

	/* https to a plain-HTTP server: the TLS handshake fails (no fallback). */
	static const struct resp plain[] = {{200, "{\"access_token\":\"ya29.AT-plain\"}", 0, 0}};
	struct server s;
	server_start(&s, plain, 1, "https");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/token", s.port);
	cfg_http(&c, url);
	o = dw_oauth2_new(&c, "gmail", 1);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_SOURCE, "https to a plain server: DW_E_SOURCE");
	no_secret(err, "https to a plain server");
	diag("%s", err);
	dw_oauth2_free(o);

	c.ca_file = "/nonexistent/ca.pem";
	o = dw_oauth2_new(&c, "gmail", 2);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_CONFIG, "missing ca_file: DW_E_CONFIG");
	ok(strstr(err, "ca_file") != NULL, "missing ca_file: message names ca_file");
	no_secret(err, "missing ca_file");
	dw_oauth2_free(o);
	server_stop(&s);

	/* The other loopback spellings pass the URL rule. */
	static const struct resp lh[] = {{200, "{\"access_token\":\"ya29.AT-lh\"}", 0, 0}};
	server_start(&s, lh, 1, "localhost");
	snprintf(url, sizeof(url), "http://LocalHost:%d/token", s.port);
	cfg_http(&c, url);
	o = dw_oauth2_new(&c, "gmail", 2);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_OK, "http://localhost: allowed");
	is_str(tok, "ya29.AT-lh", "http://localhost: token (no token_type is tolerated)");
	dw_oauth2_free(o);
	server_stop(&s);
	snprintf(url, sizeof(url), "http://[::1]:%d/token", s.port);
	cfg_http(&c, url);
	o = dw_oauth2_new(&c, "gmail", 2);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_SOURCE,
	       "http://[::1]: allowed by the URL rule (nobody listens: DW_E_SOURCE)");
	dw_oauth2_free(o);

	/* Nothing to refresh with. */
	memset(&c, 0, sizeof(c));
	c.client_id = "cid";
	o = dw_oauth2_new(&c, "gmail", 2);
	is_int(dw_oauth2_token(o, 0, &tok, err, sizeof(err)), DW_E_CONFIG, "no refresh_token: DW_E_CONFIG");
	dw_oauth2_free(o);
}

/* ------------------------------------------------------------------ */
/* token_command tests.                                                 */

static int
cmd_call(const char *cmd, unsigned timeout, int force, struct dw_oauth2 **keep, const char **tok, char *err,
         size_t errlen)
{
	static struct dw_oauth2_cfg c;
	memset(&c, 0, sizeof(c));
	c.token_command = (char *)(uintptr_t)cmd;
	c.client_secret = CLIENT_SECRET;
	if (*keep == NULL)
		*keep = dw_oauth2_new(&c, "work", timeout);
	err[0] = '\0';
	return dw_oauth2_token(*keep, force, tok, err, errlen);
}

static int
count_lines(const char *path)
{
	int n;
	read_log(path, &n);
	return n;
}

static void
test_command(void)
{
	struct dw_oauth2 *o = NULL;
	const char *tok = NULL;
	char err[512], cmd[512], counter[128];
	double t0;

	snprintf(counter, sizeof(counter), "%s/count", tmpdir);
	snprintf(cmd, sizeof(cmd), "echo run >> '%s'; printf 'tok123\\n'", counter);
	is_int(cmd_call(cmd, 2, 0, &o, &tok, err, sizeof(err)), DW_OK, "command: printf works");
	is_str(tok, "tok123", "command: token trimmed");
	is_int(cmd_call(cmd, 2, 0, &o, &tok, err, sizeof(err)), DW_OK, "command: second call");
	is_str(tok, "tok123", "command: cached token");
	is_int(count_lines(counter), 1, "command: ran once (cached)");
	is_int(cmd_call(cmd, 2, 1, &o, &tok, err, sizeof(err)), DW_OK, "command: force");
	is_int(count_lines(counter), 2, "command: force runs it again");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("  printf '\\n  tok123 \\r\\n\\n'", 2, 0, &o, &tok, err, sizeof(err)), DW_OK,
	       "command: surrounding whitespace");
	is_str(tok, "tok123", "command: whitespace trimmed");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("exit 3", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG, "command: exit 3 fails");
	ok(strstr(err, "token_command for account 'work' exited with status 3") != NULL, "command: status in message");
	ok(tok == NULL, "command: no token on failure");
	diag("%s", err);
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("echo 'gpg: decryption failed: No secret key' >&2; exit 2", 2, 0, &o, &tok, err,
	                sizeof(err)),
	       DW_E_CONFIG, "command: failure with stderr");
	ok(strstr(err, "status 2") != NULL && strstr(err, "gpg: decryption failed: No secret key") != NULL,
	   "command: its stderr is quoted");
	diag("%s", err);
	dw_oauth2_free(o);
	o = NULL;

	/* A command that prints the secret on stderr: never quoted. */
	is_int(cmd_call("echo 'oops s3cr&t=+ x' >&2; exit 1", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: stderr with a secret");
	no_secret(err, "command stderr with secret");
	dw_oauth2_free(o);
	o = NULL;

	/* The token printed before failing must not leak into the message. */
	is_int(cmd_call("echo tok123; echo tok123 >&2; exit 1", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: prints a token then fails");
	no_secret(err, "command prints then fails");
	dw_oauth2_free(o);
	o = NULL;

	char pidfile[128];
	snprintf(pidfile, sizeof(pidfile), "%s/sleeper.pid", tmpdir);
	snprintf(cmd, sizeof(cmd), "sleep 10 & echo $! > '%s'; wait", pidfile);
	t0 = now_s();
	is_int(cmd_call(cmd, 2, 0, &o, &tok, err, sizeof(err)), DW_E_SOURCE, "command: sleep 10 times out");
	double t = now_s() - t0;
	ok(t >= 1.5 && t < 5, "command: killed after the 2 s timeout (%.1f s)", t);
	ok(strstr(err, "did not finish within 2 s") != NULL, "command: timeout message");
	diag("%s", err);
	/* The shell's child was in the same process group: it must be dead
	 * (gone, or a zombie waiting for init). */
	FILE *pf = fopen(pidfile, "r");
	int spid = 0, dead = 0;
	if (pf != NULL) {
		if (fscanf(pf, "%d", &spid) != 1)
			spid = 0;
		fclose(pf);
	}
	for (int i = 0; spid > 0 && i < 100 && !dead; i++) {
		char statp[64], st[256] = "";
		snprintf(statp, sizeof(statp), "/proc/%d/stat", spid);
		FILE *sf = fopen(statp, "r");
		if (sf == NULL) {
			dead = 1;
			break;
		}
		if (fgets(st, sizeof(st), sf) != NULL && strstr(st, ") Z ") != NULL)
			dead = 1;
		fclose(sf);
		if (!dead)
			usleep(20000);
	}
	ok(spid > 0 && dead, "command: the background sleep was killed too (pid %d)", spid);
	dw_oauth2_free(o);
	o = NULL;

	/* Output kept open by a background job: the time limit still applies. */
	t0 = now_s();
	is_int(cmd_call("printf tok123; sleep 10", 1, 0, &o, &tok, err, sizeof(err)), DW_E_SOURCE,
	       "command: token then hang: times out");
	ok(now_s() - t0 < 4, "command: token then hang: bounded");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("printf '  \\n\\t\\n'", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: only whitespace is an error");
	ok(strstr(err, "printed no token") != NULL, "command: empty output message");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("true", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG, "command: no output is an error");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("printf 'tok123\\nsecond line\\n'", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: two lines refused");
	no_secret(err, "command two lines");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("head -c 70000 /dev/zero | tr '\\000' a", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: 70000 bytes refused");
	ok(strstr(err, "64 KiB") != NULL, "command: output cap named");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("kill -TERM $$", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG, "command: killed by a signal");
	ok(strstr(err, "signal 15") != NULL, "command: signal in message");
	dw_oauth2_free(o);
	o = NULL;

	is_int(cmd_call("/nonexistent/helper", 2, 0, &o, &tok, err, sizeof(err)), DW_E_CONFIG,
	       "command: missing program");
	ok(strstr(err, "status 127") != NULL, "command: missing program is status 127");
	diag("%s", err);
	dw_oauth2_free(o);
	o = NULL;

	/* Our own descriptors must not leak into the command. */
	int leak = open("/dev/null", O_RDONLY);
	snprintf(cmd, sizeof(cmd), "test -e /proc/self/fd/%d && exit 9; echo ok-no-leak", leak);
	is_int(cmd_call(cmd, 2, 0, &o, &tok, err, sizeof(err)), DW_OK, "command: descriptors not inherited");
	close(leak);
	dw_oauth2_free(o);
	o = NULL;
	unlink(counter);
	unlink(pidfile);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dw-oauth2-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	dw_oauth2_global_init();
	dw_oauth2_free(NULL);

	test_refresh_and_cache();
	test_refresh_errors();
	test_url_rules();
	test_command();

	rmdir(tmpdir);
	return done_testing();
}
