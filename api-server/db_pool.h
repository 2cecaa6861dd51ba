/* db_pool: a bounded pool of libpq connections shared by handler threads.
 * At most `size` connections exist at once; a caller that finds none free
 * waits up to its timeout. Connections are made lazily, health-checked
 * with a round trip when they have been idle longer than idle_check_ms,
 * and replaced when broken, so the pool reconnects by itself after the
 * server restarts. A connection handed back inside a transaction is rolled
 * back before anyone else gets it. */
#ifndef COFFER_DB_POOL_H
#define COFFER_DB_POOL_H

#include <libpq-fe.h>
#include <stdint.h>

typedef struct db_pool db_pool;

typedef struct {
    const char *conninfo;          /* libpq URL or key=value string (copied) */
    unsigned size;                 /* maximum connections, >= 1 */
    unsigned idle_check_ms;        /* ping a connection idle for longer than this */
    unsigned connect_timeout_s;    /* libpq connect_timeout, >= 2 */
    unsigned statement_timeout_ms; /* server-side statement_timeout, 0 = none */
    const char *application_name;  /* shown in pg_stat_activity (copied) */
} db_pool_options;

typedef enum {
    DB_POOL_OK = 0,
    DB_POOL_EXHAUSTED,   /* every connection busy for the whole timeout */
    DB_POOL_UNAVAILABLE, /* the server cannot be reached */
    DB_POOL_CLOSED,      /* the pool is shutting down */
} db_pool_err;

typedef struct {
    unsigned total;      /* connections open now */
    unsigned idle;       /* of which idle */
    unsigned waiting;    /* callers waiting for one */
    uint64_t connects;   /* connections made since start */
    uint64_t discarded;  /* broken connections thrown away */
} db_pool_stats;

/* Creates a pool. No connection is made yet. Returns NULL when the options
 * are invalid or memory is short. */
__attribute__((warn_unused_result))
db_pool *db_pool_new(const db_pool_options *options);

/* Closes every idle connection and frees the pool. Every connection must
 * have been released. Accepts NULL. */
void db_pool_free(db_pool *pool);

/* Takes a healthy connection, waiting up to timeout_ms for a free one.
 * Returns the connection, or NULL with *err (and, when err_msg is not NULL,
 * a human-readable reason in err_msg[0..err_msg_len)) saying why. */
__attribute__((warn_unused_result))
PGconn *db_pool_acquire(db_pool *pool, unsigned timeout_ms, db_pool_err *err,
                        char *err_msg, size_t err_msg_len);

/* Hands a connection back. A broken one is closed; one left inside a
 * transaction is rolled back first. conn may be NULL. */
void db_pool_release(db_pool *pool, PGconn *conn);

/* Health probe: acquires a connection (forcing a round trip) within
 * timeout_ms. Returns 0 when the database answered, -1 otherwise. */
__attribute__((warn_unused_result))
int db_pool_ping(db_pool *pool, unsigned timeout_ms, char *err_msg, size_t err_msg_len);

void db_pool_get_stats(db_pool *pool, db_pool_stats *out);

const char *db_pool_strerror(db_pool_err err);

#endif
