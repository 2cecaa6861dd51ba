#include "server.h"

#include "ipc.h"
#include "log.h"
#include "request.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FRAMES_PER_WAKE 16
#define EVENTS_MAX 64
/* Frames prepared before their key work runs together (at most; a batch
 * also ends with each wake-up). Measured on 2 CPUs with 8 connections:
 * per-request key work gave ~11k sig/s, batches of up to 64 ~24k. */
#define BATCH_MAX 64
#define IOV_MAX_BATCH 64
#define STOP_GRACE_MS 2000

#if defined(__SANITIZE_ADDRESS__)
#define LOOP_STACK (8u << 20)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOP_STACK (8u << 20)
#endif
#endif
#ifndef LOOP_STACK
#define LOOP_STACK (1u << 20)
#endif

typedef struct conn {
    int fd;
    signer_peer peer;
    ipc_reader rd;
    dispatch_out *q;      /* answers in request order */
    size_t q_head, q_len, q_cap;
    size_t sent;          /* bytes of q[q_head] already sent */
    size_t q_bytes;       /* bytes of the queued answers (counted in the server's total too) */
    size_t prep_bytes;    /* estimated answer bytes of the frames being prepared (likewise) */
    int64_t last_io_ms;   /* last byte read or written (monotonic) */
    int64_t frame_start_ms; /* first byte of an unfinished frame; -1 between frames */
    bool reading;         /* EPOLLIN wanted */
    bool writing;         /* EPOLLOUT armed */
    bool closing;         /* no more reads; close when the queue is sent */
    bool dead;
    size_t preparing;     /* frames of this wake-up's batch not yet answered */
    struct conn *prev, *next;
} conn;

typedef struct {
    int fd;
    signer_peer peer;
} handoff;

typedef struct loop {
    struct server *srv;
    unsigned index;
    int epfd;
    int efd;
    signer_worker worker;
    conn *conns;
    _Atomic unsigned n_conns;
    pthread_mutex_t inbox_mu;
    handoff *inbox;
    size_t inbox_len, inbox_cap;
    pthread_t thread;
    bool started;
    /* this wake-up's batch: prepared requests, in arrival order */
    conn *batch_conn[BATCH_MAX];
    dispatch_job *batch_job[BATCH_MAX];
    size_t batch_est[BATCH_MAX]; /* the answer size each was counted with */
    size_t n_batch;
} loop;

struct server {
    server_config cfg;
    loop *loops;
    unsigned n_loops;
    _Atomic unsigned total_conns;
    _Atomic size_t queued_bytes;   /* answers queued on every connection of every loop */
    _Atomic int stop;
    pthread_mutex_t go_mu;
    pthread_cond_t go_cv;
    int go;
};

/* epoll tags for the non-connection fds */
static char tag_listen, tag_event;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_update_events(loop *l, conn *c)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (c->reading ? EPOLLIN | EPOLLRDHUP : 0) | (c->writing ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        c->dead = true;
}

/* Drops one queued answer's bytes from both budgets. */
static void conn_unqueue_bytes(loop *l, conn *c, size_t n)
{
    c->q_bytes -= n;
    atomic_fetch_sub(&l->srv->queued_bytes, n);
}

/* An answer is about as large as its request (a signed transaction
 * carries the request's calldata); small answers (Status, GenerateKey)
 * fit the slack. Counted while the frame is prepared, so that one wake-up
 * cannot read far past the budgets before its answers exist. */
#define ANSWER_SLACK 512u

static size_t answer_estimate(size_t frame_len)
{
    return IPC_HEADER_LEN + frame_len + ANSWER_SLACK;
}

static void conn_prep_bytes(loop *l, conn *c, size_t est, bool add)
{
    if (add) {
        c->prep_bytes += est;
        atomic_fetch_add(&l->srv->queued_bytes, est);
    } else {
        c->prep_bytes -= est;
        atomic_fetch_sub(&l->srv->queued_bytes, est);
    }
}

static void conn_close(loop *l, conn *c)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (size_t i = c->q_head; i < c->q_len; i++) {
        if (c->q[i].frame)
            conn_unqueue_bytes(l, c, c->q[i].len);
        free(c->q[i].frame);
    }
    free(c->q);
    ipc_reader_dispose(&c->rd);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    atomic_fetch_sub(&l->n_conns, 1);
    atomic_fetch_sub(&l->srv->total_conns, 1);
}

static int conn_push(loop *l, conn *c, const dispatch_out *o)
{
    if (c->q_head > 0 && c->q_len == c->q_cap) {
        memmove(c->q, c->q + c->q_head, (c->q_len - c->q_head) * sizeof *c->q);
        c->q_len -= c->q_head;
        c->q_head = 0;
    }
    if (c->q_len == c->q_cap) {
        size_t ncap = c->q_cap ? c->q_cap * 2 : 8;
        dispatch_out *nq = realloc(c->q, ncap * sizeof *nq);
        if (!nq)
            return -1;
        c->q = nq;
        c->q_cap = ncap;
    }
    c->q[c->q_len++] = *o;
    if (o->frame) {
        c->q_bytes += o->len;
        atomic_fetch_add(&l->srv->queued_bytes, o->len);
    }
    return 0;
}

static size_t conn_queued(const conn *c)
{
    return c->q_len - c->q_head;
}

/* Whether more frames may be read from c now: not closing, and its
 * answers (queued or being prepared) under server.max_pipeline, their
 * bytes under server.conn_queue_bytes, and every connection's queued bytes
 * under server.queue_bytes. A peer that does not read its answers thus
 * stops being read. Frames being prepared count with an estimate of their
 * answer (answer_estimate), so a budget is exceeded by about one answer. */
static bool conn_may_read(const loop *l, const conn *c)
{
    const server_config *cfg = &l->srv->cfg;
    return !c->closing && conn_queued(c) + c->preparing < cfg->max_pipeline &&
           c->q_bytes + c->prep_bytes < cfg->conn_queue_bytes &&
           atomic_load(&l->srv->queued_bytes) < cfg->queue_bytes;
}

/* Sends every answer whose ticket is durable, in order, batching them in
 * one sendmsg. */
static void conn_flush(loop *l, conn *c, uint64_t durable)
{
    while (!c->dead && conn_queued(c) > 0) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (size_t i = c->q_head; i < c->q_len && n < IOV_MAX_BATCH; i++) {
            dispatch_out *o = &c->q[i];
            if (o->ticket > durable)
                break;
            if (!o->frame) {
                if (n == 0 && o->close_after)
                    c->dead = true; /* nothing to say: close */
                break;
            }
            size_t skip = i == c->q_head ? c->sent : 0;
            iov[n].iov_base = o->frame + skip;
            iov[n].iov_len = o->len - skip;
            n++;
            if (o->close_after)
                break;
        }
        if (n == 0 || c->dead)
            break;
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->writing) {
                    c->writing = true;
                    conn_update_events(l, c);
                }
                return;
            }
            c->dead = true; /* EPIPE, ECONNRESET: the peer is gone */
            return;
        }
        size_t left = (size_t)w;
        if (w > 0)
            c->last_io_ms = mono_ms();
        while (left > 0 && conn_queued(c) > 0) {
            dispatch_out *o = &c->q[c->q_head];
            size_t rest = o->len - c->sent;
            if (left < rest) {
                c->sent += left;
                left = 0;
                break;
            }
            left -= rest;
            bool close_after = o->close_after;
            conn_unqueue_bytes(l, c, o->len);
            free(o->frame);
            o->frame = NULL;
            c->q_head++;
            c->sent = 0;
            if (close_after) {
                c->dead = true;
                return;
            }
        }
        if (c->q_head == c->q_len)
            c->q_head = c->q_len = 0;
    }
    if (c->writing && (conn_queued(c) == 0 || c->q[c->q_head].ticket > durable)) {
        c->writing = false;
        conn_update_events(l, c);
    }
    if (!c->reading && conn_may_read(l, c)) {
        c->reading = true;
        conn_update_events(l, c);
    }
    if (c->closing && conn_queued(c) == 0 && c->preparing == 0)
        c->dead = true;
}

/* Queues a framing violation: the audit line, an Error answer (request
 * id 0) when answer is set, then closes once everything before it is sent.
 * The caller has run the pending batch, so every frame read before the
 * violation is answered first. */
static void conn_violation(loop *l, conn *c, const char *why, bool answer)
{
    dispatch_out o;
    memset(&o, 0, sizeof o);
    o.ticket = dispatch_audit_violation(l->srv->cfg.shared, &c->peer, why);
    o.close_after = true;
    if (answer) {
        /* Tell the peer why before closing: an Error with request_id 0. */
        Coffer__Signer__V1__Response resp;
        coffer__signer__v1__response__init(&resp);
        Coffer__Signer__V1__Error err;
        coffer__signer__v1__error__init(&err);
        err.code = COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST;
        err.message = (char *)(uintptr_t)why;
        err.rule = (char *)(uintptr_t)"protocol";
        resp.version = 1;
        resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_ERROR;
        resp.error = &err;
        size_t n = coffer__signer__v1__response__get_packed_size(&resp);
        o.frame = malloc(IPC_HEADER_LEN + n);
        if (o.frame) {
            o.frame[0] = (uint8_t)(n >> 24);
            o.frame[1] = (uint8_t)(n >> 16);
            o.frame[2] = (uint8_t)(n >> 8);
            o.frame[3] = (uint8_t)n;
            coffer__signer__v1__response__pack(&resp, o.frame + IPC_HEADER_LEN);
            o.len = IPC_HEADER_LEN + n;
        }
    }
    if (o.ticket == 0 || conn_push(l, c, &o) != 0) {
        free(o.frame);
        c->dead = true;
        return;
    }
    c->closing = true;
    c->reading = false;
    c->frame_start_ms = -1;
    conn_update_events(l, c);
}

/* Phases 2 and 3 for the prepared batch: key work once for all, then each
 * answer queued on its connection in arrival order. */
static void loop_run_batch(loop *l)
{
    if (l->n_batch == 0)
        return;
    dispatch_keys(&l->worker, l->batch_job, l->n_batch);
    for (size_t i = 0; i < l->n_batch; i++) {
        conn *c = l->batch_conn[i];
        dispatch_out o;
        c->preparing--;
        conn_prep_bytes(l, c, l->batch_est[i], false);
        if (dispatch_finish(&l->worker, l->batch_job[i], &o) != 0 || conn_push(l, c, &o) != 0) {
            free(o.frame);
            c->dead = true;
        }
    }
    l->n_batch = 0;
}

static void conn_read(loop *l, conn *c, int64_t now)
{
    c->last_io_ms = now; /* readable: the peer sent something (or closed) */
    for (int i = 0; i < FRAMES_PER_WAKE && c->reading && !c->dead; i++) {
        const uint8_t *frame = NULL;
        size_t len = 0;
        if (l->n_batch >= BATCH_MAX)
            loop_run_batch(l);
        ipc_result r = ipc_reader_read(&c->rd, &frame, &len, c->fd);
        if (!ipc_reader_in_frame(&c->rd))
            c->frame_start_ms = -1;
        else if (c->frame_start_ms < 0)
            c->frame_start_ms = now; /* server.frame_timeout counts from here */
        if (r == IPC_AGAIN)
            return;
        if (r == IPC_OK) {
            /* Phase 1 now (untrusted input, key memory closed); the key
             * work of the whole batch runs once every event is read. */
            dispatch_job *job = dispatch_prepare(&l->worker, &c->peer, frame, len);
            if (!job) {
                c->dead = true;
                return;
            }
            l->batch_conn[l->n_batch] = c;
            l->batch_job[l->n_batch] = job;
            l->batch_est[l->n_batch] = answer_estimate(len);
            conn_prep_bytes(l, c, l->batch_est[l->n_batch], true);
            l->n_batch++;
            c->preparing++;
            if (dispatch_job_closes(job)) {
                c->closing = true;
                c->reading = false;
                conn_update_events(l, c);
                return;
            }
            if (!conn_may_read(l, c)) {
                c->reading = false;
                conn_update_events(l, c);
                return;
            }
            continue;
        }
        if (r == IPC_EOF) {
            /* The peer is done sending; answer what it asked, then close. */
            c->closing = true;
            c->reading = false;
            conn_update_events(l, c);
            if (conn_queued(c) == 0 && c->preparing == 0)
                c->dead = true;
            return;
        }
        if (r == IPC_IO_ERROR) {
            c->dead = true;
            return;
        }
        /* Truncated, oversized, zero length. Frames read before it in this
         * wake-up are answered first (their batch runs now), then the
         * violation's answer, then the connection closes. */
        loop_run_batch(l);
        char why[96];
        snprintf(why, sizeof why, "framing: %s", ipc_strerror(r));
        conn_violation(l, c, why, r == IPC_OVERSIZED || r == IPC_ZERO_LENGTH);
        return;
    }
}

static void loop_add_conn(loop *l, int fd, const signer_peer *peer)
{
    conn *c = calloc(1, sizeof *c);
    if (!c || ipc_reader_init(&c->rd) != 0) {
        free(c);
        close(fd);
        atomic_fetch_sub(&l->srv->total_conns, 1);
        return;
    }
    c->fd = fd;
    c->peer = *peer;
    c->reading = true;
    c->last_io_ms = mono_ms();
    c->frame_start_ms = -1;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ipc_reader_dispose(&c->rd);
        free(c);
        close(fd);
        atomic_fetch_sub(&l->srv->total_conns, 1);
        return;
    }
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    atomic_fetch_add(&l->n_conns, 1);
}

static bool peer_allowed(const server *s, uid_t uid)
{
    for (size_t i = 0; i < s->cfg.n_peer_uids; i++)
        if (s->cfg.peer_uids[i] == uid)
            return true;
    return false;
}

static void loop_accept(loop *l)
{
    server *s = l->srv;
    for (;;) {
        int fd = accept4(s->cfg.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE and friends: try again on the next wake */
        }
        struct ucred cred;
        socklen_t clen = sizeof cred;
        signer_peer peer = {0, 0};
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || clen != sizeof cred) {
            close(fd);
            continue;
        }
        peer.uid = cred.uid;
        peer.pid = cred.pid;
        if (!peer_allowed(s, cred.uid)) {
            (void)dispatch_audit_peer_denied(s->cfg.shared, &peer, "uid is not in peer.uids");
            log_warn("signer.peer.denied", "uid=%u pid=%d", (unsigned)cred.uid, (int)cred.pid);
            close(fd);
            continue;
        }
        if (atomic_fetch_add(&s->total_conns, 1) >= s->cfg.max_connections) {
            atomic_fetch_sub(&s->total_conns, 1);
            log_warn("signer.conn.limit", "uid=%u max=%u", (unsigned)cred.uid, s->cfg.max_connections);
            close(fd);
            continue;
        }
        /* The loop with the fewest connections takes it. */
        loop *best = &s->loops[0];
        for (unsigned i = 1; i < s->n_loops; i++)
            if (atomic_load(&s->loops[i].n_conns) < atomic_load(&best->n_conns))
                best = &s->loops[i];
        if (best == l) {
            loop_add_conn(l, fd, &peer);
            continue;
        }
        pthread_mutex_lock(&best->inbox_mu);
        if (best->inbox_len == best->inbox_cap) {
            size_t ncap = best->inbox_cap ? best->inbox_cap * 2 : 16;
            handoff *ni = realloc(best->inbox, ncap * sizeof *ni);
            if (!ni) {
                pthread_mutex_unlock(&best->inbox_mu);
                close(fd);
                atomic_fetch_sub(&s->total_conns, 1);
                continue;
            }
            best->inbox = ni;
            best->inbox_cap = ncap;
        }
        best->inbox[best->inbox_len].fd = fd;
        best->inbox[best->inbox_len].peer = peer;
        best->inbox_len++;
        atomic_fetch_add(&best->n_conns, 1); /* counted now so the next pick sees it */
        pthread_mutex_unlock(&best->inbox_mu);
        uint64_t one = 1;
        ssize_t w = write(best->efd, &one, sizeof one);
        (void)w;
    }
}

static void loop_take_inbox(loop *l)
{
    pthread_mutex_lock(&l->inbox_mu);
    size_t n = l->inbox_len;
    handoff local[64];
    if (n > 64)
        n = 64;
    if (n > 0) {
        memcpy(local, l->inbox, n * sizeof *local);
        memmove(l->inbox, l->inbox + n, (l->inbox_len - n) * sizeof *local);
        l->inbox_len -= n;
    }
    bool more = l->inbox_len > 0;
    pthread_mutex_unlock(&l->inbox_mu);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_sub(&l->n_conns, 1); /* loop_add_conn counts it again */
        loop_add_conn(l, local[i].fd, &local[i].peer);
    }
    if (more) {
        uint64_t one = 1;
        ssize_t w = write(l->efd, &one, sizeof one);
        (void)w;
    }
}

/* Per wake-up housekeeping of a live connection: reading resumes when the
 * budgets allow; a frame left unfinished for server.frame_timeout is a
 * protocol violation; a connection without a byte in either direction for
 * server.idle_timeout is closed. *held: set when c waits for the global
 * budget only (the loop then wakes soon to look again). */
static void conn_tick(loop *l, conn *c, int64_t now, bool *held)
{
    const server_config *cfg = &l->srv->cfg;
    if (!c->reading && !c->closing) {
        if (conn_may_read(l, c)) {
            c->reading = true;
            conn_update_events(l, c);
        } else if (conn_queued(c) == 0 && c->preparing == 0) {
            /* Held back by other connections' answers, not by this peer:
             * not idle. */
            c->last_io_ms = now;
            *held = true;
        }
    }
    if (cfg->frame_timeout_ms > 0 && c->frame_start_ms >= 0 && !c->closing &&
        now - c->frame_start_ms > cfg->frame_timeout_ms) {
        char why[96];
        snprintf(why, sizeof why, "framing: frame not completed within %lld ms (server.frame_timeout)",
                 (long long)cfg->frame_timeout_ms);
        log_warn("signer.conn.frame_timeout", "uid=%u pid=%d", (unsigned)c->peer.uid, (int)c->peer.pid);
        conn_violation(l, c, why, true);
        return;
    }
    if (cfg->idle_timeout_ms > 0 && c->preparing == 0 && now - c->last_io_ms > cfg->idle_timeout_ms) {
        log_info("signer.conn.idle", "uid=%u pid=%d queued=%zu detail=\"no byte either way for %lld ms; closed\"",
                 (unsigned)c->peer.uid, (int)c->peer.pid, conn_queued(c), (long long)cfg->idle_timeout_ms);
        c->dead = true;
    }
}

static void *loop_main(void *arg)
{
    loop *l = arg;
    server *s = l->srv;
    struct epoll_event evs[EVENTS_MAX];
    int64_t stop_deadline = -1;
    bool held = false;
    /* Without events, wake up often enough for the timeouts. */
    int tick_ms = -1;
    if (s->cfg.idle_timeout_ms > 0 || s->cfg.frame_timeout_ms > 0)
        tick_ms = 1000;
    if (s->cfg.frame_timeout_ms > 0 && s->cfg.frame_timeout_ms < 4000)
        tick_ms = (int)(s->cfg.frame_timeout_ms / 4 + 1);
    if (s->cfg.idle_timeout_ms > 0 && s->cfg.idle_timeout_ms < 4000 && s->cfg.idle_timeout_ms / 4 + 1 < tick_ms)
        tick_ms = (int)(s->cfg.idle_timeout_ms / 4 + 1);

    pthread_mutex_lock(&s->go_mu);
    while (!s->go)
        pthread_cond_wait(&s->go_cv, &s->go_mu);
    pthread_mutex_unlock(&s->go_mu);

    for (;;) {
        int stopping = atomic_load(&s->stop);
        if (stopping && stop_deadline < 0) {
            stop_deadline = mono_ms() + STOP_GRACE_MS;
            if (l->index == 0)
                epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->cfg.listen_fd, NULL);
            for (conn *c = l->conns; c; c = c->next) {
                c->closing = true;
                if (c->reading) {
                    c->reading = false;
                    conn_update_events(l, c);
                }
                if (conn_queued(c) == 0)
                    c->dead = true;
            }
        }
        if (stopping) {
            int busy = 0;
            for (conn *c = l->conns; c; c = c->next)
                busy |= !c->dead && conn_queued(c) > 0;
            if (!busy || mono_ms() >= stop_deadline)
                break;
        }
        int n = epoll_wait(l->epfd, evs, EVENTS_MAX, stopping ? 100 : held ? 20 : tick_ms);
        if (n < 0 && errno != EINTR) {
            log_error("signer.epoll", "errno=%d", errno);
            break;
        }
        int64_t now = mono_ms();
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &tag_listen) {
                if (!stopping)
                    loop_accept(l);
            } else if (tag == &tag_event) {
                uint64_t v;
                ssize_t r = read(l->efd, &v, sizeof v);
                (void)r;
                loop_take_inbox(l);
            } else {
                conn *c = tag;
                if (c->dead)
                    continue;
                if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && c->reading)
                    conn_read(l, c, now);
                else if ((evs[i].events & (EPOLLHUP | EPOLLERR)) && !c->writing && c->preparing == 0)
                    c->dead = true;
            }
        }
        loop_run_batch(l);
        uint64_t durable = journal_durable(s->cfg.shared->jr);
        held = false;
        for (conn *c = l->conns, *next; c; c = next) {
            next = c->next;
            if (!c->dead && conn_queued(c) > 0)
                conn_flush(l, c, durable);
            if (!c->dead && !stopping)
                conn_tick(l, c, now, &held);
            if (c->dead)
                conn_close(l, c);
        }
    }
    while (l->conns)
        conn_close(l, l->conns);
    return NULL;
}

int server_new(server **out, const server_config *cfg)
{
    server *s = calloc(1, sizeof *s);
    pthread_attr_t attr;
    *out = NULL;
    if (!s)
        return -1;
    s->cfg = *cfg;
    pthread_mutex_init(&s->go_mu, NULL);
    pthread_cond_init(&s->go_cv, NULL);
    s->n_loops = cfg->threads ? cfg->threads : 1;
    s->loops = calloc(s->n_loops, sizeof *s->loops);
    if (!s->loops)
        goto fail;
    for (unsigned i = 0; i < s->n_loops; i++) {
        loop *l = &s->loops[i];
        l->srv = s;
        l->index = i;
        l->epfd = -1;
        l->efd = -1;
        pthread_mutex_init(&l->inbox_mu, NULL);
    }
    for (unsigned i = 0; i < s->n_loops; i++) {
        loop *l = &s->loops[i];
        struct epoll_event ev;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->epfd < 0 || l->efd < 0) {
            log_error("signer.server.init", "what=epoll errno=%d", errno);
            goto fail;
        }
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.ptr = &tag_event;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->efd, &ev) != 0)
            goto fail;
        if (i == 0) {
            ev.data.ptr = &tag_listen;
            if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, cfg->listen_fd, &ev) != 0)
                goto fail;
        }
        if (journal_add_waiter(cfg->shared->jr, l->efd) != 0)
            goto fail;
        if (dispatch_worker_init(&l->worker, cfg->shared, cfg->ring) != 0) {
            log_error("signer.server.init", "what=worker");
            goto fail;
        }
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, LOOP_STACK);
    for (unsigned i = 0; i < s->n_loops; i++) {
        if (pthread_create(&s->loops[i].thread, &attr, loop_main, &s->loops[i]) != 0) {
            pthread_attr_destroy(&attr);
            goto fail;
        }
        s->loops[i].started = true;
    }
    pthread_attr_destroy(&attr);
    *out = s;
    return 0;
fail:
    atomic_store(&s->stop, 1);
    server_go(s);
    server_free(s);
    return -1;
}

void server_go(server *s)
{
    pthread_mutex_lock(&s->go_mu);
    s->go = 1;
    pthread_cond_broadcast(&s->go_cv);
    pthread_mutex_unlock(&s->go_mu);
}

void server_stop(server *s)
{
    atomic_store(&s->stop, 1);
    for (unsigned i = 0; i < s->n_loops; i++) {
        uint64_t one = 1;
        ssize_t w = write(s->loops[i].efd, &one, sizeof one);
        (void)w;
    }
}

void server_free(server *s)
{
    if (!s)
        return;
    server_stop(s);
    for (unsigned i = 0; s->loops && i < s->n_loops; i++) {
        loop *l = &s->loops[i];
        if (l->started)
            pthread_join(l->thread, NULL);
        dispatch_worker_dispose(&l->worker);
        for (size_t k = 0; k < l->inbox_len; k++)
            close(l->inbox[k].fd);
        free(l->inbox);
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->efd >= 0)
            close(l->efd);
        pthread_mutex_destroy(&l->inbox_mu);
    }
    free(s->loops);
    pthread_cond_destroy(&s->go_cv);
    pthread_mutex_destroy(&s->go_mu);
    free(s);
}
