/* evm_parse: the chain client's result types and their strict parsers from
 * Ethereum JSON-RPC results (jansson values), plus the pure policies on top
 * of them: EIP-1559 fee suggestion and the classification of
 * eth_sendRawTransaction errors. No I/O; thread-safe.
 *
 * Parsing rules (jsonrpc.h for QUANTITY and DATA): every field listed in a
 * type below is required and must have its type (a 32-byte hash, a 20-byte
 * address, a quantity that fits its C type); members not listed are
 * ignored (nodes add their own, e.g. anvil's "blockTimestamp"). Pending
 * logs (null block fields) and pre-Byzantium receipts (no "status") are
 * refused: the callers only look at mined blocks on post-London chains.
 *
 * Errors name the field, e.g. "receipt.logs[2].topics[0]: expected 32
 * bytes of hex data, got 62 digits".
 *
 * Pointers are non-NULL unless stated otherwise. */
#ifndef COFFER_EVM_PARSE_H
#define COFFER_EVM_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonrpc.h"
#include "u256.h"

#define EVM_ADDRESS_LEN 20
#define EVM_HASH_LEN 32
/* A log has at most 4 topics (LOG0..LOG4). */
#define EVM_LOG_TOPICS_MAX 4
/* Largest log data / call return data accepted (bytes). */
#define EVM_DATA_MAX (4u * 1024 * 1024)
/* Most logs accepted in one receipt or eth_getLogs answer. */
#define EVM_LOGS_MAX 100000u
/* Most blocks and percentiles accepted from eth_feeHistory. */
#define EVM_FEE_HISTORY_BLOCKS_MAX 1024u
#define EVM_FEE_PERCENTILES_MAX 16u

/* One event log. */
typedef struct {
    uint8_t address[EVM_ADDRESS_LEN];
    uint8_t topics[EVM_LOG_TOPICS_MAX][EVM_HASH_LEN];
    size_t n_topics;
    uint8_t *data;          /* owned; NULL when data_len is 0 */
    size_t data_len;
    uint64_t block_number;
    uint8_t block_hash[EVM_HASH_LEN];
    uint8_t tx_hash[EVM_HASH_LEN];
    uint64_t tx_index;
    uint64_t log_index;
    bool removed;           /* true when a reorg removed it ("removed") */
} evm_log;

/* A list of logs (eth_getLogs, receipt.logs). */
typedef struct {
    evm_log *items;         /* owned */
    size_t count;
} evm_log_list;

/* A transaction receipt. */
typedef struct {
    uint8_t tx_hash[EVM_HASH_LEN];
    uint64_t tx_index;
    uint8_t block_hash[EVM_HASH_LEN];
    uint64_t block_number;
    uint8_t from[EVM_ADDRESS_LEN];
    bool has_to;            /* false for a contract creation (to: null) */
    uint8_t to[EVM_ADDRESS_LEN];
    bool has_contract_address;
    uint8_t contract_address[EVM_ADDRESS_LEN];
    uint8_t status;         /* 1 success, 0 reverted */
    uint8_t type;           /* 0 legacy, 1, 2 (EIP-1559), ... */
    uint64_t gas_used;
    uint64_t cumulative_gas_used;
    u256 effective_gas_price;
    evm_log_list logs;
} evm_receipt;

/* The parts of a block header used for confirmations and reorg detection. */
typedef struct {
    uint64_t number;
    uint8_t hash[EVM_HASH_LEN];
    uint8_t parent_hash[EVM_HASH_LEN];
    uint64_t timestamp;
    bool has_base_fee;      /* false before London */
    u256 base_fee_per_gas;
} evm_block_header;

/* eth_feeHistory. base_fees has n_blocks + 1 entries: the last one is the
 * base fee of the block after the newest (the next block to be mined).
 * rewards is n_blocks rows of n_percentiles values (row-major), or NULL
 * when no percentiles were asked for. gasUsedRatio is checked to be an
 * array of n_blocks numbers and otherwise ignored (floating point). */
typedef struct {
    uint64_t oldest_block;
    size_t n_blocks;
    size_t n_percentiles;
    u256 *base_fees;        /* owned */
    u256 *rewards;          /* owned */
} evm_fee_history;

/* ---- Parsers (v: the "result" value) ------------------------------------ */

/* Parses one log object. Returns 0, or -1 (err says why; out holds
 * nothing to free). out: output, free its data with evm_log_dispose.
 * what: the name used in messages, e.g. "log". */
__attribute__((warn_unused_result))
int evm_parse_log(evm_log *out, jsonrpc_err *err, const json_t *v, const char *what);

/* Releases a log's data (l may be NULL). */
void evm_log_dispose(evm_log *l);

/* Parses an array of logs (eth_getLogs result). Returns 0 (dispose out
 * with evm_log_list_dispose), or -1 (err says why; out empty). */
__attribute__((warn_unused_result))
int evm_parse_logs(evm_log_list *out, jsonrpc_err *err, const json_t *v, const char *what);

/* Releases a list's logs (l may be NULL); l becomes empty. */
void evm_log_list_dispose(evm_log_list *l);

/* Parses a receipt object (a JSON null is refused here: callers treat a
 * null result as "not found" before calling). Returns 0 (dispose with
 * evm_receipt_dispose), or -1 (err says why; out holds nothing). */
__attribute__((warn_unused_result))
int evm_parse_receipt(evm_receipt *out, jsonrpc_err *err, const json_t *v);

/* Releases a receipt's logs (r may be NULL). */
void evm_receipt_dispose(evm_receipt *r);

/* Parses a block object's header fields (eth_getBlockByNumber with or
 * without full transactions; the transactions are not read). Returns 0 or
 * -1 (err says why). */
__attribute__((warn_unused_result))
int evm_parse_block_header(evm_block_header *out, jsonrpc_err *err, const json_t *v);

/* Parses an eth_feeHistory result for a request with n_percentiles reward
 * percentiles. Requires 1..EVM_FEE_HISTORY_BLOCKS_MAX blocks, baseFeePerGas
 * one longer than gasUsedRatio, and (when n_percentiles > 0) reward rows
 * of exactly n_percentiles quantities, one per block. Returns 0 (dispose
 * with evm_fee_history_dispose) or -1 (err says why; out empty). */
__attribute__((warn_unused_result))
int evm_parse_fee_history(evm_fee_history *out, jsonrpc_err *err, const json_t *v,
                          size_t n_percentiles);

/* Releases a fee history (h may be NULL); h becomes empty. */
void evm_fee_history_dispose(evm_fee_history *h);

/* ---- EIP-1559 fee suggestion -------------------------------------------- */

/* The policy, explicit and configurable (docs/chain.md):
 *   tip     = max(min_priority_fee, median over the fetched blocks of the
 *             reward at reward_percentile), the lower median for an even
 *             count; blocks whose reward is zero (empty blocks: nobody
 *             paid a tip) are left out of the median unless all are;
 *   max_fee = base_fee_multiplier · (base fee of the next block) + tip.
 * With the default multiplier 2 the transaction stays includable through
 * six consecutive full blocks (the base fee rises at most 12.5 % a block).
 * min_priority_fee defaults to 1 gwei (real chains drop zero-tip
 * transactions); anvil's rewards are 0 for empty blocks, and 0 is a valid
 * floor there. */
typedef struct {
    unsigned base_fee_multiplier;   /* 1..100, default 2 */
    unsigned reward_percentile;     /* 0..100, default 50 */
    unsigned history_blocks;        /* 1..EVM_FEE_HISTORY_BLOCKS_MAX, default 10 */
    u256 min_priority_fee;          /* wei, default 1 gwei */
} evm_fee_policy;

/* Fills p with the defaults above. */
void evm_fee_policy_init(evm_fee_policy *p);

typedef struct {
    u256 max_fee_per_gas;
    u256 max_priority_fee_per_gas;
    u256 next_base_fee;             /* the base fee the suggestion is built on */
} evm_fee_suggestion;

/* Computes the suggestion from a history fetched with exactly one
 * percentile (policy->reward_percentile). Returns 0, or -1 (err says why:
 * a policy out of range, a history without rewards, an overflow). */
__attribute__((warn_unused_result))
int evm_fee_suggest(evm_fee_suggestion *out, jsonrpc_err *err, const evm_fee_history *h,
                    const evm_fee_policy *policy);

/* ---- eth_sendRawTransaction --------------------------------------------- */

typedef enum {
    /* The node accepted the transaction; the hash it returned is keccak256
     * of the raw bytes. */
    EVM_SEND_ACCEPTED = 0,
    /* The node already has this very transaction (geth "already known",
     * anvil "transaction already imported", besu "Known transaction"). */
    EVM_SEND_ALREADY_KNOWN,
    /* The sender's nonce is past this one: this transaction (or another
     * with the same nonce) was mined. Look the receipt up by hash. */
    EVM_SEND_NONCE_TOO_LOW,
    /* Fees too low: "replacement transaction underpriced", "transaction
     * underpriced", "max fee per gas less than block base fee", "fee cap
     * less than block base fee", ... Bump the fees. */
    EVM_SEND_UNDERPRICED,
    /* The sender cannot pay gas · price + value. */
    EVM_SEND_INSUFFICIENT_FUNDS,
    /* Any other JSON-RPC error: the node refused it (message in the error). */
    EVM_SEND_REJECTED,
    /* The request may have reached a node but no answer came (timeout after
     * sending, HTTP 5xx, a malformed answer): the transaction may or may
     * not be in a pool. Not re-sent by the client; the caller re-sends the
     * same stored bytes later (idempotent at the node). */
    EVM_SEND_UNKNOWN,
    /* Nothing was sent: no endpoint available, or every one failed before
     * the request left (connection refused, DNS, TLS, breakers open). Safe
     * to send again. */
    EVM_SEND_NOT_SENT,
    /* Caller misuse (empty transaction) or out of memory; nothing sent. */
    EVM_SEND_INVALID,
} evm_send_status;

/* Returns a static lowercase name ("accepted", "already_known", ...). */
const char *evm_send_status_name(evm_send_status s);

/* Classifies a JSON-RPC error answer to eth_sendRawTransaction by its
 * message (case-insensitive substrings of what geth, erigon, nethermind,
 * besu, reth and anvil send; the codes differ between nodes and are not
 * used). Returns EVM_SEND_ALREADY_KNOWN, EVM_SEND_NONCE_TOO_LOW,
 * EVM_SEND_UNDERPRICED, EVM_SEND_INSUFFICIENT_FUNDS or EVM_SEND_REJECTED.
 * message: NUL-terminated. */
evm_send_status evm_classify_send_error(const char *message);

#endif
