/* dup*, fcntl, ioctl, fdopen, close_range, epoll_ctl and the open family:
 * extra references to a tracked socket, descriptors replaced or closed under
 * the shim, status flags, and descriptor pressure.  lib/events.c decides. */
#include "hooks.h"
#include "real.h"

#include "events.h"
#include "fdtable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

/* always through lib/: the new number may carry a stale record */
int dup(int fd)
{
	(void)real();
	return ps_dup(fd);
}

/* onto a tracked number too: newfd's record must go */
int dup2(int oldfd, int newfd)
{
	(void)real();
	return ps_dup2(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags)
{
	(void)real();
	return ps_dup3(oldfd, newfd, flags);
}

/* The third argument is an int, a pointer or absent; as a long it passes
 * through unchanged on this ABI, and the kernel reads only what cmd uses. */
int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (!ps_fd_get(fd))
		return real()->fcntl(fd, cmd, arg);
	return ps_fcntl(fd, cmd, arg, 0);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (!ps_fd_get(fd))
		return real()->fcntl64(fd, cmd, arg);
	return ps_fcntl(fd, cmd, arg, 1);
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!ps_fd_get(fd))
		return real()->ioctl(fd, request, arg);
	return ps_ioctl(fd, request, arg);
}

FILE *fdopen(int fd, const char *mode)
{
	if (!ps_fd_get(fd))
		return real()->fdopen(fd, mode);
	return ps_fdopen(fd, mode);
}

int close_range(unsigned int lo, unsigned int hi, int flags)
{
	(void)real();
	return ps_close_range(lo, hi, flags);
}

void closefrom(int lo)
{
	(void)real();
	ps_closefrom(lo);
}

int fstat(int fd, struct stat *st)
{
	if (!ps_fd_get(fd))
		return real()->fstat(fd, st);
	return ps_fstat(fd, st, 0);
}

int fstat64(int fd, struct stat64 *st)
{
	if (!ps_fd_get(fd))
		return real()->fstat64(fd, st);
	return ps_fstat(fd, st, 1);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (!ps_fd_get(fd))
		return real()->epoll_ctl(epfd, op, fd, ev);
	return ps_epoll_ctl(epfd, op, fd, ev);
}

/* ---- the open family: once more under descriptor pressure ---- */

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

enum open_kind { OPEN, OPEN64, OPENAT, OPENAT64 };

struct open_call {
	enum open_kind kind;
	int dirfd;
	const char *path;
	int flags;
	mode_t mode;
};

static int call_open(void *ctx)
{
	const struct open_call *o = ctx;
	switch (o->kind) {
	case OPEN: return real()->open(o->path, o->flags, o->mode);
	case OPEN64: return real()->open64(o->path, o->flags, o->mode);
	case OPENAT: return real()->openat(o->dirfd, o->path, o->flags, o->mode);
	case OPENAT64: return real()->openat64(o->dirfd, o->path, o->flags, o->mode);
	}
	return -1;
}

static int tracked_open(enum open_kind k, int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_call o = { k, dirfd, path, flags, mode };
	return ps_opened(call_open(&o), call_open, &o);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	return tracked_open(OPEN, AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	return tracked_open(OPEN64, AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	return tracked_open(OPENAT, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	return tracked_open(OPENAT64, dirfd, path, flags, mode);
}
