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
#include <stdarg.h>
#include <sys/ioctl.h>

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
	struct ps_conn *c = ps_fd_get(fd);
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
	struct ps_conn *c = ps_fd_get(fd);
	if (c && r == 0 && arg) {
		if (request == FIONBIO)
			ps_track_nonblock(c, *(int *)arg);
		else if (request == FIOASYNC && *(int *)arg)
			ps_track_taint(c, PS_T_UNTRACKABLE);
	}
	return r;
}
