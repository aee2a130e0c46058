/* SPDX-License-Identifier: Apache-2.0 */
/* What hd_tls.c and hd_tls_ctx.c share, and nothing else uses. */
#ifndef HD_TLS_INTERNAL_H
#define HD_TLS_INTERNAL_H

#include <stddef.h>

/* The reason of the thread's last OpenSSL error ("no start line"), or
 * fallback; clears the thread's error queue. */
void hd__tls_reason(char *out, size_t out_len, const char *fallback);

#endif
