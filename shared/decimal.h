/* decimal: strict parsing of a non-negative decimal number from text.
 *
 * Redis replies, URL parts and query parameters all carry numbers as text;
 * this one parser accepts only digits (no sign, space, or exponent) within
 * bounds, so "10abc", " 5" and "1e3" are refused the same way everywhere.
 */
#ifndef BILLOW_DECIMAL_H
#define BILLOW_DECIMAL_H

#include <stddef.h>

#include "err.h"

/* Longest number accepted, in digits: enough for any bound Billow uses and
 * short enough that a long cannot overflow. */
#define DECIMAL_MAX_DIGITS 15

/* Parses the len bytes at s as a decimal number in [min, max] into *out.
 * Returns 0, or BILLOW_EPARAM_INVALID (*out untouched). */
int decimal_parse(const char *s, size_t len, long min, long max, long *out) BILLOW_MUSTCHECK;

#endif
