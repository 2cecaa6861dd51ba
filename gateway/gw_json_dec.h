/* gw_json_dec: the seams between the decoder's files (JSON to message),
 * internal to gw_json: gw_json_dec.c walks messages, fields, lists and
 * maps; gw_json_dec_scalar.c turns JSON values into numbers and enum
 * values; gw_json_dec_wkt.c handles the well-known types' special forms.
 * Callers outside gw_json use gw_json.h. The int functions return 0, or -1
 * with c->err set by gw_json_fail. */
#ifndef COFFER_GW_JSON_DEC_H
#define COFFER_GW_JSON_DEC_H

#include "gw_json_internal.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- gw_json_dec.c ---- */

/* Sets the fields of m from v (a JSON object, or a well-known type's
 * special form), one nesting level deeper (max_depth checked). */
int gw_json_merge_message(gw_json_ctx *c, ProtobufCMessage *m, const json_t *v);

/* Sets field f of m from v: null resets it; a repeated field takes an
 * array (from URL text: one value, appended); a map takes an object. */
int gw_json_set_field(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v);

/* Decodes v into a new last element of repeated field f. */
int gw_json_repeated_append(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v);

/* Resets a field (every element of a repeated one) to its default. */
void gw_json_field_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* jansson's iteration macros take non-const values; nothing here changes them. */
static inline json_t *gw_json_jmut(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* ---- gw_json_dec_scalar.c ---- */

/* "an object", "a string", ...: v's JSON type, for error messages. */
const char *gw_json_kind(const json_t *v);

/* An integer from a JSON integer, an integral number (|v| <= 2^53) or a
 * decimal string: *uv when is_unsigned, else *sv. */
int gw_json_dec_int(gw_json_ctx *c, int64_t *sv, uint64_t *uv, bool is_unsigned, const json_t *v);

/* *out from a number, "NaN", "Infinity", "-Infinity" or decimal text;
 * is_float: it must fit a float. */
int gw_json_dec_double(gw_json_ctx *c, double *out, const json_t *v, bool is_float);

/* *out from an enum value of ed by name or number (null for NullValue). */
int gw_json_dec_enum(gw_json_ctx *c, int32_t *out, const ProtobufCEnumDescriptor *ed, const json_t *v);

/* ---- gw_json_dec_wkt.c ---- */

/* When m is a well-known type with a special JSON form (Timestamp,
 * Duration, wrappers, Struct, Value, ListValue, FieldMask, Any), sets it
 * from v and sets *handled; otherwise sets *handled to false and does
 * nothing else. */
int gw_json_dec_wkt(gw_json_ctx *c, ProtobufCMessage *m, const json_t *v, bool *handled);

#endif
