#include "journal.h"

#include "ledger.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
} jbuf;

struct journal {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    jbuf audit, rec;            /* appended, not yet taken by the syncer */
    audit_chain chain;          /* head after the last appended line */
    audit_chain durable_chain;  /* head after the last durable line */
    uint64_t appended;          /* last ticket handed out */
    bool stop;
    bool running;
    /* syncer-only */
    jbuf w_audit, w_rec;
    /* any thread */
    _Atomic uint64_t durable;
    int audit_fd, ledger_fd;
    uint8_t policy_hash[32];
    bool mark_unsynced;         /* under flush_mu: an 'A' mark written, not yet fdatasynced */
    int waiters[JOURNAL_WAITERS_MAX];
    size_t n_waiters;
    pthread_t thread;
    pthread_mutex_t flush_mu;   /* one writer of the files at a time */
};

/* Makes room for n more bytes. Returns 0 or -1 (ENOMEM, b unchanged). */
static int jbuf_reserve(jbuf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    return 0;
}

int journal_new(journal **out, int audit_fd, int ledger_fd, const audit_chain *start,
                const uint8_t *policy_hash)
{
    journal *j = calloc(1, sizeof *j);
    *out = NULL;
    if (!j)
        return -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->flush_mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->audit_fd = audit_fd;
    j->ledger_fd = ledger_fd;
    if (start) {
        j->chain = *start;
        j->durable_chain = *start;
    }
    memcpy(j->policy_hash, policy_hash, 32);
    atomic_store(&j->durable, 0);
    *out = j;
    return 0;
}

int journal_add_waiter(journal *j, int efd)
{
    if (j->n_waiters >= JOURNAL_WAITERS_MAX)
        return -1;
    j->waiters[j->n_waiters++] = efd;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void die(const char *what)
{
    log_error("signer.journal.fatal", "what=%s errno=%d detail=\"answers are not sent without durability; exiting\"",
              what, errno);
    _exit(70);
}

/* Takes everything appended and makes it durable; returns with mu
 * unlocked. Caller holds flush_mu and mu. sync_mark: also fdatasync the
 * ledger after the batch's mark (start-up and stop; the syncer leaves the
 * mark to the next batch's ledger sync). */
static void flush_locked(journal *j, bool sync_mark)
{
    jbuf ta = j->audit, tr = j->rec;
    uint64_t hi = j->appended;
    audit_chain batch_chain = j->chain;
    j->audit = j->w_audit;
    j->rec = j->w_rec;
    j->audit.len = 0;
    j->rec.len = 0;
    pthread_mutex_unlock(&j->mu);

    if (tr.len > 0) {
        if (write_all(j->ledger_fd, tr.data, tr.len) != 0)
            die("ledger write");
        if (fdatasync(j->ledger_fd) != 0)
            die("ledger fdatasync");
        j->mark_unsynced = false;
    }
    if (ta.len > 0) {
        if (write_all(j->audit_fd, ta.data, ta.len) != 0)
            die("audit write");
        if (fdatasync(j->audit_fd) != 0)
            die("audit fdatasync");
        /* Anchor the log's end: the head these lines made durable, in the
         * ledger, written only now so that it never claims a line that is
         * not on disk. It reaches the disk with the next batch's ledger
         * sync (or at once with sync_mark); the page cache already holds
         * it, so cutting lines off the end of a live system's log is
         * caught at the next start. */
        uint8_t mark[LEDGER_MARK_LEN];
        ledger_encode_mark(mark, batch_chain.seq, batch_chain.head);
        if (write_all(j->ledger_fd, mark, sizeof mark) != 0)
            die("ledger mark write");
        j->mark_unsynced = true;
    }
    if (sync_mark && j->mark_unsynced) {
        if (fdatasync(j->ledger_fd) != 0)
            die("ledger fdatasync");
        j->mark_unsynced = false;
    }
    j->w_audit = ta;
    j->w_rec = tr;

    pthread_mutex_lock(&j->mu);
    j->durable_chain = batch_chain;
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->durable, hi);
    for (size_t i = 0; i < j->n_waiters; i++) {
        uint64_t one = 1;
        ssize_t n = write(j->waiters[i], &one, sizeof one);
        (void)n; /* EAGAIN: the counter is already non-zero, the loop will wake */
    }
}

static void *syncer_main(void *arg)
{
    journal *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stop && j->audit.len == 0 && j->rec.len == 0)
            pthread_cond_wait(&j->cv, &j->mu);
        int done = j->stop && j->audit.len == 0 && j->rec.len == 0;
        pthread_mutex_unlock(&j->mu);
        if (done)
            break;
        pthread_mutex_lock(&j->flush_mu);
        pthread_mutex_lock(&j->mu);
        flush_locked(j, false); /* unlocks mu */
        pthread_mutex_unlock(&j->flush_mu);
    }
    return NULL;
}

int journal_start(journal *j)
{
    if (pthread_create(&j->thread, NULL, syncer_main, j) != 0)
        return -1;
    j->running = true;
    return 0;
}

void journal_stop(journal *j)
{
    if (!j->running)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    j->running = false;
}

int journal_flush_now(journal *j)
{
    pthread_mutex_lock(&j->flush_mu);
    pthread_mutex_lock(&j->mu);
    if (j->audit.len == 0 && j->rec.len == 0) {
        pthread_mutex_unlock(&j->mu);
        if (j->mark_unsynced) {
            if (fdatasync(j->ledger_fd) != 0)
                die("ledger fdatasync");
            j->mark_unsynced = false;
        }
    } else {
        flush_locked(j, true);
    }
    pthread_mutex_unlock(&j->flush_mu);
    return 0;
}

void journal_free(journal *j)
{
    if (!j)
        return;
    journal_stop(j);
    free(j->audit.data);
    free(j->rec.data);
    free(j->w_audit.data);
    free(j->w_rec.data);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    pthread_mutex_destroy(&j->flush_mu);
    free(j);
}

/* The common part of journal_append and journal_append_commit: with mu
 * held, formats the line, makes room for it and for the records (before
 * anything changes, so that a failure leaves everything as it was), then
 * appends the line, rec, and txn's commit. Returns the ticket or 0. */
static uint64_t append_locked(journal *j, const audit_entry *e, const uint8_t *rec, size_t rec_len,
                              ledger *led, ledger_txn *txn, int64_t now_ms)
{
    char line[AUDIT_LINE_MAX];
    audit_chain next = j->chain;
    size_t n = audit_format(line, sizeof line, &next, e, now_ms, j->policy_hash);
    size_t rec_room = rec_len + (txn ? LEDGER_COMMIT_MAX : 0);
    if (n == 0 || jbuf_reserve(&j->audit, n) != 0 || (rec_room && jbuf_reserve(&j->rec, rec_room) != 0))
        return 0;
    memcpy(j->audit.data + j->audit.len, line, n);
    j->audit.len += n;
    if (rec_len) {
        memcpy(j->rec.data + j->rec.len, rec, rec_len);
        j->rec.len += rec_len;
    }
    if (txn)
        j->rec.len += ledger_commit(led, txn, j->rec.data + j->rec.len, now_ms);
    j->chain = next;
    pthread_cond_signal(&j->cv);
    return ++j->appended;
}

uint64_t journal_append(journal *j, const audit_entry *e, const uint8_t *rec, size_t rec_len,
                        int64_t now_ms)
{
    pthread_mutex_lock(&j->mu);
    uint64_t ticket = append_locked(j, e, rec, rec_len, NULL, NULL, now_ms);
    pthread_mutex_unlock(&j->mu);
    return ticket;
}

uint64_t journal_append_commit(journal *j, const audit_entry *e, ledger *led, ledger_txn *txn,
                               int64_t now_ms)
{
    pthread_mutex_lock(&j->mu);
    uint64_t ticket = append_locked(j, e, NULL, 0, led, txn, now_ms);
    pthread_mutex_unlock(&j->mu);
    return ticket;
}

uint64_t journal_durable(journal *j)
{
    return atomic_load(&j->durable);
}

void journal_head(journal *j, audit_chain *appended, audit_chain *durable)
{
    pthread_mutex_lock(&j->mu);
    if (appended)
        *appended = j->chain;
    if (durable)
        *durable = j->durable_chain;
    pthread_mutex_unlock(&j->mu);
}
