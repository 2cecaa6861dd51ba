/* treasury_exec: see treasury_exec.h. */
#include "treasury_exec.h"

#include "chain_jobs.h"
#include "hex.h"
#include "log.h"
#include "svc_ledger.h"
#include "vault_store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *category;
    unsigned bps[4]; /* by risk level 1..3 */
} treasury_table[] = {
    {"lending", {0, 10000, 7000, 4000}},
    {"lp", {0, 0, 0, 3000}},
    {"staking", {0, 0, 3000, 3000}},
};

int treasury_split(u256 *parts, const adapter_protocol *protos, size_t n, const u256 *amount, treasury_risk risk)
{
    size_t count[3] = {0};
    unsigned total_bps = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i] = U256_ZERO;
        for (size_t c = 0; c < 3; c++)
            count[c] += strcmp(protos[i].category, treasury_table[c].category) == 0;
    }
    for (size_t c = 0; c < 3; c++)
        if (count[c])
            total_bps += treasury_table[c].bps[risk];
    if (total_bps == 0)
        return -1;
    u256 assigned = U256_ZERO;
    size_t first = n;
    for (size_t c = 0; c < 3; c++) {
        if (!count[c] || !treasury_table[c].bps[risk])
            continue;
        u256 share, each, rest, bps = u256_from_u64(treasury_table[c].bps[risk]), tb = u256_from_u64(total_bps),
                                  k = u256_from_u64(count[c]);
        if (u256_muldiv_floor(&share, amount, &bps, &tb) != 0 || u256_divmod(&each, &rest, &share, &k) != 0)
            return -1;
        bool lead = true;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(protos[i].category, treasury_table[c].category) != 0)
                continue;
            parts[i] = each;
            if (lead && u256_add(&parts[i], &parts[i], &rest) != 0)
                return -1;
            if (first == n)
                first = i;
            lead = false;
            if (u256_add(&assigned, &assigned, &parts[i]) != 0)
                return -1;
        }
    }
    /* Rounding dust of the category split goes to the first leg. */
    u256 dust;
    if (first < n && u256_sub(&dust, amount, &assigned) == 0 && u256_add(&parts[first], &parts[first], &dust) != 0)
        return -1;
    return first < n ? 0 : -1;
}

/* ---- reads -------------------------------------------------------------------------- */

typedef struct {
    const char *client_id, *symbol;
    uint64_t chain_id;
    bool found;
    uint8_t token[20], wallet[20];
    char token_hex[41];
    adapter_protocol *protos;
    size_t n_protos;
    u256 reserved;      /* wallet tokens that are not the client's to deploy */
} te_read_arg;

static rpc_code te_read_body(ledger_tx *tx, void *argp)
{
    te_read_arg *a = argp;
    vault_row v;
    bool found = false;
    a->found = false;
    rpc_code c = vault_store_get_by_token(tx, &v, &found, a->client_id, a->chain_id, a->symbol, false);
    if (c != RPC_OK || !found)
        return c;
    snprintf(a->token_hex, sizeof a->token_hex, "%.40s", v.token_address + 2);
    if (hex_decode_exact(a->token, 20, a->token_hex) != 0)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: vault token address");
    if ((c = chain_jobs_wallet(tx, a->wallet, &found, a->client_id)) != RPC_OK)
        return c;
    if (!found)
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "this client has no custodial wallet");
    free(a->protos);
    a->protos = NULL;
    if ((c = chain_jobs_protocols(tx, &a->protos, &a->n_protos, a->chain_id, a->token_hex, NULL)) != RPC_OK)
        return c;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->chain_id);
    const char *p[3] = {a->client_id, chain, a->token_hex};
    PGresult *res = ledger_query(
        tx, &c,
        "SELECT greatest(0, "
        " coalesce((SELECT sum(idle_assets) FROM client_vaults WHERE client_id = $1::uuid AND chain_id = $2::bigint "
        "   AND token_address = decode($3, 'hex')), 0)"
        " - coalesce((SELECT sum(t.amount) FROM chain_transactions t JOIN client_vaults v ON v.id = t.vault_id "
        "   WHERE t.client_id = $1::uuid AND t.chain_id = $2::bigint AND v.token_address = decode($3, 'hex') "
        "   AND t.kind = 'supply' AND t.settled_at IS NULL AND t.status IN ('created', 'signed', 'submitted')), 0)"
        " + coalesce((SELECT sum(t.amount) FROM chain_transactions t JOIN client_vaults v ON v.id = t.vault_id "
        "   WHERE t.client_id = $1::uuid AND t.chain_id = $2::bigint AND v.token_address = decode($3, 'hex') "
        "   AND t.kind = 'withdraw' AND t.settled_at IS NULL AND t.status IN ('created', 'signed', 'submitted')), 0)"
        " + coalesce((SELECT sum(d.amount) FROM deposits d JOIN client_vaults v ON v.id = d.vault_id "
        "   WHERE d.client_id = $1::uuid AND d.chain_id = $2::bigint AND v.token_address = decode($3, 'hex') "
        "   AND d.status = 'PROVIDER_CONFIRMING'), 0)"
        " + coalesce((SELECT sum(t.amount) FROM chain_transactions t JOIN supported_protocols sp ON "
        "   sp.id = t.protocol_id WHERE t.client_id = $1::uuid AND t.chain_id = $2::bigint AND t.vault_id IS NULL "
        "   AND sp.token_address = decode($3, 'hex') AND t.kind = 'supply' AND t.settled_at IS NULL "
        "   AND t.status IN ('created', 'signed', 'submitted')), 0))::text",
        3, p);
    if (!res)
        return c;
    c = ledger_get_u256(tx, &a->reserved, res, 0, 0, false);
    PQclear(res);
    a->found = c == RPC_OK;
    return c;
}

/* ---- legs ---------------------------------------------------------------------------- */

typedef struct {
    const char *client_id;
    uint64_t chain_id;
    const chain_tx_intent *intents;
    size_t n;
    char ids[3][CHAIN_TX_ID_MAX];
    const char *prefix;   /* the leg's intent keys start with it */
} te_create_arg;

static rpc_code te_create_body(ledger_tx *tx, void *argp)
{
    te_create_arg *a = argp;
    ledger_tx_set_actor(tx, "job:treasury");
    /* A retried call (same idempotency-key): the leg's intents exist
     * already, whatever the allowance says now; wait for those. */
    const char *p[1] = {a->prefix};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id FROM chain_transactions WHERE starts_with(intent_key, $1) "
                                 "AND strpos(intent_key, '#r') = 0 ORDER BY seq LIMIT 3",
                                 1, p);
    if (!res)
        return c;
    if (PQntuples(res) > 0) {
        a->n = (size_t)PQntuples(res);
        for (size_t i = 0; i < a->n; i++)
            snprintf(a->ids[i], CHAIN_TX_ID_MAX, "%s", PQgetvalue(res, (int)i, 0));
        PQclear(res);
        return RPC_OK;
    }
    PQclear(res);
    for (size_t i = 0; i < a->n; i++) {
        bool existed;
        if ((c = chain_tx_create(tx, a->ids[i], &existed, &a->intents[i])) != RPC_OK)
            return c;
    }
    return RPC_OK;
}

/* Waits for one intent until mined; reads its receipt. 0 success; -1 with
 * leg->error. */
static int te_wait(const ops_jobs_env *env, treasury_leg *leg, treasury_result *out, const char *id,
                   bool record_hash)
{
    chain_tx_row *row = calloc(1, sizeof *row);
    char msg[300];
    if (!row) {
        snprintf(leg->error, sizeof leg->error, "out of memory");
        return -1;
    }
    int w = chain_tx_wait(&env->chain, row, msg, sizeof msg, id, false, env->treasury_wait_ms);
    int rc = -1;
    if (row->raw_len && record_hash) {
        hex_encode_0x(leg->tx_hash, row->hash, 32);
        leg->tx_hash[66] = '\0';
    }
    if (w < 0) {
        snprintf(leg->error, sizeof leg->error, "%.290s", msg);
    } else if (w > 0) {
        snprintf(leg->error, sizeof leg->error, "not mined within %lld ms (status %s); follow it with "
                 "ListChainTransactions", (long long)env->treasury_wait_ms, row->status);
    } else if (strcmp(row->status, "failed") == 0) {
        snprintf(leg->error, sizeof leg->error, "%.250s", row->error[0] ? row->error : "failed before it was sent");
    } else {
        evm_receipt rc_;
        bool found = false;
        evm_rpc_error ee;
        if (evm_rpc_get_transaction_receipt(env->chain.evm, &rc_, &found, &ee, row->hash) != EVM_OK || !found) {
            snprintf(leg->error, sizeof leg->error, "receipt unavailable: %.250s", found ? ee.message : "not found");
        } else {
            out->gas_used += rc_.gas_used;
            leg->gas_used += rc_.gas_used;
            if (rc_.status == 1)
                rc = 0;
            else
                snprintf(leg->error, sizeof leg->error, "reverted on chain (block %llu)",
                         (unsigned long long)rc_.block_number);
            evm_receipt_dispose(&rc_);
        }
    }
    free(row);
    return rc;
}

static void te_op_key(char out[33], const char *client_id, const char *op_key, const char *what)
{
    if (!op_key || !*op_key) {
        uint8_t r[16];
        randombytes_buf(r, sizeof r);
        hex_encode(out, r, 16);
        out[32] = '\0';
        return;
    }
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)client_id, strlen(client_id));
    crypto_generichash_update(&st, (const uint8_t *)what, strlen(what) + 1);
    crypto_generichash_update(&st, (const uint8_t *)op_key, strlen(op_key));
    crypto_generichash_final(&st, h, sizeof h);
    hex_encode(out, h, 16);
    out[32] = '\0';
}

rpc_code treasury_execute_deposit(const ops_jobs_env *env, treasury_result *out, char *msg, size_t msg_len,
                                  const char *client_id, const char *token_symbol, uint64_t chain_id,
                                  const u256 *amount, treasury_risk risk, const char *op_key)
{
    memset(out, 0, sizeof *out);
    if (!env->has_chain) {
        snprintf(msg, msg_len, "coffer-api has no chain client and signer configured (evm.endpoints, signer.socket)");
        return RPC_FAILED_PRECONDITION;
    }
    if (chain_id != env->chain.chain_id) {
        snprintf(msg, msg_len, "chain_id %llu is not served here (chain %llu is)", (unsigned long long)chain_id,
                 (unsigned long long)env->chain.chain_id);
        return RPC_INVALID_ARGUMENT;
    }
    te_read_arg ra = {client_id, token_symbol, chain_id, false, {0}, {0}, "", NULL, 0, U256_ZERO};
    rpc_code c = ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, msg_len, te_read_body, &ra);
    if (c == RPC_OK && !ra.found) {
        snprintf(msg, msg_len, "no vault for token %s on chain %llu (ConfigureVault)", token_symbol,
                 (unsigned long long)chain_id);
        c = RPC_NOT_FOUND;
    }
    u256 *parts = NULL;
    if (c != RPC_OK)
        goto out;
    if (ra.n_protos > TREASURY_LEGS_MAX)
        ra.n_protos = TREASURY_LEGS_MAX;
    parts = calloc(ra.n_protos + 1, sizeof *parts);
    if (!parts || treasury_split(parts, ra.protos, ra.n_protos, amount, risk) != 0) {
        snprintf(msg, msg_len, "no active protocol for token %s on chain %llu takes this risk level", token_symbol,
                 (unsigned long long)chain_id);
        c = RPC_FAILED_PRECONDITION;
        goto out;
    }
    u256 balance, free_amt;
    evm_rpc_error ee;
    if (evm_rpc_erc20_balance_of(env->chain.evm, &balance, &ee, ra.token, ra.wallet, EVM_BLOCK_ID_LATEST) != EVM_OK) {
        snprintf(msg, msg_len, "the chain node did not answer (balance): retry");
        c = RPC_UNAVAILABLE;
        goto out;
    }
    if (u256_sub(&free_amt, &balance, &ra.reserved) != 0)
        free_amt = U256_ZERO;
    if (u256_cmp(amount, &free_amt) > 0) {
        char a1[U256_DEC_MAX], a2[U256_DEC_MAX], a3[U256_DEC_MAX];
        snprintf(msg, msg_len, "amount %s exceeds the wallet's free %s balance %s (balance %s, of which %s belongs "
                 "to vaults or is in flight)", vault_store_dec(a1, amount), token_symbol,
                 vault_store_dec(a2, &free_amt), vault_store_dec(a3, &balance), vault_store_dec(a1, &ra.reserved));
        c = RPC_FAILED_PRECONDITION;
        goto out;
    }
    char op[33];
    te_op_key(op, client_id, op_key, "deposit");
    for (size_t i = 0; i < ra.n_protos; i++) {
        if (u256_is_zero(&parts[i]))
            continue;
        const adapter_protocol *p = &ra.protos[i];
        treasury_leg *leg = &out->legs[out->n++];
        snprintf(leg->protocol, sizeof leg->protocol, "%s", p->name);
        leg->amount = parts[i];
        u256 allowance;
        if (adapter_erc20_allowance(env->chain.evm, &allowance, &ee, p->token, ra.wallet, p->target,
                                    EVM_BLOCK_ID_LATEST) != EVM_OK) {
            snprintf(leg->error, sizeof leg->error, "allowance unreadable: %.200s", ee.message);
            continue;
        }
        u256 appr[2];
        size_t na = 0;
        adapter_approvals(appr, &na, &allowance, &parts[i]);
        chain_tx_intent in[3];
        adapter_call calls[3];
        char keys[3][200];
        size_t k = 0;
        bool bad = false;
        for (size_t j = 0; j < na; j++, k++) {
            bad = bad || adapter_erc20_approve(&calls[k], p->target, &appr[j]) != 0;
            snprintf(keys[k], sizeof keys[k], "treasury:%s:%s:%s:approve%zu", client_id, op, p->id, j);
            in[k] = (chain_tx_intent){.client_id = client_id, .chain_id = chain_id, .intent_key = keys[k],
                                      .kind = "approve", .protocol_id = p->id, .value = U256_ZERO,
                                      .data = calls[k].data, .data_len = calls[k].len, .amount = appr[j]};
            memcpy(in[k].to, p->token, 20);
        }
        bad = bad || adapter_get(p)->supply(&calls[k], p, &parts[i], ra.wallet) != 0;
        snprintf(keys[k], sizeof keys[k], "treasury:%s:%s:%s:supply", client_id, op, p->id);
        in[k] = (chain_tx_intent){.client_id = client_id, .chain_id = chain_id, .intent_key = keys[k],
                                  .kind = "supply", .protocol_id = p->id, .value = U256_ZERO, .data = calls[k].data,
                                  .data_len = calls[k].len, .amount = parts[i]};
        memcpy(in[k].to, p->target, 20);
        k++;
        if (bad) {
            snprintf(leg->error, sizeof leg->error, "calldata could not be built");
            continue;
        }
        char prefix[160];
        snprintf(prefix, sizeof prefix, "treasury:%s:%s:%s:", client_id, op, p->id);
        te_create_arg ca = {client_id, chain_id, in, k, {"", "", ""}, prefix};
        char why[300];
        if (ledger_run_plain(env->pool, NULL, env->timeout_ms, why, sizeof why, te_create_body, &ca) != RPC_OK) {
            snprintf(leg->error, sizeof leg->error, "not recorded: %.250s", why);
            continue;
        }
        int ok = 0;
        for (size_t j = 0; j < ca.n && ok == 0; j++)
            ok = te_wait(env, leg, out, ca.ids[j], j == ca.n - 1);
        if (ok == 0) {
            leg->success = true;
            if (u256_add(&out->total, &out->total, &parts[i]) != 0)
                out->total = U256_MAX;
        }
        log_info("treasury.deposit_leg", "client=%s protocol=%s success=%d tx=%s", client_id, p->name, leg->success,
                 leg->tx_hash);
    }
out:
    free(parts);
    free(ra.protos);
    return c;
}

/* ---- withdrawal --------------------------------------------------------------------- */

typedef struct {
    const char *client_id;
    uint64_t chain_id;
    const char *token_hex;
    const char *name;
    adapter_protocol proto;
    bool found;
    u256 available;   /* treasury book less withdrawals in flight */
} te_take_arg;

static rpc_code te_take_body(ledger_tx *tx, void *argp)
{
    te_take_arg *a = argp;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->chain_id);
    const char *p[4] = {a->name, chain, a->token_hex, a->client_id};
    rpc_code c;
    a->found = false;
    PGresult *res = ledger_query(
        tx, &c,
        "SELECT sp.id, sp.name, sp.category, sp.adapter, sp.addresses::text, encode(sp.token_address, 'hex'), "
        "greatest(0, coalesce(t.book_balance, 0) - coalesce((SELECT sum(x.amount) FROM chain_transactions x WHERE "
        "x.client_id = $4::uuid AND x.protocol_id = sp.id AND x.vault_id IS NULL AND x.kind = 'withdraw' AND "
        "x.settled_at IS NULL AND x.status IN ('created', 'signed', 'submitted')), 0))::text "
        "FROM supported_protocols sp LEFT JOIN treasury_positions t ON t.protocol_id = sp.id AND t.client_id = "
        "$4::uuid WHERE sp.name = $1 AND sp.chain_id = $2::bigint AND sp.token_address = decode($3, 'hex')",
        4, p);
    if (!res)
        return c;
    if (PQntuples(res) == 1) {
        char m[200];
        if (adapter_protocol_load(&a->proto, m, sizeof m, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                                  PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4),
                                  PQgetvalue(res, 0, 5)) == 0 &&
            (c = ledger_get_u256(tx, &a->available, res, 0, 6, false)) == RPC_OK)
            a->found = true;
    }
    PQclear(res);
    return c;
}

rpc_code treasury_execute_withdrawal(const ops_jobs_env *env, treasury_result *out, char *msg, size_t msg_len,
                                     const char *client_id, const char *token_symbol, uint64_t chain_id,
                                     const treasury_take *takes, size_t n_takes, const char *op_key)
{
    memset(out, 0, sizeof *out);
    if (!env->has_chain) {
        snprintf(msg, msg_len, "coffer-api has no chain client and signer configured (evm.endpoints, signer.socket)");
        return RPC_FAILED_PRECONDITION;
    }
    if (chain_id != env->chain.chain_id) {
        snprintf(msg, msg_len, "chain_id %llu is not served here (chain %llu is)", (unsigned long long)chain_id,
                 (unsigned long long)env->chain.chain_id);
        return RPC_INVALID_ARGUMENT;
    }
    if (n_takes == 0 || n_takes > TREASURY_LEGS_MAX) {
        snprintf(msg, msg_len, "withdrawals must list 1..%d protocols", TREASURY_LEGS_MAX);
        return RPC_INVALID_ARGUMENT;
    }
    te_read_arg ra = {client_id, token_symbol, chain_id, false, {0}, {0}, "", NULL, 0, U256_ZERO};
    rpc_code c = ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, msg_len, te_read_body, &ra);
    free(ra.protos);
    if (c == RPC_OK && !ra.found) {
        snprintf(msg, msg_len, "no vault for token %s on chain %llu (ConfigureVault)", token_symbol,
                 (unsigned long long)chain_id);
        c = RPC_NOT_FOUND;
    }
    if (c != RPC_OK)
        return c;
    /* Every leg must be known and covered before anything is sent. */
    te_take_arg *ta = calloc(n_takes, sizeof *ta);
    if (!ta) {
        snprintf(msg, msg_len, "out of memory");
        return RPC_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < n_takes && c == RPC_OK; i++) {
        ta[i] = (te_take_arg){.client_id = client_id, .chain_id = chain_id, .token_hex = ra.token_hex,
                              .name = takes[i].protocol};
        c = ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, msg_len, te_take_body, &ta[i]);
        if (c == RPC_OK && !ta[i].found) {
            snprintf(msg, msg_len, "withdrawals[%zu]: protocol %.64s does not serve %s on chain %llu", i,
                     takes[i].protocol, token_symbol, (unsigned long long)chain_id);
            c = RPC_NOT_FOUND;
        } else if (c == RPC_OK && u256_cmp(&takes[i].amount, &ta[i].available) > 0) {
            char a1[U256_DEC_MAX], a2[U256_DEC_MAX];
            snprintf(msg, msg_len, "withdrawals[%zu]: %s exceeds this client's treasury position %s in %.64s (vault "
                     "allocations are not the treasury's to withdraw)", i, vault_store_dec(a1, &takes[i].amount),
                     vault_store_dec(a2, &ta[i].available), takes[i].protocol);
            c = RPC_FAILED_PRECONDITION;
        }
    }
    char op[33];
    te_op_key(op, client_id, op_key, "withdrawal");
    for (size_t i = 0; i < n_takes && c == RPC_OK; i++) {
        const adapter_protocol *p = &ta[i].proto;
        treasury_leg *leg = &out->legs[out->n++];
        snprintf(leg->protocol, sizeof leg->protocol, "%s", p->name);
        leg->amount = takes[i].amount;
        chain_tx_intent in;
        adapter_call call;
        char key[200];
        if (adapter_get(p)->withdraw(&call, p, &takes[i].amount, ra.wallet) != 0) {
            snprintf(leg->error, sizeof leg->error, "calldata could not be built");
            continue;
        }
        snprintf(key, sizeof key, "treasury:%s:%s:%s:%zu:withdraw", client_id, op, p->id, i);
        in = (chain_tx_intent){.client_id = client_id, .chain_id = chain_id, .intent_key = key, .kind = "withdraw",
                               .protocol_id = p->id, .value = U256_ZERO, .data = call.data, .data_len = call.len,
                               .amount = takes[i].amount};
        memcpy(in.to, p->target, 20);
        char prefix[160];
        snprintf(prefix, sizeof prefix, "treasury:%s:%s:%s:%zu:", client_id, op, p->id, i);
        te_create_arg ca = {client_id, chain_id, &in, 1, {"", "", ""}, prefix};
        char why[300];
        if (ledger_run_plain(env->pool, NULL, env->timeout_ms, why, sizeof why, te_create_body, &ca) != RPC_OK) {
            snprintf(leg->error, sizeof leg->error, "not recorded: %.250s", why);
            continue;
        }
        if (te_wait(env, leg, out, ca.ids[0], true) == 0) {
            leg->success = true;
            if (u256_add(&out->total, &out->total, &takes[i].amount) != 0)
                out->total = U256_MAX;
        }
    }
    free(ta);
    return c;
}
