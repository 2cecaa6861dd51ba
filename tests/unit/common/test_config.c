#include "config.h"
#include "test_support.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

/* A schema with every type, as a program would declare it. */
static const config_option opts[] = {
    {"db.url", CONFIG_STRING, CONFIG_REQUIRED | CONFIG_SECRET, NULL, 0, 0, NULL,
     "PostgreSQL connection URL"},
    {"db.pool_size", CONFIG_INT, 0, "8", 1, 256, NULL, "connections in the pool"},
    {"grpc.max_message_bytes", CONFIG_INT, 0, "4194304", 1024, 67108864, NULL,
     "largest gRPC message accepted"},
    {"grpc.listen", CONFIG_STRING, 0, "127.0.0.1:50051", 0, 0, NULL, "listen address"},
    {"grpc.reflection", CONFIG_BOOL, 0, "false", 0, 0, NULL, "serve gRPC reflection"},
    {"grpc.deadline", CONFIG_DURATION, 0, "5s", 1, 600000, NULL, "default RPC deadline"},
    {"signer.socket", CONFIG_PATH, 0, "/run/coffer/signer.sock", 0, 0, NULL,
     "coffer-signer's Unix socket"},
    {"log.level", CONFIG_ENUM, 0, "info", 0, 0, levels, "lowest level logged"},
    {"chain.ids", CONFIG_LIST, 0, "1,8453", 0, 0, NULL, "chains served"},
    {"webhook.secret", CONFIG_STRING, CONFIG_SECRET, "dev-webhook-secret", 0, 0, NULL,
     "HMAC key for provider webhooks"},
    {"tls.ca_file", CONFIG_PATH, 0, NULL, 0, 0, NULL, "CA bundle (optional)"},
    {"jobs.offset", CONFIG_INT, 0, "0", 0, 0, NULL, "unbounded integer"},
    {"jobs.idle", CONFIG_DURATION, 0, "0", 0, 0, NULL, "unbounded duration"},
    {"api.name", CONFIG_STRING, 0, "", 0, 0, NULL, "display name"},
};
static const config_schema schema = {opts, sizeof opts / sizeof opts[0]};

static config *load_text(config_errors *errs, const char *text, char **envp)
{
    config *cfg = (config *)(uintptr_t)1;
    int rc = config_load_buffer(&cfg, errs, &schema, "t.conf", text, strlen(text), envp);
    CU_ASSERT((rc == 0) == (cfg != NULL));
    return cfg;
}

/* Loads text that must fail with exactly one message, and checks it. */
static void expect_one_error(const char *text, char **envp, const char *message)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = load_text(&errs, text, envp);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
    const char *got = config_errors_get(&errs, 0);
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got && strcmp(got, message) != 0) {
        fprintf(stderr, "\n  expected: %s\n  got:      %s\n", message, got);
        CU_FAIL("wrong message");
    }
    config_free(cfg);
    config_errors_dispose(&errs);
}

/* Checks that the error list is exactly want[0..n). */
static void expect_errors(const config_errors *errs, const char *const *want, size_t n)
{
    CU_ASSERT_EQUAL(config_errors_count(errs), n);
    for (size_t i = 0; i < n && i < errs->count; i++) {
        if (strcmp(config_errors_get(errs, i), want[i]) != 0) {
            fprintf(stderr, "\n  [%zu] expected: %s\n  [%zu] got:      %s\n", i, want[i], i,
                    config_errors_get(errs, i));
            CU_FAIL("wrong message");
        }
    }
}

static char *dump_to_string(const config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_dump(cfg, f), 0);
    fclose(f);
    return text;
}

/* ---- good input ------------------------------------------------------------ */

static void test_config_good_file(void)
{
    config_errors errs;
    config *cfg = NULL;
    const char *s;
    int64_t i;
    bool b;
    size_t idx, n;
    const char *const *items;

    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_file(&cfg, &errs, &schema, test_vector_path("config/good.conf"), NULL), 0);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);

    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "db.url"), 0);
    CU_ASSERT_STRING_EQUAL(s, "postgres://coffer:s3cr3t-pw@localhost/coffer");
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, "db.pool_size"), 0);
    CU_ASSERT_EQUAL(i, 16);
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, "grpc.max_message_bytes"), 0);
    CU_ASSERT_EQUAL(i, 1048576);
    CU_ASSERT_EQUAL(config_get_bool(cfg, &b, "grpc.reflection"), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &i, "grpc.deadline"), 0);
    CU_ASSERT_EQUAL(i, 120000);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "signer.socket"), 0);
    CU_ASSERT_STRING_EQUAL(s, "/run/coffer/signer.sock");
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "log.level"), 0);
    CU_ASSERT_STRING_EQUAL(s, "warn");
    CU_ASSERT_EQUAL(config_get_enum(cfg, &idx, "log.level"), 0);
    CU_ASSERT_EQUAL(idx, 2);
    CU_ASSERT_EQUAL(config_get_list(cfg, &items, &n, "chain.ids"), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(items[0], "1");
    CU_ASSERT_STRING_EQUAL(items[1], "8453");
    CU_ASSERT_STRING_EQUAL(items[2], "42161");
    CU_ASSERT_PTR_NULL(items[3]);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "api.name"), 0);
    CU_ASSERT_STRING_EQUAL(s, "Coffer \"prod\" \\ east # not a comment");
    /* Defaults. */
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "grpc.listen"), 0);
    CU_ASSERT_STRING_EQUAL(s, "127.0.0.1:50051");
    CU_ASSERT_EQUAL(config_get_source(cfg, "grpc.listen"), CONFIG_SOURCE_DEFAULT);
    CU_ASSERT_EQUAL(config_get_source(cfg, "db.pool_size"), CONFIG_SOURCE_FILE);
    /* Optional, unset. */
    CU_ASSERT_EQUAL(config_get_source(cfg, "tls.ca_file"), CONFIG_SOURCE_UNSET);
    s = "unchanged";
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "tls.ca_file"), -1);
    CU_ASSERT_STRING_EQUAL(s, "unchanged");

    config_free(cfg);
    config_free(NULL);
    config_errors_dispose(&errs);
}

static void test_config_getter_misuse(void)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = load_text(&errs, "db.url = x\n", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const char *s = NULL;
    int64_t i = 77;
    bool b = true;
    size_t idx = 5, n = 9;
    const char *const *items = NULL;
    /* Wrong type. */
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, "db.url"), -1);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "db.pool_size"), -1);
    CU_ASSERT_EQUAL(config_get_bool(cfg, &b, "grpc.deadline"), -1);
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &i, "db.pool_size"), -1);
    CU_ASSERT_EQUAL(config_get_enum(cfg, &idx, "db.url"), -1);
    CU_ASSERT_EQUAL(config_get_list(cfg, &items, &n, "db.url"), -1);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "chain.ids"), -1);
    /* Unknown key. */
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "db.ulr"), -1);
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, ""), -1);
    CU_ASSERT_EQUAL(config_get_source(cfg, "nope"), CONFIG_SOURCE_UNSET);
    /* Outputs untouched. */
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(i, 77);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(idx, 5);
    CU_ASSERT_EQUAL(n, 9);
    /* Unbounded defaults. */
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, "jobs.offset"), 0);
    CU_ASSERT_EQUAL(i, 0);
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &i, "jobs.idle"), 0);
    CU_ASSERT_EQUAL(i, 0);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "api.name"), 0);
    CU_ASSERT_STRING_EQUAL(s, "");
    config_free(cfg);
    config_errors_dispose(&errs);
}

static void test_config_env_overrides(void)
{
    char *envp[] = {
        "PATH=/usr/bin",
        "COFFER_DB_URL=postgres://from-env",
        "COFFER_LOG_LEVEL=debug",
        "COFFER_GRPC_DEADLINE=250ms",
        "COFFER_CHAIN_IDS=",
        "COFFER_API_NAME= spaced \"literal\" ",
        "COFFER_PG_URL=ignored: names no key",
        "COFFER_TEST_VECTORS=/x",
        "COFFER_NOEQUALS",
        "db.pool_size=99",
        NULL,
    };
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = load_text(&errs, "db.url = from-file\nlog.level = error\ndb.pool_size = 3\n", envp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const char *s;
    int64_t i;
    size_t n = 99;
    const char *const *items = NULL;
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "db.url"), 0);
    CU_ASSERT_STRING_EQUAL(s, "postgres://from-env");
    CU_ASSERT_EQUAL(config_get_source(cfg, "db.url"), CONFIG_SOURCE_ENV);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "log.level"), 0);
    CU_ASSERT_STRING_EQUAL(s, "debug");
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &i, "grpc.deadline"), 0);
    CU_ASSERT_EQUAL(i, 250);
    CU_ASSERT_EQUAL(config_get_source(cfg, "grpc.deadline"), CONFIG_SOURCE_ENV);
    CU_ASSERT_EQUAL(config_get_list(cfg, &items, &n, "chain.ids"), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(items);
    CU_ASSERT_PTR_NULL(items ? items[0] : NULL);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "api.name"), 0);
    CU_ASSERT_STRING_EQUAL(s, " spaced \"literal\" ");
    CU_ASSERT_EQUAL(config_get_int(cfg, &i, "db.pool_size"), 0);
    CU_ASSERT_EQUAL(i, 3);
    CU_ASSERT_EQUAL(config_get_source(cfg, "db.pool_size"), CONFIG_SOURCE_FILE);
    config_free(cfg);

    /* The environment alone satisfies a required key. */
    char *only_env[] = {"COFFER_DB_URL=x", NULL};
    cfg = load_text(&errs, "", only_env);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    config_free(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    config_errors_dispose(&errs);
}

static void test_config_crlf_bom(void)
{
    config_errors errs;
    config *cfg = NULL;
    const char *s;
    int64_t ms;
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_file(&cfg, &errs, &schema, test_vector_path("config/crlf_bom.conf"), NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "db.url"), 0);
    CU_ASSERT_STRING_EQUAL(s, "postgres://crlf");
    CU_ASSERT_EQUAL(config_get_string(cfg, &s, "log.level"), 0);
    CU_ASSERT_STRING_EQUAL(s, "debug");
    CU_ASSERT_EQUAL(config_get_duration_ms(cfg, &ms, "grpc.deadline"), 0);
    CU_ASSERT_EQUAL(ms, 250);
    config_free(cfg);
    config_errors_dispose(&errs);
}

/* ---- value syntax ------------------------------------------------------------ */

static void test_config_durations(void)
{
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"1ms", 1}, {"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000},
        {"0", 0}, {"0s", 0}, {"007s", 7000},
        {"2562047788015h", 2562047788015LL * 3600000},
        {"9223372036854775807ms", INT64_MAX},
    };
    static const char *const bad[] = {
        "5", "5 s", " 5s", "-1s", "+1s", "1.5s", "s", "5sec", "5S", "1d", "",
        "2562047788016h", "9223372036854775808ms", "99999999999999999999999h",
    };
    char text[128];
    config_errors errs;
    config_errors_init(&errs);
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\njobs.idle=%s\n", good[k].text);
        config *cfg = load_text(&errs, text, NULL);
        int64_t ms = -1;
        CU_ASSERT_PTR_NOT_NULL(cfg);
        CU_ASSERT(cfg && config_get_duration_ms(cfg, &ms, "jobs.idle") == 0 && ms == good[k].ms);
        config_free(cfg);
    }
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\njobs.idle=\"%s\"\n", bad[k]);
        config *cfg = load_text(&errs, text, NULL);
        CU_ASSERT_PTR_NULL(cfg);
        config_free(cfg);
    }
    CU_ASSERT_EQUAL(config_errors_count(&errs), sizeof bad / sizeof bad[0]);
    config_errors_dispose(&errs);

    /* Bounds: grpc.deadline is 1ms..10m. */
    expect_one_error("db.url=x\ngrpc.deadline=0\n", NULL,
                     "t.conf:2: grpc.deadline: expected a duration such as 250ms, 5s, 2m or 1h, "
                     "between 1ms and 10m, got \"0\"");
    expect_one_error("db.url=x\ngrpc.deadline=601s\n", NULL,
                     "t.conf:2: grpc.deadline: expected a duration such as 250ms, 5s, 2m or 1h, "
                     "between 1ms and 10m, got \"601s\"");
    expect_one_error("db.url=x\njobs.idle=5\n", NULL,
                     "t.conf:2: jobs.idle: expected a duration such as 250ms, 5s, 2m or 1h, got \"5\"");
}

static void test_config_ints_bools_lists(void)
{
    static const struct {
        const char *text;
        int64_t v;
    } ints[] = {
        {"0", 0}, {"-0", 0}, {"+5", 5}, {"-17", -17}, {"00042", 42},
        {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN},
    };
    static const char *const bad_ints[] = {
        "9223372036854775808", "-9223372036854775809", "1e3", "0x10", "1 000", "", "-", "+", "12a",
    };
    static const struct {
        const char *text;
        bool v;
    } bools[] = {
        {"true", true}, {"TRUE", true}, {"Yes", true}, {"on", true}, {"1", true},
        {"false", false}, {"No", false}, {"OFF", false}, {"0", false},
    };
    static const char *const bad_bools[] = {"2", "y", "enable", "", "truee", "-1"};
    char text[128];
    config_errors errs;
    config_errors_init(&errs);
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\njobs.offset = %s\n", ints[k].text);
        config *cfg = load_text(&errs, text, NULL);
        int64_t v = 1234;
        CU_ASSERT(cfg && config_get_int(cfg, &v, "jobs.offset") == 0 && v == ints[k].v);
        config_free(cfg);
    }
    for (size_t k = 0; k < sizeof bools / sizeof bools[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\ngrpc.reflection = %s\n", bools[k].text);
        config *cfg = load_text(&errs, text, NULL);
        bool v = !bools[k].v;
        CU_ASSERT(cfg && config_get_bool(cfg, &v, "grpc.reflection") == 0 && v == bools[k].v);
        config_free(cfg);
    }
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\njobs.offset = %s\n", bad_ints[k]);
        config *cfg = load_text(&errs, text, NULL);
        CU_ASSERT_PTR_NULL(cfg);
        config_free(cfg);
    }
    for (size_t k = 0; k < sizeof bad_bools / sizeof bad_bools[0]; k++) {
        snprintf(text, sizeof text, "db.url=x\ngrpc.reflection = %s\n", bad_bools[k]);
        config *cfg = load_text(&errs, text, NULL);
        CU_ASSERT_PTR_NULL(cfg);
        config_free(cfg);
    }
    CU_ASSERT_EQUAL(config_errors_count(&errs),
                    sizeof bad_ints / sizeof bad_ints[0] + sizeof bad_bools / sizeof bad_bools[0]);
    config_errors_dispose(&errs);

    expect_one_error("db.url=x\njobs.offset=1e3\n", NULL,
                     "t.conf:2: jobs.offset: expected an integer, got \"1e3\"");
    expect_one_error("db.url=x\ndb.pool_size=257\n", NULL,
                     "t.conf:2: db.pool_size: expected an integer between 1 and 256, got \"257\"");

    /* Lists. */
    config_errors_init(&errs);
    config *cfg = load_text(&errs, "db.url=x\nchain.ids = \" a , b b,\tc \"\n", NULL);
    const char *const *items = NULL;
    size_t n = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(config_get_list(cfg, &items, &n, "chain.ids"), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(items[0], "a");
    CU_ASSERT_STRING_EQUAL(items[1], "b b");
    CU_ASSERT_STRING_EQUAL(items[2], "c");
    config_free(cfg);
    cfg = load_text(&errs, "db.url=x\nchain.ids = single\n", NULL);
    CU_ASSERT(cfg && config_get_list(cfg, &items, &n, "chain.ids") == 0 && n == 1 &&
              strcmp(items[0], "single") == 0);
    config_free(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    config_errors_dispose(&errs);
    expect_one_error("db.url=x\nchain.ids = a,\n", NULL,
                     "t.conf:2: chain.ids: expected a comma-separated list of non-empty items, got \"a,\"");
    expect_one_error("db.url=x\nchain.ids = \" , \"\n", NULL,
                     "t.conf:2: chain.ids: expected a comma-separated list of non-empty items, got \" , \"");

    /* Paths: the longest only fits through the environment (a file line
     * also holds the key). */
    char *long_path = malloc(CONFIG_PATH_MAX + 40);
    CU_ASSERT_PTR_NOT_NULL_FATAL(long_path);
    int off = snprintf(long_path, 40, "COFFER_TLS_CA_FILE=");
    memset(long_path + off, 'p', CONFIG_PATH_MAX);
    long_path[off + CONFIG_PATH_MAX] = '\0';
    char *envp[] = {long_path, NULL};
    config_errors_init(&errs);
    cfg = load_text(&errs, "db.url=x\n", envp);
    CU_ASSERT_PTR_NOT_NULL(cfg); /* exactly CONFIG_PATH_MAX */
    config_free(cfg);
    strcat(long_path, "p");
    cfg = load_text(&errs, "db.url=x\n", envp);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
    config_free(cfg);
    config_errors_dispose(&errs);
    free(long_path);
}

static void test_config_quoting(void)
{
    config_errors errs;
    const char *s;
    config_errors_init(&errs);
    config *cfg = load_text(&errs, "db.url = \"\"\napi.name=\"  a \\\\\\\" b  \"   \n", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT(config_get_string(cfg, &s, "db.url") == 0 && strcmp(s, "") == 0);
    CU_ASSERT(config_get_string(cfg, &s, "api.name") == 0 && strcmp(s, "  a \\\" b  ") == 0);
    config_free(cfg);
    /* Unquoted: inner quotes and '#' are literal, blanks trimmed. */
    cfg = load_text(&errs, "db.url =\t a\"b # c \t\n", NULL);
    CU_ASSERT(cfg && config_get_string(cfg, &s, "db.url") == 0 && strcmp(s, "a\"b # c") == 0);
    config_free(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 0);
    config_errors_dispose(&errs);

    expect_one_error("db.url = \"abc\n", NULL, "t.conf:1: db.url: unterminated quoted value");
    expect_one_error("db.url = \"abc\\\"\n", NULL, "t.conf:1: db.url: unterminated quoted value");
    expect_one_error("db.url = \"a\\tb\"\n", NULL,
                     "t.conf:1: db.url: invalid escape in quoted value (only \\\" and \\\\)");
    expect_one_error("db.url = \"a\" # comment\n", NULL,
                     "t.conf:1: db.url: unexpected text after the closing quote");
}

/* ---- errors ------------------------------------------------------------------ */

static void test_config_bad_file_all_errors(void)
{
    static const char *const want[] = {
        "bad.conf:2: unknown key \"db.ulr\" (did you mean \"db.url\"?)",
        "bad.conf:3: grpc.max_message_bytes: expected an integer between 1024 and 67108864, got \"4x\"",
        "bad.conf:4: db.pool_size: expected an integer between 1 and 256, got \"0\"",
        "bad.conf:5: grpc.reflection: expected a boolean (true/false, yes/no, on/off, 1/0), got \"maybe\"",
        "bad.conf:6: grpc.deadline: expected a duration such as 250ms, 5s, 2m or 1h, between 1ms and 10m, got \"5\"",
        "bad.conf:7: log.level: expected one of debug|info|warn|error, got \"loud\"",
        "bad.conf:8: chain.ids: expected a comma-separated list of non-empty items, got \"1,,2\"",
        "bad.conf:9: signer.socket: expected a non-empty path of at most 4095 bytes, got \"\"",
        "bad.conf:10: webhook.secret: unterminated quoted value",
        "bad.conf:11: api.name: invalid escape in quoted value (only \\\" and \\\\)",
        "bad.conf:12: duplicate key db.pool_size (first set on line 4)",
        "bad.conf:13: expected key = value",
        "bad.conf:14: missing key before '='",
        "bad.conf:15: grpc.listen: unexpected text after the closing quote",
        "bad.conf:16: duplicate key grpc.deadline (first set on line 6)",
        "env COFFER_LOG_LEVEL: expected one of debug|info|warn|error, got \"loud\"",
        "env COFFER_GRPC_MAX_MESSAGE_BYTES: expected an integer between 1024 and 67108864, got \"64k\"",
        "missing required key db.url",
    };
    char *envp[] = {"COFFER_LOG_LEVEL=loud", "COFFER_DB_POOL_SIZE=12",
                    "COFFER_GRPC_MAX_MESSAGE_BYTES=64k", NULL};
    size_t len = 0;
    char *text = test_read_file(test_vector_path("config/bad.conf"), &len);
    config_errors errs;
    config *cfg = (config *)(uintptr_t)1;

    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &schema, "bad.conf", text, len, envp), -1);
    CU_ASSERT_PTR_NULL(cfg); /* nothing half-applied */
    expect_errors(&errs, want, sizeof want / sizeof want[0]);
    /* The secret's text never shows. */
    for (size_t i = 0; i < errs.count; i++)
        CU_ASSERT_PTR_NULL(strstr(config_errors_get(&errs, i), "whsec_leak"));
    config_errors_dispose(&errs);

    /* Same through the file loader: the path names the source. */
    const char *path = test_vector_path("config/bad.conf");
    char first[4200];
    snprintf(first, sizeof first, "%s:2: unknown key \"db.ulr\" (did you mean \"db.url\"?)", path);
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_file(&cfg, &errs, &schema, path, envp), -1);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(config_errors_count(&errs), sizeof want / sizeof want[0]);
    CU_ASSERT_STRING_EQUAL(config_errors_get(&errs, 0), first);

    /* config_errors_print writes them one a line. */
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_errors_print(&errs, f), 0);
    fclose(f);
    size_t lines = 0;
    for (size_t i = 0; i < out_len; i++)
        lines += out[i] == '\n';
    CU_ASSERT_EQUAL(lines, sizeof want / sizeof want[0]);
    free(out);
    config_errors_dispose(&errs);
    free(text);
}

static void test_config_bad_bytes(void)
{
    static const char *const want[] = {
        "bad_bytes.conf:3: invalid UTF-8 at column 17",
        "bad_bytes.conf:4: NUL byte at column 18",
        "bad_bytes.conf:5: control character 0x1b at column 13",
    };
    size_t len = 0;
    char *text = test_read_file(test_vector_path("config/bad_bytes.conf"), &len);
    config_errors errs;
    config *cfg = NULL;
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &schema, "bad_bytes.conf", text, len, NULL), -1);
    CU_ASSERT_PTR_NULL(cfg);
    expect_errors(&errs, want, sizeof want / sizeof want[0]);
    config_errors_dispose(&errs);
    free(text);

    /* Overlong encodings, surrogates and > U+10FFFF are not UTF-8. */
    static const char *const not_utf8[] = {
        "db.url=x\napi.name = \xc0\xaf\n", "db.url=x\napi.name = \xe0\x80\xaf\n",
        "db.url=x\napi.name = \xed\xa0\x80\n", "db.url=x\napi.name = \xf4\x90\x80\x80\n",
        "db.url=x\napi.name = \xf8\x88\x80\x80\x80\n", "db.url=x\napi.name = \xe2\x82\n",
        "db.url=x\napi.name = \x80\n", "db.url=x\napi.name = a\x7f\n",
    };
    for (size_t k = 0; k < sizeof not_utf8 / sizeof not_utf8[0]; k++) {
        config_errors_init(&errs);
        cfg = load_text(&errs, not_utf8[k], NULL);
        CU_ASSERT_PTR_NULL(cfg);
        CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
        config_free(cfg);
        config_errors_dispose(&errs);
    }
    /* Valid multi-byte text passes: 2, 3 and 4 byte forms. */
    config_errors_init(&errs);
    cfg = load_text(&errs, "db.url = caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\n", NULL);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    config_free(cfg);
    config_errors_dispose(&errs);
}

static void test_config_line_too_long(void)
{
    size_t n = 5000;
    char *text = malloc(n + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int off = snprintf(text, 64, "db.url = x\napi.name = ");
    memset(text + off, 'a', n);
    strcpy(text + off + n, "\nlog.level = debug\n");
    expect_one_error(text, NULL, "t.conf:2: line too long (5011 bytes, at most 4096)");

    /* Exactly CONFIG_LINE_MAX is fine. */
    off = snprintf(text, 64, "db.url = x\napi.name = ");
    memset(text + off, 'b', CONFIG_LINE_MAX - 11);
    text[off + CONFIG_LINE_MAX - 11] = '\0';
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = load_text(&errs, text, NULL);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    config_free(cfg);
    config_errors_dispose(&errs);
    free(text);
}

static void test_config_env_errors(void)
{
    char *envp1[] = {"COFFER_DB_URL=x", "COFFER_LOG_LEVEL=loud", NULL};
    expect_one_error("", envp1, "env COFFER_LOG_LEVEL: expected one of debug|info|warn|error, got \"loud\"");
    char *envp2[] = {"COFFER_DB_URL=x", "COFFER_DB_URL=y", NULL};
    expect_one_error("", envp2, "env COFFER_DB_URL: set more than once");
    char *envp3[] = {"COFFER_DB_URL=x", "COFFER_API_NAME=two\nlines", NULL};
    expect_one_error("", envp3, "env COFFER_API_NAME: control character 0x0a at column 4");
    char *envp4[] = {"COFFER_DB_URL=x", "COFFER_GRPC_DEADLINE=-5s", NULL};
    expect_one_error("", envp4,
                     "env COFFER_GRPC_DEADLINE: expected a duration such as 250ms, 5s, 2m or 1h, "
                     "between 1ms and 10m, got \"-5s\"");

    char *big = malloc(CONFIG_LINE_MAX + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    int off = snprintf(big, 64, "COFFER_API_NAME=");
    memset(big + off, 'z', CONFIG_LINE_MAX + 1);
    big[off + CONFIG_LINE_MAX + 1] = '\0';
    char *envp5[] = {"COFFER_DB_URL=x", big, NULL};
    expect_one_error("", envp5, "env COFFER_API_NAME: value too long (4097 bytes, at most 4096)");
    free(big);

    expect_one_error("", NULL, "missing required key db.url");
    /* A present but invalid required key is reported once, not also as missing. */
    char *envp6[] = {"COFFER_DB_URL=x\x01", NULL};
    expect_one_error("", envp6, "env COFFER_DB_URL: control character 0x01 at column 2");
}

static void test_config_secrets_redacted(void)
{
    static const config_option secret_opts[] = {
        {"vault.pin", CONFIG_INT, CONFIG_SECRET, NULL, 1000, 9999, NULL, "a secret number"},
        {"vault.mode", CONFIG_ENUM, CONFIG_SECRET, "error", 0, 0, levels + 3, "secret enum"},
    };
    static const config_schema secret_schema = {secret_opts, 2};
    config_errors errs;
    config *cfg = NULL;
    const char *text = "vault.pin = 12ab-hunter2\nvault.mode = hunter3\n";
    char *envp[] = {"COFFER_VAULT_PIN=hunter4", NULL};

    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &secret_schema, "s.conf", text, strlen(text), envp), -1);
    static const char *const want[] = {
        "s.conf:1: vault.pin: expected an integer between 1000 and 9999, got <redacted>",
        "s.conf:2: vault.mode: expected one of error, got <redacted>",
        "env COFFER_VAULT_PIN: expected an integer between 1000 and 9999, got <redacted>",
    };
    expect_errors(&errs, want, 3);
    config_errors_dispose(&errs);

    /* Dump and help never show secret values, defaults included. */
    config_errors_init(&errs);
    char *good_env[] = {"COFFER_DB_URL=postgres://u:pw-in-env@h/db", NULL};
    cfg = load_text(&errs, "webhook.secret = whsec_in_file\n", good_env);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char *dump = dump_to_string(cfg);
    CU_ASSERT_PTR_NULL(strstr(dump, "pw-in-env"));
    CU_ASSERT_PTR_NULL(strstr(dump, "whsec_in_file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "db.url = <redacted>  # env COFFER_DB_URL\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "webhook.secret = <redacted>  # file t.conf:1\n"));
    free(dump);
    config_free(cfg);
    config_errors_dispose(&errs);

    char *help = NULL;
    size_t help_len = 0;
    FILE *f = open_memstream(&help, &help_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_print_help(&schema, f), 0);
    fclose(f);
    CU_ASSERT_PTR_NULL(strstr(help, "dev-webhook-secret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "webhook.secret (string, secret, default <redacted>)\n"
                                        "    env COFFER_WEBHOOK_SECRET\n"
                                        "    HMAC key for provider webhooks\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "db.url (string, required, secret)\n    env COFFER_DB_URL\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "grpc.max_message_bytes (integer 1024..67108864, default \"4194304\")\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "grpc.deadline (duration 1ms..10m, default \"5s\")\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "log.level (enum: debug|info|warn|error, default \"info\")\n"
                                        "    env COFFER_LOG_LEVEL\n    lowest level logged\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(help, "tls.ca_file (path)\n"));
    free(help);
}

static void test_config_dump(void)
{
    static const config_option small_opts[] = {
        {"a.int", CONFIG_INT, 0, "5", 0, 10, NULL, "x"},
        {"a.str", CONFIG_STRING, 0, NULL, 0, 0, NULL, "x"},
        {"a.bool", CONFIG_BOOL, 0, "on", 0, 0, NULL, "x"},
        {"a.dur", CONFIG_DURATION, 0, "90s", 0, 0, NULL, "x"},
        {"a.dur2", CONFIG_DURATION, 0, "1500ms", 0, 0, NULL, "x"},
        {"a.list", CONFIG_LIST, 0, NULL, 0, 0, NULL, "x"},
        {"a.enum", CONFIG_ENUM, 0, "warn", 0, 0, levels, "x"},
        {"a.path", CONFIG_PATH, 0, NULL, 0, 0, NULL, "x"},
    };
    static const config_schema small = {small_opts, sizeof small_opts / sizeof small_opts[0]};
    const char *text = "a.str = \"say \\\"hi\\\" \\\\o/\"\na.list = x, y ,z\n";
    char *envp[] = {"COFFER_A_INT=7", NULL};
    config_errors errs;
    config *cfg = NULL;
    config_errors_init(&errs);
    CU_ASSERT_EQUAL_FATAL(config_load_buffer(&cfg, &errs, &small, "d.conf", text, strlen(text), envp), 0);
    char *dump = dump_to_string(cfg);
    CU_ASSERT_STRING_EQUAL(dump,
                           "a.int = 7  # env COFFER_A_INT\n"
                           "a.str = \"say \\\"hi\\\" \\\\o/\"  # file d.conf:1\n"
                           "a.bool = true  # default\n"
                           "a.dur = 90s  # default\n"
                           "a.dur2 = 1500ms  # default\n"
                           "a.list = \"x,y,z\"  # file d.conf:2\n"
                           "a.enum = \"warn\"  # default\n"
                           "a.path  # unset\n");
    free(dump);
    config_free(cfg);
    config_errors_dispose(&errs);
}

static void test_config_schema_errors(void)
{
    static const char *const no_choices[] = {NULL};
    static const char *const bad_choices[] = {"a|b", "", NULL};
    static const config_option bad_opts[] = {
        {"Bad.Key", CONFIG_STRING, 0, NULL, 0, 0, NULL, ""},
        {"a..b", CONFIG_STRING, 0, NULL, 0, 0, NULL, ""},
        {"x.y", CONFIG_STRING, 0, NULL, 0, 0, NULL, ""},
        {"x_y", CONFIG_STRING, 0, NULL, 0, 0, NULL, ""},
        {"r.d", CONFIG_STRING, CONFIG_REQUIRED, "v", 0, 0, NULL, ""},
        {"i.range", CONFIG_INT, 0, NULL, 5, 1, NULL, ""},
        {"i.def", CONFIG_INT, 0, "11", 1, 10, NULL, ""},
        {"e.none", CONFIG_ENUM, 0, NULL, 0, 0, no_choices, ""},
        {"e.bad", CONFIG_ENUM, 0, NULL, 0, 0, bad_choices, ""},
        {"s.def", CONFIG_INT, CONFIG_SECRET, "secret-default", 0, 0, NULL, ""},
        {"d.neg", CONFIG_DURATION, 0, NULL, -5, 5, NULL, ""},
        {"x.y", CONFIG_BOOL, 0, NULL, 0, 0, NULL, ""},
    };
    static const config_schema bad = {bad_opts, sizeof bad_opts / sizeof bad_opts[0]};
    static const char *const want[] = {
        "schema: option 0: invalid key",
        "schema: option 1: invalid key",
        "schema: keys x.y and x_y collide (same key or same environment variable)",
        "schema: r.d: a required option cannot have a default",
        "schema: i.range: min is above max",
        "schema: i.def: invalid default: expected an integer between 1 and 10, got \"11\"",
        "schema: e.none: enum without choices",
        "schema: e.bad: invalid choice 0",
        "schema: e.bad: invalid choice 1",
        "schema: s.def: invalid default: expected an integer, got <redacted>",
        "schema: d.neg: negative duration bound",
        "schema: keys x.y and x.y collide (same key or same environment variable)",
        "schema: keys x_y and x.y collide (same key or same environment variable)",
    };
    config_errors errs;
    config *cfg = NULL;
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &bad, "x.conf", "", 0, NULL), -1);
    CU_ASSERT_PTR_NULL(cfg);
    expect_errors(&errs, want, sizeof want / sizeof want[0]);
    config_errors_dispose(&errs);

    static const config_schema empty = {NULL, 0};
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &empty, "x.conf", "", 0, NULL), 0);
    config_free(cfg);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &empty, "x.conf", "a = b\n", 6, NULL), -1);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
    config_errors_dispose(&errs);
}

static void test_config_error_cap(void)
{
    size_t n = 100;
    char *text = malloc(n * 16);
    size_t off = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(text + off, "nope%zu = 1\n", i);
    config_errors errs;
    config *cfg = NULL;
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &schema, "cap.conf", text, off, NULL), -1);
    /* 100 unknown keys + the missing db.url; 64 kept. */
    CU_ASSERT_EQUAL(config_errors_count(&errs), n + 1);
    CU_ASSERT_EQUAL(errs.count, CONFIG_ERRORS_MAX);
    CU_ASSERT_STRING_EQUAL(config_errors_get(&errs, 0), "cap.conf:1: unknown key \"nope0\"");
    CU_ASSERT_PTR_NULL(config_errors_get(&errs, CONFIG_ERRORS_MAX));
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_errors_print(&errs, f), 0);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n... and 37 more problems\n"));
    free(out);
    config_errors_dispose(&errs);
    config_errors_dispose(NULL);
    free(text);

    /* A too-large buffer is refused without parsing. */
    char *huge = calloc(CONFIG_FILE_MAX + 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_buffer(&cfg, &errs, &schema, "huge.conf", huge, CONFIG_FILE_MAX + 1, NULL), -1);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
    CU_ASSERT_STRING_EQUAL(config_errors_get(&errs, 0), "huge.conf: too large (1048577 bytes, at most 1048576)");
    config_errors_dispose(&errs);
    free(huge);
}

static void test_config_file_errors(void)
{
    config_errors errs;
    config *cfg = NULL;
    char *envp[] = {"COFFER_LOG_LEVEL=loud", NULL};
    config_errors_init(&errs);
    CU_ASSERT_EQUAL(config_load_file(&cfg, &errs, &schema, "/nonexistent/coffer.conf", envp), -1);
    CU_ASSERT_PTR_NULL(cfg);
    /* The file problem, the env problem; no "missing required key" noise. */
    CU_ASSERT_EQUAL(config_errors_count(&errs), 2);
    CU_ASSERT_STRING_EQUAL(config_errors_get(&errs, 0),
                           "/nonexistent/coffer.conf: cannot open: No such file or directory");
    config_errors_dispose(&errs);

    config_errors_init(&errs);
    const char *dir = test_vector_path("config");
    CU_ASSERT_EQUAL(config_load_file(&cfg, &errs, &schema, dir, NULL), -1);
    CU_ASSERT_EQUAL(config_errors_count(&errs), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(config_errors_get(&errs, 0), ": not a regular file"));
    config_errors_dispose(&errs);
}

static void test_config_unknown_key_hints(void)
{
    expect_one_error("db.url=x\nlog.levle = info\n", NULL,
                     "t.conf:2: unknown key \"log.levle\" (did you mean \"log.level\"?)");
    expect_one_error("db.url=x\ncompletely.different = 1\n", NULL,
                     "t.conf:2: unknown key \"completely.different\"");
    expect_one_error("db.url=x\nDB.URL = 1\n", NULL, "t.conf:2: unknown key \"DB.URL\"");
    expect_one_error("db.url=x\nsome \"key = 1\n", NULL, "t.conf:2: unknown key \"some \\\"key\"");
}

void test_register(void)
{
    static const test_case cases[] = {
        {"good_file", test_config_good_file},
        {"getter_misuse", test_config_getter_misuse},
        {"env_overrides", test_config_env_overrides},
        {"crlf_bom", test_config_crlf_bom},
        {"durations", test_config_durations},
        {"ints_bools_lists", test_config_ints_bools_lists},
        {"quoting", test_config_quoting},
        {"bad_file_all_errors", test_config_bad_file_all_errors},
        {"bad_bytes", test_config_bad_bytes},
        {"line_too_long", test_config_line_too_long},
        {"env_errors", test_config_env_errors},
        {"secrets_redacted", test_config_secrets_redacted},
        {"dump", test_config_dump},
        {"schema_errors", test_config_schema_errors},
        {"error_cap", test_config_error_cap},
        {"file_errors", test_config_file_errors},
        {"unknown_key_hints", test_config_unknown_key_hints},
        {NULL, NULL},
    };
    test_add_suite("config", cases);
}
