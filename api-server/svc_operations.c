/* coffer.v1.OperationsService: the operator's tools (admin token only).
 * Accrual, losses, pause and resume here; the audit log in ops_audit.c,
 * the invariants in ops_invariants.c, RunJob in ops_jobs.c.
 *
 * AccrueYield takes an observed total (what idle funds and protocol
 * positions are worth now). A gain goes through the accounting engine
 * (fee shares minted to the client's and the platform's revenue accounts,
 * the users' part raising the index at once or released linearly over
 * profit_unlock_seconds) and is booked where it arose: spread over the
 * vault's protocol allocations in proportion to their book balances
 * (remainder to the largest), so deployed_assets stays the sum of book
 * balances; a vault with nothing allocated books it as idle. A loss never
 * lowers the index here: the vault is paused with the reason and the call
 * answers OK with paused = true; an explicit RealizeLoss books it. */
#include "coffer/v1/operations.pb-c.h"
#include "ledger_db.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"
#include "ops_audit.h"
#include "ops_invariants.h"
#include "ops_jobs.h"
#include "rpc_server.h"
#include "services.h"
#include "vault_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_OPS_ALLOCATIONS_MAX 256

static rpc_code svc_ops_check_vault_id(rpc_ctx *ctx, const char *id)
{
    if (!ledger_fmt_is_uuid(id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "vault_id must be a uuid (as ListAllVaults shows it)");
    return RPC_OK;
}

static rpc_code svc_ops_check_reason(rpc_ctx *ctx, const char *reason, bool required)
{
    size_t n = strlen(reason);
    if ((required && n == 0) || n > 500)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "reason must be 1..500 characters");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "reason must not hold control characters");
    return RPC_OK;
}

static rpc_code svc_ops_lock_vault(ledger_tx *tx, vault_row *v, const char *vault_id)
{
    bool found = false;
    rpc_code c = vault_store_get(tx, v, &found, vault_id, true);
    if (c == RPC_OK && !found)
        return ledger_fail(tx, RPC_NOT_FOUND, "vault %s not found", vault_id);
    return c;
}

/* Books delta (a gain when gain, else a loss) over the vault's
 * allocations in proportion to their book balances, the remainder to the
 * largest; a loss never takes a balance below zero (the excess moves on
 * to the next largest). *spread false (nothing written) when the vault
 * has no allocation with a balance. */
static rpc_code svc_ops_spread(ledger_tx *tx, bool *spread, const vault_row *v, const u256 *delta, bool gain)
{
    const char *p[1] = {v->id};
    rpc_code c;
    *spread = false;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, book_balance FROM protocol_allocations WHERE vault_id = $1::uuid "
                                 "AND book_balance > 0 ORDER BY book_balance DESC, id FOR UPDATE",
                                 1, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    if (n == 0 || n > SVC_OPS_ALLOCATIONS_MAX) {
        PQclear(res);
        return n == 0 ? RPC_OK : ledger_fail(tx, RPC_FAILED_PRECONDITION, "too many allocations");
    }
    u256 bal[SVC_OPS_ALLOCATIONS_MAX], part[SVC_OPS_ALLOCATIONS_MAX];
    for (int r = 0; r < n; r++) {
        if ((c = ledger_get_u256(tx, &bal[r], res, r, 1, false)) != RPC_OK) {
            PQclear(res);
            return c;
        }
    }
    acct_err e = vault_store_split(part, bal, (size_t)n, delta, gain);
    if (e != ACCT_OK) {
        PQclear(res);
        return vault_store_acct_fail(tx, e, "allocations");
    }
    for (int r = 0; r < n; r++) {
        u256 nb;
        if ((gain ? u256_add(&nb, &bal[r], &part[r]) : u256_sub(&nb, &bal[r], &part[r])) != 0) {
            PQclear(res);
            return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "allocations");
        }
        char b[U256_DEC_MAX];
        const char *up[2] = {PQgetvalue(res, r, 0), vault_store_dec(b, &nb)};
        if ((c = ledger_exec(tx, NULL, "UPDATE protocol_allocations SET book_balance = $2::numeric WHERE id = $1::uuid",
                             2, up)) != RPC_OK) {
            PQclear(res);
            return c;
        }
    }
    PQclear(res);
    *spread = true;
    return RPC_OK;
}

/* ---- AccrueYield --------------------------------------------------------------- */

typedef struct {
    const Coffer__V1__AccrueYieldRequest *req;
    Coffer__V1__AccrueYieldResponse *resp;
    u256 observed;
} svc_ops_accrue_arg;

/* The accrual of an observed total into a locked, active vault (see
 * ops_jobs.h). books (may be NULL): the allocations' observed values, set
 * as their new book balances instead of spreading the gain pro rata. */
rpc_code ops_accrue_vault(ledger_tx *tx, vault_row *vp, const u256 *observed, const ops_alloc_book *books,
                          size_t n_books, ops_accrual *out)
{
    vault_row v = *vp;
    rpc_code c;
    memset(out, 0, sizeof *out);
    u256 before, book;
    acct_err e = acct_index(&before, &v.v, &v.params, v.now);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "index");
    out->index_before = before;
    if (u256_add(&book, &v.v.idle_assets, &v.v.deployed_assets) != 0)
        return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "book");
    char ob[U256_DEC_MAX], bk[U256_DEC_MAX], details[900];
    vault_store_dec(ob, observed);
    vault_store_dec(bk, &book);

    if (u256_cmp(observed, &book) < 0) {
        u256 loss;
        char ls[U256_DEC_MAX];
        if (u256_sub(&loss, &book, observed) != 0)
            return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "loss");
        vault_store_dec(ls, &loss);
        v.paused = true;
        snprintf(v.paused_reason, sizeof v.paused_reason,
                 "accrual observed %s below the book %s (loss %s): RealizeLoss books it, ResumeVault resumes", ob, bk,
                 ls);
        if ((c = vault_store_save(tx, &v)) != RPC_OK)
            return c;
        snprintf(details, sizeof details,
                 "{\"vault_id\":\"%s\",\"observed\":\"%s\",\"book\":\"%s\",\"loss\":\"%s\",\"paused\":true}", v.id, ob,
                 bk, ls);
        if ((c = ledger_audit(tx, "vault.loss_detected", "vault", v.id, v.client_id, details)) != RPC_OK)
            return c;
        log_warn("vault.loss_detected", "vault=%s observed=%s book=%s loss=%s", v.id, ob, bk, ls);
        out->paused = true;
        out->loss = loss;
        out->locked = v.v.locked_profit;
        *vp = v;
        return RPC_OK;
    }

    acct_accrual ac;
    e = acct_accrue(&v.v, &ac, &v.params, v.now, observed, &v.fees);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "accrual");
    if (!u256_is_zero(&ac.gross) && !u256_is_zero(&v.v.total_shares)) {
        position_row cr, pr;
        if ((c = vault_store_revenue(tx, &cr, &v, "client_revenue")) != RPC_OK ||
            (c = vault_store_revenue(tx, &pr, &v, "platform_revenue")) != RPC_OK)
            return c;
        if (u256_add(&cr.pos.shares, &cr.pos.shares, &ac.client_fee_shares) != 0 ||
            u256_add(&pr.pos.shares, &pr.pos.shares, &ac.platform_fee_shares) != 0)
            return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "fee shares");
        if ((c = vault_store_position_save(tx, &cr)) != RPC_OK || (c = vault_store_position_save(tx, &pr)) != RPC_OK)
            return c;
    }
    if (books && !u256_is_zero(&ac.gross)) {
        /* Each allocation takes the value read on chain; their sum is the
         * new deployed book (the caller derived observed from them). */
        u256 sum = U256_ZERO;
        for (size_t i = 0; i < n_books; i++) {
            if (u256_add(&sum, &sum, &books[i].book) != 0)
                return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "allocations");
            char b[U256_DEC_MAX];
            const char *up[2] = {books[i].id, vault_store_dec(b, &books[i].book)};
            if ((c = ledger_exec(tx, NULL,
                                 "UPDATE protocol_allocations SET book_balance = $2::numeric WHERE id = $1::uuid", 2,
                                 up)) != RPC_OK)
                return c;
        }
        if (u256_cmp(&sum, &v.v.deployed_assets) != 0)
            return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "allocations");
    } else if (!u256_is_zero(&ac.gross)) {
        /* The engine books the gain as deployed; keep deployed = Σ book. */
        bool spread = false;
        if ((c = svc_ops_spread(tx, &spread, &v, &ac.gross, true)) != RPC_OK)
            return c;
        if (!spread && (u256_sub(&v.v.deployed_assets, &v.v.deployed_assets, &ac.gross) != 0 ||
                        u256_add(&v.v.idle_assets, &v.v.idle_assets, &ac.gross) != 0))
            return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "accrual");
    } else {
        /* No gain: the recorded index still catches up with released profit. */
        u256 now_index;
        if (acct_index(&now_index, &v.v, &v.params, v.now) == ACCT_OK && u256_cmp(&now_index, &v.v.current_index) > 0)
            v.v.current_index = now_index;
    }
    if ((c = vault_store_save(tx, &v)) != RPC_OK || (c = vault_store_index_history(tx, &v, false)) != RPC_OK)
        return c;
    u256 locked;
    if ((e = acct_locked_now(&locked, &v.v, &v.params, v.now)) != ACCT_OK)
        return vault_store_acct_fail(tx, e, "locked profit");
    char g[U256_DEC_MAX], cf[U256_DEC_MAX], pf[U256_DEC_MAX], up[U256_DEC_MAX], ib[U256_DEC_MAX], ia[U256_DEC_MAX];
    snprintf(details, sizeof details,
             "{\"vault_id\":\"%s\",\"observed\":\"%s\",\"book\":\"%s\",\"gross\":\"%s\",\"user_part\":\"%s\","
             "\"client_fee_shares\":\"%s\",\"platform_fee_shares\":\"%s\",\"index_before\":\"%s\",\"index_after\":\"%s\"}",
             v.id, ob, bk, vault_store_dec(g, &ac.gross), vault_store_dec(up, &ac.user_part),
             vault_store_dec(cf, &ac.client_fee_shares), vault_store_dec(pf, &ac.platform_fee_shares),
             vault_store_dec(ib, &before), vault_store_dec(ia, &v.v.current_index));
    if ((c = ledger_audit(tx, "vault.accrued", "vault", v.id, v.client_id, details)) != RPC_OK)
        return c;
    log_info("vault.accrued", "vault=%s gross=%s index=%s", v.id, g, ia);
    out->gross = ac.gross;
    out->client_fee_shares = ac.client_fee_shares;
    out->platform_fee_shares = ac.platform_fee_shares;
    out->locked = locked;
    *vp = v;
    return RPC_OK;
}

static rpc_code svc_ops_accrue_body(ledger_tx *tx, void *argp)
{
    svc_ops_accrue_arg *a = argp;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__AccrueYieldResponse *r = a->resp;
    vault_row v;
    rpc_code c;
    if ((c = svc_ops_lock_vault(tx, &v, a->req->vault_id)) != RPC_OK)
        return c;
    if (v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s is paused (%s): accrual waits for RealizeLoss or "
                           "ResumeVault", v.id, v.paused_reason);
    ops_accrual o;
    if ((c = ops_accrue_vault(tx, &v, &a->observed, NULL, 0, &o)) != RPC_OK)
        return c;
    u256 zero = U256_ZERO;
    r->index_before = ledger_pb_u256(ctx, &o.index_before);
    r->paused = o.paused;
    r->loss = ledger_pb_u256(ctx, o.paused ? &o.loss : &zero);
    r->gross_yield = ledger_pb_u256(ctx, &o.gross);
    r->client_fee_shares = ledger_pb_u256(ctx, &o.client_fee_shares);
    r->platform_fee_shares = ledger_pb_u256(ctx, &o.platform_fee_shares);
    r->locked_profit = ledger_pb_u256(ctx, &o.locked);
    if (!r->index_before || !r->loss || !r->gross_yield || !r->client_fee_shares || !r->platform_fee_shares ||
        !r->locked_profit)
        return ledger_pb_oom(tx);
    return ledger_pb_vault(tx, &r->vault, &v);
}

static rpc_code svc_ops_accrue(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__AccrueYieldRequest *req = (const Coffer__V1__AccrueYieldRequest *)in;
    svc_ops_accrue_arg a = {.req = req, .resp = (Coffer__V1__AccrueYieldResponse *)out};
    char msg[RPC_MESSAGE_MAX];
    if (svc_ops_check_vault_id(ctx, req->vault_id) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    const char *t = req->observed_total_assets;
    if (t && strcmp(t, "0") == 0)
        a.observed = U256_ZERO;
    else if (ledger_fmt_parse_amount(&a.observed, msg, sizeof msg, "observed_total_assets", t) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_accrue_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- RealizeLoss --------------------------------------------------------------- */

typedef struct {
    const Coffer__V1__RealizeLossRequest *req;
    Coffer__V1__RealizeLossResponse *resp;
    u256 observed;
} svc_ops_loss_arg;

static rpc_code svc_ops_loss_body(ledger_tx *tx, void *argp)
{
    svc_ops_loss_arg *a = argp;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__RealizeLossResponse *r = a->resp;
    vault_row v;
    rpc_code c;
    if ((c = svc_ops_lock_vault(tx, &v, a->req->vault_id)) != RPC_OK)
        return c;
    u256 before, locked, loss, by_locked, by_surplus, by_holders, rest, book;
    acct_err e = acct_index(&before, &v.v, &v.params, v.now);
    if (e == ACCT_OK)
        e = acct_locked_now(&locked, &v.v, &v.params, v.now);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "index");
    u256 surplus_before = v.v.surplus;
    if (u256_add(&book, &v.v.idle_assets, &v.v.deployed_assets) != 0)
        return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "book");
    char ob[U256_DEC_MAX], bk[U256_DEC_MAX], dp[U256_DEC_MAX];
    vault_store_dec(ob, &a->observed);
    vault_store_dec(bk, &book);
    e = acct_realize_loss(&v.v, &loss, &v.params, v.now, &a->observed);
    if (e == ACCT_ERR_NO_LOSS)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "no loss to realize: observed %s is not below the book %s",
                           ob, bk);
    if (e == ACCT_ERR_INCONSISTENT && u256_cmp(&a->observed, &v.v.idle_assets) < 0)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "the loss exceeds the deployed assets %s: idle assets are "
                           "counted exactly and only protocol positions can lose (observed %s, book %s)",
                           vault_store_dec(dp, &v.v.deployed_assets), ob, bk);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, "realize loss");
    by_locked = u256_cmp(&loss, &locked) <= 0 ? loss : locked;
    if (u256_sub(&rest, &loss, &by_locked) != 0)
        return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "loss");
    by_surplus = u256_cmp(&rest, &surplus_before) <= 0 ? rest : surplus_before;
    if (u256_sub(&by_holders, &rest, &by_surplus) != 0)
        return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "loss");
    bool spread = false;
    if ((c = svc_ops_spread(tx, &spread, &v, &loss, false)) != RPC_OK)
        return c;
    if (!spread)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s has no protocol allocation to book the loss against",
                           v.id);
    if ((c = vault_store_save(tx, &v)) != RPC_OK || (c = vault_store_index_history(tx, &v, true)) != RPC_OK)
        return c;
    char ls[U256_DEC_MAX], bl[U256_DEC_MAX], bs[U256_DEC_MAX], bh[U256_DEC_MAX], ib[U256_DEC_MAX], ia[U256_DEC_MAX],
        reason[1100], details[2000];
    if (ledger_fmt_json_string(reason, sizeof reason, a->req->reason) != 0)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "reason is too long");
    snprintf(details, sizeof details,
             "{\"vault_id\":\"%s\",\"observed\":\"%s\",\"book\":\"%s\",\"loss\":\"%s\",\"absorbed_by_locked_profit\":\"%s\","
             "\"absorbed_by_surplus\":\"%s\",\"absorbed_by_holders\":\"%s\",\"index_before\":\"%s\","
             "\"index_after\":\"%s\",\"reason\":%s}",
             v.id, ob, bk, vault_store_dec(ls, &loss), vault_store_dec(bl, &by_locked), vault_store_dec(bs, &by_surplus),
             vault_store_dec(bh, &by_holders), vault_store_dec(ib, &before), vault_store_dec(ia, &v.v.current_index),
             reason);
    if ((c = ledger_audit(tx, "vault.loss_realized", "vault", v.id, v.client_id, details)) != RPC_OK)
        return c;
    log_warn("vault.loss_realized", "vault=%s loss=%s index_before=%s index_after=%s", v.id, ls, ib, ia);
    r->loss = ledger_pb_u256(ctx, &loss);
    r->absorbed_by_locked_profit = ledger_pb_u256(ctx, &by_locked);
    r->absorbed_by_surplus = ledger_pb_u256(ctx, &by_surplus);
    r->absorbed_by_holders = ledger_pb_u256(ctx, &by_holders);
    r->index_before = ledger_pb_u256(ctx, &before);
    if (!r->loss || !r->absorbed_by_locked_profit || !r->absorbed_by_surplus || !r->absorbed_by_holders ||
        !r->index_before)
        return ledger_pb_oom(tx);
    return ledger_pb_vault(tx, &r->vault, &v);
}

static rpc_code svc_ops_loss(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RealizeLossRequest *req = (const Coffer__V1__RealizeLossRequest *)in;
    svc_ops_loss_arg a = {.req = req, .resp = (Coffer__V1__RealizeLossResponse *)out};
    char msg[RPC_MESSAGE_MAX];
    if (svc_ops_check_vault_id(ctx, req->vault_id) != RPC_OK || svc_ops_check_reason(ctx, req->reason, true) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    if (strcmp(req->observed_total_assets, "0") == 0)
        a.observed = U256_ZERO;
    else if (ledger_fmt_parse_amount(&a.observed, msg, sizeof msg, "observed_total_assets",
                                     req->observed_total_assets) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_loss_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- PauseVault / ResumeVault ------------------------------------------------------ */

typedef struct {
    const char *vault_id;
    const char *reason;
    bool pause;
    Coffer__V1__Vault **out;
} svc_ops_pause_arg;

static rpc_code svc_ops_pause_body(ledger_tx *tx, void *argp)
{
    svc_ops_pause_arg *a = argp;
    vault_row v;
    rpc_code c;
    if ((c = svc_ops_lock_vault(tx, &v, a->vault_id)) != RPC_OK)
        return c;
    if (a->pause && v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s is already paused: %s", v.id, v.paused_reason);
    if (!a->pause && !v.paused)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "vault %s is not paused", v.id);
    char was[VAULT_STORE_REASON_MAX];
    snprintf(was, sizeof was, "%s", v.paused_reason);
    v.paused = a->pause;
    snprintf(v.paused_reason, sizeof v.paused_reason, "%s", a->pause ? a->reason : "");
    if ((c = vault_store_save(tx, &v)) != RPC_OK)
        return c;
    char reason[1100], prev[1100], details[2400];
    if (ledger_fmt_json_string(reason, sizeof reason, a->reason) != 0 ||
        ledger_fmt_json_string(prev, sizeof prev, was) != 0)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "reason is too long");
    snprintf(details, sizeof details, "{\"vault_id\":\"%s\",\"reason\":%s,\"paused_reason_before\":%s}", v.id, reason,
             prev);
    if ((c = ledger_audit(tx, a->pause ? "vault.paused" : "vault.resumed", "vault", v.id, v.client_id, details)) !=
        RPC_OK)
        return c;
    log_info(a->pause ? "vault.paused" : "vault.resumed", "vault=%s", v.id);
    return ledger_pb_vault(tx, a->out, &v);
}

static rpc_code svc_ops_pause(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__PauseVaultRequest *req = (const Coffer__V1__PauseVaultRequest *)in;
    if (svc_ops_check_vault_id(ctx, req->vault_id) != RPC_OK || svc_ops_check_reason(ctx, req->reason, true) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    svc_ops_pause_arg a = {req->vault_id, req->reason, true, &((Coffer__V1__PauseVaultResponse *)out)->vault};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_pause_body, .arg = &a, .response = out,
                                                 .request = in});
}

static rpc_code svc_ops_resume(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ResumeVaultRequest *req = (const Coffer__V1__ResumeVaultRequest *)in;
    if (svc_ops_check_vault_id(ctx, req->vault_id) != RPC_OK || svc_ops_check_reason(ctx, req->reason, true) != RPC_OK)
        return RPC_INVALID_ARGUMENT;
    svc_ops_pause_arg a = {req->vault_id, req->reason, false, &((Coffer__V1__ResumeVaultResponse *)out)->vault};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_pause_body, .arg = &a, .response = out,
                                                 .request = in});
}

/* ---- ListAllVaults ------------------------------------------------------------------ */

typedef struct {
    const char *client_id;
    Coffer__V1__ListAllVaultsResponse *resp;
} svc_ops_vaults_arg;

static rpc_code svc_ops_vaults_body(ledger_tx *tx, void *argp)
{
    svc_ops_vaults_arg *a = argp;
    vault_row *vs = NULL;
    size_t n = 0;
    rpc_code c = vault_store_list(tx, &vs, &n, a->client_id, NULL);
    if (c != RPC_OK)
        return c;
    a->resp->n_vaults = 0;
    a->resp->vaults = rpc_ctx_alloc(ledger_tx_ctx(tx), (n ? n : 1) * sizeof *a->resp->vaults);
    if (!a->resp->vaults) {
        free(vs);
        return ledger_pb_oom(tx);
    }
    for (size_t i = 0; i < n && c == RPC_OK; i++) {
        c = ledger_pb_vault(tx, &a->resp->vaults[i], &vs[i]);
        if (c == RPC_OK)
            a->resp->n_vaults++;
    }
    free(vs);
    return c;
}

static rpc_code svc_ops_vaults(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ListAllVaultsRequest *req = (const Coffer__V1__ListAllVaultsRequest *)in;
    if (req->client_id[0] && !ledger_fmt_is_uuid(req->client_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "client_id must be a uuid");
    svc_ops_vaults_arg a = {req->client_id[0] ? req->client_id : NULL, (Coffer__V1__ListAllVaultsResponse *)out};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_vaults_body, .arg = &a});
}

/* ---- UpsertProtocol / ListProtocols -------------------------------------------------- */

static const char *const svc_ops_categories[] = {NULL, "lending", "lp", "staking"};
static const char *const svc_ops_adapters[] = {NULL, "aave_v3", "compound_v3", "erc4626"};
/* Address keys each adapter needs (exactly these). */
static const char *const svc_ops_adapter_keys[][3] = {
    {NULL}, {"pool", "a_token", NULL}, {"comet", NULL}, {"vault", NULL}};

#define SVC_OPS_PROTOCOL_COLUMNS                                                                              \
    "id, name, chain_id, category, adapter, '0x' || encode(token_address, 'hex'), addresses::text, apy_bps, " \
    "active, (extract(epoch FROM updated_at) * 1000000)::bigint FROM supported_protocols "

static rpc_code svc_ops_protocol_fill(ledger_tx *tx, Coffer__V1__Protocol **out, const PGresult *res, int r)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    Coffer__V1__Protocol *p = rpc_ctx_alloc(ctx, sizeof *p);
    if (!p)
        return ledger_pb_oom(tx);
    coffer__v1__protocol__init(p);
    p->protocol_id = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 0));
    p->name = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 1));
    p->chain_id = strtoull(PQgetvalue(res, r, 2), NULL, 10);
    for (int i = 1; i < 4; i++) {
        if (strcmp(PQgetvalue(res, r, 3), svc_ops_categories[i]) == 0)
            p->category = (Coffer__V1__StrategyCategory)i;
        if (strcmp(PQgetvalue(res, r, 4), svc_ops_adapters[i]) == 0)
            p->adapter = (Coffer__V1__ProtocolAdapter)i;
    }
    p->token_address = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 5));
    p->apy_bps = (uint32_t)strtoul(PQgetvalue(res, r, 7), NULL, 10);
    p->active = strcmp(PQgetvalue(res, r, 8), "t") == 0;
    p->updated_at = ledger_pb_timestamp(ctx, strtoll(PQgetvalue(res, r, 9), NULL, 10));
    if (!p->protocol_id || !p->name || !p->token_address || !p->updated_at)
        return ledger_pb_oom(tx);
    json_t *root = json_loads(PQgetvalue(res, r, 6), 0, NULL);
    size_t n = json_is_object(root) ? json_object_size(root) : 0;
    p->addresses = rpc_ctx_alloc(ctx, (n ? n : 1) * sizeof *p->addresses);
    if (!p->addresses) {
        json_decref(root);
        return ledger_pb_oom(tx);
    }
    const char *k;
    json_t *val;
    if (n)
        json_object_foreach(root, k, val) {
            Coffer__V1__Protocol__AddressesEntry *e = rpc_ctx_alloc(ctx, sizeof *e);
            if (!e) {
                json_decref(root);
                return ledger_pb_oom(tx);
            }
            coffer__v1__protocol__addresses_entry__init(e);
            e->key = rpc_ctx_strdup(ctx, k);
            e->value = rpc_ctx_strdup(ctx, json_string_value(val) ? json_string_value(val) : "");
            if (!e->key || !e->value) {
                json_decref(root);
                return ledger_pb_oom(tx);
            }
            p->addresses[p->n_addresses++] = e;
        }
    json_decref(root);
    *out = p;
    return RPC_OK;
}

typedef struct {
    const Coffer__V1__Protocol *in;
    Coffer__V1__UpsertProtocolResponse *resp;
    const char *addresses;
} svc_ops_upsert_arg;

static rpc_code svc_ops_upsert_body(ledger_tx *tx, void *argp)
{
    svc_ops_upsert_arg *a = argp;
    const Coffer__V1__Protocol *p = a->in;
    char chain[24], apy[16];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)p->chain_id);
    snprintf(apy, sizeof apy, "%u", p->apy_bps);
    const char *q[8] = {p->name, chain, svc_ops_categories[p->category], svc_ops_adapters[p->adapter],
                        p->token_address + 2, a->addresses, apy, p->active ? "true" : "false"};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "INSERT INTO supported_protocols (name, chain_id, category, adapter, token_address, "
                                 "addresses, apy_bps, active) VALUES ($1, $2::bigint, $3, $4, decode($5, 'hex'), "
                                 "$6::jsonb, $7::integer, $8::boolean) ON CONFLICT (name, chain_id) DO UPDATE SET "
                                 "category = EXCLUDED.category, adapter = EXCLUDED.adapter, "
                                 "token_address = EXCLUDED.token_address, addresses = EXCLUDED.addresses, "
                                 "apy_bps = EXCLUDED.apy_bps, active = EXCLUDED.active "
                                 "RETURNING id, (xmax = 0)",
                                 8, q);
    if (!res)
        return c;
    char id[VAULT_STORE_ID_MAX];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    a->resp->created = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    char details[1400];
    snprintf(details, sizeof details,
             "{\"protocol_id\":\"%s\",\"name\":\"%s\",\"chain_id\":%s,\"category\":\"%s\",\"adapter\":\"%s\","
             "\"token_address\":\"%s\",\"addresses\":%s,\"apy_bps\":%s,\"active\":%s,\"created\":%s}",
             id, p->name, chain, q[2], q[3], p->token_address, a->addresses, apy, q[7],
             a->resp->created ? "true" : "false");
    if ((c = ledger_audit(tx, "protocol.upserted", "protocol", id, NULL, details)) != RPC_OK)
        return c;
    const char *ip[1] = {id};
    res = ledger_query(tx, &c, "SELECT " SVC_OPS_PROTOCOL_COLUMNS "WHERE id = $1::uuid", 1, ip);
    if (!res)
        return c;
    c = PQntuples(res) == 1 ? svc_ops_protocol_fill(tx, &a->resp->protocol, res, 0)
                            : ledger_fail(tx, RPC_INTERNAL, "internal error: the protocol is not readable");
    PQclear(res);
    return c;
}

static rpc_code svc_ops_upsert(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__UpsertProtocolRequest *req = (const Coffer__V1__UpsertProtocolRequest *)in;
    const Coffer__V1__Protocol *p = req->protocol;
    if (!p)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "protocol is required");
    size_t nl = strlen(p->name);
    bool name_ok = nl >= 1 && nl <= 64 && ((p->name[0] >= 'a' && p->name[0] <= 'z') || (p->name[0] >= '0' && p->name[0] <= '9'));
    for (size_t i = 0; name_ok && i < nl; i++) {
        char ch = p->name[i];
        name_ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
    }
    if (!name_ok)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "name must be 1..64 of [a-z0-9_.-], starting with a letter or digit");
    if (p->chain_id == 0 || p->chain_id > INT64_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id is required");
    if (p->category <= 0 || p->category > 3)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "category must be LENDING, LP or STAKING");
    if (p->adapter <= 0 || p->adapter > 3)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "adapter must be AAVE_V3, COMPOUND_V3 or ERC4626");
    if (!ledger_fmt_is_address(p->token_address))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "token_address must be 0x followed by 40 hex digits");
    if (p->apy_bps > 1000000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "apy_bps must be at most 1000000");
    const char *const *keys = svc_ops_adapter_keys[p->adapter];
    size_t want = 0;
    while (keys[want])
        want++;
    if (p->n_addresses != want)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "adapter %s needs exactly the addresses %s%s%s",
                            svc_ops_adapters[p->adapter], keys[0], keys[1] ? ", " : "", keys[1] ? keys[1] : "");
    json_t *root = json_object();
    for (size_t i = 0; i < p->n_addresses; i++) {
        const Coffer__V1__Protocol__AddressesEntry *e = p->addresses[i];
        bool known = false;
        for (size_t k = 0; k < want; k++)
            known = known || strcmp(e->key, keys[k]) == 0;
        if (!known || json_object_get(root, e->key) || !ledger_fmt_is_address(e->value)) {
            json_decref(root);
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "addresses[\"%.32s\"]: adapter %s needs %s%s%s, each 0x "
                                "followed by 40 hex digits", e->key, svc_ops_adapters[p->adapter], keys[0],
                                keys[1] ? " and " : "", keys[1] ? keys[1] : "");
        }
        char lower[43];
        for (size_t j = 0; j < 42; j++)
            lower[j] = (char)(e->value[j] >= 'A' && e->value[j] <= 'F' ? e->value[j] - 'A' + 'a' : e->value[j]);
        lower[1] = 'x';
        lower[42] = '\0';
        json_object_set_new(root, e->key, json_string(lower));
    }
    char *js = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!js)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    svc_ops_upsert_arg a = {p, (Coffer__V1__UpsertProtocolResponse *)out, js};
    rpc_code c = ledger_run(ctx, &(ledger_run_options){.body = svc_ops_upsert_body, .arg = &a, .response = out,
                                                       .request = in});
    free(js);
    return c;
}

typedef struct {
    const Coffer__V1__ListProtocolsRequest *req;
    Coffer__V1__ListProtocolsResponse *resp;
} svc_ops_protocols_arg;

static rpc_code svc_ops_protocols_body(ledger_tx *tx, void *argp)
{
    svc_ops_protocols_arg *a = argp;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->req->chain_id);
    const char *p[2] = {a->req->chain_id ? chain : NULL, a->req->active_only ? "true" : "false"};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT " SVC_OPS_PROTOCOL_COLUMNS "WHERE ($1::bigint IS NULL OR chain_id = $1::bigint) "
                                 "AND (NOT $2::boolean OR active) ORDER BY chain_id, name",
                                 2, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    a->resp->n_protocols = 0;
    a->resp->protocols = rpc_ctx_alloc(ledger_tx_ctx(tx), (size_t)(n ? n : 1) * sizeof *a->resp->protocols);
    if (!a->resp->protocols) {
        PQclear(res);
        return ledger_pb_oom(tx);
    }
    for (int r = 0; r < n && c == RPC_OK; r++) {
        c = svc_ops_protocol_fill(tx, &a->resp->protocols[r], res, r);
        if (c == RPC_OK)
            a->resp->n_protocols++;
    }
    PQclear(res);
    return c;
}

static rpc_code svc_ops_protocols(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    svc_ops_protocols_arg a = {(const Coffer__V1__ListProtocolsRequest *)in, (Coffer__V1__ListProtocolsResponse *)out};
    return ledger_run(ctx, &(ledger_run_options){.body = svc_ops_protocols_body, .arg = &a});
}

static const rpc_method_def svc_operations_methods[] = {
    {"RunJob", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, ops_jobs_run, NULL},
    {"AccrueYield", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_ops_accrue, NULL},
    {"RealizeLoss", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_ops_loss, NULL},
    {"PauseVault", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_ops_pause, NULL},
    {"ResumeVault", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_ops_resume, NULL},
    {"CheckInvariants", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, ops_invariants_check, NULL},
    {"ListAuditLog", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, ops_audit_list, NULL},
    {"VerifyAuditChain", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, ops_audit_verify_chain, NULL},
    {"UpsertProtocol", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_ops_upsert, NULL},
    {"ListProtocols", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, svc_ops_protocols, NULL},
    {"ListAllVaults", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, svc_ops_vaults, NULL},
};

const rpc_service_def svc_operations_def = {
    &coffer__v1__operations_service__descriptor,
    svc_operations_methods,
    sizeof svc_operations_methods / sizeof svc_operations_methods[0],
};
