/* Shared glue for the CUnit unit tests: every tests/unit/<dir>/test_<module>.c
 * defines test_register() to add its suites; test_main.c runs them and
 * prints CUnit's summary. */
#ifndef COFFER_TEST_SUPPORT_H
#define COFFER_TEST_SUPPORT_H

#include <CUnit/CUnit.h>
#include <stddef.h>

/* Adds this file's suites to the CUnit registry. */
void test_register(void);

/* Absolute path of a file under tests/vectors (COFFER_TEST_VECTORS, set by
 * meson test). Returns a pointer to a static buffer. */
const char *test_vector_path(const char *name);

/* Reads a whole file into a NUL-terminated malloc'd buffer; *len gets its
 * length. Returns NULL (and fails the current test) when it cannot. */
char *test_read_file(const char *path, size_t *len);

/* Adds a suite with the given tests ({name, fn} pairs ending with
 * {NULL, NULL}); aborts the run if CUnit refuses. */
typedef struct {
    const char *name;
    CU_TestFunc fn;
} test_case;
void test_add_suite(const char *suite_name, const test_case *cases);

/* Same, with CUnit suite set-up and tear-down functions (0 = success). */
void test_add_suite_with(const char *suite_name, CU_InitializeFunc init,
                         CU_CleanupFunc cleanup, const test_case *cases);

#endif
