#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 128u          /* bytes of a schema key */
#define SHOWN_MAX 64u         /* bytes of a bad value echoed in a message */
#define SUGGEST_KEY_MAX 64u   /* longest key for which "did you mean" is computed */
#define ENV_PREFIX_LEN (sizeof CONFIG_ENV_PREFIX - 1)

typedef struct {
    config_source source;
    unsigned line;   /* CONFIG_SOURCE_FILE: line number */
    char *text;      /* STRING, PATH, ENUM: owned copy */
    char **items;    /* LIST: one owned block, NULL-terminated pointers then text */
    size_t n_items;
    int64_t num;     /* INT; DURATION in ms; BOOL 0/1; ENUM index */
} cfg_value;

struct config {
    const config_schema *schema;
    char *source_name; /* file name, for config_dump */
    cfg_value *values; /* one per schema option */
};

/* ---- error list ----------------------------------------------------------- */

void config_errors_init(config_errors *errs)
{
    memset(errs, 0, sizeof *errs);
}

void config_errors_dispose(config_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->count; i++)
        free(errs->messages[i]);
    free(errs->messages);
    memset(errs, 0, sizeof *errs);
}

size_t config_errors_count(const config_errors *errs)
{
    return errs->count + errs->dropped;
}

const char *config_errors_get(const config_errors *errs, size_t i)
{
    return i < errs->count ? errs->messages[i] : NULL;
}

int config_errors_print(const config_errors *errs, FILE *out)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(out, "%s\n", errs->messages[i]);
    if (errs->dropped > 0)
        fprintf(out, "... and %zu more problems\n", errs->dropped);
    return ferror(out) ? -1 : 0;
}

static bool errors_full(const config_errors *errs)
{
    return errs->count >= CONFIG_ERRORS_MAX;
}

__attribute__((format(printf, 2, 0)))
static void errors_addv(config_errors *errs, const char *fmt, va_list ap)
{
    char *msg = NULL;
    va_list ap2;
    int n;

    if (errors_full(errs))
        goto dropped;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        goto dropped;
    msg = malloc((size_t)n + 1);
    if (!msg)
        goto dropped;
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    if (errs->count == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        if (cap > CONFIG_ERRORS_MAX)
            cap = CONFIG_ERRORS_MAX;
        char **grown = realloc(errs->messages, cap * sizeof *grown);
        if (!grown)
            goto dropped;
        errs->messages = grown;
        errs->cap = cap;
    }
    errs->messages[errs->count++] = msg;
    return;
dropped:
    free(msg);
    errs->dropped++;
}

/* ---- text helpers ----------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower(*a) != ascii_lower(*b))
            return false;
    return *a == *b;
}

/* Offset of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF included), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

/* Checks that text has no NUL, is UTF-8 and has no control character but
 * TAB. Returns NULL when clean, else why (e.g. "invalid UTF-8 at column
 * 17", columns counted in bytes from 1) written into buf. */
#define WHY_BUF 64
static const char *text_problem(char buf[WHY_BUF], const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    const char *nul = memchr(text, '\0', len);
    size_t bad = utf8_invalid_at(s, len);
    if (nul && (size_t)(nul - text) < bad) {
        snprintf(buf, WHY_BUF, "NUL byte at column %zu", (size_t)(nul - text) + 1);
        return buf;
    }
    if (bad < len) {
        snprintf(buf, WHY_BUF, "invalid UTF-8 at column %zu", bad + 1);
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
            snprintf(buf, WHY_BUF, "control character 0x%02x at column %zu", s[i], i + 1);
            return buf;
        }
    }
    return NULL;
}

/* Writes text (at most SHOWN_MAX bytes of it, cut at a character boundary)
 * into buf as a double-quoted string with '"', '\' and TAB escaped, plus
 * "..." when cut. buf must hold 2 * SHOWN_MAX + 8 bytes. */
#define SHOWN_BUF (2 * SHOWN_MAX + 8)
static const char *quote_shown(char buf[SHOWN_BUF], const char *text, size_t len)
{
    size_t n = len, o = 0;
    if (n > SHOWN_MAX) {
        n = SHOWN_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
            n--;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = c;
        } else if (c == '\t') {
            buf[o++] = '\\';
            buf[o++] = 't';
        } else {
            buf[o++] = c;
        }
    }
    buf[o++] = '"';
    if (n < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* The value as a message shows it: <redacted> for secrets. */
static const char *shown_value(char buf[SHOWN_BUF], const config_option *opt, const char *text)
{
    if (opt->flags & CONFIG_SECRET)
        return "<redacted>";
    return quote_shown(buf, text, strlen(text));
}

/* ---- keys and environment names ----------------------------------------------- */

static bool key_valid(const char *key)
{
    size_t len, seg = 0;
    if (!key)
        return false;
    len = strlen(key);
    if (len == 0 || len > KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (c == '.') {
            if (seg == 0)
                return false;
            seg = 0;
        } else if ((c >= 'a' && c <= 'z') || is_digit(c) || c == '_') {
            seg++;
        } else {
            return false;
        }
    }
    return seg > 0;
}

static char env_char(char c)
{
    return c == '.' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Writes the environment variable name of key (a valid key) into buf. */
#define ENV_NAME_BUF (sizeof CONFIG_ENV_PREFIX + KEY_MAX)
static const char *env_name(char buf[ENV_NAME_BUF], const char *key)
{
    size_t o = ENV_PREFIX_LEN;
    memcpy(buf, CONFIG_ENV_PREFIX, ENV_PREFIX_LEN);
    for (; *key && o < ENV_NAME_BUF - 1; key++)
        buf[o++] = env_char(*key);
    buf[o] = '\0';
    return buf;
}

/* Whether name[0..name_len) is the environment variable of key. */
static bool env_name_is(const char *name, size_t name_len, const char *key)
{
    size_t key_len = strlen(key);
    if (name_len != ENV_PREFIX_LEN + key_len || memcmp(name, CONFIG_ENV_PREFIX, ENV_PREFIX_LEN) != 0)
        return false;
    for (size_t i = 0; i < key_len; i++)
        if (name[ENV_PREFIX_LEN + i] != env_char(key[i]))
            return false;
    return true;
}

static bool env_names_collide(const char *a, const char *b)
{
    size_t len = strlen(a);
    if (strlen(b) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (env_char(a[i]) != env_char(b[i]))
            return false;
    return true;
}

static const config_option *find_option(const config_schema *schema, size_t *index,
                                        const char *key, size_t key_len)
{
    for (size_t i = 0; i < schema->count; i++) {
        const char *k = schema->options[i].key;
        if (strlen(k) == key_len && memcmp(k, key, key_len) == 0) {
            if (index)
                *index = i;
            return &schema->options[i];
        }
    }
    return NULL;
}

/* Edit distance between a[0..a_len) and b, both at most SUGGEST_KEY_MAX
 * bytes (callers check). */
static size_t edit_distance(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t prev[SUGGEST_KEY_MAX + 1], cur[SUGGEST_KEY_MAX + 1];
    for (size_t j = 0; j <= b_len; j++)
        prev[j] = j;
    for (size_t i = 1; i <= a_len; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b_len; j++) {
            size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (b_len + 1) * sizeof prev[0]);
    }
    return prev[b_len];
}

/* The schema key closest to key (within 2 edits), or NULL. */
static const char *suggest_key(const config_schema *schema, const char *key, size_t key_len)
{
    const char *best = NULL;
    size_t best_d = 3;
    if (key_len > SUGGEST_KEY_MAX)
        return NULL;
    for (size_t i = 0; i < schema->count; i++) {
        const char *k = schema->options[i].key;
        size_t k_len = strlen(k);
        if (k_len > SUGGEST_KEY_MAX)
            continue;
        size_t d = edit_distance(key, key_len, k, k_len);
        if (d < best_d && d < key_len) {
            best_d = d;
            best = k;
        }
    }
    return best;
}

/* ---- values --------------------------------------------------------------------- */

static void value_clear(cfg_value *v)
{
    free(v->text);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static bool bounded(const config_option *opt)
{
    return !(opt->min == 0 && opt->max == 0);
}

static int64_t opt_min(const config_option *opt)
{
    if (bounded(opt))
        return opt->min;
    return opt->type == CONFIG_DURATION ? 0 : INT64_MIN;
}

static int64_t opt_max(const config_option *opt)
{
    return bounded(opt) ? opt->max : INT64_MAX;
}

/* Formats a duration with the largest unit that divides it. */
#define DURATION_BUF 32
static const char *format_duration(char buf[DURATION_BUF], int64_t ms)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, DURATION_BUF, "%" PRId64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, DURATION_BUF, "%" PRId64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, DURATION_BUF, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, DURATION_BUF, "%" PRId64 "ms", ms);
    return buf;
}

/* What a value of opt must look like, as "expected ...". */
#define EXPECTED_BUF 512
static const char *describe_expected(char buf[EXPECTED_BUF], const config_option *opt)
{
    char lo[DURATION_BUF], hi[DURATION_BUF];
    switch (opt->type) {
    case CONFIG_STRING:
        snprintf(buf, EXPECTED_BUF, "expected text");
        break;
    case CONFIG_INT:
        if (bounded(opt))
            snprintf(buf, EXPECTED_BUF, "expected an integer between %" PRId64 " and %" PRId64,
                     opt->min, opt->max);
        else
            snprintf(buf, EXPECTED_BUF, "expected an integer");
        break;
    case CONFIG_BOOL:
        snprintf(buf, EXPECTED_BUF, "expected a boolean (true/false, yes/no, on/off, 1/0)");
        break;
    case CONFIG_DURATION:
        if (bounded(opt))
            snprintf(buf, EXPECTED_BUF,
                     "expected a duration such as 250ms, 5s, 2m or 1h, between %s and %s",
                     format_duration(lo, opt->min), format_duration(hi, opt->max));
        else
            snprintf(buf, EXPECTED_BUF, "expected a duration such as 250ms, 5s, 2m or 1h");
        break;
    case CONFIG_PATH:
        snprintf(buf, EXPECTED_BUF, "expected a non-empty path of at most %u bytes",
                 CONFIG_PATH_MAX);
        break;
    case CONFIG_ENUM: {
        size_t o = (size_t)snprintf(buf, EXPECTED_BUF, "expected one of ");
        for (size_t i = 0; opt->choices && opt->choices[i]; i++) {
            const char *w = opt->choices[i];
            size_t w_len = strlen(w);
            if (o + w_len + 5 >= EXPECTED_BUF) {
                memcpy(buf + o, "...", 4);
                return buf;
            }
            if (i > 0)
                buf[o++] = '|';
            memcpy(buf + o, w, w_len);
            o += w_len;
        }
        buf[o] = '\0';
        break;
    }
    case CONFIG_LIST:
        snprintf(buf, EXPECTED_BUF, "expected a comma-separated list of non-empty items");
        break;
    default:
        snprintf(buf, EXPECTED_BUF, "invalid option type");
        break;
    }
    return buf;
}

static int parse_int(int64_t *out, const char *s)
{
    bool neg = false;
    uint64_t acc = 0, limit;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (!is_digit(*s))
        return -1;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (!is_digit(*s))
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (acc > (limit - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    if (!neg)
        *out = (int64_t)acc;
    else if (acc == (uint64_t)INT64_MAX + 1)
        *out = INT64_MIN;
    else
        *out = -(int64_t)acc;
    return 0;
}

static int parse_duration(int64_t *out, const char *s)
{
    uint64_t acc = 0, mult;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (acc > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    if (strcmp(s, "ms") == 0)
        mult = 1;
    else if (strcmp(s, "s") == 0)
        mult = 1000;
    else if (strcmp(s, "m") == 0)
        mult = 60000;
    else if (strcmp(s, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (acc > (uint64_t)INT64_MAX / mult)
        return -1;
    *out = (int64_t)(acc * mult);
    return 0;
}

static int parse_bool(int64_t *out, const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (ascii_ieq(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (ascii_ieq(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Splits s into v->items. Returns 0, -1 on an empty item, -2 on ENOMEM. */
static int parse_list(cfg_value *v, const char *s)
{
    size_t len = strlen(s), n = 1;
    char **block;
    char *text;

    if (len == 0) {
        block = calloc(1, sizeof *block);
        if (!block)
            return -2;
        v->items = block;
        v->n_items = 0;
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',')
            n++;
    block = malloc((n + 1) * sizeof *block + len + 1);
    if (!block)
        return -2;
    text = (char *)(block + n + 1);
    memcpy(text, s, len + 1);
    for (size_t i = 0; i < n; i++) {
        char *end = strchr(text, ',');
        char *item_end = end ? end : text + strlen(text);
        while (is_blank(*text))
            text++;
        while (item_end > text && is_blank(item_end[-1]))
            item_end--;
        if (item_end == text) {
            free(block);
            return -1;
        }
        *item_end = '\0';
        block[i] = text;
        text = end ? end + 1 : item_end;
    }
    block[n] = NULL;
    v->items = block;
    v->n_items = n;
    return 0;
}

/* Parses text (NUL-terminated, already checked by text_problem) as a
 * value of opt into v (cleared first). Returns 0, -1 when text is not a
 * valid value, -2 on ENOMEM. */
static int value_parse(cfg_value *v, const config_option *opt, const char *text)
{
    int64_t num = 0;
    int rc;

    memset(v, 0, sizeof *v);
    switch (opt->type) {
    case CONFIG_STRING:
        break;
    case CONFIG_INT:
        if (parse_int(&num, text) != 0 || num < opt_min(opt) || num > opt_max(opt))
            return -1;
        break;
    case CONFIG_BOOL:
        if (parse_bool(&num, text) != 0)
            return -1;
        break;
    case CONFIG_DURATION:
        if (parse_duration(&num, text) != 0 || num < opt_min(opt) || num > opt_max(opt))
            return -1;
        break;
    case CONFIG_PATH: {
        size_t len = strlen(text);
        if (len == 0 || len > CONFIG_PATH_MAX)
            return -1;
        break;
    }
    case CONFIG_ENUM: {
        size_t i = 0;
        for (; opt->choices && opt->choices[i]; i++)
            if (strcmp(opt->choices[i], text) == 0)
                break;
        if (!opt->choices || !opt->choices[i])
            return -1;
        num = (int64_t)i;
        break;
    }
    case CONFIG_LIST:
        rc = parse_list(v, text);
        return rc;
    default:
        return -1;
    }
    v->num = num;
    if (opt->type == CONFIG_STRING || opt->type == CONFIG_PATH || opt->type == CONFIG_ENUM) {
        v->text = strdup(text);
        if (!v->text)
            return -2;
    }
    return 0;
}

/* ---- loading --------------------------------------------------------------- */

typedef struct {
    const config_schema *schema;
    config_errors *errs;
    size_t problems;       /* found by this load */
    config *cfg;
    const char *name;      /* source name for messages */
    unsigned *file_line;   /* per option: first line setting it in the file, 0 = none */
    unsigned char *in_env; /* per option: set by the environment */
} loader;

__attribute__((format(printf, 2, 3)))
static void problem(loader *ld, const char *fmt, ...)
{
    va_list ap;
    ld->problems++;
    va_start(ap, fmt);
    errors_addv(ld->errs, fmt, ap);
    va_end(ap);
}

static void store(cfg_value *slot, cfg_value *nv, config_source source, unsigned line)
{
    value_clear(slot);
    *slot = *nv;
    slot->source = source;
    slot->line = line;
    memset(nv, 0, sizeof *nv);
}

/* Validates the schema itself; each mistake is a "schema: ..." problem. */
static void schema_check(loader *ld)
{
    const config_schema *schema = ld->schema;
    char expected[EXPECTED_BUF], shown[SHOWN_BUF];

    for (size_t i = 0; i < schema->count; i++) {
        const config_option *opt = &schema->options[i];
        if (!key_valid(opt->key)) {
            problem(ld, "schema: option %zu: invalid key", i);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const char *other = schema->options[j].key;
            if (key_valid(other) && env_names_collide(opt->key, other))
                problem(ld, "schema: keys %s and %s collide (same key or same environment variable)",
                        other, opt->key);
        }
        if ((unsigned)opt->type > (unsigned)CONFIG_LIST) {
            problem(ld, "schema: %s: invalid type", opt->key);
            continue;
        }
        if (opt->flags & ~(CONFIG_REQUIRED | CONFIG_SECRET))
            problem(ld, "schema: %s: unknown flags", opt->key);
        if ((opt->flags & CONFIG_REQUIRED) && opt->default_value)
            problem(ld, "schema: %s: a required option cannot have a default", opt->key);
        if ((opt->type == CONFIG_INT || opt->type == CONFIG_DURATION) && opt->min > opt->max)
            problem(ld, "schema: %s: min is above max", opt->key);
        if (opt->type == CONFIG_DURATION && opt->min < 0)
            problem(ld, "schema: %s: negative duration bound", opt->key);
        if (opt->type == CONFIG_ENUM) {
            if (!opt->choices || !opt->choices[0])
                problem(ld, "schema: %s: enum without choices", opt->key);
            for (size_t k = 0; opt->choices && opt->choices[k]; k++) {
                const char *w = opt->choices[k];
                char why[WHY_BUF];
                if (w[0] == '\0' || strchr(w, '|') || strchr(w, ' ') || text_problem(why, w, strlen(w)))
                    problem(ld, "schema: %s: invalid choice %zu", opt->key, k);
            }
        }
        if (opt->default_value) {
            cfg_value v;
            char why[WHY_BUF];
            int rc = text_problem(why, opt->default_value, strlen(opt->default_value))
                         ? -1
                         : value_parse(&v, opt, opt->default_value);
            if (rc == 0)
                value_clear(&v);
            else if (rc == -2)
                problem(ld, "out of memory");
            else
                problem(ld, "schema: %s: invalid default: %s, got %s", opt->key,
                        describe_expected(expected, opt), shown_value(shown, opt, opt->default_value));
        }
    }
}

static void apply_defaults(loader *ld)
{
    for (size_t i = 0; i < ld->schema->count; i++) {
        const config_option *opt = &ld->schema->options[i];
        cfg_value v;
        if (!opt->default_value)
            continue;
        int rc = value_parse(&v, opt, opt->default_value);
        if (rc == 0)
            store(&ld->cfg->values[i], &v, CONFIG_SOURCE_DEFAULT, 0);
        else if (rc == -2)
            problem(ld, "out of memory");
        else
            problem(ld, "schema: %s: invalid default", opt->key); /* schema_check said more */
    }
}

/* Parses one line (checked: bounded, UTF-8, no control characters).
 * scratch: CONFIG_LINE_MAX + 1 bytes for the unquoted value. */
static void parse_line(loader *ld, unsigned lineno, const char *line, size_t len, char *scratch)
{
    const char *end = line + len;
    const char *eq, *key_end, *v, *v_end;
    char shown[SHOWN_BUF], expected[EXPECTED_BUF];
    const config_option *opt;
    size_t idx = 0, o = 0;

    while (line < end && is_blank(*line))
        line++;
    while (end > line && is_blank(end[-1]))
        end--;
    if (line == end || *line == '#')
        return;

    eq = memchr(line, '=', (size_t)(end - line));
    if (!eq) {
        problem(ld, "%s:%u: expected key = value", ld->name, lineno);
        return;
    }
    key_end = eq;
    while (key_end > line && is_blank(key_end[-1]))
        key_end--;
    if (key_end == line) {
        problem(ld, "%s:%u: missing key before '='", ld->name, lineno);
        return;
    }
    opt = find_option(ld->schema, &idx, line, (size_t)(key_end - line));
    if (!opt) {
        const char *hint = errors_full(ld->errs) ? NULL
                                                 : suggest_key(ld->schema, line, (size_t)(key_end - line));
        problem(ld, "%s:%u: unknown key %s%s%s%s", ld->name, lineno,
                quote_shown(shown, line, (size_t)(key_end - line)),
                hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        return;
    }
    if (ld->file_line[idx] != 0) {
        problem(ld, "%s:%u: duplicate key %s (first set on line %u)", ld->name, lineno, opt->key,
                ld->file_line[idx]);
        return;
    }
    ld->file_line[idx] = lineno;

    v = eq + 1;
    while (v < end && is_blank(*v))
        v++;
    v_end = end;
    if (v < v_end && *v == '"') {
        const char *p = v + 1;
        for (;;) {
            if (p == v_end) {
                problem(ld, "%s:%u: %s: unterminated quoted value", ld->name, lineno, opt->key);
                return;
            }
            if (*p == '"')
                break;
            if (*p == '\\') {
                if (p + 1 == v_end || (p[1] != '"' && p[1] != '\\')) {
                    problem(ld, "%s:%u: %s: invalid escape in quoted value (only \\\" and \\\\)",
                            ld->name, lineno, opt->key);
                    return;
                }
                p++;
            }
            scratch[o++] = *p++;
        }
        if (p + 1 != v_end) {
            problem(ld, "%s:%u: %s: unexpected text after the closing quote", ld->name, lineno,
                    opt->key);
            return;
        }
    } else {
        o = (size_t)(v_end - v);
        memcpy(scratch, v, o);
    }
    scratch[o] = '\0';

    cfg_value nv;
    int rc = value_parse(&nv, opt, scratch);
    if (rc == 0)
        store(&ld->cfg->values[idx], &nv, CONFIG_SOURCE_FILE, lineno);
    else if (rc == -2)
        problem(ld, "out of memory");
    else
        problem(ld, "%s:%u: %s: %s, got %s", ld->name, lineno, opt->key,
                describe_expected(expected, opt), shown_value(shown, opt, scratch));
}

static void load_lines(loader *ld, const char *buf, size_t len)
{
    char *scratch = malloc(CONFIG_LINE_MAX + 1);
    size_t pos = 0;
    unsigned lineno = 0;

    if (!scratch) {
        problem(ld, "out of memory");
        return;
    }
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        char why[WHY_BUF];

        lineno++;
        pos += line_len + (nl ? 1 : 0);
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (line_len > CONFIG_LINE_MAX) {
            problem(ld, "%s:%u: line too long (%zu bytes, at most %u)", ld->name, lineno, line_len,
                    CONFIG_LINE_MAX);
            continue;
        }
        if (text_problem(why, line, line_len)) {
            problem(ld, "%s:%u: %s", ld->name, lineno, why);
            continue;
        }
        parse_line(ld, lineno, line, line_len, scratch);
    }
    free(scratch);
}

static void load_env(loader *ld, char *const *envp)
{
    char shown[SHOWN_BUF], expected[EXPECTED_BUF];

    for (char *const *e = envp; e && *e; e++) {
        const char *entry = *e;
        const char *eq, *value;
        char why[WHY_BUF];
        size_t idx = 0, name_len, value_len;
        const config_option *opt = NULL;

        if (strncmp(entry, CONFIG_ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        eq = strchr(entry, '=');
        if (!eq)
            continue;
        name_len = (size_t)(eq - entry);
        for (size_t i = 0; i < ld->schema->count; i++) {
            if (env_name_is(entry, name_len, ld->schema->options[i].key)) {
                opt = &ld->schema->options[i];
                idx = i;
                break;
            }
        }
        if (!opt)
            continue;
        int nl = (int)name_len; /* bounded by KEY_MAX */
        if (ld->in_env[idx]) {
            problem(ld, "env %.*s: set more than once", nl, entry);
            continue;
        }
        ld->in_env[idx] = 1;
        value = eq + 1;
        value_len = strlen(value);
        if (value_len > CONFIG_LINE_MAX) {
            problem(ld, "env %.*s: value too long (%zu bytes, at most %u)", nl, entry, value_len,
                    CONFIG_LINE_MAX);
            continue;
        }
        if (text_problem(why, value, value_len)) {
            problem(ld, "env %.*s: %s", nl, entry, why);
            continue;
        }
        cfg_value nv;
        int rc = value_parse(&nv, opt, value);
        if (rc == 0)
            store(&ld->cfg->values[idx], &nv, CONFIG_SOURCE_ENV, 0);
        else if (rc == -2)
            problem(ld, "out of memory");
        else
            problem(ld, "env %.*s: %s, got %s", nl, entry, describe_expected(expected, opt),
                    shown_value(shown, opt, value));
    }
}

static void check_required(loader *ld)
{
    for (size_t i = 0; i < ld->schema->count; i++) {
        const config_option *opt = &ld->schema->options[i];
        if ((opt->flags & CONFIG_REQUIRED) && ld->cfg->values[i].source == CONFIG_SOURCE_UNSET &&
            ld->file_line[i] == 0 && !ld->in_env[i])
            problem(ld, "missing required key %s", opt->key);
    }
}

/* Sets up ld: checks the schema, allocates the config and applies the
 * defaults. Returns 0, or -1 when loading cannot go on (bad schema, ENOMEM;
 * already recorded as problems). */
static int loader_begin(loader *ld, config_errors *errs, const config_schema *schema, const char *name)
{
    size_t n = schema ? schema->count : 0;

    memset(ld, 0, sizeof *ld);
    ld->schema = schema;
    ld->errs = errs;
    ld->name = name;
    if (!schema || (schema->count > 0 && !schema->options)) {
        problem(ld, "schema: no options table");
        return -1;
    }
    schema_check(ld);
    if (ld->problems > 0)
        return -1;
    ld->cfg = calloc(1, sizeof *ld->cfg);
    ld->file_line = calloc(n ? n : 1, sizeof *ld->file_line);
    ld->in_env = calloc(n ? n : 1, sizeof *ld->in_env);
    if (!ld->cfg || !ld->file_line || !ld->in_env)
        goto oom;
    ld->cfg->schema = schema;
    ld->cfg->values = calloc(n ? n : 1, sizeof *ld->cfg->values);
    ld->cfg->source_name = strdup(name);
    if (!ld->cfg->values || !ld->cfg->source_name)
        goto oom;
    apply_defaults(ld);
    return ld->problems > 0 ? -1 : 0;
oom:
    problem(ld, "out of memory");
    return -1;
}

/* Hands the config over when there was no problem; frees everything else. */
static int loader_end(loader *ld, config **out)
{
    int rc = -1;
    if (ld->problems == 0 && ld->cfg) {
        *out = ld->cfg;
        ld->cfg = NULL;
        rc = 0;
    }
    config_free(ld->cfg);
    free(ld->file_line);
    free(ld->in_env);
    memset(ld, 0, sizeof *ld);
    return rc;
}

int config_load_buffer(config **out, config_errors *errs, const config_schema *schema,
                       const char *source_name, const char *buf, size_t buf_len,
                       char *const *envp)
{
    loader ld;

    *out = NULL;
    if (loader_begin(&ld, errs, schema, source_name) != 0)
        goto out;
    if (buf_len > CONFIG_FILE_MAX) {
        problem(&ld, "%s: too large (%zu bytes, at most %u)", source_name, buf_len, CONFIG_FILE_MAX);
        load_env(&ld, envp);
        goto out;
    }
    if (buf_len > 0)
        load_lines(&ld, buf, buf_len);
    load_env(&ld, envp);
    check_required(&ld);
out:
    return loader_end(&ld, out);
}

/* Reads path into a new buffer of at most CONFIG_FILE_MAX bytes. Returns
 * 0, or -1 after recording the problem. */
static int read_config_file(loader *ld, char **buf, size_t *len, const char *path)
{
    char eb[128];
    struct stat st;
    size_t have = 0;
    int fd = -1, rc = -1;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        problem(ld, "%s: cannot open: %s", path, strerror_r(errno, eb, sizeof eb));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        problem(ld, "%s: cannot stat: %s", path, strerror_r(errno, eb, sizeof eb));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        problem(ld, "%s: not a regular file", path);
        goto out;
    }
    *buf = malloc(CONFIG_FILE_MAX + 1);
    if (!*buf) {
        problem(ld, "out of memory");
        goto out;
    }
    while (have <= CONFIG_FILE_MAX) {
        ssize_t n = read(fd, *buf + have, CONFIG_FILE_MAX + 1 - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            problem(ld, "%s: cannot read: %s", path, strerror_r(errno, eb, sizeof eb));
            goto out;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    if (have > CONFIG_FILE_MAX) {
        problem(ld, "%s: file too large (at most %u bytes)", path, CONFIG_FILE_MAX);
        goto out;
    }
    *len = have;
    rc = 0;
out:
    if (rc != 0) {
        free(*buf);
        *buf = NULL;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int config_load_file(config **out, config_errors *errs, const config_schema *schema,
                     const char *path, char *const *envp)
{
    loader ld;
    char *buf = NULL;
    size_t len = 0;

    *out = NULL;
    if (loader_begin(&ld, errs, schema, path) != 0)
        goto out;
    if (read_config_file(&ld, &buf, &len, path) != 0) {
        /* Still report environment problems; skip "missing required key",
         * which would only repeat that the file is unusable. */
        load_env(&ld, envp);
        goto out;
    }
    load_lines(&ld, buf, len);
    load_env(&ld, envp);
    check_required(&ld);
out:
    free(buf);
    return loader_end(&ld, out);
}

void config_free(config *cfg)
{
    if (!cfg)
        return;
    if (cfg->values) {
        for (size_t i = 0; i < cfg->schema->count; i++)
            value_clear(&cfg->values[i]);
        free(cfg->values);
    }
    free(cfg->source_name);
    free(cfg);
}

/* ---- getters --------------------------------------------------------------- */

static const cfg_value *lookup(const config *cfg, const config_option **opt, const char *key)
{
    size_t idx;
    if (!key)
        return NULL;
    *opt = find_option(cfg->schema, &idx, key, strlen(key));
    if (!*opt || cfg->values[idx].source == CONFIG_SOURCE_UNSET)
        return NULL;
    return &cfg->values[idx];
}

int config_get_string(const config *cfg, const char **out, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || (opt->type != CONFIG_STRING && opt->type != CONFIG_PATH && opt->type != CONFIG_ENUM))
        return -1;
    *out = v->text;
    return 0;
}

int config_get_int(const config *cfg, int64_t *out, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || opt->type != CONFIG_INT)
        return -1;
    *out = v->num;
    return 0;
}

int config_get_bool(const config *cfg, bool *out, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || opt->type != CONFIG_BOOL)
        return -1;
    *out = v->num != 0;
    return 0;
}

int config_get_duration_ms(const config *cfg, int64_t *out, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || opt->type != CONFIG_DURATION)
        return -1;
    *out = v->num;
    return 0;
}

int config_get_enum(const config *cfg, size_t *out, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || opt->type != CONFIG_ENUM)
        return -1;
    *out = (size_t)v->num;
    return 0;
}

int config_get_list(const config *cfg, const char *const **items, size_t *count, const char *key)
{
    const config_option *opt = NULL;
    const cfg_value *v = lookup(cfg, &opt, key);
    if (!v || opt->type != CONFIG_LIST)
        return -1;
    *items = (const char *const *)v->items;
    *count = v->n_items;
    return 0;
}

config_source config_get_source(const config *cfg, const char *key)
{
    size_t idx;
    if (!key || !find_option(cfg->schema, &idx, key, strlen(key)))
        return CONFIG_SOURCE_UNSET;
    return cfg->values[idx].source;
}

/* ---- printing --------------------------------------------------------------- */

/* Writes s double-quoted with '"' and '\' escaped (the file syntax). */
static void put_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_value(FILE *out, const config_option *opt, const cfg_value *v)
{
    char dur[DURATION_BUF];
    if (opt->flags & CONFIG_SECRET) {
        fputs("<redacted>", out);
        return;
    }
    switch (opt->type) {
    case CONFIG_INT:
        fprintf(out, "%" PRId64, v->num);
        break;
    case CONFIG_BOOL:
        fputs(v->num ? "true" : "false", out);
        break;
    case CONFIG_DURATION:
        fputs(format_duration(dur, v->num), out);
        break;
    case CONFIG_LIST:
        fputc('"', out);
        for (size_t i = 0; i < v->n_items; i++) {
            if (i > 0)
                fputc(',', out);
            for (const char *s = v->items[i]; *s; s++) {
                if (*s == '"' || *s == '\\')
                    fputc('\\', out);
                fputc(*s, out);
            }
        }
        fputc('"', out);
        break;
    default:
        put_quoted(out, v->text ? v->text : "");
        break;
    }
}

int config_dump(const config *cfg, FILE *out)
{
    char env[ENV_NAME_BUF];
    for (size_t i = 0; i < cfg->schema->count; i++) {
        const config_option *opt = &cfg->schema->options[i];
        const cfg_value *v = &cfg->values[i];
        if (v->source == CONFIG_SOURCE_UNSET) {
            fprintf(out, "%s  # unset\n", opt->key);
            continue;
        }
        fprintf(out, "%s = ", opt->key);
        put_value(out, opt, v);
        switch (v->source) {
        case CONFIG_SOURCE_DEFAULT:
            fputs("  # default\n", out);
            break;
        case CONFIG_SOURCE_FILE:
            fprintf(out, "  # file %s:%u\n", cfg->source_name, v->line);
            break;
        default:
            fprintf(out, "  # env %s\n", env_name(env, opt->key));
            break;
        }
    }
    return ferror(out) ? -1 : 0;
}

static const char *type_name(config_type type)
{
    switch (type) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_DURATION:
        return "duration";
    case CONFIG_PATH:
        return "path";
    case CONFIG_ENUM:
        return "enum";
    case CONFIG_LIST:
        return "list";
    }
    return "?";
}

int config_print_help(const config_schema *schema, FILE *out)
{
    char env[ENV_NAME_BUF], lo[DURATION_BUF], hi[DURATION_BUF];
    for (size_t i = 0; i < schema->count; i++) {
        const config_option *opt = &schema->options[i];
        if (!key_valid(opt->key))
            return -1;
        fprintf(out, "%s (%s", opt->key, type_name(opt->type));
        if (opt->type == CONFIG_INT && bounded(opt))
            fprintf(out, " %" PRId64 "..%" PRId64, opt->min, opt->max);
        if (opt->type == CONFIG_DURATION && bounded(opt))
            fprintf(out, " %s..%s", format_duration(lo, opt->min), format_duration(hi, opt->max));
        if (opt->type == CONFIG_ENUM) {
            fputs(": ", out);
            for (size_t k = 0; opt->choices && opt->choices[k]; k++)
                fprintf(out, "%s%s", k ? "|" : "", opt->choices[k]);
        }
        if (opt->flags & CONFIG_REQUIRED)
            fputs(", required", out);
        if (opt->flags & CONFIG_SECRET)
            fputs(", secret", out);
        if (opt->default_value) {
            fputs(", default ", out);
            if (opt->flags & CONFIG_SECRET)
                fputs("<redacted>", out);
            else
                put_quoted(out, opt->default_value);
        }
        fprintf(out, ")\n    env %s\n", env_name(env, opt->key));
        if (opt->description)
            fprintf(out, "    %s\n", opt->description);
    }
    return ferror(out) ? -1 : 0;
}

config *config_load_for_program(const char *prog, const config_schema *schema, const char *path,
                                char *const *envp, char *const *extra_env)
{
    config *cfg = NULL;
    config_errors errs;
    char **merged = NULL;
    size_t n_env = 0, n_extra = 0, m = 0;
    config_errors_init(&errs);

    while (envp && envp[n_env])
        n_env++;
    while (extra_env && extra_env[n_extra])
        n_extra++;
    merged = calloc(n_env + n_extra + 1, sizeof *merged);
    if (!merged) {
        fprintf(stderr, "%s: out of memory loading the configuration\n", prog);
        goto out;
    }
    /* Flags replace the same variable of the process environment: the
     * loader refuses a variable given twice. */
    for (size_t i = 0; i < n_env; i++) {
        const char *eq = strchr(envp[i], '=');
        size_t name_len = eq ? (size_t)(eq - envp[i]) : strlen(envp[i]);
        int replaced = 0;
        for (size_t j = 0; j < n_extra; j++)
            if (strncmp(extra_env[j], envp[i], name_len) == 0 && extra_env[j][name_len] == '=')
                replaced = 1;
        if (!replaced)
            merged[m++] = envp[i];
    }
    if (n_extra)
        memcpy(merged + m, extra_env, n_extra * sizeof *merged);

    int rc = path ? config_load_file(&cfg, &errs, schema, path, merged)
                  : config_load_buffer(&cfg, &errs, schema, "(no config file)", NULL, 0, merged);
    if (rc != 0) {
        fprintf(stderr, "%s: the configuration has %zu problem(s):\n", prog,
                config_errors_count(&errs));
        if (config_errors_print(&errs, stderr) != 0)
            fprintf(stderr, "%s: (could not print every problem)\n", prog);
        cfg = NULL;
    }
out:
    free(merged);
    config_errors_dispose(&errs);
    return cfg;
}
