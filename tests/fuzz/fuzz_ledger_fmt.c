/* The ledger's parsers of caller input (gRPC string fields): amounts in
 * base units, page tokens, order ids, addresses, tx hashes. Properties: no
 * crash; an accepted amount is canonical (it prints back to the same
 * text); a refused one says why; a decoded page token re-encodes to one
 * that decodes to the same values; the validators agree with their
 * definitions' lengths. */
#include "fuzz_check.h"
#include "ledger_fmt.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    if (size >= sizeof text)
        size = sizeof text - 1;
    memcpy(text, data, size);
    text[size] = '\0'; /* the gRPC layer hands these over as C strings */

    u256 v;
    char msg[256];
    msg[0] = '\0';
    if (ledger_fmt_parse_amount(&v, msg, sizeof msg, "amount", text) == 0) {
        char back[U256_DEC_MAX];
        u256_to_dec(back, &v);
        CHECK(strcmp(back, text) == 0);
        CHECK(!u256_is_zero(&v));
    } else {
        CHECK(msg[0] != '\0');
    }

    int64_t us = 0;
    char id[LEDGER_PAGE_ID_MAX];
    if (ledger_fmt_page_token_decode(&us, id, sizeof id, text) == 0) {
        char tok[LEDGER_PAGE_TOKEN_MAX];
        int64_t us2 = 0;
        char id2[LEDGER_PAGE_ID_MAX];
        CHECK(ledger_fmt_page_token_encode(tok, sizeof tok, us, id) == 0);
        CHECK(ledger_fmt_page_token_decode(&us2, id2, sizeof id2, tok) == 0);
        CHECK(us2 == us && strcmp(id2, id) == 0);
    }
    ledger_page page;
    if (ledger_fmt_page_parse(&page, msg, sizeof msg, 0, text) == 0)
        CHECK(!page.after || ledger_fmt_is_uuid(page.after_id));

    if (ledger_fmt_is_address(text))
        CHECK(strlen(text) == 42 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'));
    if (ledger_fmt_is_tx_hash(text))
        CHECK(strlen(text) == 66);
    if (ledger_fmt_is_uuid(text))
        CHECK(strlen(text) == 36);
    (void)ledger_fmt_is_order_id(text, "dep_");
    return 0;
}
