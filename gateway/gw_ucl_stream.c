#include "gw_ucl_internal.h"

#include "gw_grpcwire.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

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
grpcw_md_list gw_ucl_md_take(grpcw_md_list *l, size_t *cap)
{
    grpcw_md_list out = *l;
    l->items = NULL;
    l->count = 0;
    *cap = 0;
    return out;
}


/* ---- streams ----------------------------------------------------------------------------- */

gw_ucl_stream *gw_ucl_stream_get(gw_ucl *l)
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
    s->in_response = s->remote_ended = false;
    s->error_code = 0;
    s->http_status = 0;
    s->code = RPC_UNKNOWN;
    s->message = NULL;
    s->req_off = 0;
    return s;
}

void gw_ucl_stream_destroy(gw_ucl_stream *s)
{
    gw_buf_dispose(&s->body);
    gw_buf_dispose(&s->req);
    free(s->initial.items);
    free(s->trailing.items);
    free(s);
}

/* Back to the pool, wiped: requests and answers carry secrets. */
void gw_ucl_stream_put(gw_ucl *l, gw_ucl_stream *s)
{
    free(s->message);
    s->message = NULL;
    gw_ucl_md_reset(&s->initial);
    gw_ucl_md_reset(&s->trailing);
    gw_buf_reset(&s->body);
    gw_buf_reset(&s->req);
    /* A large answer's buffer is not kept for every later small one. */
    if (l->pool_n >= GW_UCL_POOL_MAX || s->body.oom || s->req.oom || s->body.cap > GW_UCL_KEEP_BYTES ||
        s->req.cap > GW_UCL_KEEP_BYTES) {
        gw_ucl_stream_destroy(s);
        return;
    }
    s->next_q = l->pool;
    l->pool = s;
    l->pool_n++;
}

void gw_ucl_stream_unlink(gw_ucl_stream *s)
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
void gw_ucl_closed_add(gw_ucl *l, gw_ucl_stream *s)
{
    s->next_q = NULL;
    if (l->closed_tail)
        l->closed_tail->next_q = s;
    else
        l->closed = s;
    l->closed_tail = s;
}

gw_ucl_stream *gw_ucl_closed_take(gw_ucl *l)
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

/* ---- nghttp2 callbacks -------------------------------------------------------------------- */

ssize_t gw_ucl_body_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
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

/* A header block begins. A response's first block is HCAT_RESPONSE; but
 * after an informational (1xx) one, nghttp2 gives the final response's
 * block as HCAT_HEADERS, like trailers: a :status in it (trailers have
 * none) makes it a response's too (gw_ucl_on_header). */
static int gw_ucl_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s)
        s->in_response = frame->headers.cat == NGHTTP2_HCAT_RESPONSE;
    return 0;
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
    if (gw_ucl_name_is(name, namelen, ":status")) {
        /* nghttp2 checked it: three digits, first of the block. */
        unsigned v = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            v = v * 10 + (unsigned)(value[i] - '0');
        s->http_status = v;
        s->in_response = true;
        return 0;
    }
    if (namelen && name[0] == ':')
        return 0;
    bool first = s->in_response;
    if (first && s->http_status / 100 == 1)
        return 0; /* an informational response's fields: not the answer's */
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
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) {
        gw_ucl_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
            s->got_headers = true;
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            s->remote_ended = true;
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

void gw_ucl_callbacks_set(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, gw_ucl_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, gw_ucl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, gw_ucl_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, gw_ucl_on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, gw_ucl_on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, gw_ucl_on_close);
}
