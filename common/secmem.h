/* secmem: guarded memory for key material, on top of libsodium.
 *
 * A secmem region lives in sodium_malloc memory (guard pages on both sides,
 * a canary, mlock'ed where the limit allows) and is kept PROT_NONE
 * (sodium_mprotect_noaccess) whenever no code is using it: touching it then
 * is a SIGSEGV, not a silent read. Open it read-only or read-write for the
 * few lines that need the bytes, and close it again:
 *
 *     uint8_t *k = secmem_open_rw(m);
 *     if (!k) goto out;
 *     ... fill k[0..secmem_len(m)) ...
 *     if (secmem_close(m) != 0) goto out;
 *
 * Opens nest: each open needs one close; the region is readable (and
 * writable if any open asked for it) until the last close, which makes it
 * inaccessible again. A region object is not thread-safe; callers that
 * share one serialize its use.
 *
 * Call secmem_init before chroot/seccomp: libsodium may need /dev/urandom
 * or getrandom(2) the first time. */
#ifndef COFFER_SECMEM_H
#define COFFER_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct secmem secmem;

/* Initializes libsodium once per process (pthread_once; safe from any
 * thread, any number of times).
 * Returns 0 on success, -1 when sodium_init failed. */
__attribute__((warn_unused_result))
int secmem_init(void);

/* Allocates a zero-filled guarded region of len bytes, left inaccessible.
 * Calls secmem_init if needed.
 * Returns the region, or NULL when len is 0, libsodium cannot be
 * initialized, or memory (or its protection) cannot be obtained. */
__attribute__((warn_unused_result))
secmem *secmem_new(size_t len);

/* Wipes and releases a region (sodium_free zeroes it; an open region is
 * freed as well). m may be NULL. */
void secmem_free(secmem *m);

/* The region's length in bytes, as given to secmem_new. */
size_t secmem_len(const secmem *m);

/* Makes the region readable and returns its first byte, or NULL if the
 * protection cannot be changed (the region then stays as it was). */
__attribute__((warn_unused_result))
const void *secmem_open_ro(secmem *m);

/* Makes the region readable and writable and returns its first byte, or
 * NULL if the protection cannot be changed. */
__attribute__((warn_unused_result))
void *secmem_open_rw(secmem *m);

/* Ends one open. The last close makes the region inaccessible again;
 * until then it keeps the most permissive protection any open asked for.
 * Returns 0 on success, -1 when the region was not open (caller misuse) or
 * its protection cannot be changed. */
__attribute__((warn_unused_result))
int secmem_close(secmem *m);

/* Zeroes p[0..len) in a way the compiler cannot elide (sodium_memzero).
 * p may be NULL when len is 0. */
void secmem_wipe(void *p, size_t len);

/* Compares a[0..len) and b[0..len) in time that depends only on len
 * (sodium_memcmp). Returns true when they are equal. */
__attribute__((warn_unused_result))
bool secmem_equal(const void *a, const void *b, size_t len);

#endif
