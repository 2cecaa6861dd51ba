/* order_state's table against the state_transitions rows of a migrated
 * database: identical both ways (every C row is in the table, every table
 * row is in C), and the database's trigger refuses a transition the C
 * table refuses. */
#include "harness.h"
#include "order_state.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static harness_db order_db;
static PGconn *order_conn;

static int order_suite_init(void)
{
    harness_require_stack();
    if (harness_db_create(&order_db, "order_state") != 0)
        return 1;
    order_conn = harness_connect(&order_db);
    return order_conn ? 0 : 1;
}

static int order_suite_cleanup(void)
{
    if (order_conn)
        PQfinish(order_conn);
    harness_db_drop(&order_db);
    return 0;
}

static void test_order_state_matches_schema(void)
{
    PGresult *res = PQexec(order_conn, "SELECT entity, from_state, to_state FROM state_transitions "
                                       "ORDER BY entity, from_state, to_state");
    CU_ASSERT_FATAL(PQresultStatus(res) == PGRES_TUPLES_OK);
    int rows = PQntuples(res);
    size_t n = 0;
    const order_transition *t = order_transitions(&n);
    bool *in_db = calloc(n, sizeof *in_db);
    CU_ASSERT_FATAL(in_db != NULL);
    for (int r = 0; r < rows; r++) {
        order_entity e;
        order_status from, to;
        const char *ent = PQgetvalue(res, r, 0), *f = PQgetvalue(res, r, 1), *to_s = PQgetvalue(res, r, 2);
        bool parsed = order_entity_parse(&e, ent) == 0 && order_status_parse(&from, f) == 0 &&
                      order_status_parse(&to, to_s) == 0;
        if (!parsed || !order_transition_allowed(e, from, to)) {
            fprintf(stderr, "\n  in state_transitions, not in order_state.c: %s '%s' -> %s\n", ent, f, to_s);
            CU_FAIL("schema row missing from the C table");
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (t[i].entity == e && t[i].from == from && t[i].to == to)
                in_db[i] = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (!in_db[i]) {
            fprintf(stderr, "\n  in order_state.c, not in state_transitions: %s '%s' -> %s\n",
                    order_entity_name(t[i].entity), order_status_name(t[i].from), order_status_name(t[i].to));
            CU_FAIL("C row missing from the schema");
        }
    }
    CU_ASSERT_EQUAL((size_t)rows, n);
    free(in_db);
    PQclear(res);
}

static void test_order_state_refusals_agree(void)
{
    /* For every pair of statuses, coffer_require_transition (the
     * triggers' check) and order_transition_allowed give one answer. */
    size_t disagreements = 0;
    for (int ent = ORDER_DEPOSIT_CRYPTO; ent <= ORDER_WITHDRAWAL; ent++) {
        for (unsigned f = 0; f < ORDER_STATUS_COUNT; f++) {
            for (unsigned to = 1; to < ORDER_STATUS_COUNT; to++) {
                if (f == to)
                    continue;
                char sql[256];
                snprintf(sql, sizeof sql, "SELECT coffer_require_transition('%s', 'x', '%s', '%s')",
                         order_entity_name((order_entity)ent), order_status_name((order_status)f),
                         order_status_name((order_status)to));
                PGresult *res = PQexec(order_conn, sql);
                bool db_ok = PQresultStatus(res) == PGRES_TUPLES_OK;
                PQclear(res);
                if (db_ok != order_transition_allowed((order_entity)ent, (order_status)f, (order_status)to))
                    disagreements++;
            }
        }
    }
    CU_ASSERT_EQUAL(disagreements, 0u);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"matches_schema", test_order_state_matches_schema},
        {"refusals_agree", test_order_state_refusals_agree},
        {NULL, NULL},
    };
    test_add_suite_with("order_state_schema", order_suite_init, order_suite_cleanup, cases);
}
