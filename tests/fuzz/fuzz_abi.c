/* libFuzzer target for common/abi.
 *
 * The input is decoded as several parameter lists (each elementary type
 * alone and mixed static+dynamic tuples), as calldata, as an Error(string)
 * revert payload and as a Transfer log. Properties checked:
 * - the strict decoder accepts a subset of what the lenient one accepts;
 * - a strict decode re-encodes to exactly the input (canonical form), and
 *   a lenient decode whose re-encoding equals the input was strict;
 * - re-encoding a lenient decode gives an encoding the strict decoder
 *   accepts with the same values.
 * Any violation aborts. */
#include "fuzz_check.h"
#include "abi.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>



#define MAX_VALUES 8

static const struct {
    const char *types;
    size_t n;
} lists[] = {
    {"uint256", 1},
    {"uint16", 1},
    {"address", 1},
    {"bool", 1},
    {"bytes4", 1},
    {"bytes", 1},
    {"string", 1},
    {"address,uint256,bytes,bool,string,uint16,bytes4", 7},
    {"bytes,bytes", 2},
    {"uint8,string,address", 3},
};

static int values_equal(const abi_value *x, const abi_value *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (x[i].kind != y[i].kind || x[i].len != y[i].len)
            return 0;
        if (x[i].kind == ABI_KIND_BYTES || x[i].kind == ABI_KIND_STRING) {
            if (x[i].len && memcmp(x[i].ptr, y[i].ptr, x[i].len) != 0)
                return 0;
        } else if (memcmp(x[i].word, y[i].word, ABI_WORD_LEN) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Encodes vals into a malloc'd buffer; aborts when the encoder refuses
 * values the decoder produced. */
static uint8_t *encode(size_t *len, const char *types, const abi_value *vals, size_t n)
{
    size_t need = 0;
    abi_err e = abi_encode_params(NULL, 0, &need, types, vals, n);
    CHECK(e == ABI_OK || e == ABI_ERR_BUFFER_TOO_SMALL);
    uint8_t *out = malloc(need ? need : 1);
    CHECK(out != NULL);
    CHECK(abi_encode_params(out, need, len, types, vals, n) == ABI_OK);
    CHECK(*len == need);
    return out;
}

static void check_list(const char *types, size_t n, const uint8_t *data, size_t size)
{
    abi_value lenient[MAX_VALUES];
    abi_value strict[MAX_VALUES];
    abi_value again[MAX_VALUES];
    abi_err el = abi_decode_params(lenient, n, types, data, size, 0);
    abi_err es = abi_decode_params(strict, n, types, data, size, ABI_DECODE_STRICT);
    size_t len;

    CHECK(abi_strerror(el) != NULL);
    if (es == ABI_OK) {
        CHECK(el == ABI_OK);
        CHECK(values_equal(lenient, strict, n));
        uint8_t *enc = encode(&len, types, strict, n);
        CHECK(len == size && memcmp(enc, data, size) == 0);
        free(enc);
    } else {
        CHECK(es != ABI_ERR_BAD_SIGNATURE && es != ABI_ERR_ARG_COUNT &&
              es != ABI_ERR_INVALID_ARG);
    }
    if (el == ABI_OK) {
        uint8_t *enc = encode(&len, types, lenient, n);
        if (len == size && memcmp(enc, data, size) == 0)
            CHECK(es == ABI_OK);
        CHECK(abi_decode_params(again, n, types, enc, len, ABI_DECODE_STRICT) == ABI_OK);
        CHECK(values_equal(again, lenient, n));
        free(enc);
    }
}

static void check_revert(const uint8_t *data, size_t size)
{
    const uint8_t *msg;
    size_t msg_len, len;
    if (abi_decode_revert(&msg, &msg_len, data, size) != ABI_OK)
        return;
    abi_value v = abi_arg_string_n((const char *)msg, msg_len);
    uint8_t *out = malloc(size);
    CHECK(out != NULL);
    CHECK(abi_encode_call(out, size, &len, "Error(string)", &v, 1) == ABI_OK);
    CHECK(len == size && memcmp(out, data, size) == 0);
    free(out);
}

/* The input after a transfer() selector, as calldata. */
static void check_calldata(const uint8_t *data, size_t size)
{
    static const char sig[] = "transferFrom(address,address,uint256)";
    abi_value v[3];
    size_t len;
    uint8_t *cd = malloc(size + ABI_SELECTOR_LEN);
    CHECK(cd != NULL);
    abi_selector(cd, sig);
    if (size)
        memcpy(cd + ABI_SELECTOR_LEN, data, size);
    if (abi_decode_call(v, 3, sig, cd, size + ABI_SELECTOR_LEN, ABI_DECODE_STRICT) == ABI_OK) {
        uint8_t out[4 + 96];
        CHECK(size == 96);
        CHECK(abi_encode_call(out, sizeof out, &len, sig, v, 3) == ABI_OK);
        CHECK(len == sizeof out && memcmp(out, cd, len) == 0);
    }
    free(cd);
}

static void check_log(const uint8_t *data, size_t size)
{
    abi_transfer_log log;
    if (size < 96)
        return;
    if (abi_decode_transfer_log(&log, data, 3, data + 96, size - 96) == ABI_OK) {
        CHECK(size == 128);
        CHECK(memcmp(log.from, data + 32 + 12, 20) == 0);
        CHECK(memcmp(log.to, data + 64 + 12, 20) == 0);
        CHECK(memcmp(log.value, data + 96, 32) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        check_list(lists[i].types, lists[i].n, data, size);
    check_revert(data, size);
    check_calldata(data, size);
    check_log(data, size);
    return 0;
}
