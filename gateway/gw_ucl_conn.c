#include "gw_ucl_internal.h"

#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

gw_upcall *gw_ucl_wait_take(gw_ucl_conn *cn)
{
    gw_upcall *c = cn->wait_head;
    if (c) {
        cn->wait_head = c->next;
        if (!cn->wait_head)
            cn->wait_tail = NULL;
        c->next = NULL;
        c->waiting = NULL;
    }
    return c;
}

void gw_ucl_mark_dirty(gw_ucl_conn *cn)
{
    if (cn->dirty || cn->dead || !cn->session)
        return;
    cn->dirty = true;
    cn->next_dirty = cn->l->dirty;
    cn->l->dirty = cn;
}

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
void gw_ucl_conn_kill(gw_ucl_conn *cn, bool failed, const char *why)
{
    if (cn->dead)
        return;
    cn->dead = true;
    cn->failed = failed;
    snprintf(cn->why, sizeof cn->why, "%s", why);
    if (cn->l->active[cn->target] == cn)
        cn->l->active[cn->target] = NULL;
}

/* The connection to target failed before it was made: its waiting calls
 * go to their next target. */
void gw_ucl_connect_failed(gw_ucl_conn *cn, const char *detail)
{
    gw_ucl *l = cn->l;
    snprintf(l->last_error[cn->target], sizeof l->last_error[cn->target], "%s", detail);
    l->retry_at_us[cn->target] = gw_ucl_now_us() + GW_UCL_RETRY_MS * 1000;
    gw_upstreams_unreachable(l->u, cn->target, detail);
    gw_ucl_conn_kill(cn, true, detail);
    gw_upcall *c;
    while ((c = gw_ucl_wait_take(cn)))
        gw_ucl_next_target(l, c, detail);
}

/* The socket is connected: an HTTP/2 session, and the waiting calls go out. */
void gw_ucl_ready(gw_ucl_conn *cn)
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
    gw_upcall *c;
    while ((c = gw_ucl_wait_take(cn)))
        if (gw_ucl_submit(cn, c) != 0)
            gw_ucl_send(l, c); /* tries again: a new connection, or ends the call */
    gw_ucl_mark_dirty(cn);
}

/* Opens a connection to target t: NULL (with l->last_error[t]) when it
 * fails at once. */
gw_ucl_conn *gw_ucl_connect(gw_ucl *l, size_t t)
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
void gw_ucl_reap(gw_ucl *l)
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

/* ---- I/O --------------------------------------------------------------------------------- */

void gw_ucl_read(gw_ucl_conn *cn)
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
void gw_ucl_write(gw_ucl_conn *cn)
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
