#include "ops_jobs.h"

#include "coffer/v1/operations.pb-c.h"
#include "ledger_db.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"
#include "vault_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPS_JOBS_REPORT_MAX 16384u
#define OPS_JOBS_BATCH "1000" /* queued withdrawals looked at per vault and run */

typedef struct {
    char *buf; /* the whole report */
    size_t len;
    uint32_t done, failed, skipped;
} ops_jobs_report;

static void ops_jobs_line(ops_jobs_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ops_jobs_line(ops_jobs_report *r, const char *fmt, ...)
{
    if (r->len + 2 >= OPS_JOBS_REPORT_MAX)
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

typedef struct {
    const char *vault_id;
    ops_jobs_report vr; /* this vault's part, rebuilt on every attempt */
    char vbuf[OPS_JOBS_REPORT_MAX];
} ops_jobs_vault_arg;

/* Burns one queued withdrawal (row r of res) or leaves it; v is locked. */
static rpc_code ops_jobs_execute(ledger_tx *tx, ops_jobs_vault_arg *a, vault_row *v, const PGresult *res, int r)
{
    const char *wid = PQgetvalue(res, r, 0), *order_id = PQgetvalue(res, r, 1), *user = PQgetvalue(res, r, 2);
    u256 amount, reserved, free_idle, burned, index;
    rpc_code c;
    char amt[U256_DEC_MAX], fi[U256_DEC_MAX];
    if ((c = ledger_get_u256(tx, &amount, res, r, 3, false)) != RPC_OK ||
        (c = ledger_get_u256(tx, &reserved, res, r, 4, false)) != RPC_OK)
        return c;
    vault_store_dec(amt, &amount);
    if (u256_sub(&free_idle, &v->v.idle_assets, &v->v.withdrawals_payable) != 0)
        free_idle = U256_ZERO;
    if (u256_cmp(&amount, &free_idle) > 0) {
        a->vr.skipped++;
        ops_jobs_line(&a->vr, "%s: queued: amount %s exceeds free idle assets %s of vault %s (unstaking from "
                      "protocols arrives with the chain issue)", order_id, amt, vault_store_dec(fi, &free_idle), v->id);
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
        c = ops_jobs_execute(tx, a, &v, res, r);
    PQclear(res);
    if (c != RPC_OK || a->vr.done + a->vr.failed == 0)
        return c;
    return vault_store_save(tx, &v);
}

typedef struct {
    const char *vault_id;
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
        return ledger_pb_oom(tx);
    }
    for (size_t i = 0; i < n; i++)
        memcpy(a->ids[a->n++], vs[i].id, VAULT_STORE_ID_MAX);
    free(vs);
    return RPC_OK;
}

static int64_t ops_jobs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rpc_code ops_jobs_withdrawals(rpc_ctx *ctx, const char *vault_id, Coffer__V1__RunJobResponse *resp)
{
    ops_jobs_list_arg la = {vault_id, NULL, 0};
    rpc_code c = ledger_run(ctx, &(ledger_run_options){.body = ops_jobs_list_body, .arg = &la});
    if (c != RPC_OK) {
        free(la.ids);
        return c;
    }
    if (vault_id && la.n == 0) {
        free(la.ids);
        return rpc_ctx_fail(ctx, RPC_NOT_FOUND, "vault %s not found", vault_id);
    }
    ops_jobs_report all = {.buf = rpc_ctx_alloc(ctx, OPS_JOBS_REPORT_MAX)};
    ops_jobs_vault_arg *va = malloc(sizeof *va);
    if (!all.buf || !va) {
        free(la.ids);
        free(va);
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < la.n; i++) {
        if (rpc_ctx_should_stop(ctx)) {
            ops_jobs_line(&all, "stopped: the call's deadline passed or it was cancelled; %zu vaults not looked at",
                          la.n - i);
            break;
        }
        memset(va, 0, sizeof *va);
        va->vault_id = la.ids[i];
        c = ledger_run(ctx, &(ledger_run_options){.body = ops_jobs_vault_body, .arg = va});
        if (c != RPC_OK) {
            /* Nothing of this vault was committed; report and go on. */
            all.failed++;
            ops_jobs_line(&all, "vault %s: failed (%s); nothing changed for it", la.ids[i], rpc_code_name(c));
            continue;
        }
        all.done += va->vr.done;
        all.failed += va->vr.failed;
        all.skipped += va->vr.skipped;
        if (va->vr.len && all.len + va->vr.len + 1 < OPS_JOBS_REPORT_MAX) {
            memcpy(all.buf + all.len, va->vr.buf, va->vr.len + 1);
            all.len += va->vr.len;
        }
    }
    log_info("job.withdrawals", "vaults=%zu done=%u failed=%u skipped=%u", la.n, all.done, all.failed, all.skipped);
    free(va);
    free(la.ids);
    resp->items_done = all.done;
    resp->items_failed = all.failed;
    resp->items_skipped = all.skipped;
    resp->report = all.buf;
    return RPC_OK;
}

rpc_code ops_jobs_run(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RunJobRequest *req = (const Coffer__V1__RunJobRequest *)in;
    Coffer__V1__RunJobResponse *resp = (Coffer__V1__RunJobResponse *)out;
    if (req->vault_id[0] && !ledger_fmt_is_uuid(req->vault_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "vault_id must be a uuid");
    int64_t t0 = ops_jobs_now_ms();
    rpc_code c;
    if (strcmp(req->name, "withdrawals") == 0) {
        c = ops_jobs_withdrawals(ctx, req->vault_id[0] ? req->vault_id : NULL, resp);
    } else if (strcmp(req->name, "staking") == 0 || strcmp(req->name, "deposit_watch") == 0 ||
               strcmp(req->name, "receipts") == 0) {
        return rpc_ctx_fail(ctx, RPC_UNIMPLEMENTED, "job %s arrives with the chain issue (6)", req->name);
    } else if (strcmp(req->name, "accrual") == 0) {
        return rpc_ctx_fail(ctx, RPC_UNIMPLEMENTED, "job accrual reads on-chain balances and arrives with the chain "
                            "issue (6); meanwhile use AccrueYield with an observed total");
    } else if (strcmp(req->name, "outbox") == 0) {
        return rpc_ctx_fail(ctx, RPC_UNIMPLEMENTED, "job outbox (signed webhook delivery) arrives with the webhook "
                            "delivery issue; events are already written to the outbox");
    } else {
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "unknown job \"%.64s\": staking, accrual, withdrawals, "
                            "deposit_watch, receipts or outbox", req->name);
    }
    if (c != RPC_OK)
        return c;
    resp->name = rpc_ctx_strdup(ctx, req->name);
    if (!resp->name)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    resp->duration_ms = (uint64_t)(ops_jobs_now_ms() - t0);
    return RPC_OK;
}
