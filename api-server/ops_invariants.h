/* ops_invariants: DESIGN.md §2's invariants checked from the database
 * (OperationsService.CheckInvariants), each finding named:
 *   shares_sum             1: Σ positions' shares (revenue accounts
 *                             included) = the vault's total_shares
 *   deployed_sum           2: deployed_assets = Σ protocol_allocations
 *   index_monotonic        3: index_history never falls except on rows
 *                             marked realized_loss; the vault's index is
 *                             not below its last history row
 *   reserved_le_shares     4: reserved <= shares per position
 *   reservations_sum       4: a position's reserved_shares = Σ its held
 *                             reservations; a queued withdrawal has exactly
 *                             one held reservation
 *   deposit_credited_once  5: one Transfer log per deposit; each completed
 *                             deposit has one deposit.completed audit row;
 *                             a position's total_deposited = Σ its
 *                             completed deposits
 *   payable_sum            withdrawals_payable = Σ burned, unpaid
 *                          withdrawals (PROVIDER_PROCESSING)
 *   books                  the engine accepts the vault's numbers
 *   audit_chain            7: the audit log's hash chain verifies
 * Invariant 6 (nonces) arrives with the chain issue. */
#ifndef COFFER_OPS_INVARIANTS_H
#define COFFER_OPS_INVARIANTS_H

#include "rpc_table.h"

rpc_code ops_invariants_check(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);

#endif
