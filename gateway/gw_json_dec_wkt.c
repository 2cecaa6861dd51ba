/* gw_json_dec_wkt: the well-known types' special JSON forms, decoded
 * (Timestamp and Duration strings, wrappers as their value, Struct, Value
 * and ListValue as plain JSON, FieldMask "a.b,c", Any with "@type"). */
#include "gw_json_dec.h"

#include <stdlib.h>
#include <string.h>

static void gw_json_set_i64(ProtobufCMessage *m, unsigned id, int64_t v)
{
    const ProtobufCFieldDescriptor *f = gw_json_field_id(m->descriptor, id);
    if (!f)
        return;
    if (gw_json_type_size(f->type) == 8)
        GW_JSON_AT(m, f->offset, int64_t) = v;
    else
        GW_JSON_AT(m, f->offset, int32_t) = (int32_t)v;
}

static int gw_json_dec_any(gw_json_ctx *c, ProtobufCMessage *m, const json_t *v)
{
    if (!json_is_object(v))
        return gw_json_fail(c, "expected an object with \"@type\", got %s", gw_json_kind(v));
    const json_t *t = json_object_get(v, "@type");
    if (!json_is_string(t))
        return gw_json_fail(c, "an Any needs a string \"@type\"");
    const char *url = json_string_value(t);
    const char *slash = strrchr(url, '/');
    const char *type = slash ? slash + 1 : url;
    const ProtobufCMessageDescriptor *td = c->o->resolve ? c->o->resolve(c->o->resolve_arg, type) : NULL;
    if (!td)
        return gw_json_fail(c, "unknown type \"%.100s\" in \"@type\"", url);
    ProtobufCMessage *inner = gw_json_message_new(td);
    if (!inner)
        return gw_json_fail(c, "out of memory");
    int rc;
    bool special = strncmp(td->name, "google.protobuf.", 16) == 0 && !gw_json_is(td, "google.protobuf.Empty");
    if (special) {
        const json_t *val = json_object_get(v, "value");
        rc = val && json_object_size(v) == 2 ? gw_json_merge_message(c, inner, val)
                                             : gw_json_fail(c, "an Any of %s takes exactly \"@type\" and \"value\"",
                                                            td->name);
    } else {
        json_t *rest = json_object();
        rc = rest ? 0 : gw_json_fail(c, "out of memory");
        const char *k;
        json_t *x;
        json_t *obj = gw_json_jmut(v);
        json_object_foreach(obj, k, x) {
            if (rc == 0 && strcmp(k, "@type") != 0 && json_object_set(rest, k, x) != 0)
                rc = gw_json_fail(c, "out of memory");
        }
        if (rc == 0)
            rc = gw_json_merge_message(c, inner, rest);
        json_decref(rest);
    }
    if (rc == 0) {
        size_t len = protobuf_c_message_get_packed_size(inner);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            rc = gw_json_fail(c, "out of memory");
        } else {
            protobuf_c_message_pack(inner, buf);
            const ProtobufCFieldDescriptor *uf = gw_json_field_id(m->descriptor, 1);
            const ProtobufCFieldDescriptor *vf = gw_json_field_id(m->descriptor, 2);
            gw_json_field_clear(m, uf);
            gw_json_field_clear(m, vf);
            char *u = strdup(url);
            if (!u) {
                free(buf);
                rc = gw_json_fail(c, "out of memory");
            } else {
                GW_JSON_AT(m, uf->offset, char *) = u;
                GW_JSON_AT(m, vf->offset, ProtobufCBinaryData).data = buf;
                GW_JSON_AT(m, vf->offset, ProtobufCBinaryData).len = len;
            }
        }
    }
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

int gw_json_dec_wkt(gw_json_ctx *c, ProtobufCMessage *m, const json_t *v, bool *handled)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    *handled = true;
    if (gw_json_is(d, "google.protobuf.Timestamp") || gw_json_is(d, "google.protobuf.Duration")) {
        bool ts = gw_json_is(d, "google.protobuf.Timestamp");
        if (!json_is_string(v))
            return gw_json_fail(c, "expected a %s string, got %s", ts ? "RFC 3339 timestamp" : "duration (\"1.5s\")",
                           gw_json_kind(v));
        int64_t s;
        int32_t ns;
        const char *t = json_string_value(v);
        int rc = ts ? gw_timestamp_parse(&s, &ns, t, json_string_length(v))
                    : gw_duration_parse(&s, &ns, t, json_string_length(v));
        if (rc != 0)
            return gw_json_fail(c, ts ? "invalid RFC 3339 timestamp \"%.60s\" (e.g. 2024-05-01T12:00:00Z)"
                                 : "invalid duration \"%.60s\" (e.g. 1.5s)", t);
        gw_json_set_i64(m, 1, s);
        gw_json_set_i64(m, 2, ns);
        return 0;
    }
    if (gw_json_is_wrapper(d))
        return gw_json_set_field(c, m, gw_json_field_id(d, 1), v);
    if (gw_json_is(d, "google.protobuf.Struct")) {
        if (!json_is_object(v))
            return gw_json_fail(c, "expected an object, got %s", gw_json_kind(v));
        return gw_json_set_field(c, m, gw_json_field_id(d, 1), v);
    }
    if (gw_json_is(d, "google.protobuf.ListValue")) {
        if (!json_is_array(v))
            return gw_json_fail(c, "expected an array, got %s", gw_json_kind(v));
        return gw_json_set_field(c, m, gw_json_field_id(d, 1), v);
    }
    if (gw_json_is(d, "google.protobuf.Value")) {
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
            return gw_json_fail(c, "google.protobuf.Value has no %s", name);
        for (unsigned i = 0; i < d->n_fields; i++)
            gw_json_field_clear(m, &d->fields[i]);
        return gw_json_set_field(c, m, f, v);
    }
    if (gw_json_is(d, "google.protobuf.FieldMask")) {
        if (!json_is_string(v))
            return gw_json_fail(c, "expected a field mask string (\"a.b,c\"), got %s", gw_json_kind(v));
        const ProtobufCFieldDescriptor *f = gw_json_field_id(d, 1);
        gw_json_field_clear(m, f);
        const char *s = json_string_value(v);
        bool text = c->text;
        c->text = true;
        int rc = 0;
        while (*s && rc == 0) {
            size_t n = strcspn(s, ",");
            char part[512], snake[600];
            if (n >= sizeof part) {
                rc = gw_json_fail(c, "field mask path too long");
                break;
            }
            memcpy(part, s, n);
            part[n] = '\0';
            if (!gw_snake_name(snake, sizeof snake, part)) {
                rc = gw_json_fail(c, "field mask path too long");
                break;
            }
            json_t *p = json_string(snake);
            rc = p ? gw_json_repeated_append(c, m, f, p) : gw_json_fail(c, "invalid field mask");
            json_decref(p);
            s += n;
            if (*s == ',')
                s++;
        }
        c->text = text;
        return rc;
    }
    if (gw_json_is(d, "google.protobuf.Any"))
        return gw_json_dec_any(c, m, v);
    *handled = false;
    return 0;
}
