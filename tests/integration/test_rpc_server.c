/* rpc_server in-process, against a fresh migrated database, through the C
 * client helper (rpc_client) and the raw wrapper (grpcw): typed calls and
 * metadata, the generic failures, the auth and rate hooks, deadlines,
 * concurrency, overload and a drain. */
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "coffer/v1/system.pb-c.h"
#include "db_system.h"
#include "descset.h"
#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"
#include "health.h"
#include "rpc_client.h"
#include "rpc_server.h"
#include "services.h"
#include "test_support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char admin_token[] = "test-admin-token-0123456789abcdef0123456789";

typedef struct {
    db_pool *pool;
    health *h;
    descset *ds;
    rpc_table *table;
    auth *au;
    db_system_probe_state probe;
    api_services svcs;
    rpc_server *srv;
    char target[64];
} fixture;

static harness_db db;

static int suite_init(void)
{
    return harness_db_create(&db, "rpc_server");
}

static int suite_cleanup(void)
{
    harness_db_drop(&db);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static auth_resolve_result client_resolver(void *arg, auth_caller *out, const char *token, size_t len)
{
    (void)arg;
    if (len == 10 && memcmp(token, "client-key", 10) == 0) {
        snprintf(out->id, sizeof out->id, "client-7");
        return AUTH_RESOLVE_OK;
    }
    return AUTH_RESOLVE_UNKNOWN;
}

/* Refuses admin-class calls from a "limited" client, to exercise the hook. */
static rpc_code deny_admin_rate(void *arg, char *msg, size_t msg_len, int64_t *retry_after_ms,
                                const auth_caller *caller, rpc_rate_class rate)
{
    (void)caller;
    int *on = arg;
    if (*on && rate == RPC_RATE_ADMIN) {
        snprintf(msg, msg_len, "admin calls are rate limited; retry in 1.5s");
        *retry_after_ms = 1500;
        return RPC_RESOURCE_EXHAUSTED;
    }
    return RPC_OK;
}

static int rate_limit_on;

static void fixture_start(fixture *f, unsigned workers, unsigned max_queued)
{
    char err[512];
    memset(f, 0, sizeof *f);
    db_pool_options po = {db.conninfo, 8, 5000, 5, 30000, "rpc-server-test"};
    f->pool = db_pool_new(&po);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->pool);
    f->probe.pool = f->pool;
    f->h = health_new(200, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->h);
    CU_ASSERT_EQUAL_FATAL(health_add_component(f->h, "db", true, db_system_probe, &f->probe), 0);
    CU_ASSERT_EQUAL_FATAL(health_add_component(f->h, "signer", false, NULL, NULL), 0);
    f->ds = descset_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->ds);
    f->table = rpc_table_new();
    f->svcs = (api_services){.health = f->h, .db_probe = &f->probe, .db_pool_size = 8, .started_ms = now_ms(),
                             .descriptors = f->ds, .table = f->table};
    CU_ASSERT_EQUAL_FATAL(api_services_register(f->table, err, sizeof err, &f->svcs), 0);
    f->au = auth_new(err, sizeof err, admin_token);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->au);
    auth_set_resolver(f->au, client_resolver, NULL);
    rpc_server_options o = {
        .listen = "127.0.0.1:0",
        .max_message_bytes = 64 * 1024,
        .workers = workers,
        .max_queued = max_queued,
        .keepalive_time_ms = 60000,
        .keepalive_timeout_ms = 20000,
        .keepalive_min_ping_interval_ms = 10000,
        .keepalive_permit_without_calls = true,
        .table = f->table,
        .auth = f->au,
        .db = f->pool,
        .rate_check = deny_admin_rate,
        .rate_arg = &rate_limit_on,
    };
    f->srv = rpc_server_new(err, sizeof err, &o);
    if (!f->srv)
        fprintf(stderr, "rpc_server_new: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->srv);
    CU_ASSERT_EQUAL_FATAL(health_start(f->h), 0);
    CU_ASSERT_EQUAL_FATAL(rpc_server_start(f->srv, err, sizeof err), 0);
    snprintf(f->target, sizeof f->target, "127.0.0.1:%d", rpc_server_port(f->srv));
}

static void fixture_stop(fixture *f)
{
    rpc_server_shutdown_begin(f->srv);
    CU_ASSERT_TRUE(rpc_server_wait_drained(f->srv, 10000));
    rpc_server_free(f->srv);
    health_free(f->h);
    rpc_table_free(f->table);
    descset_free(f->ds);
    db_pool_free(f->pool);
    auth_free(f->au);
}

/* DiagnoseDatabase with the given authorization header (NULL: none). */
static rpc_code diagnose(rpc_client *c, rpc_call_result *r, const char *authz, unsigned hold_ms,
                         int64_t timeout_ms, Coffer__V1__DiagnoseDatabaseResponse **out)
{
    Coffer__V1__DiagnoseDatabaseRequest req;
    coffer__v1__diagnose_database_request__init(&req);
    req.hold_ms = hold_ms;
    grpcw_md md = {"authorization", authz, authz ? strlen(authz) : 0};
    rpc_call_options o = {timeout_ms, &md, authz ? 1 : 0};
    ProtobufCMessage *resp = NULL;
    if (rpc_client_unary(c, r, &resp, &coffer__v1__system_service__descriptor, "DiagnoseDatabase", &req.base,
                         &o) != 0)
        return RPC_INTERNAL;
    if (out)
        *out = (Coffer__V1__DiagnoseDatabaseResponse *)resp;
    else
        protobuf_c_message_free_unpacked(resp, NULL);
    return r->code;
}

static void test_typed_calls_and_metadata(void)
{
    fixture f;
    fixture_start(&f, 4, 100);
    rpc_client *c = rpc_client_new(f.target, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    rpc_call_result r;
    ProtobufCMessage *resp = NULL;

    Coffer__V1__GetInfoRequest req;
    coffer__v1__get_info_request__init(&req);
    grpcw_md rid = {"x-request-id", "c-test-1", 8};
    rpc_call_options o = {5000, &rid, 1};
    CU_ASSERT_EQUAL_FATAL(rpc_client_unary(c, &r, &resp, &coffer__v1__system_service__descriptor, "GetInfo",
                                           &req.base, &o), 0);
    CU_ASSERT_EQUAL(r.code, RPC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    const Coffer__V1__GetInfoResponse *info = (const Coffer__V1__GetInfoResponse *)resp;
    CU_ASSERT_STRING_NOT_EQUAL(info->version, "");
    CU_ASSERT_TRUE(info->schema_version >= 1);
    CU_ASSERT_EQUAL(info->n_components, 2);
    CU_ASSERT_STRING_EQUAL(info->components[0]->name, "db");
    CU_ASSERT_EQUAL(info->components[0]->status, COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_UP);
    CU_ASSERT_EQUAL(info->components[1]->status, COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_NOT_CONFIGURED);
    const char *echoed = rpc_call_result_header(&r, "x-request-id");
    CU_ASSERT_PTR_NOT_NULL(echoed);
    if (echoed)
        CU_ASSERT_STRING_EQUAL(echoed, "c-test-1");
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_call_result_dispose(&r);

    /* Health/Check through the same client. */
    Grpc__Health__V1__HealthCheckRequest hreq;
    grpc__health__v1__health_check_request__init(&hreq);
    CU_ASSERT_EQUAL(rpc_client_unary(c, &r, &resp, &grpc__health__v1__health__descriptor, "Check", &hreq.base,
                                     NULL), 0);
    CU_ASSERT_EQUAL(r.code, RPC_OK);
    CU_ASSERT_EQUAL(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_call_result_dispose(&r);

    /* Caller misuse is told apart from a failed call. */
    CU_ASSERT_EQUAL(rpc_client_unary(c, &r, &resp, &coffer__v1__system_service__descriptor, "Nope", &req.base,
                                     NULL), -1);
    rpc_call_result_dispose(&r);
    CU_ASSERT_EQUAL(rpc_client_unary(c, &r, &resp, &coffer__v1__system_service__descriptor, "DiagnoseDatabase",
                                     &req.base, NULL), -1);
    CU_ASSERT_PTR_NULL(resp);
    rpc_call_result_dispose(&r);

    rpc_client_free(c);
    fixture_stop(&f);
}

static void test_generic_failures(void)
{
    fixture f;
    fixture_start(&f, 2, 100);
    grpcw_init();
    grpcw_channel *ch = grpcw_channel_new(f.target, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    grpcw_unary_result r;

    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(grpcw_unary_call(ch, &r, "/coffer.v1.Nope/Nothing", NULL, 0, NULL, 0, 30000), 0);
    CU_ASSERT_EQUAL(r.code, RPC_UNIMPLEMENTED);
    CU_ASSERT_TRUE(now_ms() - t0 < 1000);
    CU_ASSERT_PTR_NOT_NULL(grpcw_md_list_get(&r.initial_md, NULL, "x-request-id"));
    grpcw_unary_result_dispose(&r);

    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(grpcw_unary_call(ch, &r, "/coffer.v1.SystemService/GetInfo", garbage, sizeof garbage, NULL,
                                     0, 5000), 0);
    CU_ASSERT_EQUAL(r.code, RPC_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "GetInfoRequest"));
    grpcw_unary_result_dispose(&r);

    size_t big_len = 65 * 1024; /* over this server's 64 KiB */
    uint8_t *big = calloc(1, big_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_EQUAL(grpcw_unary_call(ch, &r, "/coffer.v1.SystemService/GetInfo", big, big_len, NULL, 0, 5000), 0);
    CU_ASSERT_EQUAL(r.code, RPC_RESOURCE_EXHAUSTED);
    grpcw_unary_result_dispose(&r);
    free(big);

    /* A bidi stream of the table through the unary client: one question, one answer. */
    static const uint8_t list_services[] = {0x3a, 0x01, '*'};
    CU_ASSERT_EQUAL(grpcw_unary_call(ch, &r, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                     list_services, sizeof list_services, NULL, 0, 5000), 0);
    CU_ASSERT_EQUAL(r.code, RPC_OK);
    CU_ASSERT_TRUE(r.has_response && r.response_len > 20);
    grpcw_unary_result_dispose(&r);

    grpcw_channel_free(ch);
    grpcw_shutdown();
    fixture_stop(&f);
}

static void test_auth_and_rate_hooks(void)
{
    fixture f;
    fixture_start(&f, 2, 100);
    rpc_client *c = rpc_client_new(f.target, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    rpc_call_result r;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);

    CU_ASSERT_EQUAL(diagnose(c, &r, NULL, 0, 5000, NULL), RPC_UNAUTHENTICATED);
    rpc_call_result_dispose(&r);
    CU_ASSERT_EQUAL(diagnose(c, &r, "Bearer not-the-token-at-all-xxxxxxxxxxxxxxxx", 0, 5000, NULL),
                    RPC_UNAUTHENTICATED);
    rpc_call_result_dispose(&r);
    CU_ASSERT_EQUAL(diagnose(c, &r, "Bearer client-key", 0, 5000, NULL), RPC_PERMISSION_DENIED);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "operators"));
    rpc_call_result_dispose(&r);
    Coffer__V1__DiagnoseDatabaseResponse *d = NULL;
    CU_ASSERT_EQUAL(diagnose(c, &r, hdr, 0, 5000, &d), RPC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(d->pool_size, 8);
    CU_ASSERT_TRUE(d->hold_completed);
    CU_ASSERT_STRING_NOT_EQUAL(d->server_version, "");
    protobuf_c_message_free_unpacked(&d->base, NULL);
    rpc_call_result_dispose(&r);

    rate_limit_on = 1;
    CU_ASSERT_EQUAL(diagnose(c, &r, hdr, 0, 5000, NULL), RPC_RESOURCE_EXHAUSTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "rate limited"));
    {
        /* The delay travels as google.rpc.Status { details: [RetryInfo] }. */
        size_t n = 0;
        const char *bin = grpcw_md_list_get(&r.trailing_md, &n, "grpc-status-details-bin");
        CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
        Google__Rpc__Status *st = google__rpc__status__unpack(NULL, n, (const uint8_t *)bin);
        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        CU_ASSERT_EQUAL(st->code, RPC_RESOURCE_EXHAUSTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(st->message, "rate limited"));
        CU_ASSERT_EQUAL_FATAL(st->n_details, 1);
        CU_ASSERT_STRING_EQUAL(st->details[0]->type_url, "type.googleapis.com/google.rpc.RetryInfo");
        Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, st->details[0]->value.len,
                                                                      st->details[0]->value.data);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ri);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ri->retry_delay);
        CU_ASSERT_EQUAL(ri->retry_delay->seconds, 1);
        CU_ASSERT_EQUAL(ri->retry_delay->nanos, 500000000);
        google__rpc__retry_info__free_unpacked(ri, NULL);
        google__rpc__status__free_unpacked(st, NULL);
    }
    rpc_call_result_dispose(&r);
    rate_limit_on = 0;

    rpc_client_free(c);
    fixture_stop(&f);
}

static void test_deadline_stops_the_hold(void)
{
    fixture f;
    fixture_start(&f, 2, 100);
    rpc_client *c = rpc_client_new(f.target, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    rpc_call_result r;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    int64_t t0 = now_ms();
    CU_ASSERT_EQUAL(diagnose(c, &r, hdr, 5000, 300, NULL), RPC_DEADLINE_EXCEEDED);
    rpc_call_result_dispose(&r);
    CU_ASSERT_TRUE(now_ms() - t0 < 1500);
    /* The handler let go of its connection: a call needing every worker
     * and a connection right away succeeds. */
    Coffer__V1__DiagnoseDatabaseResponse *d = NULL;
    CU_ASSERT_EQUAL(diagnose(c, &r, hdr, 0, 5000, &d), RPC_OK);
    rpc_call_result_dispose(&r);
    if (d) {
        CU_ASSERT_TRUE(d->pool_waiting == 0);
        protobuf_c_message_free_unpacked(&d->base, NULL);
    }
    rpc_client_free(c);
    fixture_stop(&f);
}

typedef struct {
    rpc_client *c;
    int ok;
    int rounds;
} burst_arg;

static void *burst(void *p)
{
    burst_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        Coffer__V1__GetInfoRequest req;
        coffer__v1__get_info_request__init(&req);
        rpc_call_result r;
        ProtobufCMessage *resp = NULL;
        rpc_call_options o = {10000, NULL, 0};
        if (rpc_client_unary(a->c, &r, &resp, &coffer__v1__system_service__descriptor, "GetInfo", &req.base,
                             &o) == 0 &&
            r.code == RPC_OK && resp)
            a->ok++;
        protobuf_c_message_free_unpacked(resp, NULL);
        rpc_call_result_dispose(&r);
    }
    return NULL;
}

static void test_concurrent_clients(void)
{
    fixture f;
    fixture_start(&f, 4, 1000);
    rpc_client *c = rpc_client_new(f.target, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    pthread_t th[8];
    burst_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (burst_arg){c, 0, 50};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, burst, &args[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
    }
    CU_ASSERT_EQUAL(ok, 400);
    rpc_client_free(c);
    fixture_stop(&f);
}

typedef struct {
    const char *target;
    unsigned hold_ms;
    rpc_code code;
    bool completed;
} hold_arg;

static void *hold_call(void *p)
{
    hold_arg *a = p;
    rpc_client *c = rpc_client_new(a->target, NULL);
    rpc_call_result r;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Bearer %s", admin_token);
    Coffer__V1__DiagnoseDatabaseResponse *d = NULL;
    a->code = c ? diagnose(c, &r, hdr, a->hold_ms, 20000, &d) : RPC_INTERNAL;
    a->completed = d && d->hold_completed;
    if (d)
        protobuf_c_message_free_unpacked(&d->base, NULL);
    if (c)
        rpc_call_result_dispose(&r);
    rpc_client_free(c);
    return NULL;
}

static void test_overload_and_drain(void)
{
    fixture f;
    fixture_start(&f, 1, 1); /* one worker, one call may wait */
    pthread_t th[3];
    hold_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (hold_arg){f.target, 600, RPC_UNKNOWN, false};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hold_call, &a[i]), 0);
        struct timespec pause = {0, 150 * 1000000L};
        nanosleep(&pause, NULL);
    }
    /* Call 0 runs, call 1 waits for the worker, call 2 finds the queue full. */
    rpc_server_shutdown_begin(f.srv);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(a[0].code, RPC_OK);
    CU_ASSERT_TRUE(a[0].completed);
    CU_ASSERT_EQUAL(a[1].code, RPC_OK);
    CU_ASSERT_EQUAL(a[2].code, RPC_RESOURCE_EXHAUSTED);
    CU_ASSERT_TRUE(rpc_server_wait_drained(f.srv, 5000));
    CU_ASSERT_EQUAL(rpc_server_inflight(f.srv), 0);
    fixture_stop(&f);
}

void test_register(void)
{
    harness_require_stack();
    static const test_case cases[] = {
        {"typed_calls_and_metadata", test_typed_calls_and_metadata},
        {"generic_failures", test_generic_failures},
        {"auth_and_rate_hooks", test_auth_and_rate_hooks},
        {"deadline_stops_the_hold", test_deadline_stops_the_hold},
        {"concurrent_clients", test_concurrent_clients},
        {"overload_and_drain", test_overload_and_drain},
        {NULL, NULL},
    };
    test_add_suite_with("rpc_server", suite_init, suite_cleanup, cases);
}
