#include "svc_ledger.h"

#include "ledger_pb.h"

#include "apy.h"
#include "log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool svc_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool svc_is_address(const char *s)
{
    if (!s || strlen(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    for (size_t i = 2; i < 42; i++)
        if (!svc_hex(s[i]))
            return false;
    return true;
}

bool svc_is_uuid(const char *s)
{
    if (!s || strlen(s) != SVC_UUID_LEN)
        return false;
    for (size_t i = 0; i < SVC_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

bool svc_is_printable(const char *s, size_t min, size_t max, bool allow_space)
{
    size_t n = s ? strlen(s) : 0;
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || (c == ' ' && !allow_space))
            return false;
    }
    return true;
}

void svc_uuid_v4(char out[SVC_UUID_LEN + 1])
{
    uint8_t b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, SVC_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

Google__Protobuf__Timestamp *svc_timestamp_us(rpc_ctx *ctx, int64_t us)
{
    return ledger_pb_timestamp(ctx, us);
}

char *svc_dec(rpc_ctx *ctx, const u256 *a)
{
    return ledger_pb_u256(ctx, a);
}

char *svc_signed_dec(rpc_ctx *ctx, const u256 *a, const u256 *b)
{
    u256 d;
    char s[U256_DEC_MAX + 1];
    bool neg = u256_cmp(a, b) < 0;
    if (u256_sub(&d, neg ? b : a, neg ? a : b) != 0)
        return NULL;
    s[0] = '-';
    u256_to_dec(s + (neg ? 1 : 0), &d);
    return rpc_ctx_strdup(ctx, s);
}

double svc_signed_ratio(const u256 *a, const u256 *b, const u256 *d)
{
    if (u256_is_zero(d))
        return 0.0;
    u256 x;
    bool neg = u256_cmp(a, b) < 0;
    if (u256_sub(&x, neg ? b : a, neg ? a : b) != 0)
        return 0.0;
    return (neg ? -1.0 : 1.0) * apy_u256_to_double(&x) / apy_u256_to_double(d);
}

const char *svc_category_name(Coffer__V1__StrategyCategory c)
{
    switch (c) {
    case COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LENDING: return "lending";
    case COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LP: return "lp";
    case COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_STAKING: return "staking";
    default: return NULL;
    }
}

Coffer__V1__StrategyCategory svc_category_parse(const char *name)
{
    if (strcmp(name, "lending") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LENDING;
    if (strcmp(name, "lp") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_LP;
    if (strcmp(name, "staking") == 0)
        return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_STAKING;
    return COFFER__V1__STRATEGY_CATEGORY__STRATEGY_CATEGORY_UNSPECIFIED;
}

rpc_code svc_vault_read(ledger_tx *tx, svc_vault_row *o, const PGresult *res, int row, int c)
{
    memset(o, 0, sizeof *o);
    rpc_code code;
    int64_t v;
    snprintf(o->id, sizeof o->id, "%s", PQgetvalue(res, row, c + 0));
    if ((code = ledger_get_i64(tx, &v, res, row, c + 1)) != RPC_OK)
        return code;
    o->chain_id = (uint64_t)v;
    snprintf(o->token_address, sizeof o->token_address, "%s", PQgetvalue(res, row, c + 2));
    snprintf(o->token_symbol, sizeof o->token_symbol, "%s", PQgetvalue(res, row, c + 3));
    if ((code = ledger_get_i64(tx, &v, res, row, c + 4)) != RPC_OK)
        return code;
    o->decimals = (unsigned)v;
    acct_vault_init(&o->vault);
    if ((code = ledger_get_u256(tx, &o->vault.total_shares, res, row, c + 5, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.current_index, res, row, c + 6, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.idle_assets, res, row, c + 7, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.deployed_assets, res, row, c + 8, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.withdrawals_payable, res, row, c + 9, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.locked_profit, res, row, c + 10, false)) != RPC_OK ||
        (code = ledger_get_i64(tx, &o->vault.locked_at, res, row, c + 11)) != RPC_OK)
        return code;
    int64_t unlock;
    u256 min_first;
    if ((code = ledger_get_i64(tx, &unlock, res, row, c + 12)) != RPC_OK ||
        (code = ledger_get_u256(tx, &o->vault.surplus, res, row, c + 13, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &min_first, res, row, c + 14, false)) != RPC_OK)
        return code;
    snprintf(o->status, sizeof o->status, "%s", PQgetvalue(res, row, c + 15));
    snprintf(o->paused_reason, sizeof o->paused_reason, "%s", PQgetvalue(res, row, c + 16));
    snprintf(o->client_id, sizeof o->client_id, "%s", PQgetvalue(res, row, c + 17));
    if ((code = ledger_get_i64(tx, &o->created_us, res, row, c + 18)) != RPC_OK ||
        (code = ledger_get_i64(tx, &o->now_s, res, row, c + 19)) != RPC_OK)
        return code;
    if (acct_params_init(&o->params, o->decimals, &min_first, (uint64_t)(unlock < 0 ? 0 : unlock)) != ACCT_OK) {
        log_error("svc.vault_bad_params", "vault=%s decimals=%u", o->id, o->decimals);
        return ledger_fail(tx, RPC_INTERNAL, "internal error (request id %s)", log_get_request_id());
    }
    return RPC_OK;
}

Coffer__V1__Vault *svc_vault_to_pb(ledger_tx *tx, rpc_code *code, const svc_vault_row *r, double apy_7d,
                                   double apy_30d)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    u256 index, locked, total;
    acct_err e = acct_index(&index, &r->vault, &r->params, r->now_s);
    if (e == ACCT_OK)
        e = acct_locked_now(&locked, &r->vault, &r->params, r->now_s);
    if (e != ACCT_OK || u256_add(&total, &r->vault.idle_assets, &r->vault.deployed_assets) != 0) {
        log_error("svc.vault_inconsistent", "vault=%s error=%s", r->id, e != ACCT_OK ? acct_strerror(e) : "overflow");
        *code = ledger_fail(tx, RPC_INTERNAL, "internal error: vault %s books are inconsistent (request id %s)",
                            r->id, rpc_ctx_request_id(ctx));
        return NULL;
    }
    Coffer__V1__Vault *v = rpc_ctx_alloc(ctx, sizeof *v);
    if (!v)
        goto oom;
    coffer__v1__vault__init(v);
    v->vault_id = rpc_ctx_strdup(ctx, r->id);
    v->chain_id = r->chain_id;
    v->token_address = rpc_ctx_strdup(ctx, r->token_address);
    v->token_symbol = rpc_ctx_strdup(ctx, r->token_symbol);
    v->token_decimals = r->decimals;
    v->current_index = svc_dec(ctx, &index);
    v->total_shares = svc_dec(ctx, &r->vault.total_shares);
    v->idle_assets = svc_dec(ctx, &r->vault.idle_assets);
    v->deployed_assets = svc_dec(ctx, &r->vault.deployed_assets);
    v->withdrawals_payable = svc_dec(ctx, &r->vault.withdrawals_payable);
    v->total_assets = svc_dec(ctx, &total);
    v->locked_profit = svc_dec(ctx, &locked);
    v->profit_unlock_seconds = (uint32_t)r->params.profit_unlock_s;
    v->apy_7d = apy_7d;
    v->apy_30d = apy_30d;
    v->status = strcmp(r->status, "paused") == 0 ? COFFER__V1__VAULT_STATUS__VAULT_STATUS_PAUSED
                                                  : COFFER__V1__VAULT_STATUS__VAULT_STATUS_ACTIVE;
    v->paused_reason = rpc_ctx_strdup(ctx, r->paused_reason);
    v->client_id = rpc_ctx_strdup(ctx, r->client_id);
    v->created_at = svc_timestamp_us(ctx, r->created_us);
    if (!v->vault_id || !v->token_address || !v->token_symbol || !v->current_index || !v->total_shares ||
        !v->idle_assets || !v->deployed_assets || !v->withdrawals_payable || !v->total_assets ||
        !v->locked_profit || !v->paused_reason || !v->client_id || !v->created_at)
        goto oom;
    return v;
oom:
    *code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
}

double svc_apy_from(const PGresult *res, int row, int col, const u256 *index_now, int64_t now_s)
{
    if (PQgetisnull(res, row, col) || PQgetisnull(res, row, col + 1))
        return 0.0;
    u256 then;
    const char *s = PQgetvalue(res, row, col);
    if (u256_from_dec(&then, s, (size_t)PQgetlength(res, row, col)) != 0)
        return 0.0;
    int64_t at = strtoll(PQgetvalue(res, row, col + 1), NULL, 10);
    return apy_annualized(index_now, &then, now_s - at);
}
