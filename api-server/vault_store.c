#include "vault_store.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns read into a vault_row, in vault_store_parse's order. */
#define VAULT_STORE_COLUMNS                                                                                 \
    "v.id, v.client_id, v.chain_id, '0x' || encode(v.token_address, 'hex'), v.token_symbol, "               \
    "v.token_decimals, v.total_shares, v.current_index, v.idle_assets, v.deployed_assets, "                 \
    "v.withdrawals_payable, v.locked_profit, floor(extract(epoch FROM v.locked_at))::bigint, "              \
    "v.profit_unlock_s, v.surplus, v.min_first_deposit, v.status, coalesce(v.paused_reason, ''), "          \
    "c.platform_fee_bps, c.end_user_yield_bps, floor(extract(epoch FROM now()))::bigint, "                  \
    "(extract(epoch FROM v.created_at) * 1000000)::bigint "                                                 \
    "FROM client_vaults v JOIN client_organizations c ON c.id = v.client_id "

#define POSITION_COLUMNS                                                                                    \
    "id, vault_id, client_id, coalesce(end_user_id::text, ''), kind, shares, reserved_shares, "             \
    "weighted_entry_index, total_deposited, total_withdrawn FROM end_user_vaults "

const char *vault_store_dec(char buf[U256_DEC_MAX], const u256 *v)
{
    u256_to_dec(buf, v);
    return buf;
}

rpc_code vault_store_acct_fail(ledger_tx *tx, acct_err e, const char *what)
{
    switch (e) {
    case ACCT_OK:
        return RPC_OK;
    case ACCT_ERR_ZERO_AMOUNT:
    case ACCT_ERR_BAD_PARAM:
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "%s: %s", what, acct_strerror(e));
    case ACCT_ERR_OVERFLOW:
        return ledger_fail(tx, RPC_OUT_OF_RANGE, "%s: %s", what, acct_strerror(e));
    case ACCT_ERR_INCONSISTENT:
        log_error("ledger.books_inconsistent", "what=%s", what);
        return ledger_fail(tx, RPC_INTERNAL, "%s: %s; nothing was changed (run CheckInvariants)", what,
                           acct_strerror(e));
    default:
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "%s: %s", what, acct_strerror(e));
    }
}

static void vault_store_copy(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

static rpc_code vault_store_parse(ledger_tx *tx, vault_row *o, const PGresult *res, int r)
{
    rpc_code c;
    int64_t i;
    memset(o, 0, sizeof *o);
    vault_store_copy(o->id, sizeof o->id, res, r, 0);
    vault_store_copy(o->client_id, sizeof o->client_id, res, r, 1);
    if ((c = ledger_get_i64(tx, &i, res, r, 2)) != RPC_OK)
        return c;
    o->chain_id = (uint64_t)i;
    vault_store_copy(o->token_address, sizeof o->token_address, res, r, 3);
    vault_store_copy(o->token_symbol, sizeof o->token_symbol, res, r, 4);
    int64_t decimals = 0, unlock = 0, locked_at = 0;
    if ((c = ledger_get_i64(tx, &decimals, res, r, 5)) != RPC_OK)
        return c;
    if ((c = ledger_get_u256(tx, &o->v.total_shares, res, r, 6, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.current_index, res, r, 7, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.idle_assets, res, r, 8, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.deployed_assets, res, r, 9, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.withdrawals_payable, res, r, 10, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.locked_profit, res, r, 11, false)) != RPC_OK ||
        (c = ledger_get_i64(tx, &locked_at, res, r, 12)) != RPC_OK ||
        (c = ledger_get_i64(tx, &unlock, res, r, 13)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->v.surplus, res, r, 14, false)) != RPC_OK)
        return c;
    u256 min_first;
    if ((c = ledger_get_u256(tx, &min_first, res, r, 15, false)) != RPC_OK)
        return c;
    o->v.locked_at = locked_at;
    o->profit_unlock_s = unlock < 0 ? 0 : (uint32_t)unlock;
    if (decimals < 0 || acct_params_init(&o->params, (unsigned)decimals, &min_first, o->profit_unlock_s) != ACCT_OK) {
        log_error("ledger.bad_vault", "vault=%s problem=params", o->id);
        return ledger_fail(tx, RPC_INTERNAL, "internal error: vault %s has invalid parameters", o->id);
    }
    o->paused = strcmp(PQgetvalue(res, r, 16), "paused") == 0;
    vault_store_copy(o->paused_reason, sizeof o->paused_reason, res, r, 17);
    int64_t pf = 0, eu = 0;
    if ((c = ledger_get_i64(tx, &pf, res, r, 18)) != RPC_OK || (c = ledger_get_i64(tx, &eu, res, r, 19)) != RPC_OK ||
        (c = ledger_get_i64(tx, &o->now, res, r, 20)) != RPC_OK ||
        (c = ledger_get_i64(tx, &o->created_us, res, r, 21)) != RPC_OK)
        return c;
    o->fees.platform_fee_bps = (uint32_t)pf;
    o->fees.end_user_yield_bps = (uint32_t)eu;
    return RPC_OK;
}

static rpc_code vault_store_one(ledger_tx *tx, vault_row *out, bool *found, const char *sql, int n,
                                const char *const *p)
{
    rpc_code c;
    *found = false;
    PGresult *res = ledger_query(tx, &c, sql, n, p);
    if (!res)
        return c;
    c = RPC_OK;
    if (PQntuples(res) == 1) {
        c = vault_store_parse(tx, out, res, 0);
        *found = c == RPC_OK;
    }
    PQclear(res);
    return c;
}

rpc_code vault_store_get(ledger_tx *tx, vault_row *out, bool *found, const char *vault_id, bool lock)
{
    const char *p[1] = {vault_id};
    return vault_store_one(tx, out, found,
                           lock ? "SELECT " VAULT_STORE_COLUMNS "WHERE v.id = $1::uuid FOR UPDATE OF v"
                                : "SELECT " VAULT_STORE_COLUMNS "WHERE v.id = $1::uuid",
                           1, p);
}

rpc_code vault_store_get_by_token(ledger_tx *tx, vault_row *out, bool *found, const char *client_id,
                                  uint64_t chain_id, const char *token_symbol, bool lock)
{
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)chain_id);
    const char *p[3] = {client_id, chain, token_symbol};
    return vault_store_one(tx, out, found,
                           lock ? "SELECT " VAULT_STORE_COLUMNS
                                  "WHERE v.client_id = $1::uuid AND v.chain_id = $2::bigint AND v.token_symbol = $3 "
                                  "FOR UPDATE OF v"
                                : "SELECT " VAULT_STORE_COLUMNS
                                  "WHERE v.client_id = $1::uuid AND v.chain_id = $2::bigint AND v.token_symbol = $3",
                           3, p);
}

rpc_code vault_store_list(ledger_tx *tx, vault_row **out, size_t *n, const char *client_id, const char *vault_id)
{
    rpc_code c;
    *out = NULL;
    *n = 0;
    const char *p[2] = {client_id && *client_id ? client_id : NULL, vault_id && *vault_id ? vault_id : NULL};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT " VAULT_STORE_COLUMNS
                                 "WHERE ($1::uuid IS NULL OR v.client_id = $1::uuid) "
                                 "AND ($2::uuid IS NULL OR v.id = $2::uuid) ORDER BY v.created_at, v.id",
                                 2, p);
    if (!res)
        return c;
    int rows = PQntuples(res);
    vault_row *all = rows > 0 ? calloc((size_t)rows, sizeof *all) : NULL;
    if (rows > 0 && !all) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int r = 0; r < rows; r++) {
        if ((c = vault_store_parse(tx, &all[r], res, r)) != RPC_OK) {
            free(all);
            PQclear(res);
            return c;
        }
    }
    PQclear(res);
    *out = all;
    *n = (size_t)rows;
    return RPC_OK;
}

rpc_code vault_store_save(ledger_tx *tx, const vault_row *v)
{
    char ts[U256_DEC_MAX], ix[U256_DEC_MAX], idle[U256_DEC_MAX], dep[U256_DEC_MAX], pay[U256_DEC_MAX],
        lp[U256_DEC_MAX], sur[U256_DEC_MAX], at[24];
    snprintf(at, sizeof at, "%lld", (long long)v->v.locked_at);
    const char *p[11] = {
        v->id,
        vault_store_dec(ts, &v->v.total_shares),
        vault_store_dec(ix, &v->v.current_index),
        vault_store_dec(idle, &v->v.idle_assets),
        vault_store_dec(dep, &v->v.deployed_assets),
        vault_store_dec(pay, &v->v.withdrawals_payable),
        vault_store_dec(lp, &v->v.locked_profit),
        at,
        vault_store_dec(sur, &v->v.surplus),
        v->paused ? "paused" : "active",
        v->paused ? v->paused_reason : NULL,
    };
    /* Queued (ledger_defer): it goes with the next statement or COMMIT;
     * the row count is checked in the transaction (a vault that vanished
     * aborts it: XX001, INTERNAL). */
    return ledger_defer(tx,
                        "WITH w AS (UPDATE client_vaults SET total_shares = $2::numeric, current_index = $3::numeric, "
                        "idle_assets = $4::numeric, deployed_assets = $5::numeric, "
                        "withdrawals_payable = $6::numeric, locked_profit = $7::numeric, "
                        "locked_at = to_timestamp($8::bigint), surplus = $9::numeric, status = $10, "
                        "paused_reason = $11 WHERE id = $1::uuid RETURNING 1) "
                        "SELECT coffer_expect_rows((SELECT count(*) FROM w), 1, 'vault ' || $1::text)",
                        11, p);
}

static rpc_code vault_store_position_parse(ledger_tx *tx, position_row *o, const PGresult *res, int r)
{
    rpc_code c;
    memset(o, 0, sizeof *o);
    vault_store_copy(o->id, sizeof o->id, res, r, 0);
    vault_store_copy(o->vault_id, sizeof o->vault_id, res, r, 1);
    vault_store_copy(o->client_id, sizeof o->client_id, res, r, 2);
    vault_store_copy(o->end_user_id, sizeof o->end_user_id, res, r, 3);
    vault_store_copy(o->kind, sizeof o->kind, res, r, 4);
    if ((c = ledger_get_u256(tx, &o->pos.shares, res, r, 5, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->pos.reserved_shares, res, r, 6, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->pos.weighted_entry_index, res, r, 7, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->pos.total_deposited, res, r, 8, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &o->pos.total_withdrawn, res, r, 9, false)) != RPC_OK)
        return c;
    return RPC_OK;
}

static rpc_code vault_store_position_one(ledger_tx *tx, position_row *out, bool *found, const char *sql, int n,
                                         const char *const *p)
{
    rpc_code c;
    *found = false;
    PGresult *res = ledger_query(tx, &c, sql, n, p);
    if (!res)
        return c;
    c = RPC_OK;
    if (PQntuples(res) == 1) {
        c = vault_store_position_parse(tx, out, res, 0);
        *found = c == RPC_OK;
    }
    PQclear(res);
    return c;
}

rpc_code vault_store_position(ledger_tx *tx, position_row *out, bool *found, const vault_row *v,
                              const char *end_user_id, bool create)
{
    const char *p[3] = {v->id, end_user_id, v->client_id};
    static const char *const select_sql = "SELECT " POSITION_COLUMNS
                                          "WHERE vault_id = $1::uuid AND end_user_id = $2::uuid AND kind = 'user' "
                                          "FOR UPDATE";
    /* The usual case first: the position exists (one statement). */
    rpc_code c = vault_store_position_one(tx, out, found, select_sql, 2, p);
    if (c != RPC_OK || *found || !create)
        return c;
    c = ledger_exec(tx, NULL,
                    "INSERT INTO end_user_vaults (client_id, vault_id, end_user_id, kind) "
                    "VALUES ($3::uuid, $1::uuid, $2::uuid, 'user') "
                    "ON CONFLICT (vault_id, end_user_id) WHERE kind = 'user' DO NOTHING",
                    3, p);
    if (c != RPC_OK)
        return c;
    return vault_store_position_one(tx, out, found, select_sql, 2, p);
}

rpc_code vault_store_position_by_id(ledger_tx *tx, position_row *out, bool *found, const char *position_id)
{
    const char *p[1] = {position_id};
    return vault_store_position_one(tx, out, found, "SELECT " POSITION_COLUMNS "WHERE id = $1::uuid FOR UPDATE",
                                    1, p);
}

rpc_code vault_store_revenue(ledger_tx *tx, position_row *out, const vault_row *v, const char *kind)
{
    const char *p[3] = {v->id, kind, v->client_id};
    bool found = false;
    rpc_code c = ledger_exec(tx, NULL,
                             "INSERT INTO end_user_vaults (client_id, vault_id, kind) "
                             "VALUES ($3::uuid, $1::uuid, $2) "
                             "ON CONFLICT (vault_id, kind) WHERE kind <> 'user' DO NOTHING",
                             3, p);
    if (c != RPC_OK)
        return c;
    c = vault_store_position_one(tx, out, &found,
                                 "SELECT " POSITION_COLUMNS "WHERE vault_id = $1::uuid AND kind = $2 FOR UPDATE", 2,
                                 p);
    if (c == RPC_OK && !found) {
        log_error("ledger.revenue_account_missing", "vault=%s kind=%s", v->id, kind);
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the vault's %s account is missing", kind);
    }
    return c;
}

rpc_code vault_store_position_save(ledger_tx *tx, const position_row *o)
{
    char sh[U256_DEC_MAX], rs[U256_DEC_MAX], we[U256_DEC_MAX], td[U256_DEC_MAX], tw[U256_DEC_MAX];
    const char *p[6] = {
        o->id,
        vault_store_dec(sh, &o->pos.shares),
        vault_store_dec(rs, &o->pos.reserved_shares),
        vault_store_dec(we, &o->pos.weighted_entry_index),
        vault_store_dec(td, &o->pos.total_deposited),
        vault_store_dec(tw, &o->pos.total_withdrawn),
    };
    /* Queued, the row count checked in the transaction (as for vaults). */
    return ledger_defer(tx,
                        "WITH w AS (UPDATE end_user_vaults SET shares = $2::numeric, reserved_shares = $3::numeric, "
                        "weighted_entry_index = $4::numeric, total_deposited = $5::numeric, "
                        "total_withdrawn = $6::numeric WHERE id = $1::uuid RETURNING 1) "
                        "SELECT coffer_expect_rows((SELECT count(*) FROM w), 1, 'position ' || $1::text)",
                        6, p);
}

rpc_code vault_store_index_history(ledger_tx *tx, const vault_row *v, bool realized_loss)
{
    u256 nav;
    acct_err e = acct_nav(&nav, &v->v, &v->params, v->now);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "index history");
    char ix[U256_DEC_MAX], na[U256_DEC_MAX], ts[U256_DEC_MAX];
    const char *p[6] = {
        v->client_id, v->id, vault_store_dec(ix, &v->v.current_index), vault_store_dec(na, &nav),
        vault_store_dec(ts, &v->v.total_shares), realized_loss ? "true" : "false",
    };
    return ledger_exec(tx, NULL,
                       "INSERT INTO index_history (client_id, vault_id, index_value, total_assets, total_shares, "
                       "realized_loss) VALUES ($1::uuid, $2::uuid, $3::numeric, $4::numeric, $5::numeric, "
                       "$6::boolean)",
                       6, p);
}

acct_err vault_store_split(u256 *parts, const u256 *balances, size_t n, const u256 *delta, bool gain)
{
    u256 sum = U256_ZERO, given = U256_ZERO, rest;
    for (size_t i = 0; i < n; i++)
        if (u256_add(&sum, &sum, &balances[i]) != 0)
            return ACCT_ERR_OVERFLOW;
    if (u256_is_zero(&sum)) {
        if (!u256_is_zero(delta))
            return ACCT_ERR_INCONSISTENT;
        for (size_t i = 0; i < n; i++)
            parts[i] = U256_ZERO;
        return ACCT_OK;
    }
    if (!gain && u256_cmp(delta, &sum) > 0)
        return ACCT_ERR_INCONSISTENT;
    for (size_t i = 0; i < n; i++) {
        if (u256_muldiv_floor(&parts[i], delta, &balances[i], &sum) != 0 || u256_add(&given, &given, &parts[i]) != 0)
            return ACCT_ERR_OVERFLOW;
    }
    if (u256_sub(&rest, delta, &given) != 0)
        return ACCT_ERR_INCONSISTENT;
    for (size_t i = 0; i < n && !u256_is_zero(&rest); i++) {
        u256 room, t;
        if (gain) {
            t = rest;
        } else {
            if (u256_sub(&room, &balances[i], &parts[i]) != 0)
                return ACCT_ERR_INCONSISTENT;
            t = u256_cmp(&rest, &room) <= 0 ? rest : room;
        }
        if (u256_add(&parts[i], &parts[i], &t) != 0 || u256_sub(&rest, &rest, &t) != 0)
            return ACCT_ERR_OVERFLOW;
    }
    return u256_is_zero(&rest) ? ACCT_OK : ACCT_ERR_INCONSISTENT;
}
