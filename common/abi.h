/* abi: Solidity contract ABI encoding and strict decoding for the
 * elementary types Coffer needs: uint8..uint256, address, bool, bytes1..32,
 * and the dynamic bytes and string. Tuples, arrays and signed integers are
 * not supported (ABI_ERR_UNSUPPORTED_TYPE).
 *
 * Types are named by text in canonical form, exactly as they enter the
 * selector: a call signature is "transfer(address,uint256)", a parameter
 * list is "address,uint256" ("" for none). Spaces, parameter names and the
 * aliases "uint"/"byte" are rejected, since they would give a wrong selector.
 *
 * 256-bit numbers are 32-byte big-endian arrays. Decoded bytes/string values
 * borrow from the decoded buffer; they are not NUL-terminated and strings
 * are not checked to be UTF-8.
 *
 * Pointers are non-NULL unless stated otherwise. */
#ifndef COFFER_ABI_H
#define COFFER_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ABI_WORD_LEN 32
#define ABI_SELECTOR_LEN 4
#define ABI_ADDRESS_LEN 20
/* Largest encoding the encoder builds or the decoder walks. */
#define ABI_MAX_ENCODED_LEN (SIZE_MAX / 4)
/* abi_decode_* flag: also require the canonical layout (dynamic tails in
 * parameter order right after the head, contiguous, nothing after the last
 * one). Without it offsets may point anywhere in bounds and trailing bytes
 * are ignored, as Solidity's own decoder allows. */
#define ABI_DECODE_STRICT 1u

typedef enum {
    ABI_OK = 0,
    /* Caller misuse: NULL data with a non-zero length, unknown flags. */
    ABI_ERR_INVALID_ARG,
    /* The signature or type list is not canonical ABI type text. */
    ABI_ERR_BAD_SIGNATURE,
    /* A valid Solidity type this module does not handle (intN, arrays,
     * tuples, fixed, function). */
    ABI_ERR_UNSUPPORTED_TYPE,
    /* Number of values differs from the number of types. */
    ABI_ERR_ARG_COUNT,
    /* A value's kind (or bytesN size) differs from its declared type. */
    ABI_ERR_ARG_TYPE,
    /* The output buffer is too small; *out_len says how much is needed. */
    ABI_ERR_BUFFER_TOO_SMALL,
    /* The encoding would exceed ABI_MAX_ENCODED_LEN. */
    ABI_ERR_TOO_LARGE,
    /* Calldata shorter than the 4-byte selector. */
    ABI_ERR_NO_SELECTOR,
    /* The selector (or event topic) is not the one expected. */
    ABI_ERR_SELECTOR_MISMATCH,
    /* Input shorter than the head words of the parameter list. */
    ABI_ERR_SHORT_INPUT,
    /* A dynamic value's offset does not leave room for its length word. */
    ABI_ERR_OFFSET_RANGE,
    /* A dynamic value's length runs past the end of the input. */
    ABI_ERR_LENGTH_RANGE,
    /* The zero padding after dynamic data is cut off by the input's end. */
    ABI_ERR_PADDING_MISSING,
    /* Non-zero bytes where the encoding requires zero padding (after
     * dynamic data or after a bytesN value). */
    ABI_ERR_DIRTY_PADDING,
    /* An address word with non-zero upper 12 bytes. */
    ABI_ERR_DIRTY_ADDRESS,
    /* A bool word other than 0 or 1. */
    ABI_ERR_BAD_BOOL,
    /* An unsigned value too large for its type (or for uint64_t). */
    ABI_ERR_UINT_RANGE,
    /* Strict decoding: a dynamic offset is not where the canonical
     * encoding puts it. */
    ABI_ERR_NONCANONICAL_OFFSET,
    /* Strict decoding: bytes after the encoding. */
    ABI_ERR_TRAILING_BYTES,
    /* An event log with a different number of topics than expected. */
    ABI_ERR_TOPIC_COUNT,
} abi_err;

/* Returns a static, human-readable description of err (never NULL). */
const char *abi_strerror(abi_err err);

typedef enum {
    ABI_KIND_UINT = 1,     /* uint8..uint256 */
    ABI_KIND_ADDRESS,
    ABI_KIND_BOOL,
    ABI_KIND_FIXED_BYTES,  /* bytes1..bytes32 */
    ABI_KIND_BYTES,
    ABI_KIND_STRING,
} abi_kind;

/* One value to encode or one decoded value.
 * Static kinds: word is the 32-byte ABI word (uint big-endian, address in
 * the low 20 bytes, bool 0/1, bytesN left-aligned with len = N).
 * bytes/string: ptr, len describe the data (ptr borrowed, may be NULL when
 * len is 0); word is unused. Build values with the abi_arg_* functions. */
typedef struct {
    abi_kind kind;
    uint8_t word[ABI_WORD_LEN];
    const uint8_t *ptr;
    size_t len;
} abi_value;

/* ---- Selectors and topics --------------------------------------------- */

/* Computes the function selector: the first 4 bytes of keccak256(signature).
 * The signature text is hashed as given (see abi_encode_call for checks).
 * out: output, 4 bytes. signature: NUL-terminated, e.g.
 * "transfer(address,uint256)". */
void abi_selector(uint8_t out[ABI_SELECTOR_LEN], const char *signature);

/* Computes an event's topic 0: keccak256(signature).
 * out: output, 32 bytes. signature: NUL-terminated, e.g.
 * "Transfer(address,address,uint256)". */
void abi_event_topic(uint8_t out[ABI_WORD_LEN], const char *signature);

/* ---- Values ----------------------------------------------------------- */

/* uint<M> from 32 bytes big-endian. be: in, 32 bytes. */
abi_value abi_arg_uint256(const uint8_t be[ABI_WORD_LEN]);
/* uint<M> from a native integer (uint8, uint16, ... uint256). */
abi_value abi_arg_uint64(uint64_t v);
/* address from its 20 bytes. addr: in. */
abi_value abi_arg_address(const uint8_t addr[ABI_ADDRESS_LEN]);
abi_value abi_arg_bool(bool v);
/* bytes32 from 32 bytes. b: in. */
abi_value abi_arg_bytes32(const uint8_t b[ABI_WORD_LEN]);
/* bytesN from n bytes, n in 1..32 (other n make the encoder fail with
 * ABI_ERR_ARG_TYPE). b: in, n bytes. */
abi_value abi_arg_fixed_bytes(const uint8_t *b, size_t n);
/* Dynamic bytes; data is borrowed and must outlive the value's use.
 * data may be NULL when len is 0. */
abi_value abi_arg_bytes(const uint8_t *data, size_t len);
/* Dynamic string from NUL-terminated text (borrowed). */
abi_value abi_arg_string(const char *s);
/* Dynamic string of len bytes (borrowed; may contain NUL; s may be NULL
 * when len is 0). */
abi_value abi_arg_string_n(const char *s, size_t len);

/* Reads a decoded uint value as uint64_t.
 * Returns ABI_OK, ABI_ERR_ARG_TYPE (not a uint) or ABI_ERR_UINT_RANGE
 * (value >= 2^64). out: output (untouched on failure). v: in. */
__attribute__((warn_unused_result))
abi_err abi_value_to_uint64(uint64_t *out, const abi_value *v);

/* ---- Encoding --------------------------------------------------------- */

/* Encodes values as the parameter tuple of `types` (no selector), like
 * `cast abi-encode "f(<types>)" ...`. Each value must have its type's kind;
 * a uint must fit its declared width, a bytesN value must have len N.
 * Returns ABI_OK; ABI_ERR_BAD_SIGNATURE or ABI_ERR_UNSUPPORTED_TYPE for the
 * type text; ABI_ERR_ARG_COUNT, ABI_ERR_ARG_TYPE, ABI_ERR_UINT_RANGE,
 * ABI_ERR_DIRTY_ADDRESS, ABI_ERR_BAD_BOOL, ABI_ERR_DIRTY_PADDING for the
 * values; ABI_ERR_INVALID_ARG for a NULL ptr with len > 0;
 * ABI_ERR_TOO_LARGE; ABI_ERR_BUFFER_TOO_SMALL.
 * out, out_cap: output buffer (out may be NULL when out_cap is 0, to learn
 * the size). out_len: output; the bytes written on success, the size needed
 * on ABI_ERR_BUFFER_TOO_SMALL, 0 on any other failure.
 * types: NUL-terminated, e.g. "address,uint256" or "".
 * args, nargs: the values (args may be NULL when nargs is 0). */
__attribute__((warn_unused_result))
abi_err abi_encode_params(uint8_t *out, size_t out_cap, size_t *out_len,
                          const char *types, const abi_value *args, size_t nargs);

/* Encodes a call: 4-byte selector of signature followed by the parameter
 * tuple, like `cast calldata`. Returns and arguments as abi_encode_params;
 * signature must be name "(" types ")" with name made of [A-Za-z0-9_$] not
 * starting with a digit (else ABI_ERR_BAD_SIGNATURE). */
__attribute__((warn_unused_result))
abi_err abi_encode_call(uint8_t *out, size_t out_cap, size_t *out_len,
                        const char *signature, const abi_value *args, size_t nargs);

/* ---- Decoding --------------------------------------------------------- */

/* Decodes a parameter tuple (a call's return data, or calldata after the
 * selector). Always checked: the head is present; every offset and length
 * fits the input; dynamic data is followed by its zero padding inside the
 * input; address words have zero upper 12 bytes; bools are 0 or 1; uint<M>
 * values fit M bits; bytesN words are zero after N bytes. With
 * ABI_DECODE_STRICT also the canonical layout (see the flag).
 * Returns ABI_OK; type-text errors as abi_encode_params; ABI_ERR_ARG_COUNT
 * when nout differs from the number of types; ABI_ERR_INVALID_ARG for
 * unknown flags or NULL data with len > 0; any decoding error above.
 * out, nout: output values (out may be NULL when nout is 0; contents
 * unspecified on failure); bytes/string values point into data.
 * types: NUL-terminated type list. data, len: the encoding (data may be
 * NULL when len is 0). flags: 0 or ABI_DECODE_STRICT. */
__attribute__((warn_unused_result))
abi_err abi_decode_params(abi_value *out, size_t nout, const char *types,
                          const uint8_t *data, size_t len, unsigned flags);

/* Decodes calldata for signature: checks the selector
 * (ABI_ERR_NO_SELECTOR, ABI_ERR_SELECTOR_MISMATCH), then decodes the rest as
 * abi_decode_params does. Arguments as abi_decode_params with calldata, len
 * the whole calldata including the selector. */
__attribute__((warn_unused_result))
abi_err abi_decode_call(abi_value *out, size_t nout, const char *signature,
                        const uint8_t *calldata, size_t len, unsigned flags);

/* Decodes the standard revert payload Error(string) (selector 0x08c379a0),
 * strictly. Returns ABI_OK, ABI_ERR_NO_SELECTOR, ABI_ERR_SELECTOR_MISMATCH
 * (some other error, e.g. Panic(uint256) or a custom error) or a decoding
 * error.
 * msg, msg_len: output, the reason text, borrowed from data (not
 * NUL-terminated, not checked to be UTF-8). data, len: the revert data. */
__attribute__((warn_unused_result))
abi_err abi_decode_revert(const uint8_t **msg, size_t *msg_len,
                          const uint8_t *data, size_t len);

/* A decoded ERC-20 Transfer(address indexed from, address indexed to,
 * uint256 value) log. */
typedef struct {
    uint8_t from[ABI_ADDRESS_LEN];
    uint8_t to[ABI_ADDRESS_LEN];
    uint8_t value[ABI_WORD_LEN]; /* big-endian */
} abi_transfer_log;

/* Decodes an ERC-20 Transfer log. Requires exactly 3 topics (an ERC-721
 * Transfer has 4 and is refused), topic 0 equal to
 * keccak256("Transfer(address,address,uint256)"), clean address topics and
 * data of exactly one word.
 * Returns ABI_OK, ABI_ERR_TOPIC_COUNT, ABI_ERR_SELECTOR_MISMATCH,
 * ABI_ERR_DIRTY_ADDRESS, ABI_ERR_SHORT_INPUT or ABI_ERR_TRAILING_BYTES.
 * out: output (unspecified on failure). topics, n_topics: n_topics 32-byte
 * topics back to back. data, data_len: the log data. */
__attribute__((warn_unused_result))
abi_err abi_decode_transfer_log(abi_transfer_log *out, const uint8_t *topics, size_t n_topics,
                                const uint8_t *data, size_t data_len);

#endif
