/* The money paths of the ledger services, at the accounting level: the
 * engine calls each service makes, in the same order, with exact figures
 * (the gRPC tests check the same figures end to end), and
 * vault_store_split, which books accrued gains and realized losses over
 * protocol allocations. */
#include "accounting.h"
#include "test_support.h"
#include "vault_store.h"

#include <stdio.h>
#include <string.h>

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

static int eq(const u256 *v, const char *dec)
{
    char buf[U256_DEC_MAX];
    u256_to_dec(buf, v);
    if (strcmp(buf, dec) != 0) {
        fprintf(stderr, "\n  expected %s, got %s\n", dec, buf);
        return 0;
    }
    return 1;
}

/* AccrueYield with default fees (platform 100 bps, end users 9000):
 * the fee shares of svc_operations.c's revenue accounts, and the gain
 * booked as idle when nothing is allocated (NAV and index unchanged by
 * that move). */
static void test_paths_accrual_default_fees(void)
{
    acct_params p;
    acct_vault v;
    acct_position a;
    u256 minted, index_before, index_after;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&a);
    u256 amt = U(1000000000);
    CU_ASSERT_FATAL(acct_deposit(&v, &a, &minted, &p, 0, &amt) == ACCT_OK);
    acct_accrual r;
    acct_fees fees = {9000, 100};
    u256 observed = U(1050000000);
    CU_ASSERT_FATAL(acct_accrue(&v, &r, &p, 1, &observed, &fees) == ACCT_OK);
    CU_ASSERT_TRUE(eq(&r.gross, "50000000"));
    CU_ASSERT_TRUE(eq(&r.user_part, "45000000"));
    CU_ASSERT_TRUE(eq(&r.platform_part, "500000"));
    CU_ASSERT_TRUE(eq(&r.client_part, "4500000"));
    /* floor(5e6 * 1000e18 / (1000e6 + 45e6)), split by the parts */
    CU_ASSERT_TRUE(eq(&r.platform_fee_shares, "478468899521531100"));
    CU_ASSERT_TRUE(eq(&r.client_fee_shares, "4306220095693779904"));
    CU_ASSERT_TRUE(eq(&v.current_index, "1045000000000000000"));
    CU_ASSERT_TRUE(eq(&v.deployed_assets, "50000000"));
    /* Nothing allocated: the service books the gain as idle. */
    CU_ASSERT_EQUAL(acct_index(&index_before, &v, &p, 1), ACCT_OK);
    CU_ASSERT_FATAL(u256_sub(&v.deployed_assets, &v.deployed_assets, &r.gross) == 0);
    CU_ASSERT_FATAL(u256_add(&v.idle_assets, &v.idle_assets, &r.gross) == 0);
    CU_ASSERT_EQUAL(acct_index(&index_after, &v, &p, 1), ACCT_OK);
    CU_ASSERT_EQUAL(u256_cmp(&index_before, &index_after), 0);
    CU_ASSERT_TRUE(eq(&v.idle_assets, "1050000000"));
}

/* RequestWithdrawal -> the job's burn -> FailWithdrawal after the burn:
 * the compensation of svc_withdrawal.c (payout of the debt, then a credit
 * at today's price, then the position's history restored). */
static void test_paths_withdrawal_compensation(void)
{
    acct_params p;
    acct_vault v;
    acct_position a, b;
    u256 minted, reserved, burned, reminted;
    CU_ASSERT_FATAL(acct_params_init(&p, 6, NULL, 0) == ACCT_OK);
    acct_vault_init(&v);
    acct_position_init(&a);
    acct_position_init(&b);
    u256 thousand = U(1000000000), three = U(300000000);
    acct_fees none = {10000, 0};
    acct_accrual r;
    CU_ASSERT_FATAL(acct_deposit(&v, &a, &minted, &p, 0, &thousand) == ACCT_OK);
    CU_ASSERT_FATAL(acct_deposit(&v, &b, &minted, &p, 0, &thousand) == ACCT_OK);
    CU_ASSERT_FATAL(acct_reserve(&b, &reserved, &v, &p, 0, &three) == ACCT_OK);
    CU_ASSERT_TRUE(eq(&reserved, "300000000000000000000"));
    CU_ASSERT_FATAL(acct_execute_withdrawal(&v, &b, &burned, &p, 0, &three, &reserved) == ACCT_OK);
    CU_ASSERT_TRUE(eq(&burned, "300000000000000000000"));
    CU_ASSERT_TRUE(eq(&v.withdrawals_payable, "300000000"));
    CU_ASSERT_TRUE(eq(&b.total_withdrawn, "300000000"));
    /* +10 % on what the shares own (1700), after the burn */
    u256 observed = U(2000000000u + 170000000u);
    CU_ASSERT_FATAL(acct_accrue(&v, &r, &p, 1, &observed, &none) == ACCT_OK);
    u256 nav_before;
    CU_ASSERT_EQUAL(acct_nav(&nav_before, &v, &p, 1), ACCT_OK);
    CU_ASSERT_TRUE(eq(&nav_before, "1870000000"));
    /* compensation */
    CU_ASSERT_FATAL(acct_payout(&v, &three) == ACCT_OK);
    CU_ASSERT_FATAL(acct_deposit(&v, &b, &reminted, &p, 1, &three) == ACCT_OK);
    CU_ASSERT_FATAL(u256_sub(&b.total_deposited, &b.total_deposited, &three) == 0);
    CU_ASSERT_FATAL(u256_sub(&b.total_withdrawn, &b.total_withdrawn, &three) == 0);
    /* floor(300e6 * 1700e18 / 1870e6): fewer shares than burned, same value */
    CU_ASSERT_TRUE(eq(&reminted, "272727272727272727272"));
    CU_ASSERT_TRUE(eq(&v.withdrawals_payable, "0"));
    CU_ASSERT_TRUE(eq(&v.idle_assets, "2000000000"));
    CU_ASSERT_TRUE(eq(&b.total_deposited, "1000000000"));
    CU_ASSERT_TRUE(eq(&b.total_withdrawn, "0"));
    u256 value;
    CU_ASSERT_EQUAL(acct_shares_value(&value, &v, &p, 1, &reminted), ACCT_OK);
    CU_ASSERT_TRUE(eq(&value, "299999999"));  /* rounded in the vault's favour */
    u256 sum;
    CU_ASSERT_FATAL(u256_add(&sum, &a.shares, &b.shares) == 0);
    CU_ASSERT_EQUAL(u256_cmp(&sum, &v.total_shares), 0);
}

static void split_case(const uint64_t *bal, size_t n, uint64_t delta, bool gain, acct_err want, const uint64_t *parts)
{
    u256 b[8], out[8], d = U(delta);
    for (size_t i = 0; i < n; i++)
        b[i] = U(bal[i]);
    CU_ASSERT_EQUAL_FATAL(vault_store_split(out, b, n, &d, gain), want);
    if (want != ACCT_OK)
        return;
    u256 sum = U256_ZERO;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0;
        CU_ASSERT_EQUAL(u256_to_u64(&x, &out[i]), 0);
        CU_ASSERT_EQUAL(x, parts[i]);
        if (!gain)
            CU_ASSERT_TRUE(x <= bal[i]);
        CU_ASSERT_FATAL(u256_add(&sum, &sum, &out[i]) == 0);
    }
    CU_ASSERT_EQUAL(u256_cmp(&sum, &d), 0);
}

static void test_paths_split(void)
{
    split_case((const uint64_t[]){600, 300, 100}, 3, 10, true, ACCT_OK, (const uint64_t[]){6, 3, 1});
    split_case((const uint64_t[]){600, 300, 100}, 3, 7, true, ACCT_OK, (const uint64_t[]){5, 2, 0});
    split_case((const uint64_t[]){5, 1}, 2, 6, false, ACCT_OK, (const uint64_t[]){5, 1});
    split_case((const uint64_t[]){1, 1, 1}, 3, 2, false, ACCT_OK, (const uint64_t[]){1, 1, 0});
    split_case((const uint64_t[]){900000000}, 1, 109000000, false, ACCT_OK, (const uint64_t[]){109000000});
    split_case((const uint64_t[]){5, 1}, 2, 7, false, ACCT_ERR_INCONSISTENT, NULL);
    split_case((const uint64_t[]){0, 0}, 2, 1, true, ACCT_ERR_INCONSISTENT, NULL);
    split_case((const uint64_t[]){0}, 1, 0, true, ACCT_OK, (const uint64_t[]){0});
    /* 256-bit balances do not overflow the proportion */
    u256 big[2] = {D("100000000000000000000000000000000000000000000000000000000000000000000000000"),
                   D("50000000000000000000000000000000000000000000000000000000000000000000000000")};
    u256 out[2], d = D("30000000000000000000000000000000000000000000000000000000000000000000000000");
    CU_ASSERT_EQUAL(vault_store_split(out, big, 2, &d, true), ACCT_OK);
    CU_ASSERT_TRUE(eq(&out[0], "20000000000000000000000000000000000000000000000000000000000000000000000000"));
    CU_ASSERT_TRUE(eq(&out[1], "10000000000000000000000000000000000000000000000000000000000000000000000000"));
}

void test_register(void)
{
    static const test_case cases[] = {
        {"accrual_default_fees", test_paths_accrual_default_fees},
        {"withdrawal_compensation", test_paths_withdrawal_compensation},
        {"split", test_paths_split},
        {NULL, NULL},
    };
    test_add_suite("ledger_paths", cases);
}
