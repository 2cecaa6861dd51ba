#include "gw_h2_internal.h"

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

_Thread_local struct gw_h2 *gw_h2_self;

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
    gw_h2_callbacks_set(h->cbs);
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
