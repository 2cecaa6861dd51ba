/* signer_client against a scripted fake signer: retry after a dropped
 * connection, timeouts, mismatched answers, unavailable signer with
 * backoff, error mapping, argument checks. (The real signer is exercised
 * by tests/integration/signer/test_signer_client.c.) */
#include "coffer/signer/v1/signer.pb-c.h"
#include "ipc.h"
#include "signer_client.h"
#include "test_support.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    FAKE_OK = 0,         /* answer Status */
    FAKE_CLOSE_FIRST,    /* close the first connection after reading a frame, then answer */
    FAKE_SILENT,         /* read, never answer */
    FAKE_WRONG_ID,       /* answer with another request_id */
    FAKE_DENY,           /* answer POLICY_DENIED with a rule */
} fake_mode;

typedef struct {
    char path[108];
    int lfd;
    fake_mode mode;
    _Atomic int served;  /* frames answered (counted before the answer is sent) */
    _Atomic int connections;
    pthread_t thread;
    _Atomic int stop;
} fake;

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void answer(int fd, const Coffer__Signer__V1__Request *req, fake_mode mode)
{
    Coffer__Signer__V1__Response resp;
    coffer__signer__v1__response__init(&resp);
    Coffer__Signer__V1__StatusResult st;
    coffer__signer__v1__status_result__init(&st);
    Coffer__Signer__V1__Error e;
    coffer__signer__v1__error__init(&e);
    static uint8_t h[32] = {9};
    static uint32_t vers[2] = {1, 2};
    uint8_t buf[1024];
    resp.version = 1;
    resp.request_id = mode == FAKE_WRONG_ID ? req->request_id + 1 : req->request_id;
    if (mode == FAKE_DENY) {
        e.code = COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_POLICY_DENIED;
        e.message = (char *)"chain 1 is not in the policy";
        e.rule = (char *)"chain.not_allowed";
        resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_ERROR;
        resp.error = &e;
    } else {
        st.kek_versions = vers;
        st.n_kek_versions = 2;
        st.current_kek_version = 2;
        st.policy_hash.data = h;
        st.policy_hash.len = 32;
        st.audit_head_hash.data = h;
        st.audit_head_hash.len = 32;
        st.audit_entries = 7;
        st.version = (char *)"fake";
        resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_STATUS;
        resp.status = &st;
    }
    size_t n = coffer__signer__v1__response__pack(&resp, buf);
    if (ipc_write_frame(fd, buf, n, 2000) != IPC_OK)
        fprintf(stderr, "fake: write failed\n");
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    uint8_t *buf = malloc(IPC_FRAME_MAX);
    while (!f->stop) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            break;
        f->connections++;
        for (;;) {
            size_t len = 0;
            if (ipc_read_frame(buf, IPC_FRAME_MAX, &len, fd, 5000) != IPC_OK)
                break;
            Coffer__Signer__V1__Request *req = coffer__signer__v1__request__unpack(NULL, len, buf);
            if (!req)
                break;
            if (f->mode == FAKE_CLOSE_FIRST && f->connections == 1) {
                coffer__signer__v1__request__free_unpacked(req, NULL);
                break;
            }
            if (f->mode != FAKE_SILENT) {
                f->served++;
                answer(fd, req, f->mode);
            }
            coffer__signer__v1__request__free_unpacked(req, NULL);
        }
        close(fd);
    }
    free(buf);
    return NULL;
}

static void fake_start(fake *f, fake_mode mode)
{
    struct sockaddr_un sa;
    memset(f, 0, sizeof *f);
    atomic_init(&f->served, 0);
    atomic_init(&f->connections, 0);
    f->mode = mode;
    snprintf(f->path, sizeof f->path, "/tmp/coffer-fake-signer.%d.%d", (int)getpid(), (int)mode);
    unlink(f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, f->path, strlen(f->path));
    CU_ASSERT_FATAL(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT_FATAL(listen(f->lfd, 16) == 0);
    CU_ASSERT_FATAL(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

static void fake_stop(fake *f)
{
    f->stop = 1;
    shutdown(f->lfd, SHUT_RDWR);
    close(f->lfd);
    pthread_join(f->thread, NULL);
    unlink(f->path);
}

static signer_client *client_for(const char *path, int call_ms)
{
    signer_client *c = NULL;
    signer_client_options o = {path, 2, 500, call_ms, 100, 400, NULL, NULL};
    CU_ASSERT_FATAL(signer_client_new(&c, &o) == 0);
    return c;
}

static void test_status_and_reuse(void)
{
    fake f;
    signer_status_info info;
    signer_error err;
    fake_start(&f, FAKE_OK);
    signer_client *c = client_for(f.path, 2000);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, "t"), SIGNER_OK);
    CU_ASSERT_EQUAL(info.n_kek_versions, 2);
    CU_ASSERT_EQUAL(info.current_kek_version, 2);
    CU_ASSERT_EQUAL(info.audit_entries, 7);
    CU_ASSERT_STRING_EQUAL(info.version, "fake");
    CU_ASSERT_EQUAL(f.connections, 1); /* one pooled connection reused */
    signer_client_free(c);
    fake_stop(&f);
}

static void test_retry_after_drop(void)
{
    fake f;
    signer_status_info info;
    signer_error err;
    fake_start(&f, FAKE_CLOSE_FIRST);
    signer_client *c = client_for(f.path, 2000);
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_OK);
    CU_ASSERT_EQUAL(f.connections, 2);
    CU_ASSERT_EQUAL(f.served, 1);
    signer_client_free(c);
    fake_stop(&f);
}

static void test_timeout(void)
{
    fake f;
    signer_status_info info;
    signer_error err;
    fake_start(&f, FAKE_SILENT);
    signer_client *c = client_for(f.path, 300);
    int64_t t0 = ms_now();
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_ERR_TIMEOUT);
    int64_t took = ms_now() - t0;
    CU_ASSERT(took >= 250 && took < 1500);
    CU_ASSERT_EQUAL(err.status, SIGNER_ERR_TIMEOUT);
    signer_client_free(c);
    fake_stop(&f);
}

static void test_wrong_id_and_denial(void)
{
    fake f;
    signer_status_info info;
    signer_error err;
    fake_start(&f, FAKE_WRONG_ID);
    signer_client *c = client_for(f.path, 2000);
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_ERR_PROTOCOL);
    signer_client_free(c);
    fake_stop(&f);

    fake_start(&f, FAKE_DENY);
    c = client_for(f.path, 2000);
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_ERR_POLICY_DENIED);
    CU_ASSERT_STRING_EQUAL(err.rule, "chain.not_allowed");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "chain 1"));
    CU_ASSERT_STRING_EQUAL(signer_status_name(err.status), "POLICY_DENIED");
    signer_client_free(c);
    fake_stop(&f);
}

static void test_unavailable_backoff(void)
{
    signer_status_info info;
    signer_error err;
    signer_client *c = client_for("/tmp/coffer-no-such-signer.sock", 50);
    int64_t t0 = ms_now();
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_ERR_UNAVAILABLE);
    /* the next calls fail fast while the backoff (<= 400 ms) runs */
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_ERR_UNAVAILABLE);
    CU_ASSERT(ms_now() - t0 < 1000);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/tmp/coffer-no-such-signer.sock") );
    /* the signer appears: after at most the backoff the client connects */
    fake f;
    fake_start(&f, FAKE_OK);
    signer_client_free(c);
    signer_client_options o = {f.path, 2, 500, 2000, 100, 400, NULL, NULL};
    CU_ASSERT_FATAL(signer_client_new(&c, &o) == 0);
    CU_ASSERT_EQUAL(signer_client_status(c, &info, &err, NULL), SIGNER_OK);
    signer_client_free(c);
    fake_stop(&f);
}

static void test_arguments(void)
{
    signer_client *c = NULL;
    signer_client_options o;
    memset(&o, 0, sizeof o);
    CU_ASSERT_EQUAL(signer_client_new(&c, &o), -1);
    o.socket_path = "/tmp/x";
    o.pool_size = SIGNER_POOL_MAX + 1;
    CU_ASSERT_EQUAL(signer_client_new(&c, &o), -1);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    o.pool_size = 1;
    o.socket_path = longp;
    CU_ASSERT_EQUAL(signer_client_new(&c, &o), -1);
    o.socket_path = "/tmp/x";
    CU_ASSERT_EQUAL_FATAL(signer_client_new(&c, &o), 0);
    signer_key k;
    signer_error err;
    signer_signed_tx out;
    signer_tx tx;
    memset(&k, 0, sizeof k);
    memset(&tx, 0, sizeof tx);
    memset(&out, 0, sizeof out);
    CU_ASSERT_EQUAL(signer_client_generate_key(c, &k, &err, "", NULL), SIGNER_ERR_INVALID_ARG);
    tx.type = SIGNER_TX_LEGACY;
    tx.n_access = 1;
    CU_ASSERT_EQUAL(signer_client_sign_transaction(c, &out, &err, &k, "o", &tx, NULL), SIGNER_ERR_INVALID_ARG);
    signer_signed_message sm;
    CU_ASSERT_EQUAL(signer_client_sign_message(c, &sm, &err, &k, "o", NULL, 0, NULL), SIGNER_ERR_INVALID_ARG);
    signer_signed_tx_dispose(&out);
    signer_signed_tx_dispose(NULL);
    signer_client_free(c);
    signer_client_free(NULL);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"status, pooled connection reused", test_status_and_reuse},
        {"dropped connection: one retry on a fresh one", test_retry_after_drop},
        {"timeout", test_timeout},
        {"mismatched answer, denial mapping", test_wrong_id_and_denial},
        {"unavailable, backoff, recovery", test_unavailable_backoff},
        {"argument checks", test_arguments},
        {NULL, NULL},
    };
    test_add_suite("signer_client", cases);
}
