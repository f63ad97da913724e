/*
 * test_maildir.c - the maildir source (src/source_maildir.c) on a temporary
 * Maildir filled with corpus and fixture mails: uid assignment in mtime
 * order, batched fetches, checkpoints, new mail, moves into Maildir++
 * folders, the uid list surviving a reopen or being rebuilt, oversize
 * messages, symbolic links and other non-files, and files renamed by a mail
 * reader while we work.
 */
#include "dw/source.h"
#include "dw/util.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NMSG 20
#define MAXMSG 64
#define T0 1700000000

static const char *const sources[NMSG] = {
    "tests/data/mail/cte-missing.eml",       "tests/data/mail/folded-ar.eml",
    "tests/data/mail/gzip-labelled-zip.eml", "tests/data/mail/human.eml",
    "tests/data/mail/inline-xml.eml",        "tests/data/mail/lf-only.eml",
    "tests/data/mail/octet-stream-zip.eml",  "tests/data/mail/qp-xml.eml",
    "tests/data/mail/related-html.eml",      "tests/data/mail/rfc822-base64.eml",
    "tests/data/mail/rfc822-depth1.eml",     "tests/data/mail/rfc822-depth3.eml",
    "tests/data/mail/rfc822-depth4.eml",     "tests/data/mail/single-part-gzip.eml",
    "tests/data/mail/subject-2047.eml",      "tests/data/mail/two-reports.eml",
    "tests/data/corpus/aggregate/parsedmarc/twilight.eml",
    "tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-100.eml",
    "tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-102.eml",
    "tests/data/corpus/aggregate/stalwart-mail-auth/dmarc-feedback-104.eml",
};

/* What the test put into the maildir, indexed by the uid we expect. */
struct msg {
	char *rel;           /* path below the maildir: "new/x" or "cur/x:2,S" */
	unsigned char *data;
	size_t len;
	time_t mtime;
};
static struct msg want[MAXMSG + 1];
static char root[64], md[128];

/* What a fetch delivered. */
struct got {
	uint32_t uid[MAXMSG * 2];
	int ok[MAXMSG * 2];      /* data matched what we expect for that uid */
	int null[MAXMSG * 2];    /* delivered without data */
	uint32_t size[MAXMSG * 2];
	int64_t date[MAXMSG * 2];
	size_t n;
	size_t stop_after;       /* return 42 after this many (0: never) */
	void (*hook)(uint32_t uid); /* run after delivering uid */
};

static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		printf("Bail out! %s: %s\n", path, strerror(errno));
		exit(1);
	}
	unsigned char *buf = xmalloc(1 << 20);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static char *
mdpath(const char *rel)
{
	return xasprintf("%s/%s", md, rel);
}

static void
put(const char *rel, const unsigned char *data, size_t len, time_t mtime)
{
	char *p = mdpath(rel);
	FILE *f = fopen(p, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		printf("Bail out! cannot write %s\n", p);
		exit(1);
	}
	if (mtime != 0) {
		struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
		utimes(p, tv);
	}
	free(p);
}

static int
exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int
on_msg(void *ctx, const struct dw_msg *m, char *err, size_t errlen)
{
	struct got *g = ctx;
	(void)err;
	(void)errlen;
	if (g->n >= MAXMSG * 2)
		return 1;
	size_t k = g->n++;
	g->uid[k] = m->uid;
	g->null[k] = m->data == NULL;
	g->size[k] = m->size;
	g->date[k] = m->internaldate;
	g->ok[k] = m->uid <= MAXMSG && want[m->uid].data != NULL && m->data != NULL && m->len == want[m->uid].len &&
	           memcmp(m->data, want[m->uid].data, m->len) == 0 && m->size == m->len &&
	           m->internaldate == (int64_t)want[m->uid].mtime;
	if (g->hook)
		g->hook(m->uid);
	if (g->stop_after && g->n == g->stop_after)
		return 42;
	return 0;
}

static int
fetch(struct dw_source *s, uint32_t after, uint64_t max_bytes, uint64_t max_msg, struct got *g, int *more)
{
	char err[512] = "";
	int rc = s->ops->fetch(s, after, max_bytes, max_msg, on_msg, g, more, err, sizeof err);
	if (rc != DW_OK && rc != 42)
		diag("fetch: %s", err);
	return rc;
}

/* Fetch everything after `after` in one go. */
static void
fetch_all(struct dw_source *s, uint32_t after, struct got *g)
{
	int more = 0;
	memset(g, 0, sizeof *g);
	is_int(fetch(s, after, UINT64_MAX, 1 << 20, g, &more), DW_OK, "fetch after %u", (unsigned)after);
	is_int(more, 0, "nothing more after one big fetch");
}

/* Every delivered message was the one expected for its uid, ascending. */
static int
all_ok(const struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (!g->ok[i] || (i > 0 && g->uid[i] <= g->uid[i - 1]))
			return 0;
	return 1;
}

static int
has_uid(const struct got *g, uint32_t uid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->uid[i] == uid)
			return 1;
	return 0;
}

static uint32_t
open_src(struct dw_source *s, int want_rc, char *err, size_t errlen)
{
	uint32_t v = 0;
	int rc = s->ops->open(s, &v, err, errlen);
	if (rc != want_rc)
		diag("open: rc %d: %s", rc, err);
	return rc == DW_OK ? v : 0;
}

static char *
read_text(const char *path)
{
	size_t n;
	unsigned char *b = slurp(path, &n);
	b[n] = '\0';
	return (char *)b;
}

/* ---- fixtures ---- */

static void
fill(void)
{
	snprintf(root, sizeof root, "/tmp/dw-maildir.XXXXXX");
	if (mkdtemp(root) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(md, sizeof md, "%s/Maildir", root);
	const char *subs[] = {"", "/cur", "/new", "/tmp"};
	for (int i = 0; i < 4; i++) {
		char *p = xasprintf("%s%s", md, subs[i]);
		mkdir(p, 0700);
		free(p);
	}
	/* Source file k gets mtime rank (7k mod 20): uid order is neither the
	 * source order nor the name order. Even ones wait in new/, odd ones
	 * were seen by a reader (cur/, ":2,S"). */
	for (int k = 0; k < NMSG; k++) {
		int rank = (7 * k) % NMSG;
		struct msg *w = &want[rank + 1];
		w->data = slurp(sources[k], &w->len);
		w->mtime = T0 + 10 * rank;
		if (k % 2 == 0)
			w->rel = xasprintf("new/%d.M%dP42.host", T0 + 1000 - k, k);
		else
			w->rel = xasprintf("cur/%d.M%dP42.host:2,S", T0 + 1000 - k, k);
		put(w->rel, w->data, w->len, w->mtime);
	}
}

static void
rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	if (system(cmd) != 0)
		diag("could not remove %s", path);
	free(cmd);
}

/* ---- tests ---- */

static struct dw_source *g_src;

static void
hook_rename_next(uint32_t uid)
{
	/* A reader flags message 4 while we deliver 3, and deletes 5. */
	if (uid == 3) {
		char *from = mdpath(want[4].rel);
		char *base = xstrdup(strrchr(want[4].rel, '/') + 1);
		char *colon = strchr(base, ':');
		if (colon)
			*colon = '\0';
		char *rel = xasprintf("cur/%s:2,RS", base);
		char *to = mdpath(rel);
		ok(rename(from, to) == 0, "reader renamed %s", want[4].rel);
		free(want[4].rel);
		want[4].rel = rel;
		free(from);
		free(to);
		free(base);
		char *gone = mdpath(want[5].rel);
		ok(unlink(gone) == 0, "reader deleted uid 5");
		free(gone);
	}
}

int
main(void)
{
	char err[512];
	struct got g;
	int more;

	fill();
	struct dw_account_cfg acct = {.name = "test", .source = DW_SRC_MAILDIR, .path = md, .folder = "INBOX"};
	struct dw_source *s = dw_source_maildir_new(&acct);
	g_src = s;
	is_str(s->ops->kind, "maildir", "kind");

	is_int(s->ops->fetch(s, 0, 1, 1, on_msg, &g, &more, err, sizeof err), DW_E_SOURCE, "fetch before open");

	/* Open: uids 1..20 in mtime order. */
	uint32_t v1 = open_src(s, DW_OK, err, sizeof err);
	ok(v1 != 0, "uidvalidity %u", (unsigned)v1);
	char *lp = mdpath("dmarcwatch-uidlist");
	char *text = read_text(lp);
	char *line1 = xasprintf("V%u N21\n", (unsigned)v1);
	ok(strncmp(text, line1, strlen(line1)) == 0, "uid list starts %.*s", (int)strlen(line1) - 1, line1);
	free(text);
	free(line1);

	fetch_all(s, 0, &g);
	is_int(g.n, 20, "20 messages");
	ok(g.uid[0] == 1 && g.uid[19] == 20, "uids 1..20");
	ok(all_ok(&g), "each uid is the message with that mtime rank, data and date exact");

	/* Batches: one byte per batch still delivers one message each time. */
	memset(&g, 0, sizeof g);
	uint32_t after = 0;
	int calls = 0;
	do {
		size_t before = g.n;
		if (fetch(s, after, 1, 1 << 20, &g, &more) != DW_OK)
			break;
		calls++;
		if (g.n != before + 1) {
			ok(0, "batch %d delivered %zu", calls, g.n - before);
			break;
		}
		after = g.uid[g.n - 1];
	} while (more);
	is_int(calls, 20, "max_bytes 1: twenty batches");
	ok(g.n == 20 && all_ok(&g), "batches deliver every message once, in order");

	memset(&g, 0, sizeof g);
	uint64_t three = want[1].len + want[2].len + want[3].len;
	is_int(fetch(s, 0, three, 1 << 20, &g, &more), DW_OK, "fetch 3 messages' worth");
	ok(g.n == 3 && g.uid[2] == 3 && more == 1, "three delivered, more set (%zu)", g.n);
	memset(&g, 0, sizeof g);
	is_int(fetch(s, 3, three - 1, 1 << 20, &g, &more), DW_OK, "a little less than 3 messages");
	ok(g.n >= 1 && g.n < 3 && g.uid[0] == 4 && more == 1, "fewer delivered, from uid 4 (%zu)", g.n);

	/* Checkpoints. */
	fetch_all(s, 15, &g);
	ok(g.n == 5 && g.uid[0] == 16 && all_ok(&g), "after 15: 16..20");
	fetch_all(s, 20, &g);
	is_int(g.n, 0, "after 20: nothing");

	/* The callback stops the fetch. */
	memset(&g, 0, sizeof g);
	g.stop_after = 3;
	is_int(fetch(s, 0, UINT64_MAX, 1 << 20, &g, &more), 42, "callback's error is returned");
	ok(g.n == 3 && more == 1, "stopped after 3, more set");

	/* Waiting: no change, then new mail. */
	int fd = 0, nm = -1;
	is_int(s->ops->start_wait(s, &fd, err, sizeof err), DW_OK, "start_wait");
	is_int(fd, -1, "no descriptor: poll");
	is_int(s->ops->end_wait(s, &nm, err, sizeof err), DW_OK, "end_wait");
	is_int(nm, 0, "no new mail");
	want[21].data = slurp(sources[0], &want[21].len);
	want[21].mtime = T0 + 5000;
	want[21].rel = xstrdup("new/1800000000.M1P1.host");
	put(want[21].rel, want[21].data, want[21].len, want[21].mtime);
	s->ops->start_wait(s, &fd, err, sizeof err);
	is_int(s->ops->end_wait(s, &nm, err, sizeof err), DW_OK, "end_wait after delivery");
	is_int(nm, 1, "new mail seen");
	fetch_all(s, 20, &g);
	ok(g.n == 1 && g.uid[0] == 21 && g.ok[0], "the new file gets uid 21");

	/* A reader moves a message from new/ to cur/ and flags it: same uid. */
	{
		char *from = mdpath(want[1].rel);
		char *base = xstrdup(strrchr(want[1].rel, '/') + 1);
		char *rel = xasprintf("cur/%s:2,S", base);
		char *to = mdpath(rel);
		if (strncmp(want[1].rel, "new/", 4) == 0 && rename(from, to) == 0) {
			free(want[1].rel);
			want[1].rel = rel;
		} else {
			free(rel);
		}
		free(from);
		free(to);
		free(base);
		fetch_all(s, 0, &g);
		ok(g.n == 21 && g.uid[0] == 1 && all_ok(&g), "renamed by a reader: same uid");
	}

	/* Renamed and deleted between the scan and the read. */
	memset(&g, 0, sizeof g);
	g.hook = hook_rename_next;
	is_int(fetch(s, 0, UINT64_MAX, 1 << 20, &g, &more), DW_OK, "fetch while a reader works");
	ok(has_uid(&g, 4) && !has_uid(&g, 5) && has_uid(&g, 6) && g.n == 20 && all_ok(&g),
	   "uid 4 found under its new name, uid 5 skipped");
	free(want[5].data);
	want[5].data = NULL;

	/* Oversize. */
	memset(&g, 0, sizeof g);
	is_int(fetch(s, 0, UINT64_MAX, 2000, &g, &more), DW_OK, "fetch with max_msg 2000");
	int over_ok = 1, nnull = 0;
	for (size_t i = 0; i < g.n; i++) {
		struct msg *w = &want[g.uid[i]];
		if (w->len > 2000)
			over_ok &= g.null[i] && g.size[i] == w->len && g.date[i] == (int64_t)w->mtime;
		else
			over_ok &= !g.null[i] && g.ok[i];
		nnull += g.null[i];
	}
	ok(over_ok && nnull > 0 && nnull < (int)g.n, "messages over 2000 bytes: data NULL, size set (%d of %zu)",
	   nnull, g.n);

	/* Things in new/ that are not messages. */
	put("outside", want[2].data, want[2].len, 0);
	char *target = xasprintf("%s/outside", md);
	char *link = mdpath("new/1900000000.Mlink.host");
	ok(symlink(target, link) == 0, "symlink in new/");
	char *link2 = mdpath("cur/1900000001.Mlink.host:2,S");
	ok(symlink("/etc/passwd", link2) == 0, "symlink in cur/ to /etc/passwd");
	char *sub = mdpath("new/1900000002.Mdir.host");
	mkdir(sub, 0700);
	char *fifo = mdpath("new/1900000003.Mfifo.host");
	ok(mkfifo(fifo, 0600) == 0, "fifo in new/");
	put("new/.hidden", want[2].data, want[2].len, 0);
	fetch_all(s, 21, &g);
	is_int(g.n, 0, "symlinks, directories, fifos and dot files are not messages");
	unlink(link);
	unlink(link2);
	rmdir(sub);
	unlink(fifo);
	free(target);
	free(link);
	free(link2);
	free(sub);
	free(fifo);

	/* Move five messages (and one uid that does not exist) to Archive. */
	uint32_t mv[] = {2, 4, 6, 8, 10, 999};
	is_int(s->ops->move(s, mv, 6, "Archive", err, sizeof err), DW_OK, "move to Archive");
	char *arch = xasprintf("%s/.Archive", md);
	struct stat st;
	ok(lstat(arch, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, ".Archive created, 0700");
	int moved_ok = 1;
	for (int i = 0; i < 5; i++) {
		struct msg *w = &want[mv[i]];
		char *in = mdpath(w->rel);
		char *out = xasprintf("%s/cur/%s", arch, strrchr(w->rel, '/') + 1);
		moved_ok &= !exists(in) && exists(out);
		free(in);
		free(out);
	}
	ok(moved_ok, "the five files are in .Archive/cur under their names");
	char *tmpd = xasprintf("%s/tmp", arch), *newd = xasprintf("%s/new", arch), *mf = xasprintf("%s/maildirfolder", arch);
	ok(exists(tmpd) && exists(newd) && exists(mf), ".Archive has tmp/ new/ and maildirfolder");
	free(tmpd);
	free(newd);
	free(mf);
	fetch_all(s, 0, &g);
	ok(g.n == 15 && !has_uid(&g, 2) && !has_uid(&g, 10) && has_uid(&g, 1) && all_ok(&g),
	   "moved messages are gone from later fetches (%zu left)", g.n);
	text = read_text(lp);
	ok(strstr(text, "\n2 ") == NULL && strstr(text, "\n10 ") == NULL && strstr(text, "\n11 ") != NULL &&
	       strstr(text, "\n5 ") == NULL,
	   "moved and deleted messages are gone from the uid list");
	free(text);
	is_int(s->ops->move(s, mv, 5, "Archive", err, sizeof err), DW_OK, "moving them again: ignored");
	is_int(s->ops->move(s, mv, 1, "INBOX", err, sizeof err), DW_OK, "moving to the folder itself: no-op");
	is_int(s->ops->move(s, mv, 1, "../evil", err, sizeof err), DW_E_CONFIG, "folder ../evil refused");
	is_int(s->ops->move(s, mv, 1, "a..b", err, sizeof err), DW_E_CONFIG, "folder a..b refused");
	is_int(s->ops->move(s, mv, 1, ".hidden", err, sizeof err), DW_E_CONFIG, "folder .hidden refused");

	/* Reopen: same uidvalidity, same uids. */
	s->ops->close(s);
	uint32_t v2 = open_src(s, DW_OK, err, sizeof err);
	is_int(v2, v1, "reopen keeps the uidvalidity");
	fetch_all(s, 0, &g);
	ok(g.n == 15 && all_ok(&g) && has_uid(&g, 21), "reopen keeps the uids");

	/* The Archive folder as a source of its own. */
	struct dw_account_cfg acct2 = acct;
	acct2.folder = "Archive";
	struct dw_source *s2 = dw_source_maildir_new(&acct2);
	ok(open_src(s2, DW_OK, err, sizeof err) != 0, "open folder Archive");
	memset(&g, 0, sizeof g);
	is_int(fetch(s2, 0, UINT64_MAX, 1 << 20, &g, &more), DW_OK, "fetch Archive");
	ok(g.n == 5 && g.uid[0] == 1 && g.uid[4] == 5, "Archive: five messages, uids 1..5");
	char *alist = xasprintf("%s/dmarcwatch-uidlist", arch);
	ok(exists(alist), "Archive keeps its own uid list");
	free(alist);
	s2->ops->free(s2);

	acct2.folder = "Reports/2024";
	s2 = dw_source_maildir_new(&acct2);
	ok(open_src(s2, DW_OK, err, sizeof err) != 0, "open folder Reports/2024");
	char *nested = xasprintf("%s/.Reports.2024/cur", md);
	ok(exists(nested), "created as .Reports.2024");
	free(nested);
	s2->ops->free(s2);

	/* Deleting the uid list: a new uidvalidity, uids numbered afresh. */
	s->ops->close(s);
	unlink(lp);
	uint32_t v3 = open_src(s, DW_OK, err, sizeof err);
	ok(v3 != 0 && v3 != v1, "new uidvalidity after deleting the list (%u, was %u)", (unsigned)v3, (unsigned)v1);
	memset(&g, 0, sizeof g);
	fetch(s, 0, UINT64_MAX, 1 << 20, &g, &more);
	ok(g.n == 15 && g.uid[0] == 1 && g.uid[14] == 15, "renumbered 1..15");
	int order_ok = 1;
	for (size_t i = 1; i < g.n; i++)
		order_ok &= g.date[i] >= g.date[i - 1];
	ok(order_ok, "in mtime order");

	/* Corrupt lists are rebuilt under a new uidvalidity. */
	static const char *const corrupt[] = {
	    "hello\n", "", "V\n", "V1 N0\n", "V0 N5\n", "V1 N5\n7 x\n", "V1 N5\n2 x\n1 y\n", "V1 N5\n1 x",
	    "V1 N5\n1 x:2,S\n", "V1 N5\n1 a\n2 a\n", "V1 N5\n1 \n", "V1  N5\n", "V99999999999 N5\n",
	};
	uint32_t prev = v3;
	for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
		s->ops->close(s);
		FILE *f = fopen(lp, "wb");
		fputs(corrupt[i], f);
		fclose(f);
		uint32_t v = open_src(s, DW_OK, err, sizeof err);
		text = read_text(lp);
		int good = v != 0 && v != prev && v != 1 && text[0] == 'V' && strstr(text, "N16\n") != NULL;
		free(text);
		ok(good, "corrupt list %zu rebuilt (uidvalidity %u)", i, (unsigned)v);
		prev = v;
	}
	memset(&g, 0, sizeof g);
	fetch(s, 0, UINT64_MAX, 1 << 20, &g, &more);
	ok(g.n == 15 && g.uid[14] == 15, "rebuilt list numbers 1..15");

	/* A list written by hand is honoured: known key keeps its uid. */
	s->ops->close(s);
	{
		char *base = xstrdup(strrchr(want[1].rel, '/') + 1);
		char *colon = strchr(base, ':');
		if (colon)
			*colon = '\0';
		FILE *f = fopen(lp, "wb");
		fprintf(f, "V777 N100\n50 %s\n60 vanished.file\n", base);
		fclose(f);
		free(base);
	}
	is_int(open_src(s, DW_OK, err, sizeof err), 777, "uidvalidity read from the list");
	memset(&g, 0, sizeof g);
	fetch(s, 0, UINT64_MAX, 1 << 20, &g, &more);
	ok(g.n == 15 && g.uid[0] == 50 && g.uid[1] == 100 && g.uid[14] == 113, "known file keeps uid 50, others 100..");
	text = read_text(lp);
	ok(strncmp(text, "V777 N114\n50 ", 13) == 0 && strstr(text, "vanished") == NULL, "vanished entry dropped");
	free(text);
	s->ops->close(s);

	/* A symlinked uid list is not followed. */
	unlink(lp);
	char *decoy = xasprintf("%s/decoy", root);
	put("../decoy", (const unsigned char *)"V5 N2\n", 6, 0);
	ok(symlink(decoy, lp) == 0, "uid list is a symlink");
	uint32_t v4 = open_src(s, DW_OK, err, sizeof err);
	text = read_text(decoy);
	ok(v4 != 5 && strcmp(text, "V5 N2\n") == 0, "symlinked list ignored and its target untouched");
	free(text);
	free(decoy);
	ok(lstat(lp, &st) == 0 && S_ISREG(st.st_mode), "replaced by a regular file");
	s->ops->close(s);

	/* Errors. */
	struct dw_account_cfg bad = acct;
	char *missing = xasprintf("%s/nope", root);
	bad.path = missing;
	struct dw_source *s3 = dw_source_maildir_new(&bad);
	err[0] = '\0';
	open_src(s3, DW_E_SOURCE, err, sizeof err);
	ok(strstr(err, missing) != NULL && strstr(err, "No such file") != NULL, "missing path: %s", err);
	s3->ops->free(s3);
	bad.path = root; /* a directory without cur/ new/ tmp/ */
	s3 = dw_source_maildir_new(&bad);
	open_src(s3, DW_E_SOURCE, err, sizeof err);
	ok(strstr(err, "not a maildir") != NULL, "not a maildir: %s", err);
	s3->ops->free(s3);
	bad.path = md;
	bad.folder = "../x";
	s3 = dw_source_maildir_new(&bad);
	open_src(s3, DW_E_CONFIG, err, sizeof err);
	ok(strstr(err, "../x") != NULL, "bad folder name: %s", err);
	s3->ops->free(s3);
	free(missing);
	bad.folder = NULL; /* NULL folder means INBOX */
	s3 = dw_source_maildir_new(&bad);
	ok(open_src(s3, DW_OK, err, sizeof err) != 0, "folder NULL is INBOX");
	s3->ops->free(s3);

	s->ops->free(s);
	for (int i = 0; i <= MAXMSG; i++) {
		free(want[i].data);
		free(want[i].rel);
	}
	free(lp);
	free(arch);
	rm_rf(root);
	return done_testing();
}
