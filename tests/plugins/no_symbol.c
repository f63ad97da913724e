/* no_symbol - a shared object without dw_notifier_entry: must be refused. */
#include "dmarcwatch/notifier.h"

DW_NOTIFIER_EXPORT int not_a_notifier(void);

int
not_a_notifier(void)
{
	return 42;
}
