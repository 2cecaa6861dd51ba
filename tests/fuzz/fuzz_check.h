/* CHECK for libFuzzer targets: a property that must hold, checked whatever
 * NDEBUG says; on failure it names the line and aborts so libFuzzer keeps
 * the input as a reproducer. Also declares the libFuzzer entry point. */
#ifndef COFFER_FUZZ_CHECK_H
#define COFFER_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                  \
    do {                                                                          \
        if (!(x)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#endif
