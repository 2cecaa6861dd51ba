#include "evm_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest field path in a message ("receipt.logs[99999].topics[3]"). */
#define EVM_PATH_MAX 96

/* Borrows member key of object v (NULL when absent: the value parsers
 * then say "missing"). */
static const json_t *evm_member(const json_t *v, const char *key)
{
    return json_object_get(v, key);
}

/* "<what>.<key>" into buf. */
static const char *evm_path(char buf[EVM_PATH_MAX], const char *what, const char *key)
{
    snprintf(buf, EVM_PATH_MAX, "%s.%s", what, key);
    return buf;
}

static int evm_require_object(jsonrpc_err *err, const json_t *v, const char *what)
{
    char d[64];
    if (!json_is_object(v)) {
        jsonrpc_err_set(err, "%s: expected an object, got %s", what, jsonrpc_describe(d, sizeof d, v));
        return -1;
    }
    return 0;
}

static int evm_get_u64(uint64_t *out, jsonrpc_err *err, const json_t *obj, const char *what,
                       const char *key)
{
    char p[EVM_PATH_MAX];
    return jsonrpc_quantity_u64(out, err, evm_member(obj, key), evm_path(p, what, key));
}

static int evm_get_u256(u256 *out, jsonrpc_err *err, const json_t *obj, const char *what,
                        const char *key)
{
    char p[EVM_PATH_MAX];
    return jsonrpc_quantity_u256(out, err, evm_member(obj, key), evm_path(p, what, key));
}

static int evm_get_fixed(uint8_t *out, size_t len, jsonrpc_err *err, const json_t *obj,
                         const char *what, const char *key)
{
    char p[EVM_PATH_MAX];
    return jsonrpc_data_fixed(out, len, err, evm_member(obj, key), evm_path(p, what, key));
}

/* An address or null (to, contractAddress). A missing member is an error. */
static int evm_get_opt_address(bool *has, uint8_t out[EVM_ADDRESS_LEN], jsonrpc_err *err,
                               const json_t *obj, const char *what, const char *key)
{
    char p[EVM_PATH_MAX];
    const json_t *v = evm_member(obj, key);
    if (json_is_null(v)) {
        *has = false;
        memset(out, 0, EVM_ADDRESS_LEN);
        return 0;
    }
    *has = true;
    return jsonrpc_data_fixed(out, EVM_ADDRESS_LEN, err, v, evm_path(p, what, key));
}

/* ---- Logs --------------------------------------------------------------- */

void evm_log_dispose(evm_log *l)
{
    if (!l)
        return;
    free(l->data);
    l->data = NULL;
    l->data_len = 0;
}

int evm_parse_log(evm_log *out, jsonrpc_err *err, const json_t *v, const char *what)
{
    char p[EVM_PATH_MAX];
    char d[64];
    memset(out, 0, sizeof *out);
    if (evm_require_object(err, v, what) != 0)
        return -1;
    if (evm_get_fixed(out->address, EVM_ADDRESS_LEN, err, v, what, "address") != 0)
        return -1;
    const json_t *topics = evm_member(v, "topics");
    if (!json_is_array(topics)) {
        jsonrpc_err_set(err, "%s.topics: expected an array, got %s", what,
                        jsonrpc_describe(d, sizeof d, topics));
        return -1;
    }
    if (json_array_size(topics) > EVM_LOG_TOPICS_MAX) {
        jsonrpc_err_set(err, "%s.topics: %zu topics, at most %d", what, json_array_size(topics),
                        EVM_LOG_TOPICS_MAX);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(topics); i++) {
        snprintf(p, sizeof p, "%s.topics[%zu]", what, i);
        if (jsonrpc_data_fixed(out->topics[i], EVM_HASH_LEN, err, json_array_get(topics, i), p) != 0)
            return -1;
    }
    out->n_topics = json_array_size(topics);
    if (evm_get_u64(&out->block_number, err, v, what, "blockNumber") != 0 ||
        evm_get_fixed(out->block_hash, EVM_HASH_LEN, err, v, what, "blockHash") != 0 ||
        evm_get_fixed(out->tx_hash, EVM_HASH_LEN, err, v, what, "transactionHash") != 0 ||
        evm_get_u64(&out->tx_index, err, v, what, "transactionIndex") != 0 ||
        evm_get_u64(&out->log_index, err, v, what, "logIndex") != 0)
        return -1;
    /* "removed" is in every node's logs; tolerate its absence (false). */
    const json_t *removed = evm_member(v, "removed");
    if (removed && !json_is_boolean(removed)) {
        jsonrpc_err_set(err, "%s.removed: expected a boolean, got %s", what,
                        jsonrpc_describe(d, sizeof d, removed));
        return -1;
    }
    out->removed = json_is_true(removed);
    /* Data last: the only allocation. */
    if (jsonrpc_data_alloc(&out->data, &out->data_len, EVM_DATA_MAX, err, evm_member(v, "data"),
                           evm_path(p, what, "data")) != 0)
        return -1;
    return 0;
}

void evm_log_list_dispose(evm_log_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        evm_log_dispose(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

int evm_parse_logs(evm_log_list *out, jsonrpc_err *err, const json_t *v, const char *what)
{
    char d[64];
    char p[EVM_PATH_MAX];
    memset(out, 0, sizeof *out);
    if (!json_is_array(v)) {
        jsonrpc_err_set(err, "%s: expected an array, got %s", what, jsonrpc_describe(d, sizeof d, v));
        return -1;
    }
    size_t n = json_array_size(v);
    if (n > EVM_LOGS_MAX) {
        jsonrpc_err_set(err, "%s: %zu logs, at most %u accepted", what, n, EVM_LOGS_MAX);
        return -1;
    }
    if (n == 0)
        return 0;
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) {
        jsonrpc_err_set(err, "%s: out of memory for %zu logs", what, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s[%zu]", what, i);
        if (evm_parse_log(&out->items[i], err, json_array_get(v, i), p) != 0) {
            evm_log_list_dispose(out);
            return -1;
        }
        out->count = i + 1;
    }
    return 0;
}

/* ---- Receipts ----------------------------------------------------------- */

void evm_receipt_dispose(evm_receipt *r)
{
    if (!r)
        return;
    evm_log_list_dispose(&r->logs);
}

int evm_parse_receipt(evm_receipt *out, jsonrpc_err *err, const json_t *v)
{
    static const char what[] = "receipt";
    uint64_t status, type;
    memset(out, 0, sizeof *out);
    if (evm_require_object(err, v, what) != 0)
        return -1;
    if (evm_get_fixed(out->tx_hash, EVM_HASH_LEN, err, v, what, "transactionHash") != 0 ||
        evm_get_u64(&out->tx_index, err, v, what, "transactionIndex") != 0 ||
        evm_get_fixed(out->block_hash, EVM_HASH_LEN, err, v, what, "blockHash") != 0 ||
        evm_get_u64(&out->block_number, err, v, what, "blockNumber") != 0 ||
        evm_get_fixed(out->from, EVM_ADDRESS_LEN, err, v, what, "from") != 0 ||
        evm_get_opt_address(&out->has_to, out->to, err, v, what, "to") != 0 ||
        evm_get_opt_address(&out->has_contract_address, out->contract_address, err, v, what,
                            "contractAddress") != 0 ||
        evm_get_u64(&status, err, v, what, "status") != 0 ||
        evm_get_u64(&out->gas_used, err, v, what, "gasUsed") != 0 ||
        evm_get_u64(&out->cumulative_gas_used, err, v, what, "cumulativeGasUsed") != 0 ||
        evm_get_u256(&out->effective_gas_price, err, v, what, "effectiveGasPrice") != 0)
        return -1;
    if (status > 1) {
        jsonrpc_err_set(err, "receipt.status: expected 0x0 or 0x1, got %llu",
                        (unsigned long long)status);
        return -1;
    }
    out->status = (uint8_t)status;
    /* "type" came with EIP-2718; legacy-only nodes omit it (type 0). */
    if (evm_member(v, "type")) {
        if (evm_get_u64(&type, err, v, what, "type") != 0)
            return -1;
        if (type > 0x7f) {
            jsonrpc_err_set(err, "receipt.type: %llu is not a transaction type",
                            (unsigned long long)type);
            return -1;
        }
        out->type = (uint8_t)type;
    }
    if (out->cumulative_gas_used < out->gas_used) {
        jsonrpc_err_set(err, "receipt: cumulativeGasUsed %llu below gasUsed %llu",
                        (unsigned long long)out->cumulative_gas_used,
                        (unsigned long long)out->gas_used);
        return -1;
    }
    if (out->has_to == out->has_contract_address) {
        jsonrpc_err_set(err, "receipt: exactly one of to and contractAddress must be set");
        return -1;
    }
    if (evm_parse_logs(&out->logs, err, evm_member(v, "logs"), "receipt.logs") != 0)
        return -1;
    /* Each log must belong to this receipt. */
    for (size_t i = 0; i < out->logs.count; i++) {
        const evm_log *l = &out->logs.items[i];
        if (memcmp(l->tx_hash, out->tx_hash, EVM_HASH_LEN) != 0 ||
            memcmp(l->block_hash, out->block_hash, EVM_HASH_LEN) != 0 ||
            l->block_number != out->block_number) {
            jsonrpc_err_set(err, "receipt.logs[%zu]: belongs to another transaction or block", i);
            evm_receipt_dispose(out);
            return -1;
        }
    }
    return 0;
}

/* ---- Blocks ------------------------------------------------------------- */

int evm_parse_block_header(evm_block_header *out, jsonrpc_err *err, const json_t *v)
{
    static const char what[] = "block";
    memset(out, 0, sizeof *out);
    if (evm_require_object(err, v, what) != 0)
        return -1;
    if (evm_get_u64(&out->number, err, v, what, "number") != 0 ||
        evm_get_fixed(out->hash, EVM_HASH_LEN, err, v, what, "hash") != 0 ||
        evm_get_fixed(out->parent_hash, EVM_HASH_LEN, err, v, what, "parentHash") != 0 ||
        evm_get_u64(&out->timestamp, err, v, what, "timestamp") != 0)
        return -1;
    if (evm_member(v, "baseFeePerGas")) {
        if (evm_get_u256(&out->base_fee_per_gas, err, v, what, "baseFeePerGas") != 0)
            return -1;
        out->has_base_fee = true;
    }
    return 0;
}

/* ---- Fee history -------------------------------------------------------- */

void evm_fee_history_dispose(evm_fee_history *h)
{
    if (!h)
        return;
    free(h->base_fees);
    free(h->rewards);
    memset(h, 0, sizeof *h);
}

int evm_parse_fee_history(evm_fee_history *out, jsonrpc_err *err, const json_t *v,
                          size_t n_percentiles)
{
    static const char what[] = "feeHistory";
    char d[64];
    char p[EVM_PATH_MAX];
    memset(out, 0, sizeof *out);
    if (n_percentiles > EVM_FEE_PERCENTILES_MAX) {
        jsonrpc_err_set(err, "feeHistory: %zu percentiles asked for, at most %u", n_percentiles,
                        EVM_FEE_PERCENTILES_MAX);
        return -1;
    }
    if (evm_require_object(err, v, what) != 0)
        return -1;
    if (evm_get_u64(&out->oldest_block, err, v, what, "oldestBlock") != 0)
        return -1;
    const json_t *ratios = evm_member(v, "gasUsedRatio");
    const json_t *base = evm_member(v, "baseFeePerGas");
    if (!json_is_array(ratios)) {
        jsonrpc_err_set(err, "feeHistory.gasUsedRatio: expected an array, got %s",
                        jsonrpc_describe(d, sizeof d, ratios));
        return -1;
    }
    if (!json_is_array(base)) {
        jsonrpc_err_set(err, "feeHistory.baseFeePerGas: expected an array, got %s",
                        jsonrpc_describe(d, sizeof d, base));
        return -1;
    }
    size_t n = json_array_size(ratios);
    if (n == 0 || n > EVM_FEE_HISTORY_BLOCKS_MAX) {
        jsonrpc_err_set(err, "feeHistory.gasUsedRatio: %zu blocks, expected 1..%u", n,
                        EVM_FEE_HISTORY_BLOCKS_MAX);
        return -1;
    }
    if (json_array_size(base) != n + 1) {
        jsonrpc_err_set(err, "feeHistory.baseFeePerGas: %zu entries for %zu blocks, expected %zu",
                        json_array_size(base), n, n + 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!json_is_number(json_array_get(ratios, i))) {
            jsonrpc_err_set(err, "feeHistory.gasUsedRatio[%zu]: expected a number, got %s", i,
                            jsonrpc_describe(d, sizeof d, json_array_get(ratios, i)));
            return -1;
        }
    }
    if (out->oldest_block > UINT64_MAX - n) {
        jsonrpc_err_set(err, "feeHistory.oldestBlock: %llu + %zu blocks overflows",
                        (unsigned long long)out->oldest_block, n);
        return -1;
    }
    out->base_fees = calloc(n + 1, sizeof *out->base_fees);
    if (!out->base_fees)
        goto nomem;
    for (size_t i = 0; i <= n; i++) {
        snprintf(p, sizeof p, "feeHistory.baseFeePerGas[%zu]", i);
        if (jsonrpc_quantity_u256(&out->base_fees[i], err, json_array_get(base, i), p) != 0)
            goto fail;
    }
    if (n_percentiles > 0) {
        const json_t *reward = evm_member(v, "reward");
        if (!json_is_array(reward)) {
            jsonrpc_err_set(err, "feeHistory.reward: expected an array, got %s",
                            jsonrpc_describe(d, sizeof d, reward));
            goto fail;
        }
        if (json_array_size(reward) != n) {
            jsonrpc_err_set(err, "feeHistory.reward: %zu rows for %zu blocks",
                            json_array_size(reward), n);
            goto fail;
        }
        out->rewards = calloc(n * n_percentiles, sizeof *out->rewards);
        if (!out->rewards)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            const json_t *row = json_array_get(reward, i);
            if (!json_is_array(row) || json_array_size(row) != n_percentiles) {
                jsonrpc_err_set(err, "feeHistory.reward[%zu]: expected an array of %zu quantities, "
                                "got %s", i, n_percentiles, jsonrpc_describe(d, sizeof d, row));
                goto fail;
            }
            for (size_t j = 0; j < n_percentiles; j++) {
                snprintf(p, sizeof p, "feeHistory.reward[%zu][%zu]", i, j);
                if (jsonrpc_quantity_u256(&out->rewards[i * n_percentiles + j], err,
                                          json_array_get(row, j), p) != 0)
                    goto fail;
            }
        }
    }
    out->n_blocks = n;
    out->n_percentiles = n_percentiles;
    return 0;
nomem:
    jsonrpc_err_set(err, "feeHistory: out of memory for %zu blocks", n);
fail:
    evm_fee_history_dispose(out);
    return -1;
}

/* ---- Fee suggestion ----------------------------------------------------- */

void evm_fee_policy_init(evm_fee_policy *p)
{
    p->base_fee_multiplier = 2;
    p->reward_percentile = 50;
    p->history_blocks = 10;
    p->min_priority_fee = u256_from_u64(1000000000u); /* 1 gwei */
}

static int evm_u256_cmp_qsort(const void *a, const void *b)
{
    return u256_cmp(a, b);
}

int evm_fee_suggest(evm_fee_suggestion *out, jsonrpc_err *err, const evm_fee_history *h,
                    const evm_fee_policy *policy)
{
    if (policy->base_fee_multiplier < 1 || policy->base_fee_multiplier > 100 ||
        policy->reward_percentile > 100 || policy->history_blocks < 1 ||
        policy->history_blocks > EVM_FEE_HISTORY_BLOCKS_MAX) {
        jsonrpc_err_set(err, "fee policy out of range (multiplier 1..100, percentile 0..100, "
                        "blocks 1..%u)", EVM_FEE_HISTORY_BLOCKS_MAX);
        return -1;
    }
    if (h->n_blocks == 0 || h->n_percentiles != 1 || !h->rewards || !h->base_fees) {
        jsonrpc_err_set(err, "fee history must have at least one block and exactly one reward "
                        "percentile");
        return -1;
    }
    /* Median of the non-zero rewards (all of them when all are zero). */
    u256 *sorted = malloc(h->n_blocks * sizeof *sorted);
    if (!sorted) {
        jsonrpc_err_set(err, "fee suggestion: out of memory");
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < h->n_blocks; i++)
        if (!u256_is_zero(&h->rewards[i]))
            sorted[m++] = h->rewards[i];
    if (m == 0) {
        for (size_t i = 0; i < h->n_blocks; i++)
            sorted[i] = h->rewards[i];
        m = h->n_blocks;
    }
    qsort(sorted, m, sizeof *sorted, evm_u256_cmp_qsort);
    u256 tip = sorted[(m - 1) / 2];
    free(sorted);
    if (u256_cmp(&tip, &policy->min_priority_fee) < 0)
        tip = policy->min_priority_fee;

    u256 next_base = h->base_fees[h->n_blocks];
    u256 mult = u256_from_u64(policy->base_fee_multiplier);
    u256 max_fee;
    if (u256_mul(&max_fee, &next_base, &mult) != 0 || u256_add(&max_fee, &max_fee, &tip) != 0) {
        jsonrpc_err_set(err, "fee suggestion overflows 256 bits");
        return -1;
    }
    out->max_fee_per_gas = max_fee;
    out->max_priority_fee_per_gas = tip;
    out->next_base_fee = next_base;
    return 0;
}

/* ---- eth_sendRawTransaction errors -------------------------------------- */

const char *evm_send_status_name(evm_send_status s)
{
    switch (s) {
    case EVM_SEND_ACCEPTED: return "accepted";
    case EVM_SEND_ALREADY_KNOWN: return "already_known";
    case EVM_SEND_NONCE_TOO_LOW: return "nonce_too_low";
    case EVM_SEND_UNDERPRICED: return "underpriced";
    case EVM_SEND_INSUFFICIENT_FUNDS: return "insufficient_funds";
    case EVM_SEND_REJECTED: return "rejected";
    case EVM_SEND_UNKNOWN: return "unknown";
    case EVM_SEND_NOT_SENT: return "not_sent";
    case EVM_SEND_INVALID: return "invalid";
    }
    return "?";
}

/* Message fragments per class, checked in table order (first match wins).
 * Sources: geth/erigon txpool errors, nethermind's AcceptTxResult names,
 * besu's TransactionInvalidReason names, anvil/reth pool errors. */
static const struct {
    const char *fragment;
    evm_send_status status;
} evm_send_error_table[] = {
    {"already known", EVM_SEND_ALREADY_KNOWN},          /* geth, erigon, reth */
    {"alreadyknown", EVM_SEND_ALREADY_KNOWN},           /* nethermind */
    {"already imported", EVM_SEND_ALREADY_KNOWN},       /* anvil, openethereum */
    {"known transaction", EVM_SEND_ALREADY_KNOWN},      /* besu */
    {"existing tx with same hash", EVM_SEND_ALREADY_KNOWN}, /* erigon */
    {"already exists", EVM_SEND_ALREADY_KNOWN},
    {"nonce too low", EVM_SEND_NONCE_TOO_LOW},          /* geth, anvil, reth */
    {"nonce_too_low", EVM_SEND_NONCE_TOO_LOW},          /* besu */
    {"nonce is too low", EVM_SEND_NONCE_TOO_LOW},       /* openethereum */
    {"oldnonce", EVM_SEND_NONCE_TOO_LOW},               /* nethermind */
    {"underpriced", EVM_SEND_UNDERPRICED},              /* geth: transaction/replacement ... */
    {"fee too low", EVM_SEND_UNDERPRICED},              /* replacement fee too low */
    {"feetoolow", EVM_SEND_UNDERPRICED},                /* nethermind */
    {"less than block base fee", EVM_SEND_UNDERPRICED}, /* geth, anvil */
    {"gas price too low", EVM_SEND_UNDERPRICED},
    {"gas price supplied is too low", EVM_SEND_UNDERPRICED}, /* openethereum */
    {"insufficient funds", EVM_SEND_INSUFFICIENT_FUNDS}, /* geth, anvil */
    {"insufficientfunds", EVM_SEND_INSUFFICIENT_FUNDS}, /* nethermind */
    {"upfront_cost_exceeds_balance", EVM_SEND_INSUFFICIENT_FUNDS}, /* besu */
};

evm_send_status evm_classify_send_error(const char *message)
{
    for (size_t i = 0; i < sizeof evm_send_error_table / sizeof evm_send_error_table[0]; i++)
        if (strcasestr(message, evm_send_error_table[i].fragment))
            return evm_send_error_table[i].status;
    return EVM_SEND_REJECTED;
}
