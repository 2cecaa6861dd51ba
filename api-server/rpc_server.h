/* rpc_server: coffer-api's gRPC server over the RPC table.
 *
 * Threads. One completion-queue thread runs the gRPC core's events and
 * never blocks on anything but the queue: it takes new calls, re-posts
 * request slots, queues work, and moves stream writes along. A pool of
 * worker threads does the generic work of every call, then the handler:
 *   deadline -> authenticate -> authorize -> idempotency-key -> rate
 *   -> unpack (size and memory limits) -> handler -> pack -> status
 * and writes one access-log line per call. Handlers may block on
 * PostgreSQL; the queue thread never waits for them.
 *
 * Per call: a request id (the client's `x-request-id` when it is sane,
 * else generated) is echoed in the response headers and set as the
 * worker's log request id; the deadline and cancellation are visible to
 * the handler through rpc_ctx_should_stop. Unknown methods are answered
 * UNIMPLEMENTED at once; messages above max_message_bytes are refused
 * RESOURCE_EXHAUSTED by the core (and by the unpack step).
 *
 * Shutdown: rpc_server_shutdown_begin stops accepting (listeners close,
 * clients get GOAWAY) and ends open streams with UNAVAILABLE; calls in
 * flight run to completion. rpc_server_wait_drained waits for them up to a
 * grace period, rpc_server_cancel_inflight cancels what is left, and
 * rpc_server_free then stops the threads. */
#ifndef COFFER_RPC_SERVER_H
#define COFFER_RPC_SERVER_H

#include "auth.h"
#include "db_pool.h"
#include "rpc_table.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_REQUEST_ID_MAX 64u        /* longest x-request-id kept as given */
#define RPC_IDEMPOTENCY_KEY_MAX 128u  /* longest idempotency-key accepted */
#define RPC_MESSAGE_MAX 256u          /* longest status message kept */

typedef struct rpc_server rpc_server;

/* Optional rate hook: RPC_OK to let the call through, otherwise a code
 * (RPC_RESOURCE_EXHAUSTED), msg, and *retry_after_ms (> 0: when a retry
 * may succeed; sent to the client as google.rpc.RetryInfo). Runs on worker
 * threads; not consulted for RPC_RATE_NONE methods. */
typedef rpc_code (*rpc_rate_fn)(void *arg, char *msg, size_t msg_len, int64_t *retry_after_ms,
                                const auth_caller *caller, rpc_rate_class rate);

typedef struct {
    const char *listen;          /* "host:port" (port 0: any), or NULL/"" for no TCP listener */
    const char *unix_socket;     /* a filesystem path, or NULL/"" for none */
    const char *tls_cert_pem;    /* PEM chain for the TCP listener; NULL: plaintext */
    const char *tls_key_pem;     /* PEM key, with tls_cert_pem */
    size_t max_message_bytes;    /* per message, both directions */
    unsigned workers;            /* handler threads, >= 1 */
    unsigned max_queued;         /* calls waiting for a worker before RESOURCE_EXHAUSTED, >= 1 */
    int64_t keepalive_time_ms;
    int64_t keepalive_timeout_ms;
    int64_t keepalive_min_ping_interval_ms;
    bool keepalive_permit_without_calls;
    rpc_table *table;            /* borrowed; rows get their registrations */
    auth *auth;                  /* borrowed */
    db_pool *db;                 /* borrowed; handed to handlers */
    rpc_rate_fn rate_check;      /* NULL: no rate limiting */
    void *rate_arg;
} rpc_server_options;

/* Creates the server and binds its listeners (nothing is served yet).
 * Returns it, or NULL with err[0..err_len) saying what failed. */
__attribute__((warn_unused_result))
rpc_server *rpc_server_new(char *err, size_t err_len, const rpc_server_options *options);

/* The bound TCP port (useful with port 0), 0 when there is no TCP listener. */
int rpc_server_port(const rpc_server *s);

/* Counters of calls to methods the table does not know (each row has its
 * own in rpc_row.stats). */
const rpc_stats *rpc_server_unknown_stats(const rpc_server *s);

/* Starts the threads and begins serving. Returns 0, or -1 with err. */
__attribute__((warn_unused_result))
int rpc_server_start(rpc_server *s, char *err, size_t err_len);

/* Stops accepting calls and ends open streams (UNAVAILABLE); calls in
 * flight continue. Idempotent; thread-safe. */
void rpc_server_shutdown_begin(rpc_server *s);

/* Waits up to timeout_ms (< 0: forever) for every call to be over after
 * rpc_server_shutdown_begin. Returns true when drained. */
bool rpc_server_wait_drained(rpc_server *s, int64_t timeout_ms);

/* Cancels every call still in flight (their handlers see
 * rpc_ctx_should_stop). Only after rpc_server_shutdown_begin. */
void rpc_server_cancel_inflight(rpc_server *s);

/* Calls in flight now (being handled or waiting for a worker). */
unsigned rpc_server_inflight(rpc_server *s);

/* Shuts down if needed (cancelling what is left), stops the threads and
 * frees the server. s may be NULL. */
void rpc_server_free(rpc_server *s);

/* ---- what handlers get ------------------------------------------------ */

/* The deadline on CLOCK_MONOTONIC in ms (INT64_MAX: none), and the time
 * left (INT64_MAX: no deadline; <= 0: passed). */
int64_t rpc_ctx_deadline_ms(const rpc_ctx *ctx);
int64_t rpc_ctx_remaining_ms(const rpc_ctx *ctx);

/* True when the handler should stop before doing anything it cannot undo:
 * the deadline passed, the client cancelled or went away, or the server
 * cancelled in-flight calls. The first call (or rpc_ctx_db_acquire) starts
 * watching for cancellation; a handler that never asks is assumed to
 * answer from memory at once, and its call is not watched. */
bool rpc_ctx_should_stop(rpc_ctx *ctx);

const char *rpc_ctx_request_id(const rpc_ctx *ctx);
const auth_caller *rpc_ctx_caller(const rpc_ctx *ctx);
const char *rpc_ctx_method(const rpc_ctx *ctx);

/* The idempotency-key header of a mutating method, NULL when not sent;
 * *len its length (1..RPC_IDEMPOTENCY_KEY_MAX printable ASCII). */
const char *rpc_ctx_idempotency_key(const rpc_ctx *ctx, size_t *len);

db_pool *rpc_ctx_db(const rpc_ctx *ctx);

/* The arg given with the method's service to rpc_table_add_service. */
void *rpc_ctx_service_arg(const rpc_ctx *ctx);

/* Zeroed memory that lives until the response is packed (unary) or the
 * stream handler returns. NULL when memory is short. */
__attribute__((warn_unused_result))
void *rpc_ctx_alloc(rpc_ctx *ctx, size_t n);
__attribute__((warn_unused_result))
char *rpc_ctx_strdup(rpc_ctx *ctx, const char *s);

/* Makes the unary call's answer these already packed bytes of the
 * method's output type (copied) instead of packing the response message:
 * for replaying a stored answer (idempotency) or one the handler caches
 * (GetInfo). The handler must then
 * return RPC_OK. Returns RPC_OK, or RPC_RESOURCE_EXHAUSTED (status set)
 * when memory is short. */
__attribute__((warn_unused_result))
rpc_code rpc_ctx_reply_packed(rpc_ctx *ctx, const uint8_t *data, size_t len);

/* Sets the status message (printf-style, one line, truncated to
 * RPC_MESSAGE_MAX) and returns code, for `return rpc_ctx_fail(...)`. */
rpc_code rpc_ctx_fail(rpc_ctx *ctx, rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* rpc_ctx_fail, and tells the client when a retry may succeed: the
 * status carries a google.rpc.Status with a google.rpc.RetryInfo detail
 * (trailer grpc-status-details-bin), as gRPC's error model advises for
 * RESOURCE_EXHAUSTED and UNAVAILABLE. */
rpc_code rpc_ctx_fail_retry(rpc_ctx *ctx, rpc_code code, int64_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Borrows a pooled connection, waiting no longer than the deadline (5 s
 * without one). Returns it, or NULL with the call's status set
 * (RPC_UNAVAILABLE: database down or every connection busy;
 * RPC_DEADLINE_EXCEEDED) and *code the code to return. */
__attribute__((warn_unused_result))
PGconn *rpc_ctx_db_acquire(rpc_ctx *ctx, rpc_code *code);
void rpc_ctx_db_release(rpc_ctx *ctx, PGconn *conn);

/* ---- streams ------------------------------------------------------------- */

/* Queues msg (packed now; msg may be freed on return) for the stream.
 * Thread-safe and non-blocking. Returns 0, or -1 when the stream is
 * already finished or over (nobody to tell: callers usually ignore it),
 * or msg is too large (logged). */
int rpc_stream_send(rpc_ctx *ctx, const ProtobufCMessage *msg);

/* Ends the stream with code after the queued messages. Thread-safe.
 * Returns 0, or -1 when it was already finished or is over. */
int rpc_stream_finish(rpc_ctx *ctx, rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Registers fn(arg), called once when the stream is over (finished and
 * delivered, cancelled, or the client went away), on the completion-queue
 * thread: it must only take short locks. ctx stays valid until fn has
 * returned. Returns 0, or -1 when the stream is already over (fn is then
 * never called). */
__attribute__((warn_unused_result))
int rpc_stream_on_done(rpc_ctx *ctx, void (*fn)(void *arg), void *arg);

#endif
