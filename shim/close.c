/* close(): checkin to the pool, or the real close. */
#include "hooks.h"
#include "real.h"

#include "fdtable.h"
#include "handoff.h"

#include <errno.h>

int close(int fd)
{
	struct ps_conn *c = ps_fd_get(fd);
	if (c) {
		int saved = errno;
		int pooled = ps_checkin(c, fd);
		errno = saved;
		if (pooled)
			return 0;
	}
	return real()->close(fd);
}

int __close(int fd) { return close(fd); }
