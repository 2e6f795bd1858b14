/* What the shim learns from the calls it intercepts, recorded on the fd's
 * ps_conn: creation flags, options, bindings, status flags, extra references
 * and the I/O that decides whether a connection can be pooled.  The shim
 * calls these around the real call; untracked fds never get here. */
#ifndef POOLSHIM_TRACK_H
#define POOLSHIM_TRACK_H

#include "conn.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* A wrapped call returned fd as a new descriptor (accept, dup, ...): any
 * record left at that number belongs to a descriptor closed behind the shim's
 * back. */
void ps_track_new_fd(int fd);

/* The fd is closed for good without checkin (passthrough close, dup2 onto
 * it): drop its record. */
void ps_track_drop(int fd);

/* setsockopt on a tracked fd: before the real call (captures the value the
 * next user must get back) and after it (records what was set). */
void ps_track_setsockopt_before(struct ps_conn *c, int fd, int level, int name);
void ps_track_setsockopt_after(struct ps_conn *c, int level, int name, const void *val,
			       socklen_t len, int ret);

/* An option the pool carries from user to user (reset to its default for
 * the next one), as opposed to one that shapes the key or taints. */
bool ps_track_option_carried(int level, int name);
/* setsockopt on a warm socket (park.h) of the value the socket has from
 * its last user: recorded as this user's, with no call to make.  False:
 * the program's call must be made. */
bool ps_track_setsockopt_redundant(struct ps_conn *c, int level, int name, const void *val, socklen_t len);
void ps_track_bind(struct ps_conn *c, const struct sockaddr *sa, socklen_t len, int ret);
void ps_track_nonblock(struct ps_conn *c, int on);
void ps_track_cloexec(struct ps_conn *c, int on);
void ps_track_taint(struct ps_conn *c, unsigned taint);

/* epoll_ctl(epfd, op, fd, ev) on a tracked fd returned ret. */
void ps_track_epoll_ctl(struct ps_conn *c, int epfd, int op, const struct epoll_event *ev, int ret);

/* sendmsg with control data: descriptors passed with SCM_RIGHTS gain a
 * reference in another process and are never pooled. */
void ps_track_passed_fds(const struct msghdr *m);

/* close_range(lo, hi, flags) / closefrom(lo) is about to run: forget the
 * records it will close (hidden descriptors leave the pool). */
void ps_track_close_range(unsigned lo, unsigned hi, int flags);

/* A descriptor-creating call failed with err.  On EMFILE/ENFILE closes the
 * least recently used idle connection and returns 1: retry the call once. */
int ps_fd_pressure(int err);

#endif
