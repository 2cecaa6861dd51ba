/* coffer.v1.UserService: a client's end users and their portfolios. All
 * reads and writes are scoped to the calling client (row-level security
 * and the WHERE clauses): another client's user is NOT_FOUND. */
#include "accounting.h"
#include "coffer/v1/user.pb-c.h"
#include "ledger_db.h"
#include "log.h"
#include "rpc_server.h"
#include "services.h"
#include "svc_ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_USER_ID_MAX 128u

static const char *svc_user_type_name(Coffer__V1__UserType t)
{
    return t == COFFER__V1__USER_TYPE__USER_TYPE_BUSINESS ? "business" : "individual";
}

/* local@domain, 3..320 printable ASCII, no spaces, one '@' neither first
 * nor last. NULL when fine, else what is wrong. */
static const char *svc_user_email_problem(const char *e)
{
    if (!svc_is_printable(e, 3, 320, false))
        return "must be 3 to 320 printable ASCII characters without spaces";
    const char *at = strchr(e, '@');
    if (!at || at == e || at[1] == '\0' || strchr(at + 1, '@'))
        return "must look like local@domain";
    return NULL;
}

static const char *svc_user_client_user_id_problem(const char *id)
{
    if (!svc_is_printable(id, 1, SVC_USER_ID_MAX, false))
        return "client_user_id must be 1 to 128 printable ASCII characters without spaces";
    if (strchr(id, '/'))
        return "client_user_id must not contain '/' (it is a path segment of the HTTP routes)";
    return NULL;
}

/* The user row columns read by svc_user_from_row. */
#define SVC_USER_COLUMNS                                                                             \
    "id::text, client_user_id, user_type, coalesce(email, ''), "                                    \
    "coalesce('0x' || encode(wallet_address, 'hex'), ''), "                                          \
    "floor(extract(epoch FROM created_at) * 1000000)::bigint"

static rpc_code svc_user_from_row(ledger_tx *tx, Coffer__V1__User **out, const PGresult *res, int row)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    int64_t created = 0;
    rpc_code code = ledger_get_i64(tx, &created, res, row, 5);
    if (code != RPC_OK)
        return code;
    Coffer__V1__User *u = rpc_ctx_alloc(ctx, sizeof *u);
    if (!u)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    coffer__v1__user__init(u);
    u->user_id = rpc_ctx_strdup(ctx, PQgetvalue(res, row, 0));
    u->client_user_id = rpc_ctx_strdup(ctx, PQgetvalue(res, row, 1));
    u->user_type = strcmp(PQgetvalue(res, row, 2), "business") == 0 ? COFFER__V1__USER_TYPE__USER_TYPE_BUSINESS
                                                                      : COFFER__V1__USER_TYPE__USER_TYPE_INDIVIDUAL;
    u->email = rpc_ctx_strdup(ctx, PQgetvalue(res, row, 3));
    u->wallet_address = rpc_ctx_strdup(ctx, PQgetvalue(res, row, 4));
    u->created_at = svc_timestamp_us(ctx, created);
    if (!u->user_id || !u->client_user_id || !u->email || !u->wallet_address || !u->created_at)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    *out = u;
    return RPC_OK;
}

/* ---- CreateUser ------------------------------------------------------- */

typedef struct {
    const Coffer__V1__CreateUserRequest *req;
    Coffer__V1__CreateUserResponse *resp;
    char wallet[43]; /* lowercase, or "" */
} svc_user_create_args;

static rpc_code svc_user_create_body(ledger_tx *tx, void *arg)
{
    svc_user_create_args *a = arg;
    const Coffer__V1__CreateUserRequest *q = a->req;
    const char *cid = ledger_tx_client_id(tx);
    const char *type = svc_user_type_name(q->user_type);
    rpc_code code;
    const char *p[5] = {cid, q->client_user_id, type, q->email[0] ? q->email : NULL,
                        a->wallet[0] ? a->wallet + 2 : NULL};
    PGresult *res = ledger_query(tx, &code,
                                 "INSERT INTO end_users (client_id, client_user_id, user_type, email, wallet_address) "
                                 "VALUES ($1::uuid, $2, $3, $4, decode($5, 'hex')) "
                                 "ON CONFLICT (client_id, client_user_id) DO NOTHING RETURNING " SVC_USER_COLUMNS,
                                 5, p);
    if (!res)
        return code;
    if (PQntuples(res) == 1) {
        code = svc_user_from_row(tx, &a->resp->user, res, 0);
        PQclear(res);
        if (code != RPC_OK)
            return code;
        a->resp->created = true;
        char details[64];
        snprintf(details, sizeof details, "{\"user_type\": \"%s\"}", type);
        return ledger_audit(tx, "user.create", "end_user", a->resp->user->user_id, cid, details);
    }
    PQclear(res);
    /* It exists: the same user again is fine, a different one is not. */
    const char *ps[2] = {cid, q->client_user_id};
    res = ledger_query(tx, &code,
                       "SELECT " SVC_USER_COLUMNS " FROM end_users WHERE client_id = $1::uuid AND client_user_id = $2",
                       2, ps);
    if (!res)
        return code;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_ABORTED, "the user changed concurrently; retry");
    }
    const char *differs = NULL;
    if (strcmp(PQgetvalue(res, 0, 2), type) != 0)
        differs = "user_type";
    else if (strcmp(PQgetvalue(res, 0, 3), q->email) != 0)
        differs = "email";
    else if (strcmp(PQgetvalue(res, 0, 4), a->wallet) != 0)
        differs = "wallet_address";
    if (differs) {
        PQclear(res);
        return ledger_fail(tx, RPC_ALREADY_EXISTS,
                           "client_user_id %s already exists with a different %s; GetUser shows the stored user",
                           q->client_user_id, differs);
    }
    code = svc_user_from_row(tx, &a->resp->user, res, 0);
    PQclear(res);
    a->resp->created = false;
    return code;
}

static rpc_code svc_user_create(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CreateUserRequest *q = (const Coffer__V1__CreateUserRequest *)in;
    svc_user_create_args a;
    memset(&a, 0, sizeof a);
    a.req = q;
    a.resp = (Coffer__V1__CreateUserResponse *)out;
    const char *why = svc_user_client_user_id_problem(q->client_user_id);
    if (why)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", why);
    if (q->user_type != COFFER__V1__USER_TYPE__USER_TYPE_UNSPECIFIED &&
        q->user_type != COFFER__V1__USER_TYPE__USER_TYPE_INDIVIDUAL &&
        q->user_type != COFFER__V1__USER_TYPE__USER_TYPE_BUSINESS)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "user_type must be USER_TYPE_INDIVIDUAL or USER_TYPE_BUSINESS");
    if (q->email[0] && (why = svc_user_email_problem(q->email)) != NULL)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "email %s", why);
    if (q->wallet_address[0]) {
        if (!svc_is_address(q->wallet_address))
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "wallet_address must be 0x followed by 40 hex digits");
        for (size_t i = 0; i < 42; i++) {
            char c = q->wallet_address[i];
            a.wallet[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
    }
    return ledger_run(ctx, &(ledger_run_options){.body = svc_user_create_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- GetUser ---------------------------------------------------------- */

typedef struct {
    const char *client_user_id;
    Coffer__V1__User **user;
} svc_user_get_args;

static rpc_code svc_user_get_body(ledger_tx *tx, void *arg)
{
    svc_user_get_args *a = arg;
    rpc_code code;
    const char *p[2] = {ledger_tx_client_id(tx), a->client_user_id};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT " SVC_USER_COLUMNS " FROM end_users WHERE client_id = $1::uuid AND client_user_id = $2",
                                 2, p);
    if (!res)
        return code;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "no user with client_user_id %s", a->client_user_id);
    }
    code = svc_user_from_row(tx, a->user, res, 0);
    PQclear(res);
    return code;
}

static rpc_code svc_user_get(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__GetUserRequest *q = (const Coffer__V1__GetUserRequest *)in;
    const char *why = svc_user_client_user_id_problem(q->client_user_id);
    if (why)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", why);
    svc_user_get_args a = {q->client_user_id, &((Coffer__V1__GetUserResponse *)out)->user};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_user_get_body, .arg = &a});
}

/* ---- GetPortfolio ----------------------------------------------------- */

typedef struct {
    const char *client_user_id;
    Coffer__V1__GetPortfolioResponse *resp;
} svc_user_portfolio_args;

/* One position's figures; adds its 18-decimal values to the totals. */
static rpc_code svc_user_position(ledger_tx *tx, Coffer__V1__VaultPosition **out, const PGresult *res, int row,
                                  u256 totals[3])
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    svc_vault_row r;
    rpc_code code = svc_vault_read(tx, &r, res, row, 0);
    if (code != RPC_OK)
        return code;
    acct_position pos;
    acct_position_init(&pos);
    const int c = SVC_VAULT_NCOLS;
    if ((code = ledger_get_u256(tx, &pos.shares, res, row, c + 0, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &pos.reserved_shares, res, row, c + 1, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &pos.weighted_entry_index, res, row, c + 2, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &pos.total_deposited, res, row, c + 3, false)) != RPC_OK ||
        (code = ledger_get_u256(tx, &pos.total_withdrawn, res, row, c + 4, false)) != RPC_OK)
        return code;
    u256 index, value, available, plus;
    acct_err e = acct_index(&index, &r.vault, &r.params, r.now_s);
    if (e == ACCT_OK)
        e = acct_shares_value(&value, &r.vault, &r.params, r.now_s, &pos.shares);
    if (e == ACCT_OK)
        e = acct_available(&available, &r.vault, &pos, &r.params, r.now_s);
    if (e == ACCT_OK && u256_add(&plus, &value, &pos.total_withdrawn) != 0)
        e = ACCT_ERR_OVERFLOW;
    if (e != ACCT_OK) {
        log_error("user.portfolio_inconsistent", "vault=%s error=%s", r.id, acct_strerror(e));
        return ledger_fail(tx, RPC_INTERNAL, "internal error: vault %s books are inconsistent (request id %s)", r.id,
                           rpc_ctx_request_id(ctx));
    }
    Coffer__V1__VaultPosition *v = rpc_ctx_alloc(ctx, sizeof *v);
    if (!v)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    coffer__v1__vault_position__init(v);
    v->vault_id = rpc_ctx_strdup(ctx, r.id);
    v->chain_id = r.chain_id;
    v->token_symbol = rpc_ctx_strdup(ctx, r.token_symbol);
    v->token_decimals = r.decimals;
    v->shares = svc_dec(ctx, &pos.shares);
    v->reserved_shares = svc_dec(ctx, &pos.reserved_shares);
    v->effective_balance = svc_dec(ctx, &value);
    v->available_balance = svc_dec(ctx, &available);
    v->total_deposited = svc_dec(ctx, &pos.total_deposited);
    v->total_withdrawn = svc_dec(ctx, &pos.total_withdrawn);
    v->yield_earned = svc_signed_dec(ctx, &plus, &pos.total_deposited);
    v->weighted_entry_index = svc_dec(ctx, &pos.weighted_entry_index);
    v->current_index = svc_dec(ctx, &index);
    v->yield_percentage = svc_signed_ratio(&plus, &pos.total_deposited, &pos.total_deposited);
    v->apy_7d = svc_apy_from(res, row, c + 5, &index, r.now_s);
    v->apy_30d = svc_apy_from(res, row, c + 7, &index, r.now_s);
    if (!v->vault_id || !v->token_symbol || !v->shares || !v->reserved_shares || !v->effective_balance ||
        !v->available_balance || !v->total_deposited || !v->total_withdrawn || !v->yield_earned ||
        !v->weighted_entry_index || !v->current_index)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    /* Totals in 18 decimals: base units x 10^(18 - decimals). */
    const u256 *add[3] = {&value, &pos.total_deposited, &pos.total_withdrawn};
    for (int i = 0; i < 3; i++) {
        u256 scaled;
        if (u256_mul(&scaled, add[i], &r.params.scale) != 0 || u256_add(&totals[i], &totals[i], &scaled) != 0)
            return ledger_fail(tx, RPC_INTERNAL, "internal error: portfolio totals overflow");
    }
    *out = v;
    return RPC_OK;
}

static rpc_code svc_user_portfolio_body(ledger_tx *tx, void *arg)
{
    svc_user_portfolio_args *a = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    rpc_code code;
    const char *p[2] = {ledger_tx_client_id(tx), a->client_user_id};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT id::text FROM end_users WHERE client_id = $1::uuid AND client_user_id = $2", 2, p);
    if (!res)
        return code;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "no user with client_user_id %s", a->client_user_id);
    }
    char user_id[SVC_UUID_LEN + 1];
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *pu[2] = {ledger_tx_client_id(tx), user_id};
    res = ledger_query(tx, &code,
                       "SELECT " SVC_VAULT_COLUMNS ", p.shares, p.reserved_shares, p.weighted_entry_index, "
                       "p.total_deposited, p.total_withdrawn, h7.index_value, h7.at_s, h30.index_value, h30.at_s "
                       "FROM end_user_vaults p JOIN client_vaults v ON v.id = p.vault_id AND v.client_id = p.client_id"
                       SVC_APY_LATERAL("h7", "7") SVC_APY_LATERAL("h30", "30")
                       "WHERE p.client_id = $1::uuid AND p.end_user_id = $2::uuid AND p.kind = 'user' "
                       "ORDER BY v.created_at, v.id",
                       2, pu);
    if (!res)
        return code;
    int n = PQntuples(res);
    Coffer__V1__GetPortfolioResponse *r = a->resp;
    r->client_user_id = rpc_ctx_strdup(ctx, a->client_user_id);
    r->vaults = rpc_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *r->vaults);
    r->totals = rpc_ctx_alloc(ctx, sizeof *r->totals);
    if (!r->client_user_id || !r->vaults || !r->totals) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    coffer__v1__portfolio_totals__init(r->totals);
    u256 totals[3] = {u256_from_u64(0), u256_from_u64(0), u256_from_u64(0)}; /* value, deposited, withdrawn */
    for (int i = 0; i < n; i++) {
        code = svc_user_position(tx, &r->vaults[i], res, i, totals);
        if (code != RPC_OK) {
            PQclear(res);
            return code;
        }
        r->n_vaults++;
    }
    PQclear(res);
    u256 plus;
    if (u256_add(&plus, &totals[0], &totals[2]) != 0)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: portfolio totals overflow");
    r->totals->total_value = svc_dec(ctx, &totals[0]);
    r->totals->total_deposited = svc_dec(ctx, &totals[1]);
    r->totals->total_withdrawn = svc_dec(ctx, &totals[2]);
    r->totals->yield_earned = svc_signed_dec(ctx, &plus, &totals[1]);
    r->totals->yield_percentage = svc_signed_ratio(&plus, &totals[1], &totals[1]);
    if (!r->totals->total_value || !r->totals->total_deposited || !r->totals->total_withdrawn ||
        !r->totals->yield_earned)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return RPC_OK;
}

static rpc_code svc_user_portfolio(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__GetPortfolioRequest *q = (const Coffer__V1__GetPortfolioRequest *)in;
    const char *why = svc_user_client_user_id_problem(q->client_user_id);
    if (why)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", why);
    svc_user_portfolio_args a = {q->client_user_id, (Coffer__V1__GetPortfolioResponse *)out};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_user_portfolio_body, .arg = &a});
}

static const rpc_method_def svc_user_methods[] = {
    {"CreateUser", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_user_create, NULL},
    {"GetUser", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_user_get, NULL},
    {"GetPortfolio", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_user_portfolio, NULL},
};

const rpc_service_def svc_user_def = {
    &coffer__v1__user_service__descriptor,
    svc_user_methods,
    sizeof svc_user_methods / sizeof svc_user_methods[0],
};
