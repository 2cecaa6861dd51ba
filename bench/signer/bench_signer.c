/* bench_signer: signatures per second, for bench/signer/run.
 *
 *   bench_signer inproc  SECONDS
 *       in-process baseline on one thread: build an EIP-1559 transfer's RLP,
 *       keccak it, sign it with libsecp256k1 (signer/ethtx.c + sign.c, the
 *       daemon's own code), encode the signed transaction.
 *   bench_signer socket  SOCKET CONNECTIONS WINDOW SECONDS
 *       the same transaction shape signed by a running coffer-signer over its
 *       socket: CONNECTIONS connections, one thread and one key each, WINDOW
 *       requests pipelined per connection, distinct nonces.
 *
 * Prints one line: "<mode> <signatures> <seconds> <sig/s>". */
#include "coffer/signer/v1/signer.pb-c.h"
#include "ethtx.h"
#include "ipc.h"
#include "keccak.h"
#include "sign.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t TO[20] = {0x70, 0x99, 0x79, 0x70, 0xc5, 0x18, 0x12, 0xdc, 0x3a, 0x01,
                               0x0c, 0x7d, 0x01, 0xb5, 0x0e, 0x0d, 0x17, 0xdc, 0x79, 0xc8};

static void fill_tx(ethtx *tx, uint64_t nonce)
{
    memset(tx, 0, sizeof *tx);
    tx->type = ETHTX_EIP1559;
    tx->chain_id = 1;
    tx->nonce = nonce;
    tx->gas_limit = 21000;
    tx->max_priority_fee[31] = 1;
    tx->max_fee[30] = 1;
    tx->has_to = true;
    memcpy(tx->to, TO, 20);
    tx->value[31] = 1;
}

static int inproc(double seconds)
{
    sign_ctx *c = sign_ctx_new();
    uint8_t key[32], digest[32], txh[32];
    rlp_buf b;
    ethtx tx;
    ethtx_sig sig;
    uint64_t n = 0;
    if (!c || sign_generate_secret(c, key) != 0)
        return 1;
    rlp_buf_init(&b);
    double t0 = now_s(), end = t0 + seconds, t = t0;
    while (t < end) {
        for (int i = 0; i < 64; i++, n++) {
            fill_tx(&tx, n);
            if (ethtx_signing_hash(digest, &b, &tx) != RLP_OK ||
                sign_digest(c, sig.r, sig.s, &sig.y_parity, digest, key) != 0 ||
                ethtx_encode(&b, &tx, &sig) != RLP_OK)
                return 1;
            keccak256(txh, b.data, b.len);
        }
        t = now_s();
    }
    printf("inproc %llu %.3f %.0f\n", (unsigned long long)n, t - t0, (double)n / (t - t0));
    rlp_buf_dispose(&b);
    sign_ctx_free(c);
    return 0;
}

/* ---- socket ----------------------------------------------------------------------- */

typedef struct {
    const char *path;
    int index;
    int window;
    double start, end;
    uint64_t done;
    int failed;
} conn_arg;

static _Atomic uint64_t next_id = 1;

static int dial(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    return fd;
}

/* One request/answer round trip; returns the unpacked answer or NULL. */
static Coffer__Signer__V1__Response *roundtrip(int fd, Coffer__Signer__V1__Request *req, uint8_t *buf)
{
    uint8_t out[4096];
    size_t n = coffer__signer__v1__request__pack(req, out), len = 0;
    if (ipc_write_frame(fd, out, n, 10000) != IPC_OK || ipc_read_frame(buf, IPC_FRAME_MAX, &len, fd, 10000) != IPC_OK)
        return NULL;
    return coffer__signer__v1__response__unpack(NULL, len, buf);
}

static size_t pack_sign(uint8_t *out, const uint8_t *blob, const uint8_t *addr, const char *owner, uint64_t nonce)
{
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__SignTransactionRequest st;
    coffer__signer__v1__sign_transaction_request__init(&st);
    Coffer__Signer__V1__Eip1559Tx tx;
    coffer__signer__v1__eip1559_tx__init(&tx);
    static const uint8_t one[32] = {[31] = 1}, fee[32] = {[30] = 1};
    req.version = 1;
    req.request_id = atomic_fetch_add(&next_id, 1);
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_SIGN_TRANSACTION;
    req.sign_transaction = &st;
    st.sealed_key.data = (uint8_t *)(uintptr_t)blob;
    st.sealed_key.len = 77;
    st.address.data = (uint8_t *)(uintptr_t)addr;
    st.address.len = 20;
    st.owner_id = (char *)(uintptr_t)owner;
    st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_EIP1559;
    st.eip1559 = &tx;
    tx.chain_id = 1;
    tx.nonce = nonce;
    tx.gas_limit = 21000;
    tx.max_priority_fee_per_gas.data = (uint8_t *)(uintptr_t)one;
    tx.max_priority_fee_per_gas.len = 32;
    tx.max_fee_per_gas.data = (uint8_t *)(uintptr_t)fee;
    tx.max_fee_per_gas.len = 32;
    tx.to.data = (uint8_t *)(uintptr_t)TO;
    tx.to.len = 20;
    tx.value.data = (uint8_t *)(uintptr_t)one;
    tx.value.len = 32;
    size_t n = coffer__signer__v1__request__pack(&req, out + 4);
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    return n + 4;
}

static void *conn_main(void *p)
{
    conn_arg *a = p;
    uint8_t *buf = malloc(IPC_FRAME_MAX), blob[77], addr[20], frame[4096];
    char owner[32];
    int fd = dial(a->path);
    if (fd < 0 || !buf) {
        a->failed = 1;
        return NULL;
    }
    snprintf(owner, sizeof owner, "bench-%d", a->index);
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__GenerateKeyRequest g;
    coffer__signer__v1__generate_key_request__init(&g);
    req.version = 1;
    req.request_id = atomic_fetch_add(&next_id, 1);
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_GENERATE_KEY;
    req.generate_key = &g;
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1;
    g.owner_id = owner;
    Coffer__Signer__V1__Response *r = roundtrip(fd, &req, buf);
    if (!r || r->result_case != COFFER__SIGNER__V1__RESPONSE__RESULT_GENERATE_KEY) {
        a->failed = 1;
        return NULL;
    }
    memcpy(blob, r->generate_key->sealed_key.data, 77);
    memcpy(addr, r->generate_key->address.data, 20);
    coffer__signer__v1__response__free_unpacked(r, NULL);

    uint64_t nonce = 0, inflight = 0, done = 0;
    while (now_s() < a->start)
        usleep(1000);
    for (; inflight < (uint64_t)a->window; inflight++) {
        size_t n = pack_sign(frame, blob, addr, owner, nonce++);
        if (write(fd, frame, n) != (ssize_t)n) {
            a->failed = 1;
            return NULL;
        }
    }
    for (;;) {
        size_t len = 0;
        if (ipc_read_frame(buf, IPC_FRAME_MAX, &len, fd, 10000) != IPC_OK) {
            a->failed = 1;
            break;
        }
        r = coffer__signer__v1__response__unpack(NULL, len, buf);
        if (!r || r->result_case != COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION) {
            if (r && r->result_case == COFFER__SIGNER__V1__RESPONSE__RESULT_ERROR)
                fprintf(stderr, "bench: %s (%s)\n", r->error->message, r->error->rule);
            a->failed = 1;
            break;
        }
        coffer__signer__v1__response__free_unpacked(r, NULL);
        inflight--;
        if (now_s() < a->end) {
            done++;
            size_t n = pack_sign(frame, blob, addr, owner, nonce++);
            if (write(fd, frame, n) != (ssize_t)n) {
                a->failed = 1;
                break;
            }
            inflight++;
        } else if (inflight == 0) {
            break;
        }
    }
    a->done = done;
    close(fd);
    free(buf);
    return NULL;
}

static int socket_mode(const char *path, int conns, int window, double seconds)
{
    pthread_t th[64];
    conn_arg args[64];
    if (conns < 1 || conns > 64 || window < 1)
        return 2;
    double start = now_s() + 0.3;
    for (int i = 0; i < conns; i++) {
        args[i] = (conn_arg){path, i, window, start, start + seconds, 0, 0};
        pthread_create(&th[i], NULL, conn_main, &args[i]);
    }
    uint64_t total = 0;
    int failed = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        total += args[i].done;
        failed |= args[i].failed;
    }
    if (failed) {
        fprintf(stderr, "bench: a connection failed\n");
        return 1;
    }
    printf("socket%d %llu %.3f %.0f\n", conns, (unsigned long long)total, seconds, (double)total / seconds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "inproc") == 0)
        return inproc(atof(argv[2]));
    if (argc == 6 && strcmp(argv[1], "socket") == 0)
        return socket_mode(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: bench_signer inproc SECONDS | socket PATH CONNECTIONS WINDOW SECONDS\n");
    return 2;
}
