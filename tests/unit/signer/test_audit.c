/* audit: lines chain; audit_verify_fd finds the first edited, removed,
 * inserted or reordered line; a torn last line is reported, not failed. */
#include "audit.h"
#include "test_support.h"

#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_LINES 6
static char lines[N_LINES][AUDIT_LINE_MAX];
static size_t lens[N_LINES];
static audit_chain final_chain;

static int build(void)
{
    audit_chain c;
    static const uint8_t ph[32] = {1, 2, 3};
    static const uint8_t key[20] = {0xaa, 0xbb};
    memset(&c, 0, sizeof c);
    for (int i = 0; i < N_LINES; i++) {
        audit_entry e;
        memset(&e, 0, sizeof e);
        e.event = "request";
        e.op = "sign_transaction";
        e.has_request_id = true;
        e.request_id = (uint64_t)i + 100;
        e.trace_id = i == 2 ? "quote\"back\\slash\x01" : "t";
        e.has_peer = true;
        e.uid = 1000;
        e.pid = 42;
        e.key = key;
        e.owner = "client-1";
        e.has_chain = true;
        e.chain_id = 31337;
        e.has_nonce = true;
        e.nonce = (uint64_t)i;
        e.decision = i % 2 ? "deny" : "allow";
        e.rule = i % 2 ? "velocity.daily_limit" : "";
        e.detail = i % 2 ? "usdc: 10 used of daily_limit 10" : "";
        lens[i] = audit_format(lines[i], sizeof lines[i], &c, &e, 1700000000123LL + i, ph);
        if (lens[i] == 0)
            return -1;
    }
    final_chain = c;
    return 0;
}

static int write_file(const char *path, const int *order, int n, const char *tail)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (int i = 0; i < n; i++)
        fwrite(lines[order[i]], 1, lens[order[i]], f);
    if (tail)
        fputs(tail, f);
    return fclose(f);
}

static int verify(audit_verify_result *r, const char *path)
{
    int fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    int rc = audit_verify_fd(r, fd, NULL, 3);
    close(fd);
    return rc;
}

static const char *tmp_path(void)
{
    static char p[64];
    snprintf(p, sizeof p, "/tmp/coffer-test-audit.%d", (int)getpid());
    return p;
}

static void test_format(void)
{
    CU_ASSERT_FATAL(build() == 0);
    CU_ASSERT_EQUAL(final_chain.seq, N_LINES);
    /* Every line is a JSON object with the expected fields. */
    for (int i = 0; i < N_LINES; i++) {
        CU_ASSERT_EQUAL(lines[i][lens[i] - 1], '\n');
        json_error_t e;
        json_t *o = json_loadb(lines[i], lens[i], 0, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "seq")), i + 1);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "request_id")),
                               i == 0 ? "100" : json_string_value(json_object_get(o, "request_id")));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "policy")),
                               "0102030000000000000000000000000000000000000000000000000000000000");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "ts")) , i == 0 ? "2023-11-14T22:13:20.123Z" :
                               json_string_value(json_object_get(o, "ts")));
        if (i == 2)
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "trace_id")), "quote\"back\\slash\x01");
        json_decref(o);
    }
    /* A line that would not fit is refused and leaves the chain alone. */
    audit_chain c = final_chain;
    char small[64];
    audit_entry e;
    memset(&e, 0, sizeof e);
    CU_ASSERT_EQUAL(audit_format(small, sizeof small, &c, &e, 0, NULL), 0);
    CU_ASSERT_EQUAL(c.seq, final_chain.seq);
}

static void test_intact(void)
{
    int order[N_LINES] = {0, 1, 2, 3, 4, 5};
    audit_verify_result r;
    CU_ASSERT_FATAL(write_file(tmp_path(), order, N_LINES, NULL) == 0);
    CU_ASSERT_EQUAL(verify(&r, tmp_path()), 0);
    CU_ASSERT_EQUAL(r.lines, N_LINES);
    CU_ASSERT_EQUAL(r.chain.seq, N_LINES);
    CU_ASSERT(memcmp(r.chain.head, final_chain.head, 32) == 0);
    CU_ASSERT_EQUAL(r.torn_bytes, 0);
    CU_ASSERT_TRUE(r.probe_found);
    /* torn tail: reported, not an error */
    CU_ASSERT_FATAL(write_file(tmp_path(), order, N_LINES, "{\"seq\":7,\"ts\":") == 0);
    CU_ASSERT_EQUAL(verify(&r, tmp_path()), 0);
    CU_ASSERT_EQUAL(r.lines, N_LINES);
    CU_ASSERT_EQUAL(r.torn_bytes, 14);
    /* empty file: intact, zero lines */
    CU_ASSERT_FATAL(write_file(tmp_path(), order, 0, NULL) == 0);
    CU_ASSERT_EQUAL(verify(&r, tmp_path()), 0);
    CU_ASSERT_EQUAL(r.lines, 0);
    unlink(tmp_path());
}

static void expect_bad(const int *order, int n, uint64_t bad_line, const char *why_part)
{
    audit_verify_result r;
    CU_ASSERT_FATAL(write_file(tmp_path(), order, n, NULL) == 0);
    CU_ASSERT_EQUAL(verify(&r, tmp_path()), -1);
    if (r.bad_line != bad_line || !strstr(r.why, why_part))
        fprintf(stderr, "bad_line %llu (want %llu): %s\n", (unsigned long long)r.bad_line,
                (unsigned long long)bad_line, r.why);
    CU_ASSERT_EQUAL(r.bad_line, bad_line);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.why, why_part));
    unlink(tmp_path());
}

static void test_removed_reordered_inserted(void)
{
    int removed[] = {0, 1, 3, 4, 5};
    expect_bad(removed, 5, 3, "seq");
    int first_removed[] = {1, 2, 3};
    expect_bad(first_removed, 3, 1, "seq");
    int swapped[] = {0, 2, 1, 3};
    expect_bad(swapped, 4, 2, "seq");
    int duplicated[] = {0, 1, 1, 2};
    expect_bad(duplicated, 4, 3, "seq");
}

static void test_edited(void)
{
    int order[N_LINES] = {0, 1, 2, 3, 4, 5};
    char saved[AUDIT_LINE_MAX];
    /* Edit a value in line 4 (deny → allow keeps the JSON valid). */
    memcpy(saved, lines[3], lens[3]);
    char *p = strstr(lines[3], "\"deny\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memcpy(p, "\"DENY\"", 6);
    expect_bad(order, N_LINES, 4, "edited");
    memcpy(lines[3], saved, lens[3]);
    /* Edit line 2 and recompute its own hash: line 3's prev no longer matches. */
    p = strstr(lines[1], "\"nonce\":\"1\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memcpy(saved, lines[1], lens[1]);
    p[9] = '9';
    {
        /* rehash the edited line as an attacker would */
        audit_chain c;
        memset(&c, 0, sizeof c);
        size_t prefix = lens[1] - (sizeof ",\"hash\":\"" - 1 + 64 + 3);
        uint8_t h[32];
        char hx[65];
        crypto_generichash(h, 32, (const unsigned char *)lines[1], prefix, NULL, 0);
        audit_hash_hex(hx, h);
        memcpy(lines[1] + prefix + sizeof ",\"hash\":\"" - 1, hx, 64);
        (void)c;
    }
    expect_bad(order, N_LINES, 3, "prev");
    memcpy(lines[1], saved, lens[1]);
    /* Not JSON at all. */
    memcpy(saved, lines[4], lens[4]);
    lines[4][0] = 'X';
    expect_bad(order, N_LINES, 5, "JSON");
    memcpy(lines[4], saved, lens[4]);
}

/* 64-bit values are quoted, and a line verifies whatever its numbers:
 * a nonce of 2^63 or 2^64-1 once made the next start refuse the log. */
static void test_u64_values(void)
{
    static const uint64_t nonces[] = {0, (uint64_t)1 << 63, UINT64_MAX - 1, UINT64_MAX};
    char buf[sizeof nonces / sizeof nonces[0]][AUDIT_LINE_MAX];
    size_t len[sizeof nonces / sizeof nonces[0]];
    audit_chain c;
    memset(&c, 0, sizeof c);
    FILE *f = fopen(tmp_path(), "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < sizeof nonces / sizeof nonces[0]; i++) {
        audit_entry e;
        memset(&e, 0, sizeof e);
        e.event = "request";
        e.op = "sign_transaction";
        e.has_request_id = true;
        e.request_id = UINT64_MAX;
        e.has_chain = true;
        e.chain_id = 9223372036854775790ull; /* ETHTX_CHAIN_ID_MAX */
        e.has_nonce = true;
        e.nonce = nonces[i];
        e.decision = "deny";
        e.rule = "chain.not_allowed";
        len[i] = audit_format(buf[i], sizeof buf[i], &c, &e, 1700000000000LL, NULL);
        CU_ASSERT_FATAL(len[i] > 0);
        fwrite(buf[i], 1, len[i], f);
    }
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf[1], "\"nonce\":\"9223372036854775808\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf[3], "\"nonce\":\"18446744073709551615\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf[0], "\"chain_id\":\"9223372036854775790\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf[0], "\"request_id\":\"18446744073709551615\""));
    audit_verify_result r;
    int fd = open(tmp_path(), O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    int rc = audit_verify_fd(&r, fd, NULL, 0);
    close(fd);
    if (rc != 0)
        fprintf(stderr, "line %llu: %s\n", (unsigned long long)r.bad_line, r.why);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(r.lines, 4);

    /* A line written with a bare 64-bit number (as before): still verifies. */
    char old[512], hx[65];
    uint8_t h[32], zero[32] = {0};
    audit_hash_hex(hx, zero);
    int n = snprintf(old, sizeof old, "{\"seq\":1,\"ts\":\"x\",\"event\":\"request\",\"nonce\":18446744073709551615,"
                     "\"prev\":\"%s\"", hx);
    crypto_generichash(h, 32, (const uint8_t *)old, (size_t)n, NULL, 0);
    audit_hash_hex(hx, h);
    n += snprintf(old + n, sizeof old - (size_t)n, ",\"hash\":\"%s\"}\n", hx);
    f = fopen(tmp_path(), "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(old, 1, (size_t)n, f);
    fclose(f);
    fd = open(tmp_path(), O_RDONLY);
    rc = audit_verify_fd(&r, fd, NULL, 0);
    close(fd);
    if (rc != 0)
        fprintf(stderr, "old line: %s\n", r.why);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(r.chain.seq, 1);
    unlink(tmp_path());
}

void test_register(void)
{
    static const test_case cases[] = {
        {"format", test_format},
        {"intact chain, torn tail, empty file", test_intact},
        {"removed, reordered, inserted lines", test_removed_reordered_inserted},
        {"edited lines", test_edited},
        {"64-bit values: quoted, verified whatever their size", test_u64_values},
        {NULL, NULL},
    };
    test_add_suite("audit", cases);
}
