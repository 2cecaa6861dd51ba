/* deposit_watch: ERC-20 Transfer logs into the custodial wallets, by block
 * range behind a persisted cursor (chain_cursors 'deposit_watch').
 *
 * Matching rule (docs/ledger.md): a Transfer of a vault's token to a
 * client's wallet matches that client's oldest INITIATED crypto deposit on
 * this chain, of the vault with that token, whose amount equals the
 * transferred value exactly and which has not expired. It moves to
 * PROVIDER_CONFIRMING (BLOCKCHAIN_CONFIRMATION) with the log's tx hash,
 * log index, block number and hash. Anything else (another amount, no
 * open order) is kept in unmatched_transfers for an operator, never lost.
 * A seen deposit is credited (CompleteDeposit's code path) once its block
 * has evm.confirmations blocks on top and is still the chain's block at
 * that height; the unique (chain, tx_hash, log_index) index keeps one log
 * from crediting twice.
 *
 * Reorgs: the cursor keeps the hash of the last scanned block; the next
 * range's first block must name it as parent, and the cursor's block must
 * still have that hash. Otherwise the cursor goes back evm.confirmations + 1
 * blocks, the seen deposits above it go back to INITIATED and the unmatched
 * transfers above it become orphaned, and the range is scanned again (a
 * reorg deeper than the confirmation depth is out of scope: credits are
 * final at the depth). A deposit whose block hash no longer matches at
 * credit time also goes back to INITIATED. */
#include "chain_jobs.h"

#include "abi.h"
#include "hex.h"
#include "log.h"
#include "svc_ledger.h"
#include "vault_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DW_TOKENS_MAX 64
#define DW_WALLETS_MAX 4096
#define DW_SEEN_MAX 2000

typedef struct {
    uint8_t token[20], from[20], to[20];
    u256 value;
    uint8_t tx_hash[32], block_hash[32];
    uint64_t log_index, block_number;
    char client_id[VAULT_STORE_ID_MAX];
} dw_transfer;

typedef struct {
    const ops_jobs_env *env;
    ops_jobs_report *rep;
    /* read */
    bool has_cursor;
    uint64_t cursor;
    uint8_t cursor_hash[32];
    uint8_t tokens[DW_TOKENS_MAX][20];
    size_t n_tokens;
    uint8_t (*wallets)[20];
    char (*clients)[VAULT_STORE_ID_MAX];
    size_t n_wallets;
    /* write */
    uint64_t new_cursor;
    uint8_t new_hash[32];
    bool rewind;
    dw_transfer *seen;
    size_t n_seen;
    bool moved;
} dw_arg;

static void dw_chain(char out[24], const ops_jobs_env *env)
{
    snprintf(out, 24, "%llu", (unsigned long long)env->chain.chain_id);
}

static rpc_code dw_read_body(ledger_tx *tx, void *argp)
{
    dw_arg *a = argp;
    char chain[24];
    dw_chain(chain, a->env);
    const char *p[1] = {chain};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT block_number, encode(block_hash, 'hex') FROM chain_cursors "
                                 "WHERE name = 'deposit_watch' AND chain_id = $1::bigint",
                                 1, p);
    if (!res)
        return c;
    a->has_cursor = PQntuples(res) == 1;
    if (a->has_cursor) {
        a->cursor = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        if (hex_decode_exact(a->cursor_hash, 32, PQgetvalue(res, 0, 1)) != 0)
            a->has_cursor = false;
    }
    PQclear(res);
    res = ledger_query(tx, &c,
                       "SELECT DISTINCT encode(token_address, 'hex') FROM client_vaults WHERE chain_id = $1::bigint "
                       "LIMIT 64",
                       1, p);
    if (!res)
        return c;
    a->n_tokens = 0;
    for (int r = 0; r < PQntuples(res); r++)
        if (hex_decode_exact(a->tokens[a->n_tokens], 20, PQgetvalue(res, r, 0)) == 0)
            a->n_tokens++;
    PQclear(res);
    res = ledger_query(tx, &c,
                       "SELECT DISTINCT o.id, encode(o.wallet_address, 'hex') FROM client_organizations o "
                       "JOIN client_vaults v ON v.client_id = o.id WHERE v.chain_id = $1::bigint "
                       "AND o.wallet_address IS NOT NULL LIMIT 4096",
                       1, p);
    if (!res)
        return c;
    a->n_wallets = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        snprintf(a->clients[a->n_wallets], VAULT_STORE_ID_MAX, "%s", PQgetvalue(res, r, 0));
        if (hex_decode_exact(a->wallets[a->n_wallets], 20, PQgetvalue(res, r, 1)) == 0)
            a->n_wallets++;
    }
    PQclear(res);
    return RPC_OK;
}

/* Moves the cursor (and, on a rewind, takes back what was seen above it). */
static rpc_code dw_write_body(ledger_tx *tx, void *argp)
{
    dw_arg *a = argp;
    ledger_tx_set_actor(tx, "job:deposit_watch");
    char chain[24], cur[24], old[24], hash[67], oldhash[67];
    dw_chain(chain, a->env);
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)a->new_cursor);
    snprintf(old, sizeof old, "%llu", (unsigned long long)a->cursor);
    ledger_bytea_param(hash, a->new_hash, 32);
    ledger_bytea_param(oldhash, a->cursor_hash, 32);
    rpc_code c;
    a->moved = false;
    if (a->has_cursor) {
        const char *p[3] = {chain, old, oldhash};
        PGresult *res = ledger_query(tx, &c,
                                     "SELECT 1 FROM chain_cursors WHERE name = 'deposit_watch' AND chain_id = $1::bigint "
                                     "AND block_number = $2::bigint AND block_hash = $3::bytea FOR UPDATE",
                                     3, p);
        if (!res)
            return c;
        bool same = PQntuples(res) == 1;
        PQclear(res);
        if (!same)
            return RPC_OK; /* another replica moved it meanwhile */
    }
    if (a->rewind) {
        const char *p[2] = {chain, cur};
        uint64_t back = 0, orphaned = 0;
        if ((c = ledger_exec(tx, &back,
                             "UPDATE deposits SET status = 'INITIATED', sub_status = NULL, tx_hash = NULL, "
                             "log_index = NULL, block_number = NULL, block_hash = NULL WHERE chain_id = $1::bigint "
                             "AND status = 'PROVIDER_CONFIRMING' AND block_number > $2::bigint",
                             2, p)) != RPC_OK ||
            (c = ledger_exec(tx, &orphaned,
                             "UPDATE unmatched_transfers SET status = 'orphaned' WHERE chain_id = $1::bigint "
                             "AND status = 'open' AND block_number > $2::bigint",
                             2, p)) != RPC_OK)
            return c;
        char details[300];
        snprintf(details, sizeof details, "{\"chain_id\":%s,\"from_block\":%s,\"to_block\":%s,\"deposits_back\":%llu,"
                 "\"unmatched_orphaned\":%llu}", chain, old, cur, (unsigned long long)back,
                 (unsigned long long)orphaned);
        if ((c = ledger_audit(tx, "chain.reorg", "chain", chain, NULL, details)) != RPC_OK)
            return c;
        log_warn("deposit_watch.reorg", "chain=%s cursor=%s rewound_to=%s deposits_back=%llu orphaned=%llu", chain,
                 old, cur, (unsigned long long)back, (unsigned long long)orphaned);
        ops_jobs_line(a->rep, "reorg: cursor %s rewound to %s; %llu seen deposits back to INITIATED, %llu unmatched "
                      "transfers orphaned", old, cur, (unsigned long long)back, (unsigned long long)orphaned);
    }
    for (size_t i = 0; i < a->n_seen; i++) {
        dw_transfer *t = &a->seen[i];
        char th[67], bh[67], li[24], bn[24], token[43], from[43], to[43], val[U256_DEC_MAX];
        ledger_bytea_param(th, t->tx_hash, 32);
        ledger_bytea_param(bh, t->block_hash, 32);
        ledger_bytea_param(token, t->token, 20);
        ledger_bytea_param(from, t->from, 20);
        ledger_bytea_param(to, t->to, 20);
        snprintf(li, sizeof li, "%llu", (unsigned long long)t->log_index);
        snprintf(bn, sizeof bn, "%llu", (unsigned long long)t->block_number);
        vault_store_dec(val, &t->value);
        /* Seen already (this or an earlier run)? */
        const char *q[3] = {chain, th, li};
        PGresult *res = ledger_query(tx, &c,
                                     "SELECT (SELECT count(*) FROM deposits WHERE chain_id = $1::bigint AND tx_hash = "
                                     "$2::bytea AND log_index = $3::integer) + (SELECT count(*) FROM "
                                     "unmatched_transfers WHERE chain_id = $1::bigint AND tx_hash = $2::bytea AND "
                                     "log_index = $3::integer AND status = 'open')",
                                     3, q);
        if (!res)
            return c;
        bool known = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
        PQclear(res);
        if (known)
            continue;
        const char *m[4] = {chain, t->client_id, token, val};
        res = ledger_query(tx, &c,
                           "SELECT d.id, d.order_id FROM deposits d JOIN client_vaults v ON v.id = d.vault_id "
                           "WHERE d.chain_id = $1::bigint AND d.client_id = $2::uuid AND d.kind = 'crypto' "
                           "AND d.status = 'INITIATED' AND v.token_address = $3::bytea AND d.amount = $4::numeric "
                           "AND (d.expires_at IS NULL OR d.expires_at > now()) ORDER BY d.created_at, d.id LIMIT 1 "
                           "FOR UPDATE OF d SKIP LOCKED",
                           4, m);
        if (!res)
            return c;
        if (PQntuples(res) == 1) {
            char did[VAULT_STORE_ID_MAX], order[64];
            snprintf(did, sizeof did, "%s", PQgetvalue(res, 0, 0));
            snprintf(order, sizeof order, "%s", PQgetvalue(res, 0, 1));
            PQclear(res);
            const char *u[5] = {did, th, li, bn, bh};
            if ((c = ledger_exec(tx, NULL,
                                 "UPDATE deposits SET status = 'PROVIDER_CONFIRMING', sub_status = "
                                 "'BLOCKCHAIN_CONFIRMATION', tx_hash = $2::bytea, log_index = $3::integer, "
                                 "block_number = $4::bigint, block_hash = $5::bytea WHERE id = $1::uuid",
                                 5, u)) != RPC_OK)
                return c;
            a->rep->done++;
            ops_jobs_line(a->rep, "%s: transfer of %s seen in block %s (log %s); credited at depth", order, val, bn, li);
            continue;
        }
        PQclear(res);
        const char *ins[10] = {t->client_id, chain, token, from, to, val, th, li, bn, bh};
        if ((c = ledger_exec(tx, NULL,
                             "INSERT INTO unmatched_transfers (client_id, chain_id, token_address, from_address, "
                             "wallet_address, amount, tx_hash, log_index, block_number, block_hash) VALUES ($1::uuid, "
                             "$2::bigint, $3::bytea, $4::bytea, $5::bytea, $6::numeric, $7::bytea, $8::integer, "
                             "$9::bigint, $10::bytea) ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE SET "
                             "status = 'open', block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash",
                             10, ins)) != RPC_OK)
            return c;
        a->rep->skipped++;
        ops_jobs_line(a->rep, "unmatched transfer of %s to client %s in block %s (log %s): kept for an operator", val,
                      t->client_id, bn, li);
    }
    const char *u[3] = {chain, cur, hash};
    if ((c = ledger_exec(tx, NULL,
                         "INSERT INTO chain_cursors (name, chain_id, block_number, block_hash) VALUES "
                         "('deposit_watch', $1::bigint, $2::bigint, $3::bytea) ON CONFLICT (name, chain_id) DO UPDATE "
                         "SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now()",
                         3, u)) != RPC_OK)
        return c;
    a->moved = true;
    return RPC_OK;
}

/* ---- credits at depth -------------------------------------------------------- */

typedef struct {
    const ops_jobs_env *env;
    uint64_t max_block;
    struct {
        char id[VAULT_STORE_ID_MAX], order[64];
        uint64_t block;
        uint8_t block_hash[32], tx_hash[32];
        uint32_t log_index;
        u256 amount;
    } rows[200];
    size_t n;
} dw_deep_arg;

static rpc_code dw_deep_body(ledger_tx *tx, void *argp)
{
    dw_deep_arg *a = argp;
    char chain[24], mb[24];
    dw_chain(chain, a->env);
    snprintf(mb, sizeof mb, "%llu", (unsigned long long)a->max_block);
    const char *p[2] = {chain, mb};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c,
                                 "SELECT id, order_id, block_number, encode(block_hash, 'hex'), encode(tx_hash, 'hex'), "
                                 "log_index, amount::text FROM deposits WHERE chain_id = $1::bigint AND status = "
                                 "'PROVIDER_CONFIRMING' AND block_number IS NOT NULL AND block_number <= $2::bigint "
                                 "ORDER BY block_number, id LIMIT 200",
                                 2, p);
    if (!res)
        return c;
    a->n = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        snprintf(a->rows[a->n].id, VAULT_STORE_ID_MAX, "%s", PQgetvalue(res, r, 0));
        snprintf(a->rows[a->n].order, 64, "%s", PQgetvalue(res, r, 1));
        a->rows[a->n].block = strtoull(PQgetvalue(res, r, 2), NULL, 10);
        a->rows[a->n].log_index = (uint32_t)strtoul(PQgetvalue(res, r, 5), NULL, 10);
        if (hex_decode_exact(a->rows[a->n].block_hash, 32, PQgetvalue(res, r, 3)) == 0 &&
            hex_decode_exact(a->rows[a->n].tx_hash, 32, PQgetvalue(res, r, 4)) == 0 &&
            u256_from_dec_str(&a->rows[a->n].amount, PQgetvalue(res, r, 6)) == 0)
            a->n++;
    }
    PQclear(res);
    return RPC_OK;
}

typedef struct {
    const char *id, *order;
    const u256 *amount;
    const char *tx_hash;
    uint32_t log_index;
    bool canonical;
} dw_credit_arg;

static rpc_code dw_credit_body(ledger_tx *tx, void *argp)
{
    dw_credit_arg *a = argp;
    ledger_tx_set_actor(tx, "job:deposit_watch");
    const char *p[1] = {a->id};
    rpc_code c;
    PGresult *res = ledger_query(tx, &c, "SELECT status FROM deposits WHERE id = $1::uuid FOR UPDATE", 1, p);
    if (!res)
        return c;
    bool still = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "PROVIDER_CONFIRMING") == 0;
    PQclear(res);
    if (!still)
        return RPC_OK;
    if (!a->canonical)
        return ledger_exec(tx, NULL,
                           "UPDATE deposits SET status = 'INITIATED', sub_status = NULL, tx_hash = NULL, "
                           "log_index = NULL, block_number = NULL, block_hash = NULL WHERE id = $1::uuid",
                           1, p);
    return svc_deposit_credit(tx, a->order, a->amount, a->tx_hash, a->log_index);
}

static void dw_credit_deep(const ops_jobs_env *env, ops_jobs_report *rep, uint64_t latest)
{
    uint64_t need = env->chain.confirmations ? env->chain.confirmations : 1;
    if (latest + 1 < need)
        return;
    dw_deep_arg *a = calloc(1, sizeof *a);
    char msg[RPC_MESSAGE_MAX];
    if (!a)
        return;
    a->env = env;
    a->max_block = latest + 1 - need;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, dw_deep_body, a) != RPC_OK) {
        rep->failed++;
        ops_jobs_line(rep, "credits: %s", msg);
        free(a);
        return;
    }
    for (size_t i = 0; i < a->n; i++) {
        evm_block_header h;
        bool found = false;
        evm_rpc_error ee;
        if (evm_rpc_get_block_by_number(env->chain.evm, &h, &found, &ee, EVM_BLOCK_ID_AT(a->rows[i].block)) !=
            EVM_OK) {
            rep->failed++;
            ops_jobs_line(rep, "%s: block %llu unreadable: %s", a->rows[i].order,
                          (unsigned long long)a->rows[i].block, ee.message);
            continue;
        }
        char th[67];
        hex_encode_0x(th, a->rows[i].tx_hash, 32);
        th[66] = '\0';
        dw_credit_arg ca = {a->rows[i].id, a->rows[i].order, &a->rows[i].amount, th, a->rows[i].log_index,
                            found && memcmp(h.hash, a->rows[i].block_hash, 32) == 0};
        if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, dw_credit_body, &ca) != RPC_OK) {
            rep->failed++;
            ops_jobs_line(rep, "%s: not credited yet: %s", a->rows[i].order, msg);
        } else if (!ca.canonical) {
            rep->skipped++;
            ops_jobs_line(rep, "%s: its block %llu was reorganised away: waiting for the transfer again",
                          a->rows[i].order, (unsigned long long)a->rows[i].block);
        } else {
            rep->done++;
            ops_jobs_line(rep, "%s: credited at depth %llu", a->rows[i].order, (unsigned long long)need);
        }
    }
    free(a);
}

/* ---- the run ---------------------------------------------------------------------- */

static bool dw_header(const ops_jobs_env *env, evm_block_header *h, uint64_t n)
{
    bool found = false;
    evm_rpc_error ee;
    return evm_rpc_get_block_by_number(env->chain.evm, h, &found, &ee, EVM_BLOCK_ID_AT(n)) == EVM_OK && found;
}

static int dw_wallet(const dw_arg *a, const uint8_t to[20])
{
    for (size_t i = 0; i < a->n_wallets; i++)
        if (memcmp(a->wallets[i], to, 20) == 0)
            return (int)i;
    return -1;
}

/* Refuses the range when a transfer of token t (seen[first..]) is above
 * the token's totalSupply at block `to`. Returns 0, or -1 (reported). */
static int dw_check_supply(const ops_jobs_env *env, ops_jobs_report *rep, const dw_arg *a, size_t t, size_t first,
                           uint64_t to)
{
    u256 supply;
    evm_rpc_error ee;
    if (adapter_erc20_total_supply(env->chain.evm, &supply, &ee, a->tokens[t], EVM_BLOCK_ID_AT(to)) != EVM_OK) {
        rep->failed++;
        ops_jobs_line(rep, "deposit_watch: token supply at block %llu: %s", (unsigned long long)to, ee.message);
        return -1;
    }
    for (size_t i = first; i < a->n_seen; i++) {
        if (u256_cmp(&a->seen[i].value, &supply) <= 0)
            continue;
        char val[U256_DEC_MAX], sup[U256_DEC_MAX], th[67];
        vault_store_dec(val, &a->seen[i].value);
        vault_store_dec(sup, &supply);
        hex_encode_0x(th, a->seen[i].tx_hash, 32);
        th[66] = '\0';
        log_error("deposit_watch.bad_chain_data", "reason=transfer_above_supply tx=%s log_index=%llu value=%s "
                  "total_supply=%s", th, (unsigned long long)a->seen[i].log_index, val, sup);
        rep->failed++;
        ops_jobs_line(rep, "deposit_watch: a transfer of %s in %s is above the token's total supply %s (bad chain "
                      "data): nothing recorded", val, th, sup);
        return -1;
    }
    return 0;
}

void deposit_watch_run(const ops_jobs_env *env, ops_jobs_report *rep)
{
    dw_arg *a = calloc(1, sizeof *a);
    char msg[RPC_MESSAGE_MAX];
    evm_rpc_error ee;
    if (!a)
        return;
    a->env = env;
    a->rep = rep;
    a->wallets = calloc(DW_WALLETS_MAX, sizeof *a->wallets);
    a->clients = calloc(DW_WALLETS_MAX, sizeof *a->clients);
    a->seen = calloc(DW_SEEN_MAX, sizeof *a->seen);
    if (!a->wallets || !a->clients || !a->seen)
        goto out;
    uint64_t latest = 0;
    if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, dw_read_body, a) != RPC_OK) {
        rep->failed++;
        ops_jobs_line(rep, "deposit_watch: %s", msg);
        goto out;
    }
    if (evm_rpc_block_number(env->chain.evm, &latest, &ee) != EVM_OK) {
        rep->failed++;
        ops_jobs_line(rep, "deposit_watch: block number: %s", ee.message);
        goto out;
    }
    uint64_t depth = (env->chain.confirmations ? env->chain.confirmations : 1) + 1;
    evm_block_header h;
    if (!a->has_cursor) {
        uint64_t start = latest > env->watch_start_back ? latest - env->watch_start_back : 0;
        if (!dw_header(env, &h, start)) {
            rep->failed++;
            ops_jobs_line(rep, "deposit_watch: block %llu unreadable", (unsigned long long)start);
            goto out;
        }
        a->new_cursor = start;
        memcpy(a->new_hash, h.hash, 32);
        if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, dw_write_body, a) != RPC_OK) {
            rep->failed++;
            ops_jobs_line(rep, "deposit_watch: cursor: %s", msg);
            goto out;
        }
        ops_jobs_line(rep, "deposit_watch: started at block %llu", (unsigned long long)start);
        a->has_cursor = true;
        a->cursor = start;
        memcpy(a->cursor_hash, h.hash, 32);
    }
    /* The cursor's block must still be the chain's. */
    bool reorg = !dw_header(env, &h, a->cursor) || memcmp(h.hash, a->cursor_hash, 32) != 0;
    /* A head below the cursor whose block is still there: the node is
     * behind (or lying); wait for it, and credit nothing on its word. */
    if (!reorg && latest < a->cursor) {
        log_warn("deposit_watch.head_behind", "chain=%llu head=%llu cursor=%llu",
                 (unsigned long long)env->chain.chain_id, (unsigned long long)latest, (unsigned long long)a->cursor);
        rep->skipped++;
        ops_jobs_line(rep, "deposit_watch: the node's head %llu is below the cursor %llu: nothing scanned or credited",
                      (unsigned long long)latest, (unsigned long long)a->cursor);
        goto out;
    }
    uint64_t from = a->cursor + 1, to = latest;
    if (!reorg && from <= latest) {
        if (to - from + 1 > env->watch_max_blocks)
            to = from + env->watch_max_blocks - 1;
        for (size_t t = 0; t < a->n_tokens && a->n_wallets; t++) {
            uint8_t topic[32];
            abi_event_topic(topic, "Transfer(address,address,uint256)");
            evm_log_filter f = {.address = a->tokens[t], .topics = {topic}, .n_topics = 1,
                                .from_block = EVM_BLOCK_ID_AT(from), .to_block = EVM_BLOCK_ID_AT(to)};
            evm_log_list logs = {0};
            if (evm_rpc_get_logs(env->chain.evm, &logs, &ee, &f) != EVM_OK) {
                rep->failed++;
                ops_jobs_line(rep, "deposit_watch: eth_getLogs %llu..%llu: %s", (unsigned long long)from,
                              (unsigned long long)to, ee.message);
                goto out;
            }
            size_t first_seen = a->n_seen;
            for (size_t i = 0; i < logs.count && a->n_seen < DW_SEEN_MAX; i++) {
                const evm_log *l = &logs.items[i];
                abi_transfer_log tl;
                /* Bad chain data: a log the filter did not ask for (another
                 * contract, a block outside the range) means the node is
                 * broken or lying; nothing of this range is recorded. */
                if (memcmp(l->address, a->tokens[t], 20) != 0 || l->block_number < from || l->block_number > to) {
                    char addr[43];
                    hex_encode_0x(addr, l->address, 20);
                    addr[42] = '\0';
                    log_error("deposit_watch.bad_chain_data", "reason=log_outside_filter address=%s block=%llu "
                              "from=%llu to=%llu", addr, (unsigned long long)l->block_number,
                              (unsigned long long)from, (unsigned long long)to);
                    rep->failed++;
                    ops_jobs_line(rep, "deposit_watch: eth_getLogs %llu..%llu answered a log of %s in block %llu "
                                  "outside the filter (bad chain data): nothing recorded", (unsigned long long)from,
                                  (unsigned long long)to, addr, (unsigned long long)l->block_number);
                    evm_log_list_dispose(&logs);
                    goto out;
                }
                if (l->removed || abi_decode_transfer_log(&tl, &l->topics[0][0], l->n_topics, l->data, l->data_len) !=
                                      ABI_OK)
                    continue;
                int w = dw_wallet(a, tl.to);
                if (w < 0)
                    continue;
                dw_transfer *x = &a->seen[a->n_seen++];
                memcpy(x->token, l->address, 20);
                memcpy(x->from, tl.from, 20);
                memcpy(x->to, tl.to, 20);
                u256_from_be32(&x->value, tl.value);
                memcpy(x->tx_hash, l->tx_hash, 32);
                memcpy(x->block_hash, l->block_hash, 32);
                x->log_index = l->log_index;
                x->block_number = l->block_number;
                snprintf(x->client_id, sizeof x->client_id, "%s", a->clients[w]);
            }
            evm_log_list_dispose(&logs);
            /* No honest transfer moves more than the token's supply. */
            if (a->n_seen > first_seen && dw_check_supply(env, rep, a, t, first_seen, to) != 0)
                goto out;
        }
        evm_block_header hf, ht;
        if (!dw_header(env, &hf, from) || !dw_header(env, &ht, to)) {
            rep->failed++;
            ops_jobs_line(rep, "deposit_watch: blocks %llu..%llu unreadable", (unsigned long long)from,
                          (unsigned long long)to);
            goto out;
        }
        reorg = memcmp(hf.parent_hash, a->cursor_hash, 32) != 0;
        /* A log from a block the range no longer holds: scan again next run. */
        for (size_t i = 0; !reorg && i < a->n_seen; i++)
            if (a->seen[i].block_number == to && memcmp(a->seen[i].block_hash, ht.hash, 32) != 0)
                reorg = true;
        if (!reorg) {
            a->new_cursor = to;
            memcpy(a->new_hash, ht.hash, 32);
        }
    }
    if (reorg) {
        a->n_seen = 0;
        a->rewind = true;
        a->new_cursor = a->cursor > depth ? a->cursor - depth : 0;
        if (!dw_header(env, &h, a->new_cursor)) {
            rep->failed++;
            goto out;
        }
        memcpy(a->new_hash, h.hash, 32);
    }
    if (reorg || (from <= latest && a->new_cursor >= from)) {
        if (ledger_run_plain(env->pool, NULL, env->timeout_ms, msg, sizeof msg, dw_write_body, a) != RPC_OK) {
            rep->failed++;
            ops_jobs_line(rep, "deposit_watch: blocks %llu..%llu not recorded: %s", (unsigned long long)from,
                          (unsigned long long)to, msg);
            goto out;
        }
        if (a->moved && !reorg)
            ops_jobs_line(rep, "deposit_watch: scanned blocks %llu..%llu: %zu transfers into custodial wallets",
                          (unsigned long long)from, (unsigned long long)a->new_cursor, a->n_seen);
    }
    dw_credit_deep(env, rep, latest);
out:
    free(a->wallets);
    free(a->clients);
    free(a->seen);
    free(a);
}
