/* coffer-api's signer_client against a real coffer-signer (its own
 * instance: own ring, policy, state dir, socket): every typed call, error
 * mapping, a pool shared by threads, and reconnecting with backoff across
 * a daemon restart. Needs root (the daemon chroots) and COFFER_SIGNER_BIN. */
#include "keccak.h"
#include "rlp.h"
#include "signer_client.h"
#include "test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char dir[64], sock[128], conf[128], logp[128];
static pid_t daemon_pid = -1;
static signer_client *cli;

static int rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

static int start_daemon(void)
{
    static char bin[512], serve[] = "serve", config_flag[] = "--config";
    snprintf(bin, sizeof bin, "%s", getenv("COFFER_SIGNER_BIN"));
    char *argv[] = {bin, serve, config_flag, conf, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&daemon_pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(sock, &st) == 0 && cli) {
            signer_status_info info;
            signer_error err;
            if (signer_client_status(cli, &info, &err, "wait") == SIGNER_OK)
                return 0;
        }
        usleep(50000);
    }
    return -1;
}

static void stop_daemon(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
}

static int suite_init(void)
{
    const char *bin = getenv("COFFER_SIGNER_BIN");
    if (!bin || geteuid() != 0) {
        fprintf(stderr, "signer_client: needs root and COFFER_SIGNER_BIN\n");
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/coffer-signer-client.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    chmod(dir, 0755);
    snprintf(sock, sizeof sock, "%s/signer.sock", dir);
    snprintf(conf, sizeof conf, "%s/signer.conf", dir);
    snprintf(logp, sizeof logp, "%s/serve.log", dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' init --ring %s/kek.ring >/dev/null && mkdir %s/state && "
             "chown coffer-signer %s/state && chmod 700 %s/state", bin, dir, dir, dir, dir);
    if (system(cmd) != 0)
        return -1;
    FILE *f = fopen(conf, "w");
    fprintf(f, "socket.path = %s\nstate.dir = %s/state\nkek.ring = %s/kek.ring\npolicy.file = %s/policy.json\n"
               "peer.uids = 0\n", sock, dir, dir, dir);
    fclose(f);
    char pp[128];
    snprintf(pp, sizeof pp, "%s/policy.json", dir);
    f = fopen(pp, "w");
    fputs("{\"version\":1,\"messages\":{\"allow\":true},\"chains\":[{\"chain_id\":31337,"
          "\"native\":{\"max_value\":\"1000\",\"daily_limit\":\"100000000\",\"any_recipient\":true}}]}", f);
    fclose(f);
    signer_client_options o = {sock, 4, 500, 3000, 20, 200, NULL, NULL};
    if (signer_client_new(&cli, &o) != 0)
        return -1;
    return start_daemon();
}

static int suite_clean(void)
{
    stop_daemon();
    signer_client_free(cli);
    return rm_rf(dir) == 0 ? 0 : -1;
}

static const char OWNER[] = "client-7";

static signer_tx transfer(uint64_t nonce, uint64_t value)
{
    signer_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.type = SIGNER_TX_EIP1559;
    tx.chain_id = 31337;
    tx.nonce = nonce;
    tx.gas_limit = 21000;
    tx.max_priority_fee_per_gas[31] = 1;
    tx.max_fee_per_gas[31] = 2;
    tx.has_to = true;
    memset(tx.to, 0x70, 20);
    tx.value[31] = (uint8_t)value;
    return tx;
}

static void test_typed_calls(void)
{
    signer_key key, wrapped;
    signer_error err;
    signer_signed_tx out, again;
    signer_status_info info;
    CU_ASSERT_EQUAL_FATAL(signer_client_generate_key(cli, &key, &err, OWNER, "itest"), SIGNER_OK);
    CU_ASSERT_EQUAL(key.kek_version, 1);
    CU_ASSERT_EQUAL(key.sealed_key[0], 1);

    signer_tx tx = transfer(1, 5);
    CU_ASSERT_EQUAL_FATAL(signer_client_sign_transaction(cli, &out, &err, &key, OWNER, &tx, "itest"), SIGNER_OK);
    uint8_t h[32];
    keccak256(h, out.raw_tx, out.raw_tx_len);
    CU_ASSERT(memcmp(h, out.tx_hash, 32) == 0);
    CU_ASSERT_EQUAL(out.raw_tx[0], 0x02);
    rlp_item item;
    CU_ASSERT_EQUAL(rlp_validate(&item, out.raw_tx + 1, out.raw_tx_len - 1, RLP_DEFAULT_DEPTH), RLP_OK);
    CU_ASSERT_EQUAL_FATAL(signer_client_sign_transaction(cli, &again, &err, &key, OWNER, &tx, "itest"), SIGNER_OK);
    CU_ASSERT(again.raw_tx_len == out.raw_tx_len && memcmp(again.raw_tx, out.raw_tx, out.raw_tx_len) == 0);
    signer_signed_tx_dispose(&again);

    signer_tx other = transfer(1, 6);
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &key, OWNER, &other, NULL), SIGNER_ERR_DOUBLE_SIGN);
    CU_ASSERT_STRING_EQUAL(err.rule, "nonce.double_sign");
    other = transfer(2, 6);
    other.chain_id = 1;
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &key, OWNER, &other, NULL), SIGNER_ERR_POLICY_DENIED);
    CU_ASSERT_STRING_EQUAL(err.rule, "chain.not_allowed");
    other = transfer(3, 6);
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &key, "client-8", &other, NULL), SIGNER_ERR_BAD_KEY);

    /* legacy with calldata */
    signer_tx legacy = transfer(4, 0);
    legacy.type = SIGNER_TX_LEGACY;
    static const uint8_t data[4] = {0xde, 0xad, 0xbe, 0xef};
    legacy.data = data;
    legacy.data_len = 4;
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &key, OWNER, &legacy, NULL), SIGNER_ERR_POLICY_DENIED);
    CU_ASSERT_STRING_EQUAL(err.rule, "contract.not_allowed");
    legacy.data_len = 0;
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &key, OWNER, &legacy, NULL), SIGNER_OK);
    signer_signed_tx_dispose(&again);

    signer_signed_message sm;
    CU_ASSERT_EQUAL(signer_client_sign_message(cli, &sm, &err, &key, OWNER, (const uint8_t *)"hi", 2, NULL), SIGNER_OK);
    CU_ASSERT(sm.signature[64] == 27 || sm.signature[64] == 28);

    CU_ASSERT_EQUAL_FATAL(signer_client_rewrap(cli, &wrapped, &err, &key, OWNER, NULL), SIGNER_OK);
    CU_ASSERT(memcmp(wrapped.address, key.address, 20) == 0);
    CU_ASSERT(memcmp(wrapped.sealed_key, key.sealed_key, SIGNER_SEALED_KEY_LEN) != 0);
    CU_ASSERT_EQUAL(signer_client_sign_transaction(cli, &again, &err, &wrapped, OWNER, &tx, NULL), SIGNER_OK);
    CU_ASSERT(memcmp(again.raw_tx, out.raw_tx, out.raw_tx_len) == 0); /* same key, same signature */
    signer_signed_tx_dispose(&again);
    signer_signed_tx_dispose(&out);

    CU_ASSERT_EQUAL(signer_client_status(cli, &info, &err, NULL), SIGNER_OK);
    CU_ASSERT_EQUAL(info.n_kek_versions, 1);
    CU_ASSERT(info.audit_entries > 5);
}

typedef struct {
    signer_key key;
    int t;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 40; i++) {
        signer_tx tx = transfer((uint64_t)(a->t * 100 + i), 1); /* a fresh key: near 0 */
        signer_signed_tx out;
        signer_error err;
        if (signer_client_sign_transaction(cli, &out, &err, &a->key, OWNER, &tx, NULL) != SIGNER_OK)
            a->failures++;
        else
            signer_signed_tx_dispose(&out);
    }
    return NULL;
}

static void test_threads_share_the_pool(void)
{
    pthread_t th[8];
    worker_arg args[8];
    signer_error err;
    signer_key key;
    CU_ASSERT_EQUAL_FATAL(signer_client_generate_key(cli, &key, &err, OWNER, NULL), SIGNER_OK);
    for (int i = 0; i < 8; i++) {
        args[i].key = key;
        args[i].t = i;
        args[i].failures = 0;
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].failures, 0);
    }
}

static void test_reconnect_after_restart(void)
{
    signer_status_info info;
    signer_error err;
    CU_ASSERT_EQUAL(signer_client_status(cli, &info, &err, NULL), SIGNER_OK);
    stop_daemon();
    /* pooled connections are dead; no daemon: unavailable */
    CU_ASSERT_EQUAL(signer_client_status(cli, &info, &err, NULL), SIGNER_ERR_UNAVAILABLE);
    CU_ASSERT_EQUAL_FATAL(start_daemon(), 0);
    /* start_daemon waited for a Status through the same client: it reconnected */
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(signer_client_status(cli, &info, &err, NULL), SIGNER_OK);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"typed calls and error mapping", test_typed_calls},
        {"threads share the pool", test_threads_share_the_pool},
        {"reconnect after a restart", test_reconnect_after_restart},
        {NULL, NULL},
    };
    test_add_suite_with("signer_client (real signer)", suite_init, suite_clean, cases);
}
