/* evm_rpc: the Ethereum JSON-RPC client (DESIGN.md §4): HTTP POST
 * JSON-RPC 2.0 over libcurl to several endpoints of one chain, with
 * failover, a circuit breaker per endpoint, retries with full-jitter
 * back-off for idempotent reads, strict parsing of every answer, and typed
 * helpers. docs/chain.md has the configuration keys and the policies.
 *
 * Endpoints and failover. A call goes to the first endpoint (in the
 * configured order) whose breaker lets it through (evm_breaker.h). A
 * failure of an endpoint is: a transport error (refused, DNS, TLS, reset,
 * timeout), HTTP 5xx or 429 (or another status without a JSON-RPC error
 * body), a response that is not a well-formed JSON-RPC answer to this
 * request (id mismatch included) and a result that does not parse as the
 * method's type. A JSON-RPC error object (execution reverted, nonce too
 * low, ...) is the node's answer: it is returned (EVM_ERR_RPC) and counts
 * as a success for the breaker.
 *
 * Reads (the methods marked read in evm_method) fail over to the next
 * endpoint at once; when a whole pass over the endpoints failed they are
 * retried up to retry_max more passes, sleeping
 * random(0, min(retry_cap, retry_base * 2^pass)) between passes. When every
 * breaker refuses, the call fails at once without any connection attempt.
 *
 * Everything else (eth_sendRawTransaction, unknown methods) is never sent
 * twice by this layer: it fails over only when the request certainly did
 * not leave (connection refused, DNS or TLS failure, a connect timeout,
 * HTTP 429); once it may have reached a node (a timeout after sending,
 * HTTP 5xx, a garbled answer) the outcome is unknown and reported as such.
 *
 * Connections: a small pool of curl easy handles, each used by one thread
 * at a time (never shared), kept between calls so their connections stay
 * open (HTTP keep-alive, TCP keep-alive on). Thread-safe: any number of
 * threads may call into one evm_rpc.
 *
 * Logging: failures and breaker transitions are logged (event=evm.rpc.fail,
 * evm.breaker.open/half_open/closed) naming the endpoint by its label,
 * scheme://host[:port] only: endpoint URLs often carry an API key in their
 * path or query and are never logged or put in error messages.
 *
 * Pointers are non-NULL unless stated otherwise. Addresses are 20 bytes,
 * hashes 32. */
#ifndef COFFER_EVM_RPC_H
#define COFFER_EVM_RPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "evm_breaker.h"
#include "evm_parse.h"
#include "u256.h"

#define EVM_RPC_MAX_ENDPOINTS 8
/* Size of an endpoint label ("https://host:port"). */
#define EVM_RPC_LABEL_MAX 96
/* Size of evm_rpc_error.message. */
#define EVM_RPC_MESSAGE_MAX 384
/* Most bytes of a JSON-RPC error's hex "data" kept (revert data). */
#define EVM_RPC_ERROR_DATA_MAX 1024

typedef enum {
    EVM_OK = 0,
    /* Caller misuse: bad options, NULL where data is required, sizes. */
    EVM_ERR_INVALID_ARG,
    EVM_ERR_NOMEM,
    /* No endpoint gave a proper answer (each failed, after the retries
     * reads get), or every breaker is open. For a non-idempotent method:
     * the request was certainly not delivered. */
    EVM_ERR_UNAVAILABLE,
    /* Non-idempotent method only: the request may have been delivered but
     * no proper answer came. Not retried. */
    EVM_ERR_UNKNOWN_OUTCOME,
    /* The node answered with a JSON-RPC error object: rpc_code, message
     * and (when it was hex) rpc_data in the evm_rpc_error. */
    EVM_ERR_RPC,
    /* eth_call returned data that is not the expected ABI value (e.g. "0x"
     * from an address without code). */
    EVM_ERR_ABI,
    /* evm_rpc_verify_chain: an endpoint serves another chain. */
    EVM_ERR_CHAIN_MISMATCH,
    /* evm_rpc_suggest_fees: the history cannot give a suggestion. */
    EVM_ERR_FEE,
} evm_err;

/* Returns a static lowercase name ("ok", "unavailable", ...). */
const char *evm_err_name(evm_err e);

/* What went wrong, for the caller and for logs. */
typedef struct {
    /* One line. EVM_ERR_RPC: the node's message (plus its data when that
     * is text). Otherwise what failed, naming the endpoint by label and
     * the method, e.g. "endpoint 1 (http://127.0.0.1:8545): eth_getLogs:
     * result[3].topics[0]: expected 32 bytes of hex data, got 62 digits". */
    char message[EVM_RPC_MESSAGE_MAX];
    int64_t rpc_code;              /* EVM_ERR_RPC: the error code */
    bool has_rpc_data;             /* EVM_ERR_RPC: data was hex (revert data) */
    uint8_t rpc_data[EVM_RPC_ERROR_DATA_MAX];
    size_t rpc_data_len;
    int endpoint;                  /* index that answered or failed last, -1 none */
    long http_status;              /* last HTTP status seen, 0 none */
} evm_rpc_error;

/* Methods, for statistics and the retry rule. */
typedef enum {
    EVM_METHOD_CHAIN_ID = 0,
    EVM_METHOD_BLOCK_NUMBER,
    EVM_METHOD_GET_BALANCE,
    EVM_METHOD_CALL,
    EVM_METHOD_GET_TRANSACTION_COUNT,
    EVM_METHOD_GET_TRANSACTION_RECEIPT,
    EVM_METHOD_GET_TRANSACTION_BY_HASH,
    EVM_METHOD_GET_LOGS,
    EVM_METHOD_ESTIMATE_GAS,
    EVM_METHOD_FEE_HISTORY,
    EVM_METHOD_GET_BLOCK_BY_NUMBER,
    EVM_METHOD_GAS_PRICE,
    EVM_METHOD_MAX_PRIORITY_FEE,
    EVM_METHOD_SEND_RAW_TRANSACTION,
    EVM_METHOD_OTHER,              /* anything else through evm_rpc_call_json */
    EVM_METHOD_COUNT,
} evm_method;

/* The JSON-RPC method name ("eth_chainId"; "other" for EVM_METHOD_OTHER). */
const char *evm_method_name(evm_method m);

/* True for the idempotent reads that are retried. */
bool evm_method_is_read(evm_method m);

/* Test hooks; NULL members use the real thing. */
typedef struct {
    int64_t (*now_ms)(void *arg);           /* monotonic clock, ms */
    uint64_t (*random_u64)(void *arg);      /* back-off jitter */
    void (*sleep_ms)(void *arg, int64_t ms); /* back-off sleep */
    void *arg;
} evm_rpc_hooks;

/* What the caller fills (start from evm_rpc_options_init). */
typedef struct {
    uint64_t chain_id;             /* expected chain (evm_rpc_verify_chain); 0 = unchecked */
    const char *const *endpoints;  /* http:// or https:// URLs, copied by evm_rpc_new */
    size_t n_endpoints;            /* 1..EVM_RPC_MAX_ENDPOINTS */
    int64_t connect_timeout_ms;    /* default 3000 */
    int64_t timeout_ms;            /* whole HTTP request, default 10000 */
    unsigned breaker_failures;     /* consecutive failures that open it, default 5 */
    int64_t breaker_cooldown_ms;   /* open -> half-open, default 60000 */
    unsigned retry_max;            /* extra passes for reads, default 2 */
    int64_t retry_base_ms;         /* default 100 */
    int64_t retry_cap_ms;          /* default 2000 */
    size_t max_response_bytes;     /* default 32 MiB */
    size_t max_idle_handles;       /* curl handles kept between calls, default 8 */
    evm_rpc_hooks hooks;
} evm_rpc_options;

/* Fills o with the defaults above (no endpoints, chain_id 0). */
void evm_rpc_options_init(evm_rpc_options *o);

/* Configuration rows for coffer-api's schema (docs/chain.md): put
 * EVM_RPC_CONFIG_OPTIONS inside the config_option array. */
#define EVM_RPC_CONFIG_OPTIONS                                                                  \
    {"evm.chain_id", CONFIG_INT, 0, NULL, 1, INT64_MAX, NULL,                                   \
     "EIP-155 chain id every endpoint must serve"},                                             \
    {"evm.endpoints", CONFIG_LIST, CONFIG_SECRET, "", 0, 0, NULL,                               \
     "JSON-RPC endpoint URLs in failover order (may hold API keys); empty: no chain"},          \
    {"evm.confirmations", CONFIG_INT, 0, "12", 0, 10000, NULL,                                  \
     "blocks on top of a transaction's block before it counts as final"},                      \
    {"evm.connect_timeout", CONFIG_DURATION, 0, "3s", 10, 600000, NULL,                         \
     "TCP/TLS connect timeout per request"},                                                    \
    {"evm.timeout", CONFIG_DURATION, 0, "10s", 10, 600000, NULL,                                \
     "whole-request timeout per HTTP request"},                                                 \
    {"evm.breaker_failures", CONFIG_INT, 0, "5", 1, 1000, NULL,                                 \
     "consecutive failures that open an endpoint's circuit breaker"},                           \
    {"evm.breaker_cooldown", CONFIG_DURATION, 0, "60s", 0, 86400000, NULL,                      \
     "how long an open breaker waits before letting one probe through"},                        \
    {"evm.retry_max", CONFIG_INT, 0, "2", 0, 20, NULL,                                          \
     "extra passes over the endpoints for idempotent reads"},                                   \
    {"evm.retry_base", CONFIG_DURATION, 0, "100ms", 0, 60000, NULL,                             \
     "back-off base: delay = random(0, min(cap, base * 2^attempt))"},                          \
    {"evm.retry_cap", CONFIG_DURATION, 0, "2s", 0, 600000, NULL, "back-off cap"},               \
    {"evm.max_response_bytes", CONFIG_INT, 0, "33554432", 4096, 1073741824, NULL,               \
     "largest JSON-RPC response accepted"},                                                     \
    {"evm.fee_base_multiplier", CONFIG_INT, 0, "2", 1, 100, NULL,                               \
     "maxFeePerGas = multiplier * next base fee + tip"},                                        \
    {"evm.fee_reward_percentile", CONFIG_INT, 0, "50", 0, 100, NULL,                            \
     "eth_feeHistory reward percentile the tip is taken from"},                                 \
    {"evm.fee_history_blocks", CONFIG_INT, 0, "10", 1, 1024, NULL,                              \
     "blocks of fee history the tip median is taken over"},                                     \
    {"evm.min_priority_fee", CONFIG_STRING, 0, "1000000000", 0, 0, NULL,                        \
     "floor of the priority fee (tip), decimal wei; 0 allowed (anvil)"}

/* Reads the EVM_RPC_CONFIG_OPTIONS keys present in cfg into o and policy
 * (keys the schema lacks keep their defaults). o->endpoints then borrows
 * from cfg. Returns 0, or -1 with a message in errbuf (a bad
 * evm.min_priority_fee). configured: output, false when evm.endpoints is
 * empty (no chain configured). */
__attribute__((warn_unused_result))
int evm_rpc_options_from_config(evm_rpc_options *o, evm_fee_policy *policy, bool *configured,
                                char *errbuf, size_t errbuf_len, const config *cfg);

typedef struct evm_rpc evm_rpc;

/* Creates a client. Initialises libcurl once per process (thread-safe).
 * Returns EVM_OK with *out set, EVM_ERR_INVALID_ARG (err says which
 * option: no endpoint, too many, not http(s)://, a timeout <= 0, ...) or
 * EVM_ERR_NOMEM. No connection is made here.
 * out: output, free with evm_rpc_free. err: output, may be NULL. */
__attribute__((warn_unused_result))
evm_err evm_rpc_new(evm_rpc **out, evm_rpc_error *err, const evm_rpc_options *opts);

/* Frees the client and its connections. rpc may be NULL. No call may be
 * in progress. */
void evm_rpc_free(evm_rpc *rpc);

/* Asks every endpoint (bypassing failover) for eth_chainId and disables,
 * for the life of the client, those serving another chain than
 * opts.chain_id. Returns EVM_OK (at least one endpoint answered, none
 * mismatched), EVM_ERR_CHAIN_MISMATCH (some did: named in err; they are
 * disabled), EVM_ERR_UNAVAILABLE (none answered) or EVM_ERR_INVALID_ARG
 * (chain_id 0). */
__attribute__((warn_unused_result))
evm_err evm_rpc_verify_chain(evm_rpc *rpc, evm_rpc_error *err);

/* ---- Generic call ------------------------------------------------------- */

/* Calls method with params (an array, borrowed; NULL for []) and returns
 * its result as a new reference (JSON null included). The method's
 * evm_method row decides the retry rule (unknown names: never re-sent).
 * Returns EVM_OK, EVM_ERR_RPC, EVM_ERR_UNAVAILABLE, EVM_ERR_UNKNOWN_OUTCOME,
 * EVM_ERR_INVALID_ARG, EVM_ERR_NOMEM. err: may be NULL (as everywhere). */
__attribute__((warn_unused_result))
evm_err evm_rpc_call_json(evm_rpc *rpc, json_t **result, evm_rpc_error *err, const char *method,
                          const json_t *params);

/* ---- Typed helpers (all reads: retried as above) ------------------------ */

typedef enum {
    EVM_BLOCK_LATEST = 0,
    EVM_BLOCK_PENDING,
    EVM_BLOCK_SAFE,
    EVM_BLOCK_FINALIZED,
    EVM_BLOCK_EARLIEST,
    EVM_BLOCK_NUMBER,
} evm_block_tag;

/* A block: a tag, or a number (tag EVM_BLOCK_NUMBER). */
typedef struct {
    evm_block_tag tag;
    uint64_t number;
} evm_block_id;

#define EVM_BLOCK_ID_LATEST ((evm_block_id){EVM_BLOCK_LATEST, 0})
#define EVM_BLOCK_ID_PENDING ((evm_block_id){EVM_BLOCK_PENDING, 0})
#define EVM_BLOCK_ID_AT(n) ((evm_block_id){EVM_BLOCK_NUMBER, (n)})

/* eth_chainId, eth_blockNumber. */
__attribute__((warn_unused_result))
evm_err evm_rpc_chain_id(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err);
__attribute__((warn_unused_result))
evm_err evm_rpc_block_number(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err);

/* eth_getBalance of addr at block, in wei. */
__attribute__((warn_unused_result))
evm_err evm_rpc_get_balance(evm_rpc *rpc, u256 *out, evm_rpc_error *err,
                            const uint8_t addr[EVM_ADDRESS_LEN], evm_block_id block);

/* eth_gasPrice, eth_maxPriorityFeePerGas, in wei. */
__attribute__((warn_unused_result))
evm_err evm_rpc_gas_price(evm_rpc *rpc, u256 *out, evm_rpc_error *err);
__attribute__((warn_unused_result))
evm_err evm_rpc_max_priority_fee(evm_rpc *rpc, u256 *out, evm_rpc_error *err);

/* A message for eth_call and eth_estimateGas. */
typedef struct {
    const uint8_t *from;           /* 20 bytes, or NULL */
    const uint8_t *to;             /* 20 bytes, or NULL (contract creation) */
    const uint8_t *data;           /* calldata, may be NULL when data_len is 0 */
    size_t data_len;
    const u256 *value;             /* wei, or NULL */
    uint64_t gas;                  /* gas limit, 0 for none */
} evm_call_msg;

/* eth_call: the raw return data. A revert is EVM_ERR_RPC with the revert
 * data in err->rpc_data (abi_decode_revert reads Error(string)).
 * out: output, malloc'd (NULL when empty), *out_len bytes. */
__attribute__((warn_unused_result))
evm_err evm_rpc_call(evm_rpc *rpc, uint8_t **out, size_t *out_len, evm_rpc_error *err,
                     const evm_call_msg *msg, evm_block_id block);

/* ERC-20 balanceOf(owner) on token via eth_call, decoded strictly as one
 * uint256 (EVM_ERR_ABI otherwise, e.g. no contract at token). */
__attribute__((warn_unused_result))
evm_err evm_rpc_erc20_balance_of(evm_rpc *rpc, u256 *out, evm_rpc_error *err,
                                 const uint8_t token[EVM_ADDRESS_LEN],
                                 const uint8_t owner[EVM_ADDRESS_LEN], evm_block_id block);

/* eth_getTransactionCount (the next nonce) at block: EVM_BLOCK_ID_PENDING
 * counts the node's pool, EVM_BLOCK_ID_LATEST only mined transactions. */
__attribute__((warn_unused_result))
evm_err evm_rpc_get_transaction_count(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err,
                                      const uint8_t addr[EVM_ADDRESS_LEN], evm_block_id block);

/* eth_estimateGas (at the pending state). A revert is EVM_ERR_RPC. */
__attribute__((warn_unused_result))
evm_err evm_rpc_estimate_gas(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err,
                             const evm_call_msg *msg);

/* eth_feeHistory over block_count blocks up to newest, with reward
 * percentiles (integers 0..100, ascending, at most
 * EVM_FEE_PERCENTILES_MAX; n_percentiles may be 0). out: dispose with
 * evm_fee_history_dispose. */
__attribute__((warn_unused_result))
evm_err evm_rpc_fee_history(evm_rpc *rpc, evm_fee_history *out, evm_rpc_error *err,
                            unsigned block_count, evm_block_id newest,
                            const unsigned *percentiles, size_t n_percentiles);

/* eth_feeHistory(policy->history_blocks, latest, [reward_percentile]) then
 * evm_fee_suggest (evm_parse.h has the policy). EVM_ERR_FEE when the
 * suggestion cannot be made. */
__attribute__((warn_unused_result))
evm_err evm_rpc_suggest_fees(evm_rpc *rpc, evm_fee_suggestion *out, evm_rpc_error *err,
                             const evm_fee_policy *policy);

/* eth_getTransactionReceipt. *found false (EVM_OK) when the node has none
 * yet (pending or unknown). out: dispose with evm_receipt_dispose when
 * found. */
__attribute__((warn_unused_result))
evm_err evm_rpc_get_transaction_receipt(evm_rpc *rpc, evm_receipt *out, bool *found,
                                        evm_rpc_error *err, const uint8_t hash[EVM_HASH_LEN]);

/* An eth_getLogs filter: one address (or any), topic positions 0..3 each
 * one value or NULL (any), a block range. */
typedef struct {
    const uint8_t *address;                       /* 20 bytes, or NULL */
    const uint8_t *topics[EVM_LOG_TOPICS_MAX];    /* 32 bytes each, or NULL */
    size_t n_topics;                              /* positions given, <= 4 */
    evm_block_id from_block;
    evm_block_id to_block;
} evm_log_filter;

/* eth_getLogs. out: dispose with evm_log_list_dispose. */
__attribute__((warn_unused_result))
evm_err evm_rpc_get_logs(evm_rpc *rpc, evm_log_list *out, evm_rpc_error *err,
                         const evm_log_filter *filter);

/* eth_getBlockByNumber(block, false): the header fields. *found false
 * (EVM_OK) when the node has no such block. */
__attribute__((warn_unused_result))
evm_err evm_rpc_get_block_by_number(evm_rpc *rpc, evm_block_header *out, bool *found,
                                    evm_rpc_error *err, evm_block_id block);

/* ---- eth_sendRawTransaction --------------------------------------------- */

/* Sends a signed transaction to one endpoint (failing over only when the
 * request certainly did not leave) and never re-sends it.
 * Returns the outcome (evm_parse.h: evm_send_status): ACCEPTED,
 * ALREADY_KNOWN, NONCE_TOO_LOW, UNDERPRICED, INSUFFICIENT_FUNDS, REJECTED
 * (node's message in err), UNKNOWN (may have been delivered), NOT_SENT
 * (certainly not delivered), INVALID (empty raw, out of memory).
 * hash: output, keccak256(raw), the transaction hash whatever the outcome
 * (an ACCEPTED answer carrying another hash is treated as UNKNOWN).
 * raw, raw_len: the signed transaction (typed: type byte + RLP). */
evm_send_status evm_rpc_send_raw_transaction(evm_rpc *rpc, uint8_t hash[EVM_HASH_LEN],
                                             evm_rpc_error *err, const uint8_t *raw,
                                             size_t raw_len);

/* ---- Statistics --------------------------------------------------------- */

typedef struct {
    char label[EVM_RPC_LABEL_MAX];
    evm_breaker_state state;
    bool disabled;                 /* wrong chain (evm_rpc_verify_chain) */
    unsigned consecutive_failures;
    uint64_t times_opened;
    uint64_t requests;             /* HTTP requests made */
    uint64_t failures;             /* requests that counted as failures */
    uint64_t rpc_errors;           /* JSON-RPC error answers */
    uint64_t refused;              /* times the breaker kept a call away */
    uint64_t connects;             /* new connections made (the rest reused one) */
    uint64_t method_requests[EVM_METHOD_COUNT];
    uint64_t method_failures[EVM_METHOD_COUNT];
} evm_rpc_endpoint_stats;

typedef struct {
    size_t n_endpoints;
    evm_rpc_endpoint_stats endpoints[EVM_RPC_MAX_ENDPOINTS];
    uint64_t calls[EVM_METHOD_COUNT];       /* calls made by callers */
    uint64_t call_failures[EVM_METHOD_COUNT]; /* calls that ended in neither EVM_OK nor EVM_ERR_RPC */
    uint64_t retries;                       /* back-off sleeps */
} evm_rpc_stats;

/* Copies the counters (relaxed reads: each is exact, the set is not an
 * atomic snapshot) and the breakers' states. out: output. */
void evm_rpc_stats_snapshot(evm_rpc *rpc, evm_rpc_stats *out);

#endif
