/* fuzz: what every libFuzzer harness in tests/fuzz/ shares.
 *
 * Each harness defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize) and abort()s when a property it checks is violated,
 * so a crash report is the finding. The same harness links either with
 * libFuzzer (clang, -fsanitize=fuzzer: billow-fuzz-<name>) or with
 * replay_main.c (any compiler: billow-fuzz-replay-<name>), which feeds it the
 * committed corpus so the ordinary sanitizer build replays every seed.
 */
#ifndef BILLOW_FUZZ_H
#define BILLOW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Called once per input; returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Called once before the first input; may edit the command line. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message naming the violated property: the fuzzer reports the
 * abort as a crash and keeps the input that caused it. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string in a buffer of exactly size + 1 bytes,
 * so AddressSanitizer catches a read past its end. An embedded NUL simply
 * ends the string early, as it would for a C caller. Caller frees. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = mem_alloc(size + 1);
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
