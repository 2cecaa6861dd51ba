/* order_state: the deposit and withdrawal state machines of DESIGN.md §3
 * as one table in code. The rows are exactly those of the
 * state_transitions table of migrations/0002_ledger.sql (an integration
 * test compares both ways); the database's triggers refuse the same
 * changes, so a transition the code allows but the schema does not (or
 * the reverse) is a test failure, not a surprise in production.
 *
 * Statuses are the names of coffer.v1.OrderStatus without the prefix
 * ("INITIATED", ...), as stored in the status columns; their numbers are
 * the enum's. The "from" state "" lists the states a row may start in. */
#ifndef COFFER_ORDER_STATE_H
#define COFFER_ORDER_STATE_H

#include "rpc_code.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    ORDER_DEPOSIT_CRYPTO = 0,
    ORDER_DEPOSIT_FIAT,
    ORDER_WITHDRAWAL,
} order_entity;

/* coffer.v1.OrderStatus numbers; 0 is "no state" (the "" from-state). */
typedef enum {
    ORDER_NONE = 0,
    ORDER_INITIATED = 1,
    ORDER_VALIDATING = 2,
    ORDER_BALANCE_RESERVED = 3,
    ORDER_SENT_TO_PROVIDER = 4,
    ORDER_PROVIDER_PROCESSING = 5,
    ORDER_PROVIDER_CONFIRMING = 6,
    ORDER_COMPLETED = 7,
    ORDER_FAILED = 8,
    ORDER_EXPIRED = 9,
    ORDER_COMPENSATING = 10,
    ORDER_COMPENSATED = 11,
    ORDER_CANCELLED = 12,
} order_status;

#define ORDER_STATUS_COUNT 13u

typedef struct {
    order_entity entity;
    order_status from; /* ORDER_NONE: may start in `to` */
    order_status to;
} order_transition;

/* "deposit_crypto", "deposit_fiat", "withdrawal" (the table's entity column). */
const char *order_entity_name(order_entity e);

/* Parses an entity name. Returns 0, or -1 for an unknown one. */
__attribute__((warn_unused_result))
int order_entity_parse(order_entity *out, const char *name);

/* "INITIATED", ...; "" for ORDER_NONE; "UNKNOWN" outside the enum. */
const char *order_status_name(order_status s);

/* Parses a status name ("" gives ORDER_NONE). Returns 0, or -1. */
__attribute__((warn_unused_result))
int order_status_parse(order_status *out, const char *name);

/* The whole table (borrowed, static); *n gets its length. */
const order_transition *order_transitions(size_t *n);

/* True when entity may go from `from` to `to` (from ORDER_NONE: start in `to`). */
bool order_transition_allowed(order_entity entity, order_status from, order_status to);

/* RPC_OK when allowed; otherwise RPC_FAILED_PRECONDITION with
 * msg[0..msg_len) naming the order, from and to (e.g. "deposit dep_x is
 * COMPLETED: it cannot become COMPLETED (already COMPLETED)").
 * ref: the order id for the message. */
__attribute__((warn_unused_result))
rpc_code order_transition_check(char *msg, size_t msg_len, order_entity entity, const char *ref,
                                order_status from, order_status to);

#endif
