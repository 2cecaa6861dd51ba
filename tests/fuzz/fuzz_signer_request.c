/* Fuzzes what coffer-signer does with bytes from its socket before any key
 * is touched: the frame reader (common/ipc), request decoding and strict
 * validation (signer/request.c), the transaction encoder (signer/ethtx.c)
 * and the policy decision (signer/policy.c) against a fixed policy.
 *
 * Input: the byte stream a peer sends. Properties: frames are at most
 * IPC_FRAME_MAX; an accepted request has exactly the field sizes the
 * protocol requires; its transaction always encodes, and the preimage is
 * one canonical RLP item (after the type byte for EIP-1559); a denial
 * always names its rule and an allowance carries at most two spends. */
#include "fuzz_check.h"
#include "ipc.h"
#include "keystore.h"
#include "policy.h"
#include "request.h"
#include "rlp.h"

#include <string.h>

static const char fuzz_policy[] =
    "{\"version\":1,\"messages\":{\"allow\":true,\"max_bytes\":64},\"chains\":["
    "{\"chain_id\":1,\"max_gas_limit\":500000,\"max_fee_per_gas\":\"100000000000\","
    "\"native\":{\"max_value\":\"1000\",\"daily_limit\":\"2500\",\"recipients\":[\"self\",\"0x7070707070707070707070707070707070707070\"]},"
    "\"contracts\":[{\"address\":\"0x3535353535353535353535353535353535353535\",\"label\":\"usdc\",\"daily_limit\":\"1000000\","
    "\"erc20\":{\"transfer_to\":[\"0x7070707070707070707070707070707070707070\"],\"approve_spenders\":[\"0x1111111111111111111111111111111111111111\"]}},"
    "{\"address\":\"0x1111111111111111111111111111111111111111\",\"label\":\"pool\",\"calls\":["
    "{\"function\":\"supply(address,uint256,address,uint16)\",\"args\":[[\"0x3535353535353535353535353535353535353535\"],{\"max\":\"777\"},\"self\",\"any\"]},"
    "{\"function\":\"f(bytes,string,bool,bytes4)\",\"args\":[\"any\",\"any\",\"any\",\"any\"]}]}]},"
    "{\"chain_id\":31337,\"native\":{\"max_value\":\"5\",\"daily_limit\":\"10\",\"any_recipient\":true}}]}";

static policy *pol;
static ipc_reader reader;

static void check_request(const request *r)
{
    CHECK(r->op != REQUEST_OP_NONE);
    CHECK(r->msg->version == REQUEST_PROTOCOL_VERSION && r->msg->request_id != 0);
    if (r->op == REQUEST_OP_GENERATE_KEY) {
        CHECK(keystore_owner_valid(r->owner, r->owner_len));
        return;
    }
    if (r->op == REQUEST_OP_STATUS)
        return;
    CHECK(r->sealed_key && r->address && keystore_owner_valid(r->owner, r->owner_len));
    if (r->op != REQUEST_OP_SIGN_TRANSACTION)
        return;

    const ethtx *tx = &r->tx;
    CHECK(tx->nonce <= REQUEST_NONCE_MAX); /* EIP-2681 */
    rlp_buf b;
    rlp_item item;
    uint8_t digest[32];
    rlp_buf_init(&b);
    CHECK(ethtx_signing_hash(digest, &b, tx) == RLP_OK);
    size_t skip = tx->type == ETHTX_EIP1559 ? 1 : 0;
    CHECK(b.len > skip);
    if (skip)
        CHECK(b.data[0] == 0x02);
    CHECK(rlp_validate(&item, b.data + skip, b.len - skip, RLP_DEFAULT_DEPTH) == RLP_OK);
    CHECK(item.type == RLP_TYPE_LIST);
    ethtx_sig sig;
    memset(&sig, 0xab, sizeof sig);
    sig.y_parity = 1;
    CHECK(ethtx_encode(&b, tx, &sig) == RLP_OK);
    CHECK(rlp_validate(&item, b.data + skip, b.len - skip, RLP_DEFAULT_DEPTH) == RLP_OK);
    rlp_buf_dispose(&b);

    policy_decision d;
    policy_check_tx(pol, &d, tx, r->address);
    CHECK(d.allow == (d.rule[0] == '\0'));
    CHECK(d.n_spends <= POLICY_SPENDS_MAX);
    if (d.allow)
        CHECK(tx->has_to);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!pol) {
        char err[256];
        CHECK(policy_parse(&pol, err, sizeof err, (const uint8_t *)fuzz_policy, strlen(fuzz_policy)) == 0);
        CHECK(ipc_reader_init(&reader) == 0);
    }
    ipc_reader_dispose(&reader);
    CHECK(ipc_reader_init(&reader) == 0);
    size_t off = 0;
    while (off <= size) {
        const uint8_t *frame = NULL;
        size_t frame_len = 0, used = 0;
        ipc_result res = ipc_reader_feed(&reader, &frame, &frame_len, &used, data + off, size - off);
        off += used;
        if (res != IPC_OK)
            break;
        CHECK(frame_len >= 1 && frame_len <= IPC_FRAME_MAX);
        request r;
        uint64_t rid = 0;
        char why[256];
        if (request_decode(&r, &rid, why, sizeof why, frame, frame_len) == 0) {
            check_request(&r);
            request_dispose(&r);
        } else {
            CHECK(why[0] != '\0');
        }
        if (off == size)
            break;
    }
    return 0;
}
