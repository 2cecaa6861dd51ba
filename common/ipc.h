/* ipc: the signer socket framing (docs: API.md, "Signer socket").
 *
 * A frame is a 4-byte big-endian payload length followed by the payload.
 * The length is at least 1 and at most IPC_FRAME_MAX; anything else is a
 * protocol violation after which the connection must be closed.
 *
 * Three ways in and out:
 *   - ipc_reader: a state machine for non-blocking fds (the signer's poll
 *     loop). It never reads past the frame it is assembling, so the header
 *     alone decides an oversized or zero length, before any payload byte
 *     is read, and bytes of the next frame stay in the kernel. It can also
 *     be fed from memory (ipc_reader_feed) for tests and fuzzing.
 *   - ipc_read_frame: a blocking read of exactly one frame with a timeout
 *     (clients).
 *   - ipc_write_frame: sends one whole frame, handling partial writes,
 *     EINTR and EAGAIN, with a timeout.
 * Memory is bounded: the reader owns one IPC_FRAME_MAX buffer allocated
 * once; nothing is ever sized by the length a peer announces. */
#ifndef COFFER_IPC_H
#define COFFER_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest payload a frame may carry, in bytes. */
#define IPC_FRAME_MAX 65536u
/* Size of the length prefix. */
#define IPC_HEADER_LEN 4u

/* Outcome of every ipc_ read/write call. Only IPC_OK and IPC_AGAIN leave a
 * reader usable; after any other result the caller closes the connection
 * (the reader keeps returning the same result). */
typedef enum {
    IPC_OK = 0,        /* a whole frame was read / written */
    IPC_AGAIN,         /* reader: no complete frame yet, call again when readable */
    IPC_EOF,           /* peer closed cleanly between frames */
    IPC_TRUNCATED,     /* peer closed inside a frame (header or payload) */
    IPC_OVERSIZED,     /* announced length > IPC_FRAME_MAX (or > the caller's buffer) */
    IPC_ZERO_LENGTH,   /* announced length 0 */
    IPC_IO_ERROR,      /* read/write/poll failed; errno tells why */
    IPC_TIMEOUT,       /* blocking helpers: the deadline passed */
} ipc_result;

/* Reader state; caller-owned storage (ipc_reader_init/ipc_reader_dispose).
 * The fields are private to ipc.c. */
typedef struct {
    uint8_t header[IPC_HEADER_LEN];
    size_t header_have;   /* header bytes received for the current frame */
    size_t frame_len;     /* announced payload length, valid once the header is complete */
    size_t payload_have;  /* payload bytes received */
    uint8_t *payload;     /* IPC_FRAME_MAX bytes */
    ipc_result sticky;    /* IPC_OK, or the fatal result already returned */
} ipc_reader;

/* Prepares a reader for a new connection.
 * Returns 0 on success, -1 when the payload buffer cannot be allocated.
 * r: output, caller-owned storage. */
__attribute__((warn_unused_result))
int ipc_reader_init(ipc_reader *r);

/* Wipes and releases the reader's buffer. r may be NULL; disposing twice
 * is harmless. */
void ipc_reader_dispose(ipc_reader *r);

/* True when the reader holds part of a frame (some of its header or
 * payload): the peer has started a frame it has not finished. r: input. */
bool ipc_reader_in_frame(const ipc_reader *r);

/* Reads from a non-blocking fd until one frame is complete, the fd has
 * nothing more (EAGAIN), or the stream ends or is malformed. Reads only the
 * bytes the current frame still needs, so at most one frame is consumed.
 * Returns IPC_OK (frame ready), IPC_AGAIN, IPC_EOF, IPC_TRUNCATED,
 * IPC_OVERSIZED, IPC_ZERO_LENGTH or IPC_IO_ERROR (errno set).
 * r: in/out reader. *frame, *frame_len: outputs, set only on IPC_OK; the
 * frame is borrowed from the reader and valid until its next call.
 * fd: input. A blocking fd works too but then blocks until the frame is
 * complete; clients should use ipc_read_frame instead. */
__attribute__((warn_unused_result))
ipc_result ipc_reader_read(ipc_reader *r, const uint8_t **frame, size_t *frame_len, int fd);

/* Same state machine fed from memory. Consumes bytes of data until one
 * frame completes or data is exhausted.
 * Returns IPC_OK (frame ready: feed the unconsumed rest again), IPC_AGAIN
 * (all of data consumed, no frame yet), IPC_OVERSIZED or IPC_ZERO_LENGTH.
 * r: in/out. *frame, *frame_len: outputs as for ipc_reader_read.
 * *consumed: output, bytes of data used (always set).
 * data, data_len: input (data may be NULL when data_len is 0). */
__attribute__((warn_unused_result))
ipc_result ipc_reader_feed(ipc_reader *r, const uint8_t **frame, size_t *frame_len,
                           size_t *consumed, const uint8_t *data, size_t data_len);

/* Tells a memory-fed reader that the stream ended.
 * Returns IPC_EOF when it ended between frames, IPC_TRUNCATED inside one,
 * or the sticky fatal result if one was already returned. */
__attribute__((warn_unused_result))
ipc_result ipc_reader_eof(ipc_reader *r);

/* Reads exactly one frame from fd (blocking or not), waiting with poll(2)
 * for at most timeout_ms milliseconds in total (negative: no limit).
 * Returns IPC_OK, IPC_EOF (closed before any byte), IPC_TRUNCATED,
 * IPC_OVERSIZED (announced length > IPC_FRAME_MAX or > buf_cap; the payload
 * is left unread), IPC_ZERO_LENGTH, IPC_TIMEOUT or IPC_IO_ERROR (errno).
 * buf, buf_cap: output buffer; *frame_len: output, payload length on IPC_OK.
 * After anything but IPC_OK the stream position is undefined: close fd. */
__attribute__((warn_unused_result))
ipc_result ipc_read_frame(uint8_t *buf, size_t buf_cap, size_t *frame_len, int fd, int timeout_ms);

/* Writes one frame (header and payload) to fd, retrying partial writes,
 * EINTR and EAGAIN (polling for POLLOUT) for at most timeout_ms in total
 * (negative: no limit). Sockets are written with MSG_NOSIGNAL, so a closed
 * peer gives IPC_IO_ERROR with errno EPIPE instead of SIGPIPE.
 * Returns IPC_OK, IPC_ZERO_LENGTH / IPC_OVERSIZED (payload_len outside
 * 1..IPC_FRAME_MAX: caller misuse, nothing written), IPC_TIMEOUT or
 * IPC_IO_ERROR (errno). On IPC_TIMEOUT/IPC_IO_ERROR part of the frame may
 * have been sent: close fd.
 * fd: input. payload, payload_len: input. */
__attribute__((warn_unused_result))
ipc_result ipc_write_frame(int fd, const uint8_t *payload, size_t payload_len, int timeout_ms);

/* A short constant English description of r ("frame ready", ...); never
 * NULL, "unknown ipc result" for values outside the enum. */
const char *ipc_strerror(ipc_result r);

#endif
