/* signer_config: coffer-signer's configuration schema (a table, see
 * common/config.h) and its loading from --config FILE plus COFFER_*
 * environment overrides (socket.path -> COFFER_SOCKET_PATH, ...).
 *
 * `coffer-signer serve --help` prints every key. */
#ifndef COFFER_SIGNER_CONFIG_H
#define COFFER_SIGNER_CONFIG_H

#include "config.h"
#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Most peer uids the allow-list holds. */
#define SIGNER_PEER_UIDS_MAX 32
/* Longest Unix socket path (sun_path is 108 bytes with its NUL). */
#define SIGNER_SOCKET_PATH_MAX 107

/* memory locking (sandbox.mlock) */
typedef enum {
    SIGNER_MLOCK_AUTO = 0,   /* future if RLIMIT_MEMLOCK can be lifted, else current */
    SIGNER_MLOCK_FUTURE = 1, /* MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT, or refuse to start */
    SIGNER_MLOCK_CURRENT = 2,/* MCL_CURRENT|MCL_ONFAULT only */
} signer_mlock_mode;

/* The settings serve needs, resolved (user names to ids, modes parsed). */
typedef struct {
    const char *socket_path;
    mode_t socket_mode;
    bool socket_group_set;
    gid_t socket_gid;
    const char *state_dir;
    const char *kek_ring;
    const char *policy_file;
    const char *audit_file;     /* name inside state_dir */
    uid_t peer_uids[SIGNER_PEER_UIDS_MAX];
    size_t n_peer_uids;
    const char *user;           /* sandbox.user */
    uid_t run_uid;
    gid_t run_gid;
    signer_mlock_mode mlock;
    unsigned threads;
    unsigned max_connections;
    unsigned max_pipeline;
    size_t conn_queue_bytes;
    size_t queue_bytes;
    int64_t idle_timeout_ms;
    int64_t frame_timeout_ms;
    log_level level;
} signer_settings;

/* The schema of every key coffer-signer understands. */
const config_schema *signer_config_schema(void);

/* Loads path (NULL: defaults and environment only) with envp overrides,
 * then extra_env ("COFFER_X=v" strings, NULL-terminated, may be NULL),
 * which wins over envp. Prints every problem to stderr prefixed with prog.
 * Returns the config or NULL. */
__attribute__((warn_unused_result))
config *signer_config_load(const char *prog, const char *path, char *const *envp,
                           char *const *extra_env);

/* Resolves cfg into out: parses socket.mode, looks up socket.group and
 * sandbox.user (getgrnam/getpwnam: call before chroot), peer.uids (numbers
 * or user names). Borrowed strings stay owned by cfg.
 * Returns 0, or -1 with every problem printed to stderr prefixed with prog.
 * out: output. cfg: input. */
__attribute__((warn_unused_result))
int signer_settings_resolve(signer_settings *out, const config *cfg, const char *prog);

#endif
