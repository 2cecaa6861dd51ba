/* rpc_client: typed unary gRPC calls from protobuf-c descriptors, for the
 * gateway, the benchmarks, `coffer-api status` and other C callers.
 *
 *     rpc_client *c = rpc_client_new("127.0.0.1:50051", NULL);
 *     Coffer__V1__GetInfoRequest req = COFFER__V1__GET_INFO_REQUEST__INIT;
 *     ProtobufCMessage *resp = NULL;
 *     rpc_call_result r;
 *     rpc_call_options o = {.timeout_ms = 2000};
 *     if (rpc_client_unary(c, &r, &resp, &coffer__v1__system_service__descriptor,
 *                          "GetInfo", &req.base, &o) == 0 && r.code == RPC_OK)
 *         ... use (Coffer__V1__GetInfoResponse *)resp ...
 *     protobuf_c_message_free_unpacked(resp, NULL);
 *     rpc_call_result_dispose(&r);
 *
 * A client is thread-safe: any number of threads may call through one. */
#ifndef COFFER_RPC_CLIENT_H
#define COFFER_RPC_CLIENT_H

#include "grpcw.h"
#include "rpc_code.h"

#include <protobuf-c/protobuf-c.h>

typedef struct rpc_client rpc_client;

typedef struct {
    int64_t timeout_ms;         /* deadline from now; <= 0: none */
    const grpcw_md *metadata;   /* sent as request headers, e.g. authorization */
    size_t n_metadata;          /* <= GRPCW_SEND_MD_MAX */
} rpc_call_options;

/* How a call ended. Caller-owned storage; dispose with rpc_call_result_dispose. */
typedef struct {
    rpc_code code;
    char *message;             /* grpc-message; never NULL after a call */
    grpcw_md_list initial_md;  /* response headers (x-request-id, ...) */
    grpcw_md_list trailing_md; /* trailers */
} rpc_call_result;

/* Creates a client for target ("host:port" or "unix:/path"); calls
 * grpcw_init (rpc_client_free drops it). options: TLS roots and limits,
 * NULL for plaintext. Returns NULL when the channel cannot be made. */
__attribute__((warn_unused_result))
rpc_client *rpc_client_new(const char *target, const grpcw_channel_options *options);

void rpc_client_free(rpc_client *client);

/* Calls service/method (a method name of service, e.g. "GetInfo") with
 * request, whose descriptor must be the method's input type.
 * res: output. response: output, set to a new message of the method's
 * output type when res->code is RPC_OK (free it with
 * protobuf_c_message_free_unpacked(msg, NULL)), NULL otherwise.
 * options may be NULL (no deadline, no metadata).
 * Returns 0 when the call ended with a status (any code: read res->code),
 * -1 on caller misuse (unknown method, wrong request type) or local
 * failure, with res->code RPC_INTERNAL and res->message saying which.
 * A response the server sent that does not decode as the output type
 * yields 0 with res->code RPC_INTERNAL. */
__attribute__((warn_unused_result))
int rpc_client_unary(rpc_client *client, rpc_call_result *res, ProtobufCMessage **response,
                     const ProtobufCServiceDescriptor *service, const char *method,
                     const ProtobufCMessage *request, const rpc_call_options *options);

/* The value of response header (or, failing that, trailer) key; NULL when
 * absent. Borrowed from res. */
const char *rpc_call_result_header(const rpc_call_result *res, const char *key);

void rpc_call_result_dispose(rpc_call_result *res);

#endif
