#include "ops_audit.h"

#include "coffer/v1/operations.pb-c.h"
#include "hex.h"
#include "ledger_fmt.h"
#include "ledger_pb.h"
#include "log.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_AUDIT_BATCH "1000"
#define OPS_AUDIT_PAGE_DEFAULT 100u

rpc_code ops_audit_verify(ledger_tx *tx, ops_audit_result *out)
{
    uint8_t expect_prev[32] = {0};
    char last[24] = "0";
    rpc_code c;
    memset(out, 0, sizeof *out);
    out->ok = true;
    for (;;) {
        const char *p[1] = {last};
        PGresult *res = ledger_query(tx, &c,
                                     "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, actor, "
                                     "coalesce(client_id::text, ''), action, entity_type, entity_id, details::text, "
                                     "encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_log "
                                     "WHERE id > $1::bigint ORDER BY id LIMIT " OPS_AUDIT_BATCH,
                                     1, p);
        if (!res)
            return c;
        int n = PQntuples(res);
        for (int r = 0; r < n && out->ok; r++) {
            uint64_t id = strtoull(PQgetvalue(res, r, 0), NULL, 10);
            uint8_t prev[32], hash[32], mine[32];
            if (hex_decode_exact(prev, sizeof prev, PQgetvalue(res, r, 8)) != 0 ||
                hex_decode_exact(hash, sizeof hash, PQgetvalue(res, r, 9)) != 0) {
                out->ok = false;
                out->first_bad_id = id;
                snprintf(out->detail, sizeof out->detail, "row %" PRIu64 ": prev_hash or hash is not 32 bytes", id);
                break;
            }
            crypto_hash_sha256_state st;
            crypto_hash_sha256_init(&st);
            crypto_hash_sha256_update(&st, prev, sizeof prev);
            for (int col = 0; col < 8; col++) {
                if (col > 0)
                    crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
                crypto_hash_sha256_update(&st, (const uint8_t *)PQgetvalue(res, r, col),
                                          (unsigned long long)PQgetlength(res, r, col));
            }
            crypto_hash_sha256_final(&st, mine);
            if (sodium_memcmp(prev, expect_prev, sizeof prev) != 0) {
                out->ok = false;
                out->first_bad_id = id;
                snprintf(out->detail, sizeof out->detail,
                         "row %" PRIu64 ": prev_hash is not the hash of the row before (after id %s): "
                         "a row was removed, inserted or changed",
                         id, last);
            } else if (sodium_memcmp(mine, hash, sizeof mine) != 0) {
                out->ok = false;
                out->first_bad_id = id;
                snprintf(out->detail, sizeof out->detail,
                         "row %" PRIu64 ": its hash does not match its contents (changed after it was written)", id);
            }
            out->checked++;
            memcpy(expect_prev, hash, sizeof hash);
            snprintf(out->head_hash, sizeof out->head_hash, "%s", PQgetvalue(res, r, 9));
            snprintf(last, sizeof last, "%s", PQgetvalue(res, r, 0));
        }
        PQclear(res);
        if (!out->ok || n < atoi(OPS_AUDIT_BATCH))
            break;
    }
    if (!out->ok)
        log_warn("audit.chain_broken", "first_bad_id=%" PRIu64, out->first_bad_id);
    return RPC_OK;
}

static rpc_code ops_audit_verify_body(ledger_tx *tx, void *arg)
{
    Coffer__V1__VerifyAuditChainResponse *r = arg;
    rpc_ctx *ctx = ledger_tx_ctx(tx);
    ops_audit_result res;
    rpc_code c = ops_audit_verify(tx, &res);
    if (c != RPC_OK)
        return c;
    r->ok = res.ok;
    r->entries_checked = res.checked;
    r->first_bad_id = res.first_bad_id;
    r->detail = rpc_ctx_strdup(ctx, res.detail);
    r->head_hash = rpc_ctx_strdup(ctx, res.head_hash);
    if (!r->detail || !r->head_hash)
        return ledger_pb_oom(tx);
    return RPC_OK;
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
                                 "encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_log "
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
