#include "u256.h"
#include "hex.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^256 - 1 and 2^256 in decimal. */
#define DEC_MAX "115792089237316195423570985008687907853269984665640564039457584007913129639935"
#define DEC_2_256 "115792089237316195423570985008687907853269984665640564039457584007913129639936"

/* A value no test computes: outputs are preset to it to check that failing
 * calls leave them alone. */
static const u256 sentinel = {{0x5e5e5e5e5e5e5e5eULL, 0x1111111111111111ULL,
                               0x2222222222222222ULL, 0x3333333333333333ULL}};

static int u256_eq(const u256 *a, const u256 *b)
{
    return memcmp(a->w, b->w, sizeof a->w) == 0;
}

static u256 dec(const char *s)
{
    u256 v = U256_ZERO;
    if (u256_from_dec_str(&v, s) != 0) {
        fprintf(stderr, "test_u256: bad literal %s\n", s);
        CU_FAIL_FATAL("bad decimal literal in test");
    }
    return v;
}

/* ---- vector file --------------------------------------------------------- */

#define MAX_TOKENS 16

typedef struct {
    const char *op;
    size_t line;
    char *tok[MAX_TOKENS];
    size_t ntok;
    int bad; /* set once a check on this line failed, to report the line */
} vec_line;

static void vec_fail(vec_line *v, const char *what)
{
    if (!v->bad)
        fprintf(stderr, "\nu256.txt:%zu (%s): %s\n", v->line, v->op ? v->op : "?", what);
    v->bad = 1;
}

#define VCHECK(v, cond)                      \
    do {                                     \
        int ok_ = !!(cond);                  \
        CU_ASSERT(ok_);                      \
        if (!ok_)                            \
            vec_fail((v), #cond);            \
    } while (0)

/* Reads the value at tokens i, i+1 ("DEC HEX") and checks every conversion
 * on it: dec -> hex text, hex -> dec text, the two parses agree, and the
 * 32-byte big-endian form round-trips and matches the hex digits. */
static u256 vec_value(vec_line *v, size_t i)
{
    u256 a = sentinel, b = sentinel, c;
    char dbuf[U256_DEC_MAX], hbuf[U256_HEX_MAX];
    const char *d = v->tok[i], *h = v->tok[i + 1];

    VCHECK(v, u256_from_dec(&a, d, strlen(d)) == 0);
    VCHECK(v, u256_from_hex(&b, h, strlen(h)) == 0);
    VCHECK(v, u256_eq(&a, &b));
    u256_to_hex(hbuf, &a);
    VCHECK(v, strcmp(hbuf, h) == 0);
    u256_to_dec(dbuf, &b);
    VCHECK(v, strcmp(dbuf, d) == 0);

    uint8_t be[U256_BE_LEN];
    char padded[2 * U256_BE_LEN + 1], want[2 * U256_BE_LEN + 1];
    u256_to_be32(be, &a);
    u256_from_be32(&c, be);
    VCHECK(v, u256_eq(&c, &a));
    hex_encode(padded, be, sizeof be);
    size_t hl = strlen(h + 2);
    VCHECK(v, hl >= 1 && hl <= 64);
    if (hl >= 1 && hl <= 64) {
        memset(want, '0', 64 - hl);
        memcpy(want + 64 - hl, h + 2, hl + 1);
        VCHECK(v, strcmp(padded, want) == 0);
    }
    uint64_t small;
    if (u256_to_u64(&small, &a) == 0) {
        c = u256_from_u64(small);
        VCHECK(v, u256_eq(&c, &a));
    } else {
        VCHECK(v, (a.w[1] | a.w[2] | a.w[3]) != 0);
    }
    return a;
}

/* Checks an operation's outcome against "ok R_DEC R_HEX" at token i:
 * on success the result printed both ways matches, on failure the output
 * still holds the sentinel. */
static void vec_result(vec_line *v, size_t i, int rc, const u256 *got)
{
    int ok = atoi(v->tok[i]);
    VCHECK(v, rc == (ok ? 0 : -1));
    if (!ok) {
        VCHECK(v, u256_eq(got, &sentinel));
        return;
    }
    char dbuf[U256_DEC_MAX], hbuf[U256_HEX_MAX];
    u256_to_dec(dbuf, got);
    u256_to_hex(hbuf, got);
    VCHECK(v, strcmp(dbuf, v->tok[i + 1]) == 0);
    VCHECK(v, strcmp(hbuf, v->tok[i + 2]) == 0);
}

static void vec_run(vec_line *v)
{
    const char *op = v->op;
    u256 a, b, d, r = sentinel, r2 = sentinel;

    if (strcmp(op, "add") == 0 || strcmp(op, "sub") == 0 || strcmp(op, "mul") == 0) {
        VCHECK(v, v->ntok == 8);
        if (v->ntok != 8)
            return;
        a = vec_value(v, 1);
        b = vec_value(v, 3);
        int rc = op[0] == 'a' ? u256_add(&r, &a, &b)
               : op[0] == 's' ? u256_sub(&r, &a, &b)
                              : u256_mul(&r, &a, &b);
        vec_result(v, 5, rc, &r);
        /* add and mul commute. */
        if (op[0] != 's') {
            int rc2 = op[0] == 'a' ? u256_add(&r2, &b, &a) : u256_mul(&r2, &b, &a);
            VCHECK(v, rc2 == rc);
            VCHECK(v, u256_eq(&r2, &r));
        }
        /* In-place: out aliasing the first operand. */
        u256 x = a;
        int rc3 = op[0] == 'a' ? u256_add(&x, &x, &b)
                : op[0] == 's' ? u256_sub(&x, &x, &b)
                               : u256_mul(&x, &x, &b);
        VCHECK(v, rc3 == rc);
        VCHECK(v, rc3 == 0 ? u256_eq(&x, &r) : u256_eq(&x, &a));
    } else if (strcmp(op, "divmod") == 0) {
        VCHECK(v, v->ntok == 10);
        if (v->ntok != 10)
            return;
        a = vec_value(v, 1);
        b = vec_value(v, 3);
        int rc = u256_divmod(&r, &r2, &a, &b);
        vec_result(v, 5, rc, &r);
        VCHECK(v, rc == 0 ? 1 : u256_eq(&r2, &sentinel));
        if (rc == 0) {
            char dbuf[U256_DEC_MAX], hbuf[U256_HEX_MAX];
            u256_to_dec(dbuf, &r2);
            u256_to_hex(hbuf, &r2);
            VCHECK(v, strcmp(dbuf, v->tok[8]) == 0);
            VCHECK(v, strcmp(hbuf, v->tok[9]) == 0);
            /* Each output alone, and outputs aliasing the inputs. */
            u256 q = sentinel, m = sentinel, x = a, y = b;
            VCHECK(v, u256_divmod(&q, NULL, &a, &b) == 0 && u256_eq(&q, &r));
            VCHECK(v, u256_divmod(NULL, &m, &a, &b) == 0 && u256_eq(&m, &r2));
            VCHECK(v, u256_divmod(&x, &y, &x, &y) == 0);
            VCHECK(v, u256_eq(&x, &r) && u256_eq(&y, &r2));
        }
    } else if (strcmp(op, "muldiv_floor") == 0 || strcmp(op, "muldiv_ceil") == 0) {
        VCHECK(v, v->ntok == 10);
        if (v->ntok != 10)
            return;
        int ceil = op[7] == 'c';
        a = vec_value(v, 1);
        b = vec_value(v, 3);
        d = vec_value(v, 5);
        int rc = ceil ? u256_muldiv_ceil(&r, &a, &b, &d) : u256_muldiv_floor(&r, &a, &b, &d);
        vec_result(v, 7, rc, &r);
        int rc2 = ceil ? u256_muldiv_ceil(&r2, &b, &a, &d) : u256_muldiv_floor(&r2, &b, &a, &d);
        VCHECK(v, rc2 == rc);
        VCHECK(v, u256_eq(&r2, &r));
    } else if (strcmp(op, "cmp") == 0) {
        VCHECK(v, v->ntok == 6);
        if (v->ntok != 6)
            return;
        a = vec_value(v, 1);
        b = vec_value(v, 3);
        int want = atoi(v->tok[5]);
        VCHECK(v, u256_cmp(&a, &b) == want);
        VCHECK(v, u256_cmp(&b, &a) == -want);
        VCHECK(v, u256_cmp(&a, &a) == 0);
        VCHECK(v, u256_is_zero(&a) == (strcmp(v->tok[1], "0") == 0));
    } else if (strcmp(op, "pow10") == 0) {
        VCHECK(v, v->ntok == 5);
        if (v->ntok != 5)
            return;
        int rc = u256_pow10(&r, (unsigned)atoi(v->tok[1]));
        vec_result(v, 2, rc, &r);
    } else if (strcmp(op, "hex") == 0) {
        VCHECK(v, v->ntok == 4);
        if (v->ntok != 4)
            return;
        a = vec_value(v, 2);
        VCHECK(v, u256_from_hex(&r, v->tok[1], strlen(v->tok[1])) == 0);
        VCHECK(v, u256_eq(&r, &a));
    } else {
        vec_fail(v, "unknown op");
        CU_FAIL("unknown op in u256.txt");
    }
}

/* Runs every line of u256.txt whose op is `op` (all lines when NULL).
 * Returns the number of lines run. */
static size_t vec_file_run(const char *op)
{
    size_t len, count = 0, lineno = 0;
    char *buf = test_read_file(test_vector_path("u256.txt"), &len);
    if (!buf)
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        vec_line v = {.line = lineno};
        char *ts = NULL;
        for (char *t = strtok_r(line, " ", &ts); t; t = strtok_r(NULL, " ", &ts)) {
            if (v.ntok == MAX_TOKENS) {
                vec_fail(&v, "too many tokens");
                break;
            }
            v.tok[v.ntok++] = t;
        }
        v.op = v.tok[0];
        if (op && strcmp(v.op, op) != 0)
            continue;
        vec_run(&v);
        count++;
    }
    free(buf);
    return count;
}

static void test_vectors_add(void) { CU_ASSERT(vec_file_run("add") >= 500); }
static void test_vectors_sub(void) { CU_ASSERT(vec_file_run("sub") >= 500); }
static void test_vectors_mul(void) { CU_ASSERT(vec_file_run("mul") >= 500); }
static void test_vectors_divmod(void) { CU_ASSERT(vec_file_run("divmod") >= 500); }
static void test_vectors_muldiv_floor(void) { CU_ASSERT(vec_file_run("muldiv_floor") >= 500); }
static void test_vectors_muldiv_ceil(void) { CU_ASSERT(vec_file_run("muldiv_ceil") >= 500); }
static void test_vectors_cmp(void) { CU_ASSERT(vec_file_run("cmp") >= 300); }
static void test_vectors_pow10(void) { CU_ASSERT(vec_file_run("pow10") == 80); }
static void test_vectors_hex(void) { CU_ASSERT(vec_file_run("hex") >= 100); }

/* ---- hand-written cases ---------------------------------------------------- */

static void test_dec_bad_input(void)
{
    static const char *const bad[] = {
        "", "-1", "+1", " 1", "1 ", "01", "00", "007", "1a", "a1", "0x10", "0X10", "1.0",
        "1e3", "1_000", "١", /* Arabic-Indic digit one, UTF-8 */
        DEC_2_256,
        /* 78 digits above 2^256-1 */
        "115792089237316195423570985008687907853269984665640564039457584007913129639937",
        "200000000000000000000000000000000000000000000000000000000000000000000000000000",
        "999999999999999999999999999999999999999999999999999999999999999999999999999999",
        /* 79 digits */
        "1000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0115792089237316195423570985008687907853269984665640564039457584007913129639935",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u256 out = sentinel;
        int rc = u256_from_dec_str(&out, bad[i]);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT(u256_eq(&out, &sentinel));
        out = sentinel;
        CU_ASSERT_EQUAL(u256_from_dec(&out, bad[i], strlen(bad[i])), -1);
        CU_ASSERT(u256_eq(&out, &sentinel));
        if (rc != -1)
            fprintf(stderr, "\naccepted bad decimal \"%s\"\n", bad[i]);
    }
    u256 out = sentinel;
    /* Embedded NUL when the length is given. */
    CU_ASSERT_EQUAL(u256_from_dec(&out, "1\0", 2), -1);
    CU_ASSERT_EQUAL(u256_from_dec(&out, "12\0003", 4), -1);
    CU_ASSERT_EQUAL(u256_from_dec(&out, "\0", 1), -1);
    /* Empty by length, with or without a pointer. */
    CU_ASSERT_EQUAL(u256_from_dec(&out, "5", 0), -1);
    CU_ASSERT_EQUAL(u256_from_dec(&out, NULL, 0), -1);
    CU_ASSERT(u256_eq(&out, &sentinel));
    /* Every non-digit byte is rejected, alone and after a digit. */
    for (int c = 0; c < 256; c++) {
        if (c >= '0' && c <= '9')
            continue;
        char s[2] = {'7', (char)c};
        CU_ASSERT_EQUAL(u256_from_dec(&out, s + 1, 1), -1);
        CU_ASSERT_EQUAL(u256_from_dec(&out, s, 2), -1);
    }
    CU_ASSERT(u256_eq(&out, &sentinel));
}

static void test_dec_good_input(void)
{
    u256 out, max = U256_MAX;
    char buf[U256_DEC_MAX];
    CU_ASSERT_EQUAL(u256_from_dec_str(&out, "0"), 0);
    CU_ASSERT(u256_is_zero(&out));
    CU_ASSERT_EQUAL(u256_from_dec_str(&out, DEC_MAX), 0);
    CU_ASSERT(u256_eq(&out, &max));
    u256_to_dec(buf, &out);
    CU_ASSERT_STRING_EQUAL(buf, DEC_MAX);
    CU_ASSERT_EQUAL(strlen(buf), U256_DEC_MAX - 1);
    /* The length bounds the text: trailing bytes are not looked at. */
    CU_ASSERT_EQUAL(u256_from_dec(&out, "12345xyz", 5), 0);
    CU_ASSERT(out.w[0] == 12345 && !out.w[1] && !out.w[2] && !out.w[3]);
    CU_ASSERT_EQUAL(u256_from_dec(&out, "0.5", 1), 0);
    CU_ASSERT(u256_is_zero(&out));
    /* Chunk boundaries: 19, 20, 38, 39 digits. */
    static const char *const good[] = {
        "9999999999999999999", "10000000000000000000", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999999999999999999",
        "100000000000000000000000000000000000000", "340282366920938463463374607431768211456",
        "1", "10", "100000000000000000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CU_ASSERT_EQUAL(u256_from_dec_str(&out, good[i]), 0);
        u256_to_dec(buf, &out);
        CU_ASSERT_STRING_EQUAL(buf, good[i]);
    }
    u256 v = u256_from_u64(UINT64_MAX);
    u256 one = U256_ONE;
    CU_ASSERT_EQUAL(u256_add(&v, &v, &one), 0);
    u256_to_dec(buf, &v);
    CU_ASSERT_STRING_EQUAL(buf, "18446744073709551616");
}

static void test_hex_input(void)
{
    static const char *const bad[] = {
        "", "0x", "0X", "0xg", "g", "0x 1", " 0x1", "0x1 ", "-0x1", "+1", "0x-1", "x1",
        "00x1", "0x0x1", "1h", "0xx1",
        /* 65 digits, even when they are zeros */
        "10000000000000000000000000000000000000000000000000000000000000000",
        "0x10000000000000000000000000000000000000000000000000000000000000000",
        "0x00000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        u256 out = sentinel;
        CU_ASSERT_EQUAL(u256_from_hex(&out, bad[i], strlen(bad[i])), -1);
        CU_ASSERT(u256_eq(&out, &sentinel));
    }
    u256 out = sentinel;
    CU_ASSERT_EQUAL(u256_from_hex(&out, "0x1\0", 4), -1);
    CU_ASSERT_EQUAL(u256_from_hex(&out, NULL, 0), -1);
    CU_ASSERT(u256_eq(&out, &sentinel));

    u256 max = U256_MAX;
    char buf[U256_HEX_MAX];
    const char *f64 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    CU_ASSERT_EQUAL(u256_from_hex(&out, f64, 64), 0);
    CU_ASSERT(u256_eq(&out, &max));
    u256_to_hex(buf, &out);
    CU_ASSERT_EQUAL(strlen(buf), U256_HEX_MAX - 1);
    CU_ASSERT_EQUAL(strncmp(buf, "0x", 2), 0);
    CU_ASSERT_STRING_EQUAL(buf + 2, f64);
    CU_ASSERT_EQUAL(u256_from_hex(&out, "0X0000000000000000000000000000000000000000000000000000000000000000", 66), 0);
    CU_ASSERT(u256_is_zero(&out));
    u256_to_hex(buf, &out);
    CU_ASSERT_STRING_EQUAL(buf, "0x0");
    CU_ASSERT_EQUAL(u256_from_hex(&out, "0", 1), 0);
    CU_ASSERT(u256_is_zero(&out));
    CU_ASSERT_EQUAL(u256_from_hex(&out, "0xDeadBeef", 10), 0);
    CU_ASSERT(out.w[0] == 0xdeadbeefULL && !out.w[1] && !out.w[2] && !out.w[3]);
    u256_to_hex(buf, &out);
    CU_ASSERT_STRING_EQUAL(buf, "0xdeadbeef");
    CU_ASSERT_EQUAL(u256_from_hex(&out, "0x10000000000000000", 19), 0);
    CU_ASSERT(out.w[0] == 0 && out.w[1] == 1 && !out.w[2] && !out.w[3]);
}

static void test_bytes(void)
{
    uint8_t be[U256_BE_LEN], in[33];
    u256 v, w;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i + 1);
    u256_from_be32(&v, in);
    CU_ASSERT_EQUAL(v.w[3], 0x0102030405060708ULL);
    CU_ASSERT_EQUAL(v.w[0], 0x191a1b1c1d1e1f20ULL);
    u256_to_be32(be, &v);
    CU_ASSERT_EQUAL(memcmp(be, in, 32), 0);
    CU_ASSERT_EQUAL(u256_from_be(&w, in, 32), 0);
    CU_ASSERT(u256_eq(&w, &v));
    CU_ASSERT_EQUAL(u256_from_be(&w, in, 3), 0);
    CU_ASSERT(w.w[0] == 0x010203 && !w.w[1] && !w.w[2] && !w.w[3]);
    CU_ASSERT_EQUAL(u256_from_be(&w, in, 9), 0);
    CU_ASSERT(w.w[0] == 0x0203040506070809ULL && w.w[1] == 1 && !w.w[2] && !w.w[3]);
    CU_ASSERT_EQUAL(u256_from_be(&w, NULL, 0), 0);
    CU_ASSERT(u256_is_zero(&w));
    w = sentinel;
    CU_ASSERT_EQUAL(u256_from_be(&w, in, 33), -1);
    CU_ASSERT(u256_eq(&w, &sentinel));
}

static void test_u64(void)
{
    uint64_t x = 7;
    u256 v = u256_from_u64(UINT64_MAX);
    CU_ASSERT_EQUAL(u256_to_u64(&x, &v), 0);
    CU_ASSERT_EQUAL(x, UINT64_MAX);
    v.w[2] = 1;
    x = 7;
    CU_ASSERT_EQUAL(u256_to_u64(&x, &v), -1);
    CU_ASSERT_EQUAL(x, 7);
    v = u256_from_u64(0);
    CU_ASSERT(u256_is_zero(&v));
}

static void test_arith_edges(void)
{
    u256 max = U256_MAX, one = U256_ONE, zero = U256_ZERO, r = sentinel, q, m;
    CU_ASSERT_EQUAL(u256_add(&r, &max, &one), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    CU_ASSERT_EQUAL(u256_sub(&r, &zero, &one), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    CU_ASSERT_EQUAL(u256_mul(&r, &max, &max), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    CU_ASSERT_EQUAL(u256_divmod(&q, &m, &max, &zero), -1);
    CU_ASSERT_EQUAL(u256_divmod(NULL, NULL, &max, &one), 0);
    CU_ASSERT_EQUAL(u256_muldiv_floor(&r, &max, &max, &zero), -1);
    CU_ASSERT_EQUAL(u256_muldiv_ceil(&r, &one, &one, &zero), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    /* a·b/d with a·b >= 2^256 but a result that fits. */
    CU_ASSERT_EQUAL(u256_muldiv_floor(&r, &max, &max, &max), 0);
    CU_ASSERT(u256_eq(&r, &max));
    CU_ASSERT_EQUAL(u256_muldiv_ceil(&r, &max, &max, &max), 0);
    CU_ASSERT(u256_eq(&r, &max));
    /* floor = 2^256-1 with remainder 1: only ceil overflows. */
    u256 m1 = max, m2;
    CU_ASSERT_EQUAL(u256_sub(&m1, &max, &one), 0);
    m2 = m1;
    CU_ASSERT_EQUAL(u256_sub(&m2, &m2, &one), 0);
    r = sentinel;
    CU_ASSERT_EQUAL(u256_muldiv_floor(&r, &m1, &m1, &m2), 0);
    CU_ASSERT(u256_eq(&r, &max));
    r = sentinel;
    CU_ASSERT_EQUAL(u256_muldiv_ceil(&r, &m1, &m1, &m2), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    /* pow10 bounds. */
    CU_ASSERT_EQUAL(u256_pow10(&r, U256_POW10_MAX + 1), -1);
    CU_ASSERT(u256_eq(&r, &sentinel));
    CU_ASSERT_EQUAL(u256_pow10(&r, 1000), -1);
    CU_ASSERT_EQUAL(u256_pow10(&r, 0), 0);
    CU_ASSERT(u256_eq(&r, &one));
}

/* DESIGN.md §2's worked example, in base units (USDC: 6 decimals, so
 * scale = 10^12; WAD = 10^18). */
static void test_money_example(void)
{
    u256 wad, scale, amount, idx, shares, t, burn, bal;
    char buf[U256_DEC_MAX];
    CU_ASSERT_EQUAL(u256_pow10(&wad, 18), 0);
    CU_ASSERT_EQUAL(u256_pow10(&scale, 12), 0);

    /* Deposit 1000 USDC at index 1.05: shares = floor(amount·scale·WAD / index). */
    amount = u256_from_u64(1000000000ULL);
    idx = u256_from_u64(1050000000000000000ULL);
    CU_ASSERT_EQUAL(u256_mul(&t, &amount, &scale), 0);
    CU_ASSERT_EQUAL(u256_muldiv_floor(&shares, &t, &wad, &idx), 0);
    u256_to_dec(buf, &shares);
    CU_ASSERT_STRING_EQUAL(buf, "952380952380952380952");

    /* Index 1.10: balance = floor(shares·index / (WAD·scale)) = 1047.619047 USDC. */
    idx = u256_from_u64(1100000000000000000ULL);
    u256 ws;
    CU_ASSERT_EQUAL(u256_mul(&ws, &wad, &scale), 0);
    CU_ASSERT_EQUAL(u256_muldiv_floor(&bal, &shares, &idx, &ws), 0);
    u256_to_dec(buf, &bal);
    CU_ASSERT_STRING_EQUAL(buf, "1047619047");

    /* Withdraw 500 USDC: burn ceil(amount·scale·WAD / index), rounded up. */
    amount = u256_from_u64(500000000ULL);
    CU_ASSERT_EQUAL(u256_mul(&t, &amount, &scale), 0);
    CU_ASSERT_EQUAL(u256_muldiv_ceil(&burn, &t, &wad, &idx), 0);
    u256_to_dec(buf, &burn);
    CU_ASSERT_STRING_EQUAL(buf, "454545454545454545455");
    CU_ASSERT_EQUAL(u256_muldiv_floor(&t, &t, &wad, &idx), 0);
    CU_ASSERT_EQUAL(u256_sub(&t, &burn, &t), 0);
    CU_ASSERT(u256_eq(&t, &(u256){{1, 0, 0, 0}}));

    CU_ASSERT_EQUAL(u256_sub(&shares, &shares, &burn), 0);
    u256_to_dec(buf, &shares);
    CU_ASSERT_STRING_EQUAL(buf, "497835497835497835497");
    CU_ASSERT_EQUAL(u256_muldiv_floor(&bal, &shares, &idx, &ws), 0);
    u256_to_dec(buf, &bal);
    CU_ASSERT_STRING_EQUAL(buf, "547619047");
}

/* Division cases chosen to hit Knuth D's rare add-back step (D6): these
 * make the two-limb estimate of the quotient digit one too large. */
static void test_divmod_addback(void)
{
    static const char *const cases[][4] = {
        /* a, b, floor(a/b), a mod b; found by simulating algorithm D */
        {"115792089237316195411016781537914546325938688186146169670753141214564247928833",
         "3138550867693340381917894711603833208069624466305726808063",
         "36893488147419103227",
         "3138550867693340381577612344682894744753823811463635009532"},
        {"57896044618658097724339695975117315454136429995775145620229485705279314067457",
         "340282366920938463463374607431768211457",
         "170141183460469231768580791863303208958",
         "340282366920938463454151235394913435651"},
        {"57896044618658097714924043372037294308893169411345053691252567705657205063679",
         "57896044618658097714924043372037294309063310594805522922975031637336234393599",
         "0",
         "57896044618658097714924043372037294308893169411345053691252567705657205063679"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        u256 a = dec(cases[i][0]), b = dec(cases[i][1]), q, r;
        u256 wq = dec(cases[i][2]), wr = dec(cases[i][3]);
        CU_ASSERT_EQUAL(u256_divmod(&q, &r, &a, &b), 0);
        CU_ASSERT(u256_eq(&q, &wq));
        CU_ASSERT(u256_eq(&r, &wr));
    }
}

void test_register(void)
{
    static const test_case cases[] = {
        {"vectors_add", test_vectors_add},
        {"vectors_sub", test_vectors_sub},
        {"vectors_mul", test_vectors_mul},
        {"vectors_divmod", test_vectors_divmod},
        {"vectors_muldiv_floor", test_vectors_muldiv_floor},
        {"vectors_muldiv_ceil", test_vectors_muldiv_ceil},
        {"vectors_cmp", test_vectors_cmp},
        {"vectors_pow10", test_vectors_pow10},
        {"vectors_hex", test_vectors_hex},
        {"dec_bad_input", test_dec_bad_input},
        {"dec_good_input", test_dec_good_input},
        {"hex_input", test_hex_input},
        {"bytes", test_bytes},
        {"u64", test_u64},
        {"arith_edges", test_arith_edges},
        {"money_example", test_money_example},
        {"divmod_addback", test_divmod_addback},
        {NULL, NULL},
    };
    test_add_suite("u256", cases);
}
