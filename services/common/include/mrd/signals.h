/*
 * signals.h: the graceful-stop signal handling every service shares.
 *
 * mrd_signals_install() catches SIGTERM and SIGINT (and ignores SIGPIPE, so a peer that
 * goes away is an EPIPE error, not a dead process). A caught signal only sets a flag,
 * makes a self-pipe readable and calls an optional async-signal-safe hook; the service's
 * loop checks mrd_should_stop() and drains (stop taking work, flush Kafka, exit 0).
 * With libwebsockets, install the hook `lws_cancel_service(ctx)` (it only writes to lws's
 * own pipe) so a loop blocked in lws_service() wakes at once; do not use an lws event-loop
 * plugin's signal handling together with this (it installs its own watchers for the same
 * signals). Not a general signal
 * dispatcher: no SIGHUP reload, no per-signal callbacks.
 */
#ifndef MRD_SIGNALS_H
#define MRD_SIGNALS_H

#include <stdbool.h>

#include "mrd/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called from the signal handler after the flag is set: must be async-signal-safe. */
typedef void (*mrd_stop_hook_fn)(void *ud);

/* Installs the handlers (sigaction, SA_RESTART not set so blocking calls return EINTR) and
 * the self-pipe. hook may be NULL. Calling again replaces the hook. Returns 0 or the
 * MRD_E* of the failing pipe/sigaction call. */
MRD_EXPORT int mrd_signals_install(mrd_stop_hook_fn hook, void *ud);

/* True once SIGTERM or SIGINT arrived or mrd_request_stop() was called. */
MRD_EXPORT bool mrd_should_stop(void);

/* The signal that asked to stop (SIGTERM, SIGINT), 0 for mrd_request_stop or none yet. */
MRD_EXPORT int mrd_stop_signal(void);

/* Test API (no service calls it): tests (test_log, test_signals). */
/* Asks the loop to stop, as a signal would (for tests, and fatal errors in callbacks). */
MRD_EXPORT void mrd_request_stop(void);

/* Test API (no service calls it): tests (test_log, test_signals); for a poll()-based loop, which
 * no service has today. */
/* A descriptor that becomes readable when a stop is requested, for poll()-based loops;
 * -1 before mrd_signals_install. Never read it: it stays readable. */
MRD_EXPORT int mrd_signals_fd(void);

/* Clears the stop flag (tests only; not thread-safe). */
MRD_EXPORT void mrd_signals_reset(void);

#ifdef __cplusplus
}
#endif
#endif /* MRD_SIGNALS_H */
