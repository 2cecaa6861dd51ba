/* gw_routes: templates, routes built from annotations (the test-only
 * coffer.test.v1.TestService and the real API set), matching. */
#include "gw_registry.h"
#include "gw_routes.h"
#include "gw_types.h"
#include "test_support.h"
#include "transcode_test.pb-c.h"

#include <string.h>

extern const unsigned char transcode_test_descriptor_set[];
extern const size_t transcode_test_descriptor_set_len;

static const ProtobufCServiceDescriptor *test_lookup(const char *name)
{
    return strcmp(name, "coffer.test.v1.TestService") == 0 ? &coffer__test__v1__test_service__descriptor : NULL;
}

static gw_routes *test_routes(void)
{
    char err[256];
    gw_routes *r = gw_routes_new(err, sizeof err, transcode_test_descriptor_set, transcode_test_descriptor_set_len,
                                 test_lookup);
    if (!r)
        fprintf(stderr, "routes: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

static void test_templates(void)
{
    static const struct {
        const char *tmpl;
        int ok;
        size_t segs, vars;
        const char *verb;
    } cases[] = {
        {"/v1/system/info", 1, 3, 0, NULL},
        {"/v1/deposits/{order_id}:complete", 1, 3, 1, "complete"},
        {"/v1/ops/vaults/{vault_id}:realize-loss", 1, 4, 1, "realize-loss"},
        {"/v1/{name=shelves/*/books/*}", 1, 5, 1, NULL},
        {"/v1/files/{path=**}", 1, 3, 1, NULL},
        {"/v1/*/x", 1, 3, 0, NULL},
        {"/", 1, 0, 0, NULL},
        {"v1/x", 0, 0, 0, NULL},
        {"/v1/{a", 0, 0, 0, NULL},
        {"/v1/**/x", 0, 0, 0, NULL},
        {"/v1/x/", 0, 0, 0, NULL},
        {"/v1/{bad name}", 0, 0, 0, NULL},
        {"/v1/x:", 0, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_route r;
        memset(&r, 0, sizeof r);
        char err[256];
        int rc = gw_route_parse_template(&r, err, sizeof err, cases[i].tmpl);
        if ((rc == 0) != cases[i].ok) {
            fprintf(stderr, "template %s: rc=%d err=%s\n", cases[i].tmpl, rc, err);
            CU_FAIL("template");
        } else if (rc == 0) {
            CU_ASSERT_EQUAL(r.n_segs, cases[i].segs);
            CU_ASSERT_EQUAL(r.n_vars, cases[i].vars);
            if (cases[i].verb) {
                CU_ASSERT_STRING_EQUAL(r.verb ? r.verb : "", cases[i].verb);
            } else {
                CU_ASSERT_PTR_NULL(r.verb);
            }
        }
        gw_route_dispose(&r);
    }
}

static void test_bindings(void)
{
    gw_routes *t = test_routes();
    CU_ASSERT_EQUAL(gw_routes_count(t), 7); /* 1 + 5 additional bindings + Literal */
    const gw_route *post = NULL, *patch = NULL, *head = NULL;
    for (size_t i = 0; i < gw_routes_count(t); i++) {
        const gw_route *r = gw_routes_get(t, i);
        if (strcmp(r->http_method, "POST") == 0)
            post = r;
        if (strcmp(r->http_method, "PATCH") == 0)
            patch = r;
        if (strcmp(r->http_method, "HEAD") == 0)
            head = r;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(post);
    CU_ASSERT_STRING_EQUAL(post->body, "inner");
    CU_ASSERT_PTR_NOT_NULL(post->body_field);
    CU_ASSERT_PTR_NOT_NULL(post->response_field);
    CU_ASSERT_FALSE(post->raw_body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(patch);
    CU_ASSERT_TRUE(patch->raw_body);
    CU_ASSERT_PTR_NOT_NULL(head);
    CU_ASSERT_STRING_EQUAL(post->grpc_path, "/coffer.test.v1.TestService/Touch");
    gw_routes_free(t);
}

static void test_match(void)
{
    gw_routes *t = test_routes();
    static const struct {
        const char *method, *path;
        gw_match_result want;
        const char *grpc_method;
        const char *v0, *v1;
    } cases[] = {
        {"GET", "/v1/things/abc", GW_MATCH_OK, "Touch", "abc", NULL},
        {"GET", "/v1/things/a%20b", GW_MATCH_OK, "Touch", "a b", NULL},
        {"GET", "/v1/things/special", GW_MATCH_OK, "Literal", NULL, NULL}, /* the literal wins */
        {"POST", "/v1/things/x:touch", GW_MATCH_OK, "Touch", "x", NULL},
        {"GET", "/v1/files/a/b/c.txt", GW_MATCH_OK, "Touch", "a/b/c.txt", NULL},
        {"GET", "/v1/files/a%2Fb", GW_MATCH_OK, "Touch", "a%2Fb", NULL},
        {"GET", "/v1/files/", GW_MATCH_OK, "Touch", "", NULL},
        {"PUT", "/v1/shelves/s1/books/42", GW_MATCH_OK, "Touch", "shelves/s1", "42"},
        {"PATCH", "/v1/raw/k", GW_MATCH_OK, "Touch", "k", NULL},
        {"HEAD", "/v1/things", GW_MATCH_OK, "Touch", NULL, NULL},
        {"DELETE", "/v1/things/abc", GW_MATCH_METHOD, NULL, NULL, NULL},
        {"GET", "/v1/things/abc/extra", GW_MATCH_NONE, NULL, NULL, NULL},
        {"GET", "/v1/things/", GW_MATCH_NONE, NULL, NULL, NULL},
        {"GET", "/v2/things/abc", GW_MATCH_NONE, NULL, NULL, NULL},
        {"GET", "/v1/things/a%zz", GW_MATCH_BAD, NULL, NULL, NULL},
        {"GET", "/v1/things/a%00", GW_MATCH_BAD, NULL, NULL, NULL},
        {"POST", "/v1/things/x:other", GW_MATCH_METHOD, NULL, NULL, NULL}, /* GET {text} takes "x:other" */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_match m;
        gw_match_result r = gw_routes_match(t, &m, cases[i].method, cases[i].path);
        if (r != cases[i].want) {
            fprintf(stderr, "%s %s: got %d want %d\n", cases[i].method, cases[i].path, (int)r, (int)cases[i].want);
            CU_FAIL("match result");
        } else if (r == GW_MATCH_OK) {
            CU_ASSERT_STRING_EQUAL(m.route->method->name, cases[i].grpc_method);
            if (cases[i].v0) {
                CU_ASSERT_STRING_EQUAL(m.values[0] ? m.values[0] : "(null)", cases[i].v0);
            }
            if (cases[i].v1) {
                CU_ASSERT_STRING_EQUAL(m.values[1] ? m.values[1] : "(null)", cases[i].v1);
            }
        } else if (r == GW_MATCH_METHOD) {
            CU_ASSERT_PTR_NOT_NULL(strstr(m.allow, "GET"));
        }
        gw_match_dispose(&m);
    }
    gw_routes_free(t);
}

/* The real API: every annotated method of the embedded set has a route. */
static void test_api_routes(void)
{
    char err[256];
    gw_routes *t = gw_routes_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len,
                                 gw_types_service);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    gw_match m;
    CU_ASSERT_EQUAL(gw_routes_match(t, &m, "GET", "/v1/system/info"), GW_MATCH_OK);
    CU_ASSERT_STRING_EQUAL(m.route->grpc_path, "/coffer.v1.SystemService/GetInfo");
    gw_match_dispose(&m);
    CU_ASSERT_EQUAL(gw_routes_match(t, &m, "POST", "/v1/webhooks/acme"), GW_MATCH_OK);
    CU_ASSERT_TRUE(m.route->raw_body);
    CU_ASSERT_PTR_NOT_NULL(m.route->headers_field);
    CU_ASSERT_STRING_EQUAL(m.values[0], "acme");
    gw_match_dispose(&m);
    gw_types *ty = gw_types_new();
    CU_ASSERT_PTR_NOT_NULL(gw_types_find(ty, "google.rpc.RetryInfo"));
    CU_ASSERT_PTR_NOT_NULL(gw_types_find(ty, "coffer.v1.GetInfoResponse"));
    CU_ASSERT_PTR_NULL(gw_types_find(ty, "no.Such"));
    gw_types_free(ty);
    gw_routes_free(t);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"path templates", test_templates},
        {"additional bindings, body, response_body, raw body", test_bindings},
        {"matching and variables", test_match},
        {"the API's routes", test_api_routes},
        {NULL, NULL},
    };
    test_add_suite("gw_routes", cases);
}
