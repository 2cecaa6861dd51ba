/* gw_ucl's parts (gw_ucl.c: calls; gw_ucl_stream.c: what arrives on one
 * stream; gw_ucl_conn.c: connections and their sockets). Private to them. */
#ifndef COFFER_GW_UCL_INTERNAL_H
#define COFFER_GW_UCL_INTERNAL_H

#include "gw_text.h"
#include "gw_ucl.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Ownership: a call (gw_upcall, the caller's) is in flight on at most
 * one stream (gw_ucl_stream, ours) at a time. A stream belongs to its
 * connection's nghttp2 session until nghttp2 closes it; it outlives its
 * call when the call ends first (deadline: the stream is "detached",
 * call NULL, and reset) and is freed when closed. Nothing is ended or
 * sent again from inside an nghttp2 callback: closed streams are queued
 * (l->closed) and finished once nghttp2 has returned, so a connection is
 * never torn down under its own session. */

#define GW_UCL_READ_BUF 16384u
#define GW_UCL_OUT_HIGH 65536u
#define GW_UCL_RETRY_MS 250        /* a target whose connect failed is not tried again sooner */
#define GW_UCL_WINDOW 16777216     /* stream and connection windows: answers never wait for WINDOW_UPDATE */
#define GW_UCL_POOL_MAX 512u       /* freed streams kept for reuse */
#define GW_UCL_MD_MAX 64u          /* response metadata entries kept per list */
#define GW_UCL_KEEP_BYTES 65536u   /* larger stream buffers are freed, not pooled */

typedef enum {
    GW_UCC_CONNECTING = 0,
    GW_UCC_READY,
    GW_UCC_DRAINING, /* GOAWAY received: no new streams */
} gw_ucc_state;

typedef struct gw_ucl_conn gw_ucl_conn;

typedef struct gw_ucl_stream {
    gw_upcall *call;              /* NULL: detached */
    gw_ucl_conn *conn;            /* NULL: the connection is gone */
    struct gw_ucl_stream *prev, *next; /* in conn->streams */
    struct gw_ucl_stream *next_q; /* in l->closed, or in the pool */
    int32_t id;
    bool headers_sent;            /* the request's HEADERS frame left */
    bool lost;                    /* the connection went before the stream closed */
    bool too_big;
    bool has_status;
    bool grpc_ct;                 /* content-type application/grpc... */
    bool got_headers;             /* the response headers arrived */
    bool in_response;             /* the header block being read is a response's (not trailers) */
    bool remote_ended;            /* the server ended the stream (END_STREAM) */
    uint32_t error_code;          /* of the RST_STREAM that closed it */
    unsigned http_status;
    rpc_code code;
    char *message;
    grpcw_md_list initial, trailing;
    size_t initial_cap, trailing_cap;
    gw_buf body;
    gw_buf req;                   /* a copy: nghttp2 may read it after the call ended */
    size_t req_off;
} gw_ucl_stream;

struct gw_ucl_conn {
    gw_ucl *l;
    size_t target;
    int fd;
    gw_ucc_state state;
    nghttp2_session *session;
    gw_ucl_stream *streams;
    size_t n_streams;
    gw_upcall *wait_head, *wait_tail; /* calls waiting for the connection */
    gw_buf out;
    size_t out_off;
    bool want_out;
    bool dirty;
    bool dead;                    /* to be closed (l->conns keeps it until then) */
    bool failed;                  /* closed by an error, not by the server's goodbye */
    gw_ucl_conn *next_dirty;
    gw_ucl_conn *next;            /* in l->conns */
    int64_t connect_deadline_us;
    char why[160];                /* why it is dead */
};

struct gw_ucl {
    gw_upstreams *u;
    int ep;
    gw_ucl_conn *active[GW_UPSTREAM_MAX]; /* where new calls to target i go */
    int64_t retry_at_us[GW_UPSTREAM_MAX];
    char last_error[GW_UPSTREAM_MAX][160];
    gw_ucl_conn *conns;
    gw_ucl_conn *dirty;
    gw_upcall *dl_head, *dl_tail; /* calls with a deadline, soonest first */
    gw_ucl_stream *closed, *closed_tail; /* closed inside nghttp2, finished after it returns */
    gw_ucl_stream *pool;
    size_t pool_n;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    size_t calls;
    size_t max_message;
    bool finishing;               /* in gw_ucl_finish_closed */
};

static inline int64_t gw_ucl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- gw_ucl_stream.c ---- */

/* Moves a list out of the stream (the result owns it from then on). */
grpcw_md_list gw_ucl_md_take(grpcw_md_list *l, size_t *cap);
/* A stream from the pool (or new), reset; NULL when memory is short. */
gw_ucl_stream *gw_ucl_stream_get(gw_ucl *l);
/* Back to the pool, wiped. */
void gw_ucl_stream_put(gw_ucl *l, gw_ucl_stream *s);
void gw_ucl_stream_destroy(gw_ucl_stream *s);
/* Takes s out of its connection's list. */
void gw_ucl_stream_unlink(gw_ucl_stream *s);
/* Queues a closed stream, to be finished once nghttp2 has returned. */
void gw_ucl_closed_add(gw_ucl *l, gw_ucl_stream *s);
gw_ucl_stream *gw_ucl_closed_take(gw_ucl *l);
/* The request body's data source (source->ptr: the stream). */
ssize_t gw_ucl_body_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user);
/* Sets the stream callbacks of every session. */
void gw_ucl_callbacks_set(nghttp2_session_callbacks *cbs);

/* ---- gw_ucl_conn.c ---- */

/* The first call waiting for cn to connect, taken off its list; NULL: none. */
gw_upcall *gw_ucl_wait_take(gw_ucl_conn *cn);
void gw_ucl_mark_dirty(gw_ucl_conn *cn);
void gw_ucl_conn_kill(gw_ucl_conn *cn, bool failed, const char *why);
void gw_ucl_connect_failed(gw_ucl_conn *cn, const char *detail);
void gw_ucl_ready(gw_ucl_conn *cn);
gw_ucl_conn *gw_ucl_connect(gw_ucl *l, size_t t);
void gw_ucl_reap(gw_ucl *l);
void gw_ucl_read(gw_ucl_conn *cn);
void gw_ucl_write(gw_ucl_conn *cn);

/* ---- gw_ucl.c ---- */

/* Sends c to its current target, connecting first when needed. */
void gw_ucl_send(gw_ucl *l, gw_upcall *c);
/* Puts c on a new stream of cn: 0, or an nghttp2 error code. */
int gw_ucl_submit(gw_ucl_conn *cn, gw_upcall *c);
/* The current target cannot be reached (detail): the next, or the end. */
void gw_ucl_next_target(gw_ucl *l, gw_upcall *c, const char *detail);

#endif
