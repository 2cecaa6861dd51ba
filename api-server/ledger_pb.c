#include "ledger_pb.h"

#include "apy.h"

#include <string.h>

rpc_code ledger_pb_oom(ledger_tx *tx)
{
    return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

Google__Protobuf__Timestamp *ledger_pb_timestamp(rpc_ctx *ctx, int64_t us)
{
    Google__Protobuf__Timestamp *t = rpc_ctx_alloc(ctx, sizeof *t);
    if (!t)
        return NULL;
    google__protobuf__timestamp__init(t);
    int64_t s = us / 1000000, r = us % 1000000;
    if (r < 0) {
        r += 1000000;
        s -= 1;
    }
    t->seconds = s;
    t->nanos = (int32_t)(r * 1000);
    return t;
}

char *ledger_pb_u256(rpc_ctx *ctx, const u256 *v)
{
    char buf[U256_DEC_MAX];
    u256_to_dec(buf, v);
    return rpc_ctx_strdup(ctx, buf);
}

static Coffer__V1__StrategyCategory ledger_pb_category(const char *s)
{
    if (strcmp(s, "lending") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LENDING;
    if (strcmp(s, "lp") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LP;
    if (strcmp(s, "staking") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_STAKING;
    return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_UNSPECIFIED;
}

/* APY over window seconds from the newest index_history row at or before
 * now - window; 0 without one. */
static rpc_code ledger_pb_apy(ledger_tx *tx, double *out, const vault_row *v, const u256 *index_now, int64_t window)
{
    char w[24];
    snprintf(w, sizeof w, "%lld", (long long)window);
    const char *p[2] = {v->id, w};
    rpc_code c;
    *out = 0;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT index_value, floor(extract(epoch FROM now() - at))::bigint FROM index_history "
                                 "WHERE vault_id = $1::uuid AND at <= now() - make_interval(secs => $2::bigint) "
                                 "ORDER BY at DESC, id DESC LIMIT 1",
                                 2, p);
    if (!res)
        return c;
    c = RPC_OK;
    if (PQntuples(res) == 1) {
        u256 then;
        int64_t elapsed = 0;
        if ((c = ledger_get_u256(tx, &then, res, 0, 0, false)) == RPC_OK &&
            (c = ledger_get_i64(tx, &elapsed, res, 0, 1)) == RPC_OK)
            *out = apy_annualized(index_now, &then, elapsed);
    }
    PQclear(res);
    return c;
}

rpc_code ledger_pb_vault(ledger_tx *tx, Coffer__V1__Vault **out, const vault_row *v)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__Vault *m = rpc_ctx_alloc(ctx, sizeof *m);
    if (!m)
        return ledger_pb_oom(tx);
    coffer__v1__vault__init(m);
    u256 index = v->v.current_index, locked = U256_ZERO, total;
    if (acct_index(&index, &v->v, &v->params, v->now) != ACCT_OK)
        index = v->v.current_index;
    if (acct_locked_now(&locked, &v->v, &v->params, v->now) != ACCT_OK)
        locked = v->v.locked_profit;
    if (u256_add(&total, &v->v.idle_assets, &v->v.deployed_assets) != 0)
        total = U256_MAX;
    m->vault_id = rpc_ctx_strdup(ctx, v->id);
    m->client_id = rpc_ctx_strdup(ctx, v->client_id);
    m->chain_id = v->chain_id;
    m->token_address = rpc_ctx_strdup(ctx, v->token_address);
    m->token_symbol = rpc_ctx_strdup(ctx, v->token_symbol);
    m->token_decimals = v->params.decimals;
    m->current_index = ledger_pb_u256(ctx, &index);
    m->total_shares = ledger_pb_u256(ctx, &v->v.total_shares);
    m->idle_assets = ledger_pb_u256(ctx, &v->v.idle_assets);
    m->deployed_assets = ledger_pb_u256(ctx, &v->v.deployed_assets);
    m->withdrawals_payable = ledger_pb_u256(ctx, &v->v.withdrawals_payable);
    m->total_assets = ledger_pb_u256(ctx, &total);
    m->locked_profit = ledger_pb_u256(ctx, &locked);
    m->profit_unlock_seconds = v->profit_unlock_s;
    m->status = v->paused ? COFFER__V1__VAULT_STATUS__VAULT_STATUS_PAUSED : COFFER__V1__VAULT_STATUS__VAULT_STATUS_ACTIVE;
    m->paused_reason = rpc_ctx_strdup(ctx, v->paused_reason);
    m->created_at = ledger_pb_timestamp(ctx, v->created_us);
    if (!m->vault_id || !m->client_id || !m->token_address || !m->token_symbol || !m->current_index ||
        !m->total_shares || !m->idle_assets || !m->deployed_assets || !m->withdrawals_payable || !m->total_assets ||
        !m->locked_profit || !m->paused_reason || !m->created_at)
        return ledger_pb_oom(tx);
    rpc_code c;
    if ((c = ledger_pb_apy(tx, &m->apy_7d, v, &index, APY_WINDOW_7D)) != RPC_OK ||
        (c = ledger_pb_apy(tx, &m->apy_30d, v, &index, APY_WINDOW_30D)) != RPC_OK)
        return c;

    const char *p[1] = {v->id};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT category, target_bps FROM vault_strategies WHERE vault_id = $1::uuid "
                                 "AND target_bps > 0 ORDER BY category",
                                 1, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    m->strategies = rpc_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *m->strategies);
    if (!m->strategies) {
        PQclear(res);
        return ledger_pb_oom(tx);
    }
    for (int r = 0; r < n; r++) {
        Coffer__V1__StrategyTarget *s = rpc_ctx_alloc(ctx, sizeof *s);
        int64_t bps = 0;
        if (!s) {
            PQclear(res);
            return ledger_pb_oom(tx);
        }
        coffer__v1__strategy_target__init(s);
        s->category = ledger_pb_category(PQgetvalue(res, r, 0));
        if ((c = ledger_get_i64(tx, &bps, res, r, 1)) != RPC_OK) {
            PQclear(res);
            return c;
        }
        s->target_bps = (uint32_t)bps;
        m->strategies[m->n_strategies++] = s;
    }
    PQclear(res);
    *out = m;
    return RPC_OK;
}
