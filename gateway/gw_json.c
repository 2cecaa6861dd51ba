#include "gw_json.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Storage of a field in a protobuf-c message. */
#define GW_AT(msg, off, T) (*(T *)(void *)((char *)(msg) + (off)))
#define GW_AT_C(msg, off, T) (*(T const *)(const void *)((const char *)(msg) + (off)))

/* The empty string and string defaults, as the char * fields hold them. */
static char *gw_unconst(const void *p)
{
    return (char *)(uintptr_t)p;
}

/* jansson's iteration macros take non-const values; nothing here changes them. */
static json_t *gw_jmut(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

typedef struct {
    const gw_json_options *o;
    char *err;
    size_t err_len;
    char path[256]; /* the field being handled, for messages: "order.amount" */
    size_t path_len;
    unsigned depth, max_depth;
    bool text; /* values come from URL text */
} gw_ctx;

__attribute__((format(printf, 2, 3)))
static int gw_fail(gw_ctx *c, const char *fmt, ...)
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

static size_t gw_path_push(gw_ctx *c, const char *name)
{
    size_t old = c->path_len;
    int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", name);
    if (n > 0)
        c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static void gw_path_pop(gw_ctx *c, size_t old)
{
    c->path_len = old;
    c->path[old] = '\0';
}

static void gw_ctx_init(gw_ctx *c, char *err, size_t err_len, const gw_json_options *o)
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

static size_t gw_type_size(ProtobufCType t)
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

static bool gw_is(const ProtobufCMessageDescriptor *d, const char *name)
{
    return strcmp(d->name, name) == 0;
}

static bool gw_is_wrapper(const ProtobufCMessageDescriptor *d)
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

const ProtobufCFieldDescriptor *gw_json_find_field(const ProtobufCMessageDescriptor *d, const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (f)
        return f;
    char jn[256];
    for (unsigned i = 0; i < d->n_fields; i++)
        if (gw_json_name(jn, sizeof jn, d->fields[i].name) && strcmp(jn, name) == 0)
            return &d->fields[i];
    return NULL;
}

static const ProtobufCFieldDescriptor *gw_field_id(const ProtobufCMessageDescriptor *d, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}

ProtobufCMessage *gw_json_message_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

/* ======================================================================================= */
/* Encoding                                                                                 */
/* ======================================================================================= */

static int gw_enc_message(gw_ctx *c, gw_buf *b, const ProtobufCMessage *m);

static int gw_enc_scalar(gw_ctx *c, gw_buf *b, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        gw_buf_printf(b, "%" PRId32, *(const int32_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        gw_buf_printf(b, "%" PRIu32, *(const uint32_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        gw_buf_printf(b, "\"%" PRId64 "\"", *(const int64_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        gw_buf_printf(b, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        gw_buf_number(b, *(const float *)p, true);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        gw_buf_number(b, *(const double *)p, false);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        gw_buf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v = *(const int32_t *)p;
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (strcmp(ed->name, "google.protobuf.NullValue") == 0) {
            gw_buf_puts(b, "null");
            return 0;
        }
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
        if (ev)
            gw_buf_json_string(b, ev->name, strlen(ev->name));
        else
            gw_buf_printf(b, "%" PRId32, v);
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (!s)
            s = "";
        gw_buf_json_string(b, s, strlen(s));
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        gw_buf_putc(b, '"');
        gw_base64_encode(b, bd->data, bd->len);
        gw_buf_putc(b, '"');
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (!m) {
            gw_buf_puts(b, "null");
            return 0;
        }
        return gw_enc_message(c, b, m);
    }
    }
    return gw_fail(c, "unsupported field type %d", (int)f->type);
}

/* A map key as a JSON object key. */
static void gw_enc_map_key(gw_buf *b, const ProtobufCFieldDescriptor *kf, const void *p)
{
    char tmp[32];
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (!s)
            s = "";
        gw_buf_json_string(b, s, strlen(s));
        return;
    }
    case PROTOBUF_C_TYPE_BOOL:
        gw_buf_puts(b, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"");
        return;
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(tmp, sizeof tmp, "\"%" PRId32 "\"", *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        snprintf(tmp, sizeof tmp, "\"%" PRIu32 "\"", *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(tmp, sizeof tmp, "\"%" PRId64 "\"", *(const int64_t *)p);
        break;
    default:
        snprintf(tmp, sizeof tmp, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        break;
    }
    gw_buf_puts(b, tmp);
}

static int gw_enc_field_value(gw_ctx *c, gw_buf *b, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return gw_enc_scalar(c, b, f, (const char *)m + f->offset);
    size_t n = GW_AT_C(m, f->quantifier_offset, size_t);
    const char *arr = GW_AT_C(m, f->offset, char *);
    size_t sz = gw_type_size(f->type);
    if (gw_json_field_is_map(d, f)) {
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
        gw_buf_putc(b, '{');
        for (size_t i = 0; i < n; i++) {
            const ProtobufCMessage *e = ((ProtobufCMessage *const *)(const void *)arr)[i];
            if (i)
                gw_buf_putc(b, ',');
            gw_enc_map_key(b, kf, (const char *)e + kf->offset);
            gw_buf_putc(b, ':');
            if (gw_enc_scalar(c, b, vf, (const char *)e + vf->offset) != 0)
                return -1;
        }
        gw_buf_putc(b, '}');
        return 0;
    }
    gw_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            gw_buf_putc(b, ',');
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !((ProtobufCMessage *const *)(const void *)arr)[i]) {
            gw_buf_puts(b, "{}");
            continue;
        }
        if (gw_enc_scalar(c, b, f, arr + i * sz) != 0)
            return -1;
    }
    gw_buf_putc(b, ']');
    return 0;
}

/* Whether a field is written: oneof members and optional fields with
 * presence only when set; everything else always. */
static bool gw_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return GW_AT_C(m, f->quantifier_offset, uint32_t) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
            return GW_AT_C(m, f->offset, void *) != NULL;
        return GW_AT_C(m, f->quantifier_offset, protobuf_c_boolean) != 0;
    }
    return true;
}

static int64_t gw_get_i64(const ProtobufCMessage *m, unsigned id)
{
    const ProtobufCFieldDescriptor *f = gw_field_id(m->descriptor, id);
    if (!f)
        return 0;
    return gw_type_size(f->type) == 8 ? GW_AT_C(m, f->offset, int64_t) : GW_AT_C(m, f->offset, int32_t);
}

static int gw_enc_any(gw_ctx *c, gw_buf *b, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *url = GW_AT_C(m, gw_field_id(d, 1)->offset, char *);
    const ProtobufCBinaryData *v = &GW_AT_C(m, gw_field_id(d, 2)->offset, ProtobufCBinaryData);
    if (!url)
        url = "";
    const char *slash = strrchr(url, '/');
    const char *type = slash ? slash + 1 : url;
    const ProtobufCMessageDescriptor *td = c->o->resolve ? c->o->resolve(c->o->resolve_arg, type) : NULL;
    ProtobufCMessage *inner = td ? protobuf_c_message_unpack(td, NULL, v->len, v->data) : NULL;
    gw_buf_puts(b, "{\"@type\":");
    gw_buf_json_string(b, url, strlen(url));
    if (!inner) {
        /* A type we do not know (or bytes that do not decode): the raw value. */
        gw_buf_puts(b, ",\"value\":\"");
        gw_base64_encode(b, v->data, v->len);
        gw_buf_puts(b, "\"}");
        return 0;
    }
    gw_buf buf;
    gw_buf_init(&buf);
    int rc = gw_enc_message(c, &buf, inner);
    protobuf_c_message_free_unpacked(inner, NULL);
    if (rc == 0 && !buf.oom) {
        if (buf.len > 0 && buf.data[0] == '{') {
            if (buf.len > 2) {
                gw_buf_putc(b, ',');
                gw_buf_append(b, buf.data + 1, buf.len - 1);
            } else {
                gw_buf_putc(b, '}');
            }
        } else {
            gw_buf_puts(b, ",\"value\":");
            gw_buf_append(b, buf.data, buf.len);
            gw_buf_putc(b, '}');
        }
    }
    gw_buf_dispose(&buf);
    return rc;
}

static int gw_enc_wkt(gw_ctx *c, gw_buf *b, const ProtobufCMessage *m, bool *handled)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    *handled = true;
    if (gw_is(d, "google.protobuf.Timestamp")) {
        gw_buf_putc(b, '"');
        if (gw_timestamp_format(b, gw_get_i64(m, 1), (int32_t)gw_get_i64(m, 2)) != 0)
            return gw_fail(c, "timestamp out of range (years 1..9999)");
        gw_buf_putc(b, '"');
        return 0;
    }
    if (gw_is(d, "google.protobuf.Duration")) {
        gw_buf_putc(b, '"');
        if (gw_duration_format(b, gw_get_i64(m, 1), (int32_t)gw_get_i64(m, 2)) != 0)
            return gw_fail(c, "duration out of range");
        gw_buf_putc(b, '"');
        return 0;
    }
    if (gw_is_wrapper(d))
        return gw_enc_field_value(c, b, m, gw_field_id(d, 1));
    if (gw_is(d, "google.protobuf.Struct"))
        return gw_enc_field_value(c, b, m, gw_field_id(d, 1));
    if (gw_is(d, "google.protobuf.ListValue"))
        return gw_enc_field_value(c, b, m, gw_field_id(d, 1));
    if (gw_is(d, "google.protobuf.Value")) {
        for (unsigned i = 0; i < d->n_fields; i++)
            if (gw_field_present(m, &d->fields[i]))
                return gw_enc_field_value(c, b, m, &d->fields[i]);
        gw_buf_puts(b, "null");
        return 0;
    }
    if (gw_is(d, "google.protobuf.FieldMask")) {
        const ProtobufCFieldDescriptor *f = gw_field_id(d, 1);
        size_t n = GW_AT_C(m, f->quantifier_offset, size_t);
        char *const *paths = GW_AT_C(m, f->offset, char **);
        gw_buf joined;
        gw_buf_init(&joined);
        for (size_t i = 0; i < n; i++) {
            char jn[512];
            if (!gw_json_name(jn, sizeof jn, paths[i] ? paths[i] : "")) {
                gw_buf_dispose(&joined);
                return gw_fail(c, "field mask path too long");
            }
            if (i)
                gw_buf_putc(&joined, ',');
            gw_buf_puts(&joined, jn);
        }
        gw_buf_json_string(b, joined.data ? joined.data : "", joined.len);
        gw_buf_dispose(&joined);
        return 0;
    }
    if (gw_is(d, "google.protobuf.Any"))
        return gw_enc_any(c, b, m);
    *handled = false;
    return 0;
}

static int gw_enc_message(gw_ctx *c, gw_buf *b, const ProtobufCMessage *m)
{
    if (++c->depth > c->max_depth) {
        c->depth--;
        return gw_fail(c, "nesting deeper than %u", c->max_depth);
    }
    bool handled = false;
    int rc = 0;
    if (strncmp(m->descriptor->name, "google.protobuf.", 16) == 0)
        rc = gw_enc_wkt(c, b, m, &handled);
    if (!handled) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        bool first = true;
        gw_buf_putc(b, '{');
        for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            if (!gw_field_present(m, f))
                continue;
            char jn[256];
            if (!gw_json_name(jn, sizeof jn, f->name)) {
                rc = gw_fail(c, "field name too long");
                break;
            }
            if (!first)
                gw_buf_putc(b, ',');
            first = false;
            gw_buf_putc(b, '"');
            gw_buf_puts(b, jn);
            gw_buf_puts(b, "\":");
            rc = gw_enc_field_value(c, b, m, f);
        }
        gw_buf_putc(b, '}');
    }
    c->depth--;
    return rc;
}

int gw_json_encode(gw_buf *out, char *err, size_t err_len, const ProtobufCMessage *msg, const gw_json_options *o)
{
    gw_ctx c;
    gw_ctx_init(&c, err, err_len, o);
    if (gw_enc_message(&c, out, msg) != 0)
        return -1;
    if (out->oom) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

int gw_json_encode_field(gw_buf *out, char *err, size_t err_len, const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *field, const gw_json_options *o)
{
    gw_ctx c;
    gw_ctx_init(&c, err, err_len, o);
    if (gw_enc_field_value(&c, out, msg, field) != 0)
        return -1;
    if (out->oom) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* ======================================================================================= */
/* Decoding                                                                                 */
/* ======================================================================================= */

int gw_json_parse(json_t **out, char *err, size_t err_len, const char *text, size_t len)
{
    json_error_t e;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!*out) {
        snprintf(err, err_len, "malformed JSON at line %d, column %d: %s", e.line, e.column, e.text);
        return -1;
    }
    return 0;
}

static const char *gw_json_kind(const json_t *v)
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

static int gw_merge_message(gw_ctx *c, ProtobufCMessage *m, const json_t *v);
static int gw_set_field(gw_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v);

/* Frees what one value slot holds and resets it to zero/default. */
static void gw_slot_clear(const ProtobufCFieldDescriptor *f, void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = slot;
        if (*s && *s != (const char *)f->default_value && *s != protobuf_c_empty_string)
            free(*s);
        *s = NULL;
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = slot;
        const ProtobufCBinaryData *def = f->default_value;
        if (bd->data && (!def || bd->data != def->data))
            free(bd->data);
        bd->data = NULL;
        bd->len = 0;
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **pm = slot;
        if (*pm)
            protobuf_c_message_free_unpacked(*pm, NULL);
        *pm = NULL;
        return;
    }
    default:
        memset(slot, 0, gw_type_size(f->type));
    }
}

/* Resets a field (every element of a repeated one) to its default. */
static void gw_field_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *slot = (char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = &GW_AT(m, f->quantifier_offset, size_t);
        char *arr = GW_AT(m, f->offset, char *);
        size_t sz = gw_type_size(f->type);
        ProtobufCFieldDescriptor one = *f;
        one.label = PROTOBUF_C_LABEL_NONE;
        for (size_t i = 0; arr && i < *n; i++)
            gw_slot_clear(&one, arr + i * sz);
        free(arr);
        GW_AT(m, f->offset, char *) = NULL;
        *n = 0;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = &GW_AT(m, f->quantifier_offset, uint32_t);
        if (*cs != f->id)
            return;
        gw_slot_clear(f, slot);
        *cs = 0;
        return;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        gw_slot_clear(f, slot);
        *(char **)slot = f->default_value ? gw_unconst(f->default_value)
                         : f->label == PROTOBUF_C_LABEL_OPTIONAL ? NULL
                                                                  : gw_unconst(protobuf_c_empty_string);
        return;
    }
    gw_slot_clear(f, slot);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE)
        GW_AT(m, f->quantifier_offset, protobuf_c_boolean) = 0;
    if (f->default_value && f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BYTES)
        memcpy(slot, f->default_value, gw_type_size(f->type));
}

/* ---- scalars ---- */

static int gw_dec_int(gw_ctx *c, int64_t *sv, uint64_t *uv, bool is_unsigned, const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (is_unsigned) {
            if (x < 0)
                return gw_fail(c, "expected a non-negative integer, got %lld", (long long)x);
            *uv = (uint64_t)x;
        } else {
            *sv = (int64_t)x;
        }
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 9007199254740992.0)
            return gw_fail(c, "expected an integer, got %.17g (use a string for large values)", d);
        if (is_unsigned) {
            if (d < 0)
                return gw_fail(c, "expected a non-negative integer, got %.17g", d);
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
            return gw_fail(c, "expected an integer, got \"%.40s\"", s);
        errno = 0;
        if (is_unsigned) {
            if (s[0] == '-')
                return gw_fail(c, "expected a non-negative integer, got \"%.40s\"", s);
            *uv = strtoull(s, &end, 10);
        } else {
            *sv = strtoll(s, &end, 10);
        }
        if (errno == ERANGE)
            return gw_fail(c, "integer out of range: \"%.40s\"", s);
        if (*end || end == s)
            return gw_fail(c, "expected an integer, got \"%.40s\"", s);
        return 0;
    }
    return gw_fail(c, "expected an integer, got %s", gw_json_kind(v));
}

static int gw_dec_double(gw_ctx *c, double *out, const json_t *v, bool is_float)
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
            return gw_fail(c, "expected a number, got \"%.40s\"", s);
        d = strtod(s, &end);
        if (*end || errno == ERANGE)
            return gw_fail(c, "expected a number, got \"%.40s\"", s);
    } else {
        return gw_fail(c, "expected a number, got %s", gw_json_kind(v));
    }
    if (is_float && isfinite(d) && fabs(d) > FLT_MAX)
        return gw_fail(c, "number out of range for float: %g", d);
    *out = d;
    return 0;
}

static int gw_dec_enum(gw_ctx *c, int32_t *out, const ProtobufCEnumDescriptor *ed, const json_t *v)
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
            return gw_fail(c, "unknown value \"%.60s\" of enum %s", s, ed->name);
    }
    if (json_is_number(v) || json_is_string(v)) {
        int64_t x = 0;
        uint64_t ux = 0;
        char save[GW_JSON_ERR_MAX];
        snprintf(save, sizeof save, "%s", c->err);
        if (gw_dec_int(c, &x, &ux, false, v) != 0) {
            if (json_is_string(v))
                return gw_fail(c, "unknown value \"%.60s\" of enum %s", json_string_value(v), ed->name);
            return -1;
        }
        if (x < INT32_MIN || x > INT32_MAX)
            return gw_fail(c, "enum number out of range: %lld", (long long)x);
        *out = (int32_t)x;
        return 0;
    }
    return gw_fail(c, "expected an enum name (string) or number, got %s", gw_json_kind(v));
}

/* Decodes one value of f's type into slot (which holds a cleared value). */
static int gw_dec_value(gw_ctx *c, const ProtobufCFieldDescriptor *f, void *slot, const json_t *v)
{
    int64_t sv = 0;
    uint64_t uv = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if (gw_dec_int(c, &sv, &uv, false, v) != 0)
            return -1;
        if (sv < INT32_MIN || sv > INT32_MAX)
            return gw_fail(c, "integer out of range for int32: %lld", (long long)sv);
        *(int32_t *)slot = (int32_t)sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if (gw_dec_int(c, &sv, &uv, true, v) != 0)
            return -1;
        if (uv > UINT32_MAX)
            return gw_fail(c, "integer out of range for uint32: %llu", (unsigned long long)uv);
        *(uint32_t *)slot = (uint32_t)uv;
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if (gw_dec_int(c, &sv, &uv, false, v) != 0)
            return -1;
        *(int64_t *)slot = sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if (gw_dec_int(c, &sv, &uv, true, v) != 0)
            return -1;
        *(uint64_t *)slot = uv;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if (gw_dec_double(c, &d, v, true) != 0)
            return -1;
        *(float *)slot = (float)d;
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        return gw_dec_double(c, (double *)slot, v, false);
    case PROTOBUF_C_TYPE_BOOL:
        if (json_is_boolean(v)) {
            *(protobuf_c_boolean *)slot = json_is_true(v);
            return 0;
        }
        if (c->text && json_is_string(v)) {
            const char *s = json_string_value(v);
            if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
                *(protobuf_c_boolean *)slot = 1;
                return 0;
            }
            if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
                *(protobuf_c_boolean *)slot = 0;
                return 0;
            }
            return gw_fail(c, "expected true or false, got \"%.40s\"", s);
        }
        return gw_fail(c, "expected true or false, got %s", gw_json_kind(v));
    case PROTOBUF_C_TYPE_ENUM:
        return gw_dec_enum(c, (int32_t *)slot, f->descriptor, v);
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return gw_fail(c, "expected a string, got %s", gw_json_kind(v));
        size_t len = json_string_length(v);
        const char *s = json_string_value(v);
        if (memchr(s, '\0', len))
            return gw_fail(c, "strings may not contain NUL characters");
        char *copy = malloc(len + 1);
        if (!copy)
            return gw_fail(c, "out of memory");
        memcpy(copy, s, len + 1);
        *(char **)slot = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return gw_fail(c, "expected a base64 string, got %s", gw_json_kind(v));
        ProtobufCBinaryData *bd = slot;
        if (gw_base64_decode(&bd->data, &bd->len, json_string_value(v), json_string_length(v)) != 0)
            return gw_fail(c, "invalid base64");
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **pm = slot;
        if (!*pm) {
            *pm = gw_json_message_new(f->descriptor);
            if (!*pm)
                return gw_fail(c, "out of memory");
        }
        return gw_merge_message(c, *pm, v);
    }
    }
    return gw_fail(c, "unsupported field type %d", (int)f->type);
}

/* Appends one element to a repeated field; *slot gets the new zeroed slot. */
static int gw_repeated_grow(gw_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t extra)
{
    size_t *n = &GW_AT(m, f->quantifier_offset, size_t);
    char **arr = &GW_AT(m, f->offset, char *);
    size_t sz = gw_type_size(f->type);
    if (extra > (SIZE_MAX / sz) - *n - 1)
        return gw_fail(c, "too many elements");
    char *na = realloc(*arr, (*n + extra) * sz + 1);
    if (!na)
        return gw_fail(c, "out of memory");
    memset(na + *n * sz, 0, extra * sz);
    *arr = na;
    return 0;
}

/* Decodes v into a new last element of repeated field f. */
static int gw_repeated_append(gw_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    if (json_is_null(v))
        return gw_fail(c, "null is not allowed in a list");
    if (gw_repeated_grow(c, m, f, 1) != 0)
        return -1;
    size_t *n = &GW_AT(m, f->quantifier_offset, size_t);
    char *slot = GW_AT(m, f->offset, char *) + *n * gw_type_size(f->type);
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)(void *)slot = NULL;
    int rc = gw_dec_value(c, f, slot, v);
    if (rc != 0 && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        /* Keep the partly-set element so the message stays consistent. */
        if (*(ProtobufCMessage **)(void *)slot)
            (*n)++;
        return -1;
    }
    if (rc != 0)
        return -1;
    (*n)++;
    return 0;
}

static int gw_map_key(gw_ctx *c, ProtobufCMessage *e, const ProtobufCFieldDescriptor *kf, const char *key)
{
    json_t *k = json_string(key);
    if (!k)
        return gw_fail(c, "map key is not valid UTF-8");
    bool text = c->text;
    c->text = true; /* keys are strings whatever their type: "1", "true" */
    void *slot = (char *)e + kf->offset;
    gw_slot_clear(kf, slot);
    if (kf->type == PROTOBUF_C_TYPE_STRING)
        *(char **)slot = NULL;
    int rc = gw_dec_value(c, kf, slot, k);
    if (rc != 0 && kf->type == PROTOBUF_C_TYPE_STRING)
        *(char **)slot = gw_unconst(protobuf_c_empty_string);
    c->text = text;
    json_decref(k);
    return rc;
}

static int gw_set_map(gw_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    if (!json_is_object(v))
        return gw_fail(c, "expected an object (a map), got %s", gw_json_kind(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    gw_field_clear(m, f);
    if (gw_repeated_grow(c, m, f, json_object_size(v)) != 0)
        return -1;
    const char *key;
    json_t *val;
    json_t *obj = gw_jmut(v);
    json_object_foreach(obj, key, val) {
        size_t *n = &GW_AT(m, f->quantifier_offset, size_t);
        ProtobufCMessage **arr = GW_AT(m, f->offset, ProtobufCMessage **);
        ProtobufCMessage *e = gw_json_message_new(ed);
        if (!e)
            return gw_fail(c, "out of memory");
        arr[(*n)++] = e;
        size_t old = gw_path_push(c, key);
        int rc = gw_map_key(c, e, kf, key);
        if (rc == 0) {
            if (json_is_null(val) && !(vf->type == PROTOBUF_C_TYPE_MESSAGE &&
                                       gw_is(vf->descriptor, "google.protobuf.Value")))
                rc = gw_fail(c, "null is not allowed as a map value");
            else
                rc = gw_set_field(c, e, vf, val);
        }
        gw_path_pop(c, old);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int gw_set_field(gw_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (gw_json_field_is_map(d, f))
            return gw_set_map(c, m, f, v);
        if (c->text)
            return gw_repeated_append(c, m, f, v);
        if (json_is_null(v)) {
            gw_field_clear(m, f);
            return 0;
        }
        if (!json_is_array(v))
            return gw_fail(c, "expected an array, got %s", gw_json_kind(v));
        gw_field_clear(m, f);
        if (gw_repeated_grow(c, m, f, json_array_size(v)) != 0)
            return -1;
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            size_t old = gw_path_push(c, idx);
            /* gw_repeated_append grows again; the array already has room. */
            int rc;
            if (json_is_null(el)) {
                rc = gw_fail(c, "null is not allowed in a list");
            } else {
                size_t *n = &GW_AT(m, f->quantifier_offset, size_t);
                char *slot = GW_AT(m, f->offset, char *) + *n * gw_type_size(f->type);
                rc = gw_dec_value(c, f, slot, el);
                if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)(void *)slot))
                    (*n)++;
            }
            gw_path_pop(c, old);
            if (rc != 0)
                return -1;
        }
        return 0;
    }

    bool is_value_msg = f->type == PROTOBUF_C_TYPE_MESSAGE && gw_is(f->descriptor, "google.protobuf.Value");
    bool is_null_enum = f->type == PROTOBUF_C_TYPE_ENUM &&
                        strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name, "google.protobuf.NullValue") == 0;
    if (json_is_null(v) && !is_value_msg && !is_null_enum) {
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            gw_field_clear(m, f);
        return 0;
    }
    void *slot = (char *)m + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = &GW_AT(m, f->quantifier_offset, uint32_t);
        if (*cs != 0 && *cs != f->id) {
            for (unsigned i = 0; i < d->n_fields; i++)
                if (d->fields[i].id == *cs)
                    return gw_fail(c, "only one field of a oneof may be set; \"%s\" is set too", d->fields[i].name);
            return gw_fail(c, "only one field of a oneof may be set");
        }
        if (*cs == f->id && f->type != PROTOBUF_C_TYPE_MESSAGE)
            gw_field_clear(m, f);
        if (*cs != f->id) {
            /* The union may hold another member's bytes: start clean. */
            memset(slot, 0, gw_type_size(f->type));
        }
        int rc = gw_dec_value(c, f, slot, v);
        if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)slot))
            *cs = f->id;
        else if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)slot = NULL;
        return rc;
    }
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        gw_field_clear(m, f);
        if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)slot = NULL;
    }
    int rc = gw_dec_value(c, f, slot, v);
    if (f->type == PROTOBUF_C_TYPE_STRING && rc != 0)
        *(char **)slot = f->label == PROTOBUF_C_LABEL_OPTIONAL ? NULL : gw_unconst(protobuf_c_empty_string);
    if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        GW_AT(m, f->quantifier_offset, protobuf_c_boolean) = 1;
    return rc;
}

/* ---- well-known types ---- */

static void gw_set_i64(ProtobufCMessage *m, unsigned id, int64_t v)
{
    const ProtobufCFieldDescriptor *f = gw_field_id(m->descriptor, id);
    if (!f)
        return;
    if (gw_type_size(f->type) == 8)
        GW_AT(m, f->offset, int64_t) = v;
    else
        GW_AT(m, f->offset, int32_t) = (int32_t)v;
}

static int gw_dec_any(gw_ctx *c, ProtobufCMessage *m, const json_t *v)
{
    if (!json_is_object(v))
        return gw_fail(c, "expected an object with \"@type\", got %s", gw_json_kind(v));
    const json_t *t = json_object_get(v, "@type");
    if (!json_is_string(t))
        return gw_fail(c, "an Any needs a string \"@type\"");
    const char *url = json_string_value(t);
    const char *slash = strrchr(url, '/');
    const char *type = slash ? slash + 1 : url;
    const ProtobufCMessageDescriptor *td = c->o->resolve ? c->o->resolve(c->o->resolve_arg, type) : NULL;
    if (!td)
        return gw_fail(c, "unknown type \"%.100s\" in \"@type\"", url);
    ProtobufCMessage *inner = gw_json_message_new(td);
    if (!inner)
        return gw_fail(c, "out of memory");
    int rc;
    bool special = strncmp(td->name, "google.protobuf.", 16) == 0 && !gw_is(td, "google.protobuf.Empty");
    if (special) {
        const json_t *val = json_object_get(v, "value");
        rc = val && json_object_size(v) == 2 ? gw_merge_message(c, inner, val)
                                             : gw_fail(c, "an Any of %s takes exactly \"@type\" and \"value\"", td->name);
    } else {
        json_t *rest = json_object();
        rc = rest ? 0 : gw_fail(c, "out of memory");
        const char *k;
        json_t *x;
        json_t *obj = gw_jmut(v);
        json_object_foreach(obj, k, x) {
            if (rc == 0 && strcmp(k, "@type") != 0 && json_object_set(rest, k, x) != 0)
                rc = gw_fail(c, "out of memory");
        }
        if (rc == 0)
            rc = gw_merge_message(c, inner, rest);
        json_decref(rest);
    }
    if (rc == 0) {
        size_t len = protobuf_c_message_get_packed_size(inner);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            rc = gw_fail(c, "out of memory");
        } else {
            protobuf_c_message_pack(inner, buf);
            const ProtobufCFieldDescriptor *uf = gw_field_id(m->descriptor, 1), *vf = gw_field_id(m->descriptor, 2);
            gw_field_clear(m, uf);
            gw_field_clear(m, vf);
            char *u = strdup(url);
            if (!u) {
                free(buf);
                rc = gw_fail(c, "out of memory");
            } else {
                GW_AT(m, uf->offset, char *) = u;
                GW_AT(m, vf->offset, ProtobufCBinaryData).data = buf;
                GW_AT(m, vf->offset, ProtobufCBinaryData).len = len;
            }
        }
    }
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

static int gw_dec_wkt(gw_ctx *c, ProtobufCMessage *m, const json_t *v, bool *handled)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    *handled = true;
    if (gw_is(d, "google.protobuf.Timestamp") || gw_is(d, "google.protobuf.Duration")) {
        bool ts = gw_is(d, "google.protobuf.Timestamp");
        if (!json_is_string(v))
            return gw_fail(c, "expected a %s string, got %s", ts ? "RFC 3339 timestamp" : "duration (\"1.5s\")",
                           gw_json_kind(v));
        int64_t s;
        int32_t ns;
        const char *t = json_string_value(v);
        int rc = ts ? gw_timestamp_parse(&s, &ns, t, json_string_length(v))
                    : gw_duration_parse(&s, &ns, t, json_string_length(v));
        if (rc != 0)
            return gw_fail(c, ts ? "invalid RFC 3339 timestamp \"%.60s\" (e.g. 2024-05-01T12:00:00Z)"
                                 : "invalid duration \"%.60s\" (e.g. 1.5s)", t);
        gw_set_i64(m, 1, s);
        gw_set_i64(m, 2, ns);
        return 0;
    }
    if (gw_is_wrapper(d))
        return gw_set_field(c, m, gw_field_id(d, 1), v);
    if (gw_is(d, "google.protobuf.Struct")) {
        if (!json_is_object(v))
            return gw_fail(c, "expected an object, got %s", gw_json_kind(v));
        return gw_set_field(c, m, gw_field_id(d, 1), v);
    }
    if (gw_is(d, "google.protobuf.ListValue")) {
        if (!json_is_array(v))
            return gw_fail(c, "expected an array, got %s", gw_json_kind(v));
        return gw_set_field(c, m, gw_field_id(d, 1), v);
    }
    if (gw_is(d, "google.protobuf.Value")) {
        const char *name;
        switch (json_typeof(v)) {
        case JSON_NULL: name = "null_value"; break;
        case JSON_INTEGER: case JSON_REAL: name = "number_value"; break;
        case JSON_STRING: name = "string_value"; break;
        case JSON_TRUE: case JSON_FALSE: name = "bool_value"; break;
        case JSON_OBJECT: name = "struct_value"; break;
        default: name = "list_value"; break;
        }
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
        if (!f)
            return gw_fail(c, "google.protobuf.Value has no %s", name);
        for (unsigned i = 0; i < d->n_fields; i++)
            gw_field_clear(m, &d->fields[i]);
        return gw_set_field(c, m, f, v);
    }
    if (gw_is(d, "google.protobuf.FieldMask")) {
        if (!json_is_string(v))
            return gw_fail(c, "expected a field mask string (\"a.b,c\"), got %s", gw_json_kind(v));
        const ProtobufCFieldDescriptor *f = gw_field_id(d, 1);
        gw_field_clear(m, f);
        const char *s = json_string_value(v);
        bool text = c->text;
        c->text = true;
        int rc = 0;
        while (*s && rc == 0) {
            size_t n = strcspn(s, ",");
            char part[512], snake[600];
            if (n >= sizeof part) {
                rc = gw_fail(c, "field mask path too long");
                break;
            }
            memcpy(part, s, n);
            part[n] = '\0';
            if (!gw_snake_name(snake, sizeof snake, part)) {
                rc = gw_fail(c, "field mask path too long");
                break;
            }
            json_t *p = json_string(snake);
            rc = p ? gw_repeated_append(c, m, f, p) : gw_fail(c, "invalid field mask");
            json_decref(p);
            s += n;
            if (*s == ',')
                s++;
        }
        c->text = text;
        return rc;
    }
    if (gw_is(d, "google.protobuf.Any"))
        return gw_dec_any(c, m, v);
    *handled = false;
    return 0;
}

static int gw_merge_message(gw_ctx *c, ProtobufCMessage *m, const json_t *v)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (c->depth + 1 > c->max_depth)
        return gw_fail(c, "nesting deeper than %u", c->max_depth);
    c->depth++;
    int rc = 0;
    bool handled = false;
    if (strncmp(d->name, "google.protobuf.", 16) == 0)
        rc = gw_dec_wkt(c, m, v, &handled);
    if (handled) {
        c->depth--;
        return rc;
    }
    if (!json_is_object(v)) {
        c->depth--;
        return gw_fail(c, "expected an object (%s), got %s", d->name, gw_json_kind(v));
    }
    unsigned char seen_small[64];
    unsigned char *seen = d->n_fields <= sizeof seen_small ? seen_small : calloc(d->n_fields, 1);
    if (!seen) {
        c->depth--;
        return gw_fail(c, "out of memory");
    }
    memset(seen, 0, d->n_fields <= sizeof seen_small ? sizeof seen_small : 0);
    const char *key;
    json_t *val;
    json_t *obj = gw_jmut(v);
    json_object_foreach(obj, key, val) {
        const ProtobufCFieldDescriptor *f = gw_json_find_field(d, key);
        if (!f) {
            rc = gw_fail(c, "unknown field \"%.100s\" in %s", key, d->name);
            break;
        }
        size_t idx = (size_t)(f - d->fields);
        if (seen[idx]) {
            rc = gw_fail(c, "field \"%s\" given twice (as \"%.100s\" too)", f->name, key);
            break;
        }
        seen[idx] = 1;
        size_t old = gw_path_push(c, f->name);
        rc = gw_set_field(c, m, f, val);
        gw_path_pop(c, old);
        if (rc != 0)
            break;
    }
    if (seen != seen_small)
        free(seen);
    c->depth--;
    return rc;
}

int gw_json_merge(ProtobufCMessage *msg, char *err, size_t err_len, const json_t *value, const gw_json_options *o)
{
    gw_ctx c;
    gw_ctx_init(&c, err, err_len, o);
    return gw_merge_message(&c, msg, value);
}

int gw_json_merge_field(ProtobufCMessage *msg, char *err, size_t err_len, const ProtobufCFieldDescriptor *field,
                        const json_t *value, const gw_json_options *o)
{
    gw_ctx c;
    gw_ctx_init(&c, err, err_len, o);
    gw_path_push(&c, field->name);
    return gw_set_field(&c, msg, field, value);
}

int gw_json_set_path(ProtobufCMessage *msg, char *err, size_t err_len, const char *path, const char *text,
                     size_t text_len, const gw_json_options *o)
{
    gw_ctx c;
    gw_ctx_init(&c, err, err_len, o);
    c.text = true;
    ProtobufCMessage *m = msg;
    const char *p = path;
    for (;;) {
        size_t n = strcspn(p, ".");
        char name[256];
        if (n == 0 || n >= sizeof name)
            return gw_fail(&c, "invalid field path \"%.100s\"", path);
        memcpy(name, p, n);
        name[n] = '\0';
        const ProtobufCFieldDescriptor *f = gw_json_find_field(m->descriptor, name);
        if (!f)
            return gw_fail(&c, "unknown field \"%.100s\" in %s", path, m->descriptor->name);
        gw_path_push(&c, f->name);
        if (p[n] == '.') {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
                return gw_fail(&c, "is not a message field, so \"%.100s\" does not name a field", path);
            ProtobufCMessage **pm = &GW_AT(m, f->offset, ProtobufCMessage *);
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t *cs = &GW_AT(m, f->quantifier_offset, uint32_t);
                if (*cs != 0 && *cs != f->id)
                    return gw_fail(&c, "another field of its oneof is set");
                if (*cs != f->id)
                    *pm = NULL;
                *cs = f->id;
            }
            if (!*pm) {
                *pm = gw_json_message_new(f->descriptor);
                if (!*pm)
                    return gw_fail(&c, "out of memory");
            }
            m = *pm;
            p += n + 1;
            continue;
        }
        if (memchr(text, '\0', text_len) || !gw_utf8_valid(text, text_len))
            return gw_fail(&c, "the value is not valid UTF-8 text");
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessageDescriptor *md = f->descriptor;
            if (strncmp(md->name, "google.protobuf.", 16) != 0 || gw_is(md, "google.protobuf.Struct") ||
                gw_is(md, "google.protobuf.ListValue") || gw_is(md, "google.protobuf.Any") ||
                gw_is(md, "google.protobuf.Empty"))
                return gw_fail(&c, "a message field cannot be set from a URL; name its fields (\"%s.x\")", f->name);
        }
        json_t *v = json_stringn(text, text_len);
        if (!v)
            return gw_fail(&c, "out of memory");
        int rc = gw_set_field(&c, m, f, v);
        json_decref(v);
        return rc;
    }
}
