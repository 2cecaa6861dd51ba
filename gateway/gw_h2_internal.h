/* gw_h2's parts (gw_h2.c: connections, the event loop, start and stop;
 * gw_h2_stream.c: requests on streams, replies, the nghttp2 callbacks).
 * Private to them. */
#ifndef COFFER_GW_H2_INTERNAL_H
#define COFFER_GW_H2_INTERNAL_H

#include "gw_h2.h"
#include "gw_tls.h"
#include "gw_ucl.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Threads: one event-loop thread (gw_h2_loop) owns every connection,
 * nghttp2 session and stream, and its own upstream client (gw_ucl), so
 * the pipeline's done callback runs there too and only pushes its stream
 * on a list (from another thread: with the lock, and a wake-up of the
 * loop), from which the loop submits the reply. A stream whose call is in flight
 * outlives its connection and its nghttp2 stream: when either goes, the
 * stream is detached (conn NULL or closed true) and freed when its call
 * ends. */

#define GW_H2_READ_BUF 16384u
#define GW_H2_HEADERS_MAX 16384u /* bytes of names and values per request */
#define GW_H2_OUT_HIGH 65536u    /* stop asking nghttp2 for more output above this */
#define GW_H2_LOG_LINE_MAX 2048u
#define GW_H2_POOL_MAX 512u      /* freed streams kept for reuse, with their buffers */
#define GW_H2_ADOPT_MAX 64u      /* sockets handed over and not yet taken by the loop */
#define GW_H2_HANDSHAKE_MAX_S 10 /* a TLS handshake gets the idle timeout, at most this, also when that is 0 */
#define GW_H2_IO_AGAIN GW_TLS_AGAIN

typedef enum {
    GW_H2S_READING = 0, /* headers and body arriving */
    GW_H2S_CALLING,     /* the upstream call is in flight */
    GW_H2S_SENDING,     /* reply submitted */
} gw_h2s_state;

typedef struct gw_h2_conn gw_h2_conn;

typedef struct gw_h2_stream {
    gw_preq p;                   /* first: the pipeline's callbacks get &p */
    struct gw_h2_stream *next_done;
    struct gw_h2_stream *prev, *next; /* in conn->streams (loop thread) */
    gw_h2_conn *conn;            /* NULL: the connection is gone */
    struct gw_h2 *h;
    int32_t id;
    gw_h2s_state state;
    bool closed;                 /* nghttp2 closed the stream while its call was in flight */
    gw_buf hb;                   /* header names and values, "name\0value\0"... */
    gw_kv *kv;
    size_t kv_cap;
    char method[16];
    size_t sent;                 /* reply bytes handed to nghttp2 */
    unsigned refuse;             /* the request cannot be served: its HTTP status (431, 501) */
} gw_h2_stream;

struct gw_h2_conn {
    struct gw_h2 *h;
    int fd;
    nghttp2_session *session;
    gw_h2_stream *streams;
    size_t n_streams;
    gw_buf out;                  /* bytes nghttp2 produced, not yet written */
    size_t out_off;
    bool want_out;               /* EPOLLOUT armed */
    bool dirty;                  /* in h->dirty (output to flush this turn) */
    bool closing;
    gw_tls_conn *tls;            /* NULL: cleartext h2c */
    bool handshaking;            /* TLS handshake not done: no HTTP/2 byte in or out yet */
    gw_h2_conn *next_dirty;
    gw_h2_conn *prev, *next;     /* in h->conns */
    int64_t last_active_s;
    char peer[64];
};

struct gw_h2 {
    gw_h2_options o;
    int listen_fd;
    int epoll_fd;
    int wake_fd;
    int port;
    pthread_t loop;
    bool loop_started;
    atomic_bool loop_stop;
    atomic_bool kicked;
    atomic_size_t active;        /* streams alive (with or without a connection) */
    pthread_mutex_t done_lock;
    gw_h2_stream *done_head;
    gw_h2_conn *conns;
    size_t n_conns;
    gw_h2_conn *dirty;
    nghttp2_session_callbacks *cbs;
    char log_batch[32768];
    size_t log_len;
    int64_t last_sweep_s;
    struct gw_h2_stream *pool;   /* loop thread only */
    size_t pool_n;
    int adopt[GW_H2_ADOPT_MAX];  /* gw_h2_adopt's sockets (done_lock) */
    size_t n_adopt;
    gw_ucl *ucl;                 /* the loop's own upstream connections */
    gw_tls *tls;                 /* NULL: accepted connections are h2c */
    struct gw_h2_stream *local_done; /* calls ended on the loop thread (no lock) */
};

/* The gw_h2 whose loop runs on this thread: calls that end here need no
 * lock and no wake-up. */
extern _Thread_local struct gw_h2 *gw_h2_self;

static inline int64_t gw_h2_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- gw_h2_stream.c ---- */

/* Writes the batched access-log lines (loop thread). */
void gw_h2_log_flush(struct gw_h2 *h);
/* Metrics and the access-log line of a request that ended (delivered:
 * its reply went out). */
void gw_h2_record(struct gw_h2 *h, gw_h2_stream *s, bool delivered);
gw_h2_stream *gw_h2_stream_new(gw_h2_conn *c, int32_t id);
void gw_h2_stream_destroy(gw_h2_stream *s);
/* To the pool (or freed). */
void gw_h2_stream_free(struct gw_h2 *h, gw_h2_stream *s);
/* Takes s out of its connection's list. */
void gw_h2_unlink(gw_h2_stream *s);
void gw_h2_mark_dirty(gw_h2_conn *c);
void gw_h2_wake(struct gw_h2 *h);
/* On the loop: replies of the calls that ended. */
void gw_h2_take_done(struct gw_h2 *h);
void gw_h2_callbacks_set(nghttp2_session_callbacks *cbs);

#endif
