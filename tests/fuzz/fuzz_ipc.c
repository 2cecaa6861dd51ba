/* Fuzzes the ipc reader state machine against a trivial reference parser.
 *
 * Input: byte 0 = mode, bytes 1..2 = seed of the chunk sizes, the rest =
 * the byte stream a peer sends. The stream is cut into pseudo-random
 * chunks and fed (ipc_reader_feed), and when mode bit 0 is set also sent
 * through a socketpair (ipc_reader_read on a non-blocking fd). Every frame
 * the reader returns must be the reference's next frame (so also at most
 * IPC_FRAME_MAX bytes), and the stream must end with the same result. */
#include "fuzz_check.h"
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>



typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} ref_parser;

/* The reference: parses the next frame of the whole stream. */
static ipc_result ref_next(ref_parser *p, const uint8_t **frame, size_t *frame_len)
{
    size_t left = p->len - p->pos;
    if (left == 0)
        return IPC_EOF;
    if (left < 4)
        return IPC_TRUNCATED;
    const uint8_t *h = p->buf + p->pos;
    uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (n == 0)
        return IPC_ZERO_LENGTH;
    if (n > IPC_FRAME_MAX)
        return IPC_OVERSIZED;
    if (left - 4 < n)
        return IPC_TRUNCATED;
    *frame = h + 4;
    *frame_len = n;
    p->pos += 4 + n;
    return IPC_OK;
}

typedef struct {
    uint32_t state;
    uint8_t mode;
} chunker;

static size_t next_chunk(chunker *c)
{
    c->state = c->state * 1103515245u + 12345u;
    uint32_t r = c->state >> 8;
    switch ((c->mode >> 1) & 3) {
    case 0:
        return 1;
    case 1:
        return 1 + r % 7;
    case 2:
        return 1 + r % 300;
    default:
        return 1 + r % 70000;
    }
}

/* A frame the reader returned: it must be the reference's next one. */
static void check_frame(ref_parser *ref, const uint8_t *frame, size_t frame_len)
{
    const uint8_t *want = NULL;
    size_t want_len = 0;
    CHECK(frame_len >= 1 && frame_len <= IPC_FRAME_MAX);
    CHECK(ref_next(ref, &want, &want_len) == IPC_OK);
    CHECK(want_len == frame_len);
    CHECK(memcmp(want, frame, frame_len) == 0);
}

/* The reader's final result: the reference must end the same way. */
static void check_end(ref_parser *ref, ipc_result got)
{
    const uint8_t *f;
    size_t fl;
    ipc_result want = ref_next(ref, &f, &fl);
    CHECK(want != IPC_OK);
    CHECK(got == want);
}

static void run_feed(const uint8_t *stream, size_t len, chunker c)
{
    ipc_reader r;
    ref_parser ref = {stream, len, 0};
    size_t pos = 0;

    if (ipc_reader_init(&r) != 0)
        return;
    while (pos < len) {
        size_t chunk = next_chunk(&c);
        if (chunk > len - pos)
            chunk = len - pos;
        size_t off = 0;
        while (off < chunk) {
            const uint8_t *frame = NULL;
            size_t frame_len = 0, consumed = 0;
            ipc_result res = ipc_reader_feed(&r, &frame, &frame_len, &consumed, stream + pos + off,
                                             chunk - off);
            CHECK(consumed <= chunk - off);
            off += consumed;
            if (res == IPC_OK) {
                check_frame(&ref, frame, frame_len);
                CHECK(ref.pos == pos + off);
                continue;
            }
            if (res == IPC_AGAIN) {
                CHECK(off == chunk);
                break;
            }
            /* Fatal from the header alone: exactly the header was consumed. */
            CHECK(res == IPC_OVERSIZED || res == IPC_ZERO_LENGTH);
            CHECK(pos + off == ref.pos + 4);
            check_end(&ref, res);
            CHECK(ipc_reader_eof(&r) == res); /* sticky */
            goto out;
        }
        pos += chunk;
    }
    check_end(&ref, ipc_reader_eof(&r));
out:
    ipc_reader_dispose(&r);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

/* Reads until the reader wants more; returns the fatal result, or IPC_AGAIN. */
static ipc_result drain(ipc_reader *r, ref_parser *ref, int fd)
{
    for (;;) {
        const uint8_t *frame = NULL;
        size_t frame_len = 0;
        ipc_result res = ipc_reader_read(r, &frame, &frame_len, fd);
        if (res == IPC_OK) {
            check_frame(ref, frame, frame_len);
            continue;
        }
        CHECK(res != IPC_IO_ERROR && res != IPC_TIMEOUT);
        return res;
    }
}

static void run_socket(const uint8_t *stream, size_t len, chunker c)
{
    ipc_reader r;
    ref_parser ref = {stream, len, 0};
    size_t pos = 0;
    int sv[2] = {-1, -1};
    ipc_result res = IPC_AGAIN;

    if (ipc_reader_init(&r) != 0)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        goto out;
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    while (pos < len && res == IPC_AGAIN) {
        size_t chunk = next_chunk(&c);
        if (chunk > len - pos)
            chunk = len - pos;
        ssize_t n = write(sv[1], stream + pos, chunk);
        CHECK(n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)));
        if (n > 0)
            pos += (size_t)n;
        res = drain(&r, &ref, sv[0]);
    }
    if (res == IPC_AGAIN) {
        close(sv[1]);
        sv[1] = -1;
        res = drain(&r, &ref, sv[0]);
    }
    check_end(&ref, res);
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    ipc_reader_dispose(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    chunker c = {(uint32_t)data[1] | ((uint32_t)data[2] << 8), data[0]};
    run_feed(data + 3, size - 3, c);
    if (data[0] & 1)
        run_socket(data + 3, size - 3, c);
    return 0;
}
