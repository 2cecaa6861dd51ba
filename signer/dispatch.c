#include "dispatch.h"

#include "hex.h"
#include "ipc.h"
#include "keccak.h"
#include "keystore.h"
#include "log.h"
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef Coffer__Signer__V1__ErrorCode err_code;
#define CODE(x) COFFER__SIGNER__V1__ERROR_CODE__ERROR_CODE_##x

/* Everything one request's handling produces, across the three phases. */
struct dispatch_job {
    request req;                 /* owned; op REQUEST_OP_NONE after a violation */
    bool decoded;
    bool needs_keys;             /* phase 2 still to run */
    bool close_after;
    Coffer__Signer__V1__Response resp;
    Coffer__Signer__V1__Error err;
    Coffer__Signer__V1__GenerateKeyResult gen;
    Coffer__Signer__V1__SignTransactionResult stx;
    Coffer__Signer__V1__SignMessageResult smsg;
    Coffer__Signer__V1__RewrapResult rewrap;
    Coffer__Signer__V1__StatusResult status;
    audit_entry audit;
    char message[POLICY_DETAIL_MAX + 64];
    char rule[POLICY_RULE_MAX];
    char value_dec[U256_DEC_MAX];
    char extra[160];
    ledger_txn txn;
    ledger_result lr;
    bool holding;                /* txn holds a reservation */
    bool commit;                 /* signed: commit txn together with the audit line */
    ethtx_sig sig;
    uint32_t kek_version;
    uint8_t blob[KEYSTORE_BLOB_LEN];
    uint8_t address[SIGN_ADDRESS_LEN];
    uint8_t digest[32], tx_hash[32], r[32], s[32], sig65[65];
    uint8_t policy_hash[32], head[32];
    uint32_t kek_versions[KEK_RING_MAX];
    int64_t now_ms;
};

typedef dispatch_job hctx;
typedef void (*phase_fn)(signer_worker *w, hctx *h);

static const char *code_name(err_code c)
{
    switch (c) {
    case CODE(BAD_REQUEST): return "BAD_REQUEST";
    case CODE(POLICY_DENIED): return "POLICY_DENIED";
    case CODE(BAD_KEY): return "BAD_KEY";
    case CODE(UNKNOWN_KEK): return "UNKNOWN_KEK";
    case CODE(DOUBLE_SIGN): return "DOUBLE_SIGN";
    case CODE(INTERNAL): return "INTERNAL";
    case CODE(RETRY_LATER): return "RETRY_LATER";
    default: return "UNSPECIFIED";
    }
}

int64_t dispatch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns the answer into an Error with code, rule and message; no further
 * phase runs for the job. */
__attribute__((format(printf, 4, 5)))
static void fail(hctx *h, err_code code, const char *rule, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->message, sizeof h->message, fmt, ap);
    va_end(ap);
    snprintf(h->rule, sizeof h->rule, "%s", rule ? rule : "");
    h->err.code = code;
    h->err.message = h->message;
    h->err.rule = h->rule;
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_ERROR;
    h->resp.error = &h->err;
    int refused = code == CODE(POLICY_DENIED) || code == CODE(DOUBLE_SIGN) || code == CODE(RETRY_LATER);
    h->audit.decision = refused ? "deny" : "error";
    h->audit.code = code_name(code);
    h->audit.rule = h->rule;
    h->audit.detail = h->message;
    h->needs_keys = false;
}

static err_code keystore_code(keystore_err e)
{
    switch (e) {
    case KEYSTORE_ERR_UNKNOWN_KEK: return CODE(UNKNOWN_KEK);
    case KEYSTORE_ERR_FORMAT:
    case KEYSTORE_ERR_AUTH:
    case KEYSTORE_ERR_ADDRESS: return CODE(BAD_KEY);
    default: return CODE(INTERNAL);
    }
}

static const char *keystore_rule(keystore_err e)
{
    switch (e) {
    case KEYSTORE_ERR_UNKNOWN_KEK: return "key.unknown_kek";
    case KEYSTORE_ERR_FORMAT: return "key.format";
    case KEYSTORE_ERR_AUTH: return "key.does_not_open";
    case KEYSTORE_ERR_ADDRESS: return "key.address_mismatch";
    default: return "internal";
    }
}

/* The key scratch of the worker, open read-write (phase 2 holds it open;
 * this nested open costs nothing then). NULL with the answer set on failure. */
static uint8_t *scratch_open(signer_worker *w, hctx *h)
{
    uint8_t *secret = secmem_open_rw(w->scratch);
    if (!secret)
        fail(h, CODE(INTERNAL), "internal", "cannot open guarded memory");
    return secret;
}

/* Wipes the plaintext key and ends this use of the scratch. */
static void scratch_done(signer_worker *w, uint8_t *secret)
{
    secmem_wipe(secret, SIGN_SECRET_LEN);
    if (secmem_close(w->scratch) != 0) {
        log_error("signer.secmem", "detail=\"cannot re-protect key memory\"");
        _exit(70);
    }
}

/* Unseals the request's key into the scratch (left open). NULL with the
 * answer set (and the scratch closed) on failure. */
static uint8_t *unseal(signer_worker *w, hctx *h)
{
    const request *req = &h->req;
    uint8_t *secret = scratch_open(w, h);
    if (!secret)
        return NULL;
    keystore_err ks = keystore_unseal(secret, &h->kek_version, w->ring, w->sctx, req->sealed_key,
                                      KEYSTORE_BLOB_LEN, KEYSTORE_KEY_SECP256K1, req->address,
                                      req->owner, req->owner_len);
    if (h->kek_version)
        h->audit.kek_version = h->kek_version;
    if (ks != KEYSTORE_OK) {
        scratch_done(w, secret);
        fail(h, keystore_code(ks), keystore_rule(ks), "%s", keystore_strerror(ks));
        return NULL;
    }
    return secret;
}

/* ---- generate_key ---------------------------------------------------------------- */

static void prep_generate_key(signer_worker *w, hctx *h)
{
    (void)w;
    h->audit.owner = h->req.owner;
    h->needs_keys = true;
}

static void keys_generate_key(signer_worker *w, hctx *h)
{
    const request *req = &h->req;
    uint8_t *secret = scratch_open(w, h);
    if (!secret)
        return;
    int rc = sign_generate_secret(w->sctx, secret);
    if (rc == 0)
        rc = sign_address_from_secret(w->sctx, h->address, secret);
    keystore_err ks = KEYSTORE_ERR_INTERNAL;
    if (rc == 0)
        ks = keystore_seal(h->blob, w->ring, KEYSTORE_KEY_SECP256K1, h->address, req->owner,
                           req->owner_len, secret);
    scratch_done(w, secret);
    if (rc != 0 || ks != KEYSTORE_OK)
        fail(h, CODE(INTERNAL), "internal", "key generation failed: %s",
             rc != 0 ? "randomness" : keystore_strerror(ks));
}

static void finish_generate_key(signer_worker *w, hctx *h)
{
    h->gen.address.data = h->address;
    h->gen.address.len = SIGN_ADDRESS_LEN;
    h->gen.sealed_key.data = h->blob;
    h->gen.sealed_key.len = KEYSTORE_BLOB_LEN;
    h->gen.kek_version = kek_ring_current(w->ring);
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_GENERATE_KEY;
    h->resp.generate_key = &h->gen;
    h->audit.key = h->address;
    h->audit.kek_version = h->gen.kek_version;
    h->audit.decision = "allow";
}

/* ---- sign_transaction ------------------------------------------------------------ */

static void prep_sign_transaction(signer_worker *w, hctx *h)
{
    const request *req = &h->req;
    const ethtx *tx = &req->tx;
    policy_decision d;
    char detail[POLICY_DETAIL_MAX];
    u256 value;

    h->audit.key = req->address;
    h->audit.owner = req->owner;
    h->audit.has_chain = true;
    h->audit.chain_id = tx->chain_id;
    h->audit.has_nonce = true;
    h->audit.nonce = tx->nonce;
    h->audit.to = tx->has_to ? tx->to : NULL;
    u256_from_be32(&value, tx->value);
    u256_to_dec(h->value_dec, &value);
    h->audit.value = h->value_dec;
    if (tx->data_len >= 4)
        h->audit.selector = tx->data;
    snprintf(h->extra, sizeof h->extra, "\"tx_type\":\"%s\"",
             tx->type == ETHTX_EIP1559 ? "eip1559" : "legacy");
    h->audit.extra = h->extra;

    if (ethtx_signing_hash(h->digest, &w->rlp, tx) != RLP_OK) {
        fail(h, CODE(INTERNAL), "internal", "cannot encode the transaction");
        return;
    }
    h->audit.digest = h->digest;

    policy_check_tx(w->sh->pol, &d, tx, req->address);
    if (!d.allow) {
        fail(h, CODE(POLICY_DENIED), d.rule, "%s", d.detail);
        return;
    }

    ledger_txn *t = &h->txn;
    memcpy(t->key, req->address, 20);
    t->chain_id = tx->chain_id;
    t->nonce = tx->nonce;
    t->max_nonce_gap = d.max_nonce_gap;
    memcpy(t->digest, h->digest, 32);
    memcpy(t->spends, d.spends, sizeof t->spends);
    t->n_spends = d.n_spends;
    /* What a fee replacement must keep: the transaction without its fees. */
    ethtx bare = *tx;
    memset(bare.max_fee, 0, sizeof bare.max_fee);
    memset(bare.max_priority_fee, 0, sizeof bare.max_priority_fee);
    if (ethtx_signing_hash(t->body, &w->rlp, &bare) != RLP_OK) {
        fail(h, CODE(INTERNAL), "internal", "cannot encode the transaction");
        return;
    }
    memcpy(t->max_fee, tx->max_fee, 32);
    if (tx->type == ETHTX_EIP1559)
        memcpy(t->prio_fee, tx->max_priority_fee, 32);
    t->bump_prio = tx->type == ETHTX_EIP1559;
    t->gas_limit = tx->gas_limit;
    t->repl_min_bump_pct = d.repl_min_bump_pct;
    t->repl_max = d.repl_max;
    h->lr = ledger_reserve(w->sh->led, t, detail, sizeof detail, h->now_ms);
    switch (h->lr) {
    case LEDGER_OK:
        h->holding = true;
        h->needs_keys = true;
        return;
    case LEDGER_RESIGN:
        h->needs_keys = true;
        return;
    case LEDGER_DOUBLE_SIGN:
        fail(h, CODE(DOUBLE_SIGN), "nonce.double_sign", "%s", detail);
        return;
    case LEDGER_IN_FLIGHT:
        fail(h, CODE(RETRY_LATER), "nonce.in_flight", "%s", detail);
        return;
    case LEDGER_NONCE_TOO_OLD:
        fail(h, CODE(POLICY_DENIED), "nonce.too_old", "%s", detail);
        return;
    case LEDGER_NONCE_TOO_FAR_AHEAD:
        fail(h, CODE(POLICY_DENIED), "nonce.too_far_ahead", "%s", detail);
        return;
    case LEDGER_VELOCITY:
        fail(h, CODE(POLICY_DENIED), "velocity.daily_limit", "%s", detail);
        return;
    case LEDGER_REPLACE_UNDERPRICED:
        fail(h, CODE(POLICY_DENIED), "nonce.replacement_underpriced", "%s", detail);
        return;
    case LEDGER_REPLACE_LIMIT:
        fail(h, CODE(POLICY_DENIED), "nonce.replacement_limit", "%s", detail);
        return;
    case LEDGER_ERR_NOMEM:
        fail(h, CODE(INTERNAL), "internal", "out of memory");
        return;
    }
}

static void keys_sign_transaction(signer_worker *w, hctx *h)
{
    uint8_t *secret = unseal(w, h);
    if (!secret)
        return;
    int rc = sign_digest(w->sctx, h->sig.r, h->sig.s, &h->sig.y_parity, h->digest, secret);
    scratch_done(w, secret);
    if (rc != 0)
        fail(h, CODE(INTERNAL), "internal", "signing failed");
}

static void finish_sign_transaction(signer_worker *w, hctx *h)
{
    const ethtx *tx = &h->req.tx;
    if (ethtx_encode(&w->rlp, tx, &h->sig) != RLP_OK) {
        fail(h, CODE(INTERNAL), "internal", "cannot encode the signed transaction");
        return;
    }
    keccak256(h->tx_hash, w->rlp.data, w->rlp.len);
    memcpy(h->r, h->sig.r, 32);
    memcpy(h->s, h->sig.s, 32);
    if (h->holding) {
        /* Committed by dispatch_finish inside the journal append, so that
         * a re-sign that sees the commit is journaled after it. */
        h->commit = true;
        if (h->txn.replacement)
            snprintf(h->extra, sizeof h->extra, "\"tx_type\":\"%s\",\"replacement\":%u",
                     tx->type == ETHTX_EIP1559 ? "eip1559" : "legacy", h->txn.replacement);
    } else {
        snprintf(h->extra, sizeof h->extra, "\"tx_type\":\"%s\",\"resign\":true",
                 tx->type == ETHTX_EIP1559 ? "eip1559" : "legacy");
    }
    /* raw_tx points into w->rlp: the answer is packed before its next use */
    h->stx.raw_tx.data = w->rlp.data;
    h->stx.raw_tx.len = w->rlp.len;
    h->stx.tx_hash.data = h->tx_hash;
    h->stx.tx_hash.len = 32;
    h->stx.r.data = h->r;
    h->stx.r.len = 32;
    h->stx.s.data = h->s;
    h->stx.s.len = 32;
    h->stx.y_parity = (uint32_t)h->sig.y_parity;
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_TRANSACTION;
    h->resp.sign_transaction = &h->stx;
    h->audit.tx_hash = h->tx_hash;
    h->audit.decision = "allow";
}

/* ---- sign_message --------------------------------------------------------------- */

static void prep_sign_message(signer_worker *w, hctx *h)
{
    const ProtobufCBinaryData *msg = &h->req.msg->sign_message->message;
    policy_decision d;
    h->audit.key = h->req.address;
    h->audit.owner = h->req.owner;
    ethtx_personal_digest(h->digest, msg->data, msg->len);
    h->audit.digest = h->digest;
    snprintf(h->extra, sizeof h->extra, "\"message_len\":%zu", msg->len);
    h->audit.extra = h->extra;
    policy_check_message(w->sh->pol, &d, msg->data, msg->len);
    if (!d.allow) {
        fail(h, CODE(POLICY_DENIED), d.rule, "%s", d.detail);
        return;
    }
    h->needs_keys = true;
}

static void keys_sign_message(signer_worker *w, hctx *h)
{
    int recid = 0;
    uint8_t *secret = unseal(w, h);
    if (!secret)
        return;
    int rc = sign_digest(w->sctx, h->sig65, h->sig65 + 32, &recid, h->digest, secret);
    scratch_done(w, secret);
    if (rc != 0) {
        fail(h, CODE(INTERNAL), "internal", "signing failed");
        return;
    }
    h->sig65[64] = (uint8_t)(27 + recid);
}

static void finish_sign_message(signer_worker *w, hctx *h)
{
    (void)w;
    h->smsg.signature.data = h->sig65;
    h->smsg.signature.len = 65;
    h->smsg.digest.data = h->digest;
    h->smsg.digest.len = 32;
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_SIGN_MESSAGE;
    h->resp.sign_message = &h->smsg;
    h->audit.decision = "allow";
}

/* ---- rewrap ----------------------------------------------------------------------- */

static void prep_rewrap(signer_worker *w, hctx *h)
{
    (void)w;
    h->audit.key = h->req.address;
    h->audit.owner = h->req.owner;
    h->needs_keys = true;
}

static void keys_rewrap(signer_worker *w, hctx *h)
{
    const request *req = &h->req;
    uint8_t *secret = unseal(w, h);
    if (!secret)
        return;
    keystore_err ks = keystore_seal(h->blob, w->ring, KEYSTORE_KEY_SECP256K1, req->address,
                                    req->owner, req->owner_len, secret);
    scratch_done(w, secret);
    if (ks != KEYSTORE_OK)
        fail(h, CODE(INTERNAL), "internal", "sealing failed: %s", keystore_strerror(ks));
}

static void finish_rewrap(signer_worker *w, hctx *h)
{
    h->rewrap.sealed_key.data = h->blob;
    h->rewrap.sealed_key.len = KEYSTORE_BLOB_LEN;
    h->rewrap.kek_version = kek_ring_current(w->ring);
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_REWRAP;
    h->resp.rewrap = &h->rewrap;
    snprintf(h->extra, sizeof h->extra, "\"from_kek_version\":%u", h->kek_version);
    h->audit.extra = h->extra;
    h->audit.kek_version = h->rewrap.kek_version;
    h->audit.decision = "allow";
}

/* ---- status ------------------------------------------------------------------------ */

static void finish_status(signer_worker *w, hctx *h)
{
    audit_chain durable;
    journal_head(w->sh->jr, NULL, &durable);
    size_t n = kek_ring_count(w->ring);
    for (size_t i = 0; i < n; i++)
        h->kek_versions[i] = kek_ring_version_at(w->ring, i);
    memcpy(h->policy_hash, policy_hash(w->sh->pol), 32);
    memcpy(h->head, durable.head, 32);
    h->status.n_kek_versions = n;
    h->status.kek_versions = h->kek_versions;
    h->status.current_kek_version = kek_ring_current(w->ring);
    h->status.policy_hash.data = h->policy_hash;
    h->status.policy_hash.len = 32;
    h->status.audit_head_hash.data = h->head;
    h->status.audit_head_hash.len = 32;
    h->status.audit_entries = durable.seq;
    h->status.version = (char *)(uintptr_t)w->sh->version;
    h->resp.result_case = COFFER__SIGNER__V1__RESPONSE__RESULT_STATUS;
    h->resp.status = &h->status;
    h->audit.decision = "allow";
}

/* The command table: one row per operation, its three phases (NULL: none). */
static const struct {
    request_op op;
    phase_fn prepare, keys, finish;
} dispatch_table[] = {
    {REQUEST_OP_GENERATE_KEY, prep_generate_key, keys_generate_key, finish_generate_key},
    {REQUEST_OP_SIGN_TRANSACTION, prep_sign_transaction, keys_sign_transaction, finish_sign_transaction},
    {REQUEST_OP_SIGN_MESSAGE, prep_sign_message, keys_sign_message, finish_sign_message},
    {REQUEST_OP_REWRAP, prep_rewrap, keys_rewrap, finish_rewrap},
    {REQUEST_OP_STATUS, NULL, NULL, finish_status},
};

static size_t table_row(request_op op)
{
    for (size_t i = 0; i < sizeof dispatch_table / sizeof dispatch_table[0]; i++)
        if (dispatch_table[i].op == op)
            return i;
    return SIZE_MAX;
}

/* ---- phases ------------------------------------------------------------------------ */

static int pack_frame(dispatch_out *out, const Coffer__Signer__V1__Response *resp)
{
    size_t n = coffer__signer__v1__response__get_packed_size(resp);
    if (n == 0 || n > IPC_FRAME_MAX)
        return -1;
    uint8_t *f = malloc(IPC_HEADER_LEN + n);
    if (!f)
        return -1;
    f[0] = (uint8_t)(n >> 24);
    f[1] = (uint8_t)(n >> 16);
    f[2] = (uint8_t)(n >> 8);
    f[3] = (uint8_t)n;
    coffer__signer__v1__response__pack(resp, f + IPC_HEADER_LEN);
    out->frame = f;
    out->len = IPC_HEADER_LEN + n;
    return 0;
}

dispatch_job *dispatch_prepare(signer_worker *w, const signer_peer *peer, const uint8_t *frame,
                               size_t len)
{
    hctx *h = calloc(1, sizeof *h);
    uint64_t rid = 0;
    char why[256];
    if (!h)
        return NULL;
    coffer__signer__v1__response__init(&h->resp);
    coffer__signer__v1__error__init(&h->err);
    coffer__signer__v1__generate_key_result__init(&h->gen);
    coffer__signer__v1__sign_transaction_result__init(&h->stx);
    coffer__signer__v1__sign_message_result__init(&h->smsg);
    coffer__signer__v1__rewrap_result__init(&h->rewrap);
    coffer__signer__v1__status_result__init(&h->status);
    h->resp.version = REQUEST_PROTOCOL_VERSION;
    h->audit.event = "request";
    h->audit.has_peer = true;
    h->audit.uid = peer->uid;
    h->audit.pid = peer->pid;
    h->now_ms = dispatch_now_ms();
    if (request_decode(&h->req, &rid, why, sizeof why, frame, len) != 0) {
        h->audit.event = "protocol_violation";
        h->audit.has_request_id = rid != 0;
        h->audit.request_id = rid;
        h->resp.request_id = rid;
        fail(h, CODE(BAD_REQUEST), "protocol", "protocol violation: %s", why);
        h->close_after = true;
        return h;
    }
    h->decoded = true;
    h->resp.request_id = h->req.msg->request_id;
    h->audit.has_request_id = true;
    h->audit.request_id = h->req.msg->request_id;
    h->audit.trace_id = h->req.msg->trace_id;
    h->audit.op = request_op_name(h->req.op);
    size_t row = table_row(h->req.op);
    if (row == SIZE_MAX) {
        fail(h, CODE(INTERNAL), "internal", "no handler");
        return h;
    }
    if (dispatch_table[row].prepare)
        dispatch_table[row].prepare(w, h);
    return h;
}

bool dispatch_job_needs_keys(const dispatch_job *job)
{
    return job->needs_keys;
}

bool dispatch_job_closes(const dispatch_job *job)
{
    return job->close_after;
}

void dispatch_keys(signer_worker *w, dispatch_job *const *jobs, size_t n)
{
    size_t todo = 0;
    for (size_t i = 0; i < n; i++)
        todo += jobs[i]->needs_keys;
    if (todo == 0)
        return;
    /* One open of the ring and the scratch for the whole batch: the
     * per-operation opens inside keystore/sign nest and cost nothing. */
    int held = kek_ring_hold(w->ring) == 0;
    uint8_t *scratch = held ? secmem_open_rw(w->scratch) : NULL;
    if (!scratch) {
        if (held && kek_ring_release(w->ring) != 0)
            _exit(70);
        for (size_t i = 0; i < n; i++)
            if (jobs[i]->needs_keys)
                fail(jobs[i], CODE(INTERNAL), "internal", "cannot open guarded memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        hctx *h = jobs[i];
        if (!h->needs_keys)
            continue;
        h->needs_keys = false;
        dispatch_table[table_row(h->req.op)].keys(w, h);
    }
    secmem_wipe(scratch, SIGN_SECRET_LEN);
    if (secmem_close(w->scratch) != 0 || kek_ring_release(w->ring) != 0) {
        log_error("signer.secmem", "detail=\"cannot re-protect key memory\"");
        _exit(70);
    }
}

int dispatch_finish(signer_worker *w, dispatch_job *h, dispatch_out *out)
{
    int rc = -1;
    memset(out, 0, sizeof *out);
    out->close_after = h->close_after;
    if (h->needs_keys) /* phase 2 skipped: refuse rather than guess */
        fail(h, CODE(INTERNAL), "internal", "key phase did not run");
    if (h->decoded && !h->audit.decision) {
        size_t row = table_row(h->req.op);
        if (row != SIZE_MAX)
            dispatch_table[row].finish(w, h);
    }
    if (!h->audit.decision)
        fail(h, CODE(INTERNAL), "internal", "no answer");
    if (h->holding && !h->commit) { /* refused after reserving: give the reservation back */
        ledger_abort(w->sh->led, &h->txn);
        h->holding = false;
    }
    if (pack_frame(out, &h->resp) != 0) {
        /* Cannot happen within the request limits; answer nothing. */
        log_error("signer.pack", "request_id=%llu", (unsigned long long)h->resp.request_id);
        out->frame = NULL;
        out->close_after = true;
    }
    if (h->commit) {
        out->ticket = journal_append_commit(w->sh->jr, &h->audit, w->sh->led, &h->txn, h->now_ms);
        if (out->ticket == 0) /* nothing committed, nothing audited: no answer */
            ledger_abort(w->sh->led, &h->txn);
    } else {
        out->ticket = journal_append(w->sh->jr, &h->audit, NULL, 0, h->now_ms);
    }
    if (out->ticket == 0) {
        log_error("signer.journal.append", "request_id=%llu detail=\"audit line could not be appended\"",
                  (unsigned long long)h->resp.request_id);
        free(out->frame);
        out->frame = NULL;
        goto done;
    }
    rc = 0;
done:
    request_dispose(&h->req);
    secmem_wipe(h, sizeof *h);
    free(h);
    return rc;
}

int dispatch_frame(signer_worker *w, dispatch_out *out, const signer_peer *peer,
                   const uint8_t *frame, size_t len)
{
    dispatch_job *job = dispatch_prepare(w, peer, frame, len);
    memset(out, 0, sizeof *out);
    if (!job)
        return -1;
    dispatch_keys(w, &job, 1);
    return dispatch_finish(w, job, out);
}

uint64_t dispatch_audit_violation(signer_shared *sh, const signer_peer *peer, const char *why)
{
    audit_entry e;
    memset(&e, 0, sizeof e);
    e.event = "protocol_violation";
    e.has_peer = true;
    e.uid = peer->uid;
    e.pid = peer->pid;
    e.decision = "error";
    e.code = "BAD_REQUEST";
    e.rule = "protocol";
    e.detail = why;
    return journal_append(sh->jr, &e, NULL, 0, dispatch_now_ms());
}

uint64_t dispatch_audit_peer_denied(signer_shared *sh, const signer_peer *peer, const char *why)
{
    audit_entry e;
    memset(&e, 0, sizeof e);
    e.event = "peer_denied";
    e.has_peer = true;
    e.uid = peer->uid;
    e.pid = peer->pid;
    e.decision = "deny";
    e.rule = "peer.uid";
    e.detail = why;
    return journal_append(sh->jr, &e, NULL, 0, dispatch_now_ms());
}

int dispatch_worker_init(signer_worker *w, signer_shared *sh, const kek_ring *ring)
{
    memset(w, 0, sizeof *w);
    w->sh = sh;
    rlp_buf_init(&w->rlp);
    w->sctx = sign_ctx_new();
    w->ring = kek_ring_clone(ring);
    w->scratch = secmem_new(SIGN_SECRET_LEN);
    if (!w->sctx || !w->ring || !w->scratch) {
        dispatch_worker_dispose(w);
        return -1;
    }
    return 0;
}

void dispatch_worker_dispose(signer_worker *w)
{
    sign_ctx_free(w->sctx);
    kek_ring_free(w->ring);
    secmem_free(w->scratch);
    if (w->rlp.data)
        secmem_wipe(w->rlp.data, w->rlp.cap);
    rlp_buf_dispose(&w->rlp);
    memset(w, 0, sizeof *w);
}
