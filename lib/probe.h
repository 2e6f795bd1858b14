/* Identity and health proofs on a socket descriptor (DESIGN.md invariants 3
 * and 4).  Each is one syscall, made through ps_sys. */
#ifndef POOLSHIM_PROBE_H
#define POOLSHIM_PROBE_H

#include <stdint.h>

/* The socket's SO_COOKIE: 64-bit, never reused within a boot.  Returns 0, or
 * -1 with errno (ENOTSOCK for a file, EBADF for a closed fd). */
int ps_probe_cookie(int fd, uint64_t *cookie);

/* 1 if fd still holds the socket whose cookie is `cookie`, else 0. */
int ps_probe_same(int fd, uint64_t cookie);

enum ps_health {
	PS_HEALTHY = 0,     /* no unread bytes, peer still there */
	PS_UNREAD,          /* bytes waiting to be read */
	PS_PEER_CLOSED,     /* FIN received */
	PS_BROKEN,          /* RST, pending socket error, not connected, not a socket */
};

/* One recv(MSG_PEEK|MSG_DONTWAIT) of one byte: only EAGAIN is healthy. */
enum ps_health ps_probe_health(int fd);

const char *ps_health_name(enum ps_health h);

#endif
