/*
 * agent.h - the run loop: every configured account, one process.
 *
 * For each account: open the source, compare the stored checkpoint's
 * uidvalidity, retry moves left over from an interrupted pass, then fetch
 * new messages in batches. Each message goes through the pipeline; its
 * reports, its verdict and the account's checkpoint are committed in ONE
 * transaction; only then is it moved to the folder for its verdict (moves
 * are batched per folder). A crash between commit and move leaves a
 * "pending move" row, so the message is only moved on restart, never
 * counted twice.
 *
 * Waiting: IMAP IDLE where available and configured, else polling; all
 * accounts are waited on together with poll(2), and a wake-up descriptor
 * (the signal self-pipe in main) interrupts the wait. Failing accounts back
 * off exponentially with jitter (1 s .. 15 min) while the others go on.
 */
#ifndef DW_AGENT_H
#define DW_AGENT_H

#include <signal.h>

#include "dw/config.h"

struct dw_agent;

/* Signals seen by main, read by the loop (set from signal handlers). */
struct dw_agent_signals {
	volatile sig_atomic_t stop;   /* SIGTERM / SIGINT */
	volatile sig_atomic_t reload; /* SIGHUP */
	int wake_fd;                  /* readable when a signal arrived; -1 if none */
};

/* cfg is borrowed and must outlive the agent. Opens the store. */
int dw_agent_new(const struct dw_config *cfg, struct dw_agent_signals *sig, struct dw_agent **out, char *err,
                 size_t errlen);
void dw_agent_free(struct dw_agent *a); /* logs out of every account */

/* A function run after every pass of the loop (at least once a minute)
 * and after dw_agent_once: main uses it to judge rules and queue the
 * digest. It must not block for long. */
void dw_agent_set_hook(struct dw_agent *a, void (*fn)(void *arg), void *arg);

/* A progress line (dw/progress.h; borrowed, NULL for none) that
 * dw_agent_once keeps: the total grows by each account's new messages as
 * they are listed, and every message handled is a step. The caller makes
 * and finishes it. */
struct dw_progress;
void dw_agent_set_progress(struct dw_agent *a, struct dw_progress *p);

/* One pass over every account, no waiting. Returns DW_OK when every
 * account was processed, DW_E_SOURCE otherwise. */
int dw_agent_once(struct dw_agent *a);

/* Loop until sig->stop or sig->reload is set. Returns DW_OK. */
int dw_agent_run(struct dw_agent *a);

#endif
