/* ops_audit: the audit log for operators: listing with filters and
 * paging, and the hash chain recomputed in C (libsodium's SHA-256) exactly
 * as migrations/0002_ledger.sql's trigger builds it:
 *
 *   hash = sha256(prev_hash || id "\n" at_us "\n" actor "\n" client_id "\n"
 *                 action "\n" entity_type "\n" entity_id "\n" details::text)
 *
 * where at_us = (extract(epoch FROM at) * 1000000)::bigint, client_id is ""
 * when NULL, and prev_hash is the previous row's hash (32 zero bytes for
 * the first row). */
#ifndef COFFER_OPS_AUDIT_H
#define COFFER_OPS_AUDIT_H

#include "ledger_db.h"
#include "rpc_table.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool ok;
    uint64_t checked;
    uint64_t first_bad_id;  /* 0 when ok */
    char detail[200];
    char head_hash[65];     /* hex of the last row's stored hash ("" when empty) */
} ops_audit_result;

/* Recomputes the whole chain in tx (platform scope). Returns RPC_OK (the
 * finding is in *out) or a database failure. */
__attribute__((warn_unused_result))
rpc_code ops_audit_verify(ledger_tx *tx, ops_audit_result *out);

/* OperationsService handlers. */
rpc_code ops_audit_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);
rpc_code ops_audit_verify_chain(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);

#endif
