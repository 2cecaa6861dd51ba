#include "gw_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const unsigned gw_codes[] = {200, 400, 401, 403, 404, 405, 409, 413, 429, 499, 500, 501, 503, 504};
#define GW_N_CODES (sizeof gw_codes / sizeof gw_codes[0] + 1) /* + "other" */
static const char *const gw_methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OTHER"};
#define GW_N_METHODS (sizeof gw_methods / sizeof gw_methods[0])
static const int64_t gw_bounds_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                                       1000000, 2500000, 5000000, 10000000};
static const char *const gw_bounds_text[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                             "0.1", "0.25", "0.5", "1", "2.5", "5", "10"};
#define GW_N_BUCKETS (sizeof gw_bounds_us / sizeof gw_bounds_us[0] + 1) /* + +Inf */

typedef struct {
    atomic_uint_fast64_t count[GW_N_CODES];
    atomic_uint_fast64_t bucket[GW_N_BUCKETS];
    atomic_uint_fast64_t sum_us;
} gw_slot_stats;

struct gw_metrics {
    const gw_routes *routes;
    size_t n_slots;
    gw_slot_stats *stats; /* [slot][method] */
};

gw_metrics *gw_metrics_new(const gw_routes *routes)
{
    gw_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->routes = routes;
    m->n_slots = gw_routes_count(routes) + GW_ROUTE_BUILTIN_COUNT;
    m->stats = calloc(m->n_slots * GW_N_METHODS, sizeof *m->stats);
    if (!m->stats) {
        free(m);
        return NULL;
    }
    return m;
}

void gw_metrics_free(gw_metrics *m)
{
    if (!m)
        return;
    free(m->stats);
    free(m);
}

static size_t gw_method_index(const char *method)
{
    for (size_t i = 0; i + 1 < GW_N_METHODS; i++)
        if (strcmp(method, gw_methods[i]) == 0)
            return i;
    return GW_N_METHODS - 1;
}

void gw_metrics_record(gw_metrics *m, size_t slot, const char *method, unsigned code, int64_t us)
{
    if (slot >= m->n_slots)
        slot = m->n_slots - 1;
    gw_slot_stats *s = &m->stats[slot * GW_N_METHODS + gw_method_index(method)];
    size_t c = GW_N_CODES - 1;
    for (size_t i = 0; i + 1 < GW_N_CODES; i++)
        if (gw_codes[i] == code) {
            c = i;
            break;
        }
    atomic_fetch_add_explicit(&s->count[c], 1, memory_order_relaxed);
    size_t b = GW_N_BUCKETS - 1;
    for (size_t i = 0; i + 1 < GW_N_BUCKETS; i++)
        if (us <= gw_bounds_us[i]) {
            b = i;
            break;
        }
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, us > 0 ? (uint64_t)us : 0, memory_order_relaxed);
}

static const char *gw_slot_name(const gw_metrics *m, size_t slot)
{
    static const char *const builtin[] = {"/healthz", "/readyz", "/metrics", "/openapi.json", "unmatched"};
    size_t n = gw_routes_count(m->routes);
    return slot < n ? gw_routes_get(m->routes, slot)->pattern : builtin[slot - n];
}

/* Label values are templates and target addresses: escape '\\', '"', '\n'. */
static void gw_label(gw_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            gw_buf_putc(b, '\\');
        if (*v == '\n') {
            gw_buf_puts(b, "\\n");
            continue;
        }
        gw_buf_putc(b, *v);
    }
}

void gw_metrics_write(const gw_metrics *m, gw_buf *b, const gw_upstreams *u)
{
    gw_buf_puts(b, "# HELP coffer_gateway_http_requests_total HTTP requests by route template, method and status.\n"
                   "# TYPE coffer_gateway_http_requests_total counter\n");
    for (size_t s = 0; s < m->n_slots; s++)
        for (size_t k = 0; k < GW_N_METHODS; k++) {
            const gw_slot_stats *st = &m->stats[s * GW_N_METHODS + k];
            for (size_t c = 0; c < GW_N_CODES; c++) {
                uint64_t v = atomic_load_explicit(&st->count[c], memory_order_relaxed);
                if (!v)
                    continue;
                gw_buf_puts(b, "coffer_gateway_http_requests_total{route=\"");
                gw_label(b, gw_slot_name(m, s));
                if (c + 1 < GW_N_CODES)
                    gw_buf_printf(b, "\",method=\"%s\",code=\"%u\"} %llu\n", gw_methods[k], gw_codes[c],
                                  (unsigned long long)v);
                else
                    gw_buf_printf(b, "\",method=\"%s\",code=\"other\"} %llu\n", gw_methods[k], (unsigned long long)v);
            }
        }
    gw_buf_puts(b, "# HELP coffer_gateway_http_request_duration_seconds Time from request to response.\n"
                   "# TYPE coffer_gateway_http_request_duration_seconds histogram\n");
    for (size_t s = 0; s < m->n_slots; s++)
        for (size_t k = 0; k < GW_N_METHODS; k++) {
            const gw_slot_stats *st = &m->stats[s * GW_N_METHODS + k];
            uint64_t total = 0;
            for (size_t i = 0; i < GW_N_BUCKETS; i++)
                total += atomic_load_explicit(&st->bucket[i], memory_order_relaxed);
            if (!total)
                continue;
            uint64_t cum = 0;
            for (size_t i = 0; i < GW_N_BUCKETS; i++) {
                cum += atomic_load_explicit(&st->bucket[i], memory_order_relaxed);
                gw_buf_puts(b, "coffer_gateway_http_request_duration_seconds_bucket{route=\"");
                gw_label(b, gw_slot_name(m, s));
                gw_buf_printf(b, "\",method=\"%s\",le=\"%s\"} %llu\n", gw_methods[k],
                              i + 1 < GW_N_BUCKETS ? gw_bounds_text[i] : "+Inf", (unsigned long long)cum);
            }
            gw_buf_puts(b, "coffer_gateway_http_request_duration_seconds_sum{route=\"");
            gw_label(b, gw_slot_name(m, s));
            gw_buf_printf(b, "\",method=\"%s\"} %.6f\n", gw_methods[k],
                          (double)atomic_load_explicit(&st->sum_us, memory_order_relaxed) / 1e6);
            gw_buf_puts(b, "coffer_gateway_http_request_duration_seconds_count{route=\"");
            gw_label(b, gw_slot_name(m, s));
            gw_buf_printf(b, "\",method=\"%s\"} %llu\n", gw_methods[k], (unsigned long long)cum);
        }
    if (!u)
        return;
    gw_buf_puts(b, "# HELP coffer_gateway_upstream_healthy 1 when the coffer-api target answers its health check SERVING.\n"
                   "# TYPE coffer_gateway_upstream_healthy gauge\n");
    for (size_t i = 0; i < gw_upstreams_count(u); i++) {
        gw_buf_puts(b, "coffer_gateway_upstream_healthy{target=\"");
        gw_label(b, gw_upstreams_target(u, i));
        gw_buf_printf(b, "\"} %d\n", gw_upstreams_healthy(u, i) ? 1 : 0);
    }
    gw_buf_printf(b, "# HELP coffer_gateway_upstream_failovers_total Calls moved to another target because the first could not be reached.\n"
                     "# TYPE coffer_gateway_upstream_failovers_total counter\n"
                     "coffer_gateway_upstream_failovers_total %llu\n",
                  (unsigned long long)gw_upstreams_failovers(u));
}
