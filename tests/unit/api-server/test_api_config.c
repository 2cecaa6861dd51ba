#include "api_config.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_api_config_flags_override_env(void)
{
    char *envp[] = {"COFFER_DB_URL=postgres://env@h/db", "COFFER_DB_POOL_SIZE=4", "PATH=/bin", NULL};
    char *extra[] = {"COFFER_DB_URL=postgres://flag@h/db", NULL};
    config *cfg = api_config_load("test", NULL, envp, extra);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const char *url = NULL;
    int64_t size = 0;
    CU_ASSERT_EQUAL(config_get_string(cfg, &url, "db.url"), 0);
    CU_ASSERT_STRING_EQUAL(url, "postgres://flag@h/db");
    CU_ASSERT_EQUAL(config_get_int(cfg, &size, "db.pool_size"), 0);
    CU_ASSERT_EQUAL(size, 4);
    CU_ASSERT_EQUAL(api_config_log_level(cfg), LOG_INFO);
    config_free(cfg);
}

static void test_api_config_rejects_bad_values(void)
{
    char *missing[] = {NULL};
    CU_ASSERT_PTR_NULL(api_config_load("test", NULL, missing, NULL));
    char *bad[] = {"COFFER_DB_URL=x", "COFFER_DB_POOL_SIZE=0", "COFFER_LOG_LEVEL=loud", NULL};
    CU_ASSERT_PTR_NULL(api_config_load("test", NULL, bad, NULL));
    char *ok[] = {"COFFER_DB_URL=x", "COFFER_LOG_LEVEL=debug", NULL};
    config *cfg = api_config_load("test", NULL, ok, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(api_config_log_level(cfg), LOG_DEBUG);
    config_free(cfg);
}

static void test_api_config_file(void)
{
    char path[] = "/tmp/coffer-api-config-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# coffer-api\ndb.url = postgres://file@h/db\ndb.statement_timeout = 2s\n", f);
    fclose(f);
    char *envp[] = {NULL};
    config *cfg = api_config_load("test", path, envp, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    int64_t ms = 0;
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &ms, "db.statement_timeout"), 0);
    CU_ASSERT_EQUAL(ms, 2000);
    CU_ASSERT_EQUAL(config_get_source(cfg, "db.url"), CONFIG_SOURCE_FILE);
    config_free(cfg);
    remove(path);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"flags_override_env", test_api_config_flags_override_env},
        {"rejects_bad_values", test_api_config_rejects_bad_values},
        {"file", test_api_config_file},
        {NULL, NULL},
    };
    test_add_suite("api_config", cases);
}
