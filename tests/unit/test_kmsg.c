/* kmsg.c: the keeper protocol's bytes.  Every packet the keeper or the shim
 * reads goes through ps_kmsg_decode first: what it lets through, and what
 * it refuses (anything malformed, whatever its origin). */
#include "key.h"
#include "kmsg.h"
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

static struct ps_key tcp_key(int port)
{
	struct ps_key k;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&in, sizeof in), 0);
	return k;
}

static char buf[PS_KMSG_MAX + 64];

Test(kmsg, round_trip_of_every_request)
{
	struct ps_kmsg m;
	struct ps_km_take t = { .key = tcp_key(80) };
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(m.type, PS_KM_TAKE);
	cr_assert_eq(m.len, sizeof t);
	cr_assert(ps_key_equal(&((const struct ps_km_take *)m.body)->key, &t.key));

	struct ps_km_offer o;
	memset(&o, 0, sizeof o);
	o.key = tcp_key(8080);
	o.meta.cookie = 42;
	o.meta.n_opts = 2;
	o.meta.opts[1].len = PS_OPT_LEN;
	n = ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(m.type, PS_KM_OFFER);

	struct ps_km_unsafe u;
	memset(&u, 0, sizeof u);
	u.n = 3;
	for (int i = 0; i < 3; i++) {
		u.keys[i].family = AF_INET;
		u.keys[i].port = htons((uint16_t)(443 + i));
	}
	n = ps_kmsg_encode(buf, PS_KM_UNSAFE, &u, offsetof(struct ps_km_unsafe, keys) + 3 * sizeof(struct ps_key));
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(m.type, PS_KM_UNSAFE);

	n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(m.type, PS_KM_STATUS);
	cr_assert_eq(m.len, 0);
}

Test(kmsg, round_trip_of_every_answer)
{
	struct ps_kmsg m;
	struct ps_km_give g;
	memset(&g, 0, sizeof g);
	g.meta.cookie = 7;
	size_t n = ps_kmsg_encode(buf, PS_KM_GIVE, &g, sizeof g);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(m.type, PS_KM_GIVE);
	struct ps_km_none none = { PS_KM_UNSAFE_DEST, 0 };
	n = ps_kmsg_encode(buf, PS_KM_NONE, &none, sizeof none);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	cr_assert_eq(((const struct ps_km_none *)m.body)->flags, PS_KM_UNSAFE_DEST);
	struct ps_km_status_head h;
	memset(&h, 0, sizeof h);
	n = ps_kmsg_encode(buf, PS_KM_STATUS_HEAD, &h, sizeof h);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
	n = ps_kmsg_encode(buf, PS_KM_STATUS_END, NULL, 0);
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0);
}

static void refused(const void *p, size_t n, const char *what)
{
	struct ps_kmsg m;
	errno = 0;
	cr_assert_eq(ps_kmsg_decode(p, n, &m), -1, "%s was accepted", what);
	cr_assert_eq(errno, EPROTO, "%s", what);
}

Test(kmsg, malformed_headers_are_refused)
{
	struct ps_km_take t = { .key = tcp_key(80) };
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	struct ps_kmsg_hdr *h = (struct ps_kmsg_hdr *)(void *)buf;

	refused(buf, 0, "an empty packet");
	refused(buf, sizeof *h - 1, "a short header");
	refused(buf, n - 1, "a short body");
	h->magic ^= 1;
	refused(buf, n, "another magic");
	h->magic ^= 1;
	h->version = PS_KMSG_VERSION + 1;
	refused(buf, n, "another version");
	h->version = PS_KMSG_VERSION;
	h->key_size++;
	refused(buf, n, "another key layout");
	h->key_size--;
	h->meta_size--;
	refused(buf, n, "another metadata layout");
	h->meta_size++;
	h->len++;
	refused(buf, n, "a length that is not the packet's");
	h->len--;
	h->type = 99;
	refused(buf, n, "an unknown type");
	h->type = PS_KM_OFFER;
	refused(buf, n, "a TAKE's body under OFFER");
	h->type = PS_KM_TAKE;
	struct ps_kmsg m;
	cr_assert_eq(ps_kmsg_decode(buf, n, &m), 0, "the packet is valid again");
}

Test(kmsg, malformed_bodies_are_refused)
{
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key.family = AF_UNIX;
	t.key.path_len = 3;
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	refused(buf, n, "a TAKE for an AF_UNIX key");
	t.key = tcp_key(80);
	t.key.local_port = htons(1234);
	n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	refused(buf, n, "a TAKE for a key with a local port");

	struct ps_km_offer o;
	memset(&o, 0, sizeof o);
	o.key = tcp_key(80);
	o.meta.n_opts = PS_MAX_OPTS + 1;
	n = ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
	refused(buf, n, "an OFFER with too many options");
	o.meta.n_opts = 1;
	o.meta.opts[0].len = PS_OPT_LEN + 1;
	n = ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
	refused(buf, n, "an OFFER with an option too long");

	struct ps_km_unsafe u;
	memset(&u, 0, sizeof u);
	u.n = PS_KMSG_MAX_UNSAFE + 1;
	n = ps_kmsg_encode(buf, PS_KM_UNSAFE, &u, sizeof u);
	refused(buf, n, "an UNSAFE with too many keys");
	u.n = 2;
	u.keys[0].family = u.keys[1].family = AF_INET;
	n = ps_kmsg_encode(buf, PS_KM_UNSAFE, &u, offsetof(struct ps_km_unsafe, keys) + sizeof(struct ps_key));
	refused(buf, n, "an UNSAFE whose count is not its length");
}

Test(kmsg, random_bytes_never_decode)
{
	struct ps_kmsg m;
	srand(1234);
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)rand() % sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)rand();
		/* now and then, noise behind a valid header */
		if (round % 4 == 0 && n >= sizeof(struct ps_kmsg_hdr)) {
			struct ps_kmsg_hdr h = { PS_KMSG_MAGIC, PS_KMSG_VERSION, (uint16_t)(rand() % 24),
						 sizeof(struct ps_key), sizeof(struct ps_shared_meta),
						 (uint32_t)(n - sizeof h) };
			memcpy(buf, &h, sizeof h);
			if (ps_kmsg_decode(buf, n, &m) == 0) {
				/* a request carrying a key never passes with a noise key */
				cr_assert(m.type != PS_KM_TAKE && m.type != PS_KM_OFFER &&
					  m.type != PS_KM_UNSAFE,
					  "noise decoded as type %d", m.type);
			}
			continue;
		}
		cr_assert_eq(ps_kmsg_decode(buf, n, &m), -1);
	}
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(kmsg, a_descriptor_travels_close_on_exec)
{
	int sp[2], fds[1], nfds;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	int file = open("/dev/null", O_RDONLY);
	size_t n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	cr_assert_eq(ps_kmsg_send(sp[0], buf, n, file), 0);
	cr_assert_eq(ps_kmsg_recv(sp[1], buf, fds, 1, &nfds), (ssize_t)n);
	cr_assert_eq(nfds, 1);
	cr_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	close(fds[0]);
	/* nothing waiting: EAGAIN, never a block */
	errno = 0;
	cr_assert_eq(ps_kmsg_recv(sp[1], buf, fds, 1, &nfds), -1);
	cr_assert_eq(errno, EAGAIN);
	/* the peer gone: 0 */
	close(sp[0]);
	cr_assert_eq(ps_kmsg_recv(sp[1], buf, fds, 1, &nfds), 0);
	close(sp[1]);
	close(file);
}

Test(kmsg, too_many_descriptors_or_bytes_are_refused_and_closed)
{
	int sp[2], fds[1], nfds;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
	int file = open("/dev/null", O_RDONLY);
	int before = open_fds();
	size_t n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	cr_assert_eq(ps_kmsg_send(sp[0], buf, n, file), 0);
	errno = 0;
	cr_assert_eq(ps_kmsg_recv(sp[1], buf, fds, 0, &nfds), -1, "a descriptor nobody expected");
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert_eq(nfds, 0);
	cr_assert_eq(open_fds(), before, "the unexpected descriptor was closed");
	/* a packet longer than any message */
	static char big[PS_KMSG_MAX + 100];
	cr_assert_eq(send(sp[0], big, sizeof big, 0), (ssize_t)sizeof big);
	errno = 0;
	cr_assert_eq(ps_kmsg_recv(sp[1], buf, fds, 1, &nfds), -1);
	cr_assert_eq(errno, EMSGSIZE);
	close(sp[0]);
	close(sp[1]);
	close(file);
}
