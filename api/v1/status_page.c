/* SPDX-License-Identifier: Apache-2.0 */
/* GET / and HEAD /: the built-in status page (status_page/index.html,
 * embedded at build time by cmake/embed_file.cmake). It is self-contained
 * and polls /v1/status, so it works with no network beyond this node. */
#include "api.h"

extern const unsigned char api_status_page_html[];
extern const size_t api_status_page_html_len;

/* The page has inline style and script and talks only to this origin. */
#define API_STATUS_PAGE_HEADERS                                                            \
    "Cache-Control: no-cache\r\n"                                                          \
    "X-Content-Type-Options: nosniff\r\n"                                                  \
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "             \
    "script-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n"

void api_status_page(struct api_server *s, struct api_http_conn *c)
{
    s->metrics.requests++;
    s->metrics.responses_by_class[2]++;
    api_http_respond(c, 200, "text/html; charset=utf-8", API_STATUS_PAGE_HEADERS,
                     api_status_page_html, api_status_page_html_len);
}
