#include "u256.h"

#include "hex.h"

#include <string.h>

/* __extension__: -Wpedantic rejects __int128 in ISO C; gcc and clang have it. */
__extension__ typedef unsigned __int128 u128;

/* Decimal text is handled 19 digits at a time: 10^19 < 2^64. */
#define CHUNK_DIGITS 19
#define CHUNK_BASE UINT64_C(10000000000000000000)

static const uint64_t small_pow10[CHUNK_DIGITS + 1] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/* ---- limb helpers ------------------------------------------------------ */

/* Number of significant limbs in x[0..n): index of the top non-zero limb
 * plus one, 0 when all are zero. */
static size_t limbs_len(const uint64_t *x, size_t n)
{
    while (n > 0 && x[n - 1] == 0)
        n--;
    return n;
}

/* Count of leading zero bits of a non-zero limb. */
static unsigned clz64(uint64_t x)
{
    return (unsigned)__builtin_clzll(x);
}

/* out[0..8) = a · b, the full 512-bit product. */
static void mul_512(uint64_t out[8], const u256 *a, const u256 *b)
{
    memset(out, 0, 8 * sizeof out[0]);
    for (size_t i = 0; i < 4; i++) {
        uint64_t carry = 0;
        if (a->w[i] == 0)
            continue;
        for (size_t j = 0; j < 4; j++) {
            u128 t = (u128)a->w[i] * b->w[j] + out[i + j] + carry;
            out[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        out[i + 4] = carry;
    }
}

/* x[0..n) = x · m + add. Returns the limb carried out of the top. */
static uint64_t limbs_mul_small_add(uint64_t *x, size_t n, uint64_t m, uint64_t add)
{
    uint64_t carry = add;
    for (size_t i = 0; i < n; i++) {
        u128 t = (u128)x[i] * m + carry;
        x[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    return carry;
}

/* x[0..n) = floor(x / d), d != 0. Returns x mod d. */
static uint64_t limbs_div_small(uint64_t *x, size_t n, uint64_t d)
{
    uint64_t rem = 0;
    for (size_t i = n; i-- > 0;) {
        u128 cur = ((u128)rem << 64) | x[i];
        x[i] = (uint64_t)(cur / d);
        rem = (uint64_t)(cur % d);
    }
    return rem;
}

/* Knuth's algorithm D (TAOCP vol. 2, 4.3.1) on 64-bit limbs.
 * u[0..m): dividend, v[0..n): divisor with v[n-1] != 0, 1 <= n <= 4, m <= 8.
 * q[0..m): quotient (limbs at index >= m-n+1 are zeroed), r[0..n): remainder.
 * q and r must not overlap u or v. */
static void limbs_divmod(uint64_t *q, uint64_t *r,
                         const uint64_t *u, size_t m, const uint64_t *v, size_t n)
{
    uint64_t un[9], vn[4];

    memset(q, 0, m * sizeof q[0]);
    memset(r, 0, n * sizeof r[0]);
    if (m < n) {
        memcpy(r, u, m * sizeof u[0]);
        return;
    }
    if (n == 1) {
        memcpy(q, u, m * sizeof u[0]);
        r[0] = limbs_div_small(q, m, v[0]);
        return;
    }

    /* D1: normalise so that the divisor's top bit is set; the dividend
     * gains one limb. Shifting by 64 - s would be undefined for s == 0. */
    unsigned s = clz64(v[n - 1]);
    if (s == 0) {
        memcpy(vn, v, n * sizeof v[0]);
        memcpy(un, u, m * sizeof u[0]);
        un[m] = 0;
    } else {
        for (size_t i = n - 1; i > 0; i--)
            vn[i] = (v[i] << s) | (v[i - 1] >> (64 - s));
        vn[0] = v[0] << s;
        un[m] = u[m - 1] >> (64 - s);
        for (size_t i = m - 1; i > 0; i--)
            un[i] = (u[i] << s) | (u[i - 1] >> (64 - s));
        un[0] = u[0] << s;
    }

    const u128 base = (u128)1 << 64;
    const uint64_t vtop = vn[n - 1], vnext = vn[n - 2];
    for (size_t j = m - n + 1; j-- > 0;) {
        /* D3: estimate qhat from the top two dividend limbs; after the
         * correction loop qhat is at most one too large and < 2^64. */
        u128 num = ((u128)un[j + n] << 64) | un[j + n - 1];
        u128 qhat = num / vtop;
        u128 rhat = num - qhat * vtop;
        while (qhat >= base ||
               qhat * vnext > ((rhat << 64) | un[j + n - 2])) {
            qhat--;
            rhat += vtop;
            if (rhat >= base)
                break;
        }

        /* D4: un[j..j+n] -= qhat · vn. */
        uint64_t mul_carry = 0, borrow = 0;
        for (size_t i = 0; i < n; i++) {
            u128 p = qhat * vn[i] + mul_carry;
            mul_carry = (uint64_t)(p >> 64);
            uint64_t plo = (uint64_t)p;
            uint64_t t = un[i + j] - plo;
            uint64_t b1 = un[i + j] < plo;
            un[i + j] = t - borrow;
            borrow = b1 | (t < borrow);
        }
        uint64_t t = un[j + n] - mul_carry;
        uint64_t b1 = un[j + n] < mul_carry;
        un[j + n] = t - borrow;
        borrow = b1 | (t < borrow);

        /* D5/D6: if that went negative qhat was one too large: add back. */
        if (borrow) {
            qhat--;
            uint64_t carry = 0;
            for (size_t i = 0; i < n; i++) {
                u128 sum = (u128)un[i + j] + vn[i] + carry;
                un[i + j] = (uint64_t)sum;
                carry = (uint64_t)(sum >> 64);
            }
            un[j + n] += carry; /* wraps back to the true (zero) top limb */
        }
        q[j] = (uint64_t)qhat;
    }

    /* D8: the remainder is un[0..n) shifted back. */
    if (s == 0) {
        memcpy(r, un, n * sizeof un[0]);
    } else {
        for (size_t i = 0; i < n; i++)
            r[i] = (un[i] >> s) | (un[i + 1] << (64 - s));
    }
}

/* ---- conversions -------------------------------------------------------- */

u256 u256_from_u64(uint64_t v)
{
    u256 r = {{v, 0, 0, 0}};
    return r;
}

int u256_to_u64(uint64_t *out, const u256 *a)
{
    if (a->w[1] | a->w[2] | a->w[3])
        return -1;
    *out = a->w[0];
    return 0;
}

/* ---- arithmetic --------------------------------------------------------- */

int u256_add(u256 *out, const u256 *a, const u256 *b)
{
    u256 r;
    uint64_t carry = 0;
    for (size_t i = 0; i < 4; i++) {
        uint64_t t = a->w[i] + b->w[i];
        uint64_t c1 = t < a->w[i];
        r.w[i] = t + carry;
        carry = c1 | (r.w[i] < t);
    }
    if (carry)
        return -1;
    *out = r;
    return 0;
}

int u256_sub(u256 *out, const u256 *a, const u256 *b)
{
    u256 r;
    uint64_t borrow = 0;
    for (size_t i = 0; i < 4; i++) {
        uint64_t t = a->w[i] - b->w[i];
        uint64_t b1 = a->w[i] < b->w[i];
        r.w[i] = t - borrow;
        borrow = b1 | (t < borrow);
    }
    if (borrow)
        return -1;
    *out = r;
    return 0;
}

int u256_mul(u256 *out, const u256 *a, const u256 *b)
{
    uint64_t p[8];
    mul_512(p, a, b);
    if (p[4] | p[5] | p[6] | p[7])
        return -1;
    memcpy(out->w, p, sizeof out->w);
    return 0;
}

int u256_divmod(u256 *q, u256 *r, const u256 *a, const u256 *b)
{
    size_t n = limbs_len(b->w, 4);
    if (n == 0)
        return -1;
    uint64_t qq[4] = {0, 0, 0, 0}, rr[4] = {0, 0, 0, 0};
    limbs_divmod(qq, rr, a->w, limbs_len(a->w, 4), b->w, n);
    if (q)
        memcpy(q->w, qq, sizeof q->w);
    if (r)
        memcpy(r->w, rr, sizeof r->w);
    return 0;
}

/* Shared body of the muldiv functions: q = floor(a·b/d) and whether the
 * remainder is non-zero. Returns -1 when d is zero or q >= 2^256. */
static int muldiv(u256 *q, int *inexact, const u256 *a, const u256 *b, const u256 *d)
{
    size_t n = limbs_len(d->w, 4);
    if (n == 0)
        return -1;
    uint64_t p[8];
    mul_512(p, a, b);
    /* floor(p / d) < 2^256 exactly when the top half of p is below d. */
    u256 hi;
    memcpy(hi.w, p + 4, sizeof hi.w);
    if (u256_cmp(&hi, d) >= 0)
        return -1;
    size_t m = limbs_len(p, 8);
    uint64_t qq[8], rr[4] = {0, 0, 0, 0};
    if (m == 0) {
        memset(q->w, 0, sizeof q->w);
        *inexact = 0;
        return 0;
    }
    limbs_divmod(qq, rr, p, m, d->w, n);
    /* The top-half check guarantees qq[4..m) are zero. */
    memset(q->w, 0, sizeof q->w);
    memcpy(q->w, qq, (m < 4 ? m : 4) * sizeof qq[0]);
    *inexact = (rr[0] | rr[1] | rr[2] | rr[3]) != 0;
    return 0;
}

int u256_muldiv_floor(u256 *out, const u256 *a, const u256 *b, const u256 *d)
{
    u256 q;
    int inexact;
    if (muldiv(&q, &inexact, a, b, d) != 0)
        return -1;
    *out = q;
    return 0;
}

int u256_muldiv_ceil(u256 *out, const u256 *a, const u256 *b, const u256 *d)
{
    u256 q;
    int inexact;
    if (muldiv(&q, &inexact, a, b, d) != 0)
        return -1;
    if (inexact) {
        u256 one = U256_ONE;
        if (u256_add(&q, &q, &one) != 0)
            return -1;
    }
    *out = q;
    return 0;
}

int u256_cmp(const u256 *a, const u256 *b)
{
    for (size_t i = 4; i-- > 0;) {
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    }
    return 0;
}

int u256_is_zero(const u256 *a)
{
    return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

int u256_pow10(u256 *out, unsigned n)
{
    if (n > U256_POW10_MAX)
        return -1;
    u256 r = U256_ONE;
    /* 10^n = (10^19)^(n/19) · 10^(n%19); no step can overflow since the
     * partial products are all <= 10^77 < 2^256. */
    for (unsigned i = 0; i < n / CHUNK_DIGITS; i++)
        (void)limbs_mul_small_add(r.w, 4, CHUNK_BASE, 0);
    (void)limbs_mul_small_add(r.w, 4, small_pow10[n % CHUNK_DIGITS], 0);
    *out = r;
    return 0;
}

/* ---- text ---------------------------------------------------------------- */

int u256_from_dec(u256 *out, const char *s, size_t len)
{
    /* 2^256-1 has 78 digits; anything longer overflows or is non-canonical. */
    if (len == 0 || len > U256_DEC_MAX - 1)
        return -1;
    if (s[0] == '0' && len > 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
    }

    u256 r = U256_ZERO;
    size_t i = 0;
    /* The first chunk takes the odd digits so the rest are whole chunks. */
    size_t take = len % CHUNK_DIGITS;
    if (take == 0)
        take = CHUNK_DIGITS;
    while (i < len) {
        uint64_t chunk = 0;
        for (size_t k = 0; k < take; k++)
            chunk = chunk * 10 + (uint64_t)(s[i + k] - '0');
        if (limbs_mul_small_add(r.w, 4, small_pow10[take], chunk) != 0)
            return -1;
        i += take;
        take = CHUNK_DIGITS;
    }
    *out = r;
    return 0;
}

int u256_from_dec_str(u256 *out, const char *s)
{
    return u256_from_dec(out, s, strlen(s));
}

void u256_to_dec(char out[U256_DEC_MAX], const u256 *a)
{
    /* Peel off base-10^19 chunks, least significant first. */
    uint64_t x[4], chunks[5];
    size_t nchunks = 0;
    memcpy(x, a->w, sizeof x);
    size_t n = limbs_len(x, 4);
    do {
        chunks[nchunks++] = limbs_div_small(x, n, CHUNK_BASE);
        n = limbs_len(x, n);
    } while (n > 0);

    /* Top chunk without leading zeros, the others zero-padded to 19. */
    char *p = out;
    char tmp[CHUNK_DIGITS];
    uint64_t top = chunks[nchunks - 1];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + top % 10);
        top /= 10;
    } while (top);
    while (k > 0)
        *p++ = tmp[--k];
    for (size_t c = nchunks - 1; c-- > 0;) {
        uint64_t v = chunks[c];
        for (size_t d = CHUNK_DIGITS; d-- > 0;) {
            p[d] = (char)('0' + v % 10);
            v /= 10;
        }
        p += CHUNK_DIGITS;
    }
    *p = '\0';
}

int u256_from_hex(u256 *out, const char *s, size_t len)
{
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        len -= 2;
    }
    if (len == 0 || len > 64)
        return -1;
    u256 r = U256_ZERO;
    for (size_t i = 0; i < len; i++) {
        int v = hex_digit_value(s[i]);
        if (v < 0)
            return -1;
        size_t bit = 4 * (len - 1 - i);
        r.w[bit / 64] |= (uint64_t)v << (bit % 64);
    }
    *out = r;
    return 0;
}

void u256_to_hex(char out[U256_HEX_MAX], const u256 *a)
{
    static const char digits[] = "0123456789abcdef";
    char *p = out;
    *p++ = '0';
    *p++ = 'x';
    int started = 0;
    for (size_t nib = 64; nib-- > 0;) {
        unsigned v = (unsigned)(a->w[nib / 16] >> (4 * (nib % 16))) & 0xf;
        if (v == 0 && !started && nib != 0)
            continue;
        started = 1;
        *p++ = digits[v];
    }
    *p = '\0';
}

/* ---- bytes --------------------------------------------------------------- */

void u256_to_be32(uint8_t out[U256_BE_LEN], const u256 *a)
{
    for (size_t i = 0; i < 4; i++) {
        uint64_t w = a->w[3 - i];
        for (size_t k = 0; k < 8; k++)
            out[8 * i + k] = (uint8_t)(w >> (56 - 8 * k));
    }
}

void u256_from_be32(u256 *out, const uint8_t in[U256_BE_LEN])
{
    u256 r;
    for (size_t i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (size_t k = 0; k < 8; k++)
            w = (w << 8) | in[8 * i + k];
        r.w[3 - i] = w;
    }
    *out = r;
}

int u256_from_be(u256 *out, const uint8_t *in, size_t len)
{
    if (len > U256_BE_LEN)
        return -1;
    uint8_t buf[U256_BE_LEN] = {0};
    if (len > 0)
        memcpy(buf + U256_BE_LEN - len, in, len);
    u256_from_be32(out, buf);
    return 0;
}
