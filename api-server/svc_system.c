/* coffer.v1.SystemService: what the running coffer-api is and how its
 * dependencies are doing. GetInfo reads only cached state (health thread),
 * so it costs no database round trip. */
#include "coffer/v1/system.pb-c.h"
#include "coffer_version.h"
#include "log.h"
#include "rpc_server.h"
#include "services.h"

#include <stdbool.h>
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

/* Room for the packed answer: version, commit and HEALTH_COMPONENTS_MAX
 * components with full names and details fit with margin. */
#define SVC_SYSTEM_INFO_MAX 4096u

/* The last GetInfo answer this thread packed and what it was built from.
 * The answer only changes when one of these does (the uptime second, the
 * schema version, a health result), so most calls copy these bytes
 * instead of building and packing the message again: exactly the bytes a
 * fresh build would give. Per thread (the queue thread answers inline,
 * workers answer callers with credentials): no lock. */
typedef struct {
    bool valid;
    const api_services *s;
    int64_t started_ms;
    uint64_t uptime_s;
    uint32_t schema;
    uint64_t health_version;
    size_t len;
    uint8_t bytes[SVC_SYSTEM_INFO_MAX];
} svc_system_info_cache;

static _Thread_local svc_system_info_cache svc_system_info;

/* Arrays, not literals: the generated message's string fields are char *. */
static char svc_system_version[] = COFFER_VERSION;
static char svc_system_commit[] = COFFER_COMMIT;

static rpc_code svc_system_get_info(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage *out)
{
    (void)req;
    (void)out; /* answered with rpc_ctx_reply_packed */
    const api_services *s = rpc_ctx_service_arg(ctx);
    svc_system_info_cache *k = &svc_system_info;
    int64_t up = svc_system_now_ms() - s->started_ms;
    uint64_t uptime_s = up > 0 ? (uint64_t)up / 1000u : 0;
    uint32_t schema = s->db_probe ? atomic_load(&s->db_probe->schema_version) : 0;
    uint64_t hv = s->health ? health_version(s->health) : 0; /* before the snapshot */
    if (k->valid && k->s == s && k->started_ms == s->started_ms && k->uptime_s == uptime_s &&
        k->schema == schema && k->health_version == hv)
        return rpc_ctx_reply_packed(ctx, k->bytes, k->len);

    Coffer__V1__GetInfoResponse r;
    coffer__v1__get_info_response__init(&r);
    r.version = svc_system_version;
    r.commit = svc_system_commit;
    r.uptime_seconds = uptime_s;
    r.schema_version = schema;
    health_component_status st[HEALTH_COMPONENTS_MAX];
    Coffer__V1__ComponentHealth comps[HEALTH_COMPONENTS_MAX];
    Coffer__V1__ComponentHealth *ptrs[HEALTH_COMPONENTS_MAX];
    size_t n = s->health ? health_snapshot(s->health, st, HEALTH_COMPONENTS_MAX) : 0;
    if (n > HEALTH_COMPONENTS_MAX)
        n = HEALTH_COMPONENTS_MAX;
    for (size_t i = 0; i < n; i++) {
        Coffer__V1__ComponentHealth *c = &comps[i];
        coffer__v1__component_health__init(c);
        c->name = st[i].name;
        c->detail = st[i].detail;
        c->status = svc_system_status(st[i].state);
        c->latency_us = st[i].latency_us;
        ptrs[i] = c;
    }
    r.n_components = n;
    r.components = ptrs;
    /* Packed here, while st (which the strings point into) is alive. */
    size_t len = coffer__v1__get_info_response__get_packed_size(&r);
    if (len > sizeof k->bytes) {
        k->valid = false;
        uint8_t *buf = rpc_ctx_alloc(ctx, len);
        if (!buf)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        coffer__v1__get_info_response__pack(&r, buf);
        return rpc_ctx_reply_packed(ctx, buf, len);
    }
    coffer__v1__get_info_response__pack(&r, k->bytes);
    k->valid = true;
    k->s = s;
    k->started_ms = s->started_ms;
    k->uptime_s = uptime_s;
    k->schema = schema;
    k->health_version = hv;
    k->len = len;
    return rpc_ctx_reply_packed(ctx, k->bytes, len);
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
