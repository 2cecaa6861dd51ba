/* The HTTP/2 front of coffer-gateway (gw_h2 over gw_pipe, framed by
 * nghttp2): any bytes a client sends on one connection.
 *
 * Once: what coffer-gateway's main builds (types, the routes of the
 * embedded descriptor set, metrics, upstreams, the pipeline, the HTTP/2
 * front on 127.0.0.1:0), with ONE upstream that does not exist, so calls
 * end at once with UNAVAILABLE (503) and no input waits on a server; small
 * limits (4 KiB bodies, 16 streams); the access log on, as it is by
 * default, into /dev/null (writing its lines is part of a request).
 *
 * Input: byte 0, bit 0 set: the client connection preface
 * ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") is sent first, so that most inputs
 * reach frame handling; the rest is what the client writes. Per input: a
 * socketpair, one end handed to the running front (gw_h2_adopt), the
 * input written to the other end while its replies are read, writing
 * shut down, replies read until the gateway closes (it does at our EOF)
 * or 200 ms pass, our end closed, and the input's upstream calls waited
 * for. Properties: no crash, leak or sanitizer report in the front or its
 * pipeline; no fd outlives its input; the loop keeps closing connections
 * (CHECK below).
 *
 * The front lives on from input to input, as in a long-running gateway:
 * its pool of streams (reused with their buffers) carries state across
 * inputs, which is where bugs of reuse hide. So a finding may need the
 * inputs run before it: if its input alone does not reproduce it, run
 * the corpus directory it was found with (the input that crashed is the
 * last one run). nghttp2 itself is Debian's, not instrumented: coverage
 * guides the fuzzer through the gateway's code, not nghttp2's parser. */
#include "fuzz_check.h"
#include "fuzz_gw_common.h"
#include "gw_h2.h"
#include "gw_metrics.h"
#include "gw_pipe.h"
#include "gw_registry.h"
#include "gw_routes.h"
#include "gw_types.h"
#include "gw_upstream.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char gw_openapi_json[];
extern const size_t gw_openapi_json_len;

#define FUZZ_H2_READ_MS 200   /* the wait for the gateway to close after our EOF */
#define FUZZ_H2_CALLS_MS 2000 /* the wait for the input's upstream calls to end */
#define FUZZ_H2_STUCK_MAX 25  /* inputs in a row without the gateway closing: its loop is stuck */

static const char fuzz_h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct {
    gw_types *types;
    gw_routes *routes;
    gw_metrics *metrics;
    gw_upstreams *ups;
    gw_pipe *pipe;
    gw_h2 *h2;
    unsigned stuck; /* inputs in a row that ended by the timeout */
} fz;

static int64_t fuzz_h2_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What gw_serve (gateway/main.c) builds, with small limits. Stays up for
 * the life of the process (reachable from fz: not a leak). */
static void fuzz_h2_setup(void)
{
    char err[512];
    /* The access log on, as coffer-gateway's default is, into /dev/null
     * (with the unreachable upstream's expected warnings). */
    fuzz_gw_quiet("fuzz_gw_h2");
    fz.types = gw_types_new();
    CHECK(fz.types != NULL);
    fz.routes = gw_routes_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len,
                              gw_types_service);
    if (!fz.routes)
        fprintf(stderr, "fuzz_gw_h2: routes: %s\n", err);
    CHECK(fz.routes != NULL);
    fz.metrics = gw_metrics_new(fz.routes);
    CHECK(fz.metrics != NULL);
    fz.ups = fuzz_gw_upstreams("fuzz_gw_h2", "unix:/nonexistent/coffer-fuzz.sock", 60000, 100, 65536);
    gw_pipe_options po = {
        .max_body_bytes = 4096, .default_timeout_ms = 200, .max_timeout_ms = 500, .access_log = true,
        .routes = fz.routes, .upstreams = fz.ups, .metrics = fz.metrics, .types = fz.types,
        .openapi_json = (const char *)gw_openapi_json, .openapi_json_len = gw_openapi_json_len,
    };
    fz.pipe = gw_pipe_new(err, sizeof err, &po);
    CHECK(fz.pipe != NULL);
    gw_h2_options o2 = {
        .listen = "127.0.0.1:0", .max_connections = 64, .max_streams = 16, .idle_timeout_s = 5, .pipe = fz.pipe,
    };
    fz.h2 = gw_h2_start(err, sizeof err, &o2);
    if (!fz.h2)
        fprintf(stderr, "fuzz_gw_h2: %s\n", err);
    CHECK(fz.h2 != NULL);
}

/* Reads and drops what the gateway sent. Returns 1 at EOF (or a reset:
 * the gateway closed), else 0. */
static int fuzz_h2_drain(int fd)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return 1; /* ECONNRESET: the gateway closed with our bytes unread */
    }
}

/* Writes part a then part b to fd while draining what comes back (the
 * gateway answers before it has read everything, and its replies would
 * fill the socket if we did not read them). Returns 1 when the gateway
 * closed meanwhile. */
static int fuzz_h2_write(int fd, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t off = 0, total = alen + blen;
    int64_t deadline = fuzz_h2_now_ms() + 2000;
    while (off < total) {
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        int rc = poll(&p, 1, 50);
        if (rc < 0 && errno != EINTR)
            return 1;
        if (rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && fuzz_h2_drain(fd))
            return 1;
        if (rc > 0 && (p.revents & POLLOUT)) {
            const uint8_t *src = off < alen ? a + off : b + (off - alen);
            size_t len = off < alen ? alen - off : total - off;
            ssize_t w = send(fd, src, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return 1; /* EPIPE: the gateway closed */
        }
        if (fuzz_h2_now_ms() > deadline)
            return 0; /* the gateway stopped reading (it should not): give up the rest */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.h2)
        fuzz_h2_setup();
    if (size < 1)
        return 0;
    bool preface = data[0] & 1;
    data++;
    size--;

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (gw_h2_adopt(fz.h2, sv[0]) != 0) {
        /* The loop has not taken the sockets handed over: it is stuck. */
        fprintf(stderr, "fuzz_gw_h2: gw_h2_adopt refused the socket\n");
        CHECK(0);
    }
    /* sv[0] is the gateway's now. */
    int closed = fuzz_h2_write(sv[1], (const uint8_t *)fuzz_h2_preface, preface ? sizeof fuzz_h2_preface - 1 : 0,
                               data, size);
    if (!closed) {
        shutdown(sv[1], SHUT_WR);
        int64_t deadline = fuzz_h2_now_ms() + FUZZ_H2_READ_MS;
        for (;;) {
            int64_t left = deadline - fuzz_h2_now_ms();
            if (left <= 0)
                break;
            struct pollfd p = {sv[1], POLLIN, 0};
            int rc = poll(&p, 1, (int)left);
            if (rc < 0 && errno != EINTR)
                break;
            if (rc > 0 && fuzz_h2_drain(sv[1])) {
                closed = 1;
                break;
            }
        }
    }
    close(sv[1]);

    /* Every connection ends at the client's EOF: one that did not within
     * the wait, input after input, means the event loop stopped. */
    fz.stuck = closed ? 0 : fz.stuck + 1;
    if (fz.stuck >= FUZZ_H2_STUCK_MAX)
        fprintf(stderr, "fuzz_gw_h2: the HTTP/2 loop closed none of the last %u connections\n", fz.stuck);
    CHECK(fz.stuck < FUZZ_H2_STUCK_MAX);

    /* The input's upstream calls (UNAVAILABLE at once) end before the
     * next input, so that nothing of this input runs during the next. */
    int64_t deadline = fuzz_h2_now_ms() + FUZZ_H2_CALLS_MS;
    struct timespec ts = {0, 200000L};
    while (gw_pipe_calls(fz.pipe) > 0 && fuzz_h2_now_ms() < deadline)
        nanosleep(&ts, NULL);
    return 0;
}
