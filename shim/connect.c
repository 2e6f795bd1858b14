/* connect(): checkout from the pool, or the real connect, tracked. */
#include "hooks.h"
#include "real.h"

#include "events.h"
#include "fdtable.h"

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!ps_fd_get(fd))
		return real()->connect(fd, sa, len);
	return ps_connect(fd, sa, len);
}

int __connect(int fd, const struct sockaddr *sa, socklen_t len) { return connect(fd, sa, len); }
