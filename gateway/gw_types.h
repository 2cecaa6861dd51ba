/* gw_types: message types by full name, for google.protobuf.Any (error
 * details, Any fields): every message reachable from the services of the
 * generated registry, plus google.rpc's error details. Built once,
 * immutable, then read from any thread. */
#ifndef COFFER_GW_TYPES_H
#define COFFER_GW_TYPES_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct gw_types gw_types;

/* Returns the index, or NULL when memory is short. */
__attribute__((warn_unused_result))
gw_types *gw_types_new(void);

void gw_types_free(gw_types *t);

/* gw_json_resolve_fn: arg is a gw_types. NULL when unknown. */
const ProtobufCMessageDescriptor *gw_types_find(void *arg, const char *full_name);

/* The i-th type in name order (i < gw_types_count), for fuzzing and tests. */
size_t gw_types_count(const gw_types *t);
const ProtobufCMessageDescriptor *gw_types_at(const gw_types *t, size_t i);

/* A service of the generated registry by full name, NULL when unknown. */
const ProtobufCServiceDescriptor *gw_types_service(const char *full_name);

#endif
