/* Fuzzes config loading: arbitrary bytes as a config file against a
 * schema with every type. If the input contains a line "%%", the lines
 * after it become the environment (NAME=value entries).
 * Must not crash or leak; a failed load yields no config and at least one
 * problem; a successful one yields values that all pass the schema (types,
 * bounds, choices, list shape), required keys set, and a dump in which
 * every set secret reads <redacted>. */
#include "fuzz_check.h"
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const modes[] = {"a", NULL};

static const config_option opts[] = {
    {"db.url", CONFIG_STRING, CONFIG_REQUIRED | CONFIG_SECRET, NULL, 0, 0, NULL, "url"},
    {"db.pool_size", CONFIG_INT, 0, "8", 1, 256, NULL, "pool"},
    {"grpc.max_message_bytes", CONFIG_INT, 0, "4194304", 1024, 67108864, NULL, "max"},
    {"n.any", CONFIG_INT, 0, NULL, 0, 0, NULL, "unbounded int"},
    {"n.neg", CONFIG_INT, CONFIG_SECRET, "-5", -10, -1, NULL, "negative range, secret"},
    {"grpc.reflection", CONFIG_BOOL, 0, "false", 0, 0, NULL, "bool"},
    {"b.req", CONFIG_BOOL, CONFIG_REQUIRED, NULL, 0, 0, NULL, "required bool"},
    {"grpc.deadline", CONFIG_DURATION, 0, "5s", 1, 600000, NULL, "bounded duration"},
    {"d.any", CONFIG_DURATION, 0, NULL, 0, 0, NULL, "unbounded duration"},
    {"signer.socket", CONFIG_PATH, 0, "/run/s.sock", 0, 0, NULL, "path"},
    {"log.level", CONFIG_ENUM, 0, "info", 0, 0, levels, "enum"},
    {"e.secret", CONFIG_ENUM, CONFIG_SECRET, NULL, 0, 0, modes, "secret enum"},
    {"chain.ids", CONFIG_LIST, 0, "1,8453", 0, 0, NULL, "list"},
    {"l.secret", CONFIG_LIST, CONFIG_SECRET, NULL, 0, 0, NULL, "secret list"},
    {"api.name", CONFIG_STRING, 0, "", 0, 0, NULL, "string"},
    {"web.secret", CONFIG_STRING, CONFIG_SECRET, "dflt", 0, 0, NULL, "secret string"},
};
static const config_schema schema = {opts, sizeof opts / sizeof opts[0]};

/* Text a loaded string may hold: no NUL (implied), no control but TAB. */
static void check_text(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        CHECK(c >= 0x20 || c == '\t');
        CHECK(c != 0x7f);
    }
}

static void check_config(const config *cfg)
{
    size_t secrets_set = 0;
    for (size_t i = 0; i < schema.count; i++) {
        const config_option *o = &opts[i];
        config_source src = config_get_source(cfg, o->key);
        const char *s = NULL;
        int64_t v = 0;
        bool b = false;
        size_t idx = 0, n = 0;
        const char *const *items = NULL;

        if (o->flags & CONFIG_REQUIRED)
            CHECK(src != CONFIG_SOURCE_UNSET);
        if (o->default_value)
            CHECK(src != CONFIG_SOURCE_UNSET);
        if (src == CONFIG_SOURCE_UNSET) {
            CHECK(config_get_string(cfg, &s, o->key) == -1);
            CHECK(config_get_int(cfg, &v, o->key) == -1);
            continue;
        }
        if (o->flags & CONFIG_SECRET)
            secrets_set++;
        switch (o->type) {
        case CONFIG_STRING:
            CHECK(config_get_string(cfg, &s, o->key) == 0 && s);
            CHECK(strlen(s) <= CONFIG_LINE_MAX);
            check_text(s);
            break;
        case CONFIG_INT:
            CHECK(config_get_int(cfg, &v, o->key) == 0);
            if (!(o->min == 0 && o->max == 0))
                CHECK(v >= o->min && v <= o->max);
            CHECK(config_get_string(cfg, &s, o->key) == -1);
            break;
        case CONFIG_BOOL:
            CHECK(config_get_bool(cfg, &b, o->key) == 0);
            CHECK(config_get_int(cfg, &v, o->key) == -1);
            break;
        case CONFIG_DURATION:
            CHECK(config_get_duration_ms(cfg, &v, o->key) == 0);
            CHECK(v >= 0);
            if (!(o->min == 0 && o->max == 0))
                CHECK(v >= o->min && v <= o->max);
            break;
        case CONFIG_PATH:
            CHECK(config_get_string(cfg, &s, o->key) == 0 && s);
            CHECK(strlen(s) >= 1 && strlen(s) <= CONFIG_PATH_MAX);
            check_text(s);
            break;
        case CONFIG_ENUM: {
            size_t count = 0;
            while (o->choices[count])
                count++;
            CHECK(config_get_enum(cfg, &idx, o->key) == 0 && idx < count);
            CHECK(config_get_string(cfg, &s, o->key) == 0 && strcmp(s, o->choices[idx]) == 0);
            break;
        }
        case CONFIG_LIST:
            CHECK(config_get_list(cfg, &items, &n, o->key) == 0 && items);
            for (size_t k = 0; k < n; k++) {
                size_t len = strlen(items[k]);
                CHECK(len > 0);
                CHECK(!strchr(items[k], ','));
                CHECK(items[k][0] != ' ' && items[k][0] != '\t');
                CHECK(items[k][len - 1] != ' ' && items[k][len - 1] != '\t');
                check_text(items[k]);
            }
            CHECK(items[n] == NULL);
            break;
        }
    }

    /* The dump has one line per option, in schema order, and the line of
     * every set secret reads "<key> = <redacted>  # <source>". */
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    if (!f)
        return;
    CHECK(config_dump(cfg, f) == 0);
    fclose(f);
    const char *line = dump;
    size_t redacted = 0;
    for (size_t i = 0; i < schema.count; i++) {
        const char *nl = strchr(line, '\n');
        size_t key_len = strlen(opts[i].key);
        CHECK(nl != NULL);
        CHECK(strncmp(line, opts[i].key, key_len) == 0);
        bool set = config_get_source(cfg, opts[i].key) != CONFIG_SOURCE_UNSET;
        if ((opts[i].flags & CONFIG_SECRET) && set) {
            CHECK(strncmp(line + key_len, " = <redacted>  # ", 17) == 0);
            redacted++;
        }
        line = nl + 1;
    }
    CHECK(*line == '\0');
    CHECK(redacted == secrets_set);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t text_len = size;
    char *env_block = NULL;
    char **envp = NULL;
    config_errors errs;
    config *cfg = NULL;

    /* Split off the environment part. */
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 4 <= size; i++) {
        if (memcmp(data + i, "\n%%\n", 4) == 0) {
            sep = data + i;
            break;
        }
    }
    if (sep) {
        size_t env_len = size - (size_t)(sep - data) - 4, lines = 1;
        text_len = (size_t)(sep - data) + 1;
        env_block = malloc(env_len + 1);
        if (!env_block)
            return 0;
        memcpy(env_block, sep + 4, env_len);
        env_block[env_len] = '\0';
        for (size_t i = 0; i < env_len; i++)
            lines += env_block[i] == '\n';
        envp = calloc(lines + 1, sizeof *envp);
        if (!envp) {
            free(env_block);
            return 0;
        }
        size_t n = 0;
        for (char *p = env_block; p;) {
            char *nl = strchr(p, '\n');
            if (nl)
                *nl = '\0';
            envp[n++] = p; /* stops at an embedded NUL, as a real environ would */
            p = nl ? nl + 1 : NULL;
        }
        envp[n] = NULL;
    }

    config_errors_init(&errs);
    int rc = config_load_buffer(&cfg, &errs, &schema, "fuzz.conf", text, text_len, envp);
    if (rc == 0) {
        CHECK(cfg != NULL);
        CHECK(config_errors_count(&errs) == 0);
        check_config(cfg);
    } else {
        CHECK(rc == -1 && cfg == NULL);
        CHECK(config_errors_count(&errs) > 0);
        CHECK(errs.count <= CONFIG_ERRORS_MAX);
        for (size_t i = 0; i < errs.count; i++)
            CHECK(!strchr(config_errors_get(&errs, i), '\n'));
    }
    config_free(cfg);
    config_errors_dispose(&errs);
    free(envp);
    free(env_block);
    return 0;
}
