#include "ops_jobs.h"

#include "chain_jobs.h"
#include "coffer/v1/operations.pb-c.h"
#include "ledger_db.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"
#include "metrics.h"
#include "services.h"
#include "vault_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPS_JOBS_BATCH "1000" /* queued withdrawals looked at per vault and run */

void ops_jobs_line(ops_jobs_report *r, const char *fmt, ...)
{
    if (!r->buf || r->len + 2 >= OPS_JOBS_REPORT_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->buf + r->len, OPS_JOBS_REPORT_MAX - r->len - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    r->len += (size_t)n < OPS_JOBS_REPORT_MAX - r->len - 1 ? (size_t)n : OPS_JOBS_REPORT_MAX - r->len - 2;
    r->buf[r->len++] = '\n';
    r->buf[r->len] = '\0';
}

void ops_jobs_merge(ops_jobs_report *dst, const ops_jobs_report *src)
{
    dst->done += src->done;
    dst->failed += src->failed;
    dst->skipped += src->skipped;
    if (src->len && dst->buf && dst->len + src->len + 1 < OPS_JOBS_REPORT_MAX) {
        memcpy(dst->buf + dst->len, src->buf, src->len + 1);
        dst->len += src->len;
    }
}

typedef struct {
    const char *vault_id;
    ops_jobs_report vr; /* this vault's part, rebuilt on every attempt */
    char vbuf[OPS_JOBS_REPORT_MAX];
    u256 in_flight;     /* supplies not yet settled: their tokens left the wallet */
} ops_jobs_vault_arg;

/* Burns one queued withdrawal (row r of res) or leaves it; v is locked. */
static rpc_code ops_jobs_burn_one(ledger_tx *tx, ops_jobs_vault_arg *a, vault_row *v, const PGresult *res, int r)
{
    const char *wid = PQgetvalue(res, r, 0), *order_id = PQgetvalue(res, r, 1), *user = PQgetvalue(res, r, 2);
    u256 amount, reserved, free_idle, burned, index;
    rpc_code c;
    char amt[U256_DEC_MAX], fi[U256_DEC_MAX];
    if ((c = ledger_get_u256(tx, &amount, res, r, 3, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &reserved, res, r, 4, false)) != RPC_OK)
        return c;
    vault_store_dec(amt, &amount);
    if (u256_sub(&free_idle, &v->v.idle_assets, &v->v.withdrawals_payable) != 0 ||
        u256_sub(&free_idle, &free_idle, &a->in_flight) != 0)
        free_idle = U256_ZERO;
    if (u256_cmp(&amount, &free_idle) > 0) {
        a->vr.skipped++;
        ops_jobs_line(&a->vr, "%s: queued: amount %s exceeds free idle assets %s of vault %s (waits for unstaking)",
                      order_id, amt, vault_store_dec(fi, &free_idle), v->id);
        return RPC_OK;
    }
    position_row pos;
    bool found = false;
    if ((c = vault_store_position(tx, &pos, &found, v, user, false)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: withdrawal %s has no position", order_id);
    acct_err e = acct_index(&index, &v->v, &v->params, v->now);
    vault_row before = *v;
    if (e == ACCT_OK)
        e = acct_execute_withdrawal(&v->v, &pos.pos, &burned, &v->params, v->now, &amount, &reserved);
    const char *p1[1] = {wid};
    char rs[U256_DEC_MAX], bs[U256_DEC_MAX], ix[U256_DEC_MAX], details[600];
    if (e == ACCT_ERR_RESERVATION_SHORT) {
        /* The price fell (a realized loss) below what was reserved: give
         * the shares back and let the user ask again. */
        *v = before;
        if ((e = acct_release(&pos.pos, &reserved)) != ACCT_OK)
            return vault_store_acct_fail(tx, e, "release");
        const char *p2[1] = {wid};
        if ((c = ledger_exec(tx, NULL,
                             "UPDATE reservations SET status = 'released', closed_at = now() "
                             "WHERE withdrawal_id = $1::uuid AND status = 'held'", 1, p2)) != RPC_OK ||
            (c = ledger_exec(tx, NULL,
                             "UPDATE withdrawals SET status = 'FAILED', failure_reason = 'the reserved shares no "
                             "longer cover the amount at the current index (a loss was realized); the reservation "
                             "was released: request the withdrawal again' WHERE id = $1::uuid", 1, p1)) != RPC_OK ||
            (c = vault_store_position_save(tx, &pos)) != RPC_OK)
            return c;
        snprintf(details, sizeof details, "{\"order_id\":\"%s\",\"amount\":\"%s\",\"shares_released\":\"%s\"}",
                 order_id, amt, vault_store_dec(rs, &reserved));
        if ((c = ledger_audit(tx, "withdrawal.failed", "withdrawal", order_id, v->client_id, details)) != RPC_OK)
            return c;
        a->vr.failed++;
        ops_jobs_line(&a->vr, "%s: failed: the reservation no longer covers %s at today's index; released", order_id,
                      amt);
        return RPC_OK;
    }
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, order_id);
    vault_store_dec(bs, &burned);
    vault_store_dec(ix, &index);
    const char *up[3] = {wid, bs, ix};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE reservations SET status = 'consumed', closed_at = now() "
                         "WHERE withdrawal_id = $1::uuid AND status = 'held'", 1, p1)) != RPC_OK ||
        (c = ledger_exec(tx, NULL,
                         "UPDATE withdrawals SET status = 'PROVIDER_PROCESSING', sub_status = 'PAYOUT_PENDING', "
                         "shares_burned = $2::numeric, index_at_burn = $3::numeric WHERE id = $1::uuid",
                         3, up)) != RPC_OK ||
        (c = vault_store_position_save(tx, &pos)) != RPC_OK)
        return c;
    snprintf(details, sizeof details,
             "{\"order_id\":\"%s\",\"vault_id\":\"%s\",\"amount\":\"%s\",\"shares_reserved\":\"%s\","
             "\"shares_burned\":\"%s\",\"index\":\"%s\"}",
             order_id, v->id, amt, vault_store_dec(rs, &reserved), bs, ix);
    if ((c = ledger_audit(tx, "withdrawal.burned", "withdrawal", order_id, v->client_id, details)) != RPC_OK)
        return c;
    a->vr.done++;
    ops_jobs_line(&a->vr, "%s: burned %s shares (reserved %s) at index %s; payout pending for %s", order_id, bs, rs,
                  ix, amt);
    return RPC_OK;
}

static rpc_code ops_jobs_vault_body(ledger_tx *tx, void *argp)
{
    ops_jobs_vault_arg *a = argp;
    memset(&a->vr, 0, sizeof a->vr);
    a->vr.buf = a->vbuf;
    a->vbuf[0] = '\0';
    ledger_tx_set_actor(tx, "job:withdrawals");
    rpc_code c;
    const char *p[1] = {a->vault_id};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT pg_try_advisory_xact_lock(hashtextextended('coffer.job.withdrawals:' || $1, 0))",
                                 1, p);
    if (!res)
        return c;
    bool mine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!mine) {
        a->vr.skipped++;
        ops_jobs_line(&a->vr, "vault %s: skipped: another replica is running the withdrawals job for it", a->vault_id);
        return RPC_OK;
    }
    vault_row v;
    bool found = false;
    if ((c = vault_store_get(tx, &v, &found, a->vault_id, true)) != RPC_OK)
        return c;
    if (!found)
        return RPC_OK;
    if ((c = chain_tx_pending_amount(tx, &a->in_flight, v.id, "supply")) != RPC_OK)
        return c;
    res = ledger_query(tx, &c,
                       "SELECT id, order_id, end_user_id, amount, shares_reserved FROM withdrawals "
                       "WHERE vault_id = $1::uuid AND status = 'BALANCE_RESERVED' "
                       "ORDER BY created_at, id LIMIT " OPS_JOBS_BATCH " FOR UPDATE SKIP LOCKED",
                       1, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    if (n > 0 && v.paused) {
        a->vr.skipped += (uint32_t)n;
        ops_jobs_line(&a->vr, "vault %s: %d queued withdrawals wait: the vault is paused (%s)", v.id, n,
                      v.paused_reason);
        PQclear(res);
        return RPC_OK;
    }
    for (int r = 0; r < n && c == RPC_OK; r++)
        c = ops_jobs_burn_one(tx, a, &v, res, r);
    PQclear(res);
    if (c != RPC_OK || a->vr.done + a->vr.failed == 0)
        return c;
    return vault_store_save(tx, &v);
}

typedef struct {
    const char *vault_id;
    uint64_t chain_id; /* 0: any */
    char (*ids)[VAULT_STORE_ID_MAX];
    size_t n;
} ops_jobs_list_arg;

static rpc_code ops_jobs_list_body(ledger_tx *tx, void *argp)
{
    ops_jobs_list_arg *a = argp;
    vault_row *vs = NULL;
    size_t n = 0;
    rpc_code c = vault_store_list(tx, &vs, &n, NULL, a->vault_id);
    if (c != RPC_OK)
        return c;
    free(a->ids);
    a->ids = n ? calloc(n, sizeof *a->ids) : NULL;
    a->n = 0;
    if (n && !a->ids) {
        free(vs);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (!a->chain_id || vs[i].chain_id == a->chain_id)
            memcpy(a->ids[a->n++], vs[i].id, VAULT_STORE_ID_MAX);
    free(vs);
    return RPC_OK;
}

rpc_code ops_jobs_vault_ids(const ops_jobs_env *env, char (**ids)[VAULT_STORE_ID_MAX], size_t *n, char *msg,
                            size_t msg_len, const char *vault_id, uint64_t chain_id)
{
    ops_jobs_list_arg la = {vault_id, chain_id, NULL, 0};
    rpc_code c = ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, msg_len, ops_jobs_list_body, &la);
    if (c != RPC_OK) {
        free(la.ids);
        la.ids = NULL;
        la.n = 0;
    }
    *ids = la.ids;
    *n = la.n;
    return c;
}

static int64_t ops_jobs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The ledger part of withdrawals, one transaction per vault. */
static rpc_code ops_jobs_withdrawals(const ops_jobs_env *env, ops_jobs_report *all, char *msg, size_t msg_len,
                                     char (*ids)[VAULT_STORE_ID_MAX], size_t n)
{
    ops_jobs_vault_arg *va = malloc(sizeof *va);
    if (!va) {
        snprintf(msg, msg_len, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n; i++) {
        memset(va, 0, sizeof *va);
        va->vault_id = ids[i];
        char why[RPC_MESSAGE_MAX];
        rpc_code c = ledger_run_plain(env->pool, NULL, env->timeout_ms, why, sizeof why, ops_jobs_vault_body, va);
        if (c != RPC_OK) {
            /* Nothing of this vault was committed; report and go on. */
            all->failed++;
            ops_jobs_line(all, "vault %s: failed (%s: %s); nothing changed for it", ids[i], rpc_code_name(c), why);
            continue;
        }
        ops_jobs_merge(all, &va->vr);
    }
    free(va);
    return RPC_OK;
}

static const char *const ops_jobs_names[] = {"staking", "accrual", "withdrawals", "deposit_watch", "receipts",
                                             "outbox", NULL};

rpc_code ops_jobs_execute(const ops_jobs_env *env, ops_jobs_report *rep, char *msg, size_t msg_len,
                          const char *name, const char *vault_id)
{
    size_t k = 0;
    while (ops_jobs_names[k] && strcmp(ops_jobs_names[k], name) != 0)
        k++;
    if (!ops_jobs_names[k]) {
        snprintf(msg, msg_len, "unknown job \"%.64s\": staking, accrual, withdrawals, deposit_watch, receipts or "
                 "outbox", name);
        return RPC_INVALID_ARGUMENT;
    }
    if (strcmp(name, "outbox") == 0) {
        snprintf(msg, msg_len, "job outbox (signed webhook delivery) arrives with the webhook delivery issue; events "
                 "are already written to the outbox");
        return RPC_UNIMPLEMENTED;
    }
    bool chain_job = strcmp(name, "withdrawals") != 0;
    if (chain_job && !env->has_chain) {
        snprintf(msg, msg_len, "job %s needs a chain client and a signer (evm.endpoints, evm.chain_id, "
                 "signer.socket)%s", name,
                 strcmp(name, "accrual") == 0 ? "; meanwhile use AccrueYield with an observed total" : "");
        return RPC_UNIMPLEMENTED;
    }
    int64_t t0 = ops_jobs_now_ms();
    rpc_code c = RPC_OK;
    char (*ids)[VAULT_STORE_ID_MAX] = NULL;
    size_t n = 0;
    bool per_vault = strcmp(name, "receipts") != 0 && strcmp(name, "deposit_watch") != 0;
    if (per_vault) {
        c = ops_jobs_vault_ids(env, &ids, &n, msg, msg_len, vault_id,
                               strcmp(name, "withdrawals") == 0 ? 0 : env->chain.chain_id);
        if (c == RPC_OK && vault_id && n == 0) {
            snprintf(msg, msg_len, "vault %s not found%s", vault_id,
                     strcmp(name, "withdrawals") == 0 ? "" : " on the chain served here");
            c = RPC_NOT_FOUND;
        }
    }
    if (c == RPC_OK) {
        if (strcmp(name, "withdrawals") == 0) {
            c = ops_jobs_withdrawals(env, rep, msg, msg_len, ids, n);
            /* The chain part only for vaults on the chain served here. */
            char (*mine)[VAULT_STORE_ID_MAX] = NULL;
            size_t nm = 0;
            if (c == RPC_OK && env->has_chain &&
                ops_jobs_vault_ids(env, &mine, &nm, msg, msg_len, vault_id, env->chain.chain_id) == RPC_OK)
                for (size_t i = 0; i < nm; i++)
                    chain_jobs_withdrawals(env, rep, mine[i]);
            free(mine);
        } else if (strcmp(name, "staking") == 0) {
            for (size_t i = 0; i < n; i++)
                chain_jobs_staking(env, rep, ids[i]);
        } else if (strcmp(name, "accrual") == 0) {
            for (size_t i = 0; i < n; i++)
                chain_jobs_accrual(env, rep, ids[i]);
        } else if (strcmp(name, "receipts") == 0) {
            chain_jobs_receipts(env, rep);
        } else {
            deposit_watch_run(env, rep);
        }
    }
    free(ids);
    int64_t took = ops_jobs_now_ms() - t0;
    api_metrics_job(name, c == RPC_OK, took * 1000);
    log_info("job.run", "job=%s vault=%s result=%s done=%u failed=%u skipped=%u duration_ms=%lld", name,
             vault_id ? vault_id : "all", rpc_code_name(c), rep->done, rep->failed, rep->skipped, (long long)took);
    return c;
}

rpc_code ops_jobs_run(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RunJobRequest *req = (const Coffer__V1__RunJobRequest *)in;
    Coffer__V1__RunJobResponse *resp = (Coffer__V1__RunJobResponse *)out;
    const api_services *s = rpc_ctx_service_arg(ctx);
    if (req->vault_id[0] && !ledger_fmt_is_uuid(req->vault_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "vault_id must be a uuid");
    if (!s || !s->jobs)
        return rpc_ctx_fail(ctx, RPC_UNAVAILABLE, "jobs are not set up in this process");
    int64_t t0 = ops_jobs_now_ms();
    ops_jobs_report rep = {.buf = rpc_ctx_alloc(ctx, OPS_JOBS_REPORT_MAX)};
    if (!rep.buf)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    rep.buf[0] = '\0';
    char msg[RPC_MESSAGE_MAX] = "";
    rpc_code c = ops_jobs_execute(s->jobs, &rep, msg, sizeof msg, req->name, req->vault_id[0] ? req->vault_id : NULL);
    if (c != RPC_OK)
        return rpc_ctx_fail(ctx, c, "%s", msg);
    resp->name = rpc_ctx_strdup(ctx, req->name);
    if (!resp->name)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    resp->items_done = rep.done;
    resp->items_failed = rep.failed;
    resp->items_skipped = rep.skipped;
    resp->report = rep.buf;
    resp->duration_ms = (uint64_t)(ops_jobs_now_ms() - t0);
    return RPC_OK;
}
