/* treasury_exec: direct execution from a client's own wallet into DeFi
 * protocols (TreasuryService.ExecuteDeposit / ExecuteWithdrawal), through
 * the transaction lifecycle (chain_tx.h) and the protocol adapters.
 *
 * Risk levels split the amount by category (a table in code, docs/chain.md):
 *
 *   conservative  lending 100 %
 *   moderate      lending 70 %, staking 30 %
 *   aggressive    lending 40 %, lp 30 %, staking 30 %
 *
 * over the active protocols of the token on the chain; a category with no
 * active protocol gives its part to the others in proportion; within a
 * category the part is split equally (remainders to the first). Legs run
 * one after the other (approve exactly the amount, approve(0) first when
 * an old non-zero allowance is short; then supply), each waited for until
 * mined (treasury.wait); a leg that fails does not stop the next ones and
 * the result says which failed (partial_failure).
 *
 * Whose money: the wallet also holds the client's vaults' idle assets.
 * A deposit may only use what is free: the wallet's token balance less the
 * vaults' idle assets (and transfers seen but not credited, unstakes in
 * flight, vault supplies not yet mined are added back), so vault money is
 * never deployed by a treasury call. A withdrawal may take from a protocol
 * at most the client's treasury position there (treasury_positions), never
 * a vault's allocation. Positions move when the transactions are confirmed
 * (receipts job). Intent keys derive from the call's idempotency-key, so a
 * retried call never signs a second transaction. */
#ifndef COFFER_TREASURY_EXEC_H
#define COFFER_TREASURY_EXEC_H

#include "adapter.h"
#include "ops_jobs.h"

#define TREASURY_LEGS_MAX 32

typedef enum {
    TREASURY_CONSERVATIVE = 1,
    TREASURY_MODERATE = 2,
    TREASURY_AGGRESSIVE = 3,
} treasury_risk;

typedef struct {
    char protocol[ADAPTER_NAME_MAX];
    bool success;
    char tx_hash[67];              /* 0x + 64, "" when nothing was sent */
    u256 amount;
    char error[300];
    uint64_t gas_used;
} treasury_leg;

typedef struct {
    treasury_leg legs[TREASURY_LEGS_MAX];
    size_t n;
    u256 total;                    /* base units moved by successful legs */
    uint64_t gas_used;             /* over every mined transaction */
} treasury_result;

/* One requested withdrawal leg. */
typedef struct {
    const char *protocol;          /* supported protocol name */
    u256 amount;
} treasury_take;

/* ExecuteDeposit for client_id. op_key: the call's idempotency-key (may
 * be NULL: a fresh random one). Returns RPC_OK (legs may have failed),
 * or INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION / UNAVAILABLE
 * with msg, nothing sent. */
rpc_code treasury_execute_deposit(const ops_jobs_env *env, treasury_result *out, char *msg, size_t msg_len,
                                  const char *client_id, const char *token_symbol, uint64_t chain_id,
                                  const u256 *amount, treasury_risk risk, const char *op_key);

/* ExecuteWithdrawal for client_id. */
rpc_code treasury_execute_withdrawal(const ops_jobs_env *env, treasury_result *out, char *msg, size_t msg_len,
                                     const char *client_id, const char *token_symbol, uint64_t chain_id,
                                     const treasury_take *takes, size_t n_takes, const char *op_key);

/* The split of amount over protos for risk (pure). parts[i] for protos[i];
 * categories: protos[i].category. Returns 0, or -1 when no protocol can
 * take any part. */
int treasury_split(u256 *parts, const adapter_protocol *protos, size_t n, const u256 *amount, treasury_risk risk);

#endif
