/* kek: the key-encryption-key ring.
 *
 * A ring holds 1..KEK_RING_MAX keys of KEK_LEN bytes, each with a version
 * number (1..2^32-1), and names one of them current: new blobs are sealed
 * under the current version; any version in the ring unseals. Every key
 * lives in its own secmem region, inaccessible between uses.
 *
 * File format (text, LF line ends, nothing else allowed):
 *
 *     coffer-kek-ring 1
 *     current 2
 *     key 1 random 9f0c...64 hex digits...
 *     key 2 argon2id 41aa...
 *     check <64 hex digits: BLAKE2b-256 of every byte before this line>
 *
 * Versions are listed in increasing order; the origin word says how a key
 * was made ("random": 32 bytes from the OS; "argon2id": derived from a
 * development passphrase, see kek_ring_add_passphrase). The file must be a
 * regular file of the loading user with no group or other permissions
 * (init writes it 0400).
 *
 * A ring is not thread-safe: each signer thread uses its own clone. */
#ifndef COFFER_SIGNER_KEK_H
#define COFFER_SIGNER_KEK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEK_LEN 32u
#define KEK_RING_MAX 64u
/* Largest ring file accepted. */
#define KEK_FILE_MAX 16384u
/* Bytes of the per-version Argon2id salt. */
#define KEK_SALT_LEN 16u

typedef struct kek_ring kek_ring;

/* Origin of a key, as recorded in the file. */
typedef enum {
    KEK_ORIGIN_RANDOM = 0,
    KEK_ORIGIN_ARGON2ID = 1,
} kek_origin;

/* Returns a new empty ring (no current version), or NULL on ENOMEM. */
__attribute__((warn_unused_result))
kek_ring *kek_ring_new(void);

/* Wipes and frees a ring; r may be NULL. */
void kek_ring_free(kek_ring *r);

/* Loads a ring file. With check_owner, refuses a file that is not a
 * regular file owned by the effective uid with mode bits only in 0700.
 * Returns 0, or -1 with a one-line reason in err.
 * out: output. err, err_len: output buffer for the reason. path: input. */
__attribute__((warn_unused_result))
int kek_ring_load(kek_ring **out, char *err, size_t err_len, const char *path, bool check_owner);

/* Parses a ring file's bytes (buf need not be NUL-terminated).
 * Returns 0, or -1 with a reason in err. The caller wipes buf. */
__attribute__((warn_unused_result))
int kek_ring_parse(kek_ring **out, char *err, size_t err_len, const char *buf, size_t len);

/* Writes the ring to path atomically (temporary file in the same
 * directory, fsync, rename, fsync of the directory), mode 0400. With
 * exclusive, fails if path exists (init).
 * Returns 0, or -1 with a reason in err. */
__attribute__((warn_unused_result))
int kek_ring_write_file(const kek_ring *r, char *err, size_t err_len, const char *path,
                        bool exclusive);

/* Returns a deep copy (new secmem regions), or NULL on failure. */
__attribute__((warn_unused_result))
kek_ring *kek_ring_clone(const kek_ring *r);

/* Adds a key of 32 random bytes under version (must be above every
 * version in the ring). Returns 0, or -1 (bad version, ring full, ENOMEM). */
__attribute__((warn_unused_result))
int kek_ring_add_random(kek_ring *r, uint32_t version);

/* Adds a key derived from a passphrase with Argon2id (crypto_pwhash,
 * OPSLIMIT/MEMLIMIT_INTERACTIVE) and the salt kek_salt(version), so the
 * same passphrase gives the same ring on every machine. Development only:
 * a passphrase is far weaker than 32 random bytes.
 * Returns 0, or -1 as kek_ring_add_random (or when Argon2id fails). */
__attribute__((warn_unused_result))
int kek_ring_add_passphrase(kek_ring *r, uint32_t version, const char *pass, size_t pass_len);

/* Adds a key given as bytes (tests). Returns as kek_ring_add_random. */
__attribute__((warn_unused_result))
int kek_ring_add_bytes(kek_ring *r, uint32_t version, const uint8_t key[KEK_LEN]);

/* Removes a version. Returns 0, or -1 when it is absent or current. */
__attribute__((warn_unused_result))
int kek_ring_remove(kek_ring *r, uint32_t version);

/* Makes version current. Returns 0, or -1 when it is absent. */
__attribute__((warn_unused_result))
int kek_ring_set_current(kek_ring *r, uint32_t version);

/* The current version, 0 when none. */
uint32_t kek_ring_current(const kek_ring *r);

/* Number of keys, and the i-th version (increasing order; 0 if out of range). */
size_t kek_ring_count(const kek_ring *r);
uint32_t kek_ring_version_at(const kek_ring *r, size_t i);
kek_origin kek_ring_origin_at(const kek_ring *r, size_t i);

/* Highest version in the ring, 0 when empty. */
uint32_t kek_ring_max_version(const kek_ring *r);

/* True when version is in the ring. */
bool kek_ring_has(const kek_ring *r, uint32_t version);

/* Opens version's key read-only and returns its KEK_LEN bytes, or NULL
 * when the version is absent or the protection cannot change. Every
 * successful open needs one kek_ring_close with the same version. */
__attribute__((warn_unused_result))
const uint8_t *kek_ring_open(kek_ring *r, uint32_t version);

/* Makes version's key inaccessible again. Returns 0 or -1 (misuse). */
__attribute__((warn_unused_result))
int kek_ring_close(kek_ring *r, uint32_t version);

/* Opens every key of the ring read-only at once, for a batch of
 * operations: kek_ring_open/close inside a hold cost no system call. Every
 * successful hold needs one kek_ring_release.
 * Returns 0, or -1 (protection could not change; nothing is held). */
__attribute__((warn_unused_result))
int kek_ring_hold(kek_ring *r);

/* Ends a hold: every key is inaccessible again (unless opened otherwise).
 * Returns 0 or -1 (misuse, or protection could not change). */
__attribute__((warn_unused_result))
int kek_ring_release(kek_ring *r);

/* The Argon2id salt of a version: the first KEK_SALT_LEN bytes of
 * BLAKE2b("coffer-signer/kek-salt/v1" | version as 4 bytes big-endian). */
void kek_salt(uint8_t out[KEK_SALT_LEN], uint32_t version);

#endif
