/* The kernel calls the pool core makes on its own behalf (identity and health
 * proofs, hiding and handing over descriptors).  They go through this table so
 * that unit tests can inject faults, and default to raw syscall(2): raw calls
 * are never interposed (not even by another preload) and are not cancellation
 * points, so the shim's own work cannot be cancelled half-way. */
#ifndef POOLSHIM_SYS_H
#define POOLSHIM_SYS_H

#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/socket.h>

struct ps_sys {
	int (*close)(int fd);
	int (*dup3)(int oldfd, int newfd, int flags);
	int (*fcntl)(int fd, int cmd, long arg);
	ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
	ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
	int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
	int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*connect)(int fd, const struct sockaddr *sa, socklen_t len);
	int (*socket)(int domain, int type, int protocol);
	pid_t (*getpid)(void);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
	int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
	int (*bind)(int fd, const struct sockaddr *sa, socklen_t len);
	int (*open)(const char *path, int flags, int mode);
	int (*getsockname)(int fd, struct sockaddr *sa, socklen_t *len);
	/* the shared pool (shared.c, rundir.c, keeper/): the keeper's socket,
	 * its private directory, and starting it */
	ssize_t (*sendmsg)(int fd, const struct msghdr *m, int flags);
	ssize_t (*recvmsg)(int fd, struct msghdr *m, int flags);
	int (*lstat)(const char *path, struct stat *st); /* never follows a symlink */
	int (*fstat)(int fd, struct stat *st);
	int (*mkdir)(const char *path, int mode);
	int (*unlink)(const char *path);
	int (*flock)(int fd, int op);
	uid_t (*getuid)(void);
	/* posix_spawn in a new session, descriptors 0-2 on /dev/null and no
	 * other descriptor inherited; returns 0 or an errno value */
	int (*spawn)(pid_t *pid, const char *path, char *const argv[], char *const envp[]);
	pid_t (*wait4)(pid_t pid, int *status, int options);
};

extern struct ps_sys ps_sys;

/* Restores the raw-syscall defaults (tests call it after faking an entry). */
void ps_sys_reset(void);

#endif
