/* coffer-gateway: HTTP/JSON in front of coffer-api's gRPC API. Subcommands:
 *   coffer-gateway serve [--config FILE] [--listen ADDR] [--upstream LIST] [--log-level L]
 *   coffer-gateway config [--config FILE]   (effective settings and the keys)
 *   coffer-gateway version */
#include "coffer_version.h"
#include "gw_config.h"
#include "gw_h2.h"
#include "gw_http.h"
#include "gw_metrics.h"
#include "gw_registry.h"
#include "gw_routes.h"
#include "gw_types.h"
#include "gw_upstream.h"
#include "log.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char gw_openapi_json[];
extern const size_t gw_openapi_json_len;
extern char **environ;

static void gw_usage(FILE *out)
{
    fprintf(out,
            "usage: coffer-gateway <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve      serve HTTP/JSON until SIGTERM, calling coffer-api over gRPC\n"
            "  config     print the effective configuration and its keys\n"
            "  routes     print the routes read from the google.api.http annotations\n"
            "  version    print version and commit\n"
            "\n"
            "options:\n"
            "  --config FILE    key = value settings file; COFFER_<KEY> variables override it\n"
            "                   (http.listen -> COFFER_HTTP_LISTEN); `coffer-gateway config` lists the keys\n"
            "  --listen ADDR    same as http.listen\n"
            "  --upstream LIST  same as upstream.targets (comma-separated coffer-api addresses)\n"
            "  --log-level L    same as log.level: debug|info|warn|error\n");
}

typedef struct {
    const char *config_path;
    char env[3][4200];
    char *extra_env[4];
} gw_args;

static int gw_parse_args(gw_args *a, const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"listen", required_argument, NULL, 'L'},
        {"upstream", required_argument, NULL, 'u'}, {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    static const char *const names[] = {"COFFER_HTTP_LISTEN", "COFFER_UPSTREAM_TARGETS", "COFFER_LOG_LEVEL"};
    size_t n = 0;
    int c;
    memset(a, 0, sizeof *a);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:L:u:l:h", opts, NULL)) != -1) {
        int which = -1;
        switch (c) {
        case 'c': a->config_path = optarg; break;
        case 'L': which = 0; break;
        case 'u': which = 1; break;
        case 'l': which = 2; break;
        case 'h': gw_usage(stdout); return 1;
        default: gw_usage(stderr); return 2;
        }
        if (which >= 0) {
            if (strlen(optarg) > 4000) {
                fprintf(stderr, "coffer-gateway %s: option value too long\n", cmd);
                return 2;
            }
            snprintf(a->env[which], sizeof a->env[which], "%s=%s", names[which], optarg);
            a->extra_env[n++] = a->env[which];
        }
    }
    if (optind != argc) {
        fprintf(stderr, "coffer-gateway %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return 0;
}

static char *gw_read_file(const char *path, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "coffer-gateway: cannot open %s %s\n", what, path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *n = realloc(buf, cap);
            if (!n) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static const ProtobufCServiceDescriptor *gw_lookup(const char *name)
{
    return gw_types_service(name);
}

static int gw_serve(const config *cfg)
{
    char err[512];
    int rc = 1;
    gw_types *types = NULL;
    gw_routes *routes = NULL;
    gw_metrics *metrics = NULL;
    gw_upstreams *ups = NULL;
    gw_http *http = NULL;
    gw_pipe *pipe = NULL;
    gw_h2 *h2 = NULL;
    char *cert = NULL, *key = NULL;

    /* Every thread (gRPC's, libmicrohttpd's, ours) inherits this mask;
     * the main thread waits for the signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* a daemon's customary reload signal must not kill it */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *listen = "127.0.0.1:8080", *cert_path = NULL, *key_path = NULL;
    int64_t max_body = 0, max_conn = 0, per_ip = 0, idle = 0, interval = 0, htimeout = 0, dtimeout = 0, mtimeout = 0,
            max_msg = 0;
    bool access_log = true;
    const char *const *targets = NULL;
    size_t n_targets = 0;
    if (config_get_string(cfg, &listen, "http.listen") != 0 ||
        config_get_int(cfg, &max_body, "http.max_body_bytes") != 0 ||
        config_get_int(cfg, &max_conn, "http.max_connections") != 0 ||
        config_get_int(cfg, &per_ip, "http.max_connections_per_ip") != 0 ||
        config_get_duration_ms(cfg, &idle, "http.idle_timeout") != 0 ||
        config_get_bool(cfg, &access_log, "http.access_log") != 0 ||
        config_get_list(cfg, &targets, &n_targets, "upstream.targets") != 0 ||
        config_get_duration_ms(cfg, &interval, "upstream.health_interval") != 0 ||
        config_get_duration_ms(cfg, &htimeout, "upstream.health_timeout") != 0 ||
        config_get_duration_ms(cfg, &dtimeout, "upstream.default_timeout") != 0 ||
        config_get_duration_ms(cfg, &mtimeout, "upstream.max_timeout") != 0 ||
        config_get_int(cfg, &max_msg, "upstream.max_message_bytes") != 0) {
        fprintf(stderr, "coffer-gateway: configuration incomplete\n");
        return 2;
    }
    const char *h2_listen = NULL;
    int64_t h2_max_conn = 0, h2_streams = 0;
    if (config_get_string(cfg, &h2_listen, "http2.listen") != 0)
        h2_listen = NULL;
    if (config_get_int(cfg, &h2_max_conn, "http2.max_connections") != 0 ||
        config_get_int(cfg, &h2_streams, "http2.max_streams") != 0) {
        fprintf(stderr, "coffer-gateway: configuration incomplete\n");
        return 2;
    }
    bool has_cert = config_get_string(cfg, &cert_path, "tls.cert") == 0;
    bool has_key = config_get_string(cfg, &key_path, "tls.key") == 0;
    if (has_cert != has_key) {
        fprintf(stderr, "coffer-gateway: tls.cert and tls.key go together\n");
        return 2;
    }
    if (has_cert) {
        cert = gw_read_file(cert_path, "tls.cert");
        key = gw_read_file(key_path, "tls.key");
        if (!cert || !key)
            goto out;
    }
    types = gw_types_new();
    if (!types) {
        fprintf(stderr, "coffer-gateway: out of memory\n");
        goto out;
    }
    routes = gw_routes_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len, gw_lookup);
    if (!routes) {
        fprintf(stderr, "coffer-gateway: routes: %s\n", err);
        goto out;
    }
    metrics = gw_metrics_new(routes);
    if (!metrics)
        goto out;
    gw_upstream_config uc = {targets, n_targets, interval, htimeout, (size_t)max_msg};
    ups = gw_upstreams_new(err, sizeof err, &uc);
    if (!ups) {
        fprintf(stderr, "coffer-gateway: %s\n", err);
        goto out;
    }
    if (gw_upstreams_start(ups) != 0) {
        fprintf(stderr, "coffer-gateway: cannot start the health thread\n");
        goto out;
    }
    gw_pipe_options po = {
        (size_t)max_body, dtimeout, mtimeout, access_log, routes, ups, metrics, types,
        (const char *)gw_openapi_json, gw_openapi_json_len,
    };
    pipe = gw_pipe_new(err, sizeof err, &po);
    if (!pipe) {
        fprintf(stderr, "coffer-gateway: %s\n", err);
        goto out;
    }
    gw_http_options ho = {
        listen, cert, key, (unsigned)max_conn, (unsigned)per_ip, (unsigned)((idle + 999) / 1000), pipe,
    };
    http = gw_http_start(err, sizeof err, &ho);
    if (!http) {
        fprintf(stderr, "coffer-gateway: %s\n", err);
        goto out;
    }
    if (h2_listen) {
        /* Same certificate and key as http.listen: TLS on one port, TLS on both. */
        gw_h2_options o2 = {h2_listen, (unsigned)h2_max_conn, (unsigned)h2_streams, (unsigned)((idle + 999) / 1000),
                            pipe, cert, key};
        h2 = gw_h2_start(err, sizeof err, &o2);
        if (!h2) {
            fprintf(stderr, "coffer-gateway: %s\n", err);
            goto out;
        }
    }
    char h2port[32] = "";
    if (h2)
        snprintf(h2port, sizeof h2port, " http2_port=%d", gw_h2_port(h2));
    log_info("serve.listening", "port=%d%s tls=%s routes=%zu upstreams=%zu healthy=%zu", gw_http_port(http), h2port,
             has_cert ? "on" : "off", gw_routes_count(routes), gw_upstreams_count(ups),
             gw_upstreams_healthy_count(ups));
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        log_info("serve.sighup", "detail=\"ignored: there is no reload; restart to apply new configuration or "
                 "certificates\"");
    log_info("serve.stopping", "signal=%d", sig);
    rc = 0;
out:
    gw_http_stop(http); /* waits for every call, on both fronts */
    gw_h2_stop(h2);
    gw_pipe_free(pipe);
    gw_upstreams_free(ups);
    gw_metrics_free(metrics);
    gw_routes_free(routes);
    gw_types_free(types);
    free(cert);
    if (key)
        explicit_bzero(key, strlen(key)); /* the TLS private key */
    free(key);
    if (rc == 0)
        log_info("serve.stopped", NULL);
    return rc;
}

static int gw_cmd(const char *cmd, int argc, char **argv)
{
    gw_args a;
    int rc = gw_parse_args(&a, cmd, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    char prog[64];
    snprintf(prog, sizeof prog, "coffer-gateway %s", cmd);
    config *cfg = gw_config_load(prog, a.config_path, environ, a.extra_env);
    if (strcmp(cmd, "config") == 0) {
        if (!cfg) {
            printf("\nkeys:\n");
            if (config_print_help(gw_config_schema(), stdout) != 0)
                fprintf(stderr, "coffer-gateway config: cannot write the key list\n");
            return 2;
        }
        rc = config_dump(cfg, stdout) == 0 ? 0 : 2;
        config_free(cfg);
        return rc;
    }
    if (!cfg)
        return 2;
    log_init("coffer-gateway", gw_config_log_level(cfg), 2);
    if (strcmp(cmd, "routes") == 0) {
        char err[512];
        gw_routes *r = gw_routes_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len,
                                     gw_lookup);
        if (!r) {
            fprintf(stderr, "coffer-gateway: routes: %s\n", err);
            config_free(cfg);
            return 1;
        }
        for (size_t i = 0; i < gw_routes_count(r); i++) {
            const gw_route *rt = gw_routes_get(r, i);
            printf("%-7s %-45s %s%s%s\n", rt->http_method, rt->pattern, rt->grpc_path,
                   rt->body ? " body=" : "", rt->body ? rt->body : "");
        }
        gw_routes_free(r);
        config_free(cfg);
        return 0;
    }
    rc = gw_serve(cfg);
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        gw_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("coffer-gateway %s (%s)\n", COFFER_VERSION, COFFER_COMMIT);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "config") == 0 || strcmp(argv[1], "routes") == 0)
        return gw_cmd(argv[1], argc - 1, argv + 1);
    fprintf(stderr, "coffer-gateway: unknown command \"%s\"\n\n", argv[1]);
    gw_usage(stderr);
    return 2;
}
