/* request: frames are validated strictly; anything malformed is refused
 * with a reason (the daemon then answers BAD_REQUEST and closes). */
#include "keystore.h"
#include "request.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buffers longer than the field sizes: the size tests announce one byte more. */
static uint8_t blob[KEYSTORE_BLOB_LEN + 8], addr20[20 + 8], word32[32 + 8];

typedef struct {
    Coffer__Signer__V1__Request req;
    Coffer__Signer__V1__SignTransactionRequest st;
    Coffer__Signer__V1__Eip1559Tx tx;
    Coffer__Signer__V1__LegacyTx ltx;
    Coffer__Signer__V1__AccessListEntry ale;
    Coffer__Signer__V1__AccessListEntry *alp[1];
    ProtobufCBinaryData keys[2];
} fixture;

static void sign_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    coffer__signer__v1__request__init(&f->req);
    coffer__signer__v1__sign_transaction_request__init(&f->st);
    coffer__signer__v1__eip1559_tx__init(&f->tx);
    coffer__signer__v1__legacy_tx__init(&f->ltx);
    coffer__signer__v1__access_list_entry__init(&f->ale);
    f->req.version = 1;
    f->req.request_id = 77;
    f->req.trace_id = (char *)"trace-1";
    f->req.op_case = COFFER__SIGNER__V1__REQUEST__OP_SIGN_TRANSACTION;
    f->req.sign_transaction = &f->st;
    f->st.sealed_key.data = blob;
    f->st.sealed_key.len = KEYSTORE_BLOB_LEN;
    f->st.address.data = addr20;
    f->st.address.len = 20;
    f->st.owner_id = (char *)"client-1";
    f->st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_EIP1559;
    f->st.eip1559 = &f->tx;
    f->tx.chain_id = 1;
    f->tx.nonce = 3;
    f->tx.gas_limit = 21000;
    f->tx.max_priority_fee_per_gas.data = word32;
    f->tx.max_priority_fee_per_gas.len = 32;
    f->tx.max_fee_per_gas.data = word32;
    f->tx.max_fee_per_gas.len = 32;
    f->tx.to.data = addr20;
    f->tx.to.len = 20;
    f->tx.value.data = word32;
    f->tx.value.len = 32;
    f->ltx.chain_id = 1;
    f->ltx.gas_price.data = word32;
    f->ltx.gas_price.len = 32;
    f->ltx.to.data = addr20;
    f->ltx.to.len = 20;
    f->ltx.value.data = word32;
    f->ltx.value.len = 32;
}

/* Packs and decodes; returns request_decode's result (why set). */
static int decode(const ProtobufCMessage *m, request *out, char *why, size_t why_len)
{
    uint8_t buf[4096];
    uint64_t rid;
    size_t n = protobuf_c_message_pack(m, buf);
    CU_ASSERT_FATAL(n < sizeof buf);
    int rc = request_decode(out, &rid, why, why_len, buf, n);
    return rc;
}

static void expect_reject(const ProtobufCMessage *m, const char *why_part)
{
    request r;
    char why[256] = "";
    int rc = decode(m, &r, why, sizeof why);
    if (rc == 0 || !strstr(why, why_part))
        fprintf(stderr, "rc=%d why=\"%s\" (want \"%s\")\n", rc, why, why_part);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, why_part));
}

static void test_valid(void)
{
    fixture f;
    request r;
    char why[256];
    sign_fixture(&f);
    CU_ASSERT_EQUAL_FATAL(decode(&f.req.base, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.op, REQUEST_OP_SIGN_TRANSACTION);
    CU_ASSERT_EQUAL(r.tx.type, ETHTX_EIP1559);
    CU_ASSERT_EQUAL(r.tx.nonce, 3);
    CU_ASSERT_TRUE(r.tx.has_to);
    CU_ASSERT_EQUAL(r.owner_len, 8);
    CU_ASSERT_STRING_EQUAL(request_op_name(r.op), "sign_transaction");
    request_dispose(&r);

    /* access list */
    f.ale.address.data = addr20;
    f.ale.address.len = 20;
    f.keys[0].data = word32;
    f.keys[0].len = 32;
    f.keys[1] = f.keys[0];
    f.ale.storage_keys = f.keys;
    f.ale.n_storage_keys = 2;
    f.alp[0] = &f.ale;
    f.tx.access_list = f.alp;
    f.tx.n_access_list = 1;
    CU_ASSERT_EQUAL_FATAL(decode(&f.req.base, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.tx.n_access, 1);
    CU_ASSERT_EQUAL(r.tx.access_list[0].n_storage_keys, 2);
    request_dispose(&r);

    /* legacy; contract creation (empty to) passes validation: the policy refuses it */
    f.st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_LEGACY;
    f.st.legacy = &f.ltx;
    f.ltx.to.len = 0;
    CU_ASSERT_EQUAL_FATAL(decode(&f.req.base, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.tx.type, ETHTX_LEGACY);
    CU_ASSERT_FALSE(r.tx.has_to);
    request_dispose(&r);

    /* status, generate_key */
    Coffer__Signer__V1__Request q;
    coffer__signer__v1__request__init(&q);
    Coffer__Signer__V1__StatusRequest s;
    coffer__signer__v1__status_request__init(&s);
    q.version = 1;
    q.request_id = 1;
    q.op_case = COFFER__SIGNER__V1__REQUEST__OP_STATUS;
    q.status = &s;
    CU_ASSERT_EQUAL_FATAL(decode(&q.base, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.op, REQUEST_OP_STATUS);
    request_dispose(&r);
    Coffer__Signer__V1__GenerateKeyRequest g;
    coffer__signer__v1__generate_key_request__init(&g);
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1;
    g.owner_id = (char *)"o";
    q.op_case = COFFER__SIGNER__V1__REQUEST__OP_GENERATE_KEY;
    q.generate_key = &g;
    CU_ASSERT_EQUAL_FATAL(decode(&q.base, &r, why, sizeof why), 0);
    request_dispose(&r);
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED;
    expect_reject(&q.base, "key_type");
    g.key_type = COFFER__SIGNER__V1__KEY_TYPE__KEY_TYPE_SECP256K1;
    g.owner_id = (char *)"";
    expect_reject(&q.base, "owner_id");
}

static void test_sizes(void)
{
    fixture f;
    sign_fixture(&f);
    f.st.sealed_key.len = KEYSTORE_BLOB_LEN - 1;
    expect_reject(&f.req.base, "sealed_key");
    sign_fixture(&f);
    f.st.address.len = 19;
    expect_reject(&f.req.base, "address");
    sign_fixture(&f);
    f.tx.value.len = 31;
    expect_reject(&f.req.base, "value");
    sign_fixture(&f);
    f.tx.max_fee_per_gas.len = 33;
    expect_reject(&f.req.base, "max_fee_per_gas");
    sign_fixture(&f);
    f.tx.to.len = 21;
    expect_reject(&f.req.base, "to must be 20");
    sign_fixture(&f);
    f.tx.chain_id = 0;
    expect_reject(&f.req.base, "chain_id");
    /* EIP-2681: 2^64-2 is the last nonce; 2^64-1 is refused, for both types */
    {
        request r;
        char why[256];
        sign_fixture(&f);
        f.tx.nonce = UINT64_MAX - 1;
        CU_ASSERT_EQUAL(decode(&f.req.base, &r, why, sizeof why), 0);
        CU_ASSERT_EQUAL(r.tx.nonce, UINT64_MAX - 1);
        request_dispose(&r);
        f.tx.nonce = UINT64_MAX;
        expect_reject(&f.req.base, "nonce 18446744073709551615 is above 2^64-2 (EIP-2681");
        sign_fixture(&f);
        f.st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX_LEGACY;
        f.st.legacy = &f.ltx;
        f.ltx.nonce = UINT64_MAX;
        expect_reject(&f.req.base, "EIP-2681");
    }
    sign_fixture(&f);
    static uint8_t big[REQUEST_DATA_MAX + 1];
    f.tx.data.data = big;
    f.tx.data.len = sizeof big;
    uint8_t *buf = malloc(REQUEST_DATA_MAX + 4096);
    size_t n = protobuf_c_message_pack(&f.req.base, buf);
    request r;
    char why[256];
    uint64_t rid;
    CU_ASSERT_EQUAL(request_decode(&r, &rid, why, sizeof why, buf, n), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "data larger"));
    CU_ASSERT_EQUAL(rid, 77); /* reported so the answer can echo it */
    free(buf);
    sign_fixture(&f);
    f.ale.address.data = addr20;
    f.ale.address.len = 20;
    f.keys[0].data = word32;
    f.keys[0].len = 31;
    f.ale.storage_keys = f.keys;
    f.ale.n_storage_keys = 1;
    f.alp[0] = &f.ale;
    f.tx.access_list = f.alp;
    f.tx.n_access_list = 1;
    expect_reject(&f.req.base, "storage_keys[0]");
    sign_fixture(&f);
    f.st.tx_case = COFFER__SIGNER__V1__SIGN_TRANSACTION_REQUEST__TX__NOT_SET;
    expect_reject(&f.req.base, "no transaction");
}

static void test_envelope(void)
{
    fixture f;
    sign_fixture(&f);
    f.req.version = 2;
    expect_reject(&f.req.base, "protocol version");
    sign_fixture(&f);
    f.req.request_id = 0;
    expect_reject(&f.req.base, "request_id");
    sign_fixture(&f);
    f.req.trace_id = (char *)"has space";
    expect_reject(&f.req.base, "trace_id");
    sign_fixture(&f);
    f.req.op_case = COFFER__SIGNER__V1__REQUEST__OP__NOT_SET;
    expect_reject(&f.req.base, "no operation");
    sign_fixture(&f);
    f.st.owner_id = (char *)"bad\"owner";
    expect_reject(&f.req.base, "owner_id");

    /* An unknown field (e.g. an operation from a newer protocol: oneof
     * member 20) is a protocol violation. */
    uint8_t buf[512];
    request r;
    char why[256];
    uint64_t rid;
    Coffer__Signer__V1__Request q;
    coffer__signer__v1__request__init(&q);
    q.version = 1;
    q.request_id = 5;
    size_t n = coffer__signer__v1__request__pack(&q, buf);
    buf[n++] = 0xa2; /* tag: field 20, length-delimited, as a two-byte varint */
    buf[n++] = 0x01;
    buf[n++] = 0;
    CU_ASSERT_EQUAL(request_decode(&r, &rid, why, sizeof why, buf, n), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown field"));
    CU_ASSERT_EQUAL(rid, 5);
    /* garbage */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    CU_ASSERT_EQUAL(request_decode(&r, &rid, why, sizeof why, junk, sizeof junk), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "not a coffer.signer.v1.Request"));
    CU_ASSERT_EQUAL(rid, 0);
    /* unknown field inside the nested transaction */
    sign_fixture(&f);
    uint8_t tbuf[512];
    size_t tn = coffer__signer__v1__eip1559_tx__pack(&f.tx, tbuf);
    tbuf[tn++] = (15 << 3) | 0; /* varint field 15 */
    tbuf[tn++] = 1;
    Coffer__Signer__V1__Eip1559Tx *tx2 = coffer__signer__v1__eip1559_tx__unpack(NULL, tn, tbuf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tx2);
    f.st.eip1559 = tx2;
    expect_reject(&f.req.base, "eip1559 carries unknown fields");
    coffer__signer__v1__eip1559_tx__free_unpacked(tx2, NULL);
    request_dispose(NULL);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"valid requests", test_valid},
        {"exact field sizes", test_sizes},
        {"envelope: version, ids, unknown fields, garbage", test_envelope},
        {NULL, NULL},
    };
    memset(blob, 1, sizeof blob);
    memset(addr20, 2, sizeof addr20);
    test_add_suite("request", cases);
}
