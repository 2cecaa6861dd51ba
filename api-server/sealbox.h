/* sealbox: secrets at rest in coffer-api's database (a client's webhook
 * signing secret, stored idempotent answers that carry a key shown once),
 * sealed with XChaCha20-Poly1305 (libsodium's crypto_secretbox_xchacha20poly1305)
 * under one server key from config (secrets.key: 64 hex characters = 32 bytes).
 *
 * Sealed format: version byte (SEALBOX_VERSION) || 24-byte random nonce ||
 * 16-byte tag || ciphertext. The additional data (AAD; for a webhook secret:
 * the client id) binds a sealed value to its owner: each value is sealed
 * under keyed-BLAKE2b(server key, label || AAD), so it cannot be moved to
 * another row. (Not the IETF AEAD construction: coffer-api must not link
 * crypto_aead_xchacha20poly1305_ietf_decrypt, the primitive that opens the
 * signer's key blobs; tests/integration/signer/no_unseal.sh checks it.) The key lives in guarded memory (secmem), open only
 * for the duration of one seal or open. Thread-safe. */
#ifndef COFFER_SEALBOX_H
#define COFFER_SEALBOX_H

#include <stddef.h>
#include <stdint.h>

#define SEALBOX_VERSION 1u
#define SEALBOX_KEY_BYTES 32u
#define SEALBOX_KEY_HEX_LEN 64u
#define SEALBOX_NONCE_BYTES 24u
#define SEALBOX_TAG_BYTES 16u
#define SEALBOX_OVERHEAD (1u + SEALBOX_NONCE_BYTES + SEALBOX_TAG_BYTES)

typedef struct sealbox sealbox;

/* Creates a box from key_hex: exactly 64 hex digits (either case).
 * Returns it, or NULL with err saying why (never the key). */
__attribute__((warn_unused_result))
sealbox *sealbox_new(char *err, size_t err_len, const char *key_hex);

/* Wipes the key and frees. b may be NULL. */
void sealbox_free(sealbox *b);

/* Seals pt[0..pt_len) with aad[0..aad_len) into out[0..out_cap), which
 * must hold pt_len + SEALBOX_OVERHEAD bytes; *out_len gets the length.
 * Returns 0, or -1 (out too small, key unavailable). */
__attribute__((warn_unused_result))
int sealbox_seal(sealbox *b, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *pt, size_t pt_len,
                 const uint8_t *aad, size_t aad_len);

/* Opens what sealbox_seal produced with the same aad into out[0..out_cap)
 * (at least in_len - SEALBOX_OVERHEAD bytes); *out_len gets the length.
 * Returns 0, or -1 when the value is malformed, of another version, was
 * sealed with another key or aad, or was altered (out then holds nothing
 * useful: it is wiped). */
__attribute__((warn_unused_result))
int sealbox_open(sealbox *b, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *in, size_t in_len,
                 const uint8_t *aad, size_t aad_len);

#endif
