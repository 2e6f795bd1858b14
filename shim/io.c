/* The write and read families.  Every wrapper is the same sentence: look the
 * fd up (untracked: straight to libc), call libc, report the outcome to the
 * one tracking path in lib/track.c. */
#include "hooks.h"
#include "real.h"

#include "fdtable.h"
#include "track.h"

#include <errno.h>

static inline struct ps_conn *begin(int fd, enum ps_io dir, const void *head, size_t len)
{
	return ps_fd_get(fd) ? ps_io_begin(fd, dir, head, len) : NULL;
}

static inline ssize_t end(struct ps_conn *c, enum ps_io dir, ssize_t r, size_t want)
{
	if (c) {
		int saved = errno;
		ps_io_end(c, dir, r, want, saved);
		errno = saved;
	}
	return r;
}

static enum ps_io read_kind(int flags) { return (flags & MSG_PEEK) ? PS_IO_PEEK : PS_IO_READ; }

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; iov && i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static const void *iov_head(const struct iovec *iov, int n, size_t *len)
{
	*len = (iov && n > 0) ? iov[0].iov_len : 0;
	return *len ? iov[0].iov_base : NULL;
}

static const void *msg_head(const struct msghdr *m, size_t *len)
{
	return m ? iov_head(m->msg_iov, (int)m->msg_iovlen, len) : (*len = 0, NULL);
}

/* ---- send side ---- */

ssize_t write(int fd, const void *buf, size_t n)
{
	struct ps_conn *c = begin(fd, PS_IO_WRITE, buf, n);
	return end(c, PS_IO_WRITE, real()->write(fd, buf, n), n);
}

ssize_t __write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	size_t hl;
	const void *h = iov_head(iov, n, &hl);
	struct ps_conn *c = begin(fd, PS_IO_WRITE, h, hl);
	return end(c, PS_IO_WRITE, real()->writev(fd, iov, n), iov_total(iov, n));
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct ps_conn *c = begin(fd, PS_IO_WRITE, buf, n);
	return end(c, PS_IO_WRITE, real()->send(fd, buf, n, flags), n);
}

ssize_t __send(int fd, const void *buf, size_t n, int flags) { return send(fd, buf, n, flags); }

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
	       socklen_t salen)
{
	struct ps_conn *c = begin(fd, PS_IO_WRITE, buf, n);
	return end(c, PS_IO_WRITE, real()->sendto(fd, buf, n, flags, sa, salen), n);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	size_t hl;
	const void *h = msg_head(m, &hl);
	struct ps_conn *c = begin(fd, PS_IO_WRITE, h, hl);
	return end(c, PS_IO_WRITE, real()->sendmsg(fd, m, flags),
		   m ? iov_total(m->msg_iov, (int)m->msg_iovlen) : 0);
}

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	size_t hl = 0;
	const void *h = (v && n) ? msg_head(&v[0].msg_hdr, &hl) : NULL;
	struct ps_conn *c = begin(fd, PS_IO_WRITE, h, hl);
	return (int)end(c, PS_IO_WRITE, real()->sendmmsg(fd, v, n, flags), n);
}

/* ---- receive side ---- */

ssize_t read(int fd, void *buf, size_t n)
{
	struct ps_conn *c = begin(fd, PS_IO_READ, NULL, 0);
	return end(c, PS_IO_READ, real()->read(fd, buf, n), n);
}

ssize_t __read(int fd, void *buf, size_t n) { return read(fd, buf, n); }

ssize_t readv(int fd, const struct iovec *iov, int n)
{
	struct ps_conn *c = begin(fd, PS_IO_READ, NULL, 0);
	return end(c, PS_IO_READ, real()->readv(fd, iov, n), iov_total(iov, n));
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return end(c, read_kind(flags), real()->recv(fd, buf, n, flags), n);
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *salen)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return end(c, read_kind(flags), real()->recvfrom(fd, buf, n, flags, sa, salen), n);
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return end(c, read_kind(flags), real()->recvmsg(fd, m, flags),
		   m ? iov_total(m->msg_iov, (int)m->msg_iovlen) : 0);
}

int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *timeout)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return (int)end(c, read_kind(flags), real()->recvmmsg(fd, v, n, flags, timeout), n);
}

/* _FORTIFY_SOURCE builds call these instead (HAZARDS.md 3). */

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	struct ps_conn *c = begin(fd, PS_IO_READ, NULL, 0);
	return end(c, PS_IO_READ, real()->read_chk(fd, buf, n, buflen), n);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return end(c, read_kind(flags), real()->recv_chk(fd, buf, n, buflen, flags), n);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *sa, socklen_t *salen)
{
	struct ps_conn *c = begin(fd, read_kind(flags), NULL, 0);
	return end(c, read_kind(flags), real()->recvfrom_chk(fd, buf, n, buflen, flags, sa, salen),
		   n);
}
