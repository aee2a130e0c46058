/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes shared by every herald module, generated from one X-macro table. */
#ifndef HD_ERROR_H
#define HD_ERROR_H

/* Functions return 0 on success or a negative HD_E* code. */
#define HD_ERRNO_MAP(X)                                                   \
    X(NOMEM, "out of memory")                                             \
    X(IO, "input/output error")                                           \
    X(CORRUPT, "data is corrupt")                                         \
    X(INVAL, "invalid argument")                                          \
    X(NOSPC, "no space left on device")                                   \
    X(BUSY, "resource busy")                                              \
    X(NOTFOUND, "not found")                                              \
    X(NOTLEADER, "not the leader")                                        \
    X(SHUTDOWN, "shutting down")                                          \
    X(TOOBIG, "too big")                                                  \
    X(UNAVAIL, "unavailable")                                             \
    X(EXIST, "already exists")                                            \
    X(LOCKED, "locked by another process")                                \
    X(FAILED, "in failed state after an earlier I/O error")               \
    X(UNKNOWN, "outcome unknown")                                         \
    X(NOSYS, "not supported")                                             \
    X(RANGE, "out of range")                                              \
    X(GONE, "removed by a trim or retention")

enum {
    HD__E_FIRST = 1000,
#define HD__ERR_POS(name, text) HD__E_##name,
    HD_ERRNO_MAP(HD__ERR_POS)
#undef HD__ERR_POS
};

/* The codes themselves are negative, so `return HD_EIO;` reads naturally. */
enum {
    HD_OK = 0,
#define HD__ERR_NEG(name, text) HD_E##name = -HD__E_##name,
    HD_ERRNO_MAP(HD__ERR_NEG)
#undef HD__ERR_NEG
};

/* Static description of a (negative) error code. Never NULL. */
const char *hd_strerror(int rv);

/* Maps an errno value (positive) to a negative HD_E* code. */
int hd_from_errno(int err);

#endif
