#include "gw_h2_internal.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- access log -------------------------------------------------------------------------- */

void gw_h2_log_flush(struct gw_h2 *h)
{
    if (h->log_len)
        log_write(h->log_batch, h->log_len);
    h->log_len = 0;
}

void gw_h2_record(struct gw_h2 *h, gw_h2_stream *s, bool delivered)
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

void gw_h2_stream_destroy(gw_h2_stream *s)
{
    gw_preq_dispose(&s->p);
    free(s->p.uri);
    gw_buf_dispose(&s->hb);
    free(s->kv);
    free(s);
}

void gw_h2_stream_free(struct gw_h2 *h, gw_h2_stream *s)
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

void gw_h2_unlink(gw_h2_stream *s)
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

gw_h2_stream *gw_h2_stream_new(gw_h2_conn *c, int32_t id)
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

void gw_h2_mark_dirty(gw_h2_conn *c)
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

void gw_h2_wake(struct gw_h2 *h)
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
void gw_h2_take_done(struct gw_h2 *h)
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

void gw_h2_callbacks_set(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, gw_h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, gw_h2_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, gw_h2_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, gw_h2_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, gw_h2_on_close);
}
