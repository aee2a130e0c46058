/* SPDX-License-Identifier: Apache-2.0 */
/* The repair marker: DATA/REPAIR_NEEDED, written when a node finds its own data damaged. */
#ifndef HD_DAMAGE_H
#define HD_DAMAGE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Damage found while the node runs (a RocksDB table failing its checksum)
 * stops the node with exit 3 at once. The next start may open the same
 * state without noticing anything (RocksDB reads a table's blocks only when
 * asked), so the finding must outlive the process: with --repair auto,
 * heraldd arms the marker, and the code that finds the damage writes
 * DATA/REPAIR_NEEDED (one line: what was damaged) durably before it stops.
 * The next start sees the file and repairs (heraldd/repair.c), which
 * removes it last. Text, not parsed: the reason is only logged and shown.
 */

#define HD_DAMAGE_MARKER "REPAIR_NEEDED"
#define HD_DAMAGE_REASON_MAX 256u

/* Arms the marker for data_dir (copied); without it hd_damage_mark() is a no-op. */
void hd_damage_arm(const char *data_dir);

/* Writes the armed directory's marker with `reason` (its first line,
 * HD_DAMAGE_REASON_MAX bytes at most), durably: temp file, fsync, rename,
 * fsync of the directory. Safe to call just before _exit(). Returns 0,
 * HD_ENOTFOUND when not armed, or the error of the write. */
int hd_damage_mark(const char *reason);

/* The same for a given directory (armed or not). */
int hd_damage_mark_at(const char *data_dir, const char *reason);

/* Whether data_dir holds a marker; its reason into `reason` (cap bytes;
 * reason may be NULL with cap 0). */
bool hd_damage_marked(const char *data_dir, char *reason, size_t cap);

/* Start-up, with --repair auto: a stop for damage found before the node
 * serves (RocksDB finding a table damaged as it opens) starts the program
 * again at once (execv of argv) instead of exiting, so the marker is acted
 * on without a supervisor. NULL: exit (the default, and once serving). */
void hd_damage_restart_with(char **argv);

/* Stops the process for damage just marked: the start again of
 * hd_damage_restart_with(), or _exit(status). */
void hd_damage_stop(int status) __attribute__((noreturn));

/* Starts the program again (execv of argv, /proc/self/exe), logging why;
 * returns only if that fails (logged). */
void hd_damage_exec(char **argv, const char *why);

/* Removes the marker, durably. 0 (also when there was none) or an error. */
int hd_damage_clear(const char *data_dir);

#endif
