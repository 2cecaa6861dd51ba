/* gw_json_internal: what both directions of gw_json share: the decoder
 * (gw_json_dec*.c, JSON to message) and the encoder (gw_json_enc.c,
 * message to JSON). gw_json_internal.c defines the functions here.
 * Internal to gw_json; callers outside it use gw_json.h. */
#ifndef COFFER_GW_JSON_INTERNAL_H
#define COFFER_GW_JSON_INTERNAL_H

#include "gw_json.h"

#include <stdbool.h>
#include <stddef.h>

/* Storage of a field in a protobuf-c message. */
#define GW_JSON_AT(msg, off, T) (*(T *)(void *)((char *)(msg) + (off)))
#define GW_JSON_AT_C(msg, off, T) (*(T const *)(const void *)((const char *)(msg) + (off)))

/* One conversion: the options, where the error goes, the field being
 * handled (for error messages) and the nesting depth. */
typedef struct {
    const gw_json_options *o;
    char *err;
    size_t err_len;
    char path[256]; /* the field being handled, for messages: "order.amount" */
    size_t path_len;
    unsigned depth, max_depth;
    bool text; /* values come from URL text */
} gw_json_ctx;

/* Writes "field \"<path>\": <message>" (or just the message when no field
 * is being handled) into c->err. Returns -1: "return gw_json_fail(c, ...)". */
__attribute__((format(printf, 2, 3)))
int gw_json_fail(gw_json_ctx *c, const char *fmt, ...);

/* Starts a conversion: err emptied, depth 0, o's limits (o may be NULL). */
void gw_json_ctx_init(gw_json_ctx *c, char *err, size_t err_len, const gw_json_options *o);

/* The size of one value of type t as a protobuf-c message stores it. */
size_t gw_json_type_size(ProtobufCType t);

/* True when d is the message type named name ("google.protobuf.Timestamp"). */
bool gw_json_is(const ProtobufCMessageDescriptor *d, const char *name);

/* True when d is one of the google.protobuf wrappers (Int64Value, ...). */
bool gw_json_is_wrapper(const ProtobufCMessageDescriptor *d);

/* The field of d numbered id, or NULL. */
const ProtobufCFieldDescriptor *gw_json_field_id(const ProtobufCMessageDescriptor *d, unsigned id);

#endif
