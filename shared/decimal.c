/* decimal: strict non-negative decimal numbers (see decimal.h). */
#include "decimal.h"

int decimal_parse(const char *s, size_t len, long min, long max, long *out)
{
    if (s == NULL || len == 0 || len > DECIMAL_MAX_DIGITS)
        return BILLOW_EPARAM_INVALID;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return BILLOW_EPARAM_INVALID;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return BILLOW_EPARAM_INVALID;
    *out = v;
    return 0;
}
