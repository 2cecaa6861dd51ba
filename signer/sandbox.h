/* sandbox: coffer-signer's privilege reduction, in the order of
 * DESIGN.md §1. Each step is fatal on failure (the caller exits).
 *
 *   sandbox_no_dumps      RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (first thing in
 *                         serve, before any secret is read)
 *   sandbox_lock_memory   raise RLIMIT_MEMLOCK while still root, then
 *                         mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT) (or
 *                         MCL_CURRENT|MCL_ONFAULT when the limit cannot be
 *                         raised, see signer_mlock_mode)
 *   sandbox_drop_bounding empty the capability bounding and ambient sets;
 *                         both are per thread and inherited, so this runs
 *                         before the first thread is created
 *   sandbox_enter         verify the bounding/ambient sets are empty,
 *                         chroot into the state directory, setgroups →
 *                         setresgid → setresuid, verify root cannot be
 *                         regained, PR_SET_NO_NEW_PRIVS
 *   sandbox_seccomp       the syscall allowlist, applied to every thread
 *                         (TSYNC); anything else raises SIGSYS, whose
 *                         handler names the syscall and exits
 *
 * Sanitizer builds: the AddressSanitizer/UBSan runtime makes syscalls of
 * its own (reporting opens /proc/self/maps, reads it, installs signal
 * stacks). When the build defines __SANITIZE_ADDRESS__ (GCC) or
 * __has_feature(address_sanitizer)/(undefined_behavior_sanitizer) (clang),
 * the allowlist is widened by SANDBOX_SANITIZER_SYSCALLS. This is build
 * configuration: a release build never contains those entries and there is
 * no runtime switch. */
#ifndef COFFER_SIGNER_SANDBOX_H
#define COFFER_SIGNER_SANDBOX_H

#include "signer_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Sets RLIMIT_CORE to 0 and makes the process non-dumpable.
 * Returns 0 or -1 (errno). */
__attribute__((warn_unused_result))
int sandbox_no_dumps(void);

/* Locks memory as mode asks. *future_out: whether MCL_FUTURE is in force.
 * Returns 0, or -1 with why (mode future and the limit cannot be raised,
 * or mlockall failed). */
__attribute__((warn_unused_result))
int sandbox_lock_memory(signer_mlock_mode mode, bool *future_out, char *why, size_t why_len);

/* Drops every capability from the calling thread's bounding set and
 * clears its ambient set (threads created afterwards inherit both).
 * Call while still root (CAP_SETPCAP) and before creating any thread.
 * Returns 0, or -1 with why. */
__attribute__((warn_unused_result))
int sandbox_drop_bounding(char *why, size_t why_len);

/* Verifies the bounding and ambient sets are empty (sandbox_drop_bounding
 * ran), chroot(2)s into the directory open at dirfd, switches to uid/gid
 * for good and sets no-new-privs. Returns 0, or -1 with why. */
__attribute__((warn_unused_result))
int sandbox_enter(int dirfd, uid_t uid, gid_t gid, char *why, size_t why_len);

/* Installs the seccomp filter on every thread of the process.
 * Returns 0, or -1 with why. */
__attribute__((warn_unused_result))
int sandbox_seccomp(char *why, size_t why_len);

/* True when this build includes the sanitizer allowlist entries. */
bool sandbox_sanitizer_build(void);

#endif
