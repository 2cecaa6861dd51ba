/* evm_breaker: the chain client's per-endpoint circuit breaker and the
 * retry back-off, as pure functions of an injected clock and random
 * number, so tests drive them without sleeping.
 *
 * Breaker states:
 *   closed    --N consecutive failures-->            open
 *   open      --cool-down elapsed, next admit-->     half-open (one probe)
 *   half-open --probe succeeds-->                    closed
 *   half-open --probe fails-->                       open (cool-down again)
 * In half-open exactly one request (the probe) is let through at a time;
 * others are refused until it reports. A success while closed resets the
 * failure count.
 *
 * Not thread-safe: the caller serialises calls on one breaker (the chain
 * client holds its mutex around them). */
#ifndef COFFER_EVM_BREAKER_H
#define COFFER_EVM_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    EVM_BREAKER_CLOSED = 0,
    EVM_BREAKER_OPEN,
    EVM_BREAKER_HALF_OPEN,
} evm_breaker_state;

/* Caller-owned; fields are read-only outside this module. */
typedef struct {
    evm_breaker_state state;
    unsigned failures;         /* consecutive failures (closed state) */
    unsigned threshold;        /* failures that open it, >= 1 */
    int64_t cooldown_ms;       /* open -> half-open delay, >= 0 */
    int64_t opened_at_ms;      /* when it last opened */
    bool probe_in_flight;      /* half-open: the probe was admitted */
    uint64_t times_opened;     /* closed/half-open -> open transitions */
} evm_breaker;

/* Returns "closed", "open" or "half_open". */
const char *evm_breaker_state_name(evm_breaker_state s);

/* Initialises a closed breaker. threshold 0 is taken as 1; a negative
 * cooldown as 0. b: output. */
void evm_breaker_init(evm_breaker *b, unsigned threshold, int64_t cooldown_ms);

/* Asks to send one request at time now_ms. Returns true when it may go:
 * closed; or open with the cool-down over (the breaker turns half-open and
 * this request is the probe); false when open and cooling down, or
 * half-open with the probe still out. Every true must be followed by
 * exactly one evm_breaker_record or evm_breaker_cancel. b: in/out. */
bool evm_breaker_admit(evm_breaker *b, int64_t now_ms);

/* Reports the outcome of an admitted request. Returns the state after it.
 * b: in/out. success: the endpoint answered properly. now_ms: the time. */
evm_breaker_state evm_breaker_record(evm_breaker *b, bool success, int64_t now_ms);

/* Gives an admitted request back without a verdict (it was never sent):
 * a half-open breaker's probe slot is freed. b: in/out. */
void evm_breaker_cancel(evm_breaker *b);

/* Full-jitter exponential back-off: a delay uniformly drawn from
 * [0, min(cap_ms, base_ms * 2^attempt)] (inclusive), using rnd as the
 * random draw (any 64-bit value; the modulo bias is below 2^-40 for
 * ceilings under 2^24 ms). attempt 0 is the first retry. Negative base or
 * cap count as 0; the doubling saturates instead of overflowing. */
int64_t evm_backoff_delay_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint64_t rnd);

/* The upper bound evm_backoff_delay_ms draws from: min(cap, base·2^attempt). */
int64_t evm_backoff_ceiling_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt);

#endif
