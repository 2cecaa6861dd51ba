/* serve: `coffer-api serve` (the gRPC server's life from config to exit)
 * and `coffer-api status` (a client that asks a running server how it is). */
#ifndef COFFER_SERVE_H
#define COFFER_SERVE_H

#include "config.h"

#include <stdint.h>

/* Serves until SIGTERM or SIGINT, then drains: stops accepting, lets
 * calls in flight finish for up to grpc.shutdown_grace, cancels the rest
 * (at once on a second signal), and returns. Call from main before any
 * thread exists (it blocks the signals it waits for).
 * Returns the exit status: 0 after a shutdown, 1 when it cannot start. */
__attribute__((warn_unused_result))
int serve_run(const config *cfg);

/* Calls grpc.health.v1.Health/Check and SystemService/GetInfo on target
 * and prints the answers. tls_ca_pem: PEM roots for a TLS server (NULL:
 * plaintext); tls_name: expected certificate name (may be NULL).
 * Returns 0 when the server is SERVING, 1 when it answers otherwise, 2
 * when it cannot be reached in timeout_ms. */
__attribute__((warn_unused_result))
int serve_status(const char *target, int64_t timeout_ms, const char *tls_ca_pem, const char *tls_name);

/* Reads a whole PEM file (at most 1 MiB) into a NUL-terminated malloc'd
 * string. Returns NULL (printed to stderr with what) when it cannot. */
__attribute__((warn_unused_result))
char *serve_read_pem(const char *path, const char *what);

#endif
