/* auth: bearer parsing, the admin token compared by hash, the resolver
 * hook, and who may call what. */
#include "auth.h"
#include "test_support.h"

#include <string.h>

static const char admin_token[] = "0123456789abcdef0123456789abcdef-admin";

static rpc_code authn(const auth *a, auth_caller *c, const char *header)
{
    char msg[256] = "";
    rpc_code code = auth_authenticate(a, c, msg, sizeof msg, header, header ? strlen(header) : 0);
    if (code != RPC_OK)
        CU_ASSERT_TRUE(msg[0] != '\0');
    /* Messages never repeat the token. */
    CU_ASSERT_PTR_NULL(strstr(msg, admin_token));
    return code;
}

static void test_auth_config(void)
{
    char err[256];
    CU_ASSERT_PTR_NULL(auth_new(err, sizeof err, "short"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "32"));
    CU_ASSERT_PTR_NULL(auth_new(err, sizeof err, "0123456789abcdef 0123456789abcdef"));
    auth *a = auth_new(err, sizeof err, NULL);
    CU_ASSERT_PTR_NOT_NULL(a);
    auth_free(a);
    a = auth_new(err, sizeof err, "");
    CU_ASSERT_PTR_NOT_NULL(a);
    auth_free(a);
    auth_free(NULL);
}

static void test_auth_admin_token(void)
{
    char err[256];
    auth *a = auth_new(err, sizeof err, admin_token);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    auth_caller c;
    char hdr[600];

    CU_ASSERT_EQUAL(authn(a, &c, NULL), RPC_OK);
    CU_ASSERT_EQUAL(c.kind, AUTH_ANONYMOUS);
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_OK);
    CU_ASSERT_EQUAL(c.kind, AUTH_ADMIN);
    snprintf(hdr, sizeof hdr, "bEaReR  %s", admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_OK);
    CU_ASSERT_EQUAL(c.kind, AUTH_ADMIN);

    /* Near misses: a prefix, one more character, another byte. */
    snprintf(hdr, sizeof hdr, "Bearer %.*s", (int)strlen(admin_token) - 1, admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_UNAUTHENTICATED);
    snprintf(hdr, sizeof hdr, "Bearer %sx", admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_UNAUTHENTICATED);
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    hdr[10] ^= 1;
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_UNAUTHENTICATED);
    CU_ASSERT_EQUAL(c.kind, AUTH_ANONYMOUS);

    /* Malformed headers. */
    CU_ASSERT_EQUAL(authn(a, &c, "Basic dXNlcjpwYXNz"), RPC_UNAUTHENTICATED);
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer"), RPC_UNAUTHENTICATED);
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer "), RPC_UNAUTHENTICATED);
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer a\tb"), RPC_UNAUTHENTICATED);
    memset(hdr, 'k', sizeof hdr - 1);
    memcpy(hdr, "Bearer ", 7);
    hdr[sizeof hdr - 1] = '\0';
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_UNAUTHENTICATED);
    auth_free(a);

    /* Without an admin token, nothing is admin. */
    a = auth_new(err, sizeof err, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_UNAUTHENTICATED);
    auth_free(a);
}

static auth_resolve_result test_resolver(void *arg, auth_caller *out, const char *token, size_t len)
{
    int *calls = arg;
    (*calls)++;
    if (len == 12 && memcmp(token, "client-key-1", 12) == 0) {
        snprintf(out->id, sizeof out->id, "c-1");
        return AUTH_RESOLVE_OK;
    }
    if (len == 7 && memcmp(token, "db-down", 7) == 0)
        return AUTH_RESOLVE_UNAVAILABLE;
    return AUTH_RESOLVE_UNKNOWN;
}

static void test_auth_resolver(void)
{
    char err[256], hdr[600];
    int calls = 0;
    auth *a = auth_new(err, sizeof err, admin_token);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    auth_set_resolver(a, test_resolver, &calls);
    auth_caller c;
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer client-key-1"), RPC_OK);
    CU_ASSERT_EQUAL(c.kind, AUTH_CLIENT);
    CU_ASSERT_STRING_EQUAL(c.id, "c-1");
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer db-down"), RPC_UNAVAILABLE);
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer who-knows"), RPC_UNAUTHENTICATED);
    CU_ASSERT_EQUAL(calls, 3);
    /* The admin token never reaches the resolver. */
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    CU_ASSERT_EQUAL(authn(a, &c, hdr), RPC_OK);
    CU_ASSERT_EQUAL(calls, 3);
    char name[100];
    CU_ASSERT_STRING_EQUAL(auth_caller_name(&c, name, sizeof name), "admin");
    CU_ASSERT_EQUAL(authn(a, &c, "Bearer client-key-1"), RPC_OK);
    CU_ASSERT_STRING_EQUAL(auth_caller_name(&c, name, sizeof name), "client:c-1");
    auth_free(a);
}

static void test_auth_authorize(void)
{
    /* rows: caller kind; columns: anyone, client, admin */
    static const struct {
        auth_kind kind;
        rpc_code want[3];
    } m[] = {
        {AUTH_ANONYMOUS, {RPC_OK, RPC_UNAUTHENTICATED, RPC_UNAUTHENTICATED}},
        {AUTH_CLIENT, {RPC_OK, RPC_OK, RPC_PERMISSION_DENIED}},
        {AUTH_ADMIN, {RPC_OK, RPC_PERMISSION_DENIED, RPC_OK}},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        auth_caller c;
        memset(&c, 0, sizeof c);
        c.kind = m[i].kind;
        for (int need = RPC_ACCESS_ANYONE; need <= RPC_ACCESS_ADMIN; need++) {
            char msg[256] = "";
            CU_ASSERT_EQUAL(auth_authorize(&c, msg, sizeof msg, (rpc_access)need), m[i].want[need]);
        }
    }
}

void test_register(void)
{
    static const test_case cases[] = {
        {"config", test_auth_config},
        {"admin_token", test_auth_admin_token},
        {"resolver", test_auth_resolver},
        {"authorize", test_auth_authorize},
        {NULL, NULL},
    };
    test_add_suite("auth", cases);
}
