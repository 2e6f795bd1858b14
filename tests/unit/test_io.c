/* io.c, resend.c and ready.c end to end: the stale-reuse and split-write
 * paths on real loopback sockets, the test playing the server, and lib/
 * driven through the shim's entry points exactly as its wrappers call them
 * (steps.h).  Real clock; every wait is bounded (poll timeouts, SO_RCVTIMEO
 * and SO_SNDTIMEO on the program's sockets, timed joins). */
#include "config.h"
#include "events.h"
#include "fdtable.h"
#include "helpers.h"
#include "io.h"
#include "park.h"
#include "libc.h"
#include "probe.h"
#include "ready.h"
#include "state.h"
#include "stats.h"
#include "steps.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

static int lfd;                /* the test server's listener */
static struct sockaddr_in dst; /* its address */
#define DST ((struct sockaddr *)&dst), ((socklen_t)sizeof dst)
#define STAT(s) ps_stat_get(PS_ST_##s)

static void setup(void) { lfd = t_pool_setup(&dst); }

static void teardown(void) { ps_sys_reset(); }

TestSuite(io, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* socket + SO_RCVTIMEO/SO_SNDTIMEO (3 s: no blocking call can hang, and a
 * replacement connection carries them) + connect; on a miss *srv gets the
 * accepted server side */
static int open_conn(int *srv)
{
	int fd = w_socket(SOCK_STREAM);
	struct timeval tv = { 3, 0 };
	cr_assert_eq(w_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
	cr_assert_eq(w_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
	cr_assert_eq(w_connect(fd, DST), 0, "connect: %s", strerror(errno));
	if (!last_hit) {
		*srv = t_accept(lfd, 2000);
		cr_assert_geq(*srv, 0, "accept: %s", strerror(errno));
	}
	return fd;
}

static void read_reply(int fd, const char *rep)
{
	char buf[256];
	size_t n = strlen(rep), got = 0;
	while (got < n) {
		ssize_t r = w_read(fd, buf + got, n - got);
		cr_assert_gt(r, 0, "read returned %zd (%s)", r, r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
	cr_assert_arr_eq(buf, rep, n);
}

static void exchange(int fd, int s, const char *req, const char *rep)
{
	char buf[256];
	size_t qn = strlen(req);
	cr_assert_eq(w_write(fd, req, qn), (ssize_t)qn);
	cr_assert_eq(t_read_n(s, buf, qn, 2000), (ssize_t)qn, "server did not get the request");
	cr_assert_arr_eq(buf, req, qn);
	cr_assert_eq(write(s, rep, strlen(rep)), (ssize_t)strlen(rep));
	read_reply(fd, rep);
}

/* One pooled request cycle from an empty pool: returns the server side of
 * the pooled connection. */
static int first_cycle(void)
{
	int s = -1;
	int fd = open_conn(&s);
	cr_assert_eq(last_hit, 0);
	exchange(fd, s, "REQ /1\n", "200 one\n");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1);
	cr_assert_eq(ps_g.pool.total + (unsigned)ps_parked_count, 1u, "kept: parked or in the pool");
	return s;
}

/* A checkout from the pool (asserted a hit): reused, nothing done on it yet. */
static int reused_conn(void)
{
	int none = -1;
	int fd = open_conn(&none);
	cr_assert_eq(last_hit, 1, "the connect must come from the pool");
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c);
	cr_assert(c->reused);
	cr_assert_eq(ps_conn_state(c), PS_ACTIVE);
	return fd;
}

static void no_pending_accept(int timeout_ms)
{
	cr_assert_eq(t_accept(lfd, timeout_ms), -1, "the server saw a new connection");
}

static void no_more_bytes(int s)
{
	char b;
	cr_assert_eq(t_read_n(s, &b, 1, 100), 0, "the server received more than the request");
}

static uint64_t bytes_acked(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return (uint64_t)-1;
	return ti.tcpi_bytes_acked;
}

/* ---- threads: a server that accepts one connection, a blocked reader ---- */

struct server {
	size_t want;       /* bytes of request to read */
	const char *reply; /* sent once the request is in */
	int s;             /* the accepted connection, or -1 */
	ssize_t got;
	char buf[256];
	pthread_t th;
};

static void *serve(void *arg)
{
	struct server *sv = arg;
	sv->s = t_accept(lfd, 3000);
	if (sv->s < 0)
		return NULL;
	sv->got = t_read_n(sv->s, sv->buf, sv->want, 3000);
	if (sv->got == (ssize_t)sv->want && sv->reply)
		(void)!write(sv->s, sv->reply, strlen(sv->reply));
	return NULL;
}

static void server_start(struct server *sv, size_t want, const char *reply)
{
	memset(sv, 0, sizeof *sv);
	sv->want = want;
	sv->reply = reply;
	sv->s = -1;
	cr_assert_eq(pthread_create(&sv->th, NULL, serve, sv), 0);
}

static void join_within(pthread_t th, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	cr_assert_eq(pthread_timedjoin_np(th, NULL, &ts), 0, "the thread did not finish");
}

struct reader {
	int fd;
	ssize_t r;
	int err;
	char buf[64];
	pthread_t th;
};

/* the program's read() in another thread, blocking */
static void *read_blocked(void *arg)
{
	struct reader *rd = arg;
	struct iovec v = { rd->buf, sizeof rd->buf };
	struct ps_call k = { .fn = call_read, .fd = rd->fd, .iov = &v, .iovcnt = 1, .want = sizeof rd->buf };
	rd->r = ps_recv(&k);
	rd->err = errno;
	return NULL;
}

/* starts the reader and returns once it is blocked inside ps_recv */
static void reader_start(struct reader *rd, int fd)
{
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c);
	memset(rd, 0, sizeof *rd);
	rd->fd = fd;
	rd->r = -2;
	cr_assert_eq(pthread_create(&rd->th, NULL, read_blocked, rd), 0);
	for (int i = 0; i < 2000 && __atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) == 0; i++)
		usleep(1000);
	cr_assert_eq(__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST), 1, "the reader did not enter");
	usleep(50000); /* into the kernel's wait */
	cr_assert_eq(rd->r, -2, "the read should be blocked");
}

/* ---- (a) the server closed an idle connection before the first write ---- */

Test(io, stale_reuse_closed_before_the_first_write_is_resent)
{
	int s1 = first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t old_cookie = c->cookie;
	/* the server's idle timeout fires between checkout and first write */
	close(s1);
	cr_assert(t_wait_readable(fd, 2000), "FIN did not arrive");
	t_sigpipe_hold();
	const char req[] = "GET /a HTTP/1.1\r\n\r\n", rep[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	struct server sv;
	server_start(&sv, sizeof req - 1, rep);
	/* the write goes out (the kernel takes it on a half-closed
	 * connection); the read then ends without a reply byte */
	cr_assert_eq(w_write(fd, req, sizeof req - 1), (ssize_t)sizeof req - 1, "%s", strerror(errno));
	uint64_t acked = bytes_acked(fd);
	char buf[64];
	ssize_t r = w_read(fd, buf, sizeof buf);
	int err = errno;
	join_within(sv.th, 5000);
	cr_assert_eq(r, (ssize_t)sizeof rep - 1,
		     "the read must return the reply from a new connection: got %zd (%s); "
		     "retries %llu; tcpi_bytes_acked %llu, sent before this use %llu, kept %u",
		     r, r < 0 ? strerror(err) : "EOF", (unsigned long long)STAT(STALE_RETRIES),
		     (unsigned long long)acked, (unsigned long long)c->sent_before_use, c->replay_len);
	cr_assert_arr_eq(buf, rep, sizeof rep - 1);
	cr_assert_eq(last_retried, 1);
	cr_assert_eq(STAT(STALE_RETRIES), 1);
	cr_assert_geq(sv.s, 0, "the listener accepted a second connection");
	cr_assert_eq(sv.got, (ssize_t)sizeof req - 1);
	cr_assert_arr_eq(sv.buf, req, sizeof req - 1, "the request was resent whole");
	no_more_bytes(sv.s);
	no_pending_accept(0);
	cr_assert_neq(c->cookie, old_cookie);
	cr_assert(ps_probe_same(fd, c->cookie), "the fd holds the new connection");
	cr_assert_not(t_sigpipe_taken(), "a stale reuse raised SIGPIPE");
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 1, "the replacement connection is poolable");
	close(sv.s);
}

/* ---- (b) a request in two writes; the server resets after the first ---- */

Test(io, split_request_reset_after_the_first_piece_is_resent_whole)
{
	int s1 = first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	const char p1[] = "GET /b", p2[] = " HTTP/1.1\r\n\r\n", rep[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	cr_assert_eq(w_write(fd, p1, sizeof p1 - 1), (ssize_t)sizeof p1 - 1);
	/* the first piece arrives; the server closes without reading it: RST
	 * (before its delayed ACK of the piece would have gone out) */
	cr_assert(t_wait_readable(s1, 2000), "the first piece did not arrive");
	close(s1);
	wait_for_reset(fd);
	uint64_t acked = bytes_acked(fd);
	t_sigpipe_hold();
	errno = 0;
	ssize_t r = w_write(fd, p2, sizeof p2 - 1);
	int err = errno;
	cr_assert_eq(r, (ssize_t)sizeof p2 - 1,
		     "the second write must succeed on a new connection: got %zd (%s); "
		     "tcpi_bytes_acked %llu, sent before this use %llu, kept %u",
		     r, r < 0 ? strerror(err) : "", (unsigned long long)acked,
		     (unsigned long long)c->sent_before_use, c->replay_len);
	cr_assert_eq(last_retried, 1);
	cr_assert_eq(STAT(STALE_RETRIES), 1);
	cr_assert_not(t_sigpipe_taken(), "a stale reuse raised SIGPIPE");
	int s2 = t_accept(lfd, 2000);
	cr_assert_geq(s2, 0, "no new connection");
	char buf[64];
	size_t n = sizeof p1 - 1 + sizeof p2 - 1;
	cr_assert_eq(t_read_n(s2, buf, n, 2000), (ssize_t)n);
	cr_assert_arr_eq(buf, "GET /b HTTP/1.1\r\n\r\n", n, "both pieces, once, in order");
	no_more_bytes(s2);
	cr_assert_eq(write(s2, rep, sizeof rep - 1), (ssize_t)sizeof rep - 1);
	read_reply(fd, rep);
	no_pending_accept(0);
	close(s2);
}

/* ---- (c) the program's own shutdown is not a stale reuse ---- */

Test(io, shutdown_before_the_read_is_not_resent)
{
	int s1 = first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t cookie = c->cookie;
	const char req[] = "REQ /c\n";
	char buf[16];
	cr_assert_eq(w_write(fd, req, sizeof req - 1), (ssize_t)sizeof req - 1);
	cr_assert_eq(t_read_n(s1, buf, sizeof req - 1, 2000), (ssize_t)sizeof req - 1);
	cr_assert_eq(w_shutdown(fd, SHUT_RDWR), 0);
	cr_assert_eq(w_read(fd, buf, sizeof buf), 0, "the program's own EOF");
	cr_assert_eq(last_retried, 0);
	cr_assert_eq(STAT(STALE_RETRIES), 0);
	no_pending_accept(200);
	cr_assert(ps_probe_same(fd, cookie), "the fd was not replaced");
	cr_assert(ps_conn_taint(c) & PS_T_SHUTDOWN);
	cr_assert(t_wait_readable(s1, 2000));
	cr_assert_eq(recv(s1, buf, 1, MSG_DONTWAIT), 0, "the server sees the program's FIN");
}

/* The same from another thread, on a read blocked before anything was
 * written (nothing kept: only the shutdown can tell this EOF from a stale
 * reuse's). */
Test(io, shutdown_from_another_thread_wakes_a_blocked_read_without_a_resend)
{
	first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t cookie = c->cookie;
	struct reader rd;
	reader_start(&rd, fd);
	cr_assert_eq(w_shutdown(fd, SHUT_RDWR), 0);
	join_within(rd.th, 5000);
	cr_assert_eq(rd.r, 0, "the blocked read returns EOF: got %zd (%s)", rd.r, strerror(rd.err));
	cr_assert_eq(STAT(STALE_RETRIES), 0);
	no_pending_accept(200);
	cr_assert_eq(ps_fd_get(fd), c);
	cr_assert(ps_probe_same(fd, cookie), "the fd was not replaced");
	cr_assert_eq(c->inflight, 0);
}

/* ---- (d) close while another thread is inside a read on the fd ---- */

static int reopen_null(void *ctx)
{
	(void)ctx;
	return open("/dev/null", O_RDONLY);
}

Test(io, close_during_a_blocked_read_leaves_the_reused_number_alone)
{
	size_t base = ps_conn_live();
	int s1 = first_cycle();
	int fd = reused_conn();
	struct reader rd;
	reader_start(&rd, fd);
	/* the main thread closes the fd; the number is reused by a file */
	cr_assert_eq(w_close(fd), 0);
	cr_assert_eq(last_pooled, 0, "a call is inside it: never pooled");
	cr_assert_eq(STAT(REFUSED_STATE), 1);
	cr_assert_null(ps_fd_get(fd));
	int file = ps_opened(open("/dev/null", O_RDONLY), reopen_null, NULL);
	cr_assert_eq(file, fd, "the number is reused by a file");
	cr_assert_eq(ps_conn_live(), base + 1, "kept while the read is inside it");
	/* the blocked read ends (the server closes): EOF before any reply byte
	 * on a reused connection, but there is nothing to resend it on */
	close(s1);
	join_within(rd.th, 5000);
	cr_assert_eq(rd.r, 0, "got %zd (%s)", rd.r, strerror(rd.err));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISCHR(st.st_mode), "the number must still be /dev/null");
	cr_assert_null(ps_fd_get(fd));
	cr_assert_eq(STAT(STALE_RETRIES), 0);
	no_pending_accept(0);
	cr_assert_eq(ps_conn_live(), base, "freed when the read left");
	close(file);
}

/* ---- (e) SO_ERROR on a reused connection reset before first use ---- */

Test(io, so_error_on_a_reset_unused_connection_replaces_it)
{
	int s1 = first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t old_cookie = c->cookie;
	reset_peer(s1);
	wait_for_reset(fd);
	int soerr = -1;
	socklen_t len = sizeof soerr;
	cr_assert_eq(ps_getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len), 0);
	cr_assert_eq(soerr, 0, "SO_ERROR %d (%s)", soerr, strerror(soerr));
	cr_assert_eq(STAT(STALE_RETRIES), 1);
	int s2 = t_accept(lfd, 2000);
	cr_assert_geq(s2, 0, "the listener accepted a new connection");
	cr_assert_neq(c->cookie, old_cookie);
	cr_assert(ps_probe_same(fd, c->cookie), "the fd holds the new connection");
	exchange(fd, s2, "REQ /e\n", "ok\n");
	no_pending_accept(0);
	close(s2);
}

/* ---- (f) a split request on a reused connection is not held by Nagle ---- */

Test(io, split_write_write_read_on_a_reused_connection_is_fast)
{
	int s = first_cycle();
	const char p1[] = "GET /f", p2[] = " HTTP/1.1\r\n\r\n", rep[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	size_t n = sizeof p1 - 1 + sizeof p2 - 1;
	uint64_t total = 0;
	for (int i = 0; i < 5; i++) {
		usleep(50000); /* the server's delayed-ACK timer is idle again */
		int fd = reused_conn();
		char buf[64];
		uint64_t t0 = now_ns();
		cr_assert_eq(w_write(fd, p1, sizeof p1 - 1), (ssize_t)sizeof p1 - 1);
		cr_assert_eq(w_write(fd, p2, sizeof p2 - 1), (ssize_t)sizeof p2 - 1);
		cr_assert_eq(t_read_n(s, buf, n, 2000), (ssize_t)n, "cycle %d", i);
		cr_assert_arr_eq(buf, "GET /f HTTP/1.1\r\n\r\n", n);
		/* the push is the shim's: the program still sees its own setting */
		int v = -1;
		socklen_t len = sizeof v;
		cr_assert_eq(ps_getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
		cr_assert_eq(v, 0, "the program never set TCP_NODELAY");
		cr_assert_eq(write(s, rep, sizeof rep - 1), (ssize_t)sizeof rep - 1);
		read_reply(fd, rep);
		total += now_ns() - t0;
		cr_assert_eq(w_close(fd), 0);
		cr_assert_eq(last_pooled, 1, "cycle %d", i);
		/* checkin undid the push on what it kept: the parked number, or
		 * the pool's copy */
		cr_assert_eq(ps_g.pool.total + (unsigned)ps_parked_count, 1u);
		int kept = ps_parked_count ? fd : ps_g.pool.lru->hidden;
		v = -1;
		cr_assert_eq(getsockopt(kept, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
		cr_assert_eq(v, 0, "the pooled connection still has TCP_NODELAY on (cycle %d)", i);
	}
	double avg_ms = (double)total / 5 / 1e6;
	cr_assert_lt(avg_ms, 20.0, "write-write-read took %.1f ms on average (delayed-ACK stall?)", avg_ms);
	cr_assert_eq(STAT(HITS), 5);
	no_pending_accept(0);
}

/* ---- (g) poll on a reused unused connection whose peer was reset ---- */

Test(io, poll_on_a_reset_unused_connection_reports_the_replacement)
{
	int s1 = first_cycle();
	int fd = reused_conn();
	struct ps_conn *c = ps_fd_get(fd);
	uint64_t old_cookie = c->cookie;
	cr_assert_gt(ps_unused_count, 0, "a reused unused connection is watched");
	reset_peer(s1);
	wait_for_reset(fd);
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	int r = ps_poll(&p, 1, 2000);
	cr_assert_eq(r, 1);
	cr_assert_eq(p.revents & (POLLERR | POLLHUP), 0, "revents %#x: the dead connection was reported",
		     p.revents);
	cr_assert(p.revents & POLLOUT, "revents %#x", p.revents);
	cr_assert_eq(STAT(STALE_RETRIES), 1);
	cr_assert_neq(c->cookie, old_cookie);
	int s2 = t_accept(lfd, 2000);
	cr_assert_geq(s2, 0, "the listener accepted the replacement");
	exchange(fd, s2, "REQ /g\n", "ok\n");
	close(s2);
}
