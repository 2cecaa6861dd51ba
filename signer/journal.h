/* journal: group commit of audit lines and ledger records.
 *
 * Request handlers append one audit line (and the ledger records their
 * decision depends on) and get a ticket. A syncer thread takes everything
 * appended so far in one swap, writes the ledger records and fdatasyncs
 * the ledger, then writes the audit lines and fdatasyncs the audit log,
 * and only then publishes the batch's last ticket as durable and wakes
 * every registered event loop (eventfd). An answer is sent only once its
 * ticket is durable, so one fsync pair covers every answer waiting at that
 * moment and throughput does not depend on fsync latency.
 *
 * Ledger before audit: after a crash the ledger may remember a signature
 * whose audit line or answer was lost (the client retries and gets the
 * same signature, now audited), never the reverse. After the audit lines
 * are synced, an 'A' mark with the head they reached is appended to the
 * ledger (synced with the next batch, or at once at start and stop), so
 * the ledger always knows how far the log reached and a log cut short is
 * refused at the next start.
 *
 * A write or fsync error is fatal: the process exits (status 70) rather
 * than answer without durability.
 *
 * All functions are thread-safe. */
#ifndef COFFER_SIGNER_JOURNAL_H
#define COFFER_SIGNER_JOURNAL_H

#include "audit.h"
#include "ledger.h"

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_WAITERS_MAX 32

typedef struct journal journal;

/* Creates a journal appending to audit_fd and ledger_fd (both O_APPEND,
 * borrowed), continuing chain start, stamping policy_hash (32 bytes,
 * copied) on every line. Returns 0 or -1 (ENOMEM). */
__attribute__((warn_unused_result))
int journal_new(journal **out, int audit_fd, int ledger_fd, const audit_chain *start,
                const uint8_t *policy_hash);

/* Stops the syncer if running (after a last flush) and frees; j may be NULL. */
void journal_free(journal *j);

/* Registers an eventfd written to (8 bytes, value 1) after every durable
 * advance. Call before journal_start. Returns 0 or -1 (too many). */
__attribute__((warn_unused_result))
int journal_add_waiter(journal *j, int efd);

/* Starts the syncer thread. Returns 0 or -1. */
__attribute__((warn_unused_result))
int journal_start(journal *j);

/* Flushes everything appended, then stops and joins the syncer. */
void journal_stop(journal *j);

/* Appends e as the next audit line plus rec_len ledger record bytes.
 * Returns the ticket (>= 1), or 0 when the line cannot be formatted (too
 * long: a bug) or memory runs out. now_ms: wall-clock ms. */
__attribute__((warn_unused_result))
uint64_t journal_append(journal *j, const audit_entry *e, const uint8_t *rec, size_t rec_len,
                        int64_t now_ms);

/* Appends e as the next audit line and, atomically with it (under the
 * journal's lock), commits txn in led (ledger_commit) and appends the
 * commit's records to the same batch. Anyone who sees the commit in the
 * ledger (a re-sign of the same nonce, a velocity sum) appends after it and
 * gets a later ticket, so no answer that relies on the commit can leave
 * before its records are durable.
 * Returns the ticket (>= 1), or 0 as journal_append, with txn untouched
 * (the caller then aborts its reservation). */
__attribute__((warn_unused_result))
uint64_t journal_append_commit(journal *j, const audit_entry *e, ledger *led, ledger_txn *txn,
                               int64_t now_ms);

/* The highest durable ticket (0 before the first batch). */
uint64_t journal_durable(journal *j);

/* Writes and syncs everything appended, in the calling thread (used
 * before the syncer starts and after it stops). Returns 0 or -1. */
__attribute__((warn_unused_result))
int journal_flush_now(journal *j);

/* The chain head after the last appended line, and after the last durable one. */
void journal_head(journal *j, audit_chain *appended, audit_chain *durable);

#endif
