#include "keccak.h"

#include "eth_vectors.h"
#include "hex.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

/* Input of the "seq" vectors: byte i = i mod 256. */
static uint8_t *seq_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)i;
    return p;
}

static void digest_hex(char out[65], const uint8_t *in, size_t len)
{
    uint8_t d[KECCAK256_DIGEST_LEN];
    keccak256(d, in, len);
    hex_encode(out, d, sizeof d);
}

/* Hashes in with keccak256_update calls of `chunk` bytes each. */
static void digest_chunked(uint8_t out[KECCAK256_DIGEST_LEN], const uint8_t *in, size_t len,
                           size_t chunk)
{
    keccak256_ctx ctx;
    keccak256_init(&ctx);
    for (size_t off = 0; off < len; off += chunk)
        keccak256_update(&ctx, in + off, len - off < chunk ? len - off : chunk);
    keccak256_final(&ctx, out);
}

/* Known answers written down independently of the generated file. */
static void test_keccak_known(void)
{
    char h[65];
    digest_hex(h, NULL, 0);
    CU_ASSERT_STRING_EQUAL(h, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    digest_hex(h, (const uint8_t *)"abc", 3);
    CU_ASSERT_STRING_EQUAL(h, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    /* Differs from SHA3-256("") = a7ffc6f8...: checks the 0x01 padding. */
    CU_ASSERT_STRING_NOT_EQUAL(h, "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    /* Selectors everyone knows. */
    digest_hex(h, (const uint8_t *)"transfer(address,uint256)", 25);
    CU_ASSERT_NSTRING_EQUAL(h, "a9059cbb", 8);
    digest_hex(h, (const uint8_t *)"Transfer(address,address,uint256)", 33);
    CU_ASSERT_STRING_EQUAL(h, "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
}

/* tests/vectors/keccak.txt, generated with cast keccak. */
static void test_keccak_vectors(void)
{
    static const size_t chunks[] = {1, 3, 64, 135, 136, 137, 1000};
    vec_file v;
    size_t count = 0;
    if (vec_open(&v, "keccak.txt") != 0)
        return;
    while (vec_next(&v)) {
        uint8_t *in = NULL;
        size_t len = 0;
        uint8_t want[KECCAK256_DIGEST_LEN];
        uint8_t got[KECCAK256_DIGEST_LEN];

        CU_ASSERT_FATAL(v.nfield == 3);
        if (strcmp(v.field[0], "hex") == 0) {
            in = vec_hex(v.field[1], &len);
        } else if (strcmp(v.field[0], "seq") == 0) {
            len = (size_t)strtoul(v.field[1], NULL, 10);
            in = seq_bytes(len);
        }
        CU_ASSERT_FATAL(in != NULL);
        CU_ASSERT_FATAL(hex_decode_exact(want, sizeof want, v.field[2]) == 0);

        keccak256(got, in, len);
        VEC_CHECK(&v, memcmp(got, want, sizeof want) == 0);
        for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
            digest_chunked(got, in, len, chunks[i]);
            VEC_CHECK(&v, memcmp(got, want, sizeof want) == 0);
        }
        free(in);
        count++;
    }
    vec_close(&v);
    CU_ASSERT(count >= 27);
}

/* Incremental hashing equals one-shot for every split point (two parts)
 * of every length up to three blocks, and for every pair of split points
 * (three parts) around one block. */
static void test_keccak_split_points(void)
{
    uint8_t *in = seq_bytes(3 * KECCAK256_RATE + 1);
    uint8_t want[KECCAK256_DIGEST_LEN];
    uint8_t got[KECCAK256_DIGEST_LEN];
    keccak256_ctx ctx;
    size_t mismatches = 0;
    CU_ASSERT_FATAL(in != NULL);

    for (size_t len = 0; len <= 3 * KECCAK256_RATE + 1; len++) {
        keccak256(want, in, len);
        for (size_t cut = 0; cut <= len; cut++) {
            keccak256_init(&ctx);
            keccak256_update(&ctx, in, cut);
            keccak256_update(&ctx, in + cut, len - cut);
            keccak256_final(&ctx, got);
            mismatches += memcmp(got, want, sizeof want) != 0;
        }
    }
    const size_t len = KECCAK256_RATE + 1;
    keccak256(want, in, len);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            keccak256_init(&ctx);
            keccak256_update(&ctx, in, a);
            keccak256_update(&ctx, in + a, b - a);
            keccak256_update(&ctx, NULL, 0);
            keccak256_update(&ctx, in + b, len - b);
            keccak256_final(&ctx, got);
            mismatches += memcmp(got, want, sizeof want) != 0;
        }
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    free(in);
}

/* final() leaves the context ready for reuse after init; out may alias in. */
static void test_keccak_reuse_and_alias(void)
{
    keccak256_ctx ctx;
    uint8_t a[KECCAK256_DIGEST_LEN];
    uint8_t b[KECCAK256_DIGEST_LEN];
    uint8_t buf[KECCAK256_DIGEST_LEN];

    keccak256_init(&ctx);
    keccak256_update(&ctx, (const uint8_t *)"abc", 3);
    keccak256_final(&ctx, a);
    keccak256_init(&ctx);
    keccak256_update(&ctx, (const uint8_t *)"abc", 3);
    keccak256_final(&ctx, b);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);

    /* keccak256(keccak256("abc")) computed in place. */
    memcpy(buf, a, sizeof buf);
    keccak256(buf, buf, sizeof buf);
    keccak256(b, a, sizeof a);
    CU_ASSERT_EQUAL(memcmp(buf, b, sizeof b), 0);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"known", test_keccak_known},
        {"vectors", test_keccak_vectors},
        {"split_points", test_keccak_split_points},
        {"reuse_and_alias", test_keccak_reuse_and_alias},
        {NULL, NULL},
    };
    test_add_suite("keccak", cases);
}
