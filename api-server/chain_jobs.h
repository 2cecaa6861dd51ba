/* chain_jobs: the vault jobs that touch the chain (staking, accrual, the
 * unstaking and payouts of withdrawals, receipts), deposit_watch
 * (deposit_watch.c), and the books' side of final transactions
 * (chain_jobs_settle, the lifecycle's settle hook).
 *
 * Books move only for what landed: a supply moves idle → deployed (and
 * the allocation's book) when it is confirmed at evm.confirmations; an
 * unstake moves deployed → idle when confirmed; a payout completes the
 * withdrawal when confirmed. A supply or unstake that reverts or fails
 * before it was sent changes no book (the amount never left idle, or never
 * left the protocol): its intent is just settled, and the next run of the
 * job decides again. A payout that reverts or fails goes through
 * FailWithdrawal's compensation (the shares come back at today's price).
 * While a vault has supplies or unstakes in flight, staking and accrual
 * skip it (the wallet's balances are moving), and free idle excludes the
 * supplies in flight (their tokens already left the wallet).
 *
 * Replicas: each vault's step runs in a transaction holding
 * pg_try_advisory_xact_lock('coffer.job.<job>:<vault>') (another replica
 * skips the vault and says so), rows are taken FOR UPDATE SKIP LOCKED,
 * and the lifecycle drives each wallet under its own session lock. */
#ifndef COFFER_CHAIN_JOBS_H
#define COFFER_CHAIN_JOBS_H

#include "adapter.h"
#include "chain_tx.h"
#include "ops_jobs.h"

/* The lifecycle's settle hook (chain_env.settle; arg: the ops_jobs_env). */
rpc_code chain_jobs_settle(ledger_tx *tx, void *arg, const chain_tx_row *row, const char *outcome);

void chain_jobs_staking(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id);
void chain_jobs_accrual(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id);
/* After the ledger part: unstaking for queued withdrawals, ERC-20 payouts. */
void chain_jobs_withdrawals(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id);
void chain_jobs_receipts(const ops_jobs_env *env, ops_jobs_report *rep);
/* deposit_watch.c */
void deposit_watch_run(const ops_jobs_env *env, ops_jobs_report *rep);

/* The active protocols of chain_id for token (40 hex digits), ordered by
 * category and name (protocol_id non-NULL: that one, active or not).
 * *out malloc'd (free it). */
__attribute__((warn_unused_result))
rpc_code chain_jobs_protocols(ledger_tx *tx, adapter_protocol **out, size_t *n, uint64_t chain_id,
                              const char *token_hex, const char *protocol_id);

/* The client's custodial wallet (20 bytes); *found false when none. */
__attribute__((warn_unused_result))
rpc_code chain_jobs_wallet(ledger_tx *tx, uint8_t out[20], bool *found, const char *client_id);

#endif
