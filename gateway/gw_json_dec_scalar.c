/* gw_json_dec_scalar: JSON values to integers, floating-point numbers and
 * enum values, with error messages that say what was wrong (declared in
 * gw_json_dec.h). */
#include "gw_json_dec.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gw_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

int gw_json_dec_int(gw_json_ctx *c, int64_t *sv, uint64_t *uv, bool is_unsigned, const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (is_unsigned) {
            if (x < 0)
                return gw_json_fail(c, "expected a non-negative integer, got %lld", (long long)x);
            *uv = (uint64_t)x;
        } else {
            *sv = (int64_t)x;
        }
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 9007199254740992.0)
            return gw_json_fail(c, "expected an integer, got %.17g (use a string for large values)", d);
        if (is_unsigned) {
            if (d < 0)
                return gw_json_fail(c, "expected a non-negative integer, got %.17g", d);
            *uv = (uint64_t)d;
        } else {
            *sv = (int64_t)d;
        }
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        char *end;
        if (len == 0 || len > 24 || s[0] == ' ' || s[0] == '+' || strlen(s) != len)
            return gw_json_fail(c, "expected an integer, got \"%.40s\"", s);
        errno = 0;
        if (is_unsigned) {
            if (s[0] == '-')
                return gw_json_fail(c, "expected a non-negative integer, got \"%.40s\"", s);
            *uv = strtoull(s, &end, 10);
        } else {
            *sv = strtoll(s, &end, 10);
        }
        if (errno == ERANGE)
            return gw_json_fail(c, "integer out of range: \"%.40s\"", s);
        if (*end || end == s)
            return gw_json_fail(c, "expected an integer, got \"%.40s\"", s);
        return 0;
    }
    return gw_json_fail(c, "expected an integer, got %s", gw_json_kind(v));
}

int gw_json_dec_double(gw_json_ctx *c, double *out, const json_t *v, bool is_float)
{
    double d;
    if (json_is_number(v)) {
        d = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(s, "Infinity") == 0) {
            *out = INFINITY;
            return 0;
        }
        if (strcmp(s, "-Infinity") == 0) {
            *out = -INFINITY;
            return 0;
        }
        char *end;
        errno = 0;
        if (!*s || s[0] == ' ' || strchr(s, 'x') || strchr(s, 'X') || strchr(s, 'n') || strchr(s, 'N') ||
            strchr(s, 'i') || strchr(s, 'I'))
            return gw_json_fail(c, "expected a number, got \"%.40s\"", s);
        d = strtod(s, &end);
        if (*end || errno == ERANGE)
            return gw_json_fail(c, "expected a number, got \"%.40s\"", s);
    } else {
        return gw_json_fail(c, "expected a number, got %s", gw_json_kind(v));
    }
    if (is_float && isfinite(d) && fabs(d) > FLT_MAX)
        return gw_json_fail(c, "number out of range for float: %g", d);
    *out = d;
    return 0;
}

int gw_json_dec_enum(gw_json_ctx *c, int32_t *out, const ProtobufCEnumDescriptor *ed, const json_t *v)
{
    if (json_is_null(v) && strcmp(ed->name, "google.protobuf.NullValue") == 0) {
        *out = 0;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (ev) {
            *out = ev->value;
            return 0;
        }
        if (!c->text)
            return gw_json_fail(c, "unknown value \"%.60s\" of enum %s", s, ed->name);
    }
    if (json_is_number(v) || json_is_string(v)) {
        int64_t x = 0;
        uint64_t ux = 0;
        if (gw_json_dec_int(c, &x, &ux, false, v) != 0) {
            if (json_is_string(v))
                return gw_json_fail(c, "unknown value \"%.60s\" of enum %s", json_string_value(v), ed->name);
            return -1;
        }
        if (x < INT32_MIN || x > INT32_MAX)
            return gw_json_fail(c, "enum number out of range: %lld", (long long)x);
        *out = (int32_t)x;
        return 0;
    }
    return gw_json_fail(c, "expected an enum name (string) or number, got %s", gw_json_kind(v));
}
