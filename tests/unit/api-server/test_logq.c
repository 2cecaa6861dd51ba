#include "log.h"
#include "logq.h"
#include "test_support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LQ_BUF 4096u
#define LQ_THREADS 4
#define LQ_LINES 20000

typedef struct {
    logq *q;
    int id;
} lq_arg;

/* Fills buffers with whole lines "t<id> <n>\n" and submits them. */
static void *lq_producer(void *p)
{
    lq_arg *a = p;
    char *buf = logq_buffer(a->q);
    size_t len = 0;
    for (int n = 0; n < LQ_LINES; n++) {
        char line[64];
        int k = snprintf(line, sizeof line, "t%d %d\n", a->id, n);
        if (len + (size_t)k > LQ_BUF) {
            buf = logq_submit(a->q, buf, len);
            len = 0;
        }
        memcpy(buf + len, line, (size_t)k);
        len += (size_t)k;
    }
    buf = logq_submit(a->q, buf, len);
    logq_release(a->q, buf);
    return NULL;
}

/* Everything written arrives, whole, each producer's lines in order. */
static void run(unsigned max_pending)
{
    char path[] = "/tmp/coffer-logq-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    log_init("unit", LOG_INFO, fd);
    logq *q = logq_new(LQ_BUF, max_pending);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    pthread_t th[LQ_THREADS];
    lq_arg args[LQ_THREADS];
    for (int i = 0; i < LQ_THREADS; i++) {
        args[i] = (lq_arg){q, i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, lq_producer, &args[i]), 0);
    }
    for (int i = 0; i < LQ_THREADS; i++)
        pthread_join(th[i], NULL);
    logq_free(q); /* drains */
    log_init("unit", LOG_INFO, STDERR_FILENO);

    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    int next[LQ_THREADS] = {0};
    char line[64];
    long total = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        int t, n;
        if (sscanf(line, "t%d %d\n", &t, &n) != 2 || t < 0 || t >= LQ_THREADS || n != next[t]) {
            bad++;
            continue;
        }
        next[t]++;
        total++;
    }
    fclose(f);
    unlink(path);
    close(fd);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(total, (long)LQ_THREADS * LQ_LINES);
    for (int i = 0; i < LQ_THREADS; i++)
        CU_ASSERT_EQUAL(next[i], LQ_LINES);
}

static void test_logq_all_lines_in_order(void)
{
    run(64);
}

/* A writer one batch behind: producers write themselves, nothing is lost. */
static void test_logq_backpressure(void)
{
    run(1);
}

static void test_logq_empty_submit_and_free(void)
{
    logq *q = logq_new(LQ_BUF, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    char *b = logq_buffer(q);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_EQUAL(logq_submit(q, b, 0), b); /* nothing to write: same buffer */
    logq_release(q, b);
    logq_free(q);
    logq_free(NULL);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"all_lines_in_order", test_logq_all_lines_in_order},
        {"backpressure", test_logq_backpressure},
        {"empty_submit_and_free", test_logq_empty_submit_and_free},
        {NULL, NULL},
    };
    test_add_suite("logq", cases);
}
