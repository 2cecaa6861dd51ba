#include "evm_breaker.h"

const char *evm_breaker_state_name(evm_breaker_state s)
{
    switch (s) {
    case EVM_BREAKER_CLOSED: return "closed";
    case EVM_BREAKER_OPEN: return "open";
    case EVM_BREAKER_HALF_OPEN: return "half_open";
    }
    return "?";
}

void evm_breaker_init(evm_breaker *b, unsigned threshold, int64_t cooldown_ms)
{
    b->state = EVM_BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold ? threshold : 1;
    b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : 0;
    b->opened_at_ms = 0;
    b->probe_in_flight = false;
    b->times_opened = 0;
}

bool evm_breaker_admit(evm_breaker *b, int64_t now_ms)
{
    switch (b->state) {
    case EVM_BREAKER_CLOSED:
        return true;
    case EVM_BREAKER_OPEN:
        /* A clock that went backwards keeps it open until it catches up. */
        if (now_ms < b->opened_at_ms || now_ms - b->opened_at_ms < b->cooldown_ms)
            return false;
        b->state = EVM_BREAKER_HALF_OPEN;
        b->probe_in_flight = true;
        return true;
    case EVM_BREAKER_HALF_OPEN:
        if (b->probe_in_flight)
            return false;
        b->probe_in_flight = true;
        return true;
    }
    return false;
}

static void evm_breaker_open(evm_breaker *b, int64_t now_ms)
{
    b->state = EVM_BREAKER_OPEN;
    b->opened_at_ms = now_ms;
    b->probe_in_flight = false;
    b->failures = 0;
    b->times_opened++;
}

evm_breaker_state evm_breaker_record(evm_breaker *b, bool success, int64_t now_ms)
{
    switch (b->state) {
    case EVM_BREAKER_CLOSED:
        if (success) {
            b->failures = 0;
        } else if (++b->failures >= b->threshold) {
            evm_breaker_open(b, now_ms);
        }
        break;
    case EVM_BREAKER_HALF_OPEN:
        if (success) {
            b->state = EVM_BREAKER_CLOSED;
            b->failures = 0;
            b->probe_in_flight = false;
        } else {
            evm_breaker_open(b, now_ms);
        }
        break;
    case EVM_BREAKER_OPEN:
        /* A request admitted while closed that finished after the breaker
         * opened (concurrent callers): its verdict changes nothing. */
        break;
    }
    return b->state;
}

void evm_breaker_cancel(evm_breaker *b)
{
    if (b->state == EVM_BREAKER_HALF_OPEN)
        b->probe_in_flight = false;
}

int64_t evm_backoff_ceiling_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt)
{
    if (base_ms < 0)
        base_ms = 0;
    if (cap_ms < 0)
        cap_ms = 0;
    int64_t ceiling = base_ms;
    for (unsigned i = 0; i < attempt && ceiling > 0 && ceiling < cap_ms; i++)
        ceiling = ceiling > INT64_MAX / 2 ? INT64_MAX : ceiling * 2;
    return ceiling < cap_ms ? ceiling : cap_ms;
}

int64_t evm_backoff_delay_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint64_t rnd)
{
    int64_t ceiling = evm_backoff_ceiling_ms(base_ms, cap_ms, attempt);
    return (int64_t)(rnd % ((uint64_t)ceiling + 1));
}
