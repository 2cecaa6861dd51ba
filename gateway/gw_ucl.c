#include "gw_ucl.h"

#include "gw_grpcwire.h"
#include "gw_text.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Ownership: a call (gw_upcall, the caller's) is in flight on at most
 * one stream (gw_ucl_stream, ours) at a time. A stream belongs to its
 * connection's nghttp2 session until nghttp2 closes it; it outlives its
 * call when the call ends first (deadline: the stream is "detached",
 * call NULL, and reset) and is freed when closed. Nothing is ended or
 * sent again from inside an nghttp2 callback: closed streams are queued
 * (l->closed) and finished once nghttp2 has returned, so a connection is
 * never torn down under its own session. */

#define GW_UCL_READ_BUF 16384u
#define GW_UCL_OUT_HIGH 65536u
#define GW_UCL_RETRY_MS 250        /* a target whose connect failed is not tried again sooner */
#define GW_UCL_WINDOW 16777216     /* stream and connection windows: answers never wait for WINDOW_UPDATE */
#define GW_UCL_POOL_MAX 512u       /* freed streams kept for reuse */
#define GW_UCL_MD_MAX 64u          /* response metadata entries kept per list */

typedef enum {
    GW_UCC_CONNECTING = 0,
    GW_UCC_READY,
    GW_UCC_DRAINING, /* GOAWAY received: no new streams */
} gw_ucc_state;

typedef struct gw_ucl_conn gw_ucl_conn;

typedef struct gw_ucl_stream {
    gw_upcall *call;              /* NULL: detached */
    gw_ucl_conn *conn;            /* NULL: the connection is gone */
    struct gw_ucl_stream *prev, *next; /* in conn->streams */
    struct gw_ucl_stream *next_q; /* in l->closed, or in the pool */
    int32_t id;
    bool headers_sent;            /* the request's HEADERS frame left */
    bool lost;                    /* the connection went before the stream closed */
    bool too_big;
    bool has_status;
    bool grpc_ct;                 /* content-type application/grpc... */
    bool got_headers;             /* the response headers arrived */
    uint32_t error_code;          /* of the RST_STREAM that closed it */
    unsigned http_status;
    rpc_code code;
    char *message;
    grpcw_md_list initial, trailing;
    size_t initial_cap, trailing_cap;
    gw_buf body;
    gw_buf req;                   /* a copy: nghttp2 may read it after the call ended */
    size_t req_off;
} gw_ucl_stream;

struct gw_ucl_conn {
    gw_ucl *l;
    size_t target;
    int fd;
    gw_ucc_state state;
    nghttp2_session *session;
    gw_ucl_stream *streams;
    size_t n_streams;
    gw_upcall *wait_head, *wait_tail; /* calls waiting for the connection */
    gw_buf out;
    size_t out_off;
    bool want_out;
    bool dirty;
    bool dead;                    /* to be closed (l->conns keeps it until then) */
    bool failed;                  /* closed by an error, not by the server's goodbye */
    gw_ucl_conn *next_dirty;
    gw_ucl_conn *next;            /* in l->conns */
    int64_t connect_deadline_us;
    char why[160];                /* why it is dead */
};

struct gw_ucl {
    gw_upstreams *u;
    int ep;
    gw_ucl_conn *active[GW_UPSTREAM_MAX]; /* where new calls to target i go */
    int64_t retry_at_us[GW_UPSTREAM_MAX];
    char last_error[GW_UPSTREAM_MAX][160];
    gw_ucl_conn *conns;
    gw_ucl_conn *dirty;
    gw_upcall *dl_head, *dl_tail; /* calls with a deadline, soonest first */
    gw_ucl_stream *closed, *closed_tail; /* closed inside nghttp2, finished after it returns */
    gw_ucl_stream *pool;
    size_t pool_n;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    size_t calls;
    size_t max_message;
    bool finishing;               /* in gw_ucl_finish_closed */
};

static int64_t gw_ucl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- results --------------------------------------------------------------------------- */

static void gw_ucl_md_reset(grpcw_md_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    l->count = 0;
}

static void gw_ucl_md_add(grpcw_md_list *l, size_t *cap, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (l->count >= GW_UCL_MD_MAX)
        return;
    if (l->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        grpcw_md_entry *ni = realloc(l->items, nc * sizeof *ni);
        if (!ni)
            return;
        l->items = ni;
        *cap = nc;
    }
    uint8_t *val = NULL;
    size_t val_len = 0;
    if (gw_grpcwire_key_is_bin(k, kl)) {
        /* Binary values travel as base64 (padding optional). */
        if (gw_base64_decode(&val, &val_len, (const char *)v, vl) != 0)
            return;
        uint8_t *t = realloc(val, val_len + 1);
        if (!t) {
            free(val);
            return;
        }
        val = t;
    } else {
        val = malloc(vl + 1);
        if (!val)
            return;
        memcpy(val, v, vl);
        val_len = vl;
    }
    val[val_len] = 0;
    char *key = strndup((const char *)k, kl);
    if (!key) {
        free(val);
        return;
    }
    l->items[l->count++] = (grpcw_md_entry){key, (char *)val, val_len};
}

/* Moves a list out of the stream (the result owns it from then on). */
static grpcw_md_list gw_ucl_md_take(grpcw_md_list *l, size_t *cap)
{
    grpcw_md_list out = *l;
    l->items = NULL;
    l->count = 0;
    *cap = 0;
    return out;
}

static void gw_ucl_result(rpc_call_result *res, rpc_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void gw_ucl_result(rpc_call_result *res, rpc_code code, const char *fmt, ...)
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

static void gw_ucl_dl_remove(gw_ucl *l, gw_upcall *c)
{
    if (!c->deadline_us)
        return;
    if (c->dl_prev)
        c->dl_prev->dl_next = c->dl_next;
    else if (l->dl_head == c)
        l->dl_head = c->dl_next;
    if (c->dl_next)
        c->dl_next->dl_prev = c->dl_prev;
    else if (l->dl_tail == c)
        l->dl_tail = c->dl_prev;
    c->dl_prev = c->dl_next = NULL;
}

/* Ends call c: its owner gets the outcome; c is not touched afterwards. */
static void gw_ucl_deliver(gw_ucl *l, gw_upcall *c, int rc, rpc_call_result *res, ProtobufCMessage *resp)
{
    gw_ucl_dl_remove(l, c);
    l->calls--;
    gw_upstream_done_fn *done = c->done;
    void *arg = c->arg;
    size_t ti = c->order[c->k];
    static char empty[1];
    if (!res->message)
        res->message = strdup("");
    bool borrowed = !res->message; /* memory is short: "" of our own, not freed */
    if (borrowed)
        res->message = empty;
    done(arg, rc, res, resp, ti); /* c may be gone from here on */
    if (borrowed)
        res->message = NULL;
    rpc_call_result_dispose(res);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
}

/* ---- streams ----------------------------------------------------------------------------- */

static gw_ucl_stream *gw_ucl_stream_get(gw_ucl *l)
{
    gw_ucl_stream *s = l->pool;
    if (s) {
        l->pool = s->next_q;
        l->pool_n--;
    } else {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        gw_buf_init(&s->body);
        gw_buf_init(&s->req);
    }
    s->call = NULL;
    s->conn = NULL;
    s->prev = s->next = s->next_q = NULL;
    s->id = 0;
    s->headers_sent = s->lost = s->too_big = s->has_status = s->grpc_ct = s->got_headers = false;
    s->error_code = 0;
    s->http_status = 0;
    s->code = RPC_UNKNOWN;
    s->message = NULL;
    s->req_off = 0;
    return s;
}

static void gw_ucl_stream_destroy(gw_ucl_stream *s)
{
    gw_buf_dispose(&s->body);
    gw_buf_dispose(&s->req);
    free(s->initial.items);
    free(s->trailing.items);
    free(s);
}

/* Back to the pool, wiped: requests and answers carry secrets. */
static void gw_ucl_stream_put(gw_ucl *l, gw_ucl_stream *s)
{
    free(s->message);
    s->message = NULL;
    gw_ucl_md_reset(&s->initial);
    gw_ucl_md_reset(&s->trailing);
    gw_buf_reset(&s->body);
    gw_buf_reset(&s->req);
    if (l->pool_n >= GW_UCL_POOL_MAX || s->body.oom || s->req.oom) {
        gw_ucl_stream_destroy(s);
        return;
    }
    s->next_q = l->pool;
    l->pool = s;
    l->pool_n++;
}

static void gw_ucl_stream_unlink(gw_ucl_stream *s)
{
    gw_ucl_conn *cn = s->conn;
    if (!cn)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        cn->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    cn->n_streams--;
    s->conn = NULL;
}

/* Appended: calls end in the order their streams closed. */
static void gw_ucl_closed_add(gw_ucl *l, gw_ucl_stream *s)
{
    s->next_q = NULL;
    if (l->closed_tail)
        l->closed_tail->next_q = s;
    else
        l->closed = s;
    l->closed_tail = s;
}

static gw_ucl_stream *gw_ucl_closed_take(gw_ucl *l)
{
    gw_ucl_stream *s = l->closed;
    if (s) {
        l->closed = s->next_q;
        if (!l->closed)
            l->closed_tail = NULL;
        s->next_q = NULL;
    }
    return s;
}

static void gw_ucl_mark_dirty(gw_ucl_conn *cn)
{
    if (cn->dirty || cn->dead || !cn->session)
        return;
    cn->dirty = true;
    cn->next_dirty = cn->l->dirty;
    cn->l->dirty = cn;
}

/* ---- nghttp2 callbacks -------------------------------------------------------------------- */

static ssize_t gw_ucl_body_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                                uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)id;
    (void)user;
    gw_ucl_stream *s = source->ptr;
    size_t left = s->req.len - s->req_off;
    size_t n = left < length ? left : length;
    memcpy(buf, s->req.data + s->req_off, n);
    s->req_off += n;
    if (s->req_off == s->req.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static bool gw_ucl_name_is(const uint8_t *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

static int gw_ucl_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s)
        return 0;
    bool first = frame->headers.cat == NGHTTP2_HCAT_RESPONSE;
    if (first && gw_ucl_name_is(name, namelen, ":status")) {
        unsigned v = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            v = v * 10 + (unsigned)(value[i] - '0');
        s->http_status = v;
        return 0;
    }
    if (namelen && name[0] == ':')
        return 0;
    if (gw_ucl_name_is(name, namelen, "grpc-status")) {
        rpc_code code;
        if (gw_grpcwire_status(&code, value, valuelen) == 0) {
            s->has_status = true;
            s->code = code;
        } else {
            s->has_status = true;
            s->code = RPC_UNKNOWN; /* as the protocol says for an unparsable status */
        }
        return 0;
    }
    if (gw_ucl_name_is(name, namelen, "grpc-message")) {
        free(s->message);
        s->message = gw_grpcwire_message(value, valuelen);
        return 0;
    }
    if (first && gw_ucl_name_is(name, namelen, "content-type")) {
        s->grpc_ct = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                     (valuelen == 16 || value[16] == '+' || value[16] == ';');
    }
    if (first)
        gw_ucl_md_add(&s->initial, &s->initial_cap, name, namelen, value, valuelen);
    else
        gw_ucl_md_add(&s->trailing, &s->trailing_cap, name, namelen, value, valuelen);
    return 0;
}

static int gw_ucl_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                          void *user)
{
    (void)flags;
    gw_ucl_conn *cn = user;
    gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s || s->too_big)
        return 0;
    if (s->body.len + len > cn->l->max_message + 5) {
        s->too_big = true;
        gw_buf_reset(&s->body);
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        return 0;
    }
    gw_buf_append(&s->body, data, len);
    return 0;
}

static int gw_ucl_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    gw_ucl_conn *cn = user;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s)
            s->got_headers = true;
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* New calls go to a new connection; streams above last_stream_id
         * are closed by nghttp2 with REFUSED_STREAM and sent again. */
        if (cn->state != GW_UCC_DRAINING) {
            log_info("upstream.goaway", "target=%s error_code=%u last_stream_id=%d",
                     gw_upstreams_target(cn->l->u, cn->target), frame->goaway.error_code,
                     frame->goaway.last_stream_id);
            cn->state = GW_UCC_DRAINING;
            if (cn->l->active[cn->target] == cn)
                cn->l->active[cn->target] = NULL;
        }
    }
    return 0;
}

static int gw_ucl_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s)
            s->headers_sent = true;
    }
    return 0;
}

static int gw_ucl_on_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    (void)user;
    gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    s->error_code = error_code;
    gw_ucl_stream_unlink(s);
    gw_ucl_closed_add(((gw_ucl_conn *)user)->l, s);
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static void gw_ucl_send(gw_ucl *l, gw_upcall *c);

static void gw_ucl_arm(gw_ucl_conn *cn, bool out)
{
    if (cn->want_out == out)
        return;
    cn->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = cn};
    epoll_ctl(cn->l->ep, EPOLL_CTL_MOD, cn->fd, &ev);
}

/* cn cannot be used any more (why): no new calls go to it, and it is
 * closed by gw_ucl_reap. failed: an error, not the server's goodbye. */
static void gw_ucl_conn_kill(gw_ucl_conn *cn, bool failed, const char *why)
{
    if (cn->dead)
        return;
    cn->dead = true;
    cn->failed = failed;
    snprintf(cn->why, sizeof cn->why, "%s", why);
    if (cn->l->active[cn->target] == cn)
        cn->l->active[cn->target] = NULL;
}

/* A call for a target that could not be reached (detail): the next
 * target, or the end of the call. */
static void gw_ucl_next_target(gw_ucl *l, gw_upcall *c, const char *detail)
{
    if (c->k + 1 < c->n) {
        log_debug("upstream.failover", "target=%s", gw_upstreams_target(l->u, c->order[c->k]));
        c->k++;
        c->resent = 0;
        gw_upstreams_count_failover(l->u);
        gw_ucl_send(l, c);
        return;
    }
    rpc_call_result res;
    gw_ucl_result(&res, RPC_UNAVAILABLE, "coffer-api is unreachable: %s: %s", gw_upstreams_target(l->u, c->order[c->k]),
                  detail);
    gw_ucl_deliver(l, c, 0, &res, NULL);
}

/* Takes c off cn's waiting list. */
static void gw_ucl_unwait(gw_ucl_conn *cn, gw_upcall *c)
{
    gw_upcall **pp = &cn->wait_head;
    gw_upcall *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = c->next;
        if (cn->wait_tail == c)
            cn->wait_tail = prev;
    }
    c->next = NULL;
    c->waiting = NULL;
}

/* The connection to target failed before it was made: its waiting calls
 * go to their next target. */
static void gw_ucl_connect_failed(gw_ucl_conn *cn, const char *detail)
{
    gw_ucl *l = cn->l;
    snprintf(l->last_error[cn->target], sizeof l->last_error[cn->target], "%s", detail);
    l->retry_at_us[cn->target] = gw_ucl_now_us() + GW_UCL_RETRY_MS * 1000;
    gw_upstreams_unreachable(l->u, cn->target, detail);
    gw_ucl_conn_kill(cn, true, detail);
    gw_upcall *c = cn->wait_head;
    cn->wait_head = cn->wait_tail = NULL;
    while (c) {
        gw_upcall *next = c->next;
        c->next = NULL;
        c->waiting = NULL;
        gw_ucl_next_target(l, c, detail);
        c = next;
    }
}

static int gw_ucl_submit(gw_ucl_conn *cn, gw_upcall *c);

/* The socket is connected: an HTTP/2 session, and the waiting calls go out. */
static void gw_ucl_ready(gw_ucl_conn *cn)
{
    gw_ucl *l = cn->l;
    if (nghttp2_session_client_new2(&cn->session, l->cbs, cn, l->opt) != 0) {
        cn->session = NULL;
        gw_ucl_connect_failed(cn, "out of memory");
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GW_UCL_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536},
    };
    if (nghttp2_submit_settings(cn->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(cn->session, NGHTTP2_FLAG_NONE, 0, GW_UCL_WINDOW) != 0) {
        gw_ucl_connect_failed(cn, "out of memory");
        return;
    }
    cn->state = GW_UCC_READY;
    gw_ucl_arm(cn, false);
    gw_upcall *c = cn->wait_head;
    cn->wait_head = cn->wait_tail = NULL;
    while (c) {
        gw_upcall *next = c->next;
        c->next = NULL;
        c->waiting = NULL;
        if (gw_ucl_submit(cn, c) != 0)
            gw_ucl_send(l, c); /* tries again: a new connection, or ends the call */
        c = next;
    }
    gw_ucl_mark_dirty(cn);
}

/* Opens a connection to target t: NULL (with l->last_error[t]) when it
 * fails at once. */
static gw_ucl_conn *gw_ucl_connect(gw_ucl *l, size_t t)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char detail[160];
    if (gw_upstreams_address(l->u, t, &ss, &len, detail, sizeof detail) != 0) {
        snprintf(l->last_error[t], sizeof l->last_error[t], "%s", detail);
        return NULL;
    }
    gw_ucl_conn *cn = calloc(1, sizeof *cn);
    if (!cn) {
        snprintf(l->last_error[t], sizeof l->last_error[t], "out of memory");
        return NULL;
    }
    cn->l = l;
    cn->target = t;
    gw_buf_init(&cn->out);
    cn->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = -1;
    if (cn->fd >= 0) {
        if (ss.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            /* A peer that vanished without a FIN is noticed within a minute. */
            int idle = 20, intvl = 10, cnt = 3;
            setsockopt(cn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            setsockopt(cn->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
            setsockopt(cn->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
            setsockopt(cn->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
        }
        rc = connect(cn->fd, (struct sockaddr *)&ss, len);
    }
    if (rc != 0 && (cn->fd < 0 || errno != EINPROGRESS)) {
        snprintf(l->last_error[t], sizeof l->last_error[t], "connect: %s", strerror(errno));
        if (cn->fd >= 0)
            close(cn->fd);
        free(cn);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = cn};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, cn->fd, &ev) != 0) {
        snprintf(l->last_error[t], sizeof l->last_error[t], "epoll: %s", strerror(errno));
        close(cn->fd);
        free(cn);
        return NULL;
    }
    cn->want_out = true;
    cn->state = GW_UCC_CONNECTING;
    cn->connect_deadline_us = gw_ucl_now_us() + gw_upstreams_connect_timeout_ms(l->u) * 1000;
    cn->next = l->conns;
    l->conns = cn;
    l->active[t] = cn;
    if (rc == 0)
        gw_ucl_ready(cn); /* a Unix socket connects at once */
    return cn;
}

/* Frees what is left of a dead connection; its streams end as lost. */
static void gw_ucl_conn_free(gw_ucl_conn *cn)
{
    gw_ucl *l = cn->l;
    while (cn->streams) {
        gw_ucl_stream *s = cn->streams;
        gw_ucl_stream_unlink(s);
        s->lost = true;
        gw_ucl_closed_add(l, s);
    }
    if (cn->session)
        nghttp2_session_del(cn->session); /* calls no callback */
    epoll_ctl(l->ep, EPOLL_CTL_DEL, cn->fd, NULL);
    close(cn->fd);
    gw_buf_dispose(&cn->out);
    free(cn);
}

/* Closes dead connections, and draining ones with nothing left to do. */
static void gw_ucl_reap(gw_ucl *l)
{
    for (gw_ucl_conn **pp = &l->conns; *pp;) {
        gw_ucl_conn *cn = *pp;
        if (!cn->dead && cn->state == GW_UCC_DRAINING && cn->n_streams == 0 && !cn->wait_head)
            gw_ucl_conn_kill(cn, false, "drained");
        if (!cn->dead) {
            pp = &cn->next;
            continue;
        }
        *pp = cn->next;
        if (cn->dirty) {
            for (gw_ucl_conn **dp = &l->dirty; *dp; dp = &(*dp)->next_dirty)
                if (*dp == cn) {
                    *dp = cn->next_dirty;
                    break;
                }
        }
        if (cn->failed && cn->n_streams)
            log_warn("upstream.lost", "target=%s streams=%zu detail=%s", gw_upstreams_target(l->u, cn->target),
                     cn->n_streams, cn->why);
        gw_ucl_conn_free(cn);
    }
}

/* ---- calls ------------------------------------------------------------------------------- */

static void gw_ucl_nv(nghttp2_nv *nv, const char *name, size_t nl, const char *value, size_t vl, uint8_t flags)
{
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->namelen = nl;
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->valuelen = vl;
    nv->flags = flags;
}

#define GW_UCL_LIT(s) s, sizeof(s) - 1

/* Puts c on a new stream of cn. 0, or an nghttp2 error code (c is then
 * unchanged; cn is draining when it can take no new stream). */
static int gw_ucl_submit(gw_ucl_conn *cn, gw_upcall *c)
{
    gw_ucl *l = cn->l;
    gw_ucl_stream *s = gw_ucl_stream_get(l);
    if (!s)
        return NGHTTP2_ERR_NOMEM;
    gw_buf_append(&s->req, c->req, c->req_len);
    if (s->req.oom) {
        gw_ucl_stream_put(l, s);
        return NGHTTP2_ERR_NOMEM;
    }
    nghttp2_nv nva[8 + GRPCW_SEND_MD_MAX];
    size_t n = 0;
    const uint8_t st = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    const char *auth = gw_upstreams_authority(l->u, cn->target);
    gw_ucl_nv(&nva[n++], GW_UCL_LIT(":method"), GW_UCL_LIT("POST"), st);
    gw_ucl_nv(&nva[n++], GW_UCL_LIT(":scheme"), GW_UCL_LIT("http"), st);
    gw_ucl_nv(&nva[n++], GW_UCL_LIT(":path"), c->path, strlen(c->path), NGHTTP2_NV_FLAG_NO_COPY_NAME);
    gw_ucl_nv(&nva[n++], GW_UCL_LIT(":authority"), auth, strlen(auth), st); /* lives as long as l */
    gw_ucl_nv(&nva[n++], GW_UCL_LIT("content-type"), GW_UCL_LIT("application/grpc"), st);
    gw_ucl_nv(&nva[n++], GW_UCL_LIT("te"), GW_UCL_LIT("trailers"), st);
    char timeout[GW_GRPCWIRE_TIMEOUT_MAX];
    if (c->deadline_us) {
        int64_t left = (c->deadline_us - gw_ucl_now_us() + 999) / 1000;
        size_t tl = gw_grpcwire_timeout(timeout, left);
        gw_ucl_nv(&nva[n++], GW_UCL_LIT("grpc-timeout"), timeout, tl, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    }
    for (size_t i = 0; i < c->options.n_metadata && i < GRPCW_SEND_MD_MAX; i++) {
        const grpcw_md *m = &c->options.metadata[i];
        /* Credentials never enter the HPACK tables of either side (which
         * keep what they index for the connection's life, unwiped). */
        uint8_t fl = strcmp(m->key, "authorization") == 0 ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
        gw_ucl_nv(&nva[n++], m->key, strlen(m->key), m->value, m->value_len, fl);
    }
    nghttp2_data_provider dp;
    dp.source.ptr = s;
    dp.read_callback = gw_ucl_body_read;
    int32_t id = nghttp2_submit_request(cn->session, NULL, nva, n, &dp, s);
    if (id < 0) {
        gw_ucl_stream_put(l, s);
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || id == NGHTTP2_ERR_INVALID_STATE)
            cn->state = GW_UCC_DRAINING; /* ids used up, or going away: a new connection */
        if (l->active[cn->target] == cn && cn->state == GW_UCC_DRAINING)
            l->active[cn->target] = NULL;
        return id;
    }
    s->id = id;
    s->call = c;
    s->conn = cn;
    s->next = cn->streams;
    if (cn->streams)
        cn->streams->prev = s;
    cn->streams = s;
    cn->n_streams++;
    c->stream = s;
    gw_ucl_mark_dirty(cn);
    return 0;
}

/* Sends c to its current target (c->order[c->k]), connecting first when
 * needed; a target that cannot be reached passes c to the next one. */
static void gw_ucl_send(gw_ucl *l, gw_upcall *c)
{
    for (;;) {
        size_t t = c->order[c->k];
        gw_ucl_conn *cn = l->active[t];
        if (!cn) {
            if (gw_ucl_now_us() < l->retry_at_us[t]) {
                gw_ucl_next_target(l, c, l->last_error[t]);
                return;
            }
            cn = gw_ucl_connect(l, t);
            if (!cn) {
                l->retry_at_us[t] = gw_ucl_now_us() + GW_UCL_RETRY_MS * 1000;
                gw_upstreams_unreachable(l->u, t, l->last_error[t]);
                gw_ucl_next_target(l, c, l->last_error[t]);
                return;
            }
            if (cn->dead) { /* connected at once, then failed */
                gw_ucl_next_target(l, c, l->last_error[t]);
                return;
            }
        }
        if (cn->state == GW_UCC_CONNECTING) {
            c->next = NULL;
            c->waiting = cn;
            if (cn->wait_tail)
                cn->wait_tail->next = c;
            else
                cn->wait_head = c;
            cn->wait_tail = c;
            return;
        }
        int rc = gw_ucl_submit(cn, c);
        if (rc == 0)
            return;
        if (l->active[t] == cn) { /* the call, not the connection */
            rpc_call_result res;
            if (rc == NGHTTP2_ERR_NOMEM)
                gw_ucl_result(&res, RPC_RESOURCE_EXHAUSTED, "the gateway is out of memory");
            else
                gw_ucl_result(&res, RPC_INTERNAL, "the call cannot be sent: %s", nghttp2_strerror(rc));
            gw_ucl_deliver(l, c, -1, &res, NULL);
            return;
        }
        /* cn is draining: the loop opens a new connection. */
    }
}

void gw_ucl_start(gw_ucl *l, gw_upcall *c)
{
    l->calls++;
    c->stream = c->waiting = NULL;
    c->dl_prev = c->dl_next = NULL;
    if (c->deadline_us) {
        /* Sorted, searched from the tail: deadlines mostly come in order. */
        gw_upcall *p = l->dl_tail;
        while (p && p->deadline_us > c->deadline_us)
            p = p->dl_prev;
        c->dl_prev = p;
        c->dl_next = p ? p->dl_next : l->dl_head;
        if (c->dl_next)
            c->dl_next->dl_prev = c;
        else
            l->dl_tail = c;
        if (p)
            p->dl_next = c;
        else
            l->dl_head = c;
    }
    gw_ucl_send(l, c);
}

/* The outcome of a stream that closed with its call attached. */
static void gw_ucl_stream_end(gw_ucl *l, gw_ucl_stream *s)
{
    gw_upcall *c = s->call;
    c->stream = NULL;
    s->call = NULL;
    const char *target = gw_upstreams_target(l->u, c->order[c->k]);
    bool refused = s->error_code == NGHTTP2_REFUSED_STREAM && !s->got_headers;
    if (!s->headers_sent || refused) {
        /* Never processed by a server: safe to send again, once more to
         * the same target (a new connection after its GOAWAY), then on. */
        gw_ucl_stream_put(l, s);
        if (c->resent < 1) {
            c->resent++;
            gw_ucl_send(l, c);
        } else {
            gw_ucl_next_target(l, c, "the server refused the stream twice");
        }
        return;
    }
    rpc_call_result res;
    ProtobufCMessage *resp = NULL;
    if (s->too_big) {
        gw_ucl_result(&res, RPC_RESOURCE_EXHAUSTED, "the response from %s is larger than %zu bytes", target,
                      l->max_message);
    } else if (s->has_status && (s->http_status == 200 || s->grpc_ct)) {
        memset(&res, 0, sizeof res);
        res.code = s->code;
        res.message = s->message ? s->message : strdup("");
        s->message = NULL;
        res.initial_md = gw_ucl_md_take(&s->initial, &s->initial_cap);
        res.trailing_md = gw_ucl_md_take(&s->trailing, &s->trailing_cap);
        if (res.code == RPC_OK) {
            const uint8_t *m;
            size_t ml;
            char err[200];
            if (gw_grpcwire_unframe(&m, &ml, (const uint8_t *)s->body.data, s->body.len, err, sizeof err) != 0) {
                free(res.message);
                res.code = RPC_INTERNAL;
                res.message = strdup(err);
            } else if (!(resp = protobuf_c_message_unpack(c->output, NULL, ml, m))) {
                free(res.message);
                res.code = RPC_INTERNAL;
                char e2[300];
                snprintf(e2, sizeof e2, "the response is not a valid %s (%s)", c->output->name, c->path);
                res.message = strdup(e2);
            }
        }
    } else if (s->lost) {
        gw_ucl_result(&res, RPC_UNAVAILABLE, "the connection to %s was lost while the call was in flight", target);
    } else if (s->http_status && s->http_status != 200) {
        gw_ucl_result(&res, gw_grpcwire_http_code(s->http_status), "%s answered HTTP %u", target, s->http_status);
    } else if (s->error_code) {
        gw_ucl_result(&res, gw_grpcwire_rst_code(s->error_code), "%s reset the stream (HTTP/2 error %u)", target,
                      s->error_code);
    } else if (s->got_headers && !s->grpc_ct) {
        gw_ucl_result(&res, RPC_UNKNOWN, "%s answered without a gRPC content-type", target);
    } else {
        gw_ucl_result(&res, RPC_INTERNAL, "%s ended the stream without a grpc-status", target);
    }
    gw_ucl_stream_put(l, s);
    gw_ucl_deliver(l, c, 0, &res, resp);
}

/* Finishes the streams nghttp2 closed (and those of lost connections). */
static void gw_ucl_finish_closed(gw_ucl *l)
{
    if (l->finishing)
        return;
    l->finishing = true;
    gw_ucl_stream *s;
    while ((s = gw_ucl_closed_take(l))) {
        if (s->call)
            gw_ucl_stream_end(l, s);
        else
            gw_ucl_stream_put(l, s);
    }
    l->finishing = false;
}

/* ---- I/O --------------------------------------------------------------------------------- */

static void gw_ucl_read(gw_ucl_conn *cn)
{
    uint8_t buf[GW_UCL_READ_BUF];
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv(cn->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            char why[160];
            snprintf(why, sizeof why, "%s", n == 0 ? "closed by the server" : strerror(errno));
            gw_ucl_conn_kill(cn, cn->state != GW_UCC_DRAINING || n < 0, why);
            return;
        }
        ssize_t used = nghttp2_session_mem_recv(cn->session, buf, (size_t)n);
        if (used < 0) {
            char why[160];
            snprintf(why, sizeof why, "HTTP/2: %s", nghttp2_strerror((int)used));
            gw_ucl_conn_kill(cn, true, why);
            return;
        }
        if ((size_t)n < sizeof buf)
            break;
    }
    gw_ucl_mark_dirty(cn);
}

/* Writes what nghttp2 has to send on cn. */
static void gw_ucl_write(gw_ucl_conn *cn)
{
    for (;;) {
        while (cn->out.len - cn->out_off < GW_UCL_OUT_HIGH && nghttp2_session_want_write(cn->session)) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(cn->session, &data);
            if (n < 0) {
                gw_ucl_conn_kill(cn, true, nghttp2_strerror((int)n));
                return;
            }
            if (n == 0)
                break;
            gw_buf_append(&cn->out, data, (size_t)n);
        }
        if (cn->out.oom) {
            gw_ucl_conn_kill(cn, true, "out of memory");
            return;
        }
        if (cn->out.len == cn->out_off)
            break;
        ssize_t w = send(cn->fd, cn->out.data + cn->out_off, cn->out.len - cn->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                gw_ucl_arm(cn, true);
                return;
            }
            if (errno == EINTR)
                continue;
            gw_ucl_conn_kill(cn, true, strerror(errno));
            return;
        }
        cn->out_off += (size_t)w;
        if (cn->out_off == cn->out.len) {
            gw_buf_reset(&cn->out); /* frames carry credentials: wiped */
            cn->out_off = 0;
        }
    }
    gw_ucl_arm(cn, false);
    if (!nghttp2_session_want_read(cn->session) && !nghttp2_session_want_write(cn->session))
        gw_ucl_conn_kill(cn, false, "the session ended");
}

void gw_ucl_flush(gw_ucl *l)
{
    /* Writing can close streams (resets) whose calls then go elsewhere:
     * until nothing is left to write. */
    for (int round = 0; round < 4 && (l->dirty || l->closed); round++) {
        while (l->dirty) {
            gw_ucl_conn *cn = l->dirty;
            l->dirty = cn->next_dirty;
            cn->dirty = false;
            cn->next_dirty = NULL;
            if (!cn->dead && cn->session)
                gw_ucl_write(cn);
        }
        gw_ucl_reap(l);
        gw_ucl_finish_closed(l);
    }
}

/* Ends the calls whose deadline passed, and connects that took too long. */
static void gw_ucl_expire(gw_ucl *l)
{
    if (!l->dl_head && !l->conns)
        return;
    int64_t now = gw_ucl_now_us();
    for (gw_ucl_conn *cn = l->conns; cn; cn = cn->next)
        if (!cn->dead && cn->state == GW_UCC_CONNECTING && now >= cn->connect_deadline_us)
            gw_ucl_connect_failed(cn, "connect: timed out");
    while (l->dl_head && l->dl_head->deadline_us <= now) {
        gw_upcall *c = l->dl_head;
        gw_ucl_stream *s = c->stream;
        if (s) {
            /* The stream lives on, detached, until nghttp2 closes it. */
            s->call = NULL;
            c->stream = NULL;
            if (s->conn && s->conn->session && !s->conn->dead) {
                nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
                gw_ucl_mark_dirty(s->conn);
            }
        } else if (c->waiting) {
            gw_ucl_unwait(c->waiting, c);
        }
        rpc_call_result res;
        gw_ucl_result(&res, RPC_DEADLINE_EXCEEDED, "Deadline Exceeded");
        gw_ucl_deliver(l, c, 0, &res, NULL);
    }
}

void gw_ucl_run(gw_ucl *l)
{
    struct epoll_event evs[32];
    int n = epoll_wait(l->ep, evs, 32, 0);
    for (int i = 0; i < n; i++) {
        gw_ucl_conn *cn = evs[i].data.ptr;
        if (cn->dead)
            continue;
        if (cn->state == GW_UCC_CONNECTING) {
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
            if (err) {
                char detail[160];
                snprintf(detail, sizeof detail, "connect: %s", strerror(err));
                gw_ucl_connect_failed(cn, detail);
            } else if (evs[i].events & (EPOLLOUT | EPOLLIN)) {
                gw_ucl_ready(cn);
            }
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            gw_ucl_read(cn);
        if (!cn->dead && (evs[i].events & EPOLLOUT))
            gw_ucl_mark_dirty(cn);
    }
    gw_ucl_reap(l);
    gw_ucl_finish_closed(l);
    gw_ucl_expire(l);
    gw_ucl_reap(l);
    gw_ucl_finish_closed(l);
}

int gw_ucl_timeout_ms(const gw_ucl *l)
{
    int64_t next = 0;
    if (l->dl_head)
        next = l->dl_head->deadline_us;
    for (const gw_ucl_conn *cn = l->conns; cn; cn = cn->next)
        if (!cn->dead && cn->state == GW_UCC_CONNECTING && (!next || cn->connect_deadline_us < next))
            next = cn->connect_deadline_us;
    if (!next)
        return -1;
    int64_t left = next - gw_ucl_now_us();
    if (left <= 0)
        return 0;
    left = (left + 999) / 1000;
    return left > 1000000 ? 1000000 : (int)left;
}

size_t gw_ucl_calls(const gw_ucl *l)
{
    return l->calls;
}

int gw_ucl_fd(const gw_ucl *l)
{
    return l->ep;
}

gw_ucl *gw_ucl_new(gw_upstreams *u)
{
    gw_ucl *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->u = u;
    l->max_message = gw_upstreams_max_message(u);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep < 0 || nghttp2_session_callbacks_new(&l->cbs) != 0 || nghttp2_option_new(&l->opt) != 0) {
        if (l->ep >= 0)
            close(l->ep);
        if (l->cbs)
            nghttp2_session_callbacks_del(l->cbs);
        free(l);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_header_callback(l->cbs, gw_ucl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(l->cbs, gw_ucl_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(l->cbs, gw_ucl_on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(l->cbs, gw_ucl_on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(l->cbs, gw_ucl_on_close);
    return l;
}

void gw_ucl_free(gw_ucl *l)
{
    if (!l)
        return;
    /* Calls still running end now: CANCELLED. */
    for (gw_ucl_conn *cn = l->conns; cn; cn = cn->next) {
        gw_upcall *c = cn->wait_head;
        cn->wait_head = cn->wait_tail = NULL;
        while (c) {
            gw_upcall *next = c->next;
            c->next = NULL;
            c->waiting = NULL;
            rpc_call_result res;
            gw_ucl_result(&res, RPC_CANCELLED, "the gateway is stopping");
            gw_ucl_deliver(l, c, 0, &res, NULL);
            c = next;
        }
        gw_ucl_conn_kill(cn, false, "the gateway is stopping");
    }
    gw_ucl_reap(l); /* streams of the connections join l->closed */
    gw_ucl_stream *s;
    while ((s = gw_ucl_closed_take(l))) {
        gw_upcall *c = s->call;
        if (c) {
            c->stream = NULL;
            rpc_call_result res;
            gw_ucl_result(&res, RPC_CANCELLED, "the gateway is stopping");
            gw_ucl_deliver(l, c, 0, &res, NULL);
        }
        gw_ucl_stream_put(l, s);
    }
    while (l->pool) {
        s = l->pool;
        l->pool = s->next_q;
        gw_ucl_stream_destroy(s);
    }
    nghttp2_session_callbacks_del(l->cbs);
    nghttp2_option_del(l->opt);
    close(l->ep);
    free(l);
}
