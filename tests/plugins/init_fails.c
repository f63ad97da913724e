/* init_fails - init() always refuses: the agent must report it, not skip it. */
#include <stdio.h>

#include "dmarcwatch/notifier.h"

static int
x_init(const struct dw_host *h, const struct dw_kv *c, size_t n, void **s, char *e, size_t el)
{
	(void)h, (void)c, (void)n, (void)s;
	snprintf(e, el, "cannot reach the pager service: this plugin always refuses to start");
	return -1;
}

static int
x_notify(void *s, const struct dw_notification *n, unsigned *ra, char *e, size_t el)
{
	(void)s, (void)n, (void)ra, (void)e, (void)el;
	return DW_NOTIFY_OK;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "init_fails", .init = x_init, .notify = x_notify);
