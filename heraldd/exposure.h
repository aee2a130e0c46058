/* SPDX-License-Identifier: Apache-2.0 */
/* Safe defaults: a node reachable beyond this host does not run without tokens by accident. */
#ifndef HERALDD_EXPOSURE_H
#define HERALDD_EXPOSURE_H

#include <stdbool.h>
#include <stddef.h>

/* True if listen ("host:port", "[v6]:port") is a loopback address:
 * 127.0.0.0/8, ::1 or "localhost". */
bool api_listen_is_loopback(const char *listen);

/* Refuses (HD_EINVAL, errmsg says why and what to do) an HTTP address
 * other than loopback without an auth file, unless insecure. */
int api_exposure_check(const char *listen, bool have_auth_file, bool insecure, char *errmsg,
                       size_t errmsg_len);

#endif
