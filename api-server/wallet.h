/* wallet: the custodial wallet's address in text (EIP-55) and the error
 * mapping of signer calls made on behalf of an RPC. */
#ifndef COFFER_WALLET_H
#define COFFER_WALLET_H

#include "rpc_server.h"
#include "signer_client.h"

#include <stdbool.h>
#include <stdint.h>

#define WALLET_ADDRESS_TEXT_LEN 42u /* "0x" + 40 hex digits */

/* Writes addr as "0x" + 40 hex digits in EIP-55 mixed-case checksum form,
 * NUL-terminated. out: output, WALLET_ADDRESS_TEXT_LEN + 1 bytes. */
void wallet_address_format(char out[WALLET_ADDRESS_TEXT_LEN + 1], const uint8_t addr[20]);

/* Parses 40 hex digits (no prefix, any case) into out. Returns 0 or -1. */
__attribute__((warn_unused_result))
int wallet_address_parse_hex(uint8_t out[20], const char *hex40);

/* Fails the call for a signer error: UNAVAILABLE (with a retry hint) when
 * the signer could not be reached or did not answer in time, INTERNAL
 * otherwise (logged with the signer's status and rule). what: the
 * operation, for the message ("generate the client's wallet"). Returns the
 * code set. */
rpc_code wallet_fail_signer(rpc_ctx *ctx, const signer_error *e, const char *what);

#endif
