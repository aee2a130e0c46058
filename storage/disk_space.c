/* SPDX-License-Identifier: Apache-2.0 */
/* The free-space reserve: statvfs readings on a timer and near the edge. */
#include "disk_space.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

struct st_space {
    uv_timer_t timer;
    char *dir;
    struct st_space_status st;
};

/* One statvfs; keeps the last good reading when it fails (the file system
 * answering EIO is not evidence of space). Logs every change of state. */
static void st__space_read(struct st_space *s)
{
    struct statvfs v;
    s->st.readings++;
    if (statvfs(s->dir, &v) != 0) {
        int rv = hd_from_errno(errno);
        if (s->st.error != rv) {
            HD_LOG_WARN("disk space: statvfs %s: %s", s->dir, strerror(errno));
        }
        s->st.error = rv;
        return;
    }
    s->st.error = 0;
    s->st.free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    s->st.total_bytes = (uint64_t)v.f_blocks * v.f_frsize;
    bool low = s->st.reserve > 0 && s->st.free_bytes < s->st.reserve;
    if (low && !s->st.low) {
        HD_LOG_WARN("disk space: %llu bytes free on %s, below the reserve of %llu: "
                    "refusing appends (507) until space returns",
                    (unsigned long long)s->st.free_bytes, s->dir,
                    (unsigned long long)s->st.reserve);
    } else if (!low && s->st.low) {
        HD_LOG_WARN("disk space: %llu bytes free on %s, the reserve of %llu is "
                    "back: accepting appends again",
                    (unsigned long long)s->st.free_bytes, s->dir,
                    (unsigned long long)s->st.reserve);
    }
    s->st.low = low;
    bool floor = s->st.reserve > 0 && s->st.free_bytes < s->st.reserve / 2;
    if (floor && !s->st.below_floor) {
        HD_LOG_WARN("disk space: %llu bytes free on %s, below half the reserve: no "
                    "longer storing replicated entries (this node falls behind until "
                    "space returns)", (unsigned long long)s->st.free_bytes, s->dir);
    } else if (!floor && s->st.below_floor) {
        HD_LOG_WARN("disk space: %llu bytes free on %s, above half the reserve: "
                    "storing replicated entries again", (unsigned long long)s->st.free_bytes,
                    s->dir);
    }
    s->st.below_floor = floor;
}

static void st__space_tick(uv_timer_t *t)
{
    st__space_read(t->data);
}

int st_space_open(struct st_space **out, const struct st_space_options *opts,
                  char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(out != NULL && opts != NULL && opts->loop != NULL && opts->dir != NULL);
    struct statvfs v;
    if (statvfs(opts->dir, &v) != 0) {
        int err = errno;
        snprintf(errmsg, errmsg_len, "disk space: statvfs %s: %s", opts->dir, strerror(err));
        return hd_from_errno(err);
    }
    struct st_space *s = hd_calloc(1, sizeof *s);
    char *dir = hd_malloc(strlen(opts->dir) + 1);
    if (s == NULL || dir == NULL) {
        hd_free(s);
        hd_free(dir);
        snprintf(errmsg, errmsg_len, "disk space: out of memory");
        return HD_ENOMEM;
    }
    strcpy(dir, opts->dir);
    s->dir = dir;
    s->st.reserve = opts->reserve;
    st__space_read(s);
    unsigned every = opts->every_ms != 0 ? opts->every_ms : ST_SPACE_DEFAULT_EVERY_MS;
    uv_timer_init(opts->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, st__space_tick, every, every);
    uv_unref((uv_handle_t *)&s->timer); /* never keeps the loop alive */
    *out = s;
    return 0;
}

static void st__space_closed(uv_handle_t *h)
{
    struct st_space *s = h->data;
    hd_free(s->dir);
    hd_free(s);
}

void st_space_close(struct st_space *s)
{
    if (s == NULL) {
        return;
    }
    uv_close((uv_handle_t *)&s->timer, st__space_closed);
}

/* Whether a write must be refused now by the given flag of the reading
 * (counted in *count when it is). Near the edge one write batch can cross
 * it: the timer's reading is not enough there, so read again now. */
static bool st__space_refuses(struct st_space *s, const bool *flag, uint64_t *count)
{
    HD_ASSERT(s != NULL);
    if (s->st.reserve == 0) {
        return false;
    }
    if (s->st.free_bytes / 2 < s->st.reserve) {
        st__space_read(s);
    }
    if (*flag) {
        (*count)++;
    }
    return *flag;
}

bool st_space_low(struct st_space *s)
{
    return st__space_refuses(s, &s->st.low, &s->st.refused);
}

bool st_space_floor(struct st_space *s)
{
    return st__space_refuses(s, &s->st.below_floor, &s->st.floor_refused);
}

void st_space_status(const struct st_space *s, struct st_space_status *out)
{
    HD_ASSERT(s != NULL && out != NULL);
    *out = s->st;
}

int st_space_probe(const char *dir)
{
    HD_ASSERT(dir != NULL);
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.write-probe", dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        return HD_EINVAL;
    }
    int rv = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return hd_from_errno(errno);
    }
    if (write(fd, "p", 1) != 1 || fdatasync(fd) != 0) {
        rv = hd_from_errno(errno != 0 ? errno : EIO);
    }
    close(fd);
    if (unlink(path) != 0 && rv == 0) {
        rv = hd_from_errno(errno);
    }
    return rv;
}
