/* evm_rpc_internal: what evm_calls.c (the typed helpers) needs from
 * evm_rpc.c (the transport). Not for other modules: use evm_rpc.h. */
#ifndef COFFER_EVM_RPC_INTERNAL_H
#define COFFER_EVM_RPC_INTERNAL_H

#include <jansson.h>

#include "evm_rpc.h"
#include "jsonrpc.h"

/* Parses a call's result; returns 0, or -1 with err set. It may run once
 * per attempt that got a well-formed answer and must leave nothing to free
 * when it fails. ctx: the caller's output. */
typedef int (*evm_result_fn)(void *ctx, jsonrpc_err *err, const json_t *result);

/* Runs method m with params (an array; the reference is stolen; NULL means
 * building it ran out of memory: EVM_ERR_NOMEM) through failover, breakers
 * and (for reads) retries, parsing the result with fn. Clears err first
 * (err may be NULL). Returns EVM_OK, EVM_ERR_RPC, EVM_ERR_UNAVAILABLE,
 * EVM_ERR_UNKNOWN_OUTCOME or EVM_ERR_NOMEM. */
__attribute__((warn_unused_result))
evm_err evm_rpc_run(evm_rpc *rpc, evm_rpc_error *err, evm_method m, json_t *params,
                    evm_result_fn fn, void *ctx);

/* Resets err (endpoint -1, no message, no data). err may be NULL. */
void evm_rpc_err_clear(evm_rpc_error *err);

/* Writes err->message printf-style. err may be NULL. */
void evm_rpc_err_setf(evm_rpc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
