/* evm_rpc without a network: option checks, endpoint labels (no secrets),
 * the method table, and the configuration rows. The transport is tested
 * in tests/integration/test_evm_rpc_{stub,anvil}.c. */
#include "evm_rpc.h"
#include "test_support.h"

#include <string.h>

static evm_err make(evm_rpc **rpc, evm_rpc_error *err, const char *const *urls, size_t n)
{
    evm_rpc_options o;
    evm_rpc_options_init(&o);
    o.endpoints = urls;
    o.n_endpoints = n;
    return evm_rpc_new(rpc, err, &o);
}

static void test_options(void)
{
    evm_rpc *rpc = NULL;
    evm_rpc_error err;
    const char *none[] = {NULL};
    CU_ASSERT_EQUAL(make(&rpc, &err, none, 0), EVM_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(rpc);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "0 endpoints"));
    const char *nine[9] = {"http://a", "http://a", "http://a", "http://a", "http://a",
                           "http://a", "http://a", "http://a", "http://a"};
    CU_ASSERT_EQUAL(make(&rpc, &err, nine, 9), EVM_ERR_INVALID_ARG);
    static const char *const bad[] = {"ftp://host/", "127.0.0.1:8545", "http://", "http:///path",
                                      "https://host/ path", "http://host/\n", "ws://host"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[] = {bad[i]};
        CU_ASSERT_EQUAL(make(&rpc, &err, one, 1), EVM_ERR_INVALID_ARG);
        CU_ASSERT_PTR_NULL(strstr(err.message, "path")); /* URL text is never echoed */
    }
    const char *ok[] = {"http://127.0.0.1:8545"};
    evm_rpc_options o;
    evm_rpc_options_init(&o);
    o.endpoints = ok;
    o.n_endpoints = 1;
    o.timeout_ms = 0;
    CU_ASSERT_EQUAL(evm_rpc_new(&rpc, &err, &o), EVM_ERR_INVALID_ARG);
    o.timeout_ms = 1000;
    o.breaker_failures = 0;
    CU_ASSERT_EQUAL(evm_rpc_new(&rpc, &err, &o), EVM_ERR_INVALID_ARG);
    o.breaker_failures = 5;
    o.max_response_bytes = 10;
    CU_ASSERT_EQUAL(evm_rpc_new(&rpc, &err, &o), EVM_ERR_INVALID_ARG);
    o.max_response_bytes = 4096;
    o.max_idle_handles = 0;
    CU_ASSERT_EQUAL(evm_rpc_new(&rpc, &err, &o), EVM_OK);
    /* no chain id to verify against: refused without any request */
    CU_ASSERT_EQUAL(evm_rpc_verify_chain(rpc, &err), EVM_ERR_INVALID_ARG);
    evm_rpc_free(rpc);
    evm_rpc_free(NULL);
}

static void test_labels(void)
{
    static const struct {
        const char *url;
        const char *label;
    } cases[] = {
        {"http://127.0.0.1:8545", "http://127.0.0.1:8545"},
        {"https://mainnet.infura.io/v3/0123456789abcdef", "https://mainnet.infura.io"},
        {"HTTPS://user:password@node.example:443/rpc?key=SECRET#x", "https://node.example:443"},
        {"http://[::1]:8545/", "http://[::1]:8545"},
        {"https://eth.example?apikey=SECRET", "https://eth.example"},
    };
    const char *urls[5];
    for (size_t i = 0; i < 5; i++)
        urls[i] = cases[i].url;
    evm_rpc *rpc;
    evm_rpc_error err;
    CU_ASSERT_EQUAL_FATAL(make(&rpc, &err, urls, 5), EVM_OK);
    evm_rpc_stats st;
    evm_rpc_stats_snapshot(rpc, &st);
    CU_ASSERT_EQUAL(st.n_endpoints, 5);
    for (size_t i = 0; i < 5; i++) {
        CU_ASSERT_STRING_EQUAL(st.endpoints[i].label, cases[i].label);
        CU_ASSERT_EQUAL(st.endpoints[i].state, EVM_BREAKER_CLOSED);
        CU_ASSERT_EQUAL(st.endpoints[i].requests, 0);
    }
    evm_rpc_free(rpc);
}

static void test_method_table(void)
{
    CU_ASSERT_STRING_EQUAL(evm_method_name(EVM_METHOD_CHAIN_ID), "eth_chainId");
    CU_ASSERT_STRING_EQUAL(evm_method_name(EVM_METHOD_SEND_RAW_TRANSACTION), "eth_sendRawTransaction");
    CU_ASSERT_STRING_EQUAL(evm_method_name(EVM_METHOD_MAX_PRIORITY_FEE), "eth_maxPriorityFeePerGas");
    for (unsigned m = 0; m < EVM_METHOD_COUNT; m++) {
        bool read = evm_method_is_read((evm_method)m);
        CU_ASSERT_EQUAL(read, m != EVM_METHOD_SEND_RAW_TRANSACTION && m != EVM_METHOD_OTHER);
    }
    CU_ASSERT_STRING_EQUAL(evm_method_name(EVM_METHOD_COUNT), "?");
    CU_ASSERT_STRING_EQUAL(evm_err_name(EVM_ERR_UNKNOWN_OUTCOME), "unknown_outcome");
}

static const config_option evm_test_options[] = {EVM_RPC_CONFIG_OPTIONS};
static const config_schema evm_test_schema = {evm_test_options,
                                              sizeof evm_test_options / sizeof evm_test_options[0]};

static void test_config(void)
{
    static const char text[] =
        "evm.chain_id = 31337\n"
        "evm.endpoints = http://127.0.0.1:8545, https://backup.example/v3/KEY\n"
        "evm.timeout = 5s\n"
        "evm.breaker_cooldown = 30s\n"
        "evm.retry_max = 4\n"
        "evm.min_priority_fee = 0\n";
    config_errors errs;
    config *cfg = NULL;
    config_errors_init(&errs);
    int rc = config_load_buffer(&cfg, &errs, &evm_test_schema, "api.conf", text, strlen(text), NULL);
    if (rc != 0 && config_errors_print(&errs, stderr) != 0)
        CU_FAIL("cannot print the config errors");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    evm_rpc_options o;
    evm_fee_policy p;
    bool configured = false;
    char eb[128];
    evm_rpc_options_init(&o);
    evm_fee_policy_init(&p);
    CU_ASSERT_EQUAL(evm_rpc_options_from_config(&o, &p, &configured, eb, sizeof eb, cfg), 0);
    CU_ASSERT_TRUE(configured);
    CU_ASSERT_EQUAL(o.chain_id, 31337);
    CU_ASSERT_EQUAL_FATAL(o.n_endpoints, 2);
    CU_ASSERT_STRING_EQUAL(o.endpoints[1], "https://backup.example/v3/KEY");
    CU_ASSERT_EQUAL(o.timeout_ms, 5000);
    CU_ASSERT_EQUAL(o.connect_timeout_ms, 3000);
    CU_ASSERT_EQUAL(o.breaker_failures, 5);
    CU_ASSERT_EQUAL(o.breaker_cooldown_ms, 30000);
    CU_ASSERT_EQUAL(o.retry_max, 4);
    CU_ASSERT_EQUAL(o.retry_base_ms, 100);
    CU_ASSERT_EQUAL(o.retry_cap_ms, 2000);
    CU_ASSERT_EQUAL(p.base_fee_multiplier, 2);
    CU_ASSERT_TRUE(u256_is_zero(&p.min_priority_fee));
    evm_rpc *rpc;
    evm_rpc_error err;
    CU_ASSERT_EQUAL(evm_rpc_new(&rpc, &err, &o), EVM_OK);
    evm_rpc_free(rpc);
    /* the endpoint list is secret: config_dump redacts it */
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    CU_ASSERT_EQUAL(config_dump(cfg, f), 0);
    fclose(f);
    CU_ASSERT_PTR_NULL(strstr(dump, "KEY"));
    free(dump);
    config_free(cfg);

    static const char bad[] = "evm.min_priority_fee = 1 gwei\n";
    CU_ASSERT_EQUAL_FATAL(config_load_buffer(&cfg, &errs, &evm_test_schema, "api.conf", bad,
                                             strlen(bad), NULL), 0);
    evm_rpc_options_init(&o);
    CU_ASSERT_EQUAL(evm_rpc_options_from_config(&o, &p, &configured, eb, sizeof eb, cfg), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb, "evm.min_priority_fee"));
    config_free(cfg);

    /* defaults only: no endpoints, not configured */
    CU_ASSERT_EQUAL_FATAL(config_load_buffer(&cfg, &errs, &evm_test_schema, "api.conf", "", 0, NULL), 0);
    evm_rpc_options_init(&o);
    evm_fee_policy_init(&p);
    CU_ASSERT_EQUAL(evm_rpc_options_from_config(&o, &p, &configured, eb, sizeof eb, cfg), 0);
    CU_ASSERT_FALSE(configured);
    CU_ASSERT_EQUAL(o.chain_id, 0);
    char dec[U256_DEC_MAX];
    u256_to_dec(dec, &p.min_priority_fee);
    CU_ASSERT_STRING_EQUAL(dec, "1000000000");
    config_free(cfg);
    config_errors_dispose(&errs);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"options", test_options},
        {"labels", test_labels},
        {"method_table", test_method_table},
        {"config", test_config},
        {NULL, NULL},
    };
    test_add_suite("evm_rpc", cases);
}
