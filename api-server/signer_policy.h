/* signer_policy: coffer-signer's policy (docs/signer.md §4) as the
 * supported-protocols table implies it (`coffer-api signer-policy`), and
 * the comparison of a deployed policy with it (`--check`).
 *
 * Per chain with an active protocol: every token the protocols or the
 * clients' vaults use is an ERC-20 contract with approve_spenders = the
 * protocols' contracts (aave_v3 pool, compound_v3 comet, erc4626 vault)
 * capped by approve_max, and transfer_to_any bounded by a daily_limit
 * (payouts to end users' addresses); each protocol contract lists its
 * calls with every receiver pinned to "self" and the asset argument to
 * the tokens it serves; native value is 0 (max_value "0"), the native
 * daily_limit counts gas only. Limits come from the configuration
 * (signer.policy.*). */
#ifndef COFFER_SIGNER_POLICY_GEN_H
#define COFFER_SIGNER_POLICY_GEN_H

#include "config.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

/* Builds the policy from the database conn (platform scope is set inside
 * a read-only transaction) and the limits in cfg. chain_id 0: every chain.
 * Returns a new JSON object, or NULL with err set. */
__attribute__((warn_unused_result))
json_t *signer_policy_build(char *err, size_t err_len, PGconn *conn, const config *cfg, uint64_t chain_id);

/* Compares deployed with expected (both policies as JSON) ignoring order
 * of lists and case of addresses; prints one line per difference to out.
 * Returns the number of differences. */
__attribute__((warn_unused_result))
int signer_policy_diff(FILE *out, json_t *deployed, json_t *expected);

/* `coffer-api signer-policy` (argv after the subcommand). Exit status:
 * 0 printed (or --check: no difference), 1 differences, 2 errors. */
int signer_policy_main(int argc, char **argv, char *const *envp);

#endif
