/* hex_decode over arbitrary text: accept exactly what a reference rule
 * accepts, and round-trip whatever it accepts. */
#include "fuzz_check.h"
#include "hex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int fuzz_hex_reference_ok(const uint8_t *d, size_t n, size_t cap)
{
    size_t start = (n >= 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X')) ? 2 : 0;
    if ((n - start) % 2 != 0 || (n - start) / 2 > cap)
        return 0;
    for (size_t i = start; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", d[i]) || d[i] == '\0')
            return 0;
    return 1;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[512];
    char text[2 * sizeof out + 3];
    size_t got = 12345;
    size_t cap = size % 2 ? sizeof out : 16;   /* exercise both limits */
    int rc = hex_decode(out, cap, &got, (const char *)data, size);
    CHECK((rc == 0) == fuzz_hex_reference_ok(data, size, cap));
    if (rc != 0) {
        CHECK(got == 0);
        return 0;
    }
    hex_encode(text, out, got);
    size_t start = (size >= 2 && data[0] == '0' && (data[1] == 'x' || data[1] == 'X')) ? 2 : 0;
    CHECK(strlen(text) == size - start);
    for (size_t i = 0; i < got * 2; i++) {
        char c = (char)data[start + i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        CHECK(text[i] == c);
    }
    return 0;
}
