/* evm_rpc end to end against a misbehaving stub server
 * (tests/integration/evm/evm_stub.py: 500, 429, garbage, wrong ids, bad
 * hex, slow answers, JSON-RPC errors) and a dead port: failover, the
 * breaker's states with an injected clock, retries and back-off with an
 * injected RNG and sleep, strict parsing, and that eth_sendRawTransaction is
 * never re-sent. Needs python3 only (no stack). */
#include "abi.h"
#include "evm_rpc.h"
#include "keccak.h"
#include "test_support.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEAD "http://127.0.0.1:1"

static pid_t stub_pid = -1;
static int stub_stdin = -1;
static int stub_stdout = -1;
static int stub_port;

static int stub_start(void)
{
    const char *root = getenv("COFFER_SOURCE_ROOT");
    char script[1024];
    int in[2], out[2];
    snprintf(script, sizeof script, "%s/tests/integration/evm/evm_stub.py", root ? root : ".");
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    stub_pid = fork();
    if (stub_pid < 0)
        return -1;
    if (stub_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stub_stdin = in[1];
    /* Read up to the newline; keep the pipe open until the end so that the
     * stub never writes into a closed pipe. */
    char line[32] = {0};
    size_t got = 0;
    while (got < sizeof line - 1 && !strchr(line, '\n')) {
        ssize_t n = read(out[0], line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    stub_stdout = out[0];
    if ((stub_port = atoi(line)) <= 0) {
        fprintf(stderr, "stub: did not start (%s)\n", script);
        return -1;
    }
    return 0;
}

static int suite_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    return stub_start();
}

static int suite_cleanup(void)
{
    if (stub_stdin >= 0)
        close(stub_stdin); /* the stub exits on EOF */
    if (stub_stdout >= 0)
        close(stub_stdout);
    if (stub_pid > 0) {
        int st;
        for (int i = 0; i < 50 && waitpid(stub_pid, &st, WNOHANG) == 0; i++)
            usleep(100000);
        if (waitpid(stub_pid, &st, WNOHANG) == 0) {
            kill(stub_pid, SIGKILL);
            waitpid(stub_pid, &st, 0);
        }
    }
    return 0;
}

/* A stub URL for path, in a ring of static buffers. */
static const char *U(const char *path)
{
    static char bufs[16][256];
    static unsigned next;
    char *b = bufs[next++ % 16];
    snprintf(b, 256, "http://127.0.0.1:%d%s", stub_port, path);
    return b;
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    size_t *len = ud;
    char *buf = (char *)(len + 1);
    size_t k = s * n;
    if (*len + k < 4000) {
        memcpy(buf + *len, p, k);
        *len += k;
        buf[*len] = '\0';
    }
    return k;
}

/* POSTs the stub received at path. */
static long stub_count(const char *path)
{
    struct {
        size_t len;
        char buf[4096];
    } acc = {0, {0}};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, U("/_counts"));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &acc);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode cc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK)
        return -1;
    json_t *o = json_loads(acc.buf, 0, NULL);
    long n = (long)json_integer_value(json_object_get(o, path));
    json_decref(o);
    return n;
}

/* ---- Injected clock, RNG and sleep ---------------------------------------- */

static int64_t fake_now = 1000000;
static int64_t slept[64];
static unsigned n_slept;
static uint64_t rng_value = UINT64_MAX;

static int64_t hook_now(void *arg)
{
    (void)arg;
    return fake_now;
}

static uint64_t hook_random(void *arg)
{
    (void)arg;
    return rng_value;
}

static void hook_sleep(void *arg, int64_t ms)
{
    (void)arg;
    if (n_slept < 64)
        slept[n_slept++] = ms;
}

static evm_rpc *client_with(const char *const *urls, size_t n, unsigned failures, unsigned retries,
                            int64_t timeout_ms)
{
    evm_rpc_options o;
    evm_rpc_error err;
    evm_rpc *rpc = NULL;
    evm_rpc_options_init(&o);
    o.endpoints = urls;
    o.n_endpoints = n;
    o.breaker_failures = failures;
    o.breaker_cooldown_ms = 60000;
    o.retry_max = retries;
    o.retry_base_ms = 100;
    o.retry_cap_ms = 1000;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = 1000;
    o.chain_id = 31337;
    o.hooks.now_ms = hook_now;
    o.hooks.random_u64 = hook_random;
    o.hooks.sleep_ms = hook_sleep;
    if (evm_rpc_new(&rpc, &err, &o) != EVM_OK) {
        fprintf(stderr, "evm_rpc_new: %s\n", err.message);
        CU_FAIL_FATAL("evm_rpc_new");
    }
    return rpc;
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_failover_dead_first(void)
{
    const char *urls[] = {DEAD, U("/ok")};
    evm_rpc *rpc = client_with(urls, 2, 5, 0, 2000);
    evm_rpc_stats st;
    evm_rpc_error err;
    for (int i = 0; i < 8; i++) {
        uint64_t bn = 0;
        CU_ASSERT_EQUAL(evm_rpc_block_number(rpc, &bn, &err), EVM_OK);
        CU_ASSERT_EQUAL(bn, 16);
        CU_ASSERT_EQUAL(err.endpoint, 1);
    }
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.n_endpoints, 2);
    /* five connection attempts opened the breaker; the rest skipped it */
    CU_ASSERT_EQUAL(st.endpoints[0].requests, 5);
    CU_ASSERT_EQUAL(st.endpoints[0].failures, 5);
    CU_ASSERT_EQUAL(st.endpoints[0].refused, 3);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_OPEN);
    CU_ASSERT_EQUAL(st.endpoints[0].times_opened, 1);
    CU_ASSERT_EQUAL(st.endpoints[1].requests, 8);
    /* one thread, one pooled handle: one connection kept alive */
    CU_ASSERT_EQUAL(st.endpoints[1].connects, 1);
    CU_ASSERT_EQUAL(st.endpoints[0].connects, 0); /* refused: never connected */
    CU_ASSERT_EQUAL(st.endpoints[1].method_requests[EVM_METHOD_BLOCK_NUMBER], 8);
    CU_ASSERT_EQUAL(st.calls[EVM_METHOD_BLOCK_NUMBER], 8);
    CU_ASSERT_EQUAL(st.call_failures[EVM_METHOD_BLOCK_NUMBER], 0);
    CU_ASSERT_STRING_EQUAL(st.endpoints[0].label, DEAD);
    evm_rpc_free(rpc);
}

static void test_breaker_cycle(void)
{
    /* failfirst/4: four 500s, then proper answers; threshold 3 */
    const char *urls[] = {U("/failfirst/4"), U("/ok")};
    evm_rpc *rpc = client_with(urls, 2, 3, 0, 2000);
    evm_rpc_stats st;
    uint64_t v;
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(stub_count("/failfirst/4"), 3);
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_OPEN);
    /* cool-down not over: still skipped */
    fake_now += 59999;
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(stub_count("/failfirst/4"), 3);
    /* over: one probe (the 4th request, a 500), open again */
    fake_now += 1;
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(stub_count("/failfirst/4"), 4);
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_OPEN);
    CU_ASSERT_EQUAL(st.endpoints[0].times_opened, 2);
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(stub_count("/failfirst/4"), 4);
    /* next cool-down: the probe succeeds, closed, traffic comes back */
    fake_now += 60000;
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(v, 31337);
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, NULL), EVM_OK);
    CU_ASSERT_EQUAL(stub_count("/failfirst/4"), 6);
    evm_rpc_free(rpc);
}

static void test_all_open_no_attempt(void)
{
    const char *urls[] = {U("/503")};
    evm_rpc *rpc = client_with(urls, 1, 1, 3, 2000);
    evm_rpc_error err;
    uint64_t v;
    n_slept = 0;
    CU_ASSERT_EQUAL(evm_rpc_block_number(rpc, &v, &err), EVM_ERR_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "HTTP 503"));
    CU_ASSERT_EQUAL(stub_count("/503"), 1); /* opened at once; later passes find it open */
    CU_ASSERT_EQUAL(evm_rpc_block_number(rpc, &v, &err), EVM_ERR_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "no endpoint available"));
    CU_ASSERT_EQUAL(err.endpoint, -1);
    CU_ASSERT_EQUAL(stub_count("/503"), 1);
    evm_rpc_free(rpc);
}

static void test_retry_backoff(void)
{
    const char *urls[] = {U("/500"), DEAD};
    evm_rpc *rpc = client_with(urls, 2, 100, 3, 2000);
    evm_rpc_error err;
    evm_rpc_stats st;
    uint64_t v;
    n_slept = 0;
    rng_value = UINT64_MAX; /* UINT64_MAX % (ceiling + 1) */
    CU_ASSERT_EQUAL(evm_rpc_block_number(rpc, &v, &err), EVM_ERR_UNAVAILABLE);
    CU_ASSERT_EQUAL(stub_count("/500"), 4); /* first pass + 3 retries */
    CU_ASSERT_EQUAL(n_slept, 3);
    for (unsigned i = 0; i < n_slept && i < 3; i++) {
        int64_t ceiling = evm_backoff_ceiling_ms(100, 1000, i);
        CU_ASSERT(slept[i] >= 0 && slept[i] <= ceiling);
        CU_ASSERT_EQUAL(slept[i], (int64_t)(UINT64_MAX % (uint64_t)(ceiling + 1)));
    }
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.retries, 3);
    CU_ASSERT_EQUAL(st.endpoints[1].requests, 4); /* failed over each pass */
    CU_ASSERT_EQUAL(st.call_failures[EVM_METHOD_BLOCK_NUMBER], 1);
    /* the last failure is reported, naming the endpoint */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "endpoint 1 (http://127.0.0.1:1): eth_blockNumber:"));
    /* a read that recovers on a retry */
    const char *urls2[] = {U("/failfirst/2")};
    evm_rpc *rpc2 = client_with(urls2, 1, 100, 3, 2000);
    n_slept = 0;
    CU_ASSERT_EQUAL(evm_rpc_block_number(rpc2, &v, &err), EVM_OK);
    CU_ASSERT_EQUAL(v, 16);
    CU_ASSERT_EQUAL(n_slept, 2);
    evm_rpc_free(rpc2);
    evm_rpc_free(rpc);
}

static void test_strict_parsing(void)
{
    const char *urls[] = {U("/garbage"), U("/badid"), U("/badhex"), U("/big"), U("/ok")};
    evm_rpc *rpc = client_with(urls, 5, 100, 0, 2000);
    evm_rpc_stats st;
    evm_rpc_error err;
    uint64_t v;
    CU_ASSERT_EQUAL(evm_rpc_block_number(rpc, &v, &err), EVM_OK);
    CU_ASSERT_EQUAL(err.endpoint, 4);
    evm_rpc_stats_snapshot(rpc, &st);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(st.endpoints[i].failures, 1);
    evm_rpc_free(rpc);

    /* each one alone, for its message; the URL's query never shows */
    static const struct {
        const char *path;
        const char *msg;
    } cases[] = {
        {"/garbage?apikey=SECRET", "response is not JSON"},
        {"/badid?apikey=SECRET", "response id: expected"},
        {"/badhex?apikey=SECRET", "eth_blockNumber: result: expected a hex quantity, got \"0xzz\""},
        {"/big?apikey=SECRET", "response larger than"},
        {"/close?apikey=SECRET", "eth_blockNumber: "},
        {"/http400?apikey=SECRET", "invalid argument 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        evm_rpc_options o;
        const char *one[] = {U(cases[i].path)};
        evm_rpc_options_init(&o);
        o.endpoints = one;
        o.n_endpoints = 1;
        o.retry_max = 0;
        o.max_response_bytes = 64 * 1024;
        CU_ASSERT_EQUAL_FATAL(evm_rpc_new(&rpc, &err, &o), EVM_OK);
        evm_err e = evm_rpc_block_number(rpc, &v, &err);
        CU_ASSERT_EQUAL(e, strstr(cases[i].path, "400") ? EVM_ERR_RPC : EVM_ERR_UNAVAILABLE);
        if (!strstr(err.message, cases[i].msg) || strstr(err.message, "SECRET") ||
            strstr(err.message, "apikey")) {
            fprintf(stderr, "%s: \"%s\"\n", cases[i].path, err.message);
            CU_FAIL("message");
        }
        evm_rpc_stats_snapshot(rpc, &st);
        CU_ASSERT_PTR_NULL(strstr(st.endpoints[0].label, "SECRET"));
        evm_rpc_free(rpc);
    }
}

static void test_rpc_error_is_an_answer(void)
{
    const char *urls[] = {U("/revert"), U("/ok")};
    evm_rpc *rpc = client_with(urls, 2, 1, 3, 2000);
    long ok_before = stub_count("/ok");
    evm_rpc_error err;
    evm_rpc_stats st;
    uint8_t to[20] = {1};
    evm_call_msg msg = {.to = to};
    for (int i = 0; i < 3; i++) {
        uint8_t *out = NULL;
        size_t len = 0;
        CU_ASSERT_EQUAL(evm_rpc_call(rpc, &out, &len, &err, &msg, EVM_BLOCK_ID_LATEST), EVM_ERR_RPC);
        CU_ASSERT_PTR_NULL(out);
        CU_ASSERT_EQUAL(err.rpc_code, 3);
        CU_ASSERT_STRING_EQUAL(err.message, "execution reverted: nope");
        CU_ASSERT_TRUE_FATAL(err.has_rpc_data);
        const uint8_t *reason;
        size_t rlen;
        CU_ASSERT_EQUAL(abi_decode_revert(&reason, &rlen, err.rpc_data, err.rpc_data_len), ABI_OK);
        CU_ASSERT_EQUAL(rlen, 4);
        CU_ASSERT_EQUAL(memcmp(reason, "nope", 4), 0);
    }
    CU_ASSERT_EQUAL(stub_count("/revert"), 3); /* no retry, no failover */
    CU_ASSERT_EQUAL(stub_count("/ok"), ok_before);
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(st.endpoints[0].rpc_errors, 3);
    CU_ASSERT_EQUAL(st.endpoints[0].failures, 0);
    CU_ASSERT_EQUAL(st.call_failures[EVM_METHOD_CALL], 0);
    evm_rpc_free(rpc);
}

static void test_send_never_resent(void)
{
    static const uint8_t raw[] = {0x02, 0xc0, 0x01, 0x02, 0x03};
    uint8_t hash[32], want[32];
    evm_rpc_error err;
    keccak256(want, raw, sizeof raw);

    /* a timeout after sending: unknown, one request, no failover, no retry */
    const char *slow[] = {U("/slow/1500"), U("/ok")};
    evm_rpc *rpc = client_with(slow, 2, 5, 3, 300);
    long ok_before = stub_count("/ok");
    n_slept = 0;
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw), EVM_SEND_UNKNOWN);
    CU_ASSERT_EQUAL(memcmp(hash, want, 32), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "timed out after sending"));
    CU_ASSERT_EQUAL(n_slept, 0);
    CU_ASSERT_EQUAL(stub_count("/slow/1500"), 1);
    CU_ASSERT_EQUAL(stub_count("/ok"), ok_before);
    evm_rpc_free(rpc);

    /* HTTP 5xx after sending: unknown too */
    const char *five[] = {U("/failfirst/100"), U("/ok")};
    rpc = client_with(five, 2, 5, 3, 2000);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw), EVM_SEND_UNKNOWN);
    CU_ASSERT_EQUAL(stub_count("/failfirst/100"), 1);
    evm_rpc_free(rpc);

    /* refused connection and 429 never delivered it: fail over */
    const char *failover[] = {DEAD, U("/429"), U("/known")};
    rpc = client_with(failover, 3, 5, 3, 2000);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw),
                    EVM_SEND_ALREADY_KNOWN);
    CU_ASSERT_EQUAL(memcmp(hash, want, 32), 0);
    CU_ASSERT_EQUAL(stub_count("/429"), 1);
    CU_ASSERT_EQUAL(stub_count("/known"), 1);
    CU_ASSERT_STRING_EQUAL(err.message, "already known");
    evm_rpc_free(rpc);

    /* nothing reachable: not sent */
    const char *dead[] = {DEAD};
    rpc = client_with(dead, 1, 5, 3, 2000);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw), EVM_SEND_NOT_SENT);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, 0), EVM_SEND_INVALID);
    evm_rpc_free(rpc);

    /* garbage after sending: unknown (the node may have taken it) */
    const char *garbage[] = {U("/garbage"), U("/known")};
    rpc = client_with(garbage, 2, 5, 3, 2000);
    long before = stub_count("/known");
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw), EVM_SEND_UNKNOWN);
    CU_ASSERT_EQUAL(stub_count("/known"), before);
    evm_rpc_free(rpc);

    /* /ok does not know eth_sendRawTransaction: a plain rejection */
    const char *ok[] = {U("/ok")};
    rpc = client_with(ok, 1, 5, 3, 2000);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hash, &err, raw, sizeof raw), EVM_SEND_REJECTED);
    CU_ASSERT_EQUAL(err.rpc_code, -32601);
    evm_rpc_free(rpc);
}

static void test_verify_chain(void)
{
    const char *urls[] = {U("/chain/1"), DEAD, U("/ok")};
    evm_rpc *rpc = client_with(urls, 3, 5, 0, 2000);
    evm_rpc_error err;
    evm_rpc_stats st;
    uint64_t v;
    CU_ASSERT_EQUAL(evm_rpc_verify_chain(rpc, &err), EVM_ERR_CHAIN_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "endpoint 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "serves chain 1"));
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_TRUE(st.endpoints[0].disabled);
    CU_ASSERT_FALSE(st.endpoints[2].disabled);
    long before = stub_count("/chain/1");
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &v, &err), EVM_OK);
    CU_ASSERT_EQUAL(v, 31337);
    CU_ASSERT_EQUAL(stub_count("/chain/1"), before);
    evm_rpc_free(rpc);

    const char *good[] = {U("/ok"), U("/chain/31337")};
    rpc = client_with(good, 2, 5, 0, 2000);
    CU_ASSERT_EQUAL(evm_rpc_verify_chain(rpc, &err), EVM_OK);
    evm_rpc_free(rpc);
    const char *none[] = {DEAD};
    rpc = client_with(none, 1, 5, 0, 2000);
    CU_ASSERT_EQUAL(evm_rpc_verify_chain(rpc, &err), EVM_ERR_UNAVAILABLE);
    evm_rpc_free(rpc);
}

static void test_typed_against_stub(void)
{
    const char *urls[] = {U("/ok")};
    evm_rpc *rpc = client_with(urls, 1, 5, 0, 2000);
    evm_rpc_error err;
    uint8_t a[20] = {0}, t[20] = {0};
    u256 bal;
    char dec[U256_DEC_MAX];
    CU_ASSERT_EQUAL(evm_rpc_get_balance(rpc, &bal, &err, a, EVM_BLOCK_ID_AT(5)), EVM_OK);
    u256_to_dec(dec, &bal);
    CU_ASSERT_STRING_EQUAL(dec, "42");
    CU_ASSERT_EQUAL(evm_rpc_erc20_balance_of(rpc, &bal, &err, t, a, EVM_BLOCK_ID_LATEST), EVM_OK);
    u256_to_dec(dec, &bal);
    CU_ASSERT_STRING_EQUAL(dec, "42");
    json_t *res = NULL;
    CU_ASSERT_EQUAL(evm_rpc_call_json(rpc, &res, &err, "web3_clientVersion", NULL), EVM_ERR_RPC);
    CU_ASSERT_EQUAL(err.rpc_code, -32601);
    CU_ASSERT_PTR_NULL(res);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_call_json(rpc, &res, &err, "eth_chainId", NULL), EVM_OK);
    CU_ASSERT_TRUE_FATAL(json_is_string(res));
    CU_ASSERT_STRING_EQUAL(json_string_value(res), "0x7a69");
    json_decref(res);
    evm_rpc_free(rpc);
}

typedef struct {
    evm_rpc *rpc;
    int ok;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    for (int i = 0; i < 50; i++) {
        uint64_t v;
        if (evm_rpc_block_number(w->rpc, &v, NULL) == EVM_OK && v == 16)
            w->ok++;
    }
    return NULL;
}

static void test_threads(void)
{
    const char *urls[] = {U("/ok")};
    evm_rpc *rpc = client_with(urls, 1, 5, 0, 5000);
    pthread_t th[4];
    worker_arg w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_arg){rpc, 0};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += w[i].ok;
    }
    CU_ASSERT_EQUAL(total, 200);
    evm_rpc_stats st;
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].requests, 200);
    CU_ASSERT(st.endpoints[0].connects >= 1 && st.endpoints[0].connects <= 8);
    evm_rpc_free(rpc);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"failover_dead_first", test_failover_dead_first},
        {"breaker_cycle", test_breaker_cycle},
        {"all_open_no_attempt", test_all_open_no_attempt},
        {"retry_backoff", test_retry_backoff},
        {"strict_parsing", test_strict_parsing},
        {"rpc_error_is_an_answer", test_rpc_error_is_an_answer},
        {"send_never_resent", test_send_never_resent},
        {"verify_chain", test_verify_chain},
        {"typed_against_stub", test_typed_against_stub},
        {"threads", test_threads},
        {NULL, NULL},
    };
    test_add_suite_with("evm_rpc_stub", suite_init, suite_cleanup, cases);
}
