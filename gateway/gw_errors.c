#include "gw_errors.h"

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <string.h>

unsigned gw_http_status(rpc_code code)
{
    switch (code) {
    case RPC_OK: return 200;
    case RPC_INVALID_ARGUMENT: case RPC_FAILED_PRECONDITION: case RPC_OUT_OF_RANGE: return 400;
    case RPC_UNAUTHENTICATED: return 401;
    case RPC_PERMISSION_DENIED: return 403;
    case RPC_NOT_FOUND: return 404;
    case RPC_ALREADY_EXISTS: case RPC_ABORTED: return 409;
    case RPC_RESOURCE_EXHAUSTED: return 429;
    case RPC_CANCELLED: return 499;
    case RPC_UNIMPLEMENTED: return 501;
    case RPC_UNAVAILABLE: return 503;
    case RPC_DEADLINE_EXCEEDED: return 504;
    case RPC_UNKNOWN: case RPC_INTERNAL: case RPC_DATA_LOSS: break;
    }
    return 500;
}

static int64_t gw_retry_seconds(const Google__Protobuf__Any *a)
{
    Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, a->value.len, a->value.data);
    int64_t s = -1;
    if (ri) {
        if (ri->retry_delay) {
            s = ri->retry_delay->seconds + (ri->retry_delay->nanos > 0 ? 1 : 0);
            if (s < 1)
                s = 1;
        }
        google__rpc__retry_info__free_unpacked(ri, NULL);
    }
    return s;
}

void gw_error_body(gw_buf *out, int64_t *retry_after_s, rpc_code code, const char *message,
                   const uint8_t *details_bin, size_t len, const gw_json_options *o)
{
    gw_buf_printf(out, "{\"code\":%d,\"message\":", (int)code);
    gw_buf_json_string(out, message ? message : "", message ? strlen(message) : 0);
    gw_buf_puts(out, ",\"details\":[");
    Google__Rpc__Status *st = details_bin ? google__rpc__status__unpack(NULL, len, details_bin) : NULL;
    size_t written = 0;
    for (size_t i = 0; st && i < st->n_details; i++) {
        const Google__Protobuf__Any *a = st->details[i];
        const char *url = a->type_url ? a->type_url : "";
        const char *slash = strrchr(url, '/');
        if (strcmp(slash ? slash + 1 : url, "google.rpc.RetryInfo") == 0) {
            int64_t s = gw_retry_seconds(a);
            if (s > 0)
                *retry_after_s = s;
        }
        gw_buf one;
        gw_buf_init(&one);
        char err[GW_JSON_ERR_MAX];
        if (gw_json_encode(&one, err, sizeof err, &a->base, o) == 0) {
            if (written++)
                gw_buf_putc(out, ',');
            gw_buf_append(out, one.data, one.len);
        }
        gw_buf_dispose(&one);
    }
    if (st)
        google__rpc__status__free_unpacked(st, NULL);
    gw_buf_puts(out, "]}");
}
