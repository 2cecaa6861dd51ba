/* rpc_ctx: what a handler gets (rpc_server.h, "what handlers get"): the
 * deadline and cancellation, who calls, the request id, the database, an
 * arena for the response, and the status message. */
#include "rpc_internal.h"

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "log.h"

#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t rpc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rpc_coarse_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- handler API ---------------------------------------------------------------- */

int64_t rpc_ctx_deadline_ms(const rpc_ctx *c)
{
    return c->deadline_ms;
}

int64_t rpc_ctx_remaining_ms(const rpc_ctx *c)
{
    if (c->deadline_ms == INT64_MAX)
        return INT64_MAX;
    return c->deadline_ms - rpc_now_us() / 1000;
}

/* Posts the call's recv_close notice, which completes as soon as the call
 * is cancelled (by the client, its deadline or the server). Streams post
 * it when they arrive; unary calls on the first rpc_ctx_should_stop or
 * database borrow, so the handlers that answer from memory in
 * microseconds (GetInfo, Health/Check) do not pay for an extra batch and
 * completion: their final batch carries the close instead. Worker thread. */
static void rpc_ctx_watch(rpc_ctx *c)
{
    if (c->watching)
        return;
    c->watching = true;
    rpc_ctx_ref(c);
    if (grpcw_call_recv_close(c->call, &c->t_close) != 0) {
        c->watching = false;
        atomic_fetch_sub(&c->refs, 1); /* the worker holds the job's reference */
    }
}

bool rpc_ctx_should_stop(rpc_ctx *c)
{
    rpc_ctx_watch(c);
    return atomic_load_explicit(&c->cancelled, memory_order_acquire) || rpc_ctx_remaining_ms(c) <= 0;
}

const char *rpc_ctx_request_id(const rpc_ctx *c)
{
    return c->rid;
}

const auth_caller *rpc_ctx_caller(const rpc_ctx *c)
{
    return &c->caller;
}

const char *rpc_ctx_method(const rpc_ctx *c)
{
    return c->row ? c->row->path : "";
}

const char *rpc_ctx_idempotency_key(const rpc_ctx *c, size_t *len)
{
    *len = c->idem_len;
    return c->idem;
}

db_pool *rpc_ctx_db(const rpc_ctx *c)
{
    return c->srv->o.db;
}

void *rpc_ctx_service_arg(const rpc_ctx *c)
{
    return c->row ? c->row->service_arg : NULL;
}

void *rpc_ctx_alloc(rpc_ctx *c, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    if (n <= sizeof c->arena - c->arena_used) {
        void *p = c->arena + c->arena_used;
        c->arena_used += n;
        memset(p, 0, n);
        return p;
    }
    rpc_chunk *k = c->chunks;
    if (!k || n > k->cap - k->used) {
        size_t cap = n > 4096 ? n : 4096;
        k = malloc(sizeof *k + cap);
        if (!k)
            return NULL;
        k->used = 0;
        k->cap = cap;
        k->next = c->chunks;
        c->chunks = k;
    }
    void *p = k->data + k->used;
    k->used += n;
    memset(p, 0, n);
    return p;
}

char *rpc_ctx_strdup(rpc_ctx *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = rpc_ctx_alloc(c, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Keeps a status message on one line of printable text. */
void rpc_clean_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            *s = ' ';
}

rpc_code rpc_ctx_fail(rpc_ctx *c, rpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    rpc_clean_line(c->msg);
    return code;
}

rpc_code rpc_ctx_fail_retry(rpc_ctx *c, rpc_code code, int64_t retry_after_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    rpc_clean_line(c->msg);
    c->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
    return code;
}

/* The google.rpc.Status trailer for a failure with a retry delay. Best
 * effort: without memory the status goes without details. */
void rpc_attach_retry_info(rpc_ctx *c, rpc_code code)
{
    if (code == RPC_OK || c->retry_after_ms <= 0)
        return;
    Google__Protobuf__Duration delay;
    google__protobuf__duration__init(&delay);
    delay.seconds = c->retry_after_ms / 1000;
    delay.nanos = (int32_t)(c->retry_after_ms % 1000) * 1000000;
    Google__Rpc__RetryInfo info;
    google__rpc__retry_info__init(&info);
    info.retry_delay = &delay;
    uint8_t info_buf[64];
    size_t info_len = google__rpc__retry_info__get_packed_size(&info);
    if (info_len > sizeof info_buf)
        return;
    google__rpc__retry_info__pack(&info, info_buf);
    static char retry_info_type[] = "type.googleapis.com/google.rpc.RetryInfo";
    Google__Protobuf__Any any;
    google__protobuf__any__init(&any);
    any.type_url = retry_info_type;
    any.value.data = info_buf;
    any.value.len = info_len;
    Google__Protobuf__Any *details[1] = {&any};
    Google__Rpc__Status st;
    google__rpc__status__init(&st);
    st.code = (int32_t)code;
    st.message = c->msg;
    st.n_details = 1;
    st.details = details;
    uint8_t buf[RPC_MESSAGE_MAX + 160];
    size_t len = google__rpc__status__get_packed_size(&st);
    if (len > sizeof buf)
        return;
    google__rpc__status__pack(&st, buf);
    (void)grpcw_call_set_status_details_bin(c->call, buf, len);
}

PGconn *rpc_ctx_db_acquire(rpc_ctx *c, rpc_code *code)
{
    rpc_ctx_watch(c);
    int64_t left = rpc_ctx_remaining_ms(c);
    unsigned timeout = left == INT64_MAX ? 5000u : left <= 0 ? 0u : left > 60000 ? 60000u : (unsigned)left;
    if (left != INT64_MAX && left <= 0) {
        *code = rpc_ctx_fail(c, RPC_DEADLINE_EXCEEDED, "the deadline passed before the database was reached");
        return NULL;
    }
    db_pool_err err;
    char why[200];
    PGconn *conn = db_pool_acquire(c->srv->o.db, timeout, &err, why, sizeof why);
    if (conn)
        return conn;
    if (err == DB_POOL_EXHAUSTED && rpc_ctx_remaining_ms(c) <= 0)
        *code = rpc_ctx_fail(c, RPC_DEADLINE_EXCEEDED, "the deadline passed waiting for a database connection");
    else if (err == DB_POOL_EXHAUSTED)
        *code = rpc_ctx_fail(c, RPC_UNAVAILABLE, "every database connection is busy; retry with backoff");
    else
        *code = rpc_ctx_fail(c, RPC_UNAVAILABLE, "the database is unavailable; retry with backoff");
    log_warn("rpc.db_unavailable", "reason=%s", err == DB_POOL_EXHAUSTED ? "pool_exhausted" : "unreachable");
    return NULL;
}

void rpc_ctx_db_release(rpc_ctx *c, PGconn *conn)
{
    db_pool_release(c->srv->o.db, conn);
}


/* Wiped, not only released: answers hold one-time secrets (a new API key,
 * a webhook secret) and contexts are pooled, so the bytes would otherwise
 * stay readable until a later call overwrote them. The cost is a memset of
 * what the call used. */
void rpc_arena_reset(rpc_ctx *c)
{
    while (c->chunks) {
        rpc_chunk *k = c->chunks;
        c->chunks = k->next;
        sodium_memzero(k->data, k->used);
        free(k);
    }
    sodium_memzero(c->arena, c->arena_used);
    c->arena_used = 0;
}

rpc_code rpc_ctx_reply_packed(rpc_ctx *c, const uint8_t *data, size_t len)
{
    uint8_t *copy = rpc_ctx_alloc(c, len ? len : 1);
    if (!copy)
        return rpc_ctx_fail(c, RPC_RESOURCE_EXHAUSTED, "out of memory");
    if (len)
        memcpy(copy, data, len);
    c->packed_reply = copy;
    c->packed_reply_len = len;
    return RPC_OK;
}
