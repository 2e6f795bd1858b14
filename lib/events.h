/* The calls the shim intercepts, one entry each: every wrapper in shim/
 * checks its fast path and then calls exactly one of these, which makes the
 * program's call itself (through ps_libc) and keeps the record in step.  The
 * read and write families are in io.h, the readiness calls in ready.h. */
#ifndef POOLSHIM_EVENTS_H
#define POOLSHIM_EVENTS_H

#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

int ps_socket(int domain, int type, int protocol);
int ps_bind(int fd, const struct sockaddr *sa, socklen_t len);
int ps_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int ps_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int ps_connect(int fd, const struct sockaddr *sa, socklen_t len);
int ps_listen(int fd, int backlog);
int ps_shutdown(int fd, int how);
int ps_close(int fd);

int ps_dup(int fd);
int ps_dup2(int oldfd, int newfd);
int ps_dup3(int oldfd, int newfd, int flags);
/* fcntl and fcntl64 (is64) with the third argument as the ABI passes it */
int ps_fcntl(int fd, int cmd, unsigned long arg, int is64);
int ps_ioctl(int fd, unsigned long request, void *arg);
FILE *ps_fdopen(int fd, const char *mode);
int ps_close_range(unsigned lo, unsigned hi, int flags);
void ps_closefrom(int lo);
int ps_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* The calls that only look at a descriptor: a parked number answers as a
 * closed one, a warm socket (park.h) as the fresh socket it stands for. */
int ps_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int ps_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int ps_fstat(int fd, void *st, int is64);
int ps_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags, int with_flags);

/* A descriptor the program opened another way (open family): retried once
 * under descriptor pressure, and any stale record at its number dropped.
 * open_again remakes the call. */
int ps_opened(int fd, int (*open_again)(void *ctx), void *ctx);

#endif
