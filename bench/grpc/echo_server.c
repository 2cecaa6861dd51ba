/* bench_grpc_echo: the in-run baseline for bench/grpc/run. The least a
 * gRPC C-core server can do: one thread polling one completion queue,
 * every method path registered up front with its first message delivered,
 * each call answered with its own request bytes in a single batch
 * (headers, message, status OK, close). No workers, no auth, no log.
 * It goes through common/grpcw like coffer-api, so both pay the same
 * (thin) wrapper.
 *
 *   bench_grpc_echo [--listen HOST:PORT] [--path /pkg.Service/Method]...
 * prints "listening port=N" once serving; SIGTERM/SIGINT stop it. */
#include "grpcw.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_SLOTS 256u
#define ECHO_PATHS_MAX 8u

typedef struct {
    grpcw_call *call;
    grpcw_method *method;
    int state; /* 0: waiting for a call, 1: reply in flight */
} echo_slot;

static volatile sig_atomic_t echo_stop;

static void echo_on_signal(int sig)
{
    (void)sig;
    echo_stop = 1;
}

static int echo_post(grpcw_server *s, echo_slot *slot)
{
    slot->call = grpcw_call_new();
    slot->state = 0;
    return slot->call ? grpcw_server_request(s, slot->method, slot->call, slot) : -1;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    const char *paths[ECHO_PATHS_MAX];
    size_t n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc && n_paths < ECHO_PATHS_MAX)
            paths[n_paths++] = argv[++i];
        else {
            fprintf(stderr, "usage: bench_grpc_echo [--listen HOST:PORT] [--path /pkg.Service/Method]...\n");
            return 2;
        }
    }
    if (n_paths == 0)
        paths[n_paths++] = "/coffer.v1.SystemService/GetInfo";
    signal(SIGTERM, echo_on_signal);
    signal(SIGINT, echo_on_signal);
    signal(SIGPIPE, SIG_IGN);

    grpcw_init();
    grpcw_cq *cq = grpcw_cq_new();
    grpcw_server_options o = {4u * 1024u * 1024u, 7200000, 20000, 300000, false, 0};
    grpcw_server *s = cq ? grpcw_server_new(&o, cq) : NULL;
    grpcw_method *methods[ECHO_PATHS_MAX];
    for (size_t i = 0; s && i < n_paths; i++) {
        methods[i] = grpcw_server_register_method(s, paths[i], true);
        if (!methods[i]) {
            fprintf(stderr, "bench_grpc_echo: cannot register %s\n", paths[i]);
            return 1;
        }
    }
    char err[256];
    int port = 0;
    if (!s || grpcw_server_add_listener(s, &port, err, sizeof err, listen, NULL, NULL) != 0) {
        fprintf(stderr, "bench_grpc_echo: %s\n", s ? err : "cannot create the server");
        return 1;
    }
    grpcw_server_start(s);
    static echo_slot slots[ECHO_SLOTS];
    for (unsigned i = 0; i < ECHO_SLOTS; i++) {
        slots[i].method = methods[i % n_paths];
        if (echo_post(s, &slots[i]) != 0)
            return 1;
    }
    printf("listening port=%d\n", port);
    fflush(stdout);

    int shutdown_tag = 0;
    bool shutting_down = false;
    for (;;) {
        void *tag;
        bool ok;
        grpcw_event ev = grpcw_cq_next(cq, &tag, &ok, 200);
        if (ev == GRPCW_EV_SHUTDOWN)
            break;
        if (ev == GRPCW_EV_TIMEOUT) {
            if (echo_stop && !shutting_down) {
                shutting_down = true;
                grpcw_server_shutdown(s, &shutdown_tag);
                grpcw_server_cancel_all(s);
            }
            continue;
        }
        if (tag == &shutdown_tag) {
            grpcw_server_free(s);
            s = NULL;
            grpcw_cq_shutdown(cq);
            continue;
        }
        echo_slot *slot = tag;
        if (slot->state == 1 || !ok) {
            /* Reply done (or the slot came back at shutdown): recycle. */
            grpcw_call_free(slot->call);
            slot->call = NULL;
            if (!shutting_down && echo_post(s, slot) != 0)
                return 1;
            continue;
        }
        const uint8_t *data = NULL;
        size_t len = 0;
        if (grpcw_call_first_message(slot->call, &data, &len) < 0)
            len = 0;
        uint8_t *out = grpcw_call_message_buffer(slot->call, len);
        if (len)
            memcpy(out, data, len);
        slot->state = 1;
        if (grpcw_call_send(slot->call, slot,
                            GRPCW_SEND_INITIAL_MD | GRPCW_SEND_MESSAGE | GRPCW_SEND_STATUS | GRPCW_RECV_CLOSE,
                            NULL, 0, RPC_OK, NULL) != 0) {
            grpcw_call_free(slot->call);
            slot->call = NULL;
            if (!shutting_down && echo_post(s, slot) != 0)
                return 1;
        }
    }
    grpcw_cq_free(cq);
    grpcw_shutdown();
    return 0;
}
