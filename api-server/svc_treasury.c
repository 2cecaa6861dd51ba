/* coffer.v1.TreasuryService: the calling client's custodial wallet.
 * GetWallet (address and balances), ListChainTransactions (its
 * chain_transactions rows); ExecuteDeposit/ExecuteWithdrawal through the
 * treasury engine (treasury_exec.h) over the transaction lifecycle
 * (nonces, signing, broadcast, receipts). */
#include "coffer/v1/treasury.pb-c.h"
#include "evm_rpc.h"
#include "ledger_db.h"
#include "log.h"
#include "rpc_server.h"
#include "ledger_fmt.h"
#include "services.h"
#include "svc_ledger.h"
#include "treasury_exec.h"
#include "wallet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SVC_TREASURY_LIST_DEFAULT 50u
#define SVC_TREASURY_LIST_MAX 500u
#define SVC_TREASURY_OFFSET_MAX 100000u
#define SVC_TREASURY_TOKENS_MAX 64

static const char *const svc_treasury_statuses[] = {"created", "signed",   "submitted", "confirmed",
                                                     "reverted", "failed", "replaced",  NULL};

/* The caller's wallet address (20 bytes); NOT_FOUND-like failure when the
 * client has none (registered before wallets existed). */
static rpc_code svc_treasury_wallet(ledger_tx *tx, uint8_t out[20])
{
    rpc_code code;
    const char *p[1] = {ledger_tx_client_id(tx)};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT coalesce(encode(wallet_address, 'hex'), '') FROM client_organizations "
                                 "WHERE id = $1::uuid",
                                 1, p);
    if (!res)
        return code;
    int ok = PQntuples(res) == 1 ? wallet_address_parse_hex(out, PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    if (ok != 0)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION,
                           "this client has no custodial wallet (registered before wallets were generated)");
    return RPC_OK;
}

/* ---- GetWallet ----------------------------------------------------------- */

typedef struct {
    char symbol[17];
    uint8_t address[20];
    uint32_t decimals;
} svc_treasury_token;

typedef struct {
    const api_services *s;
    uint64_t chain_id;
    uint8_t wallet[20];
    svc_treasury_token tokens[SVC_TREASURY_TOKENS_MAX];
    size_t n_tokens;
} svc_treasury_wallet_args;

static rpc_code svc_treasury_wallet_body(ledger_tx *tx, void *arg)
{
    svc_treasury_wallet_args *a = arg;
    rpc_code code = svc_treasury_wallet(tx, a->wallet);
    if (code != RPC_OK)
        return code;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->chain_id);
    const char *p[2] = {ledger_tx_client_id(tx), chain};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT DISTINCT ON (token_address) token_symbol, encode(token_address, 'hex'), "
                                 "token_decimals FROM client_vaults WHERE client_id = $1::uuid AND chain_id = $2::bigint "
                                 "ORDER BY token_address LIMIT 64",
                                 2, p);
    if (!res)
        return code;
    a->n_tokens = 0;
    for (int i = 0; i < PQntuples(res) && a->n_tokens < SVC_TREASURY_TOKENS_MAX; i++) {
        svc_treasury_token *t = &a->tokens[a->n_tokens];
        snprintf(t->symbol, sizeof t->symbol, "%s", PQgetvalue(res, i, 0));
        t->decimals = (uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10);
        if (wallet_address_parse_hex(t->address, PQgetvalue(res, i, 1)) == 0)
            a->n_tokens++;
    }
    PQclear(res);
    return RPC_OK;
}

static Coffer__V1__TokenBalance *svc_treasury_balance(rpc_ctx *ctx, uint64_t chain_id, const char *symbol,
                                                      const uint8_t *token, uint32_t decimals, const u256 *v)
{
    Coffer__V1__TokenBalance *b = rpc_ctx_alloc(ctx, sizeof *b);
    if (!b)
        return NULL;
    coffer__v1__token_balance__init(b);
    char addr[WALLET_ADDRESS_TEXT_LEN + 1] = "";
    if (token)
        wallet_address_format(addr, token);
    b->chain_id = chain_id;
    b->token_symbol = rpc_ctx_strdup(ctx, symbol);
    b->token_address = rpc_ctx_strdup(ctx, addr);
    b->token_decimals = decimals;
    b->balance = svc_dec(ctx, v);
    return b->token_symbol && b->token_address && b->balance ? b : NULL;
}

static rpc_code svc_treasury_get_wallet(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__GetWalletRequest *q = (const Coffer__V1__GetWalletRequest *)in;
    Coffer__V1__GetWalletResponse *r = (Coffer__V1__GetWalletResponse *)out;
    const api_services *s = rpc_ctx_service_arg(ctx);
    svc_treasury_wallet_args *a = rpc_ctx_alloc(ctx, sizeof *a);
    if (!a)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    memset(a, 0, sizeof *a);
    a->s = s;
    if (q->chain_id > (uint64_t)INT64_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id must be a positive EVM chain id (or 0: all)");
    if (q->chain_id && s->evm && q->chain_id != s->evm_chain_id)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id %llu is not served here (chain %llu is)",
                            (unsigned long long)q->chain_id, (unsigned long long)s->evm_chain_id);
    a->chain_id = s->evm ? s->evm_chain_id : q->chain_id;
    /* The database part first (and alone: no chain call holds a connection). */
    rpc_code code = ledger_run(ctx, &(ledger_run_options){.body = svc_treasury_wallet_body, .arg = a});
    if (code != RPC_OK)
        return code;
    char addr[WALLET_ADDRESS_TEXT_LEN + 1];
    wallet_address_format(addr, a->wallet);
    r->wallet_address = rpc_ctx_strdup(ctx, addr);
    r->balances = rpc_ctx_alloc(ctx, (a->n_tokens + 1) * sizeof *r->balances);
    if (!r->wallet_address || !r->balances)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (!s->evm) {
        r->balances_available = false;
        r->balances_error = rpc_ctx_strdup(ctx, "balances unavailable: coffer-api has no chain client configured "
                                                "(evm.endpoints)");
        return r->balances_error ? RPC_OK : rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    /* Balances at the latest block: native, then each vault token. */
    evm_rpc_error ee;
    u256 v;
    evm_err e = evm_rpc_get_balance(s->evm, &v, &ee, a->wallet, EVM_BLOCK_ID_LATEST);
    if (e == EVM_OK && !(r->balances[r->n_balances++] = svc_treasury_balance(ctx, a->chain_id, "native", NULL, 18, &v)))
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; e == EVM_OK && i < a->n_tokens; i++) {
        const svc_treasury_token *t = &a->tokens[i];
        e = evm_rpc_erc20_balance_of(s->evm, &v, &ee, t->address, a->wallet, EVM_BLOCK_ID_LATEST);
        if (e == EVM_OK &&
            !(r->balances[r->n_balances++] = svc_treasury_balance(ctx, a->chain_id, t->symbol, t->address,
                                                                  t->decimals, &v)))
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (e != EVM_OK) {
        char qm[600];
        log_warn("treasury.balances", "request_id=%s result=%s message=%s", rpc_ctx_request_id(ctx), evm_err_name(e),
                 log_quote(qm, sizeof qm, ee.message));
        r->n_balances = 0;
        r->balances_available = false;
        r->balances_error = rpc_ctx_strdup(ctx, "balances unavailable: the chain node did not answer; retry");
        return r->balances_error ? RPC_OK : rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    r->balances_available = true;
    r->balances_error = rpc_ctx_strdup(ctx, "");
    return r->balances_error ? RPC_OK : rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---- ListChainTransactions ------------------------------------------------ */

typedef struct {
    const Coffer__V1__ListChainTransactionsRequest *req;
    Coffer__V1__ListChainTransactionsResponse *resp;
    unsigned limit;
} svc_treasury_list_args;

static char *svc_treasury_hex_text(rpc_ctx *ctx, const char *hex, bool address)
{
    if (!hex[0])
        return rpc_ctx_strdup(ctx, "");
    uint8_t a[20];
    char buf[WALLET_ADDRESS_TEXT_LEN + 1];
    if (address && wallet_address_parse_hex(a, hex) == 0) {
        wallet_address_format(buf, a);
        return rpc_ctx_strdup(ctx, buf);
    }
    size_t n = strlen(hex);
    char *out = rpc_ctx_alloc(ctx, n + 3);
    if (out)
        snprintf(out, n + 3, "0x%s", hex);
    return out;
}

static rpc_code svc_treasury_list_body(ledger_tx *tx, void *arg)
{
    svc_treasury_list_args *a = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    const Coffer__V1__ListChainTransactionsRequest *q = a->req;
    char limit[16], offset[16];
    snprintf(limit, sizeof limit, "%u", a->limit);
    snprintf(offset, sizeof offset, "%u", q->offset);
    const char *p[5] = {ledger_tx_client_id(tx), q->protocol[0] ? q->protocol : NULL, q->status[0] ? q->status : NULL,
                        limit, offset};
    rpc_code code;
#define SVC_TREASURY_FROM                                                                                \
    "FROM chain_transactions ct LEFT JOIN supported_protocols sp ON sp.id = ct.protocol_id "           \
    "WHERE ct.client_id = $1::uuid AND ($2::text IS NULL OR sp.name = $2) AND ($3::text IS NULL OR " \
    "ct.status = $3) "
    PGresult *res = ledger_query(tx, &code, "SELECT count(*) " SVC_TREASURY_FROM, 3, p);
    if (!res)
        return code;
    int64_t total = 0;
    code = ledger_get_i64(tx, &total, res, 0, 0);
    PQclear(res);
    if (code != RPC_OK)
        return code;
    a->resp->total = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
    res = ledger_query(tx, &code,
                       "SELECT ct.id::text, ct.chain_id, encode(ct.wallet_address, 'hex'), coalesce(ct.nonce, 0), ct.kind, "
                       "coalesce(sp.name, ''), encode(ct.to_address, 'hex'), ct.value::text, ct.status, "
                       "coalesce(encode(ct.tx_hash, 'hex'), ''), coalesce(ct.block_number, 0), ct.confirmations, "
                       "coalesce(ct.error, ''), coalesce(ct.replaced_by::text, ''), "
                       "floor(extract(epoch FROM ct.created_at) * 1000000)::bigint, "
                       "floor(extract(epoch FROM ct.updated_at) * 1000000)::bigint " SVC_TREASURY_FROM
                       "ORDER BY ct.created_at DESC, ct.id DESC LIMIT $4::integer OFFSET $5::integer",
                       5, p);
#undef SVC_TREASURY_FROM
    if (!res)
        return code;
    int n = PQntuples(res);
    a->resp->transactions = rpc_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *a->resp->transactions);
    if (!a->resp->transactions) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        Coffer__V1__ChainTransaction *t = rpc_ctx_alloc(ctx, sizeof *t);
        int64_t chain = 0, nonce = 0, block = 0, conf = 0, created = 0, updated = 0;
        if (!t) {
            code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        coffer__v1__chain_transaction__init(t);
        if ((code = ledger_get_i64(tx, &chain, res, i, 1)) != RPC_OK ||
            (code = ledger_get_i64(tx, &nonce, res, i, 3)) != RPC_OK ||
            (code = ledger_get_i64(tx, &block, res, i, 10)) != RPC_OK ||
            (code = ledger_get_i64(tx, &conf, res, i, 11)) != RPC_OK ||
            (code = ledger_get_i64(tx, &created, res, i, 14)) != RPC_OK ||
            (code = ledger_get_i64(tx, &updated, res, i, 15)) != RPC_OK)
            break;
        t->id = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 0));
        t->chain_id = (uint64_t)chain;
        t->wallet_address = svc_treasury_hex_text(ctx, PQgetvalue(res, i, 2), true);
        t->nonce = (uint64_t)nonce;
        t->kind = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 4));
        t->protocol = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 5));
        t->to_address = svc_treasury_hex_text(ctx, PQgetvalue(res, i, 6), true);
        t->value = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 7));
        t->status = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 8));
        t->tx_hash = svc_treasury_hex_text(ctx, PQgetvalue(res, i, 9), false);
        t->block_number = (uint64_t)block;
        t->confirmations = (uint32_t)conf;
        t->error = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 12));
        t->replaced_by = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 13));
        t->created_at = svc_timestamp_us(ctx, created);
        t->updated_at = svc_timestamp_us(ctx, updated);
        if (!t->id || !t->wallet_address || !t->kind || !t->protocol || !t->to_address || !t->value || !t->status ||
            !t->tx_hash || !t->error || !t->replaced_by || !t->created_at || !t->updated_at) {
            code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        a->resp->transactions[a->resp->n_transactions++] = t;
    }
    PQclear(res);
    return code;
}

static bool svc_treasury_protocol_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '.' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

static rpc_code svc_treasury_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ListChainTransactionsRequest *q = (const Coffer__V1__ListChainTransactionsRequest *)in;
    svc_treasury_list_args a = {q, (Coffer__V1__ListChainTransactionsResponse *)out, SVC_TREASURY_LIST_DEFAULT};
    if (q->limit > SVC_TREASURY_LIST_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "limit must be 1..%u (0: %u), got %u", SVC_TREASURY_LIST_MAX,
                            SVC_TREASURY_LIST_DEFAULT, q->limit);
    if (q->limit)
        a.limit = q->limit;
    if (q->offset > SVC_TREASURY_OFFSET_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "offset must be 0..%u, got %u", SVC_TREASURY_OFFSET_MAX,
                            q->offset);
    if (q->protocol[0] && !svc_treasury_protocol_name_ok(q->protocol))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "protocol must be a supported protocol's name ([a-z0-9][a-z0-9_.-]{0,63})");
    if (q->status[0]) {
        size_t i = 0;
        while (svc_treasury_statuses[i] && strcmp(svc_treasury_statuses[i], q->status) != 0)
            i++;
        if (!svc_treasury_statuses[i])
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                                "status must be one of created, signed, submitted, confirmed, reverted, failed, "
                                "replaced");
    }
    return ledger_run(ctx, &(ledger_run_options){.body = svc_treasury_list_body, .arg = &a});
}

/* ---- Execute* -------------------------------------------------------------- */
/* The engine is treasury_exec.h (risk table, free balance, legs); the
 * answer is stored under the idempotency-key afterwards, and a retry with
 * the same key waits for the same intents (never a second transaction). */

typedef struct {
    ProtobufCMessage *out;
    Coffer__V1__ExecutionResult *result;
    bool deposit;
} svc_treasury_answer;

/* Sets the (already computed) answer; ledger_run stores it with the key. */
static rpc_code svc_treasury_answer_body(ledger_tx *tx, void *arg)
{
    (void)tx;
    svc_treasury_answer *a = arg;
    if (a->deposit)
        ((Coffer__V1__ExecuteDepositResponse *)a->out)->result = a->result;
    else
        ((Coffer__V1__ExecuteWithdrawalResponse *)a->out)->result = a->result;
    return RPC_OK;
}

static Coffer__V1__ExecutionResult *svc_treasury_result(rpc_ctx *ctx, const treasury_result *tr)
{
    Coffer__V1__ExecutionResult *r = rpc_ctx_alloc(ctx, sizeof *r);
    if (!r)
        return NULL;
    coffer__v1__execution_result__init(r);
    u256 gas = u256_from_u64(tr->gas_used);
    r->total_deployed = svc_dec(ctx, &tr->total);
    r->total_gas_used = svc_dec(ctx, &gas);
    r->transactions = rpc_ctx_alloc(ctx, (tr->n ? tr->n : 1) * sizeof *r->transactions);
    r->failed_protocols = rpc_ctx_alloc(ctx, (tr->n ? tr->n : 1) * sizeof *r->failed_protocols);
    if (!r->total_deployed || !r->total_gas_used || !r->transactions || !r->failed_protocols)
        return NULL;
    size_t ok = 0;
    for (size_t i = 0; i < tr->n; i++) {
        const treasury_leg *l = &tr->legs[i];
        Coffer__V1__ProtocolExecution *e = rpc_ctx_alloc(ctx, sizeof *e);
        if (!e)
            return NULL;
        coffer__v1__protocol_execution__init(e);
        e->protocol = rpc_ctx_strdup(ctx, l->protocol);
        e->success = l->success;
        e->tx_hash = rpc_ctx_strdup(ctx, l->tx_hash);
        e->amount = svc_dec(ctx, &l->amount);
        e->error = rpc_ctx_strdup(ctx, l->success ? "" : l->error);
        if (!e->protocol || !e->tx_hash || !e->amount || !e->error)
            return NULL;
        r->transactions[r->n_transactions++] = e;
        if (l->success)
            ok++;
        else
            r->failed_protocols[r->n_failed_protocols++] = e->protocol;
    }
    r->partial_failure = ok > 0 && ok < tr->n;
    r->timestamp = svc_timestamp_us(ctx, (int64_t)time(NULL) * 1000000);
    return r->timestamp ? r : NULL;
}

static rpc_code svc_treasury_execute(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const api_services *s = rpc_ctx_service_arg(ctx);
    bool deposit = in->descriptor == &coffer__v1__execute_deposit_request__descriptor;
    if (!s->jobs)
        return rpc_ctx_fail(ctx, RPC_FAILED_PRECONDITION, "coffer-api has no transaction lifecycle set up");
    size_t kl = 0;
    const char *k = rpc_ctx_idempotency_key(ctx, &kl);
    char key[300] = "";
    if (k)
        snprintf(key, sizeof key, "%.*s", (int)(kl < 256 ? kl : 256), k);
    treasury_result *tr = rpc_ctx_alloc(ctx, sizeof *tr);
    if (!tr)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    char msg[RPC_MESSAGE_MAX] = "", field[64];
    rpc_code c;
    const char *client = rpc_ctx_caller(ctx)->id;
    if (deposit) {
        const Coffer__V1__ExecuteDepositRequest *q = (const Coffer__V1__ExecuteDepositRequest *)in;
        u256 amount;
        if (ledger_fmt_parse_amount(&amount, msg, sizeof msg, "amount", q->amount) != 0)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
        if (q->risk_level < COFFER__V1__RISK_LEVEL__RISK_LEVEL_CONSERVATIVE ||
            q->risk_level > COFFER__V1__RISK_LEVEL__RISK_LEVEL_AGGRESSIVE)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "risk_level must be CONSERVATIVE, MODERATE or AGGRESSIVE");
        c = treasury_execute_deposit(s->jobs, tr, msg, sizeof msg, client, q->token, q->chain_id, &amount,
                                     (treasury_risk)q->risk_level, key[0] ? key : NULL);
    } else {
        const Coffer__V1__ExecuteWithdrawalRequest *q = (const Coffer__V1__ExecuteWithdrawalRequest *)in;
        if (q->n_withdrawals == 0 || q->n_withdrawals > TREASURY_LEGS_MAX)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "withdrawals must list 1..%d protocols", TREASURY_LEGS_MAX);
        treasury_take *takes = rpc_ctx_alloc(ctx, q->n_withdrawals * sizeof *takes);
        if (!takes)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        for (size_t i = 0; i < q->n_withdrawals; i++) {
            snprintf(field, sizeof field, "withdrawals[%zu].amount", i);
            if (!svc_treasury_protocol_name_ok(q->withdrawals[i]->protocol))
                return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "withdrawals[%zu].protocol must be a supported "
                                    "protocol's name", i);
            if (ledger_fmt_parse_amount(&takes[i].amount, msg, sizeof msg, field, q->withdrawals[i]->amount) != 0)
                return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
            takes[i].protocol = q->withdrawals[i]->protocol;
        }
        c = treasury_execute_withdrawal(s->jobs, tr, msg, sizeof msg, client, q->token, q->chain_id, takes,
                                        q->n_withdrawals, key[0] ? key : NULL);
    }
    if (c != RPC_OK)
        return rpc_ctx_fail(ctx, c, "%s", msg);
    Coffer__V1__ExecutionResult *r = svc_treasury_result(ctx, tr);
    if (!r)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    log_info("treasury.executed", "request_id=%s method=%s legs=%zu", rpc_ctx_request_id(ctx), rpc_ctx_method(ctx),
             tr->n);
    /* Store the answer under the idempotency-key (a replay gets it back). */
    svc_treasury_answer ans = {out, r, deposit};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_treasury_answer_body, .arg = &ans, .response = out,
                                                 .request = in});
}

static const rpc_method_def svc_treasury_methods[] = {
    {"GetWallet", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_treasury_get_wallet, NULL},
    {"ExecuteDeposit", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_EXECUTE, svc_treasury_execute, NULL},
    {"ExecuteWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_EXECUTE, svc_treasury_execute,
     NULL},
    {"ListChainTransactions", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_treasury_list, NULL},
};

const rpc_service_def svc_treasury_def = {
    &coffer__v1__treasury_service__descriptor,
    svc_treasury_methods,
    sizeof svc_treasury_methods / sizeof svc_treasury_methods[0],
};
