/* netaddr: which address a request came from, behind trusted proxies (see
 * netaddr.h). Addresses are parsed with inet_pton and printed with
 * inet_ntop, so every form the C library knows is accepted and printed in
 * its canonical form. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one address (no brackets, no port) into a; returns false when it
 * is not one. An IPv4-mapped IPv6 address becomes the IPv4 one. */
static bool parse_addr(const char *text, size_t len, int *family, unsigned char a[16])
{
    char buf[NETADDR_TEXT_MAX];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, a) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, a) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, sizeof mapped) == 0) {
        memmove(a, a + 12, 4);
        *family = AF_INET;
    } else {
        *family = AF_INET6;
    }
    return true;
}

/* s[0..len) without spaces and tabs at either end. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static bool parse_net(const char *text, size_t len, netaddr_net_t *net)
{
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    if (!parse_addr(text, alen, &net->family, net->addr))
        return false;
    int max = net->family == AF_INET ? 32 : 128;
    net->bits = max;
    if (slash == NULL)
        return true;
    size_t blen = len - alen - 1;
    if (blen == 0 || blen > 3)
        return false;
    int bits = 0;
    for (size_t i = 0; i < blen; i++) {
        char c = slash[1 + i];
        if (c < '0' || c > '9')
            return false;
        bits = bits * 10 + (c - '0');
    }
    if (bits > max)
        return false;
    net->bits = bits;
    return true;
}

int netaddr_trusted_parse(const char *text, netaddr_trusted_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *entry = p;
        trim(&entry, &len);
        p = comma ? comma + 1 : p + strlen(p);
        if (out->n == NETADDR_NETS_MAX) {
            snprintf(err, err_len, "TRUSTED_PROXIES names more than %d blocks.", NETADDR_NETS_MAX);
            return -1;
        }
        if (len == 0 || !parse_net(entry, len, &out->nets[out->n])) {
            snprintf(err, err_len,
                     "TRUSTED_PROXIES must list addresses or CIDR blocks separated by commas "
                     "(\"%.*s\" is neither).",
                     (int)(len > 60 ? 60 : len), entry);
            return -1;
        }
        out->n++;
    }
    return 0;
}

static bool net_has(const netaddr_net_t *net, int family, const unsigned char a[16])
{
    if (net->family != family)
        return false;
    int whole = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, a, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[whole] & mask) == (a[whole] & mask);
}

static bool trusted(const netaddr_trusted_t *t, const char *text, size_t len)
{
    int family;
    unsigned char a[16];
    if (!parse_addr(text, len, &family, a))
        return false;
    for (size_t i = 0; i < t->n; i++)
        if (net_has(&t->nets[i], family, a))
            return true;
    return false;
}

bool netaddr_trusted_has(const netaddr_trusted_t *t, const char *addr)
{
    return trusted(t, addr, strlen(addr));
}

/* The canonical text of the address text[0..len), or false. */
static bool canonical(const char *text, size_t len, char out[NETADDR_TEXT_MAX])
{
    int family;
    unsigned char a[16];
    return parse_addr(text, len, &family, a) && inet_ntop(family, a, out, NETADDR_TEXT_MAX) != NULL;
}

void netaddr_client(const netaddr_trusted_t *t, const char *peer, const char *const *xff, size_t n,
                    char out[NETADDR_TEXT_MAX])
{
    snprintf(out, NETADDR_TEXT_MAX, "%s", peer);
    if (t->n == 0 || !netaddr_trusted_has(t, peer))
        return;
    /* Walk the entries from the right: the last header's last entry is what
     * the nearest proxy appended. */
    for (size_t h = n; h-- > 0;) {
        const char *v = xff[h];
        size_t end = strlen(v);
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            const char *entry = v + start;
            size_t len = end - start;
            trim(&entry, &len);
            char addr[NETADDR_TEXT_MAX];
            if (len > 0) {
                if (!canonical(entry, len, addr))
                    return; /* Not an address: keep the proxy to its right. */
                snprintf(out, NETADDR_TEXT_MAX, "%s", addr);
                if (!trusted(t, entry, len))
                    return;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
}

void netaddr_limit_key(const char *addr, char out[NETADDR_TEXT_MAX])
{
    int family;
    unsigned char a[16];
    if (!parse_addr(addr, strlen(addr), &family, a)) {
        snprintf(out, NETADDR_TEXT_MAX, "%s", addr);
        return;
    }
    if (family == AF_INET) {
        inet_ntop(AF_INET, a, out, NETADDR_TEXT_MAX);
        return;
    }
    memset(a + 8, 0, 8);
    /* At most 4 groups and "::": far below the room left for "/64". */
    inet_ntop(AF_INET6, a, out, NETADDR_TEXT_MAX - 4);
    strcat(out, "/64");
}
