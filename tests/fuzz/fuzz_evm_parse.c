/* The chain client's result parsers (api-server/evm_parse): the first byte
 * picks the parser (receipt, log list, one log, block header, fee history
 * with 0..3 percentiles plus the fee suggestion, send-error
 * classification), the rest is the JSON "result" value (or the error
 * message text). Properties: never a crash or leak; a refusal says why and
 * leaves nothing to free; an accepted value keeps its invariants. */
#include "evm_parse.h"
#include "fuzz_check.h"

#include <stdlib.h>
#include <string.h>

static void check_log(const evm_log *l)
{
    CHECK(l->n_topics <= EVM_LOG_TOPICS_MAX);
    CHECK((l->data == NULL) == (l->data_len == 0));
    CHECK(l->data_len <= EVM_DATA_MAX);
}

static void check_logs(const evm_log_list *l)
{
    CHECK((l->items == NULL) == (l->count == 0));
    CHECK(l->count <= EVM_LOGS_MAX);
    for (size_t i = 0; i < l->count; i++)
        check_log(&l->items[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0] & 7;
    unsigned arg = data[0] >> 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    jsonrpc_err e;
    e.msg[0] = '\0';

    if (sel == 6 || sel == 7) {
        char *msg = malloc(len + 1);
        CHECK(msg != NULL);
        memcpy(msg, text, len);
        msg[len] = '\0';
        evm_send_status s = evm_classify_send_error(msg);
        CHECK(s == EVM_SEND_ALREADY_KNOWN || s == EVM_SEND_NONCE_TOO_LOW ||
              s == EVM_SEND_UNDERPRICED || s == EVM_SEND_INSUFFICIENT_FUNDS ||
              s == EVM_SEND_REJECTED);
        free(msg);
        return 0;
    }
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!v)
        return 0;
    int rc = 0;
    switch (sel) {
    case 0: {
        evm_receipt r;
        rc = evm_parse_receipt(&r, &e, v);
        if (rc == 0) {
            CHECK(r.status <= 1);
            CHECK(r.has_to != r.has_contract_address);
            CHECK(r.cumulative_gas_used >= r.gas_used);
            check_logs(&r.logs);
            for (size_t i = 0; i < r.logs.count; i++)
                CHECK(memcmp(r.logs.items[i].tx_hash, r.tx_hash, EVM_HASH_LEN) == 0);
            evm_receipt_dispose(&r);
        } else {
            CHECK(r.logs.items == NULL && r.logs.count == 0);
        }
        break;
    }
    case 1: {
        evm_log_list l;
        rc = evm_parse_logs(&l, &e, v, "result");
        check_logs(&l);
        if (rc != 0)
            CHECK(l.count == 0);
        evm_log_list_dispose(&l);
        break;
    }
    case 2: {
        evm_log l;
        rc = evm_parse_log(&l, &e, v, "log");
        if (rc == 0)
            check_log(&l);
        else
            CHECK(l.data == NULL);
        evm_log_dispose(&l);
        break;
    }
    case 3: {
        evm_block_header b;
        rc = evm_parse_block_header(&b, &e, v);
        break;
    }
    default: {
        evm_fee_history h;
        size_t np = arg % 4;
        rc = evm_parse_fee_history(&h, &e, v, np);
        if (rc == 0) {
            CHECK(h.n_blocks >= 1 && h.n_blocks <= EVM_FEE_HISTORY_BLOCKS_MAX);
            CHECK(h.n_percentiles == np);
            CHECK((h.rewards != NULL) == (np > 0));
            evm_fee_policy p;
            evm_fee_suggestion s;
            evm_fee_policy_init(&p);
            p.min_priority_fee = u256_from_u64(arg & 1 ? 0 : 1000000000u);
            jsonrpc_err e2;
            if (evm_fee_suggest(&s, &e2, &h, &p) == 0) {
                CHECK(np == 1);
                CHECK(u256_cmp(&s.max_fee_per_gas, &s.max_priority_fee_per_gas) >= 0);
                CHECK(u256_cmp(&s.max_priority_fee_per_gas, &p.min_priority_fee) >= 0);
                CHECK(u256_cmp(&s.next_base_fee, &h.base_fees[h.n_blocks]) == 0);
            }
            evm_fee_history_dispose(&h);
        } else {
            CHECK(h.base_fees == NULL && h.rewards == NULL);
        }
        break;
    }
    }
    if (rc != 0)
        CHECK(e.msg[0] != '\0');
    json_decref(v);
    return 0;
}
