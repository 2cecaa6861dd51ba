#include "order_list.h"

#include "ledger_pb.h"
#include "order_state.h"

#include <stdio.h>
#include <stdlib.h>

rpc_code order_list_check(rpc_ctx *ctx, order_list_filter *f, int32_t page_size, const char *page_token)
{
    char msg[RPC_MESSAGE_MAX];
    if (ledger_fmt_page_parse(&f->page, msg, sizeof msg, page_size, page_token) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    if ((unsigned)f->status >= ORDER_STATUS_COUNT)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "status %d is not an OrderStatus", f->status);
    return RPC_OK;
}

rpc_code order_list_run(ledger_tx *tx, const order_list_query *q, const order_list_filter *f, void **items[],
                        size_t *n_items, char **next_page_token)
{
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    char chain[24], limit[16];
    snprintf(chain, sizeof chain, "%llu", (unsigned long long)f->chain_id);
    /* One row more than the page: whether a next page exists. */
    snprintf(limit, sizeof limit, "%u", f->page.page_size + 1);
    const char *p[7] = {
        ledger_tx_client_id(tx),
        f->client_user_id && f->client_user_id[0] ? f->client_user_id : NULL,
        f->status ? order_status_name((order_status)f->status) : NULL,
        f->chain_id ? chain : NULL,
        f->page.after ? f->page.after_us : NULL,
        f->page.after ? f->page.after_id : NULL,
        limit,
    };
    rpc_code c;
    PGresult *res = ledger_query(tx, &c, q->sql, 7, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    int shown = n > (int)f->page.page_size ? (int)f->page.page_size : n;
    *n_items = 0;
    void **arr = rpc_ctx_alloc(ctx, (size_t)(shown ? shown : 1) * sizeof *arr);
    if (!arr) {
        PQclear(res);
        return ledger_pb_oom(tx);
    }
    *items = arr;
    for (int r = 0; r < shown; r++) {
        if ((c = q->fill(tx, &arr[r], res, r)) != RPC_OK) {
            PQclear(res);
            return c;
        }
        (*n_items)++;
    }
    if (n > shown && shown > 0) {
        char tok[LEDGER_PAGE_TOKEN_MAX];
        long long us = strtoll(PQgetvalue(res, shown - 1, q->col_created_us), NULL, 10);
        if (ledger_fmt_page_token_encode(tok, sizeof tok, us, PQgetvalue(res, shown - 1, q->col_id)) != 0 ||
            !(*next_page_token = rpc_ctx_strdup(ctx, tok))) {
            PQclear(res);
            return ledger_pb_oom(tx);
        }
    }
    PQclear(res);
    return RPC_OK;
}
