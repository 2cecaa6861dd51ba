/* db_system: the SQL behind SystemService and the database health probe. */
#ifndef COFFER_DB_SYSTEM_H
#define COFFER_DB_SYSTEM_H

#include "db_pool.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* State of the "db" health component: the pool to probe and what the last
 * successful probe learnt. */
typedef struct {
    db_pool *pool;
    _Atomic uint32_t schema_version; /* highest applied migration, 0 until known */
} db_system_probe_state;

/* health_probe_fn for the database: a pool round trip (db_pool_ping, waiting
 * at most timeout_ms for a connection), then the schema version. arg: a
 * db_system_probe_state. Returns 0 when PostgreSQL answered, else -1 with
 * detail. */
int db_system_probe(void *arg, char *detail, size_t detail_len, unsigned timeout_ms);

/* Highest applied migration into *out (0 when none). Returns 0 or -1. */
__attribute__((warn_unused_result))
int db_system_schema_version(PGconn *conn, uint32_t *out);

/* One SELECT 1. Returns 0 or -1. */
__attribute__((warn_unused_result))
int db_system_round_trip(PGconn *conn);

/* PostgreSQL's server_version as reported at connection time ("15.6 ..."). */
const char *db_system_server_version(PGconn *conn);

/* Keeps conn busy for ms milliseconds (pg_sleep), polling should_stop(arg)
 * every 50 ms; when it says stop, the query is cancelled on the server.
 * *held_ms gets the time spent. Returns 0 when the hold ran to its end,
 * 1 when it was stopped early, -1 on a database error. */
__attribute__((warn_unused_result))
int db_system_hold(PGconn *conn, uint64_t *held_ms, unsigned ms, bool (*should_stop)(void *arg), void *arg);

#endif
