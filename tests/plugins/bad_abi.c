/* bad_abi - a test plugin built "for ABI 2": the agent must refuse it. */
#include "dmarcwatch/notifier.h"

static int
x_init(const struct dw_host *h, const struct dw_kv *c, size_t n, void **s, char *e, size_t el)
{
	(void)h, (void)c, (void)n, (void)s, (void)e, (void)el;
	return 0;
}

static int
x_notify(void *s, const struct dw_notification *n, unsigned *ra, char *e, size_t el)
{
	(void)s, (void)n, (void)ra, (void)e, (void)el;
	return DW_NOTIFY_OK;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry = {
    .abi_version = 2, .struct_size = sizeof(struct dw_notifier), .name = "bad_abi", .init = x_init, .notify = x_notify};
