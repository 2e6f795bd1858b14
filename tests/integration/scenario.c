/*
 * scenario - small socket programs for the poolshim integration tests.
 *
 * Usage: scenario [--no-reuse-check] <name> <port>
 *
 * Talks to echo_server (echo mode) on 127.0.0.1:<port>.  Every request is
 * "REQ <token>\n" and its answer "RSP <token> <connid>"; equal connids
 * prove that two cycles ran over the same TCP connection, i.e. that the
 * shim handed a pooled connection back.  --no-reuse-check skips the
 * assertions that need pooling (connid equality), so a scenario can run
 * without the shim as a control; assertions that hold either way (connid
 * inequality, flags, options, EISCONN) are always made.
 *
 * Scenarios:
 *   flags                   O_NONBLOCK / FD_CLOEXEC carried to a reused
 *                           connection and not leaked to the next user
 *   options                 socket options of one user invisible to the next
 *   bind                    bind() before connect: pooled under the bound key,
 *                           not handed to an unbound socket
 *   raw_close_fd_reuse      syscall(SYS_close) behind the shim's back, a file
 *                           takes the fd number: close() must really close it
 *   second_connect_eisconn  a second connect() fails with EISCONN
 *   reaper_idle             one pooled cycle, then 2.5 s without any call:
 *                           with POOLSHIM_IDLE_TIMEOUT=1 no socket may be left
 *
 * Exit status 0 on success; otherwise every failed check is printed on
 * stdout ("FAIL: ...") and the exit status is 1 (2 on usage errors).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 5000

static int port;
static bool reuse_check = true;
static int failures;
static unsigned seq;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	failures++;
}

#define CHECK(cond, ...)                   \
	do {                               \
		if (!(cond))               \
			fail(__VA_ARGS__); \
	} while (0)

/* Fatal: the scenario cannot go on. */
#define REQUIRE(cond, ...)                 \
	do {                               \
		if (!(cond)) {             \
			fail(__VA_ARGS__); \
			exit(1);           \
		}                          \
	} while (0)

static struct sockaddr_in server_addr(void)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int r = poll(&p, 1, IO_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = ETIMEDOUT;
		return r > 0 ? 0 : -1;
	}
}

/*
 * connect() to the echo server; accepts 0, or -1/EINPROGRESS on a
 * non-blocking socket (then polls for POLLOUT and checks SO_ERROR).
 * Returns 0 on success.
 */
static int do_connect(int fd, const char *what)
{
	struct sockaddr_in a = server_addr();
	int r = connect(fd, (struct sockaddr *)&a, sizeof a);
	if (r == 0)
		return 0;
	if (errno != EINPROGRESS) {
		fail("%s: connect: %s", what, strerror(errno));
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !(fl & O_NONBLOCK)) {
		fail("%s: connect returned EINPROGRESS on a blocking socket", what);
		return -1;
	}
	if (wait_fd(fd, POLLOUT) < 0) {
		fail("%s: poll(POLLOUT) after EINPROGRESS: %s", what, strerror(errno));
		return -1;
	}
	int err = -1;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		fail("%s: SO_ERROR after EINPROGRESS: %s", what, strerror(err > 0 ? err : errno));
		return -1;
	}
	return 0;
}

/*
 * One request on fd; works for blocking and non-blocking sockets.
 * Returns the connid from the answer, or -1 (after printing why).
 */
static long request(int fd, const char *what)
{
	char token[64], req[96], line[256];
	snprintf(token, sizeof token, "%d-%u", (int)getpid(), ++seq);
	int n = snprintf(req, sizeof req, "REQ %s\n", token);
	int off = 0;
	while (off < n) {
		ssize_t w = write(fd, req + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT) < 0) {
				fail("%s: poll(POLLOUT): %s", what, strerror(errno));
				return -1;
			}
			continue;
		}
		if (w <= 0) {
			fail("%s: write: %s", what, w < 0 ? strerror(errno) : "wrote 0");
			return -1;
		}
		off += (int)w;
	}
	size_t len = 0;
	for (;;) {
		if (wait_fd(fd, POLLIN) < 0) {
			fail("%s: poll(POLLIN): %s", what, strerror(errno));
			return -1;
		}
		ssize_t r = read(fd, line + len, sizeof line - 1 - len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0) {
			fail("%s: read: %s", what, strerror(errno));
			return -1;
		}
		if (r == 0) {
			fail("%s: read: EOF before the answer", what);
			return -1;
		}
		len += (size_t)r;
		line[len] = '\0';
		if (strchr(line, '\n'))
			break;
		if (len >= sizeof line - 1) {
			fail("%s: answer too long", what);
			return -1;
		}
	}
	char prefix[96];
	snprintf(prefix, sizeof prefix, "RSP %s ", token);
	if (strncmp(line, prefix, strlen(prefix)) != 0) {
		*strchr(line, '\n') = '\0';
		fail("%s: answer '%s' does not match request '%s'", what, line, token);
		return -1;
	}
	char *end;
	long id = strtol(line + strlen(prefix), &end, 10);
	if (id <= 0 || *end != '\n') {
		*strchr(line, '\n') = '\0';
		fail("%s: bad connid in answer '%s'", what, line);
		return -1;
	}
	return id;
}

static int new_socket(int type_flags, const char *what)
{
	int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
	REQUIRE(fd >= 0, "%s: socket: %s", what, strerror(errno));
	return fd;
}

static void do_close(int fd, const char *what)
{
	if (close(fd) != 0)
		fail("%s: close: %s", what, strerror(errno));
}

/* plain cycle: socket, connect, request, close */
static long cycle(const char *what)
{
	int fd = new_socket(0, what);
	long id = -1;
	if (do_connect(fd, what) == 0)
		id = request(fd, what);
	do_close(fd, what);
	return id;
}

static void expect_same(long a, long b, const char *what)
{
	if (reuse_check)
		CHECK(a > 0 && a == b, "%s: connid %ld, expected %ld (the pooled connection was not reused)", what, b,
		      a);
}

/* ---- flags -------------------------------------------------------------- */

static void check_flags(int fd, bool nonblock, bool cloexec, const char *what)
{
	int fl = fcntl(fd, F_GETFL);
	int fdfl = fcntl(fd, F_GETFD);
	if (fl < 0 || fdfl < 0) {
		fail("%s: fcntl: %s", what, strerror(errno));
		return;
	}
	CHECK(!!(fl & O_NONBLOCK) == nonblock, "%s: O_NONBLOCK is %s, expected %s", what,
	      (fl & O_NONBLOCK) ? "set" : "clear", nonblock ? "set" : "clear");
	CHECK(!!(fdfl & FD_CLOEXEC) == cloexec, "%s: FD_CLOEXEC is %s, expected %s", what,
	      (fdfl & FD_CLOEXEC) ? "set" : "clear", cloexec ? "set" : "clear");
}

static void scenario_flags(void)
{
	long c1 = cycle("cycle 1 (blocking)");
	REQUIRE(c1 > 0, "cycle 1 failed");

	const char *w2 = "cycle 2 (SOCK_NONBLOCK|SOCK_CLOEXEC)";
	int fd = new_socket(SOCK_NONBLOCK | SOCK_CLOEXEC, w2);
	if (do_connect(fd, w2) == 0) {
		check_flags(fd, true, true, w2);
		long c2 = request(fd, w2);
		expect_same(c1, c2, w2);
		check_flags(fd, true, true, w2);
	}
	do_close(fd, w2);

	const char *w3 = "cycle 3 (blocking)";
	fd = new_socket(0, w3);
	if (do_connect(fd, w3) == 0) {
		check_flags(fd, false, false, w3);
		long c3 = request(fd, w3);
		expect_same(c1, c3, w3);
	}
	do_close(fd, w3);
}

/* ---- options -------------------------------------------------------------- */

static int get_int(int fd, int level, int opt, const char *name, const char *what)
{
	int v = -1;
	socklen_t len = sizeof v;
	if (getsockopt(fd, level, opt, &v, &len) < 0) {
		fail("%s: getsockopt(%s): %s", what, name, strerror(errno));
		return -1;
	}
	return v;
}

static void set_int(int fd, int level, int opt, int v, const char *name, const char *what)
{
	REQUIRE(setsockopt(fd, level, opt, &v, sizeof v) == 0, "%s: setsockopt(%s): %s", what, name,
		strerror(errno));
}

static long get_rcvtimeo_ms(int fd, const char *what)
{
	struct timeval tv = { -1, -1 };
	socklen_t len = sizeof tv;
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) < 0) {
		fail("%s: getsockopt(SO_RCVTIMEO): %s", what, strerror(errno));
		return -1;
	}
	return (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void check_opts(int fd, int nodelay, long rcvtimeo_ms, int keepalive, const char *what)
{
	int nd = get_int(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", what);
	int ka = get_int(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", what);
	CHECK((nd != 0) == (nodelay != 0), "%s: TCP_NODELAY=%d, expected %d", what, nd, nodelay);
	CHECK((ka != 0) == (keepalive != 0), "%s: SO_KEEPALIVE=%d, expected %d", what, ka, keepalive);
	if (rcvtimeo_ms >= 0) {
		long t = get_rcvtimeo_ms(fd, what);
		CHECK(t == rcvtimeo_ms, "%s: SO_RCVTIMEO=%ld ms, expected %ld ms", what, t, rcvtimeo_ms);
	}
}

static void scenario_options(void)
{
	const char *wa = "user A (TCP_NODELAY=1 SO_RCVTIMEO=3s SO_KEEPALIVE=1)";
	int fd = new_socket(0, wa);
	set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY", wa);
	struct timeval tv = { 3, 0 };
	REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "%s: setsockopt(SO_RCVTIMEO): %s", wa,
		strerror(errno));
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE", wa);
	long ca = -1;
	if (do_connect(fd, wa) == 0) {
		check_opts(fd, 1, 3000, 1, wa);
		ca = request(fd, wa);
	}
	do_close(fd, wa);
	REQUIRE(ca > 0, "user A failed");

	const char *wb = "user B (no options)";
	fd = new_socket(0, wb);
	if (do_connect(fd, wb) == 0) {
		check_opts(fd, 0, 0, 0, wb);
		long cb = request(fd, wb);
		expect_same(ca, cb, wb);
		check_opts(fd, 0, 0, 0, "user B after its request");
	}
	do_close(fd, wb);

	const char *wc = "user C (SO_KEEPALIVE=1 only)";
	fd = new_socket(0, wc);
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE", wc);
	if (do_connect(fd, wc) == 0) {
		check_opts(fd, 0, 0, 1, wc);
		long cc = request(fd, wc);
		expect_same(ca, cc, wc);
	}
	do_close(fd, wc);
}

/* ---- bind ------------------------------------------------------------------ */

static void check_local(int fd, const char *want, const char *what)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		fail("%s: getsockname: %s", what, strerror(errno));
		return;
	}
	char got[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &a.sin_addr, got, sizeof got);
	CHECK(a.sin_family == AF_INET && strcmp(got, want) == 0, "%s: local address %s, expected %s", what, got,
	      want);
	CHECK(a.sin_port != 0, "%s: local port is 0 after connect", what);
}

static long bound_cycle(const char *what)
{
	int fd = new_socket(0, what);
	struct sockaddr_in b;
	memset(&b, 0, sizeof b);
	b.sin_family = AF_INET;
	b.sin_port = 0;
	inet_pton(AF_INET, "127.0.0.2", &b.sin_addr);
	REQUIRE(bind(fd, (struct sockaddr *)&b, sizeof b) == 0, "%s: bind 127.0.0.2:0: %s", what, strerror(errno));
	long id = -1;
	if (do_connect(fd, what) == 0) {
		check_local(fd, "127.0.0.2", what);
		id = request(fd, what);
		check_local(fd, "127.0.0.2", what);
	}
	do_close(fd, what);
	return id;
}

static void scenario_bind(void)
{
	long c1 = bound_cycle("bound cycle 1");
	REQUIRE(c1 > 0, "bound cycle 1 failed");
	long c2 = bound_cycle("bound cycle 2");
	expect_same(c1, c2, "bound cycle 2");
	long c3 = bound_cycle("bound cycle 3");
	expect_same(c1, c3, "bound cycle 3");

	const char *wu = "unbound cycle";
	int fd = new_socket(0, wu);
	if (do_connect(fd, wu) == 0) {
		check_local(fd, "127.0.0.1", wu);
		long cu = request(fd, wu);
		CHECK(cu > 0 && cu != c1,
		      "%s: got connid %ld, the connection bound to 127.0.0.2 (a different key) was handed to an unbound socket",
		      wu, cu);
	}
	do_close(fd, wu);
}

/* ---- raw close, fd number reused by a file ---------------------------------- */

/* Returns an fd of this process that refers to path, or -1. */
static int fd_open_on(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		fail("opendir /proc/self/fd: %s", strerror(errno));
		return -1;
	}
	int found = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char link[300], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/*
 * One round: a connected socket on a fresh fd is closed with
 * syscall(SYS_close) (the shim still has its record), a temp file takes the
 * same number, "hello" is written (and with read_back, read back so that the
 * last I/O on the fd is a read, as on a poolable connection), then close()
 * through libc must really close the file.  Returns the socket's connid.
 */
static long raw_close_round(bool read_back)
{
	const char *w1 = read_back ? "round 2 (file read back before close)" : "round 1";
	int fd = new_socket(0, w1);
	long c1 = -1;
	if (do_connect(fd, w1) == 0)
		c1 = request(fd, w1);
	REQUIRE(c1 > 0, "%s: request on the socket failed", w1);
	REQUIRE(syscall(SYS_close, fd) == 0, "%s: syscall(SYS_close, %d): %s", w1, fd, strerror(errno));

	char path[] = "/tmp/poolshim-scenario-XXXXXX";
	int file = mkstemp(path);
	REQUIRE(file >= 0, "mkstemp: %s", strerror(errno));
	if (file != fd) {
		fail("%s: the temp file got fd %d, not the socket's old number %d (scenario precondition)", w1, file, fd);
		unlink(path);
		exit(1);
	}
	ssize_t w = write(file, "hello", 5);
	CHECK(w == 5, "%s: write to the file on fd %d: %zd (%s)", w1, file, w, w < 0 ? strerror(errno) : "short");
	if (read_back) {
		char back[8] = "";
		CHECK(lseek(file, 0, SEEK_SET) == 0, "%s: lseek: %s", w1, strerror(errno));
		ssize_t n = read(file, back, sizeof back);
		CHECK(n == 5 && memcmp(back, "hello", 5) == 0, "%s: read back %zd bytes from the file", w1, n);
	}
	int r = close(file);
	int close_errno = errno;
	CHECK(r == 0, "%s: close(%d) of the file: %s", w1, file, strerror(close_errno));
	errno = 0;
	int fl = fcntl(file, F_GETFD);
	CHECK(fl == -1 && errno == EBADF,
	      "%s: fd %d is still open after close() (fcntl F_GETFD=%d, errno=%s): the shim did not really close the file",
	      w1, file, fl, strerror(errno));
	if (fl >= 0)
		syscall(SYS_close, file);
	/* no descriptor at all (a hidden duplicate, say) may keep the file open */
	int other = fd_open_on(path);
	CHECK(other < 0, "%s: after close(%d) the file is still open on fd %d: it was not really closed", w1, file,
	      other);

	char buf[64] = "";
	int rd = open(path, O_RDONLY | O_CLOEXEC);
	if (rd < 0) {
		fail("%s: reopen %s: %s", w1, path, strerror(errno));
	} else {
		ssize_t n = read(rd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		CHECK(n == 5 && memcmp(buf, "hello", 5) == 0, "%s: file contents '%s' (%zd bytes), expected 'hello'", w1,
		      buf, n);
		close(rd);
	}
	unlink(path);
	return c1;
}

static void scenario_raw_close_fd_reuse(void)
{
	long c1 = raw_close_round(false);
	long c2 = cycle("new cycle after the raw close");
	CHECK(c2 > 0 && c2 != c1,
	      "new cycle after the raw close: connid %ld, expected a new connection (the old one, %ld, was closed)", c2,
	      c1);
	/* c2's connection is pooled now; round 2 takes it or makes another */
	long c3 = raw_close_round(true);
	long c4 = cycle("new cycle after the second raw close");
	CHECK(c4 > 0 && c4 != c3 && c4 != c1,
	      "new cycle after the second raw close: connid %ld, expected a new connection (closed ones: %ld, %ld)", c4,
	      c1, c3);
}

/* ---- second connect --------------------------------------------------------- */

static void second_connect(int fd, const char *what)
{
	struct sockaddr_in a = server_addr();
	errno = 0;
	int r = connect(fd, (struct sockaddr *)&a, sizeof a);
	int e = errno;
	CHECK(r == -1 && e == EISCONN, "%s: second connect returned %d (%s), expected -1/EISCONN", what, r,
	      r == 0 ? "success" : strerror(e));
}

static void scenario_second_connect_eisconn(void)
{
	/* fresh connection (pool empty) */
	const char *w1 = "fresh connection";
	int fd = new_socket(0, w1);
	REQUIRE(do_connect(fd, w1) == 0, "%s: connect failed", w1);
	second_connect(fd, w1);
	long c0 = request(fd, w1);
	CHECK(c0 > 0, "%s: request after the second connect failed", w1);
	do_close(fd, w1);

	/* two connections at once, both closed: the pool may hold two */
	int a = new_socket(0, "pair a"), b = new_socket(0, "pair b");
	REQUIRE(do_connect(a, "pair a") == 0 && do_connect(b, "pair b") == 0, "pair: connect failed");
	long ca = request(a, "pair a"), cb = request(b, "pair b");
	REQUIRE(ca > 0 && cb > 0 && ca != cb, "pair: requests failed (connids %ld %ld)", ca, cb);
	do_close(a, "pair a");
	do_close(b, "pair b");

	/* checkout, then connect again: EISCONN, never a second checkout */
	const char *w2 = "pooled connection";
	fd = new_socket(0, w2);
	REQUIRE(do_connect(fd, w2) == 0, "%s: connect failed", w2);
	second_connect(fd, w2);
	second_connect(fd, "pooled connection, third connect");
	long c1 = request(fd, w2);
	CHECK(c1 > 0, "%s: request after the second connect failed", w2);
	if (reuse_check)
		CHECK(c1 == ca || c1 == cb, "%s: connid %ld, expected one of the pooled %ld, %ld", w2, c1, ca, cb);

	/* the other pooled connection is still available to another socket */
	const char *w3 = "other socket while the first is in use";
	int fd2 = new_socket(0, w3);
	if (do_connect(fd2, w3) == 0) {
		long c2 = request(fd2, w3);
		CHECK(c2 > 0 && c2 != c1, "%s: connid %ld, same connection as the socket in use (%ld)", w3, c2, c1);
		if (reuse_check)
			CHECK(c2 == ca || c2 == cb, "%s: connid %ld, expected the other pooled one of %ld, %ld", w3, c2,
			      ca, cb);
	}
	/* the first fd still carries its own connection */
	long c1b = request(fd, "pooled connection, second request");
	CHECK(c1b == c1, "pooled connection, second request: connid %ld, expected %ld", c1b, c1);
	do_close(fd2, w3);
	do_close(fd, w2);
}

/* Sockets open in this process, from /proc/self/fd. */
static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));) {
		char path[PATH_MAX], target[64];
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof target - 1);
		if (len > 0) {
			target[len] = '\0';
			n += strncmp(target, "socket:", 7) == 0;
		}
	}
	closedir(d);
	return n;
}

/* The program goes quiet after one cycle: only the reaper thread can close
 * the idle connection, and it must, within the idle timeout (plus slack). */
static void scenario_reaper_idle(void)
{
	cycle("reaper cycle");
	int pooled = count_sockets();
	struct timespec pause = { 2, 500000000 };
	nanosleep(&pause, NULL);
	int left = count_sockets();
	printf("INFO sockets after the cycle: %d; after 2.5 s without a call: %d\n", pooled, left);
	if (reuse_check && pooled != 1)
		fail("expected the pooled connection after the cycle, found %d socket(s)", pooled);
	if (left != 0)
		fail("%d socket(s) still open after 2.5 s idle: the reaper did not close it", left);
}

/* ---------------------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{ "flags", scenario_flags },
	{ "options", scenario_options },
	{ "bind", scenario_bind },
	{ "raw_close_fd_reuse", scenario_raw_close_fd_reuse },
	{ "second_connect_eisconn", scenario_second_connect_eisconn },
	{ "reaper_idle", scenario_reaper_idle },
};

static void usage(void)
{
	fprintf(stderr, "usage: scenario [--no-reuse-check] <name> <port>\nscenarios:");
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
		fprintf(stderr, " %s", scenarios[i].name);
	fprintf(stderr, "\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && strcmp(argv[i], "--no-reuse-check") == 0) {
		reuse_check = false;
		i++;
	}
	if (argc - i != 2)
		usage();
	const char *name = argv[i];
	port = atoi(argv[i + 1]);
	if (port <= 0 || port > 65535)
		usage();
	for (size_t k = 0; k < sizeof scenarios / sizeof scenarios[0]; k++) {
		if (strcmp(scenarios[k].name, name) == 0) {
			scenarios[k].fn();
			if (failures) {
				printf("scenario %s: %d check(s) failed\n", name, failures);
				return 1;
			}
			printf("scenario %s: ok\n", name);
			return 0;
		}
	}
	usage();
	return 2;
}
