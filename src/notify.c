/*
 * notify.c - the notifier plugin loader and the host services plugins get.
 * See dw/notify.h and include/dmarcwatch/notifier.h.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dw/log.h"
#include "dw/notify.h"
#include "dw/util.h"

#define SECRET_MASK "[secret]"

struct dw_notifier_inst {
	struct dw_host host;              /* first: host services find us through host_data */
	char *name;                       /* owned copy of the configured name */
	char *path;                       /* the .so */
	void *dl;                         /* dlopen handle */
	const struct dw_notifier *plugin; /* the exported entry, inside dl */
	void *state;                      /* init()'s (may be NULL) */
	int inited;                       /* init() succeeded: shutdown() is owed */
	struct dw_notifier_cfg timing;    /* timing keys only (no kv, no strings but name) */
	struct dw_kv *kv;                 /* what init() got: points into the config copy below */
	struct dw_notifier_kv *kvcopy;
	size_t nkv;
	char **secrets;                   /* values resolved through host->secret, masked in logs */
	size_t nsecrets;
	pthread_mutex_t secrets_mu;       /* secrets are added during init, read by any thread */
	/* Valid only while init() runs: */
	const struct dw_config *cfg;
	size_t idx;
	struct dw_cfg_msgs *msgs;
	int init_errors;
};

struct dw_notifiers {
	struct dw_notifier_inst **v;
	size_t n;
};

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

/*
 * Mask every registered secret in s, longest first (a secret inside a
 * longer one must not leave the longer one's tail visible), resuming after
 * each mask (a secret that is part of "[secret]" must not loop). A text
 * cut short by its buffer may end with the start of a secret: that tail
 * is masked too.
 */
void
dw_notifier_redact(const struct dw_notifier_inst *ni, char *s, size_t size)
{
	struct dw_notifier_inst *w = (struct dw_notifier_inst *)(uintptr_t)ni;
	const size_t ml = strlen(SECRET_MASK);
	pthread_mutex_lock(&w->secrets_mu);
	int *done = xcalloc(ni->nsecrets + 1, sizeof *done);
	for (size_t round = 0; round < ni->nsecrets; round++) {
		size_t best = SIZE_MAX, bl = 0;
		for (size_t i = 0; i < ni->nsecrets; i++) {
			size_t l = strlen(ni->secrets[i]);
			if (!done[i] && (best == SIZE_MAX || l > bl)) {
				best = i;
				bl = l;
			}
		}
		done[best] = 1;
		const char *sec = ni->secrets[best];
		if (bl == 0)
			continue;
		char *from = s, *p;
		while ((p = strstr(from, sec)) != NULL) {
			size_t tail = strlen(p + bl);
			if ((size_t)(p - s) + ml + tail + 1 > size) { /* no room: cut the text */
				*p = '\0';
				break;
			}
			memmove(p + ml, p + bl, tail + 1);
			memcpy(p, SECRET_MASK, ml);
			from = p + ml;
		}
		/* A cut text ending in the first characters of the secret. */
		size_t sl = strlen(s);
		for (size_t k = bl - 1; k >= 4; k--) {
			if (k <= sl && strncmp(s + sl - k, sec, k) == 0) {
				s[sl - k] = '\0';
				if (sl - k + ml + 1 <= size)
					memcpy(s + sl - k, SECRET_MASK, ml + 1);
				break;
			}
		}
	}
	free(done);
	pthread_mutex_unlock(&w->secrets_mu);
}

/* ------------------------------------------------------------------ */
/* Host services                                                       */

static struct dw_notifier_inst *
inst_of(const struct dw_host *h)
{
	return h->host_data;
}

DW_PRINTF(3, 4) static void
host_log(const struct dw_host *h, int level, const char *fmt, ...)
{
	struct dw_notifier_inst *ni = inst_of(h);
	char msg[8192]; /* larger than a log line: redact first, dw_log cuts after */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dw_notifier_redact(ni, msg, sizeof msg);
	if (level < DW_LOG_ERROR)
		level = DW_LOG_ERROR;
	if (level > DW_LOG_DEBUG)
		level = DW_LOG_DEBUG;
	dw_log(level, "notifier %s: %s", ni->name, msg);
}

DW_PRINTF(3, 4) static void
host_config_error(const struct dw_host *h, const struct dw_kv *kv, const char *fmt, ...)
{
	struct dw_notifier_inst *ni = inst_of(h);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dw_notifier_redact(ni, msg, sizeof msg);
	if (ni->msgs == NULL) { /* outside init(): a plugin bug, but say it */
		dw_log(DW_LOG_ERROR, "notifier %s: configuration: %s%s%s", ni->name, kv != NULL ? kv->key : "",
		       kv != NULL ? ": " : "", msg);
		return;
	}
	const char *file = ni->cfg->file;
	char *s;
	if (kv != NULL)
		s = xasprintf("%s:%u:%u: notifiers[%zu].%s: %s", file, kv->line, kv->col, ni->idx, kv->key, msg);
	else
		s = xasprintf("%s:%u:%u: notifiers[%zu]: %s", file, ni->cfg->notifiers[ni->idx].line,
		              ni->cfg->notifiers[ni->idx].col, ni->idx, msg);
	ni->msgs->errors = xreallocarray(ni->msgs->errors, ni->msgs->nerrors + 1, sizeof *ni->msgs->errors);
	ni->msgs->errors[ni->msgs->nerrors++] = s;
	ni->init_errors++;
}

static int
host_secret(const struct dw_host *h, const char *key, char **out)
{
	struct dw_notifier_inst *ni = inst_of(h);
	*out = NULL;
	if (ni->msgs == NULL) {
		dw_log(DW_LOG_ERROR, "notifier %s: host->secret(\"%s\") called outside init()", ni->name, key);
		return -1;
	}
	size_t before = ni->msgs->nerrors;
	int rc = dw_config_notifier_secret(ni->cfg, ni->idx, key, out, ni->msgs);
	ni->init_errors += (int)(ni->msgs->nerrors - before);
	if (rc != 1) {
		free(*out);
		*out = NULL;
		return rc < 0 ? -1 : 0;
	}
	/* The plugin gets a plain malloc'ed copy it frees itself. */
	char *copy = strdup(*out);
	if (copy == NULL)
		abort();
	pthread_mutex_lock(&ni->secrets_mu);
	ni->secrets = xreallocarray(ni->secrets, ni->nsecrets + 1, sizeof *ni->secrets);
	ni->secrets[ni->nsecrets++] = *out;
	pthread_mutex_unlock(&ni->secrets_mu);
	*out = copy;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

static void
inst_free(struct dw_notifier_inst *ni)
{
	if (ni == NULL)
		return;
	if (ni->inited && ni->plugin != NULL && ni->plugin->shutdown != NULL)
		ni->plugin->shutdown(ni->state);
	if (ni->dl != NULL && getenv("DW_NO_DLCLOSE") == NULL)
		dlclose(ni->dl);
	for (size_t i = 0; i < ni->nsecrets; i++) {
		explicit_bzero(ni->secrets[i], strlen(ni->secrets[i]));
		free(ni->secrets[i]);
	}
	free(ni->secrets);
	for (size_t i = 0; i < ni->nkv; i++) {
		free(ni->kvcopy[i].key);
		explicit_bzero(ni->kvcopy[i].value, strlen(ni->kvcopy[i].value));
		free(ni->kvcopy[i].value);
	}
	free(ni->kvcopy);
	free(ni->kv);
	pthread_mutex_destroy(&ni->secrets_mu);
	free(ni->name);
	free(ni->path);
	free(ni);
}

DW_PRINTF(4, 5) static void
plugin_error(struct dw_cfg_msgs *msgs, const struct dw_config *c, size_t idx, const char *fmt, ...)
{
	const struct dw_notifier_cfg *nc = &c->notifiers[idx];
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char *s = xasprintf("%s:%u:%u: notifiers[%zu].plugin: %s", c->file, nc->plugin_line, nc->plugin_col, idx,
	                    msg);
	msgs->errors = xreallocarray(msgs->errors, msgs->nerrors + 1, sizeof *msgs->errors);
	msgs->errors[msgs->nerrors++] = s;
}

/* Who may write the file decides who runs code as us. */
static int
check_file(const char *path, char *why, size_t whylen)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return dw_err(why, whylen, -1, "cannot use %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return dw_err(why, whylen, -1, "%s is not a regular file", path);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return dw_err(why, whylen, -1,
		              "refusing %s: it is writable by %s (mode %04o), so others could run code as "
		              "dmarcwatch; run: chmod go-w %s",
		              path, (st.st_mode & S_IWOTH) ? "everyone" : "its group", (unsigned)(st.st_mode & 07777),
		              path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return dw_err(why, whylen, -1,
		              "refusing %s: it belongs to uid %u, neither root nor the user dmarcwatch runs as", path,
		              (unsigned)st.st_uid);
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
			return dw_err(why, whylen, -1,
			              "refusing %s: its directory %s is writable by everyone, so the file could be "
			              "replaced; keep plugins in a directory only root (or dmarcwatch) can write",
			              path, dir);
	}
	return 0;
}

/* The smallest struct a version-1 plugin may export. */
#define NOTIFIER_V1_SIZE (offsetof(struct dw_notifier, shutdown) + sizeof(void (*)(void *)))

static struct dw_notifier_inst *
load_one(const struct dw_config *c, size_t idx, struct dw_cfg_msgs *msgs)
{
	const struct dw_notifier_cfg *nc = &c->notifiers[idx];
	struct dw_notifier_inst *ni = xcalloc(1, sizeof *ni);
	pthread_mutex_init(&ni->secrets_mu, NULL);
	ni->name = xstrdup(nc->name);
	ni->timing = *nc;
	ni->timing.name = ni->name;
	ni->timing.plugin = NULL;
	ni->timing.kv = NULL;
	ni->timing.nkv = 0;
	ni->path = nc->plugin[0] == '/' ? xstrdup(nc->plugin) : xasprintf("%s/%s.so", c->plugin_dir, nc->plugin);

	char why[PATH_MAX + 512];
	/* Judge and load the file a symlink points to, in its own directory. */
	char *real = realpath(ni->path, NULL);
	if (real != NULL) {
		free(ni->path);
		ni->path = real;
	}
	if (check_file(ni->path, why, sizeof why) != 0) {
		if (nc->plugin[0] != '/' && access(ni->path, F_OK) != 0)
			plugin_error(msgs, c, idx, "no plugin \"%s\" in %s (%s); set plugin_dir or give the .so's absolute path",
			             nc->plugin, c->plugin_dir, strerror(errno));
		else
			plugin_error(msgs, c, idx, "%s", why);
		goto fail;
	}
	dlerror();
	ni->dl = dlopen(ni->path, RTLD_NOW | RTLD_LOCAL);
	if (ni->dl == NULL) {
		const char *e = dlerror();
		plugin_error(msgs, c, idx, "cannot load %s: %s; check its libraries with: ldd %s", ni->path,
		             e != NULL ? e : "unknown error", ni->path);
		goto fail;
	}
	dlerror();
	ni->plugin = dlsym(ni->dl, DW_NOTIFIER_SYMBOL);
	if (ni->plugin == NULL) {
		plugin_error(msgs, c, idx,
		             "%s does not export " DW_NOTIFIER_SYMBOL ": it is not a dmarcwatch notifier plugin "
		             "(plugins declare it with DW_NOTIFIER_EXPORT; see dmarcwatch/notifier.h)",
		             ni->path);
		goto fail;
	}
	const struct dw_notifier *p = ni->plugin;
	const char *pname = "?";
	if (p->abi_version != DW_NOTIFIER_ABI_VERSION) {
		plugin_error(msgs, c, idx,
		             "plugin %s (%s): built for notifier ABI %u, this agent speaks %d; rebuild it against "
		             "dmarcwatch/notifier.h (pkg-config --cflags dmarcwatch-plugin)",
		             nc->plugin, ni->path, (unsigned)p->abi_version, DW_NOTIFIER_ABI_VERSION);
		goto fail;
	}
	if (p->struct_size < NOTIFIER_V1_SIZE) {
		plugin_error(msgs, c, idx,
		             "plugin %s (%s): its struct dw_notifier is %u bytes, smaller than ABI %d's %zu; "
		             "rebuild it against dmarcwatch/notifier.h",
		             nc->plugin, ni->path, (unsigned)p->struct_size, DW_NOTIFIER_ABI_VERSION, NOTIFIER_V1_SIZE);
		goto fail;
	}
	pname = p->name != NULL ? p->name : nc->plugin;
	if (p->init == NULL || p->notify == NULL) {
		plugin_error(msgs, c, idx, "plugin %s (%s): its %s function is NULL; the plugin is incomplete, fix and rebuild it",
		             pname, ni->path, p->init == NULL ? "init" : "notify");
		ni->plugin = NULL;
		goto fail;
	}

	/* The settings as init() sees them: our own copy, stable until shutdown. */
	ni->nkv = nc->nkv;
	ni->kvcopy = xcalloc(nc->nkv + 1, sizeof *ni->kvcopy);
	ni->kv = xcalloc(nc->nkv + 1, sizeof *ni->kv);
	for (size_t i = 0; i < nc->nkv; i++) {
		ni->kvcopy[i].key = xstrdup(nc->kv[i].key);
		ni->kvcopy[i].value = xstrdup(nc->kv[i].value);
		ni->kv[i].key = ni->kvcopy[i].key;
		ni->kv[i].value = ni->kvcopy[i].value;
		ni->kv[i].line = nc->kv[i].line;
		ni->kv[i].col = nc->kv[i].col;
	}
	ni->host.abi_version = DW_NOTIFIER_ABI_VERSION;
	ni->host.struct_size = sizeof ni->host;
	ni->host.instance = ni->name;
	ni->host.agent_version = DW_VERSION;
	ni->host.timeout_ms = nc->timeout * 1000u;
	ni->host.log = host_log;
	ni->host.config_error = host_config_error;
	ni->host.secret = host_secret;
	ni->host.host_data = ni;

	ni->cfg = c;
	ni->idx = idx;
	ni->msgs = msgs;
	char err[1024] = "";
	void *state = NULL;
	int rc = p->init(&ni->host, ni->kv, ni->nkv, &state, err, sizeof err);
	ni->msgs = NULL;
	ni->cfg = NULL;
	if (rc != 0 || ni->init_errors > 0) {
		if (err[0] != '\0' || ni->init_errors == 0) {
			dw_notifier_redact(ni, err, sizeof err);
			char *s = xasprintf("%s:%u:%u: notifiers[%zu]: plugin %s: %s", c->file, nc->line, nc->col, idx, pname,
			                    err[0] != '\0' ? err : "init failed (the plugin gave no reason)");
			msgs->errors = xreallocarray(msgs->errors, msgs->nerrors + 1, sizeof *msgs->errors);
			msgs->errors[msgs->nerrors++] = s;
		}
		if (rc == 0 && p->shutdown != NULL)
			p->shutdown(state);
		goto fail;
	}
	ni->state = state;
	ni->inited = 1;
	return ni;
fail:
	inst_free(ni);
	return NULL;
}

int
dw_notifiers_load(const struct dw_config *c, struct dw_notifiers **out, struct dw_cfg_msgs *msgs)
{
	struct dw_notifiers *ns = xcalloc(1, sizeof *ns);
	size_t before = msgs->nerrors;
	*out = NULL;
	ns->v = xcalloc(c->nnotifiers + 1, sizeof *ns->v);
	for (size_t i = 0; i < c->nnotifiers; i++) {
		struct dw_notifier_inst *ni = load_one(c, i, msgs);
		if (ni != NULL)
			ns->v[ns->n++] = ni;
	}
	if (msgs->nerrors > before) {
		dw_notifiers_free(ns);
		return DW_E_CONFIG;
	}
	*out = ns;
	return DW_OK;
}

void
dw_notifiers_free(struct dw_notifiers *ns)
{
	if (ns == NULL)
		return;
	for (size_t i = ns->n; i-- > 0;)
		inst_free(ns->v[i]);
	free(ns->v);
	free(ns);
}

size_t
dw_notifiers_count(const struct dw_notifiers *ns)
{
	return ns != NULL ? ns->n : 0;
}

struct dw_notifier_inst *
dw_notifiers_at(struct dw_notifiers *ns, size_t i)
{
	return i < ns->n ? ns->v[i] : NULL;
}

struct dw_notifier_inst *
dw_notifiers_find(struct dw_notifiers *ns, const char *name)
{
	for (size_t i = 0; ns != NULL && i < ns->n; i++)
		if (strcmp(ns->v[i]->name, name) == 0)
			return ns->v[i];
	return NULL;
}

const char *
dw_notifier_name(const struct dw_notifier_inst *ni)
{
	return ni->name;
}

const struct dw_notifier_cfg *
dw_notifier_config(const struct dw_notifier_inst *ni)
{
	return &ni->timing;
}

const char *
dw_notifier_plugin_path(const struct dw_notifier_inst *ni)
{
	return ni->path;
}

int
dw_notifier_call(struct dw_notifier_inst *ni, const struct dw_notification *n, unsigned *retry_after, char *err,
                 size_t errlen)
{
	*retry_after = 0;
	if (errlen > 0)
		err[0] = '\0';
	int rc = ni->plugin->notify(ni->state, n, retry_after, err, errlen);
	if (errlen > 0)
		err[errlen - 1] = '\0';
	if (errlen > 0)
		dw_notifier_redact(ni, err, errlen);
	if (rc != DW_NOTIFY_OK && rc != DW_NOTIFY_RETRY && rc != DW_NOTIFY_FAIL) {
		char tmp[256];
		snprintf(tmp, sizeof tmp, "%s", err);
		snprintf(err, errlen, "plugin returned %d, which is not a notify() result (counted as FAIL)%s%s", rc,
		         tmp[0] != '\0' ? ": " : "", tmp);
		rc = DW_NOTIFY_FAIL;
	}
	if (rc != DW_NOTIFY_OK && errlen > 0 && err[0] == '\0')
		snprintf(err, errlen, "the plugin gave no reason");
	dw_notifier_redact(ni, err, errlen);
	return rc;
}
