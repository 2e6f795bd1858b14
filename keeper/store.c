/* Owns the keeper's holdings (store.h).  Invariant: a connection is in the
 * pool iff its cookie is in held_cookies; every held descriptor is closed
 * exactly once, by whoever unlinks it. */
#include "store.h"
#include "probe.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define MAX_DESTS 4096  /* counters kept for this many destinations at most */
#define MAX_UNSAFE 1024

struct k_dest {
	struct ps_key key;
	bool unsafe;
	uint64_t hits, offers;
	UT_hash_handle hh;
};

struct k_cookie {
	uint64_t cookie;
	UT_hash_handle hh;
};

void k_store_init(struct k_store *s, const struct k_caps *caps)
{
	struct ps_slab conns = PS_SLAB_INIT(struct ps_conn);
	struct ps_slab dests = PS_SLAB_INIT(struct k_dest);
	struct ps_slab cookies = PS_SLAB_INIT(struct k_cookie);
	memset(s, 0, sizeof *s);
	s->caps = *caps;
	ps_pool_init(&s->pool, caps->max_per_key, caps->max_total);
	s->conns = conns;
	s->dests = dests;
	s->cookies = cookies;
}

/* The destination alone (what "unsafe" is about), as the shim's state.c
 * keeps it. */
static void dest_only(struct ps_key *out, const struct ps_key *k)
{
	memset(out, 0, sizeof *out);
	out->family = k->family;
	out->port = k->port;
	out->scope_id = k->scope_id;
	memcpy(out->addr, k->addr, sizeof out->addr);
}

static struct k_dest *find_dest(struct k_store *s, const struct ps_key *k)
{
	struct k_dest *d = NULL;
	HASH_FIND(hh, s->dests_by_key, k, sizeof *k, d);
	return d;
}

static struct k_dest *get_dest(struct k_store *s, const struct ps_key *k)
{
	struct k_dest *d = find_dest(s, k);
	int oom = 0;
	if (d || s->n_dests >= MAX_DESTS || !(d = ps_slab_alloc(&s->dests)))
		return d;
	d->key = *k;
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom = 1)
	HASH_ADD(hh, s->dests_by_key, key, sizeof d->key, d);
	if (oom) {
		ps_slab_free(&s->dests, d);
		return NULL;
	}
	s->n_dests++;
	return d;
}

static bool cookie_held(struct k_store *s, uint64_t cookie)
{
	struct k_cookie *c = NULL;
	HASH_FIND(hh, s->held_cookies, &cookie, sizeof cookie, c);
	return c != NULL;
}

static int hold_cookie(struct k_store *s, uint64_t cookie)
{
	struct k_cookie *c = ps_slab_alloc(&s->cookies);
	int oom = 0;
	if (!c)
		return -1;
	c->cookie = cookie;
	HASH_ADD(hh, s->held_cookies, cookie, sizeof c->cookie, c);
	if (oom) {
		ps_slab_free(&s->cookies, c);
		return -1;
	}
	return 0;
}

static void drop_cookie(struct k_store *s, uint64_t cookie)
{
	struct k_cookie *c = NULL;
	HASH_FIND(hh, s->held_cookies, &cookie, sizeof cookie, c);
	if (c) {
		HASH_DELETE(hh, s->held_cookies, c);
		ps_slab_free(&s->cookies, c);
	}
}

/* Ends a record the pool no longer links: closes its descriptor. */
static void release(struct k_store *s, struct ps_conn *c)
{
	drop_cookie(s, c->cookie);
	if (c->hidden >= 0)
		close(c->hidden);
	ps_slab_free(&s->conns, c);
}

static void release_list(struct k_store *s, struct ps_conn *list, enum ps_km_counter why)
{
	while (list) {
		struct ps_conn *c = list;
		list = c->free_next;
		s->counters[why]++;
		release(s, c);
	}
}

static bool expired(const struct k_caps *caps, const struct ps_conn *c, uint64_t now)
{
	return now - c->last_used_ns >= caps->idle_timeout_ns ||
	       (caps->max_lifetime_ns && now - c->created_ns >= caps->max_lifetime_ns) ||
	       (caps->max_reuse && c->reuse_count >= caps->max_reuse);
}

static struct ps_conn *record(struct k_store *s, const struct ps_key *k, const struct ps_shared_meta *m,
			      int fd, uint64_t now)
{
	struct ps_conn *c = ps_slab_alloc(&s->conns);
	if (!c)
		return NULL;
	c->key = *k;
	c->hidden = fd;
	c->fd = -1;
	c->cookie = m->cookie;
	/* a claim from the future would keep a connection past its time */
	c->created_ns = m->created_ns < now ? m->created_ns : now;
	c->last_used_ns = m->last_used_ns < now ? m->last_used_ns : now;
	c->reuse_count = m->reuse_count;
	c->sent = m->sent;
	c->n_opts = (int)m->n_opts;
	memcpy(c->opts, m->opts, sizeof c->opts);
	return c;
}

/* Puts c in the pool with its cookie; closes what the caps push out.
 * Returns 0, or -1 with c not held (its descriptor still open). */
static int hold(struct k_store *s, struct ps_conn *c)
{
	struct ps_conn *evicted = NULL;
	if (hold_cookie(s, c->cookie) < 0)
		return -1;
	if (ps_pool_put(&s->pool, c, &evicted) < 0) {
		drop_cookie(s, c->cookie);
		return -1;
	}
	release_list(s, evicted, PS_KC_EVICTED);
	return 0;
}

int k_store_offer(struct k_store *s, const struct ps_key *k, const struct ps_shared_meta *m, int fd,
		  uint64_t now)
{
	struct ps_conn *c = NULL;
	/* the same socket twice would be handed to two processes at once */
	if (k_store_is_unsafe(s, k) || cookie_held(s, m->cookie) || !(c = record(s, k, m, fd, now)) ||
	    expired(&s->caps, c, now) || hold(s, c) < 0) {
		if (c)
			ps_slab_free(&s->conns, c);
		close(fd);
		s->counters[PS_KC_REFUSED]++;
		return -1;
	}
	s->counters[PS_KC_HELD]++;
	struct k_dest *d = get_dest(s, k);
	if (d)
		d->offers++;
	return 0;
}

int k_store_take(struct k_store *s, const struct ps_key *k, uint64_t now, struct ps_shared_meta *m)
{
	struct ps_conn *c;
	while ((c = ps_pool_take(&s->pool, k))) {
		if (expired(&s->caps, c, now)) {
			s->counters[PS_KC_REAPED]++;
			release(s, c);
			continue;
		}
		if (!ps_probe_same(c->hidden, c->cookie) || ps_probe_health(c->hidden) != PS_HEALTHY) {
			s->counters[PS_KC_STALE]++;
			release(s, c);
			continue;
		}
		ps_shared_meta_of(c, m);
		int fd = c->hidden;
		c->hidden = -1;
		release(s, c);
		struct k_dest *d = get_dest(s, k);
		if (d)
			d->hits++;
		return fd;
	}
	return -1;
}

void k_store_untake(struct k_store *s, const struct ps_key *k, const struct ps_shared_meta *m, int fd,
		    uint64_t now)
{
	struct k_dest *d = find_dest(s, k);
	if (d && d->hits)
		d->hits--;
	struct ps_conn *c = record(s, k, m, fd, now);
	if (!c || hold(s, c) < 0) {
		if (c)
			ps_slab_free(&s->conns, c);
		close(fd);
	}
}

void k_store_mark_unsafe(struct k_store *s, const struct ps_key *k)
{
	struct ps_key dk;
	dest_only(&dk, k);
	struct k_dest *d = find_dest(s, &dk);
	if (!d && s->n_unsafe < MAX_UNSAFE && (d = get_dest(s, &dk)))
		s->n_unsafe++;
	if (d)
		d->unsafe = true;
	/* what is held for it goes: whatever key shape it was held under */
	struct ps_conn *c = s->pool.lru, *next;
	for (; c; c = next) {
		next = c->lru_next;
		struct ps_key ck;
		dest_only(&ck, &c->key);
		if (ps_key_equal(&ck, &dk)) {
			ps_pool_remove(&s->pool, c);
			release(s, c);
		}
	}
}

bool k_store_is_unsafe(struct k_store *s, const struct ps_key *k)
{
	struct ps_key dk;
	dest_only(&dk, k);
	struct k_dest *d = find_dest(s, &dk);
	return d && d->unsafe;
}

uint64_t k_store_reap(struct k_store *s, uint64_t now)
{
	release_list(s, ps_pool_reap(&s->pool, now, s->caps.idle_timeout_ns), PS_KC_REAPED);
	return ps_pool_next_expiry(&s->pool, s->caps.idle_timeout_ns);
}

void k_store_drain(struct k_store *s)
{
	struct ps_conn *list = ps_pool_drain(&s->pool);
	while (list) {
		struct ps_conn *c = list;
		list = c->free_next;
		release(s, c);
	}
}

unsigned k_store_held(const struct k_store *s) { return s->pool.total; }

void k_store_foreach(struct k_store *s, uint64_t now,
		     void (*fn)(const struct ps_km_status_dest *d, void *arg), void *arg)
{
	struct k_dest *d, *tmp;
	HASH_ITER(hh, s->dests_by_key, d, tmp) {
		struct ps_km_status_dest out;
		memset(&out, 0, sizeof out);
		out.key = d->key;
		out.unsafe = d->unsafe;
		out.hits = d->hits;
		out.offers = d->offers;
		struct ps_bucket *b = NULL;
		HASH_FIND(hh, s->pool.buckets, &d->key, sizeof d->key, b);
		if (b && b->idle) {
			/* the idle list is most recent first; its head's prev is the tail */
			out.idle = b->count;
			out.newest_idle_ns = now - b->idle->last_used_ns;
			out.oldest_idle_ns = now - b->idle->prev->last_used_ns;
			for (struct ps_conn *c = b->idle; c; c = c->next)
				if (now - c->created_ns > out.oldest_age_ns)
					out.oldest_age_ns = now - c->created_ns;
		}
		fn(&out, arg);
	}
}
