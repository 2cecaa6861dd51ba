/* Integration harness: a fresh database per suite in the local stack's
 * PostgreSQL cluster (scripts/stack up; COFFER_PG_ADMIN_URL from
 * stack.env), migrated with the migrations compiled into coffer-api, and
 * dropped afterwards. Without a stack the test exits 77 (meson: skipped),
 * except under CI=true where a missing stack is a failure. */
#ifndef COFFER_TEST_HARNESS_H
#define COFFER_TEST_HARNESS_H

#include <libpq-fe.h>

typedef struct {
    char name[64];        /* database name */
    char conninfo[2048];  /* key=value connection string for it */
} harness_db;

/* Creates a uniquely named empty database. Returns 0 or -1 (printed). */
__attribute__((warn_unused_result))
int harness_db_create_empty(harness_db *db, const char *suite);

/* Creates a database and applies every embedded migration. */
__attribute__((warn_unused_result))
int harness_db_create(harness_db *db, const char *suite);

/* Drops the database (terminating any connection still open to it). */
void harness_db_drop(harness_db *db);

/* Opens a connection to db; NULL (printed) on failure. */
PGconn *harness_connect(const harness_db *db);

/* The login role coffer-api uses (scripts/stack creates it; a member of
 * coffer_app, not superuser, owner of nothing). */
#define HARNESS_APP_ROLE "coffer_api"

/* Opens a connection to db as HARNESS_APP_ROLE, so a test sees what
 * coffer-api sees (row-level security, privileges). Creates the role with
 * the admin connection when the cluster lacks it (db must be migrated:
 * coffer_app comes from the migrations). NULL (printed) on failure. */
PGconn *harness_db_connect_app(const harness_db *db);

/* Runs SQL that returns one value; copies it into out. -1 on error. */
__attribute__((warn_unused_result))
int harness_query_value(PGconn *conn, char *out, size_t out_len, const char *sql);

/* Runs SQL that returns no rows; -1 (printed) on error. */
__attribute__((warn_unused_result))
int harness_exec(PGconn *conn, const char *sql);

/* Exits 77 (skip) or 1 (CI) when no stack is configured. */
void harness_require_stack(void);

#endif
