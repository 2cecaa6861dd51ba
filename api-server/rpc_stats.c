#include "rpc_stats.h"

const int64_t rpc_stats_bounds_us[RPC_STATS_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

void rpc_stats_record(rpc_stats *s, rpc_code code, int64_t duration_us)
{
    unsigned c = (unsigned)code < RPC_STATS_CODES ? (unsigned)code : (unsigned)RPC_UNKNOWN;
    atomic_fetch_add_explicit(&s->by_code[c], 1, memory_order_relaxed);
    if (duration_us < 0)
        duration_us = 0;
    unsigned b = 0;
    while (b < RPC_STATS_BUCKETS - 1 && duration_us > rpc_stats_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, (uint64_t)duration_us, memory_order_relaxed);
}

uint64_t rpc_stats_count(const rpc_stats *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < RPC_STATS_BUCKETS; i++)
        n += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
    return n;
}
