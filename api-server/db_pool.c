#include "db_pool.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    PGconn *conn;
    uint64_t idle_since_ms;
} db_pool_slot;

struct db_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *conninfo;
    char *application_name;
    unsigned size;
    unsigned idle_check_ms;
    unsigned connect_timeout_s;
    unsigned statement_timeout_ms;
    db_pool_slot *idle;     /* stack of idle connections */
    unsigned n_idle;
    unsigned total;         /* idle + lent + being connected */
    unsigned waiting;
    int closed;
    uint64_t connects;
    uint64_t discarded;
};

static uint64_t db_pool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void db_pool_set_msg(char *msg, size_t len, const char *prefix, const char *detail)
{
    if (!msg || len == 0)
        return;
    snprintf(msg, len, "%s%s", prefix, detail ? detail : "");
    /* libpq messages end with a newline; keep one line. */
    msg[strcspn(msg, "\n")] = '\0';
}

const char *db_pool_strerror(db_pool_err err)
{
    switch (err) {
    case DB_POOL_OK: return "ok";
    case DB_POOL_EXHAUSTED: return "every database connection is busy";
    case DB_POOL_UNAVAILABLE: return "the database cannot be reached";
    case DB_POOL_CLOSED: return "the database pool is shutting down";
    }
    return "unknown pool error";
}

db_pool *db_pool_new(const db_pool_options *o)
{
    if (!o || !o->conninfo || o->size == 0 || o->size > 10000)
        return NULL;
    db_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conninfo = strdup(o->conninfo);
    p->application_name = strdup(o->application_name ? o->application_name : "coffer");
    p->idle = calloc(o->size, sizeof *p->idle);
    if (!p->conninfo || !p->application_name || !p->idle)
        goto fail;
    p->size = o->size;
    p->idle_check_ms = o->idle_check_ms;
    p->connect_timeout_s = o->connect_timeout_s < 2 ? 2 : o->connect_timeout_s;
    p->statement_timeout_ms = o->statement_timeout_ms;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto fail;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cond_rc = pthread_cond_init(&p->freed, &ca);
    pthread_condattr_destroy(&ca);
    if (cond_rc != 0) {
        pthread_mutex_destroy(&p->lock);
        goto fail;
    }
    return p;
fail:
    free(p->conninfo);
    free(p->application_name);
    free(p->idle);
    free(p);
    return NULL;
}

void db_pool_free(db_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    for (unsigned i = 0; i < p->n_idle; i++)
        PQfinish(p->idle[i].conn);
    if (p->total != p->n_idle)
        log_error("db.pool.leak", "lent=%u", p->total - p->n_idle);
    p->n_idle = 0;
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->conninfo);
    free(p->application_name);
    free(p->idle);
    free(p);
}

/* Opens a new connection; called without the lock held. */
static PGconn *db_pool_connect(db_pool *p, char *msg, size_t msg_len)
{
    char timeout[16], options[64];
    snprintf(timeout, sizeof timeout, "%u", p->connect_timeout_s);
    snprintf(options, sizeof options, "-c statement_timeout=%u", p->statement_timeout_ms);
    /* The first dbname is expanded as a URL or key=value string; the later
     * keywords override what it says. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {p->conninfo, timeout, p->application_name, options, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        db_pool_set_msg(msg, msg_len, "out of memory connecting to the database", NULL);
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        db_pool_set_msg(msg, msg_len, "cannot connect to the database: ", PQerrorMessage(c));
        log_warn("db.pool.connect_failed", "error=\"%.*s\"",
                 (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* A round trip proves the server is still there. */
static int db_pool_check(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK)
        return -1;
    PGresult *r = PQexec(c, "SELECT 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok && PQstatus(c) == CONNECTION_OK ? 0 : -1;
}

PGconn *db_pool_acquire(db_pool *p, unsigned timeout_ms, db_pool_err *err,
                        char *msg, size_t msg_len)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    *err = DB_POOL_OK;
    if (msg && msg_len)
        msg[0] = '\0';

    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->closed) {
            pthread_mutex_unlock(&p->lock);
            *err = DB_POOL_CLOSED;
            db_pool_set_msg(msg, msg_len, db_pool_strerror(*err), NULL);
            return NULL;
        }
        if (p->n_idle > 0) {
            db_pool_slot s = p->idle[--p->n_idle];
            pthread_mutex_unlock(&p->lock);
            uint64_t idle_for = db_pool_now_ms() - s.idle_since_ms;
            if (PQstatus(s.conn) == CONNECTION_OK &&
                (idle_for < p->idle_check_ms || db_pool_check(s.conn) == 0))
                return s.conn;
            /* Broken (server restarted, backend killed): replace it. */
            PQfinish(s.conn);
            pthread_mutex_lock(&p->lock);
            p->total--;
            p->discarded++;
            log_info("db.pool.discard", "reason=failed_check total=%u", p->total);
            continue;
        }
        if (p->total < p->size) {
            p->total++;
            pthread_mutex_unlock(&p->lock);
            PGconn *c = db_pool_connect(p, msg, msg_len);
            pthread_mutex_lock(&p->lock);
            if (!c) {
                p->total--;
                pthread_cond_signal(&p->freed);
                pthread_mutex_unlock(&p->lock);
                *err = DB_POOL_UNAVAILABLE;
                return NULL;
            }
            p->connects++;
            pthread_mutex_unlock(&p->lock);
            return c;
        }
        p->waiting++;
        int rc = pthread_cond_timedwait(&p->freed, &p->lock, &deadline);
        p->waiting--;
        if (rc == ETIMEDOUT && p->n_idle == 0 && p->total >= p->size) {
            pthread_mutex_unlock(&p->lock);
            *err = DB_POOL_EXHAUSTED;
            db_pool_set_msg(msg, msg_len, db_pool_strerror(*err), NULL);
            return NULL;
        }
    }
}

void db_pool_release(db_pool *p, PGconn *c)
{
    if (!c)
        return;
    int keep = PQstatus(c) == CONNECTION_OK;
    if (keep && PQtransactionStatus(c) != PQTRANS_IDLE) {
        /* A handler that returned mid-transaction (an error path) must not
         * leak its half-done work to the next caller. */
        PGresult *r = PQexec(c, "ROLLBACK");
        keep = PQresultStatus(r) == PGRES_COMMAND_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
        PQclear(r);
        log_warn("db.pool.rollback_on_release", "kept=%d", keep);
    }
    pthread_mutex_lock(&p->lock);
    if (keep && !p->closed && p->n_idle < p->size) {
        p->idle[p->n_idle].conn = c;
        p->idle[p->n_idle].idle_since_ms = db_pool_now_ms();
        p->n_idle++;
    } else {
        PQfinish(c);
        p->total--;
        p->discarded++;
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

int db_pool_ping(db_pool *p, unsigned timeout_ms, char *msg, size_t msg_len)
{
    db_pool_err err;
    PGconn *c = db_pool_acquire(p, timeout_ms, &err, msg, msg_len);
    if (!c)
        return -1;
    int rc = db_pool_check(c);
    if (rc != 0)
        db_pool_set_msg(msg, msg_len, "database round trip failed: ", PQerrorMessage(c));
    db_pool_release(p, c);
    return rc;
}

void db_pool_get_stats(db_pool *p, db_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->total = p->total;
    out->idle = p->n_idle;
    out->waiting = p->waiting;
    out->connects = p->connects;
    out->discarded = p->discarded;
    pthread_mutex_unlock(&p->lock);
}
