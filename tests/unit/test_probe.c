/* probe.c on real loopback TCP sockets: the health peek and the socket
 * cookie (HAZARDS.md 5 and 6). */
#include "probe.h"
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

Test(probe, healthy_idle_connection)
{
	int c, s;
	t_tcp_pair(&c, &s);
	cr_assert_eq(ps_probe_health(c), PS_HEALTHY);
	cr_assert_eq(ps_probe_health(s), PS_HEALTHY);
	/* a full request/response exchange leaves it healthy */
	cr_assert_eq(write(c, "ping\n", 5), 5);
	char buf[8];
	cr_assert_eq(t_read_n(s, buf, 5, 1000), 5);
	cr_assert_eq(write(s, "pong\n", 5), 5);
	cr_assert_eq(t_read_n(c, buf, 5, 1000), 5);
	cr_assert_eq(ps_probe_health(c), PS_HEALTHY);
	close(c);
	close(s);
}

Test(probe, unread_bytes_are_not_healthy)
{
	int c, s;
	t_tcp_pair(&c, &s);
	cr_assert_eq(write(s, "x", 1), 1);
	cr_assert(t_wait_readable(c, 1000));
	cr_assert_eq(ps_probe_health(c), PS_UNREAD);
	/* the peek consumed nothing */
	cr_assert_eq(ps_probe_health(c), PS_UNREAD);
	char b;
	cr_assert_eq(read(c, &b, 1), 1);
	cr_assert_eq(b, 'x');
	cr_assert_eq(ps_probe_health(c), PS_HEALTHY);
	close(c);
	close(s);
}

Test(probe, peer_fin_is_not_healthy)
{
	int c, s;
	t_tcp_pair(&c, &s);
	close(s);
	cr_assert(t_wait_readable(c, 1000));
	cr_assert_eq(ps_probe_health(c), PS_PEER_CLOSED);
	close(c);
}

Test(probe, peer_half_close_is_not_healthy)
{
	int c, s;
	t_tcp_pair(&c, &s);
	cr_assert_eq(shutdown(s, SHUT_WR), 0);
	cr_assert(t_wait_readable(c, 1000));
	cr_assert_eq(ps_probe_health(c), PS_PEER_CLOSED);
	close(c);
	close(s);
}

Test(probe, peer_rst_is_broken)
{
	int c, s;
	t_tcp_pair(&c, &s);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(s);
	struct pollfd p = { .fd = c, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 1000), 1);
	cr_assert(p.revents & (POLLERR | POLLHUP), "RST not seen: revents %#x", p.revents);
	cr_assert_eq(ps_probe_health(c), PS_BROKEN);
	close(c);
}

Test(probe, local_shut_wr_still_probes_healthy)
{
	/* Documented limitation (HAZARDS.md 6): the peek cannot see a local
	 * SHUT_WR; the shim records shutdown() in its wrapper instead. */
	int c, s;
	t_tcp_pair(&c, &s);
	cr_assert_eq(shutdown(c, SHUT_WR), 0);
	cr_assert_eq(ps_probe_health(c), PS_HEALTHY);
	close(c);
	close(s);
}

Test(probe, unconnected_socket_is_broken)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ps_probe_health(fd), PS_BROKEN);
	close(fd);
}

Test(probe, regular_file_is_broken)
{
	int fd = open("/dev/null", O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ps_probe_health(fd), PS_BROKEN);
	close(fd);
	cr_assert_eq(ps_probe_health(fd), PS_BROKEN, "a closed fd is broken too");
}

Test(probe, health_names)
{
	cr_assert_str_eq(ps_health_name(PS_HEALTHY), "healthy");
	cr_assert_str_eq(ps_health_name(PS_UNREAD), "unread bytes");
	cr_assert_str_eq(ps_health_name(PS_PEER_CLOSED), "peer closed");
	cr_assert_str_eq(ps_health_name(PS_BROKEN), "broken");
}

Test(probe, two_sockets_have_different_cookies)
{
	int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t ca = 0, cb = 0;
	cr_assert_eq(ps_probe_cookie(a, &ca), 0, "SO_COOKIE: %s", strerror(errno));
	cr_assert_eq(ps_probe_cookie(b, &cb), 0);
	cr_assert_neq(ca, 0);
	cr_assert_neq(ca, cb);
	/* stable for the socket's life */
	uint64_t again;
	cr_assert_eq(ps_probe_cookie(a, &again), 0);
	cr_assert_eq(again, ca);
	cr_assert(ps_probe_same(a, ca));
	cr_assert_not(ps_probe_same(a, cb));
	close(a);
	close(b);
}

Test(probe, dup_shares_cookie)
{
	int a = socket(AF_INET, SOCK_STREAM, 0);
	int d = dup(a);
	uint64_t ca, cd;
	cr_assert_eq(ps_probe_cookie(a, &ca), 0);
	cr_assert_eq(ps_probe_cookie(d, &cd), 0);
	cr_assert_eq(ca, cd);
	cr_assert(ps_probe_same(d, ca));
	close(a);
	close(d);
}

Test(probe, cookie_errors)
{
	uint64_t ck;
	int fd = open("/dev/null", O_RDONLY);
	errno = 0;
	cr_assert_eq(ps_probe_cookie(fd, &ck), -1);
	cr_assert_eq(errno, ENOTSOCK);
	close(fd);
	errno = 0;
	cr_assert_eq(ps_probe_cookie(fd, &ck), -1);
	cr_assert_eq(errno, EBADF);
}

Test(probe, same_is_false_after_fd_number_reused_by_file)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t ck;
	cr_assert_eq(ps_probe_cookie(s, &ck), 0);
	close(s);
	cr_assert_not(ps_probe_same(s, ck), "closed fd");
	int f = open("/dev/null", O_RDONLY);
	cr_assert_eq(f, s, "the kernel reuses the lowest free number");
	cr_assert_not(ps_probe_same(f, ck), "a file at the same number is not the socket");
	close(f);
	/* and a new socket at the same number has a new identity */
	int s2 = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(s2, s);
	cr_assert_not(ps_probe_same(s2, ck));
	close(s2);
}

Test(probe, errno_preserved_by_health_and_same)
{
	int c, s;
	t_tcp_pair(&c, &s);
	uint64_t ck;
	cr_assert_eq(ps_probe_cookie(c, &ck), 0);
	int f = open("/dev/null", O_RDONLY);

	errno = 4242;
	cr_assert_eq(ps_probe_health(c), PS_HEALTHY); /* internally EAGAIN */
	cr_assert_eq(errno, 4242);
	errno = 4243;
	cr_assert_eq(ps_probe_health(f), PS_BROKEN); /* internally ENOTSOCK */
	cr_assert_eq(errno, 4243);
	errno = 4244;
	cr_assert_eq(ps_probe_same(f, ck), 0); /* internally ENOTSOCK */
	cr_assert_eq(errno, 4244);
	errno = 4245;
	cr_assert_eq(ps_probe_same(c, ck), 1);
	cr_assert_eq(errno, 4245);
	errno = 4246;
	cr_assert_eq(ps_probe_same(-1, ck), 0); /* internally EBADF */
	cr_assert_eq(errno, 4246);
	close(f);
	close(c);
	close(s);
}
