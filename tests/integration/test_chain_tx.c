/* The transaction lifecycle (chain_tx) in-process, against a database of
 * its own (harness), the stack's coffer-signer and an anvil of its own
 * (automine is switched off for the replacement case, which would stall
 * every other test on the stack's anvil). A client row with a wallet made
 * by the signer's GenerateKey is inserted as superuser.
 *
 *   crash after the signature, before the store: the next pass signs the
 *   same stored payload again; the signer's idempotent re-sign gives the
 *   same hash, nothing else is signed;
 *   crash after the store, before the broadcast: the next pass ("restart")
 *   broadcasts the stored bytes, same hash, and asks the signer nothing;
 *   a transaction not mined within replace_after is replaced with bumped
 *   fees at the same nonce, the old row replaced/replaced_by, the new one
 *   confirmed once mined;
 *   nonces contiguous (invariant 6), wallet_nonces past them.
 * Skips (77) without a stack, fails under CI=true. */
#include "chain_tx.h"
#include "db_pool.h"
#include "harness.h"
#include "hex.h"
#include "signer_client.h"
#include "test_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static harness_db db;
static bool have_db;
static db_pool *pool;
static evm_rpc *rpc;
static signer_client *signer;
static pid_t anvil_pid;
static chain_env env;
static char client_id[40] = "6f1d3c2e-0000-4000-8000-00000000c0de";
static uint8_t wallet[20];
static char wallet_hex[41];
static char audit_path[1024];
static PGconn *admin;

/* The signer's sign_transaction lines for this test's wallet (the stack's
 * coffer-api probes the signer's Status every second, and other suites
 * sign for their wallets: those lines are not counted). */
static long audit_lines(void)
{
    FILE *f = fopen(audit_path, "r");
    long n = 0;
    char line[8192], key[64];
    if (!f)
        return -1;
    snprintf(key, sizeof key, "\"key\":\"0x%s\"", wallet_hex);
    while (fgets(line, sizeof line, f))
        n += strstr(line, "\"op\":\"sign_transaction\"") != NULL && strstr(line, key) != NULL;
    fclose(f);
    return n;
}

static int free_port(void)
{
    char out[32] = "";
    FILE *p = popen("/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                    "print(s.getsockname()[1])'", "r");
    if (!p)
        return -1;
    if (!fgets(out, sizeof out, p))
        out[0] = '\0';
    pclose(p);
    return atoi(out);
}

static evm_err rpc_json(const char *method, const char *params_json, json_t **out)
{
    json_t *params = json_loads(params_json, 0, NULL);
    evm_rpc_error ee;
    json_t *res = NULL;
    evm_err e = evm_rpc_call_json(rpc, &res, &ee, method, params);
    json_decref(params);
    if (out)
        *out = res;
    else
        json_decref(res);
    return e;
}

typedef struct {
    const chain_tx_intent *in;
    char id[CHAIN_TX_ID_MAX];
} create_arg;

static rpc_code create_body(ledger_tx *tx, void *argp)
{
    create_arg *a = argp;
    bool existed;
    return chain_tx_create(tx, a->id, &existed, a->in);
}

static void create_intent(char id[CHAIN_TX_ID_MAX], const char *key, uint64_t value)
{
    chain_tx_intent in = {.client_id = client_id, .chain_id = 31337, .intent_key = key, .kind = "transfer",
                          .value = u256_from_u64(value), .amount = U256_ZERO};
    memset(in.to, 0x42, 20);
    create_arg a = {&in, ""};
    char msg[256];
    CU_ASSERT_EQUAL_FATAL(ledger_run_plain(pool, NULL, 10000, msg, sizeof msg, create_body, &a), RPC_OK);
    memcpy(id, a.id, CHAIN_TX_ID_MAX);
}

typedef struct {
    const char *id;
    chain_tx_row row;
    bool found;
} load_arg;

static rpc_code load_body(ledger_tx *tx, void *argp)
{
    load_arg *a = argp;
    return chain_tx_load(tx, &a->row, &a->found, a->id, false);
}

static chain_tx_row *load(const char *id)
{
    static load_arg a;
    char msg[256];
    memset(&a, 0, sizeof a);
    a.id = id;
    CU_ASSERT_EQUAL_FATAL(ledger_run_plain(pool, NULL, 10000, msg, sizeof msg, load_body, &a), RPC_OK);
    CU_ASSERT_TRUE_FATAL(a.found);
    return &a.row;
}

static bool node_knows(const uint8_t hash[32])
{
    char p[80], hx[67];
    hex_encode_0x(hx, hash, 32);
    hx[66] = '\0';
    snprintf(p, sizeof p, "[\"%s\"]", hx);
    json_t *res = NULL;
    bool known = rpc_json("eth_getTransactionByHash", p, &res) == EVM_OK && res && !json_is_null(res);
    json_decref(res);
    return known;
}

static void drive(void)
{
    char msg[256];
    chain_tx_stats st;
    CU_ASSERT_EQUAL(chain_tx_drive(&env, &st, msg, sizeof msg, wallet_hex), 0);
}

/* ---- cases ---------------------------------------------------------------------- */

/* A crash between signing and storing, or between storing and the
 * broadcast, is tested with real processes (kill -9 of coffer-api) in
 * tests/integration/grpc/test_grpc_chain_crash.py; product code has no
 * test hooks. */

static void test_replacement(void)
{
    char id[CHAIN_TX_ID_MAX];
    CU_ASSERT_EQUAL_FATAL(rpc_json("evm_setAutomine", "[false]", NULL), EVM_OK);
    long signed_before = audit_lines();
    create_intent(id, "test:replace", 3000);
    drive();
    CU_ASSERT_EQUAL(audit_lines(), signed_before + 1);
    chain_tx_row *r = load(id);
    CU_ASSERT_STRING_EQUAL(r->status, "submitted");
    uint64_t nonce = r->nonce;
    u256 fee = r->max_fee;
    uint8_t h1[32];
    memcpy(h1, r->hash, 32);
    usleep(1300 * 1000);
    drive(); /* waited past replace_after: replaced */
    r = load(id);
    CU_ASSERT_STRING_EQUAL(r->status, "replaced");
    CU_ASSERT_TRUE_FATAL(r->replaced_by[0] != '\0');
    char new_id[CHAIN_TX_ID_MAX];
    snprintf(new_id, sizeof new_id, "%s", r->replaced_by);
    chain_tx_row *n = load(new_id);
    CU_ASSERT_EQUAL(n->nonce, nonce);
    CU_ASSERT_TRUE(u256_cmp(&n->max_fee, &fee) > 0);
    CU_ASSERT_NOT_EQUAL(memcmp(n->hash, h1, 32), 0);
    CU_ASSERT_TRUE(node_knows(n->hash));
    CU_ASSERT_EQUAL(audit_lines(), signed_before + 2); /* the original and its one replacement */
    CU_ASSERT_EQUAL(rpc_json("evm_mine", "[]", NULL), EVM_OK);
    CU_ASSERT_EQUAL(rpc_json("evm_setAutomine", "[true]", NULL), EVM_OK);
    drive();
    CU_ASSERT_STRING_EQUAL(load(new_id)->status, "confirmed");
    r = load(id);
    CU_ASSERT_STRING_EQUAL(r->status, "replaced");
    CU_ASSERT_STRING_EQUAL(r->replaced_by, new_id);
}

static void test_nonces_contiguous(void)
{
    char v[64];
    CU_ASSERT_EQUAL_FATAL(harness_query_value(admin, v, sizeof v,
                                              "SELECT (max(nonce) - min(nonce) + 1 = count(DISTINCT nonce))::text "
                                              "|| ':' || count(DISTINCT nonce) FROM chain_transactions "
                                              "WHERE raw_tx IS NOT NULL"), 0);
    CU_ASSERT_STRING_EQUAL(v, "true:1"); /* the replaced transaction and its replacement share one nonce */
    CU_ASSERT_EQUAL_FATAL(harness_query_value(admin, v, sizeof v,
                                              "SELECT n.next_nonce = (SELECT max(nonce) + 1 FROM chain_transactions) "
                                              "FROM wallet_nonces n"), 0);
    CU_ASSERT_STRING_EQUAL(v, "t");
}

/* ---- set-up ----------------------------------------------------------------------- */

static int suite_init(void)
{
    const char *sock = getenv("COFFER_SIGNER_SOCKET"), *dir = getenv("COFFER_STACK_DIR"),
               *root = getenv("COFFER_SOURCE_ROOT");
    if (!sock || !dir || !root) {
        fprintf(stderr, "needs the stack's signer (COFFER_SIGNER_SOCKET, COFFER_STACK_DIR)\n");
        return -1;
    }
    snprintf(audit_path, sizeof audit_path, "%s/signer/state/audit.log", dir);
    if (harness_db_create(&db, "chain_tx") != 0)
        return -1;
    have_db = true;
    admin = harness_connect(&db);
    db_pool_options po = {.conninfo = db.conninfo, .size = 4, .connect_timeout_s = 5};
    pool = db_pool_new(&po);
    signer_client_options so = {.socket_path = sock};
    if (!admin || !pool || signer_client_new(&signer, &so) != 0)
        return -1;
    /* an anvil of our own */
    int port = free_port();
    char anvil[1024], ports[16];
    snprintf(anvil, sizeof anvil, "%s/.deps/node/node_modules/.bin/anvil", root);
    snprintf(ports, sizeof ports, "%d", port);
    anvil_pid = fork();
    if (anvil_pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(anvil, anvil, "--host", "127.0.0.1", "--port", ports, "--chain-id", "31337", "--silent", (char *)NULL);
        _exit(127);
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    const char *eps[1] = {url};
    evm_rpc_options o;
    evm_rpc_options_init(&o);
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.chain_id = 31337;
    o.breaker_failures = 1000;
    evm_rpc_error ee;
    if (evm_rpc_new(&rpc, &ee, &o) != EVM_OK)
        return -1;
    uint64_t id = 0;
    for (int i = 0; i < 100 && evm_rpc_chain_id(rpc, &id, &ee) != EVM_OK; i++)
        usleep(100 * 1000);
    if (id != 31337)
        return -1;
    /* the client's wallet, from the signer */
    signer_key key;
    signer_error se;
    if (signer_client_generate_key(signer, &key, &se, client_id, "test") != SIGNER_OK) {
        fprintf(stderr, "GenerateKey: %s\n", se.message);
        return -1;
    }
    memcpy(wallet, key.address, 20);
    hex_encode(wallet_hex, wallet, 20);
    wallet_hex[40] = '\0';
    char blob[2 * SIGNER_SEALED_KEY_LEN + 1], sql[1024];
    hex_encode(blob, key.sealed_key, SIGNER_SEALED_KEY_LEN);
    blob[2 * SIGNER_SEALED_KEY_LEN] = '\0';
    snprintf(sql, sizeof sql,
             "INSERT INTO client_organizations (id, product_id, company_name, platform_fee_bps, end_user_yield_bps, "
             "environment, wallet_address, wallet_sealed_blob) VALUES ('%s', 'chain-tx-test', 'Chain Tx', 100, 9000, "
             "'test', decode('%s', 'hex'), decode('%s', 'hex'))",
             client_id, wallet_hex, blob);
    if (harness_exec(admin, sql) != 0)
        return -1;
    char p[128];
    snprintf(p, sizeof p, "[\"0x%s\", \"0x56BC75E2D63100000\"]", wallet_hex);
    if (rpc_json("anvil_setBalance", p, NULL) != EVM_OK)
        return -1;
    env.pool = pool;
    env.evm = rpc;
    env.signer = signer;
    env.chain_id = 31337;
    evm_fee_policy_init(&env.fees);
    env.fees.min_priority_fee = U256_ZERO;
    env.gas_margin_pct = 25;
    env.confirmations = 1;
    env.replace_after_ms = 1000;
    env.bump_pct = 15;
    env.db_timeout_ms = 10000;
    return 0;
}

static int suite_cleanup(void)
{
    if (anvil_pid > 0) {
        kill(anvil_pid, SIGTERM);
        waitpid(anvil_pid, NULL, 0);
    }
    evm_rpc_free(rpc);
    signer_client_free(signer);
    db_pool_free(pool);
    if (admin)
        PQfinish(admin);
    if (have_db)
        harness_db_drop(&db);
    return 0;
}

void test_register(void)
{
    harness_require_stack();
    if (!getenv("COFFER_SIGNER_SOCKET")) {
        fprintf(stderr, "no signer in the stack: skipped\n");
        exit(77);
    }
    static const test_case cases[] = {
        {"replacement", test_replacement},
        {"nonces_contiguous", test_nonces_contiguous},
        {NULL, NULL},
    };
    test_add_suite_with("chain_tx", suite_init, suite_cleanup, cases);
}
