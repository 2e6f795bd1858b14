/* Checkout (at connect) and checkin (at close): DESIGN.md sections 1, 3, 4. */
#ifndef POOLSHIM_HANDOFF_H
#define POOLSHIM_HANDOFF_H

#include "conn.h"

#include <sys/socket.h>

/* connect(fd, sa) on a fresh tracked socket.  Returns 1 when fd now holds a
 * proven idle connection (connect reports success: 0, or -1/EINPROGRESS for
 * a non-blocking socket, *nonblock tells which); 0 when the caller must make
 * the real connect and report it with ps_connected(). */
int ps_checkout(struct ps_conn *fresh, int fd, const struct sockaddr *sa, socklen_t len,
		int *nonblock);

/* The real connect on a tracked fresh socket returned ret (errno err).
 * seq: ps_conn_seq(c) read before the connect; if the fd was closed and its
 * record reused meanwhile (a signal handler, another thread), nothing is
 * recorded, so a stale connect never labels another socket. */
void ps_connected(struct ps_conn *c, uint32_t seq, int fd, const struct sockaddr *sa,
		  socklen_t len, int ret, int err);

/* close(fd) on a tracked fd.  Returns 1 when the shim has closed the
 * program's fd itself (close reports 0): the connection was pooled, or was
 * taken from the program and then found unfit.  Returns 0 when the caller
 * must make the real close. */
int ps_checkin(struct ps_conn *c, int fd);

/* Replaces the connection at fd (whose first write found it closed by the
 * server) with a new connection to the same destination, with the same
 * options and flags.  Returns 0, or -1 (fd untouched). */
int ps_reconnect(struct ps_conn *c, int fd);

/* Reaps expired idle connections now (normally done on every checkin). */
void ps_reap_now(void);

#endif
