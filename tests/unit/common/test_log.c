#include "log.h"
#include "test_support.h"

#include <regex.h>
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

void test_register(void)
{
    static const test_case cases[] = {
        {"line_shape", test_log_line_shape},
        {"request_id_and_escaping", test_log_request_id_and_escaping},
        {"truncation", test_log_truncation},
        {NULL, NULL},
    };
    test_add_suite("log", cases);
}
