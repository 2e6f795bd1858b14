/* Owns the shim's exchanges with the keeper.  Each exchange is its own
 * SOCK_SEQPACKET connection, opened and closed within the call:
 *  - nothing outlives the call, so a fork (or a close-everything loop, or
 *    an exec) never finds a keeper socket to share or to lose;
 *  - an answer that comes too late dies with its socket (a descriptor in
 *    flight is closed by the kernel): it can never be read as the answer to
 *    a later question.
 * Before a byte is sent: the directory and the socket file pass their owner
 * and mode checks (rundir.h), and the process at the other end runs as our
 * uid (SO_PEERCRED).  A failed check is reported once, and the process
 * stops asking. */
#include "shared.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "rundir.h"
#include "state.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* set once a check failed: this process no longer talks to a keeper */
static int refused;

static void refuse(const char *why)
{
	if (!__atomic_exchange_n(&refused, 1, __ATOMIC_RELAXED))
		PS_LOG_WARN("not sharing connections: %s", why);
}

/* The paths for our uid now (a program may change its uid after start). */
static int rundir(struct ps_rundir *rd)
{
	return ps_rundir_init(rd, ps_config.runtime_dir, ps_sys.getuid());
}

static int peer_is_us(int s, uid_t uid)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	return ps_sys.getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr &&
	       cr.uid == uid;
}

/* A connected, checked socket to our keeper, or -1.  may_start: a keeper
 * that is not there is started (not waited for). */
static int open_exchange(bool may_start)
{
	struct ps_rundir rd;
	struct sockaddr_un sa;
	char why[160];
	int saved = errno;
	if (!ps_config.shared || __atomic_load_n(&refused, __ATOMIC_RELAXED) || rundir(&rd) < 0)
		return -1;
	if (ps_rundir_check(&rd, false, why, sizeof why) < 0 ||
	    ps_rundir_check_socket(&rd, why, sizeof why) < 0) {
		if (why[0])
			refuse(why);
		else if (errno == ENOENT && may_start)
			ps_shared_spawn();
		errno = saved;
		return -1;
	}
	int s = ps_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		errno = saved;
		return -1;
	}
	socklen_t len = ps_rundir_addr(&rd, &sa);
	/* a Unix connect completes at once; EAGAIN: the keeper's backlog is full */
	if (ps_sys.connect(s, (struct sockaddr *)&sa, len) < 0) {
		/* ECONNREFUSED: a socket file left by a keeper that died */
		if ((errno == ECONNREFUSED || errno == ENOENT) && may_start)
			ps_shared_spawn();
		ps_sys.close(s);
		errno = saved;
		return -1;
	}
	if (!peer_is_us(s, rd.uid)) {
		refuse("the keeper's socket is served by another user");
		ps_sys.close(s);
		errno = saved;
		return -1;
	}
	errno = saved;
	return s;
}

/* A received descriptor goes where the pool keeps its own (state.h), out
 * of the numbers the program expects to get. */
static int hide_high(int fd)
{
	int h = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	if (h < 0 && errno == EINVAL) {
		ps_state_update_floor();
		h = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	}
	ps_sys.close(fd);
	return h;
}

/* Waits for the one answer to a TAKE until the deadline. */
static int await_answer(int s, uint64_t deadline, struct ps_shared_meta *meta)
{
	char buf[PS_KMSG_MAX];
	for (bool last = false; !last;) {
		uint64_t now = ps_now_ns();
		/* past the deadline, one look without waiting: an answer that
		 * is there is taken, not destroyed with the socket */
		last = now >= deadline;
		struct pollfd p = { .fd = s, .events = POLLIN };
		int ms = last ? 0 : (int)((deadline - now + 999999) / 1000000);
		if (ps_sys.poll(&p, 1, ms) <= 0)
			continue; /* EINTR, or the deadline: the loop decides */
		int fds[1], nfds = 0;
		ssize_t n = ps_kmsg_recv(s, buf, fds, 1, &nfds);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return -1;
		struct ps_kmsg m;
		if (ps_kmsg_decode(buf, (size_t)n, &m) == 0) {
			if (m.type == PS_KM_GIVE && nfds == 1) {
				memcpy(meta, m.body, sizeof *meta);
				meta->flags = 0;
				return hide_high(fds[0]);
			}
			if (m.type == PS_KM_NONE && nfds == 0) {
				struct ps_km_none none;
				memcpy(&none, m.body, sizeof none);
				meta->flags = none.flags;
				return -1;
			}
		}
		ps_kmsg_close_fds(fds, nfds);
		return -1;
	}
	return -1;
}

int ps_shared_take(const struct ps_key *k, struct ps_shared_meta *meta)
{
	meta->flags = 0;
	if (!ps_config.shared || !ps_kmsg_key_ok(k))
		return -1;
	int saved = errno;
	uint64_t deadline = ps_now_ns() + PS_SHARED_BOUND_NS;
	int s = open_exchange(true);
	if (s < 0)
		return -1;
	char buf[PS_KMSG_MAX];
	struct ps_km_take t;
	memset(&t, 0, sizeof t);
	t.key = *k;
	size_t n = ps_kmsg_encode(buf, PS_KM_TAKE, &t, sizeof t);
	int fd = ps_kmsg_send(s, buf, n, -1) == 0 ? await_answer(s, deadline, meta) : -1;
	ps_sys.close(s);
	errno = saved;
	return fd;
}

int ps_shared_batch_open(struct ps_shared_batch *b)
{
	b->s = open_exchange(false);
	return b->s < 0 ? -1 : 0;
}

int ps_shared_batch_offer(struct ps_shared_batch *b, const struct ps_key *k,
			  const struct ps_shared_meta *m, int fd)
{
	char buf[PS_KMSG_MAX];
	struct ps_km_offer o;
	if (b->s < 0 || !ps_kmsg_key_ok(k))
		return -1;
	int saved = errno;
	memset(&o, 0, sizeof o);
	o.key = *k;
	o.meta = *m;
	size_t n = ps_kmsg_encode(buf, PS_KM_OFFER, &o, sizeof o);
	int r = ps_kmsg_send(b->s, buf, n, fd);
	errno = saved;
	return r;
}

int ps_shared_batch_unsafe(struct ps_shared_batch *b, const struct ps_key *keys, size_t n)
{
	char buf[PS_KMSG_MAX];
	struct ps_km_unsafe u;
	int saved = errno;
	while (b->s >= 0 && n) {
		memset(&u, 0, sizeof u);
		u.n = 0;
		for (; n && u.n < PS_KMSG_MAX_UNSAFE; keys++, n--)
			if (ps_kmsg_dest_ok(keys))
				u.keys[u.n++] = *keys;
		size_t len = ps_kmsg_encode(buf, PS_KM_UNSAFE, &u,
					    offsetof(struct ps_km_unsafe, keys) + u.n * sizeof(struct ps_key));
		if (u.n && ps_kmsg_send(b->s, buf, len, -1) < 0) {
			errno = saved;
			return -1;
		}
	}
	errno = saved;
	return 0;
}

void ps_shared_batch_close(struct ps_shared_batch *b)
{
	if (b->s >= 0)
		ps_sys.close(b->s);
	b->s = -1;
}
