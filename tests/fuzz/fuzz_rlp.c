/* libFuzzer target for common/rlp.
 *
 * The input is validated as one RLP item (lists nested at most
 * RLP_MAX_DEPTH). Whenever that succeeds, the decoded tree is encoded again
 * with the encoder API and must reproduce the input byte for byte: the
 * decoder accepts only canonical encodings. Every byte string that reads as
 * an integer must also re-encode to itself through rlp_put_uint_be /
 * rlp_put_uint64. rlp_put_raw must agree with rlp_validate. Any violation
 * aborts. */
#include "fuzz_check.h"
#include "rlp.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>



/* Checks the integer readings of a byte string item. */
static void check_int(const rlp_item *item)
{
    uint8_t word[32];
    uint64_t v;
    rlp_buf b;
    /* item_len bytes starting at the header: recover the header start. */
    const uint8_t *start = item->payload + item->payload_len - item->item_len;

    rlp_buf_init(&b);
    if (rlp_item_to_uint256(word, item) == RLP_OK) {
        CHECK(rlp_put_uint_be(&b, word, sizeof word) == RLP_OK);
        CHECK(b.len == item->item_len && memcmp(b.data, start, b.len) == 0);
    }
    rlp_buf_reset(&b);
    if (rlp_item_to_uint64(&v, item) == RLP_OK) {
        CHECK(item->payload_len <= 8);
        CHECK(rlp_put_uint64(&b, v) == RLP_OK);
        CHECK(b.len == item->item_len && memcmp(b.data, start, b.len) == 0);
    }
    rlp_buf_dispose(&b);
}

/* Re-encodes an item that rlp_validate accepted (as part of the tree). */
static void reencode(rlp_buf *b, const rlp_item *item, unsigned depth)
{
    CHECK(depth <= RLP_MAX_DEPTH);
    if (item->type == RLP_TYPE_STRING) {
        check_int(item);
        CHECK(rlp_put_bytes(b, item->payload, item->payload_len) == RLP_OK);
        return;
    }
    rlp_iter it;
    rlp_item child;
    size_t mark = rlp_list_begin(b);
    CHECK(rlp_iter_init(&it, item) == RLP_OK);
    while (!rlp_iter_done(&it)) {
        CHECK(rlp_iter_next(&it, &child) == RLP_OK);
        reencode(b, &child, depth + 1);
    }
    CHECK(rlp_iter_next(&it, &child) == RLP_ERR_END_OF_LIST);
    CHECK(rlp_list_end(b, mark) == RLP_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rlp_item top;
    rlp_item first;
    rlp_buf b;
    rlp_err err = rlp_validate(&top, data, size, RLP_MAX_DEPTH);
    rlp_err head = rlp_decode_item(&first, data, size);

    CHECK(rlp_strerror(err) != NULL);
    if (head == RLP_OK)
        CHECK(first.item_len >= 1 && first.item_len <= size);

    rlp_buf_init(&b);
    if (err == RLP_OK) {
        CHECK(head == RLP_OK && top.item_len == size);
        reencode(&b, &top, top.type == RLP_TYPE_LIST ? 1 : 0);
        CHECK(b.len == size && memcmp(b.data, data, size) == 0);
        /* a shallower limit can only refuse, for depth reasons */
        rlp_err shallow = rlp_validate(NULL, data, size, 2);
        CHECK(shallow == RLP_OK || shallow == RLP_ERR_DEPTH);
    } else {
        CHECK(err != RLP_ERR_INVALID_ARG);
        if (head == RLP_OK && first.item_len != size && err != RLP_ERR_TRAILING_BYTES)
            CHECK(0);
    }
    rlp_buf_reset(&b);
    CHECK(rlp_put_raw(&b, data, size) == err);
    CHECK(err != RLP_OK || (b.len == size && memcmp(b.data, data, size) == 0));
    rlp_buf_dispose(&b);
    return 0;
}
