/* mem: allocation that never returns NULL.
 *
 * Design: an allocation failure is reported on stderr and the process aborts,
 * so a supervisor restarts it with its queues intact. The report is written
 * with a plain fputs, not through log, because formatting a JSON line would
 * itself need memory.
 */
#include "mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    char line[96];
    snprintf(line, sizeof line, "billow: out of memory allocating %zu bytes\n", n);
    fputs(line, stderr);
    abort();
}

void *mem_alloc(size_t n)
{
    /* malloc(0) may return NULL; asking for one byte keeps "never NULL" true. */
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *mem_calloc(size_t count, size_t size)
{
    if (count == 0 || size == 0) {
        count = 1;
        size = 1;
    }
    /* calloc checks count * size for overflow itself and returns NULL. */
    void *p = calloc(count, size);
    if (p == NULL)
        out_of_memory(count > SIZE_MAX / size ? SIZE_MAX : count * size);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    /* realloc(p, 0) may free p and return NULL; keep a one-byte block instead. */
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        out_of_memory(n);
    return q;
}

char *mem_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *copy = mem_alloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *mem_vprintf(const char *fmt, va_list ap)
{
    va_list measure;
    va_copy(measure, ap);
    char probe[1];
    int len = vsnprintf(probe, sizeof(probe), fmt, measure);
    va_end(measure);
    if (len < 0) {
        /* Only an invalid format or a wide-character conversion error gets
         * here; the caller's bug should not take the process down. */
        return mem_strdup("");
    }
    char *out = mem_alloc((size_t)len + 1);
    vsnprintf(out, (size_t)len + 1, fmt, ap);
    return out;
}

char *mem_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = mem_vprintf(fmt, ap);
    va_end(ap);
    return out;
}
