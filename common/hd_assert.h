/* SPDX-License-Identifier: Apache-2.0 */
/* Assertions: HD_ASSERT is always on, HD_DASSERT only in debug builds. */
#ifndef HD_ASSERT_H
#define HD_ASSERT_H

#include <stdbool.h>

void hd__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Cheap checks of programmer errors; on in every build. */
#define HD_ASSERT(expr) \
    ((expr) ? (void)0 : hd__assert_fail(#expr, __FILE__, __LINE__))

/* Expensive checks; only in debug builds. */
#ifdef NDEBUG
#define HD_DASSERT(expr) ((void)0)
#else
#define HD_DASSERT(expr) HD_ASSERT(expr)
#endif

/* Defensive branches that should never be taken: assert in debug builds,
 * evaluate to the condition in release builds so the caller can recover. */
#ifdef NDEBUG
#define HD_NEVER(cond) (cond)
#define HD_ALWAYS(cond) (cond)
#else
#define HD_NEVER(cond) ((cond) ? (hd__assert_fail(#cond, __FILE__, __LINE__), true) : false)
#define HD_ALWAYS(cond) ((cond) ? true : (hd__assert_fail(#cond, __FILE__, __LINE__), false))
#endif

#define HD_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#endif
