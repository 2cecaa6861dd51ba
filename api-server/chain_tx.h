/* chain_tx: the transaction lifecycle (DESIGN.md §4, docs/chain.md
 * "Transaction lifecycle"). One chain_transactions row per intent:
 *
 *   create    chain_tx_create, inside the caller's ledger transaction (so
 *             the decision and the intent commit together): status
 *             created, no nonce; intent_key is unique (re-creating returns
 *             the same row).
 *   prepare   under the wallet's drive lock and the wallet_nonces row lock
 *             (initialised from eth_getTransactionCount(pending) the first
 *             time): nonce, gas limit (eth_estimateGas + evm.gas_margin_pct
 *             unless the intent fixed it) and EIP-1559 fees are written
 *             together and committed. A wallet prepares its next intent
 *             only when none of its rows is prepared-but-unsigned or
 *             signed-but-unsent, in seq order.
 *   sign      SignTransaction with the client's sealed key; raw_tx and
 *             tx_hash are stored (status signed) and committed BEFORE the
 *             broadcast. A crash before the store signs the same stored
 *             payload again: the signer's idempotent re-sign gives the same
 *             signature, so no second transaction ever exists for an intent.
 *   broadcast eth_sendRawTransaction of the stored bytes → submitted.
 *             Re-sent whenever the row is looked at and not mined (the
 *             node answers "already known").
 *   follow    receipts of every row sharing the nonce; mined with
 *             evm.confirmations blocks on top → confirmed | reverted, the
 *             others replaced, and the books settled in the same database
 *             transaction (settled_at, exactly once per nonce).
 *   replace   not mined evm.replace_after after its first broadcast: the
 *             same transaction with both fees raised by evm.replace_bump_pct
 *             (deterministic, so a crash between signing and storing re-signs
 *             identically) is signed (the signer's replacement rule), stored
 *             as a new row (intent_key "<key>#r<n>") and the old row becomes
 *             replaced with replaced_by, in one transaction, then broadcast.
 *   failed    only before anything was signed (estimate reverted, the
 *             signer's policy refused): the nonce goes back, nothing was
 *             sent, the books are settled as for a revert.
 *
 * Settlement (chain_tx_settle_fn) is the books' side: the vault jobs and
 * the treasury engine register what a confirmed or failed intent means
 * (ops_jobs.c). The driver runs per wallet under a session advisory lock,
 * so several replicas never drive one wallet at once.
 *
 * Every function is thread-safe; pointers are non-NULL unless said
 * otherwise. */
#ifndef COFFER_CHAIN_TX_H
#define COFFER_CHAIN_TX_H

#include "db_pool.h"
#include "evm_rpc.h"
#include "ledger_db.h"
#include "signer_client.h"
#include "u256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAIN_TX_ID_MAX 40u
#define CHAIN_TX_DATA_MAX 2048u
#define CHAIN_TX_RAW_MAX 4096u
#define CHAIN_TX_KEY_MAX 256u

struct chain_tx_row;

/* The books' side of a final outcome, run inside the transaction that
 * records it (platform scope). outcome: "confirmed", "reverted" or
 * "failed". Returns RPC_OK or a failure (the whole transaction rolls back
 * and is tried again on the next pass). */
typedef rpc_code (*chain_tx_settle_fn)(ledger_tx *tx, void *arg, const struct chain_tx_row *row,
                                       const char *outcome);

/* What the lifecycle needs; filled once at start-up (serve.c). */
typedef struct {
    db_pool *pool;
    evm_rpc *evm;
    signer_client *signer;
    uint64_t chain_id;
    evm_fee_policy fees;
    unsigned gas_margin_pct;       /* evm.gas_margin_pct, e.g. 25 */
    uint64_t confirmations;        /* evm.confirmations (0 counts as 1: mined) */
    int64_t replace_after_ms;      /* evm.replace_after */
    unsigned bump_pct;             /* evm.replace_bump_pct, >= 10 */
    unsigned db_timeout_ms;        /* each database transaction */
    chain_tx_settle_fn settle;     /* may be NULL (nothing to settle) */
    void *settle_arg;
} chain_env;

/* An intent, as the caller decides it. */
typedef struct {
    const char *client_id;         /* the wallet's owner */
    uint64_t chain_id;
    const char *intent_key;        /* unique; 1..200 characters */
    const char *kind;              /* approve, supply, withdraw, transfer, ... */
    const char *protocol_id;       /* may be NULL */
    const char *vault_id;          /* may be NULL */
    const char *withdrawal_id;     /* may be NULL */
    uint8_t to[20];
    u256 value;                    /* wei */
    const uint8_t *data;           /* calldata, may be NULL when data_len is 0 */
    size_t data_len;               /* <= CHAIN_TX_DATA_MAX */
    u256 amount;                   /* token base units the transaction moves */
    uint64_t gas_limit;            /* 0: estimated when prepared */
} chain_tx_intent;

/* A chain_transactions row as the lifecycle reads it. */
typedef struct chain_tx_row {
    char id[CHAIN_TX_ID_MAX];
    char client_id[CHAIN_TX_ID_MAX];
    char protocol_id[CHAIN_TX_ID_MAX];   /* "" when none */
    char vault_id[CHAIN_TX_ID_MAX];
    char withdrawal_id[CHAIN_TX_ID_MAX];
    char intent_key[CHAIN_TX_KEY_MAX];
    char kind[66];
    char status[16];
    char error[256];
    char replaced_by[CHAIN_TX_ID_MAX];   /* "" when none */
    uint64_t chain_id;
    uint8_t wallet[20];
    bool has_nonce;
    uint64_t nonce;
    int64_t seq;
    uint8_t to[20];
    u256 value;
    uint8_t data[CHAIN_TX_DATA_MAX];
    size_t data_len;
    bool has_gas;                  /* gas_limit and both fees set (prepared) */
    uint64_t gas_limit;
    u256 max_fee, max_tip;
    uint8_t raw[CHAIN_TX_RAW_MAX];
    size_t raw_len;                /* 0: not signed */
    uint8_t hash[32];
    u256 amount;
    bool has_block;
    uint64_t block_number;
    uint64_t gas_used;
    int64_t submitted_age_ms;      /* since submitted_at; -1 never submitted */
    bool settled;
} chain_tx_row;

/* Counts of one driver pass. */
typedef struct {
    unsigned prepared, signed_, broadcast, confirmed, reverted, failed, replaced, waiting, errors;
} chain_tx_stats;

/* Records an intent in tx (any scope that may write the client's rows;
 * platform scope for jobs). The wallet is the client's custodial wallet.
 * id: output. existed: output, true when intent_key was already there
 * (nothing written; id is that row). Returns RPC_OK or the failure. */
__attribute__((warn_unused_result))
rpc_code chain_tx_create(ledger_tx *tx, char id[CHAIN_TX_ID_MAX], bool *existed, const chain_tx_intent *in);

/* One pass over the open rows of one wallet (wallet_hex: 40 lowercase hex
 * digits) or, wallet_hex NULL, of every wallet on env->chain_id: prepare,
 * sign, broadcast, follow, replace, settle. stats may be NULL. Returns 0,
 * or -1 when the database could not be read at all (msg says why). */
int chain_tx_drive(const chain_env *env, chain_tx_stats *stats, char *msg, size_t msg_len, const char *wallet_hex);

/* Drives id's wallet until the row (or its replacement) is mined
 * (until_final false) or final, or timeout_ms passes. out: the row as it
 * ended (the replacement, when replaced). Returns 0 when the wanted state
 * was reached, 1 on timeout, -1 on error (msg). */
int chain_tx_wait(const chain_env *env, chain_tx_row *out, char *msg, size_t msg_len, const char *id,
                  bool until_final, int64_t timeout_ms);

/* Loads row id (platform scope) in tx. *found false when missing. */
__attribute__((warn_unused_result))
rpc_code chain_tx_load(ledger_tx *tx, chain_tx_row *out, bool *found, const char *id, bool lock);

/* Sum of amount over the vault's unsettled intents of kind (created,
 * signed, submitted or replaced, settled_at NULL). */
__attribute__((warn_unused_result))
rpc_code chain_tx_pending_amount(ledger_tx *tx, u256 *out, const char *vault_id, const char *kind);

/* The fee bump: ceil(v * (100 + pct) / 100), and at least v + 1. */
void chain_tx_bump(u256 *out, const u256 *v, unsigned pct);

#endif
