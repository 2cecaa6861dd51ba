/* rpc_internal: what rpc_server.c, rpc_ctx.c, rpc_ctx_pool.c and
 * rpc_stream.c share: the call context, the server, and the few functions
 * each calls of the others. Not for services: they use rpc_server.h. */
#ifndef COFFER_RPC_INTERNAL_H
#define COFFER_RPC_INTERNAL_H

#include "logq.h"
#include "grpcw.h"
#include "rpc_server.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#define RPC_ARENA_INLINE 1024u
#define RPC_WORKER_SPIN_US 50   /* an idle worker yields this long before it sleeps */
#define RPC_ACCESS_BUF 16384u   /* access-log bytes a worker batches per write */
#define RPC_ACCESS_FLUSH_US 20000 /* and for at most this long */
#define RPC_ACCESS_PENDING 64u  /* batches queued for the log writer before producers write themselves */
#define RPC_CTX_POOL_MAX 256u   /* finished call contexts kept for the next requests */

typedef enum { RPC_TAG_REQUEST, RPC_TAG_CLOSE, RPC_TAG_SEND, RPC_TAG_RECV } rpc_tag_kind;
typedef enum { RPC_JOB_START, RPC_JOB_MESSAGE, RPC_JOB_HALF_CLOSE } rpc_job_kind;

typedef struct {
    rpc_tag_kind kind;
    rpc_ctx *ctx;
} rpc_tag;

/* A queued stream write: a packed message, or the final status. */
typedef struct rpc_out {
    struct rpc_out *next;
    bool is_status;
    rpc_code code;
    char details[RPC_MESSAGE_MAX];
    size_t len;
    uint8_t data[];
} rpc_out;

typedef struct rpc_chunk {
    struct rpc_chunk *next;
    size_t used, cap;
    alignas(max_align_t) uint8_t data[];
} rpc_chunk;

struct rpc_ctx {
    rpc_server *srv;
    rpc_row *row;               /* NULL: a path not in the table */
    grpcw_call *call;
    rpc_tag t_request, t_close, t_send, t_recv;
    atomic_int refs;
    rpc_ctx *job_next;
    rpc_job_kind job;

    int64_t t0_us;              /* when the call arrived */
    int64_t deadline_ms;
    char rid[RPC_REQUEST_ID_MAX + 1];
    auth_caller caller;
    bool authenticated;
    const char *idem;
    size_t idem_len;
    atomic_bool cancelled;      /* close reported cancelled, or server cancelled all */
    size_t bytes_in, bytes_out;
    int64_t retry_after_ms;      /* > 0: RetryInfo goes with a failure status */
    const uint8_t *packed_reply; /* unary: rpc_ctx_reply_packed's bytes (arena), sent instead of packing */
    size_t packed_reply_len;

    rpc_code code;              /* the status sent (for the access log) */
    char msg[RPC_MESSAGE_MAX];

    size_t arena_used;
    rpc_chunk *chunks;

    bool is_stream;
    bool watching;              /* the recv_close "is it over?" notice is posted */
    bool log_on_send;           /* unary: the access log waits for the reply's completion */
    /* streams (under lock) */
    rpc_out *out_head, *out_tail;
    bool send_busy, md_sent, finished, over;
    void (*on_done)(void *);
    void *on_done_arg;
    rpc_ctx *open_prev, *open_next;

    /* Kept when the context is reused (rpc_ctx_new clears what is above). */
    rpc_ctx *pool_next;         /* in the server's pool of idle contexts */
    pthread_mutex_t lock;
    alignas(max_align_t) uint8_t arena[RPC_ARENA_INLINE];
};

/* A worker thread. Idle workers sleep on their own condition variable in a
 * LIFO stack, so the most recently busy (cache-warm) thread is woken
 * first, and nobody is woken while an awake worker is about to look at
 * the queue anyway: under load a few hot threads take call after call
 * without sleeping, while the rest stay available for handlers that
 * block on PostgreSQL. */
typedef struct {
    rpc_server *srv;
    pthread_t thread;
    pthread_cond_t cond;
    bool woken;
    char *abuf;                 /* access-log lines waiting for one write */
    size_t alen;
    int64_t afirst_us;          /* when the oldest of them was logged (rpc_coarse_now_us) */
} rpc_worker;

struct rpc_server {
    rpc_stats unknown_stats;    /* calls to methods not in the table */
    rpc_server_options o;
    grpcw_cq *cq;
    grpcw_server *gs;
    int port;
    char rid_prefix[9];
    atomic_uint_fast64_t rid_counter;

    pthread_t cq_thread;
    rpc_worker *workers;
    rpc_worker cq_log;          /* the queue thread's access-log batch (abuf, alen, afirst_us) */
    logq *logq;                 /* the access log's writer thread; NULL: producers write */
    unsigned n_workers;         /* started */
    bool started;

    pthread_mutex_t qlock;      /* the job queue and the idle stack */
    rpc_ctx *q_head, *q_tail;
    unsigned q_len;
    bool q_stop;
    rpc_worker **idle;          /* sleeping workers, most recent last */
    unsigned n_idle;
    unsigned n_seeking;         /* awake workers not in a handler: they will look at the queue */
    atomic_bool q_nonempty;     /* q_head != NULL, for spinning workers */

    /* Idle call contexts (each with its emptied grpcw_call): a request
     * slot takes one instead of allocating and initializing a context, a
     * call and a mutex per call. */
    pthread_mutex_t pool_lock;
    rpc_ctx *pool;
    unsigned n_pool;

    pthread_mutex_t lock;       /* shutdown state, open streams, live calls */
    pthread_cond_t drained;
    bool shutting_down;
    bool shutdown_done;
    bool cancelling;
    unsigned inflight;          /* calls taken, not yet released */
    rpc_ctx *open_streams;
    int shutdown_tag;           /* address used as the shutdown tag */
};


/* rpc_ctx.c */
int64_t rpc_now_us(void);
/* CLOCK_MONOTONIC at the kernel tick (a few ms), a third of the price:
 * for the access-log flush deadline, checked after every queue event. */
int64_t rpc_coarse_now_us(void);
void rpc_arena_reset(rpc_ctx *c);
void rpc_clean_line(char *s);
void rpc_attach_retry_info(rpc_ctx *c, rpc_code code);

/* rpc_ctx_pool.c */
/* A cleared context for a request slot of row (NULL: generic), or NULL
 * when memory is short. One reference. */
rpc_ctx *rpc_ctx_new(rpc_server *s, rpc_row *row);
/* Empties c and returns it to the pool (freed when the pool is full);
 * counted: it was a call in flight (s->inflight drops first). */
void rpc_ctx_destroy(rpc_ctx *c, bool counted);
void rpc_ctx_ref(rpc_ctx *c);
void rpc_ctx_unref(rpc_ctx *c); /* the last reference destroys, counted */
/* Frees the pooled contexts, once no thread can return one any more. */
void rpc_ctx_pool_drain(rpc_server *s);

/* rpc_server.c */
rpc_code rpc_admit(rpc_ctx *c);
rpc_code rpc_unpack(rpc_ctx *c, ProtobufCMessage **req, const uint8_t *data, size_t len);
void rpc_rid_md(const rpc_ctx *c, grpcw_md *md);
void rpc_access_log(rpc_ctx *c, const char *method);

/* rpc_stream.c */
void rpc_stream_pump_locked(rpc_ctx *c);
void rpc_run_stream_job(rpc_ctx *c, rpc_job_kind job);

#endif
