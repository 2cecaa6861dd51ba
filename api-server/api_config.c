#include "api_config.h"

#include "evm_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const api_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const api_unstake_orders[] = {"smallest", "proportional", NULL};

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
    /* coffer-signer (docs/signer.md): custodial wallets are generated and used through it */
    {"signer.socket", CONFIG_PATH, 0, NULL, 0, 0, NULL,
     "coffer-signer's Unix socket (unset: no signer; RegisterClient is refused, since every client needs a wallet)"},
    {"signer.pool_size", CONFIG_INT, 0, "4", 1, 64, NULL,
     "connections kept open to coffer-signer"},
    {"signer.timeout", CONFIG_DURATION, 0, "5s", 100, 60000, NULL,
     "how long one signer call may take, waiting for a connection included"},
    /* coffer-api signer-policy: the limits written into the generated policy */
    {"signer.policy.max_gas_limit", CONFIG_INT, 0, "3000000", 21000, 30000000, NULL,
     "signer-policy: max_gas_limit of every chain"},
    {"signer.policy.max_fee_per_gas", CONFIG_STRING, 0, "500000000000", 0, 0, NULL,
     "signer-policy: max_fee_per_gas (wei, decimal) of every chain"},
    {"signer.policy.native_daily_limit", CONFIG_STRING, 0, "1000000000000000000", 0, 0, NULL,
     "signer-policy: native daily_limit per key (wei, decimal): gas for a day, value is always 0"},
    {"signer.policy.payout_daily_limit", CONFIG_STRING, 0, "1000000000000", 0, 0, NULL,
     "signer-policy: each token's daily_limit per key (base units, decimal): transfers to any address (payouts)"},
    {"signer.policy.approve_max", CONFIG_STRING, 0, "1000000000000", 0, 0, NULL,
     "signer-policy: largest ERC-20 approve to a protocol (base units, decimal)"},
    {"signer.policy.min_bump_pct", CONFIG_INT, 0, "10", 1, 1000, NULL,
     "signer-policy: a fee replacement raises both fees by at least this percentage"},
    {"signer.policy.max_replacements", CONFIG_INT, 0, "5", 0, 100, NULL,
     "signer-policy: fee replacements per nonce (0: none)"},
    /* the chain (docs/chain.md): the client, then the transaction lifecycle */
    EVM_RPC_CONFIG_OPTIONS,
    {"evm.gas_margin_pct", CONFIG_INT, 0, "25", 0, 500, NULL,
     "gas limit = eth_estimateGas + this percentage (interest-bearing calls cost more a block later)"},
    {"evm.replace_after", CONFIG_DURATION, 0, "120s", 0, 86400000, NULL,
     "a transaction not mined this long after its first broadcast is replaced with bumped fees (0: never)"},
    {"evm.replace_bump_pct", CONFIG_INT, 0, "15", 10, 1000, NULL,
     "a replacement raises both EIP-1559 fees by this percentage (nodes and the signer ask at least 10)"},
    /* background jobs (ops_jobs.h, job_sched.h) */
    {"jobs.scheduler", CONFIG_BOOL, 0, "true", 0, 0, NULL,
     "run the background jobs in this process at the intervals below (RunJob works either way)"},
    {"jobs.staking.interval", CONFIG_DURATION, 0, "10m", 0, 604800000, NULL, "staking job interval (0: never)"},
    {"jobs.accrual.interval", CONFIG_DURATION, 0, "24h", 0, 604800000, NULL, "accrual job interval (0: never)"},
    {"jobs.withdrawals.interval", CONFIG_DURATION, 0, "5m", 0, 604800000, NULL,
     "withdrawals job interval (0: never)"},
    {"jobs.deposit_watch.interval", CONFIG_DURATION, 0, "15s", 0, 604800000, NULL,
     "deposit_watch job interval (0: never)"},
    {"jobs.receipts.interval", CONFIG_DURATION, 0, "10s", 0, 604800000, NULL, "receipts job interval (0: never)"},
    {"jobs.staking_min_idle", CONFIG_STRING, 0, "1000000", 0, 0, NULL,
     "staking deploys a vault's idle assets only above this many base units (decimal)"},
    {"jobs.accrual_dust", CONFIG_STRING, 0, "100", 0, 0, NULL,
     "accrual: positions this many base units below the book are protocol rounding (nothing accrued), not a loss"},
    {"jobs.unstake_order", CONFIG_ENUM, 0, "smallest", 0, 0, api_unstake_orders,
     "which allocations unstake first for withdrawals: smallest first, or proportional to their book"},
    {"jobs.deposit_watch_blocks", CONFIG_INT, 0, "1000", 1, 100000, NULL,
     "blocks deposit_watch scans per run"},
    {"jobs.deposit_watch_backfill", CONFIG_INT, 0, "1000", 0, 10000000, NULL,
     "deposit_watch's first run starts this many blocks below the chain head"},
    {"treasury.wait", CONFIG_DURATION, 0, "60s", 1000, 600000, NULL,
     "how long ExecuteDeposit/ExecuteWithdrawal wait for each transaction to be mined"},
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
