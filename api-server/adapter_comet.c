/* Compound v3 Comet: supply(asset, amount) credits the caller (self),
 * withdraw(asset, amount) pays the caller; the position is
 * balanceOf(self) on the Comet (principal times the supply index). Spender
 * of the approval: the Comet. */
#include "abi.h"
#include "adapter.h"

static int comet_call(adapter_call *out, const char *sig, const adapter_protocol *p, const u256 *amount)
{
    uint8_t be[32];
    u256_to_be32(be, amount);
    abi_value a[2] = {abi_arg_address(p->token), abi_arg_uint256(be)};
    return adapter_encode(out, sig, a, 2);
}

static int comet_supply(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    (void)self;
    return comet_call(out, "supply(address,uint256)", p, amount);
}

static int comet_withdraw(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20])
{
    (void)self;
    return comet_call(out, "withdraw(address,uint256)", p, amount);
}

static evm_err comet_balance(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const adapter_protocol *p,
                             const uint8_t self[20], evm_block_id block)
{
    return evm_rpc_erc20_balance_of(rpc, out, err, p->position, self, block);
}

const adapter_ops adapter_compound_v3_ops = {"compound_v3", comet_supply, comet_withdraw, comet_balance};
