/* The gateway's own gRPC client (gw_ucl on gw_upstream's calls loop,
 * framed by nghttp2): any bytes an upstream server sends back.
 *
 * Once: gw_upstreams with ONE target, "unix:<dir>/api.sock" in a private
 * mkdtemp directory, started (its "gw-calls" thread runs the client),
 * with a 4 KiB response limit. The upstreams are made BEFORE the harness
 * listens on that path: their start-up health check (through the gRPC
 * core) then fails at connect, instead of leaving in the listening queue
 * a connection the harness would take for the gateway's. The target is
 * unhealthy, which is fine: with no healthy target, calls go to every
 * target. The health interval is an hour, so no later check runs; should
 * the core's health channel reconnect by itself anyway, its connection
 * is served like any other (below) and does no harm.
 *
 * Input: byte 0 chooses the calls: bits 0-1, how many (1 + value % 3);
 * bits 2-3, 4-5, 6-7, the deadline of call 0, 1, 2 (none, 300 ms, 1 ms,
 * 5 ms: short ones expire while their stream is open, which detaches
 * it). The rest is what the server writes; most seeds start with its
 * SETTINGS, then answer streams 1, 3, 5 (tests/fuzz/gen_gw_ucl_corpus.py).
 * The first two "PAUSE"s in it are not written but waited at until the
 * calls with a short deadline have ended (at most 50 ms): their
 * deadlines pass with their streams open.
 *
 * Per input: the calls (coffer.v1.SystemService/GetInfo, with metadata)
 * are started with gw_upstreams_call_start(u, NULL, ...), so they run on
 * the upstreams' own loop thread. Every connection the gateway opens to
 * the socket while they run is accepted and served the same bytes: once
 * the requests of the calls still running have arrived (fuzz_ucl_serve
 * says why), the rest of the input written while what the gateway sends
 * is read and dropped, our writing shut down, then read until the
 * gateway closes (it must, at our EOF), then closed. A call the server refused unprocessed
 * (REFUSED_STREAM, above a GOAWAY's last stream) is sent again on a new
 * connection, which is why there can be more than one. Then the calls
 * are waited for.
 *
 * Properties: no crash, leak or sanitizer report, in gw_ucl, gw_upstream,
 * gw_grpcwire or what they call; every call's done runs exactly once
 * (CHECK in fuzz_ucl_done and after the wait), within FUZZ_UCL_CALLS_MS
 * of the server's close whatever it sent, with rc 0, a message, a code
 * 0..16, the target's index, and a response exactly when the code is OK
 * (a GetInfoResponse); the gateway closes its end when the server does
 * (FUZZ_UCL_STUCK_MAX below), so no connection outlives its input.
 *
 * The client lives on from input to input, as in a long-running gateway:
 * its pool of streams (reused with their buffers) carries state across
 * inputs. If a finding's input alone does not reproduce it, run the
 * corpus directory it was found with (the input that crashed is the last
 * one run). nghttp2 itself is Debian's, not instrumented: coverage guides
 * the fuzzer through the gateway's code, not nghttp2's parser. */
#include "coffer/v1/system.pb-c.h"
#include "fuzz_check.h"
#include "fuzz_gw_common.h"
#include "gw_upstream.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_UCL_CALLS_MAX 3
#define FUZZ_UCL_REQUEST_MS 100 /* the wait for the requests of the calls still running */
#define FUZZ_UCL_WRITE_MS 2000  /* the most the server's bytes may take to write */
#define FUZZ_UCL_PAUSE_MS 50    /* the most a "PAUSE" waits for the short deadlines to pass */
#define FUZZ_UCL_PAUSES_MAX 2
#define FUZZ_UCL_CLOSE_MS 1000  /* the wait for the gateway to close after our EOF */
#define FUZZ_UCL_CALLS_MS 2000  /* the wait for the calls to end once the server closed */
#define FUZZ_UCL_CONNS_MAX 16   /* connections served per input (refusals resend, boundedly) */
#define FUZZ_UCL_STUCK_MAX 10   /* connections in a row the gateway did not close at our EOF */

/* Call i's deadline, by byte 0's two bits: none, 300 ms, 1 ms, 5 ms
 * (the short ones, index 2 and 3, are what a "PAUSE" waits for). */
static const int64_t fuzz_ucl_deadlines_ms[4] = {0, 300, 1, 5};

typedef struct {
    gw_upcall c;
    atomic_uint started; /* calls started in this slot, ever */
    atomic_uint done;    /* done functions run for it, ever */
    bool short_deadline; /* this input's call has a 1 or 5 ms deadline */
} fuzz_ucl_call;

static struct {
    gw_upstreams *ups;
    int listen_fd;
    int done_fd; /* an eventfd: a call ended */
    char dir[64];
    char path[96];
    fuzz_ucl_call calls[FUZZ_UCL_CALLS_MAX];
    unsigned stuck; /* connections in a row that the gateway did not close */
} fz = {.listen_fd = -1, .done_fd = -1};

static volatile size_t fuzz_ucl_sink;

static int64_t fuzz_ucl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fuzz_ucl_cleanup(void)
{
    if (fz.path[0])
        unlink(fz.path);
    if (fz.dir[0])
        rmdir(fz.dir);
}

/* Runs on the gw-calls thread, once per call: the properties of an end. */
static void fuzz_ucl_done(void *arg, int rc, const rpc_call_result *res, const ProtobufCMessage *response,
                          size_t target_index)
{
    fuzz_ucl_call *fc = arg;
    /* A second end of the same call shows here (or in the count after
     * the wait, if it comes late). */
    CHECK(atomic_load(&fc->done) < atomic_load(&fc->started));
    CHECK(rc == 0);
    CHECK(res != NULL);
    CHECK(res->message != NULL);
    CHECK((unsigned)res->code <= RPC_CODE_MAX);
    CHECK(target_index == 0);
    CHECK((res->code == RPC_OK) == (response != NULL));
    /* Read everything the caller may read, so ASan sees it. */
    size_t sum = strlen(res->message);
    const grpcw_md_list *lists[2] = {&res->initial_md, &res->trailing_md};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->count; i++) {
            const grpcw_md_entry *e = &lists[l]->items[i];
            CHECK(e->key != NULL && e->value != NULL);
            CHECK(e->value[e->value_len] == '\0');
            sum += strlen(e->key) + e->value_len;
            for (size_t k = 0; k < e->value_len; k++)
                sum += (uint8_t)e->value[k];
        }
    if (response) {
        CHECK(response->descriptor == &coffer__v1__get_info_response__descriptor);
        const Coffer__V1__GetInfoResponse *r = (const Coffer__V1__GetInfoResponse *)response;
        sum += strlen(r->version) + strlen(r->commit);
        for (size_t i = 0; i < r->n_components; i++)
            sum += strlen(r->components[i]->name) + strlen(r->components[i]->detail);
    }
    fuzz_ucl_sink = sum; /* volatile: the reads above are not optimized away */
    atomic_fetch_add(&fc->done, 1);
    uint64_t one = 1;
    CHECK(write(fz.done_fd, &one, sizeof one) == sizeof one);
}

static void fuzz_ucl_setup(void)
{
    /* The client's warnings (lost connections, GOAWAYs) go to /dev/null. */
    fuzz_gw_quiet("fuzz_gw_ucl");

    snprintf(fz.dir, sizeof fz.dir, "/tmp/coffer-fuzz-ucl-XXXXXX");
    CHECK(mkdtemp(fz.dir) != NULL);
    snprintf(fz.path, sizeof fz.path, "%s/api.sock", fz.dir);
    atexit(fuzz_ucl_cleanup);
    char target[128];
    snprintf(target, sizeof target, "unix:%s", fz.path);
    /* Before anything listens there: the start-up check fails at once. */
    fz.ups = fuzz_gw_upstreams("fuzz_gw_ucl", target, 3600000, 200, 4096);

    /* Listening before any call starts: a failed connect would keep the
     * client off the target for GW_UCL_RETRY_MS. */
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    CHECK(strlen(fz.path) < sizeof sun.sun_path);
    memcpy(sun.sun_path, fz.path, strlen(fz.path));
    fz.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fz.listen_fd >= 0);
    CHECK(bind(fz.listen_fd, (const struct sockaddr *)&sun, sizeof sun) == 0);
    CHECK(listen(fz.listen_fd, 64) == 0);

    fz.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(fz.done_fd >= 0);
    for (size_t i = 0; i < FUZZ_UCL_CALLS_MAX; i++)
        CHECK(gw_upcall_init(&fz.calls[i].c) == 0);
}

/* What the gateway sent on one connection, read as far as the harness
 * needs: its preface, then frames, of which HEADERS (requests: the
 * client sends no trailers) are counted. */
typedef struct {
    size_t preface_left; /* bytes of the client preface still to come */
    uint8_t hd[9];       /* a frame header being read */
    size_t hd_len;
    size_t payload_left; /* bytes of the current frame still to come */
    unsigned requests;   /* HEADERS frames seen */
} fuzz_ucl_peer;

static void fuzz_ucl_parse(fuzz_ucl_peer *p, const uint8_t *b, size_t n)
{
    while (n) {
        size_t k;
        if (p->preface_left) {
            k = n < p->preface_left ? n : p->preface_left;
            p->preface_left -= k;
        } else if (p->payload_left) {
            k = n < p->payload_left ? n : p->payload_left;
            p->payload_left -= k;
        } else {
            k = n < 9 - p->hd_len ? n : 9 - p->hd_len;
            memcpy(p->hd + p->hd_len, b, k);
            p->hd_len += k;
            if (p->hd_len == 9) {
                p->hd_len = 0;
                p->payload_left = (size_t)p->hd[0] << 16 | (size_t)p->hd[1] << 8 | p->hd[2];
                if (p->hd[3] == 0x1) /* HEADERS */
                    p->requests++;
            }
        }
        b += k;
        n -= k;
    }
}

/* Reads what the gateway sent (counted by p, then dropped). Returns 1 at
 * EOF (or a reset: the gateway closed), else 0. */
static int fuzz_ucl_drain(int fd, fuzz_ucl_peer *p)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            fuzz_ucl_parse(p, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return 1; /* ECONNRESET: the gateway closed with our bytes unread */
    }
}

static unsigned fuzz_ucl_pending(size_t n)
{
    unsigned pending = 0;
    for (size_t i = 0; i < n; i++)
        pending += atomic_load(&fz.calls[i].started) - atomic_load(&fz.calls[i].done);
    return pending;
}

/* Writes len bytes to the gateway while reading what it sends. Returns
 * 1 when the gateway closed meanwhile. */
static int fuzz_ucl_write(int fd, fuzz_ucl_peer *peer, const uint8_t *data, size_t len)
{
    size_t off = 0;
    int64_t deadline = fuzz_ucl_now_ms() + FUZZ_UCL_WRITE_MS;
    while (off < len) {
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        int rc = poll(&p, 1, 50);
        if (rc < 0 && errno != EINTR)
            return 1;
        if (rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && fuzz_ucl_drain(fd, peer))
            return 1;
        if (rc > 0 && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return 1; /* EPIPE: the gateway closed */
        }
        if (fuzz_ucl_now_ms() > deadline)
            return 0; /* the gateway stopped reading (it should not): the rest is dropped */
    }
    return 0;
}

/* Reads what the gateway sends for up to ms, or until until(peer, arg)
 * holds (checked whenever the gateway sends or a call ends). Returns 1
 * when the gateway closed. */
static int fuzz_ucl_wait(int fd, fuzz_ucl_peer *peer, int64_t ms, bool (*until)(const fuzz_ucl_peer *, size_t),
                         size_t arg)
{
    int64_t deadline = fuzz_ucl_now_ms() + ms;
    for (;;) {
        if (until && until(peer, arg))
            return 0;
        int64_t left = deadline - fuzz_ucl_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p[2] = {{fd, POLLIN, 0}, {fz.done_fd, POLLIN, 0}};
        int rc = poll(p, until ? 2 : 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return 1;
        if (rc > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && fuzz_ucl_drain(fd, peer))
            return 1;
        if (rc > 0 && until && (p[1].revents & POLLIN)) {
            uint64_t v;
            if (read(fz.done_fd, &v, sizeof v) < 0) {
                /* EAGAIN: read already */
            }
        }
    }
}

static bool fuzz_ucl_requests_in(const fuzz_ucl_peer *peer, size_t n_calls)
{
    return peer->requests >= fuzz_ucl_pending(n_calls);
}

/* No call with a short deadline is still running. */
static bool fuzz_ucl_short_ended(const fuzz_ucl_peer *peer, size_t n_calls)
{
    (void)peer;
    for (size_t i = 0; i < n_calls; i++)
        if (fz.calls[i].short_deadline && atomic_load(&fz.calls[i].started) != atomic_load(&fz.calls[i].done))
            return false;
    return true;
}

/* One connection of the gateway's: the wait for the requests of the
 * calls still running; the server's bytes written while the gateway's
 * are read, with a pause at each of the first FUZZ_UCL_PAUSES_MAX
 * "PAUSE"s in them (the token itself is not sent) until the calls with a
 * short deadline have ended (their deadlines pass there, with their
 * streams open); our EOF; then the wait for the gateway's. Returns 1
 * when the gateway closed it.
 *
 * Why wait for the requests: the calls are handed to the loop thread one
 * by one, and it may start the first, read our answers and only then
 * start the others; an answer on a stream the client has not opened yet
 * is a protocol error no real server makes, and would end most inputs
 * with several calls the same way. */
static int fuzz_ucl_serve(int fd, size_t n_calls, const uint8_t *data, size_t size)
{
    static const char pause[] = "PAUSE";
    const size_t pause_len = sizeof pause - 1;
    fuzz_ucl_peer peer = {.preface_left = 24};
    int closed = fuzz_ucl_wait(fd, &peer, FUZZ_UCL_REQUEST_MS, fuzz_ucl_requests_in, n_calls);
    size_t off = 0;
    for (int pauses = 0; !closed && off < size; pauses++) {
        const uint8_t *at = pauses < FUZZ_UCL_PAUSES_MAX ? memmem(data + off, size - off, pause, pause_len) : NULL;
        size_t len = at ? (size_t)(at - (data + off)) : size - off;
        closed = fuzz_ucl_write(fd, &peer, data + off, len);
        off += len;
        if (at && !closed) {
            off += pause_len;
            closed = fuzz_ucl_wait(fd, &peer, FUZZ_UCL_PAUSE_MS, fuzz_ucl_short_ended, n_calls);
        }
    }
    if (!closed) {
        shutdown(fd, SHUT_WR);
        closed = fuzz_ucl_wait(fd, &peer, FUZZ_UCL_CLOSE_MS, NULL, 0);
    }
    close(fd);
    return closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ups)
        fuzz_ucl_setup();
    if (size < 1)
        return 0;
    uint8_t choice = data[0];
    data++;
    size--;
    size_t n = 1 + (size_t)(choice & 3) % FUZZ_UCL_CALLS_MAX;

    static const grpcw_md md[] = {
        {"x-request-id", "fuzz-ucl", 8},
        {"authorization", "Bearer fuzz", 11},
    };
    Coffer__V1__GetInfoRequest req;
    coffer__v1__get_info_request__init(&req);
    for (size_t i = 0; i < n; i++) {
        fuzz_ucl_call *fc = &fz.calls[i];
        unsigned d = (choice >> (2 + 2 * i)) & 3;
        fc->short_deadline = d >= 2;
        rpc_call_options o = {fuzz_ucl_deadlines_ms[d], md, sizeof md / sizeof md[0]};
        rpc_call_result res;
        atomic_fetch_add(&fc->started, 1);
        int rc = gw_upstreams_call_start(fz.ups, NULL, &fc->c, &res, &coffer__v1__system_service__descriptor,
                                         "GetInfo", &req.base, &o, fuzz_ucl_done, fc);
        if (rc != 0)
            fprintf(stderr, "fuzz_gw_ucl: call_start: %s\n", res.message ? res.message : "?");
        CHECK(rc == 0);
    }

    /* Every connection the calls open is served until they have all
     * ended. A connection is in the listening queue from the gateway's
     * connect() on, before its call can end: once they all have, a poll
     * without waiting finds any left. */
    unsigned conns = 0;
    int64_t deadline = fuzz_ucl_now_ms() + FUZZ_UCL_CALLS_MS;
    for (;;) {
        bool all = fuzz_ucl_pending(n) == 0;
        int64_t left = deadline - fuzz_ucl_now_ms();
        struct pollfd p[2] = {{fz.listen_fd, POLLIN, 0}, {fz.done_fd, POLLIN, 0}};
        int rc = poll(p, 2, all || left <= 0 ? 0 : (int)left);
        if (rc > 0 && (p[1].revents & POLLIN)) {
            uint64_t v;
            if (read(fz.done_fd, &v, sizeof v) < 0) {
                /* EAGAIN: read already */
            }
        }
        if (rc > 0 && (p[0].revents & POLLIN)) {
            int fd = accept4(fz.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                continue; /* EAGAIN */
            if (++conns > FUZZ_UCL_CONNS_MAX) {
                close(fd); /* a reconnect loop: the calls' wait below catches one that never ends */
                continue;
            }
            int closed = fuzz_ucl_serve(fd, n, data, size);
            fz.stuck = closed ? 0 : fz.stuck + 1;
            if (fz.stuck >= FUZZ_UCL_STUCK_MAX)
                fprintf(stderr, "fuzz_gw_ucl: the gateway closed none of the last %u connections at EOF\n",
                        fz.stuck);
            CHECK(fz.stuck < FUZZ_UCL_STUCK_MAX);
            deadline = fuzz_ucl_now_ms() + FUZZ_UCL_CALLS_MS;
            continue;
        }
        if (all || fuzz_ucl_now_ms() > deadline)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned s = atomic_load(&fz.calls[i].started), d = atomic_load(&fz.calls[i].done);
        if (s != d)
            fprintf(stderr, "fuzz_gw_ucl: call %zu of %zu: started %u times, ended %u times (%u connections)\n", i,
                    n, s, d, conns);
        CHECK(s == d);
    }
    return 0;
}
