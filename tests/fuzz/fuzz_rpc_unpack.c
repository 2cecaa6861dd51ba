/* The generic unpack path of coffer-api's RPC table, for every method:
 * the first byte picks the row (modulo the table's size), the rest is the
 * request. Whatever the bytes, rpc_table_unpack must either refuse them
 * with INVALID_ARGUMENT / RESOURCE_EXHAUSTED and no message, or return a
 * message that passes protobuf_c_message_check and survives pack ->
 * unpack -> pack unchanged. A small size limit on odd inputs exercises the
 * limit and the decoder's memory budget as well. */
#include "fuzz_check.h"
#include "rpc_table.h"
#include "services.h"

#include <string.h>

static rpc_table *fuzz_table(void)
{
    static rpc_table *t;
    static api_services svcs;
    if (!t) {
        char err[256];
        t = rpc_table_new();
        CHECK(t != NULL);
        svcs.table = t;
        CHECK(api_services_register(t, err, sizeof err, &svcs) == 0);
        CHECK(rpc_table_count(t) > 0);
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rpc_table *t = fuzz_table();
    if (size == 0)
        return 0;
    const rpc_row *row = rpc_table_row(t, data[0] % rpc_table_count(t));
    const uint8_t *req = data + 1;
    size_t len = size - 1;
    size_t max_len = (data[0] & 0x80) ? 64 : 4 * 1024 * 1024;
    char msg[256];
    ProtobufCMessage *m = NULL;
    rpc_code code = rpc_table_unpack(&m, msg, sizeof msg, row, req, len, max_len);
    if (code != RPC_OK) {
        CHECK(m == NULL);
        CHECK(code == RPC_INVALID_ARGUMENT || code == RPC_RESOURCE_EXHAUSTED);
        CHECK(code != RPC_RESOURCE_EXHAUSTED || len > max_len);
        CHECK(msg[0] != '\0' && memchr(msg, '\n', strlen(msg)) == NULL);
        return 0;
    }
    CHECK(m != NULL && len <= max_len);
    CHECK(m->descriptor == row->method->input);
    CHECK(protobuf_c_message_check(m));

    size_t n1 = protobuf_c_message_get_packed_size(m);
    uint8_t *p1 = malloc(n1 ? n1 : 1);
    CHECK(p1 != NULL);
    CHECK(protobuf_c_message_pack(m, p1) == n1);
    ProtobufCMessage *m2 = NULL;
    code = rpc_table_unpack(&m2, msg, sizeof msg, row, p1, n1, n1 > max_len ? n1 : max_len);
    CHECK(code == RPC_OK && m2 != NULL);
    size_t n2 = protobuf_c_message_get_packed_size(m2);
    uint8_t *p2 = malloc(n2 ? n2 : 1);
    CHECK(p2 != NULL);
    CHECK(protobuf_c_message_pack(m2, p2) == n2);
    CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0);
    free(p1);
    free(p2);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
