#include "serve.h"

#include "apikey.h"
#include "auth.h"
#include "coffer/v1/system.pb-c.h"
#include "coffer_version.h"
#include "db_pool.h"
#include "db_system.h"
#include "descset.h"
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "ledger_db.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "rpc_client.h"
#include "rpc_server.h"
#include "sealbox.h"
#include "secmem.h"
#include "services.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SERVE_PEM_MAX (1024u * 1024u)

char *serve_read_pem(const char *path, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "coffer-api: cannot open %s %s: %s\n", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(SERVE_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, SERVE_PEM_MAX + 1, f) : 0;
    int bad = !buf || ferror(f) || n == 0 || n > SERVE_PEM_MAX;
    fclose(f);
    if (bad) {
        fprintf(stderr, "coffer-api: cannot read %s %s (empty, unreadable or over 1 MiB)\n", what, path);
        if (buf)
            secmem_wipe(buf, SERVE_PEM_MAX + 1);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void serve_free_pem(char *pem)
{
    if (!pem)
        return;
    secmem_wipe(pem, strlen(pem));
    free(pem);
}

static int64_t serve_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Typed getters for keys the schema guarantees (defaults exist). */
static int64_t serve_int(const config *cfg, const char *key)
{
    int64_t v = 0;
    if (config_get_int(cfg, &v, key) != 0)
        log_error("serve.config", "key=%s problem=missing", key);
    return v;
}

static int64_t serve_ms(const config *cfg, const char *key)
{
    int64_t v = 0;
    if (config_get_duration_ms(cfg, &v, key) != 0)
        log_error("serve.config", "key=%s problem=missing", key);
    return v;
}

static const char *serve_str(const config *cfg, const char *key)
{
    const char *v = NULL;
    return config_get_string(cfg, &v, key) == 0 ? v : NULL;
}

/* Waits for SIGTERM/SIGINT; SIGHUP is logged and ignored. */
static int serve_wait_signal(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_info("serve.sighup", "action=ignored reason=\"configuration reload is not supported; restart\"");
            continue;
        }
        return sig;
    }
}

/* Drains after a signal: grace for calls in flight, cancellation after
 * it or on a second signal. */
static void serve_drain(rpc_server *srv, health *h, const sigset_t *set, int64_t grace_ms)
{
    health_set_draining(h);
    rpc_server_shutdown_begin(srv);
    int64_t until = serve_now_ms() + grace_ms;
    bool drained = false;
    while (!drained) {
        int64_t left = until - serve_now_ms();
        if (left <= 0)
            break;
        drained = rpc_server_wait_drained(srv, left < 100 ? left : 100);
        struct timespec zero = {0, 0};
        int sig = sigtimedwait(set, NULL, &zero);
        if (sig == SIGTERM || sig == SIGINT) {
            log_warn("serve.second_signal", "signal=%d action=cancel_inflight", sig);
            break;
        }
    }
    if (!drained && !rpc_server_wait_drained(srv, 0)) {
        log_warn("serve.grace_over", "grace_ms=%lld inflight=%u", (long long)grace_ms, rpc_server_inflight(srv));
        rpc_server_cancel_inflight(srv);
    }
}

int serve_run(const config *cfg)
{
    int rc = 1;
    char err[512];
    char *cert = NULL, *key = NULL;
    auth *au = NULL;
    db_pool *pool = NULL;
    health *h = NULL;
    descset *ds = NULL;
    rpc_table *table = NULL;
    rpc_server *srv = NULL;
    api_metrics *metrics = NULL;
    apikey *keys = NULL;
    sealbox *seal = NULL;
    ratelimit *rl = NULL;
    db_system_probe_state probe;
    memset(&probe, 0, sizeof probe);
    int64_t started_ms = serve_now_ms();

    /* Every thread created from here on (the core's too) inherits this mask,
     * so the signals reach only sigwait below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        fprintf(stderr, "coffer-api serve: cannot block signals\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    const char *tls_cert = serve_str(cfg, "tls.cert"), *tls_key = serve_str(cfg, "tls.key");
    if ((tls_cert == NULL) != (tls_key == NULL)) {
        fprintf(stderr, "coffer-api serve: tls.cert and tls.key go together: set both or neither\n");
        return 1;
    }
    if (tls_cert) {
        cert = serve_read_pem(tls_cert, "tls.cert");
        key = cert ? serve_read_pem(tls_key, "tls.key") : NULL;
        if (!cert || !key)
            goto out;
    }

    au = auth_new(err, sizeof err, serve_str(cfg, "auth.admin_token"));
    if (!au) {
        fprintf(stderr, "coffer-api serve: %s\n", err);
        goto out;
    }

    int64_t pool_size = serve_int(cfg, "db.pool_size");
    db_pool_options po = {
        .conninfo = serve_str(cfg, "db.url"),
        .size = (unsigned)pool_size,
        .idle_check_ms = (unsigned)serve_ms(cfg, "db.idle_check"),
        .connect_timeout_s = (unsigned)(serve_ms(cfg, "db.connect_timeout") / 1000),
        .statement_timeout_ms = (unsigned)serve_ms(cfg, "db.statement_timeout"),
        .application_name = serve_str(cfg, "db.application_name"),
    };
    pool = db_pool_new(&po);
    if (!pool) {
        fprintf(stderr, "coffer-api serve: cannot create the database pool (is db.url set?)\n");
        goto out;
    }
    probe.pool = pool;

    /* The ledger: API keys, secrets at rest, idempotency, rate limits. */
    keys = apikey_new(err, sizeof err, serve_str(cfg, "auth.api_key_secret"), pool,
                      (unsigned)serve_ms(cfg, "auth.api_key_cache"));
    if (!keys) {
        fprintf(stderr, "coffer-api serve: %s\n", err);
        goto out;
    }
    auth_set_resolver(au, apikey_resolve, keys);
    seal = sealbox_new(err, sizeof err, serve_str(cfg, "secrets.key"));
    if (!seal) {
        fprintf(stderr, "coffer-api serve: %s\n", err);
        goto out;
    }
    ledger_db_configure((unsigned)serve_ms(cfg, "db.statement_timeout"), serve_ms(cfg, "ledger.idempotency_ttl") / 1000,
                        seal);
    ratelimit_options ro = {.max_entries = (size_t)serve_int(cfg, "rate.max_buckets")};
    ro.per_minute[RPC_RATE_READ] = (uint32_t)serve_int(cfg, "rate.read_per_minute");
    ro.per_minute[RPC_RATE_WRITE] = (uint32_t)serve_int(cfg, "rate.write_per_minute");
    ro.per_minute[RPC_RATE_ADMIN] = (uint32_t)serve_int(cfg, "rate.admin_per_minute");
    ro.per_minute[RPC_RATE_EXECUTE] = (uint32_t)serve_int(cfg, "rate.execute_per_minute");
    rl = ratelimit_new(&ro);
    if (!rl) {
        fprintf(stderr, "coffer-api serve: cannot create the rate limiter\n");
        goto out;
    }

    h = health_new((unsigned)serve_ms(cfg, "health.interval"), (unsigned)serve_ms(cfg, "health.probe_timeout"));
    if (!h || health_add_component(h, "db", true, db_system_probe, &probe) != 0 ||
        health_add_component(h, "signer", false, NULL, NULL) != 0 ||
        health_add_component(h, "chain", false, NULL, NULL) != 0) {
        fprintf(stderr, "coffer-api serve: cannot set up health checks\n");
        goto out;
    }

    ds = descset_new(err, sizeof err, coffer_api_descriptor_set, coffer_api_descriptor_set_len);
    table = ds ? rpc_table_new() : NULL;
    if (!table) {
        fprintf(stderr, "coffer-api serve: embedded descriptor set: %s\n", ds ? "out of memory" : err);
        goto out;
    }
    api_services svcs = {
        .health = h,
        .db_probe = &probe,
        .db_pool_size = (unsigned)pool_size,
        .started_ms = started_ms,
        .descriptors = ds,
        .table = table,
        .apikeys = keys,
        .secrets = seal,
        .api_key_grace_s = serve_ms(cfg, "auth.api_key_grace") / 1000,
        .profit_unlock_s = (uint32_t)serve_int(cfg, "ledger.profit_unlock_seconds"),
        .deposit_expiry_s = serve_ms(cfg, "ledger.deposit_expiry") / 1000,
        .withdrawal_eta_s = serve_ms(cfg, "ledger.withdrawal_eta") / 1000,
    };
    if (api_services_register(table, err, sizeof err, &svcs) != 0) {
        fprintf(stderr, "coffer-api serve: RPC table: %s\n", err);
        goto out;
    }

    bool permit = true;
    if (config_get_bool(cfg, &permit, "grpc.keepalive_permit_without_calls") != 0)
        permit = true;
    const char *listen = serve_str(cfg, "grpc.listen");
    const char *unix_socket = serve_str(cfg, "grpc.unix_socket");
    rpc_server_options so = {
        .listen = listen,
        .unix_socket = unix_socket,
        .tls_cert_pem = cert,
        .tls_key_pem = key,
        .max_message_bytes = (size_t)serve_int(cfg, "grpc.max_message_bytes"),
        .workers = (unsigned)serve_int(cfg, "grpc.workers"),
        .max_queued = (unsigned)serve_int(cfg, "grpc.max_queued_calls"),
        .keepalive_time_ms = serve_ms(cfg, "grpc.keepalive_time"),
        .keepalive_timeout_ms = serve_ms(cfg, "grpc.keepalive_timeout"),
        .keepalive_min_ping_interval_ms = serve_ms(cfg, "grpc.keepalive_min_ping_interval"),
        .keepalive_permit_without_calls = permit,
        .table = table,
        .auth = au,
        .db = pool,
        .rate_check = ratelimit_check,
        .rate_arg = rl,
    };
    srv = rpc_server_new(err, sizeof err, &so);
    serve_free_pem(key); /* the core keeps its own copy */
    key = NULL;
    if (!srv) {
        fprintf(stderr, "coffer-api serve: %s\n", err);
        goto out;
    }
    if (health_start(h) != 0 || rpc_server_start(srv, err, sizeof err) != 0) {
        fprintf(stderr, "coffer-api serve: cannot start: %s\n", err);
        goto out;
    }
    const char *metrics_listen = serve_str(cfg, "metrics.listen");
    if (metrics_listen) {
        api_metrics_options mo = {
            .listen = metrics_listen, .table = table, .server = srv, .db = pool, .health = h,
            .started_ms = started_ms,
        };
        metrics = api_metrics_start(err, sizeof err, &mo);
        if (!metrics) {
            fprintf(stderr, "coffer-api serve: %s\n", err);
            goto out;
        }
        log_info("serve.metrics", "listen=%s port=%d", metrics_listen, api_metrics_port(metrics));
    }
    char ql[300], qu[4200];
    log_info("serve.listening", "version=%s commit=%s pid=%d listen=%s port=%d unix_socket=%s tls=%s "
             "admin_token=%s serving=%s",
             COFFER_VERSION, COFFER_COMMIT, (int)getpid(), log_quote(ql, sizeof ql, listen ? listen : ""),
             rpc_server_port(srv), log_quote(qu, sizeof qu, unix_socket ? unix_socket : ""),
             cert ? "on" : "off", serve_str(cfg, "auth.admin_token") ? "set" : "unset",
             health_serving(h) ? "true" : "false");

    int sig = serve_wait_signal(&set);
    log_info("serve.signal", "signal=%s inflight=%u", sig == SIGTERM ? "SIGTERM" : "SIGINT",
             rpc_server_inflight(srv));
    serve_drain(srv, h, &set, serve_ms(cfg, "grpc.shutdown_grace"));
    rc = 0;
out:
    api_metrics_stop(metrics); /* before what it reads */
    rpc_server_free(srv);
    health_free(h);
    rpc_table_free(table);
    descset_free(ds);
    ledger_db_configure((unsigned)serve_ms(cfg, "db.statement_timeout"), 86400, NULL);
    ratelimit_free(rl);
    sealbox_free(seal);
    apikey_free(keys);
    db_pool_free(pool);
    auth_free(au);
    serve_free_pem(cert);
    serve_free_pem(key);
    if (rc == 0)
        log_info("serve.exit", "status=0");
    return rc;
}

/* ---- status ------------------------------------------------------------------ */

static const char *serve_component_status(Coffer__V1__ComponentStatus s)
{
    switch (s) {
    case COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_UP: return "up";
    case COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_DOWN: return "DOWN";
    case COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_NOT_CONFIGURED: return "not configured";
    default: return "unknown";
    }
}

int serve_status(const char *target, int64_t timeout_ms, const char *tls_ca_pem, const char *tls_name)
{
    grpcw_channel_options co = {tls_ca_pem, tls_name, 0};
    rpc_client *c = rpc_client_new(target, &co);
    if (!c) {
        fprintf(stderr, "coffer-api status: cannot create a channel to %s\n", target);
        return 2;
    }
    int rc = 2;
    rpc_call_options o = {timeout_ms, NULL, 0};
    rpc_call_result r;
    ProtobufCMessage *resp = NULL;
    Grpc__Health__V1__HealthCheckRequest hreq;
    grpc__health__v1__health_check_request__init(&hreq);
    if (rpc_client_unary(c, &r, &resp, &grpc__health__v1__health__descriptor, "Check", &hreq.base, &o) != 0 ||
        r.code != RPC_OK) {
        printf("coffer-api status: %s unreachable or failing: %s: %s\n", target, rpc_code_name(r.code), r.message);
        rpc_call_result_dispose(&r);
        goto out;
    }
    const Grpc__Health__V1__HealthCheckResponse *hr = (const Grpc__Health__V1__HealthCheckResponse *)resp;
    bool serving = hr->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    printf("coffer-api %s %s\n", target, serving ? "SERVING" : "NOT_SERVING");
    rc = serving ? 0 : 1;
    protobuf_c_message_free_unpacked(resp, NULL);
    resp = NULL;
    rpc_call_result_dispose(&r);

    Coffer__V1__GetInfoRequest ireq;
    coffer__v1__get_info_request__init(&ireq);
    if (rpc_client_unary(c, &r, &resp, &coffer__v1__system_service__descriptor, "GetInfo", &ireq.base, &o) != 0 ||
        r.code != RPC_OK) {
        printf("  GetInfo failed: %s: %s\n", rpc_code_name(r.code), r.message);
        rpc_call_result_dispose(&r);
        rc = rc ? rc : 1;
        goto out;
    }
    const Coffer__V1__GetInfoResponse *ir = (const Coffer__V1__GetInfoResponse *)resp;
    printf("  version %s (commit %s), up %llus, schema version %u\n", ir->version, ir->commit,
           (unsigned long long)ir->uptime_seconds, ir->schema_version);
    for (size_t i = 0; i < ir->n_components; i++) {
        const Coffer__V1__ComponentHealth *ch = ir->components[i];
        if (ch->status == COFFER__V1__COMPONENT_STATUS__COMPONENT_STATUS_NOT_CONFIGURED)
            printf("  %-8s %s\n", ch->name, serve_component_status(ch->status));
        else
            printf("  %-8s %-15s probe %lluus%s%s\n", ch->name, serve_component_status(ch->status),
                   (unsigned long long)ch->latency_us, ch->detail[0] ? "  " : "", ch->detail);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_call_result_dispose(&r);
out:
    rpc_client_free(c);
    return rc;
}
