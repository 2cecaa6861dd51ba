/* dispatch: the signer's command table. One row per operation with its
 * three phases; the checks every request gets (frame validation, audit
 * line, durability ticket, response framing) happen once, here.
 *
 * Per request: validate (request.c) → policy (before any unseal) → ledger
 * reservation (nonce watermark, velocity) → unseal into guarded memory →
 * re-derive and compare the address → sign → wipe → audit line and ledger
 * commit, together under the journal's lock (journal_append_commit: a
 * re-sign that sees the commit is journaled after it); the answer leaves
 * only when its audit line (and ledger records) are durable (journal.c).
 *
 * The phases let an event loop batch the key work: dispatch_prepare runs
 * everything that reads untrusted input with the key memory closed;
 * dispatch_keys then opens the thread's KEK ring and key scratch once for
 * a whole batch of prepared requests, runs only keystore/sign code over
 * them (each plaintext key wiped right after its use), and closes both;
 * dispatch_finish encodes, commits and audits. Opening guarded memory is
 * an mprotect(2) per region, which serializes every thread on the address
 * space lock: per request it cost a fifth of the daemon's CPU. */
#ifndef COFFER_SIGNER_DISPATCH_H
#define COFFER_SIGNER_DISPATCH_H

#include "journal.h"
#include "kek.h"
#include "ledger.h"
#include "policy.h"
#include "rlp.h"
#include "secmem.h"
#include "sign.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What every thread shares; immutable after start-up except through the
 * thread-safe ledger and journal. */
typedef struct {
    const policy *pol;
    ledger *led;
    journal *jr;
    const char *version;   /* "0.1.0 (abc123)" */
} signer_shared;

/* One thread's private signing state. */
typedef struct {
    signer_shared *sh;
    sign_ctx *sctx;
    kek_ring *ring;        /* this thread's clone of the KEK ring */
    secmem *scratch;       /* SIGN_SECRET_LEN bytes for the plaintext key */
    rlp_buf rlp;
} signer_worker;

/* The connection a frame came from. */
typedef struct {
    uint32_t uid;
    int32_t pid;
} signer_peer;

/* One answer: a whole wire frame (length prefix included) and the journal
 * ticket that must be durable before it is sent. */
typedef struct {
    uint8_t *frame;        /* malloc'd; NULL when no answer can be built */
    size_t len;
    uint64_t ticket;
    bool close_after;      /* protocol violation: close once sent */
} dispatch_out;

/* Sets up a worker: a signing context (randomized now: call before the
 * sandbox), a clone of ring and its scratch memory. Returns 0 or -1. */
__attribute__((warn_unused_result))
int dispatch_worker_init(signer_worker *w, signer_shared *sh, const kek_ring *ring);

/* Releases a worker's resources (wiping them). */
void dispatch_worker_dispose(signer_worker *w);

/* One request between the phases; opaque. */
typedef struct dispatch_job dispatch_job;

/* Phase 1: decodes and validates the frame, checks the policy, reserves
 * in the ledger; no key memory is opened. The frame may be reused once
 * this returns. Returns the job, or NULL when out of memory (the caller
 * closes the connection). */
__attribute__((warn_unused_result))
dispatch_job *dispatch_prepare(signer_worker *w, const signer_peer *peer, const uint8_t *frame,
                               size_t len);

/* True when the job still needs phase 2. */
bool dispatch_job_needs_keys(const dispatch_job *job);

/* True when the connection must close after this job's answer (a
 * protocol violation). */
bool dispatch_job_closes(const dispatch_job *job);

/* Phase 2: the key work of n jobs (those that need none are skipped),
 * with the KEK ring and the key scratch opened once for all of them. */
void dispatch_keys(signer_worker *w, dispatch_job *const *jobs, size_t n);

/* Phase 3: the answer frame, the audit line with the ledger commit (or the
 * reservation released);
 * frees the job. out->frame is the answer (an Error for anything
 * refused). Returns 0, or -1 when not even the audit line could be
 * appended (the caller closes the connection). */
__attribute__((warn_unused_result))
int dispatch_finish(signer_worker *w, dispatch_job *job, dispatch_out *out);

/* The three phases for one frame. Returns as dispatch_finish. */
__attribute__((warn_unused_result))
int dispatch_frame(signer_worker *w, dispatch_out *out, const signer_peer *peer,
                   const uint8_t *frame, size_t len);

/* Audits a framing violation (oversized, zero-length or truncated frame)
 * on a connection that is then closed. Returns the ticket (0 on failure). */
uint64_t dispatch_audit_violation(signer_shared *sh, const signer_peer *peer, const char *why);

/* Audits a connection refused by the peer check. Returns the ticket. */
uint64_t dispatch_audit_peer_denied(signer_shared *sh, const signer_peer *peer, const char *why);

/* Wall-clock time in ms since the epoch. */
int64_t dispatch_now_ms(void);

#endif
