/* gw_ucl: the gateway's calls to coffer-api, spoken as gRPC over HTTP/2
 * by the gateway itself (nghttp2 frames them), on one event loop.
 *
 * Why not the gRPC C core's client: one core call cost the gateway 14 to
 * 19 µs of CPU (filter stack, one sendmsg per call, the completion queue)
 * plus wake-ups between the front's loop, the core's executor and the
 * completion thread, more than everything else a request does
 * (bench/gateway). Here a front's event loop owns its upstream
 * connections: a request read on that loop is framed onto the upstream
 * connection in the same turn, the frames of every call of a turn leave
 * in one write, and answers are read and handed back on the same thread.
 * What the core did that a unary plaintext call to coffer-api needs is
 * done here: deadlines (grpc-timeout, and a local timer that cancels the
 * stream), connection set-up with a timeout, GOAWAY (streams the server
 * refused unprocessed are sent again), flow control and HPACK (nghttp2),
 * and failover between targets (gw_upstream). TLS to coffer-api is not
 * supported (it never was: upstream.targets are plaintext addresses on
 * the private network or a Unix socket).
 *
 * A gw_ucl belongs to the thread that runs it: every function but
 * gw_ucl_new must be called there. Its calls' done functions run there
 * too, from gw_ucl_start, gw_ucl_run, gw_ucl_flush or gw_ucl_free. */
#ifndef COFFER_GW_UCL_H
#define COFFER_GW_UCL_H

#include "gw_upstream.h"

#include <stddef.h>

typedef struct gw_ucl gw_ucl;

/* A client of u's targets (no connection yet). NULL when memory is short. */
__attribute__((warn_unused_result))
gw_ucl *gw_ucl_new(gw_upstreams *u);

/* Ends every call still running with CANCELLED (their done functions
 * run), closes the connections, frees l. l may be NULL. */
void gw_ucl_free(gw_ucl *l);

/* An epoll descriptor the owner's loop watches for reading (EPOLLIN):
 * when it is ready, call gw_ucl_run. */
int gw_ucl_fd(const gw_ucl *l);

/* Milliseconds until gw_ucl_run must run again for a deadline or a
 * connect timeout (0: now), -1 when nothing is pending. */
int gw_ucl_timeout_ms(const gw_ucl *l);

/* Reads and writes what its sockets are ready for, ends the calls that
 * finished, and expires deadlines. Never blocks. */
void gw_ucl_run(gw_ucl *l);

/* Writes the frames of the calls started since the last flush: once per
 * loop turn, before the loop waits. */
void gw_ucl_flush(gw_ucl *l);

/* Starts a call prepared by gw_upstreams_call_start (the request packed,
 * the targets ordered). Its done function runs exactly once, perhaps
 * before this returns (no target can be reached). */
void gw_ucl_start(gw_ucl *l, gw_upcall *c);

/* Calls started and not yet ended. */
size_t gw_ucl_calls(const gw_ucl *l);

#endif
