/* config: a configuration file plus environment overrides, checked against
 * a schema that each program declares as data.
 *
 * Schema: one config_option row per key (a table, like a command table):
 *
 *     static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
 *     static const config_option api_options[] = {
 *         {"db.url", CONFIG_STRING, CONFIG_REQUIRED | CONFIG_SECRET, NULL, 0, 0, NULL,
 *          "PostgreSQL connection URL"},
 *         {"grpc.max_message_bytes", CONFIG_INT, 0, "4194304", 1024, 67108864, NULL,
 *          "largest gRPC message accepted"},
 *         {"log.level", CONFIG_ENUM, 0, "info", 0, 0, log_levels, "lowest level logged"},
 *     };
 *     static const config_schema api_schema = {api_options, 3};
 *
 * File format (UTF-8, at most CONFIG_FILE_MAX bytes, lines at most
 * CONFIG_LINE_MAX bytes; LF or CRLF line ends; a leading BOM is skipped):
 *
 *     # a comment: '#' first on a line (after optional blanks)
 *     db.url = postgres://coffer@localhost/coffer
 *     api.name = "quoted: \"x\" and \\ are the only escapes"
 *
 * Keys are dotted, with no sections. An unquoted value is the rest of the
 * line with blanks trimmed ('#' inside it is part of the value); after a
 * closing quote only blanks may follow. An empty value is the empty string.
 * NUL bytes, invalid UTF-8 and control characters other than TAB are
 * errors.
 *
 * Environment: COFFER_ + the key uppercased with '.' -> '_' (db.url ->
 * COFFER_DB_URL) overrides the file; its value is taken literally (no
 * quotes, no trimming). Variables are read only from the envp given to the
 * loader. COFFER_ variables that name no key are ignored (the environment
 * also carries test and stack settings).
 *
 * Value syntax per type:
 *   CONFIG_STRING    any text
 *   CONFIG_INT       decimal int64, optional sign, within [min, max]
 *   CONFIG_BOOL      true/false, yes/no, on/off, 1/0 (any case)
 *   CONFIG_DURATION  <digits><unit>, unit ms, s, m or h, or a bare 0;
 *                    stored in milliseconds, within [min, max]
 *   CONFIG_PATH      non-empty, at most CONFIG_PATH_MAX bytes
 *   CONFIG_ENUM      exactly one of the option's choices
 *   CONFIG_LIST      comma-separated items, blanks around each trimmed,
 *                    no empty item; the empty value is the empty list
 *
 * Loading collects every problem in one pass (file, environment, required
 * keys), each with its source, e.g.
 *     api.conf:12: grpc.max_message_bytes: expected an integer between 1024 and 67108864, got "4x"
 *     api.conf:3: unknown key "db.ulr" (did you mean "db.url"?)
 *     env COFFER_LOG_LEVEL: expected one of debug|info|warn|error, got "loud"
 *     missing required key db.url
 * and yields no config at all if there was any. The value of a secret
 * option is never printed, by errors, config_dump or config_print_help: it
 * reads <redacted>. A loaded config is immutable, so getters are safe from
 * any number of threads. */
#ifndef COFFER_CONFIG_H
#define COFFER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits. */
#define CONFIG_LINE_MAX 4096u        /* bytes per file line (line end excluded) and per env value */
#define CONFIG_FILE_MAX (1024u * 1024u)
#define CONFIG_PATH_MAX 4095u        /* bytes of a CONFIG_PATH value */
#define CONFIG_ERRORS_MAX 64u        /* messages kept; the rest are only counted */
#define CONFIG_ENV_PREFIX "COFFER_"

typedef enum {
    CONFIG_STRING = 0,
    CONFIG_INT,
    CONFIG_BOOL,
    CONFIG_DURATION,
    CONFIG_PATH,
    CONFIG_ENUM,
    CONFIG_LIST,
} config_type;

/* config_option.flags */
#define CONFIG_REQUIRED 0x1u /* must be set by the file or the environment */
#define CONFIG_SECRET 0x2u   /* value never printed */

/* One schema row. All strings are borrowed for the life of every config
 * loaded with the schema (in practice: static). */
typedef struct {
    const char *key;           /* [a-z0-9_]+ segments joined by '.', unique */
    config_type type;
    unsigned flags;            /* CONFIG_REQUIRED | CONFIG_SECRET */
    const char *default_value; /* in value syntax, or NULL for none (not with CONFIG_REQUIRED) */
    int64_t min, max;          /* CONFIG_INT: inclusive bounds; CONFIG_DURATION: inclusive
                                * bounds in ms. min == max == 0 means unbounded (durations
                                * are never negative). Ignored for other types. */
    const char *const *choices; /* CONFIG_ENUM: NULL-terminated list of words (no '|') */
    const char *description;    /* one line, for config_print_help */
} config_option;

typedef struct {
    const config_option *options;
    size_t count;
} config_schema;

/* Where an effective value came from. */
typedef enum {
    CONFIG_SOURCE_UNSET = 0, /* optional, no default, not given */
    CONFIG_SOURCE_DEFAULT,
    CONFIG_SOURCE_FILE,
    CONFIG_SOURCE_ENV,
} config_source;

/* Problems found by a load; caller-owned storage (config_errors_init /
 * config_errors_dispose). Read with config_errors_count/config_errors_get. */
typedef struct {
    char **messages;  /* count messages, each one line without '\n' */
    size_t count;
    size_t cap;
    size_t dropped;   /* problems beyond CONFIG_ERRORS_MAX (or lost to ENOMEM) */
} config_errors;

typedef struct config config;

/* Prepares an empty error list. errs: output. */
void config_errors_init(config_errors *errs);

/* Frees the messages. errs may be NULL. */
void config_errors_dispose(config_errors *errs);

/* Number of problems recorded, dropped ones included. */
size_t config_errors_count(const config_errors *errs);

/* The i-th kept message (i < errs->count), borrowed; NULL when out of range. */
const char *config_errors_get(const config_errors *errs, size_t i);

/* Writes each message on its own line, then "... and N more problems" if
 * some were dropped. Returns 0, or -1 on a write error. */
__attribute__((warn_unused_result))
int config_errors_print(const config_errors *errs, FILE *out);

/* Loads a config file plus environment overrides.
 * Returns 0 with *out set to a new config, or -1 with *out NULL and every
 * problem appended to errs (schema mistakes included, as "schema: ...").
 * out: output, free with config_free. errs: in/out, appended to.
 * schema: input, borrowed for the life of the config.
 * path: input, the file; also the name used in messages.
 * envp: input, NULL-terminated "NAME=value" array (environ, or a test's
 * own), or NULL for no overrides. */
__attribute__((warn_unused_result))
int config_load_file(config **out, config_errors *errs, const config_schema *schema,
                     const char *path, char *const *envp);

/* Same, from memory. source_name names the buffer in messages (e.g.
 * "api.conf"); buf, buf_len: the file's bytes (buf may be NULL when
 * buf_len is 0; need not be NUL-terminated; NUL bytes are errors). */
__attribute__((warn_unused_result))
int config_load_buffer(config **out, config_errors *errs, const config_schema *schema,
                       const char *source_name, const char *buf, size_t buf_len,
                       char *const *envp);

/* What a program's main() wants: loads path (NULL: no file, defaults and
 * environment only) with envp overrides, where extra_env (NULL-terminated
 * "COFFER_X=v" strings from command-line flags, may be NULL) replaces the
 * same variables of envp, so flags win. Prints every problem to stderr
 * prefixed with prog. Returns the config (free with config_free) or NULL. */
__attribute__((warn_unused_result))
config *config_load_for_program(const char *prog, const config_schema *schema, const char *path,
                                char *const *envp, char *const *extra_env);

/* Frees a config (NULL accepted). */
void config_free(config *cfg);

/* Typed getters. Each returns 0 and sets *out, or -1 when key is not in
 * the schema, has another type, or is unset (optional without default);
 * *out is then unchanged. Strings and lists are borrowed from cfg.
 * config_get_string accepts CONFIG_STRING, CONFIG_PATH and CONFIG_ENUM. */
__attribute__((warn_unused_result))
int config_get_string(const config *cfg, const char **out, const char *key);
__attribute__((warn_unused_result))
int config_get_int(const config *cfg, int64_t *out, const char *key);
__attribute__((warn_unused_result))
int config_get_bool(const config *cfg, bool *out, const char *key);
__attribute__((warn_unused_result))
int config_get_duration_ms(const config *cfg, int64_t *out, const char *key);

/* CONFIG_ENUM: *out gets the index of the value in the option's choices. */
__attribute__((warn_unused_result))
int config_get_enum(const config *cfg, size_t *out, const char *key);

/* CONFIG_LIST: *items gets a NULL-terminated array of *count strings. */
__attribute__((warn_unused_result))
int config_get_list(const config *cfg, const char *const **items, size_t *count, const char *key);

/* Where key's effective value came from; CONFIG_SOURCE_UNSET also for a
 * key not in the schema. */
config_source config_get_source(const config *cfg, const char *key);

/* Writes every option's effective value, one line each, in schema order:
 *     grpc.max_message_bytes = 1048576  # file api.conf:12
 *     db.url = <redacted>  # env COFFER_DB_URL
 *     log.level = "info"  # default
 *     tls.ca_file  # unset
 * Returns 0, or -1 on a write error. */
__attribute__((warn_unused_result))
int config_dump(const config *cfg, FILE *out);

/* Writes a --help style description of the schema: per option its key,
 * type and bounds or choices, default (redacted when secret), required,
 * environment variable and description. Returns 0, or -1 on a write
 * error or an invalid schema row. */
__attribute__((warn_unused_result))
int config_print_help(const config_schema *schema, FILE *out);

#endif
