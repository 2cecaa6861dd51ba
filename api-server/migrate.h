/* migrate: applies the numbered, forward-only SQL migrations.
 * Each pending file runs in its own transaction together with its row in
 * schema_migrations (version, name, SHA-256 of the file's bytes). A run
 * first checks every recorded row against the set it was given and refuses
 * to apply anything when a landed file was edited, is missing from the set,
 * or the recorded versions have a gap. Concurrent runs (several replicas
 * starting at once) are serialised by a session advisory lock. */
#ifndef COFFER_MIGRATE_H
#define COFFER_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    unsigned version;     /* 1, 2, 3, ... */
    const char *name;     /* "0001_schema_migrations" */
    const char *sql;      /* the file's bytes */
    size_t sql_len;
} migration;

#define MIGRATE_CHECKSUM_HEX_LEN 64
#define MIGRATE_ERROR_MAX 1024

typedef struct {
    unsigned version_before;  /* highest applied version before the run (0: none) */
    unsigned version_after;   /* highest applied version after the run */
    unsigned applied;         /* files applied by this run */
    char error[MIGRATE_ERROR_MAX]; /* what went wrong, when -1 is returned */
} migrate_report;

/* The migrations compiled into this binary (generated from migrations/).
 * Returns the array; *count gets its length. */
const migration *migrations_embedded(size_t *count);

/* Writes the lowercase hex SHA-256 of m's SQL into out (65 bytes with NUL). */
void migrate_checksum(char out[MIGRATE_CHECKSUM_HEX_LEN + 1], const migration *m);

/* Applies every pending migration of set[0..count) to the database behind
 * conn (an open connection, not inside a transaction).
 * Returns 0 when the database is at the set's latest version afterwards,
 * -1 otherwise with report->error saying which file and why. On -1 no
 * partially applied file remains (each file is one transaction); files
 * applied before the failing one stay applied.
 * set must be ordered by version, starting at 1 without gaps. */
__attribute__((warn_unused_result))
int migrate_run(migrate_report *report, PGconn *conn,
                const migration *set, size_t count);

/* Prints one line per migration (applied with date, pending, or edited)
 * and per recorded version unknown to the set. Returns 0 when everything
 * is applied and unchanged, 1 when some are pending, -1 when the database
 * disagrees with the set or cannot be read (report->error says why). */
__attribute__((warn_unused_result))
int migrate_status(migrate_report *report, FILE *out, PGconn *conn,
                   const migration *set, size_t count);

#endif
