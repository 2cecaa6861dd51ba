/* ledger_db: see ledger_db.h. */
#include "ledger_db.h"

#include "hex.h"
#include "log.h"
#include "sealbox.h"

#include <libpq-events.h>

#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEDGER_ACTOR_MAX 80u
#define LEDGER_CLEANUP_EVERY 64u     /* idempotency inserts between expired-row sweeps */
#define LEDGER_CLEANUP_BATCH "100"
#define LEDGER_RESP_PLAIN 0x00u      /* stored response: tag byte, then the packed message */
#define LEDGER_RESP_SEALED 0x01u     /* tag byte, then sealbox output */
#define LEDGER_DEFER_MAX 16u         /* queued statements before a forced flush */

/* A statement queued by ledger_defer: sql is borrowed (a literal), the
 * parameters are copied into one block (pointers, then the strings). */
typedef struct {
    const char *sql;
    int n_params;
    char **params;
    size_t params_size;
} ledger_deferred;

struct ledger_tx {
    rpc_ctx *ctx;               /* NULL under ledger_run_plain */
    PGconn *conn;
    char client_id[AUTH_ID_MAX];
    char actor[LEDGER_ACTOR_MAX];
    int64_t deadline_ms;        /* ledger_run_plain: CLOCK_MONOTONIC; INT64_MAX none */
    char *msg;                  /* ledger_run_plain's message buffer */
    size_t msg_len;
    bool retry;                 /* a statement hit 40001/40P01: re-run the transaction */
    bool broken;                /* the connection failed: do not re-run */
    ledger_deferred deferred[LEDGER_DEFER_MAX]; /* queued, not yet sent (BEGIN first) */
    unsigned n_deferred;
};

/* Process-wide settings (ledger_db_configure); read-only while serving. */
static unsigned ledger_statement_cap_ms = 30000u;
static int64_t ledger_idem_ttl_s = 86400;
static sealbox *ledger_idem_seal;
static atomic_uint ledger_idem_inserts;

void ledger_db_configure(unsigned statement_timeout_ms, int64_t idempotency_ttl_s, sealbox *response_seal)
{
    ledger_statement_cap_ms = statement_timeout_ms;
    ledger_idem_ttl_s = idempotency_ttl_s > 0 ? idempotency_ttl_s : 1;
    ledger_idem_seal = response_seal;
}

static int64_t ledger_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rpc_ctx *ledger_tx_ctx(const ledger_tx *tx)
{
    return tx->ctx;
}

PGconn *ledger_tx_conn(const ledger_tx *tx)
{
    return tx->conn;
}

const char *ledger_tx_client_id(const ledger_tx *tx)
{
    return tx->client_id;
}

const char *ledger_tx_actor(const ledger_tx *tx)
{
    return tx->actor;
}

void ledger_tx_set_actor(ledger_tx *tx, const char *actor)
{
    snprintf(tx->actor, sizeof tx->actor, "%s", actor ? actor : "system");
}

__attribute__((format(printf, 3, 0)))
static rpc_code ledger_failv(ledger_tx *tx, rpc_code code, const char *fmt, va_list ap)
{
    char buf[RPC_MESSAGE_MAX];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (tx->ctx)
        return rpc_ctx_fail(tx->ctx, code, "%s", buf);
    if (tx->msg && tx->msg_len)
        snprintf(tx->msg, tx->msg_len, "%s", buf);
    return code;
}

rpc_code ledger_fail(ledger_tx *tx, rpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rpc_code c = ledger_failv(tx, code, fmt, ap);
    va_end(ap);
    return c;
}

/* RPC_OK, or the code for a call that should stop now (status set). */
static rpc_code ledger_check_stop(ledger_tx *tx)
{
    if (tx->ctx) {
        if (!rpc_ctx_should_stop(tx->ctx))
            return RPC_OK;
        if (rpc_ctx_remaining_ms(tx->ctx) <= 0)
            return ledger_fail(tx, RPC_DEADLINE_EXCEEDED, "the deadline passed; nothing was changed");
        return ledger_fail(tx, RPC_CANCELLED, "the call was cancelled; nothing was changed");
    }
    if (tx->deadline_ms != INT64_MAX && ledger_now_ms() >= tx->deadline_ms)
        return ledger_fail(tx, RPC_DEADLINE_EXCEEDED, "the time limit passed; nothing was changed");
    return RPC_OK;
}

/* Maps a failed statement's result to a code, logging what the caller
 * must not see. Sets tx->retry for serialization failures and deadlocks. */
static rpc_code ledger_map_error(ledger_tx *tx, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    char qm[300], qc[140];
    log_quote(qm, sizeof qm, primary ? primary : PQerrorMessage(tx->conn));
    log_quote(qc, sizeof qc, constraint ? constraint : "");
    if (!state || PQstatus(tx->conn) != CONNECTION_OK) {
        tx->broken = PQstatus(tx->conn) != CONNECTION_OK;
        log_warn("ledger.db_error", "sqlstate=%s connection=%s message=%s", state ? state : "none",
                 tx->broken ? "bad" : "ok", qm);
        return ledger_fail(tx, RPC_UNAVAILABLE, "the database connection failed; retry with backoff "
                           "(with the same idempotency-key, a retry is safe)");
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        tx->retry = true;
        log_info("ledger.conflict", "sqlstate=%s", state);
        return ledger_fail(tx, RPC_ABORTED, "the transaction conflicted with a concurrent one; retry");
    }
    if (strcmp(state, "23505") == 0) {
        log_info("ledger.unique_violation", "constraint=%s", qc);
        return ledger_fail(tx, RPC_ALREADY_EXISTS, "a record with these values already exists%s%s",
                           constraint ? ": " : "", constraint ? constraint : "");
    }
    if (strcmp(state, "23514") == 0 || strcmp(state, "23P01") == 0 || strcmp(state, "23503") == 0 ||
        strcmp(state, "P0001") == 0) {
        /* Check constraints and our own triggers' refusals: their
         * messages are ours (schema text, no SQL, no parameters). */
        log_info("ledger.refused", "sqlstate=%s constraint=%s message=%s", state, qc, qm);
        if (constraint && (!primary || strncmp(primary, "new row", 7) == 0))
            return ledger_fail(tx, RPC_FAILED_PRECONDITION, "refused by the ledger: constraint %s", constraint);
        return ledger_fail(tx, RPC_FAILED_PRECONDITION, "refused by the ledger: %s", primary ? primary : state);
    }
    if (strcmp(state, "57014") == 0)
        return ledger_fail(tx, RPC_DEADLINE_EXCEEDED, "the deadline passed while the database worked; "
                           "nothing was changed");
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 || strcmp(state, "55P03") == 0) {
        log_warn("ledger.db_unavailable", "sqlstate=%s message=%s", state, qm);
        return ledger_fail(tx, RPC_UNAVAILABLE, "the database is unavailable; retry with backoff");
    }
    if (strncmp(state, "22", 2) == 0) {
        log_warn("ledger.data_exception", "sqlstate=%s message=%s", state, qm);
        return ledger_fail(tx, RPC_INVALID_ARGUMENT, "a value is malformed or out of range");
    }
    log_error("ledger.internal", "sqlstate=%s constraint=%s message=%s", state, qc, qm);
    return ledger_fail(tx, RPC_INTERNAL, "internal error (request id %s)",
                       tx->ctx ? rpc_ctx_request_id(tx->ctx) : log_get_request_id());
}

/* ---- queued statements and pipelines ------------------------------------- */

static void ledger_defer_clear(ledger_tx *tx)
{
    for (unsigned i = 0; i < tx->n_deferred; i++) {
        sodium_memzero(tx->deferred[i].params, tx->deferred[i].params_size);
        free(tx->deferred[i].params);
    }
    memset(tx->deferred, 0, sizeof tx->deferred);
    tx->n_deferred = 0;
}

/* Statements with parameters run as named prepared statements, prepared
 * once per connection (in the pipeline that first uses them), so the
 * server parses, analyses and plans them once instead of at every call
 * (that was about a third of the database's CPU per CompleteDeposit). The
 * names are "ldb_" + BLAKE2b-128 of the SQL text in hex; what a connection
 * has prepared is kept with it through libpq's event system
 * (PQinstanceData), dropped on reset and freed with the connection. */
#define LEDGER_STMT_KEY 16u
#define LEDGER_STMT_SLOTS 512u       /* per connection; beyond, statements run unnamed */

typedef struct {
    uint8_t keys[LEDGER_STMT_SLOTS][LEDGER_STMT_KEY];
    bool used[LEDGER_STMT_SLOTS];
    unsigned n;
    bool stale;                       /* the server's set is unknown: DEALLOCATE ALL first */
} ledger_stmts;

static int ledger_conn_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET) {
        ledger_stmts *s = PQinstanceData(((PGEventConnReset *)info)->conn, ledger_conn_event);
        if (s)
            memset(s, 0, sizeof *s);
    } else if (id == PGEVT_CONNDESTROY) {
        PGconn *conn = ((PGEventConnDestroy *)info)->conn;
        free(PQinstanceData(conn, ledger_conn_event));
        PQsetInstanceData(conn, ledger_conn_event, NULL);
    }
    return 1;
}

/* The connection's set, created on first use; NULL: run unnamed. */
static ledger_stmts *ledger_stmts_of(PGconn *conn)
{
    ledger_stmts *s = PQinstanceData(conn, ledger_conn_event);
    if (s)
        return s;
    if (!PQregisterEventProc(conn, ledger_conn_event, "coffer.ledger_db", NULL) &&
        !PQsetInstanceData(conn, ledger_conn_event, NULL))
        return NULL; /* could not register (and was not registered before) */
    s = calloc(1, sizeof *s);
    if (s && !PQsetInstanceData(conn, ledger_conn_event, s)) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Finds key in s: its slot and true, or the free slot for it and false
 * (*slot UINT32_MAX when there is none). */
static bool ledger_stmts_find(const ledger_stmts *s, const uint8_t key[LEDGER_STMT_KEY], uint32_t *slot)
{
    uint32_t h;
    memcpy(&h, key, sizeof h);
    for (unsigned i = 0; i < LEDGER_STMT_SLOTS; i++) {
        uint32_t j = (h + i) % LEDGER_STMT_SLOTS;
        if (!s->used[j]) {
            *slot = j;
            return false;
        }
        if (memcmp(s->keys[j], key, LEDGER_STMT_KEY) == 0) {
            *slot = j;
            return true;
        }
    }
    *slot = UINT32_MAX;
    return false;
}

/* Records key as prepared on this connection. false when there is no
 * room: the caller must not rely on it (ledger_send keeps a quarter of the
 * slots free for the statements one pipeline prepares). */
static bool ledger_stmts_add(ledger_stmts *s, const uint8_t key[LEDGER_STMT_KEY])
{
    uint32_t slot;
    if (ledger_stmts_find(s, key, &slot))
        return true;
    if (slot == UINT32_MAX)
        return false;
    memcpy(s->keys[slot], key, LEDGER_STMT_KEY);
    s->used[slot] = true;
    s->n++;
    return true;
}

/* One protocol command of a pipeline. */
typedef struct {
    bool prepare;                     /* a Parse whose success adds key to the set */
    bool tail;                        /* the caller's statement (its result is returned) */
    uint8_t key[LEDGER_STMT_KEY];
} ledger_cmd;

/* Sends one statement as a prepared one (preparing it first when this
 * connection has not) or unnamed. Returns false when libpq refused. */
static bool ledger_send(PGconn *conn, ledger_stmts *set, ledger_cmd *cmds, unsigned *n_cmds, bool tail,
                        const char *sql, int n_params, const char *const *params)
{
    if (set && n_params > 0) {
        uint8_t key[LEDGER_STMT_KEY];
        crypto_generichash(key, sizeof key, (const uint8_t *)sql, strlen(sql), NULL, 0);
        char name[4 + 2 * LEDGER_STMT_KEY + 1] = "ldb_";
        hex_encode(name + 4, key, sizeof key);
        uint32_t slot;
        bool have = ledger_stmts_find(set, key, &slot);
        if (!have && (set->n + 1) * 4 <= LEDGER_STMT_SLOTS * 3) {
            /* Several uses of one new statement in a pipeline: the
             * first one prepares it. */
            for (unsigned i = 0; i < *n_cmds && !have; i++)
                have = cmds[i].prepare && memcmp(cmds[i].key, key, sizeof key) == 0;
            if (!have) {
                if (PQsendPrepare(conn, name, sql, n_params, NULL) != 1)
                    return false;
                cmds[*n_cmds] = (ledger_cmd){.prepare = true};
                memcpy(cmds[*n_cmds].key, key, sizeof key);
                (*n_cmds)++;
                have = true;
            }
        }
        if (have) {
            if (PQsendQueryPrepared(conn, name, n_params, params, NULL, NULL, 0) != 1)
                return false;
            cmds[(*n_cmds)++] = (ledger_cmd){.tail = tail};
            return true;
        }
    }
    if (PQsendQueryParams(conn, sql, n_params, NULL, params, NULL, NULL, 0) != 1)
        return false;
    cmds[(*n_cmds)++] = (ledger_cmd){.tail = tail};
    return true;
}

/* Sends the queued statements, then sql when it is not NULL, as one libpq
 * pipeline (one round trip), and empties the queue. Returns sql's result
 * for the caller to PQclear (NULL with *code RPC_OK when sql is NULL), or
 * NULL with *code set: the first statement that failed is mapped as
 * ledger_map_error does (the server skipped the rest up to the sync, and an
 * explicit transaction is left aborted for the caller to roll back). */
static PGresult *ledger_pipeline(ledger_tx *tx, rpc_code *code, const char *sql, int n_params,
                                 const char *const *params)
{
    PGconn *conn = tx->conn;
    PGresult *out = NULL, *err = NULL;
    ledger_cmd cmds[2 * (LEDGER_DEFER_MAX + 1) + 1];
    unsigned n_cmds = 0;
    bool lost = false, synced = false;
    ledger_stmts *set = ledger_stmts_of(conn);
    *code = RPC_OK;
    if (PQenterPipelineMode(conn) != 1) {
        lost = true;
    } else {
        if (set && set->stale) {
            /* Start afresh: DEALLOCATE is not transactional. */
            lost = PQsendQueryParams(conn, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0) != 1;
            if (!lost)
                cmds[n_cmds++] = (ledger_cmd){0};
            memset(set, 0, sizeof *set);
        }
        for (unsigned i = 0; i < tx->n_deferred && !lost; i++) {
            const ledger_deferred *d = &tx->deferred[i];
            lost = !ledger_send(conn, set, cmds, &n_cmds, false, d->sql, d->n_params, (const char *const *)d->params);
        }
        if (!lost && sql)
            lost = !ledger_send(conn, set, cmds, &n_cmds, true, sql, n_params, params);
        if (!lost && PQpipelineSync(conn) != 1)
            lost = true;
        synced = !lost;
    }
    ledger_defer_clear(tx);
    /* Each command's results end with NULL; a command after a failure
     * reports PGRES_PIPELINE_ABORTED. Then the sync. */
    for (unsigned i = 0; i < n_cmds && synced && !lost; i++) {
        PGresult *r;
        bool any = false;
        while ((r = PQgetResult(conn)) != NULL) {
            any = true;
            ExecStatusType st = PQresultStatus(r);
            bool good = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
            if (good && cmds[i].prepare && set && !ledger_stmts_add(set, cmds[i].key))
                set->stale = true; /* cannot happen (room is kept); be safe */
            if (!good && st != PGRES_PIPELINE_ABORTED && !err) {
                err = r; /* the first failure (or anything that is not ours: COPY, ...) */
            } else if (good && cmds[i].tail && !out) {
                out = r;
            } else {
                PQclear(r);
            }
        }
        if (!any)
            lost = true; /* no result at all: the connection is gone */
    }
    if (synced && !lost) {
        PGresult *r = PQgetResult(conn);
        if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            lost = true;
        PQclear(r);
    }
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(conn) != 1) {
        PGresult *r;
        while ((r = PQgetResult(conn)) != NULL) /* drain whatever is left */
            PQclear(r);
        if (PQexitPipelineMode(conn) != 1)
            lost = true;
    }
    if (err || lost || (sql && !out)) {
        const char *state = err ? PQresultErrorField(err, PG_DIAG_SQLSTATE) : NULL;
        if (state && (strcmp(state, "26000") == 0 || strcmp(state, "42P05") == 0) && set) {
            /* A prepared statement vanished (or one exists that the set
             * does not know): start the set afresh and re-run. */
            set->stale = true;
            tx->retry = true;
            log_warn("ledger.prepared_lost", "problem=prepared_statement_missing");
            *code = ledger_fail(tx, RPC_ABORTED, "the transaction must be retried");
        } else {
            *code = ledger_map_error(tx, err);
        }
        if (lost || PQstatus(conn) != CONNECTION_OK) {
            tx->broken = true; /* do not reuse it mid-protocol: the pool discards it */
            log_warn("ledger.pipeline_lost", "commands=%u", n_cmds);
        }
        PQclear(err);
        PQclear(out);
        return NULL;
    }
    return out;
}

rpc_code ledger_defer(ledger_tx *tx, const char *sql, int n_params, const char *const *params)
{
    if (n_params < 0 || (unsigned)n_params > LEDGER_PARAMS_MAX) {
        log_error("ledger.misuse", "problem=too_many_params n=%d", n_params);
        return ledger_fail(tx, RPC_INTERNAL, "internal error");
    }
    if (tx->n_deferred == LEDGER_DEFER_MAX) {
        rpc_code c = ledger_flush(tx);
        if (c != RPC_OK)
            return c;
    }
    size_t size = (size_t)n_params * sizeof(char *);
    for (int i = 0; i < n_params; i++)
        if (params[i])
            size += strlen(params[i]) + 1;
    char **block = malloc(size ? size : 1);
    if (!block)
        return ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
    char *strs = (char *)(block + n_params);
    for (int i = 0; i < n_params; i++) {
        if (!params[i]) {
            block[i] = NULL;
            continue;
        }
        size_t len = strlen(params[i]) + 1;
        memcpy(strs, params[i], len);
        block[i] = strs;
        strs += len;
    }
    tx->deferred[tx->n_deferred++] = (ledger_deferred){sql, n_params, block, size ? size : 1};
    return RPC_OK;
}

rpc_code ledger_flush(ledger_tx *tx)
{
    if (tx->n_deferred == 0)
        return RPC_OK;
    rpc_code code = ledger_check_stop(tx);
    if (code != RPC_OK)
        return code;
    PGresult *res = ledger_pipeline(tx, &code, NULL, 0, NULL);
    PQclear(res);
    return code;
}

PGresult *ledger_query(ledger_tx *tx, rpc_code *code, const char *sql, int n_params, const char *const *params)
{
    *code = ledger_check_stop(tx);
    if (*code != RPC_OK)
        return NULL;
    if (n_params < 0 || (unsigned)n_params > LEDGER_PARAMS_MAX) {
        log_error("ledger.misuse", "problem=too_many_params n=%d", n_params);
        *code = ledger_fail(tx, RPC_INTERNAL, "internal error");
        return NULL;
    }
    /* The queue and this statement, in one round trip. */
    return ledger_pipeline(tx, code, sql, n_params, params);
}

rpc_code ledger_exec(ledger_tx *tx, uint64_t *affected, const char *sql, int n_params, const char *const *params)
{
    rpc_code code;
    PGresult *res = ledger_query(tx, &code, sql, n_params, params);
    if (!res)
        return code;
    if (affected) {
        const char *t = PQcmdTuples(res);
        *affected = t && *t ? strtoull(t, NULL, 10) : 0;
    }
    PQclear(res);
    return RPC_OK;
}

rpc_code ledger_get_u256(ledger_tx *tx, u256 *out, const PGresult *res, int row, int col, bool null_ok)
{
    if (PQgetisnull(res, row, col)) {
        if (null_ok) {
            *out = u256_from_u64(0);
            return RPC_OK;
        }
    } else {
        const char *v = PQgetvalue(res, row, col);
        if (u256_from_dec(out, v, (size_t)PQgetlength(res, row, col)) == 0)
            return RPC_OK;
    }
    char q[80];
    log_error("ledger.bad_amount", "column=%s problem=%s", log_quote(q, sizeof q, PQfname(res, col)),
              PQgetisnull(res, row, col) ? "null" : "not_a_u256");
    return ledger_fail(tx, RPC_INTERNAL, "internal error (request id %s)",
                       tx->ctx ? rpc_ctx_request_id(tx->ctx) : log_get_request_id());
}

rpc_code ledger_get_i64(ledger_tx *tx, int64_t *out, const PGresult *res, int row, int col)
{
    if (!PQgetisnull(res, row, col)) {
        const char *v = PQgetvalue(res, row, col);
        char *end = NULL;
        long long x = strtoll(v, &end, 10);
        if (end != v && *end == '\0') {
            *out = (int64_t)x;
            return RPC_OK;
        }
    }
    char q[80];
    log_error("ledger.bad_integer", "column=%s", log_quote(q, sizeof q, PQfname(res, col)));
    return ledger_fail(tx, RPC_INTERNAL, "internal error (request id %s)",
                       tx->ctx ? rpc_ctx_request_id(tx->ctx) : log_get_request_id());
}

void ledger_bytea_param(char *out, const uint8_t *in, size_t len)
{
    out[0] = '\\';
    out[1] = 'x';
    hex_encode(out + 2, in, len);
}

int ledger_get_bytea(uint8_t *out, size_t cap, size_t *len, const PGresult *res, int row, int col)
{
    *len = 0;
    if (PQgetisnull(res, row, col))
        return -1;
    const char *v = PQgetvalue(res, row, col);
    size_t n = (size_t)PQgetlength(res, row, col);
    if (n < 2 || v[0] != '\\' || v[1] != 'x')
        return -1;
    if (n == 2)
        return 0;
    return hex_decode(out, cap, len, v + 2, n - 2);
}

rpc_code ledger_audit(ledger_tx *tx, const char *action, const char *entity_type, const char *entity_id,
                      const char *client_id, const char *details_json)
{
    const char *p[6] = {tx->actor, client_id && *client_id ? client_id : NULL, action,
                        entity_type ? entity_type : "", entity_id ? entity_id : "",
                        details_json && *details_json ? details_json : "{}"};
    /* Queued: it runs with the next statement or with COMMIT, so the
     * chain's lock (taken by the insert trigger) is held for no round trip
     * of its own when the audit row is written last. */
    return ledger_defer(tx,
                        "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id, details) "
                        "VALUES ($1, $2::uuid, $3, $4, $5, $6::jsonb)",
                        6, p);
}

/* ---- the transaction ------------------------------------------------------ */

/* Drops what is queued and ends the transaction when one is open (a
 * transaction whose BEGIN was never sent has nothing to roll back). */
static void ledger_rollback(ledger_tx *tx)
{
    ledger_defer_clear(tx);
    if (PQtransactionStatus(tx->conn) == PQTRANS_IDLE)
        return;
    PGresult *res = PQexec(tx->conn, "ROLLBACK");
    PQclear(res);
}

/* COMMIT, after whatever is queued, in one round trip. A COMMIT that the
 * server answers with ROLLBACK (the transaction had failed) is an error. */
static rpc_code ledger_commit(ledger_tx *tx)
{
    rpc_code code = RPC_OK;
    PGresult *res;
    if (tx->n_deferred > 0) {
        res = ledger_pipeline(tx, &code, "COMMIT", 0, NULL);
    } else {
        res = PQexec(tx->conn, "COMMIT");
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            code = ledger_map_error(tx, res);
            PQclear(res);
            res = NULL;
        }
    }
    if (!res)
        return code;
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) {
        log_error("ledger.commit_rolled_back", "problem=transaction_had_failed");
        return ledger_fail(tx, RPC_INTERNAL, "internal error (request id %s)",
                           tx->ctx ? rpc_ctx_request_id(tx->ctx) : log_get_request_id());
    }
    return RPC_OK;
}

/* BEGIN; tenant, scope and statement_timeout for this transaction only.
 * Both are queued: they reach the server with the body's first statement
 * (one round trip for the three). */
static rpc_code ledger_begin(ledger_tx *tx, bool platform, int64_t remaining_ms)
{
    ledger_defer_clear(tx);
    rpc_code code = ledger_defer(tx, "BEGIN", 0, NULL);
    if (code != RPC_OK)
        return code;
    int64_t t = remaining_ms;
    if (ledger_statement_cap_ms > 0 && (t == INT64_MAX || t > (int64_t)ledger_statement_cap_ms))
        t = ledger_statement_cap_ms;
    if (t == INT64_MAX)
        t = 0; /* no deadline, no cap: none */
    else if (t < 1)
        t = 1;
    char tbuf[24];
    snprintf(tbuf, sizeof tbuf, "%lld", (long long)t);
    const char *p[3] = {platform ? "" : tx->client_id, platform ? "platform" : "", tbuf};
    return ledger_defer(tx,
                        "SELECT set_config('coffer.client_id', $1, true), set_config('coffer.scope', $2, true), "
                        "set_config('statement_timeout', $3, true)",
                        3, p);
}

/* What the idempotency step decided. */
typedef enum { LEDGER_IDEM_EXECUTE, LEDGER_IDEM_REPLAYED, LEDGER_IDEM_FAILED } ledger_idem;

typedef struct {
    char scope[AUTH_ID_MAX + 8];
    char key[RPC_IDEMPOTENCY_KEY_MAX + 1];
    char hash_param[2 + 64 + 1];
} ledger_idem_state;

/* The additional data that binds a sealed stored answer to its row. */
static size_t ledger_idem_aad(char *out, size_t cap, const ledger_idem_state *st)
{
    int n = snprintf(out, cap, "idempotency\n%s\n%s", st->scope, st->key);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static rpc_code ledger_idem_replay(ledger_tx *tx, const ledger_idem_state *st, const PGresult *res, int col)
{
    size_t n = (size_t)PQgetlength(res, 0, col);
    size_t cap = n / 2 + 1;
    uint8_t *raw = malloc(cap);
    uint8_t *plain = NULL;
    size_t len = 0, plen = 0;
    rpc_code code = RPC_INTERNAL;
    if (!raw) {
        code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (ledger_get_bytea(raw, cap, &len, res, 0, col) != 0 || len < 1)
        goto bad;
    if (raw[0] == LEDGER_RESP_PLAIN) {
        code = rpc_ctx_reply_packed(tx->ctx, raw + 1, len - 1);
        goto out;
    }
    if (raw[0] != LEDGER_RESP_SEALED || !ledger_idem_seal)
        goto bad;
    plain = malloc(len);
    char aad[AUTH_ID_MAX + RPC_IDEMPOTENCY_KEY_MAX + 32];
    size_t aad_len = ledger_idem_aad(aad, sizeof aad, st);
    if (!plain || sealbox_open(ledger_idem_seal, plain, len, &plen, raw + 1, len - 1, (const uint8_t *)aad,
                               aad_len) != 0)
        goto bad;
    code = rpc_ctx_reply_packed(tx->ctx, plain, plen);
    goto out;
bad:
    log_error("ledger.idempotency_bad_record", "problem=undecodable_stored_answer");
    code = ledger_fail(tx, RPC_INTERNAL, "internal error: the stored answer for this idempotency-key cannot "
                       "be read (request id %s)", rpc_ctx_request_id(tx->ctx));
out:
    if (plain) {
        sodium_memzero(plain, len);
        free(plain);
    }
    if (raw) {
        sodium_memzero(raw, cap);
        free(raw);
    }
    return code;
}

/* Claims (scope, key) for this transaction, or finds the first answer. */
static ledger_idem ledger_idem_claim(ledger_tx *tx, rpc_code *code, const ledger_idem_state *st)
{
    const char *method = rpc_ctx_method(tx->ctx);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ledger_idem_ttl_s);
    const char *cid = tx->client_id[0] ? tx->client_id : NULL;
    if (atomic_fetch_add(&ledger_idem_inserts, 1) % LEDGER_CLEANUP_EVERY == 0) {
        /* Best effort: expired rows this scope may see, not locked by anyone. */
        *code = ledger_exec(tx, NULL,
                            "DELETE FROM idempotency_records WHERE ctid = ANY (ARRAY ("
                            "SELECT ctid FROM idempotency_records WHERE expires_at < now() "
                            "LIMIT " LEDGER_CLEANUP_BATCH " FOR UPDATE SKIP LOCKED))",
                            0, NULL);
        if (*code != RPC_OK)
            return LEDGER_IDEM_FAILED;
    }
    for (int round = 0; round < 3; round++) {
        const char *ip[6] = {st->scope, cid, st->key, method, st->hash_param, ttl};
        uint64_t inserted = 0;
        *code = ledger_exec(tx, &inserted,
                            "INSERT INTO idempotency_records (scope, client_id, key, method, request_hash, "
                            "response, expires_at) VALUES ($1, $2::uuid, $3, $4, $5::bytea, '\\x'::bytea, "
                            "now() + make_interval(secs => $6::double precision)) "
                            "ON CONFLICT (scope, key) DO NOTHING",
                            6, ip);
        if (*code != RPC_OK)
            return LEDGER_IDEM_FAILED;
        if (inserted == 1)
            return LEDGER_IDEM_EXECUTE;
        /* Someone committed this key first (we waited for them). */
        const char *sp[2] = {st->scope, st->key};
        PGresult *res = ledger_query(tx, code,
                                     "SELECT method, encode(request_hash, 'hex'), status_code, response, "
                                     "expires_at <= now() FROM idempotency_records "
                                     "WHERE scope = $1 AND key = $2 FOR UPDATE",
                                     2, sp);
        if (!res)
            return LEDGER_IDEM_FAILED;
        if (PQntuples(res) == 0) { /* expired and swept meanwhile */
            PQclear(res);
            continue;
        }
        if (strcmp(PQgetvalue(res, 0, 4), "t") == 0) {
            PQclear(res);
            *code = ledger_exec(tx, NULL, "DELETE FROM idempotency_records WHERE scope = $1 AND key = $2", 2, sp);
            if (*code != RPC_OK)
                return LEDGER_IDEM_FAILED;
            continue;
        }
        if (strcmp(PQgetvalue(res, 0, 0), method) != 0 || strcmp(PQgetvalue(res, 0, 1), st->hash_param + 2) != 0) {
            char qm[300];
            log_info("ledger.idempotency_mismatch", "first_method=%s",
                     log_quote(qm, sizeof qm, PQgetvalue(res, 0, 0)));
            bool same_method = strcmp(PQgetvalue(res, 0, 0), method) == 0;
            PQclear(res);
            *code = ledger_fail(tx, RPC_INVALID_ARGUMENT,
                                "idempotency-key was already used for a different request%s; "
                                "use a new key for a new request",
                                same_method ? " (same method, different fields)" : " (another method)");
            return LEDGER_IDEM_FAILED;
        }
        if (strcmp(PQgetvalue(res, 0, 2), "0") != 0) { /* not stored today, but defined by the schema */
            PQclear(res);
            *code = ledger_fail(tx, RPC_FAILED_PRECONDITION, "the first call with this idempotency-key failed");
            return LEDGER_IDEM_FAILED;
        }
        *code = ledger_idem_replay(tx, st, res, 3);
        PQclear(res);
        if (*code != RPC_OK)
            return LEDGER_IDEM_FAILED;
        log_info("ledger.idempotent_replay", "method=%s", method);
        return LEDGER_IDEM_REPLAYED;
    }
    *code = ledger_fail(tx, RPC_ABORTED, "the idempotency record kept changing; retry");
    return LEDGER_IDEM_FAILED;
}

/* Stores the answer with the claim, in the transaction of the effects. */
static rpc_code ledger_idem_store(ledger_tx *tx, const ledger_idem_state *st, const ProtobufCMessage *resp)
{
    size_t n = protobuf_c_message_get_packed_size(resp);
    size_t raw_cap = 1 + n + SEALBOX_OVERHEAD;
    uint8_t *raw = malloc(raw_cap);
    uint8_t *packed = malloc(n ? n : 1);
    char *param = NULL;
    size_t raw_len = 0;
    rpc_code code;
    if (!raw || !packed) {
        code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    protobuf_c_message_pack(resp, packed);
    if (ledger_idem_seal) {
        char aad[AUTH_ID_MAX + RPC_IDEMPOTENCY_KEY_MAX + 32];
        size_t aad_len = ledger_idem_aad(aad, sizeof aad, st);
        size_t sealed = 0;
        raw[0] = LEDGER_RESP_SEALED;
        if (sealbox_seal(ledger_idem_seal, raw + 1, raw_cap - 1, &sealed, packed, n, (const uint8_t *)aad,
                         aad_len) != 0) {
            code = ledger_fail(tx, RPC_INTERNAL, "internal error: cannot seal the answer");
            goto out;
        }
        raw_len = 1 + sealed;
    } else {
        raw[0] = LEDGER_RESP_PLAIN;
        memcpy(raw + 1, packed, n);
        raw_len = 1 + n;
    }
    param = malloc(2 * raw_len + 3);
    if (!param) {
        code = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    ledger_bytea_param(param, raw, raw_len);
    const char *p[3] = {st->scope, st->key, param};
    /* Queued (the parameters are copied): it goes with COMMIT. */
    code = ledger_defer(tx,
                        "UPDATE idempotency_records SET response = $3::bytea, status_code = 0 "
                        "WHERE scope = $1 AND key = $2",
                        3, p);
out:
    if (packed) {
        sodium_memzero(packed, n ? n : 1);
        free(packed);
    }
    if (raw) {
        sodium_memzero(raw, raw_cap);
        free(raw);
    }
    if (param) {
        sodium_memzero(param, 2 * raw_len + 3);
        free(param);
    }
    return code;
}

/* The idempotency scope and request hash; false when memory is short. */
static bool ledger_idem_prepare(ledger_idem_state *st, rpc_ctx *ctx, const char *key, size_t key_len,
                                const ProtobufCMessage *req)
{
    const auth_caller *c = rpc_ctx_caller(ctx);
    if (c->kind == AUTH_CLIENT)
        snprintf(st->scope, sizeof st->scope, "client:%s", c->id);
    else
        snprintf(st->scope, sizeof st->scope, "admin");
    memcpy(st->key, key, key_len);
    st->key[key_len] = '\0';
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return false;
    protobuf_c_message_pack(req, buf);
    const char *method = rpc_ctx_method(ctx);
    uint8_t h[crypto_generichash_BYTES];
    crypto_generichash_state gs;
    crypto_generichash_init(&gs, NULL, 0, sizeof h);
    crypto_generichash_update(&gs, (const uint8_t *)method, strlen(method) + 1); /* with its NUL: a separator */
    crypto_generichash_update(&gs, buf, n);
    crypto_generichash_final(&gs, h, sizeof h);
    sodium_memzero(buf, n ? n : 1);
    free(buf);
    ledger_bytea_param(st->hash_param, h, sizeof h);
    return true;
}

static unsigned ledger_backoff_ms(unsigned attempt)
{
    unsigned base = 5u << (attempt < 4 ? attempt : 4);
    return base / 2 + randombytes_uniform(base / 2 + 1);
}

static void ledger_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One transaction with its retries. response/request/idem are optional. */
static rpc_code ledger_transact(ledger_tx *tx, bool platform, ledger_body_fn body, void *arg,
                                ProtobufCMessage *response, const ledger_idem_state *idem)
{
    rpc_code code = RPC_INTERNAL;
    for (unsigned attempt = 0;; attempt++) {
        tx->retry = false;
        if (response) /* a re-run fills the answer afresh */
            protobuf_c_message_init(response->descriptor, response);
        int64_t remaining = tx->ctx ? rpc_ctx_remaining_ms(tx->ctx)
                            : tx->deadline_ms == INT64_MAX ? INT64_MAX : tx->deadline_ms - ledger_now_ms();
        code = ledger_check_stop(tx);
        if (code != RPC_OK)
            return code;
        code = ledger_begin(tx, platform, remaining);
        bool replayed = false;
        if (code == RPC_OK && idem) {
            ledger_idem d = ledger_idem_claim(tx, &code, idem);
            replayed = d == LEDGER_IDEM_REPLAYED;
        }
        if (code == RPC_OK && !replayed)
            code = body(tx, arg);
        if (code == RPC_OK && !replayed && idem && response)
            code = ledger_idem_store(tx, idem, response);
        if (code == RPC_OK && !tx->retry) {
            rpc_code stop = ledger_check_stop(tx);
            if (stop != RPC_OK) {
                ledger_rollback(tx);
                return stop;
            }
            if (replayed) {
                ledger_rollback(tx); /* nothing was written */
                return RPC_OK;
            }
            code = ledger_commit(tx);
            if (code == RPC_OK)
                return RPC_OK;
            if (!tx->broken) /* a queued statement failed: still open (aborted) */
                ledger_rollback(tx);
            if (!tx->retry) {
                if (code == RPC_UNAVAILABLE)
                    code = ledger_fail(tx, RPC_UNAVAILABLE, "the database failed while committing: the outcome "
                                       "is unknown; retry with the same idempotency-key");
                return code;
            }
        } else if (!tx->broken) {
            ledger_rollback(tx);
        }
        if (!tx->retry || tx->broken || attempt >= LEDGER_RETRIES)
            return code;
        ledger_sleep_ms(ledger_backoff_ms(attempt));
    }
}

rpc_code ledger_run(rpc_ctx *ctx, const ledger_run_options *o)
{
    ledger_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.ctx = ctx;
    tx.deadline_ms = INT64_MAX;
    const auth_caller *caller = rpc_ctx_caller(ctx);
    if (caller->kind == AUTH_CLIENT) {
        snprintf(tx.client_id, sizeof tx.client_id, "%s", caller->id);
        snprintf(tx.actor, sizeof tx.actor, "client:%s", caller->id);
    } else {
        snprintf(tx.actor, sizeof tx.actor, caller->kind == AUTH_ADMIN ? "admin" : "system");
    }
    bool platform = o->platform || caller->kind != AUTH_CLIENT;

    ledger_idem_state idem;
    const ledger_idem_state *idem_p = NULL;
    size_t key_len = 0;
    const char *key = rpc_ctx_idempotency_key(ctx, &key_len);
    if (key && o->response && o->request) {
        if (!ledger_idem_prepare(&idem, ctx, key, key_len, o->request))
            return rpc_ctx_fail(ctx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        idem_p = &idem;
    }

    rpc_code code = RPC_OK;
    tx.conn = rpc_ctx_db_acquire(ctx, &code);
    if (!tx.conn)
        return code;
    code = ledger_transact(&tx, platform, o->body, o->arg, o->response, idem_p);
    ledger_defer_clear(&tx);
    rpc_ctx_db_release(ctx, tx.conn);
    return code;
}

rpc_code ledger_run_plain(db_pool *pool, const char *client_id, unsigned timeout_ms, char *msg, size_t msg_len,
                          ledger_body_fn body, void *arg)
{
    ledger_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.msg = msg;
    tx.msg_len = msg_len;
    if (msg && msg_len)
        msg[0] = '\0';
    tx.deadline_ms = timeout_ms ? ledger_now_ms() + timeout_ms : INT64_MAX;
    bool platform = !client_id || !*client_id;
    if (!platform)
        snprintf(tx.client_id, sizeof tx.client_id, "%s", client_id);
    snprintf(tx.actor, sizeof tx.actor, "system");
    db_pool_err err;
    char why[200];
    tx.conn = db_pool_acquire(pool, timeout_ms ? timeout_ms : 5000u, &err, why, sizeof why);
    if (!tx.conn)
        return ledger_fail(&tx, RPC_UNAVAILABLE, "database unavailable: %s", why);
    rpc_code code = ledger_transact(&tx, platform, body, arg, NULL, NULL);
    ledger_defer_clear(&tx);
    db_pool_release(pool, tx.conn);
    return code;
}
