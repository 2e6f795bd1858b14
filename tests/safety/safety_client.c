/*
 * safety_client - small socket programs for the poolshim safety suite.
 *
 * Usage: safety_client [--no-reuse-check] <scenario> <port> [<port2>]
 *
 * Talks to echo_server (or safety_server) on 127.0.0.1.  Every request is
 * "REQ <token>\n" and its answer "RSP <token> <connid>" (connid: the
 * server's sequence number of the TCP connection), so a wrong answer and a
 * reused connection are both visible.  --no-reuse-check skips the checks
 * that need pooling (a connid equal to an earlier one), so a scenario can
 * also run without the shim; every other check holds either way.
 *
 * At start every descriptor >= 3 is closed with the raw syscall (the test
 * runner's own descriptors must not show up in fd listings or counts).
 *
 * Output: "INFO ..." lines and "FAIL: ..." for each failed check.  Exit
 * status 0 on success, 1 on failure, 2 on usage errors.
 *
 * Scenarios (the hazard each one exercises is named in the safety suite):
 *   split_tail [--no-sleep]  against echo_server --mode split
 *   last_write               against safety_server (SLOW)
 *   unread, shutdown, dup, dup2_onto_tracked, fcntl_dupfd, fdopen,
 *   scm_rights               one user leaves a connection that must not be
 *                            pooled; the next user must get a new one
 *   stale_retry, stale_retry_epipe   against safety_server (RSTIN)
 *   exec_no_hidden, fork_child, vfork, posix_spawn, raw_clone, _Fork
 *   close_range_syscall, close_range_libc, closefrom, dup2_onto_hidden,
 *   raw_close_file, raw_close_socketpair
 *   epoll_before_connect, epoll_no_stale (port2: echo_server --mode split)
 *   raw_close_reused         raw close of a connection that came from the pool
 *   fd_pressure              lowers RLIMIT_NOFILE to 100
 *   fd_pressure_active       same, with a connection from the pool in use
 *   signal_close             a 100 us SIGALRM whose handler closes the
 *                            tracked socket, for about 2 s
 */
#include "client_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int port, port2;
static bool reuse_check = true;

/* A file opened with open(2) (so through the shim's open hook). */
static int tmp_file(void)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	if (fd < 0)
		fd = memfd_create("safety", 0);
	REQUIRE(fd >= 0, "temporary file: %s", strerror(errno));
	return fd;
}

static void file_put(int fd, const char *s)
{
	REQUIRE(pwrite(fd, s, strlen(s), 0) == (ssize_t)strlen(s), "pwrite fd %d: %s", fd,
		strerror(errno));
}

static bool file_has(int fd, const char *s)
{
	char buf[128];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strcmp(buf, s) == 0;
}

static int wait_child(pid_t pid)
{
	int st = 0;
	/* bounded: the children make a few loopback requests with timeouts */
	for (int i = 0; i < 3000; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -2;
}

/* ---- protocol safety ---------------------------------------------------- */

/* echo_server --mode split: "RSP tok id part1" now, "tail tok" later.  Each
 * user reads only the first line and closes. */
static void sc_split_tail(bool sleep_between)
{
	char line[256];
	int fd = open_conn(port);
	REQUIRE(send_str(fd, "REQ u1\n") == 0, "u1 write: %s", strerror(errno));
	REQUIRE(read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0, "u1 read: %s", strerror(errno));
	REQUIRE(parse_answer(line, "u1") > 0, "u1 answer \"%s\"", line);
	close(fd);
	if (sleep_between)
		sleep_ms(300); /* the tail arrives on the idle connection */
	int wrong = 0;
	for (int u = 2; u <= 10; u++) {
		char tok[16], req[32];
		snprintf(tok, sizeof tok, "u%d", u);
		snprintf(req, sizeof req, "REQ %s\n", tok);
		fd = open_conn(port);
		if (send_str(fd, req) < 0 || read_line(fd, line, sizeof line, IO_TIMEOUT_MS) < 0) {
			fail("user %d: I/O error: %s", u, strerror(errno));
		} else if (parse_answer(line, tok) < 0) {
			wrong++;
			info("user %d got \"%s\"", u, line);
		} else {
			info("user %d got its answer: \"%s\"", u, line);
		}
		close(fd);
	}
	info("wrong_answers=%d", wrong);
	CHECK(wrong == 0, "%d of 9 users got an answer that was not theirs", wrong);
}

/* safety_server: user 1 writes a slow request and closes without reading. */
static void sc_last_write(void)
{
	int fd = open_conn(port);
	REQUIRE(send_str(fd, "SLOW w1 200\n") == 0, "w1 write: %s", strerror(errno));
	close(fd);
	fd = open_conn(port);
	long id = request(fd, "w2");
	close(fd);
	info("user 2 connid=%ld (user 1 was connid 1)", id);
	CHECK(id != 1, "user 2 was handed user 1's connection");
}

/* Two requests, one answer read; the second answer waits unread at close. */
static void sc_unread(void)
{
	char line[256];
	int fd = open_conn(port);
	REQUIRE(send_str(fd, "REQ a1\nREQ a2\n") == 0, "write: %s", strerror(errno));
	REQUIRE(read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0, "read: %s", strerror(errno));
	long x = parse_answer(line, "a1");
	REQUIRE(x > 0, "answer \"%s\"", line);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	REQUIRE(poll(&p, 1, 2000) == 1, "second answer did not arrive");
	close(fd);
	fd = open_conn(port);
	long y = request(fd, "b");
	close(fd);
	info("user 1 connid=%ld, user 2 connid=%ld", x, y);
	CHECK(y != x, "user 2 was handed the connection with unread bytes (connid %ld)", x);
}

static int send_fd(int sock, int fd)
{
	char data = 'F';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof u.buf };
	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	return fd;
}

/* User 1 makes a request, then does `what` with its socket; user 2 must
 * get a new connection. */
static void sc_not_pooled(const char *what)
{
	int fd = open_conn(port);
	long x = request(fd, "n1");
	REQUIRE(x > 0, "user 1 request failed");
	int extra = -1, sp[2] = { -1, -1 };
	if (strcmp(what, "shutdown") == 0) {
		CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
		CHECK(close(fd) == 0, "close: %s", strerror(errno));
	} else if (strcmp(what, "dup") == 0) {
		int d = dup(fd);
		REQUIRE(d >= 0, "dup: %s", strerror(errno));
		CHECK(close(fd) == 0, "close: %s", strerror(errno));
		CHECK(close(d) == 0, "close dup: %s", strerror(errno));
	} else if (strcmp(what, "fcntl_dupfd") == 0) {
		int d = fcntl(fd, F_DUPFD, 0);
		REQUIRE(d >= 0, "F_DUPFD: %s", strerror(errno));
		CHECK(close(fd) == 0, "close: %s", strerror(errno));
		CHECK(close(d) == 0, "close dup: %s", strerror(errno));
	} else if (strcmp(what, "scm_rights") == 0) {
		REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
		REQUIRE(send_fd(sp[0], fd) == 0, "sendmsg SCM_RIGHTS: %s", strerror(errno));
		CHECK(close(fd) == 0, "close: %s", strerror(errno));
		extra = recv_fd(sp[1]); /* the other reference, held until the end */
		CHECK(extra >= 0, "recvmsg SCM_RIGHTS: %s", strerror(errno));
	} else if (strcmp(what, "dup2_onto_tracked") == 0) {
		int f = tmp_file();
		REQUIRE(dup2(f, fd) == fd, "dup2: %s", strerror(errno));
		close(f);
		/* fd is the file now; write, then read it back (last I/O a read) */
		REQUIRE(write(fd, "file-data\n", 10) == 10, "write to file: %s", strerror(errno));
		REQUIRE(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
		char buf[32] = { 0 };
		CHECK(read(fd, buf, sizeof buf - 1) == 10 && strcmp(buf, "file-data\n") == 0,
		      "file at fd %d reads back \"%s\"", fd, buf);
		CHECK(close(fd) == 0, "close file: %s", strerror(errno));
		CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "fd %d still open after close", fd);
	} else {
		fail("unknown variant %s", what);
		exit(2);
	}
	int fd2 = open_conn(port);
	long y = request(fd2, "n2");
	close(fd2);
	info("%s: user 1 connid=%ld, user 2 connid=%ld", what, x, y);
	CHECK(y > 0 && y != x, "%s: user 2 was handed user 1's connection (connid %ld)", what, x);
	if (extra >= 0)
		close(extra);
	if (sp[0] >= 0) {
		close(sp[0]);
		close(sp[1]);
	}
}

/* stdio on the socket: (a) fdopen + fclose (glibc closes the fd itself);
 * (b) fdopen, then close(fd) directly. Neither may be pooled. */
static void sc_fdopen(void)
{
	char line[256];
	int fd = open_conn(port);
	FILE *f = fdopen(fd, "r+");
	REQUIRE(f, "fdopen: %s", strerror(errno));
	fprintf(f, "REQ f1\n");
	fflush(f);
	REQUIRE(fgets(line, sizeof line, f), "fgets: %s", strerror(errno));
	long x = parse_answer(line, "f1");
	REQUIRE(x > 0, "answer \"%s\"", line);
	fclose(f);
	fd = open_conn(port);
	long y = request(fd, "f2");
	close(fd);
	info("fdopen+fclose: connid %ld then %ld", x, y);
	CHECK(y > 0 && y != x, "after fdopen+fclose the next user got the same connection %ld", x);

	/* (b): a connection that may come from the pool (user 2's) */
	fd = open_conn(port);
	f = fdopen(fd, "r+");
	REQUIRE(f, "fdopen: %s", strerror(errno));
	fprintf(f, "REQ f3\n");
	fflush(f);
	REQUIRE(fgets(line, sizeof line, f), "fgets: %s", strerror(errno));
	long z = parse_answer(line, "f3");
	REQUIRE(z > 0, "answer \"%s\"", line);
	close(fd); /* the FILE is left alone on purpose (never fclose'd) */
	fd = open_conn(port);
	long w = request(fd, "f4");
	close(fd);
	info("fdopen+close: connid %ld then %ld", z, w);
	CHECK(w > 0 && w != z, "after fdopen+close the next user got the same connection %ld", z);
}

/* safety_server RSTIN: the server resets the idle connection after the
 * next user has checked it out, before that user's first write. */
static void sc_stale_retry(bool consume_error)
{
	char line[256];
	int fd = open_conn(port);
	REQUIRE(send_str(fd, "RSTIN s1 300\n") == 0, "s1 write: %s", strerror(errno));
	REQUIRE(read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0, "s1 read: %s", strerror(errno));
	long x = parse_answer(line, "s1");
	REQUIRE(x > 0, "s1 answer \"%s\"", line);
	close(fd);
	int64_t t0 = now_ms();
	fd = open_conn(port); /* checkout: the connection is healthy now */
	/* wait for the reset where the shim cannot see it (a raw ppoll): the
	 * shim replaces a dead reused connection that poll() shows it, and
	 * this scenario is about the first write meeting the reset */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec three = { 3, 0 };
	int r = (int)syscall(SYS_ppoll, &p, 1, &three, NULL, 0);
	info("reset seen after %lld ms: poll=%d revents=0x%x", (long long)(now_ms() - t0), r, p.revents);
	REQUIRE(r == 1 && (p.revents & (POLLERR | POLLHUP)),
		"the reused connection was not reset within 3 s (not reused?)");
	if (consume_error) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		info("SO_ERROR consumed: %s (the first write now fails with EPIPE)", strerror(err));
	}
	ssize_t n = write(fd, "REQ s2\n", 7);
	int err = errno;
	info("first write on the reset connection returned %zd (%s)", n, n < 0 ? strerror(err) : "ok");
	CHECK(n == 7, "the first write on a connection reset while idle failed: %s", strerror(err));
	if (n == 7) {
		if (read_line(fd, line, sizeof line, IO_TIMEOUT_MS) < 0) {
			fail("s2 read: %s", strerror(errno));
		} else {
			long y = parse_answer(line, "s2");
			info("s1 connid=%ld, s2 answer \"%s\"", x, line);
			CHECK(y > 0 && y != x, "s2 answer \"%s\" (reset connection was %ld)", line, x);
		}
	}
	close(fd);
}

/* ---- processes ---------------------------------------------------------- */

static int run_fdlist(bool use_spawn, char *out, size_t cap)
{
	const char *fdlist = getenv("FDLIST");
	REQUIRE(fdlist && *fdlist, "FDLIST is not set");
	int pfd[2];
	REQUIRE(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	char *argv[] = { (char *)fdlist, NULL };
	pid_t pid;
	fflush(NULL);
	if (use_spawn) {
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
		posix_spawn_file_actions_addclose(&fa, pfd[0]);
		posix_spawn_file_actions_addclose(&fa, pfd[1]);
		int e = posix_spawn(&pid, fdlist, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		REQUIRE(e == 0, "posix_spawn %s: %s", fdlist, strerror(e));
	} else {
		pid = fork();
		REQUIRE(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			dup2(pfd[1], 1);
			close(pfd[0]);
			close(pfd[1]);
			execv(fdlist, argv);
			_exit(127);
		}
	}
	close(pfd[1]);
	size_t len = 0;
	for (int i = 0; i < 1000 && len + 1 < cap; i++) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t n = read(pfd[0], out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	close(pfd[0]);
	CHECK(wait_child(pid) == 0, "fdlist exit status");
	const char *s = strstr(out, "sockets=");
	return s ? atoi(s + 8) : -1;
}

/* fdlist through popen (and so /bin/sh -c): glibc reaches posix_spawn
 * from there without a call any preload can see. */
static int run_fdlist_popen(char *out, size_t cap)
{
	const char *fdlist = getenv("FDLIST");
	REQUIRE(fdlist && *fdlist, "FDLIST is not set");
	fflush(NULL);
	FILE *p = popen(fdlist, "r");
	REQUIRE(p, "popen %s: %s", fdlist, strerror(errno));
	size_t len = fread(out, 1, cap - 1, p);
	out[len] = '\0';
	CHECK(pclose(p) == 0, "fdlist through popen: exit status");
	const char *s = strstr(out, "sockets=");
	return s ? atoi(s + 8) : -1;
}

static void sc_exec_no_hidden(void)
{
	char out[4096];
	long x = cycle(port, "e1");
	int socks[8], total;
	int n = list_sockets(socks, 8, &total);
	info("after one pooled cycle: %d socket fds in this process (hidden: %d)", n, n ? socks[0] : -1);
	if (reuse_check)
		CHECK(n == 1, "expected the pooled connection on one hidden fd, found %d sockets", n);
	int k = run_fdlist(false, out, sizeof out);
	CHECK(k == 0, "fork+exec: the new program inherited %d sockets:\n%s", k, out);
	/* a cycle between the children: each one's wrapper has to do its own
	 * work, not find the last one's close-on-exec still set */
	long between = cycle(port, "e-spawn");
	CHECK(!reuse_check || between == x, "the idle connection was not reused before posix_spawn");
	k = run_fdlist(true, out, sizeof out);
	CHECK(k == 0, "posix_spawn: the new program inherited %d sockets:\n%s", k, out);
	between = cycle(port, "e-popen");
	CHECK(!reuse_check || between == x, "the idle connection was not reused before popen");
	k = run_fdlist_popen(out, sizeof out);
	CHECK(k == 0, "popen: the new program inherited %d sockets:\n%s", k, out);
	long y = cycle(port, "e2");
	info("connid before %ld, after the children %ld", x, y);
	if (reuse_check)
		CHECK(y == x, "the parent's idle connection %ld was not reused (got %ld)", x, y);
}

static int child_cycle(long parent_id)
{
	long y = cycle(port, "child");
	dprintf(1, "INFO child pid %d connid=%ld (parent's idle connection %ld)\n", (int)getpid(), y,
		parent_id);
	return y > 0 && y != parent_id ? 0 : 1;
}

static void sc_fork_like(const char *how)
{
	long x = cycle(port, "k1");
	REQUIRE(x > 0, "k1");
	fflush(NULL);
	pid_t pid;
	if (strcmp(how, "fork") == 0)
		pid = fork();
	else if (strcmp(how, "raw_clone") == 0)
		pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	else
		pid = _Fork();
	REQUIRE(pid >= 0, "%s: %s", how, strerror(errno));
	if (pid == 0)
		_exit(child_cycle(x));
	int st = wait_child(pid);
	CHECK(st == 0, "%s child: exit status %d (it was handed the parent's connection?)", how, st);
	long z = cycle(port, "k2");
	info("%s: parent connid before %ld, after %ld", how, x, z);
	if (reuse_check)
		CHECK(z == x, "%s: the parent's idle connection %ld was not reused (got %ld)", how, x, z);
}

static void sc_vfork(void)
{
	int a = open_conn(port);
	long ida = request(a, "va1");
	int b = open_conn(port);
	long idb = request(b, "vb1");
	REQUIRE(ida > 0 && idb > 0, "setup requests");
	close(b); /* pooled: the parent's idle connection */
	fflush(NULL);
	pid_t pid = vfork();
	if (pid == 0) {
		close(a); /* tracked, active */
		_exit(0);
	}
	REQUIRE(pid > 0, "vfork: %s", strerror(errno));
	CHECK(wait_child(pid) == 0, "vfork child failed");
	long ida2 = request(a, "va2"); /* the parent's fd is still its connection */
	CHECK(ida2 == ida, "after the vfork child closed its copy, fd %d answered as %ld, expected %ld",
	      a, ida2, ida);
	close(a);
	long z = cycle(port, "v3");
	info("vfork: active %ld, idle %ld, next cycle %ld", ida, idb, z);
	if (reuse_check)
		CHECK(z == idb, "the parent's idle connection %ld was not reused (got %ld)", idb, z);
}

static void sc_posix_spawn(void)
{
	long x = cycle(port, "ps1");
	char *argv[] = { "/bin/true", NULL };
	pid_t pid;
	int e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	REQUIRE(e == 0, "posix_spawn /bin/true: %s", strerror(e));
	CHECK(wait_child(pid) == 0, "/bin/true failed");
	long y = cycle(port, "ps2");
	info("posix_spawn: connid before %ld, after %ld", x, y);
	if (reuse_check)
		CHECK(y == x, "the parent's idle connection %ld was not reused (got %ld)", x, y);
}

/* ---- descriptors closed or replaced behind the shim ---------------------- */

static void sc_close_range(const char *how)
{
	int a = open_conn(port), b = open_conn(port);
	long xa = request(a, "cr1"), xb = request(b, "cr2");
	REQUIRE(xa > 0 && xb > 0, "setup requests");
	close(a);
	close(b);
	int hidden[8];
	int n = list_sockets(hidden, 8, NULL);
	info("%s: pooled %ld and %ld; hidden fds:%s%d %d", how, xa, xb, n ? " " : " none ",
	     n > 0 ? hidden[0] : -1, n > 1 ? hidden[1] : -1);
	if (reuse_check)
		REQUIRE(n == 2, "expected 2 hidden pool fds, found %d", n);
	if (strcmp(how, "syscall") == 0)
		REQUIRE(syscall(SYS_close_range, 3u, ~0u, 0) == 0, "SYS_close_range: %s", strerror(errno));
	else if (strcmp(how, "libc") == 0)
		REQUIRE(close_range(3u, ~0u, 0) == 0, "close_range: %s", strerror(errno));
	else
		closefrom(3);
	/* files take the numbers the pool's descriptors had */
	for (int i = 0; i < n; i++) {
		char content[32];
		snprintf(content, sizeof content, "file-at-%d", hidden[i]);
		int f = tmp_file();
		file_put(f, content);
		REQUIRE(syscall(SYS_dup3, f, hidden[i], 0) == hidden[i], "dup3 onto %d: %s", hidden[i],
			strerror(errno));
		syscall(SYS_close, f);
	}
	int fd = open_conn(port);
	long y = request(fd, "cr3");
	close(fd);
	info("%s: next connection %ld", how, y);
	CHECK(y > 0 && y != xa && y != xb, "%s: connect after the pool's fds were closed got connid %ld", how, y);
	for (int i = 0; i < n; i++) {
		char content[32];
		snprintf(content, sizeof content, "file-at-%d", hidden[i]);
		CHECK(fcntl(hidden[i], F_GETFD) >= 0, "file at fd %d was closed: %s", hidden[i], strerror(errno));
		CHECK(file_has(hidden[i], content), "file at fd %d does not read back \"%s\"", hidden[i], content);
		close(hidden[i]);
	}
}

static void sc_dup2_onto_hidden(void)
{
	long x = cycle(port, "dh1");
	int hidden[8];
	int n = list_sockets(hidden, 8, NULL);
	REQUIRE(n == (reuse_check ? 1 : 0), "expected %d hidden pool fd, found %d", reuse_check ? 1 : 0, n);
	if (n == 0)
		return;
	int h = hidden[0];
	int f = tmp_file();
	file_put(f, "file-on-hidden");
	REQUIRE(dup2(f, h) == h, "dup2 onto %d: %s", h, strerror(errno));
	close(f);
	long y = cycle(port, "dh2");
	info("dup2 onto hidden fd %d: connid before %ld, after %ld", h, x, y);
	CHECK(y > 0 && y != x, "the connection at the overwritten fd %d was handed out again", h);
	CHECK(fcntl(h, F_GETFD) >= 0, "file at fd %d was closed: %s", h, strerror(errno));
	CHECK(file_has(h, "file-on-hidden"), "file at fd %d changed", h);
	CHECK(close(h) == 0, "close file: %s", strerror(errno));
	CHECK(fcntl(h, F_GETFD) == -1 && errno == EBADF, "file at fd %d still open after close", h);
}

static void sc_raw_close_file(void)
{
	int fd = open_conn(port);
	long x = request(fd, "rf1");
	REQUIRE(x > 0, "setup request");
	REQUIRE(syscall(SYS_close, fd) == 0, "SYS_close: %s", strerror(errno));
	int f = tmp_file();
	REQUIRE(f == fd, "the file got fd %d, not the socket's number %d", f, fd);
	REQUIRE(write(f, "file-data\n", 10) == 10, "write: %s", strerror(errno));
	REQUIRE(lseek(f, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
	char buf[32] = { 0 };
	CHECK(read(f, buf, sizeof buf - 1) == 10 && strcmp(buf, "file-data\n") == 0, "file reads \"%s\"", buf);
	CHECK(close(f) == 0, "close file: %s", strerror(errno));
	CHECK(fcntl(f, F_GETFD) == -1 && errno == EBADF, "file at fd %d still open after close()", f);
	long y = cycle(port, "rf2");
	info("raw close: connid %ld, next %ld", x, y);
	CHECK(y > 0 && y != x, "next connect got the raw-closed connection %ld", x);
}

static void sc_raw_close_socketpair(void)
{
	int fd = open_conn(port);
	long x = request(fd, "rs1");
	REQUIRE(x > 0, "setup request");
	REQUIRE(syscall(SYS_close, fd) == 0, "SYS_close: %s", strerror(errno));
	int sp[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
	REQUIRE(sp[0] == fd, "socketpair end got fd %d, not the socket's number %d", sp[0], fd);
	CHECK(close(sp[0]) == 0, "close: %s", strerror(errno));
	struct pollfd p = { .fd = sp[1], .events = POLLIN };
	char c;
	CHECK(poll(&p, 1, 2000) == 1 && recv(sp[1], &c, 1, MSG_DONTWAIT) == 0,
	      "the socketpair peer saw no EOF: close(%d) did not really close it", fd);
	long y = cycle(port, "rs2");
	info("raw close + socketpair: connid %ld, next %ld", x, y);
	CHECK(y > 0 && y != x, "next connect got connid %ld (raw-closed was %ld)", y, x);
	close(sp[1]);
}

/* ---- epoll -------------------------------------------------------------- */

static long epoll_request(int ep, int fd, const char *tok)
{
	char req[64], line[256];
	snprintf(req, sizeof req, "REQ %s\n", tok);
	REQUIRE(send_str(fd, req) == 0, "%s write: %s", tok, strerror(errno));
	struct epoll_event ev[4];
	int n = epoll_wait(ep, ev, 4, 2000);
	CHECK(n == 1 && ev[0].data.fd == fd && (ev[0].events & EPOLLIN),
	      "%s: epoll_wait returned %d (fd %d events 0x%x), expected EPOLLIN on fd %d", tok, n,
	      n > 0 ? ev[0].data.fd : -1, n > 0 ? ev[0].events : 0, fd);
	REQUIRE(read_line(fd, line, sizeof line, IO_TIMEOUT_MS) >= 0, "%s read: %s", tok, strerror(errno));
	long id = parse_answer(line, tok);
	CHECK(id > 0, "%s answer \"%s\"", tok, line);
	return id;
}

static int epoll_add(int ep, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void sc_epoll_before_connect(void)
{
	long x = cycle(port, "eb1");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	REQUIRE(ep >= 0, "epoll_create1: %s", strerror(errno));
	int s = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(s >= 0, "socket: %s", strerror(errno));
	REQUIRE(epoll_add(ep, s) == 0, "EPOLL_CTL_ADD before connect: %s", strerror(errno));
	REQUIRE(connect_to(s, port) == 0, "connect: %s", strerror(errno));
	long y = epoll_request(ep, s, "eb2");
	info("registered before connect: connid %ld (pooled one was %ld)", y, x);
	if (reuse_check)
		CHECK(y == x, "the second cycle did not reuse connection %ld (got %ld)", x, y);
	CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL) == 0, "EPOLL_CTL_DEL after reuse: %s", strerror(errno));
	close(s);
	close(ep);
}

static void sc_epoll_no_stale(void)
{
	char line[256];
	struct epoll_event ev[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	REQUIRE(ep >= 0, "epoll_create1: %s", strerror(errno));

	/* A: echo server.  Register, cycle, close: nothing may fire after. */
	int s1 = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(s1 >= 0 && epoll_add(ep, s1) == 0, "ADD: %s", strerror(errno));
	REQUIRE(connect_to(s1, port) == 0, "connect: %s", strerror(errno));
	long x = epoll_request(ep, s1, "en1");
	close(s1);
	int n = epoll_wait(ep, ev, 4, 0);
	CHECK(n == 0, "after close: epoll_wait returned %d (fd %d events 0x%x)", n, n > 0 ? ev[0].data.fd : -1,
	      n > 0 ? ev[0].events : 0);
	int s2 = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(s2 >= 0, "socket: %s", strerror(errno));
	CHECK(epoll_add(ep, s2) == 0, "ADD on the next socket (fd %d): %s", s2, strerror(errno));
	REQUIRE(connect_to(s2, port) == 0, "connect: %s", strerror(errno));
	long y = epoll_request(ep, s2, "en2");
	info("epoll: connid %ld then %ld", x, y);
	if (reuse_check)
		CHECK(y == x, "the second cycle did not reuse connection %ld (got %ld)", x, y);
	CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, s2, NULL) == 0, "DEL after reuse: %s", strerror(errno));
	close(s2);

	/* B: split server.  The tail arrives while the connection is idle. */
	int s3 = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(s3 >= 0 && epoll_add(ep, s3) == 0, "ADD: %s", strerror(errno));
	REQUIRE(connect_to(s3, port2) == 0, "connect split: %s", strerror(errno));
	REQUIRE(send_str(s3, "REQ es\n") == 0, "write: %s", strerror(errno));
	REQUIRE(read_line(s3, line, sizeof line, IO_TIMEOUT_MS) >= 0, "read: %s", strerror(errno));
	close(s3);
	sleep_ms(400);
	n = epoll_wait(ep, ev, 4, 0);
	info("split tail on the idle connection: epoll_wait returned %d", n);
	CHECK(n == 0, "stale event from a closed fd's registration: fd %d events 0x%x",
	      n > 0 ? ev[0].data.fd : -1, n > 0 ? ev[0].events : 0);
	close(ep);
}

/* ---- descriptor pressure ------------------------------------------------- */

static void sc_fd_pressure(void)
{
	const rlim_t limit = 100;
	struct rlimit rl;
	REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	REQUIRE(rl.rlim_max >= limit, "hard limit %lu too low", (unsigned long)rl.rlim_max);
	rl.rlim_cur = limit;
	REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
	long x = cycle(port, "fp1");
	int hidden[8], total;
	int n = list_sockets(hidden, 8, &total);
	info("pooled %ld; open fds %d, of them pool sockets %d (at %d)", x, total, n, n ? hidden[0] : -1);
	if (reuse_check)
		CHECK(n == 1 && hidden[0] < (int)limit, "expected one hidden fd below the limit");
	/* the program's own fds: everything but the pool's */
	int expected = (int)limit - (total - n);
	static int files[200];
	int opened = 0, err = 0;
	for (int i = 0; i < 200; i++) {
		int f = open("/dev/null", O_RDONLY);
		if (f < 0) {
			err = errno;
			break;
		}
		files[opened++] = f;
	}
	info("opened %d files (expected %d, as without the shim), then: %s", opened, expected, strerror(err));
	CHECK(opened == expected, "opened %d files, expected %d", opened, expected);
	CHECK(err == EMFILE, "last open failed with %s, expected EMFILE", strerror(err));
	for (int i = 0; i < opened; i++)
		close(files[i]);
	long y = cycle(port, "fp2");
	info("after the pressure: connid %ld", y);
	if (reuse_check)
		CHECK(y > 0 && y != x, "connection %ld survived the eviction", x);
}


/* A connection that came from the pool, closed with the raw syscall; pipe()
 * (not hooked) takes the number.  Natively the connection is gone: no
 * socket may be left in the process (a copy kept by the shim would keep the
 * connection open, the server would see no close). */
static void sc_raw_close_reused(void)
{
	long x = cycle(port, "rr1");
	int fd = open_conn(port);
	long y = request(fd, "rr2");
	info("raw close of a reused connection: connid %ld then %ld", x, y);
	if (reuse_check)
		CHECK(y == x, "second cycle did not reuse %ld (got %ld)", x, y);
	REQUIRE(syscall(SYS_close, fd) == 0, "SYS_close: %s", strerror(errno));
	int pp[2];
	REQUIRE(pipe(pp) == 0, "pipe: %s", strerror(errno));
	int socks[8];
	int n = list_sockets(socks, 8, NULL);
	info("pipe took fd %d; sockets still open in the process: %d%s", pp[0], n,
	     n ? " (the connection is still open: the server saw no close)" : "");
	CHECK(n == 0, "after the program closed its only connection, %d socket(s) remain open (fd %d)", n,
	      n ? socks[0] : -1);
	close(pp[0]);
	close(pp[1]);
}

/* RLIMIT_NOFILE 100 with a connection in use that came from the pool: the
 * program must be able to open as many files as natively (limit minus the
 * descriptors it holds itself). */
static void sc_fd_pressure_active(void)
{
	const rlim_t limit = 100;
	struct rlimit rl;
	REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	rl.rlim_cur = limit;
	REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
	long x = cycle(port, "fa1");
	int fd = open_conn(port);
	long y = request(fd, "fa2");
	info("connid %ld then %ld (in use)", x, y);
	/* the program holds 0, 1, 2 and fd */
	int expected = (int)limit - 4;
	static int files[200];
	int opened = 0, err = 0;
	for (int i = 0; i < 200; i++) {
		int f = open("/dev/null", O_RDONLY);
		if (f < 0) {
			err = errno;
			break;
		}
		files[opened++] = f;
	}
	for (int i = 0; i < opened; i++)
		close(files[i]);
	int socks[8];
	int n = list_sockets(socks, 8, NULL);
	info("opened %d files (expected %d), then: %s; sockets open: %d", opened, expected, strerror(err), n);
	CHECK(opened == expected, "opened %d files, natively %d", opened, expected);
	close(fd);
}

/* ---- signals ------------------------------------------------------------- */

static void *watchdog(void *arg)
{
	(void)arg;
	sleep_ms(20000);
	dprintf(1, "FAIL: watchdog: still running after 20 s (deadlock in a signal handler?)\n");
	_exit(3);
}

static void sc_signal_close(long duration_ms)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t alrm, old;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, &old);
	pthread_t wd;
	REQUIRE(pthread_create(&wd, NULL, watchdog, NULL) == 0, "pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	int baseline = count_fds();
	start_alarm(close_alarm_fd, 100);
	long iterations = 0, ok = 0, errors = 0, mismatches = 0;
	int samples[64], n_samples = 0;
	int64_t start = now_ms(), next_sample = start + 250;
	for (long i = 0; i < 10000000 && now_ms() - start < duration_ms; i++) {
		char req[64], buf[256];
		int len = snprintf(req, sizeof req, "REQ sig-%ld\n", i);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			errors++;
			continue;
		}
		alarm_fd = fd;
		bool good = false;
		if (connect_to(fd, port) == 0 && write(fd, req, (size_t)len) == len) {
			size_t have = 0;
			int64_t dl = now_ms() + 2000;
			while (have < sizeof buf - 1 && !memchr(buf, '\n', have) && now_ms() < dl) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				int pr = poll(&p, 1, 100);
				if (pr > 0 && (p.revents & POLLNVAL))
					break; /* the handler closed it */
				if (pr <= 0)
					continue;
				ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
				if (n <= 0)
					break;
				have += (size_t)n;
			}
			buf[have] = '\0';
			if (memchr(buf, '\n', have)) {
				char tok[32];
				snprintf(tok, sizeof tok, "sig-%ld", i);
				if (parse_answer(buf, tok) > 0) {
					good = true;
				} else {
					mismatches++;
					if (mismatches <= 3)
						info("iteration %ld: wrong answer \"%s\"", i, buf);
				}
			}
		}
		alarm_fd = -1;
		close(fd);
		iterations++;
		if (good)
			ok++;
		else
			errors++;
		if (now_ms() >= next_sample && n_samples < 64) {
			pthread_sigmask(SIG_BLOCK, &alrm, &old);
			samples[n_samples++] = count_fds();
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			next_sample += 250;
		}
	}
	stop_alarm();
	int final = count_fds();
	int hi = baseline;
	char list[512] = "";
	size_t off_s = 0;
	for (int i = 0; i < n_samples; i++) {
		if (samples[i] > hi)
			hi = samples[i];
		off_s += (size_t)snprintf(list + off_s, off_s < sizeof list ? sizeof list - off_s : 0, " %d",
					  samples[i]);
	}
	info("iterations=%ld ok=%ld errors=%ld mismatches=%ld handler_closes=%ld", iterations, ok, errors,
	     mismatches, (long)alarm_closes);
	info("fd count: baseline=%d samples:%s final=%d", baseline, list, final);
	CHECK(mismatches == 0, "%ld answers belonged to other requests", mismatches);
	CHECK(iterations >= 100, "only %ld iterations", iterations);
	CHECK(alarm_closes >= 10, "the handler closed only %ld sockets", (long)alarm_closes);
	/* the pool holds at most POOLSHIM_MAX_IDLE_PER_HOST (4) idle connections */
	CHECK(hi <= baseline + 4 + 1, "fd count grew to %d (baseline %d)", hi, baseline);
	CHECK(final <= baseline + 4, "final fd count %d (baseline %d)", final, baseline);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: safety_client [--no-reuse-check] <scenario> <port> [<port2>]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && strcmp(argv[i], "--no-reuse-check") == 0) {
		reuse_check = false;
		i++;
	}
	if (argc - i < 2)
		usage();
	const char *name = argv[i];
	port = atoi(argv[i + 1]);
	const char *arg2 = argc - i > 2 ? argv[i + 2] : NULL;
	if (arg2)
		port2 = atoi(arg2);
	if (port <= 0)
		usage();
	close_inherited_fds();

	if (strcmp(name, "split_tail") == 0)
		sc_split_tail(!(arg2 && strcmp(arg2, "--no-sleep") == 0));
	else if (strcmp(name, "last_write") == 0)
		sc_last_write();
	else if (strcmp(name, "unread") == 0)
		sc_unread();
	else if (strcmp(name, "shutdown") == 0 || strcmp(name, "dup") == 0 ||
		 strcmp(name, "fcntl_dupfd") == 0 || strcmp(name, "scm_rights") == 0 ||
		 strcmp(name, "dup2_onto_tracked") == 0)
		sc_not_pooled(name);
	else if (strcmp(name, "fdopen") == 0)
		sc_fdopen();
	else if (strcmp(name, "stale_retry") == 0)
		sc_stale_retry(false);
	else if (strcmp(name, "stale_retry_epipe") == 0)
		sc_stale_retry(true);
	else if (strcmp(name, "exec_no_hidden") == 0)
		sc_exec_no_hidden();
	else if (strcmp(name, "fork_child") == 0)
		sc_fork_like("fork");
	else if (strcmp(name, "raw_clone") == 0)
		sc_fork_like("raw_clone");
	else if (strcmp(name, "_Fork") == 0)
		sc_fork_like("_Fork");
	else if (strcmp(name, "vfork") == 0)
		sc_vfork();
	else if (strcmp(name, "posix_spawn") == 0)
		sc_posix_spawn();
	else if (strcmp(name, "close_range_syscall") == 0)
		sc_close_range("syscall");
	else if (strcmp(name, "close_range_libc") == 0)
		sc_close_range("libc");
	else if (strcmp(name, "closefrom") == 0)
		sc_close_range("closefrom");
	else if (strcmp(name, "dup2_onto_hidden") == 0)
		sc_dup2_onto_hidden();
	else if (strcmp(name, "raw_close_file") == 0)
		sc_raw_close_file();
	else if (strcmp(name, "raw_close_socketpair") == 0)
		sc_raw_close_socketpair();
	else if (strcmp(name, "epoll_before_connect") == 0)
		sc_epoll_before_connect();
	else if (strcmp(name, "epoll_no_stale") == 0)
		sc_epoll_no_stale();
	else if (strcmp(name, "fd_pressure") == 0)
		sc_fd_pressure();
	else if (strcmp(name, "raw_close_reused") == 0)
		sc_raw_close_reused();
	else if (strcmp(name, "fd_pressure_active") == 0)
		sc_fd_pressure_active();
	else if (strcmp(name, "signal_close") == 0)
		sc_signal_close(arg2 ? atol(arg2) : 2000);
	else
		usage();
	fflush(stdout);
	return failures ? 1 : 0;
}
