/*
 * sdnotify.h - systemd's readiness protocol without libsystemd.
 *
 * When the service manager starts us with Type=notify it sets
 * $NOTIFY_SOCKET to a unix datagram socket (a path, or "@name" for the
 * abstract namespace). We send it newline-separated "KEY=VALUE"
 * assignments: READY=1 once the agent has loaded its configuration,
 * RELOADING=1 + MONOTONIC_USEC=... at the start of a SIGHUP reload (then
 * READY=1 again), STOPPING=1 on the way out, STATUS=... for
 * `systemctl status`. Outside systemd ($NOTIFY_SOCKET unset) every call
 * is a no-op returning 0. Nothing here keeps state between calls.
 */
#ifndef DW_SDNOTIFY_H
#define DW_SDNOTIFY_H

#include <stddef.h>

/*
 * Send `state` (e.g. "READY=1\nSTATUS=watching 2 accounts") to
 * $NOTIFY_SOCKET. Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset,
 * -1 on failure with err set (the socket named, and why). Never blocks
 * for long (MSG_DONTWAIT) and never raises SIGPIPE.
 */
int dw_sd_notify(const char *state, char *err, size_t errlen);

/* The same to an explicit socket address (tests; NULL or "" = no-op). */
int dw_sd_notify_to(const char *socket_addr, const char *state, char *err, size_t errlen);

#endif
