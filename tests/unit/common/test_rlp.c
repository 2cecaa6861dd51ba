#include "rlp.h"

#include "eth_vectors.h"
#include "hex.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    rlp_err err;
} rlp_err_names[] = {
    {"RLP_ERR_TRUNCATED", RLP_ERR_TRUNCATED},
    {"RLP_ERR_OVERRUN", RLP_ERR_OVERRUN},
    {"RLP_ERR_NONCANONICAL_BYTE", RLP_ERR_NONCANONICAL_BYTE},
    {"RLP_ERR_NONCANONICAL_LENGTH", RLP_ERR_NONCANONICAL_LENGTH},
    {"RLP_ERR_LENGTH_LEADING_ZERO", RLP_ERR_LENGTH_LEADING_ZERO},
    {"RLP_ERR_TRAILING_BYTES", RLP_ERR_TRAILING_BYTES},
    {"RLP_ERR_DEPTH", RLP_ERR_DEPTH},
    {"RLP_ERR_EXPECTED_STRING", RLP_ERR_EXPECTED_STRING},
    {"RLP_ERR_INT_LEADING_ZERO", RLP_ERR_INT_LEADING_ZERO},
    {"RLP_ERR_INT_TOO_LARGE", RLP_ERR_INT_TOO_LARGE},
};

static int err_by_name(rlp_err *out, const char *name)
{
    for (size_t i = 0; i < sizeof rlp_err_names / sizeof rlp_err_names[0]; i++) {
        if (strcmp(rlp_err_names[i].name, name) == 0) {
            *out = rlp_err_names[i].err;
            return 0;
        }
    }
    return -1;
}

/* Encodes cast's JSON notation (no spaces): "0x.." byte strings and [..]
 * lists. Returns 0, -1 on a syntax or encoding error. */
static int encode_text(rlp_buf *b, const char **p)
{
    if (**p == '[') {
        size_t mark = rlp_list_begin(b);
        (*p)++;
        if (**p == ']') {
            (*p)++;
            return rlp_list_end(b, mark) == RLP_OK ? 0 : -1;
        }
        for (;;) {
            if (encode_text(b, p) != 0)
                return -1;
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p != ']')
                return -1;
            (*p)++;
            return rlp_list_end(b, mark) == RLP_OK ? 0 : -1;
        }
    }
    if (**p != '"')
        return -1;
    const char *start = *p + 1;
    const char *end = strchr(start, '"');
    if (!end)
        return -1;
    size_t n = (size_t)(end - start);
    uint8_t *bytes = malloc(n / 2 + 1);
    size_t len;
    int rc = -1;
    if (bytes && hex_decode(bytes, n / 2 + 1, &len, start, n) == 0 &&
        rlp_put_bytes(b, bytes, len) == RLP_OK)
        rc = 0;
    free(bytes);
    *p = end + 1;
    return rc;
}

/* Appends text to a fixed buffer; returns -1 when it does not fit. */
static int put_text(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (n >= cap - *pos)
        return -1;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return 0;
}

/* Renders a decoded item back to cast's notation. */
static int render_item(char *out, size_t cap, size_t *pos, const rlp_item *item)
{
    if (item->type == RLP_TYPE_STRING) {
        char *h = malloc(HEX_ENCODED_LEN(item->payload_len) + 1);
        int rc;
        if (!h)
            return -1;
        hex_encode(h, item->payload, item->payload_len);
        rc = put_text(out, cap, pos, "\"0x", 3) || put_text(out, cap, pos, h, strlen(h)) ||
             put_text(out, cap, pos, "\"", 1);
        free(h);
        return rc ? -1 : 0;
    }
    rlp_iter it;
    rlp_item child;
    bool first = true;
    if (rlp_iter_init(&it, item) != RLP_OK || put_text(out, cap, pos, "[", 1) != 0)
        return -1;
    while (!rlp_iter_done(&it)) {
        if (rlp_iter_next(&it, &child) != RLP_OK)
            return -1;
        if (!first && put_text(out, cap, pos, ",", 1) != 0)
            return -1;
        first = false;
        if (render_item(out, cap, pos, &child) != 0)
            return -1;
    }
    return put_text(out, cap, pos, "]", 1);
}

static void check_enc(vec_file *v)
{
    rlp_buf b;
    size_t want_len;
    uint8_t *want = vec_hex(v->field[2], &want_len);
    const char *p = v->field[1];
    rlp_item item;
    CU_ASSERT_FATAL(want != NULL);

    /* value -> encoding */
    rlp_buf_init(&b);
    VEC_CHECK(v, encode_text(&b, &p) == 0 && *p == '\0');
    VEC_CHECK(v, b.len == want_len && memcmp(b.data, want, want_len) == 0);

    /* encoding -> value */
    size_t cap = strlen(v->field[1]) + 1;
    char *text = malloc(cap);
    size_t pos = 0;
    CU_ASSERT_FATAL(text != NULL);
    text[0] = '\0';
    VEC_CHECK(v, rlp_validate(&item, want, want_len, RLP_DEFAULT_DEPTH) == RLP_OK);
    VEC_CHECK(v, item.item_len == want_len);
    VEC_CHECK(v, render_item(text, cap, &pos, &item) == 0);
    VEC_CHECK(v, strcmp(text, v->field[1]) == 0);
    free(text);

    /* a pre-encoded item is taken verbatim */
    rlp_buf_reset(&b);
    VEC_CHECK(v, rlp_put_raw(&b, want, want_len) == RLP_OK);
    VEC_CHECK(v, b.len == want_len && memcmp(b.data, want, want_len) == 0);
    rlp_buf_dispose(&b);
    free(want);
}

static void check_uint(vec_file *v)
{
    rlp_buf b;
    size_t want_len;
    uint8_t *want = vec_hex(v->field[2], &want_len);
    uint64_t n = strtoull(v->field[1], NULL, 10);
    rlp_item item;
    uint64_t back = 0;
    uint8_t word[32];
    CU_ASSERT_FATAL(want != NULL);

    rlp_buf_init(&b);
    VEC_CHECK(v, rlp_put_uint64(&b, n) == RLP_OK);
    VEC_CHECK(v, b.len == want_len && memcmp(b.data, want, want_len) == 0);
    VEC_CHECK(v, rlp_decode_single(&item, want, want_len) == RLP_OK);
    VEC_CHECK(v, rlp_item_to_uint64(&back, &item) == RLP_OK && back == n);
    VEC_CHECK(v, rlp_item_to_uint256(word, &item) == RLP_OK);
    uint64_t low = 0;
    for (int i = 24; i < 32; i++)
        low = (low << 8) | word[i];
    for (int i = 0; i < 24; i++)
        VEC_CHECK(v, word[i] == 0);
    VEC_CHECK(v, low == n);
    rlp_buf_dispose(&b);
    free(want);
}

static void check_uintbe(vec_file *v)
{
    rlp_buf b;
    size_t be_len, want_len;
    uint8_t *be = vec_hex(v->field[1], &be_len);
    uint8_t *want = vec_hex(v->field[2], &want_len);
    CU_ASSERT_FATAL(be != NULL && want != NULL);
    rlp_buf_init(&b);
    VEC_CHECK(v, rlp_put_uint_be(&b, be, be_len) == RLP_OK);
    VEC_CHECK(v, b.len == want_len && memcmp(b.data, want, want_len) == 0);
    rlp_buf_dispose(&b);
    free(be);
    free(want);
}

static void check_bad(vec_file *v)
{
    rlp_buf b;
    rlp_err want_err = RLP_OK;
    size_t len;
    uint8_t *in = vec_hex(v->field[1], &len);
    CU_ASSERT_FATAL(in != NULL);
    CU_ASSERT_FATAL(err_by_name(&want_err, v->field[2]) == 0);
    VEC_CHECK(v, rlp_validate(NULL, in, len, RLP_DEFAULT_DEPTH) == want_err);
    if (want_err != RLP_ERR_DEPTH) {
        /* rlp_put_raw refuses it too and leaves the buffer alone. */
        rlp_buf_init(&b);
        CU_ASSERT_FATAL(rlp_put_uint64(&b, 7) == RLP_OK);
        VEC_CHECK(v, rlp_put_raw(&b, in, len) == want_err);
        VEC_CHECK(v, b.len == 1 && b.data[0] == 7);
        rlp_buf_dispose(&b);
    }
    free(in);
}

static void check_badint(vec_file *v)
{
    rlp_err want_err = RLP_OK;
    size_t len;
    uint8_t *in = vec_hex(v->field[1], &len);
    rlp_item item;
    uint64_t n = 12345;
    uint8_t word[32];
    CU_ASSERT_FATAL(in != NULL);
    CU_ASSERT_FATAL(err_by_name(&want_err, v->field[2]) == 0);
    VEC_CHECK(v, rlp_decode_single(&item, in, len) == RLP_OK);
    VEC_CHECK(v, rlp_item_to_uint64(&n, &item) == want_err);
    VEC_CHECK(v, n == 12345);
    if (want_err != RLP_ERR_INT_TOO_LARGE)
        VEC_CHECK(v, rlp_item_to_uint256(word, &item) == want_err);
    free(in);
}

/* tests/vectors/rlp.txt: spec examples, cast-generated, bad inputs. */
static void test_rlp_vectors(void)
{
    vec_file v;
    size_t counts[5] = {0};
    if (vec_open(&v, "rlp.txt") != 0)
        return;
    while (vec_next(&v)) {
        CU_ASSERT_FATAL(v.nfield == 3);
        if (strcmp(v.field[0], "enc") == 0) {
            check_enc(&v);
            counts[0]++;
        } else if (strcmp(v.field[0], "uint") == 0) {
            check_uint(&v);
            counts[1]++;
        } else if (strcmp(v.field[0], "uintbe") == 0) {
            check_uintbe(&v);
            counts[2]++;
        } else if (strcmp(v.field[0], "bad") == 0) {
            check_bad(&v);
            counts[3]++;
        } else if (strcmp(v.field[0], "badint") == 0) {
            check_badint(&v);
            counts[4]++;
        } else {
            VEC_CHECK(&v, !"unknown vector kind");
        }
    }
    vec_close(&v);
    CU_ASSERT(counts[0] >= 25);
    CU_ASSERT(counts[1] >= 14);
    CU_ASSERT(counts[2] >= 13);
    CU_ASSERT(counts[3] >= 30);
    CU_ASSERT(counts[4] >= 4);
}

/* The examples of the RLP spec, built with the encoder API directly. */
static void test_rlp_spec_examples(void)
{
    static const uint8_t set3[] = {0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0};
    static const uint8_t catdog[] = {0xc8, 0x83, 'c', 'a', 't', 0x83, 'd', 'o', 'g'};
    rlp_buf b;
    size_t outer, m1, m2, m3;

    rlp_buf_init(&b);
    CU_ASSERT_PTR_NULL(b.data);
    /* [ [], [[]], [ [], [[]] ] ] */
    outer = rlp_list_begin(&b);
    m1 = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m1), RLP_OK);
    m1 = rlp_list_begin(&b);
    m2 = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m2), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m1), RLP_OK);
    m1 = rlp_list_begin(&b);
    m2 = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m2), RLP_OK);
    m2 = rlp_list_begin(&b);
    m3 = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m3), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m2), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, m1), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, outer), RLP_OK);
    CU_ASSERT_EQUAL(b.len, sizeof set3);
    CU_ASSERT_EQUAL(memcmp(b.data, set3, sizeof set3), 0);

    rlp_buf_reset(&b);
    outer = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, (const uint8_t *)"cat", 3), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, (const uint8_t *)"dog", 3), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, outer), RLP_OK);
    CU_ASSERT_EQUAL(b.len, sizeof catdog);
    CU_ASSERT_EQUAL(memcmp(b.data, catdog, sizeof catdog), 0);

    /* "", 0 (as bytes and as uint64), 15, 1024 */
    rlp_buf_reset(&b);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, NULL, 0), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_uint_be(&b, NULL, 0), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_uint64(&b, 0), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_uint64(&b, 15), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_uint64(&b, 1024), RLP_OK);
    static const uint8_t ints[] = {0x80, 0x80, 0x80, 0x0f, 0x82, 0x04, 0x00};
    CU_ASSERT_EQUAL(b.len, sizeof ints);
    CU_ASSERT_EQUAL(memcmp(b.data, ints, sizeof ints), 0);
    rlp_buf_dispose(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
}

/* Long lists: headers with 1, 2 and 3 length bytes, buffer growth. */
static void test_rlp_long_lists(void)
{
    rlp_buf b;
    rlp_item item, child;
    rlp_iter it;
    static const size_t counts[] = {55, 56, 255, 256, 65535, 65536, 100000};

    rlp_buf_init(&b);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t n = counts[c];
        rlp_buf_reset(&b);
        size_t mark = rlp_list_begin(&b);
        size_t put_errors = 0;
        for (size_t i = 0; i < n; i++)
            put_errors += rlp_put_uint64(&b, i % 100) != RLP_OK;
        CU_ASSERT_EQUAL_FATAL(put_errors, 0);
        CU_ASSERT_EQUAL_FATAL(rlp_list_end(&b, mark), RLP_OK);
        size_t hlen = n < 56 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 4;
        CU_ASSERT_EQUAL(b.len, hlen + n);
        CU_ASSERT_EQUAL(b.data[0], n < 56 ? 0xc0 + n : 0xf7 + hlen - 1);
        CU_ASSERT_EQUAL(rlp_validate(&item, b.data, b.len, 1), RLP_OK);
        CU_ASSERT_EQUAL(item.payload_len, n);
        CU_ASSERT_EQUAL(rlp_iter_init(&it, &item), RLP_OK);
        size_t seen = 0, bad = 0;
        uint64_t x = 0;
        while (!rlp_iter_done(&it)) {
            if (rlp_iter_next(&it, &child) != RLP_OK) {
                bad++;
                break;
            }
            bad += rlp_item_to_uint64(&x, &child) != RLP_OK || x != seen % 100;
            seen++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(seen, n);
        CU_ASSERT_EQUAL(rlp_iter_next(&it, &child), RLP_ERR_END_OF_LIST);
    }
    rlp_buf_dispose(&b);
}

static void test_rlp_decode_api(void)
{
    /* ["cat", "dog", 1024, [0x00], address] */
    static const uint8_t addr[20] = {0xa0, 0xb8, 0x69, 0x91, 0xc6, 0x21, 0x8b, 0x36, 0xc1, 0xd1,
                                     0x9d, 0x4a, 0x2e, 0x9e, 0xb0, 0xce, 0x36, 0x06, 0xeb, 0x48};
    rlp_buf b;
    rlp_item items[5], top;
    size_t n = 99;
    uint8_t got_addr[20];
    uint8_t word[32];
    uint64_t x = 0;

    rlp_buf_init(&b);
    size_t mark = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, (const uint8_t *)"cat", 3), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, (const uint8_t *)"dog", 3), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_uint64(&b, 1024), RLP_OK);
    size_t inner = rlp_list_begin(&b);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, (const uint8_t *)"", 1), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, inner), RLP_OK);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, addr, sizeof addr), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, mark), RLP_OK);

    CU_ASSERT_EQUAL(rlp_validate(&top, b.data, b.len, RLP_DEFAULT_DEPTH), RLP_OK);
    CU_ASSERT_EQUAL(top.type, RLP_TYPE_LIST);
    CU_ASSERT_EQUAL(rlp_decode_list(items, 4, &n, &top), RLP_ERR_TOO_MANY_ITEMS);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(rlp_decode_list(items, 5, &n, &top), RLP_OK);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(items[0].payload_len, 3);
    CU_ASSERT_EQUAL(memcmp(items[1].payload, "dog", 3), 0);
    CU_ASSERT_EQUAL(rlp_item_to_uint64(&x, &items[2]), RLP_OK);
    CU_ASSERT_EQUAL(x, 1024);
    CU_ASSERT_EQUAL(rlp_item_to_uint256(word, &items[2]), RLP_OK);
    CU_ASSERT_EQUAL(word[30], 0x04);
    CU_ASSERT_EQUAL(word[31], 0x00);
    CU_ASSERT_EQUAL(rlp_item_to_uint64(&x, &items[3]), RLP_ERR_EXPECTED_STRING);
    CU_ASSERT_EQUAL(rlp_item_to_bytes(got_addr, 20, &items[3]), RLP_ERR_EXPECTED_STRING);
    CU_ASSERT_EQUAL(rlp_decode_list(items, 5, &n, &items[0]), RLP_ERR_EXPECTED_LIST);
    CU_ASSERT_EQUAL(rlp_item_to_bytes(got_addr, 20, &items[4]), RLP_OK);
    CU_ASSERT_EQUAL(memcmp(got_addr, addr, 20), 0);
    CU_ASSERT_EQUAL(rlp_item_to_bytes(got_addr, 19, &items[4]), RLP_ERR_WRONG_LENGTH);
    /* A 20-byte string is too large for uint64 but fine for uint256. */
    CU_ASSERT_EQUAL(rlp_item_to_uint64(&x, &items[4]), RLP_ERR_INT_TOO_LARGE);
    CU_ASSERT_EQUAL(rlp_item_to_uint256(word, &items[4]), RLP_OK);
    CU_ASSERT_EQUAL(memcmp(word + 12, addr, 20), 0);

    /* rlp_decode_item allows what follows; rlp_decode_single does not. */
    rlp_item first;
    static const uint8_t two[] = {0x83, 'd', 'o', 'g', 0x01};
    CU_ASSERT_EQUAL(rlp_decode_item(&first, two, sizeof two), RLP_OK);
    CU_ASSERT_EQUAL(first.item_len, 4);
    CU_ASSERT_EQUAL(rlp_decode_single(&first, two, sizeof two), RLP_ERR_TRAILING_BYTES);
    CU_ASSERT_EQUAL(rlp_decode_item(&first, two + 4, 1), RLP_OK);
    CU_ASSERT_EQUAL(first.payload_len, 1);
    CU_ASSERT_EQUAL(first.payload[0], 0x01);

    /* 33-byte integer */
    uint8_t big[34];
    memset(big, 0xff, sizeof big);
    big[0] = 0xa1;
    CU_ASSERT_EQUAL(rlp_decode_single(&first, big, sizeof big), RLP_OK);
    CU_ASSERT_EQUAL(rlp_item_to_uint256(word, &first), RLP_ERR_INT_TOO_LARGE);
    rlp_buf_dispose(&b);
}

static void test_rlp_depth(void)
{
    static const uint8_t c0[1] = {0xc0};
    rlp_buf b;
    size_t marks[RLP_MAX_DEPTH + 1];

    rlp_buf_init(&b);
    for (unsigned k = 1; k <= RLP_MAX_DEPTH + 1; k++) {
        /* k nested empty lists */
        rlp_buf_reset(&b);
        for (unsigned i = 0; i < k; i++)
            marks[i] = rlp_list_begin(&b);
        for (unsigned i = k; i-- > 0;)
            CU_ASSERT_EQUAL_FATAL(rlp_list_end(&b, marks[i]), RLP_OK);
        CU_ASSERT_EQUAL(rlp_validate(NULL, b.data, b.len, k),
                        k <= RLP_MAX_DEPTH ? RLP_OK : RLP_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(rlp_validate(NULL, b.data, b.len, k - 1), RLP_ERR_DEPTH);
    }
    rlp_buf_dispose(&b);
    /* depth 0 admits strings only */
    static const uint8_t dog[] = {0x83, 'd', 'o', 'g'};
    CU_ASSERT_EQUAL(rlp_validate(NULL, dog, sizeof dog, 0), RLP_OK);
    CU_ASSERT_EQUAL(rlp_validate(NULL, c0, sizeof c0, 0), RLP_ERR_DEPTH);
    CU_ASSERT_EQUAL(rlp_validate(NULL, dog, sizeof dog, RLP_MAX_DEPTH + 1), RLP_ERR_INVALID_ARG);
    /* the depth limit counts nesting, not the number of sibling lists */
    static const uint8_t wide[] = {0xc3, 0xc0, 0xc0, 0xc0}; /* [[],[],[]] */
    CU_ASSERT_EQUAL(rlp_validate(NULL, wide, sizeof wide, 2), RLP_OK);
    CU_ASSERT_EQUAL(rlp_validate(NULL, wide, sizeof wide, 1), RLP_ERR_DEPTH);
}

static void test_rlp_encoder_errors(void)
{
    rlp_buf b;
    static const uint8_t x[1] = {0x42};
    rlp_buf_init(&b);
    CU_ASSERT_EQUAL(rlp_put_uint64(&b, 1), RLP_OK);
    CU_ASSERT_EQUAL(rlp_list_end(&b, 2), RLP_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(b.len, 1);
    /* Sizes beyond RLP_MAX_ENCODED_LEN are refused before any copying. */
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, x, RLP_MAX_ENCODED_LEN), RLP_ERR_TOO_LARGE);
    CU_ASSERT_EQUAL(rlp_put_bytes(&b, x, SIZE_MAX), RLP_ERR_TOO_LARGE);
    CU_ASSERT_EQUAL(b.len, 1);
    /* A list may be closed at the very start (mark 0 == len 0 case). */
    rlp_buf_reset(&b);
    CU_ASSERT_EQUAL(rlp_list_end(&b, rlp_list_begin(&b)), RLP_OK);
    CU_ASSERT_EQUAL(b.len, 1);
    CU_ASSERT_EQUAL(b.data[0], 0xc0);
    rlp_buf_dispose(&b);
    rlp_buf_dispose(&b); /* disposing twice is harmless */
}

static void test_rlp_strerror(void)
{
    for (int a = RLP_OK; a <= RLP_ERR_END_OF_LIST; a++) {
        const char *sa = rlp_strerror((rlp_err)a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
        CU_ASSERT(strcmp(sa, "unknown rlp error") != 0);
        for (int b = a + 1; b <= RLP_ERR_END_OF_LIST; b++)
            CU_ASSERT(strcmp(sa, rlp_strerror((rlp_err)b)) != 0);
    }
    CU_ASSERT_STRING_EQUAL(rlp_strerror((rlp_err)999), "unknown rlp error");
}

void test_register(void)
{
    static const test_case cases[] = {
        {"vectors", test_rlp_vectors},
        {"spec_examples", test_rlp_spec_examples},
        {"long_lists", test_rlp_long_lists},
        {"decode_api", test_rlp_decode_api},
        {"depth", test_rlp_depth},
        {"encoder_errors", test_rlp_encoder_errors},
        {"strerror", test_rlp_strerror},
        {NULL, NULL},
    };
    test_add_suite("rlp", cases);
}
