/* u256: unsigned 256-bit integers for money math.
 *
 * Every amount, share count and index in Coffer is a u256 (DESIGN.md §2).
 * All arithmetic is checked: a result that does not fit is an error, never a
 * silent wrap. Rounding direction is part of the name (u256_muldiv_floor,
 * u256_muldiv_ceil).
 *
 * Conventions for every function below:
 * - Pointer arguments are non-NULL unless said otherwise.
 * - Output arguments may alias input arguments (u256_add(&x, &x, &y) is fine).
 * - A function that returns -1 leaves its outputs unchanged.
 * - Nothing here is constant-time: amounts are not secrets.
 * - No allocation, no global state; every function is thread-safe.
 */
#ifndef COFFER_U256_H
#define COFFER_U256_H

#include <stddef.h>
#include <stdint.h>

/* Value = w[0] + w[1]·2^64 + w[2]·2^128 + w[3]·2^192 (little-endian limbs). */
typedef struct {
    uint64_t w[4];
} u256;

/* Buffer size for u256_to_dec: 78 digits (2^256-1 has 78) + NUL. */
#define U256_DEC_MAX 79
/* Buffer size for u256_to_hex: "0x" + 64 digits + NUL. */
#define U256_HEX_MAX 67
/* Size of the big-endian byte encoding. */
#define U256_BE_LEN 32
/* Largest n accepted by u256_pow10 (10^77 < 2^256 < 10^78). */
#define U256_POW10_MAX 77

/* Compile-time constants: U256_ZERO, U256_ONE, U256_MAX (2^256-1). */
#define U256_ZERO ((u256){{0, 0, 0, 0}})
#define U256_ONE ((u256){{1, 0, 0, 0}})
#define U256_MAX ((u256){{UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX}})

/* Returns v as a u256. */
__attribute__((warn_unused_result))
u256 u256_from_u64(uint64_t v);

/* Narrows a to 64 bits.
 * Returns 0 on success, -1 when a >= 2^64 (then *out is unchanged).
 * out: output. a: input. */
__attribute__((warn_unused_result))
int u256_to_u64(uint64_t *out, const u256 *a);

/* *out = a + b.
 * Returns 0 on success, -1 when the sum is >= 2^256 (then *out is unchanged).
 * out: output. a, b: inputs. */
__attribute__((warn_unused_result))
int u256_add(u256 *out, const u256 *a, const u256 *b);

/* *out = a - b.
 * Returns 0 on success, -1 when b > a (then *out is unchanged).
 * out: output. a, b: inputs. */
__attribute__((warn_unused_result))
int u256_sub(u256 *out, const u256 *a, const u256 *b);

/* *out = a · b.
 * Returns 0 on success, -1 when the product is >= 2^256 (then *out is
 * unchanged). out: output. a, b: inputs. */
__attribute__((warn_unused_result))
int u256_mul(u256 *out, const u256 *a, const u256 *b);

/* Euclidean division: *q = floor(a / b), *r = a mod b.
 * Returns 0 on success, -1 when b is zero (then *q and *r are unchanged).
 * q: output, may be NULL when the quotient is not wanted.
 * r: output, may be NULL when the remainder is not wanted; when both are
 *    non-NULL they must point to different objects.
 * a: dividend. b: divisor. */
__attribute__((warn_unused_result))
int u256_divmod(u256 *q, u256 *r, const u256 *a, const u256 *b);

/* *out = floor(a · b / d), computed with an exact 512-bit intermediate
 * product (no precision is lost, nothing overflows early).
 * Returns 0 on success, -1 when d is zero or the result is >= 2^256 (then
 * *out is unchanged).
 * out: output. a, b: factors. d: divisor. */
__attribute__((warn_unused_result))
int u256_muldiv_floor(u256 *out, const u256 *a, const u256 *b, const u256 *d);

/* *out = ceil(a · b / d), exact 512-bit intermediate as u256_muldiv_floor.
 * Returns 0 on success, -1 when d is zero or the result is >= 2^256 (then
 * *out is unchanged). Note ceil can overflow where floor does not: when
 * floor(a·b/d) = 2^256-1 and d does not divide a·b.
 * out: output. a, b: factors. d: divisor. */
__attribute__((warn_unused_result))
int u256_muldiv_ceil(u256 *out, const u256 *a, const u256 *b, const u256 *d);

/* Compares two values.
 * Returns -1 when a < b, 0 when a == b, 1 when a > b.
 * a, b: inputs. */
__attribute__((warn_unused_result))
int u256_cmp(const u256 *a, const u256 *b);

/* Returns 1 when a is zero, 0 otherwise. a: input. */
__attribute__((warn_unused_result))
int u256_is_zero(const u256 *a);

/* *out = 10^n.
 * Returns 0 on success, -1 when n > U256_POW10_MAX (then *out is unchanged).
 * out: output. n: exponent. */
__attribute__((warn_unused_result))
int u256_pow10(u256 *out, unsigned n);

/* Parses a canonical decimal number: 1..78 ASCII digits, no sign, no
 * whitespace, no prefix, no leading zero unless the text is exactly "0", at
 * most 2^256-1. Every value has exactly one accepted spelling, the one
 * u256_to_dec produces.
 * Returns 0 on success, -1 on any violation (then *out is unchanged).
 * out: output. s, len: the text (need not be NUL-terminated; an embedded NUL
 * is rejected like any other non-digit). s may be NULL when len is 0. */
__attribute__((warn_unused_result))
int u256_from_dec(u256 *out, const char *s, size_t len);

/* u256_from_dec on a NUL-terminated string s. */
__attribute__((warn_unused_result))
int u256_from_dec_str(u256 *out, const char *s);

/* Formats a in canonical decimal ("0" for zero, no leading zeros).
 * out: output, NUL-terminated, at most U256_DEC_MAX bytes. a: input. */
void u256_to_dec(char out[U256_DEC_MAX], const u256 *a);

/* Parses hexadecimal: an optional "0x" or "0X" prefix, then 1..64 hex digits
 * of either case; leading zeros are allowed (so this accepts both JSON-RPC
 * quantities and fixed-width 32-byte words). Nothing else is accepted: no
 * sign, no whitespace, not a bare "0x".
 * Returns 0 on success, -1 otherwise (then *out is unchanged).
 * out: output. s, len: the text (need not be NUL-terminated). s may be NULL
 * when len is 0. */
__attribute__((warn_unused_result))
int u256_from_hex(u256 *out, const char *s, size_t len);

/* Formats a as a JSON-RPC quantity: "0x" then lowercase hex digits without
 * leading zeros; zero is "0x0".
 * out: output, NUL-terminated, at most U256_HEX_MAX bytes. a: input. */
void u256_to_hex(char out[U256_HEX_MAX], const u256 *a);

/* Writes a as 32 big-endian bytes (the EVM/ABI word layout).
 * out: output. a: input. */
void u256_to_be32(uint8_t out[U256_BE_LEN], const u256 *a);

/* Reads 32 big-endian bytes. out: output. in: input. */
void u256_from_be32(u256 *out, const uint8_t in[U256_BE_LEN]);

/* Reads len big-endian bytes (a shorter encoding is zero-extended on the
 * left; len 0 gives zero).
 * Returns 0 on success, -1 when len > 32 (then *out is unchanged).
 * out: output. in, len: input bytes (in may be NULL when len is 0). */
__attribute__((warn_unused_result))
int u256_from_be(u256 *out, const uint8_t *in, size_t len);

#endif
