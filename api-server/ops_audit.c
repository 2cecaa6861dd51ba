#include "ops_audit.h"

#include "coffer/v1/operations.pb-c.h"
#include "hex.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_AUDIT_BATCH "1000"
#define OPS_AUDIT_PAGE_DEFAULT 100u
#define OPS_AUDIT_GENESIS_TAG "coffer.audit_log.v2"

/* A chain while it is walked. */
typedef struct {
    ops_audit_chain pub;
    uint8_t expect_prev[32];
    uint64_t last_seq;
    bool bad;
} ops_audit_state;

/* The chains seen so far: states[0] is the legacy chain; slots index the
 * others by label (open addressing, index + 1, 0 empty). */
typedef struct {
    ops_audit_state *states;
    size_t n, cap;
    uint32_t *slots;
    size_t n_slots;                   /* a power of two, at least 2n */
} ops_audit_map;

static uint64_t ops_audit_label_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static int ops_audit_map_grow(ops_audit_map *m)
{
    size_t n_slots = m->n_slots ? m->n_slots * 2 : 64;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 1; i < m->n; i++) {
        size_t j = ops_audit_label_hash(m->states[i].pub.chain) & (n_slots - 1);
        while (slots[j])
            j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 0;
}

/* The state of chain label, created empty when new (*fresh true); NULL when
 * memory is short. */
static ops_audit_state *ops_audit_map_get(ops_audit_map *m, const char *label, bool *fresh)
{
    *fresh = false;
    if (m->n_slots) {
        size_t j = ops_audit_label_hash(label) & (m->n_slots - 1);
        for (; m->slots[j]; j = (j + 1) & (m->n_slots - 1))
            if (strcmp(m->states[m->slots[j] - 1].pub.chain, label) == 0)
                return &m->states[m->slots[j] - 1];
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        ops_audit_state *st = realloc(m->states, cap * sizeof *st);
        if (!st)
            return NULL;
        m->states = st;
        m->cap = cap;
    }
    if ((m->n + 1) * 2 > m->n_slots) {
        if (ops_audit_map_grow(m) != 0)
            return NULL;
    }
    ops_audit_state *st = &m->states[m->n];
    memset(st, 0, sizeof *st);
    snprintf(st->pub.chain, sizeof st->pub.chain, "%s", label);
    size_t j = ops_audit_label_hash(label) & (m->n_slots - 1);
    while (m->slots[j])
        j = (j + 1) & (m->n_slots - 1);
    m->slots[j] = (uint32_t)m->n + 1;
    m->n++;
    *fresh = true;
    return st;
}

/* Records the chain's first bad row (later ones of that chain are not
 * reported) and keeps the lowest bad id overall in *out. */
__attribute__((format(printf, 4, 5)))
static void ops_audit_bad(ops_audit_result *out, ops_audit_state *st, uint64_t id, const char *fmt, ...)
{
    if (st->bad)
        return;
    st->bad = true;
    st->pub.first_bad_id = id;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->pub.detail, sizeof st->pub.detail, fmt, ap);
    va_end(ap);
    out->bad_chains++;
    if (out->ok || id < out->first_bad_id) {
        out->ok = false;
        out->first_bad_id = id;
        snprintf(out->detail, sizeof out->detail, "chain %s: %s", st->pub.chain, st->pub.detail);
    }
}

/* prev_hash of a chain's first row (migration 0005, audit_log_genesis). */
static void ops_audit_genesis(uint8_t out[32], const char *label, const char *v1_head_hex)
{
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)OPS_AUDIT_GENESIS_TAG "\n", sizeof OPS_AUDIT_GENESIS_TAG);
    crypto_hash_sha256_update(&h, (const uint8_t *)label, strlen(label));
    crypto_hash_sha256_update(&h, (const uint8_t *)"\n", 1);
    crypto_hash_sha256_update(&h, (const uint8_t *)v1_head_hex, strlen(v1_head_hex));
    crypto_hash_sha256_final(&h, out);
}

/* Checkpoint order: legacy first, then platform, then clients by id. */
static int ops_audit_order(const void *pa, const void *pb)
{
    const ops_audit_state *a = pa, *b = pb;
    bool ap = strcmp(a->pub.chain, "platform") == 0, bp = strcmp(b->pub.chain, "platform") == 0;
    if (ap != bp)
        return ap ? -1 : 1;
    return strcmp(a->pub.chain, b->pub.chain);
}

/* One row of the walk: columns as in ops_audit_verify_chains' query. */
static void ops_audit_row(ops_audit_result *out, ops_audit_state *st, const PGresult *res, int r, bool legacy,
                          uint64_t v1_last_id, bool have_boundary)
{
    uint64_t id = strtoull(PQgetvalue(res, r, 0), NULL, 10);
    const char *seq_txt = PQgetvalue(res, r, 10);
    uint64_t seq = legacy ? 0 : strtoull(seq_txt, NULL, 10);
    uint8_t prev[32], hash[32], mine[32];
    bool decoded = hex_decode_exact(prev, sizeof prev, PQgetvalue(res, r, 8)) == 0 &&
                   hex_decode_exact(hash, sizeof hash, PQgetvalue(res, r, 9)) == 0;
    if (!decoded) {
        ops_audit_bad(out, st, id, "row %" PRIu64 ": prev_hash or hash is not 32 bytes", id);
        memset(hash, 0, sizeof hash);
    } else {
        crypto_hash_sha256_state h;
        crypto_hash_sha256_init(&h);
        crypto_hash_sha256_update(&h, prev, sizeof prev);
        if (!legacy) {
            crypto_hash_sha256_update(&h, (const uint8_t *)"v2\n", 3);
            crypto_hash_sha256_update(&h, (const uint8_t *)seq_txt, strlen(seq_txt));
            crypto_hash_sha256_update(&h, (const uint8_t *)"\n", 1);
        }
        for (int col = 0; col < 8; col++) {
            if (col > 0)
                crypto_hash_sha256_update(&h, (const uint8_t *)"\n", 1);
            crypto_hash_sha256_update(&h, (const uint8_t *)PQgetvalue(res, r, col),
                                      (unsigned long long)PQgetlength(res, r, col));
        }
        crypto_hash_sha256_final(&h, mine);
        if (legacy && have_boundary && id > v1_last_id)
            ops_audit_bad(out, st, id, "row %" PRIu64 ": has no chain position but is newer than the legacy chain's "
                          "end (row %" PRIu64 "): written past the chain trigger", id, v1_last_id);
        else if (!legacy && seq != st->last_seq + 1)
            ops_audit_bad(out, st, id, "row %" PRIu64 ": chain position %" PRIu64 " where %" PRIu64 " was due: a row "
                          "of this chain was removed, or this one was moved here from another chain",
                          id, seq, st->last_seq + 1);
        else if (sodium_memcmp(prev, st->expect_prev, sizeof prev) != 0)
            ops_audit_bad(out, st, id, "row %" PRIu64 ": prev_hash is not the hash of the chain's row before (%s %" PRIu64
                          "): a row was removed, inserted, changed or moved", id,
                          st->pub.head_id ? "row" : "genesis after legacy row", st->pub.head_id ? st->pub.head_id : v1_last_id);
        else if (sodium_memcmp(mine, hash, sizeof mine) != 0)
            ops_audit_bad(out, st, id, "row %" PRIu64 ": its hash does not match its contents (changed after it was "
                          "written)", id);
    }
    st->pub.entries++;
    st->pub.head_id = id;
    st->last_seq = seq;
    memcpy(st->expect_prev, hash, sizeof hash);
    snprintf(st->pub.head_hash, sizeof st->pub.head_hash, "%s", PQgetvalue(res, r, 9));
    out->checked++;
}

rpc_code ops_audit_verify_chains(ledger_tx *tx, ops_audit_result *out, ops_audit_chain **chains, size_t *n_chains)
{
    ops_audit_map m = {0};
    rpc_code c = RPC_OK;
    memset(out, 0, sizeof *out);
    out->ok = true;
    if (chains)
        *chains = NULL;
    if (n_chains)
        *n_chains = 0;

    /* Where the legacy chain ends (migration 0005). */
    PGresult *res = ledger_query(tx, &c, "SELECT v1_last_id, v1_rows, encode(v1_head, 'hex') FROM audit_log_boundary",
                                 0, NULL);
    if (!res)
        return c;
    bool have_boundary = PQntuples(res) == 1;
    uint64_t v1_last_id = 0, v1_rows = 0;
    char v1_head[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    if (have_boundary) {
        v1_last_id = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        v1_rows = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
        snprintf(v1_head, sizeof v1_head, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    bool fresh;
    ops_audit_state *legacy = ops_audit_map_get(&m, "legacy", &fresh);
    if (!legacy) {
        c = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (!have_boundary)
        ops_audit_bad(out, legacy, 0, "audit_log_boundary does not hold its one row (migration 0005 wrote it; it "
                      "refuses changes): the legacy chain's end is unknown");

    char last[24] = "0";
    for (;;) {
        const char *p[1] = {last};
        res = ledger_query(tx, &c,
                           "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, actor, "
                           "coalesce(client_id::text, ''), action, entity_type, entity_id, details::text, "
                           "encode(prev_hash, 'hex'), encode(hash, 'hex'), coalesce(chain_seq::text, '') "
                           "FROM audit_log WHERE id > $1::bigint ORDER BY id LIMIT " OPS_AUDIT_BATCH,
                           1, p);
        if (!res)
            goto out;
        int n = PQntuples(res);
        for (int r = 0; r < n; r++) {
            bool is_legacy = PQgetvalue(res, r, 10)[0] == '\0';
            ops_audit_state *st = &m.states[0];
            if (!is_legacy) {
                const char *client = PQgetvalue(res, r, 3);
                st = ops_audit_map_get(&m, client[0] ? client : "platform", &fresh);
                if (!st) {
                    PQclear(res);
                    c = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
                    goto out;
                }
                if (fresh)
                    ops_audit_genesis(st->expect_prev, st->pub.chain, v1_head);
            }
            ops_audit_row(out, st, res, r, is_legacy, v1_last_id, have_boundary);
        }
        if (n > 0)
            snprintf(last, sizeof last, "%s", PQgetvalue(res, n - 1, 0));
        PQclear(res);
        if (n < atoi(OPS_AUDIT_BATCH))
            break;
    }

    /* The legacy chain ends where the boundary says. */
    legacy = &m.states[0];
    uint8_t v1_head_bin[32];
    if (have_boundary && !legacy->bad &&
        (legacy->pub.entries != v1_rows || legacy->pub.head_id != v1_last_id ||
         hex_decode_exact(v1_head_bin, sizeof v1_head_bin, v1_head) != 0 ||
         (v1_rows > 0 && sodium_memcmp(legacy->expect_prev, v1_head_bin, 32) != 0)))
        ops_audit_bad(out, legacy, v1_last_id ? v1_last_id : legacy->pub.head_id,
                      "%" PRIu64 " rows ending at row %" PRIu64 ", but audit_log_boundary recorded %" PRIu64
                      " rows ending at row %" PRIu64 " (head %.16s...): rows were removed or added",
                      legacy->pub.entries, legacy->pub.head_id, v1_rows, v1_last_id, v1_head);
    if (legacy->pub.entries == 0)
        snprintf(legacy->pub.head_hash, sizeof legacy->pub.head_hash, "%s", v1_head);

    /* The checkpoint: sha256 over "label entries head_id head_hash\n" per
     * chain, legacy first, then platform, then clients by id. */
    if (m.n > 2)
        qsort(m.states + 1, m.n - 1, sizeof *m.states, ops_audit_order);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    for (size_t i = 0; i < m.n; i++) {
        char line[OPS_AUDIT_LABEL_MAX + 120];
        int len = snprintf(line, sizeof line, "%s %" PRIu64 " %" PRIu64 " %s\n", m.states[i].pub.chain,
                           m.states[i].pub.entries, m.states[i].pub.head_id, m.states[i].pub.head_hash);
        crypto_hash_sha256_update(&h, (const uint8_t *)line, (unsigned long long)len);
    }
    uint8_t digest[32];
    crypto_hash_sha256_final(&h, digest);
    hex_encode(out->head_hash, digest, sizeof digest);
    out->chains = m.n;
    if (chains && m.n) {
        *chains = malloc(m.n * sizeof **chains);
        if (!*chains) {
            c = ledger_fail(tx, RPC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m.n; i++)
            (*chains)[i] = m.states[i].pub;
        *n_chains = m.n;
    }
    if (!out->ok)
        log_warn("audit.chain_broken", "first_bad_id=%" PRIu64 " bad_chains=%" PRIu64, out->first_bad_id,
                 out->bad_chains);
    c = RPC_OK;
out:
    free(m.states);
    free(m.slots);
    return c;
}

rpc_code ops_audit_verify(ledger_tx *tx, ops_audit_result *out)
{
    return ops_audit_verify_chains(tx, out, NULL, NULL);
}

static rpc_code ops_audit_verify_body(ledger_tx *tx, void *arg)
{
    Coffer__V1__VerifyAuditChainResponse *r = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    ops_audit_result res;
    ops_audit_chain *chains = NULL;
    size_t n = 0;
    rpc_code c = ops_audit_verify_chains(tx, &res, &chains, &n);
    if (c != RPC_OK)
        return c;
    r->ok = res.ok;
    r->entries_checked = res.checked;
    r->first_bad_id = res.first_bad_id;
    r->bad_chains = (uint32_t)res.bad_chains;
    r->detail = rpc_ctx_strdup(ctx, res.detail);
    r->head_hash = rpc_ctx_strdup(ctx, res.head_hash);
    r->chains = rpc_ctx_alloc(ctx, (n ? n : 1) * sizeof *r->chains);
    if (!r->detail || !r->head_hash || !r->chains)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        Coffer__V1__AuditChainStatus *s = rpc_ctx_alloc(ctx, sizeof *s);
        if (!s)
            goto oom;
        coffer__v1__audit_chain_status__init(s);
        s->entries = chains[i].entries;
        s->head_id = chains[i].head_id;
        s->first_bad_id = chains[i].first_bad_id;
        if (!(s->chain = rpc_ctx_strdup(ctx, chains[i].chain)) ||
            !(s->head_hash = rpc_ctx_strdup(ctx, chains[i].head_hash)) ||
            !(s->detail = rpc_ctx_strdup(ctx, chains[i].detail)))
            goto oom;
        r->chains[r->n_chains++] = s;
    }
    free(chains);
    return RPC_OK;
oom:
    free(chains);
    return ledger_pb_oom(tx);
}

rpc_code ops_audit_verify_chain(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)in;
    return ledger_run(ctx, &(ledger_run_options){.body = ops_audit_verify_body, .arg = out});
}

typedef struct {
    const Coffer__V1__ListAuditLogRequest *req;
    Coffer__V1__ListAuditLogResponse *resp;
    unsigned page_size;
    char before[LEDGER_PAGE_ID_MAX];
} ops_audit_list_arg;

static rpc_code ops_audit_list_body(ledger_tx *tx, void *argp)
{
    ops_audit_list_arg *a = argp;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    char limit[16];
    snprintf(limit, sizeof limit, "%u", a->page_size + 1);
    const char *p[6] = {
        a->req->client_id[0] ? a->req->client_id : NULL, a->req->entity_type[0] ? a->req->entity_type : NULL,
        a->req->entity_id[0] ? a->req->entity_id : NULL, a->req->action[0] ? a->req->action : NULL,
        a->before[0] ? a->before : NULL,                 limit,
    };
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, actor, "
                                 "coalesce(client_id::text, ''), action, entity_type, entity_id, details::text, "
                                 "encode(prev_hash, 'hex'), encode(hash, 'hex'), coalesce(chain_seq, 0) FROM audit_log "
                                 "WHERE ($1::uuid IS NULL OR client_id = $1::uuid) "
                                 "AND ($2::text IS NULL OR entity_type = $2) AND ($3::text IS NULL OR entity_id = $3) "
                                 "AND ($4::text IS NULL OR action = $4) AND ($5::bigint IS NULL OR id < $5::bigint) "
                                 "ORDER BY id DESC LIMIT $6::integer",
                                 6, p);
    if (!res)
        return c;
    int n = PQntuples(res);
    int shown = n > (int)a->page_size ? (int)a->page_size : n;
    a->resp->n_entries = 0;
    a->resp->entries = rpc_ctx_alloc(ctx, (size_t)(shown ? shown : 1) * sizeof *a->resp->entries);
    if (!a->resp->entries) {
        PQclear(res);
        return ledger_pb_oom(tx);
    }
    for (int r = 0; r < shown; r++) {
        Coffer__V1__AuditEntry *e = rpc_ctx_alloc(ctx, sizeof *e);
        if (!e) {
            PQclear(res);
            return ledger_pb_oom(tx);
        }
        coffer__v1__audit_entry__init(e);
        e->id = strtoull(PQgetvalue(res, r, 0), NULL, 10);
        e->at = ledger_pb_timestamp(ctx, strtoll(PQgetvalue(res, r, 1), NULL, 10));
        e->actor = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 2));
        e->client_id = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 3));
        e->action = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 4));
        e->entity_type = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 5));
        e->entity_id = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 6));
        e->details_json = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 7));
        e->prev_hash = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 8));
        e->hash = rpc_ctx_strdup(ctx, PQgetvalue(res, r, 9));
        e->chain_seq = strtoull(PQgetvalue(res, r, 10), NULL, 10);
        if (!e->at || !e->actor || !e->client_id || !e->action || !e->entity_type || !e->entity_id ||
            !e->details_json || !e->prev_hash || !e->hash) {
            PQclear(res);
            return ledger_pb_oom(tx);
        }
        a->resp->entries[a->resp->n_entries++] = e;
    }
    if (n > shown && shown > 0) {
        char tok[LEDGER_PAGE_TOKEN_MAX];
        if (ledger_fmt_page_token_encode(tok, sizeof tok, 0, PQgetvalue(res, shown - 1, 0)) != 0 ||
            !(a->resp->next_page_token = rpc_ctx_strdup(ctx, tok))) {
            PQclear(res);
            return ledger_pb_oom(tx);
        }
    }
    PQclear(res);
    return RPC_OK;
}

rpc_code ops_audit_list(rpc_ctx *ctx, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Coffer__V1__ListAuditLogRequest *req = (const Coffer__V1__ListAuditLogRequest *)in;
    ops_audit_list_arg a = {.req = req, .resp = (Coffer__V1__ListAuditLogResponse *)out};
    char msg[RPC_MESSAGE_MAX];
    if (ledger_fmt_page_size(&a.page_size, msg, sizeof msg, req->page_size, OPS_AUDIT_PAGE_DEFAULT,
                             LEDGER_PAGE_SIZE_MAX) != 0)
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "%s", msg);
    if (req->client_id[0] && !ledger_fmt_is_uuid(req->client_id))
        return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "client_id must be a uuid");
    if (req->page_token[0]) {
        int64_t zero = 0;
        if (ledger_fmt_page_token_decode(&zero, a.before, sizeof a.before, req->page_token) != 0 || zero != 0 ||
            strspn(a.before, "0123456789") != strlen(a.before))
            return rpc_ctx_fail(ctx, RPC_INVALID_ARGUMENT, "page_token is not one this server gave out");
    }
    return ledger_run(ctx, &(ledger_run_options){.body = ops_audit_list_body, .arg = &a});
}
