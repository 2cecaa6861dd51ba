#include "ipc.h"
#include "test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static void make_pair(int sv[2], int nonblock_reader)
{
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (nonblock_reader) {
        int fl = fcntl(sv[0], F_GETFL);
        CU_ASSERT_FATAL(fl >= 0 && fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) == 0);
    }
}

static void put_header(uint8_t *h, uint32_t len)
{
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 31u + seed * 7u + (i >> 8));
}

static void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        CU_ASSERT_FATAL(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static int pending_bytes(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        return -1;
    return n;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reader over a socket ------------------------------------------------- */

static void test_ipc_one_byte_at_a_time(void)
{
    int sv[2];
    ipc_reader r;
    uint8_t wire[4 + 300];
    const uint8_t *frame = NULL;
    size_t frame_len = 0;

    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    put_header(wire, 300);
    fill_pattern(wire + 4, 300, 1);
    for (size_t i = 0; i < sizeof wire; i++) {
        write_all(sv[1], wire + i, 1);
        ipc_result res = ipc_reader_read(&r, &frame, &frame_len, sv[0]);
        if (i + 1 < sizeof wire) {
            CU_ASSERT_EQUAL(res, IPC_AGAIN);
            if (res != IPC_AGAIN)
                break;
        } else {
            CU_ASSERT_EQUAL(res, IPC_OK);
            CU_ASSERT_EQUAL(frame_len, 300);
            CU_ASSERT(frame && memcmp(frame, wire + 4, 300) == 0);
        }
    }
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_AGAIN);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_EOF);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_EOF); /* sticky */
    ipc_reader_dispose(&r);
    ipc_reader_dispose(&r); /* harmless twice */
    close(sv[0]);
}

static void test_ipc_many_frames_one_write(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 100, 1000, 4096, 7};
    enum { N = sizeof sizes / sizeof sizes[0] };
    uint8_t *wire = malloc(16384);
    size_t off = 0;
    int sv[2];
    ipc_reader r;

    CU_ASSERT_FATAL(wire != NULL);
    for (size_t i = 0; i < N; i++) {
        put_header(wire + off, (uint32_t)sizes[i]);
        fill_pattern(wire + off + 4, sizes[i], (unsigned)i);
        off += 4 + sizes[i];
    }
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    write_all(sv[1], wire, off);
    off = 0;
    for (size_t i = 0; i < N; i++) {
        const uint8_t *frame = NULL;
        size_t frame_len = 0;
        CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_OK);
        CU_ASSERT_EQUAL(frame_len, sizes[i]);
        CU_ASSERT(frame && memcmp(frame, wire + off + 4, sizes[i]) == 0);
        off += 4 + sizes[i];
    }
    const uint8_t *frame = NULL;
    size_t frame_len = 0;
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_AGAIN);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_EOF);
    ipc_reader_dispose(&r);
    close(sv[0]);
    free(wire);
}

typedef struct {
    int fd;
    const uint8_t *payload;
    size_t len;
    int timeout_ms;
    ipc_result result;
    int err;
} writer_job;

static void *writer_thread(void *arg)
{
    writer_job *job = arg;
    job->result = ipc_write_frame(job->fd, job->payload, job->len, job->timeout_ms);
    job->err = errno;
    return NULL;
}

static void test_ipc_max_frame_accepted(void)
{
    uint8_t *payload = malloc(IPC_FRAME_MAX);
    int sv[2];
    ipc_reader r;
    pthread_t t;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;
    ipc_result res;

    CU_ASSERT_FATAL(payload != NULL);
    fill_pattern(payload, IPC_FRAME_MAX, 9);
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    writer_job job = {sv[1], payload, IPC_FRAME_MAX, 5000, IPC_IO_ERROR, 0};
    CU_ASSERT_FATAL(pthread_create(&t, NULL, writer_thread, &job) == 0);
    int64_t until = mono_ms() + 5000;
    do {
        res = ipc_reader_read(&r, &frame, &frame_len, sv[0]);
        if (res == IPC_AGAIN)
            usleep(200);
    } while (res == IPC_AGAIN && mono_ms() < until);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(job.result, IPC_OK);
    CU_ASSERT_EQUAL(res, IPC_OK);
    CU_ASSERT_EQUAL(frame_len, IPC_FRAME_MAX);
    CU_ASSERT(frame && memcmp(frame, payload, IPC_FRAME_MAX) == 0);
    ipc_reader_dispose(&r);
    close(sv[0]);
    close(sv[1]);
    free(payload);
}

static void test_ipc_oversized_rejected_from_header(void)
{
    uint8_t wire[4 + 64];
    int sv[2];
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;

    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    put_header(wire, IPC_FRAME_MAX + 1);
    memset(wire + 4, 0x55, 64);
    write_all(sv[1], wire, sizeof wire);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_OVERSIZED);
    /* Not one payload byte was read: all 64 are still in the socket. */
    CU_ASSERT_EQUAL(pending_bytes(sv[0]), 64);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_OVERSIZED);
    CU_ASSERT_EQUAL(pending_bytes(sv[0]), 64);
    ipc_reader_dispose(&r);

    close(sv[0]);
    close(sv[1]);

    /* The largest possible announcement, header only. */
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    put_header(wire, 0xffffffffu);
    make_pair(sv, 1);
    write_all(sv[1], wire, 4);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_OVERSIZED);
    ipc_reader_dispose(&r);
    close(sv[0]);
    close(sv[1]);

    /* The blocking helper rejects it the same way, leaving the payload. */
    uint8_t buf[128];
    make_pair(sv, 0);
    put_header(wire, IPC_FRAME_MAX + 1);
    write_all(sv[1], wire, sizeof wire);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_OVERSIZED);
    CU_ASSERT_EQUAL(pending_bytes(sv[0]), 64);
    /* ... and a frame larger than the caller's buffer. */
    put_header(wire, 129);
    close(sv[0]);
    close(sv[1]);
    make_pair(sv, 0);
    write_all(sv[1], wire, 4);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_OVERSIZED);
    close(sv[0]);
    close(sv[1]);
}

static void test_ipc_truncated(void)
{
    uint8_t wire[4 + 10];
    int sv[2];
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;

    /* EOF inside the payload. */
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    put_header(wire, 10);
    memset(wire + 4, 'x', 10);
    write_all(sv[1], wire, 4 + 9);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_AGAIN);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_TRUNCATED);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_TRUNCATED);
    ipc_reader_dispose(&r);
    close(sv[0]);

    /* EOF inside the header. */
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    write_all(sv[1], wire, 2);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_TRUNCATED);
    ipc_reader_dispose(&r);
    close(sv[0]);

    /* EOF right after the header. */
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    write_all(sv[1], wire, 4);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_TRUNCATED);
    ipc_reader_dispose(&r);
    close(sv[0]);

    /* The blocking helper. */
    uint8_t buf[64];
    make_pair(sv, 0);
    write_all(sv[1], wire, 4 + 5);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_TRUNCATED);
    close(sv[0]);
    make_pair(sv, 0);
    write_all(sv[1], wire, 3);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_TRUNCATED);
    close(sv[0]);
}

static void test_ipc_zero_length(void)
{
    uint8_t wire[8];
    int sv[2];
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;
    uint8_t buf[16];

    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    put_header(wire, 0);
    put_header(wire + 4, 1);
    write_all(sv[1], wire, 8);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_ZERO_LENGTH);
    CU_ASSERT_EQUAL(pending_bytes(sv[0]), 4);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_ZERO_LENGTH);
    ipc_reader_dispose(&r);
    close(sv[0]);
    close(sv[1]);

    make_pair(sv, 0);
    write_all(sv[1], wire, 4);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_ZERO_LENGTH);
    close(sv[0]);
    close(sv[1]);

    /* The writer refuses to produce one. */
    make_pair(sv, 0);
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], buf, 0, 1000), IPC_ZERO_LENGTH);
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], NULL, IPC_FRAME_MAX + 1, 1000), IPC_OVERSIZED);
    CU_ASSERT_EQUAL(pending_bytes(sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_ipc_eof_between_frames(void)
{
    int sv[2];
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;
    uint8_t buf[16];

    /* Immediately. */
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_EOF);
    ipc_reader_dispose(&r);
    close(sv[0]);

    /* After one frame: the frame first, then EOF. */
    make_pair(sv, 1);
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], (const uint8_t *)"hi", 2, 1000), IPC_OK);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_OK);
    CU_ASSERT_EQUAL(frame_len, 2);
    CU_ASSERT(frame && memcmp(frame, "hi", 2) == 0);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, sv[0]), IPC_EOF);
    ipc_reader_dispose(&r);
    close(sv[0]);

    /* Blocking helper. */
    make_pair(sv, 0);
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], (const uint8_t *)"abc", 3, 1000), IPC_OK);
    close(sv[1]);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_OK);
    CU_ASSERT_EQUAL(frame_len, 3);
    CU_ASSERT(memcmp(buf, "abc", 3) == 0);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 1000), IPC_EOF);
    close(sv[0]);
}

static void test_ipc_io_error(void)
{
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0;
    uint8_t buf[8];
    int fds[2];

    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    errno = 0;
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, -1), IPC_IO_ERROR);
    CU_ASSERT_EQUAL(errno, EBADF);
    CU_ASSERT_EQUAL(ipc_reader_read(&r, &frame, &frame_len, -1), IPC_IO_ERROR);
    ipc_reader_dispose(&r);

    /* A closed fd number. */
    CU_ASSERT_FATAL(pipe(fds) == 0);
    close(fds[0]);
    close(fds[1]);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, fds[0], 100), IPC_IO_ERROR);
    CU_ASSERT_EQUAL(ipc_write_frame(fds[1], buf, 1, 100), IPC_IO_ERROR);
}

/* ---- blocking helpers --------------------------------------------------- */

static void test_ipc_read_timeout(void)
{
    int sv[2];
    uint8_t buf[16], wire[6];
    size_t frame_len = 99;

    make_pair(sv, 0);
    int64_t t0 = mono_ms();
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 150), IPC_TIMEOUT);
    int64_t waited = mono_ms() - t0;
    CU_ASSERT(waited >= 140 && waited < 2000);
    CU_ASSERT_EQUAL(frame_len, 0);

    /* A header with half a payload then silence: the deadline covers it all. */
    put_header(wire, 4);
    wire[4] = 'a';
    wire[5] = 'b';
    write_all(sv[1], wire, sizeof wire);
    t0 = mono_ms();
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 100), IPC_TIMEOUT);
    waited = mono_ms() - t0;
    CU_ASSERT(waited >= 90 && waited < 2000);
    close(sv[0]);
    close(sv[1]);

    /* Timeout 0 still succeeds when the frame is already there. */
    make_pair(sv, 0);
    write_all(sv[1], wire, sizeof wire);
    write_all(sv[1], "cd", 2);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, sv[0], 0), IPC_OK);
    CU_ASSERT_EQUAL(frame_len, 4);
    CU_ASSERT(memcmp(buf, "abcd", 4) == 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_ipc_pipe_roundtrip(void)
{
    int fds[2];
    uint8_t payload[1000], buf[1000];
    size_t frame_len = 0;

    /* Not a socket: the helpers fall back to write/read. */
    CU_ASSERT_FATAL(pipe(fds) == 0);
    fill_pattern(payload, sizeof payload, 3);
    CU_ASSERT_EQUAL(ipc_write_frame(fds[1], payload, sizeof payload, 1000), IPC_OK);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, fds[0], 1000), IPC_OK);
    CU_ASSERT_EQUAL(frame_len, sizeof payload);
    CU_ASSERT(memcmp(buf, payload, sizeof payload) == 0);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, fds[0], 50), IPC_TIMEOUT);
    close(fds[1]);
    CU_ASSERT_EQUAL(ipc_read_frame(buf, sizeof buf, &frame_len, fds[0], 1000), IPC_EOF);
    close(fds[0]);
}

typedef struct {
    int fd;
    uint8_t *got;
    size_t got_len;
    int ok;
} slow_reader_job;

/* Reads 4 + IPC_FRAME_MAX bytes in 997-byte sips with pauses. */
static void *slow_reader_thread(void *arg)
{
    slow_reader_job *job = arg;
    size_t want = 4 + IPC_FRAME_MAX;
    while (job->got_len < want) {
        size_t sip = want - job->got_len < 997 ? want - job->got_len : 997;
        ssize_t n = read(job->fd, job->got + job->got_len, sip);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        job->got_len += (size_t)n;
        usleep(300);
    }
    job->ok = 1;
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void test_ipc_writer_slow_peer(void)
{
    uint8_t *payload = malloc(IPC_FRAME_MAX);
    uint8_t *got = malloc(4 + IPC_FRAME_MAX);
    int sv[2], small = 4096;
    pthread_t t;
    struct sigaction sa, old_sa;
    struct itimerval tick = {{0, 2000}, {0, 2000}}, stop = {{0, 0}, {0, 0}};

    CU_ASSERT_FATAL(payload && got);
    fill_pattern(payload, IPC_FRAME_MAX, 5);
    make_pair(sv, 0);
    CU_ASSERT(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    CU_ASSERT(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);

    /* Interrupt the writer's poll every 2 ms (no SA_RESTART): EINTR must
     * be retried, not reported. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CU_ASSERT_FATAL(sigaction(SIGALRM, &sa, &old_sa) == 0);

    slow_reader_job job = {sv[0], got, 0, 0};
    sigset_t block, prev;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &block, &prev); /* the reader thread inherits the block */
    CU_ASSERT_FATAL(pthread_create(&t, NULL, slow_reader_thread, &job) == 0);
    pthread_sigmask(SIG_SETMASK, &prev, NULL);
    setitimer(ITIMER_REAL, &tick, NULL);
    ipc_result res = ipc_write_frame(sv[1], payload, IPC_FRAME_MAX, 20000);
    setitimer(ITIMER_REAL, &stop, NULL);
    pthread_join(t, NULL);
    sigaction(SIGALRM, &old_sa, NULL);

    CU_ASSERT_EQUAL(res, IPC_OK);
    CU_ASSERT_EQUAL(job.ok, 1);
    CU_ASSERT_EQUAL(job.got_len, 4 + IPC_FRAME_MAX);
    CU_ASSERT(got[0] == 0 && got[1] == 1 && got[2] == 0 && got[3] == 0);
    CU_ASSERT(memcmp(got + 4, payload, IPC_FRAME_MAX) == 0);
    close(sv[0]);
    close(sv[1]);
    free(payload);
    free(got);
}

static void test_ipc_writer_timeout_and_epipe(void)
{
    uint8_t *payload = malloc(IPC_FRAME_MAX);
    int sv[2], small = 4096;

    CU_ASSERT_FATAL(payload != NULL);
    memset(payload, 0xab, IPC_FRAME_MAX);

    /* A peer that never reads. */
    make_pair(sv, 0);
    CU_ASSERT(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    CU_ASSERT(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    int64_t t0 = mono_ms();
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], payload, IPC_FRAME_MAX, 150), IPC_TIMEOUT);
    int64_t waited = mono_ms() - t0;
    CU_ASSERT(waited >= 140 && waited < 2000);
    close(sv[0]);
    close(sv[1]);

    /* A peer that is gone: EPIPE, and no SIGPIPE kills the test. */
    make_pair(sv, 0);
    close(sv[0]);
    errno = 0;
    CU_ASSERT_EQUAL(ipc_write_frame(sv[1], payload, 10, 1000), IPC_IO_ERROR);
    CU_ASSERT_EQUAL(errno, EPIPE);
    close(sv[1]);
    free(payload);
}

/* ---- memory-fed reader ------------------------------------------------- */

static void test_ipc_feed(void)
{
    uint8_t wire[4 + 3 + 4 + 5 + 2];
    ipc_reader r;
    const uint8_t *frame = NULL;
    size_t frame_len = 0, consumed = 0;

    put_header(wire, 3);
    memcpy(wire + 4, "abc", 3);
    put_header(wire + 7, 5);
    memcpy(wire + 11, "hello", 5);
    wire[16] = 0;
    wire[17] = 0; /* half a header */

    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    CU_ASSERT_FALSE(ipc_reader_in_frame(&r));
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, wire, 5), IPC_AGAIN);
    CU_ASSERT_EQUAL(consumed, 5);
    CU_ASSERT_TRUE(ipc_reader_in_frame(&r)); /* the header and one payload byte */
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, wire + 5, sizeof wire - 5),
                    IPC_OK);
    CU_ASSERT_FALSE(ipc_reader_in_frame(&r));
    CU_ASSERT_EQUAL(consumed, 2);
    CU_ASSERT_EQUAL(frame_len, 3);
    CU_ASSERT(frame && memcmp(frame, "abc", 3) == 0);
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, wire + 7, sizeof wire - 7),
                    IPC_OK);
    CU_ASSERT_EQUAL(consumed, 9);
    CU_ASSERT_EQUAL(frame_len, 5);
    CU_ASSERT(frame && memcmp(frame, "hello", 5) == 0);
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, wire + 16, 2), IPC_AGAIN);
    CU_ASSERT_EQUAL(consumed, 2);
    CU_ASSERT_TRUE(ipc_reader_in_frame(&r)); /* half a header */
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, NULL, 0), IPC_AGAIN);
    CU_ASSERT_EQUAL(ipc_reader_eof(&r), IPC_TRUNCATED);
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, wire, 4), IPC_TRUNCATED);
    CU_ASSERT_EQUAL(consumed, 0);
    ipc_reader_dispose(&r);

    /* Oversized announced by memory: consumed stops at the header. */
    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    uint8_t big[10];
    put_header(big, IPC_FRAME_MAX + 1);
    CU_ASSERT_EQUAL(ipc_reader_feed(&r, &frame, &frame_len, &consumed, big, sizeof big), IPC_OVERSIZED);
    CU_ASSERT_EQUAL(consumed, 4);
    CU_ASSERT_EQUAL(ipc_reader_eof(&r), IPC_OVERSIZED);
    ipc_reader_dispose(&r);

    CU_ASSERT_FATAL(ipc_reader_init(&r) == 0);
    CU_ASSERT_EQUAL(ipc_reader_eof(&r), IPC_EOF);
    ipc_reader_dispose(&r);
}

static void test_ipc_strerror(void)
{
    const char *seen[IPC_TIMEOUT + 1];
    for (int i = IPC_OK; i <= IPC_TIMEOUT; i++) {
        seen[i] = ipc_strerror((ipc_result)i);
        CU_ASSERT_PTR_NOT_NULL(seen[i]);
        for (int j = 0; j < i; j++)
            CU_ASSERT(strcmp(seen[i], seen[j]) != 0);
    }
    CU_ASSERT_STRING_EQUAL(ipc_strerror((ipc_result)99), "unknown ipc result");
    CU_ASSERT_STRING_EQUAL(ipc_strerror(IPC_OVERSIZED), "frame length exceeds the maximum");
}

void test_register(void)
{
    static const test_case cases[] = {
        {"one_byte_at_a_time", test_ipc_one_byte_at_a_time},
        {"many_frames_one_write", test_ipc_many_frames_one_write},
        {"max_frame_accepted", test_ipc_max_frame_accepted},
        {"oversized_rejected_from_header", test_ipc_oversized_rejected_from_header},
        {"truncated", test_ipc_truncated},
        {"zero_length", test_ipc_zero_length},
        {"eof_between_frames", test_ipc_eof_between_frames},
        {"io_error", test_ipc_io_error},
        {"read_timeout", test_ipc_read_timeout},
        {"pipe_roundtrip", test_ipc_pipe_roundtrip},
        {"writer_slow_peer", test_ipc_writer_slow_peer},
        {"writer_timeout_and_epipe", test_ipc_writer_timeout_and_epipe},
        {"feed", test_ipc_feed},
        {"strerror", test_ipc_strerror},
        {NULL, NULL},
    };
    test_add_suite("ipc", cases);
}
