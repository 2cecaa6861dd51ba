/* gw_errors: gRPC outcomes as HTTP responses, the way grpc-gateway writes
 * them: the HTTP status of each code, and a google.rpc.Status JSON body
 * {"code": N, "message": "...", "details": [...]} whose details come from
 * the upstream's grpc-status-details-bin (Any values, mapped to JSON with
 * their "@type"). RetryInfo among them gives Retry-After. */
#ifndef COFFER_GW_ERRORS_H
#define COFFER_GW_ERRORS_H

#include "gw_json.h"
#include "rpc_code.h"

#include <stddef.h>
#include <stdint.h>

/* grpc-gateway's table: INVALID_ARGUMENT, FAILED_PRECONDITION,
 * OUT_OF_RANGE 400; UNAUTHENTICATED 401; PERMISSION_DENIED 403; NOT_FOUND
 * 404; ALREADY_EXISTS, ABORTED 409; RESOURCE_EXHAUSTED 429; CANCELLED 499;
 * UNIMPLEMENTED 501; UNAVAILABLE 503; DEADLINE_EXCEEDED 504; OK 200;
 * others 500. */
unsigned gw_http_status(rpc_code code);

/* Appends the Status JSON for code and message. details_bin[0..len) is a
 * serialized google.rpc.Status from grpc-status-details-bin, or NULL;
 * when it decodes, its details are written (in JSON) and *retry_after_s
 * gets RetryInfo's delay in whole seconds rounded up (at least 1), else
 * stays as it was. options resolves the detail types. */
void gw_error_body(gw_buf *out, int64_t *retry_after_s, rpc_code code, const char *message,
                   const uint8_t *details_bin, size_t len, const gw_json_options *options);

#endif
