#include "secmem.h"
#include "test_support.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_secmem_roundtrip(void)
{
    secmem *m = secmem_new(64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(secmem_len(m), 64);

    /* Zero-filled at birth. */
    const uint8_t *ro = secmem_open_ro(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ro);
    for (size_t i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(ro[i], 0);
    CU_ASSERT_EQUAL(secmem_close(m), 0);

    uint8_t *rw = secmem_open_rw(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rw);
    for (size_t i = 0; i < 64; i++)
        rw[i] = (uint8_t)(i * 7 + 1);
    CU_ASSERT_EQUAL(secmem_close(m), 0);

    /* The bytes survive lock and unlock. */
    for (int round = 0; round < 3; round++) {
        ro = secmem_open_ro(m);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ro);
        for (size_t i = 0; i < 64; i++)
            CU_ASSERT_EQUAL(ro[i], (uint8_t)(i * 7 + 1));
        CU_ASSERT_EQUAL(secmem_close(m), 0);
    }
    secmem_free(m);
    secmem_free(NULL);
}

static void test_secmem_nested_opens(void)
{
    secmem *m = secmem_new(16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(secmem_close(m), -1); /* not open: misuse */
    const uint8_t *ro = secmem_open_ro(m);
    uint8_t *rw = secmem_open_rw(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ro);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rw);
    CU_ASSERT_PTR_EQUAL(ro, rw);
    rw[0] = 42;
    CU_ASSERT_EQUAL(secmem_close(m), 0);
    CU_ASSERT_EQUAL(ro[0], 42); /* still open once */
    CU_ASSERT_EQUAL(secmem_close(m), 0);
    CU_ASSERT_EQUAL(secmem_close(m), -1);

    /* Freeing an open region is allowed. */
    CU_ASSERT_PTR_NOT_NULL(secmem_open_rw(m));
    secmem_free(m);

    CU_ASSERT_PTR_NULL(secmem_new(0));
}

/* What a forked child does to a region, and how it must end. */
typedef enum {
    CHILD_READ_CLOSED,
    CHILD_WRITE_READONLY,
    CHILD_READ_OPEN,
} child_action;

/* Runs action in a child. Returns the wait status. The child restores the
 * default SIGSEGV disposition first, so that a sanitizer's handler (which
 * would report and exit(1)) does not turn the fault into a normal exit,
 * and turns core dumps off. It exits 0 only if the access did not fault. */
static int run_child(secmem *m, child_action action)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        struct sigaction dfl;
        setrlimit(RLIMIT_CORE, &no_core);
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGSEGV, &dfl, NULL);
        sigaction(SIGBUS, &dfl, NULL);
        switch (action) {
        case CHILD_READ_CLOSED: {
            /* Take the pointer while open, close, then touch it. */
            const volatile uint8_t *p = secmem_open_ro(m);
            if (!p || secmem_close(m) != 0)
                _exit(3);
            uint8_t v = p[0];
            (void)v;
            _exit(0);
        }
        case CHILD_WRITE_READONLY: {
            volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)secmem_open_ro(m);
            if (!p)
                _exit(3);
            p[0] = 1;
            _exit(0);
        }
        case CHILD_READ_OPEN: {
            const volatile uint8_t *p = secmem_open_ro(m);
            if (!p)
                _exit(3);
            _exit(p[0] == 0x5a ? 0 : 4);
        }
        }
        _exit(5);
    }
    int status = 0;
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    return status;
}

static void test_secmem_locked_access_faults(void)
{
    secmem *m = secmem_new(32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    uint8_t *rw = secmem_open_rw(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rw);
    memset(rw, 0x5a, 32);
    CU_ASSERT_EQUAL(secmem_close(m), 0);

    /* Control: the same child code reading an open region exits normally. */
    int st = run_child(m, CHILD_READ_OPEN);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    st = run_child(m, CHILD_READ_CLOSED);
    CU_ASSERT(WIFSIGNALED(st));
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);

    st = run_child(m, CHILD_WRITE_READONLY);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);

    /* The parent's copy is untouched and still readable through open. */
    const uint8_t *ro = secmem_open_ro(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ro);
    CU_ASSERT_EQUAL(ro[0], 0x5a);
    CU_ASSERT_EQUAL(ro[31], 0x5a);
    CU_ASSERT_EQUAL(secmem_close(m), 0);
    secmem_free(m);
}

static void test_secmem_equal(void)
{
    uint8_t a[33], b[33];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)(255 - i);
    CU_ASSERT_TRUE(secmem_equal(a, b, sizeof a));
    b[32] ^= 0x01;
    CU_ASSERT_FALSE(secmem_equal(a, b, sizeof a));
    CU_ASSERT_TRUE(secmem_equal(a, b, 32)); /* the differing byte is outside */
    b[32] = a[32];
    b[0] ^= 0x80;
    CU_ASSERT_FALSE(secmem_equal(a, b, sizeof a));
    CU_ASSERT_TRUE(secmem_equal(a, b, 0));
    CU_ASSERT_TRUE(secmem_equal(a, a, sizeof a));
}

static void test_secmem_wipe(void)
{
    uint8_t buf[100];
    memset(buf, 0xaa, sizeof buf);
    secmem_wipe(buf + 10, 80);
    for (size_t i = 0; i < sizeof buf; i++)
        CU_ASSERT_EQUAL(buf[i], (i >= 10 && i < 90) ? 0 : 0xaa);
    secmem_wipe(NULL, 0);

    secmem *m = secmem_new(48);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    uint8_t *rw = secmem_open_rw(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rw);
    memset(rw, 0xff, 48);
    secmem_wipe(rw, 48);
    for (size_t i = 0; i < 48; i++)
        CU_ASSERT_EQUAL(rw[i], 0);
    CU_ASSERT_EQUAL(secmem_close(m), 0);
    secmem_free(m);
}

static void *init_thread(void *arg)
{
    int *rc = arg;
    *rc = secmem_init();
    return NULL;
}

static void test_secmem_init_once(void)
{
    pthread_t t[8];
    int rc[8];
    for (int i = 0; i < 8; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, init_thread, &rc[i]) == 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(rc[i], 0);
    }
    CU_ASSERT_EQUAL(secmem_init(), 0);
}

void test_register(void)
{
    static const test_case cases[] = {
        {"init_once", test_secmem_init_once},
        {"roundtrip", test_secmem_roundtrip},
        {"nested_opens", test_secmem_nested_opens},
        {"locked_access_faults", test_secmem_locked_access_faults},
        {"equal", test_secmem_equal},
        {"wipe", test_secmem_wipe},
        {NULL, NULL},
    };
    test_add_suite("secmem", cases);
}
