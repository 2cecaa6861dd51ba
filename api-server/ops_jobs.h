/* ops_jobs: OperationsService.RunJob. "withdrawals" runs the ledger part
 * of the withdrawal batch now: per vault (one transaction each, under a
 * per-vault advisory lock so that replicas never run one vault twice at
 * once), the queued (BALANCE_RESERVED) withdrawals, oldest first, that
 * free idle assets (idle - withdrawals_payable) cover are executed: the
 * accounting engine burns ceil(amount * total_shares / nav) shares (at
 * most the reservation; the rest is released), the amount becomes
 * payable, and the withdrawal goes to PROVIDER_PROCESSING with sub-status
 * PAYOUT_PENDING. Rows are taken FOR UPDATE SKIP LOCKED, so a withdrawal a
 * concurrent cancel holds is left for the next run. The rest stay queued
 * and the report says why (unstaking arrives with the chain issue).
 *
 * The other jobs (staking, accrual, deposit_watch, receipts, outbox) need
 * the chain layer or webhook delivery: UNIMPLEMENTED until then. The job
 * is naturally idempotent (a re-run does what is left), so it does not
 * store answers by idempotency-key. */
#ifndef COFFER_OPS_JOBS_H
#define COFFER_OPS_JOBS_H

#include "rpc_table.h"

rpc_code ops_jobs_run(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);

#endif
