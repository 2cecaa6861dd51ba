#include "evm_breaker.h"
#include "test_support.h"

#include <stdint.h>

/* The clock is whatever the test passes: no sleeping. */
static void test_breaker_opens_after_threshold(void)
{
    evm_breaker b;
    int64_t t = 1000;
    evm_breaker_init(&b, 5, 60000);
    CU_ASSERT_EQUAL(b.state, EVM_BREAKER_CLOSED);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(evm_breaker_admit(&b, t));
        CU_ASSERT_EQUAL(evm_breaker_record(&b, false, t), EVM_BREAKER_CLOSED);
    }
    CU_ASSERT_EQUAL(b.failures, 4);
    /* a success resets the count */
    CU_ASSERT_TRUE(evm_breaker_admit(&b, t));
    CU_ASSERT_EQUAL(evm_breaker_record(&b, true, t), EVM_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(b.failures, 0);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(evm_breaker_admit(&b, t));
        CU_ASSERT_EQUAL(evm_breaker_record(&b, false, t), EVM_BREAKER_CLOSED);
    }
    CU_ASSERT_TRUE(evm_breaker_admit(&b, t));
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, t), EVM_BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.times_opened, 1);
    /* open: refused through the whole cool-down */
    CU_ASSERT_FALSE(evm_breaker_admit(&b, t));
    CU_ASSERT_FALSE(evm_breaker_admit(&b, t + 59999));
    CU_ASSERT_EQUAL(b.state, EVM_BREAKER_OPEN);
}

static void test_breaker_half_open_probe(void)
{
    evm_breaker b;
    evm_breaker_init(&b, 2, 1000);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 0));
    (void)evm_breaker_record(&b, false, 0);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 0));
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 10), EVM_BREAKER_OPEN);
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 1009));
    /* cool-down over: exactly one probe */
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 1010));
    CU_ASSERT_EQUAL(b.state, EVM_BREAKER_HALF_OPEN);
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 1011));
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 99999));
    /* probe fails: open again, a new cool-down from now */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 1500), EVM_BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.times_opened, 2);
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 2499));
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 2500));
    /* probe succeeds: closed, counting from zero */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, true, 2600), EVM_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(b.failures, 0);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 2601));
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 2601)); /* closed: everyone goes */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 2602), EVM_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 2602), EVM_BREAKER_OPEN);
}

static void test_breaker_cancel_and_stragglers(void)
{
    evm_breaker b;
    evm_breaker_init(&b, 1, 100);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 0));
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 0)); /* a second caller while closed */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 0), EVM_BREAKER_OPEN);
    /* the second one finishing late changes nothing while open */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, true, 1), EVM_BREAKER_OPEN);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 100));
    /* the probe was never sent: the slot is free again */
    evm_breaker_cancel(&b);
    CU_ASSERT_EQUAL(b.state, EVM_BREAKER_HALF_OPEN);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 100));
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 100));
    /* a clock that goes backwards keeps an open breaker open */
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 5000), EVM_BREAKER_OPEN);
    CU_ASSERT_FALSE(evm_breaker_admit(&b, 10));
    /* threshold 0 behaves as 1, negative cool-down as 0 */
    evm_breaker_init(&b, 0, -5);
    CU_ASSERT_EQUAL(b.threshold, 1);
    CU_ASSERT_EQUAL(b.cooldown_ms, 0);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 7));
    CU_ASSERT_EQUAL(evm_breaker_record(&b, false, 7), EVM_BREAKER_OPEN);
    CU_ASSERT_TRUE(evm_breaker_admit(&b, 7));
    CU_ASSERT_STRING_EQUAL(evm_breaker_state_name(b.state), "half_open");
}

/* A small deterministic generator standing in for the RNG. */
static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_backoff_bounds(void)
{
    /* ceiling = min(cap, base * 2^attempt) */
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(100, 2000, 0), 100);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(100, 2000, 1), 200);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(100, 2000, 4), 1600);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(100, 2000, 5), 2000);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(100, 2000, 1000000), 2000);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(INT64_MAX / 2 + 1, INT64_MAX, 70), INT64_MAX);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(0, 2000, UINT32_MAX), 0);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(-5, -5, 3), 0);
    CU_ASSERT_EQUAL(evm_backoff_ceiling_ms(5000, 2000, 0), 2000);

    /* the extremes of the draw */
    CU_ASSERT_EQUAL(evm_backoff_delay_ms(100, 2000, 2, 0), 0);
    CU_ASSERT_EQUAL(evm_backoff_delay_ms(100, 2000, 2, 400), 400);
    CU_ASSERT_EQUAL(evm_backoff_delay_ms(100, 2000, 2, 401), 0);
    CU_ASSERT_EQUAL(evm_backoff_delay_ms(100, 2000, 9, UINT64_MAX), (int64_t)(UINT64_MAX % 2001));
    CU_ASSERT_EQUAL(evm_backoff_delay_ms(0, 0, 3, UINT64_MAX), 0);

    /* many draws: always within [0, ceiling], spread over the range */
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (unsigned attempt = 0; attempt < 8; attempt++) {
        int64_t ceiling = evm_backoff_ceiling_ms(100, 2000, attempt);
        int64_t lo = INT64_MAX, hi = -1;
        for (int i = 0; i < 2000; i++) {
            int64_t d = evm_backoff_delay_ms(100, 2000, attempt, xorshift(&s));
            CU_ASSERT(d >= 0 && d <= ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CU_ASSERT(lo <= ceiling / 10);
        CU_ASSERT(hi >= ceiling - ceiling / 10);
    }
}

void test_register(void)
{
    static const test_case cases[] = {
        {"opens_after_threshold", test_breaker_opens_after_threshold},
        {"half_open_probe", test_breaker_half_open_probe},
        {"cancel_and_stragglers", test_breaker_cancel_and_stragglers},
        {"backoff_bounds", test_backoff_bounds},
        {NULL, NULL},
    };
    test_add_suite("evm_breaker", cases);
}
