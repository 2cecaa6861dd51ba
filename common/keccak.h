/* keccak: Keccak-256 as used by Ethereum (original Keccak padding 0x01,
 * not the FIPS 202 SHA3-256 padding 0x06). Not constant-time with respect
 * to the input length; the input itself never decides a branch. */
#ifndef COFFER_KECCAK_H
#define COFFER_KECCAK_H

#include <stddef.h>
#include <stdint.h>

/* Digest size in bytes. */
#define KECCAK256_DIGEST_LEN 32
/* Sponge rate in bytes (1600 - 2*256 bits). */
#define KECCAK256_RATE 136

/* Incremental hashing state. Caller-owned; treat the fields as private. */
typedef struct {
    uint64_t state[25]; /* lanes, lane (x, y) at index x + 5*y */
    size_t pos;         /* bytes absorbed into the current block, < KECCAK256_RATE */
} keccak256_ctx;

/* One-shot Keccak-256.
 * out: output, KECCAK256_DIGEST_LEN bytes.
 * in, in_len: input bytes (in may be NULL when in_len is 0).
 * out may alias in. */
void keccak256(uint8_t out[KECCAK256_DIGEST_LEN], const uint8_t *in, size_t in_len);

/* Starts a new hash.
 * ctx: output, the state to initialise (any previous content is discarded). */
void keccak256_init(keccak256_ctx *ctx);

/* Absorbs more input; may be called any number of times between
 * keccak256_init and keccak256_final.
 * ctx: in/out, an initialised state.
 * in, in_len: input bytes (in may be NULL when in_len is 0). */
void keccak256_update(keccak256_ctx *ctx, const uint8_t *in, size_t in_len);

/* Finishes the hash and writes the digest. The state is then reset as by
 * keccak256_init, so the context can start a new hash (calling
 * keccak256_init again is harmless).
 * ctx: in/out, an initialised state.
 * out: output, KECCAK256_DIGEST_LEN bytes. */
void keccak256_final(keccak256_ctx *ctx, uint8_t out[KECCAK256_DIGEST_LEN]);

#endif
