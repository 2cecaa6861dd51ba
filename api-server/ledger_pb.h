/* ledger_pb: protobuf pieces the ledger services share: timestamps,
 * amounts as decimal strings, and the coffer.v1.Vault message of a
 * vault_row (with its strategy targets and APY from index_history).
 * Everything is allocated from the call's arena (rpc_ctx_alloc). */
#ifndef COFFER_LEDGER_PB_H
#define COFFER_LEDGER_PB_H

#include "coffer/v1/common.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ledger_db.h"
#include "vault_store.h"

/* A Timestamp for unix microseconds; NULL when memory is short. */
Google__Protobuf__Timestamp *ledger_pb_timestamp(rpc_ctx *ctx, int64_t us);

/* v in decimal, from the arena; NULL when memory is short. */
char *ledger_pb_u256(rpc_ctx *ctx, const u256 *v);

/* Fills *out (arena) from v at v->now: index and NAV as the engine sees
 * them now, strategies and APY read in tx. Returns RPC_OK or the failure
 * (status set). */
__attribute__((warn_unused_result))
rpc_code ledger_pb_vault(ledger_tx *tx, Coffer__V1__Vault **out, const vault_row *v);

/* Status code for memory trouble, set on tx. */
rpc_code ledger_pb_oom(ledger_tx *tx);

#endif
