/* grpc.health.v1.Health: the standard health service. "" (the whole
 * server) and every service coffer-api serves share one verdict: SERVING
 * when every required component (PostgreSQL now; the signer once it is
 * configured as required) answered its last probe and the server is not
 * draining. Answers come from the health thread's cache. */
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "rpc_server.h"
#include "services.h"

#include <stdlib.h>
#include <string.h>

static Grpc__Health__V1__HealthCheckResponse__ServingStatus svc_health_status(bool serving)
{
    return serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static rpc_code svc_health_check(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const api_services *s = rpc_ctx_service_arg(ctx);
    const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)in;
    Grpc__Health__V1__HealthCheckResponse *r = (Grpc__Health__V1__HealthCheckResponse *)out;
    if (!api_services_known(s, req->service)) {
        char q[160];
        return rpc_ctx_fail(ctx, RPC_NOT_FOUND, "unknown service %s", log_quote(q, sizeof q, req->service));
    }
    r->status = svc_health_status(s->health && health_serving(s->health));
    return RPC_OK;
}

/* One Watch stream. */
typedef struct {
    health_watcher w;
    rpc_ctx *ctx;
    health *h;
} svc_health_watch;

static void svc_health_notify(void *arg, bool serving)
{
    svc_health_watch *w = arg;
    Grpc__Health__V1__HealthCheckResponse m;
    grpc__health__v1__health_check_response__init(&m);
    m.status = svc_health_status(serving);
    rpc_stream_send(w->ctx, &m.base); /* fails only once the stream is over */
}

static void svc_health_done(void *arg)
{
    svc_health_watch *w = arg;
    health_unwatch(w->h, &w->w);
    free(w);
}

static rpc_code svc_health_watch_start(rpc_ctx *ctx, const ProtobufCMessage *in)
{
    const api_services *s = rpc_ctx_service_arg(ctx);
    const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)in;
    if (!api_services_known(s, req->service) || !s->health) {
        /* The protocol: say SERVICE_UNKNOWN and keep the stream open. */
        Grpc__Health__V1__HealthCheckResponse m;
        grpc__health__v1__health_check_response__init(&m);
        m.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
        rpc_stream_send(ctx, &m.base);
        return RPC_OK;
    }
    svc_health_watch *w = calloc(1, sizeof *w);
    if (!w)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    w->ctx = ctx;
    w->h = s->health;
    w->w.fn = svc_health_notify;
    w->w.arg = w;
    /* Watch first (it sends the current status), then ask to hear of the
     * stream's end; if it already ended, undo. */
    health_watch(s->health, &w->w);
    if (rpc_stream_on_done(ctx, svc_health_done, w) != 0)
        svc_health_done(w);
    return RPC_OK;
}

static const rpc_method_def svc_health_methods[] = {
    {"Check", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, RPC_F_INLINE, RPC_RATE_NONE, svc_health_check, NULL},
    {"Watch", RPC_KIND_SERVER_STREAM, RPC_ACCESS_ANYONE, 0, RPC_RATE_NONE, NULL, svc_health_watch_start},
};

const rpc_service_def svc_health_def = {
    &grpc__health__v1__health__descriptor,
    svc_health_methods,
    sizeof svc_health_methods / sizeof svc_health_methods[0],
};
