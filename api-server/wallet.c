/* wallet: see wallet.h. */
#include "wallet.h"

#include "hex.h"
#include "keccak.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

void wallet_address_format(char out[WALLET_ADDRESS_TEXT_LEN + 1], const uint8_t addr[20])
{
    static const char digits[] = "0123456789abcdef";
    char lower[40];
    uint8_t h[KECCAK256_DIGEST_LEN];
    for (size_t i = 0; i < 20; i++) {
        lower[2 * i] = digits[addr[i] >> 4];
        lower[2 * i + 1] = digits[addr[i] & 15];
    }
    keccak256(h, (const uint8_t *)lower, sizeof lower);
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < 40; i++) {
        unsigned nib = (h[i / 2] >> (i % 2 ? 0 : 4)) & 15;
        char c = lower[i];
        out[2 + i] = (c >= 'a' && nib >= 8) ? (char)(c - 'a' + 'A') : c;
    }
    out[WALLET_ADDRESS_TEXT_LEN] = '\0';
}

static int wallet_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int wallet_address_parse_hex(uint8_t out[20], const char *hex40)
{
    if (strlen(hex40) != 40)
        return -1;
    for (size_t i = 0; i < 20; i++) {
        int hi = wallet_nibble(hex40[2 * i]), lo = wallet_nibble(hex40[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

rpc_code wallet_fail_signer(rpc_ctx *ctx, const signer_error *e, const char *what)
{
    char qm[600];
    log_warn("wallet.signer", "request_id=%s op=\"%s\" status=%s rule=%s message=%s", rpc_ctx_request_id(ctx), what,
             signer_status_name(e->status), e->rule[0] ? e->rule : "-", log_quote(qm, sizeof qm, e->message));
    if (e->status == SIGNER_ERR_UNAVAILABLE || e->status == SIGNER_ERR_TIMEOUT ||
        e->status == SIGNER_ERR_RETRY_LATER)
        return rpc_ctx_fail_retry(ctx, RPC_UNAVAILABLE, 1000, "coffer-signer is unavailable, cannot %s: %s; retry",
                                  what, e->message);
    return rpc_ctx_fail(ctx, RPC_INTERNAL, "internal error: coffer-signer refused to %s (%s); request id %s", what,
                        signer_status_name(e->status), rpc_ctx_request_id(ctx));
}
