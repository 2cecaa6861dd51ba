/* gw_text: base64, RFC 3339, durations, names, numbers, Grpc-Timeout. */
#include "gw_errors.h"
#include "gw_text.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_base64(void)
{
    static const struct {
        const char *raw, *b64;
    } v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        gw_buf b;
        gw_buf_init(&b);
        gw_base64_encode(&b, (const uint8_t *)v[i].raw, strlen(v[i].raw));
        CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), v[i].b64);
        gw_buf_dispose(&b);
        uint8_t *out;
        size_t len;
        CU_ASSERT_EQUAL(gw_base64_decode(&out, &len, v[i].b64, strlen(v[i].b64)), 0);
        CU_ASSERT_EQUAL(len, strlen(v[i].raw));
        CU_ASSERT_TRUE(len == 0 || memcmp(out, v[i].raw, len) == 0);
        free(out);
    }
    uint8_t *out;
    size_t len;
    CU_ASSERT_EQUAL(gw_base64_decode(&out, &len, "Zm9vYg", 6), 0); /* unpadded */
    free(out);
    CU_ASSERT_EQUAL(gw_base64_decode(&out, &len, "Z", 1), -1);
    CU_ASSERT_EQUAL(gw_base64_decode(&out, &len, "Zm9v!", 5), -1);
}

static void test_timestamps(void)
{
    static const struct {
        int64_t s;
        int32_t ns;
        const char *text;
    } v[] = {
        {0, 0, "1970-01-01T00:00:00Z"},
        {63108020, 21000000, "1972-01-01T10:00:20.021Z"},
        {-1, 999999999, "1969-12-31T23:59:59.999999999Z"},
        {GW_TS_MIN_SECONDS, 0, "0001-01-01T00:00:00Z"},
        {GW_TS_MAX_SECONDS, 1000, "9999-12-31T23:59:59.000001Z"},
        {951782400, 0, "2000-02-29T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        gw_buf b;
        gw_buf_init(&b);
        CU_ASSERT_EQUAL(gw_timestamp_format(&b, v[i].s, v[i].ns), 0);
        CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), v[i].text);
        gw_buf_dispose(&b);
        int64_t s;
        int32_t ns;
        CU_ASSERT_EQUAL(gw_timestamp_parse(&s, &ns, v[i].text, strlen(v[i].text)), 0);
        CU_ASSERT_EQUAL(s, v[i].s);
        CU_ASSERT_EQUAL(ns, v[i].ns);
    }
    static const char *const bad[] = {"2023-02-29T00:00:00Z", "2024-01-01 00:00:00Z", "2024-01-01T24:00:00Z",
                                      "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567891Z",
                                      "0000-12-31T00:00:00Z", "2024-01-01T00:00:00+5:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t s;
        int32_t ns;
        CU_ASSERT_EQUAL(gw_timestamp_parse(&s, &ns, bad[i], strlen(bad[i])), -1);
    }
    gw_buf b;
    gw_buf_init(&b);
    CU_ASSERT_EQUAL(gw_timestamp_format(&b, GW_TS_MAX_SECONDS + 1, 0), -1);
    gw_buf_dispose(&b);
}

static void test_durations(void)
{
    gw_buf b;
    gw_buf_init(&b);
    CU_ASSERT_EQUAL(gw_duration_format(&b, 1, 500000000), 0);
    CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), "1.500s");
    gw_buf_reset(&b);
    CU_ASSERT_EQUAL(gw_duration_format(&b, 0, -1), 0);
    CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), "-0.000000001s");
    gw_buf_dispose(&b);
    int64_t s;
    int32_t ns;
    CU_ASSERT_EQUAL(gw_duration_parse(&s, &ns, "-1.5s", 5), 0);
    CU_ASSERT_EQUAL(s, -1);
    CU_ASSERT_EQUAL(ns, -500000000);
    CU_ASSERT_EQUAL(gw_duration_parse(&s, &ns, "5m", 2), -1);
    CU_ASSERT_EQUAL(gw_duration_parse(&s, &ns, "s", 1), -1);
}

static void test_names_numbers_timeouts(void)
{
    char out[64];
    CU_ASSERT_TRUE(gw_json_name(out, sizeof out, "client_user_id"));
    CU_ASSERT_STRING_EQUAL(out, "clientUserId");
    CU_ASSERT_TRUE(gw_snake_name(out, sizeof out, "clientUserId"));
    CU_ASSERT_STRING_EQUAL(out, "client_user_id");
    gw_buf b;
    gw_buf_init(&b);
    gw_buf_number(&b, 0.1, false);
    gw_buf_putc(&b, ' ');
    gw_buf_number(&b, 1e21, false);
    gw_buf_putc(&b, ' ');
    gw_buf_number(&b, (float)0.1, true);
    gw_buf_putc(&b, ' ');
    gw_buf_number(&b, NAN, false);
    CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), "0.1 1e+21 0.1 \"NaN\"");
    gw_buf_reset(&b);
    gw_buf_json_string(&b, "a\"\\\n\x01\xff\xe2\x80\xa8", 9);
    CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), "\"a\\\"\\\\\\n\\u0001\\ufffd\\u2028\"");
    gw_buf_dispose(&b);
    int64_t ms;
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "500m"), 0);
    CU_ASSERT_EQUAL(ms, 500);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "2S"), 0);
    CU_ASSERT_EQUAL(ms, 2000);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "1M"), 0);
    CU_ASSERT_EQUAL(ms, 60000);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "1500u"), 0);
    CU_ASSERT_EQUAL(ms, 2);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "123456789S"), -1);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "5"), -1);
    CU_ASSERT_EQUAL(gw_grpc_timeout_parse(&ms, "5x"), -1);
}

static void test_http_status_table(void)
{
    static const struct {
        rpc_code c;
        unsigned http;
    } t[] = {{RPC_OK, 200}, {RPC_CANCELLED, 499}, {RPC_UNKNOWN, 500}, {RPC_INVALID_ARGUMENT, 400},
             {RPC_DEADLINE_EXCEEDED, 504}, {RPC_NOT_FOUND, 404}, {RPC_ALREADY_EXISTS, 409},
             {RPC_PERMISSION_DENIED, 403}, {RPC_RESOURCE_EXHAUSTED, 429}, {RPC_FAILED_PRECONDITION, 400},
             {RPC_ABORTED, 409}, {RPC_OUT_OF_RANGE, 400}, {RPC_UNIMPLEMENTED, 501}, {RPC_INTERNAL, 500},
             {RPC_UNAVAILABLE, 503}, {RPC_DATA_LOSS, 500}, {RPC_UNAUTHENTICATED, 401}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CU_ASSERT_EQUAL(gw_http_status(t[i].c), t[i].http);
    gw_buf b;
    gw_buf_init(&b);
    int64_t retry = -1;
    gw_error_body(&b, &retry, RPC_NOT_FOUND, "no \"x\"", NULL, 0, NULL);
    CU_ASSERT_STRING_EQUAL(gw_buf_cstr(&b), "{\"code\":5,\"message\":\"no \\\"x\\\"\",\"details\":[]}");
    CU_ASSERT_EQUAL(retry, -1);
    gw_buf_dispose(&b);
}

/* A reset buffer keeps its storage but not what it held: answers and
 * bodies carry credentials. */
static void test_buf_wiped(void)
{
    gw_buf b;
    gw_buf_init(&b);
    static const char secret[] = "{\"apiKey\":\"ck_live_00112233445566778899aabbccddeeff\"}";
    gw_buf_puts(&b, secret);
    CU_ASSERT_EQUAL_FATAL(b.len, strlen(secret));
    char *data = b.data;
    size_t cap = b.cap;
    gw_buf_reset(&b);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_EQUAL(b.data, data);
    CU_ASSERT_EQUAL(b.cap, cap);
    for (size_t i = 0; i < strlen(secret); i++)
        CU_ASSERT_EQUAL_FATAL(data[i], 0);
    /* Growing keeps the content. */
    gw_buf_puts(&b, "abc");
    for (int i = 0; i < 200; i++)
        gw_buf_puts(&b, "0123456789");
    CU_ASSERT_FALSE(b.oom);
    CU_ASSERT_EQUAL(b.len, 2003);
    CU_ASSERT_EQUAL(memcmp(b.data, "abc0123456789", 13), 0);
    CU_ASSERT_EQUAL(b.data[b.len], '\0');
    gw_buf_dispose(&b);
    CU_ASSERT_PTR_NULL(b.data);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"base64", test_base64},
        {"RFC 3339 timestamps", test_timestamps},
        {"durations", test_durations},
        {"names, numbers, Grpc-Timeout", test_names_numbers_timeouts},
        {"HTTP status table and Status JSON", test_http_status_table},
        {"buffers wiped on reset", test_buf_wiped},
        {NULL, NULL},
    };
    test_add_suite("gw_text", cases);
}
