/* signer_policy: see signer_policy.h and docs/signer.md §4. */
#include "signer_policy.h"

#include "api_config.h"
#include "log.h"
#include "u256.h"

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SP_LABEL_MAX 31u

__attribute__((format(printf, 3, 4)))
static void sp_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* A canonical decimal amount from the configuration. */
static const char *sp_amount(char *err, size_t err_len, const config *cfg, const char *key)
{
    const char *v = NULL;
    u256 x;
    if (config_get_string(cfg, &v, key) != 0 || !v || u256_from_dec_str(&x, v) != 0 ||
        (v[0] == '0' && v[1] != '\0')) {
        sp_err(err, err_len, "%s must be a decimal amount without leading zeros, got \"%s\"", key, v ? v : "");
        return NULL;
    }
    return v;
}

/* A policy label from a name: lowercase [a-z0-9_.-], at most 31 characters. */
static void sp_label(char out[SP_LABEL_MAX + 1], const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p && n < SP_LABEL_MAX; p++) {
        char c = (char)tolower((unsigned char)*p);
        out[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.') ? c : '_';
    }
    if (n == 0)
        out[n++] = 'x';
    out[n] = '\0';
}

/* "0x" + lowercase hex of a valid address text (0x + 40 hex), else NULL. */
static bool sp_addr(char out[43], const char *s)
{
    if (!s || strlen(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return false;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 2; i < 42; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[42] = '\0';
    return true;
}

static json_t *sp_find(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        const char *v = json_string_value(json_object_get(it, key));
        if (v && strcmp(v, value) == 0)
            return it;
    }
    return NULL;
}

static void sp_add_unique(json_t *arr, const char *s)
{
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
        if (strcmp(json_string_value(it), s) == 0)
            return;
    json_array_append_new(arr, json_string(s));
}

/* The chain's object in chains (created with its limits when new). */
static json_t *sp_chain(json_t *chains, uint64_t chain_id, json_t *tmpl)
{
    size_t i;
    json_t *it;
    json_array_foreach(chains, i, it)
        if ((uint64_t)json_integer_value(json_object_get(it, "chain_id")) == chain_id)
            return it;
    json_t *c = json_deep_copy(tmpl);
    json_object_set_new(c, "chain_id", json_integer((json_int_t)chain_id));
    json_object_set_new(c, "contracts", json_array());
    json_array_append_new(chains, c);
    return c;
}

/* The token's ERC-20 entry in the chain (created when new). */
static json_t *sp_token(json_t *chain, const char *addr, const char *symbol, const char *payout, const char *approve)
{
    json_t *contracts = json_object_get(chain, "contracts");
    json_t *k = sp_find(contracts, "address", addr);
    if (k)
        return json_object_get(json_object_get(k, "erc20"), "approve_spenders");
    char label[SP_LABEL_MAX + 1];
    sp_label(label, symbol && *symbol ? symbol : addr);
    json_t *spenders = json_array();
    k = json_pack("{s:s, s:s, s:s, s:{s:b, s:o, s:s}}", "address", addr, "label", label, "daily_limit", payout, "erc20",
                  "transfer_to_any", 1, "approve_spenders", spenders, "approve_max", approve);
    json_array_append_new(contracts, k);
    return spenders;
}

static json_t *sp_call(const char *function, json_t *args)
{
    return json_pack("{s:s, s:o}", "function", function, "args", args);
}

/* The protocol's contract entry: its calls, receivers pinned to "self",
 * the asset argument to the tokens it serves. */
static int sp_protocol(char *err, size_t err_len, json_t *chain, const char *name, const char *adapter,
                       const char *token, json_t *addresses)
{
    const char *key = strcmp(adapter, "aave_v3") == 0       ? "pool"
                      : strcmp(adapter, "compound_v3") == 0 ? "comet"
                      : strcmp(adapter, "erc4626") == 0     ? "vault"
                                                            : NULL;
    char addr[43];
    if (!key || !sp_addr(addr, json_string_value(json_object_get(addresses, key)))) {
        sp_err(err, err_len, "protocol %s (%s): addresses.%s is missing or not an address", name, adapter,
               key ? key : "?");
        return -1;
    }
    json_t *contracts = json_object_get(chain, "contracts");
    json_t *k = sp_find(contracts, "address", addr);
    if (k) {
        if (strcmp(adapter, "erc4626") == 0 || !json_object_get(k, "calls")) {
            sp_err(err, err_len, "protocol %s: contract %s is already listed for another protocol or token", name,
                   addr);
            return -1;
        }
        /* one pool or comet serving several tokens: widen the asset argument */
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(k, "calls"), i, c)
            sp_add_unique(json_array_get(json_object_get(c, "args"), 0), token);
        return 0;
    }
    char label[SP_LABEL_MAX + 1];
    sp_label(label, name);
    json_t *calls = json_array();
    if (strcmp(adapter, "aave_v3") == 0) {
        json_array_append_new(calls, sp_call("supply(address,uint256,address,uint16)",
                                             json_pack("[[s], s, s, s]", token, "any", "self", "any")));
        json_array_append_new(calls, sp_call("withdraw(address,uint256,address)",
                                             json_pack("[[s], s, s]", token, "any", "self")));
    } else if (strcmp(adapter, "compound_v3") == 0) {
        /* supply/withdraw act for msg.sender: no receiver to pin */
        json_array_append_new(calls, sp_call("supply(address,uint256)", json_pack("[[s], s]", token, "any")));
        json_array_append_new(calls, sp_call("withdraw(address,uint256)", json_pack("[[s], s]", token, "any")));
    } else {
        json_array_append_new(calls, sp_call("deposit(uint256,address)", json_pack("[s, s]", "any", "self")));
        json_array_append_new(calls,
                              sp_call("withdraw(uint256,address,address)", json_pack("[s, s, s]", "any", "self", "self")));
        json_array_append_new(calls,
                              sp_call("redeem(uint256,address,address)", json_pack("[s, s, s]", "any", "self", "self")));
    }
    json_array_append_new(contracts, json_pack("{s:s, s:s, s:o}", "address", addr, "label", label, "calls", calls));
    return 0;
}

json_t *signer_policy_build(char *err, size_t err_len, PGconn *conn, const config *cfg, uint64_t chain_id)
{
    json_t *root = NULL, *tmpl = NULL;
    PGresult *res = NULL;
    int64_t gas = 0, bump = 0, repl = 0;
    const char *max_fee = sp_amount(err, err_len, cfg, "signer.policy.max_fee_per_gas");
    const char *native = max_fee ? sp_amount(err, err_len, cfg, "signer.policy.native_daily_limit") : NULL;
    const char *payout = native ? sp_amount(err, err_len, cfg, "signer.policy.payout_daily_limit") : NULL;
    const char *approve = payout ? sp_amount(err, err_len, cfg, "signer.policy.approve_max") : NULL;
    if (!approve || config_get_int(cfg, &gas, "signer.policy.max_gas_limit") != 0 ||
        config_get_int(cfg, &bump, "signer.policy.min_bump_pct") != 0 ||
        config_get_int(cfg, &repl, "signer.policy.max_replacements") != 0) {
        if (approve)
            sp_err(err, err_len, "signer.policy.* settings are missing");
        return NULL;
    }
    tmpl = json_pack("{s:[s], s:I, s:s, s:{s:I, s:I}, s:{s:s, s:s}}", "tx_types", "eip1559", "max_gas_limit",
                     (json_int_t)gas, "max_fee_per_gas", max_fee, "replacement", "min_bump_pct", (json_int_t)bump,
                     "max_replacements", (json_int_t)repl, "native", "max_value", "0", "daily_limit", native);
    root = json_pack("{s:i, s:{s:b}, s:[]}", "version", 1, "messages", "allow", 0, "chains");
    if (!tmpl || !root) {
        sp_err(err, err_len, "out of memory");
        goto fail;
    }
    json_t *chains = json_object_get(root, "chains");

    /* One read-only snapshot in platform scope (client_vaults is tenant-walled). */
    res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto db_fail;
    PQclear(res);
    res = PQexec(conn, "SELECT set_config('coffer.scope', 'platform', true)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto db_fail;
    PQclear(res);
    char chain_text[24];
    snprintf(chain_text, sizeof chain_text, "%llu", (unsigned long long)chain_id);
    const char *p[1] = {chain_id ? chain_text : NULL};
    res = PQexecParams(conn,
                       "SELECT p.name, p.chain_id, p.adapter, '0x' || encode(p.token_address, 'hex'), "
                       "p.addresses::text, coalesce((SELECT min(v.token_symbol) FROM client_vaults v "
                       "WHERE v.chain_id = p.chain_id AND v.token_address = p.token_address), '') "
                       "FROM supported_protocols p WHERE p.active AND ($1::bigint IS NULL OR p.chain_id = $1::bigint) "
                       "ORDER BY p.chain_id, p.name",
                       1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto db_fail;
    /* Tokens first (so that every protocol's spender lands in its token's
     * approve list), then the protocols' contracts. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < PQntuples(res); i++) {
            const char *name = PQgetvalue(res, i, 0), *adapter = PQgetvalue(res, i, 2);
            uint64_t cid = strtoull(PQgetvalue(res, i, 1), NULL, 10);
            char token[43];
            json_error_t je;
            json_t *addresses = json_loads(PQgetvalue(res, i, 4), 0, &je);
            if (!sp_addr(token, PQgetvalue(res, i, 3)) || !json_is_object(addresses)) {
                json_decref(addresses);
                sp_err(err, err_len, "protocol %s: malformed token address or addresses", name);
                goto fail;
            }
            json_t *chain = sp_chain(chains, cid, tmpl);
            int rc = 0;
            if (pass == 0) {
                json_t *spenders = sp_token(chain, token, PQgetvalue(res, i, 5), payout, approve);
                const char *key = strcmp(adapter, "aave_v3") == 0       ? "pool"
                                  : strcmp(adapter, "compound_v3") == 0 ? "comet"
                                                                        : "vault";
                char spender[43];
                if (spenders && sp_addr(spender, json_string_value(json_object_get(addresses, key))))
                    sp_add_unique(spenders, spender);
            } else {
                rc = sp_protocol(err, err_len, chain, name, adapter, token, addresses);
            }
            json_decref(addresses);
            if (rc != 0)
                goto fail;
        }
    }
    PQclear(res);
    /* The clients' vault tokens on those chains (payouts), even without a protocol. */
    res = PQexecParams(conn,
                       "SELECT chain_id, '0x' || encode(token_address, 'hex'), min(token_symbol) FROM client_vaults "
                       "WHERE ($1::bigint IS NULL OR chain_id = $1::bigint) GROUP BY chain_id, token_address "
                       "ORDER BY chain_id, token_address",
                       1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto db_fail;
    for (int i = 0; i < PQntuples(res); i++) {
        char token[43];
        if (!sp_addr(token, PQgetvalue(res, i, 1)))
            continue;
        json_t *chain = sp_chain(chains, strtoull(PQgetvalue(res, i, 0), NULL, 10), tmpl);
        (void)sp_token(chain, token, PQgetvalue(res, i, 2), payout, approve);
    }
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    PQclear(res);
    json_decref(tmpl);
    return root;
db_fail: {
    const char *m = PQerrorMessage(conn);
    sp_err(err, err_len, "database: %.*s", (int)strcspn(m, "\n"), m);
}
fail:
    PQclear(res);
    res = PQexec(conn, "ROLLBACK");
    PQclear(res);
    json_decref(tmpl);
    json_decref(root);
    return NULL;
}

/* ---- --check ------------------------------------------------------------------ */

/* A copy with addresses lowercased and every array sorted by its
 * elements' compact text, so that order and case do not count. */
static json_t *sp_normal(json_t *v)
{
    if (json_is_string(v)) {
        char a[43];
        return sp_addr(a, json_string_value(v)) ? json_string(a) : json_incref(v);
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) json_object_set_new(o, k, sp_normal(x));
        return o;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        char **texts = calloc(n ? n : 1, sizeof *texts);
        json_t *out = json_array();
        for (size_t i = 0; texts && i < n; i++) {
            json_t *x = sp_normal(json_array_get(v, i));
            texts[i] = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            json_decref(x);
        }
        /* insertion sort: policies are small */
        for (size_t i = 1; texts && i < n; i++)
            for (size_t j = i; j > 0 && texts[j - 1] && texts[j] && strcmp(texts[j - 1], texts[j]) > 0; j--) {
                char *t = texts[j];
                texts[j] = texts[j - 1];
                texts[j - 1] = t;
            }
        for (size_t i = 0; texts && i < n; i++) {
            json_t *x = texts[i] ? json_loads(texts[i], JSON_DECODE_ANY, NULL) : NULL;
            json_array_append_new(out, x ? x : json_null());
            free(texts[i]);
        }
        free(texts);
        return out;
    }
    return json_incref(v);
}

static bool sp_same(json_t *a, json_t *b)
{
    json_t *na = a ? sp_normal(a) : NULL, *nb = b ? sp_normal(b) : NULL;
    bool same = (!na && !nb) || (na && nb && json_equal(na, nb));
    json_decref(na);
    json_decref(nb);
    return same;
}

static void sp_print_value(FILE *out, const char *what, json_t *v)
{
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    fprintf(out, "%s %s", what, t ? t : "(absent)");
    free(t);
}

/* Compares the members of two objects; path names them. */
static int sp_diff_members(FILE *out, const char *path, json_t *dep, json_t *exp, const char *skip)
{
    int n = 0;
    const char *k;
    json_t *x;
    json_t *keys = json_object();
    json_object_foreach(dep, k, x) json_object_set_new(keys, k, json_true());
    json_object_foreach(exp, k, x) json_object_set_new(keys, k, json_true());
    json_object_foreach(keys, k, x) {
        if (skip && strcmp(k, skip) == 0)
            continue;
        json_t *d = json_object_get(dep, k), *e = json_object_get(exp, k);
        if (sp_same(d, e))
            continue;
        n++;
        fprintf(out, "%s.%s: ", path, k);
        sp_print_value(out, "deployed", d);
        sp_print_value(out, ", expected", e);
        fputc('\n', out);
    }
    json_decref(keys);
    return n;
}

static json_t *sp_chain_by_id(json_t *chains, json_int_t id)
{
    size_t i;
    json_t *c;
    json_array_foreach(chains, i, c)
        if (json_integer_value(json_object_get(c, "chain_id")) == id)
            return c;
    return NULL;
}

static json_t *sp_contract_by_addr(json_t *contracts, const char *addr)
{
    size_t i;
    json_t *c;
    char a[43], b[43];
    if (!sp_addr(a, addr))
        return NULL;
    json_array_foreach(contracts, i, c)
        if (sp_addr(b, json_string_value(json_object_get(c, "address"))) && strcmp(a, b) == 0)
            return c;
    return NULL;
}

int signer_policy_diff(FILE *out, json_t *deployed, json_t *expected)
{
    int n = sp_diff_members(out, "policy", deployed, expected, "chains");
    json_t *dc = json_object_get(deployed, "chains"), *ec = json_object_get(expected, "chains");
    for (int side = 0; side < 2; side++) {
        json_t *mine = side ? ec : dc, *other = side ? dc : ec;
        size_t i;
        json_t *c;
        json_array_foreach(mine, i, c) {
            json_int_t id = json_integer_value(json_object_get(c, "chain_id"));
            json_t *o = sp_chain_by_id(other, id);
            if (!o) {
                fprintf(out, "chain %lld: %s\n", (long long)id,
                        side ? "missing from the deployed policy" : "in the deployed policy but not expected");
                n++;
                continue;
            }
            if (side)
                continue; /* compared once, from the deployed side */
            char path[64];
            snprintf(path, sizeof path, "chain %lld", (long long)id);
            n += sp_diff_members(out, path, c, o, "contracts");
            json_t *dk = json_object_get(c, "contracts"), *ek = json_object_get(o, "contracts");
            for (int s2 = 0; s2 < 2; s2++) {
                json_t *m2 = s2 ? ek : dk, *o2 = s2 ? dk : ek;
                size_t j;
                json_t *k;
                json_array_foreach(m2, j, k) {
                    const char *addr = json_string_value(json_object_get(k, "address"));
                    json_t *ok = sp_contract_by_addr(o2, addr);
                    if (!ok) {
                        fprintf(out, "chain %lld: contract %s (%s): %s\n", (long long)id, addr ? addr : "?",
                                json_string_value(json_object_get(k, "label")) ? json_string_value(json_object_get(k, "label")) : "no label",
                                s2 ? "missing from the deployed policy" : "in the deployed policy but not expected");
                        n++;
                        continue;
                    }
                    if (s2)
                        continue;
                    char cpath[128];
                    snprintf(cpath, sizeof cpath, "chain %lld: contract %s", (long long)id, addr);
                    n += sp_diff_members(out, cpath, k, ok, NULL);
                }
            }
        }
    }
    return n;
}

/* ---- the subcommand --------------------------------------------------------------- */

static void sp_usage(FILE *out)
{
    fprintf(out, "usage: coffer-api signer-policy [--config FILE] [--db-url URL] [--chain ID] [--check FILE]\n"
                 "\n"
                 "Prints coffer-signer's policy (docs/signer.md §4) as the supported_protocols table\n"
                 "(active rows) and the clients' vault tokens imply it; limits from signer.policy.*.\n"
                 "  --chain ID     only this chain\n"
                 "  --check FILE   compare a deployed policy with it instead: print the differences\n"
                 "                 (exit 0: same, 1: different, 2: error)\n");
}

int signer_policy_main(int argc, char **argv, char *const *envp)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"db-url", required_argument, NULL, 'd'},
        {"chain", required_argument, NULL, 'n'},  {"check", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *check = NULL;
    static char db_env[4200];
    char *extra[2] = {NULL, NULL};
    uint64_t chain = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:n:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd':
            snprintf(db_env, sizeof db_env, "COFFER_DB_URL=%s", optarg);
            extra[0] = db_env;
            break;
        case 'n': {
            char *end;
            chain = strtoull(optarg, &end, 10);
            if (*end || chain == 0 || optarg[0] == '-') {
                fprintf(stderr, "coffer-api signer-policy: --chain takes a positive chain id\n");
                return 2;
            }
            break;
        }
        case 'k': check = optarg; break;
        case 'h': sp_usage(stdout); return 0;
        default: sp_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "coffer-api signer-policy: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    config *cfg = api_config_load("coffer-api signer-policy", config_path, envp, extra);
    if (!cfg)
        return 2;
    log_init("coffer-api", LOG_ERROR, 2);
    int rc = 2;
    const char *url = NULL;
    PGconn *conn = NULL;
    json_t *pol = NULL, *deployed = NULL;
    char err[600];
    if (config_get_string(cfg, &url, "db.url") != 0 || !url) {
        fprintf(stderr, "coffer-api signer-policy: db.url is not set\n");
        goto out;
    }
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *e = PQerrorMessage(conn);
        fprintf(stderr, "coffer-api signer-policy: cannot connect to the database: %.*s\n", (int)strcspn(e, "\n"), e);
        goto out;
    }
    pol = signer_policy_build(err, sizeof err, conn, cfg, chain);
    if (!pol) {
        fprintf(stderr, "coffer-api signer-policy: %s\n", err);
        goto out;
    }
    if (!check) {
        if (json_dumpf(pol, stdout, JSON_INDENT(1) | JSON_ENSURE_ASCII) != 0 || fputc('\n', stdout) == EOF ||
            fflush(stdout) != 0) {
            fprintf(stderr, "coffer-api signer-policy: cannot write the policy\n");
            goto out;
        }
        rc = 0;
        goto out;
    }
    json_error_t je;
    deployed = json_load_file(check, JSON_REJECT_DUPLICATES, &je);
    if (!deployed) {
        fprintf(stderr, "coffer-api signer-policy: %s: line %d: %s\n", check, je.line, je.text);
        goto out;
    }
    if (chain) { /* compare that chain only */
        json_t *chains = json_object_get(deployed, "chains");
        for (size_t i = json_array_size(chains); i-- > 0;)
            if ((uint64_t)json_integer_value(json_object_get(json_array_get(chains, i), "chain_id")) != chain)
                json_array_remove(chains, i);
    }
    int n = signer_policy_diff(stdout, deployed, pol);
    if (n == 0)
        printf("coffer-api signer-policy: %s matches the supported protocols\n", check);
    else
        printf("coffer-api signer-policy: %s differs in %d place%s\n", check, n, n == 1 ? "" : "s");
    rc = n == 0 ? 0 : 1;
out:
    json_decref(pol);
    json_decref(deployed);
    PQfinish(conn);
    config_free(cfg);
    return rc;
}
