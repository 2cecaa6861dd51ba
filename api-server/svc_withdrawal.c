/* coffer.v1.WithdrawalService: money leaving a vault.
 *
 * RequestWithdrawal reserves ceil(amount * total_shares / nav) of the
 * user's free shares at once (vault row FOR UPDATE, then the position), so
 * two requests can never spend one balance; the reservation is a row of
 * its own and the position's reserved_shares is the sum of its held
 * reservations. The `withdrawals` job (svc_operations.c) burns the shares
 * when idle assets cover the amount (PROVIDER_PROCESSING, PAYOUT_PENDING):
 * the amount then moves into withdrawals_payable and the position's
 * total_withdrawn (counted at the burn, as the accounting engine does);
 * idle_assets falls when the operator confirms the payout
 * (CompleteWithdrawal). FailWithdrawal gives the reservation back before
 * the burn, and after it re-mints shares worth the amount at today's
 * price (FAILED -> COMPENSATING -> COMPENSATED in one transaction). */
#include "coffer/v1/withdrawal.pb-c.h"
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

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_WITHDRAWAL_ETA_DEFAULT_S 86400
#define SVC_WITHDRAWAL_DETAILS_MAX 16u
#define SVC_WITHDRAWAL_DETAIL_LEN 200u

#define SVC_WITHDRAWAL_COLUMNS                                                                               \
    "w.order_id, u.client_user_id, w.vault_id, w.chain_id, v.token_symbol, w.amount, w.shares_reserved, "    \
    "coalesce(w.shares_burned::text, ''), coalesce(w.index_at_burn::text, ''), w.destination_type, "          \
    "w.destination::text, w.status, coalesce(w.sub_status, ''), coalesce(w.failure_reason, ''), "             \
    "(extract(epoch FROM w.estimated_completion) * 1000000)::bigint, coalesce(w.payout_reference, ''), "      \
    "(extract(epoch FROM w.created_at) * 1000000)::bigint, (extract(epoch FROM w.updated_at) * 1000000)::bigint, " \
    "(extract(epoch FROM w.completed_at) * 1000000)::bigint, w.client_id, w.id "                              \
    "FROM withdrawals w JOIN end_users u ON u.id = w.end_user_id JOIN client_vaults v ON v.id = w.vault_id "

static rpc_code svc_withdrawal_destination(ledger_tx *tx, Coffer__V1__Destination **out, const char *type,
                                           const char *json)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__Destination *d = rpc_ctx_alloc(ctx, sizeof *d);
    if (!d)
        return ledger_pb_oom(tx);
    coffer__v1__destination__init(d);
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ledger_fail(tx, RPC_INTERNAL, "internal error: a stored destination is not a JSON object");
    }
    if (strcmp(type, "crypto_address") == 0) {
        d->type = COFFER__V1__DESTINATION_TYPE__DESTINATION_TYPE_CRYPTO_ADDRESS;
        const char *addr = json_string_value(json_object_get(root, "address"));
        if (!(d->address = rpc_ctx_strdup(ctx, addr ? addr : ""))) {
            json_decref(root);
            return ledger_pb_oom(tx);
        }
    } else {
        d->type = COFFER__V1__DESTINATION_TYPE__DESTINATION_TYPE_BANK_ACCOUNT;
        json_t *details = json_object_get(root, "details");
        size_t n = json_is_object(details) ? json_object_size(details) : 0;
        d->details = rpc_ctx_alloc(ctx, (n ? n : 1) * sizeof *d->details);
        if (!d->details) {
            json_decref(root);
            return ledger_pb_oom(tx);
        }
        const char *k;
        json_t *val;
        json_object_foreach(details, k, val) {
            Coffer__V1__Destination__DetailsEntry *e = rpc_ctx_alloc(ctx, sizeof *e);
            if (!e) {
                json_decref(root);
                return ledger_pb_oom(tx);
            }
            coffer__v1__destination__details_entry__init(e);
            e->key = rpc_ctx_strdup(ctx, k);
            e->value = rpc_ctx_strdup(ctx, json_string_value(val) ? json_string_value(val) : "");
            if (!e->key || !e->value) {
                json_decref(root);
                return ledger_pb_oom(tx);
            }
            d->details[d->n_details++] = e;
        }
    }
    json_decref(root);
    *out = d;
    return RPC_OK;
}

static rpc_code svc_withdrawal_fill(ledger_tx *tx, Coffer__V1__Withdrawal **out, const PGresult *res, int r)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__Withdrawal *w = rpc_ctx_alloc(ctx, sizeof *w);
    if (!w)
        return ledger_pb_oom(tx);
    coffer__v1__withdrawal__init(w);
    struct {
        char **dst;
        int col;
    } strs[] = {{&w->order_id, 0},     {&w->client_user_id, 1}, {&w->vault_id, 2},         {&w->token_symbol, 4},
                {&w->amount, 5},       {&w->shares_reserved, 6}, {&w->shares_burned, 7},   {&w->index_at_burn, 8},
                {&w->sub_status, 12},  {&w->failure_reason, 13}, {&w->payout_reference, 15}, {&w->client_id, 19}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!(*strs[i].dst = rpc_ctx_strdup(ctx, PQgetvalue(res, r, strs[i].col))))
            return ledger_pb_oom(tx);
    w->chain_id = strtoull(PQgetvalue(res, r, 3), NULL, 10);
    rpc_code c = svc_withdrawal_destination(tx, &w->destination, PQgetvalue(res, r, 9), PQgetvalue(res, r, 10));
    if (c != RPC_OK)
        return c;
    order_status st = ORDER_NONE;
    if (order_status_parse(&st, PQgetvalue(res, r, 11)) != 0)
        st = ORDER_NONE;
    w->status = (Coffer__V1__OrderStatus)st;
    struct {
        Google__Protobuf__Timestamp **dst;
        int col;
    } ts[] = {{&w->estimated_completion, 14}, {&w->created_at, 16}, {&w->updated_at, 17}, {&w->completed_at, 18}};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        if (PQgetisnull(res, r, ts[i].col))
            continue;
        if (!(*ts[i].dst = ledger_pb_timestamp(ctx, strtoll(PQgetvalue(res, r, ts[i].col), NULL, 10))))
            return ledger_pb_oom(tx);
    }
    *out = w;
    return RPC_OK;
}

static rpc_code svc_withdrawal_load(ledger_tx *tx, Coffer__V1__Withdrawal **out, bool *found, const char *order_id,
                                    const char *client_id)
{
    rpc_code c;
    const char *p[2] = {order_id, client_id && *client_id ? client_id : NULL};
    *found = false;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT " SVC_WITHDRAWAL_COLUMNS
                                 "WHERE w.order_id = $1 AND ($2::uuid IS NULL OR w.client_id = $2::uuid)",
                                 2, p);
    if (!res)
        return c;
    c = RPC_OK;
    if (PQntuples(res) == 1) {
        c = svc_withdrawal_fill(tx, out, res, 0);
        *found = c == RPC_OK;
    }
    PQclear(res);
    return c;
}

/* The withdrawal row an operation changes, locked. */
typedef struct {
    char id[VAULT_STORE_ID_MAX];
    char client_id[VAULT_STORE_ID_MAX];
    char end_user_id[VAULT_STORE_ID_MAX];
    char vault_id[VAULT_STORE_ID_MAX];
    char destination_type[20];
    order_status status;
    u256 amount, shares_reserved, shares_burned;
} svc_withdrawal_row;

static rpc_code svc_withdrawal_lock(ledger_tx *tx, svc_withdrawal_row *w, const char *order_id, const char *client_id)
{
    rpc_code c;
    const char *p[2] = {order_id, client_id && *client_id ? client_id : NULL};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, client_id, end_user_id, vault_id, destination_type, status, amount, "
                                 "shares_reserved, shares_burned FROM withdrawals "
                                 "WHERE order_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid) FOR UPDATE",
                                 2, p);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "withdrawal %s not found", order_id);
    }
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", PQgetvalue(res, 0, 0));
    snprintf(w->client_id, sizeof w->client_id, "%s", PQgetvalue(res, 0, 1));
    snprintf(w->end_user_id, sizeof w->end_user_id, "%s", PQgetvalue(res, 0, 2));
    snprintf(w->vault_id, sizeof w->vault_id, "%s", PQgetvalue(res, 0, 3));
    snprintf(w->destination_type, sizeof w->destination_type, "%s", PQgetvalue(res, 0, 4));
    if (order_status_parse(&w->status, PQgetvalue(res, 0, 5)) != 0)
        c = ledger_fail(tx, RPC_INTERNAL, "internal error: withdrawal %s has an unknown status", order_id);
    else if ((c = ledger_get_u256(tx, &w->amount, res, 0, 6, false)) == RPC_OK &&
             (c = ledger_get_u256(tx, &w->shares_reserved, res, 0, 7, false)) == RPC_OK)
        c = ledger_get_u256(tx, &w->shares_burned, res, 0, 8, true);
    PQclear(res);
    return c;
}

static rpc_code svc_withdrawal_transition(ledger_tx *tx, const char *order_id, order_status from, order_status to)
{
    char msg[RPC_MESSAGE_MAX];
    if (order_transition_check(msg, sizeof msg, ORDER_WITHDRAWAL, order_id, from, to) != RPC_OK)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "%s", msg);
    return RPC_OK;
}

/* Closes the withdrawal's held reservation as `how` (released, consumed). */
static rpc_code svc_withdrawal_close_reservation(ledger_tx *tx, const char *withdrawal_id, const char *how)
{
    const char *p[2] = {withdrawal_id, how};
    uint64_t n = 0;
    rpc_code c = ledger_exec(tx, &n,
                             "UPDATE reservations SET status = $2, closed_at = now() "
                             "WHERE withdrawal_id = $1::uuid AND status = 'held'",
                             2, p);
    if (c == RPC_OK && n != 1)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: withdrawal %s has no held reservation", withdrawal_id);
    return c;
}

static rpc_code svc_withdrawal_event(ledger_tx *tx, const char *client_id, const char *type, const char *json)
{
    const char *p[3] = {client_id, type, json};
    return ledger_exec(tx, NULL, "INSERT INTO outbox (client_id, event_type, payload) VALUES ($1::uuid, $2, $3::jsonb)",
                       3, p);
}

/* ---- RequestWithdrawal ------------------------------------------------------ */

typedef struct {
    const Coffer__V1__RequestWithdrawalRequest *req;
    Coffer__V1__RequestWithdrawalResponse *resp;
    u256 amount;
    const char *destination_type;
    const char *destination_json;
    int64_t eta_s;
} svc_withdrawal_request_arg;

static rpc_code svc_withdrawal_request_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_request_arg *a = argp;
    const char *client = ledger_tx_client_id(tx);
    rpc_code c;
    const char *up[2] = {client, a->req->client_user_id};
    PGresult *res = ledger_query(tx, &c, "SELECT id FROM end_users WHERE client_id = $1::uuid AND client_user_id = $2",
                                 2, up);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "user %s not found", a->req->client_user_id);
    }
    char user_id[VAULT_STORE_ID_MAX];
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    vault_row v;
    position_row pos;
    bool found = false;
    if ((c = vault_store_get_by_token(tx, &v, &found, client, a->req->chain_id, a->req->token_symbol, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_NOT_FOUND, "no vault for chain %llu token %s", (unsigned long long)a->req->chain_id,
                           a->req->token_symbol);
    if (v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s is paused (%s): withdrawals wait for ResumeVault",
                           v.id, v.paused_reason);
    if ((c = vault_store_position(tx, &pos, &found, &v, user_id, false)) != RPC_OK)
        return c;
    char amt[U256_DEC_MAX], av[U256_DEC_MAX];
    vault_store_dec(amt, &a->amount);
    u256 avail = U256_ZERO, reserved;
    acct_err e = found ? acct_available(&avail, &v.v, &pos.pos, &v.params, v.now) : ACCT_OK;
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "available balance");
    vault_store_dec(av, &avail);
    if (!found || u256_cmp(&a->amount, &avail) > 0)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "insufficient available balance: available %s, requested %s",
                           av, amt);
    e = acct_reserve(&pos.pos, &reserved, &v.v, &v.params, v.now, &a->amount);
    if (e == ACCT_ERR_INSUFFICIENT)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "insufficient available balance: available %s, requested %s",
                           av, amt);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "withdrawal");

    char order_id[LEDGER_ORDER_ID_MAX], chain[24], eta[24], rs[U256_DEC_MAX];
    ledger_fmt_order_id(order_id, "wth_");
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)v.chain_id);
    snprintf(eta, sizeof eta, "%lld", (long long)a->eta_s);
    vault_store_dec(rs, &reserved);
    const char *ip[10] = {order_id, client, user_id, v.id, chain, amt, rs, a->destination_type, a->destination_json,
                          eta};
    res = ledger_query(tx, &c,
                       "INSERT INTO withdrawals (order_id, client_id, end_user_id, vault_id, chain_id, amount, "
                       "shares_reserved, destination_type, destination, status, estimated_completion) VALUES "
                       "($1, $2::uuid, $3::uuid, $4::uuid, $5::bigint, $6::numeric, $7::numeric, $8, $9::jsonb, "
                       "'BALANCE_RESERVED', now() + make_interval(secs => $10::bigint)) RETURNING id",
                       10, ip);
    if (!res)
        return c;
    char wid[VAULT_STORE_ID_MAX];
    snprintf(wid, sizeof wid, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *rp[4] = {client, wid, pos.id, rs};
    if ((c = ledger_exec(tx, NULL,
                         "INSERT INTO reservations (client_id, withdrawal_id, end_user_vault_id, shares) "
                         "VALUES ($1::uuid, $2::uuid, $3::uuid, $4::numeric)",
                         4, rp)) != RPC_OK)
        return c;
    if ((c = vault_store_position_save(tx, &pos)) != RPC_OK)
        return c;
    char details[600];
    snprintf(details, sizeof details,
             "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"position_id\":\"%s\",\"amount\":\"%s\","
             "\"shares_reserved\":\"%s\",\"available_before\":\"%s\"}",
             order_id, v.id, pos.id, amt, rs, av);
    if ((c = svc_withdrawal_load(tx, &a->resp->withdrawal, &found, order_id, client)) != RPC_OK)
        return c;
    if ((c = ledger_audit(tx, "withdrawal.requested", "withdrawal", order_id, client, details)) != RPC_OK)
        return c;
    log_info("withdrawal.requested", "order_id=%s vault=%s amount=%s shares_reserved=%s", order_id, v.id, amt, rs);
    return RPC_OK;
}

/* Checks the destination and renders it as the JSON stored. Returns 0,
 * or -1 with msg. *json is malloc'd. */
static int svc_withdrawal_destination_json(char **json, const char **type, char *msg, size_t msg_len,
                                           const Coffer__V1__Destination *d)
{
    *json = NULL;
    if (!d || d->type == COFFER__V1__DESTINATION_TYPE__DESTINATION_TYPE_UNSPECIFIED) {
        snprintf(msg, msg_len, "destination.type is required: CRYPTO_ADDRESS or BANK_ACCOUNT");
        return -1;
    }
    json_t *root = json_object();
    if (!root) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    if (d->type == COFFER__V1__DESTINATION_TYPE__DESTINATION_TYPE_CRYPTO_ADDRESS) {
        if (!ledger_fmt_is_address(d->address) || d->n_details) {
            snprintf(msg, msg_len, "destination.address must be 0x followed by 40 hex digits (and no details) "
                     "for CRYPTO_ADDRESS");
            json_decref(root);
            return -1;
        }
        json_object_set_new(root, "address", json_string(d->address));
        *type = "crypto_address";
    } else if (d->type == COFFER__V1__DESTINATION_TYPE__DESTINATION_TYPE_BANK_ACCOUNT) {
        if (d->n_details == 0 || d->n_details > SVC_WITHDRAWAL_DETAILS_MAX || d->address[0]) {
            snprintf(msg, msg_len, "destination.details must hold 1..%u entries (iban, bic, holder, ...) and no "
                     "address for BANK_ACCOUNT", SVC_WITHDRAWAL_DETAILS_MAX);
            json_decref(root);
            return -1;
        }
        json_t *details = json_object();
        for (size_t i = 0; details && i < d->n_details; i++) {
            const char *k = d->details[i]->key, *v = d->details[i]->value;
            size_t kl = strlen(k), vl = strlen(v);
            bool key_ok = kl >= 1 && kl <= 32;
            for (size_t j = 0; key_ok && j < kl; j++)
                key_ok = (k[j] >= 'a' && k[j] <= 'z') || (k[j] >= '0' && k[j] <= '9') || k[j] == '_';
            json_t *js = vl >= 1 && vl <= SVC_WITHDRAWAL_DETAIL_LEN ? json_string(v) : NULL;
            if (!key_ok || !js) {
                snprintf(msg, msg_len, "destination.details: keys are 1..32 of [a-z0-9_], values 1..%u characters "
                         "of valid UTF-8 (entry %zu is not)", SVC_WITHDRAWAL_DETAIL_LEN, i);
                json_decref(details);
                json_decref(root);
                return -1;
            }
            json_object_set_new(details, k, js);
        }
        json_object_set_new(root, "details", details);
        *type = "bank_account";
    } else {
        snprintf(msg, msg_len, "destination.type %d is not a DestinationType", (int)d->type);
        json_decref(root);
        return -1;
    }
    *json = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!*json) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    return 0;
}

static rpc_code svc_withdrawal_request(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RequestWithdrawalRequest *req = (const Coffer__V1__RequestWithdrawalRequest *)in;
    const api_services *s = rpc_ctx_service_arg(ctx);
    svc_withdrawal_request_arg a = {.req = req, .resp = (Coffer__V1__RequestWithdrawalResponse *)out};
    char msg[RPC_MESSAGE_MAX];
    if (!req->client_user_id[0])
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "client_user_id is required");
    if (req->chain_id == 0 || !req->token_symbol[0])
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id and token_symbol are required");
    if (ledger_fmt_parse_amount(&a.amount, msg, sizeof msg, "amount", req->amount) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    char *json = NULL;
    if (svc_withdrawal_destination_json(&json, &a.destination_type, msg, sizeof msg, req->destination) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    a.destination_json = json;
    a.eta_s = s && s->withdrawal_eta_s > 0 ? s->withdrawal_eta_s : SVC_WITHDRAWAL_ETA_DEFAULT_S;
    rpc_code c = ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_request_body, .arg = &a,
                                                       .response = out, .request = in});
    free(json);
    return c;
}

/* ---- CancelWithdrawal ------------------------------------------------------- */

typedef struct {
    const char *order_id;
    Coffer__V1__Withdrawal **out;
    const char *reason;     /* FailWithdrawal */
    const char *reference;  /* CompleteWithdrawal */
} svc_withdrawal_op_arg;

/* Gives a queued withdrawal's reservation back and moves it to `to`
 * (CANCELLED or FAILED). The withdrawal row is locked; locks the vault. */
static rpc_code svc_withdrawal_release(ledger_tx *tx, const svc_withdrawal_row *w, const char *order_id)
{
    vault_row v;
    position_row pos;
    bool found = false;
    rpc_code c;
    if ((c = vault_store_get(tx, &v, &found, w->vault_id, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the withdrawal's vault is missing");
    if ((c = vault_store_position(tx, &pos, &found, &v, w->end_user_id, false)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: withdrawal %s has no position", order_id);
    acct_err e = acct_release(&pos.pos, &w->shares_reserved);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "release");
    if ((c = svc_withdrawal_close_reservation(tx, w->id, "released")) != RPC_OK)
        return c;
    return vault_store_position_save(tx, &pos);
}

static rpc_code svc_withdrawal_cancel_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_op_arg *a = argp;
    const char *client = ledger_tx_client_id(tx);
    svc_withdrawal_row w;
    rpc_code c;
    bool found;
    if ((c = svc_withdrawal_lock(tx, &w, a->order_id, client)) != RPC_OK)
        return c;
    if ((c = svc_withdrawal_transition(tx, a->order_id, w.status, ORDER_CANCELLED)) != RPC_OK)
        return c;
    if ((c = svc_withdrawal_release(tx, &w, a->order_id)) != RPC_OK)
        return c;
    const char *p[1] = {w.id};
    if ((c = ledger_exec(tx, NULL, "UPDATE withdrawals SET status = 'CANCELLED', completed_at = now() "
                                   "WHERE id = $1::uuid", 1, p)) != RPC_OK)
        return c;
    char rs[U256_DEC_MAX], details[300];
    snprintf(details, sizeof details, "{\"order_id\":\"%s\",\"shares_released\":\"%s\"}", a->order_id,
             vault_store_dec(rs, &w.shares_reserved));
    if ((c = ledger_audit(tx, "withdrawal.cancelled", "withdrawal", a->order_id, w.client_id, details)) != RPC_OK)
        return c;
    return svc_withdrawal_load(tx, a->out, &found, a->order_id, client);
}

static rpc_code svc_withdrawal_check_id(rpc_ctx *ctx, const char *order_id)
{
    if (!ledger_fmt_is_order_id(order_id, "wth_"))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "order_id must look like wth_ followed by 10..40 of [0-9a-z]");
    return RPC_OK;
}

static rpc_code svc_withdrawal_cancel(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CancelWithdrawalRequest *req = (const Coffer__V1__CancelWithdrawalRequest *)in;
    if (svc_withdrawal_check_id(ctx, req->order_id) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    svc_withdrawal_op_arg a = {req->order_id, &((Coffer__V1__CancelWithdrawalResponse *)out)->withdrawal, NULL, NULL};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_cancel_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- CompleteWithdrawal (operator) ------------------------------------------ */

static rpc_code svc_withdrawal_complete_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_op_arg *a = argp;
    svc_withdrawal_row w;
    rpc_code c;
    bool found;
    if ((c = svc_withdrawal_lock(tx, &w, a->order_id, NULL)) != RPC_OK)
        return c;
    if ((c = svc_withdrawal_transition(tx, a->order_id, w.status, ORDER_COMPLETED)) != RPC_OK)
        return c;
    bool crypto = strcmp(w.destination_type, "crypto_address") == 0;
    if (crypto && !ledger_fmt_is_tx_hash(a->reference))
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "payout_reference must be the payout's transaction hash "
                           "(0x followed by 64 hex digits) for a crypto_address destination");
    vault_row v;
    if ((c = vault_store_get(tx, &v, &found, w.vault_id, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the withdrawal's vault is missing");
    acct_err e = acct_payout(&v.v, &w.amount);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "payout");
    if ((c = vault_store_save(tx, &v)) != RPC_OK)
        return c;
    const char *p[3] = {w.id, a->reference, crypto ? a->reference + 2 : NULL};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE withdrawals SET status = 'COMPLETED', sub_status = NULL, payout_reference = $2, "
                         "payout_tx_hash = decode($3, 'hex'), completed_at = now() WHERE id = $1::uuid",
                         3, p)) != RPC_OK)
        return c;
    char amt[U256_DEC_MAX], ref[420], details[700];
    if (ledger_fmt_json_string(ref, sizeof ref, a->reference) != 0)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "payout_reference is too long");
    snprintf(details, sizeof details, "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"amount\":\"%s\",\"payout_reference\":%s}",
             a->order_id, v.id, vault_store_dec(amt, &w.amount), ref);
    if ((c = ledger_audit(tx, "withdrawal.completed", "withdrawal", a->order_id, w.client_id, details)) != RPC_OK ||
        (c = svc_withdrawal_event(tx, w.client_id, "withdrawal.completed", details)) != RPC_OK)
        return c;
    log_info("withdrawal.completed", "order_id=%s vault=%s amount=%s", a->order_id, v.id, amt);
    if (!a->out)
        return RPC_OK;
    return svc_withdrawal_load(tx, a->out, &found, a->order_id, NULL);
}

static rpc_code svc_withdrawal_complete(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__CompleteWithdrawalRequest *req = (const Coffer__V1__CompleteWithdrawalRequest *)in;
    if (svc_withdrawal_check_id(ctx, req->order_id) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    size_t n = strlen(req->payout_reference);
    if (n < 1 || n > 200)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "payout_reference is required (1..200 characters: the payout "
                            "transaction hash or the bank's reference)");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)req->payout_reference[i] < 0x20 || req->payout_reference[i] == 0x7f)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "payout_reference must not hold control characters");
    svc_withdrawal_op_arg a = {req->order_id, &((Coffer__V1__CompleteWithdrawalResponse *)out)->withdrawal, NULL,
                               req->payout_reference};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_complete_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- FailWithdrawal (operator) ---------------------------------------------- */

/* After the burn: the amount comes back as shares at today's price. */
static rpc_code svc_withdrawal_compensate(ledger_tx *tx, const svc_withdrawal_row *w, const char *order_id,
                                          u256 *reminted)
{
    vault_row v;
    position_row pos;
    bool found = false;
    rpc_code c;
    if ((c = vault_store_get(tx, &v, &found, w->vault_id, true)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the withdrawal's vault is missing");
    if ((c = vault_store_position(tx, &pos, &found, &v, w->end_user_id, true)) != RPC_OK)
        return c;
    /* The amount is still in the wallet (idle) and owed (payable): cancel
     * the debt (payout of nothing: idle and payable fall together), then
     * credit it back as a deposit at today's price (idle rises again). */
    acct_vault v0 = v.v;
    acct_position p0 = pos.pos;
    acct_err e = acct_payout(&v.v, &w->amount);
    if (e == ACCT_OK) {
        e = acct_deposit(&v.v, &pos.pos, reminted, &v.params, v.now, &w->amount);
        if (e == ACCT_ERR_BELOW_MIN_FIRST) { /* the vault emptied meanwhile: no guard for money coming back */
            acct_params p = v.params;
            p.min_first_deposit = U256_ZERO;
            e = acct_deposit(&v.v, &pos.pos, reminted, &p, v.now, &w->amount);
        }
    }
    if (e != ACCT_OK) {
        v.v = v0;
        pos.pos = p0;
        return vault_store_acct_fail(tx, e, "compensation");
    }
    /* Neither deposited nor withdrawn, in the position's history. */
    if (u256_sub(&pos.pos.total_deposited, &pos.pos.total_deposited, &w->amount) != 0 ||
        u256_sub(&pos.pos.total_withdrawn, &pos.pos.total_withdrawn, &w->amount) != 0)
        return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "compensation");
    (void)order_id;
    if ((c = vault_store_save(tx, &v)) != RPC_OK)
        return c;
    return vault_store_position_save(tx, &pos);
}

static rpc_code svc_withdrawal_fail_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_op_arg *a = argp;
    svc_withdrawal_row w;
    rpc_code c;
    bool found;
    if ((c = svc_withdrawal_lock(tx, &w, a->order_id, NULL)) != RPC_OK)
        return c;
    if ((c = svc_withdrawal_transition(tx, a->order_id, w.status, ORDER_FAILED)) != RPC_OK)
        return c;
    bool burned = w.status == ORDER_PROVIDER_PROCESSING;
    u256 reminted = U256_ZERO;
    if (burned)
        c = svc_withdrawal_compensate(tx, &w, a->order_id, &reminted);
    else
        c = svc_withdrawal_release(tx, &w, a->order_id);
    if (c != RPC_OK)
        return c;
    const char *p[2] = {w.id, a->reason};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE withdrawals SET status = 'FAILED', sub_status = NULL, failure_reason = $2 "
                         "WHERE id = $1::uuid", 2, p)) != RPC_OK)
        return c;
    if (burned && ((c = ledger_exec(tx, NULL, "UPDATE withdrawals SET status = 'COMPENSATING' WHERE id = $1::uuid",
                                    1, p)) != RPC_OK ||
                   (c = ledger_exec(tx, NULL,
                                    "UPDATE withdrawals SET status = 'COMPENSATED', completed_at = now() "
                                    "WHERE id = $1::uuid", 1, p)) != RPC_OK))
        return c;
    char amt[U256_DEC_MAX], rm[U256_DEC_MAX], rs[U256_DEC_MAX], reason[2100], details[2600];
    if (ledger_fmt_json_string(reason, sizeof reason, a->reason) != 0)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "reason is too long");
    snprintf(details, sizeof details,
             "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"amount\":\"%s\",\"after_burn\":%s,\"shares_released\":\"%s\","
             "\"shares_reminted\":\"%s\",\"reason\":%s}",
             a->order_id, w.vault_id, vault_store_dec(amt, &w.amount), burned ? "true" : "false",
             burned ? "0" : vault_store_dec(rs, &w.shares_reserved), vault_store_dec(rm, &reminted), reason);
    if ((c = ledger_audit(tx, burned ? "withdrawal.compensated" : "withdrawal.failed", "withdrawal", a->order_id,
                          w.client_id, details)) != RPC_OK ||
        (c = svc_withdrawal_event(tx, w.client_id, "withdrawal.failed", details)) != RPC_OK)
        return c;
    log_info("withdrawal.failed", "order_id=%s after_burn=%d shares_reminted=%s", a->order_id, burned, rm);
    if (!a->out)
        return RPC_OK;
    return svc_withdrawal_load(tx, a->out, &found, a->order_id, NULL);
}

static rpc_code svc_withdrawal_fail(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__FailWithdrawalRequest *req = (const Coffer__V1__FailWithdrawalRequest *)in;
    if (svc_withdrawal_check_id(ctx, req->order_id) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    size_t n = strlen(req->reason);
    if (n < 1 || n > 1000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "reason is required (1..1000 characters)");
    svc_withdrawal_op_arg a = {req->order_id, &((Coffer__V1__FailWithdrawalResponse *)out)->withdrawal, req->reason,
                               NULL};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_fail_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- GetWithdrawal / ListWithdrawals ---------------------------------------- */

static rpc_code svc_withdrawal_get_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_op_arg *a = argp;
    bool found = false;
    rpc_code c = svc_withdrawal_load(tx, a->out, &found, a->order_id, ledger_tx_client_id(tx));
    if (c == RPC_OK && !found)
        return ledger_fail(tx, RPC_NOT_FOUND, "withdrawal %s not found", a->order_id);
    return c;
}

static rpc_code svc_withdrawal_get(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__GetWithdrawalRequest *req = (const Coffer__V1__GetWithdrawalRequest *)in;
    if (svc_withdrawal_check_id(ctx, req->order_id) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    svc_withdrawal_op_arg a = {req->order_id, &((Coffer__V1__GetWithdrawalResponse *)out)->withdrawal, NULL, NULL};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_get_body, .arg = &a});
}

typedef struct {
    const Coffer__V1__ListWithdrawalsRequest *req;
    Coffer__V1__ListWithdrawalsResponse *resp;
    order_list_filter filter;
} svc_withdrawal_list_arg;

static rpc_code svc_withdrawal_fill_any(ledger_tx *tx, void *slot, const PGresult *res, int r)
{
    return svc_withdrawal_fill(tx, slot, res, r);
}

static const order_list_query svc_withdrawal_list_query = {
    "SELECT " SVC_WITHDRAWAL_COLUMNS
    "WHERE w.client_id = $1::uuid AND ($2::text IS NULL OR u.client_user_id = $2) "
    "AND ($3::text IS NULL OR w.status = $3) AND ($4::bigint IS NULL OR w.chain_id = $4) "
    "AND ($5::bigint IS NULL OR (w.created_at, w.id) < "
    "(timestamptz 'epoch' + $5::bigint * interval '1 microsecond', $6::uuid)) "
    "ORDER BY w.created_at DESC, w.id DESC LIMIT $7::integer",
    16, 20, svc_withdrawal_fill_any,
};

static rpc_code svc_withdrawal_list_body(ledger_tx *tx, void *argp)
{
    svc_withdrawal_list_arg *a = argp;
    void **items = NULL;
    size_t n = 0;
    rpc_code c = order_list_run(tx, &svc_withdrawal_list_query, &a->filter, &items, &n, &a->resp->next_page_token);
    a->resp->withdrawals = (Coffer__V1__Withdrawal **)items;
    a->resp->n_withdrawals = n;
    return c;
}

static rpc_code svc_withdrawal_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ListWithdrawalsRequest *req = (const Coffer__V1__ListWithdrawalsRequest *)in;
    svc_withdrawal_list_arg a = {.req = req, .resp = (Coffer__V1__ListWithdrawalsResponse *)out};
    a.filter = (order_list_filter){.client_user_id = req->client_user_id, .status = (int)req->status,
                                   .chain_id = req->chain_id};
    if (order_list_check(ctx, &a.filter, req->page_size, req->page_token) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    return ledger_run(ctx, &(ledger_run_options){.body = svc_withdrawal_list_body, .arg = &a});
}

/* ---- payouts through the transaction lifecycle (chain_jobs.c) ---------------- */

rpc_code svc_withdrawal_payout_settled(ledger_tx *tx, const char *withdrawal_id, bool paid, const char *reference)
{
    rpc_code c;
    const char *p[1] = {withdrawal_id};
    PGresult *res = ledger_query(tx, &c, "SELECT order_id, status FROM withdrawals WHERE id = $1::uuid", 1, p);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "withdrawal %s not found", withdrawal_id);
    }
    char order_id[64], status[32];
    snprintf(order_id, sizeof order_id, "%s", PQgetvalue(res, 0, 0));
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (strcmp(status, "PROVIDER_PROCESSING") != 0) {
        /* An operator settled it meanwhile (CompleteWithdrawal / FailWithdrawal): nothing left to do. */
        log_warn("withdrawal.payout_settled", "order_id=%s status=%s paid=%d action=none", order_id, status, paid);
        return RPC_OK;
    }
    svc_withdrawal_op_arg a = {order_id, NULL, paid ? NULL : reference, paid ? reference : NULL};
    return paid ? svc_withdrawal_complete_body(tx, &a) : svc_withdrawal_fail_body(tx, &a);
}

static const rpc_method_def svc_withdrawal_methods[] = {
    {"RequestWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_withdrawal_request,
     NULL},
    {"CancelWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_withdrawal_cancel, NULL},
    {"GetWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_withdrawal_get, NULL},
    {"ListWithdrawals", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_withdrawal_list, NULL},
    {"CompleteWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_withdrawal_complete,
     NULL},
    {"FailWithdrawal", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_withdrawal_fail, NULL},
};

const rpc_service_def svc_withdrawal_def = {
    &coffer__v1__withdrawal_service__descriptor,
    svc_withdrawal_methods,
    sizeof svc_withdrawal_methods / sizeof svc_withdrawal_methods[0],
};
