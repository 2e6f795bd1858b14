/* Shared helpers for the unit tests (see helpers.h). */
#include "helpers.h"

#include "libc.h"
#include "config.h"
#include "log.h"
#include "state.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <spawn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

#include <criterion/criterion.h>

int t_listen(struct sockaddr_in *addr)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0, "socket: %s", strerror(errno));
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(lfd, 16), 0, "listen: %s", strerror(errno));
	socklen_t len = sizeof a;
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	*addr = a;
	return lfd;
}

int t_accept(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0) {
		errno = EAGAIN;
		return -1;
	}
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

void t_tcp_pair(int *cli, int *srv)
{
	struct sockaddr_in a;
	int lfd = t_listen(&a);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(c, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	int s = t_accept(lfd, 2000);
	cr_assert_geq(s, 0, "accept: %s", strerror(errno));
	close(lfd);
	*cli = c;
	*srv = s;
}

int t_wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	return poll(&p, 1, timeout_ms) == 1;
}

ssize_t t_read_n(int fd, void *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		if (!t_wait_readable(fd, timeout_ms))
			break;
		ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* ---- fake environment ---- */

#define T_ENV_MAX 32
static struct {
	const char *name;
	const char *value;
} env[T_ENV_MAX];
static int n_env;

void t_env_clear(void) { n_env = 0; }

void t_env_set(const char *name, const char *value)
{
	for (int i = 0; i < n_env; i++)
		if (strcmp(env[i].name, name) == 0) {
			env[i].value = value;
			return;
		}
	cr_assert_lt(n_env, T_ENV_MAX);
	env[n_env].name = name;
	env[n_env].value = value;
	n_env++;
}

const char *t_env_lookup(const char *name)
{
	for (int i = 0; i < n_env; i++)
		if (strcmp(env[i].name, name) == 0)
			return env[i].value;
	return NULL;
}

const char *t_env_empty(const char *name)
{
	(void)name;
	return NULL;
}

/* ---- log capture ---- */

static int cap_r = -1, cap_w = -1;
static char cap_buf[65536];
static size_t cap_len;

void t_log_capture_start(void)
{
	int p[2];
	if (cap_r >= 0) {
		close(cap_r);
		close(cap_w);
	}
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	cap_r = p[0];
	cap_w = p[1];
	cap_len = 0;
	cap_buf[0] = '\0';
	ps_log_set_fd(cap_w);
}

const char *t_log_captured(void)
{
	for (;;) {
		if (cap_r < 0 || cap_len >= sizeof cap_buf - 1)
			break;
		ssize_t r = read(cap_r, cap_buf + cap_len, sizeof cap_buf - 1 - cap_len);
		if (r <= 0)
			break;
		cap_len += (size_t)r;
	}
	cap_buf[cap_len] = '\0';
	return cap_buf;
}

int t_log_count_lines(const char *needle)
{
	const char *s = t_log_captured();
	int n = 0;
	for (;;) {
		const char *nl = strchr(s, '\n');
		if (!nl)
			break;
		size_t len = (size_t)(nl - s);
		if (!needle || memmem(s, len, needle, strlen(needle)))
			n++;
		s = nl + 1;
	}
	return n;
}

int t_log_total_lines(void) { return t_log_count_lines(NULL); }

/* ---- the program's calls ---- */

void t_libc_fill(void)
{
	struct ps_libc *l = &ps_libc;
	l->posix_spawn = posix_spawn;
	l->getsockname = getsockname;
	l->getpeername = getpeername;
	l->fstat = fstat;
	l->fstat64 = fstat64;
	l->socket = socket;
	l->connect = connect;
	l->close = close;
	l->shutdown = shutdown;
	l->bind = bind;
	l->listen = listen;
	l->setsockopt = setsockopt;
	l->getsockopt = getsockopt;
	l->accept = accept;
	l->accept4 = accept4;
	l->fcntl = fcntl;
	l->fcntl64 = fcntl;
	l->ioctl = (int (*)(int, unsigned long, ...))ioctl;
	l->dup = dup;
	l->dup2 = dup2;
	l->dup3 = dup3;
	l->write = write;
	l->writev = writev;
	l->send = send;
	l->sendto = sendto;
	l->sendmsg = sendmsg;
	l->sendmmsg = sendmmsg;
	l->read = read;
	l->readv = readv;
	l->recv = recv;
	l->recvfrom = recvfrom;
	l->recvmsg = recvmsg;
	l->recvmmsg = recvmmsg;
	l->fdopen = fdopen;
	l->close_range = close_range;
	l->closefrom = closefrom;
	l->epoll_ctl = epoll_ctl;
	l->epoll_wait = epoll_wait;
	l->epoll_pwait = epoll_pwait;
	l->poll = poll;
	l->ppoll = ppoll;
	l->select = select;
	l->pselect = pselect;
	l->open = open;
	l->fork = fork;
}

int t_pool_setup(struct sockaddr_in *dst)
{
	signal(SIGPIPE, SIG_IGN);
	/* the tests talk a line protocol of their own: pooled byte by byte */
	t_env_clear();
	t_env_set("POOLSHIM_PROTOCOLS", "http,redis,memcached,any");
	ps_config_parse(&ps_config, t_env_lookup);
	ps_stats_reset();
	cr_assert_eq(ps_state_init(), 0);
	t_libc_fill();
	return t_listen(dst);
}

/* ---- fake clock ---- */

uint64_t t_fake_now = 1000000000ull;

uint64_t t_fake_clock(void) { return t_fake_now; }
