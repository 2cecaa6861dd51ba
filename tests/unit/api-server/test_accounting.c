/* The money model: the worked example of DESIGN.md §2, fee shares, the
 * guards, and property tests over thousands of random sequences that
 * check every invariant after every step. */
#include "accounting.h"
#include "test_support.h"

#include <stdio.h>
#include <string.h>

/* For arithmetic the simulation knows cannot fail; a failure is a bug. */
#define MUST(x) CU_ASSERT_FATAL((x) == 0)

static u256 U(uint64_t v)
{
    return u256_from_u64(v);
}

static u256 D(const char *dec)
{
    u256 v = U256_ZERO;
    CU_ASSERT_FATAL(u256_from_dec_str(&v, dec) == 0);
    return v;
}

static int eq_dec(const u256 *v, const char *dec)
{
    char buf[U256_DEC_MAX];
    u256_to_dec(buf, v);
    if (strcmp(buf, dec) != 0) {
        fprintf(stderr, "\n  expected %s, got %s\n", dec, buf);
        return 0;
    }
    return 1;
}

/* USDC-like: 6 decimals; n whole tokens + micro base units. */
static u256 usdc(uint64_t whole, uint64_t micro)
{
    return U(whole * 1000000ull + micro);
}

static const acct_fees no_fees = {10000, 0};

static void test_worked_example_no_fees(void)
{
    acct_params p;
    acct_vault v;
    acct_position a, b;
    u256 minted, idx, bal, reserved, burned, rest;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&a);
    acct_position_init(&b);
    CU_ASSERT_TRUE(eq_dec(&p.scale, "1000000000000"));

    /* A opens the vault at 1.0, then 5% yield: index 1.05. */
    u256 amt = usdc(1000, 0);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &a, &minted, &p, 0, &amt), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&minted, "1000000000000000000000"));
    acct_accrual r;
    u256 observed = usdc(1050, 0);
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 1, &observed, &no_fees), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&v.current_index, "1050000000000000000"));

    /* B deposits 1000 at 1.05 -> 952.380952380952380952 shares (rounded down). */
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &b, &minted, &p, 2, &amt), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&minted, "952380952380952380952"));
    CU_ASSERT_TRUE(eq_dec(&b.weighted_entry_index, "1050000000000000000"));

    /* Index to 1.10: observed so that nav*1e30/S >= 1.1e18, the least such
     * amount of base units. */
    u256 k = D("1000000000000000000000000000000"), target = D("1100000000000000000"), nav;
    CU_ASSERT_FATAL(u256_muldiv_ceil(&nav, &target, &v.total_shares, &k) == 0);
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 3, &nav, &no_fees), ACCT_OK);
    CU_ASSERT_EQUAL(acct_index(&idx, &v, &p, 3), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&idx, "1100000000195121951"));
    /* B's balance: 1047.619047 USDC (DESIGN.md: 1047.619...). */
    CU_ASSERT_EQUAL(acct_available(&bal, &v, &b, &p, 3), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&bal, "1047619047"));

    /* Withdraw 500: burn 454.545454... shares, rounded up. */
    u256 w = usdc(500, 0);
    CU_ASSERT_EQUAL_FATAL(acct_reserve(&b, &reserved, &v, &p, 4, &w), ACCT_OK);
    CU_ASSERT_EQUAL_FATAL(acct_execute_withdrawal(&v, &b, &burned, &p, 4, &w, &reserved), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&burned, "454545454464825640007"));
    CU_ASSERT_TRUE(eq_dec(&b.shares, "497835497916126740945"));
    CU_ASSERT_TRUE(u256_is_zero(&b.reserved_shares));
    /* Worth 547.619... */
    CU_ASSERT_EQUAL(acct_available(&rest, &v, &b, &p, 4), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&rest, "547619047"));
    CU_ASSERT_TRUE(eq_dec(&v.withdrawals_payable, "500000000"));
    CU_ASSERT_EQUAL(acct_payout(&v, &w), ACCT_OK);
    CU_ASSERT_TRUE(u256_is_zero(&v.withdrawals_payable));
}

/* At an exact index 1.10 the figures are DESIGN.md's to the last digit. */
static void test_worked_example_exact_index(void)
{
    acct_params p;
    acct_vault v;
    acct_position b;
    u256 minted, reserved, burned;
    CU_ASSERT_FATAL(acct_params_init(&p, 18, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&b);
    /* An 18-decimal token, B alone: deposit 1000 at 1.0 then +10%. */
    u256 amt = D("1000000000000000000000");
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &b, &minted, &p, 0, &amt), ACCT_OK);
    acct_accrual r;
    u256 obs = D("1100000000000000000000");
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 1, &obs, &no_fees), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&v.current_index, "1100000000000000000"));
    u256 w = D("500000000000000000000");
    CU_ASSERT_EQUAL_FATAL(acct_reserve(&b, &reserved, &v, &p, 2, &w), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&reserved, "454545454545454545455"));   /* 500/1.1, up */
    CU_ASSERT_EQUAL_FATAL(acct_execute_withdrawal(&v, &b, &burned, &p, 2, &w, &reserved), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&burned, "454545454545454545455"));
    CU_ASSERT_TRUE(eq_dec(&b.shares, "545454545454545454545"));
}

static void test_fees_mint_shares(void)
{
    acct_params p;
    acct_vault v;
    acct_position user, client, platform;
    u256 minted, idx;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&user);
    acct_position_init(&client);
    acct_position_init(&platform);
    u256 amt = usdc(1000, 0);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &user, &minted, &p, 0, &amt), ACCT_OK);
    /* Defaults of the original design: users 90%, platform 1%, client 9%. */
    acct_fees fees = {9000, 100};
    acct_accrual r;
    u256 obs = usdc(1100, 0);
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 10, &obs, &fees), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&r.gross, "100000000"));
    CU_ASSERT_TRUE(eq_dec(&r.user_part, "90000000"));
    CU_ASSERT_TRUE(eq_dec(&r.platform_part, "1000000"));
    CU_ASSERT_TRUE(eq_dec(&r.client_part, "9000000"));
    /* End users' index rises by the net 9% only. */
    CU_ASSERT_EQUAL(acct_index(&idx, &v, &p, 10), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&idx, "1090000000000000000"));
    CU_ASSERT_TRUE(eq_dec(&r.client_fee_shares, "8256880733944954129"));
    CU_ASSERT_TRUE(eq_dec(&r.platform_fee_shares, "917431192660550458"));
    client.shares = r.client_fee_shares;
    platform.shares = r.platform_fee_shares;
    u256 cv, pv, uv;
    CU_ASSERT_EQUAL(acct_shares_value(&uv, &v, &p, 10, &user.shares), ACCT_OK);
    CU_ASSERT_EQUAL(acct_shares_value(&cv, &v, &p, 10, &client.shares), ACCT_OK);
    CU_ASSERT_EQUAL(acct_shares_value(&pv, &v, &p, 10, &platform.shares), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&uv, "1090000000"));
    CU_ASSERT_TRUE(eq_dec(&cv, "9000000"));
    CU_ASSERT_TRUE(eq_dec(&pv, "999999"));   /* 1 USDC less rounding (fee shares minted down) */
    /* Σ shares = total. */
    u256 sum;
    CU_ASSERT(u256_add(&sum, &user.shares, &client.shares) == 0 && u256_add(&sum, &sum, &platform.shares) == 0);
    CU_ASSERT_EQUAL(u256_cmp(&sum, &v.total_shares), 0);

    acct_fees bad = {9500, 600};
    CU_ASSERT_EQUAL(acct_accrue(&v, &r, &p, 11, &obs, &bad), ACCT_ERR_BAD_PARAM);
}

static void test_guards(void)
{
    acct_params p;
    acct_vault v;
    acct_position a, b;
    u256 minted, reserved, zero = U256_ZERO;
    CU_ASSERT_EQUAL(acct_params_init(&p, 19, NULL, 0), ACCT_ERR_BAD_PARAM);
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&a);
    acct_position_init(&b);
    u256 small = usdc(0, 999999);
    CU_ASSERT_EQUAL(acct_deposit(&v, &a, &minted, &p, 0, &small), ACCT_ERR_BELOW_MIN_FIRST);
    CU_ASSERT_EQUAL(acct_deposit(&v, &a, &minted, &p, 0, &zero), ACCT_ERR_ZERO_AMOUNT);
    CU_ASSERT_TRUE(u256_is_zero(&v.total_shares));   /* nothing changed */
    u256 one = usdc(1, 0);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &a, &minted, &p, 0, &one), ACCT_OK);
    /* Inflation attempt: a huge donation; a later 1-base-unit deposit
     * still mints shares, and the donor cannot take more than they own. */
    acct_accrual r;
    u256 obs = usdc(1000000001, 0);
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 1, &obs, &no_fees), ACCT_OK);
    u256 tiny = U(1);
    CU_ASSERT_EQUAL(acct_deposit(&v, &b, &minted, &p, 2, &tiny), ACCT_OK);
    CU_ASSERT_FALSE(u256_is_zero(&minted));
    u256 avail;
    CU_ASSERT_EQUAL(acct_available(&avail, &v, &b, &p, 2), ACCT_OK);
    CU_ASSERT(u256_cmp(&avail, &tiny) <= 0);   /* never more than deposited */
    /* Over-withdrawal refused and changes nothing. */
    acct_position before = b;
    u256 two = U(2);
    CU_ASSERT_EQUAL(acct_reserve(&b, &reserved, &v, &p, 2, &two), ACCT_ERR_INSUFFICIENT);
    CU_ASSERT_EQUAL(memcmp(&before, &b, sizeof b), 0);
    /* Loss: accrual refuses, RealizeLoss lowers the index. */
    acct_vault vb = v;
    u256 low = usdc(500000000, 0), loss, idx_before = v.current_index;
    CU_ASSERT_EQUAL(acct_accrue(&v, &r, &p, 3, &low, &no_fees), ACCT_ERR_LOSS);
    CU_ASSERT_EQUAL(memcmp(&vb, &v, sizeof v), 0);
    CU_ASSERT_EQUAL(acct_realize_loss(&v, &loss, &p, 3, &low), ACCT_OK);
    CU_ASSERT(u256_cmp(&v.current_index, &idx_before) < 0);
    u256 high = usdc(2000000000, 0);
    CU_ASSERT_EQUAL(acct_realize_loss(&v, &loss, &p, 4, &high), ACCT_ERR_NO_LOSS);
    /* Payout beyond what is owed. */
    CU_ASSERT_EQUAL(acct_payout(&v, &one), ACCT_ERR_INSUFFICIENT);
}

static void test_linear_release_defeats_sandwich(void)
{
    acct_params p;
    acct_vault v;
    acct_position longterm, sandwich;
    u256 minted, reserved, burned, avail;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 86400) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&longterm);
    acct_position_init(&sandwich);
    u256 amt = usdc(1000, 0);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &longterm, &minted, &p, 0, &amt), ACCT_OK);
    /* Enters just before a 10% accrual and leaves right after. */
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &sandwich, &minted, &p, 100, &amt), ACCT_OK);
    acct_accrual r;
    u256 obs = usdc(2200, 0);
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 101, &obs, &no_fees), ACCT_OK);
    CU_ASSERT_EQUAL(acct_available(&avail, &v, &sandwich, &p, 101), ACCT_OK);
    CU_ASSERT(u256_cmp(&avail, &amt) <= 0);    /* nothing extra at the accrual's second */
    /* One second later: at most its share of one second of release. */
    u256 later, bound, extra;
    CU_ASSERT_EQUAL(acct_available(&later, &v, &sandwich, &p, 102), ACCT_OK);
    CU_ASSERT_FATAL(u256_sub(&extra, &later, &amt) == 0);
    bound = U(200000000 / 86400 + 1);
    CU_ASSERT(u256_cmp(&extra, &bound) <= 0);
    CU_ASSERT_EQUAL_FATAL(acct_reserve(&sandwich, &reserved, &v, &p, 101, &avail), ACCT_OK);
    CU_ASSERT_EQUAL_FATAL(acct_execute_withdrawal(&v, &sandwich, &burned, &p, 101, &avail, &reserved), ACCT_OK);
    /* The long-term holder gets the released profit over the day. */
    u256 half, full;
    CU_ASSERT_EQUAL(acct_available(&half, &v, &longterm, &p, 101 + 43200), ACCT_OK);
    CU_ASSERT_EQUAL(acct_available(&full, &v, &longterm, &p, 101 + 86400), ACCT_OK);
    CU_ASSERT(u256_cmp(&half, &full) < 0);
    CU_ASSERT(u256_cmp(&full, &obs) <= 0);
    u256 idx_mid, idx_end;
    CU_ASSERT_EQUAL(acct_index(&idx_mid, &v, &p, 101 + 43200), ACCT_OK);
    CU_ASSERT_EQUAL(acct_index(&idx_end, &v, &p, 101 + 86400), ACCT_OK);
    CU_ASSERT(u256_cmp(&idx_mid, &idx_end) < 0);
}

static void test_two_users_keep_their_own_yield(void)
{
    acct_params p;
    acct_vault v;
    acct_position early, late;
    u256 minted, ve, vl;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&early);
    acct_position_init(&late);
    u256 amt = usdc(1000, 0);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &early, &minted, &p, 0, &amt), ACCT_OK);
    acct_accrual r;
    u256 obs = usdc(1100, 0);   /* +10% for early only */
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 1, &obs, &no_fees), ACCT_OK);
    CU_ASSERT_EQUAL_FATAL(acct_deposit(&v, &late, &minted, &p, 2, &amt), ACCT_OK);
    obs = usdc(2310, 0);        /* +10% on 2100 */
    CU_ASSERT_EQUAL_FATAL(acct_accrue(&v, &r, &p, 3, &obs, &no_fees), ACCT_OK);
    CU_ASSERT_EQUAL(acct_available(&ve, &v, &early, &p, 3), ACCT_OK);
    CU_ASSERT_EQUAL(acct_available(&vl, &v, &late, &p, 3), ACCT_OK);
    CU_ASSERT_TRUE(eq_dec(&ve, "1210000000"));   /* 1000 * 1.1 * 1.1 */
    CU_ASSERT(eq_dec(&vl, "1099999999") || eq_dec(&vl, "1100000000")); /* 1000 * 1.1, floor */
}

/* ---- property tests ---------------------------------------------------- */

static uint64_t prng_state;

static uint64_t prng(void)
{
    uint64_t x = prng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    prng_state = x;
    return x;
}

/* Amounts spread over many magnitudes (1 base unit to ~10^13 tokens). */
static u256 rand_amount(const acct_params *p)
{
    u256 base, mult, out;
    unsigned exp = (unsigned)(prng() % (p->decimals + 14));
    MUST(u256_pow10(&base, exp));
    mult = U(1 + prng() % 999);
    if (u256_mul(&out, &base, &mult) != 0)
        out = base;
    return out;
}

/* A random fraction in [0, 1] of x. */
static u256 rand_part(const u256 *x)
{
    u256 num = U(prng() % 1001), den = U(1000), out = U256_ZERO;
    MUST(u256_muldiv_floor(&out, x, &num, &den));
    return out;
}

#define NUSERS 6
#define NPOS (NUSERS + 2)   /* users, then client and platform revenue */

typedef struct {
    acct_params p;
    acct_vault v;
    acct_position pos[NPOS];
    u256 pending_amount[NPOS], pending_reserved[NPOS];
    u256 deposited, gross, paid;
    u256 last_index;
    int64_t now;
    acct_fees fees;
    unsigned failures;
} sim;

static void sim_fail(sim *s, const char *what)
{
    if (s->failures++ < 5)
        fprintf(stderr, "\n  invariant broken: %s (seed state %llu)\n", what,
                (unsigned long long)prng_state);
    CU_FAIL("accounting invariant");
}

static void sim_check(sim *s)
{
    u256 sum = U256_ZERO, values = U256_ZERO, nav, idx, books, expect, tmp;
    for (int i = 0; i < NPOS; i++) {
        if (u256_add(&sum, &sum, &s->pos[i].shares) != 0)
            sim_fail(s, "share sum overflow");
        if (u256_cmp(&s->pos[i].reserved_shares, &s->pos[i].shares) > 0)
            sim_fail(s, "reserved > shares");
        u256 val;
        if (acct_shares_value(&val, &s->v, &s->p, s->now, &s->pos[i].shares) != ACCT_OK)
            sim_fail(s, "value");
        MUST(u256_add(&values, &values, &val));
    }
    if (u256_cmp(&sum, &s->v.total_shares) != 0)
        sim_fail(s, "sum of shares != total_shares");
    if (acct_nav(&nav, &s->v, &s->p, s->now) != ACCT_OK)
        sim_fail(s, "nav inconsistent");
    if (u256_cmp(&values, &nav) > 0)
        sim_fail(s, "holders could take more than the vault holds");
    if (acct_index(&idx, &s->v, &s->p, s->now) != ACCT_OK)
        sim_fail(s, "index");
    if (u256_cmp(&s->v.current_index, &s->last_index) < 0)
        sim_fail(s, "recorded index fell");
    if (!u256_is_zero(&s->v.total_shares) && u256_cmp(&idx, &s->v.current_index) < 0)
        sim_fail(s, "live index below recorded index");
    s->last_index = s->v.current_index;
    /* Conservation: the books are deposits + yield - payouts, exactly. */
    MUST(u256_add(&books, &s->v.idle_assets, &s->v.deployed_assets));
    if (u256_add(&tmp, &s->deposited, &s->gross) != 0 || u256_sub(&expect, &tmp, &s->paid) != 0 ||
        u256_cmp(&books, &expect) != 0)
        sim_fail(s, "books != deposits + yield - payouts");
}

static void sim_step(sim *s)
{
    int who = (int)(prng() % NUSERS);
    u256 out, amt;
    acct_err e;
    s->now += (int64_t)(prng() % 5000);
    switch (prng() % 8) {
    case 0:
    case 1:
        amt = rand_amount(&s->p);
        e = acct_deposit(&s->v, &s->pos[who], &out, &s->p, s->now, &amt);
        if (e == ACCT_OK) {
            MUST(u256_add(&s->deposited, &s->deposited, &amt));
        } else if (e != ACCT_ERR_BELOW_MIN_FIRST && e != ACCT_ERR_DUST && e != ACCT_ERR_OVERFLOW)
            sim_fail(s, acct_strerror(e));
        break;
    case 2:
        if (!u256_is_zero(&s->pending_amount[who]))
            break;
        if (acct_available(&out, &s->v, &s->pos[who], &s->p, s->now) != ACCT_OK) {
            sim_fail(s, "available");
            break;
        }
        amt = prng() % 4 == 0 ? out : rand_part(&out);
        if (u256_is_zero(&amt))
            break;
        e = acct_reserve(&s->pos[who], &s->pending_reserved[who], &s->v, &s->p, s->now, &amt);
        if (e == ACCT_OK)
            s->pending_amount[who] = amt;
        else
            sim_fail(s, acct_strerror(e));
        break;
    case 3:
        if (u256_is_zero(&s->pending_amount[who]))
            break;
        e = acct_execute_withdrawal(&s->v, &s->pos[who], &out, &s->p, s->now,
                                    &s->pending_amount[who], &s->pending_reserved[who]);
        if (e == ACCT_OK) {
            s->pending_amount[who] = U256_ZERO;
        } else if (e == ACCT_ERR_RESERVATION_SHORT) {
            sim_fail(s, "reservation short without a loss");
        } else {
            sim_fail(s, acct_strerror(e));
        }
        break;
    case 4:
        if (u256_is_zero(&s->pending_amount[who]) || prng() % 3)
            break;
        if (acct_release(&s->pos[who], &s->pending_reserved[who]) != ACCT_OK)
            sim_fail(s, "release");
        s->pending_amount[who] = U256_ZERO;
        break;
    case 5: {
        u256 books, gain, obs;
        acct_accrual r;
        MUST(u256_add(&books, &s->v.idle_assets, &s->v.deployed_assets));
        gain = prng() % 10 == 0 ? rand_amount(&s->p) : rand_part(&books);
        u256 tenth = U(10);
        MUST(u256_divmod(&gain, NULL, &gain, &tenth));
        if (u256_add(&obs, &books, &gain) != 0)
            break;
        e = acct_accrue(&s->v, &r, &s->p, s->now, &obs, &s->fees);
        if (e == ACCT_ERR_OVERFLOW)
            break;
        if (e != ACCT_OK) {
            sim_fail(s, acct_strerror(e));
            break;
        }
        MUST(u256_add(&s->gross, &s->gross, &r.gross));
        MUST(u256_add(&s->pos[NUSERS].shares, &s->pos[NUSERS].shares, &r.client_fee_shares));
        MUST(u256_add(&s->pos[NUSERS + 1].shares, &s->pos[NUSERS + 1].shares, &r.platform_fee_shares));
        break;
    }
    case 6:
        if (!u256_is_zero(&s->v.withdrawals_payable)) {
            u256 need, have = s->v.idle_assets;
            if (u256_cmp(&have, &s->v.withdrawals_payable) < 0) {
                MUST(u256_sub(&need, &s->v.withdrawals_payable, &have));
                if (acct_unstake(&s->v, &need) != ACCT_OK) {
                    sim_fail(s, "unstake for payout");
                    break;
                }
            }
            amt = s->v.withdrawals_payable;
            if (acct_payout(&s->v, &amt) != ACCT_OK) {
                sim_fail(s, "payout");
            } else {
                MUST(u256_add(&s->paid, &s->paid, &amt));
            }
        }
        break;
    case 7: {
        u256 free_idle;
        if (u256_sub(&free_idle, &s->v.idle_assets, &s->v.withdrawals_payable) == 0) {
            amt = rand_part(&free_idle);
            if (!u256_is_zero(&amt) && acct_stake(&s->v, &amt) != ACCT_OK)
                sim_fail(s, "stake");
        }
        break;
    }
    }
    sim_check(s);
}

static void test_property_random_sequences(void)
{
    static const unsigned decimals[] = {6, 18, 8, 0};
    unsigned runs = 0;
    for (uint64_t seed = 1; seed <= 400; seed++) {
        sim s;
        memset(&s, 0, sizeof s);
        prng_state = seed * 0x9E3779B97F4A7C15ull;
        unsigned dec = decimals[seed % 4];
        uint64_t unlock = seed % 3 == 0 ? 0 : (prng() % 100000);
        CU_ASSERT_FATAL(acct_params_init(&s.p, dec, NULL, unlock) == ACCT_OK);
        acct_vault_init(&s.v);
        for (int i = 0; i < NPOS; i++)
            acct_position_init(&s.pos[i]);
        s.fees.end_user_yield_bps = (uint32_t)(prng() % 10001);
        s.fees.platform_fee_bps = (uint32_t)(prng() % (10001 - s.fees.end_user_yield_bps));
        s.last_index = s.v.current_index;
        for (int step = 0; step < 250 && s.failures == 0; step++)
            sim_step(&s);
        /* Everyone leaves: the vault pays out at most what it holds. */
        for (int i = 0; i < NPOS && s.failures == 0; i++) {
            u256 avail, res, burned;
            if (!u256_is_zero(&s.pending_amount[i])) {
                if (acct_release(&s.pos[i], &s.pending_reserved[i]) != ACCT_OK)
                    sim_fail(&s, "final release");
                s.pending_amount[i] = U256_ZERO;
            }
            if (acct_available(&avail, &s.v, &s.pos[i], &s.p, s.now) != ACCT_OK || u256_is_zero(&avail))
                continue;
            if (acct_reserve(&s.pos[i], &res, &s.v, &s.p, s.now, &avail) != ACCT_OK ||
                acct_execute_withdrawal(&s.v, &s.pos[i], &burned, &s.p, s.now, &avail, &res) != ACCT_OK)
                sim_fail(&s, "final withdrawal");
            sim_check(&s);
        }
        u256 total_in;
        MUST(u256_add(&total_in, &s.deposited, &s.gross));
        u256 owed_and_paid;
        MUST(u256_add(&owed_and_paid, &s.paid, &s.v.withdrawals_payable));
        if (u256_cmp(&owed_and_paid, &total_in) > 0)
            sim_fail(&s, "paid out more than came in");
        runs++;
    }
    CU_ASSERT_EQUAL(runs, 400);
}

/* Nobody gains from rounding: deposit then withdraw everything at once
 * never returns more than was put in, whatever the vault's state. */
static void test_property_roundtrip_never_gains(void)
{
    unsigned checked = 0;
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        acct_params p;
        acct_vault v;
        acct_position seedpos, probe;
        u256 minted, avail, res, burned;
        prng_state = seed * 0xD1B54A32D192ED03ull;
        unsigned dec = (unsigned)(prng() % 19);
        CU_ASSERT_FATAL(acct_params_init(&p, dec, NULL, prng() % 2 ? 0 : 3600) == ACCT_OK);
        acct_vault_init(&v);
        acct_position_init(&seedpos);
        acct_position_init(&probe);
        u256 first = rand_amount(&p);
        if (acct_deposit(&v, &seedpos, &minted, &p, 0, &first) != ACCT_OK)
            continue;
        acct_accrual r;
        u256 books, obs, gain = rand_amount(&p);
        MUST(u256_add(&books, &v.idle_assets, &v.deployed_assets));
        if (u256_add(&obs, &books, &gain) == 0) {
            acct_fees f = {(uint32_t)(prng() % 10001), 0};
            acct_err ae = acct_accrue(&v, &r, &p, 1, &obs, &f);
            CU_ASSERT(ae == ACCT_OK || ae == ACCT_ERR_OVERFLOW);
        }
        int64_t t = (int64_t)(prng() % 7200);
        u256 amt = rand_amount(&p);
        if (acct_deposit(&v, &probe, &minted, &p, t, &amt) != ACCT_OK)
            continue;
        CU_ASSERT_EQUAL_FATAL(acct_available(&avail, &v, &probe, &p, t), ACCT_OK);
        if (u256_cmp(&avail, &amt) > 0) {
            fprintf(stderr, "\n  seed %llu: deposit and withdraw gains\n", (unsigned long long)seed);
            CU_FAIL("round trip gained");
        }
        if (!u256_is_zero(&avail)) {
            CU_ASSERT_EQUAL(acct_reserve(&probe, &res, &v, &p, t, &avail), ACCT_OK);
            CU_ASSERT_EQUAL(acct_execute_withdrawal(&v, &probe, &burned, &p, t, &avail, &res), ACCT_OK);
        }
        checked++;
    }
    CU_ASSERT(checked > 2000);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"worked_example_no_fees", test_worked_example_no_fees},
        {"worked_example_exact_index", test_worked_example_exact_index},
        {"fees_mint_shares", test_fees_mint_shares},
        {"guards", test_guards},
        {"linear_release_defeats_sandwich", test_linear_release_defeats_sandwich},
        {"two_users_keep_their_own_yield", test_two_users_keep_their_own_yield},
        {"property_random_sequences", test_property_random_sequences},
        {"property_roundtrip_never_gains", test_property_roundtrip_never_gains},
        {NULL, NULL},
    };
    test_add_suite("accounting", cases);
}
