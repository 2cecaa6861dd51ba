#include "log.h"
#include "test_support.h"

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The escaping as first written, byte by byte: the word-at-a-time one
 * must give exactly the same lines, truncation included. */
static void ref_escape(char *dst, size_t cap, size_t *pos, const char *src)
{
    for (; *src && *pos + 5 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c == '\n') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = 'n';
        } else if (c == '\r') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = 'r';
        } else if (c < 0x20 || c == 0x7f) {
            *pos += (size_t)snprintf(dst + *pos, cap - *pos, "\\x%02x", c);
        } else {
            dst[(*pos)++] = (char)c;
        }
    }
}

static void test_log_escaping_matches_reference(void)
{
    log_init("unit", LOG_INFO, STDERR_FILENO);
    log_set_request_id(NULL);
    unsigned seed = 20261121;
    char fields[300];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)rand_r(&seed) % sizeof fields;
        unsigned mix = 2 + (unsigned)rand_r(&seed) % 40; /* how often a special byte comes */
        for (size_t i = 0; i < len; i++) {
            unsigned r = (unsigned)rand_r(&seed) % mix;
            fields[i] = r == 0   ? (char)(1 + rand_r(&seed) % 0x1f)
                        : r == 1 ? (char)0x7f
                        : r == 2 ? (char)(0x80 + rand_r(&seed) % 0x80)
                                 : (char)(0x20 + rand_r(&seed) % 0x5f);
        }
        fields[len] = '\0';
        size_t cap = 64 + (size_t)rand_r(&seed) % 400;
        char line[600], want[600];
        size_t n = log_format_fields(line, cap, LOG_INFO, "e", fields, len);
        CU_ASSERT_TRUE_FATAL(n > 0 && n <= cap);
        const char *ev = memmem(line, n, " event=e", 8);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
        size_t pos = (size_t)(ev - line) + 8;
        memcpy(want, line, pos);
        if (len && pos < cap - 8) {
            want[pos++] = ' ';
            ref_escape(want, cap, &pos, fields);
        }
        if (pos > cap - 2)
            pos = cap - 2;
        want[pos++] = '\n';
        CU_ASSERT_EQUAL_FATAL(n, pos);
        CU_ASSERT_EQUAL_FATAL(memcmp(line, want, n), 0);
    }
}

static void test_log_put_mem(void)
{
    char f[8];
    size_t n = 0;
    log_put_lit(f, sizeof f, &n, "ab");
    log_put_mem(f, sizeof f, &n, "cdefghij", 8);
    CU_ASSERT_STRING_EQUAL(f, "abcdefg"); /* stops short, still terminated */
    CU_ASSERT_EQUAL(n, sizeof f - 1);
    log_put_lit(f, sizeof f, &n, "x");
    CU_ASSERT_EQUAL(n, sizeof f - 1);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"line_shape", test_log_line_shape},
        {"request_id_and_escaping", test_log_request_id_and_escaping},
        {"truncation", test_log_truncation},
        {"fields_appenders", test_log_fields_appenders},
        {"escaping_matches_reference", test_log_escaping_matches_reference},
        {"put_mem", test_log_put_mem},
        {NULL, NULL},
    };
    test_add_suite("log", cases);
}
