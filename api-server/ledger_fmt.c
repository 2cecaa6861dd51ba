#include "ledger_fmt.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static bool ledger_fmt_all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

int ledger_fmt_parse_amount(u256 *out, char *msg, size_t msg_len, const char *field, const char *text)
{
    const char *s = text ? text : "";
    size_t n = strlen(s);
    if (n == 0) {
        snprintf(msg, msg_len, "%s is required: a decimal string of token base units, e.g. \"1000000\" "
                 "for 1 USDC", field);
        return -1;
    }
    if (n > U256_DEC_MAX + 8) {
        snprintf(msg, msg_len, "%s is %zu characters long: at most 78 digits fit 256 bits", field, n);
        return -1;
    }
    if (s[0] == '-') {
        snprintf(msg, msg_len, "%s must be positive, got \"%s\"", field, s);
        return -1;
    }
    if (s[0] == '+' || s[0] == ' ' || s[n - 1] == ' ') {
        snprintf(msg, msg_len, "%s must be plain digits (no sign, no spaces), got \"%s\"", field, s);
        return -1;
    }
    const char *dot = strchr(s, '.');
    if (dot && ledger_fmt_all_digits(s, (size_t)(dot - s)) && ledger_fmt_all_digits(dot + 1, strlen(dot + 1))) {
        snprintf(msg, msg_len, "%s must be a whole number of token base units, got \"%s\" with a fraction "
                 "(amounts are in the token's smallest unit: 1.5 USDC is \"1500000\")", field, s);
        return -1;
    }
    if (!ledger_fmt_all_digits(s, n)) {
        snprintf(msg, msg_len, "%s must be a decimal string of token base units (digits only), got \"%s\"",
                 field, s);
        return -1;
    }
    if (n > 1 && s[0] == '0') {
        snprintf(msg, msg_len, "%s must not have leading zeros, got \"%s\"", field, s);
        return -1;
    }
    u256 v;
    if (u256_from_dec(&v, s, n) != 0) {
        snprintf(msg, msg_len, "%s is out of range: %zu digits, more than 256 bits hold", field, n);
        return -1;
    }
    if (u256_is_zero(&v)) {
        snprintf(msg, msg_len, "%s must be greater than zero", field);
        return -1;
    }
    *out = v;
    return 0;
}

void ledger_fmt_order_id(char out[LEDGER_ORDER_ID_MAX], const char *prefix)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    size_t p = strlen(prefix);
    if (p > 4)
        p = 4;
    memcpy(out, prefix, p);
    for (unsigned i = 0; i < LEDGER_ORDER_ID_RANDOM; i++)
        out[p + i] = alphabet[randombytes_uniform(32)];
    out[p + LEDGER_ORDER_ID_RANDOM] = '\0';
}

bool ledger_fmt_is_order_id(const char *s, const char *prefix)
{
    size_t p = strlen(prefix);
    if (!s || strncmp(s, prefix, p) != 0)
        return false;
    size_t n = strlen(s + p);
    if (n < 10 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[p + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

static bool ledger_fmt_is_hex_0x(const char *s, size_t digits)
{
    if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || strlen(s) != digits + 2)
        return false;
    for (size_t i = 0; i < digits; i++) {
        char c = s[2 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

bool ledger_fmt_is_tx_hash(const char *s)
{
    return ledger_fmt_is_hex_0x(s, 64);
}

bool ledger_fmt_is_address(const char *s)
{
    return ledger_fmt_is_hex_0x(s, 40);
}

bool ledger_fmt_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

int ledger_fmt_page_token_encode(char *out, size_t out_len, int64_t created_us, const char *id)
{
    char raw[LEDGER_PAGE_ID_MAX + 48];
    int n = snprintf(raw, sizeof raw, "v1|%" PRId64 "|%s", created_us, id);
    if (n < 0 || (size_t)n >= sizeof raw)
        return -1;
    size_t need = sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (need > out_len)
        return -1;
    sodium_bin2base64(out, out_len, (const unsigned char *)raw, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int ledger_fmt_page_token_decode(int64_t *created_us, char *id, size_t id_len, const char *token)
{
    unsigned char raw[LEDGER_PAGE_ID_MAX + 48];
    size_t n = 0;
    if (!token || strlen(token) >= LEDGER_PAGE_TOKEN_MAX ||
        sodium_base642bin(raw, sizeof raw - 1, token, strlen(token), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    raw[n] = '\0';
    if (strlen((char *)raw) != n || strncmp((char *)raw, "v1|", 3) != 0)
        return -1;
    char *p = (char *)raw + 3, *bar = strchr(p, '|');
    if (!bar || bar == p)
        return -1;
    int64_t us = 0;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p == bar || bar - p > 18)
        return -1;
    for (; p < bar; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        us = us * 10 + (*p - '0');
    }
    const char *rest = bar + 1;
    size_t rl = strlen(rest);
    if (rl == 0 || rl >= id_len || rl >= LEDGER_PAGE_ID_MAX)
        return -1;
    for (size_t i = 0; i < rl; i++) {
        char c = rest[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
            return -1;
    }
    memcpy(id, rest, rl + 1);
    *created_us = neg ? -us : us;
    return 0;
}

int ledger_fmt_page_size(unsigned *out, char *msg, size_t msg_len, uint32_t requested, unsigned def,
                         unsigned max)
{
    if (requested == 0) {
        *out = def;
        return 0;
    }
    if (requested > max) {
        snprintf(msg, msg_len, "page_size must be 1..%u (0: %u), got %u", max, def, requested);
        return -1;
    }
    *out = requested;
    return 0;
}

int ledger_fmt_page_parse(ledger_page *page, char *msg, size_t msg_len, uint32_t page_size, const char *page_token)
{
    memset(page, 0, sizeof *page);
    if (ledger_fmt_page_size(&page->page_size, msg, msg_len, page_size, LEDGER_PAGE_SIZE_DEFAULT,
                             LEDGER_PAGE_SIZE_MAX) != 0)
        return -1;
    if (page_token && page_token[0]) {
        int64_t us = 0;
        if (ledger_fmt_page_token_decode(&us, page->after_id, sizeof page->after_id, page_token) != 0 ||
            !ledger_fmt_is_uuid(page->after_id)) {
            snprintf(msg, msg_len, "page_token is not one this server gave out");
            return -1;
        }
        snprintf(page->after_us, sizeof page->after_us, "%lld", (long long)us);
        page->after = true;
    }
    return 0;
}

void ledger_fmt_display(char out[LEDGER_AMOUNT_DISPLAY_MAX], const u256 *amount, unsigned decimals)
{
    char d[U256_DEC_MAX];
    u256_to_dec(d, amount);
    size_t n = strlen(d);
    if (decimals == 0 || decimals > 77) {
        memcpy(out, d, n + 1);
        return;
    }
    size_t o = 0;
    if (n <= decimals) {
        out[o++] = '0';
        out[o++] = '.';
        for (size_t i = n; i < decimals; i++)
            out[o++] = '0';
        memcpy(out + o, d, n + 1);
        return;
    }
    memcpy(out, d, n - decimals);
    o = n - decimals;
    out[o++] = '.';
    memcpy(out + o, d + n - decimals, decimals + 1);
}

int ledger_fmt_json_string(char *out, size_t out_len, const char *s)
{
    size_t o = 0;
    if (out_len < 3)
        return -1;
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t k;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            k = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            k = 6;
        } else {
            esc[0] = (char)*p;
            k = 1;
        }
        if (o + k + 2 > out_len)
            return -1;
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o++] = '"';
    out[o] = '\0';
    return 0;
}
