/* ledger_fmt: amounts with precise refusals, order ids, hashes,
 * addresses, page tokens, display and JSON strings. */
#include "ledger_fmt.h"
#include "test_support.h"

#include <sodium.h>
#include <string.h>

static void test_ledger_fmt_amounts(void)
{
    char msg[256];
    u256 v;
    CU_ASSERT_EQUAL(ledger_fmt_parse_amount(&v, msg, sizeof msg, "amount", "1000000"), 0);
    uint64_t x = 0;
    CU_ASSERT_EQUAL(u256_to_u64(&x, &v), 0);
    CU_ASSERT_EQUAL(x, 1000000u);
    static const struct {
        const char *in, *words;
    } bad[] = {
        {"", "is required"},
        {"1.5", "fraction"},
        {"-1", "must be positive"},
        {"0", "greater than zero"},
        {"007", "leading zeros"},
        {"1e6", "digits only"},
        {" 5", "no sign, no spaces"},
        {"+5", "no sign, no spaces"},
        {"115792089237316195423570985008687907853269984665640564039457584007913129639936", "out of range"},
        {"1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
         "characters long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        CU_ASSERT_EQUAL(ledger_fmt_parse_amount(&v, msg, sizeof msg, "amount", bad[i].in), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, bad[i].words));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "amount"));
    }
    CU_ASSERT_EQUAL(ledger_fmt_parse_amount(&v, msg, sizeof msg, "amount", NULL), -1);
    /* 2^256 - 1 is the largest */
    CU_ASSERT_EQUAL(ledger_fmt_parse_amount(&v, msg, sizeof msg, "amount",
                    "115792089237316195423570985008687907853269984665640564039457584007913129639935"), 0);
}

static void test_ledger_fmt_ids(void)
{
    char id[LEDGER_ORDER_ID_MAX], id2[LEDGER_ORDER_ID_MAX];
    ledger_fmt_order_id(id, "dep_");
    ledger_fmt_order_id(id2, "dep_");
    CU_ASSERT_EQUAL(strlen(id), 24u);
    CU_ASSERT_STRING_NOT_EQUAL(id, id2);
    CU_ASSERT_TRUE(ledger_fmt_is_order_id(id, "dep_"));
    CU_ASSERT_FALSE(ledger_fmt_is_order_id(id, "wth_"));
    CU_ASSERT_EQUAL(strspn(id + 4, "abcdefghijklmnopqrstuvwxyz234567"), 20u);
    CU_ASSERT_FALSE(ledger_fmt_is_order_id("dep_short", "dep_"));
    CU_ASSERT_FALSE(ledger_fmt_is_order_id("dep_ABCDEFGHIJKL", "dep_"));
    CU_ASSERT_TRUE(ledger_fmt_is_tx_hash("0x0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789"));
    CU_ASSERT_FALSE(ledger_fmt_is_tx_hash("0x0123"));
    CU_ASSERT_FALSE(ledger_fmt_is_tx_hash("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    CU_ASSERT_TRUE(ledger_fmt_is_address("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"));
    CU_ASSERT_FALSE(ledger_fmt_is_address("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb4g"));
    CU_ASSERT_TRUE(ledger_fmt_is_uuid("0b4f9c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"));
    CU_ASSERT_FALSE(ledger_fmt_is_uuid("0B4F9C1E-2A3D-4E5F-8A9B-0C1D2E3F4A5B"));
    CU_ASSERT_FALSE(ledger_fmt_is_uuid("0b4f9c1e2a3d4e5f8a9b0c1d2e3f4a5b"));
}

static void test_ledger_fmt_page_tokens(void)
{
    char tok[LEDGER_PAGE_TOKEN_MAX], id[LEDGER_PAGE_ID_MAX];
    int64_t us = 0;
    CU_ASSERT_EQUAL(ledger_fmt_page_token_encode(tok, sizeof tok, 1763740800123456, "0b4f9c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"), 0);
    CU_ASSERT_EQUAL(ledger_fmt_page_token_decode(&us, id, sizeof id, tok), 0);
    CU_ASSERT_EQUAL(us, 1763740800123456);
    CU_ASSERT_STRING_EQUAL(id, "0b4f9c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b");
    CU_ASSERT_EQUAL(ledger_fmt_page_token_encode(tok, sizeof tok, 0, "12345"), 0);
    CU_ASSERT_EQUAL(ledger_fmt_page_token_decode(&us, id, sizeof id, tok), 0);
    CU_ASSERT_STRING_EQUAL(id, "12345");
    static const char *const bad[] = {"", "nope", "djF8MXx4", "!!!!", "djJ8MXxhYmM"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(ledger_fmt_page_token_decode(&us, id, sizeof id, bad[i]), -1);
    unsigned n = 0;
    char msg[128];
    CU_ASSERT_EQUAL(ledger_fmt_page_size(&n, msg, sizeof msg, 0, 50, 500), 0);
    CU_ASSERT_EQUAL(n, 50u);
    CU_ASSERT_EQUAL(ledger_fmt_page_size(&n, msg, sizeof msg, 500, 50, 500), 0);
    CU_ASSERT_EQUAL(ledger_fmt_page_size(&n, msg, sizeof msg, 501, 50, 500), -1);

    /* A List request's paging, parsed once. */
    ledger_page page;
    CU_ASSERT_EQUAL(ledger_fmt_page_parse(&page, msg, sizeof msg, 0, ""), 0);
    CU_ASSERT_EQUAL(page.page_size, LEDGER_PAGE_SIZE_DEFAULT);
    CU_ASSERT_FALSE(page.after);
    CU_ASSERT_EQUAL(ledger_fmt_page_token_encode(tok, sizeof tok, 1763740800123456,
                                                 "0b4f9c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"), 0);
    CU_ASSERT_EQUAL(ledger_fmt_page_parse(&page, msg, sizeof msg, 7, tok), 0);
    CU_ASSERT_EQUAL(page.page_size, 7u);
    CU_ASSERT_TRUE(page.after);
    CU_ASSERT_STRING_EQUAL(page.after_us, "1763740800123456");
    CU_ASSERT_STRING_EQUAL(page.after_id, "0b4f9c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b");
    CU_ASSERT_EQUAL(ledger_fmt_page_parse(&page, msg, sizeof msg, LEDGER_PAGE_SIZE_MAX + 1, ""), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "page_size"));
    /* A token whose id is not a uuid (audit-log style) is not a deposit/withdrawal page. */
    CU_ASSERT_EQUAL(ledger_fmt_page_token_encode(tok, sizeof tok, 5, "12345"), 0);
    CU_ASSERT_EQUAL(ledger_fmt_page_parse(&page, msg, sizeof msg, 0, tok), -1);
    CU_ASSERT_STRING_EQUAL(msg, "page_token is not one this server gave out");
    CU_ASSERT_EQUAL(ledger_fmt_page_parse(&page, msg, sizeof msg, 0, "garbage"), -1);
}

static void test_ledger_fmt_display_json(void)
{
    char out[LEDGER_AMOUNT_DISPLAY_MAX];
    u256 v = u256_from_u64(1047619047);
    ledger_fmt_display(out, &v, 6);
    CU_ASSERT_STRING_EQUAL(out, "1047.619047");
    v = u256_from_u64(5);
    ledger_fmt_display(out, &v, 6);
    CU_ASSERT_STRING_EQUAL(out, "0.000005");
    ledger_fmt_display(out, &v, 0);
    CU_ASSERT_STRING_EQUAL(out, "5");
    char js[64];
    CU_ASSERT_EQUAL(ledger_fmt_json_string(js, sizeof js, "a\"b\\c\n\x01 \xc3\xa9"), 0);
    CU_ASSERT_STRING_EQUAL(js, "\"a\\\"b\\\\c\\u000a\\u0001 \xc3\xa9\"");
    CU_ASSERT_EQUAL(ledger_fmt_json_string(js, 4, "abcdef"), -1);
}

void test_register(void)
{
    if (sodium_init() < 0)
        return;
    static const test_case cases[] = {
        {"amounts", test_ledger_fmt_amounts},
        {"ids", test_ledger_fmt_ids},
        {"page_tokens", test_ledger_fmt_page_tokens},
        {"display_json", test_ledger_fmt_display_json},
        {NULL, NULL},
    };
    test_add_suite("ledger_fmt", cases);
}
