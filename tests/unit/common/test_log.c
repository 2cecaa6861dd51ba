#include "log.h"
#include "test_support.h"

#include <regex.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int matches(const char *text, const char *pattern)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static void test_log_line_shape(void)
{
    log_init("unit", LOG_DEBUG, STDERR_FILENO);
    char line[512];
    size_t n = log_format(line, sizeof line, LOG_INFO, "rpc.call", "method=%s code=%s n=%d", "/a.B/C", "OK", 42);
    CU_ASSERT_TRUE_FATAL(n > 0 && n < sizeof line);
    CU_ASSERT_EQUAL(line[n - 1], '\n');
    line[n] = '\0';
    CU_ASSERT_TRUE(matches(line, "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                                 "level=info comp=unit event=rpc\\.call method=/a\\.B/C code=OK n=42\n$"));
    /* The stamp is UTC and current (the per-second cache must not go stale). */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char year[8];
    strftime(year, sizeof year, "ts=%Y", &tm);
    CU_ASSERT_EQUAL(strncmp(line, year, strlen(year)), 0);
    sleep(1);
    char later[512];
    n = log_format(later, sizeof later, LOG_WARN, "x", NULL);
    later[n] = '\0';
    CU_ASSERT_TRUE(matches(later, "^ts=[^ ]+Z level=warn comp=unit event=x\n$"));
    CU_ASSERT_NOT_EQUAL(strncmp(line, later, 22), 0); /* a second later: another second in the stamp */
}

static void test_log_request_id_and_escaping(void)
{
    log_init("unit", LOG_INFO, STDERR_FILENO);
    log_set_request_id("req-1");
    char line[512];
    size_t n = log_format(line, sizeof line, LOG_ERROR, "e", "msg=%s", "two\nlines\x01");
    line[n] = '\0';
    log_set_request_id(NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " rid=req-1 event=e "));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "msg=two\\nlines\\x01\n"));
    CU_ASSERT_EQUAL(strchr(line, '\n'), line + n - 1); /* one line */
    /* Below the level: nothing. */
    CU_ASSERT_EQUAL(log_format(line, sizeof line, LOG_DEBUG, "d", NULL), 0);
}

static void test_log_truncation(void)
{
    log_init("unit", LOG_INFO, STDERR_FILENO);
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char line[100];
    size_t n = log_format(line, sizeof line, LOG_INFO, "t", "v=%s", big);
    CU_ASSERT_TRUE(n <= sizeof line);
    CU_ASSERT_EQUAL(line[n - 1], '\n');
    CU_ASSERT_PTR_NULL(memchr(line, '\n', n - 1));
    /* Too small a buffer to hold a line: nothing. */
    CU_ASSERT_EQUAL(log_format(line, 32, LOG_INFO, "t", NULL), 0);
}

static void test_log_fields_appenders(void)
{
    log_init("unit", LOG_INFO, STDERR_FILENO);
    char f[32];
    size_t n = 0;
    log_put_str(f, sizeof f, &n, "a=");
    log_put_u64(f, sizeof f, &n, 0);
    log_put_str(f, sizeof f, &n, " b=");
    log_put_u64(f, sizeof f, &n, UINT64_MAX);
    CU_ASSERT_STRING_EQUAL(f, "a=0 b=18446744073709551615");
    CU_ASSERT_EQUAL(n, strlen(f));
    log_put_str(f, sizeof f, &n, " overflowing the buffer");
    CU_ASSERT_EQUAL(n, sizeof f - 1); /* stops short, still terminated */
    CU_ASSERT_EQUAL(strlen(f), sizeof f - 1);

    char line[256], ref[256];
    n = 0;
    char g[64];
    log_put_str(g, sizeof g, &n, "x=1 y=two\nthree");
    size_t a = log_format_fields(line, sizeof line, LOG_INFO, "e", g, n);
    size_t b = log_format(ref, sizeof ref, LOG_INFO, "e", "x=%d y=%s", 1, "two\nthree");
    CU_ASSERT_TRUE_FATAL(a > 24 && b > 24);
    /* Same line as the printf path, past the timestamp. */
    line[a] = ref[b] = '\0';
    CU_ASSERT_STRING_EQUAL(strchr(line, 'Z'), strchr(ref, 'Z'));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "event=e x=1 y=two\\nthree\n"));
    CU_ASSERT_EQUAL(log_format_fields(line, sizeof line, LOG_DEBUG, "e", g, n), 0);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"line_shape", test_log_line_shape},
        {"request_id_and_escaping", test_log_request_id_and_escaping},
        {"truncation", test_log_truncation},
        {"fields_appenders", test_log_fields_appenders},
        {NULL, NULL},
    };
    test_add_suite("log", cases);
}
