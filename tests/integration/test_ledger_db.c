/* ledger_db against a real migrated database (ledger_run_plain; the
 * rpc_ctx path, idempotency included, is covered end to end by
 * tests/integration/grpc/test_grpc_clients_users.py): commit, rollback on
 * a failing body, SQLSTATE mapping, the statement timeout, the audit
 * chains' insert, strict amounts, and queued statements (ledger_defer):
 * sent in order with the next statement or with COMMIT, their failures
 * mapped, rolled back and re-run like any other. */
#include "harness.h"
#include "ledger_db.h"
#include "test_support.h"

#include <stdbool.h>
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
    /* Two chains (the client's and the platform's), each row linked to
     * its chain's row before, or to the chain's genesis. */
    CU_ASSERT_EQUAL(count("SELECT count(DISTINCT client_id) + count(*) FILTER (WHERE client_id IS NULL AND "
                          "chain_seq = 1) FROM audit_log WHERE action LIKE 'test.%'"), 2);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log a WHERE a.chain_seq >= 1 AND a.prev_hash = "
                          "coalesce((SELECT b.hash FROM audit_log b WHERE b.client_id IS NOT DISTINCT FROM a.client_id "
                          "AND b.chain_seq = a.chain_seq - 1), audit_log_genesis(a.client_id))"),
                    count("SELECT count(*) FROM audit_log"));
}

/* -- queued statements ------------------------------------------------------- */

typedef struct {
    int attempts;
    int fail_attempts;  /* the first this many attempts queue a 40001 */
    const char *bad;    /* queued after the audit row, NULL: none */
    bool query_after;   /* a statement after the bad one (which reports it) */
    rpc_code query_code;
} defer_arg;

static rpc_code defer_body(ledger_tx *tx, void *arg)
{
    defer_arg *a = arg;
    a->attempts++;
    rpc_code c = ledger_defer(tx, "CREATE TEMP TABLE dq (n int) ON COMMIT DROP", 0, NULL);
    const char *p1[1] = {"1"};
    if (c == RPC_OK)
        c = ledger_defer(tx, "INSERT INTO dq VALUES ($1::int)", 1, p1);
    if (c != RPC_OK)
        return c;
    /* A query sends the queue first, in order, in the same round trip. */
    PGresult *res = ledger_query(tx, &c, "SELECT count(*), min(n) FROM dq", 0, NULL);
    if (!res)
        return c;
    CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "1");
    CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 1), "1");
    PQclear(res);
    /* More than the queue holds is flushed on the way. */
    for (int i = 0; i < 40 && c == RPC_OK; i++) {
        char n[8];
        snprintf(n, sizeof n, "%d", i + 2);
        const char *pn[1] = {n};
        c = ledger_defer(tx, "INSERT INTO dq VALUES ($1::int)", 1, pn);
    }
    if (c == RPC_OK && (res = ledger_query(tx, &c, "SELECT count(*) FROM dq", 0, NULL)) != NULL) {
        CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "41");
        PQclear(res);
    }
    if (c == RPC_OK)
        c = ledger_audit(tx, "test.deferred", "thing", NULL, NULL, NULL);
    if (c == RPC_OK && a->attempts <= a->fail_attempts)
        c = ledger_defer(tx, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'x'; END$$", 0, NULL);
    if (c == RPC_OK && a->bad)
        c = ledger_defer(tx, a->bad, 0, NULL);
    if (c == RPC_OK && a->query_after) {
        res = ledger_query(tx, &a->query_code, "SELECT 1", 0, NULL);
        CU_ASSERT_PTR_NULL(res);
        PQclear(res);
        return a->query_code;
    }
    return c;
}

static void test_ledger_deferred(void)
{
    char msg[256];
    long before = count("SELECT count(*) FROM audit_log WHERE action = 'test.deferred'");
    /* Queued statements, the audit row and COMMIT in one pipeline. */
    defer_arg a = {0};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_OK);
    CU_ASSERT_EQUAL(a.attempts, 1);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log WHERE action = 'test.deferred'"), before + 1);

    /* A queued statement that fails with COMMIT: mapped, nothing kept. */
    a = (defer_arg){.bad = "INSERT INTO no_such_table VALUES (1)"};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_INTERNAL);
    CU_ASSERT_PTR_NULL(strstr(msg, "no_such_table"));
    a = (defer_arg){.bad = "SELECT 1/0"};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_INVALID_ARGUMENT);
    /* A row count checked in SQL aborts before the COMMIT it was sent with. */
    a = (defer_arg){.bad = "WITH w AS (UPDATE client_organizations SET company_name = company_name WHERE false "
                           "RETURNING 1) SELECT coffer_expect_rows((SELECT count(*) FROM w), 1, 'nothing')"};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_INTERNAL);
    /* ... or reported by the next statement. */
    a = (defer_arg){.bad = "SELECT 1/0", .query_after = true};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(a.query_code, RPC_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log WHERE action = 'test.deferred'"), before + 1);

    /* A serialization failure in the commit pipeline re-runs the whole
     * transaction (rolled back first), up to LEDGER_RETRIES times. */
    a = (defer_arg){.fail_attempts = 1};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_OK);
    CU_ASSERT_EQUAL(a.attempts, 2);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log WHERE action = 'test.deferred'"), before + 2);
    a = (defer_arg){.fail_attempts = 100};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, defer_body, &a), RPC_ABORTED);
    CU_ASSERT_EQUAL(a.attempts, (int)LEDGER_RETRIES + 1);
    CU_ASSERT_EQUAL(count("SELECT count(*) FROM audit_log WHERE action = 'test.deferred'"), before + 2);
    /* The pooled connections are still good. */
    CU_ASSERT_EQUAL(run("SELECT 1", RPC_OK, 5000, msg, sizeof msg), RPC_OK);
    CU_ASSERT_EQUAL(run("SELECT 1", RPC_OK, 5000, msg, sizeof msg), RPC_OK);
}

/* Statements with parameters run prepared, once per connection; one that
 * vanished (DEALLOCATE) re-runs the transaction, which prepares afresh. */
typedef struct {
    int attempts;
    long prepared;
} prep_arg;

static rpc_code prep_body(ledger_tx *tx, void *arg)
{
    prep_arg *a = arg;
    a->attempts++;
    const char *p[1] = {"1"};
    rpc_code c;
    for (int i = 0; i < 2; i++) {
        PGresult *res = ledger_query(tx, &c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'ldb%' "
                                             "AND $1::int = 1", 1, p);
        if (!res)
            return c;
        a->prepared = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        if (i == 0 && a->attempts == 1 && (c = ledger_exec(tx, NULL, "DEALLOCATE ALL", 0, NULL)) != RPC_OK)
            return c;
    }
    return RPC_OK;
}

static void test_ledger_prepared(void)
{
    char msg[256];
    prep_arg a = {0};
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, prep_body, &a), RPC_OK);
    CU_ASSERT_EQUAL(a.attempts, 2);
    CU_ASSERT(a.prepared >= 1);
    a = (prep_arg){.attempts = 1}; /* no DEALLOCATE this time */
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, prep_body, &a), RPC_OK);
    CU_ASSERT_EQUAL(a.attempts, 2);
    CU_ASSERT(a.prepared >= 1);
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
        {"deferred", test_ledger_deferred},
        {"prepared", test_ledger_prepared},
        {"bytea", test_ledger_bytea},
        {NULL, NULL},
    };
    test_add_suite_with("ledger_db", ledger_suite_init, ledger_suite_cleanup, cases);
}
