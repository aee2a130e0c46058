/* SPDX-License-Identifier: Apache-2.0 */
/* WAL recovery: list segments, check and replay them, cut a torn tail. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "wal_internal.h"

/* The rules this file applies are in wal.c, "Recovery". Replay runs once,
 * at startup, before the first append: it blocks the loop on reads and on
 * the zeroing of a torn tail, which is the simple and acceptable cost of a
 * restart. */

#define ST__WAL_SEG_SIZE_MAX (1ull << 40) /* sanity bound on a header's size */

/* Replay state carried across segments. */
struct st__wal_replay {
    struct st_wal *w;        /* the WAL */
    st_wal_replay_cb cb;     /* the caller's callback */
    void *arg;               /* and its argument */
    uint8_t *buf;            /* image of the segment being scanned */
    size_t buf_cap;          /* bytes allocated */
    uint64_t expect;         /* LSN the next segment must start at; 0: any */
    char *errmsg;            /* where failures are described */
    size_t errmsg_len;       /* its size */
};

static int st__wal_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "wal-<16 hex>.<ext>"; returns the index, or 0 if it is not one. */
static uint64_t st__wal_parse_name(const char *name, const char *ext)
{
    if (strncmp(name, "wal-", 4) != 0 || name[20] != '.' ||
        strcmp(name + 21, ext) != 0) {
        return 0;
    }
    uint64_t index = 0;
    for (int i = 4; i < 20; i++) {
        char c = name[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0) {
            return 0;
        }
        index = index << 4 | (uint64_t)digit;
    }
    return index;
}

/* Lists segment indexes in order and deletes leftover .prep files. */
static int st__wal_list(struct st__wal_replay *r, uint64_t **out, size_t *n_out)
{
    HD_ASSERT(out != NULL && n_out != NULL);
    int fd = dup(r->w->dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
        }
        snprintf(r->errmsg, r->errmsg_len, "wal: list directory: %s", strerror(err));
        return hd_from_errno(err);
    }
    rewinddir(dir);
    uint64_t *idx = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(dir)) != NULL) {
        if (strlen(e->d_name) > 21 && st__wal_parse_name(e->d_name, "prep") != 0) {
            HD_LOG_INFO("wal: removing unused prepared segment %s", e->d_name);
            unlinkat(r->w->dirfd, e->d_name, 0);
            continue;
        }
        uint64_t index = strlen(e->d_name) > 21 ? st__wal_parse_name(e->d_name, "seg") : 0;
        if (index == 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *p = hd_realloc(idx, cap * sizeof *idx);
            if (p == NULL) {
                rv = HD_ENOMEM;
                break;
            }
            idx = p;
        }
        idx[n++] = index;
    }
    closedir(dir);
    if (rv != 0) {
        hd_free(idx);
        snprintf(r->errmsg, r->errmsg_len, "wal: list directory: out of memory");
        return rv;
    }
    if (n > 0) {
        qsort(idx, n, sizeof *idx, st__wal_cmp_u64);
    }
    *out = idx;
    *n_out = n;
    return 0;
}

/* Reads a whole segment (missing bytes of a short file read as zeros). */
static int st__wal_read_seg(struct st__wal_replay *r, const char *name,
                            struct st__wal_seg_hdr *hdr, uint64_t *file_size)
{
    HD_ASSERT(r != NULL && hdr != NULL);
    int fd = openat(r->w->dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;
        snprintf(r->errmsg, r->errmsg_len, "wal: open %s: %s", name, strerror(err));
        if (fd >= 0) {
            close(fd);
        }
        return hd_from_errno(err);
    }
    uint8_t head[ST_WAL_SEG_HDR_SIZE];
    ssize_t got = pread(fd, head, sizeof head, 0);
    int rv = st__wal_decode_seg_hdr(head, got > 0 ? (size_t)got : 0, hdr);
    if (rv != 0 || hdr->size > ST__WAL_SEG_SIZE_MAX) {
        snprintf(r->errmsg, r->errmsg_len, "wal: %s: bad segment header at offset 0", name);
        rv = HD_ECORRUPT;
        goto out;
    }
    if (hdr->size > r->buf_cap) {
        hd_free(r->buf);
        r->buf_cap = 0;
        r->buf = hd_malloc((size_t)hdr->size);
        if (r->buf == NULL) {
            snprintf(r->errmsg, r->errmsg_len, "wal: %s: out of memory", name);
            rv = HD_ENOMEM;
            goto out;
        }
        r->buf_cap = (size_t)hdr->size;
    }
    size_t want = (uint64_t)st.st_size < hdr->size ? (size_t)st.st_size : (size_t)hdr->size;
    size_t have = 0;
    while (have < want) {
        got = pread(fd, r->buf + have, want - have, (off_t)have);
        if (got <= 0) {
            snprintf(r->errmsg, r->errmsg_len, "wal: read %s at offset %zu: %s", name,
                     have, got < 0 ? strerror(errno) : "unexpected end of file");
            rv = got < 0 ? hd_from_errno(errno) : HD_EIO;
            goto out;
        }
        have += (size_t)got;
    }
    memset(r->buf + have, 0, (size_t)hdr->size - have);
    *file_size = (uint64_t)st.st_size;
out:
    close(fd);
    return rv;
}

static int st__wal_replay_rec(void *arg, const struct st__wal_rec *rec)
{
    struct st__wal_replay *r = arg;
    HD_ASSERT(rec->lsn > 0);
    return r->cb(r->arg, rec->lsn, rec->payload, rec->len);
}

/* Makes the last segment the active one. A torn tail is cut: the dirty
 * blocks after the cut are zeroed and synced before any append (rule 4). */
static int st__wal_resume(struct st__wal_replay *r, const char *name,
                          const struct st__wal_seg_hdr *hdr, const struct st__wal_scan *scan)
{
    struct st_wal *w = r->w;
    HD_ASSERT(w->fd < 0);
    HD_ASSERT(scan->stop == ST__WAL_STOP_CLEAN || scan->stop == ST__WAL_STOP_TORN);
    uint64_t from = st__wal_align_up(scan->end);
    uint64_t to = from;
    if (scan->stop == ST__WAL_STOP_TORN) {
        to = st__wal_align_up(scan->dirty_end);
        HD_LOG_WARN("wal: %s: torn tail at offset %zu: cut there, dropping %zu "
                    "bytes; the log ends at LSN %llu",
                    name, scan->end, scan->dirty_end - scan->end,
                    (unsigned long long)(scan->next_lsn - 1));
    }
    int fd = st__wal_open_file(w->dirfd, name, O_RDWR);
    if (fd < 0) {
        int err = errno;
        snprintf(r->errmsg, r->errmsg_len, "wal: open %s: %s", name, strerror(err));
        return hd_from_errno(err);
    }
    if (to > from) {
        int rv = st__wal_zero(fd, from, to);
        if (rv == 0 && fdatasync(fd) != 0) {
            rv = hd_from_errno(errno);
        }
        if (rv != 0) {
            close(fd);
            snprintf(r->errmsg, r->errmsg_len, "wal: %s: zeroing the torn tail "
                     "at offset %llu: %s", name, (unsigned long long)from, hd_strerror(rv));
            return rv;
        }
    }
    w->fd = fd;
    w->seg_index = hdr->index;
    w->seg_bytes = hdr->size;
    w->salt = hdr->salt;
    w->write_off = from;
    return 0;
}

/* Checks what a scan found in a segment; 0, HD_ECORRUPT or the callback's. */
static int st__wal_judge(struct st__wal_replay *r, const char *name, bool last,
                         const struct st__wal_scan *scan)
{
    HD_ASSERT(scan->end <= scan->dirty_end);
    switch (scan->stop) {
        case ST__WAL_STOP_CALLBACK:
            snprintf(r->errmsg, r->errmsg_len, "wal: replay stopped by the "
                     "callback at LSN %llu", (unsigned long long)scan->next_lsn);
            return scan->cb_rv;
        case ST__WAL_STOP_CORRUPT:
            snprintf(r->errmsg, r->errmsg_len, "wal: %s: bad record at offset %zu, "
                     "yet a valid group commit follows at offset %zu",
                     name, scan->end, scan->later_off);
            return HD_ECORRUPT;
        case ST__WAL_STOP_TORN:
            /* Only the last segment may end torn. In an earlier one the bad
             * bytes may be a remnant within the cut block; the next
             * segment's first LSN then proves that no record was lost. */
            if (!last && scan->dirty_end > st__wal_align_up(scan->end)) {
                snprintf(r->errmsg, r->errmsg_len, "wal: %s: bad record at offset "
                         "%zu in a segment that is not the last", name, scan->end);
                return HD_ECORRUPT;
            }
            return 0;
        case ST__WAL_STOP_CLEAN:
            return 0;
    }
    HD_ASSERT(false);
    return HD_ECORRUPT;
}

static int st__wal_replay_seg(struct st__wal_replay *r, uint64_t index, bool last)
{
    HD_ASSERT(index > 0);
    char name[ST__WAL_NAME_MAX];
    st__wal_name(name, index, false);
    struct st__wal_seg_hdr hdr;
    uint64_t file_size = 0;
    int rv = st__wal_read_seg(r, name, &hdr, &file_size);
    if (rv != 0) {
        return rv;
    }
    if (hdr.index != index) {
        snprintf(r->errmsg, r->errmsg_len, "wal: %s: header at offset 0 names "
                 "segment %llu", name, (unsigned long long)hdr.index);
        return HD_ECORRUPT;
    }
    if (r->expect != 0 && hdr.first_lsn != r->expect) {
        snprintf(r->errmsg, r->errmsg_len, "wal: %s: header at offset 0 says the "
                 "segment starts at LSN %llu, but LSN %llu comes next: the "
                 "previous segment lost records at its end", name,
                 (unsigned long long)hdr.first_lsn, (unsigned long long)r->expect);
        return HD_ECORRUPT;
    }
    if (file_size < hdr.size) {
        /* Never a crash: a segment is full size before it holds a record
         * (rule 2). Cutting it like a torn tail would drop records that
         * were fsynced and acknowledged, which Raft counted on. */
        snprintf(r->errmsg, r->errmsg_len, "wal: %s: truncated at offset %llu of %llu",
                 name, (unsigned long long)file_size, (unsigned long long)hdr.size);
        return HD_ECORRUPT;
    }
    struct st__wal_scan scan;
    st__wal_scan(r->buf, (size_t)hdr.size, hdr.salt, hdr.first_lsn,
                 st__wal_replay_rec, r, &scan);
    rv = st__wal_judge(r, name, last, &scan);
    if (rv != 0) {
        return rv;
    }
    if (scan.remnants > 0) {
        HD_LOG_INFO("wal: %s: skipped %u remnant(s) of earlier cuts", name, scan.remnants);
    }
    r->expect = scan.next_lsn;
    rv = st__wal_push_seg(r->w, index, hdr.first_lsn);
    if (rv == 0 && last) {
        rv = st__wal_resume(r, name, &hdr, &scan);
    }
    return rv;
}

int st_wal_replay(struct st_wal *w, st_wal_replay_cb cb, void *arg,
                  char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(w != NULL && cb != NULL);
    HD_ASSERT(!w->replayed && !w->closing);
    w->replayed = true;
    struct st__wal_replay r = {.w = w, .cb = cb, .arg = arg,
                               .errmsg = errmsg, .errmsg_len = errmsg_len};
    uint64_t *idx = NULL;
    size_t n = 0;
    int rv = st__wal_list(&r, &idx, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (i > 0 && idx[i] != idx[i - 1] + 1) {
            char name[ST__WAL_NAME_MAX];
            st__wal_name(name, idx[i - 1] + 1, false);
            snprintf(errmsg, errmsg_len, "wal: %s is missing (offset 0)", name);
            rv = HD_ECORRUPT;
            break;
        }
        rv = st__wal_replay_seg(&r, idx[i], i + 1 == n);
    }
    hd_free(r.buf);
    if (rv != 0) {
        hd_free(idx);
        w->failed = true; /* the tail was not checked: no appends */
        HD_LOG_ERROR("%s", errmsg);
        return rv;
    }
    w->next_lsn = n > 0 ? r.expect : 1;
    w->next_index = n > 0 ? idx[n - 1] + 1 : 1;
    w->seg_files = n;
    hd_free(idx);
    HD_LOG_INFO("wal: replayed %zu segment(s); next LSN %llu", n,
                (unsigned long long)w->next_lsn);
    st__wal_start_prep(w);
    return 0;
}
