/*
 * hazard_client - the programs of the hazard suite (test_hazards.c), each a
 * small socket program that meets one hazard of HAZARDS.md 19-22 (and the
 * signal-handler close of 17).  It runs unchanged with and without the shim
 * and checks only what the program itself sees: results, errors, timing,
 * its own descriptors, and what it can ask the server (COUNT) or read in
 * /proc/net/tcp.  Whether its connections were pooled is the test's
 * business (the server's accepted count).
 *
 * Usage: hazard_client <scenario> <port> [<arg>]
 *
 * Talks to safety_server on 127.0.0.1 (signal_close_strict: echo_server).
 * Every wait is bounded (poll, SO_RCVTIMEO, timed joins), so a hang is a
 * FAIL, not a stuck test.  At start every descriptor >= 3 is closed with the
 * raw syscall, so descriptor numbers are predictable.
 *
 * Output: "INFO ..." lines and "FAIL: ..." for each failed check.  Exit
 * status 0 on success, 1 on failure, 2 on usage errors.
 *
 * Scenarios (a connection "from the pool" is one the previous cycle left
 * idle; without the shim it is simply a new connection):
 *   cancel_shutdown        thread A blocks in recv on a connection from the
 *                          pool (SLOW request); the main thread cancels it
 *                          with shutdown(SHUT_RDWR).  A must get EOF at once
 *                          and the server must have run the request once.
 *   close_then_file        A blocks in recv (DROP request); the main thread
 *                          closes the fd and opens /dev/null on the same
 *                          number; the server then drops the request.  The
 *                          number must still be /dev/null afterwards.
 *   close_then_socket <n>  A blocks in recv (SLOW); the main thread closes
 *                          the fd, makes a new socket on the same number and
 *                          connects it; A's answer arrives late.  Then the
 *                          new socket and <n> more cycles make requests.
 *   split_write <fin|rst>-<dfl|ign>
 *                          the server closes (FIN) or resets the pooled
 *                          connection while it is idle after the next
 *                          checkout; the program writes its request in two
 *                          write() calls and reads, with SIGPIPE at its
 *                          default or ignored.
 *   nonblock_dead <poll|epoll>
 *                          non-blocking connect onto a connection the server
 *                          resets after 200 ms idle; the program waits
 *                          400 ms, then poll(POLLOUT) or epoll_wait(EPOLLOUT)
 *                          and SO_ERROR, then its request.
 *   signal_close_strict <ms>
 *                          a 1 kHz SIGALRM handler closes the current socket
 *                          if connect() is running on it, while the main
 *                          loop cycles for <ms>; a socket the handler closed
 *                          is never touched again (no double close).
 *                          Afterwards (pool drained: run with a small
 *                          POOLSHIM_IDLE_TIMEOUT) the process must hold the
 *                          descriptors it started with and no ESTABLISHED
 *                          connection to the server (/proc/net/tcp).
 *   nonblock_write_backlog the server resets the pooled connection while
 *                          idle and stops accepting (PAUSE, full listen
 *                          queue: run it with --backlog 0); a non-blocking
 *                          program connects and writes: no call may take
 *                          longer than 200 ms.
 *   split_latency <n>      <n> cycles of socket/connect/write(head)/
 *                          write(rest)/read/close; the average request must
 *                          take under 5 ms.
 */
#include "client_common.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BLOCKED_RECV_TIMEOUT_MS 3000

static int port;

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO: %s",
		strerror(errno));
}

/* The program's COUNT question on a connection of its own. */
static long executions(const char *tok)
{
	char cmd[96], want[96], line[256];
	snprintf(cmd, sizeof cmd, "COUNT %s\n", tok);
	snprintf(want, sizeof want, "CNT %s ", tok);
	int fd = open_conn(port);
	long n = -1;
	if (send_str(fd, cmd) == 0 && read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0 &&
	    strncmp(line, want, strlen(want)) == 0)
		n = strtol(line + strlen(want), NULL, 10);
	else
		fail("COUNT %s: no answer (%s)", tok, strerror(errno));
	close(fd);
	return n;
}

/* Sends cmd on a new connection, reads the answer to tok, closes: the shim
 * pools that connection for the next connect. */
static long pool_one(const char *cmd, const char *tok)
{
	int fd = open_conn(port);
	long id = ask(fd, cmd, tok);
	REQUIRE(id > 0, "%s: setup request failed", tok);
	close(fd);
	return id;
}

/* A socket with a receive timeout, connected: from the pool under the shim. */
static int guarded_conn(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0, "socket: %s", strerror(errno));
	set_rcvtimeo(fd, BLOCKED_RECV_TIMEOUT_MS);
	REQUIRE(connect_to(fd, port) == 0, "connect: %s", strerror(errno));
	return fd;
}

/* ---- a recv blocked in another thread --------------------------------------- */

struct blocked_recv {
	int fd;
	pid_t tid;
	ssize_t ret;
	int err;
	int64_t done_ms;
	char buf[256];
	pthread_t thread;
};

static void *blocked_recv_main(void *arg)
{
	struct blocked_recv *b = arg;
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	b->ret = recv(b->fd, b->buf, sizeof b->buf - 1, 0);
	b->err = errno;
	b->done_ms = now_ms();
	if (b->ret > 0) {
		b->buf[b->ret] = '\0';
		b->buf[strcspn(b->buf, "\n")] = '\0'; /* for the messages */
	}
	return NULL;
}

/* True once the thread sits in the recvfrom syscall (recv is recvfrom on
 * x86-64 and arm64): /proc/self/task/<tid>/syscall starts with its number. */
static bool in_recv(pid_t tid)
{
	char path[64], text[64] = "";
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	ssize_t n = read(f, text, sizeof text - 1);
	close(f);
	if (n <= 0)
		return false;
	text[n] = '\0';
	return atol(text) == SYS_recvfrom;
}

/* Thread A's recv on a connection from the pool: pools a connection, takes
 * it back (guarded_conn), sends cmd on it and returns the fd once A is
 * blocked in recv on it. */
static int start_blocked_recv(struct blocked_recv *b, const char *cmd)
{
	pool_one("REQ pool\n", "pool");
	int fd = guarded_conn();
	REQUIRE(send_str(fd, cmd) == 0, "write: %s", strerror(errno));
	memset(b, 0, sizeof *b);
	b->fd = fd;
	REQUIRE(pthread_create(&b->thread, NULL, blocked_recv_main, b) == 0, "pthread_create");
	bool blocked = false;
	for (int i = 0; i < 200 && !blocked; i++) {
		sleep_ms(5);
		pid_t tid = __atomic_load_n(&b->tid, __ATOMIC_ACQUIRE);
		blocked = tid > 0 && in_recv(tid);
	}
	sleep_ms(20); /* inside the kernel's wait, not on its way there */
	REQUIRE(blocked, "thread A did not block in recv within 1 s");
	return fd;
}

/* Joins thread A; a recv that outlives every timeout ends the program. */
static void join_blocked_recv(struct blocked_recv *b)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 3 * BLOCKED_RECV_TIMEOUT_MS / 1000;
	if (pthread_timedjoin_np(b->thread, NULL, &dl) != 0) {
		fail("thread A's recv has not returned after %d ms", 3 * BLOCKED_RECV_TIMEOUT_MS);
		fflush(stdout);
		_exit(1);
	}
}

/* ---- HAZARDS.md 19: a cancel is not a stale reuse ---------------------------- */

static void sc_cancel_shutdown(void)
{
	struct blocked_recv a;
	int fd = start_blocked_recv(&a, "SLOW c1 600\n");
	int64_t t0 = now_ms();
	CHECK(shutdown(fd, SHUT_RDWR) == 0, "shutdown: %s", strerror(errno));
	join_blocked_recv(&a);
	long took = (long)(a.done_ms - t0);
	info("thread A's recv returned %zd (%s) %ld ms after shutdown", a.ret,
	     a.ret < 0 ? strerror(a.err) : a.ret ? a.buf : "EOF", took);
	CHECK(a.ret == 0, "the cancelled recv returned %zd (%s), not EOF", a.ret,
	      a.ret > 0 ? a.buf : strerror(a.err));
	CHECK(took < 150, "the cancelled recv returned %ld ms after shutdown, not at once", took);
	close(fd);
	long n = executions("c1");
	info("the server ran c1 %ld time(s)", n);
	CHECK(n == 1, "the server ran the cancelled request %ld times", n);
}

/* ---- HAZARDS.md 20: asynchronous paths outlive their record ------------------ */

static void sc_close_then_file(void)
{
	struct stat devnull, st;
	REQUIRE(stat("/dev/null", &devnull) == 0, "stat /dev/null: %s", strerror(errno));
	struct blocked_recv a;
	int fd = start_blocked_recv(&a, "DROP f1 300\n");
	CHECK(close(fd) == 0, "close: %s", strerror(errno));
	int file = open("/dev/null", O_RDWR);
	REQUIRE(file == fd, "/dev/null got fd %d, not the socket's number %d", file, fd);
	join_blocked_recv(&a);
	info("thread A's recv returned %zd (%s)", a.ret, a.ret < 0 ? strerror(a.err) : "EOF");
	CHECK(a.ret == 0, "the recv on the dropped request returned %zd (%s), not EOF", a.ret,
	      a.ret > 0 ? a.buf : strerror(a.err));
	CHECK(fstat(file, &st) == 0, "fstat %d: %s", file, strerror(errno));
	bool same = S_ISCHR(st.st_mode) && st.st_rdev == devnull.st_rdev && st.st_ino == devnull.st_ino;
	info("fd %d: %s", file, same ? "/dev/null" : S_ISSOCK(st.st_mode) ? "a socket" : "something else");
	CHECK(same, "fd %d, the program's /dev/null, is no longer /dev/null (%s)", file,
	      S_ISSOCK(st.st_mode) ? "now a socket" : "mode changed");
	int socks[8];
	int n = list_sockets(socks, 8, NULL);
	CHECK(n == 0, "%d socket(s) open in the program, which closed all of its own (fd %d)", n,
	      n ? socks[0] : -1);
	close(file);
}

static void sc_close_then_socket(long cycles)
{
	struct blocked_recv a;
	int fd = start_blocked_recv(&a, "SLOW s1 300\n");
	CHECK(close(fd) == 0, "close: %s", strerror(errno));
	int fd2 = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd2 == fd, "the new socket got fd %d, not the old number %d", fd2, fd);
	REQUIRE(connect_to(fd2, port) == 0, "connect: %s", strerror(errno));
	join_blocked_recv(&a);
	info("thread A's late recv returned %zd: \"%s\"", a.ret, a.ret > 0 ? a.buf : strerror(a.err));
	CHECK(a.ret > 0 && parse_answer(a.buf, "s1") > 0, "thread A's recv did not return its answer");
	long y = request(fd2, "s2");
	CHECK(y > 0, "request on the new socket failed");
	close(fd2);
	long ok = 0;
	for (long i = 0; i < cycles; i++) {
		char tok[32];
		snprintf(tok, sizeof tok, "s3-%ld", i);
		if (cycle(port, tok) > 0)
			ok++;
	}
	info("%ld of %ld further cycles answered right", ok, cycles);
	CHECK(ok == cycles, "%ld of %ld cycles failed", cycles - ok, cycles);
}

/* ---- HAZARDS.md 21: requests written in several writes ------------------------ */

static void sc_split_write(const char *variant)
{
	bool rst = strncmp(variant, "rst", 3) == 0;
	if (strstr(variant, "ign"))
		signal(SIGPIPE, SIG_IGN);
	pool_one(rst ? "RSTIN p0 200\n" : "FININ p0 200\n", "p0");
	int fd = guarded_conn();
	sleep_ms(400); /* the server ends the idle connection meanwhile */
	int64_t t0 = now_ms();
	ssize_t w1 = write(fd, "REQ ", 4);
	int e1 = errno;
	ssize_t w2 = write(fd, "p1\n", 3);
	int e2 = errno;
	char line[256] = "";
	int r = read_line(fd, line, sizeof line, 3000);
	int e3 = errno;
	long took = (long)(now_ms() - t0);
	info("write 1: %zd (%s), write 2: %zd (%s), read: \"%s\" (%s), %ld ms", w1, w1 < 0 ? strerror(e1) : "ok",
	     w2, w2 < 0 ? strerror(e2) : "ok", line, r < 0 ? strerror(e3) : "ok", took);
	CHECK(w1 == 4, "the first write failed: %s", strerror(e1));
	CHECK(w2 == 3, "the second write failed: %s", strerror(e2));
	CHECK(r >= 0 && parse_answer(line, "p1") > 0, "no answer to the split request: \"%s\" (%s)", line,
	      r < 0 ? strerror(e3) : "wrong answer");
	CHECK(took < 1000, "the split request took %ld ms", took);
	close(fd);
}

/* ---- HAZARDS.md 22: dead before first use, seen through SO_ERROR -------------- */

static void sc_nonblock_dead(const char *how)
{
	bool use_epoll = strcmp(how, "epoll") == 0;
	pool_one("RSTIN n0 200\n", "n0");
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	REQUIRE(fd >= 0, "socket: %s", strerror(errno));
	int r = connect_to(fd, port);
	REQUIRE(r == 0 || errno == EINPROGRESS, "non-blocking connect: %s", strerror(errno));
	int ep = -1;
	if (use_epoll) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
		REQUIRE(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll: %s", strerror(errno));
	}
	sleep_ms(400); /* past the server's 200 ms before the first I/O */
	unsigned events = 0;
	int n;
	if (use_epoll) {
		struct epoll_event ev;
		n = epoll_wait(ep, &ev, 1, 1000);
		events = n == 1 ? ev.events : 0;
	} else {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		n = poll(&p, 1, 1000);
		events = n == 1 ? (unsigned)p.revents : 0;
	}
	int soerr = -1;
	socklen_t len = sizeof soerr;
	CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0, "SO_ERROR: %s", strerror(errno));
	info("%s: %d event(s) 0x%x, SO_ERROR %d (%s)", how, n, events, soerr, strerror(soerr));
	CHECK(n == 1 && (events & POLLOUT), "%s: the connected socket is not writable (%d, 0x%x)", how, n,
	      events);
	CHECK(!(events & (POLLERR | POLLHUP)), "%s reports %s%s on a connect that succeeded", how,
	      events & POLLERR ? "ERR " : "", events & POLLHUP ? "HUP" : "");
	CHECK(soerr == 0, "SO_ERROR is %d (%s) after a connect that succeeded", soerr, strerror(soerr));
	long id = request(fd, "n1");
	CHECK(id > 0, "the request after the connect failed");
	if (ep >= 0)
		close(ep);
	close(fd);
}

/* ---- HAZARDS.md 17: a signal handler closes the program's fd ------------------- */

/* ESTABLISHED TCP sockets in this network namespace whose peer is port:
 * the client ends of connections to the server. */
static int established_to(int p)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	if (!f)
		return -1;
	char line[256];
	int n = 0;
	for (int i = 0; i < 100000 && fgets(line, sizeof line, f); i++) {
		unsigned rport, st;
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2 && (int)rport == p && st == 1)
			n++;
	}
	fclose(f);
	return n;
}

/* Takes fd back from the handler: true if it was still the program's (the
 * handler had not closed it).  Exactly one of the two closes each socket:
 * a program must never close a number twice. */
static bool take_back(int fd, const sigset_t *alrm)
{
	sigset_t old;
	pthread_sigmask(SIG_BLOCK, alrm, &old);
	bool mine = alarm_fd == fd;
	alarm_fd = -1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return mine;
}

static void sc_signal_close_strict(long duration_ms)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	int baseline = count_fds();
	start_alarm(close_alarm_fd, 1000);
	long iterations = 0, ok = 0, mismatches = 0;
	int64_t start = now_ms();
	/* a pooled connect is a short window for the alarm to land in: the
	 * run goes on (three times as long at most) until it has landed there
	 * the ten times checked below */
	for (long i = 0; i < 10000000 &&
			 (now_ms() - start < duration_ms || (alarm_closes < 10 && now_ms() - start < 3 * duration_ms));
	     i++, iterations++) {
		char tok[32], req[48], line[256];
		snprintf(tok, sizeof tok, "sig-%ld", i);
		snprintf(req, sizeof req, "REQ %s\n", tok);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			continue;
		/* the handler may close the socket while connect() (the checkout)
		 * runs; a close in the middle of an answer would only stop pooling */
		alarm_fd = fd;
		int r = connect_to(fd, port);
		if (!take_back(fd, &alrm))
			continue; /* closed by the handler: the number is no longer ours */
		if (r == 0 && send_str(fd, req) == 0 && read_line(fd, line, sizeof line, 1000) >= 0) {
			if (parse_answer(line, tok) > 0)
				ok++;
			else if (++mismatches <= 3)
				info("iteration %ld: wrong answer \"%s\"", i, line);
		}
		close(fd);
	}
	stop_alarm();
	/* everything is closed; the pool drains within POOLSHIM_IDLE_TIMEOUT */
	int fds = count_fds(), est = established_to(port);
	for (int i = 0; i < 20 && (fds != baseline || est != 0); i++) {
		sleep_ms(100);
		fds = count_fds();
		est = established_to(port);
	}
	info("iterations=%ld ok=%ld mismatches=%ld closed by the handler during connect=%ld", iterations, ok,
	     mismatches, (long)alarm_closes);
	info("after the pool drained: %d descriptors open (%d at start), %d ESTABLISHED to the server", fds,
	     baseline, est);
	CHECK(mismatches == 0, "%ld answers belonged to other requests", mismatches);
	CHECK(iterations >= 100 && ok >= 10, "only %ld iterations, %ld answered", iterations, ok);
	CHECK(alarm_closes >= 10, "the handler closed only %ld sockets", (long)alarm_closes);
	CHECK(fds == baseline, "%d descriptors leaked (%d open, %d at start)", fds - baseline, fds, baseline);
	CHECK(est == 0, "%d connection(s) to the server still ESTABLISHED after every socket was closed", est);
}

/* ---- HAZARDS.md 21/22: a non-blocking call blocks in the reconnect ------------- */

#define SLOW_CALL_MS 200

static long slowest_ms;
static const char *slowest_call = "none";

/* Records how long the call that started at t0 took. */
static void timed(const char *call, int64_t t0)
{
	long ms = (long)(now_ms() - t0);
	if (ms > slowest_ms) {
		slowest_ms = ms;
		slowest_call = call;
	}
	if (ms >= SLOW_CALL_MS)
		fail("%s took %ld ms on a non-blocking socket", call, ms);
}

/* Fills the server's listen queue (the server is paused) with untracked
 * raw-syscall connections, until one no longer completes: later SYNs are
 * dropped.  Returns how many descriptors it opened in fill[]. */
static int fill_backlog(int *fill, int max)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int n = 0;
	while (n < max) {
		int s = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		REQUIRE(s >= 0, "socket: %s", strerror(errno));
		fill[n++] = s;
		syscall(SYS_connect, s, &a, sizeof a);
		struct pollfd p = { .fd = s, .events = POLLOUT };
		if (poll(&p, 1, 100) == 0)
			return n; /* its SYN was dropped: the queue is full */
	}
	fail("the listen queue did not fill with %d connections", max);
	return n;
}

static void sc_nonblock_write_backlog(void)
{
	char line[64];
	int ctl = open_conn(port);
	pool_one("RSTIN b0 400\n", "b0");
	REQUIRE(send_str(ctl, "PAUSE 2000\n") == 0 && read_line(ctl, line, sizeof line, IO_TIMEOUT_MS) >= 0 &&
			strcmp(line, "OK") == 0,
		"PAUSE: no OK from the server");
	int fill[16];
	int n_fill = fill_backlog(fill, 16);
	info("listen queue full after %d connections", n_fill);

	int64_t t0 = now_ms();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	REQUIRE(fd >= 0, "socket: %s", strerror(errno));
	int r = connect_to(fd, port);
	int err = errno;
	timed("connect()", t0);
	info("connect: %d (%s)", r, r < 0 ? strerror(err) : "ok");
	CHECK(r == 0 || err == EINPROGRESS, "non-blocking connect: %s", strerror(err));
	sleep_ms(600); /* the server resets the idle connection meanwhile */
	t0 = now_ms();
	ssize_t w = write(fd, "REQ b1\n", 7);
	err = errno;
	timed("write()", t0);
	info("write: %zd (%s)", w, w < 0 ? strerror(err) : "ok");
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	t0 = now_ms();
	int pr = poll(&p, 1, 50);
	timed("poll(50 ms)", t0);
	char buf[64];
	t0 = now_ms();
	ssize_t rd = read(fd, buf, sizeof buf);
	err = errno;
	timed("read()", t0);
	info("poll: %d (0x%x), read: %zd (%s); slowest call: %s, %ld ms", pr, p.revents, rd,
	     rd < 0 ? strerror(err) : "ok", slowest_call, slowest_ms);
	t0 = now_ms();
	close(fd);
	timed("close()", t0);
	for (int i = 0; i < n_fill; i++)
		syscall(SYS_close, fill[i]);
	close(ctl);
}

/* ---- HAZARDS.md 21: split writes on a reused connection ------------------------ */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sc_split_latency(long n)
{
	int64_t total_us = 0, worst_us = 0;
	long ok = 0;
	for (long i = 0; i < n; i++) {
		char tok[32], rest[40], line[256];
		snprintf(tok, sizeof tok, "l%ld", i);
		snprintf(rest, sizeof rest, "%s\n", tok);
		int fd = open_conn(port);
		int64_t t0 = now_us();
		bool sent = send_str(fd, "REQ ") == 0 && send_str(fd, rest) == 0;
		if (sent && read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0 && parse_answer(line, tok) > 0)
			ok++;
		int64_t us = now_us() - t0;
		total_us += us;
		if (us > worst_us)
			worst_us = us;
		close(fd);
	}
	double avg_ms = n ? (double)total_us / (double)n / 1000.0 : 0;
	info("%ld split-write requests: %ld answered, average %.2f ms, worst %.2f ms", n, ok, avg_ms,
	     (double)worst_us / 1000.0);
	CHECK(ok == n, "%ld of %ld split-write requests failed", n - ok, n);
	CHECK(avg_ms < 5.0, "split-write requests took %.2f ms on average (worst %.2f ms)", avg_ms,
	      (double)worst_us / 1000.0);
}

/* ---- main --------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: hazard_client <scenario> <port> [<arg>]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *name = argv[1];
	port = atoi(argv[2]);
	const char *arg = argc > 3 ? argv[3] : NULL;
	if (port <= 0)
		usage();
	close_inherited_fds();

	if (strcmp(name, "cancel_shutdown") == 0)
		sc_cancel_shutdown();
	else if (strcmp(name, "close_then_file") == 0)
		sc_close_then_file();
	else if (strcmp(name, "close_then_socket") == 0)
		sc_close_then_socket(arg ? atol(arg) : 20);
	else if (strcmp(name, "split_write") == 0 && arg)
		sc_split_write(arg);
	else if (strcmp(name, "nonblock_dead") == 0 && arg)
		sc_nonblock_dead(arg);
	else if (strcmp(name, "signal_close_strict") == 0)
		sc_signal_close_strict(arg ? atol(arg) : 3000);
	else if (strcmp(name, "nonblock_write_backlog") == 0)
		sc_nonblock_write_backlog();
	else if (strcmp(name, "split_latency") == 0)
		sc_split_latency(arg ? atol(arg) : 30);
	else
		usage();
	fflush(stdout);
	return failures ? 1 : 0;
}
