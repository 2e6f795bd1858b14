/* handoff.c and track.c end to end, without the shim: real loopback sockets,
 * and the exact sequence of lib/ calls the shim's wrappers make
 * (shim/connect.c, shim/io.c, shim/close.c, shim/fd.c, shim/socket.c). */
#include "clock.h"
#include "config.h"
#include "fdtable.h"
#include "events.h"
#include "handoff.h"
#include "io.h"
#include "lifecycle.h"
#include "helpers.h"
#include "key.h"
#include "log.h"
#include "probe.h"
#include "state.h"
#include "stats.h"
#include "steps.h"
#include "sys.h"
#include "track.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define SEC 1000000000ull

static int lfd;                /* the test server's listener */
static struct sockaddr_in dst; /* its address */
#define DST ((struct sockaddr *)&dst), ((socklen_t)sizeof dst)

static void setup(void)
{
	lfd = t_pool_setup(&dst);
	/* this suite drives the pool's own path (hidden descriptors, caps,
	 * LRU), which a parked connection only reaches when it leaves its
	 * number: parking has its suite, test_park.c */
	ps_config.park = false;
	t_fake_now = 1000 * SEC;
	ps_clock_set_source(t_fake_clock);
}

static void teardown(void)
{
	ps_sys_reset();
	ps_clock_set_source(NULL);
}

TestSuite(handoff, .init = setup, .fini = teardown);

/* The shim's entry points as its wrappers call them (w_*, last_hit,
 * last_retried, last_pooled) are in steps.h. */

/* ---- test steps ---- */

/* socket + connect; on a miss, *srv gets the accepted server socket */
static int open_conn(int type, int *srv)
{
	int fd = w_socket(type);
	int r = w_connect(fd, DST);
	if (type & SOCK_NONBLOCK) {
		cr_assert_eq(r, -1);
		cr_assert_eq(errno, EINPROGRESS);
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		cr_assert_eq(poll(&p, 1, 2000), 1);
	} else {
		cr_assert_eq(r, 0, "connect: %s", strerror(errno));
	}
	if (!last_hit) {
		*srv = t_accept(lfd, 2000);
		cr_assert_geq(*srv, 0, "accept: %s", strerror(errno));
	}
	return fd;
}

static void no_pending_accept(void)
{
	int extra = t_accept(lfd, 0);
	cr_assert_eq(extra, -1, "the server saw a new connection");
}

/* client writes req; server (socket s) reads it and answers rep; client reads rep */
static void exchange(int fd, int s, const char *req, const char *rep)
{
	char buf[256];
	size_t qn = strlen(req), pn = strlen(rep);
	cr_assert_eq(w_write(fd, req, qn), (ssize_t)qn);
	cr_assert_eq(t_read_n(s, buf, qn, 2000), (ssize_t)qn, "server did not get the request");
	cr_assert_arr_eq(buf, req, qn);
	cr_assert_eq(write(s, rep, pn), (ssize_t)pn);
	size_t got = 0;
	while (got < pn) {
		ssize_t r = w_read(fd, buf + got, pn - got);
		cr_assert_gt(r, 0);
		got += (size_t)r;
	}
	cr_assert_arr_eq(buf, rep, pn);
}

static void assert_peer_sees_eof(int s)
{
	char b;
	cr_assert(t_wait_readable(s, 2000), "no EOF on server socket %d", s);
	cr_assert_eq(recv(s, &b, 1, MSG_DONTWAIT), 0, "server socket %d is not at EOF", s);
}

static void assert_fd_closed(int fd)
{
	errno = 0;
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "fd %d is still open", fd);
	cr_assert_eq(errno, EBADF);
}

static int only_hidden_fd(void)
{
	cr_assert_eq(ps_g.pool.total, 1);
	cr_assert_not_null(ps_g.pool.lru);
	return ps_g.pool.lru->hidden;
}

#define STAT(s) ps_stat_get(PS_ST_##s)

/* One full pooled request cycle starting from an empty pool. */
static int first_cycle(int *fd_out)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	cr_assert_eq(last_hit, 0);
	exchange(fd, s, "REQ /1\n", "200 one\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1, "a read-last connection must be pooled");
	if (fd_out)
		*fd_out = fd;
	return s;
}

Test(handoff, read_last_connection_is_pooled)
{
	int fd;
	first_cycle(&fd);
	cr_assert_eq(ps_g.pool.total, 1);
	cr_assert_eq(STAT(CHECKINS), 1);
	cr_assert_eq(STAT(CONNECTS), 1);
	cr_assert_eq(STAT(MISSES), 1);
	cr_assert_eq(STAT(HITS), 0);
	cr_assert_eq(STAT(REFUSED), 0);
	assert_fd_closed(fd);
	cr_assert_null(ps_fd_get(fd), "the program's fd is no longer tracked");
	int hidden = only_hidden_fd();
	cr_assert_geq(hidden, ps_g.hidden_floor);
	cr_assert(fcntl(hidden, F_GETFD) & FD_CLOEXEC, "hidden descriptors are close-on-exec");
	struct ps_conn *c = ps_fd_get(hidden);
	cr_assert_eq(c, ps_g.pool.lru);
	cr_assert_eq(ps_conn_state(c), PS_IDLE);
	cr_assert_eq(c->last_used_ns, t_fake_now);
	cr_assert_eq(ps_conn_live(), 1);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, DST), 0);
	cr_assert_eq(ps_pool_key_count(&ps_g.pool, &k), 1);
}

Test(handoff, checkout_reuses_the_same_server_socket)
{
	int s = first_cycle(NULL);
	int hidden = only_hidden_fd();
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1, "the second connect must come from the pool");
	cr_assert_eq(s2, -1);
	no_pending_accept();
	cr_assert_eq(STAT(HITS), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	/* the hidden copy is gone: a close the shim cannot see must end the
	 * connection, as it would without the shim */
	assert_fd_closed(hidden);
	cr_assert_null(ps_fd_get(hidden));
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c);
	cr_assert_eq(c->fd, fd, "the program keeps its fd number");
	cr_assert_eq(c->hidden, -1);
	cr_assert(c->reused);
	cr_assert_eq(c->reuse_count, 1);
	cr_assert_eq(ps_conn_state(c), PS_ACTIVE);
	cr_assert_eq(ps_conn_live(), 1, "the fresh record was freed");
	/* the same server-side socket gets the next request */
	exchange(fd, s, "REQ /2\n", "200 two\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	cr_assert_eq(STAT(CHECKINS), 2);
	cr_assert_eq(STAT(MISSES), 1);
	cr_assert_eq(STAT(CONNECTS), 2);
	cr_assert_eq(ps_g.pool.total, 1);
	assert_fd_closed(fd);
}

Test(handoff, many_cycles_use_one_connection)
{
	int s = first_cycle(NULL);
	for (int i = 0; i < 50; i++) {
		int s2 = -1;
		int fd = open_conn(SOCK_STREAM, &s2);
		cr_assert_eq(last_hit, 1, "cycle %d", i);
		exchange(fd, s, "REQ /n\n", "200 n\n");
		cr_assert_eq(w_close(fd), 0);
		cr_assert_eq(last_pooled, 1, "cycle %d", i);
	}
	no_pending_accept();
	cr_assert_eq(STAT(HITS), 50);
	cr_assert_eq(STAT(MISSES), 1);
	cr_assert_eq(STAT(CHECKINS), 51);
	cr_assert_eq(ps_conn_live(), 1, "no record leaks across cycles");
}

Test(handoff, last_io_write_is_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	char buf[16];
	cr_assert_eq(w_write(fd, "REQ /\n", 6), 6);
	cr_assert_eq(t_read_n(s, buf, 6, 2000), 6);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_WRITE), 1);
	cr_assert_eq(STAT(REFUSED), 1);
	cr_assert_eq(STAT(CHECKINS), 0);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_fd_closed(fd);
	assert_peer_sees_eof(s);
	cr_assert_eq(ps_conn_live(), 0);
}

Test(handoff, unread_bytes_at_close_are_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	char buf[16];
	cr_assert_eq(w_write(fd, "REQ /\n", 6), 6);
	cr_assert_eq(t_read_n(s, buf, 6, 2000), 6);
	cr_assert_eq(write(s, "part1\npart2\n", 12), 12);
	cr_assert(t_wait_readable(fd, 2000));
	cr_assert_eq(w_read(fd, buf, 6), 6); /* the rest stays queued */
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_PENDING), 1);
	cr_assert_eq(STAT(REFUSED), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_fd_closed(fd);
}

Test(handoff, peer_fin_while_idle_is_stale_and_connects_for_real)
{
	int s = first_cycle(NULL);
	int hidden = only_hidden_fd();
	close(s);
	cr_assert(t_wait_readable(hidden, 2000), "FIN did not arrive");
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0, "a dead idle connection must not be handed out");
	cr_assert_geq(s2, 0, "a real connect reached the server");
	cr_assert_eq(STAT(STALE), 1);
	cr_assert_eq(STAT(HITS), 0);
	cr_assert_eq(STAT(MISSES), 2);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_fd_closed(hidden);
	exchange(fd, s2, "REQ /\n", "ok\n");
	cr_assert_eq(ps_conn_live(), 1);
}

Test(handoff, peer_closed_during_use_is_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "bye\n");
	close(s);
	char b[4];
	cr_assert_eq(w_read(fd, b, sizeof b), 0);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_PEER), 1);
}

Test(handoff, dup_makes_it_shared_and_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "ok\n");
	int d = w_dup(fd);
	cr_assert_geq(d, 0);
	cr_assert(ps_conn_taint(ps_fd_get(fd)) & PS_T_SHARED);
	cr_assert_null(ps_fd_get(d), "the duplicate is not tracked");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_SHARED), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	/* the duplicate still works: the socket was not taken away */
	cr_assert_eq(write(d, "more\n", 5), 5);
	char buf[8];
	cr_assert_eq(t_read_n(s, buf, 5, 2000), 5);
	close(d);
}

Test(handoff, shutdown_is_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "ok\n");
	cr_assert_eq(w_shutdown(fd, SHUT_WR), 0);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_STATE), 1);
}

Test(handoff, lingering_close_is_refused)
{
	int s;
	int fd = w_socket(SOCK_STREAM);
	struct linger lg = { 1, 0 };
	cr_assert_eq(w_setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	s = t_accept(lfd, 2000);
	exchange(fd, s, "REQ /\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_STATE), 1);
}

Test(handoff, idle_timeout_expires_with_fake_clock)
{
	ps_config.idle_timeout_ns = 1000000; /* 1 ms of fake time */
	int s = first_cycle(NULL);
	/* just inside the timeout: reused */
	t_fake_now += 999999;
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	exchange(fd, s, "REQ /2\n", "two\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	cr_assert_eq(ps_g.pool.lru->last_used_ns, t_fake_now, "checkin restarts the idle clock");
	int hidden = only_hidden_fd();
	/* exactly the timeout later: expired, not reused */
	t_fake_now += 1000000;
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	cr_assert_geq(s2, 0);
	cr_assert_eq(STAT(REAPED), 1);
	cr_assert_eq(STAT(HITS), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_fd_closed(hidden);
	assert_peer_sees_eof(s);
}

Test(handoff, reap_now_closes_expired_idle_connections)
{
	ps_config.idle_timeout_ns = 5 * SEC;
	int s = first_cycle(NULL);
	int hidden = only_hidden_fd();
	t_fake_now += 4 * SEC;
	ps_reap_now();
	cr_assert_eq(ps_g.pool.total, 1, "not yet expired");
	t_fake_now += SEC;
	ps_reap_now();
	cr_assert_eq(ps_g.pool.total, 0);
	cr_assert_eq(STAT(REAPED), 1);
	assert_fd_closed(hidden);
	cr_assert_null(ps_fd_get(hidden));
	assert_peer_sees_eof(s);
	cr_assert_eq(ps_conn_live(), 0);
}

Test(handoff, checkin_reaps_other_expired_connections)
{
	ps_config.idle_timeout_ns = 5 * SEC;
	int s1, s2;
	int a = open_conn(SOCK_STREAM, &s1);
	int b = open_conn(SOCK_STREAM, &s2);
	exchange(a, s1, "a\n", "A\n");
	exchange(b, s2, "b\n", "B\n");
	cr_assert_eq(w_close(a), 0);
	cr_assert_eq(last_pooled, 1);
	t_fake_now += 6 * SEC;
	cr_assert_eq(w_close(b), 0);
	cr_assert_eq(last_pooled, 1);
	cr_assert_eq(ps_g.pool.total, 1, "a's connection expired and was reaped at b's checkin");
	cr_assert_eq(STAT(REAPED), 1);
	assert_peer_sees_eof(s1);
}

Test(handoff, max_reuse_two_hands_out_a_connection_twice)
{
	ps_config.max_reuse = 2;
	int s = first_cycle(NULL);
	int hits = 0;
	for (int i = 0; i < 3; i++) {
		int s2 = -1;
		int fd = open_conn(SOCK_STREAM, &s2);
		hits += last_hit;
		if (last_hit)
			exchange(fd, s, "again\n", "ok\n");
		else
			exchange(fd, s2, "new\n", "ok\n");
		w_close(fd);
	}
	cr_assert_eq(hits, 2, "handed out %d times", hits);
	cr_assert_eq(STAT(HITS), 2);
	cr_assert_eq(STAT(MISSES), 2);
	cr_assert_eq(STAT(REFUSED_CAPS), 1, "the second reuse is not pooled again");
	assert_peer_sees_eof(s);
}

Test(handoff, max_lifetime_stops_reuse)
{
	ps_config.max_lifetime_ns = 10 * SEC;
	int s = first_cycle(NULL);
	t_fake_now += 5 * SEC;
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	exchange(fd, s, "x\n", "y\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	t_fake_now += 6 * SEC; /* 11 s after connect, 6 s idle */
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	cr_assert_eq(STAT(REAPED), 1);
	exchange(fd, s2, "x\n", "y\n");
	t_fake_now += 11 * SEC;
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0, "past its lifetime at close");
	cr_assert_eq(STAT(REFUSED_CAPS), 1);
}

Test(handoff, server_first_is_refused_and_destination_unsafe)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	char buf[32];
	cr_assert_eq(write(s, "220 greeting\n", 13), 13);
	cr_assert_eq(w_read(fd, buf, 13), 13);
	exchange(fd, s, "HELO x\n", "250 ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_SERVER_FIRST), 1);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, DST), 0);
	cr_assert(ps_unsafe_has(&k), "the destination is remembered as unsafe");
	/* the next connection there is never pooled */
	int s2;
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	cr_assert(ps_conn_taint(ps_fd_get(fd)) & PS_T_FILTER);
	exchange(fd, s2, "HELO y\n", "250 ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_FILTER), 1);
	cr_assert_eq(ps_g.pool.total, 0);
}

Test(handoff, tls_first_write_is_refused_and_destination_unsafe)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	static const char hello[] = "\x16\x03\x01\x00\x05hello";
	char buf[16];
	cr_assert_eq(w_write(fd, hello, sizeof hello - 1), (ssize_t)sizeof hello - 1);
	cr_assert_eq(t_read_n(s, buf, sizeof hello - 1, 2000), (ssize_t)sizeof hello - 1);
	cr_assert_eq(write(s, "\x16\x03\x03", 3), 3);
	cr_assert_eq(w_read(fd, buf, 3), 3);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_TLS), 1);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, DST), 0);
	cr_assert(ps_unsafe_has(&k));
}

Test(handoff, connection_auth_is_refused_but_destination_stays_safe)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "GET / HTTP/1.1\r\nAuthorization: NTLM abc\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_AUTH), 1);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, DST), 0);
	cr_assert_not(ps_unsafe_has(&k));
	first_cycle(NULL);
	cr_assert_eq(ps_g.pool.total, 1, "a plain request to the same place is pooled");
}

Test(handoff, port_filter_keeps_destination_out)
{
	ps_config.ports_all = false; /* empty port list: nothing allowed */
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	cr_assert(ps_conn_taint(ps_fd_get(fd)) & PS_T_FILTER);
	exchange(fd, s, "REQ /\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_FILTER), 1);
	/* allow exactly its port */
	uint16_t port = ntohs(dst.sin_port);
	ps_config.ports[port / 8] |= (uint8_t)(1u << (port % 8));
	first_cycle(NULL);
	cr_assert_eq(ps_g.pool.total, 1);
}

static int fcntl_emfile(int fd, int cmd, long arg)
{
	(void)fd;
	(void)cmd;
	(void)arg;
	errno = EMFILE;
	return -1;
}

Test(handoff, fcntl_emfile_at_checkin_falls_back_to_real_close)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "ok\n");
	ps_sys.fcntl = fcntl_emfile;
	/* close() makes the program's real close itself when it cannot pool */
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	ps_sys_reset();
	assert_fd_closed(fd);
	cr_assert_null(ps_fd_get(fd));
	cr_assert_eq(STAT(REFUSED_CAPS), 1);
	cr_assert_eq(STAT(REFUSED), 1);
	cr_assert_eq(STAT(CHECKINS), 0);
	cr_assert_eq(ps_g.pool.total, 0);
	cr_assert_eq(ps_conn_live(), 0);
	assert_peer_sees_eof(s);
	/* restored: pooling works again */
	first_cycle(NULL);
	cr_assert_eq(ps_g.pool.total, 1);
}

static int dup3_emfile(int o, int n, int f)
{
	(void)o;
	(void)n;
	(void)f;
	errno = EMFILE;
	return -1;
}

Test(handoff, dup3_failure_at_checkout_falls_back_to_real_connect)
{
	int s = first_cycle(NULL);
	int hidden = only_hidden_fd();
	ps_sys.dup3 = dup3_emfile;
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	ps_sys_reset();
	cr_assert_eq(last_hit, 0);
	cr_assert_geq(s2, 0, "a real connect happened");
	cr_assert_eq(STAT(HITS), 0);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_fd_closed(hidden);
	assert_peer_sees_eof(s);
	exchange(fd, s2, "REQ /\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
}

Test(handoff, flags_follow_the_new_user)
{
	int s = first_cycle(NULL);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, &s2);
	cr_assert_eq(last_hit, 1);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "O_NONBLOCK of the program's socket");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "FD_CLOEXEC of the program's socket");
	exchange(fd, s, "nb\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	cr_assert_not(fcntl(fd, F_GETFL) & O_NONBLOCK, "a blocking user gets a blocking socket");
	cr_assert_not(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	exchange(fd, s, "b\n", "ok\n");
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

Test(handoff, options_reset_and_carried)
{
	int s;
	int fd = w_socket(SOCK_STREAM);
	int one = 1;
	cr_assert_eq(w_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	s = t_accept(lfd, 2000);
	exchange(fd, s, "a\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	/* user B: no TCP_NODELAY, but SO_KEEPALIVE before connect */
	fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	cr_assert_eq(last_hit, 1);
	cr_assert_eq(getint(fd, IPPROTO_TCP, TCP_NODELAY), 0, "user A's option leaked to user B");
	cr_assert_neq(getint(fd, SOL_SOCKET, SO_KEEPALIVE), 0, "user B's option was lost");
	exchange(fd, s, "b\n", "ok\n");
}

/* The shim's own option calls, counted (everything else as by default). */
static int n_setsockopt, n_getsockopt;
static int counting_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	n_setsockopt++;
	return setsockopt(fd, level, name, val, len);
}
static int counting_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (!(level == SOL_SOCKET && name == 57)) /* SO_COOKIE: the proofs, counted elsewhere */
		n_getsockopt++;
	return getsockopt(fd, level, name, val, len);
}

/* Every user sets TCP_NODELAY the same way: once the pooled socket has it,
 * a checkout makes no option call, and the default is asked for once. */
Test(handoff, options_cost_syscalls_only_when_their_values_differ)
{
	int one = 1, s = -1;
	ps_sys.setsockopt = counting_setsockopt;
	ps_sys.getsockopt = counting_getsockopt;
	for (int i = 0; i < 5; i++) {
		int fd = w_socket(SOCK_STREAM);
		n_setsockopt = n_getsockopt = 0;
		cr_assert_eq(w_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
		cr_assert_eq(w_connect(fd, DST), 0);
		cr_assert_eq(last_hit, i > 0);
		if (i == 0)
			s = t_accept(lfd, 2000);
		else
			cr_assert_eq(n_setsockopt + n_getsockopt, 0,
				     "cycle %d: %d setsockopt, %d getsockopt by the shim", i, n_setsockopt,
				     n_getsockopt);
		cr_assert_eq(getint(fd, IPPROTO_TCP, TCP_NODELAY), 1);
		exchange(fd, s, "n\n", "ok\n");
		cr_assert_eq(w_close(fd), 0);
		cr_assert_eq(last_pooled, 1);
	}
	/* a user who wants the default again gets it with one call */
	int fd = w_socket(SOCK_STREAM);
	n_setsockopt = 0;
	cr_assert_eq(w_connect(fd, DST), 0);
	cr_assert_eq(last_hit, 1);
	cr_assert_eq(n_setsockopt, 1);
	cr_assert_eq(getint(fd, IPPROTO_TCP, TCP_NODELAY), 0);
}

Test(handoff, per_key_cap_evicts_the_oldest_idle_connection)
{
	unsigned cap = ps_g.pool.max_per_key;
	cr_assert_eq(cap, 4);
	int fds[5], srvs[5];
	for (int i = 0; i < 5; i++) {
		fds[i] = open_conn(SOCK_STREAM, &srvs[i]);
		cr_assert_eq(last_hit, 0);
	}
	for (int i = 0; i < 5; i++) {
		exchange(fds[i], srvs[i], "q\n", "r\n");
		t_fake_now += 1000;
		cr_assert_eq(w_close(fds[i]), 0);
		cr_assert_eq(last_pooled, 1);
	}
	cr_assert_eq(ps_g.pool.total, 4);
	cr_assert_eq(STAT(EVICTED), 1);
	cr_assert_eq(STAT(CHECKINS), 5);
	assert_peer_sees_eof(srvs[0]);
	/* the warmest (last closed) comes back first */
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	exchange(fd, srvs[4], "lifo\n", "ok\n");
}

Test(handoff, bound_local_address_is_its_own_key)
{
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	int s;
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_bind(fd, (struct sockaddr *)&local, sizeof local), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	s = t_accept(lfd, 2000);
	exchange(fd, s, "bound\n", "ok\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	/* an unbound socket must not get the bound connection */
	int s2 = -1;
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	exchange(fd, s2, "unbound\n", "ok\n");
	w_close(fd);
	/* a socket bound the same way does */
	fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_bind(fd, (struct sockaddr *)&local, sizeof local), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	cr_assert_eq(last_hit, 1);
	exchange(fd, s, "bound again\n", "ok\n");
}

Test(handoff, bound_port_is_never_pooled)
{
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof local;
	cr_assert_eq(bind(probe, (struct sockaddr *)&local, sizeof local), 0);
	cr_assert_eq(getsockname(probe, (struct sockaddr *)&local, &len), 0);
	close(probe); /* a port that was just free */
	int fd = w_socket(SOCK_STREAM);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	cr_assert_eq(w_bind(fd, (struct sockaddr *)&local, sizeof local), 0, "%s", strerror(errno));
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "x\n", "y\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_STATE), 1);
}

Test(handoff, program_fd_replaced_behind_the_shim_is_left_alone)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "ok\n");
	/* fclose of an fdopen stream, syscall(SYS_close), ...: the shim is not told */
	close(fd);
	int file = open("/dev/null", O_RDONLY);
	cr_assert_eq(file, fd, "the number is reused by a file");
	cr_assert_eq(w_close(fd), 0, "the program's close closes its file");
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(IDENTITY), 1);
	cr_assert_eq(STAT(CHECKINS), 0);
	assert_fd_closed(fd);
	cr_assert_eq(ps_conn_live(), 0);
}

Test(handoff, hidden_fd_replaced_behind_the_shim_is_left_alone)
{
	first_cycle(NULL);
	int hidden = only_hidden_fd();
	int file = open("/dev/null", O_RDONLY);
	cr_assert_eq(dup2(file, hidden), hidden); /* closefrom + reopen, dup2 onto it, ... */
	close(file);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	cr_assert_eq(STAT(IDENTITY), 1);
	cr_assert_geq(fcntl(hidden, F_GETFD), 0, "the shim closed a descriptor it no longer owns");
	cr_assert_null(ps_fd_get(hidden));
	cr_assert_eq(ps_g.pool.total, 0);
	exchange(fd, s2, "x\n", "y\n");
	close(hidden);
}

Test(handoff, close_of_a_hidden_fd_number_forgets_it)
{
	int s = first_cycle(NULL);
	int hidden = only_hidden_fd();
	/* a "close every fd" loop reaches the hidden number */
	cr_assert_eq(w_close(hidden), 0);
	cr_assert_eq(last_pooled, 0);
	assert_fd_closed(hidden);
	cr_assert_eq(ps_g.pool.total, 0);
	cr_assert_null(ps_fd_get(hidden));
	cr_assert_eq(ps_conn_live(), 0);
	assert_peer_sees_eof(s);
	int s2 = -1;
	open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
}

Test(handoff, io_in_flight_at_close_is_refused)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "REQ /\n", "ok\n");
	/* another thread is inside a read on fd */
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c);
	cr_assert_neq(ps_life_io_enter(c, fd), 0);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_STATE), 1);
	cr_assert_eq(ps_conn_live(), 1, "kept while a call is inside it");
	ps_life_io_leave(c);
	cr_assert_eq(ps_conn_live(), 0, "freed when the call leaves");
	cr_assert_eq(ps_g.pool.total, 0);
}

Test(handoff, unconnected_socket_close_is_passthrough)
{
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(ps_conn_live(), 1);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	assert_fd_closed(fd);
	cr_assert_eq(ps_conn_live(), 0);
	cr_assert_eq(STAT(REFUSED), 0);
}

Test(handoff, failed_connect_is_not_tracked_as_connected)
{
	struct sockaddr_in closed;
	int l2 = t_listen(&closed);
	close(l2); /* nothing listens there now */
	int fd = w_socket(SOCK_STREAM);
	errno = 0;
	cr_assert_eq(w_connect(fd, (struct sockaddr *)&closed, sizeof closed), -1);
	cr_assert_eq(errno, ECONNREFUSED);
	cr_assert_eq(ps_conn_state(ps_fd_get(fd)), PS_FRESH);
	cr_assert_eq(STAT(CONNECTS), 1);
	cr_assert_eq(STAT(MISSES), 0);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(ps_conn_live(), 0);
}

Test(handoff, fork_child_empties_pool_parent_keeps_it)
{
	int s1, s2;
	int a = open_conn(SOCK_STREAM, &s1);
	int b = open_conn(SOCK_STREAM, &s2);
	exchange(a, s1, "a\n", "A\n");
	exchange(b, s2, "b\n", "B\n");
	cr_assert_eq(w_close(a), 0);
	cr_assert_eq(last_pooled, 1);
	int hidden = only_hidden_fd();
	/* b is in use while forking */
	ps_fork_prepare();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		ps_fork_child();
		int bad = 0;
		if (ps_g.pool.total != 0)
			bad |= 1;
		if (ps_g.generation != 1)
			bad |= 2;
		if (!ps_fd_get(b) || !(ps_conn_taint(ps_fd_get(b)) & PS_T_SHARED))
			bad |= 4;
		if (fcntl(hidden, F_GETFD) != -1)
			bad |= 8; /* the child's copy of the idle connection is closed */
		_exit(bad);
	}
	ps_fork_parent();
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died: %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0, "child state wrong: bits %#x", WEXITSTATUS(status));
	cr_assert_eq(ps_g.generation, 0);
	/* the parent's pool is intact, and the child's close sent no FIN */
	cr_assert_eq(ps_g.pool.total, 1);
	int s3 = -1;
	int c = open_conn(SOCK_STREAM, &s3);
	cr_assert_eq(last_hit, 1);
	exchange(c, s1, "again\n", "ok\n");
	/* a connection in use at fork is shared with the child: never pooled */
	cr_assert(ps_conn_taint(ps_fd_get(b)) & PS_T_SHARED);
	exchange(b, s2, "still\n", "ok\n");
	cr_assert_eq(w_close(b), 0);
	cr_assert_eq(last_pooled, 0);
	cr_assert_eq(STAT(REFUSED_SHARED), 1);
}

/* ---- stale-reuse retry, epoll, descriptor pressure, close_range, raw fork ---- */

static int count_open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

Test(handoff, stale_reuse_first_write_retries_on_a_fresh_connection)
{
	int s1 = first_cycle(NULL);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t old_cookie = c->cookie;
	/* the server drops the connection between checkout and the first write */
	reset_peer(s1);
	wait_for_reset(fd);
	cr_assert_eq(w_write(fd, "REQ /r\n", 7), 7, "the retried write must succeed: %s", strerror(errno));
	cr_assert_eq(last_retried, 1);
	cr_assert_eq(STAT(STALE_RETRIES), 1);
	cr_assert_eq(ps_fd_get(fd), c, "the same record keeps the fd");
	cr_assert_neq(c->cookie, old_cookie, "the record follows the new socket");
	cr_assert(ps_probe_same(fd, c->cookie));
	cr_assert_not(c->reused);
	cr_assert_eq(c->reuse_count, 0);
	cr_assert_not(fcntl(fd, F_GETFL) & O_NONBLOCK, "a blocking program gets a blocking socket");
	cr_assert_not(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* the request went out on a new connection */
	s2 = t_accept(lfd, 2000);
	cr_assert_geq(s2, 0);
	char buf[8];
	cr_assert_eq(t_read_n(s2, buf, 7, 2000), 7);
	cr_assert_arr_eq(buf, "REQ /r\n", 7);
	cr_assert_eq(write(s2, "ok\n", 3), 3);
	cr_assert_eq(w_read(fd, buf, 3), 3);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1, "the replacement connection is poolable");
}

Test(handoff, stale_reuse_retry_fails_cleanly_when_the_server_is_gone)
{
	int s1 = first_cycle(NULL);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t cookie = c->cookie;
	close(lfd); /* the reconnect will be refused */
	reset_peer(s1);
	wait_for_reset(fd);
	int before = count_open_fds();
	errno = 0;
	cr_assert_eq(w_write(fd, "REQ /\n", 6), -1);
	cr_assert(errno == ECONNRESET || errno == EPIPE, "errno %s", strerror(errno));
	cr_assert_eq(last_retried, 0);
	cr_assert_eq(count_open_fds(), before, "the failed reconnect leaked a descriptor");
	cr_assert_eq(STAT(STALE_RETRIES), 0);
	cr_assert(ps_probe_same(fd, cookie), "fd untouched");
	cr_assert(ps_conn_taint(c) & PS_T_IO_ERROR);
	cr_assert_eq(c->inflight, 0);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0);
}

Test(handoff, later_write_failure_is_not_retried)
{
	int s1 = first_cycle(NULL);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	exchange(fd, s1, "one\n", "ok\n");
	reset_peer(s1);
	wait_for_reset(fd);
	errno = 0;
	cr_assert_eq(w_write(fd, "two\n", 4), -1);
	cr_assert_eq(last_retried, 0);
	cr_assert_eq(STAT(STALE_RETRIES), 0);
	no_pending_accept();
	cr_assert(ps_conn_taint(ps_fd_get(fd)) & PS_T_IO_ERROR);
}

Test(handoff, unsolicited_bytes_on_an_idle_connection_mark_the_destination_unsafe)
{
	int s1 = first_cycle(NULL);
	int hidden = only_hidden_fd();
	cr_assert_eq(write(s1, "late tail", 9), 9);
	cr_assert(t_wait_readable(hidden, 2000));
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0);
	cr_assert_eq(STAT(STALE), 1);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, DST), 0);
	cr_assert(ps_unsafe_has(&k));
	assert_fd_closed(hidden);
	exchange(fd, s2, "x\n", "y\n");
}

/* shim/fd.c epoll_ctl() */
static int w_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = epoll_ctl(epfd, op, fd, ev);
	struct ps_conn *c = ps_fd_get(fd);
	if (c)
		ps_track_epoll_ctl(c, epfd, op, ev, r);
	return r;
}

Test(handoff, epoll_registration_is_removed_before_the_connection_goes_idle)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int s;
	int fd = w_socket(SOCK_STREAM);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	cr_assert_eq(w_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	/* bytes arriving on the idle connection must not fire the program's epoll */
	cr_assert_eq(write(s, "z", 1), 1);
	cr_assert(t_wait_readable(only_hidden_fd(), 2000));
	struct epoll_event got;
	cr_assert_eq(epoll_wait(ep, &got, 1, 0), 0, "a stale registration fired for a pooled socket");
	close(ep);
}

Test(handoff, epoll_registration_is_carried_to_the_reused_connection)
{
	int s1 = first_cycle(NULL);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fd = w_socket(SOCK_STREAM);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xfeedu };
	cr_assert_eq(w_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	cr_assert_eq(last_hit, 1);
	cr_assert_eq(write(s1, "hi", 2), 2);
	struct epoll_event got;
	cr_assert_eq(epoll_wait(ep, &got, 1, 2000), 1, "the program's registration was lost by dup3");
	cr_assert_eq(got.data.u64, 0xfeedu);
	cr_assert(got.events & EPOLLIN);
	close(ep);
}

Test(handoff, fd_pressure_closes_the_least_recently_used_idle_connection)
{
	int sa, sb;
	int a = open_conn(SOCK_STREAM, &sa);
	int b = open_conn(SOCK_STREAM, &sb);
	exchange(a, sa, "a\n", "A\n");
	exchange(b, sb, "b\n", "B\n");
	cr_assert_eq(w_close(a), 0);
	cr_assert_eq(w_close(b), 0);
	cr_assert_eq(ps_g.pool.total, 2);
	cr_assert_eq(ps_fd_pressure(ENOENT), 0, "only EMFILE/ENFILE count");
	cr_assert_eq(ps_g.pool.total, 2);
	cr_assert_eq(ps_fd_pressure(EMFILE), 1);
	cr_assert_eq(ps_g.pool.total, 1);
	cr_assert_eq(STAT(EVICTED), 1);
	assert_peer_sees_eof(sa);
	cr_assert_eq(ps_fd_pressure(ENFILE), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	assert_peer_sees_eof(sb);
	cr_assert_eq(ps_fd_pressure(EMFILE), 0, "nothing left to give back");
	cr_assert_eq(ps_conn_live(), 0);
}

Test(handoff, close_range_over_hidden_fds_forgets_them_and_spares_new_files)
{
	int sa, sb;
	int a = open_conn(SOCK_STREAM, &sa);
	int b = open_conn(SOCK_STREAM, &sb);
	exchange(a, sa, "a\n", "A\n");
	exchange(b, sb, "b\n", "B\n");
	cr_assert_eq(w_close(a), 0);
	cr_assert_eq(w_close(b), 0);
	cr_assert_eq(ps_g.pool.total, 2);
	int h1 = ps_g.pool.lru->hidden, h2 = ps_g.pool.lru->lru_next->hidden;
	unsigned lo = (unsigned)ps_g.hidden_floor;
	/* shim/fd.c close_range(): forget, then the real call */
	ps_track_close_range(lo, ~0u, 0);
	cr_assert_eq(close_range(lo, ~0u, 0), 0);
	cr_assert_eq(ps_g.pool.total, 0);
	cr_assert_null(ps_fd_get(h1));
	cr_assert_null(ps_fd_get(h2));
	cr_assert_eq(ps_conn_live(), 0);
	/* the numbers are reused by files */
	int file = open("/dev/null", O_RDONLY);
	cr_assert_eq(dup2(file, h1), h1);
	cr_assert_eq(dup2(file, h2), h2);
	close(file);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 0, "a real connect");
	cr_assert_geq(fcntl(h1, F_GETFD), 0, "file at %d was closed", h1);
	cr_assert_geq(fcntl(h2, F_GETFD), 0, "file at %d was closed", h2);
	exchange(fd, s2, "x\n", "y\n");
	close(h1);
	close(h2);
}

Test(handoff, close_range_cloexec_marks_active_connections)
{
	int s;
	int fd = open_conn(SOCK_STREAM, &s);
	exchange(fd, s, "x\n", "y\n");
	ps_track_close_range((unsigned)fd, (unsigned)fd, CLOSE_RANGE_CLOEXEC);
	cr_assert_eq(close_range((unsigned)fd, (unsigned)fd, CLOSE_RANGE_CLOEXEC), 0);
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c, "CLOEXEC closes nothing: still tracked");
	cr_assert(c->cloexec);
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	/* the next blocking user without CLOEXEC gets its own flags back */
	int s2 = -1;
	fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	cr_assert_not(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

Test(handoff, fork_without_atfork_handlers_is_detected)
{
	cr_assert_not_null(ps_g.fork_page, "MADV_WIPEONFORK page missing");
	int s1 = first_cycle(NULL);
	int hidden = only_hidden_fd();
	pid_t pid = fork(); /* _Fork / raw clone: no atfork handler runs */
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int bad = 0;
		if (ps_g.pool.total != 1)
			bad |= 1; /* nothing has noticed yet */
		int fd = ps_socket(AF_INET, SOCK_STREAM, 0);
		/* the first checkout notices the wiped page and resets */
		if (!ps_fd_get(fd) || w_connect(fd, DST) != 0 || last_hit)
			bad |= 2;
		if (ps_g.pool.total != 0)
			bad |= 4;
		if (ps_g.generation != 1)
			bad |= 8;
		if (fcntl(hidden, F_GETFD) != -1)
			bad |= 16;
		_exit(bad);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died: %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0, "child state wrong: bits %#x", WEXITSTATUS(status));
	/* the parent is unaffected, and its connection still works */
	cr_assert_eq(ps_g.generation, 0);
	cr_assert_eq(ps_g.pool.total, 1);
	int s2 = -1;
	int fd = open_conn(SOCK_STREAM, &s2);
	cr_assert_eq(last_hit, 1);
	exchange(fd, s1, "after fork\n", "ok\n");
}
