/* netaddr: which address a request came from, behind trusted proxies.
 *
 * Behind a load balancer every connection comes from the balancer, so the
 * per-address limits of sign-in and password reset would count every client
 * together: twenty bad passwords from anywhere would lock everyone out. The
 * operator names the proxies they run (TRUSTED_PROXIES, addresses and CIDR
 * blocks); a request whose peer is one of them is from the right-most
 * address of X-Forwarded-For that is not one of them. Anything a client
 * writes into that header sits to the left of what the proxies appended,
 * so it is never taken. Without TRUSTED_PROXIES the header is ignored.
 */
#ifndef BILLOW_NETADDR_H
#define BILLOW_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Room for any address as text (INET6_ADDRSTRLEN is 46), NUL included. */
#define NETADDR_TEXT_MAX 64
/* Most blocks TRUSTED_PROXIES may name. */
#define NETADDR_NETS_MAX 64

typedef struct {
    int family;             /* AF_INET or AF_INET6. */
    unsigned char addr[16]; /* Network order; 4 bytes used for AF_INET. */
    int bits;               /* Prefix length. */
} netaddr_net_t;

typedef struct {
    netaddr_net_t nets[NETADDR_NETS_MAX]; /* The blocks. */
    size_t n;                             /* Blocks in use. */
} netaddr_trusted_t;

/* Parses text, a comma-separated list of addresses and CIDR blocks
 * ("10.0.0.0/8, 192.0.2.7, fd00::/8"; "" is none). Returns 0, or -1 with
 * err naming the entry that is not one. */
int netaddr_trusted_parse(const char *text, netaddr_trusted_t *out, char *err, size_t err_len);

/* True when addr (text) lies in one of the blocks. An IPv4 address mapped
 * into IPv6 ("::ffff:10.0.0.1") counts as the IPv4 one. */
bool netaddr_trusted_has(const netaddr_trusted_t *t, const char *addr);

/* The client's address: peer itself, unless peer is trusted; then the
 * right-most entry of the X-Forwarded-For values xff[0..n) (each a comma
 * list, in the order received) that is not trusted, or the left-most when
 * all are. An entry that is not an address stops the walk: the address to
 * its right (the last proxy) is taken. */
void netaddr_client(const netaddr_trusted_t *t, const char *peer, const char *const *xff, size_t n,
                    char out[NETADDR_TEXT_MAX]);

/* The key an address is counted under by per-address limits: an IPv4
 * address itself, an IPv6 address's /64 ("2001:db8:1:2::/64"), since one
 * subscriber usually holds a whole /64. Text that is no address is kept. */
void netaddr_limit_key(const char *addr, char out[NETADDR_TEXT_MAX]);

#endif
