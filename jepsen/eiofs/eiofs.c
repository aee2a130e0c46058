// SPDX-License-Identifier: Apache-2.0
//
// hj-eiofs: a passthrough FUSE file system for the jepsen suite's disk-eio
// nemesis. It mirrors a backing directory (a node's ext4 image) at a mount
// point, and fails chosen operations with EIO while armed, on a file system
// that is otherwise healthy.
//
// Why FUSE: an LD_PRELOAD shim cannot reach io_uring's writes (they do not
// go through libc) and this kernel has no device-mapper (dm-flakey), but
// every write, io_uring's included, goes through the VFS, so a FUSE file
// system sees it.
//
//   hj-eiofs --backing=DIR --control=FILE [--stats=FILE] MOUNTPOINT [-f] [-o opt]
//
// Control: FILE lives outside the mount. It holds words separated by
// blanks; the file missing or empty means disarmed:
//
//   write       every write fails with EIO (nothing reaches the backing file)
//   fsync       every fsync, fdatasync and directory fsync fails with EIO
//               (what was written stays in the backing file's page cache),
//               and so does every write to a file opened with O_DIRECT,
//               O_DSYNC or O_SYNC (the WAL's RWF_DSYNC writes), after it
//               reached the backing file
//   fallocate   every fallocate fails with EIO
//   once        only the first matching operation after this arming fails
//   under=PATH  only operations on files under PATH (as seen in the mount,
//               e.g. /data/state) fail
//
// The nemesis replaces the file (write a temporary, rename it over FILE).
// Every operation that could fail looks at FILE's identity (inode, size,
// mtime) first and reads it again when it changed, so an arming is in force
// for every operation that starts after the rename returned: no signal and
// no race with a watcher thread. A file that does not parse leaves the
// previous state in force and is logged.
//
// Stats: FILE gets one line, "write N fsync N fallocate N", the totals of
// injected errors since the start, rewritten after each injection.
//
// Locks (flock and fcntl, heraldd's DATA/LOCK and RocksDB's LOCK) are not
// implemented here on purpose: without lock operations the kernel keeps
// them itself on the FUSE inode, which is right for processes of one
// machine.
//
// O_DIRECT: the backing file is opened with O_DSYNC instead (a FUSE write
// buffer is not aligned for O_DIRECT, and what the caller asked of
// O_DIRECT+RWF_DSYNC is that a completed write be durable), and the kernel
// is told to bypass its page cache for it (direct_io).

#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PROG "hj-eiofs"
// Injected errors logged one by one per arming; the rest only counted.
#define LOG_EACH 20

enum eio_op { EIO_WRITE, EIO_FSYNC, EIO_FALLOCATE, EIO_OPS };
static const char *const op_names[EIO_OPS] = {"write", "fsync", "fallocate"};

struct options {
    const char *backing;
    const char *control;
    const char *stats;
    int show_help;
};

static struct options opts;
static int root_fd = -1;  // the backing directory; every path is relative to it

// The armed state, as last read from the control file.
static struct {
    pthread_mutex_t lock;
    int known;        // a control file identity was seen
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    unsigned mask;    // 1 << enum eio_op
    int once;
    char under[256];  // "": every path
    int fired;        // `once`: the one error of this arming was injected
    unsigned logged;  // injections logged in this arming
    unsigned long long injected[EIO_OPS];
} st = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char line[1024];
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld " PROG ": ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, now.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

// Parses the control file's words into mask/once/under; -1 on an unknown
// word.
static int parse_control(const char *text, unsigned *mask, int *once, char *under,
                         size_t under_len)
{
    *mask = 0;
    *once = 0;
    under[0] = '\0';
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        int found = 0;
        for (int i = 0; i < EIO_OPS; i++) {
            if (strcmp(w, op_names[i]) == 0) {
                *mask |= 1u << i;
                found = 1;
            }
        }
        if (strcmp(w, "once") == 0) {
            *once = 1;
            found = 1;
        }
        if (strncmp(w, "under=/", 7) == 0 && strlen(w + 6) < under_len) {
            snprintf(under, under_len, "%s", w + 6);
            found = 1;
        }
        if (!found) {
            logf_("control %s: unknown word '%s' (known: write fsync fallocate once "
                  "under=/PATH); previous state kept", opts.control, w);
            return -1;
        }
    }
    return 0;
}

// Reads the control file again if it changed; st.lock held.
static void refresh_control(void)
{
    struct stat s;
    if (stat(opts.control, &s) != 0) {
        if (st.known || st.mask) {
            logf_("control %s gone: disarmed", opts.control);
        }
        st.known = 0;
        st.mask = 0;
        return;
    }
    if (st.known && s.st_dev == st.dev && s.st_ino == st.ino && s.st_size == st.size &&
        s.st_mtim.tv_sec == st.mtime.tv_sec && s.st_mtim.tv_nsec == st.mtime.tv_nsec) {
        return;
    }
    char text[256] = "";
    FILE *f = fopen(opts.control, "r");
    if (f == NULL) {
        logf_("control %s: %s; previous state kept", opts.control, strerror(errno));
        return;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    st.known = 1;
    st.dev = s.st_dev;
    st.ino = s.st_ino;
    st.size = s.st_size;
    st.mtime = s.st_mtim;
    unsigned mask;
    int once;
    char under[sizeof st.under];
    if (parse_control(text, &mask, &once, under, sizeof under) != 0) {
        return;
    }
    st.mask = mask;
    st.once = once;
    memcpy(st.under, under, sizeof under);
    st.fired = 0;
    st.logged = 0;
    logf_("control: %s%s%s%s", mask ? "armed:" : "disarmed",
          mask & (1u << EIO_WRITE) ? " write" : "", mask & (1u << EIO_FSYNC) ? " fsync" : "",
          mask & (1u << EIO_FALLOCATE) ? " fallocate" : "");
    if (once && mask) {
        logf_("control: once (only the first matching operation fails)");
    }
    if (st.under[0] && mask) {
        logf_("control: only under %s", st.under);
    }
}

// Rewrites the stats file; st.lock held.
static void write_stats(void)
{
    if (opts.stats == NULL) {
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", opts.stats);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        logf_("stats %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "write %llu fsync %llu fallocate %llu\n", st.injected[EIO_WRITE],
            st.injected[EIO_FSYNC], st.injected[EIO_FALLOCATE]);
    if (fclose(f) != 0 || rename(tmp, opts.stats) != 0) {
        logf_("stats %s: %s", opts.stats, strerror(errno));
    }
}

// Whether path lies under st.under (every path when that is empty).
static int in_scope(const char *path)
{
    size_t n = strlen(st.under);
    if (n == 0) {
        return 1;
    }
    while (n > 1 && st.under[n - 1] == '/') {
        n--;
    }
    return path != NULL && strncmp(path, st.under, n) == 0 &&
           (path[n] == '\0' || path[n] == '/');
}

// Whether this operation must fail with EIO now (and counts it if so).
static int inject(enum eio_op op, const char *path)
{
    pthread_mutex_lock(&st.lock);
    refresh_control();
    int fail = (st.mask & (1u << op)) && !(st.once && st.fired) && in_scope(path);
    if (fail) {
        st.fired = 1;
        st.injected[op]++;
        if (st.logged < LOG_EACH) {
            logf_("EIO injected: %s %s (%llu %s errors so far)", op_names[op],
                  path ? path : "(unlinked file)", st.injected[op], op_names[op]);
        } else if (st.logged == LOG_EACH) {
            logf_("more errors injected in this arming are only counted (stats file)");
        }
        st.logged++;
        write_stats();
    }
    pthread_mutex_unlock(&st.lock);
    return fail;
}

// A FUSE path ("/a/b") relative to the backing directory ("a/b", or ".").
static const char *rel(const char *path)
{
    while (*path == '/') {
        path++;
    }
    return *path ? path : ".";
}

// fi->fh: the backing descriptor, and SYNC_FILE when every write to it is
// also a sync (opened with O_DIRECT, O_DSYNC or O_SYNC).
#define SYNC_FILE (1ull << 32)

static int fd_of(const struct fuse_file_info *fi)
{
    return (int)(fi->fh & 0xffffffffu);
}

#define ERR(expr) ((expr) < 0 ? -errno : 0)

static void *e_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    // Unlink at once, not as a hidden rename: open files are used through
    // their descriptors, and a .fuse_hidden file would show up in the
    // directories heraldd and RocksDB list.
    cfg->hard_remove = 1;
    // The suite changes the backing files directly (corrupt, disk-full):
    // no cached attributes or names may hide that.
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->kernel_cache = 0;
    return NULL;
}

static int e_getattr(const char *path, struct stat *s, struct fuse_file_info *fi)
{
    if (fi != NULL) {
        return ERR(fstat(fd_of(fi), s));
    }
    return ERR(fstatat(root_fd, rel(path), s, AT_SYMLINK_NOFOLLOW));
}

static int e_access(const char *path, int mask)
{
    return ERR(faccessat(root_fd, rel(path), mask, 0));
}

static int e_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(root_fd, rel(path), buf, size - 1);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return 0;
}

static int e_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(root_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int err = errno;
        close(fd);
        return -err;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

static int e_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    DIR *d = (DIR *)(uintptr_t)fi->fh;
    // The whole listing in one call (offset 0 to filler): libfuse keeps it.
    rewinddir(d);
    errno = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat s = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (filler(buf, e->d_name, &s, 0, 0) != 0) {
            break;
        }
    }
    return -errno;
}

static int e_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static int e_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    if (inject(EIO_FSYNC, path)) {
        return -EIO;
    }
    return ERR(fsync(dirfd((DIR *)(uintptr_t)fi->fh)));
}

static int e_mknod(const char *path, mode_t mode, dev_t rdev)
{
    return ERR(mknodat(root_fd, rel(path), mode, rdev));
}

static int e_mkdir(const char *path, mode_t mode)
{
    return ERR(mkdirat(root_fd, rel(path), mode));
}

static int e_unlink(const char *path)
{
    return ERR(unlinkat(root_fd, rel(path), 0));
}

static int e_rmdir(const char *path)
{
    return ERR(unlinkat(root_fd, rel(path), AT_REMOVEDIR));
}

static int e_symlink(const char *target, const char *path)
{
    return ERR(symlinkat(target, root_fd, rel(path)));
}

static int e_rename(const char *from, const char *to, unsigned int flags)
{
    return ERR(renameat2(root_fd, rel(from), root_fd, rel(to), flags));
}

static int e_link(const char *from, const char *to)
{
    // RocksDB's checkpoints hard-link table files.
    return ERR(linkat(root_fd, rel(from), root_fd, rel(to), 0));
}

static int e_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi != NULL) {
        return ERR(fchmod(fd_of(fi), mode));
    }
    return ERR(fchmodat(root_fd, rel(path), mode, 0));
}

static int e_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    if (fi != NULL) {
        return ERR(fchown(fd_of(fi), uid, gid));
    }
    return ERR(fchownat(root_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int e_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (fi != NULL) {
        return ERR(ftruncate(fd_of(fi), size));
    }
    int fd = openat(root_fd, rel(path), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = ERR(ftruncate(fd, size));
    close(fd);
    return rv;
}

static int e_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fi != NULL) {
        return ERR(futimens(fd_of(fi), tv));
    }
    return ERR(utimensat(root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

// O_DIRECT becomes O_DSYNC on the backing file (see the top of the file).
static int backing_flags(struct fuse_file_info *fi)
{
    int flags = fi->flags | O_CLOEXEC;
    if (flags & O_DIRECT) {
        flags = (flags & ~O_DIRECT) | O_DSYNC;
        fi->direct_io = 1;
    }
    return flags;
}

static void set_fh(struct fuse_file_info *fi, int fd, int flags)
{
    fi->fh = (uint64_t)fd | ((flags & (O_DSYNC | O_SYNC)) ? SYNC_FILE : 0);
}

static int e_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int flags = backing_flags(fi);
    int fd = openat(root_fd, rel(path), flags, mode);
    if (fd < 0) {
        return -errno;
    }
    set_fh(fi, fd, flags);
    return 0;
}

static int e_open(const char *path, struct fuse_file_info *fi)
{
    int flags = backing_flags(fi);
    int fd = openat(root_fd, rel(path), flags);
    if (fd < 0) {
        return -errno;
    }
    set_fh(fi, fd, flags);
    return 0;
}

static int e_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    ssize_t n = pread(fd_of(fi), buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int e_write(const char *path, const char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    if (inject(EIO_WRITE, path)) {
        return -EIO;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd_of(fi), buf + done, size - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return done ? (int)done : -errno;
        }
        done += (size_t)n;
    }
    // A synchronous file's write is a write and a sync: with fsync armed it
    // reaches the backing file and still fails, as a failed sync would
    // leave it (the kernel sends no fsync of its own for RWF_DSYNC or
    // O_DSYNC writes on a direct_io file).
    if ((fi->fh & SYNC_FILE) && inject(EIO_FSYNC, path)) {
        return -EIO;
    }
    return (int)done;
}

static int e_statfs(const char *path, struct statvfs *s)
{
    (void)path;
    // The backing file system's figures: heraldd's free-space reserve.
    return ERR(fstatvfs(root_fd, s));
}

static int e_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    // close() of a duplicate reports what the backing file system deferred.
    int fd = dup(fd_of(fi));
    if (fd < 0) {
        return -errno;
    }
    return ERR(close(fd));
}

static int e_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close(fd_of(fi));
    return 0;
}

static int e_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    if (inject(EIO_FSYNC, path)) {
        return -EIO;
    }
    return ERR(datasync ? fdatasync(fd_of(fi)) : fsync(fd_of(fi)));
}

static int e_fallocate(const char *path, int mode, off_t off, off_t len,
                       struct fuse_file_info *fi)
{
    if (inject(EIO_FALLOCATE, path)) {
        return -EIO;
    }
    return ERR(fallocate(fd_of(fi), mode, off, len));
}

static off_t e_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    (void)path;
    off_t r = lseek(fd_of(fi), off, whence);
    return r < 0 ? -errno : r;
}

static const struct fuse_operations eio_ops = {
    .init = e_init,
    .getattr = e_getattr,
    .access = e_access,
    .readlink = e_readlink,
    .opendir = e_opendir,
    .readdir = e_readdir,
    .releasedir = e_releasedir,
    .fsyncdir = e_fsyncdir,
    .mknod = e_mknod,
    .mkdir = e_mkdir,
    .unlink = e_unlink,
    .rmdir = e_rmdir,
    .symlink = e_symlink,
    .rename = e_rename,
    .link = e_link,
    .chmod = e_chmod,
    .chown = e_chown,
    .truncate = e_truncate,
    .utimens = e_utimens,
    .create = e_create,
    .open = e_open,
    .read = e_read,
    .write = e_write,
    .statfs = e_statfs,
    .flush = e_flush,
    .release = e_release,
    .fsync = e_fsync,
    .fallocate = e_fallocate,
    .lseek = e_lseek,
};

#define OPT(t, p) {t, offsetof(struct options, p), 1}
static const struct fuse_opt opt_spec[] = {
    OPT("--backing=%s", backing),
    OPT("--control=%s", control),
    OPT("--stats=%s", stats),
    OPT("-h", show_help),
    OPT("--help", show_help),
    FUSE_OPT_END,
};

static void usage(void)
{
    printf("usage: " PROG " --backing=DIR --control=FILE [--stats=FILE] MOUNTPOINT [options]\n"
           "\n"
           "Mirrors DIR at MOUNTPOINT and fails chosen operations with EIO while armed.\n"
           "FILE (outside the mount) holds the armed operations, words out of:\n"
           "  write        every write fails (nothing reaches DIR)\n"
           "  fsync        every fsync, fdatasync and directory fsync fails, and every\n"
           "               write to a file opened O_DIRECT, O_DSYNC or O_SYNC (after\n"
           "               it reached DIR)\n"
           "  fallocate    every fallocate fails\n"
           "  once         only the first matching operation after arming fails\n"
           "  under=/PATH  only files under PATH (as seen in the mount) fail\n"
           "Missing or empty: disarmed. Replace FILE with a rename; it is read again\n"
           "when it changes. --stats=FILE gets 'write N fsync N fallocate N', the\n"
           "errors injected since the start.\n"
           "\n");
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    if (fuse_opt_parse(&args, &opts, opt_spec, NULL) == -1) {
        return 2;
    }
    if (opts.show_help) {
        usage();
        // fuse_main prints the library's own options and exits.
        fuse_opt_add_arg(&args, "--help");
        args.argv[0][0] = '\0';
        int rv = fuse_main(args.argc, args.argv, &eio_ops, NULL);
        fuse_opt_free_args(&args);
        return rv;
    }
    if (opts.backing == NULL || opts.control == NULL) {
        fprintf(stderr, PROG ": --backing=DIR and --control=FILE are required (see --help)\n");
        fuse_opt_free_args(&args);
        return 2;
    }
    root_fd = open(opts.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        fprintf(stderr, PROG ": backing directory %s: %s\n", opts.backing, strerror(errno));
        fuse_opt_free_args(&args);
        return 1;
    }
    umask(0);  // the caller's mode bits reach the backing files unchanged
    pthread_mutex_lock(&st.lock);
    refresh_control();
    write_stats();
    pthread_mutex_unlock(&st.lock);
    logf_("mirroring %s, control %s", opts.backing, opts.control);
    int rv = fuse_main(args.argc, args.argv, &eio_ops, NULL);
    pthread_mutex_lock(&st.lock);
    logf_("unmounted; injected write %llu fsync %llu fallocate %llu", st.injected[EIO_WRITE],
          st.injected[EIO_FSYNC], st.injected[EIO_FALLOCATE]);
    pthread_mutex_unlock(&st.lock);
    close(root_fd);
    fuse_opt_free_args(&args);
    return rv;
}
