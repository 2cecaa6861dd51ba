/* coffer-api: the gRPC server over PostgreSQL. Subcommands:
 *   coffer-api serve [--config FILE] [--db-url URL] [--log-level L]
 *   coffer-api status [--target ADDR] [--timeout-ms N] [--tls-ca FILE] [--tls-name NAME]
 *   coffer-api migrate [--config FILE] [--db-url URL] [--status]
 *   coffer-api config [--config FILE]      (effective settings, secrets redacted)
 *   coffer-api signer-policy [--config FILE] [--chain ID] [--check FILE] */
#include "api_config.h"
#include "coffer_version.h"
#include "log.h"
#include "migrate.h"
#include "serve.h"
#include "signer_policy.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void api_usage(FILE *out)
{
    fprintf(out,
            "usage: coffer-api <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve      serve the gRPC API until SIGTERM (then drain and exit 0)\n"
            "  status     ask a running server for its health and info (exit 0: SERVING)\n"
            "  migrate    apply pending database migrations (each in its own transaction)\n"
            "  config     print the effective configuration (secrets redacted) and its keys\n"
            "  signer-policy  print coffer-signer's policy as the supported protocols imply it\n"
            "             (--chain ID; --check FILE compares a deployed one: exit 1 on differences)\n"
            "  version    print version and commit\n"
            "\n"
            "options:\n"
            "  --config FILE  key = value settings file; COFFER_<KEY> variables override it\n"
            "                 (db.url -> COFFER_DB_URL); `coffer-api config` lists the keys\n"
            "  --db-url URL   same as db.url (PostgreSQL URL or key=value string)\n"
            "  --log-level L  same as log.level: debug|info|warn|error\n"
            "  --status       (migrate) list applied and pending migrations; change nothing\n"
            "                 (exit 0: up to date, 1: pending, 2: database disagrees)\n"
            "\n"
            "status options:\n"
            "  --target ADDR  host:port or unix:/path (default: COFFER_GRPC, else grpc.listen)\n"
            "  --timeout-ms N give up after N ms (default 2000; exit 2 when unreachable)\n"
            "  --tls-ca FILE  the server uses TLS: verify it with these PEM roots\n"
            "  --tls-name N   name expected in the server's certificate\n");
}

extern char **environ;

typedef struct {
    const char *config_path;
    char db_url_env[4200];
    char log_level_env[64];
    char *extra_env[3];
    int status_only;
} api_args;

/* Parses the options shared by the subcommands. Returns 0, 1 for --help
 * (printed), or 2 on a usage error (printed). */
static int api_parse_args(api_args *a, const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"db-url", required_argument, NULL, 'd'},
        {"status", no_argument, NULL, 's'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    size_t n_extra = 0;
    int c;
    memset(a, 0, sizeof *a);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:sl:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config_path = optarg; break;
        case 'd':
            if (strlen(optarg) >= sizeof a->db_url_env - 16) {
                fprintf(stderr, "coffer-api %s: --db-url is too long\n", cmd);
                return 2;
            }
            snprintf(a->db_url_env, sizeof a->db_url_env, "COFFER_DB_URL=%s", optarg);
            a->extra_env[n_extra++] = a->db_url_env;
            break;
        case 's': a->status_only = 1; break;
        case 'l':
            snprintf(a->log_level_env, sizeof a->log_level_env, "COFFER_LOG_LEVEL=%.40s", optarg);
            a->extra_env[n_extra++] = a->log_level_env;
            break;
        case 'h': api_usage(stdout); return 1;
        default: api_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "coffer-api %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return 0;
}

static int api_cmd_config(int argc, char **argv)
{
    api_args a;
    int rc = api_parse_args(&a, "config", argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    config *cfg = api_config_load("coffer-api config", a.config_path, environ, a.extra_env);
    if (!cfg) {
        printf("\nkeys:\n");
        if (config_print_help(api_config_schema(), stdout) != 0)
            return 2;
        return 2;
    }
    rc = config_dump(cfg, stdout) == 0 ? 0 : 2;
    config_free(cfg);
    return rc;
}

static int api_cmd_migrate(int argc, char **argv)
{
    api_args a;
    int rc = api_parse_args(&a, "migrate", argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    config *cfg = api_config_load("coffer-api migrate", a.config_path, environ, a.extra_env);
    if (!cfg)
        return 2;
    log_init("coffer-api", api_config_log_level(cfg), 2);
    const char *url = NULL;
    if (config_get_string(cfg, &url, "db.url") != 0 || !url) {
        fprintf(stderr, "coffer-api migrate: db.url is not set\n");
        config_free(cfg);
        return 2;
    }
    int status_only = a.status_only;

    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *e = PQerrorMessage(conn);
        fprintf(stderr, "coffer-api migrate: cannot connect to the database: %.*s\n",
                (int)strcspn(e, "\n"), e);
        PQfinish(conn);
        config_free(cfg);
        return 2;
    }
    size_t n;
    const migration *set = migrations_embedded(&n);
    migrate_report rep;
    if (status_only) {
        int st = migrate_status(&rep, stdout, conn, set, n);
        if (st < 0)
            fprintf(stderr, "coffer-api migrate: %s\n", rep.error);
        rc = st < 0 ? 2 : st;
    } else if (migrate_run(&rep, conn, set, n) != 0) {
        fprintf(stderr, "coffer-api migrate: %s\n", rep.error);
        log_error("migrate.failed", "version=%u", rep.version_after);
        rc = 1;
    } else {
        printf("coffer-api migrate: schema at version %u (%u applied now, %zu known)\n",
               rep.version_after, rep.applied, n);
        rc = 0;
    }
    PQfinish(conn);
    config_free(cfg);
    return rc;
}

static int api_cmd_serve(int argc, char **argv)
{
    api_args a;
    int rc = api_parse_args(&a, "serve", argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    config *cfg = api_config_load("coffer-api serve", a.config_path, environ, a.extra_env);
    if (!cfg)
        return 2;
    log_init("coffer-api", api_config_log_level(cfg), 2);
    rc = serve_run(cfg);
    config_free(cfg);
    return rc;
}

static int api_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"tls-ca", required_argument, NULL, 'a'},
        {"tls-name", required_argument, NULL, 'n'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *target = getenv("COFFER_GRPC"), *ca_path = NULL, *name = NULL, *config_path = NULL;
    long timeout = 2000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:T:a:n:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': target = optarg; break;
        case 'T': {
            char *end;
            timeout = strtol(optarg, &end, 10);
            if (*end || timeout <= 0 || timeout > 600000) {
                fprintf(stderr, "coffer-api status: --timeout-ms takes 1..600000\n");
                return 2;
            }
            break;
        }
        case 'a': ca_path = optarg; break;
        case 'n': name = optarg; break;
        case 'c': config_path = optarg; break;
        case 'h': api_usage(stdout); return 0;
        default: api_usage(stderr); return 2;
        }
    }
    config *cfg = NULL;
    if (!target || !*target) {
        cfg = api_config_load("coffer-api status", config_path, environ, NULL);
        if (!cfg || config_get_string(cfg, &target, "grpc.listen") != 0 || !*target) {
            fprintf(stderr, "coffer-api status: no --target, COFFER_GRPC or grpc.listen\n");
            config_free(cfg);
            return 2;
        }
    }
    log_init("coffer-api", LOG_ERROR, 2);
    char *ca = ca_path ? serve_read_pem(ca_path, "--tls-ca") : NULL;
    int rc = ca_path && !ca ? 2 : serve_status(target, timeout, ca, name);
    free(ca);
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "coffer-api: libsodium failed to initialise\n");
        return 1;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        api_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("coffer-api %s (%s)\n", COFFER_VERSION, COFFER_COMMIT);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return api_cmd_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0)
        return api_cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return api_cmd_migrate(argc - 1, argv + 1);
    if (strcmp(argv[1], "config") == 0)
        return api_cmd_config(argc - 1, argv + 1);
    if (strcmp(argv[1], "signer-policy") == 0)
        return signer_policy_main(argc - 1, argv + 1, environ);
    fprintf(stderr, "coffer-api: unknown command \"%s\"\n\n", argv[1]);
    api_usage(stderr);
    return 2;
}
