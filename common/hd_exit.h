/* SPDX-License-Identifier: Apache-2.0 */
/* The exit statuses of heraldd, one place for all of them (README, "Exit
 * statuses", documents each). A supervisor can tell them apart: 0 and 1
 * need nothing, 3 needs the disk replaced, 4 and 5 a restart (after space or
 * the disk is back), 6 a restart, which repairs. */
#ifndef HD_EXIT_H
#define HD_EXIT_H

#define HD_EXIT_OK 0          /* stopped by SIGTERM or SIGINT */
#define HD_EXIT_START 1       /* could not start (the log says why), or a second SIGINT */
#define HD_EXIT_USAGE 2       /* bad command line */
/* State found corrupt while running, damaged data found at start that is
 * not repaired (--repair off, or no peer to repair from), or a committed
 * entry that cannot be applied: this replica can no longer be trusted. With
 * --repair auto, RocksDB damage leaves DATA/REPAIR_NEEDED first, and the
 * next start repairs (heraldd/repair.c). */
#define HD_EXIT_CORRUPT 3
/* A write of the Raft log failed: a WAL write or sync (EIO, ENOSPC past
 * the reserve, a segment that could not be created), or a term/vote. Nothing it held was acknowledged; a restart
 * replays the WAL, cuts what the failed write left, and catches up. */
#define HD_EXIT_WAL_FAILED 4
/* A committed entry could not be applied to the state (RocksDB refused the
 * write: an I/O error or no space for a flush). The WAL holds the entry; a
 * restart applies it again. */
#define HD_EXIT_APPLY_FAILED 5
/* State found corrupt while running, with --repair auto: DATA/REPAIR_NEEDED
 * is written, and the restart a supervisor makes repairs the node from its
 * peers. Not 3, so that a supervisor that must not restart a node waiting
 * for a new disk (exit 3) still restarts this one. */
#define HD_EXIT_REPAIR 6

#endif
