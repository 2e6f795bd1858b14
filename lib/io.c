/* Owns what the read and write paths record on an ACTIVE connection: bytes
 * sent and kept for a resend, the first reply byte, last I/O, errors, and
 * what the first bytes say about the protocol.  Every update happens inside
 * the I/O bracket (ps_life_io_enter/leave), so a call that completes after
 * the program closed the fd only ever writes into its own, ended, record. */
#include "io.h"
#include "clock.h"
#include "events.h"
#include "fdtable.h"
#include "lifecycle.h"
#include "park.h"
#include "probe.h"
#include "ready.h"
#include "resend.h"
#include "state.h"
#include "stats.h"
#include "sys.h"
#include "track.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>

/* A reused connection until its first reply byte: a failed write may still
 * be retried on a new connection, so no write may raise SIGPIPE, and every
 * byte sent is kept. */
static bool awaiting_reply(const struct ps_conn *c) { return c->reused && !c->got_data; }

/* The buffer stays with the record until checkin or its end, when no call
 * is inside it: a reader that meets the first reply byte while a writer is
 * still copying must not pull it away. */
static bool install_replay(struct ps_conn *c)
{
	struct ps_replay *r = ps_replay_alloc(), *none = NULL;
	if (!r)
		return false;
	if (!__atomic_compare_exchange_n(&c->replay, &none, r, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		ps_replay_free(r); /* two writers at once: the first one's serves */
	return true;
}

static void keep(struct ps_conn *c, const struct ps_call *k, size_t bytes)
{
	if (c->replay_overflow)
		return;
	if (!k->iov || (!c->replay && !install_replay(c))) {
		c->replay_overflow = true;
		return;
	}
	for (size_t i = 0; i < k->iovcnt && bytes; i++) {
		size_t n = k->iov[i].iov_len < bytes ? k->iov[i].iov_len : bytes;
		if (n == 0)
			continue; /* an empty entry may have a NULL base (httperf's writev) */
		if (n > PS_REPLAY_MAX - c->replay_len) {
			c->replay_overflow = true;
			return;
		}
		memcpy(c->replay->bytes + c->replay_len, k->iov[i].iov_base, n);
		c->replay_len += (uint32_t)n;
		bytes -= n;
	}
}

static bool program_nodelay(const struct ps_conn *c)
{
	for (int i = 0; i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		int v = 0;
		if (o->level == IPPROTO_TCP && o->name == TCP_NODELAY && o->len >= sizeof v) {
			memcpy(&v, o->value, sizeof v);
			return v != 0;
		}
	}
	return false;
}

/* A request written in pieces on a reused connection: its first piece is
 * unacknowledged (the server left quick-ACK long ago), so Nagle would hold
 * the next one until the server's delayed ACK, 40 ms.  A fresh connection
 * does not wait, and neither does this one: TCP_NODELAY for the rest of this
 * use (checkin turns it off again, on the pool's own copy; getsockopt shows
 * the program its own value). */
static void push_pieces(struct ps_conn *c, int fd)
{
	if (!awaiting_reply(c) || !__atomic_load_n(&c->wrote, __ATOMIC_RELAXED) || c->nodelay_pushed ||
	    program_nodelay(c))
		return;
	int on = 1;
	int saved = errno;
	if (ps_sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0)
		c->nodelay_pushed = true;
	errno = saved;
}

/* What the tracker has just concluded about the destination itself: a
 * server that speaks first, or TLS, is never pooled, and neither is the
 * next connection to it. */
static void learn_destination(struct ps_conn *c)
{
	enum ps_proto_reason r = (enum ps_proto_reason)c->proto.never;
	unsigned taint = r == PS_R_TLS ? PS_T_TLS : r == PS_R_SERVER_FIRST ? PS_T_SERVER_FIRST : 0;
	/* on a reused connection, bytes before our word are late bytes, not a
	 * greeting: the tracker's verdict keeps that one connection out */
	if (taint == PS_T_SERVER_FIRST && c->reused)
		return;
	if (taint && !(ps_conn_taint(c) & taint)) {
		ps_conn_add_taint(c, taint);
		ps_unsafe_add(&c->key);
	}
}

/* Late bytes (DESIGN.md 5): a server that sends an answer on an idle
 * connection before closing it (a 408) must not have it read as the next
 * user's answer.  The checkout proved the connection quiet; when time has
 * passed since (a program that connects, then thinks), it is proved again
 * before the first write, and replaced when anything arrived meanwhile.
 * Below the threshold the window is the same as the checkout's own. */
#define LATE_BYTES_AFTER_NS 1000000ull

static void prove_quiet_again(struct ps_conn *c, int fd)
{
	if (!c->reused || __atomic_load_n(&c->wrote, __ATOMIC_RELAXED) || c->got_data ||
	    ps_now_ns() - c->checkout_ns < LATE_BYTES_AFTER_NS)
		return;
	int saved = errno;
	if (ps_probe_health(fd) != PS_HEALTHY && ps_replace_unused(c, fd))
		ps_stat_inc(PS_ST_LATE_BYTES);
	errno = saved;
}

static void sent(struct ps_conn *c, const struct ps_call *k, size_t bytes)
{
	if (awaiting_reply(c))
		keep(c, k, bytes);
	if (k->iov)
		ps_proto_out_iov(&c->proto, k->iov, k->iovcnt, bytes);
	else
		ps_proto_unseen(&c->proto, bytes); /* sendmmsg: not followed */
	learn_destination(c);
	c->sent += bytes;
	__atomic_store_n(&c->wrote, true, __ATOMIC_RELAXED);
	__atomic_store_n(&c->last_io, PS_IO_WRITE, __ATOMIC_RELEASE);
	ps_unused_remove(c);
}

static void failed(struct ps_conn *c, int err)
{
	if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
		ps_conn_add_taint(c, PS_T_IO_ERROR);
}

static void raise_held_sigpipe(void)
{
	int saved = errno;
	raise(SIGPIPE); /* what the kernel would have sent without our MSG_NOSIGNAL */
	errno = saved;
}

/* A call on a number that is not an ACTIVE connection's: a parked number
 * fails as a closed one, a warm socket is settled fresh first (park.h). */
static ssize_t off_path(struct ps_conn *c, const struct ps_call *k)
{
	if (c && ps_park_gate(c, k->fd, true) < 0)
		return -1;
	return k->fn(k, 0);
}

ssize_t ps_send(const struct ps_call *k)
{
	struct ps_conn *c = ps_fd_get(k->fd);
	uint32_t seq = c ? ps_life_io_enter(c, k->fd) : 0;
	if (!seq)
		return off_path(c, k);
	prove_quiet_again(c, k->fd);
	ssize_t r;
	int err;
	bool held_sigpipe = false;
	for (int attempt = 0;; attempt++) {
		bool guard = awaiting_reply(c);
		push_pieces(c, k->fd);
		r = k->fn(k, guard ? MSG_NOSIGNAL : 0);
		err = errno;
		if (r >= 0)
			break;
		if (guard && (err == EPIPE || err == ECONNRESET) && attempt == 0 &&
		    ps_resend(c, k->fd, PS_DIR_WRITE))
			continue;
		held_sigpipe = guard && err == EPIPE && !(k->flags & MSG_NOSIGNAL);
		break;
	}
	if (r > 0)
		sent(c, k, (size_t)r);
	else if (r < 0)
		failed(c, err);
	ps_life_io_leave(c);
	if (held_sigpipe)
		raise_held_sigpipe();
	errno = err;
	return r;
}

/* An answer that comes in pieces on a reused connection: the server may be
 * holding its next piece until we acknowledge this one (Nagle), and a
 * connection that left quick-ACK long ago would delay that by 40 ms, where a
 * fresh one answers at once.  TCP_QUICKACK sends the pending ACK now. */
static void ack_now(int fd)
{
	int on = 1;
	int saved = errno;
	(void)ps_sys.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
	errno = saved;
}

static void received(struct ps_conn *c, const struct ps_call *k, size_t bytes, int fd)
{
	if (k->flags & MSG_PEEK)
		return;
	if (k->iov)
		ps_proto_in_iov(&c->proto, k->iov, k->iovcnt, bytes);
	else
		ps_proto_unseen(&c->proto, bytes); /* recvmmsg: not followed */
	learn_destination(c);
	if (!c->got_data) {
		c->got_data = true;
		ps_unused_remove(c);
	}
	__atomic_store_n(&c->last_io, PS_IO_READ, __ATOMIC_RELEASE);
	if (c->reused && ps_proto_reason(&c->proto) == PS_R_RESPONSE_PENDING)
		ack_now(fd);
}

ssize_t ps_recv(const struct ps_call *k)
{
	struct ps_conn *c = ps_fd_get(k->fd);
	uint32_t seq = c ? ps_life_io_enter(c, k->fd) : 0;
	if (!seq)
		return off_path(c, k);
	ssize_t r;
	int err;
	for (int attempt = 0;; attempt++) {
		r = k->fn(k, 0);
		err = errno;
		bool ended = (r == 0 && k->want > 0) || (r < 0 && err == ECONNRESET);
		if (ended && attempt == 0 && awaiting_reply(c) && ps_resend(c, k->fd, PS_DIR_READ))
			continue;
		break;
	}
	if (r > 0)
		received(c, k, (size_t)r, k->fd);
	else if (r == 0 && k->want > 0)
		ps_conn_add_taint(c, PS_T_PEER_CLOSED);
	else if (r < 0)
		failed(c, err);
	ps_life_io_leave(c);
	errno = err;
	return r;
}

ssize_t ps_unseen(int fd, int dir, ssize_t (*call)(void *ctx), void *ctx)
{
	struct ps_conn *c = ps_fd_get(fd);
	uint32_t seq = c ? ps_life_io_enter(c, fd) : 0;
	if (!seq)
		return c && ps_park_gate(c, fd, true) < 0 ? -1 : call(ctx);
	ssize_t r = call(ctx);
	int err = errno;
	if (r > 0) {
		ps_proto_unseen(&c->proto, (size_t)r);
		if (dir == PS_IO_WRITE) {
			c->sent += (uint64_t)r;
			c->replay_overflow = true; /* nothing kept: never resent */
			__atomic_store_n(&c->wrote, true, __ATOMIC_RELAXED);
		} else {
			c->got_data = true;
		}
		ps_unused_remove(c);
		__atomic_store_n(&c->last_io, dir, __ATOMIC_RELEASE);
	} else if (r < 0) {
		failed(c, err);
	}
	ps_life_io_leave(c);
	errno = err;
	return r;
}
