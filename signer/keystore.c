#include "keystore.h"

#include "secmem.h"

#include <sodium.h>
#include <string.h>

#define AAD_LABEL "coffer-signer/sealed-key/v1"
#define AAD_MAX (sizeof AAD_LABEL - 1 + 1 + 4 + 1 + SIGN_ADDRESS_LEN + 2 + KEYSTORE_OWNER_MAX)

_Static_assert(KEYSTORE_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(KEYSTORE_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(KEK_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

const char *keystore_strerror(keystore_err err)
{
    switch (err) {
    case KEYSTORE_OK:
        return "ok";
    case KEYSTORE_ERR_FORMAT:
        return "sealed key has the wrong length or version";
    case KEYSTORE_ERR_UNKNOWN_KEK:
        return "sealed under a KEK version this signer does not hold";
    case KEYSTORE_ERR_AUTH:
        return "sealed key does not open for this owner, address and key type";
    case KEYSTORE_ERR_ADDRESS:
        return "sealed key does not belong to the address";
    case KEYSTORE_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown keystore error";
}

int keystore_owner_valid(const char *owner, size_t len)
{
    if (len == 0 || len > KEYSTORE_OWNER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)owner[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

uint32_t keystore_blob_kek_version(const uint8_t blob[KEYSTORE_BLOB_LEN])
{
    return ((uint32_t)blob[1] << 24) | ((uint32_t)blob[2] << 16) | ((uint32_t)blob[3] << 8) |
           (uint32_t)blob[4];
}

/* Builds the additional data; returns its length. */
static size_t build_aad(uint8_t aad[AAD_MAX], const uint8_t header5[5], uint8_t key_type,
                        const uint8_t address[SIGN_ADDRESS_LEN], const char *owner,
                        size_t owner_len)
{
    size_t n = 0;
    memcpy(aad + n, AAD_LABEL, sizeof AAD_LABEL - 1);
    n += sizeof AAD_LABEL - 1;
    memcpy(aad + n, header5, 5);
    n += 5;
    aad[n++] = key_type;
    memcpy(aad + n, address, SIGN_ADDRESS_LEN);
    n += SIGN_ADDRESS_LEN;
    aad[n++] = (uint8_t)(owner_len >> 8);
    aad[n++] = (uint8_t)owner_len;
    memcpy(aad + n, owner, owner_len);
    return n + owner_len;
}

keystore_err keystore_seal(uint8_t blob[KEYSTORE_BLOB_LEN], kek_ring *ring, uint8_t key_type,
                           const uint8_t address[SIGN_ADDRESS_LEN], const char *owner,
                           size_t owner_len, const uint8_t secret[SIGN_SECRET_LEN])
{
    uint8_t aad[AAD_MAX];
    unsigned long long clen = 0;
    uint32_t v = kek_ring_current(ring);

    if (!keystore_owner_valid(owner, owner_len))
        return KEYSTORE_ERR_FORMAT;
    if (v == 0)
        return KEYSTORE_ERR_UNKNOWN_KEK;
    blob[0] = KEYSTORE_BLOB_VERSION;
    blob[1] = (uint8_t)(v >> 24);
    blob[2] = (uint8_t)(v >> 16);
    blob[3] = (uint8_t)(v >> 8);
    blob[4] = (uint8_t)v;
    randombytes_buf(blob + 5, KEYSTORE_NONCE_LEN);
    size_t aad_len = build_aad(aad, blob, key_type, address, owner, owner_len);

    const uint8_t *kek = kek_ring_open(ring, v);
    if (!kek)
        return KEYSTORE_ERR_INTERNAL;
    crypto_aead_xchacha20poly1305_ietf_encrypt(blob + KEYSTORE_HEADER_LEN, &clen, secret,
                                               SIGN_SECRET_LEN, aad, aad_len, NULL, blob + 5, kek);
    if (kek_ring_close(ring, v) != 0) {
        sodium_memzero(blob, KEYSTORE_BLOB_LEN);
        return KEYSTORE_ERR_INTERNAL;
    }
    if (clen != SIGN_SECRET_LEN + KEYSTORE_TAG_LEN) {
        sodium_memzero(blob, KEYSTORE_BLOB_LEN);
        return KEYSTORE_ERR_INTERNAL;
    }
    return KEYSTORE_OK;
}

keystore_err keystore_unseal(uint8_t secret[SIGN_SECRET_LEN], uint32_t *kek_version,
                             kek_ring *ring, const sign_ctx *sctx, const uint8_t *blob,
                             size_t blob_len, uint8_t key_type,
                             const uint8_t address[SIGN_ADDRESS_LEN], const char *owner,
                             size_t owner_len)
{
    uint8_t aad[AAD_MAX];
    uint8_t derived[SIGN_ADDRESS_LEN];
    unsigned long long mlen = 0;
    keystore_err result = KEYSTORE_ERR_INTERNAL;

    sodium_memzero(secret, SIGN_SECRET_LEN);
    if (blob_len != KEYSTORE_BLOB_LEN || blob[0] != KEYSTORE_BLOB_VERSION ||
        !keystore_owner_valid(owner, owner_len))
        return KEYSTORE_ERR_FORMAT;
    uint32_t v = keystore_blob_kek_version(blob);
    if (kek_version)
        *kek_version = v;
    if (!kek_ring_has(ring, v))
        return KEYSTORE_ERR_UNKNOWN_KEK;
    size_t aad_len = build_aad(aad, blob, key_type, address, owner, owner_len);

    const uint8_t *kek = kek_ring_open(ring, v);
    if (!kek)
        return KEYSTORE_ERR_INTERNAL;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        secret, &mlen, NULL, blob + KEYSTORE_HEADER_LEN, SIGN_SECRET_LEN + KEYSTORE_TAG_LEN, aad,
        aad_len, blob + 5, kek);
    if (kek_ring_close(ring, v) != 0)
        goto fail;
    if (rc != 0 || mlen != SIGN_SECRET_LEN) {
        result = KEYSTORE_ERR_AUTH;
        goto fail;
    }
    if (sign_address_from_secret(sctx, derived, secret) != 0 ||
        !secmem_equal(derived, address, SIGN_ADDRESS_LEN)) {
        result = KEYSTORE_ERR_ADDRESS;
        goto fail;
    }
    return KEYSTORE_OK;
fail:
    sodium_memzero(secret, SIGN_SECRET_LEN);
    return result;
}
