/* descset over the descriptor set embedded in coffer-api, and malformed sets. */
#include "descset.h"
#include "services.h"
#include "test_support.h"

#include <string.h>

static descset *load(void)
{
    char err[256];
    descset *d = descset_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len);
    CU_ASSERT_PTR_NOT_NULL(d);
    return d;
}

static const char *file_of(const descset *d, const char *symbol)
{
    size_t f;
    return descset_find_symbol(d, &f, symbol) == 0 ? descset_file_name(d, f) : NULL;
}

static void test_descset_symbols(void)
{
    descset *d = load();
    if (!d)
        return;
    CU_ASSERT_TRUE(descset_file_count(d) >= 6);
    static const struct {
        const char *symbol, *file;
    } cases[] = {
        {"coffer.v1.SystemService", "coffer/v1/system.proto"},
        {"coffer.v1.SystemService.GetInfo", "coffer/v1/system.proto"},
        {"coffer.v1.GetInfoResponse", "coffer/v1/system.proto"},
        {"coffer.v1.GetInfoResponse.schema_version", "coffer/v1/system.proto"},
        {"coffer.v1.ComponentStatus", "coffer/v1/system.proto"},
        {"coffer.v1.COMPONENT_STATUS_UP", "coffer/v1/system.proto"},
        {"grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"},
        {"grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"},
        {"grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"},
        {"google.api.http", "google/api/annotations.proto"},
        {"google.protobuf.MethodOptions", "google/protobuf/descriptor.proto"},
        {"google.protobuf.FieldDescriptorProto.Type", "google/protobuf/descriptor.proto"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *f = file_of(d, cases[i].symbol);
        CU_ASSERT_PTR_NOT_NULL(f);
        if (f)
            CU_ASSERT_STRING_EQUAL(f, cases[i].file);
    }
    CU_ASSERT_PTR_NULL(file_of(d, "coffer.v1"));
    CU_ASSERT_PTR_NULL(file_of(d, "coffer.v1.SystemService.Nope"));
    CU_ASSERT_PTR_NULL(file_of(d, ""));
    CU_ASSERT_PTR_NULL(file_of(d, ".coffer.v1.SystemService"));
    descset_free(d);
}

static void test_descset_files_and_methods(void)
{
    descset *d = load();
    if (!d)
        return;
    size_t f, files[16];
    CU_ASSERT_EQUAL_FATAL(descset_find_file(d, &f, "coffer/v1/system.proto"), 0);
    size_t n = descset_closure(d, files, 16, f);
    CU_ASSERT_TRUE(n >= 4 && n <= 16);
    CU_ASSERT_EQUAL(files[0], f);
    bool has_http = false, has_descriptor = false;
    for (size_t i = 0; i < n && i < 16; i++) {
        has_http |= strcmp(descset_file_name(d, files[i]), "google/api/http.proto") == 0;
        has_descriptor |= strcmp(descset_file_name(d, files[i]), "google/protobuf/descriptor.proto") == 0;
    }
    CU_ASSERT_TRUE(has_http && has_descriptor);
    CU_ASSERT_EQUAL(descset_find_file(d, &f, "nope.proto"), -1);

    bool cs, ss;
    CU_ASSERT_EQUAL(descset_method_streaming(d, &cs, &ss, "grpc.health.v1.Health", "Watch"), 0);
    CU_ASSERT_TRUE(!cs && ss);
    CU_ASSERT_EQUAL(descset_method_streaming(d, &cs, &ss, "grpc.reflection.v1alpha.ServerReflection",
                                             "ServerReflectionInfo"), 0);
    CU_ASSERT_TRUE(cs && ss);
    CU_ASSERT_EQUAL(descset_method_streaming(d, &cs, &ss, "coffer.v1.SystemService", "GetInfo"), 0);
    CU_ASSERT_TRUE(!cs && !ss);
    CU_ASSERT_EQUAL(descset_method_streaming(d, &cs, &ss, "coffer.v1.SystemService", "Nope"), -1);

    CU_ASSERT_EQUAL(descset_find_extension(d, &f, "google.protobuf.MethodOptions", 72295728), 0);
    CU_ASSERT_STRING_EQUAL(descset_file_name(d, f), "google/api/annotations.proto");
    CU_ASSERT_EQUAL(descset_find_extension(d, &f, "google.protobuf.MethodOptions", 1), -1);
    int32_t nums[8];
    CU_ASSERT_EQUAL(descset_extension_numbers(d, nums, 8, "google.protobuf.MethodOptions"), 1);
    CU_ASSERT_EQUAL(nums[0], 72295728);
    CU_ASSERT_EQUAL(descset_extension_numbers(d, nums, 8, "coffer.v1.GetInfoRequest"), 0);
    /* Each file's bytes are exactly a FileDescriptorProto with its name. */
    const uint8_t *bytes;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(descset_find_file(d, &f, "grpc/health/v1/health.proto"), 0);
    descset_file_bytes(d, &bytes, &len, f);
    CU_ASSERT_TRUE(len > 10 && bytes[0] == 0x0a);
    descset_free(d);
}

static void test_descset_malformed(void)
{
    char err[256];
    static const uint8_t wrong_field[] = {0x12, 0x00};
    static const uint8_t truncated[] = {0x0a, 0x10, 0x0a};
    static const uint8_t not_a_file[] = {0x0a, 0x02, 0xff, 0xff};
    static const uint8_t nameless[] = {0x0a, 0x00};
    CU_ASSERT_PTR_NULL(descset_new(err, sizeof err, wrong_field, sizeof wrong_field));
    CU_ASSERT_PTR_NULL(descset_new(err, sizeof err, truncated, sizeof truncated));
    CU_ASSERT_PTR_NULL(descset_new(err, sizeof err, not_a_file, sizeof not_a_file));
    CU_ASSERT_PTR_NULL(descset_new(err, sizeof err, nameless, sizeof nameless));
    descset *d = descset_new(err, sizeof err, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(descset_file_count(d), 0);
    descset_free(d);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"symbols", test_descset_symbols},
        {"files_and_methods", test_descset_files_and_methods},
        {"malformed", test_descset_malformed},
        {NULL, NULL},
    };
    test_add_suite("descset", cases);
}
