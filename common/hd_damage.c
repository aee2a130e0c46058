/* SPDX-License-Identifier: Apache-2.0 */
/* The repair marker (see hd_damage.h). */
#include "hd_damage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_file.h"
#include "hd_util.h"

static char hd__armed_dir[PATH_MAX];
static char **hd__restart_argv;

void hd_damage_arm(const char *data_dir)
{
    snprintf(hd__armed_dir, sizeof hd__armed_dir, "%s", data_dir);
}

int hd_damage_mark(const char *reason)
{
    if (hd__armed_dir[0] == '\0') {
        return HD_ENOTFOUND;
    }
    return hd_damage_mark_at(hd__armed_dir, reason);
}

int hd_damage_mark_at(const char *data_dir, const char *reason)
{
    char line[HD_DAMAGE_REASON_MAX + 2];
    size_t n = strcspn(reason, "\n");
    if (n > HD_DAMAGE_REASON_MAX) n = HD_DAMAGE_REASON_MAX;
    memcpy(line, reason, n);
    line[n++] = '\n';
    /* Plain system calls only (hd_file_replace): this runs on the way to
     * _exit(), possibly from a RocksDB thread, with nothing else to rely on. */
    return hd_file_replace(data_dir, HD_DAMAGE_MARKER, line, n, 0644);
}

bool hd_damage_marked(const char *data_dir, char *reason, size_t cap)
{
    char text[HD_DAMAGE_REASON_MAX + 2];
    size_t len = 0;
    if (hd_file_read(data_dir, HD_DAMAGE_MARKER, text, sizeof text - 1, &len) != 0) {
        return false;
    }
    if (cap > 0) {
        text[len] = '\0';
        snprintf(reason, cap, "%s", text);
        reason[strcspn(reason, "\n")] = '\0';
        if (reason[0] == '\0') snprintf(reason, cap, "(no reason recorded)");
    }
    return true;
}

int hd_damage_clear(const char *data_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", data_dir, HD_DAMAGE_MARKER);
    if (unlink(path) != 0 && errno != ENOENT) {
        return hd_from_errno(errno);
    }
    return hd_fsync_dir(data_dir);
}

void hd_damage_restart_with(char **argv)
{
    hd__restart_argv = argv;
}

void hd_damage_exec(char **argv, const char *why)
{
    HD_LOG_WARN("starting again: %s", why);
    execv("/proc/self/exe", argv);
    HD_LOG_ERROR("execv /proc/self/exe: %s", strerror(errno));
}

_Noreturn void hd_damage_stop(int status)
{
    if (hd__restart_argv != NULL) {
        hd_damage_exec(hd__restart_argv, "to repair what " HD_DAMAGE_MARKER " names");
    }
    _exit(status);
}
