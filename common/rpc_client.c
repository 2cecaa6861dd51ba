#include "rpc_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rpc_client {
    grpcw_channel *ch;
    size_t max_message_bytes;
};

rpc_client *rpc_client_new(const char *target, const grpcw_channel_options *options)
{
    rpc_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    grpcw_init();
    c->ch = grpcw_channel_new(target, options);
    if (!c->ch) {
        free(c);
        grpcw_shutdown();
        return NULL;
    }
    c->max_message_bytes = options && options->max_message_bytes ? options->max_message_bytes
                                                                  : 4u * 1024u * 1024u;
    return c;
}

void rpc_client_free(rpc_client *c)
{
    if (!c)
        return;
    grpcw_channel_free(c->ch);
    free(c);
    grpcw_shutdown();
}

__attribute__((format(printf, 3, 4)))
static void rpc_result_set(rpc_call_result *res, rpc_code code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    res->code = code;
    free(res->message);
    res->message = strdup(buf);
}

int rpc_client_unary(rpc_client *c, rpc_call_result *res, ProtobufCMessage **response,
                     const ProtobufCServiceDescriptor *service, const char *method,
                     const ProtobufCMessage *request, const rpc_call_options *o)
{
    static const rpc_call_options no_options = {0, NULL, 0};
    grpcw_unary_result r;
    uint8_t *buf = NULL;
    int rc = -1;
    memset(res, 0, sizeof *res);
    memset(&r, 0, sizeof r);
    *response = NULL;
    if (!o)
        o = &no_options;

    const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(service, method);
    if (!m) {
        rpc_result_set(res, RPC_INTERNAL, "%s has no method %s", service->name, method);
        return -1;
    }
    if (request->descriptor != m->input) {
        rpc_result_set(res, RPC_INTERNAL, "%s takes %s", method, m->input->name);
        return -1;
    }
    char path[512];
    if ((size_t)snprintf(path, sizeof path, "/%s/%s", service->name, m->name) >= sizeof path) {
        rpc_result_set(res, RPC_INTERNAL, "method path too long: %s/%s", service->name, m->name);
        return -1;
    }
    size_t len = protobuf_c_message_get_packed_size(request);
    buf = malloc(len ? len : 1);
    if (!buf) {
        rpc_result_set(res, RPC_INTERNAL, "out of memory");
        return -1;
    }
    protobuf_c_message_pack(request, buf);

    if (grpcw_unary_call(c->ch, &r, path, buf, len, o->metadata, o->n_metadata, o->timeout_ms) != 0) {
        rpc_result_set(res, RPC_INTERNAL, "%s: %s", path, r.message ? r.message : "call failed");
        goto out;
    }
    res->code = r.code;
    res->message = r.message;
    r.message = NULL;
    res->initial_md = r.initial_md;
    res->trailing_md = r.trailing_md;
    memset(&r.initial_md, 0, sizeof r.initial_md);
    memset(&r.trailing_md, 0, sizeof r.trailing_md);
    rc = 0;
    if (res->code != RPC_OK)
        goto out;
    if (!r.has_response) {
        rpc_result_set(res, RPC_INTERNAL, "%s: OK without a response message", path);
        goto out;
    }
    *response = protobuf_c_message_unpack(m->output, NULL, r.response_len, r.response);
    if (!*response)
        rpc_result_set(res, RPC_INTERNAL, "the response is not a valid %s (%s)", m->output->name, path);
out:
    if (!res->message)
        res->message = strdup("");
    grpcw_unary_result_dispose(&r);
    free(buf);
    return rc;
}

const char *rpc_call_result_header(const rpc_call_result *res, const char *key)
{
    const char *v = grpcw_md_list_get(&res->initial_md, NULL, key);
    return v ? v : grpcw_md_list_get(&res->trailing_md, NULL, key);
}

void rpc_call_result_dispose(rpc_call_result *res)
{
    if (!res)
        return;
    free(res->message);
    grpcw_md_list_dispose(&res->initial_md);
    grpcw_md_list_dispose(&res->trailing_md);
    memset(res, 0, sizeof *res);
}
