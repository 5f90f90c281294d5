/* ids_test: the id layout, its validation, and ordering within one millisecond. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "ids.h"

static const uint8_t zero_random[10] = {0};
static const uint8_t max_random[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Test(ids, time_part_matches_the_ulid_encoding)
{
    char id[IDS_MAX];
    /* The ULID specification's example time, 1469918176385, is "01ARYZ6S41". */
    ids_generate_at("cus", 1469918176385u, zero_random, id);
    cr_assert_str_eq(id, "cus_01ARYZ6S410000000000000000");
}

Test(ids, random_part_is_big_endian_crockford_base32)
{
    const uint8_t random[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    char id[IDS_MAX];
    ids_generate_at("job", 0, random, id);
    cr_assert_str_eq(id, "job_0000000000041061050R3GG28A");
    ids_generate_at("job", (UINT64_C(1) << 48) - 1, max_random, id);
    cr_assert_str_eq(id, "job_7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
}

Test(ids, generated_ids_are_valid_for_their_prefix_only)
{
    char id[IDS_MAX];
    ids_generate("cus", id);
    cr_assert_eq(strlen(id), 4 + IDS_BODY_LEN);
    cr_assert(ids_valid("cus", id));
    cr_assert_not(ids_valid("cu", id));
    cr_assert_not(ids_valid("cust", id));
    cr_assert_not(ids_valid("job", id));
    cr_assert_not(ids_valid(NULL, id));
    cr_assert_not(ids_valid("cus", NULL));
}

Test(ids, validation_refuses_bad_bodies)
{
    cr_assert(ids_valid("cus", "cus_01ARYZ6S410000000000000000"));
    /* One character short and one too many. */
    cr_assert_not(ids_valid("cus", "cus_01ARYZ6S41000000000000000"));
    cr_assert_not(ids_valid("cus", "cus_01ARYZ6S4100000000000000000"));
    /* Lower case, and letters outside Crockford's alphabet (I, L, O, U). */
    cr_assert_not(ids_valid("cus", "cus_01aryz6s410000000000000000"));
    cr_assert_not(ids_valid("cus", "cus_01ARYZ6S41000000000000000U"));
    cr_assert_not(ids_valid("cus", "cus_01ARYZ6S41000000000000000I"));
    cr_assert_not(ids_valid("cus", "cus_01ARYZ6S41000000000000000O"));
    /* No underscore, another separator, an empty body. */
    cr_assert_not(ids_valid("cus", "cus01ARYZ6S410000000000000000"));
    cr_assert_not(ids_valid("cus", "cus-01ARYZ6S410000000000000000"));
    cr_assert_not(ids_valid("cus", "cus_"));
}

Test(ids, later_time_sorts_after_any_random_part)
{
    char a[IDS_MAX], b[IDS_MAX];
    ids_generate_at("inv", 1000, max_random, a);
    ids_generate_at("inv", 1001, zero_random, b);
    cr_assert_lt(strcmp(a, b), 0);
}

Test(ids, ids_made_in_a_burst_strictly_increase)
{
    /* Thousands of ids take far less than their count in milliseconds, so
     * many share a millisecond; each must still sort after the one before. */
    enum { BURST = 5000 };
    char prev[IDS_MAX], next[IDS_MAX];
    ids_generate("evt", prev);
    for (int i = 0; i < BURST; i++) {
        ids_generate("evt", next);
        cr_assert_lt(strcmp(prev, next), 0, "%s then %s", prev, next);
        cr_assert(ids_valid("evt", next));
        memcpy(prev, next, sizeof prev);
    }
}

Test(ids, a_prefix_longer_than_16_characters_aborts, .signal = SIGABRT)
{
    char id[IDS_MAX];
    ids_generate_at("abcdefghijklmnopq", 0, zero_random, id);
}

Test(ids, derived_ids_are_the_same_for_the_same_key_and_differ_otherwise)
{
    char a[IDS_MAX], b[IDS_MAX], c[IDS_MAX], d[IDS_MAX];
    ids_derive("job", 1800000000000u, "subscription.cycle|sub_X|1800000000", a);
    ids_derive("job", 1800000000000u, "subscription.cycle|sub_X|1800000000", b);
    ids_derive("job", 1800000000000u, "subscription.cycle|sub_Y|1800000000", c);
    ids_derive("job", 1800000000001u, "subscription.cycle|sub_X|1800000000", d);
    cr_assert(ids_valid("job", a), "%s", a);
    cr_assert_str_eq(a, b, "one key, one id");
    cr_assert_str_neq(a, c, "another key, another random part");
    cr_assert_str_neq(a, d, "another time, another time part");
    cr_assert_eq(strncmp(a, c, 14), 0, "the time part is the given time's");
    /* The random part is the first 80 bits of SHA-256 of the key. */
    char e[IDS_MAX];
    ids_derive("job", 0, "abc", e);
    cr_assert_str_eq(e, "job_0000000000Q9W1DFWF077YMGA1");
}
