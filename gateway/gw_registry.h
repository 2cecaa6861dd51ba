/* gw_registry: the protoc-c service descriptors of every service in the
 * API's descriptor set, by full name. The table is generated at build time
 * from the set (gateway/gen_registry.py), so new services need no edit. */
#ifndef COFFER_GW_REGISTRY_H
#define COFFER_GW_REGISTRY_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct {
    const char *name; /* "coffer.v1.SystemService" */
    const ProtobufCServiceDescriptor *descriptor;
} gw_registry_service;

extern const gw_registry_service gw_registry_services[];
extern const size_t gw_registry_n_services;

/* The API's descriptor set (proto/meson.build), embedded. */
extern const unsigned char coffer_api_descriptor_set[];
extern const size_t coffer_api_descriptor_set_len;

#endif
