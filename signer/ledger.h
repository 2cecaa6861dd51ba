/* ledger: the signer's durable memory of what it has signed.
 *
 *  - Velocity: per (key, chain, token) the amounts moved out by signed
 *    transactions, in one-minute buckets, summed over a rolling 24 h
 *    window (a bucket counts until its end is 24 h old, so the window errs
 *    on the safe side by up to a minute). A request first reserves its
 *    amounts (checked against the policy's daily limit together with
 *    everything committed and everything reserved by requests in flight),
 *    then commits them once signed, or aborts.
 *  - Nonce watermarks: per (key, chain, nonce) the digest that was signed.
 *    The identical digest again is an idempotent re-sign (RFC 6979 makes
 *    the signature identical, so the digest is all that must be kept); a
 *    different digest is a double sign and refused. Nonces more than
 *    LEDGER_NONCE_WINDOW below the highest signed for (key, chain) are
 *    refused as too old, which bounds what must be remembered; nonces more
 *    than the request's max_nonce_gap above it (a key that signed nothing
 *    on the chain counts from 0) are refused as too far ahead, so that no
 *    request can push the watermark to the top of the range and make every
 *    later nonce of that key "too old".
 *  - Fee replacement: when the chain's policy allows it (replacement:
 *    max_replacements > 0), a committed (key, chain, nonce) may be signed
 *    again for another digest if the transaction without its fees (the
 *    "body": the signing hash with both fee fields zeroed, which covers
 *    type, chain id, nonce, to, value, data, gas limit and access list) is
 *    the same, and max_fee_per_gas (legacy: gas_price) and, for EIP-1559,
 *    max_priority_fee_per_gas are each at least min_bump_pct above the
 *    last committed ones (and strictly above them), at most
 *    max_replacements times. The value and token amounts were counted by
 *    the first signature: a replacement reserves only the extra gas cost,
 *    gas_limit × (new max fee − last max fee), on the native coin. Only the
 *    last committed digest signs again idempotently; an earlier one of a
 *    replaced transaction is refused as underpriced (coffer-api keeps
 *    every raw transaction it was given).
 *
 * Persistence: an append-only file of fixed-size binary records, each
 * closed by a 16-byte BLAKE2b checksum:
 *
 *     header  "COFFER-LEDGER v1\n"
 *     'S' spend   time ms (8) | key (20) | chain (8) | token (20) | amount (32)
 *     'N' nonce   key (20) | chain (8) | nonce (8) | digest (32)   (written
 *                 by earlier versions; replayed, never re-priced)
 *     'R' nonce   key (20) | chain (8) | nonce (8) | digest (32) | body (32) |
 *                 max fee (32) | priority fee (32) | replacements (4): a
 *                 signature and what replacement needs; the record with the
 *                 most replacements for a nonce is the one that counts
 *     'A' audit   audit seq (8) | audit entry hash (32): the audit log's head,
 *                 appended by the journal after each batch of lines is synced
 *
 * (integers big-endian). ledger_commit hands back the records; the journal
 * writes and fsyncs them before any answer that depends on them is sent.
 * ledger_open replays the file, drops a torn tail (bytes after the last
 * whole record, fewer than the next record's length: a crash inside a
 * write), refuses any other damage (a whole record with a bad checksum,
 * even the last one, or an unknown record type), and compacts it (expired spends and
 * forgotten nonces dropped) into a fresh file that atomically replaces it.
 *
 * All functions are thread-safe (one internal mutex). */
#ifndef COFFER_SIGNER_LEDGER_H
#define COFFER_SIGNER_LEDGER_H

#include "policy.h"
#include "u256.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_WINDOW_MS (24LL * 3600 * 1000)
#define LEDGER_NONCE_WINDOW 4096u
/* Default of ledger_txn.max_nonce_gap (the policy's chains[].max_nonce_gap). */
#define LEDGER_NONCE_GAP_DEFAULT 1024u
/* Largest record, and the most bytes one commit produces. */
#define LEDGER_RECORD_MAX 185u
#define LEDGER_COMMIT_MAX ((POLICY_SPENDS_MAX + 1u) * LEDGER_RECORD_MAX)
#define LEDGER_MARK_LEN 57u

typedef struct ledger ledger;

/* What ledger_open found. */
typedef struct {
    bool existed;            /* the file was there (false: a new ledger was created) */
    uint64_t records;        /* valid records replayed */
    uint64_t torn_bytes;     /* bytes of a torn tail that were dropped */
    bool has_mark;           /* an 'A' record was found */
    uint64_t mark_seq;       /* the last one's audit seq */
    uint8_t mark_hash[32];   /* and hash */
    uint64_t spends_live;    /* spend buckets kept (inside the window) */
    uint64_t nonces_live;    /* nonce watermarks kept */
} ledger_info;

/* One request's passage through the ledger; caller-owned. Fill the inputs,
 * then ledger_reserve; after LEDGER_OK call exactly one of ledger_commit
 * or ledger_abort. */
typedef struct {
    /* inputs */
    uint8_t key[20];
    uint64_t chain_id;
    uint64_t nonce;
    uint8_t digest[32];
    uint64_t max_nonce_gap;  /* refuse nonces more than this above the highest
                              * signed for (key, chain); 0: LEDGER_NONCE_GAP_DEFAULT */
    policy_spend spends[POLICY_SPENDS_MAX];
    size_t n_spends;
    /* fee replacement: body = signing hash with both fees zero; fees are
     * 32-byte big-endian; legacy transactions have prio_fee zero and
     * bump_prio false */
    uint8_t body[32];
    uint8_t max_fee[32];
    uint8_t prio_fee[32];
    bool bump_prio;
    uint64_t gas_limit;
    uint32_t repl_min_bump_pct;
    uint32_t repl_max;       /* 0: the policy allows no replacement on the chain */
    /* output: after LEDGER_OK, the replacement number (0: a first signature) */
    uint32_t replacement;
    /* private */
    size_t n_reserved;
    bool holding;
} ledger_txn;

typedef enum {
    LEDGER_OK = 0,          /* reserved: sign, then commit or abort */
    LEDGER_RESIGN,          /* this exact digest was signed for the nonce: sign again, nothing held */
    LEDGER_DOUBLE_SIGN,     /* the nonce was signed (or is being signed) for another digest */
    LEDGER_IN_FLIGHT,       /* the same digest is being signed right now: retry later */
    LEDGER_NONCE_TOO_OLD,   /* more than LEDGER_NONCE_WINDOW below the highest signed nonce */
    LEDGER_NONCE_TOO_FAR_AHEAD, /* more than max_nonce_gap above it (or above 0 when none) */
    LEDGER_VELOCITY,        /* a daily limit would be exceeded (detail names the token) */
    LEDGER_REPLACE_UNDERPRICED, /* same body, but a fee is not bumped enough */
    LEDGER_REPLACE_LIMIT,   /* same body, but max_replacements were already signed */
    LEDGER_ERR_NOMEM,
} ledger_result;

/* Opens (creating if needed) the ledger file name inside dirfd, replays
 * and compacts it as described above, and keeps it open for appends.
 * Returns 0, or -1 with a reason in err (damaged file, I/O error).
 * out: output. info: output, may be NULL. dirfd, name: the file.
 * now_ms: wall-clock time in ms since the epoch (window expiry). */
__attribute__((warn_unused_result))
int ledger_open(ledger **out, ledger_info *info, char *err, size_t err_len, int dirfd,
                const char *name, int64_t now_ms);

/* Closes the file and frees everything; l may be NULL. */
void ledger_free(ledger *l);

/* The file descriptor records are appended to (O_APPEND). */
int ledger_fd(const ledger *l);

/* Checks the nonce watermark and reserves the spends (see ledger_result).
 * detail: output, one line naming the limit that denied (may be NULL).
 * now_ms: wall-clock time. */
__attribute__((warn_unused_result))
ledger_result ledger_reserve(ledger *l, ledger_txn *t, char *detail, size_t detail_len,
                             int64_t now_ms);

/* Releases what ledger_reserve held (nothing if it held nothing). */
void ledger_abort(ledger *l, ledger_txn *t);

/* Turns the reservation into committed spends and a committed watermark.
 * Returns the number of record bytes written to rec (at most
 * LEDGER_COMMIT_MAX), which the caller must make durable before it
 * answers. rec: output, LEDGER_COMMIT_MAX bytes. The daemon calls it only
 * through journal_append_commit, so that the commit and its records are
 * journaled atomically. */
size_t ledger_commit(ledger *l, ledger_txn *t, uint8_t rec[LEDGER_COMMIT_MAX], int64_t now_ms);

/* Encodes an 'A' record (LEDGER_MARK_LEN bytes) into rec. */
void ledger_encode_mark(uint8_t rec[LEDGER_MARK_LEN], uint64_t audit_seq, const uint8_t hash[32]);

/* Committed amount in the window for (key, chain, token) at now_ms
 * (reservations not included). */
void ledger_spent(ledger *l, u256 *out, const uint8_t key[20], uint64_t chain_id,
                  const uint8_t token[20], int64_t now_ms);

/* A short constant description of r. */
const char *ledger_strerror(ledger_result r);

#endif
