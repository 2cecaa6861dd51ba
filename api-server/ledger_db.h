/* ledger_db: one database transaction per ledger operation, with the
 * tenant wall, deadlines, retries, idempotency and error mapping done once.
 *
 * Every ledger handler runs its work as a body function inside
 * ledger_run():
 *
 *     static rpc_code body(ledger_tx *tx, void *arg) { ... ledger_exec(tx, ...) ... }
 *     return ledger_run(ctx, &(ledger_run_options){.body = body, .arg = &a,
 *                                                  .response = out});
 *
 * ledger_run borrows a pooled connection (waiting no longer than the
 * call's deadline), BEGINs (queued: see ledger_defer), sets the tenant for row-level security
 * (set_config('coffer.client_id', <caller's client id>, true) for a
 * client's call; set_config('coffer.scope', 'platform', true) for the
 * operator and for background jobs), sets statement_timeout to the time
 * the call has left, runs the body, and COMMITs only if the body returned
 * RPC_OK and the call should not stop (deadline passed, cancelled):
 * otherwise it rolls back. A serialization failure or deadlock
 * (SQLSTATE 40001, 40P01) re-runs the whole transaction, up to
 * LEDGER_RETRIES times, so bodies must be free of side effects outside
 * the transaction (they only fill the response and the tx).
 *
 * Idempotency (mutating methods, `idempotency-key` metadata): when the
 * caller sent a key and options.response is set, ledger_run first inserts
 * the key's row in idempotency_records inside the same transaction
 * (scope "client:<id>" or "admin", method, BLAKE2b-256 of the method path
 * and the packed request). A concurrent duplicate blocks on that row until
 * the first transaction ends: if the first committed, the duplicate finds
 * its stored answer and replays it (same key, same request) or answers
 * INVALID_ARGUMENT (same key, different request); if the first rolled
 * back, the duplicate executes. The packed response is stored in the same
 * transaction as the effects, so an answer is stored exactly when the
 * effects committed. Failed calls store nothing: a retry re-executes.
 *
 * Errors: the body returns rpc codes set with rpc_ctx_fail, or the code
 * ledger_exec/ledger_query returned. Database errors map to: unique
 * violation → ALREADY_EXISTS, check/exclusion/trigger refusals →
 * FAILED_PRECONDITION, query cancelled by statement_timeout →
 * DEADLINE_EXCEEDED, connection trouble → UNAVAILABLE, anything else →
 * INTERNAL (logged with SQLSTATE and message; the caller gets a generic
 * message and the request id, never SQL text).
 *
 * A statement that fails aborts the whole transaction in PostgreSQL, so
 * a body returns the failure at once (avoid expected failures with ON
 * CONFLICT or a SELECT first). A re-run starts from a freshly initialized
 * options->response.
 *
 * Statements go out through libpq's pipeline mode (ledger_defer queues
 * those whose rows are not needed), and those with parameters run as
 * named prepared statements, prepared once per connection ("ldb_" + a
 * hash of the SQL text; a vanished one re-runs the transaction).
 *
 * Amounts travel as NUMERIC(78,0) text: parameters are decimal strings
 * (u256_to_dec), results are parsed strictly with ledger_get_u256. */
#ifndef COFFER_LEDGER_DB_H
#define COFFER_LEDGER_DB_H

#include "auth.h"
#include "rpc_server.h"
#include "sealbox.h"
#include "u256.h"

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_RETRIES 3u          /* re-runs after 40001/40P01 */
#define LEDGER_PARAMS_MAX 32u

typedef struct ledger_tx ledger_tx;

typedef rpc_code (*ledger_body_fn)(ledger_tx *tx, void *arg);

typedef struct {
    ledger_body_fn body;
    void *arg;
    /* For idempotency: the handler's response message (filled by the body,
     * or replaced by the stored answer on a replay). NULL for reads. */
    ProtobufCMessage *response;
    /* The decoded request (for the idempotency hash). NULL for reads. */
    const ProtobufCMessage *request;
    /* true: platform scope even for a client caller (never for client
     * calls' own data; for lookups that precede knowing the tenant, such as
     * API key resolution). */
    bool platform;
} ledger_run_options;

/* Process-wide settings, set once before serving (defaults: 30 s, 24 h,
 * NULL). statement_timeout_ms caps each transaction's statement_timeout
 * (db.statement_timeout; 0: only the call's deadline limits it);
 * idempotency_ttl_s is how long a stored answer is replayed
 * (ledger.idempotency_ttl); response_seal (borrowed, may be NULL) seals
 * the stored answers, which may carry secrets shown once (RegisterClient's
 * API key), with AAD = scope and key. Not thread-safe: call at start-up. */
void ledger_db_configure(unsigned statement_timeout_ms, int64_t idempotency_ttl_s, sealbox *response_seal);

/* Runs options->body in one transaction as described above. Returns
 * RPC_OK or the failure code (status message set on ctx). */
__attribute__((warn_unused_result))
rpc_code ledger_run(rpc_ctx *ctx, const ledger_run_options *options);

/* For code without an rpc_ctx (background jobs, the API key resolver):
 * the same transaction on a connection borrowed from pool, platform scope
 * unless client_id is given, statement_timeout timeout_ms. msg receives
 * the failure reason. */
__attribute__((warn_unused_result))
rpc_code ledger_run_plain(db_pool *pool, const char *client_id, unsigned timeout_ms, char *msg, size_t msg_len,
                          ledger_body_fn body, void *arg);

/* The call the transaction serves (NULL under ledger_run_plain). */
rpc_ctx *ledger_tx_ctx(const ledger_tx *tx);
/* The connection: statements queued by ledger_defer (the BEGIN included)
 * may not have been sent yet; call ledger_flush before using it. */
PGconn *ledger_tx_conn(const ledger_tx *tx);

/* The caller's client id ("" for the operator and jobs). */
const char *ledger_tx_client_id(const ledger_tx *tx);

/* The audit actor for this transaction: "admin", "client:<id>",
 * "system" (ledger_run_plain's default, and anonymous calls), or what
 * ledger_tx_set_actor gave: jobs use "job:<name>" (the audit_log CHECK
 * accepts admin, system, client:<uuid> and job:[a-z0-9_.-]{1,64}). */
const char *ledger_tx_actor(const ledger_tx *tx);
void ledger_tx_set_actor(ledger_tx *tx, const char *actor);

/* Fails the transaction's call with code and a message (printf-style);
 * returns code. Works under ledger_run_plain too. */
rpc_code ledger_fail(ledger_tx *tx, rpc_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Runs a statement with text parameters (NULL entries are SQL NULL) and
 * returns its result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) for the caller
 * to PQclear, or NULL with *code set (error mapped as above, message set).
 * Fails with DEADLINE_EXCEEDED/CANCELLED when the call should stop. */
__attribute__((warn_unused_result))
PGresult *ledger_query(ledger_tx *tx, rpc_code *code, const char *sql, int n_params, const char *const *params);

/* ledger_query for statements whose rows are not needed: returns RPC_OK
 * or the mapped failure; *affected (may be NULL) the row count. */
__attribute__((warn_unused_result))
rpc_code ledger_exec(ledger_tx *tx, uint64_t *affected, const char *sql, int n_params, const char *const *params);

/* Reads column col of row as a NUMERIC(78,0) text into *out (strict:
 * digits only, fits 256 bits). SQL NULL reads as zero when null_ok, else
 * fails. Returns RPC_OK or RPC_INTERNAL (logged: the database holds a
 * value the ledger cannot represent). */
__attribute__((warn_unused_result))
rpc_code ledger_get_u256(ledger_tx *tx, u256 *out, const PGresult *res, int row, int col, bool null_ok);

/* Reads column col of row as a base-10 int64 (bigint, integer, or an
 * epoch expression). NULL or junk is RPC_INTERNAL (logged). */
__attribute__((warn_unused_result))
rpc_code ledger_get_i64(ledger_tx *tx, int64_t *out, const PGresult *res, int row, int col);

/* Writes in[0..len) as a bytea text parameter ("\\x" then lowercase hex,
 * NUL-terminated) into out, which must hold 2 * len + 3 bytes. */
void ledger_bytea_param(char *out, const uint8_t *in, size_t len);

/* Decodes a bytea column (text result format) into out[0..cap); *len gets
 * the byte count. Returns 0, or -1 for NULL, a malformed value or one
 * longer than cap. */
__attribute__((warn_unused_result))
int ledger_get_bytea(uint8_t *out, size_t cap, size_t *len, const PGresult *res, int row, int col);

/* Queues a statement whose rows are not needed: it is sent, with
 * whatever else is queued, in one libpq pipeline (one round trip) together
 * with the next ledger_query/ledger_exec or with COMMIT. sql is borrowed
 * until then (use a string literal); the parameters are copied. A failure
 * is mapped as for ledger_exec but reported later: by the statement it
 * was sent with, or by the commit (the transaction then rolls back, and
 * re-runs on 40001/40P01). A statement whose row count matters must check
 * it in SQL so that a mismatch aborts the transaction before its COMMIT,
 * e.g. WITH w AS (UPDATE ... RETURNING 1) SELECT coffer_expect_rows((SELECT
 * count(*) FROM w), 1, 'what') (migration 0005; SQLSTATE XX001 maps to
 * INTERNAL). ledger_run's own BEGIN and settings are queued the same way,
 * so the body's first statement shares their round trip. Returns RPC_OK,
 * or RESOURCE_EXHAUSTED (out of memory), or the failure of a flush forced
 * by a full queue. */
__attribute__((warn_unused_result))
rpc_code ledger_defer(ledger_tx *tx, const char *sql, int n_params, const char *const *params);

/* Sends what is queued now (ledger_exec and ledger_query do it
 * themselves; needed only before using ledger_tx_conn directly). Returns
 * RPC_OK or the first queued statement's mapped failure. */
__attribute__((warn_unused_result))
rpc_code ledger_flush(ledger_tx *tx);

/* Appends one row to the audit log in this transaction (the database
 * chains its hash: one chain per client, migration 0005). Queued like
 * ledger_defer: written last in a body, it reaches the server together
 * with COMMIT, so the chain's lock is held for no extra round trip.
 * details_json: a JSON object ("{}" when nothing more). entity_id and
 * client_id may be NULL. */
__attribute__((warn_unused_result))
rpc_code ledger_audit(ledger_tx *tx, const char *action, const char *entity_type, const char *entity_id,
                      const char *client_id, const char *details_json);

#endif
