#include "jsonrpc.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

/* Parses body expecting id; returns the rc and keeps the message. */
static int parse(jsonrpc_response *r, jsonrpc_err *e, const char *body, uint64_t id)
{
    e->msg[0] = '\0';
    return jsonrpc_response_parse(r, e, body, strlen(body), id);
}

static void test_jsonrpc_request(void)
{
    char *out;
    size_t len;
    jsonrpc_err e;
    CU_ASSERT_EQUAL_FATAL(jsonrpc_request_encode(&out, &len, &e, 7, "eth_chainId", NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"eth_chainId\",\"params\":[]}");
    CU_ASSERT_EQUAL(len, strlen(out));
    free(out);

    json_t *params = json_pack("[s,b]", "latest", 0);
    CU_ASSERT_EQUAL_FATAL(jsonrpc_request_encode(&out, &len, &e, 1, "eth_getBlockByNumber", params), 0);
    CU_ASSERT_STRING_EQUAL(out, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getBlockByNumber\","
                                "\"params\":[\"latest\",false]}");
    CU_ASSERT_EQUAL(json_array_size(params), 2); /* untouched */
    free(out);
    json_decref(params);

    json_t *obj = json_object();
    CU_ASSERT_EQUAL(jsonrpc_request_encode(&out, &len, &e, 1, "m", obj), -1);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "params must be an array"));
    json_decref(obj);
    CU_ASSERT_EQUAL(jsonrpc_request_encode(&out, &len, &e, JSONRPC_ID_MAX + 1, "m", NULL), -1);
    CU_ASSERT_EQUAL(jsonrpc_request_encode(&out, &len, &e, 1, "", NULL), -1);
}

static void test_jsonrpc_response_good(void)
{
    jsonrpc_response r;
    jsonrpc_err e;
    CU_ASSERT_EQUAL_FATAL(parse(&r, &e, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x7a69\"}", 1), 0);
    CU_ASSERT_FALSE(r.is_error);
    CU_ASSERT_STRING_EQUAL(json_string_value(r.result), "0x7a69");
    jsonrpc_response_dispose(&r);
    CU_ASSERT_PTR_NULL(r.root);

    /* null result (receipt not found); extra members ignored; order free */
    CU_ASSERT_EQUAL_FATAL(parse(&r, &e, "{\"result\":null,\"x-extra\":1,\"id\":42,\"jsonrpc\":\"2.0\"}", 42), 0);
    CU_ASSERT_TRUE(json_is_null(r.result));
    jsonrpc_response_dispose(&r);

    /* error answer from anvil */
    CU_ASSERT_EQUAL_FATAL(parse(&r, &e, "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":3,"
                                        "\"message\":\"execution reverted\",\"data\":\"0x\"}}", 10), 0);
    CU_ASSERT_TRUE(r.is_error);
    CU_ASSERT_EQUAL(r.error_code, 3);
    CU_ASSERT_STRING_EQUAL(r.error_message, "execution reverted");
    CU_ASSERT_STRING_EQUAL(json_string_value(r.error_data), "0x");
    jsonrpc_response_dispose(&r);

    CU_ASSERT_EQUAL_FATAL(parse(&r, &e, "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32003,"
                                        "\"message\":\"nonce too low\"}}", 3), 0);
    CU_ASSERT_EQUAL(r.error_code, -32003);
    CU_ASSERT_PTR_NULL(r.error_data);
    jsonrpc_response_dispose(&r);
    jsonrpc_response_dispose(NULL);
}

static void test_jsonrpc_response_bad(void)
{
    static const struct {
        const char *body;
        const char *msg; /* fragment of the expected message */
    } cases[] = {
        {"", "empty response body"},
        {"not json", "not JSON"},
        {"<html>502 Bad Gateway</html>", "not JSON"},
        {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]", "expected an object"},
        {"\"0x1\"", "expected an object"},
        {"{\"id\":1,\"result\":\"0x1\"}", "jsonrpc: expected \"2.0\", got nothing"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":\"0x1\"}", "jsonrpc: expected \"2.0\""},
        {"{\"jsonrpc\":2.0,\"id\":1,\"result\":\"0x1\"}", "jsonrpc: expected \"2.0\", got a number"},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"0x1\"}", "id: expected 1, got 2"},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":\"0x1\"}", "id: expected 1, got \"1\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.0,\"result\":\"0x1\"}", "id: expected 1"},
        {"{\"jsonrpc\":\"2.0\",\"result\":\"0x1\"}", "id: expected 1, got nothing"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}",
         "node error -32700: Parse error"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", "neither result nor error"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{\"code\":1,\"message\":\"x\"}}",
         "both result and error"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}", "error: expected an object"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"3\",\"message\":\"x\"}}", "error.code"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":3.5,\"message\":\"x\"}}", "error.code"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":3}}", "error.message"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":1,\"result\":\"0x1\"}", "duplicate"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\\u0000b\"}", "not JSON"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"} trailing", "not JSON"},
        {"{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999,\"result\":1}", "not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jsonrpc_response r;
        jsonrpc_err e;
        int rc = parse(&r, &e, cases[i].body, 1);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(r.root);
        if (!strstr(e.msg, cases[i].msg)) {
            fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, e.msg, cases[i].msg);
            CU_FAIL("message");
        }
    }
}

static json_t *S(const char *s)
{
    return json_string(s);
}

static void test_jsonrpc_quantity(void)
{
    static const struct {
        const char *text;
        uint64_t value;
    } good[] = {
        {"0x0", 0}, {"0x1", 1}, {"0x7a69", 31337}, {"0xFF", 255}, {"0xffffffffffffffff", UINT64_MAX},
        {"0x00", 0}, {"0x0400", 1024}, /* leading zeros: tolerated (see jsonrpc.h) */
        {"0x0000000000000000000000000000000000000000000000000000000000000001", 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *v = S(good[i].text);
        uint64_t x = 12345;
        jsonrpc_err e;
        CU_ASSERT_EQUAL(jsonrpc_quantity_u64(&x, &e, v, "q"), 0);
        CU_ASSERT_EQUAL(x, good[i].value);
        json_decref(v);
    }
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"0x", "no digits"},
        {"", "no 0x prefix"},
        {"7a69", "no 0x prefix"},
        {"0X1", "no 0x prefix"},
        {"0xzz", "not a hex digit at 2"},
        {"0x-1", "not a hex digit"},
        {" 0x1", "no 0x prefix"},
        {"0x1 ", "not a hex digit at 3"},
        {"0x10000000000000000", "does not fit 64 bits"},
        {"0x00000000000000000000000000000000000000000000000000000000000000001", "more than 64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = S(bad[i].text);
        uint64_t x = 777;
        jsonrpc_err e;
        CU_ASSERT_EQUAL(jsonrpc_quantity_u64(&x, &e, v, "block.number"), -1);
        CU_ASSERT_EQUAL(x, 777);
        CU_ASSERT_EQUAL(strncmp(e.msg, "block.number: ", 14), 0);
        if (!strstr(e.msg, bad[i].msg)) {
            fprintf(stderr, "quantity \"%s\": message \"%s\" lacks \"%s\"\n", bad[i].text, e.msg, bad[i].msg);
            CU_FAIL("message");
        }
        json_decref(v);
    }
    /* wrong JSON types, missing */
    jsonrpc_err e;
    uint64_t x;
    json_t *n = json_integer(5);
    CU_ASSERT_EQUAL(jsonrpc_quantity_u64(&x, &e, n, "q"), -1);
    CU_ASSERT_STRING_EQUAL(e.msg, "q: expected a hex quantity, got a number");
    json_decref(n);
    CU_ASSERT_EQUAL(jsonrpc_quantity_u64(&x, &e, NULL, "q"), -1);
    CU_ASSERT_STRING_EQUAL(e.msg, "q: missing");
    CU_ASSERT_EQUAL(jsonrpc_quantity_u64(&x, NULL, json_null(), "q"), -1); /* err may be NULL */

    /* u256 */
    u256 big, want;
    json_t *v = S("0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
    CU_ASSERT_EQUAL(jsonrpc_quantity_u256(&big, &e, v, "q"), 0);
    want = U256_MAX;
    CU_ASSERT_EQUAL(u256_cmp(&big, &want), 0);
    json_decref(v);
    v = S("0x21e19e0c9bab2400000"); /* 10000 ether, anvil's dev balance */
    CU_ASSERT_EQUAL(jsonrpc_quantity_u256(&big, &e, v, "q"), 0);
    char dec[U256_DEC_MAX];
    u256_to_dec(dec, &big);
    CU_ASSERT_STRING_EQUAL(dec, "10000000000000000000000");
    json_decref(v);
    v = S("0x1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
    CU_ASSERT_EQUAL(jsonrpc_quantity_u256(&big, &e, v, "q"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "65 digits"));
    json_decref(v);
}

static void test_jsonrpc_data(void)
{
    uint8_t buf[32];
    size_t n = 99;
    jsonrpc_err e;
    json_t *v = S("0x");
    CU_ASSERT_EQUAL(jsonrpc_data(buf, sizeof buf, &n, &e, v, "d"), 0);
    CU_ASSERT_EQUAL(n, 0);
    json_decref(v);
    v = S("0x004200");
    CU_ASSERT_EQUAL(jsonrpc_data(buf, sizeof buf, &n, &e, v, "d"), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(buf[1], 0x42);
    CU_ASSERT_EQUAL(jsonrpc_data(buf, 2, &n, &e, v, "d"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "3 bytes of data, at most 2"));
    json_decref(v);
    v = S("0xf0f0f");
    CU_ASSERT_EQUAL(jsonrpc_data(buf, sizeof buf, &n, &e, v, "d"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "odd number"));
    json_decref(v);
    v = S("004200");
    CU_ASSERT_EQUAL(jsonrpc_data(buf, sizeof buf, &n, &e, v, "d"), -1);
    json_decref(v);

    /* fixed: addresses in either case (EIP-55 mixed case is fine) */
    uint8_t addr[20];
    v = S("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    CU_ASSERT_EQUAL(jsonrpc_data_fixed(addr, 20, &e, v, "to"), 0);
    CU_ASSERT_EQUAL(addr[0], 0xf3);
    CU_ASSERT_EQUAL(addr[19], 0x66);
    CU_ASSERT_EQUAL(jsonrpc_data_fixed(addr, 32, &e, v, "hash"), -1);
    CU_ASSERT_STRING_EQUAL(e.msg, "hash: expected 32 bytes of hex data, got 40 digits");
    json_decref(v);
    v = S("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb9226g");
    CU_ASSERT_EQUAL(jsonrpc_data_fixed(addr, 20, &e, v, "to"), -1);
    json_decref(v);

    uint8_t *p;
    v = S("0x0102");
    CU_ASSERT_EQUAL(jsonrpc_data_alloc(&p, &n, 16, &e, v, "d"), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(p[1], 2);
    free(p);
    CU_ASSERT_EQUAL(jsonrpc_data_alloc(&p, &n, 1, &e, v, "d"), -1);
    CU_ASSERT_PTR_NULL(p);
    json_decref(v);
    v = S("0x");
    CU_ASSERT_EQUAL(jsonrpc_data_alloc(&p, &n, 16, &e, v, "d"), 0);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(n, 0);
    json_decref(v);
}

static void test_jsonrpc_format(void)
{
    char buf[JSONRPC_U64_HEX_MAX];
    jsonrpc_format_u64(buf, 0);
    CU_ASSERT_STRING_EQUAL(buf, "0x0");
    jsonrpc_format_u64(buf, UINT64_MAX);
    CU_ASSERT_STRING_EQUAL(buf, "0xffffffffffffffff");
    uint8_t d[3] = {0, 0xab, 1};
    json_t *v = jsonrpc_json_data(d, 3);
    CU_ASSERT_STRING_EQUAL(json_string_value(v), "0x00ab01");
    json_decref(v);
    v = jsonrpc_json_data(NULL, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(v), "0x");
    json_decref(v);
    u256 x = u256_from_u64(1024);
    v = jsonrpc_json_u256(&x);
    CU_ASSERT_STRING_EQUAL(json_string_value(v), "0x400");
    json_decref(v);

    /* describe: quoting, escaping, truncation */
    char d64[64];
    v = S("a\"b\\c\nd");
    CU_ASSERT_STRING_EQUAL(jsonrpc_describe(d64, sizeof d64, v), "\"a\\\"b\\\\c?d\"");
    json_decref(v);
    v = S("0123456789012345678901234567890123456789XYZ");
    CU_ASSERT_STRING_EQUAL(jsonrpc_describe(d64, sizeof d64, v),
                           "\"0123456789012345678901234567890123456789...\"");
    json_decref(v);
    char tiny[4];
    v = S("abcdef");
    jsonrpc_describe(tiny, sizeof tiny, v);
    CU_ASSERT(strlen(tiny) < sizeof tiny);
    json_decref(v);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"request", test_jsonrpc_request},
        {"response_good", test_jsonrpc_response_good},
        {"response_bad", test_jsonrpc_response_bad},
        {"quantity", test_jsonrpc_quantity},
        {"data", test_jsonrpc_data},
        {"format", test_jsonrpc_format},
        {NULL, NULL},
    };
    test_add_suite("jsonrpc", cases);
}
