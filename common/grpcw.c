#include "grpcw.h"

#include "log.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/slice_buffer.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Our codes are the wire values; make sure the core agrees. */
_Static_assert((int)RPC_OK == (int)GRPC_STATUS_OK, "rpc_code mismatch");
_Static_assert((int)RPC_CANCELLED == (int)GRPC_STATUS_CANCELLED, "rpc_code mismatch");
_Static_assert((int)RPC_INVALID_ARGUMENT == (int)GRPC_STATUS_INVALID_ARGUMENT, "rpc_code mismatch");
_Static_assert((int)RPC_DEADLINE_EXCEEDED == (int)GRPC_STATUS_DEADLINE_EXCEEDED, "rpc_code mismatch");
_Static_assert((int)RPC_PERMISSION_DENIED == (int)GRPC_STATUS_PERMISSION_DENIED, "rpc_code mismatch");
_Static_assert((int)RPC_RESOURCE_EXHAUSTED == (int)GRPC_STATUS_RESOURCE_EXHAUSTED, "rpc_code mismatch");
_Static_assert((int)RPC_UNIMPLEMENTED == (int)GRPC_STATUS_UNIMPLEMENTED, "rpc_code mismatch");
_Static_assert((int)RPC_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE, "rpc_code mismatch");
_Static_assert((int)RPC_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED, "rpc_code mismatch");

/* ---- process ------------------------------------------------------------ */

static void grpcw_log(gpr_log_func_args *a)
{
    log_level level = LOG_DEBUG;
    if (a->severity == GPR_LOG_SEVERITY_ERROR)
        level = LOG_WARN;
    else if (a->severity == GPR_LOG_SEVERITY_INFO)
        level = LOG_INFO;
    const char *file = a->file ? strrchr(a->file, '/') : NULL;
    char msg[1024];
    log_event(level, "grpc.core", "src=%s:%d msg=%s", file ? file + 1 : (a->file ? a->file : "?"),
              a->line, log_quote(msg, sizeof msg, a->message ? a->message : ""));
}

void grpcw_init(void)
{
    gpr_set_log_function(grpcw_log);
    grpc_init();
}

void grpcw_shutdown(void)
{
    grpc_shutdown_blocking();
}

const char *grpcw_version(void)
{
    return grpc_version_string();
}

static int64_t grpcw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static gpr_timespec grpcw_deadline_in(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* Reads a whole byte buffer (decompressing it) into *out. */
static int grpcw_read_all(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return -1;
    *out = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return 0;
}

/* ---- completion queue ----------------------------------------------------- */

struct grpcw_cq {
    grpc_completion_queue *cq;
};

grpcw_cq *grpcw_cq_new(void)
{
    grpcw_cq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->cq = grpc_completion_queue_create_for_next(NULL);
    if (!q->cq) {
        free(q);
        return NULL;
    }
    return q;
}

grpcw_event grpcw_cq_next(grpcw_cq *q, void **tag, bool *ok, int timeout_ms)
{
    grpc_event ev = grpc_completion_queue_next(q->cq, grpcw_deadline_in(timeout_ms), NULL);
    switch (ev.type) {
    case GRPC_OP_COMPLETE:
        *tag = ev.tag;
        *ok = ev.success != 0;
        return GRPCW_EV_TAG;
    case GRPC_QUEUE_SHUTDOWN:
        return GRPCW_EV_SHUTDOWN;
    case GRPC_QUEUE_TIMEOUT:
    default:
        return GRPCW_EV_TIMEOUT;
    }
}

void grpcw_cq_shutdown(grpcw_cq *q)
{
    grpc_completion_queue_shutdown(q->cq);
}

void grpcw_cq_free(grpcw_cq *q)
{
    if (!q)
        return;
    grpc_completion_queue_destroy(q->cq);
    free(q);
}

/* ---- server ---------------------------------------------------------------- */

struct grpcw_method {
    void *handle;
    bool payload;
    grpcw_method *next;
};

struct grpcw_server {
    grpc_server *srv;
    grpcw_cq *cq;
    grpcw_method *methods;
};

/* Channel-arg keys are `char *` in the core's struct; keep writable copies. */
static char grpcw_k_max_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
static char grpcw_k_max_send[] = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
static char grpcw_k_ka_time[] = GRPC_ARG_KEEPALIVE_TIME_MS;
static char grpcw_k_ka_timeout[] = GRPC_ARG_KEEPALIVE_TIMEOUT_MS;
static char grpcw_k_ka_permit[] = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS;
static char grpcw_k_min_ping[] = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS;
static char grpcw_k_reuseport[] = GRPC_ARG_ALLOW_REUSEPORT;
static char grpcw_k_streams[] = GRPC_ARG_MAX_CONCURRENT_STREAMS;
static char grpcw_k_channelz[] = GRPC_ARG_ENABLE_CHANNELZ;
static char grpcw_k_retries[] = GRPC_ARG_ENABLE_RETRIES;
static char grpcw_k_bdp[] = GRPC_ARG_HTTP2_BDP_PROBE;
static char grpcw_k_ssl_name[] = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;

static int grpcw_clamp_int(int64_t v)
{
    return v > INT_MAX ? INT_MAX : v < 0 ? 0 : (int)v;
}

static void grpcw_arg_int(grpc_arg *a, char *key, int64_t v)
{
    memset(a, 0, sizeof *a);
    a->type = GRPC_ARG_INTEGER;
    a->key = key;
    a->value.integer = grpcw_clamp_int(v);
}

grpcw_server *grpcw_server_new(const grpcw_server_options *o, grpcw_cq *cq)
{
    if (!o || !cq || o->max_message_bytes == 0 || o->keepalive_time_ms <= 0 ||
        o->keepalive_timeout_ms <= 0)
        return NULL;
    grpcw_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    grpc_arg args[9];
    size_t n = 0;
    grpcw_arg_int(&args[n++], grpcw_k_max_recv, (int64_t)o->max_message_bytes);
    grpcw_arg_int(&args[n++], grpcw_k_max_send, (int64_t)o->max_message_bytes);
    grpcw_arg_int(&args[n++], grpcw_k_ka_time, o->keepalive_time_ms);
    grpcw_arg_int(&args[n++], grpcw_k_ka_timeout, o->keepalive_timeout_ms);
    grpcw_arg_int(&args[n++], grpcw_k_ka_permit, o->keepalive_permit_without_calls ? 1 : 0);
    grpcw_arg_int(&args[n++], grpcw_k_min_ping, o->keepalive_min_ping_interval_ms);
    grpcw_arg_int(&args[n++], grpcw_k_reuseport, 0);
    /* Nothing serves channelz: without it the core keeps no per-server and
     * per-socket call counters and traces (work on every call). */
    grpcw_arg_int(&args[n++], grpcw_k_channelz, 0);
    if (o->max_concurrent_streams > 0)
        grpcw_arg_int(&args[n++], grpcw_k_streams, o->max_concurrent_streams);
    grpc_channel_args ca = {n, args};
    s->srv = grpc_server_create(&ca, NULL);
    if (!s->srv) {
        free(s);
        return NULL;
    }
    s->cq = cq;
    grpc_server_register_completion_queue(s->srv, cq->cq, NULL);
    return s;
}

int grpcw_server_add_listener(grpcw_server *s, int *port, char *err, size_t err_len,
                              const char *addr, const char *cert_pem, const char *key_pem)
{
    grpc_server_credentials *creds;
    *port = 0;
    if ((cert_pem == NULL) != (key_pem == NULL)) {
        snprintf(err, err_len, "TLS needs both a certificate and a key");
        return -1;
    }
    if (cert_pem) {
        grpc_ssl_pem_key_cert_pair pair = {key_pem, cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(NULL, &pair, 1,
                                                      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    if (!creds) {
        snprintf(err, err_len, "the core refused the %s credentials", cert_pem ? "TLS" : "plaintext");
        return -1;
    }
    int bound = grpc_server_add_http2_port(s->srv, addr, creds);
    grpc_server_credentials_release(creds);
    if (bound <= 0) {
        snprintf(err, err_len, "cannot listen on %s (address in use, not local, or malformed)", addr);
        return -1;
    }
    *port = strncmp(addr, "unix:", 5) == 0 ? 0 : bound;
    return 0;
}

grpcw_method *grpcw_server_register_method(grpcw_server *s, const char *path, bool read_first_message)
{
    grpcw_method *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->payload = read_first_message;
    m->handle = grpc_server_register_method(
        s->srv, path, NULL,
        read_first_message ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
    if (!m->handle) {
        free(m);
        return NULL;
    }
    m->next = s->methods;
    s->methods = m;
    return m;
}

void grpcw_server_start(grpcw_server *s)
{
    grpc_server_start(s->srv);
}

void grpcw_server_shutdown(grpcw_server *s, void *tag)
{
    grpc_server_shutdown_and_notify(s->srv, s->cq->cq, tag);
}

void grpcw_server_cancel_all(grpcw_server *s)
{
    grpc_server_cancel_all_calls(s->srv);
}

void grpcw_server_free(grpcw_server *s)
{
    if (!s)
        return;
    grpc_server_destroy(s->srv);
    while (s->methods) {
        grpcw_method *m = s->methods;
        s->methods = m->next;
        free(m);
    }
    free(s);
}

/* ---- server calls ----------------------------------------------------------- */

struct grpcw_call {
    grpc_call *call;
    bool generic;
    char method[256];
    grpc_call_details details;   /* generic requests */
    gpr_timespec deadline;       /* registered requests */
    grpc_metadata_array req_md;
    grpc_byte_buffer *first;     /* initial payload (registered, read_first_message) */
    grpc_slice first_slice;
    bool first_read;
    grpc_byte_buffer *recv;      /* last grpcw_call_recv_message result */
    grpc_slice recv_slice;
    bool recv_read;
    int cancelled;
    /* The send batch in flight (or prepared) and what it references. */
    grpc_slice send_slice;
    bool send_slice_set;
    grpc_byte_buffer *send_bb;   /* kept across sends and reuses of the call (see grpcw_call_send) */
    grpc_metadata send_md[GRPCW_SEND_MD_MAX];
    size_t n_send_md;
    grpc_slice details_slice;
    bool details_set;
    grpc_metadata trailer;       /* grpc-status-details-bin for the next status */
    bool trailer_set;
};

grpcw_call *grpcw_call_new(void)
{
    grpcw_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    grpc_metadata_array_init(&c->req_md);
    grpc_call_details_init(&c->details);
    return c;
}

static void grpcw_call_release_recv(grpcw_call *c)
{
    if (c->recv_read)
        grpc_slice_unref(c->recv_slice);
    c->recv_read = false;
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    c->recv = NULL;
}

void grpcw_call_send_done(grpcw_call *c)
{
    if (c->send_slice_set)
        grpc_slice_unref(c->send_slice);
    c->send_slice_set = false;
    if (c->send_bb) /* empty it: what the core did not take (a refused batch) */
        grpc_slice_buffer_reset_and_unref(&c->send_bb->data.raw.slice_buffer);
    for (size_t i = 0; i < c->n_send_md; i++) {
        grpc_slice_unref(c->send_md[i].key);
        grpc_slice_unref(c->send_md[i].value);
    }
    c->n_send_md = 0;
    if (c->details_set)
        grpc_slice_unref(c->details_slice);
    c->details_set = false;
    if (c->trailer_set) {
        grpc_slice_unref(c->trailer.key);
        grpc_slice_unref(c->trailer.value);
    }
    c->trailer_set = false;
}

int grpcw_call_set_status_details_bin(grpcw_call *c, const uint8_t *data, size_t len)
{
    if (c->trailer_set) {
        grpc_slice_unref(c->trailer.key);
        grpc_slice_unref(c->trailer.value);
    }
    memset(&c->trailer, 0, sizeof c->trailer);
    c->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
    c->trailer.value = grpc_slice_from_copied_buffer((const char *)data, len);
    c->trailer_set = true;
    return 0;
}

/* Releases everything the call holds (the core call last). The request
 * details were only handed to the core by a generic request: destroying
 * untouched ones would cost an ExecCtx and two slice unrefs per call. */
static void grpcw_call_release(grpcw_call *c)
{
    grpcw_call_send_done(c);
    grpcw_call_release_recv(c);
    if (c->first_read)
        grpc_slice_unref(c->first_slice);
    c->first_read = false;
    if (c->first)
        grpc_byte_buffer_destroy(c->first);
    c->first = NULL;
    grpc_metadata_array_destroy(&c->req_md);
    if (c->generic)
        grpc_call_details_destroy(&c->details);
    if (c->call)
        grpc_call_unref(c->call);
    c->call = NULL;
}

void grpcw_call_free(grpcw_call *c)
{
    if (!c)
        return;
    grpcw_call_release(c);
    if (c->send_bb)
        grpc_byte_buffer_destroy(c->send_bb);
    free(c);
}

void grpcw_call_reset(grpcw_call *c)
{
    grpcw_call_release(c);
    grpc_metadata_array_init(&c->req_md);
    if (c->generic)
        grpc_call_details_init(&c->details);
    c->generic = false;
    c->method[0] = '\0';
    memset(&c->deadline, 0, sizeof c->deadline);
    c->cancelled = 0;
}

int grpcw_server_request(grpcw_server *s, grpcw_method *m, grpcw_call *c, void *tag)
{
    grpc_call_error e;
    c->generic = m == NULL;
    if (m) {
        e = grpc_server_request_registered_call(s->srv, m->handle, &c->call, &c->deadline, &c->req_md,
                                                m->payload ? &c->first : NULL, s->cq->cq, s->cq->cq, tag);
    } else {
        e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->req_md, s->cq->cq, s->cq->cq, tag);
    }
    if (e != GRPC_CALL_OK) {
        log_error("grpc.request_failed", "error=%s", grpc_call_error_to_string(e));
        return -1;
    }
    return 0;
}

const char *grpcw_call_method(grpcw_call *c)
{
    if (!c->generic)
        return "";
    if (!c->method[0]) {
        size_t n = GRPC_SLICE_LENGTH(c->details.method);
        if (n >= sizeof c->method)
            n = sizeof c->method - 1;
        memcpy(c->method, GRPC_SLICE_START_PTR(c->details.method), n);
        c->method[n] = '\0';
    }
    return c->method;
}

int64_t grpcw_call_deadline_ms(const grpcw_call *c)
{
    gpr_timespec d = c->generic ? c->details.deadline : c->deadline;
    if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) >= 0)
        return INT64_MAX; /* before reading any clock: most calls without a deadline */
    gpr_timespec now = gpr_now(d.clock_type == GPR_TIMESPAN ? GPR_CLOCK_MONOTONIC : d.clock_type);
    if (d.tv_sec - now.tv_sec > 10 * 365 * 86400LL)
        return INT64_MAX;
    gpr_timespec left = gpr_time_sub(d, now);
    int64_t left_ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return grpcw_mono_ms() + left_ms;
}

const char *grpcw_call_metadata(const grpcw_call *c, size_t *len, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *m = &c->req_md.metadata[i];
        if (GRPC_SLICE_LENGTH(m->key) == klen && memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0) {
            *len = GRPC_SLICE_LENGTH(m->value);
            return (const char *)GRPC_SLICE_START_PTR(m->value);
        }
    }
    *len = 0;
    return NULL;
}

void grpcw_call_peer(grpcw_call *c, char *buf, size_t buf_len)
{
    if (buf_len == 0)
        return;
    /* The core hands out a fresh copy each time (no stable pointer to keep
     * per connection); copied here without printf, once per call. */
    char *p = c->call ? grpc_call_get_peer(c->call) : NULL;
    const char *v = p ? p : "unknown";
    size_t n = strnlen(v, buf_len - 1);
    memcpy(buf, v, n);
    buf[n] = '\0';
    if (p)
        gpr_free(p);
}

/* A whole message in place: true when bb is one uncompressed slice (or
 * none), as the core delivers a small request, so the caller reads it
 * where it is instead of copying it into a new slice. */
static bool grpcw_borrow(grpc_byte_buffer *bb, const uint8_t **data, size_t *len)
{
    if (bb->type != GRPC_BB_RAW || bb->data.raw.compression != GRPC_COMPRESS_NONE ||
        bb->data.raw.slice_buffer.count > 1)
        return false;
    if (bb->data.raw.slice_buffer.count == 0) {
        static const uint8_t none[1];
        *data = none;
        *len = 0;
        return true;
    }
    *data = GRPC_SLICE_START_PTR(bb->data.raw.slice_buffer.slices[0]);
    *len = GRPC_SLICE_LENGTH(bb->data.raw.slice_buffer.slices[0]);
    return true;
}

int grpcw_call_first_message(grpcw_call *c, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!c->first)
        return 0;
    if (grpcw_borrow(c->first, data, len))
        return 1;
    if (!c->first_read) {
        if (grpcw_read_all(c->first, &c->first_slice) != 0)
            return -1;
        c->first_read = true;
    }
    *data = GRPC_SLICE_START_PTR(c->first_slice);
    *len = GRPC_SLICE_LENGTH(c->first_slice);
    return 1;
}

bool grpcw_call_failed_before_message(const grpcw_call *c)
{
    if (!c->call)
        return false;
    return grpc_call_failed_before_recv_message(c->call) != 0;
}

static int grpcw_start(grpcw_call *c, const grpc_op *ops, size_t n, void *tag)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        log_error("grpc.batch_refused", "error=%s", grpc_call_error_to_string(e));
        return -1;
    }
    return 0;
}

int grpcw_call_recv_close(grpcw_call *c, void *tag)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    return grpcw_start(c, &op, 1, tag);
}

bool grpcw_call_was_cancelled(const grpcw_call *c)
{
    return c->cancelled != 0;
}

int grpcw_call_recv_message(grpcw_call *c, void *tag)
{
    grpcw_call_release_recv(c);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    return grpcw_start(c, &op, 1, tag);
}

int grpcw_call_received(grpcw_call *c, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!c->recv)
        return 0;
    if (grpcw_borrow(c->recv, data, len))
        return 1;
    if (!c->recv_read) {
        if (grpcw_read_all(c->recv, &c->recv_slice) != 0)
            return -1;
        c->recv_read = true;
    }
    *data = GRPC_SLICE_START_PTR(c->recv_slice);
    *len = GRPC_SLICE_LENGTH(c->recv_slice);
    return 1;
}

static void grpcw_wipe_free(void *p, size_t len)
{
    explicit_bzero(p, len);
    free(p);
}

uint8_t *grpcw_call_message_buffer_wiped(grpcw_call *c, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        return NULL;
    if (c->send_slice_set)
        grpc_slice_unref(c->send_slice);
    c->send_slice = grpc_slice_new_with_len(p, len, grpcw_wipe_free);
    c->send_slice_set = true;
    return p;
}

uint8_t *grpcw_call_message_buffer(grpcw_call *c, size_t len)
{
    if (c->send_slice_set)
        grpc_slice_unref(c->send_slice);
    c->send_slice = grpc_slice_malloc(len);
    c->send_slice_set = true;
    return GRPC_SLICE_START_PTR(c->send_slice);
}

int grpcw_call_send(grpcw_call *c, void *tag, unsigned what, const grpcw_md *md, size_t n_md,
                    rpc_code code, const char *details)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (what & GRPCW_SEND_INITIAL_MD) {
        if (n_md > GRPCW_SEND_MD_MAX)
            return -1;
        for (size_t i = 0; i < n_md; i++) {
            c->send_md[i].key = grpc_slice_from_copied_string(md[i].key);
            c->send_md[i].value = grpc_slice_from_copied_buffer(md[i].value, md[i].value_len);
        }
        c->n_send_md = n_md;
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = n_md;
        ops[n].data.send_initial_metadata.metadata = c->send_md;
        n++;
    }
    if (what & GRPCW_SEND_MESSAGE) {
        if (!c->send_slice_set)
            return -1;
        /* One byte buffer per grpcw_call, refilled for each message: the
         * core moves the slices out when the batch starts and never holds
         * the buffer itself past the batch's completion, and creating and
         * destroying one cost a malloc, a free and an ExecCtx per call. */
        if (!c->send_bb) {
            c->send_bb = grpc_raw_byte_buffer_create(&c->send_slice, 1); /* takes its own ref */
            grpc_slice_unref(c->send_slice);
        } else {
            grpc_slice_buffer_reset_and_unref(&c->send_bb->data.raw.slice_buffer);
            grpc_slice_buffer_add(&c->send_bb->data.raw.slice_buffer, c->send_slice); /* takes our ref */
        }
        c->send_slice_set = false;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->send_bb;
        n++;
    }
    if (what & GRPCW_SEND_STATUS) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)code;
        if (details && *details) {
            c->details_slice = grpc_slice_from_copied_string(details);
            c->details_set = true;
            ops[n].data.send_status_from_server.status_details = &c->details_slice;
        }
        if (c->trailer_set) {
            ops[n].data.send_status_from_server.trailing_metadata_count = 1;
            ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
        }
        n++;
    }
    if (what & GRPCW_RECV_CLOSE) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
        n++;
    }
    if (n == 0)
        return -1;
    if (grpcw_start(c, ops, n, tag) != 0) {
        grpcw_call_send_done(c);
        return -1;
    }
    return 0;
}

void grpcw_call_cancel(grpcw_call *c, rpc_code code, const char *details)
{
    if (c->call)
        grpc_call_cancel_with_status(c->call, (grpc_status_code)code, details ? details : "", NULL);
}

/* ---- client ------------------------------------------------------------------ */

struct grpcw_channel {
    grpc_channel *ch;
};

grpcw_channel *grpcw_channel_new(const char *target, const grpcw_channel_options *o)
{
    grpcw_channel_options defaults = {NULL, NULL, 0, false};
    if (!o)
        o = &defaults;
    grpcw_channel *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    grpc_channel_credentials *creds = o->tls_root_pem
                                          ? grpc_ssl_credentials_create(o->tls_root_pem, NULL, NULL, NULL)
                                          : grpc_insecure_credentials_create();
    if (!creds) {
        free(c);
        return NULL;
    }
    grpc_arg args[5];
    size_t n = 0;
    if (o->no_retries)
        grpcw_arg_int(&args[n++], grpcw_k_retries, 0);
    /* Unary calls with small messages: no bandwidth-delay probing (its
     * pings and window bookkeeping cost every call), and no channelz
     * counters (nothing here serves channelz). */
    grpcw_arg_int(&args[n++], grpcw_k_bdp, 0);
    grpcw_arg_int(&args[n++], grpcw_k_channelz, 0);
    grpcw_arg_int(&args[n++], grpcw_k_max_recv,
                  o->max_message_bytes ? (int64_t)o->max_message_bytes : 4 * 1024 * 1024);
    char name[256];
    if (o->tls_root_pem && o->tls_server_name) {
        snprintf(name, sizeof name, "%s", o->tls_server_name);
        memset(&args[n], 0, sizeof args[n]);
        args[n].type = GRPC_ARG_STRING;
        args[n].key = grpcw_k_ssl_name;
        args[n].value.string = name;
        n++;
    }
    grpc_channel_args ca = {n, args};
    c->ch = grpc_channel_create(target, creds, &ca);
    grpc_channel_credentials_release(creds);
    if (!c->ch) {
        free(c);
        return NULL;
    }
    return c;
}

void grpcw_channel_free(grpcw_channel *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->ch);
    free(c);
}

static int grpcw_md_copy(grpcw_md_list *out, const grpc_metadata_array *in)
{
    out->items = NULL;
    out->count = 0;
    if (in->count == 0)
        return 0;
    out->items = calloc(in->count, sizeof *out->items);
    if (!out->items)
        return -1;
    for (size_t i = 0; i < in->count; i++) {
        size_t kl = GRPC_SLICE_LENGTH(in->metadata[i].key);
        size_t vl = GRPC_SLICE_LENGTH(in->metadata[i].value);
        grpcw_md_entry *e = &out->items[out->count];
        e->key = malloc(kl + 1);
        e->value = malloc(vl + 1);
        if (!e->key || !e->value) {
            free(e->key);
            free(e->value);
            return -1;
        }
        memcpy(e->key, GRPC_SLICE_START_PTR(in->metadata[i].key), kl);
        e->key[kl] = '\0';
        memcpy(e->value, GRPC_SLICE_START_PTR(in->metadata[i].value), vl);
        e->value[vl] = '\0';
        e->value_len = vl;
        out->count++;
    }
    return 0;
}

void grpcw_md_list_dispose(grpcw_md_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const char *grpcw_md_list_get(const grpcw_md_list *l, size_t *len, const char *key)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].key, key) == 0) {
            if (len)
                *len = l->items[i].value_len;
            return l->items[i].value;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}

void grpcw_unary_result_dispose(grpcw_unary_result *r)
{
    if (!r)
        return;
    free(r->message);
    free(r->response);
    grpcw_md_list_dispose(&r->initial_md);
    grpcw_md_list_dispose(&r->trailing_md);
    memset(r, 0, sizeof *r);
}

static void grpcw_result_fail(grpcw_unary_result *r, const char *why)
{
    r->code = RPC_INTERNAL;
    free(r->message);
    r->message = strdup(why);
}

/* One unary call as a single batch, as the blocking grpcw_unary_call runs
 * it (on a pluck queue of its own). Everything the batch references lives here
 * until the tag completes. */
typedef struct grpcw_client_call {
    grpc_call *call;
    grpc_metadata send_md[GRPCW_SEND_MD_MAX];
    size_t n_md;
    grpc_byte_buffer *req_bb;
    grpc_metadata_array init_md;
    grpc_metadata_array trail_md;
    grpc_byte_buffer *resp_bb;
    grpc_status_code status;
    grpc_slice details;
    grpc_op ops[6];
} grpcw_client_call;

/* Releases what a started (or half-started) call holds; c is idle after. */
static void grpcw_client_release(grpcw_client_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    c->call = NULL;
    for (size_t i = 0; i < c->n_md; i++) {
        grpc_slice_unref(c->send_md[i].key);
        grpc_slice_unref(c->send_md[i].value);
    }
    c->n_md = 0;
    if (c->req_bb)
        grpc_byte_buffer_destroy(c->req_bb);
    c->req_bb = NULL;
    if (c->resp_bb)
        grpc_byte_buffer_destroy(c->resp_bb);
    c->resp_bb = NULL;
    grpc_metadata_array_destroy(&c->init_md);
    grpc_metadata_array_destroy(&c->trail_md);
    grpc_metadata_array_init(&c->init_md);
    grpc_metadata_array_init(&c->trail_md);
    grpc_slice_unref(c->details);
    c->details = grpc_empty_slice();
}

static void grpcw_client_init(grpcw_client_call *c)
{
    memset(c, 0, sizeof *c);
    grpc_metadata_array_init(&c->init_md);
    grpc_metadata_array_init(&c->trail_md);
    c->details = grpc_empty_slice();
}

static int grpcw_client_begin(grpcw_client_call *c, char *err, size_t err_len, grpc_channel *ch,
                              grpc_completion_queue *cq, void *tag, const char *path, const uint8_t *req,
                              size_t req_len, const grpcw_md *md, size_t n_md, int64_t timeout_ms)
{
    if (n_md > GRPCW_SEND_MD_MAX) {
        snprintf(err, err_len, "too many metadata entries");
        return -1;
    }
    grpc_slice method = grpc_slice_from_copied_string(path);
    gpr_timespec deadline = timeout_ms > 0 ? grpcw_deadline_in(timeout_ms) : gpr_inf_future(GPR_CLOCK_REALTIME);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
    grpc_slice_unref(method);
    if (!c->call) {
        snprintf(err, err_len, "cannot create a call");
        return -1;
    }
    for (size_t i = 0; i < n_md; i++) {
        memset(&c->send_md[i], 0, sizeof c->send_md[i]);
        c->send_md[i].key = grpc_slice_from_copied_string(md[i].key);
        c->send_md[i].value = grpc_slice_from_copied_buffer(md[i].value, md[i].value_len);
    }
    c->n_md = n_md;
    grpc_slice req_slice = grpc_slice_from_copied_buffer((const char *)req, req_len);
    c->req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
    grpc_slice_unref(req_slice);
    c->status = GRPC_STATUS_UNKNOWN;

    grpc_op *ops = c->ops;
    memset(c->ops, 0, sizeof c->ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->n_md;
    ops[0].data.send_initial_metadata.metadata = c->send_md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trail_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 6, tag, NULL);
    if (e != GRPC_CALL_OK) {
        snprintf(err, err_len, "%s", grpc_call_error_to_string(e));
        grpcw_client_release(c);
        return -1;
    }
    return 0;
}

/* After the batch completed: the outcome into res; releases the call. */
static int grpcw_client_collect(grpcw_client_call *c, grpcw_unary_result *res)
{
    int rc = -1;
    memset(res, 0, sizeof *res);
    res->code = (rpc_code)c->status;
    size_t dl = GRPC_SLICE_LENGTH(c->details);
    res->message = malloc(dl + 1);
    if (!res->message) {
        grpcw_result_fail(res, "out of memory");
        goto out;
    }
    memcpy(res->message, GRPC_SLICE_START_PTR(c->details), dl);
    res->message[dl] = '\0';
    if (c->resp_bb) {
        grpc_slice all;
        if (grpcw_read_all(c->resp_bb, &all) != 0) {
            grpcw_result_fail(res, "cannot read the response");
            goto out;
        }
        res->response_len = GRPC_SLICE_LENGTH(all);
        res->response = malloc(res->response_len ? res->response_len : 1);
        if (res->response)
            memcpy(res->response, GRPC_SLICE_START_PTR(all), res->response_len);
        grpc_slice_unref(all);
        if (!res->response) {
            grpcw_result_fail(res, "out of memory");
            goto out;
        }
        res->has_response = true;
    }
    if (grpcw_md_copy(&res->initial_md, &c->init_md) != 0 || grpcw_md_copy(&res->trailing_md, &c->trail_md) != 0) {
        grpcw_result_fail(res, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (!res->message)
        res->message = strdup("");
    grpcw_client_release(c);
    return rc;
}

int grpcw_unary_call(grpcw_channel *ch, grpcw_unary_result *res, const char *path,
                     const uint8_t *req, size_t req_len, const grpcw_md *md, size_t n_md,
                     int64_t timeout_ms)
{
    int rc = -1;
    char err[128];
    grpcw_client_call c;
    memset(res, 0, sizeof *res);
    res->code = RPC_INTERNAL;
    grpcw_client_init(&c);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    if (grpcw_client_begin(&c, err, sizeof err, ch->ch, cq, &c, path, req, req_len, md, n_md, timeout_ms) != 0) {
        grpcw_result_fail(res, err);
        goto out;
    }
    grpc_event ev = grpc_completion_queue_pluck(cq, &c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
        grpcw_result_fail(res, "the call did not complete");
        goto out;
    }
    rc = grpcw_client_collect(&c, res);
out:
    grpcw_client_release(&c);
    if (!res->message)
        res->message = strdup("");
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return rc;
}

