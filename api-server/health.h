/* health: the state of the components coffer-api depends on, probed by a
 * background thread every interval and cached, so health checks and
 * GetInfo never wait for a probe and never load PostgreSQL per call.
 *
 * Components are a table too: each has a name ("db", "signer", ...),
 * whether serving requires it, and a probe function (NULL: not configured
 * yet, reported as such). The server is SERVING when it is not draining
 * and every required component answered its last probe. Watchers (the
 * Health.Watch streams) are told of every change of that verdict. */
#ifndef COFFER_HEALTH_H
#define COFFER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_COMPONENTS_MAX 8u
#define HEALTH_NAME_MAX 32u
#define HEALTH_DETAIL_MAX 200u

typedef enum {
    HEALTH_UNKNOWN = 0,     /* not probed yet */
    HEALTH_UP,
    HEALTH_DOWN,
    HEALTH_NOT_CONFIGURED,
} health_state;

/* A probe: returns 0 when the component answered within timeout_ms, -1
 * otherwise with detail[0..detail_len) saying why in words an operator can
 * act on. Runs on the health thread; may block up to about timeout_ms. */
typedef int (*health_probe_fn)(void *arg, char *detail, size_t detail_len, unsigned timeout_ms);

typedef struct {
    char name[HEALTH_NAME_MAX];
    bool required;
    health_state state;
    char detail[HEALTH_DETAIL_MAX];
    uint64_t latency_us;     /* how long the last probe took */
} health_component_status;

/* A watcher: fn(arg, serving) is called on the health thread, with the
 * health lock held, on every change; it must not block or call back into
 * health. Caller-owned storage, linked while watching. */
typedef struct health_watcher {
    void (*fn)(void *arg, bool serving);
    void *arg;
    struct health_watcher *next;
} health_watcher;

typedef struct health health;

/* interval_ms: time between probe rounds; probe_timeout_ms: given to each
 * probe. Returns NULL when memory is short or an argument is 0. */
__attribute__((warn_unused_result))
health *health_new(unsigned interval_ms, unsigned probe_timeout_ms);

/* Adds a component before health_start. probe NULL: not configured (never
 * required). Returns 0, or -1 (too many, duplicate name, started). */
__attribute__((warn_unused_result))
int health_add_component(health *h, const char *name, bool required, health_probe_fn probe, void *arg);

/* Probes every component once (so the first answers are real), then
 * starts the thread. Returns 0 or -1. */
__attribute__((warn_unused_result))
int health_start(health *h);

/* Stops and joins the thread (waits for a probe in progress). */
void health_stop(health *h);

/* Stops if needed and frees. h may be NULL. */
void health_free(health *h);

/* From now on NOT_SERVING (the server is draining); watchers are told. */
void health_set_draining(health *h);

/* The verdict: not draining and every required component up. */
bool health_serving(health *h);

/* Copies up to cap components' last results into out; returns how many
 * components there are. */
size_t health_snapshot(health *h, health_component_status *out, size_t cap);

/* A number that changes whenever what health_snapshot returns may have
 * changed (each probe result counts, even an identical one). Read it
 * before taking a snapshot: a snapshot is at least as new as the version
 * read before it. Lock-free, for callers that cache what they built from
 * a snapshot (GetInfo). */
uint64_t health_version(health *h);

/* Starts telling w: at once (from inside this call, with the lock held)
 * with the current verdict, then on every change, in order. */
void health_watch(health *h, health_watcher *w);

/* Stops telling w; once it returns w is never called again. */
void health_unwatch(health *h, health_watcher *w);

const char *health_state_name(health_state s);

#endif
