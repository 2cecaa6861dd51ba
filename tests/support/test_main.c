#include "test_support.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *test_vector_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("COFFER_TEST_VECTORS");
    if (!dir)
        dir = "tests/vectors";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        fprintf(stderr, "test: cannot open %s: %s\n", path, strerror(errno));
        CU_FAIL_FATAL("cannot open test file");
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        goto fail;
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto fail;
    buf[size] = '\0';
    *len = (size_t)size;
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    CU_FAIL_FATAL("cannot read test file");
    return NULL;
}

void test_add_suite(const char *suite_name, const test_case *cases)
{
    test_add_suite_with(suite_name, NULL, NULL, cases);
}

void test_add_suite_with(const char *suite_name, CU_InitializeFunc init,
                         CU_CleanupFunc cleanup, const test_case *cases)
{
    CU_pSuite suite = CU_add_suite(suite_name, init, cleanup);
    if (!suite) {
        fprintf(stderr, "test: CU_add_suite(%s): %s\n", suite_name, CU_get_error_msg());
        exit(2);
    }
    for (const test_case *c = cases; c->name; c++) {
        if (!CU_add_test(suite, c->name, c->fn)) {
            fprintf(stderr, "test: CU_add_test(%s): %s\n", c->name, CU_get_error_msg());
            exit(2);
        }
    }
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "test: CU_initialize_registry: %s\n", CU_get_error_msg());
        return 2;
    }
    test_register();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned asserts_failed = CU_get_number_of_failures();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "test: no test ran\n");
        return 1;
    }
    return (failed || asserts_failed) ? 1 : 0;
}
