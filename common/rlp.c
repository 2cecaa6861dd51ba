/* RLP encoder and strict decoder, written from the yellow paper's
 * appendix B and the ethereum.org RLP page. */
#include "rlp.h"

#include <stdlib.h>
#include <string.h>

const char *rlp_strerror(rlp_err err)
{
    switch (err) {
    case RLP_OK: return "success";
    case RLP_ERR_INVALID_ARG: return "invalid argument";
    case RLP_ERR_NOMEM: return "out of memory";
    case RLP_ERR_TOO_LARGE: return "encoding too large";
    case RLP_ERR_TRUNCATED: return "input ends inside an item header";
    case RLP_ERR_OVERRUN: return "item length runs past the end of the input";
    case RLP_ERR_NONCANONICAL_BYTE: return "single byte below 0x80 encoded with a length prefix";
    case RLP_ERR_NONCANONICAL_LENGTH: return "long length form used for a payload under 56 bytes";
    case RLP_ERR_LENGTH_LEADING_ZERO: return "long length has a leading zero byte";
    case RLP_ERR_TRAILING_BYTES: return "trailing bytes after the item";
    case RLP_ERR_DEPTH: return "lists nested too deep";
    case RLP_ERR_EXPECTED_STRING: return "expected a byte string, found a list";
    case RLP_ERR_EXPECTED_LIST: return "expected a list, found a byte string";
    case RLP_ERR_INT_LEADING_ZERO: return "integer has a leading zero byte";
    case RLP_ERR_INT_TOO_LARGE: return "integer too large";
    case RLP_ERR_WRONG_LENGTH: return "byte string has the wrong length";
    case RLP_ERR_TOO_MANY_ITEMS: return "list has too many items";
    case RLP_ERR_END_OF_LIST: return "no more items in the list";
    }
    return "unknown rlp error";
}

/* ---- Encoder ---------------------------------------------------------- */

void rlp_buf_init(rlp_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rlp_buf_dispose(rlp_buf *b)
{
    free(b->data);
    rlp_buf_init(b);
}

void rlp_buf_reset(rlp_buf *b)
{
    b->len = 0;
}

/* Makes room for extra more bytes. */
static rlp_err rlp_buf_reserve(rlp_buf *b, size_t extra)
{
    if (extra > RLP_MAX_ENCODED_LEN - b->len)
        return RLP_ERR_TOO_LARGE;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return RLP_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = (cap > RLP_MAX_ENCODED_LEN / 2) ? RLP_MAX_ENCODED_LEN : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return RLP_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return RLP_OK;
}

/* Writes the header for a payload of len bytes; base is 0x80 for strings and
 * 0xc0 for lists. Returns the header length. */
static size_t rlp_header(uint8_t hdr[RLP_MAX_HEADER_LEN], size_t len, uint8_t base)
{
    if (len < 56) {
        hdr[0] = (uint8_t)(base + len);
        return 1;
    }
    size_t ll = 0;
    for (size_t v = len; v != 0; v >>= 8)
        ll++;
    hdr[0] = (uint8_t)(base + 55 + ll);
    for (size_t i = 0; i < ll; i++)
        hdr[ll - i] = (uint8_t)(len >> (8 * i));
    return 1 + ll;
}

rlp_err rlp_put_bytes(rlp_buf *b, const uint8_t *data, size_t len)
{
    uint8_t hdr[RLP_MAX_HEADER_LEN];
    size_t hlen;
    rlp_err err;

    if (len == 1 && data[0] < 0x80) {
        hlen = 0;
    } else {
        hlen = rlp_header(hdr, len, 0x80);
        if (len > RLP_MAX_ENCODED_LEN - hlen)
            return RLP_ERR_TOO_LARGE;
    }
    err = rlp_buf_reserve(b, hlen + len);
    if (err != RLP_OK)
        return err;
    if (hlen) {
        memcpy(b->data + b->len, hdr, hlen);
        b->len += hlen;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
    }
    return RLP_OK;
}

rlp_err rlp_put_uint_be(rlp_buf *b, const uint8_t *be, size_t len)
{
    while (len > 0 && be[0] == 0) {
        be++;
        len--;
    }
    return rlp_put_bytes(b, len ? be : NULL, len);
}

rlp_err rlp_put_uint64(rlp_buf *b, uint64_t v)
{
    uint8_t be[8];
    for (unsigned i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (8 * (7 - i)));
    return rlp_put_uint_be(b, be, sizeof be);
}

rlp_err rlp_put_raw(rlp_buf *b, const uint8_t *enc, size_t len)
{
    rlp_err err = rlp_validate(NULL, enc, len, RLP_MAX_DEPTH);
    if (err != RLP_OK)
        return err;
    err = rlp_buf_reserve(b, len);
    if (err != RLP_OK)
        return err;
    memcpy(b->data + b->len, enc, len);
    b->len += len;
    return RLP_OK;
}

size_t rlp_list_begin(const rlp_buf *b)
{
    return b->len;
}

rlp_err rlp_list_end(rlp_buf *b, size_t mark)
{
    uint8_t hdr[RLP_MAX_HEADER_LEN];
    if (mark > b->len)
        return RLP_ERR_INVALID_ARG;
    size_t payload = b->len - mark;
    size_t hlen = rlp_header(hdr, payload, 0xc0);
    rlp_err err = rlp_buf_reserve(b, hlen);
    if (err != RLP_OK)
        return err;
    if (payload)
        memmove(b->data + mark + hlen, b->data + mark, payload);
    memcpy(b->data + mark, hdr, hlen);
    b->len += hlen;
    return RLP_OK;
}

/* ---- Decoder ---------------------------------------------------------- */

rlp_err rlp_decode_item(rlp_item *item, const uint8_t *in, size_t in_len)
{
    if (in_len == 0)
        return RLP_ERR_TRUNCATED;

    uint8_t prefix = in[0];
    if (prefix < 0x80) {
        item->type = RLP_TYPE_STRING;
        item->payload = in;
        item->payload_len = 1;
        item->item_len = 1;
        return RLP_OK;
    }

    rlp_type type = prefix < 0xc0 ? RLP_TYPE_STRING : RLP_TYPE_LIST;
    uint8_t base = type == RLP_TYPE_STRING ? 0x80 : 0xc0;
    unsigned short_len = (unsigned)(prefix - base); /* 0..63 */
    size_t hlen;
    size_t len;

    if (short_len < 56) {
        hlen = 1;
        len = short_len;
    } else {
        size_t ll = short_len - 55; /* 1..8 */
        if (in_len - 1 < ll)
            return RLP_ERR_TRUNCATED;
        if (in[1] == 0)
            return RLP_ERR_LENGTH_LEADING_ZERO;
        uint64_t v = 0;
        for (size_t i = 0; i < ll; i++)
            v = (v << 8) | in[1 + i];
        if (v < 56)
            return RLP_ERR_NONCANONICAL_LENGTH;
        hlen = 1 + ll;
        if (v > (uint64_t)(in_len - hlen))
            return RLP_ERR_OVERRUN;
        len = (size_t)v;
    }
    if (len > in_len - hlen)
        return RLP_ERR_OVERRUN;
    if (type == RLP_TYPE_STRING && len == 1 && in[1] < 0x80)
        return RLP_ERR_NONCANONICAL_BYTE;

    item->type = type;
    item->payload = in + hlen;
    item->payload_len = len;
    item->item_len = hlen + len;
    return RLP_OK;
}

rlp_err rlp_decode_single(rlp_item *item, const uint8_t *in, size_t in_len)
{
    rlp_err err = rlp_decode_item(item, in, in_len);
    if (err != RLP_OK)
        return err;
    if (item->item_len != in_len)
        return RLP_ERR_TRAILING_BYTES;
    return RLP_OK;
}

rlp_err rlp_iter_init(rlp_iter *it, const rlp_item *list)
{
    if (list->type != RLP_TYPE_LIST)
        return RLP_ERR_EXPECTED_LIST;
    it->pos = list->payload;
    it->left = list->payload_len;
    return RLP_OK;
}

bool rlp_iter_done(const rlp_iter *it)
{
    return it->left == 0;
}

rlp_err rlp_iter_next(rlp_iter *it, rlp_item *item)
{
    if (it->left == 0)
        return RLP_ERR_END_OF_LIST;
    rlp_err err = rlp_decode_item(item, it->pos, it->left);
    if (err != RLP_OK)
        return err;
    it->pos += item->item_len;
    it->left -= item->item_len;
    return RLP_OK;
}

/* Checks every item inside list, which sits at nesting depth `depth`. */
static rlp_err rlp_validate_list(const rlp_item *list, unsigned depth, unsigned max_depth)
{
    rlp_iter it;
    rlp_item item;
    rlp_err err;

    if (depth > max_depth)
        return RLP_ERR_DEPTH;
    err = rlp_iter_init(&it, list);
    if (err != RLP_OK)
        return err;
    while (!rlp_iter_done(&it)) {
        err = rlp_iter_next(&it, &item);
        if (err != RLP_OK)
            return err;
        if (item.type == RLP_TYPE_LIST) {
            err = rlp_validate_list(&item, depth + 1, max_depth);
            if (err != RLP_OK)
                return err;
        }
    }
    return RLP_OK;
}

rlp_err rlp_validate(rlp_item *item, const uint8_t *in, size_t in_len, unsigned max_depth)
{
    rlp_item top;
    rlp_err err;

    if (max_depth > RLP_MAX_DEPTH)
        return RLP_ERR_INVALID_ARG;
    err = rlp_decode_single(&top, in, in_len);
    if (err != RLP_OK)
        return err;
    if (top.type == RLP_TYPE_LIST) {
        err = rlp_validate_list(&top, 1, max_depth);
        if (err != RLP_OK)
            return err;
    }
    if (item)
        *item = top;
    return RLP_OK;
}

rlp_err rlp_decode_list(rlp_item *items, size_t cap, size_t *count, const rlp_item *list)
{
    rlp_iter it;
    rlp_item item;
    size_t n = 0;
    rlp_err err;

    *count = 0;
    err = rlp_iter_init(&it, list);
    if (err != RLP_OK)
        return err;
    while (!rlp_iter_done(&it)) {
        err = rlp_iter_next(&it, &item);
        if (err != RLP_OK)
            return err;
        if (n == cap)
            return RLP_ERR_TOO_MANY_ITEMS;
        items[n++] = item;
    }
    *count = n;
    return RLP_OK;
}

/* Common checks for integer items: a string without leading zero bytes of
 * at most max_len bytes. */
static rlp_err rlp_check_uint(const rlp_item *item, size_t max_len)
{
    if (item->type != RLP_TYPE_STRING)
        return RLP_ERR_EXPECTED_STRING;
    if (item->payload_len > 0 && item->payload[0] == 0)
        return RLP_ERR_INT_LEADING_ZERO;
    if (item->payload_len > max_len)
        return RLP_ERR_INT_TOO_LARGE;
    return RLP_OK;
}

rlp_err rlp_item_to_uint64(uint64_t *out, const rlp_item *item)
{
    rlp_err err = rlp_check_uint(item, 8);
    if (err != RLP_OK)
        return err;
    uint64_t v = 0;
    for (size_t i = 0; i < item->payload_len; i++)
        v = (v << 8) | item->payload[i];
    *out = v;
    return RLP_OK;
}

rlp_err rlp_item_to_uint256(uint8_t out[32], const rlp_item *item)
{
    rlp_err err = rlp_check_uint(item, 32);
    if (err != RLP_OK)
        return err;
    size_t n = item->payload_len;
    memset(out, 0, 32 - n);
    if (n)
        memcpy(out + 32 - n, item->payload, n);
    return RLP_OK;
}

rlp_err rlp_item_to_bytes(uint8_t *out, size_t len, const rlp_item *item)
{
    if (item->type != RLP_TYPE_STRING)
        return RLP_ERR_EXPECTED_STRING;
    if (item->payload_len != len)
        return RLP_ERR_WRONG_LENGTH;
    if (len)
        memcpy(out, item->payload, len);
    return RLP_OK;
}
