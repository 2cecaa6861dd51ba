/* jsonrpc: JSON-RPC 2.0 envelopes and Ethereum's hex value encodings, over
 * jansson. Pure functions: no I/O, no global state, thread-safe.
 *
 * Requests: jsonrpc_request_encode builds {"jsonrpc":"2.0","id":N,
 * "method":M,"params":[...]} as compact text.
 *
 * Responses are parsed strictly (jsonrpc_response_parse): one JSON object
 * (batches are refused), duplicate member names and \u0000 refused,
 * "jsonrpc" exactly "2.0", "id" the integer that was sent, exactly one of
 * "result" and "error", an error object with an integer "code", a string
 * "message" and an optional "data". Members the specification does not
 * define are ignored (providers add their own). A JSON-RPC error object is
 * a well-formed answer, not a parse failure.
 *
 * Hex values (Ethereum JSON-RPC "hex value encoding"):
 * - QUANTITY: a JSON string "0x" followed by 1..64 hex digits (either case).
 *   The specification forbids leading zeros ("0x0400"); geth, erigon,
 *   nethermind, besu, reth and anvil never send them but older nodes did,
 *   so they are accepted as long as the text stays within 64 digits. The
 *   value must fit the target width. "0x", "0X1", "1", numbers, signs,
 *   blanks and anything longer than 64 digits are refused.
 * - DATA: a JSON string "0x" followed by an even number of hex digits
 *   (either case; "0x" is zero bytes).
 *
 * Errors: every function that can fail takes a jsonrpc_err (may be NULL)
 * and writes one line saying what failed, prefixed with the caller's name
 * for the value ("what", e.g. "receipt.gasUsed"), e.g.
 *     receipt.gasUsed: expected a hex quantity, got "0xzz"
 * Offending text from the peer is quoted, truncated and escaped.
 *
 * Pointers are non-NULL unless stated otherwise. */
#ifndef COFFER_JSONRPC_H
#define COFFER_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "u256.h"

/* Size of an error message buffer. */
#define JSONRPC_ERR_MAX 256
/* Largest request id (ids stay exact in any JSON implementation). */
#define JSONRPC_ID_MAX ((uint64_t)1 << 53)
/* Most hex digits a quantity may have (256 bits). */
#define JSONRPC_QUANTITY_DIGITS_MAX 64
/* Buffer size for jsonrpc_format_u64: "0x" + 16 digits + NUL. */
#define JSONRPC_U64_HEX_MAX 19

/* A failure description, one line, NUL-terminated. */
typedef struct {
    char msg[JSONRPC_ERR_MAX];
} jsonrpc_err;

/* Writes a printf-style message into err (err may be NULL: then nothing).
 * For callers that parse on top of this module. */
void jsonrpc_err_set(jsonrpc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Describes a JSON value for an error message: a string quoted, escaped
 * and cut to about 40 characters, otherwise its type ("null", "an object",
 * "a number", ...). Returns buf. v may be NULL ("nothing"). */
const char *jsonrpc_describe(char *buf, size_t buf_len, const json_t *v);

/* ---- Envelopes ---------------------------------------------------------- */

/* Builds a request as compact JSON text.
 * Returns 0, or -1 (err says why: id above JSONRPC_ID_MAX, params neither
 * NULL nor an array, empty method, out of memory).
 * out: output, malloc'd NUL-terminated text (free with free()); *out_len
 * its length. id: the request id, echoed by the server. method: the method
 * name. params: an array (borrowed, not modified) or NULL for []. */
__attribute__((warn_unused_result))
int jsonrpc_request_encode(char **out, size_t *out_len, jsonrpc_err *err, uint64_t id,
                           const char *method, const json_t *params);

/* A parsed response. result and the error fields borrow from root. */
typedef struct {
    json_t *root;              /* owned; released by jsonrpc_response_dispose */
    bool is_error;
    const json_t *result;      /* when !is_error: the result (may be JSON null) */
    int64_t error_code;        /* when is_error */
    const char *error_message; /* when is_error: NUL-terminated, may be "" */
    const json_t *error_data;  /* when is_error: "data" or NULL when absent */
} jsonrpc_response;

/* Parses one response body (see the rules at the top of this file).
 * Returns 0 (out filled; dispose it), or -1 (err says why; out is empty
 * and needs no dispose, though disposing it is harmless).
 * out: output. body, len: the text (need not be NUL-terminated; body may
 * be NULL when len is 0). expected_id: the id that was sent. */
__attribute__((warn_unused_result))
int jsonrpc_response_parse(jsonrpc_response *out, jsonrpc_err *err, const char *body, size_t len,
                           uint64_t expected_id);

/* Releases a response (its fields become empty). r may be NULL. */
void jsonrpc_response_dispose(jsonrpc_response *r);

/* ---- Hex values --------------------------------------------------------- */

/* Reads a QUANTITY that must fit 64 bits.
 * Returns 0, or -1 (err says why; *out unchanged).
 * out: output. v: the value (NULL means missing). what: its name. */
__attribute__((warn_unused_result))
int jsonrpc_quantity_u64(uint64_t *out, jsonrpc_err *err, const json_t *v, const char *what);

/* Reads a QUANTITY up to 2^256-1. Returns as jsonrpc_quantity_u64. */
__attribute__((warn_unused_result))
int jsonrpc_quantity_u256(u256 *out, jsonrpc_err *err, const json_t *v, const char *what);

/* Reads DATA of at most cap bytes.
 * Returns 0, or -1 (err says why; *out_len 0, out unspecified).
 * out, cap: output buffer (out may be NULL when cap is 0); *out_len: bytes
 * written. v: the value (NULL means missing). what: its name. */
__attribute__((warn_unused_result))
int jsonrpc_data(uint8_t *out, size_t cap, size_t *out_len, jsonrpc_err *err, const json_t *v,
                 const char *what);

/* Reads DATA of exactly len bytes (a hash is 32, an address 20).
 * Returns 0, or -1 (err says why; out unspecified). */
__attribute__((warn_unused_result))
int jsonrpc_data_fixed(uint8_t *out, size_t len, jsonrpc_err *err, const json_t *v, const char *what);

/* Reads DATA of at most max_len bytes into new memory.
 * Returns 0 with *out malloc'd (NULL when the data is empty) and *out_len
 * its length, or -1 (err says why; *out NULL, *out_len 0). */
__attribute__((warn_unused_result))
int jsonrpc_data_alloc(uint8_t **out, size_t *out_len, size_t max_len, jsonrpc_err *err,
                       const json_t *v, const char *what);

/* Formats v as a canonical QUANTITY ("0x0", "0x2a").
 * out: output, NUL-terminated, at most JSONRPC_U64_HEX_MAX bytes. */
void jsonrpc_format_u64(char out[JSONRPC_U64_HEX_MAX], uint64_t v);

/* New JSON strings for request parameters: a canonical QUANTITY, or DATA
 * ("0x" + lowercase hex; data may be NULL when len is 0). NULL when out of
 * memory. The caller owns the reference. */
json_t *jsonrpc_json_u64(uint64_t v);
json_t *jsonrpc_json_u256(const u256 *v);
json_t *jsonrpc_json_data(const uint8_t *data, size_t len);

#endif
