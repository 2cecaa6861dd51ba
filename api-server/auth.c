#include "auth.h"

#include "secmem.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_HASH_LEN crypto_generichash_BYTES /* 32 */

struct auth {
    uint8_t key[crypto_generichash_KEYBYTES];
    uint8_t admin_hash[AUTH_HASH_LEN];
    bool has_admin;
    auth_resolve_fn resolve;
    void *resolve_arg;
};

static bool auth_token_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

auth *auth_new(char *err, size_t err_len, const char *admin_token)
{
    if (secmem_init() != 0) {
        snprintf(err, err_len, "libsodium failed to initialise");
        return NULL;
    }
    auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    randombytes_buf(a->key, sizeof a->key);
    if (admin_token && *admin_token) {
        size_t n = strlen(admin_token);
        if (n < AUTH_ADMIN_TOKEN_MIN || n > AUTH_TOKEN_MAX) {
            snprintf(err, err_len, "auth.admin_token must be %u to %u characters long",
                     AUTH_ADMIN_TOKEN_MIN, AUTH_TOKEN_MAX);
            auth_free(a);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            if (!auth_token_char_ok((unsigned char)admin_token[i])) {
                snprintf(err, err_len, "auth.admin_token may hold printable ASCII only, no spaces");
                auth_free(a);
                return NULL;
            }
        }
        crypto_generichash(a->admin_hash, sizeof a->admin_hash, (const unsigned char *)admin_token, n,
                           a->key, sizeof a->key);
        a->has_admin = true;
    } else {
        /* No admin token: a random hash that no token matches, so the
         * comparison below runs the same either way. */
        randombytes_buf(a->admin_hash, sizeof a->admin_hash);
    }
    return a;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    secmem_wipe(a, sizeof *a);
    free(a);
}

void auth_set_resolver(auth *a, auth_resolve_fn fn, void *arg)
{
    a->resolve = fn;
    a->resolve_arg = arg;
}

/* Case-insensitive "Bearer " prefix. */
static bool auth_is_bearer(const char *h, size_t n)
{
    static const char scheme[] = "bearer ";
    if (n < sizeof scheme - 1)
        return false;
    for (size_t i = 0; i < sizeof scheme - 1; i++) {
        char c = h[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return false;
    }
    return true;
}

rpc_code auth_authenticate(const auth *a, auth_caller *out, char *msg, size_t msg_len,
                           const char *header, size_t header_len)
{
    memset(out, 0, sizeof *out);
    out->kind = AUTH_ANONYMOUS;
    if (!header)
        return RPC_OK;
    if (!auth_is_bearer(header, header_len)) {
        snprintf(msg, msg_len, "authorization must be \"Bearer <token>\"");
        return RPC_UNAUTHENTICATED;
    }
    const char *token = header + 7;
    size_t len = header_len - 7;
    while (len && *token == ' ') {
        token++;
        len--;
    }
    if (len == 0 || len > AUTH_TOKEN_MAX) {
        snprintf(msg, msg_len, "the bearer token is empty or longer than %u bytes", AUTH_TOKEN_MAX);
        return RPC_UNAUTHENTICATED;
    }
    for (size_t i = 0; i < len; i++) {
        if (!auth_token_char_ok((unsigned char)token[i])) {
            snprintf(msg, msg_len, "the bearer token holds a character that no token has");
            return RPC_UNAUTHENTICATED;
        }
    }
    uint8_t h[AUTH_HASH_LEN];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, len, a->key, sizeof a->key);
    bool is_admin = secmem_equal(h, a->admin_hash, sizeof h);
    secmem_wipe(h, sizeof h);
    if (is_admin && a->has_admin) {
        out->kind = AUTH_ADMIN;
        return RPC_OK;
    }
    if (a->resolve) {
        auth_caller c;
        memset(&c, 0, sizeof c);
        switch (a->resolve(a->resolve_arg, &c, token, len)) {
        case AUTH_RESOLVE_OK:
            c.kind = AUTH_CLIENT;
            c.id[sizeof c.id - 1] = '\0';
            *out = c;
            return RPC_OK;
        case AUTH_RESOLVE_UNAVAILABLE:
            snprintf(msg, msg_len, "credentials cannot be checked right now; retry");
            return RPC_UNAVAILABLE;
        case AUTH_RESOLVE_UNKNOWN:
            break;
        }
    }
    snprintf(msg, msg_len, "the bearer token is not valid");
    return RPC_UNAUTHENTICATED;
}

rpc_code auth_authorize(const auth_caller *c, char *msg, size_t msg_len, rpc_access need)
{
    switch (need) {
    case RPC_ACCESS_ANYONE:
        return RPC_OK;
    case RPC_ACCESS_CLIENT:
        if (c->kind == AUTH_CLIENT)
            return RPC_OK;
        if (c->kind == AUTH_ANONYMOUS) {
            snprintf(msg, msg_len, "this method needs a client API key (authorization: Bearer <key>)");
            return RPC_UNAUTHENTICATED;
        }
        snprintf(msg, msg_len, "this method acts for a client: call it with the client's API key");
        return RPC_PERMISSION_DENIED;
    case RPC_ACCESS_ADMIN:
        if (c->kind == AUTH_ADMIN)
            return RPC_OK;
        if (c->kind == AUTH_ANONYMOUS) {
            snprintf(msg, msg_len, "this method needs the admin token (authorization: Bearer <token>)");
            return RPC_UNAUTHENTICATED;
        }
        snprintf(msg, msg_len, "this method is for operators only");
        return RPC_PERMISSION_DENIED;
    }
    snprintf(msg, msg_len, "unknown access rule");
    return RPC_INTERNAL;
}

/* Appends s to buf[*pos..len), truncated, NUL-terminated. */
static void auth_name_put(char *buf, size_t len, size_t *pos, const char *s)
{
    size_t n = strnlen(s, len - 1 - *pos);
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
}

const char *auth_caller_name(const auth_caller *c, char *buf, size_t len)
{
    /* Once per call for the access log: copies, not printf. */
    if (len == 0)
        return buf;
    size_t pos = 0;
    switch (c->kind) {
    case AUTH_ADMIN: auth_name_put(buf, len, &pos, "admin"); break;
    case AUTH_CLIENT:
        auth_name_put(buf, len, &pos, "client:");
        auth_name_put(buf, len, &pos, c->id);
        break;
    case AUTH_ANONYMOUS:
    default: auth_name_put(buf, len, &pos, "anonymous"); break;
    }
    return buf;
}
