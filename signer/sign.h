/* sign: the only code that touches private key bytes (with keystore's
 * seal/unseal). secp256k1 through libsecp256k1: key generation, address
 * derivation, recoverable ECDSA signatures over 32-byte digests.
 *
 * Signatures are deterministic (RFC 6979 nonces, libsecp256k1's default)
 * and low-s (EIP-2), so the same key and digest always give the same
 * signature: that is what makes an idempotent re-sign possible.
 *
 * Secret inputs are never branched on here (libsecp256k1 is constant-time
 * in the secret key and nonce); every temporary holding a secret is wiped
 * before return. A sign_ctx is not shared between threads. */
#ifndef COFFER_SIGNER_SIGN_H
#define COFFER_SIGNER_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_SECRET_LEN 32
#define SIGN_ADDRESS_LEN 20
#define SIGN_DIGEST_LEN 32

typedef struct sign_ctx sign_ctx;

/* Creates a context and randomizes it (side-channel blinding) with 32
 * bytes from libsodium's generator. Call before the seccomp sandbox only
 * if getrandom(2) is not allowed afterwards.
 * Returns the context or NULL (ENOMEM, libsodium unusable). */
__attribute__((warn_unused_result))
sign_ctx *sign_ctx_new(void);

/* Frees a context; ctx may be NULL. */
void sign_ctx_free(sign_ctx *ctx);

/* Draws a uniformly random valid secret key.
 * Returns 0, or -1 if 64 draws in a row were invalid (the OS generator is
 * broken). secret: output, SIGN_SECRET_LEN bytes (wiped on failure). */
__attribute__((warn_unused_result))
int sign_generate_secret(const sign_ctx *ctx, uint8_t secret[SIGN_SECRET_LEN]);

/* Derives the Ethereum address of a secret key: the last 20 bytes of
 * keccak256 of the uncompressed public key without its 0x04 prefix.
 * Returns 0, or -1 when secret is not a valid key (zero or >= the group
 * order). address: output. secret: input. */
__attribute__((warn_unused_result))
int sign_address_from_secret(const sign_ctx *ctx, uint8_t address[SIGN_ADDRESS_LEN],
                             const uint8_t secret[SIGN_SECRET_LEN]);

/* Signs a 32-byte digest.
 * Returns 0, or -1 when secret is invalid.
 * r, s: outputs, 32 bytes big-endian each (s is low). recid: output, the
 * recovery id 0 or 1 (the y parity). digest, secret: inputs. */
__attribute__((warn_unused_result))
int sign_digest(const sign_ctx *ctx, uint8_t r[32], uint8_t s[32], int *recid,
                const uint8_t digest[SIGN_DIGEST_LEN], const uint8_t secret[SIGN_SECRET_LEN]);

#endif
