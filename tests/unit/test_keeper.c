/* The keeper's request handling (keeper/request.c, store.c, vet.c) on real
 * sockets: a SOCK_SEQPACKET pair stands for one client's exchange, loopback
 * TCP pairs for the connections it offers.  SO_PEERCRED is faked through
 * ps_sys to play another uid. */
#include "keeper.h"
#include "clock.h"
#include "helpers.h"
#include "kmsg.h"
#include "probe.h"
#include "sys.h"
#include "vet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define SEC 1000000000ull

static struct k_keeper kp;
static int cli, srv_side; /* the client's end, the keeper's end */
static struct sockaddr_in dst;
static int lfd;
static struct k_pending pend;
static char buf[PS_KMSG_MAX];

static void pair(void)
{
	int sp[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp), 0);
	cli = sp[0];
	srv_side = sp[1];
}

static void setup(void)
{
	struct k_caps caps = { .max_per_key = 4, .max_total = 16, .idle_timeout_ns = 15 * SEC };
	signal(SIGPIPE, SIG_IGN);
	memset(&kp, 0, sizeof kp);
	kp.uid = getuid();
	kp.linger_ns = 60 * SEC;
	k_store_init(&kp.store, &caps);
	pend.fd = -1;
	lfd = t_listen(&dst);
	pair();
}

static void teardown(void) { ps_sys_reset(); }

TestSuite(keeper, .init = setup, .fini = teardown);

static struct ps_key key_of(const struct sockaddr_in *in)
{
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (const struct sockaddr *)in, sizeof *in), 0);
	return k;
}

/* A live connection to the listener: *srv gets the accepted end. */
static int conn(int *srv)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&dst, sizeof dst), 0);
	*srv = t_accept(lfd, 2000);
	cr_assert_geq(*srv, 0);
	return c;
}

static uint64_t cookie(int fd)
{
	uint64_t c;
	cr_assert_eq(ps_probe_cookie(fd, &c), 0);
	return c;
}

static void send_offer(int fd, const struct ps_key *k, uint64_t ck, uint64_t last_used)
{
	struct ps_km_offer o;
	memset(&o, 0, sizeof o);
	o.key = *k;
	o.meta.cookie = ck;
	o.meta.created_ns = o.meta.last_used_ns = last_used;
	size_t n = ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
	cr_assert_eq(ps_kmsg_send(cli, buf, n, fd), 0);
}

static void send_take(const struct ps_key *k)
{
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key = *k;
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	cr_assert_eq(ps_kmsg_send(cli, buf, n, -1), 0);
}

/* The answer waiting for the client: its type, and its descriptor in *fd. */
static int answer(int *fd)
{
	int fds[1], nfds = 0;
	struct ps_kmsg m;
	*fd = -1;
	ssize_t n = ps_kmsg_recv(cli, buf, fds, 1, &nfds);
	if (n <= 0)
		return n == 0 ? 0 : -1;
	cr_assert_eq(ps_kmsg_decode(buf, (size_t)n, &m), 0);
	if (nfds)
		*fd = fds[0];
	return m.type;
}

static enum k_result handle(void) { return k_request(&kp, srv_side, ps_now_ns(), &pend); }

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(keeper, offered_connection_is_held_then_handed_out)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	uint64_t ck = cookie(c);
	send_offer(c, &k, ck, ps_now_ns());
	close(c); /* in flight it stays open */
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_eq(k_store_held(&kp.store), 1);
	cr_assert_eq(kp.store.counters[PS_KC_HELD], 1);

	send_take(&k);
	cr_assert_eq(handle(), K_KEEP);
	int fd;
	cr_assert_eq(answer(&fd), PS_KM_GIVE);
	cr_assert_geq(fd, 0);
	cr_assert_eq(cookie(fd), ck, "the same socket came back");
	cr_assert_eq(k_store_held(&kp.store), 0);
	/* the hand-over settles when the client closes, having read it */
	close(cli);
	cr_assert_eq(handle(), K_DROP);
	k_settle(&kp, &pend, true, ps_now_ns());
	cr_assert_eq(kp.store.counters[PS_KC_HITS], 1);
	cr_assert_eq(write(fd, "x", 1), 1);
	char b;
	cr_assert_eq(t_read_n(s, &b, 1, 1000), 1, "the connection works after its trip");
	close(fd);
	close(s);
}

Test(keeper, nothing_held_is_answered_none)
{
	struct ps_key k = key_of(&dst);
	send_take(&k);
	cr_assert_eq(handle(), K_KEEP);
	int fd;
	cr_assert_eq(answer(&fd), PS_KM_NONE);
	cr_assert_eq(fd, -1);
}

/* SO_PEERCRED says another uid; everything else is the kernel's */
static int other_uid(int fd, int level, int name, void *val, socklen_t *len)
{
	int r = (int)syscall(SYS_getsockopt, fd, level, name, val, len);
	if (r == 0 && level == SOL_SOCKET && name == SO_PEERCRED)
		((struct ucred *)val)->uid = getuid() + 1;
	return r;
}

Test(keeper, another_uid_neither_gives_nor_gets)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	/* one held connection the other uid must not get */
	send_offer(c, &k, cookie(c), ps_now_ns());
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_eq(k_store_held(&kp.store), 1);

	ps_sys.getsockopt = other_uid;
	int s2;
	int c2 = conn(&s2);
	int before = open_fds();
	send_offer(c2, &k, cookie(c2), ps_now_ns());
	close(c2);
	cr_assert_eq(handle(), K_DROP, "another uid's offer drops the client");
	cr_assert_eq(k_store_held(&kp.store), 1, "and is not held");
	cr_assert_eq(open_fds(), before - 1, "its descriptor was closed (c2 and the keeper's copy)");

	close(cli);
	close(srv_side);
	pair();
	send_take(&k);
	cr_assert_eq(handle(), K_DROP, "another uid's request drops the client");
	int fd;
	cr_assert_eq(answer(&fd), -1, "and gets no answer at all");
	cr_assert_eq(fd, -1);
	cr_assert_eq(k_store_held(&kp.store), 1, "what was held is still held");
	cr_assert_eq(kp.store.counters[PS_KC_BAD_PEERS], 2);
	ps_sys_reset();
	close(c);
	close(s);
	close(s2);
}

Test(keeper, garbage_drops_the_client_and_changes_nothing)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	send_offer(c, &k, cookie(c), ps_now_ns());
	cr_assert_eq(handle(), K_KEEP);
	memset(buf, 0x5a, 200);
	cr_assert_eq(send(cli, buf, 200, 0), 200);
	cr_assert_eq(handle(), K_DROP);
	cr_assert_eq(kp.store.counters[PS_KC_BAD_MESSAGES], 1);
	cr_assert_eq(k_store_held(&kp.store), 1);
	/* an answer's type sent as a request */
	close(cli);
	close(srv_side);
	pair();
	size_t n = ps_kmsg_encode(buf, PS_KM_STATUS_END, NULL, 0);
	cr_assert_eq(ps_kmsg_send(cli, buf, n, -1), 0);
	cr_assert_eq(handle(), K_DROP);
	/* a TAKE with a descriptor attached: the descriptor is closed */
	close(cli);
	close(srv_side);
	pair();
	int file = open("/dev/null", O_RDONLY);
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key = k;
	n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	int before = open_fds();
	cr_assert_eq(ps_kmsg_send(cli, buf, n, file), 0);
	close(file);
	cr_assert_eq(handle(), K_DROP);
	cr_assert_eq(open_fds(), before - 1);
	cr_assert_eq(kp.store.counters[PS_KC_BAD_MESSAGES], 3);
	cr_assert_eq(k_store_held(&kp.store), 1, "still held for everyone else");
	close(c);
	close(s);
}

Test(keeper, a_client_that_vanishes_mid_request_changes_nothing)
{
	close(cli);
	cr_assert_eq(handle(), K_DROP);
	cr_assert_eq(k_store_held(&kp.store), 0);
	cr_assert_eq(kp.store.counters[PS_KC_BAD_MESSAGES], 0);
}

Test(keeper, an_answer_never_read_goes_back_into_the_pool)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	uint64_t ck = cookie(c);
	send_offer(c, &k, ck, ps_now_ns());
	close(c);
	cr_assert_eq(handle(), K_KEEP);
	send_take(&k);
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_geq(pend.fd, 0, "the keeper keeps its copy until it knows");
	/* the asker gave up: it closes with the GIVE unread */
	close(cli);
	cr_assert_eq(handle(), K_RESET);
	k_settle(&kp, &pend, false, ps_now_ns());
	cr_assert_eq(k_store_held(&kp.store), 1, "held again, not lost");
	cr_assert_eq(kp.store.counters[PS_KC_UNREAD], 1);
	/* and the next asker gets it */
	pair();
	send_take(&k);
	cr_assert_eq(handle(), K_KEEP);
	int fd;
	cr_assert_eq(answer(&fd), PS_KM_GIVE);
	cr_assert_eq(cookie(fd), ck);
	close(fd);
	close(s);
}

Test(keeper, vetting_refuses_what_is_not_a_connected_tcp_socket)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	int file = open("/dev/null", O_RDONLY);
	cr_assert_str_eq(k_vet(file, &k, 0, 0), "not a socket");
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	cr_assert_str_eq(k_vet(udp, &k, cookie(udp), 0), "not a TCP socket");
	int un = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_str_eq(k_vet(un, &k, cookie(un), 0), "not a TCP socket");
	cr_assert_str_eq(k_vet(lfd, &k, cookie(lfd), 0), "a listening socket");
	int fresh = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_str_eq(k_vet(fresh, &k, cookie(fresh), 0), "not an established connection");
	cr_assert_str_eq(k_vet(c, &k, cookie(c) + 1, 0), "not the socket its cookie names");
	struct sockaddr_in other = dst;
	other.sin_port = htons((uint16_t)(ntohs(dst.sin_port) + 1));
	struct ps_key ko = key_of(&other);
	cr_assert_str_eq(k_vet(c, &ko, cookie(c), 0), "not connected to the key's destination");
	struct ps_key k6 = k;
	k6.family = AF_INET6;
	cr_assert_str_eq(k_vet(c, &k6, cookie(c), 0), "not of the key's address family");
	cr_assert_eq(write(s, "late", 4), 4);
	cr_assert(t_wait_readable(c, 1000));
	cr_assert_str_eq(k_vet(c, &k, cookie(c), 0), "not quiet (unread bytes, closed or failed)");
	char b[4];
	cr_assert_eq(read(c, b, 4), 4);
	cr_assert_null(k_vet(c, &k, cookie(c), 0), "a live, quiet connection to the key passes");
	uint64_t ns = ps_rundir_netns();
	if (ns) {
		cr_assert_null(k_vet(c, &k, cookie(c), ns), "in the keeper's network namespace");
		cr_assert_str_eq(k_vet(c, &k, cookie(c), ns + 1), "of another network namespace");
	}
	/* refused offers are closed and counted */
	send_offer(udp, &k, cookie(udp), ps_now_ns());
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_eq(k_store_held(&kp.store), 0);
	cr_assert_eq(kp.store.counters[PS_KC_REFUSED], 1);
	close(file), close(udp), close(un), close(fresh), close(c), close(s);
}

Test(keeper, one_socket_is_held_once)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	uint64_t ck = cookie(c), now = ps_now_ns();
	cr_assert_eq(k_store_offer(&kp.store, &k, &(struct ps_shared_meta){ .cookie = ck, .created_ns = now,
								 .last_used_ns = now }, dup(c), now), 0);
	/* the same socket again (a copy the offerer kept): two users at once */
	cr_assert_eq(k_store_offer(&kp.store, &k, &(struct ps_shared_meta){ .cookie = ck, .created_ns = now,
								 .last_used_ns = now }, dup(c), now), -1);
	cr_assert_eq(k_store_held(&kp.store), 1);
	k_store_drain(&kp.store);
	close(c), close(s);
}

Test(keeper, caps_and_expiry_hold)
{
	int c[6], s[6];
	struct ps_key k = key_of(&dst);
	uint64_t now = ps_now_ns();
	for (int i = 0; i < 6; i++) {
		c[i] = conn(&s[i]);
		struct ps_shared_meta m = { .cookie = cookie(c[i]), .created_ns = now, .last_used_ns = now + i };
		k_store_offer(&kp.store, &k, &m, dup(c[i]), now + 10);
	}
	cr_assert_eq(k_store_held(&kp.store), 4, "at most max_per_key");
	cr_assert_eq(kp.store.counters[PS_KC_EVICTED], 2);
	/* older than the idle timeout: refused at the door */
	int s6;
	int c6 = conn(&s6);
	struct ps_shared_meta old = { .cookie = cookie(c6), .created_ns = 1, .last_used_ns = 1 };
	cr_assert_eq(k_store_offer(&kp.store, &k, &old, dup(c6), now + 15 * SEC), -1);
	/* and reaped when their time comes */
	uint64_t next = k_store_reap(&kp.store, now + 10);
	cr_assert_eq(next, now + 2 + 15 * SEC, "the oldest held one expires next");
	k_store_reap(&kp.store, now + 20 * SEC);
	cr_assert_eq(k_store_held(&kp.store), 0);
	for (int i = 0; i < 6; i++)
		close(c[i]), close(s[i]);
	close(c6), close(s6);
}

Test(keeper, unsafe_destinations_are_answered_and_not_held)
{
	int s;
	int c = conn(&s);
	struct ps_key k = key_of(&dst);
	send_offer(c, &k, cookie(c), ps_now_ns());
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_eq(k_store_held(&kp.store), 1);
	struct ps_km_unsafe u;
	memset(&u, 0, sizeof u);
	u.n = 1;
	u.keys[0].family = AF_INET;
	u.keys[0].port = dst.sin_port;
	memcpy(u.keys[0].addr, &dst.sin_addr, 4);
	size_t n = ps_kmsg_encode(buf, PS_KM_UNSAFE, &u, offsetof(struct ps_km_unsafe, keys) + sizeof u.keys[0]);
	cr_assert_eq(ps_kmsg_send(cli, buf, n, -1), 0);
	cr_assert_eq(handle(), K_KEEP);
	cr_assert_eq(k_store_held(&kp.store), 0, "what was held for it is closed");
	send_take(&k);
	cr_assert_eq(handle(), K_KEEP);
	int fd;
	cr_assert_eq(answer(&fd), PS_KM_NONE);
	cr_assert_eq(((const struct ps_km_none *)(buf + sizeof(struct ps_kmsg_hdr)))->flags, PS_KM_UNSAFE_DEST);
	close(c), close(s);
}
