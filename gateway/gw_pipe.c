#include "gw_pipe.h"

#include "gw_errors.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

struct gw_pipe {
    gw_pipe_options o;
    gw_json_options jo;
    char rid_prefix[16];
    atomic_uint_fast64_t rid_counter;
    atomic_size_t calls; /* upstream calls in flight */
    atomic_bool stopping;
};

int64_t gw_pipe_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

gw_pipe *gw_pipe_new(char *err, size_t err_len, const gw_pipe_options *o)
{
    gw_pipe *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    p->o = *o;
    p->jo.resolve = gw_types_find;
    p->jo.resolve_arg = o->types;
    p->jo.max_depth = GW_JSON_DEPTH_DEFAULT;
    uint8_t rnd[4] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (uint8_t)time(NULL);
    snprintf(p->rid_prefix, sizeof p->rid_prefix, "gw-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    return p;
}

void gw_pipe_free(gw_pipe *p)
{
    free(p);
}

const gw_pipe_options *gw_pipe_opts(const gw_pipe *p)
{
    return &p->o;
}

void gw_pipe_stop_accepting(gw_pipe *p)
{
    atomic_store(&p->stopping, true);
}

bool gw_pipe_stopping(const gw_pipe *p)
{
    return atomic_load_explicit(&p->stopping, memory_order_relaxed);
}

size_t gw_pipe_calls(const gw_pipe *p)
{
    return atomic_load_explicit(&p->calls, memory_order_acquire);
}

void gw_pipe_wait_calls(gw_pipe *p)
{
    struct timespec ts = {0, 5 * 1000000L};
    while (gw_pipe_calls(p) > 0)
        nanosleep(&ts, NULL);
}

void gw_preq_init(gw_preq *r)
{
    memset(r, 0, sizeof *r);
    gw_buf_init(&r->body);
    gw_buf_init(&r->reply);
}

void gw_preq_dispose(gw_preq *r)
{
    if (r->call_ready)
        gw_upcall_dispose(&r->call);
    r->call_ready = false;
    gw_buf_dispose(&r->body);
    gw_buf_dispose(&r->reply);
}

void gw_preq_start(gw_preq *r)
{
    /* What the previous request left (the buffers and the call storage stay). */
    r->method = NULL;
    r->uri = NULL;
    r->hdrs = NULL;
    r->n_hdrs = 0;
    gw_buf_reset(&r->body);
    r->too_large = false;
    r->t0_us = gw_pipe_now_us();
    r->peer[0] = '\0';
    r->suspend = NULL;
    r->done = NULL;
    r->ucl = NULL;
    r->rid[0] = '\0';
    r->path = NULL;
    r->route = NULL;
    r->code = 0;
    r->content_type = NULL;
    if (r->reply.oom) {
        gw_buf_dispose(&r->reply);
        gw_buf_init(&r->reply);
    }
    gw_buf_reset(&r->reply);
    r->reply_hdrs.n = 0;
}

const char *gw_preq_header(const gw_preq *r, const char *name)
{
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

void gw_hdr_add(gw_hdrs *hs, const char *name, const char *value)
{
    if (hs->n >= sizeof hs->h / sizeof hs->h[0])
        return;
    snprintf(hs->h[hs->n].name, sizeof hs->h[hs->n].name, "%s", name);
    snprintf(hs->h[hs->n].value, sizeof hs->h[hs->n].value, "%s", value);
    hs->n++;
}

/* ---- replies ----------------------------------------------------------------------------- */

/* Makes r's reply from body (taken). */
static void gw_reply(gw_preq *r, unsigned code, const char *content_type, gw_buf *body, const gw_hdrs *hs)
{
    r->out.http_code = code;
    r->code = code;
    r->content_type = content_type;
    gw_buf_dispose(&r->reply);
    r->reply = *body;
    gw_buf_init(body);
    if (r->reply.oom) {
        static const char oom[] = "{\"code\":8,\"message\":\"out of memory\",\"details\":[]}";
        gw_buf_dispose(&r->reply);
        gw_buf_init(&r->reply);
        gw_buf_append(&r->reply, oom, sizeof oom - 1);
        r->code = r->out.http_code = 500;
        r->content_type = "application/json";
    }
    r->reply_hdrs.n = 0;
    for (size_t i = 0; hs && i < hs->n; i++)
        r->reply_hdrs.h[r->reply_hdrs.n++] = hs->h[i];
}

void gw_pipe_reply_status(gw_preq *r, unsigned http_code, rpc_code code, const char *message, const gw_hdrs *hs)
{
    gw_buf b;
    gw_buf_init(&b);
    int64_t retry = -1;
    gw_error_body(&b, &retry, code, message, NULL, 0, NULL);
    r->out.grpc_code = code;
    gw_reply(r, http_code, "application/json", &b, hs);
}

/* ---- request pieces ---------------------------------------------------------------------- */

static bool gw_rid_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > GW_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
              c == '.' || c == ':' || c == '/'))
            return false;
    }
    return true;
}

void gw_pipe_request_id(gw_pipe *p, gw_preq *r)
{
    const char *v = gw_preq_header(r, "X-Request-Id");
    if (v && gw_rid_ok(v)) {
        snprintf(r->rid, sizeof r->rid, "%s", v);
        return;
    }
    /* prefix-%010llx, without printf (once per request). */
    uint64_t k = atomic_fetch_add_explicit(&p->rid_counter, 1, memory_order_relaxed);
    size_t pl = strlen(p->rid_prefix);
    memcpy(r->rid, p->rid_prefix, pl);
    r->rid[pl] = '-';
    int digits = 10;
    for (uint64_t t = k >> 40; t; t >>= 4)
        digits++;
    for (int i = digits - 1; i >= 0; i--, k >>= 4)
        r->rid[pl + 1 + (size_t)i] = "0123456789abcdef"[k & 15];
    r->rid[pl + 1 + (size_t)digits] = '\0';
}

static bool gw_md_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

static void gw_md_add(gw_mdset *s, const char *key, const char *value)
{
    if (s->error)
        return;
    if (s->n >= GRPCW_SEND_MD_MAX) {
        s->error = "too many metadata headers (at most 8 with Authorization, Idempotency-Key, X-Request-Id)";
        return;
    }
    if (!gw_md_value_ok(value)) {
        s->error = "a forwarded header value holds characters gRPC metadata cannot carry";
        return;
    }
    size_t k = 0;
    for (; key[k] && k + 1 < sizeof s->keys[0]; k++)
        s->keys[s->n][k] = (char)(key[k] >= 'A' && key[k] <= 'Z' ? key[k] - 'A' + 'a' : key[k]);
    s->keys[s->n][k] = '\0';
    s->md[s->n].key = s->keys[s->n];
    s->md[s->n].value = value;
    s->md[s->n].value_len = strlen(value);
    s->n++;
}

/* Grpc-Metadata-* request headers become metadata (reserved keys skipped). */
static void gw_md_forward(gw_mdset *s, const gw_kv *kv)
{
    const char *key = kv->name;
    if (!key || strncasecmp(key, "Grpc-Metadata-", 14) != 0 || !key[14])
        return;
    const char *k = key + 14;
    if (strcasecmp(k, "authorization") == 0 || strcasecmp(k, "idempotency-key") == 0 ||
        strcasecmp(k, "x-request-id") == 0 || strncasecmp(k, "grpc-", 5) == 0 ||
        (strlen(k) > 4 && strcasecmp(k + strlen(k) - 4, "-bin") == 0))
        return; /* reserved, or set from their own headers */
    for (const char *q = k; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' ||
              *q == '_' || *q == '.')) {
            if (!s->error)
                s->error = "a Grpc-Metadata- header name is not a valid metadata key";
            return;
        }
    gw_md_add(s, k, kv->value ? kv->value : "");
}

/* Raw-body routes: every request header as a {name, value} element of
 * field. NULL, or what went wrong. */
static const char *gw_headers_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field, const gw_kv *kv)
{
    const ProtobufCMessageDescriptor *hd = field->descriptor;
    ProtobufCMessage *e = gw_json_message_new(hd);
    if (!e)
        return "out of memory";
    const ProtobufCFieldDescriptor *nf = protobuf_c_message_descriptor_get_field_by_name(hd, "name");
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field_by_name(hd, "value");
    char *n = strdup(kv->name ? kv->name : ""), *v = strdup(kv->value ? kv->value : "");
    size_t *count = (size_t *)(void *)((char *)msg + field->quantifier_offset);
    ProtobufCMessage ***arr = (ProtobufCMessage ***)(void *)((char *)msg + field->offset);
    ProtobufCMessage **na = realloc(*arr, (*count + 1) * sizeof *na);
    if (!n || !v || !na) {
        free(n);
        free(v);
        if (na)
            *arr = na;
        protobuf_c_message_free_unpacked(e, NULL);
        return "out of memory";
    }
    *(char **)(void *)((char *)e + nf->offset) = n;
    *(char **)(void *)((char *)e + vf->offset) = v;
    *arr = na;
    na[(*count)++] = e;
    return NULL;
}

/* Sets the fields named by the query string (raw, after '?'). */
static int gw_apply_query(gw_pipe *p, ProtobufCMessage *msg, char *err, size_t err_len, const char *q)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            size_t kl = eq ? (size_t)(eq - q) : n;
            char *key = malloc(kl + 1), *val = malloc(n + 1);
            if (!key || !val) {
                free(key);
                free(val);
                snprintf(err, err_len, "out of memory");
                return -1;
            }
            /* application/x-www-form-urlencoded: '+' is a space. */
            size_t ko = 0, vo = 0;
            bool bad = false;
            for (size_t i = 0; i < n; i++) {
                bool in_key = i < kl;
                if (i == kl)
                    continue;
                char c = q[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int a = -1, b = -1;
                    if (i + 2 < n) {
                        char x = q[i + 1], y = q[i + 2];
                        a = x >= '0' && x <= '9' ? x - '0' : (x | 32) >= 'a' && (x | 32) <= 'f' ? (x | 32) - 'a' + 10 : -1;
                        b = y >= '0' && y <= '9' ? y - '0' : (y | 32) >= 'a' && (y | 32) <= 'f' ? (y | 32) - 'a' + 10 : -1;
                    }
                    if (a < 0 || b < 0 || (in_key && i + 2 >= kl)) {
                        bad = true;
                        break;
                    }
                    c = (char)(a * 16 + b);
                    i += 2;
                }
                if (in_key)
                    key[ko++] = c;
                else
                    val[vo++] = c;
            }
            key[ko] = '\0';
            val[vo] = '\0';
            int rc = 0;
            if (bad)
                rc = -1, snprintf(err, err_len, "malformed percent-encoding in the query string");
            else if (ko == 0 || memchr(key, '\0', ko))
                rc = -1, snprintf(err, err_len, "empty query parameter name");
            else
                rc = gw_json_set_path(msg, err, err_len, key, val, vo, &p->jo);
            free(key);
            free(val);
            if (rc != 0)
                return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* ---- builtin routes ---------------------------------------------------------------------- */

/* GET of the gateway's own paths: the reply is made and true returned. */
static bool gw_builtin(gw_pipe *p, gw_preq *r, const char *path)
{
    size_t base = gw_routes_count(p->o.routes);
    gw_buf b;
    gw_buf_init(&b);
    if (strcmp(path, "/healthz") == 0) {
        r->out.slot = base + GW_ROUTE_HEALTHZ;
        gw_buf_puts(&b, "{\"status\":\"ok\"}");
        gw_reply(r, 200, "application/json", &b, NULL);
        return true;
    }
    if (strcmp(path, "/readyz") == 0) {
        r->out.slot = base + GW_ROUTE_READYZ;
        size_t healthy = gw_upstreams_healthy_count(p->o.upstreams);
        gw_buf_printf(&b, "{\"status\":\"%s\",\"upstreams\":[", healthy ? "ready" : "unavailable");
        for (size_t i = 0; i < gw_upstreams_count(p->o.upstreams); i++) {
            char detail[256];
            gw_upstreams_detail(p->o.upstreams, detail, sizeof detail, i);
            const char *t = gw_upstreams_target(p->o.upstreams, i);
            gw_buf_puts(&b, i ? ",{\"target\":" : "{\"target\":");
            gw_buf_json_string(&b, t, strlen(t));
            gw_buf_printf(&b, ",\"healthy\":%s,\"detail\":", gw_upstreams_healthy(p->o.upstreams, i) ? "true" : "false");
            gw_buf_json_string(&b, detail, strlen(detail));
            gw_buf_putc(&b, '}');
        }
        gw_buf_puts(&b, "]}");
        gw_reply(r, healthy ? 200 : 503, "application/json", &b, NULL);
        return true;
    }
    if (strcmp(path, "/metrics") == 0) {
        r->out.slot = base + GW_ROUTE_METRICS;
        gw_metrics_write(p->o.metrics, &b, p->o.upstreams);
        gw_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL);
        return true;
    }
    if (strcmp(path, "/openapi.json") == 0) {
        r->out.slot = base + GW_ROUTE_OPENAPI;
        gw_buf_append(&b, p->o.openapi_json, p->o.openapi_json_len);
        gw_reply(r, 200, "application/json", &b, NULL);
        return true;
    }
    gw_buf_dispose(&b);
    return false;
}

/* ---- the upstream call ------------------------------------------------------------------- */

/* The upstream call of r ended (on its gw_ucl's thread): its reply. */
static void gw_call_done(void *arg, int rc, const rpc_call_result *res, const ProtobufCMessage *resp,
                         size_t target_index)
{
    gw_preq *r = arg;
    gw_pipe *p = r->pipe;
    const gw_route *rt = r->route;
    char err[GW_JSON_ERR_MAX + 64];
    log_set_request_id(r->rid);
    r->out.upstream = gw_upstreams_target(p->o.upstreams, target_index);
    rpc_code code = res->code;
    if (rc != 0 && code == RPC_OK)
        code = RPC_INTERNAL;
    r->out.grpc_code = code;
    gw_hdrs hs;
    hs.n = 0;
    for (size_t i = 0; i < res->initial_md.count; i++) {
        const grpcw_md_entry *e = &res->initial_md.items[i];
        size_t kl = strlen(e->key);
        if (strncmp(e->key, "grpc-", 5) == 0 || strcmp(e->key, "content-type") == 0 ||
            strcmp(e->key, "x-request-id") == 0 || (kl > 4 && strcmp(e->key + kl - 4, "-bin") == 0) ||
            !gw_md_value_ok(e->value) || hs.n >= 16)
            continue;
        snprintf(hs.h[hs.n].name, sizeof hs.h[hs.n].name, "Grpc-Metadata-%s", e->key);
        snprintf(hs.h[hs.n].value, sizeof hs.h[hs.n].value, "%s", e->value);
        hs.n++;
    }
    gw_buf b;
    gw_buf_init(&b);
    if (code == RPC_OK && resp) {
        int erc = rt->response_field ? gw_json_encode_field(&b, err, sizeof err, resp, rt->response_field, &p->jo)
                                     : gw_json_encode(&b, err, sizeof err, resp, &p->jo);
        if (erc == 0) {
            gw_reply(r, 200, "application/json", &b, &hs);
        } else {
            gw_buf_dispose(&b);
            char m2[GW_JSON_ERR_MAX + 128];
            snprintf(m2, sizeof m2, "the response cannot be written as JSON: %s", err);
            gw_pipe_reply_status(r, 500, RPC_INTERNAL, m2, &hs);
        }
    } else {
        /* An error status. */
        size_t dlen = 0;
        const char *details = grpcw_md_list_get(&res->trailing_md, &dlen, "grpc-status-details-bin");
        if (!details)
            details = grpcw_md_list_get(&res->initial_md, &dlen, "grpc-status-details-bin");
        int64_t retry = -1;
        gw_error_body(&b, &retry, code, res->message, (const uint8_t *)details, details ? dlen : 0, &p->jo);
        if (code == RPC_UNAUTHENTICATED)
            gw_hdr_add(&hs, "WWW-Authenticate", "Bearer realm=\"coffer\"");
        if (code == RPC_RESOURCE_EXHAUSTED && retry < 0)
            retry = 1;
        if (retry > 0 && (code == RPC_RESOURCE_EXHAUSTED || code == RPC_UNAVAILABLE || code == RPC_ABORTED)) {
            char s[32];
            snprintf(s, sizeof s, "%lld", (long long)retry);
            gw_hdr_add(&hs, "Retry-After", s);
        }
        gw_reply(r, gw_http_status(code), "application/json", &b, &hs);
    }
    log_set_request_id(NULL);
    r->done(r); /* the last touch of r */
    atomic_fetch_sub_explicit(&p->calls, 1, memory_order_release);
}

/* A route of the API: the reply is made (an error, GW_PIPE_REPLY), or the
 * upstream call started (GW_PIPE_CALLING). */
static gw_pipe_result gw_call_route(gw_pipe *p, gw_preq *r, const gw_match *m, const char *query)
{
    const gw_route *rt = m->route;
    char err[GW_JSON_ERR_MAX + 64];
    ProtobufCMessage *msg = NULL;
    json_t *body = NULL;
    gw_pipe_result result = GW_PIPE_REPLY;

    /* Deadline. */
    int64_t timeout_ms = p->o.default_timeout_ms;
    const char *gt = gw_preq_header(r, "Grpc-Timeout");
    if (gt) {
        if (gw_grpc_timeout_parse(&timeout_ms, gt) != 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT,
                                 "Grpc-Timeout must be 1-8 digits and a unit H, M, S, m, u or n (e.g. 500m, 2S)",
                                 NULL);
            goto done;
        }
        if (timeout_ms < 1)
            timeout_ms = 1;
        if (p->o.max_timeout_ms > 0 && timeout_ms > p->o.max_timeout_ms)
            timeout_ms = p->o.max_timeout_ms;
    }

    msg = gw_json_message_new(rt->method->input);
    if (!msg) {
        gw_pipe_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
        goto done;
    }
    /* Body. */
    if (rt->raw_body) {
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)(void *)((char *)msg + rt->body_field->offset);
        if (r->body.len) {
            bd->data = malloc(r->body.len);
            if (!bd->data) {
                gw_pipe_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
                goto done;
            }
            memcpy(bd->data, r->body.data, r->body.len);
            bd->len = r->body.len;
        }
        if (rt->headers_field) {
            for (size_t i = 0; i < r->n_hdrs; i++) {
                const char *e = gw_headers_field(msg, rt->headers_field, &r->hdrs[i]);
                if (e) {
                    gw_pipe_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, e, NULL);
                    goto done;
                }
            }
        }
    } else if (rt->body && r->body.len) {
        if (gw_json_parse(&body, err, sizeof err, r->body.data, r->body.len) != 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
        int rc = rt->body_field ? gw_json_merge_field(msg, err, sizeof err, rt->body_field, body, &p->jo)
                                : gw_json_merge(msg, err, sizeof err, body, &p->jo);
        if (rc != 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }
    /* Path variables, then the query (not with body "*": everything is in the body). */
    for (size_t i = 0; i < rt->n_vars; i++) {
        if (gw_json_set_path(msg, err, sizeof err, rt->vars[i].field_path, m->values[i], strlen(m->values[i]),
                             &p->jo) != 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }
    if (query && *query) {
        if (rt->body && strcmp(rt->body, "*") == 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT,
                                 "this method takes its fields in the JSON body, not in the query string", NULL);
            goto done;
        }
        if (gw_apply_query(p, msg, err, sizeof err, query) != 0) {
            gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, err, NULL);
            goto done;
        }
    }

    /* Metadata: values borrowed from the request's headers, which outlive the call. */
    gw_mdset *md = &r->md;
    md->n = 0;
    md->error = NULL;
    const char *v = gw_preq_header(r, "Authorization");
    if (v)
        gw_md_add(md, "authorization", v);
    v = gw_preq_header(r, "Idempotency-Key");
    if (v)
        gw_md_add(md, "idempotency-key", v);
    gw_md_add(md, "x-request-id", r->rid);
    for (size_t i = 0; i < r->n_hdrs; i++)
        gw_md_forward(md, &r->hdrs[i]);
    if (md->error) {
        gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, md->error, NULL);
        goto done;
    }

    if (!r->call_ready) {
        if (gw_upcall_init(&r->call) != 0) {
            gw_pipe_reply_status(r, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
            goto done;
        }
        r->call_ready = true;
    }
    r->pipe = p;
    r->route = rt;
    /* Suspended first: the call may complete (and r->done run) at once. */
    atomic_fetch_add_explicit(&p->calls, 1, memory_order_relaxed);
    if (r->suspend)
        r->suspend(r);
    result = GW_PIPE_CALLING;
    rpc_call_options co = {timeout_ms, md->md, md->n};
    rpc_call_result res;
    if (gw_upstreams_call_start(p->o.upstreams, r->ucl, &r->call, &res, rt->service, rt->method->name, msg, &co, gw_call_done,
                                r) != 0) {
        r->out.upstream = NULL;
        gw_pipe_reply_status(r, 500, RPC_INTERNAL, res.message, NULL);
        rpc_call_result_dispose(&res);
        r->done(r);
        atomic_fetch_sub_explicit(&p->calls, 1, memory_order_release);
    }
done:
    if (body)
        json_decref(body);
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    return result;
}

gw_pipe_result gw_pipe_handle(gw_pipe *p, gw_preq *r)
{
    const char *method = r->method;
    gw_pipe_result result = GW_PIPE_REPLY;
    gw_pipe_request_id(p, r);
    log_set_request_id(r->rid);
    r->out = (gw_outcome){gw_routes_count(p->o.routes) + GW_ROUTE_UNMATCHED, 500, RPC_OK, NULL, "unmatched"};

    char *q = strchr(r->uri, '?');
    const char *query = NULL;
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    const char *path = r->uri;
    r->path = path;

    if (strcmp(method, "GET") == 0 && gw_builtin(p, r, path)) {
        r->out.route = path;
        goto out;
    }
    if (gw_pipe_stopping(p)) {
        gw_hdrs hs;
        hs.n = 0;
        gw_hdr_add(&hs, "Connection", "close");
        gw_pipe_reply_status(r, 503, RPC_UNAVAILABLE, "the gateway is shutting down", &hs);
        goto out;
    }
    gw_match m;
    gw_match_result mr = gw_routes_match(p->o.routes, &m, method, path);
    if (mr == GW_MATCH_OK) {
        r->out.slot = m.route->index;
        r->out.route = m.route->pattern;
        if (r->too_large) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", p->o.max_body_bytes);
            gw_pipe_reply_status(r, 413, RPC_RESOURCE_EXHAUSTED, msg, NULL);
        } else {
            result = gw_call_route(p, r, &m, query);
        }
        gw_match_dispose(&m);
    } else if (mr == GW_MATCH_METHOD) {
        gw_hdrs hs;
        hs.n = 0;
        gw_hdr_add(&hs, "Allow", m.allow);
        char msg[256];
        snprintf(msg, sizeof msg, "%s is not allowed on %.150s (allowed: %s)", method, path, m.allow);
        gw_pipe_reply_status(r, 405, RPC_UNIMPLEMENTED, msg, &hs);
    } else if (mr == GW_MATCH_BAD) {
        gw_pipe_reply_status(r, 400, RPC_INVALID_ARGUMENT, "malformed percent-encoding in the path", NULL);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, path);
        gw_pipe_reply_status(r, 404, RPC_NOT_FOUND, msg, NULL);
    }
out:
    log_set_request_id(NULL);
    return result;
}

size_t gw_pipe_record(gw_pipe *p, gw_preq *r, bool delivered, char *line, size_t cap)
{
    int64_t us = gw_pipe_now_us() - r->t0_us;
    gw_metrics_record(p->o.metrics, r->out.slot, r->method, r->out.http_code, us);
    if (!p->o.access_log)
        return 0;
    /* Built with appenders, not printf: once per request, on a front's
     * event loop. */
    char qp[300], qr[200], f[1024];
    size_t n = 0;
    log_put_str(f, sizeof f, &n, "method=");
    log_put_str(f, sizeof f, &n, r->method ? r->method : "-");
    log_put_str(f, sizeof f, &n, " path=");
    log_put_str(f, sizeof f, &n, log_quote(qp, sizeof qp, r->path ? r->path : "-"));
    log_put_str(f, sizeof f, &n, " route=");
    log_put_str(f, sizeof f, &n, log_quote(qr, sizeof qr, r->out.route));
    log_put_str(f, sizeof f, &n, " status=");
    log_put_u64(f, sizeof f, &n, r->out.http_code);
    log_put_str(f, sizeof f, &n, " code=");
    log_put_str(f, sizeof f, &n, rpc_code_name(r->out.grpc_code));
    log_put_str(f, sizeof f, &n, " duration_us=");
    log_put_u64(f, sizeof f, &n, us > 0 ? (uint64_t)us : 0);
    log_put_str(f, sizeof f, &n, " peer=");
    log_put_str(f, sizeof f, &n, r->peer[0] ? r->peer : "-");
    log_put_str(f, sizeof f, &n, " upstream=");
    log_put_str(f, sizeof f, &n, r->out.upstream ? r->out.upstream : "-");
    if (!delivered)
        log_put_str(f, sizeof f, &n, " detail=client_gone");
    log_set_request_id(r->rid);
    size_t len = log_format_fields(line, cap, LOG_INFO, "http.request", f, n);
    log_set_request_id(NULL);
    return len;
}
