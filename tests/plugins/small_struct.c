/* small_struct - claims a struct smaller than ABI 1's: must be refused. */
#include "dmarcwatch/notifier.h"

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry = {.abi_version = DW_NOTIFIER_ABI_VERSION,
                                                                  .struct_size = 16};
