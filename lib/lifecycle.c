/* Owns the state word of every record: the transitions of lifecycle.h and
 * the one place a record ends.  Lock-free: each transition is a CAS, so it
 * is safe from any thread and from a signal handler; the pool lock (state.h)
 * is only taken to free a record. */
#include "lifecycle.h"
#include "fdtable.h"
#include "probe.h"
#include "ready.h"
#include "state.h"
#include "stats.h"
#include "sys.h"

static int load(struct ps_conn *c) { return __atomic_load_n(&c->state, __ATOMIC_SEQ_CST); }

static bool cas(struct ps_conn *c, int *expect, int desired)
{
	return __atomic_compare_exchange_n(&c->state, expect, desired, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* from -> to when the record is exactly in `from` (no flags). */
static bool move(struct ps_conn *c, int from, int to)
{
	int expect = from;
	return cas(c, &expect, to);
}

/* The end of an operation that owned the program's number: from -> to,
 * handing back a close that arrived meanwhile. */
static bool finish(struct ps_conn *c, int from, int to)
{
	int w = load(c);
	while ((w & PS_STATE_MASK) == from && !cas(c, &w, to))
		;
	return (w & PS_F_CLOSE_PENDING) != 0;
}

static struct ps_conn *alloc(void)
{
	if (ps_lock() < 0)
		return NULL;
	struct ps_conn *c = ps_conn_alloc_locked();
	ps_unlock();
	return c;
}

struct ps_conn *ps_life_new(int fd, int domain, int type, int protocol)
{
	struct ps_conn *c = alloc(), *old;
	if (!c)
		return NULL;
	c->fd = fd;
	c->domain = domain;
	c->type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	c->protocol = protocol;
	c->nonblock = (type & SOCK_NONBLOCK) != 0;
	c->cloexec = (type & SOCK_CLOEXEC) != 0;
	__atomic_store_n(&c->state, PS_FRESH, __ATOMIC_SEQ_CST);
	if (ps_fd_swap(fd, c, &old) < 0) {
		ps_life_end(c);
		return NULL;
	}
	ps_release_stale(old, fd);
	return c;
}

/* CONNECTING holds an I/O reference: the connect() that returns late writes
 * what it learnt into this incarnation, never into the next one. */
bool ps_life_begin_connect(struct ps_conn *c)
{
	__atomic_fetch_add(&c->inflight, 1, __ATOMIC_SEQ_CST);
	if (move(c, PS_FRESH, PS_CONNECTING))
		return true;
	ps_life_io_leave(c);
	return false;
}

bool ps_life_end_connect(struct ps_conn *c, bool connected)
{
	bool ok = move(c, PS_CONNECTING, connected ? PS_ACTIVE : PS_FRESH);
	ps_life_io_leave(c);
	return ok;
}

bool ps_life_begin_checkout(struct ps_conn *c) { return move(c, PS_FRESH, PS_CHECKOUT); }

bool ps_life_begin_settle(struct ps_conn *c) { return move(c, PS_WARM, PS_CHECKOUT); }

bool ps_life_end_checkout(struct ps_conn *c, bool hit)
{
	return finish(c, PS_CHECKOUT, hit ? PS_ACTIVE : PS_FRESH);
}

bool ps_life_begin_reconnect(struct ps_conn *c) { return move(c, PS_ACTIVE, PS_RECONNECTING); }

bool ps_life_end_reconnect(struct ps_conn *c) { return finish(c, PS_RECONNECTING, PS_ACTIVE); }

enum ps_claim ps_life_claim(struct ps_conn *c, bool defer)
{
	int w = load(c);
	for (;;) {
		switch (w & PS_STATE_MASK) {
		case PS_FRESH:
		case PS_CONNECTING:
			if (cas(c, &w, PS_CHECKIN))
				return PS_CLAIM_FRESH;
			break;
		case PS_ACTIVE:
			if (cas(c, &w, PS_CHECKIN))
				return PS_CLAIM_ACTIVE;
			break;
		case PS_CHECKOUT:
		case PS_RECONNECTING:
			if (!defer)
				return PS_CLAIM_NONE;
			if (w & PS_F_CLOSE_PENDING)
				return PS_CLAIM_CLOSING; /* closed twice: the second finds it gone */
			if (cas(c, &w, w | PS_F_CLOSE_PENDING))
				return PS_CLAIM_DEFERRED;
			break;
		case PS_CHECKIN:
			return PS_CLAIM_CLOSING;
		case PS_WARM:
			if (cas(c, &w, PS_CHECKIN))
				return PS_CLAIM_WARM;
			break;
		case PS_PARKED:
			if (defer)
				return PS_CLAIM_CLOSED;
			if (cas(c, &w, PS_TAKEN))
				return PS_CLAIM_PARKED;
			break;
		default:
			return PS_CLAIM_NONE;
		}
	}
}

bool ps_life_pool(struct ps_conn *c) { return move(c, PS_CHECKIN, PS_IDLE); }

bool ps_life_take(struct ps_conn *c)
{
	int w = load(c);
	while ((w & PS_STATE_MASK) == PS_IDLE)
		if (cas(c, &w, PS_TAKEN | (w & ~PS_STATE_MASK)))
			return true;
	return false;
}

bool ps_life_pool_taken(struct ps_conn *c) { return move(c, PS_TAKEN, PS_IDLE); }

bool ps_life_park(struct ps_conn *c) { return move(c, PS_CHECKIN, PS_PARKED); }
bool ps_life_unpark(struct ps_conn *c) { return move(c, PS_PARKED, PS_TAKEN); }
bool ps_life_repark(struct ps_conn *c) { return move(c, PS_TAKEN, PS_PARKED); }
bool ps_life_warm(struct ps_conn *c) { return move(c, PS_TAKEN, PS_WARM); }

void ps_life_mark_hidden_closed(struct ps_conn *c)
{
	__atomic_fetch_or(&c->state, PS_F_HIDDEN_CLOSED, __ATOMIC_SEQ_CST);
}

bool ps_life_hidden_closed(struct ps_conn *c) { return (load(c) & PS_F_HIDDEN_CLOSED) != 0; }

static void try_free(struct ps_conn *c)
{
	if (move(c, PS_DEAD, PS_FREE))
		ps_conn_free(c);
}

void ps_life_end(struct ps_conn *c)
{
	int h = c->hidden;
	if (h >= 0) {
		c->hidden = -1;
		ps_fd_cas(h, c, NULL);
		/* the number may have been closed behind our back and reused */
		if (ps_probe_same(h, c->cookie))
			ps_sys.close(h);
		else
			ps_stat_inc(PS_ST_IDENTITY);
	}
	if (c->fd >= 0)
		ps_fd_cas(c->fd, c, NULL);
	ps_unused_remove(c);
	__atomic_store_n(&c->state, PS_DEAD, __ATOMIC_SEQ_CST);
	/* Dekker with ps_life_io_leave: one of the two sees the other */
	if (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) == 0)
		try_free(c);
}

uint32_t ps_life_io_enter(struct ps_conn *c, int fd)
{
	__atomic_fetch_add(&c->inflight, 1, __ATOMIC_SEQ_CST);
	/* Dekker with close: it changes the state and clears the slot, then
	 * reads inflight */
	uint32_t seq = ps_conn_seq(c);
	if (ps_fd_get(fd) == c && __atomic_load_n(&c->fd, __ATOMIC_RELAXED) == fd &&
	    load(c) == PS_ACTIVE)
		return seq;
	ps_life_io_leave(c);
	return 0;
}

void ps_life_io_leave(struct ps_conn *c)
{
	if (__atomic_sub_fetch(&c->inflight, 1, __ATOMIC_SEQ_CST) == 0 &&
	    (load(c) & PS_STATE_MASK) == PS_DEAD)
		try_free(c);
}

bool ps_life_is(struct ps_conn *c, uint32_t seq, int st)
{
	return ps_conn_seq(c) == seq && ps_conn_state(c) == st;
}

struct ps_conn *ps_life_received(int hidden)
{
	struct ps_conn *c = alloc(), *old;
	if (!c)
		return NULL;
	c->hidden = hidden;
	__atomic_store_n(&c->state, PS_TAKEN, __ATOMIC_SEQ_CST);
	if (ps_fd_swap(hidden, c, &old) == 0)
		ps_release_stale(old, hidden);
	return c;
}
