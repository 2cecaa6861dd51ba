/* JSON -> protobuf transcoding (coffer-gateway): any bytes as a request
 * body for any message type the gateway knows (the first byte picks it):
 * malformed JSON, wrong types, deep nesting, huge numbers, invalid UTF-8.
 * Properties: the transcoder either accepts the input or rejects it with a
 * message (the gateway's 400), never crashes or leaks; an accepted message
 * encodes to JSON that decodes again to the same JSON (a stable round
 * trip); path/query text setters behave the same way. */
#include "fuzz_check.h"
#include "gw_json.h"
#include "gw_types.h"

#include <string.h>

static gw_types *types;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!types) {
        types = gw_types_new();
        CHECK(types != NULL);
    }
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = gw_types_at(types, data[0] % gw_types_count(types));
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    gw_json_options o = {gw_types_find, types, 0};
    char err[GW_JSON_ERR_MAX];

    /* As a URL value for each top-level field. */
    ProtobufCMessage *q = gw_json_message_new(d);
    CHECK(q != NULL);
    for (unsigned i = 0; i < d->n_fields && i < 4; i++) {
        err[0] = '\0';
        if (gw_json_set_path(q, err, sizeof err, d->fields[i].name, text, len > 64 ? 64 : len, &o) != 0)
            CHECK(err[0] != '\0');
    }
    protobuf_c_message_free_unpacked(q, NULL);

    json_t *j = NULL;
    err[0] = '\0';
    if (gw_json_parse(&j, err, sizeof err, text, len) != 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    ProtobufCMessage *m = gw_json_message_new(d);
    CHECK(m != NULL);
    err[0] = '\0';
    if (gw_json_merge(m, err, sizeof err, j, &o) != 0) {
        CHECK(err[0] != '\0');
    } else {
        gw_buf a, b;
        gw_buf_init(&a);
        gw_buf_init(&b);
        CHECK(gw_json_encode(&a, err, sizeof err, m, &o) == 0 || err[0] != '\0');
        json_t *j2 = NULL;
        if (a.len && gw_json_parse(&j2, err, sizeof err, a.data, a.len) == 0) {
            ProtobufCMessage *m2 = gw_json_message_new(d);
            CHECK(m2 != NULL);
            CHECK(gw_json_merge(m2, err, sizeof err, j2, &o) == 0);
            CHECK(gw_json_encode(&b, err, sizeof err, m2, &o) == 0);
            CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
            protobuf_c_message_free_unpacked(m2, NULL);
            json_decref(j2);
        }
        gw_buf_dispose(&a);
        gw_buf_dispose(&b);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    json_decref(j);
    return 0;
}
