/* apikey: clients' API keys.
 *
 * Format: "ck_live_" or "ck_test_" then 64 lowercase hex digits (32 random
 * bytes): 72 characters. Lowercase hex was chosen over base32 because it is
 * unambiguous to read aloud and copy, and needs no alphabet table.
 * The first APIKEY_PREFIX_LEN characters ("ck_live_1a2b3c4d") are stored
 * for display; the key itself only as a keyed BLAKE2b-256 hash, the key of
 * which is derived from config auth.api_key_secret (>= 32 characters):
 * a stolen database alone does not allow testing guesses offline.
 * Changing auth.api_key_secret invalidates every issued key.
 *
 * The resolver (auth_resolve_fn) looks a presented key up by its hash
 * (coffer_api_key_lookup, platform scope for that call only): a revoked key,
 * one past expires_at, or one whose client is suspended is unknown; a
 * database that cannot be reached is AUTH_RESOLVE_UNAVAILABLE. Positive
 * answers are cached in memory for at most cache_ms (and never past the
 * key's expiry), so a revocation takes up to cache_ms to reach other
 * processes; apikey_cache_forget_client drops a client's entries here. */
#ifndef COFFER_APIKEY_H
#define COFFER_APIKEY_H

#include "auth.h"
#include "db_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_LEN 72u                 /* "ck_live_" + 64 hex */
#define APIKEY_PREFIX_LEN 16u
#define APIKEY_HASH_LEN 32u
#define APIKEY_SECRET_MIN 32u          /* auth.api_key_secret, characters */
#define APIKEY_CACHE_ENTRIES 1024u

typedef enum { APIKEY_LIVE = 0, APIKEY_TEST = 1 } apikey_env;

typedef struct apikey apikey;

/* secret: auth.api_key_secret (>= APIKEY_SECRET_MIN printable characters).
 * pool: borrowed, for the resolver (may be NULL when only hashing).
 * cache_ms: positive-answer cache lifetime, 0 disables it.
 * Returns the object, or NULL with err saying why (never the secret). */
__attribute__((warn_unused_result))
apikey *apikey_new(char *err, size_t err_len, const char *secret, db_pool *pool, unsigned cache_ms);

/* Wipes the derived key and the cache, frees. k may be NULL. */
void apikey_free(apikey *k);

/* A new random key (out: APIKEY_LEN + 1 bytes, NUL-terminated). */
void apikey_generate(char out[APIKEY_LEN + 1], apikey_env env);

/* Whether token[0..len) has the format of a key. */
bool apikey_well_formed(const char *token, size_t len);

/* The stored hash of key[0..len). */
void apikey_hash(const apikey *k, uint8_t out[APIKEY_HASH_LEN], const char *key, size_t len);

/* The display prefix (out: APIKEY_PREFIX_LEN + 1 bytes). */
void apikey_prefix(char out[APIKEY_PREFIX_LEN + 1], const char *key);

/* The auth resolver: arg is the apikey. */
auth_resolve_result apikey_resolve(void *arg, auth_caller *out, const char *token, size_t len);

/* Drops this process's cached answers for client_id (after a rotation or
 * a revocation). */
void apikey_cache_forget_client(apikey *k, const char *client_id);

#endif
