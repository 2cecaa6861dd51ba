/* gw_json: the proto3 JSON mapping, both ways, over protobuf-c descriptors
 * alone (no generated code per message), as grpc-gateway does with
 * protojson (EmitUnpopulated: every field is written, defaults included;
 * unset message fields as null; oneof members only when set).
 *
 * Output: lowerCamelCase names; int64/uint64/sint64/fixed64/sfixed64 as
 * decimal strings; enums by name (a number when the value has no name);
 * bytes as standard base64; float/double as shortest round-trip numbers,
 * "NaN"/"Infinity"/"-Infinity" as strings; maps as objects; well-known
 * types in their special forms (Timestamp RFC 3339, Duration "1.5s",
 * wrappers as their value, Struct/Value/ListValue as plain JSON, FieldMask
 * "a.b,c", Any with "@type", Empty {}).
 *
 * Input: both the proto name and the lowerCamelCase name of each field;
 * 64-bit integers as strings or numbers; integers may be JSON numbers with
 * an integral value or decimal strings; enums by name or number; bytes as
 * standard or URL-safe base64, padded or not; null means the default.
 * Rejected, with a message naming the field: unknown fields, the same field
 * twice (in either spelling), two members of one oneof, wrong JSON types,
 * out-of-range numbers, invalid base64, bad timestamps, nesting deeper
 * than max_depth. Messages are allocated with malloc: free them with
 * protobuf_c_message_free_unpacked(m, NULL), also after a failed merge. */
#ifndef COFFER_GW_JSON_H
#define COFFER_GW_JSON_H

#include "gw_text.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#define GW_JSON_DEPTH_DEFAULT 64u
#define GW_JSON_ERR_MAX 512u

/* Resolves a fully-qualified message name (for Any) to its descriptor;
 * NULL when unknown. */
typedef const ProtobufCMessageDescriptor *(*gw_json_resolve_fn)(void *arg, const char *full_name);

typedef struct {
    gw_json_resolve_fn resolve; /* NULL: Any values can only be written as {"@type", "value": base64} */
    void *resolve_arg;
    unsigned max_depth;         /* message nesting limit; 0: GW_JSON_DEPTH_DEFAULT */
} gw_json_options;

/* Parses text[0..len) as JSON (duplicate keys rejected). Returns 0 with
 * *out (json_decref it), or -1 with err saying where:
 * "malformed JSON at line 1, column 9: ...". */
__attribute__((warn_unused_result))
int gw_json_parse(json_t **out, char *err, size_t err_len, const char *text, size_t len);

/* A new message of type d with its defaults (malloc), NULL when memory is short. */
__attribute__((warn_unused_result))
ProtobufCMessage *gw_json_message_new(const ProtobufCMessageDescriptor *d);

/* Sets the fields of msg from value (a JSON object, or the special form
 * of a well-known type). options may be NULL. Returns 0, or -1 with err;
 * msg is then partly set but consistent (free it as usual). */
__attribute__((warn_unused_result))
int gw_json_merge(ProtobufCMessage *msg, char *err, size_t err_len, const json_t *value,
                  const gw_json_options *options);

/* Sets one field of msg from value (as in a JSON body: body: "field"). */
__attribute__((warn_unused_result))
int gw_json_merge_field(ProtobufCMessage *msg, char *err, size_t err_len, const ProtobufCFieldDescriptor *field,
                        const json_t *value, const gw_json_options *options);

/* Sets the field at a dotted path of names (proto or JSON spelling; each
 * but the last a singular message field, created when unset) from URL text
 * (a path variable or a query parameter): scalars parse from text (bool:
 * true/false/1/0), repeated fields get the value appended, well-known
 * types with a string form (Timestamp, Duration, FieldMask, wrappers)
 * parse it. Returns 0, or -1 with err (unknown field, bad value). */
__attribute__((warn_unused_result))
int gw_json_set_path(ProtobufCMessage *msg, char *err, size_t err_len, const char *path, const char *text,
                     size_t text_len, const gw_json_options *options);

/* The field of d named name (proto or lowerCamelCase spelling), or NULL. */
const ProtobufCFieldDescriptor *gw_json_find_field(const ProtobufCMessageDescriptor *d, const char *name);

/* Appends msg as JSON. Returns 0, or -1 with err (a value with no JSON
 * form: a timestamp out of range, ...) or when memory is short. */
__attribute__((warn_unused_result))
int gw_json_encode(gw_buf *out, char *err, size_t err_len, const ProtobufCMessage *msg,
                   const gw_json_options *options);

/* Appends only field's value in msg (response_body). */
__attribute__((warn_unused_result))
int gw_json_encode_field(gw_buf *out, char *err, size_t err_len, const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *field, const gw_json_options *options);

/* True when field (of message parent) is a map<K, V> field. */
bool gw_json_field_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *field);

#endif
