/* dup*, fcntl and ioctl: extra references to a tracked socket (never pool
 * it), descriptors replaced under the shim (drop their records), and the
 * status flags the shim keeps instead of asking the kernel again. */
#include "hooks.h"
#include "real.h"

#include "conn.h"
#include "fdtable.h"
#include "track.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* newfd now refers to what oldfd refers to. */
static int duplicated(int oldfd, int newfd)
{
	if (newfd < 0)
		return newfd;
	int saved = errno;
	struct ps_conn *c = ps_fd_get(oldfd);
	if (c)
		ps_track_taint(c, PS_T_SHARED);
	ps_track_new_fd(newfd);
	errno = saved;
	return newfd;
}

/* dup2/dup3 onto a tracked fd close what was there: drop it first. */
static void replacing(int oldfd, int newfd)
{
	if (oldfd != newfd && ps_fd_get(newfd)) {
		int saved = errno;
		ps_track_drop(newfd);
		errno = saved;
	}
}

int dup(int fd) { return duplicated(fd, real()->dup(fd)); }

int dup2(int oldfd, int newfd)
{
	replacing(oldfd, newfd);
	int r = real()->dup2(oldfd, newfd);
	return oldfd == newfd ? r : duplicated(oldfd, r);
}

int dup3(int oldfd, int newfd, int flags)
{
	replacing(oldfd, newfd);
	return duplicated(oldfd, real()->dup3(oldfd, newfd, flags));
}

static int tracked_fcntl(int (*fn)(int, int, ...), int fd, int cmd, unsigned long arg)
{
	struct ps_conn *c = ps_fd_program(fd);
	int r = fn(fd, cmd, arg);
	if (!c || r < 0)
		return r;
	int saved = errno;
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		duplicated(fd, r);
		break;
	case F_SETFL:
		ps_track_nonblock(c, (arg & O_NONBLOCK) != 0);
		if (arg & O_ASYNC)
			ps_track_taint(c, PS_T_UNTRACKABLE);
		break;
	case F_SETFD:
		ps_track_cloexec(c, (arg & FD_CLOEXEC) != 0);
		break;
	case F_SETOWN:
	case F_SETOWN_EX:
	case F_SETSIG:
		ps_track_taint(c, PS_T_UNTRACKABLE);
		break;
	}
	errno = saved;
	return r;
}

/* The third argument is an int, a pointer or absent; as a long it passes
 * through unchanged on this ABI, and the kernel reads only what cmd uses. */
int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return tracked_fcntl(real()->fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	return tracked_fcntl(real()->fcntl64, fd, cmd, arg);
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int r = real()->ioctl(fd, request, arg);
	struct ps_conn *c = ps_fd_program(fd);
	if (c && r == 0 && arg) {
		if (request == FIONBIO)
			ps_track_nonblock(c, *(int *)arg);
		else if (request == FIOASYNC && *(int *)arg)
			ps_track_taint(c, PS_T_UNTRACKABLE);
	}
	return r;
}

/* A FILE* closes its fd with glibc's internal close, which no hook sees:
 * such a socket is never pooled, and its stale record is caught by the
 * identity check when the number is reused. */
FILE *fdopen(int fd, const char *mode)
{
	struct ps_conn *c = ps_fd_program(fd);
	if (c)
		ps_track_taint(c, PS_T_SHARED);
	return real()->fdopen(fd, mode);
}

int close_range(unsigned int lo, unsigned int hi, int flags)
{
	if (!real()->close_range) {
		errno = ENOSYS;
		return -1;
	}
	/* Forget first (another thread may reuse a number the moment it is
	 * closed), but only for a call that will close: bad arguments fail
	 * with EINVAL and the hidden descriptors must stay known. */
	if (lo <= hi && !(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))) {
		int saved = errno;
		ps_track_close_range(lo, hi, flags);
		errno = saved;
	}
	return real()->close_range(lo, hi, flags);
}

void closefrom(int lo)
{
	if (lo < 0)
		lo = 0;
	int saved = errno;
	ps_track_close_range((unsigned)lo, ~0u, 0);
	errno = saved;
	if (real()->closefrom)
		real()->closefrom(lo);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = real()->epoll_ctl(epfd, op, fd, ev);
	struct ps_conn *c = ps_fd_program(fd);
	if (c) {
		int saved = errno;
		ps_track_epoll_ctl(c, epfd, op, ev, r);
		errno = saved;
	}
	return r;
}

/* ---- descriptor pressure: EMFILE/ENFILE closes one idle connection and
 * the call is tried once more (HAZARDS.md 4) ---- */

static int opened(int fd)
{
	if (fd >= 0 && ps_fd_get(fd)) {
		int saved = errno;
		ps_track_new_fd(fd);
		errno = saved;
	}
	return fd;
}

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

enum open_kind { OPEN, OPEN64, OPENAT, OPENAT64 };

static int call_open(enum open_kind k, int dirfd, const char *path, int flags, mode_t mode)
{
	switch (k) {
	case OPEN: return real()->open(path, flags, mode);
	case OPEN64: return real()->open64(path, flags, mode);
	case OPENAT: return real()->openat(dirfd, path, flags, mode);
	case OPENAT64: return real()->openat64(dirfd, path, flags, mode);
	}
	errno = ENOSYS;
	return -1;
}

/* One path for the open family: the call, once more under pressure. */
static int tracked_open(enum open_kind k, int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = call_open(k, dirfd, path, flags, mode);
	if (fd < 0 && ps_fd_pressure(errno))
		fd = call_open(k, dirfd, path, flags, mode);
	return opened(fd);
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
