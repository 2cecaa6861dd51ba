/* gw_config: coffer-gateway's configuration schema (a table, see
 * common/config.h) and its loading from --config FILE plus COFFER_*
 * environment overrides. */
#ifndef COFFER_GW_CONFIG_H
#define COFFER_GW_CONFIG_H

#include "config.h"
#include "log.h"

const config_schema *gw_config_schema(void);

/* As api_config_load: path may be NULL; extra_env wins over envp. Prints
 * every problem to stderr prefixed with prog. */
__attribute__((warn_unused_result))
config *gw_config_load(const char *prog, const char *path, char *const *envp, char *const *extra_env);

log_level gw_config_log_level(const config *cfg);

#endif
