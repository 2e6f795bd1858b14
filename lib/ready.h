/* A reused connection is dead before its first use when the server closed
 * or reset it between the checkout's proof and the program's first call on
 * it.  The program may learn of that through any call, not only read and
 * write: SO_ERROR, a repeated connect(), poll/select/epoll readiness.  Each
 * of those asks here first, and a dead one is replaced by a new connection
 * to the same destination before the program sees anything (DESIGN.md 5,
 * stale reuse race).  Nothing was sent on it, so nothing is resent.
 *
 * The readiness calls cost nothing while no such connection exists: a
 * registry of the reused connections not used yet, whose count is one
 * atomic load. */
#ifndef POOLSHIM_READY_H
#define POOLSHIM_READY_H

#include "conn.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#define PS_MAX_UNUSED 64

extern int ps_unused_count; /* atomic */

/* c came from the pool and the program has not used it yet / now has. */
void ps_unused_add(struct ps_conn *c);
void ps_unused_remove(struct ps_conn *c);
/* A child made without atfork handlers forgets the parent's. */
void ps_unused_reset(void);

/* fd's connection, if it is reused and unused, is proved alive and replaced
 * when it is not. */
void ps_ready_check(int fd);

/* The program's readiness calls (made through ps_libc), with dead unused
 * connections replaced and the wait made again for what is left of the
 * program's timeout. */
int ps_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
int ps_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask);
int ps_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t);
int ps_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *mask);
int ps_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms);
int ps_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout_ms, const sigset_t *mask);

#endif
