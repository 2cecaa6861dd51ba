/* request: one frame from coffer-api, unpacked and strictly validated.
 *
 * A frame is a serialized coffer.signer.v1.Request. It is refused (a
 * protocol violation: the daemon answers BAD_REQUEST and closes the
 * connection) when it does not unpack, carries any field this version does
 * not know (protobuf-c keeps unknown fields: an unknown oneof member lands
 * there too), has a version other than PROTOCOL_VERSION_CURRENT, a zero
 * request_id, no operation, or any field of the wrong size: addresses are
 * exactly 20 bytes, 256-bit numbers exactly 32, sealed keys exactly
 * KEYSTORE_BLOB_LEN, storage keys 32; owner ids and trace ids are short
 * printable ASCII; chain ids are 1..ETHTX_CHAIN_ID_MAX; nonces at most
 * REQUEST_NONCE_MAX (EIP-2681); calldata, access
 * lists and messages are bounded (REQUEST_*_MAX) so that every answer fits
 * one frame. */
#ifndef COFFER_SIGNER_REQUEST_H
#define COFFER_SIGNER_REQUEST_H

#include "coffer/signer/v1/signer.pb-c.h"
#include "ethtx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQUEST_PROTOCOL_VERSION 1u
#define REQUEST_TRACE_MAX 128u
#define REQUEST_DATA_MAX 32768u
#define REQUEST_ACCESS_MAX 64u
#define REQUEST_STORAGE_KEYS_MAX 64u
#define REQUEST_MESSAGE_MAX 16384u
/* Highest nonce a transaction may carry: EIP-2681 bounds an account's nonce
 * to 2^64-1 exclusive, so 2^64-2 is the last one that can ever be mined. */
#define REQUEST_NONCE_MAX (UINT64_MAX - 1u)

typedef enum {
    REQUEST_OP_NONE = 0,
    REQUEST_OP_GENERATE_KEY,
    REQUEST_OP_SIGN_TRANSACTION,
    REQUEST_OP_SIGN_MESSAGE,
    REQUEST_OP_REWRAP,
    REQUEST_OP_STATUS,
} request_op;

/* A validated request; caller-owned storage (request_decode / request_dispose). */
typedef struct {
    Coffer__Signer__V1__Request *msg;  /* owned */
    request_op op;
    /* the key material reference of sign_transaction/sign_message/rewrap */
    const uint8_t *sealed_key;         /* KEYSTORE_BLOB_LEN bytes */
    const uint8_t *address;            /* 20 bytes */
    const char *owner;                 /* generate_key too */
    size_t owner_len;
    /* sign_transaction */
    ethtx tx;
    ethtx_access *access;              /* owned, tx.n_access entries */
    const uint8_t **storage_keys;      /* owned pointer array */
} request;

/* Decodes and validates one frame.
 * Returns 0, or -1 with the reason in why (and, when the frame unpacked
 * far enough, *request_id set; else 0).
 * out: output (nothing to dispose on failure). frame, len: the payload. */
__attribute__((warn_unused_result))
int request_decode(request *out, uint64_t *request_id, char *why, size_t why_len,
                   const uint8_t *frame, size_t len);

/* Frees what request_decode allocated; r may be NULL. */
void request_dispose(request *r);

/* The audit name of an operation ("sign_transaction", ...). */
const char *request_op_name(request_op op);

#endif
