#include "gw_routes.h"

#include "google/api/http.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "gw_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_HTTP_RULE_FIELD 72295728u

struct gw_routes {
    gw_route *routes;
    size_t n, cap;
};

__attribute__((format(printf, 3, 4)))
static int gw_routes_fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- templates ------------------------------------------------------------------------- */

static bool gw_ident_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return s[0] != '.' && s[n - 1] != '.';
}

static int gw_add_seg(gw_route *r, char *err, size_t err_len, const char *s, size_t n)
{
    if (r->n_segs >= GW_ROUTE_SEGS_MAX)
        return gw_routes_fail(err, err_len, "more than %u segments", GW_ROUTE_SEGS_MAX);
    if (r->n_segs > 0 && r->segs[r->n_segs - 1].kind == GW_SEG_DSTAR)
        return gw_routes_fail(err, err_len, "\"**\" must be the last segment");
    gw_seg *g = &r->segs[r->n_segs];
    memset(g, 0, sizeof *g);
    if (n == 2 && memcmp(s, "**", 2) == 0) {
        g->kind = GW_SEG_DSTAR;
    } else if (n == 1 && s[0] == '*') {
        g->kind = GW_SEG_STAR;
    } else {
        if (n == 0 || memchr(s, '{', n) || memchr(s, '}', n) || memchr(s, '*', n))
            return gw_routes_fail(err, err_len, "bad segment \"%.*s\"", (int)n, s);
        g->kind = GW_SEG_LITERAL;
        g->literal = strndup(s, n);
        if (!g->literal)
            return gw_routes_fail(err, err_len, "out of memory");
        r->n_literals++;
    }
    r->n_segs++;
    return 0;
}

/* Parses "a/STAR/b" (segments of a variable or of the template) from s[0..n). */
static int gw_add_segs(gw_route *r, char *err, size_t err_len, const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != '/')
            j++;
        if (gw_add_seg(r, err, err_len, s + i, j - i) != 0)
            return -1;
        if (j >= n)
            return 0;
        i = j + 1;
    }
}

int gw_route_parse_template(gw_route *r, char *err, size_t err_len, const char *tmpl)
{
    size_t len = strlen(tmpl);
    if (len < 1 || tmpl[0] != '/')
        return gw_routes_fail(err, err_len, "template \"%s\" does not start with '/'", tmpl);
    r->pattern = strdup(tmpl);
    if (!r->pattern)
        return gw_routes_fail(err, err_len, "out of memory");
    /* The verb: a ':' outside braces after the last '/' outside braces. */
    size_t last_slash = 0, depth = 0, end = len;
    for (size_t i = 0; i < len; i++) {
        if (tmpl[i] == '{')
            depth++;
        else if (tmpl[i] == '}')
            depth = depth ? depth - 1 : 0;
        else if (tmpl[i] == '/' && depth == 0)
            last_slash = i;
    }
    depth = 0;
    for (size_t i = last_slash; i < len; i++) {
        if (tmpl[i] == '{')
            depth++;
        else if (tmpl[i] == '}')
            depth = depth ? depth - 1 : 0;
        else if (tmpl[i] == ':' && depth == 0) {
            end = i;
            /* A verb is a literal ("realize-loss" has a dash). */
            if (i + 1 >= len)
                return gw_routes_fail(err, err_len, "empty verb in \"%s\"", tmpl);
            for (size_t k = i + 1; k < len; k++)
                if (tmpl[k] == '/' || tmpl[k] == '{' || tmpl[k] == '}' || tmpl[k] == '*' || tmpl[k] == ':')
                    return gw_routes_fail(err, err_len, "bad verb in \"%s\"", tmpl);
            r->verb = strdup(tmpl + i + 1);
            if (!r->verb)
                return gw_routes_fail(err, err_len, "out of memory");
            break;
        }
    }
    if (end == 1)
        return 0; /* "/" alone */
    size_t i = 1;
    while (i < end) {
        if (tmpl[i] == '{') {
            size_t close = i;
            while (close < end && tmpl[close] != '}')
                close++;
            if (close >= end)
                return gw_routes_fail(err, err_len, "unclosed '{' in \"%s\"", tmpl);
            const char *eq = memchr(tmpl + i + 1, '=', close - i - 1);
            size_t fp_len = eq ? (size_t)(eq - tmpl - i - 1) : close - i - 1;
            if (!gw_ident_ok(tmpl + i + 1, fp_len))
                return gw_routes_fail(err, err_len, "bad variable name in \"%s\"", tmpl);
            if (r->n_vars >= GW_ROUTE_VARS_MAX)
                return gw_routes_fail(err, err_len, "more than %u variables in \"%s\"", GW_ROUTE_VARS_MAX, tmpl);
            gw_var *v = &r->vars[r->n_vars];
            v->field_path = strndup(tmpl + i + 1, fp_len);
            if (!v->field_path)
                return gw_routes_fail(err, err_len, "out of memory");
            r->n_vars++;
            v->first = r->n_segs;
            if (eq) {
                if (gw_add_segs(r, err, err_len, eq + 1, (size_t)(tmpl + close - eq - 1)) != 0)
                    return -1;
            } else if (gw_add_seg(r, err, err_len, "*", 1) != 0) {
                return -1;
            }
            v->last = r->n_segs;
            i = close + 1;
        } else {
            size_t j = i;
            while (j < end && tmpl[j] != '/')
                j++;
            if (gw_add_seg(r, err, err_len, tmpl + i, j - i) != 0)
                return -1;
            i = j;
        }
        if (i < end) {
            if (tmpl[i] != '/')
                return gw_routes_fail(err, err_len, "expected '/' at offset %zu of \"%s\"", i, tmpl);
            i++;
            if (i >= end)
                return gw_routes_fail(err, err_len, "trailing '/' in \"%s\"", tmpl);
        }
    }
    return 0;
}

void gw_route_dispose(gw_route *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->segs[i].literal);
    for (size_t i = 0; i < r->n_vars; i++)
        free(r->vars[i].field_path);
    free(r->pattern);
    free(r->verb);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- building from the descriptor set -------------------------------------------------- */

/* Checks that a dotted path names a non-repeated field of d (messages on the way). */
static bool gw_field_path_ok(const ProtobufCMessageDescriptor *d, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (!d)
            return false;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, tok);
        if (!f)
            return false;
        d = f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED ? f->descriptor : NULL;
    }
    return true;
}

static int gw_routes_add(gw_routes *t, char *err, size_t err_len, const Google__Api__HttpRule *rule,
                         const ProtobufCServiceDescriptor *svc, const ProtobufCMethodDescriptor *m)
{
    const char *method, *tmpl;
    switch (rule->pattern_case) {
    case GOOGLE__API__HTTP_RULE__PATTERN_GET: method = "GET"; tmpl = rule->get; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PUT: method = "PUT"; tmpl = rule->put; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_POST: method = "POST"; tmpl = rule->post; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_DELETE: method = "DELETE"; tmpl = rule->delete_; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PATCH: method = "PATCH"; tmpl = rule->patch; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
        method = rule->custom && rule->custom->kind ? rule->custom->kind : "";
        tmpl = rule->custom ? rule->custom->path : NULL;
        break;
    default:
        return gw_routes_fail(err, err_len, "%s/%s: google.api.http without a pattern", svc->name, m->name);
    }
    if (!tmpl || !*method)
        return gw_routes_fail(err, err_len, "%s/%s: empty google.api.http pattern", svc->name, m->name);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        gw_route *nr = realloc(t->routes, cap * sizeof *nr);
        if (!nr)
            return gw_routes_fail(err, err_len, "out of memory");
        t->routes = nr;
        t->cap = cap;
    }
    gw_route *r = &t->routes[t->n];
    memset(r, 0, sizeof *r);
    char perr[256];
    if (gw_route_parse_template(r, perr, sizeof perr, tmpl) != 0) {
        gw_route_dispose(r);
        return gw_routes_fail(err, err_len, "%s/%s: %s", svc->name, m->name, perr);
    }
    t->n++;
    r->index = t->n - 1;
    size_t k = 0;
    for (; method[k] && k + 1 < sizeof r->http_method; k++)
        r->http_method[k] = (char)(method[k] >= 'a' && method[k] <= 'z' ? method[k] - 'a' + 'A' : method[k]);
    r->http_method[k] = '\0';
    r->service = svc;
    r->method = m;
    snprintf(r->grpc_path, sizeof r->grpc_path, "/%s/%s", svc->name, m->name);
    for (size_t i = 0; i < r->n_vars; i++)
        if (!gw_field_path_ok(m->input, r->vars[i].field_path))
            return gw_routes_fail(err, err_len, "%s/%s: path variable {%s} names no field of %s", svc->name,
                                  m->name, r->vars[i].field_path, m->input->name);
    if (rule->body && *rule->body) {
        r->body = strdup(rule->body);
        if (!r->body)
            return gw_routes_fail(err, err_len, "out of memory");
        if (strcmp(rule->body, "*") != 0) {
            r->body_field = protobuf_c_message_descriptor_get_field_by_name(m->input, rule->body);
            if (!r->body_field)
                return gw_routes_fail(err, err_len, "%s/%s: body \"%s\" names no field of %s", svc->name, m->name,
                                      rule->body, m->input->name);
            if (r->body_field->type == PROTOBUF_C_TYPE_BYTES && r->body_field->label != PROTOBUF_C_LABEL_REPEATED) {
                r->raw_body = true;
                const ProtobufCFieldDescriptor *h = protobuf_c_message_descriptor_get_field_by_name(m->input, "headers");
                if (h && h->label == PROTOBUF_C_LABEL_REPEATED && h->type == PROTOBUF_C_TYPE_MESSAGE &&
                    protobuf_c_message_descriptor_get_field_by_name(h->descriptor, "name") &&
                    protobuf_c_message_descriptor_get_field_by_name(h->descriptor, "value"))
                    r->headers_field = h;
            }
        }
    }
    if (rule->response_body && *rule->response_body) {
        r->response_field = protobuf_c_message_descriptor_get_field_by_name(m->output, rule->response_body);
        if (!r->response_field)
            return gw_routes_fail(err, err_len, "%s/%s: response_body \"%s\" names no field of %s", svc->name,
                                  m->name, rule->response_body, m->output->name);
    }
    return 0;
}

static int gw_routes_add_method(gw_routes *t, char *err, size_t err_len, const ProtobufCServiceDescriptor *svc,
                                const Google__Protobuf__MethodDescriptorProto *mp)
{
    if (!mp->options)
        return 0;
    const ProtobufCMessage *opts = &mp->options->base;
    for (unsigned u = 0; u < opts->n_unknown_fields; u++) {
        const ProtobufCMessageUnknownField *uf = &opts->unknown_fields[u];
        if (uf->tag != GW_HTTP_RULE_FIELD || uf->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            continue;
        /* protobuf-c keeps a length-delimited unknown field with its length prefix. */
        const uint8_t *p = uf->data, *end = uf->data + uf->len;
        uint64_t flen = 0;
        unsigned shift = 0;
        while (p < end && shift < 64) {
            flen |= (uint64_t)(*p & 0x7f) << shift;
            shift += 7;
            if (!(*p++ & 0x80))
                break;
        }
        Google__Api__HttpRule *rule = flen == (uint64_t)(end - p) ? google__api__http_rule__unpack(NULL, (size_t)flen, p)
                                                                  : NULL;
        if (!rule)
            return gw_routes_fail(err, err_len, "%s/%s: google.api.http does not decode", svc->name, mp->name);
        const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(svc, mp->name);
        int rc = 0;
        if (!m)
            rc = gw_routes_fail(err, err_len, "%s has no generated method %s", svc->name, mp->name);
        else if ((mp->has_client_streaming && mp->client_streaming) || (mp->has_server_streaming && mp->server_streaming))
            rc = gw_routes_fail(err, err_len, "%s/%s: streaming methods are not served over HTTP/JSON", svc->name,
                                mp->name);
        if (rc == 0)
            rc = gw_routes_add(t, err, err_len, rule, svc, m);
        for (size_t b = 0; rc == 0 && b < rule->n_additional_bindings; b++) {
            if (rule->additional_bindings[b]->n_additional_bindings)
                rc = gw_routes_fail(err, err_len, "%s/%s: nested additional_bindings", svc->name, mp->name);
            else
                rc = gw_routes_add(t, err, err_len, rule->additional_bindings[b], svc, m);
        }
        google__api__http_rule__free_unpacked(rule, NULL);
        if (rc != 0)
            return -1;
    }
    return 0;
}

gw_routes *gw_routes_new(char *err, size_t err_len, const uint8_t *set, size_t len, gw_service_lookup_fn lookup)
{
    gw_routes *t = calloc(1, sizeof *t);
    if (!t) {
        gw_routes_fail(err, err_len, "out of memory");
        return NULL;
    }
    Google__Protobuf__FileDescriptorSet *fs = google__protobuf__file_descriptor_set__unpack(NULL, len, set);
    if (!fs) {
        gw_routes_fail(err, err_len, "the descriptor set does not decode");
        goto fail;
    }
    for (size_t f = 0; f < fs->n_file; f++) {
        const Google__Protobuf__FileDescriptorProto *fp = fs->file[f];
        for (size_t s = 0; s < fp->n_service; s++) {
            const Google__Protobuf__ServiceDescriptorProto *sp = fp->service[s];
            char full[256];
            if (fp->package && *fp->package)
                snprintf(full, sizeof full, "%s.%s", fp->package, sp->name);
            else
                snprintf(full, sizeof full, "%s", sp->name);
            bool annotated = false;
            for (size_t m = 0; m < sp->n_method; m++)
                for (unsigned u = 0; sp->method[m]->options && u < sp->method[m]->options->base.n_unknown_fields; u++)
                    if (sp->method[m]->options->base.unknown_fields[u].tag == GW_HTTP_RULE_FIELD)
                        annotated = true;
            if (!annotated)
                continue;
            const ProtobufCServiceDescriptor *svc = lookup(full);
            if (!svc) {
                gw_routes_fail(err, err_len, "service %s has HTTP annotations but no generated code linked", full);
                goto fail;
            }
            for (size_t m = 0; m < sp->n_method; m++)
                if (gw_routes_add_method(t, err, err_len, svc, sp->method[m]) != 0)
                    goto fail;
        }
    }
    google__protobuf__file_descriptor_set__free_unpacked(fs, NULL);
    return t;
fail:
    if (fs)
        google__protobuf__file_descriptor_set__free_unpacked(fs, NULL);
    gw_routes_free(t);
    return NULL;
}

void gw_routes_free(gw_routes *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        gw_route_dispose(&t->routes[i]);
    free(t->routes);
    free(t);
}

size_t gw_routes_count(const gw_routes *t)
{
    return t->n;
}

const gw_route *gw_routes_get(const gw_routes *t, size_t i)
{
    return i < t->n ? &t->routes[i] : NULL;
}

/* ---- matching ---------------------------------------------------------------------------- */

static int gw_hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; keep_slash leaves "%2F" as is.
 * NULL on a bad escape or a NUL byte. */
static char *gw_pct_decode(const char *s, size_t n, bool keep_slash)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n) {
            free(out);
            return NULL;
        }
        int a = gw_hex(s[i + 1]), b = gw_hex(s[i + 2]);
        if (a < 0 || b < 0) {
            free(out);
            return NULL;
        }
        char c = (char)(a * 16 + b);
        if (c == '\0') {
            free(out);
            return NULL;
        }
        if (keep_slash && c == '/') {
            memcpy(out + o, s + i, 3);
            o += 3;
        } else {
            out[o++] = c;
        }
        i += 2;
    }
    out[o] = '\0';
    return out;
}

typedef struct {
    const char *start[GW_ROUTE_SEGS_MAX * 2];
    size_t len[GW_ROUTE_SEGS_MAX * 2];
    size_t n;
} gw_req_segs;

static bool gw_seg_eq(const char *s, size_t n, const char *literal)
{
    size_t ll = strlen(literal);
    if (!memchr(s, '%', n))
        return n == ll && memcmp(s, literal, n) == 0;
    char *d = gw_pct_decode(s, n, false);
    bool eq = d && strcmp(d, literal) == 0;
    free(d);
    return eq;
}

/* Whether route r matches the request segments; last segment's verb already split. */
static bool gw_route_matches(const gw_route *r, const gw_req_segs *q, size_t last_len)
{
    size_t j = 0;
    for (size_t i = 0; i < r->n_segs; i++) {
        const gw_seg *g = &r->segs[i];
        if (g->kind == GW_SEG_DSTAR)
            return true;
        if (j >= q->n)
            return false;
        size_t len = j == q->n - 1 ? last_len : q->len[j];
        if (g->kind == GW_SEG_STAR) {
            if (len == 0)
                return false;
        } else if (!gw_seg_eq(q->start[j], len, g->literal)) {
            return false;
        }
        j++;
    }
    return j == q->n;
}

gw_match_result gw_routes_match(const gw_routes *t, gw_match *m, const char *method, const char *path)
{
    memset(m, 0, sizeof *m);
    if (path[0] != '/')
        return GW_MATCH_NONE;
    gw_req_segs q;
    q.n = 0;
    if (path[1] != '\0') {
        const char *p = path + 1;
        for (;;) {
            if (q.n >= sizeof q.start / sizeof q.start[0])
                return GW_MATCH_NONE;
            size_t n = strcspn(p, "/");
            q.start[q.n] = p;
            q.len[q.n] = n;
            q.n++;
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    const gw_route *best = NULL;
    size_t best_last_len = 0;
    bool path_known = false;
    for (size_t i = 0; i < t->n; i++) {
        const gw_route *r = &t->routes[i];
        size_t last_len = q.n ? q.len[q.n - 1] : 0;
        if (r->verb) {
            size_t vl = strlen(r->verb);
            if (q.n == 0 || last_len < vl + 1 || q.start[q.n - 1][last_len - vl - 1] != ':' ||
                memcmp(q.start[q.n - 1] + last_len - vl, r->verb, vl) != 0)
                continue;
            last_len -= vl + 1;
        }
        if (!gw_route_matches(r, &q, last_len))
            continue;
        if (strcmp(r->http_method, method) != 0) {
            if (!strstr(m->allow, r->http_method) &&
                strlen(m->allow) + strlen(r->http_method) + 3 < sizeof m->allow) {
                if (m->allow[0])
                    strcat(m->allow, ", ");
                strcat(m->allow, r->http_method);
            }
            path_known = true;
            continue;
        }
        if (!best || r->n_literals > best->n_literals || (r->verb && !best->verb)) {
            best = r;
            best_last_len = last_len;
        }
    }
    if (!best)
        return path_known ? GW_MATCH_METHOD : GW_MATCH_NONE;
    m->route = best;
    for (size_t v = 0; v < best->n_vars; v++) {
        const gw_var *var = &best->vars[v];
        size_t first = var->first;
        size_t last = var->last;
        bool dstar = last == best->n_segs && best->n_segs && best->segs[best->n_segs - 1].kind == GW_SEG_DSTAR;
        if (dstar)
            last = q.n;
        const char *s = first < q.n ? q.start[first] : path + strlen(path);
        size_t n = 0;
        if (last > first) {
            size_t end_len = last - 1 == q.n - 1 ? best_last_len : q.len[last - 1];
            n = (size_t)(q.start[last - 1] + end_len - s);
        }
        m->values[v] = gw_pct_decode(s, n, last - first > 1 || dstar);
        if (!m->values[v]) {
            gw_match_dispose(m);
            return GW_MATCH_BAD;
        }
    }
    return GW_MATCH_OK;
}

void gw_match_dispose(gw_match *m)
{
    for (size_t i = 0; i < GW_ROUTE_VARS_MAX; i++)
        free(m->values[i]);
    memset(m, 0, sizeof *m);
}
