/* db_pool against a real PostgreSQL: bounds, waiting, rollback on release,
 * recovery after its backends are killed, and a concurrent burst. */
#include "db_pool.h"
#include "harness.h"
#include "test_support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static harness_db pool_db;

static int pool_suite_init(void)
{
    return harness_db_create(&pool_db, "db_pool");
}

static int pool_suite_cleanup(void)
{
    harness_db_drop(&pool_db);
    return 0;
}

static db_pool *pool_make(unsigned size, unsigned idle_check_ms, const char *app)
{
    db_pool_options o = {
        .conninfo = pool_db.conninfo,
        .size = size,
        .idle_check_ms = idle_check_ms,
        .connect_timeout_s = 5,
        .statement_timeout_ms = 5000,
        .application_name = app,
    };
    return db_pool_new(&o);
}

static long backends_named(const char *app)
{
    PGconn *c = harness_connect(&pool_db);
    char sql[256], v[32];
    long n = -1;
    if (!c)
        return -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
    if (harness_query_value(c, v, sizeof v, sql) == 0)
        n = strtol(v, NULL, 10);
    PQfinish(c);
    return n;
}

static void test_pool_bounded_and_waits(void)
{
    db_pool *p = pool_make(3, 60000, "pool_bounded");
    CU_ASSERT_FATAL(p != NULL);
    PGconn *c[3];
    db_pool_err err;
    char msg[256];
    for (int i = 0; i < 3; i++) {
        c[i] = db_pool_acquire(p, 1000, &err, msg, sizeof msg);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
    }
    CU_ASSERT_EQUAL(backends_named("pool_bounded"), 3);
    PGconn *extra = db_pool_acquire(p, 150, &err, msg, sizeof msg);
    CU_ASSERT_PTR_NULL(extra);
    CU_ASSERT_EQUAL(err, DB_POOL_EXHAUSTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "busy"));

    db_pool_release(p, c[1]);
    PGconn *again = db_pool_acquire(p, 150, &err, msg, sizeof msg);
    CU_ASSERT_PTR_EQUAL(again, c[1]);       /* reused, not a new connection */
    db_pool_stats st;
    db_pool_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.total, 3);
    CU_ASSERT_EQUAL(st.connects, 3);
    db_pool_release(p, again);
    db_pool_release(p, c[0]);
    db_pool_release(p, c[2]);
    db_pool_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 3);
    db_pool_free(p);
    /* The server ends a backend shortly after its client hangs up. */
    long left = -1;
    for (int i = 0; i < 100 && left != 0; i++) {
        left = backends_named("pool_bounded");
        if (left != 0)
            usleep(20000);
    }
    CU_ASSERT_EQUAL(left, 0);
}

static void test_pool_release_rolls_back(void)
{
    db_pool *p = pool_make(1, 60000, "pool_rollback");
    CU_ASSERT_FATAL(p != NULL);
    db_pool_err err;
    PGconn *c = db_pool_acquire(p, 1000, &err, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(harness_exec(c, "CREATE TABLE IF NOT EXISTS pool_t (v int)"), 0);
    CU_ASSERT_EQUAL(harness_exec(c, "BEGIN"), 0);
    CU_ASSERT_EQUAL(harness_exec(c, "INSERT INTO pool_t VALUES (42)"), 0);
    db_pool_release(p, c);   /* a handler that forgot to commit */
    c = db_pool_acquire(p, 1000, &err, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_IDLE);
    char v[16];
    CU_ASSERT_EQUAL(harness_query_value(c, v, sizeof v, "SELECT count(*) FROM pool_t"), 0);
    CU_ASSERT_STRING_EQUAL(v, "0");
    db_pool_release(p, c);
    db_pool_free(p);
}

static void test_pool_recovers_from_killed_backends(void)
{
    db_pool *p = pool_make(2, 0, "pool_killed");
    CU_ASSERT_FATAL(p != NULL);
    db_pool_err err;
    PGconn *a = db_pool_acquire(p, 1000, &err, NULL, 0);
    PGconn *b = db_pool_acquire(p, 1000, &err, NULL, 0);
    CU_ASSERT_FATAL(a && b);
    db_pool_release(p, a);
    db_pool_release(p, b);

    PGconn *admin = harness_connect(&pool_db);
    CU_ASSERT_FATAL(admin != NULL);
    char v[16];
    CU_ASSERT_EQUAL(harness_query_value(admin, v, sizeof v,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'pool_killed'"), 0);
    CU_ASSERT_STRING_EQUAL(v, "2");
    PQfinish(admin);

    /* Both idle connections are dead; the pool must notice and reconnect. */
    char msg[256];
    CU_ASSERT_EQUAL(db_pool_ping(p, 2000, msg, sizeof msg), 0);
    PGconn *c = db_pool_acquire(p, 2000, &err, msg, sizeof msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(harness_query_value(c, v, sizeof v, "SELECT 7"), 0);
    CU_ASSERT_STRING_EQUAL(v, "7");
    db_pool_release(p, c);
    db_pool_stats st;
    db_pool_get_stats(p, &st);
    CU_ASSERT(st.discarded >= 2);
    CU_ASSERT(st.total <= 2);
    db_pool_free(p);
}

static void test_pool_unreachable_server(void)
{
    db_pool_options o = {
        .conninfo = "host=127.0.0.1 port=1 dbname=none user=none",
        .size = 2,
        .connect_timeout_s = 2,
        .application_name = "pool_unreachable",
    };
    db_pool *p = db_pool_new(&o);
    CU_ASSERT_FATAL(p != NULL);
    db_pool_err err;
    char msg[256];
    PGconn *c = db_pool_acquire(p, 500, &err, msg, sizeof msg);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(err, DB_POOL_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot connect"));
    CU_ASSERT_EQUAL(db_pool_ping(p, 500, msg, sizeof msg), -1);
    db_pool_stats st;
    db_pool_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.total, 0);   /* failed attempts hold no slot */
    db_pool_free(p);

    db_pool_options bad = {.conninfo = "x", .size = 0};
    CU_ASSERT_PTR_NULL(db_pool_new(&bad));
}

typedef struct {
    db_pool *pool;
    int failures;
} burst_arg;

static void *burst_main(void *arg)
{
    burst_arg *b = arg;
    for (int i = 0; i < 150; i++) {
        db_pool_err err;
        PGconn *c = db_pool_acquire(b->pool, 10000, &err, NULL, 0);
        if (!c) {
            b->failures++;
            continue;
        }
        PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            b->failures++;
        PQclear(r);
        db_pool_release(b->pool, c);
    }
    return NULL;
}

static void test_pool_concurrent_burst(void)
{
    db_pool *p = pool_make(4, 60000, "pool_burst");
    CU_ASSERT_FATAL(p != NULL);
    enum { T = 16 };
    pthread_t th[T];
    burst_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (burst_arg){.pool = p};
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, burst_main, &args[i]) == 0);
    }
    int failures = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    db_pool_stats st;
    db_pool_get_stats(p, &st);
    CU_ASSERT(st.connects <= 4);
    CU_ASSERT_EQUAL(st.waiting, 0);
    CU_ASSERT(backends_named("pool_burst") <= 4);
    db_pool_free(p);
}

void test_register(void)
{
    harness_require_stack();
    static const test_case cases[] = {
        {"bounded_and_waits", test_pool_bounded_and_waits},
        {"release_rolls_back", test_pool_release_rolls_back},
        {"recovers_from_killed_backends", test_pool_recovers_from_killed_backends},
        {"unreachable_server", test_pool_unreachable_server},
        {"concurrent_burst", test_pool_concurrent_burst},
        {NULL, NULL},
    };
    test_add_suite_with("db_pool", pool_suite_init, pool_suite_cleanup, cases);
}
