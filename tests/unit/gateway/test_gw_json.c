/* gw_json: the proto3 JSON mapping, table-driven, over the test-only
 * coffer.test.v1.Everything (transcode_test.proto: every field kind). Each
 * row is JSON in -> canonical JSON out (decode, then encode: the round
 * trip), or JSON in -> an error naming what is wrong. */
#include "gw_json.h"
#include "test_support.h"
#include "transcode_test.pb-c.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const ProtobufCMessageDescriptor *resolve(void *arg, const char *name)
{
    (void)arg;
    if (strcmp(name, "coffer.test.v1.Inner") == 0)
        return &coffer__test__v1__inner__descriptor;
    if (strcmp(name, "coffer.test.v1.Everything") == 0)
        return &coffer__test__v1__everything__descriptor;
    if (strcmp(name, "google.protobuf.Timestamp") == 0)
        return &google__protobuf__timestamp__descriptor;
    return NULL;
}

static const gw_json_options opts = {resolve, NULL, 0};

/* Every field at its default, in field-number order. */
#define DEFAULTS_HEAD                                                                                        \
    "{\"i32\":0,\"i64\":\"0\",\"u32\":0,\"u64\":\"0\",\"s32\":0,\"s64\":\"0\",\"f32\":0,\"f64\":\"0\","      \
    "\"sf32\":0,\"sf64\":\"0\",\"flag\":false,\"text\":\"\",\"blob\":\"\",\"ratio\":0,\"amount\":0,"          \
    "\"color\":\"COLOR_UNSPECIFIED\",\"inner\":null,\"manyI64\":[],\"tags\":[],\"items\":[],\"colors\":[],"   \
    "\"counts\":{},\"byId\":{},\"flags\":{}"
#define DEFAULTS_TAIL                                                                                        \
    "\"createdAt\":null,\"ttl\":null,\"maybeText\":null,\"maybeI64\":null,\"extra\":null,\"snakeCaseName\":\"\"}"
#define DEFAULTS DEFAULTS_HEAD "," DEFAULTS_TAIL

/* Replaces one "key":value of DEFAULTS in expectations: built at run time. */
typedef struct {
    const char *name;
    const char *in;
    const char *key;   /* the field whose output differs from the default */
    const char *value; /* its expected JSON, or NULL: output is DEFAULTS */
} conv_case;

static const conv_case ok_cases[] = {
    /* empty and null */
    {"empty object", "{}", NULL, NULL},
    {"null means default", "{\"i32\":null,\"text\":null,\"inner\":null,\"tags\":null}", NULL, NULL},
    /* int32 family: numbers, integral reals, strings */
    {"int32 number", "{\"i32\":-42}", "i32", "-42"},
    {"int32 string", "{\"i32\":\"-42\"}", "i32", "-42"},
    {"int32 exponent", "{\"i32\":1e3}", "i32", "1000"},
    {"int32 max", "{\"i32\":2147483647}", "i32", "2147483647"},
    {"sint32", "{\"s32\":-7}", "s32", "-7"},
    {"sfixed32", "{\"sf32\":-8}", "sf32", "-8"},
    {"uint32 max", "{\"u32\":4294967295}", "u32", "4294967295"},
    {"fixed32", "{\"f32\":9}", "f32", "9"},
    /* 64-bit: out as strings, in as strings or numbers */
    {"int64 string", "{\"i64\":\"-9223372036854775808\"}", "i64", "\"-9223372036854775808\""},
    {"int64 number", "{\"i64\":1234567890123}", "i64", "\"1234567890123\""},
    {"uint64 max string", "{\"u64\":\"18446744073709551615\"}", "u64", "\"18446744073709551615\""},
    {"uint64 number", "{\"u64\":5}", "u64", "\"5\""},
    {"sint64", "{\"s64\":\"-5\"}", "s64", "\"-5\""},
    {"fixed64", "{\"f64\":\"7\"}", "f64", "\"7\""},
    {"sfixed64", "{\"sf64\":-3}", "sf64", "\"-3\""},
    /* bool, string, bytes */
    {"bool", "{\"flag\":true}", "flag", "true"},
    {"string unicode", "{\"text\":\"h\\u00e9llo \\\"q\\\" \\n\"}", "text", "\"h\xc3\xa9llo \\\"q\\\" \\n\""},
    {"bytes std base64", "{\"blob\":\"AAEC/w==\"}", "blob", "\"AAEC/w==\""},
    {"bytes url-safe unpadded", "{\"blob\":\"AAEC_w\"}", "blob", "\"AAEC/w==\""},
    /* float and double */
    {"double", "{\"amount\":1.5}", "amount", "1.5"},
    {"double shortest", "{\"amount\":0.1}", "amount", "0.1"},
    {"double string", "{\"amount\":\"2.25\"}", "amount", "2.25"},
    {"double NaN", "{\"amount\":\"NaN\"}", "amount", "\"NaN\""},
    {"double -Infinity", "{\"amount\":\"-Infinity\"}", "amount", "\"-Infinity\""},
    {"float shortest", "{\"ratio\":0.1}", "ratio", "0.1"},
    /* enums: by name, number accepted, unknown number kept */
    {"enum name", "{\"color\":\"COLOR_BLUE\"}", "color", "\"COLOR_BLUE\""},
    {"enum number", "{\"color\":1}", "color", "\"COLOR_RED\""},
    {"enum unknown number", "{\"color\":7}", "color", "7"},
    /* nested, both spellings of names */
    {"nested", "{\"inner\":{\"name\":\"a\",\"count\":2}}", "inner", "{\"name\":\"a\",\"count\":2,\"child\":null}"},
    {"nested twice", "{\"inner\":{\"child\":{\"name\":\"b\"}}}", "inner",
     "{\"name\":\"\",\"count\":0,\"child\":{\"name\":\"b\",\"count\":0,\"child\":null}}"},
    {"proto name accepted", "{\"snake_case_name\":\"x\"}", "snakeCaseName", "\"x\""},
    {"json name accepted", "{\"snakeCaseName\":\"x\"}", "snakeCaseName", "\"x\""},
    /* repeated */
    {"repeated int64", "{\"manyI64\":[1,\"2\",-3]}", "manyI64", "[\"1\",\"2\",\"-3\"]"},
    {"repeated string", "{\"tags\":[\"a\",\"b\"]}", "tags", "[\"a\",\"b\"]"},
    {"repeated message", "{\"items\":[{\"name\":\"x\"},{}]}", "items",
     "[{\"name\":\"x\",\"count\":0,\"child\":null},{\"name\":\"\",\"count\":0,\"child\":null}]"},
    {"repeated enum", "{\"colors\":[\"COLOR_RED\",2]}", "colors", "[\"COLOR_RED\",\"COLOR_BLUE\"]"},
    /* maps: keys always strings */
    {"map string->int64", "{\"counts\":{\"a\":1,\"b\":\"2\"}}", "counts", "{\"a\":\"1\",\"b\":\"2\"}"},
    {"map int32->message", "{\"byId\":{\"7\":{\"name\":\"seven\"}}}", "byId",
     "{\"7\":{\"name\":\"seven\",\"count\":0,\"child\":null}}"},
    {"map bool->string", "{\"flags\":{\"true\":\"yes\"}}", "flags", "{\"true\":\"yes\"}"},
    /* well-known types */
    {"timestamp", "{\"createdAt\":\"1972-01-01T10:00:20.021Z\"}", "createdAt", "\"1972-01-01T10:00:20.021Z\""},
    {"timestamp offset", "{\"createdAt\":\"2024-05-01T12:00:00+02:00\"}", "createdAt", "\"2024-05-01T10:00:00Z\""},
    {"timestamp nanos", "{\"createdAt\":\"2024-05-01T12:00:00.000000001Z\"}", "createdAt",
     "\"2024-05-01T12:00:00.000000001Z\""},
    {"duration", "{\"ttl\":\"-1.500s\"}", "ttl", "\"-1.500s\""},
    {"wrapper string", "{\"maybeText\":\"hi\"}", "maybeText", "\"hi\""},
    {"wrapper int64", "{\"maybeI64\":12}", "maybeI64", "\"12\""},
    {"any", "{\"extra\":{\"@type\":\"type.googleapis.com/coffer.test.v1.Inner\",\"name\":\"z\"}}", "extra",
     "{\"@type\":\"type.googleapis.com/coffer.test.v1.Inner\",\"name\":\"z\",\"count\":0,\"child\":null}"},
    {"any of a wkt", "{\"extra\":{\"@type\":\"type.googleapis.com/google.protobuf.Timestamp\",\"value\":\"1970-01-01T00:00:01Z\"}}",
     "extra", "{\"@type\":\"type.googleapis.com/google.protobuf.Timestamp\",\"value\":\"1970-01-01T00:00:01Z\"}"},
};

/* oneof members appear only when set: their own expectations. */
static const struct {
    const char *name, *in, *out_member;
} oneof_cases[] = {
    {"oneof string", "{\"choiceText\":\"t\"}", "\"choiceText\":\"t\""},
    {"oneof message", "{\"choice_inner\":{\"count\":1}}", "\"choiceInner\":{\"name\":\"\",\"count\":1,\"child\":null}"},
    {"oneof int64", "{\"choiceNum\":\"9\"}", "\"choiceNum\":\"9\""},
};

static const struct {
    const char *name, *in, *error_part;
} bad_cases[] = {
    {"unknown field", "{\"nope\":1}", "unknown field \"nope\""},
    {"unknown nested field", "{\"inner\":{\"x\":1}}", "field \"inner\": unknown field \"x\""},
    {"both spellings", "{\"snake_case_name\":\"a\",\"snakeCaseName\":\"b\"}", "given twice"},
    {"two oneof members", "{\"choiceText\":\"a\",\"choiceNum\":1}", "only one field of a oneof"},
    {"int32 overflow", "{\"i32\":2147483648}", "out of range for int32"},
    {"uint32 negative", "{\"u32\":-1}", "non-negative"},
    {"uint64 negative string", "{\"u64\":\"-1\"}", "non-negative"},
    {"int64 garbage", "{\"i64\":\"12x\"}", "expected an integer"},
    {"int64 too big", "{\"i64\":\"9223372036854775808\"}", "out of range"},
    {"fraction for int", "{\"i32\":1.5}", "expected an integer"},
    {"string for bool", "{\"flag\":\"true\"}", "expected true or false"},
    {"number for string", "{\"text\":5}", "expected a string"},
    {"bad base64", "{\"blob\":\"@@@\"}", "invalid base64"},
    {"unknown enum name", "{\"color\":\"PURPLE\"}", "unknown value \"PURPLE\""},
    {"object for list", "{\"tags\":{}}", "expected an array"},
    {"null in list", "{\"tags\":[null]}", "null is not allowed"},
    {"list for map", "{\"counts\":[]}", "expected an object"},
    {"bad map key", "{\"byId\":{\"x\":{}}}", "expected an integer"},
    {"bad timestamp", "{\"createdAt\":\"2024-13-01T00:00:00Z\"}", "invalid RFC 3339 timestamp"},
    {"timestamp without zone", "{\"createdAt\":\"2024-01-01T00:00:00\"}", "invalid RFC 3339"},
    {"bad duration", "{\"ttl\":\"5m\"}", "invalid duration"},
    {"any unknown type", "{\"extra\":{\"@type\":\"type.googleapis.com/x.Y\"}}", "unknown type"},
    {"array at top", "[]", "expected an object"},
    {"float overflow", "{\"ratio\":1e39}", "out of range for float"},
    {"string with NUL", "{\"text\":\"a\\u0000b\"}", "malformed JSON"},
};

static char *expected_with(const char *key, const char *value)
{
    static char buf[4096];
    if (!key) {
        snprintf(buf, sizeof buf, "%s", DEFAULTS);
        return buf;
    }
    /* Find "key": in DEFAULTS and replace its value up to the next top-level ','. */
    const char *d = DEFAULTS;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(d, pat);
    if (!at)
        return NULL;
    const char *v = at + strlen(pat);
    const char *end = v;
    int depth = 0;
    bool in_str = false;
    for (; *end; end++) {
        if (in_str) {
            if (*end == '\\')
                end++;
            else if (*end == '"')
                in_str = false;
            continue;
        }
        if (*end == '"')
            in_str = true;
        else if (*end == '{' || *end == '[')
            depth++;
        else if (*end == '}' || *end == ']') {
            if (depth == 0)
                break;
            depth--;
        } else if (*end == ',' && depth == 0)
            break;
    }
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(v - d), d, value, end);
    return buf;
}

static int convert(char *out, size_t cap, char *err, size_t err_len, const char *in)
{
    json_t *j = NULL;
    ProtobufCMessage *m = gw_json_message_new(&coffer__test__v1__everything__descriptor);
    int rc = -1;
    if (!m || gw_json_parse(&j, err, err_len, in, strlen(in)) != 0)
        goto out;
    if (gw_json_merge(m, err, err_len, j, &opts) != 0)
        goto out;
    /* Through the wire format and back, so the binary form is right too. */
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *bin = malloc(len + 1);
    protobuf_c_message_pack(m, bin);
    ProtobufCMessage *back = protobuf_c_message_unpack(&coffer__test__v1__everything__descriptor, NULL, len, bin);
    free(bin);
    if (!back) {
        snprintf(err, err_len, "packed message does not unpack");
        goto out;
    }
    gw_buf b;
    gw_buf_init(&b);
    rc = gw_json_encode(&b, err, err_len, back, &opts);
    snprintf(out, cap, "%s", gw_buf_cstr(&b));
    gw_buf_dispose(&b);
    protobuf_c_message_free_unpacked(back, NULL);
out:
    if (j)
        json_decref(j);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static void test_json_conformance_ok(void)
{
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        char out[4096], err[512] = "";
        const char *want = expected_with(ok_cases[i].key, ok_cases[i].value);
        int rc = convert(out, sizeof out, err, sizeof err, ok_cases[i].in);
        if (rc != 0 || !want || strcmp(out, want) != 0) {
            fprintf(stderr, "\ncase \"%s\": rc=%d err=%s\n  got  %s\n  want %s\n", ok_cases[i].name, rc, err, out,
                    want ? want : "(bad key)");
            CU_FAIL("conformance case");
        }
    }
}

static void test_json_oneof(void)
{
    for (size_t i = 0; i < sizeof oneof_cases / sizeof oneof_cases[0]; i++) {
        char out[4096], err[512] = "", want[4096];
        snprintf(want, sizeof want, "%s,%s,%s", DEFAULTS_HEAD, oneof_cases[i].out_member, DEFAULTS_TAIL);
        int rc = convert(out, sizeof out, err, sizeof err, oneof_cases[i].in);
        if (rc != 0 || strcmp(out, want) != 0) {
            fprintf(stderr, "\ncase \"%s\": rc=%d err=%s\n  got  %s\n  want %s\n", oneof_cases[i].name, rc, err, out,
                    want);
            CU_FAIL("oneof case");
        }
    }
}

static void test_json_bad_input(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char out[4096], err[512] = "";
        int rc = convert(out, sizeof out, err, sizeof err, bad_cases[i].in);
        if (rc == 0 || !strstr(err, bad_cases[i].error_part)) {
            fprintf(stderr, "\ncase \"%s\": rc=%d err=\"%s\" (want \"%s\")\n", bad_cases[i].name, rc, err,
                    bad_cases[i].error_part);
            CU_FAIL("bad input case");
        }
    }
}

static void test_json_malformed_says_where(void)
{
    json_t *j = NULL;
    char err[256];
    CU_ASSERT_EQUAL(gw_json_parse(&j, err, sizeof err, "{\n  \"a\": 1,\n  }", 15), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 3, column"));
    CU_ASSERT_EQUAL(gw_json_parse(&j, err, sizeof err, "{\"a\":\"\xff\"}", 9), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "malformed JSON"));
    /* Deep nesting: jansson's own limit or ours, never a crash. */
    char deep[5000];
    size_t n = 0;
    for (int i = 0; i < 2400; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    CU_ASSERT_EQUAL(gw_json_parse(&j, err, sizeof err, deep, n), -1);
    char nested[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(nested, "{\"child\":");
    strcat(nested, "{}");
    for (int i = 0; i < 100; i++)
        strcat(nested, "}");
    CU_ASSERT_EQUAL(gw_json_parse(&j, err, sizeof err, nested, strlen(nested)), 0);
    ProtobufCMessage *m = gw_json_message_new(&coffer__test__v1__inner__descriptor);
    CU_ASSERT_EQUAL(gw_json_merge(m, err, sizeof err, j, &opts), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nesting deeper than"));
    protobuf_c_message_free_unpacked(m, NULL);
    json_decref(j);
}

static void test_json_set_path(void)
{
    ProtobufCMessage *m = gw_json_message_new(&coffer__test__v1__everything__descriptor);
    char err[256];
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "i64", "-5", 2, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "flag", "true", 4, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "inner.name", "n", 1, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "inner.child.count", "3", 1, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "tags", "a", 1, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "tags", "b", 1, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "color", "COLOR_RED", 9, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "createdAt", "2024-01-01T00:00:00Z", 20, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "maybeText", "w", 1, &opts), 0);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "nope", "1", 1, &opts), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown field"));
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "inner", "x", 1, &opts), -1);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "i32", "x", 1, &opts), -1);
    CU_ASSERT_EQUAL(gw_json_set_path(m, err, sizeof err, "text", "\xff", 1, &opts), -1);
    const Coffer__Test__V1__Everything *e = (const Coffer__Test__V1__Everything *)m;
    CU_ASSERT_EQUAL(e->i64, -5);
    CU_ASSERT_TRUE(e->flag);
    CU_ASSERT_STRING_EQUAL(e->inner->name, "n");
    CU_ASSERT_EQUAL(e->inner->child->count, 3);
    CU_ASSERT_EQUAL(e->n_tags, 2);
    CU_ASSERT_EQUAL(e->color, COFFER__TEST__V1__COLOR__COLOR_RED);
    CU_ASSERT_EQUAL(e->created_at->seconds, 1704067200);
    CU_ASSERT_STRING_EQUAL(e->maybe_text->value, "w");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_json_binary_values(void)
{
    json_t *j = NULL;
    char err[256];
    const char *in = "{\"u64\":\"18446744073709551615\",\"blob\":\"AAEC/w==\",\"amount\":\"Infinity\",\"byId\":{\"-1\":{}}}";
    CU_ASSERT_EQUAL(gw_json_parse(&j, err, sizeof err, in, strlen(in)), 0);
    ProtobufCMessage *m = gw_json_message_new(&coffer__test__v1__everything__descriptor);
    CU_ASSERT_EQUAL(gw_json_merge(m, err, sizeof err, j, &opts), 0);
    const Coffer__Test__V1__Everything *e = (const Coffer__Test__V1__Everything *)m;
    CU_ASSERT_EQUAL(e->u64, UINT64_MAX);
    CU_ASSERT_EQUAL(e->blob.len, 4);
    CU_ASSERT_EQUAL(e->blob.data[3], 0xff);
    CU_ASSERT_TRUE(isinf(e->amount));
    CU_ASSERT_EQUAL(e->n_by_id, 1);
    CU_ASSERT_EQUAL(e->by_id[0]->key, -1);
    protobuf_c_message_free_unpacked(m, NULL);
    json_decref(j);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"conformance: JSON in, canonical JSON out", test_json_conformance_ok},
        {"oneof members only when set", test_json_oneof},
        {"bad input rejected with a message", test_json_bad_input},
        {"malformed JSON says where; deep nesting", test_json_malformed_says_where},
        {"path and query values", test_json_set_path},
        {"decoded binary values", test_json_binary_values},
        {NULL, NULL},
    };
    test_add_suite("gw_json", cases);
}
