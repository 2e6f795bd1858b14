/* socket(), bind(), setsockopt(), shutdown(), accept(): what the shim needs
 * to know about a socket before and while it is connected. */
#include "hooks.h"
#include "real.h"

#include "conn.h"
#include "fdtable.h"
#include "track.h"

#include <errno.h>

int socket(int domain, int type, int protocol)
{
	ps_shim_init();
	int fd = real()->socket(domain, type, protocol);
	if (fd < 0 && ps_fd_pressure(errno))
		fd = real()->socket(domain, type, protocol);
	if (fd >= 0) {
		int saved = errno;
		ps_track_socket(fd, domain, type, protocol);
		errno = saved;
	}
	return fd;
}

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int r = real()->bind(fd, sa, len);
	struct ps_conn *c = ps_fd_program(fd);
	if (c) {
		int saved = errno;
		ps_track_bind(c, sa, len, r);
		errno = saved;
	}
	return r;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct ps_conn *c = ps_fd_program(fd);
	if (!c)
		return real()->setsockopt(fd, level, name, val, len);
	int saved = errno;
	ps_track_setsockopt_before(c, fd, level, name);
	errno = saved;
	int r = real()->setsockopt(fd, level, name, val, len);
	saved = errno;
	ps_track_setsockopt_after(c, level, name, val, len, r);
	errno = saved;
	return r;
}

int shutdown(int fd, int how)
{
	struct ps_conn *c = ps_fd_program(fd);
	if (c)
		ps_track_shutdown(c, 0);
	return real()->shutdown(fd, how);
}

static int accepted(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		ps_track_new_fd(fd);
		errno = saved;
	}
	return fd;
}

int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	int r = real()->accept(fd, sa, len);
	if (r < 0 && ps_fd_pressure(errno))
		r = real()->accept(fd, sa, len);
	return accepted(r);
}

int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	int r = real()->accept4(fd, sa, len, flags);
	if (r < 0 && ps_fd_pressure(errno))
		r = real()->accept4(fd, sa, len, flags);
	return accepted(r);
}
