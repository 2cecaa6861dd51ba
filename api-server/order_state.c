#include "order_state.h"

#include <stdio.h>
#include <string.h>

static const char *const order_status_names[ORDER_STATUS_COUNT] = {
    "", "INITIATED", "VALIDATING", "BALANCE_RESERVED", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING",
    "PROVIDER_CONFIRMING", "COMPLETED", "FAILED", "EXPIRED", "COMPENSATING", "COMPENSATED", "CANCELLED",
};

static const char *const order_entity_names[] = {"deposit_crypto", "deposit_fiat", "withdrawal"};

#define T(e, f, t) {ORDER_##e, ORDER_##f, ORDER_##t}
/* Keep in step with migrations: state_transitions (tests/integration/test_order_state.c). */
static const order_transition order_table[] = {
    /* crypto deposit: the Transfer log, then confirmation depth; the
     * operator's CompleteDeposit may credit straight from INITIATED */
    T(DEPOSIT_CRYPTO, NONE, INITIATED),
    T(DEPOSIT_CRYPTO, INITIATED, PROVIDER_CONFIRMING),
    T(DEPOSIT_CRYPTO, PROVIDER_CONFIRMING, COMPLETED),
    T(DEPOSIT_CRYPTO, INITIATED, COMPLETED),
    T(DEPOSIT_CRYPTO, INITIATED, EXPIRED),
    T(DEPOSIT_CRYPTO, INITIATED, FAILED),
    T(DEPOSIT_CRYPTO, PROVIDER_CONFIRMING, FAILED),
    T(DEPOSIT_CRYPTO, PROVIDER_CONFIRMING, INITIATED), /* a reorg took the transfer back (migration 0004) */

    /* fiat deposit: banking provider, then on-ramp */
    T(DEPOSIT_FIAT, NONE, INITIATED),
    T(DEPOSIT_FIAT, INITIATED, SENT_TO_PROVIDER),
    T(DEPOSIT_FIAT, SENT_TO_PROVIDER, PROVIDER_PROCESSING),
    T(DEPOSIT_FIAT, PROVIDER_PROCESSING, PROVIDER_CONFIRMING),
    T(DEPOSIT_FIAT, PROVIDER_CONFIRMING, COMPLETED),
    T(DEPOSIT_FIAT, INITIATED, FAILED),
    T(DEPOSIT_FIAT, SENT_TO_PROVIDER, FAILED),
    T(DEPOSIT_FIAT, PROVIDER_PROCESSING, FAILED),
    T(DEPOSIT_FIAT, PROVIDER_CONFIRMING, FAILED),
    T(DEPOSIT_FIAT, INITIATED, EXPIRED),
    T(DEPOSIT_FIAT, SENT_TO_PROVIDER, EXPIRED),
    T(DEPOSIT_FIAT, PROVIDER_PROCESSING, EXPIRED),
    T(DEPOSIT_FIAT, PROVIDER_CONFIRMING, EXPIRED),
    /* withdrawal: the request reserves shares in its own transaction; the
     * withdrawals job burns them (PROVIDER_PROCESSING, sub-state
     * PAYOUT_PENDING); a failure after the burn is compensated */
    T(WITHDRAWAL, NONE, BALANCE_RESERVED),
    T(WITHDRAWAL, BALANCE_RESERVED, CANCELLED),
    T(WITHDRAWAL, BALANCE_RESERVED, FAILED),
    T(WITHDRAWAL, BALANCE_RESERVED, PROVIDER_PROCESSING),
    T(WITHDRAWAL, PROVIDER_PROCESSING, COMPLETED),
    T(WITHDRAWAL, PROVIDER_PROCESSING, FAILED),
    T(WITHDRAWAL, FAILED, COMPENSATING),
    T(WITHDRAWAL, COMPENSATING, COMPENSATED),
};
#undef T

const char *order_entity_name(order_entity e)
{
    if ((size_t)e < sizeof order_entity_names / sizeof order_entity_names[0])
        return order_entity_names[e];
    return "unknown";
}

int order_entity_parse(order_entity *out, const char *name)
{
    for (size_t i = 0; i < sizeof order_entity_names / sizeof order_entity_names[0]; i++)
        if (strcmp(name, order_entity_names[i]) == 0) {
            *out = (order_entity)i;
            return 0;
        }
    return -1;
}

const char *order_status_name(order_status s)
{
    if ((unsigned)s < ORDER_STATUS_COUNT)
        return order_status_names[s];
    return "UNKNOWN";
}

int order_status_parse(order_status *out, const char *name)
{
    for (unsigned i = 0; i < ORDER_STATUS_COUNT; i++)
        if (strcmp(name, order_status_names[i]) == 0) {
            *out = (order_status)i;
            return 0;
        }
    return -1;
}

const order_transition *order_transitions(size_t *n)
{
    *n = sizeof order_table / sizeof order_table[0];
    return order_table;
}

bool order_transition_allowed(order_entity entity, order_status from, order_status to)
{
    for (size_t i = 0; i < sizeof order_table / sizeof order_table[0]; i++)
        if (order_table[i].entity == entity && order_table[i].from == from && order_table[i].to == to)
            return true;
    return false;
}

rpc_code order_transition_check(char *msg, size_t msg_len, order_entity entity, const char *ref,
                                order_status from, order_status to)
{
    if (order_transition_allowed(entity, from, to))
        return RPC_OK;
    const char *what = entity == ORDER_WITHDRAWAL ? "withdrawal" : "deposit";
    if (from == ORDER_NONE)
        snprintf(msg, msg_len, "%s %s may not start in state %s", what, ref ? ref : "", order_status_name(to));
    else if (from == to)
        snprintf(msg, msg_len, "%s %s is already %s", what, ref ? ref : "", order_status_name(from));
    else
        snprintf(msg, msg_len, "%s %s is %s: it cannot become %s (illegal transition %s -> %s)", what,
                 ref ? ref : "", order_status_name(from), order_status_name(to), order_status_name(from),
                 order_status_name(to));
    return RPC_FAILED_PRECONDITION;
}
