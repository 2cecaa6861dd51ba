/* coffer.v1.DepositService: money coming into a vault for an end user.
 *
 * CreateCryptoDeposit opens an order (INITIATED) for the client's user
 * and vault; CompleteDeposit (the operator's confirmation path until the
 * chain watcher of issue 6) credits it once: the order row, then the
 * vault row FOR UPDATE, then the user's position, the accounting engine
 * (accounting.h) mints floor(amount * total_shares / nav) shares, and the
 * order, vault, position, audit row and outbox event are written in the
 * one transaction. A Transfer log (chain, tx_hash, log_index) credits at
 * most one deposit (checked first, and by a unique index).
 *
 * deposit_address is the client's custodial wallet; it is empty until the
 * wallet issue (6) generates wallets. */
#include "coffer/v1/deposit.pb-c.h"
#include "ledger_db.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"
#include "order_list.h"
#include "order_state.h"
#include "rpc_server.h"
#include "svc_ledger.h"
#include "services.h"
#include "vault_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_DEPOSIT_EXPIRY_DEFAULT_S 86400

/* One deposit with what the API shows, in svc_deposit_fill's order
 * (columns 0..19). */
#define SVC_DEPOSIT_LIST                                                                                     \
    "d.order_id, u.client_user_id, d.vault_id, d.chain_id, v.token_symbol, d.kind, d.amount, "               \
    "coalesce(d.credited_amount::text, ''), coalesce(d.shares_minted::text, ''), "                           \
    "coalesce(d.index_at_credit::text, ''), d.status, coalesce(d.sub_status, ''), "                          \
    "coalesce('0x' || encode(d.deposit_address, 'hex'), ''), coalesce('0x' || encode(d.tx_hash, 'hex'), ''), " \
    "(extract(epoch FROM d.created_at) * 1000000)::bigint, (extract(epoch FROM d.updated_at) * 1000000)::bigint, " \
    "(extract(epoch FROM d.completed_at) * 1000000)::bigint, (extract(epoch FROM d.expires_at) * 1000000)::bigint, " \
    "d.client_id, d.id "
#define SVC_DEPOSIT_FROM \
    "FROM deposits d JOIN end_users u ON u.id = d.end_user_id JOIN client_vaults v ON v.id = d.vault_id "
#define SVC_DEPOSIT_COLUMNS SVC_DEPOSIT_LIST SVC_DEPOSIT_FROM

static rpc_code svc_deposit_fill(ledger_tx *tx, Coffer__V1__Deposit **out, const PGresult *res, int r)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__Deposit *d = rpc_ctx_alloc(ctx, sizeof *d);
    if (!d)
        return ledger_pb_oom(tx);
    coffer__v1__deposit__init(d);
    char **strs[] = {&d->order_id, &d->client_user_id, &d->vault_id, NULL, &d->token_symbol, NULL, &d->amount,
                     &d->credited_amount, &d->shares_minted, &d->index_at_credit, NULL, &d->sub_status,
                     &d->deposit_address, &d->tx_hash};
    for (int c = 0; c < (int)(sizeof strs / sizeof strs[0]); c++) {
        if (!strs[c])
            continue;
        if (!(*strs[c] = rpc_ctx_strdup(ctx, PQgetvalue(res, r, c))))
            return ledger_pb_oom(tx);
    }
    d->chain_id = strtoull(PQgetvalue(res, r, 3), NULL, 10);
    d->kind = strcmp(PQgetvalue(res, r, 5), "fiat") == 0 ? COFFER__V1__DEPOSIT_KIND__DEPOSIT_KIND_FIAT
                                                         : COFFER__V1__DEPOSIT_KIND__DEPOSIT_KIND_CRYPTO;
    order_status st = ORDER_NONE;
    if (order_status_parse(&st, PQgetvalue(res, r, 10)) != 0)
        st = ORDER_NONE;
    d->status = (Coffer__V1__OrderStatus)st;
    Google__Protobuf__Timestamp **ts[] = {&d->created_at, &d->updated_at, &d->completed_at, &d->expires_at};
    for (int i = 0; i < 4; i++) {
        if (PQgetisnull(res, r, 14 + i))
            continue;
        if (!(*ts[i] = ledger_pb_timestamp(ctx, strtoll(PQgetvalue(res, r, 14 + i), NULL, 10))))
            return ledger_pb_oom(tx);
    }
    if (!(d->client_id = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 18))))
        return ledger_pb_oom(tx);
    *out = d;
    return RPC_OK;
}

/* The deposit order_id of client_id (NULL: any, platform scope) as the
 * API shows it; *found false when there is none. */
static rpc_code svc_deposit_load(ledger_tx *tx, Coffer__V1__Deposit **out, bool *found, const char *order_id,
                                 const char *client_id)
{
    rpc_code c;
    const char *p[2] = {order_id, client_id && *client_id ? client_id : NULL};
    *found = false;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT " SVC_DEPOSIT_COLUMNS
                                 "WHERE d.order_id = $1 AND ($2::uuid IS NULL OR d.client_id = $2::uuid)",
                                 2, p);
    if (!res)
        return c;
    c = RPC_OK;
    if (PQntuples(res) == 1) {
        c = svc_deposit_fill(tx, out, res, 0);
        *found = c == RPC_OK;
    }
    PQclear(res);
    return c;
}

/* ---- CreateCryptoDeposit ---------------------------------------------------- */

typedef struct {
    const Coffer__V1__CreateCryptoDepositRequest *req;
    Coffer__V1__CreateCryptoDepositResponse *resp;
    const char *amount;
    int64_t expiry_s;
} svc_deposit_create_arg;

static rpc_code svc_deposit_create_body(ledger_tx *tx, void *argp)
{
    svc_deposit_create_arg *a = argp;
    const char *client = ledger_tx_client_id(tx);
    rpc_code c;
    const char *up[2] = {client, a->req->client_user_id};
    PGresult *res = ledger_query(tx, &c, "SELECT id FROM end_users WHERE client_id = $1::uuid AND client_user_id = $2",
                                 2, up);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "user %s not found: create it first (UserService.CreateUser)",
                           a->req->client_user_id);
    }
    char user_id[VAULT_STORE_ID_MAX];
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    vault_row v;
    bool found = false;
    if ((c = vault_store_get_by_token(tx, &v, &found, client, a->req->chain_id, a->req->token_symbol, false)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_NOT_FOUND, "no vault for chain %llu token %s: configure it first "
                           "(ClientService.ConfigureVault)", (unsigned long long)a->req->chain_id,
                           a->req->token_symbol);
    if (v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s (chain %llu %s) is paused: %s", v.id,
                           (unsigned long long)v.chain_id, v.token_symbol, v.paused_reason);

    char order_id[LEDGER_ORDER_ID_MAX], chain[24], expiry[24];
    ledger_fmt_order_id(order_id, "dep_");
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)v.chain_id);
    snprintf(expiry, sizeof expiry, "%lld", (long long)a->expiry_s);
    const char *ip[7] = {order_id, client, user_id, v.id, chain, a->amount, expiry};
    if ((c = ledger_exec(tx, NULL,
                         "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, "
                         "status, deposit_address, expires_at) VALUES ($1, $2::uuid, $3::uuid, $4::uuid, $5::bigint, "
                         "'crypto', $6::numeric, 'INITIATED', "
                         "(SELECT wallet_address FROM client_organizations WHERE id = $2::uuid), "
                         "now() + make_interval(secs => $7::bigint))",
                         7, ip)) != RPC_OK)
        return c;
    char details[512];
    snprintf(details, sizeof details, "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"amount\":\"%s\",\"kind\":\"crypto\"}",
             order_id, v.id, a->amount);
    bool got = false;
    if ((c = svc_deposit_load(tx, &a->resp->deposit, &got, order_id, client)) != RPC_OK)
        return c;
    if (!got)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the new deposit is not readable");
    if ((c = ledger_audit(tx, "deposit.created", "deposit", order_id, client, details)) != RPC_OK)
        return c;
    log_info("deposit.created", "order_id=%s vault=%s amount=%s", order_id, v.id, a->amount);
    return RPC_OK;
}

static rpc_code svc_deposit_create(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CreateCryptoDepositRequest *req = (const Coffer__V1__CreateCryptoDepositRequest *)in;
    const api_services *s = rpc_ctx_service_arg(ctx);
    char msg[RPC_MESSAGE_MAX];
    u256 amount;
    if (!req->client_user_id[0])
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "client_user_id is required");
    if (req->chain_id == 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id is required (e.g. 1 for Ethereum mainnet)");
    if (!req->token_symbol[0])
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "token_symbol is required (e.g. USDC)");
    if (ledger_fmt_parse_amount(&amount, msg, sizeof msg, "amount", req->amount) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    char dec[U256_DEC_MAX];
    u256_to_dec(dec, &amount);
    svc_deposit_create_arg a = {
        .req = req,
        .resp = (Coffer__V1__CreateCryptoDepositResponse *)out,
        .amount = dec,
        .expiry_s = s && s->deposit_expiry_s > 0 ? s->deposit_expiry_s : SVC_DEPOSIT_EXPIRY_DEFAULT_S,
    };
    return ledger_run(ctx, &(ledger_run_options){.body = svc_deposit_create_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- CompleteDeposit -------------------------------------------------------- */

typedef struct {
    const Coffer__V1__CompleteDepositRequest *req;
    Coffer__V1__CompleteDepositResponse *resp;
    u256 amount;
    char tx_hash[67]; /* lowercase 0x + 64 */
} svc_deposit_complete_arg;

/* Columns of the credit's first statement after SVC_DEPOSIT_LIST. */
enum {
    SVC_DEP_C_VAULT = 2, SVC_DEP_C_CHAIN = 3, SVC_DEP_C_KIND = 5, SVC_DEP_C_STATUS = 10, SVC_DEP_C_TX_HASH = 13,
    SVC_DEP_C_CLIENT = 18, SVC_DEP_C_USER = 20, SVC_DEP_C_LOG = 21, SVC_DEP_C_NOW = 22, SVC_DEP_C_OTHER = 23,
};

/* Round trips: (1) BEGIN, settings and the order row with the transfer
 * check; (2) the vault row; (3) the position; (4) the writes, the outbox
 * event, the audit row and COMMIT, queued (ledger_defer) and sent as one
 * pipeline. The answer is built from (1) and what this credit wrote, so
 * nothing is read back; the vault row is locked for three round trips and
 * the audit chain's lock for none. */
static rpc_code svc_deposit_complete_body(ledger_tx *tx, void *argp)
{
    svc_deposit_complete_arg *a = argp;
    const char *order_id = a->req->order_id;
    rpc_code c;
    char log_index[16];
    snprintf(log_index, sizeof log_index, "%u", a->req->log_index);
    /* The order row locked, what the answer shows, and (invariant 5: one
     * Transfer log credits at most one deposit) another deposit already
     * credited by this transfer; the unique index on (chain_id, tx_hash,
     * log_index) refuses a concurrent one at the UPDATE. */
    const char *op[3] = {order_id, a->tx_hash + 2, log_index};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT " SVC_DEPOSIT_LIST ", d.end_user_id, coalesce(d.log_index, -1), "
                                 "(extract(epoch FROM now()) * 1000000)::bigint, "
                                 "(SELECT o.order_id FROM deposits o WHERE o.chain_id = d.chain_id "
                                 "AND o.tx_hash = decode($2, 'hex') AND o.log_index = $3::integer "
                                 "AND o.order_id <> d.order_id LIMIT 1) " SVC_DEPOSIT_FROM
                                 "WHERE d.order_id = $1 FOR UPDATE OF d",
                                 3, op);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "deposit %s not found", order_id);
    }
    char client[VAULT_STORE_ID_MAX], user[VAULT_STORE_ID_MAX], vault_id[VAULT_STORE_ID_MAX], chain[24], kind[16];
    char seen_hash[67], other[64];
    long seen_log = strtol(PQgetvalue(res, 0, SVC_DEP_C_LOG), NULL, 10);
    int64_t now_us = strtoll(PQgetvalue(res, 0, SVC_DEP_C_NOW), NULL, 10);
    snprintf(client, sizeof client, "%s", PQgetvalue(res, 0, SVC_DEP_C_CLIENT));
    snprintf(user, sizeof user, "%s", PQgetvalue(res, 0, SVC_DEP_C_USER));
    snprintf(vault_id, sizeof vault_id, "%s", PQgetvalue(res, 0, SVC_DEP_C_VAULT));
    snprintf(chain, sizeof chain, "%s", PQgetvalue(res, 0, SVC_DEP_C_CHAIN));
    snprintf(kind, sizeof kind, "%s", PQgetvalue(res, 0, SVC_DEP_C_KIND));
    snprintf(seen_hash, sizeof seen_hash, "%s", PQgetvalue(res, 0, SVC_DEP_C_TX_HASH));
    snprintf(other, sizeof other, "%s", PQgetvalue(res, 0, SVC_DEP_C_OTHER));
    bool other_credited = !PQgetisnull(res, 0, SVC_DEP_C_OTHER);
    order_status from = ORDER_NONE;
    int bad_status = order_status_parse(&from, PQgetvalue(res, 0, SVC_DEP_C_STATUS));
    Coffer__V1__Deposit *dep = NULL;
    c = bad_status == 0 && a->resp ? svc_deposit_fill(tx, &dep, res, 0) : RPC_OK;
    PQclear(res);
    if (c != RPC_OK)
        return c;
    if (bad_status != 0)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: deposit %s has an unknown status", order_id);
    order_entity entity = strcmp(kind, "fiat") == 0 ? ORDER_DEPOSIT_FIAT : ORDER_DEPOSIT_CRYPTO;
    char msg[RPC_MESSAGE_MAX];
    if (from == ORDER_COMPLETED)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "deposit %s is already COMPLETED (credited once; "
                           "replay with the first call's idempotency-key to get its answer)", order_id);
    if (order_transition_check(msg, sizeof msg, entity, order_id, from, ORDER_COMPLETED) != RPC_OK)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "%s", msg);
    if (seen_hash[0] && (strcmp(seen_hash, a->tx_hash) != 0 || seen_log != (long)a->req->log_index))
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "deposit %s is confirming transfer %s log %ld; complete it "
                           "with that transfer", order_id, seen_hash, seen_log);
    if (other_credited)
        return ledger_fail(tx, RPC_ALREADY_EXISTS, "transfer %s log %s on chain %s already credited deposit %s",
                           a->tx_hash, log_index, chain, other);

    vault_row v;
    position_row pos;
    bool found = false;
    if ((c = vault_store_get(tx, &v, &found, vault_id, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the deposit's vault is missing");
    if (v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s is paused (%s): deposits complete after "
                           "ResumeVault", v.id, v.paused_reason);
    if ((c = vault_store_position(tx, &pos, &found, &v, user, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the position could not be created");
    u256 index, minted;
    acct_err e = acct_index(&index, &v.v, &v.params, v.now);
    if (e == ACCT_OK)
        e = acct_deposit(&v.v, &pos.pos, &minted, &v.params, v.now, &a->amount);
    if (e == ACCT_ERR_BELOW_MIN_FIRST) {
        char min[LEDGER_AMOUNT_DISPLAY_MAX], amt[U256_DEC_MAX], mb[U256_DEC_MAX];
        ledger_fmt_display(min, &v.params.min_first_deposit, v.params.decimals);
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "the first deposit into an empty vault must be at least "
                           "%s base units (%s %s), got %s", vault_store_dec(mb, &v.params.min_first_deposit), min,
                           v.token_symbol, vault_store_dec(amt, &a->amount));
    }
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "deposit");
    /* From here on everything is queued and goes with COMMIT. */
    if ((c = vault_store_save(tx, &v)) != RPC_OK || (c = vault_store_position_save(tx, &pos)) != RPC_OK)
        return c;

    char amt[U256_DEC_MAX], sh[U256_DEC_MAX], ix[U256_DEC_MAX];
    vault_store_dec(amt, &a->amount);
    vault_store_dec(sh, &minted);
    vault_store_dec(ix, &index);
    const char *up[6] = {order_id, amt, sh, ix, a->tx_hash + 2, log_index};
    if ((c = ledger_defer(tx,
                          "WITH w AS (UPDATE deposits SET status = 'COMPLETED', sub_status = NULL, "
                          "credited_amount = $2::numeric, shares_minted = $3::numeric, index_at_credit = $4::numeric, "
                          "tx_hash = decode($5, 'hex'), log_index = $6::integer, completed_at = now() "
                          "WHERE order_id = $1 RETURNING 1) "
                          "SELECT coffer_expect_rows((SELECT count(*) FROM w), 1, 'deposit ' || $1)",
                          6, up)) != RPC_OK)
        return c;
    char details[700];
    snprintf(details, sizeof details,
             "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"position_id\":\"%s\",\"amount\":\"%s\",\"shares\":\"%s\","
             "\"index\":\"%s\",\"tx_hash\":\"%s\",\"log_index\":%s}",
             order_id, v.id, pos.id, amt, sh, ix, a->tx_hash, log_index);
    const char *ep[2] = {client, details};
    if ((c = ledger_defer(tx,
                          "INSERT INTO outbox (client_id, event_type, payload) VALUES ($1::uuid, 'deposit.completed', "
                          "$2::jsonb)",
                          2, ep)) != RPC_OK)
        return c;
    if (dep) {
        /* The row as the UPDATE above leaves it: updated_at (trigger) and
         * completed_at are now(), the transaction's time read in (1). */
        rpc_ctx *ctx = ledger_tx_ctx(tx);
        dep->status = (Coffer__V1__OrderStatus)ORDER_COMPLETED;
        if (!(dep->sub_status = rpc_ctx_strdup(ctx, "")) || !(dep->credited_amount = rpc_ctx_strdup(ctx, amt)) ||
            !(dep->shares_minted = rpc_ctx_strdup(ctx, sh)) || !(dep->index_at_credit = rpc_ctx_strdup(ctx, ix)) ||
            !(dep->tx_hash = rpc_ctx_strdup(ctx, a->tx_hash)) || !(dep->updated_at = ledger_pb_timestamp(ctx, now_us)) ||
            !(dep->completed_at = ledger_pb_timestamp(ctx, now_us)))
            return ledger_pb_oom(tx);
        a->resp->deposit = dep;
    }
    /* Last (and queued): the audit chain of this client is locked from
     * this insert to COMMIT, which follow each other in one pipeline. */
    if ((c = ledger_audit(tx, "deposit.completed", "deposit", order_id, client, details)) != RPC_OK)
        return c;
    log_info("deposit.completed", "order_id=%s vault=%s amount=%s shares=%s index=%s", order_id, v.id, amt, sh, ix);
    return RPC_OK;
}

static rpc_code svc_deposit_complete(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CompleteDepositRequest *req = (const Coffer__V1__CompleteDepositRequest *)in;
    char msg[RPC_MESSAGE_MAX];
    svc_deposit_complete_arg a = {.req = req, .resp = (Coffer__V1__CompleteDepositResponse *)out};
    if (!ledger_fmt_is_order_id(req->order_id, "dep_"))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "order_id must look like dep_ followed by 10..40 of [0-9a-z]");
    if (ledger_fmt_parse_amount(&a.amount, msg, sizeof msg, "crypto_amount", req->crypto_amount) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    if (!ledger_fmt_is_tx_hash(req->tx_hash))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "tx_hash must be 0x followed by 64 hex digits");
    for (size_t i = 0; i < sizeof a.tx_hash - 1; i++) {
        char ch = req->tx_hash[i];
        a.tx_hash[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    a.tx_hash[sizeof a.tx_hash - 1] = '\0';
    if ((int64_t)req->log_index > INT32_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "log_index is out of range");
    return ledger_run(ctx, &(ledger_run_options){.body = svc_deposit_complete_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- GetDeposit / ListDeposits ---------------------------------------------- */

typedef struct {
    const char *order_id;
    Coffer__V1__Deposit **out;
} svc_deposit_get_arg;

static rpc_code svc_deposit_get_body(ledger_tx *tx, void *argp)
{
    svc_deposit_get_arg *a = argp;
    bool found = false;
    rpc_code c = svc_deposit_load(tx, a->out, &found, a->order_id, ledger_tx_client_id(tx));
    if (c == RPC_OK && !found)
        return ledger_fail(tx, RPC_NOT_FOUND, "deposit %s not found", a->order_id);
    return c;
}

static rpc_code svc_deposit_get(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__GetDepositRequest *req = (const Coffer__V1__GetDepositRequest *)in;
    if (!ledger_fmt_is_order_id(req->order_id, "dep_"))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "order_id must look like dep_ followed by 10..40 of [0-9a-z]");
    svc_deposit_get_arg a = {req->order_id, &((Coffer__V1__GetDepositResponse *)out)->deposit};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_deposit_get_body, .arg = &a});
}

typedef struct {
    const Coffer__V1__ListDepositsRequest *req;
    Coffer__V1__ListDepositsResponse *resp;
    order_list_filter filter;
} svc_deposit_list_arg;

static rpc_code svc_deposit_fill_any(ledger_tx *tx, void *slot, const PGresult *res, int r)
{
    return svc_deposit_fill(tx, slot, res, r);
}

static const order_list_query svc_deposit_list_query = {
    "SELECT " SVC_DEPOSIT_COLUMNS
    "WHERE d.client_id = $1::uuid AND ($2::text IS NULL OR u.client_user_id = $2) "
    "AND ($3::text IS NULL OR d.status = $3) AND ($4::bigint IS NULL OR d.chain_id = $4) "
    "AND ($5::bigint IS NULL OR (d.created_at, d.id) < "
    "(timestamptz 'epoch' + $5::bigint * interval '1 microsecond', $6::uuid)) "
    "ORDER BY d.created_at DESC, d.id DESC LIMIT $7::integer",
    14, 19, svc_deposit_fill_any,
};

static rpc_code svc_deposit_list_body(ledger_tx *tx, void *argp)
{
    svc_deposit_list_arg *a = argp;
    void **items = NULL;
    size_t n = 0;
    rpc_code c = order_list_run(tx, &svc_deposit_list_query, &a->filter, &items, &n, &a->resp->next_page_token);
    a->resp->deposits = (Coffer__V1__Deposit **)items;
    a->resp->n_deposits = n;
    return c;
}

static rpc_code svc_deposit_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ListDepositsRequest *req = (const Coffer__V1__ListDepositsRequest *)in;
    svc_deposit_list_arg a = {.req = req, .resp = (Coffer__V1__ListDepositsResponse *)out};
    a.filter = (order_list_filter){.client_user_id = req->client_user_id, .status = (int)req->status,
                                   .chain_id = req->chain_id};
    if (order_list_check(ctx, &a.filter, req->page_size, req->page_token) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    return ledger_run(ctx, &(ledger_run_options){.body = svc_deposit_list_body, .arg = &a});
}

/* ---- credits by deposit_watch (chain_jobs.c) ------------------------------------ */

rpc_code svc_deposit_credit(ledger_tx *tx, const char *order_id, const u256 *amount, const char *tx_hash_0x,
                            uint32_t log_index)
{
    Coffer__V1__CompleteDepositRequest req;
    coffer__v1__complete_deposit_request__init(&req);
    char oid[64];
    snprintf(oid, sizeof oid, "%s", order_id);
    req.order_id = oid;
    req.log_index = log_index;
    svc_deposit_complete_arg a = {.req = &req, .resp = NULL, .amount = *amount};
    snprintf(a.tx_hash, sizeof a.tx_hash, "%s", tx_hash_0x);
    return svc_deposit_complete_body(tx, &a);
}

static const rpc_method_def svc_deposit_methods[] = {
    {"CreateCryptoDeposit", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_deposit_create, NULL},
    {"CompleteDeposit", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_deposit_complete, NULL},
    {"GetDeposit", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_deposit_get, NULL},
    {"ListDeposits", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_deposit_list, NULL},
};

const rpc_service_def svc_deposit_def = {
    &coffer__v1__deposit_service__descriptor,
    svc_deposit_methods,
    sizeof svc_deposit_methods / sizeof svc_deposit_methods[0],
};
