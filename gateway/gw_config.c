#include "gw_config.h"

static const char *const gw_log_levels[] = {"debug", "info", "warn", "error", NULL};

static const config_option gw_options[] = {
    {"http.listen", CONFIG_STRING, 0, "127.0.0.1:8080", 0, 0, NULL,
     "host:port to serve HTTP on (IPv4, localhost or [IPv6]; port 0: any free port)"},
    {"http.max_body_bytes", CONFIG_INT, 0, "1048576", 1024, 67108864, NULL,
     "largest request body accepted (larger: 413)"},
    {"http.max_connections", CONFIG_INT, 0, "1024", 1, 100000, NULL,
     "open HTTP/1.1 connections at most (all on one event loop); more are refused"},
    {"http.max_connections_per_ip", CONFIG_INT, 0, "256", 0, 100000, NULL,
     "open connections from one client address at most (0: no limit)"},
    {"http.idle_timeout", CONFIG_DURATION, 0, "60s", 0, 3600000, NULL,
     "close a connection idle (or stalled mid-request) this long (0: never)"},
    {"http.access_log", CONFIG_BOOL, 0, "true", 0, 0, NULL, "one log line per request"},
    {"http2.listen", CONFIG_STRING, 0, NULL, 0, 0, NULL,
     "host:port to serve HTTP/2 on as well: TLS with ALPN h2 when tls.cert is set, else cleartext h2c (prior "
     "knowledge); unset: HTTP/1.1 only"},
    {"http2.max_connections", CONFIG_INT, 0, "1024", 1, 100000, NULL,
     "open HTTP/2 connections at most; more are closed at once"},
    {"http2.max_streams", CONFIG_INT, 0, "128", 1, 65536, NULL,
     "requests in flight per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)"},
    {"upstream.targets", CONFIG_LIST, 0, "127.0.0.1:50051", 0, 0, NULL,
     "coffer-api addresses (host:port or unix:/path), comma-separated; calls fail over between them"},
    {"upstream.health_interval", CONFIG_DURATION, 0, "1s", 100, 60000, NULL,
     "how often each target's grpc.health.v1 Check is asked"},
    {"upstream.health_timeout", CONFIG_DURATION, 0, "1s", 100, 30000, NULL,
     "how long one health check may take"},
    {"upstream.default_timeout", CONFIG_DURATION, 0, "10s", 1, 3600000, NULL,
     "deadline of a call whose request has no Grpc-Timeout header"},
    {"upstream.max_timeout", CONFIG_DURATION, 0, "60s", 1, 3600000, NULL,
     "Grpc-Timeout values above this are lowered to it"},
    {"upstream.max_message_bytes", CONFIG_INT, 0, "4194304", 1024, 67108864, NULL,
     "largest gRPC response accepted from coffer-api"},
    {"tls.cert", CONFIG_PATH, 0, NULL, 0, 0, NULL,
     "PEM certificate chain for the HTTP and HTTP/2 listeners (with tls.key; unset: plaintext)"},
    {"tls.key", CONFIG_PATH, 0, NULL, 0, 0, NULL, "PEM private key for tls.cert"},
    {"log.level", CONFIG_ENUM, 0, "info", 0, 0, gw_log_levels, "lowest level logged"},
};

static const config_schema gw_schema = {gw_options, sizeof gw_options / sizeof gw_options[0]};

const config_schema *gw_config_schema(void)
{
    return &gw_schema;
}

config *gw_config_load(const char *prog, const char *path, char *const *envp, char *const *extra_env)
{
    return config_load_for_program(prog, &gw_schema, path, envp, extra_env);
}

log_level gw_config_log_level(const config *cfg)
{
    size_t i = LOG_INFO;
    if (config_get_enum(cfg, &i, "log.level") != 0)
        return LOG_INFO;
    return (log_level)i;
}
