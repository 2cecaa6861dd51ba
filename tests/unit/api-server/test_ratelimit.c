/* ratelimit: token buckets with an injected clock: burst, refill,
 * retry-after, per caller and class, unlimited classes, bounded table. */
#include "ratelimit.h"
#include "test_support.h"

#include <stdio.h>
#include <string.h>

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static ratelimit *make(uint32_t write_per_min, size_t entries)
{
    ratelimit_options o;
    memset(&o, 0, sizeof o);
    o.per_minute[RPC_RATE_WRITE] = write_per_min;
    o.per_minute[RPC_RATE_READ] = 600;
    o.max_entries = entries;
    o.now_ms = fake_clock;
    return ratelimit_new(&o);
}

static void test_ratelimit_burst_and_refill(void)
{
    fake_now = 1000000;
    ratelimit *rl = make(120, 64); /* 2 a second, burst 120 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
    int64_t retry = 0;
    for (int i = 0; i < 120; i++)
        CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), 0);
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), -1);
    CU_ASSERT_EQUAL(retry, 500); /* one call every 500 ms */
    fake_now += 499;
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), -1);
    CU_ASSERT_EQUAL(retry, 1);
    fake_now += 1;
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), 0);
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), -1);
    /* other callers and other classes have their own buckets */
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:b", RPC_RATE_WRITE), 0);
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_READ), 0);
    /* unlimited classes */
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_EXECUTE), 0);
    /* a long pause refills to the burst, not beyond */
    fake_now += 3600 * 1000;
    for (int i = 0; i < 120; i++)
        CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), 0);
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, "client:a", RPC_RATE_WRITE), -1);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

static void test_ratelimit_check_message(void)
{
    fake_now = 5;
    ratelimit *rl = make(1, 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
    auth_caller c = {AUTH_CLIENT, "c1"};
    char msg[256] = "";
    int64_t retry = 0;
    CU_ASSERT_EQUAL(ratelimit_check(rl, msg, sizeof msg, &retry, &c, RPC_RATE_WRITE), RPC_OK);
    CU_ASSERT_EQUAL(ratelimit_check(rl, msg, sizeof msg, &retry, &c, RPC_RATE_WRITE), RPC_RESOURCE_EXHAUSTED);
    CU_ASSERT_EQUAL(retry, 60000);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "write"));
    auth_caller admin = {AUTH_ADMIN, ""};
    CU_ASSERT_EQUAL(ratelimit_check(rl, msg, sizeof msg, &retry, &admin, RPC_RATE_WRITE), RPC_OK);
    ratelimit_free(rl);
}

static void test_ratelimit_bounded(void)
{
    fake_now = 0;
    ratelimit *rl = make(1, 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
    int64_t retry;
    char who[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(who, sizeof who, "client:%d", i);
        fake_now++;
        CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, who, RPC_RATE_WRITE), 0);
    }
    CU_ASSERT_TRUE(ratelimit_size(rl) <= 64);
    CU_ASSERT_TRUE(ratelimit_size(rl) > 32);
    /* the most recent caller is still tracked */
    CU_ASSERT_EQUAL(ratelimit_take(rl, &retry, who, RPC_RATE_WRITE), -1);
    ratelimit_free(rl);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"burst_and_refill", test_ratelimit_burst_and_refill},
        {"check_message", test_ratelimit_check_message},
        {"bounded", test_ratelimit_bounded},
        {NULL, NULL},
    };
    test_add_suite("ratelimit", cases);
}
