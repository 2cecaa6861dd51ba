/* evm_calls: the typed helpers of evm_rpc.h (parameters, result parsers,
 * the eth_* calls); the transport is in evm_rpc.c. */
#include "evm_rpc.h"
#include "evm_rpc_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "hex.h"
#include "jsonrpc.h"
#include "keccak.h"
#include "log.h"

/* ---- Parameters --------------------------------------------------------- */

/* An array of n values (references stolen); NULL when any is NULL or
 * memory runs out (every reference is released then). */
static json_t *evm_params(size_t n, ...)
{
    va_list ap;
    json_t *arr = json_array();
    bool ok = arr != NULL;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        json_t *v = va_arg(ap, json_t *);
        if (!v)
            ok = false;
        else if (!ok)
            json_decref(v);
        else if (json_array_append_new(arr, v) != 0) /* releases v on failure */
            ok = false;
    }
    va_end(ap);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *evm_json_block(evm_block_id b)
{
    switch (b.tag) {
    case EVM_BLOCK_LATEST: return json_string("latest");
    case EVM_BLOCK_PENDING: return json_string("pending");
    case EVM_BLOCK_SAFE: return json_string("safe");
    case EVM_BLOCK_FINALIZED: return json_string("finalized");
    case EVM_BLOCK_EARLIEST: return json_string("earliest");
    case EVM_BLOCK_NUMBER: return jsonrpc_json_u64(b.number);
    }
    return NULL;
}

static json_t *evm_json_address(const uint8_t *a)
{
    return jsonrpc_json_data(a, EVM_ADDRESS_LEN);
}

static json_t *evm_json_call_msg(const evm_call_msg *msg)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if ((msg->from && json_object_set_new(o, "from", evm_json_address(msg->from)) != 0) ||
        (msg->to && json_object_set_new(o, "to", evm_json_address(msg->to)) != 0) ||
        (msg->data_len > 0 &&
         json_object_set_new(o, "data", jsonrpc_json_data(msg->data, msg->data_len)) != 0) ||
        (msg->value && json_object_set_new(o, "value", jsonrpc_json_u256(msg->value)) != 0) ||
        (msg->gas && json_object_set_new(o, "gas", jsonrpc_json_u64(msg->gas)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- Result parsers ----------------------------------------------------- */

static int evm_res_u64(void *ctx, jsonrpc_err *err, const json_t *r)
{
    return jsonrpc_quantity_u64(ctx, err, r, "result");
}

static int evm_res_u256(void *ctx, jsonrpc_err *err, const json_t *r)
{
    return jsonrpc_quantity_u256(ctx, err, r, "result");
}

typedef struct {
    uint8_t *data;
    size_t len;
} evm_bytes;

static int evm_res_data(void *ctx, jsonrpc_err *err, const json_t *r)
{
    evm_bytes *b = ctx;
    return jsonrpc_data_alloc(&b->data, &b->len, EVM_DATA_MAX, err, r, "result");
}

typedef struct {
    evm_receipt *out;
    bool *found;
} evm_receipt_ctx;

static int evm_res_receipt(void *ctx, jsonrpc_err *err, const json_t *r)
{
    evm_receipt_ctx *c = ctx;
    *c->found = false;
    if (json_is_null(r))
        return 0;
    if (evm_parse_receipt(c->out, err, r) != 0)
        return -1;
    *c->found = true;
    return 0;
}

typedef struct {
    evm_block_header *out;
    bool *found;
} evm_block_ctx;

static int evm_res_block(void *ctx, jsonrpc_err *err, const json_t *r)
{
    evm_block_ctx *c = ctx;
    *c->found = false;
    if (json_is_null(r))
        return 0;
    if (evm_parse_block_header(c->out, err, r) != 0)
        return -1;
    *c->found = true;
    return 0;
}

static int evm_res_logs(void *ctx, jsonrpc_err *err, const json_t *r)
{
    return evm_parse_logs(ctx, err, r, "result");
}

typedef struct {
    evm_fee_history *out;
    size_t n_percentiles;
} evm_fee_ctx;

static int evm_res_fee_history(void *ctx, jsonrpc_err *err, const json_t *r)
{
    evm_fee_ctx *c = ctx;
    return evm_parse_fee_history(c->out, err, r, c->n_percentiles);
}

static int evm_res_tx_hash(void *ctx, jsonrpc_err *err, const json_t *r)
{
    const uint8_t *expected = ctx;
    uint8_t got[EVM_HASH_LEN];
    char a[2 * EVM_HASH_LEN + 3], b[2 * EVM_HASH_LEN + 3];
    if (jsonrpc_data_fixed(got, sizeof got, err, r, "result") != 0)
        return -1;
    if (memcmp(got, expected, EVM_HASH_LEN) != 0) {
        hex_encode_0x(a, got, EVM_HASH_LEN);
        hex_encode_0x(b, expected, EVM_HASH_LEN);
        jsonrpc_err_set(err, "result: the node returned hash %s, the transaction's is %s", a, b);
        return -1;
    }
    return 0;
}

/* ---- Public calls ------------------------------------------------------- */

evm_err evm_rpc_chain_id(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_CHAIN_ID, json_array(), evm_res_u64, out);
}

evm_err evm_rpc_block_number(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_BLOCK_NUMBER, json_array(), evm_res_u64, out);
}

evm_err evm_rpc_get_balance(evm_rpc *rpc, u256 *out, evm_rpc_error *err,
                            const uint8_t addr[EVM_ADDRESS_LEN], evm_block_id block)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_GET_BALANCE,
                       evm_params(2, evm_json_address(addr), evm_json_block(block)), evm_res_u256,
                       out);
}

evm_err evm_rpc_gas_price(evm_rpc *rpc, u256 *out, evm_rpc_error *err)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_GAS_PRICE, json_array(), evm_res_u256, out);
}

evm_err evm_rpc_max_priority_fee(evm_rpc *rpc, u256 *out, evm_rpc_error *err)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_MAX_PRIORITY_FEE, json_array(), evm_res_u256, out);
}

evm_err evm_rpc_call(evm_rpc *rpc, uint8_t **out, size_t *out_len, evm_rpc_error *err,
                     const evm_call_msg *msg, evm_block_id block)
{
    evm_bytes b = {NULL, 0};
    *out = NULL;
    *out_len = 0;
    if (msg->data_len > 0 && !msg->data) {
        evm_rpc_err_clear(err);
        evm_rpc_err_setf(err, "eth_call: NULL data with a length");
        return EVM_ERR_INVALID_ARG;
    }
    evm_err e = evm_rpc_run(rpc, err, EVM_METHOD_CALL,
                            evm_params(2, evm_json_call_msg(msg), evm_json_block(block)),
                            evm_res_data, &b);
    if (e == EVM_OK) {
        *out = b.data;
        *out_len = b.len;
    }
    return e;
}

evm_err evm_rpc_erc20_balance_of(evm_rpc *rpc, u256 *out, evm_rpc_error *err,
                                 const uint8_t token[EVM_ADDRESS_LEN],
                                 const uint8_t owner[EVM_ADDRESS_LEN], evm_block_id block)
{
    uint8_t calldata[ABI_SELECTOR_LEN + ABI_WORD_LEN];
    size_t n;
    abi_value arg = abi_arg_address(owner);
    abi_value ret;
    if (abi_encode_call(calldata, sizeof calldata, &n, "balanceOf(address)", &arg, 1) != ABI_OK) {
        evm_rpc_err_clear(err);
        evm_rpc_err_setf(err, "balanceOf: cannot encode the call");
        return EVM_ERR_INVALID_ARG;
    }
    evm_call_msg msg = {.to = token, .data = calldata, .data_len = n};
    uint8_t *data;
    size_t len;
    evm_err e = evm_rpc_call(rpc, &data, &len, err, &msg, block);
    if (e != EVM_OK)
        return e;
    abi_err ae = abi_decode_params(&ret, 1, "uint256", data, len, ABI_DECODE_STRICT);
    free(data);
    if (ae != ABI_OK) {
        char t[2 * EVM_ADDRESS_LEN + 3];
        hex_encode_0x(t, token, EVM_ADDRESS_LEN);
        evm_rpc_err_setf(err, "balanceOf on %s: %zu bytes returned, not one uint256 (%s)", t, len,
                     abi_strerror(ae));
        return EVM_ERR_ABI;
    }
    u256_from_be32(out, ret.word);
    return EVM_OK;
}

evm_err evm_rpc_get_transaction_count(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err,
                                      const uint8_t addr[EVM_ADDRESS_LEN], evm_block_id block)
{
    return evm_rpc_run(rpc, err, EVM_METHOD_GET_TRANSACTION_COUNT,
                       evm_params(2, evm_json_address(addr), evm_json_block(block)), evm_res_u64,
                       out);
}

evm_err evm_rpc_estimate_gas(evm_rpc *rpc, uint64_t *out, evm_rpc_error *err,
                             const evm_call_msg *msg)
{
    if (msg->data_len > 0 && !msg->data) {
        evm_rpc_err_clear(err);
        evm_rpc_err_setf(err, "eth_estimateGas: NULL data with a length");
        return EVM_ERR_INVALID_ARG;
    }
    return evm_rpc_run(rpc, err, EVM_METHOD_ESTIMATE_GAS, evm_params(1, evm_json_call_msg(msg)),
                       evm_res_u64, out);
}

evm_err evm_rpc_fee_history(evm_rpc *rpc, evm_fee_history *out, evm_rpc_error *err,
                            unsigned block_count, evm_block_id newest,
                            const unsigned *percentiles, size_t n_percentiles)
{
    memset(out, 0, sizeof *out);
    if (block_count < 1 || block_count > EVM_FEE_HISTORY_BLOCKS_MAX ||
        n_percentiles > EVM_FEE_PERCENTILES_MAX) {
        evm_rpc_err_clear(err);
        evm_rpc_err_setf(err, "eth_feeHistory: %u blocks (1..%u) and %zu percentiles (at most %u)",
                     block_count, EVM_FEE_HISTORY_BLOCKS_MAX, n_percentiles,
                     EVM_FEE_PERCENTILES_MAX);
        return EVM_ERR_INVALID_ARG;
    }
    json_t *pct = json_array();
    for (size_t i = 0; pct && i < n_percentiles; i++) {
        if (percentiles[i] > 100 || (i > 0 && percentiles[i] < percentiles[i - 1])) {
            json_decref(pct);
            evm_rpc_err_clear(err);
            evm_rpc_err_setf(err, "eth_feeHistory: percentiles must be ascending in 0..100");
            return EVM_ERR_INVALID_ARG;
        }
        if (json_array_append_new(pct, json_integer((json_int_t)percentiles[i])) != 0) {
            json_decref(pct);
            pct = NULL;
        }
    }
    evm_fee_ctx ctx = {out, n_percentiles};
    return evm_rpc_run(rpc, err, EVM_METHOD_FEE_HISTORY,
                       evm_params(3, jsonrpc_json_u64(block_count), evm_json_block(newest), pct),
                       evm_res_fee_history, &ctx);
}

evm_err evm_rpc_suggest_fees(evm_rpc *rpc, evm_fee_suggestion *out, evm_rpc_error *err,
                             const evm_fee_policy *policy)
{
    evm_fee_history h;
    jsonrpc_err je;
    unsigned pct = policy->reward_percentile;
    evm_err e = evm_rpc_fee_history(rpc, &h, err, policy->history_blocks, EVM_BLOCK_ID_LATEST,
                                    &pct, 1);
    if (e != EVM_OK)
        return e;
    int rc = evm_fee_suggest(out, &je, &h, policy);
    evm_fee_history_dispose(&h);
    if (rc != 0) {
        evm_rpc_err_setf(err, "fee suggestion: %s", je.msg);
        return EVM_ERR_FEE;
    }
    return EVM_OK;
}

evm_err evm_rpc_get_transaction_receipt(evm_rpc *rpc, evm_receipt *out, bool *found,
                                        evm_rpc_error *err, const uint8_t hash[EVM_HASH_LEN])
{
    evm_receipt_ctx ctx = {out, found};
    memset(out, 0, sizeof *out);
    *found = false;
    return evm_rpc_run(rpc, err, EVM_METHOD_GET_TRANSACTION_RECEIPT,
                       evm_params(1, jsonrpc_json_data(hash, EVM_HASH_LEN)), evm_res_receipt, &ctx);
}

evm_err evm_rpc_get_logs(evm_rpc *rpc, evm_log_list *out, evm_rpc_error *err,
                         const evm_log_filter *f)
{
    memset(out, 0, sizeof *out);
    if (f->n_topics > EVM_LOG_TOPICS_MAX) {
        evm_rpc_err_clear(err);
        evm_rpc_err_setf(err, "eth_getLogs: %zu topic positions, at most %d", f->n_topics,
                     EVM_LOG_TOPICS_MAX);
        return EVM_ERR_INVALID_ARG;
    }
    json_t *filter = json_object();
    json_t *topics = json_array();
    bool ok = filter && topics;
    for (size_t i = 0; ok && i < f->n_topics; i++)
        ok = json_array_append_new(topics, f->topics[i] ? jsonrpc_json_data(f->topics[i], EVM_HASH_LEN)
                                                        : json_null()) == 0;
    ok = ok && json_object_set_new(filter, "fromBlock", evm_json_block(f->from_block)) == 0 &&
         json_object_set_new(filter, "toBlock", evm_json_block(f->to_block)) == 0 &&
         (!f->address || json_object_set_new(filter, "address", evm_json_address(f->address)) == 0) &&
         (f->n_topics == 0 || json_object_set(filter, "topics", topics) == 0);
    json_decref(topics);
    if (!ok) {
        json_decref(filter);
        filter = NULL;
    }
    return evm_rpc_run(rpc, err, EVM_METHOD_GET_LOGS, evm_params(1, filter), evm_res_logs, out);
}

evm_err evm_rpc_get_block_by_number(evm_rpc *rpc, evm_block_header *out, bool *found,
                                    evm_rpc_error *err, evm_block_id block)
{
    evm_block_ctx ctx = {out, found};
    memset(out, 0, sizeof *out);
    *found = false;
    return evm_rpc_run(rpc, err, EVM_METHOD_GET_BLOCK_BY_NUMBER,
                       evm_params(2, evm_json_block(block), json_false()), evm_res_block, &ctx);
}

evm_send_status evm_rpc_send_raw_transaction(evm_rpc *rpc, uint8_t hash[EVM_HASH_LEN],
                                             evm_rpc_error *err, const uint8_t *raw,
                                             size_t raw_len)
{
    evm_rpc_error local;
    char h[2 * EVM_HASH_LEN + 3];
    if (!err)
        err = &local;
    evm_rpc_err_clear(err);
    memset(hash, 0, EVM_HASH_LEN);
    if (!raw || raw_len == 0) {
        evm_rpc_err_setf(err, "eth_sendRawTransaction: empty transaction");
        return EVM_SEND_INVALID;
    }
    keccak256(hash, raw, raw_len);
    hex_encode_0x(h, hash, EVM_HASH_LEN);
    evm_err e = evm_rpc_run(rpc, err, EVM_METHOD_SEND_RAW_TRANSACTION,
                            evm_params(1, jsonrpc_json_data(raw, raw_len)), evm_res_tx_hash, hash);
    evm_send_status s;
    switch (e) {
    case EVM_OK: s = EVM_SEND_ACCEPTED; break;
    case EVM_ERR_RPC: s = evm_classify_send_error(err->message); break;
    case EVM_ERR_UNKNOWN_OUTCOME: s = EVM_SEND_UNKNOWN; break;
    case EVM_ERR_UNAVAILABLE: s = EVM_SEND_NOT_SENT; break;
    default: s = EVM_SEND_INVALID; break;
    }
    if (s == EVM_SEND_ACCEPTED) {
        log_info("evm.send", "hash=%s status=%s endpoint=%d", h, evm_send_status_name(s),
                 err->endpoint);
    } else {
        char q[EVM_RPC_MESSAGE_MAX + 8];
        log_warn("evm.send", "hash=%s status=%s endpoint=%d detail=%s", h, evm_send_status_name(s),
                 err->endpoint, log_quote(q, sizeof q, err->message));
    }
    return s;
}
