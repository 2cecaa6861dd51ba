/* policy: strict parsing (every mistake named by its JSON path), the
 * canonical hash, and every rule, allowed and denied. */
#include "abi.h"
#include "hex.h"
#include "policy.h"
#include "test_support.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SELF "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define USDC "0x5FbDB2315678afecb367f032d93F642f64180aa3" /* EIP-55 form */
#define POOL "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
#define PAYEE "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
#define STRANGER "0x9999999999999999999999999999999999999999"
#define PAYOUT "0x1234567890123456789012345678901234567890"

static const char policy_json[] =
    "{\"version\": 1,\n"
    " \"messages\": {\"allow\": true, \"max_bytes\": 64},\n"
    " \"chains\": [\n"
    "  {\"chain_id\": 1, \"tx_types\": [\"eip1559\"], \"max_gas_limit\": 500000,\n"
    "   \"max_fee_per_gas\": \"100000000000\",\n"
    "   \"native\": {\"max_value\": \"1000\", \"daily_limit\": \"2500\", \"recipients\": [\"self\", \"" PAYEE "\"]},\n"
    "   \"contracts\": [\n"
    "    {\"address\": \"" USDC "\", \"label\": \"usdc\", \"daily_limit\": \"1000000\",\n"
    "     \"erc20\": {\"transfer_to\": [\"" PAYEE "\"], \"approve_spenders\": [\"" POOL "\"], \"approve_max\": \"5000000\"}},\n"
    "    {\"address\": \"" POOL "\", \"label\": \"pool\",\n"
    "     \"calls\": [{\"function\": \"supply(address,uint256,address,uint16)\",\n"
    "                \"args\": [[\"" USDC "\"], {\"max\": \"777\"}, \"self\", \"any\"]},\n"
    "               {\"function\": \"withdraw(address,uint256,address)\", \"args\": [\"any\", \"any\", \"self\"]}]}]},\n"
    "  {\"chain_id\": 31337,\n"
    "   \"native\": {\"max_value\": \"5\", \"daily_limit\": \"10\", \"any_recipient\": true},\n"
    "   \"contracts\": [{\"address\": \"" PAYOUT "\", \"label\": \"payouts\", \"daily_limit\": \"100\",\n"
    "                  \"erc20\": {\"transfer_to_any\": true}}]}]}\n";

static policy *pol;
static uint8_t self[20], usdc[20], pool_[20], payee[20], stranger[20], payout[20];

static int addr_of(uint8_t out[20], const char *text)
{
    char lower[43];
    for (size_t i = 0; i < 42; i++)
        lower[i] = (char)(text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]);
    lower[42] = 0;
    return hex_decode_exact(out, 20, lower);
}

static int suite_init(void)
{
    char err[400];
    if (sodium_init() < 0)
        return -1;
    if (policy_parse(&pol, err, sizeof err, (const uint8_t *)policy_json, strlen(policy_json)) != 0) {
        fprintf(stderr, "policy: %s\n", err);
        return -1;
    }
    if (addr_of(self, SELF) || addr_of(usdc, USDC) || addr_of(pool_, POOL) ||
        addr_of(payee, PAYEE) || addr_of(stranger, STRANGER) || addr_of(payout, PAYOUT))
        return -1;
    return 0;
}

static int suite_clean(void)
{
    policy_free(pol);
    return 0;
}

static void word(uint8_t out[32], uint64_t v)
{
    memset(out, 0, 32);
    for (int i = 0; i < 8; i++)
        out[31 - i] = (uint8_t)(v >> (8 * i));
}

/* A valid EIP-1559 transaction on chain 1 to `to` with calldata. */
static ethtx base_tx(const uint8_t to[20], const uint8_t *data, size_t data_len)
{
    ethtx tx;
    memset(&tx, 0, sizeof tx);
    tx.type = ETHTX_EIP1559;
    tx.chain_id = 1;
    tx.gas_limit = 100000;
    word(tx.max_fee, 50000000000ull);
    word(tx.max_priority_fee, 1000000000ull);
    tx.has_to = true;
    memcpy(tx.to, to, 20);
    tx.data = data;
    tx.data_len = data_len;
    return tx;
}

static size_t calldata(uint8_t *out, const char *sig, const abi_value *args, size_t n)
{
    size_t len = 0;
    CU_ASSERT_FATAL(abi_encode_call(out, 512, &len, sig, args, n) == ABI_OK);
    return len;
}

static void expect_with(const policy *p, const ethtx *tx, const char *rule)
{
    policy_decision d;
    policy_check_tx(p, &d, tx, self);
    if (rule) {
        if (d.allow || strcmp(d.rule, rule) != 0)
            fprintf(stderr, "expected denial by %s, got %s (%s)\n", rule, d.allow ? "allow" : d.rule, d.detail);
        CU_ASSERT_FALSE(d.allow);
        CU_ASSERT_STRING_EQUAL(d.rule, rule);
        CU_ASSERT(d.detail[0] != '\0');
    } else {
        if (!d.allow)
            fprintf(stderr, "expected allow, denied by %s: %s\n", d.rule, d.detail);
        CU_ASSERT_TRUE(d.allow);
    }
}

static void expect(const ethtx *tx, const char *rule)
{
    expect_with(pol, tx, rule);
}

static void test_parse_and_hash(void)
{
    char err[400];
    policy *p2 = NULL;
    CU_ASSERT_EQUAL(policy_chain_count(pol), 2);
    /* Reformatted (spacing, key order) → same canonical form and hash. */
    const char *a = "{\"version\":1,\"chains\":[{\"native\":{\"any_recipient\":true,\"daily_limit\":\"9\",\"max_value\":\"1\"},\"chain_id\":7}]}";
    const char *b = "{ \"chains\" : [ { \"chain_id\" : 7, \"native\" : { \"max_value\" : \"1\",\n \"daily_limit\": \"9\", \"any_recipient\": true } } ],\n \"version\" : 1 }";
    const char *c = "{\"version\":1,\"chains\":[{\"native\":{\"any_recipient\":true,\"daily_limit\":\"9\",\"max_value\":\"2\"},\"chain_id\":7}]}";
    policy *pa = NULL, *pb = NULL, *pc = NULL;
    CU_ASSERT_FATAL(policy_parse(&pa, err, sizeof err, (const uint8_t *)a, strlen(a)) == 0);
    CU_ASSERT_FATAL(policy_parse(&pb, err, sizeof err, (const uint8_t *)b, strlen(b)) == 0);
    CU_ASSERT_FATAL(policy_parse(&pc, err, sizeof err, (const uint8_t *)c, strlen(c)) == 0);
    CU_ASSERT(memcmp(policy_hash(pa), policy_hash(pb), 32) == 0);
    CU_ASSERT(memcmp(policy_hash(pa), policy_hash(pc), 32) != 0);
    size_t len;
    const char *canon = policy_canonical(pa, &len);
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)canon, len);
    CU_ASSERT(memcmp(h, policy_hash(pa), 32) == 0);
    CU_ASSERT(memcmp(canon, "{\"chains\":[{\"chain_id\":7,", 25) == 0); /* sorted keys */
    policy_free(pa);
    policy_free(pb);
    policy_free(pc);
    policy_free(p2);
}

static void test_parse_errors(void)
{
    static const struct {
        const char *json;
        const char *want; /* substring of the error */
    } cases[] = {
        {"", "line"},
        {"[]", "JSON object"},
        {"{\"version\":1,\"chains\":[]}", "chains"},
        {"{\"version\":2,\"chains\":[{\"chain_id\":1}]}", "version"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1}],\"extra\":1}", "unknown key \"extra\""},
        {"{\"version\":1,\"version\":1,\"chains\":[{\"chain_id\":1}]}", "duplicate"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1.5}]}", "chains[0].chain_id"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":0}]}", "chains[0].chain_id"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1},{\"chain_id\":1}]}", "listed twice"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"max_value\":\"01\"}}]}", "chains[0].native.max_value"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"max_value\":5}}]}", "chains[0].native.max_value"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"any_recipient\":true}}]}", "any_recipient needs a daily_limit"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"recipients\":[\"0x12\"]}}]}", "recipients[0]"},
        /* a mixed-case address must be a valid EIP-55 checksum (one letter's case flipped) */
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"recipients\":[\"0x5FbDB2315678afecb367f032d93F642f64180AA3\"]}}]}", "EIP-55"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"native\":{\"recipients\":[\"self\",\"self\"]}}]}", "twice"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"tx_types\":[\"eip1559\",\"eip1559\"]}]}", "tx_types"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\"}]}]}", "allows no function"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"erc20\":{\"transfer_to_any\":true}}]}]}", "transfer_to_any needs a daily_limit"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f(uint)\"}]}]}]}", "calls[0].function"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f(address x)\"}]}]}]}", "calls[0].function"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f(address,uint256)\",\"args\":[\"any\"]}]}]}]}", "calls[0].args"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f(uint256)\",\"args\":[\"self\"]}]}]}]}", "calls[0].args[0]"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f(bool)\",\"args\":[{\"max\":\"1\"}]}]}]}]}", "only takes \"any\""},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"transfer(address,uint256)\",\"args\":[\"any\",\"any\"]}]}]}]}", "erc20"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f()\"},{\"function\":\"f()\"}]}]}]}", "same selector"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"f()\"}]},{\"address\":\"" POOL "\",\"calls\":[{\"function\":\"g()\"}]}]}]}", "contract listed twice"},
        {"{\"version\":1,\"chains\":[{\"chain_id\":1,\"contracts\":[{\"address\":\"" POOL "\",\"label\":\"Bad Label\",\"calls\":[{\"function\":\"f()\"}]}]}]}", "label"},
        {"{\"version\":1,\"messages\":{\"allow\":\"yes\"},\"chains\":[{\"chain_id\":1}]}", "messages.allow"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[400] = "";
        policy *p = NULL;
        int rc = policy_parse(&p, err, sizeof err, (const uint8_t *)cases[i].json, strlen(cases[i].json));
        if (rc == 0 || !strstr(err, cases[i].want))
            fprintf(stderr, "case %zu: rc=%d err=\"%s\" (want \"%s\")\n", i, rc, err, cases[i].want);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(p);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
    }
}

static void test_chain_type_gas_value(void)
{
    ethtx tx = base_tx(payee, NULL, 0);
    expect(&tx, NULL);
    tx.chain_id = 5;
    expect(&tx, "chain.not_allowed");
    tx = base_tx(payee, NULL, 0);
    tx.type = ETHTX_LEGACY;
    expect(&tx, "tx.type_not_allowed");
    tx = base_tx(payee, NULL, 0);
    tx.has_to = false;
    expect(&tx, "tx.contract_creation");
    tx = base_tx(payee, NULL, 0);
    tx.gas_limit = 500001;
    expect(&tx, "gas.limit");
    tx = base_tx(payee, NULL, 0);
    word(tx.max_fee, 100000000001ull);
    expect(&tx, "gas.fee_cap");
    tx = base_tx(payee, NULL, 0);
    word(tx.max_priority_fee, 60000000000ull);
    expect(&tx, "gas.priority_above_max");
    tx = base_tx(payee, NULL, 0);
    word(tx.value, 1001);
    expect(&tx, "native.value_cap");
}

static void test_native(void)
{
    policy_decision d;
    ethtx tx = base_tx(payee, NULL, 0);
    word(tx.value, 1000);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 1);
    CU_ASSERT_TRUE(d.spends[0].limited);
    CU_ASSERT_STRING_EQUAL(d.spends[0].label, "native");
    /* value plus the most the transaction can burn in gas (100000 × 50 gwei) */
    u256 want = u256_from_u64(1000 + 100000ull * 50000000000ull), lim = u256_from_u64(2500);
    CU_ASSERT_EQUAL(u256_cmp(&d.spends[0].amount, &want), 0);
    CU_ASSERT_EQUAL(u256_cmp(&d.spends[0].limit, &lim), 0);
    static const uint8_t zero[20];
    CU_ASSERT(memcmp(d.spends[0].token, zero, 20) == 0);
    tx = base_tx(self, NULL, 0); /* "self" is in recipients */
    expect(&tx, NULL);
    tx = base_tx(stranger, NULL, 0);
    expect(&tx, "native.recipient");
    /* chain 31337: any recipient, bounded */
    tx = base_tx(stranger, NULL, 0);
    tx.chain_id = 31337;
    word(tx.value, 5);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 1);
    word(tx.value, 6);
    expect(&tx, "native.value_cap");
}

static void test_erc20(void)
{
    uint8_t cd[512];
    policy_decision d;
    abi_value args[2];
    args[0] = abi_arg_address(payee);
    args[1] = abi_arg_uint64(250);
    size_t n = calldata(cd, "transfer(address,uint256)", args, 2);
    ethtx tx = base_tx(usdc, cd, n);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE_FATAL(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 2); /* the token, and the native coin for gas */
    CU_ASSERT(memcmp(d.spends[0].token, usdc, 20) == 0);
    CU_ASSERT_STRING_EQUAL(d.spends[0].label, "usdc");
    u256 lim = u256_from_u64(1000000);
    CU_ASSERT_EQUAL(u256_cmp(&d.spends[0].limit, &lim), 0);

    args[0] = abi_arg_address(stranger);
    n = calldata(cd, "transfer(address,uint256)", args, 2);
    tx = base_tx(usdc, cd, n);
    expect(&tx, "erc20.recipient");

    /* strict decoding: a trailing byte, a dirty address word */
    args[0] = abi_arg_address(payee);
    n = calldata(cd, "transfer(address,uint256)", args, 2);
    cd[n] = 0;
    tx = base_tx(usdc, cd, n + 1);
    expect(&tx, "contract.calldata");
    cd[4] = 1; /* upper bytes of the address word */
    tx = base_tx(usdc, cd, n);
    expect(&tx, "contract.calldata");
    tx = base_tx(usdc, cd, 3);
    expect(&tx, "contract.calldata");

    args[0] = abi_arg_address(pool_);
    args[1] = abi_arg_uint64(5000000);
    n = calldata(cd, "approve(address,uint256)", args, 2);
    tx = base_tx(usdc, cd, n);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 1); /* gas only */
    CU_ASSERT_STRING_EQUAL(d.spends[0].label, "native");
    args[1] = abi_arg_uint64(5000001);
    n = calldata(cd, "approve(address,uint256)", args, 2);
    tx = base_tx(usdc, cd, n);
    expect(&tx, "erc20.approve_max");
    args[0] = abi_arg_address(stranger);
    args[1] = abi_arg_uint64(1);
    n = calldata(cd, "approve(address,uint256)", args, 2);
    tx = base_tx(usdc, cd, n);
    expect(&tx, "erc20.spender");

    /* another selector on the token */
    abi_value t3[3] = {abi_arg_address(self), abi_arg_address(payee), abi_arg_uint64(1)};
    n = calldata(cd, "transferFrom(address,address,uint256)", t3, 3);
    tx = base_tx(usdc, cd, n);
    expect(&tx, "contract.selector");
    /* calldata to an unlisted contract */
    tx = base_tx(stranger, cd, n);
    expect(&tx, "contract.not_allowed");

    /* transfer_to_any on chain 31337: anyone, counted against the limit */
    args[0] = abi_arg_address(stranger);
    args[1] = abi_arg_uint64(99);
    n = calldata(cd, "transfer(address,uint256)", args, 2);
    tx = base_tx(payout, cd, n);
    tx.chain_id = 31337;
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 2);
    CU_ASSERT_TRUE(d.spends[0].limited);
}

static void test_generic_calls(void)
{
    uint8_t cd[512];
    policy_decision d;
    abi_value a4[4] = {abi_arg_address(usdc), abi_arg_uint64(777), abi_arg_address(self), abi_arg_uint64(0)};
    size_t n = calldata(cd, "supply(address,uint256,address,uint16)", a4, 4);
    ethtx tx = base_tx(pool_, cd, n);
    expect(&tx, NULL);
    word(tx.value, 3); /* value with a call: within the cap, counted */
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 1);

    a4[0] = abi_arg_address(stranger);
    n = calldata(cd, "supply(address,uint256,address,uint16)", a4, 4);
    tx = base_tx(pool_, cd, n);
    expect(&tx, "call.arg");
    a4[0] = abi_arg_address(usdc);
    a4[1] = abi_arg_uint64(778);
    n = calldata(cd, "supply(address,uint256,address,uint16)", a4, 4);
    tx = base_tx(pool_, cd, n);
    expect(&tx, "call.arg");
    a4[1] = abi_arg_uint64(1);
    a4[2] = abi_arg_address(payee);
    n = calldata(cd, "supply(address,uint256,address,uint16)", a4, 4);
    tx = base_tx(pool_, cd, n);
    expect(&tx, "call.arg");

    abi_value a3[3] = {abi_arg_address(usdc), abi_arg_uint64(5), abi_arg_address(self)};
    n = calldata(cd, "withdraw(address,uint256,address)", a3, 3);
    tx = base_tx(pool_, cd, n);
    expect(&tx, NULL);
    a3[2] = abi_arg_address(stranger); /* withdraw to someone else: the drain a receiver arg allows */
    n = calldata(cd, "withdraw(address,uint256,address)", a3, 3);
    tx = base_tx(pool_, cd, n);
    expect(&tx, "call.arg");
}

static void test_messages(void)
{
    policy_decision d;
    static const uint8_t text64[] = "0123456789012345678901234567890123456789012345678901234567890123";
    policy_check_message(pol, &d, text64, 64);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(pol, &d, (const uint8_t *)"hi", 2);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(pol, &d, (const uint8_t *)"0123456789012345678901234567890123456789012345678901234567890123x", 65);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.too_long");
    const char *j = "{\"version\":1,\"chains\":[{\"chain_id\":1}]}";
    policy *p = NULL;
    char err[200];
    CU_ASSERT_FATAL(policy_parse(&p, err, sizeof err, (const uint8_t *)j, strlen(j)) == 0);
    policy_check_message(p, &d, (const uint8_t *)"x", 1);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.not_allowed");
    /* A chain without native rules allows no value and no recipient. */
    ethtx tx = base_tx(payee, NULL, 0);
    policy_check_tx(p, &d, &tx, self);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "native.recipient");
    word(tx.value, 1);
    policy_check_tx(p, &d, &tx, self);
    CU_ASSERT_STRING_EQUAL(d.rule, "native.value_cap");
    policy_free(p);
}

/* SignMessage content: printable UTF-8 text by default; a 32-byte binary
 * message (an eth_sign-style hash approval) never; an optional prefix
 * allowlist. */
static void test_message_content(void)
{
    policy_decision d;
    uint8_t hash[32];
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(0x80 + i * 7);
    /* the default policy (text only) */
    policy_check_message(pol, &d, hash, 32);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.hash_like");
    static const uint8_t bin[] = {'a', 0x00, 'b'};
    policy_check_message(pol, &d, bin, sizeof bin);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.not_text");
    static const uint8_t bad_utf8[] = {'a', 0xc0, 0xaf};         /* overlong '/' */
    policy_check_message(pol, &d, bad_utf8, sizeof bad_utf8);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.not_text");
    static const uint8_t rlo[] = {'p', 'a', 'y', 0xe2, 0x80, 0xae, 'x'}; /* U+202E */
    policy_check_message(pol, &d, rlo, sizeof rlo);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.not_text");
    static const uint8_t surrogate[] = {0xed, 0xa0, 0x80};
    CU_ASSERT_FALSE(policy_is_text(surrogate, sizeof surrogate));
    static const uint8_t ok[] = "Caf\xc3\xa9 \xe2\x82\xac 12\n\tline \xf0\x9f\x98\x80";
    CU_ASSERT_TRUE(policy_is_text(ok, sizeof ok - 1));
    policy_check_message(pol, &d, ok, sizeof ok - 1);
    CU_ASSERT_TRUE(d.allow);
    /* 32 bytes of text are text, not a hash */
    policy_check_message(pol, &d, (const uint8_t *)"abcdefghijklmnopqrstuvwxyz012345", 32);
    CU_ASSERT_TRUE(d.allow);

    /* text_only false: binary allowed, but never 32 binary bytes */
    const char *j = "{\"version\":1,\"messages\":{\"allow\":true,\"text_only\":false},\"chains\":[{\"chain_id\":1}]}";
    policy *p = NULL;
    char err[300];
    CU_ASSERT_FATAL(policy_parse(&p, err, sizeof err, (const uint8_t *)j, strlen(j)) == 0);
    policy_check_message(p, &d, bin, sizeof bin);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(p, &d, hash, 31);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(p, &d, hash, 32);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.hash_like");
    policy_free(p);

    /* prefixes */
    j = "{\"version\":1,\"messages\":{\"allow\":true,\"prefixes\":[\"Sign in to Coffer: \",\"Coffer withdrawal \"]},"
        "\"chains\":[{\"chain_id\":1}]}";
    CU_ASSERT_FATAL(policy_parse(&p, err, sizeof err, (const uint8_t *)j, strlen(j)) == 0);
    policy_check_message(p, &d, (const uint8_t *)"Sign in to Coffer: 42", 21);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(p, &d, (const uint8_t *)"Coffer withdrawal 7", 19);
    CU_ASSERT_TRUE(d.allow);
    policy_check_message(p, &d, (const uint8_t *)"Sign in to Evil: 42", 19);
    CU_ASSERT_FALSE(d.allow);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.prefix");
    policy_check_message(p, &d, (const uint8_t *)"Sign in", 7);
    CU_ASSERT_STRING_EQUAL(d.rule, "message.prefix");
    policy_free(p);

    static const struct {
        const char *json;
        const char *want;
    } bad[] = {
        {"{\"version\":1,\"messages\":{\"text_only\":1},\"chains\":[{\"chain_id\":1}]}", "messages.text_only"},
        {"{\"version\":1,\"messages\":{\"prefixes\":[]},\"chains\":[{\"chain_id\":1}]}", "messages.prefixes"},
        {"{\"version\":1,\"messages\":{\"prefixes\":[\"\"]},\"chains\":[{\"chain_id\":1}]}", "messages.prefixes[0]"},
        {"{\"version\":1,\"messages\":{\"prefixes\":[\"a\\u0007b\"]},\"chains\":[{\"chain_id\":1}]}", "messages.prefixes[0]"},
        {"{\"version\":1,\"messages\":{\"prefixes\":[\"a\\u202eb\"]},\"chains\":[{\"chain_id\":1}]}", "messages.prefixes[0]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = NULL;
        err[0] = '\0';
        int rc = policy_parse(&p, err, sizeof err, (const uint8_t *)bad[i].json, strlen(bad[i].json));
        if (rc == 0 || !strstr(err, bad[i].want))
            fprintf(stderr, "message case %zu: rc=%d err=\"%s\"\n", i, rc, err);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].want));
        policy_free(p);
    }
}

/* Gas is money: gas_limit × max_fee_per_gas (legacy: gas_price) is charged
 * to native.daily_limit with the value; max_nonce_gap reaches the ledger. */
static void test_gas_and_nonce_gap(void)
{
    policy_decision d;
    ethtx tx = base_tx(payee, NULL, 0);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE_FATAL(d.allow);
    CU_ASSERT_EQUAL_FATAL(d.n_spends, 1);
    u256 want = u256_from_u64(100000ull * 50000000000ull);
    CU_ASSERT_EQUAL(u256_cmp(&d.spends[0].amount, &want), 0);
    CU_ASSERT_TRUE(d.spends[0].limited);
    CU_ASSERT_EQUAL(d.max_nonce_gap, POLICY_NONCE_GAP_DEFAULT);
    /* legacy: gas_price */
    tx = base_tx(stranger, NULL, 0);
    tx.chain_id = 31337;
    tx.type = ETHTX_LEGACY;
    tx.gas_limit = 21000;
    word(tx.max_fee, 3);
    word(tx.max_priority_fee, 0);
    word(tx.value, 4);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE_FATAL(d.allow);
    want = u256_from_u64(21000 * 3 + 4);
    CU_ASSERT_EQUAL(u256_cmp(&d.spends[0].amount, &want), 0);
    /* free gas and no value: nothing to charge */
    word(tx.max_fee, 0);
    word(tx.value, 0);
    policy_check_tx(pol, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.n_spends, 0);

    /* a chain without a fee cap: gas_limit × fee must fit 256 bits */
    const char *j = "{\"version\":1,\"chains\":[{\"chain_id\":7,\"max_nonce_gap\":50,"
                    "\"native\":{\"any_recipient\":true,\"daily_limit\":\"10\"}}]}";
    policy *p = NULL;
    char err[300];
    CU_ASSERT_FATAL(policy_parse(&p, err, sizeof err, (const uint8_t *)j, strlen(j)) == 0);
    tx = base_tx(stranger, NULL, 0);
    tx.chain_id = 7;
    tx.gas_limit = UINT64_MAX;
    memset(tx.max_fee, 0xff, 32);
    memset(tx.max_priority_fee, 0, 32);
    expect_with(p, &tx, "gas.cost_overflow");
    tx.gas_limit = 21000;
    word(tx.max_fee, 1);
    policy_check_tx(p, &d, &tx, self);
    CU_ASSERT_TRUE(d.allow);
    CU_ASSERT_EQUAL(d.max_nonce_gap, 50);
    policy_free(p);
    j = "{\"version\":1,\"chains\":[{\"chain_id\":7,\"max_nonce_gap\":0}]}";
    CU_ASSERT_EQUAL(policy_parse(&p, err, sizeof err, (const uint8_t *)j, strlen(j)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "chains[0].max_nonce_gap"));
}

/* policy_load_file: as the KEK ring, the file itself (no symlink), a
 * regular file, owned by root or the caller, not group/other-writable. */
static void test_load_file_checks(void)
{
    char dir[64], path[128], link[128], err[400];
    policy *p = NULL;
    snprintf(dir, sizeof dir, "/tmp/coffer-test-policy.XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/policy.json", dir);
    snprintf(link, sizeof link, "%s/link.json", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(policy_json, f);
    fclose(f);
    CU_ASSERT_FATAL(chmod(path, 0644) == 0);
    CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, path), 0);
    policy_free(p);
    p = NULL;
    CU_ASSERT_FATAL(chmod(path, 0664) == 0);
    CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, path), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not group/other-writable"));
    CU_ASSERT_FATAL(chmod(path, 0646) == 0);
    CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, path), -1);
    CU_ASSERT_FATAL(chmod(path, 0600) == 0);
    CU_ASSERT_FATAL(symlink(path, link) == 0);
    CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, link), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));
    CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, dir), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
    if (geteuid() == 0) { /* another owner (only root can give a file away) */
        CU_ASSERT_FATAL(chown(path, 65534, 65534) == 0);
        CU_ASSERT_EQUAL(policy_load_file(&p, err, sizeof err, path), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "must be owned by root"));
    }
    CU_ASSERT_PTR_NULL(p);
    unlink(link);
    unlink(path);
    rmdir(dir);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"parse and canonical hash", test_parse_and_hash},
        {"parse errors name their path", test_parse_errors},
        {"chain, type, creation, gas, value cap", test_chain_type_gas_value},
        {"native transfers", test_native},
        {"ERC-20 transfer and approve", test_erc20},
        {"generic calls with argument rules", test_generic_calls},
        {"messages", test_messages},
        {"message content: text, hash-like, prefixes", test_message_content},
        {"gas counts as native spend; max_nonce_gap", test_gas_and_nonce_gap},
        {"policy file owner, mode, symlink", test_load_file_checks},
        {NULL, NULL},
    };
    test_add_suite_with("policy", suite_init, suite_clean, cases);
}
