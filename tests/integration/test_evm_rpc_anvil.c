/* evm_rpc against the stack's anvil (COFFER_EVM_RPC, COFFER_EVM_FUNDER_KEY
 * from stack.env): chain id, blocks, balances, transfers signed by `cast
 * mktx` and sent with evm_rpc_send_raw_transaction (accepted, already
 * known, nonce too low), receipts with logs from a contract deployed from
 * raw init code, eth_getLogs, eth_call (value, revert), fees, and failover
 * from a dead port. Skips (77) without a stack, fails under CI=true. */
#include "evm_rpc.h"
#include "hex.h"
#include "keccak.h"
#include "test_support.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEAD "http://127.0.0.1:1"

static const char *rpc_url;
static const char *funder_key;
static char cast_bin[1024];
static evm_rpc *rpc;
static char fresh_key[67];
static uint8_t fresh[20];
static uint8_t funder[20];
static uint8_t contract[20];
static bool have_contract;
static uint8_t ping_topic[32];

/* Runs a shell command (built from hex and numbers only) and returns its
 * first output line in out. 0 on exit status 0. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    out[0] = '\0';
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
    if (st != 0)
        fprintf(stderr, "command failed (%d): %s\n", st, cmd);
    return st == 0 ? 0 : -1;
}

static int parse_addr(uint8_t out[20], const char *text)
{
    return hex_decode_exact(out, 20, text);
}

static int address_of(uint8_t out[20], const char *key)
{
    char line[128];
    if (run(line, sizeof line, "%s wallet address --private-key %s", cast_bin, key) != 0)
        return -1;
    return parse_addr(out, line);
}

static void addr_hex(char out[43], const uint8_t a[20])
{
    hex_encode_0x(out, a, 20);
}

/* Signs a transaction with cast mktx; returns malloc'd bytes. to: NULL
 * with create_code for a deployment. */
static uint8_t *mktx(size_t *len, const char *key, uint64_t nonce, uint64_t gas,
                     const evm_fee_suggestion *fees, const uint8_t *to, const char *value_wei,
                     const char *data_or_code, bool create)
{
    char maxfee[U256_DEC_MAX], tip[U256_DEC_MAX], tohex[43];
    static char line[65536];
    u256_to_dec(maxfee, &fees->max_fee_per_gas);
    u256_to_dec(tip, &fees->max_priority_fee_per_gas);
    if (create) {
        if (run(line, sizeof line, "%s mktx --private-key %s --chain 31337 --nonce %llu --gas-limit %llu "
                "--gas-price %s --priority-gas-price %s --create %s", cast_bin, key,
                (unsigned long long)nonce, (unsigned long long)gas, maxfee, tip, data_or_code) != 0)
            return NULL;
    } else {
        addr_hex(tohex, to);
        if (run(line, sizeof line, "%s mktx --private-key %s --chain 31337 --nonce %llu --gas-limit %llu "
                "--gas-price %s --priority-gas-price %s --value %s %s %s", cast_bin, key,
                (unsigned long long)nonce, (unsigned long long)gas, maxfee, tip, value_wei, tohex,
                data_or_code ? data_or_code : "") != 0)
            return NULL;
    }
    size_t n = strlen(line);
    uint8_t *raw = malloc(n / 2 + 1);
    if (!raw || hex_decode(raw, n / 2 + 1, len, line, n) != 0) {
        free(raw);
        return NULL;
    }
    return raw;
}

/* Polls for a receipt (anvil automines: usually at once). */
static bool wait_receipt(evm_receipt *r, const uint8_t hash[32])
{
    evm_rpc_error err;
    for (int i = 0; i < 100; i++) {
        bool found = false;
        evm_err e = evm_rpc_get_transaction_receipt(rpc, r, &found, &err, hash);
        if (e != EVM_OK) {
            fprintf(stderr, "receipt: %s: %s\n", evm_err_name(e), err.message);
            return false;
        }
        if (found)
            return true;
        usleep(100000);
    }
    return false;
}

static void fees_now(evm_fee_suggestion *fees)
{
    evm_fee_policy p;
    evm_rpc_error err;
    evm_fee_policy_init(&p);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_suggest_fees(rpc, fees, &err, &p), EVM_OK);
}

static int suite_init(void)
{
    rpc_url = getenv("COFFER_EVM_RPC");
    funder_key = getenv("COFFER_EVM_FUNDER_KEY");
    if (!rpc_url || !*rpc_url || !funder_key || !*funder_key) {
        const char *ci = getenv("CI");
        fprintf(stderr, "evm_rpc_anvil: no stack (COFFER_EVM_RPC, COFFER_EVM_FUNDER_KEY): %s\n",
                ci && strcmp(ci, "true") == 0 ? "failing under CI" : "skipped");
        exit(ci && strcmp(ci, "true") == 0 ? 1 : 77);
    }
    const char *root = getenv("COFFER_SOURCE_ROOT");
    snprintf(cast_bin, sizeof cast_bin, "%s/.deps/node/node_modules/.bin/cast", root ? root : ".");
    if (access(cast_bin, X_OK) != 0 || sodium_init() < 0)
        return -1;
    evm_rpc_options o;
    evm_rpc_error err;
    evm_rpc_options_init(&o);
    const char *eps[] = {rpc_url};
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.chain_id = 31337;
    if (evm_rpc_new(&rpc, &err, &o) != EVM_OK)
        return -1;
    /* A fresh account of our own, so that nobody else's nonces interfere. */
    uint8_t k[32];
    randombytes_buf(k, sizeof k);
    hex_encode_0x(fresh_key, k, sizeof k);
    sodium_memzero(k, sizeof k);
    if (address_of(fresh, fresh_key) != 0 || address_of(funder, funder_key) != 0)
        return -1;
    char a[43];
    addr_hex(a, fresh);
    json_t *params = json_pack("[s,s]", a, "0x56bc75e2d63100000"); /* 100 ether */
    json_t *res = NULL;
    evm_err e = evm_rpc_call_json(rpc, &res, &err, "anvil_setBalance", params);
    json_decref(params);
    json_decref(res);
    keccak256(ping_topic, (const uint8_t *)"Ping(uint256)", 13);
    return e == EVM_OK ? 0 : -1;
}

static int suite_cleanup(void)
{
    evm_rpc_free(rpc);
    return 0;
}

static void test_chain_and_blocks(void)
{
    evm_rpc_error err;
    uint64_t id = 0, b1 = 0, b2 = 0;
    CU_ASSERT_EQUAL(evm_rpc_verify_chain(rpc, &err), EVM_OK);
    CU_ASSERT_EQUAL(evm_rpc_chain_id(rpc, &id, &err), EVM_OK);
    CU_ASSERT_EQUAL(id, 31337);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_block_number(rpc, &b1, &err), EVM_OK);
    json_t *res = NULL;
    CU_ASSERT_EQUAL(evm_rpc_call_json(rpc, &res, &err, "evm_mine", NULL), EVM_OK);
    json_decref(res);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_block_number(rpc, &b2, &err), EVM_OK);
    CU_ASSERT(b2 >= b1 + 1);

    evm_block_header h, parent;
    bool found = false;
    CU_ASSERT_EQUAL_FATAL(evm_rpc_get_block_by_number(rpc, &h, &found, &err, EVM_BLOCK_ID_AT(b2)), EVM_OK);
    CU_ASSERT_TRUE_FATAL(found);
    CU_ASSERT_EQUAL(h.number, b2);
    CU_ASSERT_EQUAL(evm_rpc_get_block_by_number(rpc, &parent, &found, &err, EVM_BLOCK_ID_AT(b2 - 1)), EVM_OK);
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(memcmp(h.parent_hash, parent.hash, 32), 0);
    CU_ASSERT(h.timestamp >= parent.timestamp);
    CU_ASSERT_TRUE(h.has_base_fee);
    CU_ASSERT_EQUAL(evm_rpc_get_block_by_number(rpc, &h, &found, &err, EVM_BLOCK_ID_LATEST), EVM_OK);
    CU_ASSERT_TRUE(found);
    CU_ASSERT(h.number >= b2);
    CU_ASSERT_EQUAL(evm_rpc_get_block_by_number(rpc, &h, &found, &err, EVM_BLOCK_ID_AT(b2 + 1000000)), EVM_OK);
    CU_ASSERT_FALSE(found);
}

static void test_balances_and_fees(void)
{
    evm_rpc_error err;
    u256 bal, want;
    CU_ASSERT_EQUAL(evm_rpc_get_balance(rpc, &bal, &err, fresh, EVM_BLOCK_ID_LATEST), EVM_OK);
    CU_ASSERT_EQUAL(u256_from_dec_str(&want, "100000000000000000000"), 0);
    CU_ASSERT_EQUAL(u256_cmp(&bal, &want), 0);
    CU_ASSERT_EQUAL(evm_rpc_get_balance(rpc, &bal, &err, funder, EVM_BLOCK_ID_LATEST), EVM_OK);
    CU_ASSERT_FALSE(u256_is_zero(&bal));
    uint8_t nobody[20] = {0xde, 0xad};
    CU_ASSERT_EQUAL(evm_rpc_get_balance(rpc, &bal, &err, nobody, EVM_BLOCK_ID_AT(0)), EVM_OK);
    CU_ASSERT_TRUE(u256_is_zero(&bal));

    u256 gp, tip;
    CU_ASSERT_EQUAL(evm_rpc_gas_price(rpc, &gp, &err), EVM_OK);
    CU_ASSERT_FALSE(u256_is_zero(&gp));
    CU_ASSERT_EQUAL(evm_rpc_max_priority_fee(rpc, &tip, &err), EVM_OK);

    evm_fee_history fh;
    unsigned pct[] = {25, 50, 75};
    CU_ASSERT_EQUAL_FATAL(evm_rpc_fee_history(rpc, &fh, &err, 4, EVM_BLOCK_ID_LATEST, pct, 3), EVM_OK);
    CU_ASSERT(fh.n_blocks >= 1 && fh.n_blocks <= 4);
    CU_ASSERT_EQUAL(fh.n_percentiles, 3);
    evm_fee_history_dispose(&fh);
    unsigned bad[] = {50, 25};
    CU_ASSERT_EQUAL(evm_rpc_fee_history(rpc, &fh, &err, 4, EVM_BLOCK_ID_LATEST, bad, 2), EVM_ERR_INVALID_ARG);

    evm_fee_suggestion s;
    fees_now(&s);
    u256 two_base;
    u256 two = u256_from_u64(2);
    CU_ASSERT_EQUAL(u256_mul(&two_base, &s.next_base_fee, &two), 0);
    CU_ASSERT(u256_cmp(&s.max_fee_per_gas, &two_base) > 0);
    u256 gwei = u256_from_u64(1000000000);
    CU_ASSERT(u256_cmp(&s.max_priority_fee_per_gas, &gwei) >= 0);
}

static void test_funder_transfer(void)
{
    evm_rpc_error err;
    evm_fee_suggestion fees;
    uint8_t hash[32], hash2[32], want[32];
    evm_send_status st = EVM_SEND_INVALID;
    uint8_t *raw = NULL;
    size_t len = 0;
    /* The funder is shared with other tests: take a fresh nonce on a clash. */
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t nonce;
        free(raw);
        CU_ASSERT_EQUAL_FATAL(evm_rpc_get_transaction_count(rpc, &nonce, &err, funder, EVM_BLOCK_ID_PENDING), EVM_OK);
        fees_now(&fees);
        raw = mktx(&len, funder_key, nonce, 21000, &fees, fresh, "1000", NULL, false);
        CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
        st = evm_rpc_send_raw_transaction(rpc, hash, &err, raw, len);
        if (st != EVM_SEND_NONCE_TOO_LOW)
            break;
    }
    CU_ASSERT_EQUAL_FATAL(st, EVM_SEND_ACCEPTED);
    keccak256(want, raw, len);
    CU_ASSERT_EQUAL(memcmp(hash, want, 32), 0);
    evm_receipt r;
    CU_ASSERT_TRUE_FATAL(wait_receipt(&r, hash));
    CU_ASSERT_EQUAL(r.status, 1);
    CU_ASSERT_EQUAL(r.gas_used, 21000);
    CU_ASSERT_EQUAL(r.logs.count, 0);
    CU_ASSERT_EQUAL(memcmp(r.from, funder, 20), 0);
    CU_ASSERT_TRUE(r.has_to);
    CU_ASSERT_EQUAL(memcmp(r.to, fresh, 20), 0);
    CU_ASSERT(u256_cmp(&r.effective_gas_price, &fees.max_fee_per_gas) <= 0);
    CU_ASSERT_EQUAL(memcmp(r.tx_hash, hash, 32), 0);
    evm_receipt_dispose(&r);
    /* the same bytes again: the node has it (mined: nonce too low) */
    st = evm_rpc_send_raw_transaction(rpc, hash2, &err, raw, len);
    CU_ASSERT(st == EVM_SEND_NONCE_TOO_LOW || st == EVM_SEND_ALREADY_KNOWN);
    CU_ASSERT_EQUAL(memcmp(hash2, hash, 32), 0);
    free(raw);
}

static void test_already_known(void)
{
    evm_rpc_error err;
    evm_fee_suggestion fees;
    uint64_t nonce;
    uint8_t ha[32], hb[32], h[32];
    size_t la, lb;
    uint8_t dead[20] = {0xde, 0xad};
    CU_ASSERT_EQUAL_FATAL(evm_rpc_get_transaction_count(rpc, &nonce, &err, fresh, EVM_BLOCK_ID_PENDING), EVM_OK);
    fees_now(&fees);
    uint8_t *a = mktx(&la, fresh_key, nonce, 21000, &fees, dead, "1", NULL, false);
    uint8_t *b = mktx(&lb, fresh_key, nonce + 1, 21000, &fees, dead, "2", NULL, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* b waits in the pool for the gap to close */
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, hb, &err, b, lb), EVM_SEND_ACCEPTED);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, h, &err, b, lb), EVM_SEND_ALREADY_KNOWN);
    CU_ASSERT_EQUAL(memcmp(h, hb, 32), 0);
    fprintf(stderr, "already known: \"%s\" (code %lld)\n", err.message, (long long)err.rpc_code);
    uint64_t latest;
    CU_ASSERT_EQUAL(evm_rpc_get_transaction_count(rpc, &latest, &err, fresh, EVM_BLOCK_ID_LATEST), EVM_OK);
    CU_ASSERT_EQUAL(latest, nonce);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, ha, &err, a, la), EVM_SEND_ACCEPTED);
    evm_receipt ra, rb;
    CU_ASSERT_TRUE_FATAL(wait_receipt(&ra, ha));
    CU_ASSERT_TRUE_FATAL(wait_receipt(&rb, hb));
    CU_ASSERT_EQUAL(ra.status, 1);
    CU_ASSERT_EQUAL(rb.status, 1);
    evm_receipt_dispose(&ra);
    evm_receipt_dispose(&rb);
    CU_ASSERT_EQUAL(evm_rpc_send_raw_transaction(rpc, h, &err, b, lb), EVM_SEND_NONCE_TOO_LOW);
    fprintf(stderr, "nonce too low: \"%s\" (code %lld)\n", err.message, (long long)err.rpc_code);
    free(a);
    free(b);
}

/* Init code returning a runtime that logs Ping(uint256)=42 and returns 42,
 * and reverts on one-byte calldata. */
static void contract_code(char *out, size_t cap)
{
    char topic[65];
    hex_encode(topic, ping_topic, 32);
    snprintf(out, cap, "0x603d80600b6000396000f3" "36600114603757" "602a600052" "7f%s"
             "60206000a1" "60206000f3" "5b60006000fd", topic);
}

static void test_contract_logs(void)
{
    evm_rpc_error err;
    evm_fee_suggestion fees;
    uint64_t nonce;
    size_t len;
    uint8_t h[32];
    char code[512];
    contract_code(code, sizeof code);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_get_transaction_count(rpc, &nonce, &err, fresh, EVM_BLOCK_ID_PENDING), EVM_OK);
    fees_now(&fees);
    uint8_t *raw = mktx(&len, fresh_key, nonce, 200000, &fees, NULL, NULL, code, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_send_raw_transaction(rpc, h, &err, raw, len), EVM_SEND_ACCEPTED);
    free(raw);
    evm_receipt r;
    CU_ASSERT_TRUE_FATAL(wait_receipt(&r, h));
    CU_ASSERT_EQUAL(r.status, 1);
    CU_ASSERT_FALSE(r.has_to);
    CU_ASSERT_TRUE_FATAL(r.has_contract_address);
    memcpy(contract, r.contract_address, 20);
    have_contract = true;
    evm_receipt_dispose(&r);

    /* a transaction that logs */
    uint8_t call[2] = {0x12, 0x34};
    evm_call_msg msg = {.from = fresh, .to = contract, .data = call, .data_len = 2};
    uint64_t gas = 0;
    CU_ASSERT_EQUAL(evm_rpc_estimate_gas(rpc, &gas, &err, &msg), EVM_OK);
    CU_ASSERT(gas > 21000 && gas < 100000);
    fees_now(&fees);
    raw = mktx(&len, fresh_key, nonce + 1, 100000, &fees, contract, "0", "0x1234", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
    CU_ASSERT_EQUAL_FATAL(evm_rpc_send_raw_transaction(rpc, h, &err, raw, len), EVM_SEND_ACCEPTED);
    free(raw);
    CU_ASSERT_TRUE_FATAL(wait_receipt(&r, h));
    CU_ASSERT_EQUAL(r.status, 1);
    CU_ASSERT_EQUAL_FATAL(r.logs.count, 1);
    const evm_log *l = &r.logs.items[0];
    CU_ASSERT_EQUAL(memcmp(l->address, contract, 20), 0);
    CU_ASSERT_EQUAL(l->n_topics, 1);
    CU_ASSERT_EQUAL(memcmp(l->topics[0], ping_topic, 32), 0);
    CU_ASSERT_EQUAL_FATAL(l->data_len, 32);
    CU_ASSERT_EQUAL(l->data[31], 42);
    CU_ASSERT_EQUAL(memcmp(l->tx_hash, h, 32), 0);
    CU_ASSERT_EQUAL(l->block_number, r.block_number);

    /* the same log through eth_getLogs */
    evm_log_list logs;
    evm_log_filter f = {.address = contract, .topics = {ping_topic}, .n_topics = 1,
                        .from_block = EVM_BLOCK_ID_AT(r.block_number),
                        .to_block = EVM_BLOCK_ID_AT(r.block_number)};
    CU_ASSERT_EQUAL_FATAL(evm_rpc_get_logs(rpc, &logs, &err, &f), EVM_OK);
    CU_ASSERT_EQUAL_FATAL(logs.count, 1);
    CU_ASSERT_EQUAL(logs.items[0].log_index, l->log_index);
    CU_ASSERT_EQUAL(memcmp(logs.items[0].block_hash, r.block_hash, 32), 0);
    CU_ASSERT_EQUAL(memcmp(logs.items[0].tx_hash, h, 32), 0);
    evm_log_list_dispose(&logs);
    /* a topic that matches nothing; a null (any) topic position */
    uint8_t other[32] = {1};
    f.topics[0] = other;
    CU_ASSERT_EQUAL(evm_rpc_get_logs(rpc, &logs, &err, &f), EVM_OK);
    CU_ASSERT_EQUAL(logs.count, 0);
    evm_log_list_dispose(&logs);
    f.topics[0] = NULL;
    CU_ASSERT_EQUAL(evm_rpc_get_logs(rpc, &logs, &err, &f), EVM_OK);
    CU_ASSERT_EQUAL(logs.count, 1);
    evm_log_list_dispose(&logs);

    evm_block_header b;
    bool found;
    CU_ASSERT_EQUAL(evm_rpc_get_block_by_number(rpc, &b, &found, &err, EVM_BLOCK_ID_AT(r.block_number)), EVM_OK);
    CU_ASSERT_EQUAL(memcmp(b.hash, r.block_hash, 32), 0);
    evm_receipt_dispose(&r);
}

static void test_calls(void)
{
    evm_rpc_error err;
    u256 v;
    char dec[U256_DEC_MAX];
    CU_ASSERT_TRUE_FATAL(have_contract);
    /* balanceOf(anything) on the test contract returns 42 */
    CU_ASSERT_EQUAL(evm_rpc_erc20_balance_of(rpc, &v, &err, contract, fresh, EVM_BLOCK_ID_LATEST), EVM_OK);
    u256_to_dec(dec, &v);
    CU_ASSERT_STRING_EQUAL(dec, "42");
    /* an address without code returns "0x": not a uint256 */
    CU_ASSERT_EQUAL(evm_rpc_erc20_balance_of(rpc, &v, &err, fresh, fresh, EVM_BLOCK_ID_LATEST), EVM_ERR_ABI);
    fprintf(stderr, "abi: %s\n", err.message);
    /* a revert is the node's answer, with its data */
    uint8_t one = 1;
    uint8_t *out = NULL;
    size_t len = 0;
    evm_call_msg msg = {.to = contract, .data = &one, .data_len = 1};
    CU_ASSERT_EQUAL(evm_rpc_call(rpc, &out, &len, &err, &msg, EVM_BLOCK_ID_LATEST), EVM_ERR_RPC);
    CU_ASSERT_EQUAL(err.rpc_code, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "revert"));
    CU_ASSERT_TRUE(err.has_rpc_data);
    CU_ASSERT_EQUAL(err.rpc_data_len, 0);
    uint64_t gas;
    CU_ASSERT_EQUAL(evm_rpc_estimate_gas(rpc, &gas, &err, &msg), EVM_ERR_RPC);
    /* raw call data */
    uint8_t two[2] = {0xab, 0xcd};
    u256 zero = U256_ZERO;
    evm_call_msg msg2 = {.from = fresh, .to = contract, .data = two, .data_len = 2, .value = &zero, .gas = 100000};
    CU_ASSERT_EQUAL_FATAL(evm_rpc_call(rpc, &out, &len, &err, &msg2, EVM_BLOCK_ID_PENDING), EVM_OK);
    CU_ASSERT_EQUAL(len, 32);
    CU_ASSERT_EQUAL(out[31], 42);
    free(out);
}

static void test_failover_dead_first(void)
{
    evm_rpc_options o;
    evm_rpc_error err;
    evm_rpc *two;
    const char *eps[] = {DEAD, rpc_url};
    evm_rpc_options_init(&o);
    o.endpoints = eps;
    o.n_endpoints = 2;
    CU_ASSERT_EQUAL_FATAL(evm_rpc_new(&two, &err, &o), EVM_OK);
    for (int i = 0; i < 7; i++) {
        uint64_t id = 0;
        CU_ASSERT_EQUAL(evm_rpc_chain_id(two, &id, &err), EVM_OK);
        CU_ASSERT_EQUAL(id, 31337);
    }
    evm_rpc_stats st;
    evm_rpc_stats_snapshot(two, &st);
    CU_ASSERT_EQUAL(st.endpoints[0].requests, 5);
    CU_ASSERT_EQUAL(st.endpoints[0].refused, 2);
    CU_ASSERT_EQUAL(st.endpoints[0].state, EVM_BREAKER_OPEN);
    CU_ASSERT_EQUAL(st.endpoints[1].requests, 7);
    evm_rpc_free(two);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"chain_and_blocks", test_chain_and_blocks},
        {"balances_and_fees", test_balances_and_fees},
        {"funder_transfer", test_funder_transfer},
        {"already_known", test_already_known},
        {"contract_logs", test_contract_logs},
        {"calls", test_calls},
        {"failover_dead_first", test_failover_dead_first},
        {NULL, NULL},
    };
    test_add_suite_with("evm_rpc_anvil", suite_init, suite_cleanup, cases);
}
