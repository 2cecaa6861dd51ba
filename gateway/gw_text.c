#include "gw_text.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---------------------------------------------------------------------------- */

/* Bodies and answers pass through these buffers with credentials in them
 * (a new API key, a webhook secret, Authorization headers): what a buffer
 * held is zeroed when it is reset, grown or freed, so no copy outlives
 * its request in the heap. A memset of the bytes used. */

void gw_buf_init(gw_buf *b)
{
    memset(b, 0, sizeof *b);
}

void gw_buf_dispose(gw_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->len);
    free(b->data);
    memset(b, 0, sizeof *b);
}

void gw_buf_reset(gw_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->len);
    b->len = 0;
    b->oom = false;
}

static bool gw_buf_reserve(gw_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *n = malloc(cap); /* not realloc: the old block is wiped before it goes */
    if (!n) {
        b->oom = true;
        return false;
    }
    if (b->data) {
        memcpy(n, b->data, b->len);
        explicit_bzero(b->data, b->len);
        free(b->data);
    }
    b->data = n;
    b->cap = cap;
    return true;
}

void gw_buf_append(gw_buf *b, const void *data, size_t len)
{
    if (!gw_buf_reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void gw_buf_puts(gw_buf *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void gw_buf_putc(gw_buf *b, char c)
{
    if (!gw_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void gw_buf_printf(gw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        gw_buf_append(b, small, (size_t)n);
        return;
    }
    if (!gw_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *gw_buf_cstr(gw_buf *b)
{
    if (b->oom || !b->data)
        return "";
    return b->data;
}

/* ---- UTF-8 and JSON strings -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..len), 0 when invalid; *cp gets it. */
static size_t gw_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        n = 2; v = c & 0x1f; min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3; v = c & 0x0f; min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4; v = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

bool gw_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = gw_utf8_next(p + i, len - i, &cp);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

void gw_buf_json_string(gw_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    gw_buf_putc(b, '"');
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (i > run)
            gw_buf_append(b, s + run, i - run);
        if (c < 0x80) {
            char esc[7];
            switch (c) {
            case '"': gw_buf_puts(b, "\\\""); break;
            case '\\': gw_buf_puts(b, "\\\\"); break;
            case '\n': gw_buf_puts(b, "\\n"); break;
            case '\r': gw_buf_puts(b, "\\r"); break;
            case '\t': gw_buf_puts(b, "\\t"); break;
            case '\b': gw_buf_puts(b, "\\b"); break;
            case '\f': gw_buf_puts(b, "\\f"); break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                gw_buf_append(b, esc, 6);
            }
            i++;
        } else {
            uint32_t cp;
            size_t n = gw_utf8_next(p + i, len - i, &cp);
            if (!n) {
                gw_buf_puts(b, "\\ufffd");
                i++;
            } else if (cp == 0x2028 || cp == 0x2029) {
                gw_buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
                i += n;
            } else {
                gw_buf_append(b, s + i, n);
                i += n;
            }
        }
        run = i;
    }
    if (len > run)
        gw_buf_append(b, s + run, len - run);
    gw_buf_putc(b, '"');
}

/* ---- names ------------------------------------------------------------------------------- */

bool gw_json_name(char *out, size_t cap, const char *name)
{
    size_t o = 0;
    bool up = false;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        if (o + 1 >= cap)
            return false;
        char c = *p;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        out[o++] = c;
    }
    if (o >= cap)
        return false;
    out[o] = '\0';
    return true;
}

bool gw_snake_name(char *out, size_t cap, const char *json_name)
{
    size_t o = 0;
    for (const char *p = json_name; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') {
            if (o + 2 >= cap)
                return false;
            out[o++] = '_';
            out[o++] = (char)(c - 'A' + 'a');
        } else {
            if (o + 1 >= cap)
                return false;
            out[o++] = c;
        }
    }
    if (o >= cap)
        return false;
    out[o] = '\0';
    return true;
}

/* ---- base64 ------------------------------------------------------------------------------ */

void gw_base64_encode(gw_buf *b, const uint8_t *d, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        q[0] = tab[v >> 18]; q[1] = tab[(v >> 12) & 63]; q[2] = tab[(v >> 6) & 63]; q[3] = tab[v & 63];
        gw_buf_append(b, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        q[0] = tab[v >> 18]; q[1] = tab[(v >> 12) & 63]; q[2] = '='; q[3] = '=';
        gw_buf_append(b, q, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        q[0] = tab[v >> 18]; q[1] = tab[(v >> 12) & 63]; q[2] = tab[(v >> 6) & 63]; q[3] = '=';
        gw_buf_append(b, q, 4);
    }
}

static int gw_b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int gw_base64_decode(uint8_t **out, size_t *out_len, const char *text, size_t len)
{
    *out = NULL;
    *out_len = 0;
    while (len > 0 && text[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    /* Padding, when present, must complete the last quantum. */
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = gw_b64_val((unsigned char)text[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (!n) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

/* ---- timestamps and durations ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t gw_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void gw_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void gw_buf_fraction(gw_buf *b, int32_t nanos)
{
    if (nanos == 0)
        return;
    if (nanos % 1000000 == 0)
        gw_buf_printf(b, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0)
        gw_buf_printf(b, ".%06d", nanos / 1000);
    else
        gw_buf_printf(b, ".%09d", nanos);
}

int gw_timestamp_format(gw_buf *b, int64_t seconds, int32_t nanos)
{
    if (seconds < GW_TS_MIN_SECONDS || seconds > GW_TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
        return -1;
    int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
    int64_t rem = seconds - days * 86400;
    int64_t y;
    unsigned m, d;
    gw_civil_from_days(days, &y, &m, &d);
    gw_buf_printf(b, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d, (int)(rem / 3600),
                  (int)(rem / 60 % 60), (int)(rem % 60));
    gw_buf_fraction(b, nanos);
    gw_buf_putc(b, 'Z');
    return 0;
}

static bool gw_digits(int64_t *v, const char *s, size_t n)
{
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* Parses ".ddd" (1..9 digits) at s[*i]; nanos 0 when there is no '.'. */
static bool gw_parse_fraction(int32_t *nanos, const char *s, size_t len, size_t *i)
{
    *nanos = 0;
    if (*i >= len || s[*i] != '.')
        return true;
    (*i)++;
    size_t start = *i;
    int32_t v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (*i - start >= 9)
            return false;
        v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    size_t nd = *i - start;
    if (nd == 0)
        return false;
    for (size_t k = nd; k < 9; k++)
        v *= 10;
    *nanos = v;
    return true;
}

int gw_timestamp_parse(int64_t *seconds, int32_t *nanos, const char *s, size_t len)
{
    int64_t y, mo, d, h, mi, se;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    if (!gw_digits(&y, s, 4) || !gw_digits(&mo, s + 5, 2) || !gw_digits(&d, s + 8, 2) ||
        !gw_digits(&h, s + 11, 2) || !gw_digits(&mi, s + 14, 2) || !gw_digits(&se, s + 17, 2))
        return -1;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    size_t i = 19;
    int32_t ns;
    if (!gw_parse_fraction(&ns, s, len, &i) || i >= len)
        return -1;
    int64_t offset = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int64_t oh, om;
        if (len - i != 6 || s[i + 3] != ':' || !gw_digits(&oh, s + i + 1, 2) || !gw_digits(&om, s + i + 4, 2) ||
            oh > 23 || om > 59)
            return -1;
        offset = (oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    int64_t secs = gw_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (secs < GW_TS_MIN_SECONDS || secs > GW_TS_MAX_SECONDS)
        return -1;
    *seconds = secs;
    *nanos = ns;
    return 0;
}

int gw_duration_format(gw_buf *b, int64_t seconds, int32_t nanos)
{
    if (seconds < -GW_DURATION_MAX_SECONDS || seconds > GW_DURATION_MAX_SECONDS || nanos <= -1000000000 ||
        nanos >= 1000000000 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0))
        return -1;
    bool neg = seconds < 0 || nanos < 0;
    gw_buf_printf(b, "%s%lld", neg ? "-" : "", (long long)(seconds < 0 ? -seconds : seconds));
    gw_buf_fraction(b, nanos < 0 ? -nanos : nanos);
    gw_buf_putc(b, 's');
    return 0;
}

int gw_duration_parse(int64_t *seconds, int32_t *nanos, const char *s, size_t len)
{
    size_t i = 0;
    bool neg = false;
    if (len < 2 || s[len - 1] != 's')
        return -1;
    len--;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    size_t start = i;
    int64_t secs = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (i - start >= 12)
            return -1;
        secs = secs * 10 + (s[i] - '0');
        i++;
    }
    if (i == start)
        return -1;
    int32_t ns;
    if (!gw_parse_fraction(&ns, s, len, &i) || i != len || secs > GW_DURATION_MAX_SECONDS)
        return -1;
    *seconds = neg ? -secs : secs;
    *nanos = neg ? -ns : ns;
    return 0;
}

/* ---- numbers ----------------------------------------------------------------------------- */

void gw_buf_number(gw_buf *b, double v, bool is_float)
{
    if (isnan(v)) {
        gw_buf_puts(b, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        gw_buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    char tmp[40];
    int max = is_float ? 9 : 17;
    for (int p = 1; p <= max; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, v);
        double back = strtod(tmp, NULL);
        if (is_float ? (float)back == (float)v : back == v)
            break;
    }
    gw_buf_puts(b, tmp);
}

int gw_grpc_timeout_parse(int64_t *ms, const char *text)
{
    size_t n = strlen(text);
    if (n < 2 || n > 9)
        return -1;
    int64_t v;
    if (!gw_digits(&v, text, n - 1))
        return -1;
    switch (text[n - 1]) {
    case 'H': *ms = v * 3600000; break;
    case 'M': *ms = v * 60000; break;
    case 'S': *ms = v * 1000; break;
    case 'm': *ms = v; break;
    case 'u': *ms = (v + 999) / 1000; break;
    case 'n': *ms = (v + 999999) / 1000000; break;
    default: return -1;
    }
    return 0;
}

int gw_listen_parse(struct sockaddr_storage *ss, const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || colon[1] == '\0')
        return -1;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}
