#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char log_component[32] = "coffer";
static size_t log_component_len = 6;
static log_level log_min = LOG_INFO;
static int log_fd = 2;
static _Thread_local char log_rid[64];

static const char *const log_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, log_level min_level, int fd)
{
    if (component) {
        snprintf(log_component, sizeof log_component, "%s", component);
        log_component_len = strlen(log_component);
    }
    log_min = min_level;
    log_fd = fd;
}

int log_level_parse(log_level *out, const char *text)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, log_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level level)
{
    if ((unsigned)level > LOG_ERROR)
        return "unknown";
    return log_names[level];
}

void log_set_request_id(const char *request_id)
{
    if (!request_id) {
        log_rid[0] = '\0';
        return;
    }
    /* Set twice per gRPC call: a plain copy, not printf. */
    size_t n = strnlen(request_id, sizeof log_rid - 1);
    memcpy(log_rid, request_id, n);
    log_rid[n] = '\0';
}

const char *log_get_request_id(void)
{
    return log_rid;
}

/* Bytes copied as they are: everything but control characters (and DEL).
 * Bytes from 0x80 up pass unchanged, as before. */
#define LOG_P1 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char log_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    LOG_P1, LOG_P1, LOG_P1, LOG_P1, LOG_P1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    LOG_P1, LOG_P1, LOG_P1, LOG_P1, LOG_P1, LOG_P1, LOG_P1, LOG_P1,
};
#undef LOG_P1

/* How many leading bytes of s[0..n) are plain: eight at a time while a
 * word has no byte below 0x20 and none equal to 0x7f (both tests are exact
 * for "some byte is": Bit Twiddling Hacks' hasless and haszero), then the
 * table byte by byte. */
static size_t log_plain_run(const unsigned char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, sizeof x);
        uint64_t del = x ^ (ones * 0x7f);
        if (((x - ones * 0x20) & ~x & highs) | ((del - ones) & ~del & highs))
            break;
    }
    while (i < n && log_plain[s[i]])
        i++;
    return i;
}

/* Copies src into dst (of cap bytes, at offset *pos) escaping control
 * characters, so the event stays on one line; stops at src's NUL or when
 * fewer than 6 bytes of dst are left. Every log line goes through here
 * (the access log once per call): runs of plain bytes are found a word at
 * a time and copied with one memcpy instead of byte by byte. */
static void log_append_escaped(char *dst, size_t cap, size_t *pos, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    const unsigned char *s = (const unsigned char *)src;
    while (p + 5 < cap) {
        size_t n = strnlen((const char *)s, cap - 5 - p); /* plain bytes that still fit */
        size_t run = log_plain_run(s, n);
        memcpy(dst + p, s, run);
        p += run;
        s += run;
        if (run == n)
            break; /* the end of src, or of the room */
        unsigned char c = *s++; /* a control character, and room for its escape */
        dst[p++] = '\\';
        if (c == '\n') {
            dst[p++] = 'n';
        } else if (c == '\r') {
            dst[p++] = 'r';
        } else {
            dst[p++] = 'x';
            dst[p++] = hex[c >> 4];
            dst[p++] = hex[c & 0xf];
        }
    }
    *pos = p;
}

/* Appends src[0..n) when it fits with room for the newline. */
static void log_put(char *dst, size_t cap, size_t *pos, const char *src, size_t n)
{
    if (*pos + n + 2 > cap)
        n = *pos + 2 < cap ? cap - *pos - 2 : 0;
    memcpy(dst + *pos, src, n);
    *pos += n;
}

/* "ts=YYYY-MM-DDTHH:MM:SS." for the current second, formatted once per
 * second per thread: gmtime and strftime were a visible share of the cost
 * of an access-log line under load. */
static _Thread_local time_t log_stamp_sec = (time_t)-1;
static _Thread_local char log_stamp[40];
static _Thread_local size_t log_stamp_len;

/* "ts=... level=... comp=... [rid=...] event=..." into line; returns its
 * length (0 when level is below the minimum or cap is too small). */
static size_t log_header(char *line, size_t cap, log_level level, const char *event)
{
    if (level < log_min || cap < 64)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != log_stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        log_stamp_len = strftime(log_stamp, sizeof log_stamp, "ts=%Y-%m-%dT%H:%M:%S.", &tm);
        log_stamp_sec = ts.tv_sec;
    }
    size_t pos = 0;
    log_put(line, cap, &pos, log_stamp, log_stamp_len);
    long ms = ts.tv_nsec / 1000000L;
    char frac[4] = {(char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z'};
    log_put(line, cap, &pos, frac, sizeof frac);
    const char *lv = log_level_name(level);
    log_put(line, cap, &pos, " level=", 7);
    log_put(line, cap, &pos, lv, strlen(lv));
    log_put(line, cap, &pos, " comp=", 6);
    log_put(line, cap, &pos, log_component, log_component_len);
    if (log_rid[0]) {
        log_put(line, cap, &pos, " rid=", 5);
        log_append_escaped(line, cap, &pos, log_rid);
    }
    if (pos < cap - 8)
        log_put(line, cap, &pos, " event=", 7);
    log_append_escaped(line, cap, &pos, event ? event : "unnamed");
    return pos;
}

/* Ends a line: one space and the escaped fields, then the newline. */
static size_t log_finish(char *line, size_t cap, size_t pos, const char *fields)
{
    if (fields && *fields && pos < cap - 8) {
        line[pos++] = ' ';
        log_append_escaped(line, cap, &pos, fields);
    }
    if (pos > cap - 2)
        pos = cap - 2;
    line[pos++] = '\n';
    return pos;
}

size_t log_formatv(char *line, size_t cap, log_level level, const char *event, const char *fmt, va_list ap)
{
    size_t pos = log_header(line, cap, level, event);
    if (pos == 0)
        return 0;
    char fields[LOG_LINE_MAX];
    fields[0] = '\0';
    if (fmt && *fmt)
        vsnprintf(fields, sizeof fields, fmt, ap);
    return log_finish(line, cap, pos, fields);
}

size_t log_format_fields(char *line, size_t cap, log_level level, const char *event, const char *fields,
                         size_t fields_len)
{
    size_t pos = log_header(line, cap, level, event);
    if (pos == 0)
        return 0;
    return log_finish(line, cap, pos, fields_len ? fields : NULL);
}

void log_put_str(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t p = *pos;
    if (p + 1 < cap) {
        size_t n = strnlen(s, cap - 1 - p);
        memcpy(buf + p, s, n);
        p += n;
    }
    if (p < cap)
        buf[p] = '\0';
    *pos = p;
}

void log_put_mem(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    size_t p = *pos;
    if (p + 1 < cap) {
        if (n > cap - 1 - p)
            n = cap - 1 - p;
        memcpy(buf + p, s, n);
        p += n;
    }
    if (p < cap)
        buf[p] = '\0';
    *pos = p;
}

void log_put_u64(char *buf, size_t cap, size_t *pos, uint64_t v)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t p = *pos;
    while (n && p + 1 < cap)
        buf[p++] = tmp[--n];
    if (p < cap)
        buf[p] = '\0';
    *pos = p;
}

size_t log_format(char *line, size_t cap, log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_formatv(line, cap, level, event, fmt, ap);
    va_end(ap);
    return n;
}

void log_eventv(log_level level, const char *event, const char *fmt, va_list ap)
{
    if (level < log_min)
        return;
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    size_t pos = log_formatv(line, sizeof line, level, event, fmt, ap);
    log_write(line, pos);
    errno = saved_errno;
}

void log_write(const char *lines, size_t len)
{
    int saved_errno = errno;
    /* One write per call; a short write to a pipe or file is retried. */
    size_t pos = len;
    const char *line = lines;
    size_t off = 0;
    while (off < pos) {
        ssize_t n = write(log_fd, line + off, pos - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)n;
    }
    errno = saved_errno;
}

void log_event(log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level, event, fmt, ap);
    va_end(ap);
}

const char *log_quote(char *buf, unsigned buf_len, const char *value)
{
    if (buf_len == 0)
        return buf;
    if (!value)
        value = "";
    int needs = value[0] == '\0' || strpbrk(value, " \"=\t") != NULL;
    size_t pos = 0;
    if (!needs) {
        size_t n = strnlen(value, buf_len - 1);
        memcpy(buf, value, n);
        buf[n] = '\0';
        return buf;
    }
    if (buf_len < 3) {
        buf[0] = '\0';
        return buf;
    }
    buf[pos++] = '"';
    for (const char *p = value; *p && pos + 3 < buf_len; p++) {
        if (*p == '"' || *p == '\\')
            buf[pos++] = '\\';
        buf[pos++] = *p;
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
    return buf;
}
