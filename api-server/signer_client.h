/* signer_client: coffer-api's client for coffer-signer (docs/signer.md).
 *
 * A pool of Unix-socket connections to the signer, shared by any number of
 * threads. Each call borrows one connection, sends one Request frame and
 * reads its Response, all within the call's deadline; a connection that
 * fails is closed and the call is retried once on a fresh connection (every
 * signer operation is safe to repeat: signing is deterministic and a
 * repeated identical transaction returns the same signature). Connecting
 * again after a failure backs off exponentially with full jitter, so a
 * restarting signer is not hammered; calls made while backing off fail
 * fast with SIGNER_ERR_UNAVAILABLE unless the next attempt falls within
 * their deadline.
 *
 * coffer-api holds sealed blobs only: this module never opens one and
 * links nothing that could (tests/integration/signer/no_unseal.sh).
 *
 * Pointers are non-NULL unless said otherwise; outputs are written only
 * on SIGNER_OK, errors only otherwise. */
#ifndef COFFER_SIGNER_CLIENT_H
#define COFFER_SIGNER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGNER_ADDRESS_LEN 20u
#define SIGNER_WORD_LEN 32u
#define SIGNER_SEALED_KEY_LEN 77u
#define SIGNER_POOL_MAX 64u
#define SIGNER_KEK_VERSIONS_MAX 64u

typedef struct signer_client signer_client;

typedef struct {
    const char *socket_path;   /* copied */
    unsigned pool_size;        /* connections kept, 1..SIGNER_POOL_MAX (0: 4) */
    int connect_timeout_ms;    /* one connection attempt (0: 1000) */
    int call_timeout_ms;       /* a whole call, waiting for a connection included (0: 5000) */
    int backoff_initial_ms;    /* first reconnect delay (0: 50) */
    int backoff_max_ms;        /* largest reconnect delay (0: 5000) */
    /* Told of every call when it ends (may be NULL): answered is true when
     * the signer answered (allowed or refused), false when it could not be
     * reached, timed out or answered garbage; duration_us is the whole
     * call, waiting for a connection included. Called on the calling
     * thread; must not block. coffer-api records it in /metrics. */
    void (*observe)(void *arg, bool answered, int64_t duration_us);
    void *observe_arg;
} signer_client_options;

typedef enum {
    SIGNER_OK = 0,
    SIGNER_ERR_INVALID_ARG,    /* caller misuse (sizes, NULLs): nothing was sent */
    SIGNER_ERR_UNAVAILABLE,    /* no connection to the signer (or backing off) */
    SIGNER_ERR_TIMEOUT,        /* the deadline passed */
    SIGNER_ERR_PROTOCOL,       /* an answer that is not a valid Response to this request */
    SIGNER_ERR_BAD_REQUEST,    /* the signer refused the frame as malformed */
    SIGNER_ERR_POLICY_DENIED,  /* error.rule names the rule */
    SIGNER_ERR_BAD_KEY,        /* the blob does not open for this owner/address */
    SIGNER_ERR_UNKNOWN_KEK,    /* sealed under a retired KEK version: restore it or re-create the key */
    SIGNER_ERR_DOUBLE_SIGN,    /* the nonce was signed for another payload */
    SIGNER_ERR_RETRY_LATER,    /* the same nonce is being signed right now */
    SIGNER_ERR_INTERNAL,
} signer_status;

/* Why a call failed. */
typedef struct {
    signer_status status;
    char message[256];
    char rule[64];             /* policy rule (POLICY_DENIED, DOUBLE_SIGN, ...), "" otherwise */
} signer_error;

/* A custodial key as coffer-api stores it: address and sealed blob. */
typedef struct {
    uint8_t address[SIGNER_ADDRESS_LEN];
    uint8_t sealed_key[SIGNER_SEALED_KEY_LEN];
    uint32_t kek_version;
} signer_key;

typedef enum {
    SIGNER_TX_EIP1559 = 2,
    SIGNER_TX_LEGACY = 0,
} signer_tx_type;

typedef struct {
    uint8_t address[SIGNER_ADDRESS_LEN];
    const uint8_t (*storage_keys)[SIGNER_WORD_LEN];
    size_t n_storage_keys;
} signer_access_entry;

/* A transaction in typed fields (the signer builds the RLP itself).
 * 256-bit numbers are 32 bytes big-endian. */
typedef struct {
    signer_tx_type type;
    uint64_t chain_id;
    uint64_t nonce;
    uint64_t gas_limit;
    uint8_t max_priority_fee_per_gas[SIGNER_WORD_LEN]; /* EIP-1559 only */
    uint8_t max_fee_per_gas[SIGNER_WORD_LEN];          /* legacy: the gas price */
    bool has_to;                                       /* false: contract creation (always refused) */
    uint8_t to[SIGNER_ADDRESS_LEN];
    uint8_t value[SIGNER_WORD_LEN];
    const uint8_t *data;                               /* may be NULL when data_len is 0 */
    size_t data_len;
    const signer_access_entry *access_list;            /* EIP-1559 only; may be NULL when 0 */
    size_t n_access;
} signer_tx;

typedef struct {
    uint8_t *raw_tx;           /* malloc'd: signer_signed_tx_dispose */
    size_t raw_tx_len;
    uint8_t tx_hash[SIGNER_WORD_LEN];
    uint8_t r[SIGNER_WORD_LEN];
    uint8_t s[SIGNER_WORD_LEN];
    uint32_t y_parity;
} signer_signed_tx;

typedef struct {
    uint8_t signature[65];     /* r | s | v (27 or 28) */
    uint8_t digest[SIGNER_WORD_LEN];
} signer_signed_message;

typedef struct {
    uint32_t kek_versions[SIGNER_KEK_VERSIONS_MAX];
    size_t n_kek_versions;
    uint32_t current_kek_version;
    uint8_t policy_hash[SIGNER_WORD_LEN];
    uint8_t audit_head[SIGNER_WORD_LEN];
    uint64_t audit_entries;
    char version[64];
} signer_status_info;

/* Creates a pool (connections are opened lazily, on first use).
 * Returns 0, or -1 on misuse (no path, path too long, bad sizes) or ENOMEM. */
__attribute__((warn_unused_result))
int signer_client_new(signer_client **out, const signer_client_options *opt);

/* Closes every connection and frees; c may be NULL. No call may be running. */
void signer_client_free(signer_client *c);

/* GenerateKey: a new secp256k1 key sealed for owner_id.
 * trace_id: coffer-api's request id for the signer's audit log (may be NULL). */
__attribute__((warn_unused_result))
signer_status signer_client_generate_key(signer_client *c, signer_key *out, signer_error *err,
                                         const char *owner_id, const char *trace_id);

/* SignTransaction with key (sealed for owner_id). out: dispose after use. */
__attribute__((warn_unused_result))
signer_status signer_client_sign_transaction(signer_client *c, signer_signed_tx *out,
                                             signer_error *err, const signer_key *key,
                                             const char *owner_id, const signer_tx *tx,
                                             const char *trace_id);

/* SignMessage (EIP-191 personal_sign) of msg[0..len). */
__attribute__((warn_unused_result))
signer_status signer_client_sign_message(signer_client *c, signer_signed_message *out,
                                         signer_error *err, const signer_key *key,
                                         const char *owner_id, const uint8_t *msg, size_t len,
                                         const char *trace_id);

/* Rewrap: the same key sealed under the signer's current KEK version.
 * out gets the key's address, new blob and version. */
__attribute__((warn_unused_result))
signer_status signer_client_rewrap(signer_client *c, signer_key *out, signer_error *err,
                                   const signer_key *key, const char *owner_id,
                                   const char *trace_id);

/* Status: KEK versions, policy hash, audit head. */
__attribute__((warn_unused_result))
signer_status signer_client_status(signer_client *c, signer_status_info *out, signer_error *err,
                                   const char *trace_id);

/* Frees raw_tx; tx may be NULL. */
void signer_signed_tx_dispose(signer_signed_tx *tx);

/* The status's name ("POLICY_DENIED", ...), never NULL. */
const char *signer_status_name(signer_status s);

#endif
