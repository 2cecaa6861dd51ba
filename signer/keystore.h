/* keystore: sealed private keys.
 *
 * A sealed blob is KEYSTORE_BLOB_LEN bytes:
 *
 *     version (1 byte, KEYSTORE_BLOB_VERSION)
 *     KEK version (4 bytes, big-endian)
 *     nonce (24 bytes, random)
 *     ciphertext | tag (32 + 16 bytes): XChaCha20-Poly1305-IETF of the
 *                                       32-byte secp256k1 secret key
 *
 * The AEAD's additional data binds what the blob may be used for:
 *
 *     "coffer-signer/sealed-key/v1" | version | KEK version | key type (1 byte)
 *     | address (20 bytes) | owner id length (2 bytes, big-endian) | owner id
 *
 * so a blob presented with another owner id, another address or another
 * key type does not open, and the header cannot be edited. After opening,
 * the address is derived again from the secret and compared: a blob sealed
 * (by a KEK holder) over a key that does not match its address is refused.
 *
 * Secret keys only ever live in caller-provided buffers that the caller
 * keeps in secmem memory and wipes; this module wipes its own temporaries
 * on every path. */
#ifndef COFFER_SIGNER_KEYSTORE_H
#define COFFER_SIGNER_KEYSTORE_H

#include "kek.h"
#include "sign.h"

#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_BLOB_VERSION 1u
#define KEYSTORE_NONCE_LEN 24u
#define KEYSTORE_TAG_LEN 16u
#define KEYSTORE_HEADER_LEN (1u + 4u + KEYSTORE_NONCE_LEN)
#define KEYSTORE_BLOB_LEN (KEYSTORE_HEADER_LEN + SIGN_SECRET_LEN + KEYSTORE_TAG_LEN)
/* Owner ids: 1..KEYSTORE_OWNER_MAX bytes of printable ASCII except '"' and '\'. */
#define KEYSTORE_OWNER_MAX 128u
/* Key types (signer.proto KeyType). */
#define KEYSTORE_KEY_SECP256K1 1u

typedef enum {
    KEYSTORE_OK = 0,
    KEYSTORE_ERR_FORMAT,      /* wrong length or blob version */
    KEYSTORE_ERR_UNKNOWN_KEK, /* sealed under a KEK version not in the ring */
    KEYSTORE_ERR_AUTH,        /* does not open: tampered, or another owner/address/type */
    KEYSTORE_ERR_ADDRESS,     /* opens, but the key is not the address's key */
    KEYSTORE_ERR_INTERNAL,    /* memory protection or randomness failed */
} keystore_err;

/* A short constant description of err. */
const char *keystore_strerror(keystore_err err);

/* True when owner[0..len) is a valid owner id. */
int keystore_owner_valid(const char *owner, size_t len);

/* The KEK version a blob names (no other check). blob: KEYSTORE_BLOB_LEN bytes. */
uint32_t keystore_blob_kek_version(const uint8_t blob[KEYSTORE_BLOB_LEN]);

/* Seals secret under the ring's current KEK.
 * Returns KEYSTORE_OK, KEYSTORE_ERR_UNKNOWN_KEK (the ring has no current
 * key) or KEYSTORE_ERR_INTERNAL.
 * blob: output. ring: in/out (its memory is opened and closed).
 * key_type, address, owner, owner_len: what the blob is bound to.
 * secret: the 32-byte key. */
__attribute__((warn_unused_result))
keystore_err keystore_seal(uint8_t blob[KEYSTORE_BLOB_LEN], kek_ring *ring, uint8_t key_type,
                           const uint8_t address[SIGN_ADDRESS_LEN], const char *owner,
                           size_t owner_len, const uint8_t secret[SIGN_SECRET_LEN]);

/* Opens a blob and checks that its key derives to address.
 * Returns KEYSTORE_OK or any keystore_err; on failure secret is zeroed.
 * secret: output, 32 bytes (caller-owned guarded memory).
 * kek_version: output, the version it was sealed under (may be NULL).
 * ring: in/out. sctx: for the address derivation. blob, blob_len, key_type,
 * address, owner, owner_len: inputs. */
__attribute__((warn_unused_result))
keystore_err keystore_unseal(uint8_t secret[SIGN_SECRET_LEN], uint32_t *kek_version,
                             kek_ring *ring, const sign_ctx *sctx, const uint8_t *blob,
                             size_t blob_len, uint8_t key_type,
                             const uint8_t address[SIGN_ADDRESS_LEN], const char *owner,
                             size_t owner_len);

#endif
