#include "jsonrpc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

/* Characters of a peer's string quoted in an error message. */
#define JSONRPC_QUOTE_MAX 40

void jsonrpc_err_set(jsonrpc_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

const char *jsonrpc_describe(char *buf, size_t buf_len, const json_t *v)
{
    if (buf_len == 0)
        return buf;
    const char *kind;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: kind = "an object"; break;
    case JSON_ARRAY: kind = "an array"; break;
    case JSON_INTEGER:
    case JSON_REAL: kind = "a number"; break;
    case JSON_TRUE:
    case JSON_FALSE: kind = "a boolean"; break;
    case JSON_NULL: kind = "null"; break;
    case JSON_STRING: kind = NULL; break;
    default: kind = "an unknown value"; break;
    }
    if (!v) {
        snprintf(buf, buf_len, "nothing");
        return buf;
    }
    if (kind) {
        snprintf(buf, buf_len, "%s", kind);
        return buf;
    }
    /* A string: quote it, printable ASCII only, cut long text. */
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && i < JSONRPC_QUOTE_MAX && o + 6 < buf_len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '?';
        }
    }
    if (n > JSONRPC_QUOTE_MAX && o + 5 < buf_len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (o + 1 < buf_len)
        buf[o++] = '"';
    buf[o < buf_len ? o : buf_len - 1] = '\0';
    return buf;
}

/* ---- Envelopes ---------------------------------------------------------- */

int jsonrpc_request_encode(char **out, size_t *out_len, jsonrpc_err *err, uint64_t id,
                           const char *method, const json_t *params)
{
    json_t *req = NULL;
    json_t *p = NULL;
    int rc = -1;
    *out = NULL;
    *out_len = 0;
    if (id > JSONRPC_ID_MAX) {
        jsonrpc_err_set(err, "request id %" PRIu64 " is above 2^53", id);
        return -1;
    }
    if (method[0] == '\0') {
        jsonrpc_err_set(err, "empty method name");
        return -1;
    }
    if (params && !json_is_array(params)) {
        jsonrpc_err_set(err, "%s: params must be an array", method);
        return -1;
    }
    /* json_deep_copy keeps the caller's params untouched (json_object_set
     * would only take a reference, and params is const). */
    p = params ? json_deep_copy(params) : json_array();
    req = json_object();
    if (!p || !req || json_object_set_new(req, "jsonrpc", json_string("2.0")) != 0 ||
        json_object_set_new(req, "id", json_integer((json_int_t)id)) != 0 ||
        json_object_set_new(req, "method", json_string(method)) != 0 ||
        json_object_set(req, "params", p) != 0) {
        jsonrpc_err_set(err, "%s: out of memory building the request", method);
        goto out;
    }
    *out = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) {
        jsonrpc_err_set(err, "%s: cannot serialise the request (bad method text or out of memory)",
                        method);
        goto out;
    }
    *out_len = strlen(*out);
    rc = 0;
out:
    json_decref(p);
    json_decref(req);
    return rc;
}

void jsonrpc_response_dispose(jsonrpc_response *r)
{
    if (!r)
        return;
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

int jsonrpc_response_parse(jsonrpc_response *out, jsonrpc_err *err, const char *body, size_t len,
                           uint64_t expected_id)
{
    json_error_t je;
    char d[64];
    memset(out, 0, sizeof *out);
    if (len == 0) {
        jsonrpc_err_set(err, "empty response body");
        return -1;
    }
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        jsonrpc_err_set(err, "response is not JSON: %s at line %d column %d", je.text, je.line,
                        je.column);
        return -1;
    }
    if (!json_is_object(root)) {
        jsonrpc_err_set(err, "response is %s, expected an object",
                        jsonrpc_describe(d, sizeof d, root));
        goto fail;
    }
    const json_t *ver = json_object_get(root, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
        json_string_length(ver) != 3) {
        jsonrpc_err_set(err, "response jsonrpc: expected \"2.0\", got %s",
                        jsonrpc_describe(d, sizeof d, ver));
        goto fail;
    }
    const json_t *result = json_object_get(root, "result");
    const json_t *error = json_object_get(root, "error");
    if (result && error) {
        jsonrpc_err_set(err, "response has both result and error");
        goto fail;
    }
    if (!result && !error) {
        jsonrpc_err_set(err, "response has neither result nor error");
        goto fail;
    }
    if (error) {
        if (!json_is_object(error)) {
            jsonrpc_err_set(err, "response error: expected an object, got %s",
                            jsonrpc_describe(d, sizeof d, error));
            goto fail;
        }
        const json_t *code = json_object_get(error, "code");
        const json_t *msg = json_object_get(error, "message");
        if (!json_is_integer(code)) {
            jsonrpc_err_set(err, "response error.code: expected an integer, got %s",
                            jsonrpc_describe(d, sizeof d, code));
            goto fail;
        }
        if (!json_is_string(msg)) {
            jsonrpc_err_set(err, "response error.message: expected a string, got %s",
                            jsonrpc_describe(d, sizeof d, msg));
            goto fail;
        }
        out->is_error = true;
        out->error_code = (int64_t)json_integer_value(code);
        out->error_message = json_string_value(msg);
        out->error_data = json_object_get(error, "data");
    } else {
        out->result = result;
    }
    /* The id last, so a node's complaint about our request (sent with id
     * null, e.g. -32700) can be quoted in the message. */
    const json_t *id = json_object_get(root, "id");
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        (uint64_t)json_integer_value(id) != expected_id) {
        if (out->is_error)
            jsonrpc_err_set(err, "response id: expected %" PRIu64 ", got %s (node error %" PRId64
                            ": %.80s)", expected_id, jsonrpc_describe(d, sizeof d, id),
                            out->error_code, out->error_message);
        else
            jsonrpc_err_set(err, "response id: expected %" PRIu64 ", got %s", expected_id,
                            json_is_integer(id) ? (snprintf(d, sizeof d, "%" JSON_INTEGER_FORMAT,
                                                            json_integer_value(id)), d)
                                                : jsonrpc_describe(d, sizeof d, id));
        goto fail;
    }
    out->root = root;
    return 0;
fail:
    json_decref(root);
    memset(out, 0, sizeof *out);
    return -1;
}

/* ---- Hex values --------------------------------------------------------- */

/* Checks v is a string "0x" + digits; sets *digits and *n to the part after
 * the prefix. kind names the expectation for the message. */
static int jsonrpc_hex_text(const char **digits, size_t *n, jsonrpc_err *err, const json_t *v,
                            const char *what, const char *kind)
{
    char d[64];
    if (!v) {
        jsonrpc_err_set(err, "%s: missing", what);
        return -1;
    }
    if (!json_is_string(v)) {
        jsonrpc_err_set(err, "%s: expected %s, got %s", what, kind, jsonrpc_describe(d, sizeof d, v));
        return -1;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len < 2 || s[0] != '0' || s[1] != 'x') {
        jsonrpc_err_set(err, "%s: expected %s, got %s (no 0x prefix)", what, kind,
                        jsonrpc_describe(d, sizeof d, v));
        return -1;
    }
    for (size_t i = 2; i < len; i++) {
        if (hex_digit_value(s[i]) < 0) {
            jsonrpc_err_set(err, "%s: expected %s, got %s (not a hex digit at %zu)", what, kind,
                            jsonrpc_describe(d, sizeof d, v), i);
            return -1;
        }
    }
    *digits = s + 2;
    *n = len - 2;
    return 0;
}

/* Checks a quantity's digit count; returns the digits without leading
 * zeros (at least one). */
static int jsonrpc_quantity_digits(const char **digits, size_t *n, jsonrpc_err *err,
                                   const json_t *v, const char *what)
{
    char d[64];
    if (jsonrpc_hex_text(digits, n, err, v, what, "a hex quantity") != 0)
        return -1;
    if (*n == 0) {
        jsonrpc_err_set(err, "%s: expected a hex quantity, got \"0x\" (no digits)", what);
        return -1;
    }
    if (*n > JSONRPC_QUANTITY_DIGITS_MAX) {
        jsonrpc_err_set(err, "%s: quantity %s has %zu digits, more than %d", what,
                        jsonrpc_describe(d, sizeof d, v), *n, JSONRPC_QUANTITY_DIGITS_MAX);
        return -1;
    }
    while (*n > 1 && (*digits)[0] == '0') {
        (*digits)++;
        (*n)--;
    }
    return 0;
}

int jsonrpc_quantity_u64(uint64_t *out, jsonrpc_err *err, const json_t *v, const char *what)
{
    const char *s;
    size_t n;
    char d[64];
    if (jsonrpc_quantity_digits(&s, &n, err, v, what) != 0)
        return -1;
    if (n > 16) {
        jsonrpc_err_set(err, "%s: quantity %s does not fit 64 bits", what,
                        jsonrpc_describe(d, sizeof d, v));
        return -1;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 4) | (uint64_t)hex_digit_value(s[i]);
    *out = x;
    return 0;
}

int jsonrpc_quantity_u256(u256 *out, jsonrpc_err *err, const json_t *v, const char *what)
{
    const char *s;
    size_t n;
    if (jsonrpc_quantity_digits(&s, &n, err, v, what) != 0)
        return -1;
    /* At most 64 digits, all hex: u256_from_hex cannot refuse them. */
    if (u256_from_hex(out, s, n) != 0) {
        jsonrpc_err_set(err, "%s: bad quantity", what);
        return -1;
    }
    return 0;
}

int jsonrpc_data(uint8_t *out, size_t cap, size_t *out_len, jsonrpc_err *err, const json_t *v,
                 const char *what)
{
    const char *s;
    size_t n;
    *out_len = 0;
    if (jsonrpc_hex_text(&s, &n, err, v, what, "hex data") != 0)
        return -1;
    if (n % 2 != 0) {
        jsonrpc_err_set(err, "%s: hex data has an odd number of digits (%zu)", what, n);
        return -1;
    }
    if (n / 2 > cap) {
        jsonrpc_err_set(err, "%s: %zu bytes of data, at most %zu expected", what, n / 2, cap);
        return -1;
    }
    if (n > 0 && hex_decode(out, cap, out_len, s, n) != 0) {
        jsonrpc_err_set(err, "%s: bad hex data", what);
        return -1;
    }
    return 0;
}

int jsonrpc_data_fixed(uint8_t *out, size_t len, jsonrpc_err *err, const json_t *v, const char *what)
{
    const char *s;
    size_t n;
    size_t got;
    if (jsonrpc_hex_text(&s, &n, err, v, what, "hex data") != 0)
        return -1;
    if (n != 2 * len) {
        jsonrpc_err_set(err, "%s: expected %zu bytes of hex data, got %zu digits", what, len, n);
        return -1;
    }
    if (n > 0 && hex_decode(out, len, &got, s, n) != 0) {
        jsonrpc_err_set(err, "%s: bad hex data", what);
        return -1;
    }
    return 0;
}

int jsonrpc_data_alloc(uint8_t **out, size_t *out_len, size_t max_len, jsonrpc_err *err,
                       const json_t *v, const char *what)
{
    const char *s;
    size_t n;
    *out = NULL;
    *out_len = 0;
    if (jsonrpc_hex_text(&s, &n, err, v, what, "hex data") != 0)
        return -1;
    if (n % 2 != 0) {
        jsonrpc_err_set(err, "%s: hex data has an odd number of digits (%zu)", what, n);
        return -1;
    }
    if (n / 2 > max_len) {
        jsonrpc_err_set(err, "%s: %zu bytes of data, at most %zu accepted", what, n / 2, max_len);
        return -1;
    }
    if (n == 0)
        return 0;
    uint8_t *buf = malloc(n / 2);
    if (!buf) {
        jsonrpc_err_set(err, "%s: out of memory for %zu bytes", what, n / 2);
        return -1;
    }
    if (hex_decode(buf, n / 2, out_len, s, n) != 0) {
        free(buf);
        *out_len = 0;
        jsonrpc_err_set(err, "%s: bad hex data", what);
        return -1;
    }
    *out = buf;
    return 0;
}

void jsonrpc_format_u64(char out[JSONRPC_U64_HEX_MAX], uint64_t v)
{
    snprintf(out, JSONRPC_U64_HEX_MAX, "0x%" PRIx64, v);
}

json_t *jsonrpc_json_u64(uint64_t v)
{
    char buf[JSONRPC_U64_HEX_MAX];
    jsonrpc_format_u64(buf, v);
    return json_string(buf);
}

json_t *jsonrpc_json_u256(const u256 *v)
{
    char buf[U256_HEX_MAX];
    u256_to_hex(buf, v);
    return json_string(buf);
}

json_t *jsonrpc_json_data(const uint8_t *data, size_t len)
{
    if (len > (SIZE_MAX - 3) / 2)
        return NULL;
    char *buf = malloc(2 * len + 3);
    if (!buf)
        return NULL;
    hex_encode_0x(buf, data, len);
    json_t *s = json_stringn_nocheck(buf, 2 * len + 2);
    free(buf);
    return s;
}
