/* gw_grpcwire: the parts of gRPC's wire protocol over HTTP/2 that the
 * gateway's own client (gw_ucl) reads and writes, as pure functions:
 * the grpc-timeout header, the grpc-status and grpc-message trailers,
 * binary (-bin) metadata, the length-prefixed message of a unary call,
 * and the gRPC status of a call that ended without one (HTTP status or
 * RST_STREAM code), all as specified by
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md and
 * doc/http-grpc-status-mapping.md. */
#ifndef COFFER_GW_GRPCWIRE_H
#define COFFER_GW_GRPCWIRE_H

#include "rpc_code.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_GRPCWIRE_TIMEOUT_MAX 12u /* bytes of a grpc-timeout value with its NUL */

/* grpc-timeout for ms: at most 8 digits and the finest unit that holds
 * them ("1500m", "100000S"), rounded up; below 1 ms "1m", beyond the
 * largest value "99999999H". Writes out (GW_GRPCWIRE_TIMEOUT_MAX bytes,
 * NUL-terminated), returns the length. */
size_t gw_grpcwire_timeout(char *out, int64_t ms);

/* A grpc-status value ("0".."16", no sign, no leading zeros beyond "0"):
 * 0 with *code, or -1 when it is not one. */
int gw_grpcwire_status(rpc_code *code, const uint8_t *value, size_t len);

/* grpc-message, percent-decoded into a new NUL-terminated string (malloc;
 * NULL when memory is short). A malformed escape is kept as it is, as
 * the protocol asks: the message is never dropped. */
char *gw_grpcwire_message(const uint8_t *value, size_t len);

/* The status of a response whose HTTP status is not 200 (and that has
 * no grpc-status). */
rpc_code gw_grpcwire_http_code(unsigned http_status);

/* The status of a stream the server reset (RST_STREAM error_code) before
 * it sent a grpc-status. */
rpc_code gw_grpcwire_rst_code(uint32_t error_code);

/* True for a metadata key whose values are binary (base64 on the wire). */
bool gw_grpcwire_key_is_bin(const uint8_t *key, size_t len);

/* The message of a unary response body: exactly one uncompressed
 * length-prefixed message and nothing after it. 0 with the message at *msg,
 * *msg_len bytes (inside body), or -1 with err saying what is wrong. */
int gw_grpcwire_unframe(const uint8_t **msg, size_t *msg_len, const uint8_t *body, size_t len, char *err,
                        size_t err_len);

/* Writes the 5-byte prefix of an uncompressed message of len bytes. */
void gw_grpcwire_prefix(uint8_t out[5], size_t len);

#endif
