/* The read and write families: one send path and one receive path for every
 * wrapper (STYLE.md).  A wrapper describes its call as a ps_call and hands
 * it over; the path makes the call (through call->fn), learns from it, and
 * makes it once more when a stale reused connection was replaced under it
 * (resend.h). */
#ifndef POOLSHIM_IO_H
#define POOLSHIM_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ps_call;

/* Makes the program's call, with extra MSG_* flags or'ed into its own (a
 * write()/writev() with extra flags becomes send()/sendmsg(), the same call
 * on a socket).  Sets errno as libc does. */
typedef ssize_t (*ps_call_fn)(const struct ps_call *k, int extra_flags);

struct ps_call {
	ps_call_fn fn;
	int fd;
	int flags;               /* the program's MSG_* flags */
	const struct iovec *iov; /* what a write sends or a read fills; NULL: not known */
	size_t iovcnt;
	size_t want;             /* bytes (or messages) asked for: 0 asks nothing */
};

ssize_t ps_send(const struct ps_call *k);
ssize_t ps_recv(const struct ps_call *k);

/* sendfile, splice and the like on fd: bytes move between the socket and a
 * file or pipe without passing the program's memory, so nothing can follow
 * them, and a connection that carried any is never pooled.  dir: PS_IO_WRITE
 * (the socket is the destination) or PS_IO_READ; call makes the program's
 * call. */
ssize_t ps_unseen(int fd, int dir, ssize_t (*call)(void *ctx), void *ctx);

#endif
