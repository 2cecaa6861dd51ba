/* gw_routes: HTTP routes from the google.api.http annotations of a
 * descriptor set (never a hand-kept table). Each method's HttpRule
 * (MethodOptions extension 72295728, kept by protobuf-c among the
 * options' unknown fields) and its additional_bindings become routes:
 * HTTP method, path template, body ("" none, "*" all, or a top-level
 * field), response_body, and the protobuf-c method descriptor from the
 * generated registry.
 *
 * Path templates (google/api/http.proto grammar):
 *     Template = "/" Segments [ ":" Verb ]
 *     Segment  = "*" | "**" | LITERAL | "{" FieldPath [ "=" Segments ] "}"
 * {name} is {name=*}; "**" (any number of segments) may only come last.
 * Variables bind percent-decoded text to the (dotted) field path; a
 * multi-segment variable keeps "%2F" as is.
 *
 * A route whose body field has type bytes is a raw-body route: the HTTP
 * body goes into that field byte for byte, and a repeated message field
 * named "headers" ({name, value}) of the request gets every request
 * header (webhook ingress). Immutable once built: any thread may match. */
#ifndef COFFER_GW_ROUTES_H
#define COFFER_GW_ROUTES_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_ROUTE_VARS_MAX 8u
#define GW_ROUTE_SEGS_MAX 32u

typedef enum { GW_SEG_LITERAL = 0, GW_SEG_STAR, GW_SEG_DSTAR } gw_seg_kind;

typedef struct {
    gw_seg_kind kind;
    char *literal; /* GW_SEG_LITERAL */
} gw_seg;

typedef struct {
    char *field_path; /* "order_id", "parent.name" */
    size_t first;     /* the segments it spans: [first, last) */
    size_t last;
} gw_var;

typedef struct {
    size_t index;                /* 0..gw_routes_count-1 */
    char http_method[16];        /* "GET", "POST", ... (custom kinds upper-cased) */
    char *pattern;               /* the template as written */
    gw_seg segs[GW_ROUTE_SEGS_MAX];
    size_t n_segs;
    gw_var vars[GW_ROUTE_VARS_MAX];
    size_t n_vars;
    char *verb;                  /* NULL or the ":verb" without ':' */
    char *body;                  /* NULL: none; "*": the whole request */
    const ProtobufCFieldDescriptor *body_field;     /* body names a field */
    const ProtobufCFieldDescriptor *response_field; /* response_body names a field */
    const ProtobufCFieldDescriptor *headers_field;  /* raw-body routes: headers, or NULL */
    bool raw_body;
    const ProtobufCServiceDescriptor *service;
    const ProtobufCMethodDescriptor *method;
    char grpc_path[256];         /* "/coffer.v1.SystemService/GetInfo" */
    size_t n_literals;           /* for precedence: more literal segments win */
} gw_route;

/* Looks a service up by full name; NULL when unknown. */
typedef const ProtobufCServiceDescriptor *(*gw_service_lookup_fn)(const char *full_name);

typedef struct gw_routes gw_routes;

/* Builds the routes of every annotated method in set[0..len). Returns the
 * table, or NULL with err naming the method and what is wrong (a bad
 * template, a variable or body naming no field, a service the lookup does
 * not know, a streaming method). */
__attribute__((warn_unused_result))
gw_routes *gw_routes_new(char *err, size_t err_len, const uint8_t *set, size_t len, gw_service_lookup_fn lookup);

void gw_routes_free(gw_routes *r);

size_t gw_routes_count(const gw_routes *r);
const gw_route *gw_routes_get(const gw_routes *r, size_t i);

/* A match: the route and each variable's decoded value (malloc'd). */
typedef struct {
    const gw_route *route;
    char *values[GW_ROUTE_VARS_MAX];
    char allow[64]; /* GW_MATCH_METHOD: the methods the path takes, "GET, POST" */
} gw_match;

typedef enum {
    GW_MATCH_OK = 0,
    GW_MATCH_NONE,   /* no route has this path */
    GW_MATCH_METHOD, /* the path exists with other methods (405) */
    GW_MATCH_BAD,    /* the path is malformed (bad percent-encoding): 400 */
} gw_match_result;

/* Matches method and path (no query string). m: output; dispose it. */
gw_match_result gw_routes_match(const gw_routes *r, gw_match *m, const char *method, const char *path);

void gw_match_dispose(gw_match *m);

/* Parses one template into route (segs, vars, verb, pattern). Returns 0,
 * or -1 with err. Exposed for tests. */
__attribute__((warn_unused_result))
int gw_route_parse_template(gw_route *route, char *err, size_t err_len, const char *tmpl);

/* Frees what gw_route_parse_template allocated. */
void gw_route_dispose(gw_route *route);

#endif
