#include "evm_rpc.h"
#include "evm_rpc_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "coffer_version.h"
#include "jsonrpc.h"
#include "log.h"

/* Longest endpoint URL accepted. */
#define EVM_RPC_URL_MAX 2048
/* A pooled handle's response buffer above this is freed when it returns. */
#define EVM_RPC_KEEP_BUFFER (1024u * 1024u)

/* ---- Method table ------------------------------------------------------- */

#define EVM_MF_READ 1u /* idempotent: failed over and retried */

static const struct {
    const char *name;
    unsigned flags;
} evm_methods[EVM_METHOD_COUNT] = {
    [EVM_METHOD_CHAIN_ID] = {"eth_chainId", EVM_MF_READ},
    [EVM_METHOD_BLOCK_NUMBER] = {"eth_blockNumber", EVM_MF_READ},
    [EVM_METHOD_GET_BALANCE] = {"eth_getBalance", EVM_MF_READ},
    [EVM_METHOD_CALL] = {"eth_call", EVM_MF_READ},
    [EVM_METHOD_GET_TRANSACTION_COUNT] = {"eth_getTransactionCount", EVM_MF_READ},
    [EVM_METHOD_GET_TRANSACTION_RECEIPT] = {"eth_getTransactionReceipt", EVM_MF_READ},
    [EVM_METHOD_GET_TRANSACTION_BY_HASH] = {"eth_getTransactionByHash", EVM_MF_READ},
    [EVM_METHOD_GET_LOGS] = {"eth_getLogs", EVM_MF_READ},
    [EVM_METHOD_ESTIMATE_GAS] = {"eth_estimateGas", EVM_MF_READ},
    [EVM_METHOD_FEE_HISTORY] = {"eth_feeHistory", EVM_MF_READ},
    [EVM_METHOD_GET_BLOCK_BY_NUMBER] = {"eth_getBlockByNumber", EVM_MF_READ},
    [EVM_METHOD_GAS_PRICE] = {"eth_gasPrice", EVM_MF_READ},
    [EVM_METHOD_MAX_PRIORITY_FEE] = {"eth_maxPriorityFeePerGas", EVM_MF_READ},
    [EVM_METHOD_SEND_RAW_TRANSACTION] = {"eth_sendRawTransaction", 0},
    [EVM_METHOD_OTHER] = {"other", 0},
};

const char *evm_method_name(evm_method m)
{
    return (unsigned)m < EVM_METHOD_COUNT ? evm_methods[m].name : "?";
}

bool evm_method_is_read(evm_method m)
{
    return (unsigned)m < EVM_METHOD_COUNT && (evm_methods[m].flags & EVM_MF_READ);
}

static evm_method evm_method_lookup(const char *name)
{
    for (unsigned m = 0; m < EVM_METHOD_OTHER; m++)
        if (strcmp(evm_methods[m].name, name) == 0)
            return (evm_method)m;
    return EVM_METHOD_OTHER;
}

const char *evm_err_name(evm_err e)
{
    switch (e) {
    case EVM_OK: return "ok";
    case EVM_ERR_INVALID_ARG: return "invalid_arg";
    case EVM_ERR_NOMEM: return "nomem";
    case EVM_ERR_UNAVAILABLE: return "unavailable";
    case EVM_ERR_UNKNOWN_OUTCOME: return "unknown_outcome";
    case EVM_ERR_RPC: return "rpc";
    case EVM_ERR_ABI: return "abi";
    case EVM_ERR_CHAIN_MISMATCH: return "chain_mismatch";
    case EVM_ERR_FEE: return "fee";
    }
    return "?";
}

/* ---- State -------------------------------------------------------------- */

typedef struct {
    char *url;                              /* secret-ish: never logged */
    char label[EVM_RPC_LABEL_MAX];
    evm_breaker breaker;                    /* under evm_rpc.mu */
    bool disabled;                          /* under evm_rpc.mu */
    atomic_uint_fast64_t requests, failures, rpc_errors, refused, connects;
    atomic_uint_fast64_t m_requests[EVM_METHOD_COUNT];
    atomic_uint_fast64_t m_failures[EVM_METHOD_COUNT];
} evm_endpoint;

/* One curl easy handle with its buffers; used by one thread at a time. */
typedef struct {
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
    char *buf;
    size_t len, cap, limit;
    bool overflow;
} evm_conn;

struct evm_rpc {
    evm_rpc_options opt;                    /* endpoints member cleared */
    size_t n;
    evm_endpoint ep[EVM_RPC_MAX_ENDPOINTS];
    pthread_mutex_t mu;                     /* breakers, disabled flags */
    pthread_mutex_t pool_mu;
    evm_conn **idle;
    size_t n_idle;
    struct curl_slist *headers;
    char user_agent[64];
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t calls[EVM_METHOD_COUNT];
    atomic_uint_fast64_t call_failures[EVM_METHOD_COUNT];
    atomic_uint_fast64_t retries;
};

void evm_rpc_err_setf(evm_rpc_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void evm_rpc_err_clear(evm_rpc_error *err)
{
    if (!err)
        return;
    err->message[0] = '\0';
    err->rpc_code = 0;
    err->has_rpc_data = false;
    err->rpc_data_len = 0;
    err->endpoint = -1;
    err->http_status = 0;
}

static void evm_count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- Default hooks ------------------------------------------------------ */

static int64_t evm_rpc_now_ms(const evm_rpc *rpc)
{
    if (rpc->opt.hooks.now_ms)
        return rpc->opt.hooks.now_ms(rpc->opt.hooks.arg);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t evm_rpc_random(const evm_rpc *rpc)
{
    if (rpc->opt.hooks.random_u64)
        return rpc->opt.hooks.random_u64(rpc->opt.hooks.arg);
    uint64_t r;
    randombytes_buf(&r, sizeof r);
    return r;
}

static void evm_rpc_sleep(const evm_rpc *rpc, int64_t ms)
{
    if (rpc->opt.hooks.sleep_ms) {
        rpc->opt.hooks.sleep_ms(rpc->opt.hooks.arg, ms);
        return;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- Set-up ------------------------------------------------------------- */

void evm_rpc_options_init(evm_rpc_options *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 3000;
    o->timeout_ms = 10000;
    o->breaker_failures = 5;
    o->breaker_cooldown_ms = 60000;
    o->retry_max = 2;
    o->retry_base_ms = 100;
    o->retry_cap_ms = 2000;
    o->max_response_bytes = 32u * 1024 * 1024;
    o->max_idle_handles = 8;
}

int evm_rpc_options_from_config(evm_rpc_options *o, evm_fee_policy *policy, bool *configured,
                                char *errbuf, size_t errbuf_len, const config *cfg)
{
    int64_t v;
    const char *s;
    const char *const *items;
    size_t n;
    if (config_get_int(cfg, &v, "evm.chain_id") == 0)
        o->chain_id = (uint64_t)v;
    if (config_get_list(cfg, &items, &n, "evm.endpoints") == 0) {
        o->endpoints = items;
        o->n_endpoints = n;
    }
    if (config_get_duration_ms(cfg, &v, "evm.connect_timeout") == 0)
        o->connect_timeout_ms = v;
    if (config_get_duration_ms(cfg, &v, "evm.timeout") == 0)
        o->timeout_ms = v;
    if (config_get_int(cfg, &v, "evm.breaker_failures") == 0)
        o->breaker_failures = (unsigned)v;
    if (config_get_duration_ms(cfg, &v, "evm.breaker_cooldown") == 0)
        o->breaker_cooldown_ms = v;
    if (config_get_int(cfg, &v, "evm.retry_max") == 0)
        o->retry_max = (unsigned)v;
    if (config_get_duration_ms(cfg, &v, "evm.retry_base") == 0)
        o->retry_base_ms = v;
    if (config_get_duration_ms(cfg, &v, "evm.retry_cap") == 0)
        o->retry_cap_ms = v;
    if (config_get_int(cfg, &v, "evm.max_response_bytes") == 0)
        o->max_response_bytes = (size_t)v;
    if (config_get_int(cfg, &v, "evm.fee_base_multiplier") == 0)
        policy->base_fee_multiplier = (unsigned)v;
    if (config_get_int(cfg, &v, "evm.fee_reward_percentile") == 0)
        policy->reward_percentile = (unsigned)v;
    if (config_get_int(cfg, &v, "evm.fee_history_blocks") == 0)
        policy->history_blocks = (unsigned)v;
    if (config_get_string(cfg, &s, "evm.min_priority_fee") == 0 &&
        u256_from_dec_str(&policy->min_priority_fee, s) != 0) {
        snprintf(errbuf, errbuf_len, "evm.min_priority_fee: expected a decimal amount of wei, "
                 "got \"%.40s\"", s);
        return -1;
    }
    *configured = o->n_endpoints > 0;
    return 0;
}

/* "scheme://host[:port]" of url, without user info, path or query.
 * Returns 0, or -1 when url is not http:// or https://. */
static int evm_url_label(char out[EVM_RPC_LABEL_MAX], const char *url)
{
    size_t scheme_len;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme_len = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme_len = 8;
    else
        return -1;
    const char *auth = url + scheme_len;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    if (at) {
        auth_len -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    if (auth_len == 0)
        return -1;
    snprintf(out, EVM_RPC_LABEL_MAX, "%.*s%.*s", (int)scheme_len, url,
             (int)(auth_len < 80 ? auth_len : 80), auth);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z' && p < out + scheme_len)
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

static pthread_once_t evm_rpc_once = PTHREAD_ONCE_INIT;
static int evm_rpc_global_rc = -1;

static void evm_rpc_global_init(void)
{
    if (sodium_init() < 0)
        return;
    evm_rpc_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static evm_err evm_rpc_check_options(evm_rpc_error *err, const evm_rpc_options *o)
{
    if (o->n_endpoints == 0 || o->n_endpoints > EVM_RPC_MAX_ENDPOINTS || !o->endpoints) {
        evm_rpc_err_setf(err, "evm: %zu endpoints configured, expected 1..%d", o->n_endpoints,
                     EVM_RPC_MAX_ENDPOINTS);
        return EVM_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < o->n_endpoints; i++) {
        char label[EVM_RPC_LABEL_MAX];
        const char *u = o->endpoints[i];
        if (!u || strlen(u) > EVM_RPC_URL_MAX || evm_url_label(label, u) != 0) {
            evm_rpc_err_setf(err, "evm: endpoint %zu is not an http:// or https:// URL", i);
            return EVM_ERR_INVALID_ARG;
        }
        for (const char *p = u; *p; p++) {
            if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
                evm_rpc_err_setf(err, "evm: endpoint %zu (%s) contains a blank or control character",
                             i, label);
                return EVM_ERR_INVALID_ARG;
            }
        }
    }
    if (o->connect_timeout_ms <= 0 || o->timeout_ms <= 0) {
        evm_rpc_err_setf(err, "evm: timeouts must be positive");
        return EVM_ERR_INVALID_ARG;
    }
    if (o->breaker_failures == 0 || o->breaker_cooldown_ms < 0) {
        evm_rpc_err_setf(err, "evm: breaker needs failures >= 1 and a cool-down >= 0");
        return EVM_ERR_INVALID_ARG;
    }
    if (o->retry_base_ms < 0 || o->retry_cap_ms < 0 || o->retry_max > 100) {
        evm_rpc_err_setf(err, "evm: retry base and cap must be >= 0, retry_max <= 100");
        return EVM_ERR_INVALID_ARG;
    }
    if (o->max_response_bytes < 1024) {
        evm_rpc_err_setf(err, "evm: max_response_bytes must be at least 1024");
        return EVM_ERR_INVALID_ARG;
    }
    return EVM_OK;
}

evm_err evm_rpc_new(evm_rpc **out, evm_rpc_error *err, const evm_rpc_options *opts)
{
    *out = NULL;
    evm_rpc_err_clear(err);
    evm_err e = evm_rpc_check_options(err, opts);
    if (e != EVM_OK)
        return e;
    pthread_once(&evm_rpc_once, evm_rpc_global_init);
    if (evm_rpc_global_rc != 0) {
        evm_rpc_err_setf(err, "evm: libcurl or libsodium initialisation failed");
        return EVM_ERR_NOMEM;
    }
    evm_rpc *rpc = calloc(1, sizeof *rpc);
    if (!rpc)
        goto nomem;
    rpc->opt = *opts;
    rpc->opt.endpoints = NULL;
    rpc->n = opts->n_endpoints;
    pthread_mutex_init(&rpc->mu, NULL);
    pthread_mutex_init(&rpc->pool_mu, NULL);
    atomic_init(&rpc->next_id, 1);
    for (size_t i = 0; i < rpc->n; i++) {
        evm_endpoint *ep = &rpc->ep[i];
        ep->url = strdup(opts->endpoints[i]);
        if (!ep->url)
            goto nomem;
        (void)evm_url_label(ep->label, ep->url); /* checked above */
        evm_breaker_init(&ep->breaker, opts->breaker_failures, opts->breaker_cooldown_ms);
    }
    if (opts->max_idle_handles > 0) {
        rpc->idle = calloc(opts->max_idle_handles, sizeof *rpc->idle);
        if (!rpc->idle)
            goto nomem;
    }
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Accept: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        struct curl_slist *h = curl_slist_append(rpc->headers, headers[i]);
        if (!h)
            goto nomem;
        rpc->headers = h;
    }
    snprintf(rpc->user_agent, sizeof rpc->user_agent, "coffer/%s", COFFER_VERSION);
    *out = rpc;
    return EVM_OK;
nomem:
    evm_rpc_free(rpc);
    evm_rpc_err_setf(err, "evm: out of memory");
    return EVM_ERR_NOMEM;
}

static void evm_conn_free(evm_conn *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c->buf);
    free(c);
}

void evm_rpc_free(evm_rpc *rpc)
{
    if (!rpc)
        return;
    for (size_t i = 0; i < rpc->n_idle; i++)
        evm_conn_free(rpc->idle[i]);
    free(rpc->idle);
    for (size_t i = 0; i < EVM_RPC_MAX_ENDPOINTS; i++)
        free(rpc->ep[i].url);
    curl_slist_free_all(rpc->headers);
    pthread_mutex_destroy(&rpc->mu);
    pthread_mutex_destroy(&rpc->pool_mu);
    free(rpc);
}

/* ---- Connection pool ---------------------------------------------------- */

static size_t evm_conn_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    evm_conn *c = userdata;
    size_t n = size * nmemb;
    if (n > c->limit - c->len) {
        c->overflow = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b)
            return 0;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, ptr, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return n;
}

static evm_conn *evm_conn_new(const evm_rpc *rpc)
{
    evm_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = curl_easy_init();
    if (!c->h)
        goto fail;
    long maxconn = rpc->n > 5 ? (long)rpc->n : 5;
    if (curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_MAXCONNECTS, maxconn) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, rpc->headers) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_USERAGENT, rpc->user_agent) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)rpc->opt.connect_timeout_ms) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)rpc->opt.timeout_ms) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, evm_conn_write) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK)
        goto fail;
    c->limit = rpc->opt.max_response_bytes;
    return c;
fail:
    evm_conn_free(c);
    return NULL;
}

static evm_conn *evm_conn_get(evm_rpc *rpc)
{
    evm_conn *c = NULL;
    pthread_mutex_lock(&rpc->pool_mu);
    if (rpc->n_idle > 0)
        c = rpc->idle[--rpc->n_idle];
    pthread_mutex_unlock(&rpc->pool_mu);
    return c ? c : evm_conn_new(rpc);
}

static void evm_conn_put(evm_rpc *rpc, evm_conn *c)
{
    if (c->cap > EVM_RPC_KEEP_BUFFER) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    c->len = 0;
    pthread_mutex_lock(&rpc->pool_mu);
    if (rpc->n_idle < rpc->opt.max_idle_handles) {
        rpc->idle[rpc->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&rpc->pool_mu);
    evm_conn_free(c);
}

/* ---- One HTTP attempt --------------------------------------------------- */

typedef enum {
    EVM_ATT_OK,        /* result parsed */
    EVM_ATT_RPC_ERROR, /* JSON-RPC error answer */
    EVM_ATT_NOT_SENT,  /* failure; the request certainly did not reach a node */
    EVM_ATT_SENT,      /* failure; the request may have reached a node */
    EVM_ATT_LOCAL,     /* our own failure (memory); the endpoint is not blamed */
} evm_attempt;

/* Copies a JSON-RPC error answer into err. */
static void evm_err_from_rpc(evm_rpc_error *err, const jsonrpc_response *r)
{
    err->rpc_code = r->error_code;
    const json_t *d = r->error_data;
    size_t got = 0;
    if (json_is_string(d) &&
        jsonrpc_data(err->rpc_data, sizeof err->rpc_data, &got, NULL, d, "data") == 0) {
        err->has_rpc_data = true;
        err->rpc_data_len = got;
        evm_rpc_err_setf(err, "%s", r->error_message);
    } else if (json_is_string(d) && json_string_length(d) > 0) {
        /* Some nodes put the detail in a text "data" (e.g. "tx already exist"). */
        evm_rpc_err_setf(err, "%s: %s", r->error_message, json_string_value(d));
    } else {
        evm_rpc_err_setf(err, "%s", r->error_message);
    }
}

static evm_attempt evm_rpc_attempt(evm_rpc *rpc, evm_rpc_error *err, size_t i, const char *method,
                                   const json_t *params, evm_result_fn fn, void *ctx)
{
    const evm_endpoint *ep = &rpc->ep[i];
    uint64_t id = atomic_fetch_add_explicit(&rpc->next_id, 1, memory_order_relaxed) % JSONRPC_ID_MAX;
    jsonrpc_err je;
    char *body = NULL;
    size_t body_len;
    evm_attempt a;
    evm_conn *c = NULL;
    jsonrpc_response resp = {0};

    err->endpoint = (int)i;
    err->http_status = 0;
    if (jsonrpc_request_encode(&body, &body_len, &je, id, method, params) != 0) {
        evm_rpc_err_setf(err, "%s: %s", method, je.msg);
        return EVM_ATT_LOCAL;
    }
    c = evm_conn_get(rpc);
    if (!c) {
        evm_rpc_err_setf(err, "%s: cannot create a curl handle (out of memory)", method);
        a = EVM_ATT_LOCAL;
        goto out;
    }
    c->len = 0;
    c->overflow = false;
    c->errbuf[0] = '\0';
    if (curl_easy_setopt(c->h, CURLOPT_URL, ep->url) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK) {
        evm_rpc_err_setf(err, "%s: cannot set up the request (out of memory)", method);
        a = EVM_ATT_LOCAL;
        goto out;
    }
    CURLcode cc = curl_easy_perform(c->h);
    long status = 0, connects = 0;
    (void)curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
        atomic_fetch_add_explicit(&rpc->ep[i].connects, (uint_fast64_t)connects, memory_order_relaxed);
    err->http_status = status;
    if (cc != CURLE_OK) {
        curl_off_t pretransfer = 0;
        (void)curl_easy_getinfo(c->h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        bool not_sent = cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ||
                        cc == CURLE_COULDNT_CONNECT || cc == CURLE_SSL_CONNECT_ERROR ||
                        cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                        cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_UNSUPPORTED_PROTOCOL ||
                        cc == CURLE_URL_MALFORMAT ||
                        (cc == CURLE_OPERATION_TIMEDOUT && pretransfer == 0);
        if (c->overflow)
            evm_rpc_err_setf(err, "endpoint %zu (%s): %s: response larger than %zu bytes", i, ep->label,
                         method, rpc->opt.max_response_bytes);
        else if (cc == CURLE_OPERATION_TIMEDOUT)
            evm_rpc_err_setf(err, "endpoint %zu (%s): %s: timed out %s (%s)", i, ep->label, method,
                         not_sent ? "connecting" : "after sending", c->errbuf);
        else
            evm_rpc_err_setf(err, "endpoint %zu (%s): %s: %s%s%s", i, ep->label, method,
                         curl_easy_strerror(cc), c->errbuf[0] ? ": " : "", c->errbuf);
        a = not_sent ? EVM_ATT_NOT_SENT : EVM_ATT_SENT;
        goto out;
    }
    if (status == 429) {
        evm_rpc_err_setf(err, "endpoint %zu (%s): %s: HTTP 429 (rate limited)", i, ep->label, method);
        a = EVM_ATT_NOT_SENT;
        goto out;
    }
    if (status >= 500) {
        evm_rpc_err_setf(err, "endpoint %zu (%s): %s: HTTP %ld", i, ep->label, method, status);
        a = EVM_ATT_SENT;
        goto out;
    }
    if (jsonrpc_response_parse(&resp, &je, c->buf, c->len, id) != 0) {
        if (status < 200 || status > 299)
            evm_rpc_err_setf(err, "endpoint %zu (%s): %s: HTTP %ld", i, ep->label, method, status);
        else
            evm_rpc_err_setf(err, "endpoint %zu (%s): %s: %s", i, ep->label, method, je.msg);
        a = EVM_ATT_SENT;
        goto out;
    }
    if (resp.is_error) {
        /* An answer from the node, whatever the HTTP status (some nodes
         * send their errors with 400). */
        evm_err_from_rpc(err, &resp);
        a = EVM_ATT_RPC_ERROR;
        goto out;
    }
    if (status < 200 || status > 299) {
        evm_rpc_err_setf(err, "endpoint %zu (%s): %s: HTTP %ld with a result", i, ep->label, method,
                     status);
        a = EVM_ATT_SENT;
        goto out;
    }
    if (fn(ctx, &je, resp.result) != 0) {
        evm_rpc_err_setf(err, "endpoint %zu (%s): %s: %s", i, ep->label, method, je.msg);
        a = EVM_ATT_SENT;
        goto out;
    }
    a = EVM_ATT_OK;
out:
    jsonrpc_response_dispose(&resp);
    if (c)
        evm_conn_put(rpc, c);
    free(body);
    return a;
}

/* ---- Breakers and the call loop ----------------------------------------- */

static void evm_log_transition(const evm_endpoint *ep, evm_breaker_state from, evm_breaker_state to)
{
    if (from == to)
        return;
    if (to == EVM_BREAKER_OPEN)
        log_warn("evm.breaker.open", "endpoint=%s from=%s", ep->label, evm_breaker_state_name(from));
    else if (to == EVM_BREAKER_HALF_OPEN)
        log_info("evm.breaker.half_open", "endpoint=%s", ep->label);
    else
        log_info("evm.breaker.closed", "endpoint=%s", ep->label);
}

static bool evm_rpc_admit(evm_rpc *rpc, size_t i)
{
    evm_endpoint *ep = &rpc->ep[i];
    int64_t now = evm_rpc_now_ms(rpc);
    pthread_mutex_lock(&rpc->mu);
    evm_breaker_state from = ep->breaker.state;
    bool ok = !ep->disabled && evm_breaker_admit(&ep->breaker, now);
    evm_breaker_state to = ep->breaker.state;
    pthread_mutex_unlock(&rpc->mu);
    evm_log_transition(ep, from, to);
    if (!ok)
        evm_count(&ep->refused);
    return ok;
}

static void evm_rpc_settle(evm_rpc *rpc, size_t i, evm_method m, const char *method,
                           evm_attempt a, const evm_rpc_error *err)
{
    evm_endpoint *ep = &rpc->ep[i];
    int64_t now = evm_rpc_now_ms(rpc);
    pthread_mutex_lock(&rpc->mu);
    evm_breaker_state from = ep->breaker.state;
    if (a == EVM_ATT_LOCAL)
        evm_breaker_cancel(&ep->breaker);
    else
        (void)evm_breaker_record(&ep->breaker, a == EVM_ATT_OK || a == EVM_ATT_RPC_ERROR, now);
    evm_breaker_state to = ep->breaker.state;
    pthread_mutex_unlock(&rpc->mu);
    if (a == EVM_ATT_LOCAL)
        return;
    evm_count(&ep->requests);
    evm_count(&ep->m_requests[m]);
    if (a == EVM_ATT_RPC_ERROR)
        evm_count(&ep->rpc_errors);
    if (a == EVM_ATT_NOT_SENT || a == EVM_ATT_SENT) {
        char q[EVM_RPC_MESSAGE_MAX + 8];
        evm_count(&ep->failures);
        evm_count(&ep->m_failures[m]);
        log_warn("evm.rpc.fail", "endpoint=%s method=%s sent=%s http=%ld reason=%s", ep->label,
                 method, a == EVM_ATT_SENT ? "maybe" : "no", err->http_status,
                 log_quote(q, sizeof q, err->message));
    }
    evm_log_transition(ep, from, to);
}

/* Runs one call: failover over the endpoints (only `only` when >= 0),
 * passes and back-off for reads. */
static evm_err evm_rpc_invoke(evm_rpc *rpc, evm_rpc_error *err, evm_method m, const char *method,
                              const json_t *params, evm_result_fn fn, void *ctx, int only)
{
    bool read = evm_method_is_read(m);
    bool failed = false;
    evm_count(&rpc->calls[m]);
    for (unsigned pass = 0;; pass++) {
        bool tried = false;
        for (size_t i = 0; i < rpc->n; i++) {
            if (only >= 0 && (size_t)only != i)
                continue;
            if (!evm_rpc_admit(rpc, i))
                continue;
            tried = true;
            evm_attempt a = evm_rpc_attempt(rpc, err, i, method, params, fn, ctx);
            evm_rpc_settle(rpc, i, m, method, a, err);
            switch (a) {
            case EVM_ATT_OK:
                return EVM_OK;
            case EVM_ATT_RPC_ERROR:
                return EVM_ERR_RPC;
            case EVM_ATT_LOCAL:
                evm_count(&rpc->call_failures[m]);
                return EVM_ERR_NOMEM;
            case EVM_ATT_SENT:
                failed = true;
                if (!read) {
                    evm_count(&rpc->call_failures[m]);
                    return EVM_ERR_UNKNOWN_OUTCOME;
                }
                break;
            case EVM_ATT_NOT_SENT:
                failed = true;
                break;
            }
        }
        if (!tried) {
            if (!failed) {
                err->endpoint = -1;
                evm_rpc_err_setf(err, "%s: no endpoint available (%zu configured: circuit breakers "
                             "open or endpoints disabled)", method, rpc->n);
            }
            break;
        }
        if (!read || pass >= rpc->opt.retry_max)
            break;
        int64_t delay = evm_backoff_delay_ms(rpc->opt.retry_base_ms, rpc->opt.retry_cap_ms, pass,
                                             evm_rpc_random(rpc));
        evm_count(&rpc->retries);
        evm_rpc_sleep(rpc, delay);
    }
    evm_count(&rpc->call_failures[m]);
    return EVM_ERR_UNAVAILABLE;
}

/* ---- Calls ---------------------------------------------------------------- */

static evm_err evm_nomem(evm_rpc *rpc, evm_rpc_error *err, evm_method m)
{
    evm_count(&rpc->calls[m]);
    evm_count(&rpc->call_failures[m]);
    evm_rpc_err_setf(err, "%s: out of memory building the parameters", evm_method_name(m));
    return EVM_ERR_NOMEM;
}

evm_err evm_rpc_run(evm_rpc *rpc, evm_rpc_error *err, evm_method m, json_t *params,
                    evm_result_fn fn, void *ctx)
{
    evm_rpc_error local;
    if (!err)
        err = &local;
    evm_rpc_err_clear(err);
    if (!params)
        return evm_nomem(rpc, err, m);
    evm_err e = evm_rpc_invoke(rpc, err, m, evm_method_name(m), params, fn, ctx, -1);
    json_decref(params);
    return e;
}

static int evm_res_u64(void *ctx, jsonrpc_err *err, const json_t *r)
{
    return jsonrpc_quantity_u64(ctx, err, r, "result");
}

static int evm_res_json(void *ctx, jsonrpc_err *err, const json_t *r)
{
    (void)err;
    *(json_t **)ctx = json_incref((json_t *)(uintptr_t)r);
    return 0;
}

evm_err evm_rpc_call_json(evm_rpc *rpc, json_t **result, evm_rpc_error *err, const char *method,
                          const json_t *params)
{
    evm_rpc_error local;
    if (!err)
        err = &local;
    evm_rpc_err_clear(err);
    *result = NULL;
    if (params && !json_is_array(params)) {
        evm_rpc_err_setf(err, "%s: params must be an array", method);
        return EVM_ERR_INVALID_ARG;
    }
    return evm_rpc_invoke(rpc, err, evm_method_lookup(method), method, params, evm_res_json,
                          result, -1);
}

evm_err evm_rpc_verify_chain(evm_rpc *rpc, evm_rpc_error *err)
{
    evm_rpc_error local;
    if (!err)
        err = &local;
    evm_rpc_err_clear(err);
    if (rpc->opt.chain_id == 0) {
        evm_rpc_err_setf(err, "evm: no chain id configured to verify against");
        return EVM_ERR_INVALID_ARG;
    }
    json_t *params = json_array();
    if (!params)
        return evm_nomem(rpc, err, EVM_METHOD_CHAIN_ID);
    size_t answered = 0;
    char mismatched[EVM_RPC_MESSAGE_MAX] = "";
    size_t off = 0;
    for (size_t i = 0; i < rpc->n; i++) {
        uint64_t id = 0;
        evm_rpc_error e1;
        evm_rpc_err_clear(&e1);
        if (evm_rpc_invoke(rpc, &e1, EVM_METHOD_CHAIN_ID, "eth_chainId", params, evm_res_u64,
                           &id, (int)i) != EVM_OK)
            continue;
        answered++;
        if (id == rpc->opt.chain_id)
            continue;
        pthread_mutex_lock(&rpc->mu);
        rpc->ep[i].disabled = true;
        pthread_mutex_unlock(&rpc->mu);
        log_error("evm.chain.mismatch", "endpoint=%s chain_id=%" PRIu64 " expected=%" PRIu64,
                  rpc->ep[i].label, id, rpc->opt.chain_id);
        int w = snprintf(mismatched + off, sizeof mismatched - off, "%sendpoint %zu (%s) serves "
                         "chain %" PRIu64, off ? "; " : "", i, rpc->ep[i].label, id);
        if (w > 0 && (size_t)w < sizeof mismatched - off)
            off += (size_t)w;
    }
    json_decref(params);
    if (off > 0) {
        evm_rpc_err_setf(err, "%s, expected %" PRIu64 " (disabled)", mismatched, rpc->opt.chain_id);
        return EVM_ERR_CHAIN_MISMATCH;
    }
    if (answered == 0) {
        evm_rpc_err_setf(err, "eth_chainId: no endpoint answered");
        return EVM_ERR_UNAVAILABLE;
    }
    return EVM_OK;
}

/* ---- Statistics --------------------------------------------------------- */

static uint64_t evm_load(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void evm_rpc_stats_snapshot(evm_rpc *rpc, evm_rpc_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_endpoints = rpc->n;
    for (size_t i = 0; i < rpc->n; i++) {
        evm_endpoint *ep = &rpc->ep[i];
        evm_rpc_endpoint_stats *s = &out->endpoints[i];
        memcpy(s->label, ep->label, sizeof s->label);
        pthread_mutex_lock(&rpc->mu);
        s->state = ep->breaker.state;
        s->disabled = ep->disabled;
        s->consecutive_failures = ep->breaker.failures;
        s->times_opened = ep->breaker.times_opened;
        pthread_mutex_unlock(&rpc->mu);
        s->requests = evm_load(&ep->requests);
        s->failures = evm_load(&ep->failures);
        s->rpc_errors = evm_load(&ep->rpc_errors);
        s->refused = evm_load(&ep->refused);
        s->connects = evm_load(&ep->connects);
        for (unsigned m = 0; m < EVM_METHOD_COUNT; m++) {
            s->method_requests[m] = evm_load(&ep->m_requests[m]);
            s->method_failures[m] = evm_load(&ep->m_failures[m]);
        }
    }
    for (unsigned m = 0; m < EVM_METHOD_COUNT; m++) {
        out->calls[m] = evm_load(&rpc->calls[m]);
        out->call_failures[m] = evm_load(&rpc->call_failures[m]);
    }
    out->retries = evm_load(&rpc->retries);
}
