/* validate_test: what each validator accepts and refuses, and what it says. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

static int email(const char *s)
{
    validate_error_t err;
    return validate_email("email", s, &err);
}

static int phone(const char *s)
{
    validate_error_t err;
    return validate_phone("phone", s, &err);
}

static int slug(const char *s)
{
    validate_error_t err;
    return validate_slug("slug", s, &err);
}

static bool printable(const char *s)
{
    return validate_utf8_printable(s, strlen(s));
}

Test(validate, good_emails_are_accepted)
{
    cr_assert_eq(email("ada@example.com"), 0);
    cr_assert_eq(email("first.last+tag@mail.example.co.uk"), 0);
    cr_assert_eq(email("x@y.io"), 0);
    cr_assert_eq(email("j\xc3\xbcrgen@b\xc3\xbc"
                       "cher.de"),
                 0);
}

Test(validate, bad_emails_are_refused_with_the_param_named)
{
    validate_error_t err;
    cr_assert_eq(validate_email("customer[email]", "ada example.com", &err), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(err.param, "customer[email]");
    cr_assert_eq(err.code, BILLOW_EPARAM_INVALID);
    cr_assert_gt(strlen(err.message), 0);

    cr_assert_eq(email("ada @example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@exam ple.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@@example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("a@b@example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@localhost"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("@example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@.example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@example.com."), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@example..com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@example.com\r\nBcc: x@y.z"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada\t@example.com"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email(""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(email("ada@exa\xff"
                       "mple.com"),
                 BILLOW_EPARAM_INVALID);
}

Test(validate, a_missing_email_is_parameter_missing)
{
    validate_error_t err;
    cr_assert_eq(validate_email("email", NULL, &err), BILLOW_EPARAM_MISSING);
    cr_assert_str_eq(err.param, "email");
}

Test(validate, email_length_is_limited_to_254_bytes)
{
    char addr[VALIDATE_EMAIL_MAX + 2];
    /* 60 bytes, "@", then a domain with a dot every ten bytes, 254 in all. */
    memset(addr, 'a', sizeof addr);
    addr[60] = '@';
    for (size_t i = 70; i < VALIDATE_EMAIL_MAX - 1; i += 10)
        addr[i] = '.';
    addr[VALIDATE_EMAIL_MAX] = '\0';
    cr_assert_eq(strlen(addr), VALIDATE_EMAIL_MAX);
    cr_assert_eq(email(addr), 0, "%s", addr);
    addr[VALIDATE_EMAIL_MAX] = 'a';
    addr[VALIDATE_EMAIL_MAX + 1] = '\0';
    cr_assert_eq(email(addr), BILLOW_EPARAM_INVALID);
}

Test(validate, an_overlong_local_part_is_refused)
{
    char addr[128];
    memset(addr, 'a', 65);
    strcpy(addr + 65, "@example.com");
    cr_assert_eq(email(addr), BILLOW_EPARAM_INVALID);
    strcpy(addr + 64, "@example.com");
    cr_assert_eq(email(addr), 0);
}

Test(validate, phones_must_be_e164)
{
    cr_assert_eq(phone("+14155550123"), 0);
    cr_assert_eq(phone("+4930123456"), 0);
    cr_assert_eq(phone("+12345678"), 0);        /* 8 digits, the shortest. */
    cr_assert_eq(phone("+123456789012345"), 0); /* 15 digits, the longest. */
    cr_assert_eq(phone("+1234567"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("+1234567890123456"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("14155550123"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("+04155550123"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("+1 415 555 0123"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("+1-415-555-0123"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone("+"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone(""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(phone(NULL), BILLOW_EPARAM_MISSING);
}

Test(validate, slugs_are_lowercase_words_with_hyphens)
{
    cr_assert_eq(slug("acme"), 0);
    cr_assert_eq(slug("acme-2"), 0);
    cr_assert_eq(slug("a-b"), 0);
    cr_assert_eq(slug("abcdefghijklmnopqrstuvwxyz0123456789abcd"), 0); /* 40 */
    cr_assert_eq(slug("abcdefghijklmnopqrstuvwxyz0123456789abcde"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("ab"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("2acme"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("-acme"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("acme-"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("Acme"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("ac_me"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug("ac me"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(slug(NULL), BILLOW_EPARAM_MISSING);
}

Test(validate, text_must_be_printable_and_within_max)
{
    validate_error_t err;
    cr_assert_eq(validate_text("name", "Ada Lovelace", VALIDATE_NAME_MAX, &err), 0);
    cr_assert_eq(validate_text("name", "Zo\xc3\xab", 4, &err), 0);
    cr_assert_eq(validate_text("name", "Zo\xc3\xab", 3, &err), BILLOW_EPARAM_INVALID);
    cr_assert_eq(validate_text("name", "", VALIDATE_NAME_MAX, &err), BILLOW_EPARAM_INVALID);
    cr_assert_eq(validate_text("name", "Ada\nLovelace", VALIDATE_NAME_MAX, &err),
                 BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(err.param, "name");
    cr_assert_eq(validate_text("name", NULL, VALIDATE_NAME_MAX, &err), BILLOW_EPARAM_MISSING);
}

Test(validate, utf8_accepts_text_in_any_script)
{
    cr_assert(printable("plain ascii ~"));
    cr_assert(printable("caf\xc3\xa9"));      /* é, two bytes */
    cr_assert(printable("\xe2\x82\xac 10"));  /* €, three bytes */
    cr_assert(printable("\xf0\x9f\x98\x80")); /* U+1F600, four bytes */
    cr_assert(printable("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last */
    cr_assert(validate_utf8_printable("", 0));
}

Test(validate, utf8_refuses_invalid_byte_sequences)
{
    cr_assert_not(printable("\xff"));
    cr_assert_not(printable("\x80"));                 /* lone continuation */
    cr_assert_not(printable("caf\xc3"));              /* truncated */
    cr_assert_not(printable("\xc3\x28"));             /* bad continuation */
    cr_assert_not(printable("\xc0\xaf"));             /* overlong "/" */
    cr_assert_not(printable("\xe0\x80\xaf"));         /* overlong, three bytes */
    cr_assert_not(printable("\xed\xa0\x80"));         /* surrogate U+D800 */
    cr_assert_not(printable("\xf4\x90\x80\x80"));     /* past U+10FFFF */
    cr_assert_not(printable("\xf8\x88\x80\x80\x80")); /* five-byte form */
}

Test(validate, utf8_refuses_control_characters)
{
    cr_assert_not(printable("a\tb"));
    cr_assert_not(printable("a\nb"));
    cr_assert_not(printable("a\rb"));
    cr_assert_not(printable("\x1b[31m"));
    cr_assert_not(printable("a\x7f"));
    cr_assert_not(validate_utf8_printable("a\0b", 3));
}

/* validate_utf8_repair(s) as a string to compare: s itself when it needs no
 * repair (the function then returns NULL), else the repaired copy. */
static void assert_repaired(const char *s, const char *want)
{
    char *got = validate_utf8_repair(s);
    const char *text = got ? got : s;
    cr_assert_str_eq(text, want, "repair of \"%s\"", s);
    cr_assert(validate_utf8_printable(text, strlen(text)) || strpbrk(text, "\t\n") != NULL);
    free(got);
}

Test(validate, utf8_repair_leaves_valid_text_alone)
{
    cr_assert_null(validate_utf8_repair("plain /v1/customers"));
    cr_assert_null(validate_utf8_repair("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    cr_assert_null(validate_utf8_repair(""));
    cr_assert_null(validate_utf8_repair("tab\tand newline\n")); /* JSON escapes these. */
}

Test(validate, utf8_repair_replaces_each_invalid_byte)
{
    assert_repaired("/\xff", "/\xef\xbf\xbd");
    assert_repaired("\x80x", "\xef\xbf\xbdx");
    assert_repaired("a\xc3(b", "a\xef\xbf\xbd(b");                           /* bad continuation */
    assert_repaired("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong "/" */
    assert_repaired("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    assert_repaired("caf\xc3\xa9\xfe", "caf\xc3\xa9\xef\xbf\xbd");           /* valid part kept */
}

Test(validate, utf8_repair_drops_a_character_cut_at_the_end)
{
    /* What snprintf leaves when a 512-byte message ends inside an é. */
    assert_repaired("caf\xc3", "caf");
    assert_repaired("euro \xe2\x82", "euro ");
    assert_repaired("\xf0\x9f\x98", "");
    /* Cut short in the middle is not cut at the end: each byte replaced. */
    assert_repaired("\xe2\x82x", "\xef\xbf\xbd\xef\xbf\xbdx");
}

static json_t *metadata_with_keys(int n)
{
    json_t *obj = json_object();
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        json_object_set_new(obj, key, json_string("v"));
    }
    return obj;
}

Test(validate, metadata_with_50_keys_is_accepted)
{
    validate_error_t err;
    json_t *obj = metadata_with_keys(VALIDATE_METADATA_MAX_KEYS);
    cr_assert_eq(validate_metadata("metadata", obj, &err), 0);
    json_decref(obj);
}

Test(validate, metadata_with_51_keys_is_refused)
{
    validate_error_t err;
    json_t *obj = metadata_with_keys(VALIDATE_METADATA_MAX_KEYS + 1);
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(err.param, "metadata");
    json_decref(obj);
}

Test(validate, metadata_keys_and_values_are_limited_in_length)
{
    validate_error_t err;
    char key[VALIDATE_METADATA_KEY_MAX + 2];
    char value[VALIDATE_METADATA_VALUE_MAX + 2];
    memset(key, 'k', sizeof key);
    memset(value, 'v', sizeof value);

    key[VALIDATE_METADATA_KEY_MAX] = '\0';
    value[VALIDATE_METADATA_VALUE_MAX] = '\0';
    json_t *obj = json_pack("{s:s}", key, value);
    cr_assert_eq(validate_metadata("metadata", obj, &err), 0);
    json_decref(obj);

    key[VALIDATE_METADATA_KEY_MAX] = 'k';
    key[VALIDATE_METADATA_KEY_MAX + 1] = '\0';
    obj = json_pack("{s:s}", key, "v");
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    json_decref(obj);

    value[VALIDATE_METADATA_VALUE_MAX] = 'v';
    value[VALIDATE_METADATA_VALUE_MAX + 1] = '\0';
    obj = json_pack("{s:s}", "plan", value);
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(err.param, "metadata[plan]");
    json_decref(obj);
}

Test(validate, metadata_lengths_count_characters_not_bytes)
{
    validate_error_t err;
    /* 500 two-byte characters: 1000 bytes, still 500 characters. */
    char value[2 * VALIDATE_METADATA_VALUE_MAX + 1];
    for (int i = 0; i < VALIDATE_METADATA_VALUE_MAX; i++)
        memcpy(value + 2 * i, "\xc3\xa9", 2);
    value[2 * VALIDATE_METADATA_VALUE_MAX] = '\0';
    json_t *obj = json_pack("{s:s}", "note", value);
    cr_assert_eq(validate_metadata("metadata", obj, &err), 0);
    json_decref(obj);
}

Test(validate, metadata_values_must_be_strings)
{
    validate_error_t err;
    const char *bad[] = {"1", "true", "null", "{}", "[\"a\"]", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *obj = json_object();
        json_object_set_new(obj, "plan", json_loads(bad[i], JSON_DECODE_ANY, NULL));
        cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID, "%s", bad[i]);
        cr_assert_str_eq(err.param, "metadata[plan]");
        json_decref(obj);
    }
}

Test(validate, metadata_refuses_empty_keys_control_characters_and_non_objects)
{
    validate_error_t err;
    json_t *obj = json_pack("{s:s}", "", "v");
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    json_decref(obj);
    obj = json_pack("{s:s}", "plan", "gold\r\n");
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    json_decref(obj);
    obj = json_pack("[s]", "plan");
    cr_assert_eq(validate_metadata("metadata", obj, &err), BILLOW_EPARAM_INVALID);
    json_decref(obj);
    cr_assert_eq(validate_metadata("metadata", NULL, &err), BILLOW_EPARAM_MISSING);
}

Test(validate, unknown_keys_are_refused_by_name)
{
    static const char *const allowed[] = {"email", "name", "metadata", NULL};
    validate_error_t err;
    json_t *ok = json_pack("{s:s, s:s}", "email", "a@b.co", "name", "A");
    cr_assert_eq(validate_known_keys(ok, allowed, &err), 0);
    json_decref(ok);

    json_t *bad = json_pack("{s:s, s:s}", "email", "a@b.co", "nmae", "A");
    cr_assert_eq(validate_known_keys(bad, allowed, &err), BILLOW_EPARAM_UNKNOWN);
    cr_assert_str_eq(err.param, "nmae");
    cr_assert_not_null(strstr(err.message, "nmae"));
    json_decref(bad);

    json_t *empty = json_object();
    cr_assert_eq(validate_known_keys(empty, allowed, &err), 0);
    json_decref(empty);

    json_t *array = json_array();
    cr_assert_eq(validate_known_keys(array, allowed, &err), BILLOW_EPARAM_INVALID);
    json_decref(array);
}

Test(validate, fail_truncates_without_splitting_a_character)
{
    validate_error_t err;
    char param[100];
    /* 62 ASCII bytes then "é": the 64-byte param field fits only its first byte. */
    memset(param, 'p', 62);
    strcpy(param + 62, "\xc3\xa9xyz");
    cr_assert_eq(validate_fail(&err, BILLOW_EPARAM_INVALID, param, "bad"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(strlen(err.param), 62);
    cr_assert(printable(err.param));
    cr_assert_str_eq(err.message, "bad");
    cr_assert_eq(validate_fail(NULL, BILLOW_EPARAM_MISSING, "x", "y"), BILLOW_EPARAM_MISSING);
}

Test(validate, a_string_member_is_read_or_refused_naming_its_key)
{
    json_t *obj = json_pack("{s:s,s:s,s:i}", "name", "Ada", "empty", "", "count", 3);
    validate_error_t e;
    const char *out = "untouched";
    cr_assert_eq(validate_string_member(obj, "name", true, 10, &out, &e), 0);
    cr_assert_str_eq(out, "Ada");
    cr_assert_eq(validate_string_member(obj, "absent", false, 10, &out, &e), 0);
    cr_assert_null(out);
    cr_assert_eq(validate_string_member(obj, "absent", true, 10, &out, &e), BILLOW_EPARAM_MISSING);
    cr_assert_str_eq(e.param, "absent");
    cr_assert_eq(validate_string_member(obj, "empty", false, 10, &out, &e), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.param, "empty");
    cr_assert_eq(validate_string_member(obj, "count", false, 10, &out, &e), BILLOW_EPARAM_INVALID);
    cr_assert_eq(validate_string_member(obj, "name", true, 2, &out, &e), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(e.message, "at most 2 bytes") != NULL, "%s", e.message);
    json_decref(obj);
}
