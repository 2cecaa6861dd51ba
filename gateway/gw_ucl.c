#include "gw_ucl_internal.h"

#include "gw_grpcwire.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* A call for a target that could not be reached (detail): the next
 * target, or the end of the call. */
void gw_ucl_next_target(gw_ucl *l, gw_upcall *c, const char *detail)
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
    gw_upstream_result(&res, RPC_UNAVAILABLE, "coffer-api is unreachable: %s: %s", gw_upstreams_target(l->u, c->order[c->k]),
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
int gw_ucl_submit(gw_ucl_conn *cn, gw_upcall *c)
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
    gw_buf bin; /* base64 of binary (-bin) values, which travel as text */
    gw_buf_init(&bin);
    size_t bin_off[GRPCW_SEND_MD_MAX];
    for (size_t i = 0; i < c->options.n_metadata && i < GRPCW_SEND_MD_MAX; i++) {
        const grpcw_md *m = &c->options.metadata[i];
        size_t kl = strlen(m->key);
        bin_off[i] = SIZE_MAX;
        if (gw_grpcwire_key_is_bin((const uint8_t *)m->key, kl)) {
            bin_off[i] = bin.len;
            gw_base64_encode(&bin, (const uint8_t *)m->value, m->value_len);
            gw_buf_putc(&bin, '\0');
        }
    }
    for (size_t i = 0; i < c->options.n_metadata && i < GRPCW_SEND_MD_MAX; i++) {
        const grpcw_md *m = &c->options.metadata[i];
        /* Credentials never enter the HPACK tables of either side (which
         * keep what they index for the connection's life, unwiped). */
        uint8_t fl = strcmp(m->key, "authorization") == 0 ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
        if (bin_off[i] != SIZE_MAX && !bin.oom)
            gw_ucl_nv(&nva[n++], m->key, strlen(m->key), bin.data + bin_off[i], strlen(bin.data + bin_off[i]), fl);
        else
            gw_ucl_nv(&nva[n++], m->key, strlen(m->key), m->value, m->value_len, fl);
    }
    nghttp2_data_provider dp;
    dp.source.ptr = s;
    dp.read_callback = gw_ucl_body_read;
    int32_t id = bin.oom ? NGHTTP2_ERR_NOMEM : nghttp2_submit_request(cn->session, NULL, nva, n, &dp, s);
    gw_buf_dispose(&bin); /* nghttp2 copied the values */
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
void gw_ucl_send(gw_ucl *l, gw_upcall *c)
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
                gw_upstream_result(&res, RPC_RESOURCE_EXHAUSTED, "the gateway is out of memory");
            else
                gw_upstream_result(&res, RPC_INTERNAL, "the call cannot be sent: %s", nghttp2_strerror(rc));
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
        gw_upstream_result(&res, RPC_RESOURCE_EXHAUSTED, "the response from %s is larger than %zu bytes", target,
                      l->max_message);
    } else if (s->has_status && s->remote_ended && (s->http_status == 200 || s->grpc_ct)) {
        /* Only a status that ended the stream (trailers, or a
         * trailers-only answer) is the call's: one in the headers of a
         * stream then reset, or in a block cut short by a stream error,
         * is not. */
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
        gw_upstream_result(&res, RPC_UNAVAILABLE, "the connection to %s was lost while the call was in flight", target);
    } else if (s->http_status && s->http_status != 200) {
        gw_upstream_result(&res, gw_grpcwire_http_code(s->http_status), "%s answered HTTP %u", target, s->http_status);
    } else if (s->error_code) {
        gw_upstream_result(&res, gw_grpcwire_rst_code(s->error_code), "%s reset the stream (HTTP/2 error %u)", target,
                      s->error_code);
    } else if (s->got_headers && !s->grpc_ct) {
        gw_upstream_result(&res, RPC_UNKNOWN, "%s answered without a gRPC content-type", target);
    } else {
        gw_upstream_result(&res, RPC_INTERNAL, "%s ended the stream without a grpc-status", target);
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
        gw_upstream_result(&res, RPC_DEADLINE_EXCEEDED, "Deadline Exceeded");
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
    gw_ucl_callbacks_set(l->cbs);
    return l;
}

void gw_ucl_free(gw_ucl *l)
{
    if (!l)
        return;
    /* Calls still running end now: CANCELLED. */
    for (gw_ucl_conn *cn = l->conns; cn; cn = cn->next) {
        gw_upcall *c;
        while ((c = gw_ucl_wait_take(cn))) {
            rpc_call_result res;
            gw_upstream_result(&res, RPC_CANCELLED, "the gateway is stopping");
            gw_ucl_deliver(l, c, 0, &res, NULL);
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
            gw_upstream_result(&res, RPC_CANCELLED, "the gateway is stopping");
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
