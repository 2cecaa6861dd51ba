/* job_sched: see job_sched.h. */
#include "job_sched.h"

#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const job_sched_names[JOB_SCHED_JOBS] = {"staking", "accrual", "withdrawals", "deposit_watch",
                                                     "receipts"};

struct job_sched {
    const ops_jobs_env *env;
    int64_t interval[JOB_SCHED_JOBS];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static int64_t js_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void js_run(job_sched *s, const char *name)
{
    ops_jobs_report rep = {.buf = malloc(OPS_JOBS_REPORT_MAX)};
    char msg[512] = "";
    if (!rep.buf)
        return;
    rep.buf[0] = '\0';
    rpc_code c = ops_jobs_execute(s->env, &rep, msg, sizeof msg, name, NULL);
    if (c != RPC_OK)
        log_warn("job_sched.run", "job=%s result=%s message=\"%.300s\"", name, rpc_code_name(c), msg);
    free(rep.buf);
}

static void *js_main(void *arg)
{
    job_sched *s = arg;
    int64_t due[JOB_SCHED_JOBS];
    int64_t now = js_now_ms();
    for (int i = 0; i < JOB_SCHED_JOBS; i++)
        due[i] = s->interval[i] > 0 ? now + s->interval[i] : INT64_MAX;
    /* Start-up recovery: re-send what a crash left signed but unsent. */
    if (s->env->has_chain)
        due[4] = now;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int next = -1;
        for (int i = 0; i < JOB_SCHED_JOBS; i++)
            if (due[i] != INT64_MAX && (next < 0 || due[i] < due[next]))
                next = i;
        now = js_now_ms();
        if (next < 0 || due[next] > now) {
            int64_t wait = next < 0 ? 60000 : due[next] - now;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        js_run(s, job_sched_names[next]);
        pthread_mutex_lock(&s->mu);
        due[next] = s->interval[next] > 0 ? js_now_ms() + s->interval[next] : INT64_MAX;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

job_sched *job_sched_start(const ops_jobs_env *env, const int64_t intervals_ms[JOB_SCHED_JOBS])
{
    job_sched *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->env = env;
    memcpy(s->interval, intervals_ms, sizeof s->interval);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, js_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    log_info("job_sched.start", "staking_ms=%lld accrual_ms=%lld withdrawals_ms=%lld deposit_watch_ms=%lld "
             "receipts_ms=%lld", (long long)s->interval[0], (long long)s->interval[1], (long long)s->interval[2],
             (long long)s->interval[3], (long long)s->interval[4]);
    return s;
}

void job_sched_stop(job_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
