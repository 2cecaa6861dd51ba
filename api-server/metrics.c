/* metrics: see metrics.h. */
#include "metrics.h"

#include "evm_rpc.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define METRICS_MAX_CONNECTIONS 8u
#define METRICS_TIMEOUT_S 10u
#define METRICS_DB_TIMEOUT_MS 1000u

/* ---- process-wide recorders -------------------------------------------------- */

static const char *const metrics_job_names[] = {"staking", "accrual", "withdrawals", "deposit_watch",
                                                "receipts", "outbox", "other"};
#define METRICS_JOBS (sizeof metrics_job_names / sizeof metrics_job_names[0])

typedef struct {
    _Atomic uint64_t ok, failed;
    rpc_stats time; /* by_code unused */
} metrics_job_stats;

static metrics_job_stats metrics_jobs[METRICS_JOBS];
static rpc_stats metrics_signer_ok, metrics_signer_failed;

void api_metrics_job(const char *name, bool ok, int64_t duration_us)
{
    size_t i = 0;
    while (i < METRICS_JOBS - 1 && (!name || strcmp(name, metrics_job_names[i]) != 0))
        i++;
    atomic_fetch_add_explicit(ok ? &metrics_jobs[i].ok : &metrics_jobs[i].failed, 1, memory_order_relaxed);
    rpc_stats_record(&metrics_jobs[i].time, ok ? RPC_OK : RPC_UNKNOWN, duration_us);
}

void api_metrics_signer(bool ok, int64_t duration_us)
{
    rpc_stats_record(ok ? &metrics_signer_ok : &metrics_signer_failed, ok ? RPC_OK : RPC_UNAVAILABLE,
                     duration_us);
}

/* ---- text ---------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} metrics_buf;

static void mb_printf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mb_printf(metrics_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value with \, " and newline escaped (text format 0.0.4). */
static const char *mb_label(char *out, size_t cap, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
    return out;
}

/* One histogram's series for the labels in `labels` ("method=\"...\""). */
static void mb_histogram(metrics_buf *b, const char *name, const char *labels, const rpc_stats *s)
{
    uint64_t cum = 0;
    for (unsigned i = 0; i < RPC_STATS_BUCKETS; i++) {
        cum += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
        if (i < RPC_STATS_BUCKETS - 1)
            mb_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, (double)rpc_stats_bounds_us[i] / 1e6,
                      (unsigned long long)cum);
        else
            mb_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    }
    mb_printf(b, "%s_sum{%s} %.6f\n", name, labels,
              (double)atomic_load_explicit(&s->sum_us, memory_order_relaxed) / 1e6);
    mb_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

static void metrics_rpc(metrics_buf *b, const api_metrics_options *o)
{
    char q[300], labels[400];
    mb_printf(b, "# HELP coffer_rpc_requests_total gRPC calls handled, by method and status code.\n"
                 "# TYPE coffer_rpc_requests_total counter\n");
    size_t n = o->table ? rpc_table_count(o->table) : 0;
    for (size_t i = 0; i <= n; i++) {
        const rpc_stats *s = i < n ? &rpc_table_row(o->table, i)->stats
                                   : (o->server ? rpc_server_unknown_stats(o->server) : NULL);
        if (!s)
            continue;
        const char *path = i < n ? rpc_table_row(o->table, i)->path : "unknown";
        mb_label(q, sizeof q, path);
        for (unsigned c = 0; c < RPC_STATS_CODES; c++) {
            uint64_t v = atomic_load_explicit(&s->by_code[c], memory_order_relaxed);
            if (v || c == RPC_OK)
                mb_printf(b, "coffer_rpc_requests_total{method=\"%s\",code=\"%s\"} %llu\n", q,
                          rpc_code_name((rpc_code)c), (unsigned long long)v);
        }
    }
    mb_printf(b, "# HELP coffer_rpc_request_duration_seconds Time from a call's arrival to its status.\n"
                 "# TYPE coffer_rpc_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= n; i++) {
        const rpc_stats *s = i < n ? &rpc_table_row(o->table, i)->stats
                                   : (o->server ? rpc_server_unknown_stats(o->server) : NULL);
        if (!s || (i == n && rpc_stats_count(s) == 0))
            continue;
        snprintf(labels, sizeof labels, "method=\"%s\"",
                 mb_label(q, sizeof q, i < n ? rpc_table_row(o->table, i)->path : "unknown"));
        mb_histogram(b, "coffer_rpc_request_duration_seconds", labels, s);
    }
    if (o->server)
        mb_printf(b, "# HELP coffer_rpc_inflight Calls being handled now.\n# TYPE coffer_rpc_inflight gauge\n"
                     "coffer_rpc_inflight %u\n",
                  rpc_server_inflight(o->server));
}

static void metrics_db(metrics_buf *b, const api_metrics_options *o)
{
    if (!o->db)
        return;
    db_pool_stats st;
    db_pool_get_stats(o->db, &st);
    mb_printf(b,
              "# HELP coffer_db_pool_connections PostgreSQL connections of the pool.\n"
              "# TYPE coffer_db_pool_connections gauge\n"
              "coffer_db_pool_connections{state=\"open\"} %u\n"
              "coffer_db_pool_connections{state=\"idle\"} %u\n"
              "# HELP coffer_db_pool_waiting Callers waiting for a connection.\n"
              "# TYPE coffer_db_pool_waiting gauge\n"
              "coffer_db_pool_waiting %u\n"
              "# HELP coffer_db_pool_connects_total Connections made since start.\n"
              "# TYPE coffer_db_pool_connects_total counter\n"
              "coffer_db_pool_connects_total %llu\n"
              "# HELP coffer_db_pool_discarded_total Broken connections thrown away since start.\n"
              "# TYPE coffer_db_pool_discarded_total counter\n"
              "coffer_db_pool_discarded_total %llu\n",
              st.total, st.idle, st.waiting, (unsigned long long)st.connects, (unsigned long long)st.discarded);

    /* The outbox backlog, read now (platform scope: the outbox is
     * client-owned and row-level security hides it otherwise). Absent when
     * the database does not answer in time or has no outbox yet. */
    db_pool_err err;
    PGconn *conn = db_pool_acquire(o->db, METRICS_DB_TIMEOUT_MS, &err, NULL, 0);
    if (!conn)
        return;
    PGresult *r = PQexec(conn, "BEGIN READ ONLY; SET LOCAL statement_timeout = 1000; "
                               "SELECT set_config('coffer.scope', 'platform', true)");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (ok) {
        r = PQexec(conn, "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 "
                         "FROM outbox WHERE status = 'pending'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            mb_printf(b,
                      "# HELP coffer_outbox_backlog Client events waiting to be delivered.\n"
                      "# TYPE coffer_outbox_backlog gauge\n"
                      "coffer_outbox_backlog %s\n"
                      "# HELP coffer_outbox_oldest_seconds Age of the oldest undelivered event.\n"
                      "# TYPE coffer_outbox_oldest_seconds gauge\n"
                      "coffer_outbox_oldest_seconds %s\n",
                      PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
        PQclear(r);
    }
    PQclear(PQexec(conn, "ROLLBACK"));
    db_pool_release(o->db, conn);
}

static void metrics_health(metrics_buf *b, const api_metrics_options *o)
{
    if (!o->health)
        return;
    health_component_status st[HEALTH_COMPONENTS_MAX];
    size_t n = health_snapshot(o->health, st, HEALTH_COMPONENTS_MAX);
    if (n > HEALTH_COMPONENTS_MAX)
        n = HEALTH_COMPONENTS_MAX;
    char q[HEALTH_NAME_MAX * 2 + 4];
    mb_printf(b, "# HELP coffer_component_up Whether a dependency answered its last probe.\n"
                 "# TYPE coffer_component_up gauge\n");
    for (size_t i = 0; i < n; i++)
        if (st[i].state == HEALTH_UP || st[i].state == HEALTH_DOWN)
            mb_printf(b, "coffer_component_up{component=\"%s\"} %d\n", mb_label(q, sizeof q, st[i].name),
                      st[i].state == HEALTH_UP);
    mb_printf(b, "# HELP coffer_component_probe_seconds How long the last probe took.\n"
                 "# TYPE coffer_component_probe_seconds gauge\n");
    for (size_t i = 0; i < n; i++)
        if (st[i].state == HEALTH_UP || st[i].state == HEALTH_DOWN)
            mb_printf(b, "coffer_component_probe_seconds{component=\"%s\"} %.6f\n",
                      mb_label(q, sizeof q, st[i].name), (double)st[i].latency_us / 1e6);
}

static void metrics_jobs_and_signer(metrics_buf *b)
{
    mb_printf(b, "# HELP coffer_job_runs_total Background job runs, by job and result.\n"
                 "# TYPE coffer_job_runs_total counter\n");
    for (size_t i = 0; i < METRICS_JOBS; i++) {
        mb_printf(b, "coffer_job_runs_total{job=\"%s\",result=\"ok\"} %llu\n", metrics_job_names[i],
                  (unsigned long long)atomic_load_explicit(&metrics_jobs[i].ok, memory_order_relaxed));
        mb_printf(b, "coffer_job_runs_total{job=\"%s\",result=\"failed\"} %llu\n", metrics_job_names[i],
                  (unsigned long long)atomic_load_explicit(&metrics_jobs[i].failed, memory_order_relaxed));
    }
    mb_printf(b, "# HELP coffer_job_duration_seconds How long job runs took.\n"
                 "# TYPE coffer_job_duration_seconds histogram\n");
    char labels[64];
    for (size_t i = 0; i < METRICS_JOBS; i++) {
        snprintf(labels, sizeof labels, "job=\"%s\"", metrics_job_names[i]);
        mb_histogram(b, "coffer_job_duration_seconds", labels, &metrics_jobs[i].time);
    }
    mb_printf(b, "# HELP coffer_signer_request_duration_seconds Round trips to coffer-signer.\n"
                 "# TYPE coffer_signer_request_duration_seconds histogram\n");
    mb_histogram(b, "coffer_signer_request_duration_seconds", "result=\"ok\"", &metrics_signer_ok);
    mb_histogram(b, "coffer_signer_request_duration_seconds", "result=\"failed\"", &metrics_signer_failed);
}

/* The chain client's counters (docs/chain.md, Metrics). */
static void metrics_evm(metrics_buf *b, const api_metrics_options *o)
{
    if (!o->evm)
        return;
    evm_rpc_stats *st = malloc(sizeof *st);
    if (!st) {
        b->oom = true;
        return;
    }
    evm_rpc_stats_snapshot(o->evm, st);
    char q[EVM_RPC_LABEL_MAX * 2 + 8];
    mb_printf(b, "# HELP coffer_evm_requests_total JSON-RPC requests made, by endpoint and method.\n"
                 "# TYPE coffer_evm_requests_total counter\n");
    for (size_t e = 0; e < st->n_endpoints; e++)
        for (int m = 0; m < EVM_METHOD_COUNT; m++)
            if (st->endpoints[e].method_requests[m])
                mb_printf(b, "coffer_evm_requests_total{endpoint=\"%s\",method=\"%s\"} %llu\n",
                          mb_label(q, sizeof q, st->endpoints[e].label), evm_method_name((evm_method)m),
                          (unsigned long long)st->endpoints[e].method_requests[m]);
    mb_printf(b, "# HELP coffer_evm_failures_total JSON-RPC requests that failed (transport, HTTP, garbled answers).\n"
                 "# TYPE coffer_evm_failures_total counter\n");
    for (size_t e = 0; e < st->n_endpoints; e++)
        for (int m = 0; m < EVM_METHOD_COUNT; m++)
            if (st->endpoints[e].method_failures[m])
                mb_printf(b, "coffer_evm_failures_total{endpoint=\"%s\",method=\"%s\"} %llu\n",
                          mb_label(q, sizeof q, st->endpoints[e].label), evm_method_name((evm_method)m),
                          (unsigned long long)st->endpoints[e].method_failures[m]);
    mb_printf(b, "# HELP coffer_evm_breaker_state Circuit breaker per endpoint (0 closed, 1 open, 2 half-open).\n"
                 "# TYPE coffer_evm_breaker_state gauge\n");
    for (size_t e = 0; e < st->n_endpoints; e++)
        mb_printf(b, "coffer_evm_breaker_state{endpoint=\"%s\"} %d\n", mb_label(q, sizeof q, st->endpoints[e].label),
                  st->endpoints[e].state == EVM_BREAKER_OPEN ? 1 : st->endpoints[e].state == EVM_BREAKER_HALF_OPEN ? 2 : 0);
    mb_printf(b, "# HELP coffer_evm_breaker_opened_total Times an endpoint's breaker opened.\n"
                 "# TYPE coffer_evm_breaker_opened_total counter\n");
    for (size_t e = 0; e < st->n_endpoints; e++)
        mb_printf(b, "coffer_evm_breaker_opened_total{endpoint=\"%s\"} %llu\n",
                  mb_label(q, sizeof q, st->endpoints[e].label), (unsigned long long)st->endpoints[e].times_opened);
    mb_printf(b, "# HELP coffer_evm_endpoint_disabled 1 when the endpoint serves another chain.\n"
                 "# TYPE coffer_evm_endpoint_disabled gauge\n");
    for (size_t e = 0; e < st->n_endpoints; e++)
        mb_printf(b, "coffer_evm_endpoint_disabled{endpoint=\"%s\"} %d\n",
                  mb_label(q, sizeof q, st->endpoints[e].label), st->endpoints[e].disabled ? 1 : 0);
    mb_printf(b, "# HELP coffer_evm_retries_total Back-off sleeps before another pass over the endpoints.\n"
                 "# TYPE coffer_evm_retries_total counter\ncoffer_evm_retries_total %llu\n",
              (unsigned long long)st->retries);
    free(st);
}

char *api_metrics_render(const api_metrics_options *o, size_t *len)
{
    metrics_buf b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    metrics_rpc(&b, o);
    metrics_db(&b, o);
    metrics_health(&b, o);
    metrics_jobs_and_signer(&b);
    metrics_evm(&b, o);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t up_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - o->started_ms;
    mb_printf(&b, "# HELP coffer_uptime_seconds Time since coffer-api started.\n"
                  "# TYPE coffer_uptime_seconds gauge\ncoffer_uptime_seconds %.3f\n",
              (double)(up_ms > 0 ? up_ms : 0) / 1000.0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- listener -------------------------------------------------------------------- */

struct api_metrics {
    api_metrics_options o;
    char listen[256];
    struct MHD_Daemon *d;
    int port;
};

static enum MHD_Result metrics_send(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                                    size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                     const char *version, const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    (void)version;
    (void)upload_data;
    api_metrics *m = cls;
    if (!*con_cls) { /* first call: headers only */
        *con_cls = m;
        return MHD_YES;
    }
    if (*upload_data_size) { /* no request body is wanted: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    static char not_found[] = "not found: coffer-api serves only GET /metrics here\n";
    static char not_allowed[] = "method not allowed: use GET\n";
    if (strcmp(url, "/metrics") != 0)
        return metrics_send(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", not_found,
                            sizeof not_found - 1, MHD_RESPMEM_PERSISTENT);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return metrics_send(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", not_allowed,
                            sizeof not_allowed - 1, MHD_RESPMEM_PERSISTENT);
    size_t len = 0;
    char *body = api_metrics_render(&m->o, &len);
    if (!body) {
        static char oom[] = "out of memory\n";
        return metrics_send(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", oom,
                            sizeof oom - 1, MHD_RESPMEM_PERSISTENT);
    }
    return metrics_send(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                        MHD_RESPMEM_MUST_FREE);
}

/* "host:port" with a numeric IPv4 host (or "localhost", "*"). */
static int metrics_parse_listen(struct sockaddr_in *sa, char *err, size_t err_len, const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1]) {
        snprintf(err, err_len, "metrics.listen must be host:port, got \"%s\"", listen);
        return -1;
    }
    char host[64];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host) {
        snprintf(err, err_len, "metrics.listen: host too long");
        return -1;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535) {
        snprintf(err, err_len, "metrics.listen: bad port \"%s\"", colon + 1);
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        snprintf(err, err_len, "metrics.listen: host must be an IPv4 address, localhost or *, got \"%s\"", host);
        return -1;
    }
    return 0;
}

api_metrics *api_metrics_start(char *err, size_t err_len, const api_metrics_options *o)
{
    struct sockaddr_in sa;
    if (!o->listen || metrics_parse_listen(&sa, err, err_len, o->listen) != 0)
        return NULL;
    api_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    m->o = *o;
    snprintf(m->listen, sizeof m->listen, "%s", o->listen);
    m->o.listen = m->listen;
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY, 0, NULL, NULL,
                            metrics_handle, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (!m->d) {
        snprintf(err, err_len, "metrics.listen: cannot listen on %s (in use or not permitted)", o->listen);
        free(m);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : 0;
    return m;
}

int api_metrics_port(const api_metrics *m)
{
    return m->port;
}

void api_metrics_stop(api_metrics *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    free(m);
}
