/* order_state: the deposit and withdrawal state machines in code. The
 * comparison with the migration's state_transitions rows is in
 * tests/integration/test_order_state.c. */
#include "order_state.h"
#include "test_support.h"

#include <string.h>

static void test_order_state_names(void)
{
    for (unsigned i = 0; i < ORDER_STATUS_COUNT; i++) {
        order_status s = ORDER_NONE;
        CU_ASSERT_EQUAL(order_status_parse(&s, order_status_name((order_status)i)), 0);
        CU_ASSERT_EQUAL(s, (order_status)i);
    }
    order_status s;
    CU_ASSERT_EQUAL(order_status_parse(&s, "completed"), -1);
    CU_ASSERT_STRING_EQUAL(order_status_name((order_status)99), "UNKNOWN");
    order_entity e;
    CU_ASSERT_EQUAL(order_entity_parse(&e, "withdrawal"), 0);
    CU_ASSERT_EQUAL(e, ORDER_WITHDRAWAL);
    CU_ASSERT_EQUAL(order_entity_parse(&e, "deposit"), -1);
}

static void test_order_state_table(void)
{
    size_t n = 0;
    const order_transition *t = order_transitions(&n);
    CU_ASSERT_EQUAL(n, 29u); /* 28 of migration 0002, 1 of 0004 (reorg) */
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_NOT_EQUAL(t[i].from, t[i].to);
        CU_ASSERT_NOT_EQUAL(t[i].to, ORDER_NONE);
        for (size_t j = i + 1; j < n; j++)
            CU_ASSERT_FALSE(t[i].entity == t[j].entity && t[i].from == t[j].from && t[i].to == t[j].to);
    }
    /* Terminal states lead nowhere. */
    static const order_status terminal[] = {ORDER_COMPLETED, ORDER_EXPIRED, ORDER_COMPENSATED, ORDER_CANCELLED};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof terminal / sizeof terminal[0]; k++)
            CU_ASSERT_NOT_EQUAL(t[i].from, terminal[k]);
    CU_ASSERT_TRUE(order_transition_allowed(ORDER_DEPOSIT_CRYPTO, ORDER_INITIATED, ORDER_COMPLETED));
    CU_ASSERT_TRUE(order_transition_allowed(ORDER_WITHDRAWAL, ORDER_NONE, ORDER_BALANCE_RESERVED));
    CU_ASSERT_FALSE(order_transition_allowed(ORDER_WITHDRAWAL, ORDER_NONE, ORDER_INITIATED));
    CU_ASSERT_FALSE(order_transition_allowed(ORDER_DEPOSIT_FIAT, ORDER_INITIATED, ORDER_COMPLETED));
    CU_ASSERT_FALSE(order_transition_allowed(ORDER_WITHDRAWAL, ORDER_CANCELLED, ORDER_BALANCE_RESERVED));
    CU_ASSERT_FALSE(order_transition_allowed(ORDER_WITHDRAWAL, ORDER_BALANCE_RESERVED, ORDER_COMPLETED));
}

static void test_order_state_messages(void)
{
    char msg[256];
    CU_ASSERT_EQUAL(order_transition_check(msg, sizeof msg, ORDER_WITHDRAWAL, "wth_x", ORDER_BALANCE_RESERVED,
                                           ORDER_CANCELLED), RPC_OK);
    CU_ASSERT_EQUAL(order_transition_check(msg, sizeof msg, ORDER_WITHDRAWAL, "wth_x", ORDER_COMPLETED,
                                           ORDER_CANCELLED), RPC_FAILED_PRECONDITION);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "wth_x is COMPLETED"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "COMPLETED -> CANCELLED"));
    CU_ASSERT_EQUAL(order_transition_check(msg, sizeof msg, ORDER_DEPOSIT_CRYPTO, "dep_y", ORDER_COMPLETED,
                                           ORDER_COMPLETED), RPC_FAILED_PRECONDITION);
    CU_ASSERT_STRING_EQUAL(msg, "deposit dep_y is already COMPLETED");
    CU_ASSERT_EQUAL(order_transition_check(msg, sizeof msg, ORDER_WITHDRAWAL, "wth_z", ORDER_NONE, ORDER_COMPLETED),
                    RPC_FAILED_PRECONDITION);
    CU_ASSERT_STRING_EQUAL(msg, "withdrawal wth_z may not start in state COMPLETED");
}

void test_register(void)
{
    static const test_case cases[] = {
        {"names", test_order_state_names},
        {"table", test_order_state_table},
        {"messages", test_order_state_messages},
        {NULL, NULL},
    };
    test_add_suite("order_state", cases);
}
