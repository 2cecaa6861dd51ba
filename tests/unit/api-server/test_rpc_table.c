/* rpc_table: rows checked against the generated descriptors and the
 * embedded descriptor set; the generic unpack and its limits. */
#include "coffer/v1/system.pb-c.h"
#include "rpc_table.h"
#include "services.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

static rpc_code unary_stub(rpc_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage *resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
    return RPC_OK;
}

static rpc_code stream_stub(rpc_ctx *ctx, const ProtobufCMessage *req)
{
    (void)ctx;
    (void)req;
    return RPC_OK;
}

static void test_rpc_table_services(void)
{
    char err[256] = "";
    rpc_table *t = rpc_table_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    api_services s;
    memset(&s, 0, sizeof s);
    s.table = t;
    CU_ASSERT_EQUAL_FATAL(api_services_register(t, err, sizeof err, &s), 0);
    CU_ASSERT_TRUE(rpc_table_count(t) >= 14); /* system 2, health 2, reflection 1, webhook 1, client 5, user 3, ... */
    const rpc_row *reg = rpc_table_find(t, "/coffer.v1.ClientService/RegisterClient");
    CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
    CU_ASSERT_EQUAL(reg->def->access, RPC_ACCESS_ADMIN);
    CU_ASSERT_TRUE(reg->def->flags & RPC_F_MUTATES);
    const rpc_row *cu = rpc_table_find(t, "/coffer.v1.UserService/CreateUser");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cu);
    CU_ASSERT_EQUAL(cu->def->access, RPC_ACCESS_CLIENT);
    CU_ASSERT_EQUAL(cu->def->rate, RPC_RATE_WRITE);
    const rpc_row *r = rpc_table_find(t, "/coffer.v1.SystemService/GetInfo");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->def->access, RPC_ACCESS_ANYONE);
    CU_ASSERT_PTR_EQUAL(r->method->input, &coffer__v1__get_info_request__descriptor);
    CU_ASSERT_PTR_EQUAL(r->service_arg, &s);
    r = rpc_table_find(t, "/coffer.v1.SystemService/DiagnoseDatabase");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->def->access, RPC_ACCESS_ADMIN);
    r = rpc_table_find(t, "/grpc.health.v1.Health/Watch");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->def->kind, RPC_KIND_SERVER_STREAM);
    r = rpc_table_find(t, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->def->kind, RPC_KIND_BIDI_STREAM);
    CU_ASSERT_PTR_NULL(rpc_table_find(t, "/coffer.v1.SystemService/Nope"));
    CU_ASSERT_TRUE(api_services_known(&s, ""));
    CU_ASSERT_TRUE(api_services_known(&s, "grpc.health.v1.Health"));
    CU_ASSERT_FALSE(api_services_known(&s, "grpc.health.v1"));
    /* The same service twice is refused. */
    CU_ASSERT_EQUAL(rpc_table_add_service(t, err, sizeof err, &svc_system_def, NULL), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "twice"));
    rpc_table_free(t);
}

/* A SystemService definition with the given rows, checked. */
static int try_rows(char *err, size_t err_len, const rpc_method_def *rows, size_t n, bool check_set)
{
    rpc_service_def def = {&coffer__v1__system_service__descriptor, rows, n};
    rpc_table *t = rpc_table_new();
    int rc = rpc_table_add_service(t, err, err_len, &def, NULL);
    if (rc == 0 && check_set)
        rc = rpc_table_check_descriptor_set(t, err, err_len, coffer_api_descriptor_set,
                                            coffer_api_descriptor_set_len);
    rpc_table_free(t);
    return rc;
}

static void test_rpc_table_rejects_bad_rows(void)
{
    char err[256];
    const rpc_method_def good[] = {
        {"GetInfo", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, 0, RPC_RATE_NONE, unary_stub, NULL},
        {"DiagnoseDatabase", RPC_KIND_UNARY, RPC_ACCESS_ADMIN, 0, RPC_RATE_ADMIN, unary_stub, NULL},
    };
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, good, 2, true), 0);

    /* A method of the .proto without a row. */
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, good, 1, false), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "DiagnoseDatabase"));
    /* A row for no method. */
    const rpc_method_def extra[] = {
        good[0], good[1], {"Bogus", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, 0, RPC_RATE_NONE, unary_stub, NULL}};
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, extra, 3, false), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Bogus"));
    /* Two rows for one method. */
    const rpc_method_def dup[] = {good[0], good[1], good[0]};
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, dup, 3, false), -1);
    /* The wrong handler for the kind. */
    const rpc_method_def wrong_handler[] = {
        {"GetInfo", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, 0, RPC_RATE_NONE, NULL, stream_stub}, good[1]};
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, wrong_handler, 2, false), -1);
    /* A kind the .proto disagrees with: caught against the descriptor set. */
    const rpc_method_def wrong_kind[] = {
        {"GetInfo", RPC_KIND_SERVER_STREAM, RPC_ACCESS_ANYONE, 0, RPC_RATE_NONE, NULL, stream_stub}, good[1]};
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, wrong_kind, 2, false), 0);
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, wrong_kind, 2, true), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "GetInfo"));
    /* Out-of-range flags. */
    const rpc_method_def bad_flags[] = {
        {"GetInfo", RPC_KIND_UNARY, RPC_ACCESS_ANYONE, 0x80, RPC_RATE_NONE, unary_stub, NULL}, good[1]};
    CU_ASSERT_EQUAL(try_rows(err, sizeof err, bad_flags, 2, false), -1);
    /* A corrupt descriptor set. */
    rpc_table *t = rpc_table_new();
    rpc_service_def def = {&coffer__v1__system_service__descriptor, good, 2};
    CU_ASSERT_EQUAL(rpc_table_add_service(t, err, sizeof err, &def, NULL), 0);
    static const uint8_t junk[] = {0x0a, 0x05, 0x01};
    CU_ASSERT_EQUAL(rpc_table_check_descriptor_set(t, err, sizeof err, junk, sizeof junk), -1);
    rpc_table_free(t);
}

static void test_rpc_table_unpack(void)
{
    char err[256], msg[256];
    rpc_table *t = rpc_table_new();
    CU_ASSERT_EQUAL_FATAL(rpc_table_add_service(t, err, sizeof err, &svc_system_def, NULL), 0);
    const rpc_row *r = rpc_table_find(t, "/coffer.v1.SystemService/DiagnoseDatabase");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    ProtobufCMessage *m = NULL;

    /* Empty input is the all-defaults message. */
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, NULL, 0, 1024), RPC_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(((Coffer__V1__DiagnoseDatabaseRequest *)m)->hold_ms, 0);
    protobuf_c_message_free_unpacked(m, NULL);

    static const uint8_t hold[] = {0x08, 0xe8, 0x07}; /* hold_ms = 1000 */
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, hold, sizeof hold, 1024), RPC_OK);
    CU_ASSERT_EQUAL(((Coffer__V1__DiagnoseDatabaseRequest *)m)->hold_ms, 1000);
    protobuf_c_message_free_unpacked(m, NULL);

    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, garbage, sizeof garbage, 1024), RPC_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "coffer.v1.DiagnoseDatabaseRequest"));
    static const uint8_t truncated[] = {0x08, 0xe8};
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, truncated, sizeof truncated, 1024),
                    RPC_INVALID_ARGUMENT);

    /* Field number 0 in an over-long tag: protobuf-c takes it, we do not. */
    static const uint8_t field_zero[] = {0x80, 0x00, 0x02};
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, field_zero, sizeof field_zero, 1024),
                    RPC_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(m);

    /* Over the size limit: refused before decoding. */
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, r, hold, sizeof hold, 2), RPC_RESOURCE_EXHAUSTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "exceeds"));
    rpc_table_free(t);
}

/* Decoding work bounded by memory, not just by bytes: 2-byte empty
 * sub-messages each cost a whole struct once decoded. */
static void test_rpc_table_unpack_memory_budget(void)
{
    char msg[256];
    ProtobufCMethodDescriptor md = {"Fake", &coffer__v1__get_info_response__descriptor,
                                    &coffer__v1__get_info_response__descriptor};
    rpc_row row;
    memset(&row, 0, sizeof row);
    row.method = &md;
    size_t n = 128 * 1024;
    uint8_t *bomb = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bomb);
    for (size_t i = 0; i < n; i += 2) {
        bomb[i] = 0x22; /* components = 4, length-delimited */
        bomb[i + 1] = 0x00;
    }
    ProtobufCMessage *m = NULL;
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, &row, bomb, n, n), RPC_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "memory limit"));
    /* A few of them are fine. */
    CU_ASSERT_EQUAL(rpc_table_unpack(&m, msg, sizeof msg, &row, bomb, 64, n), RPC_OK);
    CU_ASSERT_EQUAL(((Coffer__V1__GetInfoResponse *)m)->n_components, 32);
    protobuf_c_message_free_unpacked(m, NULL);
    free(bomb);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"services", test_rpc_table_services},
        {"rejects_bad_rows", test_rpc_table_rejects_bad_rows},
        {"unpack", test_rpc_table_unpack},
        {"unpack_memory_budget", test_rpc_table_unpack_memory_budget},
        {NULL, NULL},
    };
    test_add_suite("rpc_table", cases);
}
