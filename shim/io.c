/* The write and read families.  Each wrapper looks the fd up (untracked:
 * straight to libc, nothing else) and otherwise describes its call as an
 * op for lib/io.c's one send path and one receive path (io.h). */
#include "hooks.h"
#include "real.h"

#include "fdtable.h"
#include "conn.h"
#include "io.h"
#include "track.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

enum op_kind {
	OP_WRITE, OP_WRITEV, OP_SEND, OP_SENDTO, OP_SENDMSG, OP_SENDMMSG,
	OP_READ, OP_READV, OP_RECV, OP_RECVFROM, OP_RECVMSG, OP_RECVMMSG,
	OP_READ_CHK, OP_RECV_CHK, OP_RECVFROM_CHK,
	OP_PWRITEV2, OP_PREADV2, /* offset -1: the socket's writev/readv with flags */
};

struct op {
	struct ps_call call;     /* first: lib/io.c hands it back to call() */
	struct iovec one;        /* buf/len as an iovec */
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
	int rwf;                 /* pwritev2/preadv2 RWF_* flags */
	bool is64;               /* the *64v2 entry point */
};

/* The op's call, with the extra flags the send path asks for (MSG_NOSIGNAL
 * while a failed write may still be retried): write and writev become
 * send/sendmsg then, which is the same call on a socket. */
static ssize_t call(const struct ps_call *k, int extra)
{
	const struct op *o = (const struct op *)k;
	const struct ps_libc *r = real();
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
	case OP_PWRITEV2:
		if (extra) {
			m = (struct msghdr){ .msg_iov = (struct iovec *)o->iov, .msg_iovlen = (size_t)o->iovcnt };
			return r->sendmsg(o->fd, &m, extra);
		}
		return o->is64 ? r->pwritev64v2(o->fd, o->iov, o->iovcnt, -1, o->rwf)
			       : r->pwritev2(o->fd, o->iov, o->iovcnt, -1, o->rwf);
	case OP_PREADV2:
		return o->is64 ? r->preadv64v2(o->fd, o->iov, o->iovcnt, -1, o->rwf)
			       : r->preadv2(o->fd, o->iov, o->iovcnt, -1, o->rwf);
	}
	errno = ENOSYS;
	return -1;
}

/* Fills the op's description for lib/io.c: the bytes it moves as an iovec
 * list (none known for the mmsg calls), and what it asks for. */
static struct ps_call *describe(struct op *o)
{
	struct ps_call *k = &o->call;
	k->fn = call;
	k->fd = o->fd;
	k->flags = o->flags;
	if (o->vec) {
		k->iov = NULL;
		k->iovcnt = 0;
		k->want = o->vlen;
		return k;
	}
	if (o->msg) {
		k->iov = o->msg->msg_iov;
		k->iovcnt = o->msg->msg_iovlen;
	} else if (o->iov) {
		k->iov = o->iov;
		k->iovcnt = o->iovcnt > 0 ? (size_t)o->iovcnt : 0;
	} else {
		o->one = (struct iovec){ .iov_base = o->buf, .iov_len = o->len };
		k->iov = &o->one;
		k->iovcnt = 1;
	}
	k->want = 0;
	for (size_t i = 0; k->iov && i < k->iovcnt; i++)
		k->want += k->iov[i].iov_len;
	return k;
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

static ssize_t tracked_send(struct op *o) { return ps_send(describe(o)); }
static ssize_t tracked_recv(struct op *o) { return ps_recv(describe(o)); }

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

/* pwritev2/preadv2 with offset -1 are writev/readv on a socket (any other
 * offset fails with ESPIPE there, as libc reports). */

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int rwf)
{
	if (off != -1 || !ps_fd_get(fd))
		return real()->pwritev2(fd, iov, n, off, rwf);
	return tracked_send(&(struct op){ .kind = OP_PWRITEV2, .fd = fd, .iov = iov, .iovcnt = n, .rwf = rwf });
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int rwf)
{
	if (off != -1 || !ps_fd_get(fd))
		return real()->pwritev64v2(fd, iov, n, off, rwf);
	return tracked_send(&(struct op){
		.kind = OP_PWRITEV2, .fd = fd, .iov = iov, .iovcnt = n, .rwf = rwf, .is64 = true });
}

ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int rwf)
{
	if (off != -1 || !ps_fd_get(fd))
		return real()->preadv2(fd, iov, n, off, rwf);
	return tracked_recv(&(struct op){ .kind = OP_PREADV2, .fd = fd, .iov = iov, .iovcnt = n, .rwf = rwf });
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int rwf)
{
	if (off != -1 || !ps_fd_get(fd))
		return real()->preadv64v2(fd, iov, n, off, rwf);
	return tracked_recv(&(struct op){
		.kind = OP_PREADV2, .fd = fd, .iov = iov, .iovcnt = n, .rwf = rwf, .is64 = true });
}

/* ---- bytes the shim cannot read: sendfile, splice (io.h ps_unseen) ---- */

struct unseen {
	enum { SENDFILE, SENDFILE64, SPLICE } kind;
	int out_fd, in_fd;
	void *off_in, *off_out;
	size_t len;
	unsigned flags;
};

static ssize_t call_unseen(void *ctx)
{
	const struct unseen *u = ctx;
	const struct ps_libc *r = real();
	switch (u->kind) {
	case SENDFILE: return r->sendfile(u->out_fd, u->in_fd, u->off_in, u->len);
	case SENDFILE64: return r->sendfile64(u->out_fd, u->in_fd, u->off_in, u->len);
	case SPLICE: return r->splice(u->in_fd, u->off_in, u->out_fd, u->off_out, u->len, u->flags);
	}
	errno = ENOSYS;
	return -1;
}

ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
	if (!ps_fd_get(out_fd))
		return real()->sendfile(out_fd, in_fd, off, n);
	struct unseen u = { .kind = SENDFILE, .out_fd = out_fd, .in_fd = in_fd, .off_in = off, .len = n };
	return ps_unseen(out_fd, PS_IO_WRITE, call_unseen, &u);
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t n)
{
	if (!ps_fd_get(out_fd))
		return real()->sendfile64(out_fd, in_fd, off, n);
	struct unseen u = { .kind = SENDFILE64, .out_fd = out_fd, .in_fd = in_fd, .off_in = off, .len = n };
	return ps_unseen(out_fd, PS_IO_WRITE, call_unseen, &u);
}

/* A tracked socket on either end: bytes into it or out of it unseen. */
ssize_t splice(int in_fd, off64_t *off_in, int out_fd, off64_t *off_out, size_t n, unsigned int flags)
{
	struct unseen u = { SPLICE, out_fd, in_fd, off_in, off_out, n, flags };
	if (ps_fd_get(out_fd))
		return ps_unseen(out_fd, PS_IO_WRITE, call_unseen, &u);
	if (ps_fd_get(in_fd))
		return ps_unseen(in_fd, PS_IO_READ, call_unseen, &u);
	return real()->splice(in_fd, off_in, out_fd, off_out, n, flags);
}
