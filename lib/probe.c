/* Owns the proofs.  The peek is the cheapest complete health proof measured
 * on this machine (HAZARDS.md 6): it sees unread data, FIN, RST and a pending
 * SO_ERROR in one call; poll or TCP_INFO cost more and see less. */
#include "probe.h"
#include "sys.h"

#include <errno.h>
#include <sys/socket.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

int ps_probe_cookie(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof *cookie;
	if (ps_sys.getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) < 0)
		return -1;
	if (len != sizeof *cookie) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int ps_probe_same(int fd, uint64_t cookie)
{
	uint64_t now;
	int saved = errno;
	int same = ps_probe_cookie(fd, &now) == 0 && now == cookie;
	errno = saved;
	return same;
}

enum ps_health ps_probe_health(int fd)
{
	char b;
	int saved = errno;
	ssize_t n = ps_sys.recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	enum ps_health h;
	if (n > 0)
		h = PS_UNREAD;
	else if (n == 0)
		h = PS_PEER_CLOSED;
	else if (errno == EAGAIN || errno == EWOULDBLOCK)
		h = PS_HEALTHY;
	else
		h = PS_BROKEN;
	errno = saved;
	return h;
}

const char *ps_health_name(enum ps_health h)
{
	static const char *const names[] = { "healthy", "unread bytes", "peer closed", "broken" };
	return names[h];
}
