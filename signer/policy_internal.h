/* policy_internal: the parsed form of a policy, shared by policy.c
 * (parsing, hashing) and policy_check.c (decisions). Not for other modules. */
#ifndef COFFER_SIGNER_POLICY_INTERNAL_H
#define COFFER_SIGNER_POLICY_INTERNAL_H

#include "abi.h"
#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_ARGS_MAX 16u
#define POLICY_LIST_MAX 1024u
#define POLICY_SIG_MAX 256u

typedef struct {
    uint8_t (*addrs)[ETHTX_ADDRESS_LEN];
    size_t n;
    bool self;       /* "self": the signing key's own address */
} addr_set;

typedef enum {
    ARG_ANY = 0,
    ARG_SELF,        /* address equal to the signing key's */
    ARG_SET,         /* address in a list (which may include "self") */
    ARG_MAX,         /* uint at most a bound */
} arg_kind;

typedef struct {
    arg_kind kind;
    addr_set set;
    u256 max;
} arg_rule;

typedef enum {
    CALL_GENERIC = 0,
    CALL_ERC20_TRANSFER,
    CALL_ERC20_APPROVE,
} call_kind;

typedef struct {
    call_kind kind;
    char signature[POLICY_SIG_MAX];
    uint8_t selector[ABI_SELECTOR_LEN];
    size_t n_args;
    abi_kind arg_kinds[POLICY_ARGS_MAX];
    arg_rule args[POLICY_ARGS_MAX];
} call_rule;

typedef struct {
    uint8_t address[ETHTX_ADDRESS_LEN];
    char label[POLICY_LABEL_MAX];
    bool has_daily_limit;
    u256 daily_limit;
    bool erc20;
    addr_set transfer_to;
    bool transfer_to_any;
    addr_set approve_spenders;
    bool has_approve_max;
    u256 approve_max;
    call_rule *calls; /* erc20 transfer/approve first when erc20 */
    size_t n_calls;
} contract_rule;

typedef struct {
    uint64_t chain_id;
    bool allow_eip1559, allow_legacy;
    bool has_max_gas_limit;
    uint64_t max_gas_limit;
    bool has_max_fee;
    u256 max_fee;
    u256 native_max_value;
    bool has_native_daily;
    u256 native_daily;
    addr_set native_recipients;
    bool native_any;
    uint64_t max_nonce_gap;          /* POLICY_NONCE_GAP_DEFAULT unless set */
    uint64_t repl_min_bump_pct;      /* replacement.min_bump_pct (when repl_max > 0) */
    uint64_t repl_max;               /* replacement.max_replacements; 0: no replacement */
    contract_rule *contracts;
    size_t n_contracts;
} chain_rule;

struct policy {
    chain_rule *chains;
    size_t n_chains;
    bool messages_allow;
    uint64_t messages_max;
    bool messages_text_only;         /* true unless "text_only": false */
    char **messages_prefixes;        /* NULL: any prefix */
    size_t n_messages_prefixes;
    uint8_t hash[POLICY_HASH_LEN];
    char *canonical;
    size_t canonical_len;
};

#endif
