/* validate_fuzz: every validator on arbitrary client text and JSON.
 *
 * The input, as a string, goes through validate_email, validate_phone,
 * validate_text, validate_slug and validate_utf8_printable; parsed as JSON
 * (when it parses), through validate_metadata and validate_known_keys.
 * Checked: each validator returns 0 or a BILLOW_E* code equal to the one it
 * put in the error; the error's param and message are valid UTF-8 (they go
 * into a JSON error response, and jansson refuses anything else); and what a
 * validator accepts has the shape its header promises, checked here by
 * independent code: validate_utf8_printable against jansson's own UTF-8
 * check, the others against their documented rules.
 */
#include <jansson.h>
#include <stdbool.h>

#include "fuzz.h"
#include "validate.h"

/* A limit for validate_text below the input sizes the fuzzer makes, so both
 * sides of it are reached. */
#define TEXT_MAX 32

static const char *const known[] = {"name", "email", "phone", "metadata", "description", NULL};

/* True when jansson accepts s as UTF-8 text. */
static bool jansson_utf8(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

/* Checks the error a validator returned rc with. */
static void check_error(const char *what, int rc, const validate_error_t *err)
{
    if (rc == 0)
        return;
    FUZZ_CHECK(rc == BILLOW_EPARAM_INVALID || rc == BILLOW_EPARAM_MISSING ||
                   rc == BILLOW_EPARAM_UNKNOWN,
               "%s returned %d", what, rc);
    FUZZ_CHECK(err->code == rc, "%s returned %d but its error says %d", what, rc, err->code);
    FUZZ_CHECK(memchr(err->param, '\0', sizeof err->param) != NULL, "%s: param not terminated",
               what);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL,
               "%s: message not terminated", what);
    FUZZ_CHECK(jansson_utf8(err->param, strlen(err->param)), "%s: param is not UTF-8", what);
    FUZZ_CHECK(jansson_utf8(err->message, strlen(err->message)), "%s: message is not UTF-8", what);
    FUZZ_CHECK(err->message[0] != '\0', "%s: empty message", what);
}

/* Code points in valid UTF-8 text. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

static void check_strings(const char *s, size_t len)
{
    validate_error_t err;
    int rc;

    bool printable = validate_utf8_printable(s, len);
    FUZZ_CHECK(printable == (jansson_utf8(s, len) && !has_control(s, len)),
               "validate_utf8_printable (%d) disagrees with jansson", printable);

    memset(&err, 0, sizeof err);
    rc = validate_email("email", s, &err);
    check_error("validate_email", rc, &err);
    if (rc == 0) {
        const char *at = strchr(s, '@');
        FUZZ_CHECK(len >= 1 && len <= VALIDATE_EMAIL_MAX, "accepted email of %zu bytes", len);
        FUZZ_CHECK(at != NULL && at != s && strchr(at + 1, '@') == NULL,
                   "accepted email without exactly one \"@\" after a local part");
        FUZZ_CHECK(strchr(at + 1, '.') != NULL, "accepted email without a dotted domain");
        FUZZ_CHECK(strchr(s, ' ') == NULL && validate_utf8_printable(s, len),
                   "accepted email with spaces, controls or bad UTF-8");
    }

    memset(&err, 0, sizeof err);
    rc = validate_phone("phone", s, &err);
    check_error("validate_phone", rc, &err);
    if (rc == 0) {
        FUZZ_CHECK(s[0] == '+' && s[1] >= '1' && s[1] <= '9', "accepted phone not \"+[1-9]\"");
        FUZZ_CHECK(len >= 9 && len <= 16 && strspn(s + 1, "0123456789") == len - 1,
                   "accepted phone that is not 8 to 15 digits");
    }

    memset(&err, 0, sizeof err);
    rc = validate_text("name", s, TEXT_MAX, &err);
    check_error("validate_text", rc, &err);
    FUZZ_CHECK((rc == 0) == (len >= 1 && len <= TEXT_MAX && validate_utf8_printable(s, len)),
               "validate_text (%d) disagrees with its documented rule", rc);

    memset(&err, 0, sizeof err);
    rc = validate_slug("slug", s, &err);
    check_error("validate_slug", rc, &err);
    if (rc == 0) {
        FUZZ_CHECK(len >= 3 && len <= VALIDATE_SLUG_MAX, "accepted slug of %zu bytes", len);
        FUZZ_CHECK(s[0] >= 'a' && s[0] <= 'z' && s[len - 1] != '-',
                   "accepted slug with a bad first or last character");
        FUZZ_CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == len,
                   "accepted slug with a character outside [a-z0-9-]");
    }
}

static void check_json(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (root == NULL)
        return;
    validate_error_t err;
    int rc;
    const char *key;
    json_t *value;

    memset(&err, 0, sizeof err);
    rc = validate_metadata("metadata", root, &err);
    check_error("validate_metadata", rc, &err);
    if (rc == 0) {
        FUZZ_CHECK(json_is_object(root) && json_object_size(root) <= VALIDATE_METADATA_MAX_KEYS,
                   "accepted metadata that is not an object of at most %d keys",
                   VALIDATE_METADATA_MAX_KEYS);
        json_object_foreach(root, key, value)
        {
            FUZZ_CHECK(json_is_string(value), "accepted metadata value that is not a string");
            const char *text = json_string_value(value);
            size_t klen = strlen(key), vlen = json_string_length(value);
            FUZZ_CHECK(klen > 0 && validate_utf8_printable(key, klen) &&
                           utf8_chars(key, klen) <= VALIDATE_METADATA_KEY_MAX,
                       "accepted an empty or long metadata key, or one with controls");
            FUZZ_CHECK(validate_utf8_printable(text, vlen) &&
                           utf8_chars(text, vlen) <= VALIDATE_METADATA_VALUE_MAX,
                       "accepted a long metadata value, or one with controls");
        }
    }

    memset(&err, 0, sizeof err);
    rc = validate_known_keys(root, known, &err);
    check_error("validate_known_keys", rc, &err);
    if (rc == 0) {
        FUZZ_CHECK(json_is_object(root), "validate_known_keys accepted a non-object");
        json_object_foreach(root, key, value)
        {
            bool found = false;
            for (size_t i = 0; known[i] != NULL; i++)
                found = found || strcmp(known[i], key) == 0;
            FUZZ_CHECK(found, "validate_known_keys accepted the unknown key \"%s\"", key);
        }
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* With its length, the whole input, embedded NULs included. */
    FUZZ_CHECK(
        validate_utf8_printable((const char *)data, size) ==
            (jansson_utf8((const char *)data, size) && !has_control((const char *)data, size)),
        "validate_utf8_printable disagrees with jansson on the raw input");
    char *s = fuzz_cstring(data, size);
    check_strings(s, strlen(s));
    free(s);
    check_json(data, size);
    return 0;
}
