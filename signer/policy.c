#include "policy.h"

#include "abi.h"
#include "hex.h"
#include "keccak.h"
#include "policy_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- parse context ------------------------------------------------------ */

typedef struct {
    char *err;
    size_t err_len;
    char path[256];
} pctx;

__attribute__((format(printf, 2, 3)))
static int fail(pctx *c, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->err_len)
        snprintf(c->err, c->err_len, "%s: %s", c->path[0] ? c->path : "(top level)", msg);
    return -1;
}

/* Appends ".key" or "[i]" to the path; returns the old length to restore. */
static size_t push_key(pctx *c, const char *key)
{
    size_t old = strlen(c->path);
    snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
    return old;
}

static size_t push_index(pctx *c, size_t i)
{
    size_t old = strlen(c->path);
    snprintf(c->path + old, sizeof c->path - old, "[%zu]", i);
    return old;
}

static void pop(pctx *c, size_t old)
{
    c->path[old] = '\0';
}

/* Every key of obj must be one of allowed (NULL-terminated). */
static int check_keys(pctx *c, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = 1;
        if (!ok)
            return fail(c, "unknown key \"%.64s\"", key);
    }
    return 0;
}

/* ---- values ----------------------------------------------------------- */

/* Parses "0x" + 40 hex digits; mixed case must be a valid EIP-55 checksum. */
static int parse_address_text(uint8_t out[ETHTX_ADDRESS_LEN], const char *s)
{
    if (strlen(s) != 42 || s[0] != '0' || s[1] != 'x')
        return -1;
    const char *h = s + 2;
    char lower[41];
    int has_upper = 0, has_lower = 0;
    for (size_t i = 0; i < 40; i++) {
        char ch = h[i];
        if (ch >= 'A' && ch <= 'F') {
            has_upper = 1;
            lower[i] = (char)(ch - 'A' + 'a');
        } else if ((ch >= 'a' && ch <= 'f') || (ch >= '0' && ch <= '9')) {
            has_lower |= ch >= 'a';
            lower[i] = ch;
        } else {
            return -1;
        }
    }
    lower[40] = '\0';
    if (has_upper && has_lower) {
        uint8_t hash[32];
        keccak256(hash, (const uint8_t *)lower, 40);
        for (size_t i = 0; i < 40; i++) {
            unsigned nib = (hash[i / 2] >> (i % 2 ? 0 : 4)) & 0xf;
            int is_letter = lower[i] >= 'a';
            int upper = h[i] >= 'A' && h[i] <= 'F';
            if (is_letter && upper != (nib >= 8))
                return -1;
        }
    }
    return hex_decode_exact(out, ETHTX_ADDRESS_LEN, lower);
}

static int get_address(pctx *c, uint8_t out[ETHTX_ADDRESS_LEN], json_t *v)
{
    if (!json_is_string(v) || parse_address_text(out, json_string_value(v)) != 0)
        return fail(c, "expected an address: \"0x\" and 40 hex digits (mixed case only as a valid EIP-55 checksum)");
    return 0;
}

static int get_amount(pctx *c, u256 *out, json_t *v)
{
    if (!json_is_string(v) || u256_from_dec_str(out, json_string_value(v)) != 0)
        return fail(c, "expected an amount: a decimal string of base units without leading zeros, e.g. \"1000000\"");
    return 0;
}

static int get_uint(pctx *c, uint64_t *out, json_t *v, uint64_t min, uint64_t max)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max)
        return fail(c, "expected an integer between %llu and %llu", (unsigned long long)min,
                    (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_bool(pctx *c, bool *out, json_t *v)
{
    if (!json_is_boolean(v))
        return fail(c, "expected true or false");
    *out = json_is_true(v);
    return 0;
}

static void addr_set_dispose(addr_set *s)
{
    free(s->addrs);
    memset(s, 0, sizeof *s);
}

/* A JSON array of addresses and/or "self"; duplicates are errors. */
static int get_addr_set(pctx *c, addr_set *out, json_t *v)
{
    size_t i;
    json_t *item;
    memset(out, 0, sizeof *out);
    if (!json_is_array(v))
        return fail(c, "expected a list of addresses (or \"self\")");
    if (json_array_size(v) > POLICY_LIST_MAX)
        return fail(c, "more than %u entries", POLICY_LIST_MAX);
    out->addrs = calloc(json_array_size(v) + 1, ETHTX_ADDRESS_LEN);
    if (!out->addrs)
        return fail(c, "out of memory");
    json_array_foreach(v, i, item) {
        size_t old = push_index(c, i);
        if (json_is_string(item) && strcmp(json_string_value(item), "self") == 0) {
            if (out->self)
                return fail(c, "\"self\" listed twice");
            out->self = true;
        } else {
            if (get_address(c, out->addrs[out->n], item) != 0)
                return -1;
            for (size_t k = 0; k < out->n; k++)
                if (memcmp(out->addrs[k], out->addrs[out->n], ETHTX_ADDRESS_LEN) == 0)
                    return fail(c, "address listed twice");
            out->n++;
        }
        pop(c, old);
    }
    return 0;
}

/* Optional members: when obj has key, parse it into out (errors name the
 * key's path). Return 1 when present and valid, 0 when absent, -1 on error. */
static int opt_amount(pctx *c, json_t *obj, const char *key, u256 *out)
{
    json_t *x = json_object_get(obj, key);
    if (!x)
        return 0;
    size_t old = push_key(c, key);
    if (get_amount(c, out, x) != 0)
        return -1;
    pop(c, old);
    return 1;
}

static int opt_bool(pctx *c, json_t *obj, const char *key, bool *out)
{
    json_t *x = json_object_get(obj, key);
    if (!x)
        return 0;
    size_t old = push_key(c, key);
    if (get_bool(c, out, x) != 0)
        return -1;
    pop(c, old);
    return 1;
}

static int opt_addr_set(pctx *c, json_t *obj, const char *key, addr_set *out)
{
    json_t *x = json_object_get(obj, key);
    if (!x)
        return 0;
    size_t old = push_key(c, key);
    if (get_addr_set(c, out, x) != 0)
        return -1;
    pop(c, old);
    return 1;
}

/* ---- function signatures ------------------------------------------------ */

/* Splits the parameter list of a canonical signature into kinds; sizes[i]
 * gets N of bytesN (0 for other kinds). */
static int signature_kinds(abi_kind kinds[POLICY_ARGS_MAX], size_t sizes[POLICY_ARGS_MAX],
                           size_t *n, const char *sig)
{
    const char *open = strchr(sig, '('), *close = strrchr(sig, ')');
    *n = 0;
    if (!open || !close || close < open || close[1] != '\0')
        return -1;
    const char *p = open + 1;
    if (p == close)
        return 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(close - p));
        const char *end = comma ? comma : close;
        size_t len = (size_t)(end - p);
        char t[16];
        if (len == 0 || len >= sizeof t || *n >= POLICY_ARGS_MAX)
            return -1;
        memcpy(t, p, len);
        t[len] = '\0';
        abi_kind k;
        sizes[*n] = 0;
        if (strcmp(t, "address") == 0)
            k = ABI_KIND_ADDRESS;
        else if (strcmp(t, "bool") == 0)
            k = ABI_KIND_BOOL;
        else if (strcmp(t, "bytes") == 0)
            k = ABI_KIND_BYTES;
        else if (strcmp(t, "string") == 0)
            k = ABI_KIND_STRING;
        else if (strncmp(t, "uint", 4) == 0)
            k = ABI_KIND_UINT;
        else if (strncmp(t, "bytes", 5) == 0 && t[5] >= '1' && t[5] <= '9') {
            k = ABI_KIND_FIXED_BYTES;
            sizes[*n] = (size_t)strtoul(t + 5, NULL, 10);
            if (sizes[*n] < 1 || sizes[*n] > 32)
                return -1;
        } else
            return -1;
        kinds[(*n)++] = k;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Checks a signature against common/abi's grammar by encoding zero
 * arguments of the parsed kinds: ABI_ERR_BUFFER_TOO_SMALL means the text
 * is canonical and agrees with the kinds (uintN widths, bytesN sizes and
 * names are checked by the encoder). */
static int signature_valid(const char *sig, const abi_kind *kinds, const size_t *sizes, size_t n)
{
    abi_value vals[POLICY_ARGS_MAX];
    static const uint8_t zero[32];
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        switch (kinds[i]) {
        case ABI_KIND_UINT: vals[i] = abi_arg_uint64(0); break;
        case ABI_KIND_ADDRESS: vals[i] = abi_arg_address(zero); break;
        case ABI_KIND_BOOL: vals[i] = abi_arg_bool(false); break;
        case ABI_KIND_BYTES: vals[i] = abi_arg_bytes(NULL, 0); break;
        case ABI_KIND_STRING: vals[i] = abi_arg_string_n(NULL, 0); break;
        case ABI_KIND_FIXED_BYTES: vals[i] = abi_arg_fixed_bytes(zero, sizes[i]); break;
        }
    }
    return abi_encode_call(NULL, 0, &need, sig, vals, n) == ABI_ERR_BUFFER_TOO_SMALL ? 0 : -1;
}

static int parse_arg_rule(pctx *c, arg_rule *out, abi_kind kind, json_t *v)
{
    memset(out, 0, sizeof *out);
    if (json_is_string(v) && strcmp(json_string_value(v), "any") == 0) {
        out->kind = ARG_ANY;
        return 0;
    }
    if (kind == ABI_KIND_ADDRESS) {
        if (json_is_string(v) && strcmp(json_string_value(v), "self") == 0) {
            out->kind = ARG_SELF;
            return 0;
        }
        if (json_is_array(v)) {
            out->kind = ARG_SET;
            if (get_addr_set(c, &out->set, v) != 0)
                return -1;
            if (out->set.n == 0 && !out->set.self)
                return fail(c, "an empty list allows nothing; remove the function instead");
            return 0;
        }
        return fail(c, "an address argument takes \"any\", \"self\" or a list of addresses");
    }
    if (kind == ABI_KIND_UINT) {
        if (json_is_object(v)) {
            static const char *const keys[] = {"max", NULL};
            json_t *m = json_object_get(v, "max");
            if (check_keys(c, v, keys) != 0)
                return -1;
            if (!m)
                return fail(c, "expected {\"max\": \"<amount>\"}");
            size_t old = push_key(c, "max");
            if (get_amount(c, &out->max, m) != 0)
                return -1;
            pop(c, old);
            out->kind = ARG_MAX;
            return 0;
        }
        return fail(c, "a uint argument takes \"any\" or {\"max\": \"<amount>\"}");
    }
    return fail(c, "this argument type only takes \"any\"");
}

static int add_call(pctx *c, contract_rule *k, call_kind kind, const char *sig)
{
    call_rule *cr = &k->calls[k->n_calls];
    memset(cr, 0, sizeof *cr);
    if (strlen(sig) >= sizeof cr->signature)
        return fail(c, "function signature too long");
    snprintf(cr->signature, sizeof cr->signature, "%s", sig);
    cr->kind = kind;
    size_t sizes[POLICY_ARGS_MAX];
    if (signature_kinds(cr->arg_kinds, sizes, &cr->n_args, sig) != 0)
        return fail(c, "\"%.80s\" is not a canonical signature of supported types (address, bool, uintN, bytesN, bytes, string; at most %u)",
                    sig, POLICY_ARGS_MAX);
    if (signature_valid(sig, cr->arg_kinds, sizes, cr->n_args) != 0)
        return fail(c, "\"%.80s\" is not a canonical function signature (e.g. \"transfer(address,uint256)\": no spaces, no names)", sig);
    abi_selector(cr->selector, sig);
    for (size_t i = 0; i < k->n_calls; i++)
        if (memcmp(k->calls[i].selector, cr->selector, ABI_SELECTOR_LEN) == 0)
            return fail(c, "\"%.80s\" has the same selector as \"%.80s\"", sig, k->calls[i].signature);
    k->n_calls++;
    return 0;
}

/* ---- sections ------------------------------------------------------------ */

static int parse_erc20(pctx *c, contract_rule *k, json_t *v)
{
    static const char *const keys[] = {"transfer_to", "transfer_to_any", "approve_spenders",
                                       "approve_max", NULL};
    json_t *x;
    size_t old;
    if (!json_is_object(v))
        return fail(c, "expected an object");
    if (check_keys(c, v, keys) != 0)
        return -1;
    k->erc20 = true;
    if (opt_addr_set(c, v, "transfer_to", &k->transfer_to) < 0)
        return -1;
    if (opt_bool(c, v, "transfer_to_any", &k->transfer_to_any) < 0)
        return -1;
    if (opt_addr_set(c, v, "approve_spenders", &k->approve_spenders) < 0)
        return -1;
    if ((x = json_object_get(v, "approve_max"))) {
        old = push_key(c, "approve_max");
        if (get_amount(c, &k->approve_max, x) != 0)
            return -1;
        k->has_approve_max = true;
        pop(c, old);
    }
    if (k->transfer_to_any && !k->has_daily_limit)
        return fail(c, "transfer_to_any needs a daily_limit on the contract (payouts to arbitrary addresses must be bounded)");
    if (k->transfer_to.n || k->transfer_to.self || k->transfer_to_any)
        if (add_call(c, k, CALL_ERC20_TRANSFER, "transfer(address,uint256)") != 0)
            return -1;
    if (k->approve_spenders.n || k->approve_spenders.self)
        if (add_call(c, k, CALL_ERC20_APPROVE, "approve(address,uint256)") != 0)
            return -1;
    return 0;
}

static int parse_contract(pctx *c, contract_rule *k, json_t *v)
{
    static const char *const keys[] = {"address", "label", "daily_limit", "erc20", "calls", NULL};
    json_t *x, *calls = json_object_get(v, "calls");
    size_t old;
    if (!json_is_object(v))
        return fail(c, "expected an object");
    if (check_keys(c, v, keys) != 0)
        return -1;
    old = push_key(c, "address");
    if (!(x = json_object_get(v, "address")))
        return fail(c, "required");
    if (get_address(c, k->address, x) != 0)
        return -1;
    pop(c, old);
    old = push_key(c, "label");
    x = json_object_get(v, "label");
    if (x) {
        const char *s = json_is_string(x) ? json_string_value(x) : NULL;
        size_t n = s ? strlen(s) : 0;
        int ok = s && n > 0 && n < POLICY_LABEL_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                 s[i] == '-' || s[i] == '.';
        if (!ok)
            return fail(c, "expected 1..%u characters of [a-z0-9_.-]", POLICY_LABEL_MAX - 1);
        snprintf(k->label, sizeof k->label, "%s", s);
    } else {
        char hexa[2 * ETHTX_ADDRESS_LEN + 3];
        hex_encode_0x(hexa, k->address, ETHTX_ADDRESS_LEN);
        snprintf(k->label, sizeof k->label, "%.12s", hexa);
    }
    pop(c, old);
    if ((x = json_object_get(v, "daily_limit"))) {
        old = push_key(c, "daily_limit");
        if (get_amount(c, &k->daily_limit, x) != 0)
            return -1;
        k->has_daily_limit = true;
        pop(c, old);
    }
    size_t n_calls = calls && json_is_array(calls) ? json_array_size(calls) : 0;
    if (n_calls > POLICY_LIST_MAX) {
        old = push_key(c, "calls");
        return fail(c, "more than %u entries", POLICY_LIST_MAX);
    }
    k->calls = calloc(n_calls + 2, sizeof *k->calls);
    if (!k->calls)
        return fail(c, "out of memory");
    if ((x = json_object_get(v, "erc20"))) {
        old = push_key(c, "erc20");
        if (parse_erc20(c, k, x) != 0)
            return -1;
        pop(c, old);
    }
    if (calls) {
        size_t i;
        json_t *item;
        old = push_key(c, "calls");
        if (!json_is_array(calls))
            return fail(c, "expected a list");
        json_array_foreach(calls, i, item) {
            static const char *const ckeys[] = {"function", "args", NULL};
            size_t o2 = push_index(c, i);
            if (!json_is_object(item))
                return fail(c, "expected an object");
            if (check_keys(c, item, ckeys) != 0)
                return -1;
            json_t *fn = json_object_get(item, "function"), *args = json_object_get(item, "args");
            size_t o3 = push_key(c, "function");
            if (!fn || !json_is_string(fn))
                return fail(c, "required: a canonical function signature");
            if (strcmp(json_string_value(fn), "transfer(address,uint256)") == 0 ||
                strcmp(json_string_value(fn), "approve(address,uint256)") == 0)
                return fail(c, "ERC-20 transfer and approve are configured in the contract's \"erc20\" block");
            if (add_call(c, k, CALL_GENERIC, json_string_value(fn)) != 0)
                return -1;
            pop(c, o3);
            call_rule *cr = &k->calls[k->n_calls - 1];
            o3 = push_key(c, "args");
            if (cr->n_args > 0 || args) {
                if (!args || !json_is_array(args) || json_array_size(args) != cr->n_args)
                    return fail(c, "expected a list of %zu argument rules (\"any\", \"self\", [addresses], {\"max\": ...})",
                                cr->n_args);
                for (size_t a = 0; a < cr->n_args; a++) {
                    size_t o4 = push_index(c, a);
                    if (parse_arg_rule(c, &cr->args[a], cr->arg_kinds[a], json_array_get(args, a)) != 0)
                        return -1;
                    pop(c, o4);
                }
            }
            pop(c, o3);
            pop(c, o2);
        }
        pop(c, old);
    }
    if (k->n_calls == 0)
        return fail(c, "the contract allows no function: give \"erc20\" rules or \"calls\"");
    return 0;
}

static int parse_native(pctx *c, chain_rule *ch, json_t *v)
{
    static const char *const keys[] = {"max_value", "daily_limit", "recipients", "any_recipient", NULL};
    json_t *x;
    size_t old;
    if (!json_is_object(v))
        return fail(c, "expected an object");
    if (check_keys(c, v, keys) != 0)
        return -1;
    if (opt_amount(c, v, "max_value", &ch->native_max_value) < 0)
        return -1;
    if ((x = json_object_get(v, "daily_limit"))) {
        old = push_key(c, "daily_limit");
        if (get_amount(c, &ch->native_daily, x) != 0)
            return -1;
        ch->has_native_daily = true;
        pop(c, old);
    }
    if (opt_addr_set(c, v, "recipients", &ch->native_recipients) < 0)
        return -1;
    if (opt_bool(c, v, "any_recipient", &ch->native_any) < 0)
        return -1;
    if (ch->native_any && !ch->has_native_daily)
        return fail(c, "any_recipient needs a daily_limit (payouts to arbitrary addresses must be bounded)");
    return 0;
}

/* "replacement": {"min_bump_pct": 10, "max_replacements": 5}: a signed
 * nonce may be signed again with only its fees raised (see ledger.h). */
static int parse_replacement(pctx *c, chain_rule *ch, json_t *v)
{
    static const char *const keys[] = {"min_bump_pct", "max_replacements", NULL};
    json_t *x;
    size_t old;
    if (!json_is_object(v))
        return fail(c, "expected an object");
    if (check_keys(c, v, keys) != 0)
        return -1;
    ch->repl_min_bump_pct = POLICY_REPL_BUMP_DEFAULT;
    ch->repl_max = POLICY_REPL_MAX_DEFAULT;
    if ((x = json_object_get(v, "min_bump_pct"))) {
        old = push_key(c, "min_bump_pct");
        if (get_uint(c, &ch->repl_min_bump_pct, x, 1, POLICY_REPL_BUMP_MAX) != 0)
            return -1;
        pop(c, old);
    }
    if ((x = json_object_get(v, "max_replacements"))) {
        old = push_key(c, "max_replacements");
        if (get_uint(c, &ch->repl_max, x, 0, POLICY_REPL_MAX) != 0)
            return -1;
        pop(c, old);
    }
    return 0;
}

static int parse_chain(pctx *c, chain_rule *ch, json_t *v)
{
    static const char *const keys[] = {"chain_id", "tx_types", "max_gas_limit", "max_fee_per_gas",
                                       "max_nonce_gap", "replacement", "native", "contracts", NULL};
    json_t *x;
    size_t old;
    if (!json_is_object(v))
        return fail(c, "expected an object");
    if (check_keys(c, v, keys) != 0)
        return -1;
    old = push_key(c, "chain_id");
    if (!(x = json_object_get(v, "chain_id")))
        return fail(c, "required");
    if (get_uint(c, &ch->chain_id, x, 1, ETHTX_CHAIN_ID_MAX) != 0)
        return -1;
    pop(c, old);
    ch->allow_eip1559 = ch->allow_legacy = true;
    if ((x = json_object_get(v, "tx_types"))) {
        size_t i;
        json_t *t;
        old = push_key(c, "tx_types");
        if (!json_is_array(x) || json_array_size(x) == 0)
            return fail(c, "expected a non-empty list of \"eip1559\" and/or \"legacy\"");
        ch->allow_eip1559 = ch->allow_legacy = false;
        json_array_foreach(x, i, t) {
            const char *s = json_is_string(t) ? json_string_value(t) : "";
            bool *slot = strcmp(s, "eip1559") == 0 ? &ch->allow_eip1559
                         : strcmp(s, "legacy") == 0 ? &ch->allow_legacy : NULL;
            if (!slot || *slot)
                return fail(c, "expected distinct \"eip1559\" and/or \"legacy\"");
            *slot = true;
        }
        pop(c, old);
    }
    if ((x = json_object_get(v, "max_gas_limit"))) {
        old = push_key(c, "max_gas_limit");
        if (get_uint(c, &ch->max_gas_limit, x, 21000, UINT64_MAX >> 1) != 0)
            return -1;
        ch->has_max_gas_limit = true;
        pop(c, old);
    }
    ch->max_nonce_gap = POLICY_NONCE_GAP_DEFAULT;
    if ((x = json_object_get(v, "max_nonce_gap"))) {
        old = push_key(c, "max_nonce_gap");
        if (get_uint(c, &ch->max_nonce_gap, x, 1, POLICY_NONCE_GAP_MAX) != 0)
            return -1;
        pop(c, old);
    }
    if ((x = json_object_get(v, "replacement"))) {
        old = push_key(c, "replacement");
        if (parse_replacement(c, ch, x) != 0)
            return -1;
        pop(c, old);
    }
    if ((x = json_object_get(v, "max_fee_per_gas"))) {
        old = push_key(c, "max_fee_per_gas");
        if (get_amount(c, &ch->max_fee, x) != 0)
            return -1;
        ch->has_max_fee = true;
        pop(c, old);
    }
    if ((x = json_object_get(v, "native"))) {
        old = push_key(c, "native");
        if (parse_native(c, ch, x) != 0)
            return -1;
        pop(c, old);
    }
    if ((x = json_object_get(v, "contracts"))) {
        size_t i;
        json_t *item;
        old = push_key(c, "contracts");
        if (!json_is_array(x))
            return fail(c, "expected a list");
        if (json_array_size(x) > POLICY_LIST_MAX)
            return fail(c, "more than %u entries", POLICY_LIST_MAX);
        ch->contracts = calloc(json_array_size(x) + 1, sizeof *ch->contracts);
        if (!ch->contracts)
            return fail(c, "out of memory");
        json_array_foreach(x, i, item) {
            size_t o2 = push_index(c, i);
            contract_rule *k = &ch->contracts[ch->n_contracts++];
            if (parse_contract(c, k, item) != 0)
                return -1;
            for (size_t j = 0; j + 1 < ch->n_contracts; j++)
                if (memcmp(ch->contracts[j].address, k->address, ETHTX_ADDRESS_LEN) == 0)
                    return fail(c, "contract listed twice");
            pop(c, o2);
        }
        pop(c, old);
    }
    return 0;
}

static int parse_root(pctx *c, policy *p, json_t *root)
{
    static const char *const keys[] = {"version", "messages", "chains", NULL};
    json_t *x;
    size_t old;
    uint64_t version = 0;
    if (!json_is_object(root))
        return fail(c, "a policy is a JSON object");
    if (check_keys(c, root, keys) != 0)
        return -1;
    old = push_key(c, "version");
    if (!(x = json_object_get(root, "version")))
        return fail(c, "required (1)");
    if (get_uint(c, &version, x, 1, 1) != 0)
        return -1;
    pop(c, old);
    p->messages_text_only = true;
    if ((x = json_object_get(root, "messages"))) {
        static const char *const mkeys[] = {"allow", "max_bytes", "text_only", "prefixes", NULL};
        json_t *y;
        old = push_key(c, "messages");
        if (!json_is_object(x))
            return fail(c, "expected an object");
        if (check_keys(c, x, mkeys) != 0)
            return -1;
        p->messages_max = 1024;
        if ((y = json_object_get(x, "allow"))) {
            size_t o2 = push_key(c, "allow");
            if (get_bool(c, &p->messages_allow, y) != 0)
                return -1;
            pop(c, o2);
        }
        if ((y = json_object_get(x, "max_bytes"))) {
            size_t o2 = push_key(c, "max_bytes");
            if (get_uint(c, &p->messages_max, y, 1, 16384) != 0)
                return -1;
            pop(c, o2);
        }
        if ((y = json_object_get(x, "text_only"))) {
            size_t o2 = push_key(c, "text_only");
            if (get_bool(c, &p->messages_text_only, y) != 0)
                return -1;
            pop(c, o2);
        }
        if ((y = json_object_get(x, "prefixes"))) {
            size_t o2 = push_key(c, "prefixes"), i;
            json_t *item;
            if (!json_is_array(y) || json_array_size(y) == 0 || json_array_size(y) > POLICY_PREFIXES_MAX)
                return fail(c, "expected a list of 1..%u prefixes (leave the key out to allow any)",
                            POLICY_PREFIXES_MAX);
            p->messages_prefixes = calloc(json_array_size(y), sizeof *p->messages_prefixes);
            if (!p->messages_prefixes)
                return fail(c, "out of memory");
            json_array_foreach(y, i, item) {
                size_t o3 = push_index(c, i);
                const char *t = json_is_string(item) ? json_string_value(item) : NULL;
                size_t tl = t ? json_string_length(item) : 0;
                if (!t || tl == 0 || tl > POLICY_PREFIX_MAX || strlen(t) != tl ||
                    !policy_is_text((const uint8_t *)t, tl))
                    return fail(c, "expected 1..%u bytes of printable text", POLICY_PREFIX_MAX);
                p->messages_prefixes[p->n_messages_prefixes] = strdup(t);
                if (!p->messages_prefixes[p->n_messages_prefixes])
                    return fail(c, "out of memory");
                p->n_messages_prefixes++;
                pop(c, o3);
            }
            pop(c, o2);
        }
        pop(c, old);
    }
    old = push_key(c, "chains");
    x = json_object_get(root, "chains");
    if (!x || !json_is_array(x) || json_array_size(x) == 0)
        return fail(c, "required: a non-empty list of chain policies");
    if (json_array_size(x) > POLICY_LIST_MAX)
        return fail(c, "more than %u entries", POLICY_LIST_MAX);
    p->chains = calloc(json_array_size(x), sizeof *p->chains);
    if (!p->chains)
        return fail(c, "out of memory");
    size_t i;
    json_t *item;
    json_array_foreach(x, i, item) {
        size_t o2 = push_index(c, i);
        chain_rule *ch = &p->chains[p->n_chains++];
        if (parse_chain(c, ch, item) != 0)
            return -1;
        for (size_t j = 0; j + 1 < p->n_chains; j++)
            if (p->chains[j].chain_id == ch->chain_id)
                return fail(c, "chain %llu listed twice", (unsigned long long)ch->chain_id);
        pop(c, o2);
    }
    pop(c, old);
    return 0;
}

void policy_free(policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_chains; i++) {
        chain_rule *ch = &p->chains[i];
        addr_set_dispose(&ch->native_recipients);
        for (size_t j = 0; j < ch->n_contracts; j++) {
            contract_rule *k = &ch->contracts[j];
            addr_set_dispose(&k->transfer_to);
            addr_set_dispose(&k->approve_spenders);
            for (size_t m = 0; k->calls && m < k->n_calls; m++)
                for (size_t a = 0; a < POLICY_ARGS_MAX; a++)
                    addr_set_dispose(&k->calls[m].args[a].set);
            free(k->calls);
        }
        free(ch->contracts);
    }
    free(p->chains);
    for (size_t i = 0; i < p->n_messages_prefixes; i++)
        free(p->messages_prefixes[i]);
    free(p->messages_prefixes);
    free(p->canonical);
    free(p);
}

int policy_parse(policy **out, char *err, size_t err_len, const uint8_t *json, size_t len)
{
    pctx c = {err, err_len, {0}};
    json_error_t jerr;
    json_t *root = NULL;
    policy *p = NULL;
    int rc = -1;

    *out = NULL;
    if (len > POLICY_FILE_MAX) {
        fail(&c, "larger than %u bytes", POLICY_FILE_MAX);
        return -1;
    }
    if (sodium_init() < 0) {
        fail(&c, "libsodium unusable");
        return -1;
    }
    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && err_len)
            snprintf(err, err_len, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return -1;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        fail(&c, "out of memory");
        goto out;
    }
    if (parse_root(&c, p, root) != 0)
        goto out;
    p->canonical = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!p->canonical) {
        fail(&c, "out of memory");
        goto out;
    }
    p->canonical_len = strlen(p->canonical);
    crypto_hash_sha256(p->hash, (const uint8_t *)p->canonical, p->canonical_len);
    *out = p;
    p = NULL;
    rc = 0;
out:
    policy_free(p);
    json_decref(root);
    return rc;
}

int policy_load_file(policy **out, char *err, size_t err_len, const char *path)
{
    uint8_t *buf = NULL;
    size_t have = 0;
    int rc = -1;
    struct stat st;
    /* As the KEK ring: the file itself, not where a symlink points. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    *out = NULL;
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s%s", path, strerror(errno),
                 errno == ELOOP ? " (a symbolic link: give the file itself)" : "");
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "%s: not a regular file", path);
        goto out;
    }
    /* Whoever may write the policy decides what is signed: root or the
     * loading user only, never a group or everyone. */
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) != 0) {
        snprintf(err, err_len, "%s: must be owned by root or uid %u and not group/other-writable "
                 "(chmod 0644 or 0600), is uid %u mode %04o", path, (unsigned)geteuid(),
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    buf = malloc(POLICY_FILE_MAX + 1);
    if (!buf) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, POLICY_FILE_MAX + 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        if (have > POLICY_FILE_MAX) {
            snprintf(err, err_len, "%s: larger than %u bytes", path, POLICY_FILE_MAX);
            goto out;
        }
    }
    char why[400];
    if (policy_parse(out, why, sizeof why, buf, have) != 0) {
        snprintf(err, err_len, "%s: %s", path, why);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

const uint8_t *policy_hash(const policy *p)
{
    return p->hash;
}

const char *policy_canonical(const policy *p, size_t *len)
{
    *len = p->canonical_len;
    return p->canonical;
}

size_t policy_chain_count(const policy *p)
{
    return p->n_chains;
}

