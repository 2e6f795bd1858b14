/* Owns the default (raw syscall) implementation of struct ps_sys. */
#include "sys.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int raw_close(int fd) { return (int)syscall(SYS_close, fd); }
static int raw_dup3(int o, int n, int f) { return (int)syscall(SYS_dup3, o, n, f); }
static int raw_fcntl(int fd, int cmd, long arg) { return (int)syscall(SYS_fcntl, fd, cmd, arg); }

static ssize_t raw_recv(int fd, void *buf, size_t len, int flags)
{
	return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

static ssize_t raw_send(int fd, const void *buf, size_t len, int flags)
{
	return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

static int raw_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	return (int)syscall(SYS_getsockopt, fd, level, name, val, len);
}

static int raw_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}

static ssize_t raw_write(int fd, const void *buf, size_t len) { return syscall(SYS_write, fd, buf, len); }

static int raw_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)syscall(SYS_connect, fd, sa, len);
}

static int raw_socket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static pid_t raw_getpid(void) { return (pid_t)syscall(SYS_getpid); }

static int raw_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
	return (int)syscall(SYS_ppoll, fds, n, timeout_ms < 0 ? NULL : &ts, NULL, 0);
}

static int raw_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

static int raw_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)syscall(SYS_bind, fd, sa, len);
}

static int raw_open(const char *path, int flags, int mode)
{
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int raw_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	return (int)syscall(SYS_getsockname, fd, sa, len);
}

static const struct ps_sys defaults = {
	.close = raw_close,
	.dup3 = raw_dup3,
	.fcntl = raw_fcntl,
	.recv = raw_recv,
	.send = raw_send,
	.getsockopt = raw_getsockopt,
	.setsockopt = raw_setsockopt,
	.write = raw_write,
	.connect = raw_connect,
	.socket = raw_socket,
	.getpid = raw_getpid,
	.poll = raw_poll,
	.epoll_ctl = raw_epoll_ctl,
	.bind = raw_bind,
	.open = raw_open,
	.getsockname = raw_getsockname,
};

struct ps_sys ps_sys = defaults;

void ps_sys_reset(void) { ps_sys = defaults; }
