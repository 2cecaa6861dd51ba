/* ledger: velocity reservations and limits, nonce watermarks, and what
 * survives a reopen (torn tails dropped, damage refused, expiry). */
#include "ledger.h"
#include "test_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0 1700000000000LL
#define HOUR (3600LL * 1000)

static char dir[64];
static int dirfd_;

static int suite_init(void)
{
    snprintf(dir, sizeof dir, "/tmp/coffer-test-ledger.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    return dirfd_ >= 0 ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[128];
    close(dirfd_);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const uint8_t KEY[20] = {0xaa};
static const uint8_t KEY2[20] = {0xbb};
static const uint8_t TOKEN[20] = {0x55};

static ledger *open_ledger(const char *name, ledger_info *info, int64_t now)
{
    char err[256];
    ledger *l = NULL;
    if (ledger_open(&l, info, err, sizeof err, dirfd_, name, now) != 0)
        fprintf(stderr, "ledger_open: %s\n", err);
    return l;
}

static ledger_txn txn(const uint8_t key[20], uint64_t nonce, uint8_t digest_byte, uint64_t native,
                      uint64_t native_limit, uint64_t token, uint64_t token_limit)
{
    ledger_txn t;
    memset(&t, 0, sizeof t);
    memcpy(t.key, key, 20);
    t.chain_id = 1;
    t.nonce = nonce;
    memset(t.digest, digest_byte, 32);
    if (native) {
        policy_spend *s = &t.spends[t.n_spends++];
        s->amount = u256_from_u64(native);
        s->limited = native_limit != 0;
        s->limit = u256_from_u64(native_limit);
        snprintf(s->label, sizeof s->label, "native");
    }
    if (token) {
        policy_spend *s = &t.spends[t.n_spends++];
        memcpy(s->token, TOKEN, 20);
        s->amount = u256_from_u64(token);
        s->limited = token_limit != 0;
        s->limit = u256_from_u64(token_limit);
        snprintf(s->label, sizeof s->label, "usdc");
    }
    return t;
}

/* Appends commit records the way the journal does. */
static void persist(ledger *l, const uint8_t *rec, size_t len)
{
    CU_ASSERT_FATAL(write(ledger_fd(l), rec, len) == (ssize_t)len);
}

static uint64_t spent(ledger *l, const uint8_t key[20], const uint8_t *token, int64_t now)
{
    static const uint8_t native[20];
    u256 s;
    uint64_t v = 0;
    ledger_spent(l, &s, key, 1, token ? token : native, now);
    CU_ASSERT(u256_to_u64(&v, &s) == 0);
    return v;
}

static void test_velocity(void)
{
    uint8_t rec[LEDGER_COMMIT_MAX];
    char detail[200];
    ledger *l = open_ledger("v1", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    /* limit 100: 60 committed, 30 reserved in flight, 20 more is refused */
    ledger_txn a = txn(KEY, 0, 1, 60, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &a, detail, sizeof detail, T0), LEDGER_OK);
    size_t n = ledger_commit(l, &a, rec, T0);
    CU_ASSERT(n > 0);
    persist(l, rec, n);
    ledger_txn b = txn(KEY, 1, 2, 30, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &b, detail, sizeof detail, T0), LEDGER_OK);
    ledger_txn c = txn(KEY, 2, 3, 20, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &c, detail, sizeof detail, T0), LEDGER_VELOCITY);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "native: 90 used of daily_limit 100"));
    /* abort b: its 30 come back, and its nonce is free again */
    ledger_abort(l, &b);
    CU_ASSERT_EQUAL(ledger_reserve(l, &c, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &c);
    ledger_txn b2 = txn(KEY, 1, 9, 40, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &b2, detail, sizeof detail, T0), LEDGER_OK);
    persist(l, rec, ledger_commit(l, &b2, rec, T0 + 1000));
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0 + 2000), 100);
    /* another key is not affected */
    ledger_txn k2 = txn(KEY2, 0, 1, 100, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &k2, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &k2);
    /* two spends: the token limit refuses, and the native reservation is released */
    ledger_txn two = txn(KEY, 5, 5, 0, 0, 7, 5);
    two.spends[0].amount = u256_from_u64(7);
    CU_ASSERT_EQUAL(ledger_reserve(l, &two, detail, sizeof detail, T0), LEDGER_VELOCITY);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "usdc"));
    /* unlimited spends are recorded but never refused */
    ledger_txn big = txn(KEY, 6, 6, 0, 0, 1000000, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &big, detail, sizeof detail, T0), LEDGER_OK);
    persist(l, rec, ledger_commit(l, &big, rec, T0));
    CU_ASSERT_EQUAL(spent(l, KEY, TOKEN, T0), 1000000);

    /* 24 h later the first spend (minute T0) has left the window. */
    ledger_txn later = txn(KEY, 7, 7, 60, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &later, detail, sizeof detail, T0 + 23 * HOUR), LEDGER_VELOCITY);
    CU_ASSERT_EQUAL(ledger_reserve(l, &later, detail, sizeof detail, T0 + 24 * HOUR + 61000), LEDGER_OK);
    ledger_abort(l, &later);
    ledger_free(l);

    /* Reopened: the committed spends and nonces are back. */
    ledger_info info;
    l = open_ledger("v1", &info, T0 + 5000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(info.torn_bytes, 0);
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0 + 5000), 100);
    CU_ASSERT_EQUAL(spent(l, KEY, TOKEN, T0 + 5000), 1000000);
    ledger_txn again = txn(KEY, 8, 8, 1, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &again, detail, sizeof detail, T0 + 5000), LEDGER_VELOCITY);
    ledger_txn same = txn(KEY, 1, 9, 40, 100, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &same, detail, sizeof detail, T0 + 5000), LEDGER_RESIGN);
    ledger_free(l);
    /* Reopened a day later: spends expired (and compacted away). */
    l = open_ledger("v1", &info, T0 + 25 * HOUR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(info.spends_live, 0);
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0 + 25 * HOUR), 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &same, detail, sizeof detail, T0 + 25 * HOUR), LEDGER_RESIGN);
    ledger_free(l);
}

static void test_nonces(void)
{
    uint8_t rec[LEDGER_COMMIT_MAX];
    char detail[200];
    ledger *l = open_ledger("n1", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    ledger_txn a = txn(KEY, 10, 1, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &a, detail, sizeof detail, T0), LEDGER_OK);
    ledger_txn same = txn(KEY, 10, 1, 0, 0, 0, 0), other = txn(KEY, 10, 2, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &same, detail, sizeof detail, T0), LEDGER_IN_FLIGHT);
    CU_ASSERT_EQUAL(ledger_reserve(l, &other, detail, sizeof detail, T0), LEDGER_DOUBLE_SIGN);
    persist(l, rec, ledger_commit(l, &a, rec, T0));
    CU_ASSERT_EQUAL(ledger_reserve(l, &same, detail, sizeof detail, T0), LEDGER_RESIGN);
    CU_ASSERT_EQUAL(ledger_commit(l, &same, rec, T0), 0); /* nothing held, nothing to write */
    CU_ASSERT_EQUAL(ledger_reserve(l, &other, detail, sizeof detail, T0), LEDGER_DOUBLE_SIGN);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "another payload"));
    /* other chain, other key: independent */
    ledger_txn oc = txn(KEY, 10, 2, 0, 0, 0, 0);
    oc.chain_id = 2;
    CU_ASSERT_EQUAL(ledger_reserve(l, &oc, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &oc);
    /* far above (within a wide max_nonce_gap): fine; then the old one is too far below */
    ledger_txn high = txn(KEY, 10 + LEDGER_NONCE_WINDOW + 1, 3, 0, 0, 0, 0);
    high.max_nonce_gap = 100000;
    CU_ASSERT_EQUAL(ledger_reserve(l, &high, detail, sizeof detail, T0), LEDGER_OK);
    persist(l, rec, ledger_commit(l, &high, rec, T0));
    ledger_txn low = txn(KEY, 9, 4, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &low, detail, sizeof detail, T0), LEDGER_NONCE_TOO_OLD);
    ledger_free(l);
    ledger_info info;
    l = open_ledger("n1", &info, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(info.nonces_live, 1); /* nonce 10 was forgotten by compaction */
    CU_ASSERT_EQUAL(ledger_reserve(l, &low, detail, sizeof detail, T0), LEDGER_NONCE_TOO_OLD);
    ledger_txn hs = txn(KEY, 10 + LEDGER_NONCE_WINDOW + 1, 3, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &hs, detail, sizeof detail, T0), LEDGER_RESIGN);
    ledger_free(l);
}

/* Nonces far above the highest signed are refused (max_nonce_gap; a key
 * that signed nothing counts from 0), and nothing near 2^64 wraps: signing
 * 2^64-2 must not make every later nonce "too old". */
static void test_nonce_bounds(void)
{
    uint8_t rec[LEDGER_COMMIT_MAX];
    char detail[200];
    ledger_info info;
    ledger *l = open_ledger("nb", &info, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_FALSE(info.existed);
    /* nothing signed yet: 0..1024 (the default gap) */
    ledger_txn t = txn(KEY, LEDGER_NONCE_GAP_DEFAULT, 1, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &t);
    t = txn(KEY, LEDGER_NONCE_GAP_DEFAULT + 1, 1, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_NONCE_TOO_FAR_AHEAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "above the highest signed (0: none yet)"));
    t = txn(KEY, UINT64_MAX - 1, 1, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_NONCE_TOO_FAR_AHEAD);
    /* the policy's gap */
    t = txn(KEY, 51, 1, 0, 0, 0, 0);
    t.max_nonce_gap = 50;
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_NONCE_TOO_FAR_AHEAD);
    t = txn(KEY, 50, 1, 0, 0, 0, 0);
    t.max_nonce_gap = 50;
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
    persist(l, rec, ledger_commit(l, &t, rec, T0));
    t = txn(KEY, 100, 2, 0, 0, 0, 0);
    t.max_nonce_gap = 50;
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &t);
    t = txn(KEY, 101, 2, 0, 0, 0, 0);
    t.max_nonce_gap = 50;
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_NONCE_TOO_FAR_AHEAD);

    /* Near the top of the range (a gap as wide as the range lets it get there). */
    ledger_txn top = txn(KEY2, UINT64_MAX - 1, 3, 0, 0, 0, 0);
    top.max_nonce_gap = UINT64_MAX;
    CU_ASSERT_EQUAL(ledger_reserve(l, &top, detail, sizeof detail, T0), LEDGER_OK);
    persist(l, rec, ledger_commit(l, &top, rec, T0));
    ledger_txn near = txn(KEY2, UINT64_MAX - 101, 4, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &near, detail, sizeof detail, T0), LEDGER_OK); /* not "too old" */
    persist(l, rec, ledger_commit(l, &near, rec, T0));
    ledger_txn old = txn(KEY2, UINT64_MAX - 2 - LEDGER_NONCE_WINDOW, 5, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &old, detail, sizeof detail, T0), LEDGER_NONCE_TOO_OLD);
    ledger_free(l);
    /* compaction keeps both (no wrap there either) */
    l = open_ledger("nb", &info, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_TRUE(info.existed);
    CU_ASSERT_EQUAL(info.nonces_live, 3);
    ledger_txn again = txn(KEY2, UINT64_MAX - 101, 4, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(ledger_reserve(l, &again, detail, sizeof detail, T0), LEDGER_RESIGN);
    ledger_free(l);
}

static void test_torn_and_damaged(void)
{
    uint8_t rec[LEDGER_COMMIT_MAX], mark[LEDGER_MARK_LEN], h[32];
    char detail[200], err[256];
    ledger_info info;
    ledger *l = open_ledger("t1", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    memset(h, 7, sizeof h);
    ledger_encode_mark(mark, 42, h);
    persist(l, mark, sizeof mark);
    for (uint64_t i = 0; i < 5; i++) {
        ledger_txn t = txn(KEY, i, (uint8_t)(i + 1), 10, 1000, 0, 0);
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
        size_t n = ledger_commit(l, &t, rec, T0);
        persist(l, rec, i == 4 ? n - 30 : n); /* the last write is cut short */
    }
    ledger_free(l);
    l = open_ledger("t1", &info, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT(info.torn_bytes > 0);
    CU_ASSERT_TRUE(info.has_mark);
    CU_ASSERT_EQUAL(info.mark_seq, 42);
    CU_ASSERT(memcmp(info.mark_hash, h, 32) == 0);
    /* four whole commits plus the last one's complete spend record */
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0), 50);
    ledger_free(l);
    /* after compaction the file is clean */
    l = open_ledger("t1", &info, T0);
    CU_ASSERT_EQUAL(info.torn_bytes, 0);
    ledger_free(l);

    /* A damaged record in the middle is refused, not guessed around. */
    int fd = openat(dirfd_, "t1", O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t byte;
    CU_ASSERT_FATAL(pread(fd, &byte, 1, 40) == 1);
    byte ^= 0xff;
    CU_ASSERT_FATAL(pwrite(fd, &byte, 1, 40) == 1);
    close(fd);
    struct stat st;
    CU_ASSERT_FATAL(fstatat(dirfd_, "t1", &st, 0) == 0);
    CU_ASSERT(st.st_size > 200);
    l = NULL;
    CU_ASSERT_EQUAL(ledger_open(&l, &info, err, sizeof err, dirfd_, "t1", T0), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "damaged record"));
    /* The last record complete but failing its checksum: damage, not a
     * torn write (a torn append is shorter than its record). */
    l = open_ledger("t3", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    for (uint64_t i = 0; i < 3; i++) {
        ledger_txn t = txn(KEY, i, (uint8_t)(i + 1), 10, 1000, 0, 0);
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
        size_t n = ledger_commit(l, &t, rec, T0);
        if (i == 2)
            rec[n - 1] ^= 0x01; /* the last byte of the last record's checksum */
        persist(l, rec, n);
    }
    ledger_free(l);
    l = NULL;
    CU_ASSERT_EQUAL(ledger_open(&l, &info, err, sizeof err, dirfd_, "t3", T0), -1);
    CU_ASSERT_PTR_NULL(l);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "fails its checksum"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a torn write"));
    /* An unknown record type at the tail, shorter than any record: damage too. */
    l = open_ledger("t4", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    persist(l, (const uint8_t *)"Z", 1);
    ledger_free(l);
    l = NULL;
    CU_ASSERT_EQUAL(ledger_open(&l, &info, err, sizeof err, dirfd_, "t4", T0), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown record type 0x5a"));
    /* Not a ledger at all. */
    fd = openat(dirfd_, "t2", O_WRONLY | O_CREAT, 0600);
    CU_ASSERT_FATAL(write(fd, "hello world, not a ledger\n", 26) == 26);
    close(fd);
    CU_ASSERT_EQUAL(ledger_open(&l, &info, err, sizeof err, dirfd_, "t2", T0), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a coffer-signer ledger"));
}

/* A fee replacement request: body byte, fees, gas limit 1000, value 5
 * (native spend = value + gas_limit x max fee, as the policy computes it). */
static ledger_txn rtxn(uint8_t digest_byte, uint8_t body_byte, uint64_t fee, uint64_t prio, uint32_t max_repl)
{
    ledger_txn t = txn(KEY, 7, digest_byte, 5 + 1000 * fee, 1000000000, 0, 0);
    memset(t.body, body_byte, 32);
    u256 f = u256_from_u64(fee), pr = u256_from_u64(prio);
    u256_to_be32(t.max_fee, &f);
    u256_to_be32(t.prio_fee, &pr);
    t.bump_prio = true;
    t.gas_limit = 1000;
    t.repl_min_bump_pct = 10;
    t.repl_max = max_repl;
    return t;
}

static void test_replacement(void)
{
    uint8_t rec[LEDGER_COMMIT_MAX];
    char detail[200];
    ledger *l = open_ledger("repl", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    ledger_txn a = rtxn(1, 0x11, 100, 10, 2);
    CU_ASSERT_EQUAL_FATAL(ledger_reserve(l, &a, detail, sizeof detail, T0), LEDGER_OK);
    CU_ASSERT_EQUAL(a.replacement, 0);
    /* while the first signature is in flight, a re-priced one waits */
    ledger_txn early = rtxn(2, 0x11, 110, 11, 2);
    CU_ASSERT_EQUAL(ledger_reserve(l, &early, detail, sizeof detail, T0), LEDGER_IN_FLIGHT);
    persist(l, rec, ledger_commit(l, &a, rec, T0));
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0), 100005);

    ledger_txn t = rtxn(2, 0x11, 105, 11, 2); /* max fee +5 % */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_UNDERPRICED);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "max_fee_per_gas"));
    t = rtxn(2, 0x11, 110, 10, 2); /* priority fee not raised */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_UNDERPRICED);
    CU_ASSERT_PTR_NOT_NULL(strstr(detail, "max_priority_fee_per_gas"));
    t = rtxn(2, 0x12, 110, 11, 2); /* another body (to, value, data, gas...) */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_DOUBLE_SIGN);
    t = rtxn(2, 0x11, 110, 11, 0); /* the policy allows no replacement */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_DOUBLE_SIGN);

    ledger_txn b = rtxn(2, 0x11, 110, 11, 2);
    CU_ASSERT_EQUAL_FATAL(ledger_reserve(l, &b, detail, sizeof detail, T0), LEDGER_OK);
    CU_ASSERT_EQUAL(b.replacement, 1);
    CU_ASSERT(u256_cmp(&b.spends[0].amount, &(u256){0}) != 0);
    uint64_t extra = 0;
    CU_ASSERT(u256_to_u64(&extra, &b.spends[0].amount) == 0);
    CU_ASSERT_EQUAL(extra, 10000); /* only the extra gas: value counted once */
    t = rtxn(3, 0x11, 130, 15, 2); /* another replacement while one is in flight */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_IN_FLIGHT);
    t = rtxn(1, 0x11, 100, 10, 2); /* the committed one still re-signs meanwhile */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_RESIGN);
    persist(l, rec, ledger_commit(l, &b, rec, T0));
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0), 110005);
    t = rtxn(2, 0x11, 110, 11, 2);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_RESIGN);
    t = rtxn(1, 0x11, 100, 10, 2); /* the replaced version: lower fees */
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_UNDERPRICED);

    ledger_txn c = rtxn(3, 0x11, 121, 13, 2); /* exactly +10 % (ceil) each */
    CU_ASSERT_EQUAL_FATAL(ledger_reserve(l, &c, detail, sizeof detail, T0), LEDGER_OK);
    CU_ASSERT_EQUAL(c.replacement, 2);
    persist(l, rec, ledger_commit(l, &c, rec, T0));
    t = rtxn(4, 0x11, 200, 20, 2);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_LIMIT);
    /* an aborted replacement leaves the committed one standing */
    t = rtxn(4, 0x11, 200, 20, 3);
    CU_ASSERT_EQUAL_FATAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
    ledger_abort(l, &t);
    t = rtxn(3, 0x11, 121, 13, 3);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_RESIGN);
    CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0), 121005);
    ledger_free(l);

    /* After a restart (replay and compaction, twice) the last fees, the
     * body and the count are remembered. */
    for (int round = 0; round < 2; round++) {
        l = open_ledger("repl", NULL, T0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(l);
        t = rtxn(3, 0x11, 121, 13, 3);
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_RESIGN);
        t = rtxn(5, 0x11, 133, 15, 3); /* 121 + 10 % = 133.1: not enough */
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_UNDERPRICED);
        t = rtxn(5, 0x11, 134, 15, 2);
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_LIMIT);
        t = rtxn(5, 0x12, 134, 15, 3);
        CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_DOUBLE_SIGN);
        CU_ASSERT_EQUAL(spent(l, KEY, NULL, T0), 121005);
        ledger_free(l);
    }
    l = open_ledger("repl", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    t = rtxn(5, 0x11, 134, 15, 3);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_OK);
    CU_ASSERT_EQUAL(t.replacement, 3);
    persist(l, rec, ledger_commit(l, &t, rec, T0));
    ledger_free(l);
    l = open_ledger("repl", NULL, T0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    t = rtxn(5, 0x11, 134, 15, 3);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_RESIGN);
    t = rtxn(6, 0x11, 300, 30, 3);
    CU_ASSERT_EQUAL(ledger_reserve(l, &t, detail, sizeof detail, T0), LEDGER_REPLACE_LIMIT);
    ledger_free(l);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"velocity: reserve, commit, abort, limits, window, reopen", test_velocity},
        {"nonce watermarks: in flight, re-sign, double sign, window", test_nonces},
        {"nonce bounds: too far ahead, no wrap near 2^64", test_nonce_bounds},
        {"fee replacement: bump, body, limit, in flight, velocity once, reopen", test_replacement},
        {"torn tail dropped, damage refused", test_torn_and_damaged},
        {NULL, NULL},
    };
    test_add_suite_with("ledger", suite_init, suite_clean, cases);
}
