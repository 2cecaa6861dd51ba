/* kek: ring files (format, check line, permissions, atomic writes),
 * versions, passphrase derivation. */
#include "kek.h"
#include "test_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int suite_init(void)
{
    snprintf(dir, sizeof dir, "/tmp/coffer-test-kek.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    return test_read_file(path, len);
}

static void spit(const char *path, const char *text, size_t len)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0400);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static void key_of(kek_ring *r, uint32_t v, uint8_t out[KEK_LEN])
{
    const uint8_t *k = kek_ring_open(r, v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    memcpy(out, k, KEK_LEN);
    CU_ASSERT(kek_ring_close(r, v) == 0);
}

static void test_roundtrip(void)
{
    char err[256];
    kek_ring *r = kek_ring_new(), *back = NULL;
    uint8_t a[KEK_LEN], b[KEK_LEN];
    const char *p = path_of("ring1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(kek_ring_add_random(r, 1), 0);
    CU_ASSERT_EQUAL(kek_ring_add_random(r, 2), 0);
    CU_ASSERT_EQUAL(kek_ring_add_random(r, 2), -1); /* versions increase */
    CU_ASSERT_EQUAL(kek_ring_add_random(r, 0), -1);
    CU_ASSERT_EQUAL(kek_ring_write_file(r, err, sizeof err, p, true), -1); /* no current */
    CU_ASSERT_EQUAL(kek_ring_set_current(r, 3), -1);
    CU_ASSERT_EQUAL(kek_ring_set_current(r, 2), 0);
    CU_ASSERT_EQUAL(kek_ring_write_file(r, err, sizeof err, p, true), 0);
    /* init refuses to overwrite */
    CU_ASSERT_EQUAL(kek_ring_write_file(r, err, sizeof err, p, true), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already exists"));
    struct stat st;
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0400);
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, p, true), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(kek_ring_count(back), 2);
    CU_ASSERT_EQUAL(kek_ring_current(back), 2);
    CU_ASSERT_EQUAL(kek_ring_max_version(back), 2);
    for (uint32_t v = 1; v <= 2; v++) {
        key_of(r, v, a);
        key_of(back, v, b);
        CU_ASSERT(memcmp(a, b, KEK_LEN) == 0);
    }
    key_of(back, 1, a);
    key_of(back, 2, b);
    CU_ASSERT(memcmp(a, b, KEK_LEN) != 0);
    CU_ASSERT_PTR_NULL(kek_ring_open(back, 3));
    CU_ASSERT_EQUAL(kek_ring_close(back, 1), -1); /* not open */

    /* retire: not the current one */
    CU_ASSERT_EQUAL(kek_ring_remove(back, 2), -1);
    CU_ASSERT_EQUAL(kek_ring_remove(back, 1), 0);
    CU_ASSERT_EQUAL(kek_ring_remove(back, 1), -1);
    CU_ASSERT_FALSE(kek_ring_has(back, 1));
    CU_ASSERT_EQUAL(kek_ring_write_file(back, err, sizeof err, p, false), 0);
    kek_ring_free(back);
    back = NULL;
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, p, true), 0);
    CU_ASSERT_EQUAL(kek_ring_count(back), 1);
    CU_ASSERT_EQUAL(kek_ring_version_at(back, 0), 2);

    kek_ring *clone = kek_ring_clone(back);
    CU_ASSERT_PTR_NOT_NULL_FATAL(clone);
    key_of(clone, 2, a);
    key_of(back, 2, b);
    CU_ASSERT(memcmp(a, b, KEK_LEN) == 0);
    kek_ring_free(clone);
    kek_ring_free(back);
    kek_ring_free(r);
    kek_ring_free(NULL);
}

static void test_tamper_and_format(void)
{
    char err[256];
    kek_ring *r = kek_ring_new(), *back = NULL;
    const char *p = path_of("ring2");
    size_t len = 0;
    CU_ASSERT_EQUAL(kek_ring_add_random(r, 7), 0);
    CU_ASSERT_EQUAL(kek_ring_set_current(r, 7), 0);
    CU_ASSERT_EQUAL(kek_ring_write_file(r, err, sizeof err, p, true), 0);
    char *text = slurp(p, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(kek_ring_parse(&back, err, sizeof err, text, len), 0);
    kek_ring_free(back);
    back = NULL;

    /* One flipped key digit: the check line no longer matches. */
    char *k = strstr(text, "key 7 random ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    char *d = k + strlen("key 7 random ");
    char saved = *d;
    *d = *d == 'a' ? 'b' : 'a';
    CU_ASSERT_EQUAL(kek_ring_parse(&back, err, sizeof err, text, len), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "check value"));
    *d = saved;
    /* Truncated: no check line. */
    CU_ASSERT_EQUAL(kek_ring_parse(&back, err, sizeof err, text, (size_t)(strstr(text, "check") - text)), -1);
    /* Wrong magic. */
    text[0] = 'C';
    CU_ASSERT_EQUAL(kek_ring_parse(&back, err, sizeof err, text, len), -1);
    text[0] = 'c';
    /* Trailing garbage after check. */
    char *more = malloc(len + 8);
    memcpy(more, text, len);
    memcpy(more + len, "junk\n", 5);
    CU_ASSERT_EQUAL(kek_ring_parse(&back, err, sizeof err, more, len + 5), -1);
    free(more);
    CU_ASSERT_PTR_NULL(back);

    /* Permissions: group-readable or someone else's file is refused. */
    spit(p, text, len);
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, p, true), 0);
    kek_ring_free(back);
    back = NULL;
    chmod(p, 0440);
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, p, true), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "0400"));
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, p, false), 0); /* unchecked: tools only */
    kek_ring_free(back);
    back = NULL;
    CU_ASSERT_EQUAL(kek_ring_load(&back, err, sizeof err, path_of("absent"), true), -1);
    free(text);
    kek_ring_free(r);
}

static void test_passphrase(void)
{
    kek_ring *a = kek_ring_new(), *b = kek_ring_new();
    uint8_t ka[KEK_LEN], kb[KEK_LEN], s1[KEK_SALT_LEN], s2[KEK_SALT_LEN];
    CU_ASSERT_EQUAL(kek_ring_add_passphrase(a, 1, "correct horse", 13), 0);
    CU_ASSERT_EQUAL(kek_ring_add_passphrase(b, 1, "correct horse", 13), 0);
    CU_ASSERT_EQUAL(kek_ring_add_passphrase(b, 2, "correct horse", 13), 0);
    CU_ASSERT_EQUAL(kek_ring_add_passphrase(b, 3, "", 0), -1);
    CU_ASSERT_EQUAL(kek_ring_origin_at(a, 0), KEK_ORIGIN_ARGON2ID);
    key_of(a, 1, ka);
    key_of(b, 1, kb);
    CU_ASSERT(memcmp(ka, kb, KEK_LEN) == 0); /* same passphrase, same version: same key */
    key_of(b, 2, kb);
    CU_ASSERT(memcmp(ka, kb, KEK_LEN) != 0); /* the salt depends on the version */
    kek_salt(s1, 1);
    kek_salt(s2, 2);
    CU_ASSERT(memcmp(s1, s2, KEK_SALT_LEN) != 0);
    kek_ring_free(a);
    kek_ring_free(b);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"write, load, versions, retire, clone", test_roundtrip},
        {"tampered, truncated, misnamed and exposed files", test_tamper_and_format},
        {"Argon2id passphrase keys", test_passphrase},
        {NULL, NULL},
    };
    test_add_suite_with("kek", suite_init, suite_clean, cases);
}
