/* rpc_server: the server's life (listeners, request slots, shutdown), the
 * completion-queue thread, the worker pool, and the generic steps of every
 * call around the handler (see rpc_server.h). Handler-facing helpers are
 * in rpc_ctx.c, the contexts' life (pooled) in rpc_ctx_pool.c, streams in
 * rpc_stream.c. */
#include "rpc_internal.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Request slots posted per method; each completion re-posts one. A call
 * that arrives while its method has no slot posted waits in the core
 * until the queue thread re-posts one (the first thing it does with each
 * request), so a rarely called method needs only one. Slots are not free:
 * Debian's core is built with assertions, and every completion is checked
 * against a linear list of all outstanding tags, which 32 slots for each
 * of ~40 methods made ~1,400 long (a fifth of GetInfo's instructions).
 * The rows called all the time (RPC_F_INLINE: GetInfo, Health/Check) keep
 * 32: a call that has to wait for a slot costs the core two more lock
 * round trips, and 32 measured best for GetInfo from 4x8 to 16x32. */
#define RPC_SLOTS_INLINE 32u
#define RPC_SLOTS_UNARY 1u
#define RPC_SLOTS_STREAM 1u
#define RPC_SLOTS_GENERIC 1u

/* RetryInfo sent with an overload refusal. */
#define RPC_OVERLOAD_RETRY_MS 200

/* ---- access log ------------------------------------------------------------------- */

/* The worker running on this thread (NULL on the queue thread). */
static _Thread_local rpc_worker *rpc_self;

/* Hands a worker's batched access-log lines (whole lines) to the log
 * writer thread, or writes them (one write) when there is none. */
static void rpc_access_flush(rpc_worker *w)
{
    if (w->alen) {
        if (w->srv && w->srv->logq)
            w->abuf = logq_submit(w->srv->logq, w->abuf, w->alen);
        else
            log_write(w->abuf, w->alen);
        w->alen = 0;
    }
}

/* Access-log lines from workers are batched per worker and written when
 * the buffer fills, when the worker goes idle, or RPC_ACCESS_FLUSH_US after
 * the first buffered line: under load one write(2) carries many lines
 * (whole lines, never interleaved); when calls are few, each line is
 * written as soon as its worker has nothing else to do. */
static void rpc_access_emit(const char *line, size_t n)
{
    rpc_worker *w = rpc_self;
    if (!w || !w->abuf || n > RPC_ACCESS_BUF) {
        log_write(line, n);
        return;
    }
    if (w->alen + n > RPC_ACCESS_BUF)
        rpc_access_flush(w);
    if (w->alen == 0)
        w->afirst_us = rpc_coarse_now_us();
    memcpy(w->abuf + w->alen, line, n);
    w->alen += n;
}

void rpc_access_log(rpc_ctx *c, const char *method)
{
    char caller[AUTH_ID_MAX + 16], peer[128], qmethod[300], qmsg[RPC_MESSAGE_MAX + 8];
    grpcw_call_peer(c->call, peer, sizeof peer);
    if (c->authenticated)
        auth_caller_name(&c->caller, caller, sizeof caller);
    else
        memcpy(caller, "unauthenticated", sizeof "unauthenticated");
    rpc_code code = c->code;
    int64_t duration_us = rpc_now_us() - c->t0_us;
    rpc_stats_record(c->row ? &c->row->stats : &c->srv->unknown_stats, code, duration_us);
    log_level level = code == RPC_INTERNAL || code == RPC_UNKNOWN || code == RPC_DATA_LOSS ? LOG_WARN : LOG_INFO;
    /* Built with appenders, not printf: this runs once per call, often on
     * the completion-queue thread. */
    char f[1024];
    size_t n = 0;
    log_put_lit(f, sizeof f, &n, "method=");
    log_put_str(f, sizeof f, &n, log_quote(qmethod, sizeof qmethod, method));
    log_put_lit(f, sizeof f, &n, " code=");
    log_put_str(f, sizeof f, &n, rpc_code_name(code));
    log_put_lit(f, sizeof f, &n, " duration_us=");
    log_put_u64(f, sizeof f, &n, duration_us > 0 ? (uint64_t)duration_us : 0);
    log_put_lit(f, sizeof f, &n, " caller=");
    log_put_str(f, sizeof f, &n, caller);
    log_put_lit(f, sizeof f, &n, " peer=");
    log_put_str(f, sizeof f, &n, peer);
    log_put_lit(f, sizeof f, &n, " bytes_in=");
    log_put_u64(f, sizeof f, &n, c->bytes_in);
    log_put_lit(f, sizeof f, &n, " bytes_out=");
    log_put_u64(f, sizeof f, &n, c->bytes_out);
    if (code != RPC_OK) {
        log_put_lit(f, sizeof f, &n, " message=");
        log_put_str(f, sizeof f, &n, log_quote(qmsg, sizeof qmsg, c->msg[0] ? c->msg : rpc_code_name(code)));
    }
    char line[4096];
    size_t len = log_format_fields(line, sizeof line, level, "rpc.call", f, n);
    if (len)
        rpc_access_emit(line, len);
}

/* ---- job queue ---------------------------------------------------------------------- */

/* With qlock held: wakes the most recently idle worker, unless an awake
 * one will look at the queue anyway. */
static void rpc_wake_locked(rpc_server *s)
{
    if (s->n_seeking > 0 || s->n_idle == 0)
        return;
    rpc_worker *w = s->idle[--s->n_idle];
    w->woken = true;
    s->n_seeking++;
    pthread_cond_signal(&w->cond);
}

static void rpc_enqueue(rpc_server *s, rpc_ctx *c, rpc_job_kind job)
{
    pthread_mutex_lock(&s->qlock);
    c->job = job;
    c->job_next = NULL;
    if (s->q_tail)
        s->q_tail->job_next = c;
    else
        s->q_head = c;
    s->q_tail = c;
    s->q_len++;
    atomic_store_explicit(&s->q_nonempty, true, memory_order_relaxed);
    rpc_wake_locked(s);
    pthread_mutex_unlock(&s->qlock);
}

/* ---- request id and headers ------------------------------------------------------------ */

static bool rpc_rid_ok(const char *v, size_t n)
{
    if (n == 0 || n > RPC_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':' || ch == '/'))
            return false;
    }
    return true;
}

static void rpc_set_rid(rpc_ctx *c)
{
    size_t n;
    const char *v = grpcw_call_metadata(c->call, &n, "x-request-id");
    if (v && rpc_rid_ok(v, n)) {
        memcpy(c->rid, v, n);
        c->rid[n] = '\0';
        return;
    }
    /* "<8 hex digits of the server>-<counter in at least 12 hex digits>",
     * as "%s-%012llx" would print it, without printf (once per call). */
    uint64_t k = atomic_fetch_add_explicit(&c->srv->rid_counter, 1, memory_order_relaxed);
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    size_t nd = 0;
    do {
        digits[nd++] = hex[k & 0xf];
        k >>= 4;
    } while (k || nd < 12);
    size_t pos = strlen(c->srv->rid_prefix);
    memcpy(c->rid, c->srv->rid_prefix, pos);
    c->rid[pos++] = '-';
    while (nd)
        c->rid[pos++] = digits[--nd];
    c->rid[pos] = '\0';
}

void rpc_rid_md(const rpc_ctx *c, grpcw_md *md)
{
    md->key = "x-request-id";
    md->value = c->rid;
    md->value_len = strlen(c->rid);
}

/* ---- unary and the generic steps ------------------------------------------------------------ */

/* The steps every call goes through before its handler. */
rpc_code rpc_admit(rpc_ctx *c)
{
    rpc_server *s = c->srv;
    if (rpc_ctx_remaining_ms(c) <= 0)
        return rpc_ctx_fail(c, RPC_DEADLINE_EXCEEDED, "the deadline passed before the call started");
    if (atomic_load(&c->cancelled))
        return rpc_ctx_fail(c, RPC_CANCELLED, "the call was cancelled before it started");
    size_t n;
    const char *authz = grpcw_call_metadata(c->call, &n, "authorization");
    rpc_code code = auth_authenticate(s->o.auth, &c->caller, c->msg, sizeof c->msg, authz, n);
    if (code != RPC_OK)
        return code;
    c->authenticated = true;
    code = auth_authorize(&c->caller, c->msg, sizeof c->msg, c->row->def->access);
    if (code != RPC_OK)
        return code;
    if (c->row->def->flags & RPC_F_MUTATES) {
        const char *k = grpcw_call_metadata(c->call, &n, "idempotency-key");
        if (k) {
            bool ok = n >= 1 && n <= RPC_IDEMPOTENCY_KEY_MAX;
            for (size_t i = 0; ok && i < n; i++)
                ok = (unsigned char)k[i] > 0x20 && (unsigned char)k[i] < 0x7f;
            if (!ok)
                return rpc_ctx_fail(c, RPC_INVALID_ARGUMENT,
                                    "idempotency-key must be 1 to %u printable ASCII characters",
                                    RPC_IDEMPOTENCY_KEY_MAX);
            c->idem = k;
            c->idem_len = n;
        }
    }
    if (s->o.rate_check && c->row->def->rate != RPC_RATE_NONE) {
        int64_t retry_ms = 0;
        code = s->o.rate_check(s->o.rate_arg, c->msg, sizeof c->msg, &retry_ms, &c->caller, c->row->def->rate);
        if (code != RPC_OK) {
            c->retry_after_ms = retry_ms > 0 ? retry_ms : 0;
            return code;
        }
    }
    return RPC_OK;
}

rpc_code rpc_unpack(rpc_ctx *c, ProtobufCMessage **req, const uint8_t *data, size_t len)
{
    c->bytes_in += len;
    rpc_code code = rpc_table_unpack(req, c->msg, sizeof c->msg, c->row, data, len, c->srv->o.max_message_bytes);
    return code;
}

static void rpc_run_unary(rpc_ctx *c)
{
    rpc_server *s = c->srv;
    ProtobufCMessage *req = NULL;
    unsigned what = GRPCW_SEND_INITIAL_MD | GRPCW_SEND_STATUS;
    rpc_code code;

    if (!c->row) {
        char qpath[300];
        log_quote(qpath, sizeof qpath, grpcw_call_method(c->call));
        code = rpc_ctx_fail(c, RPC_UNIMPLEMENTED, "unknown method %s", qpath);
        goto reply;
    }
    code = rpc_admit(c);
    if (code != RPC_OK)
        goto reply;
    const uint8_t *data;
    size_t len;
    int got = grpcw_call_first_message(c->call, &data, &len);
    if (got < 0) {
        code = rpc_ctx_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory reading the request");
        goto reply;
    }
    if (got == 0) {
        if (grpcw_call_failed_before_message(c->call)) {
            code = rpc_ctx_fail(c, RPC_CANCELLED, "the call ended before its request arrived");
        } else {
            /* Either the client closed its side without a message, or the
             * stream was reset: the reply's completion tells (rare path). */
            code = rpc_ctx_fail(c, RPC_INVALID_ARGUMENT, "the call carries no request message");
            c->log_on_send = true;
        }
        goto reply;
    }
    code = rpc_unpack(c, &req, data, len);
    if (code != RPC_OK)
        goto reply;

    const ProtobufCMessageDescriptor *od = c->row->method->output;
    ProtobufCMessage *resp = rpc_ctx_alloc(c, od->sizeof_message);
    if (!resp) {
        code = rpc_ctx_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto reply;
    }
    od->message_init(resp);
    code = c->row->def->unary(c, req, resp);
    if (code != RPC_OK)
        goto reply;
    /* Nobody is waiting for an answer any more: say so in the log. (The
     * core cancels a call whose deadline passed, so test that first.) */
    if (rpc_ctx_remaining_ms(c) <= 0) {
        code = rpc_ctx_fail(c, RPC_DEADLINE_EXCEEDED, "the deadline passed while the call ran");
        goto reply;
    }
    if (atomic_load(&c->cancelled)) {
        code = rpc_ctx_fail(c, RPC_CANCELLED, "the call was cancelled while it ran");
        goto reply;
    }
    size_t out_len = c->packed_reply ? c->packed_reply_len : protobuf_c_message_get_packed_size(resp);
    if (out_len > s->o.max_message_bytes) {
        code = rpc_ctx_fail(c, RPC_RESOURCE_EXHAUSTED, "the response of %zu bytes exceeds the limit of %zu bytes",
                            out_len, s->o.max_message_bytes);
        goto reply;
    }
    /* Answers of mutating methods may carry one-time secrets (a new API
     * key, a webhook secret): their packed bytes are wiped when released. */
    bool secret = c->row && (c->row->def->flags & RPC_F_MUTATES);
    uint8_t *buf = secret ? grpcw_call_message_buffer_wiped(c->call, out_len) : grpcw_call_message_buffer(c->call, out_len);
    if (!buf) {
        code = rpc_ctx_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto reply;
    }
    if (c->packed_reply) {
        if (out_len)
            memcpy(buf, c->packed_reply, out_len);
    } else {
        protobuf_c_message_pack(resp, buf);
    }
    c->bytes_out = out_len;
    what |= GRPCW_SEND_MESSAGE;
reply:
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    rpc_arena_reset(c);
    if (code != RPC_OK && !c->msg[0])
        snprintf(c->msg, sizeof c->msg, "%s", code == RPC_OK ? "" : "the call failed");
    c->code = code;
    rpc_attach_retry_info(c, code);
    grpcw_md md;
    rpc_rid_md(c, &md);
    rpc_ctx_ref(c);
    if (!c->watching)
        what |= GRPCW_RECV_CLOSE;
    bool log_now = !c->log_on_send;
    if (grpcw_call_send(c->call, &c->t_send, what, &md, 1, code, code == RPC_OK ? NULL : c->msg) != 0) {
        log_now = true;
        rpc_ctx_unref(c);
    }
    if (log_now)
        rpc_access_log(c, c->row ? c->row->path : grpcw_call_method(c->call));
}

/* ---- workers -------------------------------------------------------------------------------------- */

static void *rpc_worker_main(void *arg)
{
    rpc_worker *w = arg;
    rpc_server *s = w->srv;
    rpc_self = w;
    pthread_mutex_lock(&s->qlock);
    s->n_seeking++;
    for (;;) {
        if (!s->q_head && !s->q_stop) {
            if (w->alen) { /* going idle: nothing should wait in the buffer */
                pthread_mutex_unlock(&s->qlock);
                rpc_access_flush(w);
                pthread_mutex_lock(&s->qlock);
            }
            /* Before sleeping, keep yielding for a moment while still
             * counted as seeking: under load (and between the calls of a
             * busy client) the next call usually arrives within
             * microseconds and is taken without a futex wake-up. Only the
             * most recently idle worker does this; sched_yield hands the
             * CPU to anything else that wants it. */
            pthread_mutex_unlock(&s->qlock);
            int64_t until = rpc_now_us() + RPC_WORKER_SPIN_US;
            while (!atomic_load_explicit(&s->q_nonempty, memory_order_relaxed) && rpc_now_us() < until)
                sched_yield();
            pthread_mutex_lock(&s->qlock);
        }
        while (!s->q_head && !s->q_stop) {
            s->n_seeking--;
            s->idle[s->n_idle++] = w;
            w->woken = false;
            while (!w->woken && !s->q_stop)
                pthread_cond_wait(&w->cond, &s->qlock);
            if (!w->woken) { /* stopping: still on the idle stack */
                for (unsigned i = 0; i < s->n_idle; i++)
                    if (s->idle[i] == w)
                        s->idle[i] = s->idle[--s->n_idle];
                s->n_seeking++;
            }
        }
        if (!s->q_head) {
            s->n_seeking--;
            pthread_mutex_unlock(&s->qlock);
            rpc_access_flush(w);
            rpc_self = NULL;
            return NULL;
        }
        rpc_ctx *c = s->q_head;
        rpc_job_kind job = c->job; /* read under the lock: the next enqueue may rewrite it */
        s->q_head = c->job_next;
        if (!s->q_head) {
            s->q_tail = NULL;
            atomic_store_explicit(&s->q_nonempty, false, memory_order_relaxed);
        }
        s->q_len--;
        s->n_seeking--;
        if (s->q_head)
            rpc_wake_locked(s); /* more waiting: do not let them wait for this handler */
        pthread_mutex_unlock(&s->qlock);

        log_set_request_id(c->rid);
        if (c->is_stream)
            rpc_run_stream_job(c, job);
        else
            rpc_run_unary(c);
        log_set_request_id(NULL);
        rpc_ctx_unref(c); /* the job's reference */
        if (w->alen && rpc_coarse_now_us() - w->afirst_us > RPC_ACCESS_FLUSH_US)
            rpc_access_flush(w);
        pthread_mutex_lock(&s->qlock);
        s->n_seeking++;
    }
}

/* ---- completion-queue thread --------------------------------------------------------------------- */

static int rpc_post_slot(rpc_server *s, rpc_row *row)
{
    rpc_ctx *c = rpc_ctx_new(s, row);
    if (!c) {
        log_error("rpc.slot_failed", "reason=out_of_memory");
        return -1;
    }
    if (grpcw_server_request(s->gs, row ? row->registration : NULL, c->call, &c->t_request) != 0) {
        rpc_ctx_destroy(c, false);
        return -1;
    }
    return 0;
}

/* Refuses a call on the queue thread, without a worker (overload). */
static void rpc_refuse(rpc_ctx *c, rpc_code code, const char *msg)
{
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    c->code = code;
    c->retry_after_ms = RPC_OVERLOAD_RETRY_MS;
    rpc_attach_retry_info(c, code);
    grpcw_md md;
    rpc_rid_md(c, &md);
    rpc_ctx_ref(c);
    if (grpcw_call_send(c->call, &c->t_send, GRPCW_SEND_INITIAL_MD | GRPCW_SEND_STATUS | GRPCW_RECV_CLOSE, &md, 1,
                        code, c->msg) != 0)
        rpc_ctx_unref(c);
    log_set_request_id(c->rid);
    rpc_access_log(c, c->row ? c->row->path : grpcw_call_method(c->call));
    log_set_request_id(NULL);
}

static void rpc_on_request(rpc_server *s, rpc_ctx *c, bool ok)
{
    if (!ok) {
        /* The server is shutting down: the slot comes back empty. */
        rpc_ctx_destroy(c, false);
        return;
    }
    pthread_mutex_lock(&s->lock);
    bool stopping = s->shutting_down;
    s->inflight++;
    pthread_mutex_unlock(&s->lock);
    if (!stopping)
        (void)rpc_post_slot(s, c->row);

    c->t0_us = rpc_now_us();
    c->deadline_ms = grpcw_call_deadline_ms(c->call);
    rpc_set_rid(c);
    if (c->is_stream) {
        c->watching = true;
        rpc_ctx_ref(c);
        if (grpcw_call_recv_close(c->call, &c->t_close) != 0) {
            rpc_ctx_unref(c);
            grpcw_call_cancel(c->call, RPC_INTERNAL, "cannot track the call");
            rpc_ctx_unref(c);
            return;
        }
        pthread_mutex_lock(&s->lock);
        c->open_next = s->open_streams;
        if (s->open_streams)
            s->open_streams->open_prev = c;
        s->open_streams = c;
        pthread_mutex_unlock(&s->lock);
        if (stopping)
            (void)rpc_stream_finish(c, RPC_UNAVAILABLE, "coffer-api is shutting down");
    }
    size_t n_authz;
    if (!c->is_stream && c->row && (c->row->def->flags & RPC_F_INLINE) &&
        !grpcw_call_metadata(c->call, &n_authz, "authorization")) {
        /* Answered from memory here (rpc_table.h, RPC_F_INLINE): without a
         * credential there is nothing that could block. */
        log_set_request_id(c->rid);
        rpc_run_unary(c);
        log_set_request_id(NULL);
        rpc_ctx_unref(c); /* the request's reference */
        return;
    }
    pthread_mutex_lock(&s->qlock);
    unsigned queued = s->q_len;
    pthread_mutex_unlock(&s->qlock);
    if (queued >= s->o.max_queued) {
        char m[128];
        snprintf(m, sizeof m, "server overloaded: %u calls waiting; retry with backoff", queued);
        if (c->is_stream)
            (void)rpc_stream_finish(c, RPC_RESOURCE_EXHAUSTED, "%s", m); /* logged at close */
        else
            rpc_refuse(c, RPC_RESOURCE_EXHAUSTED, m);
        rpc_ctx_unref(c);
        return;
    }
    rpc_enqueue(s, c, RPC_JOB_START); /* the request's reference goes to the job */
}


static void rpc_on_close(rpc_server *s, rpc_ctx *c)
{
    if (grpcw_call_was_cancelled(c->call))
        atomic_store(&c->cancelled, true);
    if (c->is_stream) {
        pthread_mutex_lock(&c->lock);
        c->over = true;
        void (*fn)(void *) = c->on_done;
        void *arg = c->on_done_arg;
        c->on_done = NULL;
        bool finished = c->finished;
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_lock(&s->lock);
        if (c->open_prev)
            c->open_prev->open_next = c->open_next;
        else if (s->open_streams == c)
            s->open_streams = c->open_next;
        if (c->open_next)
            c->open_next->open_prev = c->open_prev;
        c->open_prev = c->open_next = NULL;
        pthread_mutex_unlock(&s->lock);
        if (fn)
            fn(arg);
        if (!finished || atomic_load(&c->cancelled)) {
            c->code = RPC_CANCELLED;
            snprintf(c->msg, sizeof c->msg, "the stream ended without a status from us "
                                            "(client cancelled, deadline, or connection lost)");
        }
        log_set_request_id(c->rid);
        rpc_access_log(c, c->row->path);
        log_set_request_id(NULL);
    }
    rpc_ctx_unref(c);
}

static void rpc_on_send(rpc_ctx *c, bool ok)
{
    grpcw_call_send_done(c->call);
    if (c->log_on_send) {
        if (!ok) {
            c->code = RPC_CANCELLED;
            snprintf(c->msg, sizeof c->msg, "the call was reset before its request arrived");
        }
        log_set_request_id(c->rid);
        rpc_access_log(c, c->row->path);
        log_set_request_id(NULL);
    }
    if (c->is_stream) {
        pthread_mutex_lock(&c->lock);
        c->send_busy = false;
        if (ok) {
            rpc_stream_pump_locked(c);
        } else {
            c->over = true; /* the call is gone: drop what is queued */
            while (c->out_head) {
                rpc_out *o = c->out_head;
                c->out_head = o->next;
                free(o);
            }
            c->out_tail = NULL;
        }
        pthread_mutex_unlock(&c->lock);
    }
    rpc_ctx_unref(c);
}

static void rpc_on_recv(rpc_server *s, rpc_ctx *c, bool ok)
{
    if (ok) {
        const uint8_t *d;
        size_t n;
        int got = grpcw_call_received(c->call, &d, &n);
        rpc_ctx_ref(c);
        rpc_enqueue(s, c, got == 0 ? RPC_JOB_HALF_CLOSE : RPC_JOB_MESSAGE);
    }
    rpc_ctx_unref(c);
}

static void rpc_cq_event(rpc_server *s, void *tag, bool ok);

static void *rpc_cq_main(void *arg)
{
    rpc_server *s = arg;
    rpc_self = &s->cq_log;
    for (;;) {
        void *tag;
        bool ok;
        /* With access-log lines waiting, wake up to write them if nothing
         * happens for RPC_ACCESS_FLUSH_US. */
        int timeout = s->cq_log.alen ? (int)(RPC_ACCESS_FLUSH_US / 1000) : -1;
        grpcw_event ev = grpcw_cq_next(s->cq, &tag, &ok, timeout);
        if (ev == GRPCW_EV_SHUTDOWN) {
            rpc_access_flush(&s->cq_log);
            rpc_self = NULL;
            return NULL;
        }
        if (ev != GRPCW_EV_TAG) {
            rpc_access_flush(&s->cq_log);
            continue;
        }
        rpc_cq_event(s, tag, ok);
        if (s->cq_log.alen && rpc_coarse_now_us() - s->cq_log.afirst_us > RPC_ACCESS_FLUSH_US)
            rpc_access_flush(&s->cq_log);
    }
}

static void rpc_cq_event(rpc_server *s, void *tag, bool ok)
{
    if (tag == &s->shutdown_tag) {
        pthread_mutex_lock(&s->lock);
        s->shutdown_done = true;
        pthread_cond_broadcast(&s->drained);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    rpc_tag *t = tag;
    switch (t->kind) {
    case RPC_TAG_REQUEST: rpc_on_request(s, t->ctx, ok); break;
    case RPC_TAG_CLOSE: rpc_on_close(s, t->ctx); break;
    case RPC_TAG_SEND: rpc_on_send(t->ctx, ok); break;
    case RPC_TAG_RECV: rpc_on_recv(s, t->ctx, ok); break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------- */

rpc_server *rpc_server_new(char *err, size_t err_len, const rpc_server_options *o)
{
    if (!o->table || !o->auth || o->workers == 0 || o->max_queued == 0 || o->max_message_bytes == 0) {
        snprintf(err, err_len, "invalid server options");
        return NULL;
    }
    bool has_tcp = o->listen && *o->listen, has_unix = o->unix_socket && *o->unix_socket;
    if (!has_tcp && !has_unix) {
        snprintf(err, err_len, "nothing to listen on: set grpc.listen or grpc.unix_socket");
        return NULL;
    }
    rpc_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    s->o = *o;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->drained, &ca);
    pthread_condattr_destroy(&ca);
    uint8_t r[4];
    randombytes_buf(r, sizeof r);
    snprintf(s->rid_prefix, sizeof s->rid_prefix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);

    grpcw_init();
    s->cq = grpcw_cq_new();
    grpcw_server_options so = {
        .max_message_bytes = o->max_message_bytes,
        .keepalive_time_ms = o->keepalive_time_ms,
        .keepalive_timeout_ms = o->keepalive_timeout_ms,
        .keepalive_min_ping_interval_ms = o->keepalive_min_ping_interval_ms,
        .keepalive_permit_without_calls = o->keepalive_permit_without_calls,
        .max_concurrent_streams = 0,
    };
    s->gs = s->cq ? grpcw_server_new(&so, s->cq) : NULL;
    if (!s->gs) {
        snprintf(err, err_len, "cannot create the gRPC server (invalid keepalive or size settings?)");
        goto fail;
    }
    for (size_t i = 0; i < rpc_table_count(o->table); i++) {
        rpc_row *row = rpc_table_row(o->table, i);
        row->registration = grpcw_server_register_method(s->gs, row->path,
                                                         row->def->kind != RPC_KIND_BIDI_STREAM);
        if (!row->registration) {
            snprintf(err, err_len, "cannot register %s", row->path);
            goto fail;
        }
    }
    char why[300];
    if (has_tcp) {
        if (grpcw_server_add_listener(s->gs, &s->port, why, sizeof why, o->listen, o->tls_cert_pem,
                                      o->tls_key_pem) != 0) {
            snprintf(err, err_len, "grpc.listen: %s", why);
            goto fail;
        }
    }
    if (has_unix) {
        char addr[4200];
        int dummy;
        snprintf(addr, sizeof addr, "unix:%s", o->unix_socket);
        if (grpcw_server_add_listener(s->gs, &dummy, why, sizeof why, addr, NULL, NULL) != 0) {
            snprintf(err, err_len, "grpc.unix_socket: %s", why);
            goto fail;
        }
    }
    return s;
fail:
    if (s->gs) {
        /* Never started: shut down and drain before destroying. */
        grpcw_server_shutdown(s->gs, &s->shutdown_tag);
        grpcw_server_cancel_all(s->gs);
        void *tag;
        bool ok;
        while (grpcw_cq_next(s->cq, &tag, &ok, 5000) == GRPCW_EV_TAG && tag != &s->shutdown_tag) {
        }
        grpcw_server_free(s->gs);
    }
    if (s->cq) {
        void *tag;
        bool ok;
        grpcw_cq_shutdown(s->cq);
        while (grpcw_cq_next(s->cq, &tag, &ok, -1) != GRPCW_EV_SHUTDOWN) {
        }
        grpcw_cq_free(s->cq);
    }
    for (size_t i = 0; i < rpc_table_count(o->table); i++)
        rpc_table_row(o->table, i)->registration = NULL;
    pthread_cond_destroy(&s->drained);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->qlock);
    free(s);
    grpcw_shutdown();
    return NULL;
}

const rpc_stats *rpc_server_unknown_stats(const rpc_server *s)
{
    return &s->unknown_stats;
}

int rpc_server_port(const rpc_server *s)
{
    return s->port;
}

int rpc_server_start(rpc_server *s, char *err, size_t err_len)
{
    grpcw_server_start(s->gs);
    s->workers = calloc(s->o.workers, sizeof *s->workers);
    s->idle = calloc(s->o.workers, sizeof *s->idle);
    if (!s->workers || !s->idle) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    s->logq = logq_new(RPC_ACCESS_BUF, RPC_ACCESS_PENDING); /* NULL: producers write */
    s->cq_log.srv = s;
    s->cq_log.abuf = s->logq ? logq_buffer(s->logq) : malloc(RPC_ACCESS_BUF);
    for (unsigned i = 0; i < s->o.workers; i++) {
        rpc_worker *w = &s->workers[i];
        w->srv = s;
        w->abuf = s->logq ? logq_buffer(s->logq) : malloc(RPC_ACCESS_BUF); /* NULL: lines go one by one */
        pthread_cond_init(&w->cond, NULL);
        if (pthread_create(&w->thread, NULL, rpc_worker_main, w) != 0) {
            pthread_cond_destroy(&w->cond);
            free(w->abuf);
            snprintf(err, err_len, "cannot start worker thread %u: %s", i, strerror(errno));
            goto fail;
        }
        s->n_workers++;
    }
    if (pthread_create(&s->cq_thread, NULL, rpc_cq_main, s) != 0) {
        snprintf(err, err_len, "cannot start the completion-queue thread");
        goto fail;
    }
    s->started = true;
    size_t posted = 0;
    for (size_t i = 0; i < rpc_table_count(s->o.table); i++) {
        rpc_row *row = rpc_table_row(s->o.table, i);
        unsigned slots = row->def->kind != RPC_KIND_UNARY    ? RPC_SLOTS_STREAM
                         : (row->def->flags & RPC_F_INLINE) ? RPC_SLOTS_INLINE
                                                             : RPC_SLOTS_UNARY;
        for (unsigned k = 0; k < slots; k++)
            posted += rpc_post_slot(s, row) == 0;
    }
    for (unsigned k = 0; k < RPC_SLOTS_GENERIC; k++)
        posted += rpc_post_slot(s, NULL) == 0;
    log_info("rpc.started", "methods=%zu workers=%u slots=%zu", rpc_table_count(s->o.table), s->o.workers,
             posted);
    return 0;
fail:
    /* rpc_server_free shuts the server down and joins what was started. */
    return -1;
}

void rpc_server_shutdown_begin(rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->shutting_down) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->shutting_down = true;
    unsigned inflight = s->inflight;
    pthread_mutex_unlock(&s->lock);
    log_info("rpc.shutdown.begin", "inflight=%u", inflight);
    grpcw_server_shutdown(s->gs, &s->shutdown_tag);
    /* Streams have no natural end: end them now. Lock order: s->lock, then
     * each stream's own lock (rpc_on_close never holds both). */
    pthread_mutex_lock(&s->lock);
    for (rpc_ctx *c = s->open_streams; c; c = c->open_next)
        (void)rpc_stream_finish(c, RPC_UNAVAILABLE, "coffer-api is shutting down");
    pthread_mutex_unlock(&s->lock);
}

bool rpc_server_wait_drained(rpc_server *s, int64_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done || s->inflight > 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->drained, &s->lock);
        } else if (pthread_cond_timedwait(&s->drained, &s->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool done = s->shutdown_done && s->inflight == 0;
    pthread_mutex_unlock(&s->lock);
    return done;
}

void rpc_server_cancel_inflight(rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool first = !s->cancelling;
    s->cancelling = true;
    unsigned inflight = s->inflight;
    pthread_mutex_unlock(&s->lock);
    if (first)
        log_warn("rpc.shutdown.cancel", "inflight=%u", inflight);
    grpcw_server_cancel_all(s->gs);
}

unsigned rpc_server_inflight(rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->inflight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    rpc_server_shutdown_begin(s);
    if (s->started) {
        if (!rpc_server_wait_drained(s, 0)) {
            rpc_server_cancel_inflight(s);
            while (!rpc_server_wait_drained(s, 5000))
                log_warn("rpc.shutdown.waiting", "inflight=%u", rpc_server_inflight(s));
        }
    }
    pthread_mutex_lock(&s->qlock);
    s->q_stop = true;
    for (unsigned i = 0; i < s->n_workers; i++)
        pthread_cond_signal(&s->workers[i].cond);
    pthread_mutex_unlock(&s->qlock);
    for (unsigned i = 0; i < s->n_workers; i++) {
        pthread_join(s->workers[i].thread, NULL);
        pthread_cond_destroy(&s->workers[i].cond);
        free(s->workers[i].abuf);
    }
    free(s->workers);
    free(s->idle);
    if (!s->started) {
        /* No queue thread ran: drain here (slots and shutdown tag). */
        void *tag;
        bool ok;
        while (grpcw_cq_next(s->cq, &tag, &ok, 5000) == GRPCW_EV_TAG) {
            if (tag == &s->shutdown_tag)
                break;
            rpc_tag *t = tag;
            if (t->kind == RPC_TAG_REQUEST)
                rpc_ctx_destroy(t->ctx, false);
        }
    }
    grpcw_server_free(s->gs);
    grpcw_cq_shutdown(s->cq);
    if (s->started) {
        pthread_join(s->cq_thread, NULL);
    } else {
        void *tag;
        bool ok;
        while (grpcw_cq_next(s->cq, &tag, &ok, -1) != GRPCW_EV_SHUTDOWN) {
        }
    }
    free(s->cq_log.abuf); /* the queue thread has ended */
    rpc_ctx_pool_drain(s); /* every thread that returns contexts has ended */
    logq_free(s->logq);   /* writes what is still queued */
    s->logq = NULL;
    grpcw_cq_free(s->cq);
    for (size_t i = 0; i < rpc_table_count(s->o.table); i++)
        rpc_table_row(s->o.table, i)->registration = NULL;
    pthread_cond_destroy(&s->drained);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->qlock);
    log_info("rpc.stopped", NULL);
    free(s);
    grpcw_shutdown();
}

