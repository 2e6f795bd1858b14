/*
 * safety_server - loopback line server with the misbehaviours the safety and
 * hazard suites need and echo_server does not have.  Command line and output
 * are those of echo_server, so the integration harness can start it in its
 * place (it_server_start reads the ECHO_SERVER path each time):
 *
 *   safety_server [--max-seconds N] [--backlog N]
 *
 * Binds 127.0.0.1 on an ephemeral port, listens with a backlog of N
 * (default 128; 1 lets a client fill the accept queue with two connections
 * while the server pauses, so that further SYNs are dropped), prints
 * "PORT <n>\n", serves until SIGTERM/SIGINT or --max-seconds (default 120),
 * then prints "accepted=<A> requests=<R>\n" and exits 0.  One thread per
 * connection.
 *
 * Protocol (connid: 1-based sequence number of the accepted connection;
 * <ms>: 0..5000 for SLOW and DROP, 1..5000 for RSTIN and FININ):
 *   "REQ <tok>\n"         -> "RSP <tok> <connid>\n"
 *   "SLOW <tok> <ms>\n"   -> waits <ms>, then "RSP <tok> <connid>\n":
 *                            a client that writes this and closes at once
 *                            leaves a response on its way.
 *   "RSTIN <tok> <ms>\n"  -> "RSP <tok> <connid>\n" at once; then, if nothing
 *                            more arrives within <ms>, the server resets the
 *                            connection (SO_LINGER {1,0} + close: RST).  A
 *                            client that checked the connection out of a pool
 *                            before the reset and writes after it gets
 *                            ECONNRESET/EPIPE on its first write.  A
 *                            connection that has answered nothing is never
 *                            reset.
 *   "FININ <tok> <ms>\n"  -> the same, but the server closes (FIN) instead.
 *   "DROP <tok> <ms>\n"   -> waits <ms>, then closes the connection (FIN)
 *                            without answering: the request was received
 *                            and never answered.
 *   "COUNT <tok>\n"       -> "CNT <tok> <n>\n": how many times a request
 *                            with that token was received (any of the
 *                            commands above; -1 once the table of 4096
 *                            tokens is full and <tok> is not in it).  Not a
 *                            request itself.
 *   "PAUSE <ms>\n"        -> "OK\n", then the server accepts no connection
 *                            for <ms> (1..10000): new connections wait in the
 *                            listen queue, and once it is full (--backlog)
 *                            their SYNs are dropped.
 *   anything else         -> "ERR\n"
 * Every valid REQ/SLOW/RSTIN/FININ/DROP line counts as a request, when it
 * is received.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INBUF 512
#define TICK_MS 1000
#define MAX_TOKENS 4096

static atomic_ulong n_accepted, n_requests;
static atomic_long pause_until_ms; /* CLOCK_MONOTONIC ms; 0: accepting */
static struct timespec deadline;

/* how often each token was received (COUNT) */
static struct {
	char tok[65];
	long n;
} tokens[MAX_TOKENS];
static int n_tokens;
static bool tokens_full;
static pthread_mutex_t tokens_lock = PTHREAD_MUTEX_INITIALIZER;

struct conn {
	int fd;
	unsigned long id;
};

static long ms_left(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline.tv_sec - now.tv_sec) * 1000L + (deadline.tv_nsec - now.tv_nsec) / 1000000L;
}

static long now_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000L + now.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	for (int i = 0; i < 1000 && nanosleep(&ts, &ts) == -1 && errno == EINTR; i++)
		;
}

static bool send_all(int fd, const char *p, size_t len)
{
	for (int i = 0; len > 0 && i < 10000; i++) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return len == 0;
}

static void finish(void)
{
	printf("accepted=%lu requests=%lu\n", atomic_load(&n_accepted), atomic_load(&n_requests));
	fflush(stdout);
	_exit(0);
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	for (int i = 0; i < 100000; i++) {
		long left = ms_left();
		if (left <= 0)
			break;
		struct timespec ts = { left / 1000, (left % 1000) * 1000000L };
		int sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0 || (sig < 0 && errno == EAGAIN))
			break;
	}
	finish();
	return NULL;
}

/* Records one received request for tok (add 1) or looks it up (add 0). */
static long token_count(const char *tok, long add)
{
	long n = -1;
	pthread_mutex_lock(&tokens_lock);
	int i = 0;
	while (i < n_tokens && strcmp(tokens[i].tok, tok) != 0)
		i++;
	if (i == n_tokens && add && n_tokens < MAX_TOKENS) {
		snprintf(tokens[i].tok, sizeof tokens[i].tok, "%s", tok);
		n_tokens++;
	} else if (i == n_tokens && add) {
		tokens_full = true;
	}
	if (i < n_tokens) {
		tokens[i].n += add;
		n = tokens[i].n;
	} else if (!tokens_full) {
		n = 0;
	}
	pthread_mutex_unlock(&tokens_lock);
	return n;
}

static void count_request(const char *tok)
{
	atomic_fetch_add(&n_requests, 1);
	token_count(tok, 1);
}

/* What the connection does after an answer if the client stays silent. */
struct idle_end {
	long ms; /* 0: nothing */
	bool rst; /* reset, else close (FIN) */
};

/* Answers one line.  Returns false if the connection is to be closed now
 * (the peer is gone, or DROP); idle->ms > 0 arms a close or reset after that
 * much silence. */
static bool handle(const struct conn *c, char *line, struct idle_end *idle)
{
	char tok[65], out[160];
	long ms = 0;
	int n;
	if (sscanf(line, "REQ %64s", tok) == 1) {
		count_request(tok);
	} else if (sscanf(line, "SLOW %64s %ld", tok, &ms) == 2 && ms >= 0 && ms <= 5000) {
		count_request(tok);
		sleep_ms(ms);
	} else if (sscanf(line, "RSTIN %64s %ld", tok, &ms) == 2 && ms >= 1 && ms <= 5000) {
		count_request(tok);
		*idle = (struct idle_end){ .ms = ms, .rst = true };
	} else if (sscanf(line, "FININ %64s %ld", tok, &ms) == 2 && ms >= 1 && ms <= 5000) {
		count_request(tok);
		*idle = (struct idle_end){ .ms = ms, .rst = false };
	} else if (sscanf(line, "DROP %64s %ld", tok, &ms) == 2 && ms >= 0 && ms <= 5000) {
		count_request(tok);
		sleep_ms(ms);
		return false;
	} else if (sscanf(line, "COUNT %64s", tok) == 1) {
		n = snprintf(out, sizeof out, "CNT %s %ld\n", tok, token_count(tok, 0));
		return send_all(c->fd, out, (size_t)n);
	} else if (sscanf(line, "PAUSE %ld", &ms) == 1 && ms >= 1 && ms <= 10000) {
		atomic_store(&pause_until_ms, now_ms() + ms);
		return send_all(c->fd, "OK\n", 3);
	} else {
		return send_all(c->fd, "ERR\n", 4);
	}
	n = snprintf(out, sizeof out, "RSP %s %lu\n", tok, c->id);
	return send_all(c->fd, out, (size_t)n);
}

static void *conn_thread(void *arg)
{
	struct conn c = *(struct conn *)arg;
	free(arg);
	char buf[INBUF];
	size_t have = 0;
	struct idle_end idle = { 0 };
	bool reset = false;
	while (ms_left() > 0) {
		struct pollfd p = { .fd = c.fd, .events = POLLIN };
		int pr = poll(&p, 1, idle.ms > 0 ? (int)idle.ms : TICK_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			break;
		if (pr == 0) {
			if (idle.ms > 0) {
				reset = idle.rst;
				break;
			}
			continue;
		}
		idle.ms = 0; /* data arrived in time: disarmed */
		ssize_t r = recv(c.fd, buf + have, sizeof buf - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		char *start = buf, *nl;
		bool alive = true;
		while (alive && (nl = strchr(start, '\n'))) {
			*nl = '\0';
			alive = handle(&c, start, &idle);
			start = nl + 1;
		}
		if (!alive)
			break;
		have = (size_t)(buf + have - start);
		memmove(buf, start, have);
		if (have == sizeof buf - 1)
			break;
	}
	if (reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(c.fd);
	return NULL;
}

int main(int argc, char **argv)
{
	int max_seconds = 120, backlog = 128;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) {
			max_seconds = atoi(argv[++i]);
			if (max_seconds < 1)
				max_seconds = 1;
		} else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc) {
			backlog = atoi(argv[++i]);
			if (backlog < 0)
				backlog = 0;
		} else {
			fprintf(stderr, "usage: safety_server [--max-seconds N] [--backlog N]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	static sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += max_seconds;

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, backlog) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("safety_server: listen");
		return 2;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_t st;
	if (pthread_create(&st, &attr, signal_thread, &sigs) != 0)
		return 2;
	printf("PORT %d\n", ntohs(a.sin_port));
	fflush(stdout);
	while (ms_left() > 0) {
		if (now_ms() < atomic_load(&pause_until_ms)) {
			sleep_ms(10); /* PAUSE: connections wait in the listen queue */
			continue;
		}
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (poll(&p, 1, TICK_MS) <= 0 || now_ms() < atomic_load(&pause_until_ms))
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			sleep_ms(10);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = malloc(sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->id = atomic_fetch_add(&n_accepted, 1) + 1;
		pthread_t t;
		if (pthread_create(&t, &attr, conn_thread, c) != 0) {
			close(fd);
			free(c);
		}
	}
	for (int i = 0; i < 100; i++)
		sleep_ms(100);
	finish();
}
