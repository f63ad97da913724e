/*
 * source_maildir.c - report mail from a local Maildir, the second
 * implementation of the source interface (dw/source.h) beside IMAP.
 *
 * Layout (Maildir++, as Courier and Dovecot keep it): the account's path is
 * the INBOX maildir (cur/ new/ tmp/); any other folder F is the sub-maildir
 * path/.F, created when missing. A "/" in a folder name is the hierarchy
 * separator and becomes "." ("Reports/2024" is path/.Reports.2024).
 *
 * UIDs. Maildir has none, so we keep them ourselves, as Dovecot does in
 * dovecot-uidlist: the selected folder holds "dmarcwatch-uidlist",
 *
 *   V<uidvalidity> N<next uid>
 *   <uid> <file name up to the first ":">
 *   ...
 *
 * Keying on the name before ":" keeps a message's uid when a mail reader
 * moves it from new/ to cur/ or changes its flags (":2,S"). Every scan
 * gives files we have not seen the next uids in (mtime, name) order and
 * forgets files that are gone; the list is replaced atomically (write a
 * temporary file, fsync, rename). A list that cannot be read is rebuilt
 * with a new uidvalidity, which tells the agent to rescan the folder (its
 * dedup key keeps reports from being counted twice).
 *
 * Safety: the maildir may hold anything a local user or a delivery agent
 * put there. Directory entries are examined with lstat semantics, only
 * regular files are read (opened with O_NOFOLLOW and O_NONBLOCK, then
 * checked again with fstat), and symbolic links are never followed out of
 * the maildir. Nothing here blocks on the network: start_wait offers no
 * descriptor, so the agent polls.
 */
#include "dw/source.h"
#include "dw/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define UIDLIST_NAME "dmarcwatch-uidlist"
#define UIDLIST_TMP "dmarcwatch-uidlist.tmp"
/* A uid list this big would describe millions of messages: corrupt. */
#define UIDLIST_MAX (64u << 20)
/* Files in new/ and cur/ together that one scan accepts. */
#define FILES_MAX 1000000u
/* Folder names longer than this are refused (NAME_MAX is 255 with the dot). */
#define FOLDER_NAME_MAX 200
/* The last uid we hand out; leaves room so next_uid never wraps. */
#define UID_LAST (UINT32_MAX - 1)

/* One message we know: a uid and where its file was at the last scan. */
struct entry {
	uint32_t uid;
	int drop;      /* gone or moved away: removed by entries_compact */
	char *key;     /* owned: the file name up to ":" */
	char *name;    /* owned: the whole current file name; NULL until seen */
	char sub;      /* 'n' (new/) or 'c' (cur/); 0 until seen */
	uint64_t size; /* at the last scan */
};

/* One regular file found by a scan. */
struct file {
	char *name;    /* owned until taken over by an entry */
	size_t keylen; /* bytes of name before ":" */
	char sub;
	struct timespec mtime;
	uint64_t size;
	int taken;     /* matched to a known entry, or a duplicate key */
};

struct mdir {
	int is_open;
	char *root;    /* owned: the account's path (INBOX) */
	char *dir;     /* owned: the selected folder's maildir */
	char *list;    /* owned: dir/dmarcwatch-uidlist */
	uint32_t uidvalidity, next_uid;
	int renumber;  /* the uid space ran out: renumber at the next open */
	struct entry *e; /* sorted by uid */
	size_t n, cap;
	/* The directories' mtimes at the last scan, and when it ran. */
	struct timespec seen_new, seen_cur;
	time_t scanned_at;
};

/* ---- small helpers ---- */

static int
ascii_ieq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		int x = (unsigned char)*a, y = (unsigned char)*b;
		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return 0;
	}
	return *a == *b;
}

static int
ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	return (a.tv_nsec > b.tv_nsec) - (a.tv_nsec < b.tv_nsec);
}

/*
 * A fresh uidvalidity: the current time, as Dovecot does, but never the
 * value we are replacing and never one this process handed out before, so
 * a list rebuilt within the same second still looks new to the agent.
 */
static uint32_t
fresh_uidvalidity(uint32_t avoid)
{
	static _Atomic uint32_t last;
	uint32_t t = (uint32_t)time(NULL);
	uint32_t prev = atomic_load(&last);
	uint32_t v;
	do {
		v = t > prev ? t : prev + 1;
		if (v == avoid)
			v++;
		if (v == 0)
			v = 1;
	} while (!atomic_compare_exchange_weak(&last, &prev, v));
	return v;
}

/*
 * The maildir directory for a folder name, or NULL (with err) when the name
 * is not usable. "INBOX" (any case) is the root itself.
 */
static char *
folder_dir(const char *root, const char *folder, char *err, size_t errlen)
{
	if (folder == NULL || ascii_ieq(folder, "INBOX"))
		return xstrdup(root);
	size_t len = strlen(folder);
	if (len == 0 || len > FOLDER_NAME_MAX) {
		dw_err(err, errlen, DW_E_CONFIG, "maildir %s: folder name \"%.40s\" is empty or too long", root, folder);
		return NULL;
	}
	char *name = xstrdup(folder);
	for (char *c = name; *c != '\0'; c++) {
		if (*c == '/')
			*c = '.';
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			free(name);
			dw_err(err, errlen, DW_E_CONFIG, "maildir %s: folder name has a control character", root);
			return NULL;
		}
	}
	/* Every hierarchy level must be a plain name, so the folder can never be
	 * "..", hidden or outside the root. */
	if (name[0] == '.' || name[len - 1] == '.' || strstr(name, "..") != NULL) {
		dw_err(err, errlen, DW_E_CONFIG,
		       "maildir %s: folder name \"%s\" has an empty level (leading, trailing or doubled \".\" or \"/\")",
		       root, folder);
		free(name);
		return NULL;
	}
	char *dir = xasprintf("%s/.%s", root, name);
	free(name);
	return dir;
}

/* mkdir that tolerates an existing entry (checked by the caller). */
static int
make_dir(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot create %s: %s", path, strerror(errno));
	return DW_OK;
}

/* path must be a real directory, not a symbolic link to one. */
static int
check_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s is not a directory%s", path,
		              S_ISLNK(st.st_mode) ? " (a symbolic link, not followed)" : "");
	return DW_OK;
}

/*
 * Make sure dir is a maildir. The INBOX (the configured path) must exist
 * already: creating cur/new/tmp in a mistyped directory would only hide the
 * mistake. Sub-folders are created on demand.
 */
static int
ensure_maildir(const char *dir, int create, char *err, size_t errlen)
{
	static const char *const subs[] = {"cur", "new", "tmp"};
	int rc;
	struct stat st;
	int made = 0;

	if (create) {
		if (lstat(dir, &st) != 0) {
			if (errno != ENOENT)
				return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", dir, strerror(errno));
			if ((rc = make_dir(dir, err, errlen)) != DW_OK)
				return rc;
			made = 1;
		}
		if ((rc = check_dir(dir, err, errlen)) != DW_OK)
			return rc;
	} else {
		/* The configured path itself may be a symbolic link: the user chose it. */
		if (stat(dir, &st) != 0)
			return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", dir, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s is not a directory", dir);
	}
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);
		if (create && (rc = make_dir(p, err, errlen)) != DW_OK) {
			free(p);
			return rc;
		}
		if (!create && lstat(p, &st) != 0 && errno == ENOENT) {
			rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: %s is not a maildir (no %s/)", dir, subs[i]);
			free(p);
			return rc;
		}
		rc = check_dir(p, err, errlen);
		free(p);
		if (rc != DW_OK)
			return rc;
	}
	if (made) {
		/* Maildir++ marks sub-folders with an empty "maildirfolder" file
		 * so delivery agents (maildrop, Dovecot LDA) treat them as such. */
		char *p = xasprintf("%s/maildirfolder", dir);
		int fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		free(p);
	}
	return DW_OK;
}

/* ---- the uid list ---- */

static void
entries_clear(struct mdir *md)
{
	for (size_t i = 0; i < md->n; i++) {
		free(md->e[i].key);
		free(md->e[i].name);
	}
	free(md->e);
	md->e = NULL;
	md->n = md->cap = 0;
}

static struct entry *
entry_add(struct mdir *md, uint32_t uid, char *key)
{
	if (md->n == md->cap) {
		md->cap = md->cap ? 2 * md->cap : 64;
		md->e = xreallocarray(md->e, md->cap, sizeof *md->e);
	}
	struct entry *e = &md->e[md->n++];
	memset(e, 0, sizeof *e);
	e->uid = uid;
	e->key = key;
	return e;
}

/* Remove the entries marked drop, keeping the uid order. */
static void
entries_compact(struct mdir *md)
{
	size_t o = 0;
	for (size_t i = 0; i < md->n; i++) {
		if (md->e[i].drop) {
			free(md->e[i].key);
			free(md->e[i].name);
		} else {
			md->e[o++] = md->e[i];
		}
	}
	md->n = o;
}

/* Index of the first entry with a uid above uid (md->n if none). */
static size_t
first_above(const struct mdir *md, uint32_t uid)
{
	size_t lo = 0, hi = md->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (md->e[mid].uid <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the entry with this uid, or md->n. */
static size_t
find_uid(const struct mdir *md, uint32_t uid)
{
	size_t i = uid > 0 ? first_above(md, uid - 1) : md->n;
	return i < md->n && md->e[i].uid == uid ? i : md->n;
}

/* Parse a decimal uint32 at *p (no sign, no spaces); advances *p. */
static int
parse_u32(const char **p, const char *end, uint32_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (s >= end || *s < '0' || *s > '9')
		return 0;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return 0;
		s++;
	}
	*p = s;
	*out = (uint32_t)v;
	return 1;
}

/* A file name part we can keep in the list: one line, no "/" or ":". */
static int
key_ok(const char *k, size_t len)
{
	if (len == 0 || k[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (k[i] == '\n' || k[i] == '\r' || k[i] == '/' || k[i] == ':' || k[i] == '\0')
			return 0;
	return 1;
}

static int
entry_key_cmp(const void *a, const void *b)
{
	const struct entry *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

/* Parse the list text into md. Returns 1 if it is well formed. */
static int
parse_uidlist(struct mdir *md, const char *buf, size_t len, uint32_t *old_v)
{
	const char *p = buf, *end = buf + len;
	uint32_t v, next;

	if (p >= end || *p++ != 'V' || !parse_u32(&p, end, &v))
		return 0;
	*old_v = v;
	if (p >= end || *p++ != ' ' || p >= end || *p++ != 'N' || !parse_u32(&p, end, &next) || p >= end ||
	    *p++ != '\n')
		return 0;
	if (v == 0 || next == 0 || next > UID_LAST + 1)
		return 0;
	md->uidvalidity = v;
	md->next_uid = next;

	uint32_t prev = 0;
	while (p < end) {
		uint32_t uid;
		if (!parse_u32(&p, end, &uid) || p >= end || *p++ != ' ')
			return 0;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || uid <= prev || uid >= next || !key_ok(p, (size_t)(nl - p)))
			return 0;
		entry_add(md, uid, xstrndup(p, (size_t)(nl - p)));
		prev = uid;
		p = nl + 1;
	}

	/* One key, one uid: a repeated name means the file was edited by hand
	 * or mangled, and either uid could be the right one. */
	if (md->n > 1) {
		struct entry **ix = xcalloc(md->n, sizeof *ix);
		int dup = 0;
		for (size_t i = 0; i < md->n; i++)
			ix[i] = &md->e[i];
		qsort(ix, md->n, sizeof *ix, entry_key_cmp);
		for (size_t i = 1; i < md->n && !dup; i++)
			dup = strcmp(ix[i - 1]->key, ix[i]->key) == 0;
		free(ix);
		if (dup)
			return 0;
	}
	return 1;
}

/*
 * Read the uid list. A missing list starts a new one; an unreadable one is
 * rebuilt. *created says the caller must write it. Only a failing file
 * system is an error.
 */
static int
load_uidlist(struct mdir *md, int *created, char *err, size_t errlen)
{
	*created = 0;
	entries_clear(md);
	int fd = open(md->list, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno != ENOENT && errno != ELOOP)
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot open %s: %s", md->list, strerror(errno));

	uint32_t old_v = 0;
	int good = 0;
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) != 0) {
			int e = errno;
			close(fd);
			return dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", md->list, strerror(e));
		}
		if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= UIDLIST_MAX) {
			size_t want = (size_t)st.st_size, got = 0;
			char *buf = xmalloc(want);
			while (got < want) {
				ssize_t r = read(fd, buf + got, want - got);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0) {
					int e = errno;
					free(buf);
					close(fd);
					return dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot read %s: %s", md->list,
					              strerror(e));
				}
				if (r == 0)
					break;
				got += (size_t)r;
			}
			good = got == want && parse_uidlist(md, buf, got, &old_v);
			free(buf);
		}
		close(fd);
	}
	if (!good) {
		/* Missing or unreadable: start over under a new uidvalidity. */
		entries_clear(md);
		md->uidvalidity = fresh_uidvalidity(old_v);
		md->next_uid = 1;
		*created = 1;
	}
	return DW_OK;
}

/* Replace the uid list atomically: a crash leaves the old or the new one. */
static int
save_uidlist(struct mdir *md, char *err, size_t errlen)
{
	size_t cap = 64, len = 0;
	for (size_t i = 0; i < md->n; i++)
		cap += strlen(md->e[i].key) + 12;
	char *buf = xmalloc(cap);
	len += (size_t)snprintf(buf, cap, "V%" PRIu32 " N%" PRIu32 "\n", md->uidvalidity, md->next_uid);
	for (size_t i = 0; i < md->n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%" PRIu32 " %s\n", md->e[i].uid, md->e[i].key);

	char *tmp = xasprintf("%s/%s", md->dir, UIDLIST_TMP);
	int rc = DW_OK;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (dw_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) != 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, md->list) != 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot rename %s to %s: %s", tmp, md->list,
		            strerror(errno));
		unlink(tmp);
		goto out;
	}
	/* Make the rename itself durable. */
	int dfd = open(md->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	free(tmp);
	free(buf);
	return rc;
}

/* ---- scanning ---- */

static int
same_key(const struct file *x, const struct file *y)
{
	return x->keylen == y->keylen && memcmp(x->name, y->name, x->keylen) == 0;
}

static int
file_key_cmp(const void *a, const void *b)
{
	const struct file *x = a, *y = b;
	size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
	int c = memcmp(x->name, y->name, n);
	if (c != 0)
		return c;
	if (x->keylen != y->keylen)
		return x->keylen < y->keylen ? -1 : 1;
	/* The same message twice (a reader moving it right now): prefer the
	 * cur/ copy, which is where it is going. */
	if (x->sub != y->sub)
		return x->sub == 'c' ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
file_age_cmp(const void *a, const void *b)
{
	const struct file *const *x = a, *const *y = b;
	int c = ts_cmp((*x)->mtime, (*y)->mtime);
	return c != 0 ? c : strcmp((*x)->name, (*y)->name);
}

/* Find a key among the files sorted by file_key_cmp: the first file of
 * its run, which is the one kept when a key appears twice. */
static struct file *
find_file(struct file *f, size_t n, const char *key)
{
	size_t klen = strlen(key);
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		size_t kl = f[mid].keylen < klen ? f[mid].keylen : klen;
		int c = memcmp(f[mid].name, key, kl);
		if (c == 0 && f[mid].keylen != klen)
			c = f[mid].keylen < klen ? -1 : 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && f[lo].keylen == klen && memcmp(f[lo].name, key, klen) == 0)
		return &f[lo];
	return NULL;
}

static void
files_free(struct file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

/* Read the regular files of dir/sub into *f. */
static int
read_subdir(struct mdir *md, const char *sub, struct file **f, size_t *n, size_t *cap, struct timespec *mtime,
            char *err, size_t errlen)
{
	char *path = xasprintf("%s/%s", md->dir, sub);
	struct stat st;
	int rc = DW_OK;

	if (lstat(path, &st) != 0) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: %s is not a directory", path);
		free(path);
		return rc;
	}
	/* Taken before reading, so a file arriving during the scan makes the
	 * next end_wait see a newer mtime. */
	*mtime = st.st_mtim;

	DIR *d = opendir(path);
	if (d == NULL) {
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot read %s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot read %s: %s", path, strerror(errno));
			break;
		}
		const char *name = de->d_name;
		const char *colon = strchr(name, ':');
		size_t keylen = colon ? (size_t)(colon - name) : strlen(name);
		if (!key_ok(name, keylen) || strchr(name, '\n') != NULL || strchr(name, '\r') != NULL)
			continue; /* ".", "..", dot files and names the list cannot hold */
		/* lstat semantics: a symbolic link is skipped, never followed. */
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (*n >= FILES_MAX) {
			rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: %s holds more than %u messages", md->dir, FILES_MAX);
			break;
		}
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 64;
			*f = xreallocarray(*f, *cap, sizeof **f);
		}
		struct file *x = &(*f)[(*n)++];
		x->name = xstrdup(name);
		x->keylen = keylen;
		x->sub = sub[0];
		x->mtime = st.st_mtim;
		x->size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
		x->taken = 0;
	}
	closedir(d);
	free(path);
	return rc;
}

/*
 * Bring the list up to date with new/ and cur/: known files get their
 * current names, vanished ones are dropped, unknown ones get new uids.
 * Writes the list when it changed (or when force is set). at_open allows
 * renumbering everything when the uid space has run out.
 */
static int
rescan(struct mdir *md, int force, int at_open, char *err, size_t errlen)
{
	struct file *f = NULL;
	size_t nf = 0, capf = 0;
	int changed = force;
	int rc;
	time_t now = time(NULL);

	if ((rc = read_subdir(md, "new", &f, &nf, &capf, &md->seen_new, err, errlen)) != DW_OK ||
	    (rc = read_subdir(md, "cur", &f, &nf, &capf, &md->seen_cur, err, errlen)) != DW_OK) {
		files_free(f, nf);
		return rc;
	}
	md->scanned_at = now;

	if (nf > 1)
		qsort(f, nf, sizeof *f, file_key_cmp);
	for (size_t i = 1; i < nf; i++)
		if (same_key(&f[i - 1], &f[i]))
			f[i].taken = 1; /* a second file with the same key: ignored */

	if (at_open && md->renumber) {
		/* The uid space ran out last time: start a new numbering. */
		entries_clear(md);
		md->uidvalidity = fresh_uidvalidity(md->uidvalidity);
		md->next_uid = 1;
		md->renumber = 0;
		changed = 1;
	}

	/* Known messages: where are they now? */
	for (size_t i = 0; i < md->n; i++) {
		struct entry *e = &md->e[i];
		struct file *x = e->drop ? NULL : find_file(f, nf, e->key);
		if (x == NULL) {
			e->drop = 1;
			changed = 1;
			continue;
		}
		free(e->name);
		e->name = xstrdup(x->name);
		e->sub = x->sub;
		e->size = x->size;
		x->taken = 1;
	}
	entries_compact(md);

	/* New messages, oldest first. */
	size_t nnew = 0;
	for (size_t i = 0; i < nf; i++)
		nnew += !f[i].taken;
	if (nnew > 0) {
		if ((uint64_t)md->next_uid + nnew - 1 > UID_LAST) {
			md->renumber = 1;
			files_free(f, nf);
			if (changed)
				(void)save_uidlist(md, NULL, 0);
			return dw_err(err, errlen, DW_E_SOURCE,
			              "maildir %s: uids are used up; they are renumbered (new uidvalidity) on the next open",
			              md->dir);
		}
		struct file **fresh = xcalloc(nnew, sizeof *fresh);
		size_t k = 0;
		for (size_t i = 0; i < nf; i++)
			if (!f[i].taken)
				fresh[k++] = &f[i];
		qsort(fresh, nnew, sizeof *fresh, file_age_cmp);
		for (k = 0; k < nnew; k++) {
			struct file *x = fresh[k];
			struct entry *e = entry_add(md, md->next_uid++, xstrndup(x->name, x->keylen));
			e->name = xstrdup(x->name);
			e->sub = x->sub;
			e->size = x->size;
		}
		free(fresh);
		changed = 1;
	}
	files_free(f, nf);
	return changed ? save_uidlist(md, err, errlen) : DW_OK;
}

/* ---- the operations ---- */

/* Record the current mtimes of new/ and cur/ as seen. */
static void
note_dir_times(struct mdir *md)
{
	struct stat st;
	char *p = xasprintf("%s/new", md->dir);
	if (lstat(p, &st) == 0)
		md->seen_new = st.st_mtim;
	free(p);
	p = xasprintf("%s/cur", md->dir);
	if (lstat(p, &st) == 0)
		md->seen_cur = st.st_mtim;
	free(p);
	md->scanned_at = time(NULL);
}

static struct mdir *
priv(struct dw_source *s)
{
	return s->priv;
}

static void
md_close(struct dw_source *s)
{
	struct mdir *md = priv(s);
	entries_clear(md);
	free(md->root);
	free(md->dir);
	free(md->list);
	md->root = md->dir = md->list = NULL;
	md->is_open = 0;
}

static int
md_open(struct dw_source *s, uint32_t *uidvalidity, char *err, size_t errlen)
{
	struct mdir *md = priv(s);
	const struct dw_account_cfg *a = s->acct;
	int renumber = md->renumber;
	int rc, created;

	md_close(s);
	md->renumber = renumber;
	if (a->path == NULL || a->path[0] == '\0')
		return dw_err(err, errlen, DW_E_CONFIG, "account %s: maildir source without a path", a->name ? a->name : "?");

	md->root = xstrdup(a->path);
	/* The root must be a maildir in any case; then the selected folder. */
	if ((rc = ensure_maildir(md->root, 0, err, errlen)) != DW_OK)
		goto fail;
	if ((md->dir = folder_dir(md->root, a->folder, err, errlen)) == NULL) {
		rc = DW_E_CONFIG;
		goto fail;
	}
	if (strcmp(md->dir, md->root) != 0 && (rc = ensure_maildir(md->dir, 1, err, errlen)) != DW_OK)
		goto fail;
	md->list = xasprintf("%s/%s", md->dir, UIDLIST_NAME);
	if ((rc = load_uidlist(md, &created, err, errlen)) != DW_OK)
		goto fail;
	rc = rescan(md, created, 1, err, errlen);
	if (rc != DW_OK && md->renumber)
		rc = rescan(md, 1, 1, err, errlen); /* uids used up: number afresh */
	if (rc != DW_OK)
		goto fail;
	md->is_open = 1;
	*uidvalidity = md->uidvalidity;
	return DW_OK;
fail:
	renumber = md->renumber;
	md_close(s);
	md->renumber = renumber;
	return rc;
}

/*
 * Open a message file for reading without following a link and without
 * blocking on a FIFO someone swapped in. Returns the descriptor, or -1 with
 * errno (ENOENT for "gone", ELOOP/EINVAL-like for "not a regular file").
 */
static int
open_msg(const struct mdir *md, const struct entry *e, struct stat *st, char **path)
{
	*path = xasprintf("%s/%s/%s", md->dir, e->sub == 'n' ? "new" : "cur", e->name);
	int fd = open(*path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) != 0) {
		int errsv = errno;
		close(fd);
		errno = errsv;
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		errno = ELOOP;
		return -1;
	}
	return fd;
}

/* Read at most max bytes; *big is set when the file holds more. */
static int
read_msg(int fd, uint64_t size_hint, uint64_t max, unsigned char **out, size_t *len, int *big)
{
	size_t cap = size_hint < max ? (size_t)size_hint + 1 : (size_t)max + 1;
	size_t n = 0;
	unsigned char *buf = xmalloc(cap ? cap : 1);
	*big = 0;
	for (;;) {
		if (n == cap) {
			if ((uint64_t)n > max) {
				*big = 1;
				break;
			}
			cap = cap * 2 > (size_t)max + 1 ? (size_t)max + 1 : cap * 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if ((uint64_t)n > max) {
			*big = 1;
			break;
		}
	}
	if (*big) {
		free(buf);
		buf = NULL;
		n = 0;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int
md_fetch(struct dw_source *s, uint32_t after, uint64_t max_bytes, uint64_t max_msg, dw_msg_fn *fn, void *ctx,
         int *more, char *err, size_t errlen)
{
	struct mdir *md = priv(s);
	uint64_t bytes = 0;
	size_t delivered = 0;
	int rc;

	*more = 0;
	if (!md->is_open)
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: fetch before open");
	if ((rc = rescan(md, 0, 0, err, errlen)) != DW_OK)
		return rc;
	/* A single message bigger than this cannot be held in a size_t. */
	if (max_msg > SIZE_MAX / 2)
		max_msg = SIZE_MAX / 2;

	uint32_t last = after;
	uint32_t retried = 0; /* the uid we rescanned for */
	for (;;) {
		/* Positions are found by uid each time: fn may have moved messages. */
		size_t i = first_above(md, last);
		if (i >= md->n)
			break;
		struct entry *e = &md->e[i];
		uint64_t est = e->size <= max_msg ? e->size : 0;
		if (delivered > 0 && (bytes >= max_bytes || est > max_bytes - bytes)) {
			*more = 1;
			break;
		}

		struct stat st;
		char *path = NULL;
		int fd = open_msg(md, e, &st, &path);
		if (fd < 0) {
			int errsv = errno;
			if (errsv == ENOENT && retried != e->uid) {
				/* Renamed under us (a reader flagged it or moved it to cur/):
				 * look again once; the key keeps its uid. */
				free(path);
				retried = e->uid;
				if ((rc = rescan(md, 0, 0, err, errlen)) != DW_OK)
					return rc;
				continue;
			}
			if (errsv == ENOENT || errsv == ELOOP) {
				/* Gone, or no longer a regular file: nothing to deliver. */
				free(path);
				last = e->uid;
				continue;
			}
			rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot open %s: %s", path, strerror(errsv));
			free(path);
			return rc;
		}

		struct dw_msg m = {.uid = e->uid, .internaldate = (int64_t)st.st_mtime};
		uint64_t fsize = st.st_size > 0 ? (uint64_t)st.st_size : 0;
		m.size = fsize > UINT32_MAX ? UINT32_MAX : (uint32_t)fsize;
		unsigned char *buf = NULL;
		if (fsize <= max_msg) {
			size_t len = 0;
			int big = 0;
			if (read_msg(fd, fsize, max_msg, &buf, &len, &big) != 0) {
				rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot read %s: %s", path, strerror(errno));
				close(fd);
				free(path);
				return rc;
			}
			m.data = buf;
			m.len = len;
			if (big && m.size <= max_msg) /* it grew while we read it */
				m.size = max_msg + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(max_msg + 1);
		}
		close(fd);
		free(path);

		last = e->uid;
		delivered++;
		bytes += m.len;
		rc = fn(ctx, &m, err, errlen);
		free(buf);
		if (rc != DW_OK) {
			*more = first_above(md, last) < md->n;
			return rc;
		}
	}
	return DW_OK;
}

/*
 * Put the file src into dstdir under name without ever replacing a file
 * that is there already (rename(2) would): link, then unlink the original.
 * A name taken in the target gets a suffix before the ":".
 */
static int
place_file(const char *src, const char *dstdir, const char *name, char *err, size_t errlen)
{
	const char *colon = strchr(name, ':');
	size_t keylen = colon ? (size_t)(colon - name) : strlen(name);
	int rc = DW_OK;

	for (unsigned k = 0; k < 100; k++) {
		char *dst = k == 0 ? xasprintf("%s/%s", dstdir, name)
		                   : xasprintf("%s/%.*s.dw%u%s", dstdir, (int)keylen, name, k, colon ? colon : "");
		if (link(src, dst) == 0) {
			free(dst);
			if (unlink(src) != 0 && errno != ENOENT)
				return dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot remove %s: %s", src, strerror(errno));
			return DW_OK;
		}
		int e = errno;
		if (e == EEXIST) {
			free(dst);
			continue;
		}
		if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS || e == EMLINK) {
			/* No hard links here: check, then rename (a small race we accept). */
			struct stat st;
			if (lstat(dst, &st) == 0) {
				free(dst);
				continue;
			}
			if (rename(src, dst) == 0) {
				free(dst);
				return DW_OK;
			}
			e = errno;
		}
		rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot move %s to %s: %s", src, dstdir, strerror(e));
		free(dst);
		return rc;
	}
	return dw_err(err, errlen, DW_E_SOURCE, "maildir: cannot move %s: too many files named %s in %s", src, name,
	              dstdir);
}

static int
md_move(struct dw_source *s, const uint32_t *uids, size_t n, const char *folder, char *err, size_t errlen)
{
	struct mdir *md = priv(s);
	int rc = DW_OK;

	if (!md->is_open)
		return dw_err(err, errlen, DW_E_SOURCE, "maildir: move before open");
	char *dest = folder_dir(md->root, folder, err, errlen);
	if (dest == NULL)
		return DW_E_CONFIG;
	if (strcmp(dest, md->dir) == 0) {
		free(dest); /* already there */
		return DW_OK;
	}
	if ((rc = ensure_maildir(dest, 1, err, errlen)) != DW_OK) {
		free(dest);
		return rc;
	}
	char *destcur = xasprintf("%s/cur", dest);
	int rescanned = 0, changed = 0;

	for (size_t k = 0; k < n && rc == DW_OK; k++) {
		for (;;) {
			size_t i = find_uid(md, uids[k]);
			if (i >= md->n || md->e[i].drop)
				break; /* not ours (any more) */
			char *src = xasprintf("%s/%s/%s", md->dir, md->e[i].sub == 'n' ? "new" : "cur", md->e[i].name);
			struct stat st;
			if (lstat(src, &st) != 0) {
				int e = errno;
				if (e == ENOENT && !rescanned) {
					/* Renamed by a reader since the last scan: find it again. */
					free(src);
					rescanned = 1;
					if ((rc = rescan(md, 0, 0, err, errlen)) != DW_OK)
						break;
					continue;
				}
				if (e != ENOENT)
					rc = dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", src, strerror(e));
				free(src);
				break;
			}
			if (S_ISREG(st.st_mode)) {
				rc = place_file(src, destcur, md->e[i].name, err, errlen);
				if (rc == DW_OK) {
					md->e[i].drop = 1;
					changed = 1;
				}
			}
			free(src);
			break;
		}
	}
	free(destcur);
	free(dest);
	if (changed) {
		entries_compact(md);
		int save_rc = save_uidlist(md, rc == DW_OK ? err : NULL, rc == DW_OK ? errlen : 0);
		if (rc == DW_OK)
			rc = save_rc;
	}
	/* Our own renames changed the directories' times; take them as seen
	 * (end_wait rescans while they are this recent, so nothing is missed). */
	note_dir_times(md);
	return rc;
}

static int
md_start_wait(struct dw_source *s, int *fd, char *err, size_t errlen)
{
	(void)s;
	(void)err;
	(void)errlen;
	*fd = -1; /* no notification: the agent polls */
	return DW_OK;
}

static int
md_end_wait(struct dw_source *s, int *new_mail, char *err, size_t errlen)
{
	struct mdir *md = priv(s);
	struct stat sn, sc;

	*new_mail = 0;
	if (!md->is_open)
		return DW_OK;
	char *pn = xasprintf("%s/new", md->dir), *pc = xasprintf("%s/cur", md->dir);
	int ok = lstat(pn, &sn) == 0 && lstat(pc, &sc) == 0;
	int rc = ok ? DW_OK : dw_err(err, errlen, DW_E_SOURCE, "maildir: %s: %s", md->dir, strerror(errno));
	free(pn);
	free(pc);
	if (rc != DW_OK)
		return rc;
	if (ts_cmp(sn.st_mtim, md->seen_new) != 0 || ts_cmp(sc.st_mtim, md->seen_cur) != 0) {
		*new_mail = 1;
		return DW_OK;
	}
	/* Directory times are coarse: a file created in the same clock tick as
	 * our last scan leaves the mtime unchanged. When the scan was that
	 * recent, look at the files themselves. */
	if (md->seen_new.tv_sec + 2 >= md->scanned_at || md->seen_cur.tv_sec + 2 >= md->scanned_at) {
		uint32_t before = md->next_uid;
		if ((rc = rescan(md, 0, 0, err, errlen)) != DW_OK)
			return rc;
		*new_mail = md->next_uid != before;
	}
	return DW_OK;
}

static void
md_free(struct dw_source *s)
{
	if (s == NULL)
		return;
	md_close(s);
	free(s->priv);
	free(s);
}

static uint64_t
md_pending(struct dw_source *s, uint32_t after, uint32_t *last)
{
	struct mdir *md = priv(s);
	size_t i = first_above(md, after);
	if (i < md->n)
		*last = md->e[md->n - 1].uid;
	return md->n - i;
}

static const struct dw_source_ops maildir_ops = {
    .kind = "maildir",
    .open = md_open,
    .fetch = md_fetch,
    .move = md_move,
    .start_wait = md_start_wait,
    .end_wait = md_end_wait,
    .close = md_close,
    .free = md_free,
    .pending = md_pending,
};

struct dw_source *
dw_source_maildir_new(const struct dw_account_cfg *acct)
{
	struct dw_source *s = xcalloc(1, sizeof *s);
	s->ops = &maildir_ops;
	s->acct = acct;
	s->priv = xcalloc(1, sizeof(struct mdir));
	return s;
}
