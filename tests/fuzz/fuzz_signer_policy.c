/* Fuzzes the signer's policy parser (signer/policy.c).
 *
 * Properties: a refused policy always says why; an accepted one has a
 * canonical form that parses again to the same canonical bytes and hash
 * (canonicalization is idempotent); and deciding a few fixed transactions
 * and messages against it gives well-formed decisions. */
#include "abi.h"
#include "fuzz_check.h"
#include "policy.h"

#include <string.h>

static void decide(const policy *p)
{
    static const uint8_t self[20] = {0xaa}, to[20] = {0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35,
                                                       0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35, 0x35};
    uint8_t cd[100];
    size_t n = 0;
    abi_value args[2] = {abi_arg_address(self), abi_arg_uint64(5)};
    CHECK(abi_encode_call(cd, sizeof cd, &n, "transfer(address,uint256)", args, 2) == ABI_OK);
    for (int variant = 0; variant < 4; variant++) {
        ethtx tx;
        policy_decision d;
        memset(&tx, 0, sizeof tx);
        tx.type = variant & 1 ? ETHTX_LEGACY : ETHTX_EIP1559;
        tx.chain_id = variant < 2 ? 1 : 31337;
        tx.gas_limit = 21000;
        tx.has_to = true;
        memcpy(tx.to, to, 20);
        tx.value[31] = (uint8_t)variant;
        if (variant == 2) {
            tx.data = cd;
            tx.data_len = n;
        }
        policy_check_tx(p, &d, &tx, self);
        CHECK(d.allow == (d.rule[0] == '\0'));
        CHECK(d.n_spends <= POLICY_SPENDS_MAX);
    }
    policy_decision d;
    policy_check_message(p, &d, (const uint8_t *)"0123456789", 10);
    CHECK(d.allow == (d.rule[0] == '\0'));
    static const uint8_t hash[32] = {0xde, 0xad, 0xbe, 0xef};
    policy_check_message(p, &d, hash, sizeof hash);
    CHECK(!d.allow); /* a 32-byte binary message is never signed */
    CHECK(d.allow == (d.rule[0] == '\0'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    policy *p = NULL, *again = NULL;
    char err[400] = "";
    if (policy_parse(&p, err, sizeof err, data, size) != 0) {
        CHECK(p == NULL);
        CHECK(err[0] != '\0');
        return 0;
    }
    size_t len = 0, len2 = 0;
    const char *canon = policy_canonical(p, &len);
    CHECK(policy_parse(&again, err, sizeof err, (const uint8_t *)canon, len) == 0);
    const char *canon2 = policy_canonical(again, &len2);
    CHECK(len == len2 && memcmp(canon, canon2, len) == 0);
    CHECK(memcmp(policy_hash(p), policy_hash(again), POLICY_HASH_LEN) == 0);
    decide(p);
    policy_free(again);
    policy_free(p);
    return 0;
}
