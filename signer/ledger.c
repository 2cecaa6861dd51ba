#include "ledger.h"

#include "hex.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEDGER_MAGIC "COFFER-LEDGER v1\n"
#define LEDGER_MAGIC_LEN (sizeof LEDGER_MAGIC - 1)
#define SUM_LEN 16u
#define REC_S_LEN (1u + 8u + 20u + 8u + 20u + 32u + SUM_LEN)
#define REC_N_LEN (1u + 20u + 8u + 8u + 32u + SUM_LEN)
#define REC_A_LEN (1u + 8u + 32u + SUM_LEN)
#define REC_R_LEN (1u + 20u + 8u + 8u + 32u + 32u + 32u + 32u + 4u + SUM_LEN)
#define MINUTE_MS 60000LL
#define VKEY_LEN 48u  /* key | chain | token */
#define NKEY_LEN 36u  /* key | chain | nonce */
#define KKEY_LEN 28u  /* key | chain */

_Static_assert(REC_R_LEN == LEDGER_RECORD_MAX, "largest record");
_Static_assert(REC_S_LEN * POLICY_SPENDS_MAX + REC_R_LEN <= LEDGER_COMMIT_MAX, "one commit");
_Static_assert(REC_A_LEN == LEDGER_MARK_LEN, "mark record");

/* ---- hash table (linear probing, backward-shift deletion) -------------------- */

typedef struct {
    uint64_t hash;
    void *item; /* struct whose first bytes are its key */
} hslot;

typedef struct {
    hslot *slots;
    size_t cap; /* power of two */
    size_t n;
    size_t keylen;
} htab;

static int ht_init(htab *t, size_t keylen)
{
    t->cap = 1024;
    t->n = 0;
    t->keylen = keylen;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots ? 0 : -1;
}

static void ht_dispose(htab *t)
{
    for (size_t i = 0; t->slots && i < t->cap; i++)
        free(t->slots[i].item);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static void *ht_get(const htab *t, uint64_t h, const uint8_t *key)
{
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (!t->slots[i].item)
            return NULL;
        if (t->slots[i].hash == h && memcmp(t->slots[i].item, key, t->keylen) == 0)
            return t->slots[i].item;
    }
}

static void ht_insert_slot(hslot *slots, size_t cap, uint64_t h, void *item)
{
    size_t mask = cap - 1;
    size_t i = h & mask;
    while (slots[i].item)
        i = (i + 1) & mask;
    slots[i].hash = h;
    slots[i].item = item;
}

/* Inserts an item known to be absent. Returns 0 or -1 (ENOMEM). */
static int ht_put(htab *t, uint64_t h, void *item)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap * 2;
        hslot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].item)
                ht_insert_slot(ns, ncap, t->slots[i].hash, t->slots[i].item);
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    ht_insert_slot(t->slots, t->cap, h, item);
    t->n++;
    return 0;
}

/* Removes and returns the item with key (NULL if absent). */
static void *ht_del(htab *t, uint64_t h, const uint8_t *key)
{
    size_t mask = t->cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        if (!t->slots[i].item)
            return NULL;
        if (t->slots[i].hash == h && memcmp(t->slots[i].item, key, t->keylen) == 0)
            break;
    }
    void *item = t->slots[i].item;
    for (size_t j = (i + 1) & mask; t->slots[j].item; j = (j + 1) & mask) {
        size_t home = t->slots[j].hash & mask;
        /* Move j back to i when its home is not cyclically in (i, j]. */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].item = NULL;
    t->slots[i].hash = 0;
    t->n--;
    return item;
}

/* ---- entries --------------------------------------------------------------- */

typedef struct {
    int64_t minute;
    u256 amount;
} vbucket;

typedef struct {
    uint8_t key[VKEY_LEN];
    u256 reserved;
    vbucket *b;
    size_t head, n, cap; /* live buckets are b[head..n) */
} vel_entry;

enum { NONCE_PENDING = 1, NONCE_COMMITTED = 2 };

typedef struct {
    uint8_t key[NKEY_LEN];
    uint8_t digest[32];          /* the last committed (or, PENDING, the first being signed) */
    uint8_t state;
    bool has_body;               /* body and fees known ('R' record): may be re-priced */
    bool replacing;              /* a replacement is being signed (state COMMITTED) */
    uint8_t body[32];
    uint8_t max_fee[32], prio_fee[32];
    uint32_t replacements;       /* committed replacements */
    uint8_t pend_digest[32];     /* the replacement being signed */
} nonce_entry;

typedef struct {
    uint8_t key[KKEY_LEN];
    uint64_t max_nonce;
} kc_entry;

struct ledger {
    pthread_mutex_t mu;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    htab vel, nonces, kc;
    int fd;
};

static uint64_t hash_key(const ledger *l, const uint8_t *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, key, len, l->hkey);
    memcpy(&h, out, sizeof h);
    return h;
}

static void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void vkey(uint8_t k[VKEY_LEN], const uint8_t key[20], uint64_t chain, const uint8_t token[20])
{
    memcpy(k, key, 20);
    be64_put(k + 20, chain);
    memcpy(k + 28, token, 20);
}

static void nkey(uint8_t k[NKEY_LEN], const uint8_t key[20], uint64_t chain, uint64_t nonce)
{
    memcpy(k, key, 20);
    be64_put(k + 20, chain);
    be64_put(k + 28, nonce);
}

static vel_entry *vel_get(ledger *l, const uint8_t k[VKEY_LEN], int create)
{
    uint64_t h = hash_key(l, k, VKEY_LEN);
    vel_entry *e = ht_get(&l->vel, h, k);
    if (e || !create)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->key, k, VKEY_LEN);
    if (ht_put(&l->vel, h, e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

/* Drops buckets whose minute ended at least LEDGER_WINDOW_MS ago. */
static void vel_expire(vel_entry *e, int64_t now_ms)
{
    while (e->head < e->n && (e->b[e->head].minute + 1) * MINUTE_MS <= now_ms - LEDGER_WINDOW_MS)
        e->head++;
    if (e->head == e->n)
        e->head = e->n = 0;
}

/* Sum of the live buckets; -1 on overflow (treated as over any limit). */
static int vel_sum(u256 *out, vel_entry *e, int64_t now_ms)
{
    u256 s = U256_ZERO;
    vel_expire(e, now_ms);
    for (size_t i = e->head; i < e->n; i++) {
        /* A bucket from the future (clock stepped back) still counts. */
        if ((e->b[i].minute + 1) * MINUTE_MS <= now_ms - LEDGER_WINDOW_MS)
            continue;
        if (u256_add(&s, &s, &e->b[i].amount) != 0)
            return -1;
    }
    *out = s;
    return 0;
}

static int vel_add(vel_entry *e, int64_t ts_ms, const u256 *amount)
{
    int64_t minute = ts_ms / MINUTE_MS;
    if (e->n > e->head && e->b[e->n - 1].minute == minute) {
        u256 sum;
        if (u256_add(&sum, &e->b[e->n - 1].amount, amount) != 0)
            sum = U256_MAX;
        e->b[e->n - 1].amount = sum;
        return 0;
    }
    if (e->head > 0 && e->n == e->cap) {
        memmove(e->b, e->b + e->head, (e->n - e->head) * sizeof *e->b);
        e->n -= e->head;
        e->head = 0;
    }
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 4;
        vbucket *nb = realloc(e->b, ncap * sizeof *nb);
        if (!nb)
            return -1;
        e->b = nb;
        e->cap = ncap;
    }
    e->b[e->n].minute = minute;
    e->b[e->n].amount = *amount;
    e->n++;
    return 0;
}

static kc_entry *kc_get(ledger *l, const uint8_t key[20], uint64_t chain, int create)
{
    uint8_t k[KKEY_LEN];
    memcpy(k, key, 20);
    be64_put(k + 20, chain);
    uint64_t h = hash_key(l, k, KKEY_LEN);
    kc_entry *e = ht_get(&l->kc, h, k);
    if (e || !create)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->key, k, KKEY_LEN);
    if (ht_put(&l->kc, h, e) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

/* ---- records ----------------------------------------------------------------- */

static void seal_record(uint8_t *rec, size_t body_end)
{
    crypto_generichash(rec + body_end, SUM_LEN, rec, body_end, NULL, 0);
}

static int record_ok(const uint8_t *rec, size_t len)
{
    uint8_t sum[SUM_LEN];
    crypto_generichash(sum, SUM_LEN, rec, len - SUM_LEN, NULL, 0);
    return sodium_memcmp(sum, rec + len - SUM_LEN, SUM_LEN) == 0;
}

static size_t encode_spend(uint8_t *rec, int64_t ts_ms, const uint8_t vk[VKEY_LEN], const u256 *amount)
{
    rec[0] = 'S';
    be64_put(rec + 1, (uint64_t)ts_ms);
    memcpy(rec + 9, vk, VKEY_LEN);
    u256_to_be32(rec + 9 + VKEY_LEN, amount);
    seal_record(rec, REC_S_LEN - SUM_LEN);
    return REC_S_LEN;
}

static size_t encode_nonce_r(uint8_t *rec, const nonce_entry *e)
{
    uint8_t *p = rec;
    *p++ = 'R';
    memcpy(p, e->key, NKEY_LEN);
    p += NKEY_LEN;
    memcpy(p, e->digest, 32);
    memcpy(p + 32, e->body, 32);
    memcpy(p + 64, e->max_fee, 32);
    memcpy(p + 96, e->prio_fee, 32);
    p += 128;
    p[0] = (uint8_t)(e->replacements >> 24);
    p[1] = (uint8_t)(e->replacements >> 16);
    p[2] = (uint8_t)(e->replacements >> 8);
    p[3] = (uint8_t)e->replacements;
    seal_record(rec, REC_R_LEN - SUM_LEN);
    return REC_R_LEN;
}

static size_t encode_nonce(uint8_t *rec, const uint8_t nk[NKEY_LEN], const uint8_t digest[32])
{
    rec[0] = 'N';
    memcpy(rec + 1, nk, NKEY_LEN);
    memcpy(rec + 1 + NKEY_LEN, digest, 32);
    seal_record(rec, REC_N_LEN - SUM_LEN);
    return REC_N_LEN;
}

void ledger_encode_mark(uint8_t rec[LEDGER_MARK_LEN], uint64_t audit_seq, const uint8_t hash[32])
{
    rec[0] = 'A';
    be64_put(rec + 1, audit_seq);
    memcpy(rec + 9, hash, 32);
    seal_record(rec, REC_A_LEN - SUM_LEN);
}

static size_t record_len(uint8_t type)
{
    switch (type) {
    case 'S': return REC_S_LEN;
    case 'N': return REC_N_LEN;
    case 'A': return REC_A_LEN;
    case 'R': return REC_R_LEN;
    default: return 0;
    }
}

/* Applies one valid record to memory. */
static int apply_record(ledger *l, ledger_info *info, const uint8_t *rec, int64_t now_ms)
{
    switch (rec[0]) {
    case 'S': {
        int64_t ts = (int64_t)be64_get(rec + 1);
        u256 amount;
        u256_from_be32(&amount, rec + 9 + VKEY_LEN);
        if ((ts / MINUTE_MS + 1) * MINUTE_MS <= now_ms - LEDGER_WINDOW_MS)
            return 0; /* expired */
        vel_entry *e = vel_get(l, rec + 9, 1);
        return e ? vel_add(e, ts, &amount) : -1;
    }
    case 'N':
    case 'R': {
        const uint8_t *nk = rec + 1;
        uint64_t h = hash_key(l, nk, NKEY_LEN);
        nonce_entry *e = ht_get(&l->nonces, h, nk);
        bool fresh = !e;
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e)
                return -1;
            memcpy(e->key, nk, NKEY_LEN);
            memcpy(e->digest, rec + 1 + NKEY_LEN, 32);
            e->state = NONCE_COMMITTED;
            if (ht_put(&l->nonces, h, e) != 0) {
                free(e);
                return -1;
            }
        }
        if (rec[0] == 'R') {
            const uint8_t *p = rec + 1 + NKEY_LEN;
            uint32_t n = (uint32_t)p[128] << 24 | (uint32_t)p[129] << 16 | (uint32_t)p[130] << 8 | p[131];
            /* A later record for the nonce is a replacement (more
             * replacements) or repeats one; the one with the most stands.
             * An 'N' record (no body) is never superseded by guesswork:
             * the daemon only writes 'R' records for nonces it re-prices. */
            if (fresh || (e->has_body && n > e->replacements)) {
                memcpy(e->digest, p, 32);
                memcpy(e->body, p + 32, 32);
                memcpy(e->max_fee, p + 64, 32);
                memcpy(e->prio_fee, p + 96, 32);
                e->replacements = n;
                e->has_body = true;
            }
        }
        /* Otherwise a second record for the same nonce repeats the first
         * (the daemon commits another digest only as a replacement). */
        kc_entry *kc = kc_get(l, nk, be64_get(nk + 20), 1);
        if (!kc)
            return -1;
        uint64_t nonce = be64_get(nk + 28);
        if (nonce > kc->max_nonce)
            kc->max_nonce = nonce;
        return 0;
    }
    case 'A':
        info->has_mark = true;
        info->mark_seq = be64_get(rec + 1);
        memcpy(info->mark_hash, rec + 9, 32);
        return 0;
    }
    return -1;
}

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (!err || !err_len)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Reads and replays the file. Returns 0 or -1 (err set). */
static int replay(ledger *l, ledger_info *info, char *err, size_t err_len, int fd, int64_t now_ms)
{
    enum { CHUNK = 65536 };
    uint8_t *buf = malloc(CHUNK + LEDGER_RECORD_MAX);
    size_t have = 0;
    uint64_t off = 0; /* file offset of buf[0] */
    int header_done = 0, eof = 0, rc = -1;
    struct stat st;

    if (!buf) {
        set_err(err, err_len, "out of memory");
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        set_err(err, err_len, "fstat: %s", strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    for (;;) {
        if (!eof && have < LEDGER_RECORD_MAX) {
            ssize_t n = read(fd, buf + have, CHUNK + LEDGER_RECORD_MAX - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                set_err(err, err_len, "read: %s", strerror(errno));
                goto out;
            }
            if (n == 0)
                eof = 1;
            have += (size_t)n;
            if (n > 0)
                continue;
        }
        size_t pos = 0;
        if (!header_done) {
            if (have < LEDGER_MAGIC_LEN) {
                if (!eof)
                    continue;
                if (memcmp(buf, LEDGER_MAGIC, have) == 0) {
                    info->torn_bytes = have; /* torn header of a new file */
                    rc = 0;
                } else {
                    set_err(err, err_len, "not a coffer-signer ledger file");
                }
                goto out;
            }
            if (memcmp(buf, LEDGER_MAGIC, LEDGER_MAGIC_LEN) != 0) {
                set_err(err, err_len, "not a coffer-signer ledger file");
                goto out;
            }
            header_done = 1;
            pos = LEDGER_MAGIC_LEN;
        }
        for (;;) {
            size_t left = have - pos;
            if (left == 0)
                break;
            size_t rl = record_len(buf[pos]);
            if (rl != 0 && left < rl && !eof)
                break; /* need more bytes */
            uint64_t at = off + pos;
            if (rl != 0 && left < rl) {
                /* Shorter than its record at the end of the file: an
                 * append cut by a crash (never acknowledged). */
                info->torn_bytes = left;
                rc = 0;
                goto out;
            }
            if (rl == 0) {
                set_err(err, err_len, "damaged record at byte %llu of %llu: unknown record type 0x%02x; "
                        "refusing to guess", (unsigned long long)at, (unsigned long long)size, buf[pos]);
                goto out;
            }
            if (!record_ok(buf + pos, rl)) {
                /* A whole record that fails its checksum is damage, even the
                 * last one: a torn append is always shorter than a record. */
                set_err(err, err_len, "damaged record at byte %llu of %llu: its '%c' record (%zu bytes) "
                        "fails its checksum%s; refusing to guess", (unsigned long long)at,
                        (unsigned long long)size, buf[pos], rl,
                        at + rl == size ? " (it is the last record but complete, so not a torn write)" : "");
                goto out;
            }
            if (apply_record(l, info, buf + pos, now_ms) != 0) {
                set_err(err, err_len, "out of memory");
                goto out;
            }
            info->records++;
            pos += rl;
        }
        memmove(buf, buf + pos, have - pos);
        off += pos;
        have -= pos;
        if (eof && have == 0) {
            rc = 0;
            goto out;
        }
    }
out:
    free(buf);
    return rc;
}

/* Buffered writer for compaction. */
typedef struct {
    int fd;
    uint8_t buf[65536];
    size_t len;
    int failed;
} wbuf;

static void wb_flush(wbuf *w)
{
    size_t off = 0;
    while (!w->failed && off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            w->failed = 1;
            break;
        }
        off += (size_t)n;
    }
    w->len = 0;
}

static void wb_put(wbuf *w, const uint8_t *p, size_t n)
{
    if (w->len + n > sizeof w->buf)
        wb_flush(w);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* Writes the live state to a fresh file that replaces name. */
static int compact(ledger *l, ledger_info *info, char *err, size_t err_len, int dirfd,
                   const char *name, int64_t now_ms)
{
    char tmp[256];
    wbuf *w = NULL;
    int fd = -1;
    uint8_t rec[LEDGER_RECORD_MAX];

    if (snprintf(tmp, sizeof tmp, "%s.compact", name) >= (int)sizeof tmp) {
        set_err(err, err_len, "ledger file name too long");
        return -1;
    }
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        set_err(err, err_len, "out of memory");
        goto fail;
    }
    w->fd = fd;
    wb_put(w, (const uint8_t *)LEDGER_MAGIC, LEDGER_MAGIC_LEN);
    if (info->has_mark) {
        ledger_encode_mark(rec, info->mark_seq, info->mark_hash);
        wb_put(w, rec, REC_A_LEN);
    }
    for (size_t i = 0; i < l->vel.cap; i++) {
        vel_entry *e = l->vel.slots[i].item;
        if (!e)
            continue;
        vel_expire(e, now_ms);
        for (size_t b = e->head; b < e->n; b++) {
            wb_put(w, rec, encode_spend(rec, e->b[b].minute * MINUTE_MS, e->key, &e->b[b].amount));
            info->spends_live++;
        }
    }
    /* Forget nonces far below their (key, chain)'s highest. */
    for (size_t i = 0; i < l->nonces.cap;) {
        nonce_entry *e = l->nonces.slots[i].item;
        if (!e) {
            i++;
            continue;
        }
        kc_entry *kc = kc_get(l, e->key, be64_get(e->key + 20), 0);
        uint64_t nonce = be64_get(e->key + 28);
        if (kc && kc->max_nonce > nonce && kc->max_nonce - nonce > LEDGER_NONCE_WINDOW) {
            free(ht_del(&l->nonces, l->nonces.slots[i].hash, e->key));
            continue; /* slot i now holds a shifted entry (or is empty) */
        }
        i++;
    }
    for (size_t i = 0; i < l->nonces.cap; i++) {
        nonce_entry *e = l->nonces.slots[i].item;
        if (!e)
            continue;
        wb_put(w, rec, e->has_body ? encode_nonce_r(rec, e) : encode_nonce(rec, e->key, e->digest));
        info->nonces_live++;
    }
    wb_flush(w);
    if (w->failed || fdatasync(fd) != 0) {
        set_err(err, err_len, "writing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (renameat(dirfd, tmp, dirfd, name) != 0 || fsync(dirfd) != 0) {
        set_err(err, err_len, "replacing %s: %s", name, strerror(errno));
        goto fail;
    }
    free(w);
    l->fd = fd;
    return 0;
fail:
    free(w);
    close(fd);
    unlinkat(dirfd, tmp, 0);
    return -1;
}

int ledger_open(ledger **out, ledger_info *info, char *err, size_t err_len, int dirfd,
                const char *name, int64_t now_ms)
{
    ledger_info local;
    ledger *l = NULL;
    int fd = -1;

    *out = NULL;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (sodium_init() < 0) {
        set_err(err, err_len, "libsodium unusable");
        return -1;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        set_err(err, err_len, "out of memory");
        return -1;
    }
    l->fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    crypto_shorthash_keygen(l->hkey);
    if (ht_init(&l->vel, VKEY_LEN) != 0 || ht_init(&l->nonces, NKEY_LEN) != 0 ||
        ht_init(&l->kc, KKEY_LEN) != 0) {
        set_err(err, err_len, "out of memory");
        goto fail;
    }
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno != ENOENT) {
        set_err(err, err_len, "%s: %s", name, strerror(errno));
        goto fail;
    }
    if (fd >= 0) {
        char why[300];
        info->existed = true;
        if (replay(l, info, why, sizeof why, fd, now_ms) != 0) {
            set_err(err, err_len, "%s: %s", name, why);
            goto fail;
        }
        close(fd);
        fd = -1;
    }
    if (compact(l, info, err, err_len, dirfd, name, now_ms) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    ledger_free(l);
    return -1;
}

void ledger_free(ledger *l)
{
    if (!l)
        return;
    for (size_t i = 0; l->vel.slots && i < l->vel.cap; i++) {
        vel_entry *e = l->vel.slots[i].item;
        if (e)
            free(e->b);
    }
    ht_dispose(&l->vel);
    ht_dispose(&l->nonces);
    ht_dispose(&l->kc);
    if (l->fd >= 0)
        close(l->fd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int ledger_fd(const ledger *l)
{
    return l->fd;
}

/* ---- requests ------------------------------------------------------------------ */

static void release_spends(ledger *l, ledger_txn *t)
{
    for (size_t i = 0; i < t->n_reserved; i++) {
        uint8_t k[VKEY_LEN];
        vkey(k, t->key, t->chain_id, t->spends[i].token);
        vel_entry *e = vel_get(l, k, 0);
        if (e && u256_sub(&e->reserved, &e->reserved, &t->spends[i].amount) != 0)
            e->reserved = U256_ZERO; /* cannot happen: it was added */
    }
    t->n_reserved = 0;
}

/* True when fee nw is strictly above old and at least pct percent above
 * it (rounded up), as nodes require of a replacement. */
static bool fee_bumped(const uint8_t nw[32], const uint8_t old[32], uint32_t pct)
{
    u256 n, o, extra, need;
    u256 p = u256_from_u64(pct), hundred = u256_from_u64(100);
    u256_from_be32(&n, nw);
    u256_from_be32(&o, old);
    if (u256_muldiv_ceil(&extra, &o, &p, &hundred) != 0 || u256_add(&need, &o, &extra) != 0)
        return false;
    return u256_cmp(&n, &o) > 0 && u256_cmp(&n, &need) >= 0;
}

/* Decides a request for a nonce that is already known (e), with another
 * digest. LEDGER_OK: t is a replacement of e (spends not yet adjusted). */
static ledger_result replacement_check(const nonce_entry *e, const ledger_txn *t, char *detail,
                                       size_t detail_len)
{
    bool same_body = t->repl_max > 0 && e->has_body && sodium_memcmp(e->body, t->body, 32) == 0;
    if (e->state != NONCE_COMMITTED || e->replacing) {
        if (same_body || (e->replacing && sodium_memcmp(e->pend_digest, t->digest, 32) == 0)) {
            set_err(detail, detail_len, "nonce %llu is being signed (or re-priced) right now",
                    (unsigned long long)t->nonce);
            return LEDGER_IN_FLIGHT;
        }
    }
    if (!same_body || t->repl_max == 0 || e->state != NONCE_COMMITTED || e->replacing) {
        set_err(detail, detail_len, "nonce %llu on chain %llu was already signed for another payload%s",
                (unsigned long long)t->nonce, (unsigned long long)t->chain_id,
                t->repl_max == 0 ? "" : !e->has_body ? " (signed before replacements were recorded)"
                                                     : " (a replacement may change only the fees)");
        return LEDGER_DOUBLE_SIGN;
    }
    if (e->replacements >= t->repl_max) {
        set_err(detail, detail_len, "nonce %llu on chain %llu was already re-priced %u times (max_replacements %u)",
                (unsigned long long)t->nonce, (unsigned long long)t->chain_id, e->replacements, t->repl_max);
        return LEDGER_REPLACE_LIMIT;
    }
    bool fee_ok = fee_bumped(t->max_fee, e->max_fee, t->repl_min_bump_pct);
    bool prio_ok = !t->bump_prio || fee_bumped(t->prio_fee, e->prio_fee, t->repl_min_bump_pct);
    if (!fee_ok || !prio_ok) {
        char had[U256_DEC_MAX];
        u256 v;
        u256_from_be32(&v, fee_ok ? e->prio_fee : e->max_fee);
        u256_to_dec(had, &v);
        set_err(detail, detail_len, "a replacement of nonce %llu must raise %s by at least %u%% above %s",
                (unsigned long long)t->nonce, fee_ok ? "max_priority_fee_per_gas" : "max_fee_per_gas",
                t->repl_min_bump_pct, had);
        return LEDGER_REPLACE_UNDERPRICED;
    }
    return LEDGER_OK;
}

/* A replacement moves nothing new: only its extra gas cost, gas_limit ×
 * (new max fee − last max fee), is counted, on the native coin. */
static void replacement_spends(ledger_txn *t, const nonce_entry *e)
{
    static const uint8_t zero[20];
    u256 nf, of, diff, extra, gl = u256_from_u64(t->gas_limit);
    u256_from_be32(&nf, t->max_fee);
    u256_from_be32(&of, e->max_fee);
    if (u256_sub(&diff, &nf, &of) != 0 || u256_mul(&extra, &gl, &diff) != 0)
        extra = U256_MAX; /* cannot happen: checked above and by the policy */
    for (size_t i = 0; i < t->n_spends; i++)
        t->spends[i].amount = memcmp(t->spends[i].token, zero, 20) == 0 ? extra : U256_ZERO;
}

ledger_result ledger_reserve(ledger *l, ledger_txn *t, char *detail, size_t detail_len,
                             int64_t now_ms)
{
    uint8_t nk[NKEY_LEN];
    ledger_result r = LEDGER_OK;

    t->n_reserved = 0;
    t->holding = false;
    t->replacement = 0;
    if (detail && detail_len)
        detail[0] = '\0';
    nkey(nk, t->key, t->chain_id, t->nonce);
    uint64_t h = hash_key(l, nk, NKEY_LEN);

    pthread_mutex_lock(&l->mu);
    kc_entry *kc = kc_get(l, t->key, t->chain_id, 0);
    /* Differences, never sums: nonces reach 2^64-2. */
    if (kc && kc->max_nonce > t->nonce && kc->max_nonce - t->nonce > LEDGER_NONCE_WINDOW) {
        set_err(detail, detail_len, "nonce %llu is more than %u below the highest signed (%llu)",
                (unsigned long long)t->nonce, LEDGER_NONCE_WINDOW, (unsigned long long)kc->max_nonce);
        r = LEDGER_NONCE_TOO_OLD;
        goto out;
    }
    {
        /* A key that has signed nothing on this chain starts at nonce 0. */
        uint64_t highest = kc ? kc->max_nonce : 0;
        uint64_t gap = t->max_nonce_gap ? t->max_nonce_gap : LEDGER_NONCE_GAP_DEFAULT;
        if (t->nonce > highest && t->nonce - highest > gap) {
            set_err(detail, detail_len, "nonce %llu is more than %llu above the highest signed (%llu%s)",
                    (unsigned long long)t->nonce, (unsigned long long)gap, (unsigned long long)highest,
                    kc ? "" : ": none yet");
            r = LEDGER_NONCE_TOO_FAR_AHEAD;
            goto out;
        }
    }
    nonce_entry *ne = ht_get(&l->nonces, h, nk);
    if (ne) {
        int same = sodium_memcmp(ne->digest, t->digest, 32) == 0;
        if (same && ne->state == NONCE_COMMITTED) {
            r = LEDGER_RESIGN;
            goto out;
        }
        if (same) {
            set_err(detail, detail_len, "nonce %llu is being signed right now", (unsigned long long)t->nonce);
            r = LEDGER_IN_FLIGHT;
            goto out;
        }
        r = replacement_check(ne, t, detail, detail_len);
        if (r != LEDGER_OK)
            goto out;
        replacement_spends(t, ne);
    }
    for (size_t i = 0; i < t->n_spends; i++) {
        const policy_spend *s = &t->spends[i];
        uint8_t k[VKEY_LEN];
        vkey(k, t->key, t->chain_id, s->token);
        vel_entry *e = vel_get(l, k, 1);
        if (!e) {
            release_spends(l, t);
            r = LEDGER_ERR_NOMEM;
            goto out;
        }
        if (s->limited) {
            u256 used, total;
            int over = vel_sum(&used, e, now_ms) != 0 || u256_add(&total, &used, &e->reserved) != 0 ||
                       u256_add(&total, &total, &s->amount) != 0 || u256_cmp(&total, &s->limit) > 0;
            if (over) {
                char u[U256_DEC_MAX], lim[U256_DEC_MAX];
                u256 inflight;
                if (u256_add(&inflight, &used, &e->reserved) != 0)
                    inflight = U256_MAX;
                u256_to_dec(u, &inflight);
                u256_to_dec(lim, &s->limit);
                set_err(detail, detail_len, "%s: %s used of daily_limit %s in the last 24 h", s->label, u, lim);
                release_spends(l, t);
                r = LEDGER_VELOCITY;
                goto out;
            }
        }
        if (u256_add(&e->reserved, &e->reserved, &s->amount) != 0)
            e->reserved = U256_MAX;
        t->n_reserved = i + 1;
    }
    if (ne) { /* a replacement: the committed entry stands until it commits */
        ne->replacing = true;
        memcpy(ne->pend_digest, t->digest, 32);
        t->replacement = ne->replacements + 1;
        t->holding = true;
        goto out;
    }
    ne = calloc(1, sizeof *ne);
    if (!ne || ht_put(&l->nonces, h, ne) != 0) {
        free(ne);
        release_spends(l, t);
        r = LEDGER_ERR_NOMEM;
        goto out;
    }
    memcpy(ne->key, nk, NKEY_LEN);
    memcpy(ne->digest, t->digest, 32);
    memcpy(ne->body, t->body, 32);
    memcpy(ne->max_fee, t->max_fee, 32);
    memcpy(ne->prio_fee, t->prio_fee, 32);
    ne->has_body = true;
    ne->state = NONCE_PENDING;
    t->holding = true;
out:
    pthread_mutex_unlock(&l->mu);
    return r;
}

void ledger_abort(ledger *l, ledger_txn *t)
{
    uint8_t nk[NKEY_LEN];
    if (!t->holding)
        return;
    nkey(nk, t->key, t->chain_id, t->nonce);
    pthread_mutex_lock(&l->mu);
    release_spends(l, t);
    if (t->replacement) {
        nonce_entry *ne = ht_get(&l->nonces, hash_key(l, nk, NKEY_LEN), nk);
        if (ne)
            ne->replacing = false;
    } else {
        free(ht_del(&l->nonces, hash_key(l, nk, NKEY_LEN), nk));
    }
    t->holding = false;
    pthread_mutex_unlock(&l->mu);
}

size_t ledger_commit(ledger *l, ledger_txn *t, uint8_t rec[LEDGER_COMMIT_MAX], int64_t now_ms)
{
    uint8_t nk[NKEY_LEN];
    size_t len = 0;
    if (!t->holding)
        return 0;
    nkey(nk, t->key, t->chain_id, t->nonce);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < t->n_reserved; i++) {
        uint8_t k[VKEY_LEN];
        vkey(k, t->key, t->chain_id, t->spends[i].token);
        vel_entry *e = vel_get(l, k, 0);
        if (e) {
            if (u256_sub(&e->reserved, &e->reserved, &t->spends[i].amount) != 0)
                e->reserved = U256_ZERO; /* cannot happen: it was added */
            if (vel_add(e, now_ms, &t->spends[i].amount) != 0) {
                /* Out of memory: keep the amount reserved forever rather
                 * than forget it (errs on the safe side until restart). */
                if (u256_add(&e->reserved, &e->reserved, &t->spends[i].amount) != 0)
                    e->reserved = U256_MAX;
            }
        }
        len += encode_spend(rec + len, now_ms, k, &t->spends[i].amount);
    }
    nonce_entry *ne = ht_get(&l->nonces, hash_key(l, nk, NKEY_LEN), nk);
    if (ne) {
        if (t->replacement) {
            memcpy(ne->digest, t->digest, 32);
            memcpy(ne->max_fee, t->max_fee, 32);
            memcpy(ne->prio_fee, t->prio_fee, 32);
            ne->replacements = t->replacement;
            ne->replacing = false;
        }
        ne->state = NONCE_COMMITTED;
    }
    kc_entry *kc = kc_get(l, t->key, t->chain_id, 1);
    if (kc && t->nonce > kc->max_nonce)
        kc->max_nonce = t->nonce;
    if (ne) {
        len += encode_nonce_r(rec + len, ne);
    } else { /* cannot happen: reserved entries stay until commit or abort */
        nonce_entry tmp;
        memset(&tmp, 0, sizeof tmp);
        memcpy(tmp.key, nk, NKEY_LEN);
        memcpy(tmp.digest, t->digest, 32);
        memcpy(tmp.body, t->body, 32);
        memcpy(tmp.max_fee, t->max_fee, 32);
        memcpy(tmp.prio_fee, t->prio_fee, 32);
        tmp.replacements = t->replacement;
        len += encode_nonce_r(rec + len, &tmp);
    }
    t->n_reserved = 0;
    t->holding = false;
    pthread_mutex_unlock(&l->mu);
    return len;
}

void ledger_spent(ledger *l, u256 *out, const uint8_t key[20], uint64_t chain_id,
                  const uint8_t token[20], int64_t now_ms)
{
    uint8_t k[VKEY_LEN];
    vkey(k, key, chain_id, token);
    *out = U256_ZERO;
    pthread_mutex_lock(&l->mu);
    vel_entry *e = vel_get(l, k, 0);
    if (e && vel_sum(out, e, now_ms) != 0)
        *out = U256_MAX;
    pthread_mutex_unlock(&l->mu);
}

const char *ledger_strerror(ledger_result r)
{
    switch (r) {
    case LEDGER_OK: return "reserved";
    case LEDGER_RESIGN: return "identical payload already signed";
    case LEDGER_DOUBLE_SIGN: return "nonce already signed for another payload";
    case LEDGER_IN_FLIGHT: return "nonce being signed right now";
    case LEDGER_NONCE_TOO_OLD: return "nonce too far below the highest signed";
    case LEDGER_NONCE_TOO_FAR_AHEAD: return "nonce too far above the highest signed";
    case LEDGER_VELOCITY: return "daily limit exceeded";
    case LEDGER_REPLACE_UNDERPRICED: return "replacement fees not bumped enough";
    case LEDGER_REPLACE_LIMIT: return "too many replacements of the nonce";
    case LEDGER_ERR_NOMEM: return "out of memory";
    }
    return "unknown ledger result";
}
