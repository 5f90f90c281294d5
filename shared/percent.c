/* percent: percent-decoding (see percent.h). */
#include "percent.h"

/* The value of hex digit c, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int percent_decode(const char *s, size_t len, bool plus_is_space, char *out, size_t out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return BILLOW_EPARAM_INVALID;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return BILLOW_EPARAM_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (o + 1 >= out_len)
            return BILLOW_EPARAM_INVALID;
        out[o++] = c;
    }
    if (out_len == 0)
        return BILLOW_EPARAM_INVALID;
    out[o] = '\0';
    return 0;
}
