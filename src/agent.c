/*
 * agent.c - the run loop over all accounts. See dw/agent.h.
 */
#include "dw/agent.h"
#include "dw/importer.h"
#include "dw/ingest.h"
#include "dw/log.h"
#include "dw/progress.h"
#include "dw/source.h"
#include "dw/store.h"
#include "dw/trust.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN 1
#define BACKOFF_MAX (15 * 60)
#define IDLE_REFRESH (25 * 60) /* RFC 2177: re-issue IDLE before 29 minutes */

/* A message waiting to be moved after its batch committed. */
struct move {
	uint32_t uid;
	const char *folder; /* borrowed from the account's config */
};

struct account {
	const struct dw_account_cfg *cfg;
	struct dw_source *src;
	int connected;
	uint32_t uidvalidity;
	time_t next_due;     /* when the next pass may start */
	unsigned backoff;    /* seconds; 0 when healthy */
	int failing;         /* an error was logged and not yet followed by recovery */
	int waiting;         /* start_wait was called */
	int wait_fd;
	struct move *moves;
	size_t nmoves, capmoves;
	/* pass statistics */
	unsigned n_msgs, n_reports, n_verdict[5];
};

struct dw_agent {
	const struct dw_config *cfg;
	struct dw_agent_signals *sig;
	struct dw_store *store;
	struct account *acct;
	size_t nacct;
	void (*hook)(void *arg);         /* run after each pass (main: rules, digest) */
	void *hook_arg;
	struct dw_progress *progress;    /* borrowed; NULL: none (see dw_agent_set_progress) */
};

enum { V_STORED, V_DUPLICATE, V_NOT_REPORT, V_INVALID, V_UNTRUSTED };
static const char *verdict_name[] = {"stored", "duplicate", "not-a-report", "invalid", "untrusted"};

static unsigned
jitter(unsigned s)
{
	/* +-20 %: accounts failing together do not retry in lockstep. */
	unsigned span = s / 5 + 1;
	return s - span + (unsigned)(rand() % (int)(2 * span + 1));
}

static void
account_failed(struct account *ac, int rc, const char *err)
{
	ac->backoff = ac->backoff ? ac->backoff * 2 : BACKOFF_MIN;
	if (ac->backoff > BACKOFF_MAX)
		ac->backoff = BACKOFF_MAX;
	ac->next_due = time(NULL) + jitter(ac->backoff);
	if (ac->connected) {
		ac->src->ops->close(ac->src);
		ac->connected = 0;
	}
	ac->waiting = 0;
	/* Log the first failure and every change; repeats go to debug so a
	 * dead server does not flood the log (collectd's c_complain). */
	if (!ac->failing || rc == DW_E_CONFIG)
		dw_log(rc == DW_E_CONFIG ? DW_LOG_ERROR : DW_LOG_WARNING, "account=%s: %s; retrying in %u s",
		       ac->cfg->name, err, ac->backoff);
	else
		log_debug("account=%s: still failing: %s; retrying in %u s", ac->cfg->name, err, ac->backoff);
	ac->failing = 1;
}

static void
account_ok(struct account *ac)
{
	if (ac->failing)
		log_info("account=%s: working again", ac->cfg->name);
	ac->failing = 0;
	ac->backoff = 0;
}

/* Queue a message for moving after its batch commits. */
static void
moves_add(struct account *ac, uint32_t uid, const char *folder)
{
	if (ac->nmoves == ac->capmoves) {
		ac->capmoves = ac->capmoves ? 2 * ac->capmoves : 256;
		ac->moves = xreallocarray(ac->moves, ac->capmoves, sizeof *ac->moves);
	}
	ac->moves[ac->nmoves].uid = uid;
	ac->moves[ac->nmoves].folder = folder;
	ac->nmoves++;
}

/* ---- processing one message ---- */

struct msgctx {
	struct dw_agent *a;
	struct account *ac;
	uint32_t last_uid; /* highest uid committed in this batch */
	uint32_t counted_uid; /* the progress total covers the listed uids up to this */
	int store_error;
	char store_err[512];
};

static const char *
folder_for(const struct dw_account_cfg *c, int v)
{
	switch (v) {
	case V_STORED:
	case V_DUPLICATE:
		return c->archive_folder;
	case V_NOT_REPORT:
		return c->other_folder;
	case V_INVALID:
		return c->invalid_folder;
	case V_UNTRUSTED:
		return c->untrusted_folder;
	}
	return NULL;
}

static void
first_failure(void *arg, const struct dw_doc_info *doc, const char *msg)
{
	char *reason = arg;
	if (reason[0] == '\0')
		snprintf(reason, 512, "%s%s%s", doc->where, doc->where[0] ? ": " : "", msg);
}

/* Grow the progress total when a message beyond the part already counted
 * arrives: the source has just listed it, with whatever follows it. */
static void
progress_count(struct msgctx *mc, uint32_t uid)
{
	struct dw_source *src = mc->ac->src;
	if (mc->a->progress == NULL || uid <= mc->counted_uid)
		return;
	uint32_t last = uid;
	uint64_t n = src->ops->pending != NULL ? src->ops->pending(src, uid - 1, &last) : 0;
	dw_progress_add_total(mc->a->progress, n > 0 ? n : 1);
	mc->counted_uid = last > uid ? last : uid;
}

static int
on_message(void *ctx, const struct dw_msg *m, char *err, size_t errlen)
{
	struct msgctx *mc = ctx;
	struct dw_agent *a = mc->a;
	struct account *ac = mc->ac;
	const struct dw_account_cfg *c = ac->cfg;
	struct dw_importer im = {0};
	struct dw_ingest_result res;
	struct dw_mail *mail = NULL;
	char reason[512] = "", why[512] = "", name[300];
	int v;

	if (a->sig->stop)
		return dw_err(err, errlen, DW_E_SOURCE, "stopping on a signal");
	progress_count(mc, m->uid);

	memset(&res, 0, sizeof res);
	snprintf(name, sizeof name, "account %s uid %" PRIu32, c->name, m->uid);
	im.store = a->store;
	im.prov.kind = c->source == DW_SRC_IMAP ? "imap" : "maildir";
	im.prov.source = c->name;
	im.prov.uidvalidity = ac->uidvalidity;
	im.prov.uid = m->uid;
	im.prov.received = m->internaldate;
	im.on_fail = first_failure;
	im.on_fail_arg = reason;

	int rc = dw_importer_item_begin(&im, mc->store_err, sizeof mc->store_err);
	if (rc != DW_OK)
		goto store_failed;

	if (m->data == NULL) {
		char sz[32];
		v = V_INVALID;
		snprintf(reason, sizeof reason, "message of %" PRIu32 " bytes is larger than the %s limit (limits.mail_max)",
		         m->size, dw_fmt_size(a->cfg->limits.mail_max, sz, sizeof sz));
	} else {
		rc = dw_ingest_mail(m->data, m->len, name, &a->cfg->limits, &dw_importer_cb, &im, &res, &mail);
		if (im.store_failed) {
			snprintf(mc->store_err, sizeof mc->store_err, "%s", im.store_err);
			dw_store_rollback(a->store);
			goto store_failed;
		}
		if (rc != DW_OK) {
			v = V_INVALID;
			snprintf(reason, sizeof reason, "%s", res.reason);
		} else if (res.not_report) {
			v = V_NOT_REPORT;
			snprintf(reason, sizeof reason, "%s", res.reason);
		} else if (c->trust_require != DW_TRUST_NONE &&
		           !dw_trust_check(mail->auth_results, mail->n_auth_results, mail->from_domain, c->authserv_ids,
		                           c->nauthserv_ids, c->trust_require, why, sizeof why)) {
			/* Spoofed or unverifiable: nothing of it may count. */
			v = V_UNTRUSTED;
			snprintf(reason, sizeof reason, "%s", why);
			dw_store_rollback(a->store);
			if ((rc = dw_store_begin(a->store, mc->store_err, sizeof mc->store_err)) != DW_OK)
				goto store_failed;
			memset(&im.item, 0, sizeof im.item);
		} else if (im.item.stored + im.item.revisions > 0) {
			v = V_STORED;
		} else if (im.item.duplicates > 0) {
			v = V_DUPLICATE;
		} else {
			v = V_INVALID; /* reason set by first_failure */
			if (reason[0] == '\0')
				snprintf(reason, sizeof reason, "no report could be read");
		}
	}

	struct dw_msg_verdict mv = {
	    .account = c->name,
	    .uidvalidity = ac->uidvalidity,
	    .uid = m->uid,
	    .verdict = verdict_name[v],
	    .reason = reason[0] ? reason : NULL,
	    .message_id = mail ? mail->message_id : NULL,
	    .reports = im.item.stored + im.item.revisions,
	    .folder = folder_for(c, v),
	    .received = m->internaldate,
	};
	if ((rc = dw_store_message_put(a->store, &mv, mc->store_err, sizeof mc->store_err)) != DW_OK ||
	    (rc = dw_store_checkpoint_set(a->store, c->name, ac->uidvalidity, m->uid, mc->store_err,
	                                  sizeof mc->store_err)) != DW_OK) {
		dw_store_rollback(a->store);
		goto store_failed;
	}
	if ((rc = dw_importer_item_end(&im, mc->store_err, sizeof mc->store_err)) != DW_OK)
		goto store_failed;

	mc->last_uid = m->uid;
	ac->n_msgs++;
	ac->n_reports += mv.reports;
	ac->n_verdict[v]++;
	dw_progress_step(a->progress, 1); /* before the log line, which redraws it */
	log_info("account=%s uid=%" PRIu32 " verdict=%s reports=%u%s%s", c->name, m->uid, verdict_name[v], mv.reports,
	         reason[0] ? " reason=" : "", reason);
	if (mv.folder != NULL)
		moves_add(ac, m->uid, mv.folder);
	dw_mail_free(mail);
	dw_ingest_result_clear(&res);
	return DW_OK;

store_failed:
	dw_mail_free(mail);
	dw_ingest_result_clear(&res);
	mc->store_error = 1;
	return dw_err(err, errlen, DW_E_STORE, "%s", mc->store_err);
}

/* ---- moving ---- */

static int
move_cmp(const void *x, const void *y)
{
	const struct move *p = x, *q = y;
	int c = strcmp(p->folder, q->folder);
	if (c != 0)
		return c;
	return p->uid < q->uid ? -1 : p->uid > q->uid;
}

/* Move the collected messages, one round trip per folder, then record it. */
static int
flush_moves(struct dw_agent *a, struct account *ac, char *err, size_t errlen)
{
	int rc = DW_OK;
	qsort(ac->moves, ac->nmoves, sizeof *ac->moves, move_cmp);
	uint32_t *uids = xcalloc(ac->nmoves ? ac->nmoves : 1, sizeof *uids);
	size_t i = 0;
	while (i < ac->nmoves && rc == DW_OK) {
		size_t j = i, n = 0;
		while (j < ac->nmoves && strcmp(ac->moves[j].folder, ac->moves[i].folder) == 0)
			uids[n++] = ac->moves[j++].uid;
		rc = ac->src->ops->move(ac->src, uids, n, ac->moves[i].folder, err, errlen);
		if (rc == DW_OK) {
			char serr[512];
			if (dw_store_mark_moved(a->store, ac->cfg->name, ac->uidvalidity, uids, n, serr, sizeof serr) != DW_OK)
				log_warn("account=%s: %s (the messages will be moved again next pass)", ac->cfg->name, serr);
			log_debug("account=%s: moved %zu message(s) to %s", ac->cfg->name, n, ac->moves[i].folder);
		}
		i = j;
	}
	free(uids);
	ac->nmoves = 0;
	return rc;
}

static int
collect_pending(void *ctx, uint32_t uid, const char *folder)
{
	struct account *ac = ctx;
	/* Point at the config's folder name (the row's string dies with the
	 * statement); a folder no longer configured is left where it is. */
	const char *f = NULL;
	const char *cands[] = {ac->cfg->archive_folder, ac->cfg->other_folder, ac->cfg->invalid_folder,
	                       ac->cfg->untrusted_folder};
	for (size_t i = 0; i < 4; i++)
		if (cands[i] != NULL && strcmp(cands[i], folder) == 0)
			f = cands[i];
	if (f != NULL)
		moves_add(ac, uid, f);
	return DW_OK;
}

/* ---- one pass over one account ---- */

static int
account_pass(struct dw_agent *a, struct account *ac)
{
	const struct dw_account_cfg *c = ac->cfg;
	char err[1024] = "";
	int rc;

	memset(ac->n_verdict, 0, sizeof ac->n_verdict);
	ac->n_msgs = ac->n_reports = 0;
	if (!ac->connected) {
		uint32_t uidv = 0;
		rc = ac->src->ops->open(ac->src, &uidv, err, sizeof err);
		if (rc != DW_OK) {
			account_failed(ac, rc, err);
			return rc;
		}
		ac->connected = 1;
		ac->uidvalidity = uidv;
		log_debug("account=%s: connected, %s uidvalidity %" PRIu32, c->name, c->folder, uidv);
	}

	uint32_t cv, cu;
	if ((rc = dw_store_checkpoint_get(a->store, c->name, &cv, &cu, err, sizeof err)) != DW_OK) {
		log_error("account=%s: %s", c->name, err);
		return rc;
	}
	if (cv != ac->uidvalidity) {
		if (cv != 0)
			log_warn("account=%s: UIDVALIDITY of %s changed (%" PRIu32 " -> %" PRIu32
			         "): rescanning the folder; reports already stored are recognised as duplicates",
			         c->name, c->folder, cv, ac->uidvalidity);
		cu = 0;
	}

	/* Moves that an interrupted pass committed but did not carry out. */
	ac->nmoves = 0;
	if ((rc = dw_store_pending_moves(a->store, c->name, ac->uidvalidity, collect_pending, ac, err, sizeof err)) !=
	    DW_OK) {
		log_error("account=%s: %s", c->name, err);
		return rc;
	}
	if (ac->nmoves > 0) {
		log_info("account=%s: moving %zu message(s) left from an interrupted pass", c->name, ac->nmoves);
		if ((rc = flush_moves(a, ac, err, sizeof err)) != DW_OK) {
			account_failed(ac, rc, err);
			return rc;
		}
	}

	struct msgctx mc = {.a = a, .ac = ac, .last_uid = cu};
	int more = 1;
	while (more && !a->sig->stop) {
		more = 0;
		/* One transaction per fetched batch, a savepoint per message: each
		 * message's reports, verdict and checkpoint still stand or fall
		 * together, and the batch costs one commit instead of hundreds. */
		uint32_t committed = mc.last_uid;
		if ((rc = dw_store_batch_begin(a->store, err, sizeof err)) != DW_OK) {
			mc.store_error = 1;
			break;
		}
		rc = ac->src->ops->fetch(ac->src, mc.last_uid, c->batch_bytes, a->cfg->limits.mail_max, on_message, &mc,
		                         &more, err, sizeof err);
		if (mc.store_error) {
			/* Nothing of this batch is kept, so nothing of it may move. */
			dw_store_batch_rollback(a->store);
			ac->nmoves = 0;
			mc.last_uid = committed;
		} else {
			/* Messages handled before a lost connection or a signal are
			 * complete: keep them. */
			char cerr[1024];
			if (dw_store_batch_commit(a->store, cerr, sizeof cerr) != DW_OK) {
				mc.store_error = 1;
				ac->nmoves = 0;
				mc.last_uid = committed;
				rc = DW_E_STORE;
				snprintf(err, sizeof err, "%s", cerr);
				break;
			}
		}
		/* Moves come only after the commit. */
		if (ac->nmoves > 0) {
			char merr[1024];
			int mrc = flush_moves(a, ac, merr, sizeof merr);
			if (mrc != DW_OK && rc == DW_OK) {
				rc = mrc;
				snprintf(err, sizeof err, "%s", merr);
			}
		}
		if (rc != DW_OK)
			break;
	}
	if (a->sig->stop && rc != DW_OK && !mc.store_error) {
		/* Interrupted by a signal between messages: not a failure. */
		rc = DW_OK;
	}
	if (rc != DW_OK) {
		if (mc.store_error)
			log_error("account=%s: %s; the message will be processed again", c->name, err);
		account_failed(ac, rc, err);
		return rc;
	}
	account_ok(ac);
	if (!a->sig->stop && dw_store_mark_pass(a->store, c->name, (int64_t)time(NULL), err, sizeof err) != DW_OK)
		log_warn("account=%s: %s (metrics only)", c->name, err);
	dw_log(ac->n_msgs > 0 ? DW_LOG_INFO : DW_LOG_DEBUG,
		 "account=%s: pass done: %u message(s), %u report(s) stored; stored %u, duplicate %u, "
		         "not-a-report %u, invalid %u, untrusted %u",
		         c->name, ac->n_msgs, ac->n_reports, ac->n_verdict[V_STORED], ac->n_verdict[V_DUPLICATE],
		         ac->n_verdict[V_NOT_REPORT], ac->n_verdict[V_INVALID], ac->n_verdict[V_UNTRUSTED]);
	return DW_OK;
}

/* ---- the agent ---- */

int
dw_agent_new(const struct dw_config *cfg, struct dw_agent_signals *sig, struct dw_agent **out, char *err,
             size_t errlen)
{
	struct dw_agent *a = xcalloc(1, sizeof *a);
	a->cfg = cfg;
	a->sig = sig;
	int rc = dw_config_make_state_dir(cfg, err, errlen);
	if (rc != DW_OK) {
		free(a);
		return rc;
	}
	rc = dw_store_open(dw_config_db_path(cfg), &a->store, err, errlen);
	if (rc != DW_OK) {
		free(a);
		return rc;
	}
	a->nacct = cfg->naccounts;
	a->acct = xcalloc(a->nacct ? a->nacct : 1, sizeof *a->acct);
	for (size_t i = 0; i < a->nacct; i++) {
		struct account *ac = &a->acct[i];
		ac->cfg = &cfg->accounts[i];
		ac->src = ac->cfg->source == DW_SRC_IMAP ? dw_source_imap_new(ac->cfg) : dw_source_maildir_new(ac->cfg);
		ac->wait_fd = -1;
	}
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	*out = a;
	return DW_OK;
}

void
dw_agent_free(struct dw_agent *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nacct; i++) {
		struct account *ac = &a->acct[i];
		if (ac->connected)
			ac->src->ops->close(ac->src);
		ac->src->ops->free(ac->src);
		free(ac->moves);
	}
	free(a->acct);
	dw_store_close(a->store);
	free(a);
}

void
dw_agent_set_hook(struct dw_agent *a, void (*fn)(void *arg), void *arg)
{
	a->hook = fn;
	a->hook_arg = arg;
}

void
dw_agent_set_progress(struct dw_agent *a, struct dw_progress *p)
{
	a->progress = p;
}

static void
run_hook(struct dw_agent *a)
{
	if (a->hook != NULL)
		a->hook(a->hook_arg);
}

int
dw_agent_once(struct dw_agent *a)
{
	int all_ok = 1;
	for (size_t i = 0; i < a->nacct && !a->sig->stop; i++)
		if (account_pass(a, &a->acct[i]) != DW_OK)
			all_ok = 0;
	run_hook(a);
	return all_ok ? DW_OK : DW_E_SOURCE;
}

static void
drain(int fd)
{
	char buf[64];
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		;
}

int
dw_agent_run(struct dw_agent *a)
{
	struct pollfd *pfd = xcalloc(a->nacct + 1, sizeof *pfd);
	struct account **owner = xcalloc(a->nacct + 1, sizeof *owner);

	for (size_t i = 0; i < a->nacct; i++)
		a->acct[i].next_due = 0;
	while (!a->sig->stop && !a->sig->reload) {
		time_t now = time(NULL);
		for (size_t i = 0; i < a->nacct && !a->sig->stop; i++) {
			struct account *ac = &a->acct[i];
			if (ac->waiting || now < ac->next_due)
				continue;
			if (account_pass(a, ac) == DW_OK) {
				/* Poll mode waits poll_interval; IDLE re-arms well before the
				 * server's 30-minute inactivity timeout. */
				ac->next_due = time(NULL) + (ac->cfg->mode == DW_MODE_IDLE ? IDLE_REFRESH : ac->cfg->poll_interval);
			}
		}
		if (a->sig->stop || a->sig->reload)
			break;
		run_hook(a);

		/* Arm IDLE where possible and wait on everything together. */
		size_t n = 0;
		time_t wake = time(NULL) + IDLE_REFRESH;
		for (size_t i = 0; i < a->nacct; i++) {
			struct account *ac = &a->acct[i];
			if (ac->connected && ac->cfg->mode == DW_MODE_IDLE && !ac->waiting) {
				char err[1024];
				int fd = -1;
				if (ac->src->ops->start_wait(ac->src, &fd, err, sizeof err) != DW_OK) {
					account_failed(ac, DW_E_SOURCE, err);
				} else if (fd >= 0) {
					ac->waiting = 1;
					ac->wait_fd = fd;
				} else if (ac->next_due > time(NULL) + (time_t)ac->cfg->poll_interval) {
					/* The server cannot IDLE: poll instead. */
					ac->next_due = time(NULL) + ac->cfg->poll_interval;
				}
			}
			if (ac->waiting) {
				pfd[n].fd = ac->wait_fd;
				pfd[n].events = POLLIN;
				owner[n++] = ac;
			}
			if (!ac->waiting && ac->next_due < wake)
				wake = ac->next_due;
		}
		if (a->sig->wake_fd >= 0) {
			pfd[n].fd = a->sig->wake_fd;
			pfd[n].events = POLLIN;
			owner[n++] = NULL;
		}
		long ms = (long)(wake - time(NULL)) * 1000;
		if (ms < 0)
			ms = 0;
		/* Never block forever: wake at least every minute to re-check. */
		if (ms > 60000)
			ms = 60000;
		int r = poll(pfd, n, (int)ms);
		if (r < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			sleep(1);
		}
		now = time(NULL);
		for (size_t k = 0; k < n; k++) {
			struct account *ac = owner[k];
			if (ac == NULL) {
				if (pfd[k].revents)
					drain(a->sig->wake_fd);
				continue;
			}
			/* End IDLE when data arrived, when a pass is due (re-arm), or
			 * when we are about to stop. */
			if (pfd[k].revents == 0 && now < ac->next_due && !a->sig->stop && !a->sig->reload)
				continue;
			char err[1024];
			int new_mail = 0;
			ac->waiting = 0;
			if (ac->src->ops->end_wait(ac->src, &new_mail, err, sizeof err) != DW_OK) {
				account_failed(ac, DW_E_SOURCE, err);
				continue;
			}
			if (new_mail || pfd[k].revents)
				ac->next_due = now;
		}
	}
	/* Leave IDLE cleanly before logging out. */
	for (size_t i = 0; i < a->nacct; i++) {
		struct account *ac = &a->acct[i];
		if (ac->waiting) {
			char err[256];
			int nm;
			(void)ac->src->ops->end_wait(ac->src, &nm, err, sizeof err);
			ac->waiting = 0;
		}
	}
	free(pfd);
	free(owner);
	return DW_OK;
}
