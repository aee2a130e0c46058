/* SPDX-License-Identifier: Apache-2.0 */
/* A leader tells its followers of a new commit index at once. */
#ifndef CONS_COMMIT_NOTICE_H
#define CONS_COMMIT_NOTICE_H

struct cons_node;
struct cons_shard;

/*
 * Raft's leader puts its commit index in every AppendEntries, but sends
 * one only for new entries or once a heartbeat interval has passed since
 * the last. An entry committed while no new one follows reached the
 * followers' state only with the next heartbeat: 100-200 ms later (the
 * heartbeat timeout, checked on ticks of the same period), so subscribers
 * on a follower of a quiet shard saw every message 150 ms after the
 * leader's did. (canonical/raft 0.15 has no call to send the commit.)
 *
 * So CONS_COMMIT_NOTICE_MS after a commit, every shard this node leads
 * whose commit index moved and which proposed nothing since (a proposal's
 * AppendEntries carries the new index already) runs raft's tick with the
 * heartbeat timeout at 0 for that call: each follower gets an
 * AppendEntries holding the commit index, empty if it is up to date. The
 * wait lets a busy shard's next proposal carry the commit instead: each
 * notice costs an AppendEntries and its answer per follower.
 *
 * A follower that stores an entry after the leader committed it (with the
 * other followers' votes) clamps that notice to what it had stored, and
 * learns of the commit only from the next message: so its answer saying
 * it stored entries that are committed already asks for one more notice.
 */

#include <stdint.h>

/* The shard applied an entry as leader: its commit index moved. */
void cons__commit_moved(struct cons_shard *sh);
/* A follower answered an AppendEntries of the shard (not refused): it has
 * stored up to last_index. */
void cons__commit_stored(struct cons_shard *sh, uint64_t from, uint64_t last_index);
/* The shard proposed an entry: its AppendEntries carry the commit index. */
void cons__commit_carried(struct cons_shard *sh);
/* End of a loop turn: if a shard holds a commit its followers have not
 * heard of, makes sure the notice timer runs (node_internal.h). */
void cons__commit_notices(struct cons_node *n);

#define CONS_COMMIT_NOTICE_MS 2u

#endif
