/* password_test: scrypt hashes round-trip and refuse what this module did
 * not write; the policy refuses short, common and malformed passwords. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "password.h"

/* The list in common_passwords.c, declared as password.c declares it. */
extern const char *const password_common_list[];
extern const size_t password_common_count;

/* The cheapest cost in bounds, so the suite stays fast. */
static const password_params_t cheap = {.log_n = 10, .r = 8, .p = 1};

/* Written by an independent scrypt (Python's hashlib) with salt 00..0f:
 * pins the encoding, so hashes stored today still verify after a change. */
static const char known_hash[] =
    "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU";
/* The same for "żółw-zegarek" at ln=11, r=4, p=2 with salt 0f..00. */
static const char known_hash_2[] =
    "$scrypt$ln=11,r=4,p=2$Dw4NDAsKCQgHBgUEAwIBAA$8jyhcr97uWsuHEyWFjA49XfXwKLzTUFL6apCuP2WSWo";

static int policy(const char *pw)
{
    validate_error_t err;
    memset(&err, 0, sizeof err);
    int rc = password_check_policy("password", pw, &err);
    if (rc != 0) {
        cr_assert_eq(err.code, rc);
        cr_assert_str_eq(err.param, "password");
        cr_assert_neq(err.message[0], '\0');
    }
    return rc;
}

static int verify(const char *encoded, const char *pw, bool *ok)
{
    *ok = false;
    return password_verify(encoded, pw, ok);
}

Test(password, hash_then_verify_accepts_the_password_and_refuses_another)
{
    char enc[PASSWORD_ENCODED_MAX];
    bool ok = false;
    cr_assert_eq(password_hash("tulip garden rain", &cheap, enc), 0);
    cr_assert_eq(strncmp(enc, "$scrypt$ln=10,r=8,p=1$", 22), 0, "%s", enc);
    cr_assert_eq(verify(enc, "tulip garden rain", &ok), 0);
    cr_assert(ok);
    cr_assert_eq(verify(enc, "tulip garden rain!", &ok), 0);
    cr_assert_not(ok);
    cr_assert_eq(verify(enc, "Tulip garden rain", &ok), 0);
    cr_assert_not(ok);
    cr_assert_eq(verify(enc, "", &ok), 0);
    cr_assert_not(ok);
}

Test(password, hash_of_multibyte_password_round_trips)
{
    char enc[PASSWORD_ENCODED_MAX];
    bool ok = false;
    cr_assert_eq(password_hash("\xc5\xbc\xc3\xb3\xc5\x82w-zegarek", &cheap, enc), 0);
    cr_assert_eq(verify(enc, "\xc5\xbc\xc3\xb3\xc5\x82w-zegarek", &ok), 0);
    cr_assert(ok);
    cr_assert_eq(verify(enc, "zolw-zegarek", &ok), 0);
    cr_assert_not(ok);
}

Test(password, hash_written_by_another_scrypt_verifies)
{
    bool ok = false;
    cr_assert_eq(verify(known_hash, "correct horse battery staple", &ok), 0);
    cr_assert(ok);
    cr_assert_eq(verify(known_hash, "correct horse battery stapl", &ok), 0);
    cr_assert_not(ok);
    cr_assert_eq(verify(known_hash_2, "\xc5\xbc\xc3\xb3\xc5\x82w-zegarek", &ok), 0);
    cr_assert(ok);
}

Test(password, hash_differing_only_in_its_last_byte_does_not_verify)
{
    /* known_hash with the last full character of the hash changed ('R' to
     * 'S'): a canonical encoding whose 32nd byte differs by one bit. */
    char altered[sizeof known_hash];
    memcpy(altered, known_hash, sizeof known_hash);
    size_t n = strlen(altered);
    cr_assert_eq(altered[n - 2], 'R');
    altered[n - 2] = 'S';
    bool ok = true;
    cr_assert_eq(verify(altered, "correct horse battery staple", &ok), 0);
    cr_assert_not(ok);
}

Test(password, encoded_parameters_read_back_as_written)
{
    const password_params_t cases[] = {
        {.log_n = 10, .r = 8, .p = 1},
        {.log_n = 11, .r = 1, .p = 4},
        {.log_n = 12, .r = 8, .p = 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char enc[PASSWORD_ENCODED_MAX];
        password_params_t got = {0};
        cr_assert_eq(password_hash("tulip garden rain", &cases[i], enc), 0);
        cr_assert_eq(password_parse_params(enc, &got), 0, "%s", enc);
        cr_assert_eq(got.log_n, cases[i].log_n);
        cr_assert_eq(got.r, cases[i].r);
        cr_assert_eq(got.p, cases[i].p);
    }
    password_params_t got = {0};
    cr_assert_eq(password_parse_params(known_hash_2, &got), 0);
    cr_assert_eq(got.log_n, 11);
    cr_assert_eq(got.r, 4);
    cr_assert_eq(got.p, 2);
}

Test(password, two_hashes_of_one_password_differ_by_salt)
{
    char a[PASSWORD_ENCODED_MAX];
    char b[PASSWORD_ENCODED_MAX];
    bool ok = false;
    cr_assert_eq(password_hash("tulip garden rain", &cheap, a), 0);
    cr_assert_eq(password_hash("tulip garden rain", &cheap, b), 0);
    cr_assert_str_neq(a, b);
    /* The salt field (after the third '$') differs, not only the hash. */
    cr_assert_neq(strncmp(strrchr(a, '$') - 22, strrchr(b, '$') - 22, 22), 0);
    cr_assert_eq(verify(b, "tulip garden rain", &ok), 0);
    cr_assert(ok);
}

Test(password, hash_refuses_parameters_out_of_bounds)
{
    const password_params_t bad[] = {
        {.log_n = 9, .r = 8, .p = 1},
        {.log_n = 21, .r = 8, .p = 1},
        {.log_n = 10, .r = 0, .p = 1},
        {.log_n = 10, .r = 9, .p = 1},
        {.log_n = 10, .r = 8, .p = 0},
        {.log_n = 10, .r = 8, .p = 5},
        /* RFC 7914: N must be below 2^(16 r). */
        {.log_n = 16, .r = 1, .p = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char enc[PASSWORD_ENCODED_MAX];
        cr_assert_eq(password_hash("tulip garden rain", &bad[i], enc), BILLOW_EPARAM_INVALID,
                     "case %zu", i);
    }
    char enc[PASSWORD_ENCODED_MAX];
    cr_assert_eq(password_hash("tulip garden rain", NULL, enc), BILLOW_EPARAM_INVALID);
    cr_assert_eq(password_hash(NULL, &cheap, enc), BILLOW_EPARAM_INVALID);
}

Test(password, malformed_encodings_are_refused)
{
    /* Each is known_hash with one thing wrong. */
    const char *bad[] = {
        "",
        "$scrypt$",
        "$scrypt$ln=10,r=8,p=1",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$",
        "$scrypt$ln=10,r=8$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$bcrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        /* Out of bounds: a crafted cost that would take a terabyte. */
        "$scrypt$ln=40,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=21,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=9,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=99,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=9$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=0$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=1000000000000,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$"
        "mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/"
        "AXJlRU",
        "$scrypt$ln=-10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=010,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        /* Bad base64: a foreign character, padding, a short or long field. */
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0OD*$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw==$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/"
        "AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU=",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0OD$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlR",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODwAA$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/"
        "AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRUA",
        /* Stray bits in the last character: a second spelling of the salt. */
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODx$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU$",
        "$scrypt$ln=10,r=8,p=1$ AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = true;
        password_params_t params;
        cr_assert_eq(password_verify(bad[i], "correct horse battery staple", &ok),
                     BILLOW_EPARAM_INVALID, "case %zu: %s", i, bad[i]);
        cr_assert(ok, "ok must be left alone on failure (case %zu)", i);
        cr_assert_eq(password_parse_params(bad[i], &params), BILLOW_EPARAM_INVALID, "case %zu", i);
    }
    bool ok = false;
    cr_assert_eq(password_verify(NULL, "x", &ok), BILLOW_EPARAM_INVALID);
}

Test(password, policy_counts_characters_not_bytes)
{
    cr_assert_eq(policy("tulip-garde"), BILLOW_EPASSWORD_TOO_SHORT);
    cr_assert_eq(policy("tulip-garden"), 0);
    /* "żółwzegarek": 11 characters in 14 bytes is too short... */
    cr_assert_eq(policy("\xc5\xbc\xc3\xb3\xc5\x82wzegarek"), BILLOW_EPASSWORD_TOO_SHORT);
    /* ...and "żółw-zegarek", 12 characters, is long enough. */
    cr_assert_eq(policy("\xc5\xbc\xc3\xb3\xc5\x82w-zegarek"), 0);
    /* Four 3-byte characters are 12 bytes but 4 characters. */
    cr_assert_eq(policy("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe5\xad\x97"),
                 BILLOW_EPASSWORD_TOO_SHORT);
    cr_assert_eq(policy(""), BILLOW_EPASSWORD_TOO_SHORT);
}

Test(password, policy_refuses_common_passwords_ignoring_case)
{
    cr_assert_eq(policy("password1234"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("Password1234"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("PASSWORD1234"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("123456789012"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("QwertyUiop12"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("iloveyou1234"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("passwordpassword"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("abcdefghijkl"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("1qaz2wsx3edc"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("202420242024"), BILLOW_EPASSWORD_TOO_COMMON);
    /* A list entry inside a longer password is not the entry. */
    cr_assert_eq(policy("password1234 tulip"), 0);
}

Test(password, policy_refuses_every_listed_password_in_upper_case)
{
    cr_assert_gt(password_common_count, 300);
    for (size_t i = 0; i < password_common_count; i++) {
        char upper[PASSWORD_MAX_BYTES + 1];
        const char *e = password_common_list[i];
        size_t n = strlen(e);
        cr_assert_leq(n, PASSWORD_MAX_BYTES);
        for (size_t j = 0; j <= n; j++)
            upper[j] = (e[j] >= 'a' && e[j] <= 'z') ? (char)(e[j] - 'a' + 'A') : e[j];
        /* TOO_COMMON, not TOO_SHORT: an entry under the minimum length is dead weight. */
        cr_assert_eq(policy(upper), BILLOW_EPASSWORD_TOO_COMMON, "%s", e);
    }
}

Test(password, policy_refuses_one_character_repeated)
{
    cr_assert_eq(policy("zzzzzzzzzzzz"), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("################"), BILLOW_EPASSWORD_TOO_COMMON);
    /* "é" twelve times: one character, two bytes each. */
    char e12[25];
    for (int i = 0; i < 12; i++)
        memcpy(e12 + 2 * i, "\xc3\xa9", 2);
    e12[24] = '\0';
    cr_assert_eq(policy(e12), BILLOW_EPASSWORD_TOO_COMMON);
    cr_assert_eq(policy("zzzzzzzzzzzy"), 0);
}

Test(password, policy_refuses_more_than_max_bytes)
{
    char pw[PASSWORD_MAX_BYTES + 2];
    for (int i = 0; i < PASSWORD_MAX_BYTES + 1; i++)
        pw[i] = (char)('a' + i % 26);
    pw[PASSWORD_MAX_BYTES + 1] = '\0';
    cr_assert_eq(policy(pw), BILLOW_EPARAM_INVALID);
    pw[PASSWORD_MAX_BYTES] = '\0';
    cr_assert_eq(policy(pw), 0);
}

Test(password, policy_refuses_control_characters_and_bad_utf8)
{
    cr_assert_eq(policy("tulip\tgarden rain"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(policy("tulip\ngarden rain"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(policy("tulip garden rain\x7f"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(policy("tulip garden rain\xff"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(policy("tulip garden \xc3"), BILLOW_EPARAM_INVALID);
}

Test(password, policy_refuses_a_missing_password)
{
    validate_error_t err;
    cr_assert_eq(password_check_policy("new_password", NULL, &err), BILLOW_EPARAM_MISSING);
    cr_assert_str_eq(err.param, "new_password");
}
