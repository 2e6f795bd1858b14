/* pool.c: the idle lists, the LRU, the caps, reaping and bucket sweeping.
 * Pure data structure: records are plain memory here, nothing is closed. */
#include "pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <criterion/criterion.h>

#define NCONN 4096
static struct ps_conn store[NCONN];
static int n_used;

static struct ps_key key_port(uint16_t port)
{
	struct sockaddr_in a;
	struct ps_key k;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	return k;
}

static struct ps_conn *mk(uint16_t port, uint64_t last_used)
{
	cr_assert_lt(n_used, NCONN);
	struct ps_conn *c = &store[n_used++];
	memset(c, 0, sizeof *c);
	c->fd = 1000 + n_used;
	c->key = key_port(port);
	c->last_used_ns = last_used;
	c->state = PS_IDLE;
	return c;
}

static void put_ok(struct ps_pool *p, struct ps_conn *c)
{
	struct ps_conn *ev = (struct ps_conn *)1;
	cr_assert_eq(ps_pool_put(p, c, &ev), 0);
	cr_assert_null(ev, "no eviction expected when putting fd %d", c->fd);
}

static unsigned list_len(struct ps_conn *l)
{
	unsigned n = 0;
	for (; l; l = l->free_next)
		n++;
	return n;
}

static bool list_has(struct ps_conn *l, struct ps_conn *c)
{
	for (; l; l = l->free_next)
		if (l == c)
			return true;
	return false;
}

/* Every structural invariant pool.c documents. */
static void check_invariants(struct ps_pool *p)
{
	struct ps_bucket *b, *tmp;
	unsigned sum = 0, empty = 0, lru = 0;
	HASH_ITER(hh, p->buckets, b, tmp) {
		unsigned n = 0;
		struct ps_conn *c;
		for (c = b->idle; c; c = c->next) {
			cr_assert_eq(c->bucket, b);
			cr_assert(ps_key_equal(&c->key, &b->key));
			n++;
		}
		cr_assert_eq(n, b->count, "bucket list has %u, count says %u", n, b->count);
		sum += n;
		empty += b->count == 0;
	}
	for (struct ps_conn *c = p->lru; c; c = c->lru_next)
		lru++;
	cr_assert_eq(sum, p->total);
	cr_assert_eq(lru, p->total);
	cr_assert_eq(empty, p->empty_buckets, "empty buckets %u, counter %u", empty, p->empty_buckets);
}

Test(pool, lifo_order_within_key)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_conn *a = mk(80, 1), *b = mk(80, 2), *c = mk(80, 3);
	put_ok(&p, a);
	put_ok(&p, b);
	put_ok(&p, c);
	struct ps_key k = key_port(80);
	cr_assert_eq(p.total, 3);
	cr_assert_eq(ps_pool_key_count(&p, &k), 3);
	cr_assert_eq(ps_pool_take(&p, &k), c);
	cr_assert_eq(ps_pool_take(&p, &k), b);
	cr_assert_eq(ps_pool_take(&p, &k), a);
	cr_assert_null(ps_pool_take(&p, &k));
	cr_assert_eq(p.total, 0);
	cr_assert_null(a->bucket, "a taken connection is unlinked");
	check_invariants(&p);
}

Test(pool, take_unknown_key_returns_null)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_key k80 = key_port(80), k81 = key_port(81);
	cr_assert_null(ps_pool_take(&p, &k80), "empty pool");
	put_ok(&p, mk(80, 1));
	cr_assert_null(ps_pool_take(&p, &k81));
	cr_assert_eq(p.total, 1, "a miss must not disturb the pool");
	cr_assert_eq(ps_pool_key_count(&p, &k81), 0);
	cr_assert_eq(ps_pool_key_count(&p, &k80), 1);
}

Test(pool, per_key_cap_evicts_that_keys_oldest)
{
	struct ps_pool p;
	ps_pool_init(&p, 2, 16);
	struct ps_conn *b1 = mk(81, 1), *a1 = mk(80, 2), *a2 = mk(80, 3), *a3 = mk(80, 4);
	put_ok(&p, b1);
	put_ok(&p, a1);
	put_ok(&p, a2);
	struct ps_conn *ev = NULL;
	cr_assert_eq(ps_pool_put(&p, a3, &ev), 0);
	cr_assert_eq(ev, a1, "the key's oldest goes, not the global oldest (b1)");
	cr_assert_null(ev->free_next);
	cr_assert_null(a1->bucket);
	struct ps_key k80 = key_port(80), k81 = key_port(81);
	cr_assert_eq(ps_pool_key_count(&p, &k80), 2);
	cr_assert_eq(ps_pool_key_count(&p, &k81), 1);
	cr_assert_eq(p.total, 3);
	cr_assert_eq(ps_pool_take(&p, &k80), a3);
	cr_assert_eq(ps_pool_take(&p, &k80), a2);
	cr_assert_null(ps_pool_take(&p, &k80));
	check_invariants(&p);
}

Test(pool, total_cap_evicts_global_lru_of_another_key)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 3);
	struct ps_conn *b1 = mk(81, 1), *a1 = mk(80, 2), *a2 = mk(80, 3), *a3 = mk(80, 4);
	put_ok(&p, b1);
	put_ok(&p, a1);
	put_ok(&p, a2);
	struct ps_conn *ev = NULL;
	cr_assert_eq(ps_pool_put(&p, a3, &ev), 0);
	cr_assert_eq(ev, b1, "the global least recently used goes");
	cr_assert_null(ev->free_next);
	struct ps_key k80 = key_port(80), k81 = key_port(81);
	cr_assert_eq(p.total, 3);
	cr_assert_eq(ps_pool_key_count(&p, &k81), 0);
	cr_assert_eq(ps_pool_key_count(&p, &k80), 3);
	cr_assert_null(ps_pool_take(&p, &k81));
	check_invariants(&p);
}

Test(pool, caps_hold_after_every_put)
{
	struct ps_pool p;
	ps_pool_init(&p, 3, 5);
	unsigned evicted = 0;
	for (int i = 0; i < 200; i++) {
		struct ps_conn *ev = NULL;
		cr_assert_eq(ps_pool_put(&p, mk((uint16_t)(80 + i % 4), (uint64_t)i), &ev), 0);
		evicted += list_len(ev);
		cr_assert_leq(p.total, 5);
		for (int k = 0; k < 4; k++) {
			struct ps_key key = key_port((uint16_t)(80 + k));
			cr_assert_leq(ps_pool_key_count(&p, &key), 3);
		}
		check_invariants(&p);
	}
	cr_assert_eq(evicted + p.total, 200, "every connection is either pooled or handed back");
}

Test(pool, evict_lru_oldest_first_across_keys)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_conn *a1 = mk(80, 1), *b1 = mk(81, 2), *a2 = mk(80, 3), *c1 = mk(82, 4);
	put_ok(&p, a1);
	put_ok(&p, b1);
	put_ok(&p, a2);
	put_ok(&p, c1);
	cr_assert_eq(ps_pool_evict_lru(&p), a1);
	cr_assert_eq(ps_pool_evict_lru(&p), b1);
	cr_assert_eq(ps_pool_evict_lru(&p), a2);
	cr_assert_eq(ps_pool_evict_lru(&p), c1);
	cr_assert_null(ps_pool_evict_lru(&p));
	cr_assert_eq(p.total, 0);
	check_invariants(&p);
}

Test(pool, reap_returns_exactly_the_expired)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_conn *c1 = mk(80, 100), *c2 = mk(81, 200), *c3 = mk(80, 300), *c4 = mk(82, 400);
	put_ok(&p, c1);
	put_ok(&p, c2);
	put_ok(&p, c3);
	put_ok(&p, c4);
	/* nothing old enough yet */
	cr_assert_null(ps_pool_reap(&p, 199, 100));
	cr_assert_eq(p.total, 4);
	/* idle since before 350 - 100 = 250: c1 and c2 */
	struct ps_conn *r = ps_pool_reap(&p, 350, 100);
	cr_assert_eq(list_len(r), 2);
	cr_assert(list_has(r, c1));
	cr_assert(list_has(r, c2));
	cr_assert_null(c1->bucket);
	cr_assert_eq(p.total, 2);
	check_invariants(&p);
	/* exactly idle_ns old counts as expired (300 + 100 <= 400) */
	r = ps_pool_reap(&p, 400, 100);
	cr_assert_eq(r, c3);
	cr_assert_null(r->free_next);
	struct ps_key k82 = key_port(82);
	cr_assert_eq(ps_pool_key_count(&p, &k82), 1);
	cr_assert_eq(ps_pool_take(&p, &k82), c4);
	check_invariants(&p);
}

Test(pool, next_expiry_tracks_oldest)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	cr_assert_eq(ps_pool_next_expiry(&p, 1000), UINT64_MAX);
	struct ps_conn *c1 = mk(80, 5000), *c2 = mk(81, 7000);
	put_ok(&p, c1);
	put_ok(&p, c2);
	cr_assert_eq(ps_pool_next_expiry(&p, 1000), 6000);
	ps_pool_remove(&p, c1);
	cr_assert_eq(ps_pool_next_expiry(&p, 1000), 8000);
	ps_pool_remove(&p, c2);
	cr_assert_eq(ps_pool_next_expiry(&p, 1000), UINT64_MAX);
}

Test(pool, remove_middle_keeps_order)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_conn *a = mk(80, 1), *b = mk(80, 2), *c = mk(80, 3), *x = mk(81, 4);
	put_ok(&p, a);
	put_ok(&p, b);
	put_ok(&p, x);
	put_ok(&p, c);
	ps_pool_remove(&p, b);
	cr_assert_null(b->bucket);
	cr_assert_eq(p.total, 3);
	struct ps_key k = key_port(80);
	cr_assert_eq(ps_pool_key_count(&p, &k), 2);
	check_invariants(&p);
	cr_assert_eq(ps_pool_evict_lru(&p), a);
	cr_assert_eq(ps_pool_evict_lru(&p), x);
	cr_assert_eq(ps_pool_evict_lru(&p), c);
	cr_assert_null(ps_pool_evict_lru(&p));
}

Test(pool, drain_returns_everything)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 16);
	struct ps_conn *c[6];
	for (int i = 0; i < 6; i++) {
		c[i] = mk((uint16_t)(80 + i % 3), (uint64_t)i);
		put_ok(&p, c[i]);
	}
	struct ps_conn *all = ps_pool_drain(&p);
	cr_assert_eq(list_len(all), 6);
	for (int i = 0; i < 6; i++)
		cr_assert(list_has(all, c[i]));
	cr_assert_eq(p.total, 0);
	cr_assert_null(p.lru);
	for (int i = 0; i < 3; i++) {
		struct ps_key k = key_port((uint16_t)(80 + i));
		cr_assert_eq(ps_pool_key_count(&p, &k), 0);
	}
	check_invariants(&p);
	/* usable afterwards */
	struct ps_conn *n = mk(80, 10);
	put_ok(&p, n);
	struct ps_key k = key_port(80);
	cr_assert_eq(ps_pool_take(&p, &k), n);
	cr_assert_null(ps_pool_drain(&p));
}

Test(pool, key_count_per_key)
{
	struct ps_pool p;
	ps_pool_init(&p, 8, 64);
	for (int i = 0; i < 5; i++)
		put_ok(&p, mk(80, (uint64_t)i));
	for (int i = 0; i < 2; i++)
		put_ok(&p, mk(81, (uint64_t)(10 + i)));
	struct ps_key k80 = key_port(80), k81 = key_port(81), k82 = key_port(82);
	cr_assert_eq(ps_pool_key_count(&p, &k80), 5);
	cr_assert_eq(ps_pool_key_count(&p, &k81), 2);
	cr_assert_eq(ps_pool_key_count(&p, &k82), 0);
	cr_assert_eq(p.total, 7);
}

Test(pool, one_key_emptied_and_refilled_many_times)
{
	struct ps_pool p;
	ps_pool_init(&p, 4, 8);
	struct ps_conn *c = mk(80, 0);
	struct ps_key k = key_port(80);
	for (int i = 0; i < 10000; i++) {
		c->last_used_ns = (uint64_t)i;
		put_ok(&p, c);
		cr_assert_eq(p.total, 1);
		cr_assert_eq(ps_pool_take(&p, &k), c);
		cr_assert_eq(p.total, 0);
	}
	cr_assert_eq(HASH_COUNT(p.buckets), 1, "the busy key keeps its one bucket");
	cr_assert_eq(p.empty_buckets, 1);
	check_invariants(&p);
}

Test(pool, many_distinct_keys_sweep_empty_buckets)
{
	struct ps_pool p;
	ps_pool_init(&p, 2, 4);
	/* three long-lived idle connections that must survive every sweep */
	struct ps_conn *keep[3];
	for (int i = 0; i < 3; i++) {
		keep[i] = mk((uint16_t)(50000 + i), 0);
		put_ok(&p, keep[i]);
	}
	for (int i = 0; i < 1000; i++) {
		struct ps_conn *c = mk((uint16_t)(1000 + i), 1);
		struct ps_key k = key_port((uint16_t)(1000 + i));
		put_ok(&p, c);
		cr_assert_eq(p.total, 4);
		cr_assert_eq(ps_pool_key_count(&p, &k), 1);
		cr_assert_eq(ps_pool_take(&p, &k), c);
		cr_assert_eq(p.total, 3);
		cr_assert_leq(HASH_COUNT(p.buckets), 3 + p.max_total + 2,
			      "empty buckets must be swept past the cap (have %u)",
			      (unsigned)HASH_COUNT(p.buckets));
		check_invariants(&p);
	}
	for (int i = 0; i < 3; i++) {
		struct ps_key k = key_port((uint16_t)(50000 + i));
		cr_assert_eq(ps_pool_take(&p, &k), keep[i], "a sweep must not drop a live bucket");
	}
	cr_assert_eq(p.total, 0);
	/* a swept key works again */
	struct ps_conn *again = mk(1000, 2);
	struct ps_key k = key_port(1000);
	put_ok(&p, again);
	cr_assert_eq(ps_pool_key_count(&p, &k), 1);
	cr_assert_eq(ps_pool_take(&p, &k), again);
	check_invariants(&p);
}

Test(pool, refilled_empty_bucket_respects_per_key_cap)
{
	struct ps_pool p;
	ps_pool_init(&p, 1, 8);
	struct ps_key k = key_port(80);
	struct ps_conn *a = mk(80, 1), *b = mk(80, 2);
	put_ok(&p, a);
	cr_assert_eq(ps_pool_take(&p, &k), a);
	put_ok(&p, a); /* bucket existed with count 0 */
	struct ps_conn *ev = NULL;
	cr_assert_eq(ps_pool_put(&p, b, &ev), 0);
	cr_assert_eq(ev, a);
	cr_assert_eq(ps_pool_key_count(&p, &k), 1);
	cr_assert_eq(p.total, 1);
	check_invariants(&p);
}
