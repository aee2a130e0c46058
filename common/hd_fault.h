/* SPDX-License-Identifier: Apache-2.0 */
/* Deliberate defects, for proving that the fault-injection suite (jepsen/)
 * finds what it claims to find. They exist only in a build configured with
 * -DHERALD_FAULTY_BUILD=<name> (jepsen/run --faulty-build <name> does that);
 * a normal build compiles every one of them to a constant 0. */
#ifndef HD_FAULT_H
#define HD_FAULT_H

#if defined(HERALD_FAULT_ACK_BEFORE_FSYNC)
/* WAL writes go to the page cache (no O_DIRECT, no RWF_DSYNC, no
 * fdatasync): an append is acknowledged before it is durable. */
#define HD_FAULT_ACK_BEFORE_FSYNC 1
#define HD_FAULTY_BUILD_NAME "ack-before-fsync"
#else
#define HD_FAULT_ACK_BEFORE_FSYNC 0
#endif

#if defined(HERALD_FAULT_SKIP_DEDUP)
/* apply never looks a nonce up: a retried append is written again. */
#define HD_FAULT_SKIP_DEDUP 1
#define HD_FAULTY_BUILD_NAME "skip-dedup"
#else
#define HD_FAULT_SKIP_DEDUP 0
#endif

#endif
