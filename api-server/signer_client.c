#include "signer_client.h"

#include "coffer/signer/v1/signer.pb-c.h"
#include "ipc.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1u

typedef struct {
    int fd;           /* -1: not connected */
    bool busy;
    uint8_t *buf;     /* IPC_FRAME_MAX bytes for answers */
} slot;

struct signer_client {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    signer_client_options opt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[SIGNER_POOL_MAX];
    unsigned n_slots;
    /* reconnect backoff, under mu */
    int backoff_ms;
    int64_t next_connect_ms;
    _Atomic uint64_t next_request_id;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4)))
static signer_status fail(signer_error *err, signer_status st, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        memset(err, 0, sizeof *err);
        err->status = st;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *signer_status_name(signer_status s)
{
    switch (s) {
    case SIGNER_OK: return "OK";
    case SIGNER_ERR_INVALID_ARG: return "INVALID_ARG";
    case SIGNER_ERR_UNAVAILABLE: return "UNAVAILABLE";
    case SIGNER_ERR_TIMEOUT: return "TIMEOUT";
    case SIGNER_ERR_PROTOCOL: return "PROTOCOL";
    case SIGNER_ERR_BAD_REQUEST: return "BAD_REQUEST";
    case SIGNER_ERR_POLICY_DENIED: return "POLICY_DENIED";
    case SIGNER_ERR_BAD_KEY: return "BAD_KEY";
    case SIGNER_ERR_UNKNOWN_KEK: return "UNKNOWN_KEK";
    case SIGNER_ERR_DOUBLE_SIGN: return "DOUBLE_SIGN";
    case SIGNER_ERR_RETRY_LATER: return "RETRY_LATER";
    case SIGNER_ERR_INTERNAL: return "INTERNAL";
    }
    return "UNKNOWN";
}

int signer_client_new(signer_client **out, const signer_client_options *opt)
{
    signer_client *c;
    *out = NULL;
    if (!opt || !opt->socket_path || !opt->socket_path[0] ||
        strlen(opt->socket_path) >= sizeof c->path || opt->pool_size > SIGNER_POOL_MAX ||
        opt->call_timeout_ms < 0 || opt->connect_timeout_ms < 0 || opt->backoff_initial_ms < 0 ||
        opt->backoff_max_ms < 0)
        return -1;
    if (sodium_init() < 0)
        return -1;
    c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->path, sizeof c->path, "%s", opt->socket_path);
    c->opt = *opt;
    c->opt.socket_path = c->path;
    if (!c->opt.pool_size)
        c->opt.pool_size = 4;
    if (!c->opt.connect_timeout_ms)
        c->opt.connect_timeout_ms = 1000;
    if (!c->opt.call_timeout_ms)
        c->opt.call_timeout_ms = 5000;
    if (!c->opt.backoff_initial_ms)
        c->opt.backoff_initial_ms = 50;
    if (!c->opt.backoff_max_ms)
        c->opt.backoff_max_ms = 5000;
    if (c->opt.backoff_max_ms < c->opt.backoff_initial_ms)
        c->opt.backoff_max_ms = c->opt.backoff_initial_ms;
    c->n_slots = c->opt.pool_size;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (unsigned i = 0; i < c->n_slots; i++) {
        c->slots[i].fd = -1;
        c->slots[i].buf = malloc(IPC_FRAME_MAX);
        if (!c->slots[i].buf) {
            signer_client_free(c);
            return -1;
        }
    }
    /* Random start: request ids of two coffer-api processes do not collide in the audit log. */
    atomic_store(&c->next_request_id, ((uint64_t)randombytes_random() << 20) + 1);
    *out = c;
    return 0;
}

void signer_client_free(signer_client *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->n_slots; i++) {
        if (c->slots[i].fd >= 0)
            close(c->slots[i].fd);
        free(c->slots[i].buf);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- connections --------------------------------------------------------------------- */

/* Borrows a slot, waiting until deadline for one to be free. */
static slot *acquire(signer_client *c, int64_t deadline)
{
    slot *s = NULL;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        /* a connected idle slot first, then any idle one */
        for (unsigned i = 0; i < c->n_slots && !s; i++)
            if (!c->slots[i].busy && c->slots[i].fd >= 0)
                s = &c->slots[i];
        for (unsigned i = 0; i < c->n_slots && !s; i++)
            if (!c->slots[i].busy)
                s = &c->slots[i];
        if (s)
            break;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    if (s)
        s->busy = true;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static void release(signer_client *c, slot *s)
{
    pthread_mutex_lock(&c->mu);
    s->busy = false;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void drop(slot *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Connects the slot. Honours the backoff; updates it. */
static signer_status connect_slot(signer_client *c, slot *s, int64_t deadline, signer_error *err)
{
    pthread_mutex_lock(&c->mu);
    int64_t wait_until = c->next_connect_ms;
    pthread_mutex_unlock(&c->mu);
    int64_t now = now_ms();
    if (wait_until > now) {
        if (wait_until >= deadline)
            return fail(err, SIGNER_ERR_UNAVAILABLE, "signer %s unavailable (reconnecting in %lld ms)",
                        c->path, (long long)(wait_until - now));
        struct timespec ts = {(time_t)((wait_until - now) / 1000), (long)((wait_until - now) % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }

    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->path, strlen(c->path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc != 0 && fd >= 0 && (errno == EINPROGRESS || errno == EAGAIN)) {
        int64_t left = deadline - now_ms();
        int t = (int)(left < c->opt.connect_timeout_ms ? left : c->opt.connect_timeout_ms);
        struct pollfd p = {fd, POLLOUT, 0};
        int so = 0;
        socklen_t sl = sizeof so;
        if (t > 0 && poll(&p, 1, t) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0)
            rc = 0;
        else
            errno = so ? so : ETIMEDOUT;
    }
    int saved = errno;
    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        c->backoff_ms = 0;
        c->next_connect_ms = 0;
    } else {
        int b = c->backoff_ms ? c->backoff_ms * 2 : c->opt.backoff_initial_ms;
        if (b > c->opt.backoff_max_ms)
            b = c->opt.backoff_max_ms;
        c->backoff_ms = b;
        /* full jitter: the next attempt anywhere in [0, b] from now */
        c->next_connect_ms = now_ms() + (int64_t)randombytes_uniform((uint32_t)b + 1);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        log_warn("signer_client.connect", "path=%s errno=%d", c->path, saved);
        return fail(err, SIGNER_ERR_UNAVAILABLE, "cannot connect to the signer at %s: %s", c->path,
                    strerror(saved));
    }
    s->fd = fd;
    return SIGNER_OK;
}

/* ---- one call ------------------------------------------------------------------------ */

static signer_status map_error(signer_error *err, const Coffer__Signer__V1__Error *e)
{
    signer_status st;
    switch (e->code) {
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST: st = SIGNER_ERR_BAD_REQUEST; break;
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_POLICY_DENIED: st = SIGNER_ERR_POLICY_DENIED; break;
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_BAD_KEY: st = SIGNER_ERR_BAD_KEY; break;
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_UNKNOWN_KEK: st = SIGNER_ERR_UNKNOWN_KEK; break;
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_DOUBLE_SIGN: st = SIGNER_ERR_DOUBLE_SIGN; break;
    case COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_RETRY_LATER: st = SIGNER_ERR_RETRY_LATER; break;
    default: st = SIGNER_ERR_INTERNAL; break;
    }
    if (err) {
        memset(err, 0, sizeof *err);
        err->status = st;
        snprintf(err->message, sizeof err->message, "%s", e->message ? e->message : "");
        snprintf(err->rule, sizeof err->rule, "%s", e->rule ? e->rule : "");
    }
    return st;
}

/* Sends req and reads its answer into *resp (caller frees with
 * coffer__signer__v1__response__free_unpacked). Error answers are mapped
 * to their status. Retries once on a fresh connection after an I/O error. */
static signer_status call_timed(signer_client *c, Coffer__Signer__V1__Request *req,
                                Coffer__Signer__V1__Response **resp, signer_error *err);

/* One call, timed for opt.observe. */
static signer_status call(signer_client *c, Coffer__Signer__V1__Request *req,
                          Coffer__Signer__V1__Response **resp, signer_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    signer_status st = call_timed(c, req, resp, err);
    if (c->opt.observe) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        bool answered = st != SIGNER_ERR_UNAVAILABLE && st != SIGNER_ERR_TIMEOUT && st != SIGNER_ERR_PROTOCOL &&
                        st != SIGNER_ERR_INVALID_ARG;
        c->opt.observe(c->opt.observe_arg, answered, us);
    }
    return st;
}

static signer_status call_timed(signer_client *c, Coffer__Signer__V1__Request *req,
                                Coffer__Signer__V1__Response **resp, signer_error *err)
{
    int64_t deadline = now_ms() + c->opt.call_timeout_ms;
    uint8_t *payload = NULL;
    signer_status st = SIGNER_ERR_INTERNAL;

    *resp = NULL;
    req->version = PROTOCOL_VERSION;
    req->request_id = atomic_fetch_add(&c->next_request_id, 1);
    size_t n = coffer__signer__v1__request__get_packed_size(req);
    if (n == 0 || n > IPC_FRAME_MAX)
        return fail(err, SIGNER_ERR_INVALID_ARG, "request of %zu bytes does not fit a frame", n);
    payload = malloc(n);
    if (!payload)
        return fail(err, SIGNER_ERR_INTERNAL, "out of memory");
    coffer__signer__v1__request__pack(req, payload);

    for (int attempt = 0; attempt < 2; attempt++) {
        slot *s = acquire(c, deadline);
        if (!s) {
            st = fail(err, SIGNER_ERR_TIMEOUT, "no signer connection free within %d ms", c->opt.call_timeout_ms);
            break;
        }
        bool reused = s->fd >= 0;
        if (!reused && (st = connect_slot(c, s, deadline, err)) != SIGNER_OK) {
            release(c, s);
            break;
        }
        int left = (int)(deadline - now_ms());
        ipc_result r = left > 0 ? ipc_write_frame(s->fd, payload, n, left) : IPC_TIMEOUT;
        size_t len = 0;
        if (r == IPC_OK) {
            left = (int)(deadline - now_ms());
            r = left > 0 ? ipc_read_frame(s->buf, IPC_FRAME_MAX, &len, s->fd, left) : IPC_TIMEOUT;
        }
        if (r != IPC_OK) {
            drop(s);
            release(c, s);
            if (r == IPC_TIMEOUT) {
                st = fail(err, SIGNER_ERR_TIMEOUT, "signer did not answer within %d ms", c->opt.call_timeout_ms);
                break;
            }
            st = fail(err, SIGNER_ERR_UNAVAILABLE, "signer connection failed: %s", ipc_strerror(r));
            log_warn("signer_client.io", "result=%s attempt=%d reused=%d", ipc_strerror(r), attempt, reused);
            continue; /* once more, on a fresh connection */
        }
        Coffer__Signer__V1__Response *m = coffer__signer__v1__response__unpack(NULL, len, s->buf);
        if (!m || m->version != PROTOCOL_VERSION || m->request_id != req->request_id) {
            /* Out of step with the signer: this connection cannot be trusted. */
            if (m)
                coffer__signer__v1__response__free_unpacked(m, NULL);
            drop(s);
            release(c, s);
            st = fail(err, SIGNER_ERR_PROTOCOL, "malformed or mismatched answer from the signer");
            break;
        }
        if (m->result_case == COFFER__SIGNER__V1__RESPONSE__RESULT_ERROR) {
            if (m->error->code == COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST)
                drop(s); /* the signer closes after a protocol violation */
            release(c, s);
            st = map_error(err, m->error);
            coffer__signer__v1__response__free_unpacked(m, NULL);
            break;
        }
        release(c, s);
        *resp = m;
        st = SIGNER_OK;
        break;
    }
    free(payload);
    return st;
}

static signer_status expect(signer_error *err, Coffer__Signer__V1__Response *m,
                            Coffer__Signer__V1__Response__ResultCase want)
{
    if (m->result_case != want)
        return fail(err, SIGNER_ERR_PROTOCOL, "the signer answered another operation");
    return SIGNER_OK;
}

static int owner_ok(const char *owner)
{
    return owner && owner[0] && strlen(owner) <= 128;
}

/* ---- typed calls ----------------------------------------------------------------------- */

signer_status signer_client_generate_key(signer_client *c, signer_key *out, signer_error *err,
                                         const char *owner_id, const char *trace_id)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__GenerateKeyRequest g;
    coffer__signer__v1__generate_key_request__init(&g);
    Coffer__Signer__V1__Response *m = NULL;
    if (!owner_ok(owner_id))
        return fail(err, SIGNER_ERR_INVALID_ARG, "owner_id must be 1..128 characters");
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1;
    g.owner_id = (char *)(uintptr_t)owner_id;
    req.trace_id = (char *)(uintptr_t)(trace_id ? trace_id : "");
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_GENERATE_KEY;
    req.generate_key = &g;
    signer_status st = call(c, &req, &m, err);
    if (st != SIGNER_OK)
        return st;
    st = expect(err, m, COFFER__SIGNER__V1__RESPONSE__RESULT_GENERATE_KEY);
    if (st == SIGNER_OK && (m->generate_key->address.len != SIGNER_ADDRESS_LEN ||
                            m->generate_key->sealed_key.len != SIGNER_SEALED_KEY_LEN))
        st = fail(err, SIGNER_ERR_PROTOCOL, "generate_key answer has wrong sizes");
    if (st == SIGNER_OK) {
        memcpy(out->address, m->generate_key->address.data, SIGNER_ADDRESS_LEN);
        memcpy(out->sealed_key, m->generate_key->sealed_key.data, SIGNER_SEALED_KEY_LEN);
        out->kek_version = m->generate_key->kek_version;
    }
    coffer__signer__v1__response__free_unpacked(m, NULL);
    return st;
}

static void bin(ProtobufCBinaryData *b, const uint8_t *p, size_t n)
{
    b->data = (uint8_t *)(uintptr_t)p;
    b->len = n;
}

signer_status signer_client_sign_transaction(signer_client *c, signer_signed_tx *out,
                                             signer_error *err, const signer_key *key,
                                             const char *owner_id, const signer_tx *tx,
                                             const char *trace_id)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__SignTransactionRequest st_req;
    coffer__signer__v1__sign_transaction_request__init(&st_req);
    Coffer__Signer__V1__Eip1559Tx e;
    coffer__signer__v1__eip1559_tx__init(&e);
    Coffer__Signer__V1__LegacyTx l;
    coffer__signer__v1__legacy_tx__init(&l);
    Coffer__Signer__V1__AccessListEntry *entries = NULL, **entry_ptrs = NULL;
    ProtobufCBinaryData *keys = NULL;
    Coffer__Signer__V1__Response *m = NULL;
    signer_status st;

    if (!owner_ok(owner_id) || (tx->data_len && !tx->data) || (tx->n_access && !tx->access_list) ||
        (tx->type != SIGNER_TX_EIP1559 && tx->type != SIGNER_TX_LEGACY) ||
        (tx->type == SIGNER_TX_LEGACY && tx->n_access))
        return fail(err, SIGNER_ERR_INVALID_ARG, "invalid transaction or owner");
    bin(&st_req.sealed_key, key->sealed_key, SIGNER_SEALED_KEY_LEN);
    bin(&st_req.address, key->address, SIGNER_ADDRESS_LEN);
    st_req.owner_id = (char *)(uintptr_t)owner_id;
    if (tx->type == SIGNER_TX_EIP1559) {
        e.chain_id = tx->chain_id;
        e.nonce = tx->nonce;
        e.gas_limit = tx->gas_limit;
        bin(&e.max_priority_fee_per_gas, tx->max_priority_fee_per_gas, SIGNER_WORD_LEN);
        bin(&e.max_fee_per_gas, tx->max_fee_per_gas, SIGNER_WORD_LEN);
        bin(&e.to, tx->to, tx->has_to ? SIGNER_ADDRESS_LEN : 0);
        bin(&e.value, tx->value, SIGNER_WORD_LEN);
        bin(&e.data, tx->data, tx->data_len);
        if (tx->n_access) {
            size_t total = 0;
            for (size_t i = 0; i < tx->n_access; i++)
                total += tx->access_list[i].n_storage_keys;
            entries = calloc(tx->n_access, sizeof *entries);
            entry_ptrs = calloc(tx->n_access, sizeof *entry_ptrs);
            keys = calloc(total + 1, sizeof *keys);
            if (!entries || !entry_ptrs || !keys) {
                st = fail(err, SIGNER_ERR_INTERNAL, "out of memory");
                goto out;
            }
            size_t at = 0;
            for (size_t i = 0; i < tx->n_access; i++) {
                coffer__signer__v1__access_list_entry__init(&entries[i]);
                bin(&entries[i].address, tx->access_list[i].address, SIGNER_ADDRESS_LEN);
                entries[i].storage_keys = keys + at;
                entries[i].n_storage_keys = tx->access_list[i].n_storage_keys;
                for (size_t k = 0; k < tx->access_list[i].n_storage_keys; k++)
                    bin(&keys[at++], tx->access_list[i].storage_keys[k], SIGNER_WORD_LEN);
                entry_ptrs[i] = &entries[i];
            }
            e.access_list = entry_ptrs;
            e.n_access_list = tx->n_access;
        }
        st_req.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_EIP1559;
        st_req.eip1559 = &e;
    } else {
        l.chain_id = tx->chain_id;
        l.nonce = tx->nonce;
        l.gas_limit = tx->gas_limit;
        bin(&l.gas_price, tx->max_fee_per_gas, SIGNER_WORD_LEN);
        bin(&l.to, tx->to, tx->has_to ? SIGNER_ADDRESS_LEN : 0);
        bin(&l.value, tx->value, SIGNER_WORD_LEN);
        bin(&l.data, tx->data, tx->data_len);
        st_req.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_LEGACY;
        st_req.legacy = &l;
    }
    req.trace_id = (char *)(uintptr_t)(trace_id ? trace_id : "");
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_SIGN_TRANSACTION;
    req.sign_transaction = &st_req;
    st = call(c, &req, &m, err);
    if (st != SIGNER_OK)
        goto out;
    st = expect(err, m, COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION);
    if (st != SIGNER_OK)
        goto out;
    const Coffer__Signer__V1__SignTransactionResult *r = m->sign_transaction;
    if (r->raw_tx.len == 0 || r->tx_hash.len != 32 || r->r.len != 32 || r->s.len != 32 || r->y_parity > 1) {
        st = fail(err, SIGNER_ERR_PROTOCOL, "sign_transaction answer has wrong sizes");
        goto out;
    }
    out->raw_tx = malloc(r->raw_tx.len);
    if (!out->raw_tx) {
        st = fail(err, SIGNER_ERR_INTERNAL, "out of memory");
        goto out;
    }
    memcpy(out->raw_tx, r->raw_tx.data, r->raw_tx.len);
    out->raw_tx_len = r->raw_tx.len;
    memcpy(out->tx_hash, r->tx_hash.data, 32);
    memcpy(out->r, r->r.data, 32);
    memcpy(out->s, r->s.data, 32);
    out->y_parity = r->y_parity;
out:
    if (m)
        coffer__signer__v1__response__free_unpacked(m, NULL);
    free(entries);
    free(entry_ptrs);
    free(keys);
    return st;
}

signer_status signer_client_sign_message(signer_client *c, signer_signed_message *out,
                                         signer_error *err, const signer_key *key,
                                         const char *owner_id, const uint8_t *msg, size_t len,
                                         const char *trace_id)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__SignMessageRequest s;
    coffer__signer__v1__sign_message_request__init(&s);
    Coffer__Signer__V1__Response *m = NULL;
    if (!owner_ok(owner_id) || !msg || len == 0)
        return fail(err, SIGNER_ERR_INVALID_ARG, "invalid message or owner");
    bin(&s.sealed_key, key->sealed_key, SIGNER_SEALED_KEY_LEN);
    bin(&s.address, key->address, SIGNER_ADDRESS_LEN);
    s.owner_id = (char *)(uintptr_t)owner_id;
    bin(&s.message, msg, len);
    req.trace_id = (char *)(uintptr_t)(trace_id ? trace_id : "");
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_SIGN_MESSAGE;
    req.sign_message = &s;
    signer_status st = call(c, &req, &m, err);
    if (st != SIGNER_OK)
        return st;
    st = expect(err, m, COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_MESSAGE);
    if (st == SIGNER_OK && (m->sign_message->signature.len != 65 || m->sign_message->digest.len != 32))
        st = fail(err, SIGNER_ERR_PROTOCOL, "sign_message answer has wrong sizes");
    if (st == SIGNER_OK) {
        memcpy(out->signature, m->sign_message->signature.data, 65);
        memcpy(out->digest, m->sign_message->digest.data, 32);
    }
    coffer__signer__v1__response__free_unpacked(m, NULL);
    return st;
}

signer_status signer_client_rewrap(signer_client *c, signer_key *out, signer_error *err,
                                   const signer_key *key, const char *owner_id,
                                   const char *trace_id)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__RewrapRequest w;
    coffer__signer__v1__rewrap_request__init(&w);
    Coffer__Signer__V1__Response *m = NULL;
    if (!owner_ok(owner_id))
        return fail(err, SIGNER_ERR_INVALID_ARG, "invalid owner");
    bin(&w.sealed_key, key->sealed_key, SIGNER_SEALED_KEY_LEN);
    bin(&w.address, key->address, SIGNER_ADDRESS_LEN);
    w.owner_id = (char *)(uintptr_t)owner_id;
    req.trace_id = (char *)(uintptr_t)(trace_id ? trace_id : "");
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_REWRAP;
    req.rewrap = &w;
    signer_status st = call(c, &req, &m, err);
    if (st != SIGNER_OK)
        return st;
    st = expect(err, m, COFFER__SIGNER__V1__RESPONSE__RESULT_REWRAP);
    if (st == SIGNER_OK && m->rewrap->sealed_key.len != SIGNER_SEALED_KEY_LEN)
        st = fail(err, SIGNER_ERR_PROTOCOL, "rewrap answer has wrong sizes");
    if (st == SIGNER_OK) {
        memcpy(out->address, key->address, SIGNER_ADDRESS_LEN);
        memcpy(out->sealed_key, m->rewrap->sealed_key.data, SIGNER_SEALED_KEY_LEN);
        out->kek_version = m->rewrap->kek_version;
    }
    coffer__signer__v1__response__free_unpacked(m, NULL);
    return st;
}

signer_status signer_client_status(signer_client *c, signer_status_info *out, signer_error *err,
                                   const char *trace_id)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__StatusRequest s;
    coffer__signer__v1__status_request__init(&s);
    Coffer__Signer__V1__Response *m = NULL;
    req.trace_id = (char *)(uintptr_t)(trace_id ? trace_id : "");
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_STATUS;
    req.status = &s;
    signer_status st = call(c, &req, &m, err);
    if (st != SIGNER_OK)
        return st;
    st = expect(err, m, COFFER__SIGNER__V1__RESPONSE__RESULT_STATUS);
    const Coffer__Signer__V1__StatusResult *r = m->status;
    if (st == SIGNER_OK && (!r || r->n_kek_versions > SIGNER_KEK_VERSIONS_MAX ||
                            r->policy_hash.len != 32 || r->audit_head_hash.len != 32))
        st = fail(err, SIGNER_ERR_PROTOCOL, "status answer has wrong sizes");
    if (st == SIGNER_OK && r) {
        memset(out, 0, sizeof *out);
        memcpy(out->kek_versions, r->kek_versions, r->n_kek_versions * sizeof(uint32_t));
        out->n_kek_versions = r->n_kek_versions;
        out->current_kek_version = r->current_kek_version;
        memcpy(out->policy_hash, r->policy_hash.data, 32);
        memcpy(out->audit_head, r->audit_head_hash.data, 32);
        out->audit_entries = r->audit_entries;
        snprintf(out->version, sizeof out->version, "%s", r->version ? r->version : "");
    }
    coffer__signer__v1__response__free_unpacked(m, NULL);
    return st;
}

void signer_signed_tx_dispose(signer_signed_tx *tx)
{
    if (!tx)
        return;
    free(tx->raw_tx);
    tx->raw_tx = NULL;
    tx->raw_tx_len = 0;
}
