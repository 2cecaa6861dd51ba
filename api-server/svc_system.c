/* coffer.v1.SystemService: what the running coffer-api is and how its
 * dependencies are doing. GetInfo reads only cached state (health thread),
 * so it costs no database round trip. */
#include "coffer/v1/system.pb-c.h"
#include "coffer_version.h"
#include "log.h"
#include "rpc_server.h"
#include "services.h"

#include <string.h>
#include <time.h>

#define SVC_SYSTEM_HOLD_MAX_MS 60000u

static int64_t svc_system_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static Coffer__V1__ComponentStatus svc_system_status(health_state s)
{
    switch (s) {
    case HEALTH_UP: return COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_UP;
    case HEALTH_DOWN: return COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_DOWN;
    case HEALTH_NOT_CONFIGURED: return COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_NOT_CONFIGURED;
    case HEALTH_UNKNOWN: break;
    }
    return COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_UNSPECIFIED;
}

static rpc_code svc_system_get_info(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage *out)
{
    (void)req;
    const api_services *s = rpc_ctx_service_arg(ctx);
    Coffer__V1__GetInfoResponse *r = (Coffer__V1__GetInfoResponse *)out;
    r->version = rpc_ctx_strdup(ctx, COFFER_VERSION);
    r->commit = rpc_ctx_strdup(ctx, COFFER_COMMIT);
    if (!r->version || !r->commit)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    int64_t up = svc_system_now_ms() - s->started_ms;
    r->uptime_seconds = up > 0 ? (uint64_t)up / 1000u : 0;
    r->schema_version = s->db_probe ? atomic_load(&s->db_probe->schema_version) : 0;

    health_component_status st[HEALTH_COMPONENTS_MAX];
    size_t n = s->health ? health_snapshot(s->health, st, HEALTH_COMPONENTS_MAX) : 0;
    if (n > HEALTH_COMPONENTS_MAX)
        n = HEALTH_COMPONENTS_MAX;
    r->components = rpc_ctx_alloc(ctx, (n ? n : 1) * sizeof *r->components);
    if (!r->components)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < n; i++) {
        Coffer__V1__ComponentHealth *c = rpc_ctx_alloc(ctx, sizeof *c);
        if (!c)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        coffer__v1__component_health__init(c);
        c->name = rpc_ctx_strdup(ctx, st[i].name);
        c->detail = rpc_ctx_strdup(ctx, st[i].detail);
        if (!c->name || !c->detail)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        c->status = svc_system_status(st[i].state);
        c->latency_us = st[i].latency_us;
        r->components[r->n_components++] = c;
    }
    return RPC_OK;
}

static bool svc_system_should_stop(void *arg)
{
    return rpc_ctx_should_stop(arg);
}

static rpc_code svc_system_diagnose_database(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const api_services *s = rpc_ctx_service_arg(ctx);
    const Coffer__V1__DiagnoseDatabaseRequest *req = (const Coffer__V1__DiagnoseDatabaseRequest *)in;
    Coffer__V1__DiagnoseDatabaseResponse *r = (Coffer__V1__DiagnoseDatabaseResponse *)out;
    if (req->hold_ms > SVC_SYSTEM_HOLD_MAX_MS)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "hold_ms must be at most %u, got %u",
                            SVC_SYSTEM_HOLD_MAX_MS, req->hold_ms);
    rpc_code code = RPC_OK;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t t0 = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
    PGconn *conn = rpc_ctx_db_acquire(ctx, &code);
    if (!conn)
        return code;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t t1 = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
    r->acquire_us = (uint64_t)(t1 - t0);
    if (db_system_round_trip(conn) != 0) {
        code = rpc_ctx_fail(ctx, RPC_UNAVAILABLE, "the database round trip failed; retry with backoff");
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    r->round_trip_us = (uint64_t)((int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000 - t1);
    r->hold_completed = true;
    if (req->hold_ms > 0) {
        int rc = db_system_hold(conn, &r->held_ms, req->hold_ms, svc_system_should_stop, ctx);
        if (rc < 0) {
            code = rpc_ctx_fail(ctx, RPC_UNAVAILABLE, "the database failed during the hold");
            goto out;
        }
        r->hold_completed = rc == 0;
    }
    r->server_version = rpc_ctx_strdup(ctx, db_system_server_version(conn));
    if (!r->server_version) {
        code = rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    log_debug("system.diagnose_database", "hold_ms=%u held_ms=%llu completed=%d", req->hold_ms,
             (unsigned long long)r->held_ms, r->hold_completed);
out:
    rpc_ctx_db_release(ctx, conn);
    db_pool_stats ps;
    db_pool_get_stats(rpc_ctx_db(ctx), &ps);
    r->pool_size = s->db_pool_size;
    r->pool_open = ps.total;
    r->pool_idle = ps.idle;
    r->pool_waiting = ps.waiting;
    r->pool_connects = ps.connects;
    r->pool_discarded = ps.discarded;
    return code;
}

static const rpc_method_def svc_system_methods[] = {
    {"GetInfo", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, RPC_F_INLINE, RPC_RATE_NONE, svc_system_get_info, NULL},
    {"DiagnoseDatabase", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, svc_system_diagnose_database,
     NULL},
};

const rpc_service_def svc_system_def = {
    &coffer__v1__system_service__descriptor,
    svc_system_methods,
    sizeof svc_system_methods / sizeof svc_system_methods[0],
};
