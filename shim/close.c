/* close(): checkin to the pool, or the real close. */
#include "hooks.h"
#include "real.h"

#include "events.h"
#include "fdtable.h"

int close(int fd)
{
	if (!ps_fd_get(fd))
		return real()->close(fd);
	return ps_close(fd);
}

int __close(int fd) { return close(fd); }
