/* gw_http: the gateway's HTTP/1.1 server (libmicrohttpd on one epoll
 * event loop for every connection; a request whose gRPC call is in flight
 * is suspended, not holding a thread, and resumed by gw_upstreams'
 * completion thread when the call ends) and its request pipeline:
 *
 *   raw URI -> route (gw_routes) -> request message from the JSON body, the
 *   path variables and the query (gw_json) -> metadata (authorization,
 *   idempotency-key, x-request-id, Grpc-Metadata-*) and deadline
 *   (Grpc-Timeout or the default) -> coffer-api (gw_upstreams, failover)
 *   -> 200 with the response as JSON, or the google.rpc.Status JSON with
 *   grpc-gateway's HTTP status (gw_errors).
 *
 * Its own routes: GET /healthz (the process is up), GET /readyz (at least
 * one healthy upstream, else 503), GET /metrics (Prometheus), GET
 * /openapi.json. Every response carries X-Request-Id: the client's, when
 * it sent a valid one (1..64 of [A-Za-z0-9._:/-]), else a new one. */
#ifndef COFFER_GW_HTTP_H
#define COFFER_GW_HTTP_H

#include "gw_metrics.h"
#include "gw_routes.h"
#include "gw_types.h"
#include "gw_upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_REQUEST_ID_MAX 64u

typedef struct {
    const char *listen;                    /* "host:port" (IPv4, or [IPv6]:port); port 0: any free port */
    const char *tls_cert_pem;              /* PEM chain and key: TLS; both NULL: plaintext */
    const char *tls_key_pem;
    unsigned max_connections;              /* > 0; all on one event loop */
    unsigned max_connections_per_ip;       /* 0: no limit */
    unsigned idle_timeout_s;               /* close connections idle this long; 0: never */
    size_t max_body_bytes;                 /* larger bodies: 413 */
    int64_t default_timeout_ms;            /* deadline when the client sends no Grpc-Timeout */
    int64_t max_timeout_ms;                /* Grpc-Timeout is capped to this */
    bool access_log;                       /* one log line per request */
    const gw_routes *routes;               /* borrowed, like the rest below */
    gw_upstreams *upstreams;
    gw_metrics *metrics;
    gw_types *types;
    const char *openapi_json;
    size_t openapi_json_len;
} gw_http_options;

typedef struct gw_http gw_http;

/* Starts listening and serving. Returns NULL with err when the address
 * cannot be bound or TLS is asked for but unavailable. */
__attribute__((warn_unused_result))
gw_http *gw_http_start(char *err, size_t err_len, const gw_http_options *options);

/* The bound TCP port. */
int gw_http_port(const gw_http *h);

/* Stops accepting (requests on open connections get 503), waits for the
 * calls in flight (their deadlines bound the wait) and a moment for their
 * replies to go out, stops the event loop, frees. Call before
 * gw_upstreams_free. h may be NULL. */
void gw_http_stop(gw_http *h);

#endif
