/* ethtx + sign against tests/vectors/signer_tx.txt, produced by cast
 * (gen_signer_vectors.sh): preimages, digests, signed raw transactions
 * (byte for byte: both sides use RFC 6979), transaction hashes, EIP-191
 * digests and signatures. */
#include "ethtx.h"
#include "hex.h"
#include "keccak.h"
#include "sign.h"
#include "test_support.h"
#include "u256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 16

static uint8_t vkey[32], vaddr[20];
static sign_ctx *sctx;

static int hexbytes(uint8_t **out, size_t *len, const char *text)
{
    size_t n = strlen(text);
    if (strcmp(text, "-") == 0) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    *out = malloc(n / 2 + 1);
    return hex_decode(*out, n / 2 + 1, len, text, n);
}

static void u256_word(uint8_t out[32], const char *dec)
{
    u256 v;
    CU_ASSERT_FATAL(u256_from_dec_str(&v, dec) == 0);
    u256_to_be32(out, &v);
}

static void check_bytes(const char *what, const uint8_t *got, size_t got_len, const char *want_hex,
                        int line)
{
    uint8_t *want = NULL;
    size_t want_len = 0;
    CU_ASSERT_FATAL(hexbytes(&want, &want_len, want_hex) == 0);
    int ok = got_len == want_len && memcmp(got, want, want_len) == 0;
    if (!ok)
        fprintf(stderr, "signer_tx.txt line %d: %s differs\n", line, what);
    CU_ASSERT(ok);
    free(want);
}

static void run_tx(char **f, int nf, int line)
{
    ethtx tx;
    ethtx_access acc;
    const uint8_t *keyp[4];
    uint8_t keybuf[4][32];
    uint8_t *data = NULL, *to = NULL;
    size_t data_len = 0, to_len = 0;
    rlp_buf b;
    uint8_t digest[32], txh[32];
    int i = 1;

    memset(&tx, 0, sizeof tx);
    rlp_buf_init(&b);
    int is1559 = strcmp(f[0], "tx1559") == 0;
    CU_ASSERT_FATAL(nf == (is1559 ? 15 : 12));
    tx.type = is1559 ? ETHTX_EIP1559 : ETHTX_LEGACY;
    tx.chain_id = strtoull(f[i++], NULL, 10);
    tx.nonce = strtoull(f[i++], NULL, 10);
    tx.gas_limit = strtoull(f[i++], NULL, 10);
    if (is1559)
        u256_word(tx.max_priority_fee, f[i++]);
    u256_word(tx.max_fee, f[i++]);
    CU_ASSERT_FATAL(hexbytes(&to, &to_len, f[i++]) == 0 && to_len == 20);
    tx.has_to = true;
    memcpy(tx.to, to, 20);
    u256_word(tx.value, f[i++]);
    CU_ASSERT_FATAL(hexbytes(&data, &data_len, f[i++]) == 0);
    tx.data = data;
    tx.data_len = data_len;
    uint8_t *aladdr = NULL;
    if (is1559) {
        size_t al_len = 0;
        CU_ASSERT_FATAL(hexbytes(&aladdr, &al_len, f[i++]) == 0);
        const char *keys = f[i++];
        if (aladdr) {
            size_t nk = 0;
            if (strcmp(keys, "-") != 0) {
                char *copy = strdup(keys), *save = NULL;
                for (char *k = strtok_r(copy, ",", &save); k && nk < 4; k = strtok_r(NULL, ",", &save)) {
                    CU_ASSERT_FATAL(hex_decode_exact(keybuf[nk], 32, k) == 0);
                    keyp[nk] = keybuf[nk];
                    nk++;
                }
                free(copy);
            }
            acc.address = aladdr;
            acc.storage_keys = keyp;
            acc.n_storage_keys = nk;
            tx.access_list = &acc;
            tx.n_access = 1;
        }
    }
    const char *pre = f[i++], *dig = f[i++], *raw = f[i++], *hash = f[i++];

    CU_ASSERT_FATAL(ethtx_encode(&b, &tx, NULL) == RLP_OK);
    check_bytes("preimage", b.data, b.len, pre, line);
    CU_ASSERT_FATAL(ethtx_signing_hash(digest, &b, &tx) == RLP_OK);
    check_bytes("digest", digest, 32, dig, line);

    ethtx_sig sig;
    CU_ASSERT_FATAL(sign_digest(sctx, sig.r, sig.s, &sig.y_parity, digest, vkey) == 0);
    CU_ASSERT_FATAL(ethtx_encode(&b, &tx, &sig) == RLP_OK);
    check_bytes("signed raw transaction", b.data, b.len, raw, line);
    keccak256(txh, b.data, b.len);
    check_bytes("transaction hash", txh, 32, hash, line);

    rlp_buf_dispose(&b);
    free(data);
    free(to);
    free(aladdr);
}

static void run_msg(char **f, int nf, int line)
{
    uint8_t *msg = NULL, digest[32], sig[65];
    size_t len = 0;
    int recid = 0;
    CU_ASSERT_FATAL(nf == 4);
    CU_ASSERT_FATAL(hexbytes(&msg, &len, f[1]) == 0);
    ethtx_personal_digest(digest, msg, len);
    check_bytes("EIP-191 digest", digest, 32, f[2], line);
    CU_ASSERT_FATAL(sign_digest(sctx, sig, sig + 32, &recid, digest, vkey) == 0);
    sig[64] = (uint8_t)(27 + recid);
    check_bytes("EIP-191 signature", sig, 65, f[3], line);
    free(msg);
}

static void test_vectors(void)
{
    size_t len = 0;
    char *text = test_read_file(test_vector_path("signer_tx.txt"), &len);
    int lineno = 0, txs = 0, msgs = 0;
    char *save = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    sctx = sign_ctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char *f[MAX_FIELDS], *s2 = NULL;
        int nf = 0;
        lineno++;
        if (ln[0] == '#' || ln[0] == '\0')
            continue;
        for (char *t = strtok_r(ln, " ", &s2); t && nf < MAX_FIELDS; t = strtok_r(NULL, " ", &s2))
            f[nf++] = t;
        if (strcmp(f[0], "key") == 0) {
            CU_ASSERT_FATAL(hex_decode_exact(vkey, 32, f[1]) == 0);
            CU_ASSERT_FATAL(hex_decode_exact(vaddr, 20, f[2]) == 0);
            uint8_t derived[20];
            CU_ASSERT_FATAL(sign_address_from_secret(sctx, derived, vkey) == 0);
            CU_ASSERT(memcmp(derived, vaddr, 20) == 0);
        } else if (strncmp(f[0], "tx", 2) == 0) {
            run_tx(f, nf, lineno);
            txs++;
        } else if (strcmp(f[0], "msg") == 0) {
            run_msg(f, nf, lineno);
            msgs++;
        } else {
            CU_FAIL("unknown vector line");
        }
    }
    CU_ASSERT(txs >= 10);
    CU_ASSERT(msgs >= 4);
    sign_ctx_free(sctx);
    sctx = NULL;
    free(text);
}

static void test_encode_refuses(void)
{
    ethtx tx;
    rlp_buf b;
    uint8_t d[32];
    memset(&tx, 0, sizeof tx);
    rlp_buf_init(&b);
    tx.type = ETHTX_EIP1559;
    tx.chain_id = 0;
    CU_ASSERT_EQUAL(ethtx_encode(&b, &tx, NULL), RLP_ERR_INVALID_ARG);
    tx.chain_id = ETHTX_CHAIN_ID_MAX + 1;
    CU_ASSERT_EQUAL(ethtx_signing_hash(d, &b, &tx), RLP_ERR_INVALID_ARG);
    tx.chain_id = 1;
    tx.type = (ethtx_type)5;
    CU_ASSERT_EQUAL(ethtx_encode(&b, &tx, NULL), RLP_ERR_INVALID_ARG);
    /* An access list on a legacy transaction cannot be encoded. */
    ethtx_access a = {(const uint8_t *)"aaaaaaaaaaaaaaaaaaaa", NULL, 0};
    tx.type = ETHTX_LEGACY;
    tx.access_list = &a;
    tx.n_access = 1;
    CU_ASSERT_EQUAL(ethtx_encode(&b, &tx, NULL), RLP_ERR_INVALID_ARG);
    /* A y parity other than 0/1 is misuse. */
    tx.n_access = 0;
    ethtx_sig sig;
    memset(&sig, 1, sizeof sig);
    sig.y_parity = 2;
    CU_ASSERT_EQUAL(ethtx_encode(&b, &tx, &sig), RLP_ERR_INVALID_ARG);
    rlp_buf_dispose(&b);
}

static void test_sign_invalid_key(void)
{
    sign_ctx *c = sign_ctx_new();
    uint8_t zero[32] = {0}, over[32], r[32], s[32], a[20], d[32] = {1};
    int id;
    memset(over, 0xff, sizeof over); /* above the group order */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(sign_address_from_secret(c, a, zero), -1);
    CU_ASSERT_EQUAL(sign_address_from_secret(c, a, over), -1);
    CU_ASSERT_EQUAL(sign_digest(c, r, s, &id, d, zero), -1);
    uint8_t k[32];
    CU_ASSERT_EQUAL(sign_generate_secret(c, k), 0);
    CU_ASSERT_EQUAL(sign_address_from_secret(c, a, k), 0);
    /* Deterministic: the same digest twice gives the same signature. */
    uint8_t r2[32], s2[32];
    int id2;
    CU_ASSERT_EQUAL(sign_digest(c, r, s, &id, d, k), 0);
    CU_ASSERT_EQUAL(sign_digest(c, r2, s2, &id2, d, k), 0);
    CU_ASSERT(memcmp(r, r2, 32) == 0 && memcmp(s, s2, 32) == 0 && id == id2);
    /* Low s (EIP-2): s <= n/2, whose first byte is 0x7f. */
    CU_ASSERT(s[0] <= 0x7f);
    sign_ctx_free(c);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"cast vectors: preimage, digest, raw tx, tx hash, EIP-191", test_vectors},
        {"encode refuses misuse", test_encode_refuses},
        {"sign: invalid keys, determinism, low s", test_sign_invalid_key},
        {NULL, NULL},
    };
    test_add_suite("ethtx", cases);
}
