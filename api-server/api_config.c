#include "api_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const api_log_levels[] = {"debug", "info", "warn", "error", NULL};

static const config_option api_options[] = {
    {"db.url", CONFIG_STRING, CONFIG_REQUIRED | CONFIG_SECRET, NULL, 0, 0, NULL,
     "PostgreSQL URL or key=value string (may hold a password)"},
    {"db.pool_size", CONFIG_INT, 0, "16", 1, 1000, NULL,
     "most connections coffer-api opens to PostgreSQL"},
    {"db.connect_timeout", CONFIG_DURATION, 0, "5s", 2000, 60000, NULL,
     "how long one connection attempt may take"},
    {"db.statement_timeout", CONFIG_DURATION, 0, "30s", 0, 3600000, NULL,
     "server-side limit for one statement (0: none)"},
    {"db.idle_check", CONFIG_DURATION, 0, "5s", 0, 3600000, NULL,
     "ping a pooled connection idle for longer than this before lending it"},
    {"db.application_name", CONFIG_STRING, 0, "coffer-api", 0, 0, NULL,
     "application_name of coffer-api's connections (tell replicas apart in pg_stat_activity)"},
    {"log.level", CONFIG_ENUM, 0, "info", 0, 0, api_log_levels, "lowest level logged"},
    /* gRPC serving (coffer-api serve) */
    {"grpc.listen", CONFIG_STRING, 0, "127.0.0.1:50051", 0, 0, NULL,
     "TCP host:port to serve gRPC on (port 0: any free port; empty: no TCP)"},
    {"grpc.unix_socket", CONFIG_PATH, 0, NULL, 0, 0, NULL,
     "also serve gRPC (plaintext) on this Unix socket path"},
    {"grpc.max_message_bytes", CONFIG_INT, 0, "4194304", 1024, 67108864, NULL,
     "largest gRPC message accepted or sent (larger: RESOURCE_EXHAUSTED)"},
    {"grpc.workers", CONFIG_INT, 0, "16", 1, 1024, NULL,
     "handler threads (handlers block on PostgreSQL; match db.pool_size)"},
    {"grpc.max_queued_calls", CONFIG_INT, 0, "10000", 1, 1000000, NULL,
     "calls waiting for a handler thread before new ones get RESOURCE_EXHAUSTED"},
    {"grpc.shutdown_grace", CONFIG_DURATION, 0, "10s", 0, 3600000, NULL,
     "on SIGTERM, how long calls in flight may take before they are cancelled"},
    {"grpc.keepalive_time", CONFIG_DURATION, 0, "60s", 1000, 86400000, NULL,
     "ping a connection that has been idle this long"},
    {"grpc.keepalive_timeout", CONFIG_DURATION, 0, "20s", 1000, 3600000, NULL,
     "close a connection whose ping is not answered within this"},
    {"grpc.keepalive_min_ping_interval", CONFIG_DURATION, 0, "10s", 1000, 3600000, NULL,
     "clients pinging more often than this are sent GOAWAY (too_many_pings)"},
    {"grpc.keepalive_permit_without_calls", CONFIG_BOOL, 0, "true", 0, 0, NULL,
     "allow client keepalive pings on connections without calls"},
    {"tls.cert", CONFIG_PATH, 0, NULL, 0, 0, NULL,
     "PEM certificate chain for the TCP listener (with tls.key; unset: plaintext)"},
    {"tls.key", CONFIG_PATH, 0, NULL, 0, 0, NULL, "PEM private key for tls.cert"},
    {"auth.admin_token", CONFIG_STRING, CONFIG_SECRET, NULL, 0, 0, NULL,
     "operators' bearer token, >= 32 printable characters (unset: admin methods refused)"},
    {"auth.api_key_secret", CONFIG_STRING, CONFIG_SECRET, NULL, 0, 0, NULL,
     "server key for API key hashes, >= 32 printable characters (required to serve; changing it invalidates every API key)"},
    {"auth.api_key_grace", CONFIG_DURATION, 0, "24h", 0, 2592000000, NULL,
     "how long the previous API key keeps working after RotateApiKey (unless the request says)"},
    {"auth.api_key_cache", CONFIG_DURATION, 0, "5s", 0, 60000, NULL,
     "how long a resolved API key is remembered in memory (0: ask the database every call)"},
    {"secrets.key", CONFIG_STRING, CONFIG_SECRET, NULL, 0, 0, NULL,
     "64 hex characters: the key sealing secrets at rest (webhook secrets; required to serve)"},
    {"ledger.idempotency_ttl", CONFIG_DURATION, 0, "24h", 1000, 2592000000, NULL,
     "how long the first answer to an idempotency-key is kept and replayed"},
    {"ledger.profit_unlock_seconds", CONFIG_INT, 0, "0", 0, 31536000, NULL,
     "default for new vaults: accrued yield is released linearly over this many seconds"},
    {"ledger.deposit_expiry", CONFIG_DURATION, 0, "24h", 60000, 2592000000, NULL,
     "how long a crypto deposit order waits for its transfer (expires_at)"},
    {"ledger.withdrawal_eta", CONFIG_DURATION, 0, "24h", 0, 2592000000, NULL,
     "estimated_completion of a new withdrawal: request time plus this"},
    {"rate.read_per_minute", CONFIG_INT, 0, "600", 0, 10000000, NULL,
     "read calls a client may make a minute, per coffer-api process (0: unlimited)"},
    {"rate.write_per_minute", CONFIG_INT, 0, "120", 0, 10000000, NULL,
     "mutating calls a client may make a minute, per process (0: unlimited)"},
    {"rate.execute_per_minute", CONFIG_INT, 0, "10", 0, 10000000, NULL,
     "on-chain execution calls (Execute*, RunJob) a caller may make a minute, per process (0: unlimited)"},
    {"rate.admin_per_minute", CONFIG_INT, 0, "600", 0, 10000000, NULL,
     "operator calls a minute, per process (0: unlimited)"},
    {"rate.max_buckets", CONFIG_INT, 0, "65536", 64, 16777216, NULL,
     "rate-limit buckets kept in memory (least recently used evicted beyond)"},
    {"metrics.listen", CONFIG_STRING, 0, NULL, 0, 0, NULL,
     "serve Prometheus /metrics over HTTP on this IPv4 host:port (port 0: any free port; unset: off)"},
    {"health.interval", CONFIG_DURATION, 0, "1s", 100, 60000, NULL,
     "how often component health (PostgreSQL, ...) is probed; answers are cached between"},
    {"health.probe_timeout", CONFIG_DURATION, 0, "1s", 100, 30000, NULL,
     "how long a health probe may wait for a pooled database connection"},
};

static const config_schema api_schema = {api_options, sizeof api_options / sizeof api_options[0]};

const config_schema *api_config_schema(void)
{
    return &api_schema;
}

config *api_config_load(const char *prog, const char *path, char *const *envp,
                        char *const *extra_env)
{
    return config_load_for_program(prog, &api_schema, path, envp, extra_env);
}

log_level api_config_log_level(const config *cfg)
{
    size_t i = LOG_INFO;
    if (config_get_enum(cfg, &i, "log.level") != 0)
        return LOG_INFO;
    return (log_level)i;
}
