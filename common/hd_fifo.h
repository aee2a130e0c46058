/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive FIFO queues: a head and a tail pointer over items linked by `next`. */
#ifndef HD_FIFO_H
#define HD_FIFO_H

#include <stddef.h>

/*
 * herald's queues (appends waiting for a shard, entries in flight, frames
 * for a peer, raft's send callbacks, WAL records waiting for a write) are
 * singly linked lists of the items themselves, so queueing never
 * allocates. The structs keep their own head and tail fields; these macros
 * are the one implementation of pushing and popping on them. head and tail
 * are lvalues without side effects.
 */

/* Appends item (whose `next` is overwritten) at the tail. */
#define HD_FIFO_PUSH(head, tail, item) \
    do {                               \
        (item)->next = NULL;           \
        if ((tail) != NULL) {          \
            (tail)->next = (item);     \
        } else {                       \
            (head) = (item);           \
        }                              \
        (tail) = (item);               \
    } while (0)

/* Removes the head item into out (NULL if the queue is empty). */
#define HD_FIFO_POP(head, tail, out)      \
    do {                                  \
        (out) = (head);                   \
        if ((out) != NULL) {              \
            (head) = (out)->next;         \
            if ((head) == NULL) {         \
                (tail) = NULL;            \
            }                             \
            (out)->next = NULL;           \
        }                                 \
    } while (0)

#endif
