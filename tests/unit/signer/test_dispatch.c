/* dispatch: the three phases of a request against a real policy, ledger,
 * journal and KEK ring (no socket, no syncer thread: tickets are what an
 * answer waits for).
 *
 * The commit/durability race: a nonce's in-memory commit must be journaled
 * atomically with its audit line. Otherwise a second loop thread sending
 * the identical request sees the nonce committed, re-signs it and gets an
 * earlier journal ticket than the original, so its answer can leave while
 * the original's ledger records are still only in memory (a crash then
 * forgets the nonce). This binary is linked with -Wl,--wrap=ledger_commit:
 * right after the real commit, the wrapper lets a second worker (another
 * thread) run the identical request to completion if it can, for up to
 * WINDOW_MS. Whatever it got, a re-sign answer must carry a later ticket
 * than the original's. */
#include "dispatch.h"
#include "ipc.h"
#include "keystore.h"
#include "request.h"
#include "secmem.h"
#include "test_support.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_MS 300

static char dir[64];
static int dirfd_ = -1, audit_fd = -1;
static policy *pol;
static ledger *led;
static journal *jr;
static kek_ring *ring;
static signer_shared shared;
static signer_worker w1, w2;
static const signer_peer peer = {1000, 42};

static const char policy_json[] =
    "{\"version\":1,\"chains\":[{\"chain_id\":31337,"
    "\"native\":{\"max_value\":\"1000\",\"daily_limit\":\"1000000\",\"any_recipient\":true}}]}";

static int suite_init(void)
{
    char err[300];
    audit_chain start;
    if (secmem_init() != 0)
        return -1;
    snprintf(dir, sizeof dir, "/tmp/coffer-test-dispatch.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    audit_fd = openat(dirfd_, "audit.log", O_RDWR | O_CREAT | O_APPEND, 0600);
    if (dirfd_ < 0 || audit_fd < 0)
        return -1;
    if (policy_parse(&pol, err, sizeof err, (const uint8_t *)policy_json, strlen(policy_json)) != 0 ||
        ledger_open(&led, NULL, err, sizeof err, dirfd_, "ledger", dispatch_now_ms()) != 0) {
        fprintf(stderr, "dispatch suite: %s\n", err);
        return -1;
    }
    memset(&start, 0, sizeof start);
    if (journal_new(&jr, audit_fd, ledger_fd(led), &start, policy_hash(pol)) != 0)
        return -1;
    ring = kek_ring_new();
    if (!ring || kek_ring_add_random(ring, 1) != 0 || kek_ring_set_current(ring, 1) != 0)
        return -1;
    shared.pol = pol;
    shared.led = led;
    shared.jr = jr;
    shared.version = "test";
    if (dispatch_worker_init(&w1, &shared, ring) != 0 || dispatch_worker_init(&w2, &shared, ring) != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    char cmd[128];
    dispatch_worker_dispose(&w1);
    dispatch_worker_dispose(&w2);
    kek_ring_free(ring);
    journal_free(jr);
    ledger_free(led);
    policy_free(pol);
    if (audit_fd >= 0)
        close(audit_fd);
    if (dirfd_ >= 0)
        close(dirfd_);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- frames ------------------------------------------------------------------- */

static uint64_t next_id = 1;

static size_t pack(uint8_t *buf, Coffer__Signer__V1__Request *req)
{
    req->version = 1;
    req->request_id = next_id++;
    req->trace_id = (char *)(uintptr_t)"dispatch-test";
    return coffer__signer__v1__request__pack(req, buf);
}

/* The Response inside an answer frame (free with ..._free_unpacked). */
static Coffer__Signer__V1__Response *answer(const dispatch_out *o)
{
    CU_ASSERT_FATAL(o->frame && o->len > IPC_HEADER_LEN);
    return coffer__signer__v1__response__unpack(NULL, o->len - IPC_HEADER_LEN, o->frame + IPC_HEADER_LEN);
}

static uint8_t key_address[20], key_blob[KEYSTORE_BLOB_LEN];

static void generate_key(void)
{
    uint8_t buf[256];
    Coffer__Signer__V1__Request req;
    Coffer__Signer__V1__GenerateKeyRequest g;
    dispatch_out o;
    coffer__signer__v1__request__init(&req);
    coffer__signer__v1__generate_key_request__init(&g);
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1;
    g.owner_id = (char *)(uintptr_t)"client-1";
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_GENERATE_KEY;
    req.generate_key = &g;
    size_t n = pack(buf, &req);
    CU_ASSERT_EQUAL_FATAL(dispatch_frame(&w1, &o, &peer, buf, n), 0);
    Coffer__Signer__V1__Response *r = answer(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(r->result_case, COFFER__SIGNER__V1__RESPONSE__RESULT_GENERATE_KEY);
    memcpy(key_address, r->generate_key->address.data, 20);
    memcpy(key_blob, r->generate_key->sealed_key.data, KEYSTORE_BLOB_LEN);
    coffer__signer__v1__response__free_unpacked(r, NULL);
    free(o.frame);
}

/* A SignTransaction frame: a native transfer of value 1 at nonce. */
static size_t sign_frame(uint8_t *buf, uint64_t nonce)
{
    static uint8_t zero[32], one[32] = {[31] = 1}, to[20] = {0x70};
    Coffer__Signer__V1__Request req;
    Coffer__Signer__V1__SignTransactionRequest st;
    Coffer__Signer__V1__Eip1559Tx tx;
    coffer__signer__v1__request__init(&req);
    coffer__signer__v1__sign_transaction_request__init(&st);
    coffer__signer__v1__eip1559_tx__init(&tx);
    tx.chain_id = 31337;
    tx.nonce = nonce;
    tx.gas_limit = 21000;
    tx.max_priority_fee_per_gas.data = zero;
    tx.max_priority_fee_per_gas.len = 32;
    tx.max_fee_per_gas.data = zero;
    tx.max_fee_per_gas.len = 32;
    tx.to.data = to;
    tx.to.len = 20;
    tx.value.data = one;
    tx.value.len = 32;
    st.sealed_key.data = key_blob;
    st.sealed_key.len = KEYSTORE_BLOB_LEN;
    st.address.data = key_address;
    st.address.len = 20;
    st.owner_id = (char *)(uintptr_t)"client-1";
    st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_EIP1559;
    st.eip1559 = &tx;
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_SIGN_TRANSACTION;
    req.sign_transaction = &st;
    return pack(buf, &req);
}

/* ---- the second request, run from inside the first's commit ------------------ */

typedef struct {
    uint8_t frame[1024];
    size_t len;
    dispatch_out out;
    int rc;
    int done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} second_req;

static second_req *armed; /* run by the next ledger_commit */
static int second_ran_inside;

static void *second_main(void *arg)
{
    second_req *b = arg;
    int rc = dispatch_frame(&w2, &b->out, &peer, b->frame, b->len);
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->done = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

size_t __real_ledger_commit(ledger *l, ledger_txn *t, uint8_t rec[LEDGER_COMMIT_MAX], int64_t now_ms);
size_t __wrap_ledger_commit(ledger *l, ledger_txn *t, uint8_t rec[LEDGER_COMMIT_MAX], int64_t now_ms);

size_t __wrap_ledger_commit(ledger *l, ledger_txn *t, uint8_t rec[LEDGER_COMMIT_MAX], int64_t now_ms)
{
    size_t n = __real_ledger_commit(l, t, rec, now_ms);
    second_req *b = armed;
    armed = NULL;
    if (b) {
        /* The nonce is committed in memory now. Let the identical request
         * run on another worker for up to WINDOW_MS. */
        pthread_t th;
        struct timespec until;
        CU_ASSERT_FATAL(pthread_create(&th, NULL, second_main, b) == 0);
        pthread_detach(th);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WINDOW_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&b->mu);
        while (!b->done && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
            ;
        second_ran_inside = b->done;
        pthread_mutex_unlock(&b->mu);
    }
    return n;
}

static void test_resign_never_overtakes_commit(void)
{
    uint8_t frame[1024];
    dispatch_out a;
    static second_req b;
    generate_key();

    memset(&b, 0, sizeof b);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    size_t n = sign_frame(frame, 5);
    b.len = sign_frame(b.frame, 5); /* identical payload, another request id */
    armed = &b;
    CU_ASSERT_EQUAL_FATAL(dispatch_frame(&w1, &a, &peer, frame, n), 0);
    CU_ASSERT_PTR_NULL(armed); /* the commit happened (and ran the hook) */
    pthread_mutex_lock(&b.mu);
    while (!b.done)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    CU_ASSERT_EQUAL_FATAL(b.rc, 0);

    Coffer__Signer__V1__Response *ra = answer(&a), *rb = answer(&b.out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ra);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rb);
    CU_ASSERT_EQUAL(ra->result_case, COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION);
    fprintf(stderr, "\n  original: ticket %llu; identical request during its commit: %s, ticket %llu%s\n",
            (unsigned long long)a.ticket,
            rb->result_case == COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION ? "signed"
                                                                                       : rb->error->rule,
            (unsigned long long)b.out.ticket,
            second_ran_inside ? " (finished inside the commit window)" : " (waited for the journal)");
    if (rb->result_case == COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION) {
        /* A re-sign is answered only after the original's records are
         * durable: its ticket must come after the original's. */
        CU_ASSERT(b.out.ticket > a.ticket);
        CU_ASSERT_EQUAL(rb->sign_transaction->raw_tx.len, ra->sign_transaction->raw_tx.len);
        CU_ASSERT(memcmp(rb->sign_transaction->raw_tx.data, ra->sign_transaction->raw_tx.data,
                         ra->sign_transaction->raw_tx.len) == 0);
    } else {
        CU_ASSERT_STRING_EQUAL(rb->error->rule, "nonce.in_flight");
    }
    coffer__signer__v1__response__free_unpacked(ra, NULL);
    coffer__signer__v1__response__free_unpacked(rb, NULL);
    free(a.frame);
    free(b.out.frame);

    CU_ASSERT_EQUAL(journal_flush_now(jr), 0);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"a re-sign never gets an earlier ticket than the commit it relies on",
         test_resign_never_overtakes_commit},
        {NULL, NULL},
    };
    test_add_suite_with("dispatch", suite_init, suite_clean, cases);
}
