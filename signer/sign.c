#include "sign.h"

#include "keccak.h"
#include "secmem.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct sign_ctx {
    secp256k1_context *ctx;
};

sign_ctx *sign_ctx_new(void)
{
    uint8_t seed[32];
    sign_ctx *c = NULL;

    if (secmem_init() != 0)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (!c->ctx) {
        free(c);
        return NULL;
    }
    randombytes_buf(seed, sizeof seed);
    int ok = secp256k1_context_randomize(c->ctx, seed);
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        sign_ctx_free(c);
        return NULL;
    }
    return c;
}

void sign_ctx_free(sign_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->ctx)
        secp256k1_context_destroy(ctx->ctx);
    free(ctx);
}

int sign_generate_secret(const sign_ctx *ctx, uint8_t secret[SIGN_SECRET_LEN])
{
    /* A uniform 256-bit string is a valid key with probability ~1 - 2^-128:
     * the loop exists for correctness, not because it ever repeats. */
    for (int i = 0; i < 64; i++) {
        randombytes_buf(secret, SIGN_SECRET_LEN);
        if (secp256k1_ec_seckey_verify(ctx->ctx, secret))
            return 0;
    }
    sodium_memzero(secret, SIGN_SECRET_LEN);
    return -1;
}

int sign_address_from_secret(const sign_ctx *ctx, uint8_t address[SIGN_ADDRESS_LEN],
                             const uint8_t secret[SIGN_SECRET_LEN])
{
    secp256k1_pubkey pk;
    uint8_t ser[65], hash[32];
    size_t ser_len = sizeof ser;

    if (!secp256k1_ec_pubkey_create(ctx->ctx, &pk, secret))
        return -1;
    if (!secp256k1_ec_pubkey_serialize(ctx->ctx, ser, &ser_len, &pk, SECP256K1_EC_UNCOMPRESSED) ||
        ser_len != 65)
        return -1;
    keccak256(hash, ser + 1, 64);
    memcpy(address, hash + 12, SIGN_ADDRESS_LEN);
    return 0;
}

int sign_digest(const sign_ctx *ctx, uint8_t r[32], uint8_t s[32], int *recid,
                const uint8_t digest[SIGN_DIGEST_LEN], const uint8_t secret[SIGN_SECRET_LEN])
{
    secp256k1_ecdsa_recoverable_signature sig;
    uint8_t compact[64];
    int id = 0;

    /* NULL nonce function: RFC 6979 with no extra data (deterministic). */
    if (!secp256k1_ecdsa_sign_recoverable(ctx->ctx, &sig, digest, secret, NULL, NULL))
        return -1;
    if (!secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx->ctx, compact, &id, &sig))
        return -1;
    memcpy(r, compact, 32);
    memcpy(s, compact + 32, 32);
    *recid = id;
    return 0;
}
