/* gw_tls: credentials from PEM, the ALPN "h2" rule, reads with decrypted
 * bytes left inside the session, and writes that meet a full socket and
 * resume (GnuTLS's "call again with the same data" rule). The peer is a
 * GnuTLS client on the other end of a non-blocking socketpair; the
 * certificate is made here, so no file is needed. */
#include "gw_tls.h"
#include "test_support.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *tls_cert_pem, *tls_key_pem, *tls_other_key_pem;

static char *pem_of_key(gnutls_x509_privkey_t key)
{
    gnutls_datum_t d;
    if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d) < 0)
        return NULL;
    char *s = strndup((const char *)d.data, d.size);
    gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
    return s;
}

/* A P-256 key and a self-signed certificate for CN=localhost, and a second
 * key that does not match it. */
static int tls_suite_init(void)
{
    gnutls_x509_privkey_t key = NULL, other = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d = {NULL, 0};
    int ok = gnutls_x509_privkey_init(&key) == 0 && gnutls_x509_privkey_init(&other) == 0 &&
             gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) ==
                 0 &&
             gnutls_x509_privkey_generate(other, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                          0) == 0 &&
             gnutls_x509_crt_init(&crt) == 0;
    static const unsigned char serial[] = {1};
    time_t now = time(NULL);
    ok = ok && gnutls_x509_crt_set_version(crt, 3) == 0 && gnutls_x509_crt_set_serial(crt, serial, 1) == 0 &&
         gnutls_x509_crt_set_activation_time(crt, now - 60) == 0 &&
         gnutls_x509_crt_set_expiration_time(crt, now + 3600) == 0 &&
         gnutls_x509_crt_set_dn(crt, "CN=localhost", NULL) == 0 && gnutls_x509_crt_set_key(crt, key) == 0 &&
         gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) == 0 &&
         gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) == 0;
    if (ok) {
        tls_cert_pem = strndup((const char *)d.data, d.size);
        tls_key_pem = pem_of_key(key);
        tls_other_key_pem = pem_of_key(other);
    }
    gnutls_free(d.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    gnutls_x509_privkey_deinit(other);
    return tls_cert_pem && tls_key_pem && tls_other_key_pem ? 0 : -1;
}

static int tls_suite_cleanup(void)
{
    free(tls_cert_pem);
    free(tls_key_pem);
    free(tls_other_key_pem);
    return 0;
}

/* A server session and a GnuTLS client on the two ends of a socketpair. */
typedef struct {
    gw_tls *t;
    gw_tls_conn *srv;
    gnutls_session_t cli;
    gnutls_certificate_credentials_t cli_cred;
    int fd[2];
    gw_tls_hs srv_hs;
    int cli_hs;
} tls_pair;

static void pair_open(tls_pair *p, const char *const *alpn, unsigned n_alpn)
{
    char err[256];
    memset(p, 0, sizeof *p);
    p->t = gw_tls_new(err, sizeof err, tls_cert_pem, tls_key_pem);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->t);
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->srv = gw_tls_conn_new(p->t, p->fd[0]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->srv);
    CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&p->cli_cred), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_init(&p->cli, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_set_default_priority(p->cli), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_credentials_set(p->cli, GNUTLS_CRD_CERTIFICATE, p->cli_cred), 0);
    gnutls_datum_t protos[4];
    for (unsigned i = 0; i < n_alpn && i < 4; i++)
        protos[i] = (gnutls_datum_t){(unsigned char *)(uintptr_t)alpn[i], (unsigned)strlen(alpn[i])};
    if (n_alpn)
        CU_ASSERT_EQUAL_FATAL(gnutls_alpn_set_protocols(p->cli, protos, n_alpn, 0), 0);
    gnutls_transport_set_int(p->cli, p->fd[1]);
    p->srv_hs = GW_TLS_HS_WANT_READ;
    p->cli_hs = GNUTLS_E_AGAIN;
}

/* Both sides take turns until neither can move. */
static void pair_handshake(tls_pair *p)
{
    for (int i = 0; i < 200; i++) {
        bool srv_moves = p->srv_hs == GW_TLS_HS_WANT_READ || p->srv_hs == GW_TLS_HS_WANT_WRITE;
        bool cli_moves = p->cli_hs == GNUTLS_E_AGAIN || p->cli_hs == GNUTLS_E_INTERRUPTED;
        if (!srv_moves && !cli_moves)
            return;
        if (cli_moves)
            p->cli_hs = gnutls_handshake(p->cli);
        if (srv_moves)
            p->srv_hs = gw_tls_handshake(p->srv);
    }
}

static void pair_close(tls_pair *p)
{
    gw_tls_conn_free(p->srv);
    gnutls_deinit(p->cli);
    gnutls_certificate_free_credentials(p->cli_cred);
    gw_tls_free(p->t);
    close(p->fd[0]);
    close(p->fd[1]);
}

static void test_credentials(void)
{
    char err[256];
    gw_tls *t = gw_tls_new(err, sizeof err, tls_cert_pem, tls_key_pem);
    CU_ASSERT_PTR_NOT_NULL(t);
    gw_tls_free(t);
    gw_tls_free(NULL);
    gw_tls_conn_free(NULL);
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(gw_tls_new(err, sizeof err, "not a certificate", tls_key_pem));
    CU_ASSERT_NOT_EQUAL(err[0], '\0');
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(gw_tls_new(err, sizeof err, tls_cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n"));
    CU_ASSERT_NOT_EQUAL(err[0], '\0');
    /* A key that is not the certificate's: refused, and the message shows no key material. */
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(gw_tls_new(err, sizeof err, tls_cert_pem, tls_other_key_pem));
    CU_ASSERT_NOT_EQUAL(err[0], '\0');
    CU_ASSERT_PTR_NULL(strstr(err, "PRIVATE"));
    const char *b64 = strchr(tls_other_key_pem, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
    char line[17];
    memcpy(line, b64 + 1, 16);
    line[16] = '\0';
    CU_ASSERT_PTR_NULL(strstr(err, line));
}

static void test_alpn_h2_only(void)
{
    static const char *const h2[] = {"http/1.1", "h2"};
    static const char *const h1[] = {"http/1.1"};
    tls_pair p;

    pair_open(&p, h2, 2);
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.srv_hs, GW_TLS_HS_DONE);
    CU_ASSERT_EQUAL(p.cli_hs, 0);
    gnutls_datum_t sel;
    CU_ASSERT_EQUAL_FATAL(gnutls_alpn_get_selected_protocol(p.cli, &sel), 0);
    CU_ASSERT_TRUE(sel.size == 2 && memcmp(sel.data, "h2", 2) == 0);
    CU_ASSERT_TRUE(gnutls_protocol_get_version(p.cli) == GNUTLS_TLS1_3 ||
                   gnutls_protocol_get_version(p.cli) == GNUTLS_TLS1_2);
    pair_close(&p);

    /* HTTP/1.1 only: GNUTLS_ALPN_MANDATORY fails the handshake, and the
     * client hears why. */
    pair_open(&p, h1, 1);
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.srv_hs, GW_TLS_HS_FAILED);
    CU_ASSERT_STRING_EQUAL(gw_tls_conn_failure(p.srv), "GNUTLS_E_NO_APPLICATION_PROTOCOL");
    CU_ASSERT_EQUAL(p.cli_hs, GNUTLS_E_FATAL_ALERT_RECEIVED);
    CU_ASSERT_EQUAL(gnutls_alert_get(p.cli), GNUTLS_A_NO_APPLICATION_PROTOCOL);
    pair_close(&p);

    /* No ALPN at all: the handshake completes, and is refused after. */
    pair_open(&p, NULL, 0);
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.srv_hs, GW_TLS_HS_FAILED);
    CU_ASSERT_STRING_EQUAL(gw_tls_conn_failure(p.srv), "no_alpn_h2");
    pair_close(&p);

    /* Not TLS at all. */
    pair_open(&p, h2, 2);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    CU_ASSERT_EQUAL(write(p.fd[1], preface, sizeof preface - 1), (ssize_t)(sizeof preface - 1));
    CU_ASSERT_EQUAL(gw_tls_handshake(p.srv), GW_TLS_HS_FAILED);
    pair_close(&p);
}

/* The client reads whatever is there; returns the bytes added to got. */
static size_t client_drain(tls_pair *p, uint8_t *got, size_t have, size_t cap)
{
    size_t added = 0;
    for (;;) {
        ssize_t n = gnutls_record_recv(p->cli, got + have + added, cap - have - added);
        if (n <= 0)
            return added;
        added += (size_t)n;
    }
}

static void test_write_resumes_after_again(void)
{
    static const char *const h2[] = {"h2"};
    tls_pair p;
    pair_open(&p, h2, 1);
    int small = 4096;
    setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    pair_handshake(&p);
    CU_ASSERT_EQUAL_FATAL(p.srv_hs, GW_TLS_HS_DONE);
    enum { TOTAL = 1 << 20 };
    uint8_t *src = malloc(TOTAL), *got = malloc(TOTAL);
    CU_ASSERT_FATAL(src && got);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (uint8_t)(i * 2654435761u >> 13);
    /* As gw_h2_flush does: the unsent tail of a buffer that may grow
     * (here: the window offered grows by 1000 bytes each turn, up to the
     * end) and move (copied to a new place after each AGAIN). */
    size_t off = 0, recvd = 0, window = 30000;
    unsigned agains = 0, turns = 0;
    uint8_t *moved = malloc(TOTAL);
    CU_ASSERT_FATAL(moved != NULL);
    while ((off < TOTAL || recvd < TOTAL) && turns++ < 100000) {
        if (off < TOTAL) {
            size_t len = (window < TOTAL ? window : TOTAL) - off;
            const uint8_t *base = src;
            if (agains & 1) { /* the same bytes, elsewhere */
                memcpy(moved + off, src + off, len);
                base = moved;
            }
            ssize_t n = gw_tls_write(p.srv, base + off, len);
            CU_ASSERT_FATAL(n == GW_TLS_AGAIN || (n > 0 && (size_t)n <= len));
            if (n == GW_TLS_AGAIN) {
                agains++;
                recvd += client_drain(&p, got, recvd, TOTAL); /* the reader catches up a bit */
            } else {
                off += (size_t)n;
            }
            window += 1000;
        } else {
            recvd += client_drain(&p, got, recvd, TOTAL);
        }
    }
    CU_ASSERT_TRUE(agains > 0); /* the socket did fill up */
    CU_ASSERT_EQUAL(off, TOTAL);
    CU_ASSERT_EQUAL_FATAL(recvd, TOTAL);
    CU_ASSERT_EQUAL(memcmp(src, got, TOTAL), 0);
    free(src);
    free(got);
    free(moved);
    pair_close(&p);
}

static void test_read_pending_and_eof(void)
{
    static const char *const h2[] = {"h2"};
    tls_pair p;
    pair_open(&p, h2, 1);
    pair_handshake(&p);
    CU_ASSERT_EQUAL_FATAL(p.srv_hs, GW_TLS_HS_DONE);
    uint8_t buf[8192];
    CU_ASSERT_EQUAL(gw_tls_read(p.srv, buf, sizeof buf), GW_TLS_AGAIN);
    CU_ASSERT_FALSE(gw_tls_pending(p.srv));
    /* One 5000-byte record read 1000 bytes at a time: after the first
     * read the socket is empty and the rest waits inside the session. */
    uint8_t rec[5000];
    for (size_t i = 0; i < sizeof rec; i++)
        rec[i] = (uint8_t)i;
    CU_ASSERT_EQUAL_FATAL(gnutls_record_send(p.cli, rec, sizeof rec), (ssize_t)sizeof rec);
    size_t have = 0;
    CU_ASSERT_EQUAL(gw_tls_read(p.srv, buf, 1000), 1000);
    have += 1000;
    uint8_t probe;
    CU_ASSERT_EQUAL(recv(p.fd[0], &probe, 1, MSG_PEEK), -1); /* nothing left in the socket */
    while (gw_tls_pending(p.srv)) {
        ssize_t n = gw_tls_read(p.srv, buf + have, 1000);
        CU_ASSERT_FATAL(n > 0);
        have += (size_t)n;
    }
    CU_ASSERT_EQUAL(have, sizeof rec);
    CU_ASSERT_EQUAL(memcmp(buf, rec, sizeof rec), 0);
    CU_ASSERT_EQUAL(gw_tls_read(p.srv, buf, sizeof buf), GW_TLS_AGAIN);
    /* close_notify: EOF (0). */
    CU_ASSERT_EQUAL(gnutls_bye(p.cli, GNUTLS_SHUT_WR), 0);
    CU_ASSERT_EQUAL(gw_tls_read(p.srv, buf, sizeof buf), 0);
    pair_close(&p);

    /* TCP closed without close_notify: an error, not EOF. */
    pair_open(&p, h2, 1);
    pair_handshake(&p);
    CU_ASSERT_EQUAL_FATAL(p.srv_hs, GW_TLS_HS_DONE);
    shutdown(p.fd[1], SHUT_WR);
    CU_ASSERT_EQUAL(gw_tls_read(p.srv, buf, sizeof buf), -1);
    CU_ASSERT_STRING_EQUAL(gw_tls_conn_failure(p.srv), "GNUTLS_E_PREMATURE_TERMINATION");
    pair_close(&p);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"credentials from PEM", test_credentials},
        {"ALPN h2 only", test_alpn_h2_only},
        {"writes resume after AGAIN, bytes whole", test_write_resumes_after_again},
        {"reads: pending bytes, EOF", test_read_pending_and_eof},
        {NULL, NULL},
    };
    test_add_suite_with("gw_tls", tls_suite_init, tls_suite_cleanup, cases);
}
