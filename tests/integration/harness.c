#include "harness.h"

#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *harness_admin_url(void)
{
    return getenv("COFFER_PG_ADMIN_URL");
}

void harness_require_stack(void)
{
    const char *url = harness_admin_url();
    if (url && *url)
        return;
    const char *ci = getenv("CI");
    fprintf(stderr, "harness: COFFER_PG_ADMIN_URL is not set; run through scripts/test "
                    "or source a stack.env from scripts/stack up\n");
    exit(ci && strcmp(ci, "true") == 0 ? 1 : 77);
}

/* Appends key='value' (libpq quoting) to out. */
static void harness_append_kv(char *out, size_t cap, const char *key, const char *val)
{
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, cap - n, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < cap; p++) {
        if (*p == '\'' || *p == '\\')
            out[n++] = '\\';
        out[n++] = *p;
    }
    out[n] = '\0';
    snprintf(out + n, cap - n, "'");
}

/* The parameters of `base` (a URL or key=value string) with `key`
 * replaced by `val`. */
static int harness_conninfo_replace(char *out, size_t cap, const char *base, const char *key,
                                    const char *val)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (!opts) {
        fprintf(stderr, "harness: bad connection string: %s\n", err ? err : "?");
        PQfreemem(err);
        return -1;
    }
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, key) == 0)
            continue;
        harness_append_kv(out, cap, o->keyword, o->val);
    }
    harness_append_kv(out, cap, key, val);
    PQconninfoFree(opts);
    return 0;
}

/* The admin URL's parameters with dbname replaced. */
static int harness_conninfo_for(char *out, size_t cap, const char *dbname)
{
    return harness_conninfo_replace(out, cap, harness_admin_url(), "dbname", dbname);
}

static PGconn *harness_admin_connect(void)
{
    PGconn *c = PQconnectdb(harness_admin_url());
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to %s: %s", harness_admin_url(), PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int harness_exec(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    return ok ? 0 : -1;
}

int harness_query_value(PGconn *conn, char *out, size_t out_len, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int rc = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1) {
        fprintf(stderr, "harness: %s: %s (%d rows)\n", sql, PQerrorMessage(conn), PQntuples(r));
    } else {
        snprintf(out, out_len, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int harness_db_create_empty(harness_db *db, const char *suite)
{
    static unsigned seq;
    char sql[256];
    struct timespec ts;
    harness_require_stack();
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(db->name, sizeof db->name, "t_%.20s_%ld_%u_%ld", suite, (long)getpid(), seq++,
             ts.tv_nsec % 100000);
    for (char *p = db->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    if (harness_conninfo_for(db->conninfo, sizeof db->conninfo, db->name) != 0)
        return -1;
    PGconn *admin = harness_admin_connect();
    if (!admin)
        return -1;
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", db->name);
    int rc = harness_exec(admin, sql);
    PQfinish(admin);
    return rc;
}

int harness_db_create(harness_db *db, const char *suite)
{
    if (harness_db_create_empty(db, suite) != 0)
        return -1;
    PGconn *c = harness_connect(db);
    if (!c)
        return -1;
    size_t n;
    const migration *set = migrations_embedded(&n);
    migrate_report rep;
    int rc = migrate_run(&rep, c, set, n);
    if (rc != 0)
        fprintf(stderr, "harness: migrating %s: %s\n", db->name, rep.error);
    PQfinish(c);
    return rc;
}

void harness_db_drop(harness_db *db)
{
    char sql[256];
    if (!db->name[0])
        return;
    PGconn *admin = harness_admin_connect();
    if (!admin)
        return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
    if (harness_exec(admin, sql) != 0)
        fprintf(stderr, "harness: could not drop %s\n", db->name);
    PQfinish(admin);
    db->name[0] = '\0';
}

PGconn *harness_connect(const harness_db *db)
{
    PGconn *c = PQconnectdb(db->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to %s: %s", db->name, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Creates HARNESS_APP_ROLE when the cluster lacks it (as scripts/stack
 * does), tolerating a concurrent test doing the same. */
static int harness_ensure_app_role(void)
{
    PGconn *admin = harness_admin_connect();
    if (!admin)
        return -1;
    int rc = harness_exec(admin,
        "DO $$\n"
        "BEGIN\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '" HARNESS_APP_ROLE "') THEN\n"
        "        BEGIN\n"
        "            CREATE ROLE " HARNESS_APP_ROLE " LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE coffer_app;\n"
        "        EXCEPTION WHEN duplicate_object OR unique_violation THEN\n"
        "            NULL;\n"
        "        END;\n"
        "    END IF;\n"
        "END\n"
        "$$");
    PQfinish(admin);
    return rc;
}

PGconn *harness_db_connect_app(const harness_db *db)
{
    char conninfo[sizeof db->conninfo + 64];
    if (harness_ensure_app_role() != 0)
        return NULL;
    if (harness_conninfo_replace(conninfo, sizeof conninfo, db->conninfo, "user", HARNESS_APP_ROLE) != 0)
        return NULL;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to %s as %s: %s", db->name, HARNESS_APP_ROLE,
                PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}
