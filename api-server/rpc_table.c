#include "rpc_table.h"

#include "descset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_table {
    rpc_row **rows; /* each row allocated once, so its address is stable */
    size_t count, cap;
};

rpc_table *rpc_table_new(void)
{
    return calloc(1, sizeof(rpc_table));
}

void rpc_table_free(rpc_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        free(t->rows[i]);
    free(t->rows);
    free(t);
}

size_t rpc_table_count(const rpc_table *t)
{
    return t->count;
}

rpc_row *rpc_table_row(const rpc_table *t, size_t i)
{
    return i < t->count ? t->rows[i] : NULL;
}

const rpc_row *rpc_table_find(const rpc_table *t, const char *path)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->rows[i]->path, path) == 0)
            return t->rows[i];
    return NULL;
}

static int rpc_table_check_def(char *err, size_t err_len, const rpc_service_def *svc,
                               const rpc_method_def *def)
{
    const char *sname = svc->descriptor->name;
    if (!def->name) {
        snprintf(err, err_len, "%s: a row has no method name", sname);
        return -1;
    }
    if (def->kind == RPC_KIND_UNARY ? (!def->unary || def->stream) : (!def->stream || def->unary)) {
        snprintf(err, err_len, "%s/%s: a %s method needs exactly the %s handler", sname, def->name,
                 def->kind == RPC_KIND_UNARY ? "unary" : "streaming",
                 def->kind == RPC_KIND_UNARY ? "unary" : "stream");
        return -1;
    }
    if ((unsigned)def->access > RPC_ACCESS_ADMIN || (unsigned)def->kind > RPC_KIND_BIDI_STREAM ||
        (unsigned)def->rate > RPC_RATE_EXECUTE || (def->flags & ~(RPC_F_MUTATES | RPC_F_INLINE))) {
        snprintf(err, err_len, "%s/%s: access, kind, rate class or flags out of range", sname, def->name);
        return -1;
    }
    if ((def->flags & RPC_F_INLINE) &&
        (def->kind != RPC_KIND_UNARY || def->access != RPC_ACCESS_ANYONE || def->rate != RPC_RATE_NONE ||
         (def->flags & RPC_F_MUTATES))) {
        snprintf(err, err_len, "%s/%s: only unary, open, unlimited, read-only methods may run inline", sname,
                 def->name);
        return -1;
    }
    return 0;
}

int rpc_table_add_service(rpc_table *t, char *err, size_t err_len, const rpc_service_def *svc, void *arg)
{
    const ProtobufCServiceDescriptor *d = svc->descriptor;
    if (!d || d->magic != PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC) {
        snprintf(err, err_len, "a service has no valid descriptor");
        return -1;
    }
    for (size_t i = 0; i < t->count; i++) {
        if (t->rows[i]->service->descriptor == d) {
            snprintf(err, err_len, "%s: added twice", d->name);
            return -1;
        }
    }
    /* Every row names a method of the descriptor, once. */
    for (size_t i = 0; i < svc->n_methods; i++) {
        if (rpc_table_check_def(err, err_len, svc, &svc->methods[i]) != 0)
            return -1;
        if (!protobuf_c_service_descriptor_get_method_by_name(d, svc->methods[i].name)) {
            snprintf(err, err_len, "%s: row %s names no method of the service", d->name,
                     svc->methods[i].name);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(svc->methods[i].name, svc->methods[j].name) == 0) {
                snprintf(err, err_len, "%s/%s: two rows", d->name, svc->methods[i].name);
                return -1;
            }
        }
    }
    /* Every method of the descriptor has a row. */
    for (unsigned m = 0; m < d->n_methods; m++) {
        size_t i;
        for (i = 0; i < svc->n_methods; i++)
            if (strcmp(svc->methods[i].name, d->methods[m].name) == 0)
                break;
        if (i == svc->n_methods) {
            snprintf(err, err_len, "%s/%s: the .proto has this method but the service has no row",
                     d->name, d->methods[m].name);
            return -1;
        }
    }
    if (t->count + svc->n_methods > t->cap) {
        size_t cap = t->cap ? t->cap : 16;
        while (cap < t->count + svc->n_methods)
            cap *= 2;
        rpc_row **nr = realloc(t->rows, cap * sizeof *nr);
        if (!nr) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        t->rows = nr;
        t->cap = cap;
    }
    size_t first = t->count;
    for (size_t i = 0; i < svc->n_methods; i++) {
        rpc_row *r = calloc(1, sizeof *r);
        if (!r) {
            while (t->count > first)
                free(t->rows[--t->count]);
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        r->service = svc;
        r->def = &svc->methods[i];
        r->method = protobuf_c_service_descriptor_get_method_by_name(d, svc->methods[i].name);
        r->service_arg = arg;
        if ((size_t)snprintf(r->path, sizeof r->path, "/%s/%s", d->name, r->method->name) >= sizeof r->path) {
            free(r);
            while (t->count > first)
                free(t->rows[--t->count]);
            snprintf(err, err_len, "%s: method path too long", d->name);
            return -1;
        }
        t->rows[t->count++] = r;
    }
    return 0;
}

int rpc_table_check_descriptor_set(const rpc_table *t, char *err, size_t err_len,
                                   const uint8_t *set, size_t set_len)
{
    char derr[256];
    descset *d = descset_new(derr, sizeof derr, set, set_len);
    int rc = -1;
    if (!d) {
        snprintf(err, err_len, "descriptor set: %s", derr);
        return -1;
    }
    for (size_t i = 0; i < t->count; i++) {
        const rpc_row *r = t->rows[i];
        bool cs, ss;
        if (descset_method_streaming(d, &cs, &ss, r->service->descriptor->name, r->method->name) != 0) {
            snprintf(err, err_len, "%s is not in the descriptor set", r->path);
            goto out;
        }
        rpc_kind want = !cs && !ss ? RPC_KIND_UNARY : !cs && ss ? RPC_KIND_SERVER_STREAM
                        : cs && ss ? RPC_KIND_BIDI_STREAM : (rpc_kind)-1;
        if (want != r->def->kind) {
            snprintf(err, err_len, "%s: the row's kind disagrees with the .proto (client_streaming=%d "
                     "server_streaming=%d)", r->path, cs, ss);
            goto out;
        }
    }
    rc = 0;
out:
    descset_free(d);
    return rc;
}

/* A protobuf-c allocator that refuses to go past a budget, so a small
 * request cannot make the decoder allocate without bound (a packed repeated
 * field expands up to 8x, nested empty messages far more). Blocks come
 * from malloc, so the decoded message is freed with the default allocator. */
typedef struct {
    size_t used, budget;
    bool refused;
} rpc_budget;

static void *rpc_budget_alloc(void *data, size_t size)
{
    rpc_budget *b = data;
    if (size > b->budget - b->used) {
        b->refused = true;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p)
        b->used += size;
    return p;
}

static void rpc_budget_free(void *data, void *p)
{
    (void)data;
    free(p);
}

/* protobuf-c accepts an over-long encoding of field number 0 (and keeps it
 * as an unknown field), which no encoder may write back: such a request
 * would be echoed (reflection) or forwarded as invalid bytes. Refuse it,
 * in nested messages too. Our request types are not recursive, so the
 * depth is bounded by the schema. */
static bool rpc_table_fields_ok(const ProtobufCMessage *m, unsigned depth)
{
    if (depth > 32)
        return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0 || m->unknown_fields[i].tag > 536870911u)
            return false;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            ProtobufCMessage *const *arr;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            memcpy(&arr, base + f->offset, sizeof arr);
            for (size_t k = 0; k < n; k++)
                if (arr[k] && !rpc_table_fields_ok(arr[k], depth + 1))
                    return false;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id)
                continue;
        }
        const ProtobufCMessage *sub;
        memcpy(&sub, base + f->offset, sizeof sub);
        if (sub && !rpc_table_fields_ok(sub, depth + 1))
            return false;
    }
    return true;
}

rpc_code rpc_table_unpack(ProtobufCMessage **out, char *msg, size_t msg_len, const rpc_row *row,
                          const uint8_t *data, size_t len, size_t max_len)
{
    *out = NULL;
    if (len > max_len) {
        snprintf(msg, msg_len, "request of %zu bytes exceeds the limit of %zu bytes", len, max_len);
        return RPC_RESOURCE_EXHAUSTED;
    }
    static const uint8_t empty[1];
    rpc_budget b = {0, max_len > (SIZE_MAX / RPC_UNPACK_MEMORY_FACTOR) ? SIZE_MAX
                                                                       : max_len * RPC_UNPACK_MEMORY_FACTOR,
                    false};
    if (b.budget < 1024 * 1024)
        b.budget = 1024 * 1024;
    ProtobufCAllocator a = {rpc_budget_alloc, rpc_budget_free, &b};
    ProtobufCMessage *m = protobuf_c_message_unpack(row->method->input, &a, len, data ? data : empty);
    if (!m) {
        if (b.refused)
            snprintf(msg, msg_len, "request does not decode as %s within the memory limit",
                     row->method->input->name);
        else
            snprintf(msg, msg_len, "request is not a valid %s message", row->method->input->name);
        return RPC_INVALID_ARGUMENT;
    }
    if (!rpc_table_fields_ok(m, 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        snprintf(msg, msg_len, "request is not a valid %s message (field number 0)", row->method->input->name);
        return RPC_INVALID_ARGUMENT;
    }
    *out = m;
    return RPC_OK;
}
