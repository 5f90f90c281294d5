/* validate: field validators shared by the front and the workers.
 *
 * Design: validators check bytes, not meaning: an email address is checked
 * for shape (one "@", a dotted domain, nothing that breaks a header or a
 * log line), not for deliverability, which only sending mail can tell. Every
 * refusal names the parameter and says what would be accepted, because the
 * message goes back to a developer reading an error response.
 */
#include "validate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"

/* Longest local part of an address (RFC 5321 section 4.5.3.1.1); longer ones
 * are refused by mail servers, so accepting them would only fail later. */
#define EMAIL_LOCAL_MAX 64
/* E.164 numbers have at most 15 digits; fewer than 8 is no real subscriber
 * number. */
#define PHONE_DIGITS_MIN 8
#define PHONE_DIGITS_MAX 15
/* Shortest slug: shorter ones are too easy to squat and too easy to confuse. */
#define SLUG_MIN 3

/* Bytes in the valid UTF-8 sequence of a character (not ASCII) starting at
 * p, with left bytes available, or 0 when none starts there. Overlong forms
 * (e.g. C0 80 for NUL), surrogates and code points past U+10FFFF are not
 * valid. *cut is set when p could start a valid sequence but left is too
 * short for it. */
static size_t utf8_sequence(const unsigned char *p, size_t left, bool *cut)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp, min;
    *cut = false;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (k == left) {
            *cut = true;
            return 0;
        }
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Cuts a UTF-8 sequence that snprintf truncation left incomplete at the end
 * of buf, so the text can still become a JSON string in the error response. */
static void drop_partial_utf8(char *buf)
{
    size_t len = strlen(buf);
    size_t lead = len;
    /* Walk back over at most three continuation bytes to the lead byte. */
    while (lead > 0 && len - lead < 4 && ((unsigned char)buf[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead == 0 || ((unsigned char)buf[lead - 1] & 0x80) == 0)
        return;
    bool cut;
    (void)utf8_sequence((const unsigned char *)buf + lead - 1, len - (lead - 1), &cut);
    if (cut)
        buf[lead - 1] = '\0';
}

/* Characters (code points) in valid UTF-8: the bytes that are not
 * continuation bytes. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

int validate_fail(validate_error_t *err, int code, const char *param, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param != NULL ? param : "");
    drop_partial_utf8(err->param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    drop_partial_utf8(err->message);
    return code;
}

bool validate_utf8_printable(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    bool cut;
    while (i < len) {
        if (p[i] < 0x80) {
            if (p[i] < 0x20 || p[i] == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t n = utf8_sequence(p + i, len - i, &cut);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* U+FFFD REPLACEMENT CHARACTER. */
static const char replacement[] = "\xef\xbf\xbd";

char *validate_utf8_repair(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    bool cut;
    size_t i = 0;
    while (i < len) {
        size_t n = p[i] < 0x80 ? 1 : utf8_sequence(p + i, len - i, &cut);
        if (n == 0)
            break;
        i += n;
    }
    if (i == len)
        return NULL;
    /* At worst every byte from i on becomes the 3-byte replacement. */
    char *out = mem_alloc(i + 3 * (len - i) + 1);
    memcpy(out, s, i);
    size_t o = i;
    while (i < len) {
        size_t n = p[i] < 0x80 ? 1 : utf8_sequence(p + i, len - i, &cut);
        if (n > 0) {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        } else if (cut) {
            break; /* What a truncating snprintf left of the last character. */
        } else {
            memcpy(out + o, replacement, 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

int validate_email(const char *param, const char *s, validate_error_t *err)
{
    if (s == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    size_t len = strlen(s);
    if (len == 0 || len > VALIDATE_EMAIL_MAX)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be an email address of 1 to %d characters.", param,
                             VALIDATE_EMAIL_MAX);
    /* Spaces and controls are what turn an address into a header injection
     * or a broken CSV cell; non-ASCII is allowed (RFC 6531) if valid UTF-8. */
    if (strchr(s, ' ') != NULL || !validate_utf8_printable(s, len))
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must not contain spaces or control characters.", param);
    const char *at = strchr(s, '@');
    if (at == NULL || strchr(at + 1, '@') != NULL)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must contain exactly one \"@\".", param);
    size_t local_len = (size_t)(at - s);
    if (local_len == 0 || local_len > EMAIL_LOCAL_MAX)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must have 1 to %d characters before the \"@\".", param,
                             EMAIL_LOCAL_MAX);
    const char *domain = at + 1;
    size_t dlen = strlen(domain);
    if (dlen == 0 || strchr(domain, '.') == NULL || domain[0] == '.' || domain[dlen - 1] == '.' ||
        strstr(domain, "..") != NULL)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must have a domain with a dot after the \"@\", such as "
                             "example.com.",
                             param);
    return 0;
}

int validate_phone(const char *param, const char *s, validate_error_t *err)
{
    if (s == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    size_t digits = 0;
    bool ok = s[0] == '+' && s[1] >= '1' && s[1] <= '9';
    for (const char *p = s + 1; ok && *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            ok = false;
        digits++;
    }
    if (!ok || digits < PHONE_DIGITS_MIN || digits > PHONE_DIGITS_MAX)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be an E.164 number: \"+\" then %d to %d digits, the first "
                             "not 0, such as +14155550123.",
                             param, PHONE_DIGITS_MIN, PHONE_DIGITS_MAX);
    return 0;
}

int validate_text(const char *param, const char *s, size_t max, validate_error_t *err)
{
    if (s == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param, "%s must be 1 to %zu bytes long.",
                             param, max);
    if (!validate_utf8_printable(s, len))
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be valid UTF-8 without control characters.", param);
    return 0;
}

int validate_slug(const char *param, const char *s, validate_error_t *err)
{
    if (s == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    size_t len = strlen(s);
    bool ok = len >= SLUG_MIN && len <= VALIDATE_SLUG_MAX && s[0] >= 'a' && s[0] <= 'z' &&
              s[len - 1] != '-';
    for (size_t i = 0; ok && i < len; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    }
    if (!ok)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be %d to %d characters of a-z, 0-9 and \"-\", starting "
                             "with a letter and not ending in \"-\".",
                             param, SLUG_MIN, VALIDATE_SLUG_MAX);
    return 0;
}

int validate_metadata(const char *param, const json_t *obj, validate_error_t *err)
{
    if (obj == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    if (!json_is_object(obj))
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be an object of string keys and string values.", param);
    if (json_object_size(obj) > VALIDATE_METADATA_MAX_KEYS)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param, "%s may have at most %d keys.",
                             param, VALIDATE_METADATA_MAX_KEYS);
    const char *key;
    const json_t *value;
    /* json_object_foreach wants a non-const object; iteration does not modify it. */
    json_t *o = (json_t *)obj;
    json_object_foreach(o, key, value)
    {
        char where[sizeof err->param];
        size_t klen = strlen(key);
        snprintf(where, sizeof where, "%s[%s]", param, key);
        if (klen == 0 || !validate_utf8_printable(key, klen) ||
            utf8_chars(key, klen) > VALIDATE_METADATA_KEY_MAX)
            return validate_fail(err, BILLOW_EPARAM_INVALID, where,
                                 "Metadata keys must be 1 to %d characters without control "
                                 "characters.",
                                 VALIDATE_METADATA_KEY_MAX);
        if (!json_is_string(value))
            return validate_fail(err, BILLOW_EPARAM_INVALID, where,
                                 "Metadata values must be strings.");
        /* Values are shown in the dashboard and written to CSV and PDF
         * exports, so control characters are refused there too. */
        const char *text = json_string_value(value);
        size_t vlen = json_string_length(value);
        if (!validate_utf8_printable(text, vlen) ||
            utf8_chars(text, vlen) > VALIDATE_METADATA_VALUE_MAX)
            return validate_fail(err, BILLOW_EPARAM_INVALID, where,
                                 "Metadata values must be at most %d characters without "
                                 "control characters.",
                                 VALIDATE_METADATA_VALUE_MAX);
    }
    return 0;
}

int validate_known_keys(const json_t *obj, const char *const *allowed, validate_error_t *err)
{
    if (!json_is_object(obj))
        return validate_fail(err, BILLOW_EPARAM_INVALID, "",
                             "The request body must be a JSON "
                             "object.");
    const char *key;
    const json_t *value;
    json_t *o = (json_t *)obj;
    json_object_foreach(o, key, value)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known)
            return validate_fail(err, BILLOW_EPARAM_UNKNOWN, key, "Received unknown parameter: %s.",
                                 key);
    }
    return 0;
}

int validate_string_member(const json_t *obj, const char *key, bool required, size_t max,
                           const char **out, validate_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return required ? validate_fail(err, BILLOW_EPARAM_MISSING, key, "%s is required.", key)
                        : 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return validate_fail(err, BILLOW_EPARAM_INVALID, key, "%s must be a non-empty string.",
                             key);
    if (json_string_length(v) > max)
        return validate_fail(err, BILLOW_EPARAM_INVALID, key, "%s must be at most %zu bytes.", key,
                             max);
    *out = json_string_value(v);
    return 0;
}
