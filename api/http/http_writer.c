/* SPDX-License-Identifier: Apache-2.0 */
/* The writer thread of streams (http_writer.h): an epoll loop of its own. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "http_writer.h"

#define WRITER__EVENTS 64
#define WRITER__IOV_MAX 256 /* iovecs per writev: a few jobs' worth, under IOV_MAX */

/*
 * Memory: the loop allocates and frees every job and connection; the
 * writer thread only links them. Hand-over is by two mutex-guarded inboxes
 * (jobs, release requests) and two outboxes (finished jobs, released
 * connections); each side takes a whole box at once. The loop signals
 * the eventfd only when it puts the first item in an empty inbox, so a
 * burst of submissions costs one wake-up.
 */

struct http_wjob {
    struct http_wjob *next;
    struct http_wconn *wc;
    void (*release)(void *arg);
    void *arg;
    size_t bytes;
    int status;
    unsigned n_iov, first;      /* iovecs; the first not fully written */
    struct iovec iov[];         /* advanced in place as bytes go out */
};

struct http_wconn {
    struct http_writer *w;
    void *owner;
    int fd;
    /* Under the lock. */
    bool rel_queued;            /* in w->rel_in */
    bool rel_abort;             /* the loop asked for an abortive release */
    bool rel_done;              /* handed back: the loop frees it */
    struct http_wconn *rel_next; /* in w->rel_in */
    struct http_wconn *out_next; /* in the released lists */
    /* The writer thread's. */
    struct http_wjob *head, *tail; /* jobs to write, in order */
    struct http_wconn *ready_next;
    bool ready;                 /* in the ready list */
    bool registered;            /* in the epoll set */
    bool blocked;               /* EAGAIN: waiting for EPOLLOUT */
    bool releasing;             /* released once its jobs are done */
    bool aborting;              /* jobs fail unwritten */
    int error;                  /* the socket failed (negative errno) */
};

struct http_writer {
    uv_loop_t *loop;
    struct http_writer_cbs cbs;
    pthread_t thread;
    int epfd;
    int evfd;
    uv_async_t async;
    void (*closed)(void *arg);
    void *closed_arg;
    pthread_mutex_t lock;
    /* Under lock. */
    struct http_wjob *jobs_in, *jobs_in_tail;
    struct http_wconn *rel_in;
    struct http_wjob *jobs_out, *jobs_out_tail;
    struct http_wconn *released;
    bool stop;
    /* The writer thread's. */
    struct http_wconn *ready;
};

/* ---- The writer thread --------------------------------------------- */

static void writer__ready(struct http_writer *w, struct http_wconn *wc)
{
    if (!wc->ready) {
        wc->ready = true;
        wc->ready_next = w->ready;
        w->ready = wc;
    }
}

/* Finished jobs, kept in order until the next hand-over. */
struct writer__done {
    struct http_wjob *head, *tail;
    struct http_wconn *released;
};

static void writer__finish(struct writer__done *d, struct http_wjob *job, int status)
{
    job->status = status;
    job->next = NULL;
    if (d->tail != NULL) d->tail->next = job;
    else d->head = job;
    d->tail = job;
}

static void writer__fail_all(struct writer__done *d, struct http_wconn *wc, int status)
{
    while (wc->head != NULL) {
        struct http_wjob *job = wc->head;
        wc->head = job->next;
        writer__finish(d, job, status);
    }
    wc->tail = NULL;
}

/* Writes what the socket takes of wc's jobs. */
static void writer__flush(struct http_wconn *wc, struct writer__done *d)
{
    while (wc->head != NULL && !wc->blocked && wc->error == 0) {
        struct iovec iov[WRITER__IOV_MAX];
        int n = 0;
        for (struct http_wjob *j = wc->head; j != NULL && n < WRITER__IOV_MAX; j = j->next) {
            for (unsigned i = j->first; i < j->n_iov && n < WRITER__IOV_MAX; i++) {
                iov[n++] = j->iov[i];
            }
        }
        ssize_t put = writev(wc->fd, iov, n);
        if (put < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wc->blocked = true;
                return;
            }
            wc->error = -errno;
            writer__fail_all(d, wc, wc->error);
            return;
        }
        size_t left = (size_t)put;
        while (wc->head != NULL) {
            struct http_wjob *j = wc->head;
            while (j->first < j->n_iov && left >= j->iov[j->first].iov_len) {
                left -= j->iov[j->first].iov_len;
                j->first++;
            }
            if (j->first < j->n_iov) {
                j->iov[j->first].iov_base = (char *)j->iov[j->first].iov_base + left;
                j->iov[j->first].iov_len -= left;
                break; /* the socket took part of this job */
            }
            wc->head = j->next;
            if (wc->head == NULL) wc->tail = NULL;
            writer__finish(d, j, 0);
        }
    }
}

static void writer__take_inbox(struct http_writer *w, struct writer__done *d, bool *stop)
{
    pthread_mutex_lock(&w->lock);
    struct http_wjob *jobs = w->jobs_in;
    struct http_wconn *rel = w->rel_in;
    w->jobs_in = w->jobs_in_tail = NULL;
    w->rel_in = NULL;
    for (struct http_wconn *wc = rel; wc != NULL; wc = wc->rel_next) {
        wc->rel_queued = false;
        wc->releasing = true;
        wc->aborting = wc->aborting || wc->rel_abort;
    }
    *stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    /* Jobs before releases: the loop submits nothing after a release. */
    for (struct http_wjob *j = jobs, *next; j != NULL; j = next) {
        next = j->next;
        struct http_wconn *wc = j->wc;
        j->next = NULL;
        if (wc->error != 0 || wc->aborting) {
            writer__finish(d, j, wc->error != 0 ? wc->error : -ECANCELED);
            continue;
        }
        if (wc->tail != NULL) wc->tail->next = j;
        else wc->head = j;
        wc->tail = j;
        if (!wc->registered) {
            /* Edge-triggered EPOLLOUT: one wake-up each time a full socket
             * gets room again. */
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.ptr = wc};
            if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, wc->fd, &ev) == 0) {
                wc->registered = true;
            } else {
                wc->error = -errno;
                writer__fail_all(d, wc, wc->error);
                continue;
            }
        }
        writer__ready(w, wc);
    }
    for (struct http_wconn *wc = rel, *next; wc != NULL; wc = next) {
        next = wc->rel_next;
        wc->rel_next = NULL;
        if (wc->aborting) {
            writer__fail_all(d, wc, -ECANCELED);
        }
        writer__ready(w, wc);
    }
}

static void writer__hand_over(struct http_writer *w, struct writer__done *d)
{
    if (d->head == NULL && d->released == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    if (d->head != NULL) {
        if (w->jobs_out_tail != NULL) w->jobs_out_tail->next = d->head;
        else w->jobs_out = d->head;
        w->jobs_out_tail = d->tail;
    }
    while (d->released != NULL) {
        struct http_wconn *wc = d->released;
        d->released = wc->out_next;
        wc->rel_done = true;
        if (wc->rel_queued) {
            /* Made abortive after it was taken: the loop frees it once
             * handed back, so it must leave the inbox now. */
            struct http_wconn **pp = &w->rel_in;
            while (*pp != wc) pp = &(*pp)->rel_next;
            *pp = wc->rel_next;
            wc->rel_queued = false;
        }
        wc->out_next = w->released;
        w->released = wc;
    }
    pthread_mutex_unlock(&w->lock);
    uv_async_send(&w->async);
    *d = (struct writer__done){0};
}

static void *writer__main(void *arg)
{
    struct http_writer *w = arg;
    pthread_setname_np(pthread_self(), "herald-writer");
    struct epoll_event events[WRITER__EVENTS];
    for (;;) {
        int n = epoll_wait(w->epfd, events, WRITER__EVENTS, -1);
        if (n < 0) {
            HD_ASSERT(errno == EINTR);
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct http_wconn *wc = events[i].data.ptr;
            if (wc == NULL) {
                uint64_t v;
                (void)!read(w->evfd, &v, sizeof v);
                continue;
            }
            wc->blocked = false;
            writer__ready(w, wc);
        }
        struct writer__done d = {0};
        bool stop = false;
        writer__take_inbox(w, &d, &stop);
        while (w->ready != NULL) {
            struct http_wconn *wc = w->ready;
            w->ready = wc->ready_next;
            wc->ready = false;
            writer__flush(wc, &d);
            if (wc->releasing && (wc->head == NULL || wc->error != 0)) {
                if (wc->registered) {
                    (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, wc->fd, NULL);
                    wc->registered = false;
                }
                writer__fail_all(&d, wc, wc->error != 0 ? wc->error : -ECANCELED);
                wc->out_next = d.released;
                d.released = wc;
            }
        }
        writer__hand_over(w, &d);
        if (stop) {
            return NULL;
        }
    }
}

/* ---- The loop's side ----------------------------------------------- */

static void writer__on_async(uv_async_t *a)
{
    struct http_writer *w = a->data;
    pthread_mutex_lock(&w->lock);
    struct http_wjob *jobs = w->jobs_out;
    struct http_wconn *released = w->released;
    w->jobs_out = w->jobs_out_tail = NULL;
    w->released = NULL;
    pthread_mutex_unlock(&w->lock);
    /* Every job of a connection is done before it is released. */
    for (struct http_wjob *j = jobs, *next; j != NULL; j = next) {
        next = j->next;
        void *owner = j->wc->owner;
        size_t bytes = j->bytes;
        int status = j->status;
        j->release(j->arg);
        hd_free(j);
        w->cbs.done(owner, bytes, status);
    }
    /* The released list is in reverse order of release; any order will do. */
    for (struct http_wconn *wc = released, *next; wc != NULL; wc = next) {
        next = wc->out_next;
        void *owner = wc->owner;
        hd_free(wc);
        w->cbs.released(owner);
    }
}

static void writer__signal(struct http_writer *w)
{
    uint64_t one = 1;
    (void)!write(w->evfd, &one, sizeof one);
}

int http_writer_start(struct http_writer **out, uv_loop_t *loop, const struct http_writer_cbs *cbs)
{
    struct http_writer *w = hd_calloc(1, sizeof *w);
    if (w == NULL) {
        return HD_ENOMEM;
    }
    w->loop = loop;
    w->cbs = *cbs;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int rv = 0;
    if (w->epfd < 0 || w->evfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0) {
        rv = hd_from_errno(errno);
    }
    if (rv == 0) {
        pthread_mutex_init(&w->lock, NULL);
        uv_async_init(loop, &w->async, writer__on_async);
        w->async.data = w;
        int prv = pthread_create(&w->thread, NULL, writer__main, w);
        if (prv == 0) {
            *out = w;
            return 0;
        }
        rv = hd_from_errno(prv);
        pthread_mutex_destroy(&w->lock);
        uv_close((uv_handle_t *)&w->async, NULL); /* w leaks until the loop runs: rare */
        w = NULL;
    }
    if (w != NULL) {
        if (w->epfd >= 0) close(w->epfd);
        if (w->evfd >= 0) close(w->evfd);
        hd_free(w);
    }
    return rv;
}

static void writer__on_async_closed(uv_handle_t *h)
{
    struct http_writer *w = h->data;
    void (*closed)(void *) = w->closed;
    void *arg = w->closed_arg;
    pthread_mutex_destroy(&w->lock);
    hd_free(w);
    if (closed != NULL) {
        closed(arg);
    }
}

void http_writer_stop(struct http_writer *w, void (*closed)(void *arg), void *arg)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_mutex_unlock(&w->lock);
    writer__signal(w);
    pthread_join(w->thread, NULL);
    HD_ASSERT(w->jobs_out == NULL && w->released == NULL); /* nothing was attached */
    close(w->epfd);
    close(w->evfd);
    w->closed = closed;
    w->closed_arg = arg;
    uv_close((uv_handle_t *)&w->async, writer__on_async_closed);
}

struct http_wconn *http_writer_attach(struct http_writer *w, int fd, void *owner)
{
    struct http_wconn *wc = hd_calloc(1, sizeof *wc);
    if (wc != NULL) {
        wc->w = w;
        wc->fd = fd;
        wc->owner = owner;
    }
    return wc;
}

int http_writer_submit(struct http_wconn *wc, const uv_buf_t *bufs, unsigned n_bufs, size_t bytes,
                       void (*release)(void *arg), void *arg)
{
    struct http_wjob *job = hd_malloc(sizeof *job + n_bufs * sizeof job->iov[0]);
    if (job == NULL) {
        return HD_ENOMEM;
    }
    *job = (struct http_wjob){.wc = wc, .release = release, .arg = arg, .bytes = bytes,
                              .n_iov = n_bufs};
    for (unsigned i = 0; i < n_bufs; i++) {
        job->iov[i] = (struct iovec){bufs[i].base, bufs[i].len};
    }
    struct http_writer *w = wc->w;
    pthread_mutex_lock(&w->lock);
    bool was_empty = w->jobs_in == NULL && w->rel_in == NULL;
    if (w->jobs_in_tail != NULL) w->jobs_in_tail->next = job;
    else w->jobs_in = job;
    w->jobs_in_tail = job;
    pthread_mutex_unlock(&w->lock);
    if (was_empty) {
        writer__signal(w);
    }
    return 0;
}

void http_writer_release(struct http_wconn *wc, bool abort)
{
    struct http_writer *w = wc->w;
    pthread_mutex_lock(&w->lock);
    bool was_empty = w->jobs_in == NULL && w->rel_in == NULL;
    if (wc->rel_done) {
        pthread_mutex_unlock(&w->lock);
        return; /* released already: the callback is on its way */
    }
    wc->rel_abort = wc->rel_abort || abort;
    if (!wc->rel_queued) {
        wc->rel_queued = true;
        wc->rel_next = w->rel_in;
        w->rel_in = wc;
    }
    pthread_mutex_unlock(&w->lock);
    if (was_empty) {
        writer__signal(w);
    }
}
