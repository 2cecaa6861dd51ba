/* server: the signer's event loops.
 *
 * N loop threads (server.threads), each with its own epoll set, its own
 * connections and its own signing state (dispatch.h signer_worker). Loop 0
 * also owns the listening socket: it accepts, checks the peer with
 * SO_PEERCRED against the allowed uids (a refused peer is audited and
 * closed at once), and hands each connection to the loop with the fewest
 * (an eventfd wakes it). A connection never changes loop, so its answers
 * keep request order.
 *
 * Why a few threads and not one: a request costs two scalar
 * multiplications (the address check after unsealing, and the signature),
 * about twice an in-process sign; one thread would cap the daemon at half
 * the in-process rate before any I/O. Signing state is per thread; the
 * policy is immutable; the ledger and journal lock briefly.
 *
 * Per connection: frames are read one at a time (common/ipc reader, at
 * most 16 per wake-up so a busy connection cannot starve the others),
 * answered in order, each answer held until its journal ticket is
 * durable. The loop stops reading a connection while its queued answers
 * reach server.max_pipeline, or their bytes server.conn_queue_bytes, or
 * the bytes queued on all connections server.queue_bytes (a peer that
 * does not read its answers is not read either), and resumes as they
 * drain. A frame not completed within server.frame_timeout of its first
 * byte is a protocol violation; a connection without a byte either way
 * for server.idle_timeout is closed. A malformed frame is answered with
 * BAD_REQUEST (when possible) after every frame read before it, audited,
 * and its connection closed; other connections are not affected.
 *
 * Threads are created by server_new (before the sandbox, so that their
 * stacks exist when memory is locked) and wait until server_go. */
#ifndef COFFER_SIGNER_SERVER_H
#define COFFER_SIGNER_SERVER_H

#include "dispatch.h"

#include <stddef.h>
#include <sys/types.h>

typedef struct server server;

typedef struct {
    int listen_fd;                 /* bound, listening, non-blocking */
    const uid_t *peer_uids;
    size_t n_peer_uids;
    unsigned threads;
    unsigned max_connections;
    unsigned max_pipeline;
    size_t conn_queue_bytes;       /* queued answer bytes per connection before it is not read */
    size_t queue_bytes;            /* the same over every connection */
    int64_t idle_timeout_ms;       /* close after this long without a byte either way; 0: never */
    int64_t frame_timeout_ms;      /* a frame must be complete this long after its first byte; 0: no limit */
    signer_shared *shared;
    const kek_ring *ring;          /* cloned per thread */
} server_config;

/* Builds the loops and starts their threads (waiting for server_go).
 * Registers their eventfds with the journal. Returns 0 or -1 (logged). */
__attribute__((warn_unused_result))
int server_new(server **out, const server_config *cfg);

/* Lets the loops serve. */
void server_go(server *s);

/* Asks the loops to stop: no new connections or frames; answers already
 * computed are sent once durable (for at most about 2 s); then the threads
 * end. server_free joins them. */
void server_stop(server *s);

/* Joins the threads and frees everything; s may be NULL. */
void server_free(server *s);

#endif
