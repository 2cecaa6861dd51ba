/* gw_text: the text forms of the proto3 JSON mapping that are not JSON
 * syntax itself, as pure functions: a growable output buffer, JSON string
 * escaping, lowerCamelCase names, base64, RFC 3339 timestamps, durations,
 * shortest round-trip floating-point text, and the gRPC timeout syntax. */
#ifndef COFFER_GW_TEXT_H
#define COFFER_GW_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Zero-initialize, or gw_buf_init. After a failed
 * allocation every append is a no-op and oom stays true. */
typedef struct {
    char *data; /* NUL-terminated when len > 0 or after gw_buf_cstr */
    size_t len;
    size_t cap;
    bool oom;
} gw_buf;

void gw_buf_init(gw_buf *b);
void gw_buf_dispose(gw_buf *b);
void gw_buf_reset(gw_buf *b);                   /* len = 0 (the bytes zeroed), keeps the storage */
void gw_buf_append(gw_buf *b, const void *data, size_t len);
void gw_buf_puts(gw_buf *b, const char *s);
void gw_buf_putc(gw_buf *b, char c);
void gw_buf_printf(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string ("" when empty or after oom). Borrowed. */
const char *gw_buf_cstr(gw_buf *b);

/* Appends s[0..len) as a JSON string literal (quotes included), escaping
 * '"', '\\', control characters and U+2028/U+2029. Invalid UTF-8 is
 * replaced by U+FFFD, so the output is always valid JSON. */
void gw_buf_json_string(gw_buf *b, const char *s, size_t len);

/* True when s[0..len) is valid UTF-8 (no surrogates, no overlongs). */
bool gw_utf8_valid(const char *s, size_t len);

/* protoc's JSON name: "order_id" -> "orderId". Writes into out[0..cap),
 * NUL-terminated; returns false when it does not fit. */
bool gw_json_name(char *out, size_t cap, const char *proto_name);

/* The reverse used by FieldMask: "orderId" -> "order_id". */
bool gw_snake_name(char *out, size_t cap, const char *json_name);

/* Standard base64 with padding. */
void gw_base64_encode(gw_buf *b, const uint8_t *data, size_t len);

/* Decodes standard or URL-safe base64, padding optional. Returns 0 with
 * *out (malloc'd, may be NULL when *out_len is 0), or -1 when the text is
 * not base64. */
__attribute__((warn_unused_result))
int gw_base64_decode(uint8_t **out, size_t *out_len, const char *text, size_t len);

/* google.protobuf.Timestamp range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z */
#define GW_TS_MIN_SECONDS (-62135596800LL)
#define GW_TS_MAX_SECONDS 253402300799LL

/* Appends "1972-01-01T10:00:20.021Z" (0, 3, 6 or 9 fraction digits).
 * Returns -1 (nothing appended) when out of range. */
__attribute__((warn_unused_result))
int gw_timestamp_format(gw_buf *b, int64_t seconds, int32_t nanos);

/* Parses RFC 3339 ("T" or "t", "Z" or a "+hh:mm" offset, up to 9 fraction
 * digits). Returns 0, or -1 when malformed or out of range. */
__attribute__((warn_unused_result))
int gw_timestamp_parse(int64_t *seconds, int32_t *nanos, const char *text, size_t len);

/* google.protobuf.Duration: "1.5s", "-0.000000001s"; |seconds| <= 315576000000. */
#define GW_DURATION_MAX_SECONDS 315576000000LL
__attribute__((warn_unused_result))
int gw_duration_format(gw_buf *b, int64_t seconds, int32_t nanos);
__attribute__((warn_unused_result))
int gw_duration_parse(int64_t *seconds, int32_t *nanos, const char *text, size_t len);

/* Appends the shortest decimal text that reads back as v (as a float when
 * is_float). NaN and infinities are written as the JSON strings "NaN",
 * "Infinity", "-Infinity". */
void gw_buf_number(gw_buf *b, double v, bool is_float);

/* Parses a gRPC timeout header value: 1..8 digits and a unit H, M, S, m,
 * u or n ("500m", "2S"). *ms gets it rounded up to whole milliseconds.
 * Returns 0, or -1 when malformed. */
__attribute__((warn_unused_result))
int gw_grpc_timeout_parse(int64_t *ms, const char *text);

struct sockaddr_storage;

/* "host:port" (an IPv4 address, localhost, or [IPv6]; port 0..65535) into
 * ss. 0, or -1 when malformed. */
int gw_listen_parse(struct sockaddr_storage *ss, const char *listen);

#endif
