/* ERC-4626 vault (Morpho, Yearn v3, ...): deposit(assets, receiver = self),
 * withdraw(assets, receiver = self, owner = self); the position is
 * convertToAssets(balanceOf(self)) (rounded down, as EIP-4626 says).
 * Spender of the approval: the vault. */
#include "abi.h"
#include "adapter.h"

static int v4626_supply(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    (void)p;
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[2] = {abi_arg_uint256(be), abi_arg_address(self)};
    return adapter_encode(out, "deposit(uint256,address)", a, 2);
}

static int v4626_withdraw(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    (void)p;
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[3] = {abi_arg_uint256(be), abi_arg_address(self), abi_arg_address(self)};
    return adapter_encode(out, "withdraw(uint256,address,address)", a, 3);
}

static evm_err v4626_balance(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const adapter_protocol *p,
                             const uint8_t self[20], evm_block_id block)
{
    u256 shares;
    evm_err e = evm_rpc_erc20_balance_of(rpc, &shares, err, p->position, self, block);
    if (e != EVM_OK)
        return e;
    if (u256_is_zero(&shares)) {
        *out = U256_ZERO;
        return EVM_OK;
    }
    uint8_t be[32];
    u256_to_be32(be, &shares);
    abi_value a[1] = {abi_arg_uint256(be)};
    adapter_call c;
    if (adapter_encode(&c, "convertToAssets(uint256)", a, 1) != 0)
        return EVM_ERR_INVALID_ARG;
    return adapter_call_uint(rpc, out, err, p->position, &c, block);
}

const adapter_ops adapter_erc4626_ops = {"erc4626", v4626_supply, v4626_withdraw, v4626_balance};
