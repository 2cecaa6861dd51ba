#include "gw_http.h"

#include "gw_ucl.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Threads: one event-loop thread (gw_http_loop: libmicrohttpd's epoll set,
 * driven from outside, and the loop's own upstream client, gw_ucl) runs
 * every callback below, the pipeline's call completions included.
 * A request whose upstream call is in flight is suspended
 * (MHD_suspend_connection, before the call starts, so its completion can
 * never race the suspension); the pipeline's gw_call_done builds the
 * reply, marks the request GW_REQ_REPLY and queues it to be resumed as its
 * very last touch of it; the loop then resumes it and MHD_run queues the
 * reply. A suspended connection is never
 * closed under a call (libmicrohttpd does not watch it), and gw_http_stop
 * waits for every call before it stops the daemon, so a gw_req outlives
 * its call. */

/* gw_reqs kept for reuse (with their buffers and call storage). */
#define GW_REQ_POOL_MAX 256u

/* Longest access-log line (longer ones are cut by log_format). */
#define GW_LOG_LINE_MAX 2048u

/* libmicrohttpd's memory per connection (request line, headers, read and
 * write buffers): it is zeroed for every request, and 16 KiB leaves the
 * request line and headers ~8 KiB, nginx's default. */
#define GW_CONN_MEMORY 16384u

typedef enum {
    GW_REQ_READING = 0, /* headers and body arriving */
    GW_REQ_CALLING,     /* suspended; the upstream call is in flight */
    GW_REQ_REPLY,       /* p.reply is the reply to queue */
    GW_REQ_DONE,        /* reply queued and recorded */
} gw_req_state;

/* Per request: made by the URI callback (which sees the raw URI, before
 * libmicrohttpd decodes it), back to the pool when the request completes. */
typedef struct gw_req {
    gw_preq p;                    /* first: the pipeline's callbacks get &p */
    struct gw_req *next_free;     /* in the pool */
    struct gw_req *next_resume;   /* in the resume queue */
    gw_http *h;
    struct MHD_Connection *conn;
    size_t uri_cap;
    gw_kv *kv;                    /* the request headers (libmicrohttpd's strings) */
    size_t kv_n, kv_cap;
    bool kv_oom;
    bool started;
    gw_req_state state;
} gw_req;

struct gw_http {
    struct MHD_Daemon *daemon;
    gw_http_options o;
    gw_pipe *pipe;
    int port;
    atomic_size_t active;         /* requests between the URI callback and completion */
    pthread_mutex_t pool_lock;
    gw_req *pool;
    size_t pool_n;
    pthread_t loop;
    bool loop_started;
    int wake_fd;                  /* eventfd: wakes the loop (stop, quiesce) */
    atomic_bool loop_stop;
    atomic_bool quiesce;
    atomic_bool kicked;           /* wake_fd written since the loop last looked */
    pthread_mutex_t resume_lock;
    gw_req *resume_head;          /* calls done, connections to resume (by the loop) */
    char log_batch[32768];        /* access-log lines of this loop turn (loop thread only) */
    size_t log_len;
    MHD_socket listen_sock;       /* handed back by MHD_quiesce_daemon */
    gw_ucl *ucl;                  /* the loop's own upstream connections */
};

/* Writes the batched access-log lines (loop thread). */
static void gw_log_flush(gw_http *h)
{
    if (h->log_len)
        log_write(h->log_batch, h->log_len);
    h->log_len = 0;
}

static void gw_req_free(gw_req *r)
{
    gw_preq_dispose(&r->p);
    free(r->p.uri);
    free(r->kv);
    free(r);
}

static void gw_req_release(gw_http *h, gw_req *r)
{
    pthread_mutex_lock(&h->pool_lock);
    if (h->pool_n < GW_REQ_POOL_MAX && !r->p.body.oom && r->p.body.cap <= 65536 && r->p.reply.cap <= 65536) {
        r->next_free = h->pool;
        h->pool = r;
        h->pool_n++;
        r = NULL;
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (r)
        gw_req_free(r);
}

static void gw_http_resume_later(gw_preq *pr);

static void gw_req_suspend(gw_preq *pr)
{
    gw_req *r = (gw_req *)(void *)pr;
    r->state = GW_REQ_CALLING;
    MHD_suspend_connection(r->conn);
}

static void gw_peer(char *out, size_t cap, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "-");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)cap);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)cap);
    }
}

static void *gw_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    gw_http *h = cls;
    pthread_mutex_lock(&h->pool_lock);
    gw_req *r = h->pool;
    if (r) {
        h->pool = r->next_free;
        h->pool_n--;
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return NULL;
        gw_preq_init(&r->p);
    }
    char *keep_uri = r->p.uri;
    gw_preq_start(&r->p);
    r->p.uri = keep_uri;
    r->next_free = NULL;
    r->h = h;
    r->conn = conn;
    r->kv_n = 0;
    r->kv_oom = false;
    r->started = false;
    r->state = GW_REQ_READING;
    r->p.suspend = gw_req_suspend;
    r->p.done = gw_http_resume_later;
    r->p.ucl = h->ucl; /* the pipeline runs on the loop, inside MHD_run */
    if (!uri)
        uri = "/";
    size_t n = strlen(uri) + 1;
    if (n > r->uri_cap) {
        char *nu = malloc(n);
        if (!nu) {
            gw_req_release(h, r);
            return NULL;
        }
        free(r->p.uri);
        r->p.uri = nu;
        r->uri_cap = n;
    }
    memcpy(r->p.uri, uri, n);
    atomic_fetch_add_explicit(&h->active, 1, memory_order_relaxed);
    return r;
}

/* Access-log lines made on the event loop are batched and written with
 * one write(2) per loop turn (as coffer-api batches its own); lines made
 * elsewhere (the daemon stopping) are written at once. */
static void gw_log_line(gw_http *h, const char *line, size_t n)
{
    if (n == 0)
        return;
    if (!h->loop_started || !pthread_equal(pthread_self(), h->loop)) {
        log_write(line, n);
        return;
    }
    if (h->log_len + n > sizeof h->log_batch)
        gw_log_flush(h);
    if (n > sizeof h->log_batch) {
        log_write(line, n);
        return;
    }
    memcpy(h->log_batch + h->log_len, line, n);
    h->log_len += n;
}

/* Metrics and the access log of a request that got its reply (or whose
 * client was gone by then: delivered false). */
static void gw_record(gw_http *h, gw_req *r, bool delivered)
{
    char line[GW_LOG_LINE_MAX];
    if (gw_pipe_opts(h->pipe)->access_log)
        gw_peer(r->p.peer, sizeof r->p.peer, r->conn);
    gw_log_line(h, line, gw_pipe_record(h->pipe, &r->p, delivered, line, sizeof line));
}

static void gw_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    gw_http *h = cls;
    gw_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    atomic_fetch_sub_explicit(&h->active, 1, memory_order_relaxed);
    if (r->state == GW_REQ_CALLING) {
        /* Only a daemon stopped under a call could get here; gw_http_stop
         * prevents it. Keep r (the call still refers to it). */
        log_error("http.internal", "detail=\"a request completed while its upstream call was in flight\"");
        return;
    }
    if (r->state == GW_REQ_REPLY)
        gw_record(h, r, false); /* the client left before its reply could be queued */
    gw_req_release(h, r);
}

__attribute__((format(printf, 2, 0)))
static void gw_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http.server", "detail=%s", log_quote(q, sizeof q, msg));
}

/* A reply body handed to libmicrohttpd, zeroed when it lets it go (answers
 * may carry a new API key or webhook secret). */
typedef struct {
    size_t len;
    char *data;
} gw_wiped;

static void gw_wiped_free(void *cls)
{
    gw_wiped *w = cls;
    explicit_bzero(w->data, w->len);
    free(w->data);
    free(w);
}

/* A libmicrohttpd response of the pipeline's reply (its body taken). NULL
 * when libmicrohttpd cannot make one. */
static struct MHD_Response *gw_response_new(gw_preq *p)
{
    size_t len = p->reply.len;
    char *data = p->reply.data;
    gw_buf_init(&p->reply);
    struct MHD_Response *resp = NULL;
    gw_wiped *w = data ? malloc(sizeof *w) : NULL;
    if (w) {
        *w = (gw_wiped){len, data};
        resp = MHD_create_response_from_buffer_with_free_callback_cls(len, data, gw_wiped_free, w);
        if (!resp)
            gw_wiped_free(w);
    } else if (data) {
        explicit_bzero(data, len);
        free(data);
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)(uintptr_t)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, p->content_type ? p->content_type : "application/json");
    if (p->rid[0])
        MHD_add_response_header(resp, "X-Request-Id", p->rid);
    for (size_t i = 0; i < p->reply_hdrs.n; i++)
        MHD_add_response_header(resp, p->reply_hdrs.h[i].name, p->reply_hdrs.h[i].value);
    return resp;
}

/* ---- replies after a call ---------------------------------------------------------------- */

static void gw_http_wake(gw_http *h)
{
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0)
        log_warn("http.wake", "detail=\"eventfd write failed\"");
}

/* The pipeline's done: r's reply is made. Hands r to the event loop,
 * which resumes its connection: resuming there costs no wake-up of its
 * own, and one eventfd write per loop turn serves however many replies.
 * r must not be touched afterwards. */
static void gw_http_resume_later(gw_preq *pr)
{
    gw_req *r = (gw_req *)(void *)pr;
    gw_http *h = r->h;
    r->state = GW_REQ_REPLY;
    pthread_mutex_lock(&h->resume_lock);
    r->next_resume = h->resume_head;
    h->resume_head = r;
    pthread_mutex_unlock(&h->resume_lock);
    if (!atomic_exchange(&h->kicked, true))
        gw_http_wake(h);
}

/* On the event loop: resumes the connections of the replies handed over. */
static void gw_http_resume_pending(gw_http *h)
{
    pthread_mutex_lock(&h->resume_lock);
    gw_req *r = h->resume_head;
    h->resume_head = NULL;
    pthread_mutex_unlock(&h->resume_lock);
    while (r) {
        gw_req *next = r->next_resume;
        MHD_resume_connection(r->conn);
        r = next;
    }
}

/* ---- requests ---------------------------------------------------------------------------- */

static enum MHD_Result gw_kv_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    gw_req *r = cls;
    if (r->kv_n == r->kv_cap) {
        size_t nc = r->kv_cap ? r->kv_cap * 2 : 16;
        gw_kv *nk = realloc(r->kv, nc * sizeof *nk);
        if (!nk) {
            r->kv_oom = true;
            return MHD_NO;
        }
        r->kv = nk;
        r->kv_cap = nc;
    }
    r->kv[r->kv_n++] = (gw_kv){key ? key : "", value ? value : ""};
    return MHD_YES;
}

/* Queues r's reply, and records it. */
static enum MHD_Result gw_deliver(gw_http *h, gw_req *r)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp = gw_response_new(&r->p);
    if (resp) {
        ret = MHD_queue_response(r->conn, r->p.code, resp);
        MHD_destroy_response(resp);
    }
    r->state = GW_REQ_DONE;
    gw_record(h, r, true);
    return ret;
}

static enum MHD_Result gw_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)url;
    (void)version;
    gw_http *h = cls;
    gw_req *r = *con_cls;
    size_t max_body = gw_pipe_opts(h->pipe)->max_body_bytes;
    if (!r)
        return MHD_NO;
    if (r->state == GW_REQ_REPLY)
        return gw_deliver(h, r); /* resumed after its call */
    if (r->state == GW_REQ_CALLING || r->state == GW_REQ_DONE)
        return MHD_YES; /* cannot happen: suspended, or answered */
    if (!r->started) {
        r->started = true;
        r->p.method = method;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > max_body) {
            /* Refused before the body is read. */
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", max_body);
            r->p.path = r->p.uri;
            r->p.out = (gw_outcome){gw_routes_count(gw_pipe_opts(h->pipe)->routes) + GW_ROUTE_UNMATCHED, 413,
                                    RPC_RESOURCE_EXHAUSTED, NULL, "body_too_large"};
            gw_pipe_reply_status(&r->p, 413, RPC_RESOURCE_EXHAUSTED, msg, NULL);
            return gw_deliver(h, r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->p.too_large && r->p.body.len + *upload_data_size <= max_body)
            gw_buf_append(&r->p.body, upload_data, *upload_data_size);
        else
            r->p.too_large = true;
        *upload_data_size = 0;
        return r->p.body.oom ? MHD_NO : MHD_YES;
    }
    MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_kv_iter, r);
    if (r->kv_oom)
        return MHD_NO;
    r->p.hdrs = r->kv;
    r->p.n_hdrs = r->kv_n;
    if (gw_pipe_handle(h->pipe, &r->p) == GW_PIPE_CALLING)
        return MHD_YES; /* suspended; resumed with its reply (even a call that could not start) */
    return gw_deliver(h, r);
}

/* ---- start and stop ---------------------------------------------------------------------- */

/* The event loop. libmicrohttpd's own epoll thread (0.9.75) waits again
 * with the full timeout whenever one wait returned exactly 128 events, so
 * 128 busy keep-alive connections could stall until the idle timeout; here
 * poll() waits on its epoll descriptor and on wake_fd (stop, quiesce,
 * replies to resume), and MHD_run() never blocks. */
static unsigned gw_http_connections(gw_http *h)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

static void *gw_http_loop(void *arg)
{
    gw_http *h = arg;
    pthread_setname_np(pthread_self(), "gw-http");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd p[3] = {
        {di ? di->epoll_fd : -1, POLLIN, 0}, {h->wake_fd, POLLIN, 0}, {gw_ucl_fd(h->ucl), POLLIN, 0}};
    while (!atomic_load(&h->loop_stop)) {
        if (atomic_exchange(&h->quiesce, false))
            h->listen_sock = MHD_quiesce_daemon(h->daemon);
        gw_log_flush(h); /* before waiting: lines are never held back across a wait */
        MHD_UNSIGNED_LONG_LONG to = 0;
        int tms = -1;
        if (MHD_get_timeout(h->daemon, &to) == MHD_YES)
            tms = to > 1000 ? 1000 : (int)to;
        int uto = gw_ucl_timeout_ms(h->ucl);
        if (uto >= 0 && (tms < 0 || uto < tms))
            tms = uto;
        int ready = poll(p, 3, tms);
        if (ready > 0 && (p[1].revents & POLLIN)) {
            uint64_t v;
            if (read(h->wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: already read */
            }
            atomic_store(&h->kicked, false);
        }
        /* Answers first: calls end, their connections resume and MHD_run
         * sends the replies; the calls its requests start leave at the end. */
        if ((ready > 0 && (p[2].revents & POLLIN)) || gw_ucl_timeout_ms(h->ucl) == 0)
            gw_ucl_run(h->ucl);
        gw_http_resume_pending(h);
        unsigned before = gw_http_connections(h);
        MHD_run(h->daemon);
        /* A run that closed connections may have left the listening socket
         * out of the epoll set (it is taken out at the connection limit and
         * put back only at the start of a run): one more run re-arms it. */
        if (gw_http_connections(h) < before)
            MHD_run(h->daemon);
        gw_ucl_flush(h->ucl);
    }
    gw_http_resume_pending(h); /* none may stay suspended for MHD_stop_daemon */
    gw_log_flush(h);
    return NULL;
}

static void gw_http_free(gw_http *h)
{
    gw_ucl_free(h->ucl);
    while (h->pool) {
        gw_req *r = h->pool;
        h->pool = r->next_free;
        gw_req_free(r);
    }
    pthread_mutex_destroy(&h->pool_lock);
    pthread_mutex_destroy(&h->resume_lock);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    free(h);
}

gw_http *gw_http_start(char *err, size_t err_len, const gw_http_options *o)
{
    gw_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->pool_lock, NULL);
    pthread_mutex_init(&h->resume_lock, NULL);
    h->listen_sock = MHD_INVALID_SOCKET;
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->wake_fd < 0) {
        snprintf(err, err_len, "eventfd failed");
        gw_http_free(h);
        return NULL;
    }
    h->o = *o;
    h->pipe = o->pipe;
    h->ucl = gw_ucl_new(gw_pipe_opts(o->pipe)->upstreams);
    if (!h->ucl) {
        snprintf(err, err_len, "out of memory");
        gw_http_free(h);
        return NULL;
    }

    struct sockaddr_storage ss;
    if (gw_listen_parse(&ss, o->listen) != 0) {
        snprintf(err, err_len, "http.listen: expected host:port (IPv4 address, localhost or [IPv6]), got \"%s\"",
                 o->listen);
        gw_http_free(h);
        return NULL;
    }
    /* One event loop (epoll) for every connection; requests waiting for
     * coffer-api are suspended, not holding a thread. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool tls = o->tls_cert_pem && o->tls_key_pem;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, err_len, "this libmicrohttpd has no TLS support");
            gw_http_free(h);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[16];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)gw_mhd_log, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL};
    if (o->max_connections_per_ip)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->max_connections_per_ip,
                                            NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_timeout_s, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, GW_CONN_MEMORY, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)gw_uri_cb, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)gw_completed_cb, h};
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)o->tls_cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)o->tls_key_pem};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, gw_access, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, err_len, "cannot serve HTTP on %s (address in use, or a bad TLS certificate/key)", o->listen);
        gw_http_free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    if (pthread_create(&h->loop, NULL, gw_http_loop, h) != 0) {
        snprintf(err, err_len, "cannot start the HTTP thread");
        MHD_stop_daemon(h->daemon);
        gw_http_free(h);
        return NULL;
    }
    h->loop_started = true;
    return h;
}

int gw_http_port(const gw_http *h)
{
    return h->port;
}

static void gw_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void gw_http_stop(gw_http *h)
{
    if (!h)
        return;
    /* No new connections; new requests on open ones get 503. Calls in
     * flight end by their deadlines at the latest (libmicrohttpd must not
     * stop with a connection suspended), then their replies get a moment
     * to go out. */
    gw_pipe_stop_accepting(h->pipe);
    atomic_store(&h->quiesce, true);
    gw_http_wake(h);
    gw_pipe_wait_calls(h->pipe);
    for (int i = 0; i < 200 && atomic_load(&h->active) > 0; i++)
        gw_sleep_ms(5);
    atomic_store(&h->loop_stop, true);
    gw_http_wake(h);
    if (h->loop_started)
        pthread_join(h->loop, NULL);
    /* No call is left (gw_pipe_wait_calls); were one, it ends here and its
     * connection is resumed before libmicrohttpd stops. */
    gw_ucl_free(h->ucl);
    h->ucl = NULL;
    gw_http_resume_pending(h);
    MHD_stop_daemon(h->daemon);
    if (h->listen_sock != MHD_INVALID_SOCKET)
        close(h->listen_sock);
    gw_http_free(h);
}
