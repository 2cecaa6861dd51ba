/* ledger_db against a real migrated database (ledger_run_plain; the
 * rpc_ctx path, idempotency included, is covered end to end by
 * tests/integration/grpc/test_grpc_clients_users.py): commit, rollback on
 * a failing body, SQLSTATE mapping, the statement timeout, the audit
 * chain's insert, strict amounts. */
#include "harness.h"
#include "ledger_db.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static harness_db ldb;
static db_pool *pool;

static int ledger_suite_init(void)
{
    if (harness_db_create(&ldb, "ledger_db") != 0)
        return -1;
    db_pool_options o = {.conninfo = ldb.conninfo, .size = 2, .idle_check_ms = 60000, .connect_timeout_s = 5,
                         .statement_timeout_ms = 5000, .application_name = "ledger_db_test"};
    pool = db_pool_new(&o);
    return pool ? 0 : -1;
}

static int ledger_suite_cleanup(void)
{
    db_pool_free(pool);
    harness_db_drop(&ldb);
    return 0;
}

static const char client_id[] = "11111111-2222-4333-8444-555555555555";

static long count(const char *sql)
{
    PGconn *c = harness_connect(&ldb);
    char v[32];
    long n = -1;
    if (c && harness_query_value(c, v, sizeof v, sql) == 0)
        n = strtol(v, NULL, 10);
    PQfinish(c);
    return n;
}

typedef struct {
    const char *sql;
    rpc_code then; /* what the body returns after a successful statement */
} stmt_arg;

static rpc_code run_stmt(ledger_tx *tx, void *arg)
{
    stmt_arg *a = arg;
    rpc_code code = ledger_exec(tx, NULL, a->sql, 0, NULL);
    if (code != RPC_OK)
        return code;
    return a->then == RPC_OK ? RPC_OK : ledger_fail(tx, a->then, "body refused");
}

static rpc_code run(const char *sql, rpc_code then, unsigned timeout_ms, char *msg, size_t msg_len)
{
    stmt_arg a = {sql, then};
    return ledger_run_plain(pool, NULL, timeout_ms, msg, msg_len, run_stmt, &a);
}

#define INSERT_CLIENT(pid)                                                                                    \
    "INSERT INTO client_organizations (id, product_id, company_name, platform_fee_bps, end_user_yield_bps, "   \
    "environment) VALUES ('11111111-2222-4333-8444-555555555555', '" pid "', 'Test', 100, 9000, 'live')"

static void test_ledger_commit_rollback_mapping(void)
{
    char msg[256];
    /* a failing body rolls back what it did */
    CU_ASSERT_EQUAL(run(INSERT_CLIENT("p1"), RPC_FAILED_PRECONDITION, 5000, msg, sizeof msg), RPC_FAILED_PRECONDITION);
    CU_ASSERT_STRING_EQUAL(msg, "body refused");
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM client_organizations"), 0);
    /* a good one commits */
    CU_ASSERT_EQUAL(run(INSERT_CLIENT("p1"), RPC_OK, 5000, msg, sizeof msg), RPC_OK);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM client_organizations"), 1);
    /* unique violation */
    CU_ASSERT_EQUAL(run(INSERT_CLIENT("p1"), RPC_OK, 5000, msg, sizeof msg), RPC_ALREADY_EXISTS);
    /* check constraint: named, no SQL text */
    CU_ASSERT_EQUAL(run("UPDATE client_organizations SET platform_fee_bps = 20000", RPC_OK, 5000, msg, sizeof msg),
                    RPC_FAILED_PRECONDITION);
    CU_ASSERT_PTR_NULL(strstr(msg, "UPDATE"));
    /* data exception */
    CU_ASSERT_EQUAL(run("SELECT 1/0", RPC_OK, 5000, msg, sizeof msg), RPC_INVALID_ARGUMENT);
    /* anything else is internal, with no SQL in the message */
    CU_ASSERT_EQUAL(run("SELECT * FROM no_such_table", RPC_OK, 5000, msg, sizeof msg), RPC_INTERNAL);
    CU_ASSERT_PTR_NULL(strstr(msg, "no_such_table"));
    /* the time limit becomes the statement timeout */
    CU_ASSERT_EQUAL(run("SELECT pg_sleep(3)", RPC_OK, 300, msg, sizeof msg), RPC_DEADLINE_EXCEEDED);
}

static rpc_code audit_body(ledger_tx *tx, void *arg)
{
    (void)arg;
    CU_ASSERT_PTR_NULL(ledger_tx_ctx(tx));
    CU_ASSERT_STRING_EQUAL(ledger_tx_actor(tx), "system");
    CU_ASSERT_STRING_EQUAL(ledger_tx_client_id(tx), "");
    rpc_code code = ledger_audit(tx, "test.one", "client", client_id, client_id, "{\"n\": 1}");
    if (code != RPC_OK)
        return code;
    ledger_tx_set_actor(tx, "job:test");
    code = ledger_audit(tx, "test.two", "thing", NULL, NULL, NULL);
    if (code != RPC_OK)
        return code;
    rpc_code c2;
    PGresult *res = ledger_query(tx, &c2, "SELECT '12345'::numeric(78,0), NULL::numeric, '-1'::numeric, "
                                          "('1' || repeat('0', 78))::numeric",
                                 0, NULL);
    if (!res)
        return c2;
    u256 v;
    char dec[U256_DEC_MAX];
    CU_ASSERT_EQUAL(ledger_get_u256(tx, &v, res, 0, 0, false), RPC_OK);
    u256_to_dec(dec, &v);
    CU_ASSERT_STRING_EQUAL(dec, "12345");
    CU_ASSERT_EQUAL(ledger_get_u256(tx, &v, res, 0, 1, true), RPC_OK);
    CU_ASSERT_TRUE(u256_is_zero(&v));
    CU_ASSERT_EQUAL(ledger_get_u256(tx, &v, res, 0, 1, false), RPC_INTERNAL);
    CU_ASSERT_EQUAL(ledger_get_u256(tx, &v, res, 0, 2, false), RPC_INTERNAL);
    CU_ASSERT_EQUAL(ledger_get_u256(tx, &v, res, 0, 3, false), RPC_INTERNAL);
    PQclear(res);
    return RPC_OK;
}

static void test_ledger_audit_and_amounts(void)
{
    char msg[256];
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, audit_body, NULL), RPC_OK);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log WHERE action LIKE 'test.%'"), 2);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log a JOIN audit_log b ON b.id = a.id + 1 "
                          "WHERE b.prev_hash = a.hash"), count("SELECT count(*) FROM audit_log") - 1);
}

static void test_ledger_bytea(void)
{
    const uint8_t in[3] = {0x00, 0xab, 0xff};
    char p[16];
    ledger_bytea_param(p, in, sizeof in);
    CU_ASSERT_STRING_EQUAL(p, "\\x00abff");
}

void test_register(void)
{
    harness_require_stack();
    static const test_case cases[] = {
        {"commit_rollback_mapping", test_ledger_commit_rollback_mapping},
        {"audit_and_amounts", test_ledger_audit_and_amounts},
        {"bytea", test_ledger_bytea},
        {NULL, NULL},
    };
    test_add_suite_with("ledger_db", ledger_suite_init, ledger_suite_cleanup, cases);
}
