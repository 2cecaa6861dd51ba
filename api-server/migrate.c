#include "migrate.h"

#include "hex.h"
#include "log.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Advisory lock key shared by every coffer-api: ASCII "coffer" + 1. */
#define MIGRATE_LOCK_KEY "109270750733569"

typedef struct {
    unsigned version;
    char name[128];
    char checksum[MIGRATE_CHECKSUM_HEX_LEN + 1];
    char applied_at[64];
} migrate_row;

static void migrate_fail(migrate_report *report, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void migrate_fail(migrate_report *report, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->error, sizeof report->error, fmt, ap);
    va_end(ap);
}

void migrate_checksum(char out[MIGRATE_CHECKSUM_HEX_LEN + 1], const migration *m)
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)m->sql, m->sql_len);
    hex_encode(out, digest, sizeof digest);
}

/* One line of PostgreSQL's error: primary message, the line of the file it
 * points at, and the detail when there is one. */
static void migrate_describe_pg_error(char *out, size_t out_len, const PGresult *res,
                                      PGconn *conn, const migration *m)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
    unsigned line = 0;
    if (pos && m) {
        /* PostgreSQL counts characters from 1; the files are ASCII SQL. */
        long at = strtol(pos, NULL, 10);
        line = 1;
        for (long i = 0; i < at - 1 && (size_t)i < m->sql_len; i++)
            if (m->sql[i] == '\n')
                line++;
    }
    if (!primary) {
        const char *msg = PQerrorMessage(conn);
        snprintf(out, out_len, "%.*s", (int)strcspn(msg, "\n"), msg);
        return;
    }
    int n = snprintf(out, out_len, "%s", primary);
    if (line && n >= 0 && (size_t)n < out_len)
        n += snprintf(out + n, out_len - (size_t)n, " (line %u)", line);
    if (detail && n >= 0 && (size_t)n < out_len)
        snprintf(out + n, out_len - (size_t)n, "; %s", detail);
}

static int migrate_exec_ok(migrate_report *report, PGconn *conn, const char *sql,
                           const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char why[512];
        migrate_describe_pg_error(why, sizeof why, res, conn, NULL);
        migrate_fail(report, "%s: %s", what, why);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Reads schema_migrations into a malloc'd array (NULL and 0 rows when the
 * table does not exist yet). */
static int migrate_read_rows(migrate_report *report, PGconn *conn,
                             migrate_row **rows_out, size_t *n_out)
{
    int rc = -1;
    migrate_row *rows = NULL;
    PGresult *res = PQexec(conn, "SELECT to_regclass('public.schema_migrations') IS NOT NULL");
    *rows_out = NULL;
    *n_out = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char why[512];
        migrate_describe_pg_error(why, sizeof why, res, conn, NULL);
        migrate_fail(report, "cannot inspect the database: %s", why);
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        rc = 0;
        goto out;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT version, name, checksum, "
                       "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                       "FROM public.schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char why[512];
        migrate_describe_pg_error(why, sizeof why, res, conn, NULL);
        migrate_fail(report, "cannot read schema_migrations: %s", why);
        goto out;
    }
    int n = PQntuples(res);
    if (n > 0) {
        rows = calloc((size_t)n, sizeof *rows);
        if (!rows) {
            migrate_fail(report, "out of memory reading %d migration rows", n);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        rows[i].version = (unsigned)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(rows[i].name, sizeof rows[i].name, "%s", PQgetvalue(res, i, 1));
        snprintf(rows[i].checksum, sizeof rows[i].checksum, "%s", PQgetvalue(res, i, 2));
        snprintf(rows[i].applied_at, sizeof rows[i].applied_at, "%s", PQgetvalue(res, i, 3));
    }
    *rows_out = rows;
    *n_out = (size_t)n;
    rows = NULL;
    rc = 0;
out:
    free(rows);
    PQclear(res);
    return rc;
}

static int migrate_check_set(migrate_report *report, const migration *set, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (set[i].version != i + 1) {
            migrate_fail(report, "migration set is out of order: %s has version %u, expected %zu",
                         set[i].name, set[i].version, i + 1);
            return -1;
        }
    }
    return 0;
}

/* Compares what the database recorded with the set: every recorded row must
 * be in the set with the same name and checksum, versions 1..n. */
static int migrate_check_rows(migrate_report *report, const migrate_row *rows, size_t n,
                              const migration *set, size_t count)
{
    for (size_t i = 0; i < n; i++) {
        const migrate_row *r = &rows[i];
        if (r->version != i + 1) {
            migrate_fail(report, "schema_migrations has a gap: version %zu is missing before %u",
                         i + 1, r->version);
            return -1;
        }
        if (r->version > count) {
            migrate_fail(report, "the database has migration %s (version %u) that this binary does not "
                         "know; it was migrated by a newer coffer-api", r->name, r->version);
            return -1;
        }
        const migration *m = &set[r->version - 1];
        char sum[MIGRATE_CHECKSUM_HEX_LEN + 1];
        migrate_checksum(sum, m);
        if (strcmp(r->name, m->name) != 0) {
            migrate_fail(report, "migration %u is recorded as %s but this binary calls it %s; "
                         "landed migrations must never be renamed", r->version, r->name, m->name);
            return -1;
        }
        if (strcmp(r->checksum, sum) != 0) {
            migrate_fail(report, "migration %s.sql was edited after it was applied (recorded sha256 %.12s..., "
                         "file sha256 %.12s...); landed migrations must never change: "
                         "restore the file and add a new migration instead",
                         m->name, r->checksum, sum);
            return -1;
        }
    }
    return 0;
}

static double migrate_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int migrate_apply_one(migrate_report *report, PGconn *conn, const migration *m)
{
    char sum[MIGRATE_CHECKSUM_HEX_LEN + 1];
    char version[16], duration[16];
    double t0 = migrate_now_ms();
    migrate_checksum(sum, m);

    if (migrate_exec_ok(report, conn, "BEGIN", m->name) != 0)
        return -1;
    /* The SQL goes through PQexec as one string so a file may hold many
     * statements; it is our own, compiled into the binary, never input. */
    PGresult *res = PQexec(conn, m->sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        char why[700];
        migrate_describe_pg_error(why, sizeof why, res, conn, m);
        migrate_fail(report, "migration %s.sql failed and was rolled back: %s", m->name, why);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);

    snprintf(version, sizeof version, "%u", m->version);
    snprintf(duration, sizeof duration, "%ld", (long)(migrate_now_ms() - t0));
    const char *params[4] = {version, m->name, sum, duration};
    res = PQexecParams(conn,
                       "INSERT INTO public.schema_migrations (version, name, checksum, duration_ms) "
                       "VALUES ($1::integer, $2, $3, $4::integer)",
                       4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char why[512];
        migrate_describe_pg_error(why, sizeof why, res, conn, NULL);
        migrate_fail(report, "migration %s.sql: cannot record it in schema_migrations: %s", m->name, why);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);
    if (migrate_exec_ok(report, conn, "COMMIT", m->name) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    log_info("migrate.applied", "migration=%s version=%u duration_ms=%s", m->name, m->version, duration);
    return 0;
}

static void migrate_notice_quiet(void *arg, const char *message)
{
    (void)arg;
    log_debug("migrate.notice", "message_len=%zu", strlen(message));
}

int migrate_run(migrate_report *report, PGconn *conn, const migration *set, size_t count)
{
    int rc = -1;
    int locked = 0;
    migrate_row *rows = NULL;
    size_t n = 0;
    memset(report, 0, sizeof *report);

    if (migrate_check_set(report, set, count) != 0)
        return -1;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        migrate_fail(report, "the connection is busy or inside a transaction");
        return -1;
    }
    PQnoticeProcessor old = PQsetNoticeProcessor(conn, migrate_notice_quiet, NULL);
    if (migrate_exec_ok(report, conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
                        "cannot take the migration lock") != 0)
        goto out;
    locked = 1;
    if (migrate_read_rows(report, conn, &rows, &n) != 0)
        goto out;
    if (migrate_check_rows(report, rows, n, set, count) != 0)
        goto out;
    report->version_before = (unsigned)n;
    report->version_after = (unsigned)n;
    for (size_t i = n; i < count; i++) {
        if (migrate_apply_one(report, conn, &set[i]) != 0)
            goto out;
        report->applied++;
        report->version_after = set[i].version;
    }
    rc = 0;
out:
    if (locked) {
        migrate_report ignored;
        if (migrate_exec_ok(&ignored, conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")",
                            "unlock") != 0)
            log_warn("migrate.unlock_failed", "detail=%s", ignored.error);
    }
    PQsetNoticeProcessor(conn, old, NULL);
    free(rows);
    return rc;
}

int migrate_status(migrate_report *report, FILE *out, PGconn *conn,
                   const migration *set, size_t count)
{
    migrate_row *rows = NULL;
    size_t n = 0;
    int rc = 0;
    memset(report, 0, sizeof *report);
    if (migrate_check_set(report, set, count) != 0)
        return -1;
    if (migrate_read_rows(report, conn, &rows, &n) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        const migration *m = &set[i];
        const migrate_row *r = NULL;
        for (size_t j = 0; j < n; j++)
            if (rows[j].version == m->version)
                r = &rows[j];
        if (!r) {
            fprintf(out, "%s  pending\n", m->name);
            if (rc == 0)
                rc = 1;
            continue;
        }
        char sum[MIGRATE_CHECKSUM_HEX_LEN + 1];
        migrate_checksum(sum, m);
        if (strcmp(sum, r->checksum) != 0 || strcmp(r->name, m->name) != 0) {
            fprintf(out, "%s  EDITED after it was applied on %s\n", m->name, r->applied_at);
            rc = -1;
        } else {
            fprintf(out, "%s  applied %s\n", m->name, r->applied_at);
        }
    }
    for (size_t j = 0; j < n; j++) {
        if (rows[j].version > count) {
            fprintf(out, "%s  UNKNOWN to this binary (applied %s by a newer coffer-api)\n",
                    rows[j].name, rows[j].applied_at);
            rc = -1;
        }
    }
    if (rc < 0)
        migrate_fail(report, "the database disagrees with this binary's migrations");
    report->version_before = report->version_after = (unsigned)n;
    free(rows);
    return rc;
}
