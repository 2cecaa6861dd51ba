#include "ops_invariants.h"

#include "coffer/v1/operations.pb-c.h"
#include "ledger_db.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"
#include "ops_audit.h"
#include "vault_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_INV_MAX 500u /* violations reported, at most */

typedef struct {
    const char *vault_id; /* NULL: every vault */
    Coffer__V1__CheckInvariantsResponse *resp;
} ops_inv_arg;

static rpc_code ops_inv_add(ledger_tx *tx, ops_inv_arg *a, const char *name, const char *vault_id, const char *detail)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    if (a->resp->n_violations >= OPS_INV_MAX)
        return RPC_OK;
    Coffer__V1__InvariantViolation *v = rpc_ctx_alloc(ctx, sizeof *v);
    if (!v)
        return ledger_pb_oom(tx);
    coffer__v1__invariant_violation__init(v);
    v->invariant = rpc_ctx_strdup(ctx, name);
    v->vault_id = rpc_ctx_strdup(ctx, vault_id ? vault_id : "");
    v->detail = rpc_ctx_strdup(ctx, detail);
    if (!v->invariant || !v->vault_id || !v->detail)
        return ledger_pb_oom(tx);
    a->resp->violations[a->resp->n_violations++] = v;
    log_warn("invariant.violated", "invariant=%s vault=%s", name, vault_id ? vault_id : "");
    return RPC_OK;
}

/* Runs a query whose rows are violations: column 0 the vault id, column 1
 * the detail text. */
static rpc_code ops_inv_query(ledger_tx *tx, ops_inv_arg *a, const char *name, const char *sql)
{
    const char *p[1] = {a->vault_id};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c, sql, 1, p);
    if (!res)
        return c;
    for (int r = 0; r < PQntuples(res) && c == RPC_OK; r++)
        c = ops_inv_add(tx, a, name, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
    PQclear(res);
    return c;
}

static const struct {
    const char *name;
    const char *sql;
} ops_inv_queries[] = {
    {"shares_sum",
     "SELECT v.id, format('total_shares %s, positions hold %s', v.total_shares, coalesce(sum(p.shares), 0)) "
     "FROM client_vaults v LEFT JOIN end_user_vaults p ON p.vault_id = v.id "
     "WHERE $1::uuid IS NULL OR v.id = $1::uuid GROUP BY v.id, v.total_shares "
     "HAVING v.total_shares <> coalesce(sum(p.shares), 0)"},
    {"deployed_sum",
     "SELECT v.id, format('deployed_assets %s, allocations book %s', v.deployed_assets, coalesce(sum(a.book_balance), 0)) "
     "FROM client_vaults v LEFT JOIN protocol_allocations a ON a.vault_id = v.id "
     "WHERE $1::uuid IS NULL OR v.id = $1::uuid GROUP BY v.id, v.deployed_assets "
     "HAVING v.deployed_assets <> coalesce(sum(a.book_balance), 0)"},
    {"index_monotonic",
     "SELECT vault_id, format('index_history row %s: index %s below the row before (%s) without a realized loss', "
     "id, index_value, prev) FROM (SELECT vault_id, id, index_value, realized_loss, "
     "lag(index_value) OVER (PARTITION BY vault_id ORDER BY id) AS prev FROM index_history "
     "WHERE $1::uuid IS NULL OR vault_id = $1::uuid) h "
     "WHERE prev IS NOT NULL AND index_value < prev AND NOT realized_loss"},
    {"index_monotonic",
     "SELECT v.id, format('current_index %s below the last index_history row (%s)', v.current_index, h.index_value) "
     "FROM client_vaults v JOIN LATERAL (SELECT index_value FROM index_history x WHERE x.vault_id = v.id "
     "ORDER BY x.id DESC LIMIT 1) h ON true WHERE ($1::uuid IS NULL OR v.id = $1::uuid) "
     "AND v.current_index < h.index_value"},
    {"reserved_le_shares",
     "SELECT vault_id, format('position %s: reserved %s > shares %s', id, reserved_shares, shares) "
     "FROM end_user_vaults WHERE ($1::uuid IS NULL OR vault_id = $1::uuid) AND reserved_shares > shares"},
    {"reservations_sum",
     "SELECT p.vault_id, format('position %s: reserved_shares %s, held reservations %s', p.id, p.reserved_shares, "
     "coalesce(sum(r.shares) FILTER (WHERE r.status = 'held'), 0)) "
     "FROM end_user_vaults p LEFT JOIN reservations r ON r.end_user_vault_id = p.id "
     "WHERE $1::uuid IS NULL OR p.vault_id = $1::uuid GROUP BY p.id, p.vault_id, p.reserved_shares "
     "HAVING p.reserved_shares <> coalesce(sum(r.shares) FILTER (WHERE r.status = 'held'), 0)"},
    {"reservations_sum",
     "SELECT w.vault_id, format('withdrawal %s is %s with %s held reservations', w.order_id, w.status, count(r.id)) "
     "FROM withdrawals w LEFT JOIN reservations r ON r.withdrawal_id = w.id AND r.status = 'held' "
     "WHERE $1::uuid IS NULL OR w.vault_id = $1::uuid GROUP BY w.id, w.vault_id, w.order_id, w.status "
     "HAVING count(r.id) <> CASE WHEN w.status = 'BALANCE_RESERVED' THEN 1 ELSE 0 END"},
    {"deposit_credited_once",
     "SELECT min(vault_id::text), format('transfer 0x%s log %s on chain %s credits %s deposits', "
     "encode(tx_hash, 'hex'), log_index, chain_id, count(*)) FROM deposits "
     "WHERE tx_hash IS NOT NULL AND ($1::uuid IS NULL OR vault_id = $1::uuid) "
     "GROUP BY chain_id, tx_hash, log_index HAVING count(*) > 1"},
    {"deposit_credited_once",
     "SELECT d.vault_id, format('deposit %s is %s with %s deposit.completed audit rows', d.order_id, d.status, "
     "count(a.id)) FROM deposits d LEFT JOIN audit_log a ON a.entity_type = 'deposit' AND a.entity_id = d.order_id "
     "AND a.action = 'deposit.completed' WHERE $1::uuid IS NULL OR d.vault_id = $1::uuid "
     "GROUP BY d.id, d.vault_id, d.order_id, d.status "
     "HAVING count(a.id) <> CASE WHEN d.status = 'COMPLETED' THEN 1 ELSE 0 END"},
    {"deposit_credited_once",
     "SELECT p.vault_id, format('position %s: total_deposited %s, completed deposits %s', p.id, p.total_deposited, "
     "coalesce(d.s, 0)) FROM end_user_vaults p LEFT JOIN (SELECT vault_id, end_user_id, sum(credited_amount) AS s "
     "FROM deposits WHERE status = 'COMPLETED' GROUP BY vault_id, end_user_id) d "
     "ON d.vault_id = p.vault_id AND d.end_user_id = p.end_user_id "
     "WHERE p.kind = 'user' AND ($1::uuid IS NULL OR p.vault_id = $1::uuid) "
     "AND p.total_deposited <> coalesce(d.s, 0)"},
    /* Invariant 6: per (wallet, chain) the nonces signed are contiguous
     * (every signed row holds one; a replacement repeats its nonce), and
     * the next nonce is past them. */
    {"nonces_contiguous",
     "SELECT '', format('wallet 0x%s on chain %s: signed nonces %s..%s hold only %s distinct values', "
     "encode(wallet_address, 'hex'), chain_id, min(nonce), max(nonce), count(DISTINCT nonce)) "
     "FROM chain_transactions WHERE nonce IS NOT NULL AND raw_tx IS NOT NULL AND ($1::uuid IS NULL OR client_id = "
     "(SELECT client_id FROM client_vaults WHERE id = $1::uuid)) GROUP BY chain_id, wallet_address "
     "HAVING max(nonce) - min(nonce) + 1 <> count(DISTINCT nonce)"},
    {"nonces_contiguous",
     "SELECT '', format('wallet 0x%s on chain %s: next_nonce %s, but nonce %s was signed', "
     "encode(n.wallet_address, 'hex'), n.chain_id, n.next_nonce, t.m) FROM wallet_nonces n JOIN LATERAL "
     "(SELECT max(nonce) AS m FROM chain_transactions c WHERE c.chain_id = n.chain_id AND c.wallet_address = "
     "n.wallet_address AND c.nonce IS NOT NULL) t ON true WHERE t.m >= n.next_nonce AND ($1::uuid IS NULL OR "
     "n.client_id = (SELECT client_id FROM client_vaults WHERE id = $1::uuid))"},
    {"payable_sum",
     "SELECT v.id, format('withdrawals_payable %s, burned unpaid withdrawals %s', v.withdrawals_payable, "
     "coalesce(sum(w.amount), 0)) FROM client_vaults v LEFT JOIN withdrawals w ON w.vault_id = v.id "
     "AND w.status = 'PROVIDER_PROCESSING' WHERE $1::uuid IS NULL OR v.id = $1::uuid "
     "GROUP BY v.id, v.withdrawals_payable HAVING v.withdrawals_payable <> coalesce(sum(w.amount), 0)"},
};

static rpc_code ops_inv_body(ledger_tx *tx, void *argp)
{
    ops_inv_arg *a = argp;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    rpc_code c;
    a->resp->n_violations = 0;
    a->resp->violations = rpc_ctx_alloc(ctx, OPS_INV_MAX * sizeof *a->resp->violations);
    if (!a->resp->violations)
        return ledger_pb_oom(tx);
    vault_row *vaults = NULL;
    size_t n = 0;
    if ((c = vault_store_list(tx, &vaults, &n, NULL, a->vault_id)) != RPC_OK)
        return c;
    if (a->vault_id && n == 0) {
        free(vaults);
        return ledger_fail(tx, RPC_NOT_FOUND, "vault %s not found", a->vault_id);
    }
    a->resp->vaults_checked = (uint32_t)n;
    for (size_t i = 0; i < n && c == RPC_OK; i++) {
        u256 nav;
        acct_err e = acct_nav(&nav, &vaults[i].v, &vaults[i].params, vaults[i].now);
        if (e != ACCT_OK)
            c = ops_inv_add(tx, a, "books", vaults[i].id, acct_strerror(e));
    }
    free(vaults);
    for (size_t i = 0; c == RPC_OK && i < sizeof ops_inv_queries / sizeof ops_inv_queries[0]; i++)
        c = ops_inv_query(tx, a, ops_inv_queries[i].name, ops_inv_queries[i].sql);
    if (c != RPC_OK)
        return c;
    ops_audit_result ar;
    if ((c = ops_audit_verify(tx, &ar)) != RPC_OK)
        return c;
    if (!ar.ok)
        c = ops_inv_add(tx, a, "audit_chain", NULL, ar.detail);
    return c;
}

rpc_code ops_invariants_check(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CheckInvariantsRequest *req = (const Coffer__V1__CheckInvariantsRequest *)in;
    if (req->vault_id[0] && !ledger_fmt_is_uuid(req->vault_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "vault_id must be a uuid");
    ops_inv_arg a = {req->vault_id[0] ? req->vault_id : NULL, (Coffer__V1__CheckInvariantsResponse *)out};
    return ledger_run(ctx, &(ledger_run_options){.body = ops_inv_body, .arg = &a});
}
