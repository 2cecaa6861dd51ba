/* gw_upstream: the coffer-api replicas the gateway calls, with health
 * checking and failover.
 *
 * A background thread asks each target grpc.health.v1.Health/Check("")
 * every interval; SERVING marks it healthy. Calls go round-robin to the
 * healthy targets (to every target when none is). A call that fails with
 * UNAVAILABLE before it was sent (the channel could not connect: the
 * core's "failed to connect to all addresses", no response headers) moves
 * on to the next target and marks this one unhealthy until its next
 * check; any other outcome, an UNAVAILABLE after the request may have
 * reached a server included, is returned as it is: a call that may have
 * executed is never retried. (Streams a server refused unprocessed during
 * shutdown, GOAWAY, are retried by the gRPC core itself.) */
#ifndef COFFER_GW_UPSTREAM_H
#define COFFER_GW_UPSTREAM_H

#include "rpc_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_UPSTREAM_MAX 16u

typedef struct gw_upstreams gw_upstreams;

typedef struct {
    const char *const *targets; /* "host:port" or "unix:/path" */
    size_t n_targets;           /* 1..GW_UPSTREAM_MAX */
    int64_t health_interval_ms;
    int64_t health_timeout_ms;
    size_t max_message_bytes;
} gw_upstream_config;

/* Creates the channels and runs one round of health checks before it
 * returns (so readiness is known at once). Returns NULL with err. */
__attribute__((warn_unused_result))
gw_upstreams *gw_upstreams_new(char *err, size_t err_len, const gw_upstream_config *cfg);

/* Starts the health thread and the completion thread that finishes
 * asynchronous calls. Returns 0, or -1. */
__attribute__((warn_unused_result))
int gw_upstreams_start(gw_upstreams *u);

/* Stops the threads (if started) and frees everything. Every call started
 * with gw_upstreams_call_start must have completed (its done has run). */
void gw_upstreams_free(gw_upstreams *u);

/* ---- asynchronous calls with failover ---- */

/* Called once per started call, on the upstreams' completion thread, when
 * the call has ended (after any failover): rc, res and response as
 * rpc_client_unary gives them, target_index the target that answered (or
 * was tried last). res and response are borrowed: they are released when
 * the function returns. The gw_upcall is not touched after the call, so
 * the function may hand its owner back to another thread. */
typedef void gw_upstream_done_fn(void *arg, int rc, const rpc_call_result *res, const ProtobufCMessage *response,
                                 size_t target_index);

/* Caller-owned storage for one call at a time (reusable). Members are
 * private to gw_upstream. */
typedef struct {
    rpc_client_call *call;
    rpc_call_options options;
    size_t order[GW_UPSTREAM_MAX];
    size_t n, k;
    gw_upstream_done_fn *done;
    void *arg;
    void *next; /* queued for the completion thread */
} gw_upcall;

/* Returns 0, or -1 when memory is short. */
__attribute__((warn_unused_result))
int gw_upcall_init(gw_upcall *c);

/* Releases an idle gw_upcall (no call in flight). */
void gw_upcall_dispose(gw_upcall *c);

/* Starts a unary call of service/method with request (packed here, so
 * request may be freed at once) on a healthy target, round-robin; a
 * failure that shows the request never left (see above) is re-sent to the
 * next target from the completion thread. options->metadata (borrowed)
 * must stay valid until done runs. Returns 0: done(arg, ...) will run
 * exactly once; or -1 with res (output) saying why: done will not run.
 * Needs gw_upstreams_start. */
__attribute__((warn_unused_result))
int gw_upstreams_call_start(gw_upstreams *u, gw_upcall *c, rpc_call_result *res,
                            const ProtobufCServiceDescriptor *service, const char *method,
                            const ProtobufCMessage *request, const rpc_call_options *options, gw_upstream_done_fn *done,
                            void *arg);

size_t gw_upstreams_count(const gw_upstreams *u);
const char *gw_upstreams_target(const gw_upstreams *u, size_t i);
bool gw_upstreams_healthy(const gw_upstreams *u, size_t i);
size_t gw_upstreams_healthy_count(const gw_upstreams *u);
uint64_t gw_upstreams_failovers(const gw_upstreams *u);

/* Writes the last health problem of target i ("" when healthy) into buf. */
void gw_upstreams_detail(const gw_upstreams *u, char *buf, size_t buf_len, size_t i);

/* True when a failed call's outcome shows the request never left the
 * gateway (exposed for tests). */
bool gw_upstream_not_sent(const rpc_call_result *res);

#endif
