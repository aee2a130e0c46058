/* SPDX-License-Identifier: Apache-2.0 */
#include "test_child.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

int test_child_run(const char *mode, const char *dir, char *log, size_t cap)
{
    assert_true(cap > 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(p[1], 2) < 0) {
            _exit(100);
        }
        close(p[0]);
        execl("/proc/self/exe", program_invocation_short_name, mode, dir, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    char sink[4096];
    for (;;) {
        char *to = len < cap - 1 ? log + len : sink;
        size_t room = len < cap - 1 ? cap - 1 - len : sizeof sink;
        ssize_t n = read(p[0], to, room);
        if (n <= 0) {
            break;
        }
        len += to == sink ? 0 : (size_t)n;
    }
    log[len] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}
