/* Owns the idle lists and the LRU.  Invariant: a connection is in the LRU iff
 * it is in exactly one bucket's idle list; p->total counts them;
 * p->empty_buckets counts buckets with no idle connection. */
#include "pool.h"

#include <errno.h>
#include <stdint.h>

#include <utlist.h>

void ps_pool_init(struct ps_pool *p, unsigned max_per_key, unsigned max_total)
{
	struct ps_slab slab = PS_SLAB_INIT(struct ps_bucket);
	p->buckets = NULL;
	p->lru = NULL;
	p->total = 0;
	p->empty_buckets = 0;
	p->max_per_key = max_per_key;
	p->max_total = max_total;
	p->bucket_slab = slab;
}

static void unlink_conn(struct ps_pool *p, struct ps_conn *c)
{
	struct ps_bucket *b = c->bucket;
	DL_DELETE(b->idle, c);
	DL_DELETE2(p->lru, c, lru_prev, lru_next);
	c->bucket = NULL;
	c->next = c->prev = c->lru_next = c->lru_prev = c->free_next = NULL;
	p->total--;
	if (--b->count == 0)
		p->empty_buckets++;
}

static void sweep_empty(struct ps_pool *p)
{
	struct ps_bucket *b, *tmp;
	HASH_ITER(hh, p->buckets, b, tmp) {
		if (b->count == 0) {
			HASH_DELETE(hh, p->buckets, b);
			ps_slab_free(&p->bucket_slab, b);
		}
	}
	p->empty_buckets = 0;
}

static void push_result(struct ps_conn **list, struct ps_conn *c)
{
	c->free_next = *list;
	*list = c;
}

static struct ps_bucket *find_bucket(struct ps_pool *p, const struct ps_key *k)
{
	struct ps_bucket *b = NULL;
	HASH_FIND(hh, p->buckets, k, sizeof *k, b);
	return b;
}

static struct ps_bucket *add_bucket(struct ps_pool *p, const struct ps_key *k)
{
	struct ps_bucket *b = ps_slab_alloc(&p->bucket_slab);
	int oom = 0;
	if (!b)
		return NULL;
	b->key = *k;
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom = 1)
	HASH_ADD(hh, p->buckets, key, sizeof b->key, b);
	if (oom) {
		ps_slab_free(&p->bucket_slab, b);
		return NULL;
	}
	return b;
}

int ps_pool_put(struct ps_pool *p, struct ps_conn *c, struct ps_conn **evicted)
{
	struct ps_bucket *b = find_bucket(p, &c->key);
	*evicted = NULL;
	/* Make room first, so the caps hold at every moment. */
	if (b && b->count >= p->max_per_key) {
		struct ps_conn *oldest = b->idle->prev; /* utlist: head->prev is the tail */
		unlink_conn(p, oldest);
		push_result(evicted, oldest);
	}
	if (p->total >= p->max_total) {
		struct ps_conn *oldest = p->lru;
		unlink_conn(p, oldest);
		push_result(evicted, oldest);
	}
	if (!b) {
		if (p->empty_buckets > p->max_total)
			sweep_empty(p);
		if (!(b = add_bucket(p, &c->key))) {
			errno = ENOMEM;
			return -1;
		}
	} else if (b->count == 0) {
		p->empty_buckets--;
	}
	c->bucket = b;
	DL_PREPEND(b->idle, c);
	DL_APPEND2(p->lru, c, lru_prev, lru_next);
	b->count++;
	p->total++;
	return 0;
}

struct ps_conn *ps_pool_take(struct ps_pool *p, const struct ps_key *k)
{
	struct ps_bucket *b = find_bucket(p, k);
	if (!b || !b->idle)
		return NULL;
	struct ps_conn *c = b->idle;
	unlink_conn(p, c);
	return c;
}

void ps_pool_remove(struct ps_pool *p, struct ps_conn *c)
{
	unlink_conn(p, c);
}

struct ps_conn *ps_pool_evict_oldest_of(struct ps_pool *p, const struct ps_key *k)
{
	struct ps_bucket *b = find_bucket(p, k);
	if (!b || !b->idle)
		return NULL;
	struct ps_conn *c = b->idle->prev; /* utlist: head->prev is the tail */
	unlink_conn(p, c);
	return c;
}

struct ps_conn *ps_pool_evict_lru(struct ps_pool *p)
{
	struct ps_conn *c = p->lru;
	if (c)
		unlink_conn(p, c);
	return c;
}

struct ps_conn *ps_pool_reap(struct ps_pool *p, uint64_t now, uint64_t idle_ns)
{
	struct ps_conn *out = NULL;
	while (p->lru && p->lru->last_used_ns + idle_ns <= now) {
		struct ps_conn *c = p->lru;
		unlink_conn(p, c);
		push_result(&out, c);
	}
	return out;
}

uint64_t ps_pool_next_expiry(const struct ps_pool *p, uint64_t idle_ns)
{
	return p->lru ? p->lru->last_used_ns + idle_ns : UINT64_MAX;
}

struct ps_conn *ps_pool_drain(struct ps_pool *p)
{
	struct ps_conn *out = NULL;
	while (p->lru) {
		struct ps_conn *c = p->lru;
		unlink_conn(p, c);
		push_result(&out, c);
	}
	return out;
}

unsigned ps_pool_key_count(struct ps_pool *p, const struct ps_key *k)
{
	struct ps_bucket *b = find_bucket(p, k);
	return b ? b->count : 0;
}
