/* policy_check: decisions against a parsed policy (policy.h). */
#include "policy_internal.h"

#include "hex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool addr_set_has(const addr_set *s, const uint8_t addr[ETHTX_ADDRESS_LEN],
                         const uint8_t self[ETHTX_ADDRESS_LEN])
{
    if (s->self && memcmp(addr, self, ETHTX_ADDRESS_LEN) == 0)
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (memcmp(s->addrs[i], addr, ETHTX_ADDRESS_LEN) == 0)
            return true;
    return false;
}

/* ---- decisions ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static void deny(policy_decision *d, const char *rule, const char *fmt, ...)
{
    va_list ap;
    d->allow = false;
    d->n_spends = 0;
    snprintf(d->rule, sizeof d->rule, "%s", rule);
    va_start(ap, fmt);
    vsnprintf(d->detail, sizeof d->detail, fmt, ap);
    va_end(ap);
}

static void add_spend(policy_decision *d, const uint8_t *token, const u256 *amount, bool limited,
                      const u256 *limit, const char *label)
{
    policy_spend *s = &d->spends[d->n_spends++];
    memset(s, 0, sizeof *s);
    if (token)
        memcpy(s->token, token, ETHTX_ADDRESS_LEN);
    s->amount = *amount;
    s->limited = limited;
    if (limited)
        s->limit = *limit;
    snprintf(s->label, sizeof s->label, "%s", label);
}

static const chain_rule *find_chain(const policy *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_chains; i++)
        if (p->chains[i].chain_id == id)
            return &p->chains[i];
    return NULL;
}

static const contract_rule *find_contract(const chain_rule *ch, const uint8_t addr[ETHTX_ADDRESS_LEN])
{
    for (size_t i = 0; i < ch->n_contracts; i++)
        if (memcmp(ch->contracts[i].address, addr, ETHTX_ADDRESS_LEN) == 0)
            return &ch->contracts[i];
    return NULL;
}

static void addr_text(char out[43], const uint8_t a[ETHTX_ADDRESS_LEN])
{
    hex_encode_0x(out, a, ETHTX_ADDRESS_LEN);
}

/* Checks calldata against one allowed function; fills spends. */
static void check_call(policy_decision *d, const contract_rule *k, const call_rule *cr,
                       const ethtx *tx, const uint8_t self[ETHTX_ADDRESS_LEN])
{
    abi_value vals[POLICY_ARGS_MAX];
    char a[43];
    abi_err e = abi_decode_call(vals, cr->n_args, cr->signature, tx->data, tx->data_len,
                                ABI_DECODE_STRICT);
    if (e != ABI_OK) {
        deny(d, "contract.calldata", "calldata for %s on %s does not decode strictly: %s",
             cr->signature, k->label, abi_strerror(e));
        return;
    }
    if (cr->kind == CALL_ERC20_TRANSFER) {
        const uint8_t *to = vals[0].word + 12;
        u256 amount;
        u256_from_be32(&amount, vals[1].word);
        if (!k->transfer_to_any && !addr_set_has(&k->transfer_to, to, self)) {
            addr_text(a, to);
            deny(d, "erc20.recipient", "%s transfer to %s: recipient not in transfer_to", k->label, a);
            return;
        }
        if (!u256_is_zero(&amount))
            add_spend(d, k->address, &amount, k->has_daily_limit, &k->daily_limit, k->label);
        return;
    }
    if (cr->kind == CALL_ERC20_APPROVE) {
        const uint8_t *spender = vals[0].word + 12;
        u256 amount;
        u256_from_be32(&amount, vals[1].word);
        if (!addr_set_has(&k->approve_spenders, spender, self)) {
            addr_text(a, spender);
            deny(d, "erc20.spender", "%s approve for %s: spender not in approve_spenders", k->label, a);
            return;
        }
        if (k->has_approve_max && u256_cmp(&amount, &k->approve_max) > 0) {
            deny(d, "erc20.approve_max", "%s approve above approve_max", k->label);
            return;
        }
        return;
    }
    for (size_t i = 0; i < cr->n_args; i++) {
        const arg_rule *r = &cr->args[i];
        const uint8_t *addr = vals[i].word + 12;
        switch (r->kind) {
        case ARG_ANY:
            break;
        case ARG_SELF:
            if (memcmp(addr, self, ETHTX_ADDRESS_LEN) != 0) {
                deny(d, "call.arg", "argument %zu of %s on %s must be the signing address", i + 1,
                     cr->signature, k->label);
                return;
            }
            break;
        case ARG_SET:
            if (!addr_set_has(&r->set, addr, self)) {
                addr_text(a, addr);
                deny(d, "call.arg", "argument %zu of %s on %s: %s is not allowed", i + 1,
                     cr->signature, k->label, a);
                return;
            }
            break;
        case ARG_MAX: {
            u256 v;
            u256_from_be32(&v, vals[i].word);
            if (u256_cmp(&v, &r->max) > 0) {
                deny(d, "call.arg", "argument %zu of %s on %s is above its max", i + 1,
                     cr->signature, k->label);
                return;
            }
            break;
        }
        }
    }
}

void policy_check_tx(const policy *p, policy_decision *d, const ethtx *tx,
                     const uint8_t self[ETHTX_ADDRESS_LEN])
{
    char a[43];
    u256 value, fee;
    memset(d, 0, sizeof *d);

    const chain_rule *ch = find_chain(p, tx->chain_id);
    if (!ch) {
        deny(d, "chain.not_allowed", "chain %llu is not in the policy", (unsigned long long)tx->chain_id);
        return;
    }
    if ((tx->type == ETHTX_EIP1559 && !ch->allow_eip1559) || (tx->type == ETHTX_LEGACY && !ch->allow_legacy)) {
        deny(d, "tx.type_not_allowed", "%s transactions are not allowed on chain %llu",
             tx->type == ETHTX_EIP1559 ? "EIP-1559" : "legacy", (unsigned long long)ch->chain_id);
        return;
    }
    if (!tx->has_to) {
        deny(d, "tx.contract_creation", "contract creation is never signed");
        return;
    }
    if (ch->has_max_gas_limit && tx->gas_limit > ch->max_gas_limit) {
        deny(d, "gas.limit", "gas limit %llu above max_gas_limit %llu", (unsigned long long)tx->gas_limit,
             (unsigned long long)ch->max_gas_limit);
        return;
    }
    u256_from_be32(&fee, tx->max_fee);
    if (ch->has_max_fee && u256_cmp(&fee, &ch->max_fee) > 0) {
        deny(d, "gas.fee_cap", "%s above max_fee_per_gas", tx->type == ETHTX_EIP1559 ? "max_fee_per_gas" : "gas_price");
        return;
    }
    if (tx->type == ETHTX_EIP1559) {
        u256 prio;
        u256_from_be32(&prio, tx->max_priority_fee);
        if (u256_cmp(&prio, &fee) > 0) {
            deny(d, "gas.priority_above_max", "max_priority_fee_per_gas above max_fee_per_gas");
            return;
        }
    }
    u256_from_be32(&value, tx->value);
    if (u256_cmp(&value, &ch->native_max_value) > 0) {
        deny(d, "native.value_cap", "value above native.max_value");
        return;
    }
    if (tx->data_len == 0) {
        if (!ch->native_any && !addr_set_has(&ch->native_recipients, tx->to, self)) {
            addr_text(a, tx->to);
            deny(d, "native.recipient", "native transfer to %s: not in native.recipients", a);
            return;
        }
    } else {
        const contract_rule *k = find_contract(ch, tx->to);
        if (!k) {
            addr_text(a, tx->to);
            deny(d, "contract.not_allowed", "%s is not an allowed contract on chain %llu", a,
                 (unsigned long long)ch->chain_id);
            return;
        }
        if (tx->data_len < ABI_SELECTOR_LEN) {
            deny(d, "contract.calldata", "calldata shorter than a selector");
            return;
        }
        const call_rule *cr = NULL;
        for (size_t i = 0; i < k->n_calls; i++)
            if (memcmp(k->calls[i].selector, tx->data, ABI_SELECTOR_LEN) == 0)
                cr = &k->calls[i];
        if (!cr) {
            char sel[11];
            hex_encode_0x(sel, tx->data, ABI_SELECTOR_LEN);
            deny(d, "contract.selector", "selector %s is not allowed on %s", sel, k->label);
            return;
        }
        check_call(d, k, cr, tx, self);
        if (d->rule[0])
            return;
    }
    /* The native coin leaves the key as value and as gas: the most a
     * transaction can burn is gas_limit × max_fee_per_gas (legacy:
     * gas_price), and all of it counts against native.daily_limit. */
    u256 gas_cost, native;
    u256 gas_limit = u256_from_u64(tx->gas_limit);
    if (u256_mul(&gas_cost, &gas_limit, &fee) != 0 || u256_add(&native, &value, &gas_cost) != 0) {
        deny(d, "gas.cost_overflow", "gas_limit × %s plus value does not fit 256 bits",
             tx->type == ETHTX_EIP1559 ? "max_fee_per_gas" : "gas_price");
        return;
    }
    if (!u256_is_zero(&native)) {
        if (d->n_spends >= POLICY_SPENDS_MAX) { /* cannot happen: at most one token spend */
            deny(d, "internal", "too many spends");
            return;
        }
        add_spend(d, NULL, &native, ch->has_native_daily, &ch->native_daily, "native");
    }
    d->max_nonce_gap = ch->max_nonce_gap;
    d->repl_min_bump_pct = (uint32_t)ch->repl_min_bump_pct;
    d->repl_max = (uint32_t)ch->repl_max;
    d->allow = true;
}

bool policy_is_text(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        uint8_t b = s[i];
        size_t n;
        if (b < 0x80) {
            cp = b;
            n = 1;
        } else if (b >= 0xc2 && b <= 0xdf) {
            cp = b & 0x1fu;
            n = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            cp = b & 0x0fu;
            n = 3;
        } else if (b >= 0xf0 && b <= 0xf4) {
            cp = b & 0x07u;
            n = 4;
        } else {
            return false; /* continuation byte first, 0xc0/0xc1 (overlong), 0xf5.. */
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false; /* overlong, beyond Unicode, surrogate */
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7f && cp <= 0x9f))
            return false; /* C0 (but tab, LF, CR), DEL, C1 */
        if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
            return false; /* bidi overrides and isolates, BOM: text that displays as other text */
        i += n;
    }
    return true;
}

void policy_check_message(const policy *p, policy_decision *d, const uint8_t *msg, size_t msg_len)
{
    memset(d, 0, sizeof *d);
    if (!p->messages_allow) {
        deny(d, "message.not_allowed", "the policy does not allow message signing");
        return;
    }
    if (msg_len > p->messages_max) {
        deny(d, "message.too_long", "message of %zu bytes above messages.max_bytes %llu", msg_len,
             (unsigned long long)p->messages_max);
        return;
    }
    bool text = policy_is_text(msg, msg_len);
    if (msg_len == 32 && !text) {
        /* eth_sign-style: a 32-byte hash to "approve" is a transaction or
         * permit digest in disguise. Never, whatever text_only says. */
        deny(d, "message.hash_like", "a 32-byte binary message looks like a hash to approve; never signed");
        return;
    }
    if (p->messages_text_only && !text) {
        deny(d, "message.not_text", "message is not printable UTF-8 text (messages.text_only)");
        return;
    }
    if (p->n_messages_prefixes) {
        bool ok = false;
        for (size_t i = 0; i < p->n_messages_prefixes && !ok; i++) {
            size_t pl = strlen(p->messages_prefixes[i]);
            ok = pl <= msg_len && memcmp(msg, p->messages_prefixes[i], pl) == 0;
        }
        if (!ok) {
            deny(d, "message.prefix", "message does not start with one of messages.prefixes");
            return;
        }
    }
    d->allow = true;
}
