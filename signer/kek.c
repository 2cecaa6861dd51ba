#include "kek.h"

#include "hex.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEK_MAGIC_LINE "coffer-kek-ring 1\n"
#define KEK_CHECK_PREFIX "check "
#define KEK_HEX_LEN (2 * KEK_LEN)

typedef struct {
    uint32_t version;
    kek_origin origin;
    secmem *key; /* KEK_LEN bytes */
} kek_entry;

struct kek_ring {
    kek_entry entries[KEK_RING_MAX]; /* increasing versions */
    size_t count;
    uint32_t current;
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

kek_ring *kek_ring_new(void)
{
    if (secmem_init() != 0)
        return NULL;
    return calloc(1, sizeof(kek_ring));
}

void kek_ring_free(kek_ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        secmem_free(r->entries[i].key);
    secmem_wipe(r, sizeof *r);
    free(r);
}

static kek_entry *find(const kek_ring *r, uint32_t version)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->entries[i].version == version)
            return (kek_entry *)(uintptr_t)&r->entries[i];
    return NULL;
}

/* Closes a region on a path that is already failing. */
static void secmem_close_quiet(secmem *m)
{
    if (secmem_close(m) != 0) {
        /* nothing more to do: the caller frees the region next */
    }
}

/* Appends an entry with a fresh zeroed region; returns it (open rw in
 * *bytes) or NULL. The caller fills and closes it. */
static kek_entry *append_entry(kek_ring *r, uint32_t version, kek_origin origin, uint8_t **bytes)
{
    if (version == 0 || r->count >= KEK_RING_MAX)
        return NULL;
    if (r->count > 0 && r->entries[r->count - 1].version >= version)
        return NULL;
    secmem *m = secmem_new(KEK_LEN);
    if (!m)
        return NULL;
    uint8_t *p = secmem_open_rw(m);
    if (!p) {
        secmem_free(m);
        return NULL;
    }
    kek_entry *e = &r->entries[r->count++];
    e->version = version;
    e->origin = origin;
    e->key = m;
    *bytes = p;
    return e;
}

/* Drops the last entry (after a failed fill). */
static void drop_last(kek_ring *r)
{
    secmem_free(r->entries[r->count - 1].key);
    memset(&r->entries[r->count - 1], 0, sizeof r->entries[0]);
    r->count--;
}

int kek_ring_add_bytes(kek_ring *r, uint32_t version, const uint8_t key[KEK_LEN])
{
    uint8_t *p = NULL;
    kek_entry *e = append_entry(r, version, KEK_ORIGIN_RANDOM, &p);
    if (!e)
        return -1;
    memcpy(p, key, KEK_LEN);
    if (secmem_close(e->key) != 0) {
        drop_last(r);
        return -1;
    }
    return 0;
}

int kek_ring_add_random(kek_ring *r, uint32_t version)
{
    uint8_t *p = NULL;
    kek_entry *e = append_entry(r, version, KEK_ORIGIN_RANDOM, &p);
    if (!e)
        return -1;
    randombytes_buf(p, KEK_LEN);
    if (secmem_close(e->key) != 0) {
        drop_last(r);
        return -1;
    }
    return 0;
}

void kek_salt(uint8_t out[KEK_SALT_LEN], uint32_t version)
{
    static const char label[] = "coffer-signer/kek-salt/v1";
    uint8_t msg[sizeof label - 1 + 4];
    memcpy(msg, label, sizeof label - 1);
    msg[sizeof label - 1] = (uint8_t)(version >> 24);
    msg[sizeof label] = (uint8_t)(version >> 16);
    msg[sizeof label + 1] = (uint8_t)(version >> 8);
    msg[sizeof label + 2] = (uint8_t)version;
    crypto_generichash(out, KEK_SALT_LEN, msg, sizeof msg, NULL, 0);
}

int kek_ring_add_passphrase(kek_ring *r, uint32_t version, const char *pass, size_t pass_len)
{
    uint8_t salt[KEK_SALT_LEN];
    uint8_t *p = NULL;
    if (pass_len == 0)
        return -1;
    kek_entry *e = append_entry(r, version, KEK_ORIGIN_ARGON2ID, &p);
    if (!e)
        return -1;
    kek_salt(salt, version);
    int rc = crypto_pwhash(p, KEK_LEN, pass, pass_len, salt, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13);
    if (secmem_close(e->key) != 0 || rc != 0) {
        drop_last(r);
        return -1;
    }
    return 0;
}

int kek_ring_remove(kek_ring *r, uint32_t version)
{
    if (version == r->current)
        return -1;
    for (size_t i = 0; i < r->count; i++) {
        if (r->entries[i].version != version)
            continue;
        secmem_free(r->entries[i].key);
        memmove(&r->entries[i], &r->entries[i + 1], (r->count - i - 1) * sizeof r->entries[0]);
        r->count--;
        memset(&r->entries[r->count], 0, sizeof r->entries[0]);
        return 0;
    }
    return -1;
}

int kek_ring_set_current(kek_ring *r, uint32_t version)
{
    if (!find(r, version))
        return -1;
    r->current = version;
    return 0;
}

uint32_t kek_ring_current(const kek_ring *r)
{
    return r->current;
}

size_t kek_ring_count(const kek_ring *r)
{
    return r->count;
}

uint32_t kek_ring_version_at(const kek_ring *r, size_t i)
{
    return i < r->count ? r->entries[i].version : 0;
}

kek_origin kek_ring_origin_at(const kek_ring *r, size_t i)
{
    return i < r->count ? r->entries[i].origin : KEK_ORIGIN_RANDOM;
}

uint32_t kek_ring_max_version(const kek_ring *r)
{
    return r->count ? r->entries[r->count - 1].version : 0;
}

bool kek_ring_has(const kek_ring *r, uint32_t version)
{
    return find(r, version) != NULL;
}

const uint8_t *kek_ring_open(kek_ring *r, uint32_t version)
{
    kek_entry *e = find(r, version);
    if (!e)
        return NULL;
    return secmem_open_ro(e->key);
}

int kek_ring_close(kek_ring *r, uint32_t version)
{
    kek_entry *e = find(r, version);
    if (!e)
        return -1;
    return secmem_close(e->key);
}

int kek_ring_hold(kek_ring *r)
{
    for (size_t i = 0; i < r->count; i++) {
        if (!secmem_open_ro(r->entries[i].key)) {
            while (i-- > 0)
                secmem_close_quiet(r->entries[i].key);
            return -1;
        }
    }
    return 0;
}

int kek_ring_release(kek_ring *r)
{
    int rc = 0;
    for (size_t i = 0; i < r->count; i++)
        if (secmem_close(r->entries[i].key) != 0)
            rc = -1;
    return rc;
}

kek_ring *kek_ring_clone(const kek_ring *r)
{
    kek_ring *c = kek_ring_new();
    if (!c)
        return NULL;
    for (size_t i = 0; i < r->count; i++) {
        const kek_entry *src = &r->entries[i];
        uint8_t *dst = NULL;
        kek_entry *e = append_entry(c, src->version, src->origin, &dst);
        if (!e)
            goto fail;
        const uint8_t *k = secmem_open_ro(src->key);
        if (!k) {
            secmem_close_quiet(e->key);
            drop_last(c);
            goto fail;
        }
        memcpy(dst, k, KEK_LEN);
        int rc1 = secmem_close(src->key);
        int rc2 = secmem_close(e->key);
        if (rc1 != 0 || rc2 != 0)
            goto fail;
    }
    c->current = r->current;
    return c;
fail:
    kek_ring_free(c);
    return NULL;
}

/* ---- parsing ---------------------------------------------------------- */

/* Parses a decimal version 1..UINT32_MAX from s[0..len) (no leading zero). */
static int parse_version(uint32_t *out, const char *s, size_t len)
{
    uint64_t v = 0;
    if (len == 0 || len > 10 || s[0] == '0')
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int kek_ring_parse(kek_ring **out, char *err, size_t err_len, const char *buf, size_t len)
{
    kek_ring *r = NULL;
    const char *p = buf, *end = buf + len;
    const char *check_at = NULL;
    uint32_t current = 0;
    unsigned lineno = 0;
    int rc = -1;

    *out = NULL;
    if (len > KEK_FILE_MAX) {
        set_err(err, err_len, "file larger than %u bytes", KEK_FILE_MAX);
        return -1;
    }
    if (secmem_init() != 0) {
        set_err(err, err_len, "libsodium unusable");
        return -1;
    }
    r = kek_ring_new();
    if (!r) {
        set_err(err, err_len, "out of memory");
        return -1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl) {
            set_err(err, err_len, "line %u: missing line end", lineno);
            goto out;
        }
        size_t n = (size_t)(nl - p);
        if (check_at) {
            set_err(err, err_len, "line %u: text after the check line", lineno);
            goto out;
        }
        if (lineno == 1) {
            if (n + 1 != sizeof KEK_MAGIC_LINE - 1 || memcmp(p, KEK_MAGIC_LINE, n + 1) != 0) {
                set_err(err, err_len, "line 1: not a coffer KEK ring (expected \"coffer-kek-ring 1\")");
                goto out;
            }
        } else if (n > 8 && memcmp(p, "current ", 8) == 0) {
            if (current != 0 || parse_version(&current, p + 8, n - 8) != 0) {
                set_err(err, err_len, "line %u: bad or repeated current line", lineno);
                goto out;
            }
        } else if (n > 4 && memcmp(p, "key ", 4) == 0) {
            /* key <version> <origin> <hex> */
            const char *f = p + 4, *lend = p + n;
            const char *sp1 = memchr(f, ' ', (size_t)(lend - f));
            const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(lend - sp1 - 1)) : NULL;
            uint32_t version = 0;
            kek_origin origin;
            if (!sp1 || !sp2 || parse_version(&version, f, (size_t)(sp1 - f)) != 0) {
                set_err(err, err_len, "line %u: expected \"key <version> <origin> <64 hex digits>\"", lineno);
                goto out;
            }
            size_t olen = (size_t)(sp2 - sp1 - 1);
            if (olen == 6 && memcmp(sp1 + 1, "random", 6) == 0)
                origin = KEK_ORIGIN_RANDOM;
            else if (olen == 8 && memcmp(sp1 + 1, "argon2id", 8) == 0)
                origin = KEK_ORIGIN_ARGON2ID;
            else {
                set_err(err, err_len, "line %u: unknown key origin", lineno);
                goto out;
            }
            if ((size_t)(lend - sp2 - 1) != KEK_HEX_LEN) {
                set_err(err, err_len, "line %u: a key is %u hex digits", lineno, KEK_HEX_LEN);
                goto out;
            }
            uint8_t *dst = NULL;
            kek_entry *e = append_entry(r, version, origin, &dst);
            if (!e) {
                set_err(err, err_len, "line %u: versions must increase (at most %u keys)", lineno,
                        KEK_RING_MAX);
                goto out;
            }
            size_t got = 0;
            int bad = 0;
            for (size_t i = 0; i < KEK_HEX_LEN; i++) {
                char c = sp2[1 + i];
                /* lowercase only: one spelling per key */
                bad |= !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
            }
            if (bad || hex_decode(dst, KEK_LEN, &got, sp2 + 1, KEK_HEX_LEN) != 0 || got != KEK_LEN) {
                secmem_close_quiet(e->key);
                drop_last(r);
                set_err(err, err_len, "line %u: key is not 64 lowercase hex digits", lineno);
                goto out;
            }
            if (secmem_close(e->key) != 0) {
                set_err(err, err_len, "cannot protect key memory");
                goto out;
            }
        } else if (n == sizeof KEK_CHECK_PREFIX - 1 + 64 &&
                   memcmp(p, KEK_CHECK_PREFIX, sizeof KEK_CHECK_PREFIX - 1) == 0) {
            uint8_t want[32], got[32];
            char hexbuf[65];
            memcpy(hexbuf, p + sizeof KEK_CHECK_PREFIX - 1, 64);
            hexbuf[64] = '\0';
            if (hex_decode_exact(want, sizeof want, hexbuf) != 0) {
                set_err(err, err_len, "line %u: bad check value", lineno);
                goto out;
            }
            crypto_generichash(got, sizeof got, (const uint8_t *)buf, (size_t)(p - buf), NULL, 0);
            if (sodium_memcmp(want, got, sizeof got) != 0) {
                set_err(err, err_len, "line %u: check value does not match the file (edited or corrupt)",
                        lineno);
                goto out;
            }
            check_at = p;
        } else {
            set_err(err, err_len, "line %u: unknown line", lineno);
            goto out;
        }
        p = nl + 1;
    }
    if (!check_at) {
        set_err(err, err_len, "missing check line (truncated file?)");
        goto out;
    }
    if (r->count == 0) {
        set_err(err, err_len, "the ring has no key");
        goto out;
    }
    if (current == 0 || kek_ring_set_current(r, current) != 0) {
        set_err(err, err_len, "current version is not in the ring");
        goto out;
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    kek_ring_free(r);
    return rc;
}

int kek_ring_load(kek_ring **out, char *err, size_t err_len, const char *path, bool check_owner)
{
    char *buf = NULL;
    size_t have = 0;
    struct stat st;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    *out = NULL;
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (secmem_init() != 0) {
        set_err(err, err_len, "libsodium unusable");
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, err_len, "%s: not a regular file", path);
        goto out;
    }
    if (check_owner && (st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
        set_err(err, err_len, "%s: must be owned by uid %u with no group/other permissions (chmod 0400)",
                path, (unsigned)geteuid());
        goto out;
    }
    if (st.st_size > (off_t)KEK_FILE_MAX) {
        set_err(err, err_len, "%s: larger than %u bytes", path, KEK_FILE_MAX);
        goto out;
    }
    buf = sodium_malloc(KEK_FILE_MAX);
    if (!buf) {
        set_err(err, err_len, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, KEK_FILE_MAX - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, err_len, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        if (have == KEK_FILE_MAX) {
            set_err(err, err_len, "%s: larger than %u bytes", path, KEK_FILE_MAX - 1);
            goto out;
        }
    }
    char why[200];
    if (kek_ring_parse(out, why, sizeof why, buf, have) != 0) {
        set_err(err, err_len, "%s: %s", path, why);
        goto out;
    }
    rc = 0;
out:
    if (buf)
        sodium_free(buf); /* zeroes the key hex */
    close(fd);
    return rc;
}

/* ---- writing ---------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kek_ring_write_file(const kek_ring *r, char *err, size_t err_len, const char *path,
                        bool exclusive)
{
    const size_t cap = KEK_FILE_MAX;
    char *buf = NULL;
    size_t len = 0;
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd = -1, dfd = -1, rc = -1, made_tmp = 0;

    if (r->count == 0 || r->current == 0) {
        set_err(err, err_len, "refusing to write an empty ring");
        return -1;
    }
    if (secmem_init() != 0) {
        set_err(err, err_len, "libsodium unusable");
        return -1;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp ||
        snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        set_err(err, err_len, "path too long");
        return -1;
    }
    buf = sodium_malloc(cap);
    if (!buf) {
        set_err(err, err_len, "out of memory");
        return -1;
    }
    len += (size_t)snprintf(buf + len, cap - len, "%scurrent %u\n", KEK_MAGIC_LINE, r->current);
    for (size_t i = 0; i < r->count; i++) {
        const kek_entry *e = &r->entries[i];
        const uint8_t *k = secmem_open_ro(e->key);
        if (!k) {
            set_err(err, err_len, "cannot open key memory");
            goto out;
        }
        char hexk[KEK_HEX_LEN + 1];
        hex_encode(hexk, k, KEK_LEN);
        int rc_close = secmem_close(e->key);
        len += (size_t)snprintf(buf + len, cap - len, "key %u %s %s\n", e->version,
                                e->origin == KEK_ORIGIN_ARGON2ID ? "argon2id" : "random", hexk);
        sodium_memzero(hexk, sizeof hexk);
        if (rc_close != 0) {
            set_err(err, err_len, "cannot protect key memory");
            goto out;
        }
    }
    {
        uint8_t check[32];
        char hexc[65];
        crypto_generichash(check, sizeof check, (const uint8_t *)buf, len, NULL, 0);
        hex_encode(hexc, check, sizeof check);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s\n", KEK_CHECK_PREFIX, hexc);
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    made_tmp = 1;
    if (fchmod(fd, 0400) != 0 || write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        set_err(err, err_len, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (exclusive) {
        if (link(tmp, path) != 0) {
            set_err(err, err_len, "%s: %s", path, errno == EEXIST ? "already exists (refusing to overwrite a KEK ring)" : strerror(errno));
            goto out;
        }
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        set_err(err, err_len, "rename %s: %s", path, strerror(errno));
        goto out;
    }
    made_tmp = 0;
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        set_err(err, err_len, "fsync of the ring's directory: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (made_tmp)
        unlink(tmp);
    if (dfd >= 0)
        close(dfd);
    sodium_free(buf);
    return rc;
}
