/* ops_audit: the audit log for operators: listing with filters and
 * paging, and the hash chains recomputed in C (libsodium's SHA-256)
 * exactly as the database's trigger builds them (docs/ledger.md "Audit log
 * hash chains"; migrations 0002 and 0005):
 *
 * - one chain per client (rows with that client_id) and one for the
 *   platform (client_id NULL), rows linked in chain_seq order (1, 2, ...,
 *   with ids increasing along it):
 *     hash = sha256(prev_hash || "v2" "\n" chain_seq "\n" id "\n" at_us "\n"
 *                   actor "\n" client_id "\n" action "\n" entity_type "\n"
 *                   entity_id "\n" details::text)
 *   prev_hash of chain_seq 1 = sha256("coffer.audit_log.v2" "\n" label "\n"
 *   hex(audit_log_boundary.v1_head)), label = the client id or "platform";
 * - the legacy chain: the rows written before migration 0005 (chain_seq
 *   NULL), in id order from 32 zero bytes, with migration 0002's formula
 *     hash = sha256(prev_hash || id "\n" at_us "\n" actor "\n" client_id "\n"
 *                   action "\n" entity_type "\n" entity_id "\n" details::text)
 *   ending exactly where audit_log_boundary says (last id, rows, head).
 *
 * at_us = (extract(epoch FROM at) * 1000000)::bigint, client_id is "" when
 * NULL. */
#ifndef COFFER_OPS_AUDIT_H
#define COFFER_OPS_AUDIT_H

#include "ledger_db.h"
#include "rpc_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPS_AUDIT_LABEL_MAX 40u   /* "legacy", "platform" or a uuid, with NUL */
#define OPS_AUDIT_DETAIL_MAX 240u

/* One chain's finding. */
typedef struct {
    char chain[OPS_AUDIT_LABEL_MAX];
    uint64_t entries;
    uint64_t head_id;                 /* 0 when empty */
    char head_hash[65];               /* hex of the last row's stored hash ("" when empty) */
    uint64_t first_bad_id;            /* 0 when the chain verifies */
    char detail[OPS_AUDIT_DETAIL_MAX];
} ops_audit_chain;

typedef struct {
    bool ok;
    uint64_t checked;
    uint64_t first_bad_id;            /* 0 when ok: the lowest bad id over all chains */
    char detail[OPS_AUDIT_DETAIL_MAX + OPS_AUDIT_LABEL_MAX + 8]; /* "chain <label>: " and its finding */
    char head_hash[65];               /* checkpoint over every chain's head (docs/ledger.md) */
    uint64_t chains;                  /* the legacy chain included */
    uint64_t bad_chains;
} ops_audit_result;

/* Recomputes every chain in tx (platform scope). Returns RPC_OK (the
 * finding is in *out) or a database failure. */
__attribute__((warn_unused_result))
rpc_code ops_audit_verify(ledger_tx *tx, ops_audit_result *out);

/* The same, and each chain's finding: *chains (malloc'd, the caller frees
 * it; NULL when *n is 0) in checkpoint order: legacy, platform, then the
 * clients by id. */
__attribute__((warn_unused_result))
rpc_code ops_audit_verify_chains(ledger_tx *tx, ops_audit_result *out, ops_audit_chain **chains, size_t *n);

/* OperationsService handlers. */
rpc_code ops_audit_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);
rpc_code ops_audit_verify_chain(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out);

#endif
