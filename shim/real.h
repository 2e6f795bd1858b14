/* The one table of libc functions the shim forwards to, bound once with
 * dlsym(RTLD_NEXT).  Wrappers call real()->name(...). */
#ifndef POOLSHIM_REAL_H
#define POOLSHIM_REAL_H

#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct ps_real {
	int (*socket)(int, int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
	FILE *(*fdopen)(int, const char *);
	int (*close_range)(unsigned int, unsigned int, int); /* optional: NULL if absent */
	void (*closefrom)(int);                              /* optional */
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	pid_t (*fork)(void);
};

extern struct ps_real ps_real_table;
extern int ps_real_ready;

const struct ps_real *ps_real_bind(void);

static inline const struct ps_real *real(void)
{
	if (__builtin_expect(__atomic_load_n(&ps_real_ready, __ATOMIC_ACQUIRE), 1))
		return &ps_real_table;
	return ps_real_bind();
}

/* Sets up the pool once (config, fd table, fork handlers). */
void ps_shim_init(void);

#endif
