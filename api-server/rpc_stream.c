/* rpc_stream: server and bidi streams. Writes are queued (from any thread)
 * and sent one at a time, the completion-queue thread starting the next;
 * the status goes last. Each request message runs the row's stream
 * handler on a worker; a bidi stream reads its next message only after
 * the handler returned. */
#include "rpc_internal.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- streams ------------------------------------------------------------------------------------ */

/* With c->lock held: starts the next queued write if none is in flight. */
void rpc_stream_pump_locked(rpc_ctx *c)
{
    if (c->send_busy || !c->out_head || c->over)
        return;
    rpc_out *o = c->out_head;
    c->out_head = o->next;
    if (!c->out_head)
        c->out_tail = NULL;
    unsigned what = 0;
    grpcw_md md;
    size_t n_md = 0;
    if (!c->md_sent) {
        what |= GRPCW_SEND_INITIAL_MD;
        rpc_rid_md(c, &md);
        n_md = 1;
        c->md_sent = true;
    }
    if (o->is_status) {
        what |= GRPCW_SEND_STATUS;
    } else {
        uint8_t *buf = grpcw_call_message_buffer(c->call, o->len);
        if (buf)
            memcpy(buf, o->data, o->len);
        what |= GRPCW_SEND_MESSAGE;
        c->bytes_out += o->len;
    }
    c->send_busy = true;
    rpc_ctx_ref(c);
    if (grpcw_call_send(c->call, &c->t_send, what, &md, n_md, o->code,
                        o->is_status && o->code != RPC_OK ? o->details : NULL) != 0) {
        c->send_busy = false;
        atomic_fetch_sub(&c->refs, 1); /* the caller holds another reference */
    }
    free(o);
}

static int rpc_stream_queue(rpc_ctx *c, rpc_out *o)
{
    pthread_mutex_lock(&c->lock);
    if (c->finished || c->over) {
        pthread_mutex_unlock(&c->lock);
        free(o);
        return -1;
    }
    if (o->is_status) {
        c->finished = true;
        c->code = o->code;
        snprintf(c->msg, sizeof c->msg, "%s", o->details);
    }
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    rpc_stream_pump_locked(c);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int rpc_stream_send(rpc_ctx *c, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > c->srv->o.max_message_bytes) {
        log_warn("rpc.stream.message_too_large", "method=%s bytes=%zu", rpc_ctx_method(c), len);
        return -1;
    }
    rpc_out *o = calloc(1, sizeof *o + len);
    if (!o)
        return -1;
    o->len = len;
    protobuf_c_message_pack(msg, o->data);
    return rpc_stream_queue(c, o);
}

__attribute__((format(printf, 3, 0)))
static int rpc_stream_finishv(rpc_ctx *c, rpc_code code, const char *fmt, va_list ap)
{
    rpc_out *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    o->is_status = true;
    o->code = code;
    if (fmt)
        vsnprintf(o->details, sizeof o->details, fmt, ap);
    rpc_clean_line(o->details);
    return rpc_stream_queue(c, o);
}

int rpc_stream_finish(rpc_ctx *c, rpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = rpc_stream_finishv(c, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int rpc_stream_finish_msg(rpc_ctx *c, rpc_code code)
{
    return rpc_stream_finish(c, code, "%s", c->msg[0] ? c->msg : rpc_code_name(code));
}

int rpc_stream_on_done(rpc_ctx *c, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&c->lock);
    if (c->over) {
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    c->on_done = fn;
    c->on_done_arg = arg;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Runs the stream handler on one request message. */
static void rpc_stream_deliver(rpc_ctx *c, const uint8_t *data, size_t len)
{
    ProtobufCMessage *req = NULL;
    c->msg[0] = '\0';
    rpc_code code = rpc_unpack(c, &req, data, len);
    if (code == RPC_OK)
        code = c->row->def->stream(c, req);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    rpc_arena_reset(c);
    if (code != RPC_OK)
        (void)rpc_stream_finish_msg(c, code);
}

static bool rpc_stream_is_finished(rpc_ctx *c)
{
    pthread_mutex_lock(&c->lock);
    bool f = c->finished || c->over;
    pthread_mutex_unlock(&c->lock);
    return f;
}

static void rpc_stream_read_next(rpc_ctx *c)
{
    if (rpc_stream_is_finished(c))
        return;
    rpc_ctx_ref(c);
    if (grpcw_call_recv_message(c->call, &c->t_recv) != 0)
        rpc_ctx_unref(c);
}

void rpc_run_stream_job(rpc_ctx *c, rpc_job_kind job)
{
    switch (job) {
    case RPC_JOB_START: {
        if (rpc_stream_is_finished(c))
            return; /* ended while it waited (shutdown) */
        rpc_code code = rpc_admit(c);
        if (code != RPC_OK) {
            (void)rpc_stream_finish_msg(c, code);
            return;
        }
        if (c->row->def->kind == RPC_KIND_SERVER_STREAM) {
            const uint8_t *data;
            size_t len;
            int got = grpcw_call_first_message(c->call, &data, &len);
            if (got < 0) {
                (void)rpc_stream_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory reading the request");
                return;
            }
            if (got == 0) {
                if (grpcw_call_failed_before_message(c->call))
                    (void)rpc_stream_finish(c, RPC_CANCELLED, "the call ended before its request arrived");
                else
                    (void)rpc_stream_finish(c, RPC_INVALID_ARGUMENT, "the call carries no request message");
                return;
            }
            rpc_stream_deliver(c, data, len);
        } else {
            rpc_stream_read_next(c);
        }
        return;
    }
    case RPC_JOB_MESSAGE: {
        const uint8_t *data;
        size_t len;
        int got = grpcw_call_received(c->call, &data, &len);
        if (got < 0) {
            (void)rpc_stream_finish(c, RPC_RESOURCE_EXHAUSTED, "out of memory reading a message");
            return;
        }
        rpc_stream_deliver(c, data, len);
        rpc_stream_read_next(c);
        return;
    }
    case RPC_JOB_HALF_CLOSE:
        (void)rpc_stream_finish(c, RPC_OK, NULL);
        return;
    }
}

