/* rpc_code: gRPC status codes as our own enum, so service code, the RPC
 * table and clients never include a gRPC core header. The values are the
 * wire values of grpc-status (google.rpc.Code); grpcw checks at compile
 * time that they match the core's. */
#ifndef COFFER_RPC_CODE_H
#define COFFER_RPC_CODE_H

typedef enum {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
} rpc_code;

#define RPC_CODE_MAX RPC_UNAUTHENTICATED

/* The code's canonical name ("OK", "INVALID_ARGUMENT", ...), or
 * "UNKNOWN_CODE" for a value outside 0..16. Never NULL. */
const char *rpc_code_name(rpc_code code);

#endif
