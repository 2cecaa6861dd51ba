#include "abi.h"

#include "eth_vectors.h"
#include "hex.h"
#include "keccak.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 16

static const struct {
    const char *name;
    abi_err err;
} abi_err_names[] = {
    {"ABI_ERR_SHORT_INPUT", ABI_ERR_SHORT_INPUT},
    {"ABI_ERR_TRAILING_BYTES", ABI_ERR_TRAILING_BYTES},
    {"ABI_ERR_DIRTY_ADDRESS", ABI_ERR_DIRTY_ADDRESS},
    {"ABI_ERR_BAD_BOOL", ABI_ERR_BAD_BOOL},
    {"ABI_ERR_UINT_RANGE", ABI_ERR_UINT_RANGE},
    {"ABI_ERR_DIRTY_PADDING", ABI_ERR_DIRTY_PADDING},
    {"ABI_ERR_OFFSET_RANGE", ABI_ERR_OFFSET_RANGE},
    {"ABI_ERR_LENGTH_RANGE", ABI_ERR_LENGTH_RANGE},
    {"ABI_ERR_PADDING_MISSING", ABI_ERR_PADDING_MISSING},
    {"ABI_ERR_NONCANONICAL_OFFSET", ABI_ERR_NONCANONICAL_OFFSET},
    {"ABI_ERR_SELECTOR_MISMATCH", ABI_ERR_SELECTOR_MISMATCH},
    {"ABI_ERR_NO_SELECTOR", ABI_ERR_NO_SELECTOR},
};

static int err_by_name(abi_err *out, const char *name)
{
    for (size_t i = 0; i < sizeof abi_err_names / sizeof abi_err_names[0]; i++) {
        if (strcmp(abi_err_names[i].name, name) == 0) {
            *out = abi_err_names[i].err;
            return 0;
        }
    }
    return -1;
}

/* Parses a decimal or 0x-hex unsigned integer into 32 bytes big-endian. */
static int parse_u256(uint8_t out[32], const char *text)
{
    memset(out, 0, 32);
    if (text[0] == '0' && text[1] == 'x') {
        size_t n = strlen(text + 2);
        char padded[65];
        if (n == 0 || n > 64)
            return -1;
        memset(padded, '0', 64);
        memcpy(padded + 64 - n, text + 2, n);
        padded[64] = '\0';
        return hex_decode_exact(out, 32, padded);
    }
    if (!*text)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned carry = (unsigned)(*p - '0');
        for (int i = 31; i >= 0; i--) {
            unsigned v = out[i] * 10u + carry;
            out[i] = (uint8_t)v;
            carry = v >> 8;
        }
        if (carry)
            return -1;
    }
    return 0;
}

/* Values built from vector text; owns the byte buffers of dynamic ones. */
typedef struct {
    abi_value v[MAX_ARGS];
    uint8_t *owned[MAX_ARGS];
    size_t n;
} arg_list;

static void arg_list_dispose(arg_list *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->owned[i]);
    memset(a, 0, sizeof *a);
}

/* Builds a->v from types ("a,b,c") and argument texts. */
static int arg_list_build(arg_list *a, const char *types, char *const *texts, size_t ntexts)
{
    char buf[512];
    char *save = NULL;
    memset(a, 0, sizeof *a);
    if (strlen(types) >= sizeof buf)
        return -1;
    strcpy(buf, types);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (a->n == MAX_ARGS || a->n == ntexts)
            return -1;
        const char *text = texts[a->n];
        abi_value *v = &a->v[a->n];
        uint8_t word[32];
        size_t len = 0;
        uint8_t *bytes = vec_hex(text, &len);
        a->owned[a->n] = bytes;
        a->n++;
        if (strncmp(t, "uint", 4) == 0) {
            if (parse_u256(word, text) != 0)
                return -1;
            *v = abi_arg_uint256(word);
        } else if (strcmp(t, "address") == 0) {
            if (!bytes || len != 20)
                return -1;
            *v = abi_arg_address(bytes);
        } else if (strcmp(t, "bool") == 0) {
            if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
                return -1;
            *v = abi_arg_bool(strcmp(text, "true") == 0);
        } else if (strcmp(t, "bytes") == 0 || strcmp(t, "string") == 0) {
            if (!bytes)
                return -1;
            *v = t[0] == 'b' ? abi_arg_bytes(bytes, len)
                             : abi_arg_string_n((const char *)bytes, len);
        } else if (strncmp(t, "bytes", 5) == 0) {
            if (!bytes || len != (size_t)atoi(t + 5))
                return -1;
            *v = abi_arg_fixed_bytes(bytes, len);
        } else {
            return -1;
        }
    }
    return a->n == ntexts ? 0 : -1;
}

static bool value_equal(const abi_value *x, const abi_value *y)
{
    if (x->kind != y->kind || x->len != y->len)
        return false;
    if (x->kind == ABI_KIND_BYTES || x->kind == ABI_KIND_STRING)
        return x->len == 0 || memcmp(x->ptr, y->ptr, x->len) == 0;
    return memcmp(x->word, y->word, 32) == 0;
}

/* Types between the parentheses of a signature, in buf. */
static const char *sig_types(char *buf, size_t cap, const char *sig)
{
    const char *open = strchr(sig, '(');
    size_t n = strlen(open + 1) - 1;
    if (n >= cap)
        return "";
    memcpy(buf, open + 1, n);
    buf[n] = '\0';
    return buf;
}

/* call <sig> <hex> <args...> */
static void check_call(vec_file *v)
{
    char tbuf[512];
    arg_list args;
    abi_value dec[MAX_ARGS];
    size_t want_len, len = 0;
    const char *sig = v->field[1];
    uint8_t *want = vec_hex(v->field[2], &want_len);
    CU_ASSERT_FATAL(want != NULL);
    const char *types = sig_types(tbuf, sizeof tbuf, sig);
    VEC_CHECK(v, arg_list_build(&args, types, v->field + 3, v->nfield - 3) == 0);

    /* size query, too small, exact */
    VEC_CHECK(v, abi_encode_call(NULL, 0, &len, sig, args.v, args.n) == ABI_ERR_BUFFER_TOO_SMALL);
    VEC_CHECK(v, len == want_len);
    uint8_t *out = malloc(want_len);
    CU_ASSERT_FATAL(out != NULL);
    VEC_CHECK(v, abi_encode_call(out, want_len - 1, &len, sig, args.v, args.n) ==
                     ABI_ERR_BUFFER_TOO_SMALL);
    VEC_CHECK(v, abi_encode_call(out, want_len, &len, sig, args.v, args.n) == ABI_OK);
    VEC_CHECK(v, len == want_len && memcmp(out, want, want_len) == 0);

    uint8_t sel[4];
    abi_selector(sel, sig);
    VEC_CHECK(v, memcmp(sel, want, 4) == 0);

    /* decoding gives the arguments back, strictly and leniently */
    for (unsigned flags = 0; flags <= ABI_DECODE_STRICT; flags++) {
        VEC_CHECK(v, abi_decode_call(dec, args.n, sig, want, want_len, flags) == ABI_OK);
        for (size_t i = 0; i < args.n; i++)
            VEC_CHECK(v, value_equal(&dec[i], &args.v[i]));
    }
    /* with the selector stripped it is a plain parameter tuple */
    VEC_CHECK(v, abi_encode_params(out, want_len, &len, types, args.v, args.n) == ABI_OK);
    VEC_CHECK(v, len == want_len - 4 && memcmp(out, want + 4, len) == 0);
    free(out);
    free(want);
    arg_list_dispose(&args);
}

/* params <types|-> <hex|-> <args...> */
static void check_params(vec_file *v)
{
    arg_list args;
    abi_value dec[MAX_ARGS];
    size_t want_len, len = 0;
    const char *types = strcmp(v->field[1], "-") == 0 ? "" : v->field[1];
    uint8_t *want = vec_hex(v->field[2], &want_len);
    uint8_t out[1024];
    CU_ASSERT_FATAL(want != NULL);
    VEC_CHECK(v, arg_list_build(&args, types, v->field + 3, v->nfield - 3) == 0);
    VEC_CHECK(v, abi_encode_params(out, sizeof out, &len, types, args.v, args.n) == ABI_OK);
    VEC_CHECK(v, len == want_len && memcmp(out, want, want_len) == 0);
    for (unsigned flags = 0; flags <= ABI_DECODE_STRICT; flags++) {
        VEC_CHECK(v, abi_decode_params(dec, args.n, types, want, want_len, flags) == ABI_OK);
        for (size_t i = 0; i < args.n; i++)
            VEC_CHECK(v, value_equal(&dec[i], &args.v[i]));
    }
    free(want);
    arg_list_dispose(&args);
}

/* bad <types> <hex|-> <error> <strict|lenient> */
static void check_bad(vec_file *v)
{
    abi_value dec[MAX_ARGS];
    abi_err want_err = ABI_OK;
    size_t len, n = 1;
    uint8_t *in = vec_hex(v->field[2], &len);
    bool strict = strcmp(v->field[4], "strict") == 0;
    CU_ASSERT_FATAL(in != NULL);
    CU_ASSERT_FATAL(err_by_name(&want_err, v->field[3]) == 0);
    for (const char *p = v->field[1]; *p; p++)
        n += *p == ',';
    VEC_CHECK(v, abi_decode_params(dec, n, v->field[1], in, len, ABI_DECODE_STRICT) == want_err);
    if (!strict) {
        VEC_CHECK(v, abi_decode_params(dec, n, v->field[1], in, len, 0) == want_err);
    } else if (want_err == ABI_ERR_NONCANONICAL_OFFSET || want_err == ABI_ERR_TRAILING_BYTES) {
        /* only the layout is wrong: the lenient decoder accepts it */
        VEC_CHECK(v, abi_decode_params(dec, n, v->field[1], in, len, 0) == ABI_OK);
    }
    free(in);
}

/* revert <hex> <msg-hex> */
static void check_revert(vec_file *v)
{
    size_t len, msg_len, got_len = 0, enc_len = 0;
    uint8_t *in = vec_hex(v->field[1], &len);
    uint8_t *msg = vec_hex(v->field[2], &msg_len);
    const uint8_t *got = NULL;
    uint8_t enc[512];
    CU_ASSERT_FATAL(in != NULL && msg != NULL);
    VEC_CHECK(v, abi_decode_revert(&got, &got_len, in, len) == ABI_OK);
    VEC_CHECK(v, got_len == msg_len && (msg_len == 0 || memcmp(got, msg, msg_len) == 0));
    abi_value s = abi_arg_string_n((const char *)msg, msg_len);
    VEC_CHECK(v, abi_encode_call(enc, sizeof enc, &enc_len, "Error(string)", &s, 1) == ABI_OK);
    VEC_CHECK(v, enc_len == len && memcmp(enc, in, len) == 0);
    /* cut by one byte, extended by one byte: refused */
    VEC_CHECK(v, abi_decode_revert(&got, &got_len, in, len - 1) != ABI_OK);
    uint8_t *longer = malloc(len + 1);
    CU_ASSERT_FATAL(longer != NULL);
    memcpy(longer, in, len);
    longer[len] = 0;
    VEC_CHECK(v, abi_decode_revert(&got, &got_len, longer, len + 1) == ABI_ERR_TRAILING_BYTES);
    free(longer);
    free(in);
    free(msg);
}

static void check_badrevert(vec_file *v)
{
    size_t len, got_len = 0;
    const uint8_t *got = NULL;
    abi_err want_err = ABI_OK;
    uint8_t *in = vec_hex(v->field[1], &len);
    CU_ASSERT_FATAL(in != NULL);
    CU_ASSERT_FATAL(err_by_name(&want_err, v->field[2]) == 0);
    VEC_CHECK(v, abi_decode_revert(&got, &got_len, in, len) == want_err);
    free(in);
}

/* log <t0> <t1> <t2> <data> <from> <to> <value> */
static void check_log(vec_file *v)
{
    uint8_t topics[4 * 32];
    uint8_t data[33];
    uint8_t from[20], to[20], value[32];
    abi_transfer_log log;
    CU_ASSERT_FATAL(v->nfield == 8);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FATAL(hex_decode_exact(topics + 32 * i, 32, v->field[1 + i]) == 0);
    CU_ASSERT_FATAL(hex_decode_exact(data, 32, v->field[4]) == 0);
    CU_ASSERT_FATAL(hex_decode_exact(from, 20, v->field[5]) == 0);
    CU_ASSERT_FATAL(hex_decode_exact(to, 20, v->field[6]) == 0);
    CU_ASSERT_FATAL(hex_decode_exact(value, 32, v->field[7]) == 0);

    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 32) == ABI_OK);
    VEC_CHECK(v, memcmp(log.from, from, 20) == 0);
    VEC_CHECK(v, memcmp(log.to, to, 20) == 0);
    VEC_CHECK(v, memcmp(log.value, value, 32) == 0);

    /* an ERC-721 Transfer has the same topic 0 and 4 topics */
    memcpy(topics + 96, data, 32);
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 4, NULL, 0) == ABI_ERR_TOPIC_COUNT);
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 2, data, 32) == ABI_ERR_TOPIC_COUNT);
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 31) == ABI_ERR_SHORT_INPUT);
    data[32] = 0;
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 33) == ABI_ERR_TRAILING_BYTES);
    topics[32 + 11] ^= 1;
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 32) == ABI_ERR_DIRTY_ADDRESS);
    topics[32 + 11] ^= 1;
    topics[64] ^= 0x80;
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 32) == ABI_ERR_DIRTY_ADDRESS);
    topics[64] ^= 0x80;
    topics[0] ^= 1; /* Approval or anything else */
    VEC_CHECK(v, abi_decode_transfer_log(&log, topics, 3, data, 32) == ABI_ERR_SELECTOR_MISMATCH);
}

/* tests/vectors/abi.txt: cast calldata / abi-encode, revert payloads,
 * Transfer logs, hand-written bad encodings. */
static void test_abi_vectors(void)
{
    vec_file v;
    size_t counts[6] = {0};
    if (vec_open(&v, "abi.txt") != 0)
        return;
    while (vec_next(&v)) {
        if (strcmp(v.field[0], "call") == 0) {
            check_call(&v);
            counts[0]++;
        } else if (strcmp(v.field[0], "params") == 0) {
            check_params(&v);
            counts[1]++;
        } else if (strcmp(v.field[0], "bad") == 0) {
            CU_ASSERT_FATAL(v.nfield == 5);
            check_bad(&v);
            counts[2]++;
        } else if (strcmp(v.field[0], "revert") == 0) {
            check_revert(&v);
            counts[3]++;
        } else if (strcmp(v.field[0], "badrevert") == 0) {
            check_badrevert(&v);
            counts[3]++;
        } else if (strcmp(v.field[0], "log") == 0) {
            check_log(&v);
            counts[4]++;
        } else {
            VEC_CHECK(&v, !"unknown vector kind");
        }
    }
    vec_close(&v);
    CU_ASSERT(counts[0] >= 25);
    CU_ASSERT(counts[1] >= 15);
    CU_ASSERT(counts[2] >= 35);
    CU_ASSERT(counts[3] >= 7);
    CU_ASSERT(counts[4] >= 3);
}

static void check_selector(const char *sig, uint32_t want)
{
    uint8_t s[4];
    abi_selector(s, sig);
    uint32_t got = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3];
    if (got != want)
        fprintf(stderr, "\n  selector %s: got %08x want %08x\n", sig, got, want);
    CU_ASSERT_EQUAL(got, want);
}

/* Selectors as published in the contracts' ABIs (written down by hand). */
static void test_abi_selectors(void)
{
    check_selector("transfer(address,uint256)", 0xa9059cbb);
    check_selector("approve(address,uint256)", 0x095ea7b3);
    check_selector("transferFrom(address,address,uint256)", 0x23b872dd);
    check_selector("balanceOf(address)", 0x70a08231);
    check_selector("allowance(address,address)", 0xdd62ed3e);
    check_selector("supply(address,uint256,address,uint16)", 0x617ba037);
    check_selector("withdraw(address,uint256,address)", 0x69328dec);
    check_selector("supply(address,uint256)", 0xf2b9fdb8);
    check_selector("withdraw(address,uint256)", 0xf3fef3a3);
    check_selector("deposit(uint256,address)", 0x6e553f65);
    check_selector("withdraw(uint256,address,address)", 0xb460af94);
    check_selector("redeem(uint256,address,address)", 0xba087652);
    check_selector("convertToAssets(uint256)", 0x07a2d13a);
    check_selector("totalAssets()", 0x01e1d114);
    check_selector("Error(string)", 0x08c379a0);
    check_selector("Panic(uint256)", 0x4e487b71);

    uint8_t topic[32];
    char h[65];
    abi_event_topic(topic, "Transfer(address,address,uint256)");
    hex_encode(h, topic, 32);
    CU_ASSERT_STRING_EQUAL(h, "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
    abi_event_topic(topic, "Approval(address,address,uint256)");
    hex_encode(h, topic, 32);
    CU_ASSERT_STRING_EQUAL(h, "8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925");
}

static void test_abi_signature_errors(void)
{
    static const struct {
        const char *sig;
        abi_err err;
    } cases[] = {
        {"transfer(address, uint256)", ABI_ERR_BAD_SIGNATURE},
        {"transfer(address,uint)", ABI_ERR_BAD_SIGNATURE},
        {"transfer (address,uint256)", ABI_ERR_BAD_SIGNATURE},
        {"transfer(address to,uint256)", ABI_ERR_BAD_SIGNATURE},
        {"f(uint7)", ABI_ERR_BAD_SIGNATURE},
        {"f(uint0)", ABI_ERR_BAD_SIGNATURE},
        {"f(uint08)", ABI_ERR_BAD_SIGNATURE},
        {"f(uint264)", ABI_ERR_BAD_SIGNATURE},
        {"f(uint2560)", ABI_ERR_BAD_SIGNATURE},
        {"f(bytes0)", ABI_ERR_BAD_SIGNATURE},
        {"f(bytes33)", ABI_ERR_BAD_SIGNATURE},
        {"f(byte)", ABI_ERR_BAD_SIGNATURE},
        {"f(,)", ABI_ERR_BAD_SIGNATURE},
        {"f(address,)", ABI_ERR_BAD_SIGNATURE},
        {"f(,address)", ABI_ERR_BAD_SIGNATURE},
        {"f(address))", ABI_ERR_BAD_SIGNATURE},
        {"f(address", ABI_ERR_BAD_SIGNATURE},
        {"(address)", ABI_ERR_BAD_SIGNATURE},
        {"1f(address)", ABI_ERR_BAD_SIGNATURE},
        {"f", ABI_ERR_BAD_SIGNATURE},
        {"", ABI_ERR_BAD_SIGNATURE},
        {"f(int256)", ABI_ERR_UNSUPPORTED_TYPE},
        {"f(uint256[])", ABI_ERR_UNSUPPORTED_TYPE},
        {"f(address[2])", ABI_ERR_UNSUPPORTED_TYPE},
        {"f((uint256,bool))", ABI_ERR_UNSUPPORTED_TYPE},
        {"f(function)", ABI_ERR_UNSUPPORTED_TYPE},
        {"f(fixed128x18)", ABI_ERR_UNSUPPORTED_TYPE},
    };
    uint8_t out[64];
    size_t len = 99;
    abi_value arg = abi_arg_uint64(1);
    abi_value dec;
    static const uint8_t word[36] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        abi_err e = abi_encode_call(out, sizeof out, &len, cases[i].sig, &arg, 1);
        if (e != cases[i].err)
            fprintf(stderr, "\n  %s: %s\n", cases[i].sig, abi_strerror(e));
        CU_ASSERT_EQUAL(e, cases[i].err);
        CU_ASSERT_EQUAL(len, 0);
        CU_ASSERT_EQUAL(abi_decode_call(&dec, 1, cases[i].sig, word, sizeof word, 0), cases[i].err);
    }
    CU_ASSERT_EQUAL(abi_encode_params(out, sizeof out, &len, "uint256 ", &arg, 1), ABI_ERR_BAD_SIGNATURE);
    CU_ASSERT_EQUAL(abi_decode_params(&dec, 1, "bytes32,", word, 32, 0), ABI_ERR_BAD_SIGNATURE);
    /* "$" and "_" are identifier characters */
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "_$f9(uint256)", &arg, 1), ABI_OK);
}

static void test_abi_value_checks(void)
{
    uint8_t out[256];
    size_t len = 0;
    uint8_t addr[20];
    memset(addr, 0x11, sizeof addr);
    abi_value v[2];

    /* argument count and kinds */
    v[0] = abi_arg_address(addr);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "balanceOf(address)", v, 0), ABI_ERR_ARG_COUNT);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "balanceOf(address)", v, 2), ABI_ERR_ARG_COUNT);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "balanceOf(address)", NULL, 1), ABI_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint256)", v, 1), ABI_ERR_ARG_TYPE);
    v[0] = abi_arg_uint64(1);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(address)", v, 1), ABI_ERR_ARG_TYPE);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bool)", v, 1), ABI_ERR_ARG_TYPE);
    v[0] = abi_arg_string("x");
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes)", v, 1), ABI_ERR_ARG_TYPE);
    v[0] = abi_arg_bytes(NULL, 1);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes)", v, 1), ABI_ERR_INVALID_ARG);
    v[0] = abi_arg_bytes(NULL, 0);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes)", v, 1), ABI_OK);
    CU_ASSERT_EQUAL(len, 4 + 64);

    /* uint widths */
    v[0] = abi_arg_uint64(65535);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint16)", v, 1), ABI_OK);
    v[0] = abi_arg_uint64(65536);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint16)", v, 1), ABI_ERR_UINT_RANGE);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint24)", v, 1), ABI_OK);
    v[0] = abi_arg_uint64(256);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint8)", v, 1), ABI_ERR_UINT_RANGE);
    v[0] = abi_arg_uint64(UINT64_MAX);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint64)", v, 1), ABI_OK);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(uint56)", v, 1), ABI_ERR_UINT_RANGE);

    /* bytesN sizes and padding */
    v[0] = abi_arg_fixed_bytes(addr, 4);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes4)", v, 1), ABI_OK);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes32)", v, 1), ABI_ERR_ARG_TYPE);
    v[0] = abi_arg_fixed_bytes(addr, 33);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes32)", v, 1), ABI_ERR_ARG_TYPE);
    v[0] = abi_arg_fixed_bytes(addr, 4);
    v[0].word[4] = 1;
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes4)", v, 1), ABI_ERR_DIRTY_PADDING);

    /* hand-made values that the constructors would never produce */
    v[0] = abi_arg_bool(true);
    v[0].word[31] = 2;
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bool)", v, 1), ABI_ERR_BAD_BOOL);
    v[0] = abi_arg_address(addr);
    v[0].word[0] = 1;
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(address)", v, 1), ABI_ERR_DIRTY_ADDRESS);

    /* sizes that cannot be encoded */
    v[0] = abi_arg_bytes(addr, SIZE_MAX);
    CU_ASSERT_EQUAL(abi_encode_call(out, sizeof out, &len, "f(bytes)", v, 1), ABI_ERR_TOO_LARGE);
    v[0] = abi_arg_bytes(addr, ABI_MAX_ENCODED_LEN - 40);
    v[1] = abi_arg_bytes(addr, 0);
    CU_ASSERT_EQUAL(abi_encode_params(out, sizeof out, &len, "bytes,bytes", v, 2), ABI_ERR_TOO_LARGE);
    CU_ASSERT_EQUAL(len, 0);
}

static void test_abi_decode_api(void)
{
    uint8_t cd[4 + 64];
    size_t len = 0;
    uint8_t spender[20];
    abi_value args[2], dec[2];
    uint64_t x = 0;
    memset(spender, 0x87, sizeof spender);

    /* the signer's view of an approve() it is asked to sign */
    args[0] = abi_arg_address(spender);
    args[1] = abi_arg_uint64(1000000);
    CU_ASSERT_EQUAL_FATAL(abi_encode_call(cd, sizeof cd, &len, "approve(address,uint256)", args, 2), ABI_OK);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "approve(address,uint256)", cd, len, ABI_DECODE_STRICT), ABI_OK);
    CU_ASSERT_EQUAL(memcmp(dec[0].word + 12, spender, 20), 0);
    CU_ASSERT_EQUAL(abi_value_to_uint64(&x, &dec[1]), ABI_OK);
    CU_ASSERT_EQUAL(x, 1000000);
    CU_ASSERT_EQUAL(abi_value_to_uint64(&x, &dec[0]), ABI_ERR_ARG_TYPE);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "transfer(address,uint256)", cd, len, 0), ABI_ERR_SELECTOR_MISMATCH);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 1, "approve(address,uint256)", cd, len, 0), ABI_ERR_ARG_COUNT);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "approve(address,uint256)", cd, 3, 0), ABI_ERR_NO_SELECTOR);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "approve(address,uint256)", cd, len - 1, 0), ABI_ERR_SHORT_INPUT);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "approve(address,uint256)", cd, len, 2), ABI_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(abi_decode_call(dec, 2, "approve(address,uint256)", NULL, 8, 0), ABI_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(abi_decode_params(NULL, 1, "uint256", cd, 32, 0), ABI_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(abi_decode_params(NULL, 0, "", NULL, 0, ABI_DECODE_STRICT), ABI_OK);
    CU_ASSERT_EQUAL(abi_decode_params(NULL, 0, "", cd, 1, ABI_DECODE_STRICT), ABI_ERR_TRAILING_BYTES);

    /* uint64 conversion */
    uint8_t w[32];
    memset(w, 0, sizeof w);
    w[24] = 0xff;
    dec[0] = abi_arg_uint256(w);
    CU_ASSERT_EQUAL(abi_value_to_uint64(&x, &dec[0]), ABI_OK);
    CU_ASSERT_EQUAL(x, UINT64_C(0xff00000000000000));
    w[23] = 1;
    dec[0] = abi_arg_uint256(w);
    x = 7;
    CU_ASSERT_EQUAL(abi_value_to_uint64(&x, &dec[0]), ABI_ERR_UINT_RANGE);
    CU_ASSERT_EQUAL(x, 7);

    /* decoded bytes borrow from the input */
    static const uint8_t data[] = {0xde, 0xad};
    uint8_t enc[96];
    args[0] = abi_arg_bytes(data, sizeof data);
    CU_ASSERT_EQUAL_FATAL(abi_encode_params(enc, sizeof enc, &len, "bytes", args, 1), ABI_OK);
    CU_ASSERT_EQUAL(len, 96);
    CU_ASSERT_EQUAL(abi_decode_params(dec, 1, "bytes", enc, len, ABI_DECODE_STRICT), ABI_OK);
    CU_ASSERT_PTR_EQUAL(dec[0].ptr, enc + 64);
    CU_ASSERT_EQUAL(dec[0].len, 2);
}

static void test_abi_strerror(void)
{
    for (int a = ABI_OK; a <= ABI_ERR_TOPIC_COUNT; a++) {
        const char *sa = abi_strerror((abi_err)a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
        CU_ASSERT(strcmp(sa, "unknown abi error") != 0);
        for (int b = a + 1; b <= ABI_ERR_TOPIC_COUNT; b++)
            CU_ASSERT(strcmp(sa, abi_strerror((abi_err)b)) != 0);
    }
    CU_ASSERT_STRING_EQUAL(abi_strerror((abi_err)999), "unknown abi error");
}

void test_register(void)
{
    static const test_case cases[] = {
        {"vectors", test_abi_vectors},
        {"selectors", test_abi_selectors},
        {"signature_errors", test_abi_signature_errors},
        {"value_checks", test_abi_value_checks},
        {"decode_api", test_abi_decode_api},
        {"strerror", test_abi_strerror},
        {NULL, NULL},
    };
    test_add_suite("abi", cases);
}
