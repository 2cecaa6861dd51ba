/* vault_store: a vault's row and its positions, in and out of the
 * accounting engine's structs (accounting.h), inside the caller's ledger
 * transaction (ledger_db.h). SQL for client_vaults, end_user_vaults and
 * index_history lives here.
 *
 * Locking order, for every money operation: the vault row FOR UPDATE
 * first (vault_store_lock*), then its positions (vault_store_position_*),
 * so two operations on one vault serialize on the vault row and never
 * deadlock on positions. Order rows (deposits, withdrawals) are locked
 * before the vault by the services that change them; nothing locks a
 * vault and then an order row of another operation's kind.
 *
 * `now` is the database's transaction time in unix seconds, read with the
 * vault, so every replica computes locked profit from one clock. */
#ifndef COFFER_VAULT_STORE_H
#define COFFER_VAULT_STORE_H

#include "accounting.h"
#include "ledger_db.h"

#include <stdbool.h>
#include <stdint.h>

#define VAULT_STORE_ID_MAX 40u      /* uuid text + NUL */
#define VAULT_STORE_SYMBOL_MAX 20u
#define VAULT_STORE_REASON_MAX 501u

typedef struct {
    char id[VAULT_STORE_ID_MAX];
    char client_id[VAULT_STORE_ID_MAX];
    uint64_t chain_id;
    char token_address[43];                 /* 0x + 40 lowercase hex */
    char token_symbol[VAULT_STORE_SYMBOL_MAX];
    bool paused;
    char paused_reason[VAULT_STORE_REASON_MAX]; /* "" when active */
    uint32_t profit_unlock_s;
    acct_params params;
    acct_vault v;
    acct_fees fees;                         /* the client's, for accrual */
    int64_t now;                            /* database time, unix seconds */
    int64_t created_us;                     /* unix microseconds */
} vault_row;

typedef struct {
    char id[VAULT_STORE_ID_MAX];
    char vault_id[VAULT_STORE_ID_MAX];
    char client_id[VAULT_STORE_ID_MAX];
    char end_user_id[VAULT_STORE_ID_MAX];   /* "" for revenue accounts */
    char kind[20];                          /* user, client_revenue, platform_revenue */
    acct_position pos;
} position_row;

/* Loads vault_id's row locked FOR UPDATE (lock true) or as is (false).
 * *found false (RPC_OK) when there is none in the transaction's scope.
 * Returns RPC_OK or the failure (status set). */
__attribute__((warn_unused_result))
rpc_code vault_store_get(ledger_tx *tx, vault_row *out, bool *found, const char *vault_id, bool lock);

/* The same by (client, chain, token symbol). */
__attribute__((warn_unused_result))
rpc_code vault_store_get_by_token(ledger_tx *tx, vault_row *out, bool *found, const char *client_id,
                                  uint64_t chain_id, const char *token_symbol, bool lock);

/* Every vault in scope (of one client when client_id is non-empty; of
 * one vault when vault_id is), ordered by creation, not locked; *out is
 * malloc'd (free it; NULL when none), *n its length. */
__attribute__((warn_unused_result))
rpc_code vault_store_list(ledger_tx *tx, vault_row **out, size_t *n, const char *client_id, const char *vault_id);

/* Writes the accounting state, status and paused_reason back. The row
 * must have been loaded with lock in this transaction. The UPDATE is
 * queued (ledger_defer): it reaches the server with the next statement or
 * with COMMIT, and a row count other than 1 aborts the transaction there. */
__attribute__((warn_unused_result))
rpc_code vault_store_save(ledger_tx *tx, const vault_row *v);

/* The position of end_user_id in v, locked FOR UPDATE; created empty when
 * missing and create is true (else *found false). */
__attribute__((warn_unused_result))
rpc_code vault_store_position(ledger_tx *tx, position_row *out, bool *found, const vault_row *v,
                              const char *end_user_id, bool create);

/* A position by its id (locked). */
__attribute__((warn_unused_result))
rpc_code vault_store_position_by_id(ledger_tx *tx, position_row *out, bool *found, const char *position_id);

/* The vault's revenue account (kind "client_revenue" or
 * "platform_revenue"), locked, created when missing. */
__attribute__((warn_unused_result))
rpc_code vault_store_revenue(ledger_tx *tx, position_row *out, const vault_row *v, const char *kind);

/* Writes a position's numbers back (queued, checked, as vault_store_save). */
__attribute__((warn_unused_result))
rpc_code vault_store_position_save(ledger_tx *tx, const position_row *p);

/* Appends an index_history row with v's recorded index, NAV and shares. */
__attribute__((warn_unused_result))
rpc_code vault_store_index_history(ledger_tx *tx, const vault_row *v, bool realized_loss);

/* Splits delta over n balances in proportion (floor), the remainder to
 * the first balances in order (callers sort largest first). For a loss
 * (gain false) no part exceeds its balance: what would take a balance
 * below zero moves on to the next. parts[0..n) get the shares. Pure.
 * Returns ACCT_OK, ACCT_ERR_OVERFLOW, or ACCT_ERR_INCONSISTENT (a loss
 * above the sum, or balances summing to zero with delta > 0). */
__attribute__((warn_unused_result))
acct_err vault_store_split(u256 *parts, const u256 *balances, size_t n, const u256 *delta, bool gain);

/* Maps an accounting error to a status (set on tx) naming what. */
rpc_code vault_store_acct_fail(ledger_tx *tx, acct_err e, const char *what);

/* Formats u256 as decimal into a buffer the caller owns (for SQL params). */
const char *vault_store_dec(char buf[U256_DEC_MAX], const u256 *v);

#endif
