/* null_notify - a plugin whose notify is NULL: must be refused. */
#include "dmarcwatch/notifier.h"

static int
x_init(const struct dw_host *h, const struct dw_kv *c, size_t n, void **s, char *e, size_t el)
{
	(void)h, (void)c, (void)n, (void)s, (void)e, (void)el;
	return 0;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "null_notify", .init = x_init);
