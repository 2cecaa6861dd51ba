#include "sealbox.h"

#include "hex.h"
#include "secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SEALBOX_KEY_BYTES == crypto_secretbox_xchacha20poly1305_KEYBYTES, "key size");
_Static_assert(SEALBOX_NONCE_BYTES == crypto_secretbox_xchacha20poly1305_NONCEBYTES, "nonce size");
_Static_assert(SEALBOX_TAG_BYTES == crypto_secretbox_xchacha20poly1305_MACBYTES, "tag size");

/* The key for one owner: keyed BLAKE2b-256 of a label and the AAD under
 * the server key. A value sealed for one owner does not open for another. */
static void sealbox_subkey(uint8_t out[SEALBOX_KEY_BYTES], const uint8_t *key, const uint8_t *aad, size_t aad_len)
{
    static const char label[] = "coffer.sealbox.v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SEALBOX_KEY_BYTES, SEALBOX_KEY_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label);
    crypto_generichash_update(&st, aad, aad_len);
    crypto_generichash_final(&st, out, SEALBOX_KEY_BYTES);
    sodium_memzero(&st, sizeof st);
}

struct sealbox {
    secmem *key;
    pthread_mutex_t lock; /* secmem regions are not thread-safe */
};

sealbox *sealbox_new(char *err, size_t err_len, const char *key_hex)
{
    if (!key_hex || strlen(key_hex) != SEALBOX_KEY_HEX_LEN) {
        snprintf(err, err_len, "secrets.key must be exactly %u hex characters (32 random bytes; "
                 "generate with: openssl rand -hex 32)", SEALBOX_KEY_HEX_LEN);
        return NULL;
    }
    if (secmem_init() != 0) {
        snprintf(err, err_len, "libsodium cannot be initialized");
        return NULL;
    }
    sealbox *b = calloc(1, sizeof *b);
    if (!b || !(b->key = secmem_new(SEALBOX_KEY_BYTES))) {
        free(b);
        snprintf(err, err_len, "out of guarded memory for secrets.key");
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    uint8_t *k = secmem_open_rw(b->key);
    int bad = !k || hex_decode_exact(k, SEALBOX_KEY_BYTES, key_hex) != 0;
    if (k && bad)
        secmem_wipe(k, SEALBOX_KEY_BYTES);
    if ((k && secmem_close(b->key) != 0) || bad) {
        snprintf(err, err_len, "secrets.key must be exactly %u hex characters", SEALBOX_KEY_HEX_LEN);
        sealbox_free(b);
        return NULL;
    }
    return b;
}

void sealbox_free(sealbox *b)
{
    if (!b)
        return;
    secmem_free(b->key);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

int sealbox_seal(sealbox *b, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *pt, size_t pt_len,
                 const uint8_t *aad, size_t aad_len)
{
    *out_len = 0;
    if (out_cap < pt_len + SEALBOX_OVERHEAD || pt_len > SIZE_MAX - SEALBOX_OVERHEAD)
        return -1;
    out[0] = SEALBOX_VERSION;
    randombytes_buf(out + 1, SEALBOX_NONCE_BYTES);
    uint8_t sub[SEALBOX_KEY_BYTES];
    int rc = -1;
    pthread_mutex_lock(&b->lock);
    const uint8_t *k = secmem_open_ro(b->key);
    if (k) {
        sealbox_subkey(sub, k, aad, aad_len);
        rc = secmem_close(b->key);
    }
    pthread_mutex_unlock(&b->lock);
    if (rc == 0)
        rc = crypto_secretbox_xchacha20poly1305_easy(out + 1 + SEALBOX_NONCE_BYTES, pt, pt_len, out + 1, sub);
    sodium_memzero(sub, sizeof sub);
    if (rc != 0) {
        sodium_memzero(out, out_cap);
        return -1;
    }
    *out_len = 1 + SEALBOX_NONCE_BYTES + pt_len + SEALBOX_TAG_BYTES;
    return 0;
}

int sealbox_open(sealbox *b, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *in, size_t in_len,
                 const uint8_t *aad, size_t aad_len)
{
    *out_len = 0;
    if (in_len < SEALBOX_OVERHEAD || in[0] != SEALBOX_VERSION || out_cap < in_len - SEALBOX_OVERHEAD)
        return -1;
    uint8_t sub[SEALBOX_KEY_BYTES];
    int rc = -1;
    pthread_mutex_lock(&b->lock);
    const uint8_t *k = secmem_open_ro(b->key);
    if (k) {
        sealbox_subkey(sub, k, aad, aad_len);
        rc = secmem_close(b->key);
    }
    pthread_mutex_unlock(&b->lock);
    if (rc == 0)
        rc = crypto_secretbox_xchacha20poly1305_open_easy(out, in + 1 + SEALBOX_NONCE_BYTES,
                                                          in_len - 1 - SEALBOX_NONCE_BYTES, in + 1, sub);
    sodium_memzero(sub, sizeof sub);
    if (rc != 0) {
        sodium_memzero(out, out_cap);
        return -1;
    }
    *out_len = in_len - SEALBOX_OVERHEAD;
    return 0;
}
