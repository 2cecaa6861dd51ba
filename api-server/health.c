#include "health.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    health_component_status st;
    health_probe_fn probe;
    void *arg;
} health_component;

struct health {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    health_component comps[HEALTH_COMPONENTS_MAX];
    size_t n;
    _Atomic uint64_t version;   /* bumped, under the lock, after every write to comps or n */
    unsigned interval_ms, timeout_ms;
    bool started, stop, draining, serving;
    pthread_t thread;
    health_watcher *watchers;
};

static uint64_t health_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *health_state_name(health_state s)
{
    switch (s) {
    case HEALTH_UP: return "up";
    case HEALTH_DOWN: return "down";
    case HEALTH_NOT_CONFIGURED: return "not_configured";
    case HEALTH_UNKNOWN: break;
    }
    return "unknown";
}

health *health_new(unsigned interval_ms, unsigned probe_timeout_ms)
{
    if (interval_ms == 0 || probe_timeout_ms == 0)
        return NULL;
    health *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &ca);
    pthread_condattr_destroy(&ca);
    h->interval_ms = interval_ms;
    h->timeout_ms = probe_timeout_ms;
    /* Versions of different objects never coincide, so a cache keyed by
     * one cannot be fooled by a new object at a freed one's address. */
    static _Atomic uint64_t health_epoch;
    atomic_init(&h->version, (atomic_fetch_add_explicit(&health_epoch, 1, memory_order_relaxed) + 1) << 32);
    return h;
}

int health_add_component(health *h, const char *name, bool required, health_probe_fn probe, void *arg)
{
    if (h->started || h->n == HEALTH_COMPONENTS_MAX || !name || strlen(name) >= HEALTH_NAME_MAX)
        return -1;
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->comps[i].st.name, name) == 0)
            return -1;
    health_component *c = &h->comps[h->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->st.name, sizeof c->st.name, "%s", name);
    c->st.required = probe ? required : false;
    c->st.state = probe ? HEALTH_UNKNOWN : HEALTH_NOT_CONFIGURED;
    if (!probe)
        snprintf(c->st.detail, sizeof c->st.detail, "not configured in this build");
    c->probe = probe;
    c->arg = arg;
    atomic_fetch_add_explicit(&h->version, 1, memory_order_release);
    return 0;
}

/* With the lock held: recomputes the verdict and tells watchers of a change. */
static void health_publish_locked(health *h)
{
    bool serving = !h->draining;
    for (size_t i = 0; i < h->n; i++)
        if (h->comps[i].st.required && h->comps[i].st.state != HEALTH_UP)
            serving = false;
    if (serving == h->serving)
        return;
    h->serving = serving;
    log_event(serving ? LOG_INFO : LOG_WARN, "health.change", "serving=%s draining=%d",
              serving ? "true" : "false", h->draining);
    for (health_watcher *w = h->watchers; w; w = w->next)
        w->fn(w->arg, serving);
}

/* One round: each probe runs without the lock. */
static void health_round(health *h)
{
    for (size_t i = 0; i < h->n; i++) {
        health_component *c = &h->comps[i];
        if (!c->probe)
            continue;
        char detail[HEALTH_DETAIL_MAX] = "";
        uint64_t t0 = health_now_us();
        int rc = c->probe(c->arg, detail, sizeof detail, h->timeout_ms);
        uint64_t took = health_now_us() - t0;
        pthread_mutex_lock(&h->lock);
        health_state was = c->st.state;
        c->st.state = rc == 0 ? HEALTH_UP : HEALTH_DOWN;
        c->st.latency_us = took;
        snprintf(c->st.detail, sizeof c->st.detail, "%s", rc == 0 ? "" : detail);
        atomic_fetch_add_explicit(&h->version, 1, memory_order_release);
        if (was != c->st.state) {
            char q[HEALTH_DETAIL_MAX + 8];
            log_event(rc == 0 ? LOG_INFO : LOG_WARN, "health.component", "component=%s state=%s detail=%s",
                      c->st.name, health_state_name(c->st.state), log_quote(q, sizeof q, c->st.detail));
        }
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_lock(&h->lock);
    health_publish_locked(h);
    pthread_mutex_unlock(&h->lock);
}

static void *health_main(void *arg)
{
    health *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += h->interval_ms / 1000;
        until.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!h->stop && pthread_cond_timedwait(&h->wake, &h->lock, &until) != ETIMEDOUT) {
        }
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->lock);
        health_round(h);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int health_start(health *h)
{
    if (h->started)
        return -1;
    health_round(h);
    if (pthread_create(&h->thread, NULL, health_main, h) != 0)
        return -1;
    h->started = true;
    return 0;
}

void health_stop(health *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->started = false;
}

void health_free(health *h)
{
    if (!h)
        return;
    health_stop(h);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void health_set_draining(health *h)
{
    pthread_mutex_lock(&h->lock);
    h->draining = true;
    health_publish_locked(h);
    pthread_mutex_unlock(&h->lock);
}

bool health_serving(health *h)
{
    pthread_mutex_lock(&h->lock);
    bool s = h->serving;
    pthread_mutex_unlock(&h->lock);
    return s;
}

uint64_t health_version(health *h)
{
    return atomic_load_explicit(&h->version, memory_order_acquire);
}

size_t health_snapshot(health *h, health_component_status *out, size_t cap)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n && i < cap; i++)
        out[i] = h->comps[i].st;
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void health_watch(health *h, health_watcher *w)
{
    pthread_mutex_lock(&h->lock);
    w->next = h->watchers;
    h->watchers = w;
    w->fn(w->arg, h->serving);
    pthread_mutex_unlock(&h->lock);
}

void health_unwatch(health *h, health_watcher *w)
{
    pthread_mutex_lock(&h->lock);
    for (health_watcher **p = &h->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    w->next = NULL;
    pthread_mutex_unlock(&h->lock);
}
