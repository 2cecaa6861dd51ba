/* chain_tx: see chain_tx.h. */
#include "chain_tx.h"

#include "abi.h"
#include "hex.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CT_WALLET_ROWS_MAX 256
#define CT_PREPARE_PER_PASS 32

/* ---- small helpers ---------------------------------------------------------- */

static int64_t ct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ct_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void chain_tx_bump(u256 *out, const u256 *v, unsigned pct)
{
    u256 num = u256_from_u64(100u + pct), hundred = u256_from_u64(100), one = U256_ONE, r, min;
    if (u256_muldiv_ceil(&r, v, &num, &hundred) != 0)
        r = *v;
    if (u256_add(&min, v, &one) != 0)
        min = *v;
    *out = u256_cmp(&r, &min) < 0 ? min : r;
}

static const char *ct_dec(char buf[U256_DEC_MAX], const u256 *v)
{
    u256_to_dec(buf, v);
    return buf;
}

/* Copies a text column, "" for NULL. */
static void ct_text(char *out, size_t cap, const PGresult *res, int r, int c)
{
    snprintf(out, cap, "%s", PQgetisnull(res, r, c) ? "" : PQgetvalue(res, r, c));
}

static int ct_hex_var(uint8_t *out, size_t cap, size_t *len, const char *hex)
{
    size_t n = strlen(hex);
    *len = 0;
    if (n == 0)
        return 0;
    return hex_decode(out, cap, len, hex, n);
}

/* ---- create ------------------------------------------------------------------- */

rpc_code chain_tx_create(ledger_tx *tx, char id[CHAIN_TX_ID_MAX], bool *existed, const chain_tx_intent *in)
{
    rpc_code c;
    *existed = false;
    size_t kl = strlen(in->intent_key);
    if (kl < 1 || kl > 200 || in->data_len > CHAIN_TX_DATA_MAX)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "intent key or calldata out of range");
    char to[43], data[2 * CHAIN_TX_DATA_MAX + 3], value[U256_DEC_MAX], amount[U256_DEC_MAX], gas[24], chain[24];
    ledger_bytea_param(to, in->to, 20);
    ledger_bytea_param(data, in->data ? in->data : (const uint8_t *)"", in->data_len);
    snprintf(gas, sizeof gas, "%llu", (unsigned long long)in->gas_limit);
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)in->chain_id);
    const char *p[12] = {in->client_id, in->intent_key, in->kind, in->protocol_id, to, ct_dec(value, &in->value),
                         data, ct_dec(amount, &in->amount), in->gas_limit ? gas : NULL, in->vault_id,
                         in->withdrawal_id, chain};
    PGresult *res = ledger_query(tx, &c,
                                 "INSERT INTO chain_transactions (client_id, chain_id, wallet_address, intent_key, kind, "
                                 "protocol_id, to_address, value, data, amount, gas_limit, vault_id, withdrawal_id) "
                                 "SELECT o.id, $12::bigint, o.wallet_address, $2, $3, $4::uuid, $5::bytea, $6::numeric, "
                                 "$7::bytea, $8::numeric, $9::numeric, $10::uuid, $11::uuid "
                                 "FROM client_organizations o WHERE o.id = $1::uuid AND o.wallet_address IS NOT NULL "
                                 "ON CONFLICT (intent_key) DO NOTHING RETURNING id",
                                 12, p);
    if (!res)
        return c;
    if (PQntuples(res) == 1) {
        snprintf(id, CHAIN_TX_ID_MAX, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return RPC_OK;
    }
    PQclear(res);
    const char *k[1] = {in->intent_key};
    res = ledger_query(tx, &c, "SELECT id FROM chain_transactions WHERE intent_key = $1", 1, k);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "client %s has no custodial wallet", in->client_id);
    }
    snprintf(id, CHAIN_TX_ID_MAX, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    *existed = true;
    return RPC_OK;
}

/* ---- load ----------------------------------------------------------------------- */

#define CT_COLUMNS                                                                                               \
    "SELECT id, client_id, chain_id, encode(wallet_address, 'hex'), coalesce(nonce, -1), seq, intent_key, kind, "  \
    "coalesce(protocol_id::text, ''), coalesce(vault_id::text, ''), coalesce(withdrawal_id::text, ''), "         \
    "encode(to_address, 'hex'), value::text, encode(data, 'hex'), coalesce(gas_limit::text, ''), "               \
    "coalesce(max_fee_per_gas::text, ''), coalesce(max_priority_fee_per_gas::text, ''), "                        \
    "coalesce(encode(raw_tx, 'hex'), ''), coalesce(encode(tx_hash, 'hex'), ''), status, coalesce(amount, 0)::text, " \
    "coalesce(block_number, -1), coalesce(gas_used, 0)::text, "                                                 \
    "coalesce(floor(extract(epoch FROM (clock_timestamp() - submitted_at)) * 1000)::bigint, -1), "              \
    "settled_at IS NOT NULL, coalesce(error, ''), coalesce(replaced_by::text, '') FROM chain_transactions "

static int ct_parse(chain_tx_row *o, const PGresult *res, int r)
{
    memset(o, 0, sizeof *o);
    ct_text(o->id, sizeof o->id, res, r, 0);
    ct_text(o->client_id, sizeof o->client_id, res, r, 1);
    o->chain_id = strtoull(PQgetvalue(res, r, 2), NULL, 10);
    if (hex_decode_exact(o->wallet, 20, PQgetvalue(res, r, 3)) != 0)
        return -1;
    long long nonce = strtoll(PQgetvalue(res, r, 4), NULL, 10);
    o->has_nonce = nonce >= 0;
    o->nonce = o->has_nonce ? (uint64_t)nonce : 0;
    o->seq = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    ct_text(o->intent_key, sizeof o->intent_key, res, r, 6);
    ct_text(o->kind, sizeof o->kind, res, r, 7);
    ct_text(o->protocol_id, sizeof o->protocol_id, res, r, 8);
    ct_text(o->vault_id, sizeof o->vault_id, res, r, 9);
    ct_text(o->withdrawal_id, sizeof o->withdrawal_id, res, r, 10);
    if (hex_decode_exact(o->to, 20, PQgetvalue(res, r, 11)) != 0 ||
        u256_from_dec_str(&o->value, PQgetvalue(res, r, 12)) != 0 ||
        ct_hex_var(o->data, sizeof o->data, &o->data_len, PQgetvalue(res, r, 13)) != 0)
        return -1;
    const char *gas = PQgetvalue(res, r, 14), *fee = PQgetvalue(res, r, 15), *tip = PQgetvalue(res, r, 16);
    if (gas[0])
        o->gas_limit = strtoull(gas, NULL, 10);
    if (gas[0] && fee[0] && tip[0]) {
        o->has_gas = true;
        if (u256_from_dec_str(&o->max_fee, fee) != 0 || u256_from_dec_str(&o->max_tip, tip) != 0)
            return -1;
    }
    if (ct_hex_var(o->raw, sizeof o->raw, &o->raw_len, PQgetvalue(res, r, 17)) != 0)
        return -1;
    if (o->raw_len && hex_decode_exact(o->hash, 32, PQgetvalue(res, r, 18)) != 0)
        return -1;
    ct_text(o->status, sizeof o->status, res, r, 19);
    if (u256_from_dec_str(&o->amount, PQgetvalue(res, r, 20)) != 0)
        return -1;
    long long bn = strtoll(PQgetvalue(res, r, 21), NULL, 10);
    o->has_block = bn >= 0;
    o->block_number = o->has_block ? (uint64_t)bn : 0;
    o->gas_used = strtoull(PQgetvalue(res, r, 22), NULL, 10);
    o->submitted_age_ms = strtoll(PQgetvalue(res, r, 23), NULL, 10);
    o->settled = strcmp(PQgetvalue(res, r, 24), "t") == 0;
    ct_text(o->error, sizeof o->error, res, r, 25);
    ct_text(o->replaced_by, sizeof o->replaced_by, res, r, 26);
    return 0;
}

rpc_code chain_tx_load(ledger_tx *tx, chain_tx_row *out, bool *found, const char *id, bool lock)
{
    rpc_code c;
    const char *p[1] = {id};
    *found = false;
    PGresult *res = ledger_query(tx, &c,
                                 lock ? CT_COLUMNS "WHERE id = $1::uuid FOR UPDATE" : CT_COLUMNS "WHERE id = $1::uuid",
                                 1, p);
    if (!res)
        return c;
    if (PQntuples(res) == 1) {
        if (ct_parse(out, res, 0) != 0) {
            PQclear(res);
            return ledger_fail(tx, RPC_INTERNAL, "internal error: chain transaction %s is unreadable", id);
        }
        *found = true;
    }
    PQclear(res);
    return RPC_OK;
}

rpc_code chain_tx_pending_amount(ledger_tx *tx, u256 *out, const char *vault_id, const char *kind)
{
    rpc_code c;
    const char *p[2] = {vault_id, kind};
    /* One amount per nonce group: a replacement repeats its original. */
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT coalesce(sum(amount), 0)::text FROM chain_transactions "
                                 "WHERE vault_id = $1::uuid AND kind = $2 AND settled_at IS NULL "
                                 "AND status IN ('created', 'signed', 'submitted')",
                                 2, p);
    if (!res)
        return c;
    c = ledger_get_u256(tx, out, res, 0, 0, false);
    PQclear(res);
    return c;
}

/* ---- database steps (each its own transaction) ------------------------------------ */

typedef struct {
    const chain_env *env;
    const char *wallet_hex;
    chain_tx_row *rows;
    size_t n;
} ct_rows_arg;

static rpc_code ct_rows_body(ledger_tx *tx, void *argp)
{
    ct_rows_arg *a = argp;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->env->chain_id);
    const char *p[2] = {chain, a->wallet_hex};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 CT_COLUMNS "WHERE chain_id = $1::bigint AND wallet_address = decode($2, 'hex') "
                                 "AND settled_at IS NULL AND status IN ('created', 'signed', 'submitted', 'replaced') "
                                 "ORDER BY seq LIMIT 256",
                                 2, p);
    if (!res)
        return c;
    a->n = 0;
    for (int r = 0; r < PQntuples(res) && a->n < CT_WALLET_ROWS_MAX; r++)
        if (ct_parse(&a->rows[a->n], res, r) == 0)
            a->n++;
    PQclear(res);
    return RPC_OK;
}

typedef struct {
    const char *sql;
    int n;
    const char *const *p;
    uint64_t affected;
} ct_exec_arg;

static rpc_code ct_exec_body(ledger_tx *tx, void *argp)
{
    ct_exec_arg *a = argp;
    return ledger_exec(tx, &a->affected, a->sql, a->n, a->p);
}

static rpc_code ct_exec(const chain_env *env, uint64_t *affected, char *msg, size_t msg_len, const char *sql, int n,
                        const char *const *p)
{
    ct_exec_arg a = {sql, n, p, 0};
    rpc_code c = ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, msg_len, ct_exec_body, &a);
    if (affected)
        *affected = a.affected;
    return c;
}

/* Marks row failed (never signed) and settles it; releases its nonce when
 * it holds the wallet's highest one. */
typedef struct {
    const chain_env *env;
    const chain_tx_row *row;
    const char *error;
    bool release_nonce;
} ct_fail_arg;

static rpc_code ct_fail_body(ledger_tx *tx, void *argp)
{
    ct_fail_arg *a = argp;
    chain_tx_row cur;
    bool found;
    rpc_code c = chain_tx_load(tx, &cur, &found, a->row->id, true);
    if (c != RPC_OK || !found || strcmp(cur.status, "created") != 0 || cur.raw_len)
        return c;
    char nonce[24], chain[24], wallet[41];
    snprintf(nonce, sizeof nonce, "%llu", (unsigned long long)cur.nonce);
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)cur.chain_id);
    hex_encode(wallet, cur.wallet, 20);
    wallet[40] = '\0';
    if (cur.has_nonce && a->release_nonce) {
        const char *p[3] = {chain, wallet, nonce};
        if ((c = ledger_exec(tx, NULL,
                             "UPDATE wallet_nonces SET next_nonce = $3::bigint WHERE chain_id = $1::bigint "
                             "AND wallet_address = decode($2, 'hex') AND next_nonce = $3::bigint + 1",
                             3, p)) != RPC_OK)
            return c;
    }
    char err[1001];
    snprintf(err, sizeof err, "%s", a->error);
    const char *p[3] = {cur.id, err, a->release_nonce ? "t" : "f"};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE chain_transactions SET status = 'failed', error = $2, settled_at = now(), "
                         "nonce = CASE WHEN $3::boolean THEN NULL ELSE nonce END WHERE id = $1::uuid",
                         3, p)) != RPC_OK)
        return c;
    snprintf(cur.status, sizeof cur.status, "failed");
    if (a->env->settle && (c = a->env->settle(tx, a->env->settle_arg, &cur, "failed")) != RPC_OK)
        return c;
    log_warn("chain_tx.failed", "id=%s intent=%s kind=%s error=\"%.200s\"", cur.id, cur.intent_key, cur.kind,
             a->error);
    return RPC_OK;
}

/* prepare: nonce, gas and fees in one transaction under both locks. */
typedef struct {
    const chain_tx_row *row;
    uint64_t gas_limit;
    const evm_fee_suggestion *fees;
    bool need_init;   /* out: wallet_nonces has no row yet */
    bool done;
    uint64_t nonce;
} ct_prepare_arg;

static rpc_code ct_prepare_body(ledger_tx *tx, void *argp)
{
    ct_prepare_arg *a = argp;
    chain_tx_row cur;
    bool found;
    a->need_init = a->done = false;
    rpc_code c = chain_tx_load(tx, &cur, &found, a->row->id, true);
    if (c != RPC_OK || !found || strcmp(cur.status, "created") != 0 || cur.has_nonce)
        return c;
    char chain[24], wallet[41];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)cur.chain_id);
    hex_encode(wallet, cur.wallet, 20);
    wallet[40] = '\0';
    const char *p[2] = {chain, wallet};
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT next_nonce FROM wallet_nonces WHERE chain_id = $1::bigint "
                                 "AND wallet_address = decode($2, 'hex') FOR UPDATE",
                                 2, p);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        a->need_init = true;
        return RPC_OK;
    }
    int64_t next = 0;
    c = ledger_get_i64(tx, &next, res, 0, 0);
    PQclear(res);
    if (c != RPC_OK)
        return c;
    char nonce[24], gas[24], fee[U256_DEC_MAX], tip[U256_DEC_MAX];
    snprintf(nonce, sizeof nonce, "%lld", (long long)next);
    snprintf(gas, sizeof gas, "%llu", (unsigned long long)a->gas_limit);
    const char *u[6] = {cur.id, nonce, gas, ct_dec(fee, &a->fees->max_fee_per_gas),
                        ct_dec(tip, &a->fees->max_priority_fee_per_gas), NULL};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE chain_transactions SET nonce = $2::bigint, gas_limit = $3::numeric, "
                         "max_fee_per_gas = $4::numeric, max_priority_fee_per_gas = $5::numeric, error = NULL "
                         "WHERE id = $1::uuid",
                         5, u)) != RPC_OK ||
        (c = ledger_exec(tx, NULL,
                         "UPDATE wallet_nonces SET next_nonce = next_nonce + 1 WHERE chain_id = $1::bigint "
                         "AND wallet_address = decode($2, 'hex')",
                         2, p)) != RPC_OK)
        return c;
    a->done = true;
    a->nonce = (uint64_t)next;
    return RPC_OK;
}

/* ---- chain steps -------------------------------------------------------------------- */

/* The client's key (address and sealed blob). */
typedef struct {
    const char *client_id;
    signer_key key;
    bool found;
} ct_key_arg;

static rpc_code ct_key_body(ledger_tx *tx, void *argp)
{
    ct_key_arg *a = argp;
    const char *p[1] = {a->client_id};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT encode(wallet_address, 'hex'), encode(wallet_sealed_blob, 'hex') "
                                 "FROM client_organizations WHERE id = $1::uuid AND wallet_sealed_blob IS NOT NULL",
                                 1, p);
    if (!res)
        return c;
    a->found = PQntuples(res) == 1 && hex_decode_exact(a->key.address, 20, PQgetvalue(res, 0, 0)) == 0 &&
               hex_decode_exact(a->key.sealed_key, SIGNER_SEALED_KEY_LEN, PQgetvalue(res, 0, 1)) == 0;
    PQclear(res);
    if (a->found)
        a->key.kek_version = (uint32_t)a->key.sealed_key[1] << 24 | (uint32_t)a->key.sealed_key[2] << 16 |
                             (uint32_t)a->key.sealed_key[3] << 8 | a->key.sealed_key[4];
    return RPC_OK;
}

static void ct_signer_tx(signer_tx *t, const chain_tx_row *r, const u256 *fee, const u256 *tip)
{
    memset(t, 0, sizeof *t);
    t->type = SIGNER_TX_EIP1559;
    t->chain_id = r->chain_id;
    t->nonce = r->nonce;
    t->gas_limit = r->gas_limit;
    u256_to_be32(t->max_priority_fee_per_gas, tip);
    u256_to_be32(t->max_fee_per_gas, fee);
    t->has_to = true;
    memcpy(t->to, r->to, 20);
    u256_to_be32(t->value, &r->value);
    t->data = r->data_len ? r->data : NULL;
    t->data_len = r->data_len;
}

/* Signs r's stored payload with fees (fee, tip). 0 signed; 1 transient
 * (try later); -1 refused for good (err says why). */
static int ct_sign(const chain_env *env, signer_signed_tx *out, char *err, size_t err_len, const chain_tx_row *r,
                   const u256 *fee, const u256 *tip, bool *double_sign)
{
    ct_key_arg ka = {r->client_id, {{0}, {0}, 0}, false};
    char msg[256];
    *double_sign = false;
    if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_key_body, &ka) != RPC_OK) {
        snprintf(err, err_len, "database: %s", msg);
        return 1;
    }
    if (!ka.found) {
        snprintf(err, err_len, "client %s has no custodial key", r->client_id);
        return -1;
    }
    if (!env->signer) {
        snprintf(err, err_len, "coffer-api has no signer configured (signer.socket)");
        return 1;
    }
    signer_tx t;
    ct_signer_tx(&t, r, fee, tip);
    signer_error se;
    char trace[64];
    snprintf(trace, sizeof trace, "ctx-%.36s", r->id);
    signer_status st = signer_client_sign_transaction(env->signer, out, &se, &ka.key, r->client_id, &t, trace);
    if (st == SIGNER_OK)
        return 0;
    snprintf(err, err_len, "signer: %s%s%s: %s", signer_status_name(st), se.rule[0] ? " " : "", se.rule, se.message);
    switch (st) {
    case SIGNER_ERR_POLICY_DENIED:
    case SIGNER_ERR_BAD_KEY:
    case SIGNER_ERR_UNKNOWN_KEK:
    case SIGNER_ERR_BAD_REQUEST:
    case SIGNER_ERR_INVALID_ARG:
        return -1;
    case SIGNER_ERR_DOUBLE_SIGN:
        *double_sign = true;
        return 1;
    default:
        return 1;
    }
}

/* Stores the signature of a prepared row (status signed). */
static int ct_store_signed(const chain_env *env, chain_tx_row *r, const signer_signed_tx *s)
{
    if (s->raw_tx_len > CHAIN_TX_RAW_MAX)
        return -1;
    char raw[2 * CHAIN_TX_RAW_MAX + 3], hash[67], msg[256];
    ledger_bytea_param(raw, s->raw_tx, s->raw_tx_len);
    ledger_bytea_param(hash, s->tx_hash, 32);
    const char *p[3] = {r->id, raw, hash};
    uint64_t n = 0;
    if (ct_exec(env, &n, msg, sizeof msg,
                "UPDATE chain_transactions SET raw_tx = $2::bytea, tx_hash = $3::bytea, status = 'signed', error = NULL "
                "WHERE id = $1::uuid AND status = 'created' AND raw_tx IS NULL",
                3, p) != RPC_OK || n != 1) {
        log_warn("chain_tx.store", "id=%s stored=%llu message=\"%s\"", r->id, (unsigned long long)n, msg);
        return -1;
    }
    memcpy(r->raw, s->raw_tx, s->raw_tx_len);
    r->raw_len = s->raw_tx_len;
    memcpy(r->hash, s->tx_hash, 32);
    snprintf(r->status, sizeof r->status, "signed");
    return 0;
}

/* Broadcasts r's stored bytes; records the attempt. */
static void ct_broadcast(const chain_env *env, chain_tx_row *r, chain_tx_stats *st)
{
    uint8_t hash[32];
    evm_rpc_error ee;
    memset(&ee, 0, sizeof ee);
    evm_send_status s = evm_rpc_send_raw_transaction(env->evm, hash, &ee, r->raw, r->raw_len);
    char hx[67];
    hex_encode_0x(hx, hash, 32);
    hx[66] = '\0';
    log_info("chain_tx.broadcast", "id=%s nonce=%llu hash=%s result=%s", r->id, (unsigned long long)r->nonce, hx,
             evm_send_status_name(s));
    bool sent = s == EVM_SEND_ACCEPTED || s == EVM_SEND_ALREADY_KNOWN || s == EVM_SEND_NONCE_TOO_LOW ||
                s == EVM_SEND_UNKNOWN || s == EVM_SEND_UNDERPRICED;
    char err[300] = "";
    if (s != EVM_SEND_ACCEPTED && s != EVM_SEND_ALREADY_KNOWN)
        snprintf(err, sizeof err, "broadcast: %s%s%.250s", evm_send_status_name(s), ee.message[0] ? ": " : "",
                 ee.message);
    const char *p[3] = {r->id, sent ? "t" : "f", err[0] ? err : NULL};
    char msg[256];
    if (ct_exec(env, NULL, msg, sizeof msg,
                "UPDATE chain_transactions SET broadcasts = broadcasts + 1, last_broadcast_at = now(), error = $3, "
                "status = CASE WHEN $2::boolean AND status = 'signed' THEN 'submitted' ELSE status END, "
                "submitted_at = CASE WHEN $2::boolean THEN coalesce(submitted_at, now()) ELSE submitted_at END "
                "WHERE id = $1::uuid",
                3, p) == RPC_OK &&
        sent && strcmp(r->status, "signed") == 0)
        snprintf(r->status, sizeof r->status, "submitted");
    if (st)
        st->broadcast++;
}

/* Finalizes a nonce group: winner mined with status; losers replaced;
 * settles. */
typedef struct {
    const chain_env *env;
    const chain_tx_row *winner;
    const evm_receipt *rc;
    uint64_t confirmations;
    bool final;
    bool settled_now;
} ct_final_arg;

static rpc_code ct_final_body(ledger_tx *tx, void *argp)
{
    ct_final_arg *a = argp;
    chain_tx_row cur;
    bool found;
    a->settled_now = false;
    rpc_code c = chain_tx_load(tx, &cur, &found, a->winner->id, true);
    if (c != RPC_OK || !found || cur.settled)
        return c;
    char chain[24], wallet[41], nonce[24], block[24], conf[24], gas[24], price[U256_DEC_MAX], bh[67];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)cur.chain_id);
    hex_encode(wallet, cur.wallet, 20);
    wallet[40] = '\0';
    snprintf(nonce, sizeof nonce, "%llu", (unsigned long long)cur.nonce);
    snprintf(block, sizeof block, "%llu", (unsigned long long)a->rc->block_number);
    snprintf(conf, sizeof conf, "%llu", (unsigned long long)a->confirmations);
    snprintf(gas, sizeof gas, "%llu", (unsigned long long)a->rc->gas_used);
    ledger_bytea_param(bh, a->rc->block_hash, 32);
    const char *status = a->rc->status == 1 ? "confirmed" : "reverted";
    const char *p[8] = {cur.id, a->final ? status : NULL, block, conf, gas, ct_dec(price, &a->rc->effective_gas_price),
                        bh, a->final ? "t" : "f"};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE chain_transactions SET block_number = $3::bigint, confirmations = $4::integer, "
                         "gas_used = $5::numeric, effective_gas_price = $6::numeric, block_hash = $7::bytea, "
                         "status = coalesce($2, status), replaced_by = CASE WHEN $8::boolean THEN NULL ELSE replaced_by END, "
                         "confirmed_at = CASE WHEN $8::boolean THEN now() ELSE NULL END, "
                         "settled_at = CASE WHEN $8::boolean THEN now() ELSE NULL END WHERE id = $1::uuid",
                         8, p)) != RPC_OK)
        return c;
    if (!a->final)
        return RPC_OK;
    const char *q[4] = {chain, wallet, nonce, cur.id};
    if ((c = ledger_exec(tx, NULL,
                         "UPDATE chain_transactions SET status = 'replaced', replaced_by = $4::uuid, settled_at = now() "
                         "WHERE chain_id = $1::bigint AND wallet_address = decode($2, 'hex') AND nonce = $3::bigint "
                         "AND id <> $4::uuid AND settled_at IS NULL AND raw_tx IS NOT NULL",
                         4, q)) != RPC_OK)
        return c;
    snprintf(cur.status, sizeof cur.status, "%s", status);
    cur.has_block = true;
    cur.block_number = a->rc->block_number;
    cur.gas_used = a->rc->gas_used;
    if (a->env->settle && (c = a->env->settle(tx, a->env->settle_arg, &cur, status)) != RPC_OK)
        return c;
    a->settled_now = true;
    return RPC_OK;
}

/* Stores a replacement: the new signed row and the old one replaced. */
typedef struct {
    const chain_tx_row *old;
    const signer_signed_tx *s;
    const u256 *fee, *tip;
    unsigned n_group;
    char new_id[CHAIN_TX_ID_MAX];
} ct_replace_arg;

static rpc_code ct_replace_body(ledger_tx *tx, void *argp)
{
    ct_replace_arg *a = argp;
    char key[CHAIN_TX_KEY_MAX], root[CHAIN_TX_KEY_MAX], raw[2 * CHAIN_TX_RAW_MAX + 3], hash[67], fee[U256_DEC_MAX],
        tip[U256_DEC_MAX];
    snprintf(root, sizeof root, "%s", a->old->intent_key);
    char *cut = strstr(root, "#r");
    if (cut)
        *cut = '\0';
    snprintf(key, sizeof key, "%.200s#r%u", root, a->n_group);
    ledger_bytea_param(raw, a->s->raw_tx, a->s->raw_tx_len);
    ledger_bytea_param(hash, a->s->tx_hash, 32);
    const char *p[6] = {a->old->id, key, ct_dec(fee, a->fee), ct_dec(tip, a->tip), raw, hash};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "INSERT INTO chain_transactions (client_id, chain_id, wallet_address, nonce, intent_key, "
                                 "kind, protocol_id, to_address, value, data, gas_limit, max_fee_per_gas, "
                                 "max_priority_fee_per_gas, raw_tx, tx_hash, status, vault_id, withdrawal_id, amount) "
                                 "SELECT client_id, chain_id, wallet_address, nonce, $2, kind, protocol_id, to_address, "
                                 "value, data, gas_limit, $3::numeric, $4::numeric, $5::bytea, $6::bytea, 'signed', "
                                 "vault_id, withdrawal_id, amount FROM chain_transactions WHERE id = $1::uuid "
                                 "AND status = 'submitted' AND settled_at IS NULL RETURNING id",
                                 6, p);
    if (!res)
        return c;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_ABORTED, "the transaction to replace changed meanwhile");
    }
    snprintf(a->new_id, sizeof a->new_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *u[2] = {a->old->id, a->new_id};
    return ledger_exec(tx, NULL,
                       "UPDATE chain_transactions SET status = 'replaced', replaced_by = $2::uuid WHERE id = $1::uuid",
                       2, u);
}

/* ---- the wallet driver --------------------------------------------------------------- */

/* Follows the nonce group of rows[i..] (rows sharing rows[i].nonce). */
static void ct_follow_group(const chain_env *env, chain_tx_stats *st, chain_tx_row *rows, size_t n, size_t i,
                            uint64_t latest)
{
    uint64_t nonce = rows[i].nonce;
    chain_tx_row *newest = NULL;
    unsigned n_group = 0;
    for (size_t j = 0; j < n; j++) {
        if (!rows[j].has_nonce || rows[j].nonce != nonce || !rows[j].raw_len)
            continue;
        n_group++;
        if (strcmp(rows[j].status, "submitted") == 0 && (!newest || rows[j].seq > newest->seq))
            newest = &rows[j];
        evm_receipt rc;
        bool found = false;
        evm_rpc_error ee;
        if (evm_rpc_get_transaction_receipt(env->evm, &rc, &found, &ee, rows[j].hash) != EVM_OK) {
            st->errors++;
            return;
        }
        if (!found)
            continue;
        rows[j].has_block = true; /* mined: later estimates need not wait for it */
        rows[j].block_number = rc.block_number;
        uint64_t conf = latest >= rc.block_number ? latest - rc.block_number + 1 : 0;
        uint64_t need = env->confirmations ? env->confirmations : 1;
        ct_final_arg fa = {env, &rows[j], &rc, conf, conf >= need, false};
        char msg[256];
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_final_body, &fa) != RPC_OK) {
            log_warn("chain_tx.settle", "id=%s message=\"%s\"", rows[j].id, msg);
            st->errors++;
        } else if (fa.settled_now) {
            if (rc.status == 1)
                st->confirmed++;
            else
                st->reverted++;
            log_info("chain_tx.final", "id=%s intent=%s status=%s block=%llu gas_used=%llu", rows[j].id,
                     rows[j].intent_key, rc.status == 1 ? "confirmed" : "reverted",
                     (unsigned long long)rc.block_number, (unsigned long long)rc.gas_used);
        } else {
            st->waiting++;
        }
        evm_receipt_dispose(&rc);
        return; /* one mined per nonce */
    }
    if (!newest)
        return;
    /* Nothing mined: re-send, and replace when it has waited too long. */
    if (env->replace_after_ms <= 0 || newest->submitted_age_ms < env->replace_after_ms) {
        ct_broadcast(env, newest, st);
        st->waiting++;
        return;
    }
    u256 fee, tip;
    chain_tx_bump(&fee, &newest->max_fee, env->bump_pct);
    chain_tx_bump(&tip, &newest->max_tip, env->bump_pct);
    if (u256_cmp(&tip, &fee) > 0)
        fee = tip;
    signer_signed_tx s;
    memset(&s, 0, sizeof s);
    char err[400];
    bool dbl;
    int rs = ct_sign(env, &s, err, sizeof err, newest, &fee, &tip, &dbl);
    if (rs != 0) {
        log_warn("chain_tx.replace", "id=%s nonce=%llu result=not_signed message=\"%s\"", newest->id,
                 (unsigned long long)nonce, err);
        ct_broadcast(env, newest, st);
        st->errors++;
        return;
    }
    ct_replace_arg ra = {newest, &s, &fee, &tip, n_group, ""};
    char msg[256];
    if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_replace_body, &ra) != RPC_OK) {
        log_warn("chain_tx.replace", "id=%s message=\"%s\"", newest->id, msg);
        signer_signed_tx_dispose(&s);
        st->errors++;
        return;
    }
    st->replaced++;
    chain_tx_row nr = *newest;
    snprintf(nr.id, sizeof nr.id, "%s", ra.new_id);
    snprintf(nr.status, sizeof nr.status, "signed");
    memcpy(nr.raw, s.raw_tx, s.raw_tx_len);
    nr.raw_len = s.raw_tx_len;
    memcpy(nr.hash, s.tx_hash, 32);
    signer_signed_tx_dispose(&s);
    log_info("chain_tx.replaced", "old=%s new=%s nonce=%llu", newest->id, nr.id, (unsigned long long)nonce);
    ct_broadcast(env, &nr, st);
}

/* Whether an earlier row of the wallet is signed or submitted but not
 * mined (the estimate of a later one may depend on it). */
static bool ct_earlier_in_flight(const chain_tx_row *rows, size_t n, const chain_tx_row *r)
{
    for (size_t j = 0; j < n; j++)
        if (&rows[j] != r && rows[j].seq < r->seq && rows[j].raw_len && !rows[j].has_block)
            return true;
    return false;
}

/* Signs (and stores, broadcasts) a prepared row. Returns 0 when it went
 * on, 1 when it must wait, -1 when it failed for good. */
static int ct_sign_and_send(const chain_env *env, chain_tx_stats *st, chain_tx_row *r)
{
    signer_signed_tx s;
    memset(&s, 0, sizeof s);
    char err[400];
    bool dbl = false;
    int rs = ct_sign(env, &s, err, sizeof err, r, &r->max_fee, &r->max_tip, &dbl);
    if (rs < 0) {
        ct_fail_arg fa = {env, r, err, true};
        char msg[256];
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_fail_body, &fa) != RPC_OK)
            st->errors++;
        else
            st->failed++;
        return -1;
    }
    if (rs > 0) {
        const char *p[2] = {r->id, err};
        char msg[256];
        if (ct_exec(env, NULL, msg, sizeof msg, "UPDATE chain_transactions SET error = $2 WHERE id = $1::uuid", 2, p) !=
            RPC_OK)
            st->errors++;
        log_warn("chain_tx.sign", "id=%s result=%s message=\"%s\"", r->id, dbl ? "double_sign" : "retry", err);
        st->errors++;
        return 1;
    }
    int stored = ct_store_signed(env, r, &s);
    signer_signed_tx_dispose(&s);
    if (stored != 0) {
        st->errors++;
        return 1;
    }
    st->signed_++;
    ct_broadcast(env, r, st);
    return 0;
}

/* Prepares the next created row: nonce, gas, fees. 0 prepared, 1 wait,
 * -1 failed for good. */
static int ct_prepare(const chain_env *env, chain_tx_stats *st, chain_tx_row *rows, size_t n, chain_tx_row *r)
{
    evm_rpc_error ee;
    memset(&ee, 0, sizeof ee);
    uint64_t gas = r->gas_limit;
    char msg[400];
    if (!gas) {
        evm_call_msg m = {.from = r->wallet, .to = r->to, .data = r->data, .data_len = r->data_len, .value = &r->value};
        uint64_t est = 0;
        evm_err e = evm_rpc_estimate_gas(env->evm, &est, &ee, &m);
        if (e == EVM_ERR_RPC) {
            if (ct_earlier_in_flight(rows, n, r)) {
                st->waiting++;
                return 1;
            }
            const uint8_t *why = NULL;
            size_t wl = 0;
            if (ee.has_rpc_data && abi_decode_revert(&why, &wl, ee.rpc_data, ee.rpc_data_len) == ABI_OK)
                snprintf(msg, sizeof msg, "estimate: reverted: %.*s", (int)(wl > 200 ? 200 : wl), (const char *)why);
            else
                snprintf(msg, sizeof msg, "estimate: %.300s", ee.message);
            ct_fail_arg fa = {env, r, msg, true};
            char dm[256];
            if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, dm, sizeof dm, ct_fail_body, &fa) != RPC_OK)
                st->errors++;
            else
                st->failed++;
            return -1;
        }
        if (e != EVM_OK) {
            st->errors++;
            return 1;
        }
        gas = est + est * env->gas_margin_pct / 100u;
    }
    evm_fee_suggestion fees;
    if (evm_rpc_suggest_fees(env->evm, &fees, &ee, &env->fees) != EVM_OK) {
        st->errors++;
        return 1;
    }
    ct_prepare_arg pa = {r, gas, &fees, false, false, 0};
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_prepare_body, &pa) != RPC_OK) {
            log_warn("chain_tx.prepare", "id=%s message=\"%s\"", r->id, msg);
            st->errors++;
            return 1;
        }
        if (!pa.need_init)
            break;
        uint64_t count = 0;
        if (evm_rpc_get_transaction_count(env->evm, &count, &ee, r->wallet, EVM_BLOCK_ID_PENDING) != EVM_OK) {
            st->errors++;
            return 1;
        }
        char chain[24], wallet[41], cnt[24];
        snprintf(chain, sizeof chain, "%llu", (unsigned long long)r->chain_id);
        hex_encode(wallet, r->wallet, 20);
        wallet[40] = '\0';
        snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)count);
        const char *p[4] = {r->client_id, chain, wallet, cnt};
        if (ct_exec(env, NULL, msg, sizeof msg,
                    "INSERT INTO wallet_nonces (client_id, chain_id, wallet_address, next_nonce) VALUES "
                    "($1::uuid, $2::bigint, decode($3, 'hex'), $4::bigint) ON CONFLICT DO NOTHING",
                    4, p) != RPC_OK) {
            st->errors++;
            return 1;
        }
        log_info("chain_tx.nonce_init", "wallet=0x%s chain=%s next_nonce=%s", wallet, chain, cnt);
    }
    if (!pa.done)
        return 1;
    r->has_nonce = true;
    r->nonce = pa.nonce;
    r->has_gas = true;
    r->gas_limit = gas;
    r->max_fee = fees.max_fee_per_gas;
    r->max_tip = fees.max_priority_fee_per_gas;
    st->prepared++;
    return 0;
}

static void ct_drive_wallet(const chain_env *env, chain_tx_stats *st, const char *wallet_hex)
{
    ct_rows_arg ra = {env, wallet_hex, calloc(CT_WALLET_ROWS_MAX, sizeof(chain_tx_row)), 0};
    char msg[256];
    if (!ra.rows) {
        st->errors++;
        return;
    }
    for (int round = 0; round < CT_PREPARE_PER_PASS; round++) {
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, sizeof msg, ct_rows_body, &ra) != RPC_OK) {
            st->errors++;
            break;
        }
        if (ra.n == 0)
            break;
        uint64_t latest = 0;
        evm_rpc_error ee;
        if (evm_rpc_block_number(env->evm, &latest, &ee) != EVM_OK) {
            st->errors++;
            break;
        }
        /* 1. follow what was sent (one pass per nonce group). */
        for (size_t i = 0; i < ra.n; i++) {
            bool first = true;
            for (size_t j = 0; j < i; j++)
                if (ra.rows[j].has_nonce && ra.rows[i].has_nonce && ra.rows[j].nonce == ra.rows[i].nonce &&
                    ra.rows[j].raw_len)
                    first = false;
            if (first && ra.rows[i].raw_len && strcmp(ra.rows[i].status, "signed") != 0)
                ct_follow_group(env, st, ra.rows, ra.n, i, latest);
        }
        /* 2. send what was signed but not sent. */
        for (size_t i = 0; i < ra.n; i++)
            if (strcmp(ra.rows[i].status, "signed") == 0)
                ct_broadcast(env, &ra.rows[i], st);
        /* 3. sign what was prepared (a crash before the store: the same
         *    payload again, the same signature). */
        bool blocked = false;
        for (size_t i = 0; i < ra.n; i++)
            if (strcmp(ra.rows[i].status, "created") == 0 && ra.rows[i].has_nonce && ra.rows[i].has_gas &&
                ct_sign_and_send(env, st, &ra.rows[i]) > 0)
                blocked = true;
        if (blocked)
            break;
        /* 4. prepare the next intent, sign and send it; then look again. */
        chain_tx_row *next = NULL;
        for (size_t i = 0; i < ra.n && !next; i++)
            if (strcmp(ra.rows[i].status, "created") == 0 && !ra.rows[i].has_nonce)
                next = &ra.rows[i];
        if (!next)
            break;
        int pr = ct_prepare(env, st, ra.rows, ra.n, next);
        if (pr > 0)
            break;
        if (pr == 0 && ct_sign_and_send(env, st, next) > 0)
            break;
    }
    free(ra.rows);
}

/* A session advisory lock per wallet, on a connection of its own, so one
 * replica drives a wallet at a time. */
static PGconn *ct_lock_wallet(const chain_env *env, const char *wallet_hex, bool *got)
{
    db_pool_err pe;
    char why[200];
    *got = false;
    PGconn *conn = db_pool_acquire(env->pool, env->db_timeout_ms, &pe, why, sizeof why);
    if (!conn)
        return NULL;
    char key[96];
    snprintf(key, sizeof key, "coffer.wallet:%llu:%s", (unsigned long long)env->chain_id, wallet_hex);
    const char *p[1] = {key};
    PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", 1, NULL, p, NULL,
                                 NULL, 0);
    *got = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return conn;
}

static void ct_unlock_wallet(const chain_env *env, PGconn *conn, const char *wallet_hex, bool got)
{
    if (!conn)
        return;
    if (got) {
        char key[96];
        snprintf(key, sizeof key, "coffer.wallet:%llu:%s", (unsigned long long)env->chain_id, wallet_hex);
        const char *p[1] = {key};
        PQclear(PQexecParams(conn, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", 1, NULL, p, NULL, NULL, 0));
    }
    db_pool_release(env->pool, conn);
}

typedef struct {
    const chain_env *env;
    char (*wallets)[41];
    size_t n;
} ct_wallets_arg;

static rpc_code ct_wallets_body(ledger_tx *tx, void *argp)
{
    ct_wallets_arg *a = argp;
    char chain[24];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)a->env->chain_id);
    const char *p[1] = {chain};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT DISTINCT encode(wallet_address, 'hex') FROM chain_transactions "
                                 "WHERE chain_id = $1::bigint AND settled_at IS NULL "
                                 "AND status IN ('created', 'signed', 'submitted', 'replaced') LIMIT 10000",
                                 1, p);
    if (!res)
        return c;
    free(a->wallets);
    a->n = 0;
    a->wallets = calloc((size_t)PQntuples(res) + 1, sizeof *a->wallets);
    if (!a->wallets) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int r = 0; r < PQntuples(res); r++)
        snprintf(a->wallets[a->n++], 41, "%s", PQgetvalue(res, r, 0));
    PQclear(res);
    return RPC_OK;
}

int chain_tx_drive(const chain_env *env, chain_tx_stats *stats, char *msg, size_t msg_len, const char *wallet_hex)
{
    chain_tx_stats local;
    chain_tx_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!env->evm) {
        snprintf(msg, msg_len, "no chain client configured (evm.endpoints)");
        return -1;
    }
    ct_wallets_arg wa = {env, NULL, 0};
    if (wallet_hex) {
        wa.wallets = calloc(1, sizeof *wa.wallets);
        if (!wa.wallets) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }
        snprintf(wa.wallets[0], 41, "%s", wallet_hex);
        wa.n = 1;
    } else if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, msg_len, ct_wallets_body, &wa) != RPC_OK) {
        free(wa.wallets);
        return -1;
    }
    for (size_t i = 0; i < wa.n; i++) {
        bool got = false;
        PGconn *conn = ct_lock_wallet(env, wa.wallets[i], &got);
        if (got)
            ct_drive_wallet(env, st, wa.wallets[i]);
        else
            st->waiting++;
        ct_unlock_wallet(env, conn, wa.wallets[i], got);
    }
    free(wa.wallets);
    return 0;
}

typedef struct {
    const char *id;
    chain_tx_row row;
    bool found;
} ct_one_arg;

static rpc_code ct_one_body(ledger_tx *tx, void *argp)
{
    ct_one_arg *a = argp;
    return chain_tx_load(tx, &a->row, &a->found, a->id, false);
}

int chain_tx_wait(const chain_env *env, chain_tx_row *out, char *msg, size_t msg_len, const char *id,
                  bool until_final, int64_t timeout_ms)
{
    ct_one_arg *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    char cur[CHAIN_TX_ID_MAX];
    snprintf(cur, sizeof cur, "%s", id);
    int64_t until = ct_now_ms() + timeout_ms, pause = 50;
    int rc = 1, hops = 0;
    for (;;) {
        a->id = cur;
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, msg_len, ct_one_body, a) != RPC_OK ||
            !a->found) {
            if (!a->found && msg_len)
                snprintf(msg, msg_len, "chain transaction %s not found", cur);
            rc = -1;
            break;
        }
        /* A replaced row: follow its replacement (or the row that won). */
        if (strcmp(a->row.status, "replaced") == 0 && a->row.replaced_by[0] && hops++ < 16) {
            snprintf(cur, sizeof cur, "%s", a->row.replaced_by);
            continue;
        }
        const char *s = a->row.status;
        bool final = strcmp(s, "confirmed") == 0 || strcmp(s, "reverted") == 0 || strcmp(s, "failed") == 0;
        if (final || (!until_final && a->row.has_block)) {
            rc = 0;
            break;
        }
        if (ct_now_ms() >= until)
            break;
        char wallet[41];
        hex_encode(wallet, a->row.wallet, 20);
        wallet[40] = '\0';
        if (chain_tx_drive(env, NULL, msg, msg_len, wallet) != 0) {
            rc = -1;
            break;
        }
        if (ledger_run_plain(env->pool, NULL, env->db_timeout_ms, msg, msg_len, ct_one_body, a) == RPC_OK && a->found) {
            s = a->row.status;
            final = strcmp(s, "confirmed") == 0 || strcmp(s, "reverted") == 0 || strcmp(s, "failed") == 0;
            if (final || (!until_final && a->row.has_block))
                continue; /* reported at the top of the loop */
        }
        ct_sleep_ms(pause);
        if (pause < 500)
            pause *= 2;
    }
    *out = a->row;
    free(a);
    return rc;
}
