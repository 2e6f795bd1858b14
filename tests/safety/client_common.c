/* Helpers shared by the safety and hazard clients: see client_common.h. */
#include "client_common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int failures;

void fail(const char *fmt, ...)
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

void info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("INFO ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	for (int i = 0; i < 1000 && nanosleep(&ts, &ts) == -1 && errno == EINTR; i++)
		;
}

/* ---- sockets ------------------------------------------------------------ */

int connect_to(int fd, int p)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return connect(fd, (struct sockaddr *)&a, sizeof a);
}

int open_conn(int p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0, "socket: %s", strerror(errno));
	REQUIRE(connect_to(fd, p) == 0, "connect to port %d: %s", p, strerror(errno));
	return fd;
}

int send_str(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	for (int i = 0; off < len && i < 1000; i++) {
		ssize_t n = write(fd, s + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	return off == len ? 0 : -1;
}

/* Reads one line, one byte per read() so nothing after the '\n' is taken
 * from the socket.  Returns its length (without '\n'), or -1 (errno set;
 * ENODATA for EOF, ETIMEDOUT). */
int read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t len = 0;
	while (len + 1 < cap) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ETIMEDOUT;
			return -1;
		}
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENODATA;
			return -1;
		}
		if (c == '\n') {
			buf[len] = '\0';
			return (int)len;
		}
		buf[len++] = c;
	}
	buf[len] = '\0';
	errno = EMSGSIZE;
	return -1;
}

/* "RSP <tok> <id>[ ...]" -> id; -2 for an answer to another request. */
long parse_answer(const char *line, const char *tok)
{
	char want[96];
	snprintf(want, sizeof want, "RSP %s ", tok);
	if (strncmp(line, want, strlen(want)) != 0)
		return -2;
	return strtol(line + strlen(want), NULL, 10);
}

/* Sends REQ tok and reads the answer: the connid, -1 on an I/O error, -2 on
 * an answer that is not ours (printed). */
long ask(int fd, const char *cmd, const char *tok)
{
	char line[256];
	if (send_str(fd, cmd) < 0) {
		fail("%s: write: %s", tok, strerror(errno));
		return -1;
	}
	if (read_line(fd, line, sizeof line, IO_TIMEOUT_MS) < 0) {
		fail("%s: read: %s", tok, strerror(errno));
		return -1;
	}
	long id = parse_answer(line, tok);
	if (id == -2)
		fail("%s: got someone else's answer: \"%s\"", tok, line);
	return id;
}

long request(int fd, const char *tok)
{
	char req[96];
	snprintf(req, sizeof req, "REQ %s\n", tok);
	return ask(fd, req, tok);
}

/* socket, connect, request, close: the connid. */
long cycle(int p, const char *tok)
{
	int fd = open_conn(p);
	long id = request(fd, tok);
	CHECK(close(fd) == 0, "%s: close: %s", tok, strerror(errno));
	return id;
}

/* Lists open socket descriptors (the pool's hidden ones, when the program
 * holds none itself); returns how many, and the total open count. */
int list_sockets(int *out, int max, int *total)
{
	DIR *d = opendir("/proc/self/fd");
	REQUIRE(d, "opendir /proc/self/fd: %s", strerror(errno));
	int n = 0, all = 0, self = dirfd(d);
	struct dirent *e;
	for (int i = 0; i < MAX_FDS_TO_SCAN && (e = readdir(d)); i++) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		all++;
		/* the kernel's view, through /proc: a parked number (lib/park.h)
		 * is closed to the program's own calls, fstat included */
		char path[64], link[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t ln = readlink(path, link, sizeof link - 1);
		if (ln > 0 && (link[ln] = '\0', strncmp(link, "socket:", 7) == 0) && n < max)
			out[n++] = fd;
	}
	closedir(d);
	if (total)
		*total = all;
	return n;
}

int count_fds(void)
{
	int dummy[1], total;
	list_sockets(dummy, 0, &total);
	return total;
}

void close_inherited_fds(void)
{
	for (int fd = 3; fd < 1024; fd++)
		syscall(SYS_close, fd);
}

volatile sig_atomic_t alarm_fd = -1;
volatile sig_atomic_t alarm_closes;

void close_alarm_fd(int sig)
{
	(void)sig;
	int saved = errno;
	int fd = alarm_fd;
	if (fd >= 0) {
		alarm_fd = -1;
		close(fd);
		alarm_closes++;
	}
	errno = saved;
}

void start_alarm(void (*handler)(int), long interval_us)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_interval = { 0, interval_us }, .it_value = { 0, interval_us } };
	REQUIRE(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer: %s", strerror(errno));
}

void stop_alarm(void)
{
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
}
