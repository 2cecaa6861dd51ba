/* gw_metrics: the gateway's Prometheus metrics (text format 0.0.4):
 *   coffer_gateway_http_requests_total{route,method,code}   counter
 *   coffer_gateway_http_request_duration_seconds{route,method} histogram
 *   coffer_gateway_upstream_healthy{target}                   gauge 0/1
 *   coffer_gateway_upstream_failovers_total                   counter
 * Routes are the path templates of the annotations plus the gateway's own
 * (/healthz, /readyz, /metrics, /openapi.json) and "unmatched". Lock-free
 * counters: any thread may record. */
#ifndef COFFER_GW_METRICS_H
#define COFFER_GW_METRICS_H

#include "gw_routes.h"
#include "gw_text.h"
#include "gw_upstream.h"

#include <stdint.h>

typedef struct gw_metrics gw_metrics;

/* Extra route slots after the annotated routes. */
enum {
    GW_ROUTE_HEALTHZ = 0,
    GW_ROUTE_READYZ,
    GW_ROUTE_METRICS,
    GW_ROUTE_OPENAPI,
    GW_ROUTE_UNMATCHED,
    GW_ROUTE_BUILTIN_COUNT,
};

/* routes: borrowed for the life of the metrics. NULL when memory is short. */
__attribute__((warn_unused_result))
gw_metrics *gw_metrics_new(const gw_routes *routes);

void gw_metrics_free(gw_metrics *m);

/* slot: a route index, or gw_routes_count + GW_ROUTE_*. method: the
 * request's HTTP method (others than GET/POST/PUT/DELETE/PATCH count as
 * OTHER). */
void gw_metrics_record(gw_metrics *m, size_t slot, const char *method, unsigned http_code, int64_t duration_us);

/* Appends the text exposition. upstreams may be NULL. */
void gw_metrics_write(const gw_metrics *m, gw_buf *out, const gw_upstreams *upstreams);

#endif
