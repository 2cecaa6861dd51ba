/* keystore: sealed keys open only for the owner, address and key type
 * they were sealed for, under a KEK the ring holds; any edited byte is
 * refused; a blob whose key does not derive to its address is refused. */
#include "kek.h"
#include "keystore.h"
#include "secmem.h"
#include "sign.h"
#include "test_support.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static sign_ctx *sctx;
static kek_ring *ring;

static int suite_init(void)
{
    sctx = sign_ctx_new();
    ring = kek_ring_new();
    if (!sctx || !ring || kek_ring_add_random(ring, 1) != 0 || kek_ring_add_random(ring, 2) != 0 ||
        kek_ring_set_current(ring, 2) != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    sign_ctx_free(sctx);
    kek_ring_free(ring);
    return 0;
}

typedef struct {
    uint8_t secret[32];
    uint8_t address[20];
    uint8_t blob[KEYSTORE_BLOB_LEN];
} sealed;

static void make(sealed *s, const char *owner)
{
    CU_ASSERT_FATAL(sign_generate_secret(sctx, s->secret) == 0);
    CU_ASSERT_FATAL(sign_address_from_secret(sctx, s->address, s->secret) == 0);
    CU_ASSERT_FATAL(keystore_seal(s->blob, ring, KEYSTORE_KEY_SECP256K1, s->address, owner,
                                  strlen(owner), s->secret) == KEYSTORE_OK);
}

static keystore_err open_(const sealed *s, const uint8_t *blob, const uint8_t *address,
                          const char *owner, uint8_t type, uint8_t out[32])
{
    uint32_t v = 0;
    (void)s;
    return keystore_unseal(out, &v, ring, sctx, blob, KEYSTORE_BLOB_LEN, type, address, owner,
                           strlen(owner));
}

static void test_roundtrip(void)
{
    sealed s;
    uint8_t out[32];
    uint32_t v = 0;
    make(&s, "client-1");
    CU_ASSERT_EQUAL(s.blob[0], KEYSTORE_BLOB_VERSION);
    CU_ASSERT_EQUAL(keystore_blob_kek_version(s.blob), 2);
    CU_ASSERT_EQUAL(keystore_unseal(out, &v, ring, sctx, s.blob, KEYSTORE_BLOB_LEN, KEYSTORE_KEY_SECP256K1,
                                    s.address, "client-1", 8), KEYSTORE_OK);
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT(memcmp(out, s.secret, 32) == 0);
    /* Two seals of the same key differ (fresh nonce). */
    uint8_t blob2[KEYSTORE_BLOB_LEN];
    CU_ASSERT_EQUAL(keystore_seal(blob2, ring, KEYSTORE_KEY_SECP256K1, s.address, "client-1", 8, s.secret), KEYSTORE_OK);
    CU_ASSERT(memcmp(blob2, s.blob, KEYSTORE_BLOB_LEN) != 0);
}

static void test_bound_to_owner_address_type(void)
{
    sealed s, other;
    uint8_t out[32];
    make(&s, "client-1");
    make(&other, "client-1");
    CU_ASSERT_EQUAL(open_(&s, s.blob, s.address, "client-2", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_AUTH);
    for (size_t i = 0; i < 32; i++)
        CU_ASSERT_EQUAL(out[i], 0); /* wiped on failure */
    CU_ASSERT_EQUAL(open_(&s, s.blob, s.address, "client-10", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_AUTH);
    CU_ASSERT_EQUAL(open_(&s, s.blob, other.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_AUTH);
    CU_ASSERT_EQUAL(open_(&s, s.blob, s.address, "client-1", 2, out), KEYSTORE_ERR_AUTH);
    /* blob swapped between two keys of the same owner */
    CU_ASSERT_EQUAL(open_(&s, other.blob, s.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_AUTH);
    /* invalid owner ids are refused before any crypto */
    CU_ASSERT_EQUAL(open_(&s, s.blob, s.address, "", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_(&s, s.blob, s.address, "a b", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_FORMAT);
    CU_ASSERT_FALSE(keystore_owner_valid("with\"quote", 10));
    CU_ASSERT_TRUE(keystore_owner_valid("client:42/eu-1", 14));
}

static void test_every_byte_tampered(void)
{
    sealed s;
    uint8_t out[32], blob[KEYSTORE_BLOB_LEN];
    make(&s, "client-1");
    for (size_t i = 0; i < KEYSTORE_BLOB_LEN; i++) {
        memcpy(blob, s.blob, sizeof blob);
        blob[i] ^= 0x01;
        keystore_err e = open_(&s, blob, s.address, "client-1", KEYSTORE_KEY_SECP256K1, out);
        if (i == 0) {
            CU_ASSERT_EQUAL(e, KEYSTORE_ERR_FORMAT); /* blob version */
        } else if (i >= 1 && i <= 4) {
            CU_ASSERT(e == KEYSTORE_ERR_UNKNOWN_KEK || e == KEYSTORE_ERR_AUTH); /* KEK version */
        } else {
            CU_ASSERT_EQUAL(e, KEYSTORE_ERR_AUTH);
        }
    }
    /* The header is authenticated too: naming the other (existing) KEK version fails. */
    memcpy(blob, s.blob, sizeof blob);
    blob[4] = 1;
    CU_ASSERT_EQUAL(open_(&s, blob, s.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_AUTH);
    /* Wrong length. */
    uint32_t v;
    CU_ASSERT_EQUAL(keystore_unseal(out, &v, ring, sctx, s.blob, KEYSTORE_BLOB_LEN - 1, KEYSTORE_KEY_SECP256K1,
                                    s.address, "client-1", 8), KEYSTORE_ERR_FORMAT);
}

static void test_unknown_kek_and_rotation(void)
{
    sealed s;
    uint8_t out[32];
    make(&s, "client-1"); /* sealed under v2 */
    kek_ring *only1 = kek_ring_clone(ring);
    CU_ASSERT_PTR_NOT_NULL_FATAL(only1);
    CU_ASSERT_EQUAL(kek_ring_set_current(only1, 1), 0);
    CU_ASSERT_EQUAL(kek_ring_remove(only1, 2), 0);
    uint32_t v = 0;
    CU_ASSERT_EQUAL(keystore_unseal(out, &v, only1, sctx, s.blob, KEYSTORE_BLOB_LEN, KEYSTORE_KEY_SECP256K1,
                                    s.address, "client-1", 8), KEYSTORE_ERR_UNKNOWN_KEK);
    CU_ASSERT_EQUAL(v, 2);
    /* Sealed under v1, then "rewrapped" under the current v2: both open
     * while v1 is in the ring; only the new one once v1 is retired. */
    uint8_t old_blob[KEYSTORE_BLOB_LEN], new_blob[KEYSTORE_BLOB_LEN];
    CU_ASSERT_EQUAL(keystore_seal(old_blob, only1, KEYSTORE_KEY_SECP256K1, s.address, "client-1", 8, s.secret), KEYSTORE_OK);
    CU_ASSERT_EQUAL(keystore_blob_kek_version(old_blob), 1);
    CU_ASSERT_EQUAL(open_(&s, old_blob, s.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_OK);
    CU_ASSERT_EQUAL(keystore_seal(new_blob, ring, KEYSTORE_KEY_SECP256K1, s.address, "client-1", 8, out), KEYSTORE_OK);
    kek_ring *retired = kek_ring_clone(ring);
    CU_ASSERT_EQUAL(kek_ring_remove(retired, 1), 0);
    CU_ASSERT_EQUAL(keystore_unseal(out, &v, retired, sctx, old_blob, KEYSTORE_BLOB_LEN, KEYSTORE_KEY_SECP256K1,
                                    s.address, "client-1", 8), KEYSTORE_ERR_UNKNOWN_KEK);
    CU_ASSERT_EQUAL(keystore_unseal(out, &v, retired, sctx, new_blob, KEYSTORE_BLOB_LEN, KEYSTORE_KEY_SECP256K1,
                                    s.address, "client-1", 8), KEYSTORE_OK);
    CU_ASSERT(memcmp(out, s.secret, 32) == 0);
    kek_ring_free(retired);
    kek_ring_free(only1);
}

static void test_address_rederived(void)
{
    /* A KEK holder seals key A under address B: the AEAD opens (the AAD
     * matches) but the derived address does not, so it is refused. */
    sealed a, b;
    uint8_t out[32], blob[KEYSTORE_BLOB_LEN];
    make(&a, "client-1");
    make(&b, "client-1");
    CU_ASSERT_EQUAL(keystore_seal(blob, ring, KEYSTORE_KEY_SECP256K1, b.address, "client-1", 8, a.secret), KEYSTORE_OK);
    CU_ASSERT_EQUAL(open_(&a, blob, b.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_ADDRESS);
    for (size_t i = 0; i < 32; i++)
        CU_ASSERT_EQUAL(out[i], 0);
    /* An invalid scalar sealed by a KEK holder is refused the same way. */
    uint8_t zero[32] = {0};
    CU_ASSERT_EQUAL(keystore_seal(blob, ring, KEYSTORE_KEY_SECP256K1, b.address, "client-1", 8, zero), KEYSTORE_OK);
    CU_ASSERT_EQUAL(open_(&a, blob, b.address, "client-1", KEYSTORE_KEY_SECP256K1, out), KEYSTORE_ERR_ADDRESS);
    CU_ASSERT_STRING_NOT_EQUAL(keystore_strerror(KEYSTORE_ERR_ADDRESS), keystore_strerror(KEYSTORE_ERR_AUTH));
}

static void test_no_current(void)
{
    kek_ring *empty = kek_ring_new();
    uint8_t blob[KEYSTORE_BLOB_LEN], addr[20] = {0}, secret[32] = {1};
    CU_ASSERT_EQUAL(keystore_seal(blob, empty, KEYSTORE_KEY_SECP256K1, addr, "x", 1, secret), KEYSTORE_ERR_UNKNOWN_KEK);
    kek_ring_free(empty);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"seal and unseal", test_roundtrip},
        {"bound to owner id, address and key type", test_bound_to_owner_address_type},
        {"every byte of the blob is authenticated", test_every_byte_tampered},
        {"unknown KEK version, rotation and retirement", test_unknown_kek_and_rotation},
        {"address derived again after unsealing", test_address_rederived},
        {"no current KEK", test_no_current},
        {NULL, NULL},
    };
    test_add_suite_with("keystore", suite_init, suite_clean, cases);
}
