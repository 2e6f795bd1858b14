/* The fast path: a connection the program closes, once proven poolable,
 * stays open on the program's own number (PARKED), remembered by the thread
 * that closed it.  That thread's next socket() of the same kind gets the
 * number back after one identity proof (WARM), and a connect() to the same
 * destination proves health with one peek: a pooled cycle moves no
 * descriptor and costs two syscalls the program did not ask for, where its
 * own socket, connect and close were three.  docs/state-machine.md draws it.
 *
 * A parked number must look closed to the program: every intercepted call
 * on it fails with EBADF (ps_park_gate), a second close too; dup2/dup3 or
 * close_range over it closes it for real (track.h's release); 0-2 are never
 * parked; the program's epoll registrations are removed when it parks; exec
 * wrappers set FD_CLOEXEC on parked numbers (ps_park_before_exec), a forked
 * child closes its copies; the reaper closes it when it expires, and
 * descriptor pressure before anything else.
 *
 * A warm socket is the program's "fresh" socket.  Anything it does that a
 * fresh socket would answer differently (another destination, bind, a
 * key-shaping option, I/O before connect, dup) first settles it: the
 * connection moves to a hidden descriptor in the pool and a real fresh
 * socket, with the options the program set, takes the number.
 *
 * State: the one-entry slot is the owning thread's (TLS); ps_parked_count is
 * atomic; a parked record belongs to whoever moves it PARKED -> TAKEN
 * (lifecycle.h): its thread's socket(), the reaper, descriptor pressure, a
 * call replacing the number, fork.  No lock is taken on the hit path. */
#ifndef POOLSHIM_PARK_H
#define POOLSHIM_PARK_H

#include "conn.h"

#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>

/* Records in PS_PARKED (atomic). */
extern int ps_parked_count;

/* close(): c is CHECKIN at fd, proven poolable.  True when it is parked
 * (the program's close is complete); false: the caller pools it the slow
 * way. */
bool ps_park(struct ps_conn *c, int fd);

/* socket(), before anything: the thread can park from now on (at its
 * exit, what it parked goes to the pool). */
void ps_park_thread_start(void);

/* socket(): this thread's parked connection of the kind, back on its
 * number as the program's new socket (WARM), or -1. */
int ps_park_reissue(int domain, int type, int protocol);

/* connect() on a WARM record.  1: a hit (c ACTIVE, reused); 0: fd now
 * holds a real fresh socket (c FRESH), go on as for any connect; -1: the
 * call fails with errno. */
int ps_warm_connect(struct ps_conn *c, int fd, const struct sockaddr *sa, socklen_t len);

/* Before a call on tracked fd (record c) other than the fast I/O case:
 * -1 with EBADF when fd is a parked number; when settle, a warm socket is
 * first made a real fresh one.  0: go on with the call. */
int ps_park_gate(struct ps_conn *c, int fd, bool settle);

/* The reaper: closes parked connections that have expired; returns the
 * earliest expiry of those left (UINT64_MAX: none). */
uint64_t ps_park_reap(uint64_t now);

/* Descriptor pressure: closes one parked connection.  True if it did. */
bool ps_park_evict_one(void);

/* Before exec or posix_spawn: FD_CLOEXEC on every parked number. */
void ps_park_before_exec(void);

/* A forked child (fd table walk, fdtable.h): closes its copy of a parked
 * number.  True when (fd, c) was one. */
bool ps_park_forget_in_child(int fd, struct ps_conn *c);

/* A parked number the program's call is replacing or has replaced (dup2
 * onto it, close_range, a number the kernel handed out again): forgets it
 * without closing the number. */
void ps_park_release(struct ps_conn *c);

/* poll and ppoll: a parked number in the set is reported POLLNVAL, as a
 * closed one.  hide takes them out of the set (fd -1: the kernel skips it)
 * and returns how many; show puts them back, POLLNVAL, counted in the
 * call's result r. */
#define PS_MAX_PARKED_IN_POLL 64
struct ps_parked_in_poll {
	int n;
	nfds_t at[PS_MAX_PARKED_IN_POLL];
	int number[PS_MAX_PARKED_IN_POLL];
};
int ps_park_poll_hide(struct pollfd *fds, nfds_t n, struct ps_parked_in_poll *p);
int ps_park_poll_show(struct pollfd *fds, const struct ps_parked_in_poll *p, int r);
/* select and pselect: true when a set holds a parked number (EBADF). */
bool ps_park_in_sets(int n, const fd_set *r, const fd_set *w, const fd_set *e);

/* At exit: parked connections move to the pool, so that --shared can offer
 * them (shared.h). */
void ps_park_flush(void);

#endif
