/* percent: percent-decoding, as URLs encode (RFC 3986, section 2.1). */
#ifndef BILLOW_PERCENT_H
#define BILLOW_PERCENT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Decodes s[0..len) into out (out_len bytes, the NUL included): "%41" is
 * "A"; with plus_is_space, "+" is " " (query strings and forms). Returns 0,
 * or BILLOW_EPARAM_INVALID for a "%" not followed by two hex digits, a
 * "%00" (Billow's strings end at a NUL), or a result that does not fit. */
int percent_decode(const char *s, size_t len, bool plus_is_space, char *out,
                   size_t out_len) BILLOW_MUSTCHECK;

#endif
