/* park.c end to end (lib/park.h), without the shim: real loopback sockets
 * and the lib/ entries the shim's wrappers call.  Every syscall of a cycle,
 * the shim's own (ps_sys) and the program's (ps_libc), is counted here, so
 * the cost of a pool hit is a deterministic number, not a timing. */
#include "clock.h"
#include "config.h"
#include "events.h"
#include "fdtable.h"
#include "helpers.h"
#include "lifecycle.h"
#include "libc.h"
#include "park.h"
#include "ready.h"
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
#include <pthread.h>
#include <sys/select.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define SEC 1000000000ull
#define STAT(s) ps_stat_get(PS_ST_##s)
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static int lfd;                /* the test server's listener */
static struct sockaddr_in dst; /* its address */
#define DST ((struct sockaddr *)&dst), ((socklen_t)sizeof dst)

static void setup(void)
{
	lfd = t_pool_setup(&dst);
	t_fake_now = 1000 * SEC;
	ps_clock_set_source(t_fake_clock);
}

static void teardown(void)
{
	ps_sys_reset();
	ps_clock_set_source(NULL);
}

TestSuite(park, .init = setup, .fini = teardown, .timeout = 30);

/* ---- counting every syscall of a cycle ---- */

enum { N_COOKIE, N_GETSOCKOPT, N_SETSOCKOPT, N_PEEK, N_RECV, N_SEND, N_CLOSE, N_DUP3, N_FCNTL,
       N_SOCKET, N_CONNECT, N_EPOLL, N_PROG_SOCKET, N_PROG_CONNECT, N_PROG_CLOSE, N_PROG_SETSOCKOPT,
       N_PROG_IO, N_KINDS };
static int n[N_KINDS];
static const char *const kind[N_KINDS] = { "SO_COOKIE", "getsockopt", "setsockopt", "peek", "recv", "send",
					  "close", "dup3", "fcntl", "socket", "connect", "epoll_ctl",
					  "program socket", "program connect", "program close",
					  "program setsockopt", "program write/read" };

static int c_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	n[level == SOL_SOCKET && name == SO_COOKIE ? N_COOKIE : N_GETSOCKOPT]++;
	return getsockopt(fd, level, name, val, len);
}
static int c_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	n[N_SETSOCKOPT]++;
	return setsockopt(fd, level, name, val, len);
}
static ssize_t c_recv(int fd, void *buf, size_t len, int flags)
{
	n[flags & MSG_PEEK ? N_PEEK : N_RECV]++;
	return recv(fd, buf, len, flags);
}
static ssize_t c_send(int fd, const void *buf, size_t len, int flags)
{
	n[N_SEND]++;
	return send(fd, buf, len, flags);
}
static int c_close(int fd)
{
	n[N_CLOSE]++;
	return close(fd);
}
static int c_dup3(int o, int nw, int f)
{
	n[N_DUP3]++;
	return dup3(o, nw, f);
}
static int c_fcntl(int fd, int cmd, long arg)
{
	n[N_FCNTL]++;
	return fcntl(fd, cmd, arg);
}
static int c_socket(int d, int t, int p)
{
	n[N_SOCKET]++;
	return socket(d, t, p);
}
static int c_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	n[N_CONNECT]++;
	return connect(fd, sa, len);
}
static int c_epoll_ctl(int e, int op, int fd, struct epoll_event *ev)
{
	n[N_EPOLL]++;
	return epoll_ctl(e, op, fd, ev);
}
static int p_socket(int d, int t, int p)
{
	n[N_PROG_SOCKET]++;
	return socket(d, t, p);
}
static int p_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	n[N_PROG_CONNECT]++;
	return connect(fd, sa, len);
}
static int p_close(int fd)
{
	n[N_PROG_CLOSE]++;
	return close(fd);
}
static int p_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	n[N_PROG_SETSOCKOPT]++;
	return setsockopt(fd, level, name, val, len);
}

static void count_everything(void)
{
	ps_sys.getsockopt = c_getsockopt;
	ps_sys.setsockopt = c_setsockopt;
	ps_sys.recv = c_recv;
	ps_sys.send = c_send;
	ps_sys.close = c_close;
	ps_sys.dup3 = c_dup3;
	ps_sys.fcntl = c_fcntl;
	ps_sys.socket = c_socket;
	ps_sys.connect = c_connect;
	ps_sys.epoll_ctl = c_epoll_ctl;
	ps_libc.socket = p_socket;
	ps_libc.connect = p_connect;
	ps_libc.close = p_close;
	ps_libc.setsockopt = p_setsockopt;
	memset(n, 0, sizeof n);
}

static int total(void)
{
	int t = 0;
	for (int i = 0; i < N_KINDS; i++)
		t += n[i];
	return t;
}

static void print_counts(char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (int i = 0; i < N_KINDS && off < len; i++)
		if (n[i])
			off += (size_t)snprintf(buf + off, len - off, " %s=%d", kind[i], n[i]);
}

/* ---- the program's side ---- */

static void read_n(int fd, char *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t r = w_read(fd, buf + got, want - got);
		cr_assert_gt(r, 0, "read: %zd (%s)", r, r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

/* one request and its answer; the test's write()/read() count as the
 * program's I/O */
static void exchange(int fd, int s, const char *req, const char *rep)
{
	char buf[256];
	size_t qn = strlen(req), pn = strlen(rep);
	cr_assert_eq(w_write(fd, req, qn), (ssize_t)qn);
	n[N_PROG_IO]++;
	cr_assert_eq(t_read_n(s, buf, qn, 2000), (ssize_t)qn, "server did not get the request");
	cr_assert_arr_eq(buf, req, qn);
	cr_assert_eq(write(s, rep, pn), (ssize_t)pn);
	read_n(fd, buf, pn);
	n[N_PROG_IO]++;
	cr_assert_arr_eq(buf, rep, pn);
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

static void assert_ebadf(int r, const char *what)
{
	cr_assert_eq(r, -1, "%s on a parked number returned %d", what, r);
	cr_assert_eq(errno, EBADF, "%s on a parked number: %s, not EBADF", what, strerror(errno));
}

static void assert_peer_sees_eof(int s)
{
	char b;
	cr_assert(t_wait_readable(s, 2000), "no EOF on server socket %d", s);
	cr_assert_eq(recv(s, &b, 1, MSG_DONTWAIT), 0, "server socket %d is not at EOF", s);
}

/* A first cycle from nothing: a real connection, parked at close.  *fd_out
 * gets its number; returns the server's side. */
static int first_cycle(int *fd_out)
{
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, DST), 0, "connect: %s", strerror(errno));
	cr_assert_eq(last_hit, 0);
	int s = t_accept(lfd, 2000);
	cr_assert_geq(s, 0);
	exchange(fd, s, "REQ /1\n", "200 one\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	cr_assert_eq(ps_parked_count, 1);
	cr_assert_eq(ps_g.pool.total, 0u, "parked, not in the pool");
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c, "a parked number stays in the fd table");
	cr_assert_eq(ps_conn_state(c), PS_PARKED);
	if (fd_out)
		*fd_out = fd;
	return s;
}

Test(park, a_hit_costs_three_syscalls_and_no_descriptor_moves)
{
	int fd0;
	int s = first_cycle(&fd0);
	int one = 1;
	for (int i = 0; i < 5; i++) {
		count_everything();
		int fd = w_socket(SOCK_STREAM);
		cr_assert_eq(fd, fd0, "socket() gives the parked number back");
		cr_assert_eq(w_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
		cr_assert_eq(w_connect(fd, DST), 0);
		cr_assert_eq(last_hit, 1, "cycle %d", i);
		exchange(fd, s, "REQ /n\n", "200 n\n");
		cr_assert_eq(w_close(fd), 0);
		cr_assert_eq(last_pooled, 1);
		char counts[512];
		print_counts(counts, sizeof counts);
		/* identity at close and at socket(), health at connect: the
		 * program's socket, connect and close were three syscalls */
		cr_assert_eq(n[N_COOKIE], 2, "cycle %d:%s", i, counts);
		cr_assert_eq(n[N_PEEK], 1, "cycle %d:%s", i, counts);
		cr_assert_eq(n[N_PROG_IO], 2, "cycle %d:%s", i, counts);
		/* from the second cycle on, TCP_NODELAY is set on this very socket
		 * already: setting it to the same value again costs nothing */
		if (i > 0)
			cr_assert_eq(total(), 5, "cycle %d: a pooled cycle made%s", i, counts);
		else
			cr_assert_eq(n[N_PROG_SETSOCKOPT], 1, "cycle 0:%s", counts);
		cr_assert_eq(getint(fd, IPPROTO_TCP, TCP_NODELAY), 1);
	}
	cr_assert_eq(STAT(HITS), 5);
	cr_assert_eq(STAT(MISSES), 1);
	cr_assert_eq(t_accept(lfd, 0), -1, "the server saw a second connection");
}

Test(park, without_parking_a_hit_moves_descriptors)
{
	/* the same loop on the pool's own path: the figure the fast path
	 * replaced (hidden copy, dup3, two closes, proofs on both sides) */
	ps_config.park = false;
	int s = -1;
	for (int i = 0; i < 3; i++) {
		count_everything();
		int fd = w_socket(SOCK_STREAM);
		cr_assert_eq(w_connect(fd, DST), 0);
		if (i == 0)
			s = t_accept(lfd, 2000);
		exchange(fd, s, "q\n", "r\n");
		cr_assert_eq(w_close(fd), 0);
		if (i > 0) {
			char counts[512];
			print_counts(counts, sizeof counts);
			cr_assert_gt(total() - n[N_PROG_IO], 3, "cycle %d:%s", i, counts);
		}
	}
}

Test(park, a_second_close_and_every_call_on_a_parked_number_fail_with_ebadf)
{
	int fd;
	first_cycle(&fd);
	char b[4];
	int v;
	socklen_t len = sizeof v;
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	errno = 0;
	assert_ebadf(w_close(fd), "close");
	assert_ebadf((int)w_write(fd, "x", 1), "write");
	struct iovec iov = { b, sizeof b };
	struct ps_call k = { .fn = call_read, .fd = fd, .iov = &iov, .iovcnt = 1, .want = sizeof b };
	assert_ebadf((int)ps_recv(&k), "read");
	assert_ebadf(ps_getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len), "getsockopt");
	assert_ebadf(ps_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v), "setsockopt");
	assert_ebadf(ps_fcntl(fd, F_GETFL, 0, 0), "fcntl");
	assert_ebadf(ps_dup(fd), "dup");
	assert_ebadf(ps_dup2(fd, 100), "dup2 from it");
	assert_ebadf(ps_shutdown(fd, SHUT_RDWR), "shutdown");
	assert_ebadf(ps_connect(fd, DST), "connect");
	assert_ebadf(ps_bind(fd, DST), "bind");
	assert_ebadf(ps_listen(fd, 1), "listen");
	assert_ebadf(ps_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
	assert_ebadf(ps_accept4(fd, NULL, NULL, 0, 0), "accept");
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	assert_ebadf(ps_getsockname(fd, (struct sockaddr *)&ss, &sl), "getsockname");
	assert_ebadf(ps_getpeername(fd, (struct sockaddr *)&ss, &sl), "getpeername");
	struct stat st;
	assert_ebadf(ps_fstat(fd, &st, 0), "fstat");
	cr_assert_null(ps_fdopen(fd, "r"));
	cr_assert_eq(errno, EBADF);
	cr_assert_eq(ps_conn_state(ps_fd_get(fd)), PS_PARKED, "nothing of this disturbed it");
	cr_assert_eq(fcntl(100, F_GETFD), -1, "dup2 made nothing");
	close(ep);
}

Test(park, dup2_onto_a_parked_number_replaces_it)
{
	int fd;
	int s = first_cycle(&fd);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(ps_dup2(null, fd), fd);
	cr_assert_null(ps_fd_get(fd), "the number is the program's file now");
	cr_assert_eq(ps_parked_count, 0);
	assert_peer_sees_eof(s); /* the connection went with the number */
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISCHR(st.st_mode), "fd %d is not /dev/null", fd);
	cr_assert_eq(ps_close(fd), 0);
	close(null);
}

Test(park, close_range_over_a_parked_number_closes_it)
{
	int fd;
	int s = first_cycle(&fd);
	cr_assert_eq(ps_close_range((unsigned)fd, (unsigned)fd, 0), 0);
	cr_assert_null(ps_fd_get(fd));
	cr_assert_eq(ps_parked_count, 0);
	assert_peer_sees_eof(s);
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
}

Test(park, numbers_0_to_2_are_never_parked)
{
	int keep = dup(0);
	close(0);
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(fd, 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1, "pooled the slow way");
	cr_assert_eq(ps_parked_count, 0);
	cr_assert_eq(ps_g.pool.total, 1u);
	cr_assert_eq(fcntl(0, F_GETFD), -1, "descriptor 0 is free again");
	dup2(keep, 0);
	close(keep);
}

Test(park, epoll_registrations_are_removed_at_park)
{
	int fd = w_socket(SOCK_STREAM);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd }, out;
	cr_assert_eq(ps_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(ps_parked_count, 1);
	close(s); /* the peer's FIN: a closed descriptor would never report it */
	usleep(20000);
	cr_assert_eq(epoll_wait(ep, &out, 1, 50), 0, "the parked connection fired the program's epoll set");
	close(ep);
}

Test(park, another_kind_of_socket_does_not_take_it)
{
	int fd;
	first_cycle(&fd);
	int u = ps_socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_neq(u, fd);
	int six = ps_socket(AF_INET6, SOCK_STREAM, 0);
	cr_assert_neq(six, fd);
	cr_assert_eq(ps_parked_count, 1, "still parked for a socket of its own kind");
	ps_close(u);
	ps_close(six);
	cr_assert_eq(w_socket(SOCK_STREAM), fd);
}

Test(park, another_destination_settles_it_into_the_pool)
{
	int fd;
	int s = first_cycle(&fd);
	struct sockaddr_in dst2;
	int lfd2 = t_listen(&dst2);
	count_everything();
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(warm, fd);
	cr_assert_eq(w_connect(warm, (struct sockaddr *)&dst2, sizeof dst2), 0);
	cr_assert_eq(last_hit, 0);
	cr_assert_eq(STAT(SETTLED), 1);
	int s2 = t_accept(lfd2, 2000);
	cr_assert_geq(s2, 0, "the second server got a real connection on the same number");
	exchange(warm, s2, "two\n", "2\n");
	/* the first connection waits in the pool, on a hidden copy */
	cr_assert_eq(ps_g.pool.total, 1u);
	cr_assert_eq(w_close(warm), 0);
	int again = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(again, DST), 0);
	cr_assert_eq(last_hit, 1, "the first destination's connection comes back from the pool");
	exchange(again, s, "one\n", "1\n");
	close(lfd2);
}

Test(park, a_warm_socket_has_no_peer_and_no_address_yet)
{
	int fd;
	first_cycle(&fd);
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(warm, fd);
	struct sockaddr_in got;
	socklen_t len = sizeof got;
	cr_assert_eq(ps_getpeername(warm, (struct sockaddr *)&got, &len), -1, "a fresh socket has no peer");
	cr_assert_eq(errno, ENOTCONN);
	len = sizeof got;
	cr_assert_eq(ps_getsockname(warm, (struct sockaddr *)&got, &len), 0);
	cr_assert_eq(got.sin_port, 0, "a fresh socket has no local port");
	cr_assert_eq(STAT(SETTLED), 1);
	struct stat st;
	cr_assert_eq(ps_fstat(warm, &st, 0), 0);
	cr_assert(S_ISSOCK(st.st_mode));
}

Test(park, bind_on_a_warm_socket_settles_it)
{
	int fd;
	first_cycle(&fd);
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(warm, fd);
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(w_bind(warm, (struct sockaddr *)&local, sizeof local), 0, "bind: %s", strerror(errno));
	struct sockaddr_in got;
	socklen_t len = sizeof got;
	cr_assert_eq(getpeername(warm, (struct sockaddr *)&got, &len), -1, "a fresh socket has no peer");
	cr_assert_eq(errno, ENOTCONN);
	cr_assert_eq(STAT(SETTLED), 1);
	cr_assert_eq(ps_g.pool.total, 1u);
}

Test(park, a_warm_socket_shows_defaults_not_the_last_users_options)
{
	int one = 1;
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	cr_assert_eq(w_close(fd), 0);
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(warm, fd);
	int v = -1;
	socklen_t len = sizeof v;
	cr_assert_eq(ps_getsockopt(warm, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
	cr_assert_eq(v, 0, "the program sees its fresh socket's default");
	count_everything();
	cr_assert_eq(w_connect(warm, DST), 0);
	cr_assert_eq(last_hit, 1);
	cr_assert_eq(n[N_SETSOCKOPT], 1, "the last user's SO_KEEPALIVE is reset, with one call");
	cr_assert_eq(getint(warm, SOL_SOCKET, SO_KEEPALIVE), 0);
	exchange(warm, s, "q\n", "r\n");
}

Test(park, a_warm_socket_closed_before_connect_parks_again)
{
	int fd;
	int s = first_cycle(&fd);
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(w_close(warm), 0);
	cr_assert_eq(ps_parked_count, 1);
	assert_ebadf(w_close(warm), "second close");
	int again = w_socket(SOCK_STREAM);
	cr_assert_eq(again, fd);
	cr_assert_eq(w_connect(again, DST), 0);
	cr_assert_eq(last_hit, 1);
	exchange(again, s, "q\n", "r\n");
}

Test(park, an_expired_parked_connection_is_closed_at_socket)
{
	int fd;
	int s = first_cycle(&fd);
	t_fake_now += ps_config.idle_timeout_ns;
	int fresh = w_socket(SOCK_STREAM);
	cr_assert_eq(fresh, fd, "the number was freed, and socket() got it");
	cr_assert_eq(ps_conn_state(ps_fd_get(fresh)), PS_FRESH);
	assert_peer_sees_eof(s);
	cr_assert_eq(STAT(REAPED), 1);
	cr_assert_eq(ps_parked_count, 0);
}

Test(park, the_reaper_closes_expired_parked_connections)
{
	int fd;
	int s = first_cycle(&fd);
	uint64_t next = ps_park_reap(t_fake_now);
	cr_assert_eq(next, t_fake_now + ps_config.idle_timeout_ns, "it wakes when this one expires");
	cr_assert_eq(ps_parked_count, 1);
	cr_assert_eq(ps_park_reap(t_fake_now + ps_config.idle_timeout_ns), UINT64_MAX);
	cr_assert_eq(ps_parked_count, 0);
	cr_assert_null(ps_fd_get(fd));
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
	assert_peer_sees_eof(s);
}

Test(park, descriptor_pressure_closes_a_parked_connection)
{
	int fd;
	first_cycle(&fd);
	cr_assert(ps_fd_pressure(EMFILE));
	cr_assert_eq(ps_parked_count, 0);
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
	cr_assert_eq(STAT(EVICTED), 1);
}

Test(park, a_number_closed_behind_the_shims_back_is_left_to_its_new_owner)
{
	int fd;
	first_cycle(&fd);
	close(fd); /* a raw close: the shim does not see it */
	int file = open("/dev/null", O_RDONLY | O_CLOEXEC); /* nor this open */
	cr_assert_eq(file, fd);
	int sock = w_socket(SOCK_STREAM);
	cr_assert_neq(sock, fd, "the file is not handed out as a socket");
	cr_assert_eq(STAT(IDENTITY), 1);
	cr_assert_eq(fcntl(file, F_GETFD), FD_CLOEXEC, "and it was not closed");
	cr_assert_eq(ps_parked_count, 0);
	close(file);
}

Test(park, a_file_on_the_number_at_close_is_really_closed)
{
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	close(fd); /* raw */
	int file = open("/dev/null", O_RDONLY);
	cr_assert_eq(file, fd);
	cr_assert_eq(w_close(file), 0);
	cr_assert_eq(ps_parked_count, 0, "the identity check at close keeps a file out");
	cr_assert_eq(fcntl(file, F_GETFD), -1, "the program's close of its file did not close it");
}

Test(park, exec_wrappers_set_close_on_exec_and_socket_undoes_it)
{
	int fd;
	int s = first_cycle(&fd);
	cr_assert_eq(fcntl(fd, F_GETFD), 0, "no syscall at park: the flag is the program's");
	ps_park_before_exec();
	cr_assert_eq(fcntl(fd, F_GETFD), FD_CLOEXEC, "a parked number must not reach a new program");
	int warm = w_socket(SOCK_STREAM);
	cr_assert_eq(warm, fd);
	cr_assert_eq(fcntl(warm, F_GETFD), 0, "the program asked for no SOCK_CLOEXEC");
	cr_assert_eq(w_connect(warm, DST), 0);
	exchange(warm, s, "q\n", "r\n");
	cr_assert_eq(w_close(warm), 0);
	int ce = ps_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_eq(ce, fd);
	cr_assert_eq(fcntl(ce, F_GETFD), FD_CLOEXEC);
	cr_assert(fcntl(ce, F_GETFL) & O_NONBLOCK);
}

Test(park, a_forked_child_closes_its_copy)
{
	int fd;
	first_cycle(&fd);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		ps_fork_child();
		_exit(fcntl(fd, F_GETFD) == -1 && errno == EBADF && ps_parked_count == 0 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child kept the parked number");
	cr_assert_eq(ps_conn_state(ps_fd_get(fd)), PS_PARKED, "the parent's stays parked, untainted");
	cr_assert_eq(ps_conn_taint(ps_fd_get(fd)), 0u);
}

/* One thread uses two connections to the test server at once, then closes
 * both, a first: their numbers in *a and *b, the server's sides in *sa, *sb. */
static void two_at_once(int *a, int *b, int *sa, int *sb)
{
	*a = w_socket(SOCK_STREAM);
	*b = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(*a, DST), 0);
	*sa = t_accept(lfd, 2000);
	cr_assert_eq(w_connect(*b, DST), 0);
	*sb = t_accept(lfd, 2000);
	exchange(*a, *sa, "a\n", "1\n");
	exchange(*b, *sb, "b\n", "2\n");
	cr_assert_eq(w_close(*a), 0);
	cr_assert_eq(w_close(*b), 0);
}

Test(park, a_second_parked_connection_of_a_thread_moves_the_first_to_the_pool)
{
	int a, b, sa, sb;
	two_at_once(&a, &b, &sa, &sb);
	cr_assert_eq(ps_parked_count, 1);
	cr_assert_eq(ps_g.pool.total, 1u);
	cr_assert_eq(fcntl(a, F_GETFD), -1, "the first one's number is free again");
	/* both come back: the parked one first, then the pool's */
	int x = w_socket(SOCK_STREAM), y = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(x, DST), 0);
	cr_assert_eq(last_hit, 1);
	cr_assert_eq(w_connect(y, DST), 0);
	cr_assert_eq(last_hit, 1);
	exchange(x, sb, "x\n", "3\n");
	exchange(y, sa, "y\n", "4\n");
}

Test(park, parking_off_keeps_every_number_free)
{
	ps_config.park = false;
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, DST), 0);
	int s = t_accept(lfd, 2000);
	exchange(fd, s, "q\n", "r\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(ps_parked_count, 0);
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
}

Test(park, poll_reports_a_parked_number_invalid_and_select_fails_with_ebadf)
{
	int fd;
	int s = first_cycle(&fd);
	cr_assert_eq(write(s, "x", 1), 1); /* readable, were it open */
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = pfd[0], .events = POLLIN } };
	cr_assert_eq(ps_poll(p, 2, 5000), 1, "poll waited, or saw the parked socket");
	cr_assert_eq(p[0].fd, fd, "the program's set is as it was");
	cr_assert_eq(p[0].revents, POLLNVAL);
	cr_assert_eq(p[1].revents, 0);
	struct timespec zero = { 0, 0 };
	p[0].revents = 0;
	cr_assert_eq(ps_ppoll(p, 1, &zero, NULL), 1);
	cr_assert_eq(p[0].revents, POLLNVAL);
	fd_set r;
	FD_ZERO(&r);
	FD_SET(fd, &r);
	struct timeval tv = { 5, 0 };
	errno = 0;
	assert_ebadf(ps_select(fd + 1, &r, NULL, NULL, &tv), "select");
	close(pfd[0]);
	close(pfd[1]);
}

static struct sockaddr_in thread_dst;
static int thread_server = -1;

static void *one_cycle_and_exit(void *arg)
{
	(void)arg;
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, (struct sockaddr *)&thread_dst, sizeof thread_dst), 0);
	thread_server = t_accept(lfd, 2000);
	exchange(fd, thread_server, "t\n", "1\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(ps_parked_count, 1, "parked by its thread");
	return NULL;
}

Test(park, a_thread_that_exits_leaves_its_parked_connection_to_the_pool)
{
	thread_dst = dst;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, one_cycle_and_exit, NULL), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(ps_parked_count, 0);
	cr_assert_eq(ps_g.pool.total, 1u, "the exiting thread's connection waits in the pool");
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, DST), 0);
	cr_assert_eq(last_hit, 1, "another thread reuses it");
	exchange(fd, thread_server, "m\n", "2\n");
}

Test(park, the_per_destination_cap_counts_the_threads_parked_connection)
{
	ps_g.pool.max_per_key = 1;
	int a, b, sa, sb;
	two_at_once(&a, &b, &sa, &sb);
	cr_assert_eq(ps_parked_count, 1);
	cr_assert_eq(ps_g.pool.total, 0u, "one idle connection per destination: the parked one");
	assert_peer_sees_eof(sa);
	cr_assert_eq(STAT(EVICTED), 1);
}

Test(park, a_thread_that_alternates_destinations_is_served_by_the_pool)
{
	struct sockaddr_in dst2;
	int lfd2 = t_listen(&dst2);
	int srv[2] = { -1, -1 };
	for (int i = 0; i < 20; i++) {
		int which = i % 2;
		int fd = w_socket(SOCK_STREAM);
		cr_assert_eq(w_connect(fd, which ? (struct sockaddr *)&dst2 : (struct sockaddr *)&dst,
				       sizeof dst), 0);
		if (!last_hit) {
			cr_assert_lt(i, 2, "cycle %d made a new connection", i);
			srv[which] = t_accept(which ? lfd2 : lfd, 2000);
		}
		exchange(fd, srv[which], "q\n", "r\n");
		cr_assert_eq(w_close(fd), 0);
	}
	cr_assert_eq(STAT(HITS), 18, "every cycle after the first two is a hit");
	cr_assert_leq(STAT(SETTLED), 2, "settling stopped after two mismatches");
	close(lfd2);
}
