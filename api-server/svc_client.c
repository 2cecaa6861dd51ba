/* coffer.v1.ClientService: clients, their API keys and their vaults. Every
 * call is one ledger transaction (ledger_run); every change writes an
 * audit row in it. */
#include "apikey.h"
#include "coffer/v1/client.pb-c.h"
#include "hex.h"
#include "ledger_db.h"
#include "log.h"
#include "rpc_server.h"
#include "sealbox.h"
#include "services.h"
#include "svc_ledger.h"
#include "wallet.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_CLIENT_DEFAULT_PLATFORM_FEE_BPS 100u
#define SVC_CLIENT_DEFAULT_END_USER_YIELD_BPS 9000u
#define SVC_CLIENT_GRACE_MAX_S (30u * 86400u)
#define SVC_CLIENT_UNLOCK_MAX_S 31536000u
#define SVC_CLIENT_WEBHOOK_SECRET_BYTES 32u
#define SVC_CLIENT_WEBHOOK_SECRET_LEN (6u + 2u * SVC_CLIENT_WEBHOOK_SECRET_BYTES) /* "whsec_" + hex */
#define SVC_CLIENT_MAX_KEYS 16

/* ---- validation ------------------------------------------------------- */

/* UTF-8 text of min..max characters without control characters. */
static bool svc_client_text_ok(const char *s, size_t min, size_t max)
{
    size_t chars = 0;
    bool blank = true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        if ((*p & 0xc0) != 0x80)
            chars++;
        if (*p != ' ')
            blank = false;
    }
    return chars >= min && chars <= max && (min == 0 || !blank);
}

static bool svc_client_product_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* https://host..., or http:// to a loopback host. NULL when fine, else
 * what is wrong. */
static const char *svc_client_webhook_url_problem(const char *u)
{
    if (!svc_is_printable(u, 1, 2048, false))
        return "must be 1 to 2048 printable ASCII characters without spaces";
    bool https = strncmp(u, "https://", 8) == 0;
    if (!https && strncmp(u, "http://", 7) != 0)
        return "must start with https:// (http:// only to a loopback host)";
    const char *h = u + (https ? 8 : 7);
    size_t alen = strcspn(h, "/?#");
    if (memchr(h, '@', alen))
        return "must not carry credentials (user@host)";
    size_t hlen;
    if (h[0] == '[') {
        const char *end = memchr(h, ']', alen);
        if (!end)
            return "has a malformed IPv6 host";
        hlen = (size_t)(end - h) + 1;
    } else {
        hlen = strcspn(h, ":/?#");
    }
    if (hlen == 0)
        return "has no host";
    if (!https) {
        bool loop = (hlen == 9 && strncmp(h, "localhost", 9) == 0) || (hlen == 9 && strncmp(h, "127.0.0.1", 9) == 0) ||
                    (hlen == 5 && strncmp(h, "[::1]", 5) == 0);
        if (!loop)
            return "must use https:// (http:// is accepted only for localhost, 127.0.0.1 and [::1])";
    }
    return NULL;
}

/* ---- reading a client ------------------------------------------------- */

static const char *svc_client_env_name(Coffer__V1__Environment e)
{
    return e == COFFER__V1__ENVIRONMENT__ENVIRONMENT_TEST ? "test" : "live";
}

/* The client's record and its usable keys (never a secret). */
static rpc_code svc_client_load(ledger_tx *tx, Coffer__V1__Client **out, const char *client_id)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    rpc_code code;
    const char *p[1] = {client_id};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT id::text, product_id, company_name, coalesce(business_type, ''), "
                                 "coalesce(webhook_url, ''), platform_fee_bps, end_user_yield_bps, environment, "
                                 "status, coalesce(encode(wallet_address, 'hex'), ''), "
                                 "floor(extract(epoch FROM created_at) * 1000000)::bigint "
                                 "FROM client_organizations WHERE id = $1::uuid",
                                 1, p);
    if (!res)
        return code;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "no such client");
    }
    Coffer__V1__Client *c = rpc_ctx_alloc(ctx, sizeof *c);
    int64_t fee = 0, yield = 0, created = 0;
    if (!c) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    coffer__v1__client__init(c);
    if ((code = ledger_get_i64(tx, &fee, res, 0, 5)) != RPC_OK ||
        (code = ledger_get_i64(tx, &yield, res, 0, 6)) != RPC_OK ||
        (code = ledger_get_i64(tx, &created, res, 0, 10)) != RPC_OK) {
        PQclear(res);
        return code;
    }
    c->client_id = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 0));
    c->product_id = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 1));
    c->company_name = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 2));
    c->business_type = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 3));
    c->webhook_url = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 4));
    c->platform_fee_bps = (uint32_t)fee;
    c->end_user_yield_bps = (uint32_t)yield;
    c->environment = strcmp(PQgetvalue(res, 0, 7), "test") == 0 ? COFFER__V1__ENVIRONMENT__ENVIRONMENT_TEST
                                                                 : COFFER__V1__ENVIRONMENT__ENVIRONMENT_LIVE;
    c->status = rpc_ctx_strdup(ctx, PQgetvalue(res, 0, 8));
    uint8_t wallet[20];
    char wallet_text[WALLET_ADDRESS_TEXT_LEN + 1] = "";
    if (wallet_address_parse_hex(wallet, PQgetvalue(res, 0, 9)) == 0)
        wallet_address_format(wallet_text, wallet);
    c->wallet_address = rpc_ctx_strdup(ctx, wallet_text);
    c->created_at = svc_timestamp_us(ctx, created);
    PQclear(res);
    if (!c->client_id || !c->product_id || !c->company_name || !c->business_type || !c->webhook_url || !c->status ||
        !c->wallet_address || !c->created_at)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");

    res = ledger_query(tx, &code,
                       "SELECT prefix, floor(extract(epoch FROM created_at) * 1000000)::bigint, "
                       "floor(extract(epoch FROM expires_at) * 1000000)::bigint FROM api_keys "
                       "WHERE client_id = $1::uuid AND revoked_at IS NULL "
                       "AND (expires_at IS NULL OR expires_at > now()) "
                       "ORDER BY created_at DESC, id LIMIT " "16",
                       1, p);
    if (!res)
        return code;
    int n = PQntuples(res);
    c->api_keys = rpc_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *c->api_keys);
    if (!c->api_keys) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        Coffer__V1__ApiKeyInfo *k = rpc_ctx_alloc(ctx, sizeof *k);
        int64_t kc = 0, ke = 0;
        if (!k) {
            PQclear(res);
            return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        coffer__v1__api_key_info__init(k);
        if ((code = ledger_get_i64(tx, &kc, res, i, 1)) != RPC_OK ||
            (!PQgetisnull(res, i, 2) && (code = ledger_get_i64(tx, &ke, res, i, 2)) != RPC_OK)) {
            PQclear(res);
            return code;
        }
        k->prefix = rpc_ctx_strdup(ctx, PQgetvalue(res, i, 0));
        k->created_at = svc_timestamp_us(ctx, kc);
        if (!PQgetisnull(res, i, 2))
            k->expires_at = svc_timestamp_us(ctx, ke);
        if (!k->prefix || !k->created_at || (!PQgetisnull(res, i, 2) && !k->expires_at)) {
            PQclear(res);
            return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        c->api_keys[c->n_api_keys++] = k;
    }
    PQclear(res);
    *out = c;
    return RPC_OK;
}

/* Inserts a new key for client_id; *key gets it (arena). */
static rpc_code svc_client_new_key(ledger_tx *tx, char **key, const api_services *s, const char *client_id,
                                   const char *env)
{
    char k[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1];
    uint8_t h[APIKEY_HASH_LEN];
    char hp[2 * APIKEY_HASH_LEN + 3];
    apikey_generate(k, strcmp(env, "test") == 0 ? APIKEY_TEST : APIKEY_LIVE);
    apikey_hash(s->apikeys, h, k, APIKEY_LEN);
    apikey_prefix(prefix, k);
    ledger_bytea_param(hp, h, sizeof h);
    const char *p[4] = {client_id, prefix, hp, env};
    rpc_code code = ledger_exec(tx, NULL,
                                "INSERT INTO api_keys (client_id, prefix, key_hash, environment) "
                                "VALUES ($1::uuid, $2, $3::bytea, $4)",
                                4, p);
    if (code == RPC_OK) {
        *key = rpc_ctx_strdup(ledger_tx_ctx(tx), k);
        if (!*key)
            code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    sodium_memzero(k, sizeof k);
    return code;
}

/* ---- RegisterClient --------------------------------------------------- */

typedef struct {
    const api_services *s;
    const Coffer__V1__RegisterClientRequest *req;
    Coffer__V1__RegisterClientResponse *resp;
    uint32_t fee_bps, yield_bps;
    char id[SVC_UUID_LEN + 1];  /* chosen before the transaction: the wallet is sealed for it */
    signer_key wallet;          /* generated by coffer-signer for id */
} svc_client_register_args;

static rpc_code svc_client_register_body(ledger_tx *tx, void *arg)
{
    svc_client_register_args *a = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    const Coffer__V1__RegisterClientRequest *q = a->req;
    rpc_code code;
    const char *id = a->id;
    const char *env = svc_client_env_name(q->environment);

    /* The webhook secret: shown once, kept sealed (AAD = client id). */
    uint8_t secret[SVC_CLIENT_WEBHOOK_SECRET_BYTES];
    char secret_text[SVC_CLIENT_WEBHOOK_SECRET_LEN + 1];
    uint8_t sealed[SVC_CLIENT_WEBHOOK_SECRET_BYTES + SEALBOX_OVERHEAD];
    char sealed_param[2 * sizeof sealed + 3];
    size_t sealed_len = 0;
    randombytes_buf(secret, sizeof secret);
    memcpy(secret_text, "whsec_", 6);
    hex_encode(secret_text + 6, secret, sizeof secret);
    int rc = sealbox_seal(a->s->secrets, sealed, sizeof sealed, &sealed_len, secret, sizeof secret,
                          (const uint8_t *)id, strlen(id));
    sodium_memzero(secret, sizeof secret);
    if (rc != 0) {
        sodium_memzero(secret_text, sizeof secret_text);
        return ledger_fail(tx, RPC_INTERNAL, "internal error: cannot seal the webhook secret");
    }
    ledger_bytea_param(sealed_param, sealed, sealed_len);

    char fee[12], yield[12];
    snprintf(fee, sizeof fee, "%u", a->fee_bps);
    snprintf(yield, sizeof yield, "%u", a->yield_bps);
    /* The custodial wallet: address and sealed key only (only coffer-signer
     * can open the blob, and only for this client id). */
    char wallet_param[2 * SIGNER_ADDRESS_LEN + 3], blob_param[2 * SIGNER_SEALED_KEY_LEN + 3];
    ledger_bytea_param(wallet_param, a->wallet.address, SIGNER_ADDRESS_LEN);
    ledger_bytea_param(blob_param, a->wallet.sealed_key, SIGNER_SEALED_KEY_LEN);
    const char *p_env[11] = {id,           q->product_id, q->company_name, q->business_type[0] ? q->business_type : NULL,
                             q->webhook_url, sealed_param, fee,            yield,
                             env,          wallet_param, blob_param};
    uint64_t inserted = 0;
    code = ledger_exec(tx, &inserted,
                       "INSERT INTO client_organizations (id, product_id, company_name, business_type, webhook_url, "
                       "webhook_secret_enc, platform_fee_bps, end_user_yield_bps, environment, wallet_address, "
                       "wallet_sealed_blob) "
                       "VALUES ($1::uuid, $2, $3, $4, $5, $6::bytea, $7::integer, $8::integer, $9, $10::bytea, "
                       "$11::bytea) ON CONFLICT (product_id) DO NOTHING",
                       11, p_env);
    if (code == RPC_OK && inserted == 0)
        code = ledger_fail(tx, RPC_ALREADY_EXISTS, "product_id %s is already registered", q->product_id);
    char *key = NULL;
    if (code == RPC_OK)
        code = svc_client_new_key(tx, &key, a->s, id, env);
    char details[384], wallet_text[WALLET_ADDRESS_TEXT_LEN + 1];
    wallet_address_format(wallet_text, a->wallet.address);
    snprintf(details, sizeof details,
             "{\"product_id\": \"%s\", \"environment\": \"%s\", \"platform_fee_bps\": %u, \"end_user_yield_bps\": %u, "
             "\"wallet_address\": \"%s\", \"kek_version\": %u}",
             q->product_id, env, a->fee_bps, a->yield_bps, wallet_text,
             a->wallet.kek_version); /* product_id is [a-z0-9_-] only */
    if (code == RPC_OK)
        code = ledger_audit(tx, "client.register", "client", id, id, details);
    if (code == RPC_OK)
        code = svc_client_load(tx, &a->resp->client, id);
    if (code == RPC_OK) {
        a->resp->api_key = key;
        a->resp->webhook_secret = rpc_ctx_strdup(ctx, secret_text);
        a->resp->wallet_address = rpc_ctx_strdup(ctx, wallet_text);
        if (!a->resp->webhook_secret || !a->resp->wallet_address)
            code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    sodium_memzero(secret_text, sizeof secret_text);
    return code;
}

static rpc_code svc_client_register(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RegisterClientRequest *q = (const Coffer__V1__RegisterClientRequest *)in;
    svc_client_register_args a = {.s = rpc_ctx_service_arg(ctx), .req = q,
                                  .resp = (Coffer__V1__RegisterClientResponse *)out,
                                  .fee_bps = SVC_CLIENT_DEFAULT_PLATFORM_FEE_BPS,
                                  .yield_bps = SVC_CLIENT_DEFAULT_END_USER_YIELD_BPS};
    if (!svc_client_product_id_ok(q->product_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "product_id must match [a-z0-9][a-z0-9_-]{0,63} (1 to 64 lowercase letters, digits, "
                            "'_' or '-', starting with a letter or digit)");
    if (!svc_client_text_ok(q->company_name, 1, 200))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "company_name must be 1 to 200 characters without control characters");
    if (q->business_type[0] && !svc_client_text_ok(q->business_type, 1, 100))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "business_type must be at most 100 characters without control characters");
    const char *why = svc_client_webhook_url_problem(q->webhook_url);
    if (why)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "webhook_url %s", why);
    if (q->platform_fee_bps)
        a.fee_bps = q->platform_fee_bps->value;
    if (q->end_user_yield_bps)
        a.yield_bps = q->end_user_yield_bps->value;
    if (a.fee_bps > 10000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "platform_fee_bps must be 0..10000, got %u", a.fee_bps);
    if (a.yield_bps > 10000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "end_user_yield_bps must be 0..10000, got %u", a.yield_bps);
    if (a.fee_bps + a.yield_bps > 10000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "platform_fee_bps + end_user_yield_bps must be at most 10000, got %u + %u", a.fee_bps,
                            a.yield_bps);
    if (q->environment != COFFER__V1__ENVIRONMENT__ENVIRONMENT_UNSPECIFIED &&
        q->environment != COFFER__V1__ENVIRONMENT__ENVIRONMENT_LIVE &&
        q->environment != COFFER__V1__ENVIRONMENT__ENVIRONMENT_TEST)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "environment must be ENVIRONMENT_LIVE or ENVIRONMENT_TEST");
    /* The custodial wallet is generated first, for the id the client will
     * have, and stored in the registration's own transaction: a client
     * never exists without its wallet. If the registration then fails or
     * rolls back (or this is an idempotent replay, which returns the stored
     * answer and its wallet), the new sealed blob is dropped with this
     * call: the signer keeps nothing per key, so a blob that was never
     * stored is a key nobody can ever sign with (docs/architecture.md,
     * "Custodial wallets"). */
    if (!a.s->signer)
        return rpc_ctx_fail(ctx, RPC_FAILED_PRECONDITION, "coffer-api has no signer configured (signer.socket)");
    svc_uuid_v4(a.id);
    signer_error se;
    if (signer_client_generate_key(a.s->signer, &a.wallet, &se, a.id, rpc_ctx_request_id(ctx)) != SIGNER_OK)
        return wallet_fail_signer(ctx, &se, "generate the client's wallet");
    rpc_code code = ledger_run(ctx, &(ledger_run_options){.body = svc_client_register_body, .arg = &a,
                                                          .response = out, .request = in});
    sodium_memzero(&a.wallet, sizeof a.wallet);
    return code;
}

/* ---- GetClient -------------------------------------------------------- */

static rpc_code svc_client_get_body(ledger_tx *tx, void *arg)
{
    Coffer__V1__GetClientResponse *r = arg;
    return svc_client_load(tx, &r->client, ledger_tx_client_id(tx));
}

static rpc_code svc_client_get(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)in;
    return ledger_run(ctx, &(ledger_run_options){.body = svc_client_get_body, .arg = out});
}

/* ---- RotateApiKey ------------------------------------------------------ */

typedef struct {
    const api_services *s;
    Coffer__V1__RotateApiKeyResponse *resp;
    int64_t grace_s;
} svc_client_rotate_args;

static rpc_code svc_client_rotate_body(ledger_tx *tx, void *arg)
{
    svc_client_rotate_args *a = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    const char *id = ledger_tx_client_id(tx);
    rpc_code code;
    const char *p[1] = {id};
    /* The client row, locked: rotations of one client run one at a time. */
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT environment, floor(extract(epoch FROM now()) * 1000000)::bigint "
                                 "FROM client_organizations WHERE id = $1::uuid FOR UPDATE",
                                 1, p);
    if (!res)
        return code;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return ledger_fail(tx, RPC_NOT_FOUND, "no such client");
    }
    char env[8];
    snprintf(env, sizeof env, "%s", PQgetvalue(res, 0, 0));
    int64_t now_us = 0;
    code = ledger_get_i64(tx, &now_us, res, 0, 1);
    PQclear(res);
    if (code != RPC_OK)
        return code;
    /* Every key alive now stops at the end of the grace period at the
     * latest: the calling key (the current one) and any older key still
     * in an earlier grace period, which keeps its earlier end. */
    char grace[24];
    snprintf(grace, sizeof grace, "%lld", (long long)a->grace_s);
    const char *pg[2] = {id, grace};
    uint64_t n = 0;
    code = ledger_exec(tx, &n,
                       "UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'::timestamptz), "
                       "now() + make_interval(secs => $2::double precision)) "
                       "WHERE client_id = $1::uuid AND revoked_at IS NULL "
                       "AND (expires_at IS NULL OR expires_at > now())",
                       2, pg);
    char *key = NULL;
    if (code == RPC_OK)
        code = svc_client_new_key(tx, &key, a->s, id, env);
    char details[96];
    snprintf(details, sizeof details, "{\"grace_seconds\": %lld, \"keys_expiring\": %llu}", (long long)a->grace_s,
             (unsigned long long)n);
    if (code == RPC_OK)
        code = ledger_audit(tx, "client.rotate_api_key", "client", id, id, details);
    if (code != RPC_OK)
        return code;
    a->resp->api_key = key;
    a->resp->old_key_expires_at = svc_timestamp_us(ctx, now_us + a->grace_s * 1000000);
    if (!a->resp->old_key_expires_at)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return RPC_OK;
}

static rpc_code svc_client_rotate(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__RotateApiKeyRequest *q = (const Coffer__V1__RotateApiKeyRequest *)in;
    const api_services *s = rpc_ctx_service_arg(ctx);
    svc_client_rotate_args a = {s, (Coffer__V1__RotateApiKeyResponse *)out, s->api_key_grace_s};
    if (q->grace_seconds) {
        if (q->grace_seconds->value > SVC_CLIENT_GRACE_MAX_S)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "grace_seconds must be 0..%u (30 days), got %u",
                                SVC_CLIENT_GRACE_MAX_S, q->grace_seconds->value);
        a.grace_s = q->grace_seconds->value;
    }
    rpc_code code = ledger_run(ctx, &(ledger_run_options){.body = svc_client_rotate_body, .arg = &a,
                                                          .response = out, .request = in});
    if (code == RPC_OK && s->apikeys)
        apikey_cache_forget_client(s->apikeys, rpc_ctx_caller(ctx)->id);
    return code;
}

/* ---- vaults ------------------------------------------------------------ */

/* Fills each vault's strategies (rows with target_bps > 0). */
static rpc_code svc_client_strategies(ledger_tx *tx, Coffer__V1__Vault **vaults, size_t n)
{
    if (n == 0)
        return RPC_OK;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    rpc_code code;
    const char *p[1] = {vaults[0]->client_id};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT vault_id::text, category, target_bps FROM vault_strategies "
                                 "WHERE client_id = $1::uuid AND target_bps > 0 ORDER BY vault_id, category",
                                 1, p);
    if (!res)
        return code;
    int rows = PQntuples(res);
    for (size_t i = 0; i < n; i++) {
        Coffer__V1__Vault *v = vaults[i];
        v->strategies = rpc_ctx_alloc(ctx, 3 * sizeof *v->strategies);
        if (!v->strategies)
            goto oom;
        for (int r = 0; r < rows && v->n_strategies < 3; r++) {
            if (strcmp(PQgetvalue(res, r, 0), v->vault_id) != 0)
                continue;
            Coffer__V1__StrategyTarget *t = rpc_ctx_alloc(ctx, sizeof *t);
            if (!t)
                goto oom;
            coffer__v1__strategy_target__init(t);
            t->category = svc_category_parse(PQgetvalue(res, r, 1));
            t->target_bps = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
            v->strategies[v->n_strategies++] = t;
        }
    }
    PQclear(res);
    return RPC_OK;
oom:
    PQclear(res);
    return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
}

/* The client's vaults (all, or the one with vault_id) as protobuf. */
static rpc_code svc_client_vaults(ledger_tx *tx, Coffer__V1__Vault ***out, size_t *n_out, const char *vault_id)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    rpc_code code;
    const char *p[2] = {ledger_tx_client_id(tx), vault_id};
    PGresult *res = ledger_query(tx, &code,
                                 "SELECT " SVC_VAULT_COLUMNS ", h7.index_value, h7.at_s, h30.index_value, h30.at_s "
                                 "FROM client_vaults v" SVC_APY_LATERAL("h7", "7") SVC_APY_LATERAL("h30", "30")
                                 "WHERE v.client_id = $1::uuid AND ($2::uuid IS NULL OR v.id = $2::uuid) "
                                 "ORDER BY v.created_at, v.id",
                                 2, p);
    if (!res)
        return code;
    int n = PQntuples(res);
    Coffer__V1__Vault **vs = rpc_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *vs);
    if (!vs) {
        PQclear(res);
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        svc_vault_row r;
        if ((code = svc_vault_read(tx, &r, res, i, 0)) != RPC_OK)
            break;
        u256 index;
        if (acct_index(&index, &r.vault, &r.params, r.now_s) != ACCT_OK)
            index = r.vault.current_index;
        double a7 = svc_apy_from(res, i, SVC_VAULT_NCOLS, &index, r.now_s);
        double a30 = svc_apy_from(res, i, SVC_VAULT_NCOLS + 2, &index, r.now_s);
        vs[i] = svc_vault_to_pb(tx, &code, &r, a7, a30);
        if (!vs[i])
            break;
    }
    PQclear(res);
    if (code != RPC_OK)
        return code;
    code = svc_client_strategies(tx, vs, (size_t)n);
    if (code != RPC_OK)
        return code;
    *out = vs;
    *n_out = (size_t)n;
    return RPC_OK;
}

typedef struct {
    const api_services *s;
    const Coffer__V1__ConfigureVaultRequest *req;
    Coffer__V1__ConfigureVaultResponse *resp;
    uint32_t targets[4]; /* by category */
    bool unlock_set;
    uint32_t unlock_s;
    char token_address[43]; /* lowercase */
} svc_client_vault_args;

static rpc_code svc_client_configure_body(ledger_tx *tx, void *arg)
{
    svc_client_vault_args *a = arg;
    const Coffer__V1__ConfigureVaultRequest *q = a->req;
    const char *cid = ledger_tx_client_id(tx);
    rpc_code code;
    char chain[24], dec[8], unlock[16], minfirst[U256_DEC_MAX];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)q->chain_id);
    snprintf(dec, sizeof dec, "%u", q->token_decimals);
    snprintf(unlock, sizeof unlock, "%u", a->unlock_s);
    u256 one;
    if (u256_pow10(&one, q->token_decimals) != 0)
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "token_decimals must be 0..18");
    u256_to_dec(minfirst, &one); /* accounting.h: one whole token */
    const char *addr_hex = a->token_address + 2;

    /* Create, or find the existing vault (and lock it). */
    const char *pi[7] = {cid, chain, addr_hex, q->token_symbol, dec, unlock, minfirst};
    PGresult *res = ledger_query(tx, &code,
                                 "INSERT INTO client_vaults (client_id, chain_id, token_address, token_symbol, "
                                 "token_decimals, profit_unlock_s, min_first_deposit) "
                                 "VALUES ($1::uuid, $2::bigint, decode($3, 'hex'), $4, $5::smallint, $6::integer, "
                                 "$7::numeric) ON CONFLICT (client_id, chain_id, token_address) DO NOTHING "
                                 "RETURNING id::text",
                                 7, pi);
    if (!res)
        return code == RPC_ALREADY_EXISTS
                   ? ledger_fail(tx, RPC_ALREADY_EXISTS,
                                 "token_symbol %s is already used by another token's vault on chain %llu",
                                 q->token_symbol, (unsigned long long)q->chain_id)
                   : code;
    bool created = PQntuples(res) == 1;
    char vault_id[SVC_UUID_LEN + 1] = "";
    if (created)
        snprintf(vault_id, sizeof vault_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!created) {
        const char *ps[3] = {cid, chain, addr_hex};
        res = ledger_query(tx, &code,
                           "SELECT id::text, token_symbol, token_decimals FROM client_vaults "
                           "WHERE client_id = $1::uuid AND chain_id = $2::bigint AND token_address = decode($3, 'hex') "
                           "FOR UPDATE",
                           3, ps);
        if (!res)
            return code;
        if (PQntuples(res) != 1) {
            PQclear(res);
            return ledger_fail(tx, RPC_ABORTED, "the vault changed concurrently; retry");
        }
        snprintf(vault_id, sizeof vault_id, "%s", PQgetvalue(res, 0, 0));
        bool same_symbol = strcmp(PQgetvalue(res, 0, 1), q->token_symbol) == 0;
        unsigned stored_dec = (unsigned)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
        char stored_symbol[17];
        snprintf(stored_symbol, sizeof stored_symbol, "%s", PQgetvalue(res, 0, 1));
        PQclear(res);
        if (!same_symbol)
            return ledger_fail(tx, RPC_FAILED_PRECONDITION,
                               "the vault for this token has token_symbol %s; token_symbol cannot change",
                               stored_symbol);
        if (stored_dec != q->token_decimals)
            return ledger_fail(tx, RPC_FAILED_PRECONDITION,
                               "the vault for this token has token_decimals %u; token_decimals cannot change",
                               stored_dec);
        if (a->unlock_set) {
            const char *pu[2] = {vault_id, unlock};
            code = ledger_exec(tx, NULL, "UPDATE client_vaults SET profit_unlock_s = $2::integer WHERE id = $1::uuid",
                               2, pu);
            if (code != RPC_OK)
                return code;
        }
    } else {
        /* The revenue accounts that receive fee shares. */
        const char *pr[2] = {cid, vault_id};
        code = ledger_exec(tx, NULL,
                           "INSERT INTO end_user_vaults (client_id, vault_id, kind) VALUES "
                           "($1::uuid, $2::uuid, 'client_revenue'), ($1::uuid, $2::uuid, 'platform_revenue')",
                           2, pr);
        if (code != RPC_OK)
            return code;
    }
    /* Strategy: one row per category (0 for the ones not asked for: rows
     * are never deleted); the sum is checked at commit. */
    char bps[4][12];
    for (int c = 1; c <= 3; c++)
        snprintf(bps[c], sizeof bps[c], "%u", a->targets[c]);
    const char *pst[5] = {vault_id, cid, bps[1], bps[2], bps[3]};
    code = ledger_exec(tx, NULL,
                       "INSERT INTO vault_strategies (vault_id, client_id, category, target_bps) VALUES "
                       "($1::uuid, $2::uuid, 'lending', $3::integer), ($1::uuid, $2::uuid, 'lp', $4::integer), "
                       "($1::uuid, $2::uuid, 'staking', $5::integer) "
                       "ON CONFLICT (vault_id, category) DO UPDATE SET target_bps = EXCLUDED.target_bps",
                       5, pst);
    if (code != RPC_OK)
        return code;
    char details[256];
    snprintf(details, sizeof details,
             "{\"chain_id\": %s, \"token_address\": \"%s\", \"token_symbol\": \"%s\", \"lending_bps\": %u, "
             "\"lp_bps\": %u, \"staking_bps\": %u, \"profit_unlock_s\": %s}",
             chain, a->token_address, q->token_symbol, a->targets[1], a->targets[2], a->targets[3],
             a->unlock_set || created ? unlock : "null");
    code = ledger_audit(tx, created ? "vault.create" : "vault.configure", "vault", vault_id, cid, details);
    if (code != RPC_OK)
        return code;
    Coffer__V1__Vault **vs = NULL;
    size_t n = 0;
    code = svc_client_vaults(tx, &vs, &n, vault_id);
    if (code != RPC_OK)
        return code;
    if (n != 1)
        return ledger_fail(tx, RPC_INTERNAL, "internal error: the vault vanished");
    a->resp->vault = vs[0];
    a->resp->created = created;
    return RPC_OK;
}

static rpc_code svc_client_configure(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ConfigureVaultRequest *q = (const Coffer__V1__ConfigureVaultRequest *)in;
    const api_services *s = rpc_ctx_service_arg(ctx);
    svc_client_vault_args a;
    memset(&a, 0, sizeof a);
    a.s = s;
    a.req = q;
    a.resp = (Coffer__V1__ConfigureVaultResponse *)out;
    a.unlock_s = s->profit_unlock_s;
    if (q->chain_id == 0 || q->chain_id > (uint64_t)INT64_MAX)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "chain_id must be a positive EVM chain id");
    if (!svc_is_address(q->token_address))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "token_address must be 0x followed by 40 hex digits");
    for (size_t i = 0; i < 42; i++)
        a.token_address[i] = (char)(q->token_address[i] >= 'A' && q->token_address[i] <= 'F'
                                        ? q->token_address[i] - 'A' + 'a'
                                        : q->token_address[i] == 'X' ? 'x' : q->token_address[i]);
    size_t sl = strlen(q->token_symbol);
    bool sym_ok = sl >= 1 && sl <= 16;
    for (size_t i = 0; sym_ok && i < sl; i++) {
        char c = q->token_symbol[i];
        sym_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.';
    }
    if (!sym_ok)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "token_symbol must be 1 to 16 characters of [A-Za-z0-9.]");
    if (q->token_decimals > ACCT_MAX_DECIMALS)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "token_decimals must be 0..18, got %u", q->token_decimals);
    if (q->n_strategies == 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                            "strategies must list at least one category (lending, lp, staking) with target_bps "
                            "summing to 10000");
    uint32_t sum = 0;
    bool seen[4] = {false, false, false, false};
    for (size_t i = 0; i < q->n_strategies; i++) {
        const Coffer__V1__StrategyTarget *t = q->strategies[i];
        const char *name = svc_category_name(t->category);
        if (!name)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT,
                                "strategies[%zu].category must be LENDING, LP or STAKING", i);
        if (seen[t->category])
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "strategies lists category %s more than once", name);
        seen[t->category] = true;
        if (t->target_bps > 10000)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "strategies[%zu].target_bps must be 0..10000, got %u", i,
                                t->target_bps);
        a.targets[t->category] = t->target_bps;
        sum += t->target_bps;
    }
    if (sum != 10000)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "strategies' target_bps must sum to 10000, got %u", sum);
    if (q->profit_unlock_seconds) {
        if (q->profit_unlock_seconds->value > SVC_CLIENT_UNLOCK_MAX_S)
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "profit_unlock_seconds must be 0..%u (a year), got %u",
                                SVC_CLIENT_UNLOCK_MAX_S, q->profit_unlock_seconds->value);
        a.unlock_set = true;
        a.unlock_s = q->profit_unlock_seconds->value;
    }
    return ledger_run(ctx, &(ledger_run_options){.body = svc_client_configure_body, .arg = &a,
                                                 .response = out, .request = in});
}

static rpc_code svc_client_list_vaults_body(ledger_tx *tx, void *arg)
{
    Coffer__V1__ListVaultsResponse *r = arg;
    return svc_client_vaults(tx, &r->vaults, &r->n_vaults, NULL);
}

static rpc_code svc_client_list_vaults(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)in;
    return ledger_run(ctx, &(ledger_run_options){.body = svc_client_list_vaults_body, .arg = out});
}

static const rpc_method_def svc_client_methods[] = {
    {"RegisterClient", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, RPC_F_MUTATES, RPC_RATE_ADMIN, svc_client_register, NULL},
    {"GetClient", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_client_get, NULL},
    {"RotateApiKey", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_client_rotate, NULL},
    {"ConfigureVault", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, RPC_F_MUTATES, RPC_RATE_WRITE, svc_client_configure, NULL},
    {"ListVaults", RPC_KIND_UNARY, RPC_ACCESS_CLIENT, 0, RPC_RATE_READ, svc_client_list_vaults, NULL},
};

const rpc_service_def svc_client_def = {
    &coffer__v1__client_service__descriptor,
    svc_client_methods,
    sizeof svc_client_methods / sizeof svc_client_methods[0],
};
