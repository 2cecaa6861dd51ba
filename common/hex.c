#include "hex.h"

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

void hex_encode(char *out, const uint8_t *in, size_t in_len)
{
    for (size_t i = 0; i < in_len; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * in_len] = '\0';
}

void hex_encode_0x(char *out, const uint8_t *in, size_t in_len)
{
    out[0] = '0';
    out[1] = 'x';
    hex_encode(out + 2, in, in_len);
}

int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(uint8_t *out, size_t out_cap, size_t *out_len,
               const char *in, size_t in_len)
{
    *out_len = 0;
    if (in_len >= 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X')) {
        in += 2;
        in_len -= 2;
    }
    if (in_len % 2 != 0 || in_len / 2 > out_cap)
        return -1;
    for (size_t i = 0; i < in_len / 2; i++) {
        int hi = hex_digit_value(in[2 * i]);
        int lo = hex_digit_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    *out_len = in_len / 2;
    return 0;
}

int hex_decode_exact(uint8_t *out, size_t out_len, const char *in)
{
    size_t got;
    if (hex_decode(out, out_len, &got, in, strlen(in)) != 0 || got != out_len)
        return -1;
    return 0;
}
