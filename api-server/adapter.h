/* adapter: protocol adapters behind one interface (DESIGN.md §4): the
 * calldata of supply and withdraw and the reading of a position's value,
 * for Aave v3 (adapter_aave.c), Compound v3 Comet (adapter_comet.c) and
 * ERC-4626 vaults (adapter_4626.c), plus the ERC-20 calls around them
 * (approve, transfer, allowance). Calldata is built with common/abi.
 *
 * Every call acts for `self`, the custodial wallet: receivers and owners
 * are the wallet itself, as the signer's policy pins them ("self").
 *
 * Approvals are exactly as large as the supply that follows (never
 * unlimited). A token that refuses to change a non-zero allowance to
 * another non-zero value (USDT) is served by adapter_approvals: when the
 * current allowance is non-zero and short, it asks for approve(0) first,
 * for every token (one extra transaction, rare: supplies consume the
 * allowance they were given exactly).
 *
 * Pointers are non-NULL unless said otherwise. */
#ifndef COFFER_ADAPTER_H
#define COFFER_ADAPTER_H

#include "abi.h"
#include "evm_rpc.h"
#include "u256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADAPTER_CALL_MAX 260u   /* longest calldata an adapter builds */
#define ADAPTER_ID_MAX 40u
#define ADAPTER_NAME_MAX 65u

typedef enum {
    ADAPTER_AAVE_V3 = 0,
    ADAPTER_COMPOUND_V3,
    ADAPTER_ERC4626,
} adapter_kind;

/* A supported_protocols row, ready to use. */
typedef struct {
    char id[ADAPTER_ID_MAX];           /* supported_protocols.id */
    char name[ADAPTER_NAME_MAX];
    char category[16];                 /* lending, lp, staking */
    adapter_kind kind;
    uint8_t token[20];                 /* the underlying asset */
    uint8_t target[20];                /* called for supply/withdraw: pool, comet, vault */
    uint8_t position[20];              /* read for the balance: aToken, comet, vault */
} adapter_protocol;

/* Calldata of a call, built into a caller buffer. */
typedef struct {
    uint8_t data[ADAPTER_CALL_MAX];
    size_t len;
} adapter_call;

/* One adapter's operations. */
typedef struct {
    const char *name;                  /* "aave_v3", "compound_v3", "erc4626" */
    /* supply(amount) from self, credited to self. */
    int (*supply)(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20]);
    /* withdraw(amount) back to self. */
    int (*withdraw)(adapter_call *out, const adapter_protocol *p, const u256 *amount, const uint8_t self[20]);
    /* The position's value in the underlying's base units at block. */
    evm_err (*balance)(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const adapter_protocol *p,
                       const uint8_t self[20], evm_block_id block);
} adapter_ops;

extern const adapter_ops adapter_aave_v3_ops;
extern const adapter_ops adapter_compound_v3_ops;
extern const adapter_ops adapter_erc4626_ops;

/* The operations of p's kind. */
const adapter_ops *adapter_get(const adapter_protocol *p);

/* Fills p from a supported_protocols row's text: adapter name, addresses
 * (jsonb text: {"pool","a_token"} / {"comet"} / {"vault"}, 0x-hex) and
 * token (40 hex digits, no 0x). Returns 0, or -1 with msg. */
__attribute__((warn_unused_result))
int adapter_protocol_load(adapter_protocol *p, char *msg, size_t msg_len, const char *id, const char *name,
                          const char *category, const char *adapter, const char *addresses_json,
                          const char *token_hex);

/* ERC-20 calldata: approve(spender, amount), transfer(to, amount).
 * Return 0, or -1 (encoding failed: cannot happen for valid input). */
__attribute__((warn_unused_result))
int adapter_erc20_approve(adapter_call *out, const uint8_t spender[20], const u256 *amount);
__attribute__((warn_unused_result))
int adapter_erc20_transfer(adapter_call *out, const uint8_t to[20], const u256 *amount);

/* ERC-20 totalSupply() at block: the bound no honest balance or transfer
 * of the token exceeds (bad chain data is refused against it). */
__attribute__((warn_unused_result))
evm_err adapter_erc20_total_supply(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t token[20],
                                   evm_block_id block);

/* ERC-20 allowance(owner, spender) at block. */
__attribute__((warn_unused_result))
evm_err adapter_erc20_allowance(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t token[20],
                                const uint8_t owner[20], const uint8_t spender[20], evm_block_id block);

/* The approvals to send before supplying `amount` given the current
 * allowance: *n gets 0 (enough already), 1 (approve(amount)) or 2
 * (approve(0), then approve(amount): a non-zero allowance that is short).
 * amounts[0..*n) the values to approve. */
void adapter_approvals(u256 amounts[2], size_t *n, const u256 *allowance, const u256 *amount);

/* A uint256 eth_call helper: calls target with data, decodes one
 * uint256 strictly (EVM_ERR_ABI otherwise). */
__attribute__((warn_unused_result))
evm_err adapter_call_uint(evm_rpc *rpc, u256 *out, evm_rpc_error *err, const uint8_t target[20],
                          const adapter_call *call, evm_block_id block);

/* Encodes signature(args) into out. Returns 0 or -1. */
__attribute__((warn_unused_result))
int adapter_encode(adapter_call *out, const char *signature, const abi_value *args, size_t nargs);

#endif
