/* gw_grpcwire: grpc-timeout, grpc-status, grpc-message, the status of a
 * call that ended without one (HTTP status, RST_STREAM code), -bin keys,
 * unframing a unary response and the 5-byte message prefix. Expected
 * values are those of PROTOCOL-HTTP2.md and http-grpc-status-mapping.md
 * (github.com/grpc/grpc/doc), written out by hand. */
#include "gw_grpcwire.h"
#include "test_support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_timeout(void)
{
    static const struct {
        int64_t ms;
        const char *want;
    } v[] = {
        {1, "1m"},
        {1500, "1500m"},
        {99999999, "99999999m"},          /* the largest in milliseconds */
        {100000000, "100000S"},           /* 9 digits: seconds */
        {100000001, "100001S"},           /* rounded up, never down */
        {100000999, "100001S"},
        {99999999000, "99999999S"},       /* the largest in seconds */
        {99999999001, "1666667M"},        /* minutes, rounded up */
        {5999999940000, "99999999M"},     /* the largest in minutes */
        {5999999940001, "1666667H"},      /* hours, rounded up */
        {359999996400000, "99999999H"},   /* the largest there is */
        {359999996400001, "99999999H"},   /* capped */
        {INT64_MAX, "99999999H"},         /* capped, without overflow on the way */
        {INT64_MAX - 1, "99999999H"},
        {0, "1m"},
        {-1, "1m"},
        {INT64_MIN, "1m"},
    };
    for (size_t i = 0; i < N(v); i++) {
        char out[GW_GRPCWIRE_TIMEOUT_MAX];
        memset(out, 'x', sizeof out);
        size_t len = gw_grpcwire_timeout(out, v[i].ms);
        CU_ASSERT_EQUAL(len, strlen(v[i].want));
        CU_ASSERT_TRUE(len < sizeof out && out[len] == '\0');
        CU_ASSERT_STRING_EQUAL(out, v[i].want);
    }
}

static void test_status(void)
{
    static const struct {
        const char *value;
        int rc;
        rpc_code code;
    } v[] = {
        {"0", 0, RPC_OK},
        {"5", 0, RPC_NOT_FOUND},
        {"9", 0, RPC_FAILED_PRECONDITION},
        {"10", 0, RPC_ABORTED},
        {"14", 0, RPC_UNAVAILABLE},
        {"16", 0, RPC_UNAUTHENTICATED},
        {"17", -1, RPC_OK},  /* not a code */
        {"99", -1, RPC_OK},
        {"00", -1, RPC_OK},  /* leading zero */
        {"01", -1, RPC_OK},
        {"007", -1, RPC_OK}, /* too long */
        {"100", -1, RPC_OK},
        {"-1", -1, RPC_OK},  /* sign */
        {"+1", -1, RPC_OK},
        {"", -1, RPC_OK},    /* empty */
        {"1a", -1, RPC_OK},
        {"a", -1, RPC_OK},
        {" 1", -1, RPC_OK},
        {"1 ", -1, RPC_OK},
    };
    for (size_t i = 0; i < N(v); i++) {
        rpc_code code = (rpc_code)99;
        int rc = gw_grpcwire_status(&code, (const uint8_t *)v[i].value, strlen(v[i].value));
        CU_ASSERT_EQUAL(rc, v[i].rc);
        if (v[i].rc == 0)
            CU_ASSERT_EQUAL(code, v[i].code);
    }
    /* Length-bounded: "16" read as its first byte only is 1. */
    rpc_code code = RPC_OK;
    CU_ASSERT_EQUAL(gw_grpcwire_status(&code, (const uint8_t *)"16", 1), 0);
    CU_ASSERT_EQUAL(code, RPC_CANCELLED);
}

static void test_message(void)
{
    static const struct {
        const char *value; /* len: strlen */
        const char *want;
    } v[] = {
        {"", ""},
        {"plain text", "plain text"},
        {"%20", " "},
        {"not%20found", "not found"},
        {"%E2%82%AC", "\xE2\x82\xAC"}, /* UTF-8 bytes of U+20AC */
        {"%e2%82%ac", "\xE2\x82\xAC"}, /* lowercase hex too */
        {"100%25", "100%"},
        {"%", "%"},                    /* malformed: kept as it is */
        {"%4", "%4"},
        {"%zz", "%zz"},
        {"%4g", "%4g"},
        {"%g4", "%g4"},
        {"a%2", "a%2"},                /* a trailing escape cut short */
        {"a%", "a%"},
        {"%%41", "%A"},                /* the first % is not an escape, the second is */
        {"%41%", "A%"},
        {"x%2%20y", "x%2 y"},
    };
    for (size_t i = 0; i < N(v); i++) {
        char *m = gw_grpcwire_message((const uint8_t *)v[i].value, strlen(v[i].value));
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(m, v[i].want);
        free(m);
    }
    /* Length-bounded: an escape that continues past len is not one. */
    char *m = gw_grpcwire_message((const uint8_t *)"a%20", 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m, "a%2");
    free(m);
    m = gw_grpcwire_message((const uint8_t *)"%41%42", 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m, "A%");
    free(m);
}

static void test_http_code(void)
{
    static const struct {
        unsigned http;
        rpc_code code;
    } v[] = {
        {400, RPC_INTERNAL},
        {401, RPC_UNAUTHENTICATED},
        {403, RPC_PERMISSION_DENIED},
        {404, RPC_UNIMPLEMENTED},
        {429, RPC_UNAVAILABLE},
        {502, RPC_UNAVAILABLE},
        {503, RPC_UNAVAILABLE},
        {504, RPC_UNAVAILABLE},
        /* All other codes: UNKNOWN. */
        {500, RPC_UNKNOWN},
        {200, RPC_UNKNOWN},
        {402, RPC_UNKNOWN},
        {405, RPC_UNKNOWN},
        {501, RPC_UNKNOWN},
        {0, RPC_UNKNOWN},
    };
    for (size_t i = 0; i < N(v); i++)
        CU_ASSERT_EQUAL(gw_grpcwire_http_code(v[i].http), v[i].code);
}

static void test_rst_code(void)
{
    /* PROTOCOL-HTTP2.md, "Errors": HTTP/2 code -> gRPC code. */
    static const struct {
        uint32_t h2;
        rpc_code code;
    } v[] = {
        {0x0, RPC_INTERNAL},           /* NO_ERROR */
        {0x1, RPC_INTERNAL},           /* PROTOCOL_ERROR */
        {0x2, RPC_INTERNAL},           /* INTERNAL_ERROR */
        {0x3, RPC_INTERNAL},           /* FLOW_CONTROL_ERROR */
        {0x4, RPC_INTERNAL},           /* SETTINGS_TIMEOUT */
        {0x5, RPC_INTERNAL},           /* STREAM_CLOSED: no mapping */
        {0x6, RPC_INTERNAL},           /* FRAME_SIZE_ERROR */
        {0x7, RPC_UNAVAILABLE},        /* REFUSED_STREAM */
        {0x8, RPC_CANCELLED},          /* CANCEL */
        {0x9, RPC_INTERNAL},           /* COMPRESSION_ERROR */
        {0xa, RPC_INTERNAL},           /* CONNECT_ERROR */
        {0xb, RPC_RESOURCE_EXHAUSTED}, /* ENHANCE_YOUR_CALM */
        {0xc, RPC_PERMISSION_DENIED},  /* INADEQUATE_SECURITY */
        {0xd, RPC_INTERNAL},           /* HTTP_1_1_REQUIRED */
        {0xff, RPC_INTERNAL},
        {UINT32_MAX, RPC_INTERNAL},
    };
    for (size_t i = 0; i < N(v); i++)
        CU_ASSERT_EQUAL(gw_grpcwire_rst_code(v[i].h2), v[i].code);
}

static void test_key_is_bin(void)
{
    static const struct {
        const char *key;
        bool bin;
    } v[] = {
        {"grpc-status-details-bin", true},
        {"x-bin", true},
        {"a-bin", true},
        {"-bin", false}, /* no name before the suffix */
        {"bin", false},
        {"", false},
        {"x-bin2", false},
        {"x-binary", false},
        {"x_bin", false},
        {"x-Bin", false}, /* HTTP/2 names are lowercase: not the suffix */
        {"grpc-message", false},
    };
    for (size_t i = 0; i < N(v); i++)
        CU_ASSERT_EQUAL(gw_grpcwire_key_is_bin((const uint8_t *)v[i].key, strlen(v[i].key)), v[i].bin);
    /* Length-bounded. */
    CU_ASSERT_TRUE(gw_grpcwire_key_is_bin((const uint8_t *)"x-bin-not", 5));
    CU_ASSERT_FALSE(gw_grpcwire_key_is_bin((const uint8_t *)"x-bin", 4));
}

static void test_unframe(void)
{
    static const struct {
        const char *name;
        uint8_t body[16];
        size_t len;
        int rc;
        const char *err;  /* rc -1: a part of the error */
        size_t msg_len;   /* rc 0 */
    } v[] = {
        {"empty", {0}, 0, -1, "no response message", 0},
        {"3 bytes", {0, 0, 0}, 3, -1, "inside a message prefix (3 bytes)", 0},
        {"4 bytes", {0, 0, 0, 0}, 4, -1, "inside a message prefix (4 bytes)", 0},
        {"compressed", {1, 0, 0, 0, 1, 'x'}, 6, -1, "compressed (flag 1)", 0},
        {"flag 2", {2, 0, 0, 0, 1, 'x'}, 6, -1, "flagged (flag 2)", 0},
        {"flag 0x80", {0x80, 0, 0, 0, 0}, 5, -1, "flag 128", 0},
        {"says more than follows", {0, 0, 0, 0, 3, 'a', 'b'}, 7, -1, "says 3 bytes but 2 follow", 0},
        {"prefix only, says 1", {0, 0, 0, 0, 1}, 5, -1, "says 1 bytes but 0 follow", 0},
        {"says 4 GiB", {0, 0xff, 0xff, 0xff, 0xff, 'a'}, 6, -1, "says 4294967295 bytes but 1 follow", 0},
        {"says less than follows", {0, 0, 0, 0, 1, 'a', 'b'}, 7, -1, "more than one message", 0},
        {"two messages", {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b'}, 12, -1, "more than one message", 0},
        {"zero-length message", {0, 0, 0, 0, 0}, 5, 0, NULL, 0},
        {"one message", {0, 0, 0, 0, 3, 'a', 'b', 'c'}, 8, 0, NULL, 3},
    };
    for (size_t i = 0; i < N(v); i++) {
        const uint8_t *msg = NULL;
        size_t msg_len = 12345;
        char err[200];
        err[0] = '\0';
        int rc = gw_grpcwire_unframe(&msg, &msg_len, v[i].body, v[i].len, err, sizeof err);
        CU_ASSERT_EQUAL(rc, v[i].rc);
        if (rc != v[i].rc)
            fprintf(stderr, "unframe %s: rc %d err %s\n", v[i].name, rc, err);
        if (v[i].rc == 0) {
            CU_ASSERT_PTR_EQUAL(msg, v[i].body + 5);
            CU_ASSERT_EQUAL(msg_len, v[i].msg_len);
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(err, v[i].err));
            if (!strstr(err, v[i].err))
                fprintf(stderr, "unframe %s: err \"%s\", expected a part \"%s\"\n", v[i].name, err, v[i].err);
        }
    }
    /* Lengths use all four bytes, big-endian. */
    size_t n = 0x10203;
    uint8_t *big = calloc(1, 5 + n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    big[2] = 0x01;
    big[3] = 0x02;
    big[4] = 0x03;
    const uint8_t *msg = NULL;
    size_t msg_len = 0;
    char err[200];
    CU_ASSERT_EQUAL(gw_grpcwire_unframe(&msg, &msg_len, big, 5 + n, err, sizeof err), 0);
    CU_ASSERT_PTR_EQUAL(msg, big + 5);
    CU_ASSERT_EQUAL(msg_len, n);
    CU_ASSERT_EQUAL(gw_grpcwire_unframe(&msg, &msg_len, big, 5 + n - 1, err, sizeof err), -1);
    free(big);
    /* A short error buffer is truncated, still a string. */
    char small[8];
    memset(small, 'x', sizeof small);
    CU_ASSERT_EQUAL(gw_grpcwire_unframe(&msg, &msg_len, (const uint8_t *)"", 0, small, sizeof small), -1);
    CU_ASSERT_EQUAL(small[sizeof small - 1], '\0');
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
}

static void test_prefix(void)
{
    static const struct {
        size_t len;
        uint8_t want[5];
    } v[] = {
        {0, {0, 0, 0, 0, 0}},
        {1, {0, 0, 0, 0, 1}},
        {255, {0, 0, 0, 0, 0xff}},
        {256, {0, 0, 0, 1, 0}},
        {0x01020304, {0, 1, 2, 3, 4}},
        {0xffffffffu, {0, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < N(v); i++) {
        uint8_t out[5];
        memset(out, 0xaa, sizeof out);
        gw_grpcwire_prefix(out, v[i].len);
        CU_ASSERT_EQUAL(memcmp(out, v[i].want, 5), 0);
    }
    /* What prefix writes, unframe reads. */
    uint8_t body[5 + 7] = {0};
    memcpy(body + 5, "payload", 7);
    gw_grpcwire_prefix(body, 7);
    const uint8_t *msg = NULL;
    size_t msg_len = 0;
    char err[200];
    CU_ASSERT_EQUAL(gw_grpcwire_unframe(&msg, &msg_len, body, sizeof body, err, sizeof err), 0);
    CU_ASSERT_PTR_EQUAL(msg, body + 5);
    CU_ASSERT_EQUAL(msg_len, 7);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"grpc-timeout", test_timeout},
        {"grpc-status", test_status},
        {"grpc-message", test_message},
        {"HTTP status to gRPC code", test_http_code},
        {"RST_STREAM code to gRPC code", test_rst_code},
        {"-bin keys", test_key_is_bin},
        {"unframe a unary response", test_unframe},
        {"message prefix", test_prefix},
        {NULL, NULL},
    };
    test_add_suite("gw_grpcwire", cases);
}
