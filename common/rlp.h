/* rlp: Ethereum Recursive Length Prefix encoding (yellow paper appendix B).
 *
 * Encoder: items are appended to a caller-owned growable buffer; lists are
 * opened with rlp_list_begin and closed with rlp_list_end, which inserts the
 * list header in front of the payload written in between.
 *
 * Decoder: strict and canonical. Everything the encoder cannot produce is
 * rejected: truncated headers, payloads running past the input, long
 * lengths with a leading zero byte, the long form for payloads under 56
 * bytes, a single byte below 0x80 wrapped as 0x81xx, and (for integers)
 * leading zero bytes. Decoded items borrow from the input buffer.
 *
 * Pointers are non-NULL unless stated otherwise. */
#ifndef COFFER_RLP_H
#define COFFER_RLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard limit on list nesting accepted by the recursive functions. */
#define RLP_MAX_DEPTH 64
/* Nesting limit suitable for transactions (access lists nest 3 deep). */
#define RLP_DEFAULT_DEPTH 16
/* Largest encoding the encoder will build. */
#define RLP_MAX_ENCODED_LEN (SIZE_MAX / 2)
/* Largest header (prefix byte plus up to 8 length bytes). */
#define RLP_MAX_HEADER_LEN 9

typedef enum {
    RLP_OK = 0,
    /* Caller misuse (a list mark past the end of the buffer, a depth limit
     * above RLP_MAX_DEPTH). */
    RLP_ERR_INVALID_ARG,
    /* Memory allocation failed; the buffer keeps its previous content. */
    RLP_ERR_NOMEM,
    /* The encoding would exceed RLP_MAX_ENCODED_LEN. */
    RLP_ERR_TOO_LARGE,
    /* The input ends inside an item's header (includes empty input). */
    RLP_ERR_TRUNCATED,
    /* The declared payload length runs past the end of the input. */
    RLP_ERR_OVERRUN,
    /* A single byte below 0x80 encoded as 0x81 followed by that byte. */
    RLP_ERR_NONCANONICAL_BYTE,
    /* Long-form header used for a payload shorter than 56 bytes. */
    RLP_ERR_NONCANONICAL_LENGTH,
    /* Long-form length with a leading zero byte. */
    RLP_ERR_LENGTH_LEADING_ZERO,
    /* Bytes left over after the one item that was expected. */
    RLP_ERR_TRAILING_BYTES,
    /* Lists nested deeper than the depth limit. */
    RLP_ERR_DEPTH,
    /* A list was found where a byte string was expected. */
    RLP_ERR_EXPECTED_STRING,
    /* A byte string was found where a list was expected. */
    RLP_ERR_EXPECTED_LIST,
    /* An integer with a leading zero byte (zero itself must be empty). */
    RLP_ERR_INT_LEADING_ZERO,
    /* An integer too large for the requested width. */
    RLP_ERR_INT_TOO_LARGE,
    /* A byte string of a length other than the one required. */
    RLP_ERR_WRONG_LENGTH,
    /* A list with more items than the caller's array holds. */
    RLP_ERR_TOO_MANY_ITEMS,
    /* rlp_iter_next called after the last item. */
    RLP_ERR_END_OF_LIST,
} rlp_err;

/* Returns a static, human-readable description of err (never NULL). */
const char *rlp_strerror(rlp_err err);

/* ---- Encoder ---------------------------------------------------------- */

/* Growable output buffer. data[0..len) is the encoding so far and may be
 * read directly; the other fields are private. data is NULL until the first
 * write. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} rlp_buf;

/* Initialises an empty buffer; allocates nothing.
 * b: output. */
void rlp_buf_init(rlp_buf *b);

/* Frees the buffer's memory and leaves it empty (initialised again).
 * b: in/out, an initialised buffer. */
void rlp_buf_dispose(rlp_buf *b);

/* Empties the buffer but keeps its memory for reuse.
 * b: in/out, an initialised buffer. */
void rlp_buf_reset(rlp_buf *b);

/* Appends a byte string item.
 * Returns RLP_OK, RLP_ERR_NOMEM or RLP_ERR_TOO_LARGE (the buffer is
 * unchanged on failure).
 * b: in/out. data, len: the bytes (data may be NULL when len is 0; must not
 * point into b). */
__attribute__((warn_unused_result))
rlp_err rlp_put_bytes(rlp_buf *b, const uint8_t *data, size_t len);

/* Appends an unsigned integer given as big-endian bytes; leading zero bytes
 * are stripped, so zero (any number of zero bytes, or len 0) encodes as
 * 0x80. Returns as rlp_put_bytes.
 * b: in/out. be, len: the big-endian integer (be may be NULL when len is 0). */
__attribute__((warn_unused_result))
rlp_err rlp_put_uint_be(rlp_buf *b, const uint8_t *be, size_t len);

/* Appends an unsigned integer. Returns as rlp_put_bytes.
 * b: in/out. v: the value. */
__attribute__((warn_unused_result))
rlp_err rlp_put_uint64(rlp_buf *b, uint64_t v);

/* Appends one already-encoded item verbatim after checking that enc is
 * exactly one canonical item (nesting at most RLP_MAX_DEPTH).
 * Returns RLP_OK, a decoding error describing why enc is not one canonical
 * item, RLP_ERR_NOMEM or RLP_ERR_TOO_LARGE (buffer unchanged on failure).
 * b: in/out. enc, len: the encoded item (must not point into b). */
__attribute__((warn_unused_result))
rlp_err rlp_put_raw(rlp_buf *b, const uint8_t *enc, size_t len);

/* Opens a list: returns the mark to pass to rlp_list_end. Items appended
 * until then form the list's payload. Lists nest; close the innermost
 * first. Cannot fail.
 * b: in, the buffer. */
size_t rlp_list_begin(const rlp_buf *b);

/* Closes the list opened at mark by inserting its header in front of the
 * payload written since.
 * Returns RLP_OK, RLP_ERR_INVALID_ARG (mark beyond the buffer),
 * RLP_ERR_NOMEM or RLP_ERR_TOO_LARGE (buffer unchanged on failure).
 * b: in/out. mark: the value rlp_list_begin returned for this list. */
__attribute__((warn_unused_result))
rlp_err rlp_list_end(rlp_buf *b, size_t mark);

/* ---- Decoder ---------------------------------------------------------- */

typedef enum {
    RLP_TYPE_STRING = 0,
    RLP_TYPE_LIST = 1,
} rlp_type;

/* One decoded item; payload borrows from the decoded input. */
typedef struct {
    rlp_type type;
    const uint8_t *payload; /* string bytes or the list's encoded items */
    size_t payload_len;
    size_t item_len;        /* header plus payload: bytes the item occupies */
} rlp_item;

/* Decodes the header of the item at the start of in and checks it is
 * canonical; the payload of a list is not examined (see rlp_iter_*,
 * rlp_validate). Bytes after the item are allowed: item->item_len says
 * where the next one starts.
 * Returns RLP_OK, RLP_ERR_TRUNCATED, RLP_ERR_OVERRUN,
 * RLP_ERR_NONCANONICAL_BYTE, RLP_ERR_NONCANONICAL_LENGTH or
 * RLP_ERR_LENGTH_LEADING_ZERO.
 * item: output (unspecified on failure). in, in_len: the input. */
__attribute__((warn_unused_result))
rlp_err rlp_decode_item(rlp_item *item, const uint8_t *in, size_t in_len);

/* Like rlp_decode_item, but in must be exactly one item: returns
 * RLP_ERR_TRAILING_BYTES when bytes follow it. Only the header is checked. */
__attribute__((warn_unused_result))
rlp_err rlp_decode_single(rlp_item *item, const uint8_t *in, size_t in_len);

/* Checks that in is exactly one canonical item, recursing into lists, with
 * lists nested at most max_depth deep (a string has depth 0, [] depth 1,
 * [[]] depth 2). Returns RLP_OK, any decoding error above, RLP_ERR_DEPTH, or
 * RLP_ERR_INVALID_ARG when max_depth > RLP_MAX_DEPTH.
 * item: output, the top-level item (unspecified on failure); may be NULL.
 * in, in_len: the input. max_depth: the nesting limit. */
__attribute__((warn_unused_result))
rlp_err rlp_validate(rlp_item *item, const uint8_t *in, size_t in_len, unsigned max_depth);

/* Iterator over the items of a list's payload. Fields are private. */
typedef struct {
    const uint8_t *pos;
    size_t left;
} rlp_iter;

/* Starts iterating over list's items.
 * Returns RLP_OK or RLP_ERR_EXPECTED_LIST.
 * it: output. list: in, a decoded item. */
__attribute__((warn_unused_result))
rlp_err rlp_iter_init(rlp_iter *it, const rlp_item *list);

/* Returns true when the iterator has no more items. it: in. */
bool rlp_iter_done(const rlp_iter *it);

/* Decodes the next item's header (as rlp_decode_item) and advances past it.
 * The item must fit inside the list's payload (else RLP_ERR_OVERRUN or
 * RLP_ERR_TRUNCATED). Returns RLP_OK, a decoding error (the iterator is
 * then left unchanged) or RLP_ERR_END_OF_LIST when done.
 * it: in/out. item: output. */
__attribute__((warn_unused_result))
rlp_err rlp_iter_next(rlp_iter *it, rlp_item *item);

/* Decodes all items of a list's payload (headers only) into items.
 * Returns RLP_OK, RLP_ERR_EXPECTED_LIST, a decoding error, or
 * RLP_ERR_TOO_MANY_ITEMS when the list has more than cap items.
 * items: output, array of cap items. count: output, items decoded.
 * list: in, a decoded list item. */
__attribute__((warn_unused_result))
rlp_err rlp_decode_list(rlp_item *items, size_t cap, size_t *count, const rlp_item *list);

/* Reads a canonical unsigned integer (byte string without leading zero
 * bytes; empty means zero).
 * Returns RLP_OK, RLP_ERR_EXPECTED_STRING, RLP_ERR_INT_LEADING_ZERO or
 * RLP_ERR_INT_TOO_LARGE (more than 8 bytes).
 * out: output (untouched on failure). item: in. */
__attribute__((warn_unused_result))
rlp_err rlp_item_to_uint64(uint64_t *out, const rlp_item *item);

/* Same as rlp_item_to_uint64 for up to 256 bits, written as 32 bytes
 * big-endian; RLP_ERR_INT_TOO_LARGE above 32 bytes.
 * out: output, 32 bytes (untouched on failure). item: in. */
__attribute__((warn_unused_result))
rlp_err rlp_item_to_uint256(uint8_t out[32], const rlp_item *item);

/* Copies a byte string that must be exactly len bytes long (an address is
 * 20). Returns RLP_OK, RLP_ERR_EXPECTED_STRING or RLP_ERR_WRONG_LENGTH.
 * out, len: output buffer and the required length. item: in. */
__attribute__((warn_unused_result))
rlp_err rlp_item_to_bytes(uint8_t *out, size_t len, const rlp_item *item);

#endif
