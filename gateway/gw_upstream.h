/* gw_upstream: the coffer-api replicas the gateway calls, with health
 * checking and failover.
 *
 * A background thread asks each target grpc.health.v1.Health/Check("")
 * every interval (through the gRPC C core, a path independent of the
 * calls'); SERVING marks it healthy. It also resolves host names again
 * each round, so the calls' own client (gw_ucl) never waits on DNS.
 * Calls go round-robin to the healthy targets (to every target when none
 * is). A call that certainly never reached a server (its target could
 * not be connected to, or the server refused its stream unprocessed:
 * REFUSED_STREAM, or above a GOAWAY's last stream) moves on to the next
 * target, and a target that could not be connected to is marked
 * unhealthy until its next check; any other outcome, an UNAVAILABLE
 * after the request may have reached a server included, is returned as
 * it is: a call that may have executed is never retried.
 *
 * Calls run on a gw_ucl: the caller's own (each front's event loop has
 * one), or, for callers without one (the fuzz target, tools), the one of
 * the upstreams' own loop thread ("gw-calls"). */
#ifndef COFFER_GW_UPSTREAM_H
#define COFFER_GW_UPSTREAM_H

#include "rpc_client.h"

#include <sys/socket.h>

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

/* Starts the health thread and the calls' loop thread. Returns 0, or -1. */
__attribute__((warn_unused_result))
int gw_upstreams_start(gw_upstreams *u);

/* Stops the threads (if started) and frees everything. Every call started
 * with gw_upstreams_call_start must have completed (its done has run). */
void gw_upstreams_free(gw_upstreams *u);

/* ---- asynchronous calls with failover ---- */

/* Called once per started call, when the call has ended (after any
 * failover), on the thread of the gw_ucl that ran it: rc, res and
 * response as rpc_client_unary gives them, target_index the target that
 * answered (or was tried last). res and response are borrowed: they are
 * released when the function returns. The gw_upcall is not touched after
 * the call, so the function may hand its owner back to another thread. */
typedef void gw_upstream_done_fn(void *arg, int rc, const rpc_call_result *res, const ProtobufCMessage *response,
                                 size_t target_index);

typedef struct gw_ucl gw_ucl;

/* Caller-owned storage for one call at a time (reusable). Members are
 * private to gw_upstream and gw_ucl. */
typedef struct gw_upcall {
    uint8_t *req;                /* the gRPC message: 5-byte prefix and the packed request */
    size_t req_len, req_cap;
    char path[192];              /* "/package.Service/Method" */
    const ProtobufCMessageDescriptor *output;
    rpc_call_options options;
    int64_t deadline_us;         /* monotonic; 0: none */
    size_t order[GW_UPSTREAM_MAX];
    size_t n, k;                 /* targets to try, the one being tried */
    unsigned resent;             /* times sent again to the same target after a GOAWAY */
    gw_upstream_done_fn *done;
    void *arg;
    /* gw_ucl's links */
    struct gw_upcall *next;      /* a queue: handed to a loop, or waiting for a connection */
    struct gw_upcall *dl_prev, *dl_next; /* calls with a deadline */
    void *stream;                /* in flight on this stream */
    void *waiting;               /* waiting for this connection */
} gw_upcall;

/* Returns 0, or -1 when memory is short. */
__attribute__((warn_unused_result))
int gw_upcall_init(gw_upcall *c);

/* Releases an idle gw_upcall (no call in flight). */
void gw_upcall_dispose(gw_upcall *c);

/* Starts a unary call of service/method with request (packed here, so
 * request may be freed at once) on a healthy target, round-robin, on
 * client (the caller's loop's; NULL: the upstreams' loop thread). A
 * failure that shows the request never reached a server is re-sent to
 * the next target. options->metadata (borrowed) must stay valid until
 * done runs. Returns 0: done(arg, ...) will run exactly once (on
 * client's thread, perhaps before this returns); or -1 with res (output)
 * saying why (an unknown method, a request of the wrong type, no
 * memory): done will not run. Needs gw_upstreams_start. */
__attribute__((warn_unused_result))
int gw_upstreams_call_start(gw_upstreams *u, gw_ucl *client, gw_upcall *c, rpc_call_result *res,
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

/* ---- for gw_ucl ---- */

/* Sets res (output) to code and the formatted message. */
void gw_upstream_result(rpc_call_result *res, rpc_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Target i's address as last resolved, and its :authority. 0, or -1 with
 * detail when it has none (its name does not resolve). */
int gw_upstreams_address(gw_upstreams *u, size_t i, struct sockaddr_storage *ss, socklen_t *ss_len, char *detail,
                         size_t detail_len);
const char *gw_upstreams_authority(const gw_upstreams *u, size_t i);

/* Target i could not be reached (detail says why). */
void gw_upstreams_unreachable(gw_upstreams *u, size_t i, const char *detail);

void gw_upstreams_count_failover(gw_upstreams *u);
size_t gw_upstreams_max_message(const gw_upstreams *u);
int64_t gw_upstreams_connect_timeout_ms(const gw_upstreams *u);

#endif
