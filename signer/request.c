#include "request.h"

#include "keystore.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4)))
static int reject(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -1;
}

static int has_unknown(const void *m)
{
    return m && ((const ProtobufCMessage *)m)->n_unknown_fields != 0;
}

static int printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e)
            return 0;
    }
    return 1;
}

const char *request_op_name(request_op op)
{
    switch (op) {
    case REQUEST_OP_GENERATE_KEY: return "generate_key";
    case REQUEST_OP_SIGN_TRANSACTION: return "sign_transaction";
    case REQUEST_OP_SIGN_MESSAGE: return "sign_message";
    case REQUEST_OP_REWRAP: return "rewrap";
    case REQUEST_OP_STATUS: return "status";
    case REQUEST_OP_NONE: break;
    }
    return "none";
}

/* sealed_key, address, owner_id: the reference to a sealed key. */
static int check_key_ref(request *r, char *why, size_t wl, const ProtobufCBinaryData *sealed,
                         const ProtobufCBinaryData *address, const char *owner)
{
    if (sealed->len != KEYSTORE_BLOB_LEN)
        return reject(why, wl, "sealed_key must be %u bytes, got %zu", KEYSTORE_BLOB_LEN, sealed->len);
    if (address->len != ETHTX_ADDRESS_LEN)
        return reject(why, wl, "address must be 20 bytes, got %zu", address->len);
    if (!keystore_owner_valid(owner, strlen(owner)))
        return reject(why, wl, "owner_id must be 1..%u printable ASCII characters without quotes or backslashes",
                      KEYSTORE_OWNER_MAX);
    r->sealed_key = sealed->data;
    r->address = address->data;
    r->owner = owner;
    r->owner_len = strlen(owner);
    return 0;
}

static int check_nonce(request *r, char *why, size_t wl, uint64_t nonce)
{
    if (nonce > REQUEST_NONCE_MAX)
        return reject(why, wl, "nonce %llu is above 2^64-2 (EIP-2681: no account nonce can reach 2^64-1)",
                      (unsigned long long)nonce);
    r->tx.nonce = nonce;
    return 0;
}

static int check_word(char *why, size_t wl, const char *name, const ProtobufCBinaryData *b, uint8_t out[32])
{
    if (b->len != ETHTX_WORD_LEN)
        return reject(why, wl, "%s must be 32 bytes big-endian, got %zu", name, b->len);
    memcpy(out, b->data, 32);
    return 0;
}

static int check_common_tx(request *r, char *why, size_t wl, uint64_t chain_id,
                           const ProtobufCBinaryData *to, const ProtobufCBinaryData *value,
                           const ProtobufCBinaryData *data)
{
    ethtx *tx = &r->tx;
    if (chain_id == 0 || chain_id > ETHTX_CHAIN_ID_MAX)
        return reject(why, wl, "chain_id must be 1..%llu", (unsigned long long)ETHTX_CHAIN_ID_MAX);
    tx->chain_id = chain_id;
    if (to->len != 0 && to->len != ETHTX_ADDRESS_LEN)
        return reject(why, wl, "to must be 20 bytes (or empty for a contract creation), got %zu", to->len);
    tx->has_to = to->len == ETHTX_ADDRESS_LEN;
    if (tx->has_to)
        memcpy(tx->to, to->data, ETHTX_ADDRESS_LEN);
    if (check_word(why, wl, "value", value, tx->value) != 0)
        return -1;
    if (data->len > REQUEST_DATA_MAX)
        return reject(why, wl, "data larger than %u bytes", REQUEST_DATA_MAX);
    tx->data = data->len ? data->data : NULL;
    tx->data_len = data->len;
    return 0;
}

static int check_sign_tx(request *r, char *why, size_t wl,
                         const Coffer__Signer__V1__SignTransactionRequest *m)
{
    ethtx *tx = &r->tx;
    if (has_unknown(m))
        return reject(why, wl, "sign_transaction carries unknown fields");
    if (check_key_ref(r, why, wl, &m->sealed_key, &m->address, m->owner_id) != 0)
        return -1;
    if (m->tx_case == COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_EIP1559) {
        const Coffer__Signer__V1__Eip1559Tx *t = m->eip1559;
        if (has_unknown(t))
            return reject(why, wl, "eip1559 carries unknown fields");
        tx->type = ETHTX_EIP1559;
        tx->gas_limit = t->gas_limit;
        if (check_nonce(r, why, wl, t->nonce) != 0 ||
            check_word(why, wl, "max_priority_fee_per_gas", &t->max_priority_fee_per_gas, tx->max_priority_fee) != 0 ||
            check_word(why, wl, "max_fee_per_gas", &t->max_fee_per_gas, tx->max_fee) != 0 ||
            check_common_tx(r, why, wl, t->chain_id, &t->to, &t->value, &t->data) != 0)
            return -1;
        if (t->n_access_list > REQUEST_ACCESS_MAX)
            return reject(why, wl, "access_list longer than %u entries", REQUEST_ACCESS_MAX);
        size_t total_keys = 0;
        for (size_t i = 0; i < t->n_access_list; i++) {
            const Coffer__Signer__V1__AccessListEntry *a = t->access_list[i];
            if (has_unknown(a))
                return reject(why, wl, "access_list[%zu] carries unknown fields", i);
            if (a->address.len != ETHTX_ADDRESS_LEN)
                return reject(why, wl, "access_list[%zu].address must be 20 bytes", i);
            if (a->n_storage_keys > REQUEST_STORAGE_KEYS_MAX)
                return reject(why, wl, "access_list[%zu] has more than %u storage keys", i,
                              REQUEST_STORAGE_KEYS_MAX);
            for (size_t k = 0; k < a->n_storage_keys; k++)
                if (a->storage_keys[k].len != ETHTX_WORD_LEN)
                    return reject(why, wl, "access_list[%zu].storage_keys[%zu] must be 32 bytes", i, k);
            total_keys += a->n_storage_keys;
        }
        if (t->n_access_list) {
            r->access = calloc(t->n_access_list, sizeof *r->access);
            r->storage_keys = calloc(total_keys + 1, sizeof *r->storage_keys);
            if (!r->access || !r->storage_keys)
                return reject(why, wl, "out of memory");
            size_t at = 0;
            for (size_t i = 0; i < t->n_access_list; i++) {
                const Coffer__Signer__V1__AccessListEntry *a = t->access_list[i];
                r->access[i].address = a->address.data;
                r->access[i].storage_keys = r->storage_keys + at;
                r->access[i].n_storage_keys = a->n_storage_keys;
                for (size_t k = 0; k < a->n_storage_keys; k++)
                    r->storage_keys[at++] = a->storage_keys[k].data;
            }
            tx->access_list = r->access;
            tx->n_access = t->n_access_list;
        }
        return 0;
    }
    if (m->tx_case == COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_LEGACY) {
        const Coffer__Signer__V1__LegacyTx *t = m->legacy;
        if (has_unknown(t))
            return reject(why, wl, "legacy carries unknown fields");
        tx->type = ETHTX_LEGACY;
        tx->gas_limit = t->gas_limit;
        if (check_nonce(r, why, wl, t->nonce) != 0 ||
            check_word(why, wl, "gas_price", &t->gas_price, tx->max_fee) != 0 ||
            check_common_tx(r, why, wl, t->chain_id, &t->to, &t->value, &t->data) != 0)
            return -1;
        return 0;
    }
    return reject(why, wl, "sign_transaction has no transaction (eip1559 or legacy)");
}

int request_decode(request *out, uint64_t *request_id, char *why, size_t wl, const uint8_t *frame,
                   size_t len)
{
    Coffer__Signer__V1__Request *m;
    memset(out, 0, sizeof *out);
    *request_id = 0;
    m = coffer__signer__v1__request__unpack(NULL, len, frame);
    if (!m)
        return reject(why, wl, "frame is not a coffer.signer.v1.Request");
    out->msg = m;
    *request_id = m->request_id;
    if (has_unknown(m)) {
        reject(why, wl, "request carries %u unknown field(s) (unknown operation?)", m->base.n_unknown_fields);
        goto fail;
    }
    if (m->version != REQUEST_PROTOCOL_VERSION) {
        reject(why, wl, "protocol version %u, this signer speaks %u", m->version, REQUEST_PROTOCOL_VERSION);
        goto fail;
    }
    if (m->request_id == 0) {
        reject(why, wl, "request_id must not be 0");
        goto fail;
    }
    if (!printable(m->trace_id, REQUEST_TRACE_MAX)) {
        reject(why, wl, "trace_id must be at most %u printable ASCII characters", REQUEST_TRACE_MAX);
        goto fail;
    }
    switch (m->op_case) {
    case COFFER__SIGNER__V1__REQUEST__OP_GENERATE_KEY: {
        const Coffer__Signer__V1__GenerateKeyRequest *g = m->generate_key;
        out->op = REQUEST_OP_GENERATE_KEY;
        if (has_unknown(g)) {
            reject(why, wl, "generate_key carries unknown fields");
            goto fail;
        }
        if (g->key_type != COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1) {
            reject(why, wl, "key_type must be KEY_TYPE_SECP256K1");
            goto fail;
        }
        if (!keystore_owner_valid(g->owner_id, strlen(g->owner_id))) {
            reject(why, wl, "owner_id must be 1..%u printable ASCII characters without quotes or backslashes",
                   KEYSTORE_OWNER_MAX);
            goto fail;
        }
        out->owner = g->owner_id;
        out->owner_len = strlen(g->owner_id);
        return 0;
    }
    case COFFER__SIGNER__V1__REQUEST__OP_SIGN_TRANSACTION:
        out->op = REQUEST_OP_SIGN_TRANSACTION;
        if (check_sign_tx(out, why, wl, m->sign_transaction) != 0)
            goto fail;
        return 0;
    case COFFER__SIGNER__V1__REQUEST__OP_SIGN_MESSAGE: {
        const Coffer__Signer__V1__SignMessageRequest *s = m->sign_message;
        out->op = REQUEST_OP_SIGN_MESSAGE;
        if (has_unknown(s)) {
            reject(why, wl, "sign_message carries unknown fields");
            goto fail;
        }
        if (check_key_ref(out, why, wl, &s->sealed_key, &s->address, s->owner_id) != 0)
            goto fail;
        if (s->message.len == 0 || s->message.len > REQUEST_MESSAGE_MAX) {
            reject(why, wl, "message must be 1..%u bytes", REQUEST_MESSAGE_MAX);
            goto fail;
        }
        return 0;
    }
    case COFFER__SIGNER__V1__REQUEST__OP_REWRAP: {
        const Coffer__Signer__V1__RewrapRequest *w = m->rewrap;
        out->op = REQUEST_OP_REWRAP;
        if (has_unknown(w)) {
            reject(why, wl, "rewrap carries unknown fields");
            goto fail;
        }
        if (check_key_ref(out, why, wl, &w->sealed_key, &w->address, w->owner_id) != 0)
            goto fail;
        return 0;
    }
    case COFFER__SIGNER__V1__REQUEST__OP_STATUS:
        out->op = REQUEST_OP_STATUS;
        if (has_unknown(m->status)) {
            reject(why, wl, "status carries unknown fields");
            goto fail;
        }
        return 0;
    default:
        reject(why, wl, "request has no operation");
        goto fail;
    }
fail:
    request_dispose(out);
    return -1;
}

void request_dispose(request *r)
{
    if (!r)
        return;
    if (r->msg)
        coffer__signer__v1__request__free_unpacked(r->msg, NULL);
    free(r->access);
    free(r->storage_keys);
    memset(r, 0, sizeof *r);
}
