/* Prototypes glibc's headers only declare in some build modes (FORTIFY),
 * so that every hook is declared exactly as libc defines it. */
#ifndef POOLSHIM_HOOKS_H
#define POOLSHIM_HOOKS_H

#include <sys/socket.h>
#include <sys/types.h>

ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
		       struct sockaddr *from, socklen_t *fromlen);
int fcntl64(int fd, int cmd, ...);
ssize_t __write(int fd, const void *buf, size_t n);
ssize_t __read(int fd, void *buf, size_t n);
ssize_t __send(int fd, const void *buf, size_t n, int flags);
int __connect(int fd, const struct sockaddr *sa, socklen_t len);
int __close(int fd);

#endif
