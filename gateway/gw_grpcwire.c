#include "gw_grpcwire.h"

#include "hex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t gw_grpcwire_timeout(char *out, int64_t ms)
{
    /* The largest value that fits 8 digits in the finest unit that can
     * carry it; rounding up keeps the server's deadline no earlier than ours. */
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'m', 1}, {'S', 1000}, {'M', 60000}, {'H', 3600000}};
    if (ms < 1)
        ms = 1;
    int64_t v = ms;
    char unit = 'H';
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        /* Not (ms + unit - 1) / unit: that overflows for ms near INT64_MAX. */
        int64_t q = ms / units[i].ms + (ms % units[i].ms != 0);
        if (q <= 99999999) {
            v = q;
            unit = units[i].unit;
            break;
        }
        v = 99999999;
    }
    char digits[12];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t len = 0;
    while (n)
        out[len++] = digits[--n];
    out[len++] = unit;
    out[len] = '\0';
    return len;
}

int gw_grpcwire_status(rpc_code *code, const uint8_t *value, size_t len)
{
    if (len == 0 || len > 2 || (len == 2 && value[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(value[i] - '0');
    }
    if (v > 16)
        return -1;
    *code = (rpc_code)v;
    return 0;
}

char *gw_grpcwire_message(const uint8_t *value, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (value[i] == '%' && i + 2 < len && (hi = hex_digit_value((char)value[i + 1])) >= 0 && (lo = hex_digit_value((char)value[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = (char)value[i];
        }
    }
    out[n] = '\0';
    return out;
}

rpc_code gw_grpcwire_http_code(unsigned http_status)
{
    switch (http_status) {
    case 400:
        return RPC_INTERNAL;
    case 401:
        return RPC_UNAUTHENTICATED;
    case 403:
        return RPC_PERMISSION_DENIED;
    case 404:
        return RPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return RPC_UNAVAILABLE;
    default:
        return RPC_UNKNOWN;
    }
}

rpc_code gw_grpcwire_rst_code(uint32_t error_code)
{
    switch (error_code) {
    case 0x7: /* REFUSED_STREAM */
        return RPC_UNAVAILABLE;
    case 0x8: /* CANCEL */
        return RPC_CANCELLED;
    case 0xb: /* ENHANCE_YOUR_CALM */
        return RPC_RESOURCE_EXHAUSTED;
    case 0xc: /* INADEQUATE_SECURITY */
        return RPC_PERMISSION_DENIED;
    default:
        return RPC_INTERNAL;
    }
}

bool gw_grpcwire_key_is_bin(const uint8_t *key, size_t len)
{
    return len > 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

int gw_grpcwire_unframe(const uint8_t **msg, size_t *msg_len, const uint8_t *body, size_t len, char *err,
                        size_t err_len)
{
    if (len == 0) {
        snprintf(err, err_len, "the upstream sent no response message");
        return -1;
    }
    if (len < 5) {
        snprintf(err, err_len, "the upstream's response ends inside a message prefix (%zu bytes)", len);
        return -1;
    }
    if (body[0] != 0) {
        snprintf(err, err_len, "the upstream's response is %s (flag %u), which was not asked for",
                 body[0] == 1 ? "compressed" : "flagged", body[0]);
        return -1;
    }
    size_t n = (size_t)body[1] << 24 | (size_t)body[2] << 16 | (size_t)body[3] << 8 | (size_t)body[4];
    if (n != len - 5) {
        snprintf(err, err_len, "the upstream's response message says %zu bytes but %zu follow%s", n, len - 5,
                 n < len - 5 ? " (more than one message in a unary response)" : "");
        return -1;
    }
    *msg = body + 5;
    *msg_len = n;
    return 0;
}

void gw_grpcwire_prefix(uint8_t out[5], size_t len)
{
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}
