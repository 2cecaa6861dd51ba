/* adapter: see adapter.h. */
#include "adapter.h"

#include "abi.h"
#include "hex.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const adapter_ops *adapter_get(const adapter_protocol *p)
{
    switch (p->kind) {
    case ADAPTER_AAVE_V3: return &adapter_aave_v3_ops;
    case ADAPTER_COMPOUND_V3: return &adapter_compound_v3_ops;
    case ADAPTER_ERC4626: return &adapter_erc4626_ops;
    }
    return NULL;
}

static int adapter_addr(uint8_t out[20], const json_t *root, const char *key)
{
    const char *s = json_string_value(json_object_get(root, key));
    if (!s || strlen(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return -1;
    return hex_decode_exact(out, 20, s + 2);
}

int adapter_protocol_load(adapter_protocol *p, char *msg, size_t msg_len, const char *id, const char *name,
                          const char *category, const char *adapter, const char *addresses_json,
                          const char *token_hex)
{
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->category, sizeof p->category, "%s", category);
    if (hex_decode_exact(p->token, 20, token_hex) != 0) {
        snprintf(msg, msg_len, "protocol %s: bad token address", name);
        return -1;
    }
    json_t *root = json_loads(addresses_json, 0, NULL);
    int rc = -1;
    if (strcmp(adapter, "aave_v3") == 0) {
        p->kind = ADAPTER_AAVE_V3;
        rc = adapter_addr(p->target, root, "pool") == 0 && adapter_addr(p->position, root, "a_token") == 0 ? 0 : -1;
    } else if (strcmp(adapter, "compound_v3") == 0) {
        p->kind = ADAPTER_COMPOUND_V3;
        rc = adapter_addr(p->target, root, "comet");
        memcpy(p->position, p->target, 20);
    } else if (strcmp(adapter, "erc4626") == 0) {
        p->kind = ADAPTER_ERC4626;
        rc = adapter_addr(p->target, root, "vault");
        memcpy(p->position, p->target, 20);
    }
    json_decref(root);
    if (rc != 0)
        snprintf(msg, msg_len, "protocol %s: adapter %s with unusable addresses", name, adapter);
    return rc;
}

int adapter_encode(adapter_call *out, const char *signature, const abi_value *args, size_t nargs)
{
    abi_err e = abi_encode_call(out->data, sizeof out->data, &out->len, signature, args, nargs);
    return e == ABI_OK ? 0 : -1;
}

int adapter_erc20_approve(adapter_call *out, const uint8_t spender[20], const u256 *amount)
{
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[2] = {abi_arg_address(spender), abi_arg_uint256(be)};
    return adapter_encode(out, "approve(address,uint256)", a, 2);
}

int adapter_erc20_transfer(adapter_call *out, const uint8_t to[20], const u256 *amount)
{
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[2] = {abi_arg_address(to), abi_arg_uint256(be)};
    return adapter_encode(out, "transfer(address,uint256)", a, 2);
}

evm_err adapter_call_uint(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t target[20],
                          const adapter_call *call, evm_block_id block)
{
    evm_call_msg m = {.to = target, .data = call->data, .data_len = call->len};
    uint8_t *ret = NULL;
    size_t n = 0;
    evm_err e = evm_rpc_call(rpc, &ret, &n, err, &m, block);
    if (e != EVM_OK)
        return e;
    abi_value v;
    abi_err ae = abi_decode_params(&v, 1, "uint256", ret, n, ABI_DECODE_STRICT);
    free(ret);
    if (ae != ABI_OK) {
        if (err)
            snprintf(err->message, sizeof err->message, "eth_call: expected one uint256: %s", abi_strerror(ae));
        return EVM_ERR_ABI;
    }
    u256_from_be32(out, v.word);
    return EVM_OK;
}

evm_err adapter_erc20_allowance(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t token[20],
                                const uint8_t owner[20], const uint8_t spender[20], evm_block_id block)
{
    adapter_call c;
    abi_value a[2] = {abi_arg_address(owner), abi_arg_address(spender)};
    if (adapter_encode(&c, "allowance(address,address)", a, 2) != 0)
        return EVM_ERR_INVALID_ARG;
    return adapter_call_uint(rpc, out, err, token, &c, block);
}

evm_err adapter_erc20_total_supply(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t token[20],
                                   evm_block_id block)
{
    adapter_call c;
    if (adapter_encode(&c, "totalSupply()", NULL, 0) != 0)
        return EVM_ERR_INVALID_ARG;
    return adapter_call_uint(rpc, out, err, token, &c, block);
}

void adapter_approvals(u256 amounts[2], size_t *n, const u256 *allowance, const u256 *amount)
{
    *n = 0;
    if (u256_cmp(allowance, amount) >= 0)
        return;
    if (!u256_is_zero(allowance))
        amounts[(*n)++] = U256_ZERO;
    amounts[(*n)++] = *amount;
}
