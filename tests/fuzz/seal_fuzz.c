/* seal_fuzz: seal_decrypt on arbitrary text, and the seal round trip.
 *
 * Sealed text comes back from the database, where any bug elsewhere (or a
 * hand-edited row) may have left anything, so opening must survive any
 * text. The input, as a string, is opened under a fixed key and context:
 * the result is 0 or BILLOW_EPARAM_INVALID; on 0 the plaintext is at most
 * SEAL_PLAIN_MAX bytes, NUL-terminated at the length returned, and opens
 * under that key only with that context, nothing else (a value sealed for
 * one purpose must not open as another). The committed seeds are real seals
 * under this key and context (key bytes 00 01 .. 1f, context
 * "totp_secret"), so the fuzzer starts from text that opens and mutates it
 * into near-misses.
 *
 * The input's bytes are also sealed as a plaintext (when they fit
 * SEAL_PLAIN_MAX; a larger one must be refused): opening that seal gives
 * the same bytes back, and opening it under another context or another key
 * fails. Finally the input, as a string, is used as the context of a seal,
 * so contexts with odd bytes are bound in and checked too.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "seal.h"

/* The context the committed seeds were sealed with, and one that differs. */
#define CONTEXT       "totp_secret"
#define OTHER_CONTEXT "email_token"
/* Sealed text starts with its version. */
#define SEAL_PREFIX "v1."

static seal_key_t key;
static seal_key_t other_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < SEAL_KEY_BYTES; i++) {
        key.key[i] = (unsigned char)i;
        other_key.key[i] = (unsigned char)(i ^ 0x80);
    }
    return 0;
}

/* Opens sealed under k and context: the return value is a documented one,
 * and a success gives a plaintext that is terminated at the length stated.
 * Returns the plaintext (free()) and its length, or NULL. */
static char *open_checked(const seal_key_t *k, const char *context, const char *sealed, size_t *len)
{
    char *plain = NULL;
    *len = (size_t)-1;
    int rc = seal_decrypt(k, context, sealed, &plain, len);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "seal_decrypt returned %d", rc);
    if (rc != 0)
        return NULL;
    FUZZ_CHECK(plain != NULL, "seal_decrypt succeeded without a plaintext");
    FUZZ_CHECK(*len <= SEAL_PLAIN_MAX, "seal_decrypt opened %zu bytes, more than the %d sealed",
               *len, SEAL_PLAIN_MAX);
    /* AddressSanitizer reports this read if the buffer is shorter than len + 1. */
    FUZZ_CHECK(plain[*len] == '\0', "the plaintext of %zu bytes is not NUL-terminated there", *len);
    return plain;
}

/* Checks that sealed does not open under context with k. */
static void refused(const seal_key_t *k, const char *context, const char *sealed, const char *why)
{
    size_t len;
    char *plain = open_checked(k, context, sealed, &len);
    FUZZ_CHECK(plain == NULL, "a seal opened %s: %s", why, sealed);
}

/* The input as sealed text. */
static void open_input(const char *text)
{
    size_t len;
    char *plain = open_checked(&key, CONTEXT, text, &len);
    if (plain == NULL)
        return;
    FUZZ_CHECK(strncmp(text, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0,
               "text without the version prefix opened: %s", text);
    refused(&key, OTHER_CONTEXT, text, "under another context");
    refused(&other_key, CONTEXT, text, "under another key");
    free(plain);
}

/* Seals plain (len bytes) under context, then checks it opens to the same
 * bytes under that context only. */
static void round_trip(const char *context, const void *plain, size_t len)
{
    char *sealed = seal_encrypt(&key, context, plain, len);
    if (len > SEAL_PLAIN_MAX) {
        FUZZ_CHECK(sealed == NULL, "seal_encrypt sealed %zu bytes, over SEAL_PLAIN_MAX", len);
        return;
    }
    FUZZ_CHECK(sealed != NULL, "seal_encrypt refused %zu bytes", len);
    FUZZ_CHECK(strncmp(sealed, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0,
               "sealed text without the version prefix: %s", sealed);

    size_t out_len;
    char *out = open_checked(&key, context, sealed, &out_len);
    FUZZ_CHECK(out != NULL, "a fresh seal of %zu bytes did not open: %s", len, sealed);
    FUZZ_CHECK(out_len == len, "sealed %zu bytes, opened %zu", len, out_len);
    FUZZ_CHECK(len == 0 || memcmp(out, plain, len) == 0, "the opened bytes differ from the sealed");
    free(out);

    /* An empty context string is the same context as NULL, which is a
     * different one from any non-empty string. */
    const char *other = strcmp(context, OTHER_CONTEXT) == 0 ? CONTEXT : OTHER_CONTEXT;
    refused(&key, other, sealed, "under another context");
    refused(&other_key, context, sealed, "under another key");
    free(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    open_input(text);
    round_trip(CONTEXT, data, size);
    round_trip(text, "", 0);
    free(text);
    return 0;
}
