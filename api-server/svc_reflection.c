/* grpc.reflection.v1alpha.ServerReflection: lets grpcurl/grpcui/evans-style
 * tools discover the API. Answers from the descriptor set embedded at
 * build time (files with their transitive imports) and lists the services
 * in the RPC table. */
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "rpc_server.h"
#include "services.h"

#include <string.h>

#define SVC_REFLECTION_FILES_MAX 64u
#define SVC_REFLECTION_EXT_MAX 256u

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest svc_refl_req;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse svc_refl_resp;

static rpc_code svc_reflection_error(rpc_ctx *ctx, svc_refl_resp *r, rpc_code code, const char *what,
                                     const char *name)
{
    Grpc__Reflection__V1alpha__ErrorResponse *e = rpc_ctx_alloc(ctx, sizeof *e);
    if (!e)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc__reflection__v1alpha__error_response__init(e);
    e->error_code = (int32_t)code;
    size_t n = strlen(what) + strlen(name) + 4;
    e->error_message = rpc_ctx_alloc(ctx, n);
    if (!e->error_message)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(e->error_message, what, strlen(what));
    memcpy(e->error_message + strlen(what), name, strlen(name) + 1);
    r->message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = e;
    return RPC_OK;
}

/* A file and its transitive imports, as serialized FileDescriptorProtos. */
static rpc_code svc_reflection_files(rpc_ctx *ctx, svc_refl_resp *r, const descset *d, size_t file)
{
    size_t files[SVC_REFLECTION_FILES_MAX];
    size_t n = descset_closure(d, files, SVC_REFLECTION_FILES_MAX, file);
    if (n > SVC_REFLECTION_FILES_MAX)
        n = SVC_REFLECTION_FILES_MAX;
    Grpc__Reflection__V1alpha__FileDescriptorResponse *f = rpc_ctx_alloc(ctx, sizeof *f);
    ProtobufCBinaryData *bins = rpc_ctx_alloc(ctx, n * sizeof *bins);
    if (!f || !bins)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc__reflection__v1alpha__file_descriptor_response__init(f);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *data;
        size_t len;
        descset_file_bytes(d, &data, &len, files[i]);
        bins[i].data = rpc_ctx_alloc(ctx, len);
        if (!bins[i].data)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        memcpy(bins[i].data, data, len);
        bins[i].len = len;
    }
    f->n_file_descriptor_proto = n;
    f->file_descriptor_proto = bins;
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = f;
    return RPC_OK;
}

static rpc_code svc_reflection_list(rpc_ctx *ctx, svc_refl_resp *r, const rpc_table *t)
{
    size_t rows = t ? rpc_table_count(t) : 0;
    Grpc__Reflection__V1alpha__ListServiceResponse *l = rpc_ctx_alloc(ctx, sizeof *l);
    Grpc__Reflection__V1alpha__ServiceResponse **svcs = rpc_ctx_alloc(ctx, (rows ? rows : 1) * sizeof *svcs);
    if (!l || !svcs)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc__reflection__v1alpha__list_service_response__init(l);
    size_t n = 0;
    for (size_t i = 0; i < rows; i++) {
        const ProtobufCServiceDescriptor *sd = rpc_table_row(t, i)->service->descriptor;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = rpc_table_row(t, j)->service->descriptor == sd;
        if (seen)
            continue;
        Grpc__Reflection__V1alpha__ServiceResponse *e = rpc_ctx_alloc(ctx, sizeof *e);
        if (!e)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        grpc__reflection__v1alpha__service_response__init(e);
        e->name = rpc_ctx_strdup(ctx, sd->name);
        if (!e->name)
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        svcs[n++] = e;
    }
    l->n_service = n;
    l->service = svcs;
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r->list_services_response = l;
    return RPC_OK;
}

static rpc_code svc_reflection_ext_numbers(rpc_ctx *ctx, svc_refl_resp *r, const descset *d, const char *type)
{
    size_t file;
    if (descset_find_symbol(d, &file, type) != 0)
        return svc_reflection_error(ctx, r, RPC_NOT_FOUND, "unknown type ", type);
    Grpc__Reflection__V1alpha__ExtensionNumberResponse *e = rpc_ctx_alloc(ctx, sizeof *e);
    int32_t *nums = rpc_ctx_alloc(ctx, SVC_REFLECTION_EXT_MAX * sizeof *nums);
    if (!e || !nums)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc__reflection__v1alpha__extension_number_response__init(e);
    size_t n = descset_extension_numbers(d, nums, SVC_REFLECTION_EXT_MAX, type);
    e->base_type_name = rpc_ctx_strdup(ctx, type);
    if (!e->base_type_name)
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    e->n_extension_number = n > SVC_REFLECTION_EXT_MAX ? SVC_REFLECTION_EXT_MAX : n;
    e->extension_number = nums;
    r->message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    r->all_extension_numbers_response = e;
    return RPC_OK;
}

static rpc_code svc_reflection_info(rpc_ctx *ctx, const ProtobufCMessage *in)
{
    const api_services *s = rpc_ctx_service_arg(ctx);
    const svc_refl_req *req = (const svc_refl_req *)in;
    svc_refl_req original = *req; /* echoed back (a shallow copy: packing only reads it) */
    svc_refl_resp r;
    grpc__reflection__v1alpha__server_reflection_response__init(&r);
    r.valid_host = original.host;
    r.original_request = &original;
    const descset *d = s->descriptors;
    size_t file;
    rpc_code code = RPC_OK;
    if (!d)
        return rpc_ctx_fail(ctx, RPC_UNAVAILABLE, "no descriptor set loaded");
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        code = svc_reflection_list(ctx, &r, s->table);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        code = descset_find_file(d, &file, req->file_by_filename) == 0
                   ? svc_reflection_files(ctx, &r, d, file)
                   : svc_reflection_error(ctx, &r, RPC_NOT_FOUND, "unknown file ", req->file_by_filename);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        code = descset_find_symbol(d, &file, req->file_containing_symbol) == 0
                   ? svc_reflection_files(ctx, &r, d, file)
                   : svc_reflection_error(ctx, &r, RPC_NOT_FOUND, "unknown symbol ", req->file_containing_symbol);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1alpha__ExtensionRequest *x = req->file_containing_extension;
        const char *type = x && x->containing_type ? x->containing_type : "";
        code = x && descset_find_extension(d, &file, type, x->extension_number) == 0
                   ? svc_reflection_files(ctx, &r, d, file)
                   : svc_reflection_error(ctx, &r, RPC_NOT_FOUND, "unknown extension of ", type);
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        code = svc_reflection_ext_numbers(ctx, &r, d, req->all_extension_numbers_of_type);
        break;
    default:
        code = svc_reflection_error(ctx, &r, RPC_INVALID_ARGUMENT, "the request names no question", "");
        break;
    }
    if (code != RPC_OK)
        return code;
    if (rpc_stream_send(ctx, &r.base) != 0 && !rpc_ctx_should_stop(ctx))
        return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "the answer does not fit in one message");
    return RPC_OK;
}

static const rpc_method_def svc_reflection_methods[] = {
    {"ServerReflectionInfo", RPC_KIND_BIDI_STREAM, RPC_ACCESS_ANYONE, 0, RPC_RATE_READ, NULL,
     svc_reflection_info},
};

const rpc_service_def svc_reflection_def = {
    &grpc__reflection__v1alpha__server_reflection__descriptor,
    svc_reflection_methods,
    sizeof svc_reflection_methods / sizeof svc_reflection_methods[0],
};
