/* job_sched: coffer-api's scheduler thread. Runs the background jobs
 * (ops_jobs.h) one after the other at their configured intervals
 * (jobs.<name>.interval; 0: never), through the same code as RunJob, so
 * several replicas may each run one: the jobs take vault advisory locks,
 * rows FOR UPDATE SKIP LOCKED and per-wallet locks. At start it runs
 * receipts once (when a chain is configured): whatever a crash left
 * signed but unsent is broadcast again, and nothing is signed twice. */
#ifndef COFFER_JOB_SCHED_H
#define COFFER_JOB_SCHED_H

#include "ops_jobs.h"

#include <stdint.h>

typedef struct job_sched job_sched;

/* The job names in interval order: staking, accrual, withdrawals,
 * deposit_watch, receipts. */
#define JOB_SCHED_JOBS 5
extern const char *const job_sched_names[JOB_SCHED_JOBS];

/* Starts the thread; intervals_ms[i] for job_sched_names[i] (0: off).
 * Returns NULL when the thread cannot start. env is borrowed. */
__attribute__((warn_unused_result))
job_sched *job_sched_start(const ops_jobs_env *env, const int64_t intervals_ms[JOB_SCHED_JOBS]);

/* Stops (waits for the job in progress) and frees; s may be NULL. */
void job_sched_stop(job_sched *s);

#endif
