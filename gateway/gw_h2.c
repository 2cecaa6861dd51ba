#include "gw_h2.h"

#include "gw_tls.h"
#include "gw_ucl.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Threads: one event-loop thread (gw_h2_loop) owns every connection,
 * nghttp2 session and stream; the pipeline's done callback (on the
 * upstream completion thread) only pushes its stream on a list and wakes
 * the loop, which submits the reply. A stream whose call is in flight
 * outlives its connection and its nghttp2 stream: when either goes, the
 * stream is detached (conn NULL or closed true) and freed when its call
 * ends. */

#define GW_H2_READ_BUF 16384u
#define GW_H2_HEADERS_MAX 16384u /* bytes of names and values per request */
#define GW_H2_OUT_HIGH 65536u    /* stop asking nghttp2 for more output above this */
#define GW_H2_LOG_LINE_MAX 2048u
#define GW_H2_POOL_MAX 512u      /* freed streams kept for reuse, with their buffers */
#define GW_H2_ADOPT_MAX 64u      /* sockets handed over and not yet taken by the loop */
#define GW_H2_HANDSHAKE_MAX_S 10 /* a TLS handshake gets the idle timeout, at most this, also when that is 0 */
#define GW_H2_IO_AGAIN GW_TLS_AGAIN

typedef enum {
    GW_H2S_READING = 0, /* headers and body arriving */
    GW_H2S_CALLING,     /* the upstream call is in flight */
    GW_H2S_SENDING,     /* reply submitted */
} gw_h2s_state;

typedef struct gw_h2_conn gw_h2_conn;

typedef struct gw_h2_stream {
    gw_preq p;                   /* first: the pipeline's callbacks get &p */
    struct gw_h2_stream *next_done;
    struct gw_h2_stream *prev, *next; /* in conn->streams (loop thread) */
    gw_h2_conn *conn;            /* NULL: the connection is gone */
    struct gw_h2 *h;
    int32_t id;
    gw_h2s_state state;
    bool closed;                 /* nghttp2 closed the stream while its call was in flight */
    gw_buf hb;                   /* header names and values, "name\0value\0"... */
    gw_kv *kv;
    size_t kv_cap;
    char method[16];
    size_t sent;                 /* reply bytes handed to nghttp2 */
    unsigned refuse;             /* the request cannot be served: its HTTP status (431, 501) */
} gw_h2_stream;

struct gw_h2_conn {
    struct gw_h2 *h;
    int fd;
    nghttp2_session *session;
    gw_h2_stream *streams;
    size_t n_streams;
    gw_buf out;                  /* bytes nghttp2 produced, not yet written */
    size_t out_off;
    bool want_out;               /* EPOLLOUT armed */
    bool dirty;                  /* in h->dirty (output to flush this turn) */
    bool closing;
    gw_tls_conn *tls;            /* NULL: cleartext h2c */
    bool handshaking;            /* TLS handshake not done: no HTTP/2 byte in or out yet */
    gw_h2_conn *next_dirty;
    gw_h2_conn *prev, *next;     /* in h->conns */
    int64_t last_active_s;
    char peer[64];
};

struct gw_h2 {
    gw_h2_options o;
    int listen_fd;
    int epoll_fd;
    int wake_fd;
    int port;
    pthread_t loop;
    bool loop_started;
    atomic_bool loop_stop;
    atomic_bool kicked;
    atomic_size_t active;        /* streams alive (with or without a connection) */
    pthread_mutex_t done_lock;
    gw_h2_stream *done_head;
    gw_h2_conn *conns;
    size_t n_conns;
    gw_h2_conn *dirty;
    nghttp2_session_callbacks *cbs;
    char log_batch[32768];
    size_t log_len;
    int64_t last_sweep_s;
    struct gw_h2_stream *pool;   /* loop thread only */
    size_t pool_n;
    int adopt[GW_H2_ADOPT_MAX];  /* gw_h2_adopt's sockets (done_lock) */
    size_t n_adopt;
    gw_ucl *ucl;                 /* the loop's own upstream connections */
    gw_tls *tls;                 /* NULL: accepted connections are h2c */
    struct gw_h2_stream *local_done; /* calls ended on the loop thread (no lock) */
};

/* The gw_h2 whose loop runs on this thread: calls that end here need no
 * lock and no wake-up. */
static _Thread_local struct gw_h2 *gw_h2_self;

static int64_t gw_h2_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- access log -------------------------------------------------------------------------- */

static void gw_h2_log_flush(struct gw_h2 *h)
{
    if (h->log_len)
        log_write(h->log_batch, h->log_len);
    h->log_len = 0;
}

static void gw_h2_record(struct gw_h2 *h, gw_h2_stream *s, bool delivered)
{
    char line[GW_H2_LOG_LINE_MAX];
    size_t n = gw_pipe_record(h->o.pipe, &s->p, delivered, line, sizeof line);
    if (n == 0)
        return;
    if (h->log_len + n > sizeof h->log_batch)
        gw_h2_log_flush(h);
    memcpy(h->log_batch + h->log_len, line, n);
    h->log_len += n;
}

/* ---- streams ----------------------------------------------------------------------------- */

static void gw_h2_stream_destroy(gw_h2_stream *s)
{
    gw_preq_dispose(&s->p);
    free(s->p.uri);
    gw_buf_dispose(&s->hb);
    free(s->kv);
    free(s);
}

static void gw_h2_stream_free(struct gw_h2 *h, gw_h2_stream *s)
{
    atomic_fetch_sub_explicit(&h->active, 1, memory_order_relaxed);
    /* Headers (Authorization), body and answer wiped now, pooled or not. */
    gw_buf_reset(&s->hb);
    gw_buf_reset(&s->p.body);
    gw_buf_reset(&s->p.reply);
    if (h->pool_n < GW_H2_POOL_MAX && !s->p.body.oom && s->p.body.cap <= 65536 && s->p.reply.cap <= 65536 &&
        !s->hb.oom && s->hb.cap <= GW_H2_HEADERS_MAX * 2) {
        s->next_done = h->pool;
        h->pool = s;
        h->pool_n++;
        return;
    }
    gw_h2_stream_destroy(s);
}

static void gw_h2_unlink(gw_h2_stream *s)
{
    gw_h2_conn *c = s->conn;
    if (!c)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    c->n_streams--;
    s->conn = NULL;
}

static void gw_h2_done(gw_preq *pr);

static gw_h2_stream *gw_h2_stream_new(gw_h2_conn *c, int32_t id)
{
    struct gw_h2 *h = c->h;
    gw_h2_stream *s = h->pool;
    if (s) {
        h->pool = s->next_done;
        h->pool_n--;
        free(s->p.uri);
        gw_preq_start(&s->p);
        gw_buf_reset(&s->hb);
    } else {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        gw_preq_init(&s->p);
        gw_preq_start(&s->p);
        gw_buf_init(&s->hb);
    }
    s->next_done = NULL;
    s->prev = s->next = NULL;
    s->state = GW_H2S_READING;
    s->closed = false;
    s->method[0] = '\0';
    s->sent = 0;
    s->refuse = 0;
    s->h = c->h;
    s->conn = c;
    s->id = id;
    s->p.done = gw_h2_done;
    if (c->h->o.pipe && gw_pipe_opts(c->h->o.pipe)->access_log)
        memcpy(s->p.peer, c->peer, sizeof s->p.peer);
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    atomic_fetch_add_explicit(&c->h->active, 1, memory_order_relaxed);
    return s;
}

/* ---- replies ----------------------------------------------------------------------------- */

static void gw_h2_mark_dirty(gw_h2_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = c->h->dirty;
    c->h->dirty = c;
}

static ssize_t gw_h2_body_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                               uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)id;
    (void)user;
    gw_h2_stream *s = source->ptr;
    size_t left = s->p.reply.len - s->sent;
    size_t n = left < length ? left : length;
    if (n)
        memcpy(buf, s->p.reply.data + s->sent, n);
    s->sent += n;
    if (s->sent == s->p.reply.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void gw_h2_nv(nghttp2_nv *nv, const char *name, size_t nl, const char *value, size_t vl)
{
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->namelen = nl;
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->valuelen = vl;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Submits s's reply (made by the pipeline) on its connection. */
static void gw_h2_submit(gw_h2_stream *s)
{
    gw_h2_conn *c = s->conn;
    gw_preq *p = &s->p;
    nghttp2_nv nv[4 + sizeof p->reply_hdrs.h / sizeof p->reply_hdrs.h[0]];
    char status[16], clen[24], names[sizeof p->reply_hdrs.h / sizeof p->reply_hdrs.h[0]][160];
    size_t n = 0;
    snprintf(status, sizeof status, "%u", p->code ? p->code : 500);
    snprintf(clen, sizeof clen, "%zu", p->reply.len);
    const char *ct = p->content_type ? p->content_type : "application/json";
    gw_h2_nv(&nv[n++], ":status", 7, status, strlen(status));
    gw_h2_nv(&nv[n++], "content-type", 12, ct, strlen(ct));
    gw_h2_nv(&nv[n++], "content-length", 14, clen, strlen(clen));
    if (p->rid[0])
        gw_h2_nv(&nv[n++], "x-request-id", 12, p->rid, strlen(p->rid));
    for (size_t i = 0; i < p->reply_hdrs.n; i++) {
        const gw_hdr *hd = &p->reply_hdrs.h[i];
        size_t k = 0;
        for (; hd->name[k] && k + 1 < sizeof names[i]; k++)
            names[i][k] = (char)(hd->name[k] >= 'A' && hd->name[k] <= 'Z' ? hd->name[k] - 'A' + 'a' : hd->name[k]);
        names[i][k] = '\0';
        if (strcmp(names[i], "connection") == 0)
            continue; /* connection-specific: not in HTTP/2 */
        gw_h2_nv(&nv[n++], names[i], k, hd->value, strlen(hd->value));
    }
    nghttp2_data_provider dp;
    dp.source.ptr = s;
    dp.read_callback = gw_h2_body_read;
    s->sent = 0;
    s->state = GW_H2S_SENDING;
    if (nghttp2_submit_response(c->session, s->id, nv, n, &dp) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    gw_h2_mark_dirty(c);
}

static void gw_h2_wake(struct gw_h2 *h)
{
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0)
        log_warn("http2.wake", "detail=\"eventfd write failed\"");
}

/* The pipeline's done (any thread): hands the stream to the loop. */
static void gw_h2_done(gw_preq *pr)
{
    gw_h2_stream *s = (gw_h2_stream *)(void *)pr;
    struct gw_h2 *h = s->h;
    if (gw_h2_self == h) {
        s->next_done = h->local_done;
        h->local_done = s;
        return;
    }
    pthread_mutex_lock(&h->done_lock);
    s->next_done = h->done_head;
    h->done_head = s;
    pthread_mutex_unlock(&h->done_lock);
    if (!atomic_exchange(&h->kicked, true))
        gw_h2_wake(h);
}

/* On the loop: replies of the calls that ended. */
static void gw_h2_take_done(struct gw_h2 *h)
{
    pthread_mutex_lock(&h->done_lock);
    gw_h2_stream *s = h->done_head;
    h->done_head = NULL;
    pthread_mutex_unlock(&h->done_lock);
    if (h->local_done) {
        gw_h2_stream *t = h->local_done;
        while (t->next_done)
            t = t->next_done;
        t->next_done = s;
        s = h->local_done;
        h->local_done = NULL;
    }
    while (s) {
        gw_h2_stream *next = s->next_done;
        if (!s->conn || s->closed) {
            gw_h2_record(h, s, false); /* the client reset the stream or left */
            gw_h2_unlink(s);
            gw_h2_stream_free(h, s);
        } else {
            gw_h2_submit(s);
        }
        s = next;
    }
}

/* A complete request: through the pipeline. */
static void gw_h2_dispatch(gw_h2_stream *s)
{
    /* The headers' pointers, now that their buffer no longer grows. */
    size_t n = 0;
    for (size_t off = 0; off < s->hb.len;) {
        const char *name = s->hb.data + off;
        off += strlen(name) + 1;
        const char *value = s->hb.data + off;
        off += strlen(value) + 1;
        if (n == s->kv_cap) {
            size_t nc = s->kv_cap ? s->kv_cap * 2 : 16;
            gw_kv *nk = realloc(s->kv, nc * sizeof *nk);
            if (!nk)
                break;
            s->kv = nk;
            s->kv_cap = nc;
        }
        s->kv[n++] = (gw_kv){name, value};
    }
    s->p.hdrs = s->kv;
    s->p.n_hdrs = n;
    s->p.method = s->method;
    if (!s->p.uri || !s->method[0] || s->hb.oom || s->refuse) {
        /* Answered without the pipeline, which sets out for the rest: its
         * metrics slot and access-log route are ours to set (a reused
         * stream's out is the previous request's; its route may point
         * into that request's freed :path). */
        gw_pipe *p = s->h->o.pipe;
        unsigned code = 400;
        rpc_code rc = RPC_INVALID_ARGUMENT;
        char msg[128];
        snprintf(msg, sizeof msg, "a request needs :method and :path");
        if (s->refuse == 431 || s->hb.oom) {
            code = 431;
            rc = RPC_RESOURCE_EXHAUSTED;
            snprintf(msg, sizeof msg, "the request headers are larger than %u bytes", GW_H2_HEADERS_MAX);
        } else if (s->refuse == 501) {
            code = 501;
            rc = RPC_UNIMPLEMENTED;
            snprintf(msg, sizeof msg, "no method longer than %zu bytes is served", sizeof s->method - 1);
        }
        if (!s->method[0])
            snprintf(s->method, sizeof s->method, "-");
        s->p.method = s->method;
        s->p.path = s->p.uri;
        gw_pipe_request_id(p, &s->p);
        s->p.out = (gw_outcome){gw_routes_count(gw_pipe_opts(p)->routes) + GW_ROUTE_UNMATCHED, code, rc, NULL,
                                "unmatched"};
        gw_pipe_reply_status(&s->p, code, rc, msg, NULL);
        gw_h2_submit(s);
        return;
    }
    s->state = GW_H2S_CALLING;
    s->p.ucl = s->h->ucl;
    if (gw_pipe_handle(s->h->o.pipe, &s->p) == GW_PIPE_REPLY)
        gw_h2_submit(s);
    /* else: gw_h2_done hands it back (maybe already has) */
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------- */

static int gw_h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    gw_h2_conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* A stream the client reset keeps its upstream call (and its place in
     * c->streams) until the call ends, while nghttp2 no longer counts it:
     * count it against max_streams here, or a client resetting each
     * stream at once could start calls without bound (CVE-2023-44487,
     * "rapid reset"). REFUSED_STREAM: nothing was done, the client may
     * retry. */
    if (c->n_streams >= c->h->o.max_streams) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    gw_h2_stream *s = gw_h2_stream_new(c, frame->hd.stream_id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    return 0;
}

static int gw_h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                           size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: ignored */
    gw_h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s || s->state != GW_H2S_READING)
        return 0;
    if (s->refuse)
        return 0; /* answered as refused once the request is complete */
    if (s->hb.len + namelen + valuelen + 2 > GW_H2_HEADERS_MAX) {
        s->refuse = 431; /* 431, with nothing more kept */
        return 0;
    }
    if (namelen && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
            if (valuelen >= sizeof s->method) {
                s->refuse = 501;
                return 0;
            }
            memcpy(s->method, value, valuelen);
            s->method[valuelen] = '\0';
        } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
            char *u = malloc(valuelen + 1);
            if (!u)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            memcpy(u, value, valuelen);
            u[valuelen] = '\0';
            free(s->p.uri);
            s->p.uri = u;
        }
        return 0; /* :scheme, :authority: not headers of the request */
    }
    /* nghttp2 has checked the field (RFC 9113 8.2.1): no NUL, CR, LF. */
    gw_buf_append(&s->hb, (const char *)name, namelen);
    gw_buf_putc(&s->hb, '\0');
    gw_buf_append(&s->hb, (const char *)value, valuelen);
    gw_buf_putc(&s->hb, '\0');
    return 0;
}

static int gw_h2_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user)
{
    (void)flags;
    (void)user;
    gw_h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s || s->state != GW_H2S_READING)
        return 0;
    size_t max = gw_pipe_opts(s->h->o.pipe)->max_body_bytes;
    if (!s->p.too_large && s->p.body.len + len <= max)
        gw_buf_append(&s->p.body, (const char *)data, len);
    else
        s->p.too_large = true; /* answered 413 at the end; the rest is dropped */
    return s->p.body.oom ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int gw_h2_on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gw_h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s && s->state == GW_H2S_READING)
        gw_h2_dispatch(s);
    return 0;
}

static int gw_h2_on_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    gw_h2_conn *c = user;
    if (c->closing)
        return 0;
    gw_h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    if (s->state == GW_H2S_CALLING) {
        s->closed = true; /* freed when its call ends */
        return 0;
    }
    if (s->state == GW_H2S_SENDING)
        gw_h2_record(c->h, s, error_code == NGHTTP2_NO_ERROR && s->sent == s->p.reply.len);
    gw_h2_unlink(s);
    gw_h2_stream_free(c->h, s);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------- */

static void gw_h2_conn_close(struct gw_h2 *h, gw_h2_conn *c)
{
    c->closing = true;
    /* Streams with a call in flight stay until it ends; the rest go now. */
    gw_h2_stream *s = c->streams;
    while (s) {
        gw_h2_stream *next = s->next;
        if (s->state == GW_H2S_CALLING) {
            gw_h2_unlink(s); /* freed by gw_h2_take_done when its call ends */
        } else {
            if (s->state == GW_H2S_SENDING)
                gw_h2_record(h, s, false);
            gw_h2_unlink(s);
            gw_h2_stream_free(h, s);
        }
        s = next;
    }
    nghttp2_session_del(c->session);
    gw_tls_conn_free(c->tls); /* close_notify, if the socket takes it now */
    epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    /* Not in h->dirty: gw_h2_flush_dirty closes only after unlinking. */
    gw_buf_dispose(&c->out);
    free(c);
}

/* The connection's byte stream: the socket itself (h2c), or TLS over it.
 * Reads return the bytes (> 0), 0 when the peer closed, GW_H2_IO_AGAIN,
 * or -1 when the connection is broken; writes the bytes taken (> 0),
 * GW_H2_IO_AGAIN or -1. After GW_H2_IO_AGAIN a write must be given the
 * same bytes first again (TLS has made its record of them): c->out does,
 * as out_off moves only by what a write took. */
static ssize_t gw_h2_io_read(gw_h2_conn *c, void *buf, size_t len)
{
    if (c->tls)
        return gw_tls_read(c->tls, buf, len);
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? GW_H2_IO_AGAIN : -1;
    }
}

/* Bytes already taken off the socket and waiting to be read (decrypted
 * TLS records): the socket will not wake the loop for them. */
static bool gw_h2_io_pending(const gw_h2_conn *c)
{
    return c->tls && gw_tls_pending(c->tls);
}

static ssize_t gw_h2_io_write(gw_h2_conn *c, const void *buf, size_t len)
{
    if (c->tls)
        return gw_tls_write(c->tls, buf, len);
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? GW_H2_IO_AGAIN : -1;
    }
}

static void gw_h2_arm(struct gw_h2 *h, gw_h2_conn *c, bool out)
{
    if (c->want_out == out)
        return;
    c->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what nghttp2 has to send. -1: the connection is done (closed). */
static int gw_h2_flush(struct gw_h2 *h, gw_h2_conn *c)
{
    if (c->handshaking)
        return 0; /* the first bytes after the handshake are our SETTINGS */
    for (;;) {
        while (c->out.len - c->out_off < GW_H2_OUT_HIGH && nghttp2_session_want_write(c->session)) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            if (n < 0) {
                gw_h2_conn_close(h, c);
                return -1;
            }
            if (n == 0)
                break;
            gw_buf_append(&c->out, (const char *)data, (size_t)n);
        }
        if (c->out.oom) {
            gw_h2_conn_close(h, c);
            return -1;
        }
        if (c->out.len == c->out_off)
            break;
        ssize_t w = gw_h2_io_write(c, c->out.data + c->out_off, c->out.len - c->out_off);
        if (w == GW_H2_IO_AGAIN) {
            gw_h2_arm(h, c, true);
            return 0;
        }
        if (w <= 0) {
            gw_h2_conn_close(h, c);
            return -1;
        }
        c->out_off += (size_t)w;
        if (c->out_off == c->out.len) {
            gw_buf_reset(&c->out); /* sent frames carry answers: wiped */
            c->out_off = 0;
        }
    }
    gw_h2_arm(h, c, false);
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
        gw_h2_conn_close(h, c);
        return -1;
    }
    return 0;
}

static void gw_h2_flush_dirty(struct gw_h2 *h)
{
    while (h->dirty) {
        gw_h2_conn *c = h->dirty;
        h->dirty = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        gw_h2_flush(h, c);
    }
}

/* Takes c out of h->dirty (before it is closed outside a flush). */
static void gw_h2_undirty(struct gw_h2 *h, gw_h2_conn *c)
{
    if (!c->dirty)
        return;
    for (gw_h2_conn **pp = &h->dirty; *pp; pp = &(*pp)->next_dirty)
        if (*pp == c) {
            *pp = c->next_dirty;
            break;
        }
    c->dirty = false;
}

static void gw_h2_read(struct gw_h2 *h, gw_h2_conn *c)
{
    uint8_t buf[GW_H2_READ_BUF];
    /* Eight reads from the socket, then other connections get a turn: what
     * is left in the socket wakes the loop again (level-triggered), what
     * GnuTLS has already decrypted would not, so that is always taken (one
     * record at most, no socket read). */
    for (int i = 0; i < 8 || gw_h2_io_pending(c); i++) {
        ssize_t n = gw_h2_io_read(c, buf, sizeof buf);
        if (n == GW_H2_IO_AGAIN)
            break;
        if (n <= 0) {
            gw_h2_undirty(h, c);
            gw_h2_conn_close(h, c);
            return;
        }
        c->last_active_s = gw_h2_now_s();
        ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
        if (used < 0) {
            /* GOAWAY with what went wrong (if nghttp2 has not queued one
             * already), sent before the connection is closed. */
            uint32_t why = used == NGHTTP2_ERR_FLOODED                                       ? NGHTTP2_ENHANCE_YOUR_CALM
                           : used == NGHTTP2_ERR_NOMEM || used == NGHTTP2_ERR_CALLBACK_FAILURE ? NGHTTP2_INTERNAL_ERROR
                                                                                                : NGHTTP2_PROTOCOL_ERROR;
            nghttp2_session_terminate_session(c->session, why);
            gw_h2_undirty(h, c);
            if (gw_h2_flush(h, c) == 0) {
                gw_h2_conn_close(h, c);
            }
            return;
        }
        /* A short recv drained the socket; a TLS read returns one record
         * however much more is there. */
        if (!c->tls && (size_t)n < sizeof buf)
            break;
    }
    gw_h2_mark_dirty(c);
}

/* Advances c's TLS handshake as far as the socket allows. Once it is done
 * (ALPN "h2"), HTTP/2 starts: what the client has sent already is read
 * and our SETTINGS go out. */
static void gw_h2_handshake(struct gw_h2 *h, gw_h2_conn *c)
{
    switch (gw_tls_handshake(c->tls)) {
    case GW_TLS_HS_WANT_READ:
        gw_h2_arm(h, c, false);
        return;
    case GW_TLS_HS_WANT_WRITE:
        gw_h2_arm(h, c, true);
        return;
    case GW_TLS_HS_FAILED:
        /* Debug: any client can make one fail, at will. */
        log_debug("http2.tls_handshake_failed", "peer=%s reason=%s", c->peer, gw_tls_conn_failure(c->tls));
        gw_h2_undirty(h, c);
        gw_h2_conn_close(h, c);
        return;
    case GW_TLS_HS_DONE:
        break;
    }
    c->handshaking = false;
    c->last_active_s = gw_h2_now_s();
    gw_h2_arm(h, c, false);
    gw_h2_read(h, c); /* marks c dirty (or closes it) */
}

/* A connected socket (non-blocking) becomes an HTTP/2 connection, over
 * TLS when tls (its handshake first); the socket is closed when it
 * cannot. */
static void gw_h2_conn_add(struct gw_h2 *h, int fd, const struct sockaddr_storage *ss, bool tls)
{
    if (h->n_conns >= h->o.max_connections) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on other sockets */
    gw_h2_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->h = h;
    c->fd = fd;
    gw_buf_init(&c->out);
    c->last_active_s = gw_h2_now_s();
    snprintf(c->peer, sizeof c->peer, "-");
    if (ss && ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, c->peer, sizeof c->peer);
    else if (ss && ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, c->peer, sizeof c->peer);
    if (tls) {
        c->tls = gw_tls_conn_new(h->tls, fd);
        if (!c->tls) {
            close(fd);
            free(c);
            return;
        }
        c->handshaking = true;
    }
    if (nghttp2_session_server_new(&c->session, h->cbs, c) != 0) {
        gw_tls_conn_free(c->tls);
        close(fd);
        free(c);
        return;
    }
    nghttp2_settings_entry iv[2] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->o.max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GW_H2_HEADERS_MAX},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c}; /* a TLS client speaks first too */
    if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        nghttp2_session_del(c->session);
        gw_tls_conn_free(c->tls);
        close(fd);
        free(c);
        return;
    }
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (!c->handshaking)
        gw_h2_mark_dirty(c); /* our SETTINGS */
}

static void gw_h2_accept(struct gw_h2 *h)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("http2.accept", "errno=%d", errno);
            return;
        }
        gw_h2_conn_add(h, fd, &ss, h->tls != NULL);
    }
}

/* On the loop: the sockets handed over by gw_h2_adopt. */
static void gw_h2_take_adopted(struct gw_h2 *h)
{
    pthread_mutex_lock(&h->done_lock);
    size_t n = h->n_adopt;
    int fds[GW_H2_ADOPT_MAX];
    memcpy(fds, h->adopt, n * sizeof fds[0]);
    h->n_adopt = 0;
    pthread_mutex_unlock(&h->done_lock);
    for (size_t i = 0; i < n; i++)
        gw_h2_conn_add(h, fds[i], NULL, false); /* h2c: the caller's stream is trusted as it is */
}

int gw_h2_adopt(gw_h2 *h, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    pthread_mutex_lock(&h->done_lock);
    if (h->n_adopt >= GW_H2_ADOPT_MAX) {
        pthread_mutex_unlock(&h->done_lock);
        return -1;
    }
    h->adopt[h->n_adopt++] = fd;
    pthread_mutex_unlock(&h->done_lock);
    if (!atomic_exchange(&h->kicked, true))
        gw_h2_wake(h);
    return 0;
}

/* Closes connections that made no progress (read nothing) for the idle
 * timeout while no call of theirs is in flight: idle ones, and ones
 * stalled by the client mid-request (a body that never ends) or mid-reply
 * (a window never opened), which would otherwise hold their streams and
 * buffers for good. Calls in flight are bounded by their deadlines. A TLS
 * handshake must end within the idle timeout of the accept, and within
 * GW_H2_HANDSHAKE_MAX_S whatever that is: a client that never finishes
 * one (or trickles it) holds a connection slot and a session until then. */
static void gw_h2_sweep(struct gw_h2 *h)
{
    int64_t now = gw_h2_now_s();
    if (now == h->last_sweep_s)
        return;
    h->last_sweep_s = now;
    int64_t idle = h->o.idle_timeout_s;
    int64_t hs = idle && idle < GW_H2_HANDSHAKE_MAX_S ? idle : GW_H2_HANDSHAKE_MAX_S;
    if (!idle && !h->tls)
        return;
    gw_h2_conn *c = h->conns;
    while (c) {
        gw_h2_conn *next = c->next;
        int64_t limit = c->handshaking ? hs : idle;
        bool calling = false;
        for (gw_h2_stream *st = c->streams; st && !calling; st = st->next)
            calling = st->state == GW_H2S_CALLING;
        if (limit && !calling && now - c->last_active_s >= limit) {
            gw_h2_undirty(h, c);
            gw_h2_conn_close(h, c);
        }
        c = next;
    }
}

static void *gw_h2_loop(void *arg)
{
    struct gw_h2 *h = arg;
    pthread_setname_np(pthread_self(), "gw-h2");
    gw_h2_self = h;
    struct epoll_event evs[64];
    while (!atomic_load(&h->loop_stop)) {
        gw_h2_log_flush(h); /* before waiting: lines are never held back across a wait */
        int timeout = gw_ucl_timeout_ms(h->ucl);
        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        int n = epoll_wait(h->epoll_fd, evs, 64, timeout);
        bool upstream = n == 0 && timeout < 1000;
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &h->ucl) {
                upstream = true;
            } else if (ptr == &h->listen_fd) {
                gw_h2_accept(h);
            } else if (ptr == &h->wake_fd) {
                uint64_t v;
                if (read(h->wake_fd, &v, sizeof v) < 0) {
                    /* EAGAIN: already read */
                }
                atomic_store(&h->kicked, false);
            } else {
                gw_h2_conn *c = ptr;
                if (c->handshaking)
                    gw_h2_handshake(h, c); /* may close c */
                else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    gw_h2_read(h, c); /* may close c: the only event taken per turn */
                else if (evs[i].events & EPOLLOUT)
                    gw_h2_mark_dirty(c);
            }
        }
        /* Answers first (calls end and their replies go out this turn),
         * then the frames of the calls the requests above started. */
        if (upstream || gw_ucl_timeout_ms(h->ucl) == 0)
            gw_ucl_run(h->ucl);
        gw_h2_take_adopted(h);
        gw_h2_take_done(h);
        gw_h2_flush_dirty(h);
        gw_ucl_flush(h->ucl);
        gw_h2_sweep(h);
    }
    gw_h2_take_done(h);
    gw_h2_flush_dirty(h);
    gw_h2_log_flush(h);
    gw_h2_self = NULL;
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------------- */

static void gw_h2_free(struct gw_h2 *h)
{
    gw_ucl_free(h->ucl); /* no call left: gw_pipe_wait_calls returned */
    h->ucl = NULL;
    gw_h2_take_done(h);
    while (h->conns)
        gw_h2_conn_close(h, h->conns);
    for (size_t i = 0; i < h->n_adopt; i++)
        close(h->adopt[i]);
    /* Streams left have calls in flight: none, once gw_pipe_wait_calls returned. */
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->epoll_fd >= 0)
        close(h->epoll_fd);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    while (h->pool) {
        gw_h2_stream *s = h->pool;
        h->pool = s->next_done;
        gw_h2_stream_destroy(s);
    }
    if (h->cbs)
        nghttp2_session_callbacks_del(h->cbs);
    gw_tls_free(h->tls); /* after its sessions: every connection is closed */
    pthread_mutex_destroy(&h->done_lock);
    free(h);
}

gw_h2 *gw_h2_start(char *err, size_t err_len, const gw_h2_options *o)
{
    struct gw_h2 *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    h->o = *o;
    if (!h->o.max_streams)
        h->o.max_streams = 128;
    h->listen_fd = h->epoll_fd = h->wake_fd = -1;
    pthread_mutex_init(&h->done_lock, NULL);
    if (o->tls_cert_pem && o->tls_key_pem) {
        h->tls = gw_tls_new(err, err_len, o->tls_cert_pem, o->tls_key_pem);
        if (!h->tls) {
            gw_h2_free(h);
            return NULL;
        }
    }
    struct sockaddr_storage ss;
    if (gw_listen_parse(&ss, o->listen) != 0) {
        snprintf(err, err_len, "http2.listen: expected host:port (IPv4 address, localhost or [IPv6]), got \"%s\"",
                 o->listen);
        gw_h2_free(h);
        return NULL;
    }
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    h->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->listen_fd < 0 || setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(h->listen_fd, (struct sockaddr *)&ss, sl) != 0 || listen(h->listen_fd, 1024) != 0) {
        snprintf(err, err_len, "cannot serve HTTP/2 on %s: %s", o->listen, strerror(errno));
        gw_h2_free(h);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(h->listen_fd, (struct sockaddr *)&bound, &bl) == 0)
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->epoll_fd < 0 || h->wake_fd < 0 || nghttp2_session_callbacks_new(&h->cbs) != 0) {
        snprintf(err, err_len, "cannot set up the HTTP/2 event loop");
        gw_h2_free(h);
        return NULL;
    }
    h->ucl = gw_ucl_new(gw_pipe_opts(o->pipe)->upstreams);
    if (!h->ucl) {
        snprintf(err, err_len, "cannot set up the HTTP/2 event loop's upstream client");
        gw_h2_free(h);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &h->listen_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &h->wake_fd};
    struct epoll_event uev = {.events = EPOLLIN, .data.ptr = &h->ucl};
    if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->listen_fd, &ev) != 0 ||
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->wake_fd, &wev) != 0 ||
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, gw_ucl_fd(h->ucl), &uev) != 0) {
        snprintf(err, err_len, "cannot set up the HTTP/2 event loop");
        gw_h2_free(h);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(h->cbs, gw_h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(h->cbs, gw_h2_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h->cbs, gw_h2_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h->cbs, gw_h2_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(h->cbs, gw_h2_on_close);
    if (pthread_create(&h->loop, NULL, gw_h2_loop, h) != 0) {
        snprintf(err, err_len, "cannot start the HTTP/2 thread");
        gw_h2_free(h);
        return NULL;
    }
    h->loop_started = true;
    return h;
}

int gw_h2_port(const gw_h2 *h)
{
    return h->port;
}

void gw_h2_stop(gw_h2 *h)
{
    if (!h)
        return;
    /* Requests now get 503 (the pipeline is stopping); replies of calls
     * that ended get up to a second to go out. */
    gw_pipe_stop_accepting(h->o.pipe);
    gw_pipe_wait_calls(h->o.pipe);
    struct timespec ts = {0, 5 * 1000000L};
    for (int i = 0; i < 200 && atomic_load(&h->active) > 0; i++)
        nanosleep(&ts, NULL);
    atomic_store(&h->loop_stop, true);
    gw_h2_wake(h);
    if (h->loop_started)
        pthread_join(h->loop, NULL);
    gw_h2_free(h);
}
