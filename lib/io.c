/* Owns what the read and write paths record on an ACTIVE connection: bytes
 * sent and kept for a resend, the first reply byte, last I/O, errors, and
 * what the first bytes say about the protocol.  Every update happens inside
 * the I/O bracket (ps_life_io_enter/leave), so a call that completes after
 * the program closed the fd only ever writes into its own, ended, record. */
#include "io.h"
#include "events.h"
#include "fdtable.h"
#include "lifecycle.h"
#include "ready.h"
#include "resend.h"
#include "state.h"
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

static void learn_request(struct ps_conn *c, const struct ps_call *k)
{
	if (!k->iov || !k->iovcnt || !k->iov[0].iov_len)
		return;
	const void *head = k->iov[0].iov_base;
	size_t len = k->iov[0].iov_len;
	bool first = !__atomic_load_n(&c->wrote, __ATOMIC_RELAXED);
	if (first && !c->reused && ps_looks_like_tls(head, len)) {
		ps_conn_add_taint(c, PS_T_TLS);
		ps_unsafe_add(&c->key);
	}
	if (ps_has_connection_auth(head, len))
		ps_conn_add_taint(c, PS_T_AUTH);
	if (first && ps_asks_server_to_close(head, len))
		ps_conn_add_taint(c, PS_T_PEER_CLOSED);
}

static void sent(struct ps_conn *c, const struct ps_call *k, size_t bytes)
{
	if (awaiting_reply(c))
		keep(c, k, bytes);
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

ssize_t ps_send(const struct ps_call *k)
{
	struct ps_conn *c = ps_fd_get(k->fd);
	uint32_t seq = c ? ps_life_io_enter(c, k->fd) : 0;
	if (!seq)
		return k->fn(k, 0);
	learn_request(c, k);
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

static void received(struct ps_conn *c, bool peek)
{
	if (peek)
		return;
	/* bytes before our first word on a fresh connection: the server speaks
	 * first, and a reused connection would never greet */
	if (!__atomic_load_n(&c->wrote, __ATOMIC_RELAXED) && !c->reused) {
		ps_conn_add_taint(c, PS_T_SERVER_FIRST);
		ps_unsafe_add(&c->key);
	}
	if (!c->got_data) {
		c->got_data = true;
		ps_unused_remove(c);
	}
	__atomic_store_n(&c->last_io, PS_IO_READ, __ATOMIC_RELEASE);
}

ssize_t ps_recv(const struct ps_call *k)
{
	struct ps_conn *c = ps_fd_get(k->fd);
	uint32_t seq = c ? ps_life_io_enter(c, k->fd) : 0;
	if (!seq)
		return k->fn(k, 0);
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
		received(c, (k->flags & MSG_PEEK) != 0);
	else if (r == 0 && k->want > 0)
		ps_conn_add_taint(c, PS_T_PEER_CLOSED);
	else if (r < 0)
		failed(c, err);
	ps_life_io_leave(c);
	errno = err;
	return r;
}
