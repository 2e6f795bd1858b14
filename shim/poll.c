/* poll, ppoll, select, pselect, epoll_wait, epoll_pwait: straight to libc
 * unless a reused connection the program has not used yet exists (one
 * atomic load); then lib/ready.c replaces any that readiness shows dead. */
#include "hooks.h"
#include "real.h"

#include "ready.h"

static int watching(void) { return __atomic_load_n(&ps_unused_count, __ATOMIC_RELAXED) > 0; }

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (!watching())
		return real()->poll(fds, n, timeout);
	return ps_poll(fds, n, timeout);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
	if (!watching())
		return real()->ppoll(fds, n, t, mask);
	return ps_ppoll(fds, n, t, mask);
}

int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
	if (!watching())
		return real()->select(n, r, w, e, t);
	return ps_select(n, r, w, e, t);
}

int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *mask)
{
	if (!watching())
		return real()->pselect(n, r, w, e, t, mask);
	return ps_pselect(n, r, w, e, t, mask);
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	if (!watching())
		return real()->epoll_wait(epfd, ev, max, timeout);
	return ps_epoll_wait(epfd, ev, max, timeout);
}

int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	if (!watching())
		return real()->epoll_pwait(epfd, ev, max, timeout, mask);
	return ps_epoll_pwait(epfd, ev, max, timeout, mask);
}
