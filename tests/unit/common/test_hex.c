#include "hex.h"
#include "test_support.h"

#include <string.h>

static void test_hex_roundtrip(void)
{
    uint8_t in[256], out[256];
    char text[2 * 256 + 3];
    size_t n;
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    hex_encode(text, in, sizeof in);
    CU_ASSERT_EQUAL(strlen(text), 512);
    CU_ASSERT_STRING_EQUAL(text + 0, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                                     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                                     "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
                                     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                                     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                                     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, text, strlen(text)), 0);
    CU_ASSERT_EQUAL(n, 256);
    CU_ASSERT_EQUAL(memcmp(in, out, 256), 0);
    hex_encode_0x(text, in + 250, 6);
    CU_ASSERT_STRING_EQUAL(text, "0xfafbfcfdfeff");
}

static void test_hex_prefix_and_case(void)
{
    uint8_t out[4];
    size_t n;
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "0xDeadBEEF", 10), 0);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(out[0], 0xde);
    CU_ASSERT_EQUAL(out[3], 0xef);
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "0X", 2), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(hex_decode_exact(out, 2, "abcd"), 0);
    CU_ASSERT_EQUAL(out[1], 0xcd);
}

static void test_hex_bad_input(void)
{
    uint8_t out[4];
    size_t n = 99;
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "abc", 3), -1); /* odd */
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "zz", 2), -1);
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "0x0g", 4), -1);
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, " 00", 3), -1);
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "0000000000", 10), -1); /* too long */
    CU_ASSERT_EQUAL(hex_decode(out, sizeof out, &n, "00x0", 4), -1);
    CU_ASSERT_EQUAL(hex_decode_exact(out, 2, "ab"), -1); /* too short */
    CU_ASSERT_EQUAL(hex_decode_exact(out, 1, "abcd"), -1);
    CU_ASSERT_EQUAL(hex_digit_value('G'), -1);
    CU_ASSERT_EQUAL(hex_digit_value('F'), 15);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"roundtrip", test_hex_roundtrip},
        {"prefix_and_case", test_hex_prefix_and_case},
        {"bad_input", test_hex_bad_input},
        {NULL, NULL},
    };
    test_add_suite("hex", cases);
}
