/* track.c: protocol detection, and what the tracking calls record on a
 * connection record (taints, options, bindings, last I/O). */
#include "config.h"
#include "fdtable.h"
#include "helpers.h"
#include "key.h"
#include "log.h"
#include "state.h"
#include "stats.h"
#include "track.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define S(lit) (lit), (sizeof(lit) - 1)

Test(track, tls_record_start_detected)
{
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	static const unsigned char ssl2[] = { 0x16, 0x02, 0x01 };
	static const unsigned char one[] = { 0x16 };
	static const unsigned char tls13[] = { 0x16, 0x03, 0x03 };
	cr_assert_eq(ps_looks_like_tls(hello, sizeof hello), 1);
	cr_assert_eq(ps_looks_like_tls(tls13, 2), 1, "two bytes are enough");
	cr_assert_eq(ps_looks_like_tls(ssl2, sizeof ssl2), 0);
	cr_assert_eq(ps_looks_like_tls(one, 1), 0, "one byte cannot tell");
	cr_assert_eq(ps_looks_like_tls(hello, 0), 0);
	cr_assert_eq(ps_looks_like_tls(S("GET / HTTP/1.1\r\n")), 0);
	cr_assert_eq(ps_looks_like_tls(S("\x17\x03\x03")), 0, "application data is not a handshake start");
}

Test(track, connection_auth_detected)
{
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nAuthorization: NTLM abc")), 1);
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nauthorization:   negotiate x")), 1,
		     "case-insensitive, any spaces");
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nAUTHORIZATION:\tNTLM x")), 1);
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nAuthorization: Basic x")), 0);
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nAuthorization: Bearer x")), 0);
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nProxy-Authorization: NTLM x")), 1);
	cr_assert_eq(ps_has_connection_auth(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), 0);
	cr_assert_eq(ps_has_connection_auth(S("Authorization: NTL")), 0, "truncated scheme");
	cr_assert_eq(ps_has_connection_auth(S("Authorization: Negotiat")), 0);
	cr_assert_eq(ps_has_connection_auth(S("Authorization:")), 0);
	cr_assert_eq(ps_has_connection_auth("", 0), 0);
}

Test(track, connection_auth_respects_length)
{
	/* the NTLM lies past the given length */
	const char *s = "GET / HTTP/1.1\r\nAuthorization: NTLM abc";
	cr_assert_eq(ps_has_connection_auth(s, strlen(s) - 7), 0);
	cr_assert_eq(ps_has_connection_auth(s, strlen(s) - 4), 1);
}

/* ---- recording on live records ---- */

static void setup(void)
{
	ps_config_parse(&ps_config, t_env_empty);
	ps_stats_reset();
	cr_assert_eq(ps_state_init(), 0);
}

TestSuite(tracking, .init = setup);

static int int_at(const uint8_t *p)
{
	int v;
	memcpy(&v, p, sizeof v);
	return v;
}

static struct ps_conn *tracked_socket(int type, int *fd_out)
{
	int fd = socket(AF_INET, type, 0);
	cr_assert_geq(fd, 0);
	ps_track_socket(fd, AF_INET, type, 0);
	*fd_out = fd;
	return ps_fd_get(fd);
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

Test(tracking, socket_ignores_kinds_the_pool_never_holds)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ps_track_socket(fd, AF_INET, SOCK_DGRAM, 0);
	cr_assert_null(ps_fd_get(fd), "UDP");
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ps_track_socket(fd, AF_UNIX, SOCK_STREAM, 0);
	cr_assert_null(ps_fd_get(fd), "AF_UNIX without POOLSHIM_UNIX");
	ps_config.unix_sockets = true;
	ps_track_socket(fd, AF_UNIX, SOCK_STREAM, 0);
	cr_assert_not_null(ps_fd_get(fd), "AF_UNIX with POOLSHIM_UNIX");
	ps_track_drop(fd);
	close(fd);
	fd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	ps_track_socket(fd, AF_INET, SOCK_STREAM, IPPROTO_SCTP);
	cr_assert_null(ps_fd_get(fd), "another protocol");
	ps_config.disable = true;
	ps_track_socket(fd, AF_INET, SOCK_STREAM, 0);
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
	/* and a socket() at a number holding a stale record replaces it */
	c = tracked_socket(SOCK_STREAM, &fd);
	ps_track_socket(fd, AF_INET, SOCK_STREAM, 0);
	cr_assert_neq(ps_fd_get(fd), NULL);
	cr_assert_eq(ps_conn_live(), 1, "the stale record was freed");
	close(fd);
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
	ps_conn_set_state(c, PS_ACTIVE);
	ps_track_setsockopt_after(c, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_OPTION);
	close(fd);
}

Test(tracking, shutdown_taints_even_when_it_fails)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	ps_track_shutdown(c, -1);
	cr_assert_eq(ps_conn_taint(c), PS_T_SHUTDOWN);
	close(fd);
}

static struct ps_conn *active(int *fd)
{
	struct ps_conn *c = tracked_socket(SOCK_STREAM, fd);
	ps_conn_set_state(c, PS_ACTIVE);
	return c;
}

Test(tracking, io_begin_only_for_active_records)
{
	int fd;
	struct ps_conn *c = tracked_socket(SOCK_STREAM, &fd);
	cr_assert_null(ps_io_begin(fd, PS_IO_WRITE, "x", 1), "fresh: not tracked I/O");
	cr_assert_eq(c->inflight, 0);
	ps_conn_set_state(c, PS_ACTIVE);
	cr_assert_eq(ps_io_begin(fd, PS_IO_READ, NULL, 0), c);
	cr_assert_eq(c->inflight, 1);
	ps_io_end(c, fd, PS_IO_READ, -1, 10, EAGAIN);
	cr_assert_eq(c->inflight, 0);
	cr_assert_null(ps_io_begin(fd + 1000, PS_IO_READ, NULL, 0), "untracked fd");
	close(fd);
}

Test(tracking, write_then_read_records_last_io)
{
	int fd;
	struct ps_conn *c = active(&fd);
	struct ps_conn *b = ps_io_begin(fd, PS_IO_WRITE, S("GET /\r\n"));
	ps_io_end(b, fd, PS_IO_WRITE, 7, 7, 0);
	cr_assert_eq(c->last_io, PS_IO_WRITE);
	cr_assert(c->wrote);
	b = ps_io_begin(fd, PS_IO_PEEK, NULL, 0);
	ps_io_end(b, fd, PS_IO_PEEK, 5, 10, 0);
	cr_assert_eq(c->last_io, PS_IO_WRITE, "a peek consumes nothing: still last a write");
	b = ps_io_begin(fd, PS_IO_READ, NULL, 0);
	ps_io_end(b, fd, PS_IO_READ, 5, 10, 0);
	cr_assert_eq(c->last_io, PS_IO_READ);
	cr_assert_eq(ps_conn_taint(c), 0);
	cr_assert_eq(c->inflight, 0);
	close(fd);
}

Test(tracking, read_of_zero_is_peer_closed_unless_nothing_asked)
{
	int fd;
	struct ps_conn *c = active(&fd);
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, 0, 0, 0);
	cr_assert_eq(ps_conn_taint(c), 0, "a zero-length read says nothing");
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, NULL, 0), fd, PS_IO_WRITE, 0, 0, 0);
	cr_assert_eq(ps_conn_taint(c), 0);
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, 0, 100, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_PEER_CLOSED);
	close(fd);
}

Test(tracking, io_errors_taint_but_eagain_and_eintr_do_not)
{
	int fd;
	struct ps_conn *c = active(&fd);
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, -1, 10, EAGAIN);
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, -1, 10, EWOULDBLOCK);
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, NULL, 0), fd, PS_IO_WRITE, -1, 10, EINTR);
	cr_assert_eq(ps_conn_taint(c), 0);
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, NULL, 0), fd, PS_IO_WRITE, -1, 10, EPIPE);
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
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, hello, sizeof hello), fd, PS_IO_WRITE, 5, 5, 0);
	cr_assert(ps_conn_taint(c) & PS_T_TLS);
	cr_assert(ps_unsafe_has(&c->key));
	close(fd);
}

Test(tracking, later_tls_looking_write_is_not_tls)
{
	int fd;
	struct ps_conn *c = active(&fd);
	static const unsigned char bytes[] = { 0x16, 0x03, 0x01 };
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, S("hello")), fd, PS_IO_WRITE, 5, 5, 0);
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, bytes, sizeof bytes), fd, PS_IO_WRITE, 3, 3, 0);
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
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, req, sizeof req - 1), fd, PS_IO_WRITE, (ssize_t)sizeof req - 1,
		  sizeof req - 1, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_AUTH);
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
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, 20, 512, 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_SERVER_FIRST);
	cr_assert(ps_unsafe_has(&c->key));
	close(fd);
}

Test(tracking, read_on_reused_connection_is_not_server_first)
{
	int fd;
	struct ps_conn *c = active(&fd);
	c->reused = true;
	ps_io_end(ps_io_begin(fd, PS_IO_READ, NULL, 0), fd, PS_IO_READ, 20, 512, 0);
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
	c->reused = true; /* a pooled connection, but no destination to reconnect to */
	cr_assert(ps_io_first_reused_write(c));
	struct ps_conn *b = ps_io_begin(fd, PS_IO_WRITE, S("GET /"));
	cr_assert_eq(b, c);
	cr_assert_eq(ps_io_end(b, fd, PS_IO_WRITE, -1, 5, EPIPE), 0, "no retry possible");
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	cr_assert_eq(c->inflight, 0, "inflight dropped exactly once");
	cr_assert_not(ps_io_first_reused_write(c), "one attempt per use");
	cr_assert_eq(ps_stat_get(PS_ST_STALE_RETRIES), 0);
	close(fd);
}

Test(tracking, only_the_first_write_of_a_reused_connection_may_retry)
{
	int fd;
	struct ps_conn *c = active(&fd);
	cr_assert_not(ps_io_first_reused_write(c), "a fresh connection never retries");
	c->reused = true;
	cr_assert(ps_io_first_reused_write(c));
	ps_io_end(ps_io_begin(fd, PS_IO_WRITE, S("a")), fd, PS_IO_WRITE, 1, 1, 0);
	cr_assert_not(ps_io_first_reused_write(c), "after a successful write");
	cr_assert_eq(ps_io_end(ps_io_begin(fd, PS_IO_WRITE, S("b")), fd, PS_IO_WRITE, -1, 1, ECONNRESET), 0);
	cr_assert_eq(ps_conn_taint(c), PS_T_IO_ERROR);
	cr_assert_eq(c->inflight, 0);
	close(fd);
}

#define REQ(s) s, sizeof s - 1

Test(track, connection_close_request_is_detected)
{
	cr_assert(ps_asks_server_to_close(REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")));
	cr_assert(ps_asks_server_to_close(REQ("GET / HTTP/1.1\r\nconnection:  Upgrade, CLOSE\r\n\r\n")));
	cr_assert_not(ps_asks_server_to_close(REQ("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n")));
	cr_assert_not(ps_asks_server_to_close(REQ("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
	/* a header value elsewhere in the text is not a header line */
	cr_assert_not(ps_asks_server_to_close(REQ("GET /?q=x-Connection:%20close HTTP/1.1\r\n\r\n")));
}

Test(track, http10_request_without_keepalive_is_detected)
{
	cr_assert(ps_asks_server_to_close(REQ("GET / HTTP/1.0\r\nHost: a\r\n\r\n")));
	cr_assert(ps_asks_server_to_close(REQ("GET / HTTP/1.0\n\n")));
	cr_assert_not(ps_asks_server_to_close(REQ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")));
	cr_assert_not(ps_asks_server_to_close(REQ("REQ token\n")));
	cr_assert_not(ps_asks_server_to_close(REQ("HTTP/1.0")));
}

Test(track, auth_header_must_start_a_line)
{
	cr_assert_not(ps_has_connection_auth(REQ("GET /x?Authorization:%20NTLM HTTP/1.1\r\n\r\n")));
	cr_assert(ps_has_connection_auth(REQ("GET / HTTP/1.1\r\nAuthorization: NTLM abc\r\n\r\n")));
}

/* httperf's writev passes an empty iovec with a NULL base: nothing to keep,
 * and no memcpy from NULL (UBSan aborts on that). */
Test(track, replay_skips_empty_iovec_entries)
{
	struct ps_conn *c = calloc(1, sizeof *c);
	char data[] = "GET / HTTP/1.1\r\n\r\n";
	struct iovec iov[3] = { { NULL, 0 }, { data, sizeof data - 1 }, { NULL, 0 } };
	c->reused = true;
	ps_io_sent(c, iov, 3, sizeof data - 1);
	cr_assert_eq(c->replay_len, sizeof data - 1);
	cr_assert_not(c->replay_overflow);
	cr_assert_eq(memcmp(c->replay, data, sizeof data - 1), 0);
	free(c);
}
