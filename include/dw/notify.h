/*
 * notify.h - loading notifier plugins and calling them.
 *
 * The loader turns the configuration's notifiers: list into instances:
 * for each entry it finds the .so (plugin_dir/NAME.so or an absolute path),
 * refuses a group/world-writable file or one not owned by root or us,
 * dlopen()s it with RTLD_NOW | RTLD_LOCAL, checks the exported
 * dw_notifier_entry (ABI version, struct size, init and notify present)
 * and runs init() with the entry's settings. Every refusal is a
 * configuration error "FILE:LINE:COL: notifiers[N].plugin: ..." saying what
 * to do; nothing is skipped silently.
 *
 * Each instance owns its struct dw_host (include/dmarcwatch/notifier.h):
 * log() prefixes "notifier NAME: " and masks every secret the plugin
 * resolved through host->secret(); so does dw_notifier_call() for the error
 * text it returns. Delivery scheduling lives in deliver.h.
 */
#ifndef DW_NOTIFY_H
#define DW_NOTIFY_H

#include <stddef.h>

#include "dmarcwatch/notifier.h"
#include "dw/config.h"

struct dw_notifiers;
struct dw_notifier_inst;

/*
 * Load and init() every configured notifier, in order. All init() calls
 * happen here, in the calling thread, before any delivery thread exists.
 * On failure returns DW_E_CONFIG with every problem in msgs->errors (the
 * instances already made are shut down). Warnings may be added either way.
 * With no notifiers configured, *out is an empty set.
 */
int dw_notifiers_load(const struct dw_config *c, struct dw_notifiers **out, struct dw_cfg_msgs *msgs);
/* shutdown() in reverse order, then dlclose (kept when DW_NO_DLCLOSE=1,
 * so ASan and Valgrind can name plugin frames). NULL-safe. */
void dw_notifiers_free(struct dw_notifiers *ns);

size_t dw_notifiers_count(const struct dw_notifiers *ns);
struct dw_notifier_inst *dw_notifiers_at(struct dw_notifiers *ns, size_t i);
struct dw_notifier_inst *dw_notifiers_find(struct dw_notifiers *ns, const char *name); /* or NULL */

const char *dw_notifier_name(const struct dw_notifier_inst *ni);
const struct dw_notifier_cfg *dw_notifier_config(const struct dw_notifier_inst *ni); /* a copy of the timing keys */
const char *dw_notifier_plugin_path(const struct dw_notifier_inst *ni);

/*
 * Call the plugin's notify() once. Returns DW_NOTIFY_OK, _RETRY or _FAIL
 * (anything else the plugin returns counts as FAIL); *retry_after is the
 * plugin's hint in seconds (0 = none). err is filled for failures, with
 * secrets masked. Must not be called concurrently for one instance.
 */
int dw_notifier_call(struct dw_notifier_inst *ni, const struct dw_notification *n, unsigned *retry_after,
                     char *err, size_t errlen);

/* Replace every registered secret of this instance in s with "[secret]". */
void dw_notifier_redact(const struct dw_notifier_inst *ni, char *s, size_t size);

#endif
