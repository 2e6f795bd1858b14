/* Owns the default (raw syscall) implementation of struct ps_sys. */
#include "sys.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
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

static ssize_t raw_sendmsg(int fd, const struct msghdr *m, int flags)
{
	return syscall(SYS_sendmsg, fd, m, flags);
}

static ssize_t raw_recvmsg(int fd, struct msghdr *m, int flags)
{
	return syscall(SYS_recvmsg, fd, m, flags);
}

static int raw_fstat(int fd, struct stat *st) { return (int)syscall(SYS_fstat, fd, st); }

static int raw_lstat(const char *path, struct stat *st)
{
	return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

static int raw_mkdir(const char *path, int mode) { return (int)syscall(SYS_mkdirat, AT_FDCWD, path, mode); }
static int raw_unlink(const char *path) { return (int)syscall(SYS_unlinkat, AT_FDCWD, path, 0); }
static int raw_flock(int fd, int op) { return (int)syscall(SYS_flock, fd, op); }
static uid_t raw_getuid(void) { return (uid_t)syscall(SYS_getuid); }

static pid_t raw_wait4(pid_t pid, int *status, int options)
{
	return (pid_t)syscall(SYS_wait4, pid, status, options, NULL);
}

/* posix_spawn is vfork-like (no atfork handlers run, the parent waits only
 * for the exec): a clean way out of a program the shim is loaded in.  It is
 * libc's (ps_libc), not the shim's wrapper.  The child gets a session of its own (no controlling
 * terminal), default signal dispositions, an empty mask, /dev/null on 0-2
 * and no other descriptor of the program. */
static int libc_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int r;
	sigemptyset(&none);
	sigfillset(&all);
	if ((r = posix_spawn_file_actions_init(&fa)) != 0)
		return r;
	if ((r = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return r;
	}
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!r)
		r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
						  POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&at, &all);
	if (!r)
		r = ps_libc.posix_spawn ? ps_libc.posix_spawn(pid, path, &fa, &at, argv, envp) : ENOSYS;
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return r;
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
	.sendmsg = raw_sendmsg,
	.recvmsg = raw_recvmsg,
	.lstat = raw_lstat,
	.fstat = raw_fstat,
	.mkdir = raw_mkdir,
	.unlink = raw_unlink,
	.flock = raw_flock,
	.getuid = raw_getuid,
	.spawn = libc_spawn,
	.wait4 = raw_wait4,
};

struct ps_sys ps_sys = defaults;

void ps_sys_reset(void) { ps_sys = defaults; }
