/* gw_json_internal: the error and depth context, and the descriptor
 * queries that the decoder and the encoder both use (gw_json_internal.h). */
#include "gw_json_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 2, 3)))
int gw_json_fail(gw_json_ctx *c, const char *fmt, ...)
{
    char msg[GW_JSON_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->path_len > 120) /* deep paths: the innermost part says the most */
        snprintf(c->err, c->err_len, "field \"...%s\": %s", c->path + c->path_len - 117, msg);
    else if (c->path_len)
        snprintf(c->err, c->err_len, "field \"%s\": %s", c->path, msg);
    else
        snprintf(c->err, c->err_len, "%s", msg);
    return -1;
}

void gw_json_ctx_init(gw_json_ctx *c, char *err, size_t err_len, const gw_json_options *o)
{
    static const gw_json_options none = {NULL, NULL, 0};
    memset(c, 0, sizeof *c);
    c->o = o ? o : &none;
    c->err = err;
    c->err_len = err_len;
    c->max_depth = c->o->max_depth ? c->o->max_depth : GW_JSON_DEPTH_DEFAULT;
    if (err_len)
        err[0] = '\0';
}

size_t gw_json_type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 8;
}

bool gw_json_is(const ProtobufCMessageDescriptor *d, const char *name)
{
    return strcmp(d->name, name) == 0;
}

bool gw_json_is_wrapper(const ProtobufCMessageDescriptor *d)
{
    static const char *const w[] = {"DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
                                    "UInt32Value", "BoolValue", "StringValue", "BytesValue"};
    if (strncmp(d->name, "google.protobuf.", 16) != 0)
        return false;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (strcmp(d->name + 16, w[i]) == 0)
            return true;
    return false;
}

bool gw_json_field_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 || strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0)
        return false;
    /* protoc names the entry <Parent>.<CamelCase(field)>Entry. */
    char want[512];
    size_t pl = strlen(parent->name), o;
    if (pl + 2 >= sizeof want)
        return false;
    memcpy(want, parent->name, pl);
    want[pl] = '.';
    o = pl + 1;
    bool cap = true;
    for (const char *p = f->name; *p && o + 7 < sizeof want; p++) {
        if (*p == '_') {
            cap = true;
            continue;
        }
        want[o++] = cap && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        cap = false;
    }
    memcpy(want + o, "Entry", 6);
    return strcmp(e->name, want) == 0;
}

const ProtobufCFieldDescriptor *gw_json_field_id(const ProtobufCMessageDescriptor *d, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}
