/* The shim's entry points (lib/events.h, lib/io.h) called exactly as its
 * wrappers call them, for tests that drive lib/ end to end on real sockets.
 * ps_libc must hold libc's own functions (t_libc_fill). */
#ifndef POOLSHIM_UNIT_STEPS_H
#define POOLSHIM_UNIT_STEPS_H

#include "io.h"

#include <sys/socket.h>
#include <sys/types.h>

extern int last_hit;     /* whether the last w_connect came from the pool */
extern int last_retried; /* whether the last w_write or w_read replaced a stale connection */
extern int last_pooled;  /* whether the last w_close put the connection in the pool */

int w_socket(int type); /* AF_INET; asserts success */
int w_connect(int fd, const struct sockaddr *sa, socklen_t len);
/* the program's write()/read() as shim/io.c describes them */
ssize_t call_write(const struct ps_call *k, int extra);
ssize_t call_read(const struct ps_call *k, int extra);
ssize_t w_write(int fd, const void *buf, size_t n);
/* waits (untracked poll, 2 s) so a broken test cannot hang */
ssize_t w_read(int fd, void *buf, size_t n);
int w_close(int fd);
int w_dup(int fd);
int w_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int w_bind(int fd, const struct sockaddr *sa, socklen_t len);
int w_shutdown(int fd, int how);

/* SIGPIPE held (blocked) in the calling thread, so that one raised can be
 * seen; t_sigpipe_taken says whether one is pending and consumes it. */
void t_sigpipe_hold(void);
int t_sigpipe_taken(void);

/* The server side resets its connection (SO_LINGER {1,0}, close). */
void reset_peer(int s);
/* Until the client side sees that reset (untracked poll, 2 s at most). */
void wait_for_reset(int fd);

#endif
