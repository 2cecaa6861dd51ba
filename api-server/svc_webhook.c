/* coffer.v1.WebhookService: provider webhooks, forwarded by coffer-gateway
 * with the raw body and headers. The providers (and their HMAC checks and
 * event deduplication) arrive with their own issue; until then the method
 * exists, so the gateway's route and the RPC table are complete, and
 * answers UNIMPLEMENTED. */
#include "coffer/v1/webhook.pb-c.h"
#include "rpc_server.h"
#include "services.h"

static rpc_code svc_webhook_ingest(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage *out)
{
    (void)req;
    (void)out;
    return rpc_ctx_fail(ctx, RPC_UNIMPLEMENTED, "provider webhooks arrive with the provider issue");
}

static const rpc_method_def svc_webhook_methods[] = {
    {"IngestProviderWebhook", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, 0, RPC_RATE_WRITE, svc_webhook_ingest, NULL},
};

const rpc_service_def svc_webhook_def = {
    &coffer__v1__webhook_service__descriptor,
    svc_webhook_methods,
    sizeof svc_webhook_methods / sizeof svc_webhook_methods[0],
};
