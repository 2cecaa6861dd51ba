/* descset: a serialized FileDescriptorSet (protoc --include_imports
 * --descriptor_set_out), indexed for server reflection and for checking
 * the RPC table against the .proto files. The set's bytes are borrowed
 * (in coffer-api: the set embedded at build time), and each file's exact
 * serialized bytes are served as they are. Immutable after descset_new,
 * so any number of threads may query it. */
#ifndef COFFER_DESCSET_H
#define COFFER_DESCSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct descset descset;

/* Parses set[0..len) (borrowed for the life of the result). Returns the
 * index, or NULL with err[0..err_len) saying what is malformed. */
__attribute__((warn_unused_result))
descset *descset_new(char *err, size_t err_len, const uint8_t *set, size_t len);

void descset_free(descset *d);

size_t descset_file_count(const descset *d);

/* File i's name ("coffer/v1/system.proto"), borrowed. */
const char *descset_file_name(const descset *d, size_t i);

/* File i's serialized FileDescriptorProto, borrowed from the set. */
void descset_file_bytes(const descset *d, const uint8_t **data, size_t *len, size_t i);

/* Each lookup returns 0 with *file set, or -1 when nothing matches. */

/* A file by name. */
__attribute__((warn_unused_result))
int descset_find_file(const descset *d, size_t *file, const char *name);

/* The file defining a fully-qualified symbol without a leading dot:
 * a service, method, message (nested too), field, enum, enum value or
 * extension ("coffer.v1.SystemService", "coffer.v1.SystemService.GetInfo",
 * "grpc.health.v1.HealthCheckResponse.ServingStatus"). */
__attribute__((warn_unused_result))
int descset_find_symbol(const descset *d, size_t *file, const char *symbol);

/* The file declaring extension number of containing_type (no leading dot). */
__attribute__((warn_unused_result))
int descset_find_extension(const descset *d, size_t *file, const char *containing_type, int32_t number);

/* Writes up to cap extension numbers of containing_type into out and
 * returns how many exist in the set (which may exceed cap). */
size_t descset_extension_numbers(const descset *d, int32_t *out, size_t cap, const char *containing_type);

/* The streaming flags of service.method (service fully qualified).
 * Returns 0, or -1 when the set has no such method. */
__attribute__((warn_unused_result))
int descset_method_streaming(const descset *d, bool *client_streaming, bool *server_streaming,
                             const char *service, const char *method);

/* Writes file and, after it, every file it depends on transitively (each
 * once) into out[0..cap); returns how many that is (may exceed cap). */
size_t descset_closure(const descset *d, size_t *out, size_t cap, size_t file);

#endif
