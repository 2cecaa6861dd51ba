/* log: one structured line per event, in logfmt:
 *   ts=2026-11-21T13:00:00.123Z level=info comp=coffer-api rid=r-1 event=db.connect host=... 
 * The request id is per thread (log_set_request_id). Every line is written
 * with a single write(2), so lines from threads never interleave, and any
 * control character in the formatted fields is escaped, so one event is
 * always exactly one line whatever a value contains.
 * Never pass a secret, an SQL parameter or a full webhook body. */
#ifndef COFFER_LOG_H
#define COFFER_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
} log_level;

/* Sets the component name (copied, at most 31 chars), the lowest level
 * that is written, and the file descriptor lines go to (2 by default).
 * Not thread-safe: call once at start-up, before threads exist. */
void log_init(const char *component, log_level min_level, int fd);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
__attribute__((warn_unused_result))
int log_level_parse(log_level *out, const char *text);

const char *log_level_name(log_level level);

/* Sets (copies, truncated to 63 chars) or clears (NULL) the calling
 * thread's request id, printed as rid= on every line it logs. */
void log_set_request_id(const char *request_id);

/* The calling thread's request id, "" when none. Borrowed. */
const char *log_get_request_id(void);

/* Logs one event. event: a dotted name such as "db.pool.reconnect".
 * fmt: printf-style, producing space-separated key=value fields (may be
 * NULL). Use %q-free formats: quote string values yourself with
 * log_quote when they may contain spaces. */
void log_event(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void log_eventv(log_level level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Formats the line log_event would write (newline included, the calling
 * thread's request id in it) into line[0..cap) and returns its length, or
 * 0 when level is below the minimum. For callers that batch lines (the
 * gRPC access log) and write them with log_write. */
size_t log_format(char *line, size_t cap, log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

size_t log_formatv(char *line, size_t cap, log_level level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* log_format with the fields already formatted (fields[0..fields_len),
 * "key=value ..."; control characters are escaped here too): for the
 * per-call access line, built with log_put_* below instead of printf. */
size_t log_format_fields(char *line, size_t cap, log_level level, const char *event, const char *fields,
                         size_t fields_len);

/* Appenders for building fields: each writes at *pos and advances it,
 * never past cap - 1, and keeps buf NUL-terminated. */
void log_put_str(char *buf, size_t cap, size_t *pos, const char *s);
void log_put_u64(char *buf, size_t cap, size_t *pos, uint64_t v);
/* log_put_str of s[0..n) (no NUL in it), for text whose length is known. */
void log_put_mem(char *buf, size_t cap, size_t *pos, const char *s, size_t n);
/* log_put_mem of a string literal, its length counted by the compiler. */
#define log_put_lit(buf, cap, pos, lit) log_put_mem(buf, cap, pos, "" lit, sizeof(lit) - 1)

/* Writes lines[0..len) (whole lines from log_format) with a single
 * write(2), so they never interleave with other threads' lines. */
void log_write(const char *lines, size_t len);

/* Writes value into buf as a logfmt value: bare when it has no space, '"'
 * or '=', otherwise double-quoted with '"' and '\' escaped. Truncates to
 * fit. Returns buf. */
const char *log_quote(char *buf, unsigned buf_len, const char *value);

#define log_debug(event, ...) log_event(LOG_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...) log_event(LOG_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) log_event(LOG_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_event(LOG_ERROR, event, __VA_ARGS__)

#endif
