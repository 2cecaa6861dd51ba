#include "logq.h"

#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct logq_item {
    struct logq_item *next;
    size_t len;
    char *buf;
} logq_item;

struct logq {
    size_t buf_size;
    unsigned max_pending;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* the writer: batches queued or stop */
    pthread_cond_t space; /* producers: the backlog went below max_pending */
    pthread_t thread;
    logq_item *head, *tail; /* batches to write, oldest first */
    unsigned pending;
    logq_item *spare_items; /* item shells */
    char **spare_bufs;      /* written buffers for reuse */
    unsigned n_spare;
    bool stop;
};

static void *logq_main(void *arg)
{
    logq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->wake, &q->lock);
        if (!q->head)
            break; /* stopping, everything written */
        logq_item *batch = q->head;
        q->head = q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        for (logq_item *it = batch; it; it = it->next)
            log_write(it->buf, it->len);
        pthread_mutex_lock(&q->lock);
        while (batch) {
            logq_item *it = batch;
            batch = it->next;
            q->pending--;
            if (q->n_spare < q->max_pending)
                q->spare_bufs[q->n_spare++] = it->buf;
            else
                free(it->buf);
            it->next = q->spare_items;
            q->spare_items = it;
        }
        pthread_cond_broadcast(&q->space);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

logq *logq_new(size_t buf_size, unsigned max_pending)
{
    logq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->buf_size = buf_size;
    q->max_pending = max_pending ? max_pending : 1;
    q->spare_bufs = calloc(q->max_pending, sizeof *q->spare_bufs);
    if (!q->spare_bufs) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    pthread_cond_init(&q->space, NULL);
    if (pthread_create(&q->thread, NULL, logq_main, q) != 0) {
        pthread_cond_destroy(&q->space);
        pthread_cond_destroy(&q->wake);
        pthread_mutex_destroy(&q->lock);
        free(q->spare_bufs);
        free(q);
        return NULL;
    }
    return q;
}

char *logq_buffer(logq *q)
{
    pthread_mutex_lock(&q->lock);
    char *b = q->n_spare ? q->spare_bufs[--q->n_spare] : NULL;
    pthread_mutex_unlock(&q->lock);
    return b ? b : malloc(q->buf_size);
}

char *logq_submit(logq *q, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    pthread_mutex_lock(&q->lock);
    /* The writer is behind: wait for it rather than write here, which
     * would put this batch before the ones it still holds. */
    while (q->pending >= q->max_pending && !q->stop)
        pthread_cond_wait(&q->space, &q->lock);
    if (q->stop) {
        pthread_mutex_unlock(&q->lock);
        log_write(buf, len);
        return buf;
    }
    logq_item *it = q->spare_items;
    if (it)
        q->spare_items = it->next;
    char *fresh = q->n_spare ? q->spare_bufs[--q->n_spare] : NULL;
    pthread_mutex_unlock(&q->lock);
    if (!it)
        it = malloc(sizeof *it);
    if (!fresh)
        fresh = malloc(q->buf_size);
    if (!it || !fresh) {
        /* Memory is short: write here, after what is queued (order). */
        free(it);
        free(fresh);
        pthread_mutex_lock(&q->lock);
        while (q->pending > 0 && !q->stop)
            pthread_cond_wait(&q->space, &q->lock);
        pthread_mutex_unlock(&q->lock);
        log_write(buf, len);
        return buf;
    }
    it->next = NULL;
    it->len = len;
    it->buf = buf;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->pending++;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    return fresh;
}

void logq_release(logq *q, char *buf)
{
    (void)q;
    free(buf);
}

void logq_free(logq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    for (unsigned i = 0; i < q->n_spare; i++)
        free(q->spare_bufs[i]);
    while (q->spare_items) {
        logq_item *it = q->spare_items;
        q->spare_items = it->next;
        free(it);
    }
    free(q->spare_bufs);
    pthread_cond_destroy(&q->space);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
