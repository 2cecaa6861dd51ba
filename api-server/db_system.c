#include "db_system.h"

#include "log.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t db_system_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int db_system_schema_version(PGconn *conn, uint32_t *out)
{
    PGresult *r = PQexecParams(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, NULL,
                               NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        char *end;
        unsigned long v = strtoul(PQgetvalue(r, 0, 0), &end, 10);
        if (*end == '\0' && v <= UINT32_MAX) {
            *out = (uint32_t)v;
            rc = 0;
        }
    }
    PQclear(r);
    return rc;
}

int db_system_round_trip(PGconn *conn)
{
    PGresult *r = PQexecParams(conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

const char *db_system_server_version(PGconn *conn)
{
    const char *v = PQparameterStatus(conn, "server_version");
    return v ? v : "unknown";
}

int db_system_probe(void *arg, char *detail, size_t detail_len, unsigned timeout_ms)
{
    db_system_probe_state *st = arg;
    if (db_pool_ping(st->pool, timeout_ms, detail, detail_len) != 0)
        return -1;
    db_pool_err err;
    PGconn *c = db_pool_acquire(st->pool, timeout_ms, &err, detail, detail_len);
    if (!c)
        return -1;
    uint32_t v;
    int rc = db_system_schema_version(c, &v);
    if (rc == 0)
        atomic_store(&st->schema_version, v);
    else
        snprintf(detail, detail_len, "cannot read schema_migrations (is the database migrated?)");
    db_pool_release(st->pool, c);
    return rc;
}

/* Reads what is left of the current query's results; 0 when it ended
 * cleanly, -1 on error or cancellation. */
static int db_system_drain(PGconn *conn)
{
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = -1;
        PQclear(r);
    }
    return rc;
}

int db_system_hold(PGconn *conn, uint64_t *held_ms, unsigned ms, bool (*should_stop)(void *arg), void *arg)
{
    char param[32];
    snprintf(param, sizeof param, "%u", ms);
    const char *values[1] = {param};
    uint64_t t0 = db_system_now_ms();
    *held_ms = 0;
    if (!PQsendQueryParams(conn, "SELECT pg_sleep($1::float8 / 1000)", 1, NULL, values, NULL, NULL, 0))
        return -1;
    int stopped = 0;
    while (PQisBusy(conn)) {
        if (!stopped && should_stop && should_stop(arg)) {
            char err[256];
            PGcancel *cancel = PQgetCancel(conn);
            if (!cancel || !PQcancel(cancel, err, sizeof err))
                log_warn("db.hold.cancel_failed", NULL);
            PQfreeCancel(cancel);
            stopped = 1;
        }
        struct pollfd p = {PQsocket(conn), POLLIN, 0};
        if (p.fd < 0)
            return -1;
        if (poll(&p, 1, 50) < 0)
            continue;
        if (!PQconsumeInput(conn))
            return -1;
    }
    int rc = db_system_drain(conn);
    *held_ms = db_system_now_ms() - t0;
    if (stopped)
        return 1;
    return rc == 0 ? 0 : -1;
}
