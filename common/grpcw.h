/* grpcw: the only code that calls the gRPC C core (<grpc/grpc.h>, Debian's
 * libgrpc-dev 1.51). The core's API is "private and unstable" upstream, so
 * everything we use of it sits behind these few functions: a core change
 * touches this file alone. Nothing here knows protobuf or our services.
 *
 * Objects:
 *   grpcw_cq       a completion queue polled with grpcw_cq_next (servers)
 *   grpcw_server   a server bound to one grpcw_cq
 *   grpcw_method   a registered method path (owned by its server)
 *   grpcw_call     one server-side call: its request details, metadata,
 *                  received payloads and the storage of its outgoing batch
 *   grpcw_channel  a client channel; grpcw_unary_call runs one blocking
 *                  unary call on it
 *
 * Tags: every asynchronous operation takes a void *tag that grpcw_cq_next
 * hands back when the operation completes, with ok saying whether it
 * succeeded (the core's meaning: ok == false for a request slot means the
 * server is shutting down; for a batch, that the call is gone).
 *
 * Threads: grpcw_cq_next must be called by one thread at a time per queue.
 * The grpcw_call operations may be started from any thread, but for one
 * call at most one send (grpcw_call_send), one receive
 * (grpcw_call_recv_message) and one grpcw_call_recv_close may be in flight
 * at a time; the caller serializes them. */
#ifndef COFFER_GRPCW_H
#define COFFER_GRPCW_H

#include "rpc_code.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct grpcw_cq grpcw_cq;
typedef struct grpcw_server grpcw_server;
typedef struct grpcw_method grpcw_method;
typedef struct grpcw_call grpcw_call;
typedef struct grpcw_channel grpcw_channel;

/* Most metadata entries one send may carry. */
#define GRPCW_SEND_MD_MAX 8u

/* A metadata entry to send. key: lowercase ASCII, NUL-terminated (copied);
 * value: value_len bytes (copied; printable ASCII unless key ends in -bin). */
typedef struct {
    const char *key;
    const char *value;
    size_t value_len;
} grpcw_md;

/* Received metadata, owned copies (see grpcw_md_list_dispose). Values are
 * NUL-terminated as well as counted. */
typedef struct {
    char *key;
    char *value;
    size_t value_len;
} grpcw_md_entry;

typedef struct {
    grpcw_md_entry *items;
    size_t count;
} grpcw_md_list;

/* ---- process -------------------------------------------------------- */

/* Initializes the core (reference counted, as grpc_init) and routes its
 * log lines through common/log (event grpc.core). Call before creating
 * any grpcw object and before other threads exist that block signals. */
void grpcw_init(void);

/* Drops one grpcw_init reference; the last one shuts the core down and
 * waits for its threads (grpc_shutdown_blocking). Every grpcw object must
 * have been freed. */
void grpcw_shutdown(void);

/* The core's version string, e.g. "29.0.0". Static. */
const char *grpcw_version(void);

/* ---- completion queue ----------------------------------------------- */

typedef enum {
    GRPCW_EV_TAG = 0,   /* an operation completed: *tag and *ok are set */
    GRPCW_EV_TIMEOUT,   /* nothing completed within timeout_ms */
    GRPCW_EV_SHUTDOWN,  /* grpcw_cq_shutdown was called and the queue is drained */
} grpcw_event;

/* Returns a new queue, or NULL when memory is short. */
__attribute__((warn_unused_result))
grpcw_cq *grpcw_cq_new(void);

/* Waits up to timeout_ms (< 0: forever) for the next completion.
 * tag, ok: outputs, set for GRPCW_EV_TAG only. */
grpcw_event grpcw_cq_next(grpcw_cq *cq, void **tag, bool *ok, int timeout_ms);

/* Starts shutting the queue down: once every pending operation has
 * completed, grpcw_cq_next returns GRPCW_EV_SHUTDOWN. */
void grpcw_cq_shutdown(grpcw_cq *cq);

/* Frees a queue that returned GRPCW_EV_SHUTDOWN. cq may be NULL. */
void grpcw_cq_free(grpcw_cq *cq);

/* ---- server ---------------------------------------------------------- */

typedef struct {
    size_t max_message_bytes;            /* receive and send limit per message, > 0 */
    int64_t keepalive_time_ms;           /* server pings an idle connection this often, > 0 */
    int64_t keepalive_timeout_ms;        /* and closes it when no ack within this, > 0 */
    int64_t keepalive_min_ping_interval_ms; /* clients may ping at most this often */
    bool keepalive_permit_without_calls; /* client pings on a connection without calls are ok */
    unsigned max_concurrent_streams;     /* per connection; 0: the core's default */
} grpcw_server_options;

/* Creates a server whose calls and notifications all complete on cq
 * (borrowed; it must outlive the server). SO_REUSEPORT is off, so a second
 * server on the same port fails to bind instead of sharing it.
 * Returns NULL on invalid options or when memory is short. */
__attribute__((warn_unused_result))
grpcw_server *grpcw_server_new(const grpcw_server_options *options, grpcw_cq *cq);

/* Adds a listener before grpcw_server_start. addr: "host:port" (port 0:
 * any free port) or "unix:/path" (a stale socket file is replaced).
 * cert_pem and key_pem: the PEM certificate chain and private key for TLS,
 * both NULL for plaintext. *port gets the bound TCP port (0 for unix:).
 * Returns 0, or -1 with err[0..err_len) saying why. */
__attribute__((warn_unused_result))
int grpcw_server_add_listener(grpcw_server *server, int *port, char *err, size_t err_len,
                              const char *addr, const char *cert_pem, const char *key_pem);

/* Registers a method path ("/pkg.Service/Method") before grpcw_server_start.
 * read_first_message: the request notification carries the call's first
 * message (unary and server-streaming methods); otherwise the caller reads
 * messages with grpcw_call_recv_message. Calls to unregistered paths are
 * reported to generic requests (grpcw_server_request with method NULL).
 * Returns the registration (owned by the server), or NULL on failure. */
__attribute__((warn_unused_result))
grpcw_method *grpcw_server_register_method(grpcw_server *server, const char *path,
                                           bool read_first_message);

/* Starts listening. */
void grpcw_server_start(grpcw_server *server);

/* Asks to be told of the next call to method (NULL: any unregistered path).
 * call: a fresh grpcw_call that receives the call; tag: completes on the
 * server's queue, ok == false once the server shuts down (call stays
 * empty; free it). Returns 0, or -1 if the core refused. */
__attribute__((warn_unused_result))
int grpcw_server_request(grpcw_server *server, grpcw_method *method, grpcw_call *call, void *tag);

/* Stops accepting calls and connections; tag completes on the server's
 * queue once every call has been released (grpcw_call_free). Idempotent. */
void grpcw_server_shutdown(grpcw_server *server, void *tag);

/* Cancels every call in progress (only after grpcw_server_shutdown). */
void grpcw_server_cancel_all(grpcw_server *server);

/* Destroys a server whose shutdown tag has completed. server may be NULL. */
void grpcw_server_free(grpcw_server *server);

/* ---- server calls ------------------------------------------------------ */

/* Returns an empty call for grpcw_server_request, or NULL (memory). */
__attribute__((warn_unused_result))
grpcw_call *grpcw_call_new(void);

/* Releases the call and everything it holds. No operation of it may still
 * be in flight. call may be NULL. */
void grpcw_call_free(grpcw_call *call);

/* Releases what the call holds, as grpcw_call_free, but keeps its storage:
 * afterwards it is empty again, ready for grpcw_server_request (servers
 * reuse calls instead of allocating one per request). No operation of it
 * may still be in flight. */
void grpcw_call_reset(grpcw_call *call);

/* The method path of a call received by a generic request (NUL-terminated,
 * at most 255 bytes, truncated beyond); "" for registered calls. Borrowed. */
const char *grpcw_call_method(grpcw_call *call);

/* The call's deadline on CLOCK_MONOTONIC in milliseconds, INT64_MAX when
 * the client set none. */
int64_t grpcw_call_deadline_ms(const grpcw_call *call);

/* The first value of request metadata key (lowercase), borrowed until the
 * call is freed, with *len its length; NULL when absent. */
const char *grpcw_call_metadata(const grpcw_call *call, size_t *len, const char *key);

/* Writes the peer's address ("ipv4:127.0.0.1:5000", "unix:...") into
 * buf[0..buf_len), truncated, NUL-terminated. */
void grpcw_call_peer(grpcw_call *call, char *buf, size_t buf_len);

/* The first message delivered with the request notification (methods
 * registered with read_first_message). Returns 1 with *data, *len
 * (borrowed until the call is freed), 0 when the client sent none, -1 when
 * memory is short. */
__attribute__((warn_unused_result))
int grpcw_call_first_message(grpcw_call *call, const uint8_t **data, size_t *len);

/* After grpcw_call_first_message returned 0: true when the core knows no
 * message came because the call failed. (1.51 reports a stream reset by
 * the client, or torn down with its connection, as a clean end of stream:
 * false then, and the reply's batch fails.) */
bool grpcw_call_failed_before_message(const grpcw_call *call);

/* Asks to be told when the call is over (status sent, or cancelled: by
 * the client, the deadline or the server). Post once, early: completion
 * then also signals cancellation while a handler runs. */
__attribute__((warn_unused_result))
int grpcw_call_recv_close(grpcw_call *call, void *tag);

/* After the recv_close tag completed: true when the call ended some other
 * way than by our status (cancelled, deadline, connection lost). */
bool grpcw_call_was_cancelled(const grpcw_call *call);

/* Reads the next message; when tag completes, grpcw_call_received says
 * what came. */
__attribute__((warn_unused_result))
int grpcw_call_recv_message(grpcw_call *call, void *tag);

/* After a recv_message tag completed with ok: 1 with the message in
 * *data, *len (borrowed until the next receive or free), 0 when the client
 * half-closed (no more messages), -1 when memory is short. */
__attribute__((warn_unused_result))
int grpcw_call_received(grpcw_call *call, const uint8_t **data, size_t *len);

/* Flags for grpcw_call_send. */
#define GRPCW_SEND_INITIAL_MD 0x1u /* response headers (once per call, before any message) */
#define GRPCW_SEND_MESSAGE 0x2u    /* the buffer from grpcw_call_message_buffer */
#define GRPCW_SEND_STATUS 0x4u     /* trailers: code and details; ends the call */
#define GRPCW_RECV_CLOSE 0x8u      /* also the grpcw_call_recv_close of the call, in this
                                    * batch (a reply that needs no early cancellation
                                    * notice: one completion per call) */

/* Returns a buffer of len bytes (len may be 0) that the next
 * GRPCW_SEND_MESSAGE sends; fill it before grpcw_call_send. NULL when
 * memory is short. Only while no send is in flight. */
__attribute__((warn_unused_result))
uint8_t *grpcw_call_message_buffer(grpcw_call *call, size_t len);

/* grpcw_call_message_buffer for answers that may hold secrets: the bytes
 * are zeroed when the core lets them go (its own copies made while
 * writing are not ours to wipe). One more allocation per call. */
__attribute__((warn_unused_result))
uint8_t *grpcw_call_message_buffer_wiped(grpcw_call *call, size_t len);

/* Starts one send batch: what is a set of GRPCW_SEND_* (and
 * GRPCW_RECV_CLOSE); md[0..n_md)
 * (n_md <= GRPCW_SEND_MD_MAX) goes with GRPCW_SEND_INITIAL_MD; code and
 * details (NULL: none; one line of text) with GRPCW_SEND_STATUS. tag
 * completes when the batch is done; then call grpcw_call_send_done.
 * Returns 0, or -1 when the core refused (nothing is in flight then). */
__attribute__((warn_unused_result))
int grpcw_call_send(grpcw_call *call, void *tag, unsigned what, const grpcw_md *md, size_t n_md,
                    rpc_code code, const char *details);

/* Attaches a `grpc-status-details-bin` trailer (a serialized
 * google.rpc.Status: code, message, details such as RetryInfo) to the next
 * GRPCW_SEND_STATUS; the core base64-encodes it. Copies data. Returns 0. */
int grpcw_call_set_status_details_bin(grpcw_call *call, const uint8_t *data, size_t len);

/* Releases what the completed send batch held (message, details). */
void grpcw_call_send_done(grpcw_call *call);

/* Cancels the call with the given status (thread-safe, any time). */
void grpcw_call_cancel(grpcw_call *call, rpc_code code, const char *details);

/* ---- client ------------------------------------------------------------ */

typedef struct {
    const char *tls_root_pem;     /* PEM roots to verify the server with; NULL: plaintext */
    const char *tls_server_name;  /* expected name in the server's certificate; NULL: from target */
    size_t max_message_bytes;     /* largest response accepted; 0: 4 MiB */
    /* No retries inside the core (its retry filter buffers every call's
     * messages, ~2 µs per call): for callers doing their own failover. */
    bool no_retries;
} grpcw_channel_options;

/* Creates a channel to target ("host:port", "unix:/path", any gRPC target
 * URI). Connects lazily. options may be NULL (plaintext, 4 MiB).
 * Returns NULL when memory is short or the credentials are refused. */
__attribute__((warn_unused_result))
grpcw_channel *grpcw_channel_new(const char *target, const grpcw_channel_options *options);

/* Closes the channel. ch may be NULL. */
void grpcw_channel_free(grpcw_channel *ch);

/* What a unary call returned. Caller-owned storage: dispose with
 * grpcw_unary_result_dispose. */
typedef struct {
    rpc_code code;
    char *message;           /* grpc-message, never NULL after a call ("" when none) */
    uint8_t *response;       /* response bytes (malloc) when has_response */
    size_t response_len;
    bool has_response;
    grpcw_md_list initial_md;  /* response headers */
    grpcw_md_list trailing_md; /* trailers (grpc-status/grpc-message excluded) */
} grpcw_unary_result;

/* Runs one unary call and waits for its end: sends md[0..n_md) and the
 * request bytes req[0..req_len) to path, with a deadline timeout_ms from
 * now (<= 0: none). Thread-safe: any number of threads may call at once on
 * one channel. res: output (initialized here; dispose it even on -1).
 * Returns 0 when the call ran to a status (any code, in res->code), -1 when
 * it could not be started (res->code RPC_INTERNAL, res->message why). */
__attribute__((warn_unused_result))
int grpcw_unary_call(grpcw_channel *ch, grpcw_unary_result *res, const char *path,
                     const uint8_t *req, size_t req_len, const grpcw_md *md, size_t n_md,
                     int64_t timeout_ms);

void grpcw_unary_result_dispose(grpcw_unary_result *res);

/* The first value of key in list, *len its length (len may be NULL);
 * NULL when absent. Borrowed from list. */
const char *grpcw_md_list_get(const grpcw_md_list *list, size_t *len, const char *key);

void grpcw_md_list_dispose(grpcw_md_list *list);

#endif
