/* docs_page: the HTML page of GET /docs, which renders /openapi.json.
 *
 * The page is self-contained (inline style and script, system fonts, no
 * external resources) and reads the API description from /openapi.json when
 * it loads, so it stays correct as docs/openapi.yaml changes.
 */
#ifndef BILLOW_DOCS_PAGE_H
#define BILLOW_DOCS_PAGE_H

#include <stddef.h>

/* The page: NUL-terminated UTF-8 HTML, to be sent as
 * "text/html; charset=utf-8". Its style and script are inline, so a
 * Content-Security-Policy on /docs must allow inline style and script. */
extern const char DOCS_PAGE_HTML[];
/* strlen(DOCS_PAGE_HTML), known at compile time. */
extern const size_t DOCS_PAGE_HTML_LEN;

#endif
