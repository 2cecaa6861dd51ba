#include "signer_config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const signer_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const signer_mlock_modes[] = {"auto", "future", "current", NULL};

static const config_option signer_options[] = {
    {"socket.path", CONFIG_PATH, CONFIG_REQUIRED, NULL, 0, 0, NULL,
     "Unix socket coffer-api connects to (at most 107 bytes)"},
    {"socket.mode", CONFIG_STRING, 0, "0660", 0, 0, NULL,
     "octal permissions of the socket file"},
    {"socket.group", CONFIG_STRING, 0, NULL, 0, 0, NULL,
     "group the socket file is given to (the group coffer-api runs in); unset: unchanged"},
    {"state.dir", CONFIG_PATH, CONFIG_REQUIRED, NULL, 0, 0, NULL,
     "state directory: audit log and velocity/nonce ledger; the daemon chroots into it"},
    {"audit.file", CONFIG_STRING, 0, "audit.log", 0, 0, NULL,
     "audit log file name inside state.dir"},
    {"kek.ring", CONFIG_PATH, CONFIG_REQUIRED, NULL, 0, 0, NULL,
     "KEK ring file (coffer-signer init); read before the privilege drop"},
    {"policy.file", CONFIG_PATH, CONFIG_REQUIRED, NULL, 0, 0, NULL,
     "signing policy (JSON, see docs/signer.md); read before the privilege drop"},
    {"peer.uids", CONFIG_LIST, CONFIG_REQUIRED, NULL, 0, 0, NULL,
     "uids (numbers or user names) allowed to connect, checked with SO_PEERCRED"},
    {"sandbox.user", CONFIG_STRING, 0, "coffer-signer", 0, 0, NULL,
     "unprivileged user the daemon drops to after chroot"},
    {"sandbox.mlock", CONFIG_ENUM, 0, "auto", 0, 0, signer_mlock_modes,
     "memory locking: future (lock all present and future memory, needs RLIMIT_MEMLOCK "
     "raised), current (lock present memory), auto (future when possible)"},
    {"server.threads", CONFIG_INT, 0, "2", 1, 16, NULL,
     "event-loop threads, each serving its own connections"},
    {"server.max_connections", CONFIG_INT, 0, "256", 1, 4096, NULL,
     "connections served at once; more are closed on accept"},
    {"server.max_pipeline", CONFIG_INT, 0, "64", 1, 4096, NULL,
     "answers queued per connection before the daemon stops reading from it"},
    {"server.conn_queue_bytes", CONFIG_INT, 0, "1048576", 65540, 1073741824, NULL,
     "bytes of answers queued per connection before the daemon stops reading from it"},
    {"server.queue_bytes", CONFIG_INT, 0, "67108864", 65540, 17179869184, NULL,
     "bytes of answers queued over all connections before the daemon stops reading any"},
    {"server.idle_timeout", CONFIG_DURATION, 0, "5m", 1000, 86400000, NULL,
     "a connection without a byte read or written for this long is closed"},
    {"server.frame_timeout", CONFIG_DURATION, 0, "10s", 100, 300000, NULL,
     "a frame must be complete this long after its first byte (else: protocol violation, closed)"},
    {"log.level", CONFIG_ENUM, 0, "info", 0, 0, signer_log_levels, "lowest level logged"},
};

static const config_schema signer_schema = {signer_options,
                                            sizeof signer_options / sizeof signer_options[0]};

const config_schema *signer_config_schema(void)
{
    return &signer_schema;
}

config *signer_config_load(const char *prog, const char *path, char *const *envp,
                           char *const *extra_env)
{
    return config_load_for_program(prog, &signer_schema, path, envp, extra_env);
}

/* Parses a uid given as digits, or looks up a user name. */
static int resolve_uid(uid_t *out, const char *text)
{
    if (text[0] >= '0' && text[0] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(text, &end, 10);
        if (errno != 0 || *end != '\0' || v >= (unsigned long)UINT_MAX)
            return -1;
        *out = (uid_t)v;
        return 0;
    }
    struct passwd *pw = getpwnam(text);
    if (!pw)
        return -1;
    *out = pw->pw_uid;
    return 0;
}

int signer_settings_resolve(signer_settings *out, const config *cfg, const char *prog)
{
    int bad = 0;
    const char *mode_text = NULL, *group = NULL;
    const char *const *uids = NULL;
    size_t n_uids = 0, idx = 0;
    int64_t v = 0;

    memset(out, 0, sizeof *out);
    if (config_get_string(cfg, &out->socket_path, "socket.path") != 0 ||
        config_get_string(cfg, &out->state_dir, "state.dir") != 0 ||
        config_get_string(cfg, &out->kek_ring, "kek.ring") != 0 ||
        config_get_string(cfg, &out->policy_file, "policy.file") != 0 ||
        config_get_string(cfg, &out->audit_file, "audit.file") != 0 ||
        config_get_string(cfg, &out->user, "sandbox.user") != 0 ||
        config_get_string(cfg, &mode_text, "socket.mode") != 0 ||
        config_get_list(cfg, &uids, &n_uids, "peer.uids") != 0) {
        fprintf(stderr, "%s: configuration is missing required keys\n", prog);
        return -1;
    }
    if (strlen(out->socket_path) > SIGNER_SOCKET_PATH_MAX) {
        fprintf(stderr, "%s: socket.path is longer than %d bytes\n", prog, SIGNER_SOCKET_PATH_MAX);
        bad = 1;
    }
    if (out->state_dir[0] != '/') {
        fprintf(stderr, "%s: state.dir must be an absolute path\n", prog);
        bad = 1;
    }
    if (out->audit_file[0] == '\0' || strchr(out->audit_file, '/') ||
        strcmp(out->audit_file, ".") == 0 || strcmp(out->audit_file, "..") == 0) {
        fprintf(stderr, "%s: audit.file must be a plain file name inside state.dir\n", prog);
        bad = 1;
    }
    {
        char *end = NULL;
        errno = 0;
        unsigned long m = strtoul(mode_text, &end, 8);
        if (errno != 0 || *end != '\0' || mode_text[0] == '\0' || m > 0777 || (m & 0600) != 0600) {
            fprintf(stderr, "%s: socket.mode must be octal permissions with owner rw (e.g. 0660), got \"%s\"\n",
                    prog, mode_text);
            bad = 1;
        }
        out->socket_mode = (mode_t)m;
    }
    if (config_get_string(cfg, &group, "socket.group") == 0 && group && group[0]) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            fprintf(stderr, "%s: socket.group: no group named \"%s\"\n", prog, group);
            bad = 1;
        } else {
            out->socket_group_set = true;
            out->socket_gid = gr->gr_gid;
        }
    }
    if (n_uids == 0 || n_uids > SIGNER_PEER_UIDS_MAX) {
        fprintf(stderr, "%s: peer.uids must list 1 to %d uids\n", prog, SIGNER_PEER_UIDS_MAX);
        bad = 1;
    } else {
        for (size_t i = 0; i < n_uids; i++) {
            if (resolve_uid(&out->peer_uids[i], uids[i]) != 0) {
                fprintf(stderr, "%s: peer.uids: \"%s\" is neither a uid nor a known user\n", prog,
                        uids[i]);
                bad = 1;
            }
        }
        out->n_peer_uids = n_uids;
    }
    {
        struct passwd *pw = getpwnam(out->user);
        if (!pw) {
            fprintf(stderr, "%s: sandbox.user: no user named \"%s\" (scripts/install-deps creates coffer-signer)\n",
                    prog, out->user);
            bad = 1;
        } else if (pw->pw_uid == 0 || pw->pw_gid == 0) {
            fprintf(stderr, "%s: sandbox.user \"%s\" must not have uid or gid 0\n", prog, out->user);
            bad = 1;
        } else {
            out->run_uid = pw->pw_uid;
            out->run_gid = pw->pw_gid;
        }
    }
    if (config_get_enum(cfg, &idx, "sandbox.mlock") == 0)
        out->mlock = (signer_mlock_mode)idx;
    if (config_get_int(cfg, &v, "server.threads") == 0)
        out->threads = (unsigned)v;
    if (config_get_int(cfg, &v, "server.max_connections") == 0)
        out->max_connections = (unsigned)v;
    if (config_get_int(cfg, &v, "server.max_pipeline") == 0)
        out->max_pipeline = (unsigned)v;
    if (config_get_int(cfg, &v, "server.conn_queue_bytes") == 0)
        out->conn_queue_bytes = (size_t)v;
    if (config_get_int(cfg, &v, "server.queue_bytes") == 0)
        out->queue_bytes = (size_t)v;
    if (config_get_duration_ms(cfg, &v, "server.idle_timeout") == 0)
        out->idle_timeout_ms = v;
    if (config_get_duration_ms(cfg, &v, "server.frame_timeout") == 0)
        out->frame_timeout_ms = v;
    out->level = LOG_INFO;
    if (config_get_enum(cfg, &idx, "log.level") == 0)
        out->level = (log_level)idx;
    return bad ? -1 : 0;
}
