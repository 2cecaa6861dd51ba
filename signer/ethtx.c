#include "ethtx.h"

#include "keccak.h"

#include <stdio.h>
#include <string.h>

static rlp_err put_fields_common_tail(rlp_buf *b, const ethtx *tx)
{
    rlp_err e;
    if ((e = rlp_put_bytes(b, tx->has_to ? tx->to : NULL, tx->has_to ? ETHTX_ADDRESS_LEN : 0)) != RLP_OK)
        return e;
    if ((e = rlp_put_uint_be(b, tx->value, ETHTX_WORD_LEN)) != RLP_OK)
        return e;
    return rlp_put_bytes(b, tx->data, tx->data_len);
}

static rlp_err put_access_list(rlp_buf *b, const ethtx *tx)
{
    rlp_err e;
    size_t outer = rlp_list_begin(b);
    for (size_t i = 0; i < tx->n_access; i++) {
        const ethtx_access *a = &tx->access_list[i];
        size_t entry = rlp_list_begin(b);
        if ((e = rlp_put_bytes(b, a->address, ETHTX_ADDRESS_LEN)) != RLP_OK)
            return e;
        size_t keys = rlp_list_begin(b);
        for (size_t k = 0; k < a->n_storage_keys; k++)
            if ((e = rlp_put_bytes(b, a->storage_keys[k], ETHTX_WORD_LEN)) != RLP_OK)
                return e;
        if ((e = rlp_list_end(b, keys)) != RLP_OK || (e = rlp_list_end(b, entry)) != RLP_OK)
            return e;
    }
    return rlp_list_end(b, outer);
}

static rlp_err put_sig(rlp_buf *b, const ethtx_sig *sig)
{
    rlp_err e;
    if ((e = rlp_put_uint_be(b, sig->r, 32)) != RLP_OK)
        return e;
    return rlp_put_uint_be(b, sig->s, 32);
}

rlp_err ethtx_encode(rlp_buf *out, const ethtx *tx, const ethtx_sig *sig)
{
    rlp_err e;
    size_t list;

    rlp_buf_reset(out);
    if (tx->chain_id == 0 || tx->chain_id > ETHTX_CHAIN_ID_MAX)
        return RLP_ERR_INVALID_ARG;
    if (sig && sig->y_parity != 0 && sig->y_parity != 1)
        return RLP_ERR_INVALID_ARG;

    if (tx->type == ETHTX_EIP1559) {
        static const uint8_t type_byte = 0x02;
        /* 0x02 is itself a one-byte RLP item, so put_raw accepts it. */
        if ((e = rlp_put_raw(out, &type_byte, 1)) != RLP_OK)
            return e;
        list = rlp_list_begin(out);
        if ((e = rlp_put_uint64(out, tx->chain_id)) != RLP_OK ||
            (e = rlp_put_uint64(out, tx->nonce)) != RLP_OK ||
            (e = rlp_put_uint_be(out, tx->max_priority_fee, ETHTX_WORD_LEN)) != RLP_OK ||
            (e = rlp_put_uint_be(out, tx->max_fee, ETHTX_WORD_LEN)) != RLP_OK ||
            (e = rlp_put_uint64(out, tx->gas_limit)) != RLP_OK ||
            (e = put_fields_common_tail(out, tx)) != RLP_OK ||
            (e = put_access_list(out, tx)) != RLP_OK)
            goto fail;
        if (sig && ((e = rlp_put_uint64(out, (uint64_t)sig->y_parity)) != RLP_OK ||
                    (e = put_sig(out, sig)) != RLP_OK))
            goto fail;
    } else if (tx->type == ETHTX_LEGACY) {
        if (tx->n_access != 0)
            return RLP_ERR_INVALID_ARG;
        list = rlp_list_begin(out);
        if ((e = rlp_put_uint64(out, tx->nonce)) != RLP_OK ||
            (e = rlp_put_uint_be(out, tx->max_fee, ETHTX_WORD_LEN)) != RLP_OK ||
            (e = rlp_put_uint64(out, tx->gas_limit)) != RLP_OK ||
            (e = put_fields_common_tail(out, tx)) != RLP_OK)
            goto fail;
        if (sig) {
            uint64_t v = tx->chain_id * 2u + 35u + (uint64_t)sig->y_parity;
            if ((e = rlp_put_uint64(out, v)) != RLP_OK || (e = put_sig(out, sig)) != RLP_OK)
                goto fail;
        } else {
            if ((e = rlp_put_uint64(out, tx->chain_id)) != RLP_OK ||
                (e = rlp_put_uint64(out, 0)) != RLP_OK || (e = rlp_put_uint64(out, 0)) != RLP_OK)
                goto fail;
        }
    } else {
        return RLP_ERR_INVALID_ARG;
    }
    if ((e = rlp_list_end(out, list)) != RLP_OK)
        goto fail;
    return RLP_OK;
fail:
    rlp_buf_reset(out);
    return e;
}

rlp_err ethtx_signing_hash(uint8_t digest[32], rlp_buf *scratch, const ethtx *tx)
{
    rlp_err e = ethtx_encode(scratch, tx, NULL);
    if (e != RLP_OK)
        return e;
    keccak256(digest, scratch->data, scratch->len);
    return RLP_OK;
}

void ethtx_personal_digest(uint8_t digest[32], const uint8_t *msg, size_t len)
{
    static const char prefix[] = "\x19" "Ethereum Signed Message:\n";
    char num[24];
    keccak256_ctx k;
    int n = snprintf(num, sizeof num, "%zu", len);

    keccak256_init(&k);
    keccak256_update(&k, (const uint8_t *)prefix, sizeof prefix - 1);
    keccak256_update(&k, (const uint8_t *)num, (size_t)n);
    keccak256_update(&k, msg, len);
    keccak256_final(&k, digest);
}
