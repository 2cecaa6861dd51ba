#include "gw_types.h"

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "gw_registry.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct gw_types {
    const ProtobufCMessageDescriptor **items; /* sorted by name */
    size_t n, cap;
};

static bool gw_types_has(const gw_types *t, const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i] == d || strcmp(t->items[i]->name, d->name) == 0)
            return true;
    return false;
}

static int gw_types_add(gw_types *t, const ProtobufCMessageDescriptor *d, unsigned depth)
{
    if (!d || depth > 64 || gw_types_has(t, d))
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        const ProtobufCMessageDescriptor **n = realloc(t->items, cap * sizeof *n);
        if (!n)
            return -1;
        t->items = n;
        t->cap = cap;
    }
    t->items[t->n++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
            gw_types_add(t, d->fields[i].descriptor, depth + 1) != 0)
            return -1;
    return 0;
}

static int gw_types_cmp(const void *a, const void *b)
{
    const ProtobufCMessageDescriptor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

gw_types *gw_types_new(void)
{
    static const ProtobufCMessageDescriptor *const extra[] = {
        &google__rpc__status__descriptor,
        &google__rpc__retry_info__descriptor,
        &google__rpc__debug_info__descriptor,
        &google__rpc__quota_failure__descriptor,
        &google__rpc__precondition_failure__descriptor,
        &google__rpc__bad_request__descriptor,
        &google__rpc__request_info__descriptor,
        &google__rpc__resource_info__descriptor,
        &google__rpc__help__descriptor,
        &google__rpc__localized_message__descriptor,
    };
    gw_types *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (gw_types_add(t, extra[i], 0) != 0)
            goto fail;
    for (size_t s = 0; s < gw_registry_n_services; s++) {
        const ProtobufCServiceDescriptor *svc = gw_registry_services[s].descriptor;
        for (unsigned m = 0; m < svc->n_methods; m++)
            if (gw_types_add(t, svc->methods[m].input, 0) != 0 || gw_types_add(t, svc->methods[m].output, 0) != 0)
                goto fail;
    }
    qsort(t->items, t->n, sizeof *t->items, gw_types_cmp);
    return t;
fail:
    gw_types_free(t);
    return NULL;
}

void gw_types_free(gw_types *t)
{
    if (!t)
        return;
    free(t->items);
    free(t);
}

const ProtobufCMessageDescriptor *gw_types_find(void *arg, const char *full_name)
{
    const gw_types *t = arg;
    size_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->items[mid]->name, full_name);
        if (c == 0)
            return t->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ProtobufCServiceDescriptor *gw_types_service(const char *full_name)
{
    for (size_t i = 0; i < gw_registry_n_services; i++)
        if (strcmp(gw_registry_services[i].name, full_name) == 0)
            return gw_registry_services[i].descriptor;
    return NULL;
}

size_t gw_types_count(const gw_types *t)
{
    return t->n;
}

const ProtobufCMessageDescriptor *gw_types_at(const gw_types *t, size_t i)
{
    return i < t->n ? t->items[i] : NULL;
}
