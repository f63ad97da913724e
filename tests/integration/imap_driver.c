/*
 * imap_driver.c - drives the IMAP source (src/source_imap.c) against a live
 * server for tests/integration/t_imap_source.sh. Built by that script.
 *
 *   imap_driver [options] COMMAND [ARGS]... [COMMAND [ARGS]...]...
 *
 * Options describe the account (struct dw_account_cfg):
 *   --host H --port N --tls implicit|starttls|none --allow-plaintext
 *   --ca FILE --no-verify --user U --pass P --xoauth2 --folder F
 *   --timeout S --poll --name NAME
 *   --keep-going   print an error and go on with the next command
 * Commands run in order; every result is one line on stdout:
 *   open                           "open uidvalidity=N"
 *   fetch AFTER MAXBYTES MAXMSG    one fetch(): "msg uid= size= len= date= sha256=" per
 *                                  message, then "batch n=N more=M"
 *   drain AFTER MAXBYTES MAXMSG    fetch() until more=0, continuing after the last
 *                                  uid delivered: msg and batch lines, then
 *                                  "total n=N bytes=B ms=T"
 *   move FOLDER UID,UID,...        "move ok"
 *   wait SECONDS [SHELL-COMMAND]   start_wait, run the command, poll the fd,
 *                                  end_wait; again until new mail or SECONDS
 *                                  are over: "wait fd=none" or
 *                                  "wait readable=R ms=T new_mail=M cycles=C"
 *   close                          "close"
 *   sh SHELL-COMMAND               run it (to change the mailbox between commands)
 * On an error: "error rc=N: MESSAGE" and exit status 1 (at the end with
 * --keep-going).
 *
 * XOAUTH2: this program carries its own dw_oauth2_* (so the archive's
 * oauth2.o is not linked): tokens come from $DW_TEST_TOKENS, a comma
 * separated list; the first call gets the first token and every call with
 * force=1 moves to the next one. Each call prints "token force=F".
 */
#include "dw/oauth2.h"
#include "dw/source.h"
#include "dw/util.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- the XOAUTH2 token stub ------------------------------------------------ */

struct dw_oauth2 {
	char *tokens;
	char *current;
};

struct dw_oauth2 *
dw_oauth2_new(const struct dw_oauth2_cfg *cfg, const char *account, unsigned timeout)
{
	struct dw_oauth2 *o = xcalloc(1, sizeof *o);
	const char *env = getenv("DW_TEST_TOKENS");

	(void)cfg;
	(void)account;
	(void)timeout;
	o->tokens = xstrdup(env != NULL ? env : "");
	return o;
}

int
dw_oauth2_token(struct dw_oauth2 *o, int force, const char **token, char *err, size_t errlen)
{
	printf("token force=%d\n", force);
	if (o->current == NULL) {
		o->current = o->tokens;
	} else if (force) {
		char *comma = strchr(o->current, ',');
		if (comma != NULL)
			o->current = comma + 1;
	}
	if (*o->current == '\0')
		return dw_err(err, errlen, DW_E_CONFIG, "test oauth2: no token in DW_TEST_TOKENS");
	{
		/* Hand out the current token without the rest of the list. */
		static char buf[1024];
		size_t n = strcspn(o->current, ",");
		if (n >= sizeof buf)
			n = sizeof buf - 1;
		memcpy(buf, o->current, n);
		buf[n] = '\0';
		*token = buf;
	}
	return DW_OK;
}

void
dw_oauth2_free(struct dw_oauth2 *o)
{
	if (o == NULL)
		return;
	free(o->tokens);
	free(o);
}

/* --- the driver --------------------------------------------------------------- */

static long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct run {
	uint32_t last;
	size_t n;
	uint64_t bytes;
};

static int
on_msg(void *ctx, const struct dw_msg *m, char *err, size_t errlen)
{
	struct run *r = ctx;
	unsigned char d[32];
	char hex[65];
	size_t i;

	(void)err;
	(void)errlen;
	if (m->data != NULL) {
		gnutls_hash_fast(GNUTLS_DIG_SHA256, m->data, m->len, d);
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
	} else {
		snprintf(hex, sizeof hex, "none");
	}
	printf("msg uid=%lu size=%lu len=%zu date=%lld sha256=%s\n", (unsigned long)m->uid,
	       (unsigned long)m->size, m->len, (long long)m->internaldate, hex);
	r->last = m->uid;
	r->n++;
	r->bytes += m->len;
	return DW_OK;
}

static void
usage(void)
{
	fprintf(stderr, "usage: imap_driver [options] open|fetch|drain|move|wait|close ...\n");
	exit(2);
}

static int
need(int i, int argc, int n)
{
	if (i + n >= argc)
		usage();
	return 1;
}

int
main(int argc, char **argv)
{
	struct dw_account_cfg a;
	struct dw_source *s;
	char err[1024];
	int i, rc = DW_OK, keep_going = 0, failed = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&a, 0, sizeof a);
	a.name = "test";
	a.source = DW_SRC_IMAP;
	a.host = "127.0.0.1";
	a.tls = DW_TLS_IMPLICIT;
	a.verify = 1;
	a.auth = DW_AUTH_PASSWORD;
	a.folder = "INBOX";
	a.mode = DW_MODE_IDLE;
	a.timeout = 10;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--host") == 0 && need(i, argc, 1))
			a.host = argv[++i];
		else if (strcmp(o, "--port") == 0 && need(i, argc, 1))
			a.port = (unsigned)atoi(argv[++i]);
		else if (strcmp(o, "--tls") == 0 && need(i, argc, 1)) {
			i++;
			a.tls = strcmp(argv[i], "starttls") == 0 ? DW_TLS_STARTTLS
			        : strcmp(argv[i], "none") == 0   ? DW_TLS_NONE
			                                         : DW_TLS_IMPLICIT;
		} else if (strcmp(o, "--allow-plaintext") == 0)
			a.allow_plaintext = 1;
		else if (strcmp(o, "--ca") == 0 && need(i, argc, 1))
			a.ca_file = argv[++i];
		else if (strcmp(o, "--no-verify") == 0)
			a.verify = 0;
		else if (strcmp(o, "--user") == 0 && need(i, argc, 1))
			a.username = argv[++i];
		else if (strcmp(o, "--pass") == 0 && need(i, argc, 1))
			a.password = argv[++i];
		else if (strcmp(o, "--xoauth2") == 0)
			a.auth = DW_AUTH_XOAUTH2;
		else if (strcmp(o, "--folder") == 0 && need(i, argc, 1))
			a.folder = argv[++i];
		else if (strcmp(o, "--timeout") == 0 && need(i, argc, 1))
			a.timeout = (unsigned)atoi(argv[++i]);
		else if (strcmp(o, "--poll") == 0)
			a.mode = DW_MODE_POLL;
		else if (strcmp(o, "--name") == 0 && need(i, argc, 1))
			a.name = argv[++i];
		else if (strcmp(o, "--keep-going") == 0)
			keep_going = 1;
		else
			usage();
	}

	s = dw_source_imap_new(&a);
	while (i < argc && rc == DW_OK) {
		const char *cmd = argv[i++];
		err[0] = '\0';
		if (strcmp(cmd, "open") == 0) {
			uint32_t v = 0;
			rc = s->ops->open(s, &v, err, sizeof err);
			if (rc == DW_OK)
				printf("open uidvalidity=%lu\n", (unsigned long)v);
		} else if (strcmp(cmd, "fetch") == 0 || strcmp(cmd, "drain") == 0) {
			struct run r = {0, 0, 0};
			uint64_t max_bytes, max_msg;
			int more = 0, drain = strcmp(cmd, "drain") == 0;
			long t0 = now_ms();

			if (i + 3 > argc)
				usage();
			r.last = (uint32_t)strtoul(argv[i], NULL, 10);
			max_bytes = strtoull(argv[i + 1], NULL, 10);
			max_msg = strtoull(argv[i + 2], NULL, 10);
			i += 3;
			do {
				size_t before = r.n;
				rc = s->ops->fetch(s, r.last, max_bytes, max_msg, on_msg, &r, &more, err, sizeof err);
				if (rc != DW_OK)
					break;
				printf("batch n=%zu more=%d\n", r.n - before, more);
				if (r.n == before)
					break; /* nothing delivered: do not spin */
			} while (drain && more);
			if (rc == DW_OK && drain)
				printf("total n=%zu bytes=%llu ms=%ld\n", r.n, (unsigned long long)r.bytes,
				       now_ms() - t0);
		} else if (strcmp(cmd, "move") == 0) {
			uint32_t *u = NULL;
			size_t n = 0;
			const char *folder, *p;
			if (i + 2 > argc)
				usage();
			folder = argv[i];
			for (p = argv[i + 1]; *p != '\0';) {
				char *end;
				unsigned long v = strtoul(p, &end, 10);
				if (end == p)
					usage();
				u = xreallocarray(u, n + 1, sizeof *u);
				u[n++] = (uint32_t)v;
				p = *end == ',' ? end + 1 : end;
			}
			i += 2;
			rc = s->ops->move(s, u, n, folder, err, sizeof err);
			free(u);
			if (rc == DW_OK)
				printf("move ok\n");
		} else if (strcmp(cmd, "wait") == 0) {
			int fd = -1, secs, new_mail = 0, readable = 0, cycles = 0;
			const char *sh = NULL;
			long t0;
			if (i + 1 > argc)
				usage();
			secs = atoi(argv[i++]);
			if (i < argc && strcmp(argv[i], "open") != 0 && strcmp(argv[i], "fetch") != 0 &&
			    strcmp(argv[i], "drain") != 0 && strcmp(argv[i], "move") != 0 &&
			    strcmp(argv[i], "wait") != 0 && strcmp(argv[i], "close") != 0 &&
			    strcmp(argv[i], "sh") != 0)
				sh = argv[i++];
			/* Like the agent: wait, and wait again after a wake-up
			 * without new mail (Dovecot's "* OK Still here"), until
			 * new mail or SECONDS are over. */
			t0 = now_ms();
			do {
				rc = s->ops->start_wait(s, &fd, err, sizeof err);
				if (rc != DW_OK)
					break;
				if (cycles == 0 && sh != NULL && system(sh) != 0)
					fprintf(stderr, "imap_driver: command failed: %s\n", sh);
				if (fd >= 0) {
					struct pollfd pfd = {fd, POLLIN, 0};
					long left = secs * 1000L - (now_ms() - t0);
					readable = poll(&pfd, 1, left > 0 ? (int)left : 0) == 1;
				}
				rc = s->ops->end_wait(s, &new_mail, err, sizeof err);
				cycles++;
			} while (rc == DW_OK && fd >= 0 && !new_mail && now_ms() - t0 < secs * 1000L);
			if (rc == DW_OK && fd < 0)
				printf("wait fd=none\n");
			else if (rc == DW_OK)
				printf("wait readable=%d ms=%ld new_mail=%d cycles=%d\n", readable, now_ms() - t0,
				       new_mail, cycles);
		} else if (strcmp(cmd, "close") == 0) {
			s->ops->close(s);
			printf("close\n");
		} else if (strcmp(cmd, "sh") == 0) {
			if (i + 1 > argc)
				usage();
			if (system(argv[i++]) != 0)
				fprintf(stderr, "imap_driver: command failed: %s\n", argv[i - 1]);
		} else {
			usage();
		}
		if (rc != DW_OK) {
			printf("error rc=%d: %s\n", rc, err);
			failed = 1;
			if (keep_going)
				rc = DW_OK;
		}
	}
	s->ops->free(s);
	return failed ? 1 : 0;
}
