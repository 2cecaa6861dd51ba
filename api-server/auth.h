/* auth: who is calling, from the `authorization: Bearer <token>` header.
 *
 * The operator's admin token comes from config (auth.admin_token, a
 * secret). It is kept only as a keyed BLAKE2b-256 hash (random key per
 * process), and a presented token is hashed the same way and compared
 * with sodium_memcmp: the comparison takes the same time whatever the
 * tokens' contents and lengths. Any other token goes to a pluggable
 * resolver (the ledger plugs API-key lookup in here); without one, every
 * other token is unknown. Tokens are never logged or copied anywhere. */
#ifndef COFFER_AUTH_H
#define COFFER_AUTH_H

#include "rpc_table.h"

#include <stddef.h>

#define AUTH_TOKEN_MAX 512u        /* longest bearer token accepted */
#define AUTH_ADMIN_TOKEN_MIN 32u   /* shortest admin token accepted in config */
#define AUTH_ID_MAX 64u

typedef enum {
    AUTH_ANONYMOUS = 0, /* no authorization header */
    AUTH_CLIENT,        /* a client's API key */
    AUTH_ADMIN,         /* the operator's admin token */
} auth_kind;

typedef struct {
    auth_kind kind;
    char id[AUTH_ID_MAX]; /* AUTH_CLIENT: the client's id (printable, no spaces); else "" */
} auth_caller;

typedef enum {
    AUTH_RESOLVE_OK = 0,     /* *out filled: kind AUTH_CLIENT and id */
    AUTH_RESOLVE_UNKNOWN,    /* no such credential (or revoked) */
    AUTH_RESOLVE_UNAVAILABLE /* could not tell now (database down) */
} auth_resolve_result;

/* Resolves a bearer token that is not the admin token. Runs on worker
 * threads (may block on PostgreSQL; must be thread-safe). token[0..len) is
 * printable ASCII, 1..AUTH_TOKEN_MAX bytes, not NUL-terminated. */
typedef auth_resolve_result (*auth_resolve_fn)(void *arg, auth_caller *out, const char *token, size_t len);

typedef struct auth auth;

/* admin_token: NULL or "" for none (admin methods are then refused);
 * otherwise at least AUTH_ADMIN_TOKEN_MIN printable ASCII characters
 * without spaces. Returns the object, or NULL with err saying why. */
__attribute__((warn_unused_result))
auth *auth_new(char *err, size_t err_len, const char *admin_token);

/* Wipes the hash and frees. a may be NULL. */
void auth_free(auth *a);

/* Plugs a resolver in (before serving starts). fn NULL: none. */
void auth_set_resolver(auth *a, auth_resolve_fn fn, void *arg);

/* Establishes the caller from the authorization header value
 * header[0..header_len) (header NULL: none, the caller is anonymous).
 * Returns RPC_OK with *out set; RPC_UNAUTHENTICATED for a malformed
 * header or an unknown token; RPC_UNAVAILABLE when the resolver could not
 * tell. msg[0..msg_len) says why, without the token. */
__attribute__((warn_unused_result))
rpc_code auth_authenticate(const auth *a, auth_caller *out, char *msg, size_t msg_len,
                           const char *header, size_t header_len);

/* Whether caller may call a method open to need. Returns RPC_OK,
 * RPC_UNAUTHENTICATED (anonymous caller, credential needed) or
 * RPC_PERMISSION_DENIED (known caller without the right), with msg. */
__attribute__((warn_unused_result))
rpc_code auth_authorize(const auth_caller *caller, char *msg, size_t msg_len, rpc_access need);

/* "anonymous", "admin" or "client:<id>", written into buf. Returns buf. */
const char *auth_caller_name(const auth_caller *caller, char *buf, size_t len);

#endif
