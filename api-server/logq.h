/* logq: a writer thread for batches of whole log lines, so the threads
 * that produce access-log lines (the completion-queue thread above all,
 * which answers GetInfo and Health/Check inline) do not spend their time
 * in write(2). Nothing is dropped: when the writer falls behind by
 * max_pending batches, a submitting thread waits for it (back-pressure
 * instead of loss: the cost is then what writing itself would have been),
 * and logq_free writes everything still queued before it returns. Batches
 * keep their order per submitter; lines of different threads were never
 * ordered. */
#ifndef COFFER_LOGQ_H
#define COFFER_LOGQ_H

#include <stddef.h>

typedef struct logq logq;

/* Starts the writer. buf_size: the size of every batch buffer (those
 * given to logq_submit must come from logq_buffer or be that large and
 * malloc'd). NULL when memory or threads are short (write synchronously). */
__attribute__((warn_unused_result))
logq *logq_new(size_t buf_size, unsigned max_pending);

/* A fresh buffer of buf_size bytes (malloc'd; NULL when memory is short). */
__attribute__((warn_unused_result))
char *logq_buffer(logq *q);

/* Hands buf[0..len) to the writer and returns an empty buffer to go on
 * filling: a recycled one, or buf itself after writing it here when
 * memory is short (or the queue is stopping). Waits while max_pending
 * batches are queued. len 0: returns buf. */
__attribute__((warn_unused_result))
char *logq_submit(logq *q, char *buf, size_t len);

/* Frees a buffer obtained from logq_buffer/logq_submit (after its lines
 * were submitted or written). */
void logq_release(logq *q, char *buf);

/* Writes what is queued, stops the writer and frees. q may be NULL. */
void logq_free(logq *q);

#endif
