#include "secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>

typedef enum {
    SECMEM_NOACCESS = 0,
    SECMEM_READONLY = 1,
    SECMEM_READWRITE = 2,
} secmem_prot;

struct secmem {
    void *ptr;        /* sodium_malloc'd, len bytes */
    size_t len;
    unsigned opens;   /* outstanding opens */
    secmem_prot prot; /* current protection */
};

static pthread_once_t secmem_once = PTHREAD_ONCE_INIT;
static int secmem_init_result = -1;

static void secmem_init_once(void)
{
    /* sodium_init returns 0 on first success, 1 if already initialized. */
    secmem_init_result = sodium_init() < 0 ? -1 : 0;
}

int secmem_init(void)
{
    if (pthread_once(&secmem_once, secmem_init_once) != 0)
        return -1;
    return secmem_init_result;
}

static int secmem_protect(secmem *m, secmem_prot prot)
{
    int rc;
    if (m->prot == prot)
        return 0;
    switch (prot) {
    case SECMEM_NOACCESS:
        rc = sodium_mprotect_noaccess(m->ptr);
        break;
    case SECMEM_READONLY:
        rc = sodium_mprotect_readonly(m->ptr);
        break;
    case SECMEM_READWRITE:
        rc = sodium_mprotect_readwrite(m->ptr);
        break;
    default:
        return -1;
    }
    if (rc != 0)
        return -1;
    m->prot = prot;
    return 0;
}

secmem *secmem_new(size_t len)
{
    secmem *m = NULL;
    secmem *result = NULL;

    if (len == 0 || secmem_init() != 0)
        goto out;
    m = calloc(1, sizeof *m);
    if (!m)
        goto out;
    m->ptr = sodium_malloc(len);
    if (!m->ptr)
        goto out;
    m->len = len;
    m->prot = SECMEM_READWRITE;
    sodium_memzero(m->ptr, len);
    if (secmem_protect(m, SECMEM_NOACCESS) != 0)
        goto out;
    result = m;
    m = NULL;
out:
    secmem_free(m);
    return result;
}

void secmem_free(secmem *m)
{
    if (!m)
        return;
    if (m->ptr)
        sodium_free(m->ptr); /* lifts the protection and zeroes first */
    free(m);
}

size_t secmem_len(const secmem *m)
{
    return m->len;
}

static void *secmem_open(secmem *m, secmem_prot want)
{
    secmem_prot prot = want > m->prot ? want : m->prot;
    if (m->opens == ~0u)
        return NULL;
    if (secmem_protect(m, prot) != 0)
        return NULL;
    m->opens++;
    return m->ptr;
}

const void *secmem_open_ro(secmem *m)
{
    return secmem_open(m, SECMEM_READONLY);
}

void *secmem_open_rw(secmem *m)
{
    return secmem_open(m, SECMEM_READWRITE);
}

int secmem_close(secmem *m)
{
    if (m->opens == 0)
        return -1;
    if (m->opens == 1 && secmem_protect(m, SECMEM_NOACCESS) != 0)
        return -1;
    m->opens--;
    return 0;
}

void secmem_wipe(void *p, size_t len)
{
    if (len > 0)
        sodium_memzero(p, len);
}

bool secmem_equal(const void *a, const void *b, size_t len)
{
    if (len == 0)
        return true;
    return sodium_memcmp(a, b, len) == 0;
}
