#include "descset.h"

#include "google/protobuf/descriptor.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *bytes;
    size_t len;
    Google__Protobuf__FileDescriptorProto *proto;
} descset_file;

struct descset {
    descset_file *files;
    size_t n_files;
};

/* Reads a varint at *p (< end); returns -1 when truncated or too long. */
static int descset_varint(uint64_t *out, const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

descset *descset_new(char *err, size_t err_len, const uint8_t *set, size_t len)
{
    descset *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (!set || len == 0)
        return d;
    const uint8_t *p = set, *end = set + len;
    size_t cap = 0;
    while (p < end) {
        uint64_t key, flen;
        if (descset_varint(&key, &p, end) != 0 || key != ((1u << 3) | 2u) ||
            descset_varint(&flen, &p, end) != 0 || flen > (uint64_t)(end - p)) {
            snprintf(err, err_len, "not a FileDescriptorSet (at byte %zu)", (size_t)(p - set));
            goto fail;
        }
        if (d->n_files == cap) {
            cap = cap ? cap * 2 : 16;
            descset_file *nf = realloc(d->files, cap * sizeof *nf);
            if (!nf) {
                snprintf(err, err_len, "out of memory");
                goto fail;
            }
            d->files = nf;
        }
        descset_file *f = &d->files[d->n_files];
        f->bytes = p;
        f->len = (size_t)flen;
        f->proto = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->bytes);
        if (!f->proto || !f->proto->name) {
            if (f->proto)
                google__protobuf__file_descriptor_proto__free_unpacked(f->proto, NULL);
            snprintf(err, err_len, "file %zu of the set does not decode", d->n_files);
            goto fail;
        }
        d->n_files++;
        p += flen;
    }
    return d;
fail:
    descset_free(d);
    return NULL;
}

void descset_free(descset *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_files; i++)
        google__protobuf__file_descriptor_proto__free_unpacked(d->files[i].proto, NULL);
    free(d->files);
    free(d);
}

size_t descset_file_count(const descset *d)
{
    return d->n_files;
}

const char *descset_file_name(const descset *d, size_t i)
{
    return d->files[i].proto->name;
}

void descset_file_bytes(const descset *d, const uint8_t **data, size_t *len, size_t i)
{
    *data = d->files[i].bytes;
    *len = d->files[i].len;
}

int descset_find_file(const descset *d, size_t *file, const char *name)
{
    for (size_t i = 0; i < d->n_files; i++) {
        if (strcmp(d->files[i].proto->name, name) == 0) {
            *file = i;
            return 0;
        }
    }
    return -1;
}

/* symbol == prefix + "." + name (or name alone when prefix is ""). */
static bool descset_is(const char *symbol, const char *prefix, const char *name)
{
    if (!name)
        return false;
    size_t pl = strlen(prefix);
    if (pl) {
        if (strncmp(symbol, prefix, pl) != 0 || symbol[pl] != '.')
            return false;
        symbol += pl + 1;
    }
    return strcmp(symbol, name) == 0;
}

/* Joins prefix and name into buf; false when it does not fit. */
static bool descset_join(char *buf, size_t cap, const char *prefix, const char *name)
{
    int n = prefix[0] ? snprintf(buf, cap, "%s.%s", prefix, name ? name : "")
                      : snprintf(buf, cap, "%s", name ? name : "");
    return n >= 0 && (size_t)n < cap;
}

static bool descset_enum_has(const Google__Protobuf__EnumDescriptorProto *e, const char *prefix,
                             const char *symbol)
{
    if (descset_is(symbol, prefix, e->name))
        return true;
    /* Enum values are scoped like the enum itself (C++ rules). */
    for (size_t v = 0; v < e->n_value; v++)
        if (descset_is(symbol, prefix, e->value[v]->name))
            return true;
    return false;
}

static bool descset_message_has(const Google__Protobuf__DescriptorProto *m, const char *prefix,
                                const char *symbol, unsigned depth)
{
    if (depth > 32)
        return false;
    if (descset_is(symbol, prefix, m->name))
        return true;
    char inner[512];
    if (!descset_join(inner, sizeof inner, prefix, m->name))
        return false;
    for (size_t i = 0; i < m->n_field; i++)
        if (descset_is(symbol, inner, m->field[i]->name))
            return true;
    for (size_t i = 0; i < m->n_extension; i++)
        if (descset_is(symbol, inner, m->extension[i]->name))
            return true;
    for (size_t i = 0; i < m->n_enum_type; i++)
        if (descset_enum_has(m->enum_type[i], inner, symbol))
            return true;
    for (size_t i = 0; i < m->n_nested_type; i++)
        if (descset_message_has(m->nested_type[i], inner, symbol, depth + 1))
            return true;
    return false;
}

static bool descset_file_has(const Google__Protobuf__FileDescriptorProto *f, const char *symbol)
{
    const char *pkg = f->package ? f->package : "";
    for (size_t s = 0; s < f->n_service; s++) {
        const Google__Protobuf__ServiceDescriptorProto *svc = f->service[s];
        if (descset_is(symbol, pkg, svc->name))
            return true;
        char sname[512];
        if (!descset_join(sname, sizeof sname, pkg, svc->name))
            continue;
        for (size_t m = 0; m < svc->n_method; m++)
            if (descset_is(symbol, sname, svc->method[m]->name))
                return true;
    }
    for (size_t i = 0; i < f->n_message_type; i++)
        if (descset_message_has(f->message_type[i], pkg, symbol, 0))
            return true;
    for (size_t i = 0; i < f->n_enum_type; i++)
        if (descset_enum_has(f->enum_type[i], pkg, symbol))
            return true;
    for (size_t i = 0; i < f->n_extension; i++)
        if (descset_is(symbol, pkg, f->extension[i]->name))
            return true;
    return false;
}

int descset_find_symbol(const descset *d, size_t *file, const char *symbol)
{
    if (!symbol || !*symbol)
        return -1;
    for (size_t i = 0; i < d->n_files; i++) {
        if (descset_file_has(d->files[i].proto, symbol)) {
            *file = i;
            return 0;
        }
    }
    return -1;
}

/* Extendee names are ".pkg.Type" in descriptors; callers give "pkg.Type". */
static bool descset_extendee_is(const Google__Protobuf__FieldDescriptorProto *x, const char *type)
{
    const char *e = x->extendee;
    if (!e)
        return false;
    if (*e == '.')
        e++;
    return strcmp(e, type) == 0;
}

typedef void (*descset_ext_fn)(void *arg, size_t file, const Google__Protobuf__FieldDescriptorProto *x);

static void descset_walk_message_ext(const Google__Protobuf__DescriptorProto *m, size_t file,
                                     descset_ext_fn fn, void *arg, unsigned depth)
{
    if (depth > 32)
        return;
    for (size_t i = 0; i < m->n_extension; i++)
        fn(arg, file, m->extension[i]);
    for (size_t i = 0; i < m->n_nested_type; i++)
        descset_walk_message_ext(m->nested_type[i], file, fn, arg, depth + 1);
}

static void descset_walk_ext(const descset *d, descset_ext_fn fn, void *arg)
{
    for (size_t f = 0; f < d->n_files; f++) {
        const Google__Protobuf__FileDescriptorProto *p = d->files[f].proto;
        for (size_t i = 0; i < p->n_extension; i++)
            fn(arg, f, p->extension[i]);
        for (size_t i = 0; i < p->n_message_type; i++)
            descset_walk_message_ext(p->message_type[i], f, fn, arg, 0);
    }
}

typedef struct {
    const char *type;
    int32_t number;
    bool found;
    size_t file;
    int32_t *out;
    size_t cap, count;
} descset_ext_query;

static void descset_ext_find(void *arg, size_t file, const Google__Protobuf__FieldDescriptorProto *x)
{
    descset_ext_query *q = arg;
    if (!q->found && descset_extendee_is(x, q->type) && x->number == q->number) {
        q->found = true;
        q->file = file;
    }
}

static void descset_ext_list(void *arg, size_t file, const Google__Protobuf__FieldDescriptorProto *x)
{
    descset_ext_query *q = arg;
    (void)file;
    if (descset_extendee_is(x, q->type)) {
        if (q->count < q->cap)
            q->out[q->count] = x->number;
        q->count++;
    }
}

int descset_find_extension(const descset *d, size_t *file, const char *containing_type, int32_t number)
{
    descset_ext_query q = {containing_type, number, false, 0, NULL, 0, 0};
    descset_walk_ext(d, descset_ext_find, &q);
    if (!q.found)
        return -1;
    *file = q.file;
    return 0;
}

size_t descset_extension_numbers(const descset *d, int32_t *out, size_t cap, const char *containing_type)
{
    descset_ext_query q = {containing_type, 0, false, 0, out, cap, 0};
    descset_walk_ext(d, descset_ext_list, &q);
    return q.count;
}

int descset_method_streaming(const descset *d, bool *client_streaming, bool *server_streaming,
                             const char *service, const char *method)
{
    for (size_t f = 0; f < d->n_files; f++) {
        const Google__Protobuf__FileDescriptorProto *p = d->files[f].proto;
        const char *pkg = p->package ? p->package : "";
        for (size_t s = 0; s < p->n_service; s++) {
            if (!descset_is(service, pkg, p->service[s]->name))
                continue;
            for (size_t m = 0; m < p->service[s]->n_method; m++) {
                const Google__Protobuf__MethodDescriptorProto *md = p->service[s]->method[m];
                if (md->name && strcmp(md->name, method) == 0) {
                    *client_streaming = md->has_client_streaming && md->client_streaming;
                    *server_streaming = md->has_server_streaming && md->server_streaming;
                    return 0;
                }
            }
        }
    }
    return -1;
}

size_t descset_closure(const descset *d, size_t *out, size_t cap, size_t file)
{
    /* Breadth-first over dependencies; d->n_files is small (tens). */
    bool *seen = calloc(d->n_files ? d->n_files : 1, sizeof *seen);
    size_t *queue = calloc(d->n_files ? d->n_files : 1, sizeof *queue);
    size_t head = 0, tail = 0, count = 0;
    if (!seen || !queue || file >= d->n_files)
        goto out;
    seen[file] = true;
    queue[tail++] = file;
    while (head < tail) {
        size_t f = queue[head++];
        if (count < cap)
            out[count] = f;
        count++;
        const Google__Protobuf__FileDescriptorProto *p = d->files[f].proto;
        for (size_t i = 0; i < p->n_dependency; i++) {
            size_t dep;
            if (descset_find_file(d, &dep, p->dependency[i]) == 0 && !seen[dep]) {
                seen[dep] = true;
                queue[tail++] = dep;
            }
        }
    }
out:
    free(seen);
    free(queue);
    return count;
}
