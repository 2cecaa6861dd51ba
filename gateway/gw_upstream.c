#include "gw_upstream.h"

#include "grpc/health/v1/health.pb-c.h"
#include "gw_grpcwire.h"
#include "gw_ucl.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *target;
    rpc_client *client;          /* health checks */
    atomic_bool healthy;
    pthread_mutex_t lock;        /* detail, the address */
    char detail[256];
    char *host, *port;           /* NULL host: a Unix socket */
    char authority[128];
    struct sockaddr_storage addr;
    socklen_t addr_len;          /* 0: not resolved */
} gw_upstream;

struct gw_upstreams {
    gw_upstream items[GW_UPSTREAM_MAX];
    size_t n;
    int64_t interval_ms, timeout_ms;
    size_t max_message;
    atomic_size_t rr;
    atomic_uint_fast64_t failovers;
    pthread_t thread;
    bool started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
    /* The calls' loop thread, for callers without a loop of their own:
     * calls handed over in q, the loop woken through wake_fd. */
    gw_ucl *ucl;
    int ep, wake_fd;
    pthread_t loop;
    bool loop_started;
    atomic_bool loop_stop;
    pthread_mutex_t q_lock;
    gw_upcall *q_head, *q_tail;
    bool kicked;
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

/* Splits a target into host and port ("host:port", "[v6]:port",
 * "dns:///host:port", "ipv4:a.b.c.d:port") or a Unix socket path
 * ("unix:/path", "unix:///path"). */
static int gw_upstream_parse(gw_upstream *up, char *err, size_t err_len)
{
    const char *t = up->target;
    if (strncmp(t, "unix:", 5) == 0) {
        const char *path = t + 5;
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        struct sockaddr_un sun;
        if (!*path || strlen(path) >= sizeof sun.sun_path) {
            snprintf(err, err_len, "upstream.targets: %s: the socket path is empty or too long", t);
            return -1;
        }
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, path, strlen(path));
        memcpy(&up->addr, &sun, sizeof sun);
        up->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        snprintf(up->authority, sizeof up->authority, "localhost");
        return 0;
    }
    if (strncmp(t, "dns:///", 7) == 0)
        t += 7;
    else if (strncmp(t, "ipv4:", 5) == 0 || strncmp(t, "ipv6:", 5) == 0)
        t += 5;
    const char *colon;
    size_t hl;
    const char *h = t;
    if (*t == '[') {
        const char *close = strchr(t, ']');
        if (!close || close[1] != ':') {
            snprintf(err, err_len, "upstream.targets: %s: expected [address]:port", up->target);
            return -1;
        }
        h = t + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(t, ':');
        if (!colon) {
            snprintf(err, err_len, "upstream.targets: %s: expected host:port or unix:/path", up->target);
            return -1;
        }
        hl = (size_t)(colon - t);
    }
    const char *port = colon + 1;
    char *end;
    long pv = strtol(port, &end, 10);
    if (hl == 0 || !*port || *end || pv <= 0 || pv > 65535) {
        snprintf(err, err_len, "upstream.targets: %s: expected host:port with a port of 1 to 65535", up->target);
        return -1;
    }
    up->host = strndup(h, hl);
    up->port = strdup(port);
    if (!up->host || !up->port) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    /* host:port, as the gRPC core sent it (RFC 9113 8.3.1: the target's
     * authority, its port included). */
    snprintf(up->authority, sizeof up->authority, "%s", t);
    return 0;
}

/* Resolves a host target (blocking: the health thread and start-up only). */
static void gw_upstream_resolve(gw_upstream *up)
{
    if (!up->host)
        return;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(up->host, up->port, &hints, &res);
    pthread_mutex_lock(&up->lock);
    if (rc == 0 && res && res->ai_addrlen <= sizeof up->addr) {
        memcpy(&up->addr, res->ai_addr, res->ai_addrlen);
        up->addr_len = res->ai_addrlen;
    }
    pthread_mutex_unlock(&up->lock);
    if (rc != 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "cannot resolve %s: %s", up->host, gai_strerror(rc));
        gw_upstream_set(up, false, detail);
    }
    if (res)
        freeaddrinfo(res);
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
        for (size_t i = 0; i < u->n; i++) {
            gw_upstream_resolve(&u->items[i]);
            gw_upstream_check(u, &u->items[i]);
        }
        pthread_mutex_lock(&u->stop_lock);
    }
    pthread_mutex_unlock(&u->stop_lock);
    return NULL;
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
    u->ep = u->wake_fd = -1;
    u->interval_ms = cfg->health_interval_ms > 0 ? cfg->health_interval_ms : 1000;
    u->timeout_ms = cfg->health_timeout_ms > 0 ? cfg->health_timeout_ms : 1000;
    u->max_message = cfg->max_message_bytes > 0 ? cfg->max_message_bytes : 4u << 20;
    grpcw_channel_options co = {NULL, NULL, cfg->max_message_bytes, true};
    for (size_t i = 0; i < cfg->n_targets; i++) {
        gw_upstream *up = &u->items[i];
        pthread_mutex_init(&up->lock, NULL);
        u->n++;
        up->target = strdup(cfg->targets[i]);
        if (!up->target) {
            snprintf(err, err_len, "out of memory");
            gw_upstreams_free(u);
            return NULL;
        }
        if (gw_upstream_parse(up, err, err_len) != 0) {
            gw_upstreams_free(u);
            return NULL;
        }
        up->client = rpc_client_new(up->target, &co);
        if (!up->client) {
            snprintf(err, err_len, "cannot create a channel to %s", cfg->targets[i]);
            gw_upstreams_free(u);
            return NULL;
        }
    }
    u->ep = epoll_create1(EPOLL_CLOEXEC);
    u->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    u->ucl = gw_ucl_new(u);
    if (u->ep < 0 || u->wake_fd < 0 || !u->ucl) {
        snprintf(err, err_len, "cannot create the calls' event loop: %s", strerror(errno));
        gw_upstreams_free(u);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &u->wake_fd};
    struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = u->ucl};
    if (epoll_ctl(u->ep, EPOLL_CTL_ADD, u->wake_fd, &ev) != 0 ||
        epoll_ctl(u->ep, EPOLL_CTL_ADD, gw_ucl_fd(u->ucl), &ev2) != 0) {
        snprintf(err, err_len, "cannot create the calls' event loop: %s", strerror(errno));
        gw_upstreams_free(u);
        return NULL;
    }
    for (size_t i = 0; i < u->n; i++) {
        gw_upstream_resolve(&u->items[i]);
        gw_upstream_check(u, &u->items[i]);
    }
    return u;
}

/* The calls' loop: starts the calls handed over, runs their client. */
static void *gw_upstream_loop(void *arg)
{
    gw_upstreams *u = arg;
    pthread_setname_np(pthread_self(), "gw-calls");
    struct epoll_event evs[8];
    for (;;) {
        pthread_mutex_lock(&u->q_lock);
        gw_upcall *q = u->q_head;
        u->q_head = u->q_tail = NULL;
        u->kicked = false;
        pthread_mutex_unlock(&u->q_lock);
        while (q) {
            gw_upcall *c = q;
            q = c->next;
            gw_ucl_start(u->ucl, c);
        }
        gw_ucl_flush(u->ucl);
        if (atomic_load(&u->loop_stop) && gw_ucl_calls(u->ucl) == 0)
            break;
        int timeout = gw_ucl_timeout_ms(u->ucl);
        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        int n = epoll_wait(u->ep, evs, 8, timeout);
        for (int i = 0; i < n; i++)
            if (evs[i].data.ptr == &u->wake_fd) {
                uint64_t v;
                if (read(u->wake_fd, &v, sizeof v) < 0) {
                    /* EAGAIN: already read */
                }
            }
        gw_ucl_run(u->ucl);
    }
    return NULL;
}

static void gw_upstream_wake(gw_upstreams *u)
{
    uint64_t one = 1;
    if (write(u->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so the loop wakes anyway */
    }
}

int gw_upstreams_start(gw_upstreams *u)
{
    if (pthread_create(&u->loop, NULL, gw_upstream_loop, u) != 0)
        return -1;
    u->loop_started = true;
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
    if (u->loop_started) {
        atomic_store(&u->loop_stop, true);
        gw_upstream_wake(u);
        pthread_join(u->loop, NULL);
    }
    gw_ucl_free(u->ucl);
    if (u->ep >= 0)
        close(u->ep);
    if (u->wake_fd >= 0)
        close(u->wake_fd);
    for (size_t i = 0; i < u->n; i++) {
        rpc_client_free(u->items[i].client);
        free(u->items[i].target);
        free(u->items[i].host);
        free(u->items[i].port);
        pthread_mutex_destroy(&u->items[i].lock);
    }
    pthread_mutex_destroy(&u->stop_lock);
    pthread_cond_destroy(&u->stop_cond);
    pthread_mutex_destroy(&u->q_lock);
    free(u);
}

int gw_upcall_init(gw_upcall *c)
{
    memset(c, 0, sizeof *c);
    return 0;
}

void gw_upcall_dispose(gw_upcall *c)
{
    if (c->req)
        memset(c->req, 0, c->req_cap); /* requests carry credentials and secrets */
    free(c->req);
    c->req = NULL;
    c->req_cap = c->req_len = 0;
}

void gw_upstream_result(rpc_call_result *res, rpc_code code, const char *fmt, ...)
{
    memset(res, 0, sizeof *res);
    res->code = code;
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    res->message = strdup(m);
}

int gw_upstreams_call_start(gw_upstreams *u, gw_ucl *client, gw_upcall *c, rpc_call_result *res,
                            const ProtobufCServiceDescriptor *service, const char *method,
                            const ProtobufCMessage *request, const rpc_call_options *options, gw_upstream_done_fn *done,
                            void *arg)
{
    const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(service, method);
    if (!m) {
        gw_upstream_result(res, RPC_INTERNAL, "%s has no method %s", service->name, method);
        return -1;
    }
    if (request->descriptor != m->input) {
        gw_upstream_result(res, RPC_INTERNAL, "%s takes %s", method, m->input->name);
        return -1;
    }
    if ((size_t)snprintf(c->path, sizeof c->path, "/%s/%s", service->name, m->name) >= sizeof c->path) {
        gw_upstream_result(res, RPC_INTERNAL, "method path too long: %s/%s", service->name, m->name);
        return -1;
    }
    size_t len = protobuf_c_message_get_packed_size(request);
    if (len > UINT32_MAX) {
        gw_upstream_result(res, RPC_INTERNAL, "the request to %s is too large", method);
        return -1;
    }
    if (5 + len > c->req_cap) {
        size_t cap = c->req_cap ? c->req_cap : 256;
        while (cap < 5 + len)
            cap *= 2;
        uint8_t *nb = malloc(cap);
        if (!nb) {
            gw_upstream_result(res, RPC_INTERNAL, "out of memory");
            return -1;
        }
        gw_upcall_dispose(c);
        c->req = nb;
        c->req_cap = cap;
    }
    gw_grpcwire_prefix(c->req, len);
    protobuf_c_message_pack(request, c->req + 5);
    c->req_len = 5 + len;
    c->output = m->output;
    static const rpc_call_options no_options = {0, NULL, 0};
    c->options = options ? *options : no_options;
    c->done = done;
    c->arg = arg;
    c->resent = 0;
    c->stream = c->waiting = NULL;
    c->next = c->dl_prev = c->dl_next = NULL;
    c->deadline_us = 0;
    if (c->options.timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->deadline_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + c->options.timeout_ms * 1000;
    }
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
    memset(res, 0, sizeof *res);
    if (client) {
        gw_ucl_start(client, c);
        return 0;
    }
    pthread_mutex_lock(&u->q_lock);
    if (u->q_tail)
        u->q_tail->next = c;
    else
        u->q_head = c;
    u->q_tail = c;
    bool wake = !u->kicked;
    u->kicked = true;
    pthread_mutex_unlock(&u->q_lock);
    if (wake)
        gw_upstream_wake(u);
    return 0;
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

int gw_upstreams_address(gw_upstreams *u, size_t i, struct sockaddr_storage *ss, socklen_t *ss_len, char *detail,
                         size_t detail_len)
{
    gw_upstream *up = &u->items[i];
    pthread_mutex_lock(&up->lock);
    *ss_len = up->addr_len;
    if (up->addr_len)
        memcpy(ss, &up->addr, up->addr_len);
    else
        snprintf(detail, detail_len, "%s", up->detail[0] ? up->detail : "its address is not resolved");
    pthread_mutex_unlock(&up->lock);
    return *ss_len ? 0 : -1;
}

const char *gw_upstreams_authority(const gw_upstreams *u, size_t i)
{
    return u->items[i].authority;
}

void gw_upstreams_unreachable(gw_upstreams *u, size_t i, const char *detail)
{
    gw_upstream_set(&u->items[i], false, detail);
}

void gw_upstreams_count_failover(gw_upstreams *u)
{
    atomic_fetch_add_explicit(&u->failovers, 1, memory_order_relaxed);
}

size_t gw_upstreams_max_message(const gw_upstreams *u)
{
    return u->max_message;
}

int64_t gw_upstreams_connect_timeout_ms(const gw_upstreams *u)
{
    return u->timeout_ms;
}
