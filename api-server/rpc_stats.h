/* rpc_stats: lock-free per-method call counters for /metrics: calls by
 * status code and a latency histogram (Prometheus buckets, cumulative at
 * exposition). Any thread records; readers see each counter atomically
 * (a scrape may fall between two counters of one call, as with every
 * Prometheus client). */
#ifndef COFFER_RPC_STATS_H
#define COFFER_RPC_STATS_H

#include "rpc_code.h"

#include <stdatomic.h>
#include <stdint.h>

#define RPC_STATS_CODES 17u   /* OK .. UNAUTHENTICATED */
#define RPC_STATS_BUCKETS 14u /* the last is +Inf */

/* Upper bounds of the finite buckets, in microseconds (0.5 ms .. 5 s). */
extern const int64_t rpc_stats_bounds_us[RPC_STATS_BUCKETS - 1];

typedef struct {
    _Atomic uint64_t by_code[RPC_STATS_CODES];
    _Atomic uint64_t bucket[RPC_STATS_BUCKETS]; /* not cumulative */
    _Atomic uint64_t sum_us;
} rpc_stats;

/* Counts one call that ended with code after duration_us. */
void rpc_stats_record(rpc_stats *s, rpc_code code, int64_t duration_us);

/* Total calls counted. */
uint64_t rpc_stats_count(const rpc_stats *s);

#endif
