/* rpc_ctx_pool: the life of call contexts. Each request slot takes one
 * from the server's pool of idle contexts (or allocates one), references
 * keep it while batches or jobs use it, and the last reference returns it
 * emptied to the pool: no allocation, call storage or mutex set-up per
 * call. */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

/* An idle context from the pool, or NULL when it is empty. */
static rpc_ctx *rpc_pool_take(rpc_server *s)
{
    pthread_mutex_lock(&s->pool_lock);
    rpc_ctx *c = s->pool;
    if (c) {
        s->pool = c->pool_next;
        s->n_pool--;
    }
    pthread_mutex_unlock(&s->pool_lock);
    return c;
}

/* Frees a context for good: its call storage, its mutex and itself. */
static void rpc_ctx_free(rpc_ctx *c)
{
    grpcw_call_free(c->call);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

rpc_ctx *rpc_ctx_new(rpc_server *s, rpc_row *row)
{
    rpc_ctx *c = rpc_pool_take(s);
    grpcw_call *call = c ? c->call : NULL;
    if (!c) {
        /* The inline arena needs no zeroing: rpc_ctx_alloc zeroes what it hands out. */
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
        call = grpcw_call_new();
        if (!call || pthread_mutex_init(&c->lock, NULL) != 0) {
            grpcw_call_free(call);
            free(c);
            return NULL;
        }
    }
    memset(c, 0, offsetof(rpc_ctx, pool_next));
    c->call = call;
    c->pool_next = NULL;
    c->srv = s;
    c->row = row;
    c->is_stream = row && row->def->kind != RPC_KIND_UNARY;
    c->t_request = (rpc_tag){RPC_TAG_REQUEST, c};
    c->t_close = (rpc_tag){RPC_TAG_CLOSE, c};
    c->t_send = (rpc_tag){RPC_TAG_SEND, c};
    c->t_recv = (rpc_tag){RPC_TAG_RECV, c};
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancelled, false);
    c->deadline_ms = INT64_MAX;
    return c;
}

void rpc_ctx_destroy(rpc_ctx *c, bool counted)
{
    rpc_server *s = c->srv;
    if (counted) {
        /* Before the core call is released: the server's shutdown tag
         * (all calls released) must never come before this count drops. */
        pthread_mutex_lock(&s->lock);
        s->inflight--;
        pthread_cond_broadcast(&s->drained);
        pthread_mutex_unlock(&s->lock);
    }
    rpc_arena_reset(c);
    while (c->out_head) {
        rpc_out *o = c->out_head;
        c->out_head = o->next;
        free(o);
    }
    /* Emptied before it is pooled: another thread may take it at once.
     * (The server outlives this: the last reference is always dropped on
     * the queue thread or a worker, both joined before the server is
     * freed, and rpc_server_free empties the pool after that.) */
    grpcw_call_reset(c->call);
    pthread_mutex_lock(&s->pool_lock);
    bool keep = s->n_pool < RPC_CTX_POOL_MAX;
    if (keep) {
        c->pool_next = s->pool;
        s->pool = c;
        s->n_pool++;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (!keep)
        rpc_ctx_free(c);
}

void rpc_ctx_ref(rpc_ctx *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void rpc_ctx_unref(rpc_ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        rpc_ctx_destroy(c, true);
}

void rpc_ctx_pool_drain(rpc_server *s)
{
    for (rpc_ctx *c; (c = rpc_pool_take(s)) != NULL;)
        rpc_ctx_free(c);
}
