/* Checkout (at connect), checkin (at close) and the replacement of a
 * connection under the program's number: DESIGN.md sections 1, 3 and 4.
 * The callers (events.c, resend.c) own the records through lifecycle.h;
 * this file moves descriptors and proves connections. */
#ifndef POOLSHIM_HANDOFF_H
#define POOLSHIM_HANDOFF_H

#include "conn.h"

#include <stdint.h>
#include <sys/socket.h>

/* c is CHECKOUT at fd, its key set.  Returns 1 when fd now holds a proven
 * idle connection (c then describes it), 0 when the caller must make the
 * real connect. */
int ps_checkout(struct ps_conn *c, int fd);

/* c was ACTIVE at fd and close() claimed it (CHECKIN, slot cleared).  Pools
 * the connection or ends it, and closes the program's number either way.
 * Returns what close() returns. */
int ps_checkin(struct ps_conn *c, int fd);

/* c is RECONNECTING at fd.  Makes a new connection to c's destination with
 * the same options, sends replay[0..len) on it, and puts it in place of
 * fd's socket with the program's flags.  deadline_ns: when to give up
 * waiting for the handshake and the send; 0: do not wait (a non-blocking
 * program gets a socket still connecting, as from its own connect).
 * Returns 0, or -1 with fd untouched. */
int ps_reconnect(struct ps_conn *c, int fd, uint64_t deadline_ns, const void *replay, size_t len);

/* c (CHECKIN, or TAKEN from elsewhere) is on its hidden descriptor: into
 * the pool, with the pool's caps (what they push out is evicted), or ended.
 * The caps count the parked connections too (park.h): all of them in the
 * total, and `reserve` of c's key (the thread's own) per destination. */
void ps_pool_keep(struct ps_conn *c, uint64_t now, unsigned reserve);

/* The pool's own copy of fd, placed high and close-on-exec, published in
 * the fd table as c's hidden descriptor (c->hidden) once it is proved to
 * be the socket whose SO_COOKIE is cookie.  NONE: no copy can be made or
 * tracked; NOT_OURS: fd held something else (the copy is closed). */
enum ps_copy { PS_COPY_OK, PS_COPY_NONE, PS_COPY_NOT_OURS };
enum ps_copy ps_hidden_copy(struct ps_conn *c, int fd, uint64_t cookie);

/* Pieces the fast path (park.h) shares with checkout and checkin. */
/* A debug-log line about what happened to c and why (POOLSHIM_LOG=debug). */
void ps_log_decision(const char *what, const struct ps_conn *c, const char *why);
bool ps_dest_allowed(const struct ps_key *k);
bool ps_conn_expired(const struct ps_conn *c, uint64_t now);
void ps_begin_use(struct ps_conn *c, bool reused);
/* The program's epoll registrations on fd (conn.h), off and on again. */
void ps_epoll_detach(struct ps_conn *c, int fd);
void ps_epoll_attach(struct ps_conn *c, int fd);

/* Reaps expired idle connections now (normally done on every checkin). */
void ps_reap_now(void);

#endif
