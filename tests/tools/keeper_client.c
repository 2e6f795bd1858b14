/* keeper_client: talks the keeper protocol (lib/kmsg.h) by hand, for the
 * tests of tests/shared: the requests a real shim sends, and the ones a
 * broken or hostile client of the same uid could send.
 *
 *   keeper_client --socket PATH take PORT      one TAKE for 127.0.0.1:PORT;
 *                                              prints give, none, eof or timeout
 *   keeper_client --socket PATH garbage PORT   every kind of bad packet, each on
 *                                              its own connection; prints "sent N"
 *   keeper_client bench PORT N                 what the keeper adds to a connect,
 *                                              as the shim asks it (ps_shared_take,
 *                                              POOLSHIM_* and XDG_RUNTIME_DIR from
 *                                              the environment): N misses, N hits,
 *                                              N loopback handshakes; medians in us
 *
 * It connects to PATH without the directory checks (that is the point:
 * root can reach another user's socket, and SO_PEERCRED must refuse it). */
#include "clock.h"
#include "config.h"
#include "key.h"
#include "kmsg.h"
#include "probe.h"
#include "shared.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *path;

static int conn_keeper(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		printf("connect: %s\n", strerror(errno));
		exit(3);
	}
	return s;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return in;
}

static struct ps_key key_for(int port)
{
	struct ps_key k;
	struct sockaddr_in in = loopback(port);
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&in, sizeof in);
	return k;
}

static int tcp_to(int port)
{
	struct sockaddr_in in = loopback(port);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&in, sizeof in) < 0) {
		perror("tcp connect");
		exit(3);
	}
	return s;
}

/* The answer to one request: what came back, within 2 s. */
static const char *answer(int s)
{
	char buf[PS_KMSG_MAX];
	int fds[1], nfds = 0;
	struct pollfd p = { .fd = s, .events = POLLIN };
	if (poll(&p, 1, 2000) <= 0)
		return "timeout";
	ssize_t n = ps_kmsg_recv(s, buf, fds, 1, &nfds);
	struct ps_kmsg m;
	if (n == 0)
		return "eof";
	if (n < 0 || ps_kmsg_decode(buf, (size_t)n, &m) < 0)
		return "garbage";
	ps_kmsg_close_fds(fds, nfds);
	if (m.type == PS_KM_GIVE && nfds == 1)
		return "give";
	if (m.type == PS_KM_NONE)
		return "none";
	return "other";
}

static int take(int port)
{
	char buf[PS_KMSG_MAX];
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key = key_for(port);
	int s = conn_keeper();
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	if (ps_kmsg_send(s, buf, n, -1) < 0) {
		printf("send: %s\n", strerror(errno));
		return 3;
	}
	printf("%s\n", answer(s));
	close(s);
	return 0;
}

/* One packet on a connection of its own, with up to two descriptors. */
static void send_raw(const void *buf, size_t len, int fd1, int fd2)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[2] = { fd1, fd2 };
	int n = (fd1 >= 0) + (fd2 >= 0);
	if (n) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	}
	int s = conn_keeper();
	sendmsg(s, &mh, MSG_NOSIGNAL);
	/* read whatever comes (nothing, or EOF) so the keeper has acted */
	struct pollfd p = { .fd = s, .events = POLLIN };
	poll(&p, 1, 200);
	close(s);
}

static size_t offer_packet(char *buf, int port, uint64_t cookie)
{
	struct ps_km_offer o;
	memset(&o, 0, sizeof o);
	o.key = key_for(port);
	o.meta.cookie = cookie;
	o.meta.created_ns = o.meta.last_used_ns = 1;
	return ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
}

static uint64_t cookie_of(int fd)
{
	uint64_t c = 0;
	ps_probe_cookie(fd, &c);
	return c;
}

static int garbage(int port)
{
	char buf[PS_KMSG_MAX + 64];
	int sent = 0;
	size_t n;

	/* noise, short and long */
	memset(buf, 0xa5, sizeof buf);
	send_raw(buf, 3, -1, -1), sent++;
	send_raw(buf, 64, -1, -1), sent++;
	send_raw(buf, sizeof buf, -1, -1), sent++;
	/* a valid header claiming a longer body than came */
	n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	((struct ps_kmsg_hdr *)(void *)buf)->len = 100;
	send_raw(buf, n, -1, -1), sent++;
	/* another version, another type, an answer's type */
	n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	((struct ps_kmsg_hdr *)(void *)buf)->version = 99;
	send_raw(buf, n, -1, -1), sent++;
	n = ps_kmsg_encode(buf, 77, NULL, 0);
	send_raw(buf, n, -1, -1), sent++;
	n = ps_kmsg_encode(buf, PS_KM_STATUS_END, NULL, 0);
	send_raw(buf, n, -1, -1), sent++;
	/* a TAKE for an AF_UNIX key; a TAKE carrying a descriptor */
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key.family = AF_UNIX;
	t.key.path_len = 4;
	memcpy(t.key.addr, "/x/y", 4);
	n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	send_raw(buf, n, -1, -1), sent++;
	int file = open("/dev/null", O_RDONLY);
	t.key = key_for(port);
	n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	send_raw(buf, n, file, -1), sent++;
	/* OFFERs: no descriptor; a file; a UDP socket; a listening socket;
	 * an unconnected TCP socket; two descriptors; a connection to another
	 * port under this port's key; a live connection with a wrong cookie;
	 * a connection with unread bytes is left to the unit tests */
	n = offer_packet(buf, port, 1);
	send_raw(buf, n, -1, -1), sent++;
	send_raw(buf, n, file, -1), sent++;
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	n = offer_packet(buf, port, cookie_of(udp));
	send_raw(buf, n, udp, -1), sent++;
	int lsn = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = loopback(0);
	bind(lsn, (struct sockaddr *)&any, sizeof any);
	listen(lsn, 1);
	n = offer_packet(buf, port, cookie_of(lsn));
	send_raw(buf, n, lsn, -1), sent++;
	int fresh = socket(AF_INET, SOCK_STREAM, 0);
	n = offer_packet(buf, port, cookie_of(fresh));
	send_raw(buf, n, fresh, -1), sent++;
	int a = tcp_to(port), b = tcp_to(port);
	n = offer_packet(buf, port, cookie_of(a));
	send_raw(buf, n, a, b), sent++;
	socklen_t len = sizeof any;
	getsockname(lsn, (struct sockaddr *)&any, &len);
	int other = tcp_to(ntohs(any.sin_port)); /* to our own listener: another destination */
	n = offer_packet(buf, port, cookie_of(other));
	send_raw(buf, n, other, -1), sent++;
	n = offer_packet(buf, port, cookie_of(a) + 1);
	send_raw(buf, n, a, -1), sent++;
	/* connect and go away without a word; connect, send half a header */
	close(conn_keeper()), sent++;
	send_raw(buf, 5, -1, -1), sent++;
	printf("sent %d\n", sent);
	return 0;
}

static const char *env(const char *name) { return getenv(name); }

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median_us(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return (double)v[n / 2] / 1000.0;
}

/* Misses ask for a port nobody offers (the keeper answers NONE); hits
 * offer a connection and time taking it back (GIVE with the descriptor). */
static int bench(int port, int n)
{
	static uint64_t miss[100000], hit[100000], hs[100000];
	if (n < 1 || n > 100000)
		return 2;
	ps_config_parse(&ps_config, env);
	ps_config.shared = true;
	ps_config.keeper_path[0] = '\0'; /* measure a running keeper, start none */
	struct ps_key k = key_for(port), nobody = key_for(port == 1 ? 2 : 1);
	struct ps_shared_meta m;
	int c = tcp_to(port);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = ps_now_ns();
		int fd = ps_shared_take(&nobody, &m);
		miss[i] = ps_now_ns() - t0;
		if (fd >= 0)
			close(fd);
		struct ps_shared_batch b;
		struct ps_shared_meta om = { .cookie = cookie_of(c), .created_ns = ps_now_ns(),
					     .last_used_ns = ps_now_ns() };
		if (ps_shared_batch_open(&b) < 0 || ps_shared_batch_offer(&b, &k, &om, c) < 0) {
			fprintf(stderr, "keeper_client: no keeper to offer to\n");
			return 3;
		}
		ps_shared_batch_close(&b);
		close(c);
		usleep(200); /* the keeper reads the offer */
		t0 = ps_now_ns();
		c = ps_shared_take(&k, &m);
		hit[i] = ps_now_ns() - t0;
		if (c < 0) {
			fprintf(stderr, "keeper_client: the offered connection did not come back\n");
			return 3;
		}
		t0 = ps_now_ns();
		int h = tcp_to(port);
		hs[i] = ps_now_ns() - t0;
		close(h);
	}
	printf("miss_us=%.1f hit_us=%.1f handshake_us=%.1f\n", median_us(miss, n), median_us(hit, n),
	       median_us(hs, n));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "bench") == 0)
		return bench(atoi(argv[2]), atoi(argv[3]));
	if (argc != 5 || strcmp(argv[1], "--socket") != 0) {
		fprintf(stderr, "usage: keeper_client --socket PATH take|garbage PORT\n"
				"       keeper_client bench PORT N\n");
		return 2;
	}
	path = argv[2];
	int port = atoi(argv[4]);
	if (strcmp(argv[3], "take") == 0)
		return take(port);
	if (strcmp(argv[3], "garbage") == 0)
		return garbage(port);
	fprintf(stderr, "keeper_client: unknown request %s\n", argv[3]);
	return 2;
}
