/* gw_h2: the gateway's HTTP/2 front on its own port, framed by nghttp2,
 * on one epoll event loop for every connection: over TLS with ALPN "h2"
 * (RFC 9113 section 3.2; gw_tls) when given a certificate and key, else
 * cleartext HTTP/2 with prior knowledge (h2c, section 3.3). Its streams go
 * through the same pipeline (gw_pipe) as HTTP/1.1 requests, so routes,
 * JSON, errors and headers are the same; response header names are
 * lowercase, as HTTP/2 requires.
 *
 * Why: an HTTP/1.1 client has one request in flight per connection, so
 * every request costs its own read, write and wake-ups on both ends;
 * HTTP/2 multiplexes many requests per connection as gRPC does, and
 * makes the HTTP path cost about what the gRPC one does (bench/gateway).
 * With TLS, a client must offer "h2" by ALPN or its handshake fails: the
 * port serves nothing else (docs/gateway.md). */
#ifndef COFFER_GW_H2_H
#define COFFER_GW_H2_H

#include "gw_pipe.h"

#include <stddef.h>

typedef struct {
    const char *listen;       /* "host:port"; port 0: any free port */
    unsigned max_connections; /* more are closed at once */
    unsigned max_streams;     /* concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS) */
    unsigned idle_timeout_s;  /* close connections that read nothing this long while no call of theirs
                                 is in flight (idle, or stalled mid-request or mid-reply); 0: never */
    gw_pipe *pipe;            /* borrowed: what requests do */
    const char *tls_cert_pem; /* PEM certificate chain and its key, read during gw_h2_start only: TLS with */
    const char *tls_key_pem;  /* ALPN h2, each handshake within idle_timeout_s (10 s at most); NULL: h2c */
} gw_h2_options;

typedef struct gw_h2 gw_h2;

/* Starts listening and serving. NULL with err when the address cannot be
 * bound or the certificate and key are unusable. */
__attribute__((warn_unused_result))
gw_h2 *gw_h2_start(char *err, size_t err_len, const gw_h2_options *options);

int gw_h2_port(const gw_h2 *h);

/* Serves HTTP/2 on fd, a connected stream socket (TCP or Unix), as if
 * accepted but always as h2c, TLS or not on the port: for inherited
 * sockets, in-process clients and the fuzz target. Any thread. 0, or -1
 * (fd stays the caller's) when too many are waiting. */
__attribute__((warn_unused_result))
int gw_h2_adopt(gw_h2 *h, int fd);

/* Stops accepting, gives the replies of finished calls a moment to go
 * out, closes every connection, frees. Stop the pipeline's calls first
 * (gw_http_stop waits for them). h may be NULL. */
void gw_h2_stop(gw_h2 *h);

#endif
