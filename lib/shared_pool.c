/* Owns the meeting of the in-process pool and the keeper: a connection
 * received from the keeper becomes a TAKEN record, so that handoff.c runs
 * on it exactly the proofs and the adoption it runs on one of its own idle
 * connections (expiry with this process's caps, SO_COOKIE identity against
 * what the keeper claimed, the MSG_PEEK health proof); and idle records
 * leave for the keeper, proven again, instead of being closed, when the
 * pool evicts them or the process exits. */
#include "shared.h"
#include "clock.h"
#include "config.h"
#include "fdtable.h"
#include "lifecycle.h"
#include "probe.h"
#include "state.h"
#include "park.h"
#include "stats.h"
#include "sys.h"

#include <fcntl.h>
#include <string.h>

struct ps_conn *ps_shared_checkout(struct ps_conn *c)
{
	struct ps_shared_meta m;
	if (!ps_config.shared)
		return NULL;
	int fd = ps_shared_take(&c->key, &m);
	if (fd < 0) {
		if (m.flags & PS_KM_UNSAFE_DEST) {
			/* what another process learnt: this destination is not pooled here either */
			ps_unsafe_add(&c->key);
			ps_conn_add_taint(c, PS_T_FILTER);
		}
		return NULL;
	}
	struct ps_conn *r = ps_life_received(fd);
	if (!r) {
		ps_sys.close(fd);
		return NULL;
	}
	ps_stat_inc(PS_ST_SHARED_TAKEN);
	r->key = c->key;
	r->domain = c->domain;
	r->type = c->type;
	r->protocol = c->protocol;
	r->cookie = m.cookie;
	/* the same clock in every process; a claim from the future is not believed */
	uint64_t now = ps_now_ns();
	r->created_ns = m.created_ns < now ? m.created_ns : now;
	r->last_used_ns = m.last_used_ns < now ? m.last_used_ns : now;
	r->reuse_count = m.reuse_count;
	r->sent = m.sent;
	r->n_opts = (int)m.n_opts;
	memcpy(r->opts, m.opts, sizeof r->opts);
	/* O_NONBLOCK belongs to the open file, which came with the descriptor */
	int fl = ps_sys.fcntl(fd, F_GETFL, 0);
	r->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	r->dest = c->dest;
	r->dest_len = c->dest_len;
	return r;
}

/* What may go to the keeper: an idle connection still ours, alive, quiet,
 * within this process's caps (the keeper applies its own as well). */
static bool offerable(struct ps_conn *c, uint64_t now)
{
	if (c->hidden < 0 || ps_life_hidden_closed(c) || !ps_kmsg_key_ok(&c->key))
		return false;
	if (now - c->last_used_ns >= ps_config.idle_timeout_ns ||
	    (ps_config.max_lifetime_ns && now - c->created_ns >= ps_config.max_lifetime_ns) ||
	    (ps_config.max_reuse && c->reuse_count >= ps_config.max_reuse))
		return false;
	if (!ps_probe_same(c->hidden, c->cookie)) {
		/* closed behind our back: the number is not ours to close or send */
		ps_fd_cas(c->hidden, c, NULL);
		c->hidden = -1;
		return false;
	}
	return ps_probe_health(c->hidden) == PS_HEALTHY;
}


/* Offers what can go on b (open or not) and ends every record. */
static void offer_all(struct ps_shared_batch *b, struct ps_conn *list)
{
	uint64_t now = ps_now_ns();
	while (list) {
		struct ps_conn *c = list;
		list = c->free_next;
		struct ps_shared_meta m;
		if (b->s >= 0 && offerable(c, now)) {
			ps_shared_meta_of(c, &m);
			/* in flight, the socket stays open after our copy is closed */
			if (ps_shared_batch_offer(b, &c->key, &m, c->hidden) == 0)
				ps_stat_inc(PS_ST_SHARED_OFFERED);
		}
		ps_life_end(c);
	}
}

void ps_shared_offer(struct ps_conn *list)
{
	struct ps_shared_batch b = { .s = -1 };
	if (list && ps_config.shared)
		ps_shared_batch_open(&b);
	offer_all(&b, list);
	ps_shared_batch_close(&b);
}

#define EXIT_UNSAFE 64

void ps_shared_exit(void)
{
	struct ps_key unsafe[EXIT_UNSAFE];
	if (!ps_config.shared || !ps_g.ready)
		return;
	ps_check_fork();
	ps_park_flush(); /* park.h: parked connections are offered too */
	if (ps_lock() < 0)
		return;
	struct ps_conn *list = ps_pool_drain(&ps_g.pool);
	ps_take_list_locked(list);
	size_t n = ps_unsafe_copy_locked(unsafe, EXIT_UNSAFE);
	ps_unlock();
	if (!list && !n)
		return;
	struct ps_shared_batch b = { .s = -1 };
	ps_shared_batch_open(&b);
	offer_all(&b, list);
	ps_shared_batch_unsafe(&b, unsafe, n);
	ps_shared_batch_close(&b);
}
