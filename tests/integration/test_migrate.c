/* coffer-api migrate against a real PostgreSQL: apply, re-run, edited,
 * renamed, unknown, failing and concurrent migrations. */
#include "harness.h"
#include "migrate.h"
#include "test_support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const migration *embedded_first(void)
{
    size_t n;
    return &migrations_embedded(&n)[0];
}

static long count_value(PGconn *c, const char *sql)
{
    char v[64];
    if (harness_query_value(c, v, sizeof v, sql) != 0)
        return -1;
    return strtol(v, NULL, 10);
}

static int table_exists(PGconn *c, const char *table)
{
    char sql[256], v[8];
    snprintf(sql, sizeof sql, "SELECT to_regclass('public.%s') IS NOT NULL", table);
    if (harness_query_value(c, v, sizeof v, sql) != 0)
        return -1;
    return strcmp(v, "t") == 0;
}

#define SQL(s) s, sizeof(s) - 1

static void test_migrate_embedded_fresh_and_rerun(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "mig_fresh") == 0);
    PGconn *c = harness_connect(&db);
    CU_ASSERT_FATAL(c != NULL);
    size_t n;
    const migration *set = migrations_embedded(&n);
    CU_ASSERT_FATAL(n >= 1);
    CU_ASSERT_STRING_EQUAL(set[0].name, "0001_schema_migrations");

    migrate_report rep;
    CU_ASSERT_EQUAL(migrate_run(&rep, c, set, n), 0);
    CU_ASSERT_EQUAL(rep.version_before, 0);
    CU_ASSERT_EQUAL(rep.version_after, n);
    CU_ASSERT_EQUAL(rep.applied, n);
    CU_ASSERT_EQUAL(count_value(c, "SELECT count(*) FROM schema_migrations"), (long)n);

    char sum[MIGRATE_CHECKSUM_HEX_LEN + 1], stored[80];
    migrate_checksum(sum, &set[0]);
    CU_ASSERT_EQUAL(harness_query_value(c, stored, sizeof stored,
                                        "SELECT checksum FROM schema_migrations WHERE version = 1"), 0);
    CU_ASSERT_STRING_EQUAL(stored, sum);

    /* A second run changes nothing. */
    CU_ASSERT_EQUAL(migrate_run(&rep, c, set, n), 0);
    CU_ASSERT_EQUAL(rep.applied, 0);
    CU_ASSERT_EQUAL(rep.version_before, n);
    CU_ASSERT_EQUAL(count_value(c, "SELECT count(*) FROM schema_migrations"), (long)n);

    FILE *out = tmpfile();
    CU_ASSERT_EQUAL(migrate_status(&rep, out, c, set, n), 0);
    fclose(out);
    PQfinish(c);
    harness_db_drop(&db);
}

static void test_migrate_edited_is_refused(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "mig_edit") == 0);
    PGconn *c = harness_connect(&db);
    CU_ASSERT_FATAL(c != NULL);
    migration v1[2] = {*embedded_first(), {2, "0002_accounts", SQL("CREATE TABLE accounts (id int);")}};
    migrate_report rep;
    CU_ASSERT_EQUAL_FATAL(migrate_run(&rep, c, v1, 2), 0);

    /* Someone edits the landed 0002 and adds 0003. */
    migration v2[3] = {*embedded_first(),
                       {2, "0002_accounts", SQL("CREATE TABLE accounts (id int, extra int);")},
                       {3, "0003_more", SQL("CREATE TABLE more (id int);")}};
    CU_ASSERT_EQUAL(migrate_run(&rep, c, v2, 3), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "0002_accounts.sql was edited after it was applied"));
    CU_ASSERT_EQUAL(rep.applied, 0);
    /* Nothing changed: 0003 not applied, accounts unchanged. */
    CU_ASSERT_EQUAL(table_exists(c, "more"), 0);
    CU_ASSERT_EQUAL(count_value(c, "SELECT count(*) FROM schema_migrations"), 2);
    CU_ASSERT_EQUAL(count_value(c, "SELECT count(*) FROM information_schema.columns "
                                   "WHERE table_name = 'accounts'"), 1);

    FILE *out = tmpfile();
    CU_ASSERT_EQUAL(migrate_status(&rep, out, c, v2, 3), -1);
    fclose(out);

    /* Restoring the file lets the new migration through. */
    migration v3[3] = {v1[0], v1[1], v2[2]};
    CU_ASSERT_EQUAL(migrate_run(&rep, c, v3, 3), 0);
    CU_ASSERT_EQUAL(rep.applied, 1);
    CU_ASSERT_EQUAL(table_exists(c, "more"), 1);
    PQfinish(c);
    harness_db_drop(&db);
}

static void test_migrate_renamed_unknown_gap(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "mig_names") == 0);
    PGconn *c = harness_connect(&db);
    CU_ASSERT_FATAL(c != NULL);
    migration set[3] = {*embedded_first(),
                        {2, "0002_a", SQL("CREATE TABLE a (id int);")},
                        {3, "0003_b", SQL("CREATE TABLE b (id int);")}};
    migrate_report rep;
    CU_ASSERT_EQUAL_FATAL(migrate_run(&rep, c, set, 3), 0);

    /* An older binary that knows only two migrations must not run. */
    CU_ASSERT_EQUAL(migrate_run(&rep, c, set, 2), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "newer coffer-api"));

    /* A renamed file is refused even with the same content. */
    migration renamed[3] = {set[0], {2, "0002_renamed", SQL("CREATE TABLE a (id int);")}, set[2]};
    CU_ASSERT_EQUAL(migrate_run(&rep, c, renamed, 3), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "renamed"));

    /* A set out of order is refused before touching the database. */
    migration unordered[2] = {set[0], set[2]};
    CU_ASSERT_EQUAL(migrate_run(&rep, c, unordered, 2), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "out of order"));

    /* A hole in the recorded versions is reported. */
    CU_ASSERT_EQUAL_FATAL(harness_exec(c, "DELETE FROM schema_migrations WHERE version = 2"), 0);
    CU_ASSERT_EQUAL(migrate_run(&rep, c, set, 3), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "gap"));
    PQfinish(c);
    harness_db_drop(&db);
}

static void test_migrate_failure_rolls_back(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "mig_fail") == 0);
    PGconn *c = harness_connect(&db);
    CU_ASSERT_FATAL(c != NULL);
    migration set[3] = {*embedded_first(),
                        {2, "0002_ok", SQL("CREATE TABLE ok (id int);")},
                        {3, "0003_broken", SQL("CREATE TABLE half (id int);\n"
                                               "INSERT INTO half VALUES (1);\n"
                                               "SELEC nonsense;\n")}};
    migrate_report rep;
    CU_ASSERT_EQUAL(migrate_run(&rep, c, set, 3), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "0003_broken.sql failed and was rolled back"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.error, "line 3"));
    CU_ASSERT_EQUAL(rep.applied, 2);
    CU_ASSERT_EQUAL(rep.version_after, 2);
    CU_ASSERT_EQUAL(table_exists(c, "ok"), 1);
    CU_ASSERT_EQUAL(table_exists(c, "half"), 0);   /* nothing half-applied */
    CU_ASSERT_EQUAL(count_value(c, "SELECT max(version) FROM schema_migrations"), 2);
    CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
    harness_db_drop(&db);
}

typedef struct {
    const harness_db *db;
    int rc;
    unsigned applied;
} mig_thread;

static void *mig_thread_main(void *arg)
{
    mig_thread *t = arg;
    PGconn *c = harness_connect(t->db);
    t->rc = -1;
    if (!c)
        return NULL;
    size_t n;
    const migration *set = migrations_embedded(&n);
    migrate_report rep;
    t->rc = migrate_run(&rep, c, set, n);
    t->applied = rep.applied;
    PQfinish(c);
    return NULL;
}

static void test_migrate_concurrent_replicas(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "mig_conc") == 0);
    enum { N = 6 };
    pthread_t th[N];
    mig_thread t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (mig_thread){.db = &db};
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, mig_thread_main, &t[i]) == 0);
    }
    unsigned total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(t[i].rc, 0);
        total += t[i].applied;
    }
    size_t n;
    (void)migrations_embedded(&n);
    CU_ASSERT_EQUAL(total, n);   /* every file applied exactly once */
    PGconn *c = harness_connect(&db);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(count_value(c, "SELECT count(*) FROM schema_migrations"), (long)n);
    PQfinish(c);
    harness_db_drop(&db);
}

void test_register(void)
{
    harness_require_stack();
    static const test_case cases[] = {
        {"embedded_fresh_and_rerun", test_migrate_embedded_fresh_and_rerun},
        {"edited_is_refused", test_migrate_edited_is_refused},
        {"renamed_unknown_gap", test_migrate_renamed_unknown_gap},
        {"failure_rolls_back", test_migrate_failure_rolls_back},
        {"concurrent_replicas", test_migrate_concurrent_replicas},
        {NULL, NULL},
    };
    test_add_suite("migrate", cases);
}
