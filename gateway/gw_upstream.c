#include "gw_upstream.h"

#include "grpc/health/v1/health.pb-c.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *target;
    rpc_client *client;
    atomic_bool healthy;
    pthread_mutex_t lock; /* detail */
    char detail[256];
} gw_upstream;

struct gw_upstreams {
    gw_upstream items[GW_UPSTREAM_MAX];
    size_t n;
    int64_t interval_ms, timeout_ms;
    atomic_size_t rr;
    atomic_uint_fast64_t failovers;
    pthread_t thread;
    bool started;
    grpcw_cq *cq;            /* asynchronous calls complete here */
    pthread_t cq_thread;     /* ... and are finished by this thread */
    bool cq_started;
    /* Calls to start, handed to the completion thread while it is busy
     * (it starts them before it waits again): the gRPC work then stays on
     * one thread instead of two threads contending for the transport. */
    pthread_mutex_t q_lock;
    gw_upcall *q_head, *q_tail;
    bool cq_busy;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
};

static void gw_upstream_set(gw_upstream *up, bool healthy, const char *detail)
{
    bool was = atomic_exchange(&up->healthy, healthy);
    pthread_mutex_lock(&up->lock);
    snprintf(up->detail, sizeof up->detail, "%s", detail);
    pthread_mutex_unlock(&up->lock);
    if (was != healthy) {
        char q[300];
        if (healthy)
            log_info("upstream.healthy", "target=%s", up->target);
        else
            log_warn("upstream.unhealthy", "target=%s detail=%s", up->target, log_quote(q, sizeof q, detail));
    }
}

static void gw_upstream_check(gw_upstreams *u, gw_upstream *up)
{
    Grpc__Health__V1__HealthCheckRequest req;
    grpc__health__v1__health_check_request__init(&req);
    ProtobufCMessage *resp = NULL;
    rpc_call_result r;
    rpc_call_options o = {u->timeout_ms, NULL, 0};
    char detail[256];
    if (rpc_client_unary(up->client, &r, &resp, &grpc__health__v1__health__descriptor, "Check", &req.base, &o) != 0) {
        snprintf(detail, sizeof detail, "%s", r.message ? r.message : "call failed");
        gw_upstream_set(up, false, detail);
    } else if (r.code != RPC_OK) {
        snprintf(detail, sizeof detail, "%s: %s", rpc_code_name(r.code), r.message);
        gw_upstream_set(up, false, detail);
    } else {
        const Grpc__Health__V1__HealthCheckResponse *h = (const Grpc__Health__V1__HealthCheckResponse *)resp;
        bool ok = h->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        gw_upstream_set(up, ok, ok ? "" : "health check: NOT_SERVING");
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    rpc_call_result_dispose(&r);
}

static void *gw_upstream_thread(void *arg)
{
    gw_upstreams *u = arg;
    pthread_setname_np(pthread_self(), "gw-health");
    pthread_mutex_lock(&u->stop_lock);
    while (!u->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += u->interval_ms / 1000;
        ts.tv_nsec += (u->interval_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (!u->stopping && pthread_cond_timedwait(&u->stop_cond, &u->stop_lock, &ts) != ETIMEDOUT) {
        }
        if (u->stopping)
            break;
        pthread_mutex_unlock(&u->stop_lock);
        for (size_t i = 0; i < u->n; i++)
            gw_upstream_check(u, &u->items[i]);
        pthread_mutex_lock(&u->stop_lock);
    }
    pthread_mutex_unlock(&u->stop_lock);
    return NULL;
}

static void *gw_upstream_cq_thread(void *arg);

/* Waits for a shut-down queue to drain (no completion thread ran). */
static void gw_upstream_drain(grpcw_cq *cq)
{
    void *tag;
    bool ok;
    while (grpcw_cq_next(cq, &tag, &ok, -1) != GRPCW_EV_SHUTDOWN) {
    }
}

gw_upstreams *gw_upstreams_new(char *err, size_t err_len, const gw_upstream_config *cfg)
{
    if (cfg->n_targets == 0 || cfg->n_targets > GW_UPSTREAM_MAX) {
        snprintf(err, err_len, "upstream.targets: 1 to %u targets, got %zu", GW_UPSTREAM_MAX, cfg->n_targets);
        return NULL;
    }
    gw_upstreams *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&u->stop_lock, NULL);
    pthread_cond_init(&u->stop_cond, NULL);
    pthread_mutex_init(&u->q_lock, NULL);
    u->interval_ms = cfg->health_interval_ms > 0 ? cfg->health_interval_ms : 1000;
    u->timeout_ms = cfg->health_timeout_ms > 0 ? cfg->health_timeout_ms : 1000;
    /* Failover is ours (gw_upstream_not_sent): the core need not retry. */
    grpcw_channel_options co = {NULL, NULL, cfg->max_message_bytes, true};
    for (size_t i = 0; i < cfg->n_targets; i++) {
        gw_upstream *up = &u->items[i];
        pthread_mutex_init(&up->lock, NULL);
        u->n++;
        up->target = strdup(cfg->targets[i]);
        up->client = up->target ? rpc_client_new(up->target, &co) : NULL;
        if (!up->client) {
            snprintf(err, err_len, "cannot create a channel to %s", cfg->targets[i]);
            gw_upstreams_free(u);
            return NULL;
        }
    }
    u->cq = grpcw_cq_new();
    if (!u->cq) {
        snprintf(err, err_len, "out of memory");
        gw_upstreams_free(u);
        return NULL;
    }
    for (size_t i = 0; i < u->n; i++)
        gw_upstream_check(u, &u->items[i]);
    return u;
}

int gw_upstreams_start(gw_upstreams *u)
{
    if (pthread_create(&u->cq_thread, NULL, gw_upstream_cq_thread, u) != 0)
        return -1;
    u->cq_started = true;
    if (pthread_create(&u->thread, NULL, gw_upstream_thread, u) != 0)
        return -1;
    u->started = true;
    return 0;
}

void gw_upstreams_free(gw_upstreams *u)
{
    if (!u)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->stop_lock);
        u->stopping = true;
        pthread_cond_broadcast(&u->stop_cond);
        pthread_mutex_unlock(&u->stop_lock);
        pthread_join(u->thread, NULL);
    }
    if (u->cq) {
        grpcw_cq_shutdown(u->cq);
        if (u->cq_started)
            pthread_join(u->cq_thread, NULL);
        else
            gw_upstream_drain(u->cq);
        grpcw_cq_free(u->cq);
    }
    for (size_t i = 0; i < u->n; i++) {
        rpc_client_free(u->items[i].client);
        free(u->items[i].target);
        pthread_mutex_destroy(&u->items[i].lock);
    }
    pthread_mutex_destroy(&u->stop_lock);
    pthread_cond_destroy(&u->stop_cond);
    pthread_mutex_destroy(&u->q_lock);
    free(u);
}

bool gw_upstream_not_sent(const rpc_call_result *res)
{
    if (res->code != RPC_UNAVAILABLE || res->initial_md.count != 0 || !res->message)
        return false;
    /* The core's pick failures: no connection was ever ready, so the call
     * was failed by the client channel before any byte went out. */
    return strstr(res->message, "failed to connect to all addresses") != NULL ||
           strstr(res->message, "DNS resolution failed") != NULL ||
           strstr(res->message, "empty address list") != NULL;
}

int gw_upcall_init(gw_upcall *c)
{
    memset(c, 0, sizeof *c);
    c->call = rpc_client_call_new();
    return c->call ? 0 : -1;
}

void gw_upcall_dispose(gw_upcall *c)
{
    rpc_client_call_free(c->call);
    c->call = NULL;
}

int gw_upstreams_call_start(gw_upstreams *u, gw_upcall *c, rpc_call_result *res,
                            const ProtobufCServiceDescriptor *service, const char *method,
                            const ProtobufCMessage *request, const rpc_call_options *options, gw_upstream_done_fn *done,
                            void *arg)
{
    if (rpc_client_call_prepare(c->call, res, service, method, request) != 0)
        return -1;
    rpc_call_result_dispose(res);
    static const rpc_call_options no_options = {0, NULL, 0};
    c->options = options ? *options : no_options;
    c->done = done;
    c->arg = arg;
    /* Healthy targets round-robin, then the unhealthy ones: health may be
     * stale, and a dead one fails fast. */
    size_t start = atomic_fetch_add_explicit(&u->rr, 1, memory_order_relaxed);
    c->n = 0;
    c->k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < u->n; k++) {
            size_t i = (start + k) % u->n;
            if (atomic_load_explicit(&u->items[i].healthy, memory_order_relaxed) == (pass == 0))
                c->order[c->n++] = i;
        }
    c->next = NULL;
    pthread_mutex_lock(&u->q_lock);
    if (u->cq_busy) {
        if (u->q_tail)
            u->q_tail->next = c;
        else
            u->q_head = c;
        u->q_tail = c;
        pthread_mutex_unlock(&u->q_lock);
        memset(res, 0, sizeof *res);
        return 0;
    }
    pthread_mutex_unlock(&u->q_lock);
    return rpc_client_call_start(c->call, res, u->items[c->order[0]].client, u->cq, c, &c->options);
}

/* Hands a call's outcome to its owner; c is not touched afterwards. */
static void gw_upcall_deliver(gw_upcall *c, int rc, rpc_call_result *res, ProtobufCMessage *resp)
{
    gw_upstream_done_fn *done = c->done;
    void *arg = c->arg;
    size_t ti = c->order[c->k];
    done(arg, rc, res, resp, ti); /* c may be gone from here on */
    rpc_call_result_dispose(res);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
}

/* A call's tag completed: fail over when it was certainly not sent, else
 * hand the outcome to its owner. */
static void gw_upcall_complete(gw_upstreams *u, gw_upcall *c)
{
    rpc_call_result res;
    ProtobufCMessage *resp = NULL;
    int rc = rpc_client_call_finish(c->call, &res, &resp);
    for (;;) {
        gw_upstream *up = &u->items[c->order[c->k]];
        if (rc != 0 || !gw_upstream_not_sent(&res))
            break;
        gw_upstream_set(up, false, res.message);
        if (c->k + 1 >= c->n)
            break;
        log_debug("upstream.failover", "target=%s", up->target);
        c->k++;
        atomic_fetch_add_explicit(&u->failovers, 1, memory_order_relaxed);
        rpc_call_result_dispose(&res);
        if (rpc_client_call_start(c->call, &res, u->items[c->order[c->k]].client, u->cq, c, &c->options) == 0)
            return; /* completes again */
        rc = -1;
    }
    gw_upcall_deliver(c, rc, &res, resp);
}

static void *gw_upstream_cq_thread(void *arg)
{
    gw_upstreams *u = arg;
    pthread_setname_np(pthread_self(), "gw-calls");
    for (;;) {
        /* Start what was handed over; idle (not busy) only when nothing is left. */
        pthread_mutex_lock(&u->q_lock);
        gw_upcall *q = u->q_head;
        u->q_head = u->q_tail = NULL;
        if (!q)
            u->cq_busy = false;
        pthread_mutex_unlock(&u->q_lock);
        if (q) {
            while (q) {
                gw_upcall *c = q;
                q = c->next;
                rpc_call_result res;
                if (rpc_client_call_start(c->call, &res, u->items[c->order[0]].client, u->cq, c, &c->options) != 0)
                    gw_upcall_deliver(c, -1, &res, NULL);
            }
            continue;
        }
        void *tag = NULL;
        bool ok = false;
        grpcw_event ev = grpcw_cq_next(u->cq, &tag, &ok, -1);
        pthread_mutex_lock(&u->q_lock);
        u->cq_busy = true;
        pthread_mutex_unlock(&u->q_lock);
        if (ev == GRPCW_EV_SHUTDOWN)
            break;
        if (ev == GRPCW_EV_TAG)
            gw_upcall_complete(u, tag);
    }
    return NULL;
}

size_t gw_upstreams_count(const gw_upstreams *u)
{
    return u->n;
}

const char *gw_upstreams_target(const gw_upstreams *u, size_t i)
{
    return u->items[i].target;
}

bool gw_upstreams_healthy(const gw_upstreams *u, size_t i)
{
    return atomic_load(&u->items[i].healthy);
}

size_t gw_upstreams_healthy_count(const gw_upstreams *u)
{
    size_t n = 0;
    for (size_t i = 0; i < u->n; i++)
        n += atomic_load(&u->items[i].healthy) ? 1 : 0;
    return n;
}

uint64_t gw_upstreams_failovers(const gw_upstreams *u)
{
    return atomic_load(&u->failovers);
}

void gw_upstreams_detail(const gw_upstreams *u, char *buf, size_t buf_len, size_t i)
{
    gw_upstream *up = (gw_upstream *)(uintptr_t)&u->items[i];
    pthread_mutex_lock(&up->lock);
    snprintf(buf, buf_len, "%s", up->detail);
    pthread_mutex_unlock(&up->lock);
}
