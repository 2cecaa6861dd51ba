/* Solidity ABI encoder and strict decoder for elementary types, written
 * from the Solidity ABI specification ("Contract ABI Specification",
 * formal specification of the encoding). */
#include "abi.h"

#include "keccak.h"

#include <string.h>

_Static_assert(SIZE_MAX <= UINT64_MAX, "size_t wider than 64 bits");

const char *abi_strerror(abi_err err)
{
    switch (err) {
    case ABI_OK: return "success";
    case ABI_ERR_INVALID_ARG: return "invalid argument";
    case ABI_ERR_BAD_SIGNATURE: return "malformed or non-canonical signature or type list";
    case ABI_ERR_UNSUPPORTED_TYPE: return "unsupported ABI type";
    case ABI_ERR_ARG_COUNT: return "number of values differs from number of types";
    case ABI_ERR_ARG_TYPE: return "value does not match its declared type";
    case ABI_ERR_BUFFER_TOO_SMALL: return "output buffer too small";
    case ABI_ERR_TOO_LARGE: return "encoding too large";
    case ABI_ERR_NO_SELECTOR: return "calldata shorter than a selector";
    case ABI_ERR_SELECTOR_MISMATCH: return "unexpected selector or topic";
    case ABI_ERR_SHORT_INPUT: return "input shorter than the head words";
    case ABI_ERR_OFFSET_RANGE: return "dynamic offset out of range";
    case ABI_ERR_LENGTH_RANGE: return "dynamic length runs past the input";
    case ABI_ERR_PADDING_MISSING: return "padding after dynamic data is missing";
    case ABI_ERR_DIRTY_PADDING: return "non-zero padding bytes";
    case ABI_ERR_DIRTY_ADDRESS: return "address word has non-zero upper bytes";
    case ABI_ERR_BAD_BOOL: return "bool word is neither 0 nor 1";
    case ABI_ERR_UINT_RANGE: return "unsigned integer out of range for its type";
    case ABI_ERR_NONCANONICAL_OFFSET: return "dynamic offset not in canonical position";
    case ABI_ERR_TRAILING_BYTES: return "trailing bytes after the encoding";
    case ABI_ERR_TOPIC_COUNT: return "wrong number of log topics";
    }
    return "unknown abi error";
}

/* ---- Selectors -------------------------------------------------------- */

void abi_selector(uint8_t out[ABI_SELECTOR_LEN], const char *signature)
{
    uint8_t h[KECCAK256_DIGEST_LEN];
    keccak256(h, (const uint8_t *)signature, strlen(signature));
    memcpy(out, h, ABI_SELECTOR_LEN);
}

void abi_event_topic(uint8_t out[ABI_WORD_LEN], const char *signature)
{
    keccak256(out, (const uint8_t *)signature, strlen(signature));
}

/* ---- Values ----------------------------------------------------------- */

static abi_value abi_value_empty(abi_kind kind)
{
    abi_value v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    return v;
}

abi_value abi_arg_uint256(const uint8_t be[ABI_WORD_LEN])
{
    abi_value v = abi_value_empty(ABI_KIND_UINT);
    memcpy(v.word, be, ABI_WORD_LEN);
    return v;
}

static void abi_word_put_u64(uint8_t word[ABI_WORD_LEN], uint64_t x)
{
    memset(word, 0, ABI_WORD_LEN);
    for (unsigned i = 0; i < 8; i++)
        word[ABI_WORD_LEN - 1 - i] = (uint8_t)(x >> (8 * i));
}

abi_value abi_arg_uint64(uint64_t x)
{
    abi_value v = abi_value_empty(ABI_KIND_UINT);
    abi_word_put_u64(v.word, x);
    return v;
}

abi_value abi_arg_address(const uint8_t addr[ABI_ADDRESS_LEN])
{
    abi_value v = abi_value_empty(ABI_KIND_ADDRESS);
    memcpy(v.word + ABI_WORD_LEN - ABI_ADDRESS_LEN, addr, ABI_ADDRESS_LEN);
    return v;
}

abi_value abi_arg_bool(bool b)
{
    abi_value v = abi_value_empty(ABI_KIND_BOOL);
    v.word[ABI_WORD_LEN - 1] = b ? 1 : 0;
    return v;
}

abi_value abi_arg_bytes32(const uint8_t b[ABI_WORD_LEN])
{
    return abi_arg_fixed_bytes(b, ABI_WORD_LEN);
}

abi_value abi_arg_fixed_bytes(const uint8_t *b, size_t n)
{
    abi_value v = abi_value_empty(ABI_KIND_FIXED_BYTES);
    v.len = n;
    if (n >= 1 && n <= ABI_WORD_LEN)
        memcpy(v.word, b, n);
    return v;
}

abi_value abi_arg_bytes(const uint8_t *data, size_t len)
{
    abi_value v = abi_value_empty(ABI_KIND_BYTES);
    v.ptr = data;
    v.len = len;
    return v;
}

abi_value abi_arg_string(const char *s)
{
    return abi_arg_string_n(s, strlen(s));
}

abi_value abi_arg_string_n(const char *s, size_t len)
{
    abi_value v = abi_value_empty(ABI_KIND_STRING);
    v.ptr = (const uint8_t *)s;
    v.len = len;
    return v;
}

static bool abi_all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

abi_err abi_value_to_uint64(uint64_t *out, const abi_value *v)
{
    if (v->kind != ABI_KIND_UINT)
        return ABI_ERR_ARG_TYPE;
    if (!abi_all_zero(v->word, ABI_WORD_LEN - 8))
        return ABI_ERR_UINT_RANGE;
    uint64_t x = 0;
    for (unsigned i = ABI_WORD_LEN - 8; i < ABI_WORD_LEN; i++)
        x = (x << 8) | v->word[i];
    *out = x;
    return ABI_OK;
}

/* ---- Type text -------------------------------------------------------- */

typedef struct {
    abi_kind kind;
    size_t size; /* uint: bits; bytesN: N; otherwise 0 */
} abi_type;

static bool abi_is_dynamic(const abi_type *t)
{
    return t->kind == ABI_KIND_BYTES || t->kind == ABI_KIND_STRING;
}

static bool abi_token_is(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

static bool abi_token_has_prefix(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(s, lit, l) == 0;
}

/* Parses 1-3 decimal digits without a leading zero; 0 when invalid. */
static size_t abi_parse_width(const char *s, size_t n)
{
    size_t v = 0;
    if (n == 0 || n > 3 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    return v;
}

static abi_err abi_parse_type(abi_type *t, const char *s, size_t n)
{
    t->size = 0;
    if (memchr(s, '[', n) != NULL)
        return ABI_ERR_UNSUPPORTED_TYPE; /* array */
    if (abi_token_is(s, n, "address")) {
        t->kind = ABI_KIND_ADDRESS;
    } else if (abi_token_is(s, n, "bool")) {
        t->kind = ABI_KIND_BOOL;
    } else if (abi_token_is(s, n, "string")) {
        t->kind = ABI_KIND_STRING;
    } else if (abi_token_is(s, n, "bytes")) {
        t->kind = ABI_KIND_BYTES;
    } else if (abi_token_has_prefix(s, n, "bytes")) {
        size_t w = abi_parse_width(s + 5, n - 5);
        if (w < 1 || w > ABI_WORD_LEN)
            return ABI_ERR_BAD_SIGNATURE;
        t->kind = ABI_KIND_FIXED_BYTES;
        t->size = w;
    } else if (abi_token_has_prefix(s, n, "uint")) {
        size_t w = abi_parse_width(s + 4, n - 4);
        if (w < 8 || w > 256 || w % 8 != 0)
            return ABI_ERR_BAD_SIGNATURE;
        t->kind = ABI_KIND_UINT;
        t->size = w;
    } else if (abi_token_has_prefix(s, n, "int") || abi_token_has_prefix(s, n, "fixed") ||
               abi_token_has_prefix(s, n, "ufixed") || abi_token_is(s, n, "function")) {
        return ABI_ERR_UNSUPPORTED_TYPE;
    } else {
        return ABI_ERR_BAD_SIGNATURE;
    }
    return ABI_OK;
}

/* Cursor over a comma-separated type list. */
typedef struct {
    const char *p;
    const char *end;
    bool done;
} abi_types_cursor;

static void abi_types_cursor_init(abi_types_cursor *c, const char *types, size_t len)
{
    c->p = types;
    c->end = types + len;
    c->done = len == 0;
}

/* Parses the next type; call only while !c->done. */
static abi_err abi_types_next(abi_types_cursor *c, abi_type *t)
{
    const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));
    const char *tok_end = comma ? comma : c->end;
    abi_err err = abi_parse_type(t, c->p, (size_t)(tok_end - c->p));
    if (err != ABI_OK)
        return err;
    if (comma)
        c->p = comma + 1;
    else
        c->done = true;
    return ABI_OK;
}

/* Validates a type list and counts its types. */
static abi_err abi_types_count(size_t *count, const char *types, size_t len)
{
    abi_types_cursor c;
    abi_type t;
    size_t n = 0;

    *count = 0;
    if (memchr(types, '(', len) != NULL)
        return ABI_ERR_UNSUPPORTED_TYPE; /* tuple */
    if (memchr(types, ')', len) != NULL)
        return ABI_ERR_BAD_SIGNATURE;
    abi_types_cursor_init(&c, types, len);
    while (!c.done) {
        abi_err err = abi_types_next(&c, &t);
        if (err != ABI_OK)
            return err;
        n++;
    }
    if (n > ABI_MAX_ENCODED_LEN / ABI_WORD_LEN)
        return ABI_ERR_TOO_LARGE;
    *count = n;
    return ABI_OK;
}

static bool abi_name_char(char ch, bool first)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '$')
        return true;
    return !first && ch >= '0' && ch <= '9';
}

/* Splits "name(types)" and returns the types part. */
static abi_err abi_split_signature(const char **types, size_t *types_len, const char *signature)
{
    size_t len = strlen(signature);
    size_t i = 0;

    while (i < len && abi_name_char(signature[i], i == 0))
        i++;
    if (i == 0 || i + 2 > len || signature[i] != '(' || signature[len - 1] != ')')
        return ABI_ERR_BAD_SIGNATURE;
    *types = signature + i + 1;
    *types_len = len - i - 2;
    return ABI_OK;
}

/* ---- Words ------------------------------------------------------------ */

/* Checks a static word against its type (shared by encoder and decoder). */
static abi_err abi_check_word(const abi_type *t, const uint8_t w[ABI_WORD_LEN])
{
    switch (t->kind) {
    case ABI_KIND_UINT:
        if (!abi_all_zero(w, ABI_WORD_LEN - t->size / 8))
            return ABI_ERR_UINT_RANGE;
        return ABI_OK;
    case ABI_KIND_ADDRESS:
        if (!abi_all_zero(w, ABI_WORD_LEN - ABI_ADDRESS_LEN))
            return ABI_ERR_DIRTY_ADDRESS;
        return ABI_OK;
    case ABI_KIND_BOOL:
        if (!abi_all_zero(w, ABI_WORD_LEN - 1) || w[ABI_WORD_LEN - 1] > 1)
            return ABI_ERR_BAD_BOOL;
        return ABI_OK;
    case ABI_KIND_FIXED_BYTES:
        if (!abi_all_zero(w + t->size, ABI_WORD_LEN - t->size))
            return ABI_ERR_DIRTY_PADDING;
        return ABI_OK;
    case ABI_KIND_BYTES:
    case ABI_KIND_STRING:
        break;
    }
    return ABI_ERR_INVALID_ARG;
}

/* Reads a word as a size; false when it does not fit in 64 bits/size_t. */
static bool abi_word_to_size(size_t *out, const uint8_t w[ABI_WORD_LEN])
{
    if (!abi_all_zero(w, ABI_WORD_LEN - 8))
        return false;
    uint64_t v = 0;
    for (unsigned i = ABI_WORD_LEN - 8; i < ABI_WORD_LEN; i++)
        v = (v << 8) | w[i];
#if SIZE_MAX < UINT64_MAX
    if (v > SIZE_MAX)
        return false;
#endif
    *out = (size_t)v;
    return true;
}

/* len rounded up to a whole number of words; len <= ABI_MAX_ENCODED_LEN. */
static size_t abi_padded(size_t len)
{
    return (len + ABI_WORD_LEN - 1) / ABI_WORD_LEN * ABI_WORD_LEN;
}

/* ---- Encoding --------------------------------------------------------- */

static abi_err abi_check_value(const abi_type *t, const abi_value *v)
{
    if (v->kind != t->kind)
        return ABI_ERR_ARG_TYPE;
    if (abi_is_dynamic(t)) {
        if (v->ptr == NULL && v->len != 0)
            return ABI_ERR_INVALID_ARG;
        if (v->len > ABI_MAX_ENCODED_LEN)
            return ABI_ERR_TOO_LARGE;
        return ABI_OK;
    }
    if (t->kind == ABI_KIND_FIXED_BYTES && v->len != t->size)
        return ABI_ERR_ARG_TYPE;
    return abi_check_word(t, v->word);
}

/* Encodes the tuple into out + prefix; out[0..prefix) is left to the
 * caller. */
static abi_err abi_encode_tuple(uint8_t *out, size_t out_cap, size_t *out_len, size_t prefix,
                                const char *types, size_t types_len,
                                const abi_value *args, size_t nargs)
{
    abi_types_cursor c;
    abi_type t;
    size_t count;
    size_t total;
    size_t tail;
    abi_err err;

    *out_len = 0;
    if (nargs > 0 && args == NULL)
        return ABI_ERR_INVALID_ARG;
    err = abi_types_count(&count, types, types_len);
    if (err != ABI_OK)
        return err;
    if (count != nargs)
        return ABI_ERR_ARG_COUNT;

    /* Pass 1: check the values and size the encoding. */
    if (count * ABI_WORD_LEN > ABI_MAX_ENCODED_LEN - prefix)
        return ABI_ERR_TOO_LARGE;
    total = prefix + count * ABI_WORD_LEN;
    abi_types_cursor_init(&c, types, types_len);
    for (size_t i = 0; i < count; i++) {
        err = abi_types_next(&c, &t);
        if (err != ABI_OK)
            return err;
        err = abi_check_value(&t, &args[i]);
        if (err != ABI_OK)
            return err;
        if (abi_is_dynamic(&t)) {
            size_t need = ABI_WORD_LEN + abi_padded(args[i].len);
            if (need > ABI_MAX_ENCODED_LEN - total)
                return ABI_ERR_TOO_LARGE;
            total += need;
        }
    }
    if (total > out_cap) {
        *out_len = total;
        return ABI_ERR_BUFFER_TOO_SMALL;
    }

    /* Pass 2: heads, then tails in parameter order. */
    tail = count * ABI_WORD_LEN;
    abi_types_cursor_init(&c, types, types_len);
    for (size_t i = 0; i < count; i++) {
        uint8_t *head = out + prefix + i * ABI_WORD_LEN;
        err = abi_types_next(&c, &t);
        if (err != ABI_OK)
            return err;
        if (!abi_is_dynamic(&t)) {
            memcpy(head, args[i].word, ABI_WORD_LEN);
            continue;
        }
        size_t len = args[i].len;
        size_t padded = abi_padded(len);
        uint8_t *dst = out + prefix + tail;
        abi_word_put_u64(head, tail);
        abi_word_put_u64(dst, len);
        if (len)
            memcpy(dst + ABI_WORD_LEN, args[i].ptr, len);
        memset(dst + ABI_WORD_LEN + len, 0, padded - len);
        tail += ABI_WORD_LEN + padded;
    }
    *out_len = total;
    return ABI_OK;
}

abi_err abi_encode_params(uint8_t *out, size_t out_cap, size_t *out_len,
                          const char *types, const abi_value *args, size_t nargs)
{
    return abi_encode_tuple(out, out_cap, out_len, 0, types, strlen(types), args, nargs);
}

abi_err abi_encode_call(uint8_t *out, size_t out_cap, size_t *out_len,
                        const char *signature, const abi_value *args, size_t nargs)
{
    const char *types;
    size_t types_len;
    abi_err err;

    *out_len = 0;
    err = abi_split_signature(&types, &types_len, signature);
    if (err != ABI_OK)
        return err;
    err = abi_encode_tuple(out, out_cap, out_len, ABI_SELECTOR_LEN, types, types_len,
                           args, nargs);
    if (err != ABI_OK)
        return err;
    abi_selector(out, signature);
    return ABI_OK;
}

/* ---- Decoding --------------------------------------------------------- */

/* Decodes the dynamic value whose head word is at data + head_pos. */
static abi_err abi_decode_dynamic(abi_value *out, size_t *off_out, size_t *end,
                                  const abi_type *t, const uint8_t *data, size_t len,
                                  size_t head_pos)
{
    size_t off;
    size_t dlen;

    if (!abi_word_to_size(&off, data + head_pos) || off > len ||
        len - off < ABI_WORD_LEN)
        return ABI_ERR_OFFSET_RANGE;
    size_t avail = len - off - ABI_WORD_LEN;
    if (!abi_word_to_size(&dlen, data + off) || dlen > avail)
        return ABI_ERR_LENGTH_RANGE;
    size_t padded = abi_padded(dlen);
    if (padded > avail)
        return ABI_ERR_PADDING_MISSING;
    const uint8_t *p = data + off + ABI_WORD_LEN;
    if (!abi_all_zero(p + dlen, padded - dlen))
        return ABI_ERR_DIRTY_PADDING;
    memset(out, 0, sizeof *out);
    out->kind = t->kind;
    out->ptr = p;
    out->len = dlen;
    *off_out = off;
    *end = off + ABI_WORD_LEN + padded;
    return ABI_OK;
}

static abi_err abi_decode_tuple(abi_value *out, size_t nout, const char *types, size_t types_len,
                                const uint8_t *data, size_t len, unsigned flags)
{
    abi_types_cursor c;
    abi_type t;
    size_t count;
    size_t next;
    abi_err err;

    if ((flags & ~ABI_DECODE_STRICT) != 0 || (data == NULL && len != 0) ||
        (out == NULL && nout != 0))
        return ABI_ERR_INVALID_ARG;
    err = abi_types_count(&count, types, types_len);
    if (err != ABI_OK)
        return err;
    if (count != nout)
        return ABI_ERR_ARG_COUNT;
    if (len < count * ABI_WORD_LEN)
        return ABI_ERR_SHORT_INPUT;

    next = count * ABI_WORD_LEN; /* where the canonical encoding puts the next tail */
    abi_types_cursor_init(&c, types, types_len);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *w = data + i * ABI_WORD_LEN;
        err = abi_types_next(&c, &t);
        if (err != ABI_OK)
            return err;
        if (!abi_is_dynamic(&t)) {
            err = abi_check_word(&t, w);
            if (err != ABI_OK)
                return err;
            memset(&out[i], 0, sizeof out[i]);
            out[i].kind = t.kind;
            memcpy(out[i].word, w, ABI_WORD_LEN);
            if (t.kind == ABI_KIND_FIXED_BYTES)
                out[i].len = t.size;
            continue;
        }
        size_t off;
        size_t end;
        err = abi_decode_dynamic(&out[i], &off, &end, &t, data, len, i * ABI_WORD_LEN);
        if (err != ABI_OK)
            return err;
        if (flags & ABI_DECODE_STRICT) {
            if (off != next)
                return ABI_ERR_NONCANONICAL_OFFSET;
            next = end;
        }
    }
    if ((flags & ABI_DECODE_STRICT) && len != next)
        return ABI_ERR_TRAILING_BYTES;
    return ABI_OK;
}

abi_err abi_decode_params(abi_value *out, size_t nout, const char *types,
                          const uint8_t *data, size_t len, unsigned flags)
{
    return abi_decode_tuple(out, nout, types, strlen(types), data, len, flags);
}

abi_err abi_decode_call(abi_value *out, size_t nout, const char *signature,
                        const uint8_t *calldata, size_t len, unsigned flags)
{
    const char *types;
    size_t types_len;
    uint8_t sel[ABI_SELECTOR_LEN];
    abi_err err;

    size_t count;
    err = abi_split_signature(&types, &types_len, signature);
    if (err != ABI_OK)
        return err;
    /* Bad type text is the caller's error: report it before the input's. */
    err = abi_types_count(&count, types, types_len);
    if (err != ABI_OK)
        return err;
    if (calldata == NULL && len != 0)
        return ABI_ERR_INVALID_ARG;
    if (len < ABI_SELECTOR_LEN)
        return ABI_ERR_NO_SELECTOR;
    abi_selector(sel, signature);
    if (memcmp(sel, calldata, ABI_SELECTOR_LEN) != 0)
        return ABI_ERR_SELECTOR_MISMATCH;
    return abi_decode_tuple(out, nout, types, types_len, calldata + ABI_SELECTOR_LEN,
                            len - ABI_SELECTOR_LEN, flags);
}

abi_err abi_decode_revert(const uint8_t **msg, size_t *msg_len,
                          const uint8_t *data, size_t len)
{
    abi_value v;
    abi_err err = abi_decode_call(&v, 1, "Error(string)", data, len, ABI_DECODE_STRICT);
    if (err != ABI_OK)
        return err;
    *msg = v.ptr;
    *msg_len = v.len;
    return ABI_OK;
}

abi_err abi_decode_transfer_log(abi_transfer_log *out, const uint8_t *topics, size_t n_topics,
                                const uint8_t *data, size_t data_len)
{
    static const abi_type address_type = {ABI_KIND_ADDRESS, 0};
    uint8_t topic0[ABI_WORD_LEN];
    abi_value v;
    abi_err err;

    if (n_topics != 3)
        return ABI_ERR_TOPIC_COUNT;
    abi_event_topic(topic0, "Transfer(address,address,uint256)");
    if (memcmp(topics, topic0, ABI_WORD_LEN) != 0)
        return ABI_ERR_SELECTOR_MISMATCH;
    for (size_t i = 1; i < 3; i++) {
        err = abi_check_word(&address_type, topics + i * ABI_WORD_LEN);
        if (err != ABI_OK)
            return err;
    }
    err = abi_decode_params(&v, 1, "uint256", data, data_len, ABI_DECODE_STRICT);
    if (err != ABI_OK)
        return err;
    memcpy(out->from, topics + 1 * ABI_WORD_LEN + 12, ABI_ADDRESS_LEN);
    memcpy(out->to, topics + 2 * ABI_WORD_LEN + 12, ABI_ADDRESS_LEN);
    memcpy(out->value, v.word, ABI_WORD_LEN);
    return ABI_OK;
}
