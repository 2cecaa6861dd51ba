#include "ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tokens are counted in 1/60000 of a call, so that a bucket refilling at
 * per_minute calls a minute gains exactly per_minute units a millisecond. */
#define RL_UNIT 60000u
#define RL_WHO_MAX (AUTH_ID_MAX + 16)

typedef struct {
    bool used;
    uint8_t cls;
    char who[RL_WHO_MAX];
    uint64_t tokens;    /* units */
    int64_t last_ms;    /* last refill */
} rl_slot;

struct ratelimit {
    ratelimit_options o;
    size_t n;           /* power of two */
    size_t used;
    rl_slot *slots;
    uint8_t hkey[crypto_shorthash_KEYBYTES]; /* random per process: callers cannot aim at one slot */
    pthread_mutex_t lock;
};

static int64_t rl_mono_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ratelimit *ratelimit_new(const ratelimit_options *o)
{
    if (sodium_init() < 0)
        return NULL;
    ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->o = *o;
    if (!rl->o.now_ms)
        rl->o.now_ms = rl_mono_ms;
    size_t n = 64;
    while (n < o->max_entries && n < ((size_t)1 << 24))
        n <<= 1;
    rl->n = n;
    rl->slots = calloc(n, sizeof *rl->slots);
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    crypto_shorthash_keygen(rl->hkey);
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void ratelimit_free(ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

size_t ratelimit_size(ratelimit *rl)
{
    pthread_mutex_lock(&rl->lock);
    size_t n = rl->used;
    pthread_mutex_unlock(&rl->lock);
    return n;
}

static uint64_t rl_capacity(const ratelimit *rl, rpc_rate_class cls)
{
    uint32_t b = rl->o.burst[cls] ? rl->o.burst[cls] : rl->o.per_minute[cls];
    return (uint64_t)b * RL_UNIT;
}

int ratelimit_take(ratelimit *rl, int64_t *retry_after_ms, const char *who, rpc_rate_class cls)
{
    *retry_after_ms = 0;
    if ((unsigned)cls >= RPC_RATE_CLASS_COUNT || rl->o.per_minute[cls] == 0)
        return 0;
    uint64_t per_ms = rl->o.per_minute[cls]; /* units a millisecond */
    uint64_t cap = rl_capacity(rl, cls);
    char name[RL_WHO_MAX];
    snprintf(name, sizeof name, "%s", who);
    size_t name_len = strlen(name);
    uint8_t h[crypto_shorthash_BYTES];
    uint8_t in[RL_WHO_MAX + 1];
    memcpy(in, name, name_len);
    in[name_len] = (uint8_t)cls;
    crypto_shorthash(h, in, name_len + 1, rl->hkey);
    uint64_t hv;
    memcpy(&hv, h, sizeof hv);

    pthread_mutex_lock(&rl->lock);
    int64_t now = rl->o.now_ms(rl->o.clock_arg);
    rl_slot *slot = NULL, *empty = NULL, *oldest = NULL;
    for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
        rl_slot *s = &rl->slots[(hv + i) & (rl->n - 1)];
        if (!s->used) {
            if (!empty)
                empty = s;
            continue;
        }
        if (s->cls == (uint8_t)cls && strcmp(s->who, name) == 0) {
            slot = s;
            break;
        }
        if (!oldest || s->last_ms < oldest->last_ms)
            oldest = s;
    }
    if (!slot) {
        slot = empty ? empty : oldest;
        if (empty)
            rl->used++;
        slot->used = true;
        slot->cls = (uint8_t)cls;
        memcpy(slot->who, name, name_len + 1);
        slot->tokens = cap;
        slot->last_ms = now;
    }
    if (now > slot->last_ms) {
        uint64_t add = (uint64_t)(now - slot->last_ms) * per_ms;
        slot->tokens = add >= cap - slot->tokens ? cap : slot->tokens + add;
        slot->last_ms = now;
    }
    int rc = 0;
    if (slot->tokens >= RL_UNIT) {
        slot->tokens -= RL_UNIT;
    } else {
        uint64_t missing = RL_UNIT - slot->tokens;
        *retry_after_ms = (int64_t)((missing + per_ms - 1) / per_ms);
        rc = -1;
    }
    pthread_mutex_unlock(&rl->lock);
    return rc;
}

static const char *rl_class_name(rpc_rate_class c)
{
    switch (c) {
    case RPC_RATE_READ: return "read";
    case RPC_RATE_WRITE: return "write";
    case RPC_RATE_ADMIN: return "admin";
    case RPC_RATE_EXECUTE: return "execute";
    case RPC_RATE_NONE: break;
    }
    return "unlimited";
}

rpc_code ratelimit_check(void *arg, char *msg, size_t msg_len, int64_t *retry_after_ms, const auth_caller *caller,
                         rpc_rate_class rate)
{
    ratelimit *rl = arg;
    char who[RL_WHO_MAX];
    auth_caller_name(caller, who, sizeof who);
    if (ratelimit_take(rl, retry_after_ms, who, rate) == 0)
        return RPC_OK;
    snprintf(msg, msg_len, "rate limit exceeded: %u %s calls a minute; retry in %lld ms",
             rl->o.per_minute[rate], rl_class_name(rate), (long long)*retry_after_ms);
    return RPC_RESOURCE_EXHAUSTED;
}
