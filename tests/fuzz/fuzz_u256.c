/* libFuzzer target for common/u256.
 *
 * The input is tried as decimal and as hex text, and each parser's verdict is
 * compared with an independent acceptance rule and a canonical round trip.
 * Then up to three values a, b, d are cut from the bytes and the arithmetic
 * is checked two ways: algebraic identities between the public functions,
 * and a deliberately simple reference (32-bit limbs, bit-by-bit long
 * division) for the 512-bit products and quotients. Any violation traps. */
#include "fuzz_check.h"
#include "u256.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define DEC_MAX "115792089237316195423570985008687907853269984665640564039457584007913129639935"


static int eq(const u256 *a, const u256 *b)
{
    return u256_cmp(a, b) == 0;
}

/* ---- reference 512-bit arithmetic on 32-bit limbs ----------------------- */

typedef struct {
    uint32_t l[16];
} ref512;

static void ref_from(ref512 *r, const u256 *a)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < 4; i++) {
        r->l[2 * i] = (uint32_t)a->w[i];
        r->l[2 * i + 1] = (uint32_t)(a->w[i] >> 32);
    }
}

/* Returns 0 and sets *out when r < 2^256, -1 otherwise. */
static int ref_to(u256 *out, const ref512 *r)
{
    for (size_t i = 8; i < 16; i++) {
        if (r->l[i])
            return -1;
    }
    for (size_t i = 0; i < 4; i++)
        out->w[i] = (uint64_t)r->l[2 * i] | ((uint64_t)r->l[2 * i + 1] << 32);
    return 0;
}

static void ref_mul(ref512 *r, const u256 *a, const u256 *b)
{
    ref512 x, y;
    ref_from(&x, a);
    ref_from(&y, b);
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < 8; i++) {
        uint64_t carry = 0;
        for (size_t j = 0; j < 8; j++) {
            uint64_t t = (uint64_t)x.l[i] * y.l[j] + r->l[i + j] + carry;
            r->l[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        r->l[i + 8] = (uint32_t)carry;
    }
}

static int ref_ge(const ref512 *a, const ref512 *b)
{
    for (size_t i = 16; i-- > 0;) {
        if (a->l[i] != b->l[i])
            return a->l[i] > b->l[i];
    }
    return 1;
}

static int ref_is_zero(const ref512 *a)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < 16; i++)
        acc |= a->l[i];
    return acc == 0;
}

/* Schoolbook binary long division, one bit at a time. d != 0, d < 2^256. */
static void ref_divmod(ref512 *q, ref512 *r, const ref512 *n, const ref512 *d)
{
    memset(q, 0, sizeof *q);
    memset(r, 0, sizeof *r);
    size_t top = 16; /* leading zero limbs of n contribute nothing */
    while (top > 0 && n->l[top - 1] == 0)
        top--;
    for (size_t bit = 32 * top; bit-- > 0;) {
        /* r = 2r + bit; r < d < 2^256 so nothing falls off the top. */
        uint32_t in = (n->l[bit / 32] >> (bit % 32)) & 1;
        for (size_t i = 16; i-- > 1;)
            r->l[i] = (r->l[i] << 1) | (r->l[i - 1] >> 31);
        r->l[0] = (r->l[0] << 1) | in;
        if (ref_ge(r, d)) {
            uint64_t borrow = 0;
            for (size_t i = 0; i < 16; i++) {
                uint64_t t = (uint64_t)r->l[i] - d->l[i] - borrow;
                r->l[i] = (uint32_t)t;
                borrow = (t >> 32) & 1;
            }
            q->l[bit / 32] |= (uint32_t)1 << (bit % 32);
        }
    }
}

/* ---- text ------------------------------------------------------------------ */

static void fuzz_dec(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    /* Independent statement of what must be accepted. */
    int valid = size >= 1 && size <= 78 && !(s[0] == '0' && size > 1);
    for (size_t i = 0; valid && i < size; i++)
        valid = s[i] >= '0' && s[i] <= '9';
    if (valid && size == 78)
        valid = memcmp(s, DEC_MAX, 78) <= 0;

    u256 v = U256_MAX, w;
    int rc = u256_from_dec(&v, s, size);
    CHECK(rc == (valid ? 0 : -1));
    if (rc != 0) {
        u256 max = U256_MAX;
        CHECK(eq(&v, &max));
        return;
    }
    char dbuf[U256_DEC_MAX], hbuf[U256_HEX_MAX];
    u256_to_dec(dbuf, &v);
    CHECK(strlen(dbuf) == size && memcmp(dbuf, s, size) == 0);
    CHECK(u256_from_dec_str(&w, dbuf) == 0 && eq(&w, &v));
    u256_to_hex(hbuf, &v);
    CHECK(u256_from_hex(&w, hbuf, strlen(hbuf)) == 0 && eq(&w, &v));
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void fuzz_hex(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t off = (size >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 2 : 0;
    size_t nd = size - off;
    int valid = nd >= 1 && nd <= 64;
    for (size_t i = off; valid && i < size; i++)
        valid = hex_val(s[i]) >= 0;

    u256 v = U256_ZERO, w;
    int rc = u256_from_hex(&v, s, size);
    CHECK(rc == (valid ? 0 : -1));
    if (rc != 0) {
        CHECK(u256_is_zero(&v));
        return;
    }
    /* Canonical form of the input: lower case, no leading zeros. */
    char want[U256_HEX_MAX] = "0x", hbuf[U256_HEX_MAX], dbuf[U256_DEC_MAX];
    size_t k = 2, i = off;
    while (i + 1 < size && s[i] == '0')
        i++;
    for (; i < size; i++)
        want[k++] = "0123456789abcdef"[hex_val(s[i])];
    want[k] = '\0';
    u256_to_hex(hbuf, &v);
    CHECK(strcmp(hbuf, want) == 0);
    u256_to_dec(dbuf, &v);
    CHECK(u256_from_dec(&w, dbuf, strlen(dbuf)) == 0 && eq(&w, &v));
}

/* ---- arithmetic -------------------------------------------------------------- */

/* Cuts the next value from the input: a length/mode byte, then up to 32
 * big-endian bytes. Odd modes complement the value (2^256-1 - x) so values
 * near the top are as easy to reach as small ones. */
static u256 take(const uint8_t **p, size_t *left)
{
    u256 v = U256_ZERO;
    if (*left == 0)
        return v;
    uint8_t c = **p;
    (*p)++;
    (*left)--;
    size_t n = c % 33;
    if (n > *left)
        n = *left;
    CHECK(u256_from_be(&v, *p, n) == 0);
    *p += n;
    *left -= n;
    if ((c / 33) & 1) {
        u256 max = U256_MAX;
        CHECK(u256_sub(&v, &max, &v) == 0);
    }
    return v;
}

static void check_add_sub(const u256 *a, const u256 *b)
{
    u256 s, t, max = U256_MAX;
    if (u256_add(&s, a, b) == 0) {
        CHECK(u256_sub(&t, &s, b) == 0 && eq(&t, a));
        CHECK(u256_sub(&t, &s, a) == 0 && eq(&t, b));
        CHECK(u256_cmp(&s, a) >= 0 && u256_cmp(&s, b) >= 0);
    } else {
        /* Overflow means b > MAX - a. */
        CHECK(u256_sub(&t, &max, a) == 0 && u256_cmp(&t, b) < 0);
    }
    int c = u256_cmp(a, b);
    CHECK(c == -u256_cmp(b, a));
    if (u256_sub(&s, a, b) == 0) {
        CHECK(c >= 0);
        CHECK(u256_add(&t, &s, b) == 0 && eq(&t, a));
        CHECK(u256_is_zero(&s) == (c == 0));
    } else {
        CHECK(c < 0);
    }
}

static void check_mul_div(const u256 *a, const u256 *b)
{
    ref512 p, rq, rr, rb;
    u256 m, q, r, t, x;
    ref_mul(&p, a, b);
    if (u256_mul(&m, a, b) == 0) {
        CHECK(ref_to(&x, &p) == 0 && eq(&x, &m));
        if (!u256_is_zero(b)) {
            CHECK(u256_divmod(&q, &r, &m, b) == 0);
            CHECK(eq(&q, a) && u256_is_zero(&r));
        }
    } else {
        CHECK(ref_to(&x, &p) != 0);
    }

    if (u256_is_zero(b)) {
        CHECK(u256_divmod(&q, &r, a, b) == -1);
        return;
    }
    CHECK(u256_divmod(&q, &r, a, b) == 0);
    CHECK(u256_cmp(&r, b) < 0);
    CHECK(u256_mul(&t, &q, b) == 0);
    CHECK(u256_add(&t, &t, &r) == 0 && eq(&t, a));
    ref512 ra;
    ref_from(&ra, a);
    ref_from(&rb, b);
    ref_divmod(&rq, &rr, &ra, &rb);
    CHECK(ref_to(&x, &rq) == 0 && eq(&x, &q));
    CHECK(ref_to(&x, &rr) == 0 && eq(&x, &r));
    /* One output at a time, and outputs aliasing inputs. */
    u256 q1, r1, aa = *a, bb = *b;
    CHECK(u256_divmod(&q1, NULL, a, b) == 0 && eq(&q1, &q));
    CHECK(u256_divmod(NULL, &r1, a, b) == 0 && eq(&r1, &r));
    CHECK(u256_divmod(&bb, &aa, &aa, &bb) == 0 && eq(&bb, &q) && eq(&aa, &r));
}

static void check_muldiv(const u256 *a, const u256 *b, const u256 *d)
{
    u256 f = U256_ONE, c = U256_ONE, x;
    int rf = u256_muldiv_floor(&f, a, b, d);
    int rc = u256_muldiv_ceil(&c, a, b, d);
    if (u256_is_zero(d)) {
        CHECK(rf == -1 && rc == -1);
        return;
    }
    ref512 p, rd, rq, rr;
    ref_mul(&p, a, b);
    ref_from(&rd, d);
    ref_divmod(&rq, &rr, &p, &rd);
    int exact = ref_is_zero(&rr);
    int fits = ref_to(&x, &rq) == 0;
    CHECK(rf == (fits ? 0 : -1));
    if (!fits) {
        u256 one = U256_ONE;
        CHECK(rc == -1 && eq(&f, &one) && eq(&c, &one));
        return;
    }
    CHECK(eq(&f, &x));
    u256 max = U256_MAX;
    if (!exact && eq(&f, &max)) {
        CHECK(rc == -1);
        return;
    }
    CHECK(rc == 0);
    /* floor <= ceil <= floor + 1, equal exactly when d divides a·b. */
    u256 f1;
    CHECK(u256_cmp(&f, &c) <= 0);
    CHECK(u256_add(&f1, &f, &(u256){{1, 0, 0, 0}}) == 0 || exact);
    if (exact)
        CHECK(eq(&f, &c));
    else
        CHECK(eq(&c, &f1));

    /* Commutes; a·d/d == a; when a·b fits, agrees with mul then divmod. */
    u256 g;
    CHECK(u256_muldiv_floor(&g, b, a, d) == 0 && eq(&g, &f));
    CHECK(u256_muldiv_floor(&g, a, d, d) == 0 && eq(&g, a));
    CHECK(u256_muldiv_ceil(&g, a, d, d) == 0 && eq(&g, a));
    u256 m, q, r;
    if (u256_mul(&m, a, b) == 0) {
        CHECK(u256_divmod(&q, &r, &m, d) == 0);
        CHECK(eq(&q, &f) && u256_is_zero(&r) == exact);
    }
}

static void fuzz_arith(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    u256 a = take(&p, &left);
    u256 b = take(&p, &left);
    u256 d = take(&p, &left);

    check_add_sub(&a, &b);
    check_mul_div(&a, &b);
    check_mul_div(&a, &d);
    check_muldiv(&a, &b, &d);

    uint8_t be[U256_BE_LEN];
    u256 x;
    u256_to_be32(be, &a);
    u256_from_be32(&x, be);
    CHECK(eq(&x, &a));

    /* 10^n by repeated multiplication by ten. */
    unsigned n = (unsigned)(b.w[0] % 80);
    u256 pw = U256_ZERO, ten = u256_from_u64(10), acc = U256_ONE;
    int rc = u256_pow10(&pw, n);
    CHECK(rc == (n <= U256_POW10_MAX ? 0 : -1));
    if (rc == 0) {
        for (unsigned i = 0; i < n; i++)
            CHECK(u256_mul(&acc, &acc, &ten) == 0);
        CHECK(eq(&acc, &pw));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dec(data, size);
    fuzz_hex(data, size);
    fuzz_arith(data, size);
    return 0;
}
