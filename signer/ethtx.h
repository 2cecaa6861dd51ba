/* ethtx: Ethereum transactions as the signer builds them from typed
 * fields: EIP-1559 (type 2) and EIP-155 legacy. Encodes the signing
 * preimage and the signed raw transaction with common/rlp, and computes
 * the EIP-191 personal_sign digest. No key material here: sign.c signs
 * the digests this module produces.
 *
 *   EIP-1559 preimage: 0x02 | rlp([chain_id, nonce, max_priority_fee_per_gas,
 *                      max_fee_per_gas, gas_limit, to, value, data, access_list])
 *   EIP-1559 signed:   0x02 | rlp([..., access_list, y_parity, r, s])
 *   legacy preimage:   rlp([nonce, gas_price, gas_limit, to, value, data, chain_id, 0, 0])
 *   legacy signed:     rlp([nonce, gas_price, gas_limit, to, value, data,
 *                      chain_id * 2 + 35 + y_parity, r, s])
 *
 * Pointers are non-NULL unless said otherwise; the ethtx borrows every
 * buffer it points to. */
#ifndef COFFER_SIGNER_ETHTX_H
#define COFFER_SIGNER_ETHTX_H

#include "rlp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETHTX_ADDRESS_LEN 20
#define ETHTX_WORD_LEN 32
/* Largest chain id: EIP-155's v = chain_id * 2 + 36 must fit 64 bits. */
#define ETHTX_CHAIN_ID_MAX ((UINT64_MAX - 36u) / 2u)

typedef enum {
    ETHTX_LEGACY = 0,
    ETHTX_EIP1559 = 2,
} ethtx_type;

/* One access-list entry: a 20-byte address and n 32-byte storage keys. */
typedef struct {
    const uint8_t *address;
    const uint8_t *const *storage_keys;
    size_t n_storage_keys;
} ethtx_access;

typedef struct {
    ethtx_type type;
    uint64_t chain_id;                           /* 1..ETHTX_CHAIN_ID_MAX */
    uint64_t nonce;
    uint64_t gas_limit;
    uint8_t max_priority_fee[ETHTX_WORD_LEN];    /* EIP-1559, big-endian */
    uint8_t max_fee[ETHTX_WORD_LEN];             /* EIP-1559: max_fee_per_gas; legacy: gas_price */
    bool has_to;                                 /* false: contract creation */
    uint8_t to[ETHTX_ADDRESS_LEN];
    uint8_t value[ETHTX_WORD_LEN];
    const uint8_t *data;                         /* may be NULL when data_len is 0 */
    size_t data_len;
    const ethtx_access *access_list;             /* EIP-1559 only; may be NULL when 0 */
    size_t n_access;
} ethtx;

/* A signature as the encoder needs it. */
typedef struct {
    uint8_t r[32];
    uint8_t s[32];
    int y_parity; /* 0 or 1 */
} ethtx_sig;

/* Encodes tx into out (emptied first): the signing preimage when sig is
 * NULL, else the signed raw transaction ready for eth_sendRawTransaction.
 * Returns RLP_OK, RLP_ERR_NOMEM, RLP_ERR_TOO_LARGE, or RLP_ERR_INVALID_ARG
 * for an unknown type, a chain id outside 1..ETHTX_CHAIN_ID_MAX or an
 * access list on a legacy transaction. out: in/out, initialised. */
__attribute__((warn_unused_result))
rlp_err ethtx_encode(rlp_buf *out, const ethtx *tx, const ethtx_sig *sig);

/* Computes the digest that is signed: keccak256 of the preimage.
 * Returns as ethtx_encode. digest: output. scratch: in/out buffer reused
 * across calls (initialised). */
__attribute__((warn_unused_result))
rlp_err ethtx_signing_hash(uint8_t digest[32], rlp_buf *scratch, const ethtx *tx);

/* EIP-191 version 0x45 (personal_sign) digest:
 * keccak256("\x19Ethereum Signed Message:\n" | decimal(len) | msg).
 * digest: output. msg, len: input (msg may be NULL when len is 0). */
void ethtx_personal_digest(uint8_t digest[32], const uint8_t *msg, size_t len);

#endif
