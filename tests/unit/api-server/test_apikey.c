/* apikey: format, keyed hash, prefix, secret checks, resolver refusals
 * without a database; apy: the annualisation. */
#include "apikey.h"
#include "apy.h"
#include "test_support.h"

#include <math.h>
#include <string.h>

static const char secret[] = "0123456789abcdef0123456789abcdef";

static void test_apikey_format(void)
{
    char k[APIKEY_LEN + 1], k2[APIKEY_LEN + 1], p[APIKEY_PREFIX_LEN + 1];
    apikey_generate(k, APIKEY_LIVE);
    apikey_generate(k2, APIKEY_TEST);
    CU_ASSERT_EQUAL(strlen(k), APIKEY_LEN);
    CU_ASSERT_EQUAL(strncmp(k, "ck_live_", 8), 0);
    CU_ASSERT_EQUAL(strncmp(k2, "ck_test_", 8), 0);
    CU_ASSERT_TRUE(apikey_well_formed(k, strlen(k)));
    CU_ASSERT_TRUE(apikey_well_formed(k2, strlen(k2)));
    CU_ASSERT_FALSE(apikey_well_formed(k, strlen(k) - 1));
    k2[20] = 'A';
    CU_ASSERT_FALSE(apikey_well_formed(k2, strlen(k2)));
    k2[0] = 'x';
    CU_ASSERT_FALSE(apikey_well_formed(k2, strlen(k2)));
    apikey_prefix(p, k);
    CU_ASSERT_EQUAL(strlen(p), 16);
    CU_ASSERT_EQUAL(strncmp(p, k, 16), 0);
}

static void test_apikey_hash(void)
{
    char err[256];
    CU_ASSERT_PTR_NULL(apikey_new(err, sizeof err, NULL, NULL, 0));
    CU_ASSERT_PTR_NULL(apikey_new(err, sizeof err, "short", NULL, 0));
    CU_ASSERT_PTR_NULL(apikey_new(err, sizeof err, "0123456789abcdef 0123456789abcdef", NULL, 0));
    apikey *a = apikey_new(err, sizeof err, secret, NULL, 0);
    apikey *b = apikey_new(err, sizeof err, "fedcba9876543210fedcba9876543210", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char k[APIKEY_LEN + 1];
    apikey_generate(k, APIKEY_LIVE);
    uint8_t h1[APIKEY_HASH_LEN], h2[APIKEY_HASH_LEN], h3[APIKEY_HASH_LEN];
    apikey_hash(a, h1, k, APIKEY_LEN);
    apikey_hash(a, h2, k, APIKEY_LEN);
    apikey_hash(b, h3, k, APIKEY_LEN);
    CU_ASSERT_EQUAL(memcmp(h1, h2, sizeof h1), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(h1, h3, sizeof h1), 0); /* keyed by the server secret */
    /* without a database: malformed is unknown, well-formed is unavailable */
    auth_caller c;
    memset(&c, 0, sizeof c);
    CU_ASSERT_EQUAL(apikey_resolve(a, &c, "nope", 4), AUTH_RESOLVE_UNKNOWN);
    CU_ASSERT_EQUAL(apikey_resolve(a, &c, k, APIKEY_LEN), AUTH_RESOLVE_UNAVAILABLE);
    apikey_cache_forget_client(a, "x");
    apikey_free(a);
    apikey_free(b);
    apikey_free(NULL);
}

static void test_apy(void)
{
    u256 now, then, zero = u256_from_u64(0);
    CU_ASSERT_EQUAL_FATAL(u256_from_dec_str(&then, "1000000000000000000"), 0);
    CU_ASSERT_EQUAL_FATAL(u256_from_dec_str(&now, "1050000000000000000"), 0);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, &then, APY_YEAR_SECONDS), 0.05, 1e-12);
    /* half a year at +5 %: 1.05^2 - 1 */
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, &then, APY_YEAR_SECONDS / 2), 0.1025, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&then, &now, APY_YEAR_SECONDS), 1.0 / 1.05 - 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, &now, APY_WINDOW_7D), 0.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, NULL, APY_WINDOW_7D), 0.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, &zero, APY_WINDOW_7D), 0.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(apy_annualized(&now, &then, 0), 0.0, 0.0);
    /* huge growth over one second stays finite */
    CU_ASSERT_TRUE(isfinite(apy_annualized(&now, &then, 1)));
}

void test_register(void)
{
    static const test_case cases[] = {
        {"format", test_apikey_format},
        {"hash", test_apikey_hash},
        {"apy", test_apy},
        {NULL, NULL},
    };
    test_add_suite("apikey", cases);
}
