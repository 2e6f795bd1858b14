/* track.c and io.c: protocol detection, and what the tracking calls and the
 * read/write paths record on a connection record (taints, options,
 * bindings, last I/O, the replay buffer). */
#include "config.h"
#include "events.h"
#include "fdtable.h"
#include "helpers.h"
#include "io.h"
#include "key.h"
#include "libc.h"
#include "log.h"
#include "state.h"
#include "stats.h"
#include "steps.h"
#include "track.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define S(lit) (lit), (sizeof(lit) - 1)




/* ---- recording on live records, through the shim's entry points ----
 * Records come from ps_socket() (events.h) on real sockets; an ACTIVE one
 * from a real ps_connect() to a loopback listener; I/O goes through
 * ps_send()/ps_recv() (io.h) with a fake call that returns canned results. */

static int lfd;                /* a loopback listener for the ACTIVE records */
static struct sockaddr_in dst; /* its address */

static void setup(void) { lfd = t_pool_setup(&dst); }

TestSuite(tracking, .init = setup);

static int int_at(const uint8_t *p)
{
	int v;
	memcpy(&v, p, sizeof v);
	return v;
}

static struct ps_conn *tracked_socket(int type, int *fd_out)
{
	int fd = ps_socket(AF_INET, type, 0);
	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	*fd_out = fd;
	return ps_fd_get(fd);
}

/* ---- the fake program call: canned result, and what the path passed ---- */

static struct {
	ssize_t ret;       /* what the call returns... */
	int err;           /* ...with this errno when ret < 0 */
	int calls;         /* times it was made */
	int extra;         /* the extra MSG_* flags of the last call */
	int inflight_seen; /* the fd's record's inflight during the last call (-1: none) */
	int really_send;   /* send the bytes on the socket instead (ret ignored) */
} fake;

static ssize_t fake_call(const struct ps_call *k, int extra)
{
	struct ps_conn *c = ps_fd_get(k->fd);
	fake.calls++;
	fake.extra = extra;
	fake.inflight_seen = c ? __atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) : -1;
	if (fake.really_send)
		return send(k->fd, k->iov[0].iov_base, k->iov[0].iov_len, MSG_NOSIGNAL);
	errno = fake.err;
	return fake.ret;
}

static void canned(ssize_t ret, int err)
{
	fake.ret = ret;
	fake.err = err;
	fake.calls = 0;
	fake.extra = -1;
	fake.inflight_seen = -2;
	fake.really_send = 0;
}

/* the program's write of buf[0..len) that returns ret/err */
static ssize_t f_send(int fd, const void *buf, size_t len, ssize_t ret, int err)
{
	struct iovec v = { (void *)buf, len };
	struct ps_call k = { .fn = fake_call, .fd = fd, .iov = buf ? &v : NULL, .iovcnt = buf ? 1 : 0,
			     .want = len };
	canned(ret, err);
	return ps_send(&k);
}

/* the program's recv(flags) asking for want bytes that returns ret/err */
static ssize_t f_recv(int fd, int flags, size_t want, ssize_t ret, int err)
{
	static char buf[4096];
	struct iovec v = { buf, want };
	struct ps_call k = { .fn = fake_call, .fd = fd, .flags = flags, .iov = &v, .iovcnt = 1,
			     .want = want };
	canned(ret, err);
	return ps_recv(&k);
}

Test(tracking, socket_records_kind_and_flags)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, &fd);
	cr_assert_not_null(c);
	cr_assert_eq(c->fd, fd);
	cr_assert_eq(ps_conn_state(c), PS_FRESH);
	cr_assert_eq(c->type, SOCK_STREAM);
	cr_assert_eq(c->domain, AF_INET);
	cr_assert(c->nonblock);
	cr_assert(c->cloexec);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_eq(ps_conn_live(), 1);
	c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_not(c->nonblock);
	cr_assert_not(c->cloexec);
	cr_assert_eq(ps_conn_live(), 2);
}

/* ps_libc.socket that makes a TCP socket whatever protocol it is asked for:
 * the tracking decision for another protocol, without needing SCTP */
static int socket_any_protocol(int domain, int type, int protocol)
{
	(void)protocol;
	return socket(domain, type, 0);
}

Test(tracking, socket_ignores_kinds_the_pool_never_holds)
{
	int fd = ps_socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_null(ps_fd_get(fd), "UDP");
	close(fd);
	fd = ps_socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_null(ps_fd_get(fd), "AF_UNIX without POOLSHIM_UNIX");
	close(fd);
	ps_config.unix_sockets = true;
	fd = ps_socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_not_null(ps_fd_get(fd), "AF_UNIX with POOLSHIM_UNIX");
	ps_track_drop(fd);
	close(fd);
	ps_libc.socket = socket_any_protocol;
	fd = ps_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
	t_libc_fill();
	cr_assert_geq(fd, 0);
	cr_assert_null(ps_fd_get(fd), "another protocol");
	close(fd);
	ps_config.disable = true;
	fd = ps_socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_null(ps_fd_get(fd), "POOLSHIM_DISABLE");
	close(fd);
	cr_assert_eq(ps_conn_live(), 0);
}

Test(tracking, new_fd_drops_a_stale_record)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_not_null(c);
	ps_track_new_fd(fd); /* e.g. accept() returned this number: the old socket is gone */
	cr_assert_null(ps_fd_get(fd));
	cr_assert_eq(ps_conn_live(), 0);
	/* and a socket() at a number holding a stale record replaces it: the
	 * old socket was closed behind the shim's back and the number reused */
	c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_not_null(c);
	close(fd);
	int fd2;
	struct ps_conn *c2 = tracked_socket(SOCK_STREAM, &fd2);
	cr_assert_eq(fd2, fd, "the lowest free number is reused");
	cr_assert_not_null(c2);
	cr_assert_neq(c2, c, "a new record for the new socket");
	cr_assert_eq(ps_fd_get(fd), c2);
	cr_assert_eq(ps_conn_live(), 1, "the stale record was freed");
	close(fd);
}

/* close() of a socket that was never connected (CLAIM_FRESH): the record
 * ends and its slot must be cleared, or the next socket() at that number
 * meets the freed record as a stale one. */
Test(tracking, close_of_an_unconnected_socket_forgets_it)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_not_null(c);
	cr_assert_eq(ps_close(fd), 0);
	cr_assert_eq(ps_conn_live(), 0);
	cr_expect_null(ps_fd_get(fd), "the closed number still maps to the freed record");
	int fd2;
	struct ps_conn *c2 = tracked_socket(SOCK_STREAM, &fd2);
	cr_assert_eq(fd2, fd, "the lowest free number is reused");
	cr_assert_not_null(c2, "the next socket at that number is tracked");
	cr_assert_eq(ps_conn_state(c2), PS_FRESH, "the new socket's record is in state %d (%s)",
		     ps_conn_state(c2), c2 == c ? "the old record" : "another record");
	cr_assert_eq(c2->fd, fd2);
	cr_assert_eq(ps_conn_live(), 1);
	close(fd2);
}

Test(tracking, bind_port_zero_is_keyed_nonzero_port_taints)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	struct sockaddr_in l = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	ps_track_bind(c, (struct sockaddr *)&l, sizeof l, 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_eq(c->key.local_family, AF_INET);
	cr_assert_eq(c->key.local_addr[0], 127);
	l.sin_port = htons(4000);
	ps_track_bind(c, (struct sockaddr *)&l, sizeof l, -1);
	cr_assert_eq(ps_conn_taint(c), 0, "a failed bind records nothing");
	ps_track_bind(c, (struct sockaddr *)&l, sizeof l, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_BOUND);
	close(fd);
}

Test(tracking, setsockopt_resettable_option_is_recorded_with_default)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	int one = 1;
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_KEEPALIVE);
	int r = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one, r);
	cr_assert_eq(r, 0);
	cr_assert_eq(c->n_opts, 1);
	cr_assert_eq(c->opts[0].level, SOL_SOCKET);
	cr_assert_eq(c->opts[0].name, SO_KEEPALIVE);
	cr_assert_eq(c->opts[0].len, sizeof(int));
	cr_assert_eq(int_at(c->opts[0].value), 1);
	cr_assert_eq(c->opts[0].default_len, sizeof(int));
	cr_assert_eq(int_at(c->opts[0].default_value), 0);
	/* setting it again updates the value, keeps one slot and the first default */
	int zero = 0;
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_KEEPALIVE);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_KEEPALIVE, &zero, sizeof zero, 0);
	cr_assert_eq(c->n_opts, 1);
	cr_assert_eq(int_at(c->opts[0].value), 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	close(fd);
}

Test(tracking, setsockopt_failed_call_records_nothing)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	int one = 1;
	ps_track_setsockopt_before(c, fd, IPPROTO_TCP, TCP_NODELAY);
	ps_track_setsockopt_after(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one, -1);
	cr_assert_eq(c->n_opts, 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	close(fd);
}

Test(tracking, setsockopt_unknown_or_lingering_taints)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	int one = 1;
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_BROADCAST);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_BROADCAST, &one, sizeof one, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_OPTION, "an option the shim cannot reset");
	close(fd);
	c = tracked_socket(SOCK_STREAM, &fd);
	struct linger lg = { 1, 0 };
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_LINGER);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_OPTION, "SO_LINGER on changes close()");
	close(fd);
	c = tracked_socket(SOCK_STREAM, &fd);
	lg.l_onoff = 0;
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_LINGER);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg, 0);
	cr_assert_eq(ps_conn_taint(c), 0, "SO_LINGER off is harmless");
	close(fd);
}

/* A tracked socket made ACTIVE by a real connect to the listener (a miss:
 * the pool is empty); *srv gets the accepted server side. */
static struct ps_conn *connect_it(struct ps_conn *c, int fd, int *srv)
{
	cr_assert_eq(ps_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0, "connect: %s",
		     strerror(errno));
	cr_assert_eq(ps_conn_state(c), PS_ACTIVE);
	cr_assert_eq(ps_fd_get(fd), c);
	int s = t_accept(lfd, 2000);
	cr_assert_geq(s, 0, "accept: %s", strerror(errno));
	if (srv)
		*srv = s;
	return c;
}

static struct ps_conn *active(int *fd)
{
	struct ps_conn *c = tracked_socket(SOCK_STREAM, fd);
	cr_assert_not_null(c);
	return connect_it(c, *fd, NULL);
}

Test(tracking, key_options_before_connect_go_into_the_key)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	int buf = 65536;
	ps_track_setsockopt_before(c, fd, SOL_SOCKET, SO_RCVBUF);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf, 0);
	cr_assert_eq(c->key.rcvbuf, 65536);
	cr_assert_eq(ps_conn_taint(c), 0);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3, 0);
	cr_assert_str_eq(c->key.device, "lo");
	/* after connect the key cannot say it any more */
	connect_it(c, fd, NULL);
	cr_assert_eq(ps_conn_taint(c), 0);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_OPTION);
	close(fd);
}

Test(tracking, shutdown_taints_even_when_it_fails)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	errno = 0;
	cr_assert_eq(ps_shutdown(fd, SHUT_RDWR), -1, "not connected: the call fails");
	cr_assert_eq(errno, ENOTCONN, "the program sees the call's own errno");
	cr_assert_eq(ps_conn_taint(c), PS_T_SHUTDOWN);
	close(fd);
}

/* was io_begin_only_for_active_records: ps_io_begin is gone; the bracket is
 * ps_life_io_enter/leave inside ps_send/ps_recv, observed from the call */
Test(tracking, io_is_tracked_only_on_active_records)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_eq(f_send(fd, "x", 1, 1, 0), 1);
	cr_assert_eq(fake.calls, 1, "fresh: the call is made as it is");
	cr_assert_eq(fake.extra, 0);
	cr_assert_eq(fake.inflight_seen, 0, "fresh: not tracked I/O");
	cr_assert_not(c->wrote, "fresh: nothing recorded");
	cr_assert_eq(c->last_io, PS_IO_NONE);
	cr_assert_eq(c->sent, 0);
	connect_it(c, fd, NULL);
	errno = 0;
	cr_assert_eq(f_recv(fd, 0, 10, -1, EAGAIN), -1);
	cr_assert_eq(errno, EAGAIN, "the call's errno reaches the program");
	cr_assert_eq(fake.calls, 1);
	cr_assert_eq(fake.inflight_seen, 1, "active: the call runs inside the bracket");
	cr_assert_eq(c->inflight, 0);
	int other = fd + 1000;
	cr_assert_null(ps_fd_get(other));
	cr_assert_eq(f_recv(other, 0, 10, 3, 0), 3);
	cr_assert_eq(fake.calls, 1, "untracked fd: made as it is");
	cr_assert_eq(fake.inflight_seen, -1);
	cr_assert_eq(c->inflight, 0);
	close(fd);
}

Test(tracking, write_then_read_records_last_io)
{
	int fd;
	struct ps_conn *c = active(&fd);
	cr_assert_eq(f_send(fd, S("GET /\r\n"), 7, 0), 7);
	cr_assert_eq(c->last_io, PS_IO_WRITE);
	cr_assert(c->wrote);
	cr_assert_eq(f_recv(fd, MSG_PEEK, 10, 5, 0), 5);
	cr_assert_eq(c->last_io, PS_IO_WRITE, "a peek consumes nothing: still last a write");
	cr_assert_eq(f_recv(fd, 0, 10, 5, 0), 5);
	cr_assert_eq(c->last_io, PS_IO_READ);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_eq(c->inflight, 0);
	close(fd);
}

Test(tracking, read_of_zero_is_peer_closed_unless_nothing_asked)
{
	int fd;
	struct ps_conn *c = active(&fd);
	cr_assert_eq(f_recv(fd, 0, 0, 0, 0), 0);
	cr_assert_eq(ps_conn_taint(c), 0, "a zero-length read says nothing");
	cr_assert_eq(f_send(fd, NULL, 0, 0, 0), 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_eq(f_recv(fd, 0, 100, 0, 0), 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_PEER_CLOSED);
	close(fd);
}

Test(tracking, io_errors_taint_but_eagain_and_eintr_do_not)
{
	int fd;
	struct ps_conn *c = active(&fd);
	f_recv(fd, 0, 10, -1, EAGAIN);
	f_recv(fd, 0, 10, -1, EWOULDBLOCK);
	f_send(fd, "0123456789", 10, -1, EINTR);
	cr_assert_eq(ps_conn_taint(c), 0);
	errno = 0;
	cr_assert_eq(f_send(fd, "0123456789", 10, -1, EPIPE), -1);
	cr_assert_eq(errno, EPIPE);
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	close(fd);
}

Test(tracking, first_write_tls_taints_and_marks_unsafe)
{
	int fd;
	struct ps_conn *c = active(&fd);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(443),
				 .sin_addr.s_addr = htonl(0x7f000001) };
	cr_assert_eq(ps_key_init(&c->key, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0x10 };
	cr_assert_eq(f_send(fd, hello, sizeof hello, 5, 0), 5);
	cr_assert(ps_conn_taint(c) & PS_T_TLS);
	cr_assert(ps_unsafe_has(&c->key));
	close(fd);
}

Test(tracking, later_tls_looking_write_is_not_tls)
{
	int fd;
	struct ps_conn *c = active(&fd);
	static const unsigned char bytes[] = { 0x16, 0x03, 0x01 };
	cr_assert_eq(f_send(fd, S("hello"), 5, 0), 5);
	cr_assert_eq(f_send(fd, bytes, sizeof bytes, 3, 0), 3);
	cr_assert_eq(ps_conn_taint(c), 0, "only the first bytes of a fresh connection count");
	close(fd);
}

Test(tracking, auth_header_taints_without_unsafe)
{
	int fd;
	struct ps_conn *c = active(&fd);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80),
				 .sin_addr.s_addr = htonl(0x7f000001) };
	cr_assert_eq(ps_key_init(&c->key, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	const char req[] = "GET / HTTP/1.1\r\nAuthorization: NTLM TlRMTVNTUAAB\r\n\r\n";
	cr_assert_eq(f_send(fd, req, sizeof req - 1, (ssize_t)sizeof req - 1, 0), (ssize_t)sizeof req - 1);
	/* the protocol tracker (proto.h) keeps this connection out of the
	 * pool; no taint, and the destination stays safe */
	cr_assert_eq(ps_proto_reason(&c->proto), PS_R_HTTP_AUTH);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_not(ps_unsafe_has(&c->key), "auth binds this connection, not the destination");
	close(fd);
}

Test(tracking, read_before_first_write_is_server_first)
{
	int fd;
	struct ps_conn *c = active(&fd);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(25),
				 .sin_addr.s_addr = htonl(0x7f000001) };
	cr_assert_eq(ps_key_init(&c->key, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(f_recv(fd, 0, 512, 20, 0), 20);
	cr_assert_eq(ps_conn_taint(c), PS_T_SERVER_FIRST);
	cr_assert(ps_unsafe_has(&c->key));
	close(fd);
}

Test(tracking, read_on_reused_connection_is_not_server_first)
{
	int fd;
	struct ps_conn *c = active(&fd);
	c->reused = true;
	cr_assert_eq(f_recv(fd, 0, 512, 20, 0), 20);
	cr_assert_eq(ps_conn_taint(c), 0);
	close(fd);
}

Test(tracking, epoll_ctl_records_add_mod_del)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	ps_track_epoll_ctl(c, 10, EPOLL_CTL_ADD, &ev, -1);
	cr_assert_eq(c->n_epoll, 0, "a failed epoll_ctl records nothing");
	ps_track_epoll_ctl(c, 10, EPOLL_CTL_ADD, &ev, 0);
	cr_assert_eq(c->n_epoll, 1);
	cr_assert_eq(c->epoll[0].epfd, 10);
	cr_assert_eq(c->epoll[0].ev.events, EPOLLIN);
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u64 = 2;
	ps_track_epoll_ctl(c, 10, EPOLL_CTL_MOD, &ev, 0);
	cr_assert_eq(c->n_epoll, 1, "MOD updates in place");
	cr_assert_eq(c->epoll[0].ev.events, EPOLLIN | EPOLLOUT);
	cr_assert_eq(c->epoll[0].ev.data.u64, 2);
	ps_track_epoll_ctl(c, 11, EPOLL_CTL_ADD, &ev, 0);
	cr_assert_eq(c->n_epoll, 2);
	ps_track_epoll_ctl(c, 10, EPOLL_CTL_DEL, NULL, 0);
	cr_assert_eq(c->n_epoll, 1);
	cr_assert_eq(c->epoll[0].epfd, 11);
	ps_track_epoll_ctl(c, 99, EPOLL_CTL_DEL, NULL, 0);
	cr_assert_eq(c->n_epoll, 1, "DEL of an unknown epfd changes nothing");
	cr_assert_eq(ps_conn_taint(c), 0);
	close(fd);
}

Test(tracking, too_many_epoll_sets_make_it_untrackable)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	struct epoll_event ev = { .events = EPOLLIN };
	for (int i = 0; i < PS_MAX_EPOLL; i++)
		ps_track_epoll_ctl(c, 20 + i, EPOLL_CTL_ADD, &ev, 0);
	cr_assert_eq(c->n_epoll, PS_MAX_EPOLL);
	cr_assert_eq(ps_conn_taint(c), 0);
	ps_track_epoll_ctl(c, 99, EPOLL_CTL_ADD, &ev, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_UNTRACKABLE);
	cr_assert_eq(c->n_epoll, PS_MAX_EPOLL);
	close(fd);
}

Test(tracking, scm_rights_makes_the_passed_socket_shared)
{
	int fd, other;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	struct ps_conn *o = tracked_socket(SOCK_STREAM, &other);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	ps_track_passed_fds(&m);
	cr_assert_eq(ps_conn_taint(c), PS_T_SHARED);
	cr_assert_eq(ps_conn_taint(o), 0, "only the passed descriptor");
	close(fd);
	close(other);
}

Test(tracking, first_reused_write_failure_without_a_destination_is_an_io_error)
{
	int fd;
	struct ps_conn *c = active(&fd);
	c->reused = true; /* a pooled connection... */
	c->dest_len = 0;  /* ...but no destination to reconnect to */
	t_sigpipe_hold();
	errno = 0;
	cr_assert_eq(f_send(fd, S("GET /"), -1, EPIPE), -1, "no retry possible");
	cr_assert_eq(errno, EPIPE);
	cr_assert_eq(fake.calls, 1, "the call is made once");
	/* was ps_io_first_reused_write(c): the guard is the MSG_NOSIGNAL the
	 * path adds while the write may still be retried... */
	cr_assert_eq(fake.extra, MSG_NOSIGNAL, "no SIGPIPE before the shim can retry");
	/* ...and, the retry impossible, the program gets the SIGPIPE it asked
	 * for (new: raised by the shim, the kernel's was suppressed) */
	cr_assert(t_sigpipe_taken(), "the held SIGPIPE was not raised");
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	cr_assert_eq(c->inflight, 0, "inflight dropped exactly once");
	cr_assert_eq(ps_conn_state(c), PS_ACTIVE, "the failed replacement left it in place");
	/* one attempt per use: the next failure is not retried either */
	cr_assert(c->retried);
	cr_assert_eq(f_send(fd, S("GET /"), -1, EPIPE), -1);
	cr_assert_eq(fake.calls, 1);
	cr_assert(t_sigpipe_taken());
	cr_assert_eq(ps_stat_get(PS_ST_STALE_RETRIES), 0);
	cr_assert_eq(t_accept(lfd, 0), -1, "no new connection was made");
	close(fd);
}

/* Waits (bounded) until the peer's TCP has acknowledged every byte sent on
 * fd: tcpi_bytes_acked counts the SYN too. */
static void wait_acked(int fd, uint64_t bytes)
{
	struct tcp_info ti;
	for (int i = 0; i < 200; i++) {
		socklen_t len = sizeof ti;
		memset(&ti, 0, sizeof ti);
		cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
		if (ti.tcpi_bytes_acked >= bytes + 1)
			return;
		usleep(1000);
	}
	cr_assert_fail("not acknowledged: %llu of %llu", (unsigned long long)ti.tcpi_bytes_acked,
		       (unsigned long long)bytes + 1);
}

/* Behaviour changed by design: the old rule was "only the first write of a
 * reused connection may retry".  Now every write before the first reply
 * byte is guarded (MSG_NOSIGNAL) and kept, and a failure is resent only
 * when the server's TCP acknowledged none of this use (resend.h).  What
 * stays: a fresh connection never retries, and after a successful write
 * that reached the server a failure is not retried. */
Test(tracking, only_a_write_nothing_of_which_arrived_may_retry)
{
	int fd, s;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	connect_it(c, fd, &s);
	cr_assert_eq(f_send(fd, S("x"), -1, EPIPE), -1);
	cr_assert_eq(fake.extra, 0, "a fresh connection never retries: its write is not guarded");
	cr_assert_eq(fake.calls, 1);
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	close(fd);
	close(s);

	c = tracked_socket(SOCK_STREAM, &fd);
	connect_it(c, fd, &s);
	c->reused = true;
	c->sent_before_use = c->sent; /* as a checkout starts a use */
	canned(0, 0);
	fake.really_send = 1;
	struct iovec v = { "a", 1 };
	struct ps_call k = { .fn = fake_call, .fd = fd, .iov = &v, .iovcnt = 1, .want = 1 };
	cr_assert_eq(ps_send(&k), 1);
	cr_assert_eq(fake.extra, MSG_NOSIGNAL, "a reused connection's write is guarded");
	cr_assert_eq(c->replay_len, 1, "and kept");
	wait_acked(fd, 1);
	errno = 0;
	cr_assert_eq(f_send(fd, S("b"), -1, ECONNRESET), -1, "after a successful write that arrived");
	cr_assert_eq(errno, ECONNRESET);
	cr_assert_eq(fake.calls, 1, "not retried");
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	cr_assert_eq(c->inflight, 0);
	cr_assert_eq(ps_stat_get(PS_ST_STALE_RETRIES), 0);
	cr_assert_eq(t_accept(lfd, 0), -1, "no new connection was made");
	close(fd);
}





/* httperf's writev passes an empty iovec with a NULL base: nothing to keep,
 * and no memcpy from NULL (UBSan aborts on that).  Now through ps_send on a
 * reused ACTIVE record; the kept bytes live in a replay buffer taken from
 * its slab at the first write (c->replay->bytes), no longer in the record. */
Test(tracking, replay_skips_empty_iovec_entries)
{
	int fd;
	struct ps_conn *c = active(&fd);
	c->reused = true;
	char data[] = "GET / HTTP/1.1\r\n\r\n";
	struct iovec iov[3] = { { NULL, 0 }, { data, sizeof data - 1 }, { NULL, 0 } };
	struct ps_call k = { .fn = fake_call, .fd = fd, .iov = iov, .iovcnt = 3, .want = sizeof data - 1 };
	canned((ssize_t)sizeof data - 1, 0);
	cr_assert_eq(ps_send(&k), (ssize_t)sizeof data - 1);
	cr_assert_eq(c->replay_len, sizeof data - 1);
	cr_assert_not(c->replay_overflow);
	cr_assert_not_null(c->replay, "the buffer comes from the replay slab");
	cr_assert_eq(memcmp(c->replay->bytes, data, sizeof data - 1), 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	close(fd);
}
