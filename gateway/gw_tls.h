/* gw_tls: TLS for the HTTP/2 front (gw_h2), GnuTLS over non-blocking
 * sockets driven by the caller's event loop: server credentials made once
 * from PEM, one session per connection.
 *
 * HTTP/2 only: a handshake succeeds only when ALPN selects "h2" (RFC 9113
 * section 3.2); a client that offers no "h2" (HTTP/1.1 only, or no ALPN)
 * fails it. TLS 1.2 and 1.3 only, with ephemeral (EC)DHE key exchange and
 * AEAD ciphers, as RFC 9113 section 9.2 asks of TLS 1.2 (gw_tls.c has the
 * priority string). No session tickets, no renegotiation.
 *
 * One thread at a time per gw_tls_conn; a gw_tls may serve sessions on one
 * thread (the front's event loop). The key PEM stays the caller's: nothing
 * here copies it (GnuTLS keeps its own parsed key until gw_tls_free). */
#ifndef COFFER_GW_TLS_H
#define COFFER_GW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* gw_tls_read and gw_tls_write: nothing can move until the socket is
 * ready again (readable for reads, writable for writes). */
#define GW_TLS_AGAIN (-2)

typedef struct gw_tls gw_tls;
typedef struct gw_tls_conn gw_tls_conn;

typedef enum {
    GW_TLS_HS_DONE = 0,   /* established, ALPN "h2" */
    GW_TLS_HS_WANT_READ,  /* call again when the socket is readable */
    GW_TLS_HS_WANT_WRITE, /* call again when the socket is writable */
    GW_TLS_HS_FAILED,     /* close the connection (gw_tls_conn_failure says why) */
} gw_tls_hs;

/* Server credentials from a PEM certificate chain and its PEM private key
 * (inputs, NUL-terminated, borrowed only during the call). NULL with err
 * (which names no key material) when they do not parse or do not match. */
__attribute__((warn_unused_result))
gw_tls *gw_tls_new(char *err, size_t err_len, const char *cert_pem, const char *key_pem);

/* t may be NULL. Every gw_tls_conn of t must be freed first. */
void gw_tls_free(gw_tls *t);

/* A server session on fd, a connected non-blocking stream socket that
 * stays the caller's. NULL when out of memory. */
__attribute__((warn_unused_result))
gw_tls_conn *gw_tls_conn_new(gw_tls *t, int fd);

/* Best effort close_notify (never waits) when established, then frees.
 * The socket stays open. c may be NULL. */
void gw_tls_conn_free(gw_tls_conn *c);

/* Advances the handshake as far as the socket allows. */
__attribute__((warn_unused_result))
gw_tls_hs gw_tls_handshake(gw_tls_conn *c);

/* Why the last handshake, read or write failed: a GnuTLS error name, or
 * "no_alpn_h2". Static text; never key material. */
__attribute__((warn_unused_result))
const char *gw_tls_conn_failure(const gw_tls_conn *c);

/* After GW_TLS_HS_DONE. Decrypts into buf[0..len). Returns the bytes
 * (> 0, at most one record's), 0 when the peer closed, GW_TLS_AGAIN, or
 * -1 when the connection is done for (bad record, alert, renegotiation
 * attempt, or a TCP close without close_notify). */
__attribute__((warn_unused_result))
ssize_t gw_tls_read(gw_tls_conn *c, void *buf, size_t len);

/* Whether decrypted bytes wait inside the session: the socket will not
 * become readable for them, so read until this is false. */
__attribute__((warn_unused_result))
bool gw_tls_pending(const gw_tls_conn *c);

/* After GW_TLS_HS_DONE. Encrypts and sends a prefix of buf[0..len),
 * len > 0. Returns the bytes taken (> 0, at most one record's),
 * GW_TLS_AGAIN, or -1. After GW_TLS_AGAIN the record is made and held
 * here: the next call must pass the same bytes again at the start of buf
 * (more may follow; the pointer may differ), and its result counts the
 * held record's bytes. */
__attribute__((warn_unused_result))
ssize_t gw_tls_write(gw_tls_conn *c, const void *buf, size_t len);

#endif
