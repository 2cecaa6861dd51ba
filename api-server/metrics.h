/* metrics: coffer-api's /metrics endpoint, Prometheus text format 0.0.4,
 * on its own small HTTP listener (metrics.listen; libmicrohttpd, one
 * internal thread, a handful of connections). Served:
 *
 *   coffer_rpc_requests_total{method,code}              counter
 *   coffer_rpc_request_duration_seconds{method}         histogram
 *   coffer_rpc_inflight                                 gauge
 *   coffer_db_pool_connections{state="open"|"idle"}     gauge
 *   coffer_db_pool_waiting                              gauge
 *   coffer_db_pool_connects_total, _discarded_total     counter
 *   coffer_component_up{component}                      gauge 1/0 (absent: not configured)
 *   coffer_component_probe_seconds{component}           gauge
 *   coffer_job_runs_total{job,result="ok"|"failed"}     counter
 *   coffer_job_duration_seconds{job}                    histogram
 *   coffer_signer_request_duration_seconds{result}      histogram
 *   coffer_outbox_backlog, coffer_outbox_oldest_seconds gauge (read from the
 *                                                       database at scrape;
 *                                                       absent when it cannot be read)
 *   coffer_evm_requests_total{endpoint,method}          counter (evm_rpc_stats_snapshot)
 *   coffer_evm_failures_total{endpoint,method}          counter
 *   coffer_evm_breaker_state{endpoint}                  gauge 0 closed, 1 open, 2 half-open
 *   coffer_evm_breaker_opened_total{endpoint}           counter
 *   coffer_evm_endpoint_disabled{endpoint}              gauge 1 when it serves another chain
 *   coffer_evm_retries_total                            counter
 *   coffer_uptime_seconds                               gauge
 *
 * Only GET /metrics is answered (anything else 404/405). The endpoint
 * shows no secret, client id or amount, so it may be scraped without a
 * credential; bind it to a private address. */
#ifndef COFFER_METRICS_H
#define COFFER_METRICS_H

#include "db_pool.h"
#include "health.h"
#include "rpc_server.h"
#include "rpc_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_metrics api_metrics;

typedef struct {
    const char *listen;        /* "host:port" (port 0: any free port) */
    const rpc_table *table;    /* borrowed: rows carry their rpc_stats */
    rpc_server *server;        /* borrowed: in-flight count, unknown methods; may be NULL */
    db_pool *db;               /* borrowed; may be NULL */
    health *health;            /* borrowed; may be NULL */
    int64_t started_ms;        /* CLOCK_MONOTONIC ms at start */
    struct evm_rpc *evm;       /* borrowed; may be NULL (no chain): coffer_evm_* */
} api_metrics_options;

/* Starts the listener. Returns it, or NULL with err saying why. */
__attribute__((warn_unused_result))
api_metrics *api_metrics_start(char *err, size_t err_len, const api_metrics_options *options);

/* The port listened on. */
int api_metrics_port(const api_metrics *m);

/* Stops the listener (waits for a scrape in progress) and frees. m may be NULL. */
void api_metrics_stop(api_metrics *m);

/* Writes the whole exposition into a malloc'd string (*len its length).
 * NULL when memory is short. For the listener and for tests. */
__attribute__((warn_unused_result))
char *api_metrics_render(const api_metrics_options *options, size_t *len);

/* Process-wide recorders, callable from any thread at any time. */

/* One background job run (name: staking, accrual, withdrawals,
 * deposit_watch, receipts, outbox; others are counted as "other"). */
void api_metrics_job(const char *name, bool ok, int64_t duration_us);

/* One request to coffer-signer (ok: the signer answered, allowed or not). */
void api_metrics_signer(bool ok, int64_t duration_us);

#endif
