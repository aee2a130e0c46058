/* SPDX-License-Identifier: Apache-2.0 */
/* Error code descriptions and errno translation. */
#include "hd_error.h"

#include <errno.h>

const char *hd_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "ok";
#define HD__ERR_CASE(name, text) \
    case HD_E##name:             \
        return text;
            HD_ERRNO_MAP(HD__ERR_CASE)
#undef HD__ERR_CASE
        default:
            return "unknown error";
    }
}

int hd_from_errno(int err)
{
    switch (err) {
        case ENOMEM:
            return HD_ENOMEM;
        case ENOSPC:
        case EDQUOT:
            return HD_ENOSPC;
        case EINVAL:
            return HD_EINVAL;
        case ENOENT:
            return HD_ENOTFOUND;
        case EEXIST:
            return HD_EEXIST;
        case EBUSY:
        case EWOULDBLOCK:
            return HD_EBUSY;
        case ENOSYS:
        case EOPNOTSUPP:
            return HD_ENOSYS;
        default:
            return HD_EIO;
    }
}
