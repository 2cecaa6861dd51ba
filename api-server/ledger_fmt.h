/* ledger_fmt: the ledger services' text at the edge: amounts in base
 * units with precise refusals, order ids, hashes and addresses, opaque
 * page tokens, timestamps, and token amounts for people. Pure functions
 * (order ids use libsodium's randombytes). */
#ifndef COFFER_LEDGER_FMT_H
#define COFFER_LEDGER_FMT_H

#include "u256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_ORDER_ID_RANDOM 20u                       /* base32 characters after the prefix */
#define LEDGER_ORDER_ID_MAX (4u + LEDGER_ORDER_ID_RANDOM + 1u) /* "dep_" + random + NUL */
#define LEDGER_PAGE_TOKEN_MAX 160u
#define LEDGER_PAGE_ID_MAX 64u
#define LEDGER_PAGE_SIZE_DEFAULT 50u
#define LEDGER_PAGE_SIZE_MAX 500u
#define LEDGER_AMOUNT_DISPLAY_MAX (U256_DEC_MAX + 2u)

/* Parses a positive amount of token base units given as canonical decimal
 * text. Returns 0, or -1 with msg[0..msg_len) saying exactly what is wrong
 * and how to say it right ("" is missing, "1.5" has a fraction, "-1" is
 * negative, "0" is zero, "007" has leading zeros, 80 digits is out of
 * range). field: the request field's name, for the message. */
__attribute__((warn_unused_result))
int ledger_fmt_parse_amount(u256 *out, char *msg, size_t msg_len, const char *field, const char *text);

/* Writes prefix ("dep_", "wth_") and LEDGER_ORDER_ID_RANDOM random
 * characters of lowercase base32 (a-z, 2-7) into out. */
void ledger_fmt_order_id(char out[LEDGER_ORDER_ID_MAX], const char *prefix);

/* True when s is prefix followed by 10..40 of [0-9a-z] (the schema's
 * order id shape). */
bool ledger_fmt_is_order_id(const char *s, const char *prefix);

/* True for "0x" + exactly 64 hex digits (a transaction hash). */
bool ledger_fmt_is_tx_hash(const char *s);

/* True for "0x" + exactly 40 hex digits (an EVM address). */
bool ledger_fmt_is_address(const char *s);

/* True for a canonical lowercase uuid (8-4-4-4-12 hex digits), the text
 * PostgreSQL gives for uuid columns. */
bool ledger_fmt_is_uuid(const char *s);

/* Page tokens: base64url (no padding) of "v1|<created_us>|<id>", opaque
 * to callers. Returns 0, or -1 (encode: out too small). */
__attribute__((warn_unused_result))
int ledger_fmt_page_token_encode(char *out, size_t out_len, int64_t created_us, const char *id);

/* Decodes a token made by ledger_fmt_page_token_encode; id gets at most
 * id_len - 1 characters (uuid or decimal). Returns 0, or -1 for anything
 * else. */
__attribute__((warn_unused_result))
int ledger_fmt_page_token_decode(int64_t *created_us, char *id, size_t id_len, const char *token);

/* page_size of a List request: 0 gives def; 1..max as is. Returns 0, or
 * -1 with msg for a size above max. */
__attribute__((warn_unused_result))
int ledger_fmt_page_size(unsigned *out, char *msg, size_t msg_len, uint32_t requested, unsigned def,
                         unsigned max);

/* Where a List request's keyset page starts: page_size and page_token
 * parsed once for every List method. */
typedef struct {
    unsigned page_size;
    bool after;                        /* a page_token was given */
    char after_us[24];                 /* its created_at, µs since the epoch, decimal */
    char after_id[LEDGER_PAGE_ID_MAX]; /* its row id (a uuid) */
} ledger_page;

/* Parses page_size (0: LEDGER_PAGE_SIZE_DEFAULT, at most
 * LEDGER_PAGE_SIZE_MAX) and page_token ("" or one this server made) into
 * page. Returns 0, or -1 with msg saying what is wrong. */
__attribute__((warn_unused_result))
int ledger_fmt_page_parse(ledger_page *page, char *msg, size_t msg_len, uint32_t page_size, const char *page_token);

/* amount in base units as a decimal with `decimals` places, trailing
 * zeros kept ("1047619047", 6 -> "1047.619047"). */
void ledger_fmt_display(char out[LEDGER_AMOUNT_DISPLAY_MAX], const u256 *amount, unsigned decimals);

/* Writes s as a JSON string literal (quotes included; quote, backslash
 * and control characters escaped; other bytes, UTF-8 included, as they
 * are: the database refuses invalid UTF-8) into out. Returns 0, or -1 when out is too small. */
__attribute__((warn_unused_result))
int ledger_fmt_json_string(char *out, size_t out_len, const char *s);

#endif
