/* SPDX-License-Identifier: Apache-2.0 */
/* Safe defaults: off loopback, --auth-file or an explicit --insecure. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "exposure.h"
#include "hd_error.h"

bool api_listen_is_loopback(const char *listen)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof host) {
        return false;
    }
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        memcpy(host, listen + 1, n - 2);
        host[n - 2] = '\0';
    } else {
        memcpy(host, listen, n);
        host[n] = '\0';
    }
    if (strcmp(host, "localhost") == 0) {
        return true;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    struct in6_addr a6;
    return inet_pton(AF_INET6, host, &a6) == 1 && memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
}

int api_exposure_check(const char *listen, bool have_auth_file, bool insecure, char *errmsg,
                       size_t errmsg_len)
{
    if (have_auth_file || insecure || api_listen_is_loopback(listen)) {
        return 0;
    }
    snprintf(errmsg, errmsg_len,
             "--listen %s is not a loopback address and there is no --auth-file: anyone who "
             "reaches it could append, read and change the cluster's membership. Give "
             "--auth-file FILE (herald token create makes its lines), or --insecure to run "
             "open anyway (only on a network you trust)", listen);
    return HD_EINVAL;
}
