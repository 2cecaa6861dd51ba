/* What the gateway's fuzz targets (fuzz_gw_h2, fuzz_gw_ucl) set up alike:
 * a process that survives peers hanging up, its log lines kept out of the
 * fuzzer's output, and started upstreams to one target. */
#ifndef COFFER_FUZZ_GW_COMMON_H
#define COFFER_FUZZ_GW_COMMON_H

#include "fuzz_check.h"
#include "gw_upstream.h"
#include "log.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* SIGPIPE ignored; log lines at info and above written (the writing is
 * part of what is fuzzed) into /dev/null. */
static inline void fuzz_gw_quiet(const char *prog)
{
    signal(SIGPIPE, SIG_IGN);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(devnull >= 0);
    log_init(prog, LOG_INFO, devnull);
}

/* Started upstreams with the one target; they live as long as the process. */
static inline gw_upstreams *fuzz_gw_upstreams(const char *prog, const char *target, int64_t health_interval_ms,
                                              int64_t health_timeout_ms, size_t max_message_bytes)
{
    char err[512];
    const char *const targets[] = {target};
    gw_upstream_config uc = {
        .targets = targets, .n_targets = 1, .health_interval_ms = health_interval_ms,
        .health_timeout_ms = health_timeout_ms, .max_message_bytes = max_message_bytes,
    };
    gw_upstreams *u = gw_upstreams_new(err, sizeof err, &uc);
    if (!u)
        fprintf(stderr, "%s: upstreams: %s\n", prog, err);
    CHECK(u != NULL);
    CHECK(gw_upstreams_start(u) == 0);
    return u;
}

#endif
