/* ratelimit: token buckets per (caller, rate class), the rate hook of
 * rpc_server (rpc_rate_fn).
 *
 * Each client (by id), the operator ("admin") and anonymous callers (one
 * shared bucket) get one bucket per rate class: it holds up to `burst`
 * calls and refills at per_minute / 60 calls a second; a call takes one.
 * An empty bucket answers RESOURCE_EXHAUSTED with the time until the next
 * call would pass (sent as google.rpc.RetryInfo).
 *
 * The buckets live in this process's memory: N coffer-api replicas allow
 * N times the limit (a shared limiter is future work). The table is
 * bounded (max_entries); when the slots a caller hashes to are taken, the
 * least recently used of them is evicted (its caller starts again with a
 * full bucket). Thread-safe. */
#ifndef COFFER_RATELIMIT_H
#define COFFER_RATELIMIT_H

#include "auth.h"
#include "rpc_table.h"

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_PROBE 8u /* slots a caller may occupy: its hash and the next 7 */

typedef struct ratelimit ratelimit;

typedef struct {
    uint32_t per_minute[RPC_RATE_CLASS_COUNT]; /* by rpc_rate_class; 0: that class is not limited */
    uint32_t burst[RPC_RATE_CLASS_COUNT];      /* bucket size; 0: per_minute */
    size_t max_entries;                        /* buckets kept (rounded up to a power of two, >= 64) */
    int64_t (*now_ms)(void *arg);              /* monotonic clock; NULL: CLOCK_MONOTONIC */
    void *clock_arg;
} ratelimit_options;

/* Returns a limiter, or NULL when memory is short. */
__attribute__((warn_unused_result))
ratelimit *ratelimit_new(const ratelimit_options *o);

void ratelimit_free(ratelimit *rl);

/* Takes one call for who (a caller name: "admin", "client:<id>",
 * "anonymous") in class cls. Returns 0 when it may pass, or -1 with
 * *retry_after_ms (> 0) when the bucket is empty. */
__attribute__((warn_unused_result))
int ratelimit_take(ratelimit *rl, int64_t *retry_after_ms, const char *who, rpc_rate_class cls);

/* The rpc_rate_fn: arg is the ratelimit. */
rpc_code ratelimit_check(void *arg, char *msg, size_t msg_len, int64_t *retry_after_ms, const auth_caller *caller,
                         rpc_rate_class rate);

/* Buckets held now (for tests and metrics). */
size_t ratelimit_size(ratelimit *rl);

#endif
