/* gw_http: the gateway's HTTP/1.1 front (libmicrohttpd on one epoll
 * event loop for every connection; a request whose gRPC call is in flight
 * is suspended, not holding a thread, and resumed by the loop when the
 * call, run by the loop's own upstream client, ends). What a request does
 * is gw_pipe's business. */
#ifndef COFFER_GW_HTTP_H
#define COFFER_GW_HTTP_H

#include "gw_pipe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


typedef struct {
    const char *listen;                    /* "host:port" (IPv4, or [IPv6]:port); port 0: any free port */
    const char *tls_cert_pem;              /* PEM chain and key: TLS; both NULL: plaintext */
    const char *tls_key_pem;
    unsigned max_connections;              /* > 0; all on one event loop */
    unsigned max_connections_per_ip;       /* 0: no limit */
    unsigned idle_timeout_s;               /* close connections idle this long; 0: never */
    gw_pipe *pipe;                         /* borrowed: what requests do */
} gw_http_options;

typedef struct gw_http gw_http;

/* Starts listening and serving. Returns NULL with err when the address
 * cannot be bound or TLS is asked for but unavailable. */
__attribute__((warn_unused_result))
gw_http *gw_http_start(char *err, size_t err_len, const gw_http_options *options);

/* The bound TCP port. */
int gw_http_port(const gw_http *h);

/* Stops accepting (requests on open connections, on every front, get
 * 503), waits for the calls in flight (their deadlines bound the wait)
 * and a moment for their replies to go out, stops the event loop, frees.
 * Call before gw_upstreams_free. h may be NULL. */
void gw_http_stop(gw_http *h);

#endif
