#include "serve.h"

#include "apikey.h"
#include "auth.h"
#include "chain_jobs.h"
#include "coffer/v1/system.pb-c.h"
#include "coffer_version.h"
#include "db_pool.h"
#include "db_system.h"
#include "descset.h"
#include "grpc/health/v1/health.pb-c.h"
#include "evm_rpc.h"
#include "health.h"
#include "job_sched.h"
#include "ledger_db.h"
#include "log.h"
#include "metrics.h"
#include "ops_jobs.h"
#include "ratelimit.h"
#include "rpc_client.h"
#include "rpc_server.h"
#include "sealbox.h"
#include "secmem.h"
#include "services.h"
#include "signer_client.h"

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

/* The signer component: Status answered within the client's timeout. */
static int serve_signer_probe(void *arg, char *detail, size_t detail_len, unsigned timeout_ms)
{
    (void)timeout_ms; /* signer.timeout bounds the call */
    signer_status_info info;
    signer_error e;
    if (signer_client_status(arg, &info, &e, "health") == SIGNER_OK)
        return 0;
    snprintf(detail, detail_len, "coffer-signer: %s: %s", signer_status_name(e.status), e.message);
    return -1;
}

static void serve_signer_observe(void *arg, bool answered, int64_t duration_us)
{
    (void)arg;
    api_metrics_signer(answered, duration_us);
}

/* The chain component: eth_chainId (must be the configured chain) and the
 * head block number. Not required: a chain outage stops deposits being
 * seen and transactions being sent, but the ledger's reads and writes go
 * on, so health stays SERVING (docs/chain.md). */
typedef struct {
    evm_rpc *evm;
    uint64_t chain_id;
} serve_chain_probe_arg;

static int serve_chain_probe(void *arg, char *detail, size_t detail_len, unsigned timeout_ms)
{
    (void)timeout_ms; /* evm.timeout bounds each request */
    const serve_chain_probe_arg *a = arg;
    uint64_t id = 0, head = 0;
    evm_rpc_error ee;
    evm_err e = evm_rpc_chain_id(a->evm, &id, &ee);
    if (e == EVM_OK && id != a->chain_id) {
        snprintf(detail, detail_len, "the node serves chain %llu, not %llu", (unsigned long long)id,
                 (unsigned long long)a->chain_id);
        return -1;
    }
    if (e == EVM_OK)
        e = evm_rpc_block_number(a->evm, &head, &ee);
    if (e != EVM_OK) {
        snprintf(detail, detail_len, "%s: %s", evm_err_name(e), ee.message);
        return -1;
    }
    snprintf(detail, detail_len, "block %llu", (unsigned long long)head);
    return 0;
}

static int64_t serve_u256_cfg(u256 *out, const config *cfg, const char *key)
{
    const char *v = NULL;
    if (config_get_string(cfg, &v, key) != 0 || !v || u256_from_dec_str(out, v) != 0) {
        fprintf(stderr, "coffer-api serve: %s must be a decimal amount of base units\n", key);
        return -1;
    }
    return 0;
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
    signer_client *signer = NULL;
    evm_rpc *evm = NULL;
    job_sched *sched = NULL;
    static ops_jobs_env jobs; /* borrowed by services, jobs and the lifecycle until exit */
    serve_chain_probe_arg chain_probe = {NULL, 0};
    char chain_name[40] = "chain";
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

    /* coffer-signer: wallets are generated and used through it; when it is
     * configured, serving requires it (API.md: SERVING only when the
     * database and the signer answer). */
    const char *signer_socket = serve_str(cfg, "signer.socket");
    if (signer_socket && signer_socket[0]) {
        signer_client_options sco = {
            .socket_path = signer_socket,
            .pool_size = (unsigned)serve_int(cfg, "signer.pool_size"),
            .call_timeout_ms = (int)serve_ms(cfg, "signer.timeout"),
            .observe = serve_signer_observe,
        };
        if (sco.connect_timeout_ms == 0 && sco.call_timeout_ms < 1000)
            sco.connect_timeout_ms = sco.call_timeout_ms;
        if (signer_client_new(&signer, &sco) != 0) {
            fprintf(stderr, "coffer-api serve: signer.socket %s: not a usable socket path\n", signer_socket);
            goto out;
        }
    } else {
        log_warn("serve.signer", "state=not_configured effect=\"RegisterClient refused: no wallets can be created\"");
    }

    /* The chain (docs/chain.md): one client for evm.chain_id over
     * evm.endpoints; endpoints serving another chain are disabled. */
    evm_rpc_options eo;
    evm_fee_policy fee_policy;
    bool evm_on = false;
    evm_rpc_options_init(&eo);
    evm_fee_policy_init(&fee_policy);
    if (evm_rpc_options_from_config(&eo, &fee_policy, &evm_on, err, sizeof err, cfg) != 0) {
        fprintf(stderr, "coffer-api serve: %s\n", err);
        goto out;
    }
    if (evm_on) {
        evm_rpc_error ee;
        if (eo.chain_id == 0) {
            fprintf(stderr, "coffer-api serve: evm.chain_id is required with evm.endpoints\n");
            goto out;
        }
        if (evm_rpc_new(&evm, &ee, &eo) != EVM_OK) {
            fprintf(stderr, "coffer-api serve: evm: %s\n", ee.message);
            goto out;
        }
        evm_err ve = evm_rpc_verify_chain(evm, &ee);
        if (ve == EVM_ERR_CHAIN_MISMATCH)
            log_error("serve.chain", "result=mismatch message=\"%s\"", ee.message);
        else if (ve != EVM_OK)
            log_warn("serve.chain", "result=%s message=\"%s\" effect=\"checked again by the health probe\"",
                     evm_err_name(ve), ee.message);
        chain_probe.evm = evm;
        chain_probe.chain_id = eo.chain_id;
        snprintf(chain_name, sizeof chain_name, "chain:%llu", (unsigned long long)eo.chain_id);
    } else {
        log_warn("serve.chain", "state=not_configured effect=\"no deposits seen, no transactions sent\"");
    }
    /* The jobs and the transaction lifecycle. */
    memset(&jobs, 0, sizeof jobs);
    jobs.pool = pool;
    jobs.timeout_ms = 30000;
    jobs.has_chain = evm && signer;
    jobs.chain.pool = pool;
    jobs.chain.evm = evm;
    jobs.chain.signer = signer;
    jobs.chain.chain_id = eo.chain_id;
    jobs.chain.fees = fee_policy;
    jobs.chain.gas_margin_pct = (unsigned)serve_int(cfg, "evm.gas_margin_pct");
    jobs.chain.confirmations = (uint64_t)serve_int(cfg, "evm.confirmations");
    jobs.chain.replace_after_ms = serve_ms(cfg, "evm.replace_after");
    jobs.chain.bump_pct = (unsigned)serve_int(cfg, "evm.replace_bump_pct");
    jobs.chain.db_timeout_ms = 10000;
    jobs.chain.settle = chain_jobs_settle;
    jobs.chain.settle_arg = &jobs;
    size_t order = 0;
    jobs.unstake_proportional = config_get_enum(cfg, &order, "jobs.unstake_order") == 0 && order == 1;
    jobs.watch_max_blocks = (uint64_t)serve_int(cfg, "jobs.deposit_watch_blocks");
    jobs.watch_start_back = (uint64_t)serve_int(cfg, "jobs.deposit_watch_backfill");
    jobs.treasury_wait_ms = serve_ms(cfg, "treasury.wait");
    if (serve_u256_cfg(&jobs.staking_min_idle, cfg, "jobs.staking_min_idle") != 0 ||
        serve_u256_cfg(&jobs.accrual_dust, cfg, "jobs.accrual_dust") != 0)
        goto out;

    h = health_new((unsigned)serve_ms(cfg, "health.interval"), (unsigned)serve_ms(cfg, "health.probe_timeout"));
    if (!h || health_add_component(h, "db", true, db_system_probe, &probe) != 0 ||
        health_add_component(h, "signer", signer != NULL, signer ? serve_signer_probe : NULL, signer) != 0 ||
        health_add_component(h, chain_name, false, evm ? serve_chain_probe : NULL, &chain_probe) != 0) {
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
        .signer = signer,
        .evm = evm,
        .evm_chain_id = eo.chain_id,
        .jobs = &jobs,
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
            .started_ms = started_ms, .evm = evm,
        };
        metrics = api_metrics_start(err, sizeof err, &mo);
        if (!metrics) {
            fprintf(stderr, "coffer-api serve: %s\n", err);
            goto out;
        }
        log_info("serve.metrics", "listen=%s port=%d", metrics_listen, api_metrics_port(metrics));
    }
    bool sched_on = true;
    if (config_get_bool(cfg, &sched_on, "jobs.scheduler") != 0)
        sched_on = true;
    if (sched_on) {
        static const char *const iv_keys[JOB_SCHED_JOBS] = {"jobs.staking.interval", "jobs.accrual.interval",
                                                          "jobs.withdrawals.interval", "jobs.deposit_watch.interval",
                                                          "jobs.receipts.interval"};
        int64_t iv[JOB_SCHED_JOBS];
        for (int i = 0; i < JOB_SCHED_JOBS; i++)
            iv[i] = serve_ms(cfg, iv_keys[i]);
        if (!jobs.has_chain)
            for (int i = 0; i < JOB_SCHED_JOBS; i++)
                if (strcmp(job_sched_names[i], "withdrawals") != 0)
                    iv[i] = 0; /* they need the chain and the signer */
        sched = job_sched_start(&jobs, iv);
        if (!sched) {
            fprintf(stderr, "coffer-api serve: cannot start the job scheduler\n");
            goto out;
        }
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
    job_sched_stop(sched); /* first: its jobs use everything below */
    api_metrics_stop(metrics); /* before what it reads */
    rpc_server_free(srv);
    health_free(h);
    signer_client_free(signer); /* after the health thread and every handler */
    evm_rpc_free(evm);
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
    grpcw_channel_options co = {tls_ca_pem, tls_name, 0, false};
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
