/* rpc_table: coffer-api's RPCs as data, built from protobuf-c service
 * descriptors (Redis's command table is the model). Each service file
 * (svc_*.c) declares one rpc_method_def row per method of its .proto
 * service: the handler, who may call it, whether it mutates (and so reads
 * `idempotency-key`), its rate class and its streaming kind. The table
 * checks the rows against the generated descriptors (every method has
 * exactly one row, every row names a real method) and against the
 * embedded descriptor set (the kind matches the .proto's streaming
 * flags), so a method added to a .proto without a row, or a row with the
 * wrong kind, stops coffer-api at start-up instead of misbehaving.
 *
 * The generic work for every method (unpack with limits, authenticate,
 * authorize, deadline, worker thread, pack, status, access log) lives in
 * rpc_server; handlers only do their method's work. */
#ifndef COFFER_RPC_TABLE_H
#define COFFER_RPC_TABLE_H

#include "rpc_code.h"
#include "rpc_stats.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who may call a method. */
typedef enum {
    RPC_ACCESS_ANYONE = 0, /* no credential needed (one that is sent must be valid) */
    RPC_ACCESS_CLIENT,     /* a client's API key */
    RPC_ACCESS_ADMIN,      /* the operator's admin token */
} rpc_access;

/* Streaming shape, as in the .proto. Client streaming alone is not used. */
typedef enum {
    RPC_KIND_UNARY = 0,
    RPC_KIND_SERVER_STREAM, /* one request, any number of responses */
    RPC_KIND_BIDI_STREAM,   /* messages both ways */
} rpc_kind;

/* Rate classes, for the rate hook (rpc_server_options.rate_check). */
typedef enum {
    RPC_RATE_NONE = 0, /* never limited (health, info) */
    RPC_RATE_READ,     /* reads */
    RPC_RATE_WRITE,    /* money-moving and other mutations */
    RPC_RATE_ADMIN,    /* operator calls */
    RPC_RATE_EXECUTE,  /* on-chain execution (TreasuryService Execute*, RunJob): few per minute */
} rpc_rate_class;

#define RPC_RATE_CLASS_COUNT 5u /* rpc_rate_class values, RPC_RATE_NONE included */

/* rpc_method_def.flags */
#define RPC_F_MUTATES 0x1u /* changes state: the idempotency-key header is read and checked */
/* The handler answers from memory in microseconds and never blocks (no
 * database, no signer, no lock held for long): a call that needs no
 * credential lookup (no authorization header, or none that could reach
 * the resolver) runs on the completion-queue thread, without the hand-off
 * to a worker. Unary, RPC_ACCESS_ANYONE and RPC_RATE_NONE only. GetInfo
 * and Health/Check, which load balancers and monitors call all the time. */
#define RPC_F_INLINE 0x2u

typedef struct rpc_ctx rpc_ctx;

/* A unary handler. req: the decoded request (borrowed). resp: a fresh,
 * initialized message of the method's output type to fill; memory it
 * points to must come from rpc_ctx_alloc/rpc_ctx_strdup (or be static).
 * Returns RPC_OK, or a code with the reason set by rpc_ctx_fail. Runs on a
 * worker thread and may block (PostgreSQL), checking rpc_ctx_should_stop
 * before anything it cannot undo. */
typedef rpc_code (*rpc_unary_fn)(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage *resp);

/* A streaming handler, called on a worker thread for each request message
 * (exactly once for server streams). It answers with rpc_stream_send and
 * ends the call with rpc_stream_finish, now or later from any thread.
 * Returning a code other than RPC_OK ends the call with that code at once.
 * For a bidi stream the next message is read after it returns; when the
 * client half-closes, the call ends with OK. */
typedef rpc_code (*rpc_stream_fn)(rpc_ctx *ctx, const ProtobufCMessage *req);

/* One row. */
typedef struct {
    const char *name;       /* method name as in the .proto: "GetInfo" */
    rpc_kind kind;
    rpc_access access;
    unsigned flags;         /* RPC_F_* */
    rpc_rate_class rate;
    rpc_unary_fn unary;     /* RPC_KIND_UNARY */
    rpc_stream_fn stream;   /* the streaming kinds */
} rpc_method_def;

/* One service: its generated descriptor and one row per method. */
typedef struct {
    const ProtobufCServiceDescriptor *descriptor;
    const rpc_method_def *methods;
    size_t n_methods;
} rpc_service_def;

/* A row of the built table. */
typedef struct {
    char path[256];                          /* "/coffer.v1.SystemService/GetInfo" */
    const rpc_service_def *service;
    const rpc_method_def *def;
    const ProtobufCMethodDescriptor *method; /* input and output types */
    void *service_arg;                       /* given to rpc_table_add_service */
    void *registration;                      /* rpc_server's handle for this path */
    rpc_stats stats;                         /* calls by code, latency (for /metrics) */
} rpc_row;

typedef struct rpc_table rpc_table;

/* Returns an empty table, or NULL (memory). */
__attribute__((warn_unused_result))
rpc_table *rpc_table_new(void);

void rpc_table_free(rpc_table *t);

/* Adds every method of svc (borrowed: static data) with arg for its
 * handlers (rpc_ctx_service_arg). Returns 0, or -1 with err saying which
 * row or method is wrong (missing, duplicated, unknown, handler of the
 * wrong kind) or that the service was already added. */
__attribute__((warn_unused_result))
int rpc_table_add_service(rpc_table *t, char *err, size_t err_len, const rpc_service_def *svc, void *arg);

/* Checks each row's kind against the streaming flags of its method in a
 * serialized FileDescriptorSet (set[0..set_len)). Returns 0, or -1 with
 * err naming the first disagreement or a method missing from the set. */
__attribute__((warn_unused_result))
int rpc_table_check_descriptor_set(const rpc_table *t, char *err, size_t err_len,
                                   const uint8_t *set, size_t set_len);

size_t rpc_table_count(const rpc_table *t);

/* The i-th row (i < rpc_table_count), borrowed; rows keep their address. */
rpc_row *rpc_table_row(const rpc_table *t, size_t i);

/* The row for a method path, NULL when none. */
const rpc_row *rpc_table_find(const rpc_table *t, const char *path);

/* The generic unpack: decodes data[0..len) as the row's input type.
 * A request longer than max_len bytes is RPC_RESOURCE_EXHAUSTED, one that
 * does not decode (or would take more than RPC_UNPACK_MEMORY_FACTOR times
 * max_len bytes of memory, floor 1 MiB, once decoded) RPC_INVALID_ARGUMENT;
 * msg[0..msg_len) then says why in words for the caller.
 * out: output, a message to free with protobuf_c_message_free_unpacked(m, NULL).
 * data may be NULL when len is 0. */
#define RPC_UNPACK_MEMORY_FACTOR 16u
__attribute__((warn_unused_result))
rpc_code rpc_table_unpack(ProtobufCMessage **out, char *msg, size_t msg_len, const rpc_row *row,
                          const uint8_t *data, size_t len, size_t max_len);

#endif
