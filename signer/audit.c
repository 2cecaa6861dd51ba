#include "audit.h"

#include "hex.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HASH_KEY ",\"hash\":\""
#define PREV_KEY ",\"prev\":\""
#define HASH_HEX_LEN (2 * AUDIT_HASH_LEN)
/* ,"hash":"<64 hex>"}  */
#define HASH_SUFFIX_LEN (sizeof HASH_KEY - 1 + HASH_HEX_LEN + 2)

void audit_hash_hex(char out[2 * AUDIT_HASH_LEN + 1], const uint8_t h[AUDIT_HASH_LEN])
{
    hex_encode(out, h, AUDIT_HASH_LEN);
}

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} sbuf;

static void put(sbuf *s, const char *p, size_t n)
{
    if (s->overflow || s->len + n >= s->cap) {
        s->overflow = 1;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void puts_(sbuf *s, const char *p)
{
    put(s, p, strlen(p));
}

__attribute__((format(printf, 2, 3)))
static void putf(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    if (s->overflow)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= s->cap - s->len) {
        s->overflow = 1;
        return;
    }
    s->len += (size_t)n;
}

/* A JSON string member with every byte outside printable ASCII, '"' and
 * '\' escaped as \u00XX (or \" \\). */
static void put_str(sbuf *s, const char *key, const char *v)
{
    putf(s, ",\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[3] = {'\\', (char)*p, 0};
            puts_(s, e);
        } else if (*p < 0x20 || *p >= 0x7f) {
            putf(s, "\\u%04x", *p);
        } else {
            put(s, (const char *)p, 1);
        }
    }
    puts_(s, "\"");
}

static void put_hex(sbuf *s, const char *key, const uint8_t *b, size_t n)
{
    char h[2 * 64 + 3];
    hex_encode_0x(h, b, n);
    putf(s, ",\"%s\":\"%s\"", key, h);
}

size_t audit_format(char *buf, size_t cap, audit_chain *chain, const audit_entry *e,
                    int64_t now_ms, const uint8_t *policy_hash)
{
    sbuf s = {buf, cap < AUDIT_LINE_MAX ? cap : AUDIT_LINE_MAX, 0, 0};
    char ts[64], hx[HASH_HEX_LEN + 1];
    uint8_t hash[AUDIT_HASH_LEN];
    struct tm tm;
    time_t secs = (time_t)(now_ms / 1000);

    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now_ms % 1000));
    putf(&s, "{\"seq\":%" PRIu64 ",\"ts\":\"%s\"", chain->seq + 1, ts);
    put_str(&s, "event", e->event ? e->event : "request");
    if (e->op)
        put_str(&s, "op", e->op);
    if (e->has_request_id)
        putf(&s, ",\"request_id\":\"%" PRIu64 "\"", e->request_id);
    if (e->trace_id && e->trace_id[0])
        put_str(&s, "trace_id", e->trace_id);
    if (e->has_peer)
        putf(&s, ",\"uid\":%" PRIu32 ",\"pid\":%" PRId32, e->uid, e->pid);
    if (e->key)
        put_hex(&s, "key", e->key, 20);
    if (e->owner && e->owner[0])
        put_str(&s, "owner", e->owner);
    /* 64-bit integers are quoted decimal strings: JSON readers (jansson
     * included) cannot hold 2^63..2^64-1 as numbers, and JavaScript loses
     * precision above 2^53. */
    if (e->has_chain)
        putf(&s, ",\"chain_id\":\"%" PRIu64 "\"", e->chain_id);
    if (e->has_nonce)
        putf(&s, ",\"nonce\":\"%" PRIu64 "\"", e->nonce);
    if (e->to)
        put_hex(&s, "to", e->to, 20);
    if (e->value)
        put_str(&s, "value", e->value);
    if (e->selector)
        put_hex(&s, "selector", e->selector, 4);
    if (e->kek_version)
        putf(&s, ",\"kek_version\":%" PRIu32, e->kek_version);
    if (e->tx_hash)
        put_hex(&s, "tx_hash", e->tx_hash, 32);
    if (e->digest)
        put_hex(&s, "digest", e->digest, 32);
    if (e->extra && e->extra[0])
        putf(&s, ",%s", e->extra);
    if (e->decision)
        put_str(&s, "decision", e->decision);
    if (e->code)
        put_str(&s, "code", e->code);
    if (e->rule && e->rule[0])
        put_str(&s, "rule", e->rule);
    if (e->detail && e->detail[0])
        put_str(&s, "detail", e->detail);
    if (policy_hash) {
        audit_hash_hex(hx, policy_hash);
        putf(&s, ",\"policy\":\"%s\"", hx);
    }
    audit_hash_hex(hx, chain->head);
    putf(&s, "%s%s\"", PREV_KEY, hx);
    if (s.overflow || s.len + HASH_SUFFIX_LEN + 1 >= s.cap)
        return 0;
    crypto_generichash(hash, sizeof hash, (const uint8_t *)buf, s.len, NULL, 0);
    audit_hash_hex(hx, hash);
    putf(&s, "%s%s\"}\n", HASH_KEY, hx);
    if (s.overflow)
        return 0;
    chain->seq++;
    memcpy(chain->head, hash, AUDIT_HASH_LEN);
    return s.len;
}

/* ---- verification -------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int bad(audit_verify_result *r, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    r->bad_line = line;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_line(audit_verify_result *r, uint64_t lineno, const char *line, size_t len)
{
    char hx[HASH_HEX_LEN + 1];
    uint8_t want[AUDIT_HASH_LEN], got[AUDIT_HASH_LEN], prev[AUDIT_HASH_LEN];
    size_t prefix_len;

    if (len > AUDIT_LINE_MAX)
        return bad(r, lineno, "longer than %u bytes", AUDIT_LINE_MAX);
    if (len < HASH_SUFFIX_LEN + sizeof PREV_KEY + HASH_HEX_LEN ||
        memcmp(line + len - HASH_SUFFIX_LEN, HASH_KEY, sizeof HASH_KEY - 1) != 0 ||
        memcmp(line + len - 2, "\"}", 2) != 0)
        return bad(r, lineno, "does not end with its hash");
    prefix_len = len - HASH_SUFFIX_LEN;
    memcpy(hx, line + prefix_len + sizeof HASH_KEY - 1, HASH_HEX_LEN);
    hx[HASH_HEX_LEN] = '\0';
    if (hex_decode_exact(want, sizeof want, hx) != 0)
        return bad(r, lineno, "hash is not hex");
    /* ,"prev":"<hex>" ends right where ,"hash" begins */
    size_t prev_at = prefix_len - (sizeof PREV_KEY - 1 + HASH_HEX_LEN + 1);
    if (memcmp(line + prev_at, PREV_KEY, sizeof PREV_KEY - 1) != 0 || line[prefix_len - 1] != '"')
        return bad(r, lineno, "no prev hash before the hash");
    memcpy(hx, line + prev_at + sizeof PREV_KEY - 1, HASH_HEX_LEN);
    if (hex_decode_exact(prev, sizeof prev, hx) != 0)
        return bad(r, lineno, "prev is not hex");

    /* Well-formed JSON, whatever its numbers: jansson refuses integers it
     * cannot hold in a json_int_t (2^63 and up), which lines written
     * before 64-bit values were quoted may carry; reading every number as
     * a real keeps verification independent of that range. */
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return bad(r, lineno, "not a JSON object: %s", obj ? "" : jerr.text);
    }
    json_decref(obj);
    /* The seq is read from the text itself: {"seq":<decimal, no leading zero>, */
    uint64_t seqv = 0;
    size_t at = sizeof "{\"seq\":" - 1;
    if (strncmp(line, "{\"seq\":", at) != 0 || line[at] < '1' || line[at] > '9')
        return bad(r, lineno, "does not start with its seq");
    for (; at < len && line[at] >= '0' && line[at] <= '9'; at++) {
        unsigned d = (unsigned)(line[at] - '0');
        if (seqv > (UINT64_MAX - d) / 10)
            return bad(r, lineno, "seq out of range");
        seqv = seqv * 10 + d;
    }
    if (at >= len || line[at] != ',')
        return bad(r, lineno, "does not start with its seq");
    if (seqv != r->chain.seq + 1)
        return bad(r, lineno, "seq %llu where %llu was expected (line removed, inserted or reordered)",
                   (unsigned long long)seqv, (unsigned long long)(r->chain.seq + 1));
    if (sodium_memcmp(prev, r->chain.head, AUDIT_HASH_LEN) != 0)
        return bad(r, lineno, "prev is not the hash of the line before (line removed, inserted, reordered or edited)");
    crypto_generichash(got, sizeof got, (const uint8_t *)line, prefix_len, NULL, 0);
    if (sodium_memcmp(got, want, AUDIT_HASH_LEN) != 0)
        return bad(r, lineno, "hash does not match the line's content (line edited)");
    r->chain.seq = seqv;
    memcpy(r->chain.head, got, AUDIT_HASH_LEN);
    return 0;
}

int audit_verify_fd(audit_verify_result *r, int fd, const audit_chain *start, uint64_t probe_seq)
{
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK + AUDIT_LINE_MAX + 2);
    size_t have = 0;
    int eof = 0, rc = -1;
    uint64_t lineno = 0;

    memset(r, 0, sizeof *r);
    if (start)
        r->chain = *start;
    if (!buf)
        return bad(r, 0, "out of memory");
    for (;;) {
        if (!eof) {
            ssize_t n = read(fd, buf + have, CHUNK + AUDIT_LINE_MAX + 2 - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                bad(r, 0, "read: %s", strerror(errno));
                goto out;
            }
            if (n == 0)
                eof = 1;
            have += (size_t)n;
        }
        size_t pos = 0;
        for (;;) {
            char *nl = memchr(buf + pos, '\n', have - pos);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (buf + pos));
            lineno++;
            if (check_line(r, lineno, buf + pos, len) != 0)
                goto out;
            r->lines++;
            r->valid_bytes += len + 1;
            if (probe_seq && r->chain.seq == probe_seq) {
                r->probe_found = true;
                memcpy(r->probe_hash, r->chain.head, AUDIT_HASH_LEN);
            }
            pos += len + 1;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        if (have > AUDIT_LINE_MAX) {
            bad(r, lineno + 1, "longer than %u bytes", AUDIT_LINE_MAX);
            goto out;
        }
        if (eof) {
            r->torn_bytes = have;
            rc = 0;
            goto out;
        }
    }
out:
    free(buf);
    return rc;
}
