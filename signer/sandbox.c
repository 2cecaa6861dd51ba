#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANDBOX_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANDBOX_SANITIZED 1
#endif

__attribute__((format(printf, 3, 4)))
static int failf(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    errno = saved;
    return -1;
}

bool sandbox_sanitizer_build(void)
{
#ifdef SANDBOX_SANITIZED
    return true;
#else
    return false;
#endif
}

int sandbox_no_dumps(void)
{
    struct rlimit zero = {0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) != 0)
        return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -1;
    return 0;
}

int sandbox_lock_memory(signer_mlock_mode mode, bool *future_out, char *why, size_t why_len)
{
    struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};
    int flags = MCL_CURRENT | MCL_ONFAULT;
    *future_out = false;
    if (mode != SIGNER_MLOCK_CURRENT) {
        /* Once root is gone, MCL_FUTURE charges every new mapping to
         * RLIMIT_MEMLOCK (8 MiB by default): lift it while we may. */
        if (setrlimit(RLIMIT_MEMLOCK, &inf) == 0) {
            flags |= MCL_FUTURE;
            *future_out = true;
        } else if (mode == SIGNER_MLOCK_FUTURE) {
            return failf(why, why_len, "sandbox.mlock=future needs RLIMIT_MEMLOCK raised: %s "
                         "(no CAP_SYS_RESOURCE?)", strerror(errno));
        }
    }
    if (mlockall(flags) != 0)
        return failf(why, why_len, "mlockall: %s", strerror(errno));
    return 0;
}

int sandbox_drop_bounding(char *why, size_t why_len)
{
    /* No capability can come back through a later execve (there is none)
     * or a setuid binary (unreachable in the chroot). Needs CAP_SETPCAP.
     * The bounding and ambient sets belong to each thread and are
     * inherited by the threads it creates: hence before any exists. */
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            return failf(why, why_len, "dropping capability %d from the bounding set: %s", cap,
                         strerror(errno));
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return failf(why, why_len, "clearing ambient capabilities: %s", strerror(errno));
    return 0;
}

int sandbox_enter(int dirfd, uid_t uid, gid_t gid, char *why, size_t why_len)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (uid == 0 || gid == 0)
        return failf(why, why_len, "refusing to run as uid/gid 0");
    /* sandbox_drop_bounding ran before the threads were created. */
    for (int cap = 0; cap <= 63; cap++) {
        int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in > 0)
            return failf(why, why_len, "capability %d is still in the bounding set "
                         "(sandbox_drop_bounding must run before any thread is created)", cap);
        int amb = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (amb > 0)
            return failf(why, why_len, "capability %d is still ambient", cap);
    }
    if (fchdir(dirfd) != 0 || chroot(".") != 0 || chdir("/") != 0)
        return failf(why, why_len, "chroot into the state directory: %s", strerror(errno));
    if (setgroups(1, &gid) != 0)
        return failf(why, why_len, "setgroups: %s", strerror(errno));
    if (setresgid(gid, gid, gid) != 0)
        return failf(why, why_len, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
    if (setresuid(uid, uid, uid) != 0)
        return failf(why, why_len, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
    /* Verify: every id is the new one, and root cannot be had back. */
    if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid ||
        getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
        return failf(why, why_len, "ids are not what setresuid/setresgid set");
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || setegid(0) == 0)
        return failf(why, why_len, "root could be regained after the drop");
    gid_t groups[4];
    int ng = getgroups(4, groups);
    if (ng != 1 || groups[0] != gid)
        return failf(why, why_len, "supplementary groups were not dropped");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return failf(why, why_len, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return failf(why, why_len, "the process became dumpable again");
    return 0;
}

/* ---- seccomp ------------------------------------------------------------------------ */

/* SIGSYS from the filter: name the syscall on stderr and exit. Only
 * async-signal-safe calls, all of them in the allowlist. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
    char msg[96];
    int nr = si->si_syscall, n = 0;
    static const char head[] = "coffer-signer: seccomp: blocked syscall ";
    (void)sig;
    (void)uctx;
    memcpy(msg, head, sizeof head - 1);
    n = (int)sizeof head - 1;
    char digits[12];
    int d = 0;
    unsigned v = nr < 0 ? 0u : (unsigned)nr;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && d < (int)sizeof digits);
    while (d > 0)
        msg[n++] = digits[--d];
    msg[n++] = '\n';
    ssize_t w = write(2, msg, (size_t)n);
    (void)w;
    _exit(159);
}

/* The loop's syscalls: sockets it already has, its epoll and eventfds,
 * appending and syncing the two files it already has open, memory, time,
 * randomness, threads' futexes. No open, no socket, no exec. */
static const char *const allow_plain[] = {
    "read", "write", "writev", "close", "sendto", "sendmsg", "recvfrom",
    "accept4", "getsockopt", "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
    "fdatasync", "fsync", "futex", "sched_yield", "getrandom",
    "clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep",
    "munmap", "mremap", "brk", "madvise", "mlock", "munlock",
    "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask", "restart_syscall",
    "getpid", "gettid",
};

#ifdef SANDBOX_SANITIZED
/* What the ASan/UBSan runtime needs for its own work and reports
 * (symbolizing reads /proc/self/maps, which does not exist in the chroot,
 * so it degrades to raw addresses, but it still tries). */
static const char *const allow_sanitizer[] = {
    "open", "openat", "readlink", "readlinkat", "stat", "lstat", "fstat", "newfstatat",
    "lseek", "getdents64", "sigaltstack", "rt_sigaction", "prctl", "sched_getaffinity",
    "getrlimit", "prlimit64", "uname", "ioctl", "mprotect", "mmap",
};
#endif

int sandbox_seccomp(char *why, size_t why_len)
{
    struct sigaction sa;
    scmp_filter_ctx ctx = NULL;
    int rc;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return failf(why, why_len, "sigaction(SIGSYS): %s", strerror(errno));

    ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx)
        return failf(why, why_len, "seccomp_init failed");
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
        failf(why, why_len, "seccomp TSYNC: %s", strerror(-rc));
        goto fail;
    }
    for (size_t i = 0; i < sizeof allow_plain / sizeof allow_plain[0]; i++) {
        int nr = seccomp_syscall_resolve_name(allow_plain[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture */
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) != 0) {
            failf(why, why_len, "seccomp rule %s: %s", allow_plain[i], strerror(-rc));
            goto fail;
        }
    }
    /* Memory may change protection and be mapped, but never executable:
     * (prot & PROT_EXEC) == 0. */
    const struct scmp_arg_cmp no_exec = {.arg = 2, .op = SCMP_CMP_MASKED_EQ, .datum_a = PROT_EXEC, .datum_b = 0};
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, no_exec)) != 0 ||
        (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, no_exec)) != 0) {
        failf(why, why_len, "seccomp memory rules: %s", strerror(-rc));
        goto fail;
    }
    /* abort() signals its own process only. */
    const struct scmp_arg_cmp own_pid = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)getpid(), .datum_b = 0};
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, own_pid)) != 0) {
        failf(why, why_len, "seccomp tgkill rule: %s", strerror(-rc));
        goto fail;
    }
#ifdef SANDBOX_SANITIZED
    for (size_t i = 0; i < sizeof allow_sanitizer / sizeof allow_sanitizer[0]; i++) {
        int nr = seccomp_syscall_resolve_name(allow_sanitizer[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        /* May duplicate a conditional rule above: then widen it. */
        (void)seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
#endif
    if ((rc = seccomp_load(ctx)) != 0) {
        failf(why, why_len, "seccomp_load: %s", strerror(-rc));
        goto fail;
    }
    seccomp_release(ctx);
    return 0;
fail:
    seccomp_release(ctx);
    return -1;
}
