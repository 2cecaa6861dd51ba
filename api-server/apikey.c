#include "apikey.h"

#include "hex.h"
#include "log.h"
#include "secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define APIKEY_LOOKUP_TIMEOUT_MS 2000u

typedef struct {
    uint8_t hash[APIKEY_HASH_LEN];
    char client_id[AUTH_ID_MAX];
    int64_t until_ms; /* CLOCK_MONOTONIC; 0: empty */
} apikey_cache_entry;

struct apikey {
    uint8_t key[crypto_generichash_KEYBYTES]; /* derived from auth.api_key_secret */
    db_pool *pool;
    unsigned cache_ms;
    pthread_mutex_t lock;
    apikey_cache_entry cache[APIKEY_CACHE_ENTRIES];
};

static int64_t apikey_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

apikey *apikey_new(char *err, size_t err_len, const char *secret, db_pool *pool, unsigned cache_ms)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n < APIKEY_SECRET_MIN) {
        snprintf(err, err_len, "auth.api_key_secret must be set to at least %u characters "
                 "(generate with: openssl rand -hex 32)", APIKEY_SECRET_MIN);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)secret[i] <= 0x20 || (unsigned char)secret[i] >= 0x7f) {
            snprintf(err, err_len, "auth.api_key_secret must be printable ASCII without spaces");
            return NULL;
        }
    if (secmem_init() != 0) {
        snprintf(err, err_len, "libsodium cannot be initialized");
        return NULL;
    }
    apikey *k = sodium_malloc(sizeof *k);
    if (!k) {
        snprintf(err, err_len, "out of guarded memory");
        return NULL;
    }
    memset(k, 0, sizeof *k);
    /* Domain-separated: the same secret used elsewhere yields another key. */
    crypto_generichash_state st;
    static const char label[] = "coffer.api_key.v1";
    crypto_generichash_init(&st, NULL, 0, sizeof k->key);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label);
    crypto_generichash_update(&st, (const uint8_t *)secret, n);
    crypto_generichash_final(&st, k->key, sizeof k->key);
    k->pool = pool;
    k->cache_ms = cache_ms;
    pthread_mutex_init(&k->lock, NULL);
    return k;
}

void apikey_free(apikey *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    sodium_free(k); /* zeroes */
}

void apikey_generate(char out[APIKEY_LEN + 1], apikey_env env)
{
    uint8_t r[32];
    randombytes_buf(r, sizeof r);
    memcpy(out, env == APIKEY_TEST ? "ck_test_" : "ck_live_", 8);
    hex_encode(out + 8, r, sizeof r);
    sodium_memzero(r, sizeof r);
}

bool apikey_well_formed(const char *t, size_t len)
{
    if (len != APIKEY_LEN || (memcmp(t, "ck_live_", 8) != 0 && memcmp(t, "ck_test_", 8) != 0))
        return false;
    for (size_t i = 8; i < len; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

void apikey_hash(const apikey *k, uint8_t out[APIKEY_HASH_LEN], const char *key, size_t len)
{
    crypto_generichash(out, APIKEY_HASH_LEN, (const uint8_t *)key, len, k->key, sizeof k->key);
}

void apikey_prefix(char out[APIKEY_PREFIX_LEN + 1], const char *key)
{
    memcpy(out, key, APIKEY_PREFIX_LEN);
    out[APIKEY_PREFIX_LEN] = '\0';
}

static apikey_cache_entry *apikey_slot(apikey *k, const uint8_t h[APIKEY_HASH_LEN])
{
    return &k->cache[((size_t)h[0] | (size_t)h[1] << 8) % APIKEY_CACHE_ENTRIES];
}

static bool apikey_cache_get(apikey *k, auth_caller *out, const uint8_t h[APIKEY_HASH_LEN])
{
    if (!k->cache_ms)
        return false;
    bool hit = false;
    pthread_mutex_lock(&k->lock);
    apikey_cache_entry *e = apikey_slot(k, h);
    if (e->until_ms > apikey_now_ms() && sodium_memcmp(e->hash, h, APIKEY_HASH_LEN) == 0) {
        out->kind = AUTH_CLIENT;
        memcpy(out->id, e->client_id, sizeof out->id);
        hit = true;
    }
    pthread_mutex_unlock(&k->lock);
    return hit;
}

static void apikey_cache_put(apikey *k, const uint8_t h[APIKEY_HASH_LEN], const char *client_id, int64_t ttl_ms)
{
    if (!k->cache_ms || ttl_ms <= 0)
        return;
    pthread_mutex_lock(&k->lock);
    apikey_cache_entry *e = apikey_slot(k, h);
    memcpy(e->hash, h, APIKEY_HASH_LEN);
    snprintf(e->client_id, sizeof e->client_id, "%s", client_id);
    e->until_ms = apikey_now_ms() + ttl_ms;
    pthread_mutex_unlock(&k->lock);
}

void apikey_cache_forget_client(apikey *k, const char *client_id)
{
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < APIKEY_CACHE_ENTRIES; i++)
        if (k->cache[i].until_ms && strcmp(k->cache[i].client_id, client_id) == 0)
            memset(&k->cache[i], 0, sizeof k->cache[i]);
    pthread_mutex_unlock(&k->lock);
}

auth_resolve_result apikey_resolve(void *arg, auth_caller *out, const char *token, size_t len)
{
    apikey *k = arg;
    if (!apikey_well_formed(token, len))
        return AUTH_RESOLVE_UNKNOWN;
    uint8_t h[APIKEY_HASH_LEN];
    apikey_hash(k, h, token, len);
    if (apikey_cache_get(k, out, h))
        return AUTH_RESOLVE_OK;
    if (!k->pool)
        return AUTH_RESOLVE_UNAVAILABLE;
    db_pool_err err;
    char why[200];
    PGconn *conn = db_pool_acquire(k->pool, APIKEY_LOOKUP_TIMEOUT_MS, &err, why, sizeof why);
    if (!conn) {
        log_warn("apikey.lookup_unavailable", "reason=%s", err == DB_POOL_EXHAUSTED ? "pool_exhausted" : "unreachable");
        return AUTH_RESOLVE_UNAVAILABLE;
    }
    char hp[2 + 2 * APIKEY_HASH_LEN + 1];
    hp[0] = '\\';
    hp[1] = 'x';
    hex_encode(hp + 2, h, sizeof h);
    const char *p[1] = {hp};
    /* ok: usable now; ttl: ms until expiry (NULL: none). */
    PGresult *res = PQexecParams(conn,
                                 "SELECT client_id::text, "
                                 "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
                                 "AND client_status = 'active', "
                                 "floor(extract(epoch FROM (expires_at - now())) * 1000)::bigint "
                                 "FROM coffer_api_key_lookup($1::bytea)",
                                 1, NULL, p, NULL, NULL, 0);
    auth_resolve_result r = AUTH_RESOLVE_UNKNOWN;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        log_warn("apikey.lookup_failed", "sqlstate=%s", state ? state : "none");
        r = AUTH_RESOLVE_UNAVAILABLE;
    } else if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0 &&
               (size_t)PQgetlength(res, 0, 0) < sizeof out->id) {
        out->kind = AUTH_CLIENT;
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
        int64_t ttl = k->cache_ms;
        if (!PQgetisnull(res, 0, 2)) {
            long long left = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
            if (left < ttl)
                ttl = left;
        }
        apikey_cache_put(k, h, out->id, ttl);
        r = AUTH_RESOLVE_OK;
    }
    PQclear(res);
    db_pool_release(k->pool, conn);
    sodium_memzero(h, sizeof h);
    return r;
}
