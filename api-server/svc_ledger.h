/* svc_ledger: what the ledger services (svc_client, svc_user, and the
 * money services) share: field validation, protobuf helpers over the
 * call's arena, and one way to read a client_vaults row into the
 * accounting model (accounting.h) and into a coffer.v1.Vault. */
#ifndef COFFER_SVC_LEDGER_H
#define COFFER_SVC_LEDGER_H

#include "accounting.h"
#include "coffer/v1/common.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ledger_db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVC_UUID_LEN 36u

/* Whether s is "0x" followed by exactly 40 hex digits (either case). */
bool svc_is_address(const char *s);

/* Whether s is a canonical lowercase uuid text (8-4-4-4-12 hex). */
bool svc_is_uuid(const char *s);

/* Whether s has min..max bytes, all printable ASCII (spaces only when
 * allow_space). */
bool svc_is_printable(const char *s, size_t min, size_t max, bool allow_space);

/* A random version-4 uuid (out: SVC_UUID_LEN + 1 bytes). */
void svc_uuid_v4(char out[SVC_UUID_LEN + 1]);

/* A Timestamp in the call's arena from epoch microseconds; NULL when
 * memory is short. */
Google__Protobuf__Timestamp *svc_timestamp_us(rpc_ctx *ctx, int64_t us);

/* a in decimal, in the call's arena (NULL: memory). */
char *svc_dec(rpc_ctx *ctx, const u256 *a);

/* a - b as a signed decimal ("-5" when b > a), in the arena. */
char *svc_signed_dec(rpc_ctx *ctx, const u256 *a, const u256 *b);

/* (a - b) / d as a double, signed; 0 when d is zero. */
double svc_signed_ratio(const u256 *a, const u256 *b, const u256 *d);

/* The lowercase names the database uses, and back (0 / NULL: unknown). */
const char *svc_category_name(Coffer__V1__StrategyCategory c);
Coffer__V1__StrategyCategory svc_category_parse(const char *name);

/* client_vaults v, read in this column order (SVC_VAULT_NCOLS columns,
 * "now" being the transaction's now() in unix seconds). Append
 * "FROM client_vaults v ...". */
#define SVC_VAULT_COLUMNS                                                                             \
    "v.id::text, v.chain_id, '0x' || encode(v.token_address, 'hex'), v.token_symbol, v.token_decimals, " \
    "v.total_shares, v.current_index, v.idle_assets, v.deployed_assets, v.withdrawals_payable, "        \
    "v.locked_profit, floor(extract(epoch FROM v.locked_at))::bigint, v.profit_unlock_s, v.surplus, "   \
    "v.min_first_deposit, v.status, coalesce(v.paused_reason, ''), v.client_id::text, "                 \
    "floor(extract(epoch FROM v.created_at) * 1000000)::bigint, floor(extract(epoch FROM now()))::bigint"
#define SVC_VAULT_NCOLS 20

typedef struct {
    char id[SVC_UUID_LEN + 1];
    uint64_t chain_id;
    char token_address[43];
    char token_symbol[17];
    unsigned decimals;
    char status[16];
    char paused_reason[512];
    char client_id[SVC_UUID_LEN + 1];
    int64_t created_us;
    int64_t now_s;            /* the transaction's now() */
    acct_vault vault;
    acct_params params;
} svc_vault_row;

/* Reads columns col0 .. col0 + SVC_VAULT_NCOLS - 1 of row. Returns RPC_OK
 * or RPC_INTERNAL (logged: a value the ledger cannot represent). */
__attribute__((warn_unused_result))
rpc_code svc_vault_read(ledger_tx *tx, svc_vault_row *out, const PGresult *res, int row, int col0);

/* A coffer.v1.Vault for the row, priced at the row's now (index and
 * locked profit as accounting.h computes them), with apy figures given;
 * strategies are left empty. NULL with the status set on failure (*code). */
Coffer__V1__Vault *svc_vault_to_pb(ledger_tx *tx, rpc_code *code, const svc_vault_row *r, double apy_7d,
                                   double apy_30d);

/* The SQL for a vault's newest index_history row at or before now - N days
 * (columns: index_value, unix seconds), as a LATERAL join against v. */
#define SVC_APY_LATERAL(alias, days)                                                                   \
    " LEFT JOIN LATERAL (SELECT h.index_value, floor(extract(epoch FROM h.at))::bigint AS at_s "        \
    "FROM index_history h WHERE h.vault_id = v.id AND h.at <= now() - interval '" days " days' "       \
    "ORDER BY h.at DESC LIMIT 1) " alias " ON true "

/* The APY from the LATERAL columns at res[row][col] (index) and [col + 1]
 * (seconds), against the index now; 0 without history. */
double svc_apy_from(const PGresult *res, int row, int col, const u256 *index_now, int64_t now_s);

/* Settles a burned withdrawal's on-chain payout inside tx (platform
 * scope): paid → COMPLETED with reference (the 0x transaction hash) as
 * CompleteWithdrawal does; not paid → FAILED and compensated as
 * FailWithdrawal does, reference being the reason. A withdrawal no longer
 * in PROVIDER_PROCESSING (an operator settled it) is left alone. */
__attribute__((warn_unused_result))
rpc_code svc_withdrawal_payout_settled(ledger_tx *tx, const char *withdrawal_id, bool paid, const char *reference);

/* Credits a crypto deposit from its Transfer log inside tx (platform
 * scope), as CompleteDeposit does (order_id, credited amount, 0x tx hash,
 * log index; one log credits at most one deposit). */
__attribute__((warn_unused_result))
rpc_code svc_deposit_credit(ledger_tx *tx, const char *order_id, const u256 *amount, const char *tx_hash_0x,
                            uint32_t log_index);

#endif
