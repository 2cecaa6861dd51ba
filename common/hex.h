/* hex: lowercase hexadecimal encoding and strict decoding. */
#ifndef COFFER_HEX_H
#define COFFER_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes, not counting the terminating NUL. */
#define HEX_ENCODED_LEN(n) (2 * (n))

/* Encodes in[0..in_len) as lowercase hex into out and NUL-terminates it.
 * out: output, must hold HEX_ENCODED_LEN(in_len) + 1 chars.
 * in: input bytes (may be NULL when in_len is 0). */
void hex_encode(char *out, const uint8_t *in, size_t in_len);

/* Same as hex_encode with a "0x" prefix: out must hold 2 + 2*in_len + 1. */
void hex_encode_0x(char *out, const uint8_t *in, size_t in_len);

/* Decodes hex text into bytes.
 * Returns 0 on success, -1 when the text is not an even number of hex digits
 * (after an optional "0x"/"0X" prefix) or does not fit in out_cap bytes.
 * out: output buffer of out_cap bytes; *out_len: set to bytes written.
 * in, in_len: the text (need not be NUL-terminated). On failure nothing
 * useful is in out and *out_len is 0. */
__attribute__((warn_unused_result))
int hex_decode(uint8_t *out, size_t out_cap, size_t *out_len,
               const char *in, size_t in_len);

/* Decodes NUL-terminated hex text that must be exactly out_len bytes long.
 * Returns 0 on success, -1 otherwise. An optional "0x" prefix is accepted. */
__attribute__((warn_unused_result))
int hex_decode_exact(uint8_t *out, size_t out_len, const char *in);

/* Value of one hex digit, or -1 when c is not one. */
int hex_digit_value(char c);

#endif
