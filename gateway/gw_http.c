#include "gw_http.h"

#include "gw_errors.h"
#include "gw_json.h"
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
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Threads: one event-loop thread (gw_http_loop: libmicrohttpd's epoll set,
 * driven from outside) runs every callback below except gw_call_done,
 * which runs on gw_upstreams' completion thread.
 * A request whose upstream call is in flight is suspended
 * (MHD_suspend_connection, before the call starts, so its completion can
 * never race the suspension); gw_call_done builds the reply, marks the
 * request GW_REQ_REPLY and resumes it as its very last touch of it; the
 * polling thread then queues the reply. A suspended connection is never
 * closed under a call (libmicrohttpd does not watch it), and gw_http_stop
 * waits for every call before it stops the daemon, so a gw_req outlives
 * its call. */

/* gw_reqs kept for reuse (with their buffers and call storage). */
#define GW_REQ_POOL_MAX 256u

/* Longest access-log line (longer ones are cut by log_format). */
#define GW_LOG_LINE_MAX 2048u

typedef enum {
    GW_REQ_READING = 0, /* headers and body arriving */
    GW_REQ_CALLING,     /* suspended; the upstream call is in flight */
    GW_REQ_REPLY,       /* r->resp is the reply to queue */
    GW_REQ_DONE,        /* reply queued and recorded */
} gw_req_state;

typedef struct {
    size_t slot;
    unsigned http_code;
    rpc_code grpc_code;
    const char *upstream;
    const char *route;
} gw_outcome;

typedef struct {
    grpcw_md md[GRPCW_SEND_MD_MAX];
    char keys[GRPCW_SEND_MD_MAX][128];
    size_t n;
    const char *error; /* set when a header cannot be forwarded */
} gw_mdset;

/* Per request: made by the URI callback (which sees the raw URI, before
 * libmicrohttpd decodes it), back to the pool when the request completes. */
typedef struct gw_req {
    struct gw_req *next_free;     /* in the pool */
    struct gw_req *next_resume;   /* in the resume queue */
    gw_http *h;
    struct MHD_Connection *conn;
    char *uri;
    size_t uri_cap;
    gw_buf body;
    bool started;
    bool too_large;
    gw_req_state state;
    int64_t t0_us;
    const char *method;           /* libmicrohttpd's, valid for the request */
    const char *path;             /* in uri */
    char rid[GW_REQUEST_ID_MAX + 1];
    gw_outcome out;
    const gw_route *route;        /* of the call in flight */
    gw_mdset md;                  /* its metadata (values borrowed from the request's headers) */
    gw_upcall call;
    bool call_ready;              /* call initialized */
    struct MHD_Response *resp;    /* the reply, in GW_REQ_REPLY */
} gw_req;

struct gw_http {
    struct MHD_Daemon *daemon;
    gw_http_options o;
    gw_json_options jo;
    int port;
    char rid_prefix[16];
    atomic_uint_fast64_t rid_counter;
    atomic_size_t calls;          /* upstream calls in flight */
    atomic_size_t active;         /* requests between the URI callback and completion */
    atomic_bool stopping;
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
};

/* Writes the batched access-log lines (loop thread). */
static void gw_log_flush(gw_http *h)
{
    if (h->log_len)
        log_write(h->log_batch, h->log_len);
    h->log_len = 0;
}

static int64_t gw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void gw_req_release(gw_http *h, gw_req *r)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = NULL;
    pthread_mutex_lock(&h->pool_lock);
    if (h->pool_n < GW_REQ_POOL_MAX && !r->body.oom && r->body.cap <= 65536) {
        r->next_free = h->pool;
        h->pool = r;
        h->pool_n++;
        r = NULL;
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (r) {
        if (r->call_ready)
            gw_upcall_dispose(&r->call);
        gw_buf_dispose(&r->body);
        free(r->uri);
        free(r);
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
        gw_buf_init(&r->body);
    }
    /* Reset what the previous request left (the buffers stay). */
    r->next_free = NULL;
    r->h = h;
    r->conn = conn;
    r->body.len = 0;
    r->started = false;
    r->too_large = false;
    r->state = GW_REQ_READING;
    r->method = NULL;
    r->path = NULL;
    r->rid[0] = '\0';
    r->route = NULL;
    r->resp = NULL;
    r->t0_us = gw_now_us();
    if (!uri)
        uri = "/";
    size_t n = strlen(uri) + 1;
    if (n > r->uri_cap) {
        char *nu = malloc(n);
        if (!nu) {
            gw_req_release(h, r);
            return NULL;
        }
        free(r->uri);
        r->uri = nu;
        r->uri_cap = n;
    }
    memcpy(r->uri, uri, n);
    atomic_fetch_add_explicit(&h->active, 1, memory_order_relaxed);
    return r;
}

static void gw_record(gw_http *h, gw_req *r, bool delivered);

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

/* ---- responses --------------------------------------------------------------------------- */

typedef struct {
    char name[160];
    char value[256];
} gw_hdr;

typedef struct {
    gw_hdr h[24];
    size_t n;
} gw_hdrs;

static void gw_hdr_add(gw_hdrs *hs, const char *name, const char *value)
{
    if (hs->n >= sizeof hs->h / sizeof hs->h[0])
        return;
    snprintf(hs->h[hs->n].name, sizeof hs->h[hs->n].name, "%s", name);
    snprintf(hs->h[hs->n].value, sizeof hs->h[hs->n].value, "%s", value);
    hs->n++;
}

/* A response with body (taken: disposed here), the content type, the
 * request id and hs; *code becomes 500 when memory ran short. NULL when
 * libmicrohttpd cannot make one. */
static struct MHD_Response *gw_response_new(unsigned *code, const char *content_type, gw_buf *body, const char *rid,
                                            const gw_hdrs *hs)
{
    struct MHD_Response *resp;
    if (body->oom) {
        static const char oom[] = "{\"code\":8,\"message\":\"out of memory\",\"details\":[]}";
        *code = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
        gw_buf_dispose(body);
    } else {
        size_t len = body->len;
        char *data = body->data;
        body->data = NULL;
        gw_buf_dispose(body);
        resp = MHD_create_response_from_buffer(len, data ? data : (void *)(uintptr_t)"",
                                               data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            free(data);
    }
    if (!resp)
        return NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (rid && *rid)
        MHD_add_response_header(resp, "X-Request-Id", rid);
    for (size_t i = 0; hs && i < hs->n; i++)
        MHD_add_response_header(resp, hs->h[i].name, hs->h[i].value);
    return resp;
}

/* Makes r's reply (queued by gw_deliver). */
static void gw_reply(gw_req *r, unsigned code, const char *content_type, gw_buf *body, const gw_hdrs *hs)
{
    r->out.http_code = code;
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = gw_response_new(&r->out.http_code, content_type, body, r->rid, hs);
}

/* Makes r's reply a google.rpc.Status. */
static void gw_reply_status(gw_req *r, unsigned http_code, rpc_code code, const char *message, const gw_hdrs *hs)
{
    gw_buf b;
    gw_buf_init(&b);
    int64_t retry = -1;
    gw_error_body(&b, &retry, code, message, NULL, 0, NULL);
    r->out.grpc_code = code;
    gw_reply(r, http_code, "application/json", &b, hs);
}

/* ---- request pieces ---------------------------------------------------------------------- */

static bool gw_rid_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > GW_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.' || c == ':' || c == '/'))
            return false;
    }
    return true;
}

static void gw_request_id(gw_http *h, struct MHD_Connection *conn, char *rid, size_t cap)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (v && gw_rid_ok(v)) {
        snprintf(rid, cap, "%s", v);
        return;
    }
    uint64_t k = atomic_fetch_add_explicit(&h->rid_counter, 1, memory_order_relaxed);
    snprintf(rid, cap, "%s-%010llx", h->rid_prefix, (unsigned long long)k);
}

static bool gw_md_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

static void gw_md_add(gw_mdset *s, const char *key, const char *value)
{
    if (s->error)
        return;
    if (s->n >= GRPCW_SEND_MD_MAX) {
        s->error = "too many metadata headers (at most 8 with Authorization, Idempotency-Key, X-Request-Id)";
        return;
    }
    if (!gw_md_value_ok(value)) {
        s->error = "a forwarded header value holds characters gRPC metadata cannot carry";
        return;
    }
    size_t k = 0;
    for (; key[k] && k + 1 < sizeof s->keys[0]; k++)
        s->keys[s->n][k] = (char)(key[k] >= 'A' && key[k] <= 'Z' ? key[k] - 'A' + 'a' : key[k]);
    s->keys[s->n][k] = '\0';
    s->md[s->n].key = s->keys[s->n];
    s->md[s->n].value = value;
    s->md[s->n].value_len = strlen(value);
    s->n++;
}

static enum MHD_Result gw_md_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    gw_mdset *s = cls;
    if (!key || strncasecmp(key, "Grpc-Metadata-", 14) != 0 || !key[14])
        return MHD_YES;
    const char *k = key + 14;
    if (strcasecmp(k, "authorization") == 0 || strcasecmp(k, "idempotency-key") == 0 ||
        strcasecmp(k, "x-request-id") == 0 || strncasecmp(k, "grpc-", 5) == 0 ||
        (strlen(k) > 4 && strcasecmp(k + strlen(k) - 4, "-bin") == 0))
        return MHD_YES; /* reserved, or set from their own headers */
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.')) {
            s->error = "a Grpc-Metadata- header name is not a valid metadata key";
            return MHD_NO;
        }
    gw_md_add(s, k, value ? value : "");
    return MHD_YES;
}

typedef struct {
    ProtobufCMessage *msg;
    const ProtobufCFieldDescriptor *field;
    const char *error;
} gw_hdr_ctx;

/* Raw-body routes: every request header as a {name, value} element. */
static enum MHD_Result gw_headers_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    gw_hdr_ctx *c = cls;
    const ProtobufCMessageDescriptor *hd = c->field->descriptor;
    ProtobufCMessage *e = gw_json_message_new(hd);
    if (!e) {
        c->error = "out of memory";
        return MHD_NO;
    }
    const ProtobufCFieldDescriptor *nf = protobuf_c_message_descriptor_get_field_by_name(hd, "name");
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field_by_name(hd, "value");
    char *n = strdup(key ? key : ""), *v = strdup(value ? value : "");
    size_t *count = (size_t *)(void *)((char *)c->msg + c->field->quantifier_offset);
    ProtobufCMessage ***arr = (ProtobufCMessage ***)(void *)((char *)c->msg + c->field->offset);
    ProtobufCMessage **na = realloc(*arr, (*count + 1) * sizeof *na);
    if (!n || !v || !na) {
        free(n);
        free(v);
        if (na)
            *arr = na;
        protobuf_c_message_free_unpacked(e, NULL);
        c->error = "out of memory";
        return MHD_NO;
    }
    *(char **)(void *)((char *)e + nf->offset) = n;
    *(char **)(void *)((char *)e + vf->offset) = v;
    *arr = na;
    na[(*count)++] = e;
    return MHD_YES;
}

/* Sets the fields named by the query string (raw, after '?'). */
static int gw_apply_query(gw_http *h, ProtobufCMessage *msg, char *err, size_t err_len, const char *q)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            size_t kl = eq ? (size_t)(eq - q) : n;
            char *key = malloc(kl + 1), *val = malloc(n + 1);
            if (!key || !val) {
                free(key);
                free(val);
                snprintf(err, err_len, "out of memory");
                return -1;
            }
            /* application/x-www-form-urlencoded: '+' is a space. */
            size_t ko = 0, vo = 0;
            bool bad = false;
            for (size_t i = 0; i < n; i++) {
                bool in_key = i < kl;
                if (i == kl)
                    continue;
                char c = q[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int a = -1, b = -1;
                    if (i + 2 < n) {
                        char x = q[i + 1], y = q[i + 2];
                        a = x >= '0' && x <= '9' ? x - '0' : (x | 32) >= 'a' && (x | 32) <= 'f' ? (x | 32) - 'a' + 10 : -1;
                        b = y >= '0' && y <= '9' ? y - '0' : (y | 32) >= 'a' && (y | 32) <= 'f' ? (y | 32) - 'a' + 10 : -1;
                    }
                    if (a < 0 || b < 0 || (in_key && i + 2 >= kl)) {
                        bad = true;
                        break;
                    }
                    c = (char)(a * 16 + b);
                    i += 2;
                }
                if (in_key)
                    key[ko++] = c;
                else
                    val[vo++] = c;
            }
            key[ko] = '\0';
            val[vo] = '\0';
            int rc = 0;
            if (bad)
                rc = -1, snprintf(err, err_len, "malformed percent-encoding in the query string");
            else if (ko == 0 || memchr(key, '\0', ko))
                rc = -1, snprintf(err, err_len, "empty query parameter name");
            else
                rc = gw_json_set_path(msg, err, err_len, key, val, vo, &h->jo);
            free(key);
            free(val);
            if (rc != 0)
                return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}
static void gw_http_wake(gw_http *h)
{
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0)
        log_warn("http.wake", "detail=\"eventfd write failed\"");
}

/* Hands r, its reply made (GW_REQ_REPLY), to the event loop, which
 * resumes its connection: resuming there costs no wake-up of its own, and
 * one eventfd write per loop turn serves however many replies. r must not
 * be touched afterwards. */
static void gw_http_resume_later(gw_http *h, gw_req *r)
{
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

/* ---- builtin routes ---------------------------------------------------------------------- */

/* GET of the gateway's own paths: the reply is made and true returned. */
static bool gw_builtin(gw_http *h, gw_req *r, const char *path)
{
    size_t base = gw_routes_count(h->o.routes);
    gw_buf b;
    gw_buf_init(&b);
    if (strcmp(path, "/healthz") == 0) {
        r->out.slot = base + GW_ROUTE_HEALTHZ;
        gw_buf_puts(&b, "{\"status\":\"ok\"}");
        gw_reply(r, 200, "application/json", &b, NULL);
        return true;
    }
    if (strcmp(path, "/readyz") == 0) {
        r->out.slot = base + GW_ROUTE_READYZ;
        size_t healthy = gw_upstreams_healthy_count(h->o.upstreams);
        gw_buf_printf(&b, "{\"status\":\"%s\",\"upstreams\":[", healthy ? "ready" : "unavailable");
        for (size_t i = 0; i < gw_upstreams_count(h->o.upstreams); i++) {
            char detail[256];
            gw_upstreams_detail(h->o.upstreams, detail, sizeof detail, i);
            const char *t = gw_upstreams_target(h->o.upstreams, i);
            gw_buf_puts(&b, i ? ",{\"target\":" : "{\"target\":");
            gw_buf_json_string(&b, t, strlen(t));
            gw_buf_printf(&b, ",\"healthy\":%s,\"detail\":", gw_upstreams_healthy(h->o.upstreams, i) ? "true" : "false");
            gw_buf_json_string(&b, detail, strlen(detail));
            gw_buf_putc(&b, '}');
        }
        gw_buf_puts(&b, "]}");
        gw_reply(r, healthy ? 200 : 503, "application/json", &b, NULL);
        return true;
    }
    if (strcmp(path, "/metrics") == 0) {
        r->out.slot = base + GW_ROUTE_METRICS;
        gw_metrics_write(h->o.metrics, &b, h->o.upstreams);
        gw_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL);
        return true;
    }
    if (strcmp(path, "/openapi.json") == 0) {
        r->out.slot = base + GW_ROUTE_OPENAPI;
        gw_buf_append(&b, h->o.openapi_json, h->o.openapi_json_len);
        gw_reply(r, 200, "application/json", &b, NULL);
        return true;
    }
    gw_buf_dispose(&b);
    return false;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

/* The upstream call of r ended (on the completion thread): its reply. */
static void gw_call_done(void *arg, int rc, const rpc_call_result *res, const ProtobufCMessage *resp,
                         size_t target_index)
{
    gw_req *r = arg;
    gw_http *h = r->h;
    const gw_route *rt = r->route;
    char err[GW_JSON_ERR_MAX + 64];
    log_set_request_id(r->rid);
    r->out.upstream = gw_upstreams_target(h->o.upstreams, target_index);
    rpc_code code = res->code;
    if (rc != 0 && code == RPC_OK)
        code = RPC_INTERNAL;
    r->out.grpc_code = code;
    gw_hdrs hs;
    hs.n = 0;
    for (size_t i = 0; i < res->initial_md.count; i++) {
        const grpcw_md_entry *e = &res->initial_md.items[i];
        size_t kl = strlen(e->key);
        if (strncmp(e->key, "grpc-", 5) == 0 || strcmp(e->key, "content-type") == 0 ||
            strcmp(e->key, "x-request-id") == 0 || (kl > 4 && strcmp(e->key + kl - 4, "-bin") == 0) ||
            !gw_md_value_ok(e->value) || hs.n >= 16)
            continue;
        snprintf(hs.h[hs.n].name, sizeof hs.h[hs.n].name, "Grpc-Metadata-%s", e->key);
        snprintf(hs.h[hs.n].value, sizeof hs.h[hs.n].value, "%s", e->value);
        hs.n++;
    }
    gw_buf b;
    gw_buf_init(&b);
    if (code == RPC_OK && resp) {
        int erc = rt->response_field ? gw_json_encode_field(&b, err, sizeof err, resp, rt->response_field, &h->jo)
                                     : gw_json_encode(&b, err, sizeof err, resp, &h->jo);
        if (erc == 0) {
            gw_reply(r, 200, "application/json", &b, &hs);
        } else {
            gw_buf_dispose(&b);
            char m2[GW_JSON_ERR_MAX + 128];
            snprintf(m2, sizeof m2, "the response cannot be written as JSON: %s", err);
            gw_reply_status(r, 500, RPC_INTERNAL, m2, &hs);
        }
    } else {
        /* An error status. */
        size_t dlen = 0;
        const char *details = grpcw_md_list_get(&res->trailing_md, &dlen, "grpc-status-details-bin");
        if (!details)
            details = grpcw_md_list_get(&res->initial_md, &dlen, "grpc-status-details-bin");
        int64_t retry = -1;
        gw_error_body(&b, &retry, code, res->message, (const uint8_t *)details, details ? dlen : 0, &h->jo);
        if (code == RPC_UNAUTHENTICATED)
            gw_hdr_add(&hs, "WWW-Authenticate", "Bearer realm=\"coffer\"");
        if (code == RPC_RESOURCE_EXHAUSTED && retry < 0)
            retry = 1;
        if (retry > 0 && (code == RPC_RESOURCE_EXHAUSTED || code == RPC_UNAVAILABLE || code == RPC_ABORTED)) {
            char s[32];
            snprintf(s, sizeof s, "%lld", (long long)retry);
            gw_hdr_add(&hs, "Retry-After", s);
        }
        gw_reply(r, gw_http_status(code), "application/json", &b, &hs);
    }
    log_set_request_id(NULL);
    r->state = GW_REQ_REPLY;
    gw_http_resume_later(h, r); /* the last touch of r */
    atomic_fetch_sub_explicit(&h->calls, 1, memory_order_release);
}

/* A route of the API: the reply is made (an error), or the upstream call
 * started and r suspended (r->state GW_REQ_CALLING). */
static void gw_call_route(gw_http *h, gw_req *r, const gw_match *m, const char *query)
{
    struct MHD_Connection *conn = r->conn;
    const gw_route *rt = m->route;
    char err[GW_JSON_ERR_MAX + 64];
    ProtobufCMessage *msg = NULL;
    json_t *body = NULL;

    /* Deadline. */
    int64_t timeout_ms = h->o.default_timeout_ms;
    const char *gt = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Grpc-Timeout");
    if (gt) {
        if (gw_grpc_timeout_parse(&timeout_ms, gt) != 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT,
                            "Grpc-Timeout must be 1-8 digits and a unit H, M, S, m, u or n (e.g. 500m, 2S)", NULL);
            goto done;
        }
        if (timeout_ms < 1)
            timeout_ms = 1;
        if (h->o.max_timeout_ms > 0 && timeout_ms > h->o.max_timeout_ms)
            timeout_ms = h->o.max_timeout_ms;
    }

    msg = gw_json_message_new(rt->method->input);
    if (!msg) {
        gw_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        goto done;
    }
    /* Body. */
    if (rt->raw_body) {
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)(void *)((char *)msg + rt->body_field->offset);
        if (r->body.len) {
            bd->data = malloc(r->body.len);
            if (!bd->data) {
                gw_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
                goto done;
            }
            memcpy(bd->data, r->body.data, r->body.len);
            bd->len = r->body.len;
        }
        if (rt->headers_field) {
            gw_hdr_ctx hc = {msg, rt->headers_field, NULL};
            MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_headers_iter, &hc);
            if (hc.error) {
                gw_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, hc.error, NULL);
                goto done;
            }
        }
    } else if (rt->body && r->body.len) {
        if (gw_json_parse(&body, err, sizeof err, r->body.data, r->body.len) != 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
        int rc = rt->body_field ? gw_json_merge_field(msg, err, sizeof err, rt->body_field, body, &h->jo)
                                : gw_json_merge(msg, err, sizeof err, body, &h->jo);
        if (rc != 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }
    /* Path variables, then the query (not with body "*": everything is in the body). */
    for (size_t i = 0; i < rt->n_vars; i++) {
        if (gw_json_set_path(msg, err, sizeof err, rt->vars[i].field_path, m->values[i], strlen(m->values[i]),
                             &h->jo) != 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }
    if (query && *query) {
        if (rt->body && strcmp(rt->body, "*") == 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT,
                            "this method takes its fields in the JSON body, not in the query string", NULL);
            goto done;
        }
        if (gw_apply_query(h, msg, err, sizeof err, query) != 0) {
            gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }

    /* Metadata: values borrowed from the request's headers, which outlive the call. */
    gw_mdset *md = &r->md;
    md->n = 0;
    md->error = NULL;
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (v)
        gw_md_add(md, "authorization", v);
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (v)
        gw_md_add(md, "idempotency-key", v);
    gw_md_add(md, "x-request-id", r->rid);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_md_iter, md);
    if (md->error) {
        gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, md->error, NULL);
        goto done;
    }

    if (!r->call_ready) {
        if (gw_upcall_init(&r->call) != 0) {
            gw_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
            goto done;
        }
        r->call_ready = true;
    }
    r->route = rt;
    /* Suspended first: the call may complete (and resume) at once. */
    r->state = GW_REQ_CALLING;
    atomic_fetch_add_explicit(&h->calls, 1, memory_order_relaxed);
    MHD_suspend_connection(conn);
    rpc_call_options co = {timeout_ms, md->md, md->n};
    rpc_call_result res;
    if (gw_upstreams_call_start(h->o.upstreams, &r->call, &res, rt->service, rt->method->name, msg, &co, gw_call_done,
                                r) != 0) {
        r->out.upstream = NULL;
        gw_reply_status(r, 500, RPC_INTERNAL, res.message, NULL);
        rpc_call_result_dispose(&res);
        r->state = GW_REQ_REPLY;
        MHD_resume_connection(conn); /* on the loop already: delivered on its next turn */
        atomic_fetch_sub_explicit(&h->calls, 1, memory_order_release);
    }
done:
    if (body)
        json_decref(body);
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

/* A complete request: its reply made, or its call started. */
static void gw_handle(gw_http *h, gw_req *r)
{
    struct MHD_Connection *conn = r->conn;
    const char *method = r->method;
    gw_request_id(h, conn, r->rid, sizeof r->rid);
    log_set_request_id(r->rid);
    r->out = (gw_outcome){gw_routes_count(h->o.routes) + GW_ROUTE_UNMATCHED, 500, RPC_OK, NULL, "unmatched"};

    char *q = strchr(r->uri, '?');
    const char *query = NULL;
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    const char *path = r->uri;
    r->path = path;

    if (strcmp(method, "GET") == 0 && gw_builtin(h, r, path)) {
        r->out.route = path;
        goto out;
    }
    if (atomic_load_explicit(&h->stopping, memory_order_relaxed)) {
        gw_hdrs hs;
        hs.n = 0;
        gw_hdr_add(&hs, MHD_HTTP_HEADER_CONNECTION, "close");
        gw_reply_status(r, 503, RPC_UNAVAILABLE, "the gateway is shutting down", &hs);
        goto out;
    }
    gw_match m;
    gw_match_result mr = gw_routes_match(h->o.routes, &m, method, path);
    if (mr == GW_MATCH_OK) {
        r->out.slot = m.route->index;
        r->out.route = m.route->pattern;
        if (r->too_large) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", h->o.max_body_bytes);
            gw_reply_status(r, 413, RPC_RESOURCE_EXHAUSTED, msg, NULL);
        } else {
            gw_call_route(h, r, &m, query);
        }
        gw_match_dispose(&m);
    } else if (mr == GW_MATCH_METHOD) {
        gw_hdrs hs;
        hs.n = 0;
        gw_hdr_add(&hs, "Allow", m.allow);
        char msg[256];
        snprintf(msg, sizeof msg, "%s is not allowed on %.150s (allowed: %s)", method, path, m.allow);
        gw_reply_status(r, 405, RPC_UNIMPLEMENTED, msg, &hs);
    } else if (mr == GW_MATCH_BAD) {
        gw_reply_status(r, 400, RPC_INVALID_ARGUMENT, "malformed percent-encoding in the path", NULL);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, path);
        gw_reply_status(r, 404, RPC_NOT_FOUND, msg, NULL);
    }
out:
    log_set_request_id(NULL);
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
    struct MHD_Connection *conn = r->conn;
    int64_t us = gw_now_us() - r->t0_us;
    gw_metrics_record(h->o.metrics, r->out.slot, r->method, r->out.http_code, us);
    if (h->o.access_log) {
        char qp[300], qr[200];
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char peer[64] = "-";
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, peer, sizeof peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer, sizeof peer);
        }
        char line[GW_LOG_LINE_MAX];
        log_set_request_id(r->rid);
        size_t n = log_format(line, sizeof line, LOG_INFO, "http.request",
                              "method=%s path=%s route=%s status=%u code=%s duration_us=%lld peer=%s upstream=%s%s",
                              r->method, log_quote(qp, sizeof qp, r->path), log_quote(qr, sizeof qr, r->out.route),
                              r->out.http_code, rpc_code_name(r->out.grpc_code), (long long)us, peer,
                              r->out.upstream ? r->out.upstream : "-", delivered ? "" : " detail=client_gone");
        log_set_request_id(NULL);
        gw_log_line(h, line, n);
    }
}

/* Queues r's reply, and records it. */
static enum MHD_Result gw_deliver(gw_http *h, gw_req *r)
{
    enum MHD_Result ret = MHD_NO;
    if (r->resp) {
        ret = MHD_queue_response(r->conn, r->out.http_code, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
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
    if (!r)
        return MHD_NO;
    if (r->state == GW_REQ_REPLY)
        return gw_deliver(h, r); /* resumed after its call */
    if (r->state == GW_REQ_CALLING || r->state == GW_REQ_DONE)
        return MHD_YES; /* cannot happen: suspended, or answered */
    if (!r->started) {
        r->started = true;
        r->method = method;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body_bytes) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", h->o.max_body_bytes);
            gw_metrics_record(h->o.metrics, gw_routes_count(h->o.routes) + GW_ROUTE_UNMATCHED, method, 413,
                              gw_now_us() - r->t0_us);
            if (h->o.access_log)
                log_info("http.request", "method=%s status=413 detail=body_too_large", method);
            gw_buf b;
            gw_buf_init(&b);
            int64_t retry = -1;
            unsigned code = 413;
            gw_error_body(&b, &retry, RPC_RESOURCE_EXHAUSTED, msg, NULL, 0, NULL);
            struct MHD_Response *resp = gw_response_new(&code, "application/json", &b, NULL, NULL);
            if (!resp)
                return MHD_NO;
            enum MHD_Result rc = MHD_queue_response(conn, code, resp);
            MHD_destroy_response(resp);
            return rc;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large && r->body.len + *upload_data_size <= h->o.max_body_bytes)
            gw_buf_append(&r->body, upload_data, *upload_data_size);
        else
            r->too_large = true;
        *upload_data_size = 0;
        return r->body.oom ? MHD_NO : MHD_YES;
    }
    gw_handle(h, r);
    if (r->state == GW_REQ_CALLING)
        return MHD_YES; /* suspended; gw_call_done resumes it */
    if (r->state == GW_REQ_REPLY)
        return MHD_YES; /* its call could not start: resumed at once, delivered on the next call */
    return gw_deliver(h, r);
}

/* ---- start and stop ---------------------------------------------------------------------- */

static int gw_parse_listen(struct sockaddr_storage *ss, const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || colon[1] == '\0')
        return -1;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

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
    struct pollfd p[2] = {{di ? di->epoll_fd : -1, POLLIN, 0}, {h->wake_fd, POLLIN, 0}};
    while (!atomic_load(&h->loop_stop)) {
        if (atomic_exchange(&h->quiesce, false))
            h->listen_sock = MHD_quiesce_daemon(h->daemon);
        gw_log_flush(h); /* before waiting: lines are never held back across a wait */
        MHD_UNSIGNED_LONG_LONG to = 0;
        int tms = -1;
        if (MHD_get_timeout(h->daemon, &to) == MHD_YES)
            tms = to > 1000 ? 1000 : (int)to;
        if (poll(p, 2, tms) > 0 && (p[1].revents & POLLIN)) {
            uint64_t v;
            if (read(h->wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: already read */
            }
            atomic_store(&h->kicked, false);
        }
        gw_http_resume_pending(h);
        unsigned before = gw_http_connections(h);
        MHD_run(h->daemon);
        /* A run that closed connections may have left the listening socket
         * out of the epoll set (it is taken out at the connection limit and
         * put back only at the start of a run): one more run re-arms it. */
        if (gw_http_connections(h) < before)
            MHD_run(h->daemon);
    }
    gw_http_resume_pending(h); /* none may stay suspended for MHD_stop_daemon */
    gw_log_flush(h);
    return NULL;
}

static void gw_http_free(gw_http *h)
{
    while (h->pool) {
        gw_req *r = h->pool;
        h->pool = r->next_free;
        if (r->call_ready)
            gw_upcall_dispose(&r->call);
        gw_buf_dispose(&r->body);
        free(r->uri);
        free(r);
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
    h->jo.resolve = gw_types_find;
    h->jo.resolve_arg = o->types;
    h->jo.max_depth = GW_JSON_DEPTH_DEFAULT;
    uint8_t rnd[4] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (uint8_t)time(NULL);
    snprintf(h->rid_prefix, sizeof h->rid_prefix, "gw-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);

    struct sockaddr_storage ss;
    if (gw_parse_listen(&ss, o->listen) != 0) {
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
    atomic_store(&h->stopping, true);
    atomic_store(&h->quiesce, true);
    gw_http_wake(h);
    while (atomic_load_explicit(&h->calls, memory_order_acquire) > 0)
        gw_sleep_ms(5);
    for (int i = 0; i < 200 && atomic_load(&h->active) > 0; i++)
        gw_sleep_ms(5);
    atomic_store(&h->loop_stop, true);
    gw_http_wake(h);
    if (h->loop_started)
        pthread_join(h->loop, NULL);
    MHD_stop_daemon(h->daemon);
    if (h->listen_sock != MHD_INVALID_SOCKET)
        close(h->listen_sock);
    gw_http_free(h);
}
