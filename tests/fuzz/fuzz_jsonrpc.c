/* JSON-RPC responses (common/jsonrpc): any bytes as a response body to
 * request id 1, then every string in the answer read as a QUANTITY and as
 * DATA. Properties: a rejected body leaves nothing behind and says why; an
 * accepted one has exactly one of result and error; the hex readers accept
 * exactly what a reference rule accepts, and what they accept re-encodes to
 * the same text (lowercase; quantities without their leading zeros). */
#include "fuzz_check.h"
#include "jsonrpc.h"

#include <stdlib.h>
#include <string.h>

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
}

/* "0x" then digits, all hex; *n gets the digit count. */
static int ref_hex(const char *s, size_t len, size_t *n)
{
    if (len < 2 || s[0] != '0' || s[1] != 'x')
        return 0;
    for (size_t i = 2; i < len; i++)
        if (!is_hex(s[i]))
            return 0;
    *n = len - 2;
    return 1;
}

static void check_string(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t n = 0;
    int hex = ref_hex(s, len, &n);
    jsonrpc_err e;

    /* QUANTITY */
    u256 w;
    uint64_t q;
    e.msg[0] = '\0';
    int rw = jsonrpc_quantity_u256(&w, &e, v, "q");
    CHECK((rw == 0) == (hex && n >= 1 && n <= JSONRPC_QUANTITY_DIGITS_MAX));
    if (rw != 0)
        CHECK(e.msg[0] != '\0');
    int rq = jsonrpc_quantity_u64(&q, &e, v, "q");
    if (rq == 0) {
        CHECK(rw == 0);
        u256 q256 = u256_from_u64(q);
        CHECK(u256_cmp(&q256, &w) == 0);
    } else if (rw == 0) {
        uint64_t tmp;
        CHECK(u256_to_u64(&tmp, &w) != 0); /* refused only for being too big */
    }
    if (rw == 0) {
        char out[U256_HEX_MAX];
        const char *d = s + 2;
        size_t dn = n;
        while (dn > 1 && d[0] == '0') {
            d++;
            dn--;
        }
        u256_to_hex(out, &w);
        CHECK(strlen(out) == dn + 2);
        for (size_t i = 0; i < dn; i++)
            CHECK(out[2 + i] == lower(d[i]));
    }

    /* DATA, bounded and allocated */
    uint8_t buf[64];
    size_t got = 99;
    int rd = jsonrpc_data(buf, sizeof buf, &got, &e, v, "d");
    CHECK((rd == 0) == (hex && n % 2 == 0 && n / 2 <= sizeof buf));
    if (rd != 0)
        CHECK(got == 0);
    uint8_t *p = NULL;
    size_t plen = 0;
    int ra = jsonrpc_data_alloc(&p, &plen, 4096, &e, v, "d");
    CHECK((ra == 0) == (hex && n % 2 == 0 && n / 2 <= 4096));
    if (ra == 0) {
        CHECK(plen == n / 2);
        CHECK((plen == 0) == (p == NULL));
        json_t *again = jsonrpc_json_data(p, plen);
        CHECK(again != NULL);
        const char *t = json_string_value(again);
        CHECK(json_string_length(again) == len);
        for (size_t i = 0; i < len; i++)
            CHECK(t[i] == lower(s[i]));
        json_decref(again);
        if (plen == 20) {
            uint8_t a[20];
            CHECK(jsonrpc_data_fixed(a, 20, &e, v, "a") == 0);
            CHECK(memcmp(a, p, 20) == 0);
        }
    } else {
        CHECK(p == NULL && plen == 0);
    }
    free(p);
}

/* Walks the value (bounded), checking every string. */
static void walk(const json_t *v, int depth, int *budget)
{
    if (!v || depth > 8 || (*budget)-- <= 0)
        return;
    if (json_is_string(v)) {
        check_string(v);
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            walk(json_array_get(v, i), depth + 1, budget);
    } else if (json_is_object(v)) {
        const char *k;
        const json_t *m;
        json_object_foreach((json_t *)(uintptr_t)v, k, m)
            walk(m, depth + 1, budget);
    } else {
        jsonrpc_err e;
        uint64_t q;
        CHECK(jsonrpc_quantity_u64(&q, &e, v, "q") == -1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jsonrpc_response r;
    jsonrpc_err e;
    e.msg[0] = '\0';
    if (jsonrpc_response_parse(&r, &e, (const char *)data, size, 1) != 0) {
        CHECK(r.root == NULL && r.result == NULL);
        CHECK(e.msg[0] != '\0');
        CHECK(strlen(e.msg) < sizeof e.msg);
        jsonrpc_response_dispose(&r);
        return 0;
    }
    CHECK(r.root != NULL);
    if (r.is_error) {
        CHECK(r.result == NULL && r.error_message != NULL);
    } else {
        CHECK(r.result != NULL);
    }
    int budget = 2000;
    walk(r.is_error ? r.error_data : r.result, 0, &budget);
    jsonrpc_response_dispose(&r);
    return 0;
}
