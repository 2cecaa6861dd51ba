/* ops_jobs: the background jobs, run by OperationsService.RunJob and by
 * coffer-api's scheduler (job_sched.h), one code path for both.
 *
 *   withdrawals    the ledger part (below), then, with a chain configured,
 *                  unstaking what free idle cannot cover and ERC-20 payouts
 *                  of burned crypto withdrawals (chain_jobs.c)
 *   staking        idle above jobs.staking_min_idle, split by the vault's
 *                  strategy over the active protocols, supplied
 *   accrual        on-chain position values → yield into the index
 *   deposit_watch  Transfer logs into custodial wallets (deposit_watch.c)
 *   receipts       the transaction lifecycle's driver (chain_tx.h)
 *   outbox         webhook delivery: UNIMPLEMENTED until its issue
 *
 * The ledger part of withdrawals: per vault (one transaction each, under a
 * per-vault advisory lock so that replicas never run one vault twice at
 * once), the queued (BALANCE_RESERVED) withdrawals, oldest first, that
 * free idle assets (idle - withdrawals_payable - supplies in flight) cover
 * are executed: the accounting engine burns ceil(amount * total_shares /
 * nav) shares (at most the reservation; the rest is released), the amount
 * becomes payable, and the withdrawal goes to PROVIDER_PROCESSING with
 * sub-status PAYOUT_PENDING. Rows are taken FOR UPDATE SKIP LOCKED, so a
 * withdrawal a concurrent cancel holds is left for the next run.
 *
 * Jobs are naturally idempotent (a re-run does what is left), so RunJob
 * does not store answers by idempotency-key. */
#ifndef COFFER_OPS_JOBS_H
#define COFFER_OPS_JOBS_H

#include "chain_tx.h"
#include "db_pool.h"
#include "rpc_table.h"
#include "u256.h"
#include "vault_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPS_JOBS_REPORT_MAX 16384u

/* What the jobs share; filled once by serve.c. */
typedef struct ops_jobs_env {
    db_pool *pool;
    unsigned timeout_ms;          /* each database transaction */
    bool has_chain;               /* evm.endpoints and signer.socket configured */
    chain_env chain;              /* the lifecycle (chain.settle = chain_jobs_settle) */
    u256 staking_min_idle;        /* jobs.staking_min_idle, base units */
    u256 accrual_dust;            /* jobs.accrual_dust: a shortfall this small is rounding, not a loss */
    bool unstake_proportional;    /* jobs.unstake_order = proportional (else smallest first) */
    uint64_t watch_max_blocks;    /* jobs.deposit_watch_blocks: blocks scanned per run */
    uint64_t watch_start_back;    /* first run: start this many blocks below the head */
    int64_t treasury_wait_ms;     /* treasury.wait: how long Execute* waits for mining */
} ops_jobs_env;

/* A job's report: counts and one line per item. */
typedef struct {
    char *buf;                    /* OPS_JOBS_REPORT_MAX bytes, NUL-terminated */
    size_t len;
    uint32_t done, failed, skipped;
} ops_jobs_report;

void ops_jobs_line(ops_jobs_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends src's lines and counts to dst. */
void ops_jobs_merge(ops_jobs_report *dst, const ops_jobs_report *src);

/* Runs job name for every vault (vault_id NULL) or one. rep->buf must
 * hold OPS_JOBS_REPORT_MAX bytes. Returns RPC_OK (the report says what
 * happened per item), RPC_INVALID_ARGUMENT (unknown job), RPC_UNIMPLEMENTED
 * (needs what is not configured: msg says), RPC_NOT_FOUND (vault), or a
 * database failure (msg). Records api_metrics_job. */
rpc_code ops_jobs_execute(const ops_jobs_env *env, ops_jobs_report *rep, char *msg, size_t msg_len,
                          const char *name, const char *vault_id);

/* The vault ids in scope (vault_id NULL: all; chain_id 0: any chain),
 * ordered by creation. *ids malloc'd (free it). */
__attribute__((warn_unused_result))
rpc_code ops_jobs_vault_ids(const ops_jobs_env *env, char (**ids)[VAULT_STORE_ID_MAX], size_t *n, char *msg,
                            size_t msg_len, const char *vault_id, uint64_t chain_id);

/* OperationsService.RunJob. */
rpc_code ops_jobs_run(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);

/* ---- accrual into a vault (svc_operations.c; AccrueYield and the job) ---- */

typedef struct {
    char id[VAULT_STORE_ID_MAX];  /* protocol_allocations.id */
    u256 book;                    /* its new book balance (the on-chain value) */
} ops_alloc_book;

typedef struct {
    bool paused;                  /* observed below the book: paused, nothing accrued */
    u256 index_before, gross, loss, client_fee_shares, platform_fee_shares, locked;
} ops_accrual;

/* Accrues observed (idle + positions) into v, locked FOR UPDATE and not
 * paused, in tx: a gain mints fee shares and raises the index (index
 * history, audit vault.accrued); books (may be NULL) gives each allocation
 * its observed value (else the gain is spread pro rata); a loss pauses the
 * vault (audit vault.loss_detected). v is updated and saved. */
__attribute__((warn_unused_result))
rpc_code ops_accrue_vault(ledger_tx *tx, vault_row *v, const u256 *observed, const ops_alloc_book *books,
                          size_t n_books, ops_accrual *out);

#endif
