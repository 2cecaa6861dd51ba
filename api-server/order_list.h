/* order_list: ListDeposits and ListWithdrawals share one query shape: the
 * caller's client's orders, newest first, filtered by end user, status and
 * chain, keyset-paginated by (created_at, id) with ledger_fmt's page
 * tokens. The services give their SQL and how to turn a row into a
 * message; the paging, allocation and token are here, once. */
#ifndef COFFER_ORDER_LIST_H
#define COFFER_ORDER_LIST_H

#include "ledger_db.h"
#include "ledger_fmt.h"
#include "rpc_server.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Fills *slot (a pointer to the service's message type, e.g.
 * Coffer__V1__Deposit **) from row r of res. */
typedef rpc_code order_list_fill_fn(ledger_tx *tx, void *slot, const PGresult *res, int r);

typedef struct {
    /* SELECT ... with parameters $1 client id (uuid), $2 client_user_id or
     * NULL, $3 status name or NULL, $4 chain id or NULL, $5/$6 the page
     * token's created_at (µs) and id or NULL, $7 the row limit; ordered by
     * created_at DESC, id DESC. */
    const char *sql;
    int col_created_us;          /* the row's created_at in µs since the epoch */
    int col_id;                  /* its id */
    order_list_fill_fn *fill;
} order_list_query;

/* The request's filters and page. */
typedef struct {
    const char *client_user_id; /* "" or NULL: every end user */
    int status;                 /* 0: any */
    uint64_t chain_id;          /* 0: any */
    ledger_page page;
} order_list_filter;

/* Checks the request's page and status (order_list_filter.page is filled):
 * RPC_OK, or INVALID_ARGUMENT set on ctx. */
rpc_code order_list_check(rpc_ctx *ctx, order_list_filter *f, int32_t page_size, const char *page_token);

/* Runs q inside tx: *items (rpc_ctx memory; the caller casts it to its
 * message type's pointer array) gets up to a page of messages, each
 * stored by q->fill, *n_items their count, *next_page_token a token when
 * more rows follow (else it is left as it is). */
rpc_code order_list_run(ledger_tx *tx, const order_list_query *q, const order_list_filter *f, void **items[],
                        size_t *n_items, char **next_page_token);

#endif
