/* api_config: coffer-api's configuration schema (a table, see config.h)
 * and its loading from --config FILE plus COFFER_* environment overrides. */
#ifndef COFFER_API_CONFIG_H
#define COFFER_API_CONFIG_H

#include "config.h"
#include "log.h"

/* The schema of every key coffer-api understands. */
const config_schema *api_config_schema(void);

/* Loads path (NULL: no file, defaults and environment only) with envp
 * overrides; extra_env (NULL-terminated "COFFER_X=v" strings, may be NULL)
 * is applied after envp, so command-line flags win. Prints every problem
 * to stderr prefixed with prog. Returns the config or NULL. */
__attribute__((warn_unused_result))
config *api_config_load(const char *prog, const char *path, char *const *envp,
                        char *const *extra_env);

/* log.level of a loaded config. */
log_level api_config_log_level(const config *cfg);

#endif
