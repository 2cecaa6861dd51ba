/* audit: the signer's hash-chained audit log.
 *
 * One JSON object per line, for every request (allowed, denied or
 * malformed), every refused peer and every start and stop. Fields appear
 * in a fixed order, absent ones are left out:
 *
 *   {"seq":42,"ts":"2026-11-21T13:00:00.123Z","event":"request",
 *    "op":"sign_transaction","request_id":"7","trace_id":"req-1","uid":1000,
 *    "pid":4242,"key":"0x...","owner":"client-1","chain_id":"31337","nonce":"5",
 *    "to":"0x...","value":"1000","selector":"0xa9059cbb","kek_version":2,
 *    "tx_hash":"0x...","digest":"0x...","decision":"allow","code":"...",
 *    "rule":"...","detail":"...","policy":"<hex>","prev":"<hex>","hash":"<hex>"}
 *
 * 64-bit values (request_id, chain_id, nonce) are quoted decimal strings,
 * so that every JSON reader holds them exactly; seq stays a number and is
 * read from the line's text by audit_verify_fd.
 *
 * hash = BLAKE2b-256 of the line's bytes up to (not including) ,"hash":
 * and prev is the previous line's hash (32 zero bytes for seq 1), so an
 * edited, removed, inserted or reordered line breaks the chain from that
 * line on. Truncating the end of the file keeps a valid chain: the head
 * (seq and hash) is therefore also reported by Status and written to the
 * ledger, and the daemon refuses to start on a log shorter than the
 * ledger remembers. */
#ifndef COFFER_SIGNER_AUDIT_H
#define COFFER_SIGNER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_LEN 32u
#define AUDIT_LINE_MAX 4096u

/* The chain's head: the last line's seq (0 before the first) and hash. */
typedef struct {
    uint64_t seq;
    uint8_t head[AUDIT_HASH_LEN];
} audit_chain;

/* What one line records. Pointers may be NULL (field left out). */
typedef struct {
    const char *event;     /* "request", "start", "stop", "protocol_violation", "peer_denied" */
    const char *op;        /* "generate_key", "sign_transaction", ... */
    bool has_request_id;
    uint64_t request_id;
    const char *trace_id;
    bool has_peer;
    uint32_t uid;
    int32_t pid;
    const uint8_t *key;    /* 20 bytes */
    const char *owner;
    bool has_chain;
    uint64_t chain_id;
    bool has_nonce;
    uint64_t nonce;
    const uint8_t *to;     /* 20 bytes */
    const char *value;     /* decimal */
    const uint8_t *selector; /* 4 bytes */
    uint32_t kek_version;  /* 0: left out */
    const uint8_t *tx_hash;  /* 32 bytes */
    const uint8_t *digest;   /* 32 bytes */
    const char *decision;  /* "allow", "deny", "error" */
    const char *code;      /* ErrorCode name when not allowed */
    const char *rule;
    const char *detail;
    const char *extra;     /* already-encoded JSON members ("\"k\":1,\"j\":2"), trusted */
} audit_entry;

/* Formats e as the next line of chain (with its trailing '\n') into buf
 * and advances chain (seq + 1, head = the new hash).
 * Returns the line length, or 0 if it does not fit cap or AUDIT_LINE_MAX
 * (chain then unchanged). now_ms: wall-clock ms; policy_hash: 32 bytes or
 * NULL. */
__attribute__((warn_unused_result))
size_t audit_format(char *buf, size_t cap, audit_chain *chain, const audit_entry *e,
                    int64_t now_ms, const uint8_t *policy_hash);

/* Result of a verification. */
typedef struct {
    uint64_t lines;            /* good lines */
    audit_chain chain;         /* head after the good lines */
    uint64_t valid_bytes;      /* bytes of the good lines */
    uint64_t torn_bytes;       /* an unterminated last line (a write cut by a crash) */
    uint64_t bad_line;         /* 1-based number of the first bad line; 0 when none */
    char why[256];             /* why it is bad */
    bool probe_found;          /* the line with seq probe_seq was seen */
    uint8_t probe_hash[AUDIT_HASH_LEN]; /* and its hash */
} audit_verify_result;

/* Verifies the chain of the file open at fd, read from its start.
 * start: the chain the file continues (NULL: a new chain at seq 1 with a
 * zero prev). probe_seq: a seq whose hash to report (0: none).
 * Returns 0 when every complete line is good (an unterminated last line is
 * reported in torn_bytes, not as an error), -1 when a line is bad
 * (bad_line, why) or on an I/O error (bad_line 0, why). */
__attribute__((warn_unused_result))
int audit_verify_fd(audit_verify_result *res, int fd, const audit_chain *start, uint64_t probe_seq);

/* Writes hex of a hash into out (65 bytes). */
void audit_hash_hex(char out[2 * AUDIT_HASH_LEN + 1], const uint8_t h[AUDIT_HASH_LEN]);

#endif
