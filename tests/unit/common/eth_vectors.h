/* Helpers shared by test_keccak.c, test_rlp.c and test_abi.c for reading
 * the line-oriented vector files that tests/vectors/gen_eth_vectors.sh
 * writes: one vector per line, fields separated by single spaces, lines
 * starting with '#' are comments, "-" stands for an empty field. */
#ifndef COFFER_TEST_ETH_VECTORS_H
#define COFFER_TEST_ETH_VECTORS_H

#include "hex.h"
#include "test_support.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VEC_MAX_FIELDS 24

typedef struct {
    char *text;    /* whole file, split in place */
    char *next;    /* start of the next line */
    size_t lineno; /* line number of the current line */
    char *field[VEC_MAX_FIELDS];
    size_t nfield;
} vec_file;

/* Opens tests/vectors/<name>; returns 0 or -1 (the test has then failed). */
static inline int vec_open(vec_file *v, const char *name)
{
    size_t len;
    memset(v, 0, sizeof *v);
    v->text = test_read_file(test_vector_path(name), &len);
    if (!v->text)
        return -1;
    v->next = v->text;
    return 0;
}

static inline void vec_close(vec_file *v)
{
    free(v->text);
    v->text = NULL;
}

/* Reads the next non-comment line into v->field; returns 0 at the end. */
static inline int vec_next(vec_file *v)
{
    while (v->next && *v->next) {
        char *line = v->next;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            v->next = nl + 1;
        } else {
            v->next = NULL;
        }
        v->lineno++;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        v->nfield = 0;
        char *p = line;
        while (*p && v->nfield < VEC_MAX_FIELDS) {
            v->field[v->nfield++] = p;
            char *sp = strchr(p, ' ');
            if (!sp)
                break;
            *sp = '\0';
            p = sp + 1;
        }
        return 1;
    }
    return 0;
}

/* Decodes a hex field ("-" = empty) into a malloc'd buffer (never NULL on
 * success, even when empty). Returns NULL when the text is not hex. */
static inline uint8_t *vec_hex(const char *text, size_t *len)
{
    size_t n = strlen(text);
    uint8_t *out;
    *len = 0;
    if (strcmp(text, "-") == 0)
        n = 0;
    out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    if (n > 0 && hex_decode(out, n / 2 + 1, len, text, n) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Reports a failing vector with its file line; cond is evaluated once. */
#define VEC_CHECK(v, cond)                                                           \
    do {                                                                             \
        int vec_ok_ = (cond) ? 1 : 0;                                                \
        if (!vec_ok_)                                                                \
            fprintf(stderr, "\n  vector line %zu (%s): %s failed\n", (v)->lineno,    \
                    (v)->field[0], #cond);                                           \
        CU_ASSERT(vec_ok_);                                                          \
    } while (0)

#endif
