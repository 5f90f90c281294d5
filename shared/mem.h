/* mem: allocation that never returns NULL.
 *
 * Every allocation in Billow goes through these wrappers. Running out of
 * memory is not a condition a billing service can recover from half-way
 * through a request or a job, so the wrappers log and abort instead of making
 * every call site handle NULL (the same choice as Redis's zmalloc).
 */
#ifndef BILLOW_MEM_H
#define BILLOW_MEM_H

#include <stdarg.h>
#include <stddef.h>

/* malloc(n); aborts on failure. Caller frees with free(). */
void *mem_alloc(size_t n);
/* calloc(count, size); aborts on failure or overflow. Caller frees. */
void *mem_calloc(size_t count, size_t size);
/* realloc(p, n); aborts on failure. */
void *mem_realloc(void *p, size_t n);
/* strdup(s); NULL stays NULL. Caller frees. */
char *mem_strdup(const char *s);
/* A copy of the first n bytes of s, NUL-terminated. Caller frees. */
char *mem_strndup(const char *s, size_t n);
/* A newly allocated formatted string. Caller frees. */
char *mem_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mem_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
