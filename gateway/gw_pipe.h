/* gw_pipe: the gateway's request pipeline, shared by its two fronts
 * (gw_http: HTTP/1.1 on libmicrohttpd; gw_h2: HTTP/2 on nghttp2):
 *
 *   raw URI -> route (gw_routes) -> request message from the JSON body, the
 *   path variables and the query (gw_json) -> metadata (authorization,
 *   idempotency-key, x-request-id, Grpc-Metadata-*) and deadline
 *   (Grpc-Timeout or the default) -> coffer-api (gw_upstreams, failover)
 *   -> 200 with the response as JSON, or the google.rpc.Status JSON with
 *   grpc-gateway's HTTP status (gw_errors).
 *
 * The gateway's own routes: GET /healthz (the process is up), GET /readyz
 * (at least one healthy upstream, else 503), GET /metrics (Prometheus),
 * GET /openapi.json. Every reply carries X-Request-Id: the client's, when
 * it sent a valid one (1..64 of [A-Za-z0-9._:/-]), else a new one.
 *
 * A front owns its requests (gw_preq, usually inside its own struct),
 * fills in what it read, calls gw_pipe_handle and sends the reply it
 * gets, now or, after an upstream call, when the pipeline calls the
 * request's done function (on the thread of the gw_ucl that ran the
 * call: the front's own loop when it set gw_preq.ucl). */
#ifndef COFFER_GW_PIPE_H
#define COFFER_GW_PIPE_H

#include "gw_json.h"
#include "gw_metrics.h"
#include "gw_routes.h"
#include "gw_text.h"
#include "gw_types.h"
#include "gw_upstream.h"
#include "rpc_code.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_REQUEST_ID_MAX 64u

typedef struct {
    size_t max_body_bytes;       /* larger bodies: 413 */
    int64_t default_timeout_ms;  /* deadline when the client sends no Grpc-Timeout */
    int64_t max_timeout_ms;      /* Grpc-Timeout is capped to this */
    bool access_log;             /* one log line per request */
    const gw_routes *routes;     /* borrowed, like the rest below */
    gw_upstreams *upstreams;
    gw_metrics *metrics;
    gw_types *types;
    const char *openapi_json;
    size_t openapi_json_len;
} gw_pipe_options;

typedef struct gw_pipe gw_pipe;

/* A request header as received (names compared case-insensitively). */
typedef struct {
    const char *name;
    const char *value;
} gw_kv;

typedef struct {
    char name[160];
    char value[256];
} gw_hdr;

/* Reply headers beside Content-Type and X-Request-Id, as HTTP/1.1 would
 * spell them (the HTTP/2 front lowercases them and drops Connection). */
typedef struct {
    gw_hdr h[24];
    size_t n;
} gw_hdrs;

typedef struct {
    size_t slot;
    unsigned http_code;
    rpc_code grpc_code;
    const char *upstream;
    const char *route;
} gw_outcome;

typedef struct {
    grpcw_md md[GRPCW_SEND_MD_MAX];
    char keys[GRPCW_SEND_MD_MAX][128];
    size_t n;
    const char *error; /* set when a header cannot be forwarded */
} gw_mdset;

typedef struct gw_preq gw_preq;

struct gw_preq {
    /* Set by the front before gw_pipe_handle (gw_preq_start resets the
     * rest). Everything borrowed must stay valid until the reply is sent. */
    const char *method;
    char *uri;                  /* the raw request target; cut at '?' by the pipeline */
    const gw_kv *hdrs;
    size_t n_hdrs;
    gw_buf body;                /* the request body (owned, kept across reuse) */
    bool too_large;             /* the body went over max_body_bytes (and was dropped) */
    int64_t t0_us;              /* gw_pipe_now_us() when the request began */
    char peer[64];              /* the client's address, for the access log */
    void (*suspend)(gw_preq *); /* optional: called just before the upstream call starts */
    void (*done)(gw_preq *);    /* the reply after a call is ready (any thread): the pipeline's last touch */
    gw_ucl *ucl;                /* the upstream client of the front's event loop, when gw_pipe_handle runs
                                   on it (done then runs there too); NULL: the upstreams' own loop */

    /* Set by the pipeline. */
    gw_pipe *pipe;              /* of the call in flight */
    char rid[GW_REQUEST_ID_MAX + 1];
    const char *path;           /* in uri */
    gw_outcome out;
    const gw_route *route;      /* of the call in flight */
    gw_mdset md;                /* its metadata (values borrowed from hdrs) */
    gw_upcall call;
    bool call_ready;            /* call initialized */
    /* The reply. */
    unsigned code;
    const char *content_type;   /* static */
    gw_buf reply;
    gw_hdrs reply_hdrs;
};

typedef enum {
    GW_PIPE_REPLY = 0, /* the reply is in r */
    GW_PIPE_CALLING,   /* the call started: r->done comes later, exactly once */
} gw_pipe_result;

__attribute__((warn_unused_result))
gw_pipe *gw_pipe_new(char *err, size_t err_len, const gw_pipe_options *options);

/* Frees p; every call must have ended (gw_pipe_wait_calls). p may be NULL. */
void gw_pipe_free(gw_pipe *p);

/* Storage of a new gw_preq (zeroed first). */
void gw_preq_init(gw_preq *r);

/* Frees what r holds (not r). */
void gw_preq_dispose(gw_preq *r);

/* Readies r (new or reused) for a request begun now; the front then sets
 * method, uri, hdrs, body, too_large, peer, suspend, done. */
void gw_preq_start(gw_preq *r);

/* The value of request header name (case-insensitive), or NULL. */
const char *gw_preq_header(const gw_preq *r, const char *name);

/* A complete request: its reply made (GW_PIPE_REPLY), or its call
 * started (GW_PIPE_CALLING; if r->suspend is set it was called first). */
gw_pipe_result gw_pipe_handle(gw_pipe *p, gw_preq *r);

/* Sets r->rid from r's X-Request-Id, or a new one (gw_pipe_handle does;
 * for a front answering a request itself). */
void gw_pipe_request_id(gw_pipe *p, gw_preq *r);

/* Makes r's reply a google.rpc.Status JSON (fronts' own errors). */
void gw_pipe_reply_status(gw_preq *r, unsigned http_code, rpc_code code, const char *message, const gw_hdrs *hs);

/* Metrics of a request whose reply went out (or whose client was gone:
 * delivered false), and its access-log line into line (returns its
 * length; 0 when the access log is off). */
size_t gw_pipe_record(gw_pipe *p, gw_preq *r, bool delivered, char *line, size_t cap);

/* From now on requests get 503 "the gateway is shutting down". */
void gw_pipe_stop_accepting(gw_pipe *p);
bool gw_pipe_stopping(const gw_pipe *p);

/* Upstream calls in flight. */
size_t gw_pipe_calls(const gw_pipe *p);

/* Waits until no upstream call is in flight (their deadlines bound it). */
void gw_pipe_wait_calls(gw_pipe *p);

const gw_pipe_options *gw_pipe_opts(const gw_pipe *p);

int64_t gw_pipe_now_us(void);

void gw_hdr_add(gw_hdrs *hs, const char *name, const char *value);

#endif
