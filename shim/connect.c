/* connect(): checkout from the pool, or the real connect, tracked. */
#include "hooks.h"
#include "real.h"

#include "conn.h"
#include "fdtable.h"
#include "handoff.h"
#include "track.h"

#include <errno.h>

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ps_conn *c = ps_fd_program(fd);
	if (!c)
		return real()->connect(fd, sa, len);
	int saved = errno;
	if (ps_conn_state(c) != PS_FRESH) {
		/* A repeat connect goes to the kernel (EISCONN/EALREADY), never
		 * to a second checkout; AF_UNSPEC dissolves the connection. */
		if (sa && len >= (socklen_t)sizeof(sa_family_t) && sa->sa_family == AF_UNSPEC)
			ps_track_taint(c, PS_T_UNTRACKABLE);
		return real()->connect(fd, sa, len);
	}
	int nonblock = 0;
	uint32_t seq = ps_conn_seq(c);
	if (sa && ps_checkout(c, fd, sa, len, &nonblock)) {
		/* as a fresh connect reports it: a non-blocking socket is
		 * "in progress", and already writable with SO_ERROR 0 */
		errno = nonblock ? EINPROGRESS : saved;
		return nonblock ? -1 : 0;
	}
	errno = saved;
	int r = real()->connect(fd, sa, len);
	int err = errno;
	if (sa)
		ps_connected(c, seq, fd, sa, len, r, err);
	errno = err;
	return r;
}

int __connect(int fd, const struct sockaddr *sa, socklen_t len) { return connect(fd, sa, len); }
