/* gw_json_dec: proto3 JSON -> protobuf-c message: gw_json_parse,
 * gw_json_merge, gw_json_merge_field and gw_json_set_path (URL text). The
 * scalars are in gw_json_dec_scalar.c, the well-known types in
 * gw_json_dec_wkt.c. */
#include "gw_json_dec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The empty string and string defaults, as the char * fields hold them. */
static char *gw_json_unconst(const void *p)
{
    return (char *)(uintptr_t)p;
}

static size_t gw_json_path_push(gw_json_ctx *c, const char *name)
{
    size_t old = c->path_len;
    int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", name);
    if (n > 0)
        c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static void gw_json_path_pop(gw_json_ctx *c, size_t old)
{
    c->path_len = old;
    c->path[old] = '\0';
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

ProtobufCMessage *gw_json_message_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

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

/* Frees what one value slot holds and resets it to zero/default. */
static void gw_json_slot_clear(const ProtobufCFieldDescriptor *f, void *slot)
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
        memset(slot, 0, gw_json_type_size(f->type));
    }
}

/* Resets a field (every element of a repeated one) to its default. */
void gw_json_field_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *slot = (char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = &GW_JSON_AT(m, f->quantifier_offset, size_t);
        char *arr = GW_JSON_AT(m, f->offset, char *);
        size_t sz = gw_json_type_size(f->type);
        ProtobufCFieldDescriptor one = *f;
        one.label = PROTOBUF_C_LABEL_NONE;
        for (size_t i = 0; arr && i < *n; i++)
            gw_json_slot_clear(&one, arr + i * sz);
        free(arr);
        GW_JSON_AT(m, f->offset, char *) = NULL;
        *n = 0;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = &GW_JSON_AT(m, f->quantifier_offset, uint32_t);
        if (*cs != f->id)
            return;
        gw_json_slot_clear(f, slot);
        *cs = 0;
        return;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        gw_json_slot_clear(f, slot);
        *(char **)slot = f->default_value ? gw_json_unconst(f->default_value)
                         : f->label == PROTOBUF_C_LABEL_OPTIONAL ? NULL
                                                                  : gw_json_unconst(protobuf_c_empty_string);
        return;
    }
    gw_json_slot_clear(f, slot);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE)
        GW_JSON_AT(m, f->quantifier_offset, protobuf_c_boolean) = 0;
    if (f->default_value && f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BYTES)
        memcpy(slot, f->default_value, gw_json_type_size(f->type));
}

/* Decodes one value of f's type into slot (which holds a cleared value). */
static int gw_json_dec_value(gw_json_ctx *c, const ProtobufCFieldDescriptor *f, void *slot, const json_t *v)
{
    int64_t sv = 0;
    uint64_t uv = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if (gw_json_dec_int(c, &sv, &uv, false, v) != 0)
            return -1;
        if (sv < INT32_MIN || sv > INT32_MAX)
            return gw_json_fail(c, "integer out of range for int32: %lld", (long long)sv);
        *(int32_t *)slot = (int32_t)sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if (gw_json_dec_int(c, &sv, &uv, true, v) != 0)
            return -1;
        if (uv > UINT32_MAX)
            return gw_json_fail(c, "integer out of range for uint32: %llu", (unsigned long long)uv);
        *(uint32_t *)slot = (uint32_t)uv;
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if (gw_json_dec_int(c, &sv, &uv, false, v) != 0)
            return -1;
        *(int64_t *)slot = sv;
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if (gw_json_dec_int(c, &sv, &uv, true, v) != 0)
            return -1;
        *(uint64_t *)slot = uv;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if (gw_json_dec_double(c, &d, v, true) != 0)
            return -1;
        *(float *)slot = (float)d;
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        return gw_json_dec_double(c, (double *)slot, v, false);
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
            return gw_json_fail(c, "expected true or false, got \"%.40s\"", s);
        }
        return gw_json_fail(c, "expected true or false, got %s", gw_json_kind(v));
    case PROTOBUF_C_TYPE_ENUM:
        return gw_json_dec_enum(c, (int32_t *)slot, f->descriptor, v);
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return gw_json_fail(c, "expected a string, got %s", gw_json_kind(v));
        size_t len = json_string_length(v);
        const char *s = json_string_value(v);
        if (memchr(s, '\0', len))
            return gw_json_fail(c, "strings may not contain NUL characters");
        char *copy = malloc(len + 1);
        if (!copy)
            return gw_json_fail(c, "out of memory");
        memcpy(copy, s, len + 1);
        *(char **)slot = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return gw_json_fail(c, "expected a base64 string, got %s", gw_json_kind(v));
        ProtobufCBinaryData *bd = slot;
        if (gw_base64_decode(&bd->data, &bd->len, json_string_value(v), json_string_length(v)) != 0)
            return gw_json_fail(c, "invalid base64");
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **pm = slot;
        if (!*pm) {
            *pm = gw_json_message_new(f->descriptor);
            if (!*pm)
                return gw_json_fail(c, "out of memory");
        }
        return gw_json_merge_message(c, *pm, v);
    }
    }
    return gw_json_fail(c, "unsupported field type %d", (int)f->type);
}

/* Appends one element to a repeated field; *slot gets the new zeroed slot. */
static int gw_json_repeated_grow(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t extra)
{
    size_t *n = &GW_JSON_AT(m, f->quantifier_offset, size_t);
    char **arr = &GW_JSON_AT(m, f->offset, char *);
    size_t sz = gw_json_type_size(f->type);
    if (extra > (SIZE_MAX / sz) - *n - 1)
        return gw_json_fail(c, "too many elements");
    char *na = realloc(*arr, (*n + extra) * sz + 1);
    if (!na)
        return gw_json_fail(c, "out of memory");
    memset(na + *n * sz, 0, extra * sz);
    *arr = na;
    return 0;
}

/* Decodes v into a new last element of repeated field f. */
int gw_json_repeated_append(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    if (json_is_null(v))
        return gw_json_fail(c, "null is not allowed in a list");
    if (gw_json_repeated_grow(c, m, f, 1) != 0)
        return -1;
    size_t *n = &GW_JSON_AT(m, f->quantifier_offset, size_t);
    char *slot = GW_JSON_AT(m, f->offset, char *) + *n * gw_json_type_size(f->type);
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)(void *)slot = NULL;
    int rc = gw_json_dec_value(c, f, slot, v);
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

static int gw_json_map_key(gw_json_ctx *c, ProtobufCMessage *e, const ProtobufCFieldDescriptor *kf, const char *key)
{
    json_t *k = json_string(key);
    if (!k)
        return gw_json_fail(c, "map key is not valid UTF-8");
    bool text = c->text;
    c->text = true; /* keys are strings whatever their type: "1", "true" */
    void *slot = (char *)e + kf->offset;
    gw_json_slot_clear(kf, slot);
    if (kf->type == PROTOBUF_C_TYPE_STRING)
        *(char **)slot = NULL;
    int rc = gw_json_dec_value(c, kf, slot, k);
    if (rc != 0 && kf->type == PROTOBUF_C_TYPE_STRING)
        *(char **)slot = gw_json_unconst(protobuf_c_empty_string);
    c->text = text;
    json_decref(k);
    return rc;
}

static int gw_json_set_map(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    if (!json_is_object(v))
        return gw_json_fail(c, "expected an object (a map), got %s", gw_json_kind(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    gw_json_field_clear(m, f);
    if (gw_json_repeated_grow(c, m, f, json_object_size(v)) != 0)
        return -1;
    const char *key;
    json_t *val;
    json_t *obj = gw_json_jmut(v);
    json_object_foreach(obj, key, val) {
        size_t *n = &GW_JSON_AT(m, f->quantifier_offset, size_t);
        ProtobufCMessage **arr = GW_JSON_AT(m, f->offset, ProtobufCMessage **);
        ProtobufCMessage *e = gw_json_message_new(ed);
        if (!e)
            return gw_json_fail(c, "out of memory");
        arr[(*n)++] = e;
        size_t old = gw_json_path_push(c, key);
        int rc = gw_json_map_key(c, e, kf, key);
        if (rc == 0) {
            if (json_is_null(val) && !(vf->type == PROTOBUF_C_TYPE_MESSAGE &&
                                       gw_json_is(vf->descriptor, "google.protobuf.Value")))
                rc = gw_json_fail(c, "null is not allowed as a map value");
            else
                rc = gw_json_set_field(c, e, vf, val);
        }
        gw_json_path_pop(c, old);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int gw_json_set_field(gw_json_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (gw_json_field_is_map(d, f))
            return gw_json_set_map(c, m, f, v);
        if (c->text)
            return gw_json_repeated_append(c, m, f, v);
        if (json_is_null(v)) {
            gw_json_field_clear(m, f);
            return 0;
        }
        if (!json_is_array(v))
            return gw_json_fail(c, "expected an array, got %s", gw_json_kind(v));
        gw_json_field_clear(m, f);
        if (gw_json_repeated_grow(c, m, f, json_array_size(v)) != 0)
            return -1;
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            size_t old = gw_json_path_push(c, idx);
            /* gw_json_repeated_append grows again; the array already has room. */
            int rc;
            if (json_is_null(el)) {
                rc = gw_json_fail(c, "null is not allowed in a list");
            } else {
                size_t *n = &GW_JSON_AT(m, f->quantifier_offset, size_t);
                char *slot = GW_JSON_AT(m, f->offset, char *) + *n * gw_json_type_size(f->type);
                rc = gw_json_dec_value(c, f, slot, el);
                if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)(void *)slot))
                    (*n)++;
            }
            gw_json_path_pop(c, old);
            if (rc != 0)
                return -1;
        }
        return 0;
    }

    bool is_value_msg = f->type == PROTOBUF_C_TYPE_MESSAGE && gw_json_is(f->descriptor, "google.protobuf.Value");
    bool is_null_enum = f->type == PROTOBUF_C_TYPE_ENUM &&
                        strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                               "google.protobuf.NullValue") == 0;
    if (json_is_null(v) && !is_value_msg && !is_null_enum) {
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            gw_json_field_clear(m, f);
        return 0;
    }
    void *slot = (char *)m + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = &GW_JSON_AT(m, f->quantifier_offset, uint32_t);
        if (*cs != 0 && *cs != f->id) {
            for (unsigned i = 0; i < d->n_fields; i++)
                if (d->fields[i].id == *cs)
                    return gw_json_fail(c, "only one field of a oneof may be set; \"%s\" is set too",
                                        d->fields[i].name);
            return gw_json_fail(c, "only one field of a oneof may be set");
        }
        if (*cs == f->id && f->type != PROTOBUF_C_TYPE_MESSAGE)
            gw_json_field_clear(m, f);
        if (*cs != f->id) {
            /* The union may hold another member's bytes: start clean. */
            memset(slot, 0, gw_json_type_size(f->type));
        }
        int rc = gw_json_dec_value(c, f, slot, v);
        if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)slot))
            *cs = f->id;
        else if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)slot = NULL;
        return rc;
    }
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        gw_json_field_clear(m, f);
        if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)slot = NULL;
    }
    int rc = gw_json_dec_value(c, f, slot, v);
    if (f->type == PROTOBUF_C_TYPE_STRING && rc != 0)
        *(char **)slot = f->label == PROTOBUF_C_LABEL_OPTIONAL ? NULL : gw_json_unconst(protobuf_c_empty_string);
    if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        GW_JSON_AT(m, f->quantifier_offset, protobuf_c_boolean) = 1;
    return rc;
}

int gw_json_merge_message(gw_json_ctx *c, ProtobufCMessage *m, const json_t *v)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (c->depth + 1 > c->max_depth)
        return gw_json_fail(c, "nesting deeper than %u", c->max_depth);
    c->depth++;
    int rc = 0;
    bool handled = false;
    if (strncmp(d->name, "google.protobuf.", 16) == 0)
        rc = gw_json_dec_wkt(c, m, v, &handled);
    if (handled) {
        c->depth--;
        return rc;
    }
    if (!json_is_object(v)) {
        c->depth--;
        return gw_json_fail(c, "expected an object (%s), got %s", d->name, gw_json_kind(v));
    }
    unsigned char seen_small[64];
    unsigned char *seen = d->n_fields <= sizeof seen_small ? seen_small : calloc(d->n_fields, 1);
    if (!seen) {
        c->depth--;
        return gw_json_fail(c, "out of memory");
    }
    memset(seen, 0, d->n_fields <= sizeof seen_small ? sizeof seen_small : 0);
    const char *key;
    json_t *val;
    json_t *obj = gw_json_jmut(v);
    json_object_foreach(obj, key, val) {
        const ProtobufCFieldDescriptor *f = gw_json_find_field(d, key);
        if (!f) {
            rc = gw_json_fail(c, "unknown field \"%.100s\" in %s", key, d->name);
            break;
        }
        size_t idx = (size_t)(f - d->fields);
        if (seen[idx]) {
            rc = gw_json_fail(c, "field \"%s\" given twice (as \"%.100s\" too)", f->name, key);
            break;
        }
        seen[idx] = 1;
        size_t old = gw_json_path_push(c, f->name);
        rc = gw_json_set_field(c, m, f, val);
        gw_json_path_pop(c, old);
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
    gw_json_ctx c;
    gw_json_ctx_init(&c, err, err_len, o);
    return gw_json_merge_message(&c, msg, value);
}

int gw_json_merge_field(ProtobufCMessage *msg, char *err, size_t err_len, const ProtobufCFieldDescriptor *field,
                        const json_t *value, const gw_json_options *o)
{
    gw_json_ctx c;
    gw_json_ctx_init(&c, err, err_len, o);
    gw_json_path_push(&c, field->name);
    return gw_json_set_field(&c, msg, field, value);
}

int gw_json_set_path(ProtobufCMessage *msg, char *err, size_t err_len, const char *path, const char *text,
                     size_t text_len, const gw_json_options *o)
{
    gw_json_ctx c;
    gw_json_ctx_init(&c, err, err_len, o);
    c.text = true;
    ProtobufCMessage *m = msg;
    const char *p = path;
    for (;;) {
        size_t n = strcspn(p, ".");
        char name[256];
        if (n == 0 || n >= sizeof name)
            return gw_json_fail(&c, "invalid field path \"%.100s\"", path);
        memcpy(name, p, n);
        name[n] = '\0';
        const ProtobufCFieldDescriptor *f = gw_json_find_field(m->descriptor, name);
        if (!f)
            return gw_json_fail(&c, "unknown field \"%.100s\" in %s", path, m->descriptor->name);
        gw_json_path_push(&c, f->name);
        if (p[n] == '.') {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
                return gw_json_fail(&c, "is not a message field, so \"%.100s\" does not name a field", path);
            ProtobufCMessage **pm = &GW_JSON_AT(m, f->offset, ProtobufCMessage *);
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t *cs = &GW_JSON_AT(m, f->quantifier_offset, uint32_t);
                if (*cs != 0 && *cs != f->id)
                    return gw_json_fail(&c, "another field of its oneof is set");
                if (*cs != f->id)
                    *pm = NULL;
                *cs = f->id;
            }
            if (!*pm) {
                *pm = gw_json_message_new(f->descriptor);
                if (!*pm)
                    return gw_json_fail(&c, "out of memory");
            }
            m = *pm;
            p += n + 1;
            continue;
        }
        if (memchr(text, '\0', text_len) || !gw_utf8_valid(text, text_len))
            return gw_json_fail(&c, "the value is not valid UTF-8 text");
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessageDescriptor *md = f->descriptor;
            if (strncmp(md->name, "google.protobuf.", 16) != 0 || gw_json_is(md, "google.protobuf.Struct") ||
                gw_json_is(md, "google.protobuf.ListValue") || gw_json_is(md, "google.protobuf.Any") ||
                gw_json_is(md, "google.protobuf.Empty"))
                return gw_json_fail(&c, "a message field cannot be set from a URL; name its fields (\"%s.x\")",
                                    f->name);
        }
        json_t *v = json_stringn(text, text_len);
        if (!v)
            return gw_json_fail(&c, "out of memory");
        int rc = gw_json_set_field(&c, m, f, v);
        json_decref(v);
        return rc;
    }
}
