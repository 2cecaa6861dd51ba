/* chain_jobs: see chain_jobs.h. */
#include "chain_jobs.h"

#include "hex.h"
#include "ledger_fmt.h"
#include "log.h"
#include "svc_ledger.h"
#include "vault_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CJ_PROTOCOLS_MAX 64
#define CJ_ALLOCS_MAX 64

/* ---- shared lookups ------------------------------------------------------------ */

rpc_code chain_jobs_protocols(ledger_tx *tx, adapter_protocol **out, size_t *n, uint64_t chain_id,
                              const char *token_hex, const char *protocol_id)
{
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)chain_id);
    const char *p[3] = {chain, token_hex, protocol_id};
    rpc_code c;
    *out = NULL;
    *n = 0;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, name, category, adapter, addresses::text, encode(token_address, 'hex') "
                                 "FROM supported_protocols WHERE chain_id = $1::bigint "
                                 "AND token_address = decode($2, 'hex') AND ($3::uuid IS NULL OR id = $3::uuid) "
                                 "AND ($3::uuid IS NOT NULL OR active) ORDER BY category, name LIMIT 64",
                                 3, p);
    if (!res)
        return c;
    int rows = PQntuples(res);
    *out = calloc((size_t)rows + 1, sizeof **out);
    if (!*out) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int r = 0; r < rows; r++) {
        char msg[200];
        if (adapter_protocol_load(&(*out)[*n], msg, sizeof msg, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                                  PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4),
                                  PQgetvalue(res, r, 5)) == 0)
            (*n)++;
        else
            log_warn("protocol.unusable", "message=\"%s\"", msg);
    }
    PQclear(res);
    return RPC_OK;
}

rpc_code chain_jobs_wallet(ledger_tx *tx, uint8_t out[20], bool *found, const char *client_id)
{
    const char *p[1] = {client_id};
    rpc_code c;
    *found = false;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT encode(wallet_address, 'hex') FROM client_organizations WHERE id = $1::uuid "
                                 "AND wallet_address IS NOT NULL",
                                 1, p);
    if (!res)
        return c;
    *found = PQntuples(res) == 1 && hex_decode_exact(out, 20, PQgetvalue(res, 0, 0)) == 0;
    PQclear(res);
    return RPC_OK;
}

/* pg_try_advisory_xact_lock for (job, vault); *mine false: another replica. */
static rpc_code cj_vault_lock(ledger_tx *tx, bool *mine, const char *job, const char *vault_id)
{
    char key[120];
    snprintf(key, sizeof key, "coffer.job.%s:%s", job, vault_id);
    const char *p[1] = {key};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", 1, p);
    if (!res)
        return c;
    *mine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return RPC_OK;
}

/* Whether the vault has intents of kinds (a SQL array text) in flight. */
static rpc_code cj_in_flight(ledger_tx *tx, bool *busy, const char *vault_id, const char *kinds)
{
    const char *p[2] = {vault_id, kinds};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT count(*) FROM chain_transactions WHERE vault_id = $1::uuid "
                                 "AND kind = ANY ($2::text[]) AND settled_at IS NULL "
                                 "AND status IN ('created', 'signed', 'submitted', 'replaced')",
                                 2, p);
    if (!res)
        return c;
    *busy = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    return RPC_OK;
}

/* How the staking and accrual jobs start on a vault: this replica's claim
 * (the job's advisory lock), the vault row locked, and nothing making the
 * run unsafe (paused; intents of kinds still in flight). *go false: the
 * vault is skipped, and the report says why (doing: "another replica is
 * <doing> it"; in_flight: why intents block it). */
static rpc_code cj_vault_claim(ledger_tx *tx, ops_jobs_report *rep, vault_row *v, bool *go, const char *job,
                               const char *vault_id, const char *kinds, const char *doing, const char *in_flight)
{
    *go = false;
    bool mine = false, found = false, busy = false;
    rpc_code c = cj_vault_lock(tx, &mine, job, vault_id);
    if (c != RPC_OK)
        return c;
    if (!mine) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: skipped: another replica is %s it", vault_id, doing);
        return RPC_OK;
    }
    if ((c = vault_store_get(tx, v, &found, vault_id, true)) != RPC_OK || !found)
        return c;
    if (v->paused) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: skipped: paused (%s)", v->id, v->paused_reason);
        return RPC_OK;
    }
    if ((c = cj_in_flight(tx, &busy, v->id, kinds)) != RPC_OK)
        return c;
    if (busy) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: skipped: %s", v->id, in_flight);
        return RPC_OK;
    }
    *go = true;
    return RPC_OK;
}

static void cj_drive(const ops_jobs_env *env, ops_jobs_report *rep, const uint8_t wallet[20])
{
    char hx[41], msg[256];
    hex_encode(hx, wallet, 20);
    hx[40] = '\0';
    chain_tx_stats st;
    if (chain_tx_drive(&env->chain, &st, msg, sizeof msg, hx) != 0)
        ops_jobs_line(rep, "wallet 0x%s: not driven: %s", hx, msg);
}

/* ---- settlement ------------------------------------------------------------------ */

static rpc_code cj_settle_vault(ledger_tx *tx, const chain_tx_row *row, bool supply)
{
    vault_row v;
    bool found = false;
    rpc_code c = vault_store_get(tx, &v, &found, row->vault_id, true);
    if (c != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: vault %s of transaction %s is missing", row->vault_id,
                           row->id);
    acct_err e = supply ? acct_stake(&v.v, &row->amount) : acct_unstake(&v.v, &row->amount);
    if (e != ACCT_OK)
        return vault_store_acct_fail(tx, e, supply ? "stake" : "unstake");
    char amt[U256_DEC_MAX];
    vault_store_dec(amt, &row->amount);
    const char *p[4] = {v.client_id, v.id, row->protocol_id, amt};
    uint64_t n = 0;
    if (supply)
        c = ledger_exec(tx, &n,
                        "INSERT INTO protocol_allocations (client_id, vault_id, protocol_id, book_balance) VALUES "
                        "($1::uuid, $2::uuid, $3::uuid, $4::numeric) ON CONFLICT (vault_id, protocol_id) DO UPDATE "
                        "SET book_balance = protocol_allocations.book_balance + EXCLUDED.book_balance",
                        4, p);
    else
        c = ledger_exec(tx, &n,
                        "UPDATE protocol_allocations SET book_balance = book_balance - $4::numeric "
                        "WHERE client_id = $1::uuid AND vault_id = $2::uuid AND protocol_id = $3::uuid "
                        "AND book_balance >= $4::numeric",
                        4, p);
    if (c != RPC_OK)
        return c;
    if (n != 1)
        return vault_store_acct_fail(tx, ACCT_ERR_INCONSISTENT, "allocation");
    if ((c = vault_store_save(tx, &v)) != RPC_OK)
        return c;
    char hx[67], details[600];
    hex_encode_0x(hx, row->hash, 32);
    hx[66] = '\0';
    snprintf(details, sizeof details,
             "{\"vault_id\":\"%s\",\"protocol_id\":\"%s\",\"amount\":\"%s\",\"tx_hash\":\"%s\",\"chain_tx\":\"%s\"}",
             v.id, row->protocol_id, amt, hx, row->id);
    return ledger_audit(tx, supply ? "vault.staked" : "vault.unstaked", "vault", v.id, v.client_id, details);
}

static rpc_code cj_settle_treasury(ledger_tx *tx, const chain_tx_row *row, bool supply)
{
    char amt[U256_DEC_MAX];
    vault_store_dec(amt, &row->amount);
    const char *p[3] = {row->client_id, row->protocol_id, amt};
    if (supply)
        return ledger_exec(tx, NULL,
                           "INSERT INTO treasury_positions (client_id, protocol_id, book_balance) VALUES ($1::uuid, "
                           "$2::uuid, $3::numeric) ON CONFLICT (client_id, protocol_id) DO UPDATE SET book_balance = "
                           "treasury_positions.book_balance + EXCLUDED.book_balance",
                           3, p);
    return ledger_exec(tx, NULL,
                       "UPDATE treasury_positions SET book_balance = greatest(book_balance - $3::numeric, 0) "
                       "WHERE client_id = $1::uuid AND protocol_id = $2::uuid",
                       3, p);
}

rpc_code chain_jobs_settle(ledger_tx *tx, void *arg, const chain_tx_row *row, const char *outcome)
{
    (void)arg;
    bool ok = strcmp(outcome, "confirmed") == 0;
    ledger_tx_set_actor(tx, "job:receipts");
    if (strcmp(row->kind, "transfer") == 0 && row->withdrawal_id[0]) {
        char ref[300];
        if (ok) {
            hex_encode_0x(ref, row->hash, 32);
            ref[66] = '\0';
        } else {
            snprintf(ref, sizeof ref, "the payout transaction %s: %.200s", outcome,
                     row->error[0] ? row->error : "reverted on chain");
        }
        return svc_withdrawal_payout_settled(tx, row->withdrawal_id, ok, ref);
    }
    bool supply = strcmp(row->kind, "supply") == 0, withdraw = strcmp(row->kind, "withdraw") == 0;
    if (!ok || (!supply && !withdraw) || !row->protocol_id[0]) {
        if (!ok)
            log_warn("chain_tx.settled", "id=%s kind=%s outcome=%s vault=%s effect=none", row->id, row->kind, outcome,
                     row->vault_id);
        return RPC_OK;
    }
    return row->vault_id[0] ? cj_settle_vault(tx, row, supply) : cj_settle_treasury(tx, row, supply);
}

/* ---- staking ------------------------------------------------------------------------ */

typedef struct {
    const ops_jobs_env *env;
    const char *vault_id;
    ops_jobs_report *rep;
    /* phase 1 */
    vault_row v;
    uint8_t wallet[20];
    adapter_protocol *protos;
    size_t n_protos;
    u256 allowance[CJ_PROTOCOLS_MAX];
    bool ready;
    bool created;
} cj_stake_arg;

static rpc_code cj_stake_read(ledger_tx *tx, void *argp)
{
    cj_stake_arg *a = argp;
    bool found = false;
    a->ready = false;
    rpc_code c = vault_store_get(tx, &a->v, &found, a->vault_id, false);
    if (c != RPC_OK || !found)
        return c;
    if ((c = chain_jobs_wallet(tx, a->wallet, &found, a->v.client_id)) != RPC_OK || !found)
        return c;
    free(a->protos);
    a->protos = NULL;
    if ((c = chain_jobs_protocols(tx, &a->protos, &a->n_protos, a->v.chain_id, a->v.token_address + 2, NULL)) !=
        RPC_OK)
        return c;
    a->ready = true;
    return RPC_OK;
}

static rpc_code cj_stake_body(ledger_tx *tx, void *argp)
{
    cj_stake_arg *a = argp;
    ops_jobs_report *rep = a->rep;
    a->created = false;
    ledger_tx_set_actor(tx, "job:staking");
    vault_row v;
    bool go = false;
    rpc_code c = cj_vault_claim(tx, rep, &v, &go, "staking", a->vault_id, "{approve,supply,withdraw}", "staking",
                                "supplies or unstakes of an earlier run are in flight");
    if (c != RPC_OK || !go)
        return c;
    /* Deployable: idle less what is owed (payable) and what queued
     * withdrawals will need. */
    const char *vp[1] = {v.id};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT coalesce(sum(amount), 0)::text FROM withdrawals WHERE vault_id = $1::uuid "
                                 "AND status = 'BALANCE_RESERVED'",
                                 1, vp);
    if (!res)
        return c;
    u256 queued, deployable;
    c = ledger_get_u256(tx, &queued, res, 0, 0, false);
    PQclear(res);
    if (c != RPC_OK)
        return c;
    if (u256_sub(&deployable, &v.v.idle_assets, &v.v.withdrawals_payable) != 0 ||
        u256_sub(&deployable, &deployable, &queued) != 0)
        deployable = U256_ZERO;
    char dd[U256_DEC_MAX], md[U256_DEC_MAX];
    vault_store_dec(dd, &deployable);
    if (u256_is_zero(&deployable) || u256_cmp(&deployable, &a->env->staking_min_idle) < 0) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: nothing to stake: deployable idle %s is below jobs.staking_min_idle %s", v.id,
                      dd, vault_store_dec(md, &a->env->staking_min_idle));
        return RPC_OK;
    }
    res = ledger_query(tx, &c, "SELECT category, target_bps FROM vault_strategies WHERE vault_id = $1::uuid "
                               "AND target_bps > 0 ORDER BY category", 1, vp);
    if (!res)
        return c;
    u256 parts[CJ_PROTOCOLS_MAX];
    memset(parts, 0, sizeof parts);
    int ns = PQntuples(res);
    for (int r = 0; r < ns; r++) {
        const char *cat = PQgetvalue(res, r, 0);
        u256 bps = u256_from_u64(strtoull(PQgetvalue(res, r, 1), NULL, 10)), denom = u256_from_u64(10000), share;
        size_t k = 0;
        for (size_t i = 0; i < a->n_protos; i++)
            k += strcmp(a->protos[i].category, cat) == 0;
        if (u256_muldiv_floor(&share, &deployable, &bps, &denom) != 0)
            share = U256_ZERO;
        if (k == 0) {
            char sh[U256_DEC_MAX];
            ops_jobs_line(rep, "vault %s: category %s (%s bps): no active protocol for the token; %s stays idle", v.id,
                          cat, PQgetvalue(res, r, 1), vault_store_dec(sh, &share));
            continue;
        }
        u256 each, rest, kk = u256_from_u64(k);
        if (u256_divmod(&each, &rest, &share, &kk) != 0)
            continue;
        bool first = true;
        for (size_t i = 0; i < a->n_protos; i++) {
            if (strcmp(a->protos[i].category, cat) != 0)
                continue;
            parts[i] = each;
            if (first && u256_add(&parts[i], &parts[i], &rest) != 0)
                parts[i] = each;
            first = false;
        }
    }
    PQclear(res);
    if (ns == 0) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: no strategy configured (ConfigureVault)", v.id);
        return RPC_OK;
    }
    char batch[SVC_UUID_LEN + 1];
    svc_uuid_v4(batch);
    for (size_t i = 0; i < a->n_protos; i++) {
        if (u256_is_zero(&parts[i]))
            continue;
        const adapter_protocol *p = &a->protos[i];
        u256 appr[2];
        size_t na = 0;
        adapter_approvals(appr, &na, &a->allowance[i], &parts[i]);
        char key[220], id[CHAIN_TX_ID_MAX], amt[U256_DEC_MAX];
        bool existed;
        for (size_t j = 0; j < na; j++) {
            adapter_call call;
            if (adapter_erc20_approve(&call, p->target, &appr[j]) != 0)
                return ledger_fail(tx, RPC_INTERNAL, "internal error: approve calldata");
            snprintf(key, sizeof key, "stake:%s:%s:%s:approve%zu", v.id, batch, p->id, j);
            chain_tx_intent in = {.client_id = v.client_id, .chain_id = v.chain_id, .intent_key = key,
                                  .kind = "approve", .protocol_id = p->id, .vault_id = v.id, .value = U256_ZERO,
                                  .data = call.data, .data_len = call.len, .amount = appr[j]};
            memcpy(in.to, p->token, 20);
            if ((c = chain_tx_create(tx, id, &existed, &in)) != RPC_OK)
                return c;
        }
        adapter_call call;
        if (adapter_get(p)->supply(&call, p, &parts[i], a->wallet) != 0)
            return ledger_fail(tx, RPC_INTERNAL, "internal error: supply calldata");
        snprintf(key, sizeof key, "stake:%s:%s:%s:supply", v.id, batch, p->id);
        chain_tx_intent in = {.client_id = v.client_id, .chain_id = v.chain_id, .intent_key = key, .kind = "supply",
                              .protocol_id = p->id, .vault_id = v.id, .value = U256_ZERO, .data = call.data,
                              .data_len = call.len, .amount = parts[i]};
        memcpy(in.to, p->target, 20);
        if ((c = chain_tx_create(tx, id, &existed, &in)) != RPC_OK)
            return c;
        rep->done++;
        ops_jobs_line(rep, "vault %s: supply %s to %s (%s) as chain transaction %s%s", v.id,
                      vault_store_dec(amt, &parts[i]), p->name, p->category, id, na == 2 ? " (approve 0 first)" : "");
        a->created = true;
    }
    return RPC_OK;
}

void chain_jobs_staking(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id)
{
    cj_stake_arg *a = calloc(1, sizeof *a);
    char msg[RPC_MESSAGE_MAX];
    if (!a) {
        rep->failed++;
        return;
    }
    a->env = env;
    a->vault_id = vault_id;
    a->rep = rep;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_stake_read, a) != RPC_OK || !a->ready) {
        if (!a->ready && !msg[0])
            snprintf(msg, sizeof msg, "no vault or no custodial wallet");
        rep->failed++;
        ops_jobs_line(rep, "vault %s: staking failed: %s", vault_id, msg);
        goto out;
    }
    /* Current allowances, read before the locked transaction. */
    for (size_t i = 0; i < a->n_protos && i < CJ_PROTOCOLS_MAX; i++) {
        evm_rpc_error ee;
        if (adapter_erc20_allowance(env->chain.evm, &a->allowance[i], &ee, a->protos[i].token, a->wallet,
                                    a->protos[i].target, EVM_BLOCK_ID_LATEST) != EVM_OK) {
            rep->failed++;
            ops_jobs_line(rep, "vault %s: staking failed: allowance of %s: %s", vault_id, a->protos[i].name,
                          ee.message);
            goto out;
        }
    }
    if (a->n_protos > CJ_PROTOCOLS_MAX)
        a->n_protos = CJ_PROTOCOLS_MAX;
    ops_jobs_report part = {.buf = malloc(OPS_JOBS_REPORT_MAX)};
    if (!part.buf) {
        rep->failed++;
        goto out;
    }
    part.buf[0] = '\0';
    a->rep = &part;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_stake_body, a) != RPC_OK) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: staking failed (nothing created): %s", vault_id, msg);
    } else {
        ops_jobs_merge(rep, &part);
        if (a->created)
            cj_drive(env, rep, a->wallet);
    }
    free(part.buf);
out:
    free(a->protos);
    free(a);
}

/* ---- accrual ----------------------------------------------------------------------- */

typedef struct {
    char id[VAULT_STORE_ID_MAX];
    adapter_protocol proto;
    u256 book;
    u256 treasury;
    u256 onchain;
} cj_alloc;

typedef struct {
    const ops_jobs_env *env;
    const char *vault_id;
    ops_jobs_report *rep;
    vault_row v;
    uint8_t wallet[20];
    cj_alloc allocs[CJ_ALLOCS_MAX];
    size_t n;
    bool ready;
    uint64_t block;
} cj_accrue_arg;

/* Reads the allocations (and the treasury books beside them). */
static rpc_code cj_accrue_allocs(ledger_tx *tx, cj_accrue_arg *a, cj_alloc *out, size_t *n)
{
    const char *p[2] = {a->vault_id, a->v.client_id};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT a.id, a.protocol_id, a.book_balance::text, coalesce(t.book_balance, 0)::text "
                                 "FROM protocol_allocations a LEFT JOIN treasury_positions t ON t.client_id = "
                                 "$2::uuid AND t.protocol_id = a.protocol_id WHERE a.vault_id = $1::uuid "
                                 "ORDER BY a.book_balance DESC, a.id LIMIT 64",
                                 2, p);
    if (!res)
        return c;
    *n = 0;
    for (int r = 0; r < PQntuples(res) && c == RPC_OK; r++) {
        cj_alloc *x = &out[*n];
        snprintf(x->id, sizeof x->id, "%s", PQgetvalue(res, r, 0));
        snprintf(x->proto.id, sizeof x->proto.id, "%s", PQgetvalue(res, r, 1));
        if ((c = ledger_get_u256(tx, &x->book, res, r, 2, false)) == RPC_OK &&
            (c = ledger_get_u256(tx, &x->treasury, res, r, 3, false)) == RPC_OK)
            (*n)++;
    }
    PQclear(res);
    return c;
}

static rpc_code cj_accrue_read(ledger_tx *tx, void *argp)
{
    cj_accrue_arg *a = argp;
    bool found = false;
    a->ready = false;
    rpc_code c = vault_store_get(tx, &a->v, &found, a->vault_id, false);
    if (c != RPC_OK || !found)
        return c;
    if ((c = chain_jobs_wallet(tx, a->wallet, &found, a->v.client_id)) != RPC_OK || !found)
        return c;
    if ((c = cj_accrue_allocs(tx, a, a->allocs, &a->n)) != RPC_OK)
        return c;
    for (size_t i = 0; i < a->n; i++) {
        adapter_protocol *ps = NULL;
        size_t np = 0;
        if ((c = chain_jobs_protocols(tx, &ps, &np, a->v.chain_id, a->v.token_address + 2, a->allocs[i].proto.id)) !=
            RPC_OK)
            return c;
        if (np != 1) {
            free(ps);
            return ledger_fail(tx, RPC_FAILED_PRECONDITION, "protocol %s of vault %s is unusable",
                               a->allocs[i].proto.id, a->vault_id);
        }
        a->allocs[i].proto = ps[0];
        free(ps);
    }
    a->ready = true;
    return RPC_OK;
}

static rpc_code cj_accrue_body(ledger_tx *tx, void *argp)
{
    cj_accrue_arg *a = argp;
    ops_jobs_report *rep = a->rep;
    ledger_tx_set_actor(tx, "job:accrual");
    vault_row v;
    bool go = false;
    rpc_code c = cj_vault_claim(tx, rep, &v, &go, "accrual", a->vault_id, "{supply,withdraw}", "accruing",
                                "supplies or unstakes are in flight");
    if (c != RPC_OK || !go)
        return c;
    cj_alloc now[CJ_ALLOCS_MAX];
    size_t n = 0;
    if ((c = cj_accrue_allocs(tx, a, now, &n)) != RPC_OK)
        return c;
    bool same = n == a->n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(now[i].id, a->allocs[i].id) == 0 && u256_cmp(&now[i].book, &a->allocs[i].book) == 0 &&
               u256_cmp(&now[i].treasury, &a->allocs[i].treasury) == 0;
    if (!same) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: skipped: its allocations changed while they were read; next run", v.id);
        return RPC_OK;
    }
    /* The vault's part of each position: all of it, or its share beside
     * the client's direct treasury position in the same protocol. */
    ops_alloc_book books[CJ_ALLOCS_MAX];
    u256 observed = v.v.idle_assets;
    for (size_t i = 0; i < n; i++) {
        cj_alloc *x = &a->allocs[i];
        u256 mine_part = x->onchain, claims;
        if (!u256_is_zero(&x->treasury)) {
            if (u256_add(&claims, &x->book, &x->treasury) != 0 ||
                u256_muldiv_floor(&mine_part, &x->onchain, &x->book, &claims) != 0)
                return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "allocation share");
            u256 tre;
            char tb[U256_DEC_MAX];
            if (u256_sub(&tre, &x->onchain, &mine_part) != 0)
                tre = U256_ZERO;
            const char *tp[3] = {v.client_id, x->proto.id, vault_store_dec(tb, &tre)};
            if ((c = ledger_exec(tx, NULL,
                                 "UPDATE treasury_positions SET book_balance = $3::numeric WHERE client_id = $1::uuid "
                                 "AND protocol_id = $2::uuid",
                                 3, tp)) != RPC_OK)
                return c;
        }
        snprintf(books[i].id, sizeof books[i].id, "%s", x->id);
        books[i].book = mine_part;
        if (u256_add(&observed, &observed, &mine_part) != 0)
            return vault_store_acct_fail(tx, ACCT_ERR_OVERFLOW, "observed");
    }
    char ob[U256_DEC_MAX], g[U256_DEC_MAX], ix[U256_DEC_MAX], ls[U256_DEC_MAX];
    vault_store_dec(ob, &observed);
    /* Protocols round entries in their favour (Aave, Comet: a unit per
     * supply): a shortfall within jobs.accrual_dust is that, not a loss. */
    u256 book, short_by;
    if (u256_add(&book, &v.v.idle_assets, &v.v.deployed_assets) == 0 && u256_cmp(&observed, &book) < 0 &&
        u256_sub(&short_by, &book, &observed) == 0 && u256_cmp(&short_by, &a->env->accrual_dust) <= 0) {
        rep->skipped++;
        ops_jobs_line(rep, "vault %s: observed %s at block %llu is %s below the book: within jobs.accrual_dust "
                      "(protocol rounding); nothing accrued", v.id, ob, (unsigned long long)a->block,
                      vault_store_dec(ls, &short_by));
        return RPC_OK;
    }
    ops_accrual o;
    if ((c = ops_accrue_vault(tx, &v, &observed, books, n, &o)) != RPC_OK)
        return c;
    if (o.paused) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: loss: observed %s at block %llu is %s below the book; the vault is paused "
                      "(RealizeLoss)", v.id, ob, (unsigned long long)a->block, vault_store_dec(ls, &o.loss));
        return RPC_OK;
    }
    rep->done++;
    ops_jobs_line(rep, "vault %s: observed %s at block %llu: gross yield %s, index %s", v.id, ob,
                  (unsigned long long)a->block, vault_store_dec(g, &o.gross), vault_store_dec(ix, &v.v.current_index));
    return RPC_OK;
}

void chain_jobs_accrual(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id)
{
    cj_accrue_arg *a = calloc(1, sizeof *a);
    char msg[RPC_MESSAGE_MAX];
    if (!a) {
        rep->failed++;
        return;
    }
    a->env = env;
    a->vault_id = vault_id;
    a->rep = rep;
    evm_rpc_error ee;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_accrue_read, a) != RPC_OK ||
        !a->ready) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: accrual failed: %s", vault_id, a->ready ? msg : "no vault or no wallet");
        goto out;
    }
    if (evm_rpc_block_number(env->chain.evm, &a->block, &ee) != EVM_OK) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: accrual failed: block number: %s", vault_id, ee.message);
        goto out;
    }
    /* Bad chain data: a position worth more than the token's whole supply
     * is no position (a lying or broken node, a broken adapter). Nothing
     * is accrued from it. */
    bool have_supply = false;
    u256 supply = U256_ZERO;
    for (size_t i = 0; i < a->n; i++) {
        const adapter_protocol *p = &a->allocs[i].proto;
        if (adapter_get(p)->balance(env->chain.evm, &a->allocs[i].onchain, &ee, p, a->wallet,
                                    EVM_BLOCK_ID_AT(a->block)) != EVM_OK) {
            rep->failed++;
            ops_jobs_line(rep, "vault %s: accrual failed: balance in %s: %s", vault_id, p->name, ee.message);
            goto out;
        }
        if (!have_supply) {
            if (adapter_erc20_total_supply(env->chain.evm, &supply, &ee, p->token, EVM_BLOCK_ID_AT(a->block)) !=
                EVM_OK) {
                rep->failed++;
                ops_jobs_line(rep, "vault %s: accrual failed: token supply: %s", vault_id, ee.message);
                goto out;
            }
            have_supply = true;
        }
        if (u256_cmp(&a->allocs[i].onchain, &supply) > 0) {
            char bal[U256_DEC_MAX], sup[U256_DEC_MAX];
            vault_store_dec(bal, &a->allocs[i].onchain);
            vault_store_dec(sup, &supply);
            log_error("accrual.bad_chain_data", "vault=%s protocol=%s block=%llu balance=%s total_supply=%s", vault_id,
                      p->name, (unsigned long long)a->block, bal, sup);
            rep->failed++;
            ops_jobs_line(rep, "vault %s: accrual refused: position in %s at block %llu is %s, above the token's "
                          "total supply %s (bad chain data); nothing changed", vault_id, p->name,
                          (unsigned long long)a->block, bal, sup);
            goto out;
        }
    }
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_accrue_body, a) != RPC_OK) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: accrual failed (nothing changed): %s", vault_id, msg);
    }
out:
    free(a);
}

/* ---- withdrawals: unstaking and payouts ------------------------------------------------ */

typedef struct {
    const ops_jobs_env *env;
    const char *vault_id;
    ops_jobs_report *rep;
    uint8_t wallet[20];
    bool created;
    /* The positions as the chain has them (read before the locked
     * transaction); NULL or !ready: no unstaking this run. */
    const cj_accrue_arg *onchain;
} cj_wd_arg;

/* Whether the vault has queued (BALANCE_RESERVED) withdrawals; then its
 * allocations, for cj_wd_positions. */
static rpc_code cj_wd_read(ledger_tx *tx, void *argp)
{
    cj_accrue_arg *a = argp;
    const char *p[1] = {a->vault_id};
    rpc_code c;
    a->ready = false;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT count(*) FROM withdrawals WHERE vault_id = $1::uuid "
                                 "AND status = 'BALANCE_RESERVED'",
                                 1, p);
    if (!res)
        return c;
    bool queued = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    return queued ? cj_accrue_read(tx, a) : RPC_OK;
}

/* Reads the on-chain value of each of the vault's positions (latest
 * block) when it has queued withdrawals. An unstake never asks a protocol
 * for more than the position holds: Aave and Comet round a supply down by
 * a unit, so until interest covers it the position is below its book, and
 * withdrawing the whole book would revert. Returns the read (ready false:
 * nothing to unstake or not readable; rep says why), NULL on no memory. */
static cj_accrue_arg *cj_wd_positions(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id)
{
    cj_accrue_arg *a = calloc(1, sizeof *a);
    char msg[RPC_MESSAGE_MAX];
    if (!a)
        return NULL;
    a->env = env;
    a->vault_id = vault_id;
    a->rep = rep;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_wd_read, a) != RPC_OK) {
        a->ready = false;
        ops_jobs_line(rep, "vault %s: no unstaking this run: %s", vault_id, msg);
        return a;
    }
    for (size_t i = 0; a->ready && i < a->n; i++) {
        const adapter_protocol *p = &a->allocs[i].proto;
        evm_rpc_error ee;
        if (adapter_get(p)->balance(env->chain.evm, &a->allocs[i].onchain, &ee, p, a->wallet, EVM_BLOCK_ID_LATEST) !=
            EVM_OK) {
            a->ready = false;
            ops_jobs_line(rep, "vault %s: no unstaking this run: position in %s unreadable: %s", vault_id, p->name,
                          ee.message);
        }
    }
    return a;
}

static int cj_alloc_cmp_small(const void *x, const void *y)
{
    const cj_alloc *a = x, *b = y;
    return u256_cmp(&a->book, &b->book);
}

static rpc_code cj_unstake(ledger_tx *tx, cj_wd_arg *a, vault_row *v)
{
    ops_jobs_report *rep = a->rep;
    rpc_code c;
    const char *vp[1] = {v->id};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT coalesce(sum(amount), 0)::text FROM withdrawals WHERE vault_id = $1::uuid "
                                 "AND status = 'BALANCE_RESERVED'",
                                 1, vp);
    if (!res)
        return c;
    u256 queued, supplying, unstaking, free_idle, need;
    c = ledger_get_u256(tx, &queued, res, 0, 0, false);
    PQclear(res);
    if (c != RPC_OK || (c = chain_tx_pending_amount(tx, &supplying, v->id, "supply")) != RPC_OK ||
        (c = chain_tx_pending_amount(tx, &unstaking, v->id, "withdraw")) != RPC_OK)
        return c;
    if (u256_sub(&free_idle, &v->v.idle_assets, &v->v.withdrawals_payable) != 0 ||
        u256_sub(&free_idle, &free_idle, &supplying) != 0)
        free_idle = U256_ZERO;
    if (u256_sub(&need, &queued, &free_idle) != 0 || u256_sub(&need, &need, &unstaking) != 0 || u256_is_zero(&need))
        return RPC_OK;
    cj_accrue_arg aa;
    memset(&aa, 0, sizeof aa);
    aa.vault_id = v->id;
    aa.v = *v;
    cj_alloc *al = calloc(CJ_ALLOCS_MAX, sizeof *al);
    size_t n = 0;
    if (!al)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if ((c = cj_accrue_allocs(tx, &aa, al, &n)) != RPC_OK) {
        free(al);
        return c;
    }
    qsort(al, n, sizeof *al, cj_alloc_cmp_small);
    u256 total = U256_ZERO, left = need;
    for (size_t i = 0; i < n; i++)
        if (u256_add(&total, &total, &al[i].book) != 0)
            total = U256_MAX;
    char batch[SVC_UUID_LEN + 1];
    svc_uuid_v4(batch);
    for (size_t i = 0; i < n && !u256_is_zero(&left) && c == RPC_OK; i++) {
        if (u256_is_zero(&al[i].book))
            continue;
        u256 take;
        if (a->env->unstake_proportional && !u256_is_zero(&total)) {
            if (u256_muldiv_ceil(&take, &need, &al[i].book, &total) != 0)
                take = al[i].book;
        } else {
            take = left;
        }
        if (u256_cmp(&take, &al[i].book) > 0)
            take = al[i].book;
        if (u256_cmp(&take, &left) > 0)
            take = left;
        /* Never more than the position holds on chain (the vault's part of
         * it, beside a treasury position in the same protocol). */
        const u256 *held = NULL;
        for (size_t k = 0; k < a->onchain->n; k++)
            if (strcmp(a->onchain->allocs[k].id, al[i].id) == 0)
                held = &a->onchain->allocs[k].onchain;
        if (!held)
            continue;
        u256 part = *held;
        if (!u256_is_zero(&al[i].treasury)) {
            u256 claims;
            if (u256_add(&claims, &al[i].book, &al[i].treasury) != 0 ||
                u256_muldiv_floor(&part, held, &al[i].book, &claims) != 0)
                part = U256_ZERO;
        }
        if (u256_cmp(&take, &part) > 0)
            take = part;
        if (u256_is_zero(&take))
            continue;
        adapter_protocol *ps = NULL;
        size_t np = 0;
        if ((c = chain_jobs_protocols(tx, &ps, &np, v->chain_id, v->token_address + 2, al[i].proto.id)) != RPC_OK)
            break;
        if (np != 1) {
            free(ps);
            continue;
        }
        adapter_call call;
        if (adapter_get(&ps[0])->withdraw(&call, &ps[0], &take, a->wallet) != 0) {
            free(ps);
            c = ledger_fail(tx, RPC_INTERNAL, "internal error: withdraw calldata");
            break;
        }
        char key[220], id[CHAIN_TX_ID_MAX], amt[U256_DEC_MAX];
        bool existed;
        snprintf(key, sizeof key, "unstake:%s:%s:%s", v->id, batch, ps[0].id);
        chain_tx_intent in = {.client_id = v->client_id, .chain_id = v->chain_id, .intent_key = key,
                              .kind = "withdraw", .protocol_id = ps[0].id, .vault_id = v->id, .value = U256_ZERO,
                              .data = call.data, .data_len = call.len, .amount = take};
        memcpy(in.to, ps[0].target, 20);
        if ((c = chain_tx_create(tx, id, &existed, &in)) == RPC_OK) {
            rep->done++;
            ops_jobs_line(rep, "vault %s: unstake %s from %s as chain transaction %s (for queued withdrawals)", v->id,
                          vault_store_dec(amt, &take), ps[0].name, id);
            a->created = true;
            if (u256_sub(&left, &left, &take) != 0)
                left = U256_ZERO;
        }
        free(ps);
    }
    free(al);
    return c;
}

static rpc_code cj_payouts(ledger_tx *tx, cj_wd_arg *a, const vault_row *v)
{
    ops_jobs_report *rep = a->rep;
    rpc_code c;
    const char *vp[1] = {v->id};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, order_id, amount::text, coalesce(destination->>'address', '') "
                                 "FROM withdrawals WHERE vault_id = $1::uuid AND status = 'PROVIDER_PROCESSING' "
                                 "AND sub_status = 'PAYOUT_PENDING' AND destination_type = 'crypto_address' "
                                 "ORDER BY created_at, id LIMIT 200 FOR UPDATE SKIP LOCKED",
                                 1, vp);
    if (!res)
        return c;
    uint8_t token[20];
    if (hex_decode_exact(token, 20, v->token_address + 2) != 0) {
        PQclear(res);
        return ledger_fail(tx, RPC_INTERNAL, "internal error: vault token address");
    }
    for (int r = 0; r < PQntuples(res) && c == RPC_OK; r++) {
        const char *wid = PQgetvalue(res, r, 0), *order = PQgetvalue(res, r, 1), *addr = PQgetvalue(res, r, 3);
        u256 amount;
        uint8_t to[20];
        if ((c = ledger_get_u256(tx, &amount, res, r, 2, false)) != RPC_OK)
            break;
        if (!ledger_fmt_is_address(addr) || hex_decode_exact(to, 20, addr + 2) != 0) {
            rep->skipped++;
            ops_jobs_line(rep, "%s: payout waits: destination address unusable", order);
            continue;
        }
        adapter_call call;
        if (adapter_erc20_transfer(&call, to, &amount) != 0) {
            c = ledger_fail(tx, RPC_INTERNAL, "internal error: transfer calldata");
            break;
        }
        char key[120], id[CHAIN_TX_ID_MAX], amt[U256_DEC_MAX];
        bool existed;
        snprintf(key, sizeof key, "payout:%s", wid);
        chain_tx_intent in = {.client_id = v->client_id, .chain_id = v->chain_id, .intent_key = key,
                              .kind = "transfer", .vault_id = v->id, .withdrawal_id = wid, .value = U256_ZERO,
                              .data = call.data, .data_len = call.len, .amount = amount};
        memcpy(in.to, token, 20);
        if ((c = chain_tx_create(tx, id, &existed, &in)) != RPC_OK)
            break;
        const char *up[1] = {wid};
        if ((c = ledger_exec(tx, NULL,
                             "UPDATE withdrawals SET sub_status = 'BLOCKCHAIN_CONFIRMATION' WHERE id = $1::uuid", 1,
                             up)) != RPC_OK)
            break;
        rep->done++;
        ops_jobs_line(rep, "%s: payout of %s to %s as chain transaction %s", order, vault_store_dec(amt, &amount), addr,
                      id);
        a->created = true;
    }
    PQclear(res);
    return c;
}

static rpc_code cj_wd_body(ledger_tx *tx, void *argp)
{
    cj_wd_arg *a = argp;
    a->created = false;
    ledger_tx_set_actor(tx, "job:withdrawals");
    bool mine = false, found = false;
    rpc_code c = cj_vault_lock(tx, &mine, "withdrawals", a->vault_id);
    if (c != RPC_OK)
        return c;
    if (!mine) {
        a->rep->skipped++;
        ops_jobs_line(a->rep, "vault %s: skipped: another replica is running the withdrawals job for it", a->vault_id);
        return RPC_OK;
    }
    vault_row v;
    if ((c = vault_store_get(tx, &v, &found, a->vault_id, true)) != RPC_OK || !found)
        return c;
    if ((c = chain_jobs_wallet(tx, a->wallet, &found, v.client_id)) != RPC_OK || !found)
        return c;
    if (!v.paused && a->onchain && a->onchain->ready && (c = cj_unstake(tx, a, &v)) != RPC_OK)
        return c;
    return cj_payouts(tx, a, &v);
}

void chain_jobs_withdrawals(const ops_jobs_env *env, ops_jobs_report *rep, const char *vault_id)
{
    ops_jobs_report part = {.buf = malloc(OPS_JOBS_REPORT_MAX)};
    char msg[RPC_MESSAGE_MAX];
    if (!part.buf) {
        rep->failed++;
        return;
    }
    part.buf[0] = '\0';
    cj_accrue_arg *pos = cj_wd_positions(env, &part, vault_id);
    cj_wd_arg a = {env, vault_id, &part, {0}, false, pos};
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, cj_wd_body, &a) != RPC_OK) {
        rep->failed++;
        ops_jobs_line(rep, "vault %s: unstaking/payouts failed (nothing created): %s", vault_id, msg);
    } else {
        ops_jobs_merge(rep, &part);
        if (a.created)
            cj_drive(env, rep, a.wallet);
    }
    free(pos);
    free(part.buf);
}

/* ---- receipts ---------------------------------------------------------------------------- */

void chain_jobs_receipts(const ops_jobs_env *env, ops_jobs_report *rep)
{
    chain_tx_stats st;
    char msg[256];
    if (chain_tx_drive(&env->chain, &st, msg, sizeof msg, NULL) != 0) {
        rep->failed++;
        ops_jobs_line(rep, "receipts: %s", msg);
        return;
    }
    rep->done += st.confirmed + st.reverted + st.failed + st.replaced;
    rep->failed += st.errors;
    rep->skipped += st.waiting;
    ops_jobs_line(rep, "receipts: prepared %u, signed %u, broadcast %u, confirmed %u, reverted %u, failed %u, "
                  "replaced %u, waiting %u, errors %u", st.prepared, st.signed_, st.broadcast, st.confirmed,
                  st.reverted, st.failed, st.replaced, st.waiting, st.errors);
}
