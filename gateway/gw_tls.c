#include "gw_tls.h"

#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS 1.2 and 1.3 only. For TLS 1.2, RFC 9113 section 9.2 asks for
 * ephemeral key exchange and AEAD ciphers (its appendix A lists the rest
 * as prohibited, and a client may answer them with INADEQUATE_SECURITY):
 * ECDHE with AES-GCM or ChaCha20-Poly1305 is what remains of NORMAL,
 * TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (the suite section 9.2.2 requires)
 * included. TLS 1.3's suites are all AEAD with ephemeral key exchange. Not
 * gnutls_set_default_priority: the system's NORMAL may still allow TLS
 * 1.0 and 1.1 and CBC suites. */
#define GW_TLS_PRIORITY                                                                                         \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
    "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"

struct gw_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
};

struct gw_tls_conn {
    gnutls_session_t s;
    bool established;  /* handshake done, ALPN h2 */
    size_t send_held;  /* bytes of the record gnutls_record_send made and could not send yet (0: none) */
    const char *why;   /* the last failure */
};

gw_tls *gw_tls_new(char *err, size_t err_len, const char *cert_pem, const char *key_pem)
{
    gw_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    int r = gnutls_certificate_allocate_credentials(&t->cred);
    if (r < 0) {
        t->cred = NULL;
        snprintf(err, err_len, "TLS credentials: %s", gnutls_strerror(r));
        goto fail;
    }
    /* GnuTLS parses the PEM into its own key object; the caller keeps (and wipes) its text. */
    gnutls_datum_t cert = {(unsigned char *)(uintptr_t)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t key = {(unsigned char *)(uintptr_t)key_pem, (unsigned)strlen(key_pem)};
    r = gnutls_certificate_set_x509_key_mem2(t->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        /* The error names what failed (parsing, key mismatch), never what the key holds. */
        snprintf(err, err_len, "tls.cert/tls.key for HTTP/2: %s", gnutls_strerror(r));
        goto fail;
    }
    const char *bad = NULL;
    r = gnutls_priority_init2(&t->prio, GW_TLS_PRIORITY, &bad, 0);
    if (r < 0) {
        t->prio = NULL;
        snprintf(err, err_len, "TLS priorities rejected by this GnuTLS at \"%s\": %s", bad ? bad : "?",
                 gnutls_strerror(r));
        goto fail;
    }
    return t;
fail:
    gw_tls_free(t);
    return NULL;
}

void gw_tls_free(gw_tls *t)
{
    if (!t)
        return;
    if (t->prio)
        gnutls_priority_deinit(t->prio);
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    free(t);
}

gw_tls_conn *gw_tls_conn_new(gw_tls *t, int fd)
{
    gw_tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* No tickets: no resumption, so there is no ticket key to protect and
     * every connection proves the certificate's key. NO_SIGNAL: a peer gone
     * is an error here, not a SIGPIPE for the process. */
    if (gnutls_init(&c->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS) < 0) {
        free(c);
        return NULL;
    }
    static const gnutls_datum_t h2 = {(unsigned char *)(uintptr_t)"h2", 2};
    if (gnutls_priority_set(c->s, t->prio) < 0 || gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, t->cred) < 0 ||
        gnutls_alpn_set_protocols(c->s, &h2, 1, GNUTLS_ALPN_MANDATORY) < 0) {
        gnutls_deinit(c->s);
        free(c);
        return NULL;
    }
    gnutls_transport_set_int(c->s, fd);
    c->why = "none";
    return c;
}

void gw_tls_conn_free(gw_tls_conn *c)
{
    if (!c)
        return;
    /* close_notify if the socket takes it now; never waited for (GNUTLS_E_AGAIN is ignored). */
    if (c->established)
        (void)gnutls_bye(c->s, GNUTLS_SHUT_WR);
    gnutls_deinit(c->s);
    free(c);
}

/* A handshake that fails: the alert that says why goes out if the socket
 * takes it at once (a client then reports "no application protocol"
 * rather than a reset). */
static gw_tls_hs gw_tls_fail(gw_tls_conn *c, int r)
{
    c->why = gnutls_strerror_name(r) ? gnutls_strerror_name(r) : "GNUTLS_E_UNKNOWN";
    (void)gnutls_alert_send_appropriate(c->s, r);
    return GW_TLS_HS_FAILED;
}

gw_tls_hs gw_tls_handshake(gw_tls_conn *c)
{
    if (c->established)
        return GW_TLS_HS_DONE;
    int r;
    do
        r = gnutls_handshake(c->s);
    while (r == GNUTLS_E_INTERRUPTED);
    if (r == GNUTLS_E_AGAIN)
        return gnutls_record_get_direction(c->s) ? GW_TLS_HS_WANT_WRITE : GW_TLS_HS_WANT_READ;
    if (r < 0) /* warning alerts included: a client that sends one mid-handshake is not one we serve */
        return gw_tls_fail(c, r);
    /* GNUTLS_ALPN_MANDATORY fails a client that offers ALPN without "h2";
     * one that offers no ALPN at all gets this far. */
    gnutls_datum_t p;
    if (gnutls_alpn_get_selected_protocol(c->s, &p) != 0 || p.size != 2 || memcmp(p.data, "h2", 2) != 0) {
        c->why = "no_alpn_h2";
        (void)gnutls_alert_send(c->s, GNUTLS_AL_FATAL, GNUTLS_A_NO_APPLICATION_PROTOCOL);
        return GW_TLS_HS_FAILED;
    }
    c->established = true;
    return GW_TLS_HS_DONE;
}

const char *gw_tls_conn_failure(const gw_tls_conn *c)
{
    return c->why;
}

ssize_t gw_tls_read(gw_tls_conn *c, void *buf, size_t len)
{
    ssize_t n;
    do
        n = gnutls_record_recv(c->s, buf, len);
    while (n == GNUTLS_E_INTERRUPTED);
    if (n >= 0)
        return n; /* 0: close_notify */
    if (n == GNUTLS_E_AGAIN)
        return GW_TLS_AGAIN;
    /* GNUTLS_E_REHANDSHAKE (a TLS 1.2 renegotiation: not served), alerts,
     * bad records, GNUTLS_E_PREMATURE_TERMINATION (TCP closed without
     * close_notify): the connection is done either way. */
    c->why = gnutls_strerror_name((int)n) ? gnutls_strerror_name((int)n) : "GNUTLS_E_UNKNOWN";
    return -1;
}

bool gw_tls_pending(const gw_tls_conn *c)
{
    return gnutls_record_check_pending(c->s) > 0;
}

ssize_t gw_tls_write(gw_tls_conn *c, const void *buf, size_t len)
{
    ssize_t n;
    for (;;) {
        /* After GNUTLS_E_AGAIN GnuTLS holds the encrypted record (or its
         * TLS 1.3 key update state) and must be called again with the
         * same data or with (NULL, 0); the caller's buffer may have moved
         * and grown since, so (NULL, 0): GnuTLS finishes the held record
         * and returns how many of the caller's bytes it carried. */
        if (c->send_held) {
            if (len < c->send_held)
                return -1; /* misuse: the held bytes were not passed again */
            n = gnutls_record_send(c->s, NULL, 0);
        } else {
            n = gnutls_record_send(c->s, buf, len);
        }
        if (n == GNUTLS_E_INTERRUPTED) {
            if (!c->send_held)
                c->send_held = len;
            continue;
        }
        if (n == GNUTLS_E_AGAIN) {
            if (!c->send_held)
                c->send_held = len; /* at most this many: the record holds a prefix of buf */
            return GW_TLS_AGAIN;
        }
        break;
    }
    c->send_held = 0;
    if (n < 0) {
        c->why = gnutls_strerror_name((int)n) ? gnutls_strerror_name((int)n) : "GNUTLS_E_UNKNOWN";
        return -1;
    }
    if (n == 0 || (size_t)n > len)
        return -1; /* cannot be: GnuTLS took nothing, or counted more than it was given */
    return n;
}
