#include "gw_http.h"

#include "gw_errors.h"
#include "gw_json.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

struct gw_http {
    struct MHD_Daemon *daemon;
    gw_http_options o;
    gw_json_options jo;
    int port;
    char rid_prefix[16];
    atomic_uint_fast64_t rid_counter;
};

/* Per request: created by the URI callback (which sees the raw URI, before
 * libmicrohttpd decodes it), freed when the request completes. */
typedef struct {
    char *uri;
    gw_buf body;
    bool started;
    bool too_large;
    int64_t t0_us;
} gw_req;

static int64_t gw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *gw_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    gw_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->uri = strdup(uri ? uri : "/");
    r->t0_us = gw_now_us();
    if (!r->uri) {
        free(r);
        return NULL;
    }
    return r;
}

static void gw_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    gw_req *r = *con_cls;
    if (!r)
        return;
    free(r->uri);
    gw_buf_dispose(&r->body);
    free(r);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0)))
static void gw_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http.server", "detail=%s", log_quote(q, sizeof q, msg));
}

/* ---- responses --------------------------------------------------------------------------- */

typedef struct {
    char name[160];
    char value[256];
} gw_hdr;

typedef struct {
    gw_hdr h[24];
    size_t n;
} gw_hdrs;

static void gw_hdr_add(gw_hdrs *hs, const char *name, const char *value)
{
    if (hs->n >= sizeof hs->h / sizeof hs->h[0])
        return;
    snprintf(hs->h[hs->n].name, sizeof hs->h[hs->n].name, "%s", name);
    snprintf(hs->h[hs->n].value, sizeof hs->h[hs->n].value, "%s", value);
    hs->n++;
}

static enum MHD_Result gw_send(struct MHD_Connection *conn, unsigned code, const char *content_type, gw_buf *body,
                               const char *rid, const gw_hdrs *hs)
{
    struct MHD_Response *resp;
    if (body->oom) {
        static const char oom[] = "{\"code\":8,\"message\":\"out of memory\",\"details\":[]}";
        code = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
        gw_buf_dispose(body);
    } else {
        size_t len = body->len;
        char *data = body->data;
        body->data = NULL;
        gw_buf_dispose(body);
        resp = MHD_create_response_from_buffer(len, data ? data : (void *)(uintptr_t)"",
                                               data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            free(data);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (rid && *rid)
        MHD_add_response_header(resp, "X-Request-Id", rid);
    for (size_t i = 0; hs && i < hs->n; i++)
        MHD_add_response_header(resp, hs->h[i].name, hs->h[i].value);
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result gw_send_status(struct MHD_Connection *conn, unsigned http_code, rpc_code code,
                                      const char *message, const char *rid, const gw_hdrs *hs)
{
    gw_buf b;
    gw_buf_init(&b);
    int64_t retry = -1;
    gw_error_body(&b, &retry, code, message, NULL, 0, NULL);
    return gw_send(conn, http_code, "application/json", &b, rid, hs);
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

static void gw_request_id(gw_http *h, struct MHD_Connection *conn, char *rid, size_t cap)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (v && gw_rid_ok(v)) {
        snprintf(rid, cap, "%s", v);
        return;
    }
    uint64_t k = atomic_fetch_add_explicit(&h->rid_counter, 1, memory_order_relaxed);
    snprintf(rid, cap, "%s-%010llx", h->rid_prefix, (unsigned long long)k);
}

static bool gw_md_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

typedef struct {
    grpcw_md md[GRPCW_SEND_MD_MAX];
    char keys[GRPCW_SEND_MD_MAX][128];
    size_t n;
    const char *error; /* set when a header cannot be forwarded */
} gw_mdset;

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

static enum MHD_Result gw_md_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    gw_mdset *s = cls;
    if (!key || strncasecmp(key, "Grpc-Metadata-", 14) != 0 || !key[14])
        return MHD_YES;
    const char *k = key + 14;
    if (strcasecmp(k, "authorization") == 0 || strcasecmp(k, "idempotency-key") == 0 ||
        strcasecmp(k, "x-request-id") == 0 || strncasecmp(k, "grpc-", 5) == 0 ||
        (strlen(k) > 4 && strcasecmp(k + strlen(k) - 4, "-bin") == 0))
        return MHD_YES; /* reserved, or set from their own headers */
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.')) {
            s->error = "a Grpc-Metadata- header name is not a valid metadata key";
            return MHD_NO;
        }
    gw_md_add(s, k, value ? value : "");
    return MHD_YES;
}

typedef struct {
    ProtobufCMessage *msg;
    const ProtobufCFieldDescriptor *field;
    const char *error;
} gw_hdr_ctx;

/* Raw-body routes: every request header as a {name, value} element. */
static enum MHD_Result gw_headers_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    gw_hdr_ctx *c = cls;
    const ProtobufCMessageDescriptor *hd = c->field->descriptor;
    ProtobufCMessage *e = gw_json_message_new(hd);
    if (!e) {
        c->error = "out of memory";
        return MHD_NO;
    }
    const ProtobufCFieldDescriptor *nf = protobuf_c_message_descriptor_get_field_by_name(hd, "name");
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field_by_name(hd, "value");
    char *n = strdup(key ? key : ""), *v = strdup(value ? value : "");
    size_t *count = (size_t *)(void *)((char *)c->msg + c->field->quantifier_offset);
    ProtobufCMessage ***arr = (ProtobufCMessage ***)(void *)((char *)c->msg + c->field->offset);
    ProtobufCMessage **na = realloc(*arr, (*count + 1) * sizeof *na);
    if (!n || !v || !na) {
        free(n);
        free(v);
        if (na)
            *arr = na;
        protobuf_c_message_free_unpacked(e, NULL);
        c->error = "out of memory";
        return MHD_NO;
    }
    *(char **)(void *)((char *)e + nf->offset) = n;
    *(char **)(void *)((char *)e + vf->offset) = v;
    *arr = na;
    na[(*count)++] = e;
    return MHD_YES;
}

/* Sets the fields named by the query string (raw, after '?'). */
static int gw_apply_query(gw_http *h, ProtobufCMessage *msg, char *err, size_t err_len, const char *q)
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
                rc = gw_json_set_path(msg, err, err_len, key, val, vo, &h->jo);
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

static enum MHD_Result gw_builtin(gw_http *h, struct MHD_Connection *conn, const char *path, const char *rid,
                                  size_t *slot, unsigned *code, bool *handled)
{
    size_t base = gw_routes_count(h->o.routes);
    gw_buf b;
    gw_buf_init(&b);
    *handled = true;
    if (strcmp(path, "/healthz") == 0) {
        *slot = base + GW_ROUTE_HEALTHZ;
        *code = 200;
        gw_buf_puts(&b, "{\"status\":\"ok\"}");
        return gw_send(conn, 200, "application/json", &b, rid, NULL);
    }
    if (strcmp(path, "/readyz") == 0) {
        *slot = base + GW_ROUTE_READYZ;
        size_t healthy = gw_upstreams_healthy_count(h->o.upstreams);
        *code = healthy ? 200 : 503;
        gw_buf_printf(&b, "{\"status\":\"%s\",\"upstreams\":[", healthy ? "ready" : "unavailable");
        for (size_t i = 0; i < gw_upstreams_count(h->o.upstreams); i++) {
            char detail[256];
            gw_upstreams_detail(h->o.upstreams, detail, sizeof detail, i);
            const char *t = gw_upstreams_target(h->o.upstreams, i);
            gw_buf_puts(&b, i ? ",{\"target\":" : "{\"target\":");
            gw_buf_json_string(&b, t, strlen(t));
            gw_buf_printf(&b, ",\"healthy\":%s,\"detail\":", gw_upstreams_healthy(h->o.upstreams, i) ? "true" : "false");
            gw_buf_json_string(&b, detail, strlen(detail));
            gw_buf_putc(&b, '}');
        }
        gw_buf_puts(&b, "]}");
        return gw_send(conn, *code, "application/json", &b, rid, NULL);
    }
    if (strcmp(path, "/metrics") == 0) {
        *slot = base + GW_ROUTE_METRICS;
        *code = 200;
        gw_metrics_write(h->o.metrics, &b, h->o.upstreams);
        return gw_send(conn, 200, "text/plain; version=0.0.4; charset=utf-8", &b, rid, NULL);
    }
    if (strcmp(path, "/openapi.json") == 0) {
        *slot = base + GW_ROUTE_OPENAPI;
        *code = 200;
        gw_buf_append(&b, h->o.openapi_json, h->o.openapi_json_len);
        return gw_send(conn, 200, "application/json", &b, rid, NULL);
    }
    *handled = false;
    gw_buf_dispose(&b);
    return MHD_YES;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

typedef struct {
    size_t slot;
    unsigned http_code;
    rpc_code grpc_code;
    const char *upstream;
    const char *route;
} gw_outcome;

static enum MHD_Result gw_fail_request(struct MHD_Connection *conn, gw_outcome *out, unsigned http_code,
                                       rpc_code code, const char *message, const char *rid, const gw_hdrs *hs)
{
    out->http_code = http_code;
    out->grpc_code = code;
    return gw_send_status(conn, http_code, code, message, rid, hs);
}

static enum MHD_Result gw_call_route(gw_http *h, struct MHD_Connection *conn, gw_req *r, const gw_match *m,
                                     const char *query, const char *rid, gw_outcome *out)
{
    const gw_route *rt = m->route;
    char err[GW_JSON_ERR_MAX + 64];
    enum MHD_Result ret;
    ProtobufCMessage *msg = NULL, *resp = NULL;
    json_t *body = NULL;
    rpc_call_result res;
    memset(&res, 0, sizeof res);

    /* Deadline. */
    int64_t timeout_ms = h->o.default_timeout_ms;
    const char *gt = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Grpc-Timeout");
    if (gt) {
        if (gw_grpc_timeout_parse(&timeout_ms, gt) != 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT,
                                  "Grpc-Timeout must be 1-8 digits and a unit H, M, S, m, u or n (e.g. 500m, 2S)",
                                  rid, NULL);
            goto done;
        }
        if (timeout_ms < 1)
            timeout_ms = 1;
        if (h->o.max_timeout_ms > 0 && timeout_ms > h->o.max_timeout_ms)
            timeout_ms = h->o.max_timeout_ms;
    }

    msg = gw_json_message_new(rt->method->input);
    if (!msg) {
        ret = gw_fail_request(conn, out, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", rid, NULL);
        goto done;
    }
    /* Body. */
    if (rt->raw_body) {
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)(void *)((char *)msg + rt->body_field->offset);
        if (r->body.len) {
            bd->data = malloc(r->body.len);
            if (!bd->data) {
                ret = gw_fail_request(conn, out, 500, RPC_RESOURCE_EXHAUSTED, "out of memory", rid, NULL);
                goto done;
            }
            memcpy(bd->data, r->body.data, r->body.len);
            bd->len = r->body.len;
        }
        if (rt->headers_field) {
            gw_hdr_ctx hc = {msg, rt->headers_field, NULL};
            MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_headers_iter, &hc);
            if (hc.error) {
                ret = gw_fail_request(conn, out, 500, RPC_RESOURCE_EXHAUSTED, hc.error, rid, NULL);
                goto done;
            }
        }
    } else if (rt->body && r->body.len) {
        if (gw_json_parse(&body, err, sizeof err, r->body.data, r->body.len) != 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT, err, rid, NULL);
            goto done;
        }
        int rc = rt->body_field ? gw_json_merge_field(msg, err, sizeof err, rt->body_field, body, &h->jo)
                                : gw_json_merge(msg, err, sizeof err, body, &h->jo);
        if (rc != 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT, err, rid, NULL);
            goto done;
        }
    }
    /* Path variables, then the query (not with body "*": everything is in the body). */
    for (size_t i = 0; i < rt->n_vars; i++) {
        if (gw_json_set_path(msg, err, sizeof err, rt->vars[i].field_path, m->values[i], strlen(m->values[i]),
                             &h->jo) != 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT, err, rid, NULL);
            goto done;
        }
    }
    if (query && *query) {
        if (rt->body && strcmp(rt->body, "*") == 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT,
                                  "this method takes its fields in the JSON body, not in the query string", rid, NULL);
            goto done;
        }
        if (gw_apply_query(h, msg, err, sizeof err, query) != 0) {
            ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT, err, rid, NULL);
            goto done;
        }
    }

    /* Metadata. */
    gw_mdset md;
    memset(&md, 0, sizeof md);
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (v)
        gw_md_add(&md, "authorization", v);
    v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (v)
        gw_md_add(&md, "idempotency-key", v);
    gw_md_add(&md, "x-request-id", rid);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_md_iter, &md);
    if (md.error) {
        ret = gw_fail_request(conn, out, 400, RPC_INVALID_ARGUMENT, md.error, rid, NULL);
        goto done;
    }

    rpc_call_options co = {timeout_ms, md.md, md.n};
    size_t ti = 0;
    int rc = gw_upstreams_call(h->o.upstreams, &res, &resp, &ti, rt->service, rt->method->name, msg, &co);
    out->upstream = gw_upstreams_target(h->o.upstreams, ti);
    out->grpc_code = res.code;
    gw_hdrs hs;
    hs.n = 0;
    for (size_t i = 0; i < res.initial_md.count; i++) {
        const grpcw_md_entry *e = &res.initial_md.items[i];
        size_t kl = strlen(e->key);
        if (strncmp(e->key, "grpc-", 5) == 0 || strcmp(e->key, "content-type") == 0 ||
            strcmp(e->key, "x-request-id") == 0 || (kl > 4 && strcmp(e->key + kl - 4, "-bin") == 0) ||
            !gw_md_value_ok(e->value) || hs.n >= 16)
            continue;
        snprintf(hs.h[hs.n].name, sizeof hs.h[hs.n].name, "Grpc-Metadata-%s", e->key);
        snprintf(hs.h[hs.n].value, sizeof hs.h[hs.n].value, "%s", e->value);
        hs.n++;
    }
    if (rc != 0 && res.code == RPC_OK)
        res.code = RPC_INTERNAL;
    if (res.code == RPC_OK && resp) {
        gw_buf b;
        gw_buf_init(&b);
        int erc = rt->response_field ? gw_json_encode_field(&b, err, sizeof err, resp, rt->response_field, &h->jo)
                                     : gw_json_encode(&b, err, sizeof err, resp, &h->jo);
        if (erc != 0) {
            gw_buf_dispose(&b);
            char m2[GW_JSON_ERR_MAX + 128];
            snprintf(m2, sizeof m2, "the response cannot be written as JSON: %s", err);
            ret = gw_fail_request(conn, out, 500, RPC_INTERNAL, m2, rid, &hs);
            goto done;
        }
        out->http_code = 200;
        ret = gw_send(conn, 200, "application/json", &b, rid, &hs);
        goto done;
    }
    /* An error status. */
    size_t dlen = 0;
    const char *details = grpcw_md_list_get(&res.trailing_md, &dlen, "grpc-status-details-bin");
    if (!details)
        details = grpcw_md_list_get(&res.initial_md, &dlen, "grpc-status-details-bin");
    int64_t retry = -1;
    gw_buf b;
    gw_buf_init(&b);
    gw_error_body(&b, &retry, res.code, res.message, (const uint8_t *)details, details ? dlen : 0, &h->jo);
    unsigned code = gw_http_status(res.code);
    if (res.code == RPC_UNAUTHENTICATED)
        gw_hdr_add(&hs, "WWW-Authenticate", "Bearer realm=\"coffer\"");
    if (res.code == RPC_RESOURCE_EXHAUSTED && retry < 0)
        retry = 1;
    if (retry > 0 && (res.code == RPC_RESOURCE_EXHAUSTED || res.code == RPC_UNAVAILABLE || res.code == RPC_ABORTED)) {
        char s[32];
        snprintf(s, sizeof s, "%lld", (long long)retry);
        gw_hdr_add(&hs, "Retry-After", s);
    }
    out->http_code = code;
    ret = gw_send(conn, code, "application/json", &b, rid, &hs);
done:
    if (body)
        json_decref(body);
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    rpc_call_result_dispose(&res);
    return ret;
}

static enum MHD_Result gw_handle(gw_http *h, struct MHD_Connection *conn, gw_req *r, const char *method)
{
    char rid[GW_REQUEST_ID_MAX + 1];
    gw_request_id(h, conn, rid, sizeof rid);
    log_set_request_id(rid);
    gw_outcome out = {gw_routes_count(h->o.routes) + GW_ROUTE_UNMATCHED, 500, RPC_OK, NULL, "unmatched"};
    enum MHD_Result ret;

    char *q = strchr(r->uri, '?');
    const char *query = NULL;
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    const char *path = r->uri;

    bool handled = false;
    if (strcmp(method, "GET") == 0) {
        ret = gw_builtin(h, conn, path, rid, &out.slot, &out.http_code, &handled);
        if (handled) {
            out.route = path;
            goto log;
        }
    }
    gw_match m;
    gw_match_result mr = gw_routes_match(h->o.routes, &m, method, path);
    if (mr == GW_MATCH_OK) {
        out.slot = m.route->index;
        out.route = m.route->pattern;
        if (r->too_large) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", h->o.max_body_bytes);
            ret = gw_fail_request(conn, &out, 413, RPC_RESOURCE_EXHAUSTED, msg, rid, NULL);
        } else {
            ret = gw_call_route(h, conn, r, &m, query, rid, &out);
        }
        gw_match_dispose(&m);
    } else if (mr == GW_MATCH_METHOD) {
        gw_hdrs hs;
        hs.n = 0;
        gw_hdr_add(&hs, "Allow", m.allow);
        char msg[256];
        snprintf(msg, sizeof msg, "%s is not allowed on %.150s (allowed: %s)", method, path, m.allow);
        ret = gw_fail_request(conn, &out, 405, RPC_UNIMPLEMENTED, msg, rid, &hs);
    } else if (mr == GW_MATCH_BAD) {
        ret = gw_fail_request(conn, &out, 400, RPC_INVALID_ARGUMENT, "malformed percent-encoding in the path", rid,
                              NULL);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, path);
        ret = gw_fail_request(conn, &out, 404, RPC_NOT_FOUND, msg, rid, NULL);
    }
log:;
    int64_t us = gw_now_us() - r->t0_us;
    gw_metrics_record(h->o.metrics, out.slot, method, out.http_code, us);
    if (h->o.access_log) {
        char qp[300], qr[200];
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char peer[64] = "-";
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, peer, sizeof peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer, sizeof peer);
        }
        log_info("http.request", "method=%s path=%s route=%s status=%u code=%s duration_us=%lld peer=%s upstream=%s",
                 method, log_quote(qp, sizeof qp, path), log_quote(qr, sizeof qr, out.route), out.http_code,
                 rpc_code_name(out.grpc_code), (long long)us, peer, out.upstream ? out.upstream : "-");
    }
    log_set_request_id(NULL);
    return ret;
}

static enum MHD_Result gw_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)url;
    (void)version;
    gw_http *h = cls;
    gw_req *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (!r->started) {
        r->started = true;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body_bytes) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", h->o.max_body_bytes);
            gw_metrics_record(h->o.metrics, gw_routes_count(h->o.routes) + GW_ROUTE_UNMATCHED, method, 413,
                              gw_now_us() - r->t0_us);
            if (h->o.access_log)
                log_info("http.request", "method=%s status=413 detail=body_too_large", method);
            return gw_send_status(conn, 413, RPC_RESOURCE_EXHAUSTED, msg, NULL, NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large && r->body.len + *upload_data_size <= h->o.max_body_bytes)
            gw_buf_append(&r->body, upload_data, *upload_data_size);
        else
            r->too_large = true;
        *upload_data_size = 0;
        return r->body.oom ? MHD_NO : MHD_YES;
    }
    return gw_handle(h, conn, r, method);
}

/* ---- start and stop ---------------------------------------------------------------------- */

static int gw_parse_listen(struct sockaddr_storage *ss, const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || colon[1] == '\0')
        return -1;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

gw_http *gw_http_start(char *err, size_t err_len, const gw_http_options *o)
{
    gw_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    h->o = *o;
    h->jo.resolve = gw_types_find;
    h->jo.resolve_arg = o->types;
    h->jo.max_depth = GW_JSON_DEPTH_DEFAULT;
    uint8_t rnd[4] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (uint8_t)time(NULL);
    snprintf(h->rid_prefix, sizeof h->rid_prefix, "gw-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);

    struct sockaddr_storage ss;
    if (gw_parse_listen(&ss, o->listen) != 0) {
        snprintf(err, err_len, "http.listen: expected host:port (IPv4 address, localhost or [IPv6]), got \"%s\"",
                 o->listen);
        free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool tls = o->tls_cert_pem && o->tls_key_pem;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, err_len, "this libmicrohttpd has no TLS support");
            free(h);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[16];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)gw_mhd_log, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->max_connections, NULL};
    if (o->max_connections_per_ip)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->max_connections_per_ip,
                                            NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->idle_timeout_s, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)gw_uri_cb, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)gw_completed_cb, h};
    if (tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)o->tls_cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)o->tls_key_pem};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, gw_access, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, err_len, "cannot serve HTTP on %s (address in use, or a bad TLS certificate/key)", o->listen);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    return h;
}

int gw_http_port(const gw_http *h)
{
    return h->port;
}

void gw_http_stop(gw_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
