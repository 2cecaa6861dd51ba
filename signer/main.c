/* coffer-signer: the isolated signing daemon (docs/signer.md).
 *
 *   coffer-signer init        --ring FILE [--passphrase-env VAR]
 *   coffer-signer rotate-kek  --ring FILE [--passphrase-env VAR]
 *   coffer-signer retire-kek  --ring FILE VERSION
 *   coffer-signer serve       --config FILE
 *   coffer-signer status      --socket PATH
 *   coffer-signer audit-verify FILE
 *   coffer-signer policy-check [--canonical] FILE
 *   coffer-signer config      [--config FILE]
 */
#include "audit.h"
#include "coffer_version.h"
#include "dispatch.h"
#include "hex.h"
#include "ipc.h"
#include "journal.h"
#include "kek.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"
#include "request.h"
#include "sandbox.h"
#include "secmem.h"
#include "server.h"
#include "signer_config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PROG "coffer-signer"
#define LEDGER_FILE "ledger"
#define VERSION_TEXT COFFER_VERSION " (" COFFER_COMMIT ")"

extern char **environ;

/* ---- help ---------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: coffer-signer <command> [options]   (coffer-signer <command> --help)\n"
            "\n"
            "commands:\n"
            "  init          create a KEK ring file (version 1), mode 0400\n"
            "  rotate-kek    add a new KEK version and make it current\n"
            "  retire-kek    remove an old KEK version (after every blob was rewrapped)\n"
            "  serve         run the daemon (starts as root, chroots, drops privileges)\n"
            "  status        ask a running daemon for its Status\n"
            "  audit-verify  check an audit log's hash chain\n"
            "  policy-check  validate a policy file and print its hash\n"
            "  config        print the effective configuration and every key\n"
            "  version       print version and commit\n");
}

static const char *const help_init =
    "usage: coffer-signer init --ring FILE [--passphrase-env VAR]\n"
    "\n"
    "Creates a KEK ring holding version 1 (32 random bytes), current, written\n"
    "atomically with mode 0400. Refuses to overwrite an existing file.\n"
    "  --ring FILE          the ring file (default: kek.ring of --config)\n"
    "  --config FILE        take the ring path from this configuration\n"
    "  --passphrase-env VAR development only: derive the key from the passphrase in\n"
    "                       environment variable VAR with Argon2id (same passphrase,\n"
    "                       same ring on every machine)\n";

static const char *const help_rotate =
    "usage: coffer-signer rotate-kek --ring FILE [--passphrase-env VAR]\n"
    "\n"
    "Adds version max+1 to the ring and makes it current. Then restart the\n"
    "daemon and Rewrap every sealed key (docs/signer.md, Operations).\n"
    "  --ring FILE / --config FILE / --passphrase-env VAR   as for init\n";

static const char *const help_retire =
    "usage: coffer-signer retire-kek --ring FILE VERSION\n"
    "\n"
    "Removes VERSION (never the current one) from the ring. Blobs still sealed\n"
    "under it become unusable (UNKNOWN_KEK) once the daemon restarts: rewrap\n"
    "every key first (the audit log's rewrap lines show which were done).\n"
    "  --ring FILE / --config FILE   as for init\n";

static const char *const help_serve =
    "usage: coffer-signer serve --config FILE [--accept-ledger-loss]\n"
    "\n"
    "Runs the daemon. Must start as root: it reads the KEK ring and policy,\n"
    "opens its socket, state directory and audit log, locks memory, chroots\n"
    "into the state directory, drops to sandbox.user, sets no-new-privs and a\n"
    "seccomp allowlist, then serves. SIGTERM/SIGINT stop it cleanly.\n"
    "  --accept-ledger-loss  start although the ledger (nonce and velocity memory)\n"
    "                        is missing or never recorded the audit log's head\n"
    "                        while the log shows earlier activity; audited. Read\n"
    "                        docs/signer.md (Operations) before using it.\n"
    "Configuration keys (file `key = value`, or COFFER_<KEY> variables):\n\n";

static const char *const help_status =
    "usage: coffer-signer status --socket PATH [--timeout-ms N]\n"
    "\n"
    "Sends a Status request and prints the answer. Exit 0 when it answered.\n";

static const char *const help_audit =
    "usage: coffer-signer audit-verify FILE\n"
    "\n"
    "Checks every line's hash and its link to the line before. Exit 0 when the\n"
    "chain is intact (and prints its head), 1 naming the first bad line.\n";

static const char *const help_policy =
    "usage: coffer-signer policy-check [--canonical] FILE\n"
    "\n"
    "Validates a policy. Prints its hash (SHA-256 of the canonical form), or\n"
    "with --canonical the canonical form itself (so `... --canonical FILE |\n"
    "sha256sum` gives the same hash). Exit 1 with the first problem otherwise.\n";

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* ---- KEK ring commands --------------------------------------------------------------- */

typedef struct {
    const char *ring;
    const char *config;
    const char *pass_env;
    int canonical;
    const char *socket;
    int timeout_ms;
    int accept_ledger_loss;
} cli_opts;

static int parse_opts(cli_opts *o, int argc, char **argv, const char *help)
{
    static const struct option opts[] = {
        {"ring", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"passphrase-env", required_argument, NULL, 'p'},
        {"canonical", no_argument, NULL, 'C'},
        {"socket", required_argument, NULL, 's'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"accept-ledger-loss", no_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    memset(o, 0, sizeof *o);
    o->timeout_ms = 5000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o->ring = optarg; break;
        case 'c': o->config = optarg; break;
        case 'p': o->pass_env = optarg; break;
        case 'C': o->canonical = 1; break;
        case 's': o->socket = optarg; break;
        case 't': o->timeout_ms = atoi(optarg); break;
        case 'L': o->accept_ledger_loss = 1; break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return 2;
        }
    }
    return 0;
}

/* The ring path from --ring or the config's kek.ring. */
static const char *ring_path(const cli_opts *o, config **cfg_out)
{
    *cfg_out = NULL;
    if (o->ring)
        return o->ring;
    if (!o->config) {
        fprintf(stderr, PROG ": give --ring FILE (or --config FILE with kek.ring)\n");
        return NULL;
    }
    /* The serve configuration names the ring (it has every required key). */
    config *cfg = signer_config_load(PROG, o->config, environ, NULL);
    const char *p = NULL;
    if (!cfg || config_get_string(cfg, &p, "kek.ring") != 0) {
        config_free(cfg);
        return NULL;
    }
    *cfg_out = cfg;
    return p;
}

static int add_version(kek_ring *r, uint32_t v, const cli_opts *o)
{
    if (!o->pass_env)
        return kek_ring_add_random(r, v);
    const char *pass = getenv(o->pass_env);
    if (!pass || !pass[0]) {
        fprintf(stderr, PROG ": environment variable %s is empty or unset\n", o->pass_env);
        return -1;
    }
    fprintf(stderr, PROG ": deriving KEK version %u from a passphrase (Argon2id; development only)\n", v);
    return kek_ring_add_passphrase(r, v, pass, strlen(pass));
}

static void print_versions(const kek_ring *r)
{
    printf("versions:");
    for (size_t i = 0; i < kek_ring_count(r); i++)
        printf(" %u%s", kek_ring_version_at(r, i),
               kek_ring_version_at(r, i) == kek_ring_current(r) ? "*" : "");
    printf("  (* current)\n");
}

static int cmd_init(int argc, char **argv)
{
    cli_opts o;
    config *cfg = NULL;
    char err[512];
    int rc = parse_opts(&o, argc, argv, help_init);
    if (rc)
        return rc == 1 ? 0 : 2;
    const char *path = ring_path(&o, &cfg);
    if (!path)
        return 2;
    kek_ring *r = kek_ring_new();
    rc = 1;
    if (!r || add_version(r, 1, &o) != 0 || kek_ring_set_current(r, 1) != 0) {
        fprintf(stderr, PROG " init: cannot create the key\n");
        goto out;
    }
    if (kek_ring_write_file(r, err, sizeof err, path, true) != 0) {
        fprintf(stderr, PROG " init: %s\n", err);
        goto out;
    }
    printf("kek ring %s created (mode 0400)\n", path);
    print_versions(r);
    rc = 0;
out:
    kek_ring_free(r);
    config_free(cfg);
    return rc;
}

static int cmd_rotate(int argc, char **argv)
{
    cli_opts o;
    config *cfg = NULL;
    kek_ring *r = NULL;
    char err[512];
    int rc = parse_opts(&o, argc, argv, help_rotate);
    if (rc)
        return rc == 1 ? 0 : 2;
    const char *path = ring_path(&o, &cfg);
    if (!path)
        return 2;
    rc = 1;
    if (kek_ring_load(&r, err, sizeof err, path, true) != 0) {
        fprintf(stderr, PROG " rotate-kek: %s\n", err);
        goto out;
    }
    uint32_t v = kek_ring_max_version(r) + 1;
    if (v == 0 || add_version(r, v, &o) != 0 || kek_ring_set_current(r, v) != 0) {
        fprintf(stderr, PROG " rotate-kek: cannot add version %u (ring full?)\n", v);
        goto out;
    }
    if (kek_ring_write_file(r, err, sizeof err, path, false) != 0) {
        fprintf(stderr, PROG " rotate-kek: %s\n", err);
        goto out;
    }
    printf("kek version %u added and made current in %s\n", v, path);
    print_versions(r);
    printf("next: restart coffer-signer, Rewrap every sealed key, then retire-kek the old versions\n");
    rc = 0;
out:
    kek_ring_free(r);
    config_free(cfg);
    return rc;
}

static int cmd_retire(int argc, char **argv)
{
    cli_opts o;
    config *cfg = NULL;
    kek_ring *r = NULL;
    char err[512];
    int rc = parse_opts(&o, argc, argv, help_retire);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (optind + 1 != argc) {
        fputs(help_retire, stderr);
        return 2;
    }
    char *end = NULL;
    unsigned long v = strtoul(argv[optind], &end, 10);
    if (!*argv[optind] || *end || v == 0 || v > UINT32_MAX) {
        fprintf(stderr, PROG " retire-kek: VERSION must be a positive integer\n");
        return 2;
    }
    const char *path = ring_path(&o, &cfg);
    if (!path)
        return 2;
    rc = 1;
    if (kek_ring_load(&r, err, sizeof err, path, true) != 0) {
        fprintf(stderr, PROG " retire-kek: %s\n", err);
        goto out;
    }
    if (!kek_ring_has(r, (uint32_t)v)) {
        fprintf(stderr, PROG " retire-kek: version %lu is not in the ring\n", v);
        goto out;
    }
    if ((uint32_t)v == kek_ring_current(r)) {
        fprintf(stderr, PROG " retire-kek: version %lu is current; rotate-kek first\n", v);
        goto out;
    }
    if (kek_ring_remove(r, (uint32_t)v) != 0 || kek_ring_write_file(r, err, sizeof err, path, false) != 0) {
        fprintf(stderr, PROG " retire-kek: %s\n", err);
        goto out;
    }
    printf("kek version %lu retired from %s (restart coffer-signer to apply)\n", v, path);
    print_versions(r);
    rc = 0;
out:
    kek_ring_free(r);
    config_free(cfg);
    return rc;
}

/* ---- audit-verify, policy-check -------------------------------------------------------- */

static int cmd_audit_verify(int argc, char **argv)
{
    cli_opts o;
    audit_verify_result res;
    char hx[2 * AUDIT_HASH_LEN + 1];
    int rc = parse_opts(&o, argc, argv, help_audit);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (optind + 1 != argc) {
        fputs(help_audit, stderr);
        return 2;
    }
    const char *path = argv[optind];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, PROG " audit-verify: %s: %s\n", path, strerror(errno));
        return 2;
    }
    rc = audit_verify_fd(&res, fd, NULL, 0);
    close(fd);
    if (rc != 0) {
        if (res.bad_line)
            printf("audit-verify: %s: line %llu: %s\n", path, (unsigned long long)res.bad_line, res.why);
        else
            printf("audit-verify: %s: %s\n", path, res.why);
        printf("audit-verify: %llu line(s) before it are intact\n", (unsigned long long)res.lines);
        return 1;
    }
    audit_hash_hex(hx, res.chain.head);
    printf("audit-verify: %s: %llu line(s), chain intact; head seq %llu hash %s\n", path,
           (unsigned long long)res.lines, (unsigned long long)res.chain.seq, hx);
    if (res.torn_bytes)
        printf("audit-verify: warning: %llu byte(s) after the last line are an unterminated "
               "line (a write cut by a crash); serve drops them on start\n",
               (unsigned long long)res.torn_bytes);
    return 0;
}

static int cmd_policy_check(int argc, char **argv)
{
    cli_opts o;
    policy *p = NULL;
    char err[600], hx[65];
    int rc = parse_opts(&o, argc, argv, help_policy);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (optind + 1 != argc) {
        fputs(help_policy, stderr);
        return 2;
    }
    if (secmem_init() != 0)
        return 2;
    if (policy_load_file(&p, err, sizeof err, argv[optind]) != 0) {
        fprintf(stderr, "policy-check: %s\n", err);
        return 1;
    }
    if (o.canonical) {
        size_t len;
        const char *c = policy_canonical(p, &len);
        fwrite(c, 1, len, stdout);
    } else {
        hex_encode(hx, policy_hash(p), POLICY_HASH_LEN);
        printf("policy-check: %s: ok, %zu chain(s); sha256 %s\n", argv[optind],
               policy_chain_count(p), hx);
    }
    policy_free(p);
    return 0;
}

/* ---- status (client) --------------------------------------------------------------------- */

static int cmd_status(int argc, char **argv)
{
    cli_opts o;
    struct sockaddr_un sa;
    uint8_t *buf = NULL;
    int fd = -1, rc = parse_opts(&o, argc, argv, help_status);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.socket || strlen(o.socket) >= sizeof sa.sun_path) {
        fputs(help_status, stderr);
        return 2;
    }
    rc = 1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, o.socket, strlen(o.socket));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, PROG " status: %s: %s\n", o.socket, strerror(errno));
        goto out;
    }
    Coffer__Signer__V1__Request req;
    coffer__signer__v1__request__init(&req);
    Coffer__Signer__V1__StatusRequest st;
    coffer__signer__v1__status_request__init(&st);
    req.version = REQUEST_PROTOCOL_VERSION;
    req.request_id = 1;
    req.trace_id = (char *)(uintptr_t)"coffer-signer-status";
    req.op_case = COFFER__SIGNER__V1__REQUEST__OP_STATUS;
    req.status = &st;
    uint8_t out[128];
    size_t n = coffer__signer__v1__request__pack(&req, out);
    buf = malloc(IPC_FRAME_MAX);
    size_t len = 0;
    ipc_result r;
    if (!buf || (r = ipc_write_frame(fd, out, n, o.timeout_ms)) != IPC_OK ||
        (r = ipc_read_frame(buf, IPC_FRAME_MAX, &len, fd, o.timeout_ms)) != IPC_OK) {
        fprintf(stderr, PROG " status: no answer: %s\n", buf ? ipc_strerror(r) : "out of memory");
        goto out;
    }
    Coffer__Signer__V1__Response *resp = coffer__signer__v1__response__unpack(NULL, len, buf);
    if (!resp || resp->result_case != COFFER__SIGNER__V1__RESPONSE__RESULT_STATUS) {
        fprintf(stderr, PROG " status: unexpected answer\n");
        if (resp)
            coffer__signer__v1__response__free_unpacked(resp, NULL);
        goto out;
    }
    const Coffer__Signer__V1__StatusResult *s = resp->status;
    char ph[65] = "", ah[65] = "";
    if (s->policy_hash.len == 32)
        hex_encode(ph, s->policy_hash.data, 32);
    if (s->audit_head_hash.len == 32)
        hex_encode(ah, s->audit_head_hash.data, 32);
    printf("version: %s\nkek_versions:", s->version);
    for (size_t i = 0; i < s->n_kek_versions; i++)
        printf(" %u", s->kek_versions[i]);
    printf("\ncurrent_kek_version: %u\npolicy_hash: %s\naudit_entries: %llu\naudit_head: %s\n",
           s->current_kek_version, ph, (unsigned long long)s->audit_entries, ah);
    coffer__signer__v1__response__free_unpacked(resp, NULL);
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- config ----------------------------------------------------------------------------- */

static int cmd_config(int argc, char **argv)
{
    cli_opts o;
    int rc = parse_opts(&o, argc, argv, "usage: coffer-signer config [--config FILE]\n");
    if (rc)
        return rc == 1 ? 0 : 2;
    config *cfg = signer_config_load(PROG " config", o.config, environ, NULL);
    if (!cfg) {
        printf("\nkeys:\n");
        if (config_print_help(signer_config_schema(), stdout) != 0)
            return 2;
        return 2;
    }
    rc = config_dump(cfg, stdout) == 0 ? 0 : 2;
    config_free(cfg);
    return rc;
}

/* ---- serve -------------------------------------------------------------------------------- */

static int die(const char *what)
{
    fprintf(stderr, PROG " serve: %s\n", what);
    log_error("signer.start.failed", "detail=\"%s\"", what);
    return 1;
}

/* Binds the listening socket. Its directory must be owned by root (or by
 * sandbox.user) and not writable by group or others: whoever can write it
 * could put a symlink or another socket in its place while root sets the
 * permissions. Every step then works on names inside that directory,
 * without following symlinks: a stale socket (nobody accepting) is
 * replaced, anything else is refused; the socket is created 0600 (umask),
 * then given its group and mode, so it is never more open than
 * configured. */
static int open_socket(const signer_settings *st, char *why, size_t why_len)
{
    struct sockaddr_un sa;
    struct stat sb;
    char dir[SIGNER_SOCKET_PATH_MAX + 2];
    const char *path = st->socket_path, *slash = strrchr(path, '/'), *name;
    int dfd = -1, fd = -1;

    if (!slash) {
        snprintf(dir, sizeof dir, ".");
        name = path;
    } else {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, dl);
        dir[dl] = '\0';
        name = slash + 1;
    }
    if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, why_len, "socket.path %s does not end with a file name", path);
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0 || fstat(dfd, &sb) != 0) {
        snprintf(why, why_len, "socket directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((sb.st_uid != 0 && sb.st_uid != st->run_uid) || (sb.st_mode & 022) != 0) {
        snprintf(why, why_len, "socket directory %s must be owned by root (or %s) and not writable by "
                 "group or others (it is uid %u, mode %04o): whoever can write it can swap the socket",
                 dir, st->user, (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
        goto fail;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            snprintf(why, why_len, "%s exists and is not a socket", path);
            goto fail;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(why, why_len, "another process is serving %s", path);
            goto fail;
        }
        if (unlinkat(dfd, name, 0) != 0) {
            snprintf(why, why_len, "removing the stale socket %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_len, "socket: %s", strerror(errno));
        goto fail;
    }
    mode_t old = umask(0177);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b != 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (st->socket_group_set && fchownat(dfd, name, (uid_t)-1, st->socket_gid, AT_SYMLINK_NOFOLLOW) != 0) {
        snprintf(why, why_len, "%s: setting group: %s", path, strerror(errno));
        goto fail;
    }
    if (fchmodat(dfd, name, st->socket_mode, AT_SYMLINK_NOFOLLOW) != 0) {
        /* Older C libraries refuse AT_SYMLINK_NOFOLLOW here; the directory
         * is ours (checked above), so the name is still the socket we bound. */
        if ((errno != ENOTSUP && errno != EOPNOTSUPP) ||
            fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(sb.st_mode) ||
            fchmodat(dfd, name, st->socket_mode, 0) != 0) {
            snprintf(why, why_len, "%s: setting mode: %s", path, strerror(errno));
            goto fail;
        }
    }
    if (listen(fd, 512) != 0) {
        snprintf(why, why_len, "%s: listen: %s", path, strerror(errno));
        goto fail;
    }
    close(dfd);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return -1;
}

static void hexbuf(char *out, const uint8_t *b, size_t n)
{
    hex_encode(out, b, n);
}

static int cmd_serve(int argc, char **argv)
{
    cli_opts o;
    signer_settings st;
    config *cfg = NULL;
    kek_ring *ring = NULL;
    policy *pol = NULL;
    ledger *led = NULL;
    ledger_info linfo;
    journal *jr = NULL;
    server *srv = NULL;
    audit_verify_result av;
    char err[600];
    int dirfd = -1, audit_fd = -1, listen_fd = -1, sfd = -1;
    bool future = false;

    if (wants_help(argc, argv)) {
        fputs(help_serve, stdout);
        return config_print_help(signer_config_schema(), stdout) == 0 ? 0 : 2;
    }
    int rc = parse_opts(&o, argc, argv, help_serve);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (optind != argc) {
        fputs(help_serve, stderr);
        return 2;
    }
    /* Nothing inherited beyond stdio is ours to keep. */
    close_range(3, ~0u, 0);

    cfg = signer_config_load(PROG " serve", o.config, environ, NULL);
    if (!cfg || signer_settings_resolve(&st, cfg, PROG " serve") != 0)
        return 2;
    log_init(PROG, st.level, 2);
    if (geteuid() != 0)
        return die("serve must start as root: it chroots into state.dir and drops to sandbox.user");

    /* 1. No core dumps and not dumpable before any secret is in memory. */
    if (sandbox_no_dumps() != 0)
        return die("cannot disable core dumps");
    if (secmem_init() != 0)
        return die("libsodium unusable");

    /* 2. Read the KEK ring and the policy. */
    if (kek_ring_load(&ring, err, sizeof err, st.kek_ring, true) != 0)
        return die(err);
    if (policy_load_file(&pol, err, sizeof err, st.policy_file) != 0)
        return die(err);

    /* 3. State directory, ledger, audit log. */
    dirfd = open(st.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dirfd < 0) {
        snprintf(err, sizeof err, "state.dir %s: %s", st.state_dir, strerror(errno));
        return die(err);
    }
    struct stat sb;
    if (fstat(dirfd, &sb) != 0 || (sb.st_uid != 0 && sb.st_uid != st.run_uid) || (sb.st_mode & 022)) {
        snprintf(err, sizeof err, "state.dir %s must be owned by root or %s and not group/other-writable",
                 st.state_dir, st.user);
        return die(err);
    }
    int64_t now = dispatch_now_ms();
    if (ledger_open(&led, &linfo, err, sizeof err, dirfd, LEDGER_FILE, now) != 0)
        return die(err);
    audit_fd = openat(dirfd, st.audit_file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (audit_fd < 0) {
        snprintf(err, sizeof err, "audit log %s: %s", st.audit_file, strerror(errno));
        return die(err);
    }
    if (audit_verify_fd(&av, audit_fd, NULL, linfo.has_mark ? linfo.mark_seq : 0) != 0) {
        snprintf(err, sizeof err, "audit log %s is damaged at line %llu: %s; refusing to start "
                 "(docs/signer.md: recover after a crash)", st.audit_file,
                 (unsigned long long)av.bad_line, av.why);
        return die(err);
    }
    if (av.torn_bytes) {
        /* An unterminated last line: a write cut by a crash, never answered. */
        if (ftruncate(audit_fd, (off_t)av.valid_bytes) != 0 || fsync(audit_fd) != 0)
            return die("cannot drop the torn tail of the audit log");
        log_warn("signer.audit.torn_tail", "bytes=%llu", (unsigned long long)av.torn_bytes);
    }
    /* The ledger is the nonce and velocity memory: a log that shows
     * activity beside a ledger that is missing, or never recorded the log's
     * head, means that memory was lost (deleted, or an old state dir
     * restored): starting would reopen every signed nonce. */
    bool ledger_lost = av.lines > 1 && (!linfo.existed || !linfo.has_mark);
    if (ledger_lost && !o.accept_ledger_loss) {
        snprintf(err, sizeof err, "the audit log has %llu lines (head seq %llu) but the ledger %s: its "
                 "nonce and velocity memory is lost, and starting would allow a second signature for "
                 "nonces already signed; refusing to start (docs/signer.md, Operations: ledger lost; "
                 "serve --accept-ledger-loss)", (unsigned long long)av.lines,
                 (unsigned long long)av.chain.seq,
                 linfo.existed ? "has no record of the log's head" : "is missing");
        return die(err);
    }
    if (!ledger_lost && o.accept_ledger_loss)
        log_info("signer.ledger_loss.not_needed", "detail=\"--accept-ledger-loss ignored: the ledger is intact\"");
    if (linfo.has_mark) {
        if (av.chain.seq < linfo.mark_seq) {
            snprintf(err, sizeof err, "audit log ends at seq %llu but the ledger saw seq %llu durable: "
                     "lines were removed from its end; refusing to start",
                     (unsigned long long)av.chain.seq, (unsigned long long)linfo.mark_seq);
            return die(err);
        }
        if (linfo.mark_seq > 0 && (!av.probe_found || sodium_memcmp(av.probe_hash, linfo.mark_hash, 32) != 0)) {
            snprintf(err, sizeof err, "audit line %llu is not the one the ledger recorded; refusing to start",
                     (unsigned long long)linfo.mark_seq);
            return die(err);
        }
    }

    /* 4. The socket. */
    listen_fd = open_socket(&st, err, sizeof err);
    if (listen_fd < 0)
        return die(err);

    /* The journal continues the chain; the start line says what runs. */
    if (journal_new(&jr, audit_fd, ledger_fd(led), &av.chain, policy_hash(pol)) != 0)
        return die("out of memory");
    {
        char extra[600], vers[300] = "", ph[65];
        size_t vl = 0;
        for (size_t i = 0; i < kek_ring_count(ring); i++)
            vl += (size_t)snprintf(vers + vl, sizeof vers - vl, "%s%u", i ? "," : "",
                                   kek_ring_version_at(ring, i));
        hexbuf(ph, policy_hash(pol), 32);
        if (ledger_lost) {
            /* The operator's explicit acceptance is itself on the record. */
            char lx[200];
            audit_entry le;
            memset(&le, 0, sizeof le);
            le.event = "ledger_loss_accepted";
            le.decision = "allow";
            le.rule = "ledger.lost";
            le.detail = linfo.existed ? "serve --accept-ledger-loss: the ledger had no record of the audit head"
                                      : "serve --accept-ledger-loss: the ledger was missing";
            snprintf(lx, sizeof lx, "\"audit_lines\":\"%llu\",\"ledger_existed\":%s",
                     (unsigned long long)av.lines, linfo.existed ? "true" : "false");
            le.extra = lx;
            log_warn("signer.ledger_loss.accepted", "audit_lines=%llu ledger_existed=%d",
                     (unsigned long long)av.lines, linfo.existed);
            if (journal_append(jr, &le, NULL, 0, dispatch_now_ms()) == 0)
                return die("cannot write the ledger_loss_accepted line to the audit log");
        }
        snprintf(extra, sizeof extra,
                 "\"version\":\"%s\",\"kek_versions\":[%s],\"kek_current\":%u,\"threads\":%u,"
                 "\"ledger_records\":\"%llu\",\"ledger_torn_bytes\":\"%llu\",\"audit_torn_bytes\":\"%llu\","
                 "\"sanitizer_build\":%s",
                 VERSION_TEXT, vers, kek_ring_current(ring), st.threads,
                 (unsigned long long)linfo.records, (unsigned long long)linfo.torn_bytes,
                 (unsigned long long)av.torn_bytes, sandbox_sanitizer_build() ? "true" : "false");
        audit_entry e;
        memset(&e, 0, sizeof e);
        e.event = "start";
        e.extra = extra;
        if (journal_append(jr, &e, NULL, 0, dispatch_now_ms()) == 0 || journal_flush_now(jr) != 0)
            return die("cannot write the start line to the audit log");
    }

    /* Signals arrive through a signalfd; every thread inherits the mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGQUIT);
    sigaddset(&mask, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
        return die("cannot block signals");
    sigdelset(&mask, SIGPIPE);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0)
        return die("signalfd failed");

    /* Threads now (their stacks then get locked), serving only after go. */
    static signer_shared shared;
    shared.pol = pol;
    shared.led = led;
    shared.jr = jr;
    shared.version = VERSION_TEXT;
    server_config sc = {
        .listen_fd = listen_fd,
        .peer_uids = st.peer_uids,
        .n_peer_uids = st.n_peer_uids,
        .threads = st.threads,
        .max_connections = st.max_connections,
        .max_pipeline = st.max_pipeline,
        .conn_queue_bytes = st.conn_queue_bytes,
        .queue_bytes = st.queue_bytes,
        .idle_timeout_ms = st.idle_timeout_ms,
        .frame_timeout_ms = st.frame_timeout_ms,
        .shared = &shared,
        .ring = ring,
    };
    /* The capability bounding and ambient sets are per thread and
     * inherited: empty them before the first thread exists. */
    if (sandbox_drop_bounding(err, sizeof err) != 0)
        return die(err);
    if (journal_start(jr) != 0)
        return die("cannot start the journal thread");
    if (server_new(&srv, &sc) != 0)
        return die("cannot start the event loops");
    kek_ring_free(ring); /* each loop holds its own copy */
    ring = NULL;

    /* 5. Memory locking, then the sandbox. */
    if (sandbox_lock_memory(st.mlock, &future, err, sizeof err) != 0)
        return die(err);
    if (!future)
        log_warn("signer.mlock.current_only",
                 "detail=\"RLIMIT_MEMLOCK cannot be raised (no CAP_SYS_RESOURCE): present memory, "
                 "thread stacks and key regions are locked; later heap growth is not\"");
    if (sandbox_enter(dirfd, st.run_uid, st.run_gid, err, sizeof err) != 0)
        return die(err);
    close(dirfd);
    dirfd = -1;
    if (sandbox_seccomp(err, sizeof err) != 0)
        return die(err);

    log_info("signer.ready", "socket=%s threads=%u uid=%u mlock=%s peers=%zu sanitizer_build=%d",
             st.socket_path, st.threads, (unsigned)st.run_uid, future ? "future" : "current",
             st.n_peer_uids, sandbox_sanitizer_build());
    server_go(srv);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof si);
        if (n != (ssize_t)sizeof si)
            continue;
        if (si.ssi_signo == SIGHUP) {
            log_info("signer.sighup", "detail=\"nothing to reload: restart to load a new ring or policy\"");
            continue;
        }
        log_info("signer.stopping", "signal=%u", si.ssi_signo);
        break;
    }
    server_stop(srv);
    server_free(srv);
    {
        audit_entry e;
        memset(&e, 0, sizeof e);
        e.event = "stop";
        uint64_t t = journal_append(jr, &e, NULL, 0, dispatch_now_ms());
        (void)t;
    }
    journal_stop(jr);
    if (journal_flush_now(jr) != 0)
        return die("final audit flush failed");
    log_info("signer.stopped", "detail=clean");
    /* Everything is durable; skip exit-time work (and sanitizer leak
     * checks, which cannot run in the sandbox). */
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc, argv);
    if (strcmp(cmd, "rotate-kek") == 0)
        return cmd_rotate(argc, argv);
    if (strcmp(cmd, "retire-kek") == 0)
        return cmd_retire(argc, argv);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc, argv);
    if (strcmp(cmd, "audit-verify") == 0)
        return cmd_audit_verify(argc, argv);
    if (strcmp(cmd, "policy-check") == 0)
        return cmd_policy_check(argc, argv);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc, argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("coffer-signer %s\n", VERSION_TEXT);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, PROG ": unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
