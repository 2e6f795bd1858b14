/* The write and read families.  Each wrapper looks the fd up (untracked:
 * straight to libc, nothing else) and otherwise describes its call as an
 * op; one send path and one receive path do the rest: make the call, report
 * it to lib/track.c,
 * and when the server had closed a reused connection while it was idle,
 * make the call once more on the fresh connection the shim put in its place
 * (DESIGN.md 5, stale reuse race). */
#include "hooks.h"
#include "real.h"

#include "fdtable.h"
#include "track.h"

#include <errno.h>
#include <signal.h>

enum op_kind {
	OP_WRITE, OP_WRITEV, OP_SEND, OP_SENDTO, OP_SENDMSG, OP_SENDMMSG,
	OP_READ, OP_READV, OP_RECV, OP_RECVFROM, OP_RECVMSG, OP_RECVMMSG,
	OP_READ_CHK, OP_RECV_CHK, OP_RECVFROM_CHK,
};

struct op {
	enum op_kind kind;
	int fd;
	void *buf;               /* write/send/read/recv */
	size_t len;
	size_t buflen;           /* _chk variants */
	const struct iovec *iov; /* writev/readv */
	int iovcnt;
	struct msghdr *msg;      /* sendmsg/recvmsg */
	struct mmsghdr *vec;     /* sendmmsg/recvmmsg */
	unsigned vlen;
	int flags;
	struct sockaddr *sa;     /* sendto/recvfrom */
	socklen_t salen;
	socklen_t *salenp;
	struct timespec *timeout;
};

/* extra: MSG_NOSIGNAL while a failed write may still be retried.  write and
 * writev become send/sendmsg then, which is the same call on a socket. */
static ssize_t call(const struct op *o, int extra)
{
	const struct ps_real *r = real();
	struct msghdr m;
	switch (o->kind) {
	case OP_WRITE:
		return extra ? r->send(o->fd, o->buf, o->len, extra) : r->write(o->fd, o->buf, o->len);
	case OP_WRITEV:
		if (!extra)
			return r->writev(o->fd, o->iov, o->iovcnt);
		m = (struct msghdr){ .msg_iov = (struct iovec *)o->iov, .msg_iovlen = (size_t)o->iovcnt };
		return r->sendmsg(o->fd, &m, extra);
	case OP_SEND: return r->send(o->fd, o->buf, o->len, o->flags | extra);
	case OP_SENDTO: return r->sendto(o->fd, o->buf, o->len, o->flags | extra, o->sa, o->salen);
	case OP_SENDMSG: return r->sendmsg(o->fd, o->msg, o->flags | extra);
	case OP_SENDMMSG: return r->sendmmsg(o->fd, o->vec, o->vlen, o->flags | extra);
	case OP_READ: return r->read(o->fd, o->buf, o->len);
	case OP_READV: return r->readv(o->fd, o->iov, o->iovcnt);
	case OP_RECV: return r->recv(o->fd, o->buf, o->len, o->flags);
	case OP_RECVFROM: return r->recvfrom(o->fd, o->buf, o->len, o->flags, o->sa, o->salenp);
	case OP_RECVMSG: return r->recvmsg(o->fd, o->msg, o->flags);
	case OP_RECVMMSG: return r->recvmmsg(o->fd, o->vec, o->vlen, o->flags, o->timeout);
	case OP_READ_CHK: return r->read_chk(o->fd, o->buf, o->len, o->buflen);
	case OP_RECV_CHK: return r->recv_chk(o->fd, o->buf, o->len, o->buflen, o->flags);
	case OP_RECVFROM_CHK:
		return r->recvfrom_chk(o->fd, o->buf, o->len, o->buflen, o->flags, o->sa, o->salenp);
	}
	errno = ENOSYS;
	return -1;
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;
	for (size_t i = 0; iov && i < n; i++)
		t += iov[i].iov_len;
	return t;
}

static const struct msghdr *op_msg(const struct op *o)
{
	if (o->msg)
		return o->msg;
	return (o->vec && o->vlen) ? &o->vec[0].msg_hdr : NULL;
}

/* What a send op sent, as an iovec list (sendmmsg: no replay). */
static size_t op_iov(const struct op *o, struct iovec *one, const struct iovec **iov)
{
	if (o->vec)
		return 0;
	if (o->msg) {
		*iov = o->msg->msg_iov;
		return o->msg->msg_iovlen;
	}
	if (o->iov) {
		*iov = o->iov;
		return o->iovcnt > 0 ? (size_t)o->iovcnt : 0;
	}
	one->iov_base = o->buf;
	one->iov_len = o->len;
	*iov = one;
	return 1;
}

/* Bytes asked for, and the first bytes of a write (protocol detection). */
static size_t op_want(const struct op *o, const void **head, size_t *head_len)
{
	const struct msghdr *m = op_msg(o);
	const struct iovec *iov = o->iov;
	size_t n = (size_t)(o->iovcnt > 0 ? o->iovcnt : 0);
	if (m) {
		iov = m->msg_iov;
		n = m->msg_iovlen;
	}
	if (iov) {
		*head = n ? iov[0].iov_base : NULL;
		*head_len = n ? iov[0].iov_len : 0;
		return o->vec ? o->vlen : iov_total(iov, n);
	}
	*head = o->buf;
	*head_len = o->len;
	return o->len;
}

/* Descriptors passed with SCM_RIGHTS, whatever socket carries them. */
static void passing(const struct msghdr *m)
{
	if (m && m->msg_controllen) {
		int saved = errno;
		ps_track_passed_fds(m);
		errno = saved;
	}
}

static ssize_t tracked_send(const struct op *o)
{
	const void *head;
	size_t head_len, want = op_want(o, &head, &head_len);
	for (int attempt = 0;; attempt++) {
		struct ps_conn *c = ps_io_begin(o->fd, PS_IO_WRITE, head, head_len);
		int guard = c && ps_io_first_reused_write(c);
		ssize_t r = call(o, guard ? MSG_NOSIGNAL : 0);
		if (!c)
			return r;
		int saved = errno;
		if (r > 0 && ps_io_keeps_replay(c)) {
			struct iovec one;
			const struct iovec *iov = NULL;
			size_t n = op_iov(o, &one, &iov);
			if (n)
				ps_io_sent(c, iov, n, (size_t)r);
			else
				c->replay_overflow = true;
		}
		int retry = ps_io_end(c, o->fd, PS_IO_WRITE, r, want, saved);
		errno = saved;
		if (retry && attempt == 0)
			continue;
		/* the signal we held back, if the program asked for it */
		if (guard && r < 0 && saved == EPIPE && !((o->flags) & MSG_NOSIGNAL)) {
			raise(SIGPIPE);
			errno = saved;
		}
		return r;
	}
}

static ssize_t tracked_recv(const struct op *o)
{
	const void *head;
	size_t head_len, want = op_want(o, &head, &head_len);
	enum ps_io dir = (o->flags & MSG_PEEK) ? PS_IO_PEEK : PS_IO_READ;
	for (int attempt = 0;; attempt++) {
		struct ps_conn *c = ps_io_begin(o->fd, dir, NULL, 0);
		ssize_t r = call(o, 0);
		if (!c)
			return r;
		int saved = errno;
		int retry = ps_io_end(c, o->fd, dir, r, want, saved);
		errno = saved;
		if (!retry || attempt > 0)
			return r;
	}
}

/* ---- send side ---- */

ssize_t write(int fd, const void *buf, size_t n)
{
	if (!ps_fd_get(fd))
		return real()->write(fd, buf, n);
	return tracked_send(&(struct op){ .kind = OP_WRITE, .fd = fd, .buf = (void *)buf, .len = n });
}

ssize_t __write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	if (!ps_fd_get(fd))
		return real()->writev(fd, iov, n);
	return tracked_send(&(struct op){ .kind = OP_WRITEV, .fd = fd, .iov = iov, .iovcnt = n });
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if (!ps_fd_get(fd))
		return real()->send(fd, buf, n, flags);
	return tracked_send(&(struct op){
		.kind = OP_SEND, .fd = fd, .buf = (void *)buf, .len = n, .flags = flags });
}

ssize_t __send(int fd, const void *buf, size_t n, int flags) { return send(fd, buf, n, flags); }

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
	       socklen_t salen)
{
	if (!ps_fd_get(fd))
		return real()->sendto(fd, buf, n, flags, sa, salen);
	return tracked_send(&(struct op){ .kind = OP_SENDTO, .fd = fd, .buf = (void *)buf, .len = n,
					  .flags = flags, .sa = (struct sockaddr *)sa, .salen = salen });
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	passing(m);
	if (!ps_fd_get(fd))
		return real()->sendmsg(fd, m, flags);
	return tracked_send(&(struct op){
		.kind = OP_SENDMSG, .fd = fd, .msg = (struct msghdr *)m, .flags = flags });
}

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	for (unsigned i = 0; v && i < n; i++)
		passing(&v[i].msg_hdr);
	if (!ps_fd_get(fd))
		return real()->sendmmsg(fd, v, n, flags);
	return (int)tracked_send(&(struct op){
		.kind = OP_SENDMMSG, .fd = fd, .vec = v, .vlen = n, .flags = flags });
}

/* ---- receive side ---- */

ssize_t read(int fd, void *buf, size_t n)
{
	if (!ps_fd_get(fd))
		return real()->read(fd, buf, n);
	return tracked_recv(&(struct op){ .kind = OP_READ, .fd = fd, .buf = buf, .len = n });
}

ssize_t __read(int fd, void *buf, size_t n) { return read(fd, buf, n); }

ssize_t readv(int fd, const struct iovec *iov, int n)
{
	if (!ps_fd_get(fd))
		return real()->readv(fd, iov, n);
	return tracked_recv(&(struct op){ .kind = OP_READV, .fd = fd, .iov = iov, .iovcnt = n });
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (!ps_fd_get(fd))
		return real()->recv(fd, buf, n, flags);
	return tracked_recv(&(struct op){ .kind = OP_RECV, .fd = fd, .buf = buf, .len = n,
					  .flags = flags });
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *salen)
{
	if (!ps_fd_get(fd))
		return real()->recvfrom(fd, buf, n, flags, sa, salen);
	return tracked_recv(&(struct op){ .kind = OP_RECVFROM, .fd = fd, .buf = buf, .len = n,
					  .flags = flags, .sa = sa, .salenp = salen });
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	if (!ps_fd_get(fd))
		return real()->recvmsg(fd, m, flags);
	return tracked_recv(&(struct op){ .kind = OP_RECVMSG, .fd = fd, .msg = m, .flags = flags });
}

int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *timeout)
{
	if (!ps_fd_get(fd))
		return real()->recvmmsg(fd, v, n, flags, timeout);
	return (int)tracked_recv(&(struct op){ .kind = OP_RECVMMSG, .fd = fd, .vec = v, .vlen = n,
					       .flags = flags, .timeout = timeout });
}

/* _FORTIFY_SOURCE builds call these instead (HAZARDS.md 3). */

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (!ps_fd_get(fd))
		return real()->read_chk(fd, buf, n, buflen);
	return tracked_recv(&(struct op){
		.kind = OP_READ_CHK, .fd = fd, .buf = buf, .len = n, .buflen = buflen });
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (!ps_fd_get(fd))
		return real()->recv_chk(fd, buf, n, buflen, flags);
	return tracked_recv(&(struct op){ .kind = OP_RECV_CHK, .fd = fd, .buf = buf, .len = n,
					  .buflen = buflen, .flags = flags });
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *sa, socklen_t *salen)
{
	if (!ps_fd_get(fd))
		return real()->recvfrom_chk(fd, buf, n, buflen, flags, sa, salen);
	return tracked_recv(&(struct op){ .kind = OP_RECVFROM_CHK, .fd = fd, .buf = buf, .len = n,
					  .buflen = buflen, .flags = flags, .sa = sa,
					  .salenp = salen });
}
