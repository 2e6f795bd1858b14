/* The idle pool as a data structure: a uthash table from key to that key's
 * idle list (most recently used first: LIFO keeps the warmest connection and
 * lets the rest time out) plus one global list over all idle connections,
 * least recently used first, for eviction and reaping.
 *
 * No locking and no I/O here: the caller holds the pool lock (state.h) and
 * closes what these functions hand back, after unlocking. Lists handed back
 * are linked through ps_conn.free_next.
 *
 * A bucket whose list empties stays in the table (the common cycle takes the
 * only idle connection and puts it back); empty buckets are swept once there
 * are more of them than the pool's total cap. */
#ifndef POOLSHIM_POOL_H
#define POOLSHIM_POOL_H

#include "conn.h"
#include "mem.h"

/* uthash grows its tables with these; mmap keeps malloc out of the wrappers,
 * and an allocation failure is reported instead of exiting the program. */
#define uthash_malloc(sz) ps_mem_alloc(sz)
#define uthash_free(ptr, sz) ps_mem_free((ptr), (sz))
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

struct ps_bucket {
	struct ps_key key;
	struct ps_conn *idle; /* utlist DL list through next/prev */
	unsigned count;
	UT_hash_handle hh;
};

struct ps_pool {
	struct ps_bucket *buckets;
	struct ps_conn *lru;  /* utlist DL list through lru_next/lru_prev; head is oldest */
	unsigned total;
	unsigned empty_buckets; /* kept so a busy key does not free and remap the table */
	unsigned max_per_key;
	unsigned max_total;
	struct ps_slab bucket_slab;
};

void ps_pool_init(struct ps_pool *p, unsigned max_per_key, unsigned max_total);

/* Adds c (last_used_ns already set) as the most recent idle connection of its
 * key.  Connections pushed out by the caps are unlinked and returned in
 * *evicted.  Returns 0, or -1 (ENOMEM) with c not added. */
int ps_pool_put(struct ps_pool *p, struct ps_conn *c, struct ps_conn **evicted);

/* Unlinks and returns the most recently used idle connection for k, or NULL. */
struct ps_conn *ps_pool_take(struct ps_pool *p, const struct ps_key *k);

/* Unlinks c, which must be idle in p. */
void ps_pool_remove(struct ps_pool *p, struct ps_conn *c);

/* Unlinks and returns k's least recently used idle connection, or NULL. */
struct ps_conn *ps_pool_evict_oldest_of(struct ps_pool *p, const struct ps_key *k);

/* Unlinks and returns the least recently used idle connection, or NULL. */
struct ps_conn *ps_pool_evict_lru(struct ps_pool *p);

/* Unlinks and returns every connection idle since before now - idle_ns.
 * Walks only the expired prefix of the LRU list. */
struct ps_conn *ps_pool_reap(struct ps_pool *p, uint64_t now, uint64_t idle_ns);

/* When the oldest idle connection expires; UINT64_MAX if the pool is empty. */
uint64_t ps_pool_next_expiry(const struct ps_pool *p, uint64_t idle_ns);

/* Unlinks and returns everything. */
struct ps_conn *ps_pool_drain(struct ps_pool *p);

unsigned ps_pool_key_count(struct ps_pool *p, const struct ps_key *k);

#endif
