/* netaddr: the client's address behind trusted proxies, and the key the
 * per-address limits count it under. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "netaddr.h"

static netaddr_trusted_t trusted(const char *text)
{
    netaddr_trusted_t t;
    char err[160];
    cr_assert_eq(netaddr_trusted_parse(text, &t, err, sizeof err), 0, "%s: %s", text, err);
    return t;
}

static void assert_client(const char *proxies, const char *peer, const char *const *xff, size_t n,
                          const char *want)
{
    netaddr_trusted_t t = trusted(proxies);
    char got[NETADDR_TEXT_MAX];
    netaddr_client(&t, peer, xff, n, got);
    cr_assert_str_eq(got, want, "proxies \"%s\", peer %s", proxies, peer);
}

Test(netaddr, blocks_and_addresses_are_parsed)
{
    netaddr_trusted_t t = trusted(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,::1");
    cr_assert_eq(t.n, 4);
    cr_assert(netaddr_trusted_has(&t, "10.200.3.4"));
    cr_assert(netaddr_trusted_has(&t, "192.0.2.7"));
    cr_assert_not(netaddr_trusted_has(&t, "192.0.2.8"));
    cr_assert(netaddr_trusted_has(&t, "fd12:3456::1"));
    cr_assert_not(netaddr_trusted_has(&t, "fe80::1"));
    cr_assert(netaddr_trusted_has(&t, "::1"));
    cr_assert(netaddr_trusted_has(&t, "::ffff:10.1.2.3"), "IPv4-mapped counts as IPv4");
    cr_assert_not(netaddr_trusted_has(&t, "not an address"));
    cr_assert_eq(trusted("").n, 0);
}

Test(netaddr, a_prefix_that_is_not_a_byte_boundary_is_honoured)
{
    netaddr_trusted_t t = trusted("172.16.0.0/12");
    cr_assert(netaddr_trusted_has(&t, "172.31.255.255"));
    cr_assert_not(netaddr_trusted_has(&t, "172.32.0.0"));
    cr_assert_not(netaddr_trusted_has(&t, "172.15.255.255"));
    netaddr_trusted_t all = trusted("0.0.0.0/0");
    cr_assert(netaddr_trusted_has(&all, "203.0.113.9"));
}

Test(netaddr, what_is_not_a_list_of_blocks_is_refused_by_name)
{
    const char *bad[] = {"10.0.0.0/33", "10.0.0/8",  "example.com", "10.0.0.1,,10.0.0.2",
                         "::1/129",     "10.0.0.0/", "10.0.0.0/x",  " "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        netaddr_trusted_t t;
        char err[160] = "";
        cr_assert_eq(netaddr_trusted_parse(bad[i], &t, err, sizeof err), -1, "%s", bad[i]);
        cr_assert(strstr(err, "TRUSTED_PROXIES") != NULL, "%s", err);
    }
}

Test(netaddr, without_trusted_proxies_the_header_is_ignored)
{
    const char *xff[] = {"198.51.100.1"};
    assert_client("", "203.0.113.9", xff, 1, "203.0.113.9");
    /* A peer that is not a trusted proxy cannot name another client either. */
    assert_client("10.0.0.0/8", "203.0.113.9", xff, 1, "203.0.113.9");
}

Test(netaddr, the_right_most_untrusted_entry_is_the_client)
{
    /* The client wrote 1.2.3.4 itself; the balancer appended the real one. */
    const char *xff[] = {"1.2.3.4, 198.51.100.1"};
    assert_client("10.0.0.0/8", "10.0.0.5", xff, 1, "198.51.100.1");
    /* Two proxies in a row, the inner one's address in the header too. */
    const char *two[] = {"1.2.3.4, 198.51.100.1, 10.0.0.7"};
    assert_client("10.0.0.0/8", "10.0.0.5", two, 1, "198.51.100.1");
    /* Several header lines are one list, in the order received. */
    const char *lines[] = {"1.2.3.4", "198.51.100.1 ,10.0.0.7"};
    assert_client("10.0.0.0/8", "10.0.0.5", lines, 2, "198.51.100.1");
    /* Printed canonically. */
    const char *v6[] = {"2001:0db8:0000:0000:0000:0000:0000:0001"};
    assert_client("::1", "::1", v6, 1, "2001:db8::1");
}

Test(netaddr, when_every_entry_is_trusted_the_left_most_is_taken)
{
    const char *xff[] = {"10.0.0.9, 10.0.0.7"};
    assert_client("10.0.0.0/8", "10.0.0.5", xff, 1, "10.0.0.9");
    assert_client("10.0.0.0/8", "10.0.0.5", NULL, 0, "10.0.0.5");
}

Test(netaddr, an_entry_that_is_no_address_stops_at_the_proxy_to_its_right)
{
    const char *xff[] = {"198.51.100.1, unknown, 10.0.0.7"};
    assert_client("10.0.0.0/8", "10.0.0.5", xff, 1, "10.0.0.7");
    const char *ported[] = {"198.51.100.1:4711"};
    assert_client("10.0.0.0/8", "10.0.0.5", ported, 1, "10.0.0.5");
}

Test(netaddr, limits_count_an_ipv6_client_by_its_64)
{
    char key[NETADDR_TEXT_MAX];
    netaddr_limit_key("203.0.113.9", key);
    cr_assert_str_eq(key, "203.0.113.9");
    netaddr_limit_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", key);
    cr_assert_str_eq(key, "2001:db8:1:2::/64");
    netaddr_limit_key("2001:db8:1:2::9", key);
    cr_assert_str_eq(key, "2001:db8:1:2::/64");
    netaddr_limit_key("::ffff:203.0.113.9", key);
    cr_assert_str_eq(key, "203.0.113.9");
    netaddr_limit_key("", key);
    cr_assert_str_eq(key, "");
}
