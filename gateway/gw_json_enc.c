/* gw_json_enc: protobuf-c message -> proto3 JSON (gw_json_encode,
 * gw_json_encode_field), the well-known types' special forms included. */
#include "gw_json_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int gw_json_enc_message(gw_json_ctx *c, gw_buf *b, const ProtobufCMessage *m);

static int gw_json_enc_scalar(gw_json_ctx *c, gw_buf *b, const ProtobufCFieldDescriptor *f, const void *p)
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
        return gw_json_enc_message(c, b, m);
    }
    }
    return gw_json_fail(c, "unsupported field type %d", (int)f->type);
}

/* A map key as a JSON object key. */
static void gw_json_enc_map_key(gw_buf *b, const ProtobufCFieldDescriptor *kf, const void *p)
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

static int gw_json_enc_field_value(gw_json_ctx *c, gw_buf *b, const ProtobufCMessage *m,
                                   const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return gw_json_enc_scalar(c, b, f, (const char *)m + f->offset);
    size_t n = GW_JSON_AT_C(m, f->quantifier_offset, size_t);
    const char *arr = GW_JSON_AT_C(m, f->offset, char *);
    size_t sz = gw_json_type_size(f->type);
    if (gw_json_field_is_map(d, f)) {
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
        gw_buf_putc(b, '{');
        for (size_t i = 0; i < n; i++) {
            const ProtobufCMessage *e = ((ProtobufCMessage *const *)(const void *)arr)[i];
            if (i)
                gw_buf_putc(b, ',');
            gw_json_enc_map_key(b, kf, (const char *)e + kf->offset);
            gw_buf_putc(b, ':');
            if (gw_json_enc_scalar(c, b, vf, (const char *)e + vf->offset) != 0)
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
        if (gw_json_enc_scalar(c, b, f, arr + i * sz) != 0)
            return -1;
    }
    gw_buf_putc(b, ']');
    return 0;
}

/* Whether a field is written: oneof members and optional fields with
 * presence only when set; everything else always. */
static bool gw_json_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return GW_JSON_AT_C(m, f->quantifier_offset, uint32_t) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
            return GW_JSON_AT_C(m, f->offset, void *) != NULL;
        return GW_JSON_AT_C(m, f->quantifier_offset, protobuf_c_boolean) != 0;
    }
    return true;
}

static int64_t gw_json_get_i64(const ProtobufCMessage *m, unsigned id)
{
    const ProtobufCFieldDescriptor *f = gw_json_field_id(m->descriptor, id);
    if (!f)
        return 0;
    return gw_json_type_size(f->type) == 8 ? GW_JSON_AT_C(m, f->offset, int64_t) : GW_JSON_AT_C(m, f->offset, int32_t);
}

static int gw_json_enc_any(gw_json_ctx *c, gw_buf *b, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *url = GW_JSON_AT_C(m, gw_json_field_id(d, 1)->offset, char *);
    const ProtobufCBinaryData *v = &GW_JSON_AT_C(m, gw_json_field_id(d, 2)->offset, ProtobufCBinaryData);
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
    int rc = gw_json_enc_message(c, &buf, inner);
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

static int gw_json_enc_wkt(gw_json_ctx *c, gw_buf *b, const ProtobufCMessage *m, bool *handled)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    *handled = true;
    if (gw_json_is(d, "google.protobuf.Timestamp")) {
        gw_buf_putc(b, '"');
        if (gw_timestamp_format(b, gw_json_get_i64(m, 1), (int32_t)gw_json_get_i64(m, 2)) != 0)
            return gw_json_fail(c, "timestamp out of range (years 1..9999)");
        gw_buf_putc(b, '"');
        return 0;
    }
    if (gw_json_is(d, "google.protobuf.Duration")) {
        gw_buf_putc(b, '"');
        if (gw_duration_format(b, gw_json_get_i64(m, 1), (int32_t)gw_json_get_i64(m, 2)) != 0)
            return gw_json_fail(c, "duration out of range");
        gw_buf_putc(b, '"');
        return 0;
    }
    if (gw_json_is_wrapper(d))
        return gw_json_enc_field_value(c, b, m, gw_json_field_id(d, 1));
    if (gw_json_is(d, "google.protobuf.Struct"))
        return gw_json_enc_field_value(c, b, m, gw_json_field_id(d, 1));
    if (gw_json_is(d, "google.protobuf.ListValue"))
        return gw_json_enc_field_value(c, b, m, gw_json_field_id(d, 1));
    if (gw_json_is(d, "google.protobuf.Value")) {
        for (unsigned i = 0; i < d->n_fields; i++)
            if (gw_json_field_present(m, &d->fields[i]))
                return gw_json_enc_field_value(c, b, m, &d->fields[i]);
        gw_buf_puts(b, "null");
        return 0;
    }
    if (gw_json_is(d, "google.protobuf.FieldMask")) {
        const ProtobufCFieldDescriptor *f = gw_json_field_id(d, 1);
        size_t n = GW_JSON_AT_C(m, f->quantifier_offset, size_t);
        char *const *paths = GW_JSON_AT_C(m, f->offset, char **);
        gw_buf joined;
        gw_buf_init(&joined);
        for (size_t i = 0; i < n; i++) {
            char jn[512];
            if (!gw_json_name(jn, sizeof jn, paths[i] ? paths[i] : "")) {
                gw_buf_dispose(&joined);
                return gw_json_fail(c, "field mask path too long");
            }
            if (i)
                gw_buf_putc(&joined, ',');
            gw_buf_puts(&joined, jn);
        }
        gw_buf_json_string(b, joined.data ? joined.data : "", joined.len);
        gw_buf_dispose(&joined);
        return 0;
    }
    if (gw_json_is(d, "google.protobuf.Any"))
        return gw_json_enc_any(c, b, m);
    *handled = false;
    return 0;
}

static int gw_json_enc_message(gw_json_ctx *c, gw_buf *b, const ProtobufCMessage *m)
{
    if (++c->depth > c->max_depth) {
        c->depth--;
        return gw_json_fail(c, "nesting deeper than %u", c->max_depth);
    }
    bool handled = false;
    int rc = 0;
    if (strncmp(m->descriptor->name, "google.protobuf.", 16) == 0)
        rc = gw_json_enc_wkt(c, b, m, &handled);
    if (!handled) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        bool first = true;
        gw_buf_putc(b, '{');
        for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            if (!gw_json_field_present(m, f))
                continue;
            char jn[256];
            if (!gw_json_name(jn, sizeof jn, f->name)) {
                rc = gw_json_fail(c, "field name too long");
                break;
            }
            if (!first)
                gw_buf_putc(b, ',');
            first = false;
            gw_buf_putc(b, '"');
            gw_buf_puts(b, jn);
            gw_buf_puts(b, "\":");
            rc = gw_json_enc_field_value(c, b, m, f);
        }
        gw_buf_putc(b, '}');
    }
    c->depth--;
    return rc;
}

int gw_json_encode(gw_buf *out, char *err, size_t err_len, const ProtobufCMessage *msg, const gw_json_options *o)
{
    gw_json_ctx c;
    gw_json_ctx_init(&c, err, err_len, o);
    if (gw_json_enc_message(&c, out, msg) != 0)
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
    gw_json_ctx c;
    gw_json_ctx_init(&c, err, err_len, o);
    if (gw_json_enc_field_value(&c, out, msg, field) != 0)
        return -1;
    if (out->oom) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}
