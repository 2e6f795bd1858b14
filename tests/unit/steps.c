/* The shim's entry points as its wrappers call them (see steps.h). */
#include "steps.h"
#include "events.h"
#include "helpers.h"
#include "stats.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

int last_hit;
int last_retried;
int last_pooled;

int w_socket(int type)
{
	int fd = ps_socket(AF_INET, type, 0);
	cr_assert_geq(fd, 0);
	return fd;
}

int w_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	uint64_t hits = ps_stat_get(PS_ST_HITS);
	int r = ps_connect(fd, sa, len);
	int err = errno;
	last_hit = ps_stat_get(PS_ST_HITS) != hits;
	errno = err;
	return r;
}

ssize_t call_write(const struct ps_call *k, int extra)
{
	const struct iovec *v = k->iov;
	return extra ? send(k->fd, v->iov_base, v->iov_len, extra) : write(k->fd, v->iov_base, v->iov_len);
}

ssize_t call_read(const struct ps_call *k, int extra)
{
	(void)extra;
	return read(k->fd, k->iov->iov_base, k->iov->iov_len);
}

ssize_t w_write(int fd, const void *buf, size_t n)
{
	struct iovec v = { (void *)buf, n };
	struct ps_call k = { .fn = call_write, .fd = fd, .iov = &v, .iovcnt = 1, .want = n };
	uint64_t retries = ps_stat_get(PS_ST_STALE_RETRIES);
	ssize_t r = ps_send(&k);
	int err = errno;
	last_retried = ps_stat_get(PS_ST_STALE_RETRIES) != retries;
	errno = err;
	return r;
}

ssize_t w_read(int fd, void *buf, size_t n)
{
	cr_assert(t_wait_readable(fd, 2000), "nothing to read on fd %d", fd);
	struct iovec v = { buf, n };
	struct ps_call k = { .fn = call_read, .fd = fd, .iov = &v, .iovcnt = 1, .want = n };
	uint64_t retries = ps_stat_get(PS_ST_STALE_RETRIES);
	ssize_t r = ps_recv(&k);
	int err = errno;
	last_retried = ps_stat_get(PS_ST_STALE_RETRIES) != retries;
	errno = err;
	return r;
}

int w_close(int fd)
{
	uint64_t in = ps_stat_get(PS_ST_CHECKINS);
	int r = ps_close(fd);
	int err = errno;
	last_pooled = ps_stat_get(PS_ST_CHECKINS) != in;
	errno = err;
	return r;
}

int w_dup(int fd) { return ps_dup(fd); }

int w_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	return ps_setsockopt(fd, level, name, val, len);
}

int w_bind(int fd, const struct sockaddr *sa, socklen_t len) { return ps_bind(fd, sa, len); }

int w_shutdown(int fd, int how) { return ps_shutdown(fd, how); }

static sigset_t sigpipe_set(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	return s;
}

void t_sigpipe_hold(void)
{
	sigset_t s = sigpipe_set();
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &s, NULL), 0);
}

int t_sigpipe_taken(void)
{
	sigset_t s = sigpipe_set(), pending;
	cr_assert_eq(sigpending(&pending), 0);
	int taken = sigismember(&pending, SIGPIPE);
	if (taken) {
		struct timespec zero = { 0, 0 };
		sigtimedwait(&s, NULL, &zero);
	}
	return taken;
}

void reset_peer(int s)
{
	struct linger lg = { 1, 0 };
	cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(s);
}

void wait_for_reset(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 2000), 1);
	cr_assert(p.revents & (POLLERR | POLLHUP), "no RST seen: %#x", p.revents);
}
