/* policy: what the signer agrees to sign, checked before any key is
 * unsealed. A policy is a JSON file (docs/signer.md, "Policy"):
 *
 *   {"version": 1,
 *    "messages": {"allow": true, "max_bytes": 1024, "text_only": true,
 *                 "prefixes": ["Sign in to Example: "]},
 *    "chains": [{
 *      "chain_id": 31337,
 *      "max_nonce_gap": 1024,
 *      "replacement": {"min_bump_pct": 10, "max_replacements": 5},
 *      "tx_types": ["eip1559", "legacy"],
 *      "max_gas_limit": 3000000,
 *      "max_fee_per_gas": "500000000000",
 *      "native": {"max_value": "1000000000000000000",
 *                 "daily_limit": "5000000000000000000",
 *                 "recipients": ["self", "0x..."], "any_recipient": false},
 *      "contracts": [{
 *        "address": "0x...", "label": "usdc", "daily_limit": "1000000000000",
 *        "erc20": {"transfer_to": ["0x..."], "transfer_to_any": false,
 *                  "approve_spenders": ["0x..."], "approve_max": "..."},
 *        "calls": [{"function": "supply(address,uint256,address,uint16)",
 *                   "args": ["any", {"max": "1000000"}, "self", "any"]}]}]}]}
 *
 * Parsing is strict: unknown keys, duplicate keys, reals, addresses that
 * are not 0x + 40 hex digits (mixed case must be a valid EIP-55 checksum),
 * amounts that are not canonical decimal strings, duplicate chains,
 * contracts or selectors are errors; `transfer_to_any` needs a
 * `daily_limit` on its contract and `any_recipient` a native
 * `daily_limit`, so payouts to arbitrary addresses are always bounded.
 *
 * The policy hash is SHA-256 of the canonical form: the parsed JSON
 * re-serialized compactly with sorted keys, ASCII only
 * (`coffer-signer policy-check --canonical FILE | sha256sum` reproduces it).
 *
 * A decision names the rule that denied (e.g. "erc20.recipient"); rules
 * are listed in docs/signer.md. A policy is immutable once parsed, so any
 * number of threads may check against it. */
#ifndef COFFER_SIGNER_POLICY_H
#define COFFER_SIGNER_POLICY_H

#include "ethtx.h"
#include "u256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_FILE_MAX (1024u * 1024u)
#define POLICY_HASH_LEN 32u
#define POLICY_RULE_MAX 48u
#define POLICY_DETAIL_MAX 200u
#define POLICY_SPENDS_MAX 2u
#define POLICY_LABEL_MAX 32u
/* chains[].max_nonce_gap: default and largest value */
#define POLICY_NONCE_GAP_DEFAULT 1024u
#define POLICY_NONCE_GAP_MAX 1000000000u
/* chains[].replacement: fee replacement of a signed nonce (absent: none) */
#define POLICY_REPL_BUMP_DEFAULT 10u
#define POLICY_REPL_BUMP_MAX 1000u
#define POLICY_REPL_MAX_DEFAULT 5u
#define POLICY_REPL_MAX 100u
/* messages.prefixes: most entries and longest prefix in bytes */
#define POLICY_PREFIXES_MAX 64u
#define POLICY_PREFIX_MAX 256u

typedef struct policy policy;

/* An amount a transaction moves out of the key, counted against the
 * rolling 24 h limit of its (key, chain, token). */
typedef struct {
    uint8_t token[ETHTX_ADDRESS_LEN]; /* contract address; all zero for the native coin */
    u256 amount;
    bool limited;                     /* a daily_limit applies */
    u256 limit;
    char label[POLICY_LABEL_MAX];     /* "native" or the contract's label */
} policy_spend;

typedef struct {
    bool allow;
    char rule[POLICY_RULE_MAX];       /* denying rule, "" when allowed */
    char detail[POLICY_DETAIL_MAX];   /* one line for humans */
    policy_spend spends[POLICY_SPENDS_MAX];
    size_t n_spends;
    uint64_t max_nonce_gap;           /* the chain's max_nonce_gap (when allowed) */
    uint32_t repl_min_bump_pct;       /* the chain's replacement rule (when allowed): */
    uint32_t repl_max;                /* 0: a signed nonce is never re-priced */
} policy_decision;

/* Parses a policy from JSON bytes (need not be NUL-terminated).
 * Returns 0, or -1 with the first problem, located by its JSON path, in
 * err. out: output. */
__attribute__((warn_unused_result))
int policy_parse(policy **out, char *err, size_t err_len, const uint8_t *json, size_t len);

/* Reads and parses a policy file (at most POLICY_FILE_MAX bytes). The
 * file is opened without following a symbolic link and must be a regular
 * file owned by root or the calling user (euid) and not writable by group
 * or others, as the KEK ring.
 * Returns as policy_parse (err also names a refused file). */
__attribute__((warn_unused_result))
int policy_load_file(policy **out, char *err, size_t err_len, const char *path);

/* Frees a policy; p may be NULL. */
void policy_free(policy *p);

/* The policy hash (POLICY_HASH_LEN bytes, borrowed). */
const uint8_t *policy_hash(const policy *p);

/* The canonical form (borrowed, not NUL-terminated): *len bytes. */
const char *policy_canonical(const policy *p, size_t *len);

/* Number of chains in the policy. */
size_t policy_chain_count(const policy *p);

/* Decides a transaction signed by the key at address self.
 * out: output, always fully set. */
void policy_check_tx(const policy *p, policy_decision *out, const ethtx *tx,
                     const uint8_t self[ETHTX_ADDRESS_LEN]);

/* Decides an EIP-191 (personal_sign) message: allowed at all, length,
 * content (printable UTF-8 text unless messages.text_only is false; a
 * 32-byte message that is not text is always refused: it is what an
 * eth_sign-style "approve this hash" request looks like), and the prefix
 * allowlist when the policy has one. out: output. msg, msg_len: input. */
void policy_check_message(const policy *p, policy_decision *out, const uint8_t *msg, size_t msg_len);

/* True when s (len bytes) is printable UTF-8 text: well-formed UTF-8
 * (no overlong forms, surrogates or code points above U+10FFFF) without
 * control characters other than tab, line feed and carriage return, and
 * without bidirectional overrides/isolates (U+202A..U+202E, U+2066..U+2069)
 * or a byte-order mark. */
bool policy_is_text(const uint8_t *s, size_t len);

#endif
