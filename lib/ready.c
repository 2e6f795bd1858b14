/* Owns the registry of reused connections not used yet and the readiness
 * calls that look at them (ready.h).  The registry is a fixed array of
 * atomic slots: a connection that finds no free slot is simply not watched
 * by the readiness calls (its read, write and SO_ERROR still are). */
#include "ready.h"
#include "clock.h"
#include "fdtable.h"
#include "libc.h"
#include "lifecycle.h"
#include "park.h"
#include "probe.h"
#include "resend.h"

#include <errno.h>
#include <string.h>

int ps_unused_count;
static struct ps_conn *unused[PS_MAX_UNUSED];

void ps_unused_add(struct ps_conn *c)
{
	for (int i = 0; i < PS_MAX_UNUSED; i++) {
		struct ps_conn *none = NULL;
		if (__atomic_compare_exchange_n(&unused[i], &none, c, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED)) {
			__atomic_store_n(&c->unused_slot, i + 1, __ATOMIC_RELEASE);
			__atomic_fetch_add(&ps_unused_count, 1, __ATOMIC_ACQ_REL);
			return;
		}
	}
}

void ps_unused_remove(struct ps_conn *c)
{
	if (!__atomic_load_n(&c->unused_slot, __ATOMIC_ACQUIRE))
		return;
	int i = __atomic_exchange_n(&c->unused_slot, 0, __ATOMIC_ACQ_REL);
	struct ps_conn *expect = c;
	if (i && __atomic_compare_exchange_n(&unused[i - 1], &expect, NULL, false, __ATOMIC_ACQ_REL,
					     __ATOMIC_RELAXED))
		__atomic_fetch_sub(&ps_unused_count, 1, __ATOMIC_ACQ_REL);
}

void ps_unused_reset(void)
{
	memset(unused, 0, sizeof unused);
	__atomic_store_n(&ps_unused_count, 0, __ATOMIC_RELEASE);
}

static bool watching(void) { return __atomic_load_n(&ps_unused_count, __ATOMIC_ACQUIRE) > 0; }

/* Replaces fd's connection when it is reused, unused and not healthy.
 * Returns true when it did. */
static bool check(int fd)
{
	struct ps_conn *c = ps_fd_get(fd);
	if (!c || !__atomic_load_n(&c->unused_slot, __ATOMIC_ACQUIRE))
		return false;
	uint32_t seq = ps_life_io_enter(c, fd);
	if (!seq)
		return false;
	bool replaced = false;
	if (__atomic_load_n(&c->unused_slot, __ATOMIC_ACQUIRE) && ps_probe_health(fd) != PS_HEALTHY)
		replaced = ps_replace_unused(c, fd);
	ps_life_io_leave(c);
	return replaced;
}

void ps_ready_check(int fd)
{
	if (watching()) {
		int saved = errno;
		check(fd);
		errno = saved;
	}
}

/* What readiness says about a connection nobody has written to yet: any of
 * these means closed, reset, or bytes nobody asked for. */
#define BAD_POLL (POLLERR | POLLHUP | POLLRDHUP | POLLIN | POLLPRI)
#define BAD_EPOLL (EPOLLERR | EPOLLHUP | EPOLLRDHUP | EPOLLIN | EPOLLPRI)

static bool scrub_poll(struct pollfd *fds, nfds_t n)
{
	bool again = false;
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0 && (fds[i].revents & BAD_POLL) && check(fds[i].fd))
			again = true;
	return again;
}

/* Time left of a timeout that started at start_ns; -1 stays "forever". */
static int left_ms(int timeout_ms, uint64_t start_ns)
{
	if (timeout_ms < 0)
		return -1;
	uint64_t spent = (ps_now_ns() - start_ns) / 1000000;
	return spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
}

static int ts_ms(const struct timespec *t)
{
	if (!t)
		return -1;
	uint64_t ms = (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_nsec / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* One poll or ppoll call, made again with what is left of its timeout. */
struct poll_call {
	bool is_ppoll;
	int timeout_ms;
	const struct timespec *ts;
	const sigset_t *mask;
	uint64_t start;
};

static int call_poll(const struct poll_call *k, struct pollfd *fds, nfds_t n, bool again)
{
	if (!k->is_ppoll)
		return ps_libc.poll(fds, n, again ? left_ms(k->timeout_ms, k->start) : k->timeout_ms);
	if (!again || !k->ts)
		return ps_libc.ppoll(fds, n, k->ts, k->mask);
	int left = left_ms(ts_ms(k->ts), k->start);
	struct timespec ts = { left / 1000, (long)(left % 1000) * 1000000 };
	return ps_libc.ppoll(fds, n, &ts, k->mask);
}

static int poll_scrubbed(const struct poll_call *k, struct pollfd *fds, nfds_t n)
{
	int r = call_poll(k, fds, n, false);
	/* bounded: a second pass only after a replacement, which a connection
	 * gets once per use */
	for (int pass = 0; r > 0 && pass < 2; pass++) {
		int saved = errno;
		bool again = scrub_poll(fds, n);
		errno = saved;
		if (!again)
			break;
		r = call_poll(k, fds, n, true);
	}
	return r;
}

/* A parked number (park.h) in the set is a closed descriptor to the
 * program: POLLNVAL, and the call returns at once, as the kernel's does. */
static int poll_with_parked(struct pollfd *fds, nfds_t n, const sigset_t *mask, bool is_ppoll,
			    const struct ps_parked_in_poll *p)
{
	struct timespec zero = { 0, 0 };
	int r = is_ppoll ? ps_libc.ppoll(fds, n, &zero, mask) : ps_libc.poll(fds, n, 0);
	int saved = errno;
	r = ps_park_poll_show(fds, p, r);
	errno = saved;
	return r;
}

int ps_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct ps_parked_in_poll p;
	if (ps_park_poll_hide(fds, n, &p))
		return poll_with_parked(fds, n, NULL, false, &p);
	if (!watching())
		return ps_libc.poll(fds, n, timeout_ms);
	struct poll_call k = { .timeout_ms = timeout_ms, .start = ps_now_ns() };
	return poll_scrubbed(&k, fds, n);
}

int ps_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
	struct ps_parked_in_poll p;
	if (ps_park_poll_hide(fds, n, &p))
		return poll_with_parked(fds, n, mask, true, &p);
	if (!watching())
		return ps_libc.ppoll(fds, n, t, mask);
	struct poll_call k = { .is_ppoll = true, .ts = t, .mask = mask, .start = ps_now_ns() };
	return poll_scrubbed(&k, fds, n);
}

static bool scrub_sets(int n, fd_set *r, fd_set *w, fd_set *e)
{
	bool again = false;
	for (int fd = 0; fd < n && fd < FD_SETSIZE; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
		    check(fd))
			again = true;
	return again;
}

struct sets {
	fd_set r, w, e;
};

static void save_sets(struct sets *s, fd_set *r, fd_set *w, fd_set *e)
{
	if (r)
		s->r = *r;
	if (w)
		s->w = *w;
	if (e)
		s->e = *e;
}

static void restore_sets(const struct sets *s, fd_set *r, fd_set *w, fd_set *e)
{
	if (r)
		*r = s->r;
	if (w)
		*w = s->w;
	if (e)
		*e = s->e;
}

/* One select or pselect call: select keeps what is left of its timeout in
 * *tv (Linux), pselect's is computed from the start. */
struct select_call {
	bool is_pselect;
	struct timeval *tv;
	const struct timespec *ts;
	const sigset_t *mask;
	uint64_t start;
};

static int call_select(const struct select_call *k, int n, fd_set *r, fd_set *w, fd_set *e, bool again)
{
	if (!k->is_pselect)
		return ps_libc.select(n, r, w, e, k->tv);
	if (!again || !k->ts)
		return ps_libc.pselect(n, r, w, e, k->ts, k->mask);
	int left = left_ms(ts_ms(k->ts), k->start);
	struct timespec ts = { left / 1000, (long)(left % 1000) * 1000000 };
	return ps_libc.pselect(n, r, w, e, &ts, k->mask);
}

static int select_scrubbed(const struct select_call *k, int n, fd_set *r, fd_set *w, fd_set *e)
{
	struct sets saved_sets;
	save_sets(&saved_sets, r, w, e);
	int res = call_select(k, n, r, w, e, false);
	for (int pass = 0; res > 0 && pass < 2; pass++) {
		int saved = errno;
		bool again = scrub_sets(n, r, w, e);
		errno = saved;
		if (!again)
			break;
		restore_sets(&saved_sets, r, w, e);
		res = call_select(k, n, r, w, e, true);
	}
	return res;
}

int ps_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
	if (ps_park_in_sets(n, r, w, e)) {
		errno = EBADF; /* park.h: a parked number is a closed one */
		return -1;
	}
	if (!watching())
		return ps_libc.select(n, r, w, e, t);
	struct select_call k = { .tv = t };
	return select_scrubbed(&k, n, r, w, e);
}

int ps_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *mask)
{
	if (ps_park_in_sets(n, r, w, e)) {
		errno = EBADF;
		return -1;
	}
	if (!watching())
		return ps_libc.pselect(n, r, w, e, t, mask);
	struct select_call k = { .is_pselect = true, .ts = t, .mask = mask, .start = ps_now_ns() };
	return select_scrubbed(&k, n, r, w, e);
}

/* The unused connection an epoll event is about: one registered on epfd
 * with the event's data. */
static int event_fd(int epfd, const struct epoll_event *ev)
{
	for (int i = 0; i < PS_MAX_UNUSED; i++) {
		struct ps_conn *c = __atomic_load_n(&unused[i], __ATOMIC_ACQUIRE);
		if (!c)
			continue;
		for (int j = 0; j < c->n_epoll && j < PS_MAX_EPOLL; j++)
			if (c->epoll[j].epfd == epfd && c->epoll[j].ev.data.u64 == ev->data.u64)
				return __atomic_load_n(&c->fd, __ATOMIC_RELAXED);
	}
	return -1;
}

/* Drops the events of replaced connections: the new one is registered
 * again and reports for itself. */
static int scrub_events(int epfd, struct epoll_event *ev, int n)
{
	int kept = 0;
	for (int i = 0; i < n; i++) {
		int fd = (ev[i].events & BAD_EPOLL) ? event_fd(epfd, &ev[i]) : -1;
		if (fd >= 0 && check(fd))
			continue;
		ev[kept++] = ev[i];
	}
	return kept;
}

int ps_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout_ms, const sigset_t *mask)
{
	uint64_t start = watching() ? ps_now_ns() : 0;
	int r = mask ? ps_libc.epoll_pwait(epfd, ev, max, timeout_ms, mask)
		     : ps_libc.epoll_wait(epfd, ev, max, timeout_ms);
	for (int pass = 0; r > 0 && start && pass < 2; pass++) {
		int saved = errno;
		int kept = scrub_events(epfd, ev, r);
		errno = saved;
		if (kept)
			return kept;
		int left = left_ms(timeout_ms, start);
		r = mask ? ps_libc.epoll_pwait(epfd, ev, max, left, mask)
			 : ps_libc.epoll_wait(epfd, ev, max, left);
	}
	return r;
}

int ps_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
	return ps_epoll_pwait(epfd, ev, max, timeout_ms, NULL);
}
