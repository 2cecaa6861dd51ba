#include "ipc.h"

#include "secmem.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- header ---------------------------------------------------------- */

static uint32_t header_decode(const uint8_t h[IPC_HEADER_LEN])
{
    return ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | (uint32_t)h[3];
}

static void header_encode(uint8_t h[IPC_HEADER_LEN], uint32_t len)
{
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
}

/* ---- reader state machine --------------------------------------------- */

int ipc_reader_init(ipc_reader *r)
{
    memset(r, 0, sizeof *r);
    r->sticky = IPC_OK;
    r->payload = malloc(IPC_FRAME_MAX);
    if (!r->payload)
        return -1;
    return 0;
}

void ipc_reader_dispose(ipc_reader *r)
{
    if (!r)
        return;
    if (r->payload) {
        secmem_wipe(r->payload, IPC_FRAME_MAX);
        free(r->payload);
    }
    memset(r, 0, sizeof *r);
}

/* Where the next input bytes go, and how many the current frame still
 * needs (never 0 while the reader is usable). */
static uint8_t *reader_next(ipc_reader *r, size_t *want)
{
    if (r->header_have < IPC_HEADER_LEN) {
        *want = IPC_HEADER_LEN - r->header_have;
        return r->header + r->header_have;
    }
    *want = r->frame_len - r->payload_have;
    return r->payload + r->payload_have;
}

/* Accounts for n (1..want) bytes just stored at reader_next(). Returns
 * IPC_OK when a frame is complete (and rearms the header for the next one,
 * leaving the payload in place), IPC_AGAIN when more is needed, or a fatal
 * result (made sticky) when the header is invalid. */
static ipc_result reader_advance(ipc_reader *r, size_t n, const uint8_t **frame, size_t *frame_len)
{
    if (r->header_have < IPC_HEADER_LEN) {
        r->header_have += n;
        if (r->header_have < IPC_HEADER_LEN)
            return IPC_AGAIN;
        uint32_t len = header_decode(r->header);
        if (len == 0)
            return r->sticky = IPC_ZERO_LENGTH;
        if (len > IPC_FRAME_MAX)
            return r->sticky = IPC_OVERSIZED;
        r->frame_len = len;
        r->payload_have = 0;
        return IPC_AGAIN;
    }
    r->payload_have += n;
    if (r->payload_have < r->frame_len)
        return IPC_AGAIN;
    *frame = r->payload;
    *frame_len = r->frame_len;
    r->header_have = 0;
    r->payload_have = 0;
    return IPC_OK;
}

bool ipc_reader_in_frame(const ipc_reader *r)
{
    return r->header_have != 0;
}

ipc_result ipc_reader_feed(ipc_reader *r, const uint8_t **frame, size_t *frame_len,
                           size_t *consumed, const uint8_t *data, size_t data_len)
{
    size_t off = 0;
    ipc_result res = IPC_AGAIN;

    *consumed = 0;
    if (r->sticky != IPC_OK)
        return r->sticky;
    while (off < data_len) {
        size_t want;
        uint8_t *dst = reader_next(r, &want);
        size_t n = data_len - off < want ? data_len - off : want;
        memcpy(dst, data + off, n);
        off += n;
        res = reader_advance(r, n, frame, frame_len);
        if (res != IPC_AGAIN)
            break;
    }
    *consumed = off;
    return res;
}

ipc_result ipc_reader_eof(ipc_reader *r)
{
    if (r->sticky != IPC_OK)
        return r->sticky;
    r->sticky = r->header_have == 0 ? IPC_EOF : IPC_TRUNCATED;
    return r->sticky;
}

ipc_result ipc_reader_read(ipc_reader *r, const uint8_t **frame, size_t *frame_len, int fd)
{
    if (r->sticky != IPC_OK)
        return r->sticky;
    for (;;) {
        size_t want;
        uint8_t *dst = reader_next(r, &want);
        ssize_t got = read(fd, dst, want);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return IPC_AGAIN;
            return r->sticky = IPC_IO_ERROR;
        }
        if (got == 0)
            return ipc_reader_eof(r);
        ipc_result res = reader_advance(r, (size_t)got, frame, frame_len);
        if (res != IPC_AGAIN)
            return res;
    }
}

/* ---- blocking helpers ---------------------------------------------------- */

#define NS_PER_MS 1000000LL

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Absolute deadline for a relative timeout; -1 means none. */
static int64_t deadline_from(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * NS_PER_MS;
}

/* Waits until fd is ready for events or the deadline passes. Every attempt
 * is made before the first wait, so a timeout of 0 still succeeds when the
 * fd is ready; once the deadline has passed the next wait fails, which
 * bounds the total time even against a peer that trickles bytes. */
static ipc_result wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                return IPC_TIMEOUT;
            int64_t ms = (left + NS_PER_MS - 1) / NS_PER_MS;
            timeout = ms > 1000000 ? 1000000 : (int)ms;
        }
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int rc = poll(&p, 1, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return IPC_IO_ERROR;
        }
        if (rc == 0)
            continue; /* re-check the deadline (poll may wake slightly early) */
        if (p.revents & POLLNVAL) {
            errno = EBADF;
            return IPC_IO_ERROR;
        }
        /* Ready, or POLLHUP/POLLERR: the next read/write reports which. */
        return IPC_OK;
    }
}

/* Reads until dst[0..len) is full. *have counts bytes stored (in/out).
 * Returns IPC_OK when full, IPC_EOF when the peer closed first (the caller
 * looks at *have), IPC_TIMEOUT or IPC_IO_ERROR. Sockets are read with
 * MSG_DONTWAIT so that a blocking socket never blocks past the deadline;
 * other fds are polled before each read. */
static ipc_result read_full(int fd, uint8_t *dst, size_t len, size_t *have,
                            int64_t deadline, int *is_sock)
{
    while (*have < len) {
        ssize_t got;
        if (*is_sock) {
            got = recv(fd, dst + *have, len - *have, MSG_DONTWAIT);
            if (got < 0 && errno == ENOTSOCK) {
                *is_sock = 0;
                continue;
            }
        } else {
            ipc_result w = wait_fd(fd, POLLIN, deadline);
            if (w != IPC_OK)
                return w;
            got = read(fd, dst + *have, len - *have);
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ipc_result w = wait_fd(fd, POLLIN, deadline);
                if (w != IPC_OK)
                    return w;
                continue;
            }
            return IPC_IO_ERROR;
        }
        if (got == 0)
            return IPC_EOF;
        *have += (size_t)got;
    }
    return IPC_OK;
}

ipc_result ipc_read_frame(uint8_t *buf, size_t buf_cap, size_t *frame_len, int fd, int timeout_ms)
{
    int64_t deadline = deadline_from(timeout_ms);
    uint8_t header[IPC_HEADER_LEN];
    size_t have = 0;
    int is_sock = 1;
    ipc_result res;

    *frame_len = 0;
    res = read_full(fd, header, sizeof header, &have, deadline, &is_sock);
    if (res == IPC_EOF)
        return have == 0 ? IPC_EOF : IPC_TRUNCATED;
    if (res != IPC_OK)
        return res;
    uint32_t len = header_decode(header);
    if (len == 0)
        return IPC_ZERO_LENGTH;
    if (len > IPC_FRAME_MAX || len > buf_cap)
        return IPC_OVERSIZED;
    have = 0;
    res = read_full(fd, buf, len, &have, deadline, &is_sock);
    if (res == IPC_EOF)
        return IPC_TRUNCATED;
    if (res != IPC_OK)
        return res;
    *frame_len = len;
    return IPC_OK;
}

ipc_result ipc_write_frame(int fd, const uint8_t *payload, size_t payload_len, int timeout_ms)
{
    int64_t deadline = deadline_from(timeout_ms);
    uint8_t header[IPC_HEADER_LEN];
    size_t total, sent = 0;
    int is_sock = 1;

    if (payload_len == 0)
        return IPC_ZERO_LENGTH;
    if (payload_len > IPC_FRAME_MAX)
        return IPC_OVERSIZED;
    header_encode(header, (uint32_t)payload_len);
    total = IPC_HEADER_LEN + payload_len;

    while (sent < total) {
        struct iovec iov[2];
        int iovcnt = 0;
        if (sent < IPC_HEADER_LEN) {
            iov[iovcnt].iov_base = header + sent;
            iov[iovcnt].iov_len = IPC_HEADER_LEN - sent;
            iovcnt++;
            iov[iovcnt].iov_base = (void *)(uintptr_t)payload;
            iov[iovcnt].iov_len = payload_len;
            iovcnt++;
        } else {
            size_t off = sent - IPC_HEADER_LEN;
            iov[iovcnt].iov_base = (void *)(uintptr_t)(payload + off);
            iov[iovcnt].iov_len = payload_len - off;
            iovcnt++;
        }

        ssize_t n;
        if (is_sock) {
            struct msghdr msg;
            memset(&msg, 0, sizeof msg);
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)iovcnt;
            n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == ENOTSOCK) {
                is_sock = 0;
                continue;
            }
        } else {
            ipc_result w = wait_fd(fd, POLLOUT, deadline);
            if (w != IPC_OK)
                return w;
            n = writev(fd, iov, iovcnt);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ipc_result w = wait_fd(fd, POLLOUT, deadline);
                if (w != IPC_OK)
                    return w;
                continue;
            }
            return IPC_IO_ERROR;
        }
        sent += (size_t)n;
    }
    return IPC_OK;
}

const char *ipc_strerror(ipc_result r)
{
    switch (r) {
    case IPC_OK:
        return "frame ready";
    case IPC_AGAIN:
        return "frame incomplete, need more input";
    case IPC_EOF:
        return "peer closed the connection between frames";
    case IPC_TRUNCATED:
        return "peer closed the connection inside a frame";
    case IPC_OVERSIZED:
        return "frame length exceeds the maximum";
    case IPC_ZERO_LENGTH:
        return "frame length is zero";
    case IPC_IO_ERROR:
        return "I/O error";
    case IPC_TIMEOUT:
        return "timed out";
    }
    return "unknown ipc result";
}
