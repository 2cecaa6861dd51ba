/* Aave v3 Pool: supply(asset, amount, onBehalfOf = self, referralCode 0),
 * withdraw(asset, amount, to = self); the position is the aToken's
 * balanceOf(self) (it grows with the liquidity index). Spender of the
 * approval: the pool. */
#include "abi.h"
#include "adapter.h"

static int aave_supply(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[4] = {abi_arg_address(p->token), abi_arg_uint256(be), abi_arg_address(self), abi_arg_uint64(0)};
    return adapter_encode(out, "supply(address,uint256,address,uint16)", a, 4);
}

static int aave_withdraw(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[3] = {abi_arg_address(p->token), abi_arg_uint256(be), abi_arg_address(self)};
    return adapter_encode(out, "withdraw(address,uint256,address)", a, 3);
}

static evm_err aave_balance(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const adapter_protocol *p,
                            const uint8_t self[20], evm_block_id block)
{
    return evm_rpc_erc20_balance_of(rpc, out, err, p->position, self, block);
}

const adapter_ops adapter_aave_v3_ops = {"aave_v3", aave_supply, aave_withdraw, aave_balance};
