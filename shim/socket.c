/* socket(), bind(), setsockopt(), getsockopt(), shutdown(), accept(),
 * getsockname(), getpeername(): what
 * the shim needs to know about a socket before and while it is connected. */
#include "hooks.h"
#include "real.h"

#include "events.h"
#include "fdtable.h"

int socket(int domain, int type, int protocol)
{
	ps_shim_init();
	return ps_socket(domain, type, protocol);
}

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!ps_fd_get(fd))
		return real()->bind(fd, sa, len);
	return ps_bind(fd, sa, len);
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (!ps_fd_get(fd))
		return real()->setsockopt(fd, level, name, val, len);
	return ps_setsockopt(fd, level, name, val, len);
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (!ps_fd_get(fd))
		return real()->getsockopt(fd, level, name, val, len);
	return ps_getsockopt(fd, level, name, val, len);
}

int listen(int fd, int backlog)
{
	if (!ps_fd_get(fd))
		return real()->listen(fd, backlog);
	return ps_listen(fd, backlog);
}

int shutdown(int fd, int how)
{
	if (!ps_fd_get(fd))
		return real()->shutdown(fd, how);
	return ps_shutdown(fd, how);
}

int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	if (!ps_fd_get(fd))
		return real()->getsockname(fd, sa, len);
	return ps_getsockname(fd, sa, len);
}

int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	if (!ps_fd_get(fd))
		return real()->getpeername(fd, sa, len);
	return ps_getpeername(fd, sa, len);
}

int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	(void)real(); /* bound before lib/ calls through the table */
	return ps_accept4(fd, sa, len, 0, 0);
}

int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	(void)real();
	return ps_accept4(fd, sa, len, flags, 1);
}
