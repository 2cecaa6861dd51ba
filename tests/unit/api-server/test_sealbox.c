/* sealbox: round trip, AAD binding, tampering, key checks. */
#include "sealbox.h"
#include "test_support.h"

#include <string.h>

static const char key_a[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char key_b[] = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void test_sealbox_round_trip(void)
{
    char err[256];
    sealbox *a = sealbox_new(err, sizeof err, key_a);
    sealbox *b = sealbox_new(err, sizeof err, key_b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    const uint8_t pt[] = "webhook secret bytes";
    const uint8_t aad[] = "client-1";
    uint8_t ct[64], ct2[64], out[64];
    size_t n = 0, n2 = 0, m = 0;
    CU_ASSERT_EQUAL_FATAL(sealbox_seal(a, ct, sizeof ct, &n, pt, sizeof pt, aad, 8), 0);
    CU_ASSERT_EQUAL(n, sizeof pt + SEALBOX_OVERHEAD);
    CU_ASSERT_EQUAL(ct[0], SEALBOX_VERSION);
    CU_ASSERT_EQUAL_FATAL(sealbox_seal(a, ct2, sizeof ct2, &n2, pt, sizeof pt, aad, 8), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(ct, ct2, n), 0); /* random nonce */
    CU_ASSERT_EQUAL_FATAL(sealbox_open(a, out, sizeof out, &m, ct, n, aad, 8), 0);
    CU_ASSERT_EQUAL(m, sizeof pt);
    CU_ASSERT_EQUAL(memcmp(out, pt, m), 0);
    /* another owner, another key, a flipped bit, a short value: refused */
    CU_ASSERT_EQUAL(sealbox_open(a, out, sizeof out, &m, ct, n, (const uint8_t *)"client-2", 8), -1);
    CU_ASSERT_EQUAL(sealbox_open(b, out, sizeof out, &m, ct, n, aad, 8), -1);
    ct[n - 1] ^= 1;
    CU_ASSERT_EQUAL(sealbox_open(a, out, sizeof out, &m, ct, n, aad, 8), -1);
    CU_ASSERT_EQUAL(sealbox_open(a, out, sizeof out, &m, ct, 10, aad, 8), -1);
    /* too small an output */
    CU_ASSERT_EQUAL(sealbox_seal(a, ct, 10, &n, pt, sizeof pt, aad, 8), -1);
    sealbox_free(a);
    sealbox_free(b);
    sealbox_free(NULL);
}

static void test_sealbox_key(void)
{
    char err[256];
    CU_ASSERT_PTR_NULL(sealbox_new(err, sizeof err, NULL));
    CU_ASSERT_PTR_NULL(sealbox_new(err, sizeof err, "abcd"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "64"));
    CU_ASSERT_PTR_NULL(sealbox_new(err, sizeof err,
                                   "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
    CU_ASSERT_PTR_NULL(strstr(err, "zz01")); /* never the key */
}

void test_register(void)
{
    static const test_case cases[] = {
        {"round_trip", test_sealbox_round_trip},
        {"key", test_sealbox_key},
        {NULL, NULL},
    };
    test_add_suite("sealbox", cases);
}
