/* services: the gRPC services coffer-api serves, and the state their
 * handlers share. Each service lives in its own svc_<name>.c with its rows
 * (rpc_service_def); api_services_register puts them all into the table. */
#ifndef COFFER_SERVICES_H
#define COFFER_SERVICES_H

#include "db_system.h"
#include "descset.h"
#include "health.h"
#include "rpc_table.h"

#include <stddef.h>
#include <stdint.h>

/* The protobuf descriptor set of the public API, embedded at build time
 * (proto/meson.build: coffer_api.protoset). */
extern const unsigned char coffer_api_descriptor_set[];
extern const size_t coffer_api_descriptor_set_len;

/* What the handlers share. Borrowed pointers; may be NULL where a program
 * only needs the table (the fuzz target). */
typedef struct {
    health *health;                   /* component health, cached */
    db_system_probe_state *db_probe;  /* the db component's last findings */
    unsigned db_pool_size;            /* db.pool_size, for DiagnoseDatabase */
    int64_t started_ms;               /* CLOCK_MONOTONIC at start, for uptime */
    const descset *descriptors;       /* the embedded set, for reflection */
    const rpc_table *table;           /* for reflection's service list and health names */
    /* The ledger (issue 5). */
    struct apikey *apikeys;           /* API key hashing and the resolver's cache */
    struct sealbox *secrets;          /* secrets.key: webhook secrets at rest */
    int64_t api_key_grace_s;          /* auth.api_key_grace: old key's life after RotateApiKey */
    uint32_t profit_unlock_s;         /* ledger.profit_unlock_seconds: default for new vaults */
    int64_t deposit_expiry_s;         /* ledger.deposit_expiry: a crypto deposit order's life */
    int64_t withdrawal_eta_s;         /* ledger.withdrawal_eta: estimated_completion of a withdrawal */
    /* Custodial wallets (issue 6). */
    struct signer_client *signer;     /* signer.socket; NULL: no signer (RegisterClient refused) */
    struct evm_rpc *evm;              /* the chain client for balances; NULL: not configured */
    uint64_t evm_chain_id;            /* the chain evm serves (evm.chain_id) */
    /* Jobs and the transaction lifecycle (issue 6): RunJob, Execute*. */
    const struct ops_jobs_env *jobs;  /* NULL: jobs not set up (RunJob UNAVAILABLE) */
} api_services;

extern const rpc_service_def svc_system_def;     /* coffer.v1.SystemService */
extern const rpc_service_def svc_health_def;     /* grpc.health.v1.Health */
extern const rpc_service_def svc_reflection_def; /* grpc.reflection.v1alpha.ServerReflection */
extern const rpc_service_def svc_webhook_def;    /* coffer.v1.WebhookService */
extern const rpc_service_def svc_client_def;     /* coffer.v1.ClientService */
extern const rpc_service_def svc_user_def;       /* coffer.v1.UserService */
extern const rpc_service_def svc_deposit_def;    /* coffer.v1.DepositService */
extern const rpc_service_def svc_withdrawal_def; /* coffer.v1.WithdrawalService */
extern const rpc_service_def svc_operations_def; /* coffer.v1.OperationsService */
extern const rpc_service_def svc_treasury_def;   /* coffer.v1.TreasuryService */

/* Adds every service with s as their arg and checks the table against the
 * embedded descriptor set. Returns 0, or -1 with err. */
__attribute__((warn_unused_result))
int api_services_register(rpc_table *t, char *err, size_t err_len, api_services *s);

/* True when name is "" (the whole server) or a service in the table. */
bool api_services_known(const api_services *s, const char *name);

#endif
