/* migrations/0002_ledger.sql against a real PostgreSQL, seen through the
 * application role coffer-api logs in as: row-level security on every
 * client-owned table, constraints, the deposit/withdrawal state machines,
 * the audit hash chain (recomputed here with libsodium), and what the role
 * may not do. Each test gets a fresh migrated database. */
#include "db_pool.h"
#include "harness.h"
#include "hex.h"
#include "ledger_db.h"
#include "migrate.h"
#include "ops_audit.h"
#include "test_support.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_LEN 36
#define SQL_MAX 8192

/* -- SQL helpers ---------------------------------------------------------- */

__attribute__((format(printf, 3, 0)))
static void vfmt(char *out, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, cap, fmt, ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "ledger test: SQL longer than %zu bytes\n", cap);
        abort();
    }
}

/* Runs a statement; true when it succeeded (the error is printed). */
__attribute__((format(printf, 2, 3)))
static bool ok(PGconn *c, const char *fmt, ...)
{
    char sql[SQL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfmt(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return harness_exec(c, sql) == 0;
}

/* Rows affected by a statement, -1 on error (printed). */
__attribute__((format(printf, 2, 3)))
static long rows(PGconn *c, const char *fmt, ...)
{
    char sql[SQL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfmt(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, sql);
    long n = -1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        n = strtol(PQcmdTuples(r), NULL, 10);
    else
        fprintf(stderr, "ledger test: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return n;
}

/* One value of a one-row, one-column query, as a long; -1 on error. */
__attribute__((format(printf, 2, 3)))
static long num(PGconn *c, const char *fmt, ...)
{
    char sql[SQL_MAX], v[64];
    va_list ap;
    va_start(ap, fmt);
    vfmt(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (harness_query_value(c, v, sizeof v, sql) != 0)
        return -1;
    return strtol(v, NULL, 10);
}

/* One text value of a one-row query into out; false on error. */
__attribute__((format(printf, 4, 5)))
static bool text(PGconn *c, char *out, size_t cap, const char *fmt, ...)
{
    char sql[SQL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfmt(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return harness_query_value(c, out, cap, sql) == 0;
}

/* True when the statement fails with SQLSTATE `state` and, unless needle
 * is NULL, a primary message containing needle. Anything else is printed. */
__attribute__((format(printf, 4, 5)))
static bool fails(PGconn *c, const char *state, const char *needle, const char *fmt, ...)
{
    char sql[SQL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfmt(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, sql);
    bool hit = false;
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        hit = st && strcmp(st, state) == 0 && (!needle || (msg && strstr(msg, needle)));
        if (!hit)
            fprintf(stderr, "ledger test: expected %s%s%s from: %s\n  got %s: %s\n", state,
                    needle ? " containing " : "", needle ? needle : "", sql, st ? st : "?",
                    msg ? msg : "?");
    } else {
        fprintf(stderr, "ledger test: expected %s, but it succeeded: %s\n", state, sql);
    }
    PQclear(r);
    return hit;
}

/* Like fails(), for a complete statement, copying the primary message of
 * the error into msg. */
static bool fails_get(PGconn *c, const char *state, char *msg, size_t cap, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool hit = false;
    msg[0] = '\0';
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(msg, cap, "%s", m ? m : "");
        hit = st && strcmp(st, state) == 0;
        if (!hit)
            fprintf(stderr, "ledger test: expected %s from: %s\n  got %s: %s\n", state, sql, st ? st : "?", msg);
    } else {
        fprintf(stderr, "ledger test: expected %s, but it succeeded: %s\n", state, sql);
    }
    PQclear(r);
    return hit;
}

/* Session-wide scope of an application connection: a client, the platform,
 * or (both NULL/false) nothing. coffer-api sets the same settings per
 * transaction; the policies read them the same way. */
static bool scope(PGconn *c, const char *client, bool platform)
{
    return ok(c, "SELECT set_config('coffer.client_id', '%s', false), set_config('coffer.scope', '%s', false)",
              client ? client : "", platform ? "platform" : "");
}

static void uuid_new(char out[UUID_LEN + 1])
{
    uint8_t b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

/* -- Fixture: two clients, A and B, each with one row in every table ------ */

typedef struct {
    char client[UUID_LEN + 1];
    char vault[UUID_LEN + 1];
    char user[UUID_LEN + 1];
    char position[UUID_LEN + 1];
    char withdrawal1[UUID_LEN + 1]; /* has a reservation */
    char withdrawal2[UUID_LEN + 1]; /* has none */
} fx_client;

typedef struct {
    harness_db db;
    PGconn *own; /* the superuser that migrated the database (owner of everything) */
    PGconn *app; /* coffer_api, a member of coffer_app */
    char protocol1[UUID_LEN + 1];
    char protocol2[UUID_LEN + 1];
    fx_client a, b;
} fixture;

/* Expands {client} {vault} {user} {position} {withdrawal1} {withdrawal2}
 * {protocol1} {protocol2} for x, {new} (a fresh uuid) and {hex} (16 fresh
 * hex digits); any other brace is copied as is. */
static void expand(char *out, size_t cap, const char *tmpl, const fixture *fx, const fx_client *x)
{
    size_t n = 0;
    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        char fresh[UUID_LEN + 1];
        size_t skip = 0;
        static const char *const names[] = {"client", "vault", "user", "position", "withdrawal1",
                                            "withdrawal2", "protocol1", "protocol2", "new", "hex"};
        if (*p == '{') {
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                size_t len = strlen(names[i]);
                if (strncmp(p + 1, names[i], len) == 0 && p[1 + len] == '}') {
                    skip = len + 2;
                    switch (i) {
                    case 0: val = x->client; break;
                    case 1: val = x->vault; break;
                    case 2: val = x->user; break;
                    case 3: val = x->position; break;
                    case 4: val = x->withdrawal1; break;
                    case 5: val = x->withdrawal2; break;
                    case 6: val = fx->protocol1; break;
                    case 7: val = fx->protocol2; break;
                    case 8: uuid_new(fresh); val = fresh; break;
                    default: {
                        uint8_t b[8];
                        randombytes_buf(b, sizeof b);
                        hex_encode(fresh, b, sizeof b);
                        val = fresh;
                    }
                    }
                    break;
                }
            }
        }
        if (val) {
            size_t len = strlen(val);
            if (n + len >= cap)
                abort();
            memcpy(out + n, val, len);
            n += len;
            p += skip;
        } else {
            if (n + 1 >= cap)
                abort();
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

static bool run_tmpl(PGconn *c, const fixture *fx, const fx_client *x, const char *tmpl)
{
    char sql[SQL_MAX];
    expand(sql, sizeof sql, tmpl, fx, x);
    return harness_exec(c, sql) == 0;
}

#define WAD "1000000000000000000"

/* One row (at least) per client-owned table; run as the owner. */
static const char *const fx_client_sql[] = {
    "INSERT INTO client_organizations (id, product_id, company_name, platform_fee_bps, end_user_yield_bps, "
    "environment, wallet_address, wallet_sealed_blob) VALUES ('{client}', 'p{hex}', 'Company', 1000, 7000, "
    "'test', substring(sha256('{client}'::bytea) FROM 1 FOR 20), '\\x01')",
    "INSERT INTO api_keys (client_id, prefix, key_hash, environment) "
    "VALUES ('{client}', 'ck_test_abcdef01', sha256('key-{client}'::bytea), 'test')",
    "INSERT INTO client_vaults (id, client_id, chain_id, token_address, token_symbol, token_decimals, "
    "min_first_deposit, total_shares, idle_assets) VALUES ('{vault}', '{client}', 31337, "
    "'\\x00000000000000000000000000000000000000aa', 'USDC', 6, 1000000, 1100000000000000000, 1100000)",
    "INSERT INTO vault_strategies VALUES ('{vault}', '{client}', 'lending', 7000), "
    "('{vault}', '{client}', 'lp', 3000)",
    "INSERT INTO protocol_allocations (client_id, vault_id, protocol_id) VALUES ('{client}', '{vault}', '{protocol1}')",
    "INSERT INTO end_users (id, client_id, client_user_id, user_type, email) "
    "VALUES ('{user}', '{client}', 'user-1', 'individual', 'u@example.com')",
    "INSERT INTO end_user_vaults (id, client_id, vault_id, end_user_id, kind, shares, reserved_shares) "
    "VALUES ('{position}', '{client}', '{vault}', '{user}', 'user', " WAD ", 100000000000000000)",
    "INSERT INTO end_user_vaults (client_id, vault_id, kind, shares) "
    "VALUES ('{client}', '{vault}', 'client_revenue', 100000000000000000)",
    "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
    "VALUES ('dep_{hex}', '{client}', '{user}', '{vault}', 31337, 'crypto', 1000000, 'INITIATED')",
    "INSERT INTO withdrawals (id, order_id, client_id, end_user_id, vault_id, chain_id, amount, shares_reserved, "
    "destination_type, destination, status) VALUES ('{withdrawal1}', 'wth_{hex}', '{client}', '{user}', "
    "'{vault}', 31337, 100000, 100000000000000000, 'crypto_address', '{\"address\": \"0x01\"}', 'BALANCE_RESERVED')",
    "INSERT INTO withdrawals (id, order_id, client_id, end_user_id, vault_id, chain_id, amount, shares_reserved, "
    "destination_type, destination, status) VALUES ('{withdrawal2}', 'wth_{hex}', '{client}', '{user}', "
    "'{vault}', 31337, 1, 1000000000000, 'bank_account', '{\"iban\": \"x\"}', 'BALANCE_RESERVED')",
    "INSERT INTO reservations (client_id, withdrawal_id, end_user_vault_id, shares) "
    "VALUES ('{client}', '{withdrawal1}', '{position}', 100000000000000000)",
    "INSERT INTO index_history (client_id, vault_id, index_value, total_assets, total_shares) "
    "VALUES ('{client}', '{vault}', " WAD ", 1100000, 1100000000000000000)",
    "INSERT INTO idempotency_records (scope, client_id, key, method, request_hash, response, expires_at) "
    "VALUES ('client:{client}', '{client}', 'key-1', '/coffer.v1.T/Do', sha256('r'::bytea), '\\x', "
    "now() + interval '1 day')",
    "INSERT INTO outbox (client_id, event_type, payload) VALUES ('{client}', 'deposit.created', '{}')",
    "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
    "VALUES ('client:{client}', '{client}', 'deposit.create', 'deposit', 'x')",
    "INSERT INTO chain_transactions (client_id, chain_id, wallet_address, nonce, intent_key, kind, to_address) "
    "VALUES ('{client}', 31337, substring(sha256('{client}'::bytea) FROM 1 FOR 20), 0, 'intent-{hex}', "
    "'transfer', '\\x00000000000000000000000000000000000000bb')",
    "INSERT INTO wallet_nonces (client_id, chain_id, wallet_address, next_nonce) "
    "VALUES ('{client}', 31337, substring(sha256('{client}'::bytea) FROM 1 FOR 20), 1)",
    /* 0004 */
    "INSERT INTO unmatched_transfers (client_id, chain_id, token_address, from_address, wallet_address, amount, "
    "tx_hash, log_index, block_number, block_hash) VALUES ('{client}', 31337, '\\x00000000000000000000000000000000000000aa', "
    "'\\x00000000000000000000000000000000000000bb', substring(sha256('{client}'::bytea) FROM 1 FOR 20), 7, "
    "sha256('fx-{hex}'::bytea), 0, 1, sha256('fx-{hex}'::bytea))",
    "INSERT INTO treasury_positions (client_id, protocol_id, book_balance) VALUES ('{client}', "
    "(SELECT id FROM supported_protocols ORDER BY id DESC LIMIT 1), 5)",
};

static void fx_client_ids(fx_client *x)
{
    uuid_new(x->client);
    uuid_new(x->vault);
    uuid_new(x->user);
    uuid_new(x->position);
    uuid_new(x->withdrawal1);
    uuid_new(x->withdrawal2);
}

/* A fresh migrated database with clients A and B, platform rows, and an
 * application connection with no scope set. Fails the test on error. */
static bool fx_setup(fixture *fx, const char *name)
{
    memset(fx, 0, sizeof *fx);
    if (harness_db_create(&fx->db, name) != 0)
        return false;
    fx->own = harness_connect(&fx->db);
    fx->app = harness_db_connect_app(&fx->db);
    if (!fx->own || !fx->app)
        return false;
    uuid_new(fx->protocol1);
    uuid_new(fx->protocol2);
    fx_client_ids(&fx->a);
    fx_client_ids(&fx->b);
    if (!ok(fx->own, "INSERT INTO supported_protocols (id, name, chain_id, category, adapter, token_address, addresses) "
                     "VALUES ('%s', 'aave_v3_usdc', 31337, 'lending', 'aave_v3', "
                     "'\\x00000000000000000000000000000000000000aa', '{\"pool\": \"0x01\"}'), "
                     "('%s', 'morpho_usdc', 31337, 'lending', 'erc4626', "
                     "'\\x00000000000000000000000000000000000000aa', '{\"vault\": \"0x02\"}')",
            fx->protocol1, fx->protocol2))
        return false;
    const fx_client *xs[2] = {&fx->a, &fx->b};
    for (int i = 0; i < 2; i++)
        for (size_t j = 0; j < sizeof fx_client_sql / sizeof fx_client_sql[0]; j++)
            if (!run_tmpl(fx->own, fx, xs[i], fx_client_sql[j]))
                return false;
    /* Platform rows: an operator's idempotency record and audit entry
     * (client_id NULL), a provider webhook. */
    return ok(fx->own, "INSERT INTO idempotency_records (scope, key, method, request_hash, response, expires_at) "
                       "VALUES ('admin', 'k', '/coffer.v1.Admin/Do', sha256('a'::bytea), '\\x', now() + interval '1 day')") &&
           ok(fx->own, "INSERT INTO audit_log (actor, action, entity_type, entity_id) "
                       "VALUES ('admin', 'protocol.add', 'protocol', 'aave_v3_usdc')") &&
           ok(fx->own, "INSERT INTO webhook_inbox (provider, event_id, body, signature_ok) "
                       "VALUES ('bank', 'evt_1', '\\x7b7d', true)");
}

static void fx_teardown(fixture *fx)
{
    if (fx->app)
        PQfinish(fx->app);
    if (fx->own)
        PQfinish(fx->own);
    harness_db_drop(&fx->db);
}

/* -- Row-level security ---------------------------------------------------- */

typedef struct {
    const char *table;
    const char *owner_col; /* the column RLS compares with the client */
    const char *touch;     /* a SET clause changing nothing; NULL: no UPDATE privilege */
    const char *insert;    /* a valid new row of {client} */
} rls_table;

static const rls_table rls_tables[] = {
    {"client_organizations", "id", "company_name = company_name",
     "INSERT INTO client_organizations (id, product_id, company_name, platform_fee_bps, end_user_yield_bps, "
     "environment) VALUES ('{client}', 'p{hex}', 'New', 0, 0, 'live')"},
    {"api_keys", "client_id", "revoked_at = revoked_at",
     "INSERT INTO api_keys (client_id, prefix, key_hash, environment) "
     "VALUES ('{client}', 'ck_live_0123abcd', sha256('{hex}'::bytea), 'live')"},
    {"client_vaults", "client_id", "token_symbol = token_symbol",
     "INSERT INTO client_vaults (client_id, chain_id, token_address, token_symbol, token_decimals, min_first_deposit) "
     "VALUES ('{client}', 8453, '\\x00000000000000000000000000000000000000cc', 'DAI', 18, 0)"},
    {"vault_strategies", "client_id", "target_bps = target_bps",
     "INSERT INTO vault_strategies VALUES ('{vault}', '{client}', 'staking', 0)"},
    {"protocol_allocations", "client_id", "book_balance = book_balance",
     "INSERT INTO protocol_allocations (client_id, vault_id, protocol_id) VALUES ('{client}', '{vault}', '{protocol2}')"},
    {"end_users", "client_id", "email = email",
     "INSERT INTO end_users (client_id, client_user_id, user_type) VALUES ('{client}', 'user-{hex}', 'business')"},
    {"end_user_vaults", "client_id", "shares = shares",
     "INSERT INTO end_user_vaults (client_id, vault_id, kind) VALUES ('{client}', '{vault}', 'platform_revenue')"},
    {"deposits", "client_id", "sub_status = sub_status",
     "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
     "VALUES ('dep_{hex}', '{client}', '{user}', '{vault}', 31337, 'fiat', 5, 'INITIATED')"},
    {"withdrawals", "client_id", "sub_status = sub_status",
     "INSERT INTO withdrawals (order_id, client_id, end_user_id, vault_id, chain_id, amount, shares_reserved, "
     "destination_type, destination, status) VALUES ('wth_{hex}', '{client}', '{user}', '{vault}', 31337, 1, "
     "1000000000000, 'crypto_address', '{}', 'BALANCE_RESERVED')"},
    {"reservations", "client_id", "status = status",
     "INSERT INTO reservations (client_id, withdrawal_id, end_user_vault_id, shares) "
     "VALUES ('{client}', '{withdrawal2}', '{position}', 1)"},
    {"index_history", "client_id", NULL,
     "INSERT INTO index_history (client_id, vault_id, index_value, total_assets, total_shares) "
     "VALUES ('{client}', '{vault}', " WAD ", 0, 0)"},
    {"idempotency_records", "client_id", "response = response",
     "INSERT INTO idempotency_records (scope, client_id, key, method, request_hash, response, expires_at) "
     "VALUES ('client:{client}', '{client}', 'key-{hex}', '/m', sha256('x'::bytea), '\\x', now() + interval '1 hour')"},
    {"outbox", "client_id", "attempts = attempts",
     "INSERT INTO outbox (client_id, event_type, payload) VALUES ('{client}', 'withdrawal.completed', '{\"a\": 1}')"},
    {"audit_log", "client_id", NULL,
     "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
     "VALUES ('client:{client}', '{client}', 'x', 'y', 'z')"},
    {"chain_transactions", "client_id", "confirmations = confirmations",
     "INSERT INTO chain_transactions (client_id, chain_id, wallet_address, nonce, intent_key, kind, to_address) "
     "VALUES ('{client}', 31337, '\\x00000000000000000000000000000000000000dd', 7, 'intent-{hex}', 'approve', "
     "'\\x00000000000000000000000000000000000000ee')"},
    {"wallet_nonces", "client_id", "next_nonce = next_nonce",
     "INSERT INTO wallet_nonces (client_id, chain_id, wallet_address, next_nonce) "
     "VALUES ('{client}', 1, substring(sha256('{hex}'::bytea) FROM 1 FOR 20), 0)"},
    /* 0004 */
    {"unmatched_transfers", "client_id", "note = note",
     "INSERT INTO unmatched_transfers (client_id, chain_id, token_address, from_address, wallet_address, amount, "
     "tx_hash, log_index, block_number, block_hash) VALUES ('{client}', 1, '\\x00000000000000000000000000000000000000aa', "
     "'\\x00000000000000000000000000000000000000bb', '\\x00000000000000000000000000000000000000cc', 5, "
     "sha256('{hex}'::bytea), 0, 1, sha256('{hex}'::bytea))"},
    {"treasury_positions", "client_id", "book_balance = book_balance",
     "INSERT INTO treasury_positions (client_id, protocol_id, book_balance) VALUES ('{client}', "
     "(SELECT id FROM supported_protocols ORDER BY id LIMIT 1), 0)"},
};

/* Every client-owned table of the migration is in rls_tables, and has RLS
 * enabled and forced: a table added later without them fails here. */
static void test_rls_every_client_table_forced(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "rls_forced"));
    size_t n = sizeof rls_tables / sizeof rls_tables[0];
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM information_schema.columns "
                                "WHERE table_schema = 'public' AND column_name = 'client_id'"),
                    (long)n - 1); /* client_organizations is keyed by id */
    for (size_t i = 0; i < n; i++) {
        char v[16];
        CU_ASSERT(text(fx.own, v, sizeof v,
                       "SELECT relrowsecurity::text || relforcerowsecurity::text FROM pg_class "
                       "WHERE oid = 'public.%s'::regclass", rls_tables[i].table));
        if (strcmp(v, "truetrue") != 0)
            fprintf(stderr, "ledger test: %s: row level security %s\n", rls_tables[i].table, v);
        CU_ASSERT_STRING_EQUAL(v, "truetrue");
        CU_ASSERT(num(fx.own, "SELECT count(*) FROM pg_policies WHERE tablename = '%s'", rls_tables[i].table) >= 1);
    }
    /* The platform tables too, and nothing in public without RLS except the
     * two read-only ones. */
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
                                "WHERE s.nspname = 'public' AND c.relkind = 'r' AND NOT c.relforcerowsecurity"),
                    2);
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM pg_class WHERE relname IN ('schema_migrations', "
                                "'state_transitions') AND NOT relrowsecurity"), 2);
    fx_teardown(&fx);
}

static void test_rls_isolates_clients(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "rls_iso"));
    const char *A = fx.a.client, *B = fx.b.client;
    for (size_t i = 0; i < sizeof rls_tables / sizeof rls_tables[0]; i++) {
        const rls_table *t = &rls_tables[i];
        long count_a = num(fx.own, "SELECT count(*) FROM %s WHERE %s = '%s'", t->table, t->owner_col, A);
        long count_b = num(fx.own, "SELECT count(*) FROM %s WHERE %s = '%s'", t->table, t->owner_col, B);
        long total = num(fx.own, "SELECT count(*) FROM %s", t->table);
        if (count_a <= 0 || count_b <= 0)
            fprintf(stderr, "ledger test: %s: fixture rows A=%ld B=%ld\n", t->table, count_a, count_b);
        CU_ASSERT(count_a > 0);
        CU_ASSERT(count_b > 0);

        /* No setting: nothing. */
        CU_ASSERT_FATAL(scope(fx.app, NULL, false));
        CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM %s", t->table), 0);

        /* Client A: A's rows only. */
        CU_ASSERT_FATAL(scope(fx.app, A, false));
        CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM %s", t->table), count_a);
        CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM %s WHERE %s = '%s'", t->table, t->owner_col, B), 0);
        if (t->touch) {
            CU_ASSERT_EQUAL(rows(fx.app, "UPDATE %s SET %s WHERE %s = '%s'", t->table, t->touch, t->owner_col, B), 0);
            CU_ASSERT_EQUAL(rows(fx.app, "UPDATE %s SET %s WHERE %s = '%s'", t->table, t->touch, t->owner_col, A),
                            count_a);
        } else {
            CU_ASSERT(fails(fx.app, "42501", "permission denied", "UPDATE %s SET %s = %s WHERE %s = '%s'",
                            t->table, t->owner_col, t->owner_col, t->owner_col, A));
        }

        /* A row of B's, written in A's scope, is refused by the policy;
         * the same row in B's own scope is accepted (then rolled back). For
         * client_organizations the "B" is a client that does not exist yet. */
        fx_client target = fx.b;
        if (strcmp(t->table, "client_organizations") == 0)
            uuid_new(target.client);
        char sql[SQL_MAX];
        expand(sql, sizeof sql, t->insert, &fx, &target);
        CU_ASSERT(fails(fx.app, "42501", "row-level security", "%s", sql));
        CU_ASSERT(ok(fx.app, "BEGIN"));
        CU_ASSERT(ok(fx.app, "SELECT set_config('coffer.client_id', '%s', true)", target.client));
        CU_ASSERT(ok(fx.app, "%s", sql));
        CU_ASSERT(ok(fx.app, "ROLLBACK"));

        /* Platform scope: everything. */
        CU_ASSERT_FATAL(scope(fx.app, NULL, true));
        CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM %s", t->table), total);
    }
    fx_teardown(&fx);
}

/* Settings are per transaction in coffer-api: after COMMIT the client's
 * rows are gone again (fail closed), and an operator's rows (client_id
 * NULL) never show in a client's scope. */
static void test_rls_fail_closed_and_platform_rows(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "rls_closed"));
    CU_ASSERT(ok(fx.app, "BEGIN"));
    CU_ASSERT(ok(fx.app, "SELECT set_config('coffer.client_id', '%s', true)", fx.a.client));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM deposits"), 1);
    CU_ASSERT(ok(fx.app, "COMMIT"));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM deposits"), 0);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM client_organizations"), 0);

    /* A malformed client setting is an error, not a wider view. */
    CU_ASSERT(ok(fx.app, "SELECT set_config('coffer.client_id', 'not-a-uuid', false)"));
    CU_ASSERT(fails(fx.app, "22P02", "uuid", "SELECT count(*) FROM deposits"));
    CU_ASSERT(scope(fx.app, NULL, false));
    /* A scope other than 'platform' is no scope. */
    CU_ASSERT(ok(fx.app, "SELECT set_config('coffer.scope', 'PLATFORM', false)"));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM deposits"), 0);

    CU_ASSERT(scope(fx.app, fx.a.client, false));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM idempotency_records"), 1);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM idempotency_records WHERE client_id IS NULL"), 0);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM audit_log WHERE client_id IS NULL"), 0);
    CU_ASSERT(fails(fx.app, "42501", "row-level security",
                    "INSERT INTO idempotency_records (scope, key, method, request_hash, response, expires_at) "
                    "VALUES ('admin', 'k2', '/m', sha256('a'::bytea), '\\x', now() + interval '1 day')"));
    CU_ASSERT(fails(fx.app, "42501", "row-level security",
                    "INSERT INTO audit_log (actor, action, entity_type, entity_id) VALUES ('system', 'a', 'b', 'c')"));
    CU_ASSERT(scope(fx.app, NULL, true));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM idempotency_records WHERE client_id IS NULL"), 1);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM audit_log WHERE client_id IS NULL"), 1);
    fx_teardown(&fx);
}

/* supported_protocols: read by anyone, written in platform scope only;
 * webhook_inbox: platform scope only. */
static void test_rls_platform_tables(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "rls_platform"));
    const char *ins = "INSERT INTO supported_protocols (name, chain_id, category, adapter, token_address) "
                      "VALUES ('comet_usdc', 31337, 'lending', 'compound_v3', "
                      "'\\x00000000000000000000000000000000000000aa')";
    CU_ASSERT(scope(fx.app, NULL, false));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM supported_protocols"), 2);
    CU_ASSERT(fails(fx.app, "42501", "row-level security", "%s", ins));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM webhook_inbox"), 0);
    CU_ASSERT(scope(fx.app, fx.a.client, false));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM supported_protocols"), 2);
    CU_ASSERT(fails(fx.app, "42501", "row-level security", "%s", ins));
    CU_ASSERT_EQUAL(rows(fx.app, "UPDATE supported_protocols SET apy_bps = 500"), 0);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM webhook_inbox"), 0);
    CU_ASSERT(fails(fx.app, "42501", "row-level security",
                    "INSERT INTO webhook_inbox (provider, event_id, body, signature_ok) VALUES ('bank', 'e2', '\\x', true)"));
    CU_ASSERT(scope(fx.app, NULL, true));
    CU_ASSERT(ok(fx.app, "%s", ins));
    CU_ASSERT_EQUAL(rows(fx.app, "UPDATE supported_protocols SET apy_bps = 500"), 3);
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM webhook_inbox"), 1);
    CU_ASSERT_EQUAL(rows(fx.app, "UPDATE webhook_inbox SET status = 'processed', processed_at = now()"), 1);
    fx_teardown(&fx);
}

/* Authentication finds a key's client before any scope is set; the lookup
 * function returns that one row and widens nothing else. */
static void test_api_key_lookup(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "key_lookup"));
    char v[64];
    CU_ASSERT(scope(fx.app, NULL, false));
    CU_ASSERT(text(fx.app, v, sizeof v, "SELECT client_id FROM coffer_api_key_lookup(sha256('key-%s'::bytea))",
                   fx.b.client));
    CU_ASSERT_STRING_EQUAL(v, fx.b.client);
    CU_ASSERT(scope(fx.app, fx.a.client, false));
    CU_ASSERT(text(fx.app, v, sizeof v, "SELECT client_status FROM coffer_api_key_lookup(sha256('key-%s'::bytea))",
                   fx.b.client));
    CU_ASSERT_STRING_EQUAL(v, "active");
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM coffer_api_key_lookup(sha256('nope'::bytea))"), 0);
    /* The function's platform scope does not leak into the transaction. */
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM api_keys"), 1);
    CU_ASSERT(text(fx.app, v, sizeof v, "SELECT coalesce(current_setting('coffer.scope', true), '<unset>')"));
    CU_ASSERT_STRING_EQUAL(v, "");
    fx_teardown(&fx);
}

/* -- Constraints ----------------------------------------------------------- */

static void test_constraints(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "constraints"));
    PGconn *c = fx.app;
    const fx_client *A = &fx.a;
    char sql[SQL_MAX];
    CU_ASSERT_FATAL(scope(c, NULL, true));

    /* Negative money and shares. */
    const char *amounts[] = {"-5", "0", "5"};
    for (int i = 0; i < 3; i++) {
        char tmpl[SQL_MAX];
        snprintf(tmpl, sizeof tmpl,
                 "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
                 "VALUES ('dep_{hex}', '{client}', '{user}', '{vault}', 31337, 'crypto', %s, 'INITIATED')",
                 amounts[i]);
        expand(sql, sizeof sql, tmpl, &fx, A);
        if (i < 2) {
            CU_ASSERT(fails(c, "23514", "deposits_amount_check", "%s", sql));
        } else {
            CU_ASSERT(ok(c, "%s", sql));
        }
    }
    CU_ASSERT(fails(c, "23514", "idle_assets", "UPDATE client_vaults SET idle_assets = -1 WHERE id = '%s'", A->vault));
    CU_ASSERT(fails(c, "23514", "shares", "UPDATE end_user_vaults SET shares = -1 WHERE id = '%s'", A->position));
    CU_ASSERT(fails(c, "23514", "book_balance", "UPDATE protocol_allocations SET book_balance = -1"));
    CU_ASSERT(fails(c, "23514", "current_index", "UPDATE client_vaults SET current_index = 0 WHERE id = '%s'", A->vault));

    /* Duplicate order ids. */
    char order[64];
    CU_ASSERT(text(c, order, sizeof order, "SELECT order_id FROM deposits WHERE client_id = '%s' LIMIT 1", A->client));
    CU_ASSERT(fails(c, "23505", "deposits_order_id_key",
                    "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
                    "VALUES ('%s', '%s', '%s', '%s', 31337, 'crypto', 1, 'INITIATED')",
                    order, A->client, A->user, A->vault));
    CU_ASSERT(fails(c, "23514", "order_id",
                    "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
                    "VALUES ('DEP_X', '%s', '%s', '%s', 31337, 'crypto', 1, 'INITIATED')", A->client, A->user, A->vault));
    CU_ASSERT(text(c, order, sizeof order, "SELECT order_id FROM withdrawals WHERE client_id = '%s' LIMIT 1", A->client));
    CU_ASSERT(fails(c, "23505", "withdrawals_order_id_key",
                    "INSERT INTO withdrawals (order_id, client_id, end_user_id, vault_id, chain_id, amount, "
                    "shares_reserved, destination_type, destination, status) VALUES ('%s', '%s', '%s', '%s', 31337, "
                    "1, 1, 'crypto_address', '{}', 'BALANCE_RESERVED')", order, A->client, A->user, A->vault));

    /* One vault per client x chain x token (and symbol). */
#define VAULT_INS "INSERT INTO client_vaults (client_id, chain_id, token_address, token_symbol, " \
                  "token_decimals, min_first_deposit) VALUES ('%s', %s, '\\x%s', '%s', 6, 0)"
    CU_ASSERT(fails(c, "23505", "token_address", VAULT_INS, A->client, "31337",
                    "00000000000000000000000000000000000000aa", "USDC2"));
    CU_ASSERT(fails(c, "23505", "token_symbol", VAULT_INS, A->client, "31337",
                    "00000000000000000000000000000000000000ab", "USDC"));
    CU_ASSERT(ok(c, VAULT_INS, A->client, "1", "00000000000000000000000000000000000000aa", "USDC"));
    CU_ASSERT(fails(c, "23514", "token_address", VAULT_INS, A->client, "2", "00aa", "USDC"));
#undef VAULT_INS
    CU_ASSERT(fails(c, "23514", "token_decimals",
                    "INSERT INTO client_vaults (client_id, chain_id, token_address, token_symbol, token_decimals, "
                    "min_first_deposit) VALUES ('%s', 3, '\\x00000000000000000000000000000000000000aa', 'X', 19, 0)",
                    A->client));
    /* A child row cannot point at another client's parent. */
    CU_ASSERT(fails(c, "23503", NULL,
                    "INSERT INTO end_user_vaults (client_id, vault_id, kind) VALUES ('%s', '%s', 'platform_revenue')",
                    A->client, fx.b.vault));

    /* Reserved shares never exceed shares. */
    CU_ASSERT(fails(c, "23514", "end_user_vaults_reserved_le_shares",
                    "UPDATE end_user_vaults SET reserved_shares = shares + 1 WHERE id = '%s'", A->position));
    CU_ASSERT_EQUAL(rows(c, "UPDATE end_user_vaults SET reserved_shares = shares WHERE id = '%s'", A->position), 1);
    /* A user position needs a user; revenue accounts must not have one, and
     * each exists once per vault. */
    CU_ASSERT(fails(c, "23514", "end_user_vaults_user_kind", "INSERT INTO end_user_vaults (client_id, vault_id, kind) "
                                      "VALUES ('%s', '%s', 'user')", A->client, A->vault));
    CU_ASSERT(fails(c, "23505", "end_user_vaults_revenue_uniq",
                    "INSERT INTO end_user_vaults (client_id, vault_id, kind) VALUES ('%s', '%s', 'client_revenue')",
                    A->client, A->vault));
    CU_ASSERT(fails(c, "23505", "end_user_vaults_user_uniq",
                    "INSERT INTO end_user_vaults (client_id, vault_id, end_user_id, kind) VALUES ('%s', '%s', '%s', 'user')",
                    A->client, A->vault, A->user));

    /* Fees: at most 100 % together. */
    CU_ASSERT(fails(c, "23514", "client_organizations_fees_le_100",
                    "UPDATE client_organizations SET platform_fee_bps = 3001 WHERE id = '%s'", A->client));
    /* Idempotency scope and client agree; audit actor and client agree. */
    CU_ASSERT(fails(c, "23514", "idempotency_records_scope_client",
                    "INSERT INTO idempotency_records (scope, key, method, request_hash, response, expires_at) "
                    "VALUES ('client:%s', 'k9', '/m', sha256('a'::bytea), '\\x', now() + interval '1 day')", A->client));
    CU_ASSERT(fails(c, "23514", "idempotency_records_scope_client",
                    "INSERT INTO idempotency_records (scope, client_id, key, method, request_hash, response, expires_at) "
                    "VALUES ('client:%s', '%s', 'k9', '/m', sha256('a'::bytea), '\\x', now() + interval '1 day')",
                    A->client, fx.b.client));
    CU_ASSERT(fails(c, "23514", "audit_log_actor_client",
                    "INSERT INTO audit_log (actor, action, entity_type, entity_id) VALUES ('client:%s', 'a', 'b', 'c')",
                    A->client));
    fx_teardown(&fx);
}

static void test_strategy_sum_checked_at_commit(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "strategies"));
    PGconn *c = fx.app;
    char v2[64];
    CU_ASSERT_FATAL(scope(c, fx.a.client, false));
    CU_ASSERT_FATAL(text(c, v2, sizeof v2,
                         "INSERT INTO client_vaults (client_id, chain_id, token_address, token_symbol, token_decimals, "
                         "min_first_deposit) VALUES ('%s', 10, '\\x00000000000000000000000000000000000000aa', 'USDC', "
                         "6, 0) RETURNING id", fx.a.client));
    /* 9000: each statement passes, the COMMIT does not. */
    CU_ASSERT(ok(c, "BEGIN"));
    CU_ASSERT(ok(c, "INSERT INTO vault_strategies VALUES ('%s', '%s', 'lending', 6000)", v2, fx.a.client));
    CU_ASSERT(ok(c, "INSERT INTO vault_strategies VALUES ('%s', '%s', 'lp', 3000)", v2, fx.a.client));
    CU_ASSERT(fails(c, "23514", "sum to 9000 bps", "COMMIT"));
    CU_ASSERT_EQUAL(PQtransactionStatus(c), PQTRANS_IDLE);
    CU_ASSERT_EQUAL(num(c, "SELECT count(*) FROM vault_strategies WHERE vault_id = '%s'", v2), 0);
    /* 10000 in two statements: accepted. */
    CU_ASSERT(ok(c, "BEGIN"));
    CU_ASSERT(ok(c, "INSERT INTO vault_strategies VALUES ('%s', '%s', 'lending', 6000)", v2, fx.a.client));
    CU_ASSERT(ok(c, "INSERT INTO vault_strategies VALUES ('%s', '%s', 'lp', 4000)", v2, fx.a.client));
    CU_ASSERT(ok(c, "COMMIT"));
    CU_ASSERT_EQUAL(num(c, "SELECT sum(target_bps) FROM vault_strategies WHERE vault_id = '%s'", v2), 10000);
    /* Changing one row alone breaks the sum; moving bps between two rows
     * in one transaction keeps it. */
    CU_ASSERT(fails(c, "23514", "sum to 9000 bps",
                    "UPDATE vault_strategies SET target_bps = 5000 WHERE vault_id = '%s' AND category = 'lending'", v2));
    CU_ASSERT(ok(c, "BEGIN"));
    CU_ASSERT(ok(c, "UPDATE vault_strategies SET target_bps = 5000 WHERE vault_id = '%s' AND category = 'lending'", v2));
    CU_ASSERT(ok(c, "UPDATE vault_strategies SET target_bps = 5000 WHERE vault_id = '%s' AND category = 'lp'", v2));
    CU_ASSERT(ok(c, "COMMIT"));
    /* The check sees every row of the vault even when the transaction's
     * scope changed before COMMIT (it reads in platform scope). */
    CU_ASSERT(ok(c, "BEGIN"));
    CU_ASSERT(ok(c, "UPDATE vault_strategies SET target_bps = 1000 WHERE vault_id = '%s' AND category = 'lp'", v2));
    CU_ASSERT(ok(c, "SELECT set_config('coffer.client_id', '%s', true)", fx.b.client));
    CU_ASSERT(fails(c, "23514", "sum to 6000 bps", "COMMIT"));
    CU_ASSERT_EQUAL(num(c, "SELECT sum(target_bps) FROM vault_strategies WHERE vault_id = '%s'", v2), 10000);
    fx_teardown(&fx);
}

/* One Transfer log (chain, tx hash, log index) credits one deposit. */
static void test_transfer_log_credits_once(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "transfer_log"));
    PGconn *c = fx.app;
    CU_ASSERT_FATAL(scope(c, NULL, true));
    const char *tx = "\\x1111111111111111111111111111111111111111111111111111111111111111";
#define INS "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, " \
            "status, tx_hash, log_index) VALUES ('dep_%s', '%s', '%s', '%s', 31337, 'crypto', 1, " \
            "'INITIATED', '%s', %d)"
    CU_ASSERT(ok(c, INS, "aaaaaaaaaa", fx.a.client, fx.a.user, fx.a.vault, tx, 3));
    /* The same log again, even for another client: refused. */
    CU_ASSERT(fails(c, "23505", "deposits_transfer_log_uniq", INS, "bbbbbbbbbb", fx.a.client, fx.a.user,
                    fx.a.vault, tx, 3));
    CU_ASSERT(fails(c, "23505", "deposits_transfer_log_uniq", INS, "cccccccccc", fx.b.client, fx.b.user,
                    fx.b.vault, tx, 3));
    CU_ASSERT(fails(c, "23505", "deposits_transfer_log_uniq",
                    "UPDATE deposits SET tx_hash = '%s', log_index = 3 WHERE client_id = '%s' AND tx_hash IS NULL",
                    tx, fx.b.client));
    /* Another log of the same transaction is another transfer. */
    CU_ASSERT(ok(c, INS, "dddddddddd", fx.a.client, fx.a.user, fx.a.vault, tx, 4));
#undef INS
    /* Hash and log index come together. */
    CU_ASSERT(fails(c, "23514", "deposits_transfer_log_pair", "UPDATE deposits SET log_index = 1 WHERE client_id = '%s' AND tx_hash IS NULL",
                    fx.b.client));
    fx_teardown(&fx);
}

/* -- State machines ---------------------------------------------------------- */

typedef struct {
    const char *entity, *from, *to;
} transition;

/* The table of docs/ledger.md. */
static const transition expected_transitions[] = {
    {"deposit_crypto", "", "INITIATED"},
    {"deposit_crypto", "INITIATED", "PROVIDER_CONFIRMING"},
    {"deposit_crypto", "PROVIDER_CONFIRMING", "COMPLETED"},
    {"deposit_crypto", "INITIATED", "COMPLETED"},
    {"deposit_crypto", "INITIATED", "EXPIRED"},
    {"deposit_crypto", "INITIATED", "FAILED"},
    {"deposit_crypto", "PROVIDER_CONFIRMING", "FAILED"},
    {"deposit_crypto", "PROVIDER_CONFIRMING", "INITIATED"}, /* 0004: a reorg took the transfer back */
    {"deposit_fiat", "", "INITIATED"},
    {"deposit_fiat", "INITIATED", "SENT_TO_PROVIDER"},
    {"deposit_fiat", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING"},
    {"deposit_fiat", "PROVIDER_PROCESSING", "PROVIDER_CONFIRMING"},
    {"deposit_fiat", "PROVIDER_CONFIRMING", "COMPLETED"},
    {"deposit_fiat", "INITIATED", "FAILED"},
    {"deposit_fiat", "SENT_TO_PROVIDER", "FAILED"},
    {"deposit_fiat", "PROVIDER_PROCESSING", "FAILED"},
    {"deposit_fiat", "PROVIDER_CONFIRMING", "FAILED"},
    {"deposit_fiat", "INITIATED", "EXPIRED"},
    {"deposit_fiat", "SENT_TO_PROVIDER", "EXPIRED"},
    {"deposit_fiat", "PROVIDER_PROCESSING", "EXPIRED"},
    {"deposit_fiat", "PROVIDER_CONFIRMING", "EXPIRED"},
    {"withdrawal", "", "BALANCE_RESERVED"},
    {"withdrawal", "BALANCE_RESERVED", "CANCELLED"},
    {"withdrawal", "BALANCE_RESERVED", "FAILED"},
    {"withdrawal", "BALANCE_RESERVED", "PROVIDER_PROCESSING"},
    {"withdrawal", "PROVIDER_PROCESSING", "COMPLETED"},
    {"withdrawal", "PROVIDER_PROCESSING", "FAILED"},
    {"withdrawal", "FAILED", "COMPENSATING"},
    {"withdrawal", "COMPENSATING", "COMPENSATED"},
};
#define N_TRANSITIONS (sizeof expected_transitions / sizeof expected_transitions[0])

static const char *const all_states[] = {
    "INITIATED", "VALIDATING", "BALANCE_RESERVED", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING",
    "PROVIDER_CONFIRMING", "COMPLETED", "FAILED", "EXPIRED", "COMPENSATING", "COMPENSATED", "CANCELLED",
};

static int transition_index(const char *entity, const char *from, const char *to)
{
    for (size_t i = 0; i < N_TRANSITIONS; i++)
        if (strcmp(expected_transitions[i].entity, entity) == 0 && strcmp(expected_transitions[i].from, from) == 0 &&
            strcmp(expected_transitions[i].to, to) == 0)
            return (int)i;
    return -1;
}

/* A path from an initial state through allowed transitions to every state
 * each entity can be in (FAILED twice for withdrawals: before and after the
 * burn). */
typedef struct {
    const char *entity;
    const char *path[6];
} state_path;

static const state_path state_paths[] = {
    {"deposit_crypto", {"INITIATED"}},
    {"deposit_crypto", {"INITIATED", "PROVIDER_CONFIRMING"}},
    {"deposit_crypto", {"INITIATED", "PROVIDER_CONFIRMING", "COMPLETED"}},
    {"deposit_crypto", {"INITIATED", "COMPLETED"}},
    {"deposit_crypto", {"INITIATED", "EXPIRED"}},
    {"deposit_crypto", {"INITIATED", "FAILED"}},
    {"deposit_fiat", {"INITIATED"}},
    {"deposit_fiat", {"INITIATED", "SENT_TO_PROVIDER"}},
    {"deposit_fiat", {"INITIATED", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING"}},
    {"deposit_fiat", {"INITIATED", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING", "PROVIDER_CONFIRMING"}},
    {"deposit_fiat", {"INITIATED", "SENT_TO_PROVIDER", "PROVIDER_PROCESSING", "PROVIDER_CONFIRMING", "COMPLETED"}},
    {"deposit_fiat", {"INITIATED", "FAILED"}},
    {"deposit_fiat", {"INITIATED", "EXPIRED"}},
    {"withdrawal", {"BALANCE_RESERVED"}},
    {"withdrawal", {"BALANCE_RESERVED", "CANCELLED"}},
    {"withdrawal", {"BALANCE_RESERVED", "FAILED"}},
    {"withdrawal", {"BALANCE_RESERVED", "PROVIDER_PROCESSING"}},
    {"withdrawal", {"BALANCE_RESERVED", "PROVIDER_PROCESSING", "COMPLETED"}},
    {"withdrawal", {"BALANCE_RESERVED", "PROVIDER_PROCESSING", "FAILED"}},
    {"withdrawal", {"BALANCE_RESERVED", "PROVIDER_PROCESSING", "FAILED", "COMPENSATING"}},
    {"withdrawal", {"BALANCE_RESERVED", "PROVIDER_PROCESSING", "FAILED", "COMPENSATING", "COMPENSATED"}},
};

/* The UPDATE that moves a row to `to`, with the columns the table's checks
 * require in that state. */
static void state_update(char *out, size_t cap, const char *entity, const char *id, const char *to)
{
    const char *extra = "";
    bool deposit = strncmp(entity, "deposit", 7) == 0;
    if (deposit && strcmp(to, "COMPLETED") == 0)
        extra = ", credited_amount = amount, shares_minted = amount * 1000000000000, index_at_credit = " WAD
                ", completed_at = now()";
    else if (!deposit && strcmp(to, "PROVIDER_PROCESSING") == 0)
        extra = ", shares_burned = shares_reserved, index_at_burn = " WAD;
    else if (!deposit && strcmp(to, "COMPLETED") == 0)
        extra = ", completed_at = now(), shares_burned = shares_reserved, index_at_burn = " WAD;
    snprintf(out, cap, "UPDATE %s SET status = '%s'%s WHERE id = '%s'", deposit ? "deposits" : "withdrawals", to,
             extra, id);
}

static bool state_insert(PGconn *c, const fixture *fx, const char *entity, const char *status, char *id_out)
{
    char tmpl[SQL_MAX], sql[SQL_MAX];
    if (strcmp(entity, "withdrawal") == 0)
        snprintf(tmpl, sizeof tmpl,
                 "INSERT INTO withdrawals (order_id, client_id, end_user_id, vault_id, chain_id, amount, "
                 "shares_reserved, destination_type, destination, status) VALUES ('wth_{hex}', '{client}', "
                 "'{user}', '{vault}', 31337, 10, 10000000000000, 'crypto_address', '{}', '%s') RETURNING id",
                 status);
    else
        snprintf(tmpl, sizeof tmpl,
                 "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
                 "VALUES ('dep_{hex}', '{client}', '{user}', '{vault}', 31337, '%s', 10, '%s') RETURNING id",
                 strcmp(entity, "deposit_fiat") == 0 ? "fiat" : "crypto", status);
    expand(sql, sizeof sql, tmpl, fx, &fx->a);
    return harness_query_value(c, id_out, UUID_LEN + 1, sql) == 0;
}

/* The migration's table is exactly the documented one. */
static void test_state_table_matches_docs(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "state_table"));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM state_transitions"), (long)N_TRANSITIONS);
    for (size_t i = 0; i < N_TRANSITIONS; i++)
        CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM state_transitions WHERE entity = '%s' AND "
                                    "from_state = '%s' AND to_state = '%s'", expected_transitions[i].entity,
                            expected_transitions[i].from, expected_transitions[i].to), 1);
    /* The application reads it but cannot change it. */
    CU_ASSERT(fails(fx.app, "42501", "permission denied", "DELETE FROM state_transitions"));
    CU_ASSERT(fails(fx.app, "42501", "permission denied",
                    "INSERT INTO state_transitions VALUES ('withdrawal', 'COMPLETED', 'BALANCE_RESERVED')"));
    fx_teardown(&fx);
}

/* Every allowed transition is accepted; every other status change from
 * every reachable state is refused with check_violation naming entity,
 * from and to. */
static void test_state_transitions_exhaustive(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "state_all"));
    PGconn *c = fx.app;
    bool exercised[N_TRANSITIONS] = {false};
    unsigned refused = 0;
    char sql[SQL_MAX], id[UUID_LEN + 1];
    CU_ASSERT_FATAL(scope(c, fx.a.client, false)); /* as a client's call would */
    CU_ASSERT_FATAL(ok(c, "BEGIN"));
    for (size_t p = 0; p < sizeof state_paths / sizeof state_paths[0]; p++) {
        const state_path *sp = &state_paths[p];
        bool deposit = strncmp(sp->entity, "deposit", 7) == 0;
        if (!state_insert(c, &fx, sp->entity, sp->path[0], id)) {
            CU_FAIL("insert in the initial state");
            continue;
        }
        int t0 = transition_index(sp->entity, "", sp->path[0]);
        CU_ASSERT(t0 >= 0);
        if (t0 >= 0)
            exercised[t0] = true;
        size_t len = 1;
        for (; len < 6 && sp->path[len]; len++) {
            state_update(sql, sizeof sql, sp->entity, id, sp->path[len]);
            CU_ASSERT(rows(c, "%s", sql) == 1);
        }
        const char *from = sp->path[len - 1];
        for (size_t s = 0; s < sizeof all_states / sizeof all_states[0]; s++) {
            const char *to = all_states[s];
            if (strcmp(to, from) == 0)
                continue;
            state_update(sql, sizeof sql, sp->entity, id, to);
            CU_ASSERT_FATAL(ok(c, "SAVEPOINT s"));
            int ti = transition_index(sp->entity, from, to);
            bool unburned_failure = !deposit && strcmp(from, "FAILED") == 0 && len == 2;
            if (ti >= 0 && unburned_failure) {
                /* FAILED before the burn: nothing to compensate (final). */
                CU_ASSERT(fails(c, "23514", "withdrawals_burned_states", "%s", sql));
            } else if (ti >= 0) {
                long n = rows(c, "%s", sql);
                CU_ASSERT_EQUAL(n, 1);
                if (n == 1)
                    exercised[ti] = true;
            } else {
                /* "<entity> <order id>: illegal state transition <from> -> <to>" */
                char msg[512], needle[200];
                CU_ASSERT(fails_get(c, "23514", msg, sizeof msg, sql));
                snprintf(needle, sizeof needle, "illegal state transition %s -> %s", from, to);
                bool named = strncmp(msg, sp->entity, strlen(sp->entity)) == 0 && strstr(msg, needle);
                if (!named)
                    fprintf(stderr, "ledger test: %s -> %s refused with: %s\n", from, to, msg);
                CU_ASSERT(named);
                refused++;
            }
            CU_ASSERT_FATAL(ok(c, "ROLLBACK TO SAVEPOINT s"));
        }
    }
    for (size_t i = 0; i < N_TRANSITIONS; i++) {
        if (!exercised[i])
            fprintf(stderr, "ledger test: transition not exercised: %s '%s' -> %s\n", expected_transitions[i].entity,
                    expected_transitions[i].from, expected_transitions[i].to);
        CU_ASSERT(exercised[i]);
    }
    fprintf(stderr, "ledger test: %u illegal transitions refused\n", refused);
    CU_ASSERT(refused > 150);
    CU_ASSERT(ok(c, "ROLLBACK"));
    fx_teardown(&fx);
}

/* The brief's named samples, and rows that start in a non-initial state. */
static void test_state_illegal_samples(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "state_samples"));
    PGconn *c = fx.app;
    char id[UUID_LEN + 1], sql[SQL_MAX];
    CU_ASSERT_FATAL(scope(c, NULL, true));

    CU_ASSERT_FATAL(state_insert(c, &fx, "deposit_crypto", "INITIATED", id));
    state_update(sql, sizeof sql, "deposit_crypto", id, "COMPLETED");
    CU_ASSERT(rows(c, "%s", sql) == 1);
    CU_ASSERT(fails(c, "23514", "illegal state transition COMPLETED -> INITIATED",
                    "UPDATE deposits SET status = 'INITIATED' WHERE id = '%s'", id));
    CU_ASSERT(fails(c, "23514", "deposit_crypto", "UPDATE deposits SET status = 'INITIATED' WHERE id = '%s'", id));
    /* Other columns of a final row may still be written; identity may not. */
    CU_ASSERT_EQUAL(rows(c, "UPDATE deposits SET sub_status = 'BLOCKCHAIN_CONFIRMATION' WHERE id = '%s'", id), 1);
    CU_ASSERT(fails(c, "23514", "never change", "UPDATE deposits SET amount = amount + 1 WHERE id = '%s'", id));
    CU_ASSERT(fails(c, "23514", "never change", "UPDATE deposits SET kind = 'fiat' WHERE id = '%s'", id));

    CU_ASSERT_FATAL(state_insert(c, &fx, "withdrawal", "BALANCE_RESERVED", id));
    CU_ASSERT(fails(c, "23514", "withdrawal", "UPDATE withdrawals SET status = 'COMPLETED', shares_burned = "
                                              "shares_reserved, index_at_burn = 1 WHERE id = '%s'", id));
    CU_ASSERT(fails(c, "23514", "illegal state transition BALANCE_RESERVED -> COMPLETED",
                    "UPDATE withdrawals SET status = 'COMPLETED', shares_burned = shares_reserved, index_at_burn = 1 "
                    "WHERE id = '%s'", id));
    CU_ASSERT_EQUAL(rows(c, "UPDATE withdrawals SET status = 'CANCELLED' WHERE id = '%s'", id), 1);
    CU_ASSERT(fails(c, "23514", "illegal state transition CANCELLED -> COMPLETED",
                    "UPDATE withdrawals SET status = 'COMPLETED', shares_burned = shares_reserved, index_at_burn = 1 "
                    "WHERE id = '%s'", id));

    /* Inserts start in an initial state only. */
    CU_ASSERT(fails(c, "23514", "may not start in state COMPLETED",
                    "INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status, "
                    "credited_amount, shares_minted, index_at_credit, completed_at) VALUES ('dep_0000000000', '%s', "
                    "'%s', '%s', 31337, 'crypto', 1, 'COMPLETED', 1, 1, 1, now())", fx.a.client, fx.a.user, fx.a.vault));
    CU_ASSERT(!state_insert(c, &fx, "withdrawal", "INITIATED", id));
    CU_ASSERT(!state_insert(c, &fx, "deposit_fiat", "SENT_TO_PROVIDER", id));
    CU_ASSERT(state_insert(c, &fx, "deposit_fiat", "INITIATED", id));
    fx_teardown(&fx);
}

/* -- Audit log ------------------------------------------------------------- */

typedef struct {
    const harness_db *db;
    const char *client;
    int rows_ok;
} audit_writer;

static void *audit_writer_main(void *arg)
{
    audit_writer *w = arg;
    PGconn *c = harness_db_connect_app(w->db);
    if (!c)
        return NULL;
    for (int i = 0; i < 25; i++) {
        bool client = i % 2 == 0;
        bool good = ok(c, "BEGIN") &&
                    ok(c, "SELECT set_config('%s', '%s', true)", client ? "coffer.client_id" : "coffer.scope",
                       client ? w->client : "platform") &&
                    (client ? ok(c, "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id, details) "
                                    "VALUES ('client:%s', '%s', 'withdrawal.request', 'withdrawal', 'wth_%d', "
                                    "'{\"amount\": \"%d\", \"note\": \"caf\\u00e9 \\\\ \\\"q\\\"\"}')",
                                 w->client, w->client, i, i * 1000)
                            : ok(c, "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                                    "VALUES ('job:accrual', 'vault.accrue', 'vault', '%d', '{\"b\": [1, 2.50], \"a\": null}')",
                                 i)) &&
                    ok(c, "COMMIT");
        if (good)
            w->rows_ok++;
        else
            (void)ok(c, "ROLLBACK");
    }
    PQfinish(c);
    return NULL;
}

/* Walks audit_log in id order and recomputes every chain in C with
 * libsodium from the columns read as text (docs/ledger.md): the legacy
 * chain (chain_seq NULL, migration 0002's formula from 32 zero bytes) and
 * one chain per client and for the platform (migration 0005), each from
 * sha256("coffer.audit_log.v2\n" label "\n" hex(legacy head)). */
typedef struct {
    char label[UUID_LEN + 1];
    uint8_t prev[32];
    long seq, id, at;
    int rows;
    bool bad;
} chain_state;

typedef struct {
    char v1_head[65];
    uint8_t legacy_prev[32];
    chain_state chains[8];
    int n, checked, legacy, bad; /* bad: chains with a row that does not verify */
    bool legacy_bad;
} chain_walk;

static bool chain_walk_init(chain_walk *w, PGconn *c)
{
    memset(w, 0, sizeof *w);
    return text(c, w->v1_head, sizeof w->v1_head, "SELECT encode(v1_head, 'hex') FROM audit_log_boundary");
}

static void chain_genesis(uint8_t out[32], const char *label, const char *v1_head)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)"coffer.audit_log.v2\n", 20);
    crypto_hash_sha256_update(&st, (const uint8_t *)label, strlen(label));
    crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)v1_head, strlen(v1_head));
    crypto_hash_sha256_final(&st, out);
}

static void chain_walk_rows(chain_walk *w, PGconn *c, const char *where)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT id::text, (extract(epoch FROM at) * 1000000)::bigint::text, actor, "
             "coalesce(client_id::text, ''), action, entity_type, entity_id, details::text, "
             "encode(prev_hash, 'hex'), encode(hash, 'hex'), coalesce(chain_seq::text, '') FROM audit_log "
             "WHERE %s ORDER BY audit_log.id", where); /* not the text column named id */
    PGresult *r = PQexec(c, sql);
    CU_ASSERT_FATAL(PQresultStatus(r) == PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++) {
        uint8_t stored_prev[32], stored[32], mine[32];
        CU_ASSERT_FATAL(hex_decode_exact(stored_prev, 32, PQgetvalue(r, i, 8)) == 0);
        CU_ASSERT_FATAL(hex_decode_exact(stored, 32, PQgetvalue(r, i, 9)) == 0);
        const char *seq_txt = PQgetvalue(r, i, 10);
        bool legacy = seq_txt[0] == '\0';
        long id = strtol(PQgetvalue(r, i, 0), NULL, 10), at = strtol(PQgetvalue(r, i, 1), NULL, 10);
        chain_state *ch = NULL;
        uint8_t *expect = w->legacy_prev;
        if (!legacy) {
            const char *label = PQgetvalue(r, i, 3)[0] ? PQgetvalue(r, i, 3) : "platform";
            for (int k = 0; k < w->n && !ch; k++)
                if (strcmp(w->chains[k].label, label) == 0)
                    ch = &w->chains[k];
            if (!ch) {
                CU_ASSERT_FATAL(w->n < 8);
                ch = &w->chains[w->n++];
                snprintf(ch->label, sizeof ch->label, "%s", label);
                chain_genesis(ch->prev, label, w->v1_head);
            }
            expect = ch->prev;
        }
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, stored_prev, 32);
        if (!legacy) {
            crypto_hash_sha256_update(&st, (const uint8_t *)"v2\n", 3);
            crypto_hash_sha256_update(&st, (const uint8_t *)seq_txt, strlen(seq_txt));
            crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
        }
        for (int f = 0; f < 8; f++) {
            if (f)
                crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
            crypto_hash_sha256_update(&st, (const uint8_t *)PQgetvalue(r, i, f), (size_t)PQgetlength(r, i, f));
        }
        crypto_hash_sha256_final(&st, mine);
        bool good = memcmp(stored_prev, expect, 32) == 0 && memcmp(mine, stored, 32) == 0;
        if (ch) {
            long seq = strtol(seq_txt, NULL, 10);
            good = good && seq == ch->seq + 1 && id > ch->id && at >= ch->at; /* assigned under the chain's lock */
            ch->seq = seq;
            ch->id = id;
            ch->at = at;
            ch->rows++;
        } else {
            w->legacy++;
        }
        bool *flag = ch ? &ch->bad : &w->legacy_bad;
        if (!good && !*flag) {
            fprintf(stderr, "ledger test: audit row %s (%s) does not verify\n", PQgetvalue(r, i, 0),
                    ch ? ch->label : "legacy");
            *flag = true;
            w->bad++;
        }
        memcpy(expect, stored, 32);
        w->checked++;
    }
    PQclear(r);
}

static void test_audit_chain(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "audit"));
    /* Concurrent writers from four connections, clients' and jobs'. */
    enum { N = 4 };
    pthread_t th[N];
    audit_writer w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (audit_writer){.db = &fx.db, .client = i % 2 ? fx.b.client : fx.a.client};
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, audit_writer_main, &w[i]) == 0);
    }
    int written = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(w[i].rows_ok, 25);
        written += w[i].rows_ok;
    }
    /* The fixture wrote 3 rows (A, B, admin). */
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM audit_log"), 3 + written);

    /* Recompute every hash from the columns read as text: one chain per
     * client and one for the platform, each linked in id order. */
    chain_walk w2;
    CU_ASSERT_FATAL(chain_walk_init(&w2, fx.own));
    chain_walk_rows(&w2, fx.own, "TRUE");
    CU_ASSERT_EQUAL(w2.bad, 0);
    CU_ASSERT_EQUAL(w2.checked, 3 + written);
    CU_ASSERT_EQUAL(w2.n, 3); /* A, B and the platform */
    CU_ASSERT_EQUAL(w2.legacy, 0);
    for (int i = 0; i < w2.n; i++)
        CU_ASSERT_EQUAL(w2.chains[i].rows, w2.chains[i].seq); /* contiguous from 1 */

    /* The SQL formula says the same. */
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM audit_log WHERE hash <> sha256(prev_hash || convert_to("
                                "audit_log_canonical_v2(chain_seq, id, at, actor, client_id, action, entity_type, "
                                "entity_id, details), 'UTF8'))"), 0);
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM audit_log a WHERE prev_hash <> coalesce((SELECT b.hash FROM "
                                "audit_log b WHERE b.client_id IS NOT DISTINCT FROM a.client_id AND b.chain_seq = "
                                "a.chain_seq - 1), audit_log_genesis(a.client_id))"), 0);

    /* Each append holds its own chain's lock only (the platform chain's
     * and A's are independent; a second appender to A waits). */
    PGconn *c1 = harness_db_connect_app(&fx.db), *c2 = harness_db_connect_app(&fx.db);
    CU_ASSERT_FATAL(c1 && c2);
    CU_ASSERT(ok(c1, "BEGIN") && ok(c1, "SELECT set_config('coffer.scope', 'platform', true)") &&
              ok(c1, "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
                     "VALUES ('admin', '%s', 'lock.test', 'x', '1')", fx.a.client));
    CU_ASSERT(ok(c2, "BEGIN") && ok(c2, "SELECT set_config('coffer.scope', 'platform', true)") &&
              ok(c2, "SET LOCAL lock_timeout = '200ms'"));
    CU_ASSERT(ok(c2, "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
                     "VALUES ('admin', '%s', 'lock.test', 'x', '2')", fx.b.client));
    CU_ASSERT(ok(c2, "INSERT INTO audit_log (actor, action, entity_type, entity_id) "
                     "VALUES ('admin', 'lock.test', 'x', '3')"));
    CU_ASSERT(fails(c2, "55P03", "lock timeout", "INSERT INTO audit_log (actor, client_id, action, entity_type, "
                    "entity_id) VALUES ('admin', '%s', 'lock.test', 'x', '4')", fx.a.client));
    CU_ASSERT(ok(c2, "ROLLBACK") && ok(c1, "COMMIT"));
    /* Appends need READ COMMITTED: a stale snapshot would fork a chain. */
    CU_ASSERT(ok(c2, "BEGIN ISOLATION LEVEL REPEATABLE READ") &&
              ok(c2, "SELECT set_config('coffer.scope', 'platform', true)"));
    CU_ASSERT(fails(c2, "0A000", "READ COMMITTED", "INSERT INTO audit_log (actor, action, entity_type, entity_id) "
                    "VALUES ('admin', 'a', 'b', 'c')"));
    CU_ASSERT(ok(c2, "ROLLBACK"));
    PQfinish(c1);
    PQfinish(c2);

    /* Rows cannot be moved between chains: UPDATE is refused, and with
     * the trigger off (the owner's way around it) a row cannot take a
     * position another chain's row holds. */
    CU_ASSERT(fails(fx.own, "42501", "append-only: UPDATE",
                    "UPDATE audit_log SET client_id = '%s' WHERE client_id = '%s'", fx.b.client, fx.a.client));
    CU_ASSERT(ok(fx.own, "BEGIN") && ok(fx.own, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"));
    CU_ASSERT(fails(fx.own, "23505", "audit_log_chain_pos", "UPDATE audit_log SET client_id = '%s', actor = 'admin' "
                    "WHERE client_id = '%s' AND chain_seq = 1", fx.b.client, fx.a.client));
    CU_ASSERT(ok(fx.own, "ROLLBACK"));
    /* ... and one moved with a free position is found by the walk. */
    CU_ASSERT(ok(fx.own, "BEGIN") && ok(fx.own, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change") &&
              ok(fx.own, "UPDATE audit_log SET client_id = '%s', actor = 'admin', chain_seq = chain_seq + 1000 "
                         "WHERE client_id = '%s' AND chain_seq = 2", fx.b.client, fx.a.client));
    chain_walk w3;
    CU_ASSERT_FATAL(chain_walk_init(&w3, fx.own));
    chain_walk_rows(&w3, fx.own, "TRUE");
    CU_ASSERT_EQUAL(w3.bad, 2); /* in the chain it left (a gap) and the one it joined */
    CU_ASSERT(ok(fx.own, "ROLLBACK"));

    /* Clients read their own rows. */
    CU_ASSERT(scope(fx.app, fx.a.client, false));
    CU_ASSERT_EQUAL(num(fx.app, "SELECT count(*) FROM audit_log"),
                    num(fx.own, "SELECT count(*) FROM audit_log WHERE client_id = '%s'", fx.a.client));
    CU_ASSERT(num(fx.app, "SELECT count(*) FROM audit_log") > 1);

    /* Caller-supplied id, time and hashes are ignored. */
    CU_ASSERT(ok(fx.app, "INSERT INTO audit_log (id, at, actor, client_id, action, entity_type, entity_id, prev_hash, hash) "
                         "VALUES (1, '2000-01-01', 'client:%s', '%s', 'x', 'y', 'z', '\\x00', '\\x00')",
                 fx.a.client, fx.a.client));
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM audit_log WHERE at < '2001-01-01' OR id = 1 AND action = 'x'"), 0);

    /* Append-only, for the application and for the superuser owner. */
    CU_ASSERT(fails(fx.app, "42501", "permission denied", "UPDATE audit_log SET action = 'y'"));
    CU_ASSERT(fails(fx.app, "42501", "permission denied", "DELETE FROM audit_log"));
    CU_ASSERT(fails(fx.own, "42501", "append-only: UPDATE", "UPDATE audit_log SET action = 'y' WHERE id = 1"));
    CU_ASSERT(fails(fx.own, "42501", "append-only: DELETE", "DELETE FROM audit_log WHERE id = 1"));
    CU_ASSERT(fails(fx.own, "42501", "append-only: TRUNCATE", "TRUNCATE audit_log"));
    CU_ASSERT(ok(fx.own, "SET session_replication_role = replica"));
    CU_ASSERT(fails(fx.own, "42501", "append-only: UPDATE", "UPDATE audit_log SET action = 'y' WHERE id = 1"));
    CU_ASSERT(ok(fx.own, "RESET session_replication_role"));
    CU_ASSERT_EQUAL(num(fx.own, "SELECT count(*) FROM audit_log"), 3 + written + 2); /* + lock.test, + 'x' */
    fx_teardown(&fx);
}

/* Migration 0005 on a database that already has audit rows: they stay as
 * they are (the legacy chain, closed by audit_log_boundary), new rows
 * chain per client from a genesis that commits to the legacy head, and
 * VerifyAuditChain's walk (ops_audit.c) proves all of it. */
typedef struct {
    ops_audit_result res;
    ops_audit_chain *chains;
    size_t n;
} verify_arg;

static rpc_code verify_body(ledger_tx *tx, void *arg)
{
    verify_arg *a = arg;
    free(a->chains);
    a->chains = NULL;
    return ops_audit_verify_chains(tx, &a->res, &a->chains, &a->n);
}

static const ops_audit_chain *find_chain(const verify_arg *a, const char *label)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->chains[i].chain, label) == 0)
            return &a->chains[i];
    return NULL;
}

static void test_audit_chain_boundary(void)
{
    harness_db db;
    CU_ASSERT_FATAL(harness_db_create_empty(&db, "audit_boundary") == 0);
    PGconn *own = harness_connect(&db);
    CU_ASSERT_FATAL(own != NULL);
    size_t n_all = 0, k = 0;
    const migration *all = migrations_embedded(&n_all);
    while (k < n_all && strcmp(all[k].name, "0005_audit_chains") != 0)
        k++;
    CU_ASSERT_FATAL(k < n_all);
    migrate_report rep;
    CU_ASSERT_FATAL(migrate_run(&rep, own, all, k) == 0); /* up to 0004 */

    /* Legacy rows, one chain under the old trigger. */
    char client[UUID_LEN + 1];
    uuid_new(client);
    CU_ASSERT_FATAL(ok(own, "INSERT INTO client_organizations (id, product_id, company_name, platform_fee_bps, "
                            "end_user_yield_bps, environment) VALUES ('%s', 'pb', 'B', 100, 9000, 'live')", client));
    for (int i = 0; i < 5; i++)
        CU_ASSERT_FATAL(i % 2 ? ok(own, "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
                                        "VALUES ('system', 'old.platform', 'x', '%d', '{\"i\": %d}')", i, i)
                              : ok(own, "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
                                        "VALUES ('client:%s', '%s', 'old.client', 'x', '%d')", client, client, i));
    char before[4096], head[65], last[24];
    CU_ASSERT_FATAL(text(own, before, sizeof before, "SELECT string_agg(id || ':' || encode(hash, 'hex'), ',' "
                                                     "ORDER BY id) FROM audit_log"));
    CU_ASSERT_FATAL(text(own, head, sizeof head, "SELECT encode(hash, 'hex') FROM audit_log ORDER BY id DESC LIMIT 1"));
    CU_ASSERT_FATAL(text(own, last, sizeof last, "SELECT max(id) FROM audit_log"));

    CU_ASSERT_FATAL(migrate_run(&rep, own, all, n_all) == 0);
    char v[4096];
    CU_ASSERT(text(own, v, sizeof v, "SELECT v1_last_id || ' ' || v1_rows || ' ' || encode(v1_head, 'hex') "
                                     "FROM audit_log_boundary"));
    char want[200];
    snprintf(want, sizeof want, "%s 5 %s", last, head);
    CU_ASSERT_STRING_EQUAL(v, want);
    /* The legacy rows are untouched. */
    CU_ASSERT(text(own, v, sizeof v, "SELECT string_agg(id || ':' || encode(hash, 'hex'), ',' ORDER BY id) "
                                     "FROM audit_log"));
    CU_ASSERT_STRING_EQUAL(v, before);
    CU_ASSERT_EQUAL(num(own, "SELECT count(*) FROM audit_log WHERE chain_seq IS NULL"), 5);

    /* New rows: two chains, each from its genesis. */
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(i % 2 ? ok(own, "INSERT INTO audit_log (actor, action, entity_type, entity_id) "
                                        "VALUES ('system', 'new.platform', 'x', '%d')", i)
                              : ok(own, "INSERT INTO audit_log (actor, client_id, action, entity_type, entity_id) "
                                        "VALUES ('client:%s', '%s', 'new.client', 'x', '%d')", client, client, i));
    chain_walk w;
    CU_ASSERT_FATAL(chain_walk_init(&w, own));
    CU_ASSERT_STRING_EQUAL(w.v1_head, head);
    chain_walk_rows(&w, own, "TRUE");
    CU_ASSERT_EQUAL(w.bad, 0);
    CU_ASSERT_EQUAL(w.legacy, 5);
    CU_ASSERT_EQUAL(w.n, 2);
    uint8_t g[32];
    char ghex[65];
    chain_genesis(g, client, head);
    hex_encode(ghex, g, sizeof g);
    CU_ASSERT(text(own, v, sizeof v, "SELECT encode(prev_hash, 'hex') FROM audit_log WHERE client_id = '%s' AND "
                                     "chain_seq = 1", client));
    CU_ASSERT_STRING_EQUAL(v, ghex);
    CU_ASSERT(text(own, v, sizeof v, "SELECT encode(audit_log_genesis(NULL), 'hex')"));
    chain_genesis(g, "platform", head);
    hex_encode(ghex, g, sizeof g);
    CU_ASSERT_STRING_EQUAL(v, ghex);

    /* VerifyAuditChain's walk agrees. */
    db_pool_options o = {.conninfo = db.conninfo, .size = 1, .idle_check_ms = 60000, .connect_timeout_s = 5,
                         .statement_timeout_ms = 5000, .application_name = "ledger_schema_test"};
    db_pool *pool = db_pool_new(&o);
    CU_ASSERT_FATAL(pool != NULL);
    verify_arg a = {0};
    char msg[256];
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, verify_body, &a), RPC_OK);
    CU_ASSERT(a.res.ok);
    CU_ASSERT_EQUAL(a.res.checked, 9);
    CU_ASSERT_EQUAL(a.res.chains, 3);
    CU_ASSERT_EQUAL(a.n, 3);
    if (a.n == 3) {
        CU_ASSERT_STRING_EQUAL(a.chains[0].chain, "legacy");
        CU_ASSERT_STRING_EQUAL(a.chains[1].chain, "platform");
        CU_ASSERT_STRING_EQUAL(a.chains[2].chain, client);
        CU_ASSERT_EQUAL(a.chains[0].entries, 5);
        CU_ASSERT_STRING_EQUAL(a.chains[0].head_hash, head);
        CU_ASSERT_EQUAL(a.chains[1].entries, 2);
        CU_ASSERT_EQUAL(a.chains[2].entries, 2);
    }
    char checkpoint[65];
    snprintf(checkpoint, sizeof checkpoint, "%s", a.res.head_hash);

    /* The legacy chain's tail cut off: the boundary says so, and the new
     * chains still verify on their own. */
    CU_ASSERT(ok(own, "BEGIN") && ok(own, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change") &&
              ok(own, "DELETE FROM audit_log WHERE id = %s", last) &&
              ok(own, "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_change") && ok(own, "COMMIT"));
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, verify_body, &a), RPC_OK);
    CU_ASSERT(!a.res.ok);
    CU_ASSERT_EQUAL(a.res.first_bad_id, strtoull(last, NULL, 10));
    CU_ASSERT_EQUAL(a.res.bad_chains, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.res.detail, "chain legacy"));
    CU_ASSERT_PTR_NOT_NULL(strstr(a.res.detail, "audit_log_boundary"));
    CU_ASSERT(strcmp(a.res.head_hash, checkpoint) != 0);
    const ops_audit_chain *pc = find_chain(&a, "platform");
    CU_ASSERT(pc && pc->first_bad_id == 0);
    /* ... as would a boundary rewritten to match (the genesis hashes no
     * longer do). */
    CU_ASSERT(ok(own, "BEGIN") && ok(own, "ALTER TABLE audit_log_boundary DISABLE TRIGGER audit_log_boundary_no_change") &&
              ok(own, "UPDATE audit_log_boundary SET v1_rows = 4, v1_last_id = (SELECT max(id) FROM audit_log "
                      "WHERE chain_seq IS NULL), v1_head = (SELECT hash FROM audit_log WHERE chain_seq IS NULL "
                      "ORDER BY id DESC LIMIT 1)") &&
              ok(own, "ALTER TABLE audit_log_boundary ENABLE ALWAYS TRIGGER audit_log_boundary_no_change") &&
              ok(own, "COMMIT"));
    CU_ASSERT_EQUAL(ledger_run_plain(pool, NULL, 5000, msg, sizeof msg, verify_body, &a), RPC_OK);
    CU_ASSERT(!a.res.ok);
    CU_ASSERT_EQUAL(a.res.bad_chains, 2); /* both new chains: their first prev_hash */
    pc = find_chain(&a, "legacy");
    CU_ASSERT(pc && pc->first_bad_id == 0);
    free(a.chains);
    db_pool_free(pool);

    /* The boundary is written once. */
    CU_ASSERT(fails(own, "42501", "written once", "UPDATE audit_log_boundary SET v1_rows = 0"));
    CU_ASSERT(fails(own, "42501", "written once", "DELETE FROM audit_log_boundary"));
    CU_ASSERT(fails(own, "42501", "written once", "TRUNCATE audit_log_boundary"));
    CU_ASSERT(fails(own, "42501", "written once", "INSERT INTO audit_log_boundary (singleton, v1_last_id, v1_rows, "
                                                  "v1_head) VALUES (false, 0, 0, sha256(''::bytea))"));
    PQfinish(own);
    harness_db_drop(&db);
}

/* -- The application role -------------------------------------------------- */

static void test_app_role_limits(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fx_setup(&fx, "app_role"));
    PGconn *c = fx.app;
    char v[64];
    CU_ASSERT(text(c, v, sizeof v, "SELECT current_user"));
    CU_ASSERT_STRING_EQUAL(v, HARNESS_APP_ROLE);
    CU_ASSERT(text(c, v, sizeof v, "SELECT rolsuper::text || rolbypassrls::text || rolcreaterole::text || "
                                   "rolcreatedb::text FROM pg_roles WHERE rolname = current_user"));
    CU_ASSERT_STRING_EQUAL(v, "falsefalsefalsefalse");
    CU_ASSERT_EQUAL(num(c, "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                           "WHERE rolname = current_user)"), 0);
    CU_ASSERT_EQUAL(num(c, "SELECT pg_has_role(current_user, 'coffer_app', 'MEMBER')::int"), 1);
    CU_ASSERT_FATAL(scope(c, NULL, true)); /* even in platform scope */

    CU_ASSERT_EQUAL(num(c, "SELECT count(*) FROM deposits"), 2); /* it can see them ... */
    CU_ASSERT(fails(c, "42501", "permission denied", "DELETE FROM deposits"));
    CU_ASSERT(fails(c, "42501", "permission denied", "TRUNCATE deposits"));
    CU_ASSERT(fails(c, "42501", "must be owner", "ALTER TABLE deposits ADD COLUMN x int"));
    CU_ASSERT(fails(c, "42501", "must be owner", "ALTER TABLE deposits DISABLE ROW LEVEL SECURITY"));
    CU_ASSERT(fails(c, "42501", "must be owner", "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"));
    CU_ASSERT(fails(c, "42501", "must be owner", "DROP TABLE deposits"));
    CU_ASSERT(fails(c, "42501", "must be owner", "DROP POLICY client_isolation ON deposits"));
    CU_ASSERT(fails(c, "42501", "permission denied", "CREATE TABLE mine (x int)"));
    CU_ASSERT(fails(c, "42501", "permission denied", "SET ROLE postgres"));
    CU_ASSERT(fails(c, "42501", "permission denied", "SET SESSION AUTHORIZATION postgres"));
    CU_ASSERT(fails(c, "42501", "permission denied", "DELETE FROM end_users"));
    CU_ASSERT(fails(c, "42501", "permission denied", "UPDATE index_history SET total_assets = 0"));
    CU_ASSERT(fails(c, "42501", "permission denied", "UPDATE schema_migrations SET name = name"));
    CU_ASSERT_EQUAL(num(c, "SELECT count(*) FROM deposits"), 2); /* ... and nothing changed */
    /* It reads the schema version (health probe). */
    CU_ASSERT(num(c, "SELECT max(version) FROM schema_migrations") >= 2);

    /* The one DELETE it has: expired idempotency records. */
    CU_ASSERT(ok(fx.own, "INSERT INTO idempotency_records (scope, client_id, key, method, request_hash, response, "
                         "created_at, expires_at) VALUES ('client:%s', '%s', 'old', '/m', sha256('o'::bytea), '\\x', "
                         "now() - interval '2 days', now() - interval '1 day')", fx.a.client, fx.a.client));
    CU_ASSERT_EQUAL(rows(c, "DELETE FROM idempotency_records WHERE expires_at < now()"), 1);
    CU_ASSERT_EQUAL(num(c, "SELECT count(*) FROM idempotency_records"), 3);
    fx_teardown(&fx);
}

void test_register(void)
{
    harness_require_stack();
    if (sodium_init() < 0) {
        fprintf(stderr, "ledger test: sodium_init failed\n");
        exit(1);
    }
    static const test_case cases[] = {
        {"rls_every_client_table_forced", test_rls_every_client_table_forced},
        {"rls_isolates_clients", test_rls_isolates_clients},
        {"rls_fail_closed_and_platform_rows", test_rls_fail_closed_and_platform_rows},
        {"rls_platform_tables", test_rls_platform_tables},
        {"api_key_lookup", test_api_key_lookup},
        {"constraints", test_constraints},
        {"strategy_sum_checked_at_commit", test_strategy_sum_checked_at_commit},
        {"transfer_log_credits_once", test_transfer_log_credits_once},
        {"state_table_matches_docs", test_state_table_matches_docs},
        {"state_transitions_exhaustive", test_state_transitions_exhaustive},
        {"state_illegal_samples", test_state_illegal_samples},
        {"audit_chain", test_audit_chain},
        {"audit_chain_boundary", test_audit_chain_boundary},
        {"app_role_limits", test_app_role_limits},
        {NULL, NULL},
    };
    test_add_suite("ledger_schema", cases);
}
