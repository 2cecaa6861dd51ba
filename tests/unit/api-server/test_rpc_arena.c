/* rpc_ctx's arena: what a call allocated (its answer, one-time secrets
 * among it) is zeroed when the arena is reset, since contexts are pooled
 * and reused by later calls. */
#include "rpc_internal.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

static bool test_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void test_rpc_arena_wiped(void)
{
    rpc_ctx *c = calloc(1, sizeof *c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    static const char secret[] = "ck_live_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char *s = rpc_ctx_strdup(c, secret);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, secret);
    CU_ASSERT_TRUE((uint8_t *)s >= c->arena && (uint8_t *)s < c->arena + sizeof c->arena);
    size_t used = c->arena_used;
    CU_ASSERT_TRUE(used >= sizeof secret);
    /* Past the inline arena: a chunk (freed on reset, wiped first). */
    uint8_t *big = rpc_ctx_alloc(c, sizeof c->arena + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_PTR_NOT_NULL(c->chunks);
    memset(big, 0x5a, sizeof c->arena + 1);
    rpc_arena_reset(c);
    CU_ASSERT_EQUAL(c->arena_used, 0);
    CU_ASSERT_PTR_NULL(c->chunks);
    CU_ASSERT_TRUE(test_all_zero(c->arena, used));
    CU_ASSERT_PTR_NULL(memmem(c->arena, sizeof c->arena, "ck_live_", 8));
    free(c);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"wiped", test_rpc_arena_wiped},
        {NULL, NULL},
    };
    test_add_suite("rpc_arena", cases);
}
