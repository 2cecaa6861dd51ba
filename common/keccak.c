/* Keccak-f[1600] and the Keccak-256 sponge, written from the Keccak
 * reference (FIPS 202 section 3 for the step mappings; padding pad10*1
 * with the original Keccak domain byte 0x01). */
#include "keccak.h"

#include <string.h>

#define KECCAK_ROUNDS 24

static const uint64_t keccak_round_constants[KECCAK_ROUNDS] = {
    UINT64_C(0x0000000000000001), UINT64_C(0x0000000000008082),
    UINT64_C(0x800000000000808a), UINT64_C(0x8000000080008000),
    UINT64_C(0x000000000000808b), UINT64_C(0x0000000080000001),
    UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008009),
    UINT64_C(0x000000000000008a), UINT64_C(0x0000000000000088),
    UINT64_C(0x0000000080008009), UINT64_C(0x000000008000000a),
    UINT64_C(0x000000008000808b), UINT64_C(0x800000000000008b),
    UINT64_C(0x8000000000008089), UINT64_C(0x8000000000008003),
    UINT64_C(0x8000000000008002), UINT64_C(0x8000000000000080),
    UINT64_C(0x000000000000800a), UINT64_C(0x800000008000000a),
    UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008080),
    UINT64_C(0x0000000080000001), UINT64_C(0x8000000080008008),
};

/* rho offsets, indexed x + 5*y. */
static const unsigned keccak_rho[25] = {
    0,  1,  62, 28, 27,
    36, 44, 6,  55, 20,
    3,  10, 43, 25, 39,
    41, 45, 15, 21, 8,
    18, 2,  61, 56, 14,
};

static uint64_t rotl64(uint64_t v, unsigned n)
{
    /* n in [0, 63]; the mask keeps the right shift defined for n == 0. */
    return (v << n) | (v >> ((64u - n) & 63u));
}

static void keccak_f1600(uint64_t a[25])
{
    uint64_t b[25];
    uint64_t c[5];
    uint64_t d[5];

    for (unsigned round = 0; round < KECCAK_ROUNDS; round++) {
        /* theta */
        for (unsigned x = 0; x < 5; x++)
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (unsigned x = 0; x < 5; x++)
            d[x] = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
        for (unsigned i = 0; i < 25; i++)
            a[i] ^= d[i % 5];
        /* rho and pi: B[y, 2x + 3y] = rot(A[x, y], r[x, y]) */
        for (unsigned y = 0; y < 5; y++) {
            for (unsigned x = 0; x < 5; x++) {
                unsigned nx = y;
                unsigned ny = (2 * x + 3 * y) % 5;
                b[nx + 5 * ny] = rotl64(a[x + 5 * y], keccak_rho[x + 5 * y]);
            }
        }
        /* chi */
        for (unsigned y = 0; y < 5; y++) {
            for (unsigned x = 0; x < 5; x++) {
                a[x + 5 * y] = b[x + 5 * y] ^
                               (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        /* iota */
        a[0] ^= keccak_round_constants[round];
    }
}

static uint64_t load64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* XORs one byte into the state at byte offset pos (lanes are little-endian). */
static void keccak_xor_byte(uint64_t state[25], size_t pos, uint8_t byte)
{
    state[pos / 8] ^= (uint64_t)byte << (8 * (pos % 8));
}

void keccak256_init(keccak256_ctx *ctx)
{
    memset(ctx->state, 0, sizeof ctx->state);
    ctx->pos = 0;
}

void keccak256_update(keccak256_ctx *ctx, const uint8_t *in, size_t in_len)
{
    if (in_len == 0)
        return;
    /* Fill up a partial block first. */
    while (ctx->pos != 0 && in_len > 0) {
        keccak_xor_byte(ctx->state, ctx->pos, *in);
        in++;
        in_len--;
        if (++ctx->pos == KECCAK256_RATE) {
            keccak_f1600(ctx->state);
            ctx->pos = 0;
        }
    }
    /* Whole blocks, a lane at a time. */
    while (in_len >= KECCAK256_RATE) {
        for (unsigned i = 0; i < KECCAK256_RATE / 8; i++)
            ctx->state[i] ^= load64_le(in + 8 * i);
        keccak_f1600(ctx->state);
        in += KECCAK256_RATE;
        in_len -= KECCAK256_RATE;
    }
    /* The tail starts a new partial block (ctx->pos is 0 here unless the
     * input was used up above). */
    for (size_t i = 0; i < in_len; i++)
        keccak_xor_byte(ctx->state, ctx->pos++, in[i]);
}

void keccak256_final(keccak256_ctx *ctx, uint8_t out[KECCAK256_DIGEST_LEN])
{
    /* pad10*1 with the Keccak domain bit: 0x01 at pos, 0x80 at the last
     * byte of the block (both land in the same byte when pos == rate - 1). */
    keccak_xor_byte(ctx->state, ctx->pos, 0x01);
    keccak_xor_byte(ctx->state, KECCAK256_RATE - 1, 0x80);
    keccak_f1600(ctx->state);
    for (unsigned i = 0; i < KECCAK256_DIGEST_LEN; i++)
        out[i] = (uint8_t)(ctx->state[i / 8] >> (8 * (i % 8)));
    keccak256_init(ctx);
}

void keccak256(uint8_t out[KECCAK256_DIGEST_LEN], const uint8_t *in, size_t in_len)
{
    keccak256_ctx ctx;
    keccak256_init(&ctx);
    keccak256_update(&ctx, in, in_len);
    keccak256_final(&ctx, out);
}
